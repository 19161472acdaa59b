//! Objects berth did not create: a create refuses to take one over and says to import it; an
//! import adopts it; after an interrupted create, lookup adopts only what berth applied.

mod common;

use berth_engine::apply::StepStatus;
use berth_engine::{CallContext, Op, Options, ProgramResult, Provider, Stack, Urn, Value};
use berth_provider_kubernetes::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use berth_provider_kubernetes::{ConfigMap, KubernetesSettings, Namespace, provider};
use common::{Harness, kubeconfig, ops, statuses};
use serde_json::json;

fn program(ns: String, import: Option<String>) -> impl Fn(&mut Stack) -> ProgramResult + Send + Sync {
    move |s: &mut Stack| {
        let namespace = s.register(
            "ns",
            Namespace { metadata: ObjectMeta { name: Some(ns.clone()), ..Default::default() }.into(), ..Default::default() },
            Options::new(),
        )?;
        let mut options = Options::new().depends_on(&namespace);
        if let Some(id) = &import {
            options = options.import(id.clone());
        }
        s.register(
            "flags",
            ConfigMap {
                metadata: ObjectMeta { name: Some("waffle-flags".into()), ..Default::default() }.into(),
                data: [("flags.yaml".to_string(), "a: true\n".into())].into(),
                ..Default::default()
            },
            options,
        )?;
        Ok(())
    }
}

#[tokio::test]
async fn objects_made_elsewhere_are_imported_not_taken_over() {
    let h = Harness::new("adopt").await;
    // The namespace first, then a ConfigMap made with kubectl.
    let only_ns = {
        let ns = h.ns.clone();
        move |s: &mut Stack| -> ProgramResult {
            s.register(
                "ns",
                Namespace { metadata: ObjectMeta { name: Some(ns.clone()), ..Default::default() }.into(), ..Default::default() },
                Options::new(),
            )?;
            Ok(())
        }
    };
    h.up_ok(&only_ns).await;
    let target = h.target("kubernetes:core/v1:ConfigMap").await;
    let made = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "waffle-flags", "namespace": h.ns}, "data": {"flags.yaml": "a: true\n"}});
    h.cluster.create(&target, Some(&h.ns), "kubectl-create", &made).await.unwrap();

    let (_, report) = h.up(&program(h.ns.clone(), None), false).await;
    let StepStatus::Failed(message) = &statuses(&report)["flags"] else { panic!("{}", common::failures(&report)) };
    let id = format!("{}/waffle-flags", h.ns);
    assert!(message.contains("already exists") && message.contains("kubectl-create") && message.contains(&id), "{message}");
    assert!(message.contains("import"), "says to import it: {message}");

    let importing = program(h.ns.clone(), Some(id.clone()));
    let plan = h.preview(&importing, false).await;
    assert_eq!(ops(&plan)["flags"], Op::Import, "same values: adopted as it is");
    h.up_ok(&importing).await;
    let state = h.state().await;
    assert_eq!(state.resources.iter().find(|r| r.urn.name() == "flags").unwrap().id.as_deref(), Some(id.as_str()));
    let (plan, report) = h.up_ok(&importing).await;
    assert!(plan.steps.iter().all(|s| s.op == Op::Same), "{:?}", ops(&plan));
    assert_eq!(report.mutating_calls, 0);
    h.destroy().await;
    assert!(h.get("kubernetes:core/v1:Namespace", &h.ns).await.is_none());
}

#[tokio::test]
async fn lookup_after_an_interrupted_create_adopts_only_berths_objects() {
    let h = Harness::new("lookup").await;
    let settings =
        KubernetesSettings { kubeconfig: Some(kubeconfig().display().to_string()), namespace: Some(h.ns.clone()), ..Default::default() };
    let provider = provider(settings, std::path::Path::new("/")).unwrap();
    let ns_target = h.target("kubernetes:core/v1:Namespace").await;
    h.cluster
        .create(&ns_target, None, "test", &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": h.ns}}))
        .await
        .unwrap();

    let ty = "kubernetes:core/v1:ConfigMap";
    let urn = Urn::new("test", None, ty, "flags").unwrap();
    let ctx = CallContext { urn: &urn, ty, name: "flags", stack: "test", timeout: None };
    let inputs = |name: &str| Value::from_json(json!({"metadata": {"name": name, "namespace": h.ns}, "data": {"k": "v"}}));

    // berth applied it, then the run was killed before state recorded it: adopted.
    let target = h.target(ty).await;
    let mut manifest = inputs("applied-by-berth").to_json_revealed();
    manifest["apiVersion"] = json!("v1");
    manifest["kind"] = json!("ConfigMap");
    h.cluster.apply(&target, Some(&h.ns), "applied-by-berth", &manifest, false, false).await.unwrap();
    let found = provider.lookup(ctx, &inputs("applied-by-berth")).await.unwrap().expect("berth's object is adopted");
    assert_eq!(found.id, format!("{}/applied-by-berth", h.ns));
    assert!(found.outputs.as_object().unwrap().contains_key("uid"));

    // Someone else's object of the same name is not.
    manifest["metadata"]["name"] = json!("made-by-kubectl");
    h.cluster.create(&target, Some(&h.ns), "kubectl-create", &manifest).await.unwrap();
    assert!(provider.lookup(ctx, &inputs("made-by-kubectl")).await.unwrap().is_none());
    assert!(provider.lookup(ctx, &inputs("never-made")).await.unwrap().is_none());
}
