//! Bringing state up to date with the live world before planning: settle the pending operations
//! of an interrupted run, and (with `--refresh`) read every resource back.

use std::collections::BTreeSet;

use futures::StreamExt;

use crate::diff::diff_values;
use crate::plan::{Drift, Reconciled, context};
use crate::provider::ProviderError;
use crate::registry::Providers;
use crate::state::{JournalEntry, PendingKind, ResourceState, State, now_rfc3339};
use crate::typed::copy_secrecy;
use crate::urn::Urn;

/// A provider call failed while refreshing or reconciling.
#[derive(Debug, thiserror::Error)]
#[error("{urn}: {action} failed: {source}")]
pub struct RefreshError {
    pub urn: Urn,
    pub action: &'static str,
    pub source: ProviderError,
}

/// Settles each pending operation with the provider, returning the journal entries that record
/// the outcome (the caller applies them to state, and journals them when it is writing). A
/// pending create whose resource exists is adopted, never created again.
pub async fn reconcile(state: &State, providers: &Providers) -> Result<(Vec<JournalEntry>, Vec<Reconciled>), RefreshError> {
    let mut entries = Vec::new();
    let mut notes = Vec::new();
    for pending in &state.pending {
        let r = &pending.resource;
        let ctx = context(&state.stack, &r.urn, &r.ty);
        let fail = |action, source| RefreshError { urn: r.urn.clone(), action, source };
        let provider = providers.for_type(&r.ty).map_err(|e| fail("reconcile", ProviderError::other(e.to_string())))?;
        match pending.kind {
            PendingKind::Create => {
                let found = provider.lookup(ctx, &r.inputs).await.map_err(|e| fail("lookup of an interrupted create", e))?;
                match found {
                    Some(observed) => {
                        // Record what exists, not what was asked for: a create cut short may have
                        // left it different, and the plan must compare against the truth.
                        let mut inputs = observed.inputs;
                        copy_secrecy(&r.inputs, &mut inputs);
                        let mut outputs = observed.outputs;
                        copy_secrecy(&r.outputs, &mut outputs);
                        let adopted =
                            ResourceState { id: Some(observed.id.clone()), inputs, outputs, updated_at: now_rfc3339(), ..r.clone() };
                        notes.push(Reconciled {
                            urn: r.urn.clone(),
                            message: format!("found `{}`, created by an interrupted run: adopted", observed.id),
                        });
                        entries.push(JournalEntry::Done { kind: PendingKind::Create, resource: adopted });
                    }
                    None => {
                        notes.push(Reconciled { urn: r.urn.clone(), message: "an interrupted run did not get to create it".into() });
                        entries.push(JournalEntry::Reconciled { kind: PendingKind::Create, urn: r.urn.clone() });
                    }
                }
            }
            PendingKind::Update | PendingKind::Delete => {
                let Some(id) = r.id.as_deref() else {
                    entries.push(JournalEntry::Reconciled { kind: pending.kind, urn: r.urn.clone() });
                    continue;
                };
                let recorded = state
                    .get(&r.urn)
                    .filter(|s| s.id.as_deref() == Some(id))
                    .or_else(|| state.replaced.iter().find(|s| s.urn == r.urn && s.id.as_deref() == Some(id)));
                let live = provider
                    .read(ctx, id, Some(&r.inputs), Some(&r.outputs))
                    .await
                    .map_err(|e| fail("read of an interrupted operation's resource", e))?;
                match (live, recorded) {
                    (None, Some(rec)) => {
                        let from_replaced = state.get(&r.urn).is_none_or(|s| s.id.as_deref() != Some(id));
                        notes.push(Reconciled { urn: r.urn.clone(), message: format!("`{id}` no longer exists: removed from state") });
                        entries.push(JournalEntry::Removed {
                            kind: pending.kind,
                            urn: rec.urn.clone(),
                            id: Some(id.to_string()),
                            from_replaced,
                        });
                    }
                    (Some(observed), Some(rec))
                        if pending.kind == PendingKind::Update && state.get(&r.urn).is_some_and(|s| s.id.as_deref() == Some(id)) =>
                    {
                        let mut inputs = observed.inputs;
                        copy_secrecy(&rec.inputs, &mut inputs);
                        let mut outputs = observed.outputs;
                        copy_secrecy(&rec.outputs, &mut outputs);
                        notes.push(Reconciled {
                            urn: r.urn.clone(),
                            message: "an update was interrupted: re-read from the provider".into(),
                        });
                        entries.push(JournalEntry::Done {
                            kind: PendingKind::Update,
                            resource: ResourceState { inputs, outputs, updated_at: now_rfc3339(), ..rec.clone() },
                        });
                    }
                    _ => {
                        notes.push(Reconciled {
                            urn: r.urn.clone(),
                            message: format!(
                                "an interrupted {} of `{id}` did not finish: planned again",
                                if pending.kind == PendingKind::Delete { "delete" } else { "update" }
                            ),
                        });
                        entries.push(JournalEntry::Reconciled { kind: pending.kind, urn: r.urn.clone() });
                    }
                }
            }
        }
    }
    Ok((entries, notes))
}

