//! Allocation throughput of the in-memory allocator, printed as plain numbers.
//!
//! One /16 pool cut into /26 blocks, 1,000 nodes. Phase "fill" allocates pod by pod, round-robin
//! over the nodes, until all 65,536 addresses are taken (the last ones borrow from other nodes'
//! blocks). Phase "churn" then releases a pseudo-random pod and allocates a new one on the same
//! node, over and over, on the full pool. Handles and names are made before timing, as the
//! controller has them from the pod objects; `take_dirty` runs every 1,000 allocations as the
//! controller's batched writer would.
//!
//! Each phase runs in rounds on a new allocator (the fill rounds first, then the churn rounds,
//! each on a pool filled untimed). The first fill round is printed on its own: its memory is new
//! to the process, and page faults cost more than the allocations (about 1 µs each against
//! 0.1 µs later). The median of the other fill rounds, and of every churn round, is the steady
//! state of a running controller. `IPAM_BENCH_ROUNDS` sets the rounds (at least 2), and
//! `IPAM_BENCH_FILL_ONLY` skips the churn (for profiling the fill).
//!
//! The bench allocates memory through mimalloc, as the controller does (`crates/controller`'s
//! main): an allocation is one heap buffer, so the allocator is part of its cost.
//!
//! Run: `cargo bench -p ipam --bench alloc`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ipam::allocator::{Allocator, Request};
use ipam::cidr::Family;
use ipam::pool::{Pool, PoolInput};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NODES: usize = 1_000;
const ADDRESSES: usize = 65_536;
const CHURN: usize = 1_000_000;
/// Fill rounds; churn runs one fewer. An odd number of rounds for each median.
const ROUNDS: usize = 12;

/// A pod UID-like handle: 36 characters, like a Kubernetes UID.
fn uid(i: usize) -> String {
    format!(
        "{:08x}-0000-4000-8000-{:012x}",
        i.wrapping_mul(2_654_435_761) as u32,
        i
    )
}

struct Pods {
    handles: Vec<String>,
    names: Vec<String>,
}

fn pods(n: usize, offset: usize) -> Pods {
    Pods {
        handles: (0..n).map(|i| uid(i + offset)).collect(),
        names: (0..n).map(|i| format!("web-{}", i + offset)).collect(),
    }
}

fn allocator() -> Allocator {
    let input = PoolInput::new("bench", "10.0.0.0/16").block_size(26);
    let Ok(pool) = Pool::parse(&input) else {
        panic!("bench pool must be valid");
    };
    let mut a = Allocator::new();
    a.set_pool(pool, true);
    a.reserve(ADDRESSES);
    a
}

/// Time this thread has spent on a CPU: `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`, which the kernel
/// brings up to date when it is read, in nanoseconds. The machine may be shared; on-CPU time
/// measures the cost per core even when other processes take turns.
///
/// Not `/proc/thread-self/schedstat`, which this bench read before: the kernel prints the
/// thread's runtime as of its last scheduler update (a tick or a switch) without the running
/// slice, so a phase of a few milliseconds could be given more CPU time than wall-clock time.
fn cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// The whole process's CPU time from `/proc/self/stat` (user + system, in clock ticks of 10 ms,
/// kept up to date for the reading process), a second clock to check [`cpu_time`] against over
/// the whole run. `None` where the file cannot be read.
fn process_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux architecture.
    Some(Duration::from_millis(ticks * 10))
}

/// Wall-clock and on-CPU stopwatch.
struct Stopwatch {
    wall: Instant,
    cpu: Duration,
}

impl Stopwatch {
    fn start() -> Stopwatch {
        // The wall-clock interval encloses the CPU clock's: wall first here, last in `stop`.
        let wall = Instant::now();
        Stopwatch {
            wall,
            cpu: cpu_time(),
        }
    }

    /// (wall, on-CPU) time since start.
    fn stop(&self) -> (Duration, Duration) {
        let cpu = cpu_time().saturating_sub(self.cpu);
        let wall = self.wall.elapsed();
        // One thread cannot run longer than the time that passed.
        assert!(
            cpu <= wall,
            "the thread's CPU clock ran faster than the wall clock ({cpu:?} > {wall:?})"
        );
        (wall, cpu)
    }
}

fn rate(ops: usize, took: Duration) -> String {
    let per_sec = ops as f64 / took.as_secs_f64();
    format!("{:.2}M", per_sec / 1e6)
}

/// Allocates an address to every pod of `pods`, round-robin over the nodes; returns (address,
/// sequence, pod index) of each.
fn fill(
    a: &mut Allocator,
    pods: &Pods,
    nodes: &[String],
    pools: &[String],
) -> Vec<(std::net::IpAddr, u64, usize)> {
    let mut held = Vec::with_capacity(ADDRESSES);
    for i in 0..ADDRESSES {
        let req = Request {
            handle: &pods.handles[i],
            namespace: "default",
            pod: &pods.names[i],
            node: &nodes[i % NODES],
            family: Family::V4,
            pools,
        };
        match a.allocate(&req) {
            Ok(got) => held.push((got.address, got.sequence, i)),
            Err(e) => panic!("fill failed at {i}: {e}"),
        }
        if i % 1_000 == 999 {
            black_box(a.take_dirty());
        }
    }
    held
}

