//! `berth stack preview|up|destroy|refresh|output|ls`.

use std::sync::Arc;

use berth_engine::apply::{ApplyObserver, ApplyOptions, ApplyReport, Silent};
use berth_engine::config::ConfigWarning;
use berth_engine::ops::{Engine, Operation, Prepared, RunOptions};
use berth_engine::plan::Plan;
use berth_engine::project::StackSettings;
use berth_engine::render::{RenderOptions, apply_json, apply_summary, drift_json, drift_text, plan_json, plan_text};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::cli::PlanArgs;
use crate::context::Context;
use crate::error::{CliError, EXIT_CHANGES, EXIT_INTERRUPTED};
use crate::output::{register_plan_secrets, register_secrets};
use crate::progress::{LiveProgress, PlainProgress};

pub(crate) fn run_options(ctx: &Context, settings: &StackSettings, plan: &PlanArgs) -> RunOptions {
    RunOptions {
        refresh: plan.refresh,
        targets: plan.targets.clone(),
        parallel: plan.parallel as usize,
        references: Some(ctx.references(settings)),
        project_dir: Some(ctx.project.root.clone()),
    }
}

fn render_options(ctx: &Context, plan: &PlanArgs) -> RenderOptions {
    RenderOptions { style: ctx.printer.style, diff: plan.diff, show_same: plan.show_sames }
}

pub(crate) fn print_warnings(ctx: &Context, warnings: &[ConfigWarning]) {
    for w in warnings {
        ctx.printer.err(&format!("{} {w}\n", ctx.printer.style.yellow("warning:")));
    }
}

fn expect_no_changes_error(plan: &Plan) -> CliError {
    let s = plan.summary();
    CliError::new(format!(
        "--expect-no-changes: the plan has changes ({} to create, {} to update, {} to replace, {} to delete, {} to import)",
        s.create, s.update, s.replace, s.delete, s.import
    ))
    .help("run `berth stack preview <stack> --diff` to see them")
}

/// Installs the Ctrl-C handler: the first interrupt cancels `token`, the second exits at once
/// (the journal lets the next run settle what was in flight).
fn interrupt_handler(ctx: &Context) -> CancellationToken {
    let token = CancellationToken::new();
    let first = token.clone();
    let printer = ctx.printer;
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            first.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                printer.err("\nSecond interrupt: exiting now. The journal records what was in flight; the next run settles it.\n");
                std::process::exit(EXIT_INTERRUPTED as i32);
            }
        }
    });
    token
}

pub async fn preview(ctx: &Context<'_>, stack: &str, args: &PlanArgs, detailed_exitcode: bool) -> Result<u8, CliError> {
    let settings = ctx.settings(stack, &args.config)?;
    let engine = ctx.engine(&settings)?;
    let program = ctx.program(&settings)?;
    let (plan, warnings) = engine.preview(program.as_ref(), Some(settings.config.clone()), &run_options(ctx, &settings, args)).await?;
    register_plan_secrets(&plan);
    print_warnings(ctx, &warnings);
    if args.json {
        let mut doc = plan_json(&plan);
        doc["operation"] = json!("preview");
        ctx.printer.json(&doc);
    } else {
        ctx.printer.out(&format!("{} {}\n\n", ctx.printer.style.bold("Previewing stack"), ctx.printer.style.bold(stack)));
        ctx.printer.out(&plan_text(&plan, render_options(ctx, args)));
    }
    if args.expect_no_changes && plan.has_changes() {
        return Err(expect_no_changes_error(&plan));
    }
    Ok(if detailed_exitcode && plan.has_changes() { EXIT_CHANGES } else { 0 })
}

