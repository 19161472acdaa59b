//! RDS: DB subnet groups, DB parameter groups and MariaDB/MySQL instances.

mod instance;
mod rules;

use std::sync::Arc;

use aws_sdk_rds::types::{ApplyMethod, Parameter, Tag};
use berth_engine::async_trait;
use berth_engine::{
    CallContext, CheckFailure, ErrorKind, Input, Path, ProviderError, Resource, ResourceProvider, TypedCreated, TypedObserved,
};
use serde::{Deserialize, Serialize};

pub use instance::{Engine, Instance, InstanceOutputs, InstanceProvider};

use crate::config::{Aws, Clients};
use crate::error::{AwsError, fail, found};
use crate::validate::{self, Problems, Tags};

fn default_description() -> String {
    "Managed by berth".into()
}

fn path(field: &str) -> Path {
    Path::parse(field).unwrap_or_else(|_| Path::root())
}

/// RDS tags live on the resource's ARN.
pub(crate) async fn read_tags(clients: &Clients, ctx: &CallContext<'_>, arn: &str) -> Result<Tags, ProviderError> {
    let listed = clients.rds.list_tags_for_resource().resource_name(arn).send().await.map_err(fail(ctx, "ListTagsForResource"))?;
    Ok(listed.tag_list().iter().map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string())).collect())
}

pub(crate) fn rds_tags(tags: &Tags) -> Option<Vec<Tag>> {
    if tags.is_empty() { None } else { Some(tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()) }
}

pub(crate) async fn update_tags(clients: &Clients, ctx: &CallContext<'_>, arn: &str, old: &Tags, new: &Tags) -> Result<(), ProviderError> {
    let (removed, set) = crate::iam::tag_changes(old, new);
    if !removed.is_empty() {
        clients
            .rds
            .remove_tags_from_resource()
            .resource_name(arn)
            .set_tag_keys(Some(removed))
            .send()
            .await
            .map_err(fail(ctx, "RemoveTagsFromResource"))?;
    }
    if let Some(tags) = rds_tags(&set) {
        clients.rds.add_tags_to_resource().resource_name(arn).set_tags(Some(tags)).send().await.map_err(fail(ctx, "AddTagsToResource"))?;
    }
    Ok(())
}

fn already_exists(ctx: &CallContext<'_>, what: &str, name: &str) -> ProviderError {
    ProviderError::new(ErrorKind::AlreadyExists { id: name.to_string() }, format!("{}: {what} `{name}` already exists", ctx.urn))
}

/// `aws:rds:SubnetGroup`: the subnets (in at least two availability zones) an instance may use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetGroup {
    /// Default: the logical name plus a random suffix. Changing it replaces the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default = "default_description")]
    pub description: String,
    pub subnet_ids: Vec<Input<String>>,
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SubnetGroupOutputs {
    pub name: String,
    pub arn: String,
    pub vpc_id: String,
}

impl Resource for SubnetGroup {
    const TYPE: &'static str = "aws:rds:SubnetGroup";
    type Outputs = SubnetGroupOutputs;
}

pub struct SubnetGroupProvider {
    pub aws: Arc<Aws>,
}

fn subnet_group_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || "._ -".contains(c)
}

fn known_strings(list: &[Input<String>]) -> Vec<String> {
    list.iter().filter_map(|i| i.known().cloned()).collect()
}

pub(crate) fn check_subnets(problems: &mut Problems, subnets: &mut [Input<String>]) {
    // A list still unknown (another stack's output, at plan time) may hold any number.
    let all_known = subnets.iter().all(Input::is_known);
    if all_known && subnets.len() < 2 {
        problems.add("subnet_ids", "give at least two subnets, in different availability zones (AWS requires two zones)");
    }
    for s in subnets.iter() {
        if let Input::Value(id) = s {
            problems.check("subnet_ids", validate::resource_id(id, "subnet-"));
        }
    }
    if subnets.iter().all(Input::is_known) {
        subnets.sort_by(|a, b| a.known().cmp(&b.known()));
    }
}

