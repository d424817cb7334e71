//! The rangepool controller: validates pools, pre-assigns an address to every pod bound to a
//! node, and releases addresses of pods that are gone.
//!
//! All allocation rules live in the pure `ipam` crate; this crate feeds it what the API server's
//! watches show ([`world`]) and writes its decisions back ([`engine`]): blocks first, through the
//! one seam in [`blocks`], then pod annotations. Only the leader ([`leader`]) writes. It must not
//! hold allocation rules of its own.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod annotations;
mod assign;
pub mod blocks;
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
pub mod run;
pub mod world;
