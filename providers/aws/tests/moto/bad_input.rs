//! Bad input, per type: `up` fails with a clear error naming the resource, the field and AWS's
//! rule, and not one call reaches AWS (moto would accept most of these silently; AWS would fail
//! in the middle of an apply). `up`, not preview: a preview of new resources calls nothing even
//! for good input, while an `up` of good input does (see the last test).

use berth_engine::{Input, Options, ProgramResult, Resource, Secret, Stack};
use berth_provider_aws::ec2::{Rule, SecurityGroup};
use berth_provider_aws::elasticache::{self, ReplicationGroup};
use berth_provider_aws::iam::{OidcProvider, Policy, Role, RolePolicyAttachment};
use berth_provider_aws::rds::{self, Instance};
use berth_provider_aws::s3::Bucket;

use crate::support::*;

/// `up` of a program of one bad resource; returns the error, after checking that no call reached
/// the proxy (so none reached moto), that nothing was recorded, and that the error names the
/// resource.
async fn rejected<R: Resource + Clone>(resource: R) -> String {
    let h = Harness::new("");
    let program = one("bad", resource, Options::new());
    let err = match h.try_up(&program, false).await {
        Err(e) => e,
        Ok((plan, report)) => {
            let failed = report.as_ref().map(failures).unwrap_or_default();
            if !h.state().await.resources.is_empty() {
                h.destroy().await;
            }
            panic!("bad input must fail `up` before anything is applied; it planned {} and failed with: {failed}", explain(&plan));
        }
    };
    assert!(h.proxy.calls().is_empty(), "no AWS call may be made for bad input: {:?}", h.proxy.calls());
    assert!(h.state().await.resources.is_empty(), "nothing recorded");
    assert!(err.contains(&format!("bad ({})", R::TYPE)), "the error names the resource: {err}");
    err
}

