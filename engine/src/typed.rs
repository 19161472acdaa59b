//! Writing providers one resource type at a time, with typed inputs and outputs.
//!
//! Implement [`ResourceProvider`] for each type, then bundle them with [`Package`], which is the
//! dynamic [`Provider`] the engine talks to. The package converts between the engine's
//! [`Value`]s and your types, keeps secrecy across the round trip, and maps bad shapes to clear
//! errors.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::diff::default_diff;
use crate::provider::{CallContext, CheckFailure, Checked, Created, DiffResponse, Observed, Provider, ProviderError};
use crate::resource::Resource;
use crate::urn::Urn;
use crate::value::{Path, Value};

/// A create's typed result.
pub struct TypedCreated<O> {
    pub id: String,
    pub outputs: O,
}

/// A read's typed result.
pub struct TypedObserved<R: Resource> {
    pub id: String,
    pub inputs: R,
    pub outputs: R::Outputs,
}

/// The lifecycle of one resource type.
#[async_trait]
pub trait ResourceProvider: Send + Sync + 'static {
    type Resource: Resource;

    /// Input fields (paths) whose change cannot be applied in place.
    fn replace_on(&self) -> Vec<Path> {
        Vec::new()
    }

    /// The input field holding the resource's physical name, when the user fixes it (a bucket
    /// name, an RDS identifier): replacing while it stays the same must delete first.
    fn fixed_name(&self) -> Option<Path> {
        None
    }

    /// Secret input fields the API never reveals (a database's master password). `read`
    /// reports them as an empty secret when it has no prior value (an imported resource); a
    /// configured value then cannot be compared, so it is recorded in state without a call
    /// instead of being applied (see [`DiffResponse::record_write_only`]).
    fn write_only(&self) -> Vec<Path> {
        Vec::new()
    }

    /// Outputs that an in-place update with these changes will change, so that resources
    /// reading them show as changing in the plan. Default: none (ids, ARNs and addresses
    /// survive updates). Used by the default [`diff`](Self::diff).
    fn outputs_changed_by(&self, changes: &[crate::diff::FieldDiff]) -> Vec<Path> {
        let _ = changes;
        Vec::new()
    }

    /// Notes to show beside the resource in the plan, given its checked inputs (an API version
    /// the cluster lacks, a deprecated setting). Default: none.
    fn plan_notes(&self, ctx: CallContext<'_>, inputs: &Self::Resource) -> Vec<String> {
        let _ = (ctx, inputs);
        Vec::new()
    }

    /// Validates inputs (some may be [`Input::Unknown`](crate::Input) at plan time) and fills in
    /// defaults. `seed` is stable for one resource across preview and up, so automatic names
    /// chosen from it match.
    async fn check(&self, ctx: CallContext<'_>, inputs: Self::Resource, seed: &[u8; 32]) -> Result<Self::Resource, Vec<CheckFailure>> {
        let _ = (ctx, seed);
        Ok(inputs)
    }

    /// Compares recorded and desired inputs. The default is [`default_diff`] with
    /// [`replace_on`](Self::replace_on) and [`fixed_name`](Self::fixed_name); override to compare
    /// semantically (policy documents) or to ask the API (a dry-run).
    async fn diff(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old_inputs: &Value,
        old_outputs: &Value,
        new_inputs: &Value,
    ) -> Result<DiffResponse, ProviderError> {
        let _ = (ctx, id, old_outputs);
        let mut response = default_diff(old_inputs, new_inputs, &self.replace_on(), self.fixed_name().as_ref());
        response.unknown_outputs = self.outputs_changed_by(&response.changes);
        Ok(response)
    }

    async fn create(
        &self,
        ctx: CallContext<'_>,
        inputs: &Self::Resource,
    ) -> Result<TypedCreated<<Self::Resource as Resource>::Outputs>, ProviderError>;

    /// Reads the live resource. `prior` and `prior_outputs` are what berth recorded (absent for
    /// an import), so a read can limit itself to the fields berth manages.
    async fn read(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        prior: Option<&Self::Resource>,
        prior_outputs: Option<&<Self::Resource as Resource>::Outputs>,
    ) -> Result<Option<TypedObserved<Self::Resource>>, ProviderError>;

    async fn update(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old: &Self::Resource,
        new: &Self::Resource,
        old_outputs: &<Self::Resource as Resource>::Outputs,
    ) -> Result<<Self::Resource as Resource>::Outputs, ProviderError>;

    async fn delete(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        inputs: &Self::Resource,
        outputs: &<Self::Resource as Resource>::Outputs,
    ) -> Result<(), ProviderError>;

    /// Finds a resource an interrupted create may have made (by deterministic name or tags).
    async fn lookup(&self, ctx: CallContext<'_>, inputs: &Self::Resource) -> Result<Option<TypedObserved<Self::Resource>>, ProviderError> {
        let _ = (ctx, inputs);
        Ok(None)
    }

    /// Ids of existing resources carrying every one of `tags` (see [`Provider::find_tagged`]).
    async fn find_tagged(
        &self,
        ctx: CallContext<'_>,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<String>, ProviderError> {
        let _ = (ctx, tags);
        Ok(Vec::new())
    }
}

