//! Security group rules: their shape, AWS's rules for them, and how they are sent to EC2.

use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range, UserIdGroupPair};
use berth_engine::Input;
use serde::{Deserialize, Serialize};

use crate::validate::{self, Problems};

/// One security group rule: a protocol, a port range and one source (or, for egress, destination).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// `tcp`, `udp`, `icmp`, `icmpv6`, a protocol number, or `-1` (all; `all` is accepted too).
    pub protocol: String,
    /// First port (ICMP: type). Not used with protocol `-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_port: Option<i32>,
    /// Last port (ICMP: code). Defaults to `from_port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr_ipv4: Option<Input<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr_ipv6: Option<Input<String>>,
    /// Another security group whose members are the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_security_group_id: Option<Input<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Rule {
    /// Allows everything to anywhere (IPv4): AWS's default egress rule.
    pub fn allow_all_ipv4() -> Rule {
        Rule { protocol: "-1".into(), cidr_ipv4: Some(Input::Value("0.0.0.0/0".into())), ..Rule::default() }
    }

    /// TCP on one port from a CIDR block.
    pub fn tcp_from_cidr(port: i32, cidr: &str) -> Rule {
        Rule {
            protocol: "tcp".into(),
            from_port: Some(port),
            to_port: Some(port),
            cidr_ipv4: Some(Input::Value(cidr.into())),
            ..Rule::default()
        }
    }

    /// TCP on one port from the members of another security group.
    pub fn tcp_from_group(port: i32, group: impl Into<Input<String>>) -> Rule {
        Rule {
            protocol: "tcp".into(),
            from_port: Some(port),
            to_port: Some(port),
            source_security_group_id: Some(group.into()),
            ..Rule::default()
        }
    }

    /// What the rule is, for matching live rules (the description is not part of it).
    pub(super) fn key(&self) -> (String, Option<i32>, Option<i32>, Option<String>) {
        let source = [&self.cidr_ipv4, &self.cidr_ipv6, &self.source_security_group_id]
            .into_iter()
            .flatten()
            .next()
            .map(|s| s.known().cloned().unwrap_or_default());
        (self.protocol.clone(), self.from_port, self.to_port, source)
    }

    pub(super) fn permission(&self) -> IpPermission {
        let description = self.description.clone();
        let mut p = IpPermission::builder().ip_protocol(&self.protocol).set_from_port(self.from_port).set_to_port(self.to_port);
        if let Some(cidr) = self.cidr_ipv4.as_ref().and_then(|c| c.known()) {
            p = p.ip_ranges(IpRange::builder().cidr_ip(cidr).set_description(description).build());
        } else if let Some(cidr) = self.cidr_ipv6.as_ref().and_then(|c| c.known()) {
            p = p.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(cidr).set_description(description).build());
        } else if let Some(group) = self.source_security_group_id.as_ref().and_then(|g| g.known()) {
            p = p.user_id_group_pairs(UserIdGroupPair::builder().group_id(group).set_description(description).build());
        }
        p.build()
    }
}

