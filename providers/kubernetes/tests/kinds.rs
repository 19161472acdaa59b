//! Every typed kind against the real API server: create, no-op, update, delete, through the
//! engine.

mod common;

use std::collections::BTreeMap;

use berth_engine::apply::StepStatus;
use berth_engine::{Input, Op, Options, ProgramResult, Secret as SecretValue, Stack};
use berth_provider_kubernetes::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use berth_provider_kubernetes::*;
use common::{Harness, ops, rendered, typed};
use serde_json::json;

fn meta(name: &str, labels: &[(&str, &str)]) -> Input<ObjectMeta> {
    let labels: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    ObjectMeta { name: Some(name.into()), labels: (!labels.is_empty()).then_some(labels), ..ObjectMeta::default() }.into()
}

/// Namespace, ConfigMap, Secret, ServiceAccount, PersistentVolumeClaim, Service and a
/// ClusterRoleBinding, in two versions; without the namespaced objects unless `namespaced`.
fn core_program(ns: String, crb: String, version: u8, namespaced: bool) -> impl Fn(&mut Stack) -> ProgramResult + Send + Sync {
    move |s: &mut Stack| {
        let v2 = version >= 2;
        let namespace = s.register(
            "ns",
            Namespace { metadata: meta(&ns, if v2 { &[("team", "edx")] } else { &[] }), ..Namespace::default() },
            Options::new(),
        )?;
        let mut subjects = vec![json!({"kind": "ServiceAccount", "name": "edxapp", "namespace": ns})];
        if v2 {
            subjects.push(json!({"kind": "ServiceAccount", "name": "edxapp-vault", "namespace": ns}));
        }
        s.register(
            "crb",
            ClusterRoleBinding {
                metadata: meta(&crb, &[]),
                role_ref: typed::<_>(
                    json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"}),
                ),
                subjects: Some(typed::<_>(json!(subjects))),
                ..ClusterRoleBinding::default()
            },
            Options::new(),
        )?;
        if !namespaced {
            return Ok(());
        }
        let in_ns = || Options::new().depends_on(&namespace);
        s.register(
            "config",
            ConfigMap {
                metadata: meta("general-config", &[]),
                data: [(
                    "50-general-config.yaml".to_string(),
                    Input::from(if v2 { "PLATFORM_NAME: MITx v2\n" } else { "PLATFORM_NAME: MITx\n" }),
                )]
                .into(),
                ..ConfigMap::default()
            },
            in_ns(),
        )?;
        s.register(
            "secret",
            Secret {
                metadata: meta("general-secrets", &[]),
                string_data: [("DB_PASSWORD".to_string(), Input::Value(SecretValue::new(format!("kinds-secret-value-{version}"))))].into(),
                ..Secret::default()
            },
            in_ns(),
        )?;
        let mut sa_meta = ObjectMeta { name: Some("edxapp".into()), ..ObjectMeta::default() };
        if v2 {
            sa_meta.annotations = Some([("eks.amazonaws.com/role-arn".to_string(), "arn:aws:iam::1:role/edxapp".to_string())].into());
        }
        s.register("sa", ServiceAccount { metadata: sa_meta.into(), ..ServiceAccount::default() }, in_ns())?;
        s.register(
            "pvc",
            PersistentVolumeClaim {
                metadata: meta("openedx-data", if v2 { &[("tier", "data")] } else { &[] }),
                spec: typed::<_>(json!({"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "5Gi"}}})),
                ..PersistentVolumeClaim::default()
            },
            in_ns(),
        )?;
        s.register(
            "service",
            Service {
                metadata: meta("lms", &[]),
                spec: typed::<_>(json!({
                    "selector": {"ol.mit.edu/component": "lms-webapp"},
                    "ports": [{"name": "http", "port": if v2 { 8080 } else { 8000 }, "targetPort": "http", "protocol": "TCP"}]
                })),
                ..Service::default()
            },
            in_ns(),
        )?;
        Ok(())
    }
}

#[tokio::test]
async fn core_kinds_create_update_noop_delete() {
    let h = Harness::new("core-kinds").await;
    let crb = common::unique("core-kinds-crb");
    h.delete_on_drop(h.target("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding").await, &crb);
    let v1 = core_program(h.ns.clone(), crb.clone(), 1, true);

    let (plan, report) = h.up_ok(&v1).await;
    assert!(plan.steps.iter().filter(|s| s.custom).all(|s| s.op == Op::Create), "{:?}", ops(&plan));
    assert_eq!(report.mutating_calls, 7);
    let cm = h.get("kubernetes:core/v1:ConfigMap", "general-config").await.unwrap();
    assert_eq!(cm["data"]["50-general-config.yaml"], "PLATFORM_NAME: MITx\n");
    let secret = h.get("kubernetes:core/v1:Secret", "general-secrets").await.unwrap();
    assert_eq!(secret["data"]["DB_PASSWORD"], "a2luZHMtc2VjcmV0LXZhbHVlLTE=", "stringData is applied as base64 data");
    assert_eq!(h.get("kubernetes:core/v1:Service", "lms").await.unwrap()["spec"]["ports"][0]["port"], 8000);
    let state = h.state().await;
    let sa = state.resources.iter().find(|r| r.urn.name() == "sa").unwrap();
    assert_eq!(sa.id.as_deref(), Some(format!("{}/edxapp", h.ns).as_str()));
    assert_eq!(state.resources.iter().find(|r| r.urn.name() == "crb").unwrap().id.as_deref(), Some(crb.as_str()));

    // The same program again: every object is unchanged on the server's own terms (defaults the
    // server filled in, such as a Service's clusterIP and sessionAffinity, are not berth's).
    let (plan, report) = h.up_ok(&v1).await;
    assert!(plan.steps.iter().all(|s| s.op == Op::Same), "{:?}\n{}", ops(&plan), rendered(&plan));
    assert_eq!(report.mutating_calls, 0);
    let refreshed = h.preview(&v1, true).await;
    assert!(refreshed.drift.is_empty(), "{:?}", refreshed.drift);

    let v2 = core_program(h.ns.clone(), crb.clone(), 2, true);
    let (plan, _) = h.up_ok(&v2).await;
    let planned = ops(&plan);
    for name in ["ns", "config", "secret", "sa", "pvc", "service", "crb"] {
        assert_eq!(planned[name], Op::Update, "{name}: {}", rendered(&plan));
    }
    let text = rendered(&plan);
    assert!(text.contains("data.50-general-config.yaml") || text.contains("50-general-config.yaml"), "{text}");
    assert!(!text.contains("kinds-secret-value") && !text.contains("a2luZHMtc2VjcmV0"), "secret values never show:\n{text}");
    let service_step = plan.steps.iter().find(|s| s.name() == "service").unwrap();
    let changed: Vec<String> = service_step.diffs.iter().map(|d| d.path.to_string()).collect();
    assert_eq!(changed, vec!["spec.ports[0].port"], "only what berth changed, not server defaults");
    assert_eq!(h.get("kubernetes:core/v1:Namespace", &h.ns).await.unwrap()["metadata"]["labels"]["team"], "edx");
    assert_eq!(
        h.get("kubernetes:core/v1:ConfigMap", "general-config").await.unwrap()["data"]["50-general-config.yaml"],
        "PLATFORM_NAME: MITx v2\n"
    );
    assert_eq!(h.get("kubernetes:core/v1:Secret", "general-secrets").await.unwrap()["data"]["DB_PASSWORD"], "a2luZHMtc2VjcmV0LXZhbHVlLTI=");
    let sa = h.get("kubernetes:core/v1:ServiceAccount", "edxapp").await.unwrap();
    assert_eq!(sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"], "arn:aws:iam::1:role/edxapp");
    assert_eq!(h.get("kubernetes:core/v1:PersistentVolumeClaim", "openedx-data").await.unwrap()["metadata"]["labels"]["tier"], "data");
    assert_eq!(h.get("kubernetes:core/v1:Service", "lms").await.unwrap()["spec"]["ports"][0]["port"], 8080);
    let binding = h.get("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding", &crb).await.unwrap();
    assert_eq!(binding["subjects"].as_array().unwrap().len(), 2);
    let (plan, _) = h.up_ok(&v2).await;
    assert!(plan.steps.iter().all(|s| s.op == Op::Same), "{:?}", ops(&plan));

    // The namespaced objects leave the program and the namespace stays: each is deleted by its
    // own delete (not by the namespace's), and is gone when up returns.
    let objects = [
        ("config", "kubernetes:core/v1:ConfigMap", "general-config"),
        ("secret", "kubernetes:core/v1:Secret", "general-secrets"),
        ("sa", "kubernetes:core/v1:ServiceAccount", "edxapp"),
        ("pvc", "kubernetes:core/v1:PersistentVolumeClaim", "openedx-data"),
        ("service", "kubernetes:core/v1:Service", "lms"),
    ];
    for (_, token, name) in objects {
        assert!(h.get(token, name).await.is_some(), "{token} {name} exists before");
    }
    let (plan, report) = h.up_ok(&core_program(h.ns.clone(), crb.clone(), 2, false)).await;
    let planned = ops(&plan);
    assert_eq!((planned["ns"], planned["crb"]), (Op::Same, Op::Same), "{}", rendered(&plan));
    assert_eq!(report.mutating_calls, objects.len());
    for (step, token, name) in objects {
        assert_eq!(planned[step], Op::Delete, "{step}: {}", rendered(&plan));
        assert!(h.get(token, name).await.is_none(), "{token} {name} is gone when up returns");
    }
    h.assert_namespace_active().await;

    // Destroy deletes in reverse order and waits: the namespace is finalised, not just marked.
    let report = h.destroy().await;
    assert!(report.outcomes.iter().all(|o| matches!(o.status, StepStatus::Succeeded) || !o.custom));
    assert!(h.get("kubernetes:core/v1:Namespace", &h.ns).await.is_none(), "the namespace is gone when destroy returns");
    assert!(h.get("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding", &crb).await.is_none());
}

/// Deployment, HorizontalPodAutoscaler, Job, CronJob, PodDisruptionBudget and Ingress, in their
/// namespace; only the namespace unless `namespaced`.
fn workload_program(ns: String, version: u8, namespaced: bool) -> impl Fn(&mut Stack) -> ProgramResult + Send + Sync {
    move |s: &mut Stack| {
        let v2 = version >= 2;
        let namespace = s.register("ns", Namespace { metadata: meta(&ns, &[]), ..Namespace::default() }, Options::new())?;
        if !namespaced {
            return Ok(());
        }
        let in_ns = || Options::new().depends_on(&namespace);
        let labels = json!({"ol.mit.edu/component": "lms-webapp"});
        s.register(
            "web",
            Deployment {
                metadata: meta("lms-webapp", &[]),
                spec: typed::<_>(json!({
                    "replicas": if v2 { 2 } else { 1 },
                    "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                        "name": "lms", "image": if v2 { "openedx:2" } else { "openedx:1" },
                        "ports": [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
                    }]}}
                })),
                ..Deployment::default()
            },
            in_ns(),
        )?;
        s.register(
            "hpa",
            HorizontalPodAutoscaler {
                metadata: meta("lms-webapp", &[]),
                spec: typed::<_>(json!({
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "lms-webapp"},
                    "minReplicas": 1, "maxReplicas": if v2 { 6 } else { 3 },
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}],
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300, "policies": [{"type": "Percent", "value": 25, "periodSeconds": 60}]}}
                })),
                ..HorizontalPodAutoscaler::default()
            },
            in_ns(),
        )?;
        s.register(
            "migrate",
            Job {
                metadata: meta("lms-migrate", if v2 { &[("release", "v2")] } else { &[] }),
                spec: typed::<_>(json!({
                    "backoffLimit": 1, "ttlSecondsAfterFinished": 1800,
                    "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "migrate", "image": "openedx:1", "command": ["./manage.py", "migrate"]}]}}
                })),
                ..Job::default()
            },
            in_ns(),
        )?;
        s.register(
            "backup",
            CronJob {
                metadata: meta("mysql-backup", &[]),
                spec: typed::<_>(json!({
                    "schedule": if v2 { "0 3 * * *" } else { "0 2 * * *" },
                    "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "backup", "image": "mysql:8"}]}}}}
                })),
                ..CronJob::default()
            },
            in_ns(),
        )?;
        s.register(
            "pdb",
            PodDisruptionBudget {
                metadata: meta("lms-webapp", &[]),
                spec: typed::<_>(json!({"minAvailable": if v2 { 2 } else { 1 }, "selector": {"matchLabels": labels}})),
                ..PodDisruptionBudget::default()
            },
            in_ns(),
        )?;
        s.register(
            "ingress",
            Ingress {
                metadata: meta("lms", &[]),
                spec: typed::<_>(json!({"rules": [{"host": if v2 { "lms2.example.org" } else { "lms.example.org" }, "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "lms", "port": {"number": 8000}}}}
                ]}}]})),
                ..Ingress::default()
            },
            in_ns(),
        )?;
        Ok(())
    }
}

