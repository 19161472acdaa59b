//! `vault:kv:Secret`: one secret in a kv mount, version 1 or 2.
//!
//! Its data is secret: every value is encrypted in berth's state and shown as `[secret]` in
//! plans, diffs and output (the keys are shown, so a plan says which key changes). Values may be
//! literals, stack configuration secrets, or other resources' outputs (a database address).
//! Changing data writes the secret again (a new version on kv 2); changing the mount or path
//! replaces it. Deleting a kv 2 secret deletes all its versions and metadata
//! (`DELETE <mount>/metadata/<path>`), as Terraform's `vault_kv_secret_v2` does with
//! `delete_all_versions = true`; Terraform's default only soft-deletes the latest version, which
//! leaves the key listed and its older versions readable.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_engine::{
    CallContext, CheckFailure, FieldDiff, Input, Output, Path, ProviderError, Resource, ResourceProvider, Secret, TypedCreated,
    TypedObserved, async_trait,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::client::VaultApi;
use crate::common::{already_exists, check_path, field, json_str, known};

/// `vault:kv:Secret`.
///
/// ```
/// use berth_engine::Secret;
/// use berth_provider_vault::KvSecret;
/// let secret = KvSecret::new("secret-mitx-qa", "edxapp")
///     .with_text("django_secret_key", Secret::new("from-config".to_string()))
///     .with_value("workers", 4);
/// assert_eq!(secret.data.len(), 2);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvSecret {
    /// The kv mount's path; pass the mount's `path` output so the secret depends on it.
    pub mount: Input<String>,
    /// The secret's path inside the mount (`edxapp`, `apps/forum`).
    pub path: String,
    /// The key/value pairs. Values are any JSON (usually strings), each kept secret.
    #[serde(default)]
    pub data: BTreeMap<String, Input<Secret<Json>>>,
    /// The mount's kv version, 1 or 2. Unset: asked from Vault when the secret is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_version: Option<u8>,
}

impl KvSecret {
    pub fn new(mount: impl Into<Input<String>>, path: &str) -> KvSecret {
        KvSecret { mount: mount.into(), path: path.to_string(), data: BTreeMap::new(), kv_version: None }
    }

    /// Adds a secret text value (from stack configuration, say).
    pub fn with_text(mut self, key: &str, value: Secret<String>) -> KvSecret {
        self.data.insert(key.to_string(), Input::Value(Secret::new(Json::String(value.into_inner()))));
        self
    }

    /// Adds a plain JSON value (kept secret from here on).
    pub fn with_value(mut self, key: &str, value: impl Into<Json>) -> KvSecret {
        self.data.insert(key.to_string(), Input::Value(Secret::new(value.into())));
        self
    }

    /// Adds another resource's output (an RDS address, a generated password).
    pub fn with_output<T>(mut self, key: &str, output: &Output<T>) -> KvSecret {
        self.data.insert(key.to_string(), Input::Output(output.cast::<Secret<Json>>()));
        self
    }
}

/// What a `vault:kv:Secret` reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KvSecretOutputs {
    pub mount: String,
    pub path: String,
    /// 1 or 2.
    pub kv_version: u8,
    /// The API path to read it from (`<mount>/data/<path>` on kv 2), for policies.
    pub api_path: String,
    /// The current version on kv 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

impl Resource for KvSecret {
    const TYPE: &'static str = "vault:kv:Secret";
    type Outputs = KvSecretOutputs;
}

/// Where a secret lives.
#[derive(Clone, Debug)]
struct Location {
    mount: String,
    path: String,
    version: u8,
}

impl Location {
    fn data_path(&self) -> String {
        match self.version {
            2 => format!("{}/data/{}", self.mount, self.path),
            _ => format!("{}/{}", self.mount, self.path),
        }
    }

    fn delete_path(&self) -> String {
        match self.version {
            2 => format!("{}/metadata/{}", self.mount, self.path),
            _ => self.data_path(),
        }
    }

    fn id(&self) -> String {
        format!("{}/{}", self.mount, self.path)
    }

    fn outputs(&self, version: Option<u64>) -> KvSecretOutputs {
        KvSecretOutputs {
            mount: self.mount.clone(),
            path: self.path.clone(),
            kv_version: self.version,
            api_path: self.data_path(),
            version: version.filter(|_| self.version == 2),
        }
    }
}

/// The provider for `vault:kv:Secret`.
pub struct KvSecretProvider {
    pub api: Arc<VaultApi>,
}