/// Asks before changing anything; without a terminal, `--yes` is the only way to say yes.
fn confirm(ctx: &Context, yes: bool, question: &str, stack: &str, command: &str) -> Result<(), CliError> {
    if yes {
        return Ok(());
    }
    if !ctx.printer.stdin_tty {
        return Err(CliError::new(format!("refusing to {command} stack `{stack}` without confirmation: there is no terminal to ask"))
            .help(format!("review the plan above, then run again with --yes: berth stack {command} {stack} --yes")));
    }
    if ctx.printer.confirm(question) { Ok(()) } else { Err(CliError::new("cancelled; nothing was changed")) }
}

/// Runs a prepared operation with the right progress display; prints its summary.
async fn execute(
    ctx: &Context<'_>,
    engine: &Engine,
    prepared: Prepared,
    parallel: u16,
    json: bool,
    cancel: CancellationToken,
) -> Result<ApplyReport, CliError> {
    let total = prepared.plan.steps.iter().filter(|s| s.custom && s.is_change()).count();
    let options = ApplyOptions { parallel: parallel as usize, cancel };
    let live = (!json && ctx.printer.stdout_tty).then(|| LiveProgress::start(ctx.printer.style, total));
    let observer: Arc<dyn ApplyObserver> = match &live {
        Some(live) => live.clone(),
        None if total == 0 => Arc::new(Silent),
        None => Arc::new(PlainProgress { style: ctx.printer.style, to_stderr: json }),
    };
    if !json {
        ctx.printer.out("\n");
    }
    let executed = engine.execute(prepared, &options, observer).await;
    if let Some(live) = &live {
        live.finish();
    }
    let executed = executed?;
    register_secrets(executed.state.secret_strings());
    Ok(executed.report)
}

fn exit_code(report: &ApplyReport) -> u8 {
    if report.interrupted {
        EXIT_INTERRUPTED
    } else if report.succeeded() {
        0
    } else {
        1
    }
}

pub async fn up(ctx: &Context<'_>, stack: &str, args: &PlanArgs, yes: bool) -> Result<u8, CliError> {
    let settings = ctx.settings(stack, &args.config)?;
    let engine = ctx.engine(&settings)?;
    let program = ctx.program(&settings)?;
    let cancel = interrupt_handler(ctx);
    let (prepared, warnings) =
        engine.prepare(Operation::Up, Some(program.as_ref()), Some(settings.config.clone()), &run_options(ctx, &settings, args)).await?;
    register_plan_secrets(&prepared.plan);
    register_secrets(prepared.secret_strings());
    print_warnings(ctx, &warnings);
    let plan_doc = plan_json(&prepared.plan);
    if !args.json {
        ctx.printer.out(&format!("{} {}\n\n", ctx.printer.style.bold("Updating stack"), ctx.printer.style.bold(stack)));
        ctx.printer.out(&plan_text(&prepared.plan, render_options(ctx, args)));
    }
    if args.expect_no_changes && prepared.plan.has_changes() {
        if args.json {
            ctx.printer.json(&json!({"operation": "up", "plan": plan_doc, "result": null}));
        }
        return Err(expect_no_changes_error(&prepared.plan));
    }
    if !prepared.changes_anything() {
        if args.json {
            ctx.printer.json(&json!({"operation": "up", "plan": plan_doc, "result": null}));
        }
        return Ok(0);
    }
    if cancel.is_cancelled() {
        return Err(CliError::new("interrupted before any change was made").code(EXIT_INTERRUPTED));
    }
    if prepared.plan.has_changes()
        && let Err(e) = confirm(ctx, yes, "\nDo you want to perform these changes?", stack, "up")
    {
        if args.json {
            ctx.printer.json(&json!({"operation": "up", "plan": plan_doc, "result": null}));
        }
        return Err(e);
    }
    let report = execute(ctx, &engine, prepared, args.parallel, args.json, cancel).await?;
    if args.json {
        ctx.printer.json(&json!({"operation": "up", "plan": plan_doc, "result": apply_json(&report)}));
    } else {
        ctx.printer.out(&format!("\n{}", apply_summary(&report, ctx.printer.style)));
        print_outputs_changed(ctx, &report);
    }
    Ok(exit_code(&report))
}

