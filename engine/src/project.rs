//! A berth project on disk: `stacks/<stack>.yaml` (with tier defaults in
//! `stacks/tiers/<tier>.yaml`), `state/`, and the settings each stack file holds.
//!
//! ```yaml
//! # stacks/mitxonline.qa.yaml
//! program: edxapp            # the stack program to run
//! tier: qa                   # merges stacks/tiers/qa.yaml underneath
//! backend: local             # state/ (default), file:///path, or s3://bucket/prefix
//! encryptionsalt: v1:...     # written by `berth config set --secret`
//! providers:                 # per-provider settings
//!   aws: {region: us-east-1}
//! config:                    # the program's typed configuration
//!   edxapp:
//!     db_instance_type: db.t3.medium
//!     db_password: {secure: v1:...}
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::{self, ConfigError, Node, NodeKind, Source};
use crate::crypto::{Keyring, SecretsInfo};

/// The project's directories.
#[derive(Clone, Debug)]
pub struct Project {
    pub root: PathBuf,
}

/// Prefix of environment variables that override configuration keys:
/// `BERTH_CONFIG__EDXAPP__DB_INSTANCE_TYPE=db.t3.large` sets `edxapp.db_instance_type`.
pub const CONFIG_ENV_PREFIX: &str = "BERTH_CONFIG__";

const TOP_LEVEL_KEYS: &[&str] = &["program", "tier", "backend", "secrets", "encryptionsalt", "providers", "config"];
const TIER_KEYS: &[&str] = &["backend", "secrets", "providers", "config"];

impl Project {
    /// The project containing `start` (the nearest directory upwards with a `stacks/` folder).
    pub fn discover(start: &Path) -> Option<Project> {
        start.ancestors().find(|dir| dir.join("stacks").is_dir()).map(|dir| Project { root: dir.to_path_buf() })
    }

    pub fn at(root: impl Into<PathBuf>) -> Project {
        Project { root: root.into() }
    }

    pub fn stacks_dir(&self) -> PathBuf {
        self.root.join("stacks")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    pub fn stack_file(&self, stack: &str) -> PathBuf {
        self.stacks_dir().join(format!("{stack}.yaml"))
    }

    /// Paths relative to the project root read better in messages.
    pub fn display(&self, path: &Path) -> String {
        path.strip_prefix(&self.root).unwrap_or(path).display().to_string()
    }

    /// Stacks with a file in `stacks/` (tier files excluded).
    pub fn stacks(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.stacks_dir())
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".yaml")).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Reads `stacks/<stack>.yaml`, merges its tier underneath, applies environment and
    /// command-line overrides (in that order), and decrypts secure values.
    pub fn load_stack(&self, stack: &str, overrides: &[(String, String)], keyring: &Keyring) -> Result<StackSettings, ConfigError> {
        let path = self.stack_file(stack);
        let shown = self.display(&path);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            let known = self.stacks();
            ConfigError::new(format!("cannot read stack file: {e}")).with_key(shown.clone()).with_help(if known.is_empty() {
                format!("create {shown}; stack files live in {}", self.display(&self.stacks_dir()))
            } else {
                format!("known stacks: {}", known.join(", "))
            })
        })?;
        let root = config::parse_yaml(&shown, &text)?;
        check_keys(&root, TOP_LEVEL_KEYS, "")?;
        let tier = string_at(&root, "tier")?;
        let mut merged = match &tier {
            Some(tier_name) => {
                let tier_path = self.stacks_dir().join("tiers").join(format!("{tier_name}.yaml"));
                let tier_shown = self.display(&tier_path);
                let tier_text = std::fs::read_to_string(&tier_path).map_err(|e| {
                    let at = root.get("tier").map(|n| n.source.clone());
                    let mut err = ConfigError::new(format!("tier `{tier_name}`: cannot read {tier_shown}: {e}")).with_key("tier");
                    if let Some(at) = at {
                        err = err.at(&at);
                    }
                    err
                })?;
                let tier_root = config::parse_yaml(&tier_shown, &tier_text)?;
                check_keys(&tier_root, TIER_KEYS, "")?;
                config::merge(tier_root, root.clone())
            }
            None => root.clone(),
        };
        let mut env_overrides: Vec<(String, String)> = std::env::vars()
            .filter_map(|(k, v)| k.strip_prefix(CONFIG_ENV_PREFIX).map(|rest| (rest.to_lowercase().replace("__", "."), v)))
            .collect();
        env_overrides.sort();
        for (key, value) in &env_overrides {
            let var = format!("{CONFIG_ENV_PREFIX}{}", key.to_uppercase().replace('.', "__"));
            config::set_override(&mut merged, &format!("config.{key}"), value, Source::new(&format!("env {var}"), 1, 1))?;
        }
        for (i, (key, value)) in overrides.iter().enumerate() {
            config::set_override(&mut merged, &format!("config.{key}"), value, Source::new("--config", i + 1, 1))?;
        }
        let encryption = match string_at(&root, "encryptionsalt")? {
            Some(text) => Some(SecretsInfo::from_encryption_salt(&text).map_err(|e| {
                let mut err = ConfigError::new(e.to_string()).with_key("encryptionsalt");
                if let Some(n) = root.get("encryptionsalt") {
                    err = err.at(&n.source);
                }
                err
            })?),
            None => None,
        };
        let mut decrypt_error = None;
        let mut decrypt = |ciphertext: &str| -> Result<String, String> {
            let info = encryption.as_ref().ok_or_else(|| "the stack file has secure values but no `encryptionsalt`".to_string())?;
            let cipher = keyring.open(info, &format!("secrets of {shown}")).map_err(|e| {
                decrypt_error = Some(e.to_string());
                e.to_string()
            })?;
            let bytes = cipher.decrypt(ciphertext).map_err(|e| e.to_string())?;
            String::from_utf8(bytes).map_err(|e| e.to_string())
        };
        config::decrypt_secure(&mut merged, &mut decrypt)?;
        let providers = match merged.get("providers") {
            Some(node) => match &node.kind {
                NodeKind::Map(entries) => entries.iter().map(|(k, v)| (k.name.clone(), v.clone())).collect(),
                NodeKind::Null => BTreeMap::new(),
                _ => {
                    return Err(ConfigError::new(format!("expected a map of provider settings, found {}", node.describe()))
                        .at(&node.source)
                        .with_key("providers"));
                }
            },
            None => BTreeMap::new(),
        };
        let config = merged.get("config").cloned().unwrap_or_else(|| Node::empty_map(Source::new(&shown, 1, 1)));
        Ok(StackSettings {
            name: stack.to_string(),
            file: path,
            program: string_at(&merged, "program")?,
            tier,
            backend: string_at(&merged, "backend")?,
            secrets: string_at(&merged, "secrets")?,
            encryption,
            providers,
            config,
        })
    }
}

