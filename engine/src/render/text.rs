//! Plans and results as text.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use std::time::Duration;

use crate::apply::{ApplyReport, StepStatus};
use crate::diff::{DiffKind, FieldDiff};
use crate::plan::{Drift, Op, Plan, Step};
use crate::render::{RenderOptions, Style};
use crate::urn::Urn;
use crate::value::{UNKNOWN_TEXT, Value};

const DIFF_VALUE_LIMIT: usize = 400;

fn value_text(value: &Value, limit: usize) -> String {
    let text = match value {
        Value::Secret(_) => return crate::value::SECRET_MASK.into(),
        Value::Unknown => return UNKNOWN_TEXT.into(),
        other => serde_json::to_string(&other.to_json_masked()).unwrap_or_default(),
    };
    if text.chars().count() > limit { format!("{}…", text.chars().take(limit).collect::<String>()) } else { text }
}

/// One field change: `~ zone: "z1" => "z2" (forces replacement)`.
fn diff_line(out: &mut String, diff: &FieldDiff, forces: bool, indent: &str, style: Style) {
    let (symbol, op) = match diff.kind {
        DiffKind::Add => ("+", Op::Create),
        DiffKind::Delete => ("-", Op::Delete),
        DiffKind::Update => ("~", Op::Update),
    };
    let detail = match (&diff.old, &diff.new) {
        (Some(old), Some(new)) => format!("{} => {}", value_text(old, DIFF_VALUE_LIMIT), value_text(new, DIFF_VALUE_LIMIT)),
        (None, Some(new)) => value_text(new, DIFF_VALUE_LIMIT),
        (Some(old), None) => value_text(old, DIFF_VALUE_LIMIT),
        (None, None) => String::new(),
    };
    let forces = if forces { style.red(" (forces replacement)") } else { String::new() };
    let _ = writeln!(out, "{indent}{} {}: {detail}{forces}", style.op(op, symbol), diff.path);
}

fn diff_summary(step: &Step) -> String {
    if step.diffs.is_empty() {
        return String::new();
    }
    let mut fields: Vec<String> = step
        .diffs
        .iter()
        .map(|d| {
            let symbol = match d.kind {
                DiffKind::Add => "+",
                DiffKind::Delete => "-",
                DiffKind::Update => "~",
            };
            format!("{symbol}{}", d.path.first_key().map(str::to_string).unwrap_or_else(|| d.path.to_string()))
        })
        .collect();
    fields.dedup();
    if fields.len() > 6 {
        let rest = fields.len() - 6;
        fields.truncate(6);
        fields.push(format!("+{rest} more"));
    }
    format!("[diff: {}]", fields.join(" "))
}

/// Notes that many steps share (the same caveat for every resource of a provider) print once
/// under the tree instead of on every line.
fn shared_notes(plan: &Plan) -> Vec<(String, usize)> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for step in &plan.steps {
        for note in &step.notes {
            *counts.entry(note.as_str()).or_default() += 1;
        }
    }
    let mut shared: Vec<(String, usize)> = counts.into_iter().filter(|(_, n)| *n >= 3).map(|(note, n)| (note.to_string(), n)).collect();
    shared.sort();
    shared
}

fn step_info(step: &Step, shared: &[(String, usize)]) -> String {
    let mut info = Vec::new();
    let diffs = diff_summary(step);
    if !diffs.is_empty() {
        info.push(diffs);
    }
    if step.op == Op::Replace {
        info.push(if step.delete_before_replace { "delete before create".into() } else { "create before delete".into() });
    }
    if let Some(from) = &step.renamed_from {
        info.push(format!("renamed from {}", from.name()));
    }
    if step.retain {
        info.push("retain: forget without deleting".into());
    }
    if let Some(id) = &step.import_id {
        info.push(format!("id {id}"));
    }
    if let Some(reason) = &step.reason
        && reason != "not targeted"
    {
        info.push(reason.clone());
    }
    info.extend(step.notes.iter().filter(|n| !shared.iter().any(|(s, _)| s == *n)).cloned());
    if !step.state_only_changes.is_empty() && step.op == Op::Same {
        info.push(format!("state only: {}", step.state_only_changes.join(", ")));
    }
    info.join("; ")
}

fn plan_label(step: &Step) -> &'static str {
    match step.op {
        Op::Same if step.renamed_from.is_some() || !step.state_only_changes.is_empty() => "state",
        op => op.verb(),
    }
}

