//! The command line, as clap definitions. `--help` on every command is the manual.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Provider calls at once: they wait on APIs, so more than cores.
pub const DEFAULT_PARALLEL: u16 = berth_engine::apply::DEFAULT_PARALLEL as u16;

const AFTER_HELP: &str = "\
Exit codes: 0 success; 1 error (including usage errors); 2 changes present (with
--detailed-exitcode); 130 interrupted.

Environment:
  BERTH_PASSPHRASE          passphrase that encrypts secrets in state and stack files
  BERTH_PROJECT             project directory (default: nearest parent with stacks/)
  BERTH_CONFIG__A__B=value  override config key a.b (like --config a.b=value)
  NO_COLOR                  disable colour
  RUST_LOG                  log filter (overrides -v)";

/// berth: infrastructure as code for Open edX on Kubernetes and AWS.
///
/// A stack is one environment (stacks/<stack>.yaml). `preview` shows what would change, `up`
/// changes it, `destroy` removes it. State lives in state/<stack>.json by default.
#[derive(Debug, Parser)]
#[command(name = "berth", version, after_help = AFTER_HELP, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Project directory (where stacks/ and state/ are).
    #[arg(short = 'C', long = "project", global = true, env = "BERTH_PROJECT", value_name = "DIR")]
    pub project: Option<PathBuf>,

    /// Use this state backend instead of the stack file's (`local`, file:///path, s3://bucket/prefix).
    #[arg(long, global = true, env = "BERTH_BACKEND", value_name = "URL")]
    pub backend: Option<String>,

    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// When to use colour.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Preview, apply and inspect stacks.
    #[command(subcommand)]
    Stack(StackCommand),
    /// Inspect and repair state.
    #[command(subcommand)]
    State(StateCommand),
    /// Read and write stack configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// Options shared by commands that plan.
#[derive(Debug, Args, Clone)]
pub struct PlanArgs {
    /// Show field-level changes of every resource.
    #[arg(long)]
    pub diff: bool,

    /// Print JSON to stdout instead of text (progress goes to stderr).
    #[arg(long)]
    pub json: bool,

    /// Read every resource from its provider first and plan against what is live.
    #[arg(long)]
    pub refresh: bool,

    /// Limit to this resource (URN or unique name) and everything depending on it; repeatable.
    #[arg(long = "target", value_name = "URN")]
    pub targets: Vec<String>,

    /// Provider calls to run at once.
    #[arg(long, default_value_t = DEFAULT_PARALLEL, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub parallel: u16,

    /// Fail (exit 1) if there are changes; for CI drift checks.
    #[arg(long)]
    pub expect_no_changes: bool,

    /// Override a config key for this run: --config edxapp.replicas=3; repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub config: Vec<(String, String)>,

    /// Also list unchanged resources.
    #[arg(long)]
    pub show_sames: bool,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got `{text}`")),
    }
}

