//! What the resource types share: durations, name and path rules, and reading Vault's JSON.

use berth_engine::{CheckFailure, Input, Path, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// A duration as Vault takes it: whole seconds (`3600`), or text such as `"90d"`, `"2160h"`,
/// `"1h30m"` (units `s`, `m`, `h`, `d`). `check` turns text into seconds, which is what Vault
/// reports back, so `"1h"` and `3600` are the same value and never show as drift.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Ttl {
    Seconds(u64),
    Text(String),
}

impl Ttl {
    pub fn days(days: u64) -> Ttl {
        Ttl::Seconds(days * 86_400)
    }

    pub fn hours(hours: u64) -> Ttl {
        Ttl::Seconds(hours * 3_600)
    }

    /// The duration in seconds, or why the text is not one.
    pub fn seconds(&self) -> Result<u64, String> {
        match self {
            Ttl::Seconds(s) => Ok(*s),
            Ttl::Text(text) => parse_duration(text),
        }
    }

    /// Normalizes to seconds, reporting a bad duration against `field`.
    pub fn checked(&self, field: &str, failures: &mut Vec<CheckFailure>) -> Ttl {
        match self.seconds() {
            Ok(s) => Ttl::Seconds(s),
            Err(e) => {
                failures.push(CheckFailure::field(field, e));
                self.clone()
            }
        }
    }
}

impl From<u64> for Ttl {
    fn from(seconds: u64) -> Ttl {
        Ttl::Seconds(seconds)
    }
}

impl From<&str> for Ttl {
    fn from(text: &str) -> Ttl {
        Ttl::Text(text.to_string())
    }
}

/// Parses `"90d"`, `"2160h"`, `"1h30m"`, `"45s"` or `"300"` into seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let bad = || format!("`{text}` is not a duration; write seconds (3600) or a number with a unit: 90d, 2160h, 1h30m, 45s");
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(bad());
    }
    if let Ok(seconds) = trimmed.parse::<u64>() {
        return Ok(seconds);
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in trimmed.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

/// Checks a name Vault keeps in one path segment (a policy, role or connection name).
pub fn check_name(field: &str, name: &str, failures: &mut Vec<CheckFailure>) {
    if name.is_empty() {
        failures.push(CheckFailure::field(field, "must not be empty"));
    } else if name.len() > 128 {
        failures.push(CheckFailure::field(field, format!("`{name}` is longer than 128 characters")));
    } else if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        failures.push(CheckFailure::field(field, format!("`{name}` contains `{c}`; use letters, digits, `-`, `_` and `.`")));
    } else if name == "." || name == ".." {
        failures.push(CheckFailure::field(field, format!("`{name}` is not a usable name")));
    }
}

/// Checks a path of one or more segments (a mount path, a secret's path in its mount).
pub fn check_path(field: &str, path: &str, failures: &mut Vec<CheckFailure>) {
    if path.is_empty() {
        failures.push(CheckFailure::field(field, "must not be empty"));
        return;
    }
    if path.starts_with('/') || path.ends_with('/') {
        failures.push(CheckFailure::field(field, format!("`{path}` must not start or end with `/` (write `{}`)", path.trim_matches('/'))));
        return;
    }
    if path.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        failures.push(CheckFailure::field(field, format!("`{path}` has an empty, `.` or `..` segment")));
        return;
    }
    if let Some(c) =
        path.chars().find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '%' | '*' | '"' | '\\' | '{' | '}'))
    {
        failures.push(CheckFailure::field(field, format!("`{path}` contains `{}`, which Vault paths cannot hold", c.escape_default())));
    }
}

/// Checks a list of names Vault lower-cases (policies): upper case would show as drift forever.
pub fn check_policy_names(field: &str, names: &[Input<String>], failures: &mut Vec<CheckFailure>) {
    for (i, name) in names.iter().enumerate() {
        if let Some(name) = name.known() {
            let at = format!("{field}[{i}]");
            check_name(&at, name, failures);
            if name.chars().any(|c| c.is_ascii_uppercase()) {
                failures
                    .push(CheckFailure::field(at, format!("`{name}`: Vault lower-cases policy names; write `{}`", name.to_lowercase())));
            }
        }
    }
}

/// The value of an input at create/update time, when every input is known.
pub fn known<'a, T>(field: &str, input: &'a Input<T>) -> Result<&'a T, ProviderError> {
    input.known().ok_or_else(|| {
        ProviderError::other(format!("input `{field}` is not known yet; this is a bug in berth (inputs are resolved before apply)"))
    })
}

/// The known values of a list of inputs.
pub fn known_all<T: Clone>(field: &str, inputs: &[Input<T>]) -> Result<Vec<T>, ProviderError> {
    inputs.iter().map(|i| known(field, i).cloned()).collect()
}

/// A static path into inputs.
pub fn field(name: &str) -> Path {
    Path::root().child_key(name)
}

/// A string in Vault's JSON (missing or null: empty).
pub fn json_str(json: &Json, key: &str) -> String {
    json.get(key).and_then(Json::as_str).unwrap_or_default().to_string()
}

