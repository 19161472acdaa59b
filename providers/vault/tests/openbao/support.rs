//! The harness: the real engine on a temporary state directory, the vault provider built by its
//! plugin the way the CLI builds it, and helpers that play "someone else" with the `bao` CLI and
//! the MariaDB client.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path as FsPath, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use berth_engine::apply::{ApplyOptions, ApplyReport, Silent};
use berth_engine::config::{Node, decrypt_secure, parse_yaml};
use berth_engine::crypto::Keyring;
use berth_engine::ops::{Engine, Operation, RunOptions};
use berth_engine::registry::ProviderSettings;
use berth_engine::state::LocalBackend;
use berth_engine::{Op, Plan, Program, Providers, State};

/// The testbed's variables: from the environment (`make test` loads the .env), else from the
/// file `testbed/vault/up.sh` writes.
pub struct Testbed {
    pub vars: HashMap<String, String>,
}

const NEEDED: [&str; 10] = [
    "VAULT_ADDR",
    "VAULT_TOKEN",
    "BERTH_BAO",
    "BERTH_VAULT_TLS_ADDR",
    "BERTH_VAULT_TLS_CA",
    "BERTH_MARIADB_HOST",
    "BERTH_MARIADB_PORT",
    "BERTH_MARIADB_USER",
    "BERTH_MARIADB_PASSWORD",
    "BERTH_MARIADB_CLIENT",
];

fn env_file() -> PathBuf {
    let cache = std::env::var_os("BERTH_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/berth"));
    cache.join("testbed/vault.env")
}

pub fn testbed() -> &'static Testbed {
    static TESTBED: std::sync::OnceLock<Testbed> = std::sync::OnceLock::new();
    TESTBED.get_or_init(|| {
        let mut vars = HashMap::new();
        let file = env_file();
        if let Ok(text) = std::fs::read_to_string(&file) {
            for line in text.lines() {
                if let Some((k, v)) = line.split_once('=') {
                    vars.insert(k.trim().to_string(), v.trim().to_string());
                }
            }
        }
        for key in NEEDED {
            if let Ok(v) = std::env::var(key)
                && !v.is_empty()
            {
                vars.insert(key.to_string(), v);
            }
        }
        let missing: Vec<&str> = NEEDED.iter().copied().filter(|k| !vars.contains_key(*k)).collect();
        assert!(
            missing.is_empty(),
            "the Vault testbed is not set up ({} missing, and not in {}): run testbed/vault/up.sh (or `make testbed`) first",
            missing.join(", "),
            file.display()
        );
        Testbed { vars }
    })
}

impl Testbed {
    pub fn get(&self, key: &str) -> &str {
        &self.vars[key]
    }

    pub fn addr(&self) -> &str {
        self.get("VAULT_ADDR")
    }

    pub fn token(&self) -> &str {
        self.get("VAULT_TOKEN")
    }

    /// `providers.vault` for a stack: the testbed's address and token, plus `extra` lines.
    pub fn settings_yaml(&self, extra: &str) -> String {
        format!("vault:\n  address: {}\n  token: {}\n{extra}", self.addr(), self.token())
    }
}

/// A name no other test (or earlier run) uses: `prefix-<random>`.
pub fn unique(prefix: &str) -> String {
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    format!("{prefix}-{:08x}", random as u32)
}

/// What a command printed.
#[derive(Debug)]
pub struct Ran {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the `bao` CLI against the testbed (as an operator would, outside berth).
pub fn bao(args: &[&str]) -> Ran {
    let t = testbed();
    let out = Command::new(t.get("BERTH_BAO"))
        .args(args)
        .env("VAULT_ADDR", t.addr())
        .env("VAULT_TOKEN", t.token())
        .env("BAO_ADDR", t.addr())
        .env("BAO_TOKEN", t.token())
        .output()
        .unwrap_or_else(|e| panic!("cannot run bao ({}): {e}; run testbed/vault/up.sh", t.get("BERTH_BAO")));
    Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `bao <args>` that must succeed; its stdout.
pub fn bao_ok(args: &[&str]) -> String {
    let ran = bao(args);
    assert!(ran.ok, "bao {args:?} failed: {}{}", ran.stdout, ran.stderr);
    ran.stdout
}

/// `bao read -format=json <path>`: the `data`, or `None` if there is nothing there.
pub fn bao_read(path: &str) -> Option<serde_json::Value> {
    bao_read_with(&[], path)
}

/// `bao read -format=json <flags> <path>` (`-namespace=team`, say): the `data`, or `None`.
pub fn bao_read_with(flags: &[&str], path: &str) -> Option<serde_json::Value> {
    let mut args = vec!["read", "-format=json"];
    args.extend_from_slice(flags);
    args.push(path);
    let ran = bao(&args);
    if !ran.ok {
        assert!(
            ran.stderr.contains("No value found") || ran.stderr.contains("404") || ran.stderr.contains("No secret engine mount"),
            "bao read {path}: {}",
            ran.stderr
        );
        return None;
    }
    let json: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("bao read {path}: {e}: {}", ran.stdout));
    Some(json["data"].clone())
}

/// `bao list -format=json <flags> <path>`: the keys, empty when there are none (Vault answers a
/// path with no keys, or no mount, with 404).
pub fn bao_list_with(flags: &[&str], path: &str) -> Vec<String> {
    let mut args = vec!["list", "-format=json"];
    args.extend_from_slice(flags);
    args.push(path);
    let ran = bao(&args);
    if !ran.ok {
        assert!(
            ran.stdout.trim() == "{}" || ran.stderr.contains("No value found") || ran.stderr.contains("404"),
            "bao list {path}: {}{}",
            ran.stdout,
            ran.stderr
        );
        return Vec::new();
    }
    serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("bao list {path}: {e}: {}", ran.stdout))
}

