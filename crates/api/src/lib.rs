//! rangepool's Kubernetes resource types and the names other tools rely on.
//!
//! Owns the `IPPool`, `IPAMBlock` and `IPReservation` custom resources (group `rangepool.dev`, version `v1`), the
//! annotation keys, finalizer and field-manager names, the conversions between these resources
//! and the pure core in the `ipam` crate, the shape of every IPAMBlock write ([`write`]), and the
//! check that a block records a pod's address ([`block::Slot`]). It depends on kube only for the
//! derive macros and resource traits: nothing here talks to an API server.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod assignment;
pub mod block;
pub mod cluster;
pub mod crd;
pub mod keys;
pub mod pool;
pub mod reservation;
pub mod write;

pub use assignment::{Assignment, AssignmentError, FamilyAssignment};
pub use block::{BlockAllocation, IPAMBlock, IPAMBlockSpec};
pub use pool::{IPPool, IPPoolSpec, IPPoolStatus, PoolCondition};
pub use reservation::{IPReservation, IPReservationSpec};
