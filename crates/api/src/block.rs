//! The `IPAMBlock` custom resource: one slice of a pool, claimed by one node, with its
//! per-address allocation records, and [`Slot`], the check that a block records an address for
//! a pod.
//!
//! Blocks are the source of truth for who holds which address. Only the controller (and
//! `kubectl ipam release`) writes them; the CNI plugin only reads them, and hands out an address
//! only when [`Slot::diagnose`] finds it recorded for the pod's UID. Every write is a JSON patch
//! built in [`crate::write`]: it tests `sequenceNumber`, which grows whenever an address changes
//! hands or the affinity changes, so a write made from a stale read fails; a removed record is
//! tested too (its pod UID and sequence), so an address re-assigned meanwhile is never freed.
//! Deletes of empty blocks are conditional on `resourceVersion`.
//!
//! Records are one string per address in `spec.holders` ([`encode_holder`]): a block's size,
//! and so the cost of each write for the API server, is about half what one object per record
//! cost in `spec.allocations`, the format of rangepool 0.1, which is still read and is moved to
//! `holders` by the controller's first write of the block.

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
    "!self.cidr.matches('^[0-9a-fA-F.:]+/[0-9]{1,3}$') || !has(self.holders) || self.holders.all(k, k.matches('^(0|[1-9][0-9]{0,3})$') && int(self.cidr.split('/')[1]) >= (self.cidr.contains(':') ? 116 : 20) && int(self.cidr.split('/')[1]) <= (self.cidr.contains(':') ? 128 : 32) && int(k) < [4096, 2048, 1024, 512, 256, 128, 64, 32, 16, 8, 4, 2, 1][int(self.cidr.split('/')[1]) - (self.cidr.contains(':') ? 116 : 20)])"
).message("every key of holders is the ordinal of an address in the block: a decimal number without leading zeros, below the block's size (64 for a /26)").field_path(".holders"))]
#[x_kube(validation = Rule::new(
    "!self.cidr.matches('^[0-9a-fA-F.:]+/[0-9]{1,3}$') || !has(self.allocations) || self.allocations.all(k, k.matches('^(0|[1-9][0-9]{0,3})$') && int(self.cidr.split('/')[1]) >= (self.cidr.contains(':') ? 116 : 20) && int(self.cidr.split('/')[1]) <= (self.cidr.contains(':') ? 128 : 32) && int(k) < [4096, 2048, 1024, 512, 256, 128, 64, 32, 16, 8, 4, 2, 1][int(self.cidr.split('/')[1]) - (self.cidr.contains(':') ? 116 : 20)])"
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

    /// Who holds each allocated address, keyed by the address's ordinal in the block as a
    /// decimal string (`"0"` is the block's first address): `"<namespace>/<pod> <pod UID>
    /// <sequence>"`, the sequence being the block's `sequenceNumber` when the address was
    /// allocated, e.g. `"payments/db-0 0d5c7c8e-3b0f-4c5e-9a51-2f4b9c1d7e21 12"`. One string per
    /// address keeps the block small: the API server decodes, validates and encodes a block
    /// whole on every write. A map so that a JSON patch can address one record, and test that
    /// it still belongs to its pod before removing it.
    #[serde(default)]
    #[schemars(extend(
        "maxProperties" = 4096,
        "additionalProperties" = {"type": "string", "maxLength": 512}
    ))]
    pub holders: BTreeMap<String, String>,

    /// The records of blocks written by rangepool 0.1, one object per address. Read, never
    /// written: the controller's first write of such a block moves them to `holders` (see
    /// docs/install.md, "Upgrading").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 4096))]
    pub allocations: BTreeMap<String, BlockAllocation>,

    /// Addresses released recently, while the controller's reuse cooldown (`--ip-cooldown`)
    /// keeps them from other pods: the address's ordinal, as in `holders`, and when it was
    /// released, in seconds since the Unix epoch. Written only when a cooldown is set; old
    /// entries are dropped as the block is written again.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 4096))]
    pub released: BTreeMap<String, i64>,

    /// Set by the controller when it rebuilt the block from the pods using its addresses, after
    /// the block was deleted or could not be read: why, and since when. The block keeps and
    /// releases its addresses but gives out no new one, since a free address in it may still
    /// be in use somewhere. Remove the field to lift the quarantine once you have checked
    /// (see docs/troubleshooting.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub quarantine: Option<String>,
}

