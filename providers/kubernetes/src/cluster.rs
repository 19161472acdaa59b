//! The connection to one cluster: made on first use (building the provider never dials, so an
//! offline preview works), and the handful of requests berth makes, as JSON.

use std::path::PathBuf;
use std::sync::Arc;

use berth_engine::{ErrorKind, ProviderError};
use futures::TryStreamExt;
use kube::api::{
    DeleteParams, GetParams, ListParams, LogParams, Patch, PatchParams, PostParams, PropagationPolicy, WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::Request;
use serde_json::Value as Json;
use tokio::sync::OnceCell;

use crate::discovery::{Discovery, Target};
use crate::fields::FIELD_MANAGER;

/// Where the cluster is: the stack file's `providers.kubernetes` settings, resolved.
#[derive(Clone, Debug, Default)]
pub struct ClusterSettings {
    /// An explicit kubeconfig file; otherwise `KUBECONFIG`, then `~/.kube/config`, then the
    /// in-cluster service account.
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig; otherwise its current context.
    pub context: Option<String>,
    /// The namespace for objects that name none; otherwise the context's, then `default`.
    pub namespace: Option<String>,
}

/// A reachable (or at least configured) cluster.
pub struct Cluster {
    pub client: kube::Client,
    pub default_namespace: String,
    pub discovery: Discovery,
    /// Where the API server is, for messages.
    pub server: String,
}

/// The lazily built connection.
pub struct Connection {
    settings: ClusterSettings,
    cell: OnceCell<Result<Arc<Cluster>, String>>,
}

impl Connection {
    pub fn new(settings: ClusterSettings) -> Connection {
        Connection { settings, cell: OnceCell::new() }
    }

    pub fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    /// The cluster, connecting on first use. Reads the kubeconfig; makes no request.
    pub async fn get(&self) -> Result<Arc<Cluster>, ProviderError> {
        let built = self.cell.get_or_init(|| async { connect(&self.settings).await.map(Arc::new) }).await;
        built.clone().map_err(ProviderError::other)
    }

    /// The namespace for objects that name none: the settings', else the kubeconfig context's
    /// (reading the kubeconfig, which makes no request).
    pub async fn default_namespace(&self) -> Result<String, ProviderError> {
        if let Some(ns) = &self.settings.namespace {
            return Ok(ns.clone());
        }
        Ok(self.get().await?.default_namespace.clone())
    }
}

async fn connect(settings: &ClusterSettings) -> Result<Cluster, String> {
    // kube chooses rustls' crypto backend by cargo feature; with two backends compiled into one
    // binary rustls cannot pick, so install ring unless someone already chose.
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let options = KubeConfigOptions { context: settings.context.clone(), cluster: None, user: None };
    let config = match &settings.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
                format!("cannot read the kubeconfig `{}` (providers.kubernetes.kubeconfig): {e}", path.display())
            })?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options).await.map_err(|e| match &settings.context {
                Some(context) => format!("cannot use context `{context}` of the kubeconfig `{}` (providers.kubernetes.context): {e}", path.display()),
                None => format!("cannot use the kubeconfig `{}`: {e}", path.display()),
            })?
        }
        None if settings.context.is_some() => kube::Config::from_kubeconfig(&options).await.map_err(|e| {
            format!("cannot use kubeconfig context `{}` (from KUBECONFIG or ~/.kube/config): {e}", settings.context.as_deref().unwrap_or(""))
        })?,
        None => kube::Config::infer().await.map_err(|e| {
            format!(
                "no Kubernetes cluster configured: {e}; set providers.kubernetes.kubeconfig in the stack file, or KUBECONFIG, or ~/.kube/config"
            )
        })?,
    };
    let server = config.cluster_url.to_string();
    let default_namespace = settings.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config).map_err(|e| format!("cannot build a client for {server}: {e}"))?;
    Ok(Cluster { client, default_namespace, discovery: Discovery::default(), server })
}

/// The CA certificate (PEM) that a kubeconfig context trusts for its API server: the current
/// context of KUBECONFIG (or ~/.kube/config) unless `context` names one. For systems outside
/// the cluster that must verify the same server (Vault's kubernetes auth method).
pub fn kubeconfig_ca_pem(context: Option<&str>) -> Result<String, String> {
    use base64::Engine as _;
    let kubeconfig = Kubeconfig::read().map_err(|e| format!("cannot read the kubeconfig (KUBECONFIG or ~/.kube/config): {e}"))?;
    let context_name =
        context.map(str::to_string).or_else(|| kubeconfig.current_context.clone()).ok_or("the kubeconfig has no current context")?;
    let context = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .ok_or_else(|| format!("the kubeconfig has no context `{context_name}`"))?;
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| format!("the kubeconfig has no cluster `{}` (context `{context_name}`)", context.cluster))?;
    if let Some(data) = &cluster.certificate_authority_data {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| format!("certificate-authority-data of cluster `{}` is not base64: {e}", context.cluster))?;
        return String::from_utf8(pem).map_err(|_| format!("certificate-authority-data of cluster `{}` is not PEM", context.cluster));
    }
    if let Some(file) = &cluster.certificate_authority {
        return std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read certificate-authority {file} of cluster `{}`: {e}", context.cluster));
    }
    Err(format!("cluster `{}` of the kubeconfig names no certificate authority", context.cluster))
}

