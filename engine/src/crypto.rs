//! Encryption of secret values with a passphrase: Argon2id to derive the key, XChaCha20-Poly1305
//! to seal each value (a fresh random 192-bit nonce per value).
//!
//! The salt and a check value travel with what they protect (the state file, the stack file's
//! `encryptionsalt`), so the passphrase alone opens them, and a wrong passphrase is detected
//! before anything is decrypted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// The environment variable holding the passphrase.
pub const PASSPHRASE_ENV: &str = "BERTH_PASSPHRASE";

const CHECK_PLAINTEXT: &[u8] = b"berth";
const VERSION_PREFIX: &str = "v1:";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CryptoError {
    #[error("the passphrase is wrong for this {what}")]
    WrongPassphrase { what: String },
    #[error("this {what} holds secrets; set BERTH_PASSPHRASE to the passphrase they were encrypted with")]
    PassphraseMissing { what: String },
    #[error("malformed encrypted value: {0}")]
    Malformed(String),
    #[error("decryption failed: the value was altered or encrypted with another key")]
    Tampered,
    #[error("secrets provider `{provider}`: {message}")]
    Provider { provider: String, message: String },
}

/// Encrypts and decrypts secret values. The passphrase implementation is [`Crypter`]; a KMS one
/// can implement the same trait.
pub trait Cipher: Send + Sync {
    fn encrypt(&self, plaintext: &[u8]) -> String;
    fn decrypt(&self, ciphertext: &str) -> Result<Vec<u8>, CryptoError>;
    /// What to record beside the ciphertexts so the same key can be derived again.
    fn info(&self) -> SecretsInfo;
}

/// A way to protect secrets other than a passphrase (AWS KMS, say), selected by a stack file's
/// `secrets: <scheme>://...`. Called from synchronous code: an implementation that must call an
/// API may block (berth runs a multi-threaded runtime; use `tokio::task::block_in_place`).
pub trait SecretsProvider: Send + Sync {
    /// The URL scheme it serves, e.g. `awskms`.
    fn scheme(&self) -> &str;
    /// A new key for `url` (e.g. `awskms://alias/berth`). Its [`Cipher::info`] is recorded
    /// beside the ciphertexts: `provider` the URL, `salt` whatever reopens the key (a wrapped
    /// data key), `check` a value proving it.
    fn create(&self, url: &str) -> Result<Arc<dyn Cipher>, CryptoError>;
    /// The key `info` describes.
    fn open(&self, info: &SecretsInfo) -> Result<Arc<dyn Cipher>, CryptoError>;
}

/// How the secrets of a state file or stack file were encrypted.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SecretsInfo {
    /// `passphrase` (or, later, `awskms://...`).
    pub provider: String,
    /// `v1:<base64 salt>`.
    pub salt: String,
    /// The word "berth" encrypted with the key: proves a passphrase right or wrong.
    pub check: String,
}

impl SecretsInfo {
    /// The stack file form, `v1:<salt>:v1:<check>` (like Pulumi's `encryptionsalt`).
    pub fn to_encryption_salt(&self) -> String {
        format!("{}:{}", self.salt, self.check)
    }

    pub fn from_encryption_salt(text: &str) -> Result<SecretsInfo, CryptoError> {
        let parts: Vec<&str> = text.splitn(4, ':').collect();
        if parts.len() != 4 || parts[0] != "v1" || parts[2] != "v1" {
            return Err(CryptoError::Malformed("encryptionsalt must look like v1:<salt>:v1:<check>".into()));
        }
        Ok(SecretsInfo { provider: "passphrase".into(), salt: format!("v1:{}", parts[1]), check: format!("v1:{}", parts[3]) })
    }
}

/// A passphrase-derived key.
#[derive(Clone)]
pub struct Crypter {
    cipher: Arc<XChaCha20Poly1305>,
    provider: String,
    salt: String,
    check: String,
}

