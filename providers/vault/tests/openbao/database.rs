//! The database secrets engine for real: berth configures OpenBao to create users on the
//! testbed's MariaDB, and the test logs in with them.

use berth_engine::{Options, ProgramResult, Secret, Stack, format_output};
use berth_provider_vault::{DatabaseConnection, DatabaseRole, Mount, Ttl};
use serde_json::Value as Json;

use crate::support::*;

#[derive(Clone)]
struct Params {
    mount: String,
    schema: String,
    allowed_roles: Vec<String>,
    edxapp_ttl: Ttl,
    edxapp_max_ttl: Ttl,
}

/// Open edX's shape: a database mount with a 3-month default lease, a connection whose URL is
/// built from the server resource's outputs and whose password is a stack secret, and the
/// `edxapp` and `readonly` roles.
fn program(p: Params) -> impl Fn(&mut Stack) -> ProgramResult + Send + Sync {
    move |s: &mut Stack| {
        let t = testbed();
        let port: u16 = t.get("BERTH_MARIADB_PORT").parse()?;
        let server = s.register("server", Server { host: t.get("BERTH_MARIADB_HOST").into(), port }, Options::new())?;
        let admin_user: String = s.config_at("db_admin_user")?;
        let admin_password: Secret<String> = s.config_at("db_admin_password")?;
        let mount = Mount { default_lease_ttl: Some(Ttl::days(90)), max_lease_ttl: Some(Ttl::days(180)), ..Mount::database(&p.mount) };
        let db = s.register("db", mount, Options::new())?;
        let path = db.output::<String>("path");
        let url = format_output!(
            "{{{{username}}}}:{{{{password}}}}@tcp({}:{})/",
            server.output::<String>("address"),
            server.output::<u16>("port")
        );
        let connection = DatabaseConnection {
            allowed_roles: p.allowed_roles.clone(),
            ..DatabaseConnection::mysql(&path, "mariadb", url, admin_user, admin_password)
        };
        let connection = s.register("connection", connection, Options::new())?;
        let edxapp = DatabaseRole {
            default_ttl: Some(p.edxapp_ttl.clone()),
            max_ttl: Some(p.edxapp_max_ttl.clone()),
            ..DatabaseRole::mysql(&path, "edxapp", connection.output::<String>("name"), &format!("ALL PRIVILEGES ON `{}`.*", p.schema))
        };
        s.register("edxapp", edxapp, Options::new())?;
        let readonly = DatabaseRole::mysql(&path, "readonly", connection.output::<String>("name"), &format!("SELECT ON `{}`.*", p.schema));
        s.register("readonly", readonly, Options::new())?;
        Ok(())
    }
}

/// Reads `<mount>/creds/<role>` with the CLI: (user, password, lease seconds).
fn creds(mount: &str, role: &str) -> (String, String, u64) {
    let out = bao_ok(&["read", "-format=json", &format!("{mount}/creds/{role}")]);
    let json: Json = serde_json::from_str(&out).expect("bao prints JSON");
    let text = |k: &str| json["data"][k].as_str().unwrap_or_else(|| panic!("no {k} in {out}")).to_string();
    (text("username"), text("password"), json["lease_duration"].as_u64().unwrap_or_default())
}

fn user_exists(user: &str) -> bool {
    mariadb_admin(&format!("SELECT COUNT(*) FROM mysql.user WHERE user = '{user}'")) != "0"
}

