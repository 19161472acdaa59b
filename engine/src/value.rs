//! The engine's value model: JSON plus two things JSON cannot say — "this is a secret" and
//! "this is not known until apply".
//!
//! Typed resources convert to and from [`Value`] through serde; the wrapper types
//! [`Secret`](crate::Secret) and [`Input::Unknown`](crate::Input) serialize to small marker
//! objects that [`Value::from_json`] turns into the dedicated variants.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Number;

/// Marker key a [`Secret`](crate::Secret) serializes under: `{"$berth.secret": <value>}`.
pub const SECRET_MARKER: &str = "$berth.secret";
/// Marker key of a value not known until apply: `{"$berth.unknown": true}`.
pub const UNKNOWN_MARKER: &str = "$berth.unknown";
/// Marker key of a reference to another resource's output inside a program's inputs.
pub(crate) const OUTPUT_MARKER: &str = "$berth.output";

/// What a masked secret looks like in every rendering.
pub const SECRET_MASK: &str = "[secret]";
/// What an unknown value looks like in every rendering.
pub const UNKNOWN_TEXT: &str = "(known after apply)";

/// A JSON-like value that may hold secrets and unknowns.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Value>),
    Object(BTreeMap<String, Value>),
    /// A value that must be encrypted in state and masked in every output.
    Secret(Box<Value>),
    /// A value that will only be known after apply (an output of a resource not yet created).
    Unknown,
}

/// One step of a path into a value: an object key or an array index.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

/// A path into a value, e.g. `tags.owner` or `rules[2].cidr`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Path(pub Vec<PathSegment>);

impl Path {
    pub fn root() -> Self {
        Path(Vec::new())
    }

