//! One IPAM block: a pool's slice of `2^(max - prefix)` addresses, claimed by one node, with one
//! slot per address.
//!
//! Invariants a [`Block`] keeps (and [`Block::from_record`] checks on data read back):
//! - the CIDR is strictly masked and its prefix is a valid block size (at most 4096 slots);
//! - a handle holds at most one slot of a block;
//! - the block `sequence` grows whenever an address changes hands or the affinity changes, and an
//!   allocation records the sequence at which it was made, which is never above the block's. A
//!   release names the sequence it expects, so a stale release cannot free an address that was
//!   re-assigned meanwhile.
//! - an allocation's `container` (recorded by earlier versions of the CNI plugin, never written
//!   now) is kept as read and moves nothing.
//! - a quarantined block (see [`Block::quarantine`]) keeps and releases what it records but
//!   gives out no new address.
//!
//! Free slots are handed out from a queue: a released ordinal goes to the back, so a just-freed
//! address is not reused at once (connections to the old pod get time to die). A block rebuilt
//! from a record starts with its free ordinals in ascending order.

use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use thiserror::Error;

use crate::cidr::{self, Family};
use crate::text::shown;

mod record;

pub use record::{AllocationRecord, BlockRecord};

/// One allocated address: who holds it.
///
/// Kept compact because a controller holds one per pod: handle, pod name and namespace share
/// one exact-size heap buffer, so a slot is 48 bytes and an allocation costs one heap
/// allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// Handle, then pod name, then namespace.
    text: Box<str>,
    handle_len: u32,
    pod_len: u32,
    container: Option<Box<str>>,
    sequence: u64,
}

impl Allocation {
    fn new(handle: &str, namespace: &str, pod: &str, sequence: u64) -> Allocation {
        let mut text = String::with_capacity(handle.len() + pod.len() + namespace.len());
        text.push_str(handle);
        text.push_str(pod);
        text.push_str(namespace);
        Allocation {
            text: text.into_boxed_str(),
            // Strings over 4 GiB cannot reach here: the API server caps object sizes.
            handle_len: u32::try_from(handle.len()).unwrap_or(u32::MAX),
            pod_len: u32::try_from(pod.len()).unwrap_or(u32::MAX),
            container: None,
            sequence,
        }
    }

    /// The holder's handle: the pod UID.
    pub fn handle(&self) -> &str {
        self.text.get(..self.handle_len as usize).unwrap_or("")
    }

    /// The pod's name.
    pub fn pod(&self) -> &str {
        let start = self.handle_len as usize;
        self.text
            .get(start..start + self.pod_len as usize)
            .unwrap_or("")
    }

    /// The pod's namespace.
    pub fn namespace(&self) -> &str {
        let start = self.handle_len as usize + self.pod_len as usize;
        self.text.get(start..).unwrap_or("")
    }

    /// The container (sandbox) ID an earlier version of the CNI plugin recorded, if any; kept
    /// from the record, never set now.
    pub fn container(&self) -> Option<&str> {
        self.container.as_deref()
    }

    /// The block sequence at which the address was allocated.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }
}

/// Where an allocation landed in its block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The address's ordinal in the block (0 = first address).
    pub ordinal: u32,
    /// The allocation's sequence.
    pub sequence: u64,
}

/// Names a block in messages: its range and pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockId {
    /// The block's range as given (may be invalid in errors about the range itself).
    pub cidr: String,
    /// The pool the block belongs to.
    pub pool: String,
}

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "block {} of pool {}", self.cidr, self.pool)
    }
}

