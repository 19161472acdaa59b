//! Planning: what must happen to make the live world match the program.
//!
//! The planner walks the desired graph in dependency order, resolves each resource's inputs with
//! what is known so far (outputs of resources not yet created are unknown), lets the provider
//! check and diff them against state, and produces one [`Step`] per resource, plus deletes (in
//! reverse dependency order) for what the program no longer declares.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use sha2::{Digest, Sha256};

use crate::diff::{FieldDiff, apply_ignore_changes, diff_values, path_overlaps};
use crate::graph::DesiredGraph;
use crate::output::{KnownOutputs, evaluate_output};
use crate::program::DesiredResource;
use crate::provider::CallContext;
use crate::registry::Providers;
use crate::state::{ResourceState, State};
use crate::urn::Urn;
use crate::value::{Path, Value};

/// What a step does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Same,
    Create,
    Update,
    Replace,
    Delete,
    Import,
}

impl Op {
    /// The symbol Terraform and Pulumi users read: `+`, `~`, `+-`, `-`, `=`.
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Same => " ",
            Op::Create => "+",
            Op::Update => "~",
            Op::Replace => "+-",
            Op::Delete => "-",
            Op::Import => "=",
        }
    }

    pub fn verb(self) -> &'static str {
        match self {
            Op::Same => "same",
            Op::Create => "create",
            Op::Update => "update",
            Op::Replace => "replace",
            Op::Delete => "delete",
            Op::Import => "import",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.verb())
    }
}

/// One resource's planned change.
#[derive(Clone, Debug)]
pub struct Step {
    pub op: Op,
    pub urn: Urn,
    pub ty: String,
    pub custom: bool,
    pub parent: Option<Urn>,
    /// The resource as recorded in state, if it is.
    pub old: Option<ResourceState>,
    /// Checked inputs (unknown where they depend on resources not yet applied).
    pub new_inputs: Option<Value>,
    /// Field changes (for an import: where the live resource differs from the program).
    pub diffs: Vec<FieldDiff>,
    /// The changed fields that force replacement.
    pub replace_paths: Vec<Path>,
    /// Replace by deleting first.
    pub delete_before_replace: bool,
    /// The resource's former URN when an alias matched.
    pub renamed_from: Option<Urn>,
    /// For imports: the id adopted.
    pub import_id: Option<String>,
    /// For deletes: only forget the resource (`retain_on_delete`).
    pub retain: bool,
    /// For deletes: an old incarnation left by a replacement.
    pub from_replaced: bool,
    /// Why, when it is not evident from the diffs (tainted, replaced by a rename of the type…).
    pub reason: Option<String>,
    /// What else changes in state without a provider call (protect, dependencies, parent).
    pub state_only_changes: Vec<String>,
    /// For updates: outputs the provider says the update changes (unknown until applied).
    pub unknown_outputs: Vec<Path>,
    /// What the provider wants the reader of the plan to know.
    pub notes: Vec<String>,
}

impl Step {
    pub fn name(&self) -> &str {
        self.urn.name()
    }

    /// True when the step needs the provider (or the state) to change.
    pub fn is_change(&self) -> bool {
        self.op != Op::Same
    }
}

/// A difference between state and the live resource, found by refresh.
#[derive(Clone, Debug)]
pub struct Drift {
    pub urn: Urn,
    pub ty: String,
    /// `None`: the resource no longer exists.
    pub diffs: Option<Vec<FieldDiff>>,
}

/// What happened to a pending operation of an interrupted run.
#[derive(Clone, Debug)]
pub struct Reconciled {
    pub urn: Urn,
    pub message: String,
}

/// The full plan of one operation.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub stack: String,
    pub steps: Vec<Step>,
    pub drift: Vec<Drift>,
    pub reconciled: Vec<Reconciled>,
    /// Stack outputs after the change (unknown where they depend on it).
    pub outputs: BTreeMap<String, Value>,
    pub old_outputs: BTreeMap<String, Value>,
    pub warnings: Vec<String>,
}

/// Counts per operation.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    pub import: usize,
    pub same: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Summary { create, update, replace, delete, import, same } = self;
        write!(f, "{create} to create, {update} to update, {replace} to replace, {delete} to delete, {import} to import, {same} unchanged")
    }
}

