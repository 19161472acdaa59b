//! Tests for parsing, merging, overrides and decryption.

use super::*;

fn parse(text: &str) -> Node {
    match parse_yaml("stacks/test.yaml", text) {
        Ok(node) => node,
        Err(e) => panic!("parse failed: {e}"),
    }
}

fn parse_err(text: &str) -> String {
    match parse_yaml("stacks/test.yaml", text) {
        Ok(node) => panic!("expected an error, got {node:?}"),
        Err(e) => e.to_string(),
    }
}

fn kind<'a>(node: &'a Node, path: &str) -> &'a NodeKind {
    match node.get_path(path) {
        Some(node) => &node.kind,
        None => panic!("no `{path}` in {node:?}"),
    }
}

fn at(node: &Node, path: &str) -> String {
    node.get_path(path).map(|n| format!("{}:{}", n.source.line, n.source.column)).unwrap_or_default()
}

fn s(text: &str) -> NodeKind {
    NodeKind::String(text.to_string())
}

#[test]
fn scalars_follow_the_core_schema() {
    let root = parse(
        "a: ~\nb: null\nc: NULL\nd:\ne: true\nf: False\ng: TRUE\nh: yes\ni: 42\nj: -7\nk: 0x1F\nl: 0o17\nm: 1.5\nn: .inf\no: -.Inf\n\
         p: 1e3\nq: \"42\"\nr: 'true'\ns: |\n  block\nt: db.t3.large\nu: 0123\nv: +12\nw: 1_000\nx: !!str 3\ny: !!float 3\nz: .5\n",
    );
    assert_eq!(kind(&root, "a"), &NodeKind::Null);
    assert_eq!(kind(&root, "b"), &NodeKind::Null);
    assert_eq!(kind(&root, "c"), &NodeKind::Null);
    assert_eq!(kind(&root, "d"), &NodeKind::Null);
    assert_eq!(kind(&root, "e"), &NodeKind::Bool(true));
    assert_eq!(kind(&root, "f"), &NodeKind::Bool(false));
    assert_eq!(kind(&root, "g"), &NodeKind::Bool(true));
    assert_eq!(kind(&root, "h"), &s("yes"));
    assert_eq!(kind(&root, "i"), &NodeKind::Integer(42));
    assert_eq!(kind(&root, "j"), &NodeKind::Integer(-7));
    assert_eq!(kind(&root, "k"), &NodeKind::Integer(31));
    assert_eq!(kind(&root, "l"), &NodeKind::Integer(15));
    assert_eq!(kind(&root, "m"), &NodeKind::Float(1.5));
    assert_eq!(kind(&root, "n"), &NodeKind::Float(f64::INFINITY));
    assert_eq!(kind(&root, "o"), &NodeKind::Float(f64::NEG_INFINITY));
    assert_eq!(kind(&root, "p"), &NodeKind::Float(1000.0));
    assert_eq!(kind(&root, "q"), &s("42"));
    assert_eq!(kind(&root, "r"), &s("true"));
    assert_eq!(kind(&root, "s"), &s("block\n"));
    assert_eq!(kind(&root, "t"), &s("db.t3.large"));
    assert_eq!(kind(&root, "u"), &NodeKind::Integer(123));
    assert_eq!(kind(&root, "v"), &NodeKind::Integer(12));
    assert_eq!(kind(&root, "w"), &s("1_000"));
    assert_eq!(kind(&root, "x"), &s("3"));
    assert_eq!(kind(&root, "y"), &NodeKind::Float(3.0));
    assert_eq!(kind(&root, "z"), &NodeKind::Float(0.5));
    assert!(matches!(parse("a: .nan").get("a").map(|n| &n.kind), Some(NodeKind::Float(f)) if f.is_nan()));
}

#[test]
fn sources_are_one_based_and_maps_start_at_their_first_key() {
    let root = parse("# comment\nedxapp:\n  db_instance_type: db.t3.medium\n  db_storage_gb: 50\n  tags: [a, b]\n  flow: {x: 1}\n");
    assert_eq!(root.source, Source::new("stacks/test.yaml", 2, 1));
    assert_eq!(at(&root, "edxapp"), "3:3");
    assert_eq!(at(&root, "edxapp.db_instance_type"), "3:21");
    assert_eq!(at(&root, "edxapp.db_storage_gb"), "4:18");
    assert_eq!(at(&root, "edxapp.tags"), "5:9");
    assert_eq!(at(&root, "edxapp.flow"), "6:9");
    assert_eq!(at(&root, "edxapp.flow.x"), "6:13");
    let NodeKind::Map(entries) = &root.get("edxapp").map(|n| n.kind.clone()).unwrap_or(NodeKind::Null) else { panic!("not a map") };
    assert_eq!(entries[1].0.source, Source::new("stacks/test.yaml", 4, 3));
    assert_eq!(Source::new("f.yaml", 3, 4).to_string(), "f.yaml:3:4");
}

