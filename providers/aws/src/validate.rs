//! AWS's own input rules, checked before any call (moto accepts most bad input silently; AWS does
//! not, and finding out from AWS in the middle of an apply is too late). Also tags, and automatic
//! physical names.

use std::collections::BTreeMap;

use berth_engine::CheckFailure;
use berth_engine::typed::auto_suffix;

/// Resource tags. AWS allows 50 per resource, keys of 1–128 characters not starting with `aws:`,
/// values of up to 256.
pub type Tags = BTreeMap<String, String>;

/// Whether `live` carries every one of `wanted` (for searches by tags).
pub fn has_tags<'a>(live: impl IntoIterator<Item = (&'a str, &'a str)>, wanted: &Tags) -> bool {
    let live: BTreeMap<&str, &str> = live.into_iter().collect();
    !wanted.is_empty() && wanted.iter().all(|(k, v)| live.get(k.as_str()) == Some(&v.as_str()))
}

/// Problems found so far in one resource's inputs; all of them are reported at once.
#[derive(Default)]
pub struct Problems(pub Vec<CheckFailure>);

impl Problems {
    pub fn new() -> Problems {
        Problems::default()
    }

    pub fn add(&mut self, field: &str, reason: impl Into<String>) {
        self.0.push(CheckFailure::field(field, reason));
    }

    /// Records `result`'s error against `field`.
    pub fn check(&mut self, field: &str, result: Result<(), String>) {
        if let Err(reason) = result {
            self.add(field, reason);
        }
    }

    pub fn finish<T>(self, value: T) -> Result<T, Vec<CheckFailure>> {
        if self.0.is_empty() { Ok(value) } else { Err(self.0) }
    }
}

pub fn tags(problems: &mut Problems, tags: &Tags) {
    if tags.len() > 50 {
        problems.add("tags", format!("{} tags; AWS allows at most 50 per resource", tags.len()));
    }
    for (key, value) in tags {
        if key.is_empty() || key.chars().count() > 128 {
            problems.add(&format!("tags.{key}"), "tag keys must have 1 to 128 characters");
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            problems.add(&format!("tags.{key}"), "tag keys starting with `aws:` are reserved for AWS");
        }
        if value.chars().count() > 256 {
            problems.add(&format!("tags.{key}"), "tag values may have at most 256 characters");
        }
    }
}

/// `<logical name>-<suffix>` shaped to a type's naming rules: lower-case when `lower`, characters
/// outside `allowed` become `-`, starting with a letter, at most `max` long.
pub fn auto_name(logical: &str, seed: &[u8; 32], max: usize, lower: bool, allowed: fn(char) -> bool) -> String {
    let suffix = auto_suffix(seed, 7);
    let mut base: String =
        logical.chars().map(|c| if lower { c.to_ascii_lowercase() } else { c }).map(|c| if allowed(c) { c } else { '-' }).collect();
    while base.contains("--") {
        base = base.replace("--", "-");
    }
    let mut base = base.trim_matches('-').to_string();
    if !base.starts_with(|c: char| c.is_ascii_alphabetic()) {
        base.insert(0, 'r');
    }
    base.truncate(max.saturating_sub(suffix.len() + 1));
    format!("{}-{suffix}", base.trim_end_matches('-'))
}

/// RDS and ElastiCache style identifiers: letters, digits and hyphens, starting with a letter, no
/// two hyphens in a row nor one at the end.
pub fn hyphenated_identifier(value: &str, max: usize, lower_only: bool) -> Result<(), String> {
    if value.is_empty() || value.len() > max {
        return Err(format!("`{value}` must have 1 to {max} characters"));
    }
    if !value.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(format!("`{value}` must start with a letter"));
    }
    if let Some(c) = value.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-')) {
        return Err(format!("`{value}` contains `{c}`; only letters, digits and hyphens are allowed"));
    }
    if lower_only && value.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!("`{value}` has upper-case letters; AWS stores it in lower case, so write it that way"));
    }
    if value.contains("--") || value.ends_with('-') {
        return Err(format!("`{value}` must not contain two consecutive hyphens or end with one"));
    }
    Ok(())
}

/// An AWS resource id with a known prefix (`vpc-`, `subnet-`, `sg-`): 8 or 17 hex digits.
pub fn resource_id(value: &str, prefix: &str) -> Result<(), String> {
    let hex = value.strip_prefix(prefix).ok_or_else(|| format!("`{value}` is not a {prefix}… id"))?;
    if hex.len() < 8 || hex.len() > 17 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("`{value}` is not a valid {prefix}… id ({prefix} followed by 8 or 17 hexadecimal digits)"));
    }
    Ok(())
}

