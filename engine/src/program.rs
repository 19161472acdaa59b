//! The SDK a stack program is written against: register resources and components, pass outputs
//! of one as inputs of another, read typed configuration, export stack outputs.
//!
//! ```
//! use berth_engine::{Input, Options, Output, Resource, Stack, ProgramResult};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Bucket { name: Input<String> }
//! #[derive(Serialize, Deserialize)]
//! struct BucketOutputs { arn: String }
//! impl Resource for Bucket { const TYPE: &'static str = "example:s3:Bucket"; type Outputs = BucketOutputs; }
//!
//! #[derive(Serialize, Deserialize)]
//! struct Policy { bucket_arn: Input<String> }
//! #[derive(Serialize, Deserialize)]
//! struct PolicyOutputs {}
//! impl Resource for Policy { const TYPE: &'static str = "example:iam:Policy"; type Outputs = PolicyOutputs; }
//!
//! fn program(stack: &mut Stack) -> ProgramResult {
//!     let bucket = stack.register("assets", Bucket { name: "assets".into() }, Options::new())?;
//!     // Passing an output makes `policy` depend on `bucket`.
//!     stack.register("assets-policy", Policy { bucket_arn: bucket.output("arn").into() }, Options::new())?;
//!     stack.export("bucket_arn", &bucket.output::<String>("arn"));
//!     Ok(())
//! }
//!
//! let mut stack = Stack::new("dev");
//! program(&mut stack).unwrap();
//! assert_eq!(stack.into_graph().unwrap().len(), 2);
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::{self, ConfigError, ConfigWarning, Node};
use crate::graph::{DesiredGraph, GraphError};
use crate::introspect::struct_fields;
use crate::output::{Output, OutputField, Template};
use crate::references::{MissingStacks, StackReferences};
use crate::resource::{Alias, Options, Resource};
use crate::urn::{Urn, UrnError};
use crate::value::{Path, Value};

/// What a stack program returns; any error type converts.
pub type ProgramResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A stack program: ordinary Rust that registers resources.
pub trait Program: Send + Sync {
    fn run(&self, stack: &mut Stack) -> ProgramResult;
}

impl<F: Fn(&mut Stack) -> ProgramResult + Send + Sync> Program for F {
    fn run(&self, stack: &mut Stack) -> ProgramResult {
        self(stack)
    }
}

/// Mistakes in a program's registrations, reported before anything is planned.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("{urn} is registered twice (names must be unique under one parent and type)")]
    Duplicate { urn: Urn },
    #[error(transparent)]
    Urn(#[from] UrnError),
    #[error("cannot serialize the inputs of {urn}: {message}")]
    Inputs { urn: Urn, message: String },
    #[error("{urn}: option {option} has an invalid path `{path}`: {message}")]
    OptionPath { urn: Urn, option: &'static str, path: String, message: String },
}

/// One resource as the program declares it.
#[derive(Clone)]
pub struct DesiredResource {
    pub urn: Urn,
    pub ty: String,
    pub name: String,
    /// False for components: they group children and have no provider.
    pub custom: bool,
    pub parent: Option<Urn>,
    pub inputs: Template,
    pub options: Options,
    pub ignore_changes: Vec<Path>,
    pub replace_on_changes: Vec<Path>,
    /// Every resource this one must wait for: output references and `depends_on`; for a
    /// component, its children.
    pub dependencies: BTreeSet<Urn>,
    /// Former URNs (from aliases and renamed parents).
    pub aliases: Vec<Urn>,
}

impl fmt::Debug for DesiredResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DesiredResource").field("urn", &self.urn).field("dependencies", &self.dependencies).finish()
    }
}

/// A registered resource: its URN and typed access to its outputs.
pub struct ResourceHandle<R> {
    urn: Urn,
    _type: PhantomData<fn() -> R>,
}

impl<R> Clone for ResourceHandle<R> {
    fn clone(&self) -> Self {
        ResourceHandle { urn: self.urn.clone(), _type: PhantomData }
    }
}