type KeyCache = Mutex<HashMap<(String, String), [u8; 32]>>;

/// Derived keys by (passphrase, salt): one derivation per process, however many files.
fn key_cache() -> &'static KeyCache {
    static CACHE: OnceLock<KeyCache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn derive_key(passphrase: &str, salt: &[u8]) -> [u8; 32] {
    let salt_text = B64.encode(salt);
    let cache_key = (passphrase.to_string(), salt_text);
    if let Ok(cache) = key_cache().lock()
        && let Some(key) = cache.get(&cache_key)
    {
        return *key;
    }
    // OWASP's recommended Argon2id parameters: 19 MiB, 2 passes, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, Some(32)).expect("static Argon2 parameters are valid");
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut key = [0u8; 32];
    argon.hash_password_into(passphrase.as_bytes(), salt, &mut key).expect("salt length is fixed and valid");
    if let Ok(mut cache) = key_cache().lock() {
        cache.insert(cache_key, key);
    }
    key
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    bytes
}

fn seal(cipher: &XChaCha20Poly1305, plaintext: &[u8]) -> String {
    let nonce = random_bytes::<24>();
    let sealed =
        cipher.encrypt(XNonce::from_slice(&nonce), plaintext).expect("XChaCha20-Poly1305 encryption does not fail for in-memory data");
    let mut blob = nonce.to_vec();
    blob.extend_from_slice(&sealed);
    format!("{VERSION_PREFIX}{}", B64.encode(blob))
}

fn open(cipher: &XChaCha20Poly1305, text: &str) -> Result<Vec<u8>, CryptoError> {
    let body = text.strip_prefix(VERSION_PREFIX).ok_or_else(|| CryptoError::Malformed("expected a v1: prefix".into()))?;
    let blob = B64.decode(body).map_err(|e| CryptoError::Malformed(e.to_string()))?;
    if blob.len() < 24 + 16 {
        return Err(CryptoError::Malformed("too short".into()));
    }
    let (nonce, sealed) = blob.split_at(24);
    cipher.decrypt(XNonce::from_slice(nonce), sealed).map_err(|_| CryptoError::Tampered)
}

impl Crypter {
    /// A new key with a fresh salt.
    pub fn create(passphrase: &str) -> Crypter {
        let salt = random_bytes::<16>();
        let key = derive_key(passphrase, &salt);
        let cipher = XChaCha20Poly1305::new((&key).into());
        let check = seal(&cipher, CHECK_PLAINTEXT);
        Crypter { cipher: Arc::new(cipher), provider: "passphrase".into(), salt: format!("{VERSION_PREFIX}{}", B64.encode(salt)), check }
    }

    /// The key recorded in `info`, if `passphrase` is the right one. `what` names the protected
    /// thing in errors ("state of stack mitx.qa").
    pub fn open(passphrase: &str, info: &SecretsInfo, what: &str) -> Result<Crypter, CryptoError> {
        let body = info.salt.strip_prefix(VERSION_PREFIX).ok_or_else(|| CryptoError::Malformed("salt must start with v1:".into()))?;
        let salt = B64.decode(body).map_err(|e| CryptoError::Malformed(e.to_string()))?;
        let key = derive_key(passphrase, &salt);
        let cipher = XChaCha20Poly1305::new((&key).into());
        match open(&cipher, &info.check) {
            Ok(text) if text == CHECK_PLAINTEXT => {
                Ok(Crypter { cipher: Arc::new(cipher), provider: "passphrase".into(), salt: info.salt.clone(), check: info.check.clone() })
            }
            Ok(_) | Err(CryptoError::Tampered) => Err(CryptoError::WrongPassphrase { what: what.to_string() }),
            Err(e) => Err(e),
        }
    }

