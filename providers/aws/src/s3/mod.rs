//! `aws:s3:Bucket`: a bucket and its settings (versioning, default encryption, public access
//! block, policy, CORS, object ownership, tags), managed together as one resource.
//!
//! Each optional setting is managed only when set: `None` leaves whatever the bucket has alone
//! (and a refresh does not report it), so settings other tools own never show as drift. AWS's
//! defaults for new buckets (AES256 encryption, all public access blocked, owner-enforced
//! ownership) are what an unmanaged setting holds.

mod settings;

use std::sync::Arc;

use berth_engine::{CallContext, CheckFailure, DiffResponse, Input, Path, Resource, ResourceProvider, TypedCreated, TypedObserved};
use berth_engine::{ProviderError, Value, async_trait};
use serde::{Deserialize, Serialize};

use crate::config::Aws;
use crate::error::{AwsError, fail};
use crate::validate::{self, Problems, Tags};

pub use settings::{CorsRule, Encryption, Ownership, PublicAccessBlock, SseAlgorithm, Versioning};

/// `aws:s3:Bucket`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    /// The bucket's name (global, fixed: changing it replaces the bucket, deleting first when the
    /// new name is the old one). Default: the logical name plus a random suffix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// On delete, delete every object (and version) first; without it a non-empty bucket is not
    /// deleted. Only berth reads it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force_destroy: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versioning: Option<Versioning>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_side_encryption: Option<Encryption>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_access_block: Option<PublicAccessBlock>,
    /// The bucket policy (JSON). Compared by meaning, not text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Input<String>>,
    /// CORS rules; `[]` removes any, absent leaves them alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_rules: Option<Vec<CorsRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ownership: Option<Ownership>,
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
}

/// What a bucket produces.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BucketOutputs {
    pub bucket: String,
    pub arn: String,
    pub region: String,
    pub bucket_domain_name: String,
    pub bucket_regional_domain_name: String,
}

impl Resource for Bucket {
    const TYPE: &'static str = "aws:s3:Bucket";
    type Outputs = BucketOutputs;
}

fn bucket_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

/// S3's bucket naming rules (general purpose buckets).
pub fn validate_bucket_name(name: &str) -> Result<(), String> {
    if name.len() < 3 || name.len() > 63 {
        return Err(format!("`{name}` has {} characters; bucket names have 3 to 63", name.len()));
    }
    if let Some(c) = name.chars().find(|c| !(bucket_name_char(*c) || *c == '.')) {
        return Err(format!("`{name}` contains `{c}`; bucket names use only lower-case letters, digits, `.` and `-`"));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) || !name.ends_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!("`{name}` must begin and end with a letter or digit"));
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return Err(format!("`{name}` must not have two periods in a row, nor a period next to a hyphen"));
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(format!("`{name}` is formatted as an IP address, which S3 does not allow"));
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(prefix) {
            return Err(format!("`{name}` starts with `{prefix}`, which S3 reserves"));
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if name.ends_with(suffix) {
            return Err(format!("`{name}` ends with `{suffix}`, which S3 reserves"));
        }
    }
    Ok(())
}

/// The provider for `aws:s3:Bucket`.
pub struct BucketProvider {
    pub aws: Arc<Aws>,
}

impl BucketProvider {
    fn outputs(&self, name: &str, region: &str) -> BucketOutputs {
        BucketOutputs {
            bucket: name.to_string(),
            arn: format!("arn:aws:s3:::{name}"),
            region: region.to_string(),
            bucket_domain_name: format!("{name}.s3.amazonaws.com"),
            bucket_regional_domain_name: format!("{name}.s3.{region}.amazonaws.com"),
        }
    }

    async fn exists(&self, ctx: &CallContext<'_>, name: &str) -> Result<bool, ProviderError> {
        let clients = self.aws.clients().await?;
        match clients.s3.head_bucket().bucket(name).send().await {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = AwsError::from(e);
                if e.is_not_found() { Ok(false) } else { Err(e.at(ctx, "HeadBucket")) }
            }
        }
    }
}

#[async_trait]
impl ResourceProvider for BucketProvider {
    type Resource = Bucket;

    fn replace_on(&self) -> Vec<Path> {
        vec![Path::parse("bucket").unwrap_or_else(|_| Path::root())]
    }

    fn fixed_name(&self) -> Option<Path> {
        Path::parse("bucket").ok()
    }

