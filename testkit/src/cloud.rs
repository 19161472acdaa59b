//! The `test` provider: nodes stored as files in a directory, one per object.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_engine::config::ConfigError;
use berth_engine::registry::{ProviderPlugin, ProviderSettings};
use berth_engine::{
    CallContext, CheckFailure, Input, Package, Provider, ProviderError, Resource, ResourceProvider, TypedCreated, TypedObserved,
    async_trait,
};
use serde::{Deserialize, Serialize};

/// A node in the test cloud.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Node {
    pub value: Input<String>,
    /// Ids of the nodes this one was built from (references to their outputs).
    #[serde(default)]
    pub inputs: Vec<Input<String>>,
    /// Padding to make state realistically sized for benchmarks.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct NodeOutputs {
    pub id: String,
    pub digest: String,
}

impl Resource for Node {
    const TYPE: &'static str = "test:index:Node";
    type Outputs = NodeOutputs;
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Stored {
    urn: String,
    value: String,
    inputs: Vec<String>,
    labels: BTreeMap<String, String>,
}

/// The cloud's directory: `objects/<id>.json` and `calls.log`.
#[derive(Clone, Debug)]
pub struct CloudDir {
    pub root: PathBuf,
}

impl CloudDir {
    pub fn new(root: impl Into<PathBuf>) -> CloudDir {
        CloudDir { root: root.into() }
    }

    fn objects(&self) -> PathBuf {
        self.root.join("objects")
    }

    /// Every object: (id, urn, value).
    pub fn list(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        if let Ok(entries) = fs::read_dir(self.objects()) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if let Some(id) = name.strip_suffix(".json")
                    && let Ok(stored) = fs::read(entry.path())
                        .map_err(|e| e.to_string())
                        .and_then(|b| serde_json::from_slice::<Stored>(&b).map_err(|e| e.to_string()))
                {
                    out.push((id.to_string(), stored.urn, stored.value));
                }
            }
        }
        out.sort();
        out
    }

    /// Every logged call: (operation, urn, id).
    pub fn calls(&self) -> Vec<(String, String, String)> {
        fs::read_to_string(self.root.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut parts = l.splitn(3, ' ');
                Some((parts.next()?.to_string(), parts.next()?.to_string(), parts.next()?.to_string()))
            })
            .collect()
    }

    fn log(&self, op: &str, urn: &str, id: &str) -> Result<(), ProviderError> {
        fs::create_dir_all(&self.root).map_err(|e| ProviderError::other(format!("{}: {e}", self.root.display())))?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("calls.log"))
            .map_err(|e| ProviderError::other(e.to_string()))?;
        file.write_all(format!("{op} {urn} {id}\n").as_bytes()).map_err(|e| ProviderError::other(e.to_string()))
    }

    fn path(&self, id: &str) -> PathBuf {
        self.objects().join(format!("{id}.json"))
    }

    fn read(&self, id: &str) -> Option<Stored> {
        fs::read(self.path(id)).ok().and_then(|b| serde_json::from_slice(&b).ok())
    }

    /// Writes atomically: the object exists whole or not at all, whenever the process dies.
    fn write(&self, id: &str, stored: &Stored) -> Result<(), ProviderError> {
        fs::create_dir_all(self.objects()).map_err(|e| ProviderError::other(e.to_string()))?;
        let tmp = self.objects().join(format!(".{id}.tmp"));
        let bytes = serde_json::to_vec(stored).map_err(|e| ProviderError::other(e.to_string()))?;
        fs::write(&tmp, bytes).and_then(|_| fs::rename(&tmp, self.path(id))).map_err(|e| ProviderError::other(e.to_string()))
    }
}

