//! `aws:ec2:Vpc` and `aws:ec2:Subnet`: the network a deployment's database and cache live in.
//!
//! AWS assigns their ids, so berth tags each with `berth:urn` (hidden from inputs and drift) to
//! find one an interrupted create made.

use aws_sdk_ec2::types::{AttributeBooleanValue, Filter, ResourceType, Tag, TagSpecification};
use berth_engine::async_trait;
use berth_engine::{CallContext, CheckFailure, Input, Path, ProviderError, Resource, ResourceProvider, TypedCreated, TypedObserved};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Aws;
use crate::error::{AwsError, fail, found};
use crate::validate::{self, Problems, Tags};
use crate::wait::{self, Change, Poll};

/// The tag that ties an object to its resource.
const URN_TAG: &str = "berth:urn";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

fn yes() -> bool {
    true
}

/// `aws:ec2:Vpc`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vpc {
    /// The IPv4 range, e.g. `10.20.0.0/16`; changing it replaces the VPC.
    pub cidr_block: String,
    #[serde(default = "yes")]
    pub enable_dns_support: bool,
    #[serde(default = "yes")]
    pub enable_dns_hostnames: bool,
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
}

impl Default for Vpc {
    fn default() -> Self {
        Vpc { cidr_block: String::new(), enable_dns_support: true, enable_dns_hostnames: true, tags: Tags::new() }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VpcOutputs {
    pub id: String,
    pub arn: String,
    pub cidr_block: String,
    pub owner_id: String,
}

impl Resource for Vpc {
    const TYPE: &'static str = "aws:ec2:Vpc";
    type Outputs = VpcOutputs;
}

/// `aws:ec2:Subnet`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    /// Changing it replaces the subnet.
    pub vpc_id: Input<String>,
    /// A range inside the VPC's; changing it replaces the subnet.
    pub cidr_block: String,
    /// e.g. `us-east-1a`; AWS picks one when unset. Changing it replaces the subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    #[serde(default)]
    pub map_public_ip_on_launch: bool,
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SubnetOutputs {
    pub id: String,
    pub arn: String,
    pub availability_zone: String,
}

impl Resource for Subnet {
    const TYPE: &'static str = "aws:ec2:Subnet";
    type Outputs = SubnetOutputs;
}

fn ec2_tags(tags: &Tags, urn: Option<&str>) -> Vec<Tag> {
    let mut out: Vec<Tag> = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
    if let Some(urn) = urn {
        out.push(Tag::builder().key(URN_TAG).value(urn).build());
    }
    out
}

fn user_tags(tags: &[Tag]) -> Tags {
    tags.iter()
        .filter(|t| t.key() != Some(URN_TAG))
        .map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string()))
        .collect()
}

fn check_tags(problems: &mut Problems, tags: &Tags) {
    validate::tags(problems, tags);
    if tags.contains_key(URN_TAG) {
        problems.add("tags", format!("`{URN_TAG}` is berth's own tag"));
    }
}

/// Sets tags to `new` (from `old`), leaving berth's tag alone.
async fn retag(aws: &Aws, ctx: &CallContext<'_>, id: &str, old: &Tags, new: &Tags) -> Result<(), ProviderError> {
    let clients = aws.clients().await?;
    let removed: Vec<Tag> = old.keys().filter(|k| !new.contains_key(*k)).map(|k| Tag::builder().key(k).build()).collect();
    if !removed.is_empty() {
        clients.ec2.delete_tags().resources(id).set_tags(Some(removed)).send().await.map_err(fail(ctx, "DeleteTags"))?;
    }
    let set: Tags = new.iter().filter(|(k, v)| old.get(*k) != Some(v)).map(|(k, v)| (k.clone(), v.clone())).collect();
    if !set.is_empty() {
        clients.ec2.create_tags().resources(id).set_tags(Some(ec2_tags(&set, None))).send().await.map_err(fail(ctx, "CreateTags"))?;
    }
    Ok(())
}