/// Why a block operation or a block record was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BlockError {
    /// The block's CIDR has host bits set.
    #[error("{block}: the range has host bits set; did you mean {masked}?")]
    CidrNotMasked {
        /// The block.
        block: BlockId,
        /// The masked range.
        masked: IpNet,
    },
    /// The block's prefix is not a valid block size.
    #[error("{block}: prefix /{prefix} is not a block size; {family} blocks are /{} to /{}",
        family.block_prefix_range().start(), family.block_prefix_range().end())]
    BadBlockSize {
        /// The block.
        block: BlockId,
        /// The prefix length.
        prefix: u8,
        /// The family.
        family: Family,
    },
    /// The block names no pool.
    #[error("{block}: the block names no pool")]
    MissingPool {
        /// The block.
        block: BlockId,
    },
    /// An address outside the block.
    #[error("{block}: address {address} is outside the block")]
    OutsideBlock {
        /// The block.
        block: BlockId,
        /// The address.
        address: IpAddr,
    },
    /// An ordinal outside the block.
    #[error("{block}: ordinal {ordinal} is outside the block, which has {capacity} addresses")]
    OrdinalOutOfRange {
        /// The block.
        block: BlockId,
        /// The ordinal given.
        ordinal: u32,
        /// Number of addresses in the block.
        capacity: u32,
    },
    /// Two records for one ordinal.
    #[error("{block}: address {address} (ordinal {ordinal}) is recorded twice")]
    DuplicateOrdinal {
        /// The block.
        block: BlockId,
        /// The ordinal.
        ordinal: u32,
        /// The address.
        address: IpAddr,
    },
    /// One handle holds two addresses of the block.
    #[error(
        "{block}: handle {} holds two addresses, {first} and {second}; a pod has at most one address per block",
        shown(handle)
    )]
    DuplicateHandle {
        /// The block.
        block: BlockId,
        /// The handle.
        handle: String,
        /// Its first address.
        first: IpAddr,
        /// Its second address.
        second: IpAddr,
    },
    /// An allocation without a handle.
    #[error("{block}: address {address} (ordinal {ordinal}) has an empty handle")]
    EmptyHandle {
        /// The block.
        block: BlockId,
        /// The ordinal.
        ordinal: u32,
        /// The address.
        address: IpAddr,
    },
    /// An allocation claims a sequence the block has not reached.
    #[error(
        "{block}: address {address} was allocated at sequence {sequence}, after the block's own sequence {block_sequence}"
    )]
    SequenceAhead {
        /// The block.
        block: BlockId,
        /// The address.
        address: IpAddr,
        /// The allocation's sequence.
        sequence: u64,
        /// The block's sequence.
        block_sequence: u64,
    },
    /// No free address left.
    #[error("{block}: no free address left")]
    Full {
        /// The block.
        block: BlockId,
    },
    /// The handle already holds an address of this block.
    #[error("{block}: handle {} already holds {address}", shown(handle))]
    HandleExists {
        /// The block.
        block: BlockId,
        /// The handle.
        handle: String,
        /// The address it holds.
        address: IpAddr,
    },
    /// The address is not allocated.
    #[error("{block}: address {address} is not allocated")]
    NotAllocated {
        /// The block.
        block: BlockId,
        /// The address.
        address: IpAddr,
    },
    /// The address is held by another handle than the one named.
    #[error(
        "{block}: address {address} is held by {}, not by {}; it was re-assigned meanwhile",
        shown(found),
        shown(expected)
    )]
    HandleMismatch {
        /// The block.
        block: BlockId,
        /// The address.
        address: IpAddr,
        /// The handle the caller named.
        expected: String,
        /// The handle that holds it.
        found: String,
    },
    /// The address was released and allocated again since the caller read it.
    #[error(
        "{block}: address {address} now carries sequence {found}, not {expected}; it was re-assigned meanwhile"
    )]
    SequenceMismatch {
        /// The block.
        block: BlockId,
        /// The address.
        address: IpAddr,
        /// The sequence the caller named.
        expected: u64,
        /// The sequence of the current allocation.
        found: u64,
    },
}

impl BlockError {
    /// Short stable label for events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            BlockError::CidrNotMasked { .. } => "BlockCIDRNotMasked",
            BlockError::BadBlockSize { .. } => "InvalidBlockSize",
            BlockError::MissingPool { .. } => "MissingPool",
            BlockError::OutsideBlock { .. } => "OutsideBlock",
            BlockError::OrdinalOutOfRange { .. } => "OrdinalOutOfRange",
            BlockError::DuplicateOrdinal { .. } => "DuplicateOrdinal",
            BlockError::DuplicateHandle { .. } => "DuplicateHandle",
            BlockError::EmptyHandle { .. } => "EmptyHandle",
            BlockError::SequenceAhead { .. } => "SequenceAhead",
            BlockError::Full { .. } => "BlockFull",
            BlockError::HandleExists { .. } => "HandleExists",
            BlockError::NotAllocated { .. } => "NotAllocated",
            BlockError::HandleMismatch { .. } => "HandleMismatch",
            BlockError::SequenceMismatch { .. } => "SequenceMismatch",
        }
    }
}

