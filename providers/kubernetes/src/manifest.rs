//! A resource's inputs are its manifest without `apiVersion` and `kind` (the type token says
//! those): `metadata`, `spec`, `data`… plus berth's own `berth` section, which never reaches the
//! cluster. This module validates inputs before any call and turns them into what is applied.

use std::collections::BTreeMap;

use base64::Engine as _;
use berth_engine::{CheckFailure, Value};
use serde_json::Value as Json;

use crate::kinds::{Gvk, NameRule};

/// The input section that configures berth rather than the object.
pub const OPTIONS_KEY: &str = "berth";

/// Per-object options, under `berth:` in the inputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectOptions {
    /// Take over fields another field manager owns instead of failing with a conflict.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force_conflicts: bool,
    /// Return as soon as the object is applied, without waiting for a rollout or a Job.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_await: bool,
}

impl ObjectOptions {
    pub fn from_inputs(inputs: &Value) -> ObjectOptions {
        inputs
            .as_object()
            .and_then(|m| m.get(OPTIONS_KEY))
            .and_then(|v| serde_json::from_value(v.to_json_revealed()).ok())
            .unwrap_or_default()
    }
}

/// The object's name and namespace, as the inputs give them.
pub fn identity(inputs: &Value) -> (Option<String>, Option<String>) {
    let meta = inputs.as_object().and_then(|m| m.get("metadata")).and_then(Value::as_object);
    let get = |key: &str| meta.and_then(|m| m.get(key)).and_then(Value::as_str).map(str::to_string);
    (get("name"), get("namespace"))
}

