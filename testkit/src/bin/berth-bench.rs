//! `make bench`: measures berth on synthetic stacks and prints the figures.
//!
//! For 100, 1,000 and 10,000 resources: `preview` wall time and peak memory (no refresh; with
//! no changes and with every resource changed), the state file's size, the mutating calls of a
//! no-op `up`; and, with a simulated per-call latency, the wall time of `up` against the
//! graph's critical path (the longest dependency chain times the time one create takes).
//!
//! Every run is a separate `berth-testkit` process, as a user would run it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::synthetic::{critical_path, graph};

struct Measured {
    wall: Duration,
    peak_rss_kib: i64,
    success: bool,
    stdout: Vec<u8>,
}

/// Runs a command and measures its wall time and peak resident memory (from wait4's rusage).
fn measure(cmd: &mut Command) -> Measured {
    let started = Instant::now();
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start berth-testkit");
    let pid = child.id() as libc::pid_t;
    // Read output on threads so a full pipe never blocks the child.
    let mut child = child;
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut buf).ok();
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut buf).ok();
        buf
    });
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is a plain C struct we own; wait4 fills it for our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    let stdout = reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let success = waited == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !success {
        eprintln!("command failed: {}\n{}", String::from_utf8_lossy(&stdout), String::from_utf8_lossy(&stderr));
    }
    Measured { wall, peak_rss_kib: usage.ru_maxrss, success, stdout }
}

fn write_stack(dir: &Path, count: usize, value: &str, latency_ms: u64) {
    std::fs::create_dir_all(dir.join("stacks")).expect("create project");
    std::fs::write(
        dir.join("stacks/bench.yaml"),
        format!("program: synthetic\nproviders:\n  test: {{latency_ms: {latency_ms}}}\nconfig:\n  count: {count}\n  deps: 3\n  window: 100\n  seed: 1\n  value: {value}\n  labels: 4\n  group: 50\n"),
    )
    .expect("write stack file");
}

fn berth(bin: &Path, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(args).current_dir(dir).env("BERTH_PASSPHRASE", "bench").env("NO_COLOR", "1").env_remove("BERTH_PROJECT");
    cmd
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mutating_calls(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join(".cloud/calls.log")).map(|t| t.lines().count()).unwrap_or(0)
}

fn fmt_ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let bin: PathBuf = std::env::current_exe().expect("own path").with_file_name("berth-testkit");
    if !bin.exists() {
        eprintln!("{} not found: build it first (cargo build --release -p berth-testkit)", bin.display());
        std::process::exit(1);
    }
    let sizes: Vec<usize> =
        std::env::args().nth(1).map(|s| s.split(',').filter_map(|n| n.parse().ok()).collect()).unwrap_or_else(|| vec![100, 1_000, 10_000]);
    let latency_ms: u64 = std::env::var("BENCH_LATENCY_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let parallel = "512";

    println!(
        "berth benchmarks ({} build, {} cores)",
        if cfg!(debug_assertions) { "debug" } else { "release" },
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!();
    println!("Preview without refresh (median of 3 runs; peak RSS of the berth process)");
    println!(
        "{:>9}  {:>12}  {:>10}  {:>14}  {:>10}  {:>11}  {:>13}",
        "resources", "no changes", "peak RSS", "all changed", "peak RSS", "state file", "no-op up calls"
    );
    for &n in &sizes {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path();
        write_stack(dir, n, "v1", 0);
        let up = measure(&mut berth(&bin, dir, &["stack", "up", "bench", "--yes", "--parallel", parallel]));
        assert!(up.success, "initial up failed");
        let state_size = std::fs::metadata(dir.join("state/bench.json")).map(|m| m.len()).unwrap_or(0);
        let mut same = Vec::new();
        let mut same_rss = 0;
        for _ in 0..3 {
            let m = measure(&mut berth(&bin, dir, &["stack", "preview", "bench"]));
            assert!(m.success);
            same.push(m.wall);
            same_rss = same_rss.max(m.peak_rss_kib);
        }
        let mut changed = Vec::new();
        let mut changed_rss = 0;
        for _ in 0..3 {
            let m = measure(&mut berth(&bin, dir, &["stack", "preview", "bench", "--config", "value=v2"]));
            assert!(m.success);
            changed.push(m.wall);
            changed_rss = changed_rss.max(m.peak_rss_kib);
        }
        let before = mutating_calls(dir);
        let noop = measure(&mut berth(&bin, dir, &["stack", "up", "bench", "--yes"]));
        assert!(noop.success);
        let noop_calls = mutating_calls(dir) - before;
        println!(
            "{:>9}  {:>12}  {:>7} MB  {:>14}  {:>7} MB  {:>8} KB  {:>13}",
            n,
            fmt_ms(median(same)),
            same_rss / 1024,
            fmt_ms(median(changed)),
            changed_rss / 1024,
            state_size / 1024,
            noop_calls
        );
    }

    println!();
    println!("up with {latency_ms} ms simulated latency per provider call (a create waits twice), --parallel {parallel}");
    println!(
        "{:>9}  {:>14}  {:>16}  {:>12}  {:>12}  {:>7}",
        "resources", "critical path", "critical time", "apply wall", "process wall", "ratio"
    );
    for &n in &sizes {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path();
        write_stack(dir, n, "v1", latency_ms);
        let shape = graph(n, 3, 100, 1);
        let depth = critical_path(&shape);
        let critical = Duration::from_millis(depth as u64 * 2 * latency_ms);
        let m = measure(&mut berth(&bin, dir, &["stack", "up", "bench", "--yes", "--json", "--parallel", parallel]));
        assert!(m.success, "up failed");
        let doc: serde_json::Value = serde_json::from_slice(&m.stdout).expect("up --json prints JSON");
        let apply = Duration::from_millis(doc["result"]["duration_ms"].as_u64().unwrap_or(0));
        println!(
            "{:>9}  {:>8} nodes  {:>16}  {:>12}  {:>12}  {:>6.2}x",
            n,
            depth,
            fmt_ms(critical),
            fmt_ms(apply),
            fmt_ms(m.wall),
            apply.as_secs_f64() / critical.as_secs_f64()
        );
    }
    println!();
    println!("ratio = apply wall time / critical-path time (goal: at most 1.2x). process wall adds start-up, planning and saving state.");
}
