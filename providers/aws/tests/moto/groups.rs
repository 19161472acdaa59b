//! The supporting types on their own: RDS and ElastiCache subnet and parameter groups, and OIDC
//! providers — update in place, drift made by hand, replacement.

use aws_sdk_elasticache::types::ParameterNameValue;
use berth_engine::{Input, Op, Options, ProgramResult, Stack};
use berth_provider_aws::iam::OidcProvider;
use berth_provider_aws::{elasticache, rds};

use crate::support::*;

struct Spec {
    suffix: &'static str,
    description: &'static str,
    family: &'static str,
    url: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_and_oidc_update_drift_and_replace() {
    let aws = direct().await;
    let net = network(&aws).await;
    let h = Harness::new("");
    let base = unique("grp");
    let program = |spec: Spec| {
        let (subnets, base) = (net.subnets.clone(), base.clone());
        move |s: &mut Stack| -> ProgramResult {
            let subnet_ids = || subnets.iter().map(|x| Input::Value(x.clone())).collect::<Vec<_>>();
            let name = |kind: &str| format!("{base}-{kind}{}", spec.suffix);
            s.register(
                "db-subnets",
                rds::SubnetGroup {
                    name: Some(name("dbsn")),
                    description: spec.description.into(),
                    subnet_ids: subnet_ids(),
                    tags: Default::default(),
                },
                Options::new(),
            )?;
            s.register(
                "cache-subnets",
                elasticache::SubnetGroup {
                    name: Some(name("csn")),
                    description: spec.description.into(),
                    subnet_ids: subnet_ids(),
                    tags: Default::default(),
                },
                Options::new(),
            )?;
            s.register(
                "cache-params",
                elasticache::ParameterGroup {
                    name: Some(name("cpg")),
                    family: spec.family.into(),
                    description: "x".into(),
                    parameters: [("timeout".to_string(), "300".to_string())].into(),
                    tags: Default::default(),
                },
                Options::new(),
            )?;
            s.register(
                "oidc",
                OidcProvider {
                    url: spec.url.clone().into(),
                    client_id_list: vec!["sts.amazonaws.com".into()],
                    thumbprint_list: vec!["9e99a48a9960b14926bb7f3b02e22da2b0ab7280".into()],
                    tags: Default::default(),
                },
                Options::new(),
            )?;
            Ok(())
        }
    };
    let url = |n: u8| format!("https://oidc.example.com/{base}/{n}");
    let v1 = || Spec { suffix: "", description: "one", family: "valkey7", url: url(1) };
    h.up(&program(v1())).await;

    // Update in place: the subnet groups' descriptions.
    let plan = h.up(&program(Spec { description: "two", ..v1() })).await;
    assert_eq!((ops(&plan)["db-subnets"], ops(&plan)["cache-subnets"]), (Op::Update, Op::Update), "{}", explain(&plan));
    let db = aws.rds.describe_db_subnet_groups().db_subnet_group_name(format!("{base}-dbsn")).send().await.unwrap();
    assert_eq!(db.db_subnet_groups()[0].db_subnet_group_description(), Some("two"));

    // Drift made by hand: the subnet groups' descriptions (and one subnet of the cache subnet
    // group's two dropped: the later of them, sorted, as berth lists them), a cache parameter,
    // the OIDC thumbprints.
    aws.rds
        .modify_db_subnet_group()
        .db_subnet_group_name(format!("{base}-dbsn"))
        .db_subnet_group_description("by hand")
        .set_subnet_ids(Some(net.subnets.clone()))
        .send()
        .await
        .unwrap();
    let mut sorted_subnets = net.subnets.clone();
    sorted_subnets.sort();
    aws.elasticache
        .modify_cache_subnet_group()
        .cache_subnet_group_name(format!("{base}-csn"))
        .cache_subnet_group_description("by hand")
        .subnet_ids(&sorted_subnets[0])
        .send()
        .await
        .unwrap();
    let param = ParameterNameValue::builder().parameter_name("timeout").parameter_value("0").build();
    aws.elasticache
        .modify_cache_parameter_group()
        .cache_parameter_group_name(format!("{base}-cpg"))
        .parameter_name_values(param)
        .send()
        .await
        .unwrap();
    let (oidc_arn, _) = recorded(&h.state().await, "oidc");
    aws.iam
        .update_open_id_connect_provider_thumbprint()
        .open_id_connect_provider_arn(&oidc_arn)
        .thumbprint_list("a".repeat(40))
        .send()
        .await
        .unwrap();
    let plan = h.preview(&program(Spec { description: "two", ..v1() }), true).await;
    assert_eq!(drifted(&plan, "db-subnets"), Some(vec!["description".to_string()]));
    assert_eq!(drifted(&plan, "cache-params"), Some(vec!["parameters.timeout".to_string()]));
    assert_eq!(drifted(&plan, "oidc"), Some(vec!["thumbprint_list[0]".to_string()]));
    assert_eq!(drifted(&plan, "cache-subnets"), Some(vec!["description".to_string(), "subnet_ids[1]".to_string()]), "{}", explain(&plan));
    assert_eq!(changed(&plan, "cache-subnets"), vec!["description", "subnet_ids[1]"]);
    h.up_refresh(&program(Spec { description: "two", ..v1() })).await;
    let cache = aws.elasticache.describe_cache_subnet_groups().cache_subnet_group_name(format!("{base}-csn")).send().await.unwrap();
    let cache = &cache.cache_subnet_groups()[0];
    let mut live: Vec<&str> = cache.subnets().iter().filter_map(|s| s.subnet_identifier()).collect();
    live.sort();
    assert_eq!(
        (cache.cache_subnet_group_description(), live),
        (Some("two"), sorted_subnets.iter().map(String::as_str).collect()),
        "drift put right"
    );
    let params =
        aws.elasticache.describe_cache_parameters().cache_parameter_group_name(format!("{base}-cpg")).source("user").send().await.unwrap();
    assert_eq!(params.parameters()[0].parameter_value(), Some("300"), "drift put right");

    // Replace: new names, a new family, a new issuer URL.
    let plan = h.up(&program(Spec { suffix: "-b", description: "two", family: "valkey8", url: url(2) })).await;
    for name in ["db-subnets", "cache-subnets", "cache-params", "oidc"] {
        assert_eq!(ops(&plan)[name], Op::Replace, "{name}: {}", explain(&plan));
    }
    assert!(aws.rds.describe_db_subnet_groups().db_subnet_group_name(format!("{base}-dbsn")).send().await.is_err(), "old group deleted");
    assert!(aws.rds.describe_db_subnet_groups().db_subnet_group_name(format!("{base}-dbsn-b")).send().await.is_ok());
    assert!(aws.iam.get_open_id_connect_provider().open_id_connect_provider_arn(&oidc_arn).send().await.is_err(), "old provider deleted");

    h.destroy().await;
    assert!(aws.elasticache.describe_cache_parameter_groups().cache_parameter_group_name(format!("{base}-cpg-b")).send().await.is_err());
    net.remove(&aws).await;
}
