//! The allocator's internal indexes and how a block enters and leaves them.
//!
//! Every index is derived from the blocks: [`Allocator::attach`] adds one block to all of them and
//! [`Allocator::detach`] takes it out again, so replacing a block, re-reading a pool or dropping
//! a node's affinity is always "detach, change, attach" and the indexes cannot drift.
//!
//! "Has a free slot" sets are lazy: a block is pushed when it may have room and dropped when it
//! is found full at the top of the set. A flag per block and set keeps each block in each set at
//! most once; removal from a set is eager (a `retain`) because ids of removed blocks are reused.

use std::collections::BTreeSet;
use std::sync::Arc;

use ipnet::IpNet;

use super::{Allocator, Change};
use crate::block::Block;
use crate::cidr::{self, Family};
use crate::hash::hash_str;
use crate::pool::Pool;

/// Index of a block in the allocator's slab.
pub(super) type BlockId = u32;
/// Index of a pool (by name) in the allocator.
pub(super) type PoolId = u32;
/// Index of an interned node name.
pub(super) type NodeId = u32;

/// One slot of one block: where a handle's address lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SlotRef {
    pub(super) block: BlockId,
    pub(super) ordinal: u32,
}

/// "No slot": block ids stop well below `u32::MAX`, so an 8-byte sentinel replaces `Option`
/// and keeps [`Holdings`] small; the handle index is the allocator's largest table.
const NO_SLOT: SlotRef = SlotRef {
    block: BlockId::MAX,
    ordinal: u32::MAX,
};

/// The slots of the handles whose hash is the bucket's key: normally one handle with one slot
/// per family. Extra slots come from hash collisions (astronomically rare) or from blocks
/// written elsewhere that give a handle two addresses of one family (kept so that releasing the
/// handle frees them too). Readers check the handle stored in the slot.
#[derive(Debug)]
pub(super) struct Holdings {
    v4: SlotRef,
    v6: SlotRef,
    // One pointer instead of a `Vec`'s three in the allocator's largest table; extras only
    // exist when blocks written elsewhere give a handle two addresses of one family.
    #[allow(clippy::box_collection)]
    extra: Option<Box<Vec<(Family, SlotRef)>>>,
}

impl Default for Holdings {
    fn default() -> Self {
        Holdings {
            v4: NO_SLOT,
            v6: NO_SLOT,
            extra: None,
        }
    }
}

impl Holdings {
    /// The slots of a family, primary first.
    pub(super) fn of_family(&self, family: Family) -> impl Iterator<Item = SlotRef> + '_ {
        let primary = match family {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        };
        let extra = self
            .extra
            .iter()
            .flat_map(move |e| e.iter().filter(move |(f, _)| *f == family).map(|(_, s)| *s));
        (primary != NO_SLOT)
            .then_some(primary)
            .into_iter()
            .chain(extra)
    }

    fn slot_mut(&mut self, family: Family) -> &mut SlotRef {
        match family {
            Family::V4 => &mut self.v4,
            Family::V6 => &mut self.v6,
        }
    }

    /// A bucket holding just `slot`.
    pub(super) fn with(family: Family, slot: SlotRef) -> Holdings {
        let mut h = Holdings::default();
        *h.slot_mut(family) = slot;
        h
    }

    pub(super) fn add(&mut self, family: Family, slot: SlotRef) {
        let primary = self.slot_mut(family);
        if *primary == NO_SLOT {
            *primary = slot;
        } else {
            self.extra.get_or_insert_default().push((family, slot));
        }
    }

    /// Forgets one slot; an extra slot of the same family (if any) becomes the primary.
    pub(super) fn remove(&mut self, family: Family, slot: SlotRef) {
        if *self.slot_mut(family) == slot {
            let promoted = self.extra.as_mut().and_then(|extra| {
                let i = extra.iter().position(|(f, _)| *f == family)?;
                Some(extra.swap_remove(i).1)
            });
            *self.slot_mut(family) = promoted.unwrap_or(NO_SLOT);
        } else if let Some(extra) = self.extra.as_mut() {
            extra.retain(|(_, s)| *s != slot);
        }
        if self.extra.as_ref().is_some_and(|e| e.is_empty()) {
            self.extra = None;
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.v4 == NO_SLOT && self.v6 == NO_SLOT && self.extra.is_none()
    }

    pub(super) fn all(&self) -> impl Iterator<Item = SlotRef> + '_ {
        let extra = self.extra.iter().flat_map(|e| e.iter().map(|(_, s)| *s));
        [self.v4, self.v6]
            .into_iter()
            .filter(|s| *s != NO_SLOT)
            .chain(extra)
    }
}

