//! `vault:auth:Backend` (kubernetes) and `vault:kubernetes:AuthRole` against OpenBao: config
//! only, no cluster login.

use berth_engine::{Op, Options, ProgramResult, Secret, Stack};
use berth_provider_vault::{AuthBackend, KubernetesAuthConfig, KubernetesAuthRole, Policy, Ttl};

use crate::support::*;

/// A throwaway self-signed CA (public certificate only), standing in for a cluster's CA.
pub const CLUSTER_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBnTCCAUOgAwIBAgIUAcclY5xjN1SZjnrrGgA/E6FcCAAwCgYIKoZIzj0EAwIw
IzEhMB8GA1UEAwwYYmVydGgtdGVzdC1rdWJlcm5ldGVzLWNhMCAXDTI2MTEyMTEz
NDQ0NloYDzIxMjYxMDI4MTM0NDQ2WjAjMSEwHwYDVQQDDBhiZXJ0aC10ZXN0LWt1
YmVybmV0ZXMtY2EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASHu7PZZcJjcGal
XT+QcwSORz2zosh0uIdrbekZlr0Rd6YvTo5xZ2VLcCkgBC8O+vC2r4xw5G156Nhw
U3FL8Gr4o1MwUTAdBgNVHQ4EFgQUuZG4SvIHvcqSf+kYzdP13GjeGuMwHwYDVR0j
BBgwFoAUuZG4SvIHvcqSf+kYzdP13GjeGuMwDwYDVR0TAQH/BAUwAwEB/zAKBggq
hkjOPQQDAgNIADBFAiBucqLQQQGfA8rrsYaajNF2mAMf3ar0fLOlfTVAqLwi2AIh
AIMqpbF2wVmStPNIgfQ7O9TALHZazmtFQQeBrCuD0riT
-----END CERTIFICATE-----
";

#[derive(Clone)]
struct Params {
    backend: String,
    role: String,
    policy: String,
    host: String,
    namespaces: Vec<String>,
    ttl: Ttl,
    reviewer_jwt: String,
    /// Whether the program has the role (the backend and policy are always there).
    with_role: bool,
}

fn program(p: Params) -> impl Fn(&mut Stack) -> ProgramResult + Send + Sync {
    move |s: &mut Stack| {
        let mut config = KubernetesAuthConfig::new(p.host.as_str());
        config.kubernetes_ca_cert = Some(CLUSTER_CA.to_string().into());
        config.token_reviewer_jwt = Some(Secret::new(p.reviewer_jwt.clone()).into());
        config.disable_local_ca_jwt = true;
        let backend =
            AuthBackend { description: "EKS cluster".into(), kubernetes: Some(config), ..AuthBackend::new(&p.backend, "kubernetes") };
        let backend = s.register("k8s", backend, Options::new())?;
        let policy =
            s.register("policy", Policy::new(&p.policy, "path \"secret/data/edxapp\" { capabilities = [\"read\"] }"), Options::new())?;
        let role = KubernetesAuthRole {
            bound_service_account_names: vec!["edxapp-vault".into()],
            bound_service_account_namespaces: p.namespaces.clone(),
            token_policies: vec![policy.output::<String>("name").into()],
            token_ttl: Some(p.ttl.clone()),
            token_max_ttl: Some(Ttl::days(1)),
            audience: Some("vault".into()),
            ..KubernetesAuthRole::new(backend.output::<String>("path"), &p.role)
        };
        if p.with_role {
            s.register("role", role, Options::new())?;
        }
        Ok(())
    }
}

