//! `aws:rds:Instance`: a MariaDB or MySQL instance. Create and update return once the instance
//! is `available` (and, for changes applied immediately, has no pending modifications); delete
//! returns once it is gone.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_rds::types::DbInstance;
use berth_engine::{CallContext, CheckFailure, DiffResponse, FieldDiff, Input, Path, ProviderError, Resource, ResourceProvider, Secret};
use berth_engine::{TypedCreated, TypedObserved, Value, async_trait};
use serde::{Deserialize, Serialize};

use super::rules::check_instance;
use super::{already_exists, path, rds_tags, read_tags, update_tags};
use crate::config::{Aws, Clients};
use crate::error::{AwsError, found, scrub};
use crate::validate::{self, Problems, Tags};
use crate::wait::{self, Change, Poll};

/// Terraform's defaults for how long an RDS instance may take.
const CREATE_TIMEOUT: Duration = Duration::from_secs(40 * 60);
const UPDATE_TIMEOUT: Duration = Duration::from_secs(80 * 60);
const DELETE_TIMEOUT: Duration = Duration::from_secs(60 * 60);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    #[default]
    Mariadb,
    Mysql,
}

impl Engine {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Engine::Mariadb => "mariadb",
            Engine::Mysql => "mysql",
        }
    }
}

fn yes() -> bool {
    true
}
fn default_storage_type() -> String {
    "gp3".into()
}
fn default_username() -> String {
    "admin".into()
}
fn default_port() -> i32 {
    3306
}
fn default_backup_days() -> i32 {
    1
}

/// `aws:rds:Instance`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    /// The DB instance identifier. Default: the logical name plus a random suffix. Changing it
    /// replaces the instance (deleting first when it stays the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    /// `mariadb` or `mysql`. Changing it replaces the instance.
    #[serde(default)]
    pub engine: Engine,
    /// e.g. `11.4` (AWS picks the latest minor version) or `11.4.5`. Updated in place; a major
    /// upgrade is allowed.
    pub engine_version: String,
    /// e.g. `db.t3.medium`. Updated in place.
    pub instance_class: String,
    /// GiB. May grow in place, never shrink (AWS cannot shrink storage).
    pub allocated_storage: i32,
    /// GiB: the storage autoscaling limit, at least 10% above `allocated_storage`. Absent: no
    /// autoscaling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_allocated_storage: Option<i32>,
    /// `gp3` (default), `gp2`, `io1`, `io2` or `standard`.
    #[serde(default = "default_storage_type")]
    pub storage_type: String,
    /// A database to create. Changing it replaces the instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_name: Option<String>,
    /// The master user. Changing it replaces the instance.
    #[serde(default = "default_username")]
    pub username: String,
    /// The master password: 8 to 41 printable characters, none of / " @ or space.
    pub password: Input<Secret<String>>,
    /// Changing it replaces the instance.
    #[serde(default = "default_port")]
    pub port: i32,
    #[serde(default)]
    pub multi_az: bool,
    /// Days of automated backups, 0 to 35.
    #[serde(default = "default_backup_days")]
    pub backup_retention_period: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_group_name: Option<Input<String>>,
    /// Changing it replaces the instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_group_name: Option<Input<String>>,
    #[serde(default)]
    pub vpc_security_group_ids: Vec<Input<String>>,
    /// Encryption at rest (default on). Changing it replaces the instance.
    #[serde(default = "yes")]
    pub storage_encrypted: bool,
    /// KMS key for encryption at rest; absent: the AWS managed key. Changing it replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<Input<String>>,
    #[serde(default)]
    pub deletion_protection: bool,
    #[serde(default)]
    pub publicly_accessible: bool,
    /// On delete, skip the final snapshot. Only berth reads it.
    #[serde(default)]
    pub skip_final_snapshot: bool,
    /// The final snapshot's name; default `<identifier>-final-<unix time>`. Only berth reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_snapshot_identifier: Option<String>,
    /// Apply modifications now (default) rather than in the next maintenance window. Only berth
    /// reads it.
    #[serde(default = "yes")]
    pub apply_immediately: bool,
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
}

