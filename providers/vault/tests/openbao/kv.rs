//! `vault:sys:Mount` (kv 1 and 2) and `vault:kv:Secret` against OpenBao.

use std::collections::BTreeMap;

use berth_engine::{Op, Options, ProgramResult, Stack};
use berth_provider_vault::{KvSecret, Mount, Ttl};
use serde_json::{Value as Json, json};

use crate::support::*;

#[derive(Clone)]
struct Params {
    v1_mount: String,
    v2_mount: String,
    v1_version: u8,
    description: String,
    default_ttl: Option<Ttl>,
    v1_data: BTreeMap<String, Json>,
    v2_data: BTreeMap<String, Json>,
}

fn program(p: Params) -> impl Fn(&mut Stack) -> ProgramResult + Send + Sync {
    move |s: &mut Stack| {
        let v1 = s.register("kv-v1", Mount::kv(&p.v1_mount, p.v1_version), Options::new())?;
        let v2 = Mount { description: p.description.clone(), default_lease_ttl: p.default_ttl.clone(), ..Mount::kv(&p.v2_mount, 2) };
        let v2 = s.register("kv-v2", v2, Options::new())?;
        let mut first = KvSecret::new(v1.output::<String>("path"), "edxapp");
        for (k, v) in &p.v1_data {
            first = first.with_value(k, v.clone());
        }
        s.register("secret-v1", first, Options::new())?;
        let mut second = KvSecret::new(v2.output::<String>("path"), "apps/edxapp");
        for (k, v) in &p.v2_data {
            second = second.with_value(k, v.clone());
        }
        s.register("secret-v2", second, Options::new())?;
        Ok(())
    }
}

fn kv_get(path: &str) -> Option<Json> {
    let ran = bao(&["kv", "get", "-format=json", path]);
    if !ran.ok {
        return None;
    }
    let json: Json = serde_json::from_str(&ran.stdout).expect("bao prints JSON");
    // kv 2 nests data one level deeper than kv 1.
    Some(if json["data"]["metadata"].is_object() { json["data"]["data"].clone() } else { json["data"].clone() })
}

fn data(pairs: &[(&str, Json)]) -> BTreeMap<String, Json> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

