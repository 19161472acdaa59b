//! CustomResourceDefinitions and custom resources of their kinds (KEDA, Vault Secrets Operator,
//! Gateway API, cert-manager) in one stack: the CRDs are applied and established first, then the
//! resources are found through discovery; create, no-op, update, delete.
//!
//! This is the only test that applies the CRD fixtures (their names are cluster-wide).

mod common;

use berth_engine::{DynamicHandle, Op, Options, ProgramResult, Stack};
use berth_provider_kubernetes::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use berth_provider_kubernetes::{Namespace, manifests};
use common::{Harness, crd_fixture, ops, rendered};
use serde_json::{Value as Json, json};

const FIXTURES: [&str; 4] = ["keda.yaml", "vault-secrets-operator.yaml", "gateway-api.yaml", "cert-manager.yaml"];

/// One custom resource of each kind Open edX needs; `version` 2 changes one field of each.
fn custom_resources(ns: &str, gateway_class: &str, version: u8) -> Vec<(&'static str, Json)> {
    let v2 = version >= 2;
    vec![
        (
            "keda.sh/v1alpha1",
            json!({"kind": "TriggerAuthentication", "metadata": {"name": "lms-celery-redis"}, "spec": {
                "secretTargetRef": [{"parameter": "password", "name": "redis-creds", "key": if v2 { "auth_token" } else { "password" }}]
            }}),
        ),
        (
            "keda.sh/v1alpha1",
            json!({"kind": "ScaledObject", "metadata": {"name": "lms-celery"}, "spec": {
                "scaleTargetRef": {"name": "lms-celery"}, "pollingInterval": 3, "cooldownPeriod": 10,
                "minReplicaCount": 1, "maxReplicaCount": if v2 { 20 } else { 10 },
                "triggers": [{"type": "redis", "metadata": {"listName": "celery", "listLength": "10", "enableTLS": "true"},
                              "authenticationRef": {"name": "lms-celery-redis"}}]
            }}),
        ),
        (
            "secrets.hashicorp.com/v1beta1",
            json!({"kind": "VaultConnection", "metadata": {"name": "vault"}, "spec": {
                "address": if v2 { "https://vault-qa.example.org" } else { "https://vault.example.org" }
            }}),
        ),
        (
            "secrets.hashicorp.com/v1beta1",
            json!({"kind": "VaultAuth", "metadata": {"name": "edxapp"}, "spec": {
                "vaultConnectionRef": "vault", "method": "kubernetes", "mount": "k8s-qa",
                "kubernetes": {"role": "edxapp", "serviceAccount": "edxapp-vault", "audiences": ["vault"], "tokenExpirationSeconds": if v2 { 1200 } else { 600 }}
            }}),
        ),
        (
            "secrets.hashicorp.com/v1beta1",
            json!({"kind": "VaultStaticSecret", "metadata": {"name": "general-secrets"}, "spec": {
                "vaultAuthRef": "edxapp", "mount": "secret-mitx", "type": "kv-v2", "path": "edxapp",
                "refreshAfter": if v2 { "5m" } else { "1m" }, "destination": {"name": "10-general-secrets", "create": true}
            }}),
        ),
        (
            "secrets.hashicorp.com/v1beta1",
            json!({"kind": "VaultDynamicSecret", "metadata": {"name": "database-credentials"}, "spec": {
                "vaultAuthRef": "edxapp", "mount": "mariadb-mitx", "path": "creds/edxapp",
                "renewalPercent": if v2 { 60 } else { 67 }, "destination": {"name": "00-database-credentials", "create": true}
            }}),
        ),
        (
            "gateway.networking.k8s.io/v1",
            json!({"kind": "GatewayClass", "metadata": {"name": gateway_class}, "spec": {
                "controllerName": "traefik.io/gateway-controller", "description": if v2 { "traefik v3" } else { "traefik" }
            }}),
        ),
        (
            "gateway.networking.k8s.io/v1",
            json!({"kind": "Gateway", "metadata": {"name": "edxapp"}, "spec": {
                "gatewayClassName": gateway_class,
                "listeners": [{"name": "lms-https", "hostname": if v2 { "lms-qa.example.org" } else { "lms.example.org" }, "port": 8443, "protocol": "HTTPS",
                               "tls": {"mode": "Terminate", "certificateRefs": [{"name": "edxapp-tls"}]}}]
            }}),
        ),
        (
            "gateway.networking.k8s.io/v1",
            json!({"kind": "HTTPRoute", "metadata": {"name": "lms"}, "spec": {
                "parentRefs": [{"name": "edxapp", "sectionName": "lms-https"}],
                "hostnames": ["lms.example.org"],
                "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                           "backendRefs": [{"name": "lms", "port": if v2 { 8080 } else { 8000 }}]}]
            }}),
        ),
        (
            "cert-manager.io/v1",
            json!({"kind": "Certificate", "metadata": {"name": "edxapp-tls", "namespace": ns}, "spec": {
                "secretName": "edxapp-tls", "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer"},
                "dnsNames": if v2 { json!(["lms.example.org", "studio.example.org"]) } else { json!(["lms.example.org"]) }
            }}),
        ),
    ]
}

