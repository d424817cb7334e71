//! The `IPReservation` custom resource: addresses no pod gets, as Calico's
//! `projectcalico.org/v3` IPReservation (same field, `reservedCIDRs`), so that an admin's
//! existing manifest applies after changing `apiVersion`.
//!
//! A reserved address is never handed out, neither by allocation nor to a pod that names it
//! (`cni.projectcalico.org/ipAddrs`). A pod that already holds one when the reservation appears
//! keeps it, and `kubectl ipam check` reports it. The Rust type is lenient (plain strings), so
//! one odd object never stops the controller's watch; entries that are not addresses or ranges
//! are reported and ignored ([`IPReservationSpec::ranges`]).

use ipnet::IpNet;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Addresses and ranges kept out of allocation.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "rangepool.dev",
    version = "v1",
    kind = "IPReservation",
    plural = "ipreservations",
    shortname = "ipr",
    category = "rangepool",
    derive = "PartialEq",
    derive = "Default",
    doc = "Addresses and ranges that rangepool never gives to a pod (Calico's IPReservation)."
)]
#[serde(rename_all = "camelCase")]
pub struct IPReservationSpec {
    /// Addresses (`10.244.8.1`) and ranges (`10.244.8.240/28`, `fd00:10:244::/120`) no pod gets.
    /// A range must be strictly masked. Pods that hold one of these addresses already keep it.
    #[serde(default, rename = "reservedCIDRs")]
    #[schemars(length(max = 1024), inner(length(min = 1, max = 43)))]
    pub reserved_cidrs: Vec<String>,
}

impl IPReservationSpec {
    /// The reserved ranges (a single address as a host range), and the entries that are not
    /// addresses or strictly masked ranges, each with why.
    pub fn ranges(&self) -> (Vec<IpNet>, Vec<String>) {
        let mut ranges = Vec::with_capacity(self.reserved_cidrs.len());
        let mut bad = Vec::new();
        for entry in &self.reserved_cidrs {
            match parse_reserved(entry) {
                Ok(net) => ranges.push(net),
                Err(why) => bad.push(why),
            }
        }
        (ranges, bad)
    }
}

/// One entry of `reservedCIDRs`: an address or a strictly masked range.
pub fn parse_reserved(entry: &str) -> Result<IpNet, String> {
    let entry = entry.trim();
    if let Ok(address) = entry.parse::<std::net::IpAddr>() {
        return Ok(IpNet::from(address));
    }
    ipam::cidr::parse_strict(entry)
        .map_err(|e| format!("reservedCIDRs entry {entry:?} is not an address or a range: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn addresses_and_ranges_are_read_and_the_rest_reported() {
        let spec = IPReservationSpec {
            reserved_cidrs: vec![
                "10.244.8.1".into(),
                "10.244.8.240/28".into(),
                "fd00:10:244::/120".into(),
                "10.244.8.1/24".into(),
                "appliance".into(),
            ],
        };
        let (ranges, bad) = spec.ranges();
        let want: Vec<IpNet> = ["10.244.8.1/32", "10.244.8.240/28", "fd00:10:244::/120"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(ranges, want);
        assert_eq!(bad.len(), 2);
        assert!(bad[0].contains("\"10.244.8.1/24\""), "{bad:?}");
        assert!(bad[1].contains("\"appliance\""), "{bad:?}");
    }

    #[test]
    fn the_field_is_calicos() {
        let spec: IPReservationSpec =
            serde_json::from_value(serde_json::json!({"reservedCIDRs": ["10.0.0.1"]})).unwrap();
        assert_eq!(spec.reserved_cidrs, ["10.0.0.1"]);
    }
}
