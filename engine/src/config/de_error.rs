//! The error type of the configuration deserializer: located by the first deserializer it
//! passes through, with secret values kept out of its message.

use std::fmt;

use serde::de::{self, Expected, Unexpected};

use super::{ConfigError, Node, NodeKind, Source};

/// The deserializer's error: located by the first deserializer it passes through.
#[derive(Debug)]
pub(crate) struct DeError(Box<Detail>);

#[derive(Debug)]
pub(crate) struct Detail {
    pub(crate) location: Option<Source>,
    pub(crate) key: Option<String>,
    pub(crate) message: String,
    /// The message with the offending value left out, used when that value is secret.
    pub(crate) redacted: Option<String>,
    pub(crate) help: Option<String>,
}

impl DeError {
    pub(crate) fn new(message: String) -> DeError {
        DeError(Box::new(Detail { location: None, key: None, message, redacted: None, help: None }))
    }

    pub(crate) fn into_config_error(self) -> ConfigError {
        let detail = *self.0;
        let mut error = ConfigError::new(detail.message).with_key(detail.key.unwrap_or_default());
        error.location = detail.location;
        error.help = detail.help;
        error
    }

    pub(crate) fn with_help(mut self, help: String) -> DeError {
        self.help = Some(help);
        self
    }

    /// Gives an unlocated error the location of `node` (or of a key at `source`), and removes
    /// any secret plaintext below `node` from its message.
    pub(crate) fn locate(mut self, node: &Node, source: &Source, path: &str, secret: bool) -> DeError {
        if self.location.is_some() {
            return self;
        }
        self.location = Some(source.clone());
        self.key = (!path.is_empty()).then(|| path.to_string());
        if secret && let Some(redacted) = self.redacted.take() {
            self.message = redacted;
        }
        let mut plaintexts = Vec::new();
        collect_plaintexts(node, secret, &mut plaintexts);
        plaintexts.sort_by_key(|text| std::cmp::Reverse(text.len()));
        for text in plaintexts.iter().filter(|t| !t.is_empty()) {
            if self.message.contains(text.as_str()) {
                self.message = self.message.replace(text.as_str(), "[secret]");
            }
        }
        self
    }
}

/// Every scalar (and key) text that is secret below `node`.
fn collect_plaintexts(node: &Node, secret: bool, out: &mut Vec<String>) {
    match &node.kind {
        NodeKind::Secret(inner) => collect_plaintexts(inner, true, out),
        NodeKind::Seq(items) => items.iter().for_each(|item| collect_plaintexts(item, secret, out)),
        NodeKind::Map(entries) => entries.iter().for_each(|(key, value)| {
            if secret {
                out.push(key.name.clone());
            }
            collect_plaintexts(value, secret, out);
        }),
        NodeKind::String(s) if secret => out.push(s.clone()),
        NodeKind::Integer(i) if secret => out.push(i.to_string()),
        NodeKind::Float(f) if secret => out.push(f.to_string()),
        NodeKind::Bool(b) if secret => out.push(b.to_string()),
        _ => {}
    }
}

impl std::ops::Deref for DeError {
    type Target = Detail;
    fn deref(&self) -> &Detail {
        &self.0
    }
}

impl std::ops::DerefMut for DeError {
    fn deref_mut(&mut self) -> &mut Detail {
        &mut self.0
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

fn redact(unexpected: &Unexpected) -> String {
    match unexpected {
        Unexpected::Bool(_) => "a secret boolean".into(),
        Unexpected::Unsigned(_) | Unexpected::Signed(_) => "a secret integer".into(),
        Unexpected::Float(_) => "a secret floating point number".into(),
        Unexpected::Char(_) => "a secret character".into(),
        Unexpected::Str(_) => "a secret string".into(),
        Unexpected::Bytes(_) => "secret bytes".into(),
        Unexpected::Other(_) => "a secret value".into(),
        other => format!("secret {other}"),
    }
}

/// "did you mean" candidate: the closest name within edit distance 3, else a prefix match.
fn suggestion<'a>(given: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let closest = candidates.iter().map(|c| (levenshtein(given, c), *c)).filter(|(d, _)| *d <= 3).min_by_key(|(d, _)| *d).map(|(_, c)| c);
    closest.or_else(|| candidates.iter().copied().find(|c| !given.is_empty() && (c.starts_with(given) || given.starts_with(*c))))
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

fn one_of(expected: &'static [&'static str]) -> String {
    expected.join(", ")
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::new(msg.to_string())
    }

    fn invalid_type(unexpected: Unexpected, expected: &dyn Expected) -> Self {
        let shown = if unexpected == Unexpected::Unit { "null".to_string() } else { unexpected.to_string() };
        let mut e = DeError::new(format!("invalid type: {shown}, expected {expected}"));
        e.redacted = Some(format!("invalid type: {}, expected {expected}", redact(&unexpected)));
        e
    }

    fn invalid_value(unexpected: Unexpected, expected: &dyn Expected) -> Self {
        let mut e = DeError::new(format!("invalid value: {unexpected}, expected {expected}"));
        e.redacted = Some(format!("invalid value: {}, expected {expected}", redact(&unexpected)));
        e
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let hint = suggestion(variant, expected).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
        let mut e = DeError::new(format!("unknown variant `{variant}`{hint}; expected one of: {}", one_of(expected)));
        e.redacted = Some(format!("unknown variant; expected one of: {}", one_of(expected)));
        e
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let hint = suggestion(field, expected).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
        if expected.is_empty() {
            DeError::new(format!("unknown key `{field}`; no keys are expected here"))
        } else {
            DeError::new(format!("unknown key `{field}`{hint}; expected one of: {}", one_of(expected)))
        }
    }

    fn missing_field(field: &'static str) -> Self {
        DeError::new(format!("missing required key `{field}`"))
    }
}