/// `bao list -format=json <path>`: the keys, empty when there are none.
pub fn bao_list(path: &str) -> Vec<String> {
    bao_list_with(&[], path)
}

/// Whether a resource of that logical name is recorded in state.
pub fn in_state(state: &State, name: &str) -> bool {
    state.resources.iter().any(|r| r.urn.name() == name)
}

/// Runs SQL on the testbed's MariaDB as `user` (password through the environment, never argv).
pub fn mariadb(user: &str, password: &str, sql: &str) -> Result<String, String> {
    let t = testbed();
    let out = Command::new(t.get("BERTH_MARIADB_CLIENT"))
        .args(["--no-defaults", "-h", t.get("BERTH_MARIADB_HOST"), "-P", t.get("BERTH_MARIADB_PORT"), "-u", user, "-N", "-B", "-e", sql])
        .env("MYSQL_PWD", password)
        .output()
        .map_err(|e| format!("cannot run the MariaDB client: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// SQL as the testbed's administrator.
pub fn mariadb_admin(sql: &str) -> String {
    let t = testbed();
    mariadb(t.get("BERTH_MARIADB_USER"), t.get("BERTH_MARIADB_PASSWORD"), sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Removes what a test made from Vault even when it fails half-way (names are unique, so this
/// only tidies up).
#[derive(Default)]
pub struct Cleanup {
    commands: Mutex<Vec<Vec<String>>>,
    sql: Mutex<Vec<String>>,
}

impl Cleanup {
    pub fn mount(&self, path: &str) {
        // Revoke leases (dropping database users) while possible; force what cannot be, which
        // would block the disable.
        self.push(&["lease", "revoke", "-prefix", path]);
        self.push(&["lease", "revoke", "-force", "-prefix", path]);
        self.push(&["secrets", "disable", path]);
    }

    pub fn auth(&self, path: &str) {
        self.push(&["auth", "disable", path]);
    }

    pub fn policy(&self, name: &str) {
        self.push(&["policy", "delete", name]);
    }

    /// SQL to run as the testbed's administrator at the end (errors ignored).
    pub fn sql(&self, statement: &str) {
        if let Ok(mut s) = self.sql.lock() {
            s.push(statement.to_string());
        }
    }

    pub fn push(&self, args: &[&str]) {
        if let Ok(mut c) = self.commands.lock() {
            c.push(args.iter().map(|s| s.to_string()).collect());
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(commands) = self.commands.lock() {
            for args in commands.iter() {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let _ = bao(&args);
            }
        }
        if let Ok(statements) = self.sql.lock() {
            let t = testbed();
            for statement in statements.iter() {
                let _ = mariadb(t.get("BERTH_MARIADB_USER"), t.get("BERTH_MARIADB_PASSWORD"), statement);
            }
        }
    }
}

pub struct Harness {
    /// The project root; state goes to `<dir>/state`.
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub engine: Engine,
    pub cleanup: Cleanup,
    /// The stack's `config:` section, if the program reads one.
    pub config: Option<Node>,
}

/// The vault provider exactly as the CLI builds it, from a `providers:` YAML section.
pub fn providers_from_yaml(yaml: &str, project_root: &FsPath) -> Providers {
    let root = parse_yaml("stacks/test.yaml", yaml).expect("test settings are YAML");
    let node = root.get("vault").cloned();
    let root_dir = project_root.to_path_buf();
    Providers::from_plugins(&[berth_provider_vault::plugin()], move |_| ProviderSettings {
        stack: "test".into(),
        project_root: root_dir.clone(),
        node: node.clone(),
    })
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_settings("")
    }

    /// An engine whose vault provider has the testbed's address and token plus `extra`
    /// settings lines (indented under `vault:`).
    pub fn with_settings(extra: &str) -> Harness {
        let tmp = tempfile::tempdir().expect("temporary directory");
        let providers = providers_from_yaml(&testbed().settings_yaml(extra), tmp.path());
        Harness::with_providers(tmp, providers)
    }

    pub fn with_providers(tmp: tempfile::TempDir, providers: Providers) -> Harness {
        let mut h = Harness::in_dir(tmp.path(), providers);
        h._tmp = Some(tmp);
        h
    }

    /// An engine on the state under `dir` (which outlives it: another process's run).
    pub fn in_dir(dir: &FsPath, providers: Providers) -> Harness {
        let engine = Engine {
            stack: "test".into(),
            backend: Arc::new(LocalBackend::new(dir.join("state"))),
            providers: Arc::new(providers),
            keyring: Arc::new(Keyring::new(Some("test passphrase".into()))),
        };
        Harness { dir: dir.to_path_buf(), _tmp: None, engine, cleanup: Cleanup::default(), config: None }
    }

    fn run(refresh: bool) -> RunOptions {
        RunOptions { parallel: 4, refresh, ..RunOptions::default() }
    }

    pub async fn preview(&self, program: &dyn Program, refresh: bool) -> Plan {
        match self.engine.preview(program, self.config.clone(), &Self::run(refresh)).await {
            Ok((plan, _)) => plan,
            Err(e) => panic!("preview failed: {e}"),
        }
    }

    pub async fn preview_err(&self, program: &dyn Program) -> String {
        match self.engine.preview(program, self.config.clone(), &Self::run(false)).await {
            Ok((plan, _)) => panic!("preview should fail, but planned {:?}", ops(&plan)),
            Err(e) => e.to_string(),
        }
    }

    /// `stack up --yes [--refresh]`: the plan and what applying it did (nothing if no changes).
    pub async fn try_up(&self, program: &dyn Program, refresh: bool) -> (Plan, ApplyReport) {
        let (prepared, _) = match self.engine.prepare(Operation::Up, Some(program), self.config.clone(), &Self::run(refresh)).await {
            Ok(p) => p,
            Err(e) => panic!("up failed to plan: {e}"),
        };
        let plan = prepared.plan.clone();
        if !prepared.changes_anything() {
            return (plan, ApplyReport::default());
        }
        let executed = self
            .engine
            .execute(prepared, &ApplyOptions { parallel: 4, ..ApplyOptions::default() }, Arc::new(Silent))
            .await
            .unwrap_or_else(|e| panic!("up failed: {e}"));
        (plan, executed.report)
    }

    /// `stack up` that must succeed.
    pub async fn up(&self, program: &dyn Program) -> Plan {
        let (plan, report) = self.try_up(program, false).await;
        assert!(report.succeeded(), "up failed: {:?}", failures(&report));
        plan
    }

    pub async fn destroy(&self) -> Plan {
        let (prepared, _) = self.engine.prepare(Operation::Destroy, None, None, &Self::run(false)).await.expect("destroy plans");
        let plan = prepared.plan.clone();
        let executed = self.engine.execute(prepared, &ApplyOptions::default(), Arc::new(Silent)).await.expect("destroy runs");
        assert!(executed.report.succeeded(), "destroy failed: {:?}", failures(&executed.report));
        assert!(self.state().await.resources.is_empty(), "destroy leaves an empty state");
        plan
    }

    pub async fn state(&self) -> State {
        self.engine.read_state().await.expect("state reads").0
    }

    /// Every file in the state directory (snapshot, backup, journal), as text.
    pub fn state_files(&self) -> Vec<(PathBuf, String)> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("state")) else { return Vec::new() };
        entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .map(|p| {
                let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default()).into_owned();
                (p, text)
            })
            .collect()
    }
}

/// A stack `config:` section from YAML whose `{secure: NAME}` values decrypt to `secrets[NAME]`,
/// as `berth config set --secret` values would.
pub fn config_with_secrets(yaml: &str, secrets: &[(&str, &str)]) -> Node {
    let mut node = parse_yaml("stacks/test.yaml", yaml).expect("test config is YAML");
    let secrets: HashMap<String, String> = secrets.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    decrypt_secure(&mut node, &mut |cipher| secrets.get(cipher).cloned().ok_or_else(|| format!("no test secret {cipher}")))
        .expect("test secrets decrypt");
    node
}

/// Runs one `#[ignore]`d test of this binary in a child process (for what must happen in a
/// process of its own: an abort, a fresh tracing subscriber), with `env`; its output.
pub fn run_child(test: &str, env: &[(&str, &str)]) -> (std::process::ExitStatus, String, String) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut command = Command::new(exe);
    command.args(["--exact", test, "--ignored", "--nocapture", "--test-threads=1"]);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("the test binary runs");
    (out.status, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A variable only a parent test sets for its child.
pub fn child_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("this test is run by another test as a child process (it needs {name})"))
}

/// Operation per logical name.
pub fn ops(plan: &Plan) -> HashMap<String, Op> {
    plan.steps.iter().filter(|s| s.custom).map(|s| (s.name().to_string(), s.op)).collect()
}

/// The steps that change something, `name: op`.
pub fn changes(plan: &Plan) -> Vec<String> {
    let mut out: Vec<String> = plan.steps.iter().filter(|s| s.custom && s.is_change()).map(|s| format!("{}: {}", s.name(), s.op)).collect();
    out.sort();
    out
}

/// Drifted fields, `name: path` (`name: gone` for a deleted resource).
pub fn drift(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    for d in &plan.drift {
        match &d.diffs {
            None => out.push(format!("{}: gone", d.urn.name())),
            Some(diffs) => out.extend(diffs.iter().map(|f| format!("{}: {}", d.urn.name(), f.path))),
        }
    }
    out.sort();
    out
}

pub fn failures(report: &ApplyReport) -> Vec<String> {
    report
        .outcomes
        .iter()
        .filter_map(|o| match &o.status {
            berth_engine::StepStatus::Failed(why) => Some(format!("{}: {why}", o.urn.name())),
            _ => None,
        })
        .collect()
}

/// A resource's recorded outputs.
pub fn outputs(state: &State, name: &str) -> serde_json::Value {
    let r = state.resources.iter().find(|r| r.urn.name() == name).unwrap_or_else(|| panic!("{name} is not in state"));
    r.outputs.to_json_revealed()
}

/// `testdb:index:Server`: stands in for an `aws:rds:Instance` in these tests: a resource whose
/// `address` and `port` outputs feed a database connection's URL. It makes nothing; the server
/// is the testbed's MariaDB.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Server {
    pub host: String,
    pub port: u16,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ServerOutputs {
    pub address: String,
    pub port: u16,
}

impl berth_engine::Resource for Server {
    const TYPE: &'static str = "testdb:index:Server";
    type Outputs = ServerOutputs;
}

pub struct ServerProvider;

#[berth_engine::async_trait]
impl berth_engine::ResourceProvider for ServerProvider {
    type Resource = Server;

    async fn create(
        &self,
        _ctx: berth_engine::CallContext<'_>,
        s: &Server,
    ) -> Result<berth_engine::TypedCreated<ServerOutputs>, berth_engine::ProviderError> {
        Ok(berth_engine::TypedCreated {
            id: format!("{}:{}", s.host, s.port),
            outputs: ServerOutputs { address: s.host.clone(), port: s.port },
        })
    }

    async fn read(
        &self,
        _ctx: berth_engine::CallContext<'_>,
        id: &str,
        prior: Option<&Server>,
        prior_outputs: Option<&ServerOutputs>,
    ) -> Result<Option<berth_engine::TypedObserved<Server>>, berth_engine::ProviderError> {
        Ok(prior.zip(prior_outputs).map(|(p, o)| berth_engine::TypedObserved { id: id.to_string(), inputs: p.clone(), outputs: o.clone() }))
    }

    async fn update(
        &self,
        _ctx: berth_engine::CallContext<'_>,
        _id: &str,
        _old: &Server,
        new: &Server,
        _outputs: &ServerOutputs,
    ) -> Result<ServerOutputs, berth_engine::ProviderError> {
        Ok(ServerOutputs { address: new.host.clone(), port: new.port })
    }

    async fn delete(
        &self,
        _ctx: berth_engine::CallContext<'_>,
        _id: &str,
        _s: &Server,
        _o: &ServerOutputs,
    ) -> Result<(), berth_engine::ProviderError> {
        Ok(())
    }
}

impl Harness {
    /// The vault provider plus the `testdb` stand-in for a database server.
    pub fn with_server() -> Harness {
        let tmp = tempfile::tempdir().expect("temporary directory");
        let mut providers = providers_from_yaml(&testbed().settings_yaml(""), tmp.path());
        providers.add(Arc::new(berth_engine::Package::new("testdb").with(ServerProvider)));
        Harness::with_providers(tmp, providers)
    }
}
