//! The `IPAMBlock` custom resource: one slice of a pool, claimed by one node, with its
//! per-address allocation records.
//!
//! Blocks are the source of truth for who holds which address. The controller creates them and
//! writes allocations; the CNI plugin only records which container claimed an allocation. Every
//! write is a JSON patch built in [`crate::write`]: the controller's and `kubectl ipam
//! release`'s test `sequenceNumber`, which grows whenever an address changes hands or the
//! affinity changes (not on a container claim), so a write made from a stale read fails; a removed allocation is tested for its handle and `sequence`,
//! so an address re-assigned meanwhile is never freed; the plugin's claim tests the range and
//! the allocation's handle. Deletes of empty blocks are conditional on `resourceVersion`.

// The derive takes one `printcolumn(...)` per column, which clippy reads as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use ipam::block::{AllocationRecord, BlockRecord};

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Desired state of an IPAM block. Written by rangepool only; do not edit by hand.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "rangepool.dev",
    version = "v1",
    kind = "IPAMBlock",
    plural = "ipamblocks",
    shortname = "ipb",
    category = "rangepool",
    derive = "PartialEq",
    derive = "Default",
    doc = "A block of a pool's addresses with its node affinity and allocation records. Managed by rangepool.",
    printcolumn(name = "CIDR", type_ = "string", json_path = ".spec.cidr"),
    printcolumn(name = "Pool", type_ = "string", json_path = ".spec.pool"),
    printcolumn(name = "Node", type_ = "string", json_path = ".spec.affinity"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct IPAMBlockSpec {
    /// The block's range, e.g. `10.244.0.64/26`. Immutable.
    #[schemars(length(min = 1, max = 43))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("cidr of a block is immutable"))]
    pub cidr: String,

    /// Name of the IPPool the block belongs to. Immutable.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("pool of a block is immutable"))]
    pub pool: String,

    /// Name of the node whose pods get addresses from this block first. Absent once the node is
    /// gone; the block then only keeps its remaining allocations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub affinity: Option<String>,

    /// Bumped whenever an address is allocated or released or the affinity changes; a container
    /// claim leaves it alone. A write that tests it fails when it was made from an older read.
    #[serde(default)]
    #[schemars(range(min = 0), extend("format" = "int64"))]
    pub sequence_number: i64,

    /// One record per allocated address, keyed by the address's ordinal in the block as a
    /// decimal string (`"0"` is the block's first address). A map rather than a list so that the
    /// CNI plugin can address one record with a JSON patch whose `test` operations make the
    /// write fail unless the record still belongs to its pod. Always present, even when empty,
    /// so that a JSON patch can add a record to it.
    #[serde(default)]
    #[schemars(extend("maxProperties" = 4096))]
    pub allocations: BTreeMap<String, BlockAllocation>,
}

/// The record of one allocated address.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BlockAllocation {
    /// Who holds the address: the pod's UID.
    #[schemars(length(min = 1, max = 128))]
    pub handle: String,

    /// The pod's namespace, for people reading the block.
    #[serde(default)]
    #[schemars(length(max = 63))]
    pub namespace: String,

    /// The pod's name, for people reading the block.
    #[serde(default)]
    #[schemars(length(max = 253))]
    pub pod: String,

    /// The container (sandbox) ID that claimed the address through the CNI plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub container: Option<String>,

    /// The block's `sequenceNumber` at the moment this address was allocated.
    #[serde(default)]
    #[schemars(range(min = 0), extend("format" = "int64"))]
    pub sequence: i64,
}

impl IPAMBlockSpec {
    /// The core's record of this block. Fails on data no controller writes (hostile edits).
    pub fn to_record(&self) -> Result<BlockRecord, String> {
        let spec = self;
        let cidr = ipam::cidr::parse_strict(&spec.cidr).map_err(|e| e.to_string())?;
        let mut allocations = Vec::with_capacity(spec.allocations.len());
        for (ordinal, a) in &spec.allocations {
            let ordinal: u32 = ordinal
                .parse()
                .map_err(|_| format!("allocation key {ordinal:?} is not an ordinal"))?;
            allocations.push(AllocationRecord {
                ordinal,
                handle: a.handle.clone(),
                namespace: a.namespace.clone(),
                pod: a.pod.clone(),
                container: a.container.clone(),
                sequence: u64::try_from(a.sequence)
                    .map_err(|_| format!("allocation {ordinal} has a negative sequence"))?,
            });
        }
        allocations.sort_by_key(|a| a.ordinal);
        Ok(BlockRecord {
            cidr,
            pool: spec.pool.clone(),
            affinity: spec.affinity.clone(),
            sequence: u64::try_from(spec.sequence_number)
                .map_err(|_| "negative sequenceNumber".to_owned())?,
            allocations,
        })
    }

    /// The spec that stores a core record.
    pub fn from_record(record: &BlockRecord) -> IPAMBlockSpec {
        IPAMBlockSpec {
            cidr: record.cidr.to_string(),
            pool: record.pool.clone(),
            affinity: record.affinity.clone(),
            sequence_number: i64::try_from(record.sequence).unwrap_or(i64::MAX),
            allocations: record
                .allocations
                .iter()
                .map(|a| {
                    (
                        a.ordinal.to_string(),
                        BlockAllocation {
                            handle: a.handle.clone(),
                            namespace: a.namespace.clone(),
                            pod: a.pod.clone(),
                            container: a.container.clone(),
                            sequence: i64::try_from(a.sequence).unwrap_or(i64::MAX),
                        },
                    )
                })
                .collect(),
        }
    }
}
