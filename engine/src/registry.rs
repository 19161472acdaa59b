//! Which provider serves which type token, built on first use.
//!
//! Providers are created lazily so a stack that uses no AWS resource never needs AWS
//! credentials, and an offline preview never dials an API it does not use.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::provider::Provider;

type Factory = Box<dyn Fn() -> Result<Arc<dyn Provider>, String> + Send + Sync>;

/// A provider could not be found or built.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum ProviderLookupError {
    #[error("no provider for package `{package}` (type `{ty}`); this build has: {known}")]
    UnknownPackage { package: String, ty: String, known: String },
    #[error("provider `{package}` has no resource type `{ty}`")]
    UnknownType { package: String, ty: String },
    #[error("cannot configure provider `{package}`: {message}")]
    Configure { package: String, message: String },
}

/// The providers a stack can use, by package name.
#[derive(Default)]
pub struct Providers {
    factories: BTreeMap<String, Factory>,
    built: Mutex<HashMap<String, Arc<dyn Provider>>>,
}

impl Providers {
    pub fn new() -> Providers {
        Providers::default()
    }

    /// Adds a ready provider under its package name.
    pub fn add(&mut self, provider: Arc<dyn Provider>) -> &mut Self {
        let package = provider.package().to_string();
        let ready = provider.clone();
        self.factories.insert(package, Box::new(move || Ok(ready.clone())));
        self
    }

    /// Adds a provider built the first time one of its types is used.
    pub fn add_lazy(
        &mut self,
        package: &str,
        factory: impl Fn() -> Result<Arc<dyn Provider>, String> + Send + Sync + 'static,
    ) -> &mut Self {
        self.factories.insert(package.to_string(), Box::new(factory));
        self
    }

    /// The provider for a type token (`aws:s3:Bucket` → the `aws` provider).
    pub fn for_type(&self, ty: &str) -> Result<Arc<dyn Provider>, ProviderLookupError> {
        let package = ty.split(':').next().unwrap_or_default();
        let provider = {
            let cached = self.built.lock().ok().and_then(|b| b.get(package).cloned());
            match cached {
                Some(p) => p,
                None => {
                    let factory = self.factories.get(package).ok_or_else(|| ProviderLookupError::UnknownPackage {
                        package: package.to_string(),
                        ty: ty.to_string(),
                        known: self.factories.keys().cloned().collect::<Vec<_>>().join(", "),
                    })?;
                    let built = factory().map_err(|message| ProviderLookupError::Configure { package: package.to_string(), message })?;
                    if let Ok(mut b) = self.built.lock() {
                        b.insert(package.to_string(), built.clone());
                    }
                    built
                }
            }
        };
        if !provider.supports(ty) {
            return Err(ProviderLookupError::UnknownType { package: package.to_string(), ty: ty.to_string() });
        }
        Ok(provider)
    }
}

/// A provider package the `berth` binary ships, configured per stack.
pub trait ProviderPlugin: Send + Sync {
    /// The package name (`aws`, `kubernetes`, `vault`, `random`).
    fn package(&self) -> &str;

    /// Builds the provider for one stack from its `providers.<package>` settings (if any).
    /// Called on first use, never for a stack that does not use the package. Must not call any
    /// API: building happens during preview too.
    fn build(&self, settings: &ProviderSettings) -> Result<Arc<dyn Provider>, crate::config::ConfigError>;
}

/// What a provider plugin gets to configure itself.
#[derive(Clone, Debug)]
pub struct ProviderSettings {
    pub stack: String,
    /// The project root (relative paths in settings are relative to it).
    pub project_root: std::path::PathBuf,
    /// The stack file's `providers.<package>` section.
    pub node: Option<crate::config::Node>,
}

impl ProviderSettings {
    /// The section as `T` (missing section: `T::default()`); errors name file, line and key.
    pub fn parse<T: serde::de::DeserializeOwned + Default>(&self, package: &str) -> Result<T, crate::config::ConfigError> {
        match &self.node {
            // `aws:` with nothing after it: no settings.
            Some(node) if node.kind == crate::config::NodeKind::Null => Ok(T::default()),
            Some(node) => crate::config::from_node(node, &format!("providers.{package}")).map(|(value, _)| value),
            None => Ok(T::default()),
        }
    }
}

impl Providers {
    /// Registers every plugin lazily for one stack.
    pub fn from_plugins(plugins: &[Arc<dyn ProviderPlugin>], settings: impl Fn(&str) -> ProviderSettings) -> Providers {
        let mut providers = Providers::new();
        for plugin in plugins {
            let plugin = plugin.clone();
            let package = plugin.package().to_string();
            let settings = settings(&package);
            providers.add_lazy(&package, move || plugin.build(&settings).map_err(|e| e.to_string()));
        }
        providers
    }
}
