//! The edxapp database roles for real: the component's database engine on OpenBao, pointed at
//! the testbed's MariaDB through an admin user with exactly the privileges RDS gives its master
//! user (no SUPER, no FILE), so a grant RDS would refuse fails here too. Every role's
//! credentials are read from OpenBao and used to log in.
//!
//! Needs the testbed (`make testbed`) and its variables (`make test` loads them).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::process::Command;
use std::sync::Arc;

use berth_components::edxapp::aws::Database;
use berth_components::edxapp::vault::{DATABASE_ROLES, database_engine};
use berth_engine::apply::{ApplyOptions, Silent};
use berth_engine::config::parse_yaml;
use berth_engine::crypto::Keyring;
use berth_engine::ops::{Engine, Operation, RunOptions};
use berth_engine::registry::ProviderSettings;
use berth_engine::state::LocalBackend;
use berth_engine::{Output, Program, ProgramResult, Providers, Stack};

/// What RDS grants the master user of a MariaDB instance (AWS's documentation, "Master user
/// account privileges"), with grant option.
const RDS_MASTER_PRIVILEGES: &str = "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, RELOAD, PROCESS, REFERENCES, INDEX, ALTER, \
     SHOW DATABASES, CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, REPLICATION SLAVE, REPLICATION CLIENT, CREATE VIEW, \
     SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, CREATE USER, EVENT, TRIGGER";

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run `make testbed` and load ~/.cache/berth/testbed/all.env"))
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{:08x}", RandomState::new().build_hasher().finish() as u32)
}

