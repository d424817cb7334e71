//! The burst: bound pods created all at once with the controller running in-process; how long
//! until every pod is annotated, how many API writes that took, and the ceiling — how fast the
//! controller's own client merely patches an annotation onto the same pods.
//!
//! The API server and the controller share this process's runtime. The pods are created by a
//! stand-in for the scheduler on a thread of its own, with its connections already open, as a
//! scheduler in a cluster is another process that has been running; the controller's client
//! also starts with its connections open.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use api::{Assignment, FamilyAssignment, IPAMBlock, IPPool};
use futures::StreamExt;
use ipam::cidr::Family;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use rangepool_controller::config::Settings;
use rangepool_controller::run::{Options, run};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::cluster::{
    Cluster, CommitLog, Op, Scheduler, Seen, cpu_seconds, env_usize, http_get, loadavg,
    metric_lines, node_name, pod, print_writes, quantile, secs,
};

const NAMESPACE: &str = "burst";
const POD_CIDR: &str = "10.244.0.0/16";
/// The controller's `PATCH_CONCURRENCY` (src/annotations.rs), which the ceiling uses too.
const PATCH_CONCURRENCY: usize = 32;
/// The controller's `WRITE_CONCURRENCY` (src/engine.rs): block writes in flight at once.
const WRITE_CONCURRENCY: usize = 32;

