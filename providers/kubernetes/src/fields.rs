//! The fields a field manager owns (`metadata.managedFields`, format `FieldsV1`), and an object
//! cut down to them. berth compares objects only on the fields it manages, so defaults the server
//! fills in, and fields other controllers own, never show as changes.
//!
//! `FieldsV1` is a tree whose keys are `f:<field>` (a map field), `k:<json>` (a list element by
//! its merge key, e.g. `k:{"name":"web"}`), `v:<json>` (a set element by value), `i:<n>` (a list
//! element by index) and `.` (the element itself).

use serde_json::{Map, Value as Json};

/// The manager berth applies as.
pub const FIELD_MANAGER: &str = "berth";

/// The union of every field set `manager` holds on `object` (any operation, any version).
pub fn managed_by(object: &Json, manager: &str) -> Option<Json> {
    let entries = object.pointer("/metadata/managedFields")?.as_array()?;
    let mut union: Option<Json> = None;
    for entry in entries.iter().filter(|e| e.get("manager").and_then(Json::as_str) == Some(manager)) {
        if let Some(fields) = entry.get("fieldsV1") {
            union = Some(match union {
                Some(acc) => merge(&acc, fields),
                None => fields.clone(),
            });
        }
    }
    union
}

/// Whether `manager` owns any field of `object`.
pub fn is_managed_by(object: &Json, manager: &str) -> bool {
    managed_by(object, manager).is_some()
}

/// Every manager that holds fields of `object`, with the operation it used.
pub fn managers(object: &Json) -> Vec<String> {
    let Some(entries) = object.pointer("/metadata/managedFields").and_then(Json::as_array) else { return Vec::new() };
    entries
        .iter()
        .filter_map(|e| {
            let manager = e.get("manager")?.as_str()?;
            let operation = e.get("operation").and_then(Json::as_str).unwrap_or("?");
            Some(format!("{manager} ({operation})"))
        })
        .collect()
}

/// The union of two field sets.
pub fn merge(a: &Json, b: &Json) -> Json {
    match (a, b) {
        (Json::Object(x), Json::Object(y)) => {
            let mut out = x.clone();
            for (key, value) in y {
                let merged = match out.get(key) {
                    Some(existing) => merge(existing, value),
                    None => value.clone(),
                };
                out.insert(key.clone(), merged);
            }
            Json::Object(out)
        }
        (Json::Object(_), _) => a.clone(),
        _ => b.clone(),
    }
}

/// `value` cut down to the fields in `fields`. A field whose set has no children is kept whole.
pub fn project(value: &Json, fields: &Json) -> Json {
    let Some(set) = fields.as_object() else { return value.clone() };
    let children: Vec<(&String, &Json)> = set.iter().filter(|(k, _)| k.as_str() != ".").collect();
    if children.is_empty() {
        return value.clone();
    }
    match value {
        Json::Object(map) => {
            let mut out = Map::new();
            for (key, sub) in children {
                if let Some(name) = key.strip_prefix("f:")
                    && let Some(child) = map.get(name)
                {
                    out.insert(name.to_string(), project(child, sub));
                }
            }
            Json::Object(out)
        }
        Json::Array(items) => {
            let mut selected: Vec<(usize, Json)> = Vec::new();
            for (key, sub) in children {
                for (index, item) in items.iter().enumerate() {
                    if element_matches(key, index, item) && !selected.iter().any(|(i, _)| *i == index) {
                        selected.push((index, project(item, sub)));
                    }
                }
            }
            selected.sort_by_key(|(i, _)| *i);
            Json::Array(selected.into_iter().map(|(_, v)| v).collect())
        }
        other => other.clone(),
    }
}

fn element_matches(key: &str, index: usize, item: &Json) -> bool {
    if let Some(spec) = key.strip_prefix("k:") {
        let Ok(Json::Object(wanted)) = serde_json::from_str::<Json>(spec) else { return false };
        return wanted.iter().all(|(k, v)| item.get(k).is_some_and(|actual| same_scalar(actual, v)));
    }
    if let Some(spec) = key.strip_prefix("v:") {
        return serde_json::from_str::<Json>(spec).is_ok_and(|wanted| &wanted == item);
    }
    if let Some(spec) = key.strip_prefix("i:") {
        return spec.parse::<usize>().is_ok_and(|i| i == index);
    }
    false
}

/// Merge keys compare as the server serialised them: `{"containerPort":80}` matches 80 or 80.0.
fn same_scalar(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Json {
        json!({
            "metadata": {
                "name": "web", "labels": {"app": "web", "added-by-someone": "x"},
                "managedFields": [
                    {"manager": "berth", "operation": "Apply", "fieldsV1": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                            "k:{\"name\":\"web\"}": {".": {}, "f:name": {}, "f:image": {}, "f:ports": {
                                "k:{\"containerPort\":8000,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}
                            }}
                        }}}}
                    }},
                    {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:status": {"f:replicas": {}}}},
                    {"manager": "berth", "operation": "Apply", "fieldsV1": {"f:metadata": {"f:annotations": {"f:note": {}}}}}
                ]
            },
            "spec": {
                "replicas": 2, "revisionHistoryLimit": 10,
                "template": {"spec": {"containers": [
                    {"name": "sidecar", "image": "envoy"},
                    {"name": "web", "image": "edx:1", "imagePullPolicy": "IfNotPresent",
                     "ports": [{"containerPort": 8000, "protocol": "TCP", "name": "http"}]}
                ]}}
            },
            "status": {"replicas": 2}
        })
    }

    #[test]
    fn projects_onto_berths_fields_only() {
        let object = deployment();
        let fields = managed_by(&object, FIELD_MANAGER).unwrap();
        assert!(fields.pointer("/f:metadata/f:annotations").is_some(), "entries are merged");
        let projected = project(&object, &fields);
        assert_eq!(
            projected,
            json!({
                "metadata": {"labels": {"app": "web"}},
                "spec": {"replicas": 2, "template": {"spec": {"containers": [
                    {"name": "web", "image": "edx:1", "ports": [{"containerPort": 8000}]}
                ]}}}
            })
        );
        assert!(is_managed_by(&object, "kube-controller-manager"));
        assert!(!is_managed_by(&object, "kubectl"));
        assert_eq!(managers(&object), vec!["berth (Apply)", "kube-controller-manager (Update)", "berth (Apply)"]);
    }

    #[test]
    fn set_and_index_elements() {
        let value = json!({"finalizers": ["a", "b"], "args": ["x", "y"]});
        let fields = json!({"f:finalizers": {"v:\"b\"": {}}, "f:args": {"i:0": {}}});
        assert_eq!(project(&value, &fields), json!({"finalizers": ["b"], "args": ["x"]}));
        let atomic = json!({"f:args": {}});
        assert_eq!(project(&value, &atomic), json!({"args": ["x", "y"]}));
    }

    #[test]
    fn merge_is_a_union() {
        let a = json!({"f:spec": {"f:a": {}}});
        let b = json!({"f:spec": {"f:b": {}}, "f:metadata": {}});
        assert_eq!(merge(&a, &b), json!({"f:spec": {"f:a": {}, "f:b": {}}, "f:metadata": {}}));
    }
}
