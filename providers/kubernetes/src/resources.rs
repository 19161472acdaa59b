//! Typed resources: the kinds an Open edX deployment is made of, with k8s-openapi's types for
//! their bodies. Each is the object's manifest without `apiVersion` and `kind` (the type token
//! says those), plus berth's per-object `berth` options. Any other kind, custom resources
//! included, is registered with `Stack::register_dynamic` (see [`crate::manifests`]).

use std::collections::BTreeMap;

use berth_engine::{Input, Resource, Secret as SecretValue};
use k8s_openapi::api::apps::v1::DeploymentSpec;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerSpec;
use k8s_openapi::api::batch::v1::{CronJobSpec, JobSpec};
use k8s_openapi::api::core::v1::{LocalObjectReference, NamespaceSpec, ObjectReference, PersistentVolumeClaimSpec, ServiceSpec};
use k8s_openapi::api::networking::v1::IngressSpec;
use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;
use k8s_openapi::api::rbac::v1::{RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinitionSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

pub use crate::manifest::ObjectOptions;

/// What berth records of every object after create, update or read.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectOutputs {
    /// The version the object was applied in: the token's, or the older one the cluster serves.
    pub api_version: String,
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub uid: String,
    /// A Service's cluster IP.
    #[serde(default, rename = "clusterIP", skip_serializing_if = "Option::is_none")]
    pub cluster_ip: Option<String>,
    /// The object's status when it was last applied or read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

macro_rules! spec_resource {
    ($(#[$doc:meta])* $name:ident, $token:literal, $spec:ty) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            pub metadata: Input<ObjectMeta>,
            pub spec: Input<$spec>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub berth: Option<ObjectOptions>,
        }

        impl Resource for $name {
            const TYPE: &'static str = $token;
            type Outputs = ObjectOutputs;
        }
    };
}

/// A namespace. Deleting it waits until the cluster has removed everything in it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Namespace {
    pub metadata: Input<ObjectMeta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<Input<NamespaceSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub berth: Option<ObjectOptions>,
}

impl Resource for Namespace {
    const TYPE: &'static str = "kubernetes:core/v1:Namespace";
    type Outputs = ObjectOutputs;
}

/// A ConfigMap; each value may be another resource's output. With `immutable: true`, changed
/// data replaces it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMap {
    pub metadata: Input<ObjectMeta>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, Input<String>>,
    /// Base64 values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub binary_data: BTreeMap<String, Input<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub berth: Option<ObjectOptions>,
}

impl Resource for ConfigMap {
    const TYPE: &'static str = "kubernetes:core/v1:ConfigMap";
    type Outputs = ObjectOutputs;
}

/// A Secret. Values are encrypted in state and shown as `[secret]` everywhere; `string_data`
/// (plain text) is recorded and applied as base64 `data`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    pub metadata: Input<ObjectMeta>,
    /// `Opaque` unless set; changing it replaces the Secret.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Base64 values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, Input<SecretValue<String>>>,
    /// Plain-text values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub string_data: BTreeMap<String, Input<SecretValue<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub berth: Option<ObjectOptions>,
}

impl Resource for Secret {
    const TYPE: &'static str = "kubernetes:core/v1:Secret";
    type Outputs = ObjectOutputs;
}

/// A ServiceAccount (for IRSA, its `eks.amazonaws.com/role-arn` annotation can be a role's
/// output).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccount {
    pub metadata: Input<ObjectMeta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automount_service_account_token: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Vec<ObjectReference>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub berth: Option<ObjectOptions>,
}

impl Resource for ServiceAccount {
    const TYPE: &'static str = "kubernetes:core/v1:ServiceAccount";
    type Outputs = ObjectOutputs;
}

/// A ClusterRoleBinding; a changed `roleRef` replaces it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRoleBinding {
    pub metadata: Input<ObjectMeta>,
    pub role_ref: Input<RoleRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subjects: Option<Input<Vec<Subject>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub berth: Option<ObjectOptions>,
}

