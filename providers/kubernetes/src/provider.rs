//! The `kubernetes` provider: one lifecycle for every kind, typed or found through discovery.
//! Objects are applied server-side as field manager `berth`; diffs come from a server-side
//! dry-run compared on the fields berth manages; creates and updates wait until the object is
//! usable.

use std::sync::Arc;
use std::time::Duration;

use berth_engine::{
    CallContext, CheckFailure, Checked, Created, DiffResponse, ErrorKind, Observed, Path, Provider, ProviderError, Value, async_trait,
    default_diff,
};
use serde_json::Value as Json;

use crate::check::check;
use crate::cluster::{Cluster, Connection, describe, is_conflict, is_unreachable};
use crate::compare::{drifted_inputs, forcing_replacement, imported_inputs, managed_changes, outputs_of, replace_paths};
use crate::discovery::{Missing, Target};
use crate::fields::{FIELD_MANAGER, is_managed_by, managers};
use crate::kinds::{Gvk, PACKAGE, is_kind};
use crate::manifest::{ObjectOptions, identity, manifest, object_id, scrub, secret_strings, split_id};
use crate::readiness::{self, AwaitError, Deadline};

/// How long a create waits for the cluster to start serving a custom resource's kind (its CRD
/// applied a moment ago), when the resource has no custom timeout.
const DEFAULT_KIND_WAIT: Duration = Duration::from_secs(60);
/// The annotation on an object whose create did not finish (a failed Job, a rollout that timed
/// out); the create that replaces it deletes it first.
pub const UNFINISHED: &str = "berth.dev/unfinished-create";
/// The field manager of that annotation (not `berth`: applies must not own it).
const AWAIT_MANAGER: &str = "berth-await";

/// The provider for one stack.
pub struct KubernetesProvider {
    conn: Connection,
    /// `providers.kubernetes.force_conflicts`: take over fields other managers own.
    force_conflicts: bool,
}

/// One object a call is about.
struct Object {
    gvk: Gvk,
    target: Target,
    namespace: Option<String>,
    name: String,
    /// Secret strings of the inputs, to scrub from the API's messages.
    secrets: Vec<String>,
}

impl Object {
    fn label(&self) -> String {
        describe(&self.target.kind, self.namespace.as_deref(), &self.name)
    }

    fn id(&self) -> String {
        object_id(self.namespace.as_deref(), &self.name)
    }

    fn ns(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// An error whose message may echo inputs, with secrets masked.
    fn scrubbed(&self, mut e: ProviderError) -> ProviderError {
        e.message = scrub(&e.message, &self.secrets);
        e
    }
}

impl KubernetesProvider {
    pub fn new(conn: Connection, force_conflicts: bool) -> KubernetesProvider {
        KubernetesProvider { conn, force_conflicts }
    }

    pub fn into_arc(self) -> Arc<dyn Provider> {
        Arc::new(self)
    }

    /// The connection (tests use it to play the kubelet and to make out-of-band changes).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Where objects of `gvk` live; `wait` keeps asking until the cluster serves the kind.
    async fn target(&self, cluster: &Cluster, gvk: &Gvk, wait: Option<Deadline>) -> Result<Option<Target>, ProviderError> {
        loop {
            match cluster.discovery.resolve(&cluster.client, &cluster.server, gvk).await {
                Ok(target) => return Ok(Some(target)),
                Err(Missing::Failed(e)) => return Err(e),
                Err(Missing::NotServed(why)) => match wait {
                    Some(deadline) if !deadline.expired() => {
                        cluster.discovery.invalidate(&gvk.group);
                        tokio::time::sleep(Duration::from_millis(500).min(deadline.remaining())).await;
                    }
                    Some(deadline) => {
                        return Err(ProviderError::api(
                            "NotServed",
                            format!(
                                "{why} (waited {}); install its CustomResourceDefinition first: if this stack applies it, make this resource depend on it",
                                deadline.limit()
                            ),
                        ));
                    }
                    None => return Ok(None),
                },
            }
        }
    }