/// A node: its name and, per pool, its usable affine blocks that may have a free slot (lazy:
/// see the module docs). A node uses few pools, so a list beats a map.
#[derive(Debug)]
pub(super) struct NodeState {
    pub(super) name: Arc<str>,
    rooms: Vec<(PoolId, Vec<BlockId>)>,
}

impl NodeState {
    fn room(&mut self, pool: PoolId) -> &mut Vec<BlockId> {
        let i = match self.rooms.iter().position(|(p, _)| *p == pool) {
            Some(i) => i,
            None => {
                self.rooms.push((pool, Vec::new()));
                self.rooms.len() - 1
            }
        };
        &mut self.rooms[i].1
    }

    fn room_if_any(&mut self, pool: PoolId) -> Option<&mut Vec<BlockId>> {
        self.rooms
            .iter_mut()
            .find(|(p, _)| *p == pool)
            .map(|(_, r)| r)
    }
}

/// Everything the allocator knows about one pool name.
#[derive(Debug)]
pub(super) struct PoolState {
    pub(super) name: Arc<str>,
    /// The validated pool, when it is known; blocks may name a pool that is not (yet) known.
    pub(super) pool: Option<Pool>,
    pub(super) allocatable: bool,
    /// Usable blocks (of any node or none) that may have a free slot.
    pub(super) with_room: Vec<BlockId>,
    /// Next block index never handed out.
    pub(super) cursor: u128,
    /// Block indices below `cursor` that are free again.
    pub(super) reusable: BTreeSet<u128>,
    /// Addresses allocated in all blocks naming this pool.
    pub(super) allocated: u128,
    /// Number of blocks naming this pool.
    pub(super) blocks: usize,
}

impl PoolState {
    pub(super) fn new(name: Arc<str>) -> PoolState {
        PoolState {
            name,
            pool: None,
            allocatable: false,
            with_room: Vec::new(),
            cursor: 0,
            reusable: BTreeSet::new(),
            allocated: 0,
            blocks: 0,
        }
    }

    /// Where a block sits in this pool's sequence of blocks, if it is one of them (inside the
    /// pool, of the pool's block size).
    pub(super) fn index_of(&self, cidr: &IpNet) -> Option<u128> {
        let pool = self.pool.as_ref()?;
        if cidr.prefix_len() != pool.block_prefix() {
            return None;
        }
        cidr::block_index(&pool.cidr(), cidr)
    }
}

/// One block and its place in the indexes.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) block: Block,
    pub(super) pool: PoolId,
    pub(super) node: Option<NodeId>,
    /// The block's index in its pool when it fits the pool (inside it, right size); a block that
    /// does not fit is kept for accounting and release but never allocated from.
    pub(super) index: Option<u128>,
    pub(super) in_pool_set: bool,
    pub(super) in_node_set: bool,
    pub(super) change: Option<Change>,
}

/// First and last address of a range as offsets, for the overlap index.
pub(super) fn span(net: &IpNet) -> (Family, u128, u128) {
    let start = cidr::addr_to_u128(net.network());
    let end = cidr::addr_to_u128(net.broadcast());
    (Family::of(net), start, end)
}

