//! Where state lives. The local directory backend is the default; others (S3) implement the
//! same trait.

use std::path::PathBuf;

use async_trait::async_trait;

use crate::state::StateError;
use crate::state::lock::{LockGuard, LockInfo, UnlockOutcome};

/// Storage for state snapshots and locks.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Where a stack's state is, for messages (`state/mitx.qa.json`).
    fn location(&self, stack: &str) -> String;

    async fn read_state(&self, stack: &str) -> Result<Option<Vec<u8>>, StateError>;

    /// Replaces the snapshot atomically: readers see the old or the new one, never a mix.
    async fn write_state(&self, stack: &str, bytes: &[u8]) -> Result<(), StateError>;

    async fn delete_state(&self, stack: &str) -> Result<(), StateError>;

    /// Takes the stack's lock, or fails at once naming the holder.
    async fn lock(&self, stack: &str, info: LockInfo) -> Result<Box<dyn LockGuard>, StateError>;

    /// Removes a lock whose holder is gone (or, with `force`, any lock).
    async fn unlock(&self, stack: &str, force: bool) -> Result<UnlockOutcome, StateError>;

    /// The local file the journal of an apply goes to.
    fn journal_path(&self, stack: &str) -> PathBuf;

    /// Stacks with state.
    async fn list_stacks(&self) -> Result<Vec<String>, StateError>;
}

/// Opens a state backend from a stack file's `backend: <scheme>://...` (the local directory
/// backend needs none; S3 registers one for `s3`).
pub trait BackendFactory: Send + Sync {
    /// The URL scheme it serves, e.g. `s3`.
    fn scheme(&self) -> &str;
    /// The backend for `url`. Must not call any API (that happens on first use).
    fn open(
        &self,
        url: &str,
        stack: &crate::project::StackSettings,
        project_root: &std::path::Path,
    ) -> Result<std::sync::Arc<dyn Backend>, crate::config::ConfigError>;
}
