//! `providers.vault` settings against real servers: namespaces, TLS (an OpenBao with its own
//! CA), and what the user sees when the address or token is wrong.

use berth_engine::{Options, ProgramResult, Stack};
use berth_provider_vault::{KvSecret, Mount, Policy};
use serde_json::{Value as Json, json};

use crate::support::*;

fn program(name: String) -> impl Fn(&mut Stack) -> ProgramResult + Send + Sync {
    move |s: &mut Stack| {
        s.register("policy", Policy::new(&name, "path \"secret/*\" { capabilities = [\"read\"] }"), Options::new())?;
        Ok(())
    }
}

/// A harness whose `providers.vault` section is exactly `yaml` (indented under `vault:`).
fn harness(yaml: &str) -> Harness {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let providers = providers_from_yaml(&format!("vault:\n{yaml}"), tmp.path());
    Harness::with_providers(tmp, providers)
}

#[tokio::test]
async fn namespace_setting_puts_everything_in_the_namespace() {
    let ns = unique("team");
    bao_ok(&["namespace", "create", &ns]);
    let h = Harness::with_settings(&format!("  namespace: {ns}\n"));
    let name = unique("policy-ns");
    // Tidies up a failed run, wherever the policy went.
    h.cleanup.push(&["policy", "delete", &format!("-namespace={ns}"), &name]);
    h.cleanup.policy(&name);
    h.cleanup.push(&["namespace", "delete", &ns]);
    h.up(&program(name.clone())).await;
    assert!(bao(&["policy", "read", &format!("-namespace={ns}"), &name]).ok, "the policy is in the namespace");
    assert!(!bao(&["policy", "read", &name]).ok, "and not in the root namespace");
    let plan = h.preview(&program(name.clone()), true).await;
    assert!(changes(&plan).is_empty() && plan.drift.is_empty(), "reads go to the namespace too: {:?}", drift(&plan));
    h.destroy().await;
    assert!(!bao(&["policy", "read", &format!("-namespace={ns}"), &name]).ok);
    bao_ok(&["namespace", "delete", &ns]);
}

/// A kv 2 mount with the `edxapp` secret, and the `forum` secret while `with_forum`.
fn kv_program(mount: String, password: &'static str, with_forum: bool) -> impl Fn(&mut Stack) -> ProgramResult + Send + Sync {
    move |s: &mut Stack| {
        let kv = s.register("kv", Mount { description: "team secrets".into(), ..Mount::kv(&mount, 2) }, Options::new())?;
        let path = kv.output::<String>("path");
        s.register("edxapp", KvSecret::new(&path, "edxapp").with_value("password", password), Options::new())?;
        if with_forum {
            s.register("forum", KvSecret::new(&path, "forum").with_value("token", "forum-token"), Options::new())?;
        }
        Ok(())
    }
}

/// `bao kv get` in namespace `ns`: the data, or `None`.
fn kv_get_in(ns: &str, path: &str) -> Option<Json> {
    let ran = bao(&["kv", "get", &format!("-namespace={ns}"), "-format=json", path]);
    ran.ok.then(|| serde_json::from_str::<Json>(&ran.stdout).expect("bao prints JSON")["data"]["data"].clone())
}