/// One IPAM block with its allocations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    cidr: IpNet,
    pool: Arc<str>,
    affinity: Option<Arc<str>>,
    sequence: u64,
    slots: Vec<Option<Allocation>>,
    /// Free ordinals, next to hand out at the front. Ordinals fit in `u16` (at most 4096 slots).
    free: VecDeque<u16>,
    /// Why no new address may come from the block, if it is quarantined.
    quarantine: Option<Box<str>>,
    /// Free ordinals released recently, with when (seconds since the Unix epoch), for the reuse
    /// cooldown (see `Allocator::set_cooldown`). Empty when no cooldown is set.
    released: Vec<(u16, u64)>,
}

impl Block {
    /// An empty block of `pool` for `cidr`, optionally affine to a node. Refuses a CIDR that is
    /// not strictly masked or not a valid block size.
    pub fn new(cidr: IpNet, pool: &str, affinity: Option<&str>) -> Result<Block, BlockError> {
        Block::empty(cidr, Arc::from(pool), affinity.map(Arc::from))
    }

    pub(crate) fn empty(
        cidr: IpNet,
        pool: Arc<str>,
        affinity: Option<Arc<str>>,
    ) -> Result<Block, BlockError> {
        let id = || BlockId {
            cidr: cidr.to_string(),
            pool: pool.to_string(),
        };
        if pool.is_empty() {
            return Err(BlockError::MissingPool { block: id() });
        }
        if cidr.trunc() != cidr {
            return Err(BlockError::CidrNotMasked {
                block: id(),
                masked: cidr.trunc(),
            });
        }
        let family = Family::of(&cidr);
        if !family.block_prefix_range().contains(&cidr.prefix_len()) {
            return Err(BlockError::BadBlockSize {
                block: id(),
                prefix: cidr.prefix_len(),
                family,
            });
        }
        let size = 1usize << (cidr.max_prefix_len() - cidr.prefix_len());
        Ok(Block {
            cidr,
            pool,
            affinity,
            sequence: 0,
            slots: vec![None; size],
            free: (0..size).filter_map(|o| u16::try_from(o).ok()).collect(),
            quarantine: None,
            released: Vec::new(),
        })
    }

    fn id(&self) -> BlockId {
        BlockId {
            cidr: self.cidr.to_string(),
            pool: self.pool.to_string(),
        }
    }

    /// The block's range.
    pub fn cidr(&self) -> IpNet {
        self.cidr
    }

    /// The block's address family.
    pub fn family(&self) -> Family {
        Family::of(&self.cidr)
    }

    /// The name of the pool the block belongs to.
    pub fn pool(&self) -> &str {
        &self.pool
    }

    /// The node the block is affine to, if any.
    pub fn affinity(&self) -> Option<&str> {
        self.affinity.as_deref()
    }

    pub(crate) fn affinity_arc(&self) -> Option<&Arc<str>> {
        self.affinity.as_ref()
    }

    /// Sets or clears the node affinity. Returns true when it changed (and so the sequence).
    pub fn set_affinity(&mut self, node: Option<&str>) -> bool {
        self.set_affinity_arc(node.map(Arc::from))
    }

    pub(crate) fn set_affinity_arc(&mut self, node: Option<Arc<str>>) -> bool {
        if self.affinity.as_deref() == node.as_deref() {
            return false;
        }
        self.affinity = node;
        self.sequence += 1;
        true
    }

    /// Why the block gives out no new address, when it is quarantined: its range was lost or
    /// unreadable and was rebuilt from the pods that use it, so a free slot may still be live on
    /// the network. Only an admin lifts it (by removing the block's `quarantine`).
    pub fn quarantine(&self) -> Option<&str> {
        self.quarantine.as_deref()
    }

    /// The free addresses released recently, as (ordinal, seconds since the Unix epoch), for the
    /// reuse cooldown.
    pub fn released(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.released.iter().map(|&(o, at)| (u32::from(o), at))
    }

    /// When the free address at `ordinal` was released, if that is still remembered.
    pub fn released_at(&self, ordinal: u32) -> Option<u64> {
        self.released
            .iter()
            .find(|(o, _)| u32::from(*o) == ordinal)
            .map(|&(_, at)| at)
    }

    /// Remembers that the address at `ordinal` was released at `at` (seconds since the epoch).
    pub(crate) fn note_released(&mut self, ordinal: u32, at: u64) {
        let Ok(short) = u16::try_from(ordinal) else {
            return;
        };
        self.released.retain(|(o, _)| *o != short);
        self.released.push((short, at));
    }

