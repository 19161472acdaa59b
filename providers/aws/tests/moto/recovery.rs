//! Pending-create recovery: a create that reached AWS but was never recorded (berth was killed
//! in between) is found again by its deterministic name, and adopted, never duplicated.

use berth_engine::registry::ProviderSettings;
use berth_engine::state::{Journal, JournalEntry, PendingKind, ResourceState, State, StateCodec};
use berth_engine::{CallContext, CustomTimeouts, Input, Op, Options, ProgramResult, Resource, Stack, Urn, Value};
use berth_provider_aws::ec2::{Rule, SecurityGroup};
use berth_provider_aws::elasticache::{self, ReplicationGroup};
use berth_provider_aws::iam::{OidcProvider, Policy, Role, RolePolicyAttachment};
use berth_provider_aws::rds;
use berth_provider_aws::s3::Bucket;

use crate::support::*;

/// The journal an interrupted run leaves: a create begun, never finished.
fn interrupted_create(h: &Harness, name: &str, ty: &str, inputs: serde_json::Value) {
    let stack = h.engine.stack.clone();
    let state = State::new(&stack);
    let path = h.engine.backend.journal_path(&stack);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let journal = Journal::create(&path, StateCodec::new(None, "test"), &state).expect("journal");
    let resource = ResourceState {
        urn: Urn::new(&stack, None, ty, name).unwrap(),
        ty: ty.into(),
        custom: true,
        id: None,
        parent: None,
        inputs: Value::from_json(inputs),
        outputs: Value::Null,
        dependencies: vec![],
        protect: false,
        retain_on_delete: false,
        custom_timeouts: CustomTimeouts::default(),
        tainted: false,
        generation: 0,
        created_at: String::new(),
        updated_at: String::new(),
    };
    let entry = JournalEntry::Begin { kind: PendingKind::Create, resource, started_at: "2026-01-01T00:00:00Z".into() };
    let rt = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| rt.block_on(journal.record(&entry))).expect("journal entry");
    journal.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_create_is_adopted_not_duplicated() {
    let aws = direct().await;
    let h = Harness::new("");
    let name = unique("berth-kill9");
    let bucket = Bucket { bucket: Some(name.clone()), tags: [("env".to_string(), "ci".to_string())].into(), ..Bucket::default() };
    // The bucket exists in AWS; berth's state only knows a create began.
    aws.s3.create_bucket().bucket(&name).send().await.unwrap();
    interrupted_create(&h, "assets", <Bucket as Resource>::TYPE, serde_json::to_value(&bucket).unwrap());

    h.proxy.clear_calls();
    let plan = h.up(&one("assets", bucket.clone(), Options::new())).await;
    assert_eq!(plan.reconciled.len(), 1, "{:?}", plan.reconciled);
    assert!(plan.reconciled[0].message.contains("adopted"), "{:?}", plan.reconciled);
    // The adoption records the bucket as it is (no tags yet), so the same up brings it in line.
    assert_eq!(ops(&plan)["assets"], Op::Update, "never created twice: {}", explain(&plan));
    // CreateBucket is a PUT of the bucket's root, `/<name>/` in the path style used with moto.
    let create = format!("s3 PUT /{name}");
    assert!(!h.proxy.mutating_calls().iter().any(|c| c.trim_end_matches('/') == create), "no CreateBucket: {:?}", h.proxy.mutating_calls());
    let (id, _) = recorded(&h.state().await, "assets");
    assert_eq!(id, name);
    let tags = aws.s3.get_bucket_tagging().bucket(&name).send().await.unwrap();
    assert_eq!(tags.tag_set().len(), 1, "the adopted bucket was brought in line with the program");
    h.destroy().await;
}