impl KvSecretProvider {
    /// The kv mount holding `path` (the path Vault's own CLI asks about): its path and version.
    async fn mount_of(&self, path: &str) -> Result<(String, u8), ProviderError> {
        let found = match self.api.read(&format!("sys/internal/ui/mounts/{path}")).await {
            Ok(found) => found,
            Err(e) if e.status == Some(403) || e.status == Some(400) => None,
            Err(e) => return Err(e.into()),
        };
        let Some(mount) = found else {
            return Err(ProviderError::not_found(format!(
                "no kv mount holds `{path}` (or the token may not use it); create the mount first (vault:sys:Mount, type kv)"
            )));
        };
        let engine = json_str(&mount, "type");
        if engine != "kv" && engine != "generic" {
            return Err(ProviderError::api(
                "not kv",
                format!("`{}` is a `{engine}` engine, not kv; vault:kv:Secret needs a kv mount", json_str(&mount, "path")),
            ));
        }
        let version = mount.pointer("/options/version").and_then(Json::as_str).and_then(|v| v.parse().ok()).unwrap_or(1);
        Ok((json_str(&mount, "path").trim_end_matches('/').to_string(), version))
    }

    /// Where a secret is. The kv version is asked from Vault unless the program fixed it, every
    /// time: a mount upgraded from version 1 to 2 moves its secrets' API paths.
    async fn locate_at(&self, mount: &str, path: &str, version: Option<u8>) -> Result<Location, ProviderError> {
        let mount = mount.trim_matches('/').to_string();
        let version = match version {
            Some(v) => v,
            None => self.mount_of(&format!("{mount}/{path}")).await?.1,
        };
        Ok(Location { mount, path: path.to_string(), version })
    }

    async fn locate(&self, secret: &KvSecret) -> Result<Location, ProviderError> {
        self.locate_at(known("mount", &secret.mount)?, &secret.path, secret.kv_version).await
    }

    /// The live data and (kv 2) version; `None` if there is no secret (or only a deleted one).
    async fn fetch(&self, at: &Location) -> Result<Option<(BTreeMap<String, Json>, Option<u64>)>, ProviderError> {
        let Some(body) = self.api.read(&at.data_path()).await? else { return Ok(None) };
        let (data, version) = match at.version {
            2 => (body.get("data").cloned().unwrap_or(Json::Null), body.pointer("/metadata/version").and_then(Json::as_u64)),
            _ => (body, None),
        };
        match data {
            Json::Object(map) => Ok(Some((map.into_iter().collect(), version))),
            // kv 2 answers a deleted (but not destroyed) latest version with `data: null`.
            _ => Ok(None),
        }
    }

    async fn write(&self, at: &Location, secret: &KvSecret) -> Result<Option<u64>, ProviderError> {
        let mut data = serde_json::Map::new();
        for (key, value) in &secret.data {
            data.insert(key.clone(), known(&format!("data.{key}"), value)?.expose().clone());
        }
        let body = match at.version {
            2 => json!({ "data": data }),
            _ => Json::Object(data),
        };
        let answer = self.api.write(&at.data_path(), &body).await?;
        Ok(answer.get("version").and_then(Json::as_u64))
    }

    fn observed(at: &Location, data: BTreeMap<String, Json>, version: Option<u64>, prior: Option<&KvSecret>) -> TypedObserved<KvSecret> {
        let inputs = KvSecret {
            mount: Input::Value(at.mount.clone()),
            path: at.path.clone(),
            data: data.into_iter().map(|(k, v)| (k, Input::Value(Secret::new(v)))).collect(),
            kv_version: prior.and_then(|p| p.kv_version),
        };
        TypedObserved { id: at.id(), inputs, outputs: at.outputs(version) }
    }
}

#[async_trait]
impl ResourceProvider for KvSecretProvider {
    type Resource = KvSecret;

    fn replace_on(&self) -> Vec<Path> {
        vec![field("mount"), field("path"), field("kv_version")]
    }

    fn outputs_changed_by(&self, changes: &[FieldDiff]) -> Vec<Path> {
        if changes.iter().any(|c| c.path.first_key() == Some("data")) { vec![field("version")] } else { Vec::new() }
    }

    async fn check(&self, _ctx: CallContext<'_>, secret: KvSecret, _seed: &[u8; 32]) -> Result<KvSecret, Vec<CheckFailure>> {
        let mut failures = Vec::new();
        if let Some(mount) = secret.mount.known() {
            check_path("mount", mount, &mut failures);
        }
        check_path("path", &secret.path, &mut failures);
        if let Some(v) = secret.kv_version
            && v != 1
            && v != 2
        {
            failures.push(CheckFailure::field("kv_version", format!("is 1 or 2, not {v}")));
        }
        for key in secret.data.keys() {
            if key.is_empty() {
                failures.push(CheckFailure::field("data", "has an empty key"));
            }
        }
        if failures.is_empty() { Ok(secret) } else { Err(failures) }
    }

