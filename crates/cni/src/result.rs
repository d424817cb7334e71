//! The ADD result: `ips`, `routes` and `dns` in the format of the configuration's CNI version,
//! with each address's prefix chosen by `ipam.prefix`.

use std::net::IpAddr;

use ipam::cidr::Family;
use ipnet::IpNet;
use serde_json::{Map, Value, json};

use crate::config::{Dns, IpamConfig, PrefixStyle};
use crate::error::{CniError, invalid};
use crate::version::CniVersion;

/// One address the pod holds, with what the result's prefix may be derived from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    /// The pod's address.
    pub address: IpAddr,
    /// The IPPool it came from.
    pub pool: String,
    /// The IPAMBlock's range that records it.
    pub block: IpNet,
    /// The IPPool's range, read only when `ipam.prefix` is `"pool"`.
    pub pool_cidr: Option<IpNet>,
}

impl Granted {
    fn family(&self) -> Family {
        Family::of_addr(&self.address)
    }
}

/// The prefix length of `granted` in the result.
pub fn prefix_len(style: PrefixStyle, granted: &Granted) -> Result<u8, CniError> {
    let family = granted.family();
    match style {
        PrefixStyle::Host => Ok(family.max_prefix()),
        PrefixStyle::Block => Ok(granted.block.prefix_len()),
        PrefixStyle::Pool => granted.pool_cidr.map(|p| p.prefix_len()).ok_or_else(|| {
            invalid(
                "ipam.prefix",
                format!(
                    "\"pool\" needs the range of pool {}, which was not read",
                    granted.pool
                ),
            )
        }),
        PrefixStyle::Fixed { ipv4, ipv6 } => Ok(match family {
            Family::V4 => ipv4,
            Family::V6 => ipv6,
        }
        .unwrap_or(family.max_prefix())),
    }
}

/// Builds the result for the granted addresses (IPv4 first).
pub fn build(
    version: CniVersion,
    ipam: &IpamConfig,
    granted: &[Granted],
) -> Result<Value, CniError> {
    let mut ips = Vec::with_capacity(granted.len());
    for g in granted {
        let family = g.family();
        let len = prefix_len(ipam.prefix, g)?;
        // Cannot fail: `len` is at most the family's maximum by construction of every style.
        let net = IpNet::new(g.address, len)
            .map_err(|_| invalid("ipam.prefix", format!("/{len} is too long for {family}")))?;
        let mut ip = Map::new();
        if version.ips_carry_version() {
            let v = if family == Family::V4 { "4" } else { "6" };
            ip.insert("version".into(), json!(v));
        }
        ip.insert("address".into(), json!(net.to_string()));
        if let Some(gw) = ipam.gateway(family) {
            check_gateway(ipam.prefix, family, gw, &net)?;
            ip.insert("gateway".into(), json!(gw.to_string()));
        }
        ips.push(Value::Object(ip));
    }

    let mut out = Map::new();
    out.insert("cniVersion".into(), json!(version.as_str()));
    out.insert("ips".into(), Value::Array(ips));
    // A route of a family the pod has no address of cannot be installed; leave it out so that
    // one configuration serves IPv4-only, IPv6-only and dual-stack pods.
    let routes: Vec<Value> = ipam
        .routes
        .iter()
        .filter(|r| granted.iter().any(|g| g.family() == Family::of(&r.dst)))
        .map(|r| {
            let mut route = Map::new();
            route.insert("dst".into(), json!(r.dst.to_string()));
            if let Some(gw) = r.gw {
                route.insert("gw".into(), json!(gw.to_string()));
            }
            Value::Object(route)
        })
        .collect();
    if !routes.is_empty() {
        out.insert("routes".into(), Value::Array(routes));
    }
    if let Some(dns) = &ipam.dns {
        out.insert("dns".into(), dns_json(dns));
    }
    Ok(Value::Object(out))
}

/// A gateway outside the pod's subnet (or equal to the pod's address) would make the main
/// plugin fail later with a message that does not point at the configuration.
fn check_gateway(
    style: PrefixStyle,
    family: Family,
    gw: IpAddr,
    net: &IpNet,
) -> Result<(), CniError> {
    let key = format!("ipam.gateway.{}", family.key());
    if gw == net.addr() {
        return Err(invalid(
            key,
            format!("{gw} is the pod's own address; the gateway must lie outside the pools"),
        ));
    }
    // With host prefixes the gateway is reached by an on-link route, never inside the /32.
    if style != PrefixStyle::Host && !net.contains(&gw) {
        return Err(invalid(
            key,
            format!(
                "{gw} is outside the pod's subnet {}; widen ipam.prefix or change the gateway",
                net.trunc()
            ),
        ));
    }
    Ok(())
}

fn dns_json(dns: &Dns) -> Value {
    let mut out = Map::new();
    if !dns.nameservers.is_empty() {
        out.insert("nameservers".into(), json!(dns.nameservers));
    }
    if let Some(domain) = &dns.domain {
        out.insert("domain".into(), json!(domain));
    }
    if !dns.search.is_empty() {
        out.insert("search".into(), json!(dns.search));
    }
    if !dns.options.is_empty() {
        out.insert("options".into(), json!(dns.options));
    }
    Value::Object(out)
}

/// The VERSION reply.
pub fn version_info() -> Value {
    json!({
        "cniVersion": CniVersion::LATEST.as_str(),
        "supportedVersions": CniVersion::supported_list(),
    })
}

/// An error reply.
pub fn error_reply(version: CniVersion, code: u32, msg: &str, details: Option<&str>) -> Value {
    let mut out = Map::new();
    out.insert("cniVersion".into(), json!(version.as_str()));
    out.insert("code".into(), json!(code));
    out.insert("msg".into(), json!(msg));
    if let Some(details) = details {
        out.insert("details".into(), json!(details));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests;
