//! `aws:iam:Policy`: a customer managed policy. IAM keeps up to five versions of a policy; an
//! update creates a new version, makes it the default, and first deletes the oldest non-default
//! version when all five are taken.

use std::sync::Arc;

use berth_engine::{CallContext, CheckFailure, DiffResponse, FieldDiff, Input, Path, ProviderError, Resource, ResourceProvider};
use berth_engine::{TypedCreated, TypedObserved, Value, async_trait};
use serde::{Deserialize, Serialize};

use super::{from_iam_tags, iam_tags, tag_changes, validate_name, validate_path};
use crate::config::Aws;
use crate::error::{AwsError, already_exists, fail, found};
use crate::validate::{self, Problems, Tags};

/// IAM keeps at most this many versions of a managed policy.
const MAX_VERSIONS: usize = 5;

fn default_path() -> String {
    "/".into()
}

/// `aws:iam:Policy`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Default: the logical name plus a random suffix. Changing it replaces the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Changing it replaces the policy.
    #[serde(default = "default_path")]
    pub path: String,
    /// Changing it replaces the policy (IAM cannot change a policy's description).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The policy document (JSON). Compared by meaning; a change creates a new default version.
    pub policy: Input<String>,
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyOutputs {
    pub arn: String,
    pub name: String,
    pub policy_id: String,
    /// The version in force (`v1`, `v2`, …).
    pub default_version_id: String,
}

impl Resource for Policy {
    const TYPE: &'static str = "aws:iam:Policy";
    type Outputs = PolicyOutputs;
}

pub struct PolicyProvider {
    pub aws: Arc<Aws>,
}

fn path(field: &str) -> Path {
    Path::parse(field).unwrap_or_else(|_| Path::root())
}

impl PolicyProvider {
    /// Deletes the oldest non-default version when IAM's limit of five is reached.
    async fn make_room(&self, ctx: &CallContext<'_>, arn: &str) -> Result<(), ProviderError> {
        let iam = &self.aws.clients().await?.iam;
        let listed = iam.list_policy_versions().policy_arn(arn).send().await.map_err(fail(ctx, "ListPolicyVersions"))?;
        let mut versions: Vec<_> = listed.versions().iter().filter(|v| !v.is_default_version()).collect();
        if listed.versions().len() < MAX_VERSIONS {
            return Ok(());
        }
        versions.sort_by_key(|v| (v.create_date().map(|d| (d.secs(), d.subsec_nanos())), version_number(v.version_id())));
        if let Some(oldest) = versions.first().and_then(|v| v.version_id()) {
            iam.delete_policy_version().policy_arn(arn).version_id(oldest).send().await.map_err(fail(ctx, "DeletePolicyVersion"))?;
        }
        Ok(())
    }

    /// The ARN of the account's own policy `name` at `path`. With `anywhere`, a policy of that
    /// name at another path, or differing only in case, is an answer too: IAM allows one policy
    /// of a name per account, whatever its path, and compares names without regard to case.
    async fn arn_by_name(&self, ctx: &CallContext<'_>, name: &str, path: &str, anywhere: bool) -> Result<Option<String>, ProviderError> {
        let iam = &self.aws.clients().await?.iam;
        let mut marker = None;
        let mut other = None;
        loop {
            let page = iam
                .list_policies()
                .scope(aws_sdk_iam::types::PolicyScopeType::Local)
                .path_prefix(if anywhere { "/" } else { path })
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(fail(ctx, "ListPolicies"))?;
            for p in page.policies() {
                let Some(arn) = p.arn() else { continue };
                if p.policy_name() == Some(name) && p.path() == Some(path) {
                    return Ok(Some(arn.to_string()));
                }
                if anywhere && other.is_none() && p.policy_name().is_some_and(|n| n.eq_ignore_ascii_case(name)) {
                    other = Some(arn.to_string());
                }
            }
            if !page.is_truncated() {
                return Ok(other);
            }
            marker = page.marker().map(str::to_string);
        }
    }

