//! The burst: bound pods created all at once with the real controller running (in-process, on a
//! runtime of its own, with the chart's controller identity); how long until a watch has seen
//! every pod annotated, how many writes the API server answered for that, and how much CPU the
//! API server, etcd and the controller used. Next to it, on the same control plane, the
//! baseline: a plain client that creates as many pods and merge-patches each once.
//!
//! The pods are created by a stand-in for the scheduler on a runtime of its own with its
//! connections already open, as a scheduler in a cluster is another process that has been
//! running; the controller's client and the baseline's patcher also start with theirs open.

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
use rangepool_controller::run::{Options as RunOptions, run};
use tokio::sync::oneshot;

use crate::actor::Actor;
use crate::apiserver::Requests;
use crate::cluster::{
    Cluster, PodCreate, cpu, create_pods, env_usize, http_get, metric_lines, node_name, pod,
    quantile, secs,
};
use crate::procfs::{cpu_seconds, loadavg, used};
use crate::watch::{Change, Watch};

const NAMESPACE: &str = "burst";
const BASELINE_NAMESPACE: &str = "baseline";
const POOL: &str = "burst";
const POD_CIDR: &str = "10.244.0.0/16";
/// The controller's `PATCH_CONCURRENCY` (src/annotations.rs), which the baseline uses too.
const PATCH_CONCURRENCY: usize = 32;
/// The controller's `WRITE_CONCURRENCY` (src/engine.rs): block writes in flight at once.
const WRITE_CONCURRENCY: usize = 32;
/// The controller binary's runtime has a worker per CPU; this machine's bursts ran on two.
const CONTROLLER_WORKERS: usize = 2;