#[tokio::test]
async fn kv_mounts_and_secrets_lifecycle() {
    let h = Harness::new();
    let mut p = Params {
        v1_mount: unique("kv1"),
        v2_mount: unique("kv2"),
        v1_version: 1,
        description: "edxapp secrets".into(),
        default_ttl: None,
        v1_data: data(&[("DJANGO_SECRET_KEY", json!("v1-secret-value-1"))]),
        v2_data: data(&[("password", json!("v2-secret-value-1")), ("workers", json!(4))]),
    };
    h.cleanup.mount(&p.v1_mount);
    h.cleanup.mount(&p.v2_mount);

    // Create: two mounts, two secrets, read back with the CLI.
    let plan = h.up(&program(p.clone())).await;
    assert_eq!(changes(&plan), vec!["kv-v1: create", "kv-v2: create", "secret-v1: create", "secret-v2: create"]);
    assert_eq!(kv_get(&format!("{}/edxapp", p.v1_mount)), Some(json!({"DJANGO_SECRET_KEY": "v1-secret-value-1"})));
    assert_eq!(kv_get(&format!("{}/apps/edxapp", p.v2_mount)), Some(json!({"password": "v2-secret-value-1", "workers": 4})));
    let mount = bao_read(&format!("sys/mounts/{}", p.v2_mount)).expect("mount exists");
    assert_eq!((mount["type"].as_str(), mount["options"]["version"].as_str()), (Some("kv"), Some("2")));
    assert_eq!(mount["description"], "edxapp secrets");
    let state = h.state().await;
    assert_eq!(outputs(&state, "secret-v2")["api_path"], format!("{}/data/apps/edxapp", p.v2_mount));
    assert_eq!(outputs(&state, "secret-v2")["version"], 1);
    assert_eq!(outputs(&state, "secret-v1")["kv_version"], 1);
    assert_eq!(outputs(&state, "kv-v2")["kv_version"], 2);
    assert!(outputs(&state, "kv-v2")["accessor"].as_str().is_some_and(|a| a.starts_with("kv_")));
    for (file, text) in h.state_files() {
        assert!(
            !text.contains("v1-secret-value-1") && !text.contains("v2-secret-value-1"),
            "{} holds kv data in plaintext",
            file.display()
        );
    }

    // No-op, even after reading everything back.
    let (plan, report) = h.try_up(&program(p.clone()), true).await;
    assert!(changes(&plan).is_empty() && plan.drift.is_empty(), "{:?} {:?}", changes(&plan), drift(&plan));
    assert_eq!(report.mutating_calls, 0);

    // Update: data (a new kv 2 version), the mount's description and lease TTL in place.
    p.v2_data = data(&[("password", json!("v2-secret-value-2")), ("workers", json!(4)), ("region", json!("us-east-1"))]);
    p.description = "edxapp secrets (qa)".into();
    p.default_ttl = Some(Ttl::from("1h"));
    let plan = h.up(&program(p.clone())).await;
    assert_eq!(changes(&plan), vec!["kv-v2: update", "secret-v2: update"]);
    let diffs: Vec<String> =
        plan.steps.iter().find(|s| s.name() == "secret-v2").unwrap().diffs.iter().map(|d| d.path.to_string()).collect();
    assert_eq!(diffs, vec!["data.password", "data.region"], "the plan names the keys, not the values");
    assert_eq!(kv_get(&format!("{}/apps/edxapp", p.v2_mount)).unwrap()["password"], "v2-secret-value-2");
    assert_eq!(outputs(&h.state().await, "secret-v2")["version"], 2);
    let mount = bao_read(&format!("sys/mounts/{}", p.v2_mount)).unwrap();
    assert_eq!((mount["description"].as_str(), mount["config"]["default_lease_ttl"].as_u64()), (Some("edxapp secrets (qa)"), Some(3600)));
    assert!(changes(&h.preview(&program(p.clone()), true).await).is_empty(), "`1h` and Vault's 3600 are the same");

    // Drift: secrets and the mount changed with the CLI.
    bao_ok(&["kv", "put", &format!("{}/apps/edxapp", p.v2_mount), "password=changed-by-hand", "workers=4"]);
    bao_ok(&["kv", "put", &format!("{}/edxapp", p.v1_mount), "DJANGO_SECRET_KEY=v1-secret-value-1", "extra=1"]);
    bao_ok(&["secrets", "tune", "-description=tuned by hand", &p.v2_mount]);
    let plan = h.preview(&program(p.clone()), true).await;
    assert_eq!(
        drift(&plan),
        vec![
            "kv-v2: description",
            "secret-v1: data.extra",
            "secret-v2: data.password",
            "secret-v2: data.region",
            "secret-v2: data.workers"
        ]
    );
    assert!(
        plan.drift
            .iter()
            .flat_map(|d| d.diffs.iter().flatten())
            .filter(|f| f.path.to_string() == "data.password")
            .all(|f| { f.old.as_ref().is_none_or(|v| v.is_secret()) && f.new.as_ref().is_none_or(|v| v.is_secret()) })
    );
    let (plan, report) = h.try_up(&program(p.clone()), true).await;
    assert!(report.succeeded(), "{:?}", failures(&report));
    assert_eq!(changes(&plan), vec!["kv-v2: update", "secret-v1: update", "secret-v2: update"]);
    assert_eq!(kv_get(&format!("{}/apps/edxapp", p.v2_mount)).unwrap()["password"], "v2-secret-value-2");
    assert_eq!(kv_get(&format!("{}/edxapp", p.v1_mount)), Some(json!({"DJANGO_SECRET_KEY": "v1-secret-value-1"})));

    // A secret deleted by hand (all versions) is created again.
    bao_ok(&["kv", "metadata", "delete", &format!("{}/apps/edxapp", p.v2_mount)]);
    let plan = h.preview(&program(p.clone()), true).await;
    assert_eq!(drift(&plan), vec!["secret-v2: gone"]);
    h.try_up(&program(p.clone()), true).await;
    assert!(kv_get(&format!("{}/apps/edxapp", p.v2_mount)).is_some());

    // Upgrading kv 1 to 2 happens in place and keeps the data; a downgrade would replace.
    p.v1_version = 2;
    let plan = h.up(&program(p.clone())).await;
    assert_eq!(changes(&plan), vec!["kv-v1: update"]);
    assert_eq!(kv_get(&format!("{}/edxapp", p.v1_mount)), Some(json!({"DJANGO_SECRET_KEY": "v1-secret-value-1"})));
    let (plan, report) = h.try_up(&program(p.clone()), true).await;
    assert!(changes(&plan).is_empty() && plan.drift.is_empty(), "{:?} {:?}", changes(&plan), drift(&plan));
    assert_eq!(report.mutating_calls, 0);
    assert_eq!(outputs(&h.state().await, "secret-v1")["api_path"], format!("{}/data/edxapp", p.v1_mount), "refresh follows the upgrade");
    let downgrade = Params { v1_version: 1, ..p.clone() };
    let plan = h.preview(&program(downgrade), false).await;
    assert_eq!(ops(&plan)["kv-v1"], Op::Replace);

    // Destroy removes secrets and mounts.
    h.destroy().await;
    let mounts = bao_ok(&["secrets", "list", "-format=json"]);
    assert!(!mounts.contains(&p.v1_mount) && !mounts.contains(&p.v2_mount), "{mounts}");
}

