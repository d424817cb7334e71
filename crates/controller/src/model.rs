//! The leader's in-memory model: the core's [`Planner`] (pools, their verdicts, every block)
//! and the version of each block last read from the API server.
//!
//! The planner decides; [`crate::blocks`] writes. What the model changed is turned into one write
//! per block by [`Model::take_writes`], computed against the version last read, so a write made
//! against a stale read fails its test instead of overwriting anything.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use api::{FamilyAssignment, IPAMBlock, IPAMBlockSpec};
use ipam::allocator::Change;
use ipam::block::Block;
use ipam::choice::NotAdmitted;
use ipam::cidr::Family;
use ipam::planner::{AssignError, Placed, Planner, PodContext};
use ipam::pool::PoolInput;
use ipnet::IpNet;
use kube::ResourceExt;

use crate::blocks::{BlockStore, WriteError};

/// A block as the API server last showed it: shared with the watch cache, not copied.
#[derive(Debug, Clone)]
struct Seen {
    resource_version: String,
    block: Arc<IPAMBlock>,
}

/// One write the model wants made.
#[derive(Debug, Clone)]
pub enum BlockWrite {
    /// A block the allocator claimed: create it.
    Create {
        /// Block name.
        name: String,
        /// Its content.
        spec: IPAMBlockSpec,
    },
    /// A known block changed.
    Update {
        /// Block name.
        name: String,
        /// As last read.
        have: Arc<IPAMBlock>,
        /// As wanted.
        want: IPAMBlockSpec,
    },
    /// An empty block goes back to its pool.
    Delete {
        /// Block name.
        name: String,
        /// As last read: deleted only if still at this version.
        have: Arc<IPAMBlock>,
    },
}

impl BlockWrite {
    /// The block's name.
    pub fn name(&self) -> &str {
        match self {
            BlockWrite::Create { name, .. }
            | BlockWrite::Update { name, .. }
            | BlockWrite::Delete { name, .. } => name,
        }
    }

    /// Makes the write. `Ok(Some(block))` is the block as written, `Ok(None)` a deletion.
    pub async fn perform(&self, store: &BlockStore) -> Result<Option<IPAMBlock>, WriteError> {
        match self {
            BlockWrite::Create { name, spec } => store.create(name, spec.clone()).await.map(Some),
            BlockWrite::Update { name, have, want } => {
                store.update(name, have, want).await.map(Some)
            }
            BlockWrite::Delete { name, have } => store.delete(name, have).await.map(|()| None),
        }
    }
}

/// Who holds addresses, for the leak sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The pod UID.
    pub handle: String,
    /// The pod's namespace when allocated.
    pub namespace: String,
    /// The pod's name when allocated.
    pub pod: String,
}

/// A pool's state for its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolState {
    /// Whether new addresses may come from it.
    pub allocatable: bool,
    /// Short CamelCase reason.
    pub reason: String,
    /// Human explanation.
    pub message: String,
    /// Addresses in the pool.
    pub capacity: u128,
    /// Addresses allocated.
    pub allocated: u64,
    /// Blocks of the pool.
    pub blocks: u64,
    /// Addresses no pod is given (reservations and kept-back edge addresses).
    pub reserved: u128,
}

/// A block the model cannot use as it is: reported as a Warning Event on its pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockTrouble {
    /// The block's name.
    pub block: String,
    /// Its pool, as the block names it (may be empty for a block that names none).
    pub pool: String,
    /// Short CamelCase reason.
    pub reason: &'static str,
    /// What happened and what the controller does about it.
    pub message: String,
}

/// See the module docs.
pub struct Model {
    planner: Planner,
    seen: HashMap<String, Seen>,
    deletes: HashSet<String>,
    troubles: Vec<BlockTrouble>,
}

impl Model {
    /// An empty model.
    pub fn new(strict_affinity: bool) -> Model {
        Model {
            planner: Planner::new(strict_affinity),
            seen: HashMap::new(),
            deletes: HashSet::new(),
            troubles: Vec::new(),
        }
    }

    /// Sets the reuse cooldown (seconds, 0 for none) and the per-node block limit (0 for none).
    pub fn set_limits(&mut self, cooldown: u64, max_blocks_per_node: u32) {
        let allocator = self.planner.allocator_mut();
        allocator.set_cooldown(cooldown);
        allocator.set_max_blocks_per_node(max_blocks_per_node);
    }

