//! The real engine (local state in a tempdir, passphrase keyring) driving the kubernetes
//! provider against the testbed's kube-apiserver, one namespace per test.
#![allow(dead_code)]

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use berth_engine::apply::{ApplyOptions, ApplyReport, Silent, StepStatus};
use berth_engine::config::parse_yaml;
use berth_engine::crypto::Keyring;
use berth_engine::ops::{Engine, Operation, RunOptions};
use berth_engine::registry::ProviderSettings;
use berth_engine::render::{RenderOptions, Style, plan_json, plan_text};
use berth_engine::state::LocalBackend;
use berth_engine::{Op, Plan, Program, Providers, State};
use berth_provider_kubernetes::cluster::Cluster;
use berth_provider_kubernetes::discovery::Target;
use berth_provider_kubernetes::kinds::Gvk;
use berth_provider_kubernetes::testing::FakeKubelet;
use berth_provider_kubernetes::{ClusterSettings, Connection, plugin};
use serde_json::Value as Json;

/// The testbed's kubeconfig; a test without it fails (it never skips).
pub fn kubeconfig() -> PathBuf {
    match std::env::var("BERTH_TEST_KUBECONFIG") {
        Ok(path) if !path.is_empty() => PathBuf::from(path),
        _ => panic!(
            "BERTH_TEST_KUBECONFIG is not set: start the Kubernetes testbed with `testbed/kubernetes/up.sh` and load the \
             variables it writes to ~/.cache/berth/testbed/kubernetes.env (`make test` does both)"
        ),
    }
}

/// A name unique to this test run: the test's name and a random suffix.
pub fn unique(test: &str) -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    let prefix: String = test.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).take(40).collect();
    format!("{}-{:06x}", prefix.trim_matches('-'), hasher.finish() & 0xff_ffff)
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub engine: Engine,
    /// The namespace this test's objects live in (the provider's default namespace).
    pub ns: String,
    pub cluster: Arc<Cluster>,
    pub kubelet: Option<FakeKubelet>,
    /// Cluster-scoped objects (a test's own CRD) that dropping the harness deletes too.
    leftovers: Mutex<Vec<(Target, String)>>,
    /// Objects of this namespace that [`hold`](Self::hold) gave a finalizer, which dropping the
    /// harness removes (or the namespace could never be deleted).
    held: Mutex<Vec<(Target, String)>>,
}

/// The finalizer [`Harness::hold`] puts on an object.
pub const HOLD: &str = "berth.test/hold";

impl Harness {
    /// An engine whose kubernetes provider defaults to a fresh namespace, with a kubelet
    /// stand-in for that namespace.
    pub async fn new(test: &str) -> Harness {
        let mut h = Harness::without_kubelet(test).await;
        h.kubelet = Some(FakeKubelet::start(h.cluster.clone(), &h.ns));
        h
    }

    pub async fn without_kubelet(test: &str) -> Harness {
        Harness::with_settings(test, "").await
    }

    /// As [`without_kubelet`](Self::without_kubelet), with extra `providers.kubernetes` lines.
    pub async fn with_settings(test: &str, extra: &str) -> Harness {
        let ns = unique(test);
        let yaml = format!("providers:\n  kubernetes:\n    kubeconfig: {}\n    namespace: {ns}\n{extra}", kubeconfig().display());
        Harness::with_stack_file(ns, tempfile::tempdir().unwrap(), &yaml).await
    }

    /// An engine for a stack file's text (the project root is `<dir>/project`); `ns` is the
    /// namespace the test expects its objects in.
    pub async fn with_stack_file(ns: String, dir: tempfile::TempDir, yaml: &str) -> Harness {
        let kubeconfig = kubeconfig();
        let project = dir.path().join("project");
        std::fs::create_dir_all(&project).unwrap();
        let root = parse_yaml("stacks/test.yaml", yaml).unwrap();
        let node = root.get_path("providers.kubernetes").cloned();
        let providers = Providers::from_plugins(&[plugin()], move |_| ProviderSettings {
            stack: "test".into(),
            project_root: project.clone(),
            node: node.clone(),
        });
        let engine = Engine {
            stack: "test".into(),
            backend: Arc::new(LocalBackend::new(dir.path().join("state"))),
            providers: Arc::new(providers),
            keyring: Arc::new(Keyring::new(Some("test-passphrase".into()))),
        };
        let settings = ClusterSettings { kubeconfig: Some(kubeconfig), context: None, namespace: Some(ns.clone()) };
        let cluster = Connection::new(settings).get().await.unwrap();
        Harness { dir, engine, ns, cluster, kubelet: None, leftovers: Mutex::default(), held: Mutex::default() }
    }

    pub fn kubelet(&self) -> &FakeKubelet {
        self.kubelet.as_ref().expect("this harness has no kubelet")
    }

