//! `aws:ec2:SecurityGroup`: a VPC security group and all its rules.
//!
//! Rules are listed inline (`ingress`, `egress`); each has one source (an IPv4 or IPv6 CIDR, or
//! another security group). berth reads them back with DescribeSecurityGroupRules and changes them
//! by rule id, so a rule added or removed by hand shows as drift and is put right by the next
//! `up`. The group's outputs list the rule ids, in the order the rules are declared.
//!
//! `egress` defaults to allowing all traffic out (AWS's own default); `egress: []` removes it.

use std::sync::Arc;
use std::time::Duration;

mod network;
mod rules;

use aws_sdk_ec2::types::{Filter, IpPermission, ResourceType, Tag, TagSpecification};
use berth_engine::async_trait;
use berth_engine::{CallContext, CheckFailure, Input, Path, ProviderError, Resource, ResourceProvider, TypedCreated, TypedObserved};
use serde::{Deserialize, Serialize};

use crate::config::{Aws, Clients};
use crate::error::{AwsError, already_exists, fail, found};
use crate::validate::{self, Problems, Tags};
use crate::wait::{self, Change, Poll};

pub use network::{Subnet, SubnetOutputs, SubnetProvider, Vpc, VpcOutputs, VpcProvider};
pub use rules::Rule;
use rules::{check_rule, validate_description};

fn default_description() -> String {
    "Managed by berth".into()
}

/// `aws:ec2:SecurityGroup`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroup {
    /// The group name, unique in its VPC. Default: the logical name plus a random suffix.
    /// Changing it replaces the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Changing it replaces the group (AWS cannot change it).
    #[serde(default = "default_description")]
    pub description: String,
    /// Changing it replaces the group.
    pub vpc_id: Input<String>,
    #[serde(default)]
    pub ingress: Vec<Rule>,
    /// Default: allow all IPv4 traffic out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<Rule>>,
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
}