/// The controller's `run`, on its actor's runtime.
struct InProcess {
    metrics: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl InProcess {
    /// With the Lease in `lease_namespace`, where the chart's Role lets the controller hold it.
    fn start(actor: &Actor, settings: Settings, lease_namespace: &str) -> InProcess {
        // Options takes an address, and `run` does not say which port :0 got; pick one.
        let metrics = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let options = RunOptions {
            identity: "bench-controller".into(),
            lease_namespace: lease_namespace.into(),
            lease_duration: 15,
            metrics_addr: metrics,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = actor.spawn(run(actor.client.clone(), settings, options, async {
            let _ = stopped.await;
        }));
        InProcess {
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

/// What one burst and its baseline measured.
struct Outcome {
    burst_seconds: f64,
    baseline_seconds: f64,
    /// `baseline_seconds / burst_seconds`: the controller's pods per second over the plain
    /// client's.
    ratio: f64,
    /// The controller's pods per second over the plain client's patches per second (its
    /// patching alone, the creates left out).
    patch_ratio: f64,
    /// The controller's annotations per second after the last create returned, over the plain
    /// client's patches per second.
    tail_ratio: f64,
    block_writes_per_pod: f64,
    pod_writes_per_pod: f64,
    writes_per_pod: f64,
    apiserver_cpu: f64,
    etcd_cpu: f64,
    controller_cpu: f64,
    baseline_apiserver_cpu: f64,
}

/// A summary line: its name, its value in one outcome, and a note.
type Summary = (&'static str, fn(&Outcome) -> f64, &'static str);

/// `BENCH_BURST_RUNS` bursts (3), each on a fresh control plane and controller, then every
/// run's numbers and the median of each: on a shared 2-CPU machine one run varies by a fifth
/// either way.
pub async fn run_burst() {
    let runs = env_usize("BENCH_BURST_RUNS", 3).max(1);
    let mut outcomes = Vec::new();
    for run in 1..=runs {
        println!("burst_run: {run} of {runs}");
        outcomes.push(run_burst_once().await);
    }
    println!("summary_runs: {runs}");
    let rows: [Summary; 12] = [
        (
            "assignment_vs_baseline_ratio",
            |o| o.ratio,
            " (target >= 0.8)",
        ),
        ("assignment_vs_patch_rate_ratio", |o| o.patch_ratio, ""),
        ("tail_vs_patch_ratio", |o| o.tail_ratio, ""),
        ("burst_seconds", |o| o.burst_seconds, ""),
        ("baseline_seconds", |o| o.baseline_seconds, ""),
        ("block_writes_per_pod", |o| o.block_writes_per_pod, ""),
        ("pod_writes_per_pod", |o| o.pod_writes_per_pod, ""),
        ("writes_per_pod", |o| o.writes_per_pod, " (target <= 1.1)"),
        ("burst_apiserver_cpu_seconds", |o| o.apiserver_cpu, ""),
        ("burst_etcd_cpu_seconds", |o| o.etcd_cpu, ""),
        ("burst_controller_cpu_seconds", |o| o.controller_cpu, ""),
        (
            "baseline_apiserver_cpu_seconds",
            |o| o.baseline_apiserver_cpu,
            "",
        ),
    ];
    let median = |value: fn(&Outcome) -> f64| {
        let mut sorted: Vec<f64> = outcomes.iter().map(value).collect();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    };
    for (name, value, note) in rows {
        let all: Vec<String> = outcomes
            .iter()
            .map(|o| format!("{:.3}", value(o)))
            .collect();
        println!(
            "summary_{name}_median: {:.3}{note} (runs: {})",
            median(value),
            all.join(" ")
        );
    }
    let pods = env_usize("BENCH_PODS", 1000).max(1);
    let nodes = env_usize("BENCH_NODES", 50).max(1);
    println!();
    println!("| measure (median of {runs} runs) | this run | target |");
    println!("| --- | --- | --- |");
    println!(
        "| {pods} pods bound at once on {nodes} nodes, all annotated, vs a plain client creating then merge-patching {pods} pods | {:.2}x ({:.1} s vs {:.1} s) | >= 0.8x |",
        median(|o| o.ratio),
        median(|o| o.burst_seconds),
        median(|o| o.baseline_seconds)
    );
    println!(
        "| API writes per assigned pod (block writes per pod) | {:.3} ({:.3}) | <= 1.1 |",
        median(|o| o.writes_per_pod),
        median(|o| o.block_writes_per_pod)
    );
    println!(
        "| API server CPU seconds, burst vs baseline | {:.2} vs {:.2} | |",
        median(|o| o.apiserver_cpu),
        median(|o| o.baseline_apiserver_cpu)
    );
}

async fn run_burst_once() -> Outcome {
    let pods = env_usize("BENCH_PODS", 1000).max(1);
    let nodes = env_usize("BENCH_NODES", 50).max(1);
    let create_concurrency = env_usize("BENCH_CREATE_CONCURRENCY", pods).max(1);
    let patience = Duration::from_secs(env_usize("BENCH_TIMEOUT_SECS", 600) as u64);
    let slot = env_usize("BENCH_TIMELINE_MS", 500);
    println!("burst_pods: {pods}");
    println!("burst_nodes: {nodes}");
    println!("burst_create_concurrency: {create_concurrency}");
    println!("burst_loadavg_at_start: {}", loadavg());

    let cluster = Cluster::start().await;
    println!("burst_kubernetes_version: {}", cluster.plane.version());
    cluster.nodes(nodes, 64).await;
    cluster.namespace(NAMESPACE).await;
    cluster.namespace(BASELINE_NAMESPACE).await;
    cluster.pool(POOL, POD_CIDR, 26).await;
    let identity = cluster.controller_identity().await;

    let settings = Settings {
        pod_cidrs: Some(vec![POD_CIDR.parse().expect("CIDR")]),
        families: vec![Family::V4],
        leak_grace: Duration::from_secs(300),
        sweep_interval: Duration::from_secs(60),
        default_pool: false,
        strict_affinity: false,
        ip_cooldown: Duration::ZERO,
        max_blocks_per_node: 0,
    };
    let controller = Actor::start(
        "controller",
        CONTROLLER_WORKERS,
        &identity.kubeconfig,
        PATCH_CONCURRENCY + WRITE_CONCURRENCY,
    )
    .await;
    let scheduler = Actor::start(
        "scheduler",
        1,
        cluster.plane.kubeconfig_path(),
        create_concurrency,
    )
    .await;
    let running = InProcess::start(&controller, settings, &identity.namespace);
    wait_until_leading(&cluster, &running, patience).await;

    let pod_watch = Watch::start(
        Api::<Pod>::namespaced(cluster.admin.clone(), NAMESPACE),
        annotated,
    )
    .await;
    let block_watch = Watch::start(Api::<IPAMBlock>::all(cluster.admin.clone()), |_| false).await;
    let requests = creates(NAMESPACE, pods, nodes);

    let before = Requests::read(&cluster.admin).await;
    let (apiserver_before, etcd_before) = cluster.processes.cpu();
    let controller_before = controller.cpu_seconds();
    let scheduler_before = scheduler.cpu_seconds();
    let process_before = cpu_seconds(std::process::id());
    let start = Instant::now();
    let created = scheduler
        .run(create_pods(
            scheduler.client.clone(),
            requests.into_iter(),
            create_concurrency,
            None,
        ))
        .await;
    let all_created = start.elapsed();
    let annotated_by_then = pod_watch.marked_count();
    let done = pod_watch.wait_marked(pods, patience).await;
    let marks = pod_watch.marks();
    let last = marks.values().max().copied().unwrap_or(start);
    let (apiserver_after, etcd_after) = cluster.processes.cpu();
    let controller_cpu = controller.cpu_seconds() - controller_before;
    let scheduler_cpu = scheduler.cpu_seconds() - scheduler_before;
    let process_cpu = used(process_before, cpu_seconds(std::process::id()));
    let writes = Requests::read(&cluster.admin).await.since(&before);

    let burst = last.saturating_duration_since(start);
    println!("burst_create_seconds: {}", secs(all_created));
    println!("burst_annotated_when_all_created: {annotated_by_then}");
    println!("burst_annotated: {done}");
    if done < pods {
        println!("burst_timed_out_after_seconds: {}", secs(start.elapsed()));
    }
    println!("burst_seconds: {}", secs(burst));
    let assign_rate = done as f64 / burst.as_secs_f64();
    println!("burst_assignment_pods_per_second: {assign_rate:.0}");
    // After the last create returned, the controller no longer shares the API server and the
    // CPUs with the creates.
    let tail = burst.saturating_sub(all_created);
    let tail_rate = done.saturating_sub(annotated_by_then) as f64 / tail.as_secs_f64();
    println!("burst_tail_seconds: {}", secs(tail));
    println!("burst_tail_pods_per_second: {tail_rate:.0}");
    let apiserver_cpu = used(apiserver_before, apiserver_after);
    let etcd_cpu = used(etcd_before, etcd_after);
    println!("burst_apiserver_cpu_seconds: {}", cpu(apiserver_cpu));
    println!("burst_etcd_cpu_seconds: {}", cpu(etcd_cpu));
    println!("burst_controller_cpu_seconds: {controller_cpu:.2}");
    println!("burst_scheduler_cpu_seconds: {scheduler_cpu:.2}");
    println!(
        "burst_bench_process_cpu_seconds: {} (controller, scheduler and the benchmark's watches)",
        cpu(process_cpu)
    );

    // Latency of each pod: from its create request to the watch showing its annotation.
    let mut latencies: Vec<Duration> = (0..pods)
        .filter_map(|i| {
            let seen = marks.get(&format!("{NAMESPACE}/{}", pod_name(i)))?;
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

    // Writes the API server answered from just before the first create until every pod was
    // seen annotated: the creates, the controller's, and the server's own (its Lease).
    writes.print_writes("burst");
    writes.print_waits("burst");
    let creates = writes.writes_to("pods", &["POST"]);
    let block_writes = writes.writes_to("ipamblocks.rangepool.dev", &[]);
    let pod_writes = writes.writes_to("pods", &[]) - creates;
    let other_writes = writes.writes() - creates;
    let per_pod = |n: u64| n as f64 / pods as f64;
    println!("burst_block_writes_per_pod: {:.3}", per_pod(block_writes));
    println!(
        "burst_pod_writes_per_pod: {:.3} (besides the create)",
        per_pod(pod_writes)
    );
    println!(
        "burst_writes_per_pod: {:.3} (every write but the creates, refused ones too; target <= 1.1)",
        per_pod(other_writes)
    );
    print_phases(&pod_watch, &block_watch, start, slot);
    let metrics = running.metrics().await;
    for line in metric_lines(&metrics, "rangepool_write_conflicts")
        .into_iter()
        .chain(metric_lines(&metrics, "rangepool_failures"))
        .chain(metric_lines(&metrics, "rangepool_allocations"))
    {
        println!("burst_metric: {line}");
    }

    // What is written once the burst is over.
    let settled = Requests::read(&cluster.admin).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    Requests::read(&cluster.admin)
        .await
        .since(&settled)
        .print_writes("burst_after_3s");
    println!("burst_consistent: {}", check_consistency(&cluster).await);

    // The baseline, with the controller stopped so that it leaves the pods to the plain client.
    running.stop().await;
    drop(controller);
    let baseline = baseline(&cluster, &scheduler, &identity.kubeconfig, pods, nodes).await;
    let ratio = baseline.seconds / burst.as_secs_f64();
    let patch_ratio = assign_rate / baseline.patch_rate;
    let tail_ratio = tail_rate / baseline.patch_rate;
    println!(
        "assignment_vs_baseline_ratio: {ratio:.3} (target >= 0.8; the baseline's seconds over the burst's, both from the first create until the watch saw the last pod annotated)"
    );
    println!(
        "assignment_vs_patch_rate_ratio: {patch_ratio:.3} (the burst's pods per second over the baseline's patches per second)"
    );
    println!(
        "tail_vs_patch_ratio: {tail_ratio:.3} (annotations per second after the last create, over the baseline's patches per second)"
    );
    println!("burst_loadavg_at_end: {}", loadavg());
    Outcome {
        burst_seconds: burst.as_secs_f64(),
        baseline_seconds: baseline.seconds,
        ratio,
        patch_ratio,
        tail_ratio,
        block_writes_per_pod: per_pod(block_writes),
        pod_writes_per_pod: per_pod(pod_writes),
        writes_per_pod: per_pod(other_writes),
        apiserver_cpu: apiserver_cpu.unwrap_or(f64::NAN),
        etcd_cpu: etcd_cpu.unwrap_or(f64::NAN),
        controller_cpu,
        baseline_apiserver_cpu: baseline.apiserver_cpu.unwrap_or(f64::NAN),
    }
}

/// What the baseline measured.
struct Baseline {
    /// From the first create until the watch saw every pod patched.
    seconds: f64,
    patch_rate: f64,
    apiserver_cpu: Option<f64>,
}

/// The raw rate of the same work without the controller: the scheduler creates `pods` pods as
/// in the burst, then a plain client with the controller's identity and connections
/// merge-patches an annotation onto each, `PATCH_CONCURRENCY` in flight, with the controller's
/// own patch function (one merge patch carrying the UID as a precondition).
async fn baseline(
    cluster: &Cluster,
    scheduler: &Actor,
    kubeconfig: &std::path::Path,
    pods: usize,
    nodes: usize,
) -> Baseline {
    let patcher = Actor::start("patcher", CONTROLLER_WORKERS, kubeconfig, PATCH_CONCURRENCY).await;
    let watch = Watch::start(
        Api::<Pod>::namespaced(cluster.admin.clone(), BASELINE_NAMESPACE),
        annotated,
    )
    .await;
    let requests = creates(BASELINE_NAMESPACE, pods, nodes);
    let patience = Duration::from_secs(env_usize("BENCH_TIMEOUT_SECS", 600) as u64);
    let before = Requests::read(&cluster.admin).await;
    let (apiserver_before, etcd_before) = cluster.processes.cpu();
    let start = Instant::now();
    let created = scheduler
        .run(create_pods(
            scheduler.client.clone(),
            requests.into_iter(),
            pods,
            None,
        ))
        .await;
    let all_created = start.elapsed();
    let patch_start = Instant::now();
    let targets: Vec<(String, String)> = created
        .into_iter()
        .enumerate()
        .map(|(i, (uid, _))| (pod_name(i), uid))
        .collect();
    patcher
        .run(patch_all(patcher.client.clone(), targets))
        .await;
    let done = watch.wait_marked(pods, patience).await;
    let last = watch.marks().values().max().copied().unwrap_or(start);
    let (apiserver_after, etcd_after) = cluster.processes.cpu();
    let writes = Requests::read(&cluster.admin).await.since(&before);

    let seconds = last.saturating_duration_since(start);
    let patching = last.saturating_duration_since(patch_start);
    let patch_rate = done as f64 / patching.as_secs_f64();
    println!("baseline_create_seconds: {}", secs(all_created));
    println!("baseline_patch_seconds: {}", secs(patching));
    println!("baseline_patched: {done}");
    println!("baseline_seconds: {}", secs(seconds));
    println!(
        "baseline_pods_per_second: {:.0}",
        done as f64 / seconds.as_secs_f64()
    );
    println!("baseline_patches_per_second: {patch_rate:.0}");
    let apiserver_cpu = used(apiserver_before, apiserver_after);
    println!("baseline_apiserver_cpu_seconds: {}", cpu(apiserver_cpu));
    println!(
        "baseline_etcd_cpu_seconds: {}",
        cpu(used(etcd_before, etcd_after))
    );
    writes.print_writes("baseline");
    writes.print_waits("baseline");
    Baseline {
        seconds: seconds.as_secs_f64(),
        patch_rate,
        apiserver_cpu,
    }
}

/// Patches a (fake) assignment onto every pod of the baseline's namespace.
async fn patch_all(client: Client, pods: Vec<(String, String)>) {
    futures::stream::iter(pods.into_iter().enumerate())
        .map(|(i, (name, uid))| {
            let client = client.clone();
            async move {
                let address = Ipv4Addr::new(10, 250, (i / 250) as u8, (i % 250) as u8);
                let assignment = Assignment {
                    ipv4: Some(FamilyAssignment {
                        address: IpAddr::V4(address),
                        pool: POOL.into(),
                        block: format!("10-250-{}-0-24", i / 250),
                    }),
                    ..Default::default()
                };
                rangepool_controller::pods::annotate(
                    &client,
                    BASELINE_NAMESPACE,
                    &name,
                    &uid,
                    &assignment,
                )
                .await
                .expect("baseline patch");
            }
        })
        .buffer_unordered(PATCH_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
}

/// When the controller's work showed in the watches, and with `slot_ms` > 0 what they saw in
/// each slot of that many milliseconds: pods created, block writes, annotations.
fn print_phases(pods: &Watch, blocks: &Watch, start: Instant, slot_ms: usize) {
    let at = |i: Instant| i.saturating_duration_since(start).as_secs_f64();
    let block_events = blocks.events();
    let mut annotations: Vec<Instant> = pods.marks().into_values().collect();
    annotations.sort();
    if let Some((first, _)) = block_events.first() {
        println!("burst_first_block_write_seen_at_seconds: {:.3}", at(*first));
    }
    if let (Some(first), Some(last)) = (annotations.first(), annotations.last()) {
        println!("burst_first_annotation_seen_at_seconds: {:.3}", at(*first));
        println!("burst_last_annotation_seen_at_seconds: {:.3}", at(*last));
    }
    println!("burst_block_events_seen: {}", block_events.len());
    if slot_ms == 0 {
        return;
    }
    let slot = |i: Instant| i.saturating_duration_since(start).as_millis() / slot_ms as u128;
    let mut slots: BTreeMap<u128, [u32; 3]> = BTreeMap::new();
    for (i, change) in pods.events() {
        if change == Change::Added {
            slots.entry(slot(i)).or_default()[0] += 1;
        }
    }
    for (i, _) in block_events {
        slots.entry(slot(i)).or_default()[1] += 1;
    }
    for i in annotations {
        slots.entry(slot(i)).or_default()[2] += 1;
    }
    for (n, [creates, blocks, annotations]) in slots {
        println!(
            "burst_timeline_{:05}ms: creates={creates} block_writes={blocks} annotations={annotations}",
            n * slot_ms as u128
        );
    }
}

/// Waits until the controller leads and has written the pool's status, then until the API
/// server has answered no write for half a second, so the burst starts from an idle controller.
async fn wait_until_leading(cluster: &Cluster, controller: &InProcess, patience: Duration) {
    let deadline = Instant::now() + patience;
    let pools: Api<IPPool> = Api::all(cluster.admin.clone());
    loop {
        let leading = metric_lines(&controller.metrics().await, "rangepool_leader")
            .iter()
            .any(|l| l.ends_with(" 1"));
        let status = pools
            .get(POOL)
            .await
            .ok()
            .and_then(|p| p.allocatable().map(|c| c.status.clone()));
        if leading && status.as_deref() == Some("True") {
            break;
        }
        assert!(Instant::now() < deadline, "the controller never led");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut writes = Requests::read(&cluster.admin).await.writes();
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_millis(500) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = Requests::read(&cluster.admin).await.writes();
        if now != writes {
            writes = now;
            quiet_since = Instant::now();
        }
    }
}

/// Every annotated address is recorded for that pod's UID in the block the annotation names,
/// and no address is given twice.
async fn check_consistency(cluster: &Cluster) -> String {
    let blocks = Api::<IPAMBlock>::all(cluster.admin.clone())
        .list(&ListParams::default())
        .await
        .expect("list blocks");
    let mut recorded: HashMap<IpAddr, (String, String)> = HashMap::new();
    for block in &blocks.items {
        let Ok(cidr) = ipam::cidr::parse_strict(&block.spec.cidr) else {
            return format!("false (block {} has a bad cidr)", block.name_any());
        };
        let Ok(record) = block.spec.to_record() else {
            return format!("false (block {} cannot be read)", block.name_any());
        };
        for a in record.allocations {
            let Some(address) = ipam::cidr::nth_addr(&cidr, a.ordinal) else {
                return format!("false (block {} has a bad ordinal)", block.name_any());
            };
            recorded.insert(address, (a.handle, block.name_any()));
        }
    }
    let pods = Api::<Pod>::namespaced(cluster.admin.clone(), NAMESPACE)
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

fn pod_name(i: usize) -> String {
    format!("web-{i:05}")
}

/// A pod carrying an assigned address.
fn annotated(pod: &Pod) -> bool {
    pod.annotations().contains_key(api::keys::ASSIGNED_IPV4)
}

/// The pre-encoded creates of `pods` pods in `namespace`, spread round-robin over `nodes` nodes.
fn creates(namespace: &str, pods: usize, nodes: usize) -> Vec<PodCreate> {
    (0..pods)
        .map(|i| {
            PodCreate::of(&pod(
                &pod_name(i),
                namespace,
                &node_name(i % nodes),
                BTreeMap::new(),
            ))
        })
        .collect()
}
