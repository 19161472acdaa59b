//! Running one node: resolve inputs with what its dependencies produced, journal the pending
//! operation, call the provider, journal the result.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::apply::Shared;
use crate::apply::order::{Node, Phase};
use crate::diff::apply_ignore_changes;
use crate::plan::{Op, Step, seed_for};
use crate::provider::{CallContext, ErrorKind, ProviderError};
use crate::state::{JournalEntry, PendingKind, ResourceState, now_rfc3339};
use crate::value::Value;

/// What a node did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Done {
    /// The planned change (or a state-only change) was made.
    Changed,
    /// Nothing needed doing.
    Unchanged,
    /// Planned unchanged, but an output it reads changed during this run: it was updated.
    UpdatedUnplanned,
}

/// What `apply_update` did.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Updated {
    Called,
    StateOnly,
    Nothing,
}

impl From<Updated> for Done {
    fn from(u: Updated) -> Done {
        if u == Updated::Nothing { Done::Unchanged } else { Done::Changed }
    }
}

/// Runs a node.
pub(crate) async fn run(shared: &Shared, node: &Node) -> Result<Done, String> {
    let step = &shared.steps[node.step];
    match (node.phase, step.op) {
        (Phase::DeleteOld, _) => {
            let old = step.old.as_ref().ok_or("a replacement has no recorded resource")?;
            delete(shared, step, old, !step.delete_before_replace).await
        }
        (Phase::Main, Op::Same) => same(shared, step).await,
        (Phase::Main, Op::Create) => create(shared, step, 0, None).await,
        (Phase::Main, Op::Replace) => {
            let old = step.old.as_ref().ok_or("a replacement has no recorded resource")?;
            create(shared, step, old.generation + 1, Some(old)).await
        }
        (Phase::Main, Op::Update) => update(shared, step).await,
        (Phase::Main, Op::Import) => import(shared, step).await,
        (Phase::Main, Op::Delete) => {
            let old = step.old.as_ref().ok_or("a delete has no recorded resource")?;
            delete(shared, step, old, step.from_replaced).await
        }
    }
}

fn ctx<'a>(shared: &'a Shared, step: &'a Step, timeout: Option<Duration>) -> CallContext<'a> {
    CallContext { urn: &step.urn, ty: &step.ty, name: step.urn.name(), stack: &shared.stack, timeout }
}

/// Runs a provider call under the resource's custom timeout, if it has one.
async fn within<T>(
    timeout: Option<Duration>,
    what: &str,
    call: impl Future<Output = Result<T, ProviderError>>,
) -> Result<T, ProviderError> {
    match timeout {
        None => call.await,
        Some(limit) => match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            Err(_) => Err(ProviderError::timeout(format!(
                "{what} did not finish within {} (custom_timeouts); it may still complete: the next run checks",
                humantime::format_duration(limit)
            ))),
        },
    }
}

fn describe(e: &ProviderError, op: &str, stack: &str, step: &Step) -> String {
    match &e.kind {
        ErrorKind::AlreadyExists { id } => {
            format!("{op} failed: {e}; it exists outside this stack. Bring it under berth with: {}", import_command(stack, step, id))
        }
        _ => format!("{op} failed: {e}"),
    }
}

/// The exact `berth stack import` command that adopts `id` as this step's resource.
pub(crate) fn import_command(stack: &str, step: &Step, id: &str) -> String {
    let parent = step.parent.as_ref().map(|p| format!(" --parent '{p}'")).unwrap_or_default();
    format!("berth stack import {stack} {} {} '{id}'{parent}", step.ty, step.urn.name())
}

/// The resource's record as the program now declares it (options, parent, dependencies).
fn declared(shared: &Shared, step: &Step, base: &ResourceState) -> ResourceState {
    let mut r = base.clone();
    r.urn = step.urn.clone();
    r.parent = step.parent.clone();
    if let Some(d) = shared.desired.get(&step.urn) {
        r.dependencies = d.dependencies.iter().cloned().collect();
        r.protect = d.options.protect;
        r.retain_on_delete = d.options.retain_on_delete;
        r.custom_timeouts = d.options.custom_timeouts;
    }
    r
}

/// Resolves and checks the inputs now that every dependency has finished.
async fn final_inputs(shared: &Shared, step: &Step, generation: u64, old: Option<&ResourceState>) -> Result<Value, String> {
    let d = shared.desired.get(&step.urn).ok_or("the program does not declare this resource")?;
    let mut inputs = {
        let known = shared.known.lock().map_err(|_| "outputs lock poisoned")?;
        d.inputs.resolve(&*known).map_err(|e| e.0)?
    };
    if let Some(old) = old {
        apply_ignore_changes(&old.inputs, &mut inputs, &d.ignore_changes);
    }
    if inputs.contains_unknown() {
        return Err("an input is still unknown after its dependencies finished (a dependency produced no value)".into());
    }
    let provider = shared.providers.for_type(&step.ty).map_err(|e| e.to_string())?;
    provider
        .check(ctx(shared, step, None), &inputs, &seed_for(&shared.lineage, &step.urn, generation))
        .await
        .map(|checked| checked.inputs)
        .map_err(|failures| format!("invalid input {}", failures.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("; ")))
}

