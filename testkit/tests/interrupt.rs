//! `berth stack up` killed with SIGKILL at random points of a graph with latency: the next `up`
//! finishes, nothing is created twice, nothing in state is lost. And two concurrent `up`s on one
//! stack: the second fails at once, naming the lock's holder.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_testkit::CloudDir;

mod common;

use common::{berth, project, run};

/// A tiny deterministic generator for kill delays (no extra dependency).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Starts `up`, kills it with SIGKILL after `delay`. Returns whether it was still running.
fn up_and_kill(dir: &Path, delay: Duration) -> bool {
    let mut child =
        berth(dir, &["stack", "up", "kill", "--yes", "--parallel", "6"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + delay;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    true
}

/// Every resource of the program exists exactly once, was created once, and state agrees.
fn assert_converged(dir: &Path, count: usize, value: &str) {
    let cloud = CloudDir::new(dir.join(".cloud"));
    let objects = cloud.list();
    let mut per_urn: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, urn, v) in &objects {
        assert!(v.starts_with(&format!("{value}-")), "{urn} has value {v}");
        per_urn.entry(urn.clone()).or_default().push(id.clone());
    }
    assert_eq!(per_urn.len(), count, "objects: {objects:?}");
    for (urn, ids) in &per_urn {
        assert_eq!(ids.len(), 1, "{urn} exists {} times: {ids:?}", ids.len());
    }
    let mut creates: BTreeMap<String, usize> = BTreeMap::new();
    for (op, urn, _) in cloud.calls() {
        if op == "create" {
            *creates.entry(urn).or_default() += 1;
        }
    }
    for (urn, n) in &creates {
        assert_eq!(*n, 1, "{urn} was created {n} times");
    }
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("state/kill.json")).unwrap()).unwrap();
    let recorded: BTreeMap<String, String> = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == "test:index:Node")
        .map(|r| (r["urn"].as_str().unwrap().to_string(), r["id"].as_str().unwrap().to_string()))
        .collect();
    for (urn, ids) in &per_urn {
        assert_eq!(recorded.get(urn), Some(&ids[0]), "state lost or mismatched {urn}");
    }
    assert!(state["pending_operations"].as_array().unwrap().is_empty());
    assert!(!dir.join("state/kill.journal").exists(), "journal left behind after a clean finish");
    let check = run(dir, &["stack", "preview", "kill", "--expect-no-changes"]);
    assert!(check.status.success(), "preview after convergence: {}", String::from_utf8_lossy(&check.stdout));
}

#[test]
fn killed_ups_resume_without_duplicates_or_lost_state() {
    let mut rng = Rng(0x5EED_1234_ABCD);
    let mut kills = 0;
    let mut mid_apply = 0;
    for round in 0..12 {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        project(dir, 30, "v1", 25);
        // Several kills in a row, each at a random point (including during the first snapshot,
        // mid-journal, between a create and its record).
        for _ in 0..3 {
            if up_and_kill(dir, Duration::from_millis(10 + rng.below(500))) {
                kills += 1;
                mid_apply += usize::from(dir.join("state/kill.journal").exists());
            }
        }
        let finish = run(dir, &["stack", "up", "kill", "--yes"]);
        assert!(
            finish.status.success(),
            "round {round}: {}\n{}",
            String::from_utf8_lossy(&finish.stdout),
            String::from_utf8_lossy(&finish.stderr)
        );
        assert_converged(dir, 30, "v1");

        // Changes too: new values (updates) and fewer nodes (deletes), killed again.
        project(dir, 22, "v2", 25);
        if up_and_kill(dir, Duration::from_millis(10 + rng.below(400))) {
            kills += 1;
            mid_apply += usize::from(dir.join("state/kill.journal").exists());
        }
        let finish = run(dir, &["stack", "up", "kill", "--yes"]);
        assert!(
            finish.status.success(),
            "round {round} (changes): {}\n{}",
            String::from_utf8_lossy(&finish.stdout),
            String::from_utf8_lossy(&finish.stderr)
        );
        let cloud = CloudDir::new(dir.join(".cloud"));
        assert_eq!(cloud.list().len(), 22);
        assert_converged(dir, 22, "v2");
    }
    assert!(kills >= 24, "the test must actually kill runs ({kills} kills)");
    assert!(mid_apply >= 12, "the test must kill runs in the middle of an apply ({mid_apply} left a journal)");
    eprintln!("{kills} kills, {mid_apply} in the middle of an apply");
}

#[test]
fn a_second_concurrent_up_fails_fast_naming_the_lock_owner() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    project(dir, 20, "v1", 100);
    let mut first =
        berth(dir, &["stack", "up", "kill", "--yes", "--parallel", "2"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let lock = dir.join("state/kill.lock");
    let start = Instant::now();
    while !lock.exists() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(lock.exists(), "the first up never took the lock");
    // Give it a moment to write its record into the lock.
    std::thread::sleep(Duration::from_millis(50));
    let began = Instant::now();
    let second = run(dir, &["stack", "up", "kill", "--yes"]);
    let took = began.elapsed();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is locked by"), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", first.id())), "the message names the holder's pid: {stderr}");
    assert!(stderr.contains("berth stack up"), "{stderr}");
    assert!(took < Duration::from_secs(10), "the second up must not wait for the first ({took:?})");
    let status = first.wait().unwrap();
    assert!(status.success());
    assert!(!lock.exists(), "the lock is released when the first up finishes");
    assert_converged(dir, 20, "v1");
}

#[test]
fn ctrl_c_finishes_in_flight_calls_saves_state_and_exits_130() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    project(dir, 20, "v1", 150);
    let child =
        berth(dir, &["stack", "up", "kill", "--yes", "--parallel", "2"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Wait until the apply is under way (the journal exists), then interrupt once.
    let start = Instant::now();
    while !dir.join("state/kill.journal").exists() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(130), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("Interrupt: finishing"), "{stdout}");
    assert!(stdout.contains("Interrupted: in-flight operations finished and state was saved"), "{stdout}");
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("state/kill.json")).unwrap()).unwrap();
    assert_eq!(state["last_update"]["result"], "interrupted");
    assert!(state["pending_operations"].as_array().unwrap().is_empty(), "in-flight calls finished before saving");
    assert!(!dir.join("state/kill.journal").exists());
    let created = CloudDir::new(dir.join(".cloud")).list().len();
    let recorded = state["resources"].as_array().unwrap().iter().filter(|r| r["type"] == "test:index:Node").count();
    assert_eq!(created, recorded, "every object made before the interrupt is in state");
    assert!(created > 0 && created < 20, "interrupted mid-way ({created} created)");
    let finish = run(dir, &["stack", "up", "kill", "--yes"]);
    assert!(finish.status.success());
    assert_converged(dir, 20, "v1");
}
