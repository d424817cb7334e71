//! The plain, serializable form of a block, and the checked conversion back.
//!
//! Records come from the API server, where anyone with write access to IPAMBlocks (or a bug)
//! may have left anything. [`Block::from_record`] therefore checks every invariant and returns a
//! typed error instead of trusting or panicking.

use std::collections::HashSet;
use std::sync::Arc;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{Allocation, Block, BlockError, BlockId};

/// A block as stored: range, pool, affinity, sequence and allocations sorted by ordinal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockRecord {
    /// The block's range.
    pub cidr: IpNet,
    /// The pool's name.
    pub pool: String,
    /// The node the block is affine to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<String>,
    /// The block's sequence.
    #[serde(default)]
    pub sequence: u64,
    /// One record per allocated address, sorted by ordinal.
    #[serde(default)]
    pub allocations: Vec<AllocationRecord>,
    /// Why the block gives out no new address, if it is quarantined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<String>,
    /// Free addresses released recently, for the reuse cooldown: (ordinal, seconds since the
    /// Unix epoch), sorted by ordinal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub released: Vec<(u32, u64)>,
}

/// One allocated address as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllocationRecord {
    /// The address's ordinal in the block.
    pub ordinal: u32,
    /// The pod UID.
    pub handle: String,
    /// The pod's namespace.
    #[serde(default)]
    pub namespace: String,
    /// The pod's name.
    #[serde(default)]
    pub pod: String,
    /// The sandbox an earlier version of the CNI plugin recorded; kept as read, never written now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The block sequence at which the address was allocated.
    #[serde(default)]
    pub sequence: u64,
}

impl Block {
    /// The block as a plain record, allocations sorted by ordinal.
    pub fn to_record(&self) -> BlockRecord {
        BlockRecord {
            cidr: self.cidr,
            pool: self.pool.to_string(),
            affinity: self.affinity.as_deref().map(str::to_owned),
            sequence: self.sequence,
            allocations: self
                .allocations()
                .map(|(ordinal, a)| AllocationRecord {
                    ordinal,
                    handle: a.handle().to_owned(),
                    namespace: a.namespace().to_owned(),
                    pod: a.pod().to_owned(),
                    container: a.container().map(str::to_owned),
                    sequence: a.sequence(),
                })
                .collect(),
            quarantine: self.quarantine().map(str::to_owned),
            released: {
                let mut released: Vec<(u32, u64)> = self.released().collect();
                released.sort_unstable();
                released
            },
        }
    }

    /// Rebuilds a block from a record, checking that the range is a strictly masked block, the
    /// pool is named, every ordinal is inside the block and appears once, every handle is
    /// non-empty and appears once, and no allocation's sequence is ahead of the block's.
    /// Free addresses are queued in ascending order.
    pub fn from_record(record: &BlockRecord) -> Result<Block, BlockError> {
        let mut block = Block::empty(
            record.cidr,
            Arc::from(record.pool.as_str()),
            record.affinity.as_deref().map(Arc::from),
        )?;
        block.sequence = record.sequence;
        block.quarantine = record.quarantine.as_deref().map(Box::from);
        let id = || BlockId {
            cidr: record.cidr.to_string(),
            pool: record.pool.clone(),
        };
        let mut handles: HashSet<&str> = HashSet::with_capacity(record.allocations.len());
        for r in &record.allocations {
            let capacity = block.capacity();
            let Some(address) = block.address(r.ordinal) else {
                return Err(BlockError::OrdinalOutOfRange {
                    block: id(),
                    ordinal: r.ordinal,
                    capacity,
                });
            };
            let slot = &mut block.slots[r.ordinal as usize];
            if slot.is_some() {
                return Err(BlockError::DuplicateOrdinal {
                    block: id(),
                    ordinal: r.ordinal,
                    address,
                });
            }
            if r.handle.is_empty() {
                return Err(BlockError::EmptyHandle {
                    block: id(),
                    ordinal: r.ordinal,
                    address,
                });
            }
            if r.sequence > record.sequence {
                return Err(BlockError::SequenceAhead {
                    block: id(),
                    address,
                    sequence: r.sequence,
                    block_sequence: record.sequence,
                });
            }
            if !handles.insert(&r.handle) {
                let first = record
                    .allocations
                    .iter()
                    .find(|o| o.handle == r.handle)
                    .and_then(|o| cidr_addr(&record.cidr, o.ordinal))
                    .unwrap_or(address);
                return Err(BlockError::DuplicateHandle {
                    block: id(),
                    handle: r.handle.clone(),
                    first,
                    second: address,
                });
            }
            let mut allocation = Allocation::new(&r.handle, &r.namespace, &r.pod, r.sequence);
            allocation.container = r.container.as_deref().map(Box::from);
            *slot = Some(allocation);
        }
        let slots = &block.slots;
        block.free.retain(|o| slots[usize::from(*o)].is_none());
        // Release times of addresses that are not free, or not in the block, mean nothing: a
        // cooldown only ever delays a reuse, so they are dropped rather than refused.
        for &(ordinal, at) in &record.released {
            if block
                .slots
                .get(ordinal as usize)
                .is_some_and(Option::is_none)
            {
                block.note_released(ordinal, at);
            }
        }
        Ok(block)
    }
}

fn cidr_addr(cidr: &IpNet, ordinal: u32) -> Option<std::net::IpAddr> {
    crate::cidr::nth_addr(cidr, ordinal)
}
