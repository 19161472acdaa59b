//! IAM: roles, managed policies (versions), attachments and OpenID Connect providers.

use aws_sdk_iam::types::Tag;
use berth_engine::{Op, Options, ProgramResult, Stack};
use berth_provider_aws::iam::{OidcProvider, Policy, Role, RolePolicyAttachment};

use crate::support::*;

const ISSUER: &str = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";

fn trust(service_account: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Federated":"arn:aws:iam::123456789012:oidc-provider/{ISSUER}"}},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{{"StringEquals":{{"{ISSUER}:aud":"sts.amazonaws.com","{ISSUER}:sub":"system:serviceaccount:mitx-openedx:{service_account}"}}}}}}]}}"#
    )
}

fn role(name: &str, service_account: &str) -> Role {
    Role {
        name: Some(name.into()),
        path: "/ol-infrastructure/eks/test/".into(),
        assume_role_policy: trust(service_account).into(),
        description: Some("edxapp trust role".into()),
        max_session_duration: 3600,
        tags: [("env".to_string(), "ci".to_string())].into(),
    }
}

fn s3_policy(actions: &[&str]) -> String {
    let list: Vec<String> = actions.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":[{}],"Resource":"arn:aws:s3:::ci-edxapp-storage/*"}}]}}"#,
        list.join(",")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_lifecycle() {
    let aws = direct().await;
    let h = Harness::new("");
    let name = unique("berth-role");
    let v1 = role(&name, "edxapp");

    let plan = h.up(&one("trust", v1.clone(), Options::new())).await;
    assert_eq!(ops(&plan)["trust"], Op::Create);
    let live = aws.iam.get_role().role_name(&name).send().await.expect("GetRole");
    let live = live.role().expect("role");
    assert_eq!(live.path(), "/ol-infrastructure/eks/test/");
    assert!(
        berth_provider_aws::policy::equivalent(live.assume_role_policy_document().unwrap_or_default(), &trust("edxapp")),
        "IAM returns it URL-encoded"
    );

    // IAM hands the document back URL-encoded: no permanent diff, no mutating call.
    h.proxy.clear_calls();
    let plan = h.up_refresh(&one("trust", v1.clone(), Options::new())).await;
    assert_eq!(ops(&plan)["trust"], Op::Same);
    assert!(plan.drift.is_empty(), "{}", explain(&plan));
    assert!(h.proxy.mutating_calls().is_empty(), "{:?}", h.proxy.mutating_calls());

    // Update in place: the trusted service account, the session length, a tag.
    let v2 = Role {
        assume_role_policy: trust("edxapp-cms").into(),
        max_session_duration: 7200,
        tags: [("env".to_string(), "qa".to_string())].into(),
        ..v1.clone()
    };
    let plan = h.up(&one("trust", v2.clone(), Options::new())).await;
    assert_eq!(ops(&plan)["trust"], Op::Update);
    assert_eq!(changed(&plan, "trust"), vec!["assume_role_policy", "max_session_duration", "tags.env"]);
    let live = aws.iam.get_role().role_name(&name).send().await.unwrap();
    assert_eq!(live.role().unwrap().max_session_duration(), Some(7200));
    assert!(berth_provider_aws::policy::equivalent(live.role().unwrap().assume_role_policy_document().unwrap(), &trust("edxapp-cms")));

    // Drift: a tag changed by hand.
    aws.iam.tag_role().role_name(&name).tags(Tag::builder().key("env").value("hand").build().unwrap()).send().await.unwrap();
    let plan = h.preview(&one("trust", v2.clone(), Options::new()), true).await;
    assert_eq!(drifted(&plan, "trust"), Some(vec!["tags.env".to_string()]));

    // Import by name.
    let fresh = Harness::new("");
    let import = one("trust", Role { tags: [("env".to_string(), "hand".to_string())].into(), ..v2.clone() }, Options::new().import(&name));
    let plan = fresh.preview(&import, false).await;
    assert_eq!(ops(&plan)["trust"], Op::Import);
    assert!(changed(&plan, "trust").is_empty(), "{:?}", changed(&plan, "trust"));
    // `up` records it without changing anything in AWS; then the state holds it: a preview (and
    // a refreshing one) has nothing to do.
    fresh.proxy.clear_calls();
    fresh.up(&import).await;
    assert!(fresh.proxy.mutating_calls().is_empty(), "{:?}", fresh.proxy.mutating_calls());
    let (imported_id, imported_out) = recorded(&fresh.state().await, "trust");
    assert_eq!(imported_id, name);
    assert!(
        imported_out["arn"].as_str().is_some_and(|a| a.ends_with(&format!(":role/ol-infrastructure/eks/test/{name}"))),
        "{imported_out}"
    );
    for refresh in [false, true] {
        let plan = fresh.preview(&import, refresh).await;
        assert!(plan.steps.iter().all(|s| s.op == Op::Same) && plan.drift.is_empty(), "refresh {refresh}: {}", explain(&plan));
    }

    // Replace: a new path needs a new role; same name, so the old one goes first.
    let v3 = Role { path: "/ol-infrastructure/eks/other/".into(), ..v2.clone() };
    let plan = h.up(&one("trust", v3, Options::new())).await;
    assert_eq!(ops(&plan)["trust"], Op::Replace);
    assert!(plan.steps.iter().find(|s| s.name() == "trust").unwrap().delete_before_replace);
    assert_eq!(aws.iam.get_role().role_name(&name).send().await.unwrap().role().unwrap().path(), "/ol-infrastructure/eks/other/");

    h.destroy().await;
    assert!(aws.iam.get_role().role_name(&name).send().await.is_err(), "role deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_versions_are_managed() {
    let aws = direct().await;
    let h = Harness::new("");
    let name = unique("berth-pol");
    let policy = |actions: &[&str]| Policy {
        name: Some(name.clone()),
        path: "/ol-applications/edxapp/".into(),
        description: Some("edxapp S3 access".into()),
        policy: s3_policy(actions).into(),
        tags: Default::default(),
    };
    h.up(&one("pol", policy(&["s3:GetObject"]), Options::new())).await;
    let (arn, outputs) = recorded(&h.state().await, "pol");
    assert_eq!(outputs["default_version_id"], "v1");

    // Six updates: each a new default version; IAM keeps five, berth prunes the oldest.
    let steps: [&[&str]; 6] = [
        &["s3:PutObject"],
        &["s3:DeleteObject"],
        &["s3:ListBucket"],
        &["s3:GetObjectAcl"],
        &["s3:PutObjectAcl"],
        &["s3:GetObject", "s3:PutObject"],
    ];
    for (i, actions) in steps.iter().enumerate() {
        let plan = h.up(&one("pol", policy(actions), Options::new())).await;
        assert_eq!(ops(&plan)["pol"], Op::Update, "update {i}");
        assert_eq!(changed(&plan, "pol"), vec!["policy"]);
    }
    let versions = aws.iam.list_policy_versions().policy_arn(&arn).send().await.unwrap();
    assert_eq!(versions.versions().len(), 5, "{:?}", versions.versions());
    let default = versions.versions().iter().find(|v| v.is_default_version()).unwrap().version_id().unwrap().to_string();
    assert_eq!(default, "v7");
    assert!(!versions.versions().iter().any(|v| v.version_id() == Some("v1") || v.version_id() == Some("v2")), "the oldest were pruned");
    assert_eq!(recorded(&h.state().await, "pol").1["default_version_id"], "v7");

    // The same document with actions in another order is no change.
    let plan = h.preview(&one("pol", policy(&["s3:PutObject", "s3:GetObject"]), Options::new()), true).await;
    assert_eq!(ops(&plan)["pol"], Op::Same);
    assert!(plan.drift.is_empty(), "{}", explain(&plan));

    // Drift: a new default version made by hand (after making room) shows as a policy change.
    aws.iam.delete_policy_version().policy_arn(&arn).version_id("v3").send().await.unwrap();
    aws.iam
        .create_policy_version()
        .policy_arn(&arn)
        .policy_document(s3_policy(&["s3:*"]))
        .set_as_default(true)
        .send()
        .await
        .unwrap_or_else(|_| panic!("create version"));
    let plan = h.preview(&one("pol", policy(&["s3:GetObject", "s3:PutObject"]), Options::new()), true).await;
    assert_eq!(drifted(&plan, "pol"), Some(vec!["policy".to_string()]));

    // Import by ARN.
    let fresh = Harness::new("");
    let plan = fresh.preview(&one("pol", policy(&["s3:*"]), Options::new().import(&arn)), false).await;
    assert_eq!(ops(&plan)["pol"], Op::Import);
    assert!(changed(&plan, "pol").is_empty(), "{:?}", changed(&plan, "pol"));

    // Replace: a new description cannot be set in place.
    let plan = h.up(&one("pol", Policy { description: Some("changed".into()), ..policy(&["s3:GetObject"]) }, Options::new())).await;
    assert_eq!(ops(&plan)["pol"], Op::Replace);
    let (new_arn, _) = recorded(&h.state().await, "pol");
    let got = aws.iam.get_policy().policy_arn(&new_arn).send().await.unwrap();
    assert_eq!(got.policy().unwrap().description(), Some("changed"));

    h.destroy().await;
    assert!(aws.iam.get_policy().policy_arn(&new_arn).send().await.is_err(), "policy deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_provider_role_and_attachment() {
    let aws = direct().await;
    let h = Harness::new("");
    let suffix = unique("x");
    let url = format!("https://oidc.eks.us-east-1.amazonaws.com/id/{}", suffix.trim_start_matches("x-").to_uppercase());
    let (role_name, policy_name) = (unique("berth-irsa"), unique("berth-irsa-pol"));
    // `attach`: which policy the role gets (0: none).
    let program = |clients: Vec<&'static str>, attach: u8| {
        let (url, role_name, policy_name) = (url.clone(), role_name.clone(), policy_name.clone());
        move |s: &mut Stack| -> ProgramResult {
            let oidc = s.register(
                "oidc",
                OidcProvider {
                    url: url.clone().into(),
                    client_id_list: clients.iter().map(|c| c.to_string()).collect(),
                    thumbprint_list: vec!["9e99a48a9960b14926bb7f3b02e22da2b0ab7280".into()],
                    tags: Default::default(),
                },
                Options::new(),
            )?;
            let trust = oidc.output::<String>("arn").map(|arn: String| {
                format!(r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Federated":"{arn}"}},"Action":"sts:AssumeRoleWithWebIdentity"}}]}}"#)
            });
            let role = s.register(
                "role",
                Role { name: Some(role_name.clone()), assume_role_policy: trust.into(), ..role(&role_name, "x") },
                Options::new(),
            )?;
            let policy = s.register(
                "policy",
                Policy {
                    name: Some(policy_name.clone()),
                    path: "/".into(),
                    description: None,
                    policy: s3_policy(&["s3:GetObject"]).into(),
                    tags: Default::default(),
                },
                Options::new(),
            )?;
            let other = s.register(
                "policy2",
                Policy {
                    name: Some(format!("{policy_name}-2")),
                    path: "/".into(),
                    description: None,
                    policy: s3_policy(&["s3:PutObject"]).into(),
                    tags: Default::default(),
                },
                Options::new(),
            )?;
            if attach > 0 {
                let arn = if attach == 1 { policy.output::<String>("arn") } else { other.output::<String>("arn") };
                s.register(
                    "attach",
                    RolePolicyAttachment { role: role.output::<String>("name").into(), policy_arn: arn.into() },
                    Options::new(),
                )?;
            }
            Ok(())
        }
    };
    let plan = h.up(&program(vec!["sts.amazonaws.com"], 1)).await;
    assert!(plan.steps.iter().all(|s| s.op == Op::Create), "{:?}", ops(&plan));
    let state = h.state().await;
    let (oidc_arn, _) = recorded(&state, "oidc");
    let (attach_id, _) = recorded(&state, "attach");
    let (policy_arn, _) = recorded(&state, "policy");
    assert_eq!(attach_id, format!("{role_name}/{policy_arn}"));
    let attached = aws.iam.list_attached_role_policies().role_name(&role_name).send().await.unwrap();
    assert_eq!(attached.attached_policies().len(), 1);
    let got = aws.iam.get_open_id_connect_provider().open_id_connect_provider_arn(&oidc_arn).send().await.unwrap();
    assert_eq!(got.client_id_list(), ["sts.amazonaws.com"]);

    // No-op.
    h.proxy.clear_calls();
    assert!(h.up(&program(vec!["sts.amazonaws.com"], 1)).await.steps.iter().all(|s| s.op == Op::Same));
    assert!(h.proxy.mutating_calls().is_empty(), "{:?}", h.proxy.mutating_calls());

    // Update the OIDC provider's audiences in place.
    let plan = h.up(&program(vec!["sts.amazonaws.com", "vault"], 1)).await;
    assert_eq!(ops(&plan)["oidc"], Op::Update);
    let got = aws.iam.get_open_id_connect_provider().open_id_connect_provider_arn(&oidc_arn).send().await.unwrap();
    assert_eq!(got.client_id_list().len(), 2);

    // Drift: the attachment removed by hand; refresh sees it gone, up puts it back.
    aws.iam.detach_role_policy().role_name(&role_name).policy_arn(&policy_arn).send().await.unwrap();
    let plan = h.preview(&program(vec!["sts.amazonaws.com", "vault"], 1), true).await;
    assert_eq!(drifted(&plan, "attach"), Some(vec!["(gone)".to_string()]));
    assert_eq!(ops(&plan)["attach"], Op::Create);
    h.up_refresh(&program(vec!["sts.amazonaws.com", "vault"], 1)).await;
    assert_eq!(aws.iam.list_attached_role_policies().role_name(&role_name).send().await.unwrap().attached_policies().len(), 1);

    // Import the attachment and the OIDC provider by id into a fresh stack.
    let fresh = Harness::new("");
    let imports = {
        let (role_name, policy_arn, url) = (role_name.clone(), policy_arn.clone(), url.clone());
        let (attach_id, oidc_arn) = (attach_id.clone(), oidc_arn.clone());
        move |s: &mut Stack| -> ProgramResult {
            s.register(
                "attach",
                RolePolicyAttachment { role: role_name.clone().into(), policy_arn: policy_arn.clone().into() },
                Options::new().import(&attach_id),
            )?;
            s.register(
                "oidc",
                OidcProvider {
                    url: url.clone().into(),
                    client_id_list: vec!["vault".into(), "sts.amazonaws.com".into()],
                    thumbprint_list: vec!["9E99A48A9960B14926BB7F3B02E22DA2B0AB7280".into()],
                    tags: Default::default(),
                },
                Options::new().import(&oidc_arn),
            )?;
            Ok(())
        }
    };
    let plan = fresh.preview(&imports, false).await;
    assert_eq!((ops(&plan)["attach"], ops(&plan)["oidc"]), (Op::Import, Op::Import));
    assert!(
        changed(&plan, "attach").is_empty() && changed(&plan, "oidc").is_empty(),
        "{:?}",
        plan.steps.iter().map(|s| &s.diffs).collect::<Vec<_>>()
    );

    // Replace the attachment: the role gets the other policy.
    let plan = h.up(&program(vec!["sts.amazonaws.com", "vault"], 2)).await;
    assert_eq!(ops(&plan)["attach"], Op::Replace);
    let attached = aws.iam.list_attached_role_policies().role_name(&role_name).send().await.unwrap();
    let names: Vec<&str> = attached.attached_policies().iter().filter_map(|p| p.policy_name()).collect();
    assert_eq!(names, vec![format!("{policy_name}-2").as_str()]);
    // Delete it: the program no longer declares it.
    let plan = h.up(&program(vec!["sts.amazonaws.com", "vault"], 0)).await;
    assert_eq!(ops(&plan)["attach"], Op::Delete);
    assert!(aws.iam.list_attached_role_policies().role_name(&role_name).send().await.unwrap().attached_policies().is_empty());
    h.destroy().await;
    assert!(aws.iam.get_open_id_connect_provider().open_id_connect_provider_arn(&oidc_arn).send().await.is_err());
    assert!(aws.iam.get_role().role_name(&role_name).send().await.is_err());
}