fn new_id() -> String {
    let mut bytes = [0u8; 6];
    let _ = getrandom_fill(&mut bytes);
    format!("node-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn getrandom_fill(bytes: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    fs::File::open("/dev/urandom")?.read_exact(bytes)
}

fn digest(stored: &Stored) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in stored.value.bytes().chain(stored.inputs.iter().flat_map(|i| i.bytes())) {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

struct NodeProvider {
    cloud: CloudDir,
    latency: Duration,
}

impl NodeProvider {
    async fn wait(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }

    fn observed(&self, id: &str, stored: Stored) -> TypedObserved<Node> {
        let outputs = NodeOutputs { id: id.to_string(), digest: digest(&stored) };
        TypedObserved {
            id: id.to_string(),
            inputs: Node {
                value: stored.value.into(),
                inputs: stored.inputs.into_iter().map(Input::Value).collect(),
                labels: stored.labels,
            },
            outputs,
        }
    }
}

fn stored(ctx: &CallContext<'_>, inputs: &Node) -> Result<Stored, ProviderError> {
    let value = inputs.value.value().map_err(|e| ProviderError::other(e.to_string()))?.clone();
    let refs =
        inputs.inputs.iter().map(|i| i.value().cloned()).collect::<Result<Vec<_>, _>>().map_err(|e| ProviderError::other(e.to_string()))?;
    Ok(Stored { urn: ctx.urn.to_string(), value, inputs: refs, labels: inputs.labels.clone() })
}

#[async_trait]
impl ResourceProvider for NodeProvider {
    type Resource = Node;

    async fn check(&self, _ctx: CallContext<'_>, inputs: Node, _seed: &[u8; 32]) -> Result<Node, Vec<CheckFailure>> {
        if let Some(v) = inputs.value.known()
            && v.is_empty()
        {
            return Err(vec![CheckFailure::field("value", "must not be empty")]);
        }
        Ok(inputs)
    }

    async fn create(&self, ctx: CallContext<'_>, inputs: &Node) -> Result<TypedCreated<NodeOutputs>, ProviderError> {
        let stored = stored(&ctx, inputs)?;
        let id = new_id();
        self.wait().await;
        // The object appears atomically; the log line follows it (a kill in between leaves an
        // object with no line, never a line with no object).
        self.cloud.write(&id, &stored)?;
        self.cloud.log("create", ctx.urn.as_str(), &id)?;
        self.wait().await;
        Ok(TypedCreated { outputs: NodeOutputs { id: id.clone(), digest: digest(&stored) }, id })
    }

    async fn read(
        &self,
        _ctx: CallContext<'_>,
        id: &str,
        _prior: Option<&Node>,
        _prior_outputs: Option<&NodeOutputs>,
    ) -> Result<Option<TypedObserved<Node>>, ProviderError> {
        Ok(self.cloud.read(id).map(|s| self.observed(id, s)))
    }

    async fn update(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        _old: &Node,
        new: &Node,
        _old_outputs: &NodeOutputs,
    ) -> Result<NodeOutputs, ProviderError> {
        let stored = stored(&ctx, new)?;
        self.wait().await;
        if self.cloud.read(id).is_none() {
            return Err(ProviderError::not_found(format!("{id} does not exist")));
        }
        self.cloud.log("update", ctx.urn.as_str(), id)?;
        self.cloud.write(id, &stored)?;
        Ok(NodeOutputs { id: id.to_string(), digest: digest(&stored) })
    }

    async fn delete(&self, ctx: CallContext<'_>, id: &str, _inputs: &Node, _outputs: &NodeOutputs) -> Result<(), ProviderError> {
        self.wait().await;
        self.cloud.log("delete", ctx.urn.as_str(), id)?;
        match fs::remove_file(self.cloud.path(id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ProviderError::not_found(format!("{id} does not exist"))),
            Err(e) => Err(ProviderError::other(e.to_string())),
        }
    }

    async fn lookup(&self, ctx: CallContext<'_>, _inputs: &Node) -> Result<Option<TypedObserved<Node>>, ProviderError> {
        // By tag, as a cloud API would: the id was assigned by the cloud and may never have
        // reached the state.
        for (id, urn, _) in self.cloud.list() {
            if urn == ctx.urn.as_str()
                && let Some(stored) = self.cloud.read(&id)
            {
                return Ok(Some(self.observed(&id, stored)));
            }
        }
        Ok(None)
    }
}

/// `providers.test` settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestSettings {
    /// The cloud directory (relative to the project root).
    cloud: Option<String>,
    /// Sleep this long in each call (create sleeps twice: before and after the object appears).
    #[serde(default)]
    latency_ms: u64,
}

/// The `test` provider package.
pub struct TestPlugin;

impl ProviderPlugin for TestPlugin {
    fn package(&self) -> &str {
        "test"
    }

    fn build(&self, settings: &ProviderSettings) -> Result<Arc<dyn Provider>, ConfigError> {
        let parsed: TestSettings = settings.parse("test")?;
        let root = match parsed.cloud {
            Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
            Some(dir) => settings.project_root.join(dir),
            None => settings.project_root.join(".cloud"),
        };
        let provider = NodeProvider { cloud: CloudDir::new(root), latency: Duration::from_millis(parsed.latency_ms) };
        Ok(Arc::new(Package::new("test").with(provider)))
    }
}