fn decode<T: DeserializeOwned>(what: &str, value: &Value) -> Result<T, String> {
    serde_json::from_value(value.to_json_revealed()).map_err(|e| format!("{what} have an unexpected shape: {e}"))
}

fn encode<T: Serialize>(what: &str, value: &T) -> Result<Value, ProviderError> {
    serde_json::to_value(value).map(Value::from_json).map_err(|e| ProviderError::other(format!("cannot encode {what}: {e}")))
}

fn decode_for_call<T: DeserializeOwned>(what: &str, value: &Value) -> Result<T, ProviderError> {
    decode(what, value).map_err(ProviderError::other)
}

/// Marks secret in `target` every path that is secret in `source`: a value that arrived secret
/// (from a secret output or config) stays secret after a typed round trip.
pub fn copy_secrecy(source: &Value, target: &mut Value) {
    match (source, &mut *target) {
        (Value::Secret(_), t) if !t.is_secret() && !matches!(t, Value::Null | Value::Unknown) => {
            let inner = std::mem::take(t);
            *t = inner.into_secret();
        }
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                if let Some(t) = b.get_mut(k) {
                    copy_secrecy(v, t);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (v, t) in a.iter().zip(b.iter_mut()) {
                copy_secrecy(v, t);
            }
        }
        _ => {}
    }
}

