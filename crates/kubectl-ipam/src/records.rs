//! What the IPAM blocks record: every allocation with the address it stands for.
//!
//! Blocks are the source of truth for who holds which address; the pool status and the pod
//! annotations are derived from them. `show`, `check` and `release` all read allocations through
//! [`recorded`], so an address is computed from a block's range and an ordinal in one place.

use std::net::IpAddr;

use api::IPAMBlock;
use ipnet::IpNet;
use kube::ResourceExt;
use serde::{Deserialize, Serialize};

/// One allocation as reports and `release` name it: enough to find it again and to tell it
/// from a later allocation of the same address (handle and sequence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    /// The address.
    pub address: IpAddr,
    /// The IPAMBlock object that records it.
    pub block: String,
    /// The block's pool.
    pub pool: String,
    /// The address's ordinal in the block: the key of the allocation.
    pub ordinal: u32,
    /// Who holds it: the pod's UID when it was allocated.
    pub handle: String,
    /// The block's sequence number when it was allocated.
    pub sequence: i64,
    /// The pod's namespace when it was allocated.
    pub namespace: String,
    /// The pod's name when it was allocated.
    pub pod: String,
}

impl Holder {
    /// `namespace/pod`.
    pub fn pod_key(&self) -> String {
        format!("{}/{}", self.namespace, self.pod)
    }
}

/// An allocation read from a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Who holds what.
    pub holder: Holder,
    /// The block's range.
    pub cidr: IpNet,
}

/// Every allocation of every block, in block order then ordinal order. Blocks whose
/// allocations cannot be read (malformed range or keys) are left out: `check` reports them as
/// `InvalidBlock`.
pub fn recorded(blocks: &[IPAMBlock]) -> Vec<Recorded> {
    blocks
        .iter()
        .filter_map(|b| of_block(b).ok())
        .flatten()
        .collect()
}

/// The allocations of one block, in ordinal order.
pub fn of_block(block: &IPAMBlock) -> Result<Vec<Recorded>, String> {
    let name = block.name_any();
    let record = block.spec.to_record()?;
    let mut out = Vec::with_capacity(record.allocations.len());
    for a in &record.allocations {
        let address = ipam::cidr::nth_addr(&record.cidr, a.ordinal).ok_or_else(|| {
            format!(
                "allocation {} lies outside the block's range {}",
                a.ordinal, record.cidr
            )
        })?;
        out.push(Recorded {
            holder: Holder {
                address,
                block: name.clone(),
                pool: record.pool.clone(),
                ordinal: a.ordinal,
                handle: a.handle.clone(),
                // `to_record` refused negative sequences, so this is the stored value.
                sequence: i64::try_from(a.sequence).unwrap_or(i64::MAX),
                namespace: a.namespace.clone(),
                pod: a.pod.clone(),
            },
            cidr: record.cidr,
        });
    }
    Ok(out)
}

/// A block's range (`spec.cidr`, strictly masked): every command reads it here, so the blocks
/// a command counts are the ones the others count.
pub fn range(block: &IPAMBlock) -> Result<IpNet, ipam::cidr::CidrError> {
    ipam::cidr::parse_strict(&block.spec.cidr)
}

/// Number of addresses in a block of this range (0 when it is too large to be a block).
pub fn block_size(cidr: &IpNet) -> u32 {
    u32::try_from(ipam::cidr::addr_count(cidr)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use api::IPAMBlockSpec;

    use super::*;

    fn block(cidr: &str, allocations: &[(&str, &str)]) -> IPAMBlock {
        let holders: BTreeMap<String, String> = allocations
            .iter()
            .map(|(k, h)| ((*k).to_owned(), format!("web/pod-{h} {h} 1")))
            .collect();
        IPAMBlock::new(
            &cidr.replace(['.', '/'], "-"),
            IPAMBlockSpec {
                cidr: cidr.into(),
                pool: "general".into(),
                affinity: None,
                sequence_number: 3,
                holders,
                allocations: BTreeMap::new(),
                released: BTreeMap::new(),
                quarantine: None,
            },
        )
    }

    #[test]
    fn addresses_come_from_range_and_ordinal_in_ordinal_order() {
        let got = recorded(&[block("10.244.0.0/26", &[("10", "b"), ("2", "a")])]);
        let addresses: Vec<String> = got.iter().map(|r| r.holder.address.to_string()).collect();
        assert_eq!(addresses, ["10.244.0.2", "10.244.0.10"]);
        assert_eq!(got[0].holder.handle, "a");
        assert_eq!(got[0].holder.pod_key(), "web/pod-a");
        assert_eq!(got[1].holder.block, "10-244-0-0-26");
    }

    #[test]
    fn a_block_with_a_bad_range_or_key_is_unreadable_and_others_still_count() {
        let bad = [
            block("10.244.0.1/26", &[("1", "a")]),
            block("10.244.1.0/26", &[("x", "b")]),
            block("10.244.2.0/26", &[("64", "c")]),
        ];
        let messages: Vec<String> = bad.iter().map(|b| of_block(b).unwrap_err()).collect();
        assert!(messages[0].contains("host bits"), "{messages:?}");
        assert!(messages[1].contains("\"x\""), "{messages:?}");
        assert!(messages[2].contains("outside"), "{messages:?}");
        let mut all = bad.to_vec();
        all.push(block("10.244.3.0/26", &[("0", "d")]));
        let got = recorded(&all);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].holder.handle, "d");
    }
}
