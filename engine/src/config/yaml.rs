//! YAML text to a [`Node`] tree with source positions, built from yaml-rust2's marked events.
//!
//! yaml-rust2 markers have 1-based lines and 0-based columns counted in characters. A block
//! mapping's `MappingStart` marker points at the first `:`, so a map's source is taken from its
//! first key instead.

use std::collections::HashMap;
use std::sync::Arc;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::{ConfigError, Key, Node, NodeKind, Source, push_index, push_key};

/// Alias expansion can grow a document exponentially ("billion laughs"); stop well before that.
const MAX_NODES: usize = 1_000_000;

#[derive(Default)]
struct Collector {
    events: Vec<(Event, Marker)>,
}

impl MarkedEventReceiver for Collector {
    fn on_event(&mut self, event: Event, mark: Marker) {
        self.events.push((event, mark));
    }
}

/// Parses one YAML document. An empty document (or only comments) is an empty map at `file:1:1`.
pub fn parse_yaml(file: &str, text: &str) -> Result<Node, ConfigError> {
    let file: Arc<str> = Arc::from(file);
    let mut collector = Collector::default();
    Parser::new_from_str(text)
        .load(&mut collector, true)
        .map_err(|e| ConfigError::new(e.info().to_string()).at(&source_of(&file, e.marker())))?;
    let empty = Node::empty_map(Source { file: file.clone(), line: 1, column: 1 });
    let mut builder = Builder { file, anchors: HashMap::new(), stack: Vec::new(), root: None, documents: 0, nodes: 0 };
    for (event, mark) in collector.events {
        builder.event(event, mark)?;
    }
    Ok(match builder.root {
        Some((node, true)) if matches!(node.kind, NodeKind::Null) => empty,
        Some((node, _)) => node,
        None => empty,
    })
}

/// Reads a `--config` value or a decrypted secret as a YAML scalar or flow value, every node
/// getting `source`. Text that YAML would read as something else than what was written (several
/// lines, a block collection, a trailing comment, a syntax error) is taken as a plain string.
pub(crate) fn parse_value(text: &str, source: &Source) -> Node {
    let verbatim = || Node::new(NodeKind::String(text.to_string()), source.clone());
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Node::new(NodeKind::Null, source.clone());
    }
    if text.contains(['\n', '\r']) || trimmed.starts_with('#') {
        return verbatim();
    }
    let Ok(mut node) = parse_yaml(&source.file, text) else {
        return verbatim();
    };
    let flow = trimmed.starts_with('[') || trimmed.starts_with('{');
    let quoted = trimmed.starts_with('"') || trimmed.starts_with('\'');
    let accepted = match &node.kind {
        NodeKind::Seq(_) | NodeKind::Map(_) | NodeKind::Secure(_) => flow,
        _ => quoted || (!flow && !trimmed.contains(" #") && !trimmed.contains("\t#")),
    };
    if !accepted {
        return verbatim();
    }
    node.set_source_deep(source);
    node
}

fn source_of(file: &Arc<str>, mark: &Marker) -> Source {
    Source { file: file.clone(), line: mark.line(), column: mark.col() + 1 }
}

enum FrameKind {
    Seq(Vec<Node>),
    Map {
        entries: Vec<(Key, Node)>,
        pending: Option<PendingKey>,
        /// Position in `entries` of a `<<` merge key, and its value.
        merge: Option<(usize, Node)>,
        /// Source of the `<<` key, for duplicate detection.
        merge_key: Option<Source>,
    },
}

struct PendingKey {
    key: Key,
    merge: bool,
}

struct Frame {
    kind: FrameKind,
    source: Source,
    index: usize,
    anchor: usize,
    path: String,
}

struct Builder {
    file: Arc<str>,
    anchors: HashMap<usize, (Node, usize)>,
    stack: Vec<Frame>,
    /// The document's root, and whether it was an empty plain scalar (an empty document).
    root: Option<(Node, bool)>,
    documents: usize,
    nodes: usize,
}

