//! The operations the command line offers, as a library: preview, up, destroy, refresh.
//!
//! Each mutating operation runs in two halves so a caller can show the plan and ask before
//! anything changes: [`Engine::prepare`] (lock, load, settle an interrupted run, run the program,
//! refresh, plan) and [`Engine::execute`] (journal, apply, save).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::apply::{ApplyObserver, ApplyOptions, ApplyReport, apply};
use crate::config::{ConfigError, ConfigWarning, Node};
use crate::crypto::{CryptoError, Keyring};
use crate::graph::{DesiredGraph, GraphError};
use crate::plan::{Drift, Plan, PlanError, PlanOptions, Problem, Reconciled, plan};
use crate::program::{Program, ReferenceError, RegistrationError, Stack};
use crate::references::{MissingStacks, References};
use crate::refresh::{RefreshError, reconcile, refresh};
use crate::registry::Providers;
use crate::state::{
    Backend, Journal, JournalEntry, LockGuard, LockInfo, State, StateCodec, StateError, UpdateInfo, load, now_rfc3339, save,
};
use crate::urn::Urn;

/// Why an operation could not run. Every variant says what and where; none leaves state lost.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the stack program failed: {0}")]
    Program(String),
    #[error(transparent)]
    Registration(#[from] RegistrationError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Refresh(Box<RefreshError>),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// A request that cannot be carried out as asked (the message says why and what to do).
    #[error("{0}")]
    Refused(String),
}

impl From<RefreshError> for OpError {
    fn from(e: RefreshError) -> Self {
        OpError::Refresh(Box::new(e))
    }
}

/// Which operation to prepare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Up,
    Destroy,
    Refresh,
}

impl Operation {
    pub fn command(self) -> &'static str {
        match self {
            Operation::Up => "berth stack up",
            Operation::Destroy => "berth stack destroy",
            Operation::Refresh => "berth stack refresh",
        }
    }
}

/// Options shared by preview and the mutating operations.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Read every resource back before planning.
    pub refresh: bool,
    /// URNs or unique logical names; the plan covers them and their dependents.
    pub targets: Vec<String>,
    /// Most provider calls at once (reads during refresh, mutations during apply).
    pub parallel: usize,
    /// Reads other stacks' outputs (`Stack::reference`).
    pub references: Option<References>,
    /// The project directory programs read files from (default: the working directory).
    pub project_dir: Option<std::path::PathBuf>,
}

/// A stack's program, run: the desired graph and anything worth warning about.
pub struct ProgramRun {
    pub graph: DesiredGraph,
    pub warnings: Vec<ConfigWarning>,
    /// Notes for the plan (references to stacks with no state yet).
    pub notes: Vec<String>,
}

/// Runs a stack program and checks its graph. No provider is called.
pub fn run_program(
    program: &dyn Program,
    stack: &str,
    config: Option<Node>,
    run: &RunOptions,
    missing: MissingStacks,
) -> Result<ProgramRun, OpError> {
    let references = run.references.as_ref();
    let mut context = match config {
        Some(node) => Stack::with_config(stack, node),
        None => Stack::new(stack),
    };
    if let Some(dir) = &run.project_dir {
        context = context.with_project_dir(dir.clone());
    }
    if let Some(r) = references {
        context = context.with_references(r.resolver.clone(), missing);
    }
    program.run(&mut context).map_err(|e| match e.downcast::<ConfigError>() {
        Ok(config) => OpError::Config(*config),
        Err(e) => match e.downcast::<RegistrationError>() {
            Ok(registration) => OpError::Registration(*registration),
            Err(e) => match e.downcast::<ReferenceError>() {
                Ok(reference) => OpError::Reference(*reference),
                Err(e) => OpError::Program(e.to_string()),
            },
        },
    })?;
    let warnings = context.config_warnings().to_vec();
    let notes = context.notes().to_vec();
    Ok(ProgramRun { graph: context.into_graph()?, warnings, notes })
}

/// A prepared operation: planned, locked, ready to execute.
pub struct Prepared {
    pub operation: Operation,
    pub plan: Plan,
    graph: Option<DesiredGraph>,
    state: State,
    state_entries: Vec<JournalEntry>,
    _lock: Box<dyn LockGuard>,
    started_at: String,
}

impl Prepared {
    /// Whether executing would change anything (resources or state).
    pub fn changes_anything(&self) -> bool {
        self.plan.changes_state() || !self.state_entries.is_empty()
    }

    /// Every secret string the operation knows (to scrub from output).
    pub fn secret_strings(&self) -> Vec<String> {
        self.state.secret_strings()
    }
}

/// The result of executing a prepared operation.
pub struct Executed {
    pub report: ApplyReport,
    pub state: State,
}

/// One stack's backend, providers and keys.
pub struct Engine {
    pub stack: String,
    pub backend: Arc<dyn Backend>,
    pub providers: Arc<Providers>,
    pub keyring: Arc<Keyring>,
}

