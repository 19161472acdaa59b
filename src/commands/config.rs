//! `berth config set|get`.

use std::io::Read;

use berth_engine::config::{Node, NodeKind, parse_yaml, set_in_yaml_text};
use berth_engine::crypto::{Keyring, SecretsInfo};

use crate::context::{Context, validate_stack_name};
use crate::error::CliError;
use crate::output::register_secrets;

fn node_json(node: &Node, reveal: bool) -> serde_json::Value {
    match &node.kind {
        NodeKind::Null => serde_json::Value::Null,
        NodeKind::Bool(b) => serde_json::json!(b),
        NodeKind::Integer(i) => serde_json::json!(i),
        NodeKind::Float(f) => serde_json::json!(f),
        NodeKind::String(s) => serde_json::json!(s),
        NodeKind::Seq(items) => serde_json::Value::Array(items.iter().map(|n| node_json(n, reveal)).collect()),
        NodeKind::Map(entries) => serde_json::Value::Object(entries.iter().map(|(k, v)| (k.name.clone(), node_json(v, reveal))).collect()),
        NodeKind::Secret(inner) if reveal => node_json(inner, reveal),
        NodeKind::Secret(_) | NodeKind::Secure(_) => serde_json::json!(berth_engine::value::SECRET_MASK),
    }
}

fn write_atomically(path: &std::path::Path, text: &str) -> Result<(), CliError> {
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))
}

pub async fn set(ctx: &Context<'_>, stack: &str, key: &str, value: Option<&str>, secret: bool) -> Result<u8, CliError> {
    validate_stack_name(stack)?;
    let path = ctx.project.stack_file(stack);
    let shown = ctx.project.display(&path);
    let mut text = std::fs::read_to_string(&path)
        .map_err(|e| CliError::new(format!("cannot read {shown}: {e}")).help(format!("create {shown} first")))?;
    let value = match value {
        Some(v) => v.to_string(),
        None if secret => {
            if ctx.printer.stdin_tty {
                ctx.printer.err("Value (end with Ctrl-D): ");
            }
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .map_err(|e| CliError::new(format!("cannot read the value from standard input: {e}")))?;
            input.trim_end_matches(['\n', '\r']).to_string()
        }
        None => return Err(CliError::new("a value is required (only --secret reads it from standard input)")),
    };
    let yaml_value = if secret {
        let keyring = Keyring::from_env();
        if !keyring.has_passphrase() {
            return Err(CliError::new("encrypting a secret needs a passphrase")
                .help("export BERTH_PASSPHRASE=... (the same one every time for this stack)"));
        }
        let root = parse_yaml(&shown, &text)?;
        let existing = match root.get("encryptionsalt").map(|n| &n.kind) {
            Some(NodeKind::String(s)) => {
                Some(SecretsInfo::from_encryption_salt(s).map_err(|e| CliError::new(format!("{shown}: encryptionsalt: {e}")))?)
            }
            _ => None,
        };
        let cipher = match &existing {
            Some(info) => keyring.open(info, &format!("secrets of {shown}")).map_err(|e| CliError::new(e.to_string()))?,
            None => {
                let cipher = keyring.create(&format!("secrets of {shown}")).map_err(|e| CliError::new(e.to_string()))?;
                text = set_in_yaml_text(&shown, &text, "encryptionsalt", &cipher.info().to_encryption_salt())?;
                cipher
            }
        };
        register_secrets([value.clone()]);
        // Encrypt the YAML form of a string, so `0123` stays the string "0123".
        let plaintext = serde_json::to_string(&value).unwrap_or_default();
        format!("{{secure: {}}}", cipher.encrypt(plaintext.as_bytes()))
    } else {
        value.clone()
    };
    let updated = set_in_yaml_text(&shown, &text, &format!("config.{key}"), &yaml_value)?;
    write_atomically(&path, &updated)?;
    ctx.printer.out(&format!("Set config.{key} in {shown}{}.\n", if secret { " (encrypted)" } else { "" }));
    Ok(0)
}

pub async fn get(ctx: &Context<'_>, stack: &str, key: &str, show_secrets: bool) -> Result<u8, CliError> {
    let settings = ctx.settings(stack, &[])?;
    let node = settings.config.get_path(key).ok_or_else(|| CliError::new(format!("config key `{key}` is not set for stack `{stack}`")))?;
    let value = node_json(node, show_secrets);
    let text = match &value {
        serde_json::Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    };
    if show_secrets {
        ctx.printer.out_revealed(&format!("{text}\n"));
    } else {
        register_secrets(settings.secret_strings());
        ctx.printer.out(&format!("{text}\n"));
    }
    Ok(0)
}
