//! From a stack name to what an operation needs: its settings, program, backend, keys and
//! providers.

use std::path::PathBuf;
use std::sync::Arc;

use berth_engine::crypto::Keyring;
use berth_engine::ops::Engine;
use berth_engine::project::{Project, StackSettings};
use berth_engine::registry::{ProviderSettings, Providers};
use std::collections::BTreeMap;

use berth_engine::Value;
use berth_engine::crypto::SecretsProvider;
use berth_engine::references::{References, StackReferences};
use berth_engine::state::{Backend, BackendFactory, LocalBackend, load};
use berth_engine::{Program, Urn};

use crate::App;
use crate::error::CliError;
use crate::output::{Printer, register_secrets};

/// One command's context.
pub struct Context<'a> {
    pub app: &'a App,
    pub project: Project,
    pub printer: Printer,
    /// `--backend`/`BERTH_BACKEND`: replaces every stack file's `backend:`.
    pub backend_override: Option<String>,
}

impl<'a> Context<'a> {
    /// Finds the project: `-C DIR`, else the nearest directory upwards holding `stacks/`.
    pub fn new(app: &'a App, project: Option<PathBuf>, printer: Printer) -> Result<Context<'a>, CliError> {
        let project = match project {
            Some(dir) => {
                if !dir.join("stacks").is_dir() {
                    return Err(CliError::new(format!("{} is not a berth project: it has no stacks/ directory", dir.display()))
                        .help("create stacks/<stack>.yaml there, or pass the right -C DIR"));
                }
                Project::at(dir)
            }
            None => {
                let cwd = std::env::current_dir().map_err(|e| CliError::new(format!("cannot read the current directory: {e}")))?;
                Project::discover(&cwd).ok_or_else(|| {
                    CliError::new(format!("no berth project in {} or its parents (looked for a stacks/ directory)", cwd.display()))
                        .help("run berth inside a project, or pass -C DIR")
                })?
            }
        };
        Ok(Context { app, project, printer, backend_override: None })
    }

    /// The keyring for a stack: its secrets provider (the passphrase, `BERTH_PASSPHRASE`,
    /// reusing the stack file's salt, unless `secrets:` names another).
    pub fn keyring(&self, settings: Option<&StackSettings>) -> Keyring {
        Keyring::from_env()
            .prefer(settings.and_then(|s| s.encryption.clone()))
            .with_secrets(settings.and_then(|s| s.secrets.as_deref()), self.app.secrets.clone())
    }

    /// The stack's settings with overrides, secrets decrypted (and registered for scrubbing).
    pub fn settings(&self, stack: &str, overrides: &[(String, String)]) -> Result<StackSettings, CliError> {
        validate_stack_name(stack)?;
        let mut settings = self.project.load_stack(stack, overrides, &Keyring::from_env().with_secrets(None, self.app.secrets.clone()))?;
        if let Some(url) = &self.backend_override {
            settings.backend = Some(url.clone());
        }
        register_secrets(settings.secret_strings());
        Ok(settings)
    }

    pub fn program(&self, settings: &StackSettings) -> Result<Arc<dyn Program>, CliError> {
        let known = || self.app.programs.keys().cloned().collect::<Vec<_>>().join(", ");
        match &settings.program {
            Some(name) => self.app.programs.get(name).cloned().ok_or_else(|| {
                CliError::new(format!("{}: program `{name}` is not part of this build", self.project.display(&settings.file)))
                    .help(format!("programs: {}", known()))
            }),
            None if self.app.programs.len() == 1 => Ok(self.app.programs.values().next().cloned().expect("one program")),
            None => Err(CliError::new(format!("{}: no `program:` key", self.project.display(&settings.file)))
                .help(format!("add `program: <name>`; programs: {}", known()))),
        }
    }

    pub fn backend(&self, settings: &StackSettings) -> Result<Arc<dyn Backend>, CliError> {
        backend_for(&self.project, &self.app.backends, settings)
    }

    /// Reads other stacks' outputs for `Stack::reference`: a stack with a file in this project
    /// through its own backend, any other (another project's, as with Pulumi's stack
    /// references) through the backend and secrets of `referencing`.
    pub fn references(&self, referencing: &StackSettings) -> References {
        References::new(Arc::new(ProjectReferences {
            project: self.project.clone(),
            backends: self.app.backends.clone(),
            secrets: self.app.secrets.clone(),
            backend_override: self.backend_override.clone(),
            referencing: referencing.clone(),
        }))
    }

    /// The engine for a stack.
    pub fn engine(&self, settings: &StackSettings) -> Result<Engine, CliError> {
        match settings.secrets.as_deref() {
            None | Some("passphrase") => {}
            Some(url) => {
                let scheme = url.split("://").next().unwrap_or_default();
                if !self.app.secrets.iter().any(|p| p.scheme() == scheme) {
                    let mut known = vec!["passphrase".to_string()];
                    known.extend(self.app.secrets.iter().map(|p| format!("{}://", p.scheme())));
                    return Err(CliError::new(format!(
                        "{}: secrets provider `{url}` is not supported by this build",
                        self.project.display(&settings.file)
                    ))
                    .help(format!("secrets providers: {}", known.join(", "))));
                }
            }
        }
        let providers = Providers::from_plugins(&self.app.plugins, |package| ProviderSettings {
            stack: settings.name.clone(),
            project_root: self.project.root.clone(),
            node: settings.providers.get(package).cloned(),
        });
        for package in settings.providers.keys() {
            if !self.app.plugins.iter().any(|p| p.package() == package) {
                let node = &settings.providers[package];
                return Err(CliError::new(format!("{}: providers.{package}: no such provider in this build", node.source)).help(format!(
                    "providers: {}",
                    self.app.plugins.iter().map(|p| p.package().to_string()).collect::<Vec<_>>().join(", ")
                )));
            }
        }
        Ok(Engine {
            stack: settings.name.clone(),
            backend: self.backend(settings)?,
            providers: Arc::new(providers),
            keyring: Arc::new(self.keyring(Some(settings))),
        })
    }
}

/// Stack names become file names: keep them simple.
pub fn validate_stack_name(stack: &str) -> Result<(), CliError> {
    let ok =
        !stack.is_empty() && stack.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) && !stack.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(CliError::new(format!("`{stack}` is not a valid stack name")).help("use letters, digits, `.`, `-` and `_`, e.g. mitxonline.qa"))
    }
}

