//! Addresses a pod asks for by name: Calico's `cni.projectcalico.org/ipAddrs`, a JSON list of
//! at most one address per family, e.g. `'["10.244.8.10"]'`.
//!
//! The address is given through IPAM and under the same trust rules as any other (see
//! [`crate::planner`]): it must lie in a pool that admits the pod, be free, and not be
//! reserved. Naming an address never lets a pod into a pool its selectors or Manual mode keep
//! it out of. Calico's other two keys of this kind are not honoured, and never silently:
//! `ipAddrsNoIpam` (addresses outside IPAM) makes the pod get no address, with the reason;
//! `floatingIPs` (a NAT feature of Calico's data plane) is reported, and the pod gets its
//! address as usual.

use std::collections::BTreeMap;
use std::net::IpAddr;

use thiserror::Error;

use crate::cidr::Family;
use crate::text::shown;

/// The pod annotation naming the addresses a pod asks for.
pub const IP_ADDRS: &str = "cni.projectcalico.org/ipAddrs";
/// Calico's annotation for addresses assigned without IPAM: not honoured.
pub const IP_ADDRS_NO_IPAM: &str = "cni.projectcalico.org/ipAddrsNoIpam";
/// Calico's annotation for floating (NATed) addresses: not honoured.
pub const FLOATING_IPS: &str = "cni.projectcalico.org/floatingIPs";

/// The addresses a pod asks for, at most one per family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requested {
    v4: Option<IpAddr>,
    v6: Option<IpAddr>,
}

impl Requested {
    /// The address asked for in `family`, if any.
    pub fn get(&self, family: Family) -> Option<IpAddr> {
        match family {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        }
    }

    /// Whether the pod asks for any address.
    pub fn is_empty(&self) -> bool {
        self.v4.is_none() && self.v6.is_none()
    }
}

/// Why a pod's specific-address annotations cannot be honoured. Every message names the pod
/// and the annotation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FixedError {
    /// `ipAddrs` is not a JSON list of addresses.
    #[error(
        "pod {namespace}/{pod}: annotation {IP_ADDRS} {} is not a JSON list of addresses such as '[\"10.244.8.10\"]': {detail}",
        shown(value)
    )]
    Malformed {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The annotation's value.
        value: String,
        /// What is wrong with it.
        detail: String,
    },
    /// `ipAddrs` names two addresses of one family.
    #[error(
        "pod {namespace}/{pod}: annotation {IP_ADDRS} names two {family} addresses, {first} and {second}; a pod gets at most one address per family"
    )]
    TwoOfFamily {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The family.
        family: Family,
        /// The first.
        first: IpAddr,
        /// The second.
        second: IpAddr,
    },
    /// `ipAddrsNoIpam` is set.
    #[error(
        "pod {namespace}/{pod}: annotation {IP_ADDRS_NO_IPAM} is not supported: rangepool gives every address through IPAM, so that no two pods can hold one address; use {IP_ADDRS} to ask for an address of a pool instead"
    )]
    NoIpam {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
    },
}

impl FixedError {
    /// Short stable label for Events, the pod's error annotation and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            FixedError::Malformed { .. } | FixedError::TwoOfFamily { .. } => "InvalidIpAddrs",
            FixedError::NoIpam { .. } => "IpAddrsNoIpamNotSupported",
        }
    }
}

/// The addresses pod `namespace/pod` asks for with [`IP_ADDRS`]; an error when the annotation
/// cannot be read, or the pod carries [`IP_ADDRS_NO_IPAM`].
pub fn requested(
    namespace: &str,
    pod: &str,
    annotations: &BTreeMap<String, String>,
) -> Result<Requested, FixedError> {
    if annotations.contains_key(IP_ADDRS_NO_IPAM) {
        return Err(FixedError::NoIpam {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
        });
    }
    let Some(value) = annotations.get(IP_ADDRS) else {
        return Ok(Requested::default());
    };
    let malformed = |detail: String| FixedError::Malformed {
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
        value: value.clone(),
        detail,
    };
    let items: Vec<serde_json::Value> = match serde_json::from_str(value) {
        Ok(serde_json::Value::Array(items)) => items,
        Ok(_) => return Err(malformed("it is not a list".into())),
        Err(e) => return Err(malformed(e.to_string())),
    };
    if items.is_empty() {
        return Err(malformed("the list is empty".into()));
    }
    let mut out = Requested::default();
    for (i, item) in items.iter().enumerate() {
        let address = item
            .as_str()
            .and_then(|s| s.trim().parse::<IpAddr>().ok())
            .ok_or_else(|| {
                malformed(format!(
                    "entry {} is {}, not an address",
                    i + 1,
                    shown(&item.to_string())
                ))
            })?;
        let family = Family::of_addr(&address);
        let slot = match family {
            Family::V4 => &mut out.v4,
            Family::V6 => &mut out.v6,
        };
        if let Some(first) = *slot {
            return Err(FixedError::TwoOfFamily {
                namespace: namespace.to_owned(),
                pod: pod.to_owned(),
                family,
                first,
                second: address,
            });
        }
        *slot = Some(address);
    }
    Ok(out)
}

