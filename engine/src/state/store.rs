//! Loading a stack's state (snapshot plus any journal left by an interrupted run) and saving it.

use crate::crypto::Keyring;
use crate::state::backend::Backend;
use crate::state::codec::StateCodec;
use crate::state::journal::{read_journal_entries, read_journal_header};
use crate::state::{State, StateError};

/// A stack's state as loaded.
pub struct Loaded {
    pub state: State,
    pub codec: StateCodec,
    /// False when the stack has never been written.
    pub exists: bool,
    /// Entries replayed from the journal of an interrupted run.
    pub replayed: usize,
}

/// Reads the snapshot and replays the journal of an interrupted apply onto it.
pub async fn load(backend: &dyn Backend, stack: &str, keyring: &Keyring) -> Result<Loaded, StateError> {
    let origin = backend.location(stack);
    let (mut state, mut codec, exists) = match backend.read_state(stack).await? {
        Some(bytes) => {
            let (state, codec) = StateCodec::decode_state(&bytes, keyring, &origin)?;
            if state.stack != stack {
                return Err(StateError::Malformed {
                    origin,
                    message: format!("holds the state of stack `{}`, not `{stack}`", state.stack),
                });
            }
            (state, codec, true)
        }
        None => (State::new(stack), StateCodec::new(None, &origin), false),
    };
    let journal_path = backend.journal_path(stack);
    let journal_origin = journal_path.display().to_string();
    let bytes = match std::fs::read(&journal_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded { state, codec, exists, replayed: 0 }),
        Err(source) => return Err(StateError::Io { path: journal_origin, source }),
    };
    let Some(header) = read_journal_header(&bytes, &journal_origin)? else {
        return Ok(Loaded { state, codec, exists, replayed: 0 });
    };
    if header.lineage != state.lineage && exists {
        return Err(StateError::Malformed {
            origin: journal_origin,
            message: format!(
                "journal belongs to another state (lineage {} ≠ {}); move it away if it is not this stack's",
                header.lineage, state.lineage
            ),
        });
    }
    if header.base_serial != state.serial {
        // Already folded into a later snapshot (the run finished writing it, then died before
        // removing the journal).
        return Ok(Loaded { state, codec, exists, replayed: 0 });
    }
    if let Some(info) = &header.secrets
        && !codec.can_encrypt()
    {
        let cipher = keyring.open(info, &journal_origin).map_err(|source| StateError::Crypto { origin: journal_origin.clone(), source })?;
        codec = StateCodec::new(Some(cipher), &origin);
        state.secrets = Some(info.clone());
    }
    state.lineage = header.lineage;
    let entries = read_journal_entries(&bytes, &codec)?;
    for entry in &entries {
        state.apply_entry(entry);
    }
    Ok(Loaded { state, codec, exists: exists || !entries.is_empty(), replayed: entries.len() })
}

/// Writes `state` as the next snapshot (serial + 1) and removes the journal it folds in.
pub async fn save(backend: &dyn Backend, state: &mut State, codec: &StateCodec) -> Result<(), StateError> {
    state.serial += 1;
    let bytes = codec.encode_state(state)?;
    backend.write_state(&state.stack, &bytes).await?;
    let journal = backend.journal_path(&state.stack);
    match std::fs::remove_file(&journal) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StateError::Io { path: journal.display().to_string(), source }),
    }
}
