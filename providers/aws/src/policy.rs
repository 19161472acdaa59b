//! IAM-style policy documents (role trust policies, managed policies, bucket policies) compared by
//! meaning, not by text: AWS returns them URL-encoded (IAM), reorders keys, and treats a string and
//! a one-element list alike, so comparing text would show a change on every run.

use serde_json::{Map, Value};

/// Decodes `%XX` escapes and `+` (IAM returns documents URL-encoded). `None` if malformed.
pub fn url_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Parses a policy document as given by a user or returned by AWS (plain or URL-encoded JSON).
pub fn parse(text: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => Ok(v),
        Err(plain_error) => {
            let decoded = url_decode(text).ok_or_else(|| format!("not valid JSON: {plain_error}"))?;
            serde_json::from_str(&decoded).map_err(|_| format!("not valid JSON: {plain_error}"))
        }
    }
}

/// The canonical form: keys sorted, one-element lists as their element, lists of strings sorted
/// and without duplicates (IAM treats `Action`, `Resource`, `Principal` and condition values as
/// sets), statements in a stable order.
pub fn normalize(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for key in keys {
                out.insert(key.clone(), normalize(&map[key]));
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(normalize).collect();
            if items.len() == 1 {
                return items.remove(0);
            }
            // Sets of strings and of statements: order carries no meaning.
            items.sort_by_key(|v| v.to_string());
            items.dedup();
            Value::Array(items)
        }
        other => other.clone(),
    }
}

/// The canonical text of a document, for comparing; `None` if it does not parse.
pub fn canonical(text: &str) -> Option<String> {
    parse(text).ok().map(|v| normalize(&v).to_string())
}

