//! The `s3://bucket/prefix` state backend (locking by conditional writes) and the `awskms://`
//! secrets provider, on moto.

use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use berth_engine::apply::{ApplyOptions, Silent};
use berth_engine::config::{Node, Source};
use berth_engine::crypto::Keyring;
use berth_engine::ops::{Engine, Operation, RunOptions};
use berth_engine::project::StackSettings;
use berth_engine::registry::ProviderSettings;
use berth_engine::state::{Backend, LockInfo, UnlockOutcome};
use berth_engine::{Output, ProgramResult, Providers, Secret, Stack};
use berth_provider_aws::backend::{S3Backend, S3Location};

use crate::support::*;

async fn state_bucket(aws: &berth_provider_aws::Clients) -> String {
    let bucket = unique("berth-state");
    aws.s3.create_bucket().bucket(&bucket).send().await.expect("CreateBucket");
    bucket
}

async fn remove_bucket(aws: &berth_provider_aws::Clients, bucket: &str) {
    let ctx_urn = berth_engine::Urn::new("test", None, "aws:s3:Bucket", "state").unwrap();
    let ctx = berth_engine::CallContext { urn: &ctx_urn, ty: "aws:s3:Bucket", name: "state", stack: "test", timeout: None };
    berth_provider_aws::s3::delete_all_objects(&aws.s3, &ctx, bucket).await.expect("empty the bucket");
    aws.s3.delete_bucket().bucket(bucket).send().await.expect("DeleteBucket");
}

