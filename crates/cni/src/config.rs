//! The network configuration read from standard input: the CNI keys the plugin uses and the
//! `ipam` section that configures it (documented in the crate README).
//!
//! Unknown keys are ignored, as the main plugin's own keys share the document. A known key with
//! a value of the wrong type or out of range is an error that names the key.

mod access;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipam::cidr::Family;
use ipnet::IpNet;
use serde_json::{Map, Value};

use crate::error::{CniError, invalid};
use crate::log::Level;
use crate::text::echo;
use crate::version::CniVersion;
use access::{Obj, join, wrong_type};

/// How long ADD waits for the controller's assignment when `ipam.timeout` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest `ipam.timeout` accepted: beyond it the runtime's own timeout fires first.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);

/// The parsed network configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    /// `cniVersion`: also the format of the reply.
    pub version: CniVersion,
    /// `name` of the network, for logs.
    pub name: String,
    /// The `ipam` section.
    pub ipam: IpamConfig,
    /// Addresses of `prevResult.ips` (CHECK and DEL), when given.
    pub prev_ips: Option<Vec<IpAddr>>,
    /// Container IDs of `cni.dev/valid-attachments` (GC, which only logs how many), when given.
    pub valid_attachments: Option<Vec<String>>,
}

/// Who answers ADD, CHECK and STATUS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// `kubeconfig` alone: the plugin reads the API server itself with the node's credentials.
    Direct {
        /// The node's kubeconfig.
        kubeconfig: PathBuf,
    },
    /// `agentSocket`: the node agent answers over this unix socket with its own long-lived
    /// client; `kubeconfig`, if given too, is not read.
    Agent {
        /// The agent's socket.
        socket: PathBuf,
    },
}

/// The `ipam` section.
#[derive(Debug, Clone, PartialEq)]
pub struct IpamConfig {
    /// `kubeconfig` or `agentSocket`: how the API server is reached.
    pub backend: Backend,
    /// `timeout`: how long ADD waits for the controller's assignment.
    pub timeout: Duration,
    /// `prefix`: the prefix length of the addresses in the result.
    pub prefix: PrefixStyle,
    /// `gateway.ipv4`
    pub gateway_v4: Option<IpAddr>,
    /// `gateway.ipv6`
    pub gateway_v6: Option<IpAddr>,
    /// `routes`
    pub routes: Vec<Route>,
    /// `dns`
    pub dns: Option<Dns>,
    /// `logLevel`
    pub log_level: Level,
    /// `logFile`: logs are appended there as well as written to stderr.
    pub log_file: Option<PathBuf>,
    /// `nodeName`: the node this plugin runs on. Accepted and type-checked; no command uses it
    /// since GC has nothing to collect (the chart still sets it).
    pub node_name: Option<String>,
}

/// The prefix length given to each address in the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixStyle {
    /// `"host"`: /32 and /128, for routed plugins (ptp, ...).
    Host,
    /// `"block"`: the prefix of the IPAMBlock holding the address.
    Block,
    /// `"pool"`: the prefix of the IPPool the address came from (one more API read).
    Pool,
    /// `{"ipv4": N, "ipv6": M}`: a fixed length per family, e.g. a bridge's subnet; a family
    /// left out gets a host prefix.
    Fixed {
        /// IPv4 prefix length.
        ipv4: Option<u8>,
        /// IPv6 prefix length.
        ipv6: Option<u8>,
    },
}

/// One route of the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Destination.
    pub dst: IpNet,
    /// Next hop; the main plugin's default when absent.
    pub gw: Option<IpAddr>,
}

/// The `dns` section, passed through to the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dns {
    /// Name server addresses.
    pub nameservers: Vec<String>,
    /// Local domain.
    pub domain: Option<String>,
    /// Search domains.
    pub search: Vec<String>,
    /// Resolver options.
    pub options: Vec<String>,
}

impl IpamConfig {
    /// The configured gateway of a family.
    pub fn gateway(&self, family: Family) -> Option<IpAddr> {
        match family {
            Family::V4 => self.gateway_v4,
            Family::V6 => self.gateway_v6,
        }
    }
}

/// Parses standard input into a JSON object, without ever quoting it.
pub fn parse_json(stdin: &[u8]) -> Result<Map<String, Value>, CniError> {
    match serde_json::from_slice::<Value>(stdin) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(CniError::Decode {
            reason: format!("found {}", access::type_name(&other)),
        }),
        // serde's message may quote a fragment of the input: keep only its position.
        Err(e) => Err(CniError::Decode {
            reason: format!(
                "invalid JSON ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
        }),
    }
}