    async fn read_arn(
        &self,
        ctx: &CallContext<'_>,
        arn: &str,
        prior: Option<&Policy>,
    ) -> Result<Option<TypedObserved<Policy>>, ProviderError> {
        let iam = &self.aws.clients().await?.iam;
        let Some(got) = found(ctx, "GetPolicy", iam.get_policy().policy_arn(arn).send().await)? else { return Ok(None) };
        let Some(policy) = got.policy() else { return Ok(None) };
        let version_id = policy.default_version_id().unwrap_or("v1").to_string();
        let version =
            iam.get_policy_version().policy_arn(arn).version_id(&version_id).send().await.map_err(fail(ctx, "GetPolicyVersion"))?;
        let live = version.policy_version().and_then(|v| v.document()).unwrap_or_default();
        let prior_doc = prior.and_then(|p| p.policy.known()).map(String::as_str);
        let tags = iam.list_policy_tags().policy_arn(arn).send().await.map_err(fail(ctx, "ListPolicyTags"))?;
        let name = policy.policy_name().unwrap_or_default().to_string();
        let inputs = Policy {
            name: Some(name.clone()),
            path: policy.path().unwrap_or("/").to_string(),
            description: policy.description().filter(|d| !d.is_empty()).map(str::to_string),
            policy: Input::Value(crate::policy::reported(prior_doc, live)),
            tags: from_iam_tags(tags.tags()),
        };
        let outputs = PolicyOutputs {
            arn: arn.to_string(),
            name,
            policy_id: policy.policy_id().unwrap_or_default().to_string(),
            default_version_id: version_id,
        };
        Ok(Some(TypedObserved { id: arn.to_string(), inputs, outputs }))
    }
}

fn version_number(id: Option<&str>) -> u64 {
    id.and_then(|v| v.trim_start_matches('v').parse().ok()).unwrap_or(0)
}

#[async_trait]
impl ResourceProvider for PolicyProvider {
    type Resource = Policy;

    fn replace_on(&self) -> Vec<Path> {
        vec![path("name"), path("path"), path("description")]
    }

    fn fixed_name(&self) -> Option<Path> {
        Some(path("name"))
    }

    fn outputs_changed_by(&self, changes: &[FieldDiff]) -> Vec<Path> {
        if changes.iter().any(|c| c.path.first_key() == Some("policy")) { vec![path("default_version_id")] } else { Vec::new() }
    }

    async fn check(&self, ctx: CallContext<'_>, mut inputs: Policy, seed: &[u8; 32]) -> Result<Policy, Vec<CheckFailure>> {
        let mut problems = Problems::new();
        let name = inputs.name.get_or_insert_with(|| validate::auto_name(ctx.name, seed, 128, false, super::iam_name_char)).clone();
        problems.check("name", validate_name(&name, 128));
        problems.check("path", validate_path(&inputs.path));
        if let Input::Value(doc) = &inputs.policy {
            problems.check("policy", crate::policy::validate(doc, 6144, false));
        }
        if let Some(d) = &inputs.description {
            problems.check("description", validate::max_len(d, 1000));
        }
        validate::tags(&mut problems, &inputs.tags);
        problems.finish(inputs)
    }

    async fn diff(&self, _ctx: CallContext<'_>, _id: &str, old: &Value, _o: &Value, new: &Value) -> Result<DiffResponse, ProviderError> {
        let mut response = crate::policy::diff_with_policies(old, new, &["policy"], &self.replace_on(), self.fixed_name().as_ref());
        response.unknown_outputs = self.outputs_changed_by(&response.changes);
        Ok(response)
    }

