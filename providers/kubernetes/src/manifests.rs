//! Plain manifests (YAML or JSON, with `apiVersion` and `kind`) as berth resources: for custom
//! resources (KEDA, Vault Secrets Operator, Gateway API, cert-manager) and CRD bundles.
//!
//! ```
//! # use berth_engine::{Options, Stack};
//! let yaml = "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: lms-celery}\nspec: {scaleTargetRef: {name: lms-celery}}\n";
//! let mut stack = Stack::new("dev");
//! for manifest in berth_provider_kubernetes::manifests::from_yaml(yaml).unwrap() {
//!     berth_provider_kubernetes::manifests::register(&mut stack, None, &manifest, Options::new()).unwrap();
//! }
//! assert_eq!(stack.into_graph().unwrap().len(), 1);
//! ```

use berth_engine::program::RegistrationError;
use berth_engine::{DynamicHandle, Options, Stack};
use serde_json::Value as Json;

use crate::kinds::Gvk;

/// A manifest berth cannot register.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("document {index}: {message}")]
    Invalid { index: usize, message: String },
    #[error("not valid YAML: {0}")]
    Yaml(String),
    #[error(transparent)]
    Registration(#[from] RegistrationError),
}

/// The documents of a (multi-document) YAML text; empty documents are skipped.
pub fn from_yaml(text: &str) -> Result<Vec<Json>, ManifestError> {
    let documents: Vec<Json> = serde_saphyr::from_multiple(text).map_err(|e| ManifestError::Yaml(e.to_string()))?;
    let documents: Vec<Json> = documents.into_iter().filter(|d| !d.is_null()).collect();
    for (index, document) in documents.iter().enumerate() {
        type_token(document).map_err(|message| ManifestError::Invalid { index, message })?;
    }
    Ok(documents)
}

/// The type token of a manifest: `kubernetes:<apiVersion>:<kind>` (`core/v1` for `v1`).
pub fn type_token(manifest: &Json) -> Result<String, String> {
    let api_version = manifest.get("apiVersion").and_then(Json::as_str).ok_or("has no apiVersion")?;
    let kind = manifest.get("kind").and_then(Json::as_str).ok_or("has no kind")?;
    let group_version = if api_version.contains('/') { api_version.to_string() } else { format!("core/{api_version}") };
    Gvk::from_token(&format!("kubernetes:{group_version}:{kind}")).map(|gvk| gvk.token())
}

/// The object's name, for a logical name.
pub fn name_of(manifest: &Json) -> Option<&str> {
    manifest.pointer("/metadata/name").and_then(Json::as_str)
}

/// Registers a manifest as a resource named `name` (default: the object's name), its inputs
/// the manifest without `apiVersion` and `kind`.
pub fn register(stack: &mut Stack, name: Option<&str>, manifest: &Json, options: Options) -> Result<DynamicHandle, ManifestError> {
    let token = type_token(manifest).map_err(|message| ManifestError::Invalid { index: 0, message })?;
    let name = name.or_else(|| name_of(manifest)).ok_or(ManifestError::Invalid { index: 0, message: "has no metadata.name".into() })?;
    let mut inputs = manifest.clone();
    if let Json::Object(map) = &mut inputs {
        map.remove("apiVersion");
        map.remove("kind");
    }
    Ok(stack.register_dynamic(&token, name, &inputs, options)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_from_manifests() {
        let docs = from_yaml("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: b}\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(type_token(&docs[0]).unwrap(), "kubernetes:core/v1:ConfigMap");
        assert_eq!(type_token(&docs[1]).unwrap(), "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute");
        let err = from_yaml("kind: X\n").unwrap_err().to_string();
        assert!(err.contains("document 0: has no apiVersion"), "{err}");
        assert!(from_yaml("a: [").is_err());
    }
}