    /// The object described by inputs; `None` when the cluster does not serve its kind.
    async fn object(
        &self,
        cluster: &Cluster,
        ctx: &CallContext<'_>,
        inputs: &Value,
        wait: Option<Deadline>,
    ) -> Result<Option<Object>, ProviderError> {
        let gvk = Gvk::from_token(ctx.ty).map_err(ProviderError::other)?;
        let Some(target) = self.target(cluster, &gvk, wait).await? else { return Ok(None) };
        let (name, namespace) = identity(inputs);
        let name = name.ok_or_else(|| ProviderError::other(format!("{} has no metadata.name (check should have set one)", ctx.urn)))?;
        let namespace = if target.namespaced { Some(namespace.unwrap_or_else(|| cluster.default_namespace.clone())) } else { None };
        Ok(Some(Object { gvk, target, namespace, name, secrets: secret_strings(inputs) }))
    }

    /// The object a provider id names.
    async fn object_by_id(
        &self,
        cluster: &Cluster,
        ctx: &CallContext<'_>,
        id: &str,
        inputs: Option<&Value>,
    ) -> Result<Option<Object>, ProviderError> {
        let gvk = Gvk::from_token(ctx.ty).map_err(ProviderError::other)?;
        let Some(target) = self.target(cluster, &gvk, None).await? else { return Ok(None) };
        let (namespace, name) = split_id(id, target.namespaced, &cluster.default_namespace);
        let secrets = inputs.map(secret_strings).unwrap_or_default();
        Ok(Some(Object { gvk, target, namespace, name, secrets }))
    }

    fn force(&self, inputs: &Value) -> bool {
        self.force_conflicts || ObjectOptions::from_inputs(inputs).force_conflicts
    }

    /// Applies `inputs` for real, with a clear message for field-manager conflicts.
    async fn apply(&self, cluster: &Cluster, object: &Object, inputs: &Value) -> Result<Json, ProviderError> {
        let desired = manifest(inputs, &object.target.api_version(), &object.target.kind, object.ns());
        match cluster.apply(&object.target, object.ns(), &object.name, &desired, false, self.force(inputs)).await {
            Ok(applied) => Ok(applied),
            Err(mut e) if is_conflict(&e) => {
                e.message = format!(
                    "{e}. Another field manager changed fields that berth sets (kubectl edit/scale, a controller). To take them back, set \
                     `berth: {{forceConflicts: true}}` on this resource or `force_conflicts: true` under providers.kubernetes in the stack \
                     file; or stop setting those fields in the program",
                    e = e.message
                );
                Err(object.scrubbed(e))
            }
            Err(e) => Err(object.scrubbed(e)),
        }
    }

    /// Waits until the applied object is usable, and returns it as it is then. `deadline`
    /// started with the call, so the whole call keeps within a custom timeout.
    async fn await_ready(
        &self,
        deadline: Deadline,
        cluster: &Cluster,
        object: &Object,
        applied: Json,
        inputs: &Value,
    ) -> Result<Json, AwaitError> {
        let gvk = &object.gvk;
        if is_kind(gvk, "apiextensions.k8s.io", "CustomResourceDefinition") {
            let live = readiness::crd_established(cluster, &object.target, &object.name, deadline).await?;
            if let Some(group) = live.pointer("/spec/group").and_then(Json::as_str) {
                cluster.discovery.invalidate(group);
            }
            return Ok(live);
        }
        if ObjectOptions::from_inputs(inputs).skip_await {
            return Ok(applied);
        }
        if is_kind(gvk, "apps", "Deployment") {
            return readiness::deployment_rollout(cluster, &object.target, object.ns(), &object.name, deadline).await;
        }
        if is_kind(gvk, "batch", "Job") {
            return readiness::job_completion(cluster, &object.target, object.ns(), &object.name, applied, deadline).await;
        }
        Ok(applied)
    }

    /// Deletes with foreground propagation and waits until that object (by uid) is gone.
    async fn delete_and_wait(&self, ctx: &CallContext<'_>, cluster: &Cluster, object: &Object, live: &Json) -> Result<(), ProviderError> {
        let uid = live.pointer("/metadata/uid").and_then(Json::as_str).unwrap_or_default().to_string();
        if !cluster.delete(&object.target, object.ns(), &object.name).await? {
            return Ok(());
        }
        let deadline = Deadline::new(ctx.timeout, readiness::DEFAULT_DELETE_TIMEOUT);
        readiness::gone(cluster, &object.target, object.ns(), &object.name, &uid, deadline).await.map_err(AwaitError::into_provider_error)
    }

