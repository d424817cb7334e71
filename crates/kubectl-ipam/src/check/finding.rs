//! What `check` reports, in the shape `-o json` prints and `release --from-report` reads.
//!
//! The shape is an interface: fields are only ever added, never renamed or removed, and
//! `reportVersion` changes if that ever has to be broken. Every finding has `kind` (one of the
//! variant names below) and `message` (a sentence for a person); the other fields depend on the
//! kind. `README.md` of this crate documents each one.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::records::Holder;
use crate::reserved::ReservedBy;

/// Version of the report's shape.
pub const REPORT_VERSION: u32 = 1;

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// [`REPORT_VERSION`].
    pub report_version: u32,
    /// When the cluster was read (RFC 3339, this machine's clock).
    pub generated_at: String,
    /// The API server that was read.
    pub server: String,
    /// True exactly when there is no problem (exit status 0).
    pub clean: bool,
    /// How much was looked at.
    pub checked: Counts,
    /// Inconsistencies and pods or pools that do not work; each makes the exit status 1.
    pub problems: Vec<Finding>,
    /// Things worth knowing that are not problems (a disabled pool, a pod being assigned now).
    pub notes: Vec<Finding>,
}

/// How much a check looked at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// IPPools.
    pub pools: usize,
    /// IPAMBlocks.
    pub blocks: usize,
    /// Allocations recorded in the blocks.
    pub allocations: usize,
    /// Pods.
    pub pods: usize,
}

/// One thing `check` found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Finding {
    /// An allocation whose pod no longer exists (problem). `release` frees it.
    LeakedAllocation(Leak),
    /// A finished pod still holds an address (problem): the controller should have freed it.
    FinishedPodHoldsAddress(Finished),
    /// A pod's annotation names an address no block records for the pod (problem).
    UnrecordedAddress(Unrecorded),
    /// One address recorded in more than one block (problem).
    DuplicateAddress(Duplicate),
    /// One handle holding more than one address of a family (problem).
    DuplicateHandle(Duplicate),
    /// A block of a pool that does not exist (problem).
    BlockWithoutPool(BlockIssue),
    /// A block outside its pool's range or of another size than its pool's blocks (problem).
    BlockNotMatchingPool(BlockIssue),
    /// A block whose content no controller writes: bad range, name or records (problem).
    InvalidBlock(BlockIssue),
    /// Two blocks whose ranges overlap (problem).
    OverlappingBlocks(Overlap),
    /// A bound pod without an address (problem).
    PodWithoutAddress(Unaddressed),
    /// A pool that gives no addresses (problem), other than disabled or being deleted.
    PoolNotAllocatable(PoolIssue),
    /// A disabled pool (note).
    PoolDisabled(PoolIssue),
    /// A pool being deleted (note): it goes when its last address is released.
    PoolTerminating(PoolIssue),
    /// A pod bound moments ago, not assigned yet (note).
    PodWaiting(Unaddressed),
    /// A pod past its deletion time that still exists and so keeps its addresses (note).
    PodStuckTerminating(Stuck),
    /// A pod holds an address of a pool that no longer admits it (problem): its namespace or
    /// node stopped matching a selector, or the annotation naming the pool changed.
    AddressNotAdmitted(NotAdmitted),
    /// A live pod's sandbox runs with an address (`status.podIPs`) that no block records for
    /// it (problem): recorded for another pod, or for nobody, or the pod's record names another.
    PodIPNotRecorded(PodIPNotRecorded),
    /// A quarantined block (note): rebuilt by the controller after it was lost or unreadable,
    /// it gives out no new address until an admin removes `spec.quarantine`.
    BlockQuarantined(BlockIssue),
    /// An address of a pool with `stickyStatefulSets` kept for the next pod of a StatefulSet
    /// under its name (note): no pod holds it, and it is no leak. `release` never frees it
    /// from a report.
    ParkedStickyAddress(ParkedAddress),
    /// A live pod holds an address that is now reserved (problem): an IPReservation covers it,
    /// or its pool keeps it back with `reserveEdgeAddresses`. The pod keeps it while it runs.
    ReservedAddressHeld(ReservedHeld),
}

/// [`Finding::ParkedStickyAddress`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParkedAddress {
    /// The parked record: `handle` is `sts:<StatefulSet UID>/<pod name>`, `namespace` and `pod`
    /// name the pod that had it and whose successor gets it.
    #[serde(flatten)]
    pub holder: Holder,
    /// The UID of the StatefulSet it is kept for.
    pub stateful_set_uid: String,
    /// The StatefulSet's name, from the pod's (`null` when the name has no ordinal).
    pub stateful_set: Option<String>,
    /// The pod's ordinal (`null` likewise).
    pub ordinal: Option<u32>,
    /// For a person.
    pub message: String,
}

/// [`Finding::ReservedAddressHeld`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservedHeld {
    /// The allocation.
    #[serde(flatten)]
    pub holder: Holder,
    /// What reserves it: `{"by": "IPReservation", "name", "range"}` or `{"by": "EdgeAddress",
    /// "pool", "rule"}`.
    pub reserved_by: Vec<ReservedBy>,
    /// For a person.
    pub message: String,
}

