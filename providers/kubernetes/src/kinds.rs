//! Type tokens (`kubernetes:apps/v1:Deployment`) and what berth knows statically about the kinds
//! it has typed resources for: scope, plural, the older API versions a cluster may serve instead,
//! and which fields cannot change in place.

use std::fmt;

/// The package name every type token starts with.
pub const PACKAGE: &str = "kubernetes";

/// A group, version and kind, parsed from a type token.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gvk {
    /// Empty for the core group (`core/v1` in tokens, `v1` in manifests).
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl Gvk {
    pub fn new(group: &str, version: &str, kind: &str) -> Gvk {
        Gvk { group: group.to_string(), version: version.to_string(), kind: kind.to_string() }
    }

    /// Parses `kubernetes:<group>/<version>:<Kind>` (`core/v1` for the core group).
    pub fn from_token(token: &str) -> Result<Gvk, String> {
        let mut parts = token.split(':');
        let (package, group_version, kind) = (parts.next(), parts.next(), parts.next());
        let bad = || {
            format!(
                "`{token}` is not a kubernetes type token; expected `kubernetes:<group>/<version>:<Kind>`, e.g. `kubernetes:apps/v1:Deployment` or `kubernetes:core/v1:ConfigMap`"
            )
        };
        if package != Some(PACKAGE) || parts.next().is_some() {
            return Err(bad());
        }
        let (Some(group_version), Some(kind)) = (group_version, kind) else { return Err(bad()) };
        let (group, version) = group_version.rsplit_once('/').ok_or_else(bad)?;
        let valid_kind = kind.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && kind.chars().all(|c| c.is_ascii_alphanumeric());
        if group.is_empty() || version.is_empty() || !valid_kind {
            return Err(bad());
        }
        let group = if group == "core" { "" } else { group };
        Ok(Gvk::new(group, version, kind))
    }

    /// `apps/v1`, or `v1` for the core group: what a manifest's `apiVersion` holds.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// The same kind in another version of its group.
    pub fn with_version(&self, version: &str) -> Gvk {
        Gvk { version: version.to_string(), ..self.clone() }
    }

    pub fn token(&self) -> String {
        let group = if self.group.is_empty() { "core" } else { &self.group };
        format!("{PACKAGE}:{group}/{}:{}", self.version, self.kind)
    }
}

impl fmt::Display for Gvk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.api_version(), self.kind)
    }
}

/// Which names the API accepts for a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain: lower case alphanumerics, `-` and `.`, at most 253 characters.
    Subdomain,
    /// DNS-1123 label: lower case alphanumerics and `-`, at most 63 characters (Namespace).
    Label,
    /// DNS-1035 label: a DNS-1123 label that starts with a letter (Service).
    Label1035,
}

/// What berth knows about a kind without asking the cluster.
#[derive(Clone, Copy, Debug)]
pub struct KindInfo {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
    /// Older versions of the same group with the same schema, tried in order when the cluster
    /// does not serve `version` (Kubernetes before 1.21/1.23).
    pub fallbacks: &'static [&'static str],
    /// Fields the API refuses to change in place: changing them replaces the object.
    pub replace_on: &'static [&'static str],
    pub name_rule: NameRule,
}

const fn kind(group: &'static str, version: &'static str, kind: &'static str, plural: &'static str, namespaced: bool) -> KindInfo {
    KindInfo { group, version, kind, plural, namespaced, fallbacks: &[], replace_on: &[], name_rule: NameRule::Subdomain }
}

