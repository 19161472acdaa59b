//! Package `local`: files on the machine that runs berth.
//!
//! `local:index:File` writes a file (a rendered `config.yml`, a kubeconfig, a `.env` for local
//! development) atomically: a temporary file in the same directory is written, flushed to disk
//! and renamed over the target, so a reader never sees half a file and an interrupted run
//! leaves either the old file or the new one.
//!
//! Relative paths are relative to the project root, or to `providers.local.root` in the stack
//! file (itself relative to the project root).
//!
//! ```
//! use berth_engine::{Options, ProgramResult, Stack};
//! use berth_provider_builtin::local::File;
//! use berth_provider_builtin::random::Id;
//!
//! fn program(stack: &mut Stack) -> ProgramResult {
//!     let id = stack.register("suffix", Id::default(), Options::new())?;
//!     let content = id.output::<String>("id").map(|id| format!("BUCKET=edx-{id}\n"));
//!     stack.register("env", File { path: "out/dev.env".into(), content: content.into(), ..File::default() }, Options::new())?;
//!     Ok(())
//! }
//! # let mut stack = Stack::new("dev");
//! # program(&mut stack).unwrap();
//! ```

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use berth_engine::config::ConfigError;
use berth_engine::diff::{DiffKind, FieldDiff};
use berth_engine::registry::{ProviderPlugin, ProviderSettings};
use berth_engine::{
    CallContext, CheckFailure, DiffResponse, Input, Package, Path, Provider, ProviderError, Resource, ResourceProvider, TypedCreated,
    TypedObserved, Value, async_trait, default_diff,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::join_error;
use crate::random::{OsRng, hex};

/// The package name.
pub const PACKAGE: &str = "local";

/// The mode of a file that is not `sensitive`, unless `mode` says otherwise.
pub const DEFAULT_MODE: &str = "0644";
/// The mode of a `sensitive` file, unless `mode` says otherwise.
pub const SENSITIVE_MODE: &str = "0600";

/// `local:index:File`: a file with the given content.
///
/// Changing `content` or `mode` rewrites the file in place; changing `path` replaces it (the
/// new file is written, the old one removed). If a file already exists at `path` when the
/// resource is created, it is overwritten.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct File {
    /// Where to write: absolute, or relative to the provider's root (the project root unless
    /// `providers.local.root` says otherwise).
    pub path: Input<String>,
    /// The file's content, written as UTF-8.
    pub content: Input<String>,
    /// Permission bits in octal, like `"0644"` or `"640"`. Default `"0644"`, or `"0600"` when
    /// `sensitive`. Normalized to four digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The content is confidential (credentials, a kubeconfig): the default mode becomes
    /// `"0600"`. To keep the content encrypted in state as well, pass a secret output
    /// (e.g. one built from a `random:index:Password`, or `Output::secret()`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

/// What a `local:index:File` reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileOutputs {
    /// The absolute path of the file; also the resource's provider id.
    pub path: String,
    /// SHA-256 of the content, lower-case hex.
    pub sha256: String,
    /// Size of the content in bytes.
    pub size: u64,
}

impl Resource for File {
    const TYPE: &'static str = "local:index:File";
    type Outputs = FileOutputs;
}

fn field(name: &str) -> Path {
    Path::root().child_key(name)
}

/// Parses an octal mode (`"644"`, `"0644"`, `"0o644"`); `None` if it is not one or is above
/// `0o7777`.
pub fn parse_mode(text: &str) -> Option<u32> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o7777)
}