fn contains_all(err: &str, parts: &[&str]) {
    for part in parts {
        assert!(err.contains(part), "`{part}` missing from: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets() {
    let err = rejected(Bucket { bucket: Some("Edxapp_Storage".into()), ..Bucket::default() }).await;
    contains_all(&err, &["bucket", "Edxapp_Storage", "lower-case"]);
    let err = rejected(Bucket {
        bucket: Some("ok-bucket-name".into()),
        policy: Some(Input::Value("{\"Statement\": [".into())),
        ..Bucket::default()
    })
    .await;
    contains_all(&err, &["policy", "not valid JSON"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases() {
    let base = crate::rds::mariadb("edxapp-db");
    let err = rejected(Instance { password: Input::Value(Secret::new("short".into())), allocated_storage: 5, ..base.clone() }).await;
    contains_all(&err, &["password", "8 to 41", "allocated_storage", "20 to 65536"]);
    assert!(!err.contains("short\""), "the password is not echoed: {err}");
    let err = rejected(Instance { identifier: Some("Edxapp--DB".into()), max_allocated_storage: Some(20), ..base.clone() }).await;
    contains_all(&err, &["identifier", "max_allocated_storage"]);
    let err = rejected(rds::ParameterGroup {
        name: None,
        family: "postgres16".into(),
        description: "x".into(),
        parameters: vec![],
        tags: Default::default(),
    })
    .await;
    contains_all(&err, &["family", "postgres16"]);
    let err = rejected(rds::SubnetGroup {
        name: None,
        description: "x".into(),
        subnet_ids: vec![Input::Value("subnet-12345678".into())],
        tags: Default::default(),
    })
    .await;
    contains_all(&err, &["subnet_ids", "at least two subnets"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches() {
    let base = crate::elasticache::valkey("edxapp-redis");
    let err = rejected(ReplicationGroup { transit_encryption_enabled: false, ..base.clone() }).await;
    contains_all(&err, &["auth_token", "transit_encryption_enabled: true"]);
    let err = rejected(ReplicationGroup { auth_token: Some(Input::Value(Secret::new("tooshort".into()))), ..base.clone() }).await;
    contains_all(&err, &["auth_token", "16 to 128"]);
    let err = rejected(ReplicationGroup { num_cache_clusters: 1, ..base.clone() }).await;
    contains_all(&err, &["automatic_failover_enabled", "num_cache_clusters"]);
    let err = rejected(elasticache::ParameterGroup {
        name: Some("x".into()),
        family: "memcached1.6".into(),
        description: "x".into(),
        parameters: Default::default(),
        tags: Default::default(),
    })
    .await;
    contains_all(&err, &["family", "memcached1.6"]);
    let err = rejected(elasticache::SubnetGroup {
        name: Some("UPPER".into()),
        description: "x".into(),
        subnet_ids: vec![Input::Value("sn-1".into())],
        tags: Default::default(),
    })
    .await;
    contains_all(&err, &["name", "subnet_ids"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_groups() {
    let sg = |ingress: Vec<Rule>| SecurityGroup { vpc_id: "vpc-12345678".into(), ingress, ..SecurityGroup::default() };
    let err = rejected(sg(vec![Rule::tcp_from_cidr(3306, "10.0.0.0/33")])).await;
    contains_all(&err, &["ingress[0].cidr_ipv4", "0 to 32"]);
    let err = rejected(sg(vec![Rule::tcp_from_cidr(3306, "10.0.0.1/16")])).await;
    contains_all(&err, &["host bits", "10.0.0.0/16"]);
    let err = rejected(sg(vec![Rule { cidr_ipv4: Some("0.0.0.0/0".into()), ..Rule::tcp_from_group(80, "sg-12345678") }])).await;
    contains_all(&err, &["ingress[0]", "exactly one of"]);
    let err = rejected(SecurityGroup { vpc_id: "my-vpc".into(), ..SecurityGroup::default() }).await;
    contains_all(&err, &["vpc_id", "vpc-"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam() {
    let err = rejected(Role {
        name: Some("edxapp".into()),
        path: "ol".into(),
        assume_role_policy: "{}".into(),
        description: None,
        max_session_duration: 100,
        tags: Default::default(),
    })
    .await;
    contains_all(&err, &["path", "max_session_duration", "3600", "assume_role_policy", "Statement"]);
    let no_principal = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole"}]}"#;
    let err = rejected(Role {
        name: None,
        path: "/".into(),
        assume_role_policy: no_principal.into(),
        description: None,
        max_session_duration: 3600,
        tags: Default::default(),
    })
    .await;
    contains_all(&err, &["assume_role_policy", "Principal"]);
    let err = rejected(Policy {
        name: Some("has space".into()),
        path: "/".into(),
        description: None,
        policy: r#"{"Statement":[{"Effect":"Maybe","Action":"s3:*"}]}"#.into(),
        tags: Default::default(),
    })
    .await;
    contains_all(&err, &["name", "has space", "Effect"]);
    let err = rejected(RolePolicyAttachment { role: "edxapp".into(), policy_arn: "edxapp-policy".into() }).await;
    contains_all(&err, &["policy_arn", "not a managed policy ARN"]);
    let err = rejected(OidcProvider {
        url: "http://issuer.example.com".into(),
        client_id_list: vec![],
        thumbprint_list: vec!["abc".into()],
        tags: Default::default(),
    })
    .await;
    contains_all(&err, &["url", "https://", "client_id_list", "thumbprint_list", "40 hexadecimal"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_problem_of_a_stack_is_reported_at_once() {
    let h = Harness::new("");
    let program = |s: &mut Stack| -> ProgramResult {
        s.register("a", Bucket { bucket: Some("x".into()), ..Bucket::default() }, Options::new())?;
        s.register("b", Instance { password: Input::Value(Secret::new("p".into())), ..crate::rds::mariadb("db") }, Options::new())?;
        Ok(())
    };
    let err = h.try_up(&program, false).await.map(|(plan, _)| explain(&plan)).unwrap_err();
    contains_all(&err, &["a (aws:s3:Bucket)", "b (aws:rds:Instance)", "bucket", "password"]);
    assert!(h.proxy.calls().is_empty(), "{:?}", h.proxy.calls());
}

/// The other side of [`rejected`]: the same `up` of good input does reach moto through the proxy,
/// so the proxy's empty call list above means something.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_up_of_good_input_is_seen_by_the_proxy() {
    let aws = direct().await;
    let h = Harness::new("");
    let name = unique("berth-good");
    h.up(&one("good", Bucket { bucket: Some(name.clone()), ..Bucket::default() }, Options::new())).await;
    // CreateBucket: a PUT of the bucket's root (`/<name>/` in the path style used with moto).
    let create = format!("s3 PUT /{name}");
    assert!(h.proxy.mutating_calls().iter().any(|c| c.trim_end_matches('/') == create), "CreateBucket seen: {:?}", h.proxy.calls());
    assert!(aws.s3.head_bucket().bucket(&name).send().await.is_ok(), "it reached moto");
    h.destroy().await;
    assert!(aws.s3.head_bucket().bucket(&name).send().await.is_err());
}