    fn run(refresh: bool) -> RunOptions {
        RunOptions { parallel: 8, refresh, ..RunOptions::default() }
    }

    pub async fn preview(&self, program: &dyn Program, refresh: bool) -> Plan {
        match self.engine.preview(program, None, &Self::run(refresh)).await {
            Ok((plan, _)) => plan,
            Err(e) => panic!("preview failed: {e}"),
        }
    }

    /// `stack up --yes`: the plan and the report (not asserted).
    pub async fn up(&self, program: &dyn Program, refresh: bool) -> (Plan, ApplyReport) {
        let (prepared, _) = match self.engine.prepare(Operation::Up, Some(program), None, &Self::run(refresh)).await {
            Ok(prepared) => prepared,
            Err(e) => panic!("planning up failed: {e}"),
        };
        let plan = prepared.plan.clone();
        let executed =
            self.engine.execute(prepared, &ApplyOptions { parallel: 8, ..ApplyOptions::default() }, Arc::new(Silent)).await.unwrap();
        (plan, executed.report)
    }

    /// `stack up --yes`, which must succeed.
    pub async fn up_ok(&self, program: &dyn Program) -> (Plan, ApplyReport) {
        let (plan, report) = self.up(program, false).await;
        assert!(report.succeeded(), "up failed: {}", failures(&report));
        (plan, report)
    }

    pub async fn destroy(&self) -> ApplyReport {
        let (prepared, _) = self.engine.prepare(Operation::Destroy, None, None, &Self::run(false)).await.unwrap();
        let executed =
            self.engine.execute(prepared, &ApplyOptions { parallel: 8, ..ApplyOptions::default() }, Arc::new(Silent)).await.unwrap();
        assert!(executed.report.succeeded(), "destroy failed: {}", failures(&executed.report));
        assert!(self.state().await.resources.is_empty());
        executed.report
    }

    pub async fn state(&self) -> State {
        self.engine.read_state().await.unwrap().0
    }

    /// Every file in the state directory, as text.
    pub fn state_text(&self) -> String {
        let mut all = String::new();
        for entry in std::fs::read_dir(self.dir.path().join("state")).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                all.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
            }
        }
        all
    }

    /// The live object of a type token in this test's namespace (or cluster-scoped).
    pub async fn get(&self, token: &str, name: &str) -> Option<Json> {
        let target = self.target(token).await;
        let ns = if target.namespaced { Some(self.ns.as_str()) } else { None };
        self.cluster.get(&target, ns, name).await.unwrap()
    }

    pub async fn target(&self, token: &str) -> Target {
        let gvk = Gvk::from_token(token).unwrap();
        self.cluster.discovery.invalidate(&gvk.group);
        self.cluster.discovery.resolve(&self.cluster.client, &self.cluster.server, &gvk).await.unwrap()
    }

    /// What `kubectl patch --type merge` does: a plain (not server-side apply) change made by
    /// another field manager.
    pub async fn kubectl_patch(&self, token: &str, name: &str, patch: Json) -> Json {
        let target = self.target(token).await;
        let ns = if target.namespaced { Some(self.ns.as_str()) } else { None };
        self.cluster.merge_patch(&target, ns, name, "kubectl-edit", &patch).await.unwrap()
    }

    /// What `kubectl delete` does.
    pub async fn kubectl_delete(&self, token: &str, name: &str) {
        let target = self.target(token).await;
        let ns = if target.namespaced { Some(self.ns.as_str()) } else { None };
        assert!(self.cluster.delete(&target, ns, name).await.unwrap(), "{token} {name} did not exist");
        for _ in 0..100 {
            if self.cluster.get(&target, ns, name).await.unwrap().is_none() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("{token} {name} was not deleted");
    }

    /// Objects of a kind in this test's namespace that `label_selector` matches (`""`: all).
    pub async fn list(&self, token: &str, label_selector: &str) -> Vec<Json> {
        let target = self.target(token).await;
        self.cluster.list(&target, Some(&self.ns), label_selector).await.unwrap()
    }

    /// Objects of a kind in this test's namespace with an owner reference to `owner_uid`.
    pub async fn owned_by(&self, token: &str, owner_uid: &Json) -> Vec<Json> {
        let mut owned = self.list(token, "").await;
        owned.retain(|o| {
            o.pointer("/metadata/ownerReferences").and_then(Json::as_array).is_some_and(|refs| refs.iter().any(|r| &r["uid"] == owner_uid))
        });
        owned
    }

    /// Panics unless this test's namespace exists and is not being deleted.
    pub async fn assert_namespace_active(&self) {
        let namespace = self.get("kubernetes:core/v1:Namespace", &self.ns).await.expect("the namespace still exists");
        assert!(namespace.pointer("/metadata/deletionTimestamp").is_none(), "the namespace is not being deleted: {namespace}");
        assert_eq!(namespace["status"]["phase"], "Active", "{namespace}");
    }

    /// Gives an object of this namespace the finalizer [`HOLD`], which keeps it (and, with
    /// foreground deletion, its owners) from being deleted until [`release`](Self::release).
    pub async fn hold(&self, token: &str, name: &str) {
        let target = self.target(token).await;
        set_finalizers(&self.cluster, &target, &self.ns, name, |f| f.push(HOLD.into())).await;
        self.held.lock().unwrap().push((target, name.to_string()));
    }

    /// Removes the finalizer [`hold`](Self::hold) added.
    pub async fn release(&self, token: &str, name: &str) {
        let target = self.target(token).await;
        set_finalizers(&self.cluster, &target, &self.ns, name, |f| f.retain(|f| f != HOLD)).await;
        self.held.lock().unwrap().retain(|(t, n)| !(t == &target && n == name));
    }

    /// Deletes a cluster-scoped object when the harness is dropped (a test that failed
    /// half-way leaves nothing behind).
    pub fn delete_on_drop(&self, target: Target, name: &str) {
        self.leftovers.lock().unwrap().push((target, name.to_string()));
    }
}

