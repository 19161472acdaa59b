//! One writer per stack: who holds the lock, and since when.

use serde::{Deserialize, Serialize};

/// What a lock records about its holder; shown to whoever finds the stack locked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LockInfo {
    pub owner: String,
    pub host: String,
    pub pid: u32,
    pub operation: String,
    pub started_at: String,
    pub berth_version: String,
}

impl LockInfo {
    /// A lock record for this process, running `operation` (e.g. `berth stack up`).
    pub fn for_this_process(operation: &str) -> LockInfo {
        LockInfo {
            owner: std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into()),
            host: hostname(),
            pid: std::process::id(),
            operation: operation.to_string(),
            started_at: crate::state::now_rfc3339(),
            berth_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// `alice@host (pid 123, berth stack up, since 2026-11-21T10:00:00Z)`.
    pub fn describe(&self) -> String {
        format!("{}@{} (pid {}, `{}`, since {})", self.owner, self.host, self.pid, self.operation, self.started_at)
    }
}

/// The machine's host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "unknown-host".into()
    }
}

/// Held while a stack is being changed; releasing it (drop) removes the lock.
pub trait LockGuard: Send + Sync {
    fn info(&self) -> &LockInfo;
}

/// What `state unlock` did.
#[derive(Debug, PartialEq)]
pub enum UnlockOutcome {
    /// There was no lock.
    NotLocked,
    /// The lock's holder was gone; the lock was removed.
    RemovedStale(Option<LockInfo>),
    /// The holder is still running and `force` removed the lock anyway.
    ForcedWhileHeld(Option<LockInfo>),
}