impl<R: Resource> ResourceHandle<R> {
    pub fn urn(&self) -> &Urn {
        &self.urn
    }

    /// The provider's id for the resource.
    pub fn id(&self) -> Output<String> {
        Output::reference(self.urn.clone(), OutputField::Id)
    }

    /// An output field, e.g. `db.output::<String>("address")`, or a nested path
    /// (`"endpoint.port"`). A field the type does not have is an error at plan time that lists
    /// the fields it does have.
    pub fn output<T>(&self, field: &str) -> Output<T> {
        let path = match Path::parse(field) {
            Ok(path) => path,
            Err(e) => return Output::invalid(format!("{}: bad output path `{field}`: {e}", self.urn)),
        };
        if let (Some(known), Some(first)) = (struct_fields::<R::Outputs>(), path.first_key())
            && !known.contains(&first)
        {
            return Output::invalid(format!("{} ({}) has no output `{first}`; its outputs are: {}", self.urn, R::TYPE, known.join(", ")));
        }
        Output::reference(self.urn.clone(), OutputField::Field(path))
    }
}

impl<R> From<&ResourceHandle<R>> for crate::resource::DependsOn {
    fn from(handle: &ResourceHandle<R>) -> Self {
        crate::resource::DependsOn(handle.urn.clone())
    }
}

/// A registered resource of a type known only at run time.
#[derive(Clone, Debug)]
pub struct DynamicHandle {
    urn: Urn,
}

impl DynamicHandle {
    pub fn urn(&self) -> &Urn {
        &self.urn
    }

    pub fn id(&self) -> Output<String> {
        Output::reference(self.urn.clone(), OutputField::Id)
    }

    /// An output field or nested path (`"status.loadBalancer"`).
    pub fn output<T>(&self, field: &str) -> Output<T> {
        match Path::parse(field) {
            Ok(path) => Output::reference(self.urn.clone(), OutputField::Field(path)),
            Err(e) => Output::invalid(format!("{}: bad output path `{field}`: {e}", self.urn)),
        }
    }
}

impl From<&DynamicHandle> for crate::resource::DependsOn {
    fn from(handle: &DynamicHandle) -> Self {
        crate::resource::DependsOn(handle.urn.clone())
    }
}

/// A registered component.
#[derive(Clone, Debug)]
pub struct ComponentHandle {
    urn: Urn,
}

impl ComponentHandle {
    pub fn urn(&self) -> &Urn {
        &self.urn
    }
}

impl From<&ComponentHandle> for crate::resource::DependsOn {
    fn from(handle: &ComponentHandle) -> Self {
        crate::resource::DependsOn(handle.urn.clone())
    }
}

/// Why another stack's outputs cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("stack reference `{stack}`: this run cannot read other stacks (no project)")]
    NoResolver { stack: String },
    #[error("stack reference `{stack}`: that stack has no state yet; run `berth stack up {stack}` first")]
    Missing { stack: String },
    #[error("stack reference `{stack}`: {message}")]
    Resolve { stack: String, message: String },
    #[error("stack `{stack}` has no output `{name}`; its outputs are: {known}")]
    NoOutput { stack: String, name: String, known: String },
    #[error("stack `{stack}` output `{name}` has an unexpected shape: {message}")]
    Shape { stack: String, name: String, message: String },
}

/// Another stack's outputs, read when the program runs.
#[derive(Clone, Debug)]
pub struct StackReference {
    stack: String,
    /// `None`: the stack has no state yet (in a preview, its outputs are unknown).
    outputs: Option<BTreeMap<String, Value>>,
}

impl StackReference {
    pub fn name(&self) -> &str {
        &self.stack
    }