/// The record of one allocated address in the format of rangepool 0.1 (see
/// [`IPAMBlockSpec::allocations`]).
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
    /// The core's record of this block, from `holders` and the earlier format alike. Fails on
    /// data no controller writes (hostile edits).
    pub fn to_record(&self) -> Result<BlockRecord, String> {
        let spec = self;
        let cidr = ipam::cidr::parse_strict(&spec.cidr).map_err(|e| e.to_string())?;
        let mut allocations = Vec::with_capacity(spec.holders.len() + spec.allocations.len());
        for (key, holder) in &spec.holders {
            allocations.push(decode_holder(ordinal(key)?, holder)?);
        }
        for key in spec.allocations.keys() {
            let ordinal = ordinal(key)?;
            if spec.holders.contains_key(key) {
                return Err(format!(
                    "address {ordinal} is recorded in both holders and allocations"
                ));
            }
            allocations.extend(spec.record_at(ordinal)?);
        }
        allocations.sort_by_key(|a| a.ordinal);
        // A release time only delays a reuse: one that cannot be read is left out.
        let released = spec
            .released
            .iter()
            .filter_map(|(key, at)| Some((key.parse().ok()?, u64::try_from(*at).ok()?)))
            .collect();
        Ok(BlockRecord {
            cidr,
            pool: spec.pool.clone(),
            affinity: spec.affinity.clone(),
            sequence: u64::try_from(spec.sequence_number)
                .map_err(|_| "negative sequenceNumber".to_owned())?,
            allocations,
            quarantine: spec.quarantine.clone(),
            released,
        })
    }

    /// The spec that stores a core record, every allocation in `holders`.
    pub fn from_record(record: &BlockRecord) -> IPAMBlockSpec {
        IPAMBlockSpec {
            cidr: record.cidr.to_string(),
            pool: record.pool.clone(),
            affinity: record.affinity.clone(),
            sequence_number: i64::try_from(record.sequence).unwrap_or(i64::MAX),
            holders: record
                .allocations
                .iter()
                .map(|a| (a.ordinal.to_string(), encode_holder(a)))
                .collect(),
            allocations: BTreeMap::new(),
            released: record
                .released
                .iter()
                .map(|(o, at)| (o.to_string(), i64::try_from(*at).unwrap_or(i64::MAX)))
                .collect(),
            quarantine: record.quarantine.clone(),
        }
    }

    /// How many addresses the block records, in either format.
    pub fn allocated(&self) -> usize {
        self.holders.len() + self.allocations.len()
    }

    /// The record of the address at `ordinal`, in either format; `Ok(None)` when the address
    /// is free; the reason when its record cannot be read.
    pub fn record_at(&self, ordinal: u32) -> Result<Option<AllocationRecord>, String> {
        let key = ordinal.to_string();
        if let Some(holder) = self.holders.get(&key) {
            return decode_holder(ordinal, holder).map(Some);
        }
        let Some(a) = self.allocations.get(&key) else {
            return Ok(None);
        };
        Ok(Some(AllocationRecord {
            ordinal,
            handle: a.handle.clone(),
            namespace: a.namespace.clone(),
            pod: a.pod.clone(),
            container: a.container.clone(),
            sequence: u64::try_from(a.sequence)
                .map_err(|_| format!("allocation {ordinal} has a negative sequence"))?,
        }))
    }

    /// The handle (pod UID) holding the address at `ordinal` (see [`IPAMBlockSpec::record_at`]).
    pub fn handle_at(&self, ordinal: u32) -> Result<Option<String>, String> {
        Ok(self.record_at(ordinal)?.map(|a| a.handle))
    }
}

/// The ordinal an allocation key names.
fn ordinal(key: &str) -> Result<u32, String> {
    key.parse()
        .map_err(|_| format!("allocation key {key:?} is not an ordinal"))
}

/// The `holders` value of an allocation: `"<namespace>/<pod> <handle> <sequence>"`.
pub fn encode_holder(a: &AllocationRecord) -> String {
    format!("{}/{} {} {}", a.namespace, a.pod, a.handle, a.sequence)
}

/// Reads a `holders` value back (see [`encode_holder`]); the reason when it is not one.
pub fn decode_holder(ordinal: u32, value: &str) -> Result<AllocationRecord, String> {
    let unreadable =
        || format!("holder of address {ordinal} is not \"<namespace>/<pod> <pod UID> <sequence>\"");
    let mut parts = value.split(' ');
    let (Some(who), Some(handle), Some(sequence), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(unreadable());
    };
    let (namespace, pod) = who.split_once('/').ok_or_else(unreadable)?;
    let sequence: u64 = sequence.parse().map_err(|_| unreadable())?;
    if handle.is_empty() || pod.contains('/') {
        return Err(unreadable());
    }
    Ok(AllocationRecord {
        ordinal,
        handle: handle.to_owned(),
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
        container: None,
        sequence,
    })
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
        match spec.handle_at(self.ordinal)? {
            None => Err("the block holds no allocation for the address".into()),
            Some(handle) if handle != uid => Err("the address is allocated to another pod".into()),
            Some(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