#[tokio::test]
async fn database_engine_issues_working_mariadb_users() {
    let t = testbed();
    let mut h = Harness::with_server();
    h.config = Some(config_with_secrets(
        &format!("db_admin_user: {}\ndb_admin_password: {{secure: admin}}\n", t.get("BERTH_MARIADB_USER")),
        &[("admin", t.get("BERTH_MARIADB_PASSWORD"))],
    ));
    let mut p = Params {
        mount: unique("mariadb"),
        schema: unique("edxapp").replace('-', "_"),
        allowed_roles: vec!["edxapp".into(), "readonly".into()],
        edxapp_ttl: Ttl::days(90),
        edxapp_max_ttl: Ttl::days(180),
    };
    h.cleanup.mount(&p.mount);
    mariadb_admin(&format!("CREATE DATABASE `{}`", p.schema));
    h.cleanup.sql(&format!("DROP DATABASE IF EXISTS `{}`", p.schema));

    let plan = h.up(&program(p.clone())).await;
    assert_eq!(changes(&plan), vec!["connection: create", "db: create", "edxapp: create", "readonly: create", "server: create"]);
    let connection = bao_read(&format!("{}/config/mariadb", p.mount)).expect("the connection exists");
    assert_eq!(
        connection["connection_details"]["connection_url"],
        format!("{{{{username}}}}:{{{{password}}}}@tcp({}:{})/", t.get("BERTH_MARIADB_HOST"), t.get("BERTH_MARIADB_PORT"))
    );
    assert_eq!(connection["plugin_name"], "mysql-database-plugin");
    let role = bao_read(&format!("{}/roles/edxapp", p.mount)).expect("the role exists");
    assert_eq!((role["default_ttl"].as_u64(), role["max_ttl"].as_u64()), (Some(90 * 86_400), Some(180 * 86_400)));
    assert_eq!(outputs(&h.state().await, "edxapp")["creds_path"], format!("{}/creds/edxapp", p.mount));

    // The application's user can log in and own its schema, for 3 months.
    let (user, password, lease) = creds(&p.mount, "edxapp");
    assert_eq!(lease, 90 * 86_400);
    let sql =
        format!("CREATE TABLE `{0}`.courses (id INT); INSERT INTO `{0}`.courses VALUES (1); SELECT COUNT(*) FROM `{0}`.courses", p.schema);
    assert_eq!(mariadb(&user, &password, &sql).unwrap_or_else(|e| panic!("edxapp user cannot work: {e}")), "1");
    // The read-only user can read and nothing else.
    let (reader, reader_password, _) = creds(&p.mount, "readonly");
    assert_eq!(mariadb(&reader, &reader_password, &format!("SELECT COUNT(*) FROM `{}`.courses", p.schema)).unwrap(), "1");
    let denied = mariadb(&reader, &reader_password, &format!("DROP TABLE `{}`.courses", p.schema)).unwrap_err();
    assert!(denied.contains("denied"), "{denied}");

    // No-op.
    let (plan, report) = h.try_up(&program(p.clone()), true).await;
    assert!(changes(&plan).is_empty() && plan.drift.is_empty(), "{:?} {:?}", changes(&plan), drift(&plan));
    assert_eq!(report.mutating_calls, 0);

    // Update in place: TTLs of a role, the roles a connection allows.
    p.edxapp_ttl = Ttl::from("720h");
    p.edxapp_max_ttl = Ttl::from("1440h");
    p.allowed_roles = vec!["edxapp".into()];
    let plan = h.up(&program(p.clone())).await;
    assert_eq!(changes(&plan), vec!["connection: update", "edxapp: update"]);
    let role = bao_read(&format!("{}/roles/edxapp", p.mount)).unwrap();
    assert_eq!((role["default_ttl"].as_u64(), role["max_ttl"].as_u64()), (Some(30 * 86_400), Some(60 * 86_400)));
    let refused = bao(&["read", &format!("{}/creds/readonly", p.mount)]);
    assert!(!refused.ok && refused.stderr.contains("not an allowed role"), "{}", refused.stderr);
    assert_eq!(creds(&p.mount, "edxapp").2, 30 * 86_400, "the connection still works");

    // Drift: a role and the connection changed with the CLI.
    bao_ok(&["write", &format!("{}/roles/edxapp", p.mount), "default_ttl=60"]);
    bao_ok(&["write", &format!("{}/config/mariadb", p.mount), "allowed_roles=edxapp,readonly"]);
    let plan = h.preview(&program(p.clone()), true).await;
    assert_eq!(drift(&plan), vec!["connection: allowed_roles[1]", "edxapp: default_ttl"]);
    let (_, report) = h.try_up(&program(p.clone()), true).await;
    assert!(report.succeeded(), "{:?}", failures(&report));
    assert_eq!(bao_read(&format!("{}/roles/edxapp", p.mount)).unwrap()["default_ttl"].as_u64(), Some(30 * 86_400));

    // Destroy removes role, connection and mount, and the users the roles issued.
    assert!(user_exists(&user) && user_exists(&reader));
    h.destroy().await;
    assert!(bao_read(&format!("sys/mounts/{}", p.mount)).is_none(), "the mount is gone");
    assert!(!user_exists(&user) && !user_exists(&reader), "issued users are dropped");
    assert!(mariadb(&user, &password, "SELECT 1").is_err());
}