fn program(ns: String, gateway_class: String, version: u8) -> impl Fn(&mut Stack) -> ProgramResult + Send + Sync {
    move |s: &mut Stack| {
        let namespace = s.register(
            "ns",
            Namespace { metadata: ObjectMeta { name: Some(ns.clone()), ..ObjectMeta::default() }.into(), ..Namespace::default() },
            Options::new(),
        )?;
        let mut crds: Vec<(String, DynamicHandle)> = Vec::new();
        for file in FIXTURES {
            for manifest in manifests::from_yaml(&crd_fixture(file))? {
                let group = manifest.pointer("/spec/group").and_then(Json::as_str).unwrap_or_default().to_string();
                let kind = manifest.pointer("/spec/names/kind").and_then(Json::as_str).unwrap_or_default().to_string();
                let handle = manifests::register(s, None, &manifest, Options::new())?;
                crds.push((format!("{group}/{kind}"), handle));
            }
        }
        for (api_version, mut manifest) in custom_resources(&ns, &gateway_class, version) {
            manifest["apiVersion"] = json!(api_version);
            let kind = manifest["kind"].as_str().unwrap_or_default().to_string();
            let group = api_version.split('/').next().unwrap_or_default();
            let mut options = Options::new();
            // Each resource depends on its kind's CRD, and (namespaced ones) on the namespace.
            if let Some((_, crd)) = crds.iter().find(|(k, _)| *k == format!("{group}/{kind}")) {
                options = options.depends_on(crd);
            }
            if kind != "GatewayClass" {
                options = options.depends_on(&namespace);
            }
            manifests::register(
                s,
                Some(&format!("{kind}-{}", manifest.pointer("/metadata/name").and_then(Json::as_str).unwrap_or("x"))),
                &manifest,
                options,
            )?;
        }
        Ok(())
    }
}

