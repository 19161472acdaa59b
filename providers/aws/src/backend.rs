//! The state backend `s3://bucket/prefix`: teams share a stack's state in S3.
//!
//! Objects: `<prefix>/<stack>.json` (the snapshot), `<prefix>/<stack>.json.bak` (the previous
//! one) and `<prefix>/<stack>.lock` while someone changes the stack. The lock is taken with a
//! conditional write (`If-None-Match: *`), so of two writers exactly one succeeds, and released by
//! a delete conditional on its ETag (`If-Match`), so a process never removes a lock it no longer
//! holds. The journal of an apply stays a local file, under
//! `${BERTH_CACHE:-$HOME/.cache/berth}/journal/<bucket>/<prefix>/<stack>.journal`.
//!
//! Region and endpoint come from the stack file's `providers.aws` section, else the standard AWS
//! environment; the URL may override them: `s3://bucket/prefix?region=eu-west-1&endpoint=http://…`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use berth_engine::config::ConfigError;
use berth_engine::project::StackSettings;
use berth_engine::state::{Backend, BackendFactory, LockGuard, LockInfo, StateError, UnlockOutcome};

use crate::config::{AwsSettings, block_on, s3_client};
use crate::error::AwsError;

/// Where a stack's state lives in S3.
#[derive(Clone, Debug, PartialEq)]
pub struct S3Location {
    pub bucket: String,
    /// Without leading or trailing slashes; may be empty.
    pub prefix: String,
    pub region: Option<String>,
    pub endpoint: Option<String>,
}

impl S3Location {
    pub fn parse(url: &str) -> Result<S3Location, String> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| format!("`{url}` is not an s3:// URL"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        crate::s3::validate_bucket_name(bucket).map_err(|e| format!("`{url}`: {e}"))?;
        let mut location =
            S3Location { bucket: bucket.to_string(), prefix: prefix.trim_matches('/').to_string(), region: None, endpoint: None };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("region", v)) => location.region = Some(v.to_string()),
                Some(("endpoint", v)) => location.endpoint = crate::policy::url_decode(v),
                _ => return Err(format!("`{url}`: unknown option `{pair}` (known: region, endpoint)")),
            }
        }
        Ok(location)
    }

    fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() { name.to_string() } else { format!("{}/{name}", self.prefix) }
    }
}

/// Opens `s3://` backends for the `berth` binary.
#[derive(Clone, Copy, Debug, Default)]
pub struct S3BackendFactory;

impl BackendFactory for S3BackendFactory {
    fn scheme(&self) -> &str {
        "s3"
    }

    fn open(&self, url: &str, stack: &StackSettings, _project_root: &Path) -> Result<Arc<dyn Backend>, ConfigError> {
        let location =
            S3Location::parse(url).map_err(|e| ConfigError::new(e).with_key("backend").with_help("write s3://<bucket>/<prefix>"))?;
        let settings = crate::parse_settings(stack.providers.get(crate::PACKAGE))?;
        Ok(Arc::new(S3Backend::new(location, settings)))
    }
}

/// State in S3.
pub struct S3Backend {
    location: S3Location,
    settings: AwsSettings,
    client: tokio::sync::OnceCell<aws_sdk_s3::Client>,
    journal_dir: PathBuf,
}

fn cache_dir() -> PathBuf {
    match std::env::var_os("BERTH_CACHE").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".cache/berth"),
    }
}

impl S3Backend {
    pub fn new(location: S3Location, mut settings: AwsSettings) -> S3Backend {
        settings.region = location.region.clone().or(settings.region);
        settings.endpoint = location.endpoint.clone().or(settings.endpoint);
        let mut journal_dir = cache_dir().join("journal").join(&location.bucket);
        if !location.prefix.is_empty() {
            journal_dir = journal_dir.join(&location.prefix);
        }
        S3Backend { location, settings, client: tokio::sync::OnceCell::new(), journal_dir }
    }

