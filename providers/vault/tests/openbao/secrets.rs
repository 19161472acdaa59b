//! Known secret values never appear in plaintext: not in what berth prints (plans with field
//! diffs, JSON, drift, apply summaries, errors), not in its logs at the most verbose level, not in
//! its state files. The run happens in a child process whose stdout and stderr are searched.

use berth_engine::render::{RenderOptions, apply_json, apply_summary, drift_text, plan_json, plan_text};
use berth_engine::{Options, Plan, ProgramResult, Secret, Stack, format_output};
use berth_provider_vault::{AuthBackend, DatabaseConnection, KubernetesAuthConfig, KvSecret, Mount};

use crate::kubernetes::CLUSTER_CA;
use crate::support::*;

const KV_VALUE: &str = "kv-Value-9f3a61c2e7";
const JWT_VALUE: &str = "eyJhbGciOiJSUzI1NiJ9.jwt-Value-4b8d02aa.sig";
const WRONG_PASSWORD: &str = "Wrong-Password-77e1c0";
const DRIFTED_VALUE: &str = "drifted-Value-c4a9e013";

fn program(mount: String, auth: String, with_bad_connection: bool) -> impl Fn(&mut Stack) -> ProgramResult + Send + Sync {
    move |s: &mut Stack| {
        let t = testbed();
        let port: u16 = t.get("BERTH_MARIADB_PORT").parse()?;
        let server = s.register("server", Server { host: t.get("BERTH_MARIADB_HOST").into(), port }, Options::new())?;
        let kv_value: Secret<String> = s.config_at("edxapp.django_secret_key")?;
        let admin_password: Secret<String> = s.config_at("db_admin_password")?;
        let jwt: Secret<String> = s.config_at("reviewer_jwt")?;

        let kv = s.register("kv", Mount::kv(&mount, 2), Options::new())?;
        let secret = KvSecret::new(kv.output::<String>("path"), "edxapp")
            .with_text("DJANGO_SECRET_KEY", kv_value)
            .with_output("MYSQL_HOST", &server.output::<String>("address"));
        s.register("edxapp-secret", secret, Options::new())?;

        let db = s.register("db", Mount::database(&format!("{mount}-db")), Options::new())?;
        let url = format_output!(
            "{{{{username}}}}:{{{{password}}}}@tcp({}:{})/",
            server.output::<String>("address"),
            server.output::<u16>("port")
        );
        let connection =
            DatabaseConnection::mysql(db.output::<String>("path"), "mariadb", url.clone(), t.get("BERTH_MARIADB_USER"), admin_password);
        s.register("connection", connection, Options::new())?;
        if with_bad_connection {
            let wrong: Secret<String> = s.config_at("wrong_password")?;
            let bad = DatabaseConnection::mysql(db.output::<String>("path"), "wrong", url, t.get("BERTH_MARIADB_USER"), wrong);
            s.register("bad-connection", bad, Options::new())?;
        }

        let mut config = KubernetesAuthConfig::new("https://10.0.0.1:443");
        config.kubernetes_ca_cert = Some(CLUSTER_CA.to_string().into());
        config.token_reviewer_jwt = Some(jwt.into());
        s.register("k8s", AuthBackend { kubernetes: Some(config), ..AuthBackend::new(&auth, "kubernetes") }, Options::new())?;
        Ok(())
    }
}

fn print_plan(title: &str, plan: &Plan) {
    println!("=== {title}");
    println!("{}", plan_text(plan, RenderOptions { diff: true, show_same: true, ..RenderOptions::default() }));
    if !plan.drift.is_empty() {
        println!("{}", drift_text(&plan.drift, Default::default()));
    }
    println!("{}", plan_json(plan));
}

/// Keeps a copy of the state files as they are now (the parent searches them all).
fn snapshot(h: &Harness, step: &str) {
    let dir = h.dir.join("snapshots");
    std::fs::create_dir_all(&dir).expect("snapshot directory");
    for (path, text) in h.state_files() {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        std::fs::write(dir.join(format!("{step}-{name}")), text).expect("snapshot written");
    }
}