/// Finds a resource by URN or unique logical name among `urns`.
pub fn find_resource<'u>(what: &str, urns: impl Iterator<Item = &'u Urn>) -> Result<Urn, CliError> {
    let urns: Vec<&Urn> = urns.collect();
    if let Some(u) = urns.iter().find(|u| u.as_str() == what) {
        return Ok((*u).clone());
    }
    let by_name: Vec<&&Urn> = urns.iter().filter(|u| u.name() == what).collect();
    match by_name.len() {
        1 => Ok((*by_name[0]).clone()),
        0 => Err(CliError::new(format!("no resource `{what}` in state")).help("list them with `berth state list <stack>`")),
        _ => Err(CliError::new(format!("`{what}` matches {} resources", by_name.len()))
            .help(format!("pass a URN: {}", by_name.iter().map(|u| u.as_str()).collect::<Vec<_>>().join(", ")))),
    }
}

/// The state backend a stack file names.
pub fn backend_for(
    project: &Project,
    backends: &[Arc<dyn BackendFactory>],
    settings: &StackSettings,
) -> Result<Arc<dyn Backend>, CliError> {
    match settings.backend.as_deref() {
        None | Some("local") => Ok(Arc::new(LocalBackend::new(project.state_dir()))),
        Some(url) if url.starts_with("file://") => {
            let path = PathBuf::from(&url["file://".len()..]);
            let path = if path.is_relative() { project.root.join(path) } else { path };
            Ok(Arc::new(LocalBackend::new(path)))
        }
        Some(url) => {
            let scheme = url.split("://").next().unwrap_or_default();
            match backends.iter().find(|f| f.scheme() == scheme) {
                Some(factory) => Ok(factory.open(url, settings, &project.root)?),
                None => {
                    let mut known = vec!["local".to_string(), "file://".to_string()];
                    known.extend(backends.iter().map(|f| format!("{}://", f.scheme())));
                    Err(CliError::new(format!("{}: backend `{url}` is not supported by this build", project.display(&settings.file)))
                        .help(format!("backends: {}", known.join(", "))))
                }
            }
        }
    }
}

/// Stack references resolved through the project's stack files and backends.
struct ProjectReferences {
    project: Project,
    backends: Vec<Arc<dyn BackendFactory>>,
    secrets: Vec<Arc<dyn SecretsProvider>>,
    backend_override: Option<String>,
    referencing: StackSettings,
}

impl StackReferences for ProjectReferences {
    fn outputs(&self, stack: &str) -> Result<Option<BTreeMap<String, Value>>, String> {
        validate_stack_name(stack).map_err(|e| e.message)?;
        let keyring = || Keyring::from_env().with_secrets(None, self.secrets.clone());
        let mut settings = if self.project.stack_file(stack).exists() {
            self.project.load_stack(stack, &[], &keyring()).map_err(|e| e.to_string())?
        } else {
            StackSettings { name: stack.to_string(), ..self.referencing.clone() }
        };
        if let Some(url) = &self.backend_override {
            settings.backend = Some(url.clone());
        }
        let backend = backend_for(&self.project, &self.backends, &settings).map_err(|e| e.message)?;
        let keyring = keyring().prefer(settings.encryption.clone()).with_secrets(settings.secrets.as_deref(), self.secrets.clone());
        // Programs run synchronously inside the runtime; the backend is async.
        let loaded = tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(load(backend.as_ref(), stack, &keyring)))
            .map_err(|e| e.to_string())?;
        Ok(loaded.exists.then_some(loaded.state.outputs))
    }
}
