//! `providers.vault` settings against real servers: namespaces, TLS (an OpenBao with its own
//! CA), and what the user sees when the address or token is wrong.

use berth_engine::{Options, ProgramResult, Stack};
use berth_provider_vault::Policy;

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
    h.up(&program(name.clone())).await;
    assert!(bao(&["policy", "read", &format!("-namespace={ns}"), &name]).ok, "the policy is in the namespace");
    assert!(!bao(&["policy", "read", &name]).ok, "and not in the root namespace");
    let plan = h.preview(&program(name.clone()), true).await;
    assert!(changes(&plan).is_empty() && plan.drift.is_empty(), "reads go to the namespace too: {:?}", drift(&plan));
    h.destroy().await;
    assert!(!bao(&["policy", "read", &format!("-namespace={ns}"), &name]).ok);
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
