//! berth's built-in providers: resource types that need no cloud account.
//!
//! - [`random`]: `random:index:Password` (a secret generated once and kept in state) and
//!   `random:index:Id` (a short random identifier, e.g. a bucket-name suffix). Like Terraform's
//!   `random` provider, values are generated at create time and change only when an input
//!   (including `keepers`) changes, which replaces the resource.
//! - [`local`]: `local:index:File`, a file on the machine running berth (a rendered
//!   `config.yml`, a kubeconfig, a `.env` for a developer), written atomically.
//!
//! The `berth` binary registers [`plugins`]; a stack file can configure them under
//! `providers.random` (no settings) and `providers.local` (`root`: where relative paths point).

use std::sync::Arc;

use berth_engine::registry::ProviderPlugin;

pub mod local;
pub mod random;

pub use local::LocalPlugin;
pub use random::RandomPlugin;

/// Every built-in provider plugin.
pub fn plugins() -> Vec<Arc<dyn ProviderPlugin>> {
    vec![Arc::new(RandomPlugin), Arc::new(LocalPlugin)]
}

/// Reads a plugin's `providers.<package>` section; an empty section (`random:` with nothing
/// after it) means no settings.
pub(crate) fn parse_settings<T: serde::de::DeserializeOwned + Default>(
    settings: &berth_engine::registry::ProviderSettings,
    package: &str,
) -> Result<T, berth_engine::config::ConfigError> {
    match &settings.node {
        Some(node) if node.kind == berth_engine::config::NodeKind::Null => Ok(T::default()),
        _ => settings.parse(package),
    }
}

/// A [`ProviderError`](berth_engine::ProviderError) for a blocking task that did not finish.
pub(crate) fn join_error(what: &str, e: tokio::task::JoinError) -> berth_engine::ProviderError {
    berth_engine::ProviderError::other(format!("{what} stopped unexpectedly: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn plugins_cover_both_packages() {
        let names: Vec<String> = super::plugins().iter().map(|p| p.package().to_string()).collect();
        assert_eq!(names, vec!["random", "local"]);
    }
}