async fn same(shared: &Shared, step: &Step) -> Result<Done, String> {
    let Some(old) = &step.old else { return Ok(Done::Unchanged) };
    if step.reason.as_deref() == Some("not targeted") {
        return Ok(Done::Unchanged);
    }
    // Planned unchanged, but it reads outputs of something that changed in this run: with the
    // real values now known it may differ after all (a provider need not predict every output).
    let reads_changed = shared.desired.get(&step.urn).is_some_and(|d| {
        step.custom
            && d.inputs.has_references()
            && d.inputs.dependencies().iter().any(|dep| shared.steps.iter().any(|s| &s.urn == dep && s.op != Op::Same))
    });
    if reads_changed {
        if let Some(from) = &step.renamed_from {
            shared.record(JournalEntry::Renamed { from: from.clone(), to: step.urn.clone() }, false).await?;
        }
        return Ok(match apply_update(shared, step, old).await? {
            Updated::Called => Done::UpdatedUnplanned,
            other => other.into(),
        });
    }
    if let Some(from) = &step.renamed_from {
        shared.record(JournalEntry::Renamed { from: from.clone(), to: step.urn.clone() }, false).await?;
    }
    if step.renamed_from.is_some() || !step.state_only_changes.is_empty() {
        let mut r = declared(shared, step, old);
        // The provider found no difference: the program's inputs are what is live (this also
        // records write-only values the provider could not read back).
        if let Some(inputs) = step.new_inputs.as_ref().filter(|i| step.custom && !i.contains_unknown()) {
            r.inputs = inputs.clone();
        }
        shared.record(JournalEntry::Done { kind: PendingKind::Update, resource: r }, false).await?;
        return Ok(Done::Changed);
    }
    Ok(Done::Unchanged)
}

fn fresh_record(shared: &Shared, step: &Step, inputs: Value, generation: u64) -> ResourceState {
    let now = now_rfc3339();
    let base = ResourceState {
        urn: step.urn.clone(),
        ty: step.ty.clone(),
        custom: step.custom,
        id: None,
        parent: step.parent.clone(),
        inputs,
        outputs: Value::Object(Default::default()),
        dependencies: Vec::new(),
        protect: false,
        retain_on_delete: false,
        custom_timeouts: Default::default(),
        tainted: false,
        generation,
        created_at: now.clone(),
        updated_at: now,
    };
    declared(shared, step, &base)
}

async fn create(shared: &Shared, step: &Step, generation: u64, replacing: Option<&ResourceState>) -> Result<Done, String> {
    if !step.custom {
        let r = fresh_record(shared, step, Value::Object(Default::default()), 0);
        shared.record(JournalEntry::Done { kind: PendingKind::Create, resource: r }, false).await?;
        if let Ok(mut known) = shared.known.lock() {
            known.insert(step.urn.clone(), None, Value::Object(Default::default()));
        }
        return Ok(Done::Changed);
    }
    let inputs = final_inputs(shared, step, generation, None).await?;
    let provider = shared.providers.for_type(&step.ty).map_err(|e| e.to_string())?;
    let mut record = fresh_record(shared, step, inputs, generation);
    let create_before_delete = replacing.is_some() && !step.delete_before_replace;
    if let (Some(old), true) = (replacing, create_before_delete) {
        shared.record(JournalEntry::MovedToReplaced { resource: old.clone() }, false).await?;
    }
    shared.record(JournalEntry::Begin { kind: PendingKind::Create, resource: record.clone(), started_at: now_rfc3339() }, true).await?;
    shared.mutating_calls.fetch_add(1, Ordering::SeqCst);
    let timeout = record.custom_timeouts.create;
    let result = within(timeout, "create", provider.create(ctx(shared, step, timeout), &record.inputs)).await;
    match result {
        Ok(created) => {
            record.id = Some(created.id.clone());
            record.outputs = created.outputs.clone();
            shared.record(JournalEntry::Done { kind: PendingKind::Create, resource: record }, false).await?;
            if let Ok(mut known) = shared.known.lock() {
                known.insert(step.urn.clone(), Some(created.id), created.outputs);
            }
            Ok(Done::Changed)
        }
        Err(e) => {
            if let Some(partial) = &e.partial {
                record.id = Some(partial.id.clone());
                record.outputs = partial.outputs.clone();
                record.tainted = true;
                shared.record(JournalEntry::Done { kind: PendingKind::Create, resource: record }, false).await?;
            } else {
                let keep_pending = e.kind == ErrorKind::Timeout;
                shared
                    .record(
                        JournalEntry::Failed { kind: PendingKind::Create, urn: step.urn.clone(), message: e.to_string(), keep_pending },
                        false,
                    )
                    .await?;
                if let (Some(old), true, false) = (replacing, create_before_delete, keep_pending) {
                    shared.record(JournalEntry::Restored { resource: old.clone() }, false).await?;
                }
            }
            Err(describe(&e, "create", &shared.stack, step))
        }
    }
}

