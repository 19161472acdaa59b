//! `aws:iam:Role` and `aws:iam:RolePolicyAttachment`.

use std::sync::Arc;

use berth_engine::{CallContext, CheckFailure, DiffResponse, ErrorKind, Input, Path, ProviderError, Resource, ResourceProvider};
use berth_engine::{TypedCreated, TypedObserved, Value, async_trait};
use serde::{Deserialize, Serialize};

use super::{from_iam_tags, iam_tags, tag_changes, validate_name, validate_path};
use crate::config::Aws;
use crate::error::{AwsError, fail, found};
use crate::validate::{self, Problems, Tags};

fn default_path() -> String {
    "/".into()
}

fn default_max_session() -> i32 {
    3600
}

/// `aws:iam:Role`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// Default: the logical name plus a random suffix. Changing it replaces the role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Changing it replaces the role.
    #[serde(default = "default_path")]
    pub path: String,
    /// The trust policy (JSON), e.g. `sts:AssumeRoleWithWebIdentity` for an EKS service account.
    /// Compared by meaning, not text.
    pub assume_role_policy: Input<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Seconds, 3600 to 43200. Default 3600.
    #[serde(default = "default_max_session")]
    pub max_session_duration: i32,
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
}

/// The serde defaults; `assume_role_policy` has none and must be set.
impl Default for Role {
    fn default() -> Self {
        Role {
            name: None,
            path: default_path(),
            assume_role_policy: Input::Value(String::new()),
            description: None,
            max_session_duration: default_max_session(),
            tags: Tags::new(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RoleOutputs {
    pub arn: String,
    pub name: String,
    pub unique_id: String,
}

impl Resource for Role {
    const TYPE: &'static str = "aws:iam:Role";
    type Outputs = RoleOutputs;
}

pub struct RoleProvider {
    pub aws: Arc<Aws>,
}

fn path(field: &str) -> Path {
    Path::parse(field).unwrap_or_else(|_| Path::root())
}

#[async_trait]
impl ResourceProvider for RoleProvider {
    type Resource = Role;

    fn replace_on(&self) -> Vec<Path> {
        vec![path("name"), path("path")]
    }

    fn fixed_name(&self) -> Option<Path> {
        Some(path("name"))
    }

    async fn check(&self, ctx: CallContext<'_>, mut inputs: Role, seed: &[u8; 32]) -> Result<Role, Vec<CheckFailure>> {
        let mut problems = Problems::new();
        let name = inputs.name.get_or_insert_with(|| validate::auto_name(ctx.name, seed, 64, false, super::iam_name_char)).clone();
        problems.check("name", validate_name(&name, 64));
        problems.check("path", validate_path(&inputs.path));
        if let Input::Value(doc) = &inputs.assume_role_policy {
            problems.check("assume_role_policy", crate::policy::validate(doc, 2048, true));
        }
        if let Some(d) = &inputs.description {
            problems.check("description", validate::max_len(d, 1000));
        }
        if !(3600..=43200).contains(&inputs.max_session_duration) {
            problems.add(
                "max_session_duration",
                format!("{} seconds is out of range: AWS allows 3600 (1 hour) to 43200 (12 hours)", inputs.max_session_duration),
            );
        }
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
        Ok(crate::policy::diff_with_policies(old, new, &["assume_role_policy"], &self.replace_on(), self.fixed_name().as_ref()))
    }

    async fn create(&self, ctx: CallContext<'_>, inputs: &Role) -> Result<TypedCreated<RoleOutputs>, ProviderError> {
        let iam = &self.aws.clients().await?.iam;
        let name = inputs.name.clone().ok_or_else(|| ProviderError::other("internal error: role name not set by check"))?;
        let trust = inputs.assume_role_policy.value().map_err(|e| ProviderError::other(e.to_string()))?;
        let created = iam
            .create_role()
            .role_name(&name)
            .path(&inputs.path)
            .assume_role_policy_document(trust)
            .set_description(inputs.description.clone())
            .max_session_duration(inputs.max_session_duration)
            .set_tags(iam_tags(&inputs.tags)?)
            .send()
            .await
            .map_err(|e| {
                let e = AwsError::from(e);
                if e.is_code("EntityAlreadyExists") {
                    return ProviderError::new(
                        ErrorKind::AlreadyExists { id: name.clone() },
                        format!("{}: role `{name}` already exists", ctx.urn),
                    );
                }
                e.at(&ctx, "CreateRole")
            })?;
        let role = created.role().ok_or_else(|| ProviderError::other(format!("{}: CreateRole returned no role", ctx.urn)))?;
        Ok(TypedCreated {
            id: name.clone(),
            outputs: RoleOutputs { arn: role.arn().to_string(), name, unique_id: role.role_id().to_string() },
        })
    }

    async fn read(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        prior: Option<&Role>,
        _o: Option<&RoleOutputs>,
    ) -> Result<Option<TypedObserved<Role>>, ProviderError> {
        let iam = &self.aws.clients().await?.iam;
        let Some(got) = found(&ctx, "GetRole", iam.get_role().role_name(id).send().await)? else { return Ok(None) };
        let Some(role) = got.role() else { return Ok(None) };
        // GetRole leaves tags out on some implementations: ask for them.
        let tags = iam.list_role_tags().role_name(id).send().await.map_err(fail(&ctx, "ListRoleTags"))?;
        let prior_trust = prior.and_then(|p| p.assume_role_policy.known()).map(String::as_str);
        let live_trust = role.assume_role_policy_document().unwrap_or_default();
        let inputs = Role {
            name: Some(role.role_name().to_string()),
            path: role.path().to_string(),
            assume_role_policy: Input::Value(crate::policy::reported(prior_trust, live_trust)),
            description: role.description().filter(|d| !d.is_empty()).map(str::to_string),
            max_session_duration: role.max_session_duration().unwrap_or(3600),
            tags: from_iam_tags(tags.tags()),
        };
        let outputs =
            RoleOutputs { arn: role.arn().to_string(), name: role.role_name().to_string(), unique_id: role.role_id().to_string() };
        Ok(Some(TypedObserved { id: id.to_string(), inputs, outputs }))
    }

    async fn update(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old: &Role,
        new: &Role,
        old_outputs: &RoleOutputs,
    ) -> Result<RoleOutputs, ProviderError> {
        let iam = &self.aws.clients().await?.iam;
        let old_trust = old.assume_role_policy.known().map(String::as_str).unwrap_or_default();
        let new_trust = new.assume_role_policy.value().map_err(|e| ProviderError::other(e.to_string()))?;
        if !crate::policy::equivalent(old_trust, new_trust) {
            iam.update_assume_role_policy()
                .role_name(id)
                .policy_document(new_trust)
                .send()
                .await
                .map_err(fail(&ctx, "UpdateAssumeRolePolicy"))?;
        }
        if old.description != new.description || old.max_session_duration != new.max_session_duration {
            iam.update_role()
                .role_name(id)
                .description(new.description.clone().unwrap_or_default())
                .max_session_duration(new.max_session_duration)
                .send()
                .await
                .map_err(fail(&ctx, "UpdateRole"))?;
        }
        let (removed, set) = tag_changes(&old.tags, &new.tags);
        if !removed.is_empty() {
            iam.untag_role().role_name(id).set_tag_keys(Some(removed)).send().await.map_err(fail(&ctx, "UntagRole"))?;
        }
        if let Some(tags) = iam_tags(&set)? {
            iam.tag_role().role_name(id).set_tags(Some(tags)).send().await.map_err(fail(&ctx, "TagRole"))?;
        }
        Ok(old_outputs.clone())
    }

    async fn delete(&self, ctx: CallContext<'_>, id: &str, _inputs: &Role, _outputs: &RoleOutputs) -> Result<(), ProviderError> {
        let iam = &self.aws.clients().await?.iam;
        match iam.delete_role().role_name(id).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = AwsError::from(e);
                if e.is_not_found() {
                    return Ok(());
                }
                let mut error = e.at(&ctx, "DeleteRole");
                if e.is_code("DeleteConflict") {
                    error.message.push_str("; policies attached outside berth must be detached first (berth detaches its own RolePolicyAttachments before deleting the role)");
                }
                Err(error)
            }
        }
    }

    async fn lookup(&self, ctx: CallContext<'_>, inputs: &Role) -> Result<Option<TypedObserved<Role>>, ProviderError> {
        match &inputs.name {
            Some(name) => self.read(ctx, name, Some(inputs), None).await,
            None => Ok(None),
        }
    }

    async fn find_tagged(&self, ctx: CallContext<'_>, tags: &Tags) -> Result<Vec<String>, ProviderError> {
        let iam = &self.aws.clients().await?.iam;
        let listed = iam.list_roles().send().await.map_err(fail(&ctx, "ListRoles"))?;
        let mut ids = Vec::new();
        for role in listed.roles() {
            let name = role.role_name();
            let live = iam.list_role_tags().role_name(name).send().await.map_err(fail(&ctx, "ListRoleTags"))?;
            if validate::has_tags(live.tags().iter().map(|t| (t.key(), t.value())), tags) {
                ids.push(name.to_string());
            }
        }
        Ok(ids)
    }
}

/// `aws:iam:RolePolicyAttachment`: a managed policy attached to a role. Its id is
/// `<role name>/<policy ARN>`; changing either replaces it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolePolicyAttachment {
    pub role: Input<String>,
    pub policy_arn: Input<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RolePolicyAttachmentOutputs {}

impl Resource for RolePolicyAttachment {
    const TYPE: &'static str = "aws:iam:RolePolicyAttachment";
    type Outputs = RolePolicyAttachmentOutputs;
}

pub struct RolePolicyAttachmentProvider {
    pub aws: Arc<Aws>,
}

fn split_attachment_id(id: &str) -> Result<(&str, &str), ProviderError> {
    id.split_once('/')
        .filter(|(role, arn)| !role.is_empty() && arn.starts_with("arn:"))
        .ok_or_else(|| ProviderError::other(format!("`{id}` is not a role policy attachment id; write `<role name>/<policy ARN>`")))
}

impl RolePolicyAttachmentProvider {
    async fn attached(&self, ctx: &CallContext<'_>, role: &str, arn: &str) -> Result<Option<bool>, ProviderError> {
        let iam = &self.aws.clients().await?.iam;
        let mut marker = None;
        loop {
            let result = iam.list_attached_role_policies().role_name(role).set_marker(marker.clone()).send().await;
            let Some(page) = found(ctx, "ListAttachedRolePolicies", result)? else { return Ok(None) };
            if page.attached_policies().iter().any(|p| p.policy_arn() == Some(arn)) {
                return Ok(Some(true));
            }
            if !page.is_truncated() {
                return Ok(Some(false));
            }
            marker = page.marker().map(str::to_string);
        }
    }
}

#[async_trait]
impl ResourceProvider for RolePolicyAttachmentProvider {
    type Resource = RolePolicyAttachment;

    fn replace_on(&self) -> Vec<Path> {
        vec![Path::root()]
    }

    async fn check(
        &self,
        _ctx: CallContext<'_>,
        inputs: RolePolicyAttachment,
        _seed: &[u8; 32],
    ) -> Result<RolePolicyAttachment, Vec<CheckFailure>> {
        let mut problems = Problems::new();
        if let Input::Value(role) = &inputs.role {
            problems.check("role", validate_name(role, 64));
        }
        if let Input::Value(arn) = &inputs.policy_arn
            && !(arn.starts_with("arn:aws") && arn.contains(":policy/"))
        {
            problems.add("policy_arn", format!("`{arn}` is not a managed policy ARN (arn:aws:iam::<account>:policy/<path><name>)"));
        }
        problems.finish(inputs)
    }

    async fn create(
        &self,
        ctx: CallContext<'_>,
        inputs: &RolePolicyAttachment,
    ) -> Result<TypedCreated<RolePolicyAttachmentOutputs>, ProviderError> {
        let iam = &self.aws.clients().await?.iam;
        let role = inputs.role.value().map_err(|e| ProviderError::other(e.to_string()))?;
        let arn = inputs.policy_arn.value().map_err(|e| ProviderError::other(e.to_string()))?;
        iam.attach_role_policy().role_name(role).policy_arn(arn).send().await.map_err(fail(&ctx, "AttachRolePolicy"))?;
        Ok(TypedCreated { id: format!("{role}/{arn}"), outputs: RolePolicyAttachmentOutputs {} })
    }

    async fn read(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        _prior: Option<&RolePolicyAttachment>,
        _o: Option<&RolePolicyAttachmentOutputs>,
    ) -> Result<Option<TypedObserved<RolePolicyAttachment>>, ProviderError> {
        let (role, arn) = split_attachment_id(id)?;
        Ok(match self.attached(&ctx, role, arn).await? {
            Some(true) => Some(TypedObserved {
                id: id.to_string(),
                inputs: RolePolicyAttachment { role: Input::Value(role.into()), policy_arn: Input::Value(arn.into()) },
                outputs: RolePolicyAttachmentOutputs {},
            }),
            _ => None,
        })
    }

    async fn update(
        &self,
        _c: CallContext<'_>,
        _id: &str,
        _o: &RolePolicyAttachment,
        _n: &RolePolicyAttachment,
        out: &RolePolicyAttachmentOutputs,
    ) -> Result<RolePolicyAttachmentOutputs, ProviderError> {
        Ok(out.clone()) // every change replaces
    }

    async fn delete(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        _inputs: &RolePolicyAttachment,
        _o: &RolePolicyAttachmentOutputs,
    ) -> Result<(), ProviderError> {
        let iam = &self.aws.clients().await?.iam;
        let (role, arn) = split_attachment_id(id)?;
        match iam.detach_role_policy().role_name(role).policy_arn(arn).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = AwsError::from(e);
                if e.is_not_found() { Ok(()) } else { Err(e.at(&ctx, "DetachRolePolicy")) }
            }
        }
    }

    async fn lookup(
        &self,
        ctx: CallContext<'_>,
        inputs: &RolePolicyAttachment,
    ) -> Result<Option<TypedObserved<RolePolicyAttachment>>, ProviderError> {
        match (inputs.role.known(), inputs.policy_arn.known()) {
            (Some(role), Some(arn)) => self.read(ctx, &format!("{role}/{arn}"), Some(inputs), None).await,
            _ => Ok(None),
        }
    }
}