#[tokio::test]
async fn namespace_setting_puts_kv_mounts_and_secrets_in_the_namespace() {
    let ns = unique("team-kv");
    bao_ok(&["namespace", "create", &ns]);
    let h = Harness::with_settings(&format!("  namespace: {ns}\n"));
    let mount = unique("kv-ns");
    let in_ns = format!("-namespace={ns}");
    // Tidies up a failed run, wherever the mount went.
    h.cleanup.push(&["secrets", "disable", &in_ns, &mount]);
    h.cleanup.mount(&mount);
    h.cleanup.push(&["namespace", "delete", &ns]);

    // Create: the mount and secrets are in the namespace, and not in the root namespace.
    let plan = h.up(&kv_program(mount.clone(), "first", true)).await;
    assert_eq!(changes(&plan), vec!["edxapp: create", "forum: create", "kv: create"]);
    let live = bao_read_with(&[&in_ns], &format!("sys/mounts/{mount}")).expect("the mount is in the namespace");
    assert_eq!((live["type"].as_str(), live["options"]["version"].as_str()), (Some("kv"), Some("2")));
    assert!(bao_read(&format!("sys/mounts/{mount}")).is_none(), "and not in the root namespace");
    assert_eq!(kv_get_in(&ns, &format!("{mount}/edxapp")), Some(json!({"password": "first"})));
    assert_eq!(kv_get_in(&ns, &format!("{mount}/forum")), Some(json!({"token": "forum-token"})));
    let state = h.state().await;
    assert_eq!(outputs(&state, "edxapp")["api_path"], format!("{mount}/data/edxapp"), "paths are relative to the namespace");
    assert_eq!(outputs(&state, "edxapp")["kv_version"], 2);
    let (plan, report) = h.try_up(&kv_program(mount.clone(), "first", true), true).await;
    assert!(changes(&plan).is_empty() && plan.drift.is_empty(), "reads go to the namespace: {:?} {:?}", changes(&plan), drift(&plan));
    assert_eq!(report.mutating_calls, 0);

    // Drift made in the namespace is seen there; the update writes there.
    bao_ok(&["kv", "put", &in_ns, &format!("{mount}/edxapp"), "password=changed-by-hand"]);
    bao_ok(&["secrets", "tune", &in_ns, "-description=tuned by hand", &mount]);
    let plan = h.preview(&kv_program(mount.clone(), "first", true), true).await;
    assert_eq!(drift(&plan), vec!["edxapp: data.password", "kv: description"]);
    let (plan, report) = h.try_up(&kv_program(mount.clone(), "second", true), true).await;
    assert!(report.succeeded(), "{:?}", failures(&report));
    assert_eq!(changes(&plan), vec!["edxapp: update", "kv: update"]);
    assert_eq!(kv_get_in(&ns, &format!("{mount}/edxapp")), Some(json!({"password": "second"})));
    assert_eq!(bao_read_with(&[&in_ns], &format!("sys/mounts/{mount}")).unwrap()["description"], "team secrets");

    // A secret removed from the program is deleted in the namespace (all versions and the
    // metadata); the mount and the other secret stay.
    let plan = h.up(&kv_program(mount.clone(), "second", false)).await;
    assert_eq!(changes(&plan), vec!["forum: delete"]);
    assert!(bao_read_with(&[&in_ns], &format!("{mount}/metadata/forum")).is_none(), "the secret is gone");
    assert_eq!(bao_list_with(&[&in_ns], &format!("{mount}/metadata")), vec!["edxapp"]);
    assert!(bao_read_with(&[&in_ns], &format!("sys/mounts/{mount}")).is_some(), "the mount stays");

    h.destroy().await;
    assert!(bao_read_with(&[&in_ns], &format!("sys/mounts/{mount}")).is_none(), "destroy removes the mount from the namespace");
    bao_ok(&["namespace", "delete", &ns]);
}

#[tokio::test]
async fn tls_with_the_servers_ca_or_explicitly_unverified() {
    let t = testbed();
    let (addr, ca, token) = (t.get("BERTH_VAULT_TLS_ADDR"), t.get("BERTH_VAULT_TLS_CA"), t.token());

    // Trusting the server's CA works.
    let h = harness(&format!("  address: {addr}\n  token: {token}\n  ca_cert_file: {ca}\n"));
    let name = unique("policy-tls");
    h.up(&program(name.clone())).await;
    assert!(changes(&h.preview(&program(name.clone()), true).await).is_empty());
    h.destroy().await;

    // Without it, the certificate is refused, and the error says so and what to check.
    let h = harness(&format!("  address: {addr}\n  token: {token}\n"));
    let (_, report) = h.try_up(&program(unique("policy-tls-untrusted")), false).await;
    let why = failures(&report).join("\n");
    assert!(why.to_lowercase().contains("certificate") && why.contains("TLS settings"), "{why}");

    // skip_tls_verify accepts it, because it was asked for.
    let h = harness(&format!("  address: {addr}\n  token: {token}\n  skip_tls_verify: true\n"));
    let name = unique("policy-tls-skip");
    h.up(&program(name.clone())).await;
    h.destroy().await;
}

#[tokio::test]
async fn wrong_token_or_address_errors_say_what_and_where() {
    let t = testbed();
    let name = unique("policy-denied");
    let h = harness(&format!("  address: {}\n  token: not-a-valid-token\n", t.addr()));
    let (_, report) = h.try_up(&program(name.clone()), false).await;
    let why = failures(&report).join("\n");
    assert!(why.contains("403") && why.contains(&format!("sys/policies/acl/{name}")), "{why}");
    assert!(why.contains("permission denied") && why.contains("VAULT_TOKEN"), "Vault's words and what to do: {why}");
    assert!(!why.contains("not-a-valid-token"), "the token is not repeated: {why}");

    let h = harness("  address: http://127.0.0.1:1\n  token: x\n");
    let (_, report) = h.try_up(&program(name.clone()), false).await;
    let why = failures(&report).join("\n");
    assert!(why.contains("refused") && why.contains("reachable"), "{why}");
}
