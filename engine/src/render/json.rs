//! Plans and results as JSON for CI: stable keys, secrets masked, unknowns marked.

use serde_json::{Value as Json, json};

use crate::apply::{ApplyReport, StepStatus};
use crate::diff::{DiffKind, FieldDiff, path_overlaps};
use crate::plan::{Drift, Plan, Step};

fn diff_json(diff: &FieldDiff, forces: bool) -> Json {
    json!({
        "path": diff.path.to_string(),
        "kind": match diff.kind { DiffKind::Add => "add", DiffKind::Delete => "delete", DiffKind::Update => "update" },
        "old": diff.old.as_ref().map(|v| v.to_json_masked()),
        "new": diff.new.as_ref().map(|v| v.to_json_masked()),
        "unknown": diff.new_is_unknown(),
        "secret": diff.old.as_ref().is_some_and(|v| v.contains_secret()) || diff.new.as_ref().is_some_and(|v| v.contains_secret()),
        "forces_replacement": forces,
    })
}

fn step_json(step: &Step) -> Json {
    json!({
        "op": step.op,
        "urn": step.urn,
        "type": step.ty,
        "name": step.name(),
        "parent": step.parent,
        "custom": step.custom,
        "id": step.old.as_ref().and_then(|o| o.id.clone()),
        "diffs": step.diffs.iter().map(|d| diff_json(d, step.replace_paths.iter().any(|p| path_overlaps(&d.path, p)))).collect::<Vec<_>>(),
        "replace_paths": step.replace_paths.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        "delete_before_replace": step.delete_before_replace,
        "renamed_from": step.renamed_from,
        "import_id": step.import_id,
        "retain": step.retain,
        "reason": step.reason,
        "state_only_changes": step.state_only_changes,
        "notes": step.notes,
    })
}

/// What refresh found.
pub fn drift_json(drift: &[Drift]) -> Json {
    Json::Array(
        drift
            .iter()
            .map(|d| {
                json!({
                    "urn": d.urn,
                    "type": d.ty,
                    "deleted": d.diffs.is_none(),
                    "diffs": d.diffs.as_ref().map(|ds| ds.iter().map(|x| diff_json(x, false)).collect::<Vec<_>>()).unwrap_or_default(),
                })
            })
            .collect(),
    )
}

/// A plan: `{"stack", "changes", "summary", "steps": [...], "drift", "outputs", ...}`.
pub fn plan_json(plan: &Plan) -> Json {
    json!({
        "stack": plan.stack,
        "changes": plan.has_changes(),
        "summary": plan.summary(),
        "steps": plan.steps.iter().map(step_json).collect::<Vec<_>>(),
        "drift": drift_json(&plan.drift),
        "reconciled": plan.reconciled.iter().map(|r| json!({"urn": r.urn, "message": r.message})).collect::<Vec<_>>(),
        "outputs": plan.outputs.iter().map(|(k, v)| (k.clone(), v.to_json_masked())).collect::<serde_json::Map<_, _>>(),
        "warnings": plan.warnings,
    })
}

/// What an apply did: `{"status", "steps": [{"urn", "op", "status", "error"}], ...}`.
pub fn apply_json(report: &ApplyReport) -> Json {
    let status = if report.interrupted {
        "interrupted"
    } else if report.succeeded() {
        "succeeded"
    } else {
        "failed"
    };
    json!({
        "status": status,
        "mutating_calls": report.mutating_calls,
        "duration_ms": report.elapsed.as_millis() as u64,
        "steps": report.outcomes.iter().map(|o| {
            let (state, message) = match &o.status {
                StepStatus::Succeeded => ("succeeded", None),
                StepStatus::Unchanged => ("unchanged", None),
                StepStatus::Failed(m) => ("failed", Some(m.clone())),
                StepStatus::Skipped(m) => ("skipped", Some(m.clone())),
                StepStatus::NotStarted => ("not_started", None),
            };
            json!({"urn": o.urn, "type": o.ty, "op": o.op, "status": state, "message": message, "duration_ms": o.duration.as_millis() as u64})
        }).collect::<Vec<_>>(),
        "outputs": report.outputs.iter().map(|(k, v)| (k.clone(), v.to_json_masked())).collect::<serde_json::Map<_, _>>(),
    })
}