fn print_outputs_changed(ctx: &Context, report: &ApplyReport) {
    if report.outputs.is_empty() {
        return;
    }
    let mut text = format!("\n{}\n", ctx.printer.style.bold("Outputs:"));
    for (k, v) in &report.outputs {
        text.push_str(&format!("  {k}: {}\n", v.display_short()));
    }
    ctx.printer.out(&text);
}

pub async fn destroy(ctx: &Context<'_>, stack: &str, targets: &[String], parallel: u16, yes: bool, json: bool) -> Result<u8, CliError> {
    let settings = ctx.settings(stack, &[])?;
    let engine = ctx.engine(&settings)?;
    let cancel = interrupt_handler(ctx);
    let run = RunOptions {
        refresh: false,
        targets: targets.to_vec(),
        parallel: parallel as usize,
        references: None,
        project_dir: Some(ctx.project.root.clone()),
    };
    let (prepared, _) = engine.prepare(Operation::Destroy, None, None, &run).await?;
    register_plan_secrets(&prepared.plan);
    let plan_doc = plan_json(&prepared.plan);
    if !json {
        ctx.printer.out(&format!("{} {}\n\n", ctx.printer.style.bold("Destroying stack"), ctx.printer.style.bold(stack)));
        ctx.printer.out(&plan_text(&prepared.plan, RenderOptions { style: ctx.printer.style, diff: false, show_same: false }));
    }
    if !prepared.changes_anything() {
        if json {
            ctx.printer.json(&json!({"operation": "destroy", "plan": plan_doc, "result": null}));
        }
        return Ok(0);
    }
    if prepared.plan.has_changes() {
        confirm(
            ctx,
            yes,
            &format!("\nDo you really want to destroy every resource of stack `{stack}`? There is no undo."),
            stack,
            "destroy",
        )?;
    }
    let report = execute(ctx, &engine, prepared, parallel, json, cancel).await?;
    if json {
        ctx.printer.json(&json!({"operation": "destroy", "plan": plan_doc, "result": apply_json(&report)}));
    } else {
        ctx.printer.out(&format!("\n{}", apply_summary(&report, ctx.printer.style)));
    }
    Ok(exit_code(&report))
}

pub async fn refresh(
    ctx: &Context<'_>,
    stack: &str,
    parallel: u16,
    yes: bool,
    json: bool,
    expect_no_changes: bool,
    detailed_exitcode: bool,
) -> Result<u8, CliError> {
    let settings = ctx.settings(stack, &[])?;
    let engine = ctx.engine(&settings)?;
    let run = RunOptions {
        refresh: true,
        targets: Vec::new(),
        parallel: parallel as usize,
        references: None,
        project_dir: Some(ctx.project.root.clone()),
    };
    let (prepared, _) = engine.prepare(Operation::Refresh, None, None, &run).await?;
    register_plan_secrets(&prepared.plan);
    let drift = prepared.plan.drift.clone();
    if json {
        ctx.printer.json(&json!({"operation": "refresh", "stack": stack, "changes": !drift.is_empty(), "drift": drift_json(&drift)}));
    } else if drift.is_empty() {
        ctx.printer.out(&format!("Refreshed stack {stack}: nothing changed outside berth.\n"));
    } else {
        ctx.printer.out(&drift_text(&drift, ctx.printer.style));
    }
    if expect_no_changes && !drift.is_empty() {
        return Err(CliError::new(format!("--expect-no-changes: {} resource(s) changed outside berth", drift.len())));
    }
    if prepared.changes_anything() {
        if !drift.is_empty() {
            confirm(ctx, yes, "\nRecord these changes in state?", stack, "refresh")?;
        }
        let cancel = CancellationToken::new();
        execute(ctx, &engine, prepared, parallel, json, cancel).await?;
        if !json {
            ctx.printer.out("State updated.\n");
        }
    }
    Ok(if detailed_exitcode && !drift.is_empty() { EXIT_CHANGES } else { 0 })
}