impl Default for SecurityGroup {
    fn default() -> Self {
        SecurityGroup {
            name: None,
            description: default_description(),
            vpc_id: Input::Value(String::new()),
            ingress: Vec::new(),
            egress: None,
            tags: Tags::new(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SecurityGroupOutputs {
    pub id: String,
    pub arn: String,
    pub name: String,
    pub owner_id: String,
    /// Rule ids (`sgr-…`) of `ingress`, in declaration order.
    pub ingress_rule_ids: Vec<String>,
    /// Rule ids of `egress`, in declaration order.
    pub egress_rule_ids: Vec<String>,
}

impl Resource for SecurityGroup {
    const TYPE: &'static str = "aws:ec2:SecurityGroup";
    type Outputs = SecurityGroupOutputs;
}

const DEFAULT_DELETE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// One live rule.
struct LiveRule {
    id: String,
    egress: bool,
    rule: Rule,
}

async fn live_rules(clients: &Clients, ctx: &CallContext<'_>, group: &str) -> Result<Vec<LiveRule>, ProviderError> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = clients
            .ec2
            .describe_security_group_rules()
            .filters(Filter::builder().name("group-id").values(group).build())
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(fail(ctx, "DescribeSecurityGroupRules"))?;
        for r in page.security_group_rules() {
            let protocol = r.ip_protocol().unwrap_or("-1").to_string();
            let all = protocol == "-1";
            let rule = Rule {
                from_port: r.from_port().filter(|_| !all),
                to_port: r.to_port().filter(|_| !all),
                protocol,
                cidr_ipv4: r.cidr_ipv4().map(|c| Input::Value(c.to_string())),
                cidr_ipv6: r.cidr_ipv6().map(|c| Input::Value(c.to_string())),
                source_security_group_id: r.referenced_group_info().and_then(|g| g.group_id()).map(|g| Input::Value(g.to_string())),
                description: r.description().filter(|d| !d.is_empty()).map(str::to_string),
            };
            out.push(LiveRule {
                id: r.security_group_rule_id().unwrap_or_default().to_string(),
                egress: r.is_egress().unwrap_or(false),
                rule,
            });
        }
        token = page.next_token().filter(|t| !t.is_empty()).map(str::to_string);
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// Live rules of one direction in the order of `declared` (matched by what they allow), then
/// the undeclared ones.
fn ordered(declared: &[Rule], live: &[&LiveRule]) -> (Vec<Rule>, Vec<String>) {
    let mut used = vec![false; live.len()];
    let mut rules = Vec::new();
    let mut ids = Vec::new();
    for d in declared {
        if let Some(i) = live.iter().enumerate().position(|(i, l)| !used[i] && l.rule.key() == d.key()) {
            used[i] = true;
            rules.push(live[i].rule.clone());
            ids.push(live[i].id.clone());
        }
    }
    for (i, l) in live.iter().enumerate().filter(|(i, _)| !used[*i]) {
        rules.push(l.rule.clone());
        ids.push(live[i].id.clone());
    }
    (rules, ids)
}

pub struct SecurityGroupProvider {
    pub aws: Arc<Aws>,
}

impl SecurityGroupProvider {
    /// Makes the group's rules exactly `desired`: revokes by rule id what is not wanted (or
    /// differs in description), authorizes what is missing. Returns the rule ids.
    async fn reconcile_rules(
        &self,
        ctx: &CallContext<'_>,
        group: &str,
        desired: &SecurityGroup,
    ) -> Result<(Vec<String>, Vec<String>), ProviderError> {
        let clients = self.aws.clients().await?;
        let live = live_rules(clients, ctx, group).await?;
        let empty = Vec::new();
        for (egress, wanted) in [(false, &desired.ingress), (true, desired.egress.as_ref().unwrap_or(&empty))] {
            let mine: Vec<&LiveRule> = live.iter().filter(|l| l.egress == egress).collect();
            let unwanted: Vec<String> = mine.iter().filter(|l| !wanted.contains(&l.rule)).map(|l| l.id.clone()).collect();
            let missing: Vec<IpPermission> = wanted.iter().filter(|w| !mine.iter().any(|l| &l.rule == *w)).map(Rule::permission).collect();
            if !unwanted.is_empty() {
                if egress {
                    clients
                        .ec2
                        .revoke_security_group_egress()
                        .group_id(group)
                        .set_security_group_rule_ids(Some(unwanted))
                        .send()
                        .await
                        .map_err(fail(ctx, "RevokeSecurityGroupEgress"))?;
                } else {
                    clients
                        .ec2
                        .revoke_security_group_ingress()
                        .group_id(group)
                        .set_security_group_rule_ids(Some(unwanted))
                        .send()
                        .await
                        .map_err(fail(ctx, "RevokeSecurityGroupIngress"))?;
                }
            }
            if !missing.is_empty() {
                if egress {
                    clients
                        .ec2
                        .authorize_security_group_egress()
                        .group_id(group)
                        .set_ip_permissions(Some(missing))
                        .send()
                        .await
                        .map_err(fail(ctx, "AuthorizeSecurityGroupEgress"))?;
                } else {
                    clients
                        .ec2
                        .authorize_security_group_ingress()
                        .group_id(group)
                        .set_ip_permissions(Some(missing))
                        .send()
                        .await
                        .map_err(fail(ctx, "AuthorizeSecurityGroupIngress"))?;
                }
            }
        }
        let live = live_rules(clients, ctx, group).await?;
        let ids = |egress: bool, declared: &[Rule]| ordered(declared, &live.iter().filter(|l| l.egress == egress).collect::<Vec<_>>()).1;
        Ok((ids(false, &desired.ingress), ids(true, desired.egress.as_deref().unwrap_or(&[]))))
    }

    /// The id of the group named `name` in `vpc`, if there is one.
    async fn id_by_name(&self, ctx: &CallContext<'_>, vpc: &str, name: &str) -> Result<Option<String>, ProviderError> {
        let clients = self.aws.clients().await?;
        let found = clients
            .ec2
            .describe_security_groups()
            .filters(Filter::builder().name("vpc-id").values(vpc).build())
            .filters(Filter::builder().name("group-name").values(name).build())
            .send()
            .await
            .map_err(fail(ctx, "DescribeSecurityGroups"))?;
        Ok(found.security_groups().iter().find(|g| g.group_name() == Some(name)).and_then(|g| g.group_id()).map(str::to_string))
    }

    async fn describe(&self, ctx: &CallContext<'_>, id: &str) -> Result<Option<aws_sdk_ec2::types::SecurityGroup>, ProviderError> {
        let clients = self.aws.clients().await?;
        let got = found(ctx, "DescribeSecurityGroups", clients.ec2.describe_security_groups().group_ids(id).send().await)?;
        Ok(got.and_then(|g| g.security_groups().first().cloned()))
    }

    fn outputs(
        &self,
        clients: &Clients,
        group: &aws_sdk_ec2::types::SecurityGroup,
        ids: (Vec<String>, Vec<String>),
    ) -> SecurityGroupOutputs {
        let id = group.group_id().unwrap_or_default().to_string();
        let owner = group.owner_id().unwrap_or_default().to_string();
        SecurityGroupOutputs {
            arn: format!("arn:aws:ec2:{}:{owner}:security-group/{id}", clients.region),
            id,
            name: group.group_name().unwrap_or_default().to_string(),
            owner_id: owner,
            ingress_rule_ids: ids.0,
            egress_rule_ids: ids.1,
        }
    }
}

fn ec2_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

#[async_trait]
impl ResourceProvider for SecurityGroupProvider {
    type Resource = SecurityGroup;

    fn replace_on(&self) -> Vec<Path> {
        ["name", "description", "vpc_id"].iter().filter_map(|f| Path::parse(f).ok()).collect()
    }

    fn fixed_name(&self) -> Option<Path> {
        Path::parse("name").ok()
    }

    async fn check(&self, ctx: CallContext<'_>, mut inputs: SecurityGroup, seed: &[u8; 32]) -> Result<SecurityGroup, Vec<CheckFailure>> {
        let mut problems = Problems::new();
        let name = inputs
            .name
            .get_or_insert_with(|| {
                let name = validate::auto_name(ctx.name, seed, 255, false, |c| c.is_ascii_alphanumeric() || "._-".contains(c));
                // `sg-` starts group ids, so AWS refuses it at the start of a name.
                if name.starts_with("sg-") { format!("group-{name}") } else { name }
            })
            .clone();
        if name.is_empty() || name.len() > 255 || name.starts_with("sg-") {
            problems.add("name", format!("`{name}` must have 1 to 255 characters and not start with `sg-`"));
        }
        problems.check("name", validate_description(&name));
        problems.check("description", validate_description(&inputs.description));
        if let Input::Value(vpc) = &inputs.vpc_id {
            problems.check("vpc_id", validate::resource_id(vpc, "vpc-"));
        }
        for (i, rule) in inputs.ingress.iter_mut().enumerate() {
            check_rule(&mut problems, &format!("ingress[{i}]"), rule);
        }
        let egress = inputs.egress.get_or_insert_with(|| vec![Rule::allow_all_ipv4()]);
        for (i, rule) in egress.iter_mut().enumerate() {
            check_rule(&mut problems, &format!("egress[{i}]"), rule);
        }
        if inputs.ingress.len() > 60 || egress.len() > 60 {
            problems.add("ingress", "AWS allows at most 60 inbound and 60 outbound rules per group (default quota)");
        }
        validate::tags(&mut problems, &inputs.tags);
        problems.finish(inputs)
    }

    async fn create(&self, ctx: CallContext<'_>, inputs: &SecurityGroup) -> Result<TypedCreated<SecurityGroupOutputs>, ProviderError> {
        let clients = self.aws.clients().await?;
        let name = inputs.name.clone().ok_or_else(|| ProviderError::other("internal error: group name not set by check"))?;
        let vpc = inputs.vpc_id.value().map_err(|e| ProviderError::other(e.to_string()))?;
        let mut request = clients.ec2.create_security_group().group_name(&name).description(&inputs.description).vpc_id(vpc);
        if !inputs.tags.is_empty() {
            request = request.tag_specifications(
                TagSpecification::builder().resource_type(ResourceType::SecurityGroup).set_tags(Some(ec2_tags(&inputs.tags))).build(),
            );
        }
        let created = match request.send().await {
            Ok(created) => created,
            Err(e) => {
                let e = AwsError::from(e);
                if !e.is_code("InvalidGroup.Duplicate") {
                    return Err(e.at(&ctx, "CreateSecurityGroup"));
                }
                // What to import is the group's id, which only a lookup by name and VPC tells.
                let message = format!("{}: security group `{name}` already exists in {vpc}", ctx.urn);
                let lookup = self.id_by_name(&ctx, vpc, &name).await;
                return Err(already_exists(&ctx, "CreateSecurityGroup", &e, message, lookup));
            }
        };
        let id = created.group_id().unwrap_or_default().to_string();
        let partial = |e: ProviderError| {
            let outputs = SecurityGroupOutputs { id: id.clone(), name: name.clone(), ..SecurityGroupOutputs::default() };
            match crate::created(&id, &outputs) {
                Ok(c) => e.with_partial(c),
                Err(_) => e,
            }
        };
        let ids = self.reconcile_rules(&ctx, &id, inputs).await.map_err(partial)?;
        let group = self
            .describe(&ctx, &id)
            .await
            .map_err(partial)?
            .ok_or_else(|| ProviderError::other(format!("{}: group {id} vanished right after it was created", ctx.urn)))?;
        Ok(TypedCreated { id: id.clone(), outputs: self.outputs(clients, &group, ids) })
    }

    async fn read(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        prior: Option<&SecurityGroup>,
        _o: Option<&SecurityGroupOutputs>,
    ) -> Result<Option<TypedObserved<SecurityGroup>>, ProviderError> {
        let clients = self.aws.clients().await?;
        let Some(group) = self.describe(&ctx, id).await? else { return Ok(None) };
        let live = live_rules(clients, &ctx, id).await?;
        let by_direction = |egress: bool| live.iter().filter(|l| l.egress == egress).collect::<Vec<_>>();
        let (ingress, ingress_ids) = ordered(prior.map(|p| p.ingress.as_slice()).unwrap_or(&[]), &by_direction(false));
        let (egress, egress_ids) = ordered(prior.and_then(|p| p.egress.as_deref()).unwrap_or(&[]), &by_direction(true));
        let inputs = SecurityGroup {
            name: group.group_name().map(str::to_string),
            description: group.description().unwrap_or_default().to_string(),
            vpc_id: Input::Value(group.vpc_id().unwrap_or_default().to_string()),
            ingress,
            egress: Some(egress),
            tags: group
                .tags()
                .iter()
                .map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string()))
                .collect(),
        };
        let outputs = self.outputs(clients, &group, (ingress_ids, egress_ids));
        Ok(Some(TypedObserved { id: id.to_string(), inputs, outputs }))
    }

    async fn update(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        old: &SecurityGroup,
        new: &SecurityGroup,
        old_outputs: &SecurityGroupOutputs,
    ) -> Result<SecurityGroupOutputs, ProviderError> {
        let clients = self.aws.clients().await?;
        let ids = self.reconcile_rules(&ctx, id, new).await?;
        let removed: Vec<Tag> = old.tags.keys().filter(|k| !new.tags.contains_key(*k)).map(|k| Tag::builder().key(k).build()).collect();
        if !removed.is_empty() {
            clients.ec2.delete_tags().resources(id).set_tags(Some(removed)).send().await.map_err(fail(&ctx, "DeleteTags"))?;
        }
        let set: Tags = new.tags.iter().filter(|(k, v)| old.tags.get(*k) != Some(v)).map(|(k, v)| (k.clone(), v.clone())).collect();
        if !set.is_empty() {
            clients.ec2.create_tags().resources(id).set_tags(Some(ec2_tags(&set))).send().await.map_err(fail(&ctx, "CreateTags"))?;
        }
        Ok(SecurityGroupOutputs { ingress_rule_ids: ids.0, egress_rule_ids: ids.1, ..old_outputs.clone() })
    }

    /// Deletes the group; while AWS still has network interfaces in it (an RDS instance or cache
    /// being deleted releases them minutes later) it retries until the delete time limit.
    async fn delete(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        _inputs: &SecurityGroup,
        _o: &SecurityGroupOutputs,
    ) -> Result<(), ProviderError> {
        let started = tokio::time::Instant::now();
        let clients = self.aws.clients().await?;
        wait::until_ready(
            &ctx,
            Change::Delete,
            DEFAULT_DELETE_TIMEOUT,
            clients.poll_interval,
            started,
            "the group's network interfaces to be released",
            || async {
                match clients.ec2.delete_security_group().group_id(id).send().await {
                    Ok(_) => Ok(Poll::Ready(())),
                    Err(e) => {
                        let e = AwsError::from(e);
                        if e.is_not_found() {
                            Ok(Poll::Ready(()))
                        } else if e.is_code("DependencyViolation") {
                            Ok(Poll::Waiting(format!("in use ({})", e.message)))
                        } else {
                            Err(e.at(&ctx, "DeleteSecurityGroup"))
                        }
                    }
                }
            },
        )
        .await
    }

    async fn lookup(&self, ctx: CallContext<'_>, inputs: &SecurityGroup) -> Result<Option<TypedObserved<SecurityGroup>>, ProviderError> {
        let (Some(name), Some(vpc)) = (&inputs.name, inputs.vpc_id.known()) else { return Ok(None) };
        match self.id_by_name(&ctx, vpc, name).await? {
            Some(id) => self.read(ctx, &id, Some(inputs), None).await,
            None => Ok(None),
        }
    }

    async fn find_tagged(&self, ctx: CallContext<'_>, tags: &Tags) -> Result<Vec<String>, ProviderError> {
        if tags.is_empty() {
            return Ok(Vec::new());
        }
        let clients = self.aws.clients().await?;
        let mut request = clients.ec2.describe_security_groups();
        for (key, value) in tags {
            request = request.filters(Filter::builder().name(format!("tag:{key}")).values(value).build());
        }
        let found = request.send().await.map_err(fail(&ctx, "DescribeSecurityGroups"))?;
        Ok(found.security_groups().iter().filter_map(|g| g.group_id().map(str::to_string)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_rules_follow_declaration_order() {
        let a = Rule::tcp_from_cidr(3306, "10.0.0.0/16");
        let b = Rule::tcp_from_group(3306, "sg-12345678");
        let live = [
            LiveRule { id: "sgr-b".into(), egress: false, rule: b.clone() },
            LiveRule { id: "sgr-x".into(), egress: false, rule: Rule::tcp_from_cidr(22, "0.0.0.0/0") },
            LiveRule { id: "sgr-a".into(), egress: false, rule: a.clone() },
        ];
        let refs: Vec<&LiveRule> = live.iter().collect();
        let (rules, ids) = ordered(&[a.clone(), b.clone()], &refs);
        assert_eq!(ids, vec!["sgr-a", "sgr-b", "sgr-x"]);
        assert_eq!(rules[..2], [a, b]);
    }
}
