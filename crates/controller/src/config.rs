//! Command-line flags and the settings derived from them and from the cluster.

use std::net::SocketAddr;
use std::time::Duration;

use ipam::cidr::Family;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client};

/// Flags of `rangepool-controller`. The names are an interface: the Helm chart and admins' scripts
/// rely on them.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "rangepool-controller", version, about)]
pub struct Flags {
    /// Kubeconfig to use; in-cluster configuration (or KUBECONFIG) when absent.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<std::path::PathBuf>,

    /// A cluster pod CIDR (repeatable, IPv4 and IPv6). When absent, the kubeadm-config ConfigMap's
    /// podSubnet is used; when that is absent too, no pool is allocatable.
    #[arg(long = "pod-cidr", value_name = "CIDR")]
    pub pod_cidrs: Vec<String>,

    /// Do not create a default pool per pod CIDR on a cluster that has no pool at all.
    #[arg(long)]
    pub no_default_pool: bool,

    /// How long a node blocks are affine to must be missing before the blocks lose its
    /// affinity (a node may register again under its name). Allocations of pods that are gone
    /// are released as soon as a direct read proves it, without waiting.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub leak_grace_period: Duration,

    /// How often the leak sweep runs.
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = parse_duration)]
    pub sweep_interval: Duration,

    /// Address families to assign (`ipv4`, `ipv6`, or both, comma separated). Defaults to the
    /// families of the pod CIDRs.
    #[arg(long, value_name = "FAMILIES", value_delimiter = ',')]
    pub families: Vec<String>,

    /// Never lend an address from another node's block.
    #[arg(long)]
    pub strict_affinity: bool,

    /// How long a released address is not handed out again (firewalls and conntrack tables
    /// remember addresses). Release times are kept in the blocks, so the cooldown holds across
    /// restarts. 0 turns it off.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub ip_cooldown: Duration,

    /// The most blocks of one pool a node may claim; a node at its limit borrows addresses from
    /// other nodes' blocks (unless --strict-affinity). 0 means no limit.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_blocks_per_node: u32,

    /// Address of the /metrics, /healthz and /readyz endpoints. The port is on the node (the
    /// chart runs the controller with hostNetwork), so it is none of the ports node agents and
    /// Prometheus commonly take (9090 is Prometheus's own).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:10267")]
    pub metrics_addr: SocketAddr,

    /// Log format.
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    /// Namespace of the leader-election Lease (defaults to the pod's own namespace, else
    /// kube-system).
    #[arg(long, env = "POD_NAMESPACE", value_name = "NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// Identity in the leader-election Lease (defaults to the pod name, else the host name).
    #[arg(long, env = "POD_NAME", value_name = "NAME")]
    pub identity: Option<String>,

    /// Duration of the leader-election Lease in seconds; a standby takes over within about this
    /// long after the leader dies.
    #[arg(long, value_name = "SECONDS", default_value_t = 15)]
    pub lease_duration: u64,
}

/// Settings the controller runs with, after discovery.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The cluster's pod CIDRs, or `None` when they could not be found.
    pub pod_cidrs: Option<Vec<IpNet>>,
    /// Families every pod gets an address of.
    pub families: Vec<Family>,
    /// See [`Flags::leak_grace_period`].
    pub leak_grace: Duration,
    /// See [`Flags::sweep_interval`].
    pub sweep_interval: Duration,
    /// Create a default pool per pod CIDR on a cluster with no pool.
    pub default_pool: bool,
    /// See [`Flags::strict_affinity`].
    pub strict_affinity: bool,
    /// See [`Flags::ip_cooldown`].
    pub ip_cooldown: Duration,
    /// See [`Flags::max_blocks_per_node`].
    pub max_blocks_per_node: u32,
}