#[async_trait]
impl ResourceProvider for SubnetGroupProvider {
    type Resource = SubnetGroup;

    fn replace_on(&self) -> Vec<Path> {
        vec![path("name")]
    }

    fn fixed_name(&self) -> Option<Path> {
        Some(path("name"))
    }

    async fn check(&self, ctx: CallContext<'_>, mut inputs: SubnetGroup, seed: &[u8; 32]) -> Result<SubnetGroup, Vec<CheckFailure>> {
        let mut problems = Problems::new();
        let name = inputs
            .name
            .get_or_insert_with(|| validate::auto_name(ctx.name, seed, 255, true, |c| c.is_ascii_alphanumeric() || c == '-'))
            .clone();
        if name.is_empty() || name.len() > 255 || !name.chars().all(subnet_group_char) || name == "default" {
            problems.add(
                "name",
                format!(
                    "`{name}` must have 1 to 255 lower-case letters, digits, spaces, periods, underscores or hyphens, and not be `default`"
                ),
            );
        }
        problems.check("description", validate::max_len(&inputs.description, 255));
        check_subnets(&mut problems, &mut inputs.subnet_ids);
        validate::tags(&mut problems, &inputs.tags);
        problems.finish(inputs)
    }

    async fn create(&self, ctx: CallContext<'_>, inputs: &SubnetGroup) -> Result<TypedCreated<SubnetGroupOutputs>, ProviderError> {
        let clients = self.aws.clients().await?;
        let name = inputs.name.clone().ok_or_else(|| ProviderError::other("internal error: name not set by check"))?;
        let created = clients
            .rds
            .create_db_subnet_group()
            .db_subnet_group_name(&name)
            .db_subnet_group_description(&inputs.description)
            .set_subnet_ids(Some(known_strings(&inputs.subnet_ids)))
            .set_tags(rds_tags(&inputs.tags))
            .send()
            .await
            .map_err(|e| {
                let e = AwsError::from(e);
                if e.is_code("DBSubnetGroupAlreadyExists") {
                    already_exists(&ctx, "DB subnet group", &name)
                } else {
                    e.at(&ctx, "CreateDBSubnetGroup")
                }
            })?;
        let group = created.db_subnet_group();
        let outputs = SubnetGroupOutputs {
            name: name.clone(),
            arn: group.and_then(|g| g.db_subnet_group_arn()).unwrap_or_default().to_string(),
            vpc_id: group.and_then(|g| g.vpc_id()).unwrap_or_default().to_string(),
        };
        Ok(TypedCreated { id: name, outputs })
    }

    async fn read(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        _prior: Option<&SubnetGroup>,
        _o: Option<&SubnetGroupOutputs>,
    ) -> Result<Option<TypedObserved<SubnetGroup>>, ProviderError> {
        let clients = self.aws.clients().await?;
        let got = found(&ctx, "DescribeDBSubnetGroups", clients.rds.describe_db_subnet_groups().db_subnet_group_name(id).send().await)?;
        let Some(group) = got.and_then(|g| g.db_subnet_groups().first().cloned()) else { return Ok(None) };
        let arn = group.db_subnet_group_arn().unwrap_or_default().to_string();
        let mut subnet_ids: Vec<Input<String>> =
            group.subnets().iter().filter_map(|s| s.subnet_identifier()).map(|s| Input::Value(s.to_string())).collect();
        subnet_ids.sort_by(|a, b| a.known().cmp(&b.known()));
        let inputs = SubnetGroup {
            name: Some(id.to_string()),
            description: group.db_subnet_group_description().unwrap_or_default().to_string(),
            subnet_ids,
            tags: read_tags(clients, &ctx, &arn).await?,
        };
        let outputs = SubnetGroupOutputs { name: id.to_string(), arn, vpc_id: group.vpc_id().unwrap_or_default().to_string() };
        Ok(Some(TypedObserved { id: id.to_string(), inputs, outputs }))
    }