#[tokio::test]
async fn kv_mistakes_are_refused_before_any_call() {
    let h = Harness::new();
    let mount = unique("kv-bad");
    let bad = {
        let mount = mount.clone();
        move |s: &mut Stack| -> ProgramResult {
            let mut m = Mount::kv(&mount, 3);
            m.default_lease_ttl = Some(Ttl::from("2 weeks"));
            s.register("mount", m, Options::new())?;
            s.register("reserved", Mount::kv("sys/mine", 2), Options::new())?;
            s.register("secret", KvSecret { kv_version: Some(5), ..KvSecret::new(mount.as_str(), "/edxapp/") }, Options::new())?;
            Ok(())
        }
    };
    let e = h.preview_err(&bad).await;
    for expected in ["options.version", "default_lease_ttl", "`2 weeks`", "reserves `sys/`", "kv_version", "must not start or end with `/`"]
    {
        assert!(e.contains(expected), "missing `{expected}` in: {e}");
    }
    assert!(bao_read(&format!("sys/mounts/{mount}")).is_none());
}

#[tokio::test]
async fn a_secret_needs_a_kv_mount() {
    let h = Harness::new();
    let mount = unique("not-kv");
    h.cleanup.mount(&mount);
    let program = {
        let mount = mount.clone();
        move |s: &mut Stack| -> ProgramResult {
            let db = s.register("db", Mount::database(&mount), Options::new())?;
            s.register("secret", KvSecret::new(db.output::<String>("path"), "x").with_value("a", "b"), Options::new())?;
            Ok(())
        }
    };
    let (_, report) = h.try_up(&program, false).await;
    let why = failures(&report).join("\n");
    assert!(why.contains("`database` engine, not kv") && why.contains(&mount), "{why}");
    h.destroy().await;
}

