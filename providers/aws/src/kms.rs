//! The secrets provider `awskms://<key id, ARN or alias>`: state secrets are sealed with a data
//! key that AWS KMS generates and wraps (envelope encryption).
//!
//! Creating a key calls KMS GenerateDataKey once: the wrapped data key is recorded beside the
//! ciphertexts (`SecretsInfo.salt`), the plaintext key only lives in memory. Opening calls KMS
//! Decrypt on the wrapped key, so whoever may use the KMS key can read the state, and nobody
//! else — no passphrase to share. Values are sealed with XChaCha20-Poly1305, as with a
//! passphrase.
//!
//! URLs: `awskms://alias/berth-state`, `awskms://1234abcd-12ab-34cd-56ef-1234567890ab`,
//! `awskms:///arn:aws:kms:us-east-1:111122223333:key/…`; options `?region=…&endpoint=…`
//! (else the standard AWS environment).

use std::sync::Arc;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use berth_engine::crypto::{Cipher, Crypter, CryptoError, SecretsInfo, SecretsProvider};

use crate::config::{AwsSettings, block_on};
use crate::error::AwsError;

const KEY_PREFIX: &str = "kms1:";

/// A parsed `awskms://` URL.
#[derive(Clone, Debug, PartialEq)]
pub struct KmsUrl {
    pub key_id: String,
    pub region: Option<String>,
    pub endpoint: Option<String>,
}

impl KmsUrl {
    pub fn parse(url: &str) -> Result<KmsUrl, CryptoError> {
        let bad = |why: &str| {
            CryptoError::Malformed(format!(
                "secrets provider `{url}`: {why}; write awskms://alias/<name>, awskms://<key id> or awskms:///<key ARN>"
            ))
        };
        let rest = url.strip_prefix("awskms://").ok_or_else(|| bad("not an awskms:// URL"))?;
        let (key, query) = rest.split_once('?').unwrap_or((rest, ""));
        let key_id = key.trim_start_matches('/').to_string();
        if key_id.is_empty() {
            return Err(bad("no key given"));
        }
        let mut parsed = KmsUrl { key_id, region: None, endpoint: None };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("region", v)) => parsed.region = Some(v.to_string()),
                Some(("endpoint", v)) => parsed.endpoint = crate::policy::url_decode(v),
                _ => return Err(bad(&format!("unknown option `{pair}` (known: region, endpoint)"))),
            }
        }
        Ok(parsed)
    }

    fn settings(&self) -> AwsSettings {
        // A key ARN names its region.
        let arn_region = self.key_id.strip_prefix("arn:").and_then(|a| a.split(':').nth(2)).filter(|r| !r.is_empty()).map(str::to_string);
        AwsSettings { region: self.region.clone().or(arn_region), endpoint: self.endpoint.clone(), ..AwsSettings::default() }
    }
}

/// Registers `awskms://` with the `berth` binary.
#[derive(Clone, Copy, Debug, Default)]
pub struct KmsSecretsProvider;

fn kms_failure(url: &str, action: &str, e: AwsError) -> CryptoError {
    let described = e.describe(&format!("secrets provider `{url}`"), action);
    CryptoError::Provider { provider: url.to_string(), message: format!("{} ({})", described.message, described.code.unwrap_or_default()) }
}

async fn client(url: &KmsUrl) -> Result<aws_sdk_kms::Client, CryptoError> {
    let config = url.settings().load().await.map_err(|e| CryptoError::Provider { provider: "awskms".into(), message: e.message })?;
    Ok(aws_sdk_kms::Client::new(&config))
}

fn data_key(bytes: &[u8], url: &str) -> Result<[u8; 32], CryptoError> {
    bytes
        .try_into()
        .map_err(|_| CryptoError::Malformed(format!("secrets provider `{url}`: KMS returned a {}-byte data key, expected 32", bytes.len())))
}

impl SecretsProvider for KmsSecretsProvider {
    fn scheme(&self) -> &str {
        "awskms"
    }

    fn create(&self, url: &str) -> Result<Arc<dyn Cipher>, CryptoError> {
        let parsed = KmsUrl::parse(url)?;
        let (plaintext, wrapped) = block_on(async {
            let kms = client(&parsed).await?;
            let out = kms
                .generate_data_key()
                .key_id(&parsed.key_id)
                .key_spec(DataKeySpec::Aes256)
                .send()
                .await
                .map_err(|e| kms_failure(url, "GenerateDataKey", AwsError::from(e)))?;
            let plaintext = out.plaintext().map(|b| b.as_ref().to_vec()).unwrap_or_default();
            let wrapped = out.ciphertext_blob().map(|b| b.as_ref().to_vec()).unwrap_or_default();
            Ok::<_, CryptoError>((plaintext, wrapped))
        })?;
        let key = data_key(&plaintext, url)?;
        Ok(Arc::new(Crypter::from_key(&key, url, &format!("{KEY_PREFIX}{}", B64.encode(wrapped)))))
    }

    fn open(&self, info: &SecretsInfo) -> Result<Arc<dyn Cipher>, CryptoError> {
        let url = info.provider.as_str();
        let parsed = KmsUrl::parse(url)?;
        let wrapped = info.salt.strip_prefix(KEY_PREFIX).and_then(|b| B64.decode(b).ok()).ok_or_else(|| {
            CryptoError::Malformed(format!("the wrapped data key recorded for `{url}` is malformed (expected {KEY_PREFIX}<base64>)"))
        })?;
        let plaintext = block_on(async {
            let kms = client(&parsed).await?;
            let out = kms
                .decrypt()
                .key_id(&parsed.key_id)
                .ciphertext_blob(Blob::new(wrapped))
                .send()
                .await
                .map_err(|e| kms_failure(url, "Decrypt", AwsError::from(e)))?;
            Ok::<_, CryptoError>(out.plaintext().map(|b| b.as_ref().to_vec()).unwrap_or_default())
        })?;
        let key = data_key(&plaintext, url)?;
        Ok(Arc::new(Crypter::open_with_key(&key, info, &format!("secrets sealed with `{url}`"))?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let u = KmsUrl::parse("awskms://alias/berth-state?region=eu-west-1").unwrap();
        assert_eq!((u.key_id.as_str(), u.region.as_deref()), ("alias/berth-state", Some("eu-west-1")));
        let u = KmsUrl::parse("awskms:///arn:aws:kms:us-east-2:111122223333:key/abcd").unwrap();
        assert_eq!(u.key_id, "arn:aws:kms:us-east-2:111122223333:key/abcd");
        assert_eq!(u.settings().region.as_deref(), Some("us-east-2"));
        assert!(KmsUrl::parse("awskms://").is_err());
        assert!(KmsUrl::parse("passphrase").is_err());
        assert!(KmsUrl::parse("awskms://k?x=1").is_err());
    }

    #[test]
    fn malformed_wrapped_keys_are_reported_without_calling_kms() {
        let info = SecretsInfo { provider: "awskms://alias/x".into(), salt: "v1:not-a-kms-key".into(), check: "v1:x".into() };
        let err = KmsSecretsProvider.open(&info).err().unwrap().to_string();
        assert!(err.contains("wrapped data key"), "{err}");
    }
}