/// A mode as berth records it: four octal digits.
pub fn format_mode(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn other(message: String) -> ProviderError {
    ProviderError::other(message)
}

/// What a file holds: its bytes and permission bits.
#[derive(Clone, Debug, PartialEq)]
struct OnDisk {
    content: Vec<u8>,
    mode: u32,
}

/// Reads the file at `path`; `None` if there is none.
fn read_file(path: &FsPath) -> Result<Option<OnDisk>, ProviderError> {
    let metadata = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(other(format!("cannot inspect {}: {e}", path.display()))),
    };
    if !metadata.is_file() {
        return Err(other(format!(
            "{} is not a regular file (it is a directory or a device); move it away, or remove the resource from state with `berth state delete`",
            path.display()
        )));
    }
    let content = match fs::read(path) {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(other(format!("cannot read {}: {e}", path.display()))),
    };
    Ok(Some(OnDisk { content, mode: metadata.permissions().mode() & 0o7777 }))
}

/// Writes `content` to `path` with `mode`, atomically: a temporary file in the same directory
/// is written, synced and renamed over `path`. Parent directories are created.
fn write_atomic(path: &FsPath, content: &[u8], mode: u32) -> Result<(), ProviderError> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(other(format!("{} does not name a file; give a path that ends in a file name", path.display())));
    };
    fs::create_dir_all(parent)
        .map_err(|e| other(format!("cannot create directory {}: {e}; check that the parent directories are writable", parent.display())))?;
    if fs::metadata(path).is_ok_and(|m| m.is_dir()) {
        return Err(other(format!("{} is a directory; choose another path for the file, or move the directory away", path.display())));
    }
    let mut tag = [0u8; 6];
    OsRng::new().fill(&mut tag)?;
    let temp = parent.join(format!(".{}.berth-{}.tmp", name.to_string_lossy(), hex(&tag)));
    let written = (|| -> io::Result<()> {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&temp)?;
        // The mode given to open is reduced by the umask; set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(content)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)
    })();
    if let Err(e) = written {
        // Best effort: the temporary file may not exist if open failed.
        let _ = fs::remove_file(&temp);
        return Err(other(format!("cannot write {}: {e}; check that {} is writable", path.display(), parent.display())));
    }
    // Make the rename itself durable. Some file systems cannot sync a directory; the file is
    // written either way, so this is best effort.
    if let Ok(dir) = fs::File::open(parent) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Removes the file at `path`; a file that is already gone is fine.
fn remove_file(path: &FsPath) -> Result<(), ProviderError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(other(format!("cannot remove {}: {e}; remove it by hand, or check the directory's permissions", path.display()))),
    }
}

/// The provider for `local:index:File`.
#[derive(Clone, Debug)]
pub struct FileProvider {
    root: PathBuf,
}

impl FileProvider {
    /// A provider resolving relative paths against `root` (made absolute against the current
    /// directory if it is relative).
    pub fn new(root: impl Into<PathBuf>) -> FileProvider {
        let root = root.into();
        let root = std::path::absolute(&root).unwrap_or(root);
        FileProvider { root }
    }

    /// Where relative paths point.
    pub fn root(&self) -> &FsPath {
        &self.root
    }

    /// The absolute path for a `path` input (`.` components removed; `..` kept as written).
    pub fn resolve(&self, path: &str) -> PathBuf {
        self.root.join(path).components().collect()
    }

    /// The absolute path as the provider id, which must be text.
    fn resolve_id(&self, path: &str) -> Result<(PathBuf, String), ProviderError> {
        let absolute = self.resolve(path);
        let id = absolute
            .to_str()
            .ok_or_else(|| {
                other(format!(
                    "{} is not valid UTF-8; berth records file paths as text, so choose a root and path that are",
                    absolute.display()
                ))
            })?
            .to_string();
        Ok((absolute, id))
    }

    fn mode_of(inputs: &File) -> Result<u32, ProviderError> {
        let text = inputs.mode.clone().unwrap_or_else(|| if inputs.sensitive { SENSITIVE_MODE } else { DEFAULT_MODE }.to_string());
        parse_mode(&text).ok_or_else(|| other(format!("mode `{text}` is not an octal file mode like \"0644\"")))
    }