    async fn update(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old: &SubnetGroup,
        new: &SubnetGroup,
        outputs: &SubnetGroupOutputs,
    ) -> Result<SubnetGroupOutputs, ProviderError> {
        let clients = self.aws.clients().await?;
        if old.description != new.description || old.subnet_ids != new.subnet_ids {
            clients
                .rds
                .modify_db_subnet_group()
                .db_subnet_group_name(id)
                .db_subnet_group_description(&new.description)
                .set_subnet_ids(Some(known_strings(&new.subnet_ids)))
                .send()
                .await
                .map_err(fail(&ctx, "ModifyDBSubnetGroup"))?;
        }
        update_tags(clients, &ctx, &outputs.arn, &old.tags, &new.tags).await?;
        Ok(outputs.clone())
    }

    async fn delete(&self, ctx: CallContext<'_>, id: &str, _inputs: &SubnetGroup, _o: &SubnetGroupOutputs) -> Result<(), ProviderError> {
        let clients = self.aws.clients().await?;
        match clients.rds.delete_db_subnet_group().db_subnet_group_name(id).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = AwsError::from(e);
                if e.is_not_found() { Ok(()) } else { Err(e.at(&ctx, "DeleteDBSubnetGroup")) }
            }
        }
    }

    async fn lookup(&self, ctx: CallContext<'_>, inputs: &SubnetGroup) -> Result<Option<TypedObserved<SubnetGroup>>, ProviderError> {
        match &inputs.name {
            Some(name) => self.read(ctx, name, Some(inputs), None).await,
            None => Ok(None),
        }
    }
}

/// When a parameter change takes effect.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApplyWhen {
    /// Now (dynamic parameters only).
    #[default]
    Immediate,
    /// At the instance's next reboot (static parameters, e.g. `character_set_server`).
    PendingReboot,
}

/// One engine parameter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbParameter {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub apply_method: ApplyWhen,
}

/// `aws:rds:ParameterGroup`: engine settings (`character_set_server: utf8mb4`, `time_zone: UTC`).
/// Only the parameters listed are managed; removing one resets it to the engine default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterGroup {
    /// Default: the logical name plus a random suffix (leave it so: a replacement then gets a
    /// new name and is created before the old one, which an instance may still use, is deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// e.g. `mariadb11.4`, `mysql8.0`. Changing it replaces the group.
    pub family: String,
    /// Changing it replaces the group.
    #[serde(default = "default_description")]
    pub description: String,
    #[serde(default)]
    pub parameters: Vec<DbParameter>,
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ParameterGroupOutputs {
    pub name: String,
    pub arn: String,
}

impl Resource for ParameterGroup {
    const TYPE: &'static str = "aws:rds:ParameterGroup";
    type Outputs = ParameterGroupOutputs;
}

pub struct ParameterGroupProvider {
    pub aws: Arc<Aws>,
}

fn sdk_parameter(p: &DbParameter, reset: bool) -> Parameter {
    let method = match p.apply_method {
        ApplyWhen::Immediate => ApplyMethod::Immediate,
        ApplyWhen::PendingReboot => ApplyMethod::PendingReboot,
    };
    let builder = Parameter::builder().parameter_name(&p.name).apply_method(method);
    if reset { builder.build() } else { builder.parameter_value(&p.value).build() }
}

