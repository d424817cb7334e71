//! The pure allocation core of rangepool.
//!
//! Owns CIDR maths, IPAM blocks and their allocations, Calico selector expressions, the choice of
//! pool for a pod, and pool validation. It must not depend on kube, tokio or any I/O: every rule
//! here is testable as plain data in, plain data out.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod age;
pub mod allocator;
pub mod block;
pub mod choice;
pub mod cidr;
mod hash;
pub mod pool;
pub mod selector;
mod text;
pub mod validate;