pub async fn output(ctx: &Context<'_>, stack: &str, name: Option<&str>, json: bool, show_secrets: bool) -> Result<u8, CliError> {
    let settings = ctx.settings(stack, &[])?;
    let engine = ctx.engine(&settings)?;
    let (state, exists) = engine.read_state().await?;
    if !exists {
        return Err(CliError::new(format!("stack `{stack}` has no state yet")).help(format!("run `berth stack up {stack}` first")));
    }
    register_secrets(state.secret_strings());
    let render = |v: &berth_engine::Value| if show_secrets { v.to_json_revealed() } else { v.to_json_masked() };
    let print = |text: &str| if show_secrets { ctx.printer.out_revealed(text) } else { ctx.printer.out(text) };
    match name {
        Some(name) => {
            let value = state.outputs.get(name).ok_or_else(|| {
                CliError::new(format!("stack `{stack}` has no output `{name}`"))
                    .help(format!("outputs: {}", state.outputs.keys().cloned().collect::<Vec<_>>().join(", ")))
            })?;
            let shown = render(value);
            let text = match (&shown, json) {
                (serde_json::Value::String(s), false) => s.clone(),
                _ => serde_json::to_string_pretty(&shown).unwrap_or_default(),
            };
            print(&format!("{text}\n"));
        }
        None if json => {
            let doc: serde_json::Map<String, serde_json::Value> = state.outputs.iter().map(|(k, v)| (k.clone(), render(v))).collect();
            print(&format!("{}\n", serde_json::to_string_pretty(&doc).unwrap_or_default()));
        }
        None => {
            if state.outputs.is_empty() {
                ctx.printer.out(&format!("Stack `{stack}` has no outputs.\n"));
            }
            let width = state.outputs.keys().map(|k| k.len()).max().unwrap_or(0);
            for (k, v) in &state.outputs {
                let shown = match render(v) {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                print(&format!("{k:<width$}  {shown}\n"));
            }
        }
    }
    Ok(0)
}

pub async fn ls(ctx: &Context<'_>, json: bool) -> Result<u8, CliError> {
    let mut rows = Vec::new();
    for stack in ctx.project.stacks() {
        let state_path = ctx.project.state_dir().join(format!("{stack}.json"));
        let doc: Option<serde_json::Value> = std::fs::read(&state_path).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let resources =
            doc.as_ref().and_then(|d| d["resources"].as_array().map(|r| r.iter().filter(|r| r["custom"].as_bool() != Some(false)).count()));
        let last = doc.as_ref().and_then(|d| d.get("last_update")).filter(|v| !v.is_null());
        rows.push(json!({
            "stack": stack,
            "resources": resources,
            "last_update": last.and_then(|l| l["finished_at"].as_str()),
            "result": last.and_then(|l| l["result"].as_str()),
            "serial": doc.as_ref().and_then(|d| d["serial"].as_u64()),
        }));
    }
    if json {
        ctx.printer.json(&serde_json::Value::Array(rows));
        return Ok(0);
    }
    if rows.is_empty() {
        ctx.printer.out(&format!("No stacks in {}.\n", ctx.project.display(&ctx.project.stacks_dir())));
        return Ok(0);
    }
    let width = rows.iter().map(|r| r["stack"].as_str().unwrap_or_default().len()).max().unwrap_or(5).max(5);
    let mut text = format!("{:<width$}  {:>9}  {:<20}  {}\n", "STACK", "RESOURCES", "LAST UPDATE", "RESULT");
    for r in rows {
        text.push_str(&format!(
            "{:<width$}  {:>9}  {:<20}  {}\n",
            r["stack"].as_str().unwrap_or_default(),
            r["resources"].as_u64().map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
            r["last_update"].as_str().unwrap_or("never"),
            r["result"].as_str().unwrap_or("-"),
        ));
    }
    ctx.printer.out(&text);
    Ok(0)
}
