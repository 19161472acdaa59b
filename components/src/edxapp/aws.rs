//! The AWS components: the five buckets and the application's policy, the security groups, the
//! MariaDB database and the Valkey cache.

use std::collections::BTreeMap;

use berth_engine::{Input, Options, Output, ProgramResult, Secret, Stack, format_output};
use berth_provider_aws::ec2::{Rule, SecurityGroup};
use berth_provider_aws::elasticache::{self, CacheEngine, ReplicationGroup};
use berth_provider_aws::iam::Policy;
use berth_provider_aws::rds::{self, DbParameter, Engine, Instance};
use berth_provider_aws::s3::{Bucket, CorsRule, Encryption, Ownership, PublicAccessBlock, SseAlgorithm, Versioning};
use berth_provider_builtin::random::Password;
use serde_json::json;

use crate::edxapp::Ctx;
use crate::edxapp::config::Environment;
use crate::edxapp::kube;

/// The buckets, by purpose, and the policy that grants the application access to them.
pub struct Buckets {
    /// purpose → bucket name.
    pub names: BTreeMap<String, String>,
    pub policy_arn: Output<String>,
}

pub const BUCKET_PURPOSES: [&str; 5] = ["mfe", "storage", "courses", "grades", "tracking"];

fn public_read(bucket: &str, prefix: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{"Sid": "PublicRead", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{bucket}/{prefix}*")}]
    })
    .to_string()
}