fn tagged(urn: &str) -> Filter {
    Filter::builder().name(format!("tag:{URN_TAG}")).values(urn).build()
}

pub struct VpcProvider {
    pub aws: Arc<Aws>,
}

impl VpcProvider {
    async fn observe(&self, ctx: &CallContext<'_>, id: &str) -> Result<Option<TypedObserved<Vpc>>, ProviderError> {
        let clients = self.aws.clients().await?;
        let Some(got) = found(ctx, "DescribeVpcs", clients.ec2.describe_vpcs().vpc_ids(id).send().await)? else { return Ok(None) };
        let Some(vpc) = got.vpcs().first() else { return Ok(None) };
        let attribute = |name: aws_sdk_ec2::types::VpcAttributeName| async move {
            let answer =
                clients.ec2.describe_vpc_attribute().vpc_id(id).attribute(name).send().await.map_err(fail(ctx, "DescribeVpcAttribute"))?;
            Ok::<_, ProviderError>(answer)
        };
        let support = attribute(aws_sdk_ec2::types::VpcAttributeName::EnableDnsSupport).await?;
        let hostnames = attribute(aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames).await?;
        let owner = vpc.owner_id().unwrap_or_default().to_string();
        let inputs = Vpc {
            cidr_block: vpc.cidr_block().unwrap_or_default().to_string(),
            enable_dns_support: support.enable_dns_support().and_then(|a| a.value()).unwrap_or(true),
            enable_dns_hostnames: hostnames.enable_dns_hostnames().and_then(|a| a.value()).unwrap_or(false),
            tags: user_tags(vpc.tags()),
        };
        let outputs = VpcOutputs {
            id: id.to_string(),
            arn: format!("arn:aws:ec2:{}:{owner}:vpc/{id}", clients.region),
            cidr_block: inputs.cidr_block.clone(),
            owner_id: owner,
        };
        Ok(Some(TypedObserved { id: id.to_string(), inputs, outputs }))
    }

    async fn set_dns(&self, ctx: &CallContext<'_>, id: &str, inputs: &Vpc) -> Result<(), ProviderError> {
        let clients = self.aws.clients().await?;
        let flag = |b: bool| AttributeBooleanValue::builder().value(b).build();
        // AWS takes one attribute per call.
        clients
            .ec2
            .modify_vpc_attribute()
            .vpc_id(id)
            .enable_dns_support(flag(inputs.enable_dns_support))
            .send()
            .await
            .map_err(fail(ctx, "ModifyVpcAttribute"))?;
        clients
            .ec2
            .modify_vpc_attribute()
            .vpc_id(id)
            .enable_dns_hostnames(flag(inputs.enable_dns_hostnames))
            .send()
            .await
            .map_err(fail(ctx, "ModifyVpcAttribute"))?;
        Ok(())
    }
}

#[async_trait]
impl ResourceProvider for VpcProvider {
    type Resource = Vpc;

    fn replace_on(&self) -> Vec<Path> {
        Path::parse("cidr_block").into_iter().collect()
    }

    async fn check(&self, _ctx: CallContext<'_>, inputs: Vpc, _seed: &[u8; 32]) -> Result<Vpc, Vec<CheckFailure>> {
        let mut problems = Problems::new();
        problems.check("cidr_block", validate::cidr_ipv4(&inputs.cidr_block));
        if let Some((_, bits)) = inputs.cidr_block.split_once('/')
            && bits.parse::<u8>().is_ok_and(|b| !(16..=28).contains(&b))
        {
            problems.add("cidr_block", format!("`{}`: a VPC's block must be between /16 and /28", inputs.cidr_block));
        }
        if inputs.enable_dns_hostnames && !inputs.enable_dns_support {
            problems.add("enable_dns_hostnames", "needs enable_dns_support");
        }
        check_tags(&mut problems, &inputs.tags);
        problems.finish(inputs)
    }