    /// Marks an object whose create did not finish (by an annotation berth's applies do not
    /// own), so that the create replacing it knows to delete it first. Best effort: the engine
    /// records the object tainted either way.
    async fn mark_unfinished(&self, cluster: &Cluster, object: &Object, error: &ProviderError) {
        let mut reason: String = error.message.chars().take(200).collect();
        if error.message.len() > reason.len() {
            reason.push('…');
        }
        let patch = serde_json::json!({"metadata": {"annotations": {UNFINISHED: reason}}});
        if let Err(e) = cluster.merge_patch(&object.target, object.ns(), &object.name, AWAIT_MANAGER, &patch).await {
            tracing::warn!("{}: could not mark it unfinished: {e}", object.label());
        }
    }

    /// The structural diff of recorded and desired inputs (used when the cluster cannot be
    /// asked, or the change replaces the object anyway).
    fn structural(gvk: &Gvk, old_inputs: &Value, new_inputs: &Value) -> DiffResponse {
        let name = Path::parse("metadata.name").ok();
        let mut response = default_diff(old_inputs, new_inputs, &replace_paths(gvk, old_inputs), name.as_ref());
        if response.has_changes() {
            response.unknown_outputs = status_path();
        }
        response
    }
}

/// The limit of a create or update's wait: the custom timeout, or the kind's default.
fn await_deadline(ctx: &CallContext<'_>) -> Deadline {
    let default = match Gvk::from_token(ctx.ty) {
        Ok(gvk) if is_kind(&gvk, "apps", "Deployment") => readiness::DEFAULT_ROLLOUT_TIMEOUT,
        Ok(gvk) if is_kind(&gvk, "batch", "Job") => readiness::DEFAULT_JOB_TIMEOUT,
        _ => readiness::DEFAULT_CRD_TIMEOUT,
    };
    Deadline::new(ctx.timeout, default)
}

fn status_path() -> Vec<Path> {
    Path::parse("status").into_iter().collect()
}

#[async_trait]
impl Provider for KubernetesProvider {
    fn package(&self) -> &str {
        PACKAGE
    }

    fn supports(&self, ty: &str) -> bool {
        Gvk::from_token(ty).is_ok()
    }

    async fn check(&self, ctx: CallContext<'_>, inputs: &Value, seed: &[u8; 32]) -> Result<Checked, Vec<CheckFailure>> {
        let gvk = Gvk::from_token(ctx.ty).map_err(|e| vec![CheckFailure::general(e)])?;
        check(&self.conn, &gvk, ctx.name, inputs, seed).await
    }

    /// What changes from `old_inputs` to `new_inputs`, as the server sees it: both are
    /// dry-run applied (forced, so the result shows berth's values even where another manager
    /// holds a field) and compared on the fields berth manages. The engine asks this for plans
    /// (recorded vs program) and to judge drift (recorded vs read), so it compares inputs, not
    /// the live object: without `--refresh`, recorded state is trusted.
    async fn diff(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old_inputs: &Value,
        old_outputs: &Value,
        new_inputs: &Value,
    ) -> Result<DiffResponse, ProviderError> {
        let _ = id;
        let gvk = Gvk::from_token(ctx.ty).map_err(ProviderError::other)?;
        let old_inputs = &with_recorded_namespace(old_inputs, old_outputs);
        let structural = Self::structural(&gvk, old_inputs, new_inputs);
        if !structural.has_changes() || new_inputs.contains_unknown() || structural.needs_replace() {
            return Ok(structural);
        }
        let cluster = match self.conn.get().await {
            Ok(cluster) => cluster,
            Err(e) => {
                tracing::warn!("{}: comparing recorded and desired inputs field by field: {e}", ctx.urn);
                return Ok(structural);
            }
        };
        let object = match self.object(&cluster, &ctx, new_inputs, None).await {
            Ok(Some(object)) => object,
            // The kind is not served (its CRD is gone or not applied yet): nothing to ask.
            Ok(None) => return Ok(structural),
            Err(e) if is_unreachable(&e) => {
                tracing::warn!("{}: comparing recorded and desired inputs field by field: {e}", ctx.urn);
                return Ok(structural);
            }
            Err(e) => return Err(e),
        };
        let mut results = Vec::with_capacity(2);
        for inputs in [old_inputs, new_inputs] {
            let manifest = manifest(inputs, &object.target.api_version(), &object.target.kind, object.ns());
            match cluster.apply(&object.target, object.ns(), &object.name, &manifest, true, true).await {
                Ok(result) => results.push(result),
                Err(e) if e.code.as_deref().is_some_and(|c| c.starts_with("422")) && e.message.contains("immutable") => {
                    // A field the API cannot change in place: replace, deleting first (same name).
                    let mut response = structural;
                    response.replace_paths = response.changes.iter().map(|c| c.path.clone()).collect();
                    response.delete_before_replace = true;
                    return Ok(response);
                }
                Err(e) if is_unreachable(&e) || e.kind == ErrorKind::NotFound => return Ok(structural),
                Err(e) => return Err(object.scrubbed(e)),
            }
        }
        let changes = managed_changes(&results[0], &results[1], &gvk, new_inputs);
        let replace = forcing_replacement(&changes, &replace_paths(&gvk, old_inputs));
        Ok(DiffResponse {
            delete_before_replace: !replace.is_empty(),
            unknown_outputs: if changes.is_empty() { Vec::new() } else { status_path() },
            replace_paths: replace,
            changes,
            recorded: Vec::new(),
        })
    }