impl Allocator {
    /// The handle stored at a slot.
    fn slot_handle(&self, slot: SlotRef) -> Option<&str> {
        Some(self.entry(slot.block)?.block.get(slot.ordinal)?.handle())
    }

    /// The slot `handle` (with hash `hash`) holds in `family`.
    pub(super) fn handle_slot(&self, handle: &str, hash: u64, family: Family) -> Option<SlotRef> {
        self.handles
            .get(&hash)?
            .of_family(family)
            .find(|s| self.slot_handle(*s) == Some(handle))
    }

    /// Every slot `handle` holds.
    pub(super) fn handle_slots(&self, handle: &str) -> Vec<SlotRef> {
        let Some(bucket) = self.handles.get(&hash_str(handle)) else {
            return Vec::new();
        };
        bucket
            .all()
            .filter(|s| self.slot_handle(*s) == Some(handle))
            .collect()
    }

    /// Takes one slot out of the handle index.
    pub(super) fn forget_slot(&mut self, hash: u64, family: Family, slot: SlotRef) {
        if let Some(bucket) = self.handles.get_mut(&hash) {
            bucket.remove(family, slot);
            if bucket.is_empty() {
                self.handles.remove(&hash);
            }
        }
    }

    pub(super) fn intern_pool(&mut self, name: &str) -> PoolId {
        if let Some(id) = self.pool_ids.get(name) {
            return *id;
        }
        let id = PoolId::try_from(self.pools.len()).unwrap_or(PoolId::MAX);
        let name: Arc<str> = Arc::from(name);
        self.pools.push(PoolState::new(name.clone()));
        self.pool_ids.insert(name, id);
        id
    }

    pub(super) fn intern_node(&mut self, name: &str) -> NodeId {
        if let Some(id) = self.node_ids.get(name) {
            return *id;
        }
        let id = NodeId::try_from(self.nodes.len()).unwrap_or(NodeId::MAX);
        let name: Arc<str> = Arc::from(name);
        self.nodes.push(NodeState {
            name: name.clone(),
            rooms: Vec::new(),
        });
        self.node_ids.insert(name, id);
        id
    }

    pub(super) fn entry(&self, id: BlockId) -> Option<&Entry> {
        self.blocks.get(id as usize)?.as_ref()
    }

    pub(super) fn entry_mut(&mut self, id: BlockId) -> Option<&mut Entry> {
        self.blocks.get_mut(id as usize)?.as_mut()
    }

    /// The block whose range overlaps `net`, if any (blocks never overlap each other, so the one
    /// starting last at or before `net`'s end is the only candidate).
    pub(super) fn overlapping(&self, net: &IpNet) -> Option<BlockId> {
        let (family, start, end) = span(net);
        let (_, (last, id)) = self.ranges.range(..=(family, end)).next_back()?;
        let (f, s) = self.entry(*id).map(|e| {
            let (f, s, _) = span(&e.block.cidr());
            (f, s)
        })?;
        (f == family && *last >= start && s <= end).then_some(*id)
    }

    /// The block holding `addr`, if any.
    pub(super) fn block_of_addr(&self, addr: std::net::IpAddr) -> Option<BlockId> {
        let family = Family::of_addr(&addr);
        let at = cidr::addr_to_u128(addr);
        let ((f, _), (last, id)) = self.ranges.range(..=(family, at)).next_back()?;
        (*f == family && *last >= at).then_some(*id)
    }

    /// Stores a new block in a free slab slot and indexes it.
    pub(super) fn store(&mut self, block: Block) -> BlockId {
        let pool = self.intern_pool(block.pool());
        let node = block.affinity_arc().cloned().map(|n| self.intern_node(&n));
        let cidr = block.cidr();
        let entry = Entry {
            block,
            pool,
            node,
            index: None,
            in_pool_set: false,
            in_node_set: false,
            change: None,
        };
        let id = match self.free_ids.pop() {
            Some(id) => {
                self.blocks[id as usize] = Some(entry);
                id
            }
            None => {
                self.blocks.push(Some(entry));
                BlockId::try_from(self.blocks.len() - 1).unwrap_or(BlockId::MAX)
            }
        };
        self.by_cidr.insert(cidr, id);
        self.attach(id);
        id
    }