/// How a scalar was written, for keys and empty values.
struct ScalarInfo {
    text: String,
    plain: bool,
    index: usize,
}

impl Builder {
    fn event(&mut self, event: Event, mark: Marker) -> Result<(), ConfigError> {
        let source = source_of(&self.file, &mark);
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => Ok(()),
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(ConfigError::new("a configuration file must hold exactly one YAML document").at(&source));
                }
                Ok(())
            }
            Event::Alias(id) => {
                let Some((node, size)) = self.anchors.get(&id).cloned() else {
                    return Err(ConfigError::new("alias to an unknown anchor").at(&source).with_key(self.child_path()));
                };
                self.count(size, &source)?;
                self.complete(node, 0, None)
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1, &source)?;
                let kind =
                    scalar_kind(&text, style, tag.as_ref()).map_err(|m| ConfigError::new(m).at(&source).with_key(self.child_path()))?;
                let info = ScalarInfo { plain: style == TScalarStyle::Plain, index: mark.index(), text };
                self.complete(Node::new(kind, source), anchor, Some(info))
            }
            Event::SequenceStart(anchor, tag) => {
                self.count(1, &source)?;
                check_collection_tag(tag.as_ref(), "seq").map_err(|m| ConfigError::new(m).at(&source).with_key(self.child_path()))?;
                let path = self.child_path();
                self.stack.push(Frame { kind: FrameKind::Seq(Vec::new()), source, index: mark.index(), anchor, path });
                Ok(())
            }
            Event::MappingStart(anchor, tag) => {
                self.count(1, &source)?;
                check_collection_tag(tag.as_ref(), "map").map_err(|m| ConfigError::new(m).at(&source).with_key(self.child_path()))?;
                let path = self.child_path();
                let kind = FrameKind::Map { entries: Vec::new(), pending: None, merge: None, merge_key: None };
                self.stack.push(Frame { kind, source, index: mark.index(), anchor, path });
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else {
                    return Err(ConfigError::new("unbalanced YAML events").at(&source));
                };
                let (node, anchor) = finish(frame)?;
                self.complete(node, anchor, None)
            }
        }
    }

    fn count(&mut self, nodes: usize, source: &Source) -> Result<(), ConfigError> {
        self.nodes = self.nodes.saturating_add(nodes);
        if self.nodes > MAX_NODES {
            return Err(ConfigError::new(format!("document too large: more than {MAX_NODES} values after expanding aliases")).at(source));
        }
        Ok(())
    }

    /// The key path of the node that is about to start.
    fn child_path(&self) -> String {
        match self.stack.last() {
            None => String::new(),
            Some(Frame { kind: FrameKind::Seq(items), path, .. }) => push_index(path, items.len()),
            Some(Frame { kind: FrameKind::Map { pending: Some(pending), .. }, path, .. }) => push_key(path, &pending.key.name),
            Some(Frame { path, .. }) => path.clone(),
        }
    }

    /// Attaches a finished node to its parent (or makes it the root).
    fn complete(&mut self, mut node: Node, anchor: usize, scalar: Option<ScalarInfo>) -> Result<(), ConfigError> {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), node_count(&node)));
        }
        let Some(frame) = self.stack.last_mut() else {
            let empty = scalar.is_some_and(|s| s.plain && s.text.is_empty());
            self.root = Some((node, empty));
            return Ok(());
        };
        match &mut frame.kind {
            FrameKind::Seq(items) => items.push(node),
            FrameKind::Map { entries, pending: pending @ None, merge_key, .. } => {
                let (name, plain) = match (&scalar, &node.kind) {
                    (Some(info), _) => (info.text.clone(), info.plain),
                    (None, kind) => match scalar_text(kind) {
                        Some(text) => (text, false),
                        None => {
                            return Err(ConfigError::new(format!("a map key must be a scalar, not {}", node.a_kind()))
                                .at(&node.source)
                                .with_key(frame.path.clone()));
                        }
                    },
                };
                let key = Key { name, source: node.source.clone() };
                let path = push_key(&frame.path, &key.name);
                let merge = plain && key.name == "<<";
                let earlier =
                    if merge { merge_key.clone() } else { entries.iter().find(|(k, _)| k.name == key.name).map(|(k, _)| k.source.clone()) };
                if let Some(first) = earlier {
                    return Err(ConfigError::new(format!(
                        "duplicate key `{}`: it is already defined at line {}, column {}",
                        key.name, first.line, first.column
                    ))
                    .at(&key.source)
                    .with_key(path));
                }
                let first = entries.is_empty() && (merge || merge_key.is_none());
                if merge {
                    *merge_key = Some(key.source.clone());
                }
                // A block mapping's start marker is at its first `:`; point at the first key.
                if first && scalar.as_ref().is_some_and(|info| info.index < frame.index) {
                    frame.source = key.source.clone();
                }
                *pending = Some(PendingKey { key, merge });
                return Ok(());
            }
            FrameKind::Map { entries, pending: pending @ Some(_), merge, .. } => {
                let Some(PendingKey { key, merge: is_merge }) = pending.take() else {
                    return Ok(());
                };
                // An empty value's marker points at whatever follows it; the key is a better place.
                if scalar.as_ref().is_some_and(|s| s.plain && s.text.is_empty()) && node.source.line > key.source.line {
                    node.source = key.source.clone();
                }
                if is_merge {
                    *merge = Some((entries.len(), node));
                } else {
                    entries.push((key, node));
                }
            }
        }
        Ok(())
    }
}

