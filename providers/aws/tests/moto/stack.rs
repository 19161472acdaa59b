//! A whole Open edX AWS footprint as one stack: security groups in a VPC, RDS MariaDB with its
//! groups, ElastiCache Valkey with its groups, the five edxapp buckets, and the IRSA role with
//! its OIDC provider, policy and attachment. `up`, a no-op `up` that makes no mutating call,
//! and a `destroy` that leaves nothing behind (checked by listing with the SDK).

use berth_engine::{Input, Op, Options, ProgramResult, Stack};
use berth_provider_aws::Clients;
use berth_provider_aws::ec2::{Rule, SecurityGroup};
use berth_provider_aws::elasticache::{self, ReplicationGroup};
use berth_provider_aws::iam::{OidcProvider, Policy, Role, RolePolicyAttachment};
use berth_provider_aws::rds::{self, ApplyWhen, DbParameter};
use berth_provider_aws::s3::{Bucket, CorsRule, Encryption, PublicAccessBlock, SseAlgorithm, Versioning};

use crate::support::*;

struct Names {
    env: String,
    vpc: String,
    subnets: Vec<String>,
    issuer: String,
}

fn edxapp(n: &Names) -> impl Fn(&mut Stack) -> ProgramResult + Send + Sync + 'static {
    let (env, vpc, subnets, issuer) = (n.env.clone(), n.vpc.clone(), n.subnets.clone(), n.issuer.clone());
    move |s: &mut Stack| -> ProgramResult {
        let tags = || [("ol.mit.edu/environment".to_string(), env.clone())].into_iter().collect::<std::collections::BTreeMap<_, _>>();
        let subnet_ids = || subnets.iter().map(|x| Input::Value(x.clone())).collect::<Vec<_>>();
        // Buckets.
        let mut bucket_arns = Vec::new();
        for purpose in ["mfe", "storage", "courses", "grades", "tracking"] {
            let mut bucket = Bucket {
                bucket: Some(format!("{env}-edxapp-{purpose}")),
                force_destroy: true,
                versioning: Some(Versioning::Enabled),
                tags: tags(),
                ..Bucket::default()
            };
            if purpose == "storage" {
                // Public reads of video images: AWS refuses the policy unless public policies are allowed.
                bucket.public_access_block = Some(PublicAccessBlock {
                    block_public_acls: true,
                    ignore_public_acls: true,
                    block_public_policy: false,
                    restrict_public_buckets: false,
                });
                bucket.cors_rules = Some(vec![CorsRule {
                    allowed_methods: vec!["GET".into(), "HEAD".into()],
                    allowed_origins: vec!["https://lms.example.com".into()],
                    ..CorsRule::default()
                }]);
                bucket.policy = Some(Input::Value(format!(
                    r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{env}-edxapp-storage/media/video-images/*"}}]}}"#
                )));
            }
            if purpose == "tracking" {
                bucket.server_side_encryption = Some(Encryption { algorithm: SseAlgorithm::Kms, ..Encryption::default() });
                bucket.public_access_block = Some(PublicAccessBlock::all());
            }
            let b = s.register(&format!("bucket-{purpose}"), bucket, Options::new())?;
            bucket_arns.push(b.output::<String>("arn"));
        }
        // IAM: the edxapp policy on the buckets, the IRSA role, its OIDC provider.
        let document = berth_engine::Output::all(&bucket_arns).map(|arns: Vec<String>| {
            let resources: Vec<String> = arns.iter().flat_map(|a| [format!("\"{a}\""), format!("\"{a}/*\"")]).collect();
            format!(r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject","s3:ListBucket"],"Resource":[{}]}}]}}"#, resources.join(","))
        });
        let policy = s.register(
            "edxapp-policy",
            Policy {
                name: Some(format!("edxapp-policy-{env}")),
                path: "/ol-applications/edxapp/".into(),
                description: None,
                policy: document.into(),
                tags: tags(),
            },
            Options::new(),
        )?;
        let oidc = s.register(
            "oidc",
            OidcProvider {
                url: format!("https://{issuer}").into(),
                client_id_list: vec!["sts.amazonaws.com".into()],
                thumbprint_list: vec![],
                tags: tags(),
            },
            Options::new(),
        )?;
        let issuer_for_trust = issuer.clone();
        let trust = oidc.output::<String>("arn").map(move |arn: String| {
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Federated":"{arn}"}},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{{"StringEquals":{{"{i}:aud":"sts.amazonaws.com","{i}:sub":"system:serviceaccount:openedx:edxapp"}}}}}}]}}"#,
                i = issuer_for_trust
            )
        });
        let role = s.register(
            "trust-role",
            Role {
                name: Some(format!("edxapp-trustrole-{env}")),
                path: "/ol-infrastructure/eks/".into(),
                assume_role_policy: trust.into(),
                description: None,
                max_session_duration: 3600,
                tags: tags(),
            },
            Options::new(),
        )?;
        s.register(
            "trust-role-policy",
            RolePolicyAttachment { role: role.output::<String>("name").into(), policy_arn: policy.output::<String>("arn").into() },
            Options::new(),
        )?;
        // Security groups.
        let app = s.register(
            "edxapp-sg",
            SecurityGroup {
                name: Some(format!("edxapp-{env}")),
                vpc_id: vpc.clone().into(),
                ingress: vec![Rule::tcp_from_cidr(18040, "10.30.0.0/16")],
                tags: tags(),
                ..SecurityGroup::default()
            },
            Options::new(),
        )?;
        let db_sg = s.register(
            "db-sg",
            SecurityGroup {
                name: Some(format!("edxapp-db-{env}")),
                vpc_id: vpc.clone().into(),
                ingress: vec![Rule::tcp_from_group(3306, app.output::<String>("id")), Rule::tcp_from_cidr(3306, "10.30.1.0/24")],
                tags: tags(),
                ..SecurityGroup::default()
            },
            Options::new(),
        )?;
        let cache_sg = s.register(
            "cache-sg",
            SecurityGroup {
                name: Some(format!("edxapp-redis-{env}")),
                vpc_id: vpc.clone().into(),
                ingress: vec![Rule::tcp_from_group(6379, app.output::<String>("id")), Rule::tcp_from_cidr(6379, "10.30.1.0/24")],
                tags: tags(),
                ..SecurityGroup::default()
            },
            Options::new(),
        )?;
        // RDS.
        let db_subnets = s.register(
            "db-subnets",
            rds::SubnetGroup {
                name: Some(format!("edxapp-db-{env}")),
                description: "edxapp".into(),
                subnet_ids: subnet_ids(),
                tags: tags(),
            },
            Options::new(),
        )?;
        let db_params = s.register(
            "db-params",
            rds::ParameterGroup {
                name: None,
                family: "mariadb11.4".into(),
                description: "edxapp".into(),
                parameters: vec![
                    DbParameter { name: "character_set_server".into(), value: "utf8mb4".into(), apply_method: ApplyWhen::PendingReboot },
                    DbParameter { name: "time_zone".into(), value: "UTC".into(), apply_method: ApplyWhen::Immediate },
                ],
                tags: tags(),
            },
            Options::new(),
        )?;
        let mut db = crate::rds::mariadb(&format!("edxapp-db-{env}"));
        db.parameter_group_name = Some(db_params.output::<String>("name").into());
        db.subnet_group_name = Some(db_subnets.output::<String>("name").into());
        db.vpc_security_group_ids = vec![db_sg.output::<String>("id").into()];
        s.register("db", db, Options::new())?;
        // ElastiCache.
        let cache_subnets = s.register(
            "cache-subnets",
            elasticache::SubnetGroup {
                name: Some(format!("edxapp-redis-{env}")),
                description: "edxapp".into(),
                subnet_ids: subnet_ids(),
                tags: tags(),
            },
            Options::new(),
        )?;
        let cache_params = s.register(
            "cache-params",
            elasticache::ParameterGroup {
                name: None,
                family: "valkey7".into(),
                description: "edxapp".into(),
                parameters: [("maxmemory-policy".to_string(), "allkeys-lru".to_string())].into(),
                tags: tags(),
            },
            Options::new(),
        )?;
        let mut cache: ReplicationGroup = crate::elasticache::valkey(&format!("edxapp-redis-{env}"));
        cache.num_cache_clusters = 3;
        cache.parameter_group_name = Some(cache_params.output::<String>("name").into());
        cache.subnet_group_name = Some(cache_subnets.output::<String>("name").into());
        cache.security_group_ids = vec![cache_sg.output::<String>("id").into()];
        s.register("cache", cache, Options::new())?;
        Ok(())
    }
}

/// Everything of this environment that exists in moto, by kind.
async fn leftovers(aws: &Clients, n: &Names) -> Vec<String> {
    let mut found = Vec::new();
    for b in aws.s3.list_buckets().send().await.unwrap().buckets() {
        if b.name().unwrap_or_default().starts_with(&n.env) {
            found.push(format!("bucket {}", b.name().unwrap_or_default()));
        }
    }
    let groups = aws
        .ec2
        .describe_security_groups()
        .filters(aws_sdk_ec2::types::Filter::builder().name("vpc-id").values(&n.vpc).build())
        .send()
        .await
        .unwrap();
    for g in groups.security_groups().iter().filter(|g| g.group_name() != Some("default")) {
        found.push(format!("security group {}", g.group_name().unwrap_or_default()));
    }
    for db in aws.rds.describe_db_instances().send().await.unwrap().db_instances() {
        if db.db_instance_identifier().unwrap_or_default().contains(&n.env) {
            found.push(format!("DB instance {}", db.db_instance_identifier().unwrap_or_default()));
        }
    }
    for g in aws.rds.describe_db_subnet_groups().send().await.unwrap().db_subnet_groups() {
        if g.db_subnet_group_name().unwrap_or_default().contains(&n.env) {
            found.push(format!("DB subnet group {}", g.db_subnet_group_name().unwrap_or_default()));
        }
    }
    for g in aws.rds.describe_db_parameter_groups().send().await.unwrap().db_parameter_groups() {
        if g.db_parameter_group_name().unwrap_or_default().starts_with("db-params-") && g.db_parameter_group_family() == Some("mariadb11.4")
        {
            let tags = aws.rds.list_tags_for_resource().resource_name(g.db_parameter_group_arn().unwrap_or_default()).send().await.unwrap();
            if tags.tag_list().iter().any(|t| t.value() == Some(n.env.as_str())) {
                found.push(format!("DB parameter group {}", g.db_parameter_group_name().unwrap_or_default()));
            }
        }
    }
    for g in aws.elasticache.describe_replication_groups().send().await.unwrap().replication_groups() {
        if g.replication_group_id().unwrap_or_default().contains(&n.env) {
            found.push(format!("replication group {}", g.replication_group_id().unwrap_or_default()));
        }
    }
    for g in aws.elasticache.describe_cache_subnet_groups().send().await.unwrap().cache_subnet_groups() {
        if g.cache_subnet_group_name().unwrap_or_default().contains(&n.env) {
            found.push(format!("cache subnet group {}", g.cache_subnet_group_name().unwrap_or_default()));
        }
    }
    for g in aws.elasticache.describe_cache_parameter_groups().send().await.unwrap().cache_parameter_groups() {
        let tags = aws.elasticache.list_tags_for_resource().resource_name(g.arn().unwrap_or_default()).send().await.unwrap();
        if tags.tag_list().iter().any(|t| t.value() == Some(n.env.as_str())) {
            found.push(format!("cache parameter group {}", g.cache_parameter_group_name().unwrap_or_default()));
        }
    }
    for r in aws.iam.list_roles().send().await.unwrap().roles() {
        if r.role_name().contains(&n.env) {
            found.push(format!("role {}", r.role_name()));
        }
    }
    for p in aws.iam.list_policies().scope(aws_sdk_iam::types::PolicyScopeType::Local).send().await.unwrap().policies() {
        if p.policy_name().unwrap_or_default().contains(&n.env) {
            found.push(format!("policy {}", p.policy_name().unwrap_or_default()));
        }
    }
    for p in aws.iam.list_open_id_connect_providers().send().await.unwrap().open_id_connect_provider_list() {
        if p.arn().unwrap_or_default().ends_with(&n.issuer) {
            found.push(format!("OIDC provider {}", p.arn().unwrap_or_default()));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edxapp_stack_up_noop_destroy() {
    let aws = direct().await;
    let net = network(&aws).await;
    let env = unique("ci");
    let names = Names {
        issuer: format!("oidc.eks.us-east-1.amazonaws.com/id/{}", env.to_uppercase().replace('-', "")),
        env,
        vpc: net.vpc.clone(),
        subnets: net.subnets.clone(),
    };
    let h = Harness::new("");
    let program = edxapp(&names);

    let plan = h.up(&program).await;
    assert_eq!(plan.steps.len(), 18, "{:?}", ops(&plan));
    assert!(plan.steps.iter().all(|s| s.op == Op::Create), "{:?}", ops(&plan));
    assert!(plan.steps.iter().all(|s| s.notes.is_empty()), "no warnings: {:?}", plan.steps.iter().map(|s| &s.notes).collect::<Vec<_>>());
    let found = leftovers(&aws, &names).await;
    assert_eq!(found.len(), 17, "everything but the attachment is listed: {found:?}");

    // A second up: nothing to change, and not one mutating call reaches AWS.
    h.proxy.clear_calls();
    let (plan, report) = h.try_up(&program, false).await.unwrap();
    assert!(plan.steps.iter().all(|s| s.op == Op::Same), "{}", explain(&plan));
    assert!(report.is_none(), "nothing was applied");
    assert_eq!(h.proxy.mutating_calls(), Vec::<String>::new());
    // Also with a refresh: every resource is read back and none has drifted.
    let (plan, report) = h.try_up(&program, true).await.unwrap();
    assert!(plan.drift.is_empty(), "{}", explain(&plan));
    assert!(plan.steps.iter().all(|s| s.op == Op::Same), "{}", explain(&plan));
    assert!(report.is_none());
    assert_eq!(h.proxy.mutating_calls(), Vec::<String>::new());
    assert!(!h.proxy.calls().is_empty(), "the refresh did read");

    let plan = h.destroy().await;
    assert!(plan.steps.iter().all(|s| s.op == Op::Delete));
    assert_eq!(leftovers(&aws, &names).await, Vec::<String>::new(), "destroy left resources behind");
    assert!(h.state().await.resources.is_empty());
    net.remove(&aws).await;
}