    async fn create(&self, _ctx: CallContext<'_>, secret: &KvSecret) -> Result<TypedCreated<KvSecretOutputs>, ProviderError> {
        let at = self.locate(secret).await?;
        if self.fetch(&at).await?.is_some() {
            return Err(already_exists("kv secret", &at.id()));
        }
        let version = self.write(&at, secret).await?;
        Ok(TypedCreated { id: at.id(), outputs: at.outputs(version) })
    }

    async fn read(
        &self,
        _ctx: CallContext<'_>,
        id: &str,
        prior: Option<&KvSecret>,
        prior_outputs: Option<&KvSecretOutputs>,
    ) -> Result<Option<TypedObserved<KvSecret>>, ProviderError> {
        let explicit = prior.and_then(|p| p.kv_version);
        let located = match (prior_outputs, prior) {
            (Some(o), _) => self.locate_at(&o.mount, &o.path, explicit).await,
            (None, Some(p)) => self.locate(p).await,
            // An import: the id is `<mount>/<path>`; Vault says where the mount ends.
            (None, None) => {
                let (mount, version) = self.mount_of(id.trim_matches('/')).await?;
                let path = id.trim_matches('/').strip_prefix(&format!("{mount}/")).unwrap_or_default().to_string();
                if path.is_empty() {
                    return Err(ProviderError::other(format!(
                        "`{id}` names the mount `{mount}`, not a secret in it; import `{mount}/<path>`"
                    )));
                }
                Ok(Location { mount, path, version })
            }
        };
        let at = match located {
            Ok(at) => at,
            // The mount is gone, and the secret with it.
            Err(e) if e.kind == berth_engine::ErrorKind::NotFound && prior.is_some() => return Ok(None),
            Err(e) => return Err(e),
        };
        match self.fetch(&at).await {
            Ok(Some((data, version))) => Ok(Some(Self::observed(&at, data, version, prior))),
            Ok(None) => Ok(None),
            // The whole mount is gone (Vault has no route there any more): so is the secret.
            Err(e) if e.kind == berth_engine::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn update(
        &self,
        _ctx: CallContext<'_>,
        _id: &str,
        _old: &KvSecret,
        new: &KvSecret,
        old_outputs: &KvSecretOutputs,
    ) -> Result<KvSecretOutputs, ProviderError> {
        let at = self.locate_at(&old_outputs.mount, &old_outputs.path, new.kv_version).await?;
        let version = self.write(&at, new).await?;
        Ok(at.outputs(version))
    }

    async fn delete(&self, _ctx: CallContext<'_>, _id: &str, inputs: &KvSecret, outputs: &KvSecretOutputs) -> Result<(), ProviderError> {
        let at = match self.locate_at(&outputs.mount, &outputs.path, inputs.kv_version).await {
            Ok(at) => at,
            // The mount went first, and its secrets with it.
            Err(e) if e.kind == berth_engine::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        self.api.delete(&at.delete_path()).await?;
        Ok(())
    }

    async fn lookup(&self, ctx: CallContext<'_>, secret: &KvSecret) -> Result<Option<TypedObserved<KvSecret>>, ProviderError> {
        let at = match self.locate(secret).await {
            Ok(at) => at,
            Err(e) if e.kind == berth_engine::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        self.read(ctx, &at.id(), Some(secret), Some(&at.outputs(None))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv2_paths_go_through_data_and_metadata() {
        let v2 = Location { mount: "secret-mitx".into(), path: "edxapp".into(), version: 2 };
        assert_eq!(v2.data_path(), "secret-mitx/data/edxapp");
        assert_eq!(v2.delete_path(), "secret-mitx/metadata/edxapp");
        assert_eq!(v2.outputs(Some(3)).version, Some(3));
        let v1 = Location { version: 1, ..v2 };
        assert_eq!(v1.data_path(), "secret-mitx/edxapp");
        assert_eq!(v1.delete_path(), "secret-mitx/edxapp");
        assert_eq!(v1.outputs(Some(3)).version, None);
        assert_eq!(v1.id(), "secret-mitx/edxapp");
    }

    #[test]
    fn data_is_secret_in_the_engine_value() {
        let secret = KvSecret::new("m", "p").with_value("password", "hunter2-abc");
        let value = berth_engine::Value::from_json(serde_json::to_value(&secret).unwrap());
        let data = value.get_path(&Path::parse("data.password").unwrap()).unwrap();
        assert!(data.is_secret());
        assert!(!value.display_short().contains("hunter2"), "{}", value.display_short());
    }
}
