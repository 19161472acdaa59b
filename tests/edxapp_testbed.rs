//! edxapp end to end on the testbed, through the `berth` binary as an operator runs it: the
//! network, cluster and edxapp stacks up against moto, OpenBao and the real kube-apiserver (a
//! stand-in kubelet lets the real Job and Deployment controllers finish Jobs and rollouts), a
//! no-op `up` that writes nothing anywhere, a release that runs its pre-deploy Jobs once and
//! rolls the Deployments out only after them, a failing migration that stops the rollout and is
//! replaced by the next `up`, and a destroy after which berth can find none of what it made.
//!
//! Each test has its own deployment name, namespace, Vault mounts, OIDC issuer and state
//! directory, so tests run in parallel and leave nothing behind. Needs `make testbed`.

mod support;

use std::time::Duration;

use berth_provider_kubernetes::discovery::Target;
use berth_provider_kubernetes::testing::FakeKubelet;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_runs_its_jobs_once_then_rolls_out_and_a_no_op_writes_nothing() {
    let w = World::new("rel").await;
    let kubelet = FakeKubelet::start(w.cluster.clone(), &w.namespace);
    // Jobs take a while, so a Deployment applied too early would show.
    kubelet.delay_jobs(Duration::from_secs(2));
    w.up_foundations();

    let release1 = digest(1);
    let jobs1 = w.planned_jobs(&release1);
    assert_eq!(jobs1.len(), 3, "{jobs1:?}");
    assert!(jobs1[0].contains("-lms-migrate-"), "{jobs1:?}");
    let up = w.stack("up", "local", &release1, &["--yes"]);
    up.assert_ok();
    assert!(up.stdout().contains("created"), "{}", up.describe());
    w.assert_rollout_after(&jobs1).await;
    w.assert_built_as_designed().await;
    for (name, image) in w.deployment_images().await {
        assert!(image.ends_with(&format!("@{release1}")), "{name} runs {image}");
    }
    let outputs = w.berth(&["stack", "output", "local", "--json"]);
    outputs.assert_ok();
    assert_eq!(outputs.json()["pre_deploy_jobs"], serde_json::json!(jobs1));

    // The same objects as GitOps manifests: ordered in sync waves, valid for the API server,
    // with no secret value in them.
    let gitops = tempfile::tempdir().unwrap();
    let render = w.stack("render", "local", &release1, &["--out", gitops.path().to_str().unwrap()]);
    render.assert_ok();
    assert!(render.stderr().contains("cms-celery-redis-auth"), "the Secrets are named as withheld: {}", render.describe());
    w.assert_renders_apply(gitops.path()).await;

    // Nothing to do: a preview (also with refresh) says so, and an `up` writes nothing to AWS,
    // Vault or the cluster (AWS and Vault calls go through recording proxies).
    w.stack("preview", "local", &release1, &["--expect-no-changes"]).assert_ok();
    w.stack("preview", "local", &release1, &["--refresh", "--expect-no-changes"]).assert_ok();
    let before = w.berth_writes().await;
    let aws = proxy::Proxy::start(&env("AWS_ENDPOINT_URL"));
    let vault = proxy::Proxy::start(&env("VAULT_ADDR"));
    let watched = World { aws_endpoint: aws.url.clone(), vault_addr: vault.url.clone(), ..w };
    std::thread::sleep(Duration::from_millis(1100));
    let noop = watched.stack("up", "local", &release1, &["--yes", "--refresh"]);
    noop.assert_ok();
    assert!(noop.stdout().contains("unchanged") && !noop.stdout().contains("created"), "{}", noop.describe());
    assert!(!aws.calls().is_empty() && !vault.calls().is_empty(), "the refresh read through the proxies");
    assert_eq!(aws.mutating_calls(), Vec::<String>::new(), "AWS");
    assert_eq!(vault.mutating_calls(), Vec::<String>::new(), "Vault");
    assert_eq!(watched.berth_writes().await, before, "Kubernetes");
    let w = World { aws_endpoint: env("AWS_ENDPOINT_URL"), vault_addr: env("VAULT_ADDR"), ..watched };

    // A finished Job removed by its TTL is still the same release's Job: nothing re-runs.
    let job = Target {
        group: "batch".into(),
        version: "v1".into(),
        kind: "Job".into(),
        plural: "jobs".into(),
        namespaced: true,
        negotiated_from: None,
    };
    assert!(w.cluster.delete(&job, Some(&w.namespace), &jobs1[0]).await.unwrap());
    while w.get("Job", &jobs1[0]).await.is_some() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    w.stack("preview", "local", &release1, &["--refresh", "--expect-no-changes"]).assert_ok();

    // A configuration change (the LMS domain: fragments 60 and 82) rolls every Deployment
    // through its pod template's config hash; the Jobs, which follow the release only, stay.
    let changed = w.stack("preview", "local", &release1, &["--config", "edxapp.domains.lms=lms2.local.test", "--json"]);
    let plan = changed.json();
    let steps = plan["steps"].as_array().unwrap();
    let rolled: Vec<&serde_json::Value> =
        steps.iter().filter(|s| s["type"] == "kubernetes:apps/v1:Deployment" && s["op"] == "update").collect();
    assert_eq!(rolled.len(), 5, "{}", changed.stdout());
    for deployment in rolled {
        let paths: Vec<&str> = deployment["diffs"].as_array().unwrap().iter().map(|d| d["path"].as_str().unwrap()).collect();
        assert!(paths.iter().any(|p| p.contains("config-hash")), "{}: {paths:?}", deployment["name"]);
    }
    assert!(steps.iter().filter(|s| s["type"] == "kubernetes:batch/v1:Job").all(|s| s["op"] == "same"), "{}", changed.stdout());

    // A new release: new Jobs (their names carry the new pod template's hash), run once, and
    // the Deployments roll out after them; the old release's Jobs go.
    let release2 = digest(2);
    let jobs2 = w.planned_jobs(&release2);
    assert_eq!(jobs2.len(), 3);
    assert!(jobs2.iter().all(|j| !jobs1.contains(j)), "{jobs1:?} {jobs2:?}");
    let preview = w.stack("preview", "local", &release2, &["--json"]);
    let plan = preview.json();
    let ops = |ty: &str, op: &str| plan["steps"].as_array().unwrap().iter().filter(|s| s["type"] == ty && s["op"] == op).count();
    assert_eq!(ops("kubernetes:apps/v1:Deployment", "update"), 5, "{}", preview.stdout());
    assert_eq!(ops("kubernetes:batch/v1:Job", "delete"), 3);
    w.stack("up", "local", &release2, &["--yes"]).assert_ok();
    w.assert_rollout_after(&jobs2).await;
    for (name, image) in w.deployment_images().await {
        assert!(image.ends_with(&format!("@{release2}")), "{name} runs {image}");
    }
    for old in &jobs1[1..] {
        assert!(w.get("Job", old).await.is_none(), "the old release's Job {old} was deleted");
    }
    w.stack("up", "local", &release2, &["--yes", "--expect-no-changes"]).assert_ok();

    drop(kubelet);
    w.destroy_and_prove_nothing_left().await;
    assert!(w.get("Namespace", &w.namespace).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_migration_stops_the_rollout_and_the_next_up_replaces_it() {
    let w = World::new("fail").await;
    let kubelet = FakeKubelet::start(w.cluster.clone(), &w.namespace);
    w.up_foundations();
    let release1 = digest(3);
    w.stack("up", "local", &release1, &["--yes"]).assert_ok();

    // The next release's LMS migrations fail.
    let release2 = digest(4);
    let jobs = w.planned_jobs(&release2);
    kubelet.fail_job(&jobs[0], "MigrationFailed", "django.db.utils.OperationalError: (1054, \"Unknown column\")");
    let up = w.stack("up", "local", &release2, &["--yes"]);
    assert_eq!(up.output.status.code(), Some(1), "{}", up.describe());
    let said = format!("{}{}", up.stdout(), up.stderr());
    assert!(said.contains(&jobs[0]) && said.contains("MigrationFailed"), "names the Job and the pod's reason:\n{said}");
    for (name, image) in w.deployment_images().await {
        assert!(image.ends_with(&format!("@{release1}")), "{name} must still run the old release, runs {image}");
    }
    assert!(w.get("Job", &jobs[1]).await.is_none(), "Studio migrations wait for LMS migrations");
    let failed_uid = w.get("Job", &jobs[0]).await.unwrap()["metadata"]["uid"].clone();

    // Fixed (here: the kubelet lets it pass); the next `up` replaces the failed Job by itself.
    kubelet.succeed_job(&jobs[0]);
    let preview = w.stack("preview", "local", &release2, &["--json"]);
    let plan = preview.json();
    let step = plan["steps"].as_array().unwrap().iter().find(|s| s["name"] == jobs[0].as_str()).unwrap().clone();
    assert_eq!(step["op"], "replace", "{}", preview.stdout());
    w.stack("up", "local", &release2, &["--yes"]).assert_ok();
    let rerun = w.get("Job", &jobs[0]).await.unwrap();
    assert_ne!(rerun["metadata"]["uid"], failed_uid, "a new Job, not the failed one patched");
    w.assert_rollout_after(&jobs).await;
    for (name, image) in w.deployment_images().await {
        assert!(image.ends_with(&format!("@{release2}")), "{name} runs {image}");
    }

    drop(kubelet);
    w.destroy_and_prove_nothing_left().await;
}