    /// Adds a stored block to every index: pool counts and sets, node sets, the overlap index
    /// and the handle index.
    pub(super) fn attach(&mut self, id: BlockId) {
        let Some(entry) = self.blocks.get_mut(id as usize).and_then(Option::as_mut) else {
            return;
        };
        let cidr = entry.block.cidr();
        let (family, start, end) = span(&cidr);
        self.ranges.insert((family, start), (end, id));

        let pool = &mut self.pools[entry.pool as usize];
        pool.blocks += 1;
        pool.allocated += u128::from(entry.block.allocated());
        entry.index = pool.index_of(&cidr);
        if let Some(index) = entry.index {
            pool.reusable.remove(&index);
            if !entry.block.is_full() && entry.block.quarantine().is_none() {
                pool.with_room.push(id);
                entry.in_pool_set = true;
                if let Some(node) = entry.node.and_then(|n| self.nodes.get_mut(n as usize)) {
                    node.room(entry.pool).push(id);
                    entry.in_node_set = true;
                }
            }
        }

        for (ordinal, a) in entry.block.allocations() {
            self.handles
                .entry(hash_str(a.handle()))
                .or_default()
                .add(family, SlotRef { block: id, ordinal });
        }
    }

    /// Takes a block out of every index (the block itself stays stored). Its pool index, if it
    /// had one, becomes reusable.
    pub(super) fn detach(&mut self, id: BlockId) {
        self.drop_room(id);
        let Some(entry) = self.blocks.get_mut(id as usize).and_then(Option::as_mut) else {
            return;
        };
        let cidr = entry.block.cidr();
        let (family, start, _) = span(&cidr);
        self.ranges.remove(&(family, start));

        let pool = &mut self.pools[entry.pool as usize];
        pool.blocks = pool.blocks.saturating_sub(1);
        pool.allocated = pool
            .allocated
            .saturating_sub(u128::from(entry.block.allocated()));
        if let Some(index) = entry.index.take()
            && index < pool.cursor
        {
            pool.reusable.insert(index);
        }

        for (ordinal, hash) in entry_allocations(&self.blocks, id) {
            self.forget_slot(hash, family, SlotRef { block: id, ordinal });
        }
    }

    /// Takes a block out of the allocator entirely.
    pub(super) fn unstore(&mut self, id: BlockId) -> Option<Block> {
        self.detach(id);
        let entry = self.blocks.get_mut(id as usize)?.take()?;
        self.by_cidr.remove(&entry.block.cidr());
        self.free_ids.push(id);
        Some(entry.block)
    }

    /// A usable block of `pool` affine to `node` with a free slot.
    pub(super) fn affine_with_room(&mut self, pool: PoolId, node: NodeId) -> Option<BlockId> {
        let blocks = &mut self.blocks;
        let room = self.nodes.get_mut(node as usize)?.room_if_any(pool)?;
        loop {
            let id = *room.last()?;
            match blocks.get_mut(id as usize).and_then(Option::as_mut) {
                Some(e) if !e.block.is_full() => return Some(id),
                Some(e) => e.in_node_set = false,
                None => {}
            }
            room.pop();
        }
    }

    /// Any usable block of `pool` with a free slot (for borrowing).
    pub(super) fn any_with_room(&mut self, pool: PoolId) -> Option<BlockId> {
        let blocks = &mut self.blocks;
        let set = &mut self.pools[pool as usize].with_room;
        loop {
            let id = *set.last()?;
            match blocks.get_mut(id as usize).and_then(Option::as_mut) {
                Some(e) if !e.block.is_full() => return Some(id),
                Some(e) => e.in_pool_set = false,
                None => {}
            }
            set.pop();
        }
    }