/// [`Finding::PodIPNotRecorded`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodIPNotRecorded {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The pod's UID.
    pub uid: String,
    /// The address in `status.podIPs`.
    pub address: IpAddr,
    /// What the blocks record for the pod in that family (none: nothing).
    pub recorded: Option<IpAddr>,
    /// Who the blocks record for the address instead, if anyone.
    pub holder: Option<Holder>,
    /// For a person.
    pub message: String,
}

/// [`Finding::AddressNotAdmitted`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotAdmitted {
    /// The allocation.
    #[serde(flatten)]
    pub holder: Holder,
    /// The core's short reason (`SelectorMismatch`, `PoolNotNamed`, ...).
    pub reason: String,
    /// For a person.
    pub message: String,
}

/// How we know a leaked allocation's pod is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodState {
    /// No pod of that namespace and name exists.
    NotFound,
    /// A pod of that namespace and name exists with another UID: the holder was re-created.
    Recreated,
}

/// [`Finding::LeakedAllocation`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Leak {
    /// The allocation.
    #[serde(flatten)]
    pub holder: Holder,
    /// Why the pod counts as gone.
    pub pod_state: PodState,
    /// With `Recreated`: the UID of the pod that now has the name.
    #[serde(default)]
    pub current_uid: Option<String>,
    /// With `Recreated`: the holder was gone before this time (the new pod's creation).
    /// Otherwise `null`: when a pod was deleted is recorded nowhere once it is gone.
    #[serde(default)]
    pub gone_before: Option<String>,
    /// When the block was created: the allocation is no older than this (blocks record no time
    /// per allocation).
    #[serde(default)]
    pub block_created: Option<String>,
    /// For a person.
    pub message: String,
}

/// [`Finding::FinishedPodHoldsAddress`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finished {
    /// The allocation.
    #[serde(flatten)]
    pub holder: Holder,
    /// `Succeeded` or `Failed`.
    pub phase: String,
    /// When its last container finished, if the kubelet recorded it.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// For a person.
    pub message: String,
}

/// [`Finding::UnrecordedAddress`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unrecorded {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The pod's UID.
    pub uid: String,
    /// `ipv4` or `ipv6`; `null` when the annotations cannot be read at all.
    pub family: Option<String>,
    /// The annotated address as written.
    pub address: Option<String>,
    /// The block the annotation names.
    pub annotated_block: Option<String>,
    /// What the blocks record for that address (empty: nothing).
    pub recorded: Vec<Holder>,
    /// For a person.
    pub message: String,
}

/// [`Finding::DuplicateAddress`] (same `address`) and [`Finding::DuplicateHandle`] (same
/// `handle` and `family`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Duplicate {
    /// With `DuplicateAddress`: the address.
    #[serde(default)]
    pub address: Option<IpAddr>,
    /// With `DuplicateHandle`: the handle.
    #[serde(default)]
    pub handle: Option<String>,
    /// With `DuplicateHandle`: `ipv4` or `ipv6`.
    #[serde(default)]
    pub family: Option<String>,
    /// Every allocation involved.
    pub holders: Vec<Holder>,
    /// For a person.
    pub message: String,
}

/// [`Finding::BlockWithoutPool`], [`Finding::BlockNotMatchingPool`], [`Finding::InvalidBlock`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockIssue {
    /// The IPAMBlock's name.
    pub block: String,
    /// Its `spec.cidr` as written.
    pub cidr: String,
    /// Its `spec.pool`.
    pub pool: String,
    /// Allocations it records.
    pub allocations: usize,
    /// For a person.
    pub message: String,
}

/// [`Finding::OverlappingBlocks`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Overlap {
    /// The two blocks' names.
    pub blocks: [String; 2],
    /// Their ranges.
    pub cidrs: [String; 2],
    /// For a person.
    pub message: String,
}

/// [`Finding::PodWithoutAddress`] and [`Finding::PodWaiting`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unaddressed {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The pod's UID.
    pub uid: String,
    /// Its node.
    pub node: String,
    /// Its `rangepool.dev/error` annotation: why the controller gave it no address.
    pub error: Option<String>,
    /// Since when it waits: its binding (PodScheduled) or, unknown that, its creation.
    pub waiting_since: Option<String>,
    /// For a person.
    pub message: String,
}

/// [`Finding::PoolNotAllocatable`], [`Finding::PoolDisabled`], [`Finding::PoolTerminating`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolIssue {
    /// The pool.
    pub pool: String,
    /// The `Allocatable` condition's reason, `Unknown` without one.
    pub reason: String,
    /// Addresses its blocks hold.
    pub allocations: usize,
    /// For a person.
    pub message: String,
}

/// [`Finding::PodStuckTerminating`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stuck {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The pod's UID.
    pub uid: String,
    /// Its `metadata.deletionTimestamp`: when it should have been gone.
    pub deletion_timestamp: String,
    /// The addresses it keeps.
    pub addresses: Vec<IpAddr>,
    /// For a person.
    pub message: String,
}

