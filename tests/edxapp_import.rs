//! Adopting an edxapp deployment that already exists, on the testbed: a fixture builds its AWS
//! footprint with the SDK directly (as another tool or a person would have: RDS with its subnet
//! and parameter groups, a replication group with its own, five buckets with their settings, a
//! role and policy, three security groups), then `stack import --discover` finds it, `--file`
//! imports it, `preview` names exactly the fields where it differs from the stack's
//! configuration (with both values), and once they agree, `preview` shows no AWS change and `up`
//! makes no mutating AWS call while it builds the rest (Vault, Kubernetes) around it.

mod support;

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, Tag as Ec2Tag, TagSpecification, UserIdGroupPair};
use aws_sdk_elasticache::types::{ParameterNameValue, Tag as CacheTag};
use aws_sdk_rds::types::{ApplyMethod, Parameter, Tag as RdsTag};
use aws_sdk_s3::types::{
    BucketVersioningStatus, CorsConfiguration, CorsRule, ObjectOwnership, OwnershipControls, OwnershipControlsRule,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
    ServerSideEncryptionRule, Tag as S3Tag, Tagging, VersioningConfiguration,
};
use berth_provider_aws::{AwsSettings, Clients};
use berth_provider_kubernetes::testing::FakeKubelet;
use serde_json::{Value as Json, json};
use support::*;

const DB_PASSWORD: &str = "Fixture-DB-Passw0rd-4821";
const CACHE_TOKEN: &str = "Fixture-Cache-Token-000-1234567890";

/// What the fixture made, for the test to change and check.
struct Footprint {
    database_group: String,
}

async fn clients() -> Clients {
    let settings = AwsSettings { endpoint: Some(env("AWS_ENDPOINT_URL")), region: Some("us-east-1".into()), ..AwsSettings::default() };
    Clients::new(&settings).await.expect("SDK clients for moto")
}