/// The provider id: `namespace/name`, or `name` for cluster-scoped objects.
pub fn object_id(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// Splits a provider id; a bare name of a namespaced kind lives in `default_namespace`.
pub fn split_id(id: &str, namespaced: bool, default_namespace: &str) -> (Option<String>, String) {
    match (id.split_once('/'), namespaced) {
        (Some((ns, name)), true) => (Some(ns.to_string()), name.to_string()),
        (None, true) => (Some(default_namespace.to_string()), id.to_string()),
        (Some((_, name)), false) => (None, name.to_string()),
        (None, false) => (None, id.to_string()),
    }
}

/// The manifest to apply: inputs revealed, berth's options dropped, `apiVersion` and `kind`
/// set to the served version, the namespace filled in for namespaced kinds.
pub fn manifest(inputs: &Value, api_version: &str, kind: &str, namespace: Option<&str>) -> Json {
    let mut json = inputs.to_json_revealed();
    if let Json::Object(map) = &mut json {
        map.remove(OPTIONS_KEY);
        map.insert("apiVersion".into(), Json::String(api_version.to_string()));
        map.insert("kind".into(), Json::String(kind.to_string()));
        let meta = map.entry("metadata").or_insert_with(|| Json::Object(Default::default()));
        if let (Json::Object(meta), Some(ns)) = (meta, namespace) {
            meta.insert("namespace".into(), Json::String(ns.to_string()));
        }
        if kind == "Secret" {
            fold_string_data(map);
        }
    }
    json
}

/// `stringData` becomes base64 `data`: the API never returns `stringData`, so berth records and
/// compares only `data`.
fn fold_string_data(map: &mut serde_json::Map<String, Json>) {
    let Some(Json::Object(plain)) = map.remove("stringData") else { return };
    let data = map.entry("data").or_insert_with(|| Json::Object(Default::default()));
    if let Json::Object(data) = data {
        for (key, value) in plain {
            if let Json::String(text) = value {
                data.insert(key, Json::String(base64::engine::general_purpose::STANDARD.encode(text)));
            }
        }
    }
}

/// Normalises a Secret's inputs at check time: `stringData` folds into `data` (base64), and
/// every value is secret, however the program wrote it.
pub fn normalise_secret(inputs: &mut BTreeMap<String, Value>, failures: &mut Vec<CheckFailure>) {
    let mut data: BTreeMap<String, Value> = match inputs.remove("data") {
        Some(Value::Object(map)) => map,
        Some(Value::Secret(inner)) => match *inner {
            Value::Object(map) => map,
            _ => {
                failures.push(CheckFailure::field("data", "must be a map of key to base64 value"));
                BTreeMap::new()
            }
        },
        Some(Value::Null) | None => BTreeMap::new(),
        Some(Value::Unknown) => {
            inputs.insert("data".into(), Value::Unknown);
            return;
        }
        Some(_) => {
            failures.push(CheckFailure::field("data", "must be a map of key to base64 value"));
            BTreeMap::new()
        }
    };
    for (key, value) in data.iter_mut() {
        match value.unwrap_secret() {
            Value::String(text) => {
                if base64::engine::general_purpose::STANDARD.decode(text).is_err() {
                    failures.push(CheckFailure::field(
                        format!("data.{key}"),
                        "is not valid base64 (the value is not shown); put plain text under stringData instead",
                    ));
                }
            }
            Value::Unknown | Value::Null => {}
            _ => failures.push(CheckFailure::field(format!("data.{key}"), "must be a base64 string")),
        }
        *value = std::mem::take(value).into_secret();
    }
    match inputs.remove("stringData") {
        Some(Value::Object(plain)) => fold_plain(plain, &mut data, failures),
        Some(Value::Secret(inner)) => match *inner {
            Value::Object(plain) => fold_plain(plain, &mut data, failures),
            _ => failures.push(CheckFailure::field("stringData", "must be a map of key to text")),
        },
        Some(Value::Null) | None => {}
        Some(Value::Unknown) => {
            inputs.insert("stringData".into(), Value::Unknown);
        }
        Some(_) => failures.push(CheckFailure::field("stringData", "must be a map of key to text")),
    }
    for key in data.keys() {
        if !valid_config_key(key) {
            failures.push(CheckFailure::field(
                format!("data.{key}"),
                "is not a valid key: use letters, digits, `-`, `_` and `.` (at most 253 characters)",
            ));
        }
    }
    if !data.is_empty() {
        inputs.insert("data".into(), Value::Object(data));
    }
}

fn fold_plain(plain: BTreeMap<String, Value>, data: &mut BTreeMap<String, Value>, failures: &mut Vec<CheckFailure>) {
    for (key, value) in plain {
        let encoded = match value.unwrap_secret() {
            Value::String(text) => Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
            Value::Unknown => Value::Unknown,
            _ => {
                failures.push(CheckFailure::field(format!("stringData.{key}"), "must be text"));
                continue;
            }
        };
        if data.contains_key(&key) {
            failures.push(CheckFailure::field(format!("stringData.{key}"), "is also under data; give each key once"));
            continue;
        }
        data.insert(key, encoded.into_secret());
    }
}

/// A ConfigMap or Secret key.
pub fn valid_config_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 253 && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Why `name` is not acceptable under `rule`, if it is not.
pub fn name_problem(name: &str, rule: NameRule) -> Option<String> {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    match rule {
        NameRule::Subdomain => (name.len() > 253 || !name.split('.').all(label_ok)).then(|| {
            "must be lower case letters, digits, `-` and `.`, start and end with a letter or digit, at most 253 characters (DNS-1123 subdomain)".to_string()
        }),
        NameRule::Label => (!label_ok(name))
            .then(|| "must be lower case letters, digits and `-`, start and end with a letter or digit, at most 63 characters (DNS-1123 label)".to_string()),
        NameRule::Label1035 => (!label_ok(name) || !name.starts_with(|c: char| c.is_ascii_lowercase())).then(|| {
            "must be lower case letters, digits and `-`, start with a letter, end with a letter or digit, at most 63 characters (DNS-1035 label)".to_string()
        }),
    }
}

/// Why a label or annotation key is not acceptable (`prefix/name`), if it is not.
pub fn key_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && name_problem(prefix, NameRule::Subdomain).is_some()
    {
        return Some("has a prefix that is not a DNS subdomain (lower case, at most 253 characters)".into());
    }
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    (!name_ok).then(|| "must be at most 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit".into())
}

/// Why a label value is not acceptable, if it is not.
pub fn label_value_problem(value: &str) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    let ok = value.len() <= 63
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric());
    (!ok).then(|| "must be empty or at most 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit".into())
}

/// A name berth chooses when the program gives none: the logical name plus a stable suffix.
pub fn auto_name(logical: &str, seed: &[u8; 32]) -> String {
    let mut base: String =
        logical.to_ascii_lowercase().chars().map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' }).collect();
    base.truncate(54);
    let base = base.trim_matches('-');
    let base = if base.is_empty() { "object" } else { base };
    format!("{base}-{}", berth_engine::typed::auto_suffix(seed, 8))
}

/// Every secret string the inputs hold, plain and base64: to scrub from messages the API writes.
pub fn secret_strings(inputs: &Value) -> Vec<String> {
    let mut plain = Vec::new();
    inputs.secret_strings(&mut plain);
    let mut all = Vec::new();
    for s in plain.into_iter().filter(|s| s.len() >= 3) {
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&s)
            && let Ok(text) = String::from_utf8(bytes)
            && text.len() >= 3
        {
            all.push(text);
        }
        all.push(base64::engine::general_purpose::STANDARD.encode(&s));
        all.push(s);
    }
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
    all
}