    async fn create(&self, ctx: CallContext<'_>, inputs: &Vpc) -> Result<TypedCreated<VpcOutputs>, ProviderError> {
        let started = tokio::time::Instant::now();
        let clients = self.aws.clients().await?;
        let spec = TagSpecification::builder()
            .resource_type(ResourceType::Vpc)
            .set_tags(Some(ec2_tags(&inputs.tags, Some(ctx.urn.as_str()))))
            .build();
        let created = clients
            .ec2
            .create_vpc()
            .cidr_block(&inputs.cidr_block)
            .tag_specifications(spec)
            .send()
            .await
            .map_err(fail(&ctx, "CreateVpc"))?;
        let id = created.vpc().and_then(|v| v.vpc_id()).unwrap_or_default().to_string();
        wait::until_ready(&ctx, Change::Create, DEFAULT_TIMEOUT, clients.poll_interval, started, "the VPC to become available", || async {
            let got = clients.ec2.describe_vpcs().vpc_ids(&id).send().await.map_err(fail(&ctx, "DescribeVpcs"))?;
            let state = got.vpcs().first().and_then(|v| v.state()).map(|s| s.as_str().to_string()).unwrap_or_default();
            Ok(if state == "available" { Poll::Ready(()) } else { Poll::Waiting(state) })
        })
        .await?;
        self.set_dns(&ctx, &id, inputs).await?;
        let observed = self
            .observe(&ctx, &id)
            .await?
            .ok_or_else(|| ProviderError::other(format!("{}: VPC {id} vanished after it was created", ctx.urn)))?;
        Ok(TypedCreated { id, outputs: observed.outputs })
    }

    async fn read(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        _prior: Option<&Vpc>,
        _o: Option<&VpcOutputs>,
    ) -> Result<Option<TypedObserved<Vpc>>, ProviderError> {
        self.observe(&ctx, id).await
    }

    async fn update(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old: &Vpc,
        new: &Vpc,
        old_outputs: &VpcOutputs,
    ) -> Result<VpcOutputs, ProviderError> {
        if (old.enable_dns_support, old.enable_dns_hostnames) != (new.enable_dns_support, new.enable_dns_hostnames) {
            self.set_dns(&ctx, id, new).await?;
        }
        retag(&self.aws, &ctx, id, &old.tags, &new.tags).await?;
        Ok(old_outputs.clone())
    }

    async fn delete(&self, ctx: CallContext<'_>, id: &str, _inputs: &Vpc, _o: &VpcOutputs) -> Result<(), ProviderError> {
        let started = tokio::time::Instant::now();
        let clients = self.aws.clients().await?;
        wait::until_ready(
            &ctx,
            Change::Delete,
            DEFAULT_TIMEOUT,
            clients.poll_interval,
            started,
            "the VPC's subnets and groups to go",
            || async {
                match clients.ec2.delete_vpc().vpc_id(id).send().await {
                    Ok(_) => Ok(Poll::Ready(())),
                    Err(e) => {
                        let e = AwsError::from(e);
                        if e.is_not_found() {
                            Ok(Poll::Ready(()))
                        } else if e.is_code("DependencyViolation") {
                            Ok(Poll::Waiting(format!("in use ({})", e.message)))
                        } else {
                            Err(e.at(&ctx, "DeleteVpc"))
                        }
                    }
                }
            },
        )
        .await
    }

    async fn lookup(&self, ctx: CallContext<'_>, _inputs: &Vpc) -> Result<Option<TypedObserved<Vpc>>, ProviderError> {
        let clients = self.aws.clients().await?;
        let got = clients.ec2.describe_vpcs().filters(tagged(ctx.urn.as_str())).send().await.map_err(fail(&ctx, "DescribeVpcs"))?;
        match got.vpcs().first().and_then(|v| v.vpc_id()) {
            Some(id) => self.observe(&ctx, id).await,
            None => Ok(None),
        }
    }
}