/// The kinds berth has typed resources for.
pub const KNOWN_KINDS: &[KindInfo] = &[
    KindInfo { name_rule: NameRule::Label, ..kind("", "v1", "Namespace", "namespaces", false) },
    kind("", "v1", "ConfigMap", "configmaps", true),
    KindInfo { replace_on: &["type"], ..kind("", "v1", "Secret", "secrets", true) },
    kind("", "v1", "ServiceAccount", "serviceaccounts", true),
    KindInfo {
        replace_on: &[
            "spec.accessModes",
            "spec.storageClassName",
            "spec.volumeMode",
            "spec.volumeName",
            "spec.selector",
            "spec.dataSource",
            "spec.dataSourceRef",
        ],
        ..kind("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true)
    },
    KindInfo {
        replace_on: &["spec.clusterIP", "spec.clusterIPs"],
        name_rule: NameRule::Label1035,
        ..kind("", "v1", "Service", "services", true)
    },
    KindInfo { replace_on: &["spec.selector"], ..kind("apps", "v1", "Deployment", "deployments", true) },
    KindInfo { fallbacks: &["v2beta2"], ..kind("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true) },
    // A Job's pod template and selector are immutable; a changed template means a new run.
    KindInfo { replace_on: &["spec.template", "spec.selector", "spec.completionMode"], ..kind("batch", "v1", "Job", "jobs", true) },
    KindInfo { fallbacks: &["v1beta1"], ..kind("batch", "v1", "CronJob", "cronjobs", true) },
    KindInfo { fallbacks: &["v1beta1"], ..kind("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true) },
    kind("networking.k8s.io", "v1", "Ingress", "ingresses", true),
    KindInfo { replace_on: &["roleRef"], ..kind("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false) },
    KindInfo {
        replace_on: &["spec.group", "spec.scope"],
        ..kind("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", false)
    },
];

/// The static description of a typed kind, if berth has one.
pub fn known(gvk: &Gvk) -> Option<&'static KindInfo> {
    KNOWN_KINDS.iter().find(|k| k.group == gvk.group && k.version == gvk.version && k.kind == gvk.kind)
}

/// Whether `gvk` is `group`'s `kind` (in any version).
pub fn is_kind(gvk: &Gvk, group: &str, kind: &str) -> bool {
    gvk.group == group && gvk.kind == kind
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tokens() {
        assert_eq!(Gvk::from_token("kubernetes:core/v1:Namespace").unwrap(), Gvk::new("", "v1", "Namespace"));
        let hpa = Gvk::from_token("kubernetes:autoscaling/v2:HorizontalPodAutoscaler").unwrap();
        assert_eq!(hpa.api_version(), "autoscaling/v2");
        let scaled = Gvk::from_token("kubernetes:keda.sh/v1alpha1:ScaledObject").unwrap();
        assert_eq!((scaled.group.as_str(), scaled.version.as_str()), ("keda.sh", "v1alpha1"));
        assert_eq!(scaled.token(), "kubernetes:keda.sh/v1alpha1:ScaledObject");
        assert_eq!(Gvk::new("", "v1", "Secret").token(), "kubernetes:core/v1:Secret");
        for bad in ["kubernetes:v1:Pod", "aws:s3:Bucket", "kubernetes:apps/v1", "kubernetes:apps/v1:deployment", "kubernetes:/v1:X"] {
            let err = Gvk::from_token(bad).unwrap_err();
            assert!(err.contains("kubernetes:apps/v1:Deployment"), "{err}");
        }
    }

    #[test]
    fn known_kinds_have_unique_tokens_and_fallbacks_only_where_needed() {
        let mut tokens: Vec<String> = KNOWN_KINDS.iter().map(|k| Gvk::new(k.group, k.version, k.kind).token()).collect();
        tokens.sort();
        tokens.dedup();
        assert_eq!(tokens.len(), KNOWN_KINDS.len());
        let with_fallbacks: Vec<&str> = KNOWN_KINDS.iter().filter(|k| !k.fallbacks.is_empty()).map(|k| k.kind).collect();
        assert_eq!(with_fallbacks, vec!["HorizontalPodAutoscaler", "CronJob", "PodDisruptionBudget"]);
        assert!(known(&Gvk::new("batch", "v1", "Job")).unwrap().replace_on.contains(&"spec.template"));
        assert!(known(&Gvk::new("keda.sh", "v1alpha1", "ScaledObject")).is_none());
    }
}