/// Whether two documents mean the same.
pub fn equivalent(a: &str, b: &str) -> bool {
    match (canonical(a), canonical(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// What a read reports for a policy: the recorded text when AWS's copy means the same (so the
/// user's formatting never shows as drift), else AWS's copy, decoded.
pub fn reported(prior: Option<&str>, live: &str) -> String {
    match prior {
        Some(p) if equivalent(p, live) => p.to_string(),
        _ => parse(live).map(|v| v.to_string()).unwrap_or_else(|_| live.to_string()),
    }
}

/// The default diff, except that policy documents at `policy_fields` that mean the same as the
/// recorded ones are not changes.
pub fn diff_with_policies(
    old: &berth_engine::Value,
    new: &berth_engine::Value,
    policy_fields: &[&str],
    replace_on: &[berth_engine::Path],
    fixed_name: Option<&berth_engine::Path>,
) -> berth_engine::DiffResponse {
    let mut aligned = new.clone();
    for field in policy_fields {
        let Ok(path) = berth_engine::Path::parse(field) else { continue };
        if let (Some(before), Some(after)) = (old.get_path(&path), new.get_path(&path))
            && let (Some(a), Some(b)) = (before.as_str(), after.as_str())
            && a != b
            && equivalent(a, b)
        {
            aligned.set_path(&path, before.clone());
        }
    }
    berth_engine::default_diff(old, &aligned, replace_on, fixed_name)
}

/// Whether an `Allow` statement names everyone as principal (`"*"` or `{"AWS": "*"}`).
pub fn grants_public_access(text: &str) -> bool {
    let Ok(doc) = parse(text) else { return false };
    let statements = match doc.get("Statement") {
        Some(Value::Array(list)) => list.clone(),
        Some(single) => vec![single.clone()],
        None => return false,
    };
    let everyone = |p: &Value| match p {
        Value::String(s) => s == "*",
        Value::Array(items) => items.iter().any(|i| i == "*"),
        _ => false,
    };
    statements.iter().any(|s| {
        s.get("Effect").and_then(Value::as_str) == Some("Allow")
            && match s.get("Principal") {
                Some(p @ Value::String(_)) => everyone(p),
                Some(Value::Object(map)) => map.get("AWS").is_some_and(everyone),
                _ => false,
            }
    })
}

/// Validates a policy document the way IAM and S3 do: JSON object, `Version` one of the two
/// policy language versions when present, at least one statement, each with `Effect`
/// Allow/Deny and an action. `max_len` counts characters without whitespace, as IAM does.
pub fn validate(text: &str, max_len: usize, needs_principal: bool) -> Result<(), String> {
    let doc = parse(text)?;
    let obj = doc.as_object().ok_or("a policy document must be a JSON object")?;
    let size = text.chars().filter(|c| !c.is_whitespace()).count();
    if size > max_len {
        return Err(format!("the document has {size} characters (whitespace excluded); AWS allows at most {max_len}"));
    }
    if let Some(version) = obj.get("Version")
        && !matches!(version.as_str(), Some("2012-10-17" | "2008-10-17"))
    {
        return Err(format!("`Version` must be \"2012-10-17\" (or the legacy \"2008-10-17\"), not {version}"));
    }
    let statements = match obj.get("Statement") {
        Some(Value::Array(list)) if !list.is_empty() => list.clone(),
        Some(single @ Value::Object(_)) => vec![single.clone()],
        _ => return Err("`Statement` is missing or empty: a policy needs at least one statement".into()),
    };
    for (i, statement) in statements.iter().enumerate() {
        let s = statement.as_object().ok_or_else(|| format!("Statement[{i}] must be an object"))?;
        match s.get("Effect").and_then(Value::as_str) {
            Some("Allow" | "Deny") => {}
            _ => return Err(format!("Statement[{i}]: `Effect` must be \"Allow\" or \"Deny\"")),
        }
        if !s.contains_key("Action") && !s.contains_key("NotAction") {
            return Err(format!("Statement[{i}] has no `Action` (or `NotAction`)"));
        }
        if needs_principal && !s.contains_key("Principal") && !s.contains_key("NotPrincipal") {
            return Err(format!("Statement[{i}] has no `Principal`: trust and resource policies must say whom they apply to"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_lists_and_encoding_do_not_matter() {
        let a = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::b/*","arn:aws:s3:::b"]}]}"#;
        let b = r#"{"Statement":{"Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"],"Action":"s3:GetObject","Effect":"Allow"},"Version":"2012-10-17"}"#;
        assert!(equivalent(a, b));
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3AGetObject%22%2C%22Resource%22%3A%5B%22arn%3Aaws%3As3%3A%3A%3Ab%22%2C%22arn%3Aaws%3As3%3A%3A%3Ab%2F%2A%22%5D%7D%5D%7D";
        assert!(equivalent(a, encoded));
        let c = a.replace("GetObject", "PutObject");
        assert!(!equivalent(a, &c));
        assert_eq!(reported(Some(a), encoded), a, "the user's text is kept when the meaning is equal");
        assert!(reported(Some(&c), encoded).contains("GetObject"));
    }

    #[test]
    fn validation_follows_aws_rules() {
        let ok = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
        assert!(validate(ok, 6144, false).is_ok());
        assert!(validate("{not json", 6144, false).unwrap_err().contains("not valid JSON"));
        assert!(validate(r#"{"Version":"2012-10-17"}"#, 6144, false).unwrap_err().contains("Statement"));
        assert!(validate(r#"{"Statement":[{"Effect":"Maybe","Action":"x"}]}"#, 6144, false).unwrap_err().contains("Effect"));
        assert!(validate(r#"{"Version":"2020-01-01","Statement":[]}"#, 6144, false).unwrap_err().contains("Version"));
        assert!(validate(ok, 6144, true).unwrap_err().contains("Principal"));
        assert!(validate(ok, 20, false).unwrap_err().contains("at most 20"));
        assert!(grants_public_access(r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}]}"#));
        assert!(grants_public_access(r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":"s3:GetObject"}}"#));
        assert!(!grants_public_access(r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*"}]}"#));
        assert!(!grants_public_access(r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:root"},"Action":"s3:*"}]}"#));
        assert_eq!(url_decode("a%2Fb+c").as_deref(), Some("a/b c"));
        assert_eq!(url_decode("bad%zz"), None);
    }
}
