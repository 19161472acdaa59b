//! `aws:iam:OpenIdConnectProvider`: trusts an identity provider (an EKS cluster's OIDC issuer),
//! so that its service accounts can assume roles with `sts:AssumeRoleWithWebIdentity`.

use std::collections::BTreeSet;
use std::sync::Arc;

use berth_engine::async_trait;
use berth_engine::{CallContext, CheckFailure, Input, Path, ProviderError, Resource, ResourceProvider, TypedCreated, TypedObserved};
use serde::{Deserialize, Serialize};

use super::{from_iam_tags, iam_tags, tag_changes};
use crate::config::Aws;
use crate::error::{AwsError, already_exists, fail, found};
use crate::validate::{self, Problems, Tags};

/// `aws:iam:OpenIdConnectProvider`. Its id is its ARN.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProvider {
    /// The issuer URL (`https://oidc.eks.<region>.amazonaws.com/id/<id>`). Changing it replaces
    /// the provider.
    pub url: Input<String>,
    /// Audiences, e.g. `sts.amazonaws.com`. Order does not matter.
    pub client_id_list: Vec<String>,
    /// SHA-1 fingerprints (40 hex digits) of the issuer's certificate; optional for issuers AWS
    /// trusts through its own certificate store. Order does not matter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thumbprint_list: Vec<String>,
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OidcProviderOutputs {
    pub arn: String,
}

impl Resource for OidcProvider {
    const TYPE: &'static str = "aws:iam:OpenIdConnectProvider";
    type Outputs = OidcProviderOutputs;
}

pub struct OidcProviderProvider {
    pub aws: Arc<Aws>,
}

fn sorted(list: &[String]) -> Vec<String> {
    list.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect()
}

/// IAM stores the URL without its scheme.
fn bare(url: &str) -> &str {
    url.trim_start_matches("https://").trim_end_matches('/')
}

/// The ARN of the account's provider for the issuer `url` (one per issuer), if there is one.
async fn arn_for_url(iam: &aws_sdk_iam::Client, ctx: &CallContext<'_>, url: &str) -> Result<Option<String>, ProviderError> {
    let listed = iam.list_open_id_connect_providers().send().await.map_err(fail(ctx, "ListOpenIDConnectProviders"))?;
    let suffix = format!(":oidc-provider/{}", bare(url));
    Ok(listed.open_id_connect_provider_list().iter().filter_map(|p| p.arn()).find(|arn| arn.ends_with(&suffix)).map(str::to_string))
}

#[async_trait]
impl ResourceProvider for OidcProviderProvider {
    type Resource = OidcProvider;

    fn replace_on(&self) -> Vec<Path> {
        vec![Path::parse("url").unwrap_or_else(|_| Path::root())]
    }

