//! The settings of a bucket, each read and written with its own S3 API.

use aws_sdk_s3::types as s3t;
use berth_engine::{CallContext, Input, ProviderError};
use serde::{Deserialize, Serialize};

use super::Bucket;
use crate::config::Clients;
use crate::error::{build_error, fail, optional};
use crate::validate::{Problems, Tags};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Versioning {
    Enabled,
    Suspended,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SseAlgorithm {
    #[default]
    #[serde(rename = "AES256")]
    Aes256,
    #[serde(rename = "aws:kms")]
    Kms,
}

/// Default encryption of new objects.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    #[serde(default)]
    pub algorithm: SseAlgorithm,
    /// The KMS key (id, ARN or alias) for `aws:kms`; absent: the AWS managed key `aws/s3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<Input<String>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bucket_key_enabled: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicAccessBlock {
    #[serde(default)]
    pub block_public_acls: bool,
    #[serde(default)]
    pub ignore_public_acls: bool,
    #[serde(default)]
    pub block_public_policy: bool,
    #[serde(default)]
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    /// Everything blocked: AWS's default for new buckets.
    pub fn all() -> PublicAccessBlock {
        PublicAccessBlock { block_public_acls: true, ignore_public_acls: true, block_public_policy: true, restrict_public_buckets: true }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsRule {
    pub allowed_methods: Vec<String>,
    pub allowed_origins: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// Who owns objects others upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ownership {
    BucketOwnerEnforced,
    BucketOwnerPreferred,
    ObjectWriter,
}

impl Ownership {
    fn as_sdk(self) -> s3t::ObjectOwnership {
        match self {
            Ownership::BucketOwnerEnforced => s3t::ObjectOwnership::BucketOwnerEnforced,
            Ownership::BucketOwnerPreferred => s3t::ObjectOwnership::BucketOwnerPreferred,
            Ownership::ObjectWriter => s3t::ObjectOwnership::ObjectWriter,
        }
    }
}

const CORS_METHODS: &[&str] = &["GET", "PUT", "HEAD", "POST", "DELETE"];

pub(super) fn check(problems: &mut Problems, inputs: &Bucket) {
    if let Some(sse) = &inputs.server_side_encryption
        && sse.algorithm == SseAlgorithm::Aes256
        && sse.kms_key_id.is_some()
    {
        problems.add("server_side_encryption.kms_key_id", "a KMS key applies only with `algorithm: aws:kms`");
    }
    if let Some(rules) = &inputs.cors_rules {
        if rules.len() > 100 {
            problems.add("cors_rules", "S3 allows at most 100 CORS rules");
        }
        for (i, rule) in rules.iter().enumerate() {
            if rule.allowed_methods.is_empty() || rule.allowed_origins.is_empty() {
                problems.add(&format!("cors_rules[{i}]"), "a CORS rule needs at least one allowed method and one allowed origin");
            }
            for m in &rule.allowed_methods {
                if !CORS_METHODS.contains(&m.as_str()) {
                    problems.add(&format!("cors_rules[{i}].allowed_methods"), format!("`{m}` is not one of {}", CORS_METHODS.join(", ")));
                }
            }
            if rule.max_age_seconds.is_some_and(|s| s < 0) {
                problems.add(&format!("cors_rules[{i}].max_age_seconds"), "must not be negative");
            }
        }
    }
}

fn tag_set(tags: &Tags) -> Result<Vec<s3t::Tag>, ProviderError> {
    tags.iter().map(|(k, v)| s3t::Tag::builder().key(k).value(v).build().map_err(build_error)).collect()
}

/// Makes the bucket's settings those of `new` (changing only what differs from `old`).
pub(super) async fn apply(
    clients: &Clients,
    ctx: &CallContext<'_>,
    bucket: &str,
    old: Option<&Bucket>,
    new: &Bucket,
) -> Result<(), ProviderError> {
    let s3 = &clients.s3;
    // Ownership first: ACL-based settings below depend on it.
    if new.ownership.is_some() && old.is_none_or(|o| o.ownership != new.ownership) {
        if let Some(ownership) = new.ownership {
            let rule = s3t::OwnershipControlsRule::builder().object_ownership(ownership.as_sdk()).build().map_err(build_error)?;
            let controls = s3t::OwnershipControls::builder().rules(rule).build().map_err(build_error)?;
            s3.put_bucket_ownership_controls()
                .bucket(bucket)
                .ownership_controls(controls)
                .send()
                .await
                .map_err(fail(ctx, "PutBucketOwnershipControls"))?;
        }
    } else if new.ownership.is_none() && old.is_some_and(|o| o.ownership.is_some()) {
        s3.delete_bucket_ownership_controls().bucket(bucket).send().await.map_err(fail(ctx, "DeleteBucketOwnershipControls"))?;
    }
    if old.is_none_or(|o| o.public_access_block != new.public_access_block) {
        match &new.public_access_block {
            Some(b) => {
                let config = s3t::PublicAccessBlockConfiguration::builder()
                    .block_public_acls(b.block_public_acls)
                    .ignore_public_acls(b.ignore_public_acls)
                    .block_public_policy(b.block_public_policy)
                    .restrict_public_buckets(b.restrict_public_buckets)
                    .build();
                s3.put_public_access_block()
                    .bucket(bucket)
                    .public_access_block_configuration(config)
                    .send()
                    .await
                    .map_err(fail(ctx, "PutPublicAccessBlock"))?;
            }
            None if old.is_some() => {
                s3.delete_public_access_block().bucket(bucket).send().await.map_err(fail(ctx, "DeletePublicAccessBlock"))?;
            }
            None => {}
        }
    }
    if let Some(v) = new.versioning
        && old.is_none_or(|o| o.versioning != new.versioning)
    {
        let status = match v {
            Versioning::Enabled => s3t::BucketVersioningStatus::Enabled,
            Versioning::Suspended => s3t::BucketVersioningStatus::Suspended,
        };
        let config = s3t::VersioningConfiguration::builder().status(status).build();
        s3.put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(config)
            .send()
            .await
            .map_err(fail(ctx, "PutBucketVersioning"))?;
    }
    if old.is_none_or(|o| o.server_side_encryption != new.server_side_encryption) {
        match &new.server_side_encryption {
            Some(sse) => {
                let algorithm = match sse.algorithm {
                    SseAlgorithm::Aes256 => s3t::ServerSideEncryption::Aes256,
                    SseAlgorithm::Kms => s3t::ServerSideEncryption::AwsKms,
                };
                let key = sse.kms_key_id.as_ref().and_then(|k| k.known().cloned());
                let default = s3t::ServerSideEncryptionByDefault::builder()
                    .sse_algorithm(algorithm)
                    .set_kms_master_key_id(key)
                    .build()
                    .map_err(build_error)?;
                let rule = s3t::ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(default)
                    .bucket_key_enabled(sse.bucket_key_enabled)
                    .build();
                let config = s3t::ServerSideEncryptionConfiguration::builder().rules(rule).build().map_err(build_error)?;
                s3.put_bucket_encryption()
                    .bucket(bucket)
                    .server_side_encryption_configuration(config)
                    .send()
                    .await
                    .map_err(fail(ctx, "PutBucketEncryption"))?;
            }
            None if old.is_some() => {
                s3.delete_bucket_encryption().bucket(bucket).send().await.map_err(fail(ctx, "DeleteBucketEncryption"))?;
            }
            None => {}
        }
    }
    let old_policy = old.and_then(|o| o.policy.as_ref()).and_then(|p| p.known());
    let new_policy = new.policy.as_ref().and_then(|p| p.known());
    let policy_changed = match (old_policy, new_policy) {
        (Some(a), Some(b)) => !crate::policy::equivalent(a, b),
        (a, b) => a.is_some() != b.is_some() || old.is_none(),
    };
    if policy_changed {
        match new_policy {
            Some(policy) => {
                s3.put_bucket_policy().bucket(bucket).policy(policy).send().await.map_err(fail(ctx, "PutBucketPolicy"))?;
            }
            None if old.is_some() => {
                s3.delete_bucket_policy().bucket(bucket).send().await.map_err(fail(ctx, "DeleteBucketPolicy"))?;
            }
            None => {}
        }
    }
    if old.is_none_or(|o| o.cors_rules != new.cors_rules) {
        match &new.cors_rules {
            Some(rules) if !rules.is_empty() => {
                let rules = rules
                    .iter()
                    .map(|r| {
                        s3t::CorsRule::builder()
                            .set_allowed_methods(Some(r.allowed_methods.clone()))
                            .set_allowed_origins(Some(r.allowed_origins.clone()))
                            .set_allowed_headers(Some(r.allowed_headers.clone()).filter(|h| !h.is_empty()))
                            .set_expose_headers(Some(r.expose_headers.clone()).filter(|h| !h.is_empty()))
                            .set_max_age_seconds(r.max_age_seconds)
                            .set_id(r.id.clone())
                            .build()
                            .map_err(build_error)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let config = s3t::CorsConfiguration::builder().set_cors_rules(Some(rules)).build().map_err(build_error)?;
                s3.put_bucket_cors().bucket(bucket).cors_configuration(config).send().await.map_err(fail(ctx, "PutBucketCors"))?;
            }
            Some(_) | None if old.is_some_and(|o| o.cors_rules.as_ref().is_some_and(|r| !r.is_empty())) => {
                s3.delete_bucket_cors().bucket(bucket).send().await.map_err(fail(ctx, "DeleteBucketCors"))?;
            }
            _ => {}
        }
    }
    if old.is_none_or(|o| o.tags != new.tags) {
        if new.tags.is_empty() {
            if old.is_some() {
                s3.delete_bucket_tagging().bucket(bucket).send().await.map_err(fail(ctx, "DeleteBucketTagging"))?;
            }
        } else {
            let tagging = s3t::Tagging::builder().set_tag_set(Some(tag_set(&new.tags)?)).build().map_err(build_error)?;
            s3.put_bucket_tagging().bucket(bucket).tagging(tagging).send().await.map_err(fail(ctx, "PutBucketTagging"))?;
        }
    }
    Ok(())
}

/// Reads the bucket's settings: those `prior` manages, or (for an import, `prior` absent) all
/// that differ from AWS's defaults for a new bucket.
pub(super) async fn read(clients: &Clients, ctx: &CallContext<'_>, bucket: &str, prior: Option<&Bucket>) -> Result<Bucket, ProviderError> {
    let s3 = &clients.s3;
    let manages = |f: fn(&Bucket) -> bool| prior.is_none_or(f);
    let mut out = Bucket::default();

    if manages(|p| p.versioning.is_some()) {
        let v = s3.get_bucket_versioning().bucket(bucket).send().await.map_err(fail(ctx, "GetBucketVersioning"))?;
        out.versioning = match v.status() {
            Some(s3t::BucketVersioningStatus::Enabled) => Some(Versioning::Enabled),
            Some(s3t::BucketVersioningStatus::Suspended) => Some(Versioning::Suspended),
            _ => None,
        };
    }
    if manages(|p| p.server_side_encryption.is_some()) {
        let got = optional(
            ctx,
            "GetBucketEncryption",
            &["ServerSideEncryptionConfigurationNotFoundError"],
            s3.get_bucket_encryption().bucket(bucket).send().await,
        )?;
        let rule = got.as_ref().and_then(|g| g.server_side_encryption_configuration()).and_then(|c| c.rules().first().cloned());
        out.server_side_encryption = rule.and_then(|r| {
            let default = r.apply_server_side_encryption_by_default()?;
            let algorithm = match default.sse_algorithm() {
                s3t::ServerSideEncryption::AwsKms | s3t::ServerSideEncryption::AwsKmsDsse => SseAlgorithm::Kms,
                _ => SseAlgorithm::Aes256,
            };
            let prior_key = prior.and_then(|p| p.server_side_encryption.as_ref()).and_then(|s| s.kms_key_id.clone());
            let kms_key_id = match (default.kms_master_key_id(), prior_key) {
                // A key named by alias or id is reported back as written (AWS may answer with the ARN).
                (Some(live), Some(Input::Value(p))) if live == p || live.ends_with(&format!("/{}", p.trim_start_matches("alias/"))) => {
                    Some(Input::Value(p))
                }
                (Some(live), _) => Some(Input::Value(live.to_string())),
                (None, _) => None,
            };
            Some(Encryption { algorithm, kms_key_id, bucket_key_enabled: r.bucket_key_enabled().unwrap_or(false) })
        });
        if prior.is_none() && out.server_side_encryption == Some(Encryption::default()) {
            out.server_side_encryption = None; // AWS's default for every bucket
        }
    }
    if manages(|p| p.public_access_block.is_some()) {
        let got = optional(
            ctx,
            "GetPublicAccessBlock",
            &["NoSuchPublicAccessBlockConfiguration"],
            s3.get_public_access_block().bucket(bucket).send().await,
        )?;
        out.public_access_block = got.and_then(|g| g.public_access_block_configuration().cloned()).map(|c| PublicAccessBlock {
            block_public_acls: c.block_public_acls().unwrap_or(false),
            ignore_public_acls: c.ignore_public_acls().unwrap_or(false),
            block_public_policy: c.block_public_policy().unwrap_or(false),
            restrict_public_buckets: c.restrict_public_buckets().unwrap_or(false),
        });
        if prior.is_none() && out.public_access_block == Some(PublicAccessBlock::all()) {
            out.public_access_block = None;
        }
    }
    if manages(|p| p.policy.is_some()) {
        let got = optional(ctx, "GetBucketPolicy", &["NoSuchBucketPolicy"], s3.get_bucket_policy().bucket(bucket).send().await)?;
        let prior_text = prior.and_then(|p| p.policy.as_ref()).and_then(|p| p.known()).map(String::as_str);
        out.policy = got.and_then(|g| g.policy().map(|live| Input::Value(crate::policy::reported(prior_text, live))));
    }
    if manages(|p| p.cors_rules.is_some()) {
        let got = optional(ctx, "GetBucketCors", &["NoSuchCORSConfiguration"], s3.get_bucket_cors().bucket(bucket).send().await)?;
        let rules: Vec<CorsRule> = got
            .map(|g| {
                g.cors_rules()
                    .iter()
                    .map(|r| CorsRule {
                        allowed_methods: r.allowed_methods().to_vec(),
                        allowed_origins: r.allowed_origins().to_vec(),
                        allowed_headers: r.allowed_headers().to_vec(),
                        expose_headers: r.expose_headers().to_vec(),
                        max_age_seconds: r.max_age_seconds(),
                        id: r.id().map(str::to_string),
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.cors_rules = if rules.is_empty() && prior.is_none() { None } else { Some(rules) };
    }
    if manages(|p| p.ownership.is_some()) {
        let got = optional(
            ctx,
            "GetBucketOwnershipControls",
            &["OwnershipControlsNotFoundError"],
            s3.get_bucket_ownership_controls().bucket(bucket).send().await,
        )?;
        out.ownership =
            got.and_then(|g| g.ownership_controls().and_then(|c| c.rules().first().cloned())).and_then(|r| match r.object_ownership() {
                s3t::ObjectOwnership::BucketOwnerEnforced => Some(Ownership::BucketOwnerEnforced),
                s3t::ObjectOwnership::BucketOwnerPreferred => Some(Ownership::BucketOwnerPreferred),
                s3t::ObjectOwnership::ObjectWriter => Some(Ownership::ObjectWriter),
                _ => None,
            });
        if prior.is_none() && out.ownership == Some(Ownership::BucketOwnerEnforced) {
            out.ownership = None;
        }
    }
    let tags = optional(ctx, "GetBucketTagging", &["NoSuchTagSet"], s3.get_bucket_tagging().bucket(bucket).send().await)?;
    out.tags = tags.map(|t| t.tag_set().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect()).unwrap_or_default();
    Ok(out)
}
