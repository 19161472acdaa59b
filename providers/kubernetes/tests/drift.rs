//! Changes made behind berth's back (the way kubectl makes them), field-manager conflicts,
//! secrecy of Secret data in every output, and API-version negotiation on Kubernetes 1.20.

mod common;

use berth_engine::apply::StepStatus;
use berth_engine::render::{Style, drift_text};
use berth_engine::{Input, Op, Options, ProgramResult, Secret as SecretValue, Stack};
use berth_provider_kubernetes::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use berth_provider_kubernetes::*;
use common::{Harness, ops, rendered, statuses, typed};
use serde_json::json;

fn named(name: &str) -> Input<ObjectMeta> {
    ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() }.into()
}

fn drift_program(ns: String, force: bool) -> impl Fn(&mut Stack) -> ProgramResult + Send + Sync {
    move |s: &mut Stack| {
        let namespace = s.register("ns", Namespace { metadata: named(&ns), ..Namespace::default() }, Options::new())?;
        s.register(
            "config",
            ConfigMap {
                metadata: named("waffle-flags"),
                data: [("flags.yaml".to_string(), Input::from("enable_new_courseware: true\n")), ("other".to_string(), "1".into())].into(),
                berth: force.then_some(ObjectOptions { force_conflicts: true, ..ObjectOptions::default() }),
                ..ConfigMap::default()
            },
            Options::new().depends_on(&namespace),
        )?;
        s.register(
            "service",
            Service {
                metadata: named("cms"),
                spec: typed::<_>(json!({"selector": {"app": "cms"}, "ports": [{"port": 8000, "protocol": "TCP"}]})),
                ..Service::default()
            },
            Options::new().depends_on(&namespace),
        )?;
        Ok(())
    }
}

#[tokio::test]
async fn kubectl_changes_show_in_a_refreshing_preview_and_conflicts_are_clear() {
    let h = Harness::new("kubectl-drift").await;
    let program = drift_program(h.ns.clone(), false);
    h.up_ok(&program).await;
    assert!(h.preview(&program, true).await.drift.is_empty());

    // Someone edits the ConfigMap and deletes the Service with kubectl.
    h.kubectl_patch("kubernetes:core/v1:ConfigMap", "waffle-flags", json!({"data": {"flags.yaml": "enable_new_courseware: false\n"}}))
        .await;
    h.kubectl_delete("kubernetes:core/v1:Service", "cms").await;

    let plan = h.preview(&program, true).await;
    assert_eq!(plan.drift.len(), 2, "{}", drift_text(&plan.drift, Style { color: false }));
    let config = plan.drift.iter().find(|d| d.urn.name() == "config").unwrap();
    let changed = config.diffs.as_ref().unwrap();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0].path.to_string(), "data[\"flags.yaml\"]");
    assert_eq!(changed[0].new.as_ref().unwrap().as_str(), Some("enable_new_courseware: false\n"));
    assert!(plan.drift.iter().any(|d| d.urn.name() == "service" && d.diffs.is_none()), "a deleted object is drift too");
    let planned = ops(&plan);
    assert_eq!(planned["config"], Op::Update);
    assert_eq!(planned["service"], Op::Create);
    assert_eq!(planned["ns"], Op::Same);

    // kubectl now owns that field: applying over it is a conflict, reported clearly; the
    // deleted Service is created again meanwhile.
    let (_, report) = h.up(&program, true).await;
    let status = statuses(&report);
    let StepStatus::Failed(message) = &status["config"] else { panic!("{:?}", status["config"]) };
    assert!(message.contains("409") && message.contains("conflict") && message.contains("kubectl-edit"), "{message}");
    assert!(message.contains("forceConflicts") && message.contains("force_conflicts"), "says how to force: {message}");
    assert_eq!(status["service"], StepStatus::Succeeded);
    assert!(h.get("kubernetes:core/v1:Service", "cms").await.is_some());

    // Forcing takes the field back.
    let forced = drift_program(h.ns.clone(), true);
    h.up_ok(&forced).await;
    let cm = h.get("kubernetes:core/v1:ConfigMap", "waffle-flags").await.unwrap();
    assert_eq!(cm["data"]["flags.yaml"], "enable_new_courseware: true\n");
    let plan = h.preview(&forced, true).await;
    assert!(plan.drift.is_empty() && plan.steps.iter().all(|s| s.op == Op::Same), "{:?}", ops(&plan));

    // A label someone adds (a field berth never set) is not berth's business.
    h.kubectl_patch("kubernetes:core/v1:ConfigMap", "waffle-flags", json!({"metadata": {"labels": {"owner": "someone"}}})).await;
    let plan = h.preview(&forced, true).await;
    assert!(plan.drift.is_empty(), "{}", drift_text(&plan.drift, Style { color: false }));
    h.destroy().await;
}

