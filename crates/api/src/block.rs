//! The `IPAMBlock` custom resource: one slice of a pool, claimed by one node, with its
//! per-address allocation records, and [`Slot`], the check that a block records an address for
//! a pod.
//!
//! Blocks are the source of truth for who holds which address. Only the controller (and
//! `kubectl ipam release`) writes them; the CNI plugin only reads them, and hands out an address
//! only when [`Slot::diagnose`] finds it recorded for the pod's UID. Every write is a JSON patch
//! built in [`crate::write`]: it tests `sequenceNumber`, which grows whenever an address changes
//! hands or the affinity changes, so a write made from a stale read fails; a removed allocation
//! is tested for its handle and `sequence`, so an address re-assigned meanwhile is never freed.
//! Deletes of empty blocks are conditional on `resourceVersion`.

// The derive takes one `printcolumn(...)` per column, which clippy reads as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use ipam::block::{AllocationRecord, BlockRecord};
use ipam::cidr::{ordinal_of, parse_block_name};
use ipnet::IpNet;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::FamilyAssignment;

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
#[x_kube(validation = Rule::new(
    "!self.cidr.matches('^[0-9a-fA-F.:]+/[0-9]{1,3}$') || self.allocations.all(k, k.matches('^(0|[1-9][0-9]{0,3})$') && int(self.cidr.split('/')[1]) >= (self.cidr.contains(':') ? 116 : 20) && int(self.cidr.split('/')[1]) <= (self.cidr.contains(':') ? 128 : 32) && int(k) < [4096, 2048, 1024, 512, 256, 128, 64, 32, 16, 8, 4, 2, 1][int(self.cidr.split('/')[1]) - (self.cidr.contains(':') ? 116 : 20)])"
).message("every key of allocations is the ordinal of an address in the block: a decimal number without leading zeros, below the block's size (64 for a /26)").field_path(".allocations"))]
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

    /// Bumped whenever an address is allocated or released or the affinity changes. A write that
    /// tests it fails when it was made from an older read.
    #[serde(default)]
    #[schemars(range(min = 0), extend("format" = "int64"))]
    pub sequence_number: i64,

    /// One record per allocated address, keyed by the address's ordinal in the block as a
    /// decimal string (`"0"` is the block's first address). A map rather than a list so that a
    /// JSON patch can address one record, and test that it still belongs to its pod before
    /// removing it. Always present, even when empty, so that a JSON patch can add a record to it.
    #[serde(default)]
    #[schemars(extend("maxProperties" = 4096))]
    pub allocations: BTreeMap<String, BlockAllocation>,

    /// Set by the controller when it rebuilt the block from the pods using its addresses, after
    /// the block was deleted or could not be read: why, and since when. The block keeps and
    /// releases its addresses but gives out no new one, since a free address in it may still
    /// be in use somewhere. Remove the field to lift the quarantine once you have checked
    /// (see docs/troubleshooting.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub quarantine: Option<String>,
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

    /// No longer written. Earlier versions of the CNI plugin recorded here the container
    /// (sandbox) that claimed the address; the field is kept for blocks they wrote, and the
    /// controller's writes leave it as it is.
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
            quarantine: spec.quarantine.clone(),
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
            quarantine: record.quarantine.clone(),
        }
    }
}

/// Where an address is recorded: its block's range and its ordinal in the block. The CNI
/// plugin's whole check of an annotation: [`Slot::locate`] from the annotation, then
/// [`Slot::diagnose`] against the block as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The block's range, from its name.
    pub block: IpNet,
    /// The address's ordinal in the block: the allocation's key.
    pub ordinal: u32,
}

impl Slot {
    /// Finds the slot from an annotation's block name and address; the reason when the two do
    /// not fit together.
    pub fn locate(assigned: &FamilyAssignment) -> Result<Slot, String> {
        let block = parse_block_name(&assigned.block).map_err(|e| e.to_string())?;
        let ordinal = ordinal_of(&block, assigned.address).ok_or_else(|| {
            format!(
                "{} lies outside the block's range {block}",
                assigned.address
            )
        })?;
        Ok(Slot { block, ordinal })
    }

    /// `Ok` when `spec` is this slot's block and records the address for the pod `uid`;
    /// otherwise what the block says instead.
    pub fn diagnose(&self, spec: &IPAMBlockSpec, uid: &str) -> Result<(), String> {
        if spec.cidr != self.block.to_string() {
            return Err(format!(
                "the block's range is {}, not {}",
                spec.cidr, self.block
            ));
        }
        let Some(allocation) = spec.allocations.get(&self.ordinal.to_string()) else {
            return Err("the block holds no allocation for the address".into());
        };
        if allocation.handle != uid {
            return Err("the address is allocated to another pod".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
