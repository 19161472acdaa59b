//! `vault:sys:Policy`: an ACL policy, written in HCL (or JSON).
//!
//! Vault stores a policy's text exactly as written and returns it verbatim, so berth compares
//! policies by their tokens: re-indenting, re-wrapping or adding blank lines is no change (in a
//! plan or as drift); anything else, comments included, is.

use std::sync::Arc;

use berth_engine::{
    CallContext, CheckFailure, DiffResponse, Input, Path, ProviderError, Resource, ResourceProvider, TypedCreated, TypedObserved, Value,
    async_trait, default_diff,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::client::VaultApi;
use crate::common::{already_exists, check_name, field, json_str, known};

/// `vault:sys:Policy`.
///
/// ```
/// use berth_provider_vault::Policy;
/// let policy = Policy::new("edxapp-mitx-qa", r#"path "secret-mitx-qa/*" { capabilities = ["read"] }"#);
/// assert_eq!(policy.name, "edxapp-mitx-qa");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The policy's name, lower case (Vault lower-cases names). Changing it replaces the policy.
    pub name: String,
    /// The rules, in HCL or JSON. May be built from other resources' outputs (a mount path).
    pub policy: Input<String>,
}

impl Policy {
    pub fn new(name: &str, policy: impl Into<Input<String>>) -> Policy {
        Policy { name: name.to_string(), policy: policy.into() }
    }
}

/// What a `vault:sys:Policy` reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyOutputs {
    /// The name, to list in a role's `token_policies`.
    pub name: String,
}

impl Resource for Policy {
    const TYPE: &'static str = "vault:sys:Policy";
    type Outputs = PolicyOutputs;
}

/// One piece of policy text that matters for comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Text(String),
    Punct(char),
    Comment(String),
}

/// Splits HCL (or JSON) into tokens, ignoring whitespace, and checks quotes, comments and
/// brackets are closed. Errors name the line.
fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut open: Vec<(char, usize)> = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '#' => {
                let end = chars[i..].iter().position(|&c| c == '\n').map_or(chars.len(), |p| i + p);
                out.push(Token::Comment(chars[i + 1..end].iter().collect::<String>().trim().to_string()));
                i = end;
            }
            '/' if next == Some('/') => {
                let end = chars[i..].iter().position(|&c| c == '\n').map_or(chars.len(), |p| i + p);
                out.push(Token::Comment(chars[i + 2..end].iter().collect::<String>().trim().to_string()));
                i = end;
            }
            '/' if next == Some('*') => {
                let start = line;
                let rest: String = chars[i + 2..].iter().collect();
                let Some(end) = rest.find("*/") else { return Err(format!("line {start}: a /* comment is never closed")) };
                let body = &rest[..end];
                line += body.matches('\n').count();
                out.push(Token::Comment(body.split_whitespace().collect::<Vec<_>>().join(" ")));
                i += 2 + body.chars().count() + 2;
            }
            '"' => {
                let start = line;
                let mut value = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None | Some('\n') => return Err(format!("line {start}: a quoted string is never closed")),
                        Some('\\') => {
                            value.push('\\');
                            if let Some(&escaped) = chars.get(j + 1) {
                                value.push(escaped);
                            }
                            j += 2;
                        }
                        Some('"') => break,
                        Some(&other) => {
                            value.push(other);
                            j += 1;
                        }
                    }
                }
                out.push(Token::Text(value));
                i = j + 1;
            }
            '{' | '[' => {
                open.push((c, line));
                out.push(Token::Punct(c));
                i += 1;
            }
            '}' | ']' => {
                let expected = if c == '}' { '{' } else { '[' };
                match open.pop() {
                    Some((o, _)) if o == expected => {}
                    Some((o, at)) => return Err(format!("line {line}: `{c}` closes the `{o}` opened on line {at}")),
                    None => return Err(format!("line {line}: `{c}` has nothing to close")),
                }
                out.push(Token::Punct(c));
                i += 1;
            }
            '=' | ',' | ':' => {
                out.push(Token::Punct(c));
                i += 1;
            }
            _ => {
                let mut word = String::new();
                while let Some(&w) = chars.get(i) {
                    if w.is_whitespace() || matches!(w, '{' | '}' | '[' | ']' | '=' | ',' | ':' | '"' | '#') {
                        break;
                    }
                    word.push(w);
                    i += 1;
                }
                out.push(Token::Word(word));
            }
        }
    }
    if let Some((o, at)) = open.pop() {
        return Err(format!("the `{o}` opened on line {at} is never closed"));
    }
    Ok(out)
}

/// Whether two policy texts are the same policy (same tokens; whitespace does not count).
pub fn same_policy(a: &str, b: &str) -> bool {
    a == b || matches!((tokens(a), tokens(b)), (Ok(x), Ok(y)) if x == y)
}

/// The provider for `vault:sys:Policy`.
pub struct PolicyProvider {
    pub api: Arc<VaultApi>,
}

fn api_path(name: &str) -> String {
    format!("sys/policies/acl/{name}")
}

impl PolicyProvider {
    async fn fetch(&self, name: &str) -> Result<Option<String>, ProviderError> {
        Ok(self.api.read(&api_path(name)).await?.map(|data| json_str(&data, "policy")))
    }

    async fn put(&self, inputs: &Policy) -> Result<PolicyOutputs, ProviderError> {
        let text = known("policy", &inputs.policy)?;
        self.api.write(&api_path(&inputs.name), &json!({ "policy": text })).await?;
        Ok(PolicyOutputs { name: inputs.name.clone() })
    }
}