pub(super) fn check_rule(problems: &mut Problems, field: &str, rule: &mut Rule) {
    if rule.protocol == "all" {
        rule.protocol = "-1".into();
    }
    let protocol = rule.protocol.to_ascii_lowercase();
    rule.protocol = protocol.clone();
    let numeric = protocol.parse::<i32>().ok();
    match (protocol.as_str(), numeric) {
        ("-1", _) => {
            if rule.from_port.is_some_and(|p| p != -1) || rule.to_port.is_some_and(|p| p != -1) {
                problems.add(field, "protocol -1 (all traffic) covers every port: leave out from_port and to_port");
            }
            rule.from_port = None;
            rule.to_port = None;
        }
        ("tcp" | "udp", _) | (_, Some(6 | 17)) => {
            if rule.to_port.is_none() {
                rule.to_port = rule.from_port;
            }
            match (rule.from_port, rule.to_port) {
                (Some(from), Some(to)) if (0..=65535).contains(&from) && (0..=65535).contains(&to) && from <= to => {}
                (None, _) => problems
                    .add(&format!("{field}.from_port"), format!("{protocol} rules need a port (from_port, and to_port for a range)")),
                (Some(from), Some(to)) => {
                    problems.add(&format!("{field}.from_port"), format!("ports {from}..{to}: use 0 to 65535 with from_port ≤ to_port"))
                }
                _ => {}
            }
        }
        ("icmp" | "icmpv6", _) => {
            if rule.to_port.is_none() {
                rule.to_port = rule.from_port.map(|_| -1);
            }
        }
        (_, Some(n)) if (0..=255).contains(&n) => {}
        _ => {
            problems.add(&format!("{field}.protocol"), format!("`{protocol}` is not tcp, udp, icmp, icmpv6, -1 or a protocol number 0-255"))
        }
    }
    let sources =
        [rule.cidr_ipv4.is_some(), rule.cidr_ipv6.is_some(), rule.source_security_group_id.is_some()].iter().filter(|s| **s).count();
    if sources != 1 {
        problems.add(field, "give exactly one of cidr_ipv4, cidr_ipv6 or source_security_group_id (one source per rule)");
    }
    if let Some(Input::Value(cidr)) = &rule.cidr_ipv4 {
        problems.check(&format!("{field}.cidr_ipv4"), validate::cidr_ipv4(cidr));
    }
    if let Some(Input::Value(cidr)) = &rule.cidr_ipv6 {
        problems.check(&format!("{field}.cidr_ipv6"), validate::cidr_ipv6(cidr));
    }
    if let Some(Input::Value(group)) = &rule.source_security_group_id {
        problems.check(&format!("{field}.source_security_group_id"), validate::resource_id(group, "sg-"));
    }
    if let Some(d) = &rule.description {
        problems.check(&format!("{field}.description"), validate_description(d));
    }
}

/// EC2's character set for group and rule descriptions.
pub(super) fn validate_description(text: &str) -> Result<(), String> {
    validate::max_len(text, 255)?;
    match text.chars().find(|c| !(c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=&;{}!$*".contains(*c))) {
        Some(c) => Err(format!("contains `{c}`; EC2 allows letters, digits, spaces and ._-:/()#,@[]+=&;{{}}!$*")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_normalized_and_checked() {
        let mut p = Problems::new();
        let mut all = Rule { protocol: "all".into(), cidr_ipv4: Some(Input::Value("0.0.0.0/0".into())), ..Rule::default() };
        check_rule(&mut p, "egress[0]", &mut all);
        assert_eq!(all, Rule::allow_all_ipv4());
        let mut single =
            Rule { protocol: "TCP".into(), from_port: Some(3306), cidr_ipv4: Some(Input::Value("10.0.0.0/16".into())), ..Rule::default() };
        check_rule(&mut p, "ingress[0]", &mut single);
        assert_eq!(single, Rule::tcp_from_cidr(3306, "10.0.0.0/16"));
        assert!(p.0.is_empty(), "{:?}", p.0);

        let mut two_sources = Rule { cidr_ipv6: Some(Input::Value("::/0".into())), ..Rule::tcp_from_cidr(80, "10.0.0.0/8") };
        check_rule(&mut p, "ingress[1]", &mut two_sources);
        let mut bad_port = Rule::tcp_from_cidr(70000, "10.0.0.0/8");
        check_rule(&mut p, "ingress[2]", &mut bad_port);
        let mut bad_cidr = Rule::tcp_from_cidr(80, "10.0.0.0/33");
        check_rule(&mut p, "ingress[3]", &mut bad_cidr);
        let mut bad_group = Rule::tcp_from_group(80, "vpc-12345678");
        check_rule(&mut p, "ingress[4]", &mut bad_group);
        let fields: Vec<String> = p.0.iter().map(|f| f.path.clone().unwrap_or_default()).collect();
        assert_eq!(fields, vec!["ingress[1]", "ingress[2].from_port", "ingress[3].cidr_ipv4", "ingress[4].source_security_group_id"]);
    }
}
