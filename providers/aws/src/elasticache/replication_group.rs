//! `aws:elasticache:ReplicationGroup`: a Redis or Valkey primary with replicas (cluster mode
//! disabled), as Open edX uses it for caching and Celery. Create and update return once the
//! group is `available`; delete returns once it is gone.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_elasticache::types::{AuthTokenUpdateStrategyType, AutomaticFailoverStatus, MultiAzStatus};
use berth_engine::{
    CallContext, CheckFailure, Input, Path, ProviderError, Resource, ResourceProvider, Secret, TypedCreated, TypedObserved, async_trait,
};
use serde::{Deserialize, Serialize};

use super::{already_exists, cache_tags, path, read_tags, update_tags};
use crate::config::{Aws, Clients};
use crate::error::{AwsError, found, scrub};
use crate::validate::{self, Problems, Tags};
use crate::wait::{self, Change, Poll};

/// Terraform's defaults for how long a replication group may take.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60 * 60);
const UPDATE_TIMEOUT: Duration = Duration::from_secs(40 * 60);
const DELETE_TIMEOUT: Duration = Duration::from_secs(40 * 60);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheEngine {
    #[default]
    Valkey,
    Redis,
}

impl CacheEngine {
    fn as_str(self) -> &'static str {
        match self {
            CacheEngine::Valkey => "valkey",
            CacheEngine::Redis => "redis",
        }
    }
}

fn yes() -> bool {
    true
}
fn one() -> i32 {
    1
}
fn default_port() -> i32 {
    6379
}
fn default_description() -> String {
    "Managed by berth".into()
}

/// `aws:elasticache:ReplicationGroup`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationGroup {
    /// Default: the logical name plus a random suffix (at most 40 characters). Changing it
    /// replaces the group (deleting first when it stays the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_group_id: Option<String>,
    #[serde(default = "default_description")]
    pub description: String,
    /// `valkey` (default) or `redis`. Changing it replaces the group.
    #[serde(default)]
    pub engine: CacheEngine,
    /// e.g. `7.2`. Updated in place.
    pub engine_version: String,
    /// e.g. `cache.t3.medium`. Updated in place.
    pub node_type: String,
    /// Nodes: one primary plus replicas, 1 to 6. Changed in place: replicas are added or removed
    /// (IncreaseReplicaCount / DecreaseReplicaCount, applied immediately whatever
    /// `apply_immediately` says: AWS supports nothing else).
    #[serde(default = "one")]
    pub num_cache_clusters: i32,
    /// Changing it replaces the group.
    #[serde(default = "default_port")]
    pub port: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_group_name: Option<Input<String>>,
    /// Changing it replaces the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_group_name: Option<Input<String>>,
    #[serde(default)]
    pub security_group_ids: Vec<Input<String>>,
    /// TLS between clients and the cache (default on). Changing it replaces the group.
    #[serde(default = "yes")]
    pub transit_encryption_enabled: bool,
    /// Encryption at rest (default on). Changing it replaces the group.
    #[serde(default = "yes")]
    pub at_rest_encryption_enabled: bool,
    /// Changing it replaces the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<Input<String>>,
    /// The AUTH token: 16 to 128 characters (letters, digits and !&#$^<>-); needs TLS. A change
    /// rotates it (the old token stays valid until the next rotation, as with Terraform).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<Input<Secret<String>>>,
    /// Needs at least two nodes.
    #[serde(default)]
    pub automatic_failover_enabled: bool,
    /// Needs automatic failover.
    #[serde(default)]
    pub multi_az_enabled: bool,
    /// Days of daily snapshots kept, 0 to 35.
    #[serde(default)]
    pub snapshot_retention_limit: i32,
    /// Apply modifications now (default) rather than in the maintenance window. Only berth reads it.
    #[serde(default = "yes")]
    pub apply_immediately: bool,
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
}

