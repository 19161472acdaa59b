//! berth's `aws` provider: the AWS resources an Open edX deployment needs, on the official Rust
//! SDK.
//!
//! | type | what |
//! |---|---|
//! | `aws:rds:Instance`, `aws:rds:SubnetGroup`, `aws:rds:ParameterGroup` | MariaDB/MySQL ([`rds`]) |
//! | `aws:elasticache:ReplicationGroup`, `aws:elasticache:SubnetGroup`, `aws:elasticache:ParameterGroup` | Redis/Valkey ([`elasticache`]) |
//! | `aws:s3:Bucket` | a bucket with its settings ([`s3`]) |
//! | `aws:iam:Role`, `aws:iam:Policy`, `aws:iam:RolePolicyAttachment`, `aws:iam:OpenIdConnectProvider` | ([`iam`]) |
//! | `aws:ec2:SecurityGroup` | a security group and its rules ([`ec2`]) |
//!
//! Also the state backend `s3://bucket/prefix` ([`backend`]) and the secrets provider
//! `awskms://<key>` ([`kms`]). The `berth` binary registers [`plugin`], [`backend_factory`] and
//! [`secrets_provider`]; settings come from `providers.aws` in the stack file ([`AwsSettings`]).
//! The user documentation is `docs/providers/aws.md`.

use std::sync::Arc;

use berth_engine::config::ConfigError;
use berth_engine::registry::{ProviderPlugin, ProviderSettings};
use berth_engine::{Package, Provider, ProviderError};

pub mod backend;
pub mod config;
pub mod ec2;
pub mod elasticache;
pub mod error;
pub mod iam;
pub mod kms;
pub mod policy;
pub mod rds;
pub mod s3;
pub mod validate;
pub mod wait;

pub use config::{Aws, AwsSettings, Clients};

/// The package name.
pub const PACKAGE: &str = "aws";

/// Every resource type of the package, served by one set of clients.
pub fn package(aws: Arc<Aws>) -> Package {
    Package::new(PACKAGE)
        .with(s3::BucketProvider { aws: aws.clone() })
        .with(ec2::SecurityGroupProvider { aws: aws.clone() })
        .with(ec2::VpcProvider { aws: aws.clone() })
        .with(ec2::SubnetProvider { aws: aws.clone() })
        .with(iam::RoleProvider { aws: aws.clone() })
        .with(iam::PolicyProvider { aws: aws.clone() })
        .with(iam::RolePolicyAttachmentProvider { aws: aws.clone() })
        .with(iam::OidcProviderProvider { aws: aws.clone() })
        .with(rds::SubnetGroupProvider { aws: aws.clone() })
        .with(rds::ParameterGroupProvider { aws: aws.clone() })
        .with(rds::InstanceProvider { aws: aws.clone() })
        .with(elasticache::SubnetGroupProvider { aws: aws.clone() })
        .with(elasticache::ParameterGroupProvider { aws: aws.clone() })
        .with(elasticache::ReplicationGroupProvider { aws })
}

/// Registers the `aws` package with the `berth` binary.
#[derive(Clone, Copy, Debug, Default)]
pub struct AwsPlugin;

impl ProviderPlugin for AwsPlugin {
    fn package(&self) -> &str {
        PACKAGE
    }

    /// Reads `providers.aws`; calls no API (clients are made on first use).
    fn build(&self, settings: &ProviderSettings) -> Result<Arc<dyn Provider>, ConfigError> {
        let parsed = parse_settings(settings.node.as_ref())?;
        Ok(Arc::new(package(Arc::new(Aws::new(parsed)))))
    }
}

/// Parses a `providers.aws` section (absent or empty: defaults); errors name file, line and key.
pub fn parse_settings(node: Option<&berth_engine::config::Node>) -> Result<AwsSettings, ConfigError> {
    let settings = match node {
        Some(node) if node.kind != berth_engine::config::NodeKind::Null => {
            berth_engine::config::from_node::<AwsSettings>(node, "providers.aws").map(|(value, _)| value)?
        }
        _ => AwsSettings::default(),
    };
    settings.validate().map_err(|e| {
        let mut error = ConfigError::new(e).with_key("providers.aws");
        if let Some(node) = node {
            error = error.at(&node.source);
        }
        error
    })?;
    Ok(settings)
}

/// The `aws` provider plugin.
pub fn plugin() -> Arc<dyn ProviderPlugin> {
    Arc::new(AwsPlugin)
}

/// The `s3://bucket/prefix` state backend.
pub fn backend_factory() -> Arc<dyn berth_engine::state::BackendFactory> {
    Arc::new(backend::S3BackendFactory)
}

/// The `awskms://<key id or alias>` secrets provider.
pub fn secrets_provider() -> Arc<dyn berth_engine::crypto::SecretsProvider> {
    Arc::new(kms::KmsSecretsProvider)
}

/// A create's result as the engine records it (for `with_partial`).
pub(crate) fn created<O: serde::Serialize>(id: &str, outputs: &O) -> Result<berth_engine::Created, ProviderError> {
    let json = serde_json::to_value(outputs).map_err(|e| ProviderError::other(format!("internal error: cannot encode outputs: {e}")))?;
    Ok(berth_engine::Created { id: id.to_string(), outputs: berth_engine::Value::from_json(json) })
}

#[cfg(test)]
mod tests {
    use berth_engine::config::parse_yaml;

    use super::*;

    fn settings(yaml: Option<&str>) -> ProviderSettings {
        ProviderSettings {
            stack: "dev".into(),
            project_root: std::env::temp_dir(),
            node: yaml.map(|y| parse_yaml("stacks/dev.yaml", y).unwrap()),
        }
    }

    #[test]
    fn plugin_reads_settings_without_calling_aws() {
        let provider = AwsPlugin.build(&settings(Some("region: eu-west-1\nendpoint: http://127.0.0.1:1\npoll_interval: 1s\n"))).unwrap();
        for ty in ["aws:s3:Bucket", "aws:rds:Instance", "aws:elasticache:ReplicationGroup", "aws:iam:Role", "aws:ec2:SecurityGroup"] {
            assert!(provider.supports(ty), "{ty}");
        }
        assert!(AwsPlugin.build(&settings(None)).is_ok());
        assert!(AwsPlugin.build(&settings(Some("~"))).is_ok());
        let err = AwsPlugin.build(&settings(Some("regoin: us-east-1\n"))).err().unwrap().to_string();
        assert!(err.contains("regoin"), "{err}");
        let err = AwsPlugin.build(&settings(Some("poll_interval: soon\n"))).err().unwrap().to_string();
        assert!(err.contains("poll_interval"), "{err}");
    }
}
