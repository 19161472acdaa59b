//! The trust role: one identity for the edxapp pods, in AWS and in Vault. An IAM role that the
//! cluster's OIDC provider lets one service account assume, with the application's policy; the
//! Vault kubernetes auth role bound to the same service account; the service account itself,
//! annotated with the role's ARN; and the Vault Secrets Operator's connection and auth objects.

use std::collections::BTreeMap;

use berth_engine::{Input, Options, Output, ProgramResult, Stack};
use berth_provider_aws::iam::{Role, RolePolicyAttachment};
use berth_provider_kubernetes::k8s_openapi::api::rbac::v1::{RoleRef, Subject};
use berth_provider_kubernetes::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use berth_provider_kubernetes::{ClusterRoleBinding, ServiceAccount};
use berth_provider_vault::{KubernetesAuthRole, Ttl};
use serde_json::json;

use crate::edxapp::Ctx;
use crate::edxapp::aws::Buckets;
use crate::edxapp::kube::{self, VSO};
use crate::edxapp::vault::VaultPaths;

pub struct Identity {
    pub service_account: String,
    pub role_arn: Output<String>,
    /// The VaultAuth object secrets sync through.
    pub vault_auth: String,
}

/// The trust policy letting service accounts of `namespace` assume the role through the
/// cluster's OIDC provider: `StringEquals` on the audience and the subject, or `StringLike` on
/// the subject when an account name has a wildcard (`*`, `?`), as IAM requires.
pub fn trust_policy(provider_arn: &str, issuer: &str, namespace: &str, accounts: &[String]) -> String {
    let subjects: Vec<String> = accounts.iter().map(|a| format!("system:serviceaccount:{namespace}:{a}")).collect();
    let subject = if subjects.len() == 1 { json!(subjects[0]) } else { json!(subjects) };
    let (aud, sub) = (format!("{issuer}:aud"), format!("{issuer}:sub"));
    let condition = if accounts.iter().any(|a| a.contains(['*', '?'])) {
        json!({"StringEquals": {aud: "sts.amazonaws.com"}, "StringLike": {sub: subject}})
    } else {
        json!({"StringEquals": {aud: "sts.amazonaws.com", sub: subject}})
    };
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": condition
        }]
    })
    .to_string()
}

pub fn trust_role(stack: &mut Stack, ctx: &Ctx, buckets: &Buckets, vault: &VaultPaths) -> ProgramResult<Identity> {
    let account = "edxapp-vault".to_string();
    stack.component("edxapp:index:TrustRole", "trust-role", Options::new(), |stack, _| -> ProgramResult<Identity> {
        let namespace = ctx.namespace.clone();
        let trusted = ctx.config.trusted_service_accounts.clone().unwrap_or_else(|| vec![account.clone()]);
        let trust = ctx.cluster.oidc_provider_arn.zip(&ctx.cluster.oidc_issuer).map(move |(arn, issuer)| trust_policy(&arn, &issuer, &namespace, &trusted));
        let role = stack.register(
            "role",
            Role {
                name: Some(format!("edxapp-trustrole-{}", ctx.env_name)),
                path: format!("/ol-infrastructure/eks/{}/", ctx.config.environment.as_str()),
                assume_role_policy: trust.into(),
                description: Some(format!("edxapp pods of {} (service account {account})", ctx.env_name)),
                tags: ctx.tags(),
                ..Role::default()
            },
            Options::new(),
        )?;
        let role_arn: Output<String> = role.output("arn");
        stack.register("policy", RolePolicyAttachment { role: role.output::<String>("name").into(), policy_arn: buckets.policy_arn.clone().into() }, Options::new())?;

        let mut auth_role = KubernetesAuthRole::new(ctx.cluster.vault_auth_mount.clone(), &format!("{}-edxapp", ctx.prefix));
        auth_role.bound_service_account_names = vec![account.clone()];
        auth_role.bound_service_account_namespaces = vec![ctx.namespace.clone()];
        auth_role.token_policies = vec![vault.policy.clone().into()];
        auth_role.token_ttl = Some(Ttl::hours(1));
        let auth_role = stack.register("vault-role", auth_role, Options::new())?;

        let base = kube::meta(ctx, &account, "identity");
        let metadata = role_arn.map(move |arn| {
            let mut annotations = BTreeMap::new();
            annotations.insert("eks.amazonaws.com/role-arn".to_string(), arn);
            ObjectMeta { annotations: Some(annotations), ..base.clone() }
        });
        let service_account = stack.register("service-account", ServiceAccount { metadata: metadata.into(), ..ServiceAccount::default() }, Options::new())?;
        // Vault reviews the account's tokens with the TokenReview API.
        stack.register(
            "auth-delegator",
            ClusterRoleBinding {
                metadata: Input::Value(ObjectMeta { name: Some(format!("{}-edxapp-auth-delegator", ctx.env_name)), labels: Some(ctx.labels("identity")), ..ObjectMeta::default() }),
                role_ref: Input::Value(RoleRef { api_group: Some("rbac.authorization.k8s.io".into()), kind: "ClusterRole".into(), name: "system:auth-delegator".into() }),
                subjects: Some(Input::Value(vec![Subject { kind: "ServiceAccount".into(), name: account.clone(), namespace: Some(ctx.namespace.clone()), ..Subject::default() }])),
                ..ClusterRoleBinding::default()
            },
            Options::new().depends_on(&service_account),
        )?;

        let connection = format!("{}-vault", ctx.env_name);
        kube::custom(
            stack,
            &kube::token(VSO, "VaultConnection"),
            "vault-connection",
            &kube::meta(ctx, &connection, "identity"),
            kube::spec_from(&ctx.cluster.vault_address, |address: String| json!({"address": address, "skipTLSVerify": false})),
            Options::new(),
        )?;
        let vault_auth = format!("{}-vault-auth", ctx.env_name);
        let (role_name, sa, conn) = (format!("{}-edxapp", ctx.prefix), account.clone(), connection.clone());
        kube::custom(
            stack,
            &kube::token(VSO, "VaultAuth"),
            "vault-auth",
            &kube::meta(ctx, &vault_auth, "identity"),
            kube::spec_from(&ctx.cluster.vault_auth_mount, move |mount: String| {
                json!({"vaultConnectionRef": conn, "method": "kubernetes", "mount": mount, "kubernetes": {"role": role_name, "serviceAccount": sa}})
            }),
            Options::new().depends_on(&auth_role).depends_on(&service_account),
        )?;
        Ok(Identity { service_account: account.clone(), role_arn, vault_auth })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(accounts: &[&str]) -> serde_json::Value {
        let accounts: Vec<String> = accounts.iter().map(|a| a.to_string()).collect();
        let doc: serde_json::Value = serde_json::from_str(&trust_policy("arn:oidc", "oidc.example", "ns", &accounts)).unwrap();
        doc["Statement"][0]["Condition"].clone()
    }

    #[test]
    fn exact_accounts_use_string_equals_and_wildcards_string_like() {
        assert_eq!(
            condition(&["edxapp-vault"]),
            json!({"StringEquals": {"oidc.example:aud": "sts.amazonaws.com", "oidc.example:sub": "system:serviceaccount:ns:edxapp-vault"}})
        );
        assert_eq!(
            condition(&["edxapp-*", "worker"]),
            json!({"StringEquals": {"oidc.example:aud": "sts.amazonaws.com"},
                   "StringLike": {"oidc.example:sub": ["system:serviceaccount:ns:edxapp-*", "system:serviceaccount:ns:worker"]}})
        );
    }
}
