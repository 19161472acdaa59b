//! `vault:sys:Mount`: a secrets engine enabled at a path (kv version 1 or 2, database, ...).
//!
//! Description, lease TTLs and options are tuned in place; upgrading kv version 1 to 2 is done in
//! place too (Vault converts the data, and berth waits until the mount answers again). A new
//! path, another engine type, or a kv downgrade replaces the mount, which deletes everything in
//! it (for a database mount, Vault revokes every lease first).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use berth_engine::{
    CallContext, CheckFailure, DiffResponse, Path, ProviderError, Resource, ResourceProvider, TypedCreated, TypedObserved, Value,
    async_trait, default_diff,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::client::VaultApi;
use crate::common::{Ttl, already_exists, await_until, check_path, field, json_str, json_u64, undo_create};

/// How long a create or update waits for a kv version 2 mount to answer, unless the resource
/// sets `custom_timeouts`.
pub const DEFAULT_KV_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Path prefixes Vault keeps for itself.
const RESERVED: [&str; 4] = ["sys", "auth", "cubbyhole", "identity"];

/// `vault:sys:Mount`.
///
/// ```
/// use berth_provider_vault::{Mount, Ttl};
/// let kv = Mount::kv("secret-mitx-qa", 2);
/// assert_eq!(kv.options["version"], "2");
/// let db = Mount { default_lease_ttl: Some(Ttl::days(90)), max_lease_ttl: Some(Ttl::days(180)), ..Mount::database("mariadb-mitx-qa") };
/// assert_eq!(db.engine, "database");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    /// Where the engine is enabled, without slashes at either end (`secret-mitx-qa`). Changing
    /// it replaces the mount.
    pub path: String,
    /// The engine: `kv`, `kv-v2` (recorded as `kv` with option `version: "2"`), `database`,
    /// or any other engine Vault has. Changing it replaces the mount.
    #[serde(rename = "type")]
    pub engine: String,
    /// Free text shown in Vault's UI.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Lease TTL for secrets this engine issues; unset means Vault's system default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_lease_ttl: Option<Ttl>,
    /// Longest lease this engine issues; unset means Vault's system default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lease_ttl: Option<Ttl>,
    /// Engine options. For `kv`, `version` is `"1"` (the default) or `"2"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

impl Mount {
    /// A kv mount of `version` 1 or 2.
    pub fn kv(path: &str, version: u8) -> Mount {
        Mount { options: BTreeMap::from([("version".to_string(), version.to_string())]), ..Mount::new(path, "kv") }
    }

    /// A database secrets engine.
    pub fn database(path: &str) -> Mount {
        Mount::new(path, "database")
    }

    pub fn new(path: &str, engine: &str) -> Mount {
        Mount {
            path: path.to_string(),
            engine: engine.to_string(),
            description: String::new(),
            default_lease_ttl: None,
            max_lease_ttl: None,
            options: BTreeMap::new(),
        }
    }

    fn kv_version(&self) -> Option<u8> {
        (self.engine == "kv").then(|| self.options.get("version").and_then(|v| v.parse().ok()).unwrap_or(1))
    }
}

/// What a `vault:sys:Mount` reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MountOutputs {
    /// The mount path: pass it to secrets, connections and roles so they depend on the mount.
    pub path: String,
    /// Vault's accessor for the mount (`kv_1a2b3c4d`).
    pub accessor: String,
    /// The engine type.
    #[serde(rename = "type")]
    pub engine: String,
    /// 1 or 2 for a kv mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_version: Option<u8>,
}

impl Resource for Mount {
    const TYPE: &'static str = "vault:sys:Mount";
    type Outputs = MountOutputs;
}

/// The provider for `vault:sys:Mount`.
pub struct MountProvider {
    pub api: Arc<VaultApi>,
}

fn mount_path(path: &str) -> String {
    format!("sys/mounts/{path}")
}

fn ttl_seconds(ttl: &Option<Ttl>) -> u64 {
    ttl.as_ref().and_then(|t| t.seconds().ok()).unwrap_or(0)
}

/// Vault answers 400 "No secret engine mount at x/" for a path with nothing mounted.
fn is_missing(e: &crate::client::VaultError) -> bool {
    e.status == Some(404) || (e.status == Some(400) && e.says("no secret engine mount"))
}