/// Finds what a `--target` names: a URN, or a logical name unique in program and state.
fn resolve_targets(texts: &[String], graph: Option<&DesiredGraph>, state: &State) -> Result<Vec<Urn>, OpError> {
    let mut urns = Vec::new();
    for text in texts {
        if let Ok(urn) = Urn::parse(text) {
            urns.push(urn);
            continue;
        }
        let mut matches: BTreeSet<Urn> = state.resources.iter().filter(|r| r.urn.name() == text).map(|r| r.urn.clone()).collect();
        if let Some(g) = graph {
            matches.extend(g.resources().iter().filter(|r| r.urn.name() == text).map(|r| r.urn.clone()));
        }
        match matches.len() {
            1 => urns.extend(matches),
            0 => {
                return Err(PlanError::single(
                    None,
                    format!("--target `{text}`: no resource has that URN or name"),
                    Some("list URNs with `berth state list <stack>`".into()),
                )
                .into());
            }
            _ => {
                return Err(PlanError {
                    problems: vec![Problem {
                        urn: None,
                        message: format!(
                            "--target `{text}` is ambiguous: {}",
                            matches.iter().map(|u| u.to_string()).collect::<Vec<_>>().join(", ")
                        ),
                        help: Some("pass the full URN".into()),
                    }],
                }
                .into());
            }
        }
    }
    Ok(urns)
}

impl Engine {
    /// Loads state and settles pending operations of an interrupted run in memory.
    async fn load_settled(&self) -> Result<(State, bool, Vec<JournalEntry>, Vec<Reconciled>), OpError> {
        let loaded = load(self.backend.as_ref(), &self.stack, &self.keyring).await?;
        let mut state = loaded.state;
        let (entries, notes) = if state.pending.is_empty() { (Vec::new(), Vec::new()) } else { reconcile(&state, &self.providers).await? };
        for entry in &entries {
            state.apply_entry(entry);
        }
        // A replayed journal must be folded into a snapshot even if nothing else changes.
        tracing::info!(
            "stack `{}`: state serial {}, {} resources{}{}",
            self.stack,
            state.serial,
            state.resources.len(),
            if loaded.replayed > 0 { format!(", {} journal entries replayed", loaded.replayed) } else { String::new() },
            if notes.is_empty() { String::new() } else { format!(", {} interrupted operations reconciled", notes.len()) },
        );
        let mut to_write = entries;
        if loaded.replayed > 0 && to_write.is_empty() {
            to_write.push(JournalEntry::Outputs { outputs: state.outputs.clone() });
        }
        Ok((state, loaded.exists, to_write, notes))
    }

    async fn refreshed(&self, state: &mut State, run: &RunOptions, targets: &[Urn]) -> Result<(Vec<JournalEntry>, Vec<Drift>), OpError> {
        if !run.refresh {
            return Ok((Vec::new(), Vec::new()));
        }
        let only: Option<BTreeSet<Urn>> = if targets.is_empty() { None } else { Some(targets.iter().cloned().collect()) };
        let (entries, drift) = refresh(state, &self.providers, only.as_ref(), run.parallel).await?;
        for entry in &entries {
            state.apply_entry(entry);
        }
        Ok((entries, drift))
    }

    /// Plans without changing anything or taking the lock (`stack preview`).
    pub async fn preview(
        &self,
        program: &dyn Program,
        config: Option<Node>,
        run: &RunOptions,
    ) -> Result<(Plan, Vec<ConfigWarning>), OpError> {
        let (plan, _, warnings) = self.preview_with_dependencies(program, config, run).await?;
        Ok((plan, warnings))
    }

    /// [`preview`](Self::preview), with each desired resource's dependencies (output references,
    /// `depends_on`, a component's children): what `stack render` orders manifests by.
    pub async fn preview_with_dependencies(
        &self,
        program: &dyn Program,
        config: Option<Node>,
        run: &RunOptions,
    ) -> Result<(Plan, BTreeMap<Urn, BTreeSet<Urn>>, Vec<ConfigWarning>), OpError> {
        let program_run = run_program(program, &self.stack, config, run, MissingStacks::Unknown)?;
        let dependencies = program_run.graph.resources().iter().map(|r| (r.urn.clone(), r.dependencies.clone())).collect();
        let (mut state, _, _, reconciled) = self.load_settled().await?;
        let targets = resolve_targets(&run.targets, Some(&program_run.graph), &state)?;
        let (_, drift) = self.refreshed(&mut state, run, &targets).await?;
        let mut planned = plan(Some(&program_run.graph), &state, &self.providers, &PlanOptions { targets, destroy: false }).await?;
        planned.drift = drift;
        planned.reconciled = reconciled;
        tracing::info!("stack `{}`: planned {}", self.stack, planned.summary());
        planned.warnings.extend(program_run.notes);
        Ok((planned, dependencies, program_run.warnings))
    }

