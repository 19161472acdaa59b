//! Where the cluster is: kubeconfig, context and namespace from the stack file's
//! `providers.kubernetes` section.

mod common;

use berth_engine::{Options, ProgramResult, Stack};
use berth_provider_kubernetes::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use berth_provider_kubernetes::{ConfigMap, Namespace};
use common::{Harness, kubeconfig, unique};

#[tokio::test]
async fn context_and_its_namespace_come_from_the_stack_file() {
    // A kubeconfig (relative to the project root) whose current context is not the one the
    // stack names; the named context sets the namespace.
    let ns = unique("kube-context");
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(kubeconfig()).unwrap();
    assert!(text.contains("contexts:\n"), "unexpected testbed kubeconfig:\n{text}");
    let text =
        text.replace("contexts:\n", &format!("contexts:\n- name: berth-qa\n  context: {{cluster: local, user: admin, namespace: {ns}}}\n"));
    std::fs::create_dir_all(dir.path().join("project/kube")).unwrap();
    std::fs::write(dir.path().join("project/kube/config"), text).unwrap();
    let yaml = "providers:\n  kubernetes:\n    kubeconfig: kube/config\n    context: berth-qa\n";
    let h = Harness::with_stack_file(ns.clone(), dir, yaml).await;

    let program = {
        let ns = ns.clone();
        move |s: &mut Stack| -> ProgramResult {
            let namespace = s.register(
                "ns",
                Namespace { metadata: ObjectMeta { name: Some(ns.clone()), ..Default::default() }.into(), ..Default::default() },
                Options::new(),
            )?;
            s.register(
                "settings",
                ConfigMap {
                    metadata: ObjectMeta { name: Some("uwsgi-ini".into()), ..Default::default() }.into(),
                    data: [("uwsgi.ini".to_string(), "[uwsgi]\n".into())].into(),
                    ..Default::default()
                },
                Options::new().depends_on(&namespace),
            )?;
            Ok(())
        }
    };
    h.up_ok(&program).await;
    let state = h.state().await;
    let id = state.resources.iter().find(|r| r.urn.name() == "settings").unwrap().id.clone();
    assert_eq!(id, Some(format!("{ns}/uwsgi-ini")), "the context's namespace is the default");
    assert!(h.get("kubernetes:core/v1:ConfigMap", "uwsgi-ini").await.is_some());
    h.destroy().await;

    // A context the kubeconfig does not have is a clear error, not a silent fallback.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("project")).unwrap();
    let yaml = format!("providers:\n  kubernetes:\n    kubeconfig: {}\n    context: no-such-context\n", kubeconfig().display());
    let h = Harness::with_stack_file(unique("missing-context"), dir, &yaml).await;
    let err = h.engine.preview(&program, None, &Default::default()).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("no-such-context"), "{err}");
}
