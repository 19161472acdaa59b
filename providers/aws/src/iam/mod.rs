//! IAM: roles (with trust policies), managed policies (versioned), role–policy attachments and
//! OpenID Connect providers — what an EKS service account needs to assume a role (IRSA).

mod oidc;
mod policy;
mod role;

use aws_sdk_iam::types::Tag;
use berth_engine::ProviderError;

pub use oidc::{OidcProvider, OidcProviderOutputs, OidcProviderProvider};
pub use policy::{Policy, PolicyOutputs, PolicyProvider};
pub use role::{Role, RoleOutputs, RolePolicyAttachment, RolePolicyAttachmentOutputs, RolePolicyAttachmentProvider, RoleProvider};

use crate::validate::Tags;

fn iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// Role and policy names: 1 to `max` characters of letters, digits and `_+=,.@-`.
pub fn validate_name(name: &str, max: usize) -> Result<(), String> {
    if name.is_empty() || name.len() > max {
        return Err(format!("`{name}` must have 1 to {max} characters"));
    }
    if let Some(c) = name.chars().find(|c| !iam_name_char(*c)) {
        return Err(format!("`{name}` contains `{c}`; IAM names use letters, digits and _+=,.@- only"));
    }
    Ok(())
}

/// IAM paths: `/` or `/a/b/`, at most 512 characters of printable ASCII.
pub fn validate_path(path: &str) -> Result<(), String> {
    if path.len() > 512 || !path.starts_with('/') || !path.ends_with('/') {
        return Err(format!("`{path}` must begin and end with `/` and have at most 512 characters (e.g. /ol-applications/edxapp/)"));
    }
    if path.chars().any(|c| !c.is_ascii_graphic()) {
        return Err(format!("`{path}` may contain only printable ASCII characters without spaces"));
    }
    Ok(())
}

pub(crate) fn iam_tags(tags: &Tags) -> Result<Option<Vec<Tag>>, ProviderError> {
    if tags.is_empty() {
        return Ok(None);
    }
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build().map_err(crate::error::build_error))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

pub(crate) fn from_iam_tags(tags: &[Tag]) -> Tags {
    tags.iter().map(|t| (t.key().to_string(), t.value().to_string())).collect()
}

/// Keys to remove and tags to set to go from `old` to `new`.
pub(crate) fn tag_changes(old: &Tags, new: &Tags) -> (Vec<String>, Tags) {
    let removed = old.keys().filter(|k| !new.contains_key(*k)).cloned().collect();
    let set = new.iter().filter(|(k, v)| old.get(*k) != Some(v)).map(|(k, v)| (k.clone(), v.clone())).collect();
    (removed, set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert!(validate_name("edxapp-trustrole-mitx-qa", 64).is_ok());
        assert!(validate_name("bad/name", 64).is_err());
        assert!(validate_name(&"a".repeat(65), 64).is_err());
        assert!(validate_path("/").is_ok());
        assert!(validate_path("/ol-infrastructure/eks/cluster/").is_ok());
        assert!(validate_path("no-slash").is_err());
        assert!(validate_path("/has space/").is_err());
    }

    #[test]
    fn tag_changes_split_removals_and_sets() {
        let old: Tags = [("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())].into();
        let new: Tags = [("b".to_string(), "3".to_string()), ("c".to_string(), "4".to_string())].into();
        let (removed, set) = tag_changes(&old, &new);
        assert_eq!(removed, vec!["a".to_string()]);
        assert_eq!(set.len(), 2);
    }
}