    /// A key from raw key material (a KMS data key). `provider` is the secrets provider's URL
    /// and `key_reference` what reopens the key (the wrapped data key); both are recorded in the
    /// key's [`SecretsInfo`], with a fresh check value.
    pub fn from_key(key: &[u8; 32], provider: &str, key_reference: &str) -> Crypter {
        let cipher = XChaCha20Poly1305::new(key.into());
        let check = seal(&cipher, CHECK_PLAINTEXT);
        Crypter { cipher: Arc::new(cipher), provider: provider.to_string(), salt: key_reference.to_string(), check }
    }

    /// Reopens a key made by [`Crypter::from_key`], verifying `info.check`.
    pub fn open_with_key(key: &[u8; 32], info: &SecretsInfo, what: &str) -> Result<Crypter, CryptoError> {
        let cipher = XChaCha20Poly1305::new(key.into());
        match open(&cipher, &info.check) {
            Ok(text) if text == CHECK_PLAINTEXT => Ok(Crypter {
                cipher: Arc::new(cipher),
                provider: info.provider.clone(),
                salt: info.salt.clone(),
                check: info.check.clone(),
            }),
            _ => Err(CryptoError::WrongPassphrase { what: what.to_string() }),
        }
    }

    /// The passphrase from the environment, if set and non-empty.
    pub fn passphrase_from_env() -> Option<String> {
        std::env::var(PASSPHRASE_ENV).ok().filter(|p| !p.is_empty())
    }
}

impl Cipher for Crypter {
    fn encrypt(&self, plaintext: &[u8]) -> String {
        seal(&self.cipher, plaintext)
    }

    fn decrypt(&self, ciphertext: &str) -> Result<Vec<u8>, CryptoError> {
        open(&self.cipher, ciphertext)
    }

    fn info(&self) -> SecretsInfo {
        SecretsInfo { provider: self.provider.clone(), salt: self.salt.clone(), check: self.check.clone() }
    }
}

/// Opens and creates keys for a process: the passphrase (from the environment unless given),
/// and the stack file's `encryptionsalt` to reuse when a new key is needed.
pub struct Keyring {
    passphrase: Option<String>,
    preferred: Option<SecretsInfo>,
    /// The stack's `secrets:` setting when it is not the passphrase.
    secrets_url: Option<String>,
    providers: Vec<Arc<dyn SecretsProvider>>,
    opened: Mutex<HashMap<String, Arc<dyn Cipher>>>,
}

impl Keyring {
    /// Uses `BERTH_PASSPHRASE` if set (an empty value is an empty passphrase).
    pub fn from_env() -> Keyring {
        Keyring::new(std::env::var(PASSPHRASE_ENV).ok())
    }

    pub fn new(passphrase: Option<String>) -> Keyring {
        Keyring { passphrase, preferred: None, secrets_url: None, providers: Vec::new(), opened: Mutex::new(HashMap::new()) }
    }

    /// New keys reuse this salt (the stack file's), so one passphrase derivation serves both
    /// the stack file's secrets and the state's.
    pub fn prefer(mut self, info: Option<SecretsInfo>) -> Keyring {
        self.preferred = info;
        self
    }

    /// Uses `url` (a stack's `secrets:` setting, e.g. `awskms://alias/berth`) for new keys,
    /// and `providers` to open keys that are not passphrase keys. `None` or `passphrase`
    /// keeps the passphrase.
    pub fn with_secrets(mut self, url: Option<&str>, providers: Vec<Arc<dyn SecretsProvider>>) -> Keyring {
        self.secrets_url = url.filter(|u| *u != "passphrase").map(str::to_string);
        self.providers = providers;
        self
    }

    fn provider_for(&self, url: &str, what: &str) -> Result<&Arc<dyn SecretsProvider>, CryptoError> {
        let scheme = url.split("://").next().unwrap_or_default();
        self.providers
            .iter()
            .find(|p| p.scheme() == scheme)
            .ok_or_else(|| CryptoError::Malformed(format!("{what} uses the secrets provider `{url}`, which this build does not support")))
    }

