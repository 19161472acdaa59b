//! Await against the real Job and Deployment controllers, with a test kubelet patching pods:
//! Jobs gate their dependents, a failed Job stops the run with its pod's reason, rollouts are
//! awaited, custom timeouts bound the wait, a changed pod template replaces a Job, deletes wait
//! for what the controllers made (foreground propagation).

mod common;

use std::time::Duration;

use berth_engine::apply::StepStatus;
use berth_engine::{CustomTimeouts, Op, Options, ProgramResult, Stack};
use berth_provider_kubernetes::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use berth_provider_kubernetes::*;
use common::{HOLD, Harness, failures, ops, rendered, statuses, typed};
use serde_json::{Value as Json, json};

fn named(name: &str) -> berth_engine::Input<ObjectMeta> {
    ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() }.into()
}

/// A namespace, a migration Job, and a ConfigMap and a Deployment that need the migration.
fn gated_program(ns: String, image: &'static str, timeouts: CustomTimeouts) -> impl Fn(&mut Stack) -> ProgramResult + Send + Sync {
    move |s: &mut Stack| {
        let namespace = s.register("ns", Namespace { metadata: named(&ns), ..Namespace::default() }, Options::new())?;
        let job = s.register(
            "migrate",
            Job {
                metadata: named("lms-migrate"),
                spec: typed::<_>(json!({
                    "backoffLimit": 0,
                    "template": {"spec": {"restartPolicy": "Never", "containers": [
                        {"name": "migrate", "image": image, "command": ["./manage.py", "lms", "migrate"]}
                    ]}}
                })),
                ..Job::default()
            },
            Options::new().depends_on(&namespace).timeouts(timeouts),
        )?;
        s.register(
            "after",
            ConfigMap { metadata: named("after-migrations"), data: [("ok".to_string(), "yes".into())].into(), ..ConfigMap::default() },
            Options::new().depends_on(&job),
        )?;
        let labels = json!({"app": "lms"});
        s.register(
            "web",
            Deployment {
                metadata: named("lms"),
                spec: typed::<_>(json!({
                    "replicas": 1, "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "lms", "image": image}]}}
                })),
                ..Deployment::default()
            },
            Options::new().depends_on(&job),
        )?;
        Ok(())
    }
}

fn seconds(timestamp: &Json) -> i64 {
    // RFC 3339 UTC, e.g. 2026-11-21T13:58:05Z: compare as seconds of the day (tests run briefly).
    let text = timestamp.as_str().unwrap();
    let time = &text[11..19];
    let parts: Vec<i64> = time.split(':').map(|p| p.parse().unwrap()).collect();
    parts[0] * 3600 + parts[1] * 60 + parts[2]
}

#[tokio::test]
async fn a_job_that_succeeds_unblocks_its_dependents() {
    let h = Harness::new("job-succeeds").await;
    // The Job's pod runs for 3 s: its dependents must not start before it completes.
    h.kubelet().delay_jobs(Duration::from_secs(3));
    let program = gated_program(h.ns.clone(), "openedx:1", CustomTimeouts::default());
    h.up_ok(&program).await;
    let job = h.get("kubernetes:batch/v1:Job", "lms-migrate").await.unwrap();
    let completed = seconds(&job["status"]["completionTime"]);
    assert!(completed - seconds(&job["metadata"]["creationTimestamp"]) >= 2, "{job}");
    let after = h.get("kubernetes:core/v1:ConfigMap", "after-migrations").await.unwrap();
    assert!(seconds(&after["metadata"]["creationTimestamp"]) >= completed, "the ConfigMap was created before the Job completed");
    let web = h.get("kubernetes:apps/v1:Deployment", "lms").await.unwrap();
    assert!(seconds(&web["metadata"]["creationTimestamp"]) >= completed);
    assert_eq!(web["status"]["availableReplicas"], 1);
    let state = h.state().await;
    let recorded = state.resources.iter().find(|r| r.urn.name() == "migrate").unwrap();
    assert_eq!(recorded.outputs.as_object().unwrap()["status"].as_object().unwrap()["succeeded"].to_json_revealed(), json!(1));
    h.destroy().await;
}

