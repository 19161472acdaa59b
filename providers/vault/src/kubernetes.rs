//! `vault:kubernetes:AuthRole`: which service accounts may log in through a kubernetes auth
//! backend, and the policies and TTLs of the tokens they get.
//!
//! Every field but the backend and the name is updated in place (the whole role is written
//! again, so a field removed from the program is cleared in Vault too).

use std::sync::Arc;

use berth_engine::{
    CallContext, CheckFailure, Input, Path, ProviderError, Resource, ResourceProvider, TypedCreated, TypedObserved, async_trait,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::client::VaultApi;
use crate::common::{
    Ttl, already_exists, check_name, check_path, check_policy_names, field, json_str, json_strings, json_u64, known, known_all,
};

/// The auth backend path a role uses when none is given.
pub const DEFAULT_BACKEND: &str = "kubernetes";

fn default_backend() -> Input<String> {
    Input::Value(DEFAULT_BACKEND.to_string())
}

/// `vault:kubernetes:AuthRole`.
///
/// ```
/// use berth_provider_vault::{KubernetesAuthRole, Ttl};
/// let role = KubernetesAuthRole {
///     bound_service_account_names: vec!["*".into()],
///     bound_service_account_namespaces: vec!["mitx-openedx".into()],
///     token_policies: vec!["edxapp-mitx".into()],
///     token_ttl: Some(Ttl::hours(1)),
///     ..KubernetesAuthRole::new("kubernetes", "mitx-edxapp")
/// };
/// assert_eq!(role.name, "mitx-edxapp");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesAuthRole {
    /// The kubernetes auth backend's path; pass the backend's `path` output so the role depends
    /// on it. Default `kubernetes`.
    #[serde(default = "default_backend")]
    pub backend: Input<String>,
    /// The role's name, used at login. Changing it replaces the role.
    pub name: String,
    /// Service account names allowed to log in (`*` for any).
    pub bound_service_account_names: Vec<String>,
    /// Namespaces those service accounts live in (`*` for any).
    pub bound_service_account_namespaces: Vec<String>,
    /// Policies of the tokens issued (lower case); may be policies' `name` outputs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_policies: Vec<Input<String>>,
    /// Lifetime of an issued token; unset: the backend's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ttl: Option<Ttl>,
    /// Longest a token can be renewed to; unset: the backend's maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_max_ttl: Option<Ttl>,
    /// The audience (`aud` claim) a service-account token must carry; unset: not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// What names the identity alias: `serviceaccount_uid` (Vault's default) or
    /// `serviceaccount_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias_name_source: Option<String>,
}

impl KubernetesAuthRole {
    pub fn new(backend: impl Into<Input<String>>, name: &str) -> KubernetesAuthRole {
        KubernetesAuthRole {
            backend: backend.into(),
            name: name.to_string(),
            bound_service_account_names: Vec::new(),
            bound_service_account_namespaces: Vec::new(),
            token_policies: Vec::new(),
            token_ttl: None,
            token_max_ttl: None,
            audience: None,
            alias_name_source: None,
        }
    }
}

/// What a `vault:kubernetes:AuthRole` reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KubernetesAuthRoleOutputs {
    pub backend: String,
    pub name: String,
    /// Where pods log in: `auth/<backend>/login` with `role: <name>`.
    pub login_path: String,
}

impl Resource for KubernetesAuthRole {
    const TYPE: &'static str = "vault:kubernetes:AuthRole";
    type Outputs = KubernetesAuthRoleOutputs;
}

/// The provider for `vault:kubernetes:AuthRole`.
pub struct KubernetesAuthRoleProvider {
    pub api: Arc<VaultApi>,
}

fn role_path(backend: &str, name: &str) -> String {
    format!("auth/{backend}/role/{name}")
}

