//! Test fixture: an in-memory "cloud" and a provider for it. Not a product feature: it exists to
//! test the engine's planning and execution without any real API.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_engine::apply::{ApplyOptions, Silent};
use berth_engine::crypto::Keyring;
use berth_engine::ops::{Engine, Operation, RunOptions};
use berth_engine::state::LocalBackend;
use berth_engine::typed::auto_suffix;
use berth_engine::{
    CallContext, CheckFailure, DiffResponse, ErrorKind, Input, Package, Path, Program, ProviderError, Providers, Resource,
    ResourceProvider, Secret, TypedCreated, TypedObserved, Value, async_trait, default_diff,
};
use serde::{Deserialize, Serialize};

/// A thing in the memory cloud. `name` is its physical name (unique in the cloud), generated
/// from the seed when not given; `zone` cannot change in place.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Thing {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Input<String>>,
    #[serde(default)]
    pub value: Input<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Input<Secret<String>>>,
    /// Makes create fail (to test failures).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ThingOutputs {
    pub name: String,
    pub arn: String,
    pub upper: String,
    /// The value's length: derived from `value`, deliberately not declared as changing on
    /// update (to test the engine's safety net).
    #[serde(default)]
    pub len: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret<String>>,
}

impl Resource for Thing {
    const TYPE: &'static str = "mem:index:Thing";
    type Outputs = ThingOutputs;
}