/// The five edxapp buckets and the IAM policy for them.
pub fn buckets(stack: &mut Stack, ctx: &Ctx) -> ProgramResult<Buckets> {
    let domains = &ctx.config.domains;
    let origins = vec![format!("https://{}", domains.lms), format!("https://{}", domains.studio), format!("https://{}", domains.preview)];
    let cors = vec![CorsRule {
        allowed_methods: vec!["GET".into(), "HEAD".into()],
        allowed_origins: origins,
        allowed_headers: vec!["*".into()],
        max_age_seconds: Some(3000),
        ..CorsRule::default()
    }];
    let names: BTreeMap<String, String> = BUCKET_PURPOSES.iter().map(|p| (p.to_string(), format!("{}-edxapp-{p}", ctx.env_name))).collect();
    let private =
        PublicAccessBlock { block_public_acls: true, ignore_public_acls: true, block_public_policy: true, restrict_public_buckets: true };
    // Public objects are served by policy, never by ACL.
    let policy_public =
        PublicAccessBlock { block_public_acls: true, ignore_public_acls: true, block_public_policy: false, restrict_public_buckets: false };
    stack.component("edxapp:index:Buckets", "buckets", Options::new(), |stack, _| -> ProgramResult<Buckets> {
        let mut arns: Vec<Output<String>> = Vec::new();
        for purpose in BUCKET_PURPOSES {
            let name = names[purpose].clone();
            let mut bucket = Bucket {
                bucket: Some(name.clone()),
                ownership: Some(Ownership::BucketOwnerEnforced),
                server_side_encryption: Some(Encryption { algorithm: SseAlgorithm::Aes256, ..Encryption::default() }),
                public_access_block: Some(private.clone()),
                tags: ctx.tags(),
                ..Bucket::default()
            };
            match purpose {
                "mfe" => {
                    bucket.versioning = Some(Versioning::Suspended);
                    bucket.public_access_block = Some(policy_public.clone());
                    bucket.policy = Some(public_read(&name, "").into());
                    bucket.cors_rules = Some(cors.clone());
                }
                "storage" => {
                    bucket.versioning = Some(Versioning::Enabled);
                    bucket.public_access_block = Some(policy_public.clone());
                    bucket.policy = Some(public_read(&name, "media/video-images/").into());
                    bucket.cors_rules = Some(cors.clone());
                }
                "tracking" => {
                    bucket.versioning = Some(Versioning::Enabled);
                    bucket.server_side_encryption = Some(Encryption { algorithm: SseAlgorithm::Kms, ..Encryption::default() });
                }
                _ => bucket.versioning = Some(Versioning::Enabled),
            }
            // Production data must survive a destroy of the stack by mistake.
            let options = if ctx.config.environment == Environment::Production { Options::new().protect() } else { Options::new() };
            let handle = stack.register(purpose, bucket, options)?;
            arns.push(handle.output("arn"));
        }
        let document = Output::all(&arns).map(|arns: Vec<String>| {
            let objects: Vec<String> = arns.iter().map(|a| format!("{a}/*")).collect();
            json!({
                "Version": "2012-10-17",
                "Statement": [
                    {"Sid": "Buckets", "Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": arns},
                    {"Sid": "Objects", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:PutObjectAcl"], "Resource": objects},
                    {"Sid": "Mail", "Effect": "Allow", "Action": ["ses:SendEmail", "ses:SendRawEmail"], "Resource": "*"}
                ]
            })
            .to_string()
        });
        let policy = stack.register(
            "app-policy",
            Policy {
                name: Some(format!("edxapp-policy-{}", ctx.env_name)),
                path: format!("/ol-applications/edxapp/{}/{}/", ctx.config.deployment, ctx.config.environment.as_str()),
                description: Some(format!("What the edxapp pods of {} may do in AWS", ctx.env_name)),
                policy: document.into(),
                tags: ctx.tags(),
            },
            Options::new(),
        )?;
        Ok(Buckets { names: names.clone(), policy_arn: policy.output("arn") })
    })
}

/// The security groups' ids.
pub struct Groups {
    pub pods: Output<String>,
    pub database: Output<String>,
    pub cache: Output<String>,
}

/// The pod group, and the database and cache groups open to it and to the pod CIDRs.
pub fn security_groups(stack: &mut Stack, ctx: &Ctx) -> ProgramResult<Groups> {
    stack.component("edxapp:index:SecurityGroups", "security-groups", Options::new(), |stack, _| -> ProgramResult<Groups> {
        let vpc: Input<String> = ctx.network.vpc_id.clone().into();
        let pods = stack.register(
            "pods",
            SecurityGroup {
                name: Some(format!("edxapp-{}", ctx.env_name)),
                description: format!("edxapp pods of {}", ctx.env_name),
                vpc_id: vpc.clone(),
                ingress: vec![Rule {
                    protocol: "tcp".into(),
                    from_port: Some(8000),
                    to_port: Some(8000),
                    cidr_ipv4: Some(ctx.network.vpc_cidr.clone().into()),
                    description: Some("webapps from the VPC".into()),
                    ..Rule::default()
                }],
                tags: ctx.tags(),
                ..SecurityGroup::default()
            },
            Options::new(),
        )?;
        let opened = |port: i32| {
            let mut rules = vec![Rule::tcp_from_group(port, pods.output::<String>("id"))];
            rules.extend(
                ctx.network.pod_cidrs.iter().map(|cidr| Rule { description: Some("pods".into()), ..Rule::tcp_from_cidr(port, cidr) }),
            );
            rules
        };
        let database = stack.register(
            "database",
            SecurityGroup {
                name: Some(format!("edxapp-db-{}", ctx.env_name)),
                description: format!("edxapp database of {}", ctx.env_name),
                vpc_id: vpc.clone(),
                ingress: opened(3306),
                tags: ctx.tags(),
                ..SecurityGroup::default()
            },
            Options::new(),
        )?;
        let cache = stack.register(
            "cache",
            SecurityGroup {
                name: Some(format!("edxapp-cache-{}", ctx.env_name)),
                description: format!("edxapp cache of {}", ctx.env_name),
                vpc_id: vpc,
                ingress: opened(6379),
                tags: ctx.tags(),
                ..SecurityGroup::default()
            },
            Options::new(),
        )?;
        // Security groups for pods: the VPC resource controller gives every edxapp pod of this
        // environment (webapps, workers, Jobs) the pod group, which the database and cache admit.
        let selector = json!({"matchLabels": {"app.kubernetes.io/name": "edxapp", "app.kubernetes.io/instance": ctx.env_name}});
        kube::custom(
            stack,
            &kube::token(kube::VPC_RESOURCES, "SecurityGroupPolicy"),
            "pod-security-group-policy",
            &kube::meta(ctx, &format!("{}-edxapp-pods", ctx.env_name), "security-groups"),
            kube::spec_from(
                &pods.output::<String>("id"),
                move |id: String| json!({"podSelector": selector, "securityGroups": {"groupIds": [id]}}),
            ),
            Options::new(),
        )?;
        Ok(Groups { pods: pods.output("id"), database: database.output("id"), cache: cache.output("id") })
    })
}

/// The database's address and its administrator.
pub struct Database {
    pub address: Output<String>,
    pub port: Output<i32>,
    pub admin_user: String,
    /// Secret.
    pub admin_password: Output<String>,
}

/// MariaDB with a utf8mb4/UTC parameter group in the network's subnets.
pub fn database(stack: &mut Stack, ctx: &Ctx, groups: &Groups) -> ProgramResult<Database> {
    let db = &ctx.config.database;
    let family = format!("mariadb{}", db.engine_version.split('.').take(2).collect::<Vec<_>>().join("."));
    stack.component("edxapp:index:Database", "database", Options::new(), |stack, _| -> ProgramResult<Database> {
        let parameters = stack.register(
            "parameters",
            rds::ParameterGroup {
                name: Some(format!("{}-edxapp-mariadb", ctx.env_name)),
                family: family.clone(),
                description: format!("edxapp MariaDB of {}: utf8mb4, UTC", ctx.env_name),
                parameters: [
                    ("character_set_server", "utf8mb4"),
                    ("collation_server", "utf8mb4_unicode_ci"),
                    ("character_set_client", "utf8mb4"),
                    ("time_zone", "UTC"),
                ]
                .iter()
                .map(|(name, value)| DbParameter { name: name.to_string(), value: value.to_string(), ..DbParameter::default() })
                .collect(),
                tags: ctx.tags(),
            },
            Options::new(),
        )?;
        let subnets = stack.register(
            "subnets",
            rds::SubnetGroup {
                name: Some(format!("{}-edxapp-db", ctx.env_name)),
                description: format!("edxapp database subnets of {}", ctx.env_name),
                subnet_ids: ctx.network.subnet_ids.clone(),
                tags: ctx.tags(),
            },
            Options::new(),
        )?;
        let password: Output<String> = match &db.password {
            Some(configured) => Output::known(configured.expose().clone()).secret(),
            None => {
                // RDS refuses `/`, `"`, `@` and spaces: letters and digits are plenty at 32.
                let generated =
                    stack.register("master-password", Password { length: 32, special: false, ..Password::default() }, Options::new())?;
                generated.output("result")
            }
        };
        let production = ctx.config.environment == Environment::Production;
        let identifier = format!("{}-edxapp-db", ctx.env_name);
        let admin_user = "edxapp_admin".to_string();
        let options = if db.deletion_protection { Options::new().protect() } else { Options::new() };
        let instance = stack.register(
            "instance",
            Instance {
                identifier: Some(identifier.clone()),
                engine: Engine::Mariadb,
                engine_version: db.engine_version.clone(),
                instance_class: db.instance_type.clone(),
                allocated_storage: db.storage_gb as i32,
                max_allocated_storage: Some(db.max_storage_gb as i32),
                db_name: Some("edxapp".into()),
                username: admin_user.clone(),
                password: password.map(Secret::new).into(),
                multi_az: db.multi_az,
                backup_retention_period: db.backup_days as i32,
                parameter_group_name: Some(parameters.output::<String>("name").into()),
                subnet_group_name: Some(subnets.output::<String>("name").into()),
                vpc_security_group_ids: vec![groups.database.clone().into()],
                storage_encrypted: true,
                deletion_protection: db.deletion_protection,
                skip_final_snapshot: !production,
                final_snapshot_identifier: production.then(|| format!("{identifier}-final")),
                tags: ctx.tags(),
                ..Instance::default()
            },
            options,
        )?;
        Ok(Database { address: instance.output("address"), port: instance.output("port"), admin_user, admin_password: password })
    })
}

/// The cache's address and auth token.
pub struct Cache {
    pub address: Output<String>,
    pub port: i32,
    /// Secret.
    pub token: Output<String>,
}

/// A Valkey replication group with TLS, at-rest encryption and an auth token.
pub fn cache(stack: &mut Stack, ctx: &Ctx, groups: &Groups) -> ProgramResult<Cache> {
    let cfg = &ctx.config.cache;
    let engine = if cfg.engine == "redis" { CacheEngine::Redis } else { CacheEngine::Valkey };
    let major = cfg.engine_version.split('.').next().unwrap_or("7");
    let family = format!("{}{major}", cfg.engine);
    stack.component("edxapp:index:Cache", "cache", Options::new(), |stack, _| -> ProgramResult<Cache> {
        let parameters = stack.register(
            "parameters",
            elasticache::ParameterGroup {
                name: Some(format!("{}-edxapp-cache", ctx.env_name)),
                family: family.clone(),
                description: format!("edxapp cache of {}: evict least recently used keys", ctx.env_name),
                parameters: [("maxmemory-policy".to_string(), "allkeys-lru".to_string())].into(),
                tags: ctx.tags(),
            },
            Options::new(),
        )?;
        let subnets = stack.register(
            "subnets",
            elasticache::SubnetGroup {
                name: Some(format!("{}-edxapp-cache", ctx.env_name)),
                description: format!("edxapp cache subnets of {}", ctx.env_name),
                subnet_ids: ctx.network.subnet_ids.clone(),
                tags: ctx.tags(),
            },
            Options::new(),
        )?;
        let token: Output<String> = match &cfg.auth_token {
            Some(configured) => Output::known(configured.expose().clone()).secret(),
            None => {
                // ElastiCache tokens take printable ASCII but not `@`, `"` or `/`: letters and digits.
                let generated =
                    stack.register("auth-token", Password { length: 64, special: false, ..Password::default() }, Options::new())?;
                generated.output("result")
            }
        };
        let replicated = cfg.nodes > 1;
        let group = stack.register(
            "replication-group",
            ReplicationGroup {
                replication_group_id: Some(format!("{}-edxapp", ctx.env_name)),
                description: format!("edxapp cache of {}", ctx.env_name),
                engine,
                engine_version: cfg.engine_version.clone(),
                node_type: cfg.node_type.clone(),
                num_cache_clusters: cfg.nodes as i32,
                parameter_group_name: Some(parameters.output::<String>("name").into()),
                subnet_group_name: Some(subnets.output::<String>("name").into()),
                security_group_ids: vec![groups.cache.clone().into()],
                transit_encryption_enabled: true,
                at_rest_encryption_enabled: true,
                auth_token: Some(token.map(Secret::new).into()),
                automatic_failover_enabled: replicated,
                multi_az_enabled: replicated && ctx.config.environment == Environment::Production,
                tags: ctx.tags(),
                ..ReplicationGroup::default()
            },
            Options::new(),
        )?;
        Ok(Cache { address: group.output("primary_endpoint_address"), port: 6379, token })
    })
}

/// `rediss://default:<token>@<address>:<port>/<db>` (secret).
pub fn redis_url(cache: &Cache, db: u8) -> Output<String> {
    let port = cache.port;
    format_output!(
        "rediss://default:{}@{}:{}/{}",
        cache.token,
        cache.address,
        Output::known(port.to_string()),
        Output::known(db.to_string())
    )
    .secret()
}