fn main() {
    let whole = (Instant::now(), cpu_time(), process_cpu_time());
    let nodes: Vec<String> = (0..NODES).map(|i| format!("node-{i:04}")).collect();
    let pools = vec!["bench".to_owned()];
    let fill_pods = pods(ADDRESSES, 0);
    let fill_only = std::env::var_os("IPAM_BENCH_FILL_ONLY").is_some();
    let churn_pods = pods(if fill_only { 0 } else { CHURN }, ADDRESSES);

    let mut fill_times = Vec::new();
    let mut churn_times = Vec::new();
    let rounds = std::env::var("IPAM_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS)
        .max(2);
    // The fill rounds first, then the churn rounds, so that neither phase runs on memory the
    // other one left behind.
    for _ in 0..rounds {
        let mut a = allocator();
        let watch = Stopwatch::start();
        black_box(fill(&mut a, &fill_pods, &nodes, &pools));
        fill_times.push(watch.stop());
        assert_eq!(
            a.usage("bench").map(|u| u.allocated),
            Some(ADDRESSES as u128)
        );
    }
    for _ in 0..if fill_only { 0 } else { rounds - 1 } {
        let mut a = allocator();
        let mut held = fill(&mut a, &fill_pods, &nodes, &pools);
        // Churn: release one pod, allocate a new one on the same node.
        let mut owners: Vec<&str> = fill_pods.handles.iter().map(String::as_str).collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let watch = Stopwatch::start();
        for (i, (handle, name)) in churn_pods.handles.iter().zip(&churn_pods.names).enumerate() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let victim = (x % ADDRESSES as u64) as usize;
            let (address, sequence, node) = held[victim];
            if let Err(e) = a.release(address, owners[victim], sequence) {
                panic!("churn release failed: {e}");
            }
            let req = Request {
                handle,
                namespace: "default",
                pod: name,
                node: &nodes[node % NODES],
                family: Family::V4,
                pools: &pools,
            };
            match a.allocate(&req) {
                Ok(got) => {
                    held[victim] = (got.address, got.sequence, node);
                    owners[victim] = handle;
                }
                Err(e) => panic!("churn allocate failed at {i}: {e}"),
            }
            if i % 1_000 == 999 {
                black_box(a.take_dirty());
            }
        }
        churn_times.push(watch.stop());
        black_box(&a);
    }
    let churned = churn_pods.handles.len();
    println!(
        "pool 10.0.0.0/16, /26 blocks, {NODES} nodes; fill: median of rounds 2 to {rounds}, then round 1 alone; churn: median of {} rounds",
        if fill_only { 0 } else { rounds - 1 }
    );
    println!(
        "rates per second of on-CPU time of the benchmark thread (wall-clock rate in brackets)"
    );
    let (first_wall, first_cpu) = fill_times.remove(0);
    println!(
        "allocations/s (fill, {ADDRESSES} pods): {}; first round {}",
        median(ADDRESSES, &mut fill_times),
        line(ADDRESSES, first_cpu, first_wall)
    );
    if !fill_only {
        println!(
            "allocations/s (churn: release + allocate on the full pool, {churned} pods): {}",
            median(churned, &mut churn_times)
        );
    }
    check_clocks(whole);
}

/// Compares the thread's CPU clock with the process's CPU time from `/proc/self/stat` over the
/// whole run (the bench has one thread), and with the wall clock.
fn check_clocks((wall_start, cpu_start, process_start): (Instant, Duration, Option<Duration>)) {
    let wall = wall_start.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_start);
    let Some(process) = process_cpu_time()
        .zip(process_start)
        .map(|(end, start)| end.saturating_sub(start))
    else {
        println!("whole run: {cpu:.2?} on CPU, {wall:.2?} wall-clock");
        return;
    };
    // /proc/self/stat counts in 10 ms ticks: allow two, and 2 %.
    let agree = cpu.abs_diff(process) <= Duration::from_millis(20) + process / 50;
    println!(
        "whole run: {cpu:.2?} on CPU by CLOCK_THREAD_CPUTIME_ID, {process:.2?} by /proc/self/stat ({}), {wall:.2?} wall-clock{}",
        if agree { "agree" } else { "DISAGREE" },
        if wall > cpu * 11 / 10 {
            " (other processes took turns on this core)"
        } else {
            ""
        }
    );
}

/// A rate by on-CPU time, [by wall-clock time], and the CPU time per operation.
fn line(ops: usize, cpu: Duration, wall: Duration) -> String {
    format!(
        "{} [{}] ({:.0} ns each)",
        rate(ops, cpu),
        rate(ops, wall),
        cpu.as_nanos() as f64 / ops as f64
    )
}

/// The median rate of rounds (an odd number of them), by on-CPU and by wall-clock time.
fn median(ops: usize, times: &mut [(Duration, Duration)]) -> String {
    times.sort_by_key(|(_, cpu)| *cpu);
    let cpu = times[times.len() / 2].1;
    times.sort_by_key(|(wall, _)| *wall);
    let wall = times[times.len() / 2].0;
    line(ops, cpu, wall)
}