    /// AWS refuses a public bucket policy while the bucket blocks public policies, which every
    /// new bucket does unless told otherwise (moto does not): say so before the apply fails.
    fn plan_notes(&self, _ctx: CallContext<'_>, inputs: &Bucket) -> Vec<String> {
        let blocks = inputs.public_access_block.as_ref().is_none_or(|b| b.block_public_policy);
        match inputs.policy.as_ref().and_then(|p| p.known()) {
            Some(policy) if blocks && crate::policy::grants_public_access(policy) => vec![
                "the policy grants access to everyone (Principal \"*\"), but the bucket blocks public policies (AWS's default for new buckets): \
                 AWS will refuse it; set `public_access_block` with `block_public_policy: false` and `restrict_public_buckets: false`"
                    .into(),
            ],
            _ => Vec::new(),
        }
    }

    async fn check(&self, ctx: CallContext<'_>, mut inputs: Bucket, seed: &[u8; 32]) -> Result<Bucket, Vec<CheckFailure>> {
        let mut problems = Problems::new();
        let name = inputs.bucket.get_or_insert_with(|| validate::auto_name(ctx.name, seed, 63, true, bucket_name_char)).clone();
        problems.check("bucket", validate_bucket_name(&name));
        if let Some(Input::Value(policy)) = &inputs.policy {
            problems.check("policy", crate::policy::validate(policy, 20 * 1024, true));
        }
        settings::check(&mut problems, &inputs);
        validate::tags(&mut problems, &inputs.tags);
        problems.finish(inputs)
    }

    async fn diff(
        &self,
        _ctx: CallContext<'_>,
        _id: &str,
        old: &Value,
        _old_outputs: &Value,
        new: &Value,
    ) -> Result<DiffResponse, ProviderError> {
        let (old, new) = (with_aws_defaults(old), with_aws_defaults(new));
        Ok(crate::policy::diff_with_policies(&old, &new, &["policy"], &self.replace_on(), self.fixed_name().as_ref()))
    }

    async fn create(&self, ctx: CallContext<'_>, inputs: &Bucket) -> Result<TypedCreated<BucketOutputs>, ProviderError> {
        let clients = self.aws.clients().await?;
        let name = inputs.bucket.clone().ok_or_else(|| ProviderError::other("internal error: bucket name not set by check"))?;
        // In us-east-1 CreateBucket succeeds for a bucket the caller already owns: look first, so
        // an existing bucket is imported on purpose, never adopted by accident.
        if self.exists(&ctx, &name).await? {
            return Err(ProviderError::new(
                berth_engine::ErrorKind::AlreadyExists { id: name.clone() },
                format!("{}: bucket `{name}` already exists", ctx.urn),
            ));
        }
        let mut request = clients.s3.create_bucket().bucket(&name);
        if clients.region != "us-east-1" {
            let constraint = aws_sdk_s3::types::BucketLocationConstraint::from(clients.region.as_str());
            request = request.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder().location_constraint(constraint).build(),
            );
        }
        request.send().await.map_err(|e| {
            let e = AwsError::from(e);
            let mut error = e.at(&ctx, "CreateBucket");
            if e.is_code("BucketAlreadyExists") {
                error.message.push_str("; bucket names are global across all AWS accounts: choose another name");
            }
            error
        })?;
        let outputs = self.outputs(&name, &clients.region);
        let created = crate::created(&name, &outputs)?;
        // The bucket exists now: if a setting fails, record it (tainted) rather than forget it.
        settings::apply(clients, &ctx, &name, None, inputs).await.map_err(|e| e.with_partial(created))?;
        Ok(TypedCreated { id: name, outputs })
    }

    async fn read(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        prior: Option<&Bucket>,
        _prior_outputs: Option<&BucketOutputs>,
    ) -> Result<Option<TypedObserved<Bucket>>, ProviderError> {
        let clients = self.aws.clients().await?;
        if !self.exists(&ctx, id).await? {
            return Ok(None);
        }
        let observed = match settings::read(clients, &ctx, id, prior).await {
            Ok(observed) => observed,
            Err(e) if e.kind == berth_engine::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let inputs = Bucket { bucket: Some(id.to_string()), force_destroy: prior.is_some_and(|p| p.force_destroy), ..observed };
        Ok(Some(TypedObserved { id: id.to_string(), inputs, outputs: self.outputs(id, &clients.region) }))
    }

    async fn update(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old: &Bucket,
        new: &Bucket,
        _old_outputs: &BucketOutputs,
    ) -> Result<BucketOutputs, ProviderError> {
        let clients = self.aws.clients().await?;
        settings::apply(clients, &ctx, id, Some(old), new).await?;
        Ok(self.outputs(id, &clients.region))
    }

    async fn delete(&self, ctx: CallContext<'_>, id: &str, inputs: &Bucket, _outputs: &BucketOutputs) -> Result<(), ProviderError> {
        let clients = self.aws.clients().await?;
        if inputs.force_destroy {
            delete_all_objects(&clients.s3, &ctx, id).await?;
        }
        match clients.s3.delete_bucket().bucket(id).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = AwsError::from(e);
                if e.is_not_found() {
                    return Ok(());
                }
                let mut error = e.at(&ctx, "DeleteBucket");
                if e.is_code("BucketNotEmpty") {
                    error.message.push_str("; empty it first, or set `force_destroy: true` to let berth delete every object");
                }
                Err(error)
            }
        }
    }

    async fn lookup(&self, ctx: CallContext<'_>, inputs: &Bucket) -> Result<Option<TypedObserved<Bucket>>, ProviderError> {
        match &inputs.bucket {
            Some(name) => self.read(ctx, name, Some(inputs), None).await,
            None => Ok(None),
        }
    }

    async fn find_tagged(&self, ctx: CallContext<'_>, tags: &Tags) -> Result<Vec<String>, ProviderError> {
        let s3 = &self.aws.clients().await?.s3;
        let listed = s3.list_buckets().send().await.map_err(fail(&ctx, "ListBuckets"))?;
        let mut ids = Vec::new();
        for name in listed.buckets().iter().filter_map(|b| b.name()) {
            let got = s3.get_bucket_tagging().bucket(name).send().await;
            let live: Vec<(String, String)> = match got {
                Ok(t) => t.tag_set().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect(),
                Err(e) => {
                    let e = AwsError::from(e);
                    if e.is_code("NoSuchTagSet") || e.is_not_found() {
                        continue;
                    }
                    return Err(e.at(&ctx, "GetBucketTagging"));
                }
            };
            if validate::has_tags(live.iter().map(|(k, v)| (k.as_str(), v.as_str())), tags) {
                ids.push(name.to_string());
            }
        }
        Ok(ids)
    }
}

