//! Building Kubernetes objects for the edxapp components.

use std::collections::BTreeMap;

use berth_engine::{DynamicHandle, Input, Options, Output, Stack};
use berth_provider_kubernetes::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde_json::Value as Json;

use crate::edxapp::Ctx;

/// Metadata of a namespaced object with the standard labels.
pub fn meta(ctx: &Ctx, name: &str, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(ctx.namespace.clone()),
        labels: Some(ctx.labels(component)),
        ..ObjectMeta::default()
    }
}

/// Metadata with annotations.
pub fn meta_annotated(ctx: &Ctx, name: &str, component: &str, annotations: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta { annotations: Some(annotations), ..meta(ctx, name, component) }
}

/// A custom resource's inputs: its manifest without `apiVersion` and `kind` (the type token says
/// those). `spec` may hold outputs of other resources.
#[derive(Serialize)]
struct Custom<'a> {
    metadata: &'a ObjectMeta,
    spec: Input<Json>,
}

/// Registers a custom resource (`kubernetes:<group>/<version>:<Kind>`), such as a KEDA
/// ScaledObject or a Vault Secrets Operator VaultStaticSecret.
pub fn custom(
    stack: &mut Stack,
    token: &str,
    name: &str,
    metadata: &ObjectMeta,
    spec: impl Into<Input<Json>>,
    options: Options,
) -> Result<DynamicHandle, berth_engine::program::RegistrationError> {
    stack.register_dynamic(token, name, &Custom { metadata, spec: spec.into() }, options)
}

/// A spec known now.
pub fn spec(value: Json) -> Input<Json> {
    Input::Value(value)
}

/// A spec built from outputs once they are known.
pub fn spec_from<T: serde::Serialize + serde::de::DeserializeOwned + 'static>(
    output: &Output<T>,
    build: impl Fn(T) -> Json + Send + Sync + 'static,
) -> Input<Json> {
    output.map(build).into()
}

pub const VSO: &str = "secrets.hashicorp.com/v1beta1";
pub const KEDA: &str = "keda.sh/v1alpha1";
pub const GATEWAY: &str = "gateway.networking.k8s.io/v1";
pub const VPC_RESOURCES: &str = "vpcresources.k8s.aws/v1beta1";

/// The type token of a custom kind.
pub fn token(group_version: &str, kind: &str) -> String {
    format!("kubernetes:{group_version}:{kind}")
}