/// `auth/<backend>/role/<name>` → (backend, name).
fn parse_id(id: &str) -> Result<(String, String), ProviderError> {
    let rest = id.trim_matches('/').strip_prefix("auth/").unwrap_or(id);
    match rest.rsplit_once("/role/") {
        Some((backend, name)) if !backend.is_empty() && !name.is_empty() => Ok((backend.to_string(), name.to_string())),
        _ => Err(ProviderError::other(format!("`{id}` is not a kubernetes auth role id; write auth/<backend>/role/<name>"))),
    }
}

fn ttl_seconds(ttl: &Option<Ttl>) -> u64 {
    ttl.as_ref().and_then(|t| t.seconds().ok()).unwrap_or(0)
}

impl KubernetesAuthRoleProvider {
    async fn fetch(&self, backend: &str, name: &str) -> Result<Option<Json>, ProviderError> {
        Ok(self.api.read(&role_path(backend, name)).await?)
    }

    async fn write(&self, role: &KubernetesAuthRole) -> Result<KubernetesAuthRoleOutputs, ProviderError> {
        let backend = known("backend", &role.backend)?;
        let body = json!({
            "bound_service_account_names": role.bound_service_account_names,
            "bound_service_account_namespaces": role.bound_service_account_namespaces,
            "token_policies": known_all("token_policies", &role.token_policies)?,
            "token_ttl": ttl_seconds(&role.token_ttl),
            "token_max_ttl": ttl_seconds(&role.token_max_ttl),
            "audience": role.audience.clone().unwrap_or_default(),
            "alias_name_source": role.alias_name_source.clone().unwrap_or_else(|| "serviceaccount_uid".into()),
        });
        self.api.write(&role_path(backend, &role.name), &body).await?;
        Ok(outputs(backend, &role.name))
    }
}

fn outputs(backend: &str, name: &str) -> KubernetesAuthRoleOutputs {
    KubernetesAuthRoleOutputs { backend: backend.to_string(), name: name.to_string(), login_path: format!("auth/{backend}/login") }
}

#[async_trait]
impl ResourceProvider for KubernetesAuthRoleProvider {
    type Resource = KubernetesAuthRole;

    fn replace_on(&self) -> Vec<Path> {
        vec![field("backend"), field("name")]
    }

    fn fixed_name(&self) -> Option<Path> {
        Some(field("name"))
    }

    async fn check(
        &self,
        _ctx: CallContext<'_>,
        mut role: KubernetesAuthRole,
        _seed: &[u8; 32],
    ) -> Result<KubernetesAuthRole, Vec<CheckFailure>> {
        let mut failures = Vec::new();
        if let Some(backend) = role.backend.known() {
            check_path("backend", backend, &mut failures);
        }
        check_name("name", &role.name, &mut failures);
        for (list, values) in [
            ("bound_service_account_names", &role.bound_service_account_names),
            ("bound_service_account_namespaces", &role.bound_service_account_namespaces),
        ] {
            if values.is_empty() {
                failures.push(CheckFailure::field(list, "must list at least one (use \"*\" for any)"));
            }
            if values.iter().any(|v| v.trim().is_empty()) {
                failures.push(CheckFailure::field(list, "has an empty entry"));
            }
        }
        check_policy_names("token_policies", &role.token_policies, &mut failures);
        role.token_ttl = role.token_ttl.map(|t| t.checked("token_ttl", &mut failures));
        role.token_max_ttl = role.token_max_ttl.map(|t| t.checked("token_max_ttl", &mut failures));
        let (ttl, max) = (ttl_seconds(&role.token_ttl), ttl_seconds(&role.token_max_ttl));
        if ttl > 0 && max > 0 && ttl > max {
            failures.push(CheckFailure::field("token_ttl", format!("{ttl}s is longer than token_max_ttl ({max}s)")));
        }
        if let Some(source) = &role.alias_name_source
            && source != "serviceaccount_uid"
            && source != "serviceaccount_name"
        {
            failures
                .push(CheckFailure::field("alias_name_source", format!("is serviceaccount_uid or serviceaccount_name, not `{source}`")));
        }
        if failures.is_empty() { Ok(role) } else { Err(failures) }
    }