#[async_trait]
impl ResourceProvider for PolicyProvider {
    type Resource = Policy;

    fn replace_on(&self) -> Vec<Path> {
        vec![field("name")]
    }

    fn fixed_name(&self) -> Option<Path> {
        Some(field("name"))
    }

    async fn check(&self, _ctx: CallContext<'_>, inputs: Policy, _seed: &[u8; 32]) -> Result<Policy, Vec<CheckFailure>> {
        let mut failures = Vec::new();
        check_name("name", &inputs.name, &mut failures);
        if inputs.name.chars().any(|c| c.is_ascii_uppercase()) {
            failures.push(CheckFailure::field("name", format!("Vault lower-cases policy names; write `{}`", inputs.name.to_lowercase())));
        }
        if inputs.name == "root" || inputs.name == "default" {
            failures.push(CheckFailure::field("name", format!("`{}` is Vault's built-in policy; choose another name", inputs.name)));
        }
        if let Some(text) = inputs.policy.known() {
            if text.trim().is_empty() {
                failures.push(CheckFailure::field("policy", "must not be empty; a policy with no rules grants nothing"));
            } else if let Err(e) = tokens(text) {
                failures.push(CheckFailure::field("policy", format!("is not valid HCL: {e}")));
            }
        }
        if failures.is_empty() { Ok(inputs) } else { Err(failures) }
    }

    async fn diff(
        &self,
        _ctx: CallContext<'_>,
        _id: &str,
        old_inputs: &Value,
        _old_outputs: &Value,
        new_inputs: &Value,
    ) -> Result<DiffResponse, ProviderError> {
        let mut response = default_diff(old_inputs, new_inputs, &self.replace_on(), self.fixed_name().as_ref());
        let text = |v: &Value| v.get_path(&field("policy")).and_then(|p| p.as_str().map(str::to_string));
        if let (Some(old), Some(new)) = (text(old_inputs), text(new_inputs))
            && same_policy(&old, &new)
        {
            response.changes.retain(|c| c.path.first_key() != Some("policy"));
        }
        Ok(response)
    }

    async fn create(&self, _ctx: CallContext<'_>, inputs: &Policy) -> Result<TypedCreated<PolicyOutputs>, ProviderError> {
        if self.fetch(&inputs.name).await?.is_some() {
            return Err(already_exists("policy", &inputs.name));
        }
        let outputs = self.put(inputs).await?;
        Ok(TypedCreated { id: inputs.name.clone(), outputs })
    }

    async fn read(
        &self,
        _ctx: CallContext<'_>,
        id: &str,
        prior: Option<&Policy>,
        _prior_outputs: Option<&PolicyOutputs>,
    ) -> Result<Option<TypedObserved<Policy>>, ProviderError> {
        let Some(live) = self.fetch(id).await? else { return Ok(None) };
        // Reformatted but equal text keeps the recorded form, so it is not drift.
        let text = match prior.and_then(|p| p.policy.known()) {
            Some(recorded) if same_policy(recorded, &live) => recorded.clone(),
            _ => live,
        };
        Ok(Some(TypedObserved {
            id: id.to_string(),
            inputs: Policy { name: id.to_string(), policy: text.into() },
            outputs: PolicyOutputs { name: id.to_string() },
        }))
    }

    async fn update(
        &self,
        _ctx: CallContext<'_>,
        _id: &str,
        _old: &Policy,
        new: &Policy,
        _old_outputs: &PolicyOutputs,
    ) -> Result<PolicyOutputs, ProviderError> {
        self.put(new).await
    }

    async fn delete(&self, _ctx: CallContext<'_>, id: &str, _inputs: &Policy, _outputs: &PolicyOutputs) -> Result<(), ProviderError> {
        self.api.delete(&api_path(id)).await?;
        Ok(())
    }

    async fn lookup(&self, ctx: CallContext<'_>, inputs: &Policy) -> Result<Option<TypedObserved<Policy>>, ProviderError> {
        self.read(ctx, &inputs.name, Some(inputs), None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "path \"secret-mitx/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n# edxapp\n";

    #[test]
    fn whitespace_is_no_change_but_content_is() {
        assert!(same_policy(POLICY, "path \"secret-mitx/*\"   {capabilities=[\"read\",\n \"list\"]}\n\n#   edxapp"));
        assert!(!same_policy(POLICY, &POLICY.replace("list", "update")));
        assert!(!same_policy(POLICY, &POLICY.replace("# edxapp", "# lms")), "comments are stored text too");
        assert!(!same_policy("path \"a b\" {}", "path \"a  b\" {}"), "whitespace inside strings counts");
        assert!(same_policy("/* one\n two */ path \"a\" {}", "/* one two */\npath \"a\" {}"));
    }

    #[test]
    fn broken_hcl_is_found_with_its_line() {
        assert!(tokens(POLICY).is_ok());
        let e = tokens("path \"a\" {\n capabilities = [\"read\" }\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("`}`"), "{e}");
        assert!(tokens("path \"a {\n}").unwrap_err().contains("never closed"));
        assert!(tokens("path \"a\" {\n").unwrap_err().contains("line 1"));
        assert!(tokens("/* x").is_err());
        assert!(tokens(r#"{"path": {"a/*": {"capabilities": ["read"]}}}"#).is_ok(), "JSON policies are fine");
    }
}
