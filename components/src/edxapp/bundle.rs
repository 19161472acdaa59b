//! The Open edX configuration bundle: numbered fragments (`00-database-credentials`,
//! `50-general-config`, `81-lms-general-config`, …) that the `config-aggregator` init container
//! concatenates in lexical order (`cat /openedx/config-sources/*/*.yaml`) into
//! `/openedx/config/<lms|cms>.env.yml`.
//!
//! Anchors defined in early fragments (`&mysql_creds` in 00) are used by later ones (`*mysql_creds`
//! in 01 and 50), so a fragment that is valid alone can break the whole file. berth renders the
//! concatenation at plan time — secret values as placeholders — and fails the preview, naming
//! the fragment and line, if it is not a single valid YAML document or uses an undefined anchor.

use std::collections::BTreeMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// One numbered piece of a service's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Fragment {
    /// `NN-purpose`: the ConfigMap/Secret name, which sets the concatenation order.
    pub name: String,
    /// Where the text comes from, for errors (`files/edxapp/mitxonline/50-general-config.yaml`,
    /// `template of Secret 00-database-credentials`).
    pub origin: String,
    pub text: String,
}

impl Fragment {
    pub fn new(name: impl Into<String>, origin: impl Into<String>, text: impl Into<String>) -> Fragment {
        Fragment { name: name.into(), origin: origin.into(), text: text.into() }
    }
}

/// Why a service's configuration would not load.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BundleError {
    #[error("{service} configuration: fragment name `{name}` is used twice ({first} and {second})")]
    DuplicateName { service: String, name: String, first: String, second: String },
    #[error("{service} configuration: fragment name `{name}` ({origin}) must look like NN-purpose (two digits, a dash, a name)")]
    BadName { service: String, name: String, origin: String },
    #[error(
        "{service} configuration: {origin} does not end with a newline, so `cat` would join its last line to the next fragment's first"
    )]
    MissingNewline { service: String, origin: String },
    #[error("{service} configuration: {origin}:{line}:{column}: the alias `*{anchor}` refers to an anchor no earlier fragment defines")]
    UnknownAnchor { service: String, origin: String, line: usize, column: usize, anchor: String },
    #[error("{service} configuration: {origin}:{line}:{column}: not valid YAML once the fragments are concatenated: {message}")]
    Syntax { service: String, origin: String, line: usize, column: usize, message: String },
    #[error("{service} configuration: {origin}:{line}: starts a second YAML document (`---`); the service reads only the first")]
    SecondDocument { service: String, origin: String, line: usize },
}

/// The placeholder a secret value renders as at plan time.
pub const SECRET_PLACEHOLDER: &str = "berth-secret-placeholder";