/// Deletes a bucket's objects: used by `force_destroy` and by tests.
pub async fn delete_all_objects(s3: &aws_sdk_s3::Client, ctx: &CallContext<'_>, bucket: &str) -> Result<(), ProviderError> {
    let mut key_marker = None;
    let mut version_marker = None;
    loop {
        let page = s3
            .list_object_versions()
            .bucket(bucket)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .map_err(fail(ctx, "ListObjectVersions"))?;
        let mut objects = Vec::new();
        for v in page.versions() {
            objects.push((v.key().unwrap_or_default().to_string(), v.version_id().map(str::to_string)));
        }
        for m in page.delete_markers() {
            objects.push((m.key().unwrap_or_default().to_string(), m.version_id().map(str::to_string)));
        }
        if !objects.is_empty() {
            let ids = objects
                .into_iter()
                .map(|(key, version)| aws_sdk_s3::types::ObjectIdentifier::builder().key(key).set_version_id(version).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(crate::error::build_error)?;
            let delete =
                aws_sdk_s3::types::Delete::builder().set_objects(Some(ids)).quiet(true).build().map_err(crate::error::build_error)?;
            s3.delete_objects().bucket(bucket).delete(delete).send().await.map_err(fail(ctx, "DeleteObjects"))?;
        }
        if page.is_truncated() != Some(true) {
            return Ok(());
        }
        key_marker = page.next_key_marker().map(str::to_string);
        version_marker = page.next_version_id_marker().map(str::to_string);
    }
}

/// Settings every bucket has unless told otherwise (a bucket read without a prior value reports
/// them as absent; a program may leave them out or spell them): compared as equal either way.
fn with_aws_defaults(inputs: &Value) -> Value {
    let mut inputs = inputs.clone();
    let defaults = [
        ("ownership", serde_json::to_value(Ownership::BucketOwnerEnforced)),
        ("server_side_encryption", serde_json::to_value(Encryption::default())),
        ("public_access_block", serde_json::to_value(PublicAccessBlock::all())),
    ];
    for (field, default) in defaults {
        let path = berth_engine::value::Path::parse(field).expect("a field name");
        if let Ok(default) = default
            && inputs.get_path(&path).is_none_or(|v| v.is_null())
        {
            inputs.set_path(&path, Value::from_json(default));
        }
    }
    inputs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules() {
        for ok in ["mitx-qa-edxapp-storage", "a.b.c", "abc", "123"] {
            assert!(validate_bucket_name(ok).is_ok(), "{ok}");
        }
        for bad in ["ab", "Upper", "under_score", "-start", "end-", "a..b", "a.-b", "192.168.1.1", "xn--abc", "x-s3alias", &"a".repeat(64)]
        {
            assert!(validate_bucket_name(bad).is_err(), "{bad}");
        }
    }
}