#[tokio::test]
async fn crds_and_their_custom_resources_in_one_up() {
    let h = Harness::new("custom-resources").await;
    let gateway_class = common::unique("traefik");
    let v1 = program(h.ns.clone(), gateway_class.clone(), 1);
    let crds_present = h
        .cluster
        .discovery
        .resolve(&h.cluster.client, &h.cluster.server, &berth_provider_kubernetes::kinds::Gvk::new("keda.sh", "v1alpha1", "ScaledObject"))
        .await
        .is_ok();

    let preview = h.preview(&v1, false).await;
    let scaled = preview.steps.iter().find(|s| s.name() == "ScaledObject-lms-celery").unwrap();
    assert_eq!(scaled.op, Op::Create);
    if !crds_present {
        assert!(
            scaled.notes.iter().any(|n| n.contains("does not serve ScaledObject") && n.contains("CustomResourceDefinition")),
            "{:?}",
            scaled.notes
        );
    }

    let (plan, _) = h.up_ok(&v1).await;
    assert_eq!(plan.steps.iter().filter(|s| s.op == Op::Create && s.custom).count(), 1 + 10 + 10);
    let so = h.get("kubernetes:keda.sh/v1alpha1:ScaledObject", "lms-celery").await.unwrap();
    assert_eq!(so["spec"]["maxReplicaCount"], 10);
    let cert = h.get("kubernetes:cert-manager.io/v1:Certificate", "edxapp-tls").await.unwrap();
    assert_eq!(cert["metadata"]["namespace"], h.ns.as_str());
    let state = h.state().await;
    let route = state.resources.iter().find(|r| r.urn.name() == "HTTPRoute-lms").unwrap();
    assert_eq!(route.id.as_deref(), Some(format!("{}/lms", h.ns).as_str()), "custom resources are namespaced through discovery");
    let class = state.resources.iter().find(|r| r.urn.name() == format!("GatewayClass-{gateway_class}")).unwrap();
    assert_eq!(class.id.as_deref(), Some(gateway_class.as_str()), "cluster-scoped through discovery");

    let (plan, report) = h.up_ok(&v1).await;
    assert!(plan.steps.iter().all(|s| s.op == Op::Same), "{:?}\n{}", ops(&plan), rendered(&plan));
    assert_eq!(report.mutating_calls, 0);

    let v2 = program(h.ns.clone(), gateway_class.clone(), 2);
    let (plan, _) = h.up_ok(&v2).await;
    let updated: Vec<String> = plan.steps.iter().filter(|s| s.op == Op::Update).map(|s| s.name().to_string()).collect();
    assert_eq!(updated.len(), 10, "{updated:?}\n{}", rendered(&plan));
    let so = h.get("kubernetes:keda.sh/v1alpha1:ScaledObject", "lms-celery").await.unwrap();
    assert_eq!(so["spec"]["maxReplicaCount"], 20);
    let vds = h.get("kubernetes:secrets.hashicorp.com/v1beta1:VaultDynamicSecret", "database-credentials").await.unwrap();
    assert_eq!(vds["spec"]["renewalPercent"], 60);
    let route = h.get("kubernetes:gateway.networking.k8s.io/v1:HTTPRoute", "lms").await.unwrap();
    assert_eq!(route["spec"]["rules"][0]["backendRefs"][0]["port"], 8080);
    let (plan, _) = h.up_ok(&v2).await;
    assert!(plan.steps.iter().all(|s| s.op == Op::Same), "{:?}", ops(&plan));

    // Destroy removes the resources first, then the CRDs (which the cluster then stops serving).
    h.destroy().await;
    assert!(h.get("kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition", "scaledobjects.keda.sh").await.is_none());
    assert!(h.get("kubernetes:core/v1:Namespace", &h.ns).await.is_none());
}

#[tokio::test]
async fn a_kind_no_crd_serves_is_a_clear_error() {
    // The plan notes it, and the create waits (bounded by the custom timeout) for a CRD that
    // never comes, then names what to do.
    let h = Harness::new("unserved-kind").await;
    let ns = h.ns.clone();
    let program = move |s: &mut Stack| -> ProgramResult {
        s.register(
            "ns",
            Namespace { metadata: ObjectMeta { name: Some(ns.clone()), ..ObjectMeta::default() }.into(), ..Namespace::default() },
            Options::new(),
        )?;
        let manifest = json!({"apiVersion": "example.invalid/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}});
        manifests::register(
            s,
            None,
            &manifest,
            Options::new().timeouts(berth_engine::CustomTimeouts { create: Some(std::time::Duration::from_secs(3)), ..Default::default() }),
        )?;
        Ok(())
    };
    let preview = h.preview(&program, false).await;
    let widget = preview.steps.iter().find(|s| s.name() == "w").unwrap();
    assert!(widget.notes.iter().any(|n| n.contains("does not serve Widget")), "{:?}", widget.notes);
    let (_, report) = h.up(&program, false).await;
    let message = common::failures(&report);
    assert!(message.contains("Widget") && message.contains("CustomResourceDefinition"), "{message}");
    h.destroy().await;
}
