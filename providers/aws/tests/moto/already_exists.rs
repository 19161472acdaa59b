//! A resource the program declares already exists outside the stack (made by hand): `up` fails,
//! naming the exact `berth stack import` command with the resource's real id — a security group's
//! `sg-…`, a policy's or OIDC provider's ARN with the account in it, never a description or a
//! placeholder — and importing with that id adopts it: the next preview has nothing to do.

use berth_engine::apply::StepStatus;
use berth_engine::import::ImportRequest;
use berth_engine::{Op, Options, Program, Resource};
use berth_provider_aws::ec2::SecurityGroup;
use berth_provider_aws::iam::{OidcProvider, Policy};

use crate::support::*;

/// `up` of `program`, whose resource `name` (of type `R`) exists already as `id`: the step fails
/// with the import command for `id`; importing `id` (as that command does) makes the next
/// preview, plain and refreshing, a no-op. Returns the harness, its state holding the resource.
async fn taken_then_imported<R: Resource>(program: &dyn Program, name: &str, id: &str) -> Harness {
    let h = Harness::new("");
    let (plan, report) = h.try_up(program, false).await.unwrap_or_else(|e| panic!("the plan itself succeeds: {e}"));
    assert_eq!(ops(&plan)[name], Op::Create, "{}", explain(&plan));
    let report = report.expect("a create to apply");
    let outcome = report.outcomes.iter().find(|o| o.urn.name() == name).expect("an outcome for the resource");
    let StepStatus::Failed(message) = &outcome.status else { panic!("the create must fail: {:?}", outcome.status) };
    let command = format!("berth stack import {} {} {name} '{id}'", h.engine.stack, R::TYPE);
    assert!(message.contains(&command), "`{command}` missing from: {message}");
    assert!(message.contains("already exists"), "{message}");
    assert!(h.state().await.resources.is_empty(), "nothing recorded");

    let request = ImportRequest { ty: R::TYPE.into(), name: name.into(), id: id.into(), parent: None, protect: false };
    let imported = h.engine.import(&[request]).await.unwrap_or_else(|e| panic!("import of {id}: {e}"));
    assert_eq!(imported.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), vec![id]);
    assert_eq!(recorded(&h.state().await, name).0, id);
    h.proxy.clear_calls();
    for refresh in [false, true] {
        let plan = h.preview(program, refresh).await;
        assert!(plan.steps.iter().all(|s| s.op == Op::Same) && plan.drift.is_empty(), "refresh {refresh}: {}", explain(&plan));
    }
    assert!(h.proxy.mutating_calls().is_empty(), "{:?}", h.proxy.mutating_calls());
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_group() {
    let aws = direct().await;
    let net = network(&aws).await;
    let name = unique("berth-taken");
    let made = aws.ec2.create_security_group().group_name(&name).description("made by hand").vpc_id(&net.vpc).send().await.unwrap();
    let id = made.group_id().expect("group id").to_string();
    let program = one(
        "sg",
        SecurityGroup {
            name: Some(name.clone()),
            description: "made by hand".into(),
            vpc_id: net.vpc.clone().into(),
            ..SecurityGroup::default()
        },
        Options::new(),
    );
    let h = taken_then_imported::<SecurityGroup>(&program, "sg", &id).await;
    h.destroy().await;
    assert!(aws.ec2.describe_security_groups().group_ids(&id).send().await.is_err(), "deleted through the stack");
    net.remove(&aws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy() {
    let aws = direct().await;
    let name = unique("berth-taken");
    let document = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}]}"#;
    let made = aws.iam.create_policy().policy_name(&name).path("/berth-test/").policy_document(document).send().await.unwrap();
    let arn = made.policy().and_then(|p| p.arn()).expect("policy ARN").to_string();
    assert!(!arn.contains('<'), "{arn}");
    let program = one(
        "pol",
        Policy {
            name: Some(name.clone()),
            path: "/berth-test/".into(),
            description: None,
            policy: document.into(),
            tags: Default::default(),
        },
        Options::new(),
    );
    let h = taken_then_imported::<Policy>(&program, "pol", &arn).await;
    h.destroy().await;
    assert!(aws.iam.get_policy().policy_arn(&arn).send().await.is_err(), "deleted through the stack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_provider() {
    let aws = direct().await;
    let url = format!("https://oidc.example.com/{}", unique("taken"));
    let thumbprint = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280";
    let made = aws
        .iam
        .create_open_id_connect_provider()
        .url(&url)
        .client_id_list("sts.amazonaws.com")
        .thumbprint_list(thumbprint)
        .send()
        .await
        .unwrap();
    let arn = made.open_id_connect_provider_arn().expect("provider ARN").to_string();
    let program = one(
        "oidc",
        OidcProvider {
            url: url.clone().into(),
            client_id_list: vec!["sts.amazonaws.com".into()],
            thumbprint_list: vec![thumbprint.into()],
            tags: Default::default(),
        },
        Options::new(),
    );
    let h = taken_then_imported::<OidcProvider>(&program, "oidc", &arn).await;
    h.destroy().await;
    assert!(aws.iam.get_open_id_connect_provider().open_id_connect_provider_arn(&arn).send().await.is_err(), "deleted through the stack");
}
