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
    pub fn add_lazy(&mut self, package: &str, factory: impl Fn() -> Result<Arc<dyn Provider>, String> + Send + Sync + 'static) -> &mut Self {
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
