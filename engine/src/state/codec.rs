//! State documents and journal lines as JSON, with every secret value encrypted on its own.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, json};

use crate::crypto::{Cipher, CryptoError, Keyring, SecretsInfo};
use crate::resource::CustomTimeouts;
use crate::state::journal::JournalEntry;
use crate::state::{PendingKind, PendingOperation, ResourceState, SCHEMA_VERSION, State, UpdateInfo};
use crate::urn::Urn;
use crate::value::{UNKNOWN_MARKER, Value};

/// The marker of an encrypted value in state: `{"$berth.ciphertext": "v1:..."}`.
pub const CIPHERTEXT_MARKER: &str = "$berth.ciphertext";

/// Why state cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{origin}: not a berth state file: {message}")]
    Malformed { origin: String, message: String },
    #[error("{origin}: written by a newer berth (schema version {found}, this build reads up to {SCHEMA_VERSION}); upgrade berth")]
    TooNew { origin: String, found: u64 },
    #[error("{origin}: {source}")]
    Crypto { origin: String, source: CryptoError },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}")]
    Lock(String),
    #[error("{location}: {message}")]
    Backend { location: String, message: String },
}

/// Encodes and decodes state with one stack's key.
#[derive(Clone)]
pub struct StateCodec {
    cipher: Option<Arc<dyn Cipher>>,
    origin: String,
}

fn malformed(origin: &str, message: impl Into<String>) -> StateError {
    StateError::Malformed { origin: origin.to_string(), message: message.into() }
}

impl StateCodec {
    /// A codec that can read and write secrets with `cipher`.
    pub fn new(cipher: Option<Arc<dyn Cipher>>, origin: &str) -> StateCodec {
        StateCodec { cipher, origin: origin.to_string() }
    }

    /// The codec for writing `state`: opens its key, or creates one (recording it in the state)
    /// when the state has none yet. Without a passphrase, state with secrets cannot be written.
    pub fn for_writing(state: &mut State, keyring: &Keyring, origin: &str) -> Result<StateCodec, StateError> {
        let crypto = |source| StateError::Crypto { origin: origin.to_string(), source };
        let cipher = match &state.secrets {
            Some(info) => keyring.open(info, origin).map(Some),
            None => match keyring.create(origin) {
                Ok(cipher) => {
                    state.secrets = Some(cipher.info());
                    Ok(Some(cipher))
                }
                Err(CryptoError::PassphraseMissing { .. }) if !state.has_secrets() => Ok(None),
                Err(e) => Err(e),
            },
        };
        Ok(StateCodec::new(cipher.map_err(crypto)?, origin))
    }

    pub fn can_encrypt(&self) -> bool {
        self.cipher.is_some()
    }

    fn crypto(&self, source: CryptoError) -> StateError {
        StateError::Crypto { origin: self.origin.clone(), source }
    }

