//! Vault's HTTP API as paths and JSON documents.
//!
//! `vaultrs` provides the client: the TLS setup (rustls, CA files, skip-verify), the token and
//! namespace headers and the `/v1` prefix. Requests go through the same HTTP layer (rustify) as
//! plain paths with JSON bodies, because vaultrs has no typed call for several endpoints berth
//! needs (mysql connections, mount tuning) and because every error must carry Vault's own text,
//! status and path.

use std::fmt;
use std::time::Duration;

use berth_engine::{ErrorKind, ProviderError};
use rustify::client::Client as _;
use rustify::endpoint::{Endpoint, MiddleWare as _};
use rustify::enums::{RequestMethod, RequestType, ResponseType};
use serde_json::Value as Json;
use vaultrs::client::{Client as _, VaultClient};

/// Attempts for a read (GET or LIST) that failed on the network or with a 5xx/429.
const READ_ATTEMPTS: u32 = 3;

/// One request: a method, a path under `/v1/` and an optional JSON body.
struct Call {
    method: RequestMethod,
    path: String,
    body: Option<Vec<u8>>,
}

impl Endpoint for Call {
    type Response = Json;
    const REQUEST_BODY_TYPE: RequestType = RequestType::JSON;
    const RESPONSE_BODY_TYPE: ResponseType = ResponseType::JSON;

    fn path(&self) -> String {
        self.path.clone()
    }

    fn method(&self) -> RequestMethod {
        self.method.clone()
    }

    fn body(&self) -> Result<Option<Vec<u8>>, rustify::errors::ClientError> {
        Ok(self.body.clone())
    }
}

/// A failed request: what was asked, and what Vault (or the network) answered.
#[derive(Clone, Debug)]
pub struct VaultError {
    pub method: &'static str,
    pub path: String,
    /// The HTTP status, when Vault answered.
    pub status: Option<u16>,
    /// Vault's `errors` (or, when those are empty, its `warnings`), or the network failure.
    pub messages: Vec<String>,
}

impl VaultError {
    fn new(method: &'static str, path: &str, status: Option<u16>, messages: Vec<String>) -> VaultError {
        VaultError { method, path: path.to_string(), status, messages }
    }

    /// Whether Vault's text contains `needle` (case-insensitive).
    pub fn says(&self, needle: &str) -> bool {
        let needle = needle.to_lowercase();
        self.messages.iter().any(|m| m.to_lowercase().contains(&needle))
    }

    /// Vault's own words, joined.
    pub fn text(&self) -> String {
        if self.messages.is_empty() { "no error text".to_string() } else { self.messages.join("; ") }
    }

    fn hint(&self) -> Option<&'static str> {
        match self.status {
            Some(403) => Some(
                "the token is missing, expired, or lacks a policy allowing this on the path; check VAULT_TOKEN or providers.vault.token",
            ),
            Some(503) => Some("Vault is sealed or in standby; unseal it or point VAULT_ADDR at the active node"),
            None => Some("check that Vault is reachable at VAULT_ADDR (or providers.vault.address) and that TLS settings match"),
            _ => None,
        }
    }
}

