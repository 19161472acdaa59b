//! The `berth` command line, run as a user would: exit codes, JSON shapes, configuration errors
//! with file:line:key, and secrets that never appear in output or state.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_berth");
const PASSPHRASE: &str = "cli-test-passphrase";
const ADMIN_SECRET: &str = "Adm1n-S3cret-Value!";

struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("stacks/tiers")).unwrap();
        std::fs::write(dir.path().join("stacks/tiers/dev.yaml"), "config:\n  replicas: 1\n").unwrap();
        std::fs::write(
            dir.path().join("stacks/site.yaml"),
            "# the test site\nprogram: demo\ntier: dev\nconfig:\n  site_name: Test Academy\n  lms_domain: lms.test.local\n",
        )
        .unwrap();
        Project { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(self.path())
            .env("BERTH_PASSPHRASE", PASSPHRASE)
            .env("NO_COLOR", "1")
            .env_remove("BERTH_PROJECT")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Run {
        Run(self.command(args).output().unwrap())
    }

    fn run_with_stdin(&self, args: &[&str], input: &str) -> Run {
        use std::io::Write;
        let mut child = self.command(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        Run(child.wait_with_output().unwrap())
    }

    fn write_stack(&self, text: &str) {
        std::fs::write(self.path().join("stacks/site.yaml"), text).unwrap();
    }

    fn state_file(&self) -> PathBuf {
        self.path().join("state/site.json")
    }
}

struct Run(Output);

impl Run {
    fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).to_string()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).to_string()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}\n{}", self.stdout(), self.stderr()))
    }
    fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(self.code(), code, "stdout:\n{}\nstderr:\n{}", self.stdout(), self.stderr());
        self
    }
}

#[test]
fn exit_codes_follow_terraform_conventions() {
    let p = Project::new();
    p.run(&["stack", "preview", "site"]).assert_code(0);
    p.run(&["stack", "preview", "site", "--detailed-exitcode"]).assert_code(2);
    let refused = p.run(&["stack", "up", "site"]);
    refused.assert_code(1);
    assert!(refused.stderr().contains("--yes"), "without a terminal, up asks for --yes: {}", refused.stderr());
    assert!(!p.state_file().exists(), "a refused up writes nothing");
    p.run(&["stack", "up", "site", "--yes"]).assert_code(0);
    p.run(&["stack", "preview", "site", "--detailed-exitcode"]).assert_code(0);
    p.run(&["stack", "preview", "site", "--expect-no-changes"]).assert_code(0);
    p.run(&["stack", "up", "site", "--expect-no-changes"]).assert_code(0);
    let drift = p.run(&["stack", "preview", "site", "--expect-no-changes", "--config", "replicas=3"]);
    drift.assert_code(1);
    assert!(drift.stderr().contains("--expect-no-changes: the plan has changes (0 to create, 1 to update"), "{}", drift.stderr());
    p.run(&["stack", "preview", "site", "--detailed-exitcode", "--config", "replicas=3"]).assert_code(2);
    // Usage errors are 1, not 2: with --detailed-exitcode 2 means "changes".
    p.run(&["stack", "preveiw", "site"]).assert_code(1);
    p.run(&["--help"]).assert_code(0);
    p.run(&["stack", "preview", "nosuch"]).assert_code(1);
    p.run(&["stack", "destroy", "site", "--yes"]).assert_code(0);
    assert!(!p.path().join(".demo/site/lms.env.yml").exists());
}