impl Thing {
    pub fn value(v: &str) -> Thing {
        Thing { value: v.into(), ..Thing::default() }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    pub id: String,
    pub urn: String,
    pub name: String,
    pub value: String,
    pub zone: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// A recorded call.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub op: &'static str,
    pub name: String,
}

#[derive(Default)]
pub struct Cloud {
    pub objects: Mutex<BTreeMap<String, Object>>,
    pub calls: Mutex<Vec<Call>>,
    next_id: AtomicUsize,
    in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub latency: Mutex<Duration>,
    /// Extra latency for the objects with these physical names.
    pub slow: Mutex<BTreeMap<String, Duration>>,
    /// "start <op> <name>" and "end <op> <name>", in the order they happened.
    pub timeline: Mutex<Vec<String>>,
}

impl Cloud {
    pub fn objects(&self) -> Vec<Object> {
        self.objects.lock().unwrap().values().cloned().collect()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn mutating_calls(&self) -> usize {
        self.calls().iter().filter(|c| c.op != "read").count()
    }

    pub fn clear_calls(&self) {
        self.calls.lock().unwrap().clear();
    }

    pub fn by_name(&self, name: &str) -> Option<Object> {
        self.objects.lock().unwrap().values().find(|o| o.name == name).cloned()
    }

    async fn enter(&self, op: &'static str, name: &str) {
        self.calls.lock().unwrap().push(Call { op, name: name.to_string() });
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        self.timeline.lock().unwrap().push(format!("start {op} {name}"));
        let latency = *self.latency.lock().unwrap() + self.slow.lock().unwrap().get(name).copied().unwrap_or_default();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        self.timeline.lock().unwrap().push(format!("end {op} {name}"));
    }

    fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct ThingProvider {
    pub cloud: Arc<Cloud>,
}

fn outputs_of(o: &Object) -> ThingOutputs {
    ThingOutputs {
        name: o.name.clone(),
        arn: format!("arn:mem:{}", o.id),
        upper: o.value.to_uppercase(),
        len: o.value.len(),
        token: Some(Secret::new(format!("token-{}", o.id))),
    }
}

fn observed(o: &Object) -> TypedObserved<Thing> {
    TypedObserved {
        id: o.id.clone(),
        inputs: Thing {
            name: Some(o.name.clone().into()),
            value: o.value.clone().into(),
            zone: o.zone.clone(),
            tags: o.tags.clone(),
            password: None,
            fail: false,
        },
        outputs: outputs_of(o),
    }
}

#[async_trait]
impl ResourceProvider for ThingProvider {
    type Resource = Thing;

    fn replace_on(&self) -> Vec<Path> {
        vec![Path::parse("zone").unwrap(), Path::parse("name").unwrap()]
    }

    fn fixed_name(&self) -> Option<Path> {
        Some(Path::parse("name").unwrap())
    }

    async fn check(&self, ctx: CallContext<'_>, mut inputs: Thing, seed: &[u8; 32]) -> Result<Thing, Vec<CheckFailure>> {
        if let Some(v) = inputs.value.known()
            && v.contains(' ')
        {
            return Err(vec![CheckFailure::field("value", format!("`{v}` must not contain spaces"))]);
        }
        if inputs.name.is_none() {
            inputs.name = Some(format!("{}-{}", ctx.name, auto_suffix(seed, 6)).into());
        }
        Ok(inputs)
    }

    fn plan_notes(&self, _ctx: CallContext<'_>, inputs: &Thing) -> Vec<String> {
        if inputs.zone.as_deref() == Some("legacy") { vec!["zone `legacy` is deprecated; using its successor".into()] } else { Vec::new() }
    }

    async fn diff(
        &self,
        _ctx: CallContext<'_>,
        _id: &str,
        old: &Value,
        _old_outputs: &Value,
        new: &Value,
    ) -> Result<DiffResponse, ProviderError> {
        let mut response = default_diff(old, new, &self.replace_on(), self.fixed_name().as_ref());
        // Like an API that normalises what it stores: surrounding whitespace in `value` is no change.
        let trimmed = |v: &Value| v.get_path(&Path::parse("value").unwrap()).and_then(|v| v.as_str().map(|s| s.trim().to_string()));
        if trimmed(old).is_some() && trimmed(old) == trimmed(new) {
            response.changes.retain(|c| c.path.first_key() != Some("value"));
        }
        // `upper` is computed from `value`.
        if response.changes.iter().any(|c| c.path.first_key() == Some("value")) {
            response.unknown_outputs.push(Path::parse("upper").unwrap());
        }
        Ok(response)
    }

    async fn create(&self, ctx: CallContext<'_>, inputs: &Thing) -> Result<TypedCreated<ThingOutputs>, ProviderError> {
        let name = inputs.name.as_ref().and_then(|n| n.known().cloned()).unwrap_or_default();
        self.cloud.enter("create", &name).await;
        let result = (|| {
            if inputs.fail {
                return Err(ProviderError::api("Boom", format!("creating {name} failed on purpose")));
            }
            let half_made = inputs.value.known().is_some_and(|v| v == "half-made");
            let mut objects = self.cloud.objects.lock().unwrap();
            if let Some(existing) = objects.values().find(|o| o.name == name) {
                return Err(ProviderError::new(
                    ErrorKind::AlreadyExists { id: existing.id.clone() },
                    format!("a thing named {name} already exists"),
                ));
            }
            let id = format!("t-{}", self.cloud.next_id.fetch_add(1, Ordering::SeqCst));
            let object = Object {
                id: id.clone(),
                urn: ctx.urn.to_string(),
                name,
                value: inputs.value.value().unwrap().clone(),
                zone: inputs.zone.clone(),
                tags: inputs.tags.clone(),
            };
            let outputs = outputs_of(&object);
            objects.insert(id.clone(), object);
            if half_made {
                // Exists, but never became usable (like a Job whose pod failed).
                let partial = berth_engine::Created { id: id.clone(), outputs: Value::from_json(serde_json::to_value(&outputs).unwrap()) };
                return Err(ProviderError::api("NotReady", format!("{id} never became ready")).with_partial(partial));
            }
            Ok(TypedCreated { id, outputs })
        })();
        self.cloud.leave();
        result
    }

    async fn read(
        &self,
        _ctx: CallContext<'_>,
        id: &str,
        _prior: Option<&Thing>,
        _prior_outputs: Option<&ThingOutputs>,
    ) -> Result<Option<TypedObserved<Thing>>, ProviderError> {
        self.cloud.calls.lock().unwrap().push(Call { op: "read", name: id.to_string() });
        Ok(self.cloud.objects.lock().unwrap().get(id).map(observed))
    }

    async fn update(
        &self,
        _ctx: CallContext<'_>,
        id: &str,
        _old: &Thing,
        new: &Thing,
        _old_outputs: &ThingOutputs,
    ) -> Result<ThingOutputs, ProviderError> {
        let name = new.name.as_ref().and_then(|n| n.known().cloned()).unwrap_or_default();
        self.cloud.enter("update", &name).await;
        let result = {
            let mut objects = self.cloud.objects.lock().unwrap();
            match objects.get_mut(id) {
                Some(o) => {
                    o.value = new.value.value().unwrap().clone();
                    o.tags = new.tags.clone();
                    Ok(outputs_of(o))
                }
                None => Err(ProviderError::not_found(format!("{id} not found"))),
            }
        };
        self.cloud.leave();
        result
    }

    async fn delete(&self, _ctx: CallContext<'_>, id: &str, inputs: &Thing, _outputs: &ThingOutputs) -> Result<(), ProviderError> {
        let name = inputs.name.as_ref().and_then(|n| n.known().cloned()).unwrap_or_default();
        self.cloud.enter("delete", &name).await;
        let removed = self.cloud.objects.lock().unwrap().remove(id);
        self.cloud.leave();
        removed.map(|_| ()).ok_or_else(|| ProviderError::not_found(format!("{id} not found")))
    }

    async fn lookup(&self, ctx: CallContext<'_>, inputs: &Thing) -> Result<Option<TypedObserved<Thing>>, ProviderError> {
        let name = inputs.name.as_ref().and_then(|n| n.known().cloned());
        let objects = self.cloud.objects.lock().unwrap();
        Ok(objects.values().find(|o| Some(&o.name) == name.as_ref() && o.urn == ctx.urn.as_str()).map(observed))
    }
}

/// An engine on a temporary state directory with the memory provider.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub cloud: Arc<Cloud>,
    pub engine: Engine,
}

pub const PASSPHRASE: &str = "test passphrase";

impl Harness {
    pub fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(Cloud::default());
        let mut providers = Providers::new();
        providers.add(Arc::new(Package::new("mem").with(ThingProvider { cloud: cloud.clone() })));
        let engine = Engine {
            stack: "test".into(),
            backend: Arc::new(LocalBackend::new(dir.path().join("state"))),
            providers: Arc::new(providers),
            keyring: Arc::new(Keyring::new(Some(PASSPHRASE.into()))),
        };
        Harness { dir, cloud, engine }
    }

