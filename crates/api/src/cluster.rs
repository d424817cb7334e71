//! Cluster facts rangepool reads from standard Kubernetes objects.

use ipnet::IpNet;

/// Namespace and name of the ConfigMap where kubeadm keeps its `ClusterConfiguration`.
pub const KUBEADM_CONFIG: (&str, &str) = ("kube-system", "kubeadm-config");

/// The kubeadm `ClusterConfiguration` names no usable pod CIDR.
#[derive(Debug, thiserror::Error)]
pub enum PodSubnetError {
    /// `networking.podSubnet` holds something that is not a strictly masked CIDR.
    #[error("podSubnet of the kubeadm ClusterConfiguration: {0}")]
    Cidr(#[from] ipam::cidr::CidrError),
    /// The document is not YAML of the expected shape.
    #[error("the kubeadm ClusterConfiguration cannot be read: {0}")]
    Unreadable(String),
}

/// The pod CIDRs in a kubeadm `ClusterConfiguration` YAML document: `networking.podSubnet`,
/// comma-separated for dual stack. `None` when the field is absent; an error when the document
/// cannot be read, so that a broken ConfigMap is reported rather than taken for "no pod CIDR".
pub fn kubeadm_pod_cidrs(
    cluster_configuration: &str,
) -> Result<Option<Vec<IpNet>>, PodSubnetError> {
    #[derive(serde::Deserialize)]
    struct ClusterConfiguration {
        networking: Option<Networking>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Networking {
        pod_subnet: Option<String>,
    }
    let config = serde_saphyr::from_str::<ClusterConfiguration>(cluster_configuration)
        .map_err(|e| PodSubnetError::Unreadable(e.to_string()))?;
    let Some(subnet) = config.networking.and_then(|n| n.pod_subnet) else {
        return Ok(None);
    };
    let cidrs = subnet
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(ipam::cidr::parse_strict)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((!cidrs.is_empty()).then_some(cidrs))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn dual_stack_pod_subnet() {
        let doc = "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nnetworking:\n  podSubnet: 10.244.0.0/16,fd00:10:244::/56\n  serviceSubnet: 10.96.0.0/12\n";
        let got = kubeadm_pod_cidrs(doc).unwrap().unwrap();
        let want: Vec<IpNet> = vec![
            "10.244.0.0/16".parse().unwrap(),
            "fd00:10:244::/56".parse().unwrap(),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn absent_pod_subnet_is_unknown() {
        assert!(
            kubeadm_pod_cidrs(
                "kind: ClusterConfiguration\nnetworking:\n  serviceSubnet: 10.96.0.0/12\n"
            )
            .unwrap()
            .is_none()
        );
        assert!(matches!(
            kubeadm_pod_cidrs("{{{ not yaml"),
            Err(PodSubnetError::Unreadable(_))
        ));
        assert!(
            kubeadm_pod_cidrs("networking:\n  podSubnet: ''\n")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_bad_pod_subnet_is_an_error_naming_the_field() {
        let err = kubeadm_pod_cidrs("networking:\n  podSubnet: 10.244.0.1/16\n").unwrap_err();
        assert!(err.to_string().contains("podSubnet"), "{err}");
    }
}
