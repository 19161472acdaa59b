//! Typed resources and the options every resource accepts.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::urn::Urn;

/// A kind of infrastructure object: its inputs are the struct itself (serde), its outputs a
/// second struct the provider returns.
///
/// ```
/// use berth_engine::{Input, Resource, Secret};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Database {
///     identifier: Input<String>,
///     password: Input<Secret<String>>,
/// }
///
/// #[derive(Serialize, Deserialize)]
/// struct DatabaseOutputs {
///     address: String,
/// }
///
/// impl Resource for Database {
///     const TYPE: &'static str = "example:db:Database";
///     type Outputs = DatabaseOutputs;
/// }
/// ```
pub trait Resource: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The type token, `<package>:<module>:<Type>`; the package selects the provider.
    const TYPE: &'static str;
    /// What the provider reports after create, update or read.
    type Outputs: Serialize + DeserializeOwned + Send + Sync + 'static;
}

/// Per-operation time limits. The provider's await logic gets them; the engine enforces them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomTimeouts {
    #[serde(default, with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub create: Option<Duration>,
    #[serde(default, with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub update: Option<Duration>,
    #[serde(default, with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub delete: Option<Duration>,
}

impl CustomTimeouts {
    pub fn is_empty(&self) -> bool {
        self.create.is_none() && self.update.is_none() && self.delete.is_none()
    }
}

mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| humantime::parse_duration(&t).map_err(|e| serde::de::Error::custom(format!("bad duration `{t}`: {e}")))).transpose()
    }
}

/// A former identity of a resource. When a resource's URN is not in state but one of its aliases
/// is, the engine treats it as the same resource (a rename), not a delete and a create.
#[derive(Clone, Debug, PartialEq)]
pub enum Alias {
    /// The full former URN.
    Urn(Urn),
    /// The former logical name and/or parent; unspecified parts are the current ones.
    /// `parent: Some(None)` means "formerly had no parent".
    Spec { name: Option<String>, parent: Option<Option<Urn>> },
}

impl Alias {
    pub fn urn(urn: Urn) -> Alias {
        Alias::Urn(urn)
    }

    /// The resource was called `name` before.
    pub fn name(name: &str) -> Alias {
        Alias::Spec { name: Some(name.to_string()), parent: None }
    }

    /// The resource lived under another parent before (`None`: at the top level).
    pub fn parent(parent: Option<&Urn>) -> Alias {
        Alias::Spec { name: None, parent: Some(parent.cloned()) }
    }
}

/// What a resource may depend on without referencing its outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct DependsOn(pub Urn);

impl From<Urn> for DependsOn {
    fn from(urn: Urn) -> Self {
        DependsOn(urn)
    }
}

impl From<&Urn> for DependsOn {
    fn from(urn: &Urn) -> Self {
        DependsOn(urn.clone())
    }
}

/// Options of one resource, Pulumi's resource options. Build with the chained methods:
///
/// ```
/// use berth_engine::Options;
/// let opts = Options::new().protect().ignore_changes(["tags.lastModified"]);
/// assert!(opts.protect);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Extra ordering edges, on top of the ones output references create.
    pub depends_on: Vec<DependsOn>,
    /// Refuse to delete (or replace) the resource.
    pub protect: bool,
    /// Input paths whose changes are ignored after creation (the recorded value is kept).
    pub ignore_changes: Vec<String>,
    /// Input paths whose change forces replacement, in addition to the provider's own.
    pub replace_on_changes: Vec<String>,
    /// Replace by deleting first, then creating.
    pub delete_before_replace: bool,
    /// On delete, forget the resource instead of deleting it.
    pub retain_on_delete: bool,
    pub custom_timeouts: CustomTimeouts,
    pub aliases: Vec<Alias>,
    /// Adopt an existing resource with this provider id instead of creating one.
    pub import: Option<String>,
}

impl Options {
    pub fn new() -> Self {
        Options::default()
    }

    pub fn depends_on(mut self, dependency: impl Into<DependsOn>) -> Self {
        self.depends_on.push(dependency.into());
        self
    }

    pub fn protect(mut self) -> Self {
        self.protect = true;
        self
    }

    pub fn protect_if(mut self, protect: bool) -> Self {
        self.protect = protect;
        self
    }

    pub fn ignore_changes<S: Into<String>>(mut self, paths: impl IntoIterator<Item = S>) -> Self {
        self.ignore_changes.extend(paths.into_iter().map(Into::into));
        self
    }

    pub fn replace_on_changes<S: Into<String>>(mut self, paths: impl IntoIterator<Item = S>) -> Self {
        self.replace_on_changes.extend(paths.into_iter().map(Into::into));
        self
    }

    pub fn delete_before_replace(mut self) -> Self {
        self.delete_before_replace = true;
        self
    }

    pub fn retain_on_delete(mut self) -> Self {
        self.retain_on_delete = true;
        self
    }

    pub fn timeouts(mut self, timeouts: CustomTimeouts) -> Self {
        self.custom_timeouts = timeouts;
        self
    }

    pub fn alias(mut self, alias: Alias) -> Self {
        self.aliases.push(alias);
        self
    }

    pub fn import(mut self, id: impl Into<String>) -> Self {
        self.import = Some(id.into());
        self
    }
}