impl Plan {
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for step in self.steps.iter().filter(|s| s.custom || s.op == Op::Same) {
            match step.op {
                Op::Same => s.same += usize::from(step.custom),
                Op::Create => s.create += 1,
                Op::Update => s.update += 1,
                Op::Replace => s.replace += 1,
                Op::Delete => s.delete += 1,
                Op::Import => s.import += 1,
            }
        }
        s
    }

    /// Whether any resource changes (what `--expect-no-changes` and exit code 2 are about).
    pub fn has_changes(&self) -> bool {
        self.steps.iter().any(|s| s.custom && s.is_change())
    }

    /// Whether applying would write state, even without resource changes (components, renames,
    /// protect flags, outputs, refreshed values, reconciled operations).
    pub fn changes_state(&self) -> bool {
        self.steps.iter().any(|s| s.is_change() || s.renamed_from.is_some() || !s.state_only_changes.is_empty())
            || self.outputs.iter().any(|(k, v)| self.old_outputs.get(k).is_none_or(|old| !old.same_content(v)))
            || self.old_outputs.keys().any(|k| !self.outputs.contains_key(k))
            || !self.drift.is_empty()
            || !self.reconciled.is_empty()
    }

    pub fn step(&self, urn: &Urn) -> Option<&Step> {
        self.steps.iter().find(|s| &s.urn == urn)
    }
}

/// One thing wrong with a plan, with the resource it is about and what to do.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub urn: Option<Urn>,
    pub message: String,
    pub help: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.urn {
            Some(urn) => write!(f, "{} ({}): {}", urn.name(), urn.type_token(), self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Everything that stops a plan; found before any mutating call.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{}", self.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct PlanError {
    pub problems: Vec<Problem>,
}

impl PlanError {
    pub fn single(urn: Option<Urn>, message: impl Into<String>, help: Option<String>) -> PlanError {
        PlanError { problems: vec![Problem { urn, message: message.into(), help }] }
    }
}

/// What to plan.
#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// Limit the plan to these resources and everything that depends on them.
    pub targets: Vec<Urn>,
    /// Plan deleting every resource (`stack destroy`).
    pub destroy: bool,
}

/// The seed a provider chooses automatic names from: stable for a resource until it is replaced,
/// and different in every stack's state (its lineage), so two projects that happen to use the
/// same stack and resource names never pick the same physical names.
pub fn seed_for(lineage: &str, urn: &Urn, generation: u64) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"berth-seed\0");
    hasher.update(lineage.as_bytes());
    hasher.update([0]);
    hasher.update(urn.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(generation.to_be_bytes());
    hasher.finalize().into()
}

/// The call context for a resource.
pub(crate) fn context<'a>(stack: &'a str, urn: &'a Urn, ty: &'a str) -> CallContext<'a> {
    CallContext { urn, ty, name: urn.name(), stack, timeout: None }
}

fn dependencies_of(d: &DesiredResource) -> Vec<Urn> {
    d.dependencies.iter().cloned().collect()
}

/// What changes in state without a provider call.
fn state_only_changes(d: &DesiredResource, old: &ResourceState) -> Vec<String> {
    let mut changes = Vec::new();
    if d.options.protect != old.protect {
        changes.push(format!("protect: {} → {}", old.protect, d.options.protect));
    }
    if d.options.retain_on_delete != old.retain_on_delete {
        changes.push(format!("retain_on_delete: {} → {}", old.retain_on_delete, d.options.retain_on_delete));
    }
    if d.parent != old.parent {
        changes.push("parent".into());
    }
    if dependencies_of(d) != old.dependencies {
        changes.push("dependencies".into());
    }
    if d.options.custom_timeouts != old.custom_timeouts {
        changes.push("custom_timeouts".into());
    }
    changes
}

fn blank_step(op: Op, urn: Urn, ty: String, custom: bool, parent: Option<Urn>) -> Step {
    Step {
        op,
        urn,
        ty,
        custom,
        parent,
        old: None,
        new_inputs: None,
        diffs: Vec::new(),
        replace_paths: Vec::new(),
        delete_before_replace: false,
        renamed_from: None,
        import_id: None,
        retain: false,
        from_replaced: false,
        reason: None,
        state_only_changes: Vec::new(),
        unknown_outputs: Vec::new(),
        notes: Vec::new(),
    }
}

/// Finds a resource in `state` by URN or, failing that, by one of its aliases.
fn find_old<'s>(
    state_index: &HashMap<&Urn, &'s ResourceState>,
    d: &DesiredResource,
    consumed: &HashSet<Urn>,
) -> Option<(&'s ResourceState, Option<Urn>)> {
    if let Some(r) = state_index.get(&d.urn) {
        return Some((r, None));
    }
    d.aliases.iter().find_map(|alias| state_index.get(alias).filter(|_| !consumed.contains(alias)).map(|r| (*r, Some(alias.clone()))))
}

