//! After a destroy: nothing named after this test's deployment is left anywhere — listed with the
//! backends' own APIs (the AWS SDK, the `bao` CLI, the API server), not read back by id from
//! berth's state, so a resource berth created but never recorded would show too.

use std::process::Command;

use berth_provider_aws::{AwsSettings, Clients};
use berth_provider_kubernetes::kinds::Gvk;

use super::{World, env, resolve};

impl World {
    /// Everything in moto, OpenBao and the API server whose name carries this test's id.
    pub async fn named_after_this_test(&self) -> Vec<String> {
        let id = self.id.as_str();
        let mut left: Vec<String> = Vec::new();
        let mut keep = |what: &str, names: Vec<String>| {
            left.extend(names.into_iter().filter(|n| n.contains(id)).map(|n| format!("{what} {n}")));
        };

        let settings = AwsSettings { endpoint: Some(env("AWS_ENDPOINT_URL")), region: Some("us-east-1".into()), ..AwsSettings::default() };
        let aws = Clients::new(&settings).await.expect("SDK clients for moto");
        let buckets = aws.s3.list_buckets().send().await.unwrap();
        keep("bucket", buckets.buckets().iter().filter_map(|b| b.name().map(str::to_string)).collect());
        let instances = aws.rds.describe_db_instances().send().await.unwrap();
        keep("RDS instance", instances.db_instances().iter().filter_map(|i| i.db_instance_identifier().map(str::to_string)).collect());
        let subnet_groups = aws.rds.describe_db_subnet_groups().send().await.unwrap();
        keep(
            "RDS subnet group",
            subnet_groups.db_subnet_groups().iter().filter_map(|g| g.db_subnet_group_name().map(str::to_string)).collect(),
        );
        let parameter_groups = aws.rds.describe_db_parameter_groups().send().await.unwrap();
        keep(
            "RDS parameter group",
            parameter_groups.db_parameter_groups().iter().filter_map(|g| g.db_parameter_group_name().map(str::to_string)).collect(),
        );
        let groups = aws.elasticache.describe_replication_groups().send().await.unwrap();
        keep(
            "replication group",
            groups.replication_groups().iter().filter_map(|g| g.replication_group_id().map(str::to_string)).collect(),
        );
        let cache_subnets = aws.elasticache.describe_cache_subnet_groups().send().await.unwrap();
        keep(
            "cache subnet group",
            cache_subnets.cache_subnet_groups().iter().filter_map(|g| g.cache_subnet_group_name().map(str::to_string)).collect(),
        );
        let cache_parameters = aws.elasticache.describe_cache_parameter_groups().send().await.unwrap();
        keep(
            "cache parameter group",
            cache_parameters.cache_parameter_groups().iter().filter_map(|g| g.cache_parameter_group_name().map(str::to_string)).collect(),
        );
        let security_groups = aws.ec2.describe_security_groups().send().await.unwrap();
        keep("security group", security_groups.security_groups().iter().filter_map(|g| g.group_name().map(str::to_string)).collect());
        let roles = aws.iam.list_roles().send().await.unwrap();
        keep("role", roles.roles().iter().map(|r| r.role_name().to_string()).collect());
        let policies = aws.iam.list_policies().scope(aws_sdk_iam::types::PolicyScopeType::Local).send().await.unwrap();
        keep("policy", policies.policies().iter().filter_map(|p| p.policy_name().map(str::to_string)).collect());
        let providers = aws.iam.list_open_id_connect_providers().send().await.unwrap();
        keep("OIDC provider", providers.open_id_connect_provider_list().iter().filter_map(|p| p.arn().map(str::to_string)).collect());

        for (what, args) in
            [("Vault mount", ["secrets", "list"]), ("Vault auth method", ["auth", "list"]), ("Vault policy", ["policy", "list"])]
        {
            let out = Command::new(env("BERTH_BAO"))
                .args(args)
                .args(["-format=json"])
                .env("VAULT_ADDR", env("VAULT_ADDR"))
                .env("VAULT_TOKEN", env("VAULT_TOKEN"))
                .output()
                .unwrap();
            assert!(out.status.success(), "bao {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let names: Vec<String> = match listed {
                serde_json::Value::Object(map) => map.keys().cloned().collect(),
                serde_json::Value::Array(items) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
                _ => Vec::new(),
            };
            keep(what, names);
        }

        for (group, version, kind) in [("", "v1", "Namespace"), ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding")] {
            let target = resolve(&self.cluster, &Gvk::new(group, version, kind)).await;
            let objects = self.cluster.list(&target, None, "").await.unwrap();
            keep(kind, objects.iter().filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string)).collect());
        }
        left
    }

    /// Destroys the stacks (proving each resource gone by id), then lists the backends: what was
    /// named after this test before (the listing finds it) is all gone after.
    pub async fn destroy_and_prove_nothing_left(&self) {
        let before = self.named_after_this_test().await;
        assert!(before.len() > 20, "the listing sees this test's resources: {before:?}");
        self.destroy_and_prove_gone();
        let after = self.named_after_this_test().await;
        assert!(after.is_empty(), "left after destroy:\n{}", after.join("\n"));
    }
}