pub struct SubnetProvider {
    pub aws: Arc<Aws>,
}

impl SubnetProvider {
    async fn observe(&self, ctx: &CallContext<'_>, id: &str) -> Result<Option<TypedObserved<Subnet>>, ProviderError> {
        let clients = self.aws.clients().await?;
        let Some(got) = found(ctx, "DescribeSubnets", clients.ec2.describe_subnets().subnet_ids(id).send().await)? else { return Ok(None) };
        let Some(subnet) = got.subnets().first() else { return Ok(None) };
        let zone = subnet.availability_zone().unwrap_or_default().to_string();
        let inputs = Subnet {
            vpc_id: Input::Value(subnet.vpc_id().unwrap_or_default().to_string()),
            cidr_block: subnet.cidr_block().unwrap_or_default().to_string(),
            availability_zone: Some(zone.clone()),
            map_public_ip_on_launch: subnet.map_public_ip_on_launch().unwrap_or(false),
            tags: user_tags(subnet.tags()),
        };
        let outputs = SubnetOutputs {
            id: id.to_string(),
            arn: subnet
                .subnet_arn()
                .map(str::to_string)
                .unwrap_or_else(|| format!("arn:aws:ec2:{}:{}:subnet/{id}", clients.region, subnet.owner_id().unwrap_or_default())),
            availability_zone: zone,
        };
        Ok(Some(TypedObserved { id: id.to_string(), inputs, outputs }))
    }
}

#[async_trait]
impl ResourceProvider for SubnetProvider {
    type Resource = Subnet;

    fn replace_on(&self) -> Vec<Path> {
        ["vpc_id", "cidr_block", "availability_zone"].iter().filter_map(|f| Path::parse(f).ok()).collect()
    }