    /// Where journals go (tests point it elsewhere).
    pub fn with_journal_dir(mut self, dir: impl Into<PathBuf>) -> S3Backend {
        self.journal_dir = dir.into();
        self
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.location.bucket)
    }

    fn error(&self, key: &str, action: &str, e: AwsError) -> StateError {
        let described = e.describe(&self.url(key), action);
        StateError::Backend { location: self.url(key), message: format!("{} ({})", described.message, described.code.unwrap_or_default()) }
    }

    async fn client(&self) -> Result<&aws_sdk_s3::Client, StateError> {
        self.client
            .get_or_try_init(|| async {
                let config = self.settings.load().await.map_err(|e| StateError::Backend { location: self.url(""), message: e.message })?;
                Ok(s3_client(&config, &self.settings))
            })
            .await
    }

    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Option<String>)>, StateError> {
        let client = self.client().await?;
        match client.get_object().bucket(&self.location.bucket).key(key).send().await {
            Ok(object) => {
                let etag = object.e_tag().map(str::to_string);
                let body =
                    object.body.collect().await.map_err(|e| StateError::Backend { location: self.url(key), message: e.to_string() })?;
                Ok(Some((body.into_bytes().to_vec(), etag)))
            }
            Err(e) => {
                let e = AwsError::from(e);
                if e.is_code("NoSuchKey") { Ok(None) } else { Err(self.error(key, "GetObject", e)) }
            }
        }
    }

    async fn delete_key(&self, key: &str, if_match: Option<&str>) -> Result<(), StateError> {
        let client = self.client().await?;
        match client.delete_object().bucket(&self.location.bucket).key(key).set_if_match(if_match.map(str::to_string)).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = AwsError::from(e);
                if e.is_code("NoSuchKey") { Ok(()) } else { Err(self.error(key, "DeleteObject", e)) }
            }
        }
    }

    fn locked_message(&self, stack: &str, holder: Option<&LockInfo>) -> String {
        let who = holder.map(LockInfo::describe).unwrap_or_else(|| "another process".into());
        format!(
            "stack `{stack}` is locked by {who} ({}); wait for it to finish, or if it is stuck, stop it and run `berth state unlock {stack}`",
            self.url(&self.location.key(&format!("{stack}.lock")))
        )
    }
}

/// The lock, removed when dropped.
struct S3Lock {
    info: LockInfo,
    bucket: String,
    key: String,
    etag: Option<String>,
    settings: AwsSettings,
    client: aws_sdk_s3::Client,
}

impl LockGuard for S3Lock {
    fn info(&self) -> &LockInfo {
        &self.info
    }
}

impl Drop for S3Lock {
    fn drop(&mut self) {
        let on_worker =
            matches!(tokio::runtime::Handle::try_current(), Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let (bucket, key, etag, settings, client) =
            (self.bucket.clone(), self.key.clone(), self.etag.clone(), self.settings.clone(), self.client.clone());
        let result = block_on(async move {
            // Off a multi-threaded runtime the lock is released from a runtime of its own, which
            // must not share connections with the (blocked) one that took it.
            let client = if on_worker { client } else { s3_client(&settings.load().await.map_err(|e| e.message)?, &settings) };
            client
                .delete_object()
                .bucket(&bucket)
                .key(&key)
                .set_if_match(etag)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| AwsError::from(e).message)
        });
        if let Err(e) = result {
            tracing::warn!("could not release the state lock s3://{}/{}: {e}; remove it with `berth state unlock`", self.bucket, self.key);
        }
    }
}

fn process_alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks whether the process exists.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[async_trait]
impl Backend for S3Backend {
    fn location(&self, stack: &str) -> String {
        self.url(&self.location.key(&format!("{stack}.json")))
    }

