//! The in-memory allocator the controller keeps: every known block and pool, indexed for
//! allocation in constant time.
//!
//! The controller feeds it what its watches see ([`Allocator::insert_block`],
//! [`Allocator::remove_block`], [`Allocator::set_pool`]), asks it for addresses
//! ([`Allocator::allocate`]) and frees them ([`Allocator::release`],
//! [`Allocator::release_handle`]). Changed blocks are collected until [`Allocator::take_dirty`],
//! so that many allocations in one block become one write.
//!
//! Allocation, per candidate pool in order: a block of the pool affine to the pod's node with a
//! free slot; else the next unclaimed block of the pool, created for the node; else, unless
//! strict affinity is on, a free slot in any other block of the pool. Only when every candidate
//! is full does it fail, naming the pools tried. A handle holds at most one address per family:
//! asking again returns the same address.
//!
//! Invariants (checked by the property tests): an address is held by at most one handle; an
//! allocation is inside its block and its block inside its pool; a release that names a stale
//! handle or sequence frees nothing.

use std::collections::BTreeMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::block::{Allocation, Block, BlockError};
use crate::cidr::{self, Family};
use crate::hash::{FastMap, HashKeyed, hash_str};
use crate::pool::Pool;

mod error;
mod index;

pub use error::{AllocError, InsertError, ReleaseError};
use index::{BlockId, Holdings, NodeId, NodeState, PoolId, PoolState, SlotRef};

/// A request for one address of one family for one pod.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The pod's UID; one address per family per handle.
    pub handle: &'a str,
    /// The pod's namespace (recorded in the block).
    pub namespace: &'a str,
    /// The pod's name (recorded in the block).
    pub pod: &'a str,
    /// The node the pod is bound to.
    pub node: &'a str,
    /// The family wanted.
    pub family: Family,
    /// Candidate pool names in order, as chosen by [`crate::choice`].
    pub pools: &'a [String],
}

/// A pool as one [`Allocator`] knows it: a small copyable key, resolved to the pool's name with
/// [`Allocator::pool_name`].
///
/// Results carry this rather than a shared string because cloning and dropping a reference
/// count are locked instructions, which make each allocation wait for the memory writes of the
/// one before: that alone cost a third of the allocation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolRef(PoolId);

/// An address given to (or already held by) a handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    /// The address.
    pub address: IpAddr,
    /// The pool it came from (name: [`Allocator::pool_name`]).
    pub pool: PoolRef,
    /// The block that records it.
    pub block: IpNet,
    /// Its ordinal in the block.
    pub ordinal: u32,
    /// The allocation's sequence (needed to release it).
    pub sequence: u64,
    /// True when the block was created for this allocation and must be created in the API.
    pub created_block: bool,
    /// False when the handle already held this address (idempotent repeat).
    pub new: bool,
}

/// An address that was released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    /// The address.
    pub address: IpAddr,
    /// The pool of its block (name: [`Allocator::pool_name`]).
    pub pool: PoolRef,
    /// The block.
    pub block: IpNet,
    /// Its ordinal in the block.
    pub ordinal: u32,
    /// Who held it.
    pub allocation: Allocation,
}

/// How a block changed since the last [`Allocator::take_dirty`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// The allocator created the block: create it in the API.
    Create,
    /// The block existed and changed: update it in the API.
    Update,
}

/// A block to write back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DirtyBlock {
    /// The block's range (look it up with [`Allocator::block`]).
    pub cidr: IpNet,
    /// Create or update.
    pub change: Change,
}

/// A pool's address counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Addresses in the pool's range (saturates at `u128::MAX`).
    pub capacity: u128,
    /// Addresses allocated in blocks of the pool.
    pub allocated: u128,
    /// Blocks of the pool.
    pub blocks: usize,
    /// Addresses of the pool no pod is given: in an IPReservation, or edge addresses the pool
    /// keeps back (`reserveEdgeAddresses`).
    pub reserved: u128,
}

impl Usage {
    /// `capacity - allocated`.
    pub fn free(&self) -> u128 {
        self.capacity.saturating_sub(self.allocated)
    }
}