    /// Parses `a.b[2].c` or `tags["x.y"]`. Keys with dots or brackets are quoted.
    pub fn parse(text: &str) -> Result<Path, String> {
        let mut segments = Vec::new();
        let mut chars = text.chars().peekable();
        let mut key = String::new();
        let flush = |key: &mut String, segments: &mut Vec<PathSegment>| {
            if !key.is_empty() {
                segments.push(PathSegment::Key(std::mem::take(key)));
            }
        };
        while let Some(c) = chars.next() {
            match c {
                '.' => {
                    if key.is_empty() && !matches!(segments.last(), Some(PathSegment::Index(_)) | Some(PathSegment::Key(_))) {
                        return Err(format!("empty segment in path `{text}`"));
                    }
                    flush(&mut key, &mut segments);
                }
                '[' => {
                    flush(&mut key, &mut segments);
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        let mut quoted = String::new();
                        loop {
                            match chars.next() {
                                Some('"') => break,
                                Some(ch) => quoted.push(ch),
                                None => return Err(format!("unterminated quote in path `{text}`")),
                            }
                        }
                        if chars.next() != Some(']') {
                            return Err(format!("expected `]` after quoted key in path `{text}`"));
                        }
                        segments.push(PathSegment::Key(quoted));
                    } else {
                        let mut digits = String::new();
                        loop {
                            match chars.next() {
                                Some(']') => break,
                                Some(ch) if ch.is_ascii_digit() => digits.push(ch),
                                _ => return Err(format!("expected an index like [0] in path `{text}`")),
                            }
                        }
                        let index = digits.parse().map_err(|_| format!("bad index in path `{text}`"))?;
                        segments.push(PathSegment::Index(index));
                    }
                }
                _ => key.push(c),
            }
        }
        flush(&mut key, &mut segments);
        if segments.is_empty() {
            return Err("empty path".into());
        }
        Ok(Path(segments))
    }

    pub fn child_key(&self, key: &str) -> Path {
        let mut segments = self.0.clone();
        segments.push(PathSegment::Key(key.to_string()));
        Path(segments)
    }

    pub fn child_index(&self, index: usize) -> Path {
        let mut segments = self.0.clone();
        segments.push(PathSegment::Index(index));
        Path(segments)
    }

    /// True when `self` equals `other` or lies inside it (`a.b` is within `a`).
    pub fn starts_with(&self, other: &Path) -> bool {
        self.0.len() >= other.0.len() && self.0[..other.0.len()] == other.0[..]
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The first key, if the path starts with one (the top-level field name).
    pub fn first_key(&self) -> Option<&str> {
        match self.0.first() {
            Some(PathSegment::Key(k)) => Some(k),
            _ => None,
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                PathSegment::Key(k) => {
                    let plain = !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '/' || c == ':');
                    if plain {
                        if i > 0 {
                            f.write_str(".")?;
                        }
                        f.write_str(k)?;
                    } else {
                        write!(f, "[{k:?}]")?;
                    }
                }
                PathSegment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

impl Value {
    /// Converts JSON (as produced by serializing a typed resource) into a value, turning the
    /// secret and unknown markers into their variants. Output markers stay as plain objects:
    /// [`Template`](crate::input::Template) substitutes them.
    pub fn from_json(json: serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => Value::Number(n),
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(items) => Value::Array(items.into_iter().map(Value::from_json).collect()),
            serde_json::Value::Object(map) => {
                if map.len() == 1 {
                    if let Some(inner) = map.get(SECRET_MARKER) {
                        return Value::from_json(inner.clone()).into_secret();
                    }
                    if map.contains_key(UNKNOWN_MARKER) {
                        return Value::Unknown;
                    }
                }
                Value::Object(map.into_iter().map(|(k, v)| (k, Value::from_json(v))).collect())
            }
        }
    }

    /// Converts to JSON for a provider: secrets are revealed, unknowns become the unknown marker
    /// (which [`Input`](crate::Input) reads as `Input::Unknown`).
    pub fn to_json_revealed(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => serde_json::Value::Number(n.clone()),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Array(items) => serde_json::Value::Array(items.iter().map(Value::to_json_revealed).collect()),
            Value::Object(map) => serde_json::Value::Object(map.iter().map(|(k, v)| (k.clone(), v.to_json_revealed())).collect()),
            Value::Secret(inner) => inner.to_json_revealed(),
            Value::Unknown => serde_json::json!({ UNKNOWN_MARKER: true }),
        }
    }

    /// Converts to JSON for people and machines: secrets become `"[secret]"`, unknowns
    /// `"(known after apply)"`.
    pub fn to_json_masked(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => serde_json::Value::Number(n.clone()),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Array(items) => serde_json::Value::Array(items.iter().map(Value::to_json_masked).collect()),
            Value::Object(map) => serde_json::Value::Object(map.iter().map(|(k, v)| (k.clone(), v.to_json_masked())).collect()),
            Value::Secret(_) => serde_json::Value::String(SECRET_MASK.into()),
            Value::Unknown => serde_json::Value::String(UNKNOWN_TEXT.into()),
        }
    }

    /// Wraps in `Secret` unless already secret.
    pub fn into_secret(self) -> Value {
        match self {
            Value::Secret(_) | Value::Unknown => self,
            other => Value::Secret(Box::new(other)),
        }
    }

    pub fn is_secret(&self) -> bool {
        matches!(self, Value::Secret(_))
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value with any secret wrapper removed at this level.
    pub fn unwrap_secret(&self) -> &Value {
        match self {
            Value::Secret(inner) => inner.unwrap_secret(),
            other => other,
        }
    }

    /// True if any part of the value is unknown.
    pub fn contains_unknown(&self) -> bool {
        match self {
            Value::Unknown => true,
            Value::Array(items) => items.iter().any(Value::contains_unknown),
            Value::Object(map) => map.values().any(Value::contains_unknown),
            Value::Secret(inner) => inner.contains_unknown(),
            _ => false,
        }
    }

    /// True if any part of the value is secret.
    pub fn contains_secret(&self) -> bool {
        match self {
            Value::Secret(_) => true,
            Value::Array(items) => items.iter().any(Value::contains_secret),
            Value::Object(map) => map.values().any(Value::contains_secret),
            _ => false,
        }
    }

    /// Every secret string inside the value (used to scrub text that might echo them).
    pub fn secret_strings(&self, out: &mut Vec<String>) {
        fn all_strings(value: &Value, out: &mut Vec<String>) {
            match value {
                Value::String(s) => out.push(s.clone()),
                Value::Number(n) => out.push(n.to_string()),
                Value::Array(items) => items.iter().for_each(|v| all_strings(v, out)),
                Value::Object(map) => map.values().for_each(|v| all_strings(v, out)),
                Value::Secret(inner) => all_strings(inner, out),
                _ => {}
            }
        }
        match self {
            Value::Secret(inner) => all_strings(inner, out),
            Value::Array(items) => items.iter().for_each(|v| v.secret_strings(out)),
            Value::Object(map) => map.values().for_each(|v| v.secret_strings(out)),
            _ => {}
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self.unwrap_secret() {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&BTreeMap<String, Value>> {
        match self.unwrap_secret() {
            Value::Object(map) => Some(map),
            _ => None,
        }
    }

    /// The value at `path`, looking through secrets (the result keeps the secret wrapper of the
    /// node it is found in, so secrecy is never lost by indexing).
    pub fn get_path(&self, path: &Path) -> Option<Value> {
        let mut current = self;
        let mut secret = false;
        for segment in &path.0 {
            if let Value::Secret(inner) = current {
                secret = true;
                current = inner;
            }
            current = match (segment, current) {
                (PathSegment::Key(k), Value::Object(map)) => map.get(k)?,
                (PathSegment::Index(i), Value::Array(items)) => items.get(*i)?,
                (_, Value::Unknown) => return Some(Value::Unknown),
                _ => return None,
            };
        }
        let found = current.clone();
        Some(if secret { found.into_secret() } else { found })
    }

    /// Sets the value at `path`, creating objects along the way. Returns false when the path
    /// crosses a non-object (or an index out of range).
    pub fn set_path(&mut self, path: &Path, new: Value) -> bool {
        let mut current = self;
        for segment in &path.0 {
            if let Value::Secret(inner) = current {
                current = inner;
            }
            if matches!(current, Value::Null)
                && let PathSegment::Key(_) = segment
            {
                *current = Value::Object(BTreeMap::new());
            }
            current = match (segment, current) {
                (PathSegment::Key(k), Value::Object(map)) => map.entry(k.clone()).or_insert(Value::Null),
                (PathSegment::Index(i), Value::Array(items)) if *i < items.len() => &mut items[*i],
                _ => return false,
            };
        }
        *current = new;
        true
    }

    /// Removes the value at `path`; returns it if present.
    pub fn remove_path(&mut self, path: &Path) -> Option<Value> {
        let (last, parents) = path.0.split_last()?;
        let mut current = self;
        for segment in parents {
            if let Value::Secret(inner) = current {
                current = inner;
            }
            current = match (segment, current) {
                (PathSegment::Key(k), Value::Object(map)) => map.get_mut(k)?,
                (PathSegment::Index(i), Value::Array(items)) => items.get_mut(*i)?,
                _ => return None,
            };
        }
        if let Value::Secret(inner) = current {
            current = inner;
        }
        match (last, current) {
            (PathSegment::Key(k), Value::Object(map)) => map.remove(k),
            _ => None,
        }
    }

    /// Equality that treats `Secret(x)` and `x` as equal: whether a value is secret is a matter
    /// of display, not a change to the resource.
    pub fn same_content(&self, other: &Value) -> bool {
        match (self.unwrap_secret(), other.unwrap_secret()) {
            (Value::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_content(y)),
            (Value::Object(a), Value::Object(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|((ka, va), (kb, vb))| ka == kb && va.same_content(vb))
            }
            (Value::Number(a), Value::Number(b)) => numbers_equal(a, b),
            (a, b) => a == b,
        }
    }

    /// A short one-line rendering for plans and errors: secrets masked, long values cut.
    pub fn display_short(&self) -> String {
        let text = match self {
            Value::Secret(_) => return SECRET_MASK.into(),
            Value::Unknown => return UNKNOWN_TEXT.into(),
            other => serde_json::to_string(&other.to_json_masked()).unwrap_or_default(),
        };
        const LIMIT: usize = 120;
        if text.chars().count() > LIMIT {
            let cut: String = text.chars().take(LIMIT).collect();
            format!("{cut}…")
        } else {
            text
        }
    }
}

/// `1` and `1.0` are the same number to a user; JSON round trips may change the form.
fn numbers_equal(a: &Number, b: &Number) -> bool {
    if a == b {
        return true;
    }
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Number(n.into())
    }
}

/// Renders masked: a `Value` never prints a secret by accident.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn markers_become_variants() {
        let v = Value::from_json(json!({"a": {"$berth.secret": "pw"}, "b": {"$berth.unknown": true}, "c": [1]}));
        let map = v.as_object().unwrap();
        assert_eq!(map["a"], Value::Secret(Box::new(Value::String("pw".into()))));
        assert_eq!(map["b"], Value::Unknown);
        assert_eq!(v.to_json_masked(), json!({"a": "[secret]", "b": "(known after apply)", "c": [1]}));
        assert_eq!(v.to_json_revealed(), json!({"a": "pw", "b": {"$berth.unknown": true}, "c": [1]}));
    }

    #[test]
    fn paths_parse_and_display() {
        let p = Path::parse("rules[2].cidr").unwrap();
        assert_eq!(p.to_string(), "rules[2].cidr");
        let q = Path::parse(r#"tags["a.b"]"#).unwrap();
        assert_eq!(q.0, vec![PathSegment::Key("tags".into()), PathSegment::Key("a.b".into())]);
        assert_eq!(q.to_string(), r#"tags["a.b"]"#);
        assert!(Path::parse("a[x]").is_err());
    }

    #[test]
    fn get_set_remove_path() {
        let mut v = Value::from_json(json!({"a": {"b": [1, 2]}}));
        assert_eq!(v.get_path(&Path::parse("a.b[1]").unwrap()), Some(Value::from(2i64)));
        assert!(v.set_path(&Path::parse("a.c.d").unwrap(), "x".into()));
        assert_eq!(v.get_path(&Path::parse("a.c.d").unwrap()), Some("x".into()));
        assert!(v.remove_path(&Path::parse("a.c").unwrap()).is_some());
        assert_eq!(v.get_path(&Path::parse("a.c").unwrap()), None);
    }

    #[test]
    fn indexing_into_a_secret_stays_secret() {
        let v = Value::from_json(json!({"$berth.secret": {"user": "u", "pass": "p"}}));
        assert!(v.get_path(&Path::parse("pass").unwrap()).unwrap().is_secret());
        let mut found = Vec::new();
        v.secret_strings(&mut found);
        found.sort();
        assert_eq!(found, vec!["p".to_string(), "u".to_string()]);
    }

    #[test]
    fn secrecy_is_not_content() {
        assert!(Value::from("x").into_secret().same_content(&Value::from("x")));
        assert!(Value::from_json(json!(1)).same_content(&Value::from_json(json!(1.0))));
        assert!(!Value::from("x").same_content(&Value::from("y")));
    }
}
