//! `vault:database:Connection`: how Vault reaches a MySQL/MariaDB server (RDS included) and the
//! administrator it creates users as.

use std::sync::Arc;

use berth_engine::{
    CallContext, CheckFailure, Created, Input, Path, ProviderError, Resource, ResourceProvider, Secret, TypedCreated, TypedObserved, Value,
    async_trait,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::client::VaultApi;
use crate::common::{Ttl, already_exists, check_name, check_path, field, json_str, json_strings, json_u64, known, undo_create};

/// The plugins this type configures: MySQL and MariaDB servers, RDS and Aurora included.
pub const MYSQL_PLUGINS: [&str; 4] =
    ["mysql-database-plugin", "mysql-rds-database-plugin", "mysql-aurora-database-plugin", "mysql-legacy-database-plugin"];

fn default_plugin() -> String {
    MYSQL_PLUGINS[0].to_string()
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// `vault:database:Connection`.
///
/// ```
/// use berth_engine::Secret;
/// use berth_provider_vault::DatabaseConnection;
/// let connection = DatabaseConnection::mysql(
///     "mariadb-mitx-qa",
///     "edxapp",
///     "{{username}}:{{password}}@tcp(db.example.org:3306)/",
///     "admin",
///     Secret::new("from-config".to_string()),
/// );
/// assert_eq!(connection.plugin_name, "mysql-database-plugin");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConnection {
    /// The database mount's path; pass the mount's `path` output.
    pub mount: Input<String>,
    /// The connection's name; roles name it in `db_name`. Changing it replaces the connection.
    pub name: String,
    /// One of [`MYSQL_PLUGINS`]; `mysql-database-plugin` by default. Changing it replaces the
    /// connection (Vault cannot switch a connection's plugin).
    #[serde(default = "default_plugin")]
    pub plugin_name: String,
    /// A Go MySQL DSN with `{{username}}:{{password}}` where the credentials go, e.g.
    /// `{{username}}:{{password}}@tcp(<rds address>:3306)/`. May be built from outputs.
    pub connection_url: Input<String>,
    /// The administrator Vault logs in as; it needs CREATE USER and GRANT OPTION.
    pub username: Input<String>,
    /// Its password. Secret. Vault never shows it back; with `rotate_root` Vault replaces it.
    pub password: Input<Secret<String>>,
    /// Roles that may use this connection (`*` for any). A role not listed here gets no
    /// credentials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_roles: Vec<String>,
    /// Statements `rotate_root` runs; unset: the plugin's `ALTER USER` default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub root_rotation_statements: Vec<String>,
    /// After configuring, have Vault change the administrator's password to one only Vault
    /// knows. From then on `password` is only sent again when the program changes it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rotate_root: bool,
    /// Have Vault log in before saving the connection (default true): a wrong address or
    /// password fails the apply with the server's error.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub verify_connection: bool,
    /// Go template for generated user names; unset: the plugin's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_template: Option<String>,
    /// Vault password policy for generated passwords; unset: Vault's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_policy: Option<String>,
    /// PEM CA to verify the server's TLS certificate (RDS's bundle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<Input<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_open_connections: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_idle_connections: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_lifetime: Option<Ttl>,
}

impl DatabaseConnection {
    /// A connection through the `mysql-database-plugin`.
    pub fn mysql(
        mount: impl Into<Input<String>>,
        name: &str,
        connection_url: impl Into<Input<String>>,
        username: impl Into<Input<String>>,
        password: impl Into<Input<Secret<String>>>,
    ) -> DatabaseConnection {
        DatabaseConnection {
            mount: mount.into(),
            name: name.to_string(),
            plugin_name: default_plugin(),
            connection_url: connection_url.into(),
            username: username.into(),
            password: password.into(),
            allowed_roles: Vec::new(),
            root_rotation_statements: Vec::new(),
            rotate_root: false,
            verify_connection: true,
            username_template: None,
            password_policy: None,
            tls_ca: None,
            max_open_connections: None,
            max_idle_connections: None,
            max_connection_lifetime: None,
        }
    }
}

/// What a `vault:database:Connection` reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatabaseConnectionOutputs {
    pub mount: String,
    /// The name: pass it to roles' `db_name` so they depend on the connection.
    pub name: String,
    pub plugin_name: String,
    /// Whether Vault has replaced the administrator's password.
    pub root_rotated: bool,
}