/// Replaces Go template expressions (`{{ .Secrets.password }}`, as Vault Secrets Operator
/// transformation templates use) with a placeholder, keeping the YAML around them intact.
pub fn placeholder_template(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        match rest[start..].find("}}") {
            Some(end) => {
                out.push_str(SECRET_PLACEHOLDER);
                rest = &rest[start + end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// `NN-purpose`: two digits, a dash, a name.
pub(crate) fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() > 3 && bytes[0].is_ascii_digit() && bytes[1].is_ascii_digit() && bytes[2] == b'-'
}

/// The fragments in the aggregator's order: by name (the directory each is mounted in).
pub fn ordered(service: &str, fragments: &[Fragment]) -> Result<Vec<Fragment>, BundleError> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for f in fragments {
        if !valid_name(&f.name) {
            return Err(BundleError::BadName { service: service.into(), name: f.name.clone(), origin: f.origin.clone() });
        }
        if let Some(first) = seen.insert(&f.name, &f.origin) {
            return Err(BundleError::DuplicateName {
                service: service.into(),
                name: f.name.clone(),
                first: first.into(),
                second: f.origin.clone(),
            });
        }
    }
    let mut sorted = fragments.to_vec();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(sorted)
}

/// One definition of a top-level key.
#[derive(Debug)]
struct TopKey {
    name: String,
    /// The anchor id of its value, if the value is an anchored mapping.
    anchor: usize,
    /// Anchors its value merges (`<<: *anchor`).
    merges: Vec<usize>,
}

/// Follows the parse to find top-level keys (for the override warning) and documents.
#[derive(Default)]
struct Walk {
    depth: usize,
    expecting_key: bool,
    /// Inside a top-level value's mapping, the last key was `<<`.
    after_merge_key: bool,
    top_keys: Vec<TopKey>,
    documents: Vec<Marker>,
}

impl MarkedEventReceiver for Walk {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::DocumentStart => self.documents.push(mark),
            Event::MappingStart(anchor, _) => {
                if self.depth == 1
                    && !self.expecting_key
                    && let Some(key) = self.top_keys.last_mut()
                {
                    key.anchor = anchor;
                }
                self.depth += 1;
                if self.depth == 1 {
                    self.expecting_key = true;
                }
            }
            Event::SequenceStart(..) => self.depth += 1,
            Event::MappingEnd | Event::SequenceEnd => {
                self.depth = self.depth.saturating_sub(1);
                // A nested value of the root mapping ended: next comes a key.
                if self.depth == 1 {
                    self.expecting_key = true;
                }
            }
            Event::Scalar(value, ..) if self.depth == 1 => {
                if self.expecting_key && value != "<<" {
                    self.top_keys.push(TopKey { name: value, anchor: 0, merges: Vec::new() });
                }
                self.expecting_key = !self.expecting_key;
            }
            Event::Alias(_) if self.depth == 1 => self.expecting_key = !self.expecting_key,
            Event::Scalar(value, ..) if self.depth == 2 => self.after_merge_key = value == "<<",
            Event::Alias(id) if self.depth == 2 => {
                if self.after_merge_key
                    && let Some(key) = self.top_keys.last_mut()
                {
                    key.merges.push(id);
                }
                self.after_merge_key = false;
            }
            _ => {}
        }
    }
}

/// Where line `line` (1-based, of the concatenation) comes from: (fragment index, line in it).
fn locate(starts: &[usize], line: usize) -> (usize, usize) {
    let index = starts.iter().rposition(|&s| s <= line).unwrap_or(0);
    (index, line - starts[index] + 1)
}

/// What rendering a service's configuration produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// The concatenated file, as `<service>.env.yml` will read.
    pub text: String,
    /// Top-level keys defined by more than one fragment (the later wins), for a plan warning.
    pub overridden: Vec<String>,
}