    async fn read_state(&self, stack: &str) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.get(&self.location.key(&format!("{stack}.json"))).await?.map(|(bytes, _)| bytes))
    }

    async fn write_state(&self, stack: &str, bytes: &[u8]) -> Result<(), StateError> {
        let client = self.client().await?;
        let key = self.location.key(&format!("{stack}.json"));
        let backup = self.location.key(&format!("{stack}.json.bak"));
        if let Some((previous, _)) = self.get(&key).await? {
            client
                .put_object()
                .bucket(&self.location.bucket)
                .key(&backup)
                .body(ByteStream::from(previous))
                .send()
                .await
                .map_err(|e| self.error(&backup, "PutObject", AwsError::from(e)))?;
        }
        // A single PUT replaces the object atomically: readers see the old or the new snapshot.
        client
            .put_object()
            .bucket(&self.location.bucket)
            .key(&key)
            .content_type("application/json")
            .body(ByteStream::from(bytes.to_vec()))
            .send()
            .await
            .map_err(|e| self.error(&key, "PutObject", AwsError::from(e)))?;
        Ok(())
    }

    async fn delete_state(&self, stack: &str) -> Result<(), StateError> {
        self.delete_key(&self.location.key(&format!("{stack}.json")), None).await?;
        self.delete_key(&self.location.key(&format!("{stack}.json.bak")), None).await?;
        let journal = self.journal_path(stack);
        match std::fs::remove_file(&journal) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Io { path: journal.display().to_string(), source }),
        }
    }

    async fn lock(&self, stack: &str, info: LockInfo) -> Result<Box<dyn LockGuard>, StateError> {
        let client = self.client().await?;
        let key = self.location.key(&format!("{stack}.lock"));
        let body =
            serde_json::to_vec_pretty(&info).map_err(|e| StateError::Io { path: self.url(&key), source: std::io::Error::other(e) })?;
        let put = client
            .put_object()
            .bucket(&self.location.bucket)
            .key(&key)
            .if_none_match("*")
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await;
        match put {
            Ok(out) => Ok(Box::new(S3Lock {
                info,
                bucket: self.location.bucket.clone(),
                key,
                etag: out.e_tag().map(str::to_string),
                settings: self.settings.clone(),
                client: client.clone(),
            })),
            Err(e) => {
                let e = AwsError::from(e);
                if e.is_code("PreconditionFailed") || e.is_code("ConditionalRequestConflict") || e.status == Some(412) {
                    let holder = self.get(&key).await?.and_then(|(bytes, _)| serde_json::from_slice::<LockInfo>(&bytes).ok());
                    Err(StateError::Lock(self.locked_message(stack, holder.as_ref())))
                } else {
                    Err(self.error(&key, "PutObject (lock)", e))
                }
            }
        }
    }

    async fn unlock(&self, stack: &str, force: bool) -> Result<UnlockOutcome, StateError> {
        let key = self.location.key(&format!("{stack}.lock"));
        let Some((bytes, etag)) = self.get(&key).await? else { return Ok(UnlockOutcome::NotLocked) };
        let holder = serde_json::from_slice::<LockInfo>(&bytes).ok();
        let here = berth_engine::state::lock::hostname();
        let gone = holder.as_ref().is_some_and(|h| h.host == here && !process_alive(h.pid));
        if gone {
            self.delete_key(&key, etag.as_deref()).await?;
            return Ok(UnlockOutcome::RemovedStale(holder));
        }
        if force {
            self.delete_key(&key, etag.as_deref()).await?;
            return Ok(UnlockOutcome::ForcedWhileHeld(holder));
        }
        let who = holder.as_ref().map(LockInfo::describe).unwrap_or_else(|| "an unreadable lock record".into());
        let why = match &holder {
            Some(h) if h.host == here => "which is still running; stop it first".to_string(),
            _ => "on another machine, so berth cannot tell whether it still runs; if you are sure it does not".to_string(),
        };
        Err(StateError::Lock(format!(
            "stack `{stack}` is locked by {who}, {why}, pass --force to remove the lock anyway (two writers can then corrupt the state)"
        )))
    }

    fn journal_path(&self, stack: &str) -> PathBuf {
        // The journal is written locally during an apply; its directory must exist first.
        let _ = std::fs::create_dir_all(&self.journal_dir);
        self.journal_dir.join(format!("{stack}.journal"))
    }

    async fn list_stacks(&self) -> Result<Vec<String>, StateError> {
        let client = self.client().await?;
        let prefix = self.location.key("");
        let mut stacks = Vec::new();
        let mut token = None;
        loop {
            let page = client
                .list_objects_v2()
                .bucket(&self.location.bucket)
                .prefix(&prefix)
                .set_continuation_token(token.clone())
                .send()
                .await
                .map_err(|e| self.error(&prefix, "ListObjectsV2", AwsError::from(e)))?;
            for object in page.contents() {
                if let Some(name) = object.key().and_then(|k| k.strip_prefix(&prefix)).and_then(|k| k.strip_suffix(".json"))
                    && !name.contains('/')
                {
                    stacks.push(name.to_string());
                }
            }
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        stacks.sort();
        Ok(stacks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let l = S3Location::parse("s3://team-state/berth/edxapp/").unwrap();
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("team-state", "berth/edxapp"));
        assert_eq!(l.key("qa.json"), "berth/edxapp/qa.json");
        let l = S3Location::parse("s3://team-state?region=eu-west-1&endpoint=http%3A%2F%2F127.0.0.1%3A5599").unwrap();
        assert_eq!((l.prefix.as_str(), l.region.as_deref(), l.endpoint.as_deref()), ("", Some("eu-west-1"), Some("http://127.0.0.1:5599")));
        assert_eq!(l.key("qa.json"), "qa.json");
        assert!(S3Location::parse("gs://x/y").is_err());
        assert!(S3Location::parse("s3://Bad_Bucket/x").unwrap_err().contains("Bad_Bucket"));
        assert!(S3Location::parse("s3://bucket?colour=red").unwrap_err().contains("colour"));
    }

    #[test]
    fn liveness_of_processes() {
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(u32::MAX / 2));
    }
}