    async fn create(&self, ctx: CallContext<'_>, inputs: &Policy) -> Result<TypedCreated<PolicyOutputs>, ProviderError> {
        let iam = &self.aws.clients().await?.iam;
        let name = inputs.name.clone().ok_or_else(|| ProviderError::other("internal error: policy name not set by check"))?;
        let document = inputs.policy.value().map_err(|e| ProviderError::other(e.to_string()))?;
        let created = match iam
            .create_policy()
            .policy_name(&name)
            .path(&inputs.path)
            .policy_document(document)
            .set_description(inputs.description.clone())
            .set_tags(iam_tags(&inputs.tags)?)
            .send()
            .await
        {
            Ok(created) => created,
            Err(e) => {
                let e = AwsError::from(e);
                if !e.is_code("EntityAlreadyExists") {
                    return Err(e.at(&ctx, "CreatePolicy"));
                }
                // What to import is the ARN, which holds the account id (and the path of the one
                // policy of this name): found by listing.
                let message = format!("{}: policy `{name}` already exists at path {}", ctx.urn, inputs.path);
                let lookup = self.arn_by_name(&ctx, &name, &inputs.path, true).await;
                return Err(already_exists(&ctx, "CreatePolicy", &e, message, lookup));
            }
        };
        let policy = created.policy().ok_or_else(|| ProviderError::other(format!("{}: CreatePolicy returned no policy", ctx.urn)))?;
        let arn = policy.arn().unwrap_or_default().to_string();
        let outputs = PolicyOutputs {
            arn: arn.clone(),
            name,
            policy_id: policy.policy_id().unwrap_or_default().to_string(),
            default_version_id: policy.default_version_id().unwrap_or("v1").to_string(),
        };
        Ok(TypedCreated { id: arn, outputs })
    }

    async fn read(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        prior: Option<&Policy>,
        _o: Option<&PolicyOutputs>,
    ) -> Result<Option<TypedObserved<Policy>>, ProviderError> {
        self.read_arn(&ctx, id, prior).await
    }

    async fn update(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old: &Policy,
        new: &Policy,
        old_outputs: &PolicyOutputs,
    ) -> Result<PolicyOutputs, ProviderError> {
        let iam = &self.aws.clients().await?.iam;
        let mut outputs = old_outputs.clone();
        let old_doc = old.policy.known().map(String::as_str).unwrap_or_default();
        let new_doc = new.policy.value().map_err(|e| ProviderError::other(e.to_string()))?;
        if !crate::policy::equivalent(old_doc, new_doc) {
            self.make_room(&ctx, id).await?;
            let version = iam
                .create_policy_version()
                .policy_arn(id)
                .policy_document(new_doc)
                .set_as_default(true)
                .send()
                .await
                .map_err(fail(&ctx, "CreatePolicyVersion"))?;
            if let Some(v) = version.policy_version().and_then(|v| v.version_id()) {
                outputs.default_version_id = v.to_string();
            }
        }
        let (removed, set) = tag_changes(&old.tags, &new.tags);
        if !removed.is_empty() {
            iam.untag_policy().policy_arn(id).set_tag_keys(Some(removed)).send().await.map_err(fail(&ctx, "UntagPolicy"))?;
        }
        if let Some(tags) = iam_tags(&set)? {
            iam.tag_policy().policy_arn(id).set_tags(Some(tags)).send().await.map_err(fail(&ctx, "TagPolicy"))?;
        }
        Ok(outputs)
    }

    async fn delete(&self, ctx: CallContext<'_>, id: &str, _inputs: &Policy, _outputs: &PolicyOutputs) -> Result<(), ProviderError> {
        let iam = &self.aws.clients().await?.iam;
        // A policy with versions besides the default cannot be deleted.
        let Some(listed) = found(&ctx, "ListPolicyVersions", iam.list_policy_versions().policy_arn(id).send().await)? else {
            return Ok(());
        };
        for version in listed.versions().iter().filter(|v| !v.is_default_version()) {
            if let Some(v) = version.version_id() {
                iam.delete_policy_version().policy_arn(id).version_id(v).send().await.map_err(fail(&ctx, "DeletePolicyVersion"))?;
            }
        }
        match iam.delete_policy().policy_arn(id).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = AwsError::from(e);
                if e.is_not_found() {
                    return Ok(());
                }
                let mut error = e.at(&ctx, "DeletePolicy");
                if e.is_code("DeleteConflict") {
                    error.message.push_str("; it is still attached to a role, user or group outside berth: detach it first");
                }
                Err(error)
            }
        }
    }

    /// Finds the policy by name and path (its ARN needs the account id, which berth does not ask for).
    async fn lookup(&self, ctx: CallContext<'_>, inputs: &Policy) -> Result<Option<TypedObserved<Policy>>, ProviderError> {
        let Some(name) = &inputs.name else { return Ok(None) };
        match self.arn_by_name(&ctx, name, &inputs.path, false).await? {
            Some(arn) => self.read_arn(&ctx, &arn, Some(inputs)).await,
            None => Ok(None),
        }
    }
}
