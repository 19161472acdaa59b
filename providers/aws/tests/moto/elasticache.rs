//! ElastiCache: subnet groups, parameter groups and Valkey replication groups.

use aws_sdk_elasticache::types::{AutomaticFailoverStatus, Tag};
use berth_engine::{Input, Op, Options, ProgramResult, Secret, Stack};
use berth_provider_aws::Clients;
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

/// A group's member clusters, as the SDK reads them; each must exist as a cache cluster of the group.
async fn members(aws: &Clients, id: &str) -> Vec<String> {
    let live = aws.elasticache.describe_replication_groups().replication_group_id(id).send().await.unwrap();
    let members = live.replication_groups()[0].member_clusters().to_vec();
    for member in &members {
        let got = aws.elasticache.describe_cache_clusters().cache_cluster_id(member).send().await.unwrap();
        assert_eq!(got.cache_clusters()[0].replication_group_id(), Some(id), "{member}");
    }
    members
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

    // Node count, in place (as Terraform does: IncreaseReplicaCount / DecreaseReplicaCount, never
    // a replacement, which would empty the cache): the group keeps its id, nothing is deleted or
    // created, and its member clusters follow.
    let arn = recorded(&h.state().await, "cache").1["arn"].as_str().unwrap().to_string();
    for (nodes, call) in [(3, "IncreaseReplicaCount"), (2, "DecreaseReplicaCount")] {
        let v = ReplicationGroup { num_cache_clusters: nodes, ..v2.clone() };
        h.proxy.clear_calls();
        let plan = h.up(&program(v.clone(), "volatile-lru", "edxapp QA")).await;
        assert_eq!(ops(&plan)["cache"], Op::Update, "{}", explain(&plan));
        assert_eq!(changed(&plan, "cache"), vec!["num_cache_clusters"]);
        assert_eq!(h.proxy.mutating_calls(), vec![format!("elasticache {call}")], "{nodes} nodes");
        let (id, outputs) = recorded(&h.state().await, "cache");
        assert_eq!((id.as_str(), outputs["arn"].as_str()), (rg_id.as_str(), Some(arn.as_str())), "the same group");
        let live = members(&aws, &rg_id).await;
        assert_eq!(live.len(), nodes as usize, "{live:?}");
        assert_eq!(outputs["member_clusters"], serde_json::json!(live));
        h.proxy.clear_calls();
        let plan = h.preview(&program(v.clone(), "volatile-lru", "edxapp QA"), true).await;
        assert!(plan.steps.iter().all(|s| s.op == Op::Same) && plan.drift.is_empty(), "{nodes} nodes: {}", explain(&plan));
        assert!(h.proxy.mutating_calls().is_empty(), "{:?}", h.proxy.mutating_calls());
    }

    // One node with automatic failover is refused by check, before any call (AWS would refuse
    // DecreaseReplicaCount halfway through an apply).
    h.proxy.clear_calls();
    let one_node = program(ReplicationGroup { num_cache_clusters: 1, ..v2.clone() }, "volatile-lru", "edxapp QA");
    let Err(err) = h.try_up(&one_node, false).await else { panic!("one node with automatic failover must be refused") };
    assert!(err.contains("automatic_failover_enabled") && err.contains("num_cache_clusters"), "{err}");
    assert!(h.proxy.calls().is_empty(), "no AWS call: {:?}", h.proxy.calls());
    assert_eq!(members(&aws, &rg_id).await.len(), 2);

    // Failover off and down to one node in one change: failover goes first (AWS keeps a replica
    // while it is on); back to two with failover on: the replica comes first. The second call
    // waits until the group is `available` again: two looks at `modifying` (as AWS would report
    // after the first call), one at `available`, then one after the second call.
    let single = ReplicationGroup { num_cache_clusters: 1, automatic_failover_enabled: false, ..v2.clone() };
    let pair = ReplicationGroup { num_cache_clusters: 2, ..v2.clone() };
    for (v, calls) in [
        (&single, ["elasticache ModifyReplicationGroup", "elasticache DecreaseReplicaCount"]),
        (&pair, ["elasticache IncreaseReplicaCount", "elasticache ModifyReplicationGroup"]),
    ] {
        h.proxy.clear_calls();
        h.proxy.rewrite("DescribeReplicationGroups", "<Status>available</Status>", "<Status>modifying</Status>", 2);
        let plan = h.up(&program(v.clone(), "volatile-lru", "edxapp QA")).await;
        assert_eq!(ops(&plan)["cache"], Op::Update, "{}", explain(&plan));
        assert_eq!(h.proxy.mutating_calls(), calls);
        let actions: Vec<String> =
            h.proxy.calls().into_iter().map(|c| c.action).filter(|a| a.contains("Replica") || a.contains("Replication")).collect();
        assert_eq!(
            actions,
            [
                calls[0],
                "DescribeReplicationGroups",
                "DescribeReplicationGroups",
                "DescribeReplicationGroups",
                calls[1],
                "DescribeReplicationGroups"
            ]
            .map(|a| a.trim_start_matches("elasticache ").to_string()),
            "the second call waits for `available`"
        );
        let live = aws.elasticache.describe_replication_groups().replication_group_id(&rg_id).send().await.unwrap();
        let live = &live.replication_groups()[0];
        assert_eq!(live.member_clusters().len(), v.num_cache_clusters as usize);
        let failover = matches!(live.automatic_failover(), Some(AutomaticFailoverStatus::Enabled));
        assert_eq!(failover, v.automatic_failover_enabled);
        let plan = h.preview(&program(v.clone(), "volatile-lru", "edxapp QA"), true).await;
        assert!(plan.steps.iter().all(|s| s.op == Op::Same) && plan.drift.is_empty(), "{}", explain(&plan));
    }

    h.destroy().await;
    assert!(aws.elasticache.describe_replication_groups().replication_group_id(&rg_id).send().await.is_err(), "group deleted");
    assert!(aws.elasticache.describe_cache_subnet_groups().cache_subnet_group_name(&sn_name).send().await.is_err(), "subnet group deleted");
    assert!(
        aws.elasticache.describe_cache_parameter_groups().cache_parameter_group_name(&pg_name).send().await.is_err(),
        "parameter group deleted"
    );
    net.remove(&aws).await;
}
