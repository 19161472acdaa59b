//! Applying a plan: a DAG executor on tokio.
//!
//! Each step becomes one node (a replacement two: create the new, delete the old). A node starts
//! the moment the nodes it depends on have finished, with at most `parallel` provider calls at
//! once. When a node fails, everything that depends on it is skipped and everything else goes
//! on. On cancellation (the first Ctrl-C) no new node starts; the ones in flight finish.

mod order;
mod step;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::graph::DesiredGraph;
use crate::output::{KnownOutputs, evaluate_output};
use crate::plan::{Op, Plan, Step};
use crate::program::{DesiredResource, Export};
use crate::registry::Providers;
use crate::state::{Journal, JournalEntry, State};
use crate::value::Value;

pub use order::Phase;

/// How one step ended.
#[derive(Clone, Debug, PartialEq)]
pub enum StepStatus {
    /// The provider (or, for components and renames, the state) was changed.
    Succeeded,
    /// Nothing to do.
    Unchanged,
    Failed(String),
    /// Not attempted because something it depends on failed.
    Skipped(String),
    /// Not attempted because the run was interrupted.
    NotStarted,
}

/// The outcome of one step.
#[derive(Clone, Debug)]
pub struct StepOutcome {
    pub urn: crate::urn::Urn,
    pub ty: String,
    pub op: Op,
    pub custom: bool,
    pub status: StepStatus,
    pub duration: Duration,
}

/// What an apply did.
#[derive(Clone, Debug, Default)]
pub struct ApplyReport {
    /// One per plan step, in plan order.
    pub outcomes: Vec<StepOutcome>,
    pub interrupted: bool,
    /// Provider create/update/delete calls made.
    pub mutating_calls: usize,
    pub outputs: BTreeMap<String, Value>,
    pub elapsed: Duration,
}

impl ApplyReport {
    pub fn failures(&self) -> impl Iterator<Item = &StepOutcome> {
        self.outcomes.iter().filter(|o| matches!(o.status, StepStatus::Failed(_)))
    }

    pub fn succeeded(&self) -> bool {
        !self.interrupted && self.failures().next().is_none()
    }
}

/// Watches an apply as it runs (the CLI's progress display).
pub trait ApplyObserver: Send + Sync {
    fn step_started(&self, _step: &Step, _phase: Phase) {}
    fn step_finished(&self, _step: &Step, _phase: Phase, _status: &StepStatus, _elapsed: Duration) {}
    /// The first interrupt arrived: `in_flight` calls are being allowed to finish.
    fn interrupting(&self, _in_flight: usize) {}
}

/// An observer that ignores everything.
pub struct Silent;
impl ApplyObserver for Silent {}

/// How to apply.
#[derive(Clone)]
pub struct ApplyOptions {
    /// Most provider calls in flight at once.
    pub parallel: usize,
    /// Cancelled on the first interrupt.
    pub cancel: CancellationToken,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions { parallel: DEFAULT_PARALLEL, cancel: CancellationToken::new() }
    }
}

/// Provider calls are I/O-bound: many can wait on APIs at once without loading the machine.
pub const DEFAULT_PARALLEL: usize = 16;

/// What every node shares.
pub(crate) struct Shared {
    pub stack: String,
    /// The state's lineage, which seeds automatic names.
    pub lineage: String,
    pub steps: Vec<Step>,
    pub desired: HashMap<crate::urn::Urn, DesiredResource>,
    pub providers: Arc<Providers>,
    pub journal: Journal,
    pub state: Mutex<State>,
    pub known: Mutex<KnownOutputs>,
    pub mutating_calls: AtomicUsize,
    pub observer: Arc<dyn ApplyObserver>,
}

impl Shared {
    /// Journals `entry` (waiting for the disk when `durable`) and applies it to memory.
    pub async fn record(&self, entry: JournalEntry, durable: bool) -> Result<(), String> {
        let written = if durable { self.journal.record(&entry).await } else { self.journal.record_later(&entry) };
        written.map_err(|e| format!("cannot write the journal: {e}"))?;
        if let Ok(mut state) = self.state.lock() {
            state.apply_entry(&entry);
        }
        Ok(())
    }
}

