//! `aws:s3:Bucket`: create, read back, update, replace, drift, import, delete.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, Tag, Tagging, VersioningConfiguration};
use berth_engine::{Input, Op, Options};
use berth_provider_aws::s3::{Bucket, CorsRule, Encryption, Ownership, PublicAccessBlock, SseAlgorithm, Versioning};

use crate::support::*;

fn policy(bucket: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"Read","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::123456789012:root"}},"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::{bucket}/media/*"]}}]}}"#
    )
}

/// The same policy written differently: keys reordered, one-element lists as strings.
fn policy_rewritten(bucket: &str) -> String {
    format!(
        r#"{{"Statement":{{"Resource":"arn:aws:s3:::{bucket}/media/*","Principal":{{"AWS":["arn:aws:iam::123456789012:root"]}},"Effect":"Allow","Action":"s3:GetObject","Sid":"Read"}},"Version":"2012-10-17"}}"#
    )
}

fn bucket(name: &str) -> Bucket {
    Bucket {
        bucket: Some(name.into()),
        force_destroy: true,
        versioning: Some(Versioning::Enabled),
        server_side_encryption: Some(Encryption { algorithm: SseAlgorithm::Aes256, ..Encryption::default() }),
        public_access_block: Some(PublicAccessBlock::all()),
        policy: Some(Input::Value(policy(name))),
        cors_rules: Some(vec![CorsRule {
            allowed_methods: vec!["GET".into()],
            allowed_origins: vec!["https://lms.example.com".into()],
            max_age_seconds: Some(3000),
            ..CorsRule::default()
        }]),
        ownership: Some(Ownership::BucketOwnerEnforced),
        tags: [("env".to_string(), "ci".to_string()), ("app".to_string(), "edxapp".to_string())].into(),
    }
}

