//! Stack configuration: YAML files parsed into a tree that remembers where every value was
//! written, merged with tier defaults and `--config` overrides, and read into typed structs
//! with serde so that every error names `file:line:column` and the dotted key.
//!
//! - [`parse_yaml`] builds a [`Node`] tree (anchors, aliases and merge keys resolved).
//! - [`merge`] and [`set_override`] combine tier defaults, the stack file and the command line.
//! - [`decrypt_secure`] turns `{secure: ...}` values into [`NodeKind::Secret`].
//! - [`from_node`] deserializes a typed struct, reporting errors with their locations.
//! - [`set_in_yaml_text`] edits a stack file in place, keeping comments and formatting.

use std::fmt;
use std::sync::Arc;

mod de;
mod de_error;
mod edit;
mod yaml;

pub use de::from_node;
pub use edit::set_in_yaml_text;
pub use yaml::parse_yaml;

/// Where a value was written: a file (or a pseudo-file such as `--config`), 1-based line and
/// column (columns count characters, not bytes).
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    pub file: Arc<str>,
    pub line: usize,
    pub column: usize,
}

impl Source {
    pub fn new(file: &str, line: usize, column: usize) -> Source {
        Source { file: Arc::from(file), line, column }
    }

    /// (line, column), for comparing positions within one file.
    fn position(&self) -> (usize, usize) {
        (self.line, self.column)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A configuration error: `{location}: {key}: {message}`, plus an optional hint that the CLI
/// prints on its own line.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigError {
    pub location: Option<Source>,
    pub key: Option<String>,
    pub message: String,
    pub help: Option<String>,
}

impl ConfigError {
    pub fn new(message: impl Into<String>) -> ConfigError {
        ConfigError { location: None, key: None, message: message.into(), help: None }
    }

    pub fn at(mut self, source: &Source) -> ConfigError {
        self.location = Some(source.clone());
        self
    }

    /// Sets the key path; an empty path means "no key".
    pub fn with_key(mut self, key: impl Into<String>) -> ConfigError {
        let key = key.into();
        self.key = if key.is_empty() { None } else { Some(key) };
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> ConfigError {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(location) = &self.location {
            write!(f, "{location}: ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A non-fatal finding while reading configuration (e.g. a secret stored in plaintext).
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigWarning {
    pub location: Source,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.location, self.key, self.message)
    }
}

/// A configuration value and where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub source: Source,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    Null,
    Bool(bool),
    Integer(i64),
    Float(f64),
    String(String),
    Seq(Vec<Node>),
    /// Insertion order kept.
    Map(Vec<(Key, Node)>),
    /// `{secure: "<ciphertext>"}` as written in a file, not yet decrypted.
    Secure(String),
    /// A decrypted secure value.
    Secret(Box<Node>),
}

/// A mapping key and where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub name: String,
    pub source: Source,
}

impl Node {
    pub fn new(kind: NodeKind, source: Source) -> Node {
        Node { kind, source }
    }

    /// Map lookup; `None` for a missing key or a node that is not a map.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Lookup by dotted path `a.b.c` (segments may be quoted: `a."b.c"`).
    pub fn get_path(&self, dotted: &str) -> Option<&Node> {
        let segments = split_dotted_key(dotted).ok()?;
        segments.iter().try_fold(self, |node, segment| node.get(segment))
    }

    pub fn empty_map(source: Source) -> Node {
        Node { kind: NodeKind::Map(Vec::new()), source }
    }

    pub fn describe(&self) -> &'static str {
        match &self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "boolean",
            NodeKind::Integer(_) => "integer",
            NodeKind::Float(_) => "float",
            NodeKind::String(_) => "string",
            NodeKind::Seq(_) => "list",
            NodeKind::Map(_) => "map",
            NodeKind::Secure(_) => "encrypted secret",
            NodeKind::Secret(_) => "secret",
        }
    }