    /// Forgets releases before `cutoff`: their cooldown is over.
    pub(crate) fn forget_released_before(&mut self, cutoff: u64) {
        self.released.retain(|&(_, at)| at >= cutoff);
    }

    /// Quarantines the block (see [`Block::quarantine`]), or lifts it with `None`.
    pub fn set_quarantine(&mut self, reason: Option<&str>) {
        self.quarantine = reason.map(Box::from);
    }

    /// The block's sequence: bumped whenever an address changes hands or the affinity changes.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Number of addresses in the block.
    pub fn capacity(&self) -> u32 {
        u32::try_from(self.slots.len()).unwrap_or(u32::MAX)
    }

    /// Number of allocated addresses.
    pub fn allocated(&self) -> u32 {
        self.capacity() - self.free_count()
    }

    /// Number of free addresses.
    pub fn free_count(&self) -> u32 {
        u32::try_from(self.free.len()).unwrap_or(u32::MAX)
    }

    /// True when no address is allocated.
    pub fn is_empty(&self) -> bool {
        self.free.len() == self.slots.len()
    }

    /// True when every address is allocated.
    pub fn is_full(&self) -> bool {
        self.free.is_empty()
    }

    /// The address at `ordinal`.
    pub fn address(&self, ordinal: u32) -> Option<IpAddr> {
        cidr::nth_addr(&self.cidr, ordinal)
    }

    /// The ordinal of `addr` in this block.
    pub fn ordinal_of(&self, addr: IpAddr) -> Option<u32> {
        cidr::ordinal_of(&self.cidr, addr)
    }

    /// The allocation at `ordinal`, if any.
    pub fn get(&self, ordinal: u32) -> Option<&Allocation> {
        self.slots.get(ordinal as usize)?.as_ref()
    }

