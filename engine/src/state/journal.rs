//! The append-only journal written during an apply.
//!
//! Every mutating provider call is preceded by a durable `begin` line (the pending operation)
//! and followed by a `done`/`removed`/`failed` line. Writing a line costs one resource's worth of
//! JSON and an fsync shared with whatever other lines are waiting (group commit), however big the
//! state is. After a clean finish the snapshot is rewritten and the journal removed; after a crash
//! the next run replays it onto the snapshot.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::state::codec::StateCodec;
use crate::state::{PendingKind, ResourceState, StateError};
use crate::urn::Urn;
use crate::value::Value;

/// One line of the journal.
#[derive(Clone, Debug, PartialEq)]
pub enum JournalEntry {
    /// A mutating call is about to be made.
    Begin { kind: PendingKind, resource: ResourceState, started_at: String },
    /// A create, update (or import) finished: the resource as it now is.
    Done { kind: PendingKind, resource: ResourceState },
    /// A delete finished (or a resource was forgotten).
    Removed { kind: PendingKind, urn: Urn, id: Option<String>, from_replaced: bool },
    /// A resource's old incarnation awaits deletion after its replacement was created.
    MovedToReplaced { resource: ResourceState },
    /// A replacement's create failed cleanly: the old incarnation is current again.
    Restored { resource: ResourceState },
    /// An alias matched: the resource's URN changed without any provider call.
    Renamed { from: Urn, to: Urn },
    /// A call failed; `keep_pending` when its outcome is unknown (a timeout).
    Failed { kind: PendingKind, urn: Urn, message: String, keep_pending: bool },
    /// A pending operation from an interrupted run was settled.
    Reconciled { kind: PendingKind, urn: Urn },
    /// The stack's outputs.
    Outputs { outputs: BTreeMap<String, Value> },
}

/// The first line: which snapshot the entries apply to.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JournalHeader {
    pub journal: String,
    pub lineage: String,
    pub base_serial: u64,
    /// The key the entries' secrets are encrypted with.
    #[serde(default)]
    pub secrets: Option<crate::crypto::SecretsInfo>,
}

enum Message {
    Line(Vec<u8>, Option<oneshot::Sender<Result<(), String>>>),
}

/// A journal open for appending.
pub struct Journal {
    path: PathBuf,
    codec: StateCodec,
    sender: Option<mpsc::Sender<Message>>,
    writer: Option<JoinHandle<()>>,
}

fn io_error(path: &Path, source: std::io::Error) -> StateError {
    StateError::Io { path: path.display().to_string(), source }
}

fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
}

impl Journal {
    /// Starts a journal for the snapshot `(lineage, base_serial)`, replacing any old file.
    pub fn create(path: &Path, codec: StateCodec, state: &crate::state::State) -> Result<Journal, StateError> {
        let mut file = OpenOptions::new().create(true).write(true).truncate(true).open(path).map_err(|e| io_error(path, e))?;
        let header = JournalHeader {
            journal: "berth".into(),
            lineage: state.lineage.clone(),
            base_serial: state.serial,
            secrets: state.secrets.clone(),
        };
        let mut line = serde_json::to_vec(&header)
            .map_err(|e| StateError::Malformed { origin: path.display().to_string(), message: e.to_string() })?;
        line.push(b'\n');
        file.write_all(&line).map_err(|e| io_error(path, e))?;
        file.sync_all().map_err(|e| io_error(path, e))?;
        sync_parent(path);
        let (sender, receiver) = mpsc::channel::<Message>();
        let writer = std::thread::Builder::new()
            .name("berth-journal".into())
            .spawn(move || write_loop(file, receiver))
            .map_err(|e| io_error(path, e))?;
        Ok(Journal { path: path.to_path_buf(), codec, sender: Some(sender), writer: Some(writer) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, entry: &JournalEntry, ack: Option<oneshot::Sender<Result<(), String>>>) -> Result<(), StateError> {
        let mut line = self.codec.encode_entry(entry)?;
        line.push(b'\n');
        let sender = self.sender.as_ref().ok_or_else(|| StateError::Lock("journal is closed".into()))?;
        sender.send(Message::Line(line, ack)).map_err(|_| io_error(&self.path, std::io::Error::other("journal writer stopped")))
    }

    /// Appends `entry` and waits until it is on disk.
    pub async fn record(&self, entry: &JournalEntry) -> Result<(), StateError> {
        let (tx, rx) = oneshot::channel();
        self.send(entry, Some(tx))?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(io_error(&self.path, std::io::Error::other(message))),
            Err(_) => Err(io_error(&self.path, std::io::Error::other("journal writer stopped"))),
        }
    }

    /// Appends `entry` without waiting; it is on disk before any later entry that is waited for.
    pub fn record_later(&self, entry: &JournalEntry) -> Result<(), StateError> {
        self.send(entry, None)
    }

    /// Flushes and closes the journal (the file stays until [`Journal::remove`]).
    pub fn close(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        self.sender.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.finish();
    }
}

fn write_loop(mut file: File, receiver: mpsc::Receiver<Message>) {
    let mut failed: Option<String> = None;
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        batch.extend(receiver.try_iter());
        let mut acks = Vec::new();
        if failed.is_none() {
            let mut buffer = Vec::new();
            for Message::Line(line, ack) in batch {
                buffer.extend_from_slice(&line);
                acks.extend(ack);
            }
            if let Err(e) = file.write_all(&buffer).and_then(|_| file.sync_data()) {
                failed = Some(e.to_string());
            }
        } else {
            acks.extend(batch.into_iter().filter_map(|Message::Line(_, ack)| ack));
        }
        for ack in acks {
            let _ = ack.send(match &failed {
                None => Ok(()),
                Some(e) => Err(e.clone()),
            });
        }
    }
}

/// Reads a journal's header and entries. A last line cut short by a crash is ignored.
pub fn read_journal_header(bytes: &[u8], origin: &str) -> Result<Option<JournalHeader>, StateError> {
    let Some(end) = bytes.iter().position(|b| *b == b'\n') else {
        // Killed while writing the header: nothing was recorded after it.
        return Ok(None);
    };
    serde_json::from_slice(&bytes[..end])
        .map(Some)
        .map_err(|e| StateError::Malformed { origin: origin.to_string(), message: format!("journal header: {e}") })
}

/// Reads a journal's entries (after the header). A last line cut short by a crash is ignored.
pub fn read_journal_entries(bytes: &[u8], codec: &StateCodec) -> Result<Vec<JournalEntry>, StateError> {
    let complete = match bytes.iter().rposition(|b| *b == b'\n') {
        Some(end) => &bytes[..=end],
        None => return Ok(Vec::new()),
    };
    complete.split(|b| *b == b'\n').filter(|l| !l.is_empty()).skip(1).map(|line| codec.decode_entry(line)).collect()
}
