//! `vault:sys:Policy` against OpenBao.

use berth_engine::{Op, Options, ProgramResult, Stack};
use berth_provider_vault::Policy;

use crate::support::*;

fn rules(mount: &str, capabilities: &str) -> String {
    format!("# {mount} readers\npath \"{mount}/data/*\" {{\n  capabilities = [{capabilities}]\n}}\n")
}

fn program(name: String, text: String) -> impl Fn(&mut Stack) -> ProgramResult + Send + Sync {
    move |s: &mut Stack| {
        s.register("policy", Policy::new(&name, text.clone()), Options::new())?;
        Ok(())
    }
}

fn live(name: &str) -> Option<String> {
    bao_read(&format!("sys/policies/acl/{name}")).map(|d| d["policy"].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn policy_create_read_update_noop_drift_delete() {
    let h = Harness::new();
    let name = unique("policy-life");
    h.cleanup.policy(&name);
    let text = rules("secret-a", "\"read\", \"list\"");

    // Create, and read back with the bao CLI.
    let plan = h.up(&program(name.clone(), text.clone())).await;
    assert_eq!(changes(&plan), vec!["policy: create"]);
    assert_eq!(live(&name).as_deref(), Some(text.as_str()));
    assert_eq!(outputs(&h.state().await, "policy")["name"], name.as_str());

    // No-op: nothing to do, with or without refresh.
    let (plan, report) = h.try_up(&program(name.clone(), text.clone()), true).await;
    assert!(changes(&plan).is_empty() && plan.drift.is_empty(), "{:?} {:?}", changes(&plan), drift(&plan));
    assert_eq!(report.mutating_calls, 0);

    // Re-indented HCL is the same policy: no change planned.
    let reformatted = text.replace("\n  capabilities", "\n\n      capabilities").replace("[\"read\", \"list\"]", "[\"read\",\"list\"]");
    assert_ne!(reformatted, text);
    assert!(changes(&h.preview(&program(name.clone(), reformatted.clone()), false).await).is_empty());

    // A real change updates in place.
    let updated = rules("secret-a", "\"read\"");
    let plan = h.up(&program(name.clone(), updated.clone())).await;
    assert_eq!(changes(&plan), vec!["policy: update"]);
    assert_eq!(live(&name).as_deref(), Some(updated.as_str()));

    // Someone rewrites it with the CLI: refresh shows the drift, up puts it back.
    let file = h.dir.join("hand-edited.hcl");
    std::fs::write(&file, rules("secret-a", "\"read\", \"update\", \"delete\"")).unwrap();
    bao_ok(&["policy", "write", &name, file.to_str().unwrap()]);
    assert!(changes(&h.preview(&program(name.clone(), updated.clone()), false).await).is_empty(), "state is trusted without refresh");
    let plan = h.preview(&program(name.clone(), updated.clone()), true).await;
    assert_eq!(drift(&plan), vec!["policy: policy"]);
    assert_eq!(ops(&plan)["policy"], Op::Update);
    let (_, report) = h.try_up(&program(name.clone(), updated.clone()), true).await;
    assert!(report.succeeded());
    assert_eq!(live(&name).as_deref(), Some(updated.as_str()));

    // Whitespace changed by hand is not drift.
    std::fs::write(&file, updated.replace("  capabilities", "\tcapabilities")).unwrap();
    bao_ok(&["policy", "write", &name, file.to_str().unwrap()]);
    let plan = h.preview(&program(name.clone(), updated.clone()), true).await;
    assert!(plan.drift.is_empty() && changes(&plan).is_empty(), "{:?}", drift(&plan));

    // Deleted by hand: refresh sees it gone and plans to create it again.
    bao_ok(&["policy", "delete", &name]);
    let plan = h.preview(&program(name.clone(), updated.clone()), true).await;
    assert_eq!(drift(&plan), vec!["policy: gone"]);
    assert_eq!(ops(&plan)["policy"], Op::Create);
    h.try_up(&program(name.clone(), updated.clone()), true).await;
    assert!(live(&name).is_some());

    // Renaming replaces: the new name exists, the old one is gone.
    let renamed = unique("policy-life-renamed");
    h.cleanup.policy(&renamed);
    let plan = h.up(&program(renamed.clone(), updated.clone())).await;
    assert_eq!(ops(&plan)["policy"], Op::Replace);
    assert!(live(&renamed).is_some() && live(&name).is_none());

    h.destroy().await;
    assert!(live(&renamed).is_none());
}

#[tokio::test]
async fn bad_policies_are_refused_before_any_call() {
    let h = Harness::new();
    let name = unique("Policy-Bad");
    let broken = "path \"secret/*\" {\n  capabilities = [\"read\"\n}\n".to_string();
    let e = h.preview_err(&program(name.clone(), broken.clone())).await;
    assert!(e.contains("lower-cases") && e.contains(&name.to_lowercase()), "{e}");
    assert!(e.contains("policy") && e.contains("line 3"), "{e}");
    let e = h.preview_err(&program("root".into(), rules("a", "\"read\""))).await;
    assert!(e.contains("built-in"), "{e}");
    assert!(live(&name.to_lowercase()).is_none());
}

#[tokio::test]
async fn an_existing_policy_is_imported_not_overwritten() {
    let h = Harness::new();
    let name = unique("policy-import");
    h.cleanup.policy(&name);
    let text = rules("secret-b", "\"read\"");
    let file = h.dir.join("p.hcl");
    std::fs::write(&file, &text).unwrap();
    bao_ok(&["policy", "write", &name, file.to_str().unwrap()]);

    // Creating over it fails with Vault's name for it and the way out.
    let (_, report) = h.try_up(&program(name.clone(), rules("secret-b", "\"list\"")), false).await;
    let why = failures(&report).join("\n");
    assert!(why.contains("already exists") && why.contains("import") && why.contains(&name), "{why}");
    assert_eq!(live(&name).as_deref(), Some(text.as_str()), "the existing policy is untouched");

    // Importing adopts it and applies the program's text in the same step.
    let import = {
        let name = name.clone();
        move |s: &mut Stack| -> ProgramResult {
            s.register("policy", Policy::new(&name, rules("secret-b", "\"list\"")), Options::new().import(name.clone()))?;
            Ok(())
        }
    };
    let plan = h.up(&import).await;
    assert_eq!(ops(&plan)["policy"], Op::Import);
    assert_eq!(live(&name), Some(rules("secret-b", "\"list\"")));
    let plan = h.preview(&program(name.clone(), rules("secret-b", "\"list\"")), true).await;
    assert!(changes(&plan).is_empty() && plan.drift.is_empty(), "{:?} {:?}", changes(&plan), drift(&plan));
    h.destroy().await;
    assert!(live(&name).is_none());
}