#[tokio::test]
async fn rotate_root_takes_the_admin_password_out_of_berths_hands() {
    let admin = unique("rot").replace('-', "_");
    let initial = format!("Initial-{}", unique("pw"));
    mariadb_admin(&format!(
        "CREATE USER '{admin}'@'%' IDENTIFIED BY '{initial}'; GRANT ALL PRIVILEGES ON *.* TO '{admin}'@'%' WITH GRANT OPTION"
    ));
    let t = testbed();
    let h = Harness::new();
    h.cleanup.sql(&format!("DROP USER IF EXISTS '{admin}'@'%'"));
    let mount = unique("mariadb-rot");
    h.cleanup.mount(&mount);
    let program = |allowed: Vec<&'static str>| {
        let (mount, admin, initial) = (mount.clone(), admin.clone(), initial.clone());
        let url = format!("{{{{username}}}}:{{{{password}}}}@tcp({}:{})/", t.get("BERTH_MARIADB_HOST"), t.get("BERTH_MARIADB_PORT"));
        move |s: &mut Stack| -> ProgramResult {
            let db = s.register("db", Mount::database(&mount), Options::new())?;
            let path = db.output::<String>("path");
            let connection = DatabaseConnection {
                rotate_root: true,
                allowed_roles: allowed.iter().map(|r| r.to_string()).collect(),
                ..DatabaseConnection::mysql(&path, "mariadb", url.clone(), admin.clone(), Secret::new(initial.clone()))
            };
            let connection = s.register("connection", connection, Options::new())?;
            s.register(
                "app",
                DatabaseRole::mysql(&path, "app", connection.output::<String>("name"), "SELECT ON mysql.db"),
                Options::new(),
            )?;
            Ok(())
        }
    };
    h.up(&program(vec!["app"])).await;
    assert_eq!(outputs(&h.state().await, "connection")["root_rotated"], true);
    let old = mariadb(&admin, &initial, "SELECT 1").unwrap_err();
    assert!(old.contains("denied"), "only Vault knows the admin password now: {old}");
    let (user, password, _) = creds(&mount, "app");
    assert!(mariadb(&user, &password, "SELECT 1").is_ok());

    // An update does not send the stale password back (it would fail verification).
    h.up(&program(vec!["app", "other"])).await;
    assert_eq!(bao_read(&format!("{mount}/config/mariadb")).unwrap()["allowed_roles"], serde_json::json!(["app", "other"]));
    let (user, password, _) = creds(&mount, "app");
    assert!(mariadb(&user, &password, "SELECT 1").is_ok());
    let (plan, _) = h.try_up(&program(vec!["app", "other"]), true).await;
    assert!(changes(&plan).is_empty() && plan.drift.is_empty(), "{:?} {:?}", changes(&plan), drift(&plan));

    h.destroy().await;
    assert!(!user_exists(&user));
}

#[tokio::test]
async fn database_mistakes_are_refused_before_any_call() {
    let h = Harness::new();
    let mount = unique("mariadb-bad");
    let bad = {
        let mount = mount.clone();
        move |s: &mut Stack| -> ProgramResult {
            let connection = DatabaseConnection {
                plugin_name: "postgresql-database-plugin".into(),
                ..DatabaseConnection::mysql(
                    mount.as_str(),
                    "edxapp",
                    "admin:literal-pw-123@tcp(db:3306)/",
                    "admin",
                    Secret::new("x".to_string()),
                )
            };
            s.register("connection", connection, Options::new())?;
            let role = DatabaseRole {
                creation_statements: vec!["CREATE USER 'app'@'%';".into()],
                default_ttl: Some(Ttl::days(200)),
                max_ttl: Some(Ttl::days(100)),
                ..DatabaseRole::mysql(mount.as_str(), "edxapp", "edxapp", "SELECT ON x.*")
            };
            s.register("role", role, Options::new())?;
            Ok(())
        }
    };
    let e = h.preview_err(&bad).await;
    for expected in ["plugin_name", "connection_url", "{{username}}:{{password}}", "creation_statements", "max_ttl"] {
        assert!(e.contains(expected), "missing `{expected}` in: {e}");
    }
    assert!(!e.contains("literal-pw-123"), "a password written into the URL is not repeated: {e}");
}

