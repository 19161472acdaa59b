//! RDS: subnet groups, parameter groups and MariaDB instances.

use aws_sdk_rds::types::{ApplyMethod, Parameter};
use berth_engine::{Input, Op, Options, ProgramResult, Secret, Stack};
use berth_provider_aws::rds::{ApplyWhen, DbParameter, Instance, ParameterGroup, SubnetGroup};

use crate::support::*;

pub fn mariadb(identifier: &str) -> Instance {
    serde_json::from_value(serde_json::json!({
        "identifier": identifier,
        "engine": "mariadb",
        "engine_version": "11.4",
        "instance_class": "db.t3.micro",
        "allocated_storage": 20,
        "max_allocated_storage": 50,
        "db_name": "edxapp",
        "password": "correct-horse-battery",
        "backup_retention_period": 1,
        "skip_final_snapshot": true,
        "tags": {"env": "ci"}
    }))
    .expect("instance inputs")
}

fn parameters(time_zone: &str) -> Vec<DbParameter> {
    vec![
        DbParameter { name: "character_set_server".into(), value: "utf8mb4".into(), apply_method: ApplyWhen::PendingReboot },
        DbParameter { name: "time_zone".into(), value: time_zone.into(), apply_method: ApplyWhen::Immediate },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_with_its_groups() {
    let aws = direct().await;
    let net = network(&aws).await;
    let h = Harness::new("");
    let (db_id, pg_name, sn_name) = (unique("berth-db"), unique("berth-pg"), unique("berth-sn"));
    let program = |instance: Instance, time_zone: &'static str, family: &'static str| {
        let (subnets, pg_name, sn_name) = (net.subnets.clone(), pg_name.clone(), sn_name.clone());
        move |s: &mut Stack| -> ProgramResult {
            let subnets = s.register(
                "subnets",
                SubnetGroup {
                    name: Some(sn_name.clone()),
                    description: "edxapp".into(),
                    subnet_ids: subnets.iter().map(|x| Input::Value(x.clone())).collect(),
                    tags: Default::default(),
                },
                Options::new(),
            )?;
            let params = s.register(
                "params",
                ParameterGroup {
                    name: Some(pg_name.clone()),
                    family: family.into(),
                    description: "edxapp".into(),
                    parameters: parameters(time_zone),
                    tags: Default::default(),
                },
                Options::new(),
            )?;
            s.register(
                "db",
                Instance {
                    parameter_group_name: Some(params.output::<String>("name").into()),
                    subnet_group_name: Some(subnets.output::<String>("name").into()),
                    ..instance.clone()
                },
                Options::new(),
            )?;
            Ok(())
        }
    };
    let v1 = mariadb(&db_id);
    let plan = h.up(&program(v1.clone(), "UTC", "mariadb11.4")).await;
    assert!(plan.steps.iter().all(|s| s.op == Op::Create), "{:?}", ops(&plan));
    let live = aws.rds.describe_db_instances().db_instance_identifier(&db_id).send().await.unwrap();
    let live = &live.db_instances()[0];
    assert_eq!(live.db_instance_class(), Some("db.t3.micro"));
    assert_eq!(live.db_parameter_groups()[0].db_parameter_group_name(), Some(pg_name.as_str()));
    assert_eq!(live.db_subnet_group().and_then(|g| g.db_subnet_group_name()), Some(sn_name.as_str()));
    let (_, outputs) = recorded(&h.state().await, "db");
    assert!(outputs["address"].as_str().unwrap().starts_with(&db_id), "{outputs}");
    let params = aws.rds.describe_db_parameters().db_parameter_group_name(&pg_name).source("user").send().await.unwrap();
    assert_eq!(params.parameters().len(), 2);
    let state_text = format!("{:?}", h.state().await.resources.iter().map(|r| r.inputs.to_json_masked()).collect::<Vec<_>>());
    assert!(!state_text.contains("correct-horse-battery"), "the password is masked");

    // No-op: no mutating call, and a refresh finds no drift (11.4 asked, 11.4.x running).
    h.proxy.clear_calls();
    let plan = h.up_refresh(&program(v1.clone(), "UTC", "mariadb11.4")).await;
    assert!(plan.steps.iter().all(|s| s.op == Op::Same), "{}", explain(&plan));
    assert!(plan.drift.is_empty(), "{}", explain(&plan));
    assert!(h.proxy.mutating_calls().is_empty(), "{:?}", h.proxy.mutating_calls());

    // Update in place: class, storage, backups, a parameter, the password.
    let v2 = Instance {
        instance_class: "db.t3.small".into(),
        allocated_storage: 30,
        backup_retention_period: 7,
        password: Input::Value(Secret::new("another-horse-battery".into())),
        ..v1.clone()
    };
    let plan = h.up(&program(v2.clone(), "America/New_York", "mariadb11.4")).await;
    assert_eq!(ops(&plan)["db"], Op::Update);
    assert_eq!(changed(&plan, "db"), vec!["allocated_storage", "backup_retention_period", "instance_class", "password"]);
    assert_eq!(ops(&plan)["params"], Op::Update);
    let live = aws.rds.describe_db_instances().db_instance_identifier(&db_id).send().await.unwrap();
    assert_eq!((live.db_instances()[0].db_instance_class(), live.db_instances()[0].allocated_storage()), (Some("db.t3.small"), Some(30)));
    assert!(h.proxy.calls().iter().any(|c| c.action == "ModifyDBInstance"));

    // Shrinking storage is refused at plan time, before any call.
    h.proxy.clear_calls();
    let err =
        h.try_preview(&program(Instance { allocated_storage: 25, ..v2.clone() }, "America/New_York", "mariadb11.4")).await.unwrap_err();
    assert!(err.contains("cannot shrink from 30 to 25"), "{err}");
    assert!(h.proxy.mutating_calls().is_empty());

    // Drift: the instance class and one parameter of its group (`time_zone`, the second of the
    // two, sorted by name) changed with another client. A refreshing preview shows exactly those.
    aws.rds
        .modify_db_instance()
        .db_instance_identifier(&db_id)
        .db_instance_class("db.t3.medium")
        .apply_immediately(true)
        .send()
        .await
        .unwrap();
    let by_hand =
        Parameter::builder().parameter_name("time_zone").parameter_value("Europe/Paris").apply_method(ApplyMethod::Immediate).build();
    aws.rds.modify_db_parameter_group().db_parameter_group_name(&pg_name).parameters(by_hand).send().await.unwrap();
    let plan = h.preview(&program(v2.clone(), "America/New_York", "mariadb11.4"), true).await;
    assert_eq!(drifted(&plan, "db"), Some(vec!["instance_class".to_string()]));
    assert_eq!(ops(&plan)["db"], Op::Update);
    assert_eq!(drifted(&plan, "params"), Some(vec!["parameters[1].value".to_string()]), "{}", explain(&plan));
    assert_eq!((ops(&plan)["params"], changed(&plan, "params")), (Op::Update, vec!["parameters[1].value".to_string()]));
    assert_eq!(drifted(&plan, "subnets"), None, "{}", explain(&plan));
    h.up_refresh(&program(v2.clone(), "America/New_York", "mariadb11.4")).await;
    let live = aws.rds.describe_db_instances().db_instance_identifier(&db_id).send().await.unwrap();
    assert_eq!(live.db_instances()[0].db_instance_class(), Some("db.t3.small"));
    let params = aws.rds.describe_db_parameters().db_parameter_group_name(&pg_name).source("user").send().await.unwrap();
    let time_zone = params.parameters().iter().find(|p| p.parameter_name() == Some("time_zone")).and_then(|p| p.parameter_value());
    assert_eq!(time_zone, Some("America/New_York"), "drift put right");

    // Import all three by id into a fresh stack: only the password (which RDS never reveals) differs.
    // The program names the security group AWS gave the instance (the VPC's default).
    let fresh = Harness::new("");
    let live = aws.rds.describe_db_instances().db_instance_identifier(&db_id).send().await.unwrap();
    let default_sg = live.db_instances()[0].vpc_security_groups()[0].vpc_security_group_id().unwrap().to_string();
    let imports = {
        let (subnets, pg_name, sn_name, db_id) = (net.subnets.clone(), pg_name.clone(), sn_name.clone(), db_id.clone());
        let v2 = Instance { vpc_security_group_ids: vec![default_sg.into()], ..v2.clone() };
        move |s: &mut Stack| -> ProgramResult {
            let mut subnet_ids: Vec<Input<String>> = subnets.iter().map(|x| Input::Value(x.clone())).collect();
            subnet_ids.sort_by(|a, b| a.known().cmp(&b.known()));
            s.register(
                "subnets",
                SubnetGroup { name: Some(sn_name.clone()), description: "edxapp".into(), subnet_ids, tags: Default::default() },
                Options::new().import(&sn_name),
            )?;
            s.register(
                "params",
                ParameterGroup {
                    name: Some(pg_name.clone()),
                    family: "mariadb11.4".into(),
                    description: "edxapp".into(),
                    parameters: parameters("America/New_York"),
                    tags: Default::default(),
                },
                Options::new().import(&pg_name),
            )?;
            s.register(
                "db",
                Instance {
                    parameter_group_name: Some(pg_name.clone().into()),
                    subnet_group_name: Some(sn_name.clone().into()),
                    skip_final_snapshot: false,
                    ..v2.clone()
                },
                Options::new().import(&db_id),
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
    // RDS never reveals the password: the configured one is recorded, not applied.
    assert_eq!(changed(&plan, "db"), Vec::<String>::new(), "{}", explain(&plan));
    let db = plan.steps.iter().find(|s| s.name() == "db").unwrap();
    assert!(db.state_only_changes.iter().any(|c| c.starts_with("password (write-only")), "{:?}", db.state_only_changes);
    // `up` records the three without changing anything in AWS; then the state holds them: a
    // preview (and a refreshing one) has nothing to do.
    fresh.proxy.clear_calls();
    fresh.up(&imports).await;
    assert!(fresh.proxy.mutating_calls().is_empty(), "{:?}", fresh.proxy.mutating_calls());
    let state = fresh.state().await;
    let ids: Vec<String> = ["subnets", "params", "db"].iter().map(|n| recorded(&state, n).0).collect();
    assert_eq!(ids, vec![sn_name.clone(), pg_name.clone(), db_id.clone()]);
    for refresh in [false, true] {
        let plan = fresh.preview(&imports, refresh).await;
        assert!(plan.steps.iter().all(|s| s.op == Op::Same) && plan.drift.is_empty(), "refresh {refresh}: {}", explain(&plan));
    }

    // Replace: a new parameter group family (auto-named groups would be created first; this one
    // has a fixed name, so the old goes first), and the instance keeps its identifier.
    let plan = h.up(&program(v2.clone(), "America/New_York", "mariadb11.8")).await;
    assert_eq!(ops(&plan)["params"], Op::Replace);
    // The instance replaced with a new engine version family would need a new identifier; here
    // a new db_name forces it, deleting first because the identifier stays the same.
    let plan = h.up(&program(Instance { db_name: Some("edxapp2".into()), ..v2.clone() }, "America/New_York", "mariadb11.8")).await;
    assert_eq!(ops(&plan)["db"], Op::Replace);
    assert!(plan.steps.iter().find(|s| s.name() == "db").unwrap().delete_before_replace);
    let live = aws.rds.describe_db_instances().db_instance_identifier(&db_id).send().await.unwrap();
    assert_eq!(live.db_instances()[0].db_name(), Some("edxapp2"));

    h.destroy().await;
    assert!(aws.rds.describe_db_instances().db_instance_identifier(&db_id).send().await.is_err(), "instance deleted");
    assert!(aws.rds.describe_db_subnet_groups().db_subnet_group_name(&sn_name).send().await.is_err(), "subnet group deleted");
    let pgs = aws.rds.describe_db_parameter_groups().db_parameter_group_name(&pg_name).send().await;
    assert!(pgs.map(|g| g.db_parameter_groups().is_empty()).unwrap_or(true), "parameter group deleted");
    net.remove(&aws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_snapshot_and_deletion_protection() {
    let aws = direct().await;
    let h = Harness::new("");
    let db_id = unique("berth-snap");
    let protected = Instance { skip_final_snapshot: false, deletion_protection: true, ..mariadb(&db_id) };
    h.up(&one("db", protected.clone(), Options::new())).await;

    // Deletion protection: destroy fails with AWS's reason and what to do; the instance stays.
    let (prepared, _) = h
        .engine
        .prepare(berth_engine::ops::Operation::Destroy, None, None, &berth_engine::ops::RunOptions { parallel: 2, ..Default::default() })
        .await
        .unwrap();
    let executed = h
        .engine
        .execute(prepared, &berth_engine::apply::ApplyOptions::default(), std::sync::Arc::new(berth_engine::apply::Silent))
        .await
        .unwrap();
    let failure = failures(&executed.report);
    assert!(failure.contains("deletion_protection: false") && failure.contains("InvalidParameterCombination"), "{failure}");
    assert!(aws.rds.describe_db_instances().db_instance_identifier(&db_id).send().await.is_ok());

    // Turn it off (an update), then destroy takes a final snapshot.
    h.up(&one(
        "db",
        Instance { deletion_protection: false, final_snapshot_identifier: Some(format!("{db_id}-last")), ..protected },
        Options::new(),
    ))
    .await;
    h.destroy().await;
    let snapshots = aws.rds.describe_db_snapshots().db_snapshot_identifier(format!("{db_id}-last")).send().await.unwrap();
    assert_eq!(snapshots.db_snapshots().len(), 1, "final snapshot taken");
    aws.rds.delete_db_snapshot().db_snapshot_identifier(format!("{db_id}-last")).send().await.unwrap();
}