    /// Locks the stack and plans `operation`. The lock is held until the result is dropped or
    /// executed. `program` is needed for `Up` only.
    pub async fn prepare(
        &self,
        operation: Operation,
        program: Option<&dyn Program>,
        config: Option<Node>,
        run: &RunOptions,
    ) -> Result<(Prepared, Vec<ConfigWarning>), OpError> {
        let started_at = now_rfc3339();
        // Run the program first: its mistakes are reported before the stack is even locked.
        let program_run = match (operation, program) {
            (Operation::Up, Some(p)) => Some(run_program(p, &self.stack, config, run, MissingStacks::Error)?),
            (Operation::Up, None) => return Err(OpError::Program("no stack program given".into())),
            _ => None,
        };
        let lock = self.backend.lock(&self.stack, LockInfo::for_this_process(operation.command())).await?;
        tracing::info!("stack `{}`: locked for `{}`", self.stack, operation.command());
        let (mut state, _existed, mut state_entries, reconciled) = self.load_settled().await?;
        let graph = program_run.as_ref().map(|r| &r.graph);
        let targets = resolve_targets(&run.targets, graph, &state)?;
        let refresh_all = operation == Operation::Refresh;
        let run = RunOptions { refresh: run.refresh || refresh_all, ..run.clone() };
        let (refresh_entries, drift) = self.refreshed(&mut state, &run, &targets).await?;
        state_entries.extend(refresh_entries);
        let mut planned = match operation {
            Operation::Refresh => {
                Plan { stack: self.stack.clone(), old_outputs: state.outputs.clone(), outputs: state.outputs.clone(), ..Plan::default() }
            }
            Operation::Destroy => plan(None, &state, &self.providers, &PlanOptions { targets, destroy: true }).await?,
            Operation::Up => plan(graph, &state, &self.providers, &PlanOptions { targets, destroy: false }).await?,
        };
        planned.drift = drift;
        planned.reconciled = reconciled;
        tracing::info!("stack `{}`: planned {}", self.stack, planned.summary());
        if let Some(run) = &program_run {
            planned.warnings.extend(run.notes.iter().cloned());
        }
        let warnings = program_run.as_ref().map(|r| r.warnings.clone()).unwrap_or_default();
        Ok((
            Prepared { operation, plan: planned, graph: program_run.map(|r| r.graph), state, state_entries, _lock: lock, started_at },
            warnings,
        ))
    }

    /// Applies a prepared operation and saves state, whatever happened.
    pub async fn execute(&self, prepared: Prepared, options: &ApplyOptions, observer: Arc<dyn ApplyObserver>) -> Result<Executed, OpError> {
        let Prepared { operation, plan: planned, graph, mut state, state_entries, _lock, started_at } = prepared;
        let origin = format!("state of stack `{}`", self.stack);
        let codec = StateCodec::for_writing(&mut state, &self.keyring, &origin)?;
        if operation == Operation::Up && !codec.can_encrypt() {
            return Err(CryptoError::PassphraseMissing { what: origin }.into());
        }
        // The journal must follow a snapshot that records the lineage and key, and that holds
        // whatever was settled from an interrupted run (its journal is about to be replaced).
        if state.serial == 0 || !state_entries.is_empty() {
            save(self.backend.as_ref(), &mut state, &codec).await?;
        }
        let journal = Journal::create(&self.backend.journal_path(&self.stack), codec.clone(), &state)?;
        let (mut state, report) = if operation == Operation::Refresh || !planned.changes_state() {
            journal.close();
            (state, ApplyReport::default())
        } else {
            apply(&planned, graph.as_ref(), state, journal, self.providers.clone(), options, observer).await
        };
        let result = if report.interrupted {
            "interrupted"
        } else if report.succeeded() {
            "succeeded"
        } else {
            "failed"
        };
        state.last_update = Some(UpdateInfo {
            operation: operation.command().to_string(),
            started_at,
            finished_at: now_rfc3339(),
            result: result.to_string(),
            berth_version: env!("CARGO_PKG_VERSION").to_string(),
        });
        save(self.backend.as_ref(), &mut state, &codec).await?;
        tracing::info!("stack `{}`: `{}` {result}; state saved at serial {}", self.stack, operation.command(), state.serial);
        Ok(Executed { report, state })
    }

    /// Loads state read-only (for `stack output`, `state list|show`).
    pub async fn read_state(&self) -> Result<(State, bool), OpError> {
        let loaded = load(self.backend.as_ref(), &self.stack, &self.keyring).await?;
        Ok((loaded.state, loaded.exists))
    }

    /// Rewrites state under the lock with `change` (for `state delete`, `state unprotect`).
    pub async fn edit_state(&self, command: &str, change: impl FnOnce(&mut State) -> Result<(), OpError>) -> Result<State, OpError> {
        let _lock = self.backend.lock(&self.stack, LockInfo::for_this_process(command)).await?;
        let loaded = load(self.backend.as_ref(), &self.stack, &self.keyring).await?;
        if !loaded.exists {
            return Err(
                StateError::Malformed { origin: self.backend.location(&self.stack), message: "the stack has no state yet".into() }.into()
            );
        }
        let mut state = loaded.state;
        change(&mut state)?;
        let codec = StateCodec::for_writing(&mut state, &self.keyring, &format!("state of stack `{}`", self.stack))?;
        save(self.backend.as_ref(), &mut state, &codec).await?;
        Ok(state)
    }
}