/// Plans one operation. `graph` is `None` for destroy.
pub async fn plan(graph: Option<&DesiredGraph>, state: &State, providers: &Providers, options: &PlanOptions) -> Result<Plan, PlanError> {
    let mut problems: Vec<Problem> = Vec::new();
    let stack = state.stack.as_str();
    let state_index: HashMap<&Urn, &ResourceState> = state.resources.iter().map(|r| (&r.urn, r)).collect();
    let targeted = resolve_targets(graph, state, &options.targets)?;
    let is_targeted = |urn: &Urn| targeted.as_ref().is_none_or(|t| t.contains(urn));

    let mut steps: Vec<Step> = Vec::new();
    let mut known = KnownOutputs::new();
    // Resources in state matched by a desired resource (by URN or alias).
    let mut consumed: HashSet<Urn> = HashSet::new();
    // Desired resources skipped because not targeted and not in state.
    let mut absent: HashSet<Urn> = HashSet::new();

    let desired: &[DesiredResource] = match (graph, options.destroy) {
        (Some(g), false) => g.resources(),
        _ => &[],
    };
    for d in desired {
        let found = find_old(&state_index, d, &consumed);
        if let Some((old, _)) = &found {
            consumed.insert(old.urn.clone());
        }
        if !is_targeted(&d.urn) {
            match found {
                Some((old, _)) => {
                    known.insert(d.urn.clone(), old.id.clone(), old.outputs.clone());
                    let mut step = blank_step(Op::Same, d.urn.clone(), d.ty.clone(), d.custom, d.parent.clone());
                    step.old = Some(old.clone());
                    step.new_inputs = Some(old.inputs.clone());
                    step.reason = Some("not targeted".into());
                    steps.push(step);
                }
                None => {
                    absent.insert(d.urn.clone());
                }
            }
            continue;
        }
        if let Some(missing) = d.dependencies.iter().find(|dep| absent.contains(*dep)) {
            problems.push(Problem {
                urn: Some(d.urn.clone()),
                message: format!("depends on {missing}, which does not exist yet and is not targeted"),
                help: Some(format!("add --target {missing}")),
            });
            continue;
        }
        match plan_desired(stack, &state.lineage, d, found, &known, providers).await {
            Ok(step) => {
                match step.op {
                    Op::Same => {
                        let old = step.old.as_ref().expect("a same step has a recorded resource");
                        known.insert(d.urn.clone(), old.id.clone(), old.outputs.clone());
                    }
                    Op::Update => {
                        let old = step.old.as_ref().expect("an update step has a recorded resource");
                        known.insert(d.urn.clone(), old.id.clone(), old.outputs.clone());
                        known.mark_unknown(&d.urn, &step.unknown_outputs);
                    }
                    _ => known.forget(&d.urn),
                }
                steps.push(step);
            }
            Err(mut found_problems) => problems.append(&mut found_problems),
        }
    }

    // Deletes, last to first so dependents go before what they depend on.
    for old in state.resources.iter().rev() {
        if consumed.contains(&old.urn) {
            continue;
        }
        if !is_targeted(&old.urn) {
            continue;
        }
        if old.protect {
            problems.push(Problem {
                urn: Some(old.urn.clone()),
                message: "is protected and cannot be deleted".into(),
                help: Some(format!("to delete it, first remove `protect` from it in the program and run `berth stack up`, or forget it with `berth state delete {} '{}'`", stack, old.urn)),
            });
            continue;
        }
        let mut step = blank_step(Op::Delete, old.urn.clone(), old.ty.clone(), old.custom, old.parent.clone());
        step.retain = old.retain_on_delete;
        step.old = Some(old.clone());
        steps.push(step);
    }
    for old in state.replaced.iter().rev() {
        let mut step = blank_step(Op::Delete, old.urn.clone(), old.ty.clone(), old.custom, old.parent.clone());
        step.from_replaced = true;
        step.reason = Some("old incarnation left by an interrupted replacement".into());
        step.old = Some(old.clone());
        steps.push(step);
    }

    if !problems.is_empty() {
        return Err(PlanError { problems });
    }

    let mut outputs = BTreeMap::new();
    if let (Some(g), false) = (graph, options.destroy) {
        for export in g.exports() {
            match evaluate_output(&export.value, &known) {
                Ok(v) => {
                    outputs.insert(export.name.clone(), v);
                }
                Err(e) => problems.push(Problem { urn: None, message: format!("stack output `{}`: {e}", export.name), help: None }),
            }
        }
    }
    if !problems.is_empty() {
        return Err(PlanError { problems });
    }
    Ok(Plan {
        stack: stack.to_string(),
        steps,
        drift: Vec::new(),
        reconciled: Vec::new(),
        outputs,
        old_outputs: state.outputs.clone(),
        warnings: Vec::new(),
    })
}

