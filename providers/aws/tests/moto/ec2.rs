//! `aws:ec2:SecurityGroup` and its rules.

use aws_sdk_ec2::types::{Filter, IpPermission, IpRange};
use berth_engine::{Op, Options, ProgramResult, Stack};
use berth_provider_aws::ec2::{Rule, SecurityGroup};

use crate::support::*;

async fn rule_count(aws: &berth_provider_aws::Clients, group: &str) -> (usize, usize) {
    let rules =
        aws.ec2.describe_security_group_rules().filters(Filter::builder().name("group-id").values(group).build()).send().await.unwrap();
    let egress = rules.security_group_rules().iter().filter(|r| r.is_egress() == Some(true)).count();
    (rules.security_group_rules().len() - egress, egress)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_group_lifecycle() {
    let aws = direct().await;
    let net = network(&aws).await;
    let h = Harness::new("");
    let (app_name, db_name) = (unique("edxapp"), unique("edxapp-db"));
    let program = |db_rules: Vec<Rule>, db_group_name: String| {
        let (vpc, app_name) = (net.vpc.clone(), app_name.clone());
        move |s: &mut Stack| -> ProgramResult {
            let app = s.register(
                "app",
                SecurityGroup {
                    name: Some(app_name.clone()),
                    description: "edxapp pods".into(),
                    vpc_id: vpc.clone().into(),
                    ingress: vec![Rule::tcp_from_cidr(18040, "10.20.0.0/16")],
                    ..SecurityGroup::default()
                },
                Options::new(),
            )?;
            let mut ingress = vec![Rule::tcp_from_group(3306, app.output::<String>("id"))];
            ingress.extend(db_rules.clone());
            s.register(
                "db",
                SecurityGroup {
                    name: Some(db_group_name.clone()),
                    description: "edxapp database".into(),
                    vpc_id: vpc.clone().into(),
                    ingress,
                    tags: [("env".to_string(), "ci".to_string())].into(),
                    ..SecurityGroup::default()
                },
                Options::new(),
            )?;
            Ok(())
        }
    };
    let pods = vec![Rule { description: Some("pods".into()), ..Rule::tcp_from_cidr(3306, "10.20.1.0/24") }];
    let plan = h.up(&program(pods.clone(), db_name.clone())).await;
    assert_eq!(ops(&plan)["db"], Op::Create);
    let state = h.state().await;
    let (db_id, db_out) = recorded(&state, "db");
    let (app_id, _) = recorded(&state, "app");
    assert_eq!(rule_count(&aws, &db_id).await, (2, 1), "two ingress rules and the default egress");
    assert_eq!(db_out["ingress_rule_ids"].as_array().unwrap().len(), 2);
    assert!(db_out["ingress_rule_ids"][0].as_str().unwrap().starts_with("sgr-"));

    // No-op: no mutating call.
    h.proxy.clear_calls();
    let plan = h.up_refresh(&program(pods.clone(), db_name.clone())).await;
    assert!(plan.steps.iter().all(|s| s.op == Op::Same), "{}", explain(&plan));
    assert!(plan.drift.is_empty(), "{}", explain(&plan));
    assert!(h.proxy.mutating_calls().is_empty(), "{:?}", h.proxy.mutating_calls());

    // Update in place: another pod CIDR.
    let more = vec![pods[0].clone(), Rule::tcp_from_cidr(3306, "10.20.2.0/24")];
    let plan = h.up(&program(more.clone(), db_name.clone())).await;
    assert_eq!(ops(&plan)["db"], Op::Update);
    assert_eq!(changed(&plan, "db"), vec!["ingress[2]"]);
    assert_eq!(rule_count(&aws, &db_id).await, (3, 1));

    // Drift: a rule added by hand shows as exactly one extra ingress rule; up removes it.
    let by_hand = IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(22)
        .to_port(22)
        .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
        .build();
    aws.ec2.authorize_security_group_ingress().group_id(&db_id).ip_permissions(by_hand).send().await.unwrap();
    let plan = h.preview(&program(more.clone(), db_name.clone()), true).await;
    assert_eq!(drifted(&plan, "db"), Some(vec!["ingress[3]".to_string()]));
    assert_eq!(ops(&plan)["db"], Op::Update);
    h.up_refresh(&program(more.clone(), db_name.clone())).await;
    assert_eq!(rule_count(&aws, &db_id).await, (3, 1), "the hand-made rule was revoked");

    // Import by id into a fresh stack.
    let fresh = Harness::new("");
    let import = one(
        "db",
        SecurityGroup {
            name: Some(db_name.clone()),
            description: "edxapp database".into(),
            vpc_id: net.vpc.clone().into(),
            ingress: {
                let mut rules = vec![Rule::tcp_from_group(3306, app_id.clone())];
                rules.extend(more.clone());
                rules
            },
            tags: [("env".to_string(), "ci".to_string())].into(),
            ..SecurityGroup::default()
        },
        Options::new().import(&db_id),
    );
    let plan = fresh.preview(&import, false).await;
    assert_eq!(ops(&plan)["db"], Op::Import);
    assert!(changed(&plan, "db").is_empty(), "{:?}", changed(&plan, "db"));
    // `up` records it without changing anything in AWS; then the state holds it (with its rule
    // ids): a preview (and a refreshing one) has nothing to do.
    fresh.proxy.clear_calls();
    fresh.up(&import).await;
    assert!(fresh.proxy.mutating_calls().is_empty(), "{:?}", fresh.proxy.mutating_calls());
    let (imported_id, imported_out) = recorded(&fresh.state().await, "db");
    assert_eq!(imported_id, db_id);
    assert_eq!(imported_out["ingress_rule_ids"].as_array().map(Vec::len), Some(3), "{imported_out}");
    for refresh in [false, true] {
        let plan = fresh.preview(&import, refresh).await;
        assert!(plan.steps.iter().all(|s| s.op == Op::Same) && plan.drift.is_empty(), "refresh {refresh}: {}", explain(&plan));
    }

    // Replace: a new name is a new group (created first, then the old one deleted).
    let renamed = unique("edxapp-db");
    let plan = h.up(&program(more.clone(), renamed.clone())).await;
    assert_eq!(ops(&plan)["db"], Op::Replace);
    let (new_id, _) = recorded(&h.state().await, "db");
    assert_ne!(new_id, db_id);
    assert!(aws.ec2.describe_security_groups().group_ids(&db_id).send().await.is_err(), "old group deleted");

    // Egress: the default allow-all is replaced by what the program says, and `[]` removes all.
    let h2 = Harness::new("");
    let https_only = SecurityGroup {
        vpc_id: net.vpc.clone().into(),
        egress: Some(vec![Rule::tcp_from_cidr(443, "0.0.0.0/0")]),
        ..SecurityGroup::default()
    };
    h2.up(&one("egress", https_only.clone(), Options::new())).await;
    let (egress_id, outputs) = recorded(&h2.state().await, "egress");
    assert_eq!(rule_count(&aws, &egress_id).await, (0, 1));
    let rules = aws
        .ec2
        .describe_security_group_rules()
        .filters(Filter::builder().name("group-id").values(&egress_id).build())
        .send()
        .await
        .unwrap();
    assert_eq!(rules.security_group_rules()[0].from_port(), Some(443), "the default allow-all was revoked");
    assert_eq!(outputs["egress_rule_ids"][0].as_str(), rules.security_group_rules()[0].security_group_rule_id());
    let plan = h2.up(&one("egress", SecurityGroup { egress: Some(vec![]), ..https_only }, Options::new())).await;
    assert_eq!(changed(&plan, "egress"), vec!["egress[0]"]);
    assert_eq!(rule_count(&aws, &egress_id).await, (0, 0));
    h2.destroy().await;

    h.destroy().await;
    for id in [&new_id, &app_id] {
        assert!(aws.ec2.describe_security_groups().group_ids(id.as_str()).send().await.is_err(), "{id} deleted");
    }
    net.remove(&aws).await;
}
