//! ElastiCache: cache subnet groups, cache parameter groups, and Redis/Valkey replication groups.

mod replication_group;

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_elasticache::types::{ParameterNameValue, Tag};
use berth_engine::async_trait;
use berth_engine::{
    CallContext, CheckFailure, ErrorKind, Input, Path, ProviderError, Resource, ResourceProvider, TypedCreated, TypedObserved,
};
use serde::{Deserialize, Serialize};

pub use replication_group::{CacheEngine, ReplicationGroup, ReplicationGroupOutputs, ReplicationGroupProvider};

use crate::config::{Aws, Clients};
use crate::error::{AwsError, fail, found};
use crate::validate::{self, Problems, Tags};

fn default_description() -> String {
    "Managed by berth".into()
}

fn path(field: &str) -> Path {
    Path::parse(field).unwrap_or_else(|_| Path::root())
}

fn already_exists(ctx: &CallContext<'_>, what: &str, name: &str) -> ProviderError {
    ProviderError::new(ErrorKind::AlreadyExists { id: name.to_string() }, format!("{}: {what} `{name}` already exists", ctx.urn))
}

pub(crate) async fn read_tags(clients: &Clients, ctx: &CallContext<'_>, arn: &str) -> Result<Tags, ProviderError> {
    let listed = clients.elasticache.list_tags_for_resource().resource_name(arn).send().await.map_err(fail(ctx, "ListTagsForResource"))?;
    Ok(listed.tag_list().iter().map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string())).collect())
}

pub(crate) fn cache_tags(tags: &Tags) -> Option<Vec<Tag>> {
    if tags.is_empty() { None } else { Some(tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()) }
}

pub(crate) async fn update_tags(clients: &Clients, ctx: &CallContext<'_>, arn: &str, old: &Tags, new: &Tags) -> Result<(), ProviderError> {
    let (removed, set) = crate::iam::tag_changes(old, new);
    if !removed.is_empty() {
        clients
            .elasticache
            .remove_tags_from_resource()
            .resource_name(arn)
            .set_tag_keys(Some(removed))
            .send()
            .await
            .map_err(fail(ctx, "RemoveTagsFromResource"))?;
    }
    if let Some(tags) = cache_tags(&set) {
        clients
            .elasticache
            .add_tags_to_resource()
            .resource_name(arn)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(fail(ctx, "AddTagsToResource"))?;
    }
    Ok(())
}

fn known_strings(list: &[Input<String>]) -> Vec<String> {
    list.iter().filter_map(|i| i.known().cloned()).collect()
}

/// `aws:elasticache:SubnetGroup`.
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
    const TYPE: &'static str = "aws:elasticache:SubnetGroup";
    type Outputs = SubnetGroupOutputs;
}