/// Every type finds what it made by its name (or, for attachments and OIDC providers, by what
/// identifies them), and finds nothing once it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_looks_up_what_it_created() {
    let aws = direct().await;
    let net = network(&aws).await;
    let h = Harness::new("");
    let env = unique("look");
    let program = {
        let (vpc, subnets, env) = (net.vpc.clone(), net.subnets.clone(), env.clone());
        move |s: &mut Stack| -> ProgramResult {
            let subnet_ids = || subnets.iter().map(|x| Input::Value(x.clone())).collect::<Vec<_>>();
            s.register("bucket", Bucket { bucket: Some(format!("{env}-bucket")), ..Bucket::default() }, Options::new())?;
            s.register(
                "sg",
                SecurityGroup {
                    vpc_id: vpc.clone().into(),
                    ingress: vec![Rule::tcp_from_cidr(443, "10.0.0.0/8")],
                    ..SecurityGroup::default()
                },
                Options::new(),
            )?;
            let role =
                s.register(
                    "role",
                    Role {
                        name: None,
                        path: "/".into(),
                        assume_role_policy:
                            r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#
                                .into(),
                        description: None,
                        max_session_duration: 3600,
                        tags: Default::default(),
                    },
                    Options::new(),
                )?;
            let policy = s.register(
                "policy",
                Policy {
                    name: None,
                    path: "/berth/".into(),
                    description: None,
                    policy: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}]}"#.into(),
                    tags: Default::default(),
                },
                Options::new(),
            )?;
            s.register(
                "attach",
                RolePolicyAttachment { role: role.output::<String>("name").into(), policy_arn: policy.output::<String>("arn").into() },
                Options::new(),
            )?;
            s.register(
                "oidc",
                OidcProvider {
                    url: format!("https://oidc.example.com/{env}").into(),
                    client_id_list: vec!["sts.amazonaws.com".into()],
                    thumbprint_list: vec![],
                    tags: Default::default(),
                },
                Options::new(),
            )?;
            s.register(
                "db-subnets",
                rds::SubnetGroup { name: None, description: "x".into(), subnet_ids: subnet_ids(), tags: Default::default() },
                Options::new(),
            )?;
            s.register(
                "db-params",
                rds::ParameterGroup {
                    name: None,
                    family: "mariadb11.4".into(),
                    description: "x".into(),
                    parameters: vec![],
                    tags: Default::default(),
                },
                Options::new(),
            )?;
            s.register("db", rds::Instance { identifier: None, ..crate::rds::mariadb("unused") }, Options::new())?;
            s.register(
                "cache-subnets",
                elasticache::SubnetGroup { name: None, description: "x".into(), subnet_ids: subnet_ids(), tags: Default::default() },
                Options::new(),
            )?;
            s.register(
                "cache-params",
                elasticache::ParameterGroup {
                    name: None,
                    family: "valkey7".into(),
                    description: "x".into(),
                    parameters: Default::default(),
                    tags: Default::default(),
                },
                Options::new(),
            )?;
            s.register(
                "cache",
                ReplicationGroup {
                    replication_group_id: None,
                    num_cache_clusters: 1,
                    automatic_failover_enabled: false,
                    ..crate::elasticache::valkey("unused")
                },
                Options::new(),
            )?;
            Ok(())
        }
    };
    h.up(&program).await;
    let state = h.state().await;
    assert_eq!(state.resources.len(), 12);
    let settings = berth_engine::config::parse_yaml("stacks/test.yaml", &format!("region: us-east-1\nendpoint: {}\n", moto_url())).unwrap();
    let provider = berth_provider_aws::plugin()
        .build(&ProviderSettings { stack: h.engine.stack.clone(), project_root: ".".into(), node: Some(settings) })
        .expect("provider");
    for r in &state.resources {
        let ctx = CallContext { urn: &r.urn, ty: &r.ty, name: r.urn.name(), stack: &h.engine.stack, timeout: None };
        let found = provider.lookup(ctx, &r.inputs).await.unwrap_or_else(|e| panic!("{}: lookup failed: {e}", r.urn));
        let found = found.unwrap_or_else(|| panic!("{}: lookup found nothing", r.urn));
        assert_eq!(Some(found.id), r.id, "{}", r.urn);
    }
    h.destroy().await;
    for r in &state.resources {
        let ctx = CallContext { urn: &r.urn, ty: &r.ty, name: r.urn.name(), stack: &h.engine.stack, timeout: None };
        assert!(provider.lookup(ctx, &r.inputs).await.unwrap().is_none(), "{} is gone", r.urn);
    }
    net.remove(&aws).await;
}
