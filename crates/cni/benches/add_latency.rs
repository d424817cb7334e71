//! ADD latency of `rangepool-ipam` for a pod whose assignment is already there, three ways side
//! by side in the same run: through the node agent (`ipam.agentSocket`), direct (the plugin
//! reads the API server itself with `ipam.kubeconfig`), and Debian's `host-local` IPAM plugin
//! invoked the same way.
//!
//! Each call is a fresh process, as a container runtime starts it: environment and stdin in,
//! result out. Both rangepool paths talk to a real kube-apiserver and etcd (envtest) on
//! 127.0.0.1 over TLS, with the chart's node credentials (one GET of the pod, one GET of the
//! block, both served from the API server's watch cache; no write): direct, the plugin builds its client and makes a TLS handshake per call;
//! through the agent, the built `rangepool-agent` runs as a separate process for the whole run,
//! with its one warm client, and the plugin only talks to it over its unix socket. host-local
//! writes its files in a temporary data directory.
//!
//! Two nodes are measured: one where the pod is alone, and one running [`BUSY`] other pods, whose
//! allocations fill most of the pod's block for rangepool and whose files sit in host-local's
//! store (host-local's ADD looks through every file; the size of rangepool's answer grows with
//! the block). Each host-local ADD is undone by an untimed DEL, so that its store stays the
//! node's size instead of growing by a file per call, as rangepool's block does (ADD writes
//! nothing). Calls of the three alternate so that machine noise hits them alike, and each node is
//! measured in a few rounds so that a reader sees how much the numbers move between runs.
//!
//! Run with `make bench-cni` (`cargo bench -p rangepool-cni --bench add_latency`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api::{Assignment, BlockAllocation, FamilyAssignment, IPAMBlock, IPAMBlockSpec};
use envtest::{ChartIdentity, ControlPlane};
use ipam::cidr::block_name;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const ROUNDS: usize = 3;
const CALLS: usize = 120;
const WARMUP: usize = 10;
/// Other pods on the busy node (of the 64 addresses of its /26 block).
const BUSY: usize = 60;
const PLUGIN: &str = env!("CARGO_BIN_EXE_rangepool-ipam");
const AGENT: &str = env!("CARGO_BIN_EXE_rangepool-agent");
const HOST_LOCAL: &str = "/usr/lib/cni/host-local";
/// The ways measured, in the order they are printed.
const AGENT_WAY: &str = "rangepool-ipam through the node agent";
const DIRECT_WAY: &str = "rangepool-ipam direct (kubeconfig)";
const HOST_LOCAL_WAY: &str = "host-local (files in a temp dir)";

/// One node to measure: the pod whose sandbox is set up over and over, and the configurations.
struct Node {
    title: String,
    pod: Pod,
    /// rangepool-ipam with `kubeconfig`; through the agent, the same with `agentSocket`
    /// instead ([`with_socket`]).
    direct: Value,
    theirs: Value,
    /// host-local's data directory.
    _data: tempfile::TempDir,
}

