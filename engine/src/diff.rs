//! Field-level differences between two values, and the default way a provider judges them.

use crate::provider::DiffResponse;
use crate::value::{Path, Value};

/// How one field changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiffKind {
    Add,
    Delete,
    Update,
}

/// One changed field, with both values (masked when rendered).
#[derive(Clone, Debug, PartialEq)]
pub struct FieldDiff {
    pub path: Path,
    pub kind: DiffKind,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

impl FieldDiff {
    /// True when the new value is not known until apply.
    pub fn new_is_unknown(&self) -> bool {
        self.new.as_ref().is_some_and(Value::contains_unknown)
    }
}

/// Structural differences from `old` to `new`. Absent and `null` are the same; secret and plain
/// forms of one value are the same; an unknown new value is a change (it may differ).
pub fn diff_values(old: &Value, new: &Value) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    walk(&Path::root(), old, new, &mut out);
    out
}

fn walk(path: &Path, old: &Value, new: &Value, out: &mut Vec<FieldDiff>) {
    // Secrecy travels to children so that nested fields of a secret stay masked.
    let old_secret = old.is_secret();
    let new_secret = new.is_secret();
    let wrap = |v: &Value, secret: bool| if secret { v.clone().into_secret() } else { v.clone() };
    match (old.unwrap_secret(), new.unwrap_secret()) {
        (_, Value::Unknown) => {
            out.push(FieldDiff { path: path.clone(), kind: DiffKind::Update, old: Some(old.clone()), new: Some(Value::Unknown) })
        }
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let child = path.child_key(key);
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => walk(&child, &wrap(x, old_secret), &wrap(y, new_secret), out),
                    (Some(x), None) if !x.is_null() => {
                        out.push(FieldDiff { path: child, kind: DiffKind::Delete, old: Some(wrap(x, old_secret)), new: None })
                    }
                    (None, Some(y)) if !y.is_null() => {
                        out.push(FieldDiff { path: child, kind: DiffKind::Add, old: None, new: Some(wrap(y, new_secret)) })
                    }
                    _ => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                let child = path.child_index(i);
                match (a.get(i), b.get(i)) {
                    (Some(x), Some(y)) => walk(&child, &wrap(x, old_secret), &wrap(y, new_secret), out),
                    (Some(x), None) => {
                        out.push(FieldDiff { path: child, kind: DiffKind::Delete, old: Some(wrap(x, old_secret)), new: None })
                    }
                    (None, Some(y)) => out.push(FieldDiff { path: child, kind: DiffKind::Add, old: None, new: Some(wrap(y, new_secret)) }),
                    (None, None) => {}
                }
            }
        }
        (Value::Null, y) if !path.is_root() => {
            out.push(FieldDiff { path: path.clone(), kind: DiffKind::Add, old: None, new: Some(wrap(y, new_secret)) })
        }
        (x, Value::Null) if !path.is_root() => {
            out.push(FieldDiff { path: path.clone(), kind: DiffKind::Delete, old: Some(wrap(x, old_secret)), new: None })
        }
        (x, y) => {
            if !x.same_content(y) {
                out.push(FieldDiff { path: path.clone(), kind: DiffKind::Update, old: Some(old.clone()), new: Some(new.clone()) });
            }
        }
    }
}

/// Whether a change at `changed` touches the field `pattern` (either lies inside the other).
pub fn path_overlaps(changed: &Path, pattern: &Path) -> bool {
    changed.starts_with(pattern) || pattern.starts_with(changed)
}

/// The standard judgement most resource types need: a structural diff, where a change to any of
/// `replace_on` forces replacement, and replacement deletes first when `fixed_name` (the input
/// holding the physical name) is set and unchanged.
pub fn default_diff(old_inputs: &Value, new_inputs: &Value, replace_on: &[Path], fixed_name: Option<&Path>) -> DiffResponse {
    let changes = diff_values(old_inputs, new_inputs);
    let replace_paths: Vec<Path> =
        changes.iter().filter(|c| replace_on.iter().any(|p| path_overlaps(&c.path, p))).map(|c| c.path.clone()).collect();
    let delete_before_replace = !replace_paths.is_empty()
        && fixed_name.is_some_and(|name| {
            let set = new_inputs.get_path(name).is_some_and(|v| !v.is_null());
            set && !changes.iter().any(|c| path_overlaps(&c.path, name))
        });
    DiffResponse { changes, replace_paths, delete_before_replace, unknown_outputs: Vec::new(), recorded: Vec::new() }
}