#[test]
fn an_empty_value_points_at_its_key() {
    let root = parse("a:\n  b:\n  c: 1\n");
    assert_eq!(at(&root, "a.b"), "2:3");
}

#[test]
fn empty_documents_are_empty_maps() {
    for text in ["", "# nothing here\n", "---\n", "\n\n"] {
        let root = parse(text);
        assert_eq!(root, Node::empty_map(Source::new("stacks/test.yaml", 1, 1)), "{text:?}");
    }
}

#[test]
fn only_one_document_is_allowed() {
    assert_eq!(parse_err("a: 1\n---\nb: 2\n"), "stacks/test.yaml:2:1: a configuration file must hold exactly one YAML document");
}

#[test]
fn scanner_errors_have_locations() {
    assert_eq!(parse_err("a: 1\nb: \"x\": 2\n"), "stacks/test.yaml:2:7: mapping values are not allowed in this context");
    assert!(parse_err("a: [1, 2\n").starts_with("stacks/test.yaml:2:1: "));
}

#[test]
fn duplicate_keys_name_both_lines() {
    assert_eq!(
        parse_err("edxapp:\n  replicas: 1\n  image: x\n  replicas: 2\n"),
        "stacks/test.yaml:4:3: edxapp.replicas: duplicate key `replicas`: it is already defined at line 2, column 3"
    );
}

#[test]
fn keys_must_be_scalars() {
    assert_eq!(parse_err("? [a, b]\n: 1\n"), "stacks/test.yaml:1:3: a map key must be a scalar, not a list");
}

#[test]
fn unsupported_tags_are_errors() {
    assert_eq!(parse_err("a: !vault x\n"), "stacks/test.yaml:1:11: a: unsupported tag `!vault`");
    assert_eq!(parse_err("a: !!int x\n"), "stacks/test.yaml:1:10: a: `x` is not a valid `!!int` value");
}

#[test]
fn anchors_and_aliases_copy_the_anchored_node() {
    let root = parse("base: &base\n  size: 10\n  kind: gp3\nother: *base\nlist: [&one 1, *one]\n");
    assert_eq!(root.get("other").map(|n| &n.kind), root.get("base").map(|n| &n.kind));
    assert_eq!(at(&root, "other.size"), "2:9");
    assert_eq!(kind(&root, "list"), &NodeKind::Seq(vec![Node::new(NodeKind::Integer(1), Source::new("stacks/test.yaml", 5, 13)); 2]));
}

#[test]
fn merge_keys_resolve_with_explicit_keys_winning() {
    let text = "defaults: &defaults\n  size: 10\n  kind: gp3\nextra: &extra\n  kind: io2\n  iops: 3000\n\
                one:\n  <<: *defaults\n  size: 20\ntwo:\n  name: x\n  <<: [*extra, *defaults]\n";
    let root = parse(text);
    assert_eq!(kind(&root, "one.size"), &NodeKind::Integer(20));
    assert_eq!(kind(&root, "one.kind"), &s("gp3"));
    assert_eq!(at(&root, "one.kind"), "3:9");
    assert_eq!(kind(&root, "two.kind"), &s("io2"));
    assert_eq!(kind(&root, "two.iops"), &NodeKind::Integer(3000));
    assert_eq!(kind(&root, "two.size"), &NodeKind::Integer(10));
    let names: Vec<&str> = match kind(&root, "two") {
        NodeKind::Map(entries) => entries.iter().map(|(k, _)| k.name.as_str()).collect(),
        _ => Vec::new(),
    };
    assert_eq!(names, ["name", "kind", "iops", "size"]);
    assert!(root.get_path("one.<<").is_none());
    assert_eq!(parse_err("a:\n  <<: 3\n"), "stacks/test.yaml:2:7: a.<<: the merge key `<<` takes a map or a list of maps, not an integer");
}

#[test]
fn alias_bombs_are_stopped() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..8 {
        let p = i - 1;
        text.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
    }
    assert!(parse_err(&text).contains("document too large"));
}

#[test]
fn secure_maps_become_secure_nodes() {
    let root = parse("db_password:\n  secure: v1:abcdef\nnot_secure:\n  secure: v1:x\n  other: 1\nnull_secure: {secure: ~}\n");
    assert_eq!(kind(&root, "db_password"), &NodeKind::Secure("v1:abcdef".into()));
    assert_eq!(at(&root, "db_password"), "2:3");
    assert!(matches!(kind(&root, "not_secure"), NodeKind::Map(_)));
    assert!(matches!(kind(&root, "null_secure"), NodeKind::Map(_)));
}