/// Reads `cniVersion`: code 7 when missing, code 1 when not one this plugin speaks.
pub fn parse_version(root: &Map<String, Value>) -> Result<CniVersion, CniError> {
    let raw = Obj::root(root).required_str("cniVersion", "a CNI version such as \"1.1.0\"")?;
    CniVersion::parse(raw).ok_or_else(|| CniError::IncompatibleVersion {
        reason: format!("cniVersion {:?} is not supported", echo(raw)),
        supported: CniVersion::supported_list().join(", "),
    })
}

/// Reads the whole configuration.
pub fn parse(root: &Map<String, Value>) -> Result<NetConf, CniError> {
    let version = parse_version(root)?;
    let top = Obj::root(root);
    let name = top.str("name")?.unwrap_or_default().to_owned();
    let ipam_map = top
        .map("ipam")?
        .ok_or_else(|| invalid("ipam", "missing; expected an object"))?;
    let ipam = parse_ipam(Obj::at("ipam", ipam_map))?;
    let prev_ips = match top.map("prevResult")? {
        Some(prev) => Some(parse_prev_ips(Obj::at("prevResult", prev))?),
        None => None,
    };
    // libcni sends both keys (the spec first named it `cni.dev/attachments`).
    let valid_attachments = match top.get("cni.dev/valid-attachments") {
        Some(_) => Some(parse_attachments(&top, "cni.dev/valid-attachments")?),
        None if top.get("cni.dev/attachments").is_some() => {
            Some(parse_attachments(&top, "cni.dev/attachments")?)
        }
        None => None,
    };
    Ok(NetConf {
        version,
        name,
        ipam,
        prev_ips,
        valid_attachments,
    })
}

fn parse_ipam(o: Obj<'_>) -> Result<IpamConfig, CniError> {
    let non_empty = |key: &str| match o.str(key)? {
        Some("") => Err(invalid(o.key(key), "must not be empty")),
        other => Ok(other),
    };
    // Both are checked when both are given, so that removing agentSocket later leaves a
    // configuration that works.
    let kubeconfig = non_empty("kubeconfig")?;
    let backend = match (non_empty("agentSocket")?, kubeconfig) {
        (Some(socket), _) => Backend::Agent {
            socket: PathBuf::from(socket),
        },
        (None, Some(kubeconfig)) => Backend::Direct {
            kubeconfig: PathBuf::from(kubeconfig),
        },
        (None, None) => {
            return Err(invalid(
                o.key("kubeconfig"),
                "missing; expected the path of the node's kubeconfig file (or ipam.agentSocket, the node agent's socket)",
            ));
        }
    };
    let timeout = match o.number("timeout", "a number of seconds")? {
        None => DEFAULT_TIMEOUT,
        Some(secs) if secs <= MAX_TIMEOUT.as_secs_f64() => Duration::from_secs_f64(secs),
        Some(_) => {
            return Err(invalid(
                o.key("timeout"),
                format!("at most {} seconds", MAX_TIMEOUT.as_secs()),
            ));
        }
    };
    let (gateway_v4, gateway_v6) = parse_gateways(&o)?;
    let log_level = match o.str("logLevel")? {
        None => Level::Info,
        Some(raw) => Level::parse(raw).ok_or_else(|| {
            invalid(
                o.key("logLevel"),
                format!(
                    "{:?} is not one of \"error\", \"warn\", \"info\", \"debug\"",
                    echo(raw)
                ),
            )
        })?,
    };
    Ok(IpamConfig {
        backend,
        timeout,
        prefix: parse_prefix(&o)?,
        gateway_v4,
        gateway_v6,
        routes: parse_routes(&o)?,
        dns: parse_dns(&o)?,
        log_level,
        log_file: o.str("logFile")?.map(PathBuf::from),
        node_name: o.str("nodeName")?.map(str::to_owned),
    })
}

fn parse_prefix(o: &Obj<'_>) -> Result<PrefixStyle, CniError> {
    const EXPECTED: &str =
        "\"host\", \"block\", \"pool\" or an object such as {\"ipv4\": 24, \"ipv6\": 64}";
    let key = o.key("prefix");
    match o.get("prefix") {
        None => Ok(PrefixStyle::Host),
        Some(Value::String(s)) => match s.as_str() {
            "host" => Ok(PrefixStyle::Host),
            "block" => Ok(PrefixStyle::Block),
            "pool" => Ok(PrefixStyle::Pool),
            other => Err(invalid(key, format!("{:?} is not {EXPECTED}", echo(other)))),
        },
        Some(Value::Object(map)) => {
            let per = Obj::at(&key, map);
            Ok(PrefixStyle::Fixed {
                ipv4: prefix_len(&per, "ipv4", Family::V4)?,
                ipv6: prefix_len(&per, "ipv6", Family::V6)?,
            })
        }
        Some(other) => Err(wrong_type(&key, EXPECTED, other)),
    }
}