impl fmt::Display for VaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "Vault answered {status} to {} {}: {}", self.method, self.path, self.text())?,
            None => write!(f, "Vault request {} {} failed: {}", self.method, self.path, self.text())?,
        }
        if let Some(hint) = self.hint() {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

impl From<VaultError> for ProviderError {
    fn from(e: VaultError) -> ProviderError {
        let message = e.to_string();
        match e.status {
            Some(404) => ProviderError::not_found(message),
            Some(status) => ProviderError::api(format!("HTTP {status}"), message),
            None if e.says("timed out") || e.says("timeout") => ProviderError::timeout(message),
            None => ProviderError::new(ErrorKind::Other, message),
        }
    }
}

/// The client every resource type shares. Built without calling the API; a missing address or
/// token is reported on the first call, so that an offline preview still works.
pub struct VaultApi {
    client: Result<VaultClient, String>,
    address: String,
}

impl VaultApi {
    pub fn new(client: Result<VaultClient, String>, address: String) -> VaultApi {
        VaultApi { client, address }
    }

    /// Where requests go, for messages.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn client(&self, method: &'static str, path: &str) -> Result<&VaultClient, VaultError> {
        self.client.as_ref().map_err(|why| VaultError::new(method, path, None, vec![why.clone()]))
    }

    async fn send(&self, method: RequestMethod, name: &'static str, path: &str, body: Option<&Json>) -> Result<Json, VaultError> {
        let client = self.client(name, path)?;
        let body = match body {
            Some(json) => Some(
                serde_json::to_vec(json).map_err(|e| VaultError::new(name, path, None, vec![format!("cannot encode the request: {e}")]))?,
            ),
            None => None,
        };
        let call = Call { method, path: path.to_string(), body };
        let fail = |status: Option<u16>, message: String| VaultError::new(name, path, status, vec![message]);
        // The request is built and sent here rather than through rustify's `execute`, which
        // logs every 404 (an expected answer to "does this exist?") as an ERROR.
        let mut request = call.request(client.http().base()).map_err(|e| fail(None, error_chain(&e)))?;
        client.middle().request(&call, &mut request).map_err(|e| fail(None, error_chain(&e)))?;
        let response = client.http().send(request).await.map_err(|e| fail(None, error_chain(&e)))?;
        let status = response.status().as_u16();
        let bytes = response.body();
        if !(200..300).contains(&status) {
            return Err(VaultError::new(name, path, Some(status), server_messages(std::str::from_utf8(bytes).ok())));
        }
        if bytes.is_empty() {
            return Ok(Json::Null);
        }
        let json: Json = serde_json::from_slice(bytes).map_err(|e| fail(Some(status), format!("unreadable response: {e}")))?;
        for warning in json.get("warnings").and_then(Json::as_array).into_iter().flatten().filter_map(Json::as_str) {
            tracing::info!(path, "Vault: {warning}");
        }
        Ok(json)
    }

    /// A read that retries what may pass: network failures, 429 and 5xx.
    async fn read_with_retries(&self, method: RequestMethod, name: &'static str, path: &str) -> Result<Json, VaultError> {
        let mut attempt = 1;
        loop {
            match self.send(method.clone(), name, path, None).await {
                Err(e) if attempt < READ_ATTEMPTS && retryable(&e) => {
                    tracing::debug!(path, attempt, "retrying a Vault read: {e}");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// `GET path`: the response's `data`, or `None` if there is nothing there (404).
    pub async fn read(&self, path: &str) -> Result<Option<Json>, VaultError> {
        match self.read_with_retries(RequestMethod::GET, "GET", path).await {
            Ok(body) => Ok(Some(body.get("data").cloned().unwrap_or(Json::Null))),
            Err(e) if e.status == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `LIST path`: the keys, empty if there are none.
    pub async fn list(&self, path: &str) -> Result<Vec<String>, VaultError> {
        match self.read_with_retries(RequestMethod::LIST, "LIST", path).await {
            Ok(body) => Ok(body
                .pointer("/data/keys")
                .and_then(Json::as_array)
                .map(|keys| keys.iter().filter_map(|k| k.as_str().map(str::to_string)).collect())
                .unwrap_or_default()),
            Err(e) if e.status == Some(404) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// `POST path` with a JSON body: the response's `data`, if any.
    pub async fn write(&self, path: &str, body: &Json) -> Result<Json, VaultError> {
        let response = self.send(RequestMethod::POST, "POST", path, Some(body)).await?;
        Ok(response.get("data").cloned().unwrap_or(Json::Null))
    }

    /// `DELETE path`; true if something was deleted, false if it was already gone (404).
    pub async fn delete(&self, path: &str) -> Result<bool, VaultError> {
        match self.send(RequestMethod::DELETE, "DELETE", path, None).await {
            Ok(_) => Ok(true),
            Err(e) if e.status == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn retryable(e: &VaultError) -> bool {
    match e.status {
        None => true,
        Some(status) => status == 429 || status >= 500,
    }
}

/// Vault's error body is `{"errors": [...]}`; some 4xx answers carry only `warnings`.
fn server_messages(content: Option<&str>) -> Vec<String> {
    let Some(text) = content.filter(|t| !t.trim().is_empty()) else { return Vec::new() };
    let Ok(json) = serde_json::from_str::<Json>(text) else {
        // Not JSON (a proxy's HTML page): the first line says enough.
        return vec![text.lines().next().unwrap_or_default().chars().take(200).collect()];
    };
    let strings = |key: &str| -> Vec<String> {
        json.get(key)
            .and_then(Json::as_array)
            .map(|a| a.iter().filter_map(|m| m.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let errors = strings("errors");
    if errors.is_empty() { strings("warnings") } else { errors }
}

/// An error and its causes, `a: b: c` (rustify's own messages are generic; the cause says
/// "connection refused" or "certificate unknown").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_vault_text_status_and_path() {
        let e = VaultError::new("POST", "sys/mounts/x", Some(400), server_messages(Some(r#"{"errors":["path is already in use at x/"]}"#)));
        assert!(e.says("already in use"));
        let p: ProviderError = e.into();
        assert_eq!(p.code.as_deref(), Some("HTTP 400"));
        assert!(p.message.contains("POST sys/mounts/x") && p.message.contains("path is already in use at x/"), "{}", p.message);

        let denied: ProviderError = VaultError::new("GET", "secret/data/a", Some(403), vec!["permission denied".into()]).into();
        assert!(denied.message.contains("lacks a policy"), "{}", denied.message);

        let warnings = server_messages(Some(r#"{"errors":[],"warnings":["Invalid path for a versioned K/V secrets engine."]}"#));
        assert_eq!(warnings, vec!["Invalid path for a versioned K/V secrets engine.".to_string()]);
        assert_eq!(server_messages(Some("<html>\n<body>bad gateway")), vec!["<html>".to_string()]);
        assert!(server_messages(None).is_empty());
    }

    #[test]
    fn network_failures_are_retried_and_named() {
        let e = VaultError::new("GET", "sys/policies/acl/x", None, vec!["error sending request: connection refused".into()]);
        assert!(retryable(&e));
        assert!(!retryable(&VaultError::new("GET", "x", Some(400), vec![])));
        assert!(retryable(&VaultError::new("GET", "x", Some(503), vec![])));
        assert!(e.to_string().contains("reachable"), "{e}");
    }
}
