//! The state of a stack: what berth created, with the inputs it used and the outputs it got.
//!
//! On disk: one JSON document per stack (schema version, serial, lineage, resources), written
//! atomically, and during an apply an append-only journal of finished and pending steps (see
//! [`journal`]). Secret values are encrypted one by one (see [`codec`]).

pub mod backend;
pub mod codec;
pub mod journal;
pub mod local;
pub mod lock;
pub mod store;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::crypto::SecretsInfo;
use crate::resource::CustomTimeouts;
use crate::urn::Urn;
use crate::value::Value;

pub use backend::{Backend, BackendFactory};
pub use codec::{StateCodec, StateError};
pub use journal::{Journal, JournalEntry};
pub use local::LocalBackend;
pub use lock::{LockGuard, LockInfo, UnlockOutcome};
pub use store::{Loaded, load, save};

/// The state file format version this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// What berth knows of one resource.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceState {
    pub urn: Urn,
    pub ty: String,
    /// False for components.
    pub custom: bool,
    /// The provider's id; `None` for components.
    pub id: Option<String>,
    pub parent: Option<Urn>,
    pub inputs: Value,
    pub outputs: Value,
    pub dependencies: Vec<Urn>,
    pub protect: bool,
    pub retain_on_delete: bool,
    pub custom_timeouts: CustomTimeouts,
    /// The create did not finish cleanly (the provider reported a partial result): the next
    /// plan replaces it.
    pub tainted: bool,
    /// How many times this resource has been replaced; seeds automatic names.
    pub generation: u64,
    pub created_at: String,
    pub updated_at: String,
}

/// The kind of mutating call a pending operation records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PendingKind {
    Create,
    Update,
    Delete,
}

/// A mutating call that was started but not seen to finish (the process was killed). The next
/// run reconciles it with the provider before planning.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingOperation {
    pub kind: PendingKind,
    /// The resource as the call was going to leave it (for a create: the inputs, no id).
    pub resource: ResourceState,
    pub started_at: String,
}

/// The last operation run on the stack.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateInfo {
    pub operation: String,
    pub started_at: String,
    pub finished_at: String,
    pub result: String,
    pub berth_version: String,
}

/// A stack's state.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    pub stack: String,
    /// Incremented on every write.
    pub serial: u64,
    /// Random id fixed when the stack is first written; guards against mixing up two stacks'
    /// state files.
    pub lineage: String,
    pub resources: Vec<ResourceState>,
    /// Old incarnations of resources replaced create-before-delete whose delete has not
    /// happened yet; the next plan deletes them.
    pub replaced: Vec<ResourceState>,
    pub pending: Vec<PendingOperation>,
    pub outputs: BTreeMap<String, Value>,
    pub secrets: Option<SecretsInfo>,
    pub last_update: Option<UpdateInfo>,
}

/// A random identifier in UUID form.
pub fn new_lineage() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the operating system's random source is available");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// The current time as RFC 3339 (UTC, seconds).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

impl State {
    pub fn new(stack: &str) -> State {
        State {
            stack: stack.to_string(),
            serial: 0,
            lineage: new_lineage(),
            resources: Vec::new(),
            replaced: Vec::new(),
            pending: Vec::new(),
            outputs: BTreeMap::new(),
            secrets: None,
            last_update: None,
        }
    }

    pub fn get(&self, urn: &Urn) -> Option<&ResourceState> {
        self.resources.iter().find(|r| &r.urn == urn)
    }

    /// An index of resources by URN (positions in `resources`).
    pub fn index(&self) -> HashMap<Urn, usize> {
        self.resources.iter().enumerate().map(|(i, r)| (r.urn.clone(), i)).collect()
    }

    /// Whether anything in the state is secret (and so needs a passphrase to write).
    pub fn has_secrets(&self) -> bool {
        let resource_secret = |r: &ResourceState| r.inputs.contains_secret() || r.outputs.contains_secret();
        self.resources.iter().any(resource_secret)
            || self.replaced.iter().any(resource_secret)
            || self.pending.iter().any(|p| resource_secret(&p.resource))
            || self.outputs.values().any(Value::contains_secret)
    }

    /// Every secret string in the state, to scrub from text that might echo one.
    pub fn secret_strings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in self.resources.iter().chain(&self.replaced).chain(self.pending.iter().map(|p| &p.resource)) {
            r.inputs.secret_strings(&mut out);
            r.outputs.secret_strings(&mut out);
        }
        for v in self.outputs.values() {
            v.secret_strings(&mut out);
        }
        out
    }

    /// Inserts or replaces the resource with the same URN (keeping its position).
    pub fn upsert(&mut self, resource: ResourceState) {
        match self.resources.iter_mut().find(|r| r.urn == resource.urn) {
            Some(slot) => *slot = resource,
            None => self.resources.push(resource),
        }
    }

    pub fn remove(&mut self, urn: &Urn) -> Option<ResourceState> {
        let pos = self.resources.iter().position(|r| &r.urn == urn)?;
        Some(self.resources.remove(pos))
    }

    /// Applies one journal entry (replaying a journal, or keeping memory in step with it).
    pub fn apply_entry(&mut self, entry: &JournalEntry) {
        match entry {
            JournalEntry::Begin { kind, resource, started_at } => {
                self.pending.retain(|p| !(p.resource.urn == resource.urn && p.kind == *kind));
                self.pending.push(PendingOperation { kind: *kind, resource: resource.clone(), started_at: started_at.clone() });
            }
            JournalEntry::Done { kind, resource } => {
                self.pending.retain(|p| !(p.resource.urn == resource.urn && p.kind == *kind));
                self.upsert(resource.clone());
            }
            JournalEntry::Removed { kind, urn, id, from_replaced } => {
                self.pending.retain(|p| !(&p.resource.urn == urn && p.kind == *kind));
                if *from_replaced {
                    self.replaced.retain(|r| !(&r.urn == urn && r.id == *id));
                } else {
                    self.remove(urn);
                }
            }
            JournalEntry::MovedToReplaced { resource } => {
                self.remove(&resource.urn);
                self.replaced.push(resource.clone());
            }
            JournalEntry::Restored { resource } => {
                self.replaced.retain(|r| !(r.urn == resource.urn && r.id == resource.id));
                self.upsert(resource.clone());
            }
            JournalEntry::Renamed { from, to } => {
                if let Some(r) = self.resources.iter_mut().find(|r| &r.urn == from) {
                    r.urn = to.clone();
                }
            }
            JournalEntry::Failed { kind, urn, keep_pending, .. } => {
                if !keep_pending {
                    self.pending.retain(|p| !(&p.resource.urn == urn && p.kind == *kind));
                }
            }
            JournalEntry::Reconciled { kind, urn } => {
                self.pending.retain(|p| !(&p.resource.urn == urn && p.kind == *kind));
            }
            JournalEntry::Outputs { outputs } => {
                self.outputs = outputs.clone();
            }
        }
    }
}