#[test]
fn json_output_has_a_stable_shape() {
    let p = Project::new();
    let preview = p.run(&["stack", "preview", "site", "--json"]);
    preview.assert_code(0);
    let doc = preview.json();
    assert_eq!(doc["operation"], "preview");
    assert_eq!(doc["stack"], "site");
    assert_eq!(doc["changes"], true);
    assert_eq!(doc["summary"]["create"], 4);
    let steps = doc["steps"].as_array().unwrap();
    let file = steps.iter().find(|s| s["name"] == "lms-config").unwrap();
    assert_eq!(file["op"], "create");
    assert_eq!(file["type"], "local:index:File");
    assert!(file["urn"].as_str().unwrap().starts_with("urn:berth:site::demo:index:Site$local:index:File::lms-config"));
    assert_eq!(doc["outputs"]["lms_url"], "https://lms.test.local");
    assert_eq!(doc["outputs"]["config_path"], "(known after apply)");

    let up = p.run(&["stack", "up", "site", "--yes", "--json"]);
    up.assert_code(0);
    let doc = up.json();
    assert_eq!(doc["operation"], "up");
    assert_eq!(doc["result"]["status"], "succeeded");
    assert_eq!(doc["result"]["mutating_calls"], 4);
    assert!(doc["result"]["steps"].as_array().unwrap().iter().any(|s| s["status"] == "succeeded" && s["op"] == "create"));
    assert_eq!(doc["result"]["outputs"]["secret_key"], "[secret]");

    let changed = p.run(&["stack", "preview", "site", "--json", "--config", "replicas=2"]).json();
    let step = changed["steps"].as_array().unwrap().iter().find(|s| s["op"] == "update").unwrap();
    assert_eq!(step["name"], "lms-config");
    let diff = &step["diffs"][0];
    assert_eq!(diff["path"], "content");
    assert_eq!(diff["kind"], "update");
    assert_eq!(diff["forces_replacement"], false);

    let noop = p.run(&["stack", "up", "site", "--yes", "--json"]).json();
    assert_eq!(noop["plan"]["changes"], false);
    assert!(noop["result"].is_null(), "a no-op up applies nothing");

    let outputs = p.run(&["stack", "output", "site", "--json"]).json();
    assert_eq!(outputs["lms_url"], "https://lms.test.local");
    assert_eq!(outputs["secret_key"], "[secret]");
    let list = p.run(&["state", "list", "site", "--json"]).json();
    assert_eq!(list["resources"].as_array().unwrap().len(), 5);
    let ls = p.run(&["stack", "ls", "--json"]).json();
    assert_eq!(ls[0]["stack"], "site");
    assert_eq!(ls[0]["resources"], 4);
    assert_eq!(ls[0]["result"], "succeeded");
}

#[test]
fn configuration_errors_name_file_line_and_key() {
    let p = Project::new();
    let case = |stack: &str, args: &[&str], expected: &str| {
        p.write_stack(stack);
        let run = p.run(&[&["stack", "preview", "site"][..], args].concat());
        run.assert_code(1);
        assert!(run.stderr().contains(expected), "expected `{expected}` in:\n{}", run.stderr());
        assert!(!p.state_file().exists());
    };
    let base = "program: demo\ntier: dev\nconfig:\n  site_name: X\n  lms_domain: lms.x\n";
    case(
        &format!("{base}  replicaz: 2\n"),
        &[],
        "stacks/site.yaml:6:3: config.replicaz: unknown key `replicaz` (did you mean `replicas`?)",
    );
    case(&format!("{base}  replicas: many\n"), &[], "stacks/site.yaml:6:13: config.replicas: invalid type: string \"many\", expected u16");
    case("program: demo\ntier: dev\nconfig:\n  site_name: X\n", &[], "stacks/site.yaml:4:3: config: missing required key `lms_domain`");
    case(base, &["--config", "replicas=-1"], "--config:1:1: config.replicas: invalid value: integer `-1`, expected u16");
    case(&format!("{base}extra: 1\n"), &[], "stacks/site.yaml:6:1: extra: unknown key `extra`");
    case(
        "program: demo\ntier: prod\nconfig:\n  site_name: X\n  lms_domain: y\n",
        &[],
        "stacks/site.yaml:2:7: tier: tier `prod`: cannot read stacks/tiers/prod.yaml",
    );
    case("program: demo\nconfig:\n  site_name: [unclosed\n", &[], "stacks/site.yaml:");
    std::fs::write(p.path().join("stacks/tiers/dev.yaml"), "config:\n  output_dir: out\n  replicas: x\n").unwrap();
    case(base, &[], "stacks/tiers/dev.yaml:3:13: config.replicas: invalid type: string \"x\", expected u16");
    // Environment overrides are named too.
    std::fs::write(p.path().join("stacks/tiers/dev.yaml"), "config: {}\n").unwrap();
    p.write_stack(base);
    let run = Run(p.command(&["stack", "preview", "site"]).env("BERTH_CONFIG__REPLICAS", "lots").output().unwrap());
    run.assert_code(1);
    assert!(run.stderr().contains("env BERTH_CONFIG__REPLICAS:1:1: config.replicas: invalid type"), "{}", run.stderr());
}