/// SQL on the testbed's MariaDB as `user` (password through the environment, never argv).
fn mariadb(user: &str, password: &str, sql: &str) -> Result<String, String> {
    let out = Command::new(var("BERTH_MARIADB_CLIENT"))
        .args(["--no-defaults", "-h", &var("BERTH_MARIADB_HOST"), "-P", &var("BERTH_MARIADB_PORT"), "-u", user, "-N", "-B", "-e", sql])
        .env("MYSQL_PWD", password)
        .output()
        .map_err(|e| format!("cannot run the MariaDB client: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn as_admin(sql: &str) -> String {
    mariadb(&var("BERTH_MARIADB_USER"), &var("BERTH_MARIADB_PASSWORD"), sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn bao(args: &[&str]) -> Result<String, String> {
    let out = Command::new(var("BERTH_BAO")).args(args).output().map_err(|e| format!("cannot run bao: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Drops what the test made even when it fails half-way.
struct Cleanup {
    master: String,
    mount: String,
    scratch_db: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Never panic here: a failed test must report its own failure.
        let (Ok(user), Ok(password), Ok(_)) =
            (std::env::var("BERTH_MARIADB_USER"), std::env::var("BERTH_MARIADB_PASSWORD"), std::env::var("BERTH_BAO"))
        else {
            return;
        };
        let _ = bao(&["secrets", "disable", &self.mount]);
        let admin = (user, password);
        let _ = mariadb(&admin.0, &admin.1, &format!("DROP USER IF EXISTS '{}'@'%'", self.master));
        let _ = mariadb(&admin.0, &admin.1, &format!("DROP DATABASE IF EXISTS `{}`", self.scratch_db));
    }
}

fn engine(dir: &std::path::Path) -> Engine {
    let settings = format!("vault:\n  address: {}\n  token: {}\n", var("VAULT_ADDR"), var("VAULT_TOKEN"));
    let node = parse_yaml("stacks/test.yaml", &settings).expect("settings are YAML").get("vault").cloned();
    let root = dir.to_path_buf();
    let providers = Providers::from_plugins(&[berth_provider_vault::plugin()], move |_| ProviderSettings {
        stack: "test".into(),
        project_root: root.clone(),
        node: node.clone(),
    });
    Engine {
        stack: "test".into(),
        backend: Arc::new(LocalBackend::new(dir.join("state"))),
        providers: Arc::new(providers),
        keyring: Arc::new(Keyring::new(Some("test passphrase".into()))),
    }
}

async fn run(engine: &Engine, operation: Operation, program: Option<&dyn Program>) {
    let options = RunOptions { parallel: 4, ..RunOptions::default() };
    let (prepared, _) = engine.prepare(operation, program, None, &options).await.unwrap_or_else(|e| panic!("plan: {e}"));
    let executed = engine.execute(prepared, &ApplyOptions::default(), Arc::new(Silent)).await.unwrap_or_else(|e| panic!("apply: {e}"));
    assert!(executed.report.succeeded(), "{operation:?} failed: {:?}", executed.report);
}

/// `(username, password)` from `<mount>/creds/<role>`.
fn creds(mount: &str, role: &str) -> (String, String) {
    let out = bao(&["read", "-format=json", &format!("{mount}/creds/{role}")]).unwrap_or_else(|e| panic!("creds/{role}: {e}"));
    let json: serde_json::Value = serde_json::from_str(&out).expect("bao prints JSON");
    let field = |k: &str| json["data"][k].as_str().unwrap_or_else(|| panic!("no {k} for {role}")).to_string();
    (field("username"), field("password"))
}

#[tokio::test]
async fn every_edxapp_role_issues_users_an_rds_master_can_create() {
    var("BERTH_MARIADB_USER");
    let cleanup = Cleanup { master: unique("rdsmaster"), mount: unique("mariadb").replace('_', "-"), scratch_db: unique("admin_scratch") };
    let master_password = unique("pw");
    as_admin(&format!(
        "CREATE USER '{m}'@'%' IDENTIFIED BY '{master_password}'; GRANT {RDS_MASTER_PRIVILEGES} ON *.* TO '{m}'@'%' WITH GRANT OPTION",
        m = cleanup.master
    ));
    // The stand-in is as strict as RDS: the grant the admin role used to make is refused.
    let refused = mariadb(&cleanup.master, &master_password, &format!("GRANT ALL PRIVILEGES ON *.* TO '{}'@'%'", cleanup.master));
    assert!(refused.is_err_and(|e| e.contains("denied")), "an RDS master user cannot grant ALL ON *.*");

    let dir = tempfile::tempdir().expect("temporary directory");
    let engine = engine(dir.path());
    let (mount, master, password) = (cleanup.mount.clone(), cleanup.master.clone(), master_password.clone());
    let program = move |stack: &mut Stack| -> ProgramResult {
        let database = Database {
            address: Output::known(var("BERTH_MARIADB_HOST")),
            port: Output::known(var("BERTH_MARIADB_PORT").parse::<i32>()?),
            admin_user: master.clone(),
            admin_password: Output::known(password.clone()).secret(),
        };
        database_engine(stack, &mount, "roles-test", &database, true)?;
        Ok(())
    };
    run(&engine, Operation::Up, Some(&program)).await;

    let mut issued = Vec::new();
    for (role, _) in DATABASE_ROLES {
        let (user, password) = creds(&cleanup.mount, role);
        let whoami = mariadb(&user, &password, "SELECT CURRENT_USER()").unwrap_or_else(|e| panic!("{role} logs in: {e}"));
        assert!(whoami.starts_with(&user), "{role}: {whoami}");
        let can = |sql: &str| mariadb(&user, &password, sql).is_ok();
        match role {
            "admin" => {
                assert!(can(&format!("CREATE DATABASE `{}`", cleanup.scratch_db)), "admin creates databases");
                assert!(can(&format!("DROP DATABASE `{}`", cleanup.scratch_db)), "admin drops databases");
            }
            "readonly" => {
                assert!(can("SELECT COUNT(*) FROM information_schema.tables"), "readonly reads");
                assert!(!can(&format!("CREATE DATABASE `{}`", cleanup.scratch_db)), "readonly cannot create");
            }
            _ => assert!(!can(&format!("CREATE DATABASE `{}`", cleanup.scratch_db)), "{role} is limited to its schema"),
        }
        issued.push(user);
    }

    run(&engine, Operation::Destroy, None).await;
    for user in issued {
        assert_eq!(as_admin(&format!("SELECT COUNT(*) FROM mysql.user WHERE user = '{user}'")), "0", "{user} revoked with the mount");
    }
    assert!(bao(&["read", &format!("{}/config/edxapp", cleanup.mount)]).is_err(), "the database engine is gone");
}
