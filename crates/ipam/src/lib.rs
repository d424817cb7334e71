//! The pure allocation core of rangepool.
//!
//! Owns CIDR maths, IPAM blocks and their allocations, Calico selector expressions, the choice of
//! pool for a pod, and pool validation. It must not depend on kube, tokio or any I/O: every rule
//! here is testable as plain data in, plain data out. Bad input never panics: every fallible
//! function returns a `thiserror` enum whose `reason()` is a short, stable CamelCase label for
//! Events, conditions and metrics, and whose message names the pool (or pod) and the input.
//!
//! # Modules, in the order data flows through them
//!
//! - [`cidr`]: [`Family`] (parsed with `FromStr`, chosen by [`Family::select`]), strict parsing ([`cidr::parse_strict`]), containment and overlap,
//!   cutting a pool into blocks ([`cidr::block_count`], [`cidr::nth_block`],
//!   [`cidr::block_index`], [`cidr::block_containing`]), addresses by ordinal
//!   ([`cidr::nth_addr`], [`cidr::ordinal_of`]), block object names ([`cidr::block_name`],
//!   [`cidr::parse_block_name`]), [`cidr::overlapping_pairs`] and [`cidr::is_link_local`].
//! - [`selector`]: [`Selector`], the whole Calico selector syntax, with Calico's semantics for
//!   missing labels (`!=` and `not in` match them). `global()` is refused.
//! - [`pool`]: [`PoolInput`] (fields as written, with builder methods), [`Pool`] (validated
//!   through [`Pool::parse`] only) and [`SpecField`], the one list of `IPPool.spec` fields with
//!   their [`Effect`]. The Calico data-plane fields are validated as Calico does but
//!   otherwise inert, except that a pool without `Workload` in `allowedUses` never serves pods.
//! - [`validate`]: [`validate_pools`] gives each pool a [`PoolVerdict`] with the reason of its
//!   `Allocatable` condition (`OK`, `InvalidCIDR`, `InvalidBlockSize`, `InvalidSelector`,
//!   `InvalidField`, `LinkLocal`, `OutsidePodCIDR`, `PodCIDRUnknown`, `CIDROverlap`,
//!   `PoolDisabled`, `Terminating`). Older pool wins an overlap; input order never matters.
//! - [`choice`]: [`PoolCatalog::choose`] turns a pod's facts ([`PodFacts`], or the owned
//!   [`PodFixture`] in tests) into the ordered candidate pools of one family: pod annotation,
//!   else namespace annotation (per key), else matching `Automatic` pools. Named pools must
//!   match their selectors too (differs from Calico on purpose). Keys:
//!   [`IPV4_POOLS_ANNOTATION`], [`IPV6_POOLS_ANNOTATION`].
//! - [`block`]: [`Block`], one block's slots with O(1) allocate/release, sequence numbers that
//!   stop stale releases, and the serializable [`BlockRecord`] with a checked
//!   [`Block::from_record`].
//! - [`allocator`]: [`Allocator`], the controller's in-memory state over all pools and blocks:
//!   [`Allocator::allocate`] a [`Request`] (node's blocks, then a new block, then, without strict
//!   affinity, another node's block, pool after pool), release by address and sequence or by
//!   handle, usage per pool, node affinity release, returnable empty blocks, and
//!   [`Allocator::take_dirty`] to batch block writes. Results name their pool with a copyable
//!   [`PoolRef`]; [`Allocator::pool_name`] gives the name (no reference counting in the hot
//!   path).
//! - [`pod`]: [`PodState`] and [`PodState::needs_address`]: which pods need an address at all
//!   (bound, not host network, not finished, not being deleted).
//! - [`planner`]: [`Planner`], pools, catalog and allocator behind one call:
//!   [`Planner::assign`] a pod ([`PodContext`]) its addresses per family, or an [`AssignError`]
//!   (`NodeUnknown`, `NamespaceUnknown`, `PodCIDRUnknown`, or the choice's or allocator's
//!   reason). The controller and `kubectl ipam plan` both decide through it.
//! - [`absence`]: [`Absence`], the leak rule: gone only when missing in two observations a grace
//!   period apart, with the clock injected.
//!
//! # The pieces one by one (what [`Planner`] does for a pod)
//!
//! ```
//! use ipam::{Allocator, Family, PodFixture, PoolCatalog, PoolInput, Request, validate_pools};
//!
//! let inputs = vec![PoolInput::new("general", "10.244.0.0/20").created("2024-01-01T00:00:00Z")];
//! let pod_cidrs = vec!["10.244.0.0/16".parse().unwrap()];
//! let verdicts = validate_pools(&inputs, Some(&pod_cidrs));
//!
//! let mut allocator = Allocator::new();
//! for v in &verdicts {
//!     if let Some(pool) = &v.pool {
//!         allocator.set_pool(pool.clone(), v.allocatable());
//!     }
//! }
//! let catalog = PoolCatalog::new(&verdicts);
//!
//! let pod = PodFixture::new("web").in_ns("shop").on_node("node-1");
//! let choice = catalog.choose(&pod.facts(), Family::V4).expect("a pool fits");
//! let got = allocator
//!     .allocate(&Request {
//!         handle: "9f1c0a6e-0000-4000-8000-000000000001",
//!         namespace: "shop",
//!         pod: "web",
//!         node: "node-1",
//!         family: Family::V4,
//!         pools: &choice.pools,
//!     })
//!     .expect("room in the pool");
//! assert_eq!(got.address.to_string(), "10.244.0.0");
//! assert_eq!(allocator.pool_name(got.pool), "general");
//! assert!(got.created_block);
//! // Write each changed block once, then annotate the pods.
//! for dirty in allocator.take_dirty() {
//!     let record = allocator.block(&dirty.cidr).expect("known").to_record();
//!     assert_eq!(record.allocations.len(), 1);
//! }
//! ```
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod absence;
pub mod age;
pub mod allocator;
pub mod block;
pub mod choice;
pub mod cidr;
pub mod fixed;
mod hash;
pub mod planner;
pub mod pod;
pub mod pool;
pub mod selector;
pub mod sticky;
mod text;
pub mod validate;

pub use absence::Absence;
pub use allocator::{
    AllocError, Allocator, Assigned, Change, DirtyBlock, InsertError, PoolRef, ReleaseError,
    Released, Request, Usage,
};
pub use block::{Allocation, AllocationRecord, Block, BlockError, BlockRecord, Slot};
pub use choice::{
    Choice, ChoiceError, IPV4_POOLS_ANNOTATION, IPV6_POOLS_ANNOTATION, NotAdmitted, PodFacts,
    PodFixture, PoolCatalog, Source, annotation_key,
};
pub use cidr::{CidrError, Family, FamilyError};
pub use planner::{AssignError, Distrusted, Placed, Planner, PodContext};
pub use pod::{NoAddress, PodState};
pub use pool::{
    AllowedUse, AssignmentMode, Effect, EncapMode, Pool, PoolError, PoolInput, SpecField,
};
pub use selector::{Selector, SelectorError};
pub use validate::{PoolVerdict, Reason, UnknownReason, overlapped_by, validate_pools};