    async fn check(&self, _ctx: CallContext<'_>, inputs: Subnet, _seed: &[u8; 32]) -> Result<Subnet, Vec<CheckFailure>> {
        let mut problems = Problems::new();
        problems.check("cidr_block", validate::cidr_ipv4(&inputs.cidr_block));
        if let Input::Value(vpc) = &inputs.vpc_id {
            problems.check("vpc_id", validate::resource_id(vpc, "vpc-"));
        }
        if let Some(zone) = &inputs.availability_zone
            && (zone.is_empty() || !zone.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
        {
            problems.add("availability_zone", format!("`{zone}` is not an availability zone name (like us-east-1a)"));
        }
        check_tags(&mut problems, &inputs.tags);
        problems.finish(inputs)
    }

    async fn diff(
        &self,
        _ctx: CallContext<'_>,
        _id: &str,
        old: &berth_engine::Value,
        _old_outputs: &berth_engine::Value,
        new: &berth_engine::Value,
    ) -> Result<berth_engine::DiffResponse, ProviderError> {
        // An unset zone means "AWS picks": the zone AWS picked is no change.
        let mut new = new.clone();
        if let (Some(zone), None | Some(berth_engine::Value::Null)) = (
            old.get_path(&Path::parse("availability_zone").expect("static")),
            new.get_path(&Path::parse("availability_zone").expect("static")),
        ) {
            new.set_path(&Path::parse("availability_zone").expect("static"), zone);
        }
        Ok(berth_engine::default_diff(old, &new, &self.replace_on(), None))
    }

    async fn create(&self, ctx: CallContext<'_>, inputs: &Subnet) -> Result<TypedCreated<SubnetOutputs>, ProviderError> {
        let clients = self.aws.clients().await?;
        let vpc = inputs.vpc_id.value().map_err(|e| ProviderError::other(e.to_string()))?;
        let spec = TagSpecification::builder()
            .resource_type(ResourceType::Subnet)
            .set_tags(Some(ec2_tags(&inputs.tags, Some(ctx.urn.as_str()))))
            .build();
        let created = clients
            .ec2
            .create_subnet()
            .vpc_id(vpc)
            .cidr_block(&inputs.cidr_block)
            .set_availability_zone(inputs.availability_zone.clone())
            .tag_specifications(spec)
            .send()
            .await
            .map_err(fail(&ctx, "CreateSubnet"))?;
        let id = created.subnet().and_then(|s| s.subnet_id()).unwrap_or_default().to_string();
        if inputs.map_public_ip_on_launch {
            let flag = AttributeBooleanValue::builder().value(true).build();
            clients
                .ec2
                .modify_subnet_attribute()
                .subnet_id(&id)
                .map_public_ip_on_launch(flag)
                .send()
                .await
                .map_err(fail(&ctx, "ModifySubnetAttribute"))?;
        }
        let observed = self
            .observe(&ctx, &id)
            .await?
            .ok_or_else(|| ProviderError::other(format!("{}: subnet {id} vanished after it was created", ctx.urn)))?;
        Ok(TypedCreated { id, outputs: observed.outputs })
    }

    async fn read(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        prior: Option<&Subnet>,
        _o: Option<&SubnetOutputs>,
    ) -> Result<Option<TypedObserved<Subnet>>, ProviderError> {
        let mut observed = self.observe(&ctx, id).await?;
        // Keep "AWS picks" as the program wrote it.
        if let (Some(o), Some(p)) = (&mut observed, prior)
            && p.availability_zone.is_none()
        {
            o.inputs.availability_zone = None;
        }
        Ok(observed)
    }

    async fn update(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old: &Subnet,
        new: &Subnet,
        old_outputs: &SubnetOutputs,
    ) -> Result<SubnetOutputs, ProviderError> {
        if old.map_public_ip_on_launch != new.map_public_ip_on_launch {
            let clients = self.aws.clients().await?;
            let flag = AttributeBooleanValue::builder().value(new.map_public_ip_on_launch).build();
            clients
                .ec2
                .modify_subnet_attribute()
                .subnet_id(id)
                .map_public_ip_on_launch(flag)
                .send()
                .await
                .map_err(fail(&ctx, "ModifySubnetAttribute"))?;
        }
        retag(&self.aws, &ctx, id, &old.tags, &new.tags).await?;
        Ok(old_outputs.clone())
    }

    async fn delete(&self, ctx: CallContext<'_>, id: &str, _inputs: &Subnet, _o: &SubnetOutputs) -> Result<(), ProviderError> {
        let started = tokio::time::Instant::now();
        let clients = self.aws.clients().await?;
        wait::until_ready(
            &ctx,
            Change::Delete,
            DEFAULT_TIMEOUT,
            clients.poll_interval,
            started,
            "the subnet's network interfaces to go",
            || async {
                match clients.ec2.delete_subnet().subnet_id(id).send().await {
                    Ok(_) => Ok(Poll::Ready(())),
                    Err(e) => {
                        let e = AwsError::from(e);
                        if e.is_not_found() {
                            Ok(Poll::Ready(()))
                        } else if e.is_code("DependencyViolation") {
                            Ok(Poll::Waiting(format!("in use ({})", e.message)))
                        } else {
                            Err(e.at(&ctx, "DeleteSubnet"))
                        }
                    }
                }
            },
        )
        .await
    }

    async fn lookup(&self, ctx: CallContext<'_>, _inputs: &Subnet) -> Result<Option<TypedObserved<Subnet>>, ProviderError> {
        let clients = self.aws.clients().await?;
        let got = clients.ec2.describe_subnets().filters(tagged(ctx.urn.as_str())).send().await.map_err(fail(&ctx, "DescribeSubnets"))?;
        match got.subnets().first().and_then(|s| s.subnet_id()) {
            Some(id) => self.observe(&ctx, id).await,
            None => Ok(None),
        }
    }
}
