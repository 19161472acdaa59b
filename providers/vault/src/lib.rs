//! berth's `vault` provider: the Vault (and OpenBao) resources an Open edX deployment needs.
//!
//! | type | what |
//! |---|---|
//! | `vault:sys:Mount` ([`Mount`]) | a secrets engine: kv version 1 or 2, database, ... |
//! | `vault:kv:Secret` ([`KvSecret`]) | a kv secret; its data is secret in state and output |
//! | `vault:sys:Policy` ([`Policy`]) | an ACL policy in HCL, compared token by token |
//! | `vault:auth:Backend` ([`AuthBackend`]) | an auth method, with the kubernetes method's config |
//! | `vault:kubernetes:AuthRole` ([`KubernetesAuthRole`]) | service accounts → policies and token TTLs |
//! | `vault:database:Connection` ([`DatabaseConnection`]) | a MySQL/MariaDB server Vault creates users on |
//! | `vault:database:Role` ([`DatabaseRole`]) | the SQL and TTLs of the users a role creates |
//!
//! The `berth` binary registers [`plugin`]; a stack file configures it under `providers.vault`
//! (see [`settings`]), with `VAULT_ADDR`, `VAULT_TOKEN`, `VAULT_NAMESPACE`, `VAULT_CACERT` and
//! `VAULT_SKIP_VERIFY` as defaults. `docs/providers/vault.md` describes every field.
//!
//! ```
//! use berth_engine::{Options, ProgramResult, Secret, Stack};
//! use berth_provider_vault::{DatabaseConnection, DatabaseRole, KvSecret, Mount, Policy, Ttl};
//!
//! fn program(stack: &mut Stack) -> ProgramResult {
//!     let kv = stack.register("kv", Mount::kv("secret-mitx-qa", 2), Options::new())?;
//!     let mount_path = kv.output::<String>("path");
//!     stack.register("edxapp", KvSecret::new(&mount_path, "edxapp").with_value("workers", 4), Options::new())?;
//!     let rules = mount_path.map(|m| format!("path \"{m}/data/*\" {{ capabilities = [\"read\"] }}"));
//!     stack.register("policy", Policy::new("edxapp-mitx-qa", rules), Options::new())?;
//!
//!     let db = stack.register("db", Mount::database("mariadb-mitx-qa"), Options::new())?;
//!     let url = "{{username}}:{{password}}@tcp(db.example.org:3306)/";
//!     let password = Secret::new("from-stack-config".to_string());
//!     let connection = DatabaseConnection {
//!         allowed_roles: vec!["edxapp".into()],
//!         ..DatabaseConnection::mysql(db.output::<String>("path"), "edxapp", url, "admin", password)
//!     };
//!     let connection = stack.register("connection", connection, Options::new())?;
//!     let role = DatabaseRole {
//!         default_ttl: Some(Ttl::days(90)),
//!         max_ttl: Some(Ttl::days(180)),
//!         ..DatabaseRole::mysql(db.output::<String>("path"), "edxapp", connection.output::<String>("name"), "ALL PRIVILEGES ON edxapp.*")
//!     };
//!     stack.register("edxapp-role", role, Options::new())?;
//!     Ok(())
//! }
//! # let mut stack = Stack::new("dev");
//! # program(&mut stack).unwrap();
//! ```

use std::sync::Arc;

use berth_engine::Package;
use berth_engine::config::ConfigError;
use berth_engine::registry::{ProviderPlugin, ProviderSettings};

pub mod auth;
pub mod client;
pub mod common;
pub mod database;
pub mod kubernetes;
pub mod kv;
pub mod mount;
pub mod policy;
pub mod settings;

pub use auth::{AuthBackend, AuthBackendOutputs, KubernetesAuthConfig};
pub use client::VaultApi;
pub use common::Ttl;
pub use database::{DatabaseConnection, DatabaseConnectionOutputs, DatabaseRole, DatabaseRoleOutputs};
pub use kubernetes::{KubernetesAuthRole, KubernetesAuthRoleOutputs};
pub use kv::{KvSecret, KvSecretOutputs};
pub use mount::{Mount, MountOutputs};
pub use policy::{Policy, PolicyOutputs};
pub use settings::VaultSettings;

/// The package name: type tokens `vault:<module>:<Type>` route here.
pub const PACKAGE: &str = "vault";

/// Every resource type, on one client.
pub fn package(api: Arc<VaultApi>) -> Package {
    Package::new(PACKAGE)
        .with(mount::MountProvider { api: api.clone() })
        .with(kv::KvSecretProvider { api: api.clone() })
        .with(policy::PolicyProvider { api: api.clone() })
        .with(auth::AuthBackendProvider { api: api.clone() })
        .with(kubernetes::KubernetesAuthRoleProvider { api: api.clone() })
        .with(database::DatabaseConnectionProvider { api: api.clone() })
        .with(database::DatabaseRoleProvider { api })
}

/// Builds the `vault` provider for a stack from `providers.vault` and the environment.
pub struct VaultPlugin;

impl ProviderPlugin for VaultPlugin {
    fn package(&self) -> &str {
        PACKAGE
    }

    fn build(&self, settings: &ProviderSettings) -> Result<Arc<dyn berth_engine::Provider>, ConfigError> {
        let parsed: VaultSettings = settings.parse(PACKAGE)?;
        let node = settings.node.as_ref();
        let resolved = parsed.resolve(node, &settings.project_root, &settings::ProcessEnvironment)?;
        let client = resolved.client(node)?;
        let address = resolved.address.as_ref().map(|a| a.to_string()).unwrap_or_default();
        Ok(Arc::new(package(Arc::new(VaultApi::new(client, address)))))
    }
}

/// The plugin the `berth` binary registers.
pub fn plugin() -> Arc<dyn ProviderPlugin> {
    Arc::new(VaultPlugin)
}

#[cfg(test)]
mod tests {
    use berth_engine::Resource;

    #[test]
    fn every_type_token_is_routed() {
        let package = super::package(std::sync::Arc::new(super::VaultApi::new(Err("offline".into()), String::new())));
        for token in [
            super::Mount::TYPE,
            super::KvSecret::TYPE,
            super::Policy::TYPE,
            super::AuthBackend::TYPE,
            super::KubernetesAuthRole::TYPE,
            super::DatabaseConnection::TYPE,
            super::DatabaseRole::TYPE,
        ] {
            assert!(berth_engine::Provider::supports(&package, token), "{token}");
        }
        assert_eq!(super::plugin().package(), "vault");
    }
}
