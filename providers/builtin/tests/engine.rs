//! The built-in providers driven by the real engine: plan, apply, state, refresh, destroy.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::sync::Arc;

use berth_engine::apply::{ApplyOptions, Silent};
use berth_engine::crypto::Keyring;
use berth_engine::ops::{Engine, Operation, RunOptions};
use berth_engine::registry::ProviderSettings;
use berth_engine::state::LocalBackend;
use berth_engine::{Op, Options, Plan, ProgramResult, Providers, Secret, Stack, State};
use berth_provider_builtin::local::File;
use berth_provider_builtin::plugins;
use berth_provider_builtin::random::{Id, Password};

struct Harness {
    dir: tempfile::TempDir,
    engine: Engine,
}

impl Harness {
    /// An engine on a temporary state directory, with the providers built by their plugins the
    /// way the CLI builds them (project root: `<tmp>/project`).
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("project");
        fs::create_dir_all(&project).unwrap();
        let providers =
            Providers::from_plugins(&plugins(), |_| ProviderSettings { stack: "dev".into(), project_root: project.clone(), node: None });
        let engine = Engine {
            stack: "dev".into(),
            backend: Arc::new(LocalBackend::new(dir.path().join("state"))),
            providers: Arc::new(providers),
            keyring: Arc::new(Keyring::new(Some("pw".into()))),
        };
        Harness { dir, engine }
    }

    fn project(&self) -> PathBuf {
        self.dir.path().join("project")
    }

    fn run(parallel: usize, refresh: bool) -> RunOptions {
        RunOptions { parallel, refresh, ..RunOptions::default() }
    }

    /// `stack up --yes`; returns the plan, and whether anything was applied.
    async fn up(&self, refresh: bool) -> (Plan, bool) {
        let (prepared, _) = self.engine.prepare(Operation::Up, Some(&program), None, &Self::run(4, refresh)).await.unwrap();
        let plan = prepared.plan.clone();
        if !prepared.changes_anything() {
            return (plan, false);
        }
        let executed =
            self.engine.execute(prepared, &ApplyOptions { parallel: 4, ..ApplyOptions::default() }, Arc::new(Silent)).await.unwrap();
        assert!(executed.report.succeeded(), "{:?}", executed.report);
        (plan, true)
    }

    async fn preview(&self, refresh: bool) -> Plan {
        self.engine.preview(&program, None, &Self::run(4, refresh)).await.unwrap().0
    }

    async fn destroy(&self) -> Plan {
        let (prepared, _) = self.engine.prepare(Operation::Destroy, None, None, &Self::run(4, false)).await.unwrap();
        let plan = prepared.plan.clone();
        let executed = self.engine.execute(prepared, &ApplyOptions::default(), Arc::new(Silent)).await.unwrap();
        assert!(executed.report.succeeded(), "{:?}", executed.report);
        plan
    }

    async fn state(&self) -> State {
        self.engine.read_state().await.unwrap().0
    }

    /// Every file berth wrote in the state directory (state, backup, journal), as text.
    fn state_files(&self) -> Vec<(PathBuf, String)> {
        fs::read_dir(self.dir.path().join("state"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .map(|p| {
                let text = String::from_utf8_lossy(&fs::read(&p).unwrap()).into_owned();
                (p, text)
            })
            .collect()
    }
}

/// A password, an id, a config file naming a bucket after the id, and a credentials file
/// holding the password.
fn program(s: &mut Stack) -> ProgramResult {
    let password = s.register("db-password", Password { length: 24, ..Password::default() }, Options::new())?;
    let suffix = s.register("suffix", Id { prefix: Some("edx-".into()), ..Id::default() }, Options::new())?;
    let content = berth_engine::format_output!("bucket: {}\nregion: eu-west-1\n", suffix.output::<String>("id"));
    s.register("config", File { path: "out/config.yml".into(), content: content.into(), ..File::default() }, Options::new())?;
    let credentials = password.output::<Secret<String>>("result").map(|p: Secret<String>| format!("MYSQL_PASSWORD={}\n", p.expose()));
    s.register(
        "credentials",
        File { path: "out/credentials.env".into(), content: credentials.into(), sensitive: true, ..File::default() },
        Options::new(),
    )?;
    s.export("bucket", &suffix.output::<String>("id"));
    Ok(())
}

fn ops(plan: &Plan) -> HashMap<String, Op> {
    plan.steps.iter().map(|s| (s.name().to_string(), s.op)).collect()
}

fn output_str(state: &State, name: &str, field: &str) -> String {
    let r = state.resources.iter().find(|r| r.urn.name() == name).unwrap_or_else(|| panic!("{name} is not in state"));
    r.outputs.as_object().unwrap()[field].as_str().unwrap().to_string()
}

#[tokio::test]
async fn random_and_local_resources_through_the_engine() {
    let h = Harness::new();
    let config = h.project().join("out/config.yml");
    let credentials = h.project().join("out/credentials.env");

    // Preview: everything is new; the config's content is known only after the id exists.
    let preview = h.preview(false).await;
    assert!(preview.steps.iter().all(|s| s.op == Op::Create), "{:?}", ops(&preview));
    let config_step = preview.steps.iter().find(|s| s.name() == "config").unwrap();
    assert!(config_step.new_inputs.as_ref().unwrap().contains_unknown());
    assert!(!config.exists(), "preview writes nothing");

    // Up creates all four.
    let (plan, applied) = h.up(false).await;
    assert!(applied);
    assert_eq!(plan.summary().create, 4, "{:?}", ops(&plan));
    let state = h.state().await;
    let bucket = output_str(&state, "suffix", "id");
    assert!(bucket.starts_with("edx-") && bucket.len() == 12, "{bucket}");
    assert_eq!(fs::read_to_string(&config).unwrap(), format!("bucket: {bucket}\nregion: eu-west-1\n"));
    assert_eq!(fs::metadata(&config).unwrap().permissions().mode() & 0o7777, 0o644);
    assert_eq!(state.outputs["bucket"].as_str(), Some(bucket.as_str()));

    let password_value =
        state.resources.iter().find(|r| r.urn.name() == "db-password").unwrap().outputs.as_object().unwrap()["result"].clone();
    assert!(password_value.is_secret(), "the password is a secret in state");
    let password = password_value.as_str().unwrap().to_string();
    assert_eq!(password.len(), 24);
    assert_eq!(fs::read_to_string(&credentials).unwrap(), format!("MYSQL_PASSWORD={password}\n"));
    assert_eq!(fs::metadata(&credentials).unwrap().permissions().mode() & 0o7777, 0o600, "sensitive files are owner-only");
    let credentials_inputs = &state.resources.iter().find(|r| r.urn.name() == "credentials").unwrap().inputs;
    assert!(credentials_inputs.as_object().unwrap()["content"].is_secret(), "content built from a secret stays secret");

    // Neither the password nor the file holding it appears in plaintext in any state file.
    let files = h.state_files();
    assert!(files.iter().any(|(p, _)| p.file_name().unwrap() == "dev.json"));
    for (path, text) in &files {
        assert!(!text.contains(&password), "{} holds the password in plaintext", path.display());
    }
    let state_text = &files.iter().find(|(p, _)| p.file_name().unwrap() == "dev.json").unwrap().1;
    assert!(state_text.contains(&bucket), "non-secret outputs are stored readable");

    // A second up changes nothing and calls no provider to mutate.
    let serial = state.serial;
    let modified = fs::metadata(&config).unwrap().modified().unwrap();
    let (plan, applied) = h.up(false).await;
    assert!(!applied, "no-op up applies nothing: {:?}", ops(&plan));
    assert!(plan.steps.iter().all(|s| s.op == Op::Same), "{:?}", ops(&plan));
    assert_eq!(h.state().await.serial, serial);
    assert_eq!(fs::metadata(&config).unwrap().modified().unwrap(), modified);
    // A refreshing preview of untouched files finds no drift either.
    let refreshed = h.preview(true).await;
    assert!(refreshed.drift.is_empty(), "{:?}", refreshed.drift);
    assert!(!refreshed.has_changes());

    // Someone edits the config by hand.
    fs::write(&config, "bucket: hand-edited\n").unwrap();
    assert!(!h.preview(false).await.has_changes(), "without refresh, state is trusted");
    let plan = h.preview(true).await;
    assert_eq!(plan.drift.len(), 1, "{:?}", plan.drift);
    let drift = &plan.drift[0];
    assert_eq!(drift.urn.name(), "config");
    let drifted: Vec<String> = drift.diffs.as_ref().unwrap().iter().map(|d| d.path.to_string()).collect();
    assert_eq!(drifted, vec!["content"]);
    let ops_now = ops(&plan);
    assert_eq!(ops_now["config"], Op::Update, "the program's content is restored in place");
    assert_eq!(ops_now["db-password"], Op::Same);
    assert_eq!(ops_now["suffix"], Op::Same);
    assert_eq!(ops_now["credentials"], Op::Same);
    assert_eq!(fs::read_to_string(&config).unwrap(), "bucket: hand-edited\n", "preview changes nothing");

    // Up with refresh restores it.
    let (plan, applied) = h.up(true).await;
    assert!(applied);
    assert_eq!(ops(&plan)["config"], Op::Update);
    assert_eq!(fs::read_to_string(&config).unwrap(), format!("bucket: {bucket}\nregion: eu-west-1\n"));
    assert_eq!(output_str(&h.state().await, "suffix", "id"), bucket, "the id is stable across runs");

    // Someone deletes the credentials file: refresh notices and up writes it again.
    fs::remove_file(&credentials).unwrap();
    let plan = h.preview(true).await;
    assert!(plan.drift.iter().any(|d| d.urn.name() == "credentials" && d.diffs.is_none()));
    assert_eq!(ops(&plan)["credentials"], Op::Create);
    h.up(true).await;
    assert_eq!(fs::read_to_string(&credentials).unwrap(), format!("MYSQL_PASSWORD={password}\n"), "same password as before");

    // Destroy removes the files and empties the state.
    let plan = h.destroy().await;
    assert!(plan.steps.iter().all(|s| s.op == Op::Delete));
    assert!(!config.exists() && !credentials.exists());
    assert!(h.state().await.resources.is_empty());
    assert_eq!(fs::read_dir(h.project().join("out")).unwrap().count(), 0, "no temporary files left behind");
}

#[tokio::test]
async fn invalid_inputs_are_reported_before_anything_is_written() {
    let h = Harness::new();
    let bad = |s: &mut Stack| -> ProgramResult {
        s.register("short", Password { length: 4, ..Password::default() }, Options::new())?;
        s.register(
            "file",
            File { path: "x.txt".into(), content: "x".into(), mode: Some("rw-r--r--".into()), ..File::default() },
            Options::new(),
        )?;
        Ok(())
    };
    let err = h.engine.preview(&bad, None, &RunOptions { parallel: 2, ..RunOptions::default() }).await.err().unwrap().to_string();
    assert!(err.contains("length") && err.contains("8 to 256"), "{err}");
    assert!(err.contains("mode") && err.contains("rw-r--r--"), "{err}");
    assert!(!h.project().join("x.txt").exists());
}