    /// Sets the time releases are stamped with (seconds since the Unix epoch).
    pub fn set_clock(&mut self, now: u64) {
        self.planner.allocator_mut().set_clock(now);
    }

    /// Whether no pod may be given `address` now (see `Allocator::is_reserved`).
    pub fn is_reserved(&self, address: std::net::IpAddr) -> bool {
        self.planner.allocator().is_reserved(address)
    }

    /// Sets the reserved ranges (from every IPReservation).
    pub fn set_reserved(&mut self, ranges: Vec<IpNet>) {
        self.planner.allocator_mut().set_reserved(ranges);
    }

    /// Releases or parks what pod `handle` held (see `Planner::release_pod`): how many
    /// addresses were released, and how many parked.
    pub fn release_pod(
        &mut self,
        handle: &str,
        pod: &str,
        statefulset: Option<&str>,
    ) -> (u64, u64) {
        let (released, parked) = self.planner.release_pod(handle, pod, statefulset);
        (released.len() as u64, parked.len() as u64)
    }

    /// Every parked record (see `ipam::sticky`): its handle, namespace and pod name, once per
    /// handle (a dual-stack record is parked in two blocks).
    pub fn parked(&self) -> Vec<Owner> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for block in self.planner.allocator().blocks() {
            for (_, a) in block.allocations() {
                if ipam::sticky::Parked::parse(a.handle()).is_some() && seen.insert(a.handle()) {
                    out.push(Owner {
                        handle: a.handle().to_owned(),
                        namespace: a.namespace().to_owned(),
                        pod: a.pod().to_owned(),
                    });
                }
            }
        }
        out
    }

    /// Empty blocks beyond one spare per node and pool (see `Allocator::spare_blocks`).
    pub fn spare_blocks(&self) -> Vec<IpNet> {
        self.planner.allocator().spare_blocks()
    }

    /// Schedules the deletion of `blocks` that are still spare.
    pub fn drop_spare_blocks(&mut self, blocks: &[IpNet]) {
        let spare: HashSet<IpNet> = self.spare_blocks().into_iter().collect();
        for cidr in blocks.iter().filter(|b| spare.contains(b)) {
            self.schedule_delete(cidr);
        }
    }

    /// Re-validates the pools; pool choice and allocation use the new verdicts.
    pub fn set_pools(&mut self, inputs: &[PoolInput], pod_cidrs: Option<&[IpNet]>) {
        self.planner.set_pools(inputs, pod_cidrs);
    }

    /// The pool's state for its status, if the pool is known.
    pub fn pool_state(&self, name: &str) -> Option<PoolState> {
        let verdict = self.planner.verdict(name)?;
        let usage = self.planner.allocator().usage(name).unwrap_or_default();
        Some(PoolState {
            allocatable: verdict.allocatable(),
            reason: verdict.reason.as_str().to_owned(),
            message: verdict.message.clone(),
            capacity: usage.capacity,
            allocated: u64::try_from(usage.allocated).unwrap_or(u64::MAX),
            blocks: u64::try_from(usage.blocks).unwrap_or(u64::MAX),
            reserved: usage.reserved,
        })
    }

    /// The pod's address of each family, allocated in memory where it holds none yet; the
    /// change is written by the next [`Model::take_writes`].
    pub fn assign(
        &mut self,
        pod: &PodContext<'_>,
        handle: &str,
        families: &[Family],
    ) -> Result<Vec<(FamilyAssignment, bool)>, AssignError> {
        let placed = self.planner.assign(pod, handle, families)?;
        Ok(placed
            .into_iter()
            .map(|p| (assignment(&p), p.new))
            .collect())
    }

    /// The addresses `handle` holds that their pool no longer admits; `None` when the pod's
    /// node or namespace is unknown.
    pub fn drift(&self, pod: &PodContext<'_>, handle: &str) -> Option<Vec<NotAdmitted>> {
        self.planner.drift(pod, handle)
    }

    /// Records found claiming pods that were not used, since the last call.
    pub fn take_distrusted(&mut self) -> Vec<ipam::planner::Distrusted> {
        self.planner.take_distrusted()
    }

    /// What `handle` holds, if it holds an address of every family.
    pub fn held(&self, handle: &str, families: &[Family]) -> Option<Vec<FamilyAssignment>> {
        let placed = self.planner.held_all(handle, families)?;
        Some(placed.iter().map(assignment).collect())
    }

    /// Whatever `handle` holds, of any family.
    pub fn held_any(&self, handle: &str) -> Vec<FamilyAssignment> {
        Family::ALL
            .iter()
            .filter_map(|&f| self.planner.held(handle, f))
            .map(|p| assignment(&p))
            .collect()
    }

    /// Declares the addresses the pod `handle` is seen using (see [`Allocator::set_in_use`]).
    ///
    /// [`Allocator::set_in_use`]: ipam::allocator::Allocator::set_in_use
    pub fn set_in_use(&mut self, handle: &str, addresses: &[std::net::IpAddr]) {
        self.planner.allocator_mut().set_in_use(handle, addresses);
    }

    /// Releases everything `handle` holds; returns how many addresses.
    pub fn release_handle(&mut self, handle: &str) -> u64 {
        self.planner.allocator_mut().release_handle(handle).len() as u64
    }

    /// Blocks of `node` lose their affinity.
    pub fn release_affinity(&mut self, node: &str) {
        self.planner.allocator_mut().release_affinity(node);
    }

    /// Nodes some block is affine to.
    pub fn affine_nodes(&self) -> Vec<String> {
        let nodes: HashSet<String> = self
            .planner
            .allocator()
            .blocks()
            .filter_map(|b| b.affinity().map(str::to_owned))
            .collect();
        nodes.into_iter().collect()
    }

    /// Who holds addresses, except the handles `live` says are live pods: usually none, so a
    /// sweep over 150,000 allocations copies nothing.
    pub fn owners_except(&self, live: impl Fn(&str) -> bool) -> Vec<Owner> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for block in self.planner.allocator().blocks() {
            for (_, a) in block.allocations() {
                // Parked records are no pod's: `Model::parked` and their own rule.
                let parked = ipam::sticky::Parked::parse(a.handle()).is_some();
                if !live(a.handle()) && !parked && seen.insert(a.handle()) {
                    out.push(Owner {
                        handle: a.handle().to_owned(),
                        namespace: a.namespace().to_owned(),
                        pod: a.pod().to_owned(),
                    });
                }
            }
        }
        out
    }

    /// Whether any block of the pool still holds an address.
    pub fn pool_in_use(&self, pool: &str) -> bool {
        self.planner
            .allocator()
            .usage(pool)
            .is_some_and(|u| u.allocated > 0)
            || self
                .planner
                .allocator()
                .blocks()
                .any(|b| b.pool() == pool && !b.is_empty())
    }

    /// Schedules deletion of the (empty) blocks of a pool being deleted. True while any block of
    /// the pool remains.
    pub fn drop_blocks_of_pool(&mut self, pool: &str) -> bool {
        let blocks: Vec<IpNet> = self
            .planner
            .allocator()
            .blocks()
            .filter(|b| b.pool() == pool && b.is_empty())
            .map(|b| b.cidr())
            .collect();
        let remaining = self.planner.allocator().blocks().any(|b| b.pool() == pool);
        for cidr in blocks {
            self.schedule_delete(&cidr);
        }
        remaining
    }

    /// Schedules deletion of empty blocks that belong to no node (or to no pool).
    pub fn drop_empty_unaffine_blocks(&mut self) {
        for cidr in self.planner.allocator().returnable_blocks() {
            self.schedule_delete(&cidr);
        }
    }

    fn schedule_delete(&mut self, cidr: &IpNet) {
        let name = ipam::cidr::block_name(cidr);
        if self.seen.contains_key(&name) {
            self.planner.allocator_mut().remove_block(cidr);
            self.deletes.insert(name);
        }
    }

    /// Names of every block the model knows.
    pub fn block_names(&self) -> impl Iterator<Item = String> + '_ {
        self.seen.keys().cloned()
    }

    /// Whether the model knows the block.
    pub fn knows(&self, name: &str) -> bool {
        self.seen.contains_key(name)
    }

    /// Whether `block` is a newer version than the one the model last saw.
    pub fn is_newer(&self, block: &IPAMBlock) -> bool {
        let Some(seen) = self.seen.get(&block.name_any()) else {
            return true;
        };
        let theirs = block.resource_version().unwrap_or_default();
        match (theirs.parse::<u64>(), seen.resource_version.parse::<u64>()) {
            (Ok(theirs), Ok(ours)) => theirs > ours,
            _ => theirs != seen.resource_version,
        }
    }

    /// The watch cache shows the version the model already has (the answer to our own write):
    /// keep the cache's copy, so the block is held once, not twice.
    pub fn share(&mut self, block: &Arc<IPAMBlock>) {
        if let Some(seen) = self.seen.get_mut(&block.name_any())
            && !Arc::ptr_eq(&seen.block, block)
            && block.resource_version().as_deref() == Some(seen.resource_version.as_str())
        {
            seen.block = block.clone();
        }
    }

    /// Blocks found unusable since the last call.
    pub fn take_troubles(&mut self) -> Vec<BlockTrouble> {
        std::mem::take(&mut self.troubles)
    }

    fn trouble(&mut self, block: &IPAMBlock, reason: &'static str, message: String) {
        tracing::error!(block = %block.name_any(), reason, "{message}");
        self.troubles.push(BlockTrouble {
            block: block.name_any(),
            pool: block.spec.pool.clone(),
            reason,
            message,
        });
    }

    /// Takes `block` as the API server's current version, replacing whatever the model had.
    ///
    /// A block that cannot be read is quarantined: its range stays taken and gives out nothing,
    /// and the pods found using its addresses are recorded in it again (see
    /// [`Planner::assign`]), which rewrites it. A block being deleted gives out nothing either,
    /// and goes once its last address is released. A block holding addresses without the
    /// finalizer (written by an earlier version) gets it with the next write.
    pub fn accept(&mut self, block: &Arc<IPAMBlock>) {
        let name = block.name_any();
        let deleting = block.metadata.deletion_timestamp.is_some();
        let core = block
            .spec
            .to_record()
            .and_then(|record| Block::from_record(&record).map_err(|e| e.to_string()));
        let core = match core {
            Ok(mut core) => {
                if deleting && core.quarantine().is_none() {
                    core.set_quarantine(Some(&format!(
                        "block {name} is being deleted; it goes once its last address is released"
                    )));
                }
                core
            }
            Err(message) => match placeholder(block) {
                Some(core) => {
                    let text = format!(
                        "block {name} of pool {} cannot be read ({message}): its range is quarantined, nothing new is allocated from it, and it is rebuilt from the pods found using its addresses",
                        block.spec.pool
                    );
                    self.trouble(block, "BlockUnreadable", text);
                    core
                }
                None => {
                    let text = format!(
                        "block {name} cannot be read ({message}) and names no range it could cover; it is ignored"
                    );
                    self.trouble(block, "BlockUnreadable", text);
                    return;
                }
            },
        };
        let empty = core.is_empty();
        let unfinalized =
            !empty && !deleting && !block.finalizers().iter().any(|f| f == api::keys::FINALIZER);
        let cidr = core.cidr();
        if let Err(e) = self.planner.allocator_mut().insert_block(core) {
            self.trouble(block, "BlockOverlap", format!("{e}; the block is ignored"));
            return;
        }
        if unfinalized {
            self.planner.allocator_mut().touch(&cidr);
        }
        self.deletes.remove(&name);
        self.seen.insert(
            name,
            Seen {
                resource_version: block.resource_version().unwrap_or_default(),
                block: block.clone(),
            },
        );
        if deleting && empty {
            self.schedule_delete(&cidr);
        }
    }

    /// Forgets a block the API server no longer has. One that still recorded addresses was
    /// lost (its finalizer removed by hand, or its data lost): it is created again from the
    /// model's records, quarantined.
    pub fn forget(&mut self, name: &str) {
        let seen = self.seen.remove(name);
        self.deletes.remove(name);
        let Ok(cidr) = ipam::cidr::parse_block_name(name) else {
            return;
        };
        let held = self
            .planner
            .allocator()
            .block(&cidr)
            .map_or(0, |b| b.allocated());
        if held == 0 {
            self.planner.allocator_mut().remove_block(&cidr);
            return;
        }
        let message = format!(
            "block {name} was deleted while it recorded {held} addresses of live pods; it was created again from the controller's records and quarantined: nothing new is allocated from it until an admin removes spec.quarantine"
        );
        self.planner.allocator_mut().recreate(&cidr, &message);
        if let Some(seen) = seen {
            self.trouble(&seen.block, "BlockLost", message);
        }
    }

    /// Every write needed to bring the API server to the model's state.
    pub fn take_writes(&mut self) -> Vec<BlockWrite> {
        self.take_writes_if(|_| true)
    }

    /// How many times blocks changed in the model so far: two equal counts mean nothing
    /// changed in between.
    pub fn changes(&self) -> u64 {
        self.planner.allocator().changes()
    }

    /// The writes of the changed blocks `take` accepts (by name), and every delete; the blocks
    /// it leaves stay changed for a later call.
    pub fn take_writes_if(&mut self, mut take: impl FnMut(&str) -> bool) -> Vec<BlockWrite> {
        let mut writes = Vec::new();
        let dirty = self
            .planner
            .allocator_mut()
            .take_dirty_if(|d| take(&ipam::cidr::block_name(&d.cidr)));
        for dirty in dirty {
            let Some(block) = self.planner.allocator().block(&dirty.cidr) else {
                continue;
            };
            let name = ipam::cidr::block_name(&dirty.cidr);
            let want = IPAMBlockSpec::from_record(&block.to_record());
            match (dirty.change, self.seen.get(&name)) {
                (_, Some(seen)) => writes.push(BlockWrite::Update {
                    name,
                    have: seen.block.clone(),
                    want,
                }),
                (Change::Create, None) => writes.push(BlockWrite::Create { name, spec: want }),
                (Change::Update, None) => {
                    tracing::error!(block = %name, "a changed block was never read; dropping the change");
                }
            }
        }
        for name in std::mem::take(&mut self.deletes) {
            if let Some(seen) = self.seen.get(&name) {
                writes.push(BlockWrite::Delete {
                    name,
                    have: seen.block.clone(),
                });
            }
        }
        writes
    }
}

