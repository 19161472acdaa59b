//! Tests for `set_in_yaml_text`.

use super::*;

const FILE: &str = "stacks/mitx.qa.yaml";

fn set(text: &str, key: &str, value: &str) -> String {
    match set_in_yaml_text(FILE, text, key, value) {
        Ok(text) => text,
        Err(e) => panic!("set {key} failed: {e}"),
    }
}

fn set_err(text: &str, key: &str, value: &str) -> ConfigError {
    match set_in_yaml_text(FILE, text, key, value) {
        Ok(text) => panic!("expected an error, got:\n{text}"),
        Err(e) => e,
    }
}

const STACK: &str = "\
# MITx QA stack
edxapp:
  # database
  db_instance_type: db.t3.medium   # sized for QA
  db_storage_gb: 50

  hosts:
    - lms.example.com
    - studio.example.com
  labels:
    team: mitx
    # owner: someone
  password: {secure: v1:old}  # rotated 2024
forum:
  enabled: true
";

#[test]
fn replaces_a_value_on_the_same_line_keeping_the_comment() {
    let out = set(STACK, "edxapp.db_instance_type", "db.t3.large");
    assert_eq!(out, STACK.replace("db_instance_type: db.t3.medium   # sized", "db_instance_type: db.t3.large   # sized"));
    let out = set(STACK, "edxapp.db_storage_gb", "100");
    assert_eq!(out, STACK.replace("db_storage_gb: 50", "db_storage_gb: 100"));
    let out = set(STACK, "edxapp.password", "{secure: v1:new}");
    assert_eq!(out, STACK.replace("{secure: v1:old}  # rotated", "{secure: v1:new}  # rotated"));
    let out = set(STACK, "forum.enabled", "\"no # really\"");
    assert_eq!(out, STACK.replace("enabled: true", "enabled: \"no # really\""));
}

#[test]
fn replaces_a_block_value() {
    let out = set(STACK, "edxapp.hosts", "[lms.example.org]");
    assert_eq!(out, STACK.replace("  hosts:\n    - lms.example.com\n    - studio.example.com\n", "  hosts: [lms.example.org]\n"));
    // Comment lines after the block stay.
    let out = set(STACK, "edxapp.labels", "{}");
    assert_eq!(out, STACK.replace("  labels:\n    team: mitx\n", "  labels: {}\n"));
    let out = set("a:\n  b: |\n    line one\n    line two\n  c: 1\n", "a.b", "short");
    assert_eq!(out, "a:\n  b: short\n  c: 1\n");
    let out = set("list:\n- a\n- b\nnext: 1\n", "list", "[c]");
    assert_eq!(out, "list: [c]\nnext: 1\n");
}