    fn known<'a>(value: &'a Input<String>, name: &str) -> Result<&'a str, ProviderError> {
        value.known().map(String::as_str).ok_or_else(|| other(format!("internal error: input `{name}` is not known at apply time")))
    }

    fn outputs(id: &str, content: &[u8]) -> FileOutputs {
        FileOutputs { path: id.to_string(), sha256: sha256_hex(content), size: content.len() as u64 }
    }

    async fn write(&self, id: String, absolute: PathBuf, content: String, mode: u32) -> Result<FileOutputs, ProviderError> {
        tokio::task::spawn_blocking(move || {
            write_atomic(&absolute, content.as_bytes(), mode)?;
            Ok(Self::outputs(&id, content.as_bytes()))
        })
        .await
        .map_err(|e| join_error("writing the file", e))?
    }

    async fn read_at(path: PathBuf) -> Result<Option<OnDisk>, ProviderError> {
        tokio::task::spawn_blocking(move || read_file(&path)).await.map_err(|e| join_error("reading the file", e))?
    }
}

#[async_trait]
impl ResourceProvider for FileProvider {
    type Resource = File;

    fn replace_on(&self) -> Vec<Path> {
        vec![field("path")]
    }

    /// The path is the file's physical name: replacing a file at the same path (e.g. after
    /// `replace_on_changes`) must delete the old one before writing the new one.
    fn fixed_name(&self) -> Option<Path> {
        Some(field("path"))
    }

    async fn check(&self, _ctx: CallContext<'_>, mut inputs: File, _seed: &[u8; 32]) -> Result<File, Vec<CheckFailure>> {
        let mut failures = Vec::new();
        if let Some(path) = inputs.path.known() {
            if path.is_empty() {
                failures.push(CheckFailure::field(
                    "path",
                    format!("must not be empty; give a file path, absolute or relative to {}", self.root.display()),
                ));
            } else if path.contains('\0') {
                failures.push(CheckFailure::field("path", "must not contain a NUL character"));
            } else if path.ends_with('/') || FsPath::new(path).file_name().is_none() {
                failures
                    .push(CheckFailure::field("path", format!("`{path}` names a directory; add a file name, e.g. `{path}/config.yml`")));
            }
        }
        match &inputs.mode {
            Some(text) => match parse_mode(text) {
                Some(mode) => inputs.mode = Some(format_mode(mode)),
                None => failures.push(CheckFailure::field(
                    "mode",
                    format!("`{text}` is not an octal file mode up to 7777; write it like \"0644\" (owner writes, all read) or \"0600\" (owner only)"),
                )),
            },
            None => inputs.mode = Some(if inputs.sensitive { SENSITIVE_MODE } else { DEFAULT_MODE }.to_string()),
        }
        if failures.is_empty() { Ok(inputs) } else { Err(failures) }
    }

    async fn diff(
        &self,
        _ctx: CallContext<'_>,
        id: &str,
        old_inputs: &Value,
        _old_outputs: &Value,
        new_inputs: &Value,
    ) -> Result<DiffResponse, ProviderError> {
        let path = field("path");
        let mut response = default_diff(old_inputs, new_inputs, &self.replace_on(), self.fixed_name().as_ref());
        // The same `path` may now point elsewhere (the provider's root moved): that is a new
        // file, so replace, writing the new one before removing the old.
        let path_changed = response.changes.iter().any(|c| c.path.first_key() == Some("path"));
        if !path_changed && let Some(new_path) = new_inputs.get_path(&path).and_then(|v| v.as_str().map(str::to_string)) {
            let absolute = self.resolve(&new_path);
            if !id.is_empty() && absolute != FsPath::new(id) {
                response.changes.push(FieldDiff {
                    path: path.clone(),
                    kind: DiffKind::Update,
                    old: Some(Value::String(id.to_string())),
                    new: Some(Value::String(absolute.display().to_string())),
                });
                response.replace_paths.push(path.clone());
                response.delete_before_replace = false;
            }
        }
        if response.changes.iter().any(|c| c.path.first_key() == Some("content")) {
            response.unknown_outputs.extend([field("sha256"), field("size")]);
        }
        Ok(response)
    }