#[tokio::test]
async fn a_job_that_fails_stops_the_up_before_its_dependents() {
    let h = Harness::new("job-fails").await;
    h.kubelet().fail_job("lms-migrate", "Error", "django.db.utils.OperationalError: (1146, \"Table 'edxapp.auth_user' doesn't exist\")");
    let program = gated_program(h.ns.clone(), "openedx:1", CustomTimeouts::default());
    let (_, report) = h.up(&program, false).await;
    assert!(!report.succeeded());
    let status = statuses(&report);
    let StepStatus::Failed(message) = &status["migrate"] else { panic!("{:?}", status["migrate"]) };
    assert!(message.contains("Job") && message.contains("lms-migrate") && message.contains("failed"), "{message}");
    assert!(message.contains("BackoffLimitExceeded"), "the Job's condition: {message}");
    assert!(message.contains("auth_user' doesn't exist") && message.contains("exited with code 1"), "the pod's reason: {message}");
    assert!(matches!(status["after"], StepStatus::Skipped(_)), "{:?}", status["after"]);
    assert!(matches!(status["web"], StepStatus::Skipped(_)), "{:?}", status["web"]);
    assert!(h.get("kubernetes:core/v1:ConfigMap", "after-migrations").await.is_none());
    assert!(h.get("kubernetes:apps/v1:Deployment", "lms").await.is_none());
    let state = h.state().await;
    assert!(state.resources.iter().find(|r| r.urn.name() == "migrate").unwrap().tainted, "the failed Job is recorded tainted");

    // Fixed: the next up replaces the failed Job (nobody runs kubectl) and goes on.
    h.kubelet().succeed_job("lms-migrate");
    let failed_uid = h.get("kubernetes:batch/v1:Job", "lms-migrate").await.unwrap()["metadata"]["uid"].clone();
    let (plan, _) = h.up_ok(&program).await;
    assert_eq!(ops(&plan)["migrate"], Op::Replace);
    let job = h.get("kubernetes:batch/v1:Job", "lms-migrate").await.unwrap();
    assert_ne!(job["metadata"]["uid"], failed_uid);
    assert_eq!(job["status"]["succeeded"], 1);
    assert!(h.get("kubernetes:core/v1:ConfigMap", "after-migrations").await.is_some());
    h.destroy().await;
}

#[tokio::test]
async fn a_changed_pod_template_replaces_the_job() {
    let h = Harness::new("job-template").await;
    let v1 = gated_program(h.ns.clone(), "openedx:1", CustomTimeouts::default());
    h.up_ok(&v1).await;
    let first = h.get("kubernetes:batch/v1:Job", "lms-migrate").await.unwrap();

    let v2 = gated_program(h.ns.clone(), "openedx:2", CustomTimeouts::default());
    let preview = h.preview(&v2, false).await;
    let step = preview.steps.iter().find(|s| s.name() == "migrate").unwrap();
    assert_eq!(step.op, Op::Replace, "a Job is never patched with a new template");
    assert!(step.replace_paths.iter().all(|p| p.to_string().starts_with("spec.template")), "{:?}", step.replace_paths);
    assert!(step.delete_before_replace, "same name: delete first");
    assert_eq!(ops(&preview)["web"], Op::Update);

    let (_, report) = h.up_ok(&v2).await;
    assert!(report.mutating_calls >= 3, "delete, create, deployment update");
    let second = h.get("kubernetes:batch/v1:Job", "lms-migrate").await.unwrap();
    assert_ne!(second["metadata"]["uid"], first["metadata"]["uid"]);
    assert_eq!(second["spec"]["template"]["spec"]["containers"][0]["image"], "openedx:2");
    assert_eq!(second["status"]["succeeded"], 1);
    let (plan, _) = h.up_ok(&v2).await;
    assert!(plan.steps.iter().all(|s| s.op == Op::Same), "{:?}", ops(&plan));
    h.destroy().await;
}

