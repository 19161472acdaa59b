//! Latency and faults between berth and moto: retries with back-off on throttling and 5xx,
//! errors that name the AWS code and the resource, await loops that wait for `available` and
//! for a delete to finish, and custom timeouts that stop with a clear message.

use std::time::{Duration, Instant};

use berth_engine::{CustomTimeouts, Op, Options};
use berth_provider_aws::elasticache::ReplicationGroup;
use berth_provider_aws::iam::Role;

use crate::support::*;

fn trust() -> String {
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#
        .into()
}

fn role(name: &str) -> Role {
    Role {
        name: Some(name.into()),
        path: "/".into(),
        assume_role_policy: trust().into(),
        description: None,
        max_session_duration: 3600,
        tags: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_are_retried() {
    let aws = direct().await;
    let h = Harness::new("max_attempts: 4\n");
    h.proxy.set_delay(ms(30));
    let name = unique("berth-retry");
    h.proxy.fail("CreateRole", 500, "InternalFailure", 2);
    h.proxy.fail("ListRoleTags", 400, "Throttling", 3);
    h.up(&one("role", role(&name), Options::new())).await;
    assert_eq!(h.proxy.count("CreateRole"), 3, "two injected 500s, then success");
    assert_eq!(h.proxy.injected("CreateRole"), 2);
    assert!(aws.iam.get_role().role_name(&name).send().await.is_ok());
    // Reads are retried too (a refresh reads the tags: three throttled answers, then success).
    let plan = h.preview(&one("role", role(&name), Options::new()), true).await;
    assert_eq!(ops(&plan)["role"], Op::Same);
    assert_eq!(h.proxy.count("ListRoleTags"), 4);
    h.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_retries_name_the_code_and_the_resource() {
    let h = Harness::new("max_attempts: 2\n");
    let name = unique("berth-throttled");
    h.proxy.fail("CreateRole", 400, "Throttling", 2);
    let (_, report) = h.try_up(&one("role", role(&name), Options::new()), false).await.unwrap();
    let failure = failures(&report.expect("applied"));
    assert!(failure.contains("Throttling"), "{failure}");
    assert!(failure.contains(&format!("urn:berth:{}::aws:iam:Role::role", h.engine.stack)), "{failure}");
    assert!(failure.contains("CreateRole failed"), "{failure}");
    assert!(failure.contains("max_attempts"), "says what to do: {failure}");
    assert_eq!(h.proxy.count("CreateRole"), 2);
    assert!(h.state().await.resources.is_empty(), "nothing was created");

    h.proxy.fail("CreateRole", 503, "ServiceUnavailable", 2);
    let (_, report) = h.try_up(&one("role", role(&name), Options::new()), false).await.unwrap();
    let failure = failures(&report.expect("applied"));
    assert!(failure.contains("ServiceUnavailable") && failure.contains("run again later"), "{failure}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_waits_for_available_and_delete_waits_until_gone() {
    let aws = direct().await;
    let h = Harness::new("");
    h.proxy.set_delay(ms(20));
    let id = unique("berth-await");
    // moto says `available` at once; real RDS says `creating` for minutes.
    h.proxy.rewrite(
        "DescribeDBInstances",
        "<DBInstanceStatus>available</DBInstanceStatus>",
        "<DBInstanceStatus>creating</DBInstanceStatus>",
        4,
    );
    let started = Instant::now();
    h.up(&one("db", crate::rds::mariadb(&id), Options::new())).await;
    assert_eq!(h.proxy.count("DescribeDBInstances"), 5, "four looks at `creating`, then `available`");
    assert!(started.elapsed() >= Duration::from_millis(4 * 50), "it paused between looks");

    // A modification: `modifying` until done.
    h.proxy.clear_calls();
    h.proxy.rewrite(
        "DescribeDBInstances",
        "<DBInstanceStatus>available</DBInstanceStatus>",
        "<DBInstanceStatus>modifying</DBInstanceStatus>",
        3,
    );
    h.up(&one(
        "db",
        berth_provider_aws::rds::Instance { instance_class: "db.t3.small".into(), ..crate::rds::mariadb(&id) },
        Options::new(),
    ))
    .await;
    assert_eq!(h.proxy.count("DescribeDBInstances"), 4);

    // moto forgets a deleted instance at once; real RDS shows it `deleting` for minutes.
    h.proxy.clear_calls();
    h.proxy.replay(
        "DescribeDBInstances",
        "<DBInstanceStatus>available</DBInstanceStatus>",
        "<DBInstanceStatus>deleting</DBInstanceStatus>",
        3,
    );
    h.destroy().await;
    assert_eq!(h.proxy.count("DescribeDBInstances"), 4, "three looks at `deleting`, then not found");
    assert!(aws.rds.describe_db_instances().db_instance_identifier(&id).send().await.is_err());

    // The same for a replication group.
    let rg = unique("berth-await");
    h.proxy.clear_calls();
    h.proxy.rewrite("DescribeReplicationGroups", "<Status>available</Status>", "<Status>creating</Status>", 2);
    let group = ReplicationGroup { num_cache_clusters: 1, automatic_failover_enabled: false, ..crate::elasticache::valkey(&rg) };
    h.up(&one("cache", group, Options::new())).await;
    assert_eq!(h.proxy.count("DescribeReplicationGroups"), 3);
    h.proxy.replay("DescribeReplicationGroups", "<Status>available</Status>", "<Status>deleting</Status>", 2);
    h.destroy().await;
    assert!(aws.elasticache.describe_replication_groups().replication_group_id(&rg).send().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_timeouts_stop_the_wait_and_taint_the_resource() {
    let aws = direct().await;
    let h = Harness::new("");
    let id = unique("berth-slow");
    h.proxy.rewrite(
        "DescribeDBInstances",
        "<DBInstanceStatus>available</DBInstanceStatus>",
        "<DBInstanceStatus>creating</DBInstanceStatus>",
        1000,
    );
    let slow = Options::new().timeouts(CustomTimeouts { create: Some(Duration::from_secs(2)), ..CustomTimeouts::default() });
    let started = Instant::now();
    let (_, report) = h.try_up(&one("db", crate::rds::mariadb(&id), slow.clone()), false).await.unwrap();
    let failure = failures(&report.expect("applied"));
    assert!(started.elapsed() < Duration::from_secs(10), "gave up at the limit");
    assert!(failure.contains("still `creating`") && failure.contains("custom_timeouts.create"), "{failure}");
    assert!(failure.contains(&format!("DB instance `{id}`")), "{failure}");

    // The half-made instance is recorded, tainted: the next plan replaces it, never duplicates it.
    let state = h.state().await;
    let recorded = state.resources.iter().find(|r| r.urn.name() == "db").expect("recorded");
    assert!(recorded.tainted, "{recorded:?}");
    h.proxy.clear_rewrites();
    let plan = h.preview(&one("db", crate::rds::mariadb(&id), slow.clone()), false).await;
    assert_eq!(ops(&plan)["db"], Op::Replace);
    h.destroy().await;
    assert!(aws.rds.describe_db_instances().db_instance_identifier(&id).send().await.is_err());
}

/// `custom_timeouts.update` and `.delete` bound their waits too, with the same clear message; a
/// delete that timed out stays in state, so the next destroy finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_and_delete_timeouts_stop_their_waits() {
    let aws = direct().await;
    let h = Harness::new("");
    let id = unique("berth-slowmod");
    let limits = Options::new().timeouts(CustomTimeouts {
        update: Some(Duration::from_secs(2)),
        delete: Some(Duration::from_secs(2)),
        ..CustomTimeouts::default()
    });
    h.up(&one("db", crate::rds::mariadb(&id), limits.clone())).await;

    h.proxy.rewrite(
        "DescribeDBInstances",
        "<DBInstanceStatus>available</DBInstanceStatus>",
        "<DBInstanceStatus>modifying</DBInstanceStatus>",
        1000,
    );
    let bigger = berth_provider_aws::rds::Instance { instance_class: "db.t3.small".into(), ..crate::rds::mariadb(&id) };
    let (_, report) = h.try_up(&one("db", bigger.clone(), limits.clone()), false).await.unwrap();
    let failure = failures(&report.expect("applied"));
    assert!(failure.contains("still `modifying`") && failure.contains("custom_timeouts.update"), "{failure}");
    assert!(failure.contains(&format!("DB instance `{id}`")), "{failure}");
    h.proxy.clear_rewrites();
    // The update's outcome was unknown when the wait stopped: the next run reads the instance and
    // settles it (here: the new class took), with nothing left to do.
    assert!(h.state().await.pending.iter().any(|p| p.resource.urn.name() == "db"), "the unfinished update is recorded");
    let plan = h.up(&one("db", bigger.clone(), limits.clone())).await;
    assert_eq!(ops(&plan)["db"], Op::Same);
    assert!(h.state().await.pending.is_empty());

    h.proxy.replay(
        "DescribeDBInstances",
        "<DBInstanceStatus>available</DBInstanceStatus>",
        "<DBInstanceStatus>deleting</DBInstanceStatus>",
        1000,
    );
    let report = h.try_destroy().await;
    let failure = failures(&report);
    assert!(failure.contains("still `deleting`") && failure.contains("custom_timeouts.delete"), "{failure}");
    assert!(h.state().await.resources.iter().any(|r| r.urn.name() == "db"), "a delete that did not finish stays in state");
    h.proxy.clear_rewrites();
    h.destroy().await;
    assert!(h.state().await.resources.is_empty());
    assert!(aws.rds.describe_db_instances().db_instance_identifier(&id).send().await.is_err());
}