    async fn create(&self, _ctx: CallContext<'_>, inputs: &File) -> Result<TypedCreated<FileOutputs>, ProviderError> {
        let (absolute, id) = self.resolve_id(Self::known(&inputs.path, "path")?)?;
        let content = Self::known(&inputs.content, "content")?.to_string();
        let outputs = self.write(id.clone(), absolute, content, Self::mode_of(inputs)?).await?;
        Ok(TypedCreated { id, outputs })
    }

    /// Reports the file as it is now: its current content and mode, so a refresh shows any
    /// edit made outside berth as drift.
    async fn read(
        &self,
        _ctx: CallContext<'_>,
        id: &str,
        prior: Option<&File>,
        _prior_outputs: Option<&FileOutputs>,
    ) -> Result<Option<TypedObserved<File>>, ProviderError> {
        let Some(on_disk) = Self::read_at(PathBuf::from(id)).await? else {
            return Ok(None);
        };
        let inputs = File {
            // Keep the path as the program wrote it (relative paths stay relative).
            path: prior.map(|p| p.path.clone()).unwrap_or_else(|| id.into()),
            content: String::from_utf8_lossy(&on_disk.content).into_owned().into(),
            mode: Some(format_mode(on_disk.mode)),
            sensitive: prior.is_some_and(|p| p.sensitive),
        };
        Ok(Some(TypedObserved { id: id.to_string(), inputs, outputs: Self::outputs(id, &on_disk.content) }))
    }

    async fn update(
        &self,
        _ctx: CallContext<'_>,
        id: &str,
        _old: &File,
        new: &File,
        _old_outputs: &FileOutputs,
    ) -> Result<FileOutputs, ProviderError> {
        // A path change replaces the resource, so the file stays where it is: at `id`.
        let content = Self::known(&new.content, "content")?.to_string();
        self.write(id.to_string(), PathBuf::from(id), content, Self::mode_of(new)?).await
    }

    async fn delete(&self, _ctx: CallContext<'_>, id: &str, _inputs: &File, _outputs: &FileOutputs) -> Result<(), ProviderError> {
        let path = PathBuf::from(id);
        tokio::task::spawn_blocking(move || remove_file(&path)).await.map_err(|e| join_error("removing the file", e))?
    }

    /// Adopts a file that already holds exactly what the program asks for (content and mode):
    /// an interrupted create may have written it. A different file at the path is not adopted;
    /// creating overwrites it.
    async fn lookup(&self, _ctx: CallContext<'_>, inputs: &File) -> Result<Option<TypedObserved<File>>, ProviderError> {
        let (Some(path), Some(content)) = (inputs.path.known(), inputs.content.known()) else {
            return Ok(None);
        };
        let (absolute, id) = self.resolve_id(path)?;
        let mode = Self::mode_of(inputs)?;
        match Self::read_at(absolute).await? {
            Some(on_disk) if on_disk.content == content.as_bytes() && on_disk.mode == mode => {
                Ok(Some(TypedObserved { id: id.clone(), inputs: inputs.clone(), outputs: Self::outputs(&id, &on_disk.content) }))
            }
            _ => Ok(None),
        }
    }
}

/// The `local` package, resolving relative paths against `root`.
pub fn package(root: impl Into<PathBuf>) -> Package {
    Package::new(PACKAGE).with(FileProvider::new(root))
}

/// The `providers.local` section of a stack file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSettings {
    /// Where relative file paths point; relative to the project root. Default: the project
    /// root.
    pub root: Option<String>,
}

/// Registers the `local` package with the `berth` binary.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalPlugin;

impl ProviderPlugin for LocalPlugin {
    fn package(&self) -> &str {
        PACKAGE
    }

