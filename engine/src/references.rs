//! Stack references: one stack reading another's outputs (the network stack's VPC id, the
//! cluster stack's OIDC issuer), like Pulumi's `StackReference`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::value::Value;

/// Reads other stacks' outputs. The command line resolves a stack's backend from its stack file.
pub trait StackReferences: Send + Sync {
    /// The outputs of `stack`; `Ok(None)` when it has no state yet.
    fn outputs(&self, stack: &str) -> Result<Option<BTreeMap<String, Value>>, String>;
}

/// How a program run treats references to stacks that have no state yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissingStacks {
    /// Their outputs are unknown (a preview can still show the rest of the plan).
    Unknown,
    /// It is an error (an `up` cannot apply values it does not have).
    Error,
}

/// The resolver a run uses, with how to treat missing stacks.
#[derive(Clone)]
pub struct References {
    pub resolver: Arc<dyn StackReferences>,
}

impl fmt::Debug for References {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("References")
    }
}

impl References {
    pub fn new(resolver: Arc<dyn StackReferences>) -> References {
        References { resolver }
    }
}

/// Fixed outputs by stack name: for tests and programs run outside a project.
#[derive(Clone, Debug, Default)]
pub struct StaticReferences(pub BTreeMap<String, BTreeMap<String, Value>>);

impl StackReferences for StaticReferences {
    fn outputs(&self, stack: &str) -> Result<Option<BTreeMap<String, Value>>, String> {
        Ok(self.0.get(stack).cloned())
    }
}