/// The in-memory allocator. See the module docs.
#[derive(Debug, Default)]
pub struct Allocator {
    strict_affinity: bool,
    pools: Vec<PoolState>,
    pool_ids: FastMap<Arc<str>, PoolId>,
    /// The pool looked up last (see `candidate`).
    last_pool: Option<PoolId>,
    nodes: Vec<NodeState>,
    node_ids: FastMap<Arc<str>, NodeId>,
    blocks: Vec<Option<index::Entry>>,
    free_ids: Vec<BlockId>,
    by_cidr: FastMap<IpNet, BlockId>,
    /// (family, first address) -> (last address, block): finds overlaps and the block of an
    /// address in O(log n).
    ranges: BTreeMap<(Family, u128), (u128, BlockId)>,
    /// Handle hash -> the slots of the handle(s) with that hash.
    handles: HashKeyed<Holdings>,
    dirty: Vec<BlockId>,
    /// How many times a block changed (see [`Allocator::changes`]).
    changes: u64,
    /// Addresses live pods use that no record gives them (see [`Allocator::set_in_use`]):
    /// address -> the user's handle hash. Empty in a cluster where every pod got its address
    /// from us, so allocation looks at it only when it is not.
    in_use: FastMap<IpAddr, u64>,
    /// Handle hash -> its addresses in `in_use`.
    in_use_of: FastMap<u64, Vec<IpAddr>>,
    /// Ranges no pod is given an address of (see [`Allocator::set_reserved`]).
    reserved: Vec<IpNet>,
    /// How long a released address is not handed out again, in seconds (0: no cooldown).
    cooldown: u64,
    /// The time, in seconds since the Unix epoch (see [`Allocator::set_clock`]).
    now: u64,
    /// Blocks left out of the "has room" sets while their only free addresses were cooling
    /// down, with when the first of those cools off.
    cooling: Vec<(u64, BlockId)>,
    /// The most blocks of one pool a node may claim (see
    /// [`Allocator::set_max_blocks_per_node`]); 0 means no limit.
    max_blocks_per_node: u32,
}

impl Allocator {
    /// An empty allocator without strict affinity.
    pub fn new() -> Allocator {
        Allocator::default()
    }

    /// Makes room for `handles` more pods in the handle index, so that a controller that knows
    /// its pod count up front does not pay for the index growing step by step.
    pub fn reserve(&mut self, handles: usize) {
        self.handles.reserve(handles);
    }

    /// Sets the reserved ranges (from IPReservations): no address in them is allocated, and a
    /// pod naming one is refused ([`Allocator::is_reserved`]). Pods holding one keep it.
    pub fn set_reserved(&mut self, mut ranges: Vec<IpNet>) {
        ranges.sort_unstable();
        ranges.dedup();
        if ranges == self.reserved {
            return;
        }
        self.reserved = ranges;
        // Blocks whose free addresses were all reserved have room again, or the other way.
        self.reindex_room();
    }

    /// Whether `address` lies in a reserved range, or is an edge address its pool keeps back
    /// (`reserveEdgeAddresses`).
    pub fn is_reserved(&self, address: IpAddr) -> bool {
        self.reserved.iter().any(|r| r.contains(&address))
            || self
                .pools
                .iter()
                .filter_map(|p| p.pool.as_ref())
                .any(|p| p.cidr().contains(&address) && p.is_reserved_edge(address))
    }

    /// Sets the reuse cooldown: a released address is not handed out again for `seconds`
    /// (0, the default, turns it off). Release times are kept in the blocks, so the cooldown
    /// holds across restarts.
    pub fn set_cooldown(&mut self, seconds: u64) {
        self.cooldown = seconds;
    }

    /// Sets the time, in seconds since the Unix epoch, that releases are stamped with and
    /// cooldowns are measured against. Blocks whose addresses cooled off get their room back.
    pub fn set_clock(&mut self, now: u64) {
        self.now = now;
        let due: Vec<BlockId> = {
            let mut due = Vec::new();
            self.cooling.retain(|&(at, id)| {
                let over = at <= now;
                if over {
                    due.push(id);
                }
                !over
            });
            due
        };
        for id in due {
            self.note_room(id);
        }
    }

    /// Why the block holding `address` gives out nothing new, if it is quarantined.
    pub fn quarantine_of(&self, address: IpAddr) -> Option<&str> {
        self.entry(self.block_of_addr(address)?)?.block.quarantine()
    }

    /// Whether the free address `address` is cooling down after a release (see
    /// [`Allocator::set_cooldown`]), and until when (seconds since the epoch).
    pub fn cooling_until(&self, address: IpAddr) -> Option<u64> {
        if self.cooldown == 0 {
            return None;
        }
        let block = &self.entry(self.block_of_addr(address)?)?.block;
        let until = block
            .released_at(block.ordinal_of(address)?)?
            .saturating_add(self.cooldown);
        (until > self.now).then_some(until)
    }

    /// Notes every block's room again, so that the "has room" lists are recomputed.
    fn reindex_room(&mut self) {
        let ids: Vec<BlockId> = (0..self.blocks.len())
            .filter_map(|i| BlockId::try_from(i).ok())
            .filter(|&id| self.entry(id).is_some())
            .collect();
        for id in ids {
            self.note_room(id);
        }
    }

    /// Sets the most blocks of one pool a node may claim (0, the default: no limit). A node at
    /// its limit borrows from other nodes' blocks (unless strict affinity is on), so that a
    /// small pool cut into small blocks is not all claimed by a few nodes.
    pub fn set_max_blocks_per_node(&mut self, max: u32) {
        self.max_blocks_per_node = max;
    }