async fn update(shared: &Shared, step: &Step) -> Result<Done, String> {
    let old = step.old.as_ref().ok_or("an update has no recorded resource")?;
    apply_update(shared, step, old).await.map(Done::from)
}

async fn apply_update(shared: &Shared, step: &Step, old: &ResourceState) -> Result<Updated, String> {
    let inputs = final_inputs(shared, step, old.generation, Some(old)).await?;
    let provider = shared.providers.for_type(&step.ty).map_err(|e| e.to_string())?;
    let id = old.id.clone().unwrap_or_default();
    let diff = provider
        .diff(ctx(shared, step, None), &id, &old.inputs, &old.outputs, &inputs)
        .await
        .map_err(|e| describe(&e, "diff", &shared.stack, step))?;
    let replace_on = shared.desired.get(&step.urn).map(|d| d.replace_on_changes.clone()).unwrap_or_default();
    let forced: Vec<String> = diff
        .changes
        .iter()
        .filter(|c| diff.replace_paths.contains(&c.path) || replace_on.iter().any(|p| crate::diff::path_overlaps(&c.path, p)))
        .map(|c| c.path.to_string())
        .collect();
    if !forced.is_empty() {
        return Err(format!(
            "planned as an update, but with the values now known it needs replacement ({}); run the command again to plan that",
            forced.join(", ")
        ));
    }
    let mut record = declared(shared, step, old);
    if !diff.has_changes() {
        let metadata_changed = record != *old;
        if metadata_changed {
            shared.record(JournalEntry::Done { kind: PendingKind::Update, resource: record }, false).await?;
        }
        return Ok(if metadata_changed { Updated::StateOnly } else { Updated::Nothing });
    }
    record.inputs = inputs;
    record.updated_at = now_rfc3339();
    shared.record(JournalEntry::Begin { kind: PendingKind::Update, resource: record.clone(), started_at: now_rfc3339() }, true).await?;
    shared.mutating_calls.fetch_add(1, Ordering::SeqCst);
    let timeout = record.custom_timeouts.update;
    match within(timeout, "update", provider.update(ctx(shared, step, timeout), &id, &old.inputs, &old.outputs, &record.inputs)).await {
        Ok(outputs) => {
            record.outputs = outputs.clone();
            shared.record(JournalEntry::Done { kind: PendingKind::Update, resource: record }, false).await?;
            if let Ok(mut known) = shared.known.lock() {
                known.insert(step.urn.clone(), old.id.clone(), outputs);
            }
            Ok(Updated::Called)
        }
        Err(e) => {
            let keep_pending = e.kind == ErrorKind::Timeout;
            shared
                .record(
                    JournalEntry::Failed { kind: PendingKind::Update, urn: step.urn.clone(), message: e.to_string(), keep_pending },
                    false,
                )
                .await?;
            Err(describe(&e, "update", &shared.stack, step))
        }
    }
}

async fn import(shared: &Shared, step: &Step) -> Result<Done, String> {
    let observed = step.old.as_ref().ok_or("an import has no observed resource")?;
    let now = now_rfc3339();
    let mut record = declared(shared, step, observed);
    record.created_at = now.clone();
    record.updated_at = now;
    shared.record(JournalEntry::Done { kind: PendingKind::Create, resource: record.clone() }, true).await?;
    if let Ok(mut known) = shared.known.lock() {
        known.insert(step.urn.clone(), record.id.clone(), record.outputs.clone());
    }
    if !step.diffs.is_empty() {
        apply_update(shared, step, &record).await?;
    }
    Ok(Done::Changed)
}

async fn delete(shared: &Shared, step: &Step, old: &ResourceState, from_replaced: bool) -> Result<Done, String> {
    let removed = JournalEntry::Removed { kind: PendingKind::Delete, urn: old.urn.clone(), id: old.id.clone(), from_replaced };
    if !old.custom || step.retain || old.id.is_none() {
        shared.record(removed, false).await?;
        return Ok(Done::Changed);
    }
    let provider = shared.providers.for_type(&old.ty).map_err(|e| e.to_string())?;
    shared.record(JournalEntry::Begin { kind: PendingKind::Delete, resource: old.clone(), started_at: now_rfc3339() }, true).await?;
    shared.mutating_calls.fetch_add(1, Ordering::SeqCst);
    let timeout = old.custom_timeouts.delete;
    let id = old.id.as_deref().unwrap_or_default();
    match within(timeout, "delete", provider.delete(ctx(shared, step, timeout), id, &old.inputs, &old.outputs)).await {
        Ok(()) => {
            shared.record(removed, false).await?;
            Ok(Done::Changed)
        }
        Err(e) if e.kind == ErrorKind::NotFound => {
            // Already gone: the goal is met.
            shared.record(removed, false).await?;
            Ok(Done::Changed)
        }
        Err(e) => {
            let keep_pending = e.kind == ErrorKind::Timeout;
            shared
                .record(
                    JournalEntry::Failed { kind: PendingKind::Delete, urn: old.urn.clone(), message: e.to_string(), keep_pending },
                    false,
                )
                .await?;
            Err(describe(&e, "delete", &shared.stack, step))
        }
    }
}