#[tokio::test]
async fn a_provider_wide_force_setting_takes_fields_over() {
    let h = Harness::with_settings("force-setting", "    force_conflicts: true\n").await;
    let program = drift_program(h.ns.clone(), false);
    h.up_ok(&program).await;
    h.kubectl_patch("kubernetes:core/v1:ConfigMap", "waffle-flags", json!({"data": {"other": "2"}})).await;
    let plan = h.preview(&program, false).await;
    assert_eq!(ops(&plan)["config"], Op::Same, "without --refresh, recorded state is trusted");
    let (plan, report) = h.up(&program, true).await;
    assert!(report.succeeded(), "{}", common::failures(&report));
    assert_eq!(ops(&plan)["config"], Op::Update, "refreshed, the change is seen and undone");
    assert_eq!(h.get("kubernetes:core/v1:ConfigMap", "waffle-flags").await.unwrap()["data"]["other"], "1");
    h.destroy().await;
}

const SECRET_VALUE: &str = "drift-test-db-password-7f3a";

fn secret_program(ns: String, value: String) -> impl Fn(&mut Stack) -> ProgramResult + Send + Sync {
    move |s: &mut Stack| {
        let namespace = s.register("ns", Namespace { metadata: named(&ns), ..Namespace::default() }, Options::new())?;
        s.register(
            "creds",
            Secret {
                metadata: named("00-database-credentials"),
                string_data: [("password".to_string(), Input::Value(SecretValue::new(value.clone())))].into(),
                ..Secret::default()
            },
            Options::new().depends_on(&namespace),
        )?;
        Ok(())
    }
}

#[tokio::test]
async fn secret_values_never_show_in_plans_drift_state_or_errors() {
    use base64::Engine as _;
    let h = Harness::new("secret-output").await;
    let first = format!("{SECRET_VALUE}-1");
    let second = format!("{SECRET_VALUE}-2");
    let by_kubectl = format!("{SECRET_VALUE}-kubectl");
    let forbidden: Vec<String> = [&first, &second, &by_kubectl]
        .iter()
        .flat_map(|v| [v.to_string(), base64::engine::general_purpose::STANDARD.encode(v.as_bytes())])
        .collect();
    let check = |what: &str, text: &str| {
        for value in &forbidden {
            assert!(!text.contains(value.as_str()), "{what} shows a secret value:\n{text}");
        }
    };

    let v1 = secret_program(h.ns.clone(), first.clone());
    check("the create plan", &rendered(&h.preview(&v1, false).await));
    h.up_ok(&v1).await;
    let live = h.get("kubernetes:core/v1:Secret", "00-database-credentials").await.unwrap();
    assert_eq!(live["data"]["password"], base64::engine::general_purpose::STANDARD.encode(first.as_bytes()));

    let v2 = secret_program(h.ns.clone(), second.clone());
    let plan = h.preview(&v2, false).await;
    let text = rendered(&plan);
    check("the update plan", &text);
    assert_eq!(ops(&plan)["creds"], Op::Update);
    assert!(text.contains("[secret]"), "{text}");
    h.up_ok(&v2).await;

    let encoded = base64::engine::general_purpose::STANDARD.encode(by_kubectl.as_bytes());
    h.kubectl_patch("kubernetes:core/v1:Secret", "00-database-credentials", json!({"data": {"password": encoded}})).await;
    let plan = h.preview(&v2, true).await;
    assert_eq!(plan.drift.len(), 1);
    check("the drift report", &drift_text(&plan.drift, Style { color: false }));
    check("the drift JSON", &berth_engine::render::drift_json(&plan.drift).to_string());
    check("the refreshed plan", &rendered(&plan));
    let (_, report) = h.up(&v2, true).await;
    check("apply errors", &common::failures(&report));
    check("the state files", &h.state_text());
    assert!(h.state_text().contains("00-database-credentials"), "non-secret fields stay readable");

    // A mistake in a Secret is reported without its value.
    let bad = {
        let ns = h.ns.clone();
        move |s: &mut Stack| -> ProgramResult {
            s.register("ns", Namespace { metadata: named(&ns), ..Namespace::default() }, Options::new())?;
            s.register(
                "creds",
                Secret {
                    metadata: named("00-database-credentials"),
                    data: [("password".to_string(), Input::Value(SecretValue::new(format!("{SECRET_VALUE}-not-base64!"))))].into(),
                    ..Secret::default()
                },
                Options::new(),
            )?;
            Ok(())
        }
    };
    let error =
        h.engine.preview(&bad, None, &berth_engine::ops::RunOptions { parallel: 2, ..Default::default() }).await.err().unwrap().to_string();
    assert!(error.contains("data.password") && error.contains("base64"), "{error}");
    assert!(!error.contains(SECRET_VALUE), "{error}");
    h.destroy().await;
}