pub struct SubnetGroupProvider {
    pub aws: Arc<Aws>,
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
        if name.is_empty() || name.len() > 255 || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            problems.add("name", format!("`{name}` must have 1 to 255 lower-case letters, digits or hyphens"));
        }
        problems.check("description", validate::max_len(&inputs.description, 255));
        if inputs.subnet_ids.is_empty() {
            problems.add("subnet_ids", "give at least one subnet (two or more, in different zones, for multi-AZ)");
        }
        for s in &inputs.subnet_ids {
            if let Input::Value(id) = s {
                problems.check("subnet_ids", validate::resource_id(id, "subnet-"));
            }
        }
        if inputs.subnet_ids.iter().all(Input::is_known) {
            inputs.subnet_ids.sort_by(|a, b| a.known().cmp(&b.known()));
        }
        validate::tags(&mut problems, &inputs.tags);
        problems.finish(inputs)
    }

    async fn create(&self, ctx: CallContext<'_>, inputs: &SubnetGroup) -> Result<TypedCreated<SubnetGroupOutputs>, ProviderError> {
        let clients = self.aws.clients().await?;
        let name = inputs.name.clone().ok_or_else(|| ProviderError::other("internal error: name not set by check"))?;
        let created = clients
            .elasticache
            .create_cache_subnet_group()
            .cache_subnet_group_name(&name)
            .cache_subnet_group_description(&inputs.description)
            .set_subnet_ids(Some(known_strings(&inputs.subnet_ids)))
            .set_tags(cache_tags(&inputs.tags))
            .send()
            .await
            .map_err(|e| {
                let e = AwsError::from(e);
                if e.is_code("CacheSubnetGroupAlreadyExists") {
                    already_exists(&ctx, "cache subnet group", &name)
                } else {
                    e.at(&ctx, "CreateCacheSubnetGroup")
                }
            })?;
        let group = created.cache_subnet_group();
        let outputs = SubnetGroupOutputs {
            name: name.clone(),
            arn: group.and_then(|g| g.arn()).unwrap_or_default().to_string(),
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
        let got = found(
            &ctx,
            "DescribeCacheSubnetGroups",
            clients.elasticache.describe_cache_subnet_groups().cache_subnet_group_name(id).send().await,
        )?;
        let Some(group) = got.and_then(|g| g.cache_subnet_groups().first().cloned()) else { return Ok(None) };
        let arn = group.arn().unwrap_or_default().to_string();
        let mut subnet_ids: Vec<Input<String>> =
            group.subnets().iter().filter_map(|s| s.subnet_identifier()).map(|s| Input::Value(s.to_string())).collect();
        subnet_ids.sort_by(|a, b| a.known().cmp(&b.known()));
        let inputs = SubnetGroup {
            name: Some(id.to_string()),
            description: group.cache_subnet_group_description().unwrap_or_default().to_string(),
            subnet_ids,
            tags: read_tags(clients, &ctx, &arn).await?,
        };
        Ok(Some(TypedObserved {
            id: id.to_string(),
            inputs,
            outputs: SubnetGroupOutputs { name: id.to_string(), arn, vpc_id: group.vpc_id().unwrap_or_default().to_string() },
        }))
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
                .elasticache
                .modify_cache_subnet_group()
                .cache_subnet_group_name(id)
                .cache_subnet_group_description(&new.description)
                .set_subnet_ids(Some(known_strings(&new.subnet_ids)))
                .send()
                .await
                .map_err(fail(&ctx, "ModifyCacheSubnetGroup"))?;
        }
        update_tags(clients, &ctx, &outputs.arn, &old.tags, &new.tags).await?;
        Ok(outputs.clone())
    }

    async fn delete(&self, ctx: CallContext<'_>, id: &str, _inputs: &SubnetGroup, _o: &SubnetGroupOutputs) -> Result<(), ProviderError> {
        let clients = self.aws.clients().await?;
        match clients.elasticache.delete_cache_subnet_group().cache_subnet_group_name(id).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = AwsError::from(e);
                if e.is_not_found() { Ok(()) } else { Err(e.at(&ctx, "DeleteCacheSubnetGroup")) }
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

/// `aws:elasticache:ParameterGroup`: engine settings (`maxmemory-policy: allkeys-lru`). Only the
/// parameters listed are managed; removing one resets it to the engine default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterGroup {
    /// Default: the logical name plus a random suffix (so a replacement can be created before the
    /// old group, still in use, is deleted). Changing it replaces the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// e.g. `valkey7`, `redis7`. Changing it replaces the group.
    pub family: String,
    /// Changing it replaces the group.
    #[serde(default = "default_description")]
    pub description: String,
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ParameterGroupOutputs {
    pub name: String,
    pub arn: String,
}

impl Resource for ParameterGroup {
    const TYPE: &'static str = "aws:elasticache:ParameterGroup";
    type Outputs = ParameterGroupOutputs;
}

pub struct ParameterGroupProvider {
    pub aws: Arc<Aws>,
}

impl ParameterGroupProvider {
    async fn set_parameters(
        &self,
        clients: &Clients,
        ctx: &CallContext<'_>,
        name: &str,
        old: &BTreeMap<String, String>,
        new: &BTreeMap<String, String>,
    ) -> Result<(), ProviderError> {
        let changed: Vec<ParameterNameValue> = new
            .iter()
            .filter(|(k, v)| old.get(*k) != Some(v))
            .map(|(k, v)| ParameterNameValue::builder().parameter_name(k).parameter_value(v).build())
            .collect();
        let removed: Vec<ParameterNameValue> =
            old.keys().filter(|k| !new.contains_key(*k)).map(|k| ParameterNameValue::builder().parameter_name(k).build()).collect();
        for batch in changed.chunks(20) {
            clients
                .elasticache
                .modify_cache_parameter_group()
                .cache_parameter_group_name(name)
                .set_parameter_name_values(Some(batch.to_vec()))
                .send()
                .await
                .map_err(fail(ctx, "ModifyCacheParameterGroup"))?;
        }
        for batch in removed.chunks(20) {
            clients
                .elasticache
                .reset_cache_parameter_group()
                .cache_parameter_group_name(name)
                .set_parameter_name_values(Some(batch.to_vec()))
                .send()
                .await
                .map_err(fail(ctx, "ResetCacheParameterGroup"))?;
        }
        Ok(())
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
        crate::rds::check_family(&mut problems, &inputs.family, &["valkey", "redis"]);
        problems.check("description", validate::max_len(&inputs.description, 255));
        if inputs.parameters.keys().any(String::is_empty) {
            problems.add("parameters", "a parameter has an empty name");
        }
        validate::tags(&mut problems, &inputs.tags);
        problems.finish(inputs)
    }

    async fn create(&self, ctx: CallContext<'_>, inputs: &ParameterGroup) -> Result<TypedCreated<ParameterGroupOutputs>, ProviderError> {
        let clients = self.aws.clients().await?;
        let name = inputs.name.clone().ok_or_else(|| ProviderError::other("internal error: name not set by check"))?;
        let created = clients
            .elasticache
            .create_cache_parameter_group()
            .cache_parameter_group_name(&name)
            .cache_parameter_group_family(&inputs.family)
            .description(&inputs.description)
            .set_tags(cache_tags(&inputs.tags))
            .send()
            .await
            .map_err(|e| {
                let e = AwsError::from(e);
                if e.is_code("CacheParameterGroupAlreadyExists") {
                    already_exists(&ctx, "cache parameter group", &name)
                } else {
                    e.at(&ctx, "CreateCacheParameterGroup")
                }
            })?;
        let arn = created.cache_parameter_group().and_then(|g| g.arn()).unwrap_or_default().to_string();
        let outputs = ParameterGroupOutputs { name: name.clone(), arn };
        let partial = crate::created(&name, &outputs)?;
        self.set_parameters(clients, &ctx, &name, &BTreeMap::new(), &inputs.parameters).await.map_err(|e| e.with_partial(partial))?;
        Ok(TypedCreated { id: name, outputs })
    }

    async fn read(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        _prior: Option<&ParameterGroup>,
        _o: Option<&ParameterGroupOutputs>,
    ) -> Result<Option<TypedObserved<ParameterGroup>>, ProviderError> {
        let clients = self.aws.clients().await?;
        let got = found(
            &ctx,
            "DescribeCacheParameterGroups",
            clients.elasticache.describe_cache_parameter_groups().cache_parameter_group_name(id).send().await,
        )?;
        let Some(group) = got.and_then(|g| g.cache_parameter_groups().iter().find(|g| g.cache_parameter_group_name() == Some(id)).cloned())
        else {
            return Ok(None);
        };
        let mut parameters = BTreeMap::new();
        let mut marker = None;
        loop {
            let page = clients
                .elasticache
                .describe_cache_parameters()
                .cache_parameter_group_name(id)
                .source("user")
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(fail(&ctx, "DescribeCacheParameters"))?;
            for p in page.parameters() {
                parameters.insert(p.parameter_name().unwrap_or_default().to_string(), p.parameter_value().unwrap_or_default().to_string());
            }
            marker = page.marker().map(str::to_string);
            if marker.is_none() {
                break;
            }
        }
        let arn = group.arn().unwrap_or_default().to_string();
        let inputs = ParameterGroup {
            name: Some(id.to_string()),
            family: group.cache_parameter_group_family().unwrap_or_default().to_string(),
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
        self.set_parameters(clients, &ctx, id, &old.parameters, &new.parameters).await?;
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
        match clients.elasticache.delete_cache_parameter_group().cache_parameter_group_name(id).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = AwsError::from(e);
                if e.is_not_found() { Ok(()) } else { Err(e.at(&ctx, "DeleteCacheParameterGroup")) }
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
