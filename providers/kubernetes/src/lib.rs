//! berth's `kubernetes` provider: Kubernetes objects applied server-side (field manager
//! `berth`), compared on the fields berth manages, and awaited until usable.
//!
//! - Typed resources ([`resources`]) for the kinds an Open edX deployment uses, with
//!   k8s-openapi's types for their bodies; any other kind, custom resources included, by its
//!   type token through `Stack::register_dynamic` (helpers in [`manifests`]):
//!   `kubernetes:<group>/<version>:<Kind>`, `core/v1` for the core group.
//! - The cluster is found by standard kubeconfig resolution, or by the stack file's
//!   `providers.kubernetes` section ([`KubernetesSettings`]). Building the provider makes no
//!   call: only check (discovery), diff, read and the mutating calls do.
//! - `docs/providers/kubernetes.md` describes every type, what forces replacement, await and
//!   version negotiation.

use std::path::PathBuf;
use std::sync::Arc;

use berth_engine::Provider;
use berth_engine::config::{ConfigError, NodeKind};
use berth_engine::registry::{ProviderPlugin, ProviderSettings};
use serde::Deserialize;

mod check;
pub mod cluster;
mod compare;
pub mod discovery;
pub mod fields;
pub mod kinds;
pub mod manifest;
pub mod manifests;
mod provider;
pub mod readiness;
pub mod resources;
pub mod testing;

pub use cluster::{ClusterSettings, Connection};
pub use k8s_openapi;
pub use kinds::PACKAGE;
pub use provider::KubernetesProvider;
pub use resources::*;

/// The `providers.kubernetes` section of a stack file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSettings {
    /// A kubeconfig file, relative to the project root or absolute. Default: `KUBECONFIG`, then
    /// `~/.kube/config`, then the in-cluster service account.
    pub kubeconfig: Option<String>,
    /// The kubeconfig context to use. Default: its current context.
    pub context: Option<String>,
    /// The namespace of objects that name none. Default: the context's, then `default`.
    pub namespace: Option<String>,
    /// Take over fields that other field managers own instead of failing with a conflict.
    #[serde(default)]
    pub force_conflicts: bool,
}

/// Registers the `kubernetes` package with the `berth` binary.
#[derive(Clone, Copy, Debug, Default)]
pub struct KubernetesPlugin;

impl ProviderPlugin for KubernetesPlugin {
    fn package(&self) -> &str {
        PACKAGE
    }

    fn build(&self, settings: &ProviderSettings) -> Result<Arc<dyn Provider>, ConfigError> {
        let help = "`providers.kubernetes` accepts kubeconfig, context, namespace and force_conflicts";
        let parsed: KubernetesSettings = match &settings.node {
            Some(node) if node.kind == NodeKind::Null => KubernetesSettings::default(),
            _ => settings.parse(PACKAGE).map_err(|e| e.with_help(help))?,
        };
        Ok(provider(parsed, &settings.project_root)?.into_arc())
    }
}

/// The provider for these settings (relative kubeconfig paths resolve against `project_root`).
pub fn provider(settings: KubernetesSettings, project_root: &std::path::Path) -> Result<KubernetesProvider, ConfigError> {
    if let Some(ns) = &settings.namespace
        && let Some(problem) = manifest::name_problem(ns, kinds::NameRule::Label)
    {
        return Err(ConfigError::new(format!("`{ns}` is not a namespace name: it {problem}")).with_key("providers.kubernetes.namespace"));
    }
    let kubeconfig = match settings.kubeconfig {
        Some(path) if path.trim().is_empty() => {
            return Err(ConfigError::new("must be a file path, absolute or relative to the project root")
                .with_key("providers.kubernetes.kubeconfig"));
        }
        Some(path) => Some(project_root.join(PathBuf::from(path))),
        None => None,
    };
    let cluster = ClusterSettings { kubeconfig, context: settings.context, namespace: settings.namespace };
    Ok(KubernetesProvider::new(Connection::new(cluster), settings.force_conflicts))
}

/// The plugin the `berth` binary registers.
pub fn plugin() -> Arc<dyn ProviderPlugin> {
    Arc::new(KubernetesPlugin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_engine::config::parse_yaml;

    fn settings(yaml: &str) -> ProviderSettings {
        let root = parse_yaml("stacks/dev.yaml", yaml).unwrap();
        ProviderSettings { stack: "dev".into(), project_root: "/project".into(), node: root.get_path("providers.kubernetes").cloned() }
    }

    #[test]
    fn builds_without_calling_the_cluster() {
        let plugin = plugin();
        assert_eq!(plugin.package(), "kubernetes");
        let provider = plugin.build(&settings("providers:\n  kubernetes:\n    kubeconfig: kube/config\n    context: qa\n")).unwrap();
        assert!(provider.supports("kubernetes:keda.sh/v1alpha1:ScaledObject"));
        assert!(provider.supports("kubernetes:apps/v1:Deployment"));
        assert!(!provider.supports("kubernetes:Deployment"));
        assert!(plugin.build(&settings("providers:\n  kubernetes:\n")).is_ok());
        assert!(plugin.build(&ProviderSettings { stack: "dev".into(), project_root: "/p".into(), node: None }).is_ok());
    }

    #[test]
    fn settings_errors_name_the_key() {
        let err = plugin().build(&settings("providers:\n  kubernetes:\n    kubeconfg: x\n")).err().unwrap().to_string();
        assert!(err.contains("kubeconfg") && err.contains("stacks/dev.yaml"), "{err}");
        let err = plugin().build(&settings("providers:\n  kubernetes:\n    namespace: Bad_NS\n")).err().unwrap().to_string();
        assert!(err.contains("providers.kubernetes.namespace"), "{err}");
    }
}
