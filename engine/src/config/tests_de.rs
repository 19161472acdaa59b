//! Tests for reading typed values with `from_node`.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::*;
use crate::secret::Secret;

const FILE: &str = "stacks/mitx.qa.yaml";

fn read<T: serde::de::DeserializeOwned>(text: &str) -> Result<(T, Vec<ConfigWarning>), ConfigError> {
    let node = parse_yaml(FILE, text)?;
    from_node(&node, "config")
}

fn ok<T: serde::de::DeserializeOwned>(text: &str) -> T {
    match read::<T>(text) {
        Ok((value, _)) => value,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn err<T: serde::de::DeserializeOwned + std::fmt::Debug>(text: &str) -> ConfigError {
    match read::<T>(text) {
        Ok((value, _)) => panic!("expected an error, got {value:?}"),
        Err(e) => e,
    }
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Stack {
    edxapp: Edxapp,
    #[serde(default)]
    workers: Vec<Worker>,
    #[serde(default)]
    mode: Option<Mode>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Edxapp {
    db_instance_type: String,
    db_storage_gb: u32,
    db_password: Option<String>,
    #[serde(default)]
    replicas: u8,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Worker {
    name: String,
    queues: Vec<String>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Mode {
    Simple,
    Scaled(u16),
    Custom { cpu: f64, memory: String },
    Pair(u8, u8),
}

const GOOD: &str = "\
# mitx qa
edxapp:
  db_instance_type: db.t3.medium
  db_storage_gb: 50
  replicas: 2
workers:
  - name: default
    queues: [a, b]
  - name: high
    queues: []
mode:
  custom: {cpu: 2, memory: 4Gi}
";

#[test]
fn reads_a_typed_struct() {
    let stack: Stack = ok(GOOD);
    assert_eq!(stack.edxapp.db_instance_type, "db.t3.medium");
    assert_eq!(stack.edxapp.db_storage_gb, 50);
    assert_eq!(stack.edxapp.db_password, None);
    assert_eq!(stack.edxapp.replicas, 2);
    assert_eq!(stack.workers[1], Worker { name: "high".into(), queues: vec![] });
    assert_eq!(stack.mode, Some(Mode::Custom { cpu: 2.0, memory: "4Gi".into() }));
}

#[test]
fn wrong_type_points_at_the_value() {
    let e = err::<Stack>("edxapp:\n  db_instance_type: db.t3.medium\n  db_storage_gb: fifty\n");
    assert_eq!(e.to_string(), "stacks/mitx.qa.yaml:3:18: config.edxapp.db_storage_gb: invalid type: string \"fifty\", expected u32");
    assert_eq!(e.location, Some(Source::new(FILE, 3, 18)));
    assert_eq!(e.key.as_deref(), Some("config.edxapp.db_storage_gb"));
}

#[test]
fn unknown_key_points_at_the_key_with_a_suggestion() {
    let e = err::<Stack>("edxapp:\n  db_instance_type: x\n  db_storage_gb: 5\n  db_instnce_type: db.t3.large\n");
    assert_eq!(
        e.to_string(),
        "stacks/mitx.qa.yaml:4:3: config.edxapp.db_instnce_type: unknown key `db_instnce_type` (did you mean `db_instance_type`?); \
         expected one of: db_instance_type, db_storage_gb, db_password, replicas"
    );
    let e = err::<Stack>("edxapp:\n  db_instance_type: x\n  db_storage_gb: 5\n  totally_different: 1\n");
    assert!(e.message.starts_with("unknown key `totally_different`; expected one of:"), "{e}");
    let e = err::<Stack>("edxapp:\n  db_instance_type: x\n  db_storage_gb: 5\n  db_pass: 1\n");
    assert!(e.message.contains("(did you mean `db_password`?)"), "{e}");
}

#[test]
fn missing_key_points_at_the_enclosing_map() {
    let e = err::<Stack>("# header\n\nedxapp:\n  # comment\n  db_instance_type: db.t3.medium\n");
    assert_eq!(e.to_string(), "stacks/mitx.qa.yaml:5:3: config.edxapp: missing required key `db_storage_gb`");
}

#[test]
fn errors_in_a_list_of_structs_name_the_index() {
    let e = err::<Stack>(
        "edxapp: {db_instance_type: x, db_storage_gb: 1}\nworkers:\n  - name: a\n    queues: [x]\n  - name: b\n    queues: [x, 3]\n",
    );
    assert_eq!(e.to_string(), "stacks/mitx.qa.yaml:6:17: config.workers[1].queues[1]: invalid type: integer `3`, expected a string");
    let e = err::<Stack>("edxapp: {db_instance_type: x, db_storage_gb: 1}\nworkers:\n  - name: a\n    queues: [x]\n  - name: b\n");
    assert_eq!(e.to_string(), "stacks/mitx.qa.yaml:5:5: config.workers[1]: missing required key `queues`");
    let e = err::<Stack>("edxapp: {db_instance_type: x, db_storage_gb: 1}\nworkers: {name: a}\n");
    assert_eq!(e.to_string(), "stacks/mitx.qa.yaml:2:10: config.workers: invalid type: map, expected a sequence");
}

#[test]
fn out_of_range_integers_point_at_the_value() {
    let e = err::<Stack>("edxapp:\n  db_instance_type: x\n  db_storage_gb: 5\n  replicas: 300\n");
    assert_eq!(e.to_string(), "stacks/mitx.qa.yaml:4:13: config.edxapp.replicas: invalid value: integer `300`, expected u8");
    let e = err::<Stack>("edxapp:\n  db_instance_type: x\n  db_storage_gb: -1\n");
    assert_eq!(e.to_string(), "stacks/mitx.qa.yaml:3:18: config.edxapp.db_storage_gb: invalid value: integer `-1`, expected u32");
}

#[test]
fn options_read_null_as_none() {
    let stack: Stack = ok("edxapp:\n  db_instance_type: x\n  db_storage_gb: 5\n  db_password: ~\nmode:\n");
    assert_eq!(stack.edxapp.db_password, None);
    assert_eq!(stack.mode, None);
    let stack: Stack = ok("edxapp:\n  db_instance_type: x\n  db_storage_gb: 5\n  db_password: pw\n");
    assert_eq!(stack.edxapp.db_password.as_deref(), Some("pw"));
    let e = err::<Stack>("edxapp:\n  db_instance_type: x\n  db_storage_gb: 5\n  db_password: [pw]\n");
    assert_eq!(e.to_string(), "stacks/mitx.qa.yaml:4:16: config.edxapp.db_password: invalid type: sequence, expected a string");
}

#[test]
fn enums_read_strings_and_single_key_maps() {
    let mode =
        |text: &str| read::<HashMap<String, Mode>>(text).map(|(m, _)| m.get("m").map(|m| format!("{m:?}"))).map_err(|e| e.to_string());
    assert_eq!(mode("m: simple"), Ok(Some("Simple".into())));
    assert_eq!(mode("m: {scaled: 3}"), Ok(Some("Scaled(3)".into())));
    assert_eq!(mode("m:\n  pair: [1, 2]"), Ok(Some("Pair(1, 2)".into())));
    assert_eq!(mode("m: {custom: {cpu: 0.5, memory: 1Gi}}"), Ok(Some("Custom { cpu: 0.5, memory: \"1Gi\" }".into())));
    assert_eq!(
        mode("m: simpel"),
        Err("stacks/mitx.qa.yaml:1:4: config.m: unknown variant `simpel` (did you mean `simple`?); expected one of: simple, scaled, custom, pair".into())
    );
    assert_eq!(
        mode("m:\n  scaled: big"),
        Err("stacks/mitx.qa.yaml:2:11: config.m.scaled: invalid type: string \"big\", expected u16".into())
    );
    assert_eq!(mode("m: {custom: {cpu: 1}}"), Err("stacks/mitx.qa.yaml:1:13: config.m.custom: missing required key `memory`".into()));
    assert_eq!(mode("m: [simple]"), Err("stacks/mitx.qa.yaml:1:4: config.m: invalid type: sequence, expected enum Mode".into()));
    assert_eq!(
        mode("m: scaled"),
        Err("stacks/mitx.qa.yaml:1:4: config.m: variant `scaled` needs a value; write it as `{scaled: <value>}`".into())
    );
    assert_eq!(
        mode("m: {simple: 3}"),
        Err("stacks/mitx.qa.yaml:1:13: config.m.simple: invalid type: integer `3`, expected nothing (a unit variant)".into())
    );
}

#[test]
fn common_types() {
    #[derive(Debug, Deserialize, PartialEq)]
    struct Port(u16);
    #[derive(Debug, Deserialize, PartialEq)]
    struct Unit;
    #[derive(Debug, Deserialize, PartialEq)]
    struct All {
        float_from_int: f64,
        float: f32,
        letter: char,
        tuple: (String, i64, bool),
        port: Port,
        btree: BTreeMap<String, u8>,
        by_number: HashMap<u16, String>,
        nothing: (),
        unit: Unit,
        ignored: serde::de::IgnoredAny,
        json: serde_json::Value,
        big: i128,
    }
    let all: All = ok("float_from_int: 3\nfloat: 1.5\nletter: x\ntuple: [a, -1, true]\nport: 8080\nbtree: {b: 2, a: 1}\n\
                       by_number: {80: http, 443: https}\nnothing: ~\nunit: null\nignored: {anything: [1, 2]}\n\
                       json: {a: [1, 2.5, x, null, true], b: {c: d}}\nbig: -5\n");
    assert_eq!(all.float_from_int, 3.0);
    assert_eq!(all.float, 1.5);
    assert_eq!(all.letter, 'x');
    assert_eq!(all.tuple, ("a".into(), -1, true));
    assert_eq!(all.port, Port(8080));
    assert_eq!(all.btree.into_iter().collect::<Vec<_>>(), [("a".to_string(), 1), ("b".to_string(), 2)]);
    assert_eq!(all.by_number.get(&443).map(String::as_str), Some("https"));
    assert_eq!(all.json, serde_json::json!({"a": [1, 2.5, "x", null, true], "b": {"c": "d"}}));
    assert_eq!(all.big, -5);

    let e = err::<HashMap<String, (u8, u8)>>("t: [1, 2, 3]\n");
    assert_eq!(e.to_string(), "stacks/mitx.qa.yaml:1:4: config.t: invalid length 3, expected 2 elements");
    let e = err::<HashMap<String, char>>("c: xy\n");
    assert_eq!(e.to_string(), "stacks/mitx.qa.yaml:1:4: config.c: invalid value: string \"xy\", expected a character");
    let e = err::<HashMap<u16, String>>("http: x\n");
    assert_eq!(e.to_string(), "stacks/mitx.qa.yaml:1:1: config.http: invalid type: string \"http\", expected u16");
}

#[test]
fn custom_errors_get_the_location_of_the_value() {
    #[derive(Debug)]
    struct Even(#[allow(dead_code)] u32);
    impl<'de> Deserialize<'de> for Even {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let n = u32::deserialize(d)?;
            if n % 2 == 0 { Ok(Even(n)) } else { Err(serde::de::Error::custom(format!("{n} is odd"))) }
        }
    }
    let e = err::<HashMap<String, Vec<Even>>>("nums:\n  - 2\n  - 3\n");
    assert_eq!(e.to_string(), "stacks/mitx.qa.yaml:3:5: config.nums[1]: 3 is odd");
}

#[test]
fn errors_carry_the_location_of_overrides_and_merged_files() {
    let mut root = parse_yaml(FILE, "edxapp:\n  db_instance_type: x\n  db_storage_gb: 5\n").unwrap_or_else(|e| panic!("{e}"));
    assert!(set_override(&mut root, "edxapp.replicas", "x", Source::new("--config", 1, 1)).is_ok());
    let e = from_node::<Stack>(&root, "config").err().map(|e| e.to_string());
    assert_eq!(e.as_deref(), Some("--config:1:1: config.edxapp.replicas: invalid type: string \"x\", expected u8"));
    let e = from_node::<Stack>(&root, "").err().map(|e| e.to_string());
    assert_eq!(e.as_deref(), Some("--config:1:1: edxapp.replicas: invalid type: string \"x\", expected u8"));
}

#[test]
fn the_root_must_be_a_map() {
    let e = err::<Stack>("[1, 2]\n");
    assert_eq!(e.to_string(), "stacks/mitx.qa.yaml:1:1: config: invalid type: sequence, expected struct Stack");
    let e = err::<Stack>("");
    assert_eq!(e.to_string(), "stacks/mitx.qa.yaml:1:1: config: missing required key `edxapp`");
    let e = err::<Stack>("edxapp:\nworkers: []\n");
    assert_eq!(e.to_string(), "stacks/mitx.qa.yaml:1:1: config.edxapp: invalid type: null, expected struct Edxapp");
}

#[test]
fn help_is_not_part_of_display() {
    let e = ConfigError::new("boom").at(&Source::new("f", 1, 2)).with_key("k").with_help("do this");
    assert_eq!(e.to_string(), "f:1:2: k: boom");
    assert_eq!(ConfigError::new("boom").to_string(), "boom");
}

// ---- secrets ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Db {
    password: Secret<String>,
    #[serde(default)]
    port: Option<Secret<u16>>,
}

fn decrypted(text: &str) -> Node {
    let mut root = parse_yaml(FILE, text).unwrap_or_else(|e| panic!("{e}"));
    let mut decrypt = |c: &str| -> Result<String, String> {
        match c {
            "v1:pw" => Ok("hunter2".into()),
            "v1:port" => Ok("5432".into()),
            "v1:list" => Ok("[hunter2, other]".into()),
            _ => Err(format!("unknown ciphertext {c}")),
        }
    };
    decrypt_secure(&mut root, &mut decrypt).unwrap_or_else(|e| panic!("{e}"));
    root
}

#[test]
fn secret_fields_read_secret_nodes() {
    let root = decrypted("password: {secure: v1:pw}\nport:\n  secure: v1:port\n");
    let (db, warnings) = from_node::<Db>(&root, "config.db").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(db.password.expose(), "hunter2");
    assert_eq!(db.port.map(Secret::into_inner), Some(5432));
    assert!(warnings.is_empty());
}

#[test]
fn plaintext_secrets_are_read_with_a_warning() {
    let (db, warnings) = read::<Db>("password: hunter2\nport: ~\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(db.password.expose(), "hunter2");
    assert_eq!(db.port, None);
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].location, Source::new(FILE, 1, 11));
    assert_eq!(warnings[0].key, "config.password");
    assert!(warnings[0].message.contains("stored in plaintext"), "{}", warnings[0].message);
    assert!(warnings[0].message.contains("berth config set <stack> password <value> --secret"), "{}", warnings[0].message);
    assert!(!warnings[0].to_string().contains("hunter2"));
}

#[test]
fn a_secret_read_as_plain_text_is_an_error() {
    #[derive(Debug, Deserialize)]
    struct Plain {
        #[allow(dead_code)]
        password: String,
    }
    let root = decrypted("# db\npassword: {secure: v1:pw}\n");
    let e = from_node::<Plain>(&root, "config").err().unwrap_or_else(|| panic!("expected an error"));
    assert_eq!(
        e.to_string(),
        "stacks/mitx.qa.yaml:2:11: config.password: `config.password` is a secret; the program must read it as Secret<String>"
    );
    assert!(e.help.is_some());
    let e = from_node::<HashMap<String, Option<u16>>>(&root, "config").err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("must read it as Secret<u16>"), "{e}");
    assert!(!e.contains("hunter2"));
}

#[test]
fn secrets_read_into_json_values_become_marker_maps() {
    let root = decrypted("password: {secure: v1:pw}\nlist: {secure: v1:list}\nplain: 1\n");
    let (json, _) = from_node::<serde_json::Value>(&root, "config").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        json,
        serde_json::json!({"password": {"$berth.secret": "hunter2"}, "list": {"$berth.secret": ["hunter2", "other"]}, "plain": 1})
    );
}

#[test]
fn undecrypted_secure_values_are_errors() {
    let root = parse_yaml(FILE, "password:\n  secure: v1:pw\n").unwrap_or_else(|e| panic!("{e}"));
    for e in [
        from_node::<Db>(&root, "config").err(),
        from_node::<serde_json::Value>(&root, "config").err(),
        from_node::<HashMap<String, String>>(&root, "config").err(),
    ] {
        let e = e.map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(e, "stacks/mitx.qa.yaml:2:3: config.password: secret value was not decrypted");
    }
}

#[test]
fn secret_plaintext_never_appears_in_errors() {
    let root = decrypted("password: {secure: v1:pw}\nport: {secure: v1:pw}\n");
    let e = from_node::<Db>(&root, "config").err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(e, "stacks/mitx.qa.yaml:2:7: config.port: invalid type: a secret string, expected u16");
    assert!(!e.contains("hunter2"));

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    #[serde(rename_all = "lowercase")]
    enum Level {
        Low,
        High,
    }
    let e = from_node::<HashMap<String, Secret<Level>>>(&root, "config").err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("unknown variant; expected one of: low, high"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");

    #[derive(Debug)]
    struct Picky;
    impl<'de> Deserialize<'de> for Picky {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let s = String::deserialize(d)?;
            Err(serde::de::Error::custom(format!("`{s}` is too short")))
        }
    }
    let e = from_node::<HashMap<String, Secret<Picky>>>(&root, "config").err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(e, "stacks/mitx.qa.yaml:1:11: config.password: `[secret]` is too short");

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    #[serde(tag = "kind")]
    enum Tagged {
        A { n: u8 },
    }
    let tagged = decrypted("x:\n  kind: A\n  n: {secure: v1:pw}\n");
    let e = from_node::<HashMap<String, Tagged>>(&tagged, "config").err().map(|e| e.to_string()).unwrap_or_default();
    assert!(!e.is_empty() && !e.contains("hunter2"), "{e}");

    // Plaintext read as a secret is protected too.
    let e = read::<Db>("password: hunter2\nport: hunter2\n").err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(e, "stacks/mitx.qa.yaml:2:7: config.port: invalid type: a secret string, expected u16");
}
