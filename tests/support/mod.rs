//! What the end-to-end tests on the testbed share: a world of per-test names and state, the
//! berth binary run as an operator runs it, and views of the cluster.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_provider_kubernetes::cluster::{Cluster, ClusterSettings, Connection};
use berth_provider_kubernetes::discovery::Target;
use berth_provider_kubernetes::kinds::Gvk;
use serde_json::Value as Json;

pub mod design;
pub mod leftovers;
#[path = "../../providers/aws/tests/moto/proxy.rs"]
pub mod proxy;

pub const BIN: &str = env!("CARGO_BIN_EXE_berth");
pub const CRD_FILES: [&str; 5] =
    ["keda.yaml", "vault-secrets-operator.yaml", "gateway-api.yaml", "cert-manager.yaml", "security-group-policy.yaml"];
/// The longest any one berth command may take before the test gives up on it.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(300);

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: start the testbed with `make testbed` and load $BERTH_CACHE/testbed/all.env"))
}

pub fn digest(n: u8) -> String {
    format!("sha256:{}", format!("{n:02x}").repeat(32))
}

pub struct Run {
    pub output: Output,
    pub args: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.output.status.success()
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).to_string()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).to_string()
    }
    pub fn describe(&self) -> String {
        format!("berth {} ({})\nstdout:\n{}\nstderr:\n{}", self.args, self.output.status, self.stdout(), self.stderr())
    }
    pub fn assert_ok(&self) -> &Run {
        assert!(self.ok(), "{}", self.describe());
        self
    }
    pub fn json(&self) -> Json {
        serde_json::from_slice(&self.output.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.describe()))
    }
}

/// One test's world: its names, its state directory, its view of the cluster.
pub struct World {
    pub id: String,
    pub namespace: String,
    pub state: tempfile::TempDir,
    pub cluster: Arc<Cluster>,
    /// Environment overrides for the next commands (the recording proxies).
    pub aws_endpoint: String,
    pub vault_addr: String,
}

impl World {
    pub async fn new(tag: &str) -> World {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let id = format!("e2e{tag}{:05x}", (nanos ^ std::process::id()) & 0xfffff);
        let connection = Connection::new(ClusterSettings { kubeconfig: Some(env("BERTH_TEST_KUBECONFIG").into()), ..Default::default() });
        let cluster = connection.get().await.expect("the testbed's kubeconfig");
        ensure_crds(&cluster).await;
        World {
            namespace: format!("{id}-openedx"),
            id,
            state: tempfile::tempdir().unwrap(),
            cluster,
            aws_endpoint: env("AWS_ENDPOINT_URL"),
            vault_addr: env("VAULT_ADDR"),
        }
    }

    /// The `--config` overrides that make the shipped stack files this test's own.
    pub fn overrides(&self, stack: &str, image: &str) -> Vec<String> {
        let config: Vec<String> = match stack {
            "network.local" => vec![],
            "cluster.local" => vec![
                format!("name={}", self.id),
                format!("namespaces=[{}]", self.namespace),
                format!("oidc_issuer={}.oidc.local.test", self.id),
                format!("vault_auth_mount=kubernetes-{}", self.id),
                // The CRDs are the testbed's, shared by every test (ensure_crds).
                "crd_files=[]".into(),
            ],
            _ => vec![
                format!("edxapp.deployment={}", self.id),
                format!("edxapp.namespace={}", self.namespace),
                format!("edxapp.image.digest={image}"),
            ],
        };
        config.into_iter().flat_map(|c| ["--config".to_string(), c]).collect()
    }

    pub fn berth(&self, args: &[&str]) -> Run {
        self.berth_with_state(self.state.path(), args)
    }

