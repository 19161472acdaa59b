//! The Vault component: a kv mount with the application's secrets and a policy to read them,
//! and the database secrets engine on the RDS instance with the Open edX roles.

use berth_engine::{Options, Output, ProgramResult, ResourceHandle, Secret, Stack, format_output};
use berth_provider_builtin::random::Password;
use berth_provider_vault::{DatabaseConnection, DatabaseRole, KvSecret, Mount, Policy, Ttl};

use crate::edxapp::Ctx;
use crate::edxapp::aws::{Cache, Database};

/// What a role may do in its schemas: every schema-level privilege RDS's master user holds
/// (and so may grant). Not `ALL PRIVILEGES`: on MariaDB that includes `DELETE HISTORY`, which RDS
/// does not give the master user, so a grant of ALL is refused on RDS.
macro_rules! schema_privileges {
    () => {
        "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, REFERENCES, INDEX, ALTER, CREATE TEMPORARY TABLES, LOCK TABLES, \
         EXECUTE, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, EVENT, TRIGGER"
    };
}

/// The database roles: name and what it may do.
pub const DATABASE_ROLES: [(&str, &str); 6] = [
    ("admin", concat!(schema_privileges!(), " ON `%`.*")),
    ("readonly", "SELECT ON *.*"),
    ("edxapp", concat!(schema_privileges!(), " ON edxapp.*")),
    ("edxapp-csmh", concat!(schema_privileges!(), " ON edxapp_csmh.*")),
    ("xqueue", concat!(schema_privileges!(), " ON xqueue.*")),
    ("notes", concat!(schema_privileges!(), " ON edx_notes_api.*")),
];

/// Where things are in Vault.
pub struct VaultPaths {
    /// The kv v2 mount (`secret-<deployment>`).
    pub kv_mount: Output<String>,
    /// The database engine mount (`mariadb-<deployment>`).
    pub db_mount: Output<String>,
    /// The policy granting read access to both.
    pub policy: Output<String>,
    /// kv secret names.
    pub general: String,
    pub mongodb: String,
    pub redis: String,
    pub oauth: String,
}

pub fn secrets(stack: &mut Stack, ctx: &Ctx, database: &Database, cache: &Cache) -> ProgramResult<VaultPaths> {
    let prefix = ctx.prefix.clone();
    stack.component("edxapp:index:VaultSecrets", "vault-secrets", Options::new(), |stack, _| -> ProgramResult<VaultPaths> {
        let kv = stack.register("kv", Mount { description: format!("edxapp secrets of {}", ctx.env_name), ..Mount::kv(&format!("secret-{prefix}"), 2) }, Options::new())?;
        let kv_mount: Output<String> = kv.output("path");
        let generated = |stack: &mut Stack, name: &str, length: u16| -> ProgramResult<Output<String>> {
            let handle = stack.register(name, Password { length, special: false, ..Password::default() }, Options::new())?;
            Ok(handle.output("result"))
        };
        let secret_key = generated(stack, "django-secret-key", 64)?;
        let jwt_secret = generated(stack, "jwt-secret-key", 64)?;
        let mongo_password = generated(stack, "mongodb-password", 32)?;
        let lms_oauth = generated(stack, "lms-oauth-secret", 48)?;
        let cms_oauth = generated(stack, "cms-oauth-secret", 48)?;
        stack.register(
            "general",
            KvSecret::new(kv_mount.clone(), "edxapp").with_output("SECRET_KEY", &secret_key).with_output("JWT_SECRET_KEY", &jwt_secret),
            Options::new(),
        )?;
        stack.register(
            "mongodb",
            KvSecret::new(kv_mount.clone(), "mongodb")
                .with_value("host", format!("mongodb.{}.svc", ctx.namespace))
                .with_value("port", 27017)
                .with_value("user", "edxapp")
                .with_output("password", &mongo_password)
                .with_value("db", "edxapp"),
            Options::new(),
        )?;
        // The address is not secret: berth writes it into the fragments that need it.
        stack.register("redis", KvSecret::new(kv_mount.clone(), "redis").with_output("token", &cache.token), Options::new())?;
        stack.register("oauth", KvSecret::new(kv_mount.clone(), "oauth").with_output("lms", &lms_oauth).with_output("cms", &cms_oauth), Options::new())?;

        let db = database_engine(stack, &format!("mariadb-{prefix}"), &ctx.env_name, database, ctx.config.verify_database_connection)?;
        let db_mount: Output<String> = db.output("path");

        let policy_name = format!("edxapp-{prefix}");
        let document = format!(
            "# edxapp of {env}: its secrets and database credentials.\npath \"secret-{prefix}/data/*\" {{\n  capabilities = [\"read\"]\n}}\npath \"mariadb-{prefix}/creds/*\" {{\n  capabilities = [\"read\"]\n}}\n",
            env = ctx.env_name
        );
        let policy = stack.register("policy", Policy::new(&policy_name, document), Options::new().depends_on(&kv).depends_on(&db))?;
        Ok(VaultPaths {
            kv_mount,
            db_mount,
            policy: policy.output("name"),
            general: "edxapp".into(),
            mongodb: "mongodb".into(),
            redis: "redis".into(),
            oauth: "oauth".into(),
        })
    })
}

/// The database secrets engine at `mount` on the RDS instance: a connection as the instance's
/// admin user and a role per [`DATABASE_ROLES`], leases of 3 months (6 at most).
pub fn database_engine(
    stack: &mut Stack,
    mount: &str,
    env_name: &str,
    database: &Database,
    verify_connection: bool,
) -> ProgramResult<ResourceHandle<Mount>> {
    let db = stack.register(
        "database-engine",
        Mount {
            description: format!("edxapp database credentials of {env_name}"),
            default_lease_ttl: Some(Ttl::days(90)),
            max_lease_ttl: Some(Ttl::days(180)),
            ..Mount::database(mount)
        },
        Options::new(),
    )?;
    let db_mount: Output<String> = db.output("path");
    let url = format_output!("{{{{username}}}}:{{{{password}}}}@tcp({}:{})/", database.address, database.port.map(|p| p.to_string()));
    let mut connection =
        DatabaseConnection::mysql(db_mount.clone(), "edxapp", url, database.admin_user.clone(), database.admin_password.map(Secret::new));
    connection.allowed_roles = DATABASE_ROLES.iter().map(|(name, _)| name.to_string()).collect();
    connection.verify_connection = verify_connection;
    let connection = stack.register("connection", connection, Options::new())?;
    for (name, grants) in DATABASE_ROLES {
        let mut role = DatabaseRole::mysql(db_mount.clone(), name, connection.output::<String>("name"), grants);
        role.default_ttl = Some(Ttl::days(90));
        role.max_ttl = Some(Ttl::days(180));
        stack.register(&format!("role-{name}"), role, Options::new())?;
    }
    Ok(db)
}
