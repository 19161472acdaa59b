//! `check`: inputs validated before any mutating call, with defaults filled in (a name, the
//! namespace), and notes for the plan about the API version the cluster will get.

use std::collections::BTreeMap;

use berth_engine::{CheckFailure, Checked, Value};
use serde_json::Value as Json;

use crate::cluster::Connection;
use crate::discovery::Missing;
use crate::kinds::{Gvk, NameRule, known};
use crate::manifest::{
    OPTIONS_KEY, ObjectOptions, allowed_top_level, auto_name, key_problem, label_value_problem, manifest, name_problem, normalise_secret,
    valid_config_key,
};

/// Validates and normalises one object's inputs. Calls the cluster only for discovery (API
/// versions and scope), and only for kinds that need it; an unreachable cluster is a note.
pub async fn check(
    conn: &Connection,
    gvk: &Gvk,
    logical_name: &str,
    inputs: &Value,
    seed: &[u8; 32],
) -> Result<Checked, Vec<CheckFailure>> {
    let mut map = match inputs {
        Value::Object(map) => map.clone(),
        Value::Null => BTreeMap::new(),
        _ => return Err(vec![CheckFailure::general("inputs must be an object: the manifest without apiVersion and kind")]),
    };
    let mut failures = Vec::new();
    let mut notes = Vec::new();
    for (key, expected) in [("apiVersion", gvk.api_version()), ("kind", gvk.kind.clone())] {
        match map.remove(key) {
            None => {}
            Some(Value::String(given)) if given == expected => {}
            Some(given) => failures.push(CheckFailure::field(
                key,
                format!(
                    "is {} but the type token `{}` says `{expected}`; leave {key} out (the type token sets it)",
                    given.display_short(),
                    gvk.token()
                ),
            )),
        }
    }
    if let Some(allowed) = allowed_top_level(gvk) {
        for key in map.keys().filter(|k| k.as_str() != OPTIONS_KEY && !allowed.contains(&k.as_str())) {
            failures.push(CheckFailure::field(key.clone(), format!("is not a field of {}; it has {}", gvk.kind, allowed.join(", "))));
        }
    }
    if let Some(options) = map.get(OPTIONS_KEY).filter(|v| !v.contains_unknown())
        && let Err(e) = serde_json::from_value::<ObjectOptions>(options.to_json_revealed())
    {
        failures.push(CheckFailure::field(OPTIONS_KEY, format!("{e}; berth's options are forceConflicts and skipAwait")));
    }
    let info = known(gvk);
    let mut namespaced = info.map(|k| k.namespaced);
    if info.is_none_or(|k| !k.fallbacks.is_empty()) {
        match discover(conn, gvk).await {
            Ok((scope, note)) => {
                namespaced = namespaced.or(Some(scope));
                notes.extend(note);
            }
            Err(note) => notes.push(note),
        }
    }
    let needs_namespace = namespaced == Some(true) && !has_namespace(&map);
    let default_namespace = match needs_namespace {
        true => match conn.default_namespace().await {
            Ok(ns) => Some(ns),
            Err(e) => {
                failures.push(CheckFailure::field(
                    "metadata.namespace",
                    format!("is not set, and the default namespace is unknown: {e}; set it, or providers.kubernetes.namespace"),
                ));
                None
            }
        },
        false => None,
    };
    check_metadata(&mut map, gvk, logical_name, seed, namespaced, default_namespace, &mut failures);
    if known(gvk).is_some() && matches!(gvk.group.as_str(), "" | "apps" | "batch") {
        for value in map.values_mut() {
            default_port_protocols(value);
        }
    }
    match (gvk.group.as_str(), gvk.kind.as_str()) {
        ("", "Secret") => normalise_secret(&mut map, &mut failures),
        ("", "ConfigMap") => check_config_map(&map, &mut failures),
        _ => {}
    }
    let inputs = Value::Object(map);
    if failures.is_empty() && !inputs.contains_unknown() && gvk.kind != "Secret" {
        let json = manifest(&inputs, &gvk.api_version(), &gvk.kind, None);
        if let Err(e) = typed_decode(gvk, json) {
            failures.push(CheckFailure::general(format!("does not match the {} schema of {}: {e}", gvk.kind, gvk.api_version())));
        }
    }
    if failures.is_empty() { Ok(Checked { inputs, notes }) } else { Err(failures) }
}

