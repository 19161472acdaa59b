//! Provider settings (`providers.aws` in a stack file) and the SDK clients built from them.
//!
//! Building a provider never calls an API: the SDK configuration (credential chain, region,
//! endpoint) is loaded the first time a resource needs a client, so an offline preview of a stack
//! whose resources are all recorded in state needs neither network nor credentials.

use std::future::Future;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use berth_engine::ProviderError;
use serde::{Deserialize, Serialize};

/// The standard variable the SDK reads for a custom endpoint (moto, LocalStack, a VPC endpoint).
pub const ENDPOINT_ENV: &str = "AWS_ENDPOINT_URL";

/// Default number of attempts per API call (the first try included) on throttling and 5xx.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
/// Default first back-off between attempts; it grows exponentially (with jitter) up to 20 s.
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_secs(1);
/// Default pause between status polls while awaiting RDS and ElastiCache.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// `providers.aws` in a stack file. Every field is optional; the standard AWS environment
/// (`AWS_REGION`, `AWS_PROFILE`, `AWS_ENDPOINT_URL`, credentials chain) fills the rest.
///
/// ```yaml
/// providers:
///   aws:
///     region: us-east-1
///     endpoint: http://127.0.0.1:5599   # else AWS_ENDPOINT_URL; S3 then uses path-style URLs
///     profile: deploy
///     max_attempts: 8                   # per call, on throttling and 5xx
///     retry_backoff: 1s                 # first back-off; grows exponentially
///     poll_interval: 10s                # between status polls while awaiting RDS/ElastiCache
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_backoff: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<String>,
}

fn parse_duration(key: &str, text: &Option<String>, default: Duration) -> Result<Duration, String> {
    match text {
        None => Ok(default),
        Some(t) => {
            humantime::parse_duration(t).map_err(|e| format!("`{key}`: `{t}` is not a duration ({e}); write e.g. `500ms`, `10s`, `2m`"))
        }
    }
}

impl AwsSettings {
    /// Checks the values that can be checked without calling anything.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(0) = self.max_attempts {
            return Err("`max_attempts` must be at least 1 (1 means no retries)".into());
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(format!("`endpoint`: `{endpoint}` must be a URL starting with http:// or https://"));
        }
        self.retry_backoff()?;
        self.poll_interval()?;
        Ok(())
    }

    pub fn retry_backoff(&self) -> Result<Duration, String> {
        parse_duration("retry_backoff", &self.retry_backoff, DEFAULT_RETRY_BACKOFF)
    }

    pub fn poll_interval(&self) -> Result<Duration, String> {
        parse_duration("poll_interval", &self.poll_interval, DEFAULT_POLL_INTERVAL)
    }

    /// The endpoint in use: the setting, else `AWS_ENDPOINT_URL`.
    pub fn effective_endpoint(&self) -> Option<String> {
        self.endpoint.clone().or_else(|| std::env::var(ENDPOINT_ENV).ok().filter(|e| !e.is_empty()))
    }

    /// Loads the SDK configuration: the standard credential chain, this region and endpoint.
    /// Loading resolves nothing over the network; credentials are fetched on the first call.
    pub async fn load(&self) -> Result<SdkConfig, ProviderError> {
        self.validate().map_err(|e| ProviderError::other(format!("providers.aws: {e}")))?;
        let retry = RetryConfig::standard()
            .with_max_attempts(self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS))
            .with_initial_backoff(self.retry_backoff().unwrap_or(DEFAULT_RETRY_BACKOFF));
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(retry);
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(profile) = &self.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let config = loader.load().await;
        if config.region().is_none() {
            return Err(ProviderError::other(
                "no AWS region is configured: set `providers.aws.region` in the stack file, or AWS_REGION in the environment",
            ));
        }
        Ok(config)
    }
}

/// One SDK client per service, sharing one configuration.
#[derive(Clone, Debug)]
pub struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub rds: aws_sdk_rds::Client,
    pub elasticache: aws_sdk_elasticache::Client,
    pub iam: aws_sdk_iam::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub kms: aws_sdk_kms::Client,
    pub region: String,
    pub poll_interval: Duration,
}

impl Clients {
    pub async fn new(settings: &AwsSettings) -> Result<Clients, ProviderError> {
        let config = settings.load().await?;
        Ok(Clients::from_config(&config, settings))
    }

    pub fn from_config(config: &SdkConfig, settings: &AwsSettings) -> Clients {
        Clients {
            s3: s3_client(config, settings),
            rds: aws_sdk_rds::Client::new(config),
            elasticache: aws_sdk_elasticache::Client::new(config),
            iam: aws_sdk_iam::Client::new(config),
            ec2: aws_sdk_ec2::Client::new(config),
            kms: aws_sdk_kms::Client::new(config),
            region: config.region().map(|r| r.to_string()).unwrap_or_default(),
            poll_interval: settings.poll_interval().unwrap_or(DEFAULT_POLL_INTERVAL),
        }
    }
}

/// S3 with path-style addressing when an endpoint is set (emulators and private endpoints do not
/// resolve `<bucket>.<host>` names).
pub fn s3_client(config: &SdkConfig, settings: &AwsSettings) -> aws_sdk_s3::Client {
    let path_style = settings.effective_endpoint().is_some();
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(config).force_path_style(path_style).build())
}

/// The clients of one provider instance, created on first use.
#[derive(Debug)]
pub struct Aws {
    pub settings: AwsSettings,
    clients: tokio::sync::OnceCell<Clients>,
}

impl Aws {
    pub fn new(settings: AwsSettings) -> Aws {
        Aws { settings, clients: tokio::sync::OnceCell::new() }
    }

    pub async fn clients(&self) -> Result<&Clients, ProviderError> {
        self.clients.get_or_try_init(|| Clients::new(&self.settings)).await
    }
}

/// Runs a future to completion from synchronous code (the engine's `Keyring` and a lock guard's
/// `drop` are synchronous): on a multi-threaded runtime the current worker blocks in place;
/// elsewhere a helper thread runs it on a runtime of its own.
pub fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| handle.block_on(future))
        }
        _ => std::thread::scope(|scope| {
            scope
                .spawn(|| match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => Ok(runtime.block_on(future)),
                    Err(e) => Err(e),
                })
                .join()
        })
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        .unwrap_or_else(|e| panic!("cannot start a tokio runtime to call AWS: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_attempts_are_validated() {
        let ok = AwsSettings { poll_interval: Some("250ms".into()), retry_backoff: Some("2s".into()), ..AwsSettings::default() };
        assert!(ok.validate().is_ok());
        assert_eq!(ok.poll_interval().unwrap(), Duration::from_millis(250));
        let bad = AwsSettings { poll_interval: Some("often".into()), ..AwsSettings::default() };
        assert!(bad.validate().unwrap_err().contains("poll_interval"));
        let zero = AwsSettings { max_attempts: Some(0), ..AwsSettings::default() };
        assert!(zero.validate().unwrap_err().contains("max_attempts"));
        let endpoint = AwsSettings { endpoint: Some("127.0.0.1:5599".into()), ..AwsSettings::default() };
        assert!(endpoint.validate().unwrap_err().contains("http://"));
    }

    #[test]
    fn block_on_works_with_and_without_a_runtime() {
        assert_eq!(block_on(async { 1 + 1 }), 2);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        assert_eq!(rt.block_on(async { block_on(async { 3 }) }), 3);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        assert_eq!(rt.block_on(async { block_on(async { 4 }) }), 4);
    }
}