/// The set of targeted URNs (targets and their dependents), or `None` for everything.
fn resolve_targets(graph: Option<&DesiredGraph>, state: &State, targets: &[Urn]) -> Result<Option<BTreeSet<Urn>>, PlanError> {
    if targets.is_empty() {
        return Ok(None);
    }
    let mut problems = Vec::new();
    let mut roots = BTreeSet::new();
    for target in targets {
        let in_graph = graph.is_some_and(|g| g.get(target).is_some());
        let in_state = state.get(target).is_some();
        if !in_graph && !in_state {
            problems.push(Problem {
                urn: None,
                message: format!("--target {target}: no such resource in the program or the state"),
                help: Some("list URNs with `berth state list <stack>`".into()),
            });
        }
        roots.insert(target.clone());
    }
    if !problems.is_empty() {
        return Err(PlanError { problems });
    }
    let mut set = match graph {
        Some(g) => g.with_dependents(&roots),
        None => BTreeSet::new(),
    };
    // Resources only in state: their dependents are known from state.
    let mut frontier: Vec<Urn> = roots.into_iter().collect();
    while let Some(urn) = frontier.pop() {
        if set.insert(urn.clone()) || state.get(&urn).is_some() {
            for r in &state.resources {
                if r.dependencies.contains(&urn) && !set.contains(&r.urn) {
                    frontier.push(r.urn.clone());
                }
            }
        }
    }
    Ok(Some(set))
}

fn problem(urn: &Urn, message: impl Into<String>) -> Vec<Problem> {
    vec![Problem { urn: Some(urn.clone()), message: message.into(), help: None }]
}

/// Plans one desired resource against its recorded state.
async fn plan_desired(
    stack: &str,
    lineage: &str,
    d: &DesiredResource,
    found: Option<(&ResourceState, Option<Urn>)>,
    known: &KnownOutputs,
    providers: &Providers,
) -> Result<Step, Vec<Problem>> {
    let (old, renamed_from) = match found {
        Some((old, renamed)) => (Some(old), renamed),
        None => (None, None),
    };
    let mut step = blank_step(Op::Same, d.urn.clone(), d.ty.clone(), d.custom, d.parent.clone());
    step.old = old.cloned();
    step.renamed_from = renamed_from;
    if let Some(old) = old {
        step.state_only_changes = state_only_changes(d, old);
    }
    if !d.custom {
        step.op = if old.is_some() { Op::Same } else { Op::Create };
        step.new_inputs = Some(Value::Object(Default::default()));
        return Ok(step);
    }
    if old.is_some_and(|o| o.ty != d.ty) {
        return Err(problem(&d.urn, "the recorded resource has another type; aliases cannot change a resource's type"));
    }
    let mut inputs = d.inputs.resolve(known).map_err(|e| problem(&d.urn, e.0))?;
    if let Some(old) = old.filter(|o| !o.tainted) {
        apply_ignore_changes(&old.inputs, &mut inputs, &d.ignore_changes);
    }
    let provider = providers.for_type(&d.ty).map_err(|e| problem(&d.urn, e.to_string()))?;
    let ctx = context(stack, &d.urn, &d.ty);
    let generation = old.map(|o| o.generation).unwrap_or(0);
    let check = |generation: u64| {
        let provider = provider.clone();
        let inputs = &inputs;
        async move {
            provider.check(ctx, inputs, &seed_for(lineage, &d.urn, generation)).await.map_err(|failures| {
                failures
                    .into_iter()
                    .map(|f| Problem { urn: Some(d.urn.clone()), message: format!("invalid input {f}"), help: None })
                    .collect::<Vec<_>>()
            })
        }
    };
    let crate::provider::Checked { inputs: checked, notes } = check(generation).await?;
    step.notes = notes;

    let Some(old) = old else {
        if let Some(id) = &d.options.import {
            return plan_import(stack, d, step, checked, id, providers).await;
        }
        step.op = Op::Create;
        step.new_inputs = Some(checked);
        return Ok(step);
    };
    let id = old.id.clone().unwrap_or_default();
    if old.tainted {
        step.op = Op::Replace;
        step.reason = Some("tainted: its creation did not finish".into());
        step.diffs = diff_values(&old.inputs, &checked);
        step.delete_before_replace = d.options.delete_before_replace;
    } else {
        let response =
            provider.diff(ctx, &id, &old.inputs, &old.outputs, &checked).await.map_err(|e| problem(&d.urn, format!("diff failed: {e}")))?;
        let mut replace_paths = response.replace_paths.clone();
        for change in &response.changes {
            if d.replace_on_changes.iter().any(|p| path_overlaps(&change.path, p)) && !replace_paths.contains(&change.path) {
                replace_paths.push(change.path.clone());
            }
        }
        step.diffs = response.changes;
        step.state_only_changes.extend(response.recorded);
        step.op = if step.diffs.is_empty() {
            Op::Same
        } else if replace_paths.is_empty() {
            Op::Update
        } else {
            Op::Replace
        };
        step.replace_paths = replace_paths;
        step.delete_before_replace = response.delete_before_replace || d.options.delete_before_replace;
        step.unknown_outputs = response.unknown_outputs;
    }
    if step.op == Op::Replace {
        if d.options.protect || old.protect {
            return Err(vec![Problem {
                urn: Some(d.urn.clone()),
                message: format!(
                    "is protected, and this change replaces it ({})",
                    step.replace_paths.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
                ),
                help: Some("remove `protect` from the resource in the program, run `berth stack up`, then make the change".into()),
            }]);
        }
        // A replacement gets a new generation, so automatic names differ from the old ones;
        // asked again with those, the provider can tell whether old and new can coexist.
        let renewed = check(generation + 1).await?.inputs;
        if old.tainted {
            // No diff to ask: a tainted resource whose fixed physical name stays the same cannot
            // be created beside itself.
            if let Some(name) = provider.fixed_name(&d.ty) {
                let kept = renewed.get_path(&name).is_some_and(|n| !n.is_null() && Some(&n) == old.inputs.get_path(&name).as_ref());
                step.delete_before_replace |= kept;
            }
        } else {
            let response = provider
                .diff(ctx, &id, &old.inputs, &old.outputs, &renewed)
                .await
                .map_err(|e| problem(&d.urn, format!("diff failed: {e}")))?;
            step.delete_before_replace = response.delete_before_replace || d.options.delete_before_replace;
            step.diffs = response.changes;
        }
        step.new_inputs = Some(renewed);
    } else {
        step.new_inputs = Some(checked);
    }
    Ok(step)
}