impl Resource for DatabaseConnection {
    const TYPE: &'static str = "vault:database:Connection";
    type Outputs = DatabaseConnectionOutputs;
}

/// The provider for `vault:database:Connection`.
pub struct DatabaseConnectionProvider {
    pub api: Arc<VaultApi>,
}

fn config_path(mount: &str, name: &str) -> String {
    format!("{mount}/config/{name}")
}

fn check_url(url: &str, failures: &mut Vec<CheckFailure>) {
    if !url.contains("{{username}}") || !url.contains("{{password}}") {
        failures.push(CheckFailure::field(
            "connection_url",
            "must hold `{{username}}:{{password}}` where the credentials go (give them in `username` and `password`, never in the URL)",
        ));
    }
    // Vault would log in as `{{admin}}`: braces doubled once too often in a format string.
    if url.contains("{{{") {
        failures.push(CheckFailure::field(
            "connection_url",
            "has `{{{`: Vault's placeholders are `{{username}}` and `{{password}}` (in `format!` or `format_output!`, write `{{{{username}}}}`)",
        ));
    }
    if !url.contains("@tcp(") && !url.contains("@unix(") && !url.contains("@/") {
        failures
            .push(CheckFailure::field("connection_url", "is not a Go MySQL DSN; write it like {{username}}:{{password}}@tcp(host:3306)/"));
    }
}

impl DatabaseConnectionProvider {
    /// The request body; the password only when `with_password`.
    fn body(c: &DatabaseConnection, with_password: bool) -> Result<Json, ProviderError> {
        let mut body = json!({
            "plugin_name": c.plugin_name,
            "connection_url": known("connection_url", &c.connection_url)?,
            "username": known("username", &c.username)?,
            "allowed_roles": c.allowed_roles,
            "root_rotation_statements": c.root_rotation_statements,
            "verify_connection": c.verify_connection,
            "password_policy": c.password_policy.clone().unwrap_or_default(),
        });
        if with_password {
            body["password"] = json!(known("password", &c.password)?.expose());
        }
        if let Some(template) = &c.username_template {
            body["username_template"] = json!(template);
        }
        if let Some(ca) = &c.tls_ca {
            body["tls_ca"] = json!(known("tls_ca", ca)?);
        }
        if let Some(n) = c.max_open_connections {
            body["max_open_connections"] = json!(n);
        }
        if let Some(n) = c.max_idle_connections {
            body["max_idle_connections"] = json!(n);
        }
        if let Some(t) = &c.max_connection_lifetime {
            body["max_connection_lifetime"] = json!(t.seconds().unwrap_or_default());
        }
        Ok(body)
    }

    async fn rotate_root(&self, mount: &str, name: &str) -> Result<(), ProviderError> {
        self.api.write(&format!("{mount}/rotate-root/{name}"), &json!({})).await?;
        Ok(())
    }

    fn outputs(mount: &str, c: &DatabaseConnection, root_rotated: bool) -> DatabaseConnectionOutputs {
        DatabaseConnectionOutputs { mount: mount.to_string(), name: c.name.clone(), plugin_name: c.plugin_name.clone(), root_rotated }
    }
}

#[async_trait]
impl ResourceProvider for DatabaseConnectionProvider {
    type Resource = DatabaseConnection;

    fn replace_on(&self) -> Vec<Path> {
        vec![field("mount"), field("name"), field("plugin_name")]
    }

    fn fixed_name(&self) -> Option<Path> {
        Some(field("name"))
    }