/// Checks a family name like `mariadb11.4` or `valkey7`: an engine and a version.
pub(crate) fn check_family(problems: &mut Problems, family: &str, engines: &[&str]) {
    let ok =
        engines.iter().any(|e| family.strip_prefix(e).is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.')));
    if !ok {
        problems.add(
            "family",
            format!(
                "`{family}` is not a parameter group family of {} (e.g. {}{})",
                engines.join(" or "),
                engines[0],
                if engines[0] == "mariadb" { "11.4" } else { "7" }
            ),
        );
    }
}

#[async_trait]
impl ResourceProvider for ParameterGroupProvider {
    type Resource = ParameterGroup;

    fn replace_on(&self) -> Vec<Path> {
        vec![path("name"), path("family"), path("description")]
    }

    fn fixed_name(&self) -> Option<Path> {
        Some(path("name"))
    }

    async fn check(&self, ctx: CallContext<'_>, mut inputs: ParameterGroup, seed: &[u8; 32]) -> Result<ParameterGroup, Vec<CheckFailure>> {
        let mut problems = Problems::new();
        let name = inputs
            .name
            .get_or_insert_with(|| validate::auto_name(ctx.name, seed, 255, true, |c| c.is_ascii_alphanumeric() || c == '-'))
            .clone();
        problems.check("name", validate::hyphenated_identifier(&name, 255, true));
        check_family(&mut problems, &inputs.family, &["mariadb", "mysql"]);
        problems.check("description", validate::max_len(&inputs.description, 255));
        inputs.parameters.sort_by(|a, b| a.name.cmp(&b.name));
        for pair in inputs.parameters.windows(2) {
            if pair[0].name == pair[1].name {
                problems.add("parameters", format!("`{}` is listed twice", pair[0].name));
            }
        }
        if inputs.parameters.iter().any(|p| p.name.is_empty()) {
            problems.add("parameters", "a parameter has an empty name");
        }
        validate::tags(&mut problems, &inputs.tags);
        problems.finish(inputs)
    }

    async fn create(&self, ctx: CallContext<'_>, inputs: &ParameterGroup) -> Result<TypedCreated<ParameterGroupOutputs>, ProviderError> {
        let clients = self.aws.clients().await?;
        let name = inputs.name.clone().ok_or_else(|| ProviderError::other("internal error: name not set by check"))?;
        let created = clients
            .rds
            .create_db_parameter_group()
            .db_parameter_group_name(&name)
            .db_parameter_group_family(&inputs.family)
            .description(&inputs.description)
            .set_tags(rds_tags(&inputs.tags))
            .send()
            .await
            .map_err(|e| {
                let e = AwsError::from(e);
                if e.is_code("DBParameterGroupAlreadyExists") {
                    already_exists(&ctx, "DB parameter group", &name)
                } else {
                    e.at(&ctx, "CreateDBParameterGroup")
                }
            })?;
        let arn = created.db_parameter_group().and_then(|g| g.db_parameter_group_arn()).unwrap_or_default().to_string();
        let outputs = ParameterGroupOutputs { name: name.clone(), arn };
        let empty = ParameterGroup { parameters: Vec::new(), ..inputs.clone() };
        let partial = crate::created(&name, &outputs)?;
        self.set_parameters(clients, &ctx, &name, &empty, inputs).await.map_err(|e| e.with_partial(partial))?;
        Ok(TypedCreated { id: name, outputs })
    }

    async fn read(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        prior: Option<&ParameterGroup>,
        _o: Option<&ParameterGroupOutputs>,
    ) -> Result<Option<TypedObserved<ParameterGroup>>, ProviderError> {
        let clients = self.aws.clients().await?;
        let got =
            found(&ctx, "DescribeDBParameterGroups", clients.rds.describe_db_parameter_groups().db_parameter_group_name(id).send().await)?;
        let Some(group) = got.and_then(|g| g.db_parameter_groups().iter().find(|g| g.db_parameter_group_name() == Some(id)).cloned())
        else {
            return Ok(None);
        };
        let mut parameters = Vec::new();
        let mut marker = None;
        loop {
            let page = clients
                .rds
                .describe_db_parameters()
                .db_parameter_group_name(id)
                .source("user")
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(fail(&ctx, "DescribeDBParameters"))?;
            for p in page.parameters() {
                let name = p.parameter_name().unwrap_or_default().to_string();
                let value = p.parameter_value().unwrap_or_default().to_string();
                // How a change was applied is not a property of the value: keep what was asked.
                let apply_method = prior.and_then(|pr| pr.parameters.iter().find(|x| x.name == name)).map(|x| x.apply_method).unwrap_or(
                    match p.apply_method() {
                        Some(ApplyMethod::PendingReboot) => ApplyWhen::PendingReboot,
                        _ => ApplyWhen::Immediate,
                    },
                );
                parameters.push(DbParameter { name, value, apply_method });
            }
            marker = page.marker().map(str::to_string);
            if marker.is_none() {
                break;
            }
        }
        parameters.sort_by(|a, b| a.name.cmp(&b.name));
        let arn = group.db_parameter_group_arn().unwrap_or_default().to_string();
        let inputs = ParameterGroup {
            name: Some(id.to_string()),
            family: group.db_parameter_group_family().unwrap_or_default().to_string(),
            description: group.description().unwrap_or_default().to_string(),
            parameters,
            tags: read_tags(clients, &ctx, &arn).await?,
        };
        Ok(Some(TypedObserved { id: id.to_string(), inputs, outputs: ParameterGroupOutputs { name: id.to_string(), arn } }))
    }

    async fn update(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old: &ParameterGroup,
        new: &ParameterGroup,
        outputs: &ParameterGroupOutputs,
    ) -> Result<ParameterGroupOutputs, ProviderError> {
        let clients = self.aws.clients().await?;
        self.set_parameters(clients, &ctx, id, old, new).await?;
        update_tags(clients, &ctx, &outputs.arn, &old.tags, &new.tags).await?;
        Ok(outputs.clone())
    }

    async fn delete(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        _inputs: &ParameterGroup,
        _o: &ParameterGroupOutputs,
    ) -> Result<(), ProviderError> {
        let clients = self.aws.clients().await?;
        match clients.rds.delete_db_parameter_group().db_parameter_group_name(id).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = AwsError::from(e);
                if e.is_not_found() {
                    return Ok(());
                }
                let mut error = e.at(&ctx, "DeleteDBParameterGroup");
                if e.is_code("InvalidDBParameterGroupState") {
                    error.message.push_str("; an instance still uses it: move the instance to another group first");
                }
                Err(error)
            }
        }
    }

    async fn lookup(&self, ctx: CallContext<'_>, inputs: &ParameterGroup) -> Result<Option<TypedObserved<ParameterGroup>>, ProviderError> {
        match &inputs.name {
            Some(name) => self.read(ctx, name, Some(inputs), None).await,
            None => Ok(None),
        }
    }
}