/// `text` with every secret replaced by `[secret]`.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        out = out.replace(secret.as_str(), berth_engine::value::SECRET_MASK);
    }
    out
}

/// The top-level input keys allowed for a kind that has no spec (the rest of the object is
/// data); `None` for kinds whose bodies berth does not know.
pub fn allowed_top_level(gvk: &Gvk) -> Option<&'static [&'static str]> {
    let keys: &'static [&'static str] = match (gvk.group.as_str(), gvk.kind.as_str()) {
        ("", "ConfigMap") => &["metadata", "data", "binaryData", "immutable"],
        ("", "Secret") => &["metadata", "data", "stringData", "type", "immutable"],
        ("", "ServiceAccount") => &["metadata", "automountServiceAccountToken", "imagePullSecrets", "secrets"],
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => &["metadata", "roleRef", "subjects"],
        ("", "Namespace")
        | ("", "PersistentVolumeClaim")
        | ("", "Service")
        | ("apps", _)
        | ("autoscaling", _)
        | ("batch", _)
        | ("policy", _)
        | ("networking.k8s.io", _)
        | ("apiextensions.k8s.io", _) => &["metadata", "spec"],
        _ => return None,
    };
    Some(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn manifests_drop_options_and_fold_string_data() {
        let inputs = Value::from_json(json!({
            "metadata": {"name": "creds"},
            "stringData": {"password": {"$berth.secret": "hunter2"}},
            "berth": {"forceConflicts": true}
        }));
        let m = manifest(&inputs, "v1", "Secret", Some("edx"));
        assert_eq!(
            m,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "edx"}, "data": {"password": "aHVudGVyMg=="}})
        );
        assert!(ObjectOptions::from_inputs(&inputs).force_conflicts);
        assert!(!ObjectOptions::from_inputs(&inputs).skip_await);
    }

    #[test]
    fn secrets_are_normalised_and_validated_without_echoing_values() {
        let mut inputs = match Value::from_json(json!({
            "data": {"a": "aGk=", "bad": "not base64!"},
            "stringData": {"b": "plain", "a": "again"}
        })) {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let mut failures = Vec::new();
        normalise_secret(&mut inputs, &mut failures);
        let data = inputs["data"].as_object().unwrap();
        assert!(data.values().all(Value::is_secret));
        assert_eq!(data["b"].as_str(), Some("cGxhaW4="));
        let text: Vec<String> = failures.iter().map(|f| f.to_string()).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(text.iter().all(|t| !t.contains("not base64!") && !t.contains("again")), "{text:?}");
        assert!(!inputs.contains_key("stringData"));
    }

    #[test]
    fn names_keys_and_values() {
        assert!(name_problem("edx-lms.v2", NameRule::Subdomain).is_none());
        assert!(name_problem("Edx", NameRule::Subdomain).is_some());
        assert!(name_problem("a.b", NameRule::Label).is_some());
        assert!(name_problem("1web", NameRule::Label1035).is_some());
        assert!(name_problem("web-1", NameRule::Label1035).is_none());
        assert!(key_problem("ol.mit.edu/component").is_none());
        assert!(key_problem("app").is_none());
        assert!(key_problem("Bad Key").is_some());
        assert!(key_problem("UPPER.example/x").is_some());
        assert!(label_value_problem("").is_none());
        assert!(label_value_problem("v1.2_3").is_none());
        assert!(label_value_problem("-x").is_some());
        let name = auto_name("LMS Webapp", &[7; 32]);
        assert!(name.starts_with("lms-webapp-") && name_problem(&name, NameRule::Label1035).is_none(), "{name}");
    }

    #[test]
    fn ids_and_scrubbing() {
        assert_eq!(object_id(Some("edx"), "web"), "edx/web");
        assert_eq!(split_id("edx/web", true, "default"), (Some("edx".into()), "web".into()));
        assert_eq!(split_id("web", true, "default"), (Some("default".into()), "web".into()));
        assert_eq!(split_id("crb", false, "default"), (None, "crb".into()));
        let inputs = Value::from_json(json!({"data": {"k": {"$berth.secret": "aHVudGVyMg=="}}}));
        let secrets = secret_strings(&inputs);
        assert_eq!(scrub("bad value aHVudGVyMg== (hunter2)", &secrets), "bad value [secret] ([secret])");
    }
}