    async fn check(&self, _ctx: CallContext<'_>, mut inputs: OidcProvider, _seed: &[u8; 32]) -> Result<OidcProvider, Vec<CheckFailure>> {
        let mut problems = Problems::new();
        if let Input::Value(url) = &inputs.url {
            if !url.starts_with("https://") || url.len() > 255 || bare(url).is_empty() {
                problems.add("url", format!("`{url}` must be an https:// URL of at most 255 characters"));
            }
            inputs.url = Input::Value(format!("https://{}", bare(url)));
        }
        if inputs.client_id_list.is_empty() || inputs.client_id_list.len() > 100 {
            problems.add("client_id_list", "give 1 to 100 client ids (audiences), e.g. sts.amazonaws.com");
        }
        if inputs.client_id_list.iter().any(|c| c.is_empty() || c.len() > 255) {
            problems.add("client_id_list", "each client id must have 1 to 255 characters");
        }
        if inputs.thumbprint_list.len() > 5 {
            problems.add("thumbprint_list", "IAM allows at most 5 thumbprints");
        }
        for t in &inputs.thumbprint_list {
            if t.len() != 40 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
                problems.add("thumbprint_list", format!("`{t}` is not a SHA-1 fingerprint (40 hexadecimal digits)"));
            }
        }
        inputs.client_id_list = sorted(&inputs.client_id_list);
        inputs.thumbprint_list = sorted(&inputs.thumbprint_list.iter().map(|t| t.to_ascii_lowercase()).collect::<Vec<_>>());
        validate::tags(&mut problems, &inputs.tags);
        problems.finish(inputs)
    }

    async fn create(&self, ctx: CallContext<'_>, inputs: &OidcProvider) -> Result<TypedCreated<OidcProviderOutputs>, ProviderError> {
        let iam = &self.aws.clients().await?.iam;
        let url = inputs.url.value().map_err(|e| ProviderError::other(e.to_string()))?;
        let created = match iam
            .create_open_id_connect_provider()
            .url(url)
            .set_client_id_list(Some(inputs.client_id_list.clone()))
            .set_thumbprint_list(Some(inputs.thumbprint_list.clone()).filter(|t| !t.is_empty()))
            .set_tags(iam_tags(&inputs.tags)?)
            .send()
            .await
        {
            Ok(created) => created,
            Err(e) => {
                let e = AwsError::from(e);
                if !e.is_code("EntityAlreadyExists") {
                    return Err(e.at(&ctx, "CreateOpenIDConnectProvider"));
                }
                // What to import is the ARN, which holds the account id: found by listing.
                let message = format!("{}: an OpenID Connect provider for {url} already exists", ctx.urn);
                let lookup = arn_for_url(iam, &ctx, url).await;
                return Err(already_exists(&ctx, "CreateOpenIDConnectProvider", &e, message, lookup));
            }
        };
        let arn = created.open_id_connect_provider_arn().unwrap_or_default().to_string();
        Ok(TypedCreated { id: arn.clone(), outputs: OidcProviderOutputs { arn } })
    }

    async fn read(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        _prior: Option<&OidcProvider>,
        _o: Option<&OidcProviderOutputs>,
    ) -> Result<Option<TypedObserved<OidcProvider>>, ProviderError> {
        let iam = &self.aws.clients().await?.iam;
        let result = iam.get_open_id_connect_provider().open_id_connect_provider_arn(id).send().await;
        let Some(got) = found(&ctx, "GetOpenIDConnectProvider", result)? else { return Ok(None) };
        let inputs = OidcProvider {
            url: Input::Value(format!("https://{}", bare(got.url().unwrap_or_default()))),
            client_id_list: sorted(got.client_id_list()),
            thumbprint_list: sorted(&got.thumbprint_list().iter().map(|t| t.to_ascii_lowercase()).collect::<Vec<_>>()),
            tags: from_iam_tags(got.tags()),
        };
        Ok(Some(TypedObserved { id: id.to_string(), inputs, outputs: OidcProviderOutputs { arn: id.to_string() } }))
    }

    async fn update(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old: &OidcProvider,
        new: &OidcProvider,
        outputs: &OidcProviderOutputs,
    ) -> Result<OidcProviderOutputs, ProviderError> {
        let iam = &self.aws.clients().await?.iam;
        for added in new.client_id_list.iter().filter(|c| !old.client_id_list.contains(c)) {
            iam.add_client_id_to_open_id_connect_provider()
                .open_id_connect_provider_arn(id)
                .client_id(added)
                .send()
                .await
                .map_err(fail(&ctx, "AddClientIDToOpenIDConnectProvider"))?;
        }
        for removed in old.client_id_list.iter().filter(|c| !new.client_id_list.contains(c)) {
            iam.remove_client_id_from_open_id_connect_provider()
                .open_id_connect_provider_arn(id)
                .client_id(removed)
                .send()
                .await
                .map_err(fail(&ctx, "RemoveClientIDFromOpenIDConnectProvider"))?;
        }
        if old.thumbprint_list != new.thumbprint_list {
            iam.update_open_id_connect_provider_thumbprint()
                .open_id_connect_provider_arn(id)
                .set_thumbprint_list(Some(new.thumbprint_list.clone()))
                .send()
                .await
                .map_err(fail(&ctx, "UpdateOpenIDConnectProviderThumbprint"))?;
        }
        let (removed, set) = tag_changes(&old.tags, &new.tags);
        if !removed.is_empty() {
            iam.untag_open_id_connect_provider()
                .open_id_connect_provider_arn(id)
                .set_tag_keys(Some(removed))
                .send()
                .await
                .map_err(fail(&ctx, "UntagOpenIDConnectProvider"))?;
        }
        if let Some(tags) = iam_tags(&set)? {
            iam.tag_open_id_connect_provider()
                .open_id_connect_provider_arn(id)
                .set_tags(Some(tags))
                .send()
                .await
                .map_err(fail(&ctx, "TagOpenIDConnectProvider"))?;
        }
        Ok(outputs.clone())
    }

    async fn delete(&self, ctx: CallContext<'_>, id: &str, _inputs: &OidcProvider, _o: &OidcProviderOutputs) -> Result<(), ProviderError> {
        let iam = &self.aws.clients().await?.iam;
        match iam.delete_open_id_connect_provider().open_id_connect_provider_arn(id).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = AwsError::from(e);
                if e.is_not_found() { Ok(()) } else { Err(e.at(&ctx, "DeleteOpenIDConnectProvider")) }
            }
        }
    }

    /// Finds the provider for the same issuer URL among the account's providers.
    async fn lookup(&self, ctx: CallContext<'_>, inputs: &OidcProvider) -> Result<Option<TypedObserved<OidcProvider>>, ProviderError> {
        let Some(url) = inputs.url.known() else { return Ok(None) };
        let iam = &self.aws.clients().await?.iam;
        match arn_for_url(iam, &ctx, url).await? {
            Some(arn) => self.read(ctx, &arn, Some(inputs), None).await,
            None => Ok(None),
        }
    }
}
