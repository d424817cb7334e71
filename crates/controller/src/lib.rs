//! The rangepool controller: validates pools, pre-assigns an address to every pod bound to a
//! node, and releases addresses of pods that are gone.
//!
//! All allocation rules live in the pure `ipam` crate (its `Planner`, `PodState` and `Absence`);
//! the shape of every block write lives in `api::write`. This crate feeds the core what the API
//! server's watches show ([`world`]) and writes its decisions back: blocks first, then pod
//! annotations. Only the leader ([`leader`]) writes. It must not hold allocation rules of its
//! own.
//!
//! The leader's engine, a file per responsibility:
//! - [`engine`]: the loop: gather changes, then one step of decisions and writes;
//! - `assign`: a pod's addresses from the model, and the failures reported on the pod;
//! - `queue`: pods waiting for a retry, and the pass over every pod;
//! - `sync`: the model kept in step with the blocks the watch shows, and changed blocks written;
//! - [`model`]: the core's planner and the version of each block last read;
//! - [`blocks`]: the one seam that sends block writes;
//! - `annotations`: pod annotation patches in flight;
//! - `gc`: the leak sweep; `pools`: pool status, finalizers and the default pool;
//! - `cluster`: the client, Events and metrics.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod annotations;
mod assign;
pub mod blocks;
mod cluster;
mod coalesce;
pub mod config;
pub mod engine;
mod gc;
pub mod http;
pub mod leader;
pub mod lean;
pub mod metrics;
pub mod model;
pub mod pods;
mod pools;
mod queue;
pub mod run;
mod sync;
pub mod world;