/// Keeps recorded values for ignored paths: the desired value at each path is replaced by the
/// old one (or removed if the old had none). Paths that do not parse are reported.
pub fn apply_ignore_changes(old: &Value, new: &mut Value, paths: &[Path]) {
    for path in paths {
        match old.get_path(path) {
            Some(previous) => {
                new.set_path(path, previous);
            }
            None => {
                new.remove_path(path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(j: serde_json::Value) -> Value {
        Value::from_json(j)
    }

    fn p(s: &str) -> Path {
        Path::parse(s).unwrap()
    }

    #[test]
    fn reports_nested_adds_deletes_updates() {
        let old = v(json!({"a": 1, "tags": {"x": "1", "y": "2"}, "list": [1, 2, 3], "gone": null}));
        let new = v(json!({"a": 2, "tags": {"x": "1", "z": "3"}, "list": [1, 5]}));
        let d = diff_values(&old, &new);
        let summary: Vec<(String, DiffKind)> = d.iter().map(|f| (f.path.to_string(), f.kind)).collect();
        assert_eq!(
            summary,
            vec![
                ("a".into(), DiffKind::Update),
                ("list[1]".into(), DiffKind::Update),
                ("list[2]".into(), DiffKind::Delete),
                ("tags.y".into(), DiffKind::Delete),
                ("tags.z".into(), DiffKind::Add),
            ]
        );
    }

    #[test]
    fn unknown_is_a_change_and_secrets_stay_masked() {
        let old = v(json!({"pw": {"$berth.secret": "a"}, "addr": "x"}));
        let new = v(json!({"pw": {"$berth.secret": "b"}, "addr": {"$berth.unknown": true}}));
        let d = diff_values(&old, &new);
        assert_eq!(d.len(), 2);
        assert!(d[0].new_is_unknown());
        assert!(d[1].old.as_ref().unwrap().is_secret() && d[1].new.as_ref().unwrap().is_secret());
        assert!(diff_values(&v(json!({"pw": "a"})), &v(json!({"pw": {"$berth.secret": "a"}}))).is_empty());
    }

    #[test]
    fn default_diff_replaces_and_orders() {
        let old = v(json!({"name": "db1", "engine": "mysql", "size": 10}));
        let engine_change = v(json!({"name": "db1", "engine": "mariadb", "size": 10}));
        let r = default_diff(&old, &engine_change, &[p("engine")], Some(&p("name")));
        assert_eq!(r.replace_paths, vec![p("engine")]);
        assert!(r.delete_before_replace, "same fixed name: must delete first");
        let renamed = v(json!({"name": "db2", "engine": "mariadb", "size": 10}));
        let r = default_diff(&old, &renamed, &[p("engine"), p("name")], Some(&p("name")));
        assert!(!r.delete_before_replace, "a new name can be created alongside the old");
        let resize = v(json!({"name": "db1", "engine": "mysql", "size": 20}));
        let r = default_diff(&old, &resize, &[p("engine")], Some(&p("name")));
        assert!(r.has_changes() && !r.needs_replace());
    }

    #[test]
    fn ignore_changes_keeps_old_values() {
        let old = v(json!({"tags": {"a": "1"}, "size": 1}));
        let mut new = v(json!({"tags": {"a": "2", "b": "3"}, "size": 2, "extra": 1}));
        apply_ignore_changes(&old, &mut new, &[p("tags"), p("extra")]);
        assert_eq!(new, v(json!({"tags": {"a": "1"}, "size": 2})));
    }

    #[test]
    fn write_only_values_are_recorded_when_the_live_one_is_unreadable() {
        let secret = |s: &str| Value::Secret(Box::new(Value::String(s.into())));
        let obj = |password: Value, size: i64| {
            let mut map = std::collections::BTreeMap::new();
            map.insert("password".to_string(), password);
            map.insert("size".to_string(), v(json!(size)));
            Value::Object(map)
        };
        // Imported: the password reads back empty; the configured one is recorded, not applied.
        let (old, new) = (obj(secret(""), 1), obj(secret("s3cret-value"), 1));
        let mut response = default_diff(&old, &new, &[], None);
        response.record_write_only(&old, &new, &p("password"));
        assert!(response.changes.is_empty(), "{:?}", response.changes);
        assert_eq!(response.recorded.len(), 1);
        assert!(response.recorded[0].starts_with("password"));
        // Other changes still count.
        let new = obj(secret("s3cret-value"), 2);
        let mut response = default_diff(&old, &new, &[], None);
        response.record_write_only(&old, &new, &p("password"));
        assert_eq!(response.changes.iter().map(|c| c.path.to_string()).collect::<Vec<_>>(), vec!["size"]);
        // A known recorded password that changes is a real change.
        let (old, new) = (obj(secret("old-value-1"), 1), obj(secret("new-value-2"), 1));
        let mut response = default_diff(&old, &new, &[], None);
        response.record_write_only(&old, &new, &p("password"));
        assert_eq!(response.changes.len(), 1);
        assert!(response.recorded.is_empty());
    }
}
