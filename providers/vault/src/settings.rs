//! `providers.vault` in a stack file, with the Vault CLI's environment variables as defaults.
//!
//! ```yaml
//! providers:
//!   vault:
//!     address: https://vault.example.org:8200   # default: VAULT_ADDR
//!     token: {secure: v1:...}                     # default: VAULT_TOKEN, then ~/.vault-token
//!     namespace: admin/mitx                       # default: VAULT_NAMESPACE
//!     ca_cert_file: certs/vault-ca.pem            # default: VAULT_CACERT; relative to the project
//!     skip_tls_verify: false                      # default: VAULT_SKIP_VERIFY; never on unless asked
//!     request_timeout: 30s                        # per HTTP request
//! ```

use std::path::{Path as FsPath, PathBuf};
use std::time::Duration;

use berth_engine::Secret;
use berth_engine::config::{ConfigError, Node};
use serde::Deserialize;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};

use crate::common::Ttl;

/// Per-request limit when the stack file sets none.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The `providers.vault` section.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSettings {
    /// Vault's URL, `https://host:8200`. Default: `VAULT_ADDR`.
    #[serde(default)]
    pub address: Option<String>,
    /// The token berth acts with. Default: `VAULT_TOKEN`, then the file `~/.vault-token` that
    /// `vault login` / `bao login` write.
    #[serde(default)]
    pub token: Option<Secret<String>>,
    /// Vault Enterprise / OpenBao namespace every request goes to. Default: `VAULT_NAMESPACE`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// PEM file with the CA certificates to trust for an `https` address, relative to the
    /// project root. Default: `VAULT_CACERT`. The system's roots are trusted as well.
    #[serde(default)]
    pub ca_cert_file: Option<String>,
    /// Accept any server certificate. Only for throwaway test servers. Default:
    /// `VAULT_SKIP_VERIFY`, else false.
    #[serde(default)]
    pub skip_tls_verify: Option<bool>,
    /// Time limit of one HTTP request (`30s`, `2m`). Default 30 seconds.
    #[serde(default)]
    pub request_timeout: Option<Ttl>,
}

/// Where the process environment comes from (tests pass their own).
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
    fn home(&self) -> Option<PathBuf>;
}

/// The real process environment.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }

    fn home(&self) -> Option<PathBuf> {
        std::env::var_os("HOME").map(PathBuf::from)
    }
}

/// Everything the client needs, resolved from settings and environment.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub address: Option<url::Url>,
    pub token: Option<Secret<String>>,
    pub namespace: Option<String>,
    pub ca_certs: Vec<String>,
    pub verify: bool,
    pub timeout: Duration,
}

fn key_error(node: Option<&Node>, key: &str, message: String) -> ConfigError {
    let located = node.and_then(|n| n.get(key)).or(node);
    let error = ConfigError::new(message).with_key(format!("providers.vault.{key}"));
    match located {
        Some(n) => error.at(&n.source),
        None => error,
    }
}

fn truthy(text: &str) -> bool {
    matches!(text.to_ascii_lowercase().as_str(), "1" | "t" | "true" | "yes")
}