    fn build(&self, settings: &ProviderSettings) -> Result<Arc<dyn Provider>, ConfigError> {
        let parsed: LocalSettings =
            crate::parse_settings(settings, PACKAGE).map_err(|e| e.with_help("`providers.local` accepts only `root`"))?;
        let root = match parsed.root {
            Some(root) if root.is_empty() || root.contains('\0') => {
                return Err(
                    ConfigError::new("must be a directory path, absolute or relative to the project root").with_key("providers.local.root")
                );
            }
            Some(root) => settings.project_root.join(root),
            None => settings.project_root.clone(),
        };
        Ok(Arc::new(package(root)))
    }
}

#[cfg(test)]
mod tests {
    use berth_engine::Urn;
    use berth_engine::config::parse_yaml;

    use super::*;

    fn urn() -> Urn {
        Urn::new("dev", None, File::TYPE, "f").unwrap()
    }

    fn ctx(urn: &Urn) -> CallContext<'_> {
        CallContext { urn, ty: File::TYPE, name: urn.name(), stack: "dev", timeout: None }
    }

    fn file(path: &str, content: &str) -> File {
        File { path: path.into(), content: content.into(), ..File::default() }
    }

    async fn checked(p: &FileProvider, f: File) -> File {
        let u = urn();
        p.check(ctx(&u), f, &[0; 32]).await.unwrap()
    }

    fn mode_on_disk(path: &FsPath) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn entries(dir: &FsPath) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn modes_parse_and_normalize() {
        assert_eq!(parse_mode("0644"), Some(0o644));
        assert_eq!(parse_mode("644"), Some(0o644));
        assert_eq!(parse_mode("0o600"), Some(0o600));
        assert_eq!(parse_mode("4755"), Some(0o4755));
        assert_eq!(parse_mode("7777"), Some(0o7777));
        for bad in ["", "0o", "0648", "rw-r--r--", "17777", "0x1a4", "-644", "000000"] {
            assert_eq!(parse_mode(bad), None, "{bad}");
        }
        assert_eq!(format_mode(0o644), "0644");
        assert_eq!(format_mode(0o100644), "0644");
    }

    #[tokio::test]
    async fn check_fills_defaults_and_names_the_field_at_fault() {
        let p = FileProvider::new("/srv/project");
        let u = urn();
        assert_eq!(checked(&p, file("a", "x")).await.mode.as_deref(), Some("0644"));
        assert_eq!(checked(&p, File { sensitive: true, ..file("a", "x") }).await.mode.as_deref(), Some("0600"));
        assert_eq!(checked(&p, File { mode: Some("755".into()), ..file("a", "x") }).await.mode.as_deref(), Some("0755"));

        for (bad, words) in [("", "must not be empty"), ("a\0b", "NUL"), ("out/", "names a directory"), ("out/..", "names a directory")] {
            let err = p.check(ctx(&u), file(bad, "x"), &[0; 32]).await.unwrap_err();
            assert_eq!(err[0].path.as_deref(), Some("path"), "{bad:?}");
            assert!(err[0].reason.contains(words), "{bad:?}: {}", err[0].reason);
        }
        let err = p.check(ctx(&u), File { mode: Some("0999".into()), ..file("a", "x") }, &[0; 32]).await.unwrap_err();
        assert_eq!(err[0].path.as_deref(), Some("mode"));
        assert!(err[0].reason.contains("\"0644\""));
        let err = p.check(ctx(&u), File { mode: Some("10000".into()), ..file("a", "x") }, &[0; 32]).await.unwrap_err();
        assert_eq!(err[0].path.as_deref(), Some("mode"));

        // At plan time path and content may be unknown: check must accept that.
        let unknown = File { path: Input::Unknown, content: Input::Unknown, ..File::default() };
        let c = checked(&p, unknown).await;
        assert!(!c.path.is_known() && !c.content.is_known());
        assert_eq!(c.mode.as_deref(), Some("0644"));
    }

    #[tokio::test]
    async fn create_read_update_delete_on_a_real_directory() {
        let dir = tempfile::tempdir().unwrap();
        let p = FileProvider::new(dir.path());
        let u = urn();
        let inputs = checked(&p, file("nested/deeper/app.env", "A=1\n")).await;
        let created = p.create(ctx(&u), &inputs).await.unwrap();
        let on_disk = dir.path().join("nested/deeper/app.env");
        assert_eq!(created.id, on_disk.to_str().unwrap());
        assert_eq!(fs::read_to_string(&on_disk).unwrap(), "A=1\n");
        assert_eq!(mode_on_disk(&on_disk), 0o644);
        assert_eq!(created.outputs.path, created.id);
        assert_eq!(created.outputs.size, 4);
        assert_eq!(created.outputs.sha256, sha256_hex(b"A=1\n"));
        assert_eq!(created.outputs.sha256.len(), 64);

        // Read of an untouched file: exactly the recorded inputs, so a refresh finds no drift.
        let seen = p.read(ctx(&u), &created.id, Some(&inputs), Some(&created.outputs)).await.unwrap().unwrap();
        assert_eq!(seen.inputs, inputs);
        assert_eq!(seen.outputs, created.outputs);

        let new = checked(&p, File { mode: Some("0600".into()), ..file("nested/deeper/app.env", "A=2\nB=3\n") }).await;
        let outputs = p.update(ctx(&u), &created.id, &inputs, &new, &created.outputs).await.unwrap();
        assert_eq!(fs::read_to_string(&on_disk).unwrap(), "A=2\nB=3\n");
        assert_eq!(mode_on_disk(&on_disk), 0o600);
        assert_eq!(outputs.size, 8);
        assert_ne!(outputs.sha256, created.outputs.sha256);

        p.delete(ctx(&u), &created.id, &new, &outputs).await.unwrap();
        assert!(!on_disk.exists());
        p.delete(ctx(&u), &created.id, &new, &outputs).await.expect("deleting a missing file succeeds");
        assert!(p.read(ctx(&u), &created.id, Some(&new), Some(&outputs)).await.unwrap().is_none(), "a gone file reads as None");
    }

    #[tokio::test]
    async fn mode_bits_are_exact_regardless_of_umask() {
        let dir = tempfile::tempdir().unwrap();
        let p = FileProvider::new(dir.path());
        let u = urn();
        for (mode, expected) in [("0666", 0o666), ("0640", 0o640), ("0400", 0o400), ("0755", 0o755)] {
            let name = format!("m{mode}");
            let inputs = checked(&p, File { mode: Some(mode.into()), ..file(&name, "x") }).await;
            p.create(ctx(&u), &inputs).await.unwrap();
            assert_eq!(mode_on_disk(&dir.path().join(&name)), expected, "{mode}");
        }
        let secret = checked(&p, File { sensitive: true, ..file("secret", "pw") }).await;
        p.create(ctx(&u), &secret).await.unwrap();
        assert_eq!(mode_on_disk(&dir.path().join("secret")), 0o600);
        // A read-only file can still be rewritten: the rename replaces it.
        let ro = checked(&p, File { mode: Some("0400".into()), ..file("m0400", "y") }).await;
        let id = dir.path().join("m0400").to_string_lossy().into_owned();
        let old_outputs = FileProvider::outputs(&id, b"x");
        p.update(ctx(&u), &id, &ro, &ro, &old_outputs).await.unwrap();
        assert_eq!(fs::read_to_string(dir.path().join("m0400")).unwrap(), "y");
    }

    #[tokio::test]
    async fn writes_are_atomic_and_leave_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = FileProvider::new(dir.path());
        let u = urn();
        fs::write(dir.path().join("config.yml"), "old: true\n").unwrap();
        let before = fs::metadata(dir.path().join("config.yml")).unwrap();
        let inputs = checked(&p, file("config.yml", "new: true\n")).await;
        let created = p.create(ctx(&u), &inputs).await.unwrap();
        assert_eq!(fs::read_to_string(dir.path().join("config.yml")).unwrap(), "new: true\n", "an existing file is overwritten");
        use std::os::unix::fs::MetadataExt as _;
        let after = fs::metadata(dir.path().join("config.yml")).unwrap();
        assert_ne!(before.ino(), after.ino(), "the file is replaced by rename, not rewritten in place");
        for i in 0..5 {
            let next = checked(&p, file("config.yml", &format!("n: {i}\n"))).await;
            p.update(ctx(&u), &created.id, &inputs, &next, &created.outputs).await.unwrap();
        }
        assert_eq!(entries(dir.path()), vec!["config.yml"]);

        // A failed write (the target is a directory) cleans up too.
        fs::create_dir(dir.path().join("taken")).unwrap();
        let err = p.create(ctx(&u), &checked(&p, file("taken", "x")).await).await.err().unwrap();
        assert!(err.message.contains("is a directory"), "{}", err.message);
        assert_eq!(entries(dir.path()), vec!["config.yml", "taken"]);
        assert!(entries(&dir.path().join("taken")).is_empty());
    }

    #[tokio::test]
    async fn read_after_an_outside_edit_reports_the_drift() {
        let dir = tempfile::tempdir().unwrap();
        let p = FileProvider::new(dir.path());
        let u = urn();
        let inputs = checked(&p, file("app.env", "A=1\n")).await;
        let created = p.create(ctx(&u), &inputs).await.unwrap();
        fs::write(&created.id, "A=edited\n").unwrap();
        fs::set_permissions(&created.id, fs::Permissions::from_mode(0o666)).unwrap();
        let seen = p.read(ctx(&u), &created.id, Some(&inputs), Some(&created.outputs)).await.unwrap().unwrap();
        assert_eq!(seen.inputs.path, inputs.path, "the path stays as the program wrote it");
        assert_eq!(seen.inputs.content.known().unwrap(), "A=edited\n");
        assert_eq!(seen.inputs.mode.as_deref(), Some("0666"));
        assert_eq!(seen.outputs.sha256, sha256_hex(b"A=edited\n"));
        assert_eq!(seen.outputs.size, 9);

        // Through the package, the diff against the program is an in-place update of both.
        let pkg = package(dir.path());
        let enc = |f: &File| Value::from_json(serde_json::to_value(f).unwrap());
        let d = pkg.diff(ctx(&u), &created.id, &enc(&seen.inputs), &Value::Null, &enc(&inputs)).await.unwrap();
        let changed: Vec<String> = d.changes.iter().map(|c| c.path.to_string()).collect();
        assert_eq!(changed, vec!["content", "mode"]);
        assert!(!d.needs_replace());
        assert_eq!(d.unknown_outputs, vec![field("sha256"), field("size")]);
    }

    #[tokio::test]
    async fn path_changes_replace_and_a_moved_root_is_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = package(dir.path());
        let u = urn();
        let v = |j: serde_json::Value| Value::from_json(j);
        let old = v(serde_json::json!({"path": "a.txt", "content": "x", "mode": "0644"}));
        let id = dir.path().join("a.txt").to_string_lossy().into_owned();
        let moved = v(serde_json::json!({"path": "b.txt", "content": "x", "mode": "0644"}));
        let d = p.diff(ctx(&u), &id, &old, &Value::Null, &moved).await.unwrap();
        assert_eq!(d.replace_paths, vec![field("path")]);
        assert!(!d.delete_before_replace, "a new path can be written before the old file is removed");
        let same = p.diff(ctx(&u), &id, &old, &Value::Null, &old).await.unwrap();
        assert!(!same.has_changes());

        let elsewhere = package(dir.path().join("sub"));
        let d = elsewhere.diff(ctx(&u), &id, &old, &Value::Null, &old).await.unwrap();
        assert_eq!(d.replace_paths, vec![field("path")], "same `path`, different root: a new file");
        assert!(!d.delete_before_replace);
    }

    #[tokio::test]
    async fn lookup_adopts_only_an_identical_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = FileProvider::new(dir.path());
        let u = urn();
        let inputs = checked(&p, file("out/app.env", "A=1\n")).await;
        assert!(p.lookup(ctx(&u), &inputs).await.unwrap().is_none(), "nothing there yet");
        fs::create_dir_all(dir.path().join("out")).unwrap();
        fs::write(dir.path().join("out/app.env"), "A=1\n").unwrap();
        fs::set_permissions(dir.path().join("out/app.env"), fs::Permissions::from_mode(0o644)).unwrap();
        let found = p.lookup(ctx(&u), &inputs).await.unwrap().expect("an identical file is adopted");
        assert_eq!(found.id, dir.path().join("out/app.env").to_str().unwrap());
        assert_eq!(found.inputs, inputs);
        assert_eq!(found.outputs.sha256, sha256_hex(b"A=1\n"));

        fs::write(dir.path().join("out/app.env"), "A=other\n").unwrap();
        assert!(p.lookup(ctx(&u), &inputs).await.unwrap().is_none(), "different content: not ours");
        fs::write(dir.path().join("out/app.env"), "A=1\n").unwrap();
        fs::set_permissions(dir.path().join("out/app.env"), fs::Permissions::from_mode(0o600)).unwrap();
        assert!(p.lookup(ctx(&u), &inputs).await.unwrap().is_none(), "different mode: not ours");
        let unknown = File { content: Input::Unknown, ..inputs.clone() };
        assert!(p.lookup(ctx(&u), &unknown).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn relative_paths_resolve_against_the_root_and_absolute_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let p = FileProvider::new(dir.path());
        let u = urn();
        let rel = p.create(ctx(&u), &checked(&p, file("./rel/./x.txt", "r")).await).await.unwrap();
        assert_eq!(rel.id, dir.path().join("rel/x.txt").to_str().unwrap());
        assert!(dir.path().join("rel/x.txt").is_file());
        let abs_path = other.path().join("abs.txt");
        let abs = p.create(ctx(&u), &checked(&p, file(abs_path.to_str().unwrap(), "a")).await).await.unwrap();
        assert_eq!(abs.id, abs_path.to_str().unwrap());
        assert!(abs_path.is_file());
        assert!(!dir.path().join("abs.txt").exists());
    }

    fn settings(root: &FsPath, yaml: Option<&str>) -> ProviderSettings {
        ProviderSettings {
            stack: "dev".into(),
            project_root: root.to_path_buf(),
            node: yaml.map(|y| parse_yaml("stacks/dev.yaml", y).unwrap()),
        }
    }

    #[tokio::test]
    async fn plugin_root_setting_is_relative_to_the_project_root() {
        let dir = tempfile::tempdir().unwrap();
        let u = urn();
        let inputs = Value::from_json(serde_json::json!({"path": "f.txt", "content": "c", "mode": "0644"}));
        let default = LocalPlugin.build(&settings(dir.path(), None)).unwrap();
        assert_eq!(default.create(ctx(&u), &inputs).await.unwrap().id, dir.path().join("f.txt").to_str().unwrap());
        let nested = LocalPlugin.build(&settings(dir.path(), Some("root: generated\n"))).unwrap();
        assert_eq!(nested.create(ctx(&u), &inputs).await.unwrap().id, dir.path().join("generated/f.txt").to_str().unwrap());
        assert!(dir.path().join("generated/f.txt").is_file());

        let err = LocalPlugin.build(&settings(dir.path(), Some("rot: generated\n"))).err().unwrap();
        assert!(err.to_string().contains("rot"), "{err}");
        assert!(err.help.unwrap_or_default().contains("only `root`"));
        let err = LocalPlugin.build(&settings(dir.path(), Some("root: ''\n"))).err().unwrap();
        assert!(err.to_string().contains("providers.local.root"), "{err}");
    }
}