/// The footprint of deployment `id` in environment `local`, as the original program names it:
/// everything as the stack's configuration says, except the database's instance class
/// (`db.t4g.medium`, the stack says `db.t4g.small`) and one more ingress rule on the database's
/// security group.
async fn build_footprint(aws: &Clients, id: &str, network: &Json, cluster: &Json) -> Footprint {
    let env = format!("{id}-local");
    let tags: BTreeMap<&str, &str> = [("application", "edxapp"), ("deployment", id), ("environment", "local")].into();
    let vpc = network["vpc_id"].as_str().unwrap();
    let subnets: Vec<String> = network["subnet_ids"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
    let pod_cidr = network["pod_cidrs"][0].as_str().unwrap();

    // Security groups.
    let ec2_tags = TagSpecification::builder()
        .resource_type(ResourceType::SecurityGroup)
        .set_tags(Some(tags.iter().map(|(k, v)| Ec2Tag::builder().key(*k).value(*v).build()).collect()))
        .build();
    let group = |name: String, description: String| {
        let ec2 = aws.ec2.clone();
        let tags = ec2_tags.clone();
        async move {
            let created = ec2
                .create_security_group()
                .group_name(name)
                .description(description)
                .vpc_id(vpc)
                .tag_specifications(tags)
                .send()
                .await
                .unwrap();
            created.group_id().unwrap().to_string()
        }
    };
    let tcp = |port: i32| IpPermission::builder().ip_protocol("tcp").from_port(port).to_port(port);
    let pods = group(format!("edxapp-{env}"), format!("edxapp pods of {env}")).await;
    aws.ec2
        .authorize_security_group_ingress()
        .group_id(&pods)
        .ip_permissions(
            tcp(8000)
                .ip_ranges(IpRange::builder().cidr_ip(network["vpc_cidr"].as_str().unwrap()).description("webapps from the VPC").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut opened = BTreeMap::new();
    for (purpose, what, port) in [("db", "database", 3306), ("cache", "cache", 6379)] {
        let id = group(format!("edxapp-{purpose}-{env}"), format!("edxapp {what} of {env}")).await;
        let mut ranges = vec![IpRange::builder().cidr_ip(pod_cidr).description("pods").build()];
        if purpose == "db" {
            ranges.push(IpRange::builder().cidr_ip("10.99.0.0/16").description("a bastion someone added").build());
        }
        aws.ec2
            .authorize_security_group_ingress()
            .group_id(&id)
            .ip_permissions(tcp(port).user_id_group_pairs(UserIdGroupPair::builder().group_id(&pods).build()).build())
            .ip_permissions(tcp(port).set_ip_ranges(Some(ranges)).build())
            .send()
            .await
            .unwrap();
        opened.insert(purpose, id);
    }

    // The database.
    let rds_tags: Vec<RdsTag> = tags.iter().map(|(k, v)| RdsTag::builder().key(*k).value(*v).build()).collect();
    aws.rds
        .create_db_parameter_group()
        .db_parameter_group_name(format!("{env}-edxapp-mariadb"))
        .db_parameter_group_family("mariadb11.4")
        .description(format!("edxapp MariaDB of {env}: utf8mb4, UTC"))
        .set_tags(Some(rds_tags.clone()))
        .send()
        .await
        .unwrap();
    let parameters: Vec<Parameter> = [
        ("character_set_server", "utf8mb4"),
        ("collation_server", "utf8mb4_unicode_ci"),
        ("character_set_client", "utf8mb4"),
        ("time_zone", "UTC"),
    ]
    .iter()
    .map(|(name, value)| Parameter::builder().parameter_name(*name).parameter_value(*value).apply_method(ApplyMethod::Immediate).build())
    .collect();
    aws.rds
        .modify_db_parameter_group()
        .db_parameter_group_name(format!("{env}-edxapp-mariadb"))
        .set_parameters(Some(parameters))
        .send()
        .await
        .unwrap();
    aws.rds
        .create_db_subnet_group()
        .db_subnet_group_name(format!("{env}-edxapp-db"))
        .db_subnet_group_description(format!("edxapp database subnets of {env}"))
        .set_subnet_ids(Some(subnets.clone()))
        .set_tags(Some(rds_tags.clone()))
        .send()
        .await
        .unwrap();
    aws.rds
        .create_db_instance()
        .db_instance_identifier(format!("{env}-edxapp-db"))
        .engine("mariadb")
        .engine_version("11.4")
        .db_instance_class("db.t4g.medium")
        .allocated_storage(20)
        .max_allocated_storage(100)
        .storage_type("gp3")
        .db_name("edxapp")
        .master_username("edxapp_admin")
        .master_user_password(DB_PASSWORD)
        .port(3306)
        .multi_az(false)
        .backup_retention_period(1)
        .db_parameter_group_name(format!("{env}-edxapp-mariadb"))
        .db_subnet_group_name(format!("{env}-edxapp-db"))
        .vpc_security_group_ids(&opened["db"])
        .storage_encrypted(true)
        .deletion_protection(false)
        .publicly_accessible(false)
        .set_tags(Some(rds_tags))
        .send()
        .await
        .unwrap();

    // The cache.
    let cache_tags: Vec<CacheTag> = tags.iter().map(|(k, v)| CacheTag::builder().key(*k).value(*v).build()).collect();
    aws.elasticache
        .create_cache_parameter_group()
        .cache_parameter_group_name(format!("{env}-edxapp-cache"))
        .cache_parameter_group_family("valkey7")
        .description(format!("edxapp cache of {env}: evict least recently used keys"))
        .set_tags(Some(cache_tags.clone()))
        .send()
        .await
        .unwrap();
    aws.elasticache
        .modify_cache_parameter_group()
        .cache_parameter_group_name(format!("{env}-edxapp-cache"))
        .parameter_name_values(ParameterNameValue::builder().parameter_name("maxmemory-policy").parameter_value("allkeys-lru").build())
        .send()
        .await
        .unwrap();
    aws.elasticache
        .create_cache_subnet_group()
        .cache_subnet_group_name(format!("{env}-edxapp-cache"))
        .cache_subnet_group_description(format!("edxapp cache subnets of {env}"))
        .set_subnet_ids(Some(subnets))
        .set_tags(Some(cache_tags.clone()))
        .send()
        .await
        .unwrap();
    aws.elasticache
        .create_replication_group()
        .replication_group_id(format!("{env}-edxapp"))
        .replication_group_description(format!("edxapp cache of {env}"))
        .engine("valkey")
        .engine_version("7.2")
        .cache_node_type("cache.t4g.small")
        .num_cache_clusters(1)
        .cache_parameter_group_name(format!("{env}-edxapp-cache"))
        .cache_subnet_group_name(format!("{env}-edxapp-cache"))
        .security_group_ids(&opened["cache"])
        .transit_encryption_enabled(true)
        .at_rest_encryption_enabled(true)
        .auth_token(CACHE_TOKEN)
        .automatic_failover_enabled(false)
        .multi_az_enabled(false)
        .set_tags(Some(cache_tags))
        .send()
        .await
        .unwrap();

    // The buckets.
    let domains = ["lms.local.test", "studio.local.test", "preview.local.test"];
    let mut arns = Vec::new();
    for purpose in ["mfe", "storage", "courses", "grades", "tracking"] {
        let bucket = format!("{env}-edxapp-{purpose}");
        arns.push(format!("arn:aws:s3:::{bucket}"));
        aws.s3.create_bucket().bucket(&bucket).object_ownership(ObjectOwnership::BucketOwnerEnforced).send().await.unwrap();
        aws.s3
            .put_bucket_ownership_controls()
            .bucket(&bucket)
            .ownership_controls(
                OwnershipControls::builder()
                    .rules(OwnershipControlsRule::builder().object_ownership(ObjectOwnership::BucketOwnerEnforced).build().unwrap())
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let algorithm = if purpose == "tracking" { ServerSideEncryption::AwsKms } else { ServerSideEncryption::Aes256 };
        aws.s3
            .put_bucket_encryption()
            .bucket(&bucket)
            .server_side_encryption_configuration(
                ServerSideEncryptionConfiguration::builder()
                    .rules(
                        ServerSideEncryptionRule::builder()
                            .apply_server_side_encryption_by_default(
                                ServerSideEncryptionByDefault::builder().sse_algorithm(algorithm).build().unwrap(),
                            )
                            .build(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let public = matches!(purpose, "mfe" | "storage");
        aws.s3
            .put_public_access_block()
            .bucket(&bucket)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(!public)
                    .restrict_public_buckets(!public)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let versioning = if purpose == "mfe" { BucketVersioningStatus::Suspended } else { BucketVersioningStatus::Enabled };
        aws.s3
            .put_bucket_versioning()
            .bucket(&bucket)
            .versioning_configuration(VersioningConfiguration::builder().status(versioning).build())
            .send()
            .await
            .unwrap();
        if public {
            let prefix = if purpose == "storage" { "media/video-images/" } else { "" };
            let policy = json!({"Version": "2012-10-17", "Statement": [{"Sid": "PublicRead", "Effect": "Allow", "Principal": "*",
                                "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{bucket}/{prefix}*")}]});
            aws.s3.put_bucket_policy().bucket(&bucket).policy(policy.to_string()).send().await.unwrap();
            let origins: Vec<String> = domains.iter().map(|d| format!("https://{d}")).collect();
            let rule = CorsRule::builder()
                .allowed_methods("GET")
                .allowed_methods("HEAD")
                .set_allowed_origins(Some(origins))
                .allowed_headers("*")
                .max_age_seconds(3000)
                .build()
                .unwrap();
            aws.s3
                .put_bucket_cors()
                .bucket(&bucket)
                .cors_configuration(CorsConfiguration::builder().cors_rules(rule).build().unwrap())
                .send()
                .await
                .unwrap();
        }
        let tagging = Tagging::builder()
            .set_tag_set(Some(tags.iter().map(|(k, v)| S3Tag::builder().key(*k).value(*v).build().unwrap()).collect()))
            .build()
            .unwrap();
        aws.s3.put_bucket_tagging().bucket(&bucket).tagging(tagging).send().await.unwrap();
    }

    // The application's policy and role.
    let iam_tags: Vec<aws_sdk_iam::types::Tag> =
        tags.iter().map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(*k).value(*v).build().unwrap()).collect();
    let objects: Vec<String> = arns.iter().map(|a| format!("{a}/*")).collect();
    let document = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "Buckets", "Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": arns},
        {"Sid": "Objects", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:PutObjectAcl"], "Resource": objects},
        {"Sid": "Mail", "Effect": "Allow", "Action": ["ses:SendEmail", "ses:SendRawEmail"], "Resource": "*"}
    ]});
    let policy = aws
        .iam
        .create_policy()
        .policy_name(format!("edxapp-policy-{env}"))
        .path(format!("/ol-applications/edxapp/{id}/local/"))
        .description(format!("What the edxapp pods of {env} may do in AWS"))
        .policy_document(document.to_string())
        .set_tags(Some(iam_tags.clone()))
        .send()
        .await
        .unwrap();
    let issuer = cluster["oidc_issuer"].as_str().unwrap();
    let trust = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": cluster["oidc_provider_arn"]},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            format!("{issuer}:aud"): "sts.amazonaws.com",
            format!("{issuer}:sub"): format!("system:serviceaccount:{id}-openedx:edxapp-vault")
        }}
    }]});
    let role = format!("edxapp-trustrole-{env}");
    aws.iam
        .create_role()
        .role_name(&role)
        .path("/ol-infrastructure/eks/local/")
        .assume_role_policy_document(trust.to_string())
        .description(format!("edxapp pods of {env} (service account edxapp-vault)"))
        .set_tags(Some(iam_tags))
        .send()
        .await
        .unwrap();
    aws.iam.attach_role_policy().role_name(&role).policy_arn(policy.policy().unwrap().arn().unwrap()).send().await.unwrap();
    Footprint { database_group: opened["db"].clone() }
}

