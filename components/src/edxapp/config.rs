//! The `config:` section of an edxapp stack, typed. Unknown keys and bad values are errors that
//! name the stack file, line and key; tier defaults (`stacks/tiers/<tier>.yaml`) merge
//! underneath.

use std::collections::BTreeMap;

use berth_engine::Secret;
use serde::Deserialize;

/// Everything an edxapp stack is configured with.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackConfig {
    pub edxapp: Edxapp,
    /// The network the deployment lives in: inline, or read from the network stack.
    pub network: Source<Network>,
    /// The Kubernetes cluster: inline, or read from the cluster stack.
    pub cluster: Source<Cluster>,
}

/// Values given inline, or read from another stack's outputs (`{stack: network.qa}`).
#[derive(Clone, Debug)]
pub enum Source<T> {
    Stack { stack: String },
    Inline(T),
}

/// By hand rather than `untagged`, whose only error is "did not match any variant": a typo in
/// the inline values is reported as the values' own error (`unknown field ...`).
impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Source<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(deserializer)?;
        if let Some(map) = value.as_object()
            && map.contains_key("stack")
        {
            return match (map.len(), map["stack"].as_str()) {
                (1, Some(stack)) => Ok(Source::Stack { stack: stack.to_string() }),
                (1, None) => Err(D::Error::custom("`stack` is the name of the stack to read, e.g. `{stack: network.qa}`")),
                _ => Err(D::Error::custom("either `stack: <name>` (read another stack's outputs) or the values inline, not both")),
            };
        }
        T::deserialize(value)
            .map(Source::Inline)
            .map_err(|e| D::Error::custom(format!("{e} (or `{{stack: <name>}}` to read another stack's outputs)")))
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edxapp {
    /// mitx, mitx-staging, mitxonline, xpro: selects `files/edxapp/<deployment>/`.
    pub deployment: String,
    /// ci, qa, production (names resources `<deployment>-<environment>`).
    pub environment: Environment,
    pub domains: Domains,
    pub mail_domain: String,
    pub image: Image,
    /// The Open edX release (OPENEDX_RELEASE), e.g. `sumac`.
    pub openedx_release: String,
    pub database: Database,
    pub cache: Cache,
    pub webapp: ServicePair<Workload>,
    pub celery: ServicePair<Workload>,
    /// Waffle flags the pre-deploy job sets: `{flag.name: true}`.
    #[serde(default)]
    pub waffle_flags: BTreeMap<String, bool>,
    #[serde(default)]
    pub enabled_mfes: Vec<String>,
    /// Expose the LMS and Studio through a Gateway API gateway (else an Ingress).
    #[serde(default = "yes")]
    pub gateway: bool,
    /// The storage class of the shared /openedx/data volume.
    #[serde(default = "default_storage_class")]
    pub data_storage_class: String,
    /// The namespace it runs in. Default: `<deployment>-openedx`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Which `files/edxapp/<name>/` holds its static configuration. Default: the deployment.
    #[serde(default)]
    pub config_files: Option<String>,
    /// Have Vault check that it can log in to the database when configuring the connection
    /// (off only where the database is an emulator).
    #[serde(default = "yes")]
    pub verify_database_connection: bool,
    /// Service accounts of the namespace that may assume the application's IAM role; `*` and
    /// `?` wildcards make the trust condition `StringLike`. Default: the edxapp pods' account.
    #[serde(default)]
    pub trusted_service_accounts: Option<Vec<String>>,
    /// More Kubernetes manifests to deploy with the stack (YAML files relative to the project:
    /// a NetworkPolicy, a metrics Service, …). Objects that name no namespace go in the stack's.
    /// Their Services and workloads are checked with the program's own.
    #[serde(default)]
    pub extra_manifests: Vec<String>,
}

fn yes() -> bool {
    true
}

fn default_storage_class() -> String {
    "efs-sc".into()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Ci,
    Qa,
    Production,
    /// The testbed.
    Local,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Ci => "ci",
            Environment::Qa => "qa",
            Environment::Production => "production",
            Environment::Local => "local",
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Domains {
    pub lms: String,
    pub studio: String,
    pub preview: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    pub repository: String,
    /// `sha256:<64 hex>`: deployments are by digest, never by a moving tag.
    pub digest: String,
}

impl Image {
    pub fn reference(&self) -> String {
        format!("{}@{}", self.repository, self.digest)
    }

    /// Why the digest is not one.
    pub fn digest_problem(&self) -> Option<String> {
        let hex = self.digest.strip_prefix("sha256:").unwrap_or_default();
        if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()) {
            return None;
        }
        Some(format!("`{}` is not a sha256 digest (sha256: followed by 64 lower-case hex digits)", self.digest))
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    pub instance_type: String,
    pub storage_gb: u32,
    pub max_storage_gb: u32,
    /// MariaDB version, e.g. "11.4".
    pub engine_version: String,
    #[serde(default)]
    pub multi_az: bool,
    pub backup_days: u8,
    /// The master password; generated (and kept in state, encrypted) when not given. Give the
    /// current one when adopting an existing database: RDS never reveals it.
    #[serde(default)]
    pub password: Option<Secret<String>>,
    /// Protect the instance from deletion (production).
    #[serde(default)]
    pub deletion_protection: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cache {
    pub node_type: String,
    pub nodes: u8,
    /// valkey or redis.
    #[serde(default = "default_cache_engine")]
    pub engine: String,
    pub engine_version: String,
    /// The AUTH token; generated (and kept in state, encrypted) when not given. Give the
    /// current one when adopting an existing cache: ElastiCache never reveals it.
    #[serde(default)]
    pub auth_token: Option<Secret<String>>,
}

fn default_cache_engine() -> String {
    "valkey".into()
}

/// A setting per service.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePair<T> {
    pub lms: T,
    pub cms: T,
}

/// Replicas and resources of one workload.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub min_replicas: u16,
    pub max_replicas: u16,
    pub cpu_request: String,
    pub memory_request: String,
    #[serde(default)]
    pub cpu_limit: Option<String>,
    pub memory_limit: String,
}

/// What the deployment needs of its network.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub vpc_id: String,
    pub vpc_cidr: String,
    /// Subnets for the database and cache subnet groups.
    pub subnet_ids: Vec<String>,
    /// Pod CIDRs allowed to reach the database and cache.
    pub pod_cidrs: Vec<String>,
}

/// What the deployment needs of its cluster (the outputs of a `cluster` stack).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub name: String,
    /// The namespaces the cluster stack created; edxapp's must be one of them.
    pub namespaces: Vec<String>,
    /// The cluster's OIDC issuer, without `https://` (for IRSA trust policies).
    pub oidc_issuer: String,
    /// The ARN of the cluster's IAM OIDC provider.
    pub oidc_provider_arn: String,
    /// The Vault kubernetes auth mount for this cluster.
    pub vault_auth_mount: String,
    /// The Vault address pods use (VaultConnection).
    pub vault_address: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_checked() {
        let image = |digest: &str| Image { repository: "r".into(), digest: digest.into() };
        assert!(image(&format!("sha256:{}", "a".repeat(64))).digest_problem().is_none());
        assert!(image("latest").digest_problem().is_some());
        assert!(image(&format!("sha256:{}", "A".repeat(64))).digest_problem().is_some());
    }
}