#[test]
fn inserts_into_an_existing_parent() {
    let out = set(STACK, "edxapp.replicas", "3");
    assert_eq!(
        out,
        STACK.replace("  password: {secure: v1:old}  # rotated 2024\n", "  password: {secure: v1:old}  # rotated 2024\n  replicas: 3\n")
    );
    let out = set(STACK, "edxapp.labels.tier", "qa");
    assert_eq!(out, STACK.replace("    team: mitx\n", "    team: mitx\n    tier: qa\n"));
    let out = set(STACK, "forum.db.size", "10");
    assert_eq!(out, format!("{STACK}  db:\n    size: 10\n"));
    let out = set(STACK, "top", "1");
    assert_eq!(out, format!("{STACK}top: 1\n"));
    let out = set(STACK, r#"edxapp.labels."app.kubernetes.io/name""#, "edx");
    assert!(out.contains("    team: mitx\n    app.kubernetes.io/name: edx\n"), "{out}");
    let out = set(STACK, r#"edxapp.labels."a b""#, "c");
    assert!(out.contains("    team: mitx\n    \"a b\": c\n"), "{out}");
}

#[test]
fn creates_missing_parents() {
    let out = set(STACK, "redis.cache.size_gb", "2");
    assert_eq!(out, format!("{STACK}redis:\n  cache:\n    size_gb: 2\n"));
    let out = set("a: 1", "b.c", "x");
    assert_eq!(out, "a: 1\nb:\n  c: x\n");
    // A key with no value becomes a parent.
    let out = set("edxapp:   # settings\nother: 1\n", "edxapp.replicas", "2");
    assert_eq!(out, "edxapp:   # settings\n  replicas: 2\nother: 1\n");
    let out = set("edxapp: ~\n", "edxapp.replicas", "2");
    assert_eq!(out, "edxapp:\n  replicas: 2\n");
    let out = set("edxapp: {}\n", "edxapp.replicas", "2");
    assert_eq!(out, "edxapp:\n  replicas: 2\n");
}

#[test]
fn empty_files() {
    assert_eq!(set("", "edxapp.replicas", "2"), "edxapp:\n  replicas: 2\n");
    assert_eq!(set("# config for qa\n", "a", "1"), "# config for qa\na: 1\n");
}

#[test]
fn follows_the_file_indentation_and_line_endings() {
    let out = set("edxapp:\n    replicas: 1\n", "edxapp.image.tag", "v2");
    assert_eq!(out, "edxapp:\n    replicas: 1\n    image:\n        tag: v2\n");
    let out = set("a:\r\n  b: 1\r\n", "a.c", "2");
    assert_eq!(out, "a:\r\n  b: 1\r\n  c: 2\r\n");
    let out = set("a:\n  b: 1", "a.b", "2");
    assert_eq!(out, "a:\n  b: 2");
}

#[test]
fn multi_line_values_are_written_as_blocks() {
    let out = set("a:\n  b: 1\n", "a.b", "x: 1\ny: [2]\n");
    assert_eq!(out, "a:\n  b:\n    x: 1\n    y: [2]\n");
    let out = set("a: 1\n", "cert", "|\n  line one\n  line two\n");
    assert_eq!(out, "a: 1\ncert: |\n    line one\n    line two\n");
}

#[test]
fn quoted_keys_and_values() {
    let out = set("\"a b\": 1 # c\n'x''y': 'it''s'\n", "x'y", "2");
    assert_eq!(out, "\"a b\": 1 # c\n'x''y': 2\n");
    let out = set("\"a b\": 1 # c\n", "a b", "'#'");
    assert_eq!(out, "\"a b\": '#' # c\n");
}

#[test]
fn flow_parents_are_refused() {
    let e = set_err("edxapp: {replicas: 1}\n", "edxapp.replicas", "2");
    assert_eq!(e.location, Some(Source::new(FILE, 1, 9)));
    assert_eq!(e.key.as_deref(), Some("edxapp.replicas"));
    assert!(e.message.contains("`edxapp` is a flow mapping"), "{e}");
    let e = set_err("{a: 1}\n", "b", "2");
    assert!(e.message.contains("the file's top level is a flow mapping"), "{e}");
}

#[test]
fn scalar_parents_are_refused() {
    let e = set_err("edxapp:\n  replicas: 1\n", "edxapp.replicas.n", "2");
    assert_eq!(
        e.to_string(),
        "stacks/mitx.qa.yaml:2:13: edxapp.replicas.n: cannot set this key: `edxapp.replicas` is an integer, not a map"
    );
    let e = set_err("- a\n", "b", "2");
    assert!(e.message.contains("the file's top level is a list"), "{e}");
}

#[test]
fn bad_input_is_refused() {
    assert!(set_err("a: [1\n", "a", "2").message.contains("expected ',' or ']'"));
    assert!(set_err("a: 1\n", "a", "[1").message.contains("not valid YAML"));
    assert!(set_err("a: 1\n", "a", "  ").message.contains("empty"));
    assert!(set_err("a: 1\n", "a..b", "1").message.contains("empty segment"));
}

#[test]
fn anchors_aliases_and_merge_keys_are_handled_safely() {
    let text = "base: &base\n  size: 10\n  kind: gp3\nother:\n  <<: *base\n  name: x\ncopy: *base\n";
    // An explicit key overrides the merged one.
    let out = set(text, "other.size", "20");
    assert_eq!(out, text.replace("  name: x\n", "  name: x\n  size: 20\n"));
    let e = set_err(text, "copy.size", "20");
    assert!(e.message.contains("is an alias"), "{e}");
    // Changing the anchored map would change `copy` and `other` too.
    let e = set_err(text, "base.size", "20");
    assert!(e.message.contains("would change other values too"), "{e}");
    assert_eq!(e.help.as_deref(), Some("edit the file by hand"));
    let e = set_err("size: &size 10\nother: *size\n", "size", "20");
    assert!(e.message.contains("would change other values too"), "{e}");
    assert_eq!(set("size: &size 10\n", "size", "20"), "size: &size 20\n");
    assert_eq!(set("a: &b\n  c: 1\n", "a", "2"), "a: &b 2\n");
}

#[test]
fn edited_text_reads_back() {
    let out = set(STACK, "edxapp.hosts", "[a, b]");
    let root = parse_yaml(FILE, &out).unwrap_or_else(|e| panic!("{e}"));
    let hosts = root.get_path("edxapp.hosts").map(|n| n.kind.clone());
    assert!(matches!(hosts, Some(NodeKind::Seq(items)) if items.len() == 2));
    assert_eq!(root.get_path("edxapp.labels.team").map(|n| n.kind.clone()), Some(NodeKind::String("mitx".into())));
}