/// The quarantined stand-in for a block that cannot be read: its range (from its name, else
/// its `cidr`), its pool and affinity, no allocation, its sequence kept so that the rewrite
/// moves it forward. `None` when the block names no usable range or pool.
fn placeholder(block: &IPAMBlock) -> Option<Block> {
    let cidr = ipam::cidr::parse_block_name(&block.name_any())
        .ok()
        .or_else(|| ipam::cidr::parse_strict(&block.spec.cidr).ok())?;
    let record = ipam::block::BlockRecord {
        cidr,
        pool: block.spec.pool.clone(),
        affinity: block.spec.affinity.clone(),
        sequence: u64::try_from(block.spec.sequence_number).unwrap_or(0),
        allocations: Vec::new(),
        quarantine: Some(format!(
            "block {} could not be read; rebuilt from the pods found using its addresses",
            block.name_any()
        )),
        released: Vec::new(),
    };
    Block::from_record(&record).ok()
}

fn assignment(placed: &Placed) -> FamilyAssignment {
    FamilyAssignment {
        address: placed.address,
        pool: placed.pool.clone(),
        block: ipam::cidr::block_name(&placed.block),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn block(resource_version: &str, sequence: i64) -> Arc<IPAMBlock> {
        let mut block = IPAMBlock::new(
            "10-244-0-0-26",
            IPAMBlockSpec {
                cidr: "10.244.0.0/26".into(),
                pool: "default".into(),
                sequence_number: sequence,
                ..Default::default()
            },
        );
        block.metadata.resource_version = Some(resource_version.into());
        Arc::new(block)
    }

    #[test]
    fn the_watch_copy_of_a_block_just_written_replaces_the_write_answer() {
        let mut model = Model::new(false);
        let answer = block("5", 1);
        model.accept(&answer);
        let echo = block("5", 1);
        assert!(!model.is_newer(&echo));
        model.share(&echo);
        assert!(Arc::ptr_eq(&model.seen["10-244-0-0-26"].block, &echo));
    }

    #[test]
    fn another_version_is_never_shared_in_place_of_the_seen_one() {
        let mut model = Model::new(false);
        let seen = block("5", 1);
        model.accept(&seen);
        model.share(&block("4", 0));
        model.share(&block("6", 2));
        assert!(Arc::ptr_eq(&model.seen["10-244-0-0-26"].block, &seen));
    }
}
