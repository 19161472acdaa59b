//! Errors as the user sees them: what went wrong, where, and what to type next.

use std::fmt::Write;

use berth_engine::config::ConfigError;
use berth_engine::ops::OpError;
use berth_engine::render::Style;
use berth_engine::state::StateError;

/// Exit code for errors (also usage errors: 2 means "changes present" with --detailed-exitcode).
pub const EXIT_ERROR: u8 = 1;
/// Exit code when changes are present and `--detailed-exitcode` was given.
pub const EXIT_CHANGES: u8 = 2;
/// Exit code after an interrupt (128 + SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;

/// An error for the command line: a message, an optional hint, an exit code.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub help: Option<String>,
    pub code: u8,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> CliError {
        CliError { message: message.into(), help: None, code: EXIT_ERROR }
    }

    pub fn help(mut self, help: impl Into<String>) -> CliError {
        self.help = Some(help.into());
        self
    }

    pub fn code(mut self, code: u8) -> CliError {
        self.code = code;
        self
    }

    /// `error: ...` and `help: ...` lines.
    pub fn render(&self, style: Style) -> String {
        let mut out = String::new();
        let mut lines = self.message.lines();
        let _ = writeln!(out, "{} {}", style.red(&style.bold("error:")), lines.next().unwrap_or_default());
        for line in lines {
            let _ = writeln!(out, "  {line}");
        }
        if let Some(help) = &self.help {
            let _ = writeln!(out, "{} {help}", style.bold("help:"));
        }
        out
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        CliError { message: e.to_string(), help: e.help.clone(), code: EXIT_ERROR }
    }
}

impl From<StateError> for CliError {
    fn from(e: StateError) -> Self {
        CliError::new(e.to_string())
    }
}

impl From<OpError> for CliError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Config(c) => c.into(),
            OpError::Plan(p) => {
                let mut message =
                    if p.problems.len() == 1 { String::new() } else { format!("the plan has {} problems:\n", p.problems.len()) };
                let mut helps = Vec::new();
                for problem in &p.problems {
                    if p.problems.len() == 1 {
                        message.push_str(&problem.to_string());
                    } else {
                        let _ = writeln!(message, "- {problem}");
                    }
                    if let Some(urn) = &problem.urn {
                        let _ = write!(message, "{}  {urn}", if p.problems.len() == 1 { "\n" } else { "" });
                        if p.problems.len() > 1 {
                            message.push('\n');
                        }
                    }
                    if let Some(h) = &problem.help
                        && !helps.contains(h)
                    {
                        helps.push(h.clone());
                    }
                }
                CliError {
                    message: message.trim_end().to_string(),
                    help: (!helps.is_empty()).then(|| helps.join("\n      ")),
                    code: EXIT_ERROR,
                }
            }
            OpError::Crypto(c) => {
                CliError::new(c.to_string()).help("export BERTH_PASSPHRASE=... (the same passphrase every time for this stack)")
            }
            OpError::State(StateError::Crypto { origin, source }) => CliError::new(format!("{origin}: {source}"))
                .help("export BERTH_PASSPHRASE=... (the passphrase this stack's secrets were encrypted with)"),
            OpError::State(StateError::Lock(message)) => CliError::new(message),
            other => CliError::new(other.to_string()),
        }
    }
}