#[tokio::test]
async fn workload_kinds_create_update_noop_delete() {
    let h = Harness::new("workload-kinds").await;
    let v1 = workload_program(h.ns.clone(), 1, true);

    let (plan, _) = h.up_ok(&v1).await;
    assert!(plan.steps.iter().filter(|s| s.custom).all(|s| s.op == Op::Create), "{:?}", ops(&plan));
    let web = h.get("kubernetes:apps/v1:Deployment", "lms-webapp").await.unwrap();
    assert_eq!(web["status"]["availableReplicas"], 1, "up returned after the rollout");
    let job = h.get("kubernetes:batch/v1:Job", "lms-migrate").await.unwrap();
    assert_eq!(job["status"]["succeeded"], 1, "up returned after the Job completed");
    let state = h.state().await;
    let api_version = |name: &str| {
        let r = state.resources.iter().find(|r| r.urn.name() == name).unwrap();
        r.outputs.as_object().unwrap()["apiVersion"].as_str().unwrap().to_string()
    };
    // Kubernetes 1.20 serves none of these in the version written; berth used the older one.
    assert_eq!(api_version("hpa"), "autoscaling/v2beta2");
    assert_eq!(api_version("backup"), "batch/v1beta1");
    assert_eq!(api_version("pdb"), "policy/v1beta1");
    assert_eq!(api_version("ingress"), "networking.k8s.io/v1");

    let (plan, report) = h.up_ok(&v1).await;
    assert!(plan.steps.iter().all(|s| s.op == Op::Same), "{:?}\n{}", ops(&plan), rendered(&plan));
    assert_eq!(report.mutating_calls, 0);

    let v2 = workload_program(h.ns.clone(), 2, true);
    let (plan, _) = h.up_ok(&v2).await;
    let planned = ops(&plan);
    for name in ["web", "hpa", "migrate", "backup", "pdb", "ingress"] {
        assert_eq!(planned[name], Op::Update, "{name}: {}", rendered(&plan));
    }
    let web = h.get("kubernetes:apps/v1:Deployment", "lms-webapp").await.unwrap();
    assert_eq!(web["spec"]["template"]["spec"]["containers"][0]["image"], "openedx:2");
    assert_eq!(web["status"]["updatedReplicas"], 2, "the update waited for the new rollout");
    assert_eq!(web["status"]["availableReplicas"], 2);
    let hpa = h.get("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "lms-webapp").await.unwrap();
    assert_eq!(hpa["spec"]["maxReplicas"], 6);
    let cron = h.get("kubernetes:batch/v1:CronJob", "mysql-backup").await.unwrap();
    assert_eq!(cron["spec"]["schedule"], "0 3 * * *");
    let pdb = h.get("kubernetes:policy/v1:PodDisruptionBudget", "lms-webapp").await.unwrap();
    assert_eq!(pdb["spec"]["minAvailable"], 2);
    let ingress = h.get("kubernetes:networking.k8s.io/v1:Ingress", "lms").await.unwrap();
    assert_eq!(ingress["spec"]["rules"][0]["host"], "lms2.example.org");
    assert_eq!(h.get("kubernetes:batch/v1:Job", "lms-migrate").await.unwrap()["metadata"]["labels"]["release"], "v2");
    let (plan, _) = h.up_ok(&v2).await;
    assert!(plan.steps.iter().all(|s| s.op == Op::Same), "{:?}\n{}", ops(&plan), rendered(&plan));

    // What the controllers made for the Deployment and the Job: ReplicaSets (the rollout to v2
    // left two) and their pods, and the Job's pod.
    let web_uid = h.get("kubernetes:apps/v1:Deployment", "lms-webapp").await.unwrap()["metadata"]["uid"].clone();
    let replica_sets = h.owned_by("kubernetes:apps/v1:ReplicaSet", &web_uid).await;
    assert_eq!(replica_sets.len(), 2, "{replica_sets:?}");
    let mut web_pods = Vec::new();
    for rs in &replica_sets {
        web_pods.extend(h.owned_by("kubernetes:core/v1:Pod", &rs["metadata"]["uid"]).await);
    }
    assert!(web_pods.len() >= 2, "{web_pods:?}");
    let job_uid = h.get("kubernetes:batch/v1:Job", "lms-migrate").await.unwrap()["metadata"]["uid"].clone();
    assert!(!h.owned_by("kubernetes:core/v1:Pod", &job_uid).await.is_empty(), "the Job's pod exists before");

    // The namespaced objects leave the program and the namespace stays: each is deleted by its
    // own delete (not by the namespace's), and is gone when up returns; deletes propagate in the
    // foreground, so the Deployment's ReplicaSets and pods, and the Job's pods, are gone too.
    let objects = [
        ("web", "kubernetes:apps/v1:Deployment", "lms-webapp"),
        ("hpa", "kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "lms-webapp"),
        ("migrate", "kubernetes:batch/v1:Job", "lms-migrate"),
        ("backup", "kubernetes:batch/v1:CronJob", "mysql-backup"),
        ("pdb", "kubernetes:policy/v1:PodDisruptionBudget", "lms-webapp"),
        ("ingress", "kubernetes:networking.k8s.io/v1:Ingress", "lms"),
    ];
    let (plan, report) = h.up_ok(&workload_program(h.ns.clone(), 2, false)).await;
    let planned = ops(&plan);
    assert_eq!(planned["ns"], Op::Same, "{}", rendered(&plan));
    assert_eq!(report.mutating_calls, objects.len());
    for (step, token, name) in objects {
        assert_eq!(planned[step], Op::Delete, "{step}: {}", rendered(&plan));
        assert!(h.get(token, name).await.is_none(), "{token} {name} is gone when up returns");
    }
    for rs in &replica_sets {
        let name = rs["metadata"]["name"].as_str().unwrap();
        assert!(h.get("kubernetes:apps/v1:ReplicaSet", name).await.is_none(), "ReplicaSet {name} went before its Deployment");
    }
    for pod in &web_pods {
        let name = pod["metadata"]["name"].as_str().unwrap();
        assert!(h.get("kubernetes:core/v1:Pod", name).await.is_none(), "pod {name} went before its Deployment");
    }
    let job_pods = h.list("kubernetes:core/v1:Pod", "job-name=lms-migrate").await;
    assert!(job_pods.is_empty(), "the Job's pods went before it: {job_pods:?}");
    assert!(h.owned_by("kubernetes:apps/v1:ReplicaSet", &web_uid).await.is_empty());
    h.assert_namespace_active().await;

    h.destroy().await;
    assert!(h.get("kubernetes:core/v1:Namespace", &h.ns).await.is_none());
}
