//! Errors of the in-memory allocator.

use std::net::IpAddr;

use ipnet::IpNet;
use thiserror::Error;

use crate::block::BlockError;
use crate::cidr::Family;

/// Why an address could not be allocated. Every message names the pod.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AllocError {
    /// The request lacks a handle or a node.
    #[error("pod {namespace}/{pod}: cannot allocate without a {field}")]
    MissingField {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// `handle` or `node`.
        field: &'static str,
    },
    /// The request names no pool.
    #[error("pod {namespace}/{pod}: no {family} pool to allocate from")]
    NoCandidatePools {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The family asked for.
        family: Family,
    },
    /// A candidate pool is not known to the allocator.
    #[error("pod {namespace}/{pod}: pool {pool} does not exist")]
    UnknownPool {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The pool.
        pool: String,
    },
    /// A candidate pool may not give out addresses now (see its `Allocatable` condition).
    #[error("pod {namespace}/{pod}: pool {pool} is not allocatable; see its Allocatable condition")]
    PoolNotAllocatable {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The pool.
        pool: String,
    },
    /// A candidate pool is of the other family.
    #[error(
        "pod {namespace}/{pod}: pool {pool} is an {pool_family} pool, but an {family} address was asked for"
    )]
    WrongFamily {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The pool.
        pool: String,
        /// The pool's family.
        pool_family: Family,
        /// The family asked for.
        family: Family,
    },
    /// Every candidate pool is full for this node.
    #[error(
        "pod {namespace}/{pod}: no free {family} address for node {node} in pool{} {}{}{}",
        if pools.len() == 1 { "" } else { "s" },
        pools.join(", "),
        if *strict { " (strict affinity: only this node's blocks and unclaimed blocks were tried)" } else { "" },
        match block_limit { Some(n) => format!(" (the node has its limit of {n} blocks per pool: --max-blocks-per-node)"), None => String::new() }
    )]
    Exhausted {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The family asked for.
        family: Family,
        /// The node.
        node: String,
        /// The pools tried, in order.
        pools: Vec<String>,
        /// Whether strict affinity kept other nodes' blocks out.
        strict: bool,
        /// The per-node block limit, when it kept the node from claiming a new block.
        block_limit: Option<u32>,
    },
    /// The address a pod uses is held by another pod.
    #[error("pod {namespace}/{pod} uses {address}, but {holder} holds it")]
    AddressTaken {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The address.
        address: IpAddr,
        /// Who holds it: `namespace/pod`.
        holder: String,
    },
    /// The address a pod uses does not lie in the pool (or its blocks) it was to be recorded in.
    #[error("pod {namespace}/{pod} uses {address}, which is not an address of pool {pool}")]
    AddressOutsidePool {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The address.
        address: IpAddr,
        /// The pool.
        pool: String,
    },
}

impl AllocError {
    /// Short stable label for events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AllocError::MissingField { .. } => "InvalidRequest",
            AllocError::NoCandidatePools { .. } => "NoPool",
            AllocError::UnknownPool { .. } => "UnknownPool",
            AllocError::PoolNotAllocatable { .. } => "PoolNotAllocatable",
            AllocError::WrongFamily { .. } => "WrongFamily",
            AllocError::Exhausted { .. } => "PoolsExhausted",
            AllocError::AddressTaken { .. } => "AddressTaken",
            AllocError::AddressOutsidePool { .. } => "AddressOutsidePools",
        }
    }
}

/// Why a release was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReleaseError {
    /// No known block holds the address.
    #[error("address {address} is in no known block")]
    NoBlock {
        /// The address.
        address: IpAddr,
    },
    /// The block refused (not allocated, re-assigned meanwhile...).
    #[error(transparent)]
    Block(#[from] BlockError),
}

impl ReleaseError {
    /// Short stable label for events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ReleaseError::NoBlock { .. } => "NoBlock",
            ReleaseError::Block(e) => e.reason(),
        }
    }
}

/// Why a block could not be added to the allocator.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InsertError {
    /// The block overlaps another block with a different range.
    #[error(
        "block {block} of pool {pool} overlaps block {existing} of pool {existing_pool}; one address would be in two blocks"
    )]
    BlockOverlap {
        /// The block refused.
        block: IpNet,
        /// Its pool.
        pool: String,
        /// The block already known.
        existing: IpNet,
        /// Its pool.
        existing_pool: String,
    },
}

impl InsertError {
    /// Short stable label for events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            InsertError::BlockOverlap { .. } => "BlockOverlap",
        }
    }
}