    /// Every allocation with its ordinal, in ordinal order.
    pub fn allocations(&self) -> impl Iterator<Item = (u32, &Allocation)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(o, s)| Some((u32::try_from(o).ok()?, s.as_ref()?)))
    }

    /// The ordinal `handle` holds in this block (a scan of the block).
    pub fn find_handle(&self, handle: &str) -> Option<u32> {
        self.allocations()
            .find(|(_, a)| a.handle() == handle)
            .map(|(o, _)| o)
    }

    fn addr(&self, ordinal: u32) -> IpAddr {
        // Ordinals stored in a block are always inside it; the fallback only keeps this total.
        self.address(ordinal).unwrap_or(self.cidr.network())
    }

    /// Allocates the next free address to `handle`. Refuses when the block is full or the handle
    /// already holds an address here.
    pub fn allocate(
        &mut self,
        handle: &str,
        namespace: &str,
        pod: &str,
    ) -> Result<Slot, BlockError> {
        if let Some(ordinal) = self.find_handle(handle) {
            return Err(BlockError::HandleExists {
                block: self.id(),
                handle: handle.to_owned(),
                address: self.addr(ordinal),
            });
        }
        self.allocate_unchecked(handle, namespace, pod)
    }

    /// [`Block::allocate`] without the scan for the handle: the allocator's handle index
    /// already guarantees it is not here.
    pub(crate) fn allocate_unchecked(
        &mut self,
        handle: &str,
        namespace: &str,
        pod: &str,
    ) -> Result<Slot, BlockError> {
        let Some(ordinal) = self.free.pop_front() else {
            return Err(BlockError::Full { block: self.id() });
        };
        self.released.retain(|(o, _)| *o != ordinal);
        self.sequence += 1;
        let sequence = self.sequence;
        self.slots[usize::from(ordinal)] = Some(Allocation::new(handle, namespace, pod, sequence));
        Ok(Slot {
            ordinal: u32::from(ordinal),
            sequence,
        })
    }

    /// [`Block::allocate_unchecked`], passing over free addresses `avoid` names (by ordinal and
    /// address: in use by pods no record gives them to, reserved, cooling down); they stay
    /// free, in queue order. Full when only such addresses are left.
    pub(crate) fn allocate_avoiding(
        &mut self,
        handle: &str,
        namespace: &str,
        pod: &str,
        avoid: impl Fn(u32, IpAddr) -> bool,
    ) -> Result<Slot, BlockError> {
        for _ in 0..self.free.len() {
            let Some(&ordinal) = self.free.front() else {
                break;
            };
            let ordinal = u32::from(ordinal);
            if !avoid(ordinal, self.addr(ordinal)) {
                return self.allocate_unchecked(handle, namespace, pod);
            }
            self.free.rotate_left(1);
        }
        Err(BlockError::Full { block: self.id() })
    }

    /// Records `address` for `handle`: a pod found using an address no record gives it (see
    /// [`crate::planner`]). Refuses an address outside the block or already held.
    pub(crate) fn allocate_at(
        &mut self,
        address: IpAddr,
        handle: &str,
        namespace: &str,
        pod: &str,
    ) -> Result<Slot, BlockError> {
        let Some(ordinal) = self.ordinal_of(address) else {
            return Err(BlockError::OutsideBlock {
                block: self.id(),
                address,
            });
        };
        if let Some(holder) = self.get(ordinal) {
            return Err(BlockError::HandleMismatch {
                block: self.id(),
                address,
                expected: handle.to_owned(),
                found: holder.handle().to_owned(),
            });
        }
        let Ok(short) = u16::try_from(ordinal) else {
            return Err(BlockError::Full { block: self.id() });
        };
        self.free.retain(|o| *o != short);
        self.released.retain(|(o, _)| *o != short);
        self.sequence += 1;
        let sequence = self.sequence;
        self.slots[ordinal as usize] = Some(Allocation::new(handle, namespace, pod, sequence));
        Ok(Slot { ordinal, sequence })
    }

    fn occupied(&self, ordinal: u32) -> Result<&Allocation, BlockError> {
        match self.slots.get(ordinal as usize) {
            None => Err(BlockError::OrdinalOutOfRange {
                block: self.id(),
                ordinal,
                capacity: self.capacity(),
            }),
            Some(None) => Err(BlockError::NotAllocated {
                block: self.id(),
                address: self.addr(ordinal),
            }),
            Some(Some(a)) => Ok(a),
        }
    }

    fn check_holder(&self, ordinal: u32, handle: &str) -> Result<&Allocation, BlockError> {
        let a = self.occupied(ordinal)?;
        if a.handle() != handle {
            return Err(BlockError::HandleMismatch {
                block: self.id(),
                address: self.addr(ordinal),
                expected: handle.to_owned(),
                found: a.handle().to_owned(),
            });
        }
        Ok(a)
    }

    /// Releases the address at `ordinal` if it is still held by `handle` with allocation
    /// `sequence`; refuses otherwise (it was re-assigned meanwhile).
    pub fn release(
        &mut self,
        ordinal: u32,
        handle: &str,
        sequence: u64,
    ) -> Result<Allocation, BlockError> {
        let a = self.check_holder(ordinal, handle)?;
        if a.sequence != sequence {
            return Err(BlockError::SequenceMismatch {
                block: self.id(),
                address: self.addr(ordinal),
                expected: sequence,
                found: a.sequence,
            });
        }
        // Not `ok_or`: the error's block name is formatted only when there is an error.
        match self.release_ordinal(ordinal) {
            Some(taken) => Ok(taken),
            None => Err(BlockError::NotAllocated {
                block: self.id(),
                address: self.addr(ordinal),
            }),
        }
    }

    /// Releases whatever `handle` holds in this block, if anything.
    pub fn release_handle(&mut self, handle: &str) -> Option<(u32, Allocation)> {
        let ordinal = self.find_handle(handle)?;
        self.release_ordinal(ordinal).map(|a| (ordinal, a))
    }

    /// Gives the address at `ordinal`, held by `from`, to `to` (a sticky record parked or taken
    /// over): a new allocation of the same address, with a new sequence, so that a release
    /// naming the old holder no longer frees it.
    pub(crate) fn rehandle(
        &mut self,
        ordinal: u32,
        from: &str,
        to: &str,
        namespace: &str,
        pod: &str,
    ) -> Result<Slot, BlockError> {
        self.check_holder(ordinal, from)?;
        self.sequence += 1;
        let sequence = self.sequence;
        self.slots[ordinal as usize] = Some(Allocation::new(to, namespace, pod, sequence));
        Ok(Slot { ordinal, sequence })
    }

    /// Frees a slot unconditionally; the caller has checked who holds it.
    pub(crate) fn release_ordinal(&mut self, ordinal: u32) -> Option<Allocation> {
        let taken = self.slots.get_mut(ordinal as usize)?.take()?;
        self.free.push_back(u16::try_from(ordinal).ok()?);
        self.sequence += 1;
        Some(taken)
    }
}

#[cfg(test)]
mod tests;
