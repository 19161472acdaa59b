//! Comparing a live object with what applying berth's manifest would make of it (a server-side
//! dry-run), on the fields berth manages only: what the plan shows as changes, and what refresh
//! reports as drift.

use berth_engine::diff::{FieldDiff, diff_values, path_overlaps};
use berth_engine::{Path, Value};
use serde_json::Value as Json;

use crate::fields::{FIELD_MANAGER, managed_by, merge, project};
use crate::kinds::{Gvk, known};
use crate::manifest::OPTIONS_KEY;

/// The fields that change from `before` to `after`, both cut down to the fields berth manages
/// on either (so a field berth stops setting shows as removed). Secret paths are masked.
pub fn managed_changes(before: &Json, after: &Json, gvk: &Gvk, inputs: &Value) -> Vec<FieldDiff> {
    let fields = match (managed_by(before, FIELD_MANAGER), managed_by(after, FIELD_MANAGER)) {
        (Some(a), Some(b)) => merge(&a, &b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return Vec::new(),
    };
    let old = Value::from_json(project(before, &fields));
    let new = Value::from_json(project(after, &fields));
    mask(diff_values(&old, &new), gvk, inputs)
}

/// Marks as secret every change at or under a secret input, and all of a Secret's data.
pub fn mask(changes: Vec<FieldDiff>, gvk: &Gvk, inputs: &Value) -> Vec<FieldDiff> {
    changes
        .into_iter()
        .map(|mut change| {
            if is_secret_path(gvk, inputs, &change.path) {
                change.old = change.old.map(Value::into_secret);
                change.new = change.new.map(Value::into_secret);
            }
            change
        })
        .collect()
}

/// Whether the value at `path` is secret: a Secret's data, or under a secret input.
pub fn is_secret_path(gvk: &Gvk, inputs: &Value, path: &Path) -> bool {
    if gvk.group.is_empty() && gvk.kind == "Secret" && matches!(path.first_key(), Some("data" | "stringData")) {
        return true;
    }
    let mut current = Path::root();
    for segment in &path.0 {
        current = Path(current.0.iter().cloned().chain(std::iter::once(segment.clone())).collect());
        match inputs.get_path(&current) {
            Some(value) if value.is_secret() => return true,
            Some(_) => {}
            None => return false,
        }
    }
    false
}

/// Input paths whose change replaces the object: its name and namespace, the kind's immutable
/// fields, and the data of a ConfigMap or Secret marked immutable.
pub fn replace_paths(gvk: &Gvk, old_inputs: &Value) -> Vec<Path> {
    let mut paths = vec!["metadata.name", "metadata.namespace"];
    if let Some(info) = known(gvk) {
        paths.extend(info.replace_on.iter().copied());
    }
    let immutable = old_inputs.as_object().and_then(|m| m.get("immutable")).and_then(|v| match v.unwrap_secret() {
        Value::Bool(b) => Some(*b),
        _ => None,
    });
    if gvk.group.is_empty() && matches!(gvk.kind.as_str(), "ConfigMap" | "Secret") && immutable == Some(true) {
        paths.extend(["data", "binaryData", "stringData", "immutable"]);
    }
    paths.into_iter().filter_map(|p| Path::parse(p).ok()).collect()
}

/// The changes that touch any of `replace_on`.
pub fn forcing_replacement(changes: &[FieldDiff], replace_on: &[Path]) -> Vec<Path> {
    changes.iter().filter(|c| replace_on.iter().any(|p| path_overlaps(&c.path, p))).map(|c| c.path.clone()).collect()
}

/// Inputs as the live object has them: `prior` (what berth recorded) with each drifted field
/// set to its live value, or removed where the live object lacks it.
pub fn drifted_inputs(prior: &Value, drift: &[FieldDiff]) -> Value {
    let mut inputs = prior.clone();
    for change in drift {
        if change.path.first_key() == Some(OPTIONS_KEY) {
            continue;
        }
        match &change.new {
            // A path that crosses a list berth's manifest does not have is left as recorded.
            Some(live) => {
                let _ = inputs.set_path(&change.path, live.clone());
            }
            None => {
                inputs.remove_path(&change.path);
            }
        }
    }
    inputs
}

/// Inputs for an object berth did not record (an import): the fields berth manages if it
/// manages any, else everything but status and server-set metadata.
pub fn imported_inputs(live: &Json, gvk: &Gvk) -> Value {
    let mut body = match managed_by(live, FIELD_MANAGER) {
        Some(fields) => project(live, &fields),
        None => live.clone(),
    };
    if let Json::Object(map) = &mut body {
        for key in ["apiVersion", "kind", "status"] {
            map.remove(key);
        }
        let meta = map.entry("metadata").or_insert_with(|| Json::Object(Default::default()));
        if let Json::Object(meta) = meta {
            for key in ["uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink", "deletionTimestamp"] {
                meta.remove(key);
            }
            if let Some(Json::Object(annotations)) = meta.get_mut("annotations") {
                annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
            }
            for key in ["name", "namespace"] {
                if let Some(value) = live.pointer(&format!("/metadata/{key}")) {
                    meta.insert(key.to_string(), value.clone());
                }
            }
        }
    }
    let mut value = Value::from_json(body);
    if gvk.group.is_empty()
        && gvk.kind == "Secret"
        && let Value::Object(map) = &mut value
        && let Some(Value::Object(data)) = map.get_mut("data")
    {
        for item in data.values_mut() {
            *item = std::mem::take(item).into_secret();
        }
    }
    value
}

/// What berth records as a resource's outputs: where it is, its uid, and its status.
pub fn outputs_of(live: &Json) -> Value {
    let mut out = serde_json::Map::new();
    for (key, pointer) in [
        ("apiVersion", "/apiVersion"),
        ("kind", "/kind"),
        ("name", "/metadata/name"),
        ("namespace", "/metadata/namespace"),
        ("uid", "/metadata/uid"),
    ] {
        if let Some(value) = live.pointer(pointer) {
            out.insert(key.to_string(), value.clone());
        }
    }
    if let Some(ip) = live.pointer("/spec/clusterIP").filter(|_| live.get("kind").and_then(Json::as_str) == Some("Service")) {
        out.insert("clusterIP".into(), ip.clone());
    }
    if let Some(status) = live.get("status").filter(|s| s.as_object().is_some_and(|m| !m.is_empty())) {
        out.insert("status".into(), status.clone());
    }
    Value::from_json(Json::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_engine::DiffKind;
    use serde_json::json;

    fn managed(object: Json, fields: Json) -> Json {
        let mut object = object;
        object["metadata"]["managedFields"] = json!([{"manager": "berth", "operation": "Apply", "fieldsV1": fields}]);
        object
    }

    #[test]
    fn server_defaults_never_show_and_removed_fields_do() {
        let live = managed(
            json!({"metadata": {"name": "web", "labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 2, "revisionHistoryLimit": 10}}),
            json!({"f:metadata": {"f:labels": {"f:a": {}, "f:b": {}}}, "f:spec": {"f:replicas": {}}}),
        );
        let dry = managed(
            json!({"metadata": {"name": "web", "labels": {"a": "1"}}, "spec": {"replicas": 3, "revisionHistoryLimit": 10}}),
            json!({"f:metadata": {"f:labels": {"f:a": {}}}, "f:spec": {"f:replicas": {}}}),
        );
        let gvk = Gvk::new("apps", "v1", "Deployment");
        let changes = managed_changes(&live, &dry, &gvk, &Value::Null);
        let summary: Vec<(String, DiffKind)> = changes.iter().map(|c| (c.path.to_string(), c.kind)).collect();
        assert_eq!(summary, vec![("metadata.labels.b".into(), DiffKind::Delete), ("spec.replicas".into(), DiffKind::Update)]);
        assert!(managed_changes(&live, &live, &gvk, &Value::Null).is_empty());
    }

    #[test]
    fn secret_data_is_always_masked() {
        let fields = json!({"f:data": {"f:password": {}}});
        let live = managed(json!({"metadata": {}, "data": {"password": "YQ=="}}), fields.clone());
        let dry = managed(json!({"metadata": {}, "data": {"password": "Yg=="}}), fields);
        let changes = managed_changes(&live, &dry, &Gvk::new("", "v1", "Secret"), &Value::Null);
        assert_eq!(changes.len(), 1);
        assert!(changes[0].old.as_ref().unwrap().is_secret() && changes[0].new.as_ref().unwrap().is_secret());
        // Elsewhere, a change under a secret input is masked too.
        let inputs = Value::from_json(json!({"spec": {"token": {"$berth.secret": "x"}}}));
        assert!(is_secret_path(&Gvk::new("example.com", "v1", "Thing"), &inputs, &Path::parse("spec.token").unwrap()));
        assert!(!is_secret_path(&Gvk::new("example.com", "v1", "Thing"), &inputs, &Path::parse("spec.other").unwrap()));
    }

    #[test]
    fn replacement_paths() {
        let job = replace_paths(&Gvk::new("batch", "v1", "Job"), &Value::Null);
        assert!(job.contains(&Path::parse("spec.template").unwrap()));
        let frozen = Value::from_json(json!({"immutable": true}));
        assert!(replace_paths(&Gvk::new("", "v1", "ConfigMap"), &frozen).contains(&Path::parse("data").unwrap()));
        assert!(!replace_paths(&Gvk::new("", "v1", "ConfigMap"), &Value::Null).contains(&Path::parse("data").unwrap()));
    }

    #[test]
    fn drift_is_folded_into_the_recorded_inputs() {
        let prior = Value::from_json(json!({"metadata": {"name": "web", "labels": {"a": "1"}}, "spec": {"replicas": 2}}));
        let drift = vec![
            FieldDiff { path: Path::parse("spec.replicas").unwrap(), kind: DiffKind::Update, old: Some(2.into()), new: Some(5.into()) },
            FieldDiff { path: Path::parse("metadata.labels.a").unwrap(), kind: DiffKind::Delete, old: Some("1".into()), new: None },
        ];
        let observed = drifted_inputs(&prior, &drift);
        assert_eq!(observed, Value::from_json(json!({"metadata": {"name": "web", "labels": {}}, "spec": {"replicas": 5}})));
    }

    #[test]
    fn outputs_and_imports() {
        let live = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "edx", "uid": "u1", "resourceVersion": "7",
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "keep": "yes"}},
            "spec": {"clusterIP": "10.0.0.5", "ports": [{"port": 80}]},
            "status": {"loadBalancer": {}}
        });
        let outputs = outputs_of(&live).to_json_revealed();
        assert_eq!(
            outputs,
            json!({"apiVersion": "v1", "kind": "Service", "name": "web", "namespace": "edx", "uid": "u1", "clusterIP": "10.0.0.5", "status": {"loadBalancer": {}}})
        );
        let imported = imported_inputs(&live, &Gvk::new("", "v1", "Service")).to_json_revealed();
        assert_eq!(
            imported,
            json!({"metadata": {"name": "web", "namespace": "edx", "annotations": {"keep": "yes"}}, "spec": {"clusterIP": "10.0.0.5", "ports": [{"port": 80}]}})
        );
    }
}
