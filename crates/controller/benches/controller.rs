//! `make bench-controller`: the controller's throughput and memory, measured against the in-repo
//! test API server. Prints `name: value` lines; it asserts nothing about speed.
//!
//! 1. Burst (controller in-process): `BENCH_PODS` bound pods (1,000) on `BENCH_NODES` nodes (50)
//!    created at once; seconds until every pod is annotated, API writes per pod, latency
//!    percentiles, and the ceiling — the same client merely patching an annotation onto the same
//!    pods, 32 in flight and one at a time.
//! 2. Memory (controller binary as a separate process): `BENCH_MEMORY_PODS` pods (150,000) on
//!    `BENCH_MEMORY_NODES` nodes (5,000); VmRSS/VmHWM once loaded and after idling.
//!
//! `BENCH_ONLY=burst|memory` runs one of them. Other knobs: `BENCH_BURST_RUNS` (3 bursts, each
//! on a fresh server and controller; the medians are printed last), `BENCH_CREATE_CONCURRENCY`
//! (burst creates in flight, default all), `BENCH_MEMORY_MODE=preload|assign`,
//! `BENCH_MEMORY_NAMESPACES`, `BENCH_SETUP_CONCURRENCY` (64), `BENCH_IDLE_SECS` (10),
//! `BENCH_TIMEOUT_SECS` (600).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "controller/burst.rs"]
mod burst;
#[path = "controller/cluster.rs"]
mod cluster;
#[path = "controller/memory.rs"]
mod memory;

#[tokio::main]
async fn main() {
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let work = async {
        if only.is_empty() || only == "burst" {
            burst::run_burst().await;
        }
        if only.is_empty() || only == "memory" {
            memory::run_memory().await;
        }
    };
    // Returning from main drops whatever is running, which kills the controller process.
    tokio::select! {
        () = work => {}
        _ = tokio::signal::ctrl_c() => eprintln!("interrupted"),
    }
}
