//! `vault:database:Role`: the statements Vault runs to create (and drop) a user each time someone
//! reads `<mount>/creds/<role>`, and how long those users live.

use std::sync::Arc;

use berth_engine::{
    CallContext, CheckFailure, Input, Path, ProviderError, Resource, ResourceProvider, TypedCreated, TypedObserved, async_trait,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::client::VaultApi;
use crate::common::{Ttl, already_exists, check_name, check_path, field, json_str, json_strings, json_u64, known};

/// `vault:database:Role`.
///
/// ```
/// use berth_provider_vault::{DatabaseRole, Ttl};
/// // Open edX's application user: everything on the edxapp schema, for 3 months (at most 6).
/// let role = DatabaseRole {
///     default_ttl: Some(Ttl::days(90)),
///     max_ttl: Some(Ttl::days(180)),
///     ..DatabaseRole::mysql("mariadb-mitx-qa", "edxapp", "edxapp", "ALL PRIVILEGES ON edxapp.*")
/// };
/// assert!(role.creation_statements[1].starts_with("GRANT ALL PRIVILEGES ON edxapp.* TO"));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseRole {
    /// The database mount's path; pass the mount's `path` output.
    pub mount: Input<String>,
    /// The role's name: credentials are read from `<mount>/creds/<name>`. Changing it replaces
    /// the role.
    pub name: String,
    /// The connection it creates users on; pass the connection's `name` output. The connection's
    /// `allowed_roles` must include this role.
    pub db_name: Input<String>,
    /// SQL run to create a user; `{{name}}` and `{{password}}` are filled in by Vault.
    pub creation_statements: Vec<String>,
    /// SQL run when the lease ends; unset: the plugin drops the user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revocation_statements: Vec<String>,
    /// SQL run if creation fails half-way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollback_statements: Vec<String>,
    /// SQL run when a lease is renewed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renew_statements: Vec<String>,
    /// How long a user lives unless renewed; unset: the mount's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_ttl: Option<Ttl>,
    /// The longest a user can be renewed to; unset: the mount's maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttl: Option<Ttl>,
}

impl DatabaseRole {
    /// A MySQL/MariaDB role whose users get `grants` (`SELECT ON edxapp.*`,
    /// `ALL PRIVILEGES ON edxapp.*`) from any host, and are dropped when their lease ends.
    pub fn mysql(mount: impl Into<Input<String>>, name: &str, db_name: impl Into<Input<String>>, grants: &str) -> DatabaseRole {
        DatabaseRole {
            mount: mount.into(),
            name: name.to_string(),
            db_name: db_name.into(),
            creation_statements: vec![
                "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';".to_string(),
                format!("GRANT {grants} TO '{{{{name}}}}'@'%';"),
            ],
            revocation_statements: vec!["DROP USER IF EXISTS '{{name}}'@'%';".to_string()],
            rollback_statements: Vec::new(),
            renew_statements: Vec::new(),
            default_ttl: None,
            max_ttl: None,
        }
    }
}

/// What a `vault:database:Role` reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatabaseRoleOutputs {
    pub mount: String,
    pub name: String,
    /// Where credentials are read (`<mount>/creds/<name>`), for policies and VaultDynamicSecret.
    pub creds_path: String,
}

impl Resource for DatabaseRole {
    const TYPE: &'static str = "vault:database:Role";
    type Outputs = DatabaseRoleOutputs;
}

/// The provider for `vault:database:Role`.
pub struct DatabaseRoleProvider {
    pub api: Arc<VaultApi>,
}

fn role_path(mount: &str, name: &str) -> String {
    format!("{mount}/roles/{name}")
}

fn outputs(mount: &str, name: &str) -> DatabaseRoleOutputs {
    DatabaseRoleOutputs { mount: mount.to_string(), name: name.to_string(), creds_path: format!("{mount}/creds/{name}") }
}

fn ttl_seconds(ttl: &Option<Ttl>) -> u64 {
    ttl.as_ref().and_then(|t| t.seconds().ok()).unwrap_or(0)
}

impl DatabaseRoleProvider {
    async fn write(&self, role: &DatabaseRole) -> Result<DatabaseRoleOutputs, ProviderError> {
        let mount = known("mount", &role.mount)?;
        // Every field is sent, empty lists too: Vault keeps a field that a write leaves out.
        let body = json!({
            "db_name": known("db_name", &role.db_name)?,
            "creation_statements": role.creation_statements,
            "revocation_statements": role.revocation_statements,
            "rollback_statements": role.rollback_statements,
            "renew_statements": role.renew_statements,
            "default_ttl": ttl_seconds(&role.default_ttl),
            "max_ttl": ttl_seconds(&role.max_ttl),
        });
        self.api.write(&role_path(mount, &role.name), &body).await?;
        Ok(outputs(mount, &role.name))
    }
}

#[async_trait]
impl ResourceProvider for DatabaseRoleProvider {
    type Resource = DatabaseRole;

    fn replace_on(&self) -> Vec<Path> {
        vec![field("mount"), field("name")]
    }

