//! Memory: the real controller binary, as a separate process with the chart's controller
//! identity, against a real API server that holds a large cluster's pods; its resident set once
//! it has loaded (and verified) everything, and again after it idled.
//!
//! Two ways to get there (`BENCH_MEMORY_MODE`):
//! - `preload` (default): the state a running cluster has — blocks recording every address and
//!   pods annotated accordingly — is created before the controller starts; it only loads and
//!   verifies. The addresses are decided by the controller's own model (the same allocator, the
//!   same block specs), so the controller finds nothing to change.
//! - `assign`: bound pods without addresses; the controller assigns every one.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use api::{Assignment, IPAMBlock, IPPool};
use futures::StreamExt;
use ipam::cidr::Family;
use ipam::planner::PodContext;
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::{Api, ResourceExt};
use rangepool_controller::model::{BlockWrite, Model};

use crate::apiserver::Requests;
use crate::cluster::{
    Cluster, PodCreate, cpu, create_pods, env_usize, http_get, mib, node_name, pod, secs,
};
use crate::procfs::{cpu_seconds, loadavg, rss_kib, used};
use crate::watch::Watch;

const POD_CIDR: &str = "10.0.0.0/8";
const POOL: &str = "bench";
const BLOCK_SIZE: i32 = 26;

/// The controller binary; killed (and reaped) when dropped, whatever happened.
struct ControllerProcess {
    child: Child,
    addr: mpsc::Receiver<SocketAddr>,
    warnings: std::sync::Arc<std::sync::Mutex<(u64, Vec<String>)>>,
}

