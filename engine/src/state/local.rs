//! The default backend: one directory (`state/`) with `<stack>.json`, `<stack>.json.bak` (the
//! previous snapshot), `<stack>.journal` during an apply and `<stack>.lock`.
//!
//! The lock is an advisory `flock` on the lock file, so a killed process can never leave the
//! stack locked; the file's content says who holds it.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::state::StateError;
use crate::state::backend::Backend;
use crate::state::lock::{LockGuard, LockInfo, UnlockOutcome};

/// State in a local directory.
#[derive(Clone, Debug)]
pub struct LocalBackend {
    dir: PathBuf,
}

fn io(path: &Path, source: std::io::Error) -> StateError {
    StateError::Io { path: path.display().to_string(), source }
}

fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io(dir, e))
}

struct LocalLock {
    file: File,
    path: PathBuf,
    info: LockInfo,
}

impl LockGuard for LocalLock {
    fn info(&self) -> &LockInfo {
        &self.info
    }
}

impl Drop for LocalLock {
    fn drop(&mut self) {
        // Remove while still holding the flock, so nobody locks a file that is going away.
        let _ = fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

fn read_lock_info(file: &mut File) -> Option<LockInfo> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

impl LocalBackend {
    pub fn new(dir: impl Into<PathBuf>) -> LocalBackend {
        LocalBackend { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn state_path(&self, stack: &str) -> PathBuf {
        self.dir.join(format!("{stack}.json"))
    }

    fn lock_path(&self, stack: &str) -> PathBuf {
        self.dir.join(format!("{stack}.lock"))
    }

    fn ensure_dir(&self) -> Result<(), StateError> {
        fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))
    }

    fn try_lock(&self, stack: &str, info: LockInfo) -> Result<LocalLock, StateError> {
        self.ensure_dir()?;
        let path = self.lock_path(stack);
        loop {
            let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(|e| io(&path, e))?;
            match file.try_lock() {
                Ok(()) => {
                    // The previous holder may have removed the file between our open and lock:
                    // then we hold a lock on a file nobody else can see. Start over.
                    let same = match (file.metadata(), fs::metadata(&path)) {
                        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                        _ => false,
                    };
                    if !same {
                        continue;
                    }
                    let text = serde_json::to_vec_pretty(&info).map_err(|e| io(&path, std::io::Error::other(e)))?;
                    file.set_len(0).and_then(|_| file.write_all(&text)).and_then(|_| file.sync_data()).map_err(|e| io(&path, e))?;
                    return Ok(LocalLock { file, path, info });
                }
                Err(TryLockError::WouldBlock) => {
                    let holder = read_lock_info(&mut file);
                    let who = holder.map(|h| h.describe()).unwrap_or_else(|| "another process".into());
                    return Err(StateError::Lock(format!(
                        "stack `{stack}` is locked by {who}; wait for it to finish (the lock is released when that process exits), or if it is stuck, stop it and run `berth state unlock {stack}`"
                    )));
                }
                Err(TryLockError::Error(e)) => return Err(io(&path, e)),
            }
        }
    }
}

#[async_trait]
impl Backend for LocalBackend {
    fn location(&self, stack: &str) -> String {
        self.state_path(stack).display().to_string()
    }

    async fn read_state(&self, stack: &str) -> Result<Option<Vec<u8>>, StateError> {
        let path = self.state_path(stack);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path, e)),
        }
    }

    async fn write_state(&self, stack: &str, bytes: &[u8]) -> Result<(), StateError> {
        self.ensure_dir()?;
        let path = self.state_path(stack);
        let tmp = self.dir.join(format!(".{stack}.json.tmp-{}", std::process::id()));
        let mut file = File::create(&tmp).map_err(|e| io(&tmp, e))?;
        file.write_all(bytes).and_then(|_| file.sync_all()).map_err(|e| io(&tmp, e))?;
        drop(file);
        if path.exists() {
            let backup = self.dir.join(format!("{stack}.json.bak"));
            fs::copy(&path, &backup).map_err(|e| io(&backup, e))?;
        }
        fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        sync_dir(&self.dir)
    }

    async fn delete_state(&self, stack: &str) -> Result<(), StateError> {
        for path in [self.state_path(stack), self.dir.join(format!("{stack}.json.bak")), self.journal_path(stack)] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path, e)),
            }
        }
        Ok(())
    }

    async fn lock(&self, stack: &str, info: LockInfo) -> Result<Box<dyn LockGuard>, StateError> {
        Ok(Box::new(self.try_lock(stack, info)?))
    }

    async fn unlock(&self, stack: &str, force: bool) -> Result<UnlockOutcome, StateError> {
        let path = self.lock_path(stack);
        let mut file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(UnlockOutcome::NotLocked),
            Err(e) => return Err(io(&path, e)),
        };
        let holder = read_lock_info(&mut file);
        match file.try_lock() {
            Ok(()) => {
                fs::remove_file(&path).map_err(|e| io(&path, e))?;
                Ok(UnlockOutcome::RemovedStale(holder))
            }
            Err(TryLockError::WouldBlock) if force => {
                fs::remove_file(&path).map_err(|e| io(&path, e))?;
                Ok(UnlockOutcome::ForcedWhileHeld(holder))
            }
            Err(TryLockError::WouldBlock) => Err(StateError::Lock(format!(
                "stack `{stack}` is locked by {}, which is still running; stop it first, or pass --force to remove the lock anyway (two writers can then corrupt the state)",
                holder.map(|h| h.describe()).unwrap_or_else(|| "another process".into())
            ))),
            Err(TryLockError::Error(e)) => Err(io(&path, e)),
        }
    }

    fn journal_path(&self, stack: &str) -> PathBuf {
        self.dir.join(format!("{stack}.journal"))
    }

    async fn list_stacks(&self) -> Result<Vec<String>, StateError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.dir, e)),
        };
        let mut stacks: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".json")).map(str::to_string))
            .filter(|n| !n.starts_with('.'))
            .collect();
        stacks.sort();
        Ok(stacks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_lock_fails_with_owner_and_release_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new(dir.path());
        let guard = backend.lock("s", LockInfo::for_this_process("berth stack up")).await.unwrap();
        let err = backend.lock("s", LockInfo::for_this_process("berth stack up")).await.err().unwrap().to_string();
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        assert!(err.contains("berth state unlock s"), "{err}");
        assert!(matches!(backend.unlock("s", false).await, Err(StateError::Lock(_))));
        drop(guard);
        assert!(!backend.lock_path("s").exists());
        let again = backend.lock("s", LockInfo::for_this_process("x")).await;
        assert!(again.is_ok());
    }

    #[tokio::test]
    async fn unlock_removes_a_lock_nobody_holds() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new(dir.path());
        fs::write(backend.lock_path("s"), serde_json::to_vec(&LockInfo::for_this_process("gone")).unwrap()).unwrap();
        assert!(matches!(backend.unlock("s", false).await.unwrap(), UnlockOutcome::RemovedStale(Some(_))));
        assert_eq!(backend.unlock("s", false).await.unwrap(), UnlockOutcome::NotLocked);
    }

    #[tokio::test]
    async fn writes_are_atomic_and_keep_a_backup() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new(dir.path());
        backend.write_state("s", b"one").await.unwrap();
        backend.write_state("s", b"two").await.unwrap();
        assert_eq!(backend.read_state("s").await.unwrap().unwrap(), b"two");
        assert_eq!(fs::read(dir.path().join("s.json.bak")).unwrap(), b"one");
        assert_eq!(backend.list_stacks().await.unwrap(), vec!["s".to_string()]);
    }
}