/// An IPv4 CIDR block in canonical form (`10.0.0.0/16`: no host bits set).
pub fn cidr_ipv4(value: &str) -> Result<(), String> {
    let (addr, len) = value.split_once('/').ok_or_else(|| format!("`{value}` is not a CIDR block (expected e.g. 10.0.0.0/16)"))?;
    let ip: std::net::Ipv4Addr = addr.parse().map_err(|_| format!("`{value}`: `{addr}` is not an IPv4 address"))?;
    let len: u32 = len.parse().ok().filter(|l| *l <= 32).ok_or_else(|| format!("`{value}`: the prefix length must be 0 to 32"))?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    let network = u32::from(ip) & mask;
    if network != u32::from(ip) {
        return Err(format!("`{value}` has host bits set; write the network address {}/{len}", std::net::Ipv4Addr::from(network)));
    }
    Ok(())
}

/// An IPv6 CIDR block.
pub fn cidr_ipv6(value: &str) -> Result<(), String> {
    let (addr, len) = value.split_once('/').ok_or_else(|| format!("`{value}` is not an IPv6 CIDR block (expected e.g. ::/0)"))?;
    addr.parse::<std::net::Ipv6Addr>().map_err(|_| format!("`{value}`: `{addr}` is not an IPv6 address"))?;
    len.parse::<u32>().ok().filter(|l| *l <= 128).ok_or_else(|| format!("`{value}`: the prefix length must be 0 to 128"))?;
    Ok(())
}

/// Text of at most `max` characters.
pub fn max_len(value: &str, max: usize) -> Result<(), String> {
    let n = value.chars().count();
    if n > max { Err(format!("has {n} characters; at most {max} are allowed")) } else { Ok(()) }
}

/// A passwordlike value: `min..=max` printable ASCII characters, none of `forbidden`. The value is
/// never echoed.
pub fn secret_text(value: &str, min: usize, max: usize, forbidden: &[char], what: &str) -> Result<(), String> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(format!("{what} has {n} characters; AWS requires {min} to {max}"));
    }
    if value.chars().any(|c| !c.is_ascii_graphic() || forbidden.contains(&c)) {
        let listed: String = forbidden.iter().map(|c| format!(" {c}")).collect();
        return Err(format!("{what} may contain only printable ASCII characters, and none of:{listed} (nor spaces)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(hyphenated_identifier("edxapp-db", 63, true).is_ok());
        assert!(hyphenated_identifier("1db", 63, true).unwrap_err().contains("start with a letter"));
        assert!(hyphenated_identifier("db--x", 63, true).is_err());
        assert!(hyphenated_identifier("db-", 63, true).is_err());
        assert!(hyphenated_identifier("Db", 63, true).unwrap_err().contains("lower case"));
        assert!(hyphenated_identifier("db_x", 63, true).unwrap_err().contains('_'));
        assert!(hyphenated_identifier(&"a".repeat(64), 63, true).is_err());
        assert!(resource_id("vpc-0123456789abcdef0", "vpc-").is_ok());
        assert!(resource_id("vpc-12345678", "vpc-").is_ok());
        assert!(resource_id("vpc-xyz", "vpc-").is_err());
        assert!(resource_id("sg-12345678", "vpc-").is_err());
    }

    #[test]
    fn cidrs() {
        assert!(cidr_ipv4("10.0.0.0/16").is_ok());
        assert!(cidr_ipv4("0.0.0.0/0").is_ok());
        assert!(cidr_ipv4("10.0.0.0/33").unwrap_err().contains("0 to 32"));
        assert!(cidr_ipv4("10.0.0.1/16").unwrap_err().contains("10.0.0.0/16"));
        assert!(cidr_ipv4("10.0.0/16").is_err());
        assert!(cidr_ipv4("10.0.0.0").is_err());
        assert!(cidr_ipv6("::/0").is_ok());
        assert!(cidr_ipv6("2001:db8::/129").is_err());
    }

    #[test]
    fn auto_names_follow_rules() {
        let seed = [0xab; 32];
        let name = auto_name("Edx_App--DB", &seed, 63, true, |c| c.is_ascii_alphanumeric() || c == '-');
        assert_eq!(name, "edx-app-db-abababa");
        assert!(hyphenated_identifier(&name, 63, true).is_ok(), "{name}");
        let long = auto_name(&"x".repeat(100), &seed, 40, true, |c| c.is_ascii_alphanumeric() || c == '-');
        assert_eq!(long.len(), 40);
        let digits = auto_name("9lives", &seed, 63, true, |c| c.is_ascii_alphanumeric() || c == '-');
        assert!(digits.starts_with("r9lives-"), "{digits}");
    }

    #[test]
    fn secrets_and_tags() {
        assert!(secret_text("correct-horse", 8, 41, &['/', '"', '@'], "the password").is_ok());
        let short = secret_text("short", 8, 41, &['/', '"', '@'], "the password").unwrap_err();
        assert!(short.contains("5 characters") && !short.contains("short"));
        assert!(secret_text("with space!", 8, 41, &['/'], "x").is_err());
        assert!(secret_text("slash/slash", 8, 41, &['/'], "x").is_err());
        let mut p = Problems::new();
        let mut t = Tags::new();
        t.insert("aws:x".into(), "v".into());
        t.insert("ok".into(), "v".repeat(300));
        tags(&mut p, &t);
        assert_eq!(p.0.len(), 2);
    }
}