    async fn check(&self, _ctx: CallContext<'_>, c: DatabaseConnection, _seed: &[u8; 32]) -> Result<DatabaseConnection, Vec<CheckFailure>> {
        let mut failures = Vec::new();
        let mut c = c;
        if let Some(mount) = c.mount.known() {
            check_path("mount", mount, &mut failures);
        }
        check_name("name", &c.name, &mut failures);
        if !MYSQL_PLUGINS.contains(&c.plugin_name.as_str()) {
            failures.push(CheckFailure::field("plugin_name", format!("`{}` is not one of {}", c.plugin_name, MYSQL_PLUGINS.join(", "))));
        }
        if let Some(url) = c.connection_url.known() {
            check_url(url, &mut failures);
        }
        if c.username.known().is_some_and(|u| u.trim().is_empty()) {
            failures.push(CheckFailure::field("username", "must not be empty"));
        }
        if c.password.known().is_some_and(|p| p.expose().is_empty()) {
            failures.push(CheckFailure::field("password", "must not be empty"));
        }
        if c.allowed_roles.iter().any(|r| r.trim().is_empty()) {
            failures.push(CheckFailure::field("allowed_roles", "has an empty entry"));
        }
        if let Some(Input::Value(ca)) = &c.tls_ca
            && !ca.contains("-----BEGIN CERTIFICATE-----")
        {
            failures.push(CheckFailure::field("tls_ca", "is not a PEM certificate"));
        }
        c.max_connection_lifetime = c.max_connection_lifetime.map(|t| t.checked("max_connection_lifetime", &mut failures));
        if failures.is_empty() { Ok(c) } else { Err(failures) }
    }

    async fn create(
        &self,
        _ctx: CallContext<'_>,
        c: &DatabaseConnection,
    ) -> Result<TypedCreated<DatabaseConnectionOutputs>, ProviderError> {
        let mount = known("mount", &c.mount)?;
        let path = config_path(mount, &c.name);
        if self.api.read(&path).await?.is_some() {
            return Err(already_exists("database connection", &path));
        }
        // With verify_connection Vault logs in to the server before saving: when this returns,
        // the connection works.
        self.api.write(&path, &Self::body(c, true)?).await?;
        if c.rotate_root
            && let Err(e) = self.rotate_root(mount, &c.name).await
        {
            let partial = serde_json::to_value(Self::outputs(mount, c, false)).map(Value::from_json).unwrap_or_default();
            return Err(undo_create(&self.api, &path, e, Created { id: path.clone(), outputs: partial }).await);
        }
        Ok(TypedCreated { id: path, outputs: Self::outputs(mount, c, c.rotate_root) })
    }

    async fn read(
        &self,
        _ctx: CallContext<'_>,
        id: &str,
        prior: Option<&DatabaseConnection>,
        prior_outputs: Option<&DatabaseConnectionOutputs>,
    ) -> Result<Option<TypedObserved<DatabaseConnection>>, ProviderError> {
        let (mount, name) = super::parse_id(id, "config")?;
        let Some(live) = self.api.read(&config_path(&mount, &name)).await? else { return Ok(None) };
        let details = live.get("connection_details").cloned().unwrap_or(Json::Null);
        let detail = |key: &str| details.get(key).filter(|v| !v.is_null());
        let text = |key: &str| detail(key).and_then(Json::as_str).map(str::to_string).filter(|s| !s.is_empty());
        let count = |key: &str| detail(key).and_then(Json::as_u64).map(|n| n as u32);
        let inputs = DatabaseConnection {
            mount: Input::Value(mount.clone()),
            name: name.clone(),
            plugin_name: json_str(&live, "plugin_name"),
            connection_url: Input::Value(text("connection_url").unwrap_or_default()),
            username: Input::Value(text("username").unwrap_or_default()),
            // Vault never returns the password: berth keeps what it sent.
            password: prior.map(|p| p.password.clone()).unwrap_or_else(|| Input::Value(Secret::new(String::new()))),
            allowed_roles: json_strings(&live, "allowed_roles"),
            root_rotation_statements: json_strings(&live, "root_credentials_rotate_statements"),
            rotate_root: prior.is_some_and(|p| p.rotate_root),
            verify_connection: prior.is_none_or(|p| p.verify_connection),
            username_template: text("username_template"),
            password_policy: Some(json_str(&live, "password_policy")).filter(|p| !p.is_empty()),
            tls_ca: text("tls_ca").map(Input::Value),
            max_open_connections: count("max_open_connections"),
            max_idle_connections: count("max_idle_connections"),
            max_connection_lifetime: detail("max_connection_lifetime").map(|_| Ttl::Seconds(json_u64(&details, "max_connection_lifetime"))),
        };
        let root_rotated = prior_outputs.is_some_and(|o| o.root_rotated);
        let outputs = Self::outputs(&mount, &inputs, root_rotated);
        Ok(Some(TypedObserved { id: config_path(&mount, &name), inputs, outputs }))
    }

