//! The edxapp database roles for real: the component's database engine on OpenBao, pointed at
//! the testbed's MariaDB through an admin user with exactly the privileges RDS gives its master
//! user (no SUPER, no FILE), so a grant RDS would refuse fails here too. Every role's
//! credentials are read from OpenBao and used to log in.
//!
//! Needs the testbed (`make testbed`); the harness is the Vault provider's own.

#[path = "../../providers/vault/tests/openbao/support.rs"]
#[allow(dead_code)]
mod support;

use berth_components::edxapp::aws::Database;
use berth_components::edxapp::vault::{DATABASE_ROLES, database_engine};
use berth_engine::{Output, ProgramResult, Stack};
use support::*;

/// What RDS grants the master user of a MariaDB instance (AWS's documentation, "Master user
/// account privileges"), with grant option.
const RDS_MASTER_PRIVILEGES: &str = "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, RELOAD, PROCESS, REFERENCES, INDEX, ALTER, \
     SHOW DATABASES, CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, REPLICATION SLAVE, REPLICATION CLIENT, CREATE VIEW, \
     SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, CREATE USER, EVENT, TRIGGER";

/// `(username, password)` from `<mount>/creds/<role>`.
fn creds(mount: &str, role: &str) -> (String, String) {
    let out = bao_ok(&["read", "-format=json", &format!("{mount}/creds/{role}")]);
    let json: serde_json::Value = serde_json::from_str(&out).expect("bao prints JSON");
    let field = |k: &str| json["data"][k].as_str().unwrap_or_else(|| panic!("no {k} for {role}")).to_string();
    (field("username"), field("password"))
}

#[tokio::test]
async fn every_edxapp_role_issues_users_an_rds_master_can_create() {
    let h = Harness::new();
    let (master, master_password, mount, scratch_db) =
        (unique("rdsmaster").replace('-', "_"), unique("pw"), unique("mariadb"), unique("admin_scratch").replace('-', "_"));
    h.cleanup.mount(&mount);
    h.cleanup.sql(&format!("DROP USER IF EXISTS '{master}'@'%'"));
    h.cleanup.sql(&format!("DROP DATABASE IF EXISTS `{scratch_db}`"));
    mariadb_admin(&format!(
        "CREATE USER '{master}'@'%' IDENTIFIED BY '{master_password}'; GRANT {RDS_MASTER_PRIVILEGES} ON *.* TO '{master}'@'%' WITH GRANT OPTION"
    ));
    // The stand-in is as strict as RDS: the grant the admin role used to make is refused.
    let refused = mariadb(&master, &master_password, &format!("GRANT ALL PRIVILEGES ON *.* TO '{master}'@'%'"));
    assert!(refused.is_err_and(|e| e.contains("denied")), "an RDS master user cannot grant ALL ON *.*");

    let (engine_mount, admin, password) = (mount.clone(), master.clone(), master_password.clone());
    let program = move |stack: &mut Stack| -> ProgramResult {
        let t = testbed();
        let database = Database {
            address: Output::known(t.get("BERTH_MARIADB_HOST").to_string()),
            port: Output::known(t.get("BERTH_MARIADB_PORT").parse::<i32>()?),
            admin_user: admin.clone(),
            admin_password: Output::known(password.clone()).secret(),
        };
        database_engine(stack, &engine_mount, "roles-test", &database, true)?;
        Ok(())
    };
    h.up(&program).await;

    let mut issued = Vec::new();
    for (role, _) in DATABASE_ROLES {
        let (user, password) = creds(&mount, role);
        let whoami = mariadb(&user, &password, "SELECT CURRENT_USER()").unwrap_or_else(|e| panic!("{role} logs in: {e}"));
        assert!(whoami.starts_with(&user), "{role}: {whoami}");
        let can = |sql: &str| mariadb(&user, &password, sql).is_ok();
        match role {
            "admin" => {
                assert!(can(&format!("CREATE DATABASE `{scratch_db}`")), "admin creates databases");
                assert!(can(&format!("DROP DATABASE `{scratch_db}`")), "admin drops databases");
            }
            "readonly" => {
                assert!(can("SELECT COUNT(*) FROM information_schema.tables"), "readonly reads");
                assert!(!can(&format!("CREATE DATABASE `{scratch_db}`")), "readonly cannot create");
            }
            _ => assert!(!can(&format!("CREATE DATABASE `{scratch_db}`")), "{role} is limited to its schema"),
        }
        issued.push(user);
    }

    h.destroy().await;
    for user in issued {
        assert_eq!(mariadb_admin(&format!("SELECT COUNT(*) FROM mysql.user WHERE user = '{user}'")), "0", "{user} revoked with the mount");
    }
    assert!(!bao(&["read", &format!("{mount}/config/edxapp")]).ok, "the database engine is gone");
}