    fn remember(&self, cipher: Arc<dyn Cipher>) -> Arc<dyn Cipher> {
        if let Ok(mut opened) = self.opened.lock() {
            opened.insert(cipher.info().salt, cipher.clone());
        }
        cipher
    }

    pub fn has_passphrase(&self) -> bool {
        self.passphrase.is_some()
    }

    fn passphrase(&self, what: &str) -> Result<&str, CryptoError> {
        self.passphrase.as_deref().ok_or_else(|| CryptoError::PassphraseMissing { what: what.to_string() })
    }

    /// The key `info` describes. `what` names the protected thing in errors.
    pub fn open(&self, info: &SecretsInfo, what: &str) -> Result<Arc<dyn Cipher>, CryptoError> {
        if let Ok(opened) = self.opened.lock()
            && let Some(cipher) = opened.get(&info.salt)
        {
            return Ok(cipher.clone());
        }
        if info.provider != "passphrase" {
            let cipher = self.provider_for(&info.provider, what)?.open(info)?;
            return Ok(self.remember(cipher));
        }
        let cipher: Arc<dyn Cipher> = Arc::new(Crypter::open(self.passphrase(what)?, info, what)?);
        if let Ok(mut opened) = self.opened.lock() {
            opened.insert(info.salt.clone(), cipher.clone());
        }
        Ok(cipher)
    }

    /// A key for something that has none yet: the preferred one if set, else a fresh salt.
    pub fn create(&self, what: &str) -> Result<Arc<dyn Cipher>, CryptoError> {
        if let Some(url) = &self.secrets_url {
            let cipher = self.provider_for(url, what)?.create(url)?;
            return Ok(self.remember(cipher));
        }
        if let Some(info) = &self.preferred {
            return self.open(info, what);
        }
        let cipher: Arc<dyn Cipher> = Arc::new(Crypter::create(self.passphrase(what)?));
        if let Ok(mut opened) = self.opened.lock() {
            opened.insert(cipher.info().salt, cipher.clone());
        }
        Ok(cipher)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_passphrase() {
        let c = Crypter::create("correct horse");
        let sealed = c.encrypt(b"hunter2");
        assert!(!sealed.contains("hunter2"));
        assert_ne!(sealed, c.encrypt(b"hunter2"), "a fresh nonce per value");
        let reopened = Crypter::open("correct horse", &c.info(), "test").unwrap();
        assert_eq!(reopened.decrypt(&sealed).unwrap(), b"hunter2");
        assert!(matches!(Crypter::open("wrong", &c.info(), "test"), Err(CryptoError::WrongPassphrase { .. })));
    }

    #[test]
    fn raw_keys_round_trip() {
        let key = [7u8; 32];
        let c = Crypter::from_key(&key, "awskms://alias/x", "wrapped-key");
        let sealed = c.encrypt(b"v");
        assert_eq!(c.info().provider, "awskms://alias/x");
        let again = Crypter::open_with_key(&key, &c.info(), "t").unwrap();
        assert_eq!(again.decrypt(&sealed).unwrap(), b"v");
        assert!(Crypter::open_with_key(&[8u8; 32], &c.info(), "t").is_err());
    }

    #[test]
    fn tampering_is_detected() {
        let c = Crypter::create("p");
        let sealed = c.encrypt(b"data");
        let mut blob = B64.decode(&sealed[3..]).unwrap();
        let last = blob.len() - 1;
        blob[last] ^= 1;
        assert_eq!(c.decrypt(&format!("v1:{}", B64.encode(blob))), Err(CryptoError::Tampered));
    }

    #[test]
    fn encryption_salt_form_round_trips() {
        let c = Crypter::create("p");
        let text = c.info().to_encryption_salt();
        assert_eq!(SecretsInfo::from_encryption_salt(&text).unwrap(), c.info());
    }
}
