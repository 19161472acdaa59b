//! The edxapp stack program: Open edX (LMS and Studio, their Celery workers, migrations and
//! configuration) on Kubernetes with its AWS backing services and Vault secrets, composed from
//! the components in this module. `docs/edxapp.md` describes what each component makes.

pub mod adopt;
pub mod aws;
pub mod bundle;
pub mod checks;
pub mod config;
pub mod configuration;
pub mod extras;
pub mod identity;
pub mod ingress;
pub mod kube;
pub mod vault;
pub mod workloads;

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_engine::{Input, Output, ProgramResult, Stack};

use crate::edxapp::config::{Cluster, Edxapp, Network, Source, StackConfig};

/// The two Open edX services.
pub const SERVICES: [Service; 2] = [Service::Lms, Service::Cms];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Lms,
    Cms,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Lms => "lms",
            Service::Cms => "cms",
        }
    }
}

/// Network values, known now or from the network stack's outputs.
pub struct NetworkValues {
    pub vpc_id: Output<String>,
    pub vpc_cidr: Output<String>,
    /// One input per subnet; a single unknown while the network stack has no state (preview).
    pub subnet_ids: Vec<Input<String>>,
    /// Known only once the network stack has state (else empty in a preview).
    pub pod_cidrs: Vec<String>,
}

/// Cluster values, known now or from the cluster stack's outputs.
pub struct ClusterValues {
    pub name: Output<String>,
    pub oidc_issuer: Output<String>,
    pub oidc_provider_arn: Output<String>,
    pub vault_auth_mount: Output<String>,
    pub vault_address: Output<String>,
}

/// What every component needs: the configuration, derived names, and the network and cluster.
pub struct Ctx {
    pub config: Edxapp,
    /// `<deployment>-<environment>`: the stem of AWS names.
    pub env_name: String,
    /// The deployment: the stem of Vault paths (each environment has its own Vault).
    pub prefix: String,
    pub namespace: String,
    /// `files/edxapp/<deployment>/`.
    pub files_dir: PathBuf,
    /// `files/edxapp/`.
    pub shared_files_dir: PathBuf,
    pub network: NetworkValues,
    pub cluster: ClusterValues,
}