    /// Whether `node` may claim another block of `pool` under the per-node limit.
    /// Sets `limited` when it answers no.
    fn may_claim(&self, pool: PoolId, node: NodeId, limited: &mut bool) -> bool {
        if self.max_blocks_per_node == 0 {
            return true;
        }
        let claimed = self
            .blocks
            .iter()
            .flatten()
            .filter(|e| e.pool == pool && e.node == Some(node))
            .count();
        let may = claimed < self.max_blocks_per_node as usize;
        *limited |= !may;
        may
    }

    /// Sets strict affinity: when on, a node never borrows a slot from another node's block.
    pub fn set_strict_affinity(&mut self, strict: bool) {
        self.strict_affinity = strict;
    }

    /// Whether strict affinity is on.
    pub fn strict_affinity(&self) -> bool {
        self.strict_affinity
    }

    /// Adds or replaces a pool. `allocatable` is the pool's verdict from
    /// [`crate::validate::validate_pools`]; a pool that is not allocatable keeps its blocks and
    /// counts but gives no new addresses.
    pub fn set_pool(&mut self, pool: Pool, allocatable: bool) {
        let id = self.intern_pool(pool.name());
        let state = &mut self.pools[id as usize];
        let same_shape = state
            .pool
            .as_ref()
            .is_some_and(|p| p.cidr() == pool.cidr() && p.block_prefix() == pool.block_prefix());
        let same_edges = state
            .pool
            .as_ref()
            .is_some_and(|p| p.reserve_edges() == pool.reserve_edges());
        state.pool = Some(pool);
        state.allocatable = allocatable;
        if !same_shape {
            self.reindex_pool(id);
        } else if !same_edges {
            // Blocks set aside because only their edge addresses were free may have room now.
            self.reindex_room();
        }
    }

    /// Forgets a pool. Its blocks stay (they still record addresses) but are never allocated
    /// from until the pool comes back.
    pub fn remove_pool(&mut self, name: &str) {
        if let Some(id) = self.pool_ids.get(name).copied() {
            let state = &mut self.pools[id as usize];
            state.pool = None;
            state.allocatable = false;
            self.reindex_pool(id);
        }
    }

    /// The name of a pool referred to by a result.
    pub fn pool_name(&self, pool: PoolRef) -> &str {
        self.pools.get(pool.0 as usize).map_or("", |p| &p.name)
    }

    /// The key of the pool with that name, if the allocator has seen it (as a pool or as the
    /// pool of a block).
    pub fn pool_ref(&self, name: &str) -> Option<PoolRef> {
        self.pool_ids.get(name).copied().map(PoolRef)
    }

