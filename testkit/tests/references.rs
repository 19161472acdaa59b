//! Stack references across stacks of one project, through the real binary.

mod common;

use common::run;

#[test]
fn stacks_read_each_others_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("stacks")).unwrap();
    std::fs::write(dir.join("stacks/network.yaml"), "program: synthetic\nconfig:\n  count: 3\n").unwrap();
    std::fs::write(dir.join("stacks/app.yaml"), "program: synthetic\nconfig:\n  count: 2\n  upstream: network\n").unwrap();
    let preview = run(dir, &["stack", "preview", "app"]);
    assert!(preview.status.success());
    assert!(String::from_utf8_lossy(&preview.stdout).contains("stack `network` has no state yet"));
    let refused = run(dir, &["stack", "up", "app", "--yes"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("run `berth stack up network` first"));
    assert!(run(dir, &["stack", "up", "network", "--yes"]).status.success());
    assert!(run(dir, &["stack", "up", "app", "--yes"]).status.success());
    let network_last = String::from_utf8_lossy(&run(dir, &["stack", "output", "network", "last_id"]).stdout).trim().to_string();
    let show = run(dir, &["state", "show", "app", "node-00000", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(doc["inputs"]["inputs"][0], serde_json::Value::String(network_last), "the reference's value reached the resource");
}
