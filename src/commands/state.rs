//! `berth state list|show|unlock|delete|unprotect`.

use berth_engine::state::UnlockOutcome;
use serde_json::json;

use crate::context::{Context, find_resource};
use crate::error::CliError;
use crate::output::register_secrets;

pub async fn list(ctx: &Context<'_>, stack: &str, json: bool) -> Result<u8, CliError> {
    let settings = ctx.settings(stack, &[])?;
    let backend = ctx.backend(&settings)?;
    // Listing needs no passphrase: URNs, types and ids are never secret.
    let Some(bytes) = backend.read_state(stack).await? else {
        return Err(CliError::new(format!("stack `{stack}` has no state yet")).help(format!("run `berth stack up {stack}` first")));
    };
    let doc: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| CliError::new(format!("{}: not JSON: {e}", backend.location(stack))))?;
    let resources: Vec<serde_json::Value> = doc["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|r| json!({"urn": r["urn"], "type": r["type"], "id": r["id"], "protect": r["protect"].as_bool().unwrap_or(false), "custom": r["custom"].as_bool().unwrap_or(true)}))
        .collect();
    if json {
        ctx.printer.json(&json!({"stack": stack, "serial": doc["serial"], "resources": resources, "pending_operations": doc["pending_operations"].as_array().map(|a| a.len()).unwrap_or(0)}));
        return Ok(0);
    }
    let mut text = String::new();
    for r in &resources {
        let flags = if r["protect"].as_bool() == Some(true) { "  [protected]" } else { "" };
        let id = r["id"].as_str().map(|id| format!("  id={id}")).unwrap_or_default();
        text.push_str(&format!("{}{id}{flags}\n", r["urn"].as_str().unwrap_or_default()));
    }
    text.push_str(&format!("{} resources (serial {})\n", resources.len(), doc["serial"]));
    ctx.printer.out(&text);
    Ok(0)
}

pub async fn show(ctx: &Context<'_>, stack: &str, resource: &str, json: bool, show_secrets: bool) -> Result<u8, CliError> {
    let settings = ctx.settings(stack, &[])?;
    let engine = ctx.engine(&settings)?;
    let (state, _) = engine.read_state().await?;
    register_secrets(state.secret_strings());
    let urn = find_resource(resource, state.resources.iter().map(|r| &r.urn))?;
    let r = state.get(&urn).expect("found above");
    let value = |v: &berth_engine::Value| if show_secrets { v.to_json_revealed() } else { v.to_json_masked() };
    let doc = json!({
        "urn": r.urn, "type": r.ty, "id": r.id, "parent": r.parent, "protect": r.protect, "retain_on_delete": r.retain_on_delete,
        "tainted": r.tainted, "dependencies": r.dependencies, "created_at": r.created_at, "updated_at": r.updated_at,
        "inputs": value(&r.inputs), "outputs": value(&r.outputs),
    });
    let text = if json {
        format!("{}\n", serde_json::to_string_pretty(&doc).unwrap_or_default())
    } else {
        let mut t = format!("{}\n  type: {}\n  id: {}\n", r.urn, r.ty, r.id.as_deref().unwrap_or("-"));
        if let Some(p) = &r.parent {
            t.push_str(&format!("  parent: {p}\n"));
        }
        t.push_str(&format!(
            "  protect: {}\n  inputs: {}\n  outputs: {}\n",
            r.protect,
            serde_json::to_string_pretty(&doc["inputs"]).unwrap_or_default(),
            serde_json::to_string_pretty(&doc["outputs"]).unwrap_or_default()
        ));
        t
    };
    if show_secrets {
        ctx.printer.out_revealed(&text)
    } else {
        ctx.printer.out(&text)
    }
    Ok(0)
}

pub async fn unlock(ctx: &Context<'_>, stack: &str, force: bool) -> Result<u8, CliError> {
    let settings = ctx.settings(stack, &[])?;
    let backend = ctx.backend(&settings)?;
    let who =
        |info: &Option<berth_engine::state::LockInfo>| info.as_ref().map(|i| i.describe()).unwrap_or_else(|| "an unknown process".into());
    let message = match backend.unlock(stack, force).await? {
        UnlockOutcome::NotLocked => format!("Stack `{stack}` is not locked.\n"),
        UnlockOutcome::RemovedStale(info) => format!("Removed the stale lock of stack `{stack}` held by {}.\n", who(&info)),
        UnlockOutcome::ForcedWhileHeld(info) => format!("Removed the lock of stack `{stack}` although {} still holds it.\n", who(&info)),
    };
    ctx.printer.out(&message);
    Ok(0)
}

pub async fn delete(ctx: &Context<'_>, stack: &str, resource: &str, force: bool, yes: bool) -> Result<u8, CliError> {
    let settings = ctx.settings(stack, &[])?;
    let engine = ctx.engine(&settings)?;
    if !yes {
        if !ctx.printer.stdin_tty {
            return Err(CliError::new(format!("refusing to change the state of `{stack}` without confirmation"))
                .help(format!("run again with --yes: berth state delete {stack} {resource} --yes")));
        }
        if !ctx.printer.confirm(&format!("Forget `{resource}` from stack `{stack}`? It will keep existing, no longer managed by berth.")) {
            return Err(CliError::new("cancelled; nothing was changed"));
        }
    }
    let mut forgotten = None;
    engine
        .edit_state("berth state delete", |state| {
            let urn = find_resource(resource, state.resources.iter().map(|r| &r.urn))
                .map_err(|e| berth_engine::ops::OpError::Refused(e.message))?;
            let record = state.get(&urn).expect("found above");
            if record.protect && !force {
                return Err(berth_engine::ops::OpError::Refused(format!("{urn} is protected; pass --force to forget it anyway")));
            }
            let dependents: Vec<String> = state
                .resources
                .iter()
                // Components list their children as dependencies: no reason to refuse.
                .filter(|r| r.custom && (r.dependencies.contains(&urn) || r.parent.as_ref() == Some(&urn)))
                .map(|r| r.urn.to_string())
                .collect();
            if !dependents.is_empty() && !force {
                return Err(berth_engine::ops::OpError::Refused(format!(
                    "other resources depend on {urn}: {}; pass --force to forget it anyway",
                    dependents.join(", ")
                )));
            }
            for r in state.resources.iter_mut() {
                r.dependencies.retain(|d| d != &urn);
            }
            state.remove(&urn);
            forgotten = Some(urn);
            Ok(())
        })
        .await?;
    if let Some(urn) = forgotten {
        ctx.printer.out(&format!("Forgot {urn}; it still exists but berth no longer manages it.\n"));
    }
    Ok(0)
}

pub async fn unprotect(ctx: &Context<'_>, stack: &str, resource: &str) -> Result<u8, CliError> {
    let settings = ctx.settings(stack, &[])?;
    let engine = ctx.engine(&settings)?;
    let mut changed = None;
    engine
        .edit_state("berth state unprotect", |state| {
            let urn = find_resource(resource, state.resources.iter().map(|r| &r.urn))
                .map_err(|e| berth_engine::ops::OpError::Refused(e.message))?;
            if let Some(r) = state.resources.iter_mut().find(|r| r.urn == urn) {
                r.protect = false;
            }
            changed = Some(urn);
            Ok(())
        })
        .await?;
    if let Some(urn) = changed {
        ctx.printer.out(&format!("{urn} is no longer protected in state (the program may protect it again on the next up).\n"));
    }
    Ok(0)
}