    /// The pool known by that name.
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools[*self.pool_ids.get(name)? as usize].pool.as_ref()
    }

    /// Adds a block as read from the API, or replaces the known block with the same range
    /// (discarding any unwritten change to it). Refuses a block that overlaps another block.
    /// A block that does not fit its pool (outside it, or of another size) is kept so that its
    /// addresses stay taken and can be released, but is never allocated from.
    pub fn insert_block(&mut self, block: Block) -> Result<(), InsertError> {
        let cidr = block.cidr();
        if let Some(id) = self.by_cidr.get(&cidr).copied() {
            self.unstore(id);
        } else if let Some(other) = self.overlapping(&cidr).and_then(|id| self.entry(id)) {
            return Err(InsertError::BlockOverlap {
                block: cidr,
                pool: block.pool().to_owned(),
                existing: other.block.cidr(),
                existing_pool: other.block.pool().to_owned(),
            });
        }
        self.store(block);
        Ok(())
    }

    /// Removes a block (after it was deleted in the API). Its addresses are forgotten.
    pub fn remove_block(&mut self, cidr: &IpNet) -> Option<Block> {
        let id = self.by_cidr.get(cidr).copied()?;
        let fitted = self.entry(id).is_some_and(|e| e.index.is_some());
        let owner = self.entry(id).map(|e| e.pool);
        let block = self.unstore(id)?;
        // A block that did not fit its pool may have hidden block indices of any pool it
        // overlaps; let those pools look at their ranges again.
        for (pid, state) in self.pools.iter_mut().enumerate() {
            let overlaps = state
                .pool
                .as_ref()
                .is_some_and(|p| cidr::overlaps(&p.cidr(), cidr));
            let own = owner == PoolId::try_from(pid).ok();
            if overlaps && !(own && fitted) {
                state.cursor = 0;
                state.reusable.clear();
            }
        }
        Some(block)
    }

    /// The block with that range.
    pub fn block(&self, cidr: &IpNet) -> Option<&Block> {
        Some(&self.entry(*self.by_cidr.get(cidr)?)?.block)
    }

    /// Every known block, in no particular order.
    pub fn blocks(&self) -> impl Iterator<Item = &Block> + '_ {
        self.blocks.iter().flatten().map(|e| &e.block)
    }

    /// Number of known blocks.
    pub fn block_count(&self) -> usize {
        self.by_cidr.len()
    }

    fn mark(&mut self, id: BlockId, change: Change) {
        self.changes += 1;
        if let Some(e) = self.entry_mut(id) {
            match e.change {
                None => {
                    e.change = Some(change);
                    self.dirty.push(id);
                }
                // A block created and then changed again is still only to be created.
                Some(Change::Create) | Some(Change::Update) => {}
            }
        }
    }

    /// How many times blocks changed since the allocator was made: equal counts at two
    /// moments mean no block changed in between, written or not.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// The blocks changed since the last call, each once, in the order they first changed.
    pub fn take_dirty(&mut self) -> Vec<DirtyBlock> {
        self.take_dirty_if(|_| true)
    }

    /// As [`Allocator::take_dirty`], but only the blocks `take` accepts; the others stay changed
    /// for a later call, in their order.
    pub fn take_dirty_if(&mut self, mut take: impl FnMut(&DirtyBlock) -> bool) -> Vec<DirtyBlock> {
        let ids = std::mem::take(&mut self.dirty);
        let mut taken = Vec::new();
        for id in ids {
            let Some(e) = self.entry_mut(id) else {
                continue;
            };
            let Some(change) = e.change else {
                continue;
            };
            let dirty = DirtyBlock {
                cidr: e.block.cidr(),
                change,
            };
            if take(&dirty) {
                e.change = None;
                taken.push(dirty);
            } else {
                self.dirty.push(id);
            }
        }
        taken
    }

    fn assigned(&self, slot: SlotRef, created_block: bool, new: bool) -> Option<Assigned> {
        let e = self.entry(slot.block)?;
        Some(Assigned {
            address: e.block.address(slot.ordinal)?,
            pool: PoolRef(e.pool),
            block: e.block.cidr(),
            ordinal: slot.ordinal,
            sequence: e.block.get(slot.ordinal)?.sequence(),
            created_block,
            new,
        })
    }

    /// What `handle` holds in `family`, if anything (`new` and `created_block` are false).
    pub fn find(&self, handle: &str, family: Family) -> Option<Assigned> {
        let slot = self.handle_slot(handle, hash_str(handle), family)?;
        self.assigned(slot, false, false)
    }

    /// Every address `handle` holds (normally at most one per family).
    pub fn holdings(&self, handle: &str) -> Vec<Assigned> {
        self.handle_slots(handle)
            .into_iter()
            .filter_map(|s| self.assigned(s, false, false))
            .collect()
    }

    /// Checks a candidate pool; returns its id.
    fn candidate(&mut self, req: &Request<'_>, name: &str) -> Result<PoolId, AllocError> {
        let who = || (req.namespace.to_owned(), req.pod.to_owned());
        let unknown = || {
            let (namespace, pod) = who();
            AllocError::UnknownPool {
                namespace,
                pod,
                pool: name.to_owned(),
            }
        };
        // Most requests name the same pool as the one before; pool ids are never reused, so
        // the remembered id cannot go stale.
        let id = match self.last_pool {
            Some(id) if &*self.pools[id as usize].name == name => id,
            _ => {
                let id = *self.pool_ids.get(name).ok_or_else(unknown)?;
                self.last_pool = Some(id);
                id
            }
        };
        let state = &self.pools[id as usize];
        let pool = state.pool.as_ref().ok_or_else(unknown)?;
        if pool.family() != req.family {
            let (namespace, pod) = who();
            return Err(AllocError::WrongFamily {
                namespace,
                pod,
                pool: name.to_owned(),
                pool_family: pool.family(),
                family: req.family,
            });
        }
        if !state.allocatable {
            let (namespace, pod) = who();
            return Err(AllocError::PoolNotAllocatable {
                namespace,
                pod,
                pool: name.to_owned(),
            });
        }
        Ok(id)
    }

    /// Gives `req.handle` an address of `req.family` from the first candidate pool with room
    /// (see the module docs), or returns the address it already holds.
    pub fn allocate(&mut self, req: &Request<'_>) -> Result<Assigned, AllocError> {
        let missing = |field| AllocError::MissingField {
            namespace: req.namespace.to_owned(),
            pod: req.pod.to_owned(),
            field,
        };
        if req.handle.is_empty() {
            return Err(missing("handle"));
        }
        let hash = hash_str(req.handle);
        if let Some(slot) = self.handle_slot(req.handle, hash, req.family)
            && let Some(held) = self.assigned(slot, false, false)
        {
            return Ok(held);
        }
        if req.node.is_empty() {
            return Err(missing("node"));
        }
        if req.pools.is_empty() {
            return Err(AllocError::NoCandidatePools {
                namespace: req.namespace.to_owned(),
                pod: req.pod.to_owned(),
                family: req.family,
            });
        }
        // Every named pool must be usable, even if an earlier one has room: a typo in the
        // second pool should show now, not on the day the first one fills up.
        let mut few = [0 as PoolId; 4];
        let mut many = Vec::new();
        for (i, name) in req.pools.iter().enumerate() {
            let id = self.candidate(req, name)?;
            match few.get_mut(i) {
                Some(slot) => *slot = id,
                None => many.push(id),
            }
        }
        let count = req.pools.len().min(few.len());
        let node = self.intern_node(req.node);
        let mut limited = false;
        for pool in few[..count].iter().chain(&many).copied() {
            loop {
                // The per-node block limit is counted only when a block would be claimed.
                let (id, created) = if let Some(id) = self.affine_with_room(pool, node) {
                    (id, false)
                } else if let Some(id) = self
                    .may_claim(pool, node, &mut limited)
                    .then(|| self.claim_block(pool, node))
                    .flatten()
                {
                    (id, true)
                } else if self.strict_affinity {
                    break;
                } else if let Some(id) = self.any_with_room(pool) {
                    (id, false)
                } else {
                    break;
                };
                if let Some(assigned) = self.take_slot(id, req, hash, created) {
                    return Ok(assigned);
                }
                // Only addresses live pods use are free in it: look elsewhere until one of
                // them is released (which puts it back).
                self.drop_room(id);
            }
        }
        Err(AllocError::Exhausted {
            namespace: req.namespace.to_owned(),
            pod: req.pod.to_owned(),
            family: req.family,
            node: req.node.to_owned(),
            pools: req.pools.to_vec(),
            strict: self.strict_affinity,
            block_limit: limited.then_some(self.max_blocks_per_node),
        })
    }

    /// Allocates a slot of block `id` to the request's handle (whose hash is `hash`) and updates
    /// the indexes.
    fn take_slot(
        &mut self,
        id: BlockId,
        req: &Request<'_>,
        hash: u64,
        created: bool,
    ) -> Option<Assigned> {
        let cutoff = self.now.saturating_sub(self.cooldown);
        let entry = self.blocks.get_mut(id as usize)?.as_mut()?;
        entry.block.forget_released_before(cutoff);
        let pool = &self.pools[entry.pool as usize];
        let edges = pool.pool.as_ref().filter(|p| p.reserve_edges().is_some());
        let cooling = self.cooldown > 0 && entry.block.released().next().is_some();
        let slot =
            if self.in_use.is_empty() && self.reserved.is_empty() && edges.is_none() && !cooling {
                entry
                    .block
                    .allocate_unchecked(req.handle, req.namespace, req.pod)
            } else {
                let (in_use, reserved) = (&self.in_use, &self.reserved);
                let (cooldown, now) = (self.cooldown, self.now);
                let released: Vec<(u32, u64)> = entry.block.released().collect();
                entry
                    .block
                    .allocate_avoiding(req.handle, req.namespace, req.pod, |ordinal, a| {
                        in_use.get(&a).is_some_and(|user| *user != hash)
                            || reserved.iter().any(|r| r.contains(&a))
                            || edges.is_some_and(|p| p.is_reserved_edge(a))
                            || (cooldown > 0
                                && released.iter().any(|&(o, at)| {
                                    o == ordinal && at.saturating_add(cooldown) > now
                                }))
                    })
            };
        let Ok(slot) = slot else {
            // Only addresses that are kept back are free in it. Those cooling down come back:
            // look at the block again when the first of them does.
            if let Some(first) = entry
                .block
                .released()
                .map(|(_, at)| at.saturating_add(self.cooldown))
                .filter(|&at| at > self.now)
                .min()
            {
                self.cooling.push((first, id));
            }
            return None;
        };
        self.pools[entry.pool as usize].allocated += 1;
        self.record_slot(id, hash, slot, created)
    }

    /// Books a slot just allocated in block `id` for the handle hashed `hash`: the handle's
    /// index and the block's change. The pool's count is the caller's.
    fn record_slot(
        &mut self,
        id: BlockId,
        hash: u64,
        slot: crate::block::Slot,
        created: bool,
    ) -> Option<Assigned> {
        let entry = self.blocks.get(id as usize)?.as_ref()?;
        let family = entry.block.family();
        let assigned = Assigned {
            address: entry.block.address(slot.ordinal)?,
            pool: PoolRef(entry.pool),
            block: entry.block.cidr(),
            ordinal: slot.ordinal,
            sequence: slot.sequence,
            created_block: created,
            new: true,
        };
        let slot_ref = SlotRef {
            block: id,
            ordinal: slot.ordinal,
        };
        // A new handle's bucket is written in one go, without reading the (cold) bucket back.
        match self.handles.entry(hash) {
            Entry::Vacant(v) => {
                v.insert(Holdings::with(family, slot_ref));
            }
            Entry::Occupied(mut o) => o.get_mut().add(family, slot_ref),
        }
        self.mark(id, Change::Update);
        Some(assigned)
    }

    /// Frees one slot of block `id` and updates the indexes.
    fn free_slot(&mut self, id: BlockId, ordinal: u32, allocation: Allocation) -> Option<Released> {
        let entry = self.entry(id)?;
        let family = entry.block.family();
        let released = Released {
            address: entry.block.address(ordinal)?,
            pool: PoolRef(entry.pool),
            block: entry.block.cidr(),
            ordinal,
            allocation,
        };
        let pool = entry.pool as usize;
        self.pools[pool].allocated = self.pools[pool].allocated.saturating_sub(1);
        let hash = hash_str(released.allocation.handle());
        self.forget_slot(hash, family, SlotRef { block: id, ordinal });
        self.note_room(id);
        self.mark(id, Change::Update);
        Some(released)
    }

    /// Gives the address of `family` that handle `from` holds to handle `to` (pod
    /// `namespace/pod`), keeping the address: a sticky record parked when its pod went, or
    /// taken over by the pod's successor (see [`crate::sticky`]). `None` when `from` holds
    /// nothing of the family, or `to` already holds an address of it.
    pub fn rehandle(
        &mut self,
        from: &str,
        family: Family,
        to: &str,
        namespace: &str,
        pod: &str,
    ) -> Option<Assigned> {
        let (from_hash, to_hash) = (hash_str(from), hash_str(to));
        if self.handle_slot(to, to_hash, family).is_some() {
            return None;
        }
        let slot = self.handle_slot(from, from_hash, family)?;
        let entry = self.entry_mut(slot.block)?;
        let got = entry
            .block
            .rehandle(slot.ordinal, from, to, namespace, pod)
            .ok()?;
        self.forget_slot(from_hash, family, slot);
        self.record_slot(slot.block, to_hash, got, false)
    }

    /// Notes when the address at `ordinal` of block `id` was released, for the cooldown.
    fn stamp_release(&mut self, id: BlockId, ordinal: u32) {
        if self.cooldown == 0 {
            return;
        }
        let (now, cutoff) = (self.now, self.now.saturating_sub(self.cooldown));
        if let Some(e) = self.entry_mut(id) {
            e.block.forget_released_before(cutoff);
            e.block.note_released(ordinal, now);
        }
    }

    /// Releases `address` if it is still held by `handle` with allocation `sequence`.
    pub fn release(
        &mut self,
        address: IpAddr,
        handle: &str,
        sequence: u64,
    ) -> Result<Released, ReleaseError> {
        let id = self
            .block_of_addr(address)
            .ok_or(ReleaseError::NoBlock { address })?;
        let entry = self
            .entry_mut(id)
            .ok_or(ReleaseError::NoBlock { address })?;
        let ordinal = entry
            .block
            .ordinal_of(address)
            .ok_or(ReleaseError::NoBlock { address })?;
        let allocation = entry.block.release(ordinal, handle, sequence)?;
        self.stamp_release(id, ordinal);
        self.free_slot(id, ordinal, allocation)
            .ok_or(ReleaseError::NoBlock { address })
    }

    /// Releases every address `handle` holds. Idempotent: nothing held, nothing released.
    pub fn release_handle(&mut self, handle: &str) -> Vec<Released> {
        let slots = self.handle_slots(handle);
        let mut out = Vec::with_capacity(slots.len());
        for s in slots {
            let taken = self
                .entry_mut(s.block)
                .and_then(|e| e.block.release_ordinal(s.ordinal));
            if taken.is_some() {
                self.stamp_release(s.block, s.ordinal);
            }
            if let Some(r) = taken.and_then(|a| self.free_slot(s.block, s.ordinal, a)) {
                out.push(r);
            }
        }
        out
    }

    /// Declares the addresses a live pod is seen using (its sandbox's, from the pod's status)
    /// that no record gives it, replacing what was declared for `handle` before; `&[]` when the
    /// pod is gone. No other pod is given them while declared. Addresses the handle holds are
    /// not kept, so in a cluster where every pod got its address from us nothing is.
    pub fn set_in_use(&mut self, handle: &str, addresses: &[IpAddr]) {
        let hash = hash_str(handle);
        if let Some(old) = self.in_use_of.remove(&hash) {
            for address in old {
                if self.in_use.get(&address) != Some(&hash) {
                    continue;
                }
                // Another live pod may be seen using it too (a conflict, reported elsewhere):
                // it stays kept for that one. The lists are short: only unrecorded addresses.
                let other = self
                    .in_use_of
                    .iter()
                    .find(|(_, list)| list.contains(&address))
                    .map(|(h, _)| *h);
                match other {
                    Some(other) => {
                        self.in_use.insert(address, other);
                    }
                    None => {
                        self.in_use.remove(&address);
                        if let Some(id) = self.block_of_addr(address) {
                            self.note_room(id);
                        }
                    }
                }
            }
        }
        let held = self.holdings(handle);
        let unrecorded: Vec<IpAddr> = addresses
            .iter()
            .copied()
            .filter(|a| !held.iter().any(|h| h.address == *a))
            .collect();
        if unrecorded.is_empty() {
            return;
        }
        for address in &unrecorded {
            self.in_use.entry(*address).or_insert(hash);
        }
        // Kept for the first pod seen using it; `in_use_of` remembers every claim.
        self.in_use_of.insert(hash, unrecorded);
    }

    /// Whether a live pod other than `handle` is declared using `address` (see
    /// [`Allocator::set_in_use`]).
    pub fn in_use_by_other(&self, address: IpAddr, handle: &str) -> bool {
        self.in_use
            .get(&address)
            .is_some_and(|user| *user != hash_str(handle))
    }

    /// Number of addresses declared in use that no record gives their pod.
    pub fn in_use_count(&self) -> usize {
        self.in_use.len()
    }

    /// Records `address`, which the pod of `req` is found using, as the pod's own in `pool`:
    /// in the block that covers it, or in a block created for it (affine to the pod's node and
    /// quarantined with `quarantine`, if given). Refuses an address another handle holds, and
    /// one outside the pool. `req.pools` is not read.
    pub fn adopt(
        &mut self,
        req: &Request<'_>,
        pool: &str,
        address: IpAddr,
        quarantine: Option<&str>,
    ) -> Result<Assigned, AllocError> {
        let outside = || AllocError::AddressOutsidePool {
            namespace: req.namespace.to_owned(),
            pod: req.pod.to_owned(),
            address,
            pool: pool.to_owned(),
        };
        let hash = hash_str(req.handle);
        if let Some(slot) = self.handle_slot(req.handle, hash, Family::of_addr(&address))
            && let Some(held) = self.assigned(slot, false, false)
        {
            return if held.address == address {
                Ok(held)
            } else {
                Err(outside())
            };
        }
        let (id, created) = match self.block_of_addr(address) {
            Some(id) => (id, false),
            None => {
                let id = self.pool_ids.get(pool).copied().ok_or_else(outside)?;
                let state = &self.pools[id as usize];
                let p = state.pool.as_ref().ok_or_else(outside)?;
                if !p.cidr().contains(&address) {
                    return Err(outside());
                }
                let cidr = IpNet::new(address, p.block_prefix())
                    .map_err(|_| outside())?
                    .trunc();
                let name = state.name.clone();
                if self.overlapping(&cidr).is_some() {
                    // Another block (of another size) covers part of the range.
                    return Err(outside());
                }
                let node = self.intern_node(req.node);
                let node_name = self.nodes.get(node as usize).map(|n| n.name.clone());
                let mut block = Block::empty(cidr, name, node_name).map_err(|_| outside())?;
                block.set_quarantine(quarantine);
                let id = self.store(block);
                self.mark(id, Change::Create);
                (id, true)
            }
        };
        let entry = self.blocks.get_mut(id as usize).and_then(Option::as_mut);
        let Some(entry) = entry.filter(|e| e.block.pool() == pool) else {
            return Err(outside());
        };
        let slot = entry
            .block
            .allocate_at(address, req.handle, req.namespace, req.pod)
            .map_err(|e| match e {
                BlockError::HandleMismatch { found, .. } => AllocError::AddressTaken {
                    namespace: req.namespace.to_owned(),
                    pod: req.pod.to_owned(),
                    address,
                    holder: holder_name(&entry.block, address, &found),
                },
                _ => outside(),
            })?;
        self.pools[entry.pool as usize].allocated += 1;
        self.record_slot(id, hash, slot, created)
            .ok_or_else(outside)
    }

    /// Quarantines the block with that range (see [`Block::quarantine`]) or lifts it; true when
    /// the block is known. The change is written like any other.
    pub fn set_quarantine(&mut self, cidr: &IpNet, reason: Option<&str>) -> bool {
        let Some(id) = self.by_cidr.get(cidr).copied() else {
            return false;
        };
        self.detach(id);
        if let Some(e) = self.entry_mut(id) {
            e.block.set_quarantine(reason);
        }
        self.attach(id);
        self.mark(id, Change::Update);
        true
    }

    /// Marks a known block changed, so that the next [`Allocator::take_dirty`] writes it as it
    /// is (to add what its stored version lacks).
    pub fn touch(&mut self, cidr: &IpNet) {
        if let Some(id) = self.by_cidr.get(cidr).copied() {
            self.mark(id, Change::Update);
        }
    }

    /// A known block was deleted behind the allocator's back while it still recorded
    /// addresses: keep it, quarantined with `reason`, to be created again by the next write.
    pub fn recreate(&mut self, cidr: &IpNet, reason: &str) {
        let Some(id) = self.by_cidr.get(cidr).copied() else {
            return;
        };
        self.detach(id);
        self.changes += 1;
        let Some(e) = self.entry_mut(id) else {
            return;
        };
        e.block.set_quarantine(Some(reason));
        let listed = e.change.is_some();
        e.change = Some(Change::Create);
        if !listed {
            self.dirty.push(id);
        }
        self.attach(id);
    }

    /// The pool's counts, if the pool is known.
    pub fn usage(&self, pool: &str) -> Option<Usage> {
        let state = &self.pools[*self.pool_ids.get(pool)? as usize];
        let p = state.pool.as_ref()?;
        Some(Usage {
            capacity: p.capacity(),
            allocated: state.allocated,
            blocks: state.blocks,
            reserved: self.reserved_in(p),
        })
    }

    /// How many addresses of `pool` no pod is given (see [`Usage::reserved`]).
    fn reserved_in(&self, pool: &Pool) -> u128 {
        let cidr = pool.cidr();
        let host = |a: IpAddr| IpNet::from(a);
        let mut ranges = self.reserved.clone();
        match pool.reserve_edges() {
            None => {}
            Some(crate::pool::EdgeAddresses::Pool) => {
                ranges.extend([host(cidr.network()), host(cidr.broadcast())]);
            }
            Some(crate::pool::EdgeAddresses::Blocks) => {
                let blocks = pool.block_count();
                if blocks > 65_536 {
                    // Too many to list: counted without the overlap with reservations.
                    return crate::cidr::covered(&cidr, &ranges)
                        .saturating_add(blocks.saturating_mul(2))
                        .min(pool.capacity());
                }
                for index in 0..blocks {
                    if let Some(b) = crate::cidr::nth_block(&cidr, pool.block_prefix(), index) {
                        ranges.extend([host(b.network()), host(b.broadcast())]);
                    }
                }
            }
        }
        crate::cidr::covered(&cidr, &ranges)
    }

    /// The blocks affine to `node`, sorted by range.
    pub fn node_blocks(&self, node: &str) -> Vec<IpNet> {
        let mut out: Vec<IpNet> = self
            .blocks()
            .filter(|b| b.affinity() == Some(node))
            .map(Block::cidr)
            .collect();
        out.sort();
        out
    }

    /// Drops the affinity of every block of a deleted node; returns the blocks changed (also
    /// marked dirty). Their addresses stay allocated; empty ones become returnable.
    pub fn release_affinity(&mut self, node: &str) -> Vec<IpNet> {
        let ids: Vec<BlockId> = self
            .blocks
            .iter()
            .enumerate()
            .filter(|(_, e)| e.as_ref().is_some_and(|e| e.block.affinity() == Some(node)))
            .filter_map(|(i, _)| BlockId::try_from(i).ok())
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            self.detach(id);
            if let Some(e) = self.entry_mut(id) {
                e.block.set_affinity_arc(None);
                e.node = None;
                out.push(e.block.cidr());
            }
            self.attach(id);
            self.mark(id, Change::Update);
        }
        out.sort();
        out
    }

    /// Every block without allocations, sorted by range.
    pub fn empty_blocks(&self) -> Vec<IpNet> {
        let mut out: Vec<IpNet> = self
            .blocks()
            .filter(|b| b.is_empty())
            .map(Block::cidr)
            .collect();
        out.sort();
        out
    }

    /// Empty blocks a node keeps beyond one spare per pool, which can go back to their pool so
    /// that a small pool is not stranded on nodes that once ran a pod: of each node's empty,
    /// usable blocks of a pool, all but the lowest. The caller waits until a block has been
    /// seen spare across a grace period before it deletes it. Sorted by range.
    pub fn spare_blocks(&self) -> Vec<IpNet> {
        let mut empty: Vec<(NodeId, PoolId, IpNet)> = self
            .blocks
            .iter()
            .flatten()
            .filter(|e| e.block.is_empty() && e.block.quarantine().is_none())
            .filter(|e| e.index.is_some())
            .filter_map(|e| Some((e.node?, e.pool, e.block.cidr())))
            .collect();
        empty.sort();
        let mut out: Vec<IpNet> = empty
            .windows(2)
            .filter(|w| (w[0].0, w[0].1) == (w[1].0, w[1].1))
            .map(|w| w[1].2)
            .collect();
        out.sort();
        out
    }

    /// Empty blocks that can be deleted and returned to their pool: those without node
    /// affinity, those of pools that no longer exist, and those that do not fit their pool.
    /// Sorted by range.
    pub fn returnable_blocks(&self) -> Vec<IpNet> {
        let mut out: Vec<IpNet> = self
            .blocks
            .iter()
            .flatten()
            .filter(|e| e.block.is_empty() && e.block.quarantine().is_none())
            .filter(|e| {
                e.node.is_none() || e.index.is_none() || self.pools[e.pool as usize].pool.is_none()
            })
            .map(|e| e.block.cidr())
            .collect();
        out.sort();
        out
    }
}

/// `namespace/pod` of the allocation holding `address`, else its handle.
fn holder_name(block: &Block, address: IpAddr, handle: &str) -> String {
    block
        .ordinal_of(address)
        .and_then(|o| block.get(o))
        .map_or_else(
            || handle.to_owned(),
            |a| format!("{}/{}", a.namespace(), a.pod()),
        )
}

#[cfg(test)]
mod tests;