impl ControllerProcess {
    /// With the Lease in `lease_namespace`, where the chart's Role lets the controller hold it.
    fn spawn(kubeconfig: &std::path::Path, lease_namespace: &str) -> ControllerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rangepool-controller"))
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--pod-cidr", POD_CIDR])
            .args(["--metrics-addr", "127.0.0.1:0"])
            .arg("--no-default-pool")
            .args(["--log-format", "json"])
            .args(["--lease-namespace", lease_namespace])
            .args(["--identity", "bench-controller"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the controller binary starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, addr) = mpsc::channel();
        let warnings = std::sync::Arc::new(std::sync::Mutex::new((0, Vec::new())));
        let seen = warnings.clone();
        // Drain stderr (a full pipe would stall the controller), find the metrics address, and
        // keep the last few warnings.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                let fields = &v["fields"];
                if fields["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("serving /metrics"))
                    && let Some(a) = fields["addr"].as_str().and_then(|a| a.parse().ok())
                {
                    let _ = tx.send(a);
                }
                if matches!(v["level"].as_str(), Some("WARN" | "ERROR")) {
                    let mut w = seen.lock().expect("warnings lock");
                    w.0 += 1;
                    if w.1.len() < 5 {
                        w.1.push(line);
                    }
                }
            }
        });
        ControllerProcess {
            child,
            addr,
            warnings,
        }
    }

    async fn metrics_addr(&self, patience: Duration) -> SocketAddr {
        let deadline = Instant::now() + patience;
        loop {
            if let Ok(a) = self.addr.try_recv() {
                return a;
            }
            assert!(
                Instant::now() < deadline,
                "the controller never said where it serves /metrics"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn run_memory() {
    let pods = env_usize("BENCH_MEMORY_PODS", 150_000);
    let nodes = env_usize("BENCH_MEMORY_NODES", 5_000).max(1);
    let namespaces = env_usize("BENCH_MEMORY_NAMESPACES", 50).max(1);
    let concurrency = env_usize("BENCH_SETUP_CONCURRENCY", 128).max(1);
    let idle = Duration::from_secs(env_usize("BENCH_IDLE_SECS", 10) as u64);
    let patience = Duration::from_secs(env_usize("BENCH_TIMEOUT_SECS", 3600) as u64);
    let mode = std::env::var("BENCH_MEMORY_MODE").unwrap_or_else(|_| "preload".into());
    let preload = match mode.as_str() {
        "preload" => true,
        "assign" => false,
        other => panic!("BENCH_MEMORY_MODE={other:?}: use preload or assign"),
    };
    println!("memory_pods: {pods}");
    println!("memory_nodes: {nodes}");
    println!("memory_namespaces: {namespaces}");
    println!("memory_mode: {mode}");
    println!("memory_setup_concurrency: {concurrency}");
    println!("memory_loadavg_at_start: {}", loadavg());

    let setup = Instant::now();
    let cluster = Cluster::start().await;
    println!("memory_kubernetes_version: {}", cluster.plane.version());
    cluster.pool(POOL, POD_CIDR, BLOCK_SIZE).await;
    cluster.nodes(nodes, concurrency).await;
    for n in 0..namespaces {
        cluster.namespace(&namespace(n)).await;
    }
    let identity = cluster.controller_identity().await;
    let nodes_done = setup.elapsed();
    println!(
        "memory_setup_nodes_namespaces_seconds: {}",
        secs(nodes_done)
    );

    // Who gets which address, decided by the controller's own model with placeholder handles
    // (the real handles are the UIDs the API server gives the pods).
    let mut model = Model::new(false);
    let plan: Vec<Option<api::FamilyAssignment>> = if preload {
        let pool = IPPool::new(
            POOL,
            api::IPPoolSpec {
                cidr: POD_CIDR.into(),
                block_size: Some(BLOCK_SIZE),
                ..Default::default()
            },
        );
        model.set_pools(&[pool.to_input()], Some(&[POD_CIDR.parse().expect("CIDR")]));
        let empty = BTreeMap::new();
        (0..pods)
            .map(|i| {
                let (namespace, name, node) =
                    (namespace(i % namespaces), pod_name(i), node_name(i % nodes));
                let context = PodContext {
                    namespace: &namespace,
                    name: &name,
                    node: &node,
                    annotations: &empty,
                    node_labels: Some(&empty),
                    namespace_meta: Some((&empty, &empty)),
                    confirmed: &[],
                    running: &[],
                    statefulset: None,
                };
                let placed = model
                    .assign(&context, &placeholder(i), &[Family::V4])
                    .expect("the pool has room");
                placed.into_iter().next().map(|(v4, _)| v4)
            })
            .collect()
    } else {
        vec![None; pods]
    };
    // Built as they are sent: 150,000 encoded pods held at once would cost hundreds of MiB.
    let fixtures = plan.iter().enumerate().map(|(i, planned)| {
        let annotations: BTreeMap<String, String> = planned
            .as_ref()
            .map(|v4| {
                Assignment {
                    ipv4: Some(v4.clone()),
                    ..Default::default()
                }
                .to_annotations()
                .into_iter()
                .filter_map(|(k, v)| Some((k.to_owned(), v?)))
                .collect()
            })
            .unwrap_or_default();
        PodCreate::of(&pod(
            &pod_name(i),
            &namespace(i % namespaces),
            &node_name(i % nodes),
            annotations,
        ))
    });
    let pods_start = Instant::now();
    let uids: Vec<String> = create_pods(
        cluster.admin.clone(),
        fixtures,
        concurrency,
        Some("memory_setup_progress"),
    )
    .await
    .into_iter()
    .map(|(uid, _)| uid)
    .collect();
    let pods_done = pods_start.elapsed();
    drop(plan);

    let blocks_start = Instant::now();
    let mut blocks = 0;
    if preload {
        let writes: Vec<(String, api::IPAMBlockSpec)> = model
            .take_writes()
            .into_iter()
            .filter_map(|w| match w {
                BlockWrite::Create { name, spec } => {
                    let mut record = spec.to_record().expect("the model's own block");
                    for a in &mut record.allocations {
                        let i: usize = a
                            .handle
                            .strip_prefix("placeholder-")
                            .and_then(|i| i.parse().ok())
                            .expect("a placeholder handle");
                        a.handle = uids[i].clone();
                    }
                    Some((name, api::IPAMBlockSpec::from_record(&record)))
                }
                _ => None,
            })
            .collect();
        blocks = writes.len();
        let api: Api<IPAMBlock> = Api::all(cluster.admin.clone());
        futures::stream::iter(writes)
            .map(|(name, spec)| {
                let api = api.clone();
                async move {
                    // As the controller creates a block that records addresses: with its
                    // finalizer, so that loading finds nothing to write.
                    let mut block = IPAMBlock::new(&name, spec);
                    block.metadata.finalizers = Some(vec![api::keys::FINALIZER.to_owned()]);
                    api.create(&PostParams::default(), &block)
                        .await
                        .expect("block created");
                }
            })
            .buffer_unordered(concurrency)
            .collect::<Vec<()>>()
            .await;
    }
    let blocks_done = blocks_start.elapsed();
    drop(model);
    drop(uids);
    println!("memory_setup_pods_seconds: {}", secs(pods_done));
    println!(
        "memory_setup_pods_per_second: {:.0}",
        pods as f64 / pods_done.as_secs_f64()
    );
    println!("memory_setup_blocks: {blocks}");
    println!("memory_setup_blocks_seconds: {}", secs(blocks_done));
    println!("memory_setup_seconds: {}", secs(setup.elapsed()));
    cluster.processes.print_rss("memory_setup");

    // In assign mode, the annotations as the controller writes them.
    let watch = if preload {
        None
    } else {
        Some(Watch::start(Api::<Pod>::all(cluster.admin.clone()), annotated).await)
    };
    let annotated_count = || watch.as_ref().map_or(pods, Watch::marked_count);
    let before = Requests::read(&cluster.admin).await;

    let started = Instant::now();
    let (apiserver_before, etcd_before) = cluster.processes.cpu();
    let controller = ControllerProcess::spawn(&identity.kubeconfig, &identity.namespace);
    let pid = controller.child.id();
    let addr = controller.metrics_addr(patience).await;
    let deadline = Instant::now() + patience;
    while http_get(addr, "/readyz").await.map(|(s, _)| s) != Some(200) {
        assert!(Instant::now() < deadline, "the controller never got ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready = started.elapsed();
    let rss_ready = rss_kib(pid);

    // Loaded: the pool's status counts every address (written after the leader's first step,
    // which checks every pod against the blocks); in assign mode, every pod is annotated too.
    let pools: Api<IPPool> = Api::all(cluster.admin.clone());
    let mut last_report = Instant::now();
    loop {
        let allocated = pools
            .get(POOL)
            .await
            .ok()
            .and_then(|p| p.status.and_then(|s| s.allocated));
        if allocated == Some(pods as i64) && annotated_count() >= pods {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the controller did not account for every pod in time (pool status allocated: {allocated:?}, pods annotated: {})",
            annotated_count()
        );
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            println!(
                "memory_progress: {:.0} s, pool status allocated {allocated:?}, pods annotated {}",
                started.elapsed().as_secs_f64(),
                annotated_count()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let loaded = started.elapsed();
    let rss_loaded = rss_kib(pid);
    let controller_cpu = cpu_seconds(pid);
    let (apiserver_after, etcd_after) = cluster.processes.cpu();
    tokio::time::sleep(idle).await;
    let rss_idle = rss_kib(pid);
    let writes = Requests::read(&cluster.admin).await.since(&before);

    println!("memory_controller_ready_seconds: {}", secs(ready));
    println!("memory_controller_loaded_seconds: {}", secs(loaded));
    // Who was busy while the controller loaded: the controller, or the API server serving it.
    println!(
        "memory_controller_cpu_seconds_until_loaded: {}",
        cpu(controller_cpu)
    );
    println!(
        "memory_apiserver_cpu_seconds_until_loaded: {} (serving the controller's lists and watches, and its writes)",
        cpu(used(apiserver_before, apiserver_after))
    );
    println!(
        "memory_etcd_cpu_seconds_until_loaded: {}",
        cpu(used(etcd_before, etcd_after))
    );
    let show = |label: &str, rss: Option<(u64, u64)>| match rss {
        Some((rss, hwm)) => {
            println!("memory_{label}_vmrss_mib: {}", mib(rss));
            println!("memory_{label}_vmhwm_mib: {}", mib(hwm));
        }
        None => println!("memory_{label}_vmrss_mib: unavailable (process gone?)"),
    };
    show("at_ready", rss_ready);
    show("at_loaded", rss_loaded);
    show(&format!("after_idle_{}s", idle.as_secs()), rss_idle);
    if let Some((rss, hwm)) = rss_idle {
        println!(
            "memory_vmrss_per_1000_pods_mib: {:.2}",
            rss as f64 / 1024.0 / pods as f64 * 1000.0
        );
        println!(
            "memory_target: VmRSS {} MiB, VmHWM {} MiB (target <= 250 MiB)",
            mib(rss),
            mib(hwm)
        );
        println!();
        println!("| measure | this run | target |");
        println!("| --- | --- | --- |");
        println!(
            "| controller RSS, {pods} pods / {nodes} nodes, real API server ({mode}) | {} MiB (peak {} MiB) | <= 250 MiB |",
            mib(rss),
            mib(hwm)
        );
    }
    cluster.processes.print_rss("memory_loaded");
    // Every write from the controller's start until after the idle, the API server's own too.
    writes.print_writes("memory_all_clients");
    let warnings = controller.warnings.lock().expect("warnings lock").clone();
    println!("memory_controller_warnings: {}", warnings.0);
    for w in warnings.1 {
        println!("memory_controller_warning: {w}");
    }
    println!("memory_loadavg_at_end: {}", loadavg());
    drop(controller);
}

/// A pod carrying an assigned address.
fn annotated(pod: &Pod) -> bool {
    pod.annotations().contains_key(api::keys::ASSIGNED_IPV4)
}

fn namespace(n: usize) -> String {
    format!("team-{n:03}")
}

fn pod_name(i: usize) -> String {
    format!("app-{:04}-{i:06}", i % 997)
}

fn placeholder(i: usize) -> String {
    format!("placeholder-{i}")
}