/// A secret removed from the program (its mount kept) is deleted from Vault; the mount and the
/// other secrets in it stay.
///
/// On kv 2 berth deletes every version and the metadata (`DELETE <mount>/metadata/<path>`), as
/// Terraform's `vault_kv_secret_v2` does with `delete_all_versions = true`. Terraform's default
/// (`false`) only soft-deletes the latest version (`DELETE <mount>/data/<path>`): the key stays
/// listed, older versions stay readable and can be undeleted. berth has no such switch: a secret
/// gone from the program is gone from Vault, history included. The assertions below would fail
/// on a soft delete (the key listed, `-version=1` readable, the data path answering `data: null`).
#[tokio::test]
async fn a_secret_removed_from_the_program_is_deleted_and_its_mount_stays() {
    let h = Harness::new();
    let (v1_mount, v2_mount) = (unique("kv1-del"), unique("kv2-del"));
    h.cleanup.mount(&v1_mount);
    h.cleanup.mount(&v2_mount);
    let program = |with_removable: bool, password: &'static str| {
        let (v1_mount, v2_mount) = (v1_mount.clone(), v2_mount.clone());
        move |s: &mut Stack| -> ProgramResult {
            let v1 = s.register("kv-v1", Mount::kv(&v1_mount, 1), Options::new())?;
            let v2 = s.register("kv-v2", Mount::kv(&v2_mount, 2), Options::new())?;
            let (v1, v2) = (v1.output::<String>("path"), v2.output::<String>("path"));
            s.register("kept-v1", KvSecret::new(&v1, "forum").with_value("token", "kept-1"), Options::new())?;
            s.register("kept-v2", KvSecret::new(&v2, "apps/forum").with_value("token", "kept-2"), Options::new())?;
            if with_removable {
                s.register("gone-v1", KvSecret::new(&v1, "edxapp").with_value("password", password), Options::new())?;
                s.register("gone-v2", KvSecret::new(&v2, "apps/edxapp").with_value("password", password), Options::new())?;
            }
            Ok(())
        }
    };

    // Two versions of the kv 2 secret, so that "all versions" means something.
    h.up(&program(true, "first")).await;
    let plan = h.up(&program(true, "second")).await;
    assert_eq!(changes(&plan), vec!["gone-v1: update", "gone-v2: update"]);
    assert_eq!(outputs(&h.state().await, "gone-v2")["version"], 2);
    assert_eq!(kv_get(&format!("{v2_mount}/apps/edxapp")), Some(json!({"password": "second"})));
    let first = bao_ok(&["kv", "get", "-version=1", "-format=json", &format!("{v2_mount}/apps/edxapp")]);
    assert!(first.contains("\"first\""), "version 1 is kept until the secret is deleted: {first}");
    assert_eq!(bao_list(&format!("{v2_mount}/metadata/apps")), vec!["edxapp", "forum"]);
    assert_eq!(bao_list(&v1_mount), vec!["edxapp", "forum"]);

    // Removed from the program: deleted, and nothing else is.
    let plan = h.up(&program(false, "second")).await;
    assert_eq!(changes(&plan), vec!["gone-v1: delete", "gone-v2: delete"]);
    assert!(bao_read(&format!("{v1_mount}/edxapp")).is_none(), "the kv 1 secret is gone");
    assert_eq!(bao_list(&v1_mount), vec!["forum"]);
    assert!(bao_read(&format!("{v2_mount}/data/apps/edxapp")).is_none(), "no version of the kv 2 secret is left, not even a deleted one");
    assert!(bao_read(&format!("{v2_mount}/metadata/apps/edxapp")).is_none(), "its metadata is gone too");
    assert!(!bao(&["kv", "get", "-version=1", &format!("{v2_mount}/apps/edxapp")]).ok, "older versions are not readable");
    assert_eq!(bao_list(&format!("{v2_mount}/metadata/apps")), vec!["forum"]);
    // The mounts and their other secrets stay.
    for (mount, version) in [(&v1_mount, "1"), (&v2_mount, "2")] {
        let live = bao_read(&format!("sys/mounts/{mount}")).unwrap_or_else(|| panic!("the mount {mount} stays"));
        assert_eq!((live["type"].as_str(), live["options"]["version"].as_str()), (Some("kv"), Some(version)));
    }
    assert_eq!(kv_get(&format!("{v1_mount}/forum")), Some(json!({"token": "kept-1"})));
    assert_eq!(kv_get(&format!("{v2_mount}/apps/forum")), Some(json!({"token": "kept-2"})));
    let state = h.state().await;
    assert!(!in_state(&state, "gone-v1") && !in_state(&state, "gone-v2") && in_state(&state, "kv-v2"));
    let (plan, report) = h.try_up(&program(false, "second"), true).await;
    assert!(changes(&plan).is_empty() && plan.drift.is_empty(), "{:?} {:?}", changes(&plan), drift(&plan));
    assert_eq!(report.mutating_calls, 0);

    // Put back, it starts a new history: version 1, not 3.
    let plan = h.up(&program(true, "third")).await;
    assert_eq!(changes(&plan), vec!["gone-v1: create", "gone-v2: create"]);
    assert_eq!(outputs(&h.state().await, "gone-v2")["version"], 1);

    h.destroy().await;
    assert!(bao_read(&format!("sys/mounts/{v1_mount}")).is_none() && bao_read(&format!("sys/mounts/{v2_mount}")).is_none());
}