fn aws_steps(plan: &Json) -> Vec<&Json> {
    plan["steps"].as_array().unwrap().iter().filter(|s| s["type"].as_str().unwrap().starts_with("aws:")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_footprint_is_discovered_imported_and_adopted_without_changes() {
    let w = World::new("imp").await;
    let _kubelet = FakeKubelet::start(w.cluster.clone(), &w.namespace);
    w.up_foundations();
    let output = |stack: &str| {
        let run = w.berth(&["stack", "output", stack, "--json"]);
        run.assert_ok();
        run.json()
    };
    let aws = clients().await;
    let footprint = build_footprint(&aws, &w.id, &output("network.local"), &output("cluster.local")).await;
    let image = digest(7);
    let secrets = [format!("edxapp.database.password={DB_PASSWORD}"), format!("edxapp.cache.auth_token={CACHE_TOKEN}")];
    let with_secrets = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        for s in &secrets {
            args.extend(["--config".to_string(), s.clone()]);
        }
        args
    };

    // Discover: the whole AWS footprint, by the names the program gives it; nothing imported.
    let import_file = w.state.path().join("local.import.json");
    let namespace = format!("edxapp.namespace={}", w.namespace);
    let digest_override = format!("edxapp.image.digest={image}");
    let discover = w.berth(&[
        "stack",
        "import",
        "local",
        "--discover",
        "edxapp",
        "--deployment",
        &w.id,
        "--config",
        &namespace,
        "--config",
        &digest_override,
        "--out",
        import_file.to_str().unwrap(),
    ]);
    discover.assert_ok();
    let listed: Json = serde_json::from_str(&std::fs::read_to_string(&import_file).unwrap()).unwrap();
    let mut types: Vec<&str> = listed["resources"].as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
    types.sort();
    assert_eq!(
        types,
        vec![
            "aws:ec2:SecurityGroup",
            "aws:ec2:SecurityGroup",
            "aws:ec2:SecurityGroup",
            "aws:elasticache:ParameterGroup",
            "aws:elasticache:ReplicationGroup",
            "aws:elasticache:SubnetGroup",
            "aws:iam:Policy",
            "aws:iam:Role",
            "aws:iam:RolePolicyAttachment",
            "aws:rds:Instance",
            "aws:rds:ParameterGroup",
            "aws:rds:SubnetGroup",
            "aws:s3:Bucket",
            "aws:s3:Bucket",
            "aws:s3:Bucket",
            "aws:s3:Bucket",
            "aws:s3:Bucket",
        ],
        "{}",
        discover.describe()
    );
    assert!(
        discover.stdout().contains("Found 17 existing resources") && !discover.stdout().contains("Not found"),
        "{}",
        discover.describe()
    );
    assert!(!w.state.path().join("local.json").exists(), "discovery records nothing");

    // Bad imports change nothing: a missing id, a wrong type, a name already in state.
    let state_before = std::fs::read(w.state.path().join("network.local.json")).unwrap();
    // The id of an existing resource of another type (a bucket), given as an RDS instance.
    let bucket = format!("{}-local-edxapp-storage", w.id);
    for (args, says) in [
        (vec!["stack", "import", "network.local", "aws:rds:Instance", "db", bucket.as_str()], "no aws:rds:Instance with id"),
        (vec!["stack", "import", "network.local", "aws:s3:Bucket", "nope", "no-such-bucket-berth-test"], "no aws:s3:Bucket with id"),
        (vec!["stack", "import", "network.local", "aws:s3:Bukket", "nope", "x"], "aws:s3:Bukket"),
        (vec!["stack", "import", "network.local", "aws:ec2:Vpc", "vpc", "vpc-0123456789abcdef0"], "already in state"),
    ] {
        let run = w.berth(&args);
        assert!(!run.ok() && run.stderr().contains(says), "{}", run.describe());
    }
    assert_eq!(std::fs::read(w.state.path().join("network.local.json")).unwrap(), state_before, "state unchanged");

    // Import all of it, with the configuration that reproduces it.
    let generated = w.state.path().join("imported.yaml");
    w.berth(&["stack", "import", "local", "--file", import_file.to_str().unwrap(), "--generate-config", generated.to_str().unwrap()])
        .assert_ok();
    let config = std::fs::read_to_string(&generated).unwrap();
    assert!(config.contains("instance_type: db.t4g.medium") && config.contains("node_type: cache.t4g.small"), "{config}");
    assert!(config.contains("backup_days: 1") && config.contains("storage_gb: 20"), "{config}");
    let again = w.berth(&["stack", "import", "local", "--file", import_file.to_str().unwrap()]);
    again.assert_ok();
    assert!(again.stdout().contains("Nothing to do"), "idempotent: {}", again.describe());

    // Where the live resources differ from the stack, the preview names exactly those fields,
    // with both values.
    let preview = w.stack("preview", "local", &image, &with_secrets(&["--json"]).iter().map(String::as_str).collect::<Vec<_>>());
    preview.assert_ok();
    let plan = preview.json();
    let changed: Vec<(String, String, Vec<String>)> = aws_steps(&plan)
        .into_iter()
        .filter(|s| s["op"] != "same")
        .map(|s| {
            let paths = s["diffs"].as_array().unwrap().iter().map(|d| d["path"].as_str().unwrap().to_string()).collect();
            (s["name"].as_str().unwrap().to_string(), s["op"].as_str().unwrap().to_string(), paths)
        })
        .collect();
    assert_eq!(
        changed,
        vec![
            ("database".to_string(), "update".to_string(), vec!["ingress[2]".to_string()]),
            ("instance".to_string(), "update".to_string(), vec!["instance_class".to_string()]),
        ],
        "{}",
        preview.stdout()
    );
    let text = w.stack("preview", "local", &image, &with_secrets(&["--diff"]).iter().map(String::as_str).collect::<Vec<_>>());
    let said = text.stdout();
    assert!(said.contains("db.t4g.medium") && said.contains("db.t4g.small"), "{said}");
    assert!(said.contains("10.99.0.0/16"), "the extra rule is shown: {said}");
    for secret in [DB_PASSWORD, CACHE_TOKEN] {
        assert!(!said.contains(secret) && !text.stderr().contains(secret), "a secret in the preview");
    }

    // Agree with it (the stack takes the live class; the stray rule goes), and nothing is left
    // to change in AWS: the preview shows no AWS change, and `up` makes no mutating AWS call
    // while it builds the rest of the deployment around the adopted resources.
    aws.ec2
        .revoke_security_group_ingress()
        .group_id(&footprint.database_group)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(3306)
                .to_port(3306)
                .ip_ranges(IpRange::builder().cidr_ip("10.99.0.0/16").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let agreed = with_secrets(&["--config", "edxapp.database.instance_type=db.t4g.medium"]);
    let mut args: Vec<&str> = vec!["--json", "--refresh"];
    args.extend(agreed.iter().map(String::as_str));
    let preview = w.stack("preview", "local", &image, &args);
    preview.assert_ok();
    let plan = preview.json();
    let not_same: Vec<String> =
        aws_steps(&plan).iter().filter(|s| s["op"] != "same").map(|s| format!("{} {}", s["name"], s["op"])).collect();
    assert!(not_same.is_empty(), "{not_same:?}\n{}", preview.stdout());
    let recorded: Vec<&Json> = aws_steps(&plan).into_iter().filter(|s| !s["state_only_changes"].as_array().unwrap().is_empty()).collect();
    assert!(
        recorded.iter().any(|s| s["name"] == "instance") && recorded.iter().any(|s| s["name"] == "replication-group"),
        "the password and AUTH token are recorded, not applied: {}",
        preview.stdout()
    );

    let proxy = proxy::Proxy::start(&env("AWS_ENDPOINT_URL"));
    let watched = World { aws_endpoint: proxy.url.clone(), ..w };
    let mut args: Vec<&str> = vec!["--yes"];
    args.extend(agreed.iter().map(String::as_str));
    let up = watched.stack("up", "local", &image, &args);
    up.assert_ok();
    assert!(!proxy.calls().is_empty(), "AWS was asked");
    assert_eq!(proxy.mutating_calls(), Vec::<String>::new(), "no mutating AWS call:\n{}", up.stdout());
    let w = World { aws_endpoint: env("AWS_ENDPOINT_URL"), ..watched };
    let mut args: Vec<&str> = vec!["--expect-no-changes"];
    args.extend(agreed.iter().map(String::as_str));
    w.stack("preview", "local", &image, &args).assert_ok();

    // The program decides protection from here on (as with Pulumi): the edxapp stack protects
    // only production data, so `up` recorded the adopted resources as unprotected.
    w.destroy_and_prove_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_named_otherwise_are_found_by_their_tags() {
    let w = World::new("tag").await;
    let aws = clients().await;
    // An older tool named the grades bucket its own way, but tagged it as the components do.
    let legacy = format!("legacy-{}-grades", w.id);
    aws.s3.create_bucket().bucket(&legacy).send().await.unwrap();
    let tags = [("application", "edxapp"), ("deployment", w.id.as_str()), ("environment", "local")];
    let tagging = Tagging::builder()
        .set_tag_set(Some(tags.iter().map(|(k, v)| S3Tag::builder().key(*k).value(*v).build().unwrap()).collect()))
        .build()
        .unwrap();
    aws.s3.put_bucket_tagging().bucket(&legacy).tagging(tagging).send().await.unwrap();
    // Another deployment's bucket with the same name pattern is not a candidate.
    let other = format!("legacy-{}x-grades", w.id);
    aws.s3.create_bucket().bucket(&other).send().await.unwrap();

    let out = w.state.path().join("found.json");
    let namespace = format!("edxapp.namespace={}", w.namespace);
    let run = w.berth(&[
        "stack",
        "import",
        "local",
        "--discover",
        "edxapp",
        "--deployment",
        &w.id,
        "--config",
        &namespace,
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    run.assert_ok();
    let report = run.json();
    let missing = report["missing"].as_array().unwrap();
    let buckets: Vec<&Json> = missing.iter().filter(|m| m["type"] == "aws:s3:Bucket").collect();
    assert_eq!(buckets.len(), 5, "{}", run.describe());
    for b in &buckets {
        assert_eq!(b["tagged"], json!([legacy]), "{}", run.describe());
    }
    assert_eq!(report["found"], json!([]), "nothing is named as the program names it");
    let text = w.berth(&[
        "stack",
        "import",
        "local",
        "--discover",
        "edxapp",
        "--deployment",
        &w.id,
        "--config",
        &namespace,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(text.stdout().contains(&format!("? aws:s3:Bucket {legacy}")), "{}", text.describe());
    for bucket in [&legacy, &other] {
        aws.s3.delete_bucket().bucket(bucket).send().await.unwrap();
    }
}
