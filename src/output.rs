//! Everything berth prints goes through here: known secret values are replaced by `[secret]`
//! before a byte reaches stdout, stderr or the log, whatever produced the text (a provider's
//! error message may quote an input).

use std::io::{IsTerminal, Write};
use std::sync::{OnceLock, RwLock};

use berth_engine::plan::Plan;
use berth_engine::render::Style;
use berth_engine::value::SECRET_MASK;

use crate::cli::ColorChoice;

/// Shorter values are not scrubbed: they would mangle ordinary text (a kv secret may hold a plain
/// user name like `edxapp`). Every secret is still masked wherever berth renders it as a value.
const MIN_SECRET_LEN: usize = 8;

fn secrets() -> &'static RwLock<Vec<String>> {
    static SECRETS: OnceLock<RwLock<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| RwLock::new(Vec::new()))
}

/// Adds values to scrub from all further output.
pub fn register_secrets(values: impl IntoIterator<Item = String>) {
    if let Ok(mut list) = secrets().write() {
        for value in values {
            if value.chars().count() >= MIN_SECRET_LEN && !list.contains(&value) {
                list.push(value);
            }
        }
        // Longest first, so a secret containing another is replaced whole.
        list.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Every secret a plan knows: recorded inputs and outputs, planned inputs, stack outputs.
pub fn register_plan_secrets(plan: &Plan) {
    let mut found = Vec::new();
    for step in &plan.steps {
        if let Some(old) = &step.old {
            old.inputs.secret_strings(&mut found);
            old.outputs.secret_strings(&mut found);
        }
        if let Some(new) = &step.new_inputs {
            new.secret_strings(&mut found);
        }
    }
    for value in plan.outputs.values().chain(plan.old_outputs.values()) {
        value.secret_strings(&mut found);
    }
    register_secrets(found);
}

/// `text` with every known secret masked.
pub fn redact(text: &str) -> String {
    let Ok(list) = secrets().read() else { return text.to_string() };
    let mut out = text.to_string();
    for secret in list.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), SECRET_MASK);
        }
    }
    out
}

/// Where and how to print.
#[derive(Clone, Copy, Debug)]
pub struct Printer {
    pub style: Style,
    pub stdout_tty: bool,
    pub stdin_tty: bool,
}

impl Printer {
    pub fn new(choice: ColorChoice) -> Printer {
        let stdout_tty = std::io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) || std::env::var("TERM").is_ok_and(|t| t == "dumb");
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => stdout_tty && !no_color,
        };
        Printer { style: Style { color }, stdout_tty, stdin_tty: std::io::stdin().is_terminal() }
    }

    /// Prints to stdout, secrets masked.
    pub fn out(&self, text: &str) {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(redact(text).as_bytes());
        let _ = stdout.flush();
    }

    /// Prints to stdout exactly as given (for `--show-secrets`).
    pub fn out_revealed(&self, text: &str) {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }

    /// Prints to stderr, secrets masked.
    pub fn err(&self, text: &str) {
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(redact(text).as_bytes());
        let _ = stderr.flush();
    }

    /// Prints JSON to stdout, secrets masked.
    pub fn json(&self, value: &serde_json::Value) {
        let text = serde_json::to_string_pretty(value).unwrap_or_default();
        self.out(&format!("{text}\n"));
    }

    /// Asks on the terminal; true only for "yes".
    pub fn confirm(&self, question: &str) -> bool {
        self.out(&format!("{question}\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: "));
        let mut answer = String::new();
        if std::io::stdin().read_line(&mut answer).is_err() {
            return false;
        }
        answer.trim() == "yes"
    }
}

/// A log writer that scrubs secrets (for `-v` and `RUST_LOG`).
pub struct RedactingWriter;

impl Write for RedactingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingWriter {
    type Writer = RedactingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter
    }
}

/// `json` as a YAML document (block style, no `---` header).
pub fn yaml_text(json: &serde_json::Value) -> String {
    use yaml_rust2::{Yaml, YamlEmitter};
    fn to_yaml(v: &serde_json::Value) -> Yaml {
        match v {
            serde_json::Value::Null => Yaml::Null,
            serde_json::Value::Bool(b) => Yaml::Boolean(*b),
            serde_json::Value::Number(n) => n.as_i64().map(Yaml::Integer).unwrap_or_else(|| Yaml::Real(n.to_string())),
            serde_json::Value::String(s) => Yaml::String(s.clone()),
            serde_json::Value::Array(items) => Yaml::Array(items.iter().map(to_yaml).collect()),
            serde_json::Value::Object(map) => Yaml::Hash(map.iter().map(|(k, v)| (Yaml::String(k.clone()), to_yaml(v))).collect()),
        }
    }
    let mut text = String::new();
    let mut emitter = YamlEmitter::new(&mut text);
    emitter.multiline_strings(true);
    let _ = emitter.dump(&to_yaml(json));
    let mut body = text.strip_prefix("---\n").unwrap_or(&text).to_string();
    body.push('\n');
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_registered_secrets_longest_first() {
        register_secrets(["hunter2-long-secret".to_string(), "hunter22".to_string(), "edxapp".to_string()]);
        assert_eq!(redact("api said: bad password hunter2-long-secret (hunter22)"), "api said: bad password [secret] ([secret])");
        assert_eq!(redact("edxapp stays: too short to scrub safely"), "edxapp stays: too short to scrub safely");
    }
}