async fn versioning(s3: &aws_sdk_s3::Client, name: &str) -> Option<BucketVersioningStatus> {
    s3.get_bucket_versioning().bucket(name).send().await.expect("GetBucketVersioning").status().cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_lifecycle() {
    let aws = direct().await;
    let h = Harness::new("");
    let name = unique("berth-bkt");
    let v1 = bucket(&name);

    // Create, and read back with the SDK.
    let plan = h.up(&one("storage", v1.clone(), Options::new())).await;
    assert_eq!(ops(&plan)["storage"], Op::Create);
    assert_eq!(versioning(&aws.s3, &name).await, Some(BucketVersioningStatus::Enabled));
    let tags = aws.s3.get_bucket_tagging().bucket(&name).send().await.expect("tags");
    assert_eq!(tags.tag_set().len(), 2);
    let cors = aws.s3.get_bucket_cors().bucket(&name).send().await.expect("cors");
    assert_eq!(cors.cors_rules()[0].allowed_origins(), ["https://lms.example.com"]);
    let live_policy = aws.s3.get_bucket_policy().bucket(&name).send().await.expect("policy").policy().unwrap_or_default().to_string();
    assert!(berth_provider_aws::policy::equivalent(&live_policy, &policy(&name)));
    let (id, outputs) = recorded(&h.state().await, "storage");
    assert_eq!(id, name);
    assert_eq!(outputs["arn"], format!("arn:aws:s3:::{name}"));

    // No-op: nothing to do, no mutating call; the same policy written differently is no change.
    h.proxy.clear_calls();
    let plan = h.up(&one("storage", v1.clone(), Options::new())).await;
    assert_eq!(ops(&plan)["storage"], Op::Same);
    let rewritten = Bucket { policy: Some(Input::Value(policy_rewritten(&name))), ..v1.clone() };
    assert_eq!(ops(&h.preview(&one("storage", rewritten, Options::new()), true).await)["storage"], Op::Same, "policy compared by meaning");
    assert!(h.proxy.mutating_calls().is_empty(), "{:?}", h.proxy.mutating_calls());

    // Update in place: versioning suspended, a tag changed, CORS removed.
    let v2 = Bucket {
        versioning: Some(Versioning::Suspended),
        cors_rules: Some(vec![]),
        tags: [("env".to_string(), "qa".to_string())].into(),
        ..v1.clone()
    };
    let plan = h.up(&one("storage", v2.clone(), Options::new())).await;
    assert_eq!(ops(&plan)["storage"], Op::Update);
    assert_eq!(changed(&plan, "storage"), vec!["cors_rules[0]", "tags.app", "tags.env", "versioning"]);
    assert_eq!(versioning(&aws.s3, &name).await, Some(BucketVersioningStatus::Suspended));
    assert!(aws.s3.get_bucket_cors().bucket(&name).send().await.is_err(), "CORS removed");

    // Drift made with another client: a tag and versioning. A refreshing preview shows exactly those.
    let tagging = Tagging::builder().tag_set(Tag::builder().key("env").value("hand-edited").build().unwrap()).build().unwrap();
    aws.s3.put_bucket_tagging().bucket(&name).tagging(tagging).send().await.unwrap();
    let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    aws.s3.put_bucket_versioning().bucket(&name).versioning_configuration(enabled).send().await.unwrap();
    let plan = h.preview(&one("storage", v2.clone(), Options::new()), true).await;
    assert_eq!(drifted(&plan, "storage"), Some(vec!["tags.env".to_string(), "versioning".to_string()]));
    assert_eq!(ops(&plan)["storage"], Op::Update);
    h.up_refresh(&one("storage", v2.clone(), Options::new())).await;
    assert_eq!(versioning(&aws.s3, &name).await, Some(BucketVersioningStatus::Suspended), "drift put right");

    // Import by id into a fresh stack: a program describing the bucket adopts it with no change.
    // (`force_destroy` exists only in berth; an import cannot tell unmanaged CORS from none; and
    // settings equal to AWS's defaults for every new bucket read as unset, so that importing
    // never deletes them.)
    let fresh = Harness::new("");
    let described = Bucket {
        force_destroy: false,
        cors_rules: None,
        server_side_encryption: None,
        public_access_block: None,
        ownership: None,
        ..v2.clone()
    };
    let import = one("storage", described, Options::new().import(&name));
    let plan = fresh.preview(&import, false).await;
    assert_eq!(ops(&plan)["storage"], Op::Import);
    assert!(changed(&plan, "storage").is_empty(), "{:?}", changed(&plan, "storage"));
    // `up` records it without changing anything in AWS; then the state holds it: a preview (and
    // a refreshing one) has nothing to do.
    fresh.proxy.clear_calls();
    fresh.up(&import).await;
    assert!(fresh.proxy.mutating_calls().is_empty(), "{:?}", fresh.proxy.mutating_calls());
    let (imported_id, imported_out) = recorded(&fresh.state().await, "storage");
    assert_eq!((imported_id.as_str(), imported_out["arn"].as_str()), (name.as_str(), Some(format!("arn:aws:s3:::{name}").as_str())));
    for refresh in [false, true] {
        let plan = fresh.preview(&import, refresh).await;
        assert!(plan.steps.iter().all(|s| s.op == Op::Same) && plan.drift.is_empty(), "refresh {refresh}: {}", explain(&plan));
    }

    // Replace: a new name creates the new bucket, then deletes the old one (with its objects).
    aws.s3.put_object().bucket(&name).key("media/a.txt").body(ByteStream::from_static(b"a")).send().await.unwrap();
    let renamed = unique("berth-bkt");
    let v3 = Bucket { bucket: Some(renamed.clone()), policy: Some(Input::Value(policy(&renamed))), ..v2.clone() };
    let plan = h.up(&one("storage", v3, Options::new())).await;
    assert_eq!(ops(&plan)["storage"], Op::Replace);
    assert!(aws.s3.head_bucket().bucket(&name).send().await.is_err(), "old bucket deleted");
    assert!(aws.s3.head_bucket().bucket(&renamed).send().await.is_ok());

    // Delete: gone, and gone from state.
    h.destroy().await;
    assert!(aws.s3.head_bucket().bucket(&renamed).send().await.is_err());
    assert!(h.state().await.resources.is_empty());

    // A public policy on a bucket that blocks public policies (AWS's default) gets a warning in
    // the plan: AWS would refuse it, though moto accepts it.
    let public = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::x/*"}]}"#;
    let plan = h
        .preview(
            &one(
                "public",
                Bucket { bucket: Some(unique("berth-pub")), policy: Some(Input::Value(public.into())), ..Bucket::default() },
                Options::new(),
            ),
            false,
        )
        .await;
    let notes = &plan.steps.iter().find(|s| s.name() == "public").unwrap().notes;
    assert!(notes.iter().any(|n| n.contains("AWS will refuse") && n.contains("block_public_policy: false")), "{notes:?}");

    // Refresh of a bucket deleted outside berth: removed from state, preview shows it recreated.
    let h2 = Harness::new("");
    let gone = unique("berth-bkt");
    let program = one("gone", Bucket { bucket: Some(gone.clone()), ..Bucket::default() }, Options::new());
    h2.up(&program).await;
    aws.s3.delete_bucket().bucket(&gone).send().await.unwrap();
    let plan = h2.preview(&program, true).await;
    assert_eq!(drifted(&plan, "gone"), Some(vec!["(gone)".to_string()]));
    assert_eq!(ops(&plan)["gone"], Op::Create);
}
