//! `vault:auth:Backend`: an auth method enabled at a path, with the kubernetes method's config
//! (the cluster's API address and CA, and the reviewer token Vault checks pods' tokens with).
//!
//! Description and TTLs are tuned in place and the kubernetes config is rewritten in place. A new
//! path or method replaces the backend, which removes its roles and logs out every token it issued.

use std::sync::Arc;

use berth_engine::{
    CallContext, CheckFailure, Created, Input, Path, ProviderError, Resource, ResourceProvider, Secret, TypedCreated, TypedObserved, Value,
    async_trait,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::client::VaultApi;
use crate::common::{Ttl, already_exists, check_path, field, json_bool, json_str, json_strings, json_u64, known, undo_create};

/// `vault:auth:Backend`.
///
/// ```
/// use berth_provider_vault::{AuthBackend, KubernetesAuthConfig};
/// let backend = AuthBackend {
///     kubernetes: Some(KubernetesAuthConfig::new("https://10.0.0.1:443")),
///     ..AuthBackend::new("kubernetes-mitx-qa", "kubernetes")
/// };
/// assert_eq!(backend.method, "kubernetes");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthBackend {
    /// Where the method is enabled (`kubernetes`, `kubernetes-mitx-qa`); logins go to
    /// `auth/<path>/login`. Changing it replaces the backend.
    pub path: String,
    /// The auth method: `kubernetes` (configured below), or another method Vault has.
    #[serde(rename = "type")]
    pub method: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Lease TTL of the tokens it issues when a role sets none; unset: Vault's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_lease_ttl: Option<Ttl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lease_ttl: Option<Ttl>,
    /// The kubernetes method's config (only for `type: kubernetes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesAuthConfig>,
}

impl AuthBackend {
    pub fn new(path: &str, method: &str) -> AuthBackend {
        AuthBackend {
            path: path.to_string(),
            method: method.to_string(),
            description: String::new(),
            default_lease_ttl: None,
            max_lease_ttl: None,
            kubernetes: None,
        }
    }
}

/// How Vault reaches the cluster whose service-account tokens it accepts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesAuthConfig {
    /// The API server, `https://host:port` (an EKS cluster's endpoint output).
    pub kubernetes_host: Input<String>,
    /// PEM CA of the API server. Needed unless Vault runs in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_ca_cert: Option<Input<String>>,
    /// A service-account token allowed to call TokenReview. Secret. Unset: Vault uses its own
    /// pod's token, or the client's (Vault cannot show it back, so drift is "set or not").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_reviewer_jwt: Option<Input<Secret<String>>>,
    /// The service-account token issuer to require; unset: not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Do not fall back to the CA and token of the pod Vault runs in.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable_local_ca_jwt: bool,
    /// PEM public keys to verify tokens with, instead of TokenReview.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pem_keys: Vec<String>,
}

impl KubernetesAuthConfig {
    pub fn new(host: impl Into<Input<String>>) -> KubernetesAuthConfig {
        KubernetesAuthConfig {
            kubernetes_host: host.into(),
            kubernetes_ca_cert: None,
            token_reviewer_jwt: None,
            issuer: None,
            disable_local_ca_jwt: false,
            pem_keys: Vec::new(),
        }
    }
}

/// What a `vault:auth:Backend` reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuthBackendOutputs {
    /// The path: pass it to roles (`backend`) so they depend on the backend.
    pub path: String,
    /// Vault's accessor (`auth_kubernetes_1a2b3c4d`), for identity aliases.
    pub accessor: String,
    #[serde(rename = "type")]
    pub method: String,
}

impl Resource for AuthBackend {
    const TYPE: &'static str = "vault:auth:Backend";
    type Outputs = AuthBackendOutputs;
}

/// The provider for `vault:auth:Backend`.
pub struct AuthBackendProvider {
    pub api: Arc<VaultApi>,
}

fn sys_path(path: &str) -> String {
    format!("sys/auth/{path}")
}

fn config_path(path: &str) -> String {
    format!("auth/{path}/config")
}

fn ttl_seconds(ttl: &Option<Ttl>) -> u64 {
    ttl.as_ref().and_then(|t| t.seconds().ok()).unwrap_or(0)
}

fn check_kubernetes(config: &KubernetesAuthConfig, failures: &mut Vec<CheckFailure>) {
    if let Some(host) = config.kubernetes_host.known() {
        match url::Url::parse(host) {
            Ok(url) if matches!(url.scheme(), "https" | "http") && url.host_str().is_some() => {}
            _ => failures.push(CheckFailure::field(
                "kubernetes.kubernetes_host",
                format!("`{host}` is not the API server's URL (https://host:port)"),
            )),
        }
    }
    if let Some(Input::Value(ca)) = &config.kubernetes_ca_cert
        && !ca.contains("-----BEGIN CERTIFICATE-----")
    {
        failures.push(CheckFailure::field("kubernetes.kubernetes_ca_cert", "is not a PEM certificate (-----BEGIN CERTIFICATE-----)"));
    }
    if config.disable_local_ca_jwt && config.kubernetes_ca_cert.is_none() && config.pem_keys.is_empty() {
        failures.push(CheckFailure::field(
            "kubernetes.kubernetes_ca_cert",
            "is required when disable_local_ca_jwt is set (Vault then has no other way to trust the API server)",
        ));
    }
    for (i, key) in config.pem_keys.iter().enumerate() {
        if !key.contains("-----BEGIN") {
            failures.push(CheckFailure::field(format!("kubernetes.pem_keys[{i}]"), "is not a PEM public key"));
        }
    }
}

