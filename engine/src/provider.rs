//! The provider interface: how the engine talks to a cloud API (or anything with a lifecycle).
//!
//! The engine sees one dynamic [`Provider`] per package (`aws`, `kubernetes`, `vault`). Most
//! providers are written per resource type against the typed
//! [`ResourceProvider`](crate::ResourceProvider) trait and bundled into a package with
//! [`Package`](crate::Package), which implements this trait.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::diff::FieldDiff;
use crate::urn::Urn;
use crate::value::{Path, Value};

/// Which resource a call is about.
#[derive(Clone, Copy, Debug)]
pub struct CallContext<'a> {
    pub urn: &'a Urn,
    /// The type token, e.g. `aws:s3:Bucket`.
    pub ty: &'a str,
    /// The logical name (the last part of the URN).
    pub name: &'a str,
    pub stack: &'a str,
    /// The time limit for this call (`custom_timeouts`), if the program set one. The engine
    /// enforces it too; await loops use it to stop with a clear message of what they waited for.
    pub timeout: Option<Duration>,
}

/// Why inputs are invalid, found before any API call.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckFailure {
    /// The input field at fault, if there is one.
    pub path: Option<String>,
    pub reason: String,
}

impl CheckFailure {
    pub fn field(path: impl Into<String>, reason: impl Into<String>) -> Self {
        CheckFailure { path: Some(path.into()), reason: reason.into() }
    }

    pub fn general(reason: impl Into<String>) -> Self {
        CheckFailure { path: None, reason: reason.into() }
    }
}

impl fmt::Display for CheckFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "{path}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// How a provider call failed.
#[derive(Clone, Debug, PartialEq)]
pub enum ErrorKind {
    /// The API said no: bad request, permission, conflict.
    Api,
    /// The resource is gone.
    NotFound,
    /// A resource with the same fixed name exists outside this stack; `id` is what to import.
    AlreadyExists { id: String },
    /// The operation did not finish in time; it may still complete.
    Timeout,
    /// Anything else: network, decoding, a bug.
    Other,
}

/// A provider call failed. `message` carries the API's own words and error code.
#[derive(Clone, Debug)]
pub struct ProviderError {
    pub kind: ErrorKind,
    pub message: String,
    /// The API's error code (`BucketAlreadyOwnedByYou`, `409 Conflict`), when there is one.
    pub code: Option<String>,
    /// A create that failed after the object came into being (an RDS instance that never became
    /// available, a Job whose pod failed): the engine records it, marked tainted, so the next
    /// run replaces it instead of creating a duplicate.
    pub partial: Option<Box<Created>>,
}

impl ProviderError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ProviderError { kind, message: message.into(), code: None, partial: None }
    }

    pub fn api(code: impl Into<String>, message: impl Into<String>) -> Self {
        ProviderError { kind: ErrorKind::Api, message: message.into(), code: Some(code.into()), partial: None }
    }

    pub fn other(message: impl Into<String>) -> Self {
        ProviderError::new(ErrorKind::Other, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ProviderError::new(ErrorKind::NotFound, message)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        ProviderError::new(ErrorKind::Timeout, message)
    }

    pub fn with_partial(mut self, created: Created) -> Self {
        self.partial = Some(Box::new(created));
        self
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{} ({code})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ProviderError {}

/// Result of a check: normalized inputs, and notes for the plan (an API version the cluster
/// lacks, so an older equivalent will be used; a deprecated setting).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checked {
    pub inputs: Value,
    pub notes: Vec<String>,
}

impl From<Value> for Checked {
    fn from(inputs: Value) -> Self {
        Checked { inputs, notes: Vec::new() }
    }
}

/// Result of a create: the provider's id and the outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Created {
    pub id: String,
    pub outputs: Value,
}

/// What the provider observes of a live resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub id: String,
    /// The inputs that would produce the live resource, limited to the fields berth manages.
    pub inputs: Value,
    pub outputs: Value,
}

/// A provider's judgement of how a resource changes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DiffResponse {
    /// The fields that differ (semantically: equal JSON documents in another key order do not).
    pub changes: Vec<FieldDiff>,
    /// The changed fields that cannot be updated in place.
    pub replace_paths: Vec<Path>,
    /// Replacement must delete first: the physical name is fixed and unchanged.
    pub delete_before_replace: bool,
    /// Outputs that an in-place update will change, and so are unknown until it is done.
    pub unknown_outputs: Vec<Path>,
    /// Inputs that change in state only, without a call, each with why (a write-only value
    /// that the live resource does not reveal).
    pub recorded: Vec<String>,
}