    pub fn state_path(&self) -> std::path::PathBuf {
        self.dir.path().join("state/test.json")
    }

    pub async fn preview(&self, program: &dyn Program) -> Result<berth_engine::Plan, berth_engine::ops::OpError> {
        self.engine.preview(program, None, &RunOptions { parallel: 4, ..RunOptions::default() }).await.map(|(p, _)| p)
    }

    pub async fn preview_with(&self, program: &dyn Program, run: RunOptions) -> Result<berth_engine::Plan, berth_engine::ops::OpError> {
        self.engine.preview(program, None, &run).await.map(|(p, _)| p)
    }

    /// `stack up --yes`: plan and apply.
    pub async fn up(&self, program: &dyn Program) -> Result<Outcome, berth_engine::ops::OpError> {
        self.up_with(program, RunOptions { parallel: 8, ..RunOptions::default() }, ApplyOptions { parallel: 8, ..ApplyOptions::default() })
            .await
    }

    pub async fn up_with(
        &self,
        program: &dyn Program,
        run: RunOptions,
        apply: ApplyOptions,
    ) -> Result<Outcome, berth_engine::ops::OpError> {
        let (prepared, _) = self.engine.prepare(Operation::Up, Some(program), None, &run).await?;
        let plan = prepared.plan.clone();
        if !prepared.changes_anything() {
            return Ok(Outcome { plan, report: None });
        }
        let executed = self.engine.execute(prepared, &apply, Arc::new(Silent)).await?;
        Ok(Outcome { plan, report: Some(executed.report) })
    }

    pub async fn destroy(&self) -> Result<Outcome, berth_engine::ops::OpError> {
        let (prepared, _) =
            self.engine.prepare(Operation::Destroy, None, None, &RunOptions { parallel: 4, ..RunOptions::default() }).await?;
        let plan = prepared.plan.clone();
        let executed = self.engine.execute(prepared, &ApplyOptions::default(), Arc::new(Silent)).await?;
        Ok(Outcome { plan, report: Some(executed.report) })
    }

    pub async fn state(&self) -> berth_engine::State {
        self.engine.read_state().await.unwrap().0
    }
}

pub struct Outcome {
    pub plan: berth_engine::Plan,
    pub report: Option<berth_engine::ApplyReport>,
}

impl Outcome {
    pub fn ops(&self) -> HashMap<String, berth_engine::Op> {
        self.plan.steps.iter().map(|s| (s.urn.name().to_string(), s.op)).collect()
    }

    pub fn succeeded(&self) -> bool {
        self.report.as_ref().is_none_or(|r| r.succeeded())
    }
}

/// Registers a thing with `value`, no options.
pub fn thing(stack: &mut berth_engine::Stack, name: &str, value: &str) -> berth_engine::ResourceHandle<Thing> {
    stack.register(name, Thing::value(value), berth_engine::Options::new()).unwrap()
}

/// The URN of a top-level thing of the harness's stack.
pub fn urn(h: &Harness, name: &str) -> berth_engine::Urn {
    berth_engine::Urn::new(&h.engine.stack, None, "mem:index:Thing", name).unwrap()
}