#[tokio::test]
#[ignore = "run by known_secret_values_never_appear_in_plaintext in a child process"]
async fn child_runs_a_stack_full_of_secrets() {
    tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_writer(std::io::stderr).with_ansi(false).init();
    let dir = std::path::PathBuf::from(child_var("BERTH_TEST_STATE_DIR"));
    let (mount, auth) = (child_var("BERTH_TEST_MOUNT"), child_var("BERTH_TEST_AUTH"));
    let t = testbed();
    let mut providers = providers_from_yaml(&t.settings_yaml(""), &dir);
    providers.add(std::sync::Arc::new(berth_engine::Package::new("testdb").with(ServerProvider)));
    let mut h = Harness::in_dir(&dir, providers);
    h.config = Some(config_with_secrets(
        "edxapp:\n  django_secret_key: {secure: kv}\ndb_admin_password: {secure: admin}\nreviewer_jwt: {secure: jwt}\nwrong_password: {secure: wrong}\n",
        &[("kv", KV_VALUE), ("admin", t.get("BERTH_MARIADB_PASSWORD")), ("jwt", JWT_VALUE), ("wrong", WRONG_PASSWORD)],
    ));

    print_plan("preview", &h.preview(&program(mount.clone(), auth.clone(), false), false).await);
    let (plan, report) = h.try_up(&program(mount.clone(), auth.clone(), false), false).await;
    print_plan("up", &plan);
    println!("{}\n{}", apply_summary(&report, Default::default()), apply_json(&report));
    assert!(report.succeeded(), "{:?}", failures(&report));
    snapshot(&h, "up");
    // The values did reach Vault: the searches below are not vacuous.
    assert!(bao_ok(&["kv", "get", "-format=json", &format!("{mount}/edxapp")]).contains(KV_VALUE));

    // Someone changes the secret; refresh reads the new value (now known, so secret too).
    bao_ok(&["kv", "put", &format!("{mount}/edxapp"), &format!("DJANGO_SECRET_KEY={DRIFTED_VALUE}"), "MYSQL_HOST=127.0.0.1"]);
    print_plan("preview --refresh", &h.preview(&program(mount.clone(), auth.clone(), false), true).await);
    let (plan, report) = h.try_up(&program(mount.clone(), auth.clone(), false), true).await;
    print_plan("up --refresh", &plan);
    println!("{}", apply_summary(&report, Default::default()));
    snapshot(&h, "refresh");

    // A connection Vault cannot log in with fails with the server's words, not the password.
    let (plan, report) = h.try_up(&program(mount.clone(), auth.clone(), true), false).await;
    print_plan("up with a wrong password", &plan);
    println!("{}\n{}", apply_summary(&report, Default::default()), apply_json(&report));
    let why = failures(&report).join("\n");
    assert!(why.contains("bad-connection") && why.contains("denied"), "{why}");
    println!("failures: {why}");
    snapshot(&h, "failed");

    let plan = h.destroy().await;
    print_plan("destroy", &plan);
    snapshot(&h, "destroy");
}

#[tokio::test]
async fn known_secret_values_never_appear_in_plaintext() {
    let t = testbed();
    let h = Harness::new();
    let (mount, auth) = (unique("kv-leak"), unique("k8s-leak"));
    h.cleanup.mount(&mount);
    h.cleanup.mount(&format!("{mount}-db"));
    h.cleanup.auth(&auth);
    let (status, stdout, stderr) = run_child(
        "secrets::child_runs_a_stack_full_of_secrets",
        &[
            ("BERTH_TEST_STATE_DIR", h.dir.to_str().unwrap()),
            ("BERTH_TEST_MOUNT", &mount),
            ("BERTH_TEST_AUTH", &auth),
            ("RUST_LOG", "trace"),
        ],
    );
    assert!(status.success(), "the child run failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("[secret]") && stdout.contains("=== destroy"), "the child printed its plans:\n{stdout}");
    assert!(stderr.contains("TRACE") || stderr.contains("DEBUG"), "the child logged verbosely");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert!(errors.is_empty(), "expected answers (a 404 to \"does it exist?\") are not logged as errors: {errors:?}");

    let mut files = Vec::new();
    for entry in std::fs::read_dir(h.dir.join("snapshots")).expect("the child kept state snapshots") {
        let path = entry.expect("a snapshot").path();
        files.push((path.display().to_string(), String::from_utf8_lossy(&std::fs::read(&path).unwrap_or_default()).into_owned()));
    }
    assert!(files.len() >= 4, "{files:?}");
    let known = [KV_VALUE, JWT_VALUE, WRONG_PASSWORD, DRIFTED_VALUE, t.get("BERTH_MARIADB_PASSWORD"), t.token()];
    for value in known {
        assert!(!stdout.contains(value), "stdout holds a secret value ({}…)", &value[..4]);
        assert!(!stderr.contains(value), "stderr holds a secret value ({}…)", &value[..4]);
        for (file, text) in &files {
            assert!(!text.contains(value), "{file} holds a secret value ({}…)", &value[..4]);
        }
    }
}