#[async_trait]
trait ErasedResourceProvider: Send + Sync {
    fn fixed_name(&self) -> Option<Path>;
    async fn check(&self, ctx: CallContext<'_>, inputs: &Value, seed: &[u8; 32]) -> Result<Checked, Vec<CheckFailure>>;
    async fn diff(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old_inputs: &Value,
        old_outputs: &Value,
        new_inputs: &Value,
    ) -> Result<DiffResponse, ProviderError>;
    async fn create(&self, ctx: CallContext<'_>, inputs: &Value) -> Result<Created, ProviderError>;
    async fn read(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old_inputs: Option<&Value>,
        old_outputs: Option<&Value>,
    ) -> Result<Option<Observed>, ProviderError>;
    async fn update(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old_inputs: &Value,
        old_outputs: &Value,
        new_inputs: &Value,
    ) -> Result<Value, ProviderError>;
    async fn delete(&self, ctx: CallContext<'_>, id: &str, inputs: &Value, outputs: &Value) -> Result<(), ProviderError>;
    async fn lookup(&self, ctx: CallContext<'_>, inputs: &Value) -> Result<Option<Observed>, ProviderError>;
    async fn find_tagged(
        &self,
        ctx: CallContext<'_>,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<String>, ProviderError>;
}

struct Erased<P>(P);

fn observed<R: Resource>(o: TypedObserved<R>) -> Result<Observed, ProviderError> {
    Ok(Observed { id: o.id, inputs: encode("inputs", &o.inputs)?, outputs: encode("outputs", &o.outputs)? })
}

#[async_trait]
impl<P: ResourceProvider> ErasedResourceProvider for Erased<P> {
    fn fixed_name(&self) -> Option<Path> {
        self.0.fixed_name()
    }

    async fn check(&self, ctx: CallContext<'_>, inputs: &Value, seed: &[u8; 32]) -> Result<Checked, Vec<CheckFailure>> {
        let typed: P::Resource = decode("inputs", inputs).map_err(|e| vec![CheckFailure::general(e)])?;
        let checked = self.0.check(ctx, typed, seed).await?;
        let notes = self.0.plan_notes(ctx, &checked);
        let mut value = serde_json::to_value(&checked)
            .map(Value::from_json)
            .map_err(|e| vec![CheckFailure::general(format!("cannot encode inputs: {e}"))])?;
        copy_secrecy(inputs, &mut value);
        Ok(Checked { inputs: value, notes })
    }

    async fn diff(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old_inputs: &Value,
        old_outputs: &Value,
        new_inputs: &Value,
    ) -> Result<DiffResponse, ProviderError> {
        let mut response = self.0.diff(ctx, id, old_inputs, old_outputs, new_inputs).await?;
        for path in self.0.write_only() {
            response.record_write_only(old_inputs, new_inputs, &path);
        }
        Ok(response)
    }

    async fn create(&self, ctx: CallContext<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let typed: P::Resource = decode_for_call("inputs", inputs)?;
        let created = self.0.create(ctx, &typed).await?;
        Ok(Created { id: created.id, outputs: encode("outputs", &created.outputs)? })
    }

    async fn read(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old_inputs: Option<&Value>,
        old_outputs: Option<&Value>,
    ) -> Result<Option<Observed>, ProviderError> {
        let prior: Option<P::Resource> = match old_inputs {
            Some(v) => Some(decode_for_call("recorded inputs", v)?),
            None => None,
        };
        let prior_outputs: Option<<P::Resource as Resource>::Outputs> = match old_outputs {
            Some(v) if !v.is_null() => Some(decode_for_call("recorded outputs", v)?),
            _ => None,
        };
        self.0.read(ctx, id, prior.as_ref(), prior_outputs.as_ref()).await?.map(observed).transpose()
    }

    async fn update(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old_inputs: &Value,
        old_outputs: &Value,
        new_inputs: &Value,
    ) -> Result<Value, ProviderError> {
        let old: P::Resource = decode_for_call("recorded inputs", old_inputs)?;
        let new: P::Resource = decode_for_call("inputs", new_inputs)?;
        let outputs: <P::Resource as Resource>::Outputs = decode_for_call("recorded outputs", old_outputs)?;
        encode("outputs", &self.0.update(ctx, id, &old, &new, &outputs).await?)
    }

    async fn delete(&self, ctx: CallContext<'_>, id: &str, inputs: &Value, outputs: &Value) -> Result<(), ProviderError> {
        let inputs: P::Resource = decode_for_call("recorded inputs", inputs)?;
        let outputs: <P::Resource as Resource>::Outputs = decode_for_call("recorded outputs", outputs)?;
        self.0.delete(ctx, id, &inputs, &outputs).await
    }

    async fn lookup(&self, ctx: CallContext<'_>, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        let typed: P::Resource = decode_for_call("inputs", inputs)?;
        self.0.lookup(ctx, &typed).await?.map(observed).transpose()
    }

    async fn find_tagged(
        &self,
        ctx: CallContext<'_>,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<String>, ProviderError> {
        self.0.find_tagged(ctx, tags).await
    }
}

/// A provider package assembled from typed resource providers.
///
/// ```
/// # use berth_engine::Package;
/// let package = Package::new("example"); // .with(BucketProvider { .. }).with(RoleProvider { .. })
/// assert_eq!(package.name(), "example");
/// ```
pub struct Package {
    name: String,
    types: HashMap<&'static str, Arc<dyn ErasedResourceProvider>>,
}

impl Package {
    pub fn new(name: impl Into<String>) -> Self {
        Package { name: name.into(), types: HashMap::new() }
    }

    /// Adds one resource type. Its type token must start with this package's name.
    pub fn with<P: ResourceProvider>(mut self, provider: P) -> Self {
        let token = <P::Resource as Resource>::TYPE;
        debug_assert!(token.starts_with(&format!("{}:", self.name)), "type {token} does not belong to package {}", self.name);
        self.types.insert(token, Arc::new(Erased(provider)));
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, ty: &str) -> Result<&Arc<dyn ErasedResourceProvider>, ProviderError> {
        self.types.get(ty).ok_or_else(|| ProviderError::other(format!("provider `{}` has no resource type `{ty}`", self.name)))
    }
}

/// Every provider call, at debug level (`-vv`): what was called for which resource, how long it
/// took and how it ended. Error texts go through the CLI's secret scrubber like any log line.
async fn traced<T>(call: &str, urn: &Urn, future: impl std::future::Future<Output = Result<T, ProviderError>>) -> Result<T, ProviderError> {
    let started = std::time::Instant::now();
    tracing::debug!("{call} {urn}");
    let result = future.await;
    let elapsed = started.elapsed().as_millis();
    match &result {
        Ok(_) => tracing::debug!("{call} {urn}: done in {elapsed} ms"),
        Err(e) => tracing::debug!("{call} {urn}: failed after {elapsed} ms: {}", e.message),
    }
    result
}

#[async_trait]
impl Provider for Package {
    fn package(&self) -> &str {
        &self.name
    }

    fn supports(&self, ty: &str) -> bool {
        self.types.contains_key(ty)
    }

    fn fixed_name(&self, ty: &str) -> Option<Path> {
        self.types.get(ty).and_then(|p| p.fixed_name())
    }

    async fn check(&self, ctx: CallContext<'_>, inputs: &Value, seed: &[u8; 32]) -> Result<Checked, Vec<CheckFailure>> {
        self.get(ctx.ty).map_err(|e| vec![CheckFailure::general(e.message)])?.check(ctx, inputs, seed).await
    }

    async fn diff(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old_inputs: &Value,
        old_outputs: &Value,
        new_inputs: &Value,
    ) -> Result<DiffResponse, ProviderError> {
        let urn = ctx.urn;
        traced("diff", urn, self.get(ctx.ty)?.diff(ctx, id, old_inputs, old_outputs, new_inputs)).await
    }

    async fn create(&self, ctx: CallContext<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let urn = ctx.urn;
        traced("create", urn, self.get(ctx.ty)?.create(ctx, inputs)).await
    }

    async fn read(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old_inputs: Option<&Value>,
        old_outputs: Option<&Value>,
    ) -> Result<Option<Observed>, ProviderError> {
        let urn = ctx.urn;
        traced("read", urn, self.get(ctx.ty)?.read(ctx, id, old_inputs, old_outputs)).await
    }

    async fn update(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old_inputs: &Value,
        old_outputs: &Value,
        new_inputs: &Value,
    ) -> Result<Value, ProviderError> {
        let urn = ctx.urn;
        traced("update", urn, self.get(ctx.ty)?.update(ctx, id, old_inputs, old_outputs, new_inputs)).await
    }

    async fn delete(&self, ctx: CallContext<'_>, id: &str, inputs: &Value, outputs: &Value) -> Result<(), ProviderError> {
        let urn = ctx.urn;
        traced("delete", urn, self.get(ctx.ty)?.delete(ctx, id, inputs, outputs)).await
    }

    async fn lookup(&self, ctx: CallContext<'_>, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        let urn = ctx.urn;
        traced("lookup", urn, self.get(ctx.ty)?.lookup(ctx, inputs)).await
    }

    async fn find_tagged(
        &self,
        ctx: CallContext<'_>,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<String>, ProviderError> {
        self.get(ctx.ty)?.find_tagged(ctx, tags).await
    }
}

/// A short, stable suffix for automatic physical names, from a check's seed.
pub fn auto_suffix(seed: &[u8; 32], len: usize) -> String {
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    hex[..len.min(hex.len())].to_string()
}
