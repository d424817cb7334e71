//! `make bench-controller`: the controller's throughput and memory against a real control plane
//! (etcd and kube-apiserver from `envtest`, TLS and RBAC, the controller with the Helm chart's
//! identity). Prints `name: value` lines; it asserts nothing about speed.
//!
//! 1. Burst (controller in-process, on a runtime of its own): `BENCH_PODS` bound pods (1,000) on
//!    `BENCH_NODES` nodes (50) created at once by a stand-in for the scheduler; seconds from the
//!    first create until a watch has seen every pod annotated, the API server's writes per pod
//!    (from its `apiserver_request_total`), the CPU seconds of the API server, etcd and the
//!    controller, and next to it the baseline: a plain client creating the same number of pods
//!    and then merge-patching each once, timed the same way. The headline is their ratio
//!    (`assignment_vs_baseline_ratio`, the baseline's seconds over the burst's); the burst's rate
//!    over the baseline's patching alone is printed next to it.
//! 2. Memory (controller binary as a separate process): `BENCH_MEMORY_PODS` pods (150,000) on
//!    `BENCH_MEMORY_NODES` nodes (5,000); VmRSS/VmHWM once loaded and after idling.
//!
//! `BENCH_ONLY=burst|memory` runs one of them. Other knobs: `BENCH_BURST_RUNS` (3 bursts, each
//! on a fresh control plane and controller; every run's numbers, then the medians),
//! `BENCH_CREATE_CONCURRENCY` (burst creates in flight, default all), `BENCH_TIMELINE_MS` (500;
//! 0 prints no timeline), `BENCH_MEMORY_MODE=preload|assign`, `BENCH_MEMORY_NAMESPACES` (50),
//! `BENCH_SETUP_CONCURRENCY` (128), `BENCH_IDLE_SECS` (10), `BENCH_TIMEOUT_SECS` (600 for a
//! burst, 3,600 for memory). `RANGEPOOL_K8S_VERSION` picks the Kubernetes version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "controller/actor.rs"]
mod actor;
#[path = "controller/apiserver.rs"]
mod apiserver;
#[path = "controller/burst.rs"]
mod burst;
#[path = "controller/cluster.rs"]
mod cluster;
#[path = "controller/memory.rs"]
mod memory;
#[path = "controller/procfs.rs"]
mod procfs;
#[path = "controller/watch.rs"]
mod watch;

/// The controller binary's allocator, for the controller running in-process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    // Returning from main drops whatever is running, which stops the control plane and kills
    // the controller process.
    tokio::select! {
        () = work => {}
        _ = tokio::signal::ctrl_c() => eprintln!("interrupted"),
    }
}
