//! Adopting resources that already exist (`berth stack import`): read each from its provider
//! and record it in state, so the program can manage it without creating it again.
//!
//! All or nothing: every resource is read before anything is recorded, and one failure records
//! none. Idempotent: a resource already recorded with the same id is left as it is.

use serde::Deserialize;

use crate::ops::{Engine, OpError};
use crate::plan::context;
use crate::state::{LockInfo, ResourceState, StateCodec, load, now_rfc3339, save};
use crate::urn::Urn;
use crate::value::Value;

/// One resource to adopt: its type, the logical name (and parent component) the program will
/// give it, and the provider's id for it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    #[serde(rename = "type")]
    pub ty: String,
    pub name: String,
    pub id: String,
    /// The URN of the component the program registers it under.
    #[serde(default)]
    pub parent: Option<Urn>,
    /// Protect it from deletion (default true: an adopted resource is usually precious).
    #[serde(default = "yes")]
    pub protect: bool,
}

fn yes() -> bool {
    true
}

/// The `--file` form: `{"resources": [{"type", "name", "id", "parent"?, "protect"?}, ...]}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportFile {
    pub resources: Vec<ImportRequest>,
}

/// What one import did.
#[derive(Clone, Debug)]
pub struct Imported {
    pub urn: Urn,
    pub ty: String,
    pub id: String,
    /// The live resource's inputs: what the program's configuration must say to match it.
    pub inputs: Value,
    pub outputs: Value,
    /// Already recorded with this id: nothing was changed.
    pub already: bool,
}

fn refused(message: impl Into<String>) -> OpError {
    OpError::Refused(message.into())
}

impl Engine {
    /// Reads every requested resource and records them all in state, or none.
    pub async fn import(&self, requests: &[ImportRequest]) -> Result<Vec<Imported>, OpError> {
        let _lock = self.backend.lock(&self.stack, LockInfo::for_this_process("berth stack import")).await?;
        let loaded = load(self.backend.as_ref(), &self.stack, &self.keyring).await?;
        let mut state = loaded.state;
        if !state.pending.is_empty() {
            return Err(refused(format!(
                "stack `{}` has operations left by an interrupted run; run `berth stack up {}` (or preview) to settle them first",
                self.stack, self.stack
            )));
        }
        let mut imported = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for request in requests {
            let urn = Urn::new(&self.stack, request.parent.as_ref(), &request.ty, &request.name).map_err(|e| refused(e.to_string()))?;
            if !seen.insert(urn.clone()) {
                return Err(refused(format!("{urn} is listed twice")));
            }
            if let Some(parent) = &request.parent
                && parent.stack() != self.stack
            {
                return Err(refused(format!("parent {parent} belongs to another stack")));
            }
            let provider = self.providers.for_type(&request.ty).map_err(|e| refused(format!("{} `{}`: {e}", request.ty, request.name)))?;
            if let Some(existing) = state.get(&urn) {
                if existing.id.as_deref() == Some(request.id.as_str()) {
                    imported.push(Imported {
                        urn,
                        ty: request.ty.clone(),
                        id: request.id.clone(),
                        inputs: existing.inputs.clone(),
                        outputs: existing.outputs.clone(),
                        already: true,
                    });
                    continue;
                }
                return Err(refused(format!(
                    "{urn} is already in state with id `{}`; to adopt `{}` instead, first forget the old one with `berth state delete {} '{urn}'`",
                    existing.id.as_deref().unwrap_or("-"),
                    request.id,
                    self.stack
                )));
            }
            if let Some(other) = state.resources.iter().find(|r| r.ty == request.ty && r.id.as_deref() == Some(request.id.as_str())) {
                return Err(refused(format!("{} `{}` is already managed by this stack as {}", request.ty, request.id, other.urn)));
            }
            let ctx = context(&self.stack, &urn, &request.ty);
            let live = provider
                .read(ctx, &request.id, None, None)
                .await
                .map_err(|e| refused(format!("reading {} `{}` failed: {e}", request.ty, request.id)))?;
            let Some(observed) = live else {
                return Err(refused(format!(
                    "no {} with id `{}` exists (checked with the provider); nothing was imported",
                    request.ty, request.id
                )));
            };
            imported.push(Imported {
                urn,
                ty: request.ty.clone(),
                id: observed.id,
                inputs: observed.inputs,
                outputs: observed.outputs,
                already: false,
            });
        }
        let new: Vec<&Imported> = imported.iter().filter(|i| !i.already).collect();
        if new.is_empty() {
            return Ok(imported);
        }
        let now = now_rfc3339();
        for (i, request) in requests.iter().enumerate() {
            let item = &imported[i];
            if item.already {
                continue;
            }
            state.upsert(ResourceState {
                urn: item.urn.clone(),
                ty: item.ty.clone(),
                custom: true,
                id: Some(item.id.clone()),
                parent: request.parent.clone(),
                inputs: item.inputs.clone(),
                outputs: item.outputs.clone(),
                dependencies: Vec::new(),
                protect: request.protect,
                retain_on_delete: false,
                custom_timeouts: Default::default(),
                tainted: false,
                generation: 0,
                created_at: now.clone(),
                updated_at: now.clone(),
            });
        }
        let codec = StateCodec::for_writing(&mut state, &self.keyring, &format!("state of stack `{}`", self.stack))?;
        save(self.backend.as_ref(), &mut state, &codec).await?;
        Ok(imported)
    }
}