/// The agent process, stopped at the end of the run.
struct RunningAgent {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl RunningAgent {
    fn start(kubeconfig: &Path) -> RunningAgent {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let child = Command::new(AGENT)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--socket")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the agent starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "the agent does not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
        RunningAgent {
            child,
            socket,
            _dir: dir,
        }
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let host_local = Path::new(HOST_LOCAL).exists();
    if !host_local {
        println!(
            "host-local not found at {HOST_LOCAL}: run tests/tools/install-cni-plugins.sh; measuring rangepool-ipam alone"
        );
    }
    // The control plane's helper tasks (the kubelet stand-in) keep running on the runtime's
    // worker thread while this thread runs plugins.
    let (plane, credentials, nodes) = runtime.block_on(prepare(host_local));

    println!(
        "ADD latency, one process per call, {ROUNDS} rounds of {CALLS} calls per way and node (after {WARMUP} warm-up calls);"
    );
    println!(
        "rangepool-ipam against kube-apiserver {} with the chart's node credentials (GET pod + GET block over TLS),",
        plane.version()
    );
    println!(
        "through the node agent (a separate process, one warm client, unix socket) and direct (a client and TLS handshake per call)"
    );
    let agent = RunningAgent::start(&credentials);
    let mut call = 0;
    for node in &nodes {
        println!("{}:", node.title);
        let agent_conf = with_socket(&node.direct, &agent.socket);
        let mut all: Vec<(&str, Vec<Duration>)> = Vec::new();
        for round in 0..ROUNDS {
            let warmup = if round == 0 { WARMUP } else { 0 };
            let mut ways: Vec<(&str, Vec<Duration>)> = vec![
                (AGENT_WAY, Vec::with_capacity(CALLS)),
                (DIRECT_WAY, Vec::with_capacity(CALLS)),
            ];
            if host_local {
                ways.push((HOST_LOCAL_WAY, Vec::with_capacity(CALLS)));
            }
            for i in 0..warmup + CALLS {
                let container = format!("bench{call:05}");
                call += 1;
                let through = run(PLUGIN, "ADD", &container, &node.pod, &agent_conf);
                let direct = run(PLUGIN, "ADD", &container, &node.pod, &node.direct);
                let theirs = host_local.then(|| {
                    let took = run(HOST_LOCAL, "ADD", &container, &node.pod, &node.theirs);
                    run(HOST_LOCAL, "DEL", &container, &node.pod, &node.theirs);
                    took
                });
                if i >= warmup {
                    ways[0].1.push(through);
                    ways[1].1.push(direct);
                    if let Some(t) = theirs {
                        ways[2].1.push(t);
                    }
                }
            }
            println!(" round {}/{ROUNDS}:", round + 1);
            compare(&mut ways);
            if all.is_empty() {
                all = ways;
            } else {
                for (total, (_, samples)) in all.iter_mut().zip(ways) {
                    total.1.extend(samples);
                }
            }
        }
        println!(
            " all {ROUNDS} rounds ({} calls per way):",
            all.first().map_or(0, |(_, s)| s.len())
        );
        compare(&mut all);
    }
    runtime.block_on(async move {
        drop(agent);
        drop(nodes);
        drop(plane);
    });
}

/// `conf` with the agent's socket instead of the kubeconfig.
fn with_socket(conf: &Value, socket: &Path) -> Value {
    let mut conf = conf.clone();
    let ipam = conf["ipam"].as_object_mut().unwrap();
    ipam.remove("kubeconfig");
    ipam.insert("agentSocket".into(), json!(socket));
    conf
}

/// Prints each way's numbers and its ratio to host-local, the last way when it was measured.
fn compare(ways: &mut [(&str, Vec<Duration>)]) {
    let stats: Vec<(&str, Duration, Duration)> = ways
        .iter_mut()
        .map(|(name, samples)| {
            let (median, p99) = report(name, samples);
            (*name, median, p99)
        })
        .collect();
    let Some(&(HOST_LOCAL_WAY, their_median, their_p99)) = stats.last() else {
        return;
    };
    for (name, median, p99) in &stats[..stats.len() - 1] {
        println!(
            "   ratio to host-local, {name:<38} median {:.2}x, p99 {:.2}x",
            ratio(*median, their_median),
            ratio(*p99, their_p99)
        );
    }
    println!("   (target: through the node agent, median <= 1.5x)");
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn report(name: &str, samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let pick = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i]
    };
    let (median, p99) = (pick(0.5), pick(0.99));
    let mean = samples.iter().sum::<Duration>() / u32::try_from(samples.len()).unwrap();
    println!(
        "   {name:<40} median {:>7.2} ms   p99 {:>7.2} ms   mean {:>7.2} ms   min {:>7.2} ms",
        ms(median),
        ms(p99),
        ms(mean),
        ms(samples[0])
    );
    (median, p99)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One call (`ADD`, `DEL`) through a fresh process; panics unless it succeeds.
fn run(binary: &str, command: &str, container: &str, pod: &Pod, conf: &Value) -> Duration {
    let args = format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_UID={}",
        pod.namespace().unwrap(),
        pod.name_any(),
        pod.uid().unwrap()
    );
    let input = conf.to_string();
    let started = Instant::now();
    let mut child = Command::new(binary)
        .env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container)
        .env("CNI_NETNS", "/var/run/netns/bench")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .env("CNI_ARGS", &args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("plugin starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "{binary} {command} failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    elapsed
}

/// A control plane with the CRDs and the chart's RBAC, and the two nodes: a pod with its
/// assignment on each, as the controller leaves them, and host-local's store filled alike.
async fn prepare(host_local: bool) -> (ControlPlane, PathBuf, Vec<Node>) {
    let plane = ControlPlane::start().await.expect("control plane starts");
    let client = plane.client().unwrap();
    let crds: Vec<_> = api::crd::all().into_iter().map(|(_, crd)| crd).collect();
    plane.install_crds(&crds).await.unwrap();
    let credentials = plane.chart_identity(ChartIdentity::Node).await.unwrap();
    plane
        .create_namespace("bench", BTreeMap::new(), BTreeMap::new())
        .await
        .unwrap();
    let mut nodes = Vec::new();
    for (name, block, others) in [
        ("alone", "10.99.0.128/26", 0),
        ("busy", "10.99.0.192/26", BUSY),
    ] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "bench"},
            "spec": {"nodeName": format!("node-{name}"), "containers": [{"name": "app", "image": "app:1"}]}
        }))
        .unwrap();
        let pod = Api::<Pod>::namespaced(client.clone(), "bench")
            .create(&PostParams::default(), &pod)
            .await
            .unwrap();
        let net: IpNet = block.parse().unwrap();
        assign(&client, &pod, &net, others).await;
        let data = tempfile::tempdir().unwrap();
        let node = Node {
            title: format!("a node running the pod and {others} other pods"),
            direct: json!({
                "cniVersion": "1.0.0", "name": "bench", "type": "bridge",
                "ipam": {"type": "rangepool-ipam", "kubeconfig": credentials.kubeconfig,
                         "prefix": {"ipv4": 24}, "gateway": {"ipv4": "10.99.0.1"}}
            }),

            theirs: json!({
                "cniVersion": "1.0.0", "name": "bench", "type": "bridge",
                "ipam": {"type": "host-local", "dataDir": data.path(),
                         "ranges": [[{"subnet": "10.98.0.0/16", "gateway": "10.98.0.1"}]]}
            }),
            pod,
            _data: data,
        };
        if host_local {
            for n in 0..others {
                run(HOST_LOCAL, "ADD", &other(n), &node.pod, &node.theirs);
            }
        }
        nodes.push(node);
    }
    (plane, credentials.kubeconfig, nodes)
}