/// The kind's scope, and a note if the cluster serves an older version or does not serve it yet.
async fn discover(conn: &Connection, gvk: &Gvk) -> Result<(bool, Option<String>), String> {
    let cluster = conn.get().await.map_err(|e| format!("API version not checked: {e}"))?;
    match cluster.discovery.resolve(&cluster.client, &cluster.server, gvk).await {
        Ok(target) => {
            let note = target.negotiated_from.as_ref().map(|wanted| {
                format!(
                    "the cluster does not serve {}/{wanted} {}; berth applies it as {} (same schema)",
                    gvk.group,
                    gvk.kind,
                    target.api_version()
                )
            });
            Ok((target.namespaced, note))
        }
        Err(Missing::NotServed(why)) => Err(format!(
            "{why}; if this stack applies its CustomResourceDefinition, it must come first (depends_on), and berth waits for it to be established"
        )),
        Err(Missing::Failed(e)) => Err(format!("API version not checked: {e}")),
    }
}

fn has_namespace(map: &BTreeMap<String, Value>) -> bool {
    let meta = map.get("metadata");
    meta.is_some_and(|m| matches!(m, Value::Unknown))
        || meta.and_then(Value::as_object).and_then(|m| m.get("namespace")).is_some_and(|ns| !ns.is_null())
}

fn check_metadata(
    map: &mut BTreeMap<String, Value>,
    gvk: &Gvk,
    logical_name: &str,
    seed: &[u8; 32],
    namespaced: Option<bool>,
    default_namespace: Option<String>,
    failures: &mut Vec<CheckFailure>,
) {
    let meta = map.entry("metadata".to_string()).or_insert_with(|| Value::Object(BTreeMap::new()));
    if matches!(meta, Value::Null) {
        *meta = Value::Object(BTreeMap::new());
    }
    let Value::Object(meta) = meta else {
        if !matches!(meta, Value::Unknown) {
            failures.push(CheckFailure::field("metadata", "must be an object"));
        }
        return;
    };
    let rule = known(gvk).map(|k| k.name_rule).unwrap_or(NameRule::Subdomain);
    match meta.get("name") {
        None | Some(Value::Null) => {
            if meta.contains_key("generateName") {
                failures.push(CheckFailure::field(
                    "metadata.generateName",
                    "is not supported: berth must find the object again by name; leave metadata.name out and berth chooses one",
                ));
            } else {
                meta.insert("name".into(), Value::String(auto_name(logical_name, seed)));
            }
        }
        Some(Value::String(name)) => {
            if let Some(problem) = name_problem(name, rule) {
                failures.push(CheckFailure::field("metadata.name", format!("`{name}` {problem}")));
            }
        }
        Some(Value::Unknown) => {}
        Some(_) => failures.push(CheckFailure::field("metadata.name", "must be a string")),
    }
    match (meta.get("namespace"), namespaced) {
        (Some(Value::String(_)), Some(false)) => {
            failures.push(CheckFailure::field("metadata.namespace", format!("{} is cluster-scoped: remove metadata.namespace", gvk.kind)))
        }
        (Some(Value::String(ns)), _) => {
            if let Some(problem) = name_problem(ns, NameRule::Label) {
                failures.push(CheckFailure::field("metadata.namespace", format!("`{ns}` {problem}")));
            }
        }
        (None | Some(Value::Null), Some(true)) => {
            if let Some(ns) = default_namespace {
                meta.insert("namespace".into(), Value::String(ns));
            }
        }
        _ => {}
    }
    for field in ["labels", "annotations"] {
        let Some(Value::Object(entries)) = meta.get(field) else { continue };
        for (key, value) in entries {
            if let Some(problem) = key_problem(key) {
                failures.push(CheckFailure::field(format!("metadata.{field}[\"{key}\"]"), format!("key {problem}")));
            }
            match (field, value.unwrap_secret()) {
                ("labels", Value::String(v)) => {
                    if let Some(problem) = label_value_problem(v) {
                        failures.push(CheckFailure::field(format!("metadata.labels[\"{key}\"]"), format!("value `{v}` {problem}")));
                    }
                }
                (_, Value::String(_) | Value::Unknown) => {}
                _ => failures.push(CheckFailure::field(format!("metadata.{field}[\"{key}\"]"), "must be a string")),
            }
        }
    }
}