impl ParameterGroupProvider {
    /// Sets changed and new parameters, resets removed ones (at most 20 per call, as RDS allows).
    async fn set_parameters(
        &self,
        clients: &Clients,
        ctx: &CallContext<'_>,
        name: &str,
        old: &ParameterGroup,
        new: &ParameterGroup,
    ) -> Result<(), ProviderError> {
        let changed: Vec<Parameter> =
            new.parameters.iter().filter(|p| !old.parameters.contains(p)).map(|p| sdk_parameter(p, false)).collect();
        let removed: Vec<Parameter> =
            old.parameters.iter().filter(|p| !new.parameters.iter().any(|n| n.name == p.name)).map(|p| sdk_parameter(p, true)).collect();
        for batch in changed.chunks(20) {
            clients
                .rds
                .modify_db_parameter_group()
                .db_parameter_group_name(name)
                .set_parameters(Some(batch.to_vec()))
                .send()
                .await
                .map_err(fail(ctx, "ModifyDBParameterGroup"))?;
        }
        for batch in removed.chunks(20) {
            clients
                .rds
                .reset_db_parameter_group()
                .db_parameter_group_name(name)
                .set_parameters(Some(batch.to_vec()))
                .send()
                .await
                .map_err(fail(ctx, "ResetDBParameterGroup"))?;
        }
        Ok(())
    }
}