/// Applies `plan` to `state`, journaling to `journal`. Returns the state as it now is (the
/// caller saves it) and what happened.
pub async fn apply(
    plan: &Plan,
    graph: Option<&DesiredGraph>,
    state: State,
    journal: Journal,
    providers: Arc<Providers>,
    options: &ApplyOptions,
    observer: Arc<dyn ApplyObserver>,
) -> (State, ApplyReport) {
    let started = Instant::now();
    let mut known = KnownOutputs::new();
    for r in &state.resources {
        let replaced = plan.step(&r.urn).is_some_and(|s| matches!(s.op, Op::Replace | Op::Create | Op::Delete));
        if !replaced {
            known.insert(r.urn.clone(), r.id.clone(), r.outputs.clone());
        }
    }
    let desired: HashMap<_, _> = graph.map(|g| g.resources().iter().map(|d| (d.urn.clone(), d.clone())).collect()).unwrap_or_default();
    let exports: Vec<Export> = graph.map(|g| g.exports().to_vec()).unwrap_or_default();
    let nodes = order::build(&plan.steps, &desired);
    let shared = Arc::new(Shared {
        stack: plan.stack.clone(),
        lineage: state.lineage.clone(),
        steps: plan.steps.clone(),
        desired,
        providers,
        journal,
        state: Mutex::new(state),
        known: Mutex::new(known),
        mutating_calls: AtomicUsize::new(0),
        observer,
    });

    let mut status: Vec<Option<StepStatus>> = vec![None; nodes.len()];
    let mut durations: Vec<Duration> = vec![Duration::ZERO; nodes.len()];
    let mut remaining: Vec<usize> = nodes.iter().map(|n| n.deps.len()).collect();
    let mut ready: VecDeque<usize> = (0..nodes.len()).filter(|&i| remaining[i] == 0).collect();
    let mut running: JoinSet<(usize, Result<step::Done, String>, Duration)> = JoinSet::new();
    let mut unplanned_updates: Vec<usize> = Vec::new();
    let mut in_flight_calls = 0usize;
    let mut interrupted = false;
    let parallel = options.parallel.max(1);

    loop {
        // Start every ready node the limit allows (nodes that make no provider call do not count).
        while let Some(pos) =
            ready.iter().position(|&i| !interrupted && (!nodes[i].calls_provider(&shared.steps) || in_flight_calls < parallel))
        {
            let Some(i) = ready.remove(pos) else { break };
            let node = nodes[i].clone();
            if node.calls_provider(&shared.steps) {
                in_flight_calls += 1;
            }
            let shared = shared.clone();
            running.spawn(async move {
                let began = Instant::now();
                let step = &shared.steps[node.step];
                shared.observer.step_started(step, node.phase);
                let result = step::run(&shared, &node).await;
                (i, result, began.elapsed())
            });
        }
        if running.is_empty() {
            break;
        }
        let joined = tokio::select! {
            joined = running.join_next() => joined,
            _ = options.cancel.cancelled(), if !interrupted => {
                interrupted = true;
                shared.observer.interrupting(running.len());
                continue;
            }
        };
        let Some(joined) = joined else { break };
        let (i, result, elapsed) = match joined {
            Ok(done) => done,
            Err(e) => {
                // A node panicked: a bug. Find which by elimination is not possible here, so
                // stop scheduling and report it.
                tracing::error!("an apply task failed: {e}");
                interrupted = true;
                continue;
            }
        };
        if nodes[i].calls_provider(&shared.steps) {
            in_flight_calls -= 1;
        }
        durations[i] = elapsed;
        let planned = &shared.steps[nodes[i].step];
        let updated_instead;
        let step = if matches!(result, Ok(step::Done::UpdatedUnplanned)) {
            unplanned_updates.push(nodes[i].step);
            updated_instead = Step { op: Op::Update, reason: Some("an output it reads changed during this run".into()), ..planned.clone() };
            &updated_instead
        } else {
            planned
        };
        let outcome = match result {
            Ok(step::Done::Changed) | Ok(step::Done::UpdatedUnplanned) => StepStatus::Succeeded,
            Ok(step::Done::Unchanged) => StepStatus::Unchanged,
            Err(message) => StepStatus::Failed(message),
        };
        shared.observer.step_finished(step, nodes[i].phase, &outcome, elapsed);
        let failed = matches!(outcome, StepStatus::Failed(_));
        status[i] = Some(outcome);
        if failed {
            let reason = format!("{} of {} failed", step.op, step.urn.name());
            for skipped in order::transitive_dependents(&nodes, i) {
                if status[skipped].is_none() {
                    status[skipped] = Some(StepStatus::Skipped(reason.clone()));
                    shared.observer.step_finished(
                        &shared.steps[nodes[skipped].step],
                        nodes[skipped].phase,
                        status[skipped].as_ref().expect("just set"),
                        Duration::ZERO,
                    );
                }
            }
        }
        for &d in &nodes[i].dependents {
            remaining[d] -= 1;
            if remaining[d] == 0 && status[d].is_none() {
                ready.push_back(d);
            }
        }
    }

    // Stack outputs: what is known now; an output whose inputs failed keeps its old value.
    let mut outputs = BTreeMap::new();
    {
        let known = shared.known.lock().map(|k| k.clone()).unwrap_or_default();
        let old_outputs = shared.state.lock().map(|s| s.outputs.clone()).unwrap_or_default();
        for export in &exports {
            match evaluate_output(&export.value, &known) {
                Ok(v) if !v.contains_unknown() => {
                    outputs.insert(export.name.clone(), v);
                }
                _ => {
                    if let Some(old) = old_outputs.get(&export.name) {
                        outputs.insert(export.name.clone(), old.clone());
                    }
                }
            }
        }
        let changed = outputs != old_outputs;
        if changed && graph.is_some() || (graph.is_none() && !old_outputs.is_empty()) {
            let _ = shared.record(JournalEntry::Outputs { outputs: outputs.clone() }, false).await;
        }
    }

    let mut report = ApplyReport {
        interrupted,
        mutating_calls: shared.mutating_calls.load(Ordering::SeqCst),
        outputs,
        elapsed: started.elapsed(),
        outcomes: Vec::new(),
    };
    // One outcome per step: a replacement's two nodes fold into one (the worse of the two).
    let mut per_step: Vec<Option<(StepStatus, Duration)>> = vec![None; shared.steps.len()];
    for (i, node) in nodes.iter().enumerate() {
        let s = status[i].clone().unwrap_or(StepStatus::NotStarted);
        let slot = &mut per_step[node.step];
        *slot = Some(match slot.take() {
            None => (s, durations[i]),
            Some((prev, d)) => (order::worse(prev, s), d + durations[i]),
        });
    }
    for (index, (step, outcome)) in shared.steps.iter().zip(per_step).enumerate() {
        let (status, duration) = outcome.unwrap_or((StepStatus::Unchanged, Duration::ZERO));
        let op = if unplanned_updates.contains(&index) { Op::Update } else { step.op };
        report.outcomes.push(StepOutcome { urn: step.urn.clone(), ty: step.ty.clone(), op, custom: step.custom, status, duration });
    }
    let shared = match Arc::try_unwrap(shared) {
        Ok(shared) => shared,
        Err(_) => unreachable!("every task has finished"),
    };
    shared.journal.close();
    let state = shared.state.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    (state, report)
}
