//! What every moto test needs: the testbed's address (a missing one fails the test, naming the
//! script to run), unique names, SDK clients straight to moto to check what berth did, and an
//! engine (local state in a temporary directory) whose AWS provider talks through a [`Proxy`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use berth_engine::apply::{ApplyOptions, ApplyReport, Silent};
use berth_engine::config::parse_yaml;
use berth_engine::crypto::Keyring;
use berth_engine::ops::{Engine, Operation, RunOptions};
use berth_engine::registry::ProviderSettings;
use berth_engine::state::LocalBackend;
use berth_engine::{FieldDiff, Op, Options, Plan, Program, ProgramResult, Providers, Resource, Stack, State};
use berth_provider_aws::{AwsSettings, Clients};

pub use super::proxy::Proxy;

/// The moto server `testbed/aws/up.sh` started.
pub fn moto_url() -> String {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "AWS_ENDPOINT_URL is not set: these tests need moto. Run `testbed/aws/up.sh` (or `make testbed`) and load \
             ${{BERTH_CACHE:-$HOME/.cache/berth}}/testbed/aws.env (`set -a; . ~/.cache/berth/testbed/aws.env; set +a`), or run `make test`"
        ),
    }
}

/// `<prefix>-<random>`: names no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).expect("random bytes");
    format!("{prefix}-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// SDK clients that talk to moto directly (not through the proxy): the tests' own eyes.
pub async fn direct() -> Clients {
    let settings =
        AwsSettings { endpoint: Some(moto_url()), region: Some("us-east-1".into()), max_attempts: Some(1), ..AwsSettings::default() };
    Clients::new(&settings).await.expect("SDK clients for moto")
}

/// A VPC with two subnets in two zones, for security groups, subnet groups and databases.
pub struct Network {
    pub vpc: String,
    pub subnets: Vec<String>,
}

pub async fn network(clients: &Clients) -> Network {
    let vpc = clients
        .ec2
        .create_vpc()
        .cidr_block("10.20.0.0/16")
        .send()
        .await
        .expect("CreateVpc")
        .vpc()
        .and_then(|v| v.vpc_id())
        .expect("vpc id")
        .to_string();
    let mut subnets = Vec::new();
    for (cidr, zone) in [("10.20.1.0/24", "us-east-1a"), ("10.20.2.0/24", "us-east-1b")] {
        let subnet = clients.ec2.create_subnet().vpc_id(&vpc).cidr_block(cidr).availability_zone(zone).send().await.expect("CreateSubnet");
        subnets.push(subnet.subnet().and_then(|s| s.subnet_id()).expect("subnet id").to_string());
    }
    Network { vpc, subnets }
}

impl Network {
    pub async fn remove(&self, clients: &Clients) {
        for s in &self.subnets {
            let _ = clients.ec2.delete_subnet().subnet_id(s).send().await;
        }
        let _ = clients.ec2.delete_vpc().vpc_id(&self.vpc).send().await;
    }
}

/// An engine with the `aws` provider (built by its plugin from a stack file section, as the CLI
/// does) pointed at a proxy in front of moto.
pub struct Harness {
    _dir: tempfile::TempDir,
    pub engine: Engine,
    pub proxy: Arc<Proxy>,
}

impl Harness {
    /// `extra` is more YAML for `providers.aws` (e.g. `max_attempts: 1`).
    pub fn new(extra: &str) -> Harness {
        let proxy = Arc::new(Proxy::start(&moto_url()));
        Harness::with_proxy(proxy, extra)
    }

    pub fn with_proxy(proxy: Arc<Proxy>, extra: &str) -> Harness {
        let dir = tempfile::tempdir().expect("temporary directory");
        let attempts = if extra.contains("max_attempts") { "" } else { "max_attempts: 4\n" };
        let yaml = format!("region: us-east-1\nendpoint: {}\npoll_interval: 50ms\nretry_backoff: 10ms\n{attempts}{extra}", proxy.url);
        // A stack name of its own: automatic physical names derive from it.
        let stack = unique("test");
        let node = parse_yaml("stacks/test.yaml", &yaml).expect("provider settings");
        let project = dir.path().to_path_buf();
        let stack_name = stack.clone();
        let providers = Providers::from_plugins(&[berth_provider_aws::plugin()], move |_| ProviderSettings {
            stack: stack_name.clone(),
            project_root: project.clone(),
            node: Some(node.clone()),
        });
        let engine = Engine {
            stack,
            backend: Arc::new(LocalBackend::new(dir.path().join("state"))),
            providers: Arc::new(providers),
            keyring: Arc::new(Keyring::new(Some("test-passphrase".into()))),
        };
        Harness { _dir: dir, engine, proxy }
    }

    fn run(refresh: bool) -> RunOptions {
        RunOptions { parallel: 8, refresh, ..RunOptions::default() }
    }

    pub async fn preview(&self, program: &dyn Program, refresh: bool) -> Plan {
        self.engine.preview(program, None, &Self::run(refresh)).await.unwrap_or_else(|e| panic!("preview failed: {e}")).0
    }

    pub async fn try_preview(&self, program: &dyn Program) -> Result<Plan, String> {
        self.engine.preview(program, None, &Self::run(false)).await.map(|(p, _)| p).map_err(|e| e.to_string())
    }

    /// `stack up --yes`: the plan and the report (None when nothing needed applying).
    pub async fn try_up(&self, program: &dyn Program, refresh: bool) -> Result<(Plan, Option<ApplyReport>), String> {
        let (prepared, _) =
            self.engine.prepare(Operation::Up, Some(program), None, &Self::run(refresh)).await.map_err(|e| e.to_string())?;
        let plan = prepared.plan.clone();
        if !prepared.changes_anything() {
            return Ok((plan, None));
        }
        let executed = self
            .engine
            .execute(prepared, &ApplyOptions { parallel: 8, ..ApplyOptions::default() }, Arc::new(Silent))
            .await
            .map_err(|e| e.to_string())?;
        Ok((plan, Some(executed.report)))
    }

    /// `stack up` that must succeed.
    pub async fn up(&self, program: &dyn Program) -> Plan {
        let (plan, report) = self.try_up(program, false).await.unwrap_or_else(|e| panic!("up failed: {e}"));
        if let Some(report) = report {
            assert!(report.succeeded(), "up failed: {}", failures(&report));
        }
        plan
    }

    pub async fn up_refresh(&self, program: &dyn Program) -> Plan {
        let (plan, report) = self.try_up(program, true).await.unwrap_or_else(|e| panic!("up --refresh failed: {e}"));
        if let Some(report) = report {
            assert!(report.succeeded(), "up failed: {}", failures(&report));
        }
        plan
    }

    /// `stack destroy --yes`, whatever it reports.
    pub async fn try_destroy(&self) -> ApplyReport {
        let (prepared, _) =
            self.engine.prepare(Operation::Destroy, None, None, &Self::run(false)).await.unwrap_or_else(|e| panic!("destroy: {e}"));
        self.engine.execute(prepared, &ApplyOptions::default(), Arc::new(Silent)).await.unwrap_or_else(|e| panic!("destroy: {e}")).report
    }

    pub async fn destroy(&self) -> Plan {
        let (prepared, _) =
            self.engine.prepare(Operation::Destroy, None, None, &Self::run(false)).await.unwrap_or_else(|e| panic!("destroy: {e}"));
        let plan = prepared.plan.clone();
        let executed =
            self.engine.execute(prepared, &ApplyOptions::default(), Arc::new(Silent)).await.unwrap_or_else(|e| panic!("destroy: {e}"));
        assert!(executed.report.succeeded(), "destroy failed: {}", failures(&executed.report));
        plan
    }

    pub async fn state(&self) -> State {
        self.engine.read_state().await.expect("state").0
    }
}

pub fn failures(report: &ApplyReport) -> String {
    report.failures().map(|o| format!("{:?}", o)).collect::<Vec<_>>().join("\n")
}

/// Each step's operation, by logical name.
pub fn ops(plan: &Plan) -> HashMap<String, Op> {
    plan.steps.iter().map(|s| (s.name().to_string(), s.op)).collect()
}

/// Every step's changes and every drift, for assertion messages.
pub fn explain(plan: &Plan) -> String {
    let steps: Vec<String> =
        plan.steps.iter().filter(|s| s.op != Op::Same).map(|s| format!("{} {:?} {:?}", s.name(), s.op, paths(&s.diffs))).collect();
    let drift: Vec<String> = plan
        .drift
        .iter()
        .map(|d| {
            format!(
                "{} drifted {:?}",
                d.urn.name(),
                d.diffs.as_ref().map(|x| x
                    .iter()
                    .map(|f| format!(
                        "{}: {:?} -> {:?}",
                        f.path,
                        f.old.as_ref().map(|v| v.to_json_masked()),
                        f.new.as_ref().map(|v| v.to_json_masked())
                    ))
                    .collect::<Vec<_>>())
            )
        })
        .collect();
    format!("steps: {steps:?}; drift: {drift:?}")
}

/// The changed fields of one step.
pub fn changed(plan: &Plan, name: &str) -> Vec<String> {
    let step = plan.steps.iter().find(|s| s.name() == name).unwrap_or_else(|| panic!("no step for {name}: {:?}", ops(plan)));
    paths(&step.diffs)
}

/// The drifted fields of one resource (after a refresh).
pub fn drifted(plan: &Plan, name: &str) -> Option<Vec<String>> {
    plan.drift.iter().find(|d| d.urn.name() == name).map(|d| d.diffs.as_deref().map(paths).unwrap_or_else(|| vec!["(gone)".into()]))
}

fn paths(diffs: &[FieldDiff]) -> Vec<String> {
    let mut p: Vec<String> = diffs.iter().map(|d| d.path.to_string()).collect();
    p.sort();
    p
}

/// A program of one resource.
pub fn one<R: Resource + Clone>(name: &str, resource: R, options: Options) -> impl Fn(&mut Stack) -> ProgramResult + Send + Sync + 'static {
    let name = name.to_string();
    move |s: &mut Stack| {
        s.register(&name, resource.clone(), options.clone())?;
        Ok(())
    }
}

/// The recorded id and outputs of a resource.
pub fn recorded(state: &State, name: &str) -> (String, serde_json::Value) {
    let r = state.resources.iter().find(|r| r.urn.name() == name).unwrap_or_else(|| panic!("{name} is not in state"));
    (r.id.clone().unwrap_or_default(), r.outputs.to_json_revealed())
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
