//! Running the `berth-testkit` binary from tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_berth-testkit");

pub fn project(dir: &Path, count: usize, value: &str, latency_ms: u64) {
    std::fs::create_dir_all(dir.join("stacks")).unwrap();
    std::fs::write(
        dir.join("stacks/kill.yaml"),
        format!("program: synthetic\nproviders:\n  test: {{latency_ms: {latency_ms}}}\nconfig:\n  count: {count}\n  deps: 2\n  window: 6\n  seed: 11\n  value: {value}\n  group: 5\n"),
    )
    .unwrap();
}

pub fn berth(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(dir).env("BERTH_PASSPHRASE", "kill-test").env("NO_COLOR", "1").env_remove("BERTH_PROJECT");
    cmd
}

pub fn run(dir: &Path, args: &[&str]) -> Output {
    berth(dir, args).output().unwrap()
}