#[tokio::test]
async fn kubernetes_auth_backend_and_role_lifecycle() {
    let h = Harness::new();
    let mut p = Params {
        backend: unique("k8s"),
        role: "mitx-edxapp".into(),
        policy: unique("edxapp-k8s"),
        host: "https://10.100.0.1:443".into(),
        namespaces: vec!["mitx-openedx".into()],
        ttl: Ttl::from("1h"),
        reviewer_jwt: "eyJhbGciOiJSUzI1NiJ9.reviewer-token-secret.sig".into(),
        with_role: true,
    };
    h.cleanup.auth(&p.backend);
    h.cleanup.policy(&p.policy);

    let plan = h.up(&program(p.clone())).await;
    assert_eq!(changes(&plan), vec!["k8s: create", "policy: create", "role: create"]);
    let config = bao_read(&format!("auth/{}/config", p.backend)).expect("the backend is configured");
    assert_eq!(config["kubernetes_host"], "https://10.100.0.1:443");
    assert_eq!(config["kubernetes_ca_cert"], CLUSTER_CA);
    assert_eq!(config["token_reviewer_jwt_set"], true);
    let role = bao_read(&format!("auth/{}/role/mitx-edxapp", p.backend)).expect("the role exists");
    assert_eq!(role["bound_service_account_names"], serde_json::json!(["edxapp-vault"]));
    assert_eq!(role["bound_service_account_namespaces"], serde_json::json!(["mitx-openedx"]));
    assert_eq!(role["token_policies"], serde_json::json!([p.policy.clone()]));
    assert_eq!((role["token_ttl"].as_u64(), role["token_max_ttl"].as_u64()), (Some(3600), Some(86_400)));
    assert_eq!(role["audience"], "vault");
    let state = h.state().await;
    assert_eq!(outputs(&state, "role")["login_path"], format!("auth/{}/login", p.backend));
    assert!(outputs(&state, "k8s")["accessor"].as_str().is_some_and(|a| a.starts_with("auth_kubernetes_")));
    assert!(h.state_files().iter().all(|(_, text)| !text.contains("reviewer-token-secret")), "the reviewer token is encrypted");

    // No-op.
    let (plan, report) = h.try_up(&program(p.clone()), true).await;
    assert!(changes(&plan).is_empty() && plan.drift.is_empty(), "{:?} {:?}", changes(&plan), drift(&plan));
    assert_eq!(report.mutating_calls, 0);

    // Update in place: the role's namespaces and TTL, the cluster address.
    p.namespaces = vec!["mitx-openedx".into(), "mitx-jobs".into()];
    p.ttl = Ttl::from("30m");
    p.host = "https://10.100.0.2:443".into();
    let plan = h.up(&program(p.clone())).await;
    assert_eq!(changes(&plan), vec!["k8s: update", "role: update"]);
    let role = bao_read(&format!("auth/{}/role/mitx-edxapp", p.backend)).unwrap();
    assert_eq!(role["bound_service_account_namespaces"], serde_json::json!(["mitx-openedx", "mitx-jobs"]));
    assert_eq!(role["token_ttl"].as_u64(), Some(1800));
    assert_eq!(bao_read(&format!("auth/{}/config", p.backend)).unwrap()["kubernetes_host"], "https://10.100.0.2:443");
    assert_eq!(bao_read(&format!("auth/{}/config", p.backend)).unwrap()["token_reviewer_jwt_set"], true, "the reviewer token is kept");

    // Drift: the role widened by hand, the config's host changed by hand.
    bao_ok(&[
        "write",
        &format!("auth/{}/role/mitx-edxapp", p.backend),
        "bound_service_account_names=*",
        "bound_service_account_namespaces=*",
        &format!("token_policies={}", p.policy),
        "token_ttl=1800",
        "token_max_ttl=86400",
        "audience=vault",
    ]);
    bao_ok(&[
        "write",
        &format!("auth/{}/config", p.backend),
        "kubernetes_host=https://evil.example.org",
        &format!("kubernetes_ca_cert={CLUSTER_CA}"),
        "disable_local_ca_jwt=true",
    ]);
    let plan = h.preview(&program(p.clone()), true).await;
    assert_eq!(
        drift(&plan),
        vec![
            "k8s: kubernetes.kubernetes_host",
            "k8s: kubernetes.token_reviewer_jwt",
            "role: bound_service_account_names[0]",
            "role: bound_service_account_namespaces[0]",
            "role: bound_service_account_namespaces[1]",
        ]
    );
    let (_, report) = h.try_up(&program(p.clone()), true).await;
    assert!(report.succeeded(), "{:?}", failures(&report));
    let role = bao_read(&format!("auth/{}/role/mitx-edxapp", p.backend)).unwrap();
    assert_eq!(role["bound_service_account_names"], serde_json::json!(["edxapp-vault"]));
    let config = bao_read(&format!("auth/{}/config", p.backend)).unwrap();
    assert_eq!(
        (config["kubernetes_host"].as_str(), config["token_reviewer_jwt_set"].as_bool()),
        (Some("https://10.100.0.2:443"), Some(true))
    );

    // A new role name replaces the role; a new backend path replaces backend and role.
    p.role = "mitx-edxapp-2".into();
    let plan = h.up(&program(p.clone())).await;
    assert_eq!(ops(&plan)["role"], Op::Replace);
    assert!(bao_read(&format!("auth/{}/role/mitx-edxapp", p.backend)).is_none());
    assert!(bao_read(&format!("auth/{}/role/mitx-edxapp-2", p.backend)).is_some());
    assert_eq!(bao_list(&format!("auth/{}/role", p.backend)), vec!["mitx-edxapp-2"]);

    // The role removed from the program is deleted; its backend (config included) and the
    // policy stay.
    p.with_role = false;
    let plan = h.up(&program(p.clone())).await;
    assert_eq!(changes(&plan), vec!["role: delete"]);
    assert!(bao_read(&format!("auth/{}/role/mitx-edxapp-2", p.backend)).is_none(), "the role is gone");
    assert!(bao_list(&format!("auth/{}/role", p.backend)).is_empty());
    let backend = bao_read(&format!("sys/auth/{}", p.backend)).expect("the backend stays");
    assert_eq!(backend["type"], "kubernetes");
    let config = bao_read(&format!("auth/{}/config", p.backend)).expect("and keeps its config");
    assert_eq!(
        (config["kubernetes_host"].as_str(), config["token_reviewer_jwt_set"].as_bool()),
        (Some("https://10.100.0.2:443"), Some(true))
    );
    assert!(bao_read(&format!("sys/policies/acl/{}", p.policy)).is_some(), "the policy stays");
    assert!(!in_state(&h.state().await, "role"));
    let (plan, report) = h.try_up(&program(p.clone()), true).await;
    assert!(changes(&plan).is_empty() && plan.drift.is_empty(), "{:?} {:?}", changes(&plan), drift(&plan));
    assert_eq!(report.mutating_calls, 0);

    h.destroy().await;
    let auths = bao_ok(&["auth", "list", "-format=json"]);
    assert!(!auths.contains(&p.backend), "{auths}");
    assert!(bao_read(&format!("sys/policies/acl/{}", p.policy)).is_none());
}