/// Roles and connections removed from the program (the mount kept) are deleted from Vault: a
/// role's issued users are dropped with it, the mount and what the program keeps stay.
#[tokio::test]
async fn removed_roles_and_connections_are_deleted_while_the_mount_stays() {
    let t = testbed();
    let h = Harness::new();
    let mount = unique("mariadb-del");
    let schema = unique("del").replace('-', "_");
    h.cleanup.mount(&mount);
    mariadb_admin(&format!("CREATE DATABASE `{schema}`"));
    h.cleanup.sql(&format!("DROP DATABASE IF EXISTS `{schema}`"));
    let url = format!("{{{{username}}}}:{{{{password}}}}@tcp({}:{})/", t.get("BERTH_MARIADB_HOST"), t.get("BERTH_MARIADB_PORT"));
    // Stage 0: two connections and two roles; 1: without the `readonly` role and the `spare`
    // connection; 2: the mount alone.
    let program = |stage: u8| {
        let (mount, schema, url) = (mount.clone(), schema.clone(), url.clone());
        let (admin, password) = (t.get("BERTH_MARIADB_USER").to_string(), t.get("BERTH_MARIADB_PASSWORD").to_string());
        move |s: &mut Stack| -> ProgramResult {
            let db = s.register("db", Mount::database(&mount), Options::new())?;
            let path = db.output::<String>("path");
            if stage >= 2 {
                return Ok(());
            }
            let connection = DatabaseConnection {
                allowed_roles: vec!["edxapp".into(), "readonly".into()],
                ..DatabaseConnection::mysql(&path, "mariadb", url.clone(), admin.clone(), Secret::new(password.clone()))
            };
            let connection = s.register("connection", connection, Options::new())?;
            let name = connection.output::<String>("name");
            s.register("edxapp", DatabaseRole::mysql(&path, "edxapp", &name, &format!("ALL PRIVILEGES ON `{schema}`.*")), Options::new())?;
            if stage == 0 {
                s.register("readonly", DatabaseRole::mysql(&path, "readonly", &name, &format!("SELECT ON `{schema}`.*")), Options::new())?;
                let spare = DatabaseConnection::mysql(&path, "spare", url.clone(), admin.clone(), Secret::new(password.clone()));
                s.register("spare", spare, Options::new())?;
            }
            Ok(())
        }
    };
    let mount_stays = || {
        let live = bao_read(&format!("sys/mounts/{mount}")).expect("the mount stays");
        assert_eq!(live["type"], "database");
    };

    let plan = h.up(&program(0)).await;
    assert_eq!(changes(&plan), vec!["connection: create", "db: create", "edxapp: create", "readonly: create", "spare: create"]);
    assert_eq!(bao_list(&format!("{mount}/config")), vec!["mariadb", "spare"]);
    assert_eq!(bao_list(&format!("{mount}/roles")), vec!["edxapp", "readonly"]);
    let (reader, reader_password, _) = creds(&mount, "readonly");
    let (first_user, _, _) = creds(&mount, "edxapp");
    assert!(mariadb(&reader, &reader_password, "SELECT 1").is_ok());
    assert!(user_exists(&first_user));

    // A role and a connection no role uses, removed: deleted; the other role, the other
    // connection and the mount stay.
    let plan = h.up(&program(1)).await;
    assert_eq!(changes(&plan), vec!["readonly: delete", "spare: delete"]);
    assert!(bao_read(&format!("{mount}/roles/readonly")).is_none(), "the role is gone");
    assert_eq!(bao_list(&format!("{mount}/roles")), vec!["edxapp"]);
    assert!(bao_read(&format!("{mount}/config/spare")).is_none(), "the connection is gone");
    assert_eq!(bao_list(&format!("{mount}/config")), vec!["mariadb"]);
    assert!(!user_exists(&reader), "the removed role's users are dropped");
    assert!(user_exists(&first_user), "the kept role's users are not");
    let refused = bao(&["read", &format!("{mount}/creds/readonly")]);
    assert!(!refused.ok, "no credentials from a deleted role: {}", refused.stdout);
    mount_stays();
    let (user, password, _) = creds(&mount, "edxapp");
    assert_eq!(
        mariadb(&user, &password, &format!("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = '{schema}'")),
        Ok("1".into())
    );
    let state = h.state().await;
    assert!(!in_state(&state, "readonly") && !in_state(&state, "spare") && in_state(&state, "connection"));

    // The last role and the connection it uses, removed: the mount alone is left.
    let plan = h.up(&program(2)).await;
    assert_eq!(changes(&plan), vec!["connection: delete", "edxapp: delete"]);
    assert!(bao_read(&format!("{mount}/roles/edxapp")).is_none() && bao_list(&format!("{mount}/roles")).is_empty());
    assert!(bao_read(&format!("{mount}/config/mariadb")).is_none() && bao_list(&format!("{mount}/config")).is_empty());
    assert!(!user_exists(&first_user) && !user_exists(&user), "the role's users are dropped before the connection goes");
    mount_stays();
    let (plan, report) = h.try_up(&program(2), true).await;
    assert!(changes(&plan).is_empty() && plan.drift.is_empty(), "{:?} {:?}", changes(&plan), drift(&plan));
    assert_eq!(report.mutating_calls, 0);

    h.destroy().await;
    assert!(bao_read(&format!("sys/mounts/{mount}")).is_none());
}
