//! The `cluster` stack program: what a Kubernetes cluster offers its applications, exported
//! under the names the edxapp stacks read (`name`, `namespaces`, `oidc_issuer`,
//! `oidc_provider_arn`, `vault_auth_mount`, `vault_address`): the application namespaces, the
//! operators' custom resource definitions, the cluster's IAM OIDC provider (for IRSA), and
//! Vault's kubernetes auth method for it. Real environments have their own cluster stacks; the
//! testbed uses this one (`stacks/cluster.local.yaml`).

use berth_engine::{Input, Options, ProgramResult, Stack};
use berth_provider_aws::iam::OidcProvider;
use berth_provider_kubernetes::Namespace;
use berth_provider_kubernetes::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use berth_provider_vault::{AuthBackend, KubernetesAuthConfig};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub name: String,
    /// Namespaces to create for applications.
    pub namespaces: Vec<String>,
    /// The service-account token issuer, without `https://`.
    pub oidc_issuer: String,
    /// The certificate thumbprint of the issuer (40 hex digits).
    pub oidc_thumbprint: String,
    /// The API server as Vault reaches it.
    pub kubernetes_host: String,
    /// A PEM file (relative to the project, or absolute) with the API server's CA, for Vault.
    #[serde(default)]
    pub kubernetes_ca_file: Option<String>,
    /// Give Vault the CA that the kubeconfig (KUBECONFIG's current context) trusts for the API
    /// server, when no `kubernetes_ca_file` is set: for clusters berth reaches directly.
    #[serde(default)]
    pub kubernetes_ca_from_kubeconfig: bool,
    /// Where Vault's kubernetes auth method for this cluster is enabled.
    pub vault_auth_mount: String,
    /// The Vault address pods use.
    pub vault_address: String,
    /// Files (relative to the project) of custom resource definitions to install: the
    /// operators' (KEDA, Vault Secrets Operator, Gateway API, cert-manager).
    #[serde(default)]
    pub crd_files: Vec<String>,
}

pub fn cluster(stack: &mut Stack) -> ProgramResult {
    let config: ClusterConfig = stack.config()?;
    for namespace in &config.namespaces {
        let metadata = ObjectMeta { name: Some(namespace.clone()), ..ObjectMeta::default() };
        stack.register(namespace, Namespace { metadata: Input::Value(metadata), ..Namespace::default() }, Options::new())?;
    }
    for file in &config.crd_files {
        let text =
            std::fs::read_to_string(stack.project_dir().join(file)).map_err(|e| format!("config.crd_files: cannot read {file}: {e}"))?;
        for manifest in berth_provider_kubernetes::manifests::from_yaml(&text).map_err(|e| format!("{file}: {e}"))? {
            berth_provider_kubernetes::manifests::register(stack, None, &manifest, Options::new()).map_err(|e| format!("{file}: {e}"))?;
        }
    }
    let oidc = stack.register(
        "oidc",
        OidcProvider {
            url: format!("https://{}", config.oidc_issuer).into(),
            client_id_list: vec!["sts.amazonaws.com".into()],
            thumbprint_list: vec![config.oidc_thumbprint.clone()],
            ..OidcProvider::default()
        },
        Options::new(),
    )?;
    let mut backend = AuthBackend::new(&config.vault_auth_mount, "kubernetes");
    backend.description = format!("service accounts of cluster {}", config.name);
    let mut kubernetes = KubernetesAuthConfig::new(config.kubernetes_host.clone());
    // Vault runs outside the cluster: it has no pod token or CA of its own to fall back to.
    kubernetes.disable_local_ca_jwt = true;
    if let Some(file) = &config.kubernetes_ca_file {
        let pem = std::fs::read_to_string(stack.project_dir().join(file))
            .map_err(|e| format!("config.kubernetes_ca_file: cannot read {file}: {e}"))?;
        kubernetes.kubernetes_ca_cert = Some(pem.into());
    } else if config.kubernetes_ca_from_kubeconfig {
        let pem = berth_provider_kubernetes::cluster::kubeconfig_ca_pem(None)
            .map_err(|e| format!("config.kubernetes_ca_from_kubeconfig: {e}"))?;
        kubernetes.kubernetes_ca_cert = Some(pem.into());
    }
    backend.kubernetes = Some(kubernetes);
    let auth = stack.register("vault-auth", backend, Options::new())?;
    stack.export_value("name", &config.name);
    stack.export_value("namespaces", &config.namespaces);
    stack.export_value("oidc_issuer", &config.oidc_issuer);
    stack.export("oidc_provider_arn", &oidc.output::<String>("arn"));
    stack.export("vault_auth_mount", &auth.output::<String>("path"));
    stack.export_value("vault_address", &config.vault_address);
    Ok(())
}