/// A whole number in Vault's JSON; some endpoints report numbers as strings.
pub fn json_u64(json: &Json, key: &str) -> u64 {
    match json.get(key) {
        Some(Json::Number(n)) => n.as_u64().unwrap_or_default(),
        Some(Json::String(s)) => parse_duration(s).unwrap_or_default(),
        _ => 0,
    }
}

/// A list of strings in Vault's JSON (a comma-separated string counts too).
pub fn json_strings(json: &Json, key: &str) -> Vec<String> {
    match json.get(key) {
        Some(Json::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        Some(Json::String(s)) if !s.is_empty() => s.split(',').map(|p| p.trim().to_string()).collect(),
        _ => Vec::new(),
    }
}

/// A boolean in Vault's JSON.
pub fn json_bool(json: &Json, key: &str) -> bool {
    json.get(key).and_then(Json::as_bool).unwrap_or_default()
}

/// The error for a resource that exists already but is not in this stack's state.
pub fn already_exists(what: &str, id: &str) -> ProviderError {
    ProviderError::new(
        berth_engine::ErrorKind::AlreadyExists { id: id.to_string() },
        format!("{what} `{id}` already exists in Vault; import it (the `import` option with id `{id}`) or choose another name"),
    )
}

/// A create failed after Vault made the object: undo it (`DELETE undo_path`) so the next run
/// starts clean. A half-made object recorded as tainted would be replaced by creating first,
/// which a fixed Vault path cannot do. If undoing fails too, the object is recorded as tainted
/// (`partial`) and the message says both.
pub async fn undo_create(
    api: &crate::client::VaultApi,
    undo_path: &str,
    error: ProviderError,
    partial: berth_engine::Created,
) -> ProviderError {
    match api.delete(undo_path).await {
        Ok(_) => error,
        Err(undo) => {
            let message = format!("{}; undoing the half-made create failed too: {undo}", error.message);
            ProviderError { message, ..error }.with_partial(partial)
        }
    }
}

/// Waits for `attempt` to say it is done, up to `limit`, polling every half second.
pub async fn await_until<F, Fut>(what: &str, limit: std::time::Duration, mut attempt: F) -> Result<(), ProviderError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, ProviderError>>,
{
    let started = std::time::Instant::now();
    loop {
        if attempt().await? {
            return Ok(());
        }
        if started.elapsed() >= limit {
            return Err(ProviderError::timeout(format!(
                "{what} was not ready after {}s; run again to wait longer, or raise custom_timeouts",
                limit.as_secs()
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_vault() {
        assert_eq!(parse_duration("3600"), Ok(3600));
        assert_eq!(parse_duration("90d"), Ok(90 * 86_400));
        assert_eq!(parse_duration("2160h"), Ok(2160 * 3600));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("45s"), Ok(45));
        for bad in ["", "1y", "h", "1.5h", "-3", "10 d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        let mut failures = Vec::new();
        assert_eq!(Ttl::from("1h").checked("ttl", &mut failures), Ttl::Seconds(3600));
        Ttl::from("soon").checked("ttl", &mut failures);
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].path.as_deref(), Some("ttl"));
        let ttl: Ttl = serde_json::from_value(serde_json::json!("90d")).unwrap();
        assert_eq!(ttl.seconds(), Ok(7_776_000));
        assert_eq!(serde_json::to_value(Ttl::days(1)).unwrap(), serde_json::json!(86_400));
    }

    #[test]
    fn names_and_paths() {
        let mut f = Vec::new();
        check_name("name", "edxapp-qa_1.x", &mut f);
        check_path("path", "secret-mitx/edxapp", &mut f);
        assert!(f.is_empty(), "{f:?}");
        for bad in ["", "a/b", "a b", ".."] {
            check_name("name", bad, &mut f);
        }
        assert_eq!(f.len(), 4);
        f.clear();
        for bad in ["/a", "a/", "a//b", "a/../b", "a b", "a?b"] {
            check_path("path", bad, &mut f);
        }
        assert_eq!(f.len(), 6, "{f:?}");
        f.clear();
        check_policy_names("token_policies", &["Admin".into(), Input::Unknown, "ok".into()], &mut f);
        assert_eq!(f.len(), 1);
        assert!(f[0].reason.contains("`admin`"), "{f:?}");
    }

    #[test]
    fn vault_json() {
        let j = serde_json::json!({"a": "x", "n": 5, "t": "1h", "l": ["p", "q"], "c": "p, q", "b": true});
        assert_eq!(json_str(&j, "a"), "x");
        assert_eq!(json_u64(&j, "n"), 5);
        assert_eq!(json_u64(&j, "t"), 3600);
        assert_eq!(json_strings(&j, "l"), vec!["p", "q"]);
        assert_eq!(json_strings(&j, "c"), vec!["p", "q"]);
        assert!(json_bool(&j, "b") && !json_bool(&j, "zz"));
    }
}