/// The serde defaults; `engine_version` and `node_type` have none and must be set.
impl Default for ReplicationGroup {
    fn default() -> Self {
        ReplicationGroup {
            replication_group_id: None,
            description: default_description(),
            engine: CacheEngine::default(),
            engine_version: String::new(),
            node_type: String::new(),
            num_cache_clusters: one(),
            port: default_port(),
            parameter_group_name: None,
            subnet_group_name: None,
            security_group_ids: Vec::new(),
            transit_encryption_enabled: true,
            at_rest_encryption_enabled: true,
            kms_key_id: None,
            auth_token: None,
            automatic_failover_enabled: false,
            multi_az_enabled: false,
            snapshot_retention_limit: 0,
            apply_immediately: true,
            tags: Tags::new(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicationGroupOutputs {
    pub arn: String,
    pub id: String,
    pub primary_endpoint_address: String,
    pub reader_endpoint_address: String,
    pub port: i32,
    pub member_clusters: Vec<String>,
}

impl Resource for ReplicationGroup {
    const TYPE: &'static str = "aws:elasticache:ReplicationGroup";
    type Outputs = ReplicationGroupOutputs;
}

pub struct ReplicationGroupProvider {
    pub aws: Arc<Aws>,
}

fn check_group(problems: &mut Problems, g: &ReplicationGroup) {
    problems.check("description", validate::max_len(&g.description, 255));
    if !g.engine_version.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())) {
        problems.add("engine_version", format!("`{}` is not a version like 7.2", g.engine_version));
    }
    let node_ok = g.node_type.strip_prefix("cache.").is_some_and(|rest| {
        let parts: Vec<&str> = rest.split('.').collect();
        parts.len() == 2 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
    });
    if !node_ok {
        problems.add("node_type", format!("`{}` is not a node type like cache.t3.medium", g.node_type));
    }
    if !(1..=6).contains(&g.num_cache_clusters) {
        problems.add("num_cache_clusters", format!("{}: a replication group has 1 to 6 nodes", g.num_cache_clusters));
    }
    if g.automatic_failover_enabled && g.num_cache_clusters < 2 {
        problems.add("automatic_failover_enabled", "automatic failover needs a replica: set num_cache_clusters to 2 or more");
    }
    if g.multi_az_enabled && !g.automatic_failover_enabled {
        problems.add("multi_az_enabled", "multi-AZ needs `automatic_failover_enabled: true`");
    }
    if !(1..=65535).contains(&g.port) {
        problems.add("port", format!("{} is not a port", g.port));
    }
    if !(0..=35).contains(&g.snapshot_retention_limit) {
        problems.add("snapshot_retention_limit", format!("{} days is out of range: 0 to 35", g.snapshot_retention_limit));
    }
    if g.kms_key_id.is_some() && !g.at_rest_encryption_enabled {
        problems.add("kms_key_id", "a KMS key needs `at_rest_encryption_enabled: true`");
    }
    if let Some(token) = &g.auth_token {
        if !g.transit_encryption_enabled {
            problems.add("auth_token", "an AUTH token needs `transit_encryption_enabled: true` (AWS sends it only over TLS)");
        }
        if let Input::Value(token) = token {
            let t = token.expose();
            let n = t.chars().count();
            if !(16..=128).contains(&n) {
                problems.add("auth_token", format!("the AUTH token has {n} characters; AWS requires 16 to 128"));
            } else if !t.chars().all(|c| c.is_ascii_alphanumeric() || "!&#$^<>-".contains(c)) {
                problems.add("auth_token", "the AUTH token may contain only letters, digits and the characters ! & # $ ^ < > -");
            }
        }
    }
    for s in &g.security_group_ids {
        if let Input::Value(id) = s {
            problems.check("security_group_ids", validate::resource_id(id, "sg-"));
        }
    }
}

fn known<T: Clone>(input: &Input<T>) -> Result<T, ProviderError> {
    input.value().cloned().map_err(|e| ProviderError::other(e.to_string()))
}

impl ReplicationGroupProvider {
    async fn describe(
        &self,
        clients: &Clients,
        ctx: &CallContext<'_>,
        id: &str,
    ) -> Result<Option<aws_sdk_elasticache::types::ReplicationGroup>, ProviderError> {
        let got = found(
            ctx,
            "DescribeReplicationGroups",
            clients.elasticache.describe_replication_groups().replication_group_id(id).send().await,
        )?;
        Ok(got.and_then(|g| g.replication_groups().first().cloned()))
    }

    async fn await_available(
        &self,
        clients: &Clients,
        ctx: &CallContext<'_>,
        id: &str,
        started: tokio::time::Instant,
        change: Change,
    ) -> Result<aws_sdk_elasticache::types::ReplicationGroup, ProviderError> {
        let limit = if change == Change::Create { CREATE_TIMEOUT } else { UPDATE_TIMEOUT };
        wait::until_ready(
            ctx,
            change,
            limit,
            clients.poll_interval,
            started,
            &format!("replication group `{id}` to be available"),
            || async {
                let group = self.describe(clients, ctx, id).await?.ok_or_else(|| {
                    ProviderError::not_found(format!("{}: replication group `{id}` disappeared while berth waited for it", ctx.urn))
                })?;
                let status = group.status().unwrap_or("unknown").to_string();
                if matches!(status.as_str(), "create-failed" | "failed") {
                    return Err(ProviderError::api(
                        status.clone(),
                        format!("{}: replication group `{id}` is `{status}`; see the ElastiCache console's events for why", ctx.urn),
                    ));
                }
                Ok(if status == "available" { Poll::Ready(group) } else { Poll::Waiting(status) })
            },
        )
        .await
    }

    /// Adds or removes replicas so that the group has `nodes` nodes (one shard: a primary and
    /// `nodes - 1` replicas), as Terraform does. AWS supports only immediate application.
    async fn resize(&self, clients: &Clients, ctx: &CallContext<'_>, id: &str, from: i32, nodes: i32) -> Result<(), ProviderError> {
        let replicas = nodes - 1;
        if nodes > from {
            clients
                .elasticache
                .increase_replica_count()
                .replication_group_id(id)
                .new_replica_count(replicas)
                .apply_immediately(true)
                .send()
                .await
                .map_err(|e| AwsError::from(e).at(ctx, "IncreaseReplicaCount"))?;
        } else {
            clients
                .elasticache
                .decrease_replica_count()
                .replication_group_id(id)
                .new_replica_count(replicas)
                .apply_immediately(true)
                .send()
                .await
                .map_err(|e| AwsError::from(e).at(ctx, "DecreaseReplicaCount"))?;
        }
        Ok(())
    }

    fn outputs(group: &aws_sdk_elasticache::types::ReplicationGroup, port: i32) -> ReplicationGroupOutputs {
        let node_group = group.node_groups().first();
        let primary = node_group.and_then(|n| n.primary_endpoint());
        ReplicationGroupOutputs {
            arn: group.arn().unwrap_or_default().to_string(),
            id: group.replication_group_id().unwrap_or_default().to_string(),
            primary_endpoint_address: primary.and_then(|e| e.address()).unwrap_or_default().to_string(),
            reader_endpoint_address: node_group.and_then(|n| n.reader_endpoint()).and_then(|e| e.address()).unwrap_or_default().to_string(),
            port: primary.and_then(|e| e.port()).unwrap_or(port),
            member_clusters: group.member_clusters().to_vec(),
        }
    }
}

#[async_trait]
impl ResourceProvider for ReplicationGroupProvider {
    type Resource = ReplicationGroup;

    fn replace_on(&self) -> Vec<Path> {
        [
            "replication_group_id",
            "engine",
            "port",
            "subnet_group_name",
            "transit_encryption_enabled",
            "at_rest_encryption_enabled",
            "kms_key_id",
        ]
        .iter()
        .map(|f| path(f))
        .collect()
    }

    fn fixed_name(&self) -> Option<Path> {
        Some(path("replication_group_id"))
    }

    fn write_only(&self) -> Vec<Path> {
        vec![path("auth_token")]
    }

    async fn check(
        &self,
        ctx: CallContext<'_>,
        mut inputs: ReplicationGroup,
        seed: &[u8; 32],
    ) -> Result<ReplicationGroup, Vec<CheckFailure>> {
        let mut problems = Problems::new();
        let id = inputs
            .replication_group_id
            .get_or_insert_with(|| validate::auto_name(ctx.name, seed, 40, true, |c| c.is_ascii_alphanumeric() || c == '-'))
            .clone();
        problems.check("replication_group_id", validate::hyphenated_identifier(&id, 40, true));
        check_group(&mut problems, &inputs);
        if inputs.security_group_ids.iter().all(Input::is_known) {
            inputs.security_group_ids.sort_by(|a, b| a.known().cmp(&b.known()));
        }
        validate::tags(&mut problems, &inputs.tags);
        problems.finish(inputs)
    }

    async fn create(&self, ctx: CallContext<'_>, g: &ReplicationGroup) -> Result<TypedCreated<ReplicationGroupOutputs>, ProviderError> {
        let started = tokio::time::Instant::now();
        let clients = self.aws.clients().await?;
        let id = g.replication_group_id.clone().ok_or_else(|| ProviderError::other("internal error: id not set by check"))?;
        let token = g.auth_token.as_ref().map(known).transpose()?;
        let secrets: Vec<&str> = token.iter().map(|t| t.expose().as_str()).collect();
        clients
            .elasticache
            .create_replication_group()
            .replication_group_id(&id)
            .replication_group_description(&g.description)
            .engine(g.engine.as_str())
            .engine_version(&g.engine_version)
            .cache_node_type(&g.node_type)
            // One shard (cluster mode disabled): a primary and `num_cache_clusters - 1` replicas.
            .num_node_groups(1)
            .replicas_per_node_group(g.num_cache_clusters - 1)
            .port(g.port)
            .set_cache_parameter_group_name(g.parameter_group_name.as_ref().map(known).transpose()?)
            .set_cache_subnet_group_name(g.subnet_group_name.as_ref().map(known).transpose()?)
            .set_security_group_ids(
                Some(g.security_group_ids.iter().filter_map(|s| s.known().cloned()).collect::<Vec<_>>()).filter(|l| !l.is_empty()),
            )
            .transit_encryption_enabled(g.transit_encryption_enabled)
            .at_rest_encryption_enabled(g.at_rest_encryption_enabled)
            .set_kms_key_id(g.kms_key_id.as_ref().map(known).transpose()?)
            .set_auth_token(token.as_ref().map(|t| t.expose().clone()))
            .automatic_failover_enabled(g.automatic_failover_enabled)
            .multi_az_enabled(g.multi_az_enabled)
            .snapshot_retention_limit(g.snapshot_retention_limit)
            .set_tags(cache_tags(&g.tags))
            .send()
            .await
            .map_err(|e| {
                let e = AwsError::from(e);
                let error = if e.is_code("ReplicationGroupAlreadyExists") {
                    already_exists(&ctx, "replication group", &id)
                } else {
                    e.at(&ctx, "CreateReplicationGroup")
                };
                scrub(error, &secrets)
            })?;
        let group = self.await_available(clients, &ctx, &id, started, Change::Create).await.map_err(|e| {
            let outputs = ReplicationGroupOutputs { id: id.clone(), ..ReplicationGroupOutputs::default() };
            match crate::created(&id, &outputs) {
                Ok(partial) => e.with_partial(partial),
                Err(_) => e,
            }
        })?;
        Ok(TypedCreated { id, outputs: Self::outputs(&group, g.port) })
    }

    async fn read(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        prior: Option<&ReplicationGroup>,
        _o: Option<&ReplicationGroupOutputs>,
    ) -> Result<Option<TypedObserved<ReplicationGroup>>, ProviderError> {
        let clients = self.aws.clients().await?;
        let Some(group) = self.describe(clients, &ctx, id).await? else { return Ok(None) };
        if group.status() == Some("deleting") {
            return Ok(None);
        }
        // Engine version, parameter group, subnet group and security groups are properties of
        // the member clusters; when none is reported, keep what was recorded.
        let member = match group.member_clusters().first() {
            Some(member) => {
                let got = found(
                    &ctx,
                    "DescribeCacheClusters",
                    clients.elasticache.describe_cache_clusters().cache_cluster_id(member).send().await,
                )?;
                got.and_then(|g| g.cache_clusters().first().cloned())
            }
            None => None,
        };
        let port = prior.map(|p| p.port).unwrap_or(6379);
        let outputs = Self::outputs(&group, port);
        let live_version = member.as_ref().and_then(|m| m.engine_version()).map(str::to_string);
        let engine_version = match (prior, live_version) {
            (Some(p), Some(live)) if live == p.engine_version || live.starts_with(&format!("{}.", p.engine_version)) => {
                p.engine_version.clone()
            }
            (_, Some(live)) => live,
            (Some(p), None) => p.engine_version.clone(),
            (None, None) => String::new(),
        };
        // Without security groups AWS uses the VPC's default group: not a change berth made.
        let mut security_group_ids: Vec<Input<String>> = match &member {
            _ if prior.is_some_and(|p| p.security_group_ids.is_empty()) => Vec::new(),
            Some(m) => m.security_groups().iter().filter_map(|s| s.security_group_id()).map(|s| Input::Value(s.to_string())).collect(),
            None => prior.map(|p| p.security_group_ids.clone()).unwrap_or_default(),
        };
        security_group_ids.sort_by(|a, b| a.known().cmp(&b.known()));
        let engine = match group.engine() {
            Some("redis") => CacheEngine::Redis,
            Some("valkey") => CacheEngine::Valkey,
            _ => prior.map(|p| p.engine).unwrap_or_default(),
        };
        let inputs = ReplicationGroup {
            replication_group_id: group.replication_group_id().map(str::to_string),
            description: group.description().unwrap_or_default().to_string(),
            engine,
            engine_version,
            node_type: group.cache_node_type().unwrap_or_default().to_string(),
            num_cache_clusters: if group.member_clusters().is_empty() {
                prior.map(|p| p.num_cache_clusters).unwrap_or(1)
            } else {
                group.member_clusters().len() as i32
            },
            port: outputs.port,
            parameter_group_name: match &member {
                Some(m) => m
                    .cache_parameter_group()
                    .and_then(|p| p.cache_parameter_group_name())
                    .filter(|n| !n.starts_with("default.") || prior.is_some_and(|p| p.parameter_group_name.is_some()))
                    .map(|n| Input::Value(n.to_string())),
                None => prior.and_then(|p| p.parameter_group_name.clone()),
            },
            subnet_group_name: match &member {
                Some(m) => m.cache_subnet_group_name().map(|n| Input::Value(n.to_string())),
                None => prior.and_then(|p| p.subnet_group_name.clone()),
            },
            security_group_ids,
            transit_encryption_enabled: group.transit_encryption_enabled().unwrap_or(false),
            at_rest_encryption_enabled: group.at_rest_encryption_enabled().unwrap_or(false),
            kms_key_id: if prior.is_some_and(|p| p.kms_key_id.is_some()) {
                group.kms_key_id().map(|k| Input::Value(k.to_string()))
            } else {
                None
            },
            // ElastiCache never reveals the token: what berth last set is what it is.
            auth_token: match (group.auth_token_enabled(), prior) {
                (Some(true), Some(p)) => p.auth_token.clone(),
                (Some(true), None) => Some(Input::Value(Secret::new(String::new()))),
                _ => None,
            },
            automatic_failover_enabled: matches!(
                group.automatic_failover(),
                Some(AutomaticFailoverStatus::Enabled | AutomaticFailoverStatus::Enabling)
            ),
            multi_az_enabled: matches!(group.multi_az(), Some(MultiAzStatus::Enabled)),
            snapshot_retention_limit: group.snapshot_retention_limit().unwrap_or(0),
            apply_immediately: prior.is_none_or(|p| p.apply_immediately),
            tags: read_tags(clients, &ctx, group.arn().unwrap_or_default()).await?,
        };
        Ok(Some(TypedObserved { id: id.to_string(), inputs, outputs }))
    }

    async fn update(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old: &ReplicationGroup,
        new: &ReplicationGroup,
        old_outputs: &ReplicationGroupOutputs,
    ) -> Result<ReplicationGroupOutputs, ProviderError> {
        let started = tokio::time::Instant::now();
        let clients = self.aws.clients().await?;
        let mut request = clients.elasticache.modify_replication_group().replication_group_id(id).apply_immediately(new.apply_immediately);
        let mut any = false;
        let mut secret = None;
        macro_rules! changed {
            ($field:ident, $set:expr) => {
                if old.$field != new.$field {
                    any = true;
                    request = $set;
                }
            };
        }
        changed!(description, request.replication_group_description(&new.description));
        changed!(engine_version, request.engine_version(&new.engine_version));
        changed!(node_type, request.cache_node_type(&new.node_type));
        changed!(parameter_group_name, request.set_cache_parameter_group_name(new.parameter_group_name.as_ref().map(known).transpose()?));
        if !new.security_group_ids.is_empty() {
            changed!(
                security_group_ids,
                request.set_security_group_ids(Some(new.security_group_ids.iter().filter_map(|s| s.known().cloned()).collect()))
            );
        }
        changed!(automatic_failover_enabled, request.automatic_failover_enabled(new.automatic_failover_enabled));
        changed!(multi_az_enabled, request.multi_az_enabled(new.multi_az_enabled));
        changed!(snapshot_retention_limit, request.snapshot_retention_limit(new.snapshot_retention_limit));
        let old_token = old.auth_token.as_ref().and_then(|t| t.known()).map(|t| t.expose().clone());
        let new_token = new.auth_token.as_ref().map(known).transpose()?.map(|t| t.expose().clone());
        if old_token != new_token {
            any = true;
            request = match &new_token {
                Some(token) => request.auth_token(token).auth_token_update_strategy(AuthTokenUpdateStrategyType::Rotate),
                None => request.auth_token_update_strategy(AuthTokenUpdateStrategyType::Delete),
            };
            secret = new_token.clone();
        }
        // Node count changes go around the modification, each once the group is `available`
        // again (AWS refuses a change while another is under way): replicas are added first, so
        // that failover can then be enabled, and removed last, once failover is disabled.
        let (from, nodes) = (old.num_cache_clusters, new.num_cache_clusters);
        let mut pending = false;
        if nodes > from {
            self.resize(clients, &ctx, id, from, nodes).await?;
            pending = true;
        }
        if any {
            if pending {
                self.await_available(clients, &ctx, id, started, Change::Update).await?;
            }
            request
                .send()
                .await
                .map_err(|e| scrub(AwsError::from(e).at(&ctx, "ModifyReplicationGroup"), &[secret.as_deref().unwrap_or_default()]))?;
            pending = true;
        }
        if nodes < from {
            if pending {
                self.await_available(clients, &ctx, id, started, Change::Update).await?;
            }
            self.resize(clients, &ctx, id, from, nodes).await?;
            pending = true;
        }
        update_tags(clients, &ctx, &old_outputs.arn, &old.tags, &new.tags).await?;
        if !pending {
            return Ok(old_outputs.clone());
        }
        let group = self.await_available(clients, &ctx, id, started, Change::Update).await?;
        Ok(Self::outputs(&group, new.port))
    }

    async fn delete(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        _g: &ReplicationGroup,
        _o: &ReplicationGroupOutputs,
    ) -> Result<(), ProviderError> {
        let started = tokio::time::Instant::now();
        let clients = self.aws.clients().await?;
        if let Err(e) = clients.elasticache.delete_replication_group().replication_group_id(id).send().await {
            let e = AwsError::from(e);
            if e.is_not_found() {
                return Ok(());
            }
            return Err(e.at(&ctx, "DeleteReplicationGroup"));
        }
        wait::until_ready(
            &ctx,
            Change::Delete,
            DELETE_TIMEOUT,
            clients.poll_interval,
            started,
            &format!("replication group `{id}` to be deleted"),
            || async {
                Ok(match self.describe(clients, &ctx, id).await? {
                    None => Poll::Ready(()),
                    Some(group) => Poll::Waiting(group.status().unwrap_or("deleting").to_string()),
                })
            },
        )
        .await
    }

    async fn lookup(
        &self,
        ctx: CallContext<'_>,
        inputs: &ReplicationGroup,
    ) -> Result<Option<TypedObserved<ReplicationGroup>>, ProviderError> {
        match &inputs.replication_group_id {
            Some(id) => self.read(ctx, id, Some(inputs), None).await,
            None => Ok(None),
        }
    }

    async fn find_tagged(&self, ctx: CallContext<'_>, tags: &Tags) -> Result<Vec<String>, ProviderError> {
        let clients = self.aws.clients().await?;
        let listed = clients
            .elasticache
            .describe_replication_groups()
            .send()
            .await
            .map_err(|e| AwsError::from(e).at(&ctx, "DescribeReplicationGroups"))?;
        let mut ids = Vec::new();
        for group in listed.replication_groups() {
            let (Some(id), Some(arn)) = (group.replication_group_id(), group.arn()) else { continue };
            let live = read_tags(clients, &ctx, arn).await?;
            if validate::has_tags(live.iter().map(|(k, v)| (k.as_str(), v.as_str())), tags) {
                ids.push(id.to_string());
            }
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ReplicationGroup {
        serde_json::from_value(serde_json::json!({"engine_version": "7.2", "node_type": "cache.t3.micro"})).unwrap()
    }

    #[test]
    fn auth_token_rules() {
        let mut p = Problems::new();
        check_group(&mut p, &ReplicationGroup { auth_token: Some(Input::Value(Secret::new("a-long-enough-token".into()))), ..base() });
        assert!(p.0.is_empty(), "{:?}", p.0);
        let mut p = Problems::new();
        check_group(
            &mut p,
            &ReplicationGroup { auth_token: Some(Input::Value(Secret::new("short".into()))), transit_encryption_enabled: false, ..base() },
        );
        let text = format!("{:?}", p.0);
        assert!(text.contains("needs `transit_encryption_enabled: true`") && text.contains("5 characters"), "{text}");
        assert!(!text.contains("short\""), "the token is never echoed");
        let mut p = Problems::new();
        check_group(&mut p, &ReplicationGroup { auth_token: Some(Input::Value(Secret::new("bad/characters/in/token".into()))), ..base() });
        assert_eq!(p.0.len(), 1);
        let mut p = Problems::new();
        check_group(
            &mut p,
            &ReplicationGroup {
                automatic_failover_enabled: true,
                multi_az_enabled: true,
                num_cache_clusters: 1,
                node_type: "t3.micro".into(),
                ..base()
            },
        );
        let fields: Vec<String> = p.0.iter().filter_map(|f| f.path.clone()).collect();
        assert_eq!(fields, vec!["node_type", "automatic_failover_enabled"]);
    }
}