    /// Takes a block out of the "has room" sets (its free slots are all in use by live pods).
    pub(super) fn drop_room(&mut self, id: BlockId) {
        let Some(entry) = self.blocks.get_mut(id as usize).and_then(Option::as_mut) else {
            return;
        };
        if entry.in_pool_set {
            self.pools[entry.pool as usize]
                .with_room
                .retain(|b| *b != id);
            entry.in_pool_set = false;
        }
        if entry.in_node_set {
            if let Some(room) = entry
                .node
                .and_then(|n| self.nodes.get_mut(n as usize))
                .and_then(|n| n.room_if_any(entry.pool))
            {
                room.retain(|b| *b != id);
            }
            entry.in_node_set = false;
        }
    }

    /// Puts a block that just got a free slot back into the "has room" sets.
    pub(super) fn note_room(&mut self, id: BlockId) {
        let Some(entry) = self.blocks.get_mut(id as usize).and_then(Option::as_mut) else {
            return;
        };
        if entry.index.is_none() || entry.block.quarantine().is_some() {
            return;
        }
        let pool = &mut self.pools[entry.pool as usize];
        if !entry.in_pool_set {
            pool.with_room.push(id);
            entry.in_pool_set = true;
        }
        if let (Some(node), false) = (entry.node, entry.in_node_set)
            && let Some(node) = self.nodes.get_mut(node as usize)
        {
            node.room(entry.pool).push(id);
            entry.in_node_set = true;
        }
    }

    /// Creates the next unclaimed block of `pool` for `node`, skipping ranges another block
    /// already covers. `None` when the pool has no unclaimed block left.
    pub(super) fn claim_block(&mut self, pool_id: PoolId, node: NodeId) -> Option<BlockId> {
        loop {
            let state = &mut self.pools[pool_id as usize];
            let pool = state.pool.as_ref()?;
            let (pool_cidr, prefix, count) = (pool.cidr(), pool.block_prefix(), pool.block_count());
            let index = match state.reusable.pop_first() {
                Some(i) => i,
                None if state.cursor < count => {
                    state.cursor += 1;
                    state.cursor - 1
                }
                None => return None,
            };
            let name = state.name.clone();
            let cidr = cidr::nth_block(&pool_cidr, prefix, index)?;
            if self.overlapping(&cidr).is_some() {
                continue;
            }
            let node_name = self.nodes.get(node as usize).map(|n| n.name.clone());
            let block = Block::empty(cidr, name, node_name).ok()?;
            let id = self.store(block);
            self.mark(id, Change::Create);
            return Some(id);
        }
    }

    /// Re-reads every block of a pool after the pool itself changed.
    pub(super) fn reindex_pool(&mut self, pool: PoolId) {
        let ids: Vec<BlockId> = self
            .blocks
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((BlockId::try_from(i).ok()?, e.as_ref()?)))
            .filter(|(_, e)| e.pool == pool)
            .map(|(i, _)| i)
            .collect();
        for id in &ids {
            self.detach(*id);
        }
        let state = &mut self.pools[pool as usize];
        state.cursor = 0;
        state.reusable.clear();
        state.with_room.clear();
        for node in &mut self.nodes {
            node.rooms.retain(|(p, _)| *p != pool);
        }
        for id in ids {
            self.attach(id);
        }
    }
}

/// The ordinals and handle hashes of a stored block (owned, so indexes can change meanwhile).
fn entry_allocations(blocks: &[Option<Entry>], id: BlockId) -> Vec<(u32, u64)> {
    blocks
        .get(id as usize)
        .and_then(Option::as_ref)
        .map(|e| {
            e.block
                .allocations()
                .map(|(o, a)| (o, hash_str(a.handle())))
                .collect()
        })
        .unwrap_or_default()
}