    /// The kind with an article: "an integer", "a map", ...
    pub(crate) fn a_kind(&self) -> String {
        let kind = self.describe();
        let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
        format!("{article} {kind}")
    }

    /// Sets the source of this node and everything below it.
    fn set_source_deep(&mut self, source: &Source) {
        self.source = source.clone();
        match &mut self.kind {
            NodeKind::Seq(items) => items.iter_mut().for_each(|item| item.set_source_deep(source)),
            NodeKind::Map(entries) => entries.iter_mut().for_each(|(key, value)| {
                key.source = source.clone();
                value.set_source_deep(source);
            }),
            NodeKind::Secret(inner) => inner.set_source_deep(source),
            _ => {}
        }
    }

    /// Equality of values, ignoring sources and the order of map keys.
    pub(crate) fn same_value(&self, other: &Node) -> bool {
        match (&self.kind, &other.kind) {
            (NodeKind::Seq(a), NodeKind::Seq(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_value(y)),
            (NodeKind::Map(a), NodeKind::Map(b)) => {
                a.len() == b.len() && a.iter().all(|(k, v)| other.get(&k.name).is_some_and(|w| v.same_value(w)))
            }
            (NodeKind::Secret(a), NodeKind::Secret(b)) => a.same_value(b),
            (NodeKind::Float(a), NodeKind::Float(b)) => a == b || (a.is_nan() && b.is_nan()),
            (a, b) => a == b,
        }
    }
}

/// Splits `a.b."c.d"` into `["a", "b", "c.d"]`. Quoted segments use `"` with `\` escapes.
pub(crate) fn split_dotted_key(dotted: &str) -> Result<Vec<String>, String> {
    let mut segments = Vec::new();
    let mut chars = dotted.chars().peekable();
    loop {
        let mut segment = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated quote in key `{dotted}`")),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => segment.push(c),
                        None => return Err(format!("unterminated quote in key `{dotted}`")),
                    },
                    Some(c) => segment.push(c),
                }
            }
            match chars.next() {
                None => {
                    segments.push(segment);
                    return Ok(segments);
                }
                Some('.') => {}
                Some(c) => return Err(format!("unexpected `{c}` after a quoted segment in key `{dotted}`")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        if segment.is_empty() {
                            return Err(format!("empty segment in key `{dotted}`"));
                        }
                        segments.push(segment);
                        return Ok(segments);
                    }
                    Some('.') => break,
                    Some(c) => segment.push(c),
                }
            }
            if segment.is_empty() {
                return Err(format!("empty segment in key `{dotted}`"));
            }
        }
        segments.push(segment);
    }
}

/// Formats one key for a dotted path, quoting it when it would not read back as one segment.
fn quote_key(key: &str) -> String {
    let plain = !key.is_empty() && !key.chars().any(|c| c == '.' || c == '"' || c == '[' || c == ']' || c.is_whitespace());
    if plain { key.to_string() } else { format!("\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\"")) }
}

/// `path.key` (or `key` at the top).
pub(crate) fn push_key(path: &str, key: &str) -> String {
    if path.is_empty() { quote_key(key) } else { format!("{path}.{}", quote_key(key)) }
}

/// `path[index]`.
pub(crate) fn push_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

fn join_keys(segments: &[String]) -> String {
    segments.iter().fold(String::new(), |path, segment| push_key(&path, segment))
}

/// Deep merge: maps merge key by key (base order kept, new keys appended); anything else is
/// replaced by the overlay (lists are replaced, not concatenated; a null overlay replaces too).
pub fn merge(base: Node, overlay: Node) -> Node {
    match (base.kind, overlay.kind) {
        (NodeKind::Map(mut entries), NodeKind::Map(overlay_entries)) => {
            for (key, value) in overlay_entries {
                match entries.iter().position(|(k, _)| k.name == key.name) {
                    Some(index) => {
                        let (_, old) = entries.remove(index);
                        entries.insert(index, (key, merge(old, value)));
                    }
                    None => entries.push((key, value)),
                }
            }
            Node { kind: NodeKind::Map(entries), source: overlay.source }
        }
        (_, kind) => Node { kind, source: overlay.source },
    }
}