/// The controller running in-process, as the integration tests run it.
struct InProcess {
    client: Client,
    metrics: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl InProcess {
    fn start(client: Client, settings: Settings) -> InProcess {
        // Options takes an address, and `run` does not say which port :0 got; pick one.
        let metrics = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let options = Options {
            identity: "bench-controller".into(),
            lease_namespace: "kube-system".into(),
            lease_duration: 15,
            metrics_addr: metrics,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(client.clone(), settings, options, async {
            let _ = stopped.await;
        }));
        InProcess {
            client,
            metrics,
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn metrics(&self) -> String {
        http_get(self.metrics, "/metrics")
            .await
            .map(|(_, body)| body)
            .unwrap_or_default()
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("warning: the controller stopped with an error: {e:#}"),
                Err(e) => eprintln!("warning: the controller task failed: {e}"),
            }
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// What one burst measured.
struct Outcome {
    ratio: f64,
    tail_ratio: f64,
    writes_per_pod: f64,
}

/// `BENCH_BURST_RUNS` bursts (3), each on a fresh API server and controller, then the median of
/// each result: on a shared 2-CPU machine one run varies by a fifth either way.
pub async fn run_burst() {
    let runs = env_usize("BENCH_BURST_RUNS", 3).max(1);
    let mut outcomes = Vec::new();
    for run in 1..=runs {
        println!("burst_run: {run} of {runs}");
        outcomes.push(run_burst_once().await);
    }
    let median = |f: fn(&Outcome) -> f64| {
        let mut values: Vec<f64> = outcomes.iter().map(f).collect();
        values.sort_by(f64::total_cmp);
        let all: Vec<String> = values.iter().map(|v| format!("{v:.3}")).collect();
        (values[values.len() / 2], all.join(" "))
    };
    let (ratio, ratios) = median(|o| o.ratio);
    let (tail, tails) = median(|o| o.tail_ratio);
    let (writes, all_writes) = median(|o| o.writes_per_pod);
    println!("summary_runs: {runs}");
    println!(
        "summary_assignment_vs_ceiling_ratio_median: {ratio:.3} (target >= 0.5; runs: {ratios})"
    );
    println!("summary_tail_vs_ceiling_ratio_median: {tail:.3} (runs: {tails})");
    println!("summary_writes_per_pod_median: {writes:.3} (target <= 2; runs: {all_writes})");
}

async fn run_burst_once() -> Outcome {
    let pods = env_usize("BENCH_PODS", 1000);
    let nodes = env_usize("BENCH_NODES", 50);
    let create_concurrency = env_usize("BENCH_CREATE_CONCURRENCY", pods).max(1);
    let patience = Duration::from_secs(env_usize("BENCH_TIMEOUT_SECS", 600) as u64);
    println!("burst_pods: {pods}");
    println!("burst_nodes: {nodes}");
    println!("burst_create_concurrency: {create_concurrency}");
    println!("burst_loadavg_at_start: {}", loadavg());

    let cluster = Cluster::start().await;
    cluster.nodes(nodes, 64).await;
    cluster.namespace(NAMESPACE).await;
    cluster.pool("burst", POD_CIDR, 26).await;

    let settings = Settings {
        pod_cidrs: Some(vec![POD_CIDR.parse().expect("CIDR")]),
        families: vec![Family::V4],
        leak_grace: Duration::from_secs(300),
        sweep_interval: Duration::from_secs(60),
        default_pool: false,
        strict_affinity: false,
    };
    // Both clients start with their connections open: the controller's for its patches and
    // block writes, the benchmark's for its creates.
    let controller_client = cluster.server.client().expect("controller's client");
    Cluster::warm(&controller_client, PATCH_CONCURRENCY + WRITE_CONCURRENCY).await;
    let scheduler = Scheduler::start(&cluster.server, create_concurrency).await;
    let controller = InProcess::start(controller_client, settings);
    wait_until_leading(&cluster, &controller, patience).await;

    // Every write anyone commits, from before the first create.
    let (log, rv0) = CommitLog::start(&cluster.server, annotated_pod);

    let fixtures: Vec<Pod> = (0..pods)
        .map(|i| {
            pod(
                &format!("web-{i:05}"),
                NAMESPACE,
                &node_name(i % nodes),
                BTreeMap::new(),
            )
        })
        .collect();
    let cpu_before = cpu_seconds(std::process::id());
    let start = Instant::now();
    let created = scheduler.create_pods(fixtures, create_concurrency).await;
    let all_created = start.elapsed();
    let annotated_by_then = log.marked_count("pod");

    let deadline = Instant::now() + patience;
    while log.marked_count("pod") < pods && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let all_annotated = start.elapsed();
    let burst_cpu = cpu_seconds(std::process::id())
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let marks = log.marks("pod");
    let done = marks.len();
    let rv_done = marks.values().map(|(rv, _)| *rv).max().unwrap_or(rv0);

    println!("burst_create_seconds: {}", secs(all_created));
    println!("burst_annotated_when_all_created: {annotated_by_then}");
    println!("burst_annotated: {done}");
    if done < pods {
        println!("burst_timed_out_after_seconds: {}", secs(all_annotated));
    }
    println!("burst_seconds: {}", secs(all_annotated));
    if let Some(cpu) = burst_cpu {
        // The API server, the controller and this benchmark share the process and its CPUs.
        println!("burst_cpu_seconds: {cpu:.2} (API server, controller and benchmark)");
    }
    let assign_rate = done as f64 / all_annotated.as_secs_f64();
    println!("burst_assignment_pods_per_second: {assign_rate:.0}");
    // After the last create returned, the controller no longer shares the API server and the
    // CPUs with the creates.
    let tail = all_annotated.saturating_sub(all_created);
    println!("burst_tail_seconds: {}", secs(tail));
    println!(
        "burst_tail_pods_per_second: {:.0}",
        (done - annotated_by_then.min(done)) as f64 / tail.as_secs_f64()
    );

    // Latency of each pod: from its create request to the watch showing its annotation.
    let mut latencies: Vec<Duration> = (0..pods)
        .filter_map(|i| {
            let (_, seen) = marks.get(&format!("{NAMESPACE}/web-{i:05}"))?;
            Some(seen.saturating_duration_since(created[i].1))
        })
        .collect();
    latencies.sort();
    for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)] {
        println!(
            "burst_latency_{name}_seconds: {}",
            secs(quantile(&latencies, q))
        );
    }

    // Writes: every change committed from just before the first create to the last annotation.
    let counts = log.settle(rv0, rv_done, Duration::from_secs(5)).await;
    let delta = rv_done - rv0;
    println!("burst_rv_delta: {delta}");
    print_writes("burst", &counts, delta);
    let creates = counts
        .get(&("pod".to_owned(), Op::Create))
        .copied()
        .unwrap_or(0);
    let controller_writes = delta.saturating_sub(creates);
    println!("burst_controller_writes: {controller_writes}");
    println!(
        "burst_controller_writes_per_pod: {:.3}",
        controller_writes as f64 / pods as f64
    );
    print_steps(&log.changes(rv0, rv_done), start);
    print_timeline(&log.changes(rv0, rv_done), start);
    let metrics = controller.metrics().await;
    for line in metric_lines(&metrics, "rangepool_write_conflicts")
        .into_iter()
        .chain(metric_lines(&metrics, "rangepool_failures"))
        .chain(metric_lines(&metrics, "rangepool_allocations"))
    {
        println!("burst_metric: {line}");
    }

    // What the controller writes once the burst is over.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rv_settled = cluster.server.resource_version();
    let after = log
        .settle(rv_done, rv_settled, Duration::from_secs(2))
        .await;
    println!("burst_after_3s_rv_delta: {}", rv_settled - rv_done);
    print_writes("burst_after_3s", &after, rv_settled - rv_done);

    println!("burst_consistent: {}", check_consistency(&cluster).await);

    // The ceiling, with the controller stopped so that it does not undo the fake annotations.
    let client = controller.client.clone();
    controller.stop().await;
    drop(log);
    let names: Vec<(String, String)> = created
        .iter()
        .enumerate()
        .map(|(i, (uid, _))| (format!("web-{i:05}"), uid.clone()))
        .collect();
    let rv_before = cluster.server.resource_version();
    let cpu_before = cpu_seconds(std::process::id());
    let concurrent = ceiling(&client, &names, PATCH_CONCURRENCY, 1).await;
    let ceiling_cpu = cpu_seconds(std::process::id())
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let rv_mid = cluster.server.resource_version();
    let sequential = ceiling(&client, &names, 1, 2).await;
    let rv_after = cluster.server.resource_version();
    let concurrent_rate = pods as f64 / concurrent.as_secs_f64();
    let sequential_rate = pods as f64 / sequential.as_secs_f64();
    println!("ceiling_concurrency: {PATCH_CONCURRENCY}");
    println!("ceiling_concurrent_seconds: {}", secs(concurrent));
    println!("ceiling_concurrent_patches_per_second: {concurrent_rate:.0}");
    println!("ceiling_concurrent_writes: {}", rv_mid - rv_before);
    if let Some(cpu) = ceiling_cpu {
        println!("ceiling_concurrent_cpu_seconds: {cpu:.2}");
    }
    println!("ceiling_sequential_seconds: {}", secs(sequential));
    println!("ceiling_sequential_patches_per_second: {sequential_rate:.0}");
    println!("ceiling_sequential_writes: {}", rv_after - rv_mid);
    let ratio = assign_rate / concurrent_rate;
    println!("assignment_vs_ceiling_ratio: {ratio:.3} (target >= 0.5)");
    println!(
        "assignment_vs_sequential_ceiling_ratio: {:.3}",
        assign_rate / sequential_rate
    );
    // The burst's clock includes the creates, which share the API server and both CPUs with
    // the annotations; this is the controller's rate once they are done.
    let tail_ratio =
        (done - annotated_by_then.min(done)) as f64 / tail.as_secs_f64() / concurrent_rate;
    println!("tail_vs_ceiling_ratio: {tail_ratio:.3} (annotations after the last create returned)");
    let writes_per_pod = controller_writes as f64 / pods as f64;
    println!("writes_per_pod: {writes_per_pod:.3} (target <= 2)");
    println!("burst_loadavg_at_end: {}", loadavg());
    Outcome {
        ratio,
        tail_ratio,
        writes_per_pod,
    }
}

/// The controller's steps as the API server committed them: the engine writes a batch's blocks,
/// then annotates the batch's pods, then takes the next batch; so a block write after an
/// annotation starts a new step. Prints where the burst's time went.
fn print_steps(changes: &[Seen], start: Instant) {
    #[derive(Default)]
    struct Step {
        blocks: u64,
        pods: u64,
        block_span: Option<(Instant, Instant)>,
        pod_span: Option<(Instant, Instant)>,
    }
    fn widen(span: &mut Option<(Instant, Instant)>, at: Instant) {
        *span = Some(match *span {
            Some((a, b)) => (a.min(at), b.max(at)),
            None => (at, at),
        });
    }
    let mut steps: Vec<Step> = Vec::new();
    for c in changes {
        match (c.resource.as_str(), c.op) {
            ("ipamblock", _) => {
                if steps.last().is_none_or(|s| s.pods > 0) {
                    steps.push(Step::default());
                }
                let step = steps.last_mut().expect("a step");
                step.blocks += 1;
                widen(&mut step.block_span, c.at);
            }
            ("pod", Op::Update) => {
                if steps.is_empty() {
                    steps.push(Step::default());
                }
                let step = steps.last_mut().expect("a step");
                step.pods += 1;
                widen(&mut step.pod_span, c.at);
            }
            _ => {}
        }
    }
    let at = |i: Instant| i.saturating_duration_since(start).as_secs_f64();
    let span = |s: Option<(Instant, Instant)>| {
        s.map_or("-".to_owned(), |(a, b)| {
            format!("+{:.3}..+{:.3}s", at(a), at(b))
        })
    };
    println!("burst_steps: {}", steps.len());
    for (k, step) in steps.iter().enumerate().take(12) {
        println!(
            "burst_step_{}: blocks={} {} pods={} {}",
            k + 1,
            step.blocks,
            span(step.block_span),
            step.pods,
            span(step.pod_span)
        );
    }
    // Time spent writing blocks, annotating, and neither (batching window, deciding, waiting for
    // the watch), as seen through the watch.
    let length = |s: Option<(Instant, Instant)>| s.map_or(0.0, |(a, b)| (b - a).as_secs_f64());
    let blocks: f64 = steps.iter().map(|s| length(s.block_span)).sum();
    let pods: f64 = steps.iter().map(|s| length(s.pod_span)).sum();
    let first = steps
        .first()
        .and_then(|s| s.block_span.or(s.pod_span))
        .map_or(0.0, |(a, _)| at(a));
    println!("burst_time_until_first_write_seconds: {first:.3}");
    println!("burst_time_writing_blocks_seconds: {blocks:.3}");
    println!("burst_time_annotating_seconds: {pods:.3}");
}

/// What the API server committed in each 20 ms of the burst: the creates, the controller's block
/// writes and its annotations.
fn print_timeline(changes: &[Seen], start: Instant) {
    const SLOT_MS: u128 = 20;
    let mut slots: BTreeMap<u128, [u32; 3]> = BTreeMap::new();
    for c in changes {
        let column = match (c.resource.as_str(), c.op) {
            ("pod", Op::Create) => 0,
            ("ipamblock", _) => 1,
            ("pod", _) => 2,
            _ => continue,
        };
        let slot = c.at.saturating_duration_since(start).as_millis() / SLOT_MS;
        slots.entry(slot).or_default()[column] += 1;
    }
    for (slot, [creates, blocks, annotations]) in slots {
        println!(
            "burst_timeline_{:04}ms: creates={creates} block_writes={blocks} annotations={annotations}",
            slot * SLOT_MS
        );
    }
}

/// Waits until the controller leads and has written the pool's status, then until the API
/// server has been quiet for a moment, so the burst starts from an idle controller.
async fn wait_until_leading(cluster: &Cluster, controller: &InProcess, patience: Duration) {
    let deadline = Instant::now() + patience;
    let pools: Api<IPPool> = Api::all(cluster.client.clone());
    loop {
        let leading = metric_lines(&controller.metrics().await, "rangepool_leader")
            .iter()
            .any(|l| l.ends_with(" 1"));
        let status = pools
            .get("burst")
            .await
            .ok()
            .and_then(|p| p.allocatable().map(|c| c.status.clone()));
        if leading && status.as_deref() == Some("True") {
            break;
        }
        assert!(Instant::now() < deadline, "the controller never led");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut rv = cluster.server.resource_version();
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_millis(500) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = cluster.server.resource_version();
        if now != rv {
            rv = now;
            quiet_since = Instant::now();
        }
    }
}

/// Patches a (fake) assignment onto every pod through the controller's own annotate function,
/// with `concurrency` in flight. `round` makes the values differ from the previous round's, so
/// that every patch is a real write.
async fn ceiling(
    client: &Client,
    pods: &[(String, String)],
    concurrency: usize,
    round: u8,
) -> Duration {
    let start = Instant::now();
    futures::stream::iter(pods.iter().enumerate())
        .map(|(i, (name, uid))| {
            let client = client.clone();
            async move {
                let address = Ipv4Addr::new(10, 250 + round, (i / 250) as u8, (i % 250) as u8);
                let assignment = Assignment {
                    ipv4: Some(FamilyAssignment {
                        address: IpAddr::V4(address),
                        pool: "burst".into(),
                        block: format!("10-{}-{}-0-24", 250 + round, i / 250),
                    }),
                    ..Default::default()
                };
                rangepool_controller::pods::annotate(&client, NAMESPACE, name, uid, &assignment)
                    .await
                    .expect("ceiling patch");
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<()>>()
        .await;
    start.elapsed()
}

/// Every annotated address is recorded for that pod's UID in the block the annotation names,
/// and no address is given twice.
async fn check_consistency(cluster: &Cluster) -> String {
    let blocks = Api::<IPAMBlock>::all(cluster.client.clone())
        .list(&ListParams::default())
        .await
        .expect("list blocks");
    let mut recorded: HashMap<IpAddr, (String, String)> = HashMap::new();
    for block in &blocks.items {
        let Ok(cidr) = ipam::cidr::parse_strict(&block.spec.cidr) else {
            return format!("false (block {} has a bad cidr)", block.name_any());
        };
        for (ordinal, a) in &block.spec.allocations {
            let Some(address) = ordinal
                .parse()
                .ok()
                .and_then(|o| ipam::cidr::nth_addr(&cidr, o))
            else {
                return format!("false (block {} has a bad ordinal)", block.name_any());
            };
            recorded.insert(address, (a.handle.clone(), block.name_any()));
        }
    }
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), NAMESPACE)
        .list(&ListParams::default())
        .await
        .expect("list pods");
    let mut problems = 0;
    let mut addresses = HashMap::new();
    for p in &pods.items {
        let ok = Assignment::from_annotations(p.annotations())
            .ok()
            .and_then(|a| a.ipv4)
            .is_some_and(|v4| {
                addresses.insert(v4.address, p.name_any()).is_none()
                    && recorded.get(&v4.address)
                        == Some(&(p.uid().unwrap_or_default(), v4.block.clone()))
            });
        if !ok {
            problems += 1;
        }
    }
    if problems == 0 {
        format!(
            "true ({} pods, {} blocks, {} recorded addresses)",
            pods.items.len(),
            blocks.items.len(),
            recorded.len()
        )
    } else {
        format!("false ({problems} pods whose annotation no block records for them)")
    }
}

/// A pod of the burst carrying an assigned address.
fn annotated_pod(resource: &str, object: &Value) -> bool {
    resource == "pod"
        && object["metadata"]["namespace"] == NAMESPACE
        && object["metadata"]["annotations"]
            .get(api::keys::ASSIGNED_IPV4)
            .is_some()
}