    pub fn berth_with_state(&self, state: &Path, args: &[&str]) -> Run {
        let backend = format!("file://{}", state.display());
        let mut command = Command::new(BIN);
        command
            .args(["-C", repo().to_str().unwrap(), "--backend", &backend])
            .args(args)
            .env("BERTH_PASSPHRASE", "e2e-passphrase")
            .env("NO_COLOR", "1")
            .env("KUBECONFIG", env("BERTH_TEST_KUBECONFIG"))
            .env("AWS_ENDPOINT_URL", &self.aws_endpoint)
            .env("VAULT_ADDR", &self.vault_addr)
            .env_remove("BERTH_PROJECT")
            .env_remove("BERTH_BACKEND")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        // Read the pipes while waiting, so a chatty command cannot block on a full pipe.
        let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let stdout = std::thread::spawn(move || {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut out, &mut buf).ok();
            buf
        });
        let stderr = std::thread::spawn(move || {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut err, &mut buf).ok();
            buf
        });
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > COMMAND_DEADLINE {
                child.kill().ok();
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let output = Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() };
        Run { output, args: args.join(" ") }
    }

    /// `berth stack <verb> <stack> [extra] --config …` for this test.
    pub fn stack(&self, verb: &str, stack: &str, image: &str, extra: &[&str]) -> Run {
        let overrides = self.overrides(stack, image);
        let mut args = vec!["stack", verb, stack];
        args.extend_from_slice(extra);
        args.extend(overrides.iter().map(String::as_str));
        self.berth(&args)
    }

    /// network.local and cluster.local, which edxapp reads through stack references.
    pub fn up_foundations(&self) {
        for stack in ["network.local", "cluster.local"] {
            self.stack("up", stack, "", &["--yes"]).assert_ok();
        }
    }

    /// Every resource (type, id) the stacks have in state.
    pub fn inventory(&self) -> Vec<(String, String, String)> {
        let mut all = Vec::new();
        for stack in ["local", "cluster.local", "network.local"] {
            let list = self.berth(&["state", "list", stack, "--json"]);
            list.assert_ok();
            for r in list.json()["resources"].as_array().unwrap() {
                if r["custom"] == true && !r["type"].as_str().unwrap().starts_with("random:") {
                    all.push((stack.to_string(), r["type"].as_str().unwrap().to_string(), r["id"].as_str().unwrap().to_string()));
                }
            }
        }
        all
    }

    pub async fn get(&self, kind: &str, name: &str) -> Option<Json> {
        let (group, version, kind) = match kind {
            "Deployment" => ("apps", "v1", kind),
            "Job" => ("batch", "v1", kind),
            "Namespace" => ("", "v1", kind),
            _ => panic!("no kind {kind} here"),
        };
        let target = resolve(&self.cluster, &Gvk::new(group, version, kind)).await;
        self.cluster.get(&target, Some(&self.namespace), name).await.unwrap()
    }

    /// Each Kubernetes object the stacks hold in state (those of `stack` only, if given): its
    /// type token, id and the live object (`None` if the cluster has none).
    pub async fn live_objects(&self, stack: Option<&str>) -> Vec<(String, String, Option<Json>)> {
        let mut live = Vec::new();
        for (in_stack, ty, id) in self.inventory() {
            if !ty.starts_with("kubernetes:") || stack.is_some_and(|s| s != in_stack) {
                continue;
            }
            let gvk = Gvk::from_token(&ty).unwrap();
            let target = resolve(&self.cluster, &gvk).await;
            let (namespace, name) = match id.split_once('/') {
                Some((ns, name)) => (Some(ns), name),
                None => (None, id.as_str()),
            };
            let object = self.cluster.get(&target, namespace, name).await.unwrap();
            live.push((ty, id, object));
        }
        live
    }

    /// What berth last wrote to each of the stack's Kubernetes objects: the object's generation
    /// and berth's managed-fields entry (its time changes with every write that changes
    /// anything). Controllers' status updates do not touch either.
    pub async fn berth_writes(&self) -> Vec<(String, Json)> {
        let mut seen = Vec::new();
        for (ty, id, object) in self.live_objects(None).await {
            let Some(object) = object else { continue };
            let entries: Vec<Json> = object["metadata"]["managedFields"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["manager"] == "berth" && e["subresource"].is_null())
                .cloned()
                .collect();
            seen.push((format!("{ty} {id}"), serde_json::json!({"generation": object["metadata"]["generation"], "berth": entries})));
        }
        seen
    }

    /// The Jobs the plan for `image` creates, in order (LMS migrations first).
    pub fn planned_jobs(&self, image: &str) -> Vec<String> {
        let preview = self.stack("preview", "local", image, &["--json"]);
        preview.assert_ok();
        let plan = preview.json();
        plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["type"] == "kubernetes:batch/v1:Job" && s["op"] == "create")
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// The image each Deployment of the stack runs (by name).
    pub async fn deployment_images(&self) -> Vec<(String, String)> {
        let target = resolve(&self.cluster, &Gvk::new("apps", "v1", "Deployment")).await;
        let mut images: Vec<(String, String)> = self
            .cluster
            .list(&target, Some(&self.namespace), "")
            .await
            .unwrap()
            .iter()
            .map(|d| {
                let name = d["metadata"]["name"].as_str().unwrap().to_string();
                (name, d["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap_or_default().to_string())
            })
            .collect();
        images.sort();
        images
    }

    /// Asserts that every Deployment was last written by berth no earlier than every one of
    /// `jobs` completed: the rollout waited for the pre-deploy Jobs.
    pub async fn assert_rollout_after(&self, jobs: &[String]) {
        let mut last_completion = String::new();
        for job in jobs {
            let live = self.get("Job", job).await.unwrap_or_else(|| panic!("Job {job} exists"));
            let done = live["status"]["completionTime"].as_str().unwrap_or_else(|| panic!("Job {job} completed: {}", live["status"]));
            last_completion = last_completion.max(done.to_string());
        }
        let target = resolve(&self.cluster, &Gvk::new("apps", "v1", "Deployment")).await;
        let deployments = self.cluster.list(&target, Some(&self.namespace), "").await.unwrap();
        assert_eq!(deployments.len(), 5, "two webapps, two celery workers, scheduled emails");
        for d in deployments {
            let written = d["metadata"]["managedFields"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["manager"] == "berth" && e["operation"] == "Apply")
                .filter_map(|e| e["time"].as_str())
                .max()
                .unwrap()
                .to_string();
            assert!(
                written >= last_completion,
                "{} written at {written}, before the Jobs completed at {last_completion}",
                d["metadata"]["name"]
            );
        }
    }

    /// Checks a `stack render` directory: Jobs in earlier sync waves than the Deployments,
    /// autoscalers later; no Secret and no known secret value; and every manifest accepted by
    /// the API server (a server-side dry-run apply).
    pub async fn assert_renders_apply(&self, dir: &Path) {
        let kustomization = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
        let files: Vec<String> = kustomization.lines().filter_map(|l| l.trim().strip_prefix("- ")).map(str::to_string).collect();
        let objects = self.inventory().iter().filter(|(stack, ty, _)| stack == "local" && ty.starts_with("kubernetes:")).count();
        assert_eq!(files.len(), objects - 2, "every Kubernetes object but the two Secrets: {files:?}");
        let secrets = self.secret_values();
        let mut waves: Vec<(String, u64)> = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            for secret in &secrets {
                assert!(!text.contains(secret.as_str()), "{file} holds a secret value");
            }
            let manifest = berth_provider_kubernetes::manifests::from_yaml(&text).unwrap().remove(0);
            let kind = manifest["kind"].as_str().unwrap().to_string();
            assert_ne!(kind, "Secret");
            let wave: u64 = manifest["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"].as_str().unwrap().parse().unwrap();
            waves.push((kind.clone(), wave));
            let (group, version) = match manifest["apiVersion"].as_str().unwrap().split_once('/') {
                Some((g, v)) => (g.to_string(), v.to_string()),
                None => (String::new(), manifest["apiVersion"].as_str().unwrap().to_string()),
            };
            let target = resolve(&self.cluster, &Gvk::new(&group, &version, &kind)).await;
            let namespace = manifest["metadata"]["namespace"].as_str().map(str::to_string);
            let name = manifest["metadata"]["name"].as_str().unwrap().to_string();
            self.cluster
                .apply(&target, namespace.as_deref(), &name, &manifest, true, true)
                .await
                .unwrap_or_else(|e| panic!("{file} is not accepted by the API server: {e}"));
        }
        let of = |kind: &str| waves.iter().filter(|(k, _)| k == kind).map(|(_, w)| *w).collect::<Vec<u64>>();
        let (jobs, deployments, autoscalers) = (of("Job"), of("Deployment"), of("HorizontalPodAutoscaler"));
        assert_eq!((jobs.len(), deployments.len(), autoscalers.len()), (3, 5, 2));
        assert!(jobs.iter().max() < deployments.iter().min(), "Jobs {jobs:?} before Deployments {deployments:?}");
        assert!(deployments.iter().max() < autoscalers.iter().min(), "Deployments {deployments:?} before autoscalers {autoscalers:?}");
    }

    /// The secret values berth generated for the stack (its random passwords), read back from
    /// the state with the passphrase.
    pub fn secret_values(&self) -> Vec<String> {
        let list = self.berth(&["state", "list", "local", "--json"]);
        let mut values = Vec::new();
        for r in list.json()["resources"].as_array().unwrap() {
            if r["type"] == "random:index:Password" {
                let shown = self.berth(&["state", "show", "local", r["urn"].as_str().unwrap(), "--show-secrets", "--json"]);
                shown.assert_ok();
                let result = shown.json()["outputs"]["result"].as_str().map(str::to_string);
                values.push(result.unwrap_or_else(|| panic!("a password: {}", shown.stdout())));
            }
        }
        assert!(!values.is_empty());
        values
    }

    /// Destroys the three stacks, then checks that berth can find none of what they held.
    pub fn destroy_and_prove_gone(&self) {
        let inventory = self.inventory();
        assert!(inventory.len() > 80, "{inventory:?}");
        // Destroy works from state alone: no program, no config.
        for stack in ["local", "cluster.local", "network.local"] {
            self.berth(&["stack", "destroy", stack, "--yes"]).assert_ok();
        }
        let scratch = tempfile::tempdir().unwrap();
        let mut remaining = Vec::new();
        for (stack, ty, id) in inventory {
            // Import asks the provider to read the resource by id: it must find nothing, or
            // (for what lives inside a Vault mount) not even the mount.
            let run = self.berth_with_state(scratch.path(), &["stack", "import", &stack, &ty, "leftover", &id]);
            let gone = [format!("no {ty} with id `{id}` exists"), "create the mount first".into(), "enable the auth method first".into()];
            if run.ok() || !gone.iter().any(|g| run.stderr().contains(g.as_str())) {
                remaining.push(run.describe());
            }
        }
        assert!(remaining.is_empty(), "still there after destroy:\n{}", remaining.join("\n"));
    }
}

pub async fn resolve(cluster: &Cluster, gvk: &Gvk) -> Target {
    cluster.discovery.resolve(&cluster.client, &cluster.server, gvk).await.unwrap_or_else(|_| panic!("the cluster serves {gvk:?}"))
}

/// The operators' CRDs, as a real cluster has them before any application: applied once for the
/// whole testbed (never deleted by these tests, which run in parallel), by field manager `berth`
/// so that `make demo`'s cluster stack can adopt them.
pub async fn ensure_crds(cluster: &Cluster) {
    let target = Target {
        group: "apiextensions.k8s.io".into(),
        version: "v1".into(),
        kind: "CustomResourceDefinition".into(),
        plural: "customresourcedefinitions".into(),
        namespaced: false,
        negotiated_from: None,
    };
    for file in CRD_FILES {
        let text = std::fs::read_to_string(repo().join("testbed/kubernetes/crds").join(file)).unwrap();
        for manifest in berth_provider_kubernetes::manifests::from_yaml(&text).unwrap() {
            let name = manifest["metadata"]["name"].as_str().unwrap().to_string();
            cluster.apply(&target, None, &name, &manifest, false, true).await.unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
        }
    }
}