/// Sets `protocol: TCP` (the API's default) on every Service or container port that names
/// none: server-side apply merges ports by port and protocol, and Kubernetes before 1.21 refuses
/// an applied port without one.
fn default_port_protocols(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "ports"
                    && let Value::Array(ports) = child
                {
                    for port in ports.iter_mut() {
                        if let Value::Object(port) = port
                            && (port.contains_key("port") || port.contains_key("containerPort"))
                            && port.get("protocol").is_none_or(Value::is_null)
                        {
                            port.insert("protocol".into(), Value::String("TCP".into()));
                        }
                    }
                } else {
                    default_port_protocols(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(default_port_protocols),
        _ => {}
    }
}

fn check_config_map(map: &BTreeMap<String, Value>, failures: &mut Vec<CheckFailure>) {
    for field in ["data", "binaryData"] {
        let Some(Value::Object(entries)) = map.get(field).map(Value::unwrap_secret) else { continue };
        for (key, value) in entries {
            if !valid_config_key(key) {
                failures.push(CheckFailure::field(
                    format!("{field}[\"{key}\"]"),
                    "is not a valid key: use letters, digits, `-`, `_` and `.` (at most 253 characters)",
                ));
            }
            if !matches!(value.unwrap_secret(), Value::String(_) | Value::Unknown) {
                failures.push(CheckFailure::field(format!("{field}[\"{key}\"]"), "must be a string"));
            }
        }
    }
}

/// Decodes a manifest into k8s-openapi's type for the kind, so wrong types and missing required
/// fields are reported before any call.
fn typed_decode(gvk: &Gvk, json: Json) -> Result<(), serde_json::Error> {
    use k8s_openapi::api::{apps, autoscaling, batch, core, networking, policy, rbac};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
    fn decode<T: serde::de::DeserializeOwned>(json: Json) -> Result<(), serde_json::Error> {
        serde_json::from_value::<T>(json).map(drop)
    }
    match (gvk.group.as_str(), gvk.version.as_str(), gvk.kind.as_str()) {
        ("", "v1", "Namespace") => decode::<core::v1::Namespace>(json),
        ("", "v1", "ConfigMap") => decode::<core::v1::ConfigMap>(json),
        ("", "v1", "ServiceAccount") => decode::<core::v1::ServiceAccount>(json),
        ("", "v1", "PersistentVolumeClaim") => decode::<core::v1::PersistentVolumeClaim>(json),
        ("", "v1", "Service") => decode::<core::v1::Service>(json),
        ("apps", "v1", "Deployment") => decode::<apps::v1::Deployment>(json),
        ("autoscaling", "v2", "HorizontalPodAutoscaler") => decode::<autoscaling::v2::HorizontalPodAutoscaler>(json),
        ("batch", "v1", "Job") => decode::<batch::v1::Job>(json),
        ("batch", "v1", "CronJob") => decode::<batch::v1::CronJob>(json),
        ("policy", "v1", "PodDisruptionBudget") => decode::<policy::v1::PodDisruptionBudget>(json),
        ("networking.k8s.io", "v1", "Ingress") => decode::<networking::v1::Ingress>(json),
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => decode::<rbac::v1::ClusterRoleBinding>(json),
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition") => decode::<apiextensions::v1::CustomResourceDefinition>(json),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterSettings;
    use serde_json::json;

    /// A connection to nowhere: check must not need the cluster for typed kinds without
    /// version fallbacks.
    fn offline() -> Connection {
        Connection::new(ClusterSettings {
            kubeconfig: Some("/nonexistent/kubeconfig".into()),
            context: None,
            namespace: Some("edx".into()),
        })
    }

    async fn run(token: &str, inputs: Json) -> Result<Checked, Vec<CheckFailure>> {
        let gvk = Gvk::from_token(token).unwrap();
        check(&offline(), &gvk, "lms-web", &Value::from_json(inputs), &[1; 32]).await
    }

    fn texts(failures: Vec<CheckFailure>) -> Vec<String> {
        failures.iter().map(|f| f.to_string()).collect()
    }

    #[tokio::test]
    async fn fills_name_and_namespace_and_validates_offline() {
        let checked = run("kubernetes:core/v1:ConfigMap", json!({"data": {"a.yaml": "x: 1"}})).await.unwrap();
        let meta = checked.inputs.as_object().unwrap()["metadata"].as_object().unwrap().clone();
        assert_eq!(meta["namespace"].as_str(), Some("edx"));
        assert!(meta["name"].as_str().unwrap().starts_with("lms-web-"));
        assert!(checked.notes.is_empty());

        let crb = run(
            "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding",
            json!({
                "metadata": {"name": "x", "namespace": "edx"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"}
            }),
        )
        .await;
        assert!(texts(crb.unwrap_err()).iter().any(|t| t.contains("cluster-scoped")));
    }

    #[tokio::test]
    async fn reports_every_mistake_at_once() {
        let failures = texts(
            run(
                "kubernetes:apps/v1:Deployment",
                json!({
                    "apiVersion": "apps/v1beta1",
                    "metadata": {"name": "Web_App", "labels": {"ol.mit.edu/component": "-bad", "Bad Key": "x"}},
                    "spec": {},
                    "replica": 2
                }),
            )
            .await
            .unwrap_err(),
        );
        let all = failures.join("\n");
        for expected in
            ["apiVersion", "metadata.name", "DNS-1123", "ol.mit.edu/component", "Bad Key", "replica: is not a field of Deployment"]
        {
            assert!(all.contains(expected), "missing {expected}: {all}");
        }
    }

    #[tokio::test]
    async fn schema_errors_and_options() {
        let failures = texts(
            run("kubernetes:apps/v1:Deployment", json!({"metadata": {"name": "web"}, "spec": {"replicas": "two"}})).await.unwrap_err(),
        );
        assert!(failures[0].contains("Deployment schema"), "{failures:?}");
        let failures =
            texts(run("kubernetes:core/v1:Namespace", json!({"metadata": {"name": "x"}, "berth": {"force": true}})).await.unwrap_err());
        assert!(failures[0].contains("forceConflicts"), "{failures:?}");
        // Unknown values (outputs of resources not yet created) are accepted at plan time.
        let checked = run(
            "kubernetes:core/v1:ServiceAccount",
            json!({
                "metadata": {"name": "edxapp", "annotations": {"eks.amazonaws.com/role-arn": {"$berth.unknown": true}}}
            }),
        )
        .await
        .unwrap();
        assert!(checked.inputs.contains_unknown());
    }

    #[tokio::test]
    async fn ports_get_the_default_protocol() {
        let checked = run(
            "kubernetes:core/v1:Service",
            json!({
                "metadata": {"name": "lms"}, "spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}
            }),
        )
        .await
        .unwrap();
        let ports = checked.inputs.to_json_revealed()["spec"]["ports"].clone();
        assert_eq!(ports, json!([{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]));
        let checked = run("kubernetes:apps/v1:Deployment", json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 8000}]}]}}}
        }))
        .await
        .unwrap();
        assert_eq!(checked.inputs.to_json_revealed()["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
    }

    #[tokio::test]
    async fn kinds_needing_discovery_get_a_note_when_the_cluster_is_unreachable() {
        let checked = run(
            "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
            json!({
                "metadata": {"name": "web", "namespace": "edx"},
                "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3}
            }),
        )
        .await
        .unwrap();
        assert_eq!(checked.notes.len(), 1);
        assert!(checked.notes[0].contains("API version not checked"), "{:?}", checked.notes);
    }
}