    pub fn encode_value(&self, value: &Value) -> Result<serde_json::Value, StateError> {
        Ok(match value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => json!(b),
            Value::Number(n) => serde_json::Value::Number(n.clone()),
            Value::String(s) => json!(s),
            Value::Array(items) => serde_json::Value::Array(items.iter().map(|v| self.encode_value(v)).collect::<Result<_, _>>()?),
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, v) in map {
                    out.insert(k.clone(), self.encode_value(v)?);
                }
                serde_json::Value::Object(out)
            }
            Value::Secret(inner) => {
                let cipher =
                    self.cipher.as_ref().ok_or_else(|| self.crypto(CryptoError::PassphraseMissing { what: self.origin.clone() }))?;
                let plaintext = serde_json::to_vec(&inner.to_json_revealed()).map_err(|e| malformed(&self.origin, e.to_string()))?;
                json!({ CIPHERTEXT_MARKER: cipher.encrypt(&plaintext) })
            }
            Value::Unknown => json!({ UNKNOWN_MARKER: true }),
        })
    }

    pub fn decode_value(&self, json: &serde_json::Value) -> Result<Value, StateError> {
        Ok(match json {
            serde_json::Value::Object(map) if map.len() == 1 && map.contains_key(CIPHERTEXT_MARKER) => {
                let text = map[CIPHERTEXT_MARKER].as_str().ok_or_else(|| malformed(&self.origin, "ciphertext is not a string"))?;
                let cipher =
                    self.cipher.as_ref().ok_or_else(|| self.crypto(CryptoError::PassphraseMissing { what: self.origin.clone() }))?;
                let plaintext = cipher.decrypt(text).map_err(|e| self.crypto(e))?;
                let inner: serde_json::Value =
                    serde_json::from_slice(&plaintext).map_err(|e| malformed(&self.origin, format!("decrypted value is not JSON: {e}")))?;
                Value::from_json(inner).into_secret()
            }
            serde_json::Value::Array(items) => Value::Array(items.iter().map(|v| self.decode_value(v)).collect::<Result<_, _>>()?),
            serde_json::Value::Object(map) => {
                if map.len() == 1 && map.contains_key(UNKNOWN_MARKER) {
                    return Ok(Value::Unknown);
                }
                let mut out = BTreeMap::new();
                for (k, v) in map {
                    out.insert(k.clone(), self.decode_value(v)?);
                }
                Value::Object(out)
            }
            other => Value::from_json(other.clone()),
        })
    }

    pub fn encode_resource(&self, r: &ResourceState) -> Result<serde_json::Value, StateError> {
        let mut m = Map::new();
        m.insert("urn".into(), json!(r.urn));
        m.insert("type".into(), json!(r.ty));
        if !r.custom {
            m.insert("custom".into(), json!(false));
        }
        if let Some(id) = &r.id {
            m.insert("id".into(), json!(id));
        }
        if let Some(parent) = &r.parent {
            m.insert("parent".into(), json!(parent));
        }
        m.insert("inputs".into(), self.encode_value(&r.inputs)?);
        m.insert("outputs".into(), self.encode_value(&r.outputs)?);
        if !r.dependencies.is_empty() {
            m.insert("dependencies".into(), json!(r.dependencies));
        }
        if r.protect {
            m.insert("protect".into(), json!(true));
        }
        if r.retain_on_delete {
            m.insert("retain_on_delete".into(), json!(true));
        }
        if !r.custom_timeouts.is_empty() {
            m.insert(
                "custom_timeouts".into(),
                serde_json::to_value(r.custom_timeouts).map_err(|e| malformed(&self.origin, e.to_string()))?,
            );
        }
        if r.tainted {
            m.insert("tainted".into(), json!(true));
        }
        if r.generation > 0 {
            m.insert("generation".into(), json!(r.generation));
        }
        m.insert("created_at".into(), json!(r.created_at));
        m.insert("updated_at".into(), json!(r.updated_at));
        Ok(serde_json::Value::Object(m))
    }

    pub fn decode_resource(&self, json: &serde_json::Value) -> Result<ResourceState, StateError> {
        let origin = &self.origin;
        let m = json.as_object().ok_or_else(|| malformed(origin, "a resource is not an object"))?;
        let text = |key: &str| m.get(key).and_then(|v| v.as_str()).map(str::to_string);
        let urn_of = |v: &serde_json::Value| {
            v.as_str()
                .ok_or_else(|| malformed(origin, "a URN is not a string"))
                .and_then(|s| Urn::parse(s).map_err(|e| malformed(origin, e.to_string())))
        };
        let urn = urn_of(m.get("urn").ok_or_else(|| malformed(origin, "a resource has no urn"))?)?;
        let flag = |key: &str| m.get(key).and_then(|v| v.as_bool()).unwrap_or(false);
        Ok(ResourceState {
            ty: text("type").ok_or_else(|| malformed(origin, format!("{urn} has no type")))?,
            custom: m.get("custom").and_then(|v| v.as_bool()).unwrap_or(true),
            id: text("id"),
            parent: m.get("parent").map(urn_of).transpose()?,
            inputs: self.decode_value(m.get("inputs").unwrap_or(&serde_json::Value::Null))?,
            outputs: self.decode_value(m.get("outputs").unwrap_or(&serde_json::Value::Null))?,
            dependencies: match m.get("dependencies") {
                Some(serde_json::Value::Array(items)) => items.iter().map(urn_of).collect::<Result<_, _>>()?,
                _ => Vec::new(),
            },
            protect: flag("protect"),
            retain_on_delete: flag("retain_on_delete"),
            custom_timeouts: match m.get("custom_timeouts") {
                Some(v) => serde_json::from_value::<CustomTimeouts>(v.clone())
                    .map_err(|e| malformed(origin, format!("{urn}: custom_timeouts: {e}")))?,
                None => CustomTimeouts::default(),
            },
            tainted: flag("tainted"),
            generation: m.get("generation").and_then(|v| v.as_u64()).unwrap_or(0),
            created_at: text("created_at").unwrap_or_default(),
            updated_at: text("updated_at").unwrap_or_default(),
            urn,
        })
    }

    fn encode_pending(&self, p: &PendingOperation) -> Result<serde_json::Value, StateError> {
        Ok(json!({ "kind": p.kind, "started_at": p.started_at, "resource": self.encode_resource(&p.resource)? }))
    }

    fn decode_pending(&self, json: &serde_json::Value) -> Result<PendingOperation, StateError> {
        let kind: PendingKind = serde_json::from_value(json.get("kind").cloned().unwrap_or_default())
            .map_err(|e| malformed(&self.origin, format!("pending operation kind: {e}")))?;
        Ok(PendingOperation {
            kind,
            started_at: json.get("started_at").and_then(|v| v.as_str()).unwrap_or_default().to_string(),
            resource: self.decode_resource(json.get("resource").unwrap_or(&serde_json::Value::Null))?,
        })
    }

    /// The state document, pretty-printed (state files are read by people too).
    pub fn encode_state(&self, state: &State) -> Result<Vec<u8>, StateError> {
        let mut outputs = Map::new();
        for (k, v) in &state.outputs {
            outputs.insert(k.clone(), self.encode_value(v)?);
        }
        let doc = json!({
            "schema_version": SCHEMA_VERSION,
            "stack": state.stack,
            "lineage": state.lineage,
            "serial": state.serial,
            "berth_version": env!("CARGO_PKG_VERSION"),
            "secrets": state.secrets,
            "last_update": state.last_update,
            "outputs": outputs,
            "resources": state.resources.iter().map(|r| self.encode_resource(r)).collect::<Result<Vec<_>, _>>()?,
            "replaced": state.replaced.iter().map(|r| self.encode_resource(r)).collect::<Result<Vec<_>, _>>()?,
            "pending_operations": state.pending.iter().map(|p| self.encode_pending(p)).collect::<Result<Vec<_>, _>>()?,
        });
        let mut bytes = serde_json::to_vec_pretty(&doc).map_err(|e| malformed(&self.origin, e.to_string()))?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Reads a state document. The key is opened from `keyring` only if the state has secrets.
    pub fn decode_state(bytes: &[u8], keyring: &Keyring, origin: &str) -> Result<(State, StateCodec), StateError> {
        let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| malformed(origin, e.to_string()))?;
        let version = doc.get("schema_version").and_then(|v| v.as_u64()).ok_or_else(|| malformed(origin, "no schema_version"))?;
        if version > SCHEMA_VERSION as u64 {
            return Err(StateError::TooNew { origin: origin.to_string(), found: version });
        }
        let secrets: Option<SecretsInfo> = match doc.get("secrets") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(serde_json::from_value(v.clone()).map_err(|e| malformed(origin, format!("secrets: {e}")))?),
        };
        let needs_key = secrets.is_some() && contains_ciphertext(bytes);
        let cipher = match (&secrets, needs_key) {
            (Some(info), true) => {
                Some(keyring.open(info, origin).map_err(|source| StateError::Crypto { origin: origin.to_string(), source })?)
            }
            (Some(info), false) => keyring.open(info, origin).ok(),
            (None, _) => None,
        };
        let codec = StateCodec::new(cipher, origin);
        let list = |key: &str| -> Vec<serde_json::Value> { doc.get(key).and_then(|v| v.as_array()).cloned().unwrap_or_default() };
        let mut outputs = BTreeMap::new();
        if let Some(map) = doc.get("outputs").and_then(|v| v.as_object()) {
            for (k, v) in map {
                outputs.insert(k.clone(), codec.decode_value(v)?);
            }
        }
        let state = State {
            stack: doc.get("stack").and_then(|v| v.as_str()).ok_or_else(|| malformed(origin, "no stack name"))?.to_string(),
            serial: doc.get("serial").and_then(|v| v.as_u64()).ok_or_else(|| malformed(origin, "no serial"))?,
            lineage: doc.get("lineage").and_then(|v| v.as_str()).ok_or_else(|| malformed(origin, "no lineage"))?.to_string(),
            resources: list("resources").iter().map(|r| codec.decode_resource(r)).collect::<Result<_, _>>()?,
            replaced: list("replaced").iter().map(|r| codec.decode_resource(r)).collect::<Result<_, _>>()?,
            pending: list("pending_operations").iter().map(|p| codec.decode_pending(p)).collect::<Result<_, _>>()?,
            outputs,
            last_update: doc
                .get("last_update")
                .filter(|v| !v.is_null())
                .map(|v| serde_json::from_value::<UpdateInfo>(v.clone()))
                .transpose()
                .map_err(|e| malformed(origin, format!("last_update: {e}")))?,
            secrets,
        };
        Ok((state, codec))
    }

    /// One journal line (without the newline).
    pub fn encode_entry(&self, entry: &JournalEntry) -> Result<Vec<u8>, StateError> {
        let json = match entry {
            JournalEntry::Begin { kind, resource, started_at } => {
                json!({"entry": "begin", "kind": kind, "started_at": started_at, "resource": self.encode_resource(resource)?})
            }
            JournalEntry::Done { kind, resource } => json!({"entry": "done", "kind": kind, "resource": self.encode_resource(resource)?}),
            JournalEntry::Removed { kind, urn, id, from_replaced } => {
                json!({"entry": "removed", "kind": kind, "urn": urn, "id": id, "from_replaced": from_replaced})
            }
            JournalEntry::MovedToReplaced { resource } => {
                json!({"entry": "moved_to_replaced", "resource": self.encode_resource(resource)?})
            }
            JournalEntry::Restored { resource } => json!({"entry": "restored", "resource": self.encode_resource(resource)?}),
            JournalEntry::Renamed { from, to } => json!({"entry": "renamed", "from": from, "to": to}),
            JournalEntry::Failed { kind, urn, message, keep_pending } => {
                json!({"entry": "failed", "kind": kind, "urn": urn, "message": message, "keep_pending": keep_pending})
            }
            JournalEntry::Reconciled { kind, urn } => json!({"entry": "reconciled", "kind": kind, "urn": urn}),
            JournalEntry::Outputs { outputs } => {
                let mut m = Map::new();
                for (k, v) in outputs {
                    m.insert(k.clone(), self.encode_value(v)?);
                }
                json!({"entry": "outputs", "outputs": m})
            }
        };
        serde_json::to_vec(&json).map_err(|e| malformed(&self.origin, e.to_string()))
    }

    pub fn decode_entry(&self, line: &[u8]) -> Result<JournalEntry, StateError> {
        let origin = &self.origin;
        let j: serde_json::Value = serde_json::from_slice(line).map_err(|e| malformed(origin, format!("journal line: {e}")))?;
        let field = |k: &str| j.get(k).cloned().unwrap_or_default();
        let kind = || serde_json::from_value::<PendingKind>(field("kind")).map_err(|e| malformed(origin, format!("journal kind: {e}")));
        let urn = |k: &str| serde_json::from_value::<Urn>(field(k)).map_err(|e| malformed(origin, format!("journal urn: {e}")));
        let resource = || self.decode_resource(&field("resource"));
        Ok(match j.get("entry").and_then(|v| v.as_str()).unwrap_or_default() {
            "begin" => JournalEntry::Begin {
                kind: kind()?,
                resource: resource()?,
                started_at: field("started_at").as_str().unwrap_or_default().to_string(),
            },
            "done" => JournalEntry::Done { kind: kind()?, resource: resource()? },
            "removed" => JournalEntry::Removed {
                kind: kind()?,
                urn: urn("urn")?,
                id: field("id").as_str().map(str::to_string),
                from_replaced: field("from_replaced").as_bool().unwrap_or(false),
            },
            "moved_to_replaced" => JournalEntry::MovedToReplaced { resource: resource()? },
            "restored" => JournalEntry::Restored { resource: resource()? },
            "renamed" => JournalEntry::Renamed { from: urn("from")?, to: urn("to")? },
            "failed" => JournalEntry::Failed {
                kind: kind()?,
                urn: urn("urn")?,
                message: field("message").as_str().unwrap_or_default().to_string(),
                keep_pending: field("keep_pending").as_bool().unwrap_or(false),
            },
            "reconciled" => JournalEntry::Reconciled { kind: kind()?, urn: urn("urn")? },
            "outputs" => {
                let mut outputs = BTreeMap::new();
                if let Some(m) = j.get("outputs").and_then(|v| v.as_object()) {
                    for (k, v) in m {
                        outputs.insert(k.clone(), self.decode_value(v)?);
                    }
                }
                JournalEntry::Outputs { outputs }
            }
            other => return Err(malformed(origin, format!("unknown journal entry `{other}`"))),
        })
    }
}

/// Whether the document holds any encrypted value (a byte search: cheaper than a walk of a large
/// state; the marker cannot appear inside a JSON string unescaped).
fn contains_ciphertext(bytes: &[u8]) -> bool {
    let marker = CIPHERTEXT_MARKER.as_bytes();
    // `$` is rare in state; compare only where one starts.
    bytes.iter().enumerate().any(|(i, b)| *b == b'$' && bytes[i..].starts_with(marker))
}