/// Plans adopting an existing resource (`Options::import`).
async fn plan_import(
    stack: &str,
    d: &DesiredResource,
    mut step: Step,
    checked: Value,
    id: &str,
    providers: &Providers,
) -> Result<Step, Vec<Problem>> {
    let provider = providers.for_type(&d.ty).map_err(|e| problem(&d.urn, e.to_string()))?;
    let ctx = context(stack, &d.urn, &d.ty);
    let observed = provider.read(ctx, id, None, None).await.map_err(|e| problem(&d.urn, format!("import of `{id}` failed: {e}")))?;
    let Some(observed) = observed else {
        return Err(vec![Problem {
            urn: Some(d.urn.clone()),
            message: format!("cannot import `{id}`: no such {} exists", d.ty),
            help: Some("check the id, or remove the `import` option to create the resource".into()),
        }]);
    };
    let response = provider
        .diff(ctx, &observed.id, &observed.inputs, &observed.outputs, &checked)
        .await
        .map_err(|e| problem(&d.urn, format!("diff failed: {e}")))?;
    if response.needs_replace() {
        return Err(vec![Problem {
            urn: Some(d.urn.clone()),
            message: format!(
                "importing `{id}` would replace it, because these fields differ from the program: {}",
                response.replace_paths.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
            ),
            help: Some("make the program match the live resource for those fields".into()),
        }]);
    }
    step.op = Op::Import;
    step.import_id = Some(observed.id.clone());
    step.diffs = response.changes;
    step.state_only_changes.extend(response.recorded);
    step.old = Some(ResourceState {
        urn: d.urn.clone(),
        ty: d.ty.clone(),
        custom: true,
        id: Some(observed.id),
        parent: d.parent.clone(),
        inputs: observed.inputs,
        outputs: observed.outputs,
        dependencies: dependencies_of(d),
        protect: d.options.protect,
        retain_on_delete: d.options.retain_on_delete,
        custom_timeouts: d.options.custom_timeouts,
        tainted: false,
        generation: 0,
        created_at: String::new(),
        updated_at: String::new(),
    });
    step.new_inputs = Some(checked);
    Ok(step)
}