/// Closes a collection: resolves a merge key and recognises `{secure: ...}`.
fn finish(frame: Frame) -> Result<(Node, usize), ConfigError> {
    let kind = match frame.kind {
        FrameKind::Seq(items) => NodeKind::Seq(items),
        FrameKind::Map { mut entries, merge, .. } => {
            if let Some((position, value)) = merge {
                let merged = merged_entries(&entries, value, &push_key(&frame.path, "<<"))?;
                entries.splice(position..position, merged);
            }
            match entries.as_slice() {
                [(key, Node { kind: NodeKind::String(ciphertext), .. })] if key.name == "secure" => NodeKind::Secure(ciphertext.clone()),
                _ => NodeKind::Map(entries),
            }
        }
    };
    Ok((Node::new(kind, frame.source), frame.anchor))
}

/// The entries a `<<` value contributes: keys written explicitly win; with a list of maps the
/// earlier map wins.
fn merged_entries(explicit: &[(Key, Node)], value: Node, path: &str) -> Result<Vec<(Key, Node)>, ConfigError> {
    let not_a_map = |node: &Node| {
        ConfigError::new(format!("the merge key `<<` takes a map or a list of maps, not {}", node.a_kind()))
            .at(&node.source)
            .with_key(path.to_string())
    };
    let maps = match value.kind {
        NodeKind::Map(entries) => vec![entries],
        NodeKind::Seq(items) => {
            let mut maps = Vec::new();
            for item in items {
                match item.kind {
                    NodeKind::Map(entries) => maps.push(entries),
                    _ => return Err(not_a_map(&item)),
                }
            }
            maps
        }
        _ => return Err(not_a_map(&value)),
    };
    let mut merged: Vec<(Key, Node)> = Vec::new();
    for (key, node) in maps.into_iter().flatten() {
        let taken = explicit.iter().chain(merged.iter()).any(|(k, _)| k.name == key.name);
        if !taken {
            merged.push((key, node));
        }
    }
    Ok(merged)
}

fn node_count(node: &Node) -> usize {
    match &node.kind {
        NodeKind::Seq(items) => 1 + items.iter().map(node_count).sum::<usize>(),
        NodeKind::Map(entries) => 1 + entries.iter().map(|(_, v)| 1 + node_count(v)).sum::<usize>(),
        NodeKind::Secret(inner) => 1 + node_count(inner),
        _ => 1,
    }
}