fn backend(bucket: &str, journal: &std::path::Path) -> S3Backend {
    let location = S3Location::parse(&format!("s3://{bucket}/teams/edxapp")).unwrap();
    let settings = berth_provider_aws::AwsSettings { endpoint: Some(moto_url()), region: Some("us-east-1".into()), ..Default::default() };
    S3Backend::new(location, settings).with_journal_dir(journal)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backend_stores_state_and_locks_with_conditional_writes() {
    let aws = direct().await;
    let bucket = state_bucket(&aws).await;
    let journal = tempfile::tempdir().unwrap();
    let b = backend(&bucket, journal.path());

    // State round trip, with the previous snapshot kept.
    assert_eq!(b.read_state("qa").await.unwrap(), None);
    b.write_state("qa", b"one").await.unwrap();
    b.write_state("qa", b"two").await.unwrap();
    assert_eq!(b.read_state("qa").await.unwrap().as_deref(), Some(&b"two"[..]));
    let backup = aws.s3.get_object().bucket(&bucket).key("teams/edxapp/qa.json.bak").send().await.unwrap();
    assert_eq!(backup.body.collect().await.unwrap().into_bytes().as_ref(), b"one");
    b.write_state("prod", b"p").await.unwrap();
    assert_eq!(b.list_stacks().await.unwrap(), vec!["prod".to_string(), "qa".to_string()]);
    assert_eq!(b.location("qa"), format!("s3://{bucket}/teams/edxapp/qa.json"));
    assert!(b.journal_path("qa").starts_with(journal.path()));

    // One writer: a second lock fails naming the holder; it is the S3 conditional write that
    // refuses (moto honours If-None-Match on PutObject).
    let guard = b.lock("qa", LockInfo::for_this_process("berth stack up")).await.unwrap();
    let err = b.lock("qa", LockInfo::for_this_process("berth stack up")).await.err().unwrap().to_string();
    assert!(err.contains(&format!("pid {}", std::process::id())) && err.contains("berth state unlock qa"), "{err}");
    let other = backend(&bucket, journal.path());
    assert!(other.lock("qa", LockInfo::for_this_process("x")).await.is_err(), "another backend instance is refused too");
    assert!(b.lock("prod", LockInfo::for_this_process("x")).await.is_ok(), "locks are per stack");
    // The holder is alive: unlock refuses without --force.
    assert!(b.unlock("qa", false).await.is_err());
    drop(guard);
    assert!(aws.s3.get_object().bucket(&bucket).key("teams/edxapp/qa.lock").send().await.is_err(), "released on drop");
    let again = b.lock("qa", LockInfo::for_this_process("x")).await.unwrap();
    drop(again);

    // A race: eight writers at once (separate backend instances, as separate machines would
    // be); the conditional write lets exactly one in, which a look-then-write lock would not.
    let racers: Vec<_> = (0..8).map(|_| backend(&bucket, journal.path())).collect();
    let attempts = futures::future::join_all(racers.iter().map(|r| r.lock("race", LockInfo::for_this_process("berth stack up")))).await;
    let (won, lost): (Vec<_>, Vec<_>) = attempts.into_iter().partition(|a| a.is_ok());
    assert_eq!((won.len(), lost.len()), (1, 7), "exactly one writer holds the lock");
    drop(won);

    // A lock left by a process that died is stale: unlock removes it.
    let mut dead = LockInfo::for_this_process("berth stack up");
    dead.pid = u32::MAX / 2;
    let body = serde_json::to_vec(&dead).unwrap();
    aws.s3.put_object().bucket(&bucket).key("teams/edxapp/qa.lock").body(ByteStream::from(body)).send().await.unwrap();
    assert!(b.lock("qa", LockInfo::for_this_process("x")).await.is_err());
    assert!(matches!(b.unlock("qa", false).await.unwrap(), UnlockOutcome::RemovedStale(Some(_))));
    assert_eq!(b.unlock("qa", false).await.unwrap(), UnlockOutcome::NotLocked);
    // One from another machine needs --force.
    let mut remote = LockInfo::for_this_process("berth stack up");
    remote.host = "ci-runner-7".into();
    aws.s3
        .put_object()
        .bucket(&bucket)
        .key("teams/edxapp/qa.lock")
        .body(ByteStream::from(serde_json::to_vec(&remote).unwrap()))
        .send()
        .await
        .unwrap();
    let err = b.unlock("qa", false).await.err().unwrap().to_string();
    assert!(err.contains("another machine") && err.contains("--force"), "{err}");
    assert!(matches!(b.unlock("qa", true).await.unwrap(), UnlockOutcome::ForcedWhileHeld(Some(_))));

    b.delete_state("qa").await.unwrap();
    b.delete_state("prod").await.unwrap();
    assert_eq!(b.list_stacks().await.unwrap(), Vec::<String>::new());
    remove_bucket(&aws, &bucket).await;
}

/// A program with a secret stack output (encrypted in state).
fn with_secret(s: &mut Stack) -> ProgramResult {
    s.export("db_password", &Output::known(Secret::new("kms-protected-value".to_string())).secret());
    s.export("bucket", &Output::known("edxapp-storage".to_string()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_state_in_s3_with_kms_encrypted_secrets() {
    let aws = direct().await;
    let bucket = state_bucket(&aws).await;
    let key = aws.kms.create_key().description("berth state").send().await.unwrap().key_metadata().unwrap().key_id().to_string();
    let alias = format!("alias/{}", unique("berth"));
    aws.kms.create_alias().alias_name(&alias).target_key_id(&key).send().await.unwrap();
    let secrets_url = format!("awskms://{alias}");

    // The backend as the CLI opens it: from the stack file's `backend:` and `providers.aws`.
    let aws_section =
        berth_engine::config::parse_yaml("stacks/qa.yaml", &format!("endpoint: {}\nregion: us-east-1\n", moto_url())).unwrap();
    let settings = StackSettings {
        name: "qa".into(),
        file: "stacks/qa.yaml".into(),
        program: None,
        tier: None,
        backend: Some(format!("s3://{bucket}/berth")),
        secrets: Some(secrets_url.clone()),
        encryption: None,
        providers: [("aws".to_string(), aws_section)].into(),
        config: Node::empty_map(Source::new("stacks/qa.yaml", 1, 1)),
    };
    let factory = berth_provider_aws::backend_factory();
    assert_eq!(factory.scheme(), "s3");
    let opened = factory.open(&format!("s3://{bucket}/berth"), &settings, std::path::Path::new(".")).unwrap();
    let engine = |keyring: Keyring| Engine {
        stack: "qa".into(),
        backend: opened.clone(),
        providers: Arc::new(Providers::from_plugins(&[berth_provider_aws::plugin()], |_| ProviderSettings {
            stack: "qa".into(),
            project_root: ".".into(),
            node: None,
        })),
        keyring: Arc::new(keyring),
    };
    // No passphrase anywhere: KMS protects the secrets.
    let first = engine(Keyring::new(None).with_secrets(Some(&secrets_url), vec![berth_provider_aws::secrets_provider()]));
    let run = RunOptions { parallel: 2, ..RunOptions::default() };
    let (prepared, _) = first.prepare(Operation::Up, Some(&with_secret), None, &run).await.unwrap();
    let executed = first.execute(prepared, &ApplyOptions::default(), Arc::new(Silent)).await.unwrap();
    assert!(executed.report.succeeded());

    let object = aws.s3.get_object().bucket(&bucket).key("berth/qa.json").send().await.unwrap();
    let text = String::from_utf8(object.body.collect().await.unwrap().into_bytes().to_vec()).unwrap();
    assert!(!text.contains("kms-protected-value"), "the secret is encrypted in S3: {text}");
    assert!(text.contains(&secrets_url) && text.contains("edxapp-storage"), "{text}");
    assert!(aws.s3.get_object().bucket(&bucket).key("berth/qa.lock").send().await.is_err(), "the lock was released");

    // Another process (a fresh keyring, nothing cached) reads it back through KMS Decrypt.
    let second = engine(Keyring::new(None).with_secrets(Some(&secrets_url), vec![berth_provider_aws::secrets_provider()]));
    let (state, exists) = second.read_state().await.unwrap();
    assert!(exists);
    assert_eq!(state.outputs["db_password"].as_str(), Some("kms-protected-value"));
    assert!(state.outputs["db_password"].is_secret());

    // Without the KMS provider registered, the state cannot be opened: the error says which.
    let third = engine(Keyring::new(None));
    let err = third.read_state().await.err().unwrap().to_string();
    assert!(err.contains(&secrets_url), "{err}");

    opened.delete_state("qa").await.unwrap();
    remove_bucket(&aws, &bucket).await;
    aws.kms.delete_alias().alias_name(&alias).send().await.unwrap();
    aws.kms.schedule_key_deletion().key_id(&key).pending_window_in_days(7).send().await.unwrap();
}