    async fn create(&self, ctx: CallContext<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let deadline = await_deadline(&ctx);
        let cluster = self.conn.get().await?;
        let wait = Deadline::new(ctx.timeout, DEFAULT_KIND_WAIT);
        let object = self.object(&cluster, &ctx, inputs, Some(wait)).await?.ok_or_else(|| ProviderError::other("kind not served"))?;
        let existing = cluster.get(&object.target, object.ns(), &object.name).await?;
        if let Some(existing) = &existing
            && is_managed_by(existing, FIELD_MANAGER)
            && existing.pointer(&format!("/metadata/annotations/{}", UNFINISHED.replace('/', "~1"))).is_some()
        {
            // The object a failed create left behind (tainted): this create replaces it. It is
            // deleted first, whatever the engine's replacement order, because the name is the
            // object's identity: applying over it would keep the failed Job or rollout.
            self.delete_and_wait(&ctx, &cluster, &object, existing).await?;
        } else if let Some(existing) = &existing
            && !is_managed_by(existing, FIELD_MANAGER)
        {
            let mut e = ProviderError::new(
                ErrorKind::AlreadyExists { id: object.id() },
                format!(
                    "{} already exists and berth does not manage it (its field managers: {})",
                    object.label(),
                    managers(existing).join(", ")
                ),
            );
            e.code = Some("409 AlreadyExists".into());
            return Err(e);
        }
        let applied = self.apply(&cluster, &object, inputs).await?;
        let partial = Created { id: object.id(), outputs: outputs_of(&applied) };
        match self.await_ready(deadline, &cluster, &object, applied, inputs).await {
            Ok(live) => Ok(Created { id: object.id(), outputs: outputs_of(&live) }),
            // It exists but is not usable: recorded tainted, replaced by the next run.
            Err(e) => {
                let e = object.scrubbed(e.into_provider_error());
                self.mark_unfinished(&cluster, &object, &e).await;
                Err(e.with_partial(partial))
            }
        }
    }

    async fn read(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old_inputs: Option<&Value>,
        old_outputs: Option<&Value>,
    ) -> Result<Option<Observed>, ProviderError> {
        let cluster = self.conn.get().await?;
        let Some(object) = self.object_by_id(&cluster, &ctx, id, old_inputs).await? else { return Ok(None) };
        let Some(live) = cluster.get(&object.target, object.ns(), &object.name).await? else {
            return Ok(finished_job_collected(&object.gvk, id, old_inputs, old_outputs));
        };
        let outputs = outputs_of(&live);
        let inputs = match old_inputs {
            None => imported_inputs(&live, &object.gvk),
            Some(prior) => {
                let desired = manifest(prior, &object.target.api_version(), &object.target.kind, object.ns());
                let dry =
                    cluster.apply(&object.target, object.ns(), &object.name, &desired, true, true).await.map_err(|e| object.scrubbed(e))?;
                // From what berth's manifest makes of the object to what it is now.
                let drift = managed_changes(&dry, &live, &object.gvk, prior);
                drifted_inputs(prior, &drift)
            }
        };
        Ok(Some(Observed { id: object.id(), inputs, outputs }))
    }