#[tokio::test]
async fn api_versions_are_negotiated_down_on_kubernetes_1_20() {
    let h = Harness::new("negotiation").await;
    let ns = h.ns.clone();
    let program = move |s: &mut Stack| -> ProgramResult {
        let namespace = s.register("ns", Namespace { metadata: named(&ns), ..Namespace::default() }, Options::new())?;
        s.register(
            "hpa",
            HorizontalPodAutoscaler {
                metadata: named("cms"),
                spec: typed::<_>(json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "cms"}, "maxReplicas": 4,
                    "metrics": [{"type": "Resource", "resource": {"name": "memory", "target": {"type": "Utilization", "averageUtilization": 80}}}]})),
                ..HorizontalPodAutoscaler::default()
            },
            Options::new().depends_on(&namespace),
        )?;
        s.register(
            "cron",
            CronJob {
                metadata: named("backup"),
                spec: typed::<_>(json!({"schedule": "0 2 * * *", "jobTemplate": {"spec": {"template": {"spec": {
                    "restartPolicy": "Never", "containers": [{"name": "b", "image": "busybox"}]}}}}})),
                ..CronJob::default()
            },
            Options::new().depends_on(&namespace),
        )?;
        s.register(
            "pdb",
            PodDisruptionBudget {
                metadata: named("cms"),
                spec: typed::<_>(json!({"maxUnavailable": 1, "selector": {"matchLabels": {"app": "cms"}}})),
                ..PodDisruptionBudget::default()
            },
            Options::new().depends_on(&namespace),
        )?;
        Ok(())
    };
    let plan = h.preview(&program, false).await;
    let notes = |name: &str| plan.steps.iter().find(|s| s.name() == name).unwrap().notes.join(" ");
    assert!(notes("hpa").contains("autoscaling/v2") && notes("hpa").contains("autoscaling/v2beta2"), "{}", notes("hpa"));
    assert!(notes("cron").contains("batch/v1beta1"), "{}", notes("cron"));
    assert!(notes("pdb").contains("policy/v1beta1"), "{}", notes("pdb"));
    assert!(notes("ns").is_empty());
    assert!(rendered(&plan).contains("v2beta2"), "the plan shows it");
    h.up_ok(&program).await;
    let hpa = h.get("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "cms").await.unwrap();
    assert_eq!(hpa["apiVersion"], "autoscaling/v2beta2");
    assert_eq!(hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 80);
    let (plan, report) = h.up_ok(&program).await;
    assert!(plan.steps.iter().all(|s| s.op == Op::Same), "{:?}", ops(&plan));
    assert_eq!(report.mutating_calls, 0);
    h.destroy().await;
}