impl Resource for ClusterRoleBinding {
    const TYPE: &'static str = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding";
    type Outputs = ObjectOutputs;
}

spec_resource!(
    /// A PersistentVolumeClaim. Only `resources.requests.storage` changes in place; other spec
    /// changes replace it. berth does not wait for it to be bound (a `WaitForFirstConsumer`
    /// class binds only when a pod uses it).
    PersistentVolumeClaim,
    "kubernetes:core/v1:PersistentVolumeClaim",
    PersistentVolumeClaimSpec
);
spec_resource!(
    /// A Service. Every port needs `protocol` (server-side apply merges ports by port and
    /// protocol).
    Service,
    "kubernetes:core/v1:Service",
    ServiceSpec
);
spec_resource!(
    /// A Deployment; create and update wait for the rollout.
    Deployment,
    "kubernetes:apps/v1:Deployment",
    DeploymentSpec
);
spec_resource!(
    /// A HorizontalPodAutoscaler, written as autoscaling/v2 and applied as v2beta2 where the
    /// cluster has no v2 (Kubernetes before 1.23).
    HorizontalPodAutoscaler,
    "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
    HorizontalPodAutoscalerSpec
);
spec_resource!(
    /// A Job; create waits for it to complete and fails, naming the failing pod's reason, if it
    /// fails. A changed pod template replaces it (a new run), never patches it.
    Job,
    "kubernetes:batch/v1:Job",
    JobSpec
);
spec_resource!(
    /// A CronJob, written as batch/v1 and applied as v1beta1 where the cluster has no batch/v1
    /// CronJob (Kubernetes before 1.21).
    CronJob,
    "kubernetes:batch/v1:CronJob",
    CronJobSpec
);
spec_resource!(
    /// A PodDisruptionBudget, written as policy/v1 and applied as v1beta1 where the cluster has
    /// no policy/v1 (Kubernetes before 1.21).
    PodDisruptionBudget,
    "kubernetes:policy/v1:PodDisruptionBudget",
    PodDisruptionBudgetSpec
);
spec_resource!(
    /// An Ingress.
    Ingress,
    "kubernetes:networking.k8s.io/v1:Ingress",
    IngressSpec
);
spec_resource!(
    /// A CustomResourceDefinition; create and update wait until it is established, so resources
    /// of its kind that depend on it can be applied in the same run.
    CustomResourceDefinition,
    "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition",
    CustomResourceDefinitionSpec
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{Gvk, known};
    use berth_engine::Value;

    #[test]
    fn every_typed_resource_is_a_known_kind() {
        for token in [
            Namespace::TYPE,
            ConfigMap::TYPE,
            Secret::TYPE,
            ServiceAccount::TYPE,
            PersistentVolumeClaim::TYPE,
            Service::TYPE,
            Deployment::TYPE,
            HorizontalPodAutoscaler::TYPE,
            Job::TYPE,
            CronJob::TYPE,
            PodDisruptionBudget::TYPE,
            Ingress::TYPE,
            ClusterRoleBinding::TYPE,
            CustomResourceDefinition::TYPE,
        ] {
            let gvk = Gvk::from_token(token).unwrap();
            assert!(known(&gvk).is_some(), "{token}");
        }
    }

    #[test]
    fn secrets_serialize_as_secret_values() {
        let secret = Secret {
            metadata: ObjectMeta { name: Some("creds".into()), ..ObjectMeta::default() }.into(),
            string_data: [("password".to_string(), Input::Value(SecretValue::new("hunter2".to_string())))].into(),
            ..Secret::default()
        };
        let value = Value::from_json(serde_json::to_value(&secret).unwrap());
        let data = value.as_object().unwrap()["stringData"].as_object().unwrap();
        assert!(data["password"].is_secret());
        assert!(!value.to_json_masked().to_string().contains("hunter2"));
        assert_eq!(value.to_json_revealed()["metadata"], serde_json::json!({"name": "creds"}));
    }
}