/// Every byte berth printed or wrote, for a secret hunt.
fn all_text(p: &Project, runs: &[Run]) -> String {
    let mut text = String::new();
    for r in runs {
        text.push_str(&r.stdout());
        text.push_str(&r.stderr());
    }
    for entry in std::fs::read_dir(p.path().join("state")).unwrap().flatten() {
        text.push_str(&String::from_utf8_lossy(&std::fs::read(entry.path()).unwrap()));
    }
    text
}

#[test]
fn known_secrets_never_appear_in_output_or_state() {
    let p = Project::new();
    let set = p.run_with_stdin(&["config", "set", "site", "admin_password", "--secret"], &format!("{ADMIN_SECRET}\n"));
    set.assert_code(0);
    let stack_file = std::fs::read_to_string(p.path().join("stacks/site.yaml")).unwrap();
    assert!(!stack_file.contains(ADMIN_SECRET), "the stack file holds only ciphertext");
    assert!(stack_file.contains("admin_password: {secure: v1:") && stack_file.contains("encryptionsalt: v1:"), "{stack_file}");
    assert!(stack_file.starts_with("# the test site\n"), "comments are kept: {stack_file}");

    let mut runs = vec![set];
    runs.push(p.run(&["stack", "preview", "site", "--diff"]));
    runs.push(p.run(&["stack", "preview", "site", "--json", "-vvv"]));
    let up = p.run(&["stack", "up", "site", "--yes", "--diff", "-vv"]);
    up.assert_code(0);
    runs.push(up);
    // The generated key is a secret too; reading it deliberately is the one way to see it.
    let key = p.run(&["stack", "output", "site", "secret_key", "--show-secrets"]);
    key.assert_code(0);
    let generated = key.stdout().trim().to_string();
    assert_eq!(generated.len(), 48);
    let credentials = std::fs::read_to_string(p.path().join(".demo/site/credentials.yml")).unwrap();
    assert!(credentials.contains(ADMIN_SECRET) && credentials.contains(&generated), "the secrets reached the file that needs them");

    runs.push(p.run(&["stack", "output", "site"]));
    runs.push(p.run(&["stack", "output", "site", "--json"]));
    runs.push(p.run(&["stack", "output", "site", "secret_key"]));
    runs.push(p.run(&["state", "show", "site", "credentials"]));
    runs.push(p.run(&["state", "show", "site", "secret-key", "--json"]));
    runs.push(p.run(&["config", "get", "site", "admin_password"]));
    runs.push(p.run(&["stack", "preview", "site", "--diff", "--refresh", "--show-sames", "--config", "replicas=4"]));
    runs.push(p.run(&["stack", "up", "site", "--yes", "--json", "--config", "replicas=4"]));
    // An error that would quote the value: a bad override of the secret's key.
    runs.push(p.run(&["stack", "preview", "site", "--config", &format!("site_name=[{ADMIN_SECRET}")]));
    let text = all_text(&p, &runs);
    assert!(text.contains("[secret]"), "secrets are shown masked");
    assert!(!text.contains(ADMIN_SECRET), "the configured secret leaked");
    assert!(!text.contains(&generated), "the generated secret leaked");
    // Without the passphrase nothing secret can be read, and the error says what to do.
    let locked = Run(p.command(&["stack", "output", "site"]).env_remove("BERTH_PASSPHRASE").output().unwrap());
    locked.assert_code(1);
    assert!(locked.stderr().contains("BERTH_PASSPHRASE"), "{}", locked.stderr());
    let wrong = Run(p.command(&["stack", "preview", "site"]).env("BERTH_PASSPHRASE", "wrong").output().unwrap());
    wrong.assert_code(1);
    assert!(wrong.stderr().contains("passphrase is wrong"), "{}", wrong.stderr());
}