/// A flag or a cluster setting that makes no sense.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A `--pod-cidr` or kubeadm podSubnet is not a CIDR.
    #[error("pod CIDR from {source_name}: {error}")]
    PodCidr {
        /// Where the value came from.
        source_name: &'static str,
        /// What is wrong with it.
        error: ipam::cidr::CidrError,
    },
    /// `--families` names something other than ipv4 / ipv6.
    #[error("--families: {0:?} is not ipv4 or ipv6")]
    Family(String),
    /// The kubeadm-config ConfigMap could not be fetched for another reason than absence.
    #[error("reading kube-system/kubeadm-config: {0}")]
    KubeadmFetch(#[source] kube::Error),
    /// The kubeadm-config ConfigMap holds no usable pod CIDR.
    #[error("kube-system/kubeadm-config: {0}")]
    Kubeadm(#[from] api::cluster::PodSubnetError),
}

impl Settings {
    /// Turns flags into settings, reading the kubeadm-config ConfigMap when no `--pod-cidr` is
    /// given.
    pub async fn discover(flags: &Flags, client: &Client) -> Result<Settings, ConfigError> {
        let pod_cidrs = if flags.pod_cidrs.is_empty() {
            kubeadm_pod_cidrs(client).await?
        } else {
            Some(parse_cidrs(
                flags.pod_cidrs.iter().map(String::as_str),
                "--pod-cidr",
            )?)
        };
        Settings::from_parts(flags, pod_cidrs)
    }

    /// Settings from flags and already discovered pod CIDRs.
    pub fn from_parts(
        flags: &Flags,
        pod_cidrs: Option<Vec<IpNet>>,
    ) -> Result<Settings, ConfigError> {
        let families = Family::select(&flags.families, pod_cidrs.as_deref())
            .map_err(|e| ConfigError::Family(e.0))?;
        Ok(Settings {
            pod_cidrs,
            families,
            leak_grace: flags.leak_grace_period,
            sweep_interval: flags.sweep_interval,
            default_pool: !flags.no_default_pool,
            strict_affinity: flags.strict_affinity,
            ip_cooldown: flags.ip_cooldown,
            max_blocks_per_node: flags.max_blocks_per_node,
        })
    }
}

fn parse_cidrs<'a>(
    raw: impl Iterator<Item = &'a str>,
    source_name: &'static str,
) -> Result<Vec<IpNet>, ConfigError> {
    raw.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            ipam::cidr::parse_strict(s).map_err(|error| ConfigError::PodCidr { source_name, error })
        })
        .collect()
}

/// The pod CIDRs of a kubeadm cluster, from the kubeadm-config ConfigMap. `None` when the
/// ConfigMap or the field is absent.
async fn kubeadm_pod_cidrs(client: &Client) -> Result<Option<Vec<IpNet>>, ConfigError> {
    let (namespace, name) = api::cluster::KUBEADM_CONFIG;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let Some(cm) = configmaps
        .get_opt(name)
        .await
        .map_err(ConfigError::KubeadmFetch)?
    else {
        return Ok(None);
    };
    let Some(doc) = cm.data.as_ref().and_then(|d| d.get("ClusterConfiguration")) else {
        return Ok(None);
    };
    api::cluster::kubeadm_pod_cidrs(doc).map_err(ConfigError::Kubeadm)
}

/// Parses durations such as `90s`, `5m`, `1h`, `250ms` (a bare number is seconds).
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration such as 30s, 5m or 1h"))?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "ms" => return Ok(Duration::from_millis(n)),
        _ => {
            return Err(format!(
                "{raw:?} has unknown unit {unit:?}: use ms, s, m or h"
            ));
        }
    };
    Ok(Duration::from_secs(seconds))
}

/// How long to wait for the API server to answer a single request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn families_default_to_the_pod_cidrs() {
        use clap::Parser;
        let flags = Flags::parse_from(["rangepool-controller"]);
        let dual = vec!["fd00::/64".parse().unwrap(), "10.0.0.0/16".parse().unwrap()];
        let s = Settings::from_parts(&flags, Some(dual)).unwrap();
        assert_eq!(s.families, vec![Family::V4, Family::V6]);
        let flags = Flags::parse_from(["rangepool-controller", "--families", "ipv6"]);
        let s = Settings::from_parts(&flags, None).unwrap();
        assert_eq!(s.families, vec![Family::V6]);
        let flags = Flags::parse_from(["rangepool-controller", "--families", "ipx"]);
        assert!(Settings::from_parts(&flags, None).is_err());
    }
}
