//! API discovery: which versions of a group the cluster serves, and the plural and scope of a
//! kind. Results are cached for the run; a group is asked again when a kind is missing (a CRD
//! applied a moment ago) and after a CRD is established.

use std::collections::HashMap;
use std::sync::Mutex;

use berth_engine::ProviderError;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResource;

use crate::cluster::api_error;
use crate::kinds::{Gvk, known};

/// Where objects of one kind live in the API, in the version the cluster serves.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub group: String,
    /// The version requests use: the token's, or an older one the cluster serves instead.
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
    /// The version the type token asked for, when the cluster lacks it and `version` stands in.
    pub negotiated_from: Option<String>,
}

impl Target {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// `/apis/apps/v1/namespaces/ns/deployments`, `/api/v1/namespaces`.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let base = if self.group.is_empty() { format!("/api/{}", self.version) } else { format!("/apis/{}/{}", self.group, self.version) };
        match namespace.filter(|_| self.namespaced) {
            Some(ns) => format!("{base}/namespaces/{ns}/{}", self.plural),
            None => format!("{base}/{}", self.plural),
        }
    }

    /// The target of a kind berth knows, as written (no negotiation): for calls that need no
    /// discovery (the test kubelet's pods, Jobs' pods).
    pub fn fixed(gvk: &Gvk) -> Option<Target> {
        let info = known(gvk).or_else(|| core_helpers(gvk))?;
        Some(Target {
            group: info.group.to_string(),
            version: info.version.to_string(),
            kind: info.kind.to_string(),
            plural: info.plural.to_string(),
            namespaced: info.namespaced,
            negotiated_from: None,
        })
    }

    pub fn pods() -> Target {
        Target {
            group: String::new(),
            version: "v1".into(),
            kind: "Pod".into(),
            plural: "pods".into(),
            namespaced: true,
            negotiated_from: None,
        }
    }
}

fn core_helpers(gvk: &Gvk) -> Option<&'static crate::kinds::KindInfo> {
    const POD: crate::kinds::KindInfo = crate::kinds::KindInfo {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        namespaced: true,
        fallbacks: &[],
        replace_on: &[],
        name_rule: crate::kinds::NameRule::Subdomain,
    };
    (gvk.group.is_empty() && gvk.kind == "Pod").then_some(&POD)
}

/// Why a kind could not be found.
#[derive(Debug)]
pub enum Missing {
    /// The cluster answered, and serves no such kind in any acceptable version.
    NotServed(String),
    /// The cluster could not be asked.
    Failed(ProviderError),
}

/// The discovery cache of one provider instance.
#[derive(Default)]
pub struct Discovery {
    /// Group name → versions it serves (`""` is the core group).
    groups: Mutex<Option<HashMap<String, Vec<String>>>>,
    /// `group/version` → its resources (`None`: the version is not served).
    resources: Mutex<HashMap<String, Option<Vec<APIResource>>>>,
}

impl Discovery {
    /// Forgets what is known about `group`, so the next lookup asks the cluster again.
    pub fn invalidate(&self, group: &str) {
        if let Ok(mut groups) = self.groups.lock() {
            *groups = None;
        }
        if let Ok(mut resources) = self.resources.lock() {
            resources.retain(|gv, _| {
                let g = gv.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
                g != group
            });
        }
    }

    async fn served_versions(&self, client: &kube::Client, server: &str, group: &str) -> Result<Vec<String>, ProviderError> {
        if let Some(groups) = self.groups.lock().ok().and_then(|g| g.clone()) {
            return Ok(groups.get(group).cloned().unwrap_or_default());
        }
        let mut map = HashMap::new();
        let core = client.list_core_api_versions().await.map_err(|e| api_error(server, "discover the core API versions", e))?;
        map.insert(String::new(), core.versions);
        let list = client.list_api_groups().await.map_err(|e| api_error(server, "discover the API groups", e))?;
        for g in list.groups {
            map.insert(g.name, g.versions.into_iter().map(|v| v.version).collect());
        }
        let versions = map.get(group).cloned().unwrap_or_default();
        if let Ok(mut groups) = self.groups.lock() {
            *groups = Some(map);
        }
        Ok(versions)
    }

    async fn resources_of(
        &self,
        client: &kube::Client,
        server: &str,
        group: &str,
        version: &str,
    ) -> Result<Option<Vec<APIResource>>, ProviderError> {
        let key = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
        if let Some(cached) = self.resources.lock().ok().and_then(|r| r.get(&key).cloned()) {
            return Ok(cached);
        }
        let result =
            if group.is_empty() { client.list_core_api_resources(version).await } else { client.list_api_group_resources(&key).await };
        let found = match result {
            Ok(list) => Some(list.resources),
            Err(kube::Error::Api(status)) if status.code == 404 => None,
            Err(e) => return Err(api_error(server, &format!("discover the resources of {key}"), e)),
        };
        if let Ok(mut resources) = self.resources.lock() {
            resources.insert(key, found.clone());
        }
        Ok(found)
    }

    /// The served version, plural and scope of `gvk`: its own version if the cluster serves it,
    /// else the first served fallback (autoscaling/v2 → v2beta2 on Kubernetes 1.20).
    pub async fn resolve(&self, client: &kube::Client, server: &str, gvk: &Gvk) -> Result<Target, Missing> {
        let served = self.served_versions(client, server, &gvk.group).await.map_err(Missing::Failed)?;
        let fallbacks = known(gvk).map(|k| k.fallbacks).unwrap_or(&[]);
        let candidates = std::iter::once(gvk.version.as_str()).chain(fallbacks.iter().copied());
        for version in candidates {
            if !served.iter().any(|v| v == version) {
                continue;
            }
            let Some(resources) = self.resources_of(client, server, &gvk.group, version).await.map_err(Missing::Failed)? else { continue };
            // Subresources (`deployments/status`) share the kind; the collection has no slash.
            if let Some(resource) = resources.iter().find(|r| r.kind == gvk.kind && !r.name.contains('/')) {
                return Ok(Target {
                    group: gvk.group.clone(),
                    version: version.to_string(),
                    kind: gvk.kind.clone(),
                    plural: resource.name.clone(),
                    namespaced: resource.namespaced,
                    negotiated_from: (version != gvk.version).then(|| gvk.version.clone()),
                });
            }
        }
        let group = if gvk.group.is_empty() { "core".to_string() } else { gvk.group.clone() };
        let offered = if served.is_empty() {
            format!("the cluster serves no `{group}` API group")
        } else {
            format!("`{group}` is served in {}", served.join(", "))
        };
        let tried: Vec<String> = std::iter::once(gvk.version.clone()).chain(fallbacks.iter().map(|v| v.to_string())).collect();
        Err(Missing::NotServed(format!("the cluster does not serve {} in version {} ({offered})", gvk.kind, tried.join(" or "))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_paths() {
        let deployments = Target::fixed(&Gvk::new("apps", "v1", "Deployment")).unwrap();
        assert_eq!(deployments.collection_path(Some("edx")), "/apis/apps/v1/namespaces/edx/deployments");
        let namespaces = Target::fixed(&Gvk::new("", "v1", "Namespace")).unwrap();
        assert_eq!(namespaces.collection_path(Some("ignored")), "/api/v1/namespaces");
        assert_eq!(Target::pods().collection_path(Some("a")), "/api/v1/namespaces/a/pods");
        assert_eq!(Target::fixed(&Gvk::new("", "v1", "Pod")).unwrap(), Target::pods());
    }
}