    fn get(&self, name: &str) -> Result<Option<&Value>, ReferenceError> {
        let Some(outputs) = &self.outputs else { return Ok(None) };
        outputs.get(name).map(Some).ok_or_else(|| ReferenceError::NoOutput {
            stack: self.stack.clone(),
            name: name.to_string(),
            known: outputs.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// An output, to pass into resources. Secret outputs stay secret; in a preview of a stack
    /// whose referenced stack has no state yet, the value is unknown.
    pub fn output<T>(&self, name: &str) -> Result<Output<T>, ReferenceError> {
        Ok(Output::constant(self.get(name)?.cloned().unwrap_or(Value::Unknown)))
    }

    /// An output's value now, for decisions in the program itself; `None` when unknown.
    pub fn value<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, ReferenceError> {
        match self.get(name)? {
            None => Ok(None),
            Some(v) => serde_json::from_value(v.to_json_revealed()).map(Some).map_err(|e| ReferenceError::Shape {
                stack: self.stack.clone(),
                name: name.to_string(),
                message: e.to_string(),
            }),
        }
    }
}

/// A stack output, evaluated after apply and kept in state.
#[derive(Clone)]
pub struct Export {
    pub name: String,
    pub value: Output<serde_json::Value>,
}

struct Scope {
    urn: Urn,
    /// Former URNs of the scope's component; children's URNs under them become aliases.
    aliases: Vec<Urn>,
    index: usize,
}

/// The context a stack program registers resources through.
pub struct Stack {
    name: String,
    config: Option<Arc<Node>>,
    config_warnings: Vec<ConfigWarning>,
    resources: Vec<DesiredResource>,
    index: HashMap<Urn, usize>,
    scopes: Vec<Scope>,
    exports: Vec<Export>,
    references: Option<Arc<dyn StackReferences>>,
    missing_stacks: MissingStacks,
    notes: Vec<String>,
    project_dir: std::path::PathBuf,
}

impl Stack {
    /// A context for the stack `name`, with no configuration.
    pub fn new(name: &str) -> Stack {
        Stack {
            name: name.to_string(),
            config: None,
            config_warnings: Vec::new(),
            resources: Vec::new(),
            index: HashMap::new(),
            scopes: Vec::new(),
            exports: Vec::new(),
            references: None,
            missing_stacks: MissingStacks::Error,
            notes: Vec::new(),
            project_dir: std::path::PathBuf::from("."),
        }
    }

    /// The project directory (where `stacks/` and `files/` are), for programs that read files.
    pub fn project_dir(&self) -> &std::path::Path {
        &self.project_dir
    }

    /// Sets the project directory.
    pub fn with_project_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Stack {
        self.project_dir = dir.into();
        self
    }

    /// A context whose program reads `config` (the stack file's `config:` section, with tier
    /// defaults and overrides merged).
    pub fn with_config(name: &str, config: Node) -> Stack {
        let mut stack = Stack::new(name);
        stack.config = Some(Arc::new(config));
        stack
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Lets the program read other stacks' outputs through `resolver`.
    pub fn with_references(mut self, resolver: Arc<dyn StackReferences>, missing: MissingStacks) -> Stack {
        self.references = Some(resolver);
        self.missing_stacks = missing;
        self
    }

    /// Another stack's outputs (`stack.reference("network.qa")?.output::<String>("vpc_id")?`).
    pub fn reference(&mut self, stack: &str) -> Result<StackReference, ReferenceError> {
        let resolver = self.references.as_ref().ok_or_else(|| ReferenceError::NoResolver { stack: stack.to_string() })?;
        let outputs = resolver.outputs(stack).map_err(|message| ReferenceError::Resolve { stack: stack.to_string(), message })?;
        if outputs.is_none() {
            match self.missing_stacks {
                MissingStacks::Error => return Err(ReferenceError::Missing { stack: stack.to_string() }),
                MissingStacks::Unknown => {
                    let note = format!("stack `{stack}` has no state yet: the outputs read from it are unknown");
                    if !self.notes.contains(&note) {
                        self.notes.push(note);
                    }
                }
            }
        }
        Ok(StackReference { stack: stack.to_string(), outputs })
    }

    /// Adds a note to the plan (shown as a warning in previews).
    pub fn note(&mut self, message: impl Into<String>) {
        let message = message.into();
        if !self.notes.contains(&message) {
            self.notes.push(message);
        }
    }

    /// Notes for the plan (references to stacks with no state yet, and the program's own).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The whole `config:` section as `T`. Unknown keys, wrong types and missing values are
    /// errors naming the file, line and key.
    pub fn config<T: DeserializeOwned>(&mut self) -> Result<T, ConfigError> {
        self.config_at("")
    }

    /// One key of the `config:` section (dotted), as `T`.
    pub fn config_at<T: DeserializeOwned>(&mut self, key: &str) -> Result<T, ConfigError> {
        let empty;
        let root = match &self.config {
            Some(node) => node.as_ref(),
            None => {
                empty = Node::empty_map(config::Source::new("<no config>", 1, 1));
                &empty
            }
        };
        let node = if key.is_empty() { Some(root) } else { root.get_path(key) };
        let prefix = if key.is_empty() { "config".to_string() } else { format!("config.{key}") };
        let node = match node {
            Some(node) => node,
            None => {
                return Err(ConfigError {
                    location: Some(root.source.clone()),
                    key: Some(prefix.clone()),
                    message: format!("missing required key `{key}`"),
                    help: Some(format!("add `{key}` under `config:` in the stack file, or pass --config {key}=VALUE")),
                });
            }
        };
        let (value, warnings) = config::from_node(node, &prefix)?;
        self.config_warnings.extend(warnings);
        Ok(value)
    }

    /// Warnings collected while reading configuration (plaintext secrets).
    pub fn config_warnings(&self) -> &[ConfigWarning] {
        &self.config_warnings
    }

    fn parent(&self) -> Option<&Urn> {
        self.scopes.last().map(|s| &s.urn)
    }

    /// The URN a resource of type `ty` named `name` gets under the current parent. Useful to
    /// refer to a resource registered later (`depends_on`).
    pub fn urn_for(&self, ty: &str, name: &str) -> Result<Urn, UrnError> {
        Urn::new(&self.name, self.parent(), ty, name)
    }

    /// An output of a resource identified by URN, which may be registered later in the program.
    pub fn output_of<T>(&self, urn: &Urn, field: &str) -> Output<T> {
        match Path::parse(field) {
            Ok(path) => Output::reference(urn.clone(), OutputField::Field(path)),
            Err(e) => Output::invalid(format!("bad output path `{field}`: {e}")),
        }
    }

    fn alias_urns(&self, urn: &Urn, aliases: &[Alias]) -> Result<Vec<Urn>, UrnError> {
        let mut out = Vec::new();
        for alias in aliases {
            match alias {
                Alias::Urn(u) => out.push(u.clone()),
                Alias::Spec { name, parent } => {
                    let name = name.as_deref().unwrap_or(urn.name());
                    let parent = match parent {
                        Some(p) => p.clone(),
                        None => self.parent().cloned(),
                    };
                    out.push(urn.renamed(name, parent.as_ref())?);
                }
            }
        }
        // A renamed parent renames its children: the child's URN under each former parent URN.
        if let Some(scope) = self.scopes.last() {
            let former: Vec<Urn> = scope.aliases.iter().filter_map(|p| urn.renamed(urn.name(), Some(p)).ok()).collect();
            out.extend(former);
        }
        out.retain(|u| u != urn);
        out.dedup();
        Ok(out)
    }

    fn add(&mut self, desired: DesiredResource) -> Result<(), RegistrationError> {
        if self.index.contains_key(&desired.urn) {
            return Err(RegistrationError::Duplicate { urn: desired.urn });
        }
        if let Some(scope) = self.scopes.last() {
            let parent_index = scope.index;
            self.resources[parent_index].dependencies.insert(desired.urn.clone());
        }
        self.index.insert(desired.urn.clone(), self.resources.len());
        self.resources.push(desired);
        Ok(())
    }

    fn parse_paths(urn: &Urn, option: &'static str, paths: &[String]) -> Result<Vec<Path>, RegistrationError> {
        paths
            .iter()
            .map(|p| Path::parse(p).map_err(|message| RegistrationError::OptionPath { urn: urn.clone(), option, path: p.clone(), message }))
            .collect()
    }

    /// Registers a resource named `name` (unique under its parent and type) with typed inputs.
    pub fn register<R: Resource>(&mut self, name: &str, inputs: R, options: Options) -> Result<ResourceHandle<R>, RegistrationError> {
        let urn = self.register_raw(R::TYPE, name, &inputs, options)?;
        Ok(ResourceHandle { urn, _type: PhantomData })
    }

    /// Registers a resource whose type is known only at run time, such as a custom resource
    /// found through discovery (`kubernetes:keda.sh/v1alpha1:ScaledObject`). Its provider
    /// must [`support`](crate::Provider::supports) the token; its outputs are not checked against
    /// a struct.
    pub fn register_dynamic<I: Serialize>(
        &mut self,
        ty: &str,
        name: &str,
        inputs: &I,
        options: Options,
    ) -> Result<DynamicHandle, RegistrationError> {
        let urn = self.register_raw(ty, name, inputs, options)?;
        Ok(DynamicHandle { urn })
    }

    fn register_raw<I: Serialize>(&mut self, ty: &str, name: &str, inputs: &I, options: Options) -> Result<Urn, RegistrationError> {
        let urn = self.urn_for(ty, name)?;
        let template = Template::capture(inputs).map_err(|e| RegistrationError::Inputs { urn: urn.clone(), message: e.to_string() })?;
        let mut dependencies = template.dependencies();
        dependencies.extend(options.depends_on.iter().map(|d| d.0.clone()));
        let desired = DesiredResource {
            ignore_changes: Self::parse_paths(&urn, "ignore_changes", &options.ignore_changes)?,
            replace_on_changes: Self::parse_paths(&urn, "replace_on_changes", &options.replace_on_changes)?,
            aliases: self.alias_urns(&urn, &options.aliases)?,
            urn: urn.clone(),
            ty: ty.to_string(),
            name: name.to_string(),
            custom: true,
            parent: self.parent().cloned(),
            inputs: template,
            options,
            dependencies,
        };
        self.add(desired)?;
        Ok(urn)
    }

    /// Registers a component of type `ty` named `name` and runs `build` to register its children
    /// under it. The component counts as done when all its children are, so depending on it
    /// waits for all of them.
    pub fn component<T, E>(
        &mut self,
        ty: &str,
        name: &str,
        options: Options,
        build: impl FnOnce(&mut Stack, &ComponentHandle) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<RegistrationError>,
    {
        let urn = self.urn_for(ty, name).map_err(RegistrationError::from)?;
        let aliases = self.alias_urns(&urn, &options.aliases).map_err(RegistrationError::from)?;
        let mut dependencies = BTreeSet::new();
        dependencies.extend(options.depends_on.iter().map(|d| d.0.clone()));
        let desired = DesiredResource {
            urn: urn.clone(),
            ty: ty.to_string(),
            name: name.to_string(),
            custom: false,
            parent: self.parent().cloned(),
            inputs: Template::literal(Value::Object(Default::default())),
            ignore_changes: Vec::new(),
            replace_on_changes: Vec::new(),
            options,
            dependencies,
            aliases: aliases.clone(),
        };
        self.add(desired)?;
        let index = self.resources.len() - 1;
        self.scopes.push(Scope { urn: urn.clone(), aliases, index });
        let handle = ComponentHandle { urn };
        let result = build(self, &handle);
        self.scopes.pop();
        result
    }

    /// Exports a stack output (`berth stack output`, and other stacks' references).
    pub fn export<T>(&mut self, name: &str, value: &Output<T>) {
        self.exports.retain(|e| e.name != name);
        self.exports.push(Export { name: name.to_string(), value: value.cast() });
    }

    /// Exports a plain value.
    pub fn export_value<T: Serialize>(&mut self, name: &str, value: T) {
        let json = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        self.export(name, &Output::<serde_json::Value>::known(json));
    }

    pub fn exports(&self) -> &[Export] {
        &self.exports
    }

    /// Finishes registration: checks that every dependency exists and that there is no cycle.
    pub fn into_graph(self) -> Result<DesiredGraph, GraphError> {
        DesiredGraph::new(self.resources, self.exports)
    }
}
