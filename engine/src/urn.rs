//! Resource identity: `urn:berth:<stack>::<parent types $ type>::<name>`.
//!
//! Like Pulumi's URNs, the parent component types are part of the identity, so the same logical
//! name may appear under two different components. Renames go through aliases.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const PREFIX: &str = "urn:berth:";

/// A resource's identity in its stack. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Urn(Arc<str>);

/// Why a string is not a URN, or a name or type cannot be part of one.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UrnError {
    #[error("`{0}` is not a berth URN (expected urn:berth:<stack>::<type>::<name>)")]
    Malformed(String),
    #[error("resource name `{0}` is invalid: names are non-empty and may not contain `::`")]
    BadName(String),
    #[error("type token `{0}` is invalid: expected <package>:<module>:<Type>, e.g. aws:s3:Bucket")]
    BadType(String),
}

/// Checks a type token: three non-empty colon-separated parts (`aws:s3:Bucket`,
/// `kubernetes:apps/v1:Deployment`). Components use the same form (`edxapp:index:TrustRole`)
/// or two parts (`edxapp:TrustRole`).
pub fn validate_type_token(token: &str) -> Result<(), UrnError> {
    let parts: Vec<&str> = token.split(':').collect();
    let ok = (parts.len() == 2 || parts.len() == 3)
        && parts.iter().all(|p| !p.is_empty() && !p.contains(char::is_whitespace) && !p.contains('$'));
    if ok { Ok(()) } else { Err(UrnError::BadType(token.to_string())) }
}

impl Urn {
    /// Builds a URN for `name` of type `ty` under `parent` (a component) in `stack`.
    pub fn new(stack: &str, parent: Option<&Urn>, ty: &str, name: &str) -> Result<Urn, UrnError> {
        if name.is_empty() || name.contains("::") {
            return Err(UrnError::BadName(name.to_string()));
        }
        validate_type_token(ty)?;
        let chain = match parent {
            Some(p) => format!("{}${ty}", p.qualified_type()),
            None => ty.to_string(),
        };
        Ok(Urn(format!("{PREFIX}{stack}::{chain}::{name}").into()))
    }

    pub fn parse(text: &str) -> Result<Urn, UrnError> {
        let malformed = || UrnError::Malformed(text.to_string());
        let rest = text.strip_prefix(PREFIX).ok_or_else(malformed)?;
        let parts: Vec<&str> = rest.splitn(3, "::").collect();
        if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(malformed());
        }
        for ty in parts[1].split('$') {
            validate_type_token(ty).map_err(|_| malformed())?;
        }
        Ok(Urn(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn parts(&self) -> (&str, &str, &str) {
        let rest = &self.0[PREFIX.len()..];
        let mut it = rest.splitn(3, "::");
        let stack = it.next().unwrap_or_default();
        let chain = it.next().unwrap_or_default();
        let name = it.next().unwrap_or_default();
        (stack, chain, name)
    }

    pub fn stack(&self) -> &str {
        self.parts().0
    }

    /// The parent types and the type, joined by `$`.
    pub fn qualified_type(&self) -> &str {
        self.parts().1
    }

    /// The resource's own type token.
    pub fn type_token(&self) -> &str {
        let chain = self.parts().1;
        chain.rsplit('$').next().unwrap_or(chain)
    }

    /// The logical name.
    pub fn name(&self) -> &str {
        self.parts().2
    }

    /// The same resource identity in another stack (used when copying or renaming stacks).
    pub fn with_stack(&self, stack: &str) -> Urn {
        let (_, chain, name) = self.parts();
        Urn(format!("{PREFIX}{stack}::{chain}::{name}").into())
    }

    /// The URN this resource would have with another name and/or parent; used for aliases.
    pub fn renamed(&self, name: &str, parent: Option<&Urn>) -> Result<Urn, UrnError> {
        Urn::new(self.stack(), parent, self.type_token(), name)
    }
}

impl fmt::Display for Urn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Urn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl Serialize for Urn {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Urn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Urn::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_parses_with_parents() {
        let parent = Urn::new("mitx.qa", None, "edxapp:index:TrustRole", "lms").unwrap();
        let child = Urn::new("mitx.qa", Some(&parent), "aws:iam:Role", "lms-role").unwrap();
        assert_eq!(child.as_str(), "urn:berth:mitx.qa::edxapp:index:TrustRole$aws:iam:Role::lms-role");
        let parsed = Urn::parse(child.as_str()).unwrap();
        assert_eq!(parsed, child);
        assert_eq!(parsed.stack(), "mitx.qa");
        assert_eq!(parsed.type_token(), "aws:iam:Role");
        assert_eq!(parsed.name(), "lms-role");
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(Urn::new("s", None, "aws:s3:Bucket", "a::b"), Err(UrnError::BadName(_))));
        assert!(matches!(Urn::new("s", None, "bucket", "a"), Err(UrnError::BadType(_))));
        assert!(Urn::parse("urn:pulumi:s::aws:s3:Bucket::x").is_err());
        assert!(Urn::parse("urn:berth:s::aws:s3:Bucket").is_err());
    }
}