/// Parses and checks an address: `http(s)://host[:port]`, no path (the API lives at `/v1`).
pub fn parse_address(text: &str) -> Result<url::Url, String> {
    let url =
        url::Url::parse(text.trim()).map_err(|e| format!("`{text}` is not a URL ({e}); write it like https://vault.example.org:8200"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{text}` must start with https:// (or http:// for a local dev server)"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{text}` has no host"));
    }
    if url.path() != "/" && !url.path().is_empty() || url.query().is_some() {
        return Err(format!("`{text}` has a path or query; give only scheme, host and port (berth adds /v1/...)"));
    }
    Ok(url)
}

impl VaultSettings {
    /// Fills in what the stack file leaves out from the environment, checking every value.
    pub fn resolve(&self, node: Option<&Node>, project_root: &FsPath, env: &dyn Environment) -> Result<Resolved, ConfigError> {
        let address_text = self.address.clone().or_else(|| env.var("VAULT_ADDR"));
        let address = match address_text {
            Some(text) => Some(parse_address(&text).map_err(|e| {
                let from = if self.address.is_some() { "" } else { " (from VAULT_ADDR)" };
                key_error(node, "address", format!("{e}{from}"))
            })?),
            None => None,
        };
        let token = match &self.token {
            Some(t) if !t.expose().is_empty() => Some(t.clone()),
            _ => env.var("VAULT_TOKEN").map(Secret::new).or_else(|| {
                let file = env.home()?.join(".vault-token");
                let text = std::fs::read_to_string(file).ok()?;
                let token = text.trim().to_string();
                (!token.is_empty()).then(|| Secret::new(token))
            }),
        };
        let namespace = self.namespace.clone().or_else(|| env.var("VAULT_NAMESPACE")).map(|n| n.trim_matches('/').to_string());
        if let Some(ns) = &namespace
            && (ns.is_empty() || ns.split('/').any(str::is_empty) || ns.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(key_error(node, "namespace", format!("`{ns}` is not a namespace path (like `admin` or `admin/mitx`)")));
        }
        let mut ca_certs = Vec::new();
        let ca = match &self.ca_cert_file {
            Some(file) => Some((project_root.join(file), "")),
            None => env.var("VAULT_CACERT").map(|f| (PathBuf::from(f), " (from VAULT_CACERT)")),
        };
        if let Some((file, from)) = ca {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| key_error(node, "ca_cert_file", format!("cannot read {}{from}: {e}", file.display())))?;
            if !text.contains("-----BEGIN CERTIFICATE-----") {
                return Err(key_error(node, "ca_cert_file", format!("{}{from} holds no PEM certificate", file.display())));
            }
            ca_certs.push(file.display().to_string());
        }
        let verify = !self.skip_tls_verify.unwrap_or_else(|| env.var("VAULT_SKIP_VERIFY").is_some_and(|v| truthy(&v)));
        let timeout = match &self.request_timeout {
            Some(ttl) => {
                let seconds = ttl.seconds().map_err(|e| key_error(node, "request_timeout", e))?;
                if seconds == 0 {
                    return Err(key_error(node, "request_timeout", "must be at least one second".into()));
                }
                Duration::from_secs(seconds)
            }
            None => DEFAULT_REQUEST_TIMEOUT,
        };
        Ok(Resolved { address, token, namespace, ca_certs, verify, timeout })
    }
}