    fn fixed_name(&self) -> Option<Path> {
        Some(field("name"))
    }

    async fn check(&self, _ctx: CallContext<'_>, mut role: DatabaseRole, _seed: &[u8; 32]) -> Result<DatabaseRole, Vec<CheckFailure>> {
        let mut failures = Vec::new();
        if let Some(mount) = role.mount.known() {
            check_path("mount", mount, &mut failures);
        }
        check_name("name", &role.name, &mut failures);
        if let Some(db) = role.db_name.known() {
            check_name("db_name", db, &mut failures);
        }
        let statements = role.creation_statements.join("\n");
        if role.creation_statements.iter().all(|s| s.trim().is_empty()) {
            failures.push(CheckFailure::field("creation_statements", "must hold the SQL that creates the user"));
        } else if !statements.contains("{{name}}") || !statements.contains("{{password}}") {
            failures.push(CheckFailure::field(
                "creation_statements",
                "must use {{name}} and {{password}}, which Vault fills in with the generated user",
            ));
        }
        role.default_ttl = role.default_ttl.map(|t| t.checked("default_ttl", &mut failures));
        role.max_ttl = role.max_ttl.map(|t| t.checked("max_ttl", &mut failures));
        let (ttl, max) = (ttl_seconds(&role.default_ttl), ttl_seconds(&role.max_ttl));
        if ttl > 0 && max > 0 && ttl > max {
            failures.push(CheckFailure::field("default_ttl", format!("{ttl}s is longer than max_ttl ({max}s)")));
        }
        if failures.is_empty() { Ok(role) } else { Err(failures) }
    }

    async fn create(&self, _ctx: CallContext<'_>, role: &DatabaseRole) -> Result<TypedCreated<DatabaseRoleOutputs>, ProviderError> {
        let mount = known("mount", &role.mount)?;
        if self.api.read(&role_path(mount, &role.name)).await?.is_some() {
            return Err(already_exists("database role", &role_path(mount, &role.name)));
        }
        let outputs = self.write(role).await?;
        Ok(TypedCreated { id: role_path(mount, &role.name), outputs })
    }

    async fn read(
        &self,
        _ctx: CallContext<'_>,
        id: &str,
        _prior: Option<&DatabaseRole>,
        _prior_outputs: Option<&DatabaseRoleOutputs>,
    ) -> Result<Option<TypedObserved<DatabaseRole>>, ProviderError> {
        let (mount, name) = super::parse_id(id, "roles")?;
        let Some(live) = self.api.read(&role_path(&mount, &name)).await? else { return Ok(None) };
        let ttl = |key: &str| Some(json_u64(&live, key)).filter(|s| *s > 0).map(Ttl::Seconds);
        let list = |key: &str| -> Vec<String> { json_strings(&live, key).into_iter().filter(|s| !s.is_empty()).collect() };
        let inputs = DatabaseRole {
            mount: Input::Value(mount.clone()),
            name: name.clone(),
            db_name: Input::Value(json_str(&live, "db_name")),
            creation_statements: list("creation_statements"),
            revocation_statements: list("revocation_statements"),
            rollback_statements: list("rollback_statements"),
            renew_statements: list("renew_statements"),
            default_ttl: ttl("default_ttl"),
            max_ttl: ttl("max_ttl"),
        };
        Ok(Some(TypedObserved { id: role_path(&mount, &name), inputs, outputs: outputs(&mount, &name) }))
    }

    async fn update(
        &self,
        _ctx: CallContext<'_>,
        _id: &str,
        _old: &DatabaseRole,
        new: &DatabaseRole,
        _old_outputs: &DatabaseRoleOutputs,
    ) -> Result<DatabaseRoleOutputs, ProviderError> {
        self.write(new).await
    }

    async fn delete(
        &self,
        _ctx: CallContext<'_>,
        id: &str,
        _inputs: &DatabaseRole,
        _outputs: &DatabaseRoleOutputs,
    ) -> Result<(), ProviderError> {
        let (mount, name) = super::parse_id(id, "roles")?;
        // The users this role issued are revoked (dropped from the database) first: once the
        // role and its connection are gone Vault could not revoke them, and their mount could
        // not be deleted while their leases live.
        super::revoke_users(&self.api, &mount, &name).await?;
        self.api.delete(id).await?;
        Ok(())
    }

    async fn lookup(&self, ctx: CallContext<'_>, role: &DatabaseRole) -> Result<Option<TypedObserved<DatabaseRole>>, ProviderError> {
        let mount = known("mount", &role.mount)?;
        self.read(ctx, &role_path(mount, &role.name), Some(role), None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_helper_writes_vault_templates() {
        let role = DatabaseRole::mysql("db", "readonly", "edxapp", "SELECT ON edxapp.*");
        assert_eq!(role.creation_statements[0], "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';");
        assert_eq!(role.creation_statements[1], "GRANT SELECT ON edxapp.* TO '{{name}}'@'%';");
        assert_eq!(outputs("db", "readonly").creds_path, "db/creds/readonly");
    }
}
