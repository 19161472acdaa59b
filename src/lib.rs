//! The `berth` command line, as a library: an [`App`] is the set of stack programs and provider
//! plugins a binary ships; [`App::run`] parses arguments and runs one command.
//!
//! ```no_run
//! use berth::App;
//! # fn demo(stack: &mut berth_engine::Stack) -> berth_engine::ProgramResult { Ok(()) }
//! fn main() -> std::process::ExitCode {
//!     App::new().program("demo", demo).run()
//! }
//! ```

pub mod cli;
mod commands;
mod context;
mod error;
mod output;
mod progress;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;

use berth_engine::Program;
use berth_engine::crypto::SecretsProvider;
use berth_engine::registry::ProviderPlugin;
use berth_engine::state::BackendFactory;
use clap::Parser;

use crate::cli::{Cli, Command, ConfigCommand, StackCommand, StateCommand};
use crate::context::Context;
use crate::error::{CliError, EXIT_ERROR};
use crate::output::{Printer, RedactingWriter};

pub use error::{EXIT_CHANGES, EXIT_INTERRUPTED};

/// What a `berth` binary can deploy: its stack programs and providers.
#[derive(Default)]
pub struct App {
    programs: BTreeMap<String, Arc<dyn Program>>,
    plugins: Vec<Arc<dyn ProviderPlugin>>,
    backends: Vec<Arc<dyn BackendFactory>>,
    secrets: Vec<Arc<dyn SecretsProvider>>,
    pub(crate) import_configs: BTreeMap<String, ImportConfig>,
}

/// For a program: the stack configuration (its `config:` section, as JSON) that reproduces
/// imported resources, from their (type, logical name, live inputs with secrets masked).
pub type ImportConfig = fn(&[(&str, &str, &serde_json::Value)]) -> serde_json::Value;

impl App {
    pub fn new() -> App {
        App::default()
    }

    /// Adds a stack program, chosen by a stack file's `program:` key.
    pub fn program(mut self, name: &str, program: impl Program + 'static) -> App {
        self.programs.insert(name.to_string(), Arc::new(program));
        self
    }

    /// Adds a provider package.
    pub fn plugin(mut self, plugin: Arc<dyn ProviderPlugin>) -> App {
        self.plugins.push(plugin);
        self
    }

    pub fn plugins(mut self, plugins: impl IntoIterator<Item = Arc<dyn ProviderPlugin>>) -> App {
        self.plugins.extend(plugins);
        self
    }

    /// Adds a state backend for `backend: <scheme>://...` (the local directory needs none).
    pub fn backend(mut self, factory: Arc<dyn BackendFactory>) -> App {
        self.backends.push(factory);
        self
    }

    /// How `stack import --generate-config` writes configuration for stacks of `program`.
    pub fn import_config(mut self, program: &str, shape: ImportConfig) -> App {
        self.import_configs.insert(program.to_string(), shape);
        self
    }

    /// Adds a secrets provider for `secrets: <scheme>://...` (the passphrase needs none).
    pub fn secrets_provider(mut self, provider: Arc<dyn SecretsProvider>) -> App {
        self.secrets.push(provider);
        self
    }

    /// Runs the command in the process's arguments.
    pub fn run(self) -> ExitCode {
        self.run_with(std::env::args_os())
    }

    /// Runs the command in `args` (the first is the program name).
    pub fn run_with(self, args: impl IntoIterator<Item = OsString>) -> ExitCode {
        let cli = match Cli::try_parse_from(args) {
            Ok(cli) => cli,
            Err(e) => {
                let _ = e.print();
                // Usage errors exit 1: with --detailed-exitcode, 2 means "changes present".
                return ExitCode::from(if e.use_stderr() { EXIT_ERROR } else { 0 });
            }
        };
        init_logging(cli.verbose);
        let printer = Printer::new(cli.color);
        let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                printer.err(&CliError::new(format!("cannot start the async runtime: {e}")).render(printer.style));
                return ExitCode::from(EXIT_ERROR);
            }
        };
        let result = runtime.block_on(async {
            let mut ctx = Context::new(&self, cli.project.clone(), printer)?;
            ctx.backend_override = cli.backend.clone();
            dispatch(&ctx, cli.command).await
        });
        // Provider clients may hold background tasks; do not wait for them.
        runtime.shutdown_background();
        match result {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                printer.err(&e.render(printer.style));
                ExitCode::from(e.code)
            }
        }
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(RedactingWriter).with_target(verbose >= 2).try_init();
}

async fn dispatch(ctx: &Context<'_>, command: Command) -> Result<u8, CliError> {
    use commands::{config, import, render, stack, state};
    match command {
        Command::Stack(StackCommand::Preview { stack: name, plan, detailed_exitcode }) => {
            stack::preview(ctx, &name, &plan, detailed_exitcode).await
        }
        Command::Stack(StackCommand::Up { stack: name, plan, yes }) => stack::up(ctx, &name, &plan, yes).await,
        Command::Stack(StackCommand::Render { stack: name, out, config, refresh, json }) => {
            let plan = cli::PlanArgs {
                diff: false,
                json,
                refresh,
                targets: Vec::new(),
                parallel: cli::DEFAULT_PARALLEL,
                expect_no_changes: false,
                config,
                show_sames: false,
            };
            render::render(ctx, &name, &out, &plan).await
        }
        Command::Stack(StackCommand::Destroy { stack: name, json, targets, parallel, yes }) => {
            stack::destroy(ctx, &name, &targets, parallel, yes, json).await
        }
        Command::Stack(StackCommand::Refresh { stack: name, json, expect_no_changes, detailed_exitcode, parallel, yes }) => {
            stack::refresh(ctx, &name, parallel, yes, json, expect_no_changes, detailed_exitcode).await
        }
        Command::Stack(StackCommand::Output { stack: name, name: output, json, show_secrets }) => {
            stack::output(ctx, &name, output.as_deref(), json, show_secrets).await
        }
        Command::Stack(StackCommand::Ls { json }) => stack::ls(ctx, json).await,
        Command::Stack(StackCommand::Import {
            stack: name,
            r#type,
            name: resource,
            id,
            file,
            parent,
            no_protect,
            generate_config,
            json,
            discover,
            deployment,
            out,
            config,
        }) => {
            if let Some(program) = discover {
                return import::discover(ctx, &name, &program, deployment.as_deref(), out.as_deref(), &config, json).await;
            }
            let single = match (r#type, resource, id) {
                (Some(ty), Some(resource), Some(id)) => Some((ty, resource, id)),
                _ => None,
            };
            import::run(ctx, &name, single, file.as_deref(), parent.as_deref(), !no_protect, generate_config.as_deref(), json).await
        }
        Command::State(StateCommand::List { stack: name, json }) => state::list(ctx, &name, json).await,
        Command::State(StateCommand::Show { stack: name, resource, json, show_secrets }) => {
            state::show(ctx, &name, &resource, json, show_secrets).await
        }
        Command::State(StateCommand::Unlock { stack: name, force }) => state::unlock(ctx, &name, force).await,
        Command::State(StateCommand::Delete { stack: name, resource, force, yes }) => {
            state::delete(ctx, &name, &resource, force, yes).await
        }
        Command::State(StateCommand::Unprotect { stack: name, resource }) => state::unprotect(ctx, &name, &resource).await,
        Command::Config(ConfigCommand::Set { stack: name, key, value, secret }) => {
            config::set(ctx, &name, &key, value.as_deref(), secret).await
        }
        Command::Config(ConfigCommand::Get { stack: name, key, show_secrets }) => config::get(ctx, &name, &key, show_secrets).await,
    }
}