/// Sets `segments` in `root` to `value`, creating intermediate maps (a null intermediate
/// becomes a map). `key_source` is used for keys that have to be created.
pub(crate) fn set_path(root: &mut Node, segments: &[String], value: Node, key_source: &Source) -> Result<(), ConfigError> {
    set_path_at(root, segments, 0, value, key_source)
}

fn set_path_at(node: &mut Node, segments: &[String], depth: usize, value: Node, key_source: &Source) -> Result<(), ConfigError> {
    let Some(segment) = segments.get(depth) else {
        *node = value;
        return Ok(());
    };
    if matches!(node.kind, NodeKind::Null) {
        node.kind = NodeKind::Map(Vec::new());
    }
    let position = match &node.kind {
        NodeKind::Map(entries) => entries.iter().position(|(k, _)| &k.name == segment),
        _ => {
            let (dotted, at) = (join_keys(segments), join_keys(&segments[..depth]));
            let what = if at.is_empty() { "the configuration".to_string() } else { format!("`{at}`") };
            let message = format!("cannot set `{dotted}`: {what} is {} (defined at {}), not a map", node.a_kind(), node.source);
            return Err(ConfigError::new(message).with_key(dotted));
        }
    };
    let NodeKind::Map(entries) = &mut node.kind else {
        return Ok(());
    };
    let index = position.unwrap_or_else(|| {
        entries.push((Key { name: segment.clone(), source: key_source.clone() }, Node::new(NodeKind::Null, key_source.clone())));
        entries.len() - 1
    });
    set_path_at(&mut entries[index].1, segments, depth + 1, value, key_source)
}

/// Applies one `--config key=value` override. `value_text` is read as a YAML scalar or flow
/// value (`3` is an integer, `"3"` a string, `[a, b]` a list); every node gets `source`.
pub fn set_override(root: &mut Node, dotted_key: &str, value_text: &str, source: Source) -> Result<(), ConfigError> {
    let segments = split_dotted_key(dotted_key).map_err(|message| ConfigError::new(message).at(&source))?;
    let value = yaml::parse_value(value_text, &source);
    set_path(root, &segments, value, &source).map_err(|e| e.at(&source))
}

/// Decrypts every `Secure(ciphertext)` below `node` into `Secret(value)`, where the plaintext is
/// read as a YAML scalar or flow value. Key paths in errors are relative to `node`.
pub fn decrypt_secure(node: &mut Node, decrypt: &mut dyn FnMut(&str) -> Result<String, String>) -> Result<(), ConfigError> {
    decrypt_at(node, String::new(), decrypt)
}

fn decrypt_at(node: &mut Node, path: String, decrypt: &mut dyn FnMut(&str) -> Result<String, String>) -> Result<(), ConfigError> {
    match &mut node.kind {
        NodeKind::Secure(ciphertext) => {
            let plaintext = decrypt(ciphertext).map_err(|e| {
                ConfigError::new(format!("cannot decrypt secret: {e}"))
                    .at(&node.source)
                    .with_key(path)
                    .with_help("check that the stack's passphrase or key is the one the value was encrypted with")
            })?;
            let value = yaml::parse_value(&plaintext, &node.source);
            node.kind = NodeKind::Secret(Box::new(value));
        }
        NodeKind::Seq(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                decrypt_at(item, push_index(&path, index), decrypt)?;
            }
        }
        NodeKind::Map(entries) => {
            for (key, value) in entries.iter_mut() {
                decrypt_at(value, push_key(&path, &key.name), decrypt)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests_de;
#[cfg(test)]
mod tests_edit;
#[cfg(test)]
mod tests_yaml;