/// Concatenates the fragments in order and checks the result loads as one YAML document with
/// every alias defined.
pub fn render(service: &str, fragments: &[Fragment]) -> Result<Rendered, BundleError> {
    let ordered = ordered(service, fragments)?;
    let mut text = String::new();
    let mut starts = Vec::with_capacity(ordered.len());
    for f in &ordered {
        if !f.text.is_empty() && !f.text.ends_with('\n') {
            return Err(BundleError::MissingNewline { service: service.into(), origin: f.origin.clone() });
        }
        starts.push(text.lines().count() + 1);
        text.push_str(&f.text);
    }
    let mut walk = Walk::default();
    let mut parser = Parser::new_from_str(&text);
    if let Err(e) = parser.load(&mut walk, true) {
        let mark = e.marker();
        let (index, line) = locate(&starts, mark.line());
        let origin = ordered[index].origin.clone();
        let column = mark.col() + 1;
        if e.info().contains("unknown anchor") {
            let at = text.lines().nth(mark.line().saturating_sub(1)).unwrap_or_default();
            let anchor: String = at
                .chars()
                .skip(mark.col())
                .skip_while(|c| *c != '*')
                .skip(1)
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            return Err(BundleError::UnknownAnchor { service: service.into(), origin, line, column, anchor });
        }
        return Err(BundleError::Syntax { service: service.into(), origin, line, column, message: e.info().to_string() });
    }
    if let Some(second) = walk.documents.get(1) {
        let (index, line) = locate(&starts, second.line());
        return Err(BundleError::SecondDocument { service: service.into(), origin: ordered[index].origin.clone(), line });
    }
    // A later definition of a key replaces the earlier one (PyYAML keeps the last), unless it
    // merges the earlier one's anchor: then the override is deliberate.
    let mut overridden: Vec<String> = Vec::new();
    for (i, later) in walk.top_keys.iter().enumerate() {
        let earlier: Vec<&TopKey> = walk.top_keys[..i].iter().filter(|k| k.name == later.name).collect();
        let deliberate = earlier.iter().all(|k| k.anchor != 0 && later.merges.contains(&k.anchor));
        if !earlier.is_empty() && !deliberate && !overridden.contains(&later.name) {
            overridden.push(later.name.clone());
        }
    }
    Ok(Rendered { text, overridden })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, text: &str) -> Fragment {
        Fragment::new(name, format!("files/edxapp/test/{name}.yaml"), text)
    }

    #[test]
    fn concatenates_in_name_order_with_anchors_across_fragments() {
        let fragments = vec![
            f("50-general-config", "DATABASES:\n  default: *mysql_creds\nCACHES: {default: {LOCATION: redis}}\n"),
            f("00-database-credentials", "mysql_creds: &mysql_creds\n  USER: u\n  PASSWORD: berth-secret-placeholder\n"),
            f("81-lms-general-config", "CACHES: {default: {LOCATION: other}}\n"),
        ];
        let rendered = render("lms", &fragments).unwrap();
        assert!(rendered.text.starts_with("mysql_creds: &mysql_creds"));
        assert!(rendered.text.ends_with("LOCATION: other}}\n"));
        assert_eq!(rendered.overridden, vec!["CACHES".to_string()]);
        // Merging the earlier definition's anchor makes the override deliberate.
        let merged = vec![f("50-a", "FEATURES: &common {A: true}\n"), f("81-b", "FEATURES:\n  <<: *common\n  B: true\n")];
        assert!(render("lms", &merged).unwrap().overridden.is_empty());
    }

    #[test]
    fn an_undefined_anchor_names_the_fragment_and_line() {
        let fragments = vec![
            f("00-database-credentials", "mysql_creds: &mysql_creds {USER: u}\n"),
            f("50-general-config", "A: 1\nB: *redis_cache_config\n"),
        ];
        let err = render("lms", &fragments).unwrap_err();
        assert_eq!(
            err,
            BundleError::UnknownAnchor {
                service: "lms".into(),
                origin: "files/edxapp/test/50-general-config.yaml".into(),
                line: 2,
                column: 4,
                anchor: "redis_cache_config".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "lms configuration: files/edxapp/test/50-general-config.yaml:2:4: the alias `*redis_cache_config` refers to an anchor no earlier fragment defines"
        );
        // Defined only LATER in the order: as undefined as not at all.
        let late = vec![f("10-a", "x: *late\n"), f("20-b", "y: &late 1\n")];
        assert!(matches!(render("cms", &late), Err(BundleError::UnknownAnchor { anchor, .. }) if anchor == "late"));
    }

    #[test]
    fn syntax_errors_second_documents_and_missing_newlines_are_reported() {
        let broken = vec![f("00-a", "a: 1\n"), f("50-b", "b: [1, 2\nc: 3\n")];
        let err = render("lms", &broken).unwrap_err();
        assert!(matches!(&err, BundleError::Syntax { origin, .. } if origin.ends_with("50-b.yaml")), "{err}");
        let two = vec![f("00-a", "a: 1\n"), f("50-b", "---\nb: 2\n")];
        assert!(matches!(render("lms", &two), Err(BundleError::SecondDocument { line: 1, .. })));
        let joined = vec![f("00-a", "a: 1"), f("50-b", "b: 2\n")];
        assert!(matches!(render("lms", &joined), Err(BundleError::MissingNewline { .. })));
        assert!(matches!(render("lms", &[f("5-x", "a: 1\n")]), Err(BundleError::BadName { .. })));
        assert!(matches!(
            render("lms", &[f("50-x", "a: 1\n"), Fragment::new("50-x", "other", "b: 1\n")]),
            Err(BundleError::DuplicateName { .. })
        ));
    }

    #[test]
    fn secret_templates_render_as_placeholders() {
        let template = "mysql_creds: &mysql_creds\n  USER: {{ .Secrets.username }}\n  PASSWORD: \"{{ .Secrets.password }}\"\n";
        let text = placeholder_template(template);
        assert_eq!(text, "mysql_creds: &mysql_creds\n  USER: berth-secret-placeholder\n  PASSWORD: \"berth-secret-placeholder\"\n");
        assert!(render("lms", &[f("00-database-credentials", &text), f("50-x", "DB: *mysql_creds\n")]).is_ok());
    }
}