impl Drop for Harness {
    /// A test that failed half-way still removes its namespace (and so everything in it), and
    /// the cluster-scoped objects given to [`delete_on_drop`](Self::delete_on_drop).
    fn drop(&mut self) {
        let ns = self.ns.clone();
        let leftovers = std::mem::take(self.leftovers.get_mut().unwrap_or_else(|e| e.into_inner()));
        let held = std::mem::take(self.held.get_mut().unwrap_or_else(|e| e.into_inner()));
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async {
                let settings = ClusterSettings { kubeconfig: Some(kubeconfig()), context: None, namespace: None };
                let Ok(cluster) = Connection::new(settings).get().await else { return };
                for (target, name) in &held {
                    let _ = cluster
                        .merge_patch(target, Some(&ns), name, "berth-test", &serde_json::json!({"metadata": {"finalizers": null}}))
                        .await;
                }
                for (target, name) in &leftovers {
                    let _ = cluster.delete(target, None, name).await;
                }
                if let Some(target) = Target::fixed(&Gvk::new("", "v1", "Namespace")) {
                    let _ = cluster.delete(&target, None, &ns).await;
                }
            });
        })
        .join();
    }
}

/// Changes an object's finalizers (read, change, write with its resourceVersion; again when
/// another writer, such as the garbage collector, came in between).
async fn set_finalizers(cluster: &Cluster, target: &Target, ns: &str, name: &str, change: impl Fn(&mut Vec<Json>)) {
    for _ in 0..20 {
        let live = cluster.get(target, Some(ns), name).await.unwrap().unwrap_or_else(|| panic!("{} {name} exists", target.kind));
        let mut finalizers = live.pointer("/metadata/finalizers").and_then(Json::as_array).cloned().unwrap_or_default();
        change(&mut finalizers);
        let patch = serde_json::json!({"metadata": {"finalizers": finalizers, "resourceVersion": live["metadata"]["resourceVersion"]}});
        match cluster.merge_patch(target, Some(ns), name, "berth-test", &patch).await {
            Ok(_) => return,
            Err(e) if e.code.as_deref().is_some_and(|c| c.starts_with("409")) => continue,
            Err(e) => panic!("set the finalizers of {} {name}: {e}", target.kind),
        }
    }
    panic!("could not set the finalizers of {} {name}: it kept changing", target.kind);
}

/// The failed steps of a report, as text.
pub fn failures(report: &ApplyReport) -> String {
    report
        .outcomes
        .iter()
        .filter_map(|o| match &o.status {
            StepStatus::Failed(message) => Some(format!("{}: {message}", o.urn.name())),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each step's op, by logical name.
pub fn ops(plan: &Plan) -> HashMap<String, Op> {
    plan.steps.iter().filter(|s| s.custom).map(|s| (s.name().to_string(), s.op)).collect()
}

/// Each outcome's status, by logical name.
pub fn statuses(report: &ApplyReport) -> HashMap<String, StepStatus> {
    report.outcomes.iter().map(|o| (o.urn.name().to_string(), o.status.clone())).collect()
}

/// The plan as the CLI prints it with `--diff`, and as `--json`.
pub fn rendered(plan: &Plan) -> String {
    let text = plan_text(plan, RenderOptions { style: Style { color: false }, diff: true, show_same: true });
    format!("{text}\n{}", plan_json(plan))
}

/// A k8s-openapi value from JSON.
pub fn typed<T: serde::de::DeserializeOwned>(json: Json) -> T {
    serde_json::from_value(json).unwrap()
}

/// The YAML fixture `testbed/kubernetes/crds/<file>`.
pub fn crd_fixture(file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testbed/kubernetes/crds").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