#[test]
fn state_commands_inspect_and_repair() {
    let p = Project::new();
    p.run(&["stack", "up", "site", "--yes"]).assert_code(0);
    let list = p.run(&["state", "list", "site"]);
    list.assert_code(0);
    assert!(list.stdout().contains("urn:berth:site::demo:index:Site$local:index:File::lms-config"), "{}", list.stdout());
    let show = p.run(&["state", "show", "site", "lms-config"]);
    show.assert_code(0);
    assert!(show.stdout().contains("PLATFORM_NAME: Test Academy"), "{}", show.stdout());
    let ambiguous = p.run(&["state", "show", "site", "nope"]);
    ambiguous.assert_code(1);
    assert!(ambiguous.stderr().contains("berth state list"));
    p.run(&["state", "unlock", "site"]).assert_code(0);
    assert!(p.run(&["state", "unlock", "site"]).stdout().contains("not locked"));
    // Forget a file: it stays on disk, leaves state; the next preview wants to create it again.
    p.run(&["state", "delete", "site", "lms-config"]).assert_code(1);
    p.run(&["state", "delete", "site", "lms-config", "--yes"]).assert_code(0);
    assert!(p.path().join(".demo/site/lms.env.yml").exists());
    let preview = p.run(&["stack", "preview", "site", "--json"]).json();
    assert_eq!(preview["summary"]["create"], 1);
}

#[test]
fn help_is_the_manual() {
    let p = Project::new();
    let help = p.run(&["stack", "up", "--help"]);
    help.assert_code(0);
    for flag in ["--yes", "--json", "--diff", "--target", "--parallel", "--refresh", "--expect-no-changes", "--config"] {
        assert!(help.stdout().contains(flag), "{flag} missing from `stack up --help`");
    }
    let top = p.run(&["--help"]);
    assert!(top.stdout().contains("BERTH_PASSPHRASE") && top.stdout().contains("Exit codes"));
    let preview = p.run(&["stack", "preview", "--help"]).stdout();
    assert!(preview.contains("--detailed-exitcode"));
}

