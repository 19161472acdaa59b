//! The `network` stack program: a VPC with subnets, exporting what the edxapp stacks read
//! (`vpc_id`, `vpc_cidr`, `subnet_ids`, `pod_cidrs`). Real environments have their own network
//! stacks; the testbed uses this one (`stacks/network.local.yaml`).

use berth_engine::{Options, Output, ProgramResult, Stack};
use berth_provider_aws::ec2::{Subnet, Vpc};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// The VPC's range, e.g. 10.20.0.0/16.
    pub cidr: String,
    /// At least two subnets in different zones (RDS subnet groups need two).
    pub subnets: Vec<SubnetConfig>,
    /// Where pods get their addresses (allowed to reach the database and cache).
    pub pod_cidrs: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetConfig {
    pub cidr: String,
    pub zone: String,
}

pub fn network(stack: &mut Stack) -> ProgramResult {
    let config: NetworkConfig = stack.config()?;
    if config.subnets.len() < 2 {
        return Err("config.subnets: list at least two subnets in different zones (RDS and ElastiCache subnet groups need two)".into());
    }
    let tags = [("berth:stack".to_string(), stack.name().to_string())].into();
    let vpc = stack.register("vpc", Vpc { cidr_block: config.cidr.clone(), tags, ..Vpc::default() }, Options::new())?;
    let mut ids: Vec<Output<String>> = Vec::new();
    for (i, subnet) in config.subnets.iter().enumerate() {
        let handle = stack.register(
            &format!("subnet-{i}"),
            Subnet {
                vpc_id: vpc.output::<String>("id").into(),
                cidr_block: subnet.cidr.clone(),
                availability_zone: Some(subnet.zone.clone()),
                ..Subnet::default()
            },
            Options::new(),
        )?;
        ids.push(handle.output("id"));
    }
    stack.export("vpc_id", &vpc.output::<String>("id"));
    stack.export_value("vpc_cidr", &config.cidr);
    stack.export("subnet_ids", &Output::all(&ids));
    stack.export_value("pod_cidrs", &config.pod_cidrs);
    Ok(())
}
