//! The database secrets engine: a connection to a database server (`vault:database:Connection`)
//! and roles that create a short-lived user on it per request (`vault:database:Role`).
//!
//! Both live in a `vault:sys:Mount` of type `database`. Deleting a role (or the connection a
//! role uses) first revokes the users the role issued, which drops them from the database: left
//! alone, their leases could never be revoked once the connection is gone, and the mount could
//! not be deleted.

mod connection;
mod role;

pub use connection::{DatabaseConnection, DatabaseConnectionOutputs, DatabaseConnectionProvider, MYSQL_PLUGINS};
pub use role::{DatabaseRole, DatabaseRoleOutputs, DatabaseRoleProvider};

/// Revokes every lease a role issued, which runs its revocation statements (drops the users).
pub(crate) async fn revoke_users(api: &crate::client::VaultApi, mount: &str, role: &str) -> Result<(), berth_engine::ProviderError> {
    match api.write(&format!("sys/leases/revoke-prefix/{mount}/creds/{role}"), &serde_json::json!({})).await {
        Ok(_) => Ok(()),
        Err(e) if e.status == Some(403) => Err(berth_engine::ProviderError::api(
            "HTTP 403",
            format!(
                "{e}; revoking the users of role `{role}` before deleting it needs `sudo` on sys/leases/revoke-prefix/{mount}/creds/{role}"
            ),
        )),
        Err(e) => Err(e.into()),
    }
}

/// `<mount>/<kind>/<name>` → (mount, name), for imports.
pub(crate) fn parse_id(id: &str, kind: &str) -> Result<(String, String), berth_engine::ProviderError> {
    match id.trim_matches('/').rsplit_once(&format!("/{kind}/")) {
        Some((mount, name)) if !mount.is_empty() && !name.is_empty() && !name.contains('/') => Ok((mount.to_string(), name.to_string())),
        _ => Err(berth_engine::ProviderError::other(format!("`{id}` is not an id of this type; write <mount>/{kind}/<name>"))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids() {
        assert_eq!(super::parse_id("mariadb-mitx/config/edxapp", "config").unwrap(), ("mariadb-mitx".into(), "edxapp".into()));
        assert_eq!(super::parse_id("a/b/roles/r", "roles").unwrap(), ("a/b".into(), "r".into()));
        assert!(super::parse_id("a/roles/", "roles").is_err());
        assert!(super::parse_id("a/config/x", "roles").is_err());
    }
}