/// The message for a pod that carries [`FLOATING_IPS`], which is not honoured (the pod still
/// gets its address); `None` when it does not.
pub fn floating_ips_note(
    namespace: &str,
    pod: &str,
    annotations: &BTreeMap<String, String>,
) -> Option<String> {
    annotations.contains_key(FLOATING_IPS).then(|| {
        format!(
            "pod {namespace}/{pod}: annotation {FLOATING_IPS} is not honoured: floating addresses are NAT rules of Calico's data plane, which rangepool does not program; the pod gets its address as usual"
        )
    })
}

/// What a pod's annotations ask for that rangepool does not honour, as messages: `ipAddrsNoIpam`
/// (the pod gets no address: [`requested`] refuses it) and [`FLOATING_IPS`] (see
/// [`floating_ips_note`]). For `kubectl ipam plan` and `import-calico`, which warn before the
/// controller's Events would.
pub fn unhonoured(
    namespace: &str,
    pod: &str,
    annotations: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Err(e @ FixedError::NoIpam { .. }) = requested(namespace, pod, annotations) {
        out.push(e.to_string());
    }
    out.extend(floating_ips_note(namespace, pod, annotations));
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn annotated(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn one_address_per_family_is_read() {
        let got = requested(
            "shop",
            "db-0",
            &annotated(&[(IP_ADDRS, r#"["10.244.8.10", "fd00:10:244::a"]"#)]),
        )
        .unwrap();
        assert_eq!(got.get(Family::V4), Some("10.244.8.10".parse().unwrap()));
        assert_eq!(got.get(Family::V6), Some("fd00:10:244::a".parse().unwrap()));
        assert!(
            requested("shop", "db-0", &annotated(&[]))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn what_cannot_be_honoured_is_an_error_naming_pod_and_annotation() {
        for (value, reason, detail) in [
            ("10.244.8.10", "InvalidIpAddrs", "not a JSON list"),
            ("[]", "InvalidIpAddrs", "empty"),
            (r#"["10.244.8.0/24"]"#, "InvalidIpAddrs", "not an address"),
            ("[7]", "InvalidIpAddrs", "not an address"),
            (
                r#"["10.244.8.10", "10.244.8.11"]"#,
                "InvalidIpAddrs",
                "two IPv4 addresses",
            ),
        ] {
            let err = requested("shop", "db-0", &annotated(&[(IP_ADDRS, value)])).unwrap_err();
            assert_eq!(err.reason(), reason, "{value}");
            let msg = err.to_string();
            assert!(
                msg.contains("pod shop/db-0") && msg.contains(IP_ADDRS) && msg.contains(detail),
                "{value}: {msg}"
            );
        }
        let err = requested(
            "shop",
            "db-0",
            &annotated(&[(IP_ADDRS_NO_IPAM, r#"["10.244.8.10"]"#)]),
        )
        .unwrap_err();
        assert_eq!(err.reason(), "IpAddrsNoIpamNotSupported");
        assert!(err.to_string().contains("not supported"), "{err}");
    }

    #[test]
    fn floating_ips_are_reported_not_refused() {
        let with = annotated(&[(FLOATING_IPS, r#"["1.2.3.4"]"#)]);
        let note = floating_ips_note("shop", "web", &with).unwrap();
        assert!(
            note.contains("pod shop/web") && note.contains("not honoured"),
            "{note}"
        );
        assert!(requested("shop", "web", &with).unwrap().is_empty());
        assert_eq!(floating_ips_note("shop", "web", &annotated(&[])), None);
    }
}
