//! The pod CIDRs and address families a plan runs with, decided as the controller decides them.

use std::fmt;
use std::path::PathBuf;

use ipam::cidr::{CidrError, Family};
use ipnet::IpNet;

use crate::manifests::{ManifestError, Manifests};

/// Where the pod CIDRs came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CidrSource {
    /// `--pod-cidr`.
    Flags,
    /// The kubeadm-config ConfigMap in this file.
    Kubeadm(PathBuf),
    /// Nowhere; the text says what was looked for.
    Unknown(String),
}

impl fmt::Display for CidrSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrSource::Flags => f.write_str("from --pod-cidr"),
            CidrSource::Kubeadm(file) => {
                write!(f, "from the kubeadm-config ConfigMap in {}", file.display())
            }
            CidrSource::Unknown(why) => f.write_str(why),
        }
    }
}

/// The settings of one plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The cluster's pod CIDRs; `None` when unknown (then no pool is allocatable).
    pub pod_cidrs: Option<Vec<IpNet>>,
    /// Where they came from.
    pub source: CidrSource,
    /// The families every pod gets an address of, IPv4 first.
    pub families: Vec<Family>,
}

/// Input the planner cannot work with. Every message names the flag or the file.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A manifest could not be read.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A `--pod-cidr` value is not a strictly masked CIDR.
    #[error("--pod-cidr: {0}")]
    PodCidrFlag(#[source] CidrError),
    /// A `--families` value is not a family.
    #[error("--families: {0:?} is not ipv4 or ipv6")]
    Family(String),
    /// The kubeadm ConfigMap's podSubnet is not a CIDR.
    #[error("{}: ConfigMap kube-system/kubeadm-config: {source}", file.display())]
    PodSubnet {
        /// The file of the ConfigMap.
        file: PathBuf,
        /// What is wrong.
        #[source]
        source: api::cluster::PodSubnetError,
    },
}

impl Settings {
    /// Pod CIDRs from the flags, else the kubeadm-config ConfigMap among the manifests, else
    /// unknown; families from the flags, else those of the pod CIDRs, else IPv4.
    pub fn resolve(
        pod_cidr_flags: &[String],
        family_flags: &[String],
        manifests: &Manifests,
    ) -> Result<Settings, InputError> {
        let (pod_cidrs, source) = if !pod_cidr_flags.is_empty() {
            let cidrs = pod_cidr_flags
                .iter()
                .map(|s| ipam::cidr::parse_strict(s.trim()).map_err(InputError::PodCidrFlag))
                .collect::<Result<Vec<_>, _>>()?;
            (Some(cidrs), CidrSource::Flags)
        } else {
            match &manifests.kubeadm_cluster_configuration {
                None => (
                    None,
                    CidrSource::Unknown(
                        "unknown: no --pod-cidr given and no kube-system/kubeadm-config ConfigMap among the manifests".to_owned(),
                    ),
                ),
                Some(cm) => {
                    let found = match &cm.object {
                        Some(doc) => api::cluster::kubeadm_pod_cidrs(doc).map_err(|source| {
                            InputError::PodSubnet {
                                file: cm.file.clone(),
                                source,
                            }
                        })?,
                        None => None,
                    };
                    match found {
                        Some(cidrs) => (Some(cidrs), CidrSource::Kubeadm(cm.file.clone())),
                        None => (
                            None,
                            CidrSource::Unknown(format!(
                                "unknown: the kube-system/kubeadm-config ConfigMap in {} has no ClusterConfiguration with networking.podSubnet, and no --pod-cidr was given",
                                cm.file.display()
                            )),
                        ),
                    }
                }
            }
        };
        let families = Family::select(family_flags, pod_cidrs.as_deref())
            .map_err(|e| InputError::Family(e.0))?;
        Ok(Settings {
            pod_cidrs,
            source,
            families,
        })
    }
}