    async fn update(
        &self,
        _ctx: CallContext<'_>,
        id: &str,
        old: &DatabaseConnection,
        new: &DatabaseConnection,
        old_outputs: &DatabaseConnectionOutputs,
    ) -> Result<DatabaseConnectionOutputs, ProviderError> {
        let (mount, _) = super::parse_id(id, "config")?;
        // Once Vault rotated the administrator's password, the program's value is stale: send it
        // only if the program changed it (a new server, say), and rotate again after.
        let password_changed = known("password", &old.password)?.expose() != known("password", &new.password)?.expose();
        let send_password = !old_outputs.root_rotated || password_changed;
        self.api.write(id, &Self::body(new, send_password)?).await?;
        let rotate = new.rotate_root && (send_password || !old_outputs.root_rotated);
        if rotate {
            self.rotate_root(&mount, &new.name).await?;
        }
        Ok(Self::outputs(&mount, new, rotate || (old_outputs.root_rotated && !send_password)))
    }

    async fn delete(
        &self,
        _ctx: CallContext<'_>,
        id: &str,
        _inputs: &DatabaseConnection,
        _outputs: &DatabaseConnectionOutputs,
    ) -> Result<(), ProviderError> {
        let (mount, name) = super::parse_id(id, "config")?;
        // Users issued through this connection must be revoked while Vault can still reach the
        // database: afterwards their leases could never end, nor the mount be deleted.
        for role in self.api.list(&format!("{mount}/roles")).await? {
            let uses_this = self.api.read(&format!("{mount}/roles/{role}")).await?.is_some_and(|r| json_str(&r, "db_name") == name);
            if uses_this {
                super::revoke_users(&self.api, &mount, &role).await?;
            }
        }
        self.api.delete(id).await?;
        Ok(())
    }

    async fn lookup(
        &self,
        ctx: CallContext<'_>,
        c: &DatabaseConnection,
    ) -> Result<Option<TypedObserved<DatabaseConnection>>, ProviderError> {
        let mount = known("mount", &c.mount)?;
        // An interrupted create may have rotated the password already; berth cannot tell, so it
        // records "not rotated" and the next update sends the program's password (which fails
        // verification if it was rotated: then run `berth state delete` and import it).
        self.read(ctx, &config_path(mount, &c.name), Some(c), None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_credentials_out() {
        let mut f = Vec::new();
        check_url("{{username}}:{{password}}@tcp(db:3306)/", &mut f);
        assert!(f.is_empty(), "{f:?}");
        check_url("admin:hunter2@tcp(db:3306)/", &mut f);
        assert_eq!(f.len(), 1);
        assert!(!f[0].reason.contains("hunter2"), "a literal password is never echoed");
        f.clear();
        check_url("mysql://{{username}}:{{password}}@db:3306", &mut f);
        assert_eq!(f.len(), 1, "{f:?}");
        f.clear();
        check_url("{{{{username}}}}:{{{{password}}}}@tcp(db:3306)/", &mut f);
        assert_eq!(f.len(), 1, "doubled placeholders: {f:?}");
    }

    #[test]
    fn body_sends_the_password_only_when_asked() {
        let c =
            DatabaseConnection::mysql("db", "edxapp", "{{username}}:{{password}}@tcp(h:3306)/", "admin", Secret::new("pw-x".to_string()));
        let with = DatabaseConnectionProvider::body(&c, true).unwrap();
        assert_eq!(with["password"], "pw-x");
        let without = DatabaseConnectionProvider::body(&c, false).unwrap();
        assert!(without.get("password").is_none());
        assert_eq!(without["allowed_roles"], json!([]), "an empty list clears Vault's");
    }
}
