//! Finding what a program would create that already exists (`berth stack import --discover`):
//! the first step of adopting resources made by hand or by another tool.
//!
//! The program is planned against the stack's state; each resource it would create is looked
//! up by its provider (by the physical name the program gives it, or by tags), and what is
//! found is added to a scratch copy of the state, so that resources reading its outputs (a
//! policy attachment needs the policy's ARN, a database its security group's id) can be looked
//! up in the next round. Nothing is recorded: the result is a list to review and import.

use crate::config::Node;
use crate::import::ImportRequest;
use crate::ops::{Engine, OpError, RunOptions, run_program};
use crate::plan::{Op, PlanOptions, context, plan};
use crate::program::Program;
use crate::references::MissingStacks;
use crate::state::{ResourceState, now_rfc3339};
use crate::urn::Urn;

/// What discovery found and did not find.
#[derive(Clone, Debug, Default)]
pub struct Discovery {
    /// Resources that exist, in the program's order: import them to adopt them.
    pub found: Vec<ImportRequest>,
    /// Resources the program would create that were not found, with why when a lookup failed.
    pub missing: Vec<(Urn, Option<String>)>,
    /// For missing resources: ids of resources of the same type that carry all the tags the
    /// program gives it, but another name (candidates to review, not to import blindly: their
    /// names differ from the program's).
    pub tagged: Vec<(Urn, Vec<String>)>,
}

/// Rounds of lookups at most: each round can only find resources whose inputs the previous
/// rounds made known, so this bounds the depth of such chains.
const MAX_ROUNDS: usize = 8;

impl Engine {
    /// Looks up every resource the program would create whose type `include` accepts.
    pub async fn discover(
        &self,
        program: &dyn Program,
        config: Option<Node>,
        run: &RunOptions,
        include: &dyn Fn(&str) -> bool,
    ) -> Result<Discovery, OpError> {
        let program_run = run_program(program, &self.stack, config, run, MissingStacks::Unknown)?;
        let (mut state, _) = self.read_state().await?;
        let mut found: Vec<(Urn, ImportRequest)> = Vec::new();
        let mut failures: std::collections::HashMap<Urn, String> = Default::default();
        let mut last_plan = None;
        for _ in 0..MAX_ROUNDS {
            let planned = plan(Some(&program_run.graph), &state, &self.providers, &PlanOptions::default()).await?;
            let mut new = 0;
            for step in planned.steps.iter().filter(|s| s.op == Op::Create && s.custom && include(&s.ty)) {
                let Some(inputs) = &step.new_inputs else { continue };
                let provider = self.providers.for_type(&step.ty).map_err(|e| OpError::Refused(e.to_string()))?;
                let ctx = context(&self.stack, &step.urn, &step.ty);
                match provider.lookup(ctx, inputs).await {
                    Ok(Some(observed)) => {
                        failures.remove(&step.urn);
                        let now = now_rfc3339();
                        state.upsert(ResourceState {
                            urn: step.urn.clone(),
                            ty: step.ty.clone(),
                            custom: true,
                            id: Some(observed.id.clone()),
                            parent: step.parent.clone(),
                            inputs: observed.inputs,
                            outputs: observed.outputs,
                            dependencies: Vec::new(),
                            // Unprotected here, so that the next round's plan may show any
                            // difference instead of refusing it: this state is never saved.
                            protect: false,
                            retain_on_delete: false,
                            custom_timeouts: Default::default(),
                            tainted: false,
                            generation: 0,
                            created_at: now.clone(),
                            updated_at: now,
                        });
                        let request = ImportRequest {
                            ty: step.ty.clone(),
                            name: step.urn.name().to_string(),
                            id: observed.id,
                            parent: step.parent.clone(),
                            protect: true,
                        };
                        found.push((step.urn.clone(), request));
                        new += 1;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        failures.insert(step.urn.clone(), e.to_string());
                    }
                }
            }
            last_plan = Some(planned);
            if new == 0 {
                break;
            }
        }
        // What was not found by name may exist under another: search by the program's tags.
        let mut tagged = Vec::new();
        for step in last_plan.iter().flat_map(|p| &p.steps).filter(|s| s.op == Op::Create && s.custom && include(&s.ty)) {
            if state.get(&step.urn).is_some() {
                continue;
            }
            let tags: std::collections::BTreeMap<String, String> = step
                .new_inputs
                .as_ref()
                .and_then(|i| i.as_object())
                .and_then(|i| i.get("tags"))
                .and_then(|t| t.as_object())
                .map(|t| t.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect())
                .unwrap_or_default();
            if tags.is_empty() {
                continue;
            }
            let provider = self.providers.for_type(&step.ty).map_err(|e| OpError::Refused(e.to_string()))?;
            let ctx = context(&self.stack, &step.urn, &step.ty);
            let claimed: Vec<&str> = found.iter().filter(|(_, r)| r.ty == step.ty).map(|(_, r)| r.id.as_str()).collect();
            match provider.find_tagged(ctx, &tags).await {
                Ok(ids) => {
                    let ids: Vec<String> = ids.into_iter().filter(|id| !claimed.contains(&id.as_str())).collect();
                    if !ids.is_empty() {
                        tagged.push((step.urn.clone(), ids));
                    }
                }
                Err(e) => {
                    failures.entry(step.urn.clone()).or_insert_with(|| format!("search by tags: {e}"));
                }
            }
        }
        // Report in the program's order, which is also an order that imports cleanly.
        let order: Vec<&Urn> = program_run.graph.resources().iter().map(|r| &r.urn).collect();
        found.sort_by_key(|(urn, _)| order.iter().position(|u| *u == urn));
        let missing = program_run
            .graph
            .resources()
            .iter()
            .filter(|r| r.custom && include(&r.ty) && state.get(&r.urn).is_none())
            .map(|r| (r.urn.clone(), failures.get(&r.urn).cloned()))
            .collect();
        Ok(Discovery { found: found.into_iter().map(|(_, r)| r).collect(), missing, tagged })
    }
}