impl DiffResponse {
    pub fn no_changes() -> Self {
        DiffResponse::default()
    }

    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    pub fn needs_replace(&self) -> bool {
        !self.replace_paths.is_empty()
    }

    /// Treats a change at `path` as a state-only change (recorded without a call), for inputs
    /// that only matter to berth's own later calls (a final snapshot taken on delete).
    pub fn record_state_only(&mut self, path: &Path, why: &str) {
        let before = self.changes.len();
        self.changes.retain(|c| &c.path != path);
        self.replace_paths.retain(|p| p != path);
        if self.changes.len() < before {
            self.recorded.push(format!("{path} ({why})"));
        }
    }

    /// Treats a change of the write-only input at `path` as a state-only change when the
    /// recorded value is unreadable (an empty secret: the resource was imported or read without
    /// a prior value, so what is live is unknown). The configured value is then recorded as the
    /// live one, not applied; a later change of it is applied as usual.
    pub fn record_write_only(&mut self, old: &Value, new: &Value, path: &Path) {
        let unreadable = matches!(old.get_path(path), Some(v) if matches!(v.unwrap_secret(), Value::String(s) if s.is_empty()));
        let configured = matches!(new.get_path(path), Some(v) if !v.is_null() && !v.contains_unknown()
            && !matches!(v.unwrap_secret(), Value::String(s) if s.is_empty()));
        if !unreadable || !configured {
            return;
        }
        let before = self.changes.len();
        self.changes.retain(|c| &c.path != path);
        self.replace_paths.retain(|p| p != path);
        if self.changes.len() < before {
            self.recorded.push(format!("{path} (write-only: the live value cannot be read; the configured one is recorded, not applied)"));
        }
    }
}

/// A package of resource types and the API client behind them.
///
/// `inputs` passed to `create`/`update` are fully known (secrets revealed only in the
/// provider-facing JSON). `check` and `diff` may see unknown values (plan time).
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The package name; type tokens `<package>:<module>:<Type>` route here.
    fn package(&self) -> &str;

    /// Whether the type token is one this provider implements.
    fn supports(&self, ty: &str) -> bool;

    /// The input holding the type's physical name when users fix it (a bucket name, a Vault
    /// path): replacing a resource whose name stays the same must delete first.
    fn fixed_name(&self, ty: &str) -> Option<Path> {
        let _ = ty;
        None
    }

    /// Validates inputs before any API call and returns them normalized (defaults filled in,
    /// automatic names chosen from `seed`).
    async fn check(&self, ctx: CallContext<'_>, inputs: &Value, seed: &[u8; 32]) -> Result<Checked, Vec<CheckFailure>>;

    /// Compares recorded inputs with desired ones (which may hold unknowns).
    async fn diff(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old_inputs: &Value,
        old_outputs: &Value,
        new_inputs: &Value,
    ) -> Result<DiffResponse, ProviderError>;

    /// Creates the resource and returns when it is ready to use.
    async fn create(&self, ctx: CallContext<'_>, inputs: &Value) -> Result<Created, ProviderError>;

    /// Reads the live resource; `None` if it no longer exists.
    async fn read(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old_inputs: Option<&Value>,
        old_outputs: Option<&Value>,
    ) -> Result<Option<Observed>, ProviderError>;

    /// Updates in place and returns the new outputs.
    async fn update(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old_inputs: &Value,
        old_outputs: &Value,
        new_inputs: &Value,
    ) -> Result<Value, ProviderError>;

    /// Deletes and returns when the resource is gone.
    async fn delete(&self, ctx: CallContext<'_>, id: &str, inputs: &Value, outputs: &Value) -> Result<(), ProviderError>;

    /// Finds a resource that an interrupted create may have made, by its deterministic name or
    /// tags. The engine adopts what this returns instead of creating a duplicate.
    async fn lookup(&self, ctx: CallContext<'_>, inputs: &Value) -> Result<Option<Observed>, ProviderError>;

    /// Ids of existing resources of type `ctx.ty` that carry every one of `tags`, whatever their
    /// names: for discovery to point at resources named outside the program's convention.
    /// Default: the type cannot be searched by tags.
    async fn find_tagged(
        &self,
        ctx: CallContext<'_>,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<String>, ProviderError> {
        let _ = (ctx, tags);
        Ok(Vec::new())
    }
}