impl MountProvider {
    async fn fetch(&self, path: &str) -> Result<Option<Json>, ProviderError> {
        match self.api.read(&mount_path(path)).await {
            Ok(found) => Ok(found),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Vault's answer as inputs; only the options berth manages (those in `prior`, and a kv
    /// mount's version) unless this is an import.
    fn observed(path: &str, live: &Json, prior: Option<&Mount>) -> TypedObserved<Mount> {
        let engine = json_str(live, "type");
        let config = live.get("config").cloned().unwrap_or(Json::Null);
        let ttl = |key: &str| Some(json_u64(&config, key)).filter(|s| *s > 0).map(Ttl::Seconds);
        let mut options: BTreeMap<String, String> = live
            .get("options")
            .and_then(Json::as_object)
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))).collect())
            .unwrap_or_default();
        if engine == "kv" {
            options.entry("version".into()).or_insert_with(|| "1".into());
        }
        if let Some(prior) = prior {
            options.retain(|k, _| prior.options.contains_key(k) || (engine == "kv" && k == "version"));
        }
        let inputs = Mount {
            path: path.to_string(),
            engine: engine.clone(),
            description: json_str(live, "description"),
            default_lease_ttl: ttl("default_lease_ttl"),
            max_lease_ttl: ttl("max_lease_ttl"),
            options,
        };
        let outputs =
            MountOutputs { path: path.to_string(), accessor: json_str(live, "accessor"), engine, kv_version: inputs.kv_version() };
        TypedObserved { id: path.to_string(), inputs, outputs }
    }

    /// A kv version 2 mount is usable once its config endpoint answers (it is briefly not after
    /// it is enabled or upgraded).
    async fn await_kv(&self, ctx: CallContext<'_>, mount: &Mount) -> Result<(), ProviderError> {
        if mount.kv_version() != Some(2) {
            return Ok(());
        }
        let config = format!("{}/config", mount.path);
        await_until(&format!("kv mount `{}`", mount.path), ctx.timeout.unwrap_or(DEFAULT_KV_READY_TIMEOUT), || async {
            match self.api.read(&config).await {
                Ok(Some(_)) => Ok(true),
                Ok(None) => Ok(false),
                Err(e) if e.says("upgrad") || e.status == Some(503) => Ok(false),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn current(&self, path: &str) -> Result<MountOutputs, ProviderError> {
        match self.fetch(path).await? {
            Some(live) => Ok(Self::observed(path, &live, None).outputs),
            None => Err(ProviderError::not_found(format!("mount `{path}` disappeared while berth was changing it"))),
        }
    }
}

#[async_trait]
impl ResourceProvider for MountProvider {
    type Resource = Mount;

    fn replace_on(&self) -> Vec<Path> {
        vec![field("path"), field("type")]
    }

    fn fixed_name(&self) -> Option<Path> {
        Some(field("path"))
    }

    fn outputs_changed_by(&self, changes: &[berth_engine::FieldDiff]) -> Vec<Path> {
        if changes.iter().any(|c| c.path.first_key() == Some("options")) { vec![field("kv_version")] } else { Vec::new() }
    }

    async fn check(&self, _ctx: CallContext<'_>, mut mount: Mount, _seed: &[u8; 32]) -> Result<Mount, Vec<CheckFailure>> {
        let mut failures = Vec::new();
        check_path("path", &mount.path, &mut failures);
        if let Some(first) = mount.path.split('/').next()
            && RESERVED.contains(&first)
        {
            failures.push(CheckFailure::field("path", format!("`{}`: Vault reserves `{first}/` for itself", mount.path)));
        }
        if mount.engine == "kv-v2" {
            mount.engine = "kv".into();
            mount.options.insert("version".into(), "2".into());
        }
        if mount.engine.is_empty() || !mount.engine.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            failures.push(CheckFailure::field("type", format!("`{}` is not an engine type (like `kv` or `database`)", mount.engine)));
        }
        if mount.engine == "kv" {
            let version = mount.options.entry("version".into()).or_insert_with(|| "1".into());
            if version != "1" && version != "2" {
                failures.push(CheckFailure::field("options.version", format!("kv version is \"1\" or \"2\", not \"{version}\"")));
            }
        }
        mount.default_lease_ttl = mount.default_lease_ttl.map(|t| t.checked("default_lease_ttl", &mut failures));
        mount.max_lease_ttl = mount.max_lease_ttl.map(|t| t.checked("max_lease_ttl", &mut failures));
        if let (Ok(default), Ok(max)) =
            (mount.default_lease_ttl.as_ref().map_or(Ok(0), Ttl::seconds), mount.max_lease_ttl.as_ref().map_or(Ok(0), Ttl::seconds))
            && default > 0
            && max > 0
            && default > max
        {
            failures.push(CheckFailure::field("default_lease_ttl", format!("{default}s is longer than max_lease_ttl ({max}s)")));
        }
        if failures.is_empty() { Ok(mount) } else { Err(failures) }
    }

    async fn diff(
        &self,
        _ctx: CallContext<'_>,
        _id: &str,
        old_inputs: &Value,
        _old_outputs: &Value,
        new_inputs: &Value,
    ) -> Result<DiffResponse, ProviderError> {
        let mut response = default_diff(old_inputs, new_inputs, &self.replace_on(), self.fixed_name().as_ref());
        // kv can be upgraded from 1 to 2 in place; never downgraded.
        let version = Path::root().child_key("options").child_key("version");
        let read = |v: &Value| v.get_path(&version).and_then(|x| x.as_str().and_then(|s| s.parse::<u8>().ok()));
        if let (Some(old), Some(new)) = (read(old_inputs), read(new_inputs))
            && new < old
        {
            response.replace_paths.push(version);
            response.delete_before_replace = true;
        }
        response.unknown_outputs = self.outputs_changed_by(&response.changes);
        Ok(response)
    }

    async fn create(&self, ctx: CallContext<'_>, mount: &Mount) -> Result<TypedCreated<MountOutputs>, ProviderError> {
        let body = json!({
            "type": mount.engine,
            "description": mount.description,
            "config": {
                "default_lease_ttl": ttl_seconds(&mount.default_lease_ttl),
                "max_lease_ttl": ttl_seconds(&mount.max_lease_ttl),
            },
            "options": mount.options,
        });
        if let Err(e) = self.api.write(&mount_path(&mount.path), &body).await {
            if e.says("already in use") {
                return Err(already_exists("mount", &mount.path));
            }
            return Err(e.into());
        }
        // From here on the mount exists: a failure undoes it (see `undo_create`).
        let guess = MountOutputs {
            path: mount.path.clone(),
            accessor: String::new(),
            engine: mount.engine.clone(),
            kv_version: mount.kv_version(),
        };
        let made = |outputs: &MountOutputs| berth_engine::Created {
            id: mount.path.clone(),
            outputs: serde_json::to_value(outputs).map(Value::from_json).unwrap_or_default(),
        };
        let outputs = match self.current(&mount.path).await {
            Ok(outputs) => outputs,
            Err(e) => return Err(undo_create(&self.api, &mount_path(&mount.path), e, made(&guess)).await),
        };
        match self.await_kv(ctx, mount).await {
            Ok(()) => Ok(TypedCreated { id: mount.path.clone(), outputs }),
            Err(e) => Err(undo_create(&self.api, &mount_path(&mount.path), e, made(&outputs)).await),
        }
    }

    async fn read(
        &self,
        _ctx: CallContext<'_>,
        id: &str,
        prior: Option<&Mount>,
        _prior_outputs: Option<&MountOutputs>,
    ) -> Result<Option<TypedObserved<Mount>>, ProviderError> {
        let path = id.trim_matches('/');
        Ok(self.fetch(path).await?.map(|live| Self::observed(path, &live, prior)))
    }

    async fn update(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old: &Mount,
        new: &Mount,
        _old_outputs: &MountOutputs,
    ) -> Result<MountOutputs, ProviderError> {
        let mut body = json!({
            "description": new.description,
            "default_lease_ttl": ttl_seconds(&new.default_lease_ttl),
            "max_lease_ttl": ttl_seconds(&new.max_lease_ttl),
        });
        if old.options != new.options {
            body["options"] = json!(new.options);
        }
        self.api.write(&format!("{}/tune", mount_path(id)), &body).await?;
        self.await_kv(ctx, new).await?;
        self.current(id).await
    }

    async fn delete(&self, _ctx: CallContext<'_>, id: &str, _inputs: &Mount, _outputs: &MountOutputs) -> Result<(), ProviderError> {
        // Vault revokes the engine's leases first; a database it cannot reach fails the delete
        // with Vault's reason, and the mount stays.
        self.api.delete(&mount_path(id)).await?;
        Ok(())
    }

    async fn lookup(&self, ctx: CallContext<'_>, mount: &Mount) -> Result<Option<TypedObserved<Mount>>, ProviderError> {
        let found = self.read(ctx, &mount.path, Some(mount), None).await?;
        // Something else mounted there is not what the interrupted run made.
        Ok(found.filter(|f| f.inputs.engine == mount.engine))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observed_mount_limits_options_to_managed_ones() {
        let live = json!({"type": "kv", "description": "", "accessor": "kv_1", "config": {"default_lease_ttl": 0, "max_lease_ttl": 60}, "options": {}});
        let seen = MountProvider::observed("kv1", &live, Some(&Mount::kv("kv1", 1)));
        assert_eq!(seen.inputs.options.get("version").map(String::as_str), Some("1"), "kv v1 answers with no version");
        assert_eq!(seen.inputs.max_lease_ttl, Some(Ttl::Seconds(60)));
        assert_eq!(seen.inputs.default_lease_ttl, None, "0 is the system default");
        assert_eq!(seen.outputs.kv_version, Some(1));
        let db = json!({"type": "database", "config": {}, "options": {"x": "y"}});
        assert!(MountProvider::observed("db", &db, Some(&Mount::database("db"))).inputs.options.is_empty());
        assert_eq!(MountProvider::observed("db", &db, None).inputs.options.len(), 1, "an import sees every option");
    }
}