/// The text of a scalar node used as a key through an alias.
fn scalar_text(kind: &NodeKind) -> Option<String> {
    match kind {
        NodeKind::Null => Some(String::new()),
        NodeKind::Bool(b) => Some(b.to_string()),
        NodeKind::Integer(i) => Some(i.to_string()),
        NodeKind::Float(f) => Some(f.to_string()),
        NodeKind::String(s) => Some(s.clone()),
        _ => None,
    }
}

const CORE_TAG: &str = "tag:yaml.org,2002:";

fn tag_text(tag: &Tag) -> String {
    if tag.handle == CORE_TAG { format!("!!{}", tag.suffix) } else { format!("{}{}", tag.handle, tag.suffix) }
}

fn check_collection_tag(tag: Option<&Tag>, expected: &str) -> Result<(), String> {
    match tag {
        None => Ok(()),
        Some(tag) if tag.handle == CORE_TAG && tag.suffix == expected => Ok(()),
        Some(tag) => Err(format!("unsupported tag `{}`", tag_text(tag))),
    }
}

fn scalar_kind(text: &str, style: TScalarStyle, tag: Option<&Tag>) -> Result<NodeKind, String> {
    let Some(tag) = tag else {
        return Ok(if style == TScalarStyle::Plain { resolve_plain(text) } else { NodeKind::String(text.to_string()) });
    };
    let core = if tag.handle == CORE_TAG { tag.suffix.as_str() } else { "" };
    let resolved = resolve_plain(text.trim());
    let wrong = || format!("`{text}` is not a valid `{}` value", tag_text(tag));
    match (core, resolved) {
        ("str", _) => Ok(NodeKind::String(text.to_string())),
        ("int", kind @ NodeKind::Integer(_)) | ("bool", kind @ NodeKind::Bool(_)) | ("null", kind @ NodeKind::Null) => Ok(kind),
        ("float", kind @ NodeKind::Float(_)) => Ok(kind),
        ("float", NodeKind::Integer(i)) => Ok(NodeKind::Float(i as f64)),
        ("int" | "float" | "bool" | "null", _) => Err(wrong()),
        // The non-specific tag `!` only says "not a plain scalar".
        _ if tag_text(tag) == "!" => Ok(NodeKind::String(text.to_string())),
        _ => Err(format!("unsupported tag `{}`", tag_text(tag))),
    }
}

/// Types a plain scalar by the YAML 1.2 core schema.
pub(crate) fn resolve_plain(text: &str) -> NodeKind {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return NodeKind::Null,
        "true" | "True" | "TRUE" => return NodeKind::Bool(true),
        "false" | "False" | "FALSE" => return NodeKind::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return NodeKind::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return NodeKind::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return NodeKind::Float(f64::NAN),
        _ => {}
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<i64>() {
            Ok(i) => NodeKind::Integer(i),
            Err(_) => text.parse::<f64>().map_or_else(|_| NodeKind::String(text.to_string()), NodeKind::Float),
        };
    }
    let radix = [("0x", 16), ("0o", 8)].into_iter().find_map(|(prefix, radix)| text.strip_prefix(prefix).map(|digits| (digits, radix)));
    if let Some((digits, radix)) = radix
        && !digits.is_empty()
        && digits.chars().all(|c| c.is_digit(radix))
    {
        return i64::from_str_radix(digits, radix).map_or_else(|_| NodeKind::String(text.to_string()), NodeKind::Integer);
    }
    if is_core_float(unsigned)
        && let Ok(f) = text.parse::<f64>()
    {
        return NodeKind::Float(f);
    }
    NodeKind::String(text.to_string())
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` (sign already removed).
fn is_core_float(text: &str) -> bool {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", fraction)) => digits(fraction),
        Some((whole, fraction)) => digits(whole) && (fraction.is_empty() || digits(fraction)),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}