#[tokio::test]
async fn rollouts_are_awaited_within_custom_timeouts() {
    // No kubelet at first: the Deployment's pod stays Pending and the rollout cannot finish.
    let mut h = Harness::without_kubelet("rollout-timeout").await;
    let ns = h.ns.clone();
    let program = move |s: &mut Stack| -> ProgramResult {
        let namespace = s.register("ns", Namespace { metadata: named(&ns), ..Namespace::default() }, Options::new())?;
        let labels = json!({"app": "cms"});
        s.register(
            "web",
            Deployment {
                metadata: named("cms"),
                spec: typed::<_>(json!({
                    "replicas": 1, "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "cms", "image": "openedx:1"}]}}
                })),
                ..Deployment::default()
            },
            Options::new()
                .depends_on(&namespace)
                .timeouts(CustomTimeouts { create: Some(Duration::from_secs(6)), ..CustomTimeouts::default() }),
        )?;
        Ok(())
    };
    let started = std::time::Instant::now();
    let (_, report) = h.up(&program, false).await;
    let elapsed = started.elapsed();
    let status = statuses(&report);
    let StepStatus::Failed(message) = &status["web"] else { panic!("{}", failures(&report)) };
    assert!(message.contains("did not roll out within 5s") || message.contains("did not roll out within 6s"), "{message}");
    assert!(message.contains("waiting for") && message.contains("Pending"), "says what it waited for: {message}");
    assert!(elapsed < Duration::from_secs(30), "the custom timeout bounds the wait: {elapsed:?}");
    assert!(h.state().await.resources.iter().find(|r| r.urn.name() == "web").unwrap().tainted);

    // With pods that become ready, the next up replaces the tainted Deployment and waits for it.
    h.kubelet = Some(berth_provider_kubernetes::testing::FakeKubelet::start(h.cluster.clone(), &h.ns));
    let (plan, _) = h.up_ok(&program).await;
    assert_eq!(ops(&plan)["web"], Op::Replace);
    assert_eq!(h.get("kubernetes:apps/v1:Deployment", "cms").await.unwrap()["status"]["availableReplicas"], 1);
    h.destroy().await;
}

#[tokio::test]
async fn a_finished_job_removed_by_its_ttl_is_not_run_again() {
    let h = Harness::new("job-ttl").await;
    let ns = h.ns.clone();
    let program = move |s: &mut Stack| -> ProgramResult {
        let namespace = s.register("ns", Namespace { metadata: named(&ns), ..Namespace::default() }, Options::new())?;
        s.register(
            "waffle",
            Job {
                metadata: named("lms-waffle-flags"),
                spec: typed::<_>(json!({
                    // Removed the moment it finishes: berth must still see that it completed
                    // (it watches the Job, and the delete event carries its last state).
                    "ttlSecondsAfterFinished": 0,
                    "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "waffle", "image": "openedx:1"}]}}
                })),
                ..Job::default()
            },
            Options::new().depends_on(&namespace),
        )?;
        Ok(())
    };
    h.up_ok(&program).await;
    let mut collected = false;
    for _ in 0..120 {
        if h.get("kubernetes:batch/v1:Job", "lms-waffle-flags").await.is_none() {
            collected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(collected, "the TTL controller deleted the finished Job");
    let plan = h.preview(&program, true).await;
    assert!(plan.drift.is_empty(), "a Job its TTL removed after success is not drift: {:?}", plan.drift);
    let (plan, report) = h.up(&program, true).await;
    assert!(report.succeeded());
    assert_eq!(ops(&plan)["waffle"], Op::Same);
    assert_eq!(report.mutating_calls, 0, "the Job does not run again");
    assert!(h.get("kubernetes:batch/v1:Job", "lms-waffle-flags").await.is_none());
    h.destroy().await;
}

/// A Deployment and a Job (each with a 5 s delete timeout) in their namespace; only the namespace
/// unless `owners`.
fn owners_program(ns: String, owners: bool) -> impl Fn(&mut Stack) -> ProgramResult + Send + Sync {
    move |s: &mut Stack| {
        let namespace = s.register("ns", Namespace { metadata: named(&ns), ..Namespace::default() }, Options::new())?;
        if !owners {
            return Ok(());
        }
        let options = || {
            Options::new()
                .depends_on(&namespace)
                .timeouts(CustomTimeouts { delete: Some(Duration::from_secs(5)), ..CustomTimeouts::default() })
        };
        let labels = json!({"app": "held-web"});
        s.register(
            "web",
            Deployment {
                metadata: named("held-web"),
                spec: typed::<_>(json!({
                    "replicas": 1, "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": "openedx:1"}]}}
                })),
                ..Deployment::default()
            },
            options(),
        )?;
        s.register(
            "job",
            Job {
                metadata: named("held-job"),
                spec: typed::<_>(json!({
                    "backoffLimit": 0,
                    "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "run", "image": "openedx:1"}]}}
                })),
                ..Job::default()
            },
            options(),
        )?;
        Ok(())
    }
}