    async fn create(
        &self,
        _ctx: CallContext<'_>,
        role: &KubernetesAuthRole,
    ) -> Result<TypedCreated<KubernetesAuthRoleOutputs>, ProviderError> {
        let backend = known("backend", &role.backend)?;
        if self.fetch(backend, &role.name).await?.is_some() {
            return Err(already_exists("kubernetes auth role", &role_path(backend, &role.name)));
        }
        let outputs = self.write(role).await?;
        Ok(TypedCreated { id: role_path(backend, &role.name), outputs })
    }

    async fn read(
        &self,
        _ctx: CallContext<'_>,
        id: &str,
        prior: Option<&KubernetesAuthRole>,
        _prior_outputs: Option<&KubernetesAuthRoleOutputs>,
    ) -> Result<Option<TypedObserved<KubernetesAuthRole>>, ProviderError> {
        let (backend, name) = parse_id(id)?;
        let Some(live) = self.fetch(&backend, &name).await? else { return Ok(None) };
        let ttl = |key: &str| Some(json_u64(&live, key)).filter(|s| *s > 0).map(Ttl::Seconds);
        // Vault fills in alias_name_source; it is berth's only if the program set it.
        let alias = json_str(&live, "alias_name_source");
        let alias_name_source = match prior {
            Some(p) if p.alias_name_source.is_none() && alias == "serviceaccount_uid" => None,
            None if alias == "serviceaccount_uid" => None,
            _ => Some(alias).filter(|a| !a.is_empty()),
        };
        let inputs = KubernetesAuthRole {
            backend: Input::Value(backend.clone()),
            name: name.clone(),
            bound_service_account_names: json_strings(&live, "bound_service_account_names"),
            bound_service_account_namespaces: json_strings(&live, "bound_service_account_namespaces"),
            token_policies: json_strings(&live, "token_policies").into_iter().map(Input::Value).collect(),
            token_ttl: ttl("token_ttl"),
            token_max_ttl: ttl("token_max_ttl"),
            audience: Some(json_str(&live, "audience")).filter(|a| !a.is_empty()),
            alias_name_source,
        };
        Ok(Some(TypedObserved { id: role_path(&backend, &name), inputs, outputs: outputs(&backend, &name) }))
    }

    async fn update(
        &self,
        _ctx: CallContext<'_>,
        _id: &str,
        _old: &KubernetesAuthRole,
        new: &KubernetesAuthRole,
        _old_outputs: &KubernetesAuthRoleOutputs,
    ) -> Result<KubernetesAuthRoleOutputs, ProviderError> {
        self.write(new).await
    }

    async fn delete(
        &self,
        _ctx: CallContext<'_>,
        id: &str,
        _inputs: &KubernetesAuthRole,
        _outputs: &KubernetesAuthRoleOutputs,
    ) -> Result<(), ProviderError> {
        let (backend, name) = parse_id(id)?;
        self.api.delete(&role_path(&backend, &name)).await?;
        Ok(())
    }

    async fn lookup(
        &self,
        ctx: CallContext<'_>,
        role: &KubernetesAuthRole,
    ) -> Result<Option<TypedObserved<KubernetesAuthRole>>, ProviderError> {
        let backend = known("backend", &role.backend)?;
        self.read(ctx, &role_path(backend, &role.name), Some(role), None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_backend_and_role() {
        assert_eq!(parse_id("auth/kubernetes/role/edx").unwrap(), ("kubernetes".into(), "edx".into()));
        assert_eq!(parse_id("auth/k8s/mitx/role/edx").unwrap(), ("k8s/mitx".into(), "edx".into()));
        assert!(parse_id("auth/kubernetes/edx").is_err());
        assert_eq!(outputs("k", "r").login_path, "auth/k/login");
    }
}