/// Reads every custom resource (or only `only`) back from its provider, with up to `parallel`
/// reads at once. Returns the refreshed resources' journal entries and what drifted.
pub async fn refresh(
    state: &State,
    providers: &Providers,
    only: Option<&BTreeSet<Urn>>,
    parallel: usize,
) -> Result<(Vec<JournalEntry>, Vec<Drift>), RefreshError> {
    let candidates: Vec<&ResourceState> =
        state.resources.iter().filter(|r| r.custom && r.id.is_some() && only.is_none_or(|o| o.contains(&r.urn))).collect();
    let reads = futures::stream::iter(candidates.into_iter().map(|r| async move {
        let ctx = context(&state.stack, &r.urn, &r.ty);
        let fail = |source| RefreshError { urn: r.urn.clone(), action: "refresh", source };
        let provider = providers.for_type(&r.ty).map_err(|e| fail(ProviderError::other(e.to_string())))?;
        let id = r.id.as_deref().unwrap_or_default();
        let live = provider.read(ctx, id, Some(&r.inputs), Some(&r.outputs)).await.map_err(fail)?;
        Ok::<_, RefreshError>((r, live))
    }))
    .buffered(parallel.max(1));
    let results: Vec<_> = reads.collect().await;
    let mut entries = Vec::new();
    let mut drift = Vec::new();
    for result in results {
        let (r, live) = result?;
        match live {
            None => {
                drift.push(Drift { urn: r.urn.clone(), ty: r.ty.clone(), diffs: None });
                entries.push(JournalEntry::Removed {
                    kind: PendingKind::Delete,
                    urn: r.urn.clone(),
                    id: r.id.clone(),
                    from_replaced: false,
                });
            }
            Some(observed) => {
                let mut inputs = observed.inputs;
                copy_secrecy(&r.inputs, &mut inputs);
                let mut outputs = observed.outputs;
                copy_secrecy(&r.outputs, &mut outputs);
                // The provider judges drift (a policy reformatted by the API is no change); a
                // provider that cannot say falls back to a field-by-field comparison.
                let ctx = context(&state.stack, &r.urn, &r.ty);
                let diffs = match providers.for_type(&r.ty) {
                    Ok(provider) => match provider.diff(ctx, observed.id.as_str(), &r.inputs, &r.outputs, &inputs).await {
                        Ok(response) => response.changes,
                        Err(_) => diff_values(&r.inputs, &inputs),
                    },
                    Err(_) => diff_values(&r.inputs, &inputs),
                };
                if diffs.is_empty() {
                    // Semantically the same: keep the recorded form.
                    inputs = r.inputs.clone();
                }
                let outputs_changed = !diff_values(&r.outputs, &outputs).is_empty();
                if !diffs.is_empty() {
                    drift.push(Drift { urn: r.urn.clone(), ty: r.ty.clone(), diffs: Some(diffs.clone()) });
                }
                if !diffs.is_empty() || outputs_changed || r.id.as_deref() != Some(observed.id.as_str()) {
                    entries.push(JournalEntry::Done {
                        kind: PendingKind::Update,
                        resource: ResourceState { id: Some(observed.id), inputs, outputs, ..r.clone() },
                    });
                }
            }
        }
    }
    Ok((entries, drift))
}
