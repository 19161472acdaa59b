//! berth's SDK in one file: a resource type, its provider, a stack program that passes one
//! resource's output into another, and the engine running preview, up and destroy on it.
//!
//! Run it: `cargo run -p berth-engine --example quickstart`
//!
//! The provider here keeps "notes" as files in a temporary directory; real providers (AWS,
//! Kubernetes, Vault) have the same shape.

use std::path::PathBuf;
use std::sync::Arc;

use berth_engine::apply::{ApplyOptions, Silent};
use berth_engine::crypto::Keyring;
use berth_engine::ops::{Engine, Operation, RunOptions};
use berth_engine::render::{RenderOptions, apply_summary, plan_text};
use berth_engine::state::LocalBackend;
use berth_engine::typed::auto_suffix;
use berth_engine::{
    CallContext, CheckFailure, FieldDiff, Input, Options, Package, Path, ProgramResult, ProviderError, Providers, Resource,
    ResourceProvider, Stack, TypedCreated, TypedObserved, async_trait,
};
use serde::{Deserialize, Serialize};

// 1. A resource type: its inputs (serde) and outputs. `Input<T>` fields accept other
//    resources' outputs.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Note {
    /// The file name; chosen automatically (name + suffix) when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    text: Input<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct NoteOutputs {
    path: String,
    words: usize,
}

impl Resource for Note {
    const TYPE: &'static str = "notes:index:Note";
    type Outputs = NoteOutputs;
}

// 2. Its provider: check, create, read, update, delete (diff defaults to a field-level
//    comparison; `replace_on` lists fields that cannot change in place).
struct NoteProvider {
    dir: PathBuf,
}

fn outputs(path: &std::path::Path, text: &str) -> NoteOutputs {
    NoteOutputs { path: path.display().to_string(), words: text.split_whitespace().count() }
}

fn io(e: std::io::Error) -> ProviderError {
    ProviderError::other(e.to_string())
}

#[async_trait]
impl ResourceProvider for NoteProvider {
    type Resource = Note;

    fn replace_on(&self) -> Vec<Path> {
        vec![Path::parse("file").expect("static path")]
    }

    fn outputs_changed_by(&self, changes: &[FieldDiff]) -> Vec<Path> {
        // `words` is computed from `text`: resources reading it change too.
        if changes.iter().any(|c| c.path.first_key() == Some("text")) {
            vec![Path::parse("words").expect("static path")]
        } else {
            Vec::new()
        }
    }

    async fn check(&self, ctx: CallContext<'_>, mut note: Note, seed: &[u8; 32]) -> Result<Note, Vec<CheckFailure>> {
        if note.text.known().is_some_and(|t| t.is_empty()) {
            return Err(vec![CheckFailure::field("text", "must not be empty")]);
        }
        note.file.get_or_insert_with(|| format!("{}-{}.txt", ctx.name, auto_suffix(seed, 6)));
        Ok(note)
    }

    async fn create(&self, _ctx: CallContext<'_>, note: &Note) -> Result<TypedCreated<NoteOutputs>, ProviderError> {
        let path = self.dir.join(note.file.as_deref().unwrap_or_default());
        let text = note.text.value().map_err(|e| ProviderError::other(e.to_string()))?;
        std::fs::write(&path, text).map_err(io)?;
        Ok(TypedCreated { id: path.display().to_string(), outputs: outputs(&path, text) })
    }

    async fn read(
        &self,
        _ctx: CallContext<'_>,
        id: &str,
        prior: Option<&Note>,
        _: Option<&NoteOutputs>,
    ) -> Result<Option<TypedObserved<Note>>, ProviderError> {
        let path = PathBuf::from(id);
        let Ok(text) = std::fs::read_to_string(&path) else { return Ok(None) };
        let file = prior.and_then(|p| p.file.clone());
        Ok(Some(TypedObserved { id: id.to_string(), outputs: outputs(&path, &text), inputs: Note { file, text: text.into() } }))
    }

    async fn update(
        &self,
        _ctx: CallContext<'_>,
        id: &str,
        _old: &Note,
        new: &Note,
        _: &NoteOutputs,
    ) -> Result<NoteOutputs, ProviderError> {
        let text = new.text.value().map_err(|e| ProviderError::other(e.to_string()))?;
        std::fs::write(id, text).map_err(io)?;
        Ok(outputs(std::path::Path::new(id), text))
    }

    async fn delete(&self, _ctx: CallContext<'_>, id: &str, _: &Note, _: &NoteOutputs) -> Result<(), ProviderError> {
        std::fs::remove_file(id).map_err(io)
    }
}

// 3. A stack program: ordinary Rust. Passing `readme.output("words")` into `index` makes
//    `index` depend on `readme`; the engine orders them and fills the value in at apply time.
fn program(greeting: &'static str) -> impl Fn(&mut Stack) -> ProgramResult {
    move |stack: &mut Stack| {
        stack.component("notes:index:Notebook", "notebook", Options::new(), |stack, _| -> ProgramResult {
            let readme = stack.register("readme", Note { file: None, text: greeting.to_string().into() }, Options::new())?;
            let summary = readme.output::<usize>("words").map(|n| format!("The readme has {n} words."));
            stack.register("index", Note { file: Some("index.txt".into()), text: summary.into() }, Options::new())?;
            stack.export("readme_path", &readme.output::<String>("path"));
            Ok(())
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut providers = Providers::new();
    providers.add(Arc::new(Package::new("notes").with(NoteProvider { dir: dir.path().to_path_buf() })));
    // 4. The engine: a state backend, the providers, and the key for secrets in state.
    let engine = Engine {
        stack: "example".into(),
        backend: Arc::new(LocalBackend::new(dir.path().join("state"))),
        providers: Arc::new(providers),
        keyring: Arc::new(Keyring::new(Some("example passphrase".into()))),
    };
    let run = RunOptions { parallel: 4, ..RunOptions::default() };
    let show = RenderOptions { diff: true, ..RenderOptions::default() };

    println!("== preview\n");
    let (plan, _) = engine.preview(&program("hello from berth"), None, &run).await?;
    print!("{}", plan_text(&plan, show));

    for (title, greeting) in [("up", "hello from berth"), ("up after a change", "hello again from the berth sdk")] {
        println!("\n== {title}\n");
        let (prepared, _) = engine.prepare(Operation::Up, Some(&program(greeting)), None, &run).await?;
        print!("{}", plan_text(&prepared.plan, show));
        let done = engine.execute(prepared, &ApplyOptions::default(), Arc::new(Silent)).await?;
        print!("{}", apply_summary(&done.report, Default::default()));
        assert!(done.report.succeeded());
        println!("index.txt: {}", std::fs::read_to_string(dir.path().join("index.txt"))?);
    }

    println!("\n== destroy\n");
    let (prepared, _) = engine.prepare(Operation::Destroy, None, None, &run).await?;
    let done = engine.execute(prepared, &ApplyOptions::default(), Arc::new(Silent)).await?;
    print!("{}", apply_summary(&done.report, Default::default()));
    assert!(done.state.resources.is_empty());
    Ok(())
}