#[test]
fn dotted_keys_can_be_quoted() {
    assert_eq!(split_dotted_key(r#"a."b.c".d"#), Ok(vec!["a".to_string(), "b.c".to_string(), "d".to_string()]));
    assert!(split_dotted_key("a..b").is_err());
    assert!(split_dotted_key("a.\"b").is_err());
    let root = parse("a:\n  \"b.c\": 1\n");
    assert_eq!(kind(&root, r#"a."b.c""#), &NodeKind::Integer(1));
    assert_eq!(push_key("a", "b.c"), r#"a."b.c""#);
}

#[test]
fn describe_names_kinds() {
    let root = parse("a: 1\nb: [1]\nc: x\n");
    assert_eq!(root.describe(), "map");
    assert_eq!(root.get("a").map(Node::describe), Some("integer"));
    assert_eq!(root.get("b").map(Node::describe), Some("list"));
    assert_eq!(root.get("c").map(Node::describe), Some("string"));
}

#[test]
fn merge_is_deep_for_maps_and_replaces_everything_else() {
    let base =
        parse_yaml("stacks/tiers/qa.yaml", "edxapp:\n  size: 10\n  tags: [a, b]\n  nested: {x: 1, y: 2}\n  keep: yes\nonly_base: 1\n");
    let overlay = parse_yaml("stacks/mitx.qa.yaml", "edxapp:\n  tags: [c]\n  nested: {y: 3, z: 4}\n  keep: ~\n  new: n\nonly_overlay: 2\n");
    let (Ok(base), Ok(overlay)) = (base, overlay) else { panic!("parse failed") };
    let merged = merge(base, overlay);
    let expected =
        parse("edxapp:\n  size: 10\n  tags: [c]\n  nested: {x: 1, y: 3, z: 4}\n  keep: ~\n  new: n\nonly_base: 1\nonly_overlay: 2\n");
    assert!(merged.same_value(&expected));
    let keys: Vec<&str> = match &merged.kind {
        NodeKind::Map(entries) => entries.iter().map(|(k, _)| k.name.as_str()).collect(),
        _ => Vec::new(),
    };
    assert_eq!(keys, ["edxapp", "only_base", "only_overlay"]);
    assert_eq!(merged.get_path("edxapp.size").map(|n| n.source.file.to_string()), Some("stacks/tiers/qa.yaml".into()));
    assert_eq!(merged.get_path("edxapp.tags").map(|n| n.source.to_string()), Some("stacks/mitx.qa.yaml:2:9".into()));
    // A scalar overlay replaces a map and vice versa.
    let merged = merge(parse("a: {x: 1}\n"), parse("a: 3\n"));
    assert_eq!(kind(&merged, "a"), &NodeKind::Integer(3));
}

fn cli() -> Source {
    Source::new("--config", 1, 1)
}

#[test]
fn overrides_are_typed_and_create_maps() {
    let mut root = parse("edxapp:\n  db_instance_type: db.t3.medium\n  replicas: 1\n");
    let set = |root: &mut Node, key: &str, value: &str| set_override(root, key, value, cli()).map_err(|e| e.to_string());
    set(&mut root, "edxapp.db_instance_type", "db.t3.large").unwrap_or_else(|e| panic!("{e}"));
    set(&mut root, "edxapp.replicas", "3").unwrap_or_else(|e| panic!("{e}"));
    set(&mut root, "edxapp.debug", "true").unwrap_or_else(|e| panic!("{e}"));
    set(&mut root, "edxapp.version", "\"3\"").unwrap_or_else(|e| panic!("{e}"));
    set(&mut root, "edxapp.hosts", "[a, b]").unwrap_or_else(|e| panic!("{e}"));
    set(&mut root, "new.deep.key", "1.5").unwrap_or_else(|e| panic!("{e}"));
    set(&mut root, r#"labels."app.kubernetes.io/name""#, "edx").unwrap_or_else(|e| panic!("{e}"));
    set(&mut root, "edxapp.motd", "hello: world # not a comment").unwrap_or_else(|e| panic!("{e}"));
    set(&mut root, "edxapp.empty", "").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kind(&root, "edxapp.db_instance_type"), &s("db.t3.large"));
    assert_eq!(kind(&root, "edxapp.replicas"), &NodeKind::Integer(3));
    assert_eq!(kind(&root, "edxapp.debug"), &NodeKind::Bool(true));
    assert_eq!(kind(&root, "edxapp.version"), &s("3"));
    assert_eq!(kind(&root, "edxapp.hosts"), &NodeKind::Seq(vec![Node::new(s("a"), cli()), Node::new(s("b"), cli())]));
    assert_eq!(kind(&root, "new.deep.key"), &NodeKind::Float(1.5));
    assert_eq!(kind(&root, r#"labels."app.kubernetes.io/name""#), &s("edx"));
    assert_eq!(kind(&root, "edxapp.motd"), &s("hello: world # not a comment"));
    assert_eq!(kind(&root, "edxapp.empty"), &NodeKind::Null);
    assert_eq!(root.get_path("edxapp.replicas").map(|n| n.source.clone()), Some(cli()));
    assert_eq!(root.get_path("new.deep").map(|n| n.source.clone()), Some(cli()));
}

#[test]
fn override_through_a_scalar_is_an_error() {
    let mut root = parse("edxapp:\n  replicas: 1\n");
    let e = set_override(&mut root, "edxapp.replicas.count", "2", cli()).err().map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some(
            "--config:1:1: edxapp.replicas.count: cannot set `edxapp.replicas.count`: `edxapp.replicas` is an integer (defined at stacks/test.yaml:2:13), not a map"
        )
    );
    let e = set_override(&mut root, "a..b", "2", cli()).err().map(|e| e.to_string());
    assert_eq!(e.as_deref(), Some("--config:1:1: empty segment in key `a..b`"));
}

#[test]
fn override_of_a_null_intermediate_creates_a_map() {
    let mut root = parse("edxapp:\n");
    assert!(set_override(&mut root, "edxapp.replicas", "2", cli()).is_ok());
    assert_eq!(kind(&root, "edxapp.replicas"), &NodeKind::Integer(2));
}

#[test]
fn decrypt_secure_replaces_secure_nodes() {
    let mut root =
        parse("edxapp:\n  db_password:\n    secure: v1:aHVudGVyMg\n  ports: {secure: v1:cG9ydHM}\n  list:\n    - secure: v1:bad\n");
    let mut calls = Vec::new();
    let mut decrypt = |c: &str| -> Result<String, String> {
        calls.push(c.to_string());
        match c {
            "v1:aHVudGVyMg" => Ok("hunter2".into()),
            "v1:cG9ydHM" => Ok("[80, 443]".into()),
            _ => Err("authentication failed".into()),
        }
    };
    let e = decrypt_secure(&mut root, &mut decrypt).err().map(|e| e.to_string());
    assert_eq!(e.as_deref(), Some("stacks/test.yaml:6:7: edxapp.list[0]: cannot decrypt secret: authentication failed"));
    assert_eq!(calls, ["v1:aHVudGVyMg", "v1:cG9ydHM", "v1:bad"]);
    let password = root.get_path("edxapp.db_password").map(|n| n.kind.clone());
    let source = Source::new("stacks/test.yaml", 3, 5);
    assert_eq!(password, Some(NodeKind::Secret(Box::new(Node::new(s("hunter2"), source)))));
    let ports = root.get_path("edxapp.ports").map(|n| n.kind.clone());
    let port = |p| Node::new(NodeKind::Integer(p), Source::new("stacks/test.yaml", 4, 10));
    assert_eq!(
        ports,
        Some(NodeKind::Secret(Box::new(Node::new(NodeKind::Seq(vec![port(80), port(443)]), Source::new("stacks/test.yaml", 4, 10)))))
    );
}

#[test]
fn decrypted_text_that_is_not_a_plain_yaml_value_stays_verbatim() {
    let source = cli();
    let value = |text: &str| yaml::parse_value(text, &source).kind;
    assert_eq!(value("p@ss: #1"), s("p@ss: #1"));
    assert_eq!(value("#hash"), s("#hash"));
    assert_eq!(value("abc #x"), s("abc #x"));
    assert_eq!(value("-----BEGIN KEY-----\nabc\n-----END KEY-----\n"), s("-----BEGIN KEY-----\nabc\n-----END KEY-----\n"));
    assert_eq!(value("- a"), s("- a"));
    assert_eq!(value("'unterminated"), s("'unterminated"));
    assert_eq!(value("*alias"), s("*alias"));
    assert_eq!(value("it's"), s("it's"));
    assert_eq!(value("'quoted # x'"), s("quoted # x"));
    assert_eq!(value("42"), NodeKind::Integer(42));
    assert_eq!(value("{a: 1}"), NodeKind::Map(vec![(Key { name: "a".into(), source: cli() }, Node::new(NodeKind::Integer(1), cli()))]));
}