    async fn update(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old_inputs: &Value,
        old_outputs: &Value,
        new_inputs: &Value,
    ) -> Result<Value, ProviderError> {
        let _ = (id, old_inputs, old_outputs);
        let deadline = await_deadline(&ctx);
        let cluster = self.conn.get().await?;
        let wait = Deadline::new(ctx.timeout, DEFAULT_KIND_WAIT);
        let object = self.object(&cluster, &ctx, new_inputs, Some(wait)).await?.ok_or_else(|| ProviderError::other("kind not served"))?;
        let applied = self.apply(&cluster, &object, new_inputs).await?;
        let live = self
            .await_ready(deadline, &cluster, &object, applied, new_inputs)
            .await
            .map_err(|e| object.scrubbed(e.into_provider_error()))?;
        Ok(outputs_of(&live))
    }

    async fn delete(&self, ctx: CallContext<'_>, id: &str, inputs: &Value, outputs: &Value) -> Result<(), ProviderError> {
        let cluster = self.conn.get().await?;
        // A kind the cluster no longer serves has no objects left.
        let Some(object) = self.object_by_id(&cluster, &ctx, id, Some(inputs)).await? else { return Ok(()) };
        let Some(live) = cluster.get(&object.target, object.ns(), &object.name).await? else { return Ok(()) };
        let recorded_uid =
            outputs.get_path(&Path::parse("uid").map_err(ProviderError::other)?).and_then(|v| v.as_str().map(str::to_string));
        if recorded_uid.is_some_and(|uid| live.pointer("/metadata/uid").and_then(Json::as_str) != Some(uid.as_str())) {
            // Another object now has the name (this one was already replaced): not berth's to delete.
            return Ok(());
        }
        self.delete_and_wait(&ctx, &cluster, &object, &live).await
    }

    async fn lookup(&self, ctx: CallContext<'_>, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        let cluster = self.conn.get().await?;
        let Some(object) = self.object(&cluster, &ctx, inputs, None).await? else { return Ok(None) };
        let live = cluster.get(&object.target, object.ns(), &object.name).await?;
        // Only an object berth applied is adopted; anything else is someone else's.
        Ok(live.filter(|live| is_managed_by(live, FIELD_MANAGER)).map(|live| Observed {
            id: object.id(),
            inputs: inputs.clone(),
            outputs: outputs_of(&live),
        }))
    }
}

/// The recorded inputs with the namespace the object was created in, when they name none: a
/// custom resource checked before its CRD existed could not be given the default namespace at
/// check time (its scope was unknown), only at create.
fn with_recorded_namespace(inputs: &Value, outputs: &Value) -> Value {
    let mut inputs = inputs.clone();
    let (Ok(path), Some(namespace)) = (Path::parse("metadata.namespace"), outputs.as_object().and_then(|o| o.get("namespace"))) else {
        return inputs;
    };
    if inputs.get_path(&path).is_none_or(|v| v.is_null()) && namespace.as_str().is_some() {
        inputs.set_path(&path, namespace.clone());
    }
    inputs
}

/// A Job that completed and was then deleted by its `ttlSecondsAfterFinished` still counts as
/// done: reading it returns what berth recorded, so it is not run again.
fn finished_job_collected(gvk: &Gvk, id: &str, inputs: Option<&Value>, outputs: Option<&Value>) -> Option<Observed> {
    let (inputs, outputs) = (inputs?, outputs?);
    if !is_kind(gvk, "batch", "Job") {
        return None;
    }
    let ttl = inputs.get_path(&Path::parse("spec.ttlSecondsAfterFinished").ok()?).is_some_and(|v| !v.is_null());
    let succeeded = outputs.get_path(&Path::parse("status.succeeded").ok()?).and_then(|v| v.to_json_revealed().as_i64()).unwrap_or(0) > 0;
    (ttl && succeeded).then(|| Observed { id: id.to_string(), inputs: inputs.clone(), outputs: outputs.clone() })
}