/// The serde defaults; `engine_version`, `instance_class`, `allocated_storage` and `password`
/// have none and must be set.
impl Default for Instance {
    fn default() -> Self {
        Instance {
            identifier: None,
            engine: Engine::default(),
            engine_version: String::new(),
            instance_class: String::new(),
            allocated_storage: 0,
            max_allocated_storage: None,
            storage_type: default_storage_type(),
            db_name: None,
            username: default_username(),
            password: Input::Value(Secret::new(String::new())),
            port: default_port(),
            multi_az: false,
            backup_retention_period: default_backup_days(),
            parameter_group_name: None,
            subnet_group_name: None,
            vpc_security_group_ids: Vec::new(),
            storage_encrypted: true,
            kms_key_id: None,
            deletion_protection: false,
            publicly_accessible: false,
            skip_final_snapshot: false,
            final_snapshot_identifier: None,
            apply_immediately: true,
            tags: Tags::new(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceOutputs {
    pub arn: String,
    pub identifier: String,
    pub address: String,
    pub port: i32,
    /// `address:port`.
    pub endpoint: String,
    pub resource_id: String,
    /// The exact version running (e.g. `11.4.5`).
    pub engine_version_actual: String,
}

impl Resource for Instance {
    const TYPE: &'static str = "aws:rds:Instance";
    type Outputs = InstanceOutputs;
}

pub struct InstanceProvider {
    pub aws: Arc<Aws>,
}

/// Statuses from which an instance will not become available by itself.
const STUCK: &[&str] = &[
    "failed",
    "incompatible-parameters",
    "incompatible-network",
    "incompatible-option-group",
    "incompatible-restore",
    "inaccessible-encryption-credentials",
    "restore-error",
    "storage-full",
    "stopped",
];

impl InstanceProvider {
    async fn describe(&self, clients: &Clients, ctx: &CallContext<'_>, id: &str) -> Result<Option<DbInstance>, ProviderError> {
        let got = found(ctx, "DescribeDBInstances", clients.rds.describe_db_instances().db_instance_identifier(id).send().await)?;
        Ok(got.and_then(|g| g.db_instances().first().cloned()))
    }

    /// Waits until the instance is `available` (and, when `settled`, has no pending changes).
    async fn await_available(
        &self,
        clients: &Clients,
        ctx: &CallContext<'_>,
        id: &str,
        started: tokio::time::Instant,
        change: Change,
        settled: bool,
    ) -> Result<DbInstance, ProviderError> {
        let limit = if change == Change::Create { CREATE_TIMEOUT } else { UPDATE_TIMEOUT };
        wait::until_ready(ctx, change, limit, clients.poll_interval, started, &format!("DB instance `{id}` to be available"), || async {
            let db = self.describe(clients, ctx, id).await?.ok_or_else(|| ProviderError::not_found(format!("{}: DB instance `{id}` disappeared while berth waited for it", ctx.urn)))?;
            let status = db.db_instance_status().unwrap_or("unknown").to_string();
            if STUCK.contains(&status.as_str()) {
                return Err(ProviderError::api(status.clone(), format!("{}: DB instance `{id}` is `{status}` and will not become available by itself; see the RDS console's events for why", ctx.urn)));
            }
            let pending = db.pending_modified_values().is_some_and(|p| p != &aws_sdk_rds::types::PendingModifiedValues::builder().build());
            Ok(match (status.as_str(), settled && pending) {
                ("available", false) => Poll::Ready(db),
                ("available", true) => Poll::Waiting("available, with modifications pending".into()),
                _ => Poll::Waiting(status),
            })
        })
        .await
    }

    fn outputs(db: &DbInstance) -> InstanceOutputs {
        let address = db.endpoint().and_then(|e| e.address()).unwrap_or_default().to_string();
        let port = db.endpoint().and_then(|e| e.port()).or(db.db_instance_port()).unwrap_or(3306);
        InstanceOutputs {
            arn: db.db_instance_arn().unwrap_or_default().to_string(),
            identifier: db.db_instance_identifier().unwrap_or_default().to_string(),
            endpoint: format!("{address}:{port}"),
            address,
            port,
            resource_id: db.dbi_resource_id().unwrap_or_default().to_string(),
            engine_version_actual: db.engine_version().unwrap_or_default().to_string(),
        }
    }

    fn observed(db: &DbInstance, prior: Option<&Instance>, tags: Tags) -> Instance {
        let live_version = db.engine_version().unwrap_or_default();
        // `11.4` asks for the latest 11.4.x: the running 11.4.5 is what was asked for.
        let engine_version = match prior {
            Some(p) if live_version == p.engine_version || live_version.starts_with(&format!("{}.", p.engine_version)) => {
                p.engine_version.clone()
            }
            _ => live_version.to_string(),
        };
        let kept = |f: fn(&Instance) -> bool| prior.is_some_and(f);
        Instance {
            identifier: db.db_instance_identifier().map(str::to_string),
            engine: if db.engine() == Some("mysql") { Engine::Mysql } else { Engine::Mariadb },
            engine_version,
            instance_class: db.db_instance_class().unwrap_or_default().to_string(),
            allocated_storage: db.allocated_storage().unwrap_or_default(),
            max_allocated_storage: db.max_allocated_storage(),
            storage_type: db.storage_type().unwrap_or("gp3").to_string(),
            db_name: db.db_name().map(str::to_string),
            username: db.master_username().unwrap_or_default().to_string(),
            // RDS never reveals the password: what berth last set is what it is.
            password: prior.map(|p| p.password.clone()).unwrap_or(Input::Value(Secret::new(String::new()))),
            port: db.endpoint().and_then(|e| e.port()).or(db.db_instance_port()).unwrap_or(3306),
            multi_az: db.multi_az().unwrap_or(false),
            backup_retention_period: db.backup_retention_period().unwrap_or(0),
            parameter_group_name: db
                .db_parameter_groups()
                .first()
                .and_then(|g| g.db_parameter_group_name())
                .filter(|n| !n.starts_with("default.") || kept(|p| p.parameter_group_name.is_some()))
                .map(|n| Input::Value(n.to_string())),
            subnet_group_name: db
                .db_subnet_group()
                .and_then(|g| g.db_subnet_group_name())
                .filter(|n| *n != "default" || kept(|p| p.subnet_group_name.is_some()))
                .map(|n| Input::Value(n.to_string())),
            // Without security groups AWS uses the VPC's default group: not a change berth made.
            vpc_security_group_ids: if prior.is_some_and(|p| p.vpc_security_group_ids.is_empty()) {
                Vec::new()
            } else {
                let mut ids: Vec<Input<String>> = db
                    .vpc_security_groups()
                    .iter()
                    .filter_map(|g| g.vpc_security_group_id())
                    .map(|g| Input::Value(g.to_string()))
                    .collect();
                ids.sort_by(|a, b| a.known().cmp(&b.known()));
                ids
            },
            storage_encrypted: db.storage_encrypted().unwrap_or(false),
            // AWS fills in its managed key when none is named: report a key only if one was asked for.
            kms_key_id: if kept(|p| p.kms_key_id.is_some()) { db.kms_key_id().map(|k| Input::Value(k.to_string())) } else { None },
            deletion_protection: db.deletion_protection().unwrap_or(false),
            publicly_accessible: db.publicly_accessible().unwrap_or(false),
            skip_final_snapshot: prior.is_some_and(|p| p.skip_final_snapshot),
            final_snapshot_identifier: prior.and_then(|p| p.final_snapshot_identifier.clone()),
            apply_immediately: prior.is_none_or(|p| p.apply_immediately),
            tags,
        }
    }
}

fn known<T: Clone>(input: &Input<T>) -> Result<T, ProviderError> {
    input.value().cloned().map_err(|e| ProviderError::other(e.to_string()))
}

fn known_list(list: &[Input<String>]) -> Vec<String> {
    list.iter().filter_map(|i| i.known().cloned()).collect()
}

#[async_trait]
impl ResourceProvider for InstanceProvider {
    type Resource = Instance;

    fn replace_on(&self) -> Vec<Path> {
        ["identifier", "engine", "db_name", "username", "port", "subnet_group_name", "storage_encrypted", "kms_key_id"]
            .iter()
            .map(|f| path(f))
            .collect()
    }

    fn fixed_name(&self) -> Option<Path> {
        Some(path("identifier"))
    }

    fn write_only(&self) -> Vec<Path> {
        vec![path("password")]
    }

    fn outputs_changed_by(&self, changes: &[FieldDiff]) -> Vec<Path> {
        if changes.iter().any(|c| c.path.first_key() == Some("engine_version")) { vec![path("engine_version_actual")] } else { Vec::new() }
    }

    async fn check(&self, ctx: CallContext<'_>, mut inputs: Instance, seed: &[u8; 32]) -> Result<Instance, Vec<CheckFailure>> {
        let mut problems = Problems::new();
        let id = inputs
            .identifier
            .get_or_insert_with(|| validate::auto_name(ctx.name, seed, 63, true, |c| c.is_ascii_alphanumeric() || c == '-'))
            .clone();
        problems.check("identifier", validate::hyphenated_identifier(&id, 63, true));
        check_instance(&mut problems, &inputs);
        if inputs.vpc_security_group_ids.iter().all(Input::is_known) {
            inputs.vpc_security_group_ids.sort_by(|a, b| a.known().cmp(&b.known()));
        }
        validate::tags(&mut problems, &inputs.tags);
        problems.finish(inputs)
    }

    /// The default diff, refusing to shrink storage (AWS cannot) before anything is applied.
    async fn diff(&self, ctx: CallContext<'_>, _id: &str, old: &Value, _o: &Value, new: &Value) -> Result<DiffResponse, ProviderError> {
        let storage = path("allocated_storage");
        if let (Some(Value::Number(before)), Some(Value::Number(after))) = (old.get_path(&storage), new.get_path(&storage))
            && after.as_f64() < before.as_f64()
        {
            return Err(ProviderError::other(format!(
                "{}: allocated_storage cannot shrink from {before} to {after} GiB (RDS storage only grows); keep {before} or more, or replace the instance with a new identifier",
                ctx.urn
            )));
        }
        let mut response = berth_engine::default_diff(old, new, &self.replace_on(), self.fixed_name().as_ref());
        // Not settings of the instance: what berth does when it deletes or modifies it.
        for field in ["skip_final_snapshot", "final_snapshot_identifier", "apply_immediately"] {
            response.record_state_only(&path(field), "used by berth's own later calls; nothing to change in AWS");
        }
        response.unknown_outputs = self.outputs_changed_by(&response.changes);
        Ok(response)
    }

    async fn create(&self, ctx: CallContext<'_>, i: &Instance) -> Result<TypedCreated<InstanceOutputs>, ProviderError> {
        let started = tokio::time::Instant::now();
        let clients = self.aws.clients().await?;
        let id = i.identifier.clone().ok_or_else(|| ProviderError::other("internal error: identifier not set by check"))?;
        let password = known(&i.password)?;
        clients
            .rds
            .create_db_instance()
            .db_instance_identifier(&id)
            .engine(i.engine.as_str())
            .engine_version(&i.engine_version)
            .db_instance_class(&i.instance_class)
            .allocated_storage(i.allocated_storage)
            .set_max_allocated_storage(i.max_allocated_storage)
            .storage_type(&i.storage_type)
            .set_db_name(i.db_name.clone())
            .master_username(&i.username)
            .master_user_password(password.expose())
            .port(i.port)
            .multi_az(i.multi_az)
            .backup_retention_period(i.backup_retention_period)
            .set_db_parameter_group_name(i.parameter_group_name.as_ref().map(known).transpose()?)
            .set_db_subnet_group_name(i.subnet_group_name.as_ref().map(known).transpose()?)
            .set_vpc_security_group_ids(Some(known_list(&i.vpc_security_group_ids)).filter(|l| !l.is_empty()))
            .storage_encrypted(i.storage_encrypted)
            .set_kms_key_id(i.kms_key_id.as_ref().map(known).transpose()?)
            .deletion_protection(i.deletion_protection)
            .publicly_accessible(i.publicly_accessible)
            .set_tags(rds_tags(&i.tags))
            .send()
            .await
            .map_err(|e| {
                let e = AwsError::from(e);
                let error = if e.is_code("DBInstanceAlreadyExists") {
                    already_exists(&ctx, "DB instance", &id)
                } else {
                    e.at(&ctx, "CreateDBInstance")
                };
                scrub(error, &[password.expose()])
            })?;
        let db = self.await_available(clients, &ctx, &id, started, Change::Create, false).await.map_err(|e| {
            // The instance exists but is not usable: record it (tainted) so the next run replaces it.
            let outputs = InstanceOutputs { identifier: id.clone(), ..InstanceOutputs::default() };
            match crate::created(&id, &outputs) {
                Ok(partial) => e.with_partial(partial),
                Err(_) => e,
            }
        })?;
        Ok(TypedCreated { id, outputs: Self::outputs(&db) })
    }

    async fn read(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        prior: Option<&Instance>,
        _o: Option<&InstanceOutputs>,
    ) -> Result<Option<TypedObserved<Instance>>, ProviderError> {
        let clients = self.aws.clients().await?;
        let Some(db) = self.describe(clients, &ctx, id).await? else { return Ok(None) };
        if db.db_instance_status() == Some("deleting") {
            return Ok(None);
        }
        let tags = read_tags(clients, &ctx, db.db_instance_arn().unwrap_or_default()).await?;
        Ok(Some(TypedObserved { id: id.to_string(), inputs: Self::observed(&db, prior, tags), outputs: Self::outputs(&db) }))
    }

    async fn update(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old: &Instance,
        new: &Instance,
        old_outputs: &InstanceOutputs,
    ) -> Result<InstanceOutputs, ProviderError> {
        let started = tokio::time::Instant::now();
        let clients = self.aws.clients().await?;
        let mut request = clients.rds.modify_db_instance().db_instance_identifier(id).apply_immediately(new.apply_immediately);
        let mut any = false;
        let mut secrets = Vec::new();
        macro_rules! changed {
            ($field:ident, $set:expr) => {
                if old.$field != new.$field {
                    any = true;
                    request = $set;
                }
            };
        }
        changed!(
            engine_version,
            request
                .engine_version(&new.engine_version)
                .allow_major_version_upgrade(major(&old.engine_version) != major(&new.engine_version))
        );
        changed!(instance_class, request.db_instance_class(&new.instance_class));
        changed!(allocated_storage, request.allocated_storage(new.allocated_storage));
        // Autoscaling is turned off by setting the limit to the allocated storage.
        changed!(max_allocated_storage, request.max_allocated_storage(new.max_allocated_storage.unwrap_or(new.allocated_storage)));
        changed!(storage_type, request.storage_type(&new.storage_type));
        changed!(multi_az, request.multi_az(new.multi_az));
        changed!(backup_retention_period, request.backup_retention_period(new.backup_retention_period));
        changed!(parameter_group_name, request.set_db_parameter_group_name(new.parameter_group_name.as_ref().map(known).transpose()?));
        // An instance always has a security group: "none" leaves AWS's choice (the VPC default) alone.
        if !new.vpc_security_group_ids.is_empty() {
            changed!(vpc_security_group_ids, request.set_vpc_security_group_ids(Some(known_list(&new.vpc_security_group_ids))));
        }
        changed!(deletion_protection, request.deletion_protection(new.deletion_protection));
        changed!(publicly_accessible, request.publicly_accessible(new.publicly_accessible));
        if old.password.known().map(|p| p.expose()) != new.password.known().map(|p| p.expose()) {
            let password = known(&new.password)?;
            secrets.push(password.expose().clone());
            request = request.master_user_password(password.expose());
            any = true;
        }
        if any {
            request.send().await.map_err(|e| {
                let shown: Vec<&str> = secrets.iter().map(String::as_str).collect();
                scrub(AwsError::from(e).at(&ctx, "ModifyDBInstance"), &shown)
            })?;
        }
        update_tags(clients, &ctx, &old_outputs.arn, &old.tags, &new.tags).await?;
        if !any {
            return Ok(old_outputs.clone());
        }
        let db = self.await_available(clients, &ctx, id, started, Change::Update, new.apply_immediately).await?;
        Ok(Self::outputs(&db))
    }

    async fn delete(&self, ctx: CallContext<'_>, id: &str, i: &Instance, _o: &InstanceOutputs) -> Result<(), ProviderError> {
        let started = tokio::time::Instant::now();
        let clients = self.aws.clients().await?;
        let mut request = clients.rds.delete_db_instance().db_instance_identifier(id).skip_final_snapshot(i.skip_final_snapshot);
        if !i.skip_final_snapshot {
            let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
            request =
                request.final_db_snapshot_identifier(i.final_snapshot_identifier.clone().unwrap_or_else(|| format!("{id}-final-{secs}")));
        }
        match request.send().await {
            Ok(_) => {}
            Err(e) => {
                let e = AwsError::from(e);
                if e.is_not_found() {
                    return Ok(());
                }
                let mut error = e.at(&ctx, "DeleteDBInstance");
                if e.message.to_ascii_lowercase().contains("deletion protection") {
                    error.message.push_str("; set `deletion_protection: false` and run `berth stack up` first, then delete");
                }
                return Err(error);
            }
        }
        wait::until_ready(
            &ctx,
            Change::Delete,
            DELETE_TIMEOUT,
            clients.poll_interval,
            started,
            &format!("DB instance `{id}` to be deleted"),
            || async {
                Ok(match self.describe(clients, &ctx, id).await? {
                    None => Poll::Ready(()),
                    Some(db) => Poll::Waiting(db.db_instance_status().unwrap_or("deleting").to_string()),
                })
            },
        )
        .await
    }

    async fn lookup(&self, ctx: CallContext<'_>, inputs: &Instance) -> Result<Option<TypedObserved<Instance>>, ProviderError> {
        match &inputs.identifier {
            Some(id) => self.read(ctx, id, Some(inputs), None).await,
            None => Ok(None),
        }
    }

    async fn find_tagged(&self, ctx: CallContext<'_>, tags: &Tags) -> Result<Vec<String>, ProviderError> {
        let rds = &self.aws.clients().await?.rds;
        let listed = rds.describe_db_instances().send().await.map_err(|e| AwsError::from(e).at(&ctx, "DescribeDBInstances"))?;
        Ok(listed
            .db_instances()
            .iter()
            .filter(|db| {
                validate::has_tags(db.tag_list().iter().map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())), tags)
            })
            .filter_map(|db| db.db_instance_identifier().map(str::to_string))
            .collect())
    }
}

fn major(version: &str) -> &str {
    let mut parts = version.splitn(3, '.');
    let first = parts.next().unwrap_or_default();
    let second = parts.next().unwrap_or_default();
    &version[..(first.len() + if second.is_empty() { 0 } else { 1 + second.len() }).min(version.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn major_versions() {
        assert_eq!(major("11.4.5"), "11.4");
        assert_eq!(major("8.0"), "8.0");
        assert_eq!(major("10"), "10");
    }
}
