//! `aws:ec2:Vpc` and `aws:ec2:Subnet`.

use aws_sdk_ec2::types::Tag;
use berth_engine::import::ImportRequest;
use berth_engine::{Op, Options, ProgramResult, Stack};
use berth_provider_aws::ec2::{Subnet, Vpc};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vpc_and_subnets_lifecycle() {
    let aws = direct().await;
    let h = Harness::new("");
    let env = unique("net");
    let program = |public: bool, cidr: &'static str| {
        let env = env.clone();
        move |s: &mut Stack| -> ProgramResult {
            let vpc = s.register(
                "vpc",
                Vpc { cidr_block: "10.42.0.0/16".into(), tags: [("env".to_string(), env.clone())].into(), ..Vpc::default() },
                Options::new(),
            )?;
            s.register(
                "a",
                Subnet {
                    vpc_id: vpc.output::<String>("id").into(),
                    cidr_block: cidr.into(),
                    map_public_ip_on_launch: public,
                    ..Subnet::default()
                },
                Options::new(),
            )?;
            s.register(
                "b",
                Subnet {
                    vpc_id: vpc.output::<String>("id").into(),
                    cidr_block: "10.42.2.0/24".into(),
                    availability_zone: Some("us-east-1b".into()),
                    ..Subnet::default()
                },
                Options::new(),
            )?;
            s.export("vpc_id", &vpc.output::<String>("id"));
            Ok(())
        }
    };
    h.up(&program(false, "10.42.1.0/24")).await;
    let state = h.state().await;
    let (vpc_id, vpc_out) = recorded(&state, "vpc");
    let (a_id, a_out) = recorded(&state, "a");
    assert!(vpc_id.starts_with("vpc-") && a_id.starts_with("subnet-"));
    assert_eq!(vpc_out["cidr_block"], "10.42.0.0/16");
    let live = aws.ec2.describe_subnets().subnet_ids(&a_id).send().await.unwrap();
    assert_eq!(live.subnets()[0].vpc_id(), Some(vpc_id.as_str()));
    assert!(!a_out["availability_zone"].as_str().unwrap().is_empty(), "AWS picked a zone");

    // No-op with refresh: the picked zone and berth's own tag are no drift, no call is made.
    h.proxy.clear_calls();
    let plan = h.up_refresh(&program(false, "10.42.1.0/24")).await;
    assert!(plan.steps.iter().all(|s| s.op == Op::Same) && plan.drift.is_empty(), "{}", explain(&plan));
    assert!(h.proxy.mutating_calls().is_empty(), "{:?}", h.proxy.mutating_calls());

    // In place; then a new range replaces.
    let plan = h.up(&program(true, "10.42.1.0/24")).await;
    assert_eq!(ops(&plan)["a"], Op::Update);
    let plan = h.up(&program(true, "10.42.3.0/24")).await;
    assert_eq!(ops(&plan)["a"], Op::Replace);
    assert!(aws.ec2.describe_subnets().subnet_ids(&a_id).send().await.is_err(), "the old subnet is gone");

    // Drift: a tag set by hand shows as exactly that.
    aws.ec2.create_tags().resources(&vpc_id).tags(Tag::builder().key("owner").value("someone").build()).send().await.unwrap();
    let plan = h.preview(&program(true, "10.42.3.0/24"), true).await;
    assert_eq!(drifted(&plan, "vpc"), Some(vec!["tags.owner".to_string()]), "{}", explain(&plan));

    // Import by id.
    let other = Harness::new("");
    let imported = other
        .engine
        .import(&[ImportRequest { ty: "aws:ec2:Vpc".into(), name: "adopted".into(), id: vpc_id.clone(), parent: None, protect: false }])
        .await
        .unwrap();
    assert_eq!(imported[0].inputs.as_object().unwrap()["cidr_block"].as_str(), Some("10.42.0.0/16"));

    // A subnet deleted by hand: refresh drops it from state and the plan creates it again.
    let (b_id, _) = recorded(&h.state().await, "b");
    aws.ec2.delete_subnet().subnet_id(&b_id).send().await.unwrap();
    let plan = h.preview(&program(true, "10.42.3.0/24"), true).await;
    assert_eq!(ops(&plan)["b"], Op::Create, "{}", explain(&plan));

    h.destroy().await;
    assert!(aws.ec2.describe_vpcs().vpc_ids(&vpc_id).send().await.is_err(), "destroy removed the VPC");
    // Gone is a plain "no such resource", not an error reading it.
    let gone = Harness::new("")
        .engine
        .import(&[ImportRequest { ty: "aws:ec2:Vpc".into(), name: "gone".into(), id: vpc_id.clone(), parent: None, protect: false }])
        .await
        .unwrap_err()
        .to_string();
    assert!(gone.contains("exists") && !gone.contains("failed"), "{gone}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_network_input_makes_no_call() {
    let h = Harness::new("");
    let program = |s: &mut Stack| -> ProgramResult {
        let vpc = s.register("vpc", Vpc { cidr_block: "10.0.0.0/8".into(), ..Vpc::default() }, Options::new())?;
        s.register(
            "a",
            Subnet { vpc_id: vpc.output::<String>("id").into(), cidr_block: "10.0.1.0/33".into(), ..Subnet::default() },
            Options::new(),
        )?;
        Ok(())
    };
    // `up`, not preview: a preview of new resources calls nothing even for good input.
    let err = h.try_up(&program, false).await.map(|(plan, _)| explain(&plan)).unwrap_err();
    assert!(err.contains("between /16 and /28") && err.contains("cidr_block"), "{err}");
    assert!(err.contains("10.0.1.0/33"), "{err}");
    assert!(err.contains("vpc (aws:ec2:Vpc)") && err.contains("a (aws:ec2:Subnet)"), "both resources named: {err}");
    assert!(h.proxy.calls().is_empty(), "{:?}", h.proxy.calls());
    assert!(h.state().await.resources.is_empty());
}