#[test]
fn refresh_records_drift_and_target_limits_up() {
    let p = Project::new();
    p.run(&["stack", "up", "site", "--yes"]).assert_code(0);
    let config = p.path().join(".demo/site/lms.env.yml");
    std::fs::write(&config, "edited by hand\n").unwrap();
    // Preview with --refresh sees the edit and plans to restore the file.
    let preview = p.run(&["stack", "preview", "site", "--refresh", "--json"]).json();
    assert_eq!(preview["drift"][0]["urn"].as_str().unwrap().rsplit("::").next(), Some("lms-config"));
    assert_eq!(preview["drift"][0]["diffs"][0]["path"], "content");
    assert_eq!(preview["summary"]["update"], 1);
    // `stack refresh` records the live value; without --yes and a terminal it refuses.
    p.run(&["stack", "refresh", "site"]).assert_code(1);
    let refreshed = p.run(&["stack", "refresh", "site", "--yes", "--detailed-exitcode"]);
    refreshed.assert_code(2);
    assert!(refreshed.stdout().contains("Changed outside berth") && refreshed.stdout().contains("content"), "{}", refreshed.stdout());
    p.run(&["stack", "refresh", "site", "--yes", "--detailed-exitcode"]).assert_code(0);
    let show = p.run(&["state", "show", "site", "lms-config"]);
    assert!(show.stdout().contains("edited by hand"), "state now holds the live content: {}", show.stdout());
    // A targeted up restores only that file.
    let up = p.run(&["stack", "up", "site", "--yes", "--json", "--target", "lms-config", "--config", "replicas=5"]).json();
    let ops: Vec<(String, String)> = up["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_string(), s["op"].as_str().unwrap().to_string()))
        .collect();
    assert!(ops.contains(&("lms-config".to_string(), "update".to_string())), "{ops:?}");
    assert!(ops.iter().filter(|(n, _)| n != "lms-config").all(|(_, op)| op == "same"), "{ops:?}");
    assert!(std::fs::read_to_string(&config).unwrap().contains("UWSGI_WORKERS: 5"));
    let bad = p.run(&["stack", "preview", "site", "--target", "nope"]);
    bad.assert_code(1);
    assert!(bad.stderr().contains("--target `nope`: no resource has that URN or name"), "{}", bad.stderr());
}

#[test]
fn a_terminal_gets_a_live_progress_display() {
    // `script` gives berth a pseudo-terminal, as an operator's shell would.
    if Command::new("script").arg("--version").output().is_err() {
        panic!("util-linux `script` is needed for this test");
    }
    let p = Project::new();
    let command = format!("{BIN} stack up site --yes");
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(p.path())
        .env("BERTH_PASSPHRASE", PASSPHRASE)
        .env_remove("NO_COLOR")
        .env("TERM", "xterm")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("\r\x1b[2K"), "the status line is redrawn in place: {text:?}");
    assert!(text.contains("\x1b[32m"), "colour on a terminal");
    assert!(text.contains("created"), "{text}");
}

#[test]
fn import_adopts_existing_resources_from_the_command_line() {
    let p = Project::new();
    let file = p.path().join("existing.txt");
    std::fs::write(&file, "hello\n").unwrap();
    let path = file.display().to_string();
    let out = p.path().join("imported.yaml");
    let run = p.run(&["stack", "import", "site", "local:index:File", "notes", &path, "--generate-config", out.to_str().unwrap()]);
    run.assert_code(0);
    assert!(run.stdout().contains("imported (protected)"), "{}", run.stdout());
    let generated = std::fs::read_to_string(&out).unwrap();
    assert!(generated.contains("type: \"local:index:File\"") || generated.contains("type: local:index:File"), "{generated}");
    assert!(generated.contains("hello"), "{generated}");
    // Without --generate-config, a single import prints the settings that reproduce it.
    let other = p.path().join("other.txt");
    std::fs::write(&other, "second file\n").unwrap();
    let printed = p.run(&["stack", "import", "site", "local:index:File", "other", &other.display().to_string()]);
    printed.assert_code(0);
    assert!(printed.stdout().contains("second file") && printed.stdout().contains("inputs:"), "{}", printed.stdout());
    let list = p.run(&["state", "list", "site", "--json"]).json();
    let notes = list["resources"].as_array().unwrap().iter().find(|r| r["urn"].as_str().unwrap().ends_with("::notes")).unwrap().clone();
    assert_eq!(notes["id"], path.as_str());
    assert_eq!(notes["protect"], true);
    // Again: nothing to do.
    let again = p.run(&["stack", "import", "site", "local:index:File", "notes", &path]);
    again.assert_code(0);
    assert!(again.stdout().contains("already imported"), "{}", again.stdout());
    // A missing id, a wrong type: clear errors, state unchanged.
    let before = std::fs::read(p.state_file()).unwrap();
    let missing = p.run(&["stack", "import", "site", "local:index:File", "gone", "/nonexistent/file.txt"]);
    missing.assert_code(1);
    assert!(missing.stderr().contains("no local:index:File with id `/nonexistent/file.txt` exists"), "{}", missing.stderr());
    let wrong = p.run(&["stack", "import", "site", "local:index:Fiel", "x", &path]);
    wrong.assert_code(1);
    assert!(wrong.stderr().contains("no resource type `local:index:Fiel`"), "{}", wrong.stderr());
    let bad_file = p.path().join("import.json");
    std::fs::write(&bad_file, "{\"resources\": [{\"type\": \"local:index:File\", \"nam\": \"x\", \"id\": \"y\"}]}").unwrap();
    let invalid = p.run(&["stack", "import", "site", "--file", bad_file.to_str().unwrap()]);
    invalid.assert_code(1);
    assert!(invalid.stderr().contains("import.json:1:") && invalid.stderr().contains("unknown field `nam`"), "{}", invalid.stderr());
    assert_eq!(std::fs::read(p.state_file()).unwrap(), before);
    // Not in the program and protected: preview refuses to delete it and says how to proceed.
    let preview = p.run(&["stack", "preview", "site"]);
    preview.assert_code(1);
    assert!(preview.stderr().contains("notes (local:index:File): is protected and cannot be deleted"), "{}", preview.stderr());
}