fn prefix_len(o: &Obj<'_>, key: &str, family: Family) -> Result<Option<u8>, CniError> {
    let max = family.max_prefix();
    let expected = format!("a whole number from 0 to {max}");
    match o.get(key) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|v| u8::try_from(v).ok())
            .filter(|v| *v <= max)
            .map(Some)
            .ok_or_else(|| invalid(o.key(key), format!("expected {expected}"))),
        Some(other) => Err(wrong_type(&o.key(key), &expected, other)),
    }
}

fn parse_gateways(o: &Obj<'_>) -> Result<(Option<IpAddr>, Option<IpAddr>), CniError> {
    let Some(map) = o.map("gateway")? else {
        return Ok((None, None));
    };
    let path = o.key("gateway");
    let per = Obj::at(&path, map);
    Ok((
        family_addr(&per, "ipv4", Family::V4)?,
        family_addr(&per, "ipv6", Family::V6)?,
    ))
}

fn family_addr(o: &Obj<'_>, key: &str, family: Family) -> Result<Option<IpAddr>, CniError> {
    let Some(raw) = o.str(key)? else {
        return Ok(None);
    };
    match raw.parse::<IpAddr>() {
        Ok(addr) if Family::of_addr(&addr) == family => Ok(Some(addr)),
        _ => Err(invalid(
            o.key(key),
            format!("{:?} is not an {family} address", echo(raw)),
        )),
    }
}

fn parse_routes(o: &Obj<'_>) -> Result<Vec<Route>, CniError> {
    let Some(items) = o.list("routes")? else {
        return Ok(Vec::new());
    };
    let mut routes = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("{}[{i}]", o.key("routes"));
        let Value::Object(map) = item else {
            return Err(wrong_type(
                &path,
                "an object such as {\"dst\": \"0.0.0.0/0\"}",
                item,
            ));
        };
        let r = Obj::at(&path, map);
        let raw = r.required_str("dst", "a destination CIDR such as \"0.0.0.0/0\"")?;
        let dst: IpNet = raw
            .parse()
            .map_err(|_| invalid(r.key("dst"), format!("{:?} is not a CIDR", echo(raw))))?;
        if dst.trunc() != dst {
            return Err(invalid(
                r.key("dst"),
                format!(
                    "{:?} has host bits set; did you mean {}?",
                    echo(raw),
                    dst.trunc()
                ),
            ));
        }
        let gw = family_addr(&r, "gw", Family::of(&dst))?;
        routes.push(Route { dst, gw });
    }
    Ok(routes)
}

fn parse_dns(o: &Obj<'_>) -> Result<Option<Dns>, CniError> {
    let Some(map) = o.map("dns")? else {
        return Ok(None);
    };
    let path = o.key("dns");
    let d = Obj::at(&path, map);
    let nameservers = d.strings("nameservers")?;
    for (i, ns) in nameservers.iter().enumerate() {
        if ns.parse::<IpAddr>().is_err() {
            return Err(invalid(
                format!("{}[{i}]", d.key("nameservers")),
                format!("{:?} is not an IP address", echo(ns)),
            ));
        }
    }
    Ok(Some(Dns {
        nameservers,
        domain: d.str("domain")?.map(str::to_owned),
        search: d.strings("search")?,
        options: d.strings("options")?,
    }))
}

fn parse_prev_ips(o: Obj<'_>) -> Result<Vec<IpAddr>, CniError> {
    let Some(items) = o.list("ips")? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("{}[{i}]", o.key("ips"));
        let Value::Object(map) = item else {
            return Err(wrong_type(&path, "an object", item));
        };
        let ip = Obj::at(&path, map);
        let raw = ip.required_str("address", "an address in CIDR form")?;
        let net: IpNet = raw.parse().map_err(|_| {
            invalid(
                ip.key("address"),
                format!("{:?} is not ADDRESS/PREFIX", echo(raw)),
            )
        })?;
        out.push(net.addr());
    }
    Ok(out)
}

fn parse_attachments(top: &Obj<'_>, key: &str) -> Result<Vec<String>, CniError> {
    let items = top.list(key)?.map(Vec::as_slice).unwrap_or_default();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("{}[{i}]", join("", key));
        let Value::Object(map) = item else {
            return Err(wrong_type(&path, "an object with containerID", item));
        };
        let a = Obj::at(&path, map);
        out.push(a.required_str("containerID", "a container ID")?.to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
