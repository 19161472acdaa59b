//! The `demo` stack program: one component with a generated Django secret key, a random
//! suffix, and the rendered LMS configuration and credentials files, from typed configuration.
//!
//! ```yaml
//! # stacks/demo.yaml
//! program: demo
//! config:
//!   site_name: Demo Academy
//!   lms_domain: lms.demo.local
//!   replicas: 2
//!   admin_password: {secure: v1:...}   # berth config set demo admin_password --secret
//! ```

use berth_engine::{Options, Output, ProgramResult, Secret, Stack, format_output};
use berth_provider_builtin::local::File;
use berth_provider_builtin::random::{Id, Password};
use serde::Deserialize;

/// The `config:` section of a demo stack.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// Shown as PLATFORM_NAME.
    pub site_name: String,
    /// The LMS host name.
    pub lms_domain: String,
    /// Web workers to run.
    #[serde(default = "one")]
    pub replicas: u16,
    /// Written to the credentials file when set.
    #[serde(default)]
    pub admin_password: Option<Secret<String>>,
    /// Where the rendered files go (relative to the project).
    #[serde(default = "default_output_dir")]
    pub output_dir: String,
}

fn one() -> u16 {
    1
}

fn default_output_dir() -> String {
    ".demo".into()
}

/// The program.
pub fn demo(stack: &mut Stack) -> ProgramResult {
    let config: DemoConfig = stack.config()?;
    let dir = format!("{}/{}", config.output_dir, stack.name());
    let site = config.site_name.clone();
    stack.component("demo:index:Site", "site", Options::new(), |stack, _| -> ProgramResult {
        let suffix = stack.register("suffix", Id { byte_length: 3, ..Id::default() }, Options::new())?;
        let secret_key = stack.register("secret-key", Password { length: 48, ..Password::default() }, Options::new())?;
        let hex = suffix.output::<String>("hex");
        let lms_config = format_output!(
            "PLATFORM_NAME: {}\nLMS_BASE: {}\nSESSION_COOKIE_NAME: sessionid-{}\nUWSGI_WORKERS: {}\n",
            Output::known(site.clone()),
            Output::known(config.lms_domain.clone()),
            hex,
            Output::known(config.replicas.to_string())
        );
        let config_file = stack.register(
            "lms-config",
            File { path: format!("{dir}/lms.env.yml").into(), content: lms_config.into(), ..File::default() },
            Options::new(),
        )?;
        let admin = config.admin_password.clone().map(|p| p.into_inner()).unwrap_or_default();
        let credentials = secret_key.output::<String>("result").map(move |key| format!("SECRET_KEY: {key}\nADMIN_PASSWORD: {admin}\n"));
        stack.register(
            "credentials",
            File {
                path: format!("{dir}/credentials.yml").into(),
                content: credentials.secret().into(),
                sensitive: true,
                ..File::default()
            },
            Options::new(),
        )?;
        stack.export("lms_url", &Output::known(format!("https://{}", config.lms_domain)));
        stack.export("config_path", &config_file.output::<String>("path"));
        stack.export("session_suffix", &hex);
        stack.export("secret_key", &secret_key.output::<String>("result"));
        Ok(())
    })
}