impl AuthBackendProvider {
    async fn fetch(&self, path: &str) -> Result<Option<Json>, ProviderError> {
        match self.api.read(&sys_path(path)).await {
            Ok(found) => Ok(found),
            Err(e) if e.status == Some(400) && e.says("no auth engine") => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn write_config(&self, path: &str, config: &KubernetesAuthConfig) -> Result<(), ProviderError> {
        let mut body = json!({
            "kubernetes_host": known("kubernetes.kubernetes_host", &config.kubernetes_host)?,
            "disable_local_ca_jwt": config.disable_local_ca_jwt,
            "pem_keys": config.pem_keys,
            "issuer": config.issuer.clone().unwrap_or_default(),
        });
        if let Some(ca) = &config.kubernetes_ca_cert {
            body["kubernetes_ca_cert"] = json!(known("kubernetes.kubernetes_ca_cert", ca)?);
        }
        if let Some(jwt) = &config.token_reviewer_jwt {
            body["token_reviewer_jwt"] = json!(known("kubernetes.token_reviewer_jwt", jwt)?.expose());
        }
        self.api.write(&config_path(path), &body).await?;
        Ok(())
    }

    async fn read_config(&self, path: &str, prior: Option<&KubernetesAuthConfig>) -> Result<Option<KubernetesAuthConfig>, ProviderError> {
        let Some(live) = self.api.read(&config_path(path)).await? else { return Ok(None) };
        let ca = json_str(&live, "kubernetes_ca_cert");
        // Vault never shows the reviewer token: keep the recorded one while Vault says one is set.
        let jwt = if json_bool(&live, "token_reviewer_jwt_set") {
            prior.and_then(|p| p.token_reviewer_jwt.clone()).or_else(|| Some(Input::Value(Secret::new(String::new()))))
        } else {
            None
        };
        Ok(Some(KubernetesAuthConfig {
            kubernetes_host: Input::Value(json_str(&live, "kubernetes_host")),
            kubernetes_ca_cert: (!ca.is_empty()).then_some(Input::Value(ca)),
            token_reviewer_jwt: jwt,
            issuer: Some(json_str(&live, "issuer")).filter(|i| !i.is_empty()),
            disable_local_ca_jwt: json_bool(&live, "disable_local_ca_jwt"),
            pem_keys: json_strings(&live, "pem_keys"),
        }))
    }

    async fn outputs(&self, path: &str) -> Result<AuthBackendOutputs, ProviderError> {
        let live = self.fetch(path).await?.ok_or_else(|| ProviderError::not_found(format!("auth backend `{path}` disappeared")))?;
        Ok(AuthBackendOutputs { path: path.to_string(), accessor: json_str(&live, "accessor"), method: json_str(&live, "type") })
    }
}

#[async_trait]
impl ResourceProvider for AuthBackendProvider {
    type Resource = AuthBackend;

    fn replace_on(&self) -> Vec<Path> {
        vec![field("path"), field("type")]
    }

    fn fixed_name(&self) -> Option<Path> {
        Some(field("path"))
    }

    async fn check(&self, _ctx: CallContext<'_>, mut backend: AuthBackend, _seed: &[u8; 32]) -> Result<AuthBackend, Vec<CheckFailure>> {
        let mut failures = Vec::new();
        check_path("path", &backend.path, &mut failures);
        if backend.path == "token" {
            failures.push(CheckFailure::field("path", "`token` is Vault's built-in token method and cannot be managed"));
        }
        if backend.method.is_empty() || !backend.method.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            failures.push(CheckFailure::field("type", format!("`{}` is not an auth method (like `kubernetes`)", backend.method)));
        }
        match (&backend.kubernetes, backend.method.as_str()) {
            (Some(config), "kubernetes") => check_kubernetes(config, &mut failures),
            (Some(_), other) => {
                failures.push(CheckFailure::field("kubernetes", format!("is only for `type: kubernetes`, not `{other}`")));
            }
            _ => {}
        }
        backend.default_lease_ttl = backend.default_lease_ttl.map(|t| t.checked("default_lease_ttl", &mut failures));
        backend.max_lease_ttl = backend.max_lease_ttl.map(|t| t.checked("max_lease_ttl", &mut failures));
        if failures.is_empty() { Ok(backend) } else { Err(failures) }
    }

    async fn create(&self, _ctx: CallContext<'_>, backend: &AuthBackend) -> Result<TypedCreated<AuthBackendOutputs>, ProviderError> {
        let body = json!({
            "type": backend.method,
            "description": backend.description,
            "config": {
                "default_lease_ttl": ttl_seconds(&backend.default_lease_ttl),
                "max_lease_ttl": ttl_seconds(&backend.max_lease_ttl),
            },
        });
        if let Err(e) = self.api.write(&sys_path(&backend.path), &body).await {
            if e.says("already in use") {
                return Err(already_exists("auth backend", &backend.path));
            }
            return Err(e.into());
        }
        // From here on the method is enabled: a failure (a config Vault refuses) undoes it, so
        // the next run starts clean (see `undo_create`).
        let made = |outputs: &AuthBackendOutputs| Created {
            id: backend.path.clone(),
            outputs: serde_json::to_value(outputs).map(Value::from_json).unwrap_or_default(),
        };
        let outputs = match self.outputs(&backend.path).await {
            Ok(outputs) => outputs,
            Err(e) => {
                let guess = AuthBackendOutputs { path: backend.path.clone(), accessor: String::new(), method: backend.method.clone() };
                return Err(undo_create(&self.api, &sys_path(&backend.path), e, made(&guess)).await);
            }
        };
        if let Some(config) = &backend.kubernetes
            && let Err(e) = self.write_config(&backend.path, config).await
        {
            return Err(undo_create(&self.api, &sys_path(&backend.path), e, made(&outputs)).await);
        }
        Ok(TypedCreated { id: backend.path.clone(), outputs })
    }

    async fn read(
        &self,
        _ctx: CallContext<'_>,
        id: &str,
        prior: Option<&AuthBackend>,
        _prior_outputs: Option<&AuthBackendOutputs>,
    ) -> Result<Option<TypedObserved<AuthBackend>>, ProviderError> {
        let path = id.trim_matches('/');
        let Some(live) = self.fetch(path).await? else { return Ok(None) };
        let method = json_str(&live, "type");
        let config = live.get("config").cloned().unwrap_or(Json::Null);
        let ttl = |key: &str| Some(json_u64(&config, key)).filter(|s| *s > 0).map(Ttl::Seconds);
        let kubernetes = if method == "kubernetes" && prior.is_none_or(|p| p.kubernetes.is_some()) {
            self.read_config(path, prior.and_then(|p| p.kubernetes.as_ref())).await?
        } else {
            None
        };
        let inputs = AuthBackend {
            path: path.to_string(),
            method: method.clone(),
            description: json_str(&live, "description"),
            default_lease_ttl: ttl("default_lease_ttl"),
            max_lease_ttl: ttl("max_lease_ttl"),
            kubernetes,
        };
        let outputs = AuthBackendOutputs { path: path.to_string(), accessor: json_str(&live, "accessor"), method };
        Ok(Some(TypedObserved { id: path.to_string(), inputs, outputs }))
    }

    async fn update(
        &self,
        _ctx: CallContext<'_>,
        id: &str,
        old: &AuthBackend,
        new: &AuthBackend,
        _old_outputs: &AuthBackendOutputs,
    ) -> Result<AuthBackendOutputs, ProviderError> {
        if old.description != new.description || old.default_lease_ttl != new.default_lease_ttl || old.max_lease_ttl != new.max_lease_ttl {
            let body = json!({
                "description": new.description,
                "default_lease_ttl": ttl_seconds(&new.default_lease_ttl),
                "max_lease_ttl": ttl_seconds(&new.max_lease_ttl),
            });
            self.api.write(&format!("{}/tune", sys_path(id)), &body).await?;
        }
        match &new.kubernetes {
            Some(config) if old.kubernetes.as_ref() != Some(config) => self.write_config(id, config).await?,
            // Config removed from the program: Vault keeps the last one (there is no "unset");
            // berth stops managing it.
            _ => {}
        }
        self.outputs(id).await
    }

    async fn delete(
        &self,
        _ctx: CallContext<'_>,
        id: &str,
        _inputs: &AuthBackend,
        _outputs: &AuthBackendOutputs,
    ) -> Result<(), ProviderError> {
        self.api.delete(&sys_path(id)).await?;
        Ok(())
    }

    async fn lookup(&self, ctx: CallContext<'_>, backend: &AuthBackend) -> Result<Option<TypedObserved<AuthBackend>>, ProviderError> {
        let found = self.read(ctx, &backend.path, Some(backend), None).await?;
        Ok(found.filter(|f| f.inputs.method == backend.method))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_config_is_checked_before_any_call() {
        let mut f = Vec::new();
        let mut config = KubernetesAuthConfig::new("10.0.0.1:443");
        config.disable_local_ca_jwt = true;
        config.kubernetes_ca_cert = Some(Input::Value("not a cert".into()));
        check_kubernetes(&config, &mut f);
        let fields: Vec<_> = f.iter().filter_map(|x| x.path.clone()).collect();
        assert_eq!(fields, vec!["kubernetes.kubernetes_host", "kubernetes.kubernetes_ca_cert"], "{f:?}");
        f.clear();
        config.kubernetes_ca_cert = None;
        check_kubernetes(&KubernetesAuthConfig { kubernetes_host: Input::Unknown, ..config }, &mut f);
        assert_eq!(f.len(), 1, "an unknown host is not judged; a missing CA is: {f:?}");
    }
}