/// One stack's settings, merged and decrypted.
#[derive(Clone, Debug)]
pub struct StackSettings {
    pub name: String,
    pub file: PathBuf,
    pub program: Option<String>,
    pub tier: Option<String>,
    pub backend: Option<String>,
    pub secrets: Option<String>,
    /// The stack file's `encryptionsalt`.
    pub encryption: Option<SecretsInfo>,
    /// `providers.<package>` sections.
    pub providers: BTreeMap<String, Node>,
    /// The `config:` section.
    pub config: Node,
}

impl StackSettings {
    /// Every secret string in the configuration (to scrub from output).
    pub fn secret_strings(&self) -> Vec<String> {
        fn walk(node: &Node, inside: bool, out: &mut Vec<String>) {
            match &node.kind {
                NodeKind::Secret(inner) => walk(inner, true, out),
                NodeKind::String(s) if inside => out.push(s.clone()),
                NodeKind::Integer(i) if inside => out.push(i.to_string()),
                NodeKind::Seq(items) => items.iter().for_each(|n| walk(n, inside, out)),
                NodeKind::Map(entries) => entries.iter().for_each(|(_, n)| walk(n, inside, out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(&self.config, false, &mut out);
        for node in self.providers.values() {
            walk(node, false, &mut out);
        }
        out
    }
}

fn check_keys(root: &Node, allowed: &[&str], prefix: &str) -> Result<(), ConfigError> {
    match &root.kind {
        NodeKind::Map(entries) => {
            for (key, _) in entries {
                if !allowed.contains(&key.name.as_str()) {
                    return Err(ConfigError::new(format!("unknown key `{}`; expected one of: {}", key.name, allowed.join(", ")))
                        .at(&key.source)
                        .with_key(format!("{prefix}{}", key.name))
                        .with_help("program configuration goes under `config:`"));
                }
            }
            Ok(())
        }
        NodeKind::Null => Ok(()),
        _ => Err(ConfigError::new(format!("a stack file is a map of settings, found {}", root.describe())).at(&root.source)),
    }
}

fn string_at(root: &Node, key: &str) -> Result<Option<String>, ConfigError> {
    match root.get(key) {
        None => Ok(None),
        Some(node) => match &node.kind {
            NodeKind::String(s) => Ok(Some(s.clone())),
            NodeKind::Null => Ok(None),
            _ => Err(ConfigError::new(format!("expected a string, found {}", node.describe())).at(&node.source).with_key(key)),
        },
    }
}