impl Resolved {
    /// The vaultrs client, or why there is none yet (reported on the first API call, so a
    /// preview that calls no API works without Vault settings).
    pub fn client(&self, node: Option<&Node>) -> Result<Result<VaultClient, String>, ConfigError> {
        let Some(address) = &self.address else {
            return Ok(Err("no Vault address: set VAULT_ADDR, or providers.vault.address in the stack file".into()));
        };
        let Some(token) = &self.token else {
            return Ok(Err(
                "no Vault token: set VAULT_TOKEN, providers.vault.token in the stack file (`berth config set --secret`), or log in with `vault login` / `bao login`".into(),
            ));
        };
        let mut builder = VaultClientSettingsBuilder::default();
        builder
            .address(address.as_str())
            .token(token.expose().as_str())
            .ca_certs(self.ca_certs.clone())
            .verify(self.verify)
            .timeout(Some(self.timeout))
            .namespace(self.namespace.clone());
        let settings = builder.build().map_err(|e| key_error(node, "address", format!("invalid Vault client settings: {e}")))?;
        let client =
            VaultClient::new(settings).map_err(|e| key_error(node, "ca_cert_file", format!("cannot set up the Vault client: {e}")))?;
        Ok(Ok(client))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct FakeEnv(HashMap<&'static str, String>, Option<PathBuf>);

    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
        fn home(&self) -> Option<PathBuf> {
            self.1.clone()
        }
    }

    fn parse(yaml: &str) -> (VaultSettings, Node) {
        let root = berth_engine::config::parse_yaml("stacks/dev.yaml", yaml).unwrap();
        let node = root.get("vault").unwrap().clone();
        let settings: VaultSettings = berth_engine::config::from_node(&node, "providers.vault").unwrap().0;
        (settings, node)
    }

    #[test]
    fn stack_file_wins_over_environment() {
        let (settings, node) =
            parse("vault:\n  address: https://vault.example.org:8200\n  namespace: /admin/mitx/\n  request_timeout: 2m\n");
        let env = FakeEnv(
            [("VAULT_ADDR", "http://127.0.0.1:8200".to_string()), ("VAULT_TOKEN", "t0k3n".to_string()), ("VAULT_SKIP_VERIFY", "1".into())]
                .into(),
            None,
        );
        let r = settings.resolve(Some(&node), FsPath::new("/p"), &env).unwrap();
        assert_eq!(r.address.as_ref().map(|u| u.as_str()), Some("https://vault.example.org:8200/"));
        assert_eq!(r.token.as_ref().map(|t| t.expose().as_str()), Some("t0k3n"));
        assert_eq!(r.namespace.as_deref(), Some("admin/mitx"));
        assert!(!r.verify, "VAULT_SKIP_VERIFY=1 is honoured when the stack file says nothing");
        assert_eq!(r.timeout, Duration::from_secs(120));
        assert!(r.client(Some(&node)).unwrap().is_ok(), "building a client calls no API");
    }

    #[test]
    fn token_file_is_the_last_resort_and_missing_values_wait_for_the_first_call() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join(".vault-token"), "s.file-token\n").unwrap();
        let env = FakeEnv(HashMap::new(), Some(home.path().to_path_buf()));
        let r = VaultSettings::default().resolve(None, FsPath::new("/p"), &env).unwrap();
        assert_eq!(r.token.as_ref().map(|t| t.expose().as_str()), Some("s.file-token"));
        assert!(r.verify);
        let why = r.client(None).unwrap().err().unwrap();
        assert!(why.contains("VAULT_ADDR"), "{why}");
        let no_token = FakeEnv([("VAULT_ADDR", "http://127.0.0.1:1".to_string())].into(), None);
        let why = VaultSettings::default().resolve(None, FsPath::new("/p"), &no_token).unwrap().client(None).unwrap().err().unwrap();
        assert!(why.contains("VAULT_TOKEN"), "{why}");
    }

    #[test]
    fn bad_values_name_file_line_and_key() {
        let env = FakeEnv(HashMap::new(), None);
        let (settings, node) = parse("vault:\n  address: vault.example.org\n");
        let e = settings.resolve(Some(&node), FsPath::new("/p"), &env).unwrap_err().to_string();
        assert!(e.starts_with("stacks/dev.yaml:2:") && e.contains("providers.vault.address") && e.contains("https://"), "{e}");
        let (settings, node) = parse("vault:\n  address: https://v:8200/ui\n");
        assert!(settings.resolve(Some(&node), FsPath::new("/p"), &env).unwrap_err().to_string().contains("path"));
        let (settings, node) = parse("vault:\n  ca_cert_file: nope.pem\n");
        let e = settings.resolve(Some(&node), FsPath::new("/nonexistent"), &env).unwrap_err().to_string();
        assert!(e.contains("providers.vault.ca_cert_file") && e.contains("/nonexistent/nope.pem"), "{e}");
        let (settings, node) = parse("vault:\n  request_timeout: soon\n");
        assert!(settings.resolve(Some(&node), FsPath::new("/p"), &env).unwrap_err().to_string().contains("request_timeout"));
        let root = berth_engine::config::parse_yaml("stacks/dev.yaml", "vault:\n  adress: x\n").unwrap();
        let e = berth_engine::config::from_node::<VaultSettings>(root.get("vault").unwrap(), "providers.vault").unwrap_err();
        assert!(e.to_string().contains("adress"), "{e}");
    }
}