#[derive(Debug, Subcommand)]
pub enum StackCommand {
    /// Show what `up` would change, without changing anything.
    Preview {
        stack: String,
        #[command(flatten)]
        plan: PlanArgs,
        /// Exit 0 when there are no changes, 2 when there are, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Write the stack's Kubernetes objects as manifest files for GitOps (Argo CD, Flux), with
    /// Argo CD sync waves from the dependency order: pre-deploy Jobs before the Deployments
    /// they gate, Deployments before their autoscalers. Changes nothing.
    #[command(
        after_help = "Objects whose values are known only after apply (an RDS address not yet created) stop the render with their names; objects holding secret values (Kubernetes Secrets) are not written.\n\nExample:\n  berth stack render mitxonline.qa --out gitops/mitxonline-qa && git -C gitops diff"
    )]
    Render {
        stack: String,
        /// The directory to write (created; manifests a previous render wrote there are replaced).
        #[arg(long, value_name = "DIR")]
        out: std::path::PathBuf,
        /// Override a config key for this run: --config edxapp.image.digest=sha256:...; repeatable.
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        config: Vec<(String, String)>,
        /// Read every resource from its provider first, so values come from what is live.
        #[arg(long)]
        refresh: bool,
        /// Print what was written as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create, update and delete resources so the stack matches its program.
    Up {
        stack: String,
        #[command(flatten)]
        plan: PlanArgs,
        /// Apply without asking; required when there is no terminal.
        #[arg(short, long)]
        yes: bool,
    },
    /// Delete every resource of the stack (its state and stack file stay).
    Destroy {
        stack: String,
        /// Print JSON to stdout.
        #[arg(long)]
        json: bool,
        /// Delete only this resource and what depends on it; repeatable.
        #[arg(long = "target", value_name = "URN")]
        targets: Vec<String>,
        /// Provider calls to run at once.
        #[arg(long, default_value_t = DEFAULT_PARALLEL, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
        parallel: u16,
        /// Delete without asking; required when there is no terminal.
        #[arg(short, long)]
        yes: bool,
    },
    /// Read every resource back and record what changed outside berth.
    Refresh {
        stack: String,
        /// Print JSON to stdout.
        #[arg(long)]
        json: bool,
        /// Fail (exit 1) if anything drifted.
        #[arg(long)]
        expect_no_changes: bool,
        /// Exit 0 when nothing drifted, 2 when something did, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
        /// Provider calls to run at once.
        #[arg(long, default_value_t = DEFAULT_PARALLEL, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
        parallel: u16,
        /// Write the refreshed state without asking; required when there is no terminal.
        #[arg(short, long)]
        yes: bool,
    },
    /// Adopt resources that already exist: read them and record them in state (protected),
    /// so the program manages them without creating them again. All or nothing; running it
    /// again is a no-op.
    #[command(
        after_help = "Examples:\n  berth stack import mitx.qa --discover edxapp --deployment mitx      # writes mitx.qa.import.json to review\n  berth stack import mitx.qa --file mitx.qa.import.json --generate-config imported.yaml\n  berth stack import mitx.qa aws:s3:Bucket storage mitx-qa-edxapp-storage\n\nimport.json: {\"resources\": [{\"type\": \"aws:s3:Bucket\", \"name\": \"storage\", \"id\": \"...\", \"parent\": \"urn:...\"}]}"
    )]
    Import {
        stack: String,
        /// Type token, e.g. aws:rds:Instance (with NAME and ID).
        #[arg(requires_all = ["name", "id"], conflicts_with = "file")]
        r#type: Option<String>,
        /// The logical name the program gives the resource.
        name: Option<String>,
        /// The provider's id for it (a bucket name, an instance identifier).
        id: Option<String>,
        /// A JSON file listing many resources to import at once.
        #[arg(long, value_name = "FILE", required_unless_present_any = ["type", "discover"])]
        file: Option<std::path::PathBuf>,
        /// The URN of the component the program registers it under.
        #[arg(long, value_name = "URN", conflicts_with = "file")]
        parent: Option<String>,
        /// Do not protect the imported resources from deletion.
        #[arg(long)]
        no_protect: bool,
        /// Write the imported resources' live settings as YAML to FILE, with the stack
        /// configuration (in the shape the program's components use) that reproduces them.
        #[arg(long, value_name = "FILE")]
        generate_config: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
        /// Find the AWS resources the stack's program (PROGRAM, e.g. edxapp) would create that
        /// already exist, by the names and tags it gives them, and write an import file to
        /// review. Imports nothing.
        #[arg(long, value_name = "PROGRAM", conflicts_with_all = ["type", "file"])]
        discover: Option<String>,
        /// With --discover: the deployment whose resources to look for (PROGRAM.deployment).
        #[arg(long, value_name = "NAME", requires = "discover")]
        deployment: Option<String>,
        /// With --discover: the import file to write (default: <STACK>.import.json).
        #[arg(long, value_name = "FILE", requires = "discover")]
        out: Option<std::path::PathBuf>,
        /// With --discover: override a config key for the search: --config key=value; repeatable.
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value, requires = "discover")]
        config: Vec<(String, String)>,
    },
    /// Print the stack's outputs (one, raw, when NAME is given).
    Output {
        stack: String,
        name: Option<String>,
        #[arg(long)]
        json: bool,
        /// Print secret outputs in plain text.
        #[arg(long)]
        show_secrets: bool,
    },
    /// List the project's stacks with their last update.
    Ls {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// List the resources recorded in a stack's state.
    List {
        stack: String,
        #[arg(long)]
        json: bool,
    },
    /// Show one resource's recorded inputs and outputs.
    Show {
        stack: String,
        /// URN or unique logical name.
        resource: String,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        show_secrets: bool,
    },
    /// Remove a stale lock left by a process that is gone.
    Unlock {
        stack: String,
        /// Remove the lock even if its holder is still running.
        #[arg(long)]
        force: bool,
    },
    /// Forget a resource without deleting it (it keeps existing, unmanaged).
    Delete {
        stack: String,
        /// URN or unique logical name.
        resource: String,
        /// Also when it is protected or other resources depend on it.
        #[arg(long)]
        force: bool,
        #[arg(short, long)]
        yes: bool,
    },
    /// Clear a resource's protect flag in state.
    Unprotect {
        stack: String,
        /// URN or unique logical name.
        resource: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Set a key in stacks/<stack>.yaml under `config:` (comments are kept).
    Set {
        stack: String,
        /// Dotted key, e.g. edxapp.db_instance_type.
        key: String,
        /// The value, as YAML (`3` is a number, `"3"` a string). Omit with --secret to read it
        /// from standard input, keeping it out of shell history.
        value: Option<String>,
        /// Encrypt the value with BERTH_PASSPHRASE (like `pulumi config set --secret`).
        #[arg(long)]
        secret: bool,
    },
    /// Print a key's merged value (tier defaults, stack file, overrides).
    Get {
        stack: String,
        key: String,
        #[arg(long)]
        show_secrets: bool,
    },
}