#[tokio::test]
async fn kubernetes_mistakes_are_refused_before_any_call() {
    let h = Harness::new();
    let backend = unique("k8s-bad");
    let bad = {
        let backend = backend.clone();
        move |s: &mut Stack| -> ProgramResult {
            let mut config = KubernetesAuthConfig::new("10.0.0.1");
            config.disable_local_ca_jwt = true;
            s.register("k8s", AuthBackend { kubernetes: Some(config), ..AuthBackend::new(&backend, "kubernetes") }, Options::new())?;
            let role = KubernetesAuthRole {
                bound_service_account_names: vec![],
                bound_service_account_namespaces: vec!["ns".into()],
                token_policies: vec!["EdxApp".into()],
                token_ttl: Some(Ttl::days(2)),
                token_max_ttl: Some(Ttl::days(1)),
                ..KubernetesAuthRole::new(backend.as_str(), "r")
            };
            s.register("role", role, Options::new())?;
            Ok(())
        }
    };
    let e = h.preview_err(&bad).await;
    for expected in ["kubernetes_host", "kubernetes_ca_cert", "bound_service_account_names", "`edxapp`", "token_max_ttl"] {
        assert!(e.contains(expected), "missing `{expected}` in: {e}");
    }
    assert!(!bao_ok(&["auth", "list"]).contains(&backend));
}

#[tokio::test]
async fn a_backend_whose_config_vault_refuses_is_not_left_half_made() {
    let h = Harness::new();
    let path = unique("k8s-tainted");
    h.cleanup.auth(&path);
    let program = |ca: Option<&'static str>| {
        let path = path.clone();
        move |s: &mut Stack| -> ProgramResult {
            let mut config = KubernetesAuthConfig::new("https://10.0.0.1:443");
            config.kubernetes_ca_cert = ca.map(|c| c.to_string().into());
            s.register("k8s", AuthBackend { kubernetes: Some(config), ..AuthBackend::new(&path, "kubernetes") }, Options::new())?;
            Ok(())
        }
    };
    // Without a CA, and not running in a pod, Vault refuses the config after the method is
    // enabled: berth undoes the enable, so nothing half-made is left.
    let (_, report) = h.try_up(&program(None), false).await;
    let why = failures(&report).join("\n");
    assert!(why.contains(&format!("auth/{path}/config")) && why.contains("ca.crt"), "Vault's reason and the path: {why}");
    assert!(!bao_ok(&["auth", "list"]).contains(&path), "the half-made backend is gone");
    assert!(h.state().await.resources.iter().all(|r| r.urn.name() != "k8s"));

    // With the CA, the next run creates it.
    let plan = h.up(&program(Some(CLUSTER_CA))).await;
    assert_eq!(ops(&plan)["k8s"], Op::Create);
    assert_eq!(bao_read(&format!("auth/{path}/config")).unwrap()["kubernetes_ca_cert"], CLUSTER_CA);
    h.destroy().await;
}