#[tokio::test]
async fn deletes_wait_for_what_the_controllers_made() {
    let h = Harness::new("foreground-delete").await;
    h.up_ok(&owners_program(h.ns.clone(), true)).await;
    let web = h.get("kubernetes:apps/v1:Deployment", "held-web").await.unwrap();
    let replica_sets = h.owned_by("kubernetes:apps/v1:ReplicaSet", &web["metadata"]["uid"]).await;
    assert_eq!(replica_sets.len(), 1, "{replica_sets:?}");
    let replica_set = replica_sets[0]["metadata"]["name"].as_str().unwrap().to_string();
    let web_pods = h.owned_by("kubernetes:core/v1:Pod", &replica_sets[0]["metadata"]["uid"]).await;
    assert_eq!(web_pods.len(), 1, "{web_pods:?}");
    let job = h.get("kubernetes:batch/v1:Job", "held-job").await.unwrap();
    let job_pods = h.owned_by("kubernetes:core/v1:Pod", &job["metadata"]["uid"]).await;
    assert_eq!(job_pods.len(), 1, "{job_pods:?}");
    let job_pod = job_pods[0]["metadata"]["name"].as_str().unwrap().to_string();

    // A finalizer of the test's keeps the ReplicaSet and the Job's pod. Deleted in the
    // foreground, the Deployment and the Job then stay too (marked for deletion, waiting for
    // their dependents) and their deletes time out; in the background they would go at once.
    h.hold("kubernetes:apps/v1:ReplicaSet", &replica_set).await;
    h.hold("kubernetes:core/v1:Pod", &job_pod).await;
    let without = owners_program(h.ns.clone(), false);
    let (plan, report) = h.up(&without, false).await;
    assert_eq!((ops(&plan)["web"], ops(&plan)["job"]), (Op::Delete, Op::Delete), "{}", rendered(&plan));
    let status = statuses(&report);
    for (step, token, name) in [("web", "kubernetes:apps/v1:Deployment", "held-web"), ("job", "kubernetes:batch/v1:Job", "held-job")] {
        let StepStatus::Failed(message) = &status[step] else { panic!("{step}: {:?}", status[step]) };
        assert!(message.contains(name) && message.contains("foregroundDeletion"), "says what it waits for: {message}");
        let live = h.get(token, name).await.unwrap_or_else(|| panic!("{token} {name} waits for its dependents"));
        assert!(live.pointer("/metadata/deletionTimestamp").is_some(), "{live}");
        assert!(live["metadata"]["finalizers"].as_array().unwrap().contains(&json!("foregroundDeletion")), "{live}");
    }
    let held = h.get("kubernetes:apps/v1:ReplicaSet", &replica_set).await.unwrap();
    assert!(held["metadata"]["finalizers"].as_array().unwrap().contains(&json!(HOLD)), "{held}");

    // Released, the garbage collector finishes the deletes berth started: the next up finds the
    // owners gone and forgets them, or deletes them again and waits. Either way, when it returns
    // the owners are gone and (foreground) so are the ReplicaSet and every pod.
    h.release("kubernetes:apps/v1:ReplicaSet", &replica_set).await;
    h.release("kubernetes:core/v1:Pod", &job_pod).await;
    h.up_ok(&without).await;
    let state = h.state().await;
    assert!(state.resources.iter().all(|r| !["web", "job"].contains(&r.urn.name())), "{:?}", state.resources);
    assert!(h.get("kubernetes:apps/v1:Deployment", "held-web").await.is_none());
    assert!(h.get("kubernetes:batch/v1:Job", "held-job").await.is_none());
    assert!(h.get("kubernetes:apps/v1:ReplicaSet", &replica_set).await.is_none(), "the ReplicaSet went before its Deployment");
    for pod in web_pods.iter().chain(&job_pods) {
        let name = pod["metadata"]["name"].as_str().unwrap();
        assert!(h.get("kubernetes:core/v1:Pod", name).await.is_none(), "pod {name} went before its owner");
    }
    h.assert_namespace_active().await;
    h.destroy().await;
}