impl Ctx {
    /// Labels every object carries; `component` tells the workloads apart.
    pub fn labels(&self, component: &str) -> BTreeMap<String, String> {
        [
            ("app.kubernetes.io/name", "edxapp".to_string()),
            ("app.kubernetes.io/instance", self.env_name.clone()),
            ("app.kubernetes.io/component", component.to_string()),
            ("app.kubernetes.io/managed-by", "berth".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The selector labels of one workload (unique per workload).
    pub fn selector(&self, component: &str) -> BTreeMap<String, String> {
        self.labels(component).into_iter().filter(|(k, _)| k != "app.kubernetes.io/managed-by").collect()
    }

    /// AWS tags every resource carries.
    pub fn tags(&self) -> BTreeMap<String, String> {
        [("application", "edxapp"), ("deployment", self.config.deployment.as_str()), ("environment", self.config.environment.as_str())]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

fn network_values(stack: &mut Stack, source: &Source<Network>) -> Result<NetworkValues, Box<dyn std::error::Error + Send + Sync>> {
    Ok(match source {
        Source::Inline(n) => NetworkValues {
            vpc_id: Output::known(n.vpc_id.clone()),
            vpc_cidr: Output::known(n.vpc_cidr.clone()),
            subnet_ids: n.subnet_ids.iter().map(|s| Input::Value(s.clone())).collect(),
            pod_cidrs: n.pod_cidrs.clone(),
        },
        Source::Stack { stack: name } => {
            let reference = stack.reference(name)?;
            NetworkValues {
                vpc_id: reference.output("vpc_id")?,
                vpc_cidr: reference.output("vpc_cidr")?,
                subnet_ids: match reference.value::<Vec<String>>("subnet_ids")? {
                    Some(ids) => ids.into_iter().map(Input::Value).collect(),
                    None => vec![Input::Unknown],
                },
                pod_cidrs: reference.value::<Vec<String>>("pod_cidrs")?.unwrap_or_default(),
            }
        }
    })
}

fn cluster_values(
    stack: &mut Stack,
    source: &Source<Cluster>,
    namespace: &str,
) -> Result<ClusterValues, Box<dyn std::error::Error + Send + Sync>> {
    let check_namespace = |namespaces: &[String], from: &str| {
        if namespaces.iter().any(|n| n == namespace) {
            Ok(())
        } else {
            Err(format!(
                "namespace `{namespace}` is not one the cluster offers ({from}: {}); set config.edxapp.namespace or add it to the cluster",
                namespaces.join(", ")
            ))
        }
    };
    Ok(match source {
        Source::Inline(c) => {
            check_namespace(&c.namespaces, "config.cluster.namespaces")?;
            ClusterValues {
                name: Output::known(c.name.clone()),
                oidc_issuer: Output::known(c.oidc_issuer.clone()),
                oidc_provider_arn: Output::known(c.oidc_provider_arn.clone()),
                vault_auth_mount: Output::known(c.vault_auth_mount.clone()),
                vault_address: Output::known(c.vault_address.clone()),
            }
        }
        Source::Stack { stack: name } => {
            let reference = stack.reference(name)?;
            if let Some(namespaces) = reference.value::<Vec<String>>("namespaces")? {
                check_namespace(&namespaces, &format!("outputs of stack {name}"))?;
            }
            ClusterValues {
                name: reference.output("name")?,
                oidc_issuer: reference.output("oidc_issuer")?,
                oidc_provider_arn: reference.output("oidc_provider_arn")?,
                vault_auth_mount: reference.output("vault_auth_mount")?,
                vault_address: reference.output("vault_address")?,
            }
        }
    })
}

/// The program.
pub fn edxapp(stack: &mut Stack) -> ProgramResult {
    let config: StackConfig = stack.config()?;
    let edxapp = config.edxapp;
    if let Some(problem) = edxapp.image.digest_problem() {
        return Err(format!("config.edxapp.image.digest: {problem}; deployments are by digest, never by tag").into());
    }
    let env_name = format!("{}-{}", edxapp.deployment, edxapp.environment.as_str());
    let namespace = edxapp.namespace.clone().unwrap_or_else(|| format!("{}-openedx", edxapp.deployment));
    let files = edxapp.config_files.clone().unwrap_or_else(|| edxapp.deployment.clone());
    let shared_files_dir = stack.project_dir().join("files/edxapp");
    let files_dir = shared_files_dir.join(&files);
    if !files_dir.is_dir() {
        return Err(format!(
            "config.edxapp: no static configuration in {} (set config_files to one of the directories in files/edxapp/)",
            files_dir.display()
        )
        .into());
    }
    let network = network_values(stack, &config.network)?;
    let cluster = cluster_values(stack, &config.cluster, &namespace)?;
    let ctx = Ctx { prefix: edxapp.deployment.clone(), config: edxapp, env_name, namespace, files_dir, shared_files_dir, network, cluster };

    let buckets = aws::buckets(stack, &ctx)?;
    let groups = aws::security_groups(stack, &ctx)?;
    let database = aws::database(stack, &ctx, &groups)?;
    let cache = aws::cache(stack, &ctx, &groups)?;
    let secrets = vault::secrets(stack, &ctx, &database, &cache)?;
    let identity = identity::trust_role(stack, &ctx, &buckets, &secrets)?;
    let bundles = configuration::bundle(stack, &ctx, &buckets, &database, &cache, &secrets, &identity)?;
    let jobs = workloads::pre_deploy_jobs(stack, &ctx, &identity, &bundles)?;
    let mut pairs = workloads::webapp_pairs(stack, &ctx, &identity, &bundles, &jobs, &cache, &groups)?;
    ingress::routes(stack, &ctx, &pairs)?;
    extras::register(stack, &ctx, &mut pairs.workloads)?;
    pairs.workloads.check()?;

    stack.export("database_address", &database.address);
    stack.export("cache_address", &cache.address);
    stack.export("buckets", &Output::known(buckets.names.clone()));
    stack.export("pod_security_group", &groups.pods);
    stack.export("role_arn", &identity.role_arn);
    stack.export_value("lms_url", format!("https://{}", ctx.config.domains.lms));
    stack.export_value("studio_url", format!("https://{}", ctx.config.domains.studio));
    stack.export_value("namespace", &ctx.namespace);
    stack.export_value("pre_deploy_jobs", jobs.names.clone());
    Ok(())
}

/// The first `bytes` bytes of `data`'s SHA-256, in hex: names and annotations that change
/// exactly when what they stand for does (a Job's pod template, a service's configuration).
pub(crate) fn short_hash(data: &[u8], bytes: usize) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data).iter().take(bytes).map(|b| format!("{b:02x}")).collect()
}