/// `Kind namespace/name` or `Kind name`, for messages.
pub fn describe(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// A kube error as a provider error that says what was being done.
pub fn api_error(cluster: &str, what: &str, e: kube::Error) -> ProviderError {
    match e {
        kube::Error::Api(status) => {
            let code = format!("{} {}", status.code, status.reason);
            let mut error = ProviderError::api(code, format!("{what}: {}", status.message));
            if status.code == 404 {
                error.kind = ErrorKind::NotFound;
            }
            error
        }
        other => ProviderError::other(format!("{what}: cannot reach the Kubernetes API at {cluster}: {other}")),
    }
}

/// A change to a watched object: its new state, or its last state before it was deleted.
#[derive(Debug)]
pub enum Change {
    Modified(Json),
    Deleted(Json),
}

/// Whether an error is the API's 409 field-manager conflict.
pub fn is_conflict(e: &ProviderError) -> bool {
    e.code.as_deref().is_some_and(|c| c.starts_with("409 ")) && e.message.contains("conflict")
}

/// Whether an error means the cluster could not be reached at all (as opposed to an answer).
pub fn is_unreachable(e: &ProviderError) -> bool {
    e.kind == ErrorKind::Other && e.code.is_none()
}

impl Cluster {
    fn request(&self, target: &Target, namespace: Option<&str>) -> Request {
        Request::new(target.collection_path(namespace))
    }

    /// The live object, or `None` if there is none.
    pub async fn get(&self, target: &Target, namespace: Option<&str>, name: &str) -> Result<Option<Json>, ProviderError> {
        let what = format!("read {}", describe(&target.kind, namespace, name));
        let request = self.request(target, namespace).get(name, &GetParams::default()).map_err(|e| ProviderError::other(e.to_string()))?;
        match self.client.request::<Json>(request).await {
            Ok(object) => Ok(Some(object)),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
            Err(e) => Err(api_error(&self.server, &what, e)),
        }
    }

    /// Server-side apply of `manifest` as field manager `berth`.
    pub async fn apply(
        &self,
        target: &Target,
        namespace: Option<&str>,
        name: &str,
        manifest: &Json,
        dry_run: bool,
        force: bool,
    ) -> Result<Json, ProviderError> {
        let what = format!("{} {}", if dry_run { "dry-run apply of" } else { "apply" }, describe(&target.kind, namespace, name));
        let params = PatchParams { dry_run, force, field_manager: Some(FIELD_MANAGER.to_string()), field_validation: None };
        let request = self
            .request(target, namespace)
            .patch(name, &params, &Patch::Apply(manifest))
            .map_err(|e| ProviderError::other(e.to_string()))?;
        self.client.request::<Json>(request).await.map_err(|e| api_error(&self.server, &what, e))
    }

    /// Deletes with foreground propagation (the object goes only after its dependents: a
    /// Deployment's ReplicaSets and pods, a Job's pods). A CustomResourceDefinition's instances
    /// are removed by the API server's own finalizer, not by dependents, so it is deleted in the
    /// background (the garbage collector pauses while discovery changes, which deleting CRDs
    /// does). Returns false if it was gone.
    pub async fn delete(&self, target: &Target, namespace: Option<&str>, name: &str) -> Result<bool, ProviderError> {
        let what = format!("delete {}", describe(&target.kind, namespace, name));
        let policy = if target.group == "apiextensions.k8s.io" { PropagationPolicy::Background } else { PropagationPolicy::Foreground };
        let params = DeleteParams { propagation_policy: Some(policy), ..DeleteParams::default() };
        let request = self.request(target, namespace).delete(name, &params).map_err(|e| ProviderError::other(e.to_string()))?;
        match self.client.request::<Json>(request).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            Err(e) => Err(api_error(&self.server, &what, e)),
        }
    }

    /// The next change to one object after `resource_version`, waiting at most `wait` (whole
    /// seconds, at least one): `None` when nothing changed in time or the watch cannot resume
    /// from that version (the caller reads the object again).
    pub async fn next_change(
        &self,
        target: &Target,
        namespace: Option<&str>,
        name: &str,
        resource_version: &str,
        wait: std::time::Duration,
    ) -> Result<Option<Change>, ProviderError> {
        let what = format!("watch {}", describe(&target.kind, namespace, name));
        let seconds = wait.as_secs().clamp(1, 290) as u32;
        let params = WatchParams::default().fields(&format!("metadata.name={name}")).timeout(seconds).disable_bookmarks();
        let request = self.request(target, namespace).watch(&params, resource_version).map_err(|e| ProviderError::other(e.to_string()))?;
        let events = self.client.request_events::<Json>(request).await.map_err(|e| api_error(&self.server, &what, e))?;
        let mut events = std::pin::pin!(events);
        match events.try_next().await {
            Ok(Some(WatchEvent::Added(object) | WatchEvent::Modified(object))) => Ok(Some(Change::Modified(object))),
            Ok(Some(WatchEvent::Deleted(object))) => Ok(Some(Change::Deleted(object))),
            Ok(Some(WatchEvent::Bookmark(_) | WatchEvent::Error(_))) | Ok(None) => Ok(None),
            Err(e) => Err(api_error(&self.server, &what, e)),
        }
    }

    /// Objects of a kind in a namespace matching a label selector.
    pub async fn list(&self, target: &Target, namespace: Option<&str>, selector: &str) -> Result<Vec<Json>, ProviderError> {
        let what = format!("list {} in {}", target.kind, namespace.unwrap_or("the cluster"));
        let params = ListParams::default().labels(selector);
        let request = self.request(target, namespace).list(&params).map_err(|e| ProviderError::other(e.to_string()))?;
        let list = self.client.request::<Json>(request).await.map_err(|e| api_error(&self.server, &what, e))?;
        Ok(list.get("items").and_then(Json::as_array).cloned().unwrap_or_default())
    }

    /// The last lines of a pod's log; fails where the cluster cannot serve logs (no kubelet).
    pub async fn log_tail(&self, namespace: &str, pod: &str, container: Option<&str>, lines: i64) -> Result<String, ProviderError> {
        let params = LogParams { container: container.map(str::to_string), tail_lines: Some(lines), ..LogParams::default() };
        let request = Request::new(format!("/api/v1/namespaces/{namespace}/pods"))
            .logs(pod, &params)
            .map_err(|e| ProviderError::other(e.to_string()))?;
        self.client.request_text(request).await.map_err(|e| api_error(&self.server, &format!("read the log of pod {namespace}/{pod}"), e))
    }

    /// A merge patch of an object's status subresource (used by the test kubelet).
    pub async fn patch_status(&self, target: &Target, namespace: Option<&str>, name: &str, patch: &Json) -> Result<Json, ProviderError> {
        let what = format!("patch the status of {}", describe(&target.kind, namespace, name));
        let request = self
            .request(target, namespace)
            .patch_subresource("status", name, &PatchParams::default(), &Patch::Merge(patch))
            .map_err(|e| ProviderError::other(e.to_string()))?;
        self.client.request::<Json>(request).await.map_err(|e| api_error(&self.server, &what, e))
    }

    /// A plain create (not server-side apply), as `kubectl create` makes.
    pub async fn create(&self, target: &Target, namespace: Option<&str>, manager: &str, object: &Json) -> Result<Json, ProviderError> {
        let name = object.pointer("/metadata/name").and_then(Json::as_str).unwrap_or_default();
        let what = format!("create {}", describe(&target.kind, namespace, name));
        let params = PostParams { dry_run: false, field_manager: Some(manager.to_string()) };
        let body = serde_json::to_vec(object).map_err(|e| ProviderError::other(e.to_string()))?;
        let request = self.request(target, namespace).create(&params, body).map_err(|e| ProviderError::other(e.to_string()))?;
        self.client.request::<Json>(request).await.map_err(|e| api_error(&self.server, &what, e))
    }

    /// A plain merge patch (not server-side apply), as `kubectl patch` makes.
    pub async fn merge_patch(
        &self,
        target: &Target,
        namespace: Option<&str>,
        name: &str,
        manager: &str,
        patch: &Json,
    ) -> Result<Json, ProviderError> {
        let what = format!("patch {}", describe(&target.kind, namespace, name));
        let params = PatchParams { field_manager: Some(manager.to_string()), ..PatchParams::default() };
        let request =
            self.request(target, namespace).patch(name, &params, &Patch::Merge(patch)).map_err(|e| ProviderError::other(e.to_string()))?;
        self.client.request::<Json>(request).await.map_err(|e| api_error(&self.server, &what, e))
    }
}