#[test]
fn the_backend_can_be_overridden() {
    let p = Project::new();
    let elsewhere = p.path().join("elsewhere");
    let url = format!("file://{}", elsewhere.display());
    p.run(&["stack", "up", "site", "--yes", "--backend", &url]).assert_code(0);
    assert!(elsewhere.join("site.json").exists() && !p.state_file().exists());
    let run = Run(p.command(&["stack", "preview", "site", "--expect-no-changes"]).env("BERTH_BACKEND", &url).output().unwrap());
    run.assert_code(0);
    let unknown = p.run(&["stack", "preview", "site", "--backend", "s3x://nowhere"]);
    unknown.assert_code(1);
    assert!(unknown.stderr().contains("backend `s3x://nowhere` is not supported"), "{}", unknown.stderr());
}

#[test]
fn diff_verbosity_and_no_color_flags() {
    let p = Project::new();
    p.run(&["stack", "up", "site", "--yes"]).assert_code(0);
    // Without --diff, the fields that change; with it, their old and new values.
    let brief = p.run(&["stack", "preview", "site", "--config", "replicas=3"]);
    brief.assert_code(0);
    assert!(brief.stdout().contains("[diff: ~content]") && !brief.stdout().contains("UWSGI_WORKERS: 3"), "{}", brief.stdout());
    let detailed = p.run(&["stack", "preview", "site", "--config", "replicas=3", "--diff"]);
    assert!(detailed.stdout().contains("UWSGI_WORKERS: 1") && detailed.stdout().contains("UWSGI_WORKERS: 3"), "{}", detailed.stdout());
    // Logs go to stderr: none by default, the engine's steps with -v, provider calls with -vv.
    assert!(!brief.stderr().contains("INFO"), "{}", brief.stderr());
    let verbose = p.run(&["stack", "up", "site", "--yes", "--config", "replicas=2", "-v"]);
    verbose.assert_code(0);
    assert!(verbose.stderr().contains("planned 0 to create, 1 to update"), "{}", verbose.stderr());
    assert!(verbose.stderr().contains("state saved at serial") && !verbose.stderr().contains("DEBUG"), "{}", verbose.stderr());
    let debug = p.run(&["stack", "preview", "site", "-vv"]);
    assert!(debug.stderr().contains("DEBUG") && debug.stderr().contains("diff urn:berth:site::"), "{}", debug.stderr());
    // NO_COLOR on a terminal: the live display, without colour.
    let command = format!("{BIN} stack up site --yes --config replicas=4");
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(p.path())
        .env("BERTH_PASSPHRASE", PASSPHRASE)
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("updated"), "{text}");
    assert!(!text.contains("\x1b[3") && !text.contains("\x1b[1m"), "no colour or bold under NO_COLOR: {text:?}");
}