/// The sandbox of another pod on the node.
fn other(n: usize) -> String {
    format!("other{n:03}")
}

/// The pod's allocation at ordinal 2 of `net`'s block, with `others` running pods' allocations
/// at 3 and up, and the pod's annotations.
async fn assign(client: &Client, pod: &Pod, net: &IpNet, others: usize) {
    let mut allocations: BTreeMap<String, BlockAllocation> = (0..others)
        .map(|n| {
            let allocation = BlockAllocation {
                handle: format!("00000000-0000-0000-0000-{n:012}"),
                namespace: "bench".into(),
                pod: format!("other-{n}"),
                container: None,
                sequence: 1,
            };
            ((n + 3).to_string(), allocation)
        })
        .collect();
    allocations.insert(
        "2".to_owned(),
        BlockAllocation {
            handle: pod.uid().unwrap(),
            namespace: "bench".into(),
            pod: pod.name_any(),
            container: None,
            sequence: 1,
        },
    );
    let name = block_name(net);
    let block = IPAMBlock::new(
        &name,
        IPAMBlockSpec {
            cidr: net.to_string(),
            pool: "payments".into(),
            affinity: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            sequence_number: 1,
            allocations,
            ..Default::default()
        },
    );
    Api::<IPAMBlock>::all(client.clone())
        .create(&PostParams::default(), &block)
        .await
        .unwrap();
    let address = net.hosts().nth(1).unwrap();
    let assignment = Assignment {
        ipv4: Some(FamilyAssignment {
            address,
            pool: "payments".into(),
            block: name,
        }),
        ..Assignment::default()
    };
    let patch = json!({"metadata": {"annotations": assignment.to_annotations()}});
    Api::<Pod>::namespaced(client.clone(), "bench")
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
}
