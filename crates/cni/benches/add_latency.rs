//! ADD latency of `rangepool-ipam` for a pod whose assignment is already there, next to
//! Debian's `host-local` IPAM plugin invoked the same way, in the same run.
//!
//! Each call is a fresh process, as a container runtime starts it: environment and stdin in,
//! result out. rangepool-ipam talks to the in-repo test API server on 127.0.0.1 (one GET of the
//! pod, one PATCH of the block); host-local writes its files in a temporary data directory.
//! Calls of the two plugins alternate so that machine noise hits both alike.
//!
//! Run with `make bench-cni` (`cargo bench -p rangepool-cni --bench add_latency`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use api::{Assignment, BlockAllocation, FamilyAssignment, IPAMBlock, IPAMBlockSpec};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use rangepool_testserver::TestServer;
use serde_json::{Value, json};

const CALLS: usize = 200;
const WARMUP: usize = 10;
const PLUGIN: &str = env!("CARGO_BIN_EXE_rangepool-ipam");
const HOST_LOCAL: &str = "/usr/lib/cni/host-local";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // The server keeps serving on the runtime's worker thread while this thread runs plugins.
    let (server, pod) = runtime.block_on(prepare());
    let ours_conf = json!({
        "cniVersion": "1.0.0", "name": "bench", "type": "bridge",
        "ipam": {"type": "rangepool-ipam", "kubeconfig": server.kubeconfig_path(),
                 "prefix": {"ipv4": 24}, "gateway": {"ipv4": "10.99.0.1"}}
    });
    let data = tempfile::tempdir().unwrap();
    let theirs_conf = json!({
        "cniVersion": "1.0.0", "name": "bench", "type": "bridge",
        "ipam": {"type": "host-local", "dataDir": data.path(),
                 "ranges": [[{"subnet": "10.98.0.0/16", "gateway": "10.98.0.1"}]]}
    });
    let host_local = Path::new(HOST_LOCAL).exists();
    if !host_local {
        println!(
            "host-local not found at {HOST_LOCAL}: run tests/tools/install-cni-plugins.sh; measuring rangepool-ipam alone"
        );
    }

    let mut ours = Vec::with_capacity(CALLS);
    let mut theirs = Vec::with_capacity(CALLS);
    for i in 0..WARMUP + CALLS {
        let container = format!("bench{i:05}");
        let t = add(PLUGIN, &container, &pod, &ours_conf);
        let u = host_local.then(|| add(HOST_LOCAL, &container, &pod, &theirs_conf));
        if i >= WARMUP {
            ours.push(t);
            theirs.extend(u);
        }
    }

    println!(
        "ADD latency over {CALLS} calls (after {WARMUP} warm-up calls), one process per call:"
    );
    let (our_median, our_p99) = report("rangepool-ipam (GET pod + PATCH block)", &mut ours);
    if host_local {
        let (their_median, their_p99) = report("host-local (files in a temp dir)", &mut theirs);
        println!(
            "ratio rangepool-ipam / host-local: median {:.2}x, p99 {:.2}x (target: median <= 2x)",
            ratio(our_median, their_median),
            ratio(our_p99, their_p99)
        );
    }
    drop(server);
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
        "  {name:<40} median {:>7.2} ms   p99 {:>7.2} ms   mean {:>7.2} ms   min {:>7.2} ms",
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

/// One ADD through a fresh process; panics unless it succeeds.
fn add(binary: &str, container: &str, pod: &Pod, conf: &Value) -> Duration {
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
        .env("CNI_COMMAND", "ADD")
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
        "{binary} ADD failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    elapsed
}

/// The test server with the CRDs, a pod and its assignment, as the controller leaves them.
async fn prepare() -> (TestServer, Pod) {
    let server = TestServer::start().await.unwrap();
    let client = server.client().unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, crd) in api::crd::all() {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "bench"}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "bench"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "app:1"}]}
    }))
    .unwrap();
    let pod = Api::<Pod>::namespaced(client.clone(), "bench")
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    assign(&client, &pod).await;
    (server, pod)
}

async fn assign(client: &Client, pod: &Pod) {
    let mut allocations = std::collections::BTreeMap::new();
    allocations.insert(
        "2".to_owned(),
        BlockAllocation {
            handle: pod.uid().unwrap(),
            namespace: "bench".into(),
            pod: "web".into(),
            container: None,
            sequence: 1,
        },
    );
    let block = IPAMBlock::new(
        "10-99-0-128-26",
        IPAMBlockSpec {
            cidr: "10.99.0.128/26".into(),
            pool: "payments".into(),
            affinity: Some("node-1".into()),
            sequence_number: 1,
            allocations,
        },
    );
    Api::<IPAMBlock>::all(client.clone())
        .create(&PostParams::default(), &block)
        .await
        .unwrap();
    let assignment = Assignment {
        ipv4: Some(FamilyAssignment {
            address: "10.99.0.130".parse().unwrap(),
            pool: "payments".into(),
            block: "10-99-0-128-26".into(),
        }),
        ..Assignment::default()
    };
    let patch = json!({"metadata": {"annotations": assignment.to_annotations()}});
    Api::<Pod>::namespaced(client.clone(), "bench")
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}