/// Components stay visible (as context) when a child changes.
fn is_shown_row(step: &Step, show_same: bool) -> bool {
    !step.custom || is_shown(step, show_same)
}

fn is_shown(step: &Step, show_same: bool) -> bool {
    show_same || step.is_change() || step.renamed_from.is_some() || !step.state_only_changes.is_empty()
}

/// The plan as a tree of resources under their components, with a summary, outputs and (with
/// `diff`) every field change.
pub fn plan_text(plan: &Plan, options: RenderOptions) -> String {
    let style = options.style;
    let shared = shared_notes(plan);
    let mut out = String::new();
    if !plan.reconciled.is_empty() {
        let _ = writeln!(out, "{}", style.bold("Settled from an interrupted run:"));
        for note in &plan.reconciled {
            let _ = writeln!(out, "  {} {}: {}", note.urn.type_token(), note.urn.name(), note.message);
        }
        out.push('\n');
    }
    if !plan.drift.is_empty() {
        out.push_str(&drift_text(&plan.drift, style));
        out.push('\n');
    }

    // Which steps to show: changes, and the components above them.
    let by_urn: HashMap<&Urn, &Step> = plan
        .steps
        .iter()
        .filter(|s| s.op != Op::Delete || !plan.steps.iter().any(|o| o.urn == s.urn && o.op != Op::Delete))
        .map(|s| (&s.urn, s))
        .collect();
    let mut shown: HashSet<&Urn> = HashSet::new();
    for step in plan.steps.iter().filter(|s| is_shown(s, options.show_same)) {
        shown.insert(&step.urn);
        let mut parent = step.parent.as_ref();
        while let Some(p) = parent {
            if !shown.insert(p) {
                break;
            }
            parent = by_urn.get(p).and_then(|s| s.parent.as_ref());
        }
    }
    // Children under their shown parent, in plan order.
    let mut children: HashMap<Option<&Urn>, Vec<&Step>> = HashMap::new();
    for step in plan.steps.iter().filter(|s| shown.contains(&s.urn) && is_shown_row(s, options.show_same)) {
        let parent = step.parent.as_ref().filter(|p| shown.contains(p) && by_urn.contains_key(p));
        children.entry(parent).or_default().push(step);
    }
    let rows = {
        let mut rows: Vec<(String, &Step)> = Vec::new();
        fn walk<'a>(
            parent: Option<&'a Urn>,
            prefix: &str,
            children: &HashMap<Option<&'a Urn>, Vec<&'a Step>>,
            rows: &mut Vec<(String, &'a Step)>,
        ) {
            let Some(list) = children.get(&parent) else { return };
            for (i, step) in list.iter().enumerate() {
                let last = i + 1 == list.len();
                let branch = if parent.is_none() {
                    String::new()
                } else if last {
                    format!("{prefix}└─ ")
                } else {
                    format!("{prefix}├─ ")
                };
                rows.push((branch, step));
                let next_prefix = if parent.is_none() {
                    String::new()
                } else if last {
                    format!("{prefix}   ")
                } else {
                    format!("{prefix}│  ")
                };
                if step.op != Op::Delete || !step.custom {
                    walk(Some(&step.urn), &next_prefix, children, rows);
                }
            }
        }
        walk(None, "", &children, &mut rows);
        rows
    };

    if rows.is_empty() {
        let _ = writeln!(out, "No changes. The stack matches the program ({} resources).", plan.summary().same);
    } else {
        let type_width = rows.iter().map(|(b, s)| b.chars().count() + s.ty.len()).max().unwrap_or(4).clamp(4, 60);
        let name_width = rows.iter().map(|(_, s)| s.name().chars().count()).max().unwrap_or(4).clamp(4, 48);
        let _ = writeln!(out, "     {:<type_width$}  {:<name_width$}  {:<8}  Info", "Type", "Name", "Plan");
        for (branch, step) in &rows {
            let symbol = format!("{:<2}", step.op.symbol());
            let ty = format!("{branch}{}", step.ty);
            let pad = type_width.saturating_sub(ty.chars().count());
            let line = format!(
                " {}  {ty}{}  {:<name_width$}  {:<8}  {}",
                style.op(step.op, &symbol),
                " ".repeat(pad),
                step.name(),
                style.op(step.op, plan_label(step)),
                step_info(step, &shared)
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }

    if options.diff {
        let detailed: Vec<&Step> = plan.steps.iter().filter(|s| s.custom && s.is_change()).collect();
        if !detailed.is_empty() {
            out.push('\n');
            let _ = writeln!(out, "{}", style.bold("Details:"));
        }
        for step in detailed {
            let _ = writeln!(
                out,
                "  {} {} {} {}",
                style.op(step.op, step.op.symbol()),
                step.ty,
                style.bold(step.name()),
                style.dim(&format!("({})", step.urn))
            );
            match step.op {
                Op::Create | Op::Import if step.diffs.is_empty() => {
                    if let Some(inputs) = step.new_inputs.as_ref().and_then(|v| v.as_object()) {
                        for (key, value) in inputs {
                            let _ = writeln!(out, "      {} {key}: {}", style.op(Op::Create, "+"), value_text(value, DIFF_VALUE_LIMIT));
                        }
                    }
                }
                Op::Delete => {
                    if let Some(id) = step.old.as_ref().and_then(|o| o.id.as_deref()) {
                        let _ = writeln!(out, "      id: {id}");
                    }
                }
                _ => {
                    for diff in &step.diffs {
                        let forces = step.replace_paths.iter().any(|p| crate::diff::path_overlaps(&diff.path, p));
                        diff_line(&mut out, diff, forces && step.op == Op::Replace, "      ", style);
                    }
                }
            }
        }
    }

    let output_changes: Vec<(&String, Option<&Value>, Option<&Value>)> = {
        let mut keys: Vec<&String> = plan.outputs.keys().chain(plan.old_outputs.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .map(|k| (k, plan.old_outputs.get(k), plan.outputs.get(k)))
            .filter(|(_, old, new)| match (old, new) {
                (Some(a), Some(b)) => !a.same_content(b),
                _ => true,
            })
            .collect()
    };
    if !output_changes.is_empty() {
        out.push('\n');
        let _ = writeln!(out, "{}", style.bold("Outputs:"));
        for (key, old, new) in output_changes {
            match (old, new) {
                (None, Some(new)) => {
                    let _ = writeln!(out, "  {} {key}: {}", style.op(Op::Create, "+"), value_text(new, 120));
                }
                (Some(old), None) => {
                    let _ = writeln!(out, "  {} {key}: {}", style.op(Op::Delete, "-"), value_text(old, 120));
                }
                (Some(old), Some(new)) => {
                    let _ = writeln!(out, "  {} {key}: {} => {}", style.op(Op::Update, "~"), value_text(old, 120), value_text(new, 120));
                }
                (None, None) => {}
            }
        }
    }
    let s = plan.summary();
    out.push('\n');
    let mut parts = Vec::new();
    for (n, what, op) in [
        (s.create, "to create", Op::Create),
        (s.update, "to update", Op::Update),
        (s.replace, "to replace", Op::Replace),
        (s.delete, "to delete", Op::Delete),
        (s.import, "to import", Op::Import),
    ] {
        if n > 0 {
            parts.push(style.op(op, &format!("{n} {what}")));
        }
    }
    parts.push(format!("{} unchanged", s.same));
    let _ = writeln!(out, "{} {}", style.bold("Resources:"), parts.join(", "));
    for warning in &plan.warnings {
        let _ = writeln!(out, "{} {warning}", style.yellow("warning:"));
    }
    for (note, count) in &shared {
        let _ = writeln!(out, "{} {note} ({count} resources)", style.bold("note:"));
    }
    out
}

/// What refresh found changed outside berth.
pub fn drift_text(drift: &[Drift], style: Style) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", style.bold("Changed outside berth (found by refresh):"));
    for d in drift {
        match &d.diffs {
            None => {
                let _ = writeln!(out, "  {} {} {}: deleted outside berth", style.op(Op::Delete, "-"), d.ty, style.bold(d.urn.name()));
            }
            Some(diffs) => {
                let _ = writeln!(out, "  {} {} {}", style.op(Op::Update, "~"), d.ty, style.bold(d.urn.name()));
                for diff in diffs {
                    diff_line(&mut out, diff, false, "      ", style);
                }
            }
        }
    }
    out
}

fn seconds(d: Duration) -> String {
    if d.as_secs() >= 60 { format!("{}m{}s", d.as_secs() / 60, d.as_secs() % 60) } else { format!("{:.1}s", d.as_secs_f64()) }
}

/// One progress line: `+  aws:s3:Bucket  assets  created (1.2s)`.
pub fn step_line(step: &Step, status: Option<&StepStatus>, elapsed: Duration, style: Style) -> String {
    let (past, present) = match step.op {
        Op::Create => ("created", "creating"),
        Op::Update => ("updated", "updating"),
        Op::Replace => ("replaced", "replacing"),
        Op::Delete if step.retain => ("forgotten", "forgetting"),
        Op::Delete => ("deleted", "deleting"),
        Op::Import => ("imported", "importing"),
        Op::Same => ("unchanged", "checking"),
    };
    let what = match status {
        None => format!("{present}…"),
        Some(StepStatus::Succeeded) => format!("{past} ({})", seconds(elapsed)),
        Some(StepStatus::Unchanged) => "unchanged".into(),
        Some(StepStatus::Failed(message)) => style.red(&format!("{} failed: {message}", step.op)),
        Some(StepStatus::Skipped(reason)) => style.yellow(&format!("skipped: {reason}")),
        Some(StepStatus::NotStarted) => "not started".into(),
    };
    let symbol = match status {
        Some(StepStatus::Failed(_)) => style.red("x "),
        Some(StepStatus::Skipped(_)) => style.yellow("! "),
        _ => style.op(step.op, &format!("{:<2}", step.op.symbol())),
    };
    format!("{symbol} {} {}  {what}", step.ty, style.bold(step.name()))
}

/// The closing summary of an apply: counts, failures with their reasons, duration.
pub fn apply_summary(report: &ApplyReport, style: Style) -> String {
    let mut out = String::new();
    let mut counts: HashMap<(Op, &'static str), usize> = HashMap::new();
    for o in report.outcomes.iter().filter(|o| o.custom) {
        let key = match &o.status {
            StepStatus::Succeeded => (o.op, "done"),
            StepStatus::Unchanged => (Op::Same, "done"),
            StepStatus::Failed(_) => (o.op, "failed"),
            StepStatus::Skipped(_) => (o.op, "skipped"),
            StepStatus::NotStarted => (o.op, "not started"),
        };
        *counts.entry(key).or_default() += 1;
    }
    let done = |op| counts.get(&(op, "done")).copied().unwrap_or(0);
    let sum = |what| counts.iter().filter(|((_, w), _)| *w == what).map(|(_, n)| n).sum::<usize>();
    let mut parts = Vec::new();
    for (op, word) in
        [(Op::Create, "created"), (Op::Update, "updated"), (Op::Replace, "replaced"), (Op::Delete, "deleted"), (Op::Import, "imported")]
    {
        if done(op) > 0 {
            parts.push(style.op(op, &format!("{} {word}", done(op))));
        }
    }
    parts.push(format!("{} unchanged", done(Op::Same)));
    let (failed, skipped, not_started) = (sum("failed"), sum("skipped"), sum("not started"));
    if failed > 0 {
        parts.push(style.red(&format!("{failed} failed")));
    }
    if skipped > 0 {
        parts.push(style.yellow(&format!("{skipped} skipped")));
    }
    if not_started > 0 {
        parts.push(format!("{not_started} not started"));
    }
    let _ = writeln!(out, "{} {}", style.bold("Resources:"), parts.join(", "));
    let _ = writeln!(out, "{} {}", style.bold("Duration:"), seconds(report.elapsed));
    let failures: Vec<_> = report.outcomes.iter().filter(|o| matches!(o.status, StepStatus::Failed(_) | StepStatus::Skipped(_))).collect();
    if !failures.is_empty() {
        out.push('\n');
        let _ = writeln!(out, "{}", style.red("Failures:"));
        for o in failures {
            let why = match &o.status {
                StepStatus::Failed(m) => m.clone(),
                StepStatus::Skipped(m) => format!("skipped: {m}"),
                _ => String::new(),
            };
            let _ = writeln!(out, "  {} {}: {why}", o.ty, style.bold(o.urn.name()));
            let _ = writeln!(out, "    {}", style.dim(o.urn.as_str()));
        }
    }
    if report.interrupted {
        out.push('\n');
        let _ = writeln!(
            out,
            "{}",
            style.yellow("Interrupted: in-flight operations finished and state was saved; run the command again to continue.")
        );
    }
    out
}
