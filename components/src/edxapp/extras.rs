//! `edxapp.extra_manifests`: the operator's own Kubernetes objects, deployed with the stack and
//! checked with it (a Service among them must select the pods of exactly one workload).

use berth_engine::{Options, ProgramResult, Stack};
use berth_provider_kubernetes::manifests;
use serde_json::Value as Json;

use crate::edxapp::Ctx;
use crate::edxapp::checks::Workloads;

/// Kinds whose pod template labels make them workloads a Service may select.
const WORKLOAD_KINDS: [&str; 3] = ["Deployment", "StatefulSet", "DaemonSet"];

pub fn register(stack: &mut Stack, ctx: &Ctx, workloads: &mut Workloads) -> ProgramResult {
    if ctx.config.extra_manifests.is_empty() {
        return Ok(());
    }
    stack.component("edxapp:index:ExtraManifests", "extra-manifests", Options::new(), |stack, _| -> ProgramResult {
        for file in &ctx.config.extra_manifests {
            let path = stack.project_dir().join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| format!("config.edxapp.extra_manifests: cannot read {file}: {e}"))?;
            let documents = manifests::from_yaml(&text).map_err(|e| format!("config.edxapp.extra_manifests: {file}: {e}"))?;
            for mut manifest in documents {
                let kind = manifest["kind"].as_str().unwrap_or_default().to_string();
                let name = manifest.pointer("/metadata/name").and_then(Json::as_str).unwrap_or_default().to_string();
                if let Some(meta) = manifest.get_mut("metadata").and_then(Json::as_object_mut)
                    && !meta.contains_key("namespace")
                    && !is_cluster_scoped(&kind)
                {
                    meta.insert("namespace".into(), Json::String(ctx.namespace.clone()));
                }
                let labels = |pointer: &str| -> std::collections::BTreeMap<String, String> {
                    manifest
                        .pointer(pointer)
                        .and_then(Json::as_object)
                        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect())
                        .unwrap_or_default()
                };
                let what = format!("{name} (from {file})");
                if kind == "Service" && manifest.pointer("/spec/selector").is_some() {
                    workloads.add_service(&what, labels("/spec/selector"));
                } else if WORKLOAD_KINDS.contains(&kind.as_str()) {
                    workloads.add_workload(&what, labels("/spec/template/metadata/labels"));
                }
                manifests::register(stack, Some(&format!("{}-{name}", kind.to_ascii_lowercase())), &manifest, Options::new())
                    .map_err(|e| format!("config.edxapp.extra_manifests: {file}: {kind} {name}: {e}"))?;
            }
        }
        Ok(())
    })
}

/// The built-in cluster-scoped kinds an operator might list (custom ones name no namespace
/// themselves, or get the stack's, which the API server ignores for cluster-scoped kinds).
fn is_cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace" | "ClusterRole" | "ClusterRoleBinding" | "CustomResourceDefinition" | "PriorityClass" | "StorageClass" | "IngressClass"
    )
}
