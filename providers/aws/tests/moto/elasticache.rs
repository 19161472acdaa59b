//! ElastiCache: subnet groups, parameter groups and Valkey replication groups.

use aws_sdk_elasticache::types::Tag;
use berth_engine::{Input, Op, Options, ProgramResult, Secret, Stack};
use berth_provider_aws::elasticache::{ParameterGroup, ReplicationGroup, SubnetGroup};

use crate::support::*;

pub fn valkey(id: &str) -> ReplicationGroup {
    serde_json::from_value(serde_json::json!({
        "replication_group_id": id,
        "description": "edxapp cache",
        "engine": "valkey",
        "engine_version": "7.2",
        "node_type": "cache.t3.micro",
        "num_cache_clusters": 2,
        "automatic_failover_enabled": true,
        "auth_token": "a-valkey-token-of-32-characters!",
        "tags": {"env": "ci"}
    }))
    .expect("replication group inputs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_with_its_groups() {
    let aws = direct().await;
    let net = network(&aws).await;
    let h = Harness::new("");
    let (rg_id, pg_name, sn_name) = (unique("berth-rg"), unique("berth-cpg"), unique("berth-csn"));
    let program = |group: ReplicationGroup, policy: &'static str, description: &'static str| {
        let (subnets, pg_name, sn_name) = (net.subnets.clone(), pg_name.clone(), sn_name.clone());
        move |s: &mut Stack| -> ProgramResult {
            let subnets = s.register(
                "subnets",
                SubnetGroup {
                    name: Some(sn_name.clone()),
                    description: description.into(),
                    subnet_ids: subnets.iter().map(|x| Input::Value(x.clone())).collect(),
                    tags: Default::default(),
                },
                Options::new(),
            )?;
            let params = s.register(
                "params",
                ParameterGroup {
                    name: Some(pg_name.clone()),
                    family: "valkey7".into(),
                    description: "edxapp".into(),
                    parameters: [("maxmemory-policy".to_string(), policy.to_string())].into(),
                    tags: [("env".to_string(), "ci".to_string())].into(),
                },
                Options::new(),
            )?;
            s.register(
                "cache",
                ReplicationGroup {
                    parameter_group_name: Some(params.output::<String>("name").into()),
                    subnet_group_name: Some(subnets.output::<String>("name").into()),
                    ..group.clone()
                },
                Options::new(),
            )?;
            Ok(())
        }
    };
    let v1 = valkey(&rg_id);
    let plan = h.up(&program(v1.clone(), "allkeys-lru", "edxapp")).await;
    assert!(plan.steps.iter().all(|s| s.op == Op::Create), "{:?}", ops(&plan));
    let live = aws.elasticache.describe_replication_groups().replication_group_id(&rg_id).send().await.unwrap();
    let live = &live.replication_groups()[0];
    assert_eq!(
        (live.transit_encryption_enabled(), live.at_rest_encryption_enabled(), live.auth_token_enabled()),
        (Some(true), Some(true), Some(true))
    );
    let params = aws.elasticache.describe_cache_parameters().cache_parameter_group_name(&pg_name).source("user").send().await.unwrap();
    assert_eq!(params.parameters()[0].parameter_value(), Some("allkeys-lru"));
    let (_, outputs) = recorded(&h.state().await, "cache");
    assert!(outputs["primary_endpoint_address"].as_str().unwrap().contains(&rg_id), "{outputs}");

    // No-op.
    h.proxy.clear_calls();
    let plan = h.up_refresh(&program(v1.clone(), "allkeys-lru", "edxapp")).await;
    assert!(plan.steps.iter().all(|s| s.op == Op::Same), "{}", explain(&plan));
    assert!(plan.drift.is_empty(), "{}", explain(&plan));
    assert!(h.proxy.mutating_calls().is_empty(), "{:?}", h.proxy.mutating_calls());

    // Update in place: node type, description, the token; a parameter; the subnet group's description.
    let v2 = ReplicationGroup {
        node_type: "cache.t3.small".into(),
        description: "edxapp cache (QA)".into(),
        auth_token: Some(Input::Value(Secret::new("another-valkey-token-32-chars!!!".into()))),
        ..v1.clone()
    };
    let plan = h.up(&program(v2.clone(), "volatile-lru", "edxapp QA")).await;
    assert_eq!(ops(&plan)["cache"], Op::Update);
    assert_eq!(changed(&plan, "cache"), vec!["auth_token", "description", "node_type"]);
    assert_eq!((ops(&plan)["params"], ops(&plan)["subnets"]), (Op::Update, Op::Update));
    let live = aws.elasticache.describe_replication_groups().replication_group_id(&rg_id).send().await.unwrap();
    assert_eq!(live.replication_groups()[0].cache_node_type(), Some("cache.t3.small"));
    let params = aws.elasticache.describe_cache_parameters().cache_parameter_group_name(&pg_name).source("user").send().await.unwrap();
    assert_eq!(params.parameters()[0].parameter_value(), Some("volatile-lru"));

    // Drift: a tag on the parameter group and the node type, changed by hand.
    let pg_arn = recorded(&h.state().await, "params").1["arn"].as_str().unwrap().to_string();
    aws.elasticache
        .add_tags_to_resource()
        .resource_name(&pg_arn)
        .tags(Tag::builder().key("env").value("hand").build())
        .send()
        .await
        .unwrap();
    aws.elasticache
        .modify_replication_group()
        .replication_group_id(&rg_id)
        .cache_node_type("cache.t3.medium")
        .apply_immediately(true)
        .send()
        .await
        .unwrap();
    let plan = h.preview(&program(v2.clone(), "volatile-lru", "edxapp QA"), true).await;
    assert_eq!(drifted(&plan, "params"), Some(vec!["tags.env".to_string()]));
    assert_eq!(drifted(&plan, "cache"), Some(vec!["node_type".to_string()]));
    h.up_refresh(&program(v2.clone(), "volatile-lru", "edxapp QA")).await;
    let live = aws.elasticache.describe_replication_groups().replication_group_id(&rg_id).send().await.unwrap();
    assert_eq!(live.replication_groups()[0].cache_node_type(), Some("cache.t3.small"));

    // Import by id: everything reads back (through the group's member clusters, as on AWS) but
    // the AUTH token, which is never revealed: the configured one is recorded, not applied.
    let fresh = Harness::new("");
    let imports = {
        let (subnets, pg_name, sn_name, rg_id, v2) = (net.subnets.clone(), pg_name.clone(), sn_name.clone(), rg_id.clone(), v2.clone());
        move |s: &mut Stack| -> ProgramResult {
            let mut subnet_ids: Vec<Input<String>> = subnets.iter().map(|x| Input::Value(x.clone())).collect();
            subnet_ids.sort_by(|a, b| a.known().cmp(&b.known()));
            s.register(
                "subnets",
                SubnetGroup { name: Some(sn_name.clone()), description: "edxapp QA".into(), subnet_ids, tags: Default::default() },
                Options::new().import(&sn_name),
            )?;
            s.register(
                "params",
                ParameterGroup {
                    name: Some(pg_name.clone()),
                    family: "valkey7".into(),
                    description: "edxapp".into(),
                    parameters: [("maxmemory-policy".to_string(), "volatile-lru".to_string())].into(),
                    tags: [("env".to_string(), "ci".to_string())].into(),
                },
                Options::new().import(&pg_name),
            )?;
            s.register(
                "cache",
                ReplicationGroup {
                    parameter_group_name: Some(pg_name.clone().into()),
                    subnet_group_name: Some(sn_name.clone().into()),
                    ..v2.clone()
                },
                Options::new().import(&rg_id),
            )?;
            Ok(())
        }
    };
    let plan = fresh.preview(&imports, false).await;
    assert!(plan.steps.iter().all(|s| s.op == Op::Import), "{:?}", ops(&plan));
    assert!(
        changed(&plan, "subnets").is_empty() && changed(&plan, "params").is_empty(),
        "{:?} {:?}",
        changed(&plan, "subnets"),
        changed(&plan, "params")
    );
    assert_eq!(changed(&plan, "cache"), Vec::<String>::new(), "{}", explain(&plan));
    // `up` records the three without changing anything in AWS; then the state holds them: a
    // preview (and a refreshing one) has nothing to do.
    fresh.proxy.clear_calls();
    fresh.up(&imports).await;
    assert!(fresh.proxy.mutating_calls().is_empty(), "{:?}", fresh.proxy.mutating_calls());
    let state = fresh.state().await;
    let ids: Vec<String> = ["subnets", "params", "cache"].iter().map(|n| recorded(&state, n).0).collect();
    assert_eq!(ids, vec![sn_name.clone(), pg_name.clone(), rg_id.clone()]);
    for refresh in [false, true] {
        let plan = fresh.preview(&imports, refresh).await;
        assert!(plan.steps.iter().all(|s| s.op == Op::Same) && plan.drift.is_empty(), "refresh {refresh}: {}", explain(&plan));
    }

    // Replace: two more nodes cannot be added in place here; the group keeps its id, so the old
    // one is deleted first.
    let plan = h.up(&program(ReplicationGroup { num_cache_clusters: 3, ..v2.clone() }, "volatile-lru", "edxapp QA")).await;
    assert_eq!(ops(&plan)["cache"], Op::Replace);
    assert!(plan.steps.iter().find(|s| s.name() == "cache").unwrap().delete_before_replace);

    h.destroy().await;
    assert!(aws.elasticache.describe_replication_groups().replication_group_id(&rg_id).send().await.is_err(), "group deleted");
    assert!(aws.elasticache.describe_cache_subnet_groups().cache_subnet_group_name(&sn_name).send().await.is_err(), "subnet group deleted");
    assert!(
        aws.elasticache.describe_cache_parameter_groups().cache_parameter_group_name(&pg_name).send().await.is_err(),
        "parameter group deleted"
    );
    net.remove(&aws).await;
}