impl Finding {
    /// The `kind` as serialized.
    pub fn kind(&self) -> &'static str {
        match self {
            Finding::LeakedAllocation(_) => "LeakedAllocation",
            Finding::FinishedPodHoldsAddress(_) => "FinishedPodHoldsAddress",
            Finding::UnrecordedAddress(_) => "UnrecordedAddress",
            Finding::DuplicateAddress(_) => "DuplicateAddress",
            Finding::DuplicateHandle(_) => "DuplicateHandle",
            Finding::BlockWithoutPool(_) => "BlockWithoutPool",
            Finding::BlockNotMatchingPool(_) => "BlockNotMatchingPool",
            Finding::InvalidBlock(_) => "InvalidBlock",
            Finding::OverlappingBlocks(_) => "OverlappingBlocks",
            Finding::PodWithoutAddress(_) => "PodWithoutAddress",
            Finding::PoolNotAllocatable(_) => "PoolNotAllocatable",
            Finding::PoolDisabled(_) => "PoolDisabled",
            Finding::PoolTerminating(_) => "PoolTerminating",
            Finding::PodWaiting(_) => "PodWaiting",
            Finding::PodStuckTerminating(_) => "PodStuckTerminating",
            Finding::AddressNotAdmitted(_) => "AddressNotAdmitted",
            Finding::PodIPNotRecorded(_) => "PodIPNotRecorded",
            Finding::BlockQuarantined(_) => "BlockQuarantined",
            Finding::ParkedStickyAddress(_) => "ParkedStickyAddress",
            Finding::ReservedAddressHeld(_) => "ReservedAddressHeld",
        }
    }

    /// The sentence for a person.
    pub fn message(&self) -> &str {
        match self {
            Finding::LeakedAllocation(x) => &x.message,
            Finding::FinishedPodHoldsAddress(x) => &x.message,
            Finding::UnrecordedAddress(x) => &x.message,
            Finding::DuplicateAddress(x) | Finding::DuplicateHandle(x) => &x.message,
            Finding::BlockWithoutPool(x)
            | Finding::BlockNotMatchingPool(x)
            | Finding::InvalidBlock(x) => &x.message,
            Finding::OverlappingBlocks(x) => &x.message,
            Finding::PodWithoutAddress(x) | Finding::PodWaiting(x) => &x.message,
            Finding::PoolNotAllocatable(x)
            | Finding::PoolDisabled(x)
            | Finding::PoolTerminating(x) => &x.message,
            Finding::PodStuckTerminating(x) => &x.message,
            Finding::AddressNotAdmitted(x) => &x.message,
            Finding::PodIPNotRecorded(x) => &x.message,
            Finding::BlockQuarantined(x) => &x.message,
            Finding::ParkedStickyAddress(x) => &x.message,
            Finding::ReservedAddressHeld(x) => &x.message,
        }
    }

    /// What the finding is about, in a few words: an address, a pod, a block or a pool.
    pub fn subject(&self) -> String {
        match self {
            Finding::LeakedAllocation(x) => {
                format!("{} held by {}", x.holder.address, x.holder.pod_key())
            }
            Finding::FinishedPodHoldsAddress(x) => {
                format!("{} held by {}", x.holder.address, x.holder.pod_key())
            }
            Finding::UnrecordedAddress(x) => format!(
                "{}/{} claims {}",
                x.namespace,
                x.pod,
                x.address.as_deref().unwrap_or("an address")
            ),
            Finding::DuplicateAddress(x) => x
                .address
                .map_or_else(String::new, |a| format!("{a} held twice")),
            Finding::DuplicateHandle(x) => match x.holders.first() {
                Some(h) => format!("{} holds {} addresses", h.pod_key(), x.holders.len()),
                None => String::new(),
            },
            Finding::BlockWithoutPool(x)
            | Finding::BlockNotMatchingPool(x)
            | Finding::InvalidBlock(x) => format!("block {}", x.block),
            Finding::OverlappingBlocks(x) => {
                format!("blocks {} and {}", x.blocks[0], x.blocks[1])
            }
            Finding::PodWithoutAddress(x) | Finding::PodWaiting(x) => {
                format!("pod {}/{}", x.namespace, x.pod)
            }
            Finding::PoolNotAllocatable(x)
            | Finding::PoolDisabled(x)
            | Finding::PoolTerminating(x) => format!("pool {}", x.pool),
            Finding::PodStuckTerminating(x) => format!("pod {}/{}", x.namespace, x.pod),
            Finding::AddressNotAdmitted(x) => {
                format!("{} held by {}", x.holder.address, x.holder.pod_key())
            }
            Finding::PodIPNotRecorded(x) => {
                format!("{}/{} runs with {}", x.namespace, x.pod, x.address)
            }
            Finding::BlockQuarantined(x) => format!("block {}", x.block),
            Finding::ParkedStickyAddress(x) => format!(
                "{} kept for {}/{}",
                x.holder.address, x.holder.namespace, x.holder.pod
            ),
            Finding::ReservedAddressHeld(x) => {
                format!("{} held by {}", x.holder.address, x.holder.pod_key())
            }
        }
    }
}
