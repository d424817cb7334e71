//! What both measurements share: a real control plane with our CRDs, object builders,
//! concurrent creation, the controller's identity, and a tiny HTTP GET for the controller's
//! endpoints.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use api::{IPPool, IPPoolSpec};
use envtest::{ChartIdentity, ControlPlane, Credentials};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::apiserver::Processes;

/// etcd and kube-apiserver with rangepool's CRDs installed, and the admin's client for the
/// benchmark's own setup and observation.
pub struct Cluster {
    pub plane: ControlPlane,
    pub admin: Client,
    pub processes: Processes,
}

impl Cluster {
    pub async fn start() -> Cluster {
        // No kubelet stand-in: the benchmarks delete no pod, and it would watch every pod.
        let options = envtest::Options {
            kubelet: None,
            ..envtest::Options::default()
        };
        let plane = ControlPlane::start_with(options)
            .await
            .expect("the control plane starts (tests/k8s/build.sh builds it)");
        let admin = plane.client().expect("the admin's client");
        let crds: Vec<_> = api::crd::all().into_iter().map(|(_, crd)| crd).collect();
        plane.install_crds(&crds).await.expect("CRDs installed");
        let processes = Processes::of(&plane);
        Cluster {
            plane,
            admin,
            processes,
        }
    }

    /// The chart's controller ServiceAccount, with the chart's RBAC applied.
    pub async fn controller_identity(&self) -> Credentials {
        self.plane
            .chart_identity(ChartIdentity::Controller)
            .await
            .expect("the chart's controller identity")
    }

    /// Creates nodes `node-00000` .. concurrently.
    pub async fn nodes(&self, count: usize, concurrency: usize) {
        let api: Api<Node> = Api::all(self.admin.clone());
        futures::stream::iter(0..count)
            .map(|i| {
                let api = api.clone();
                async move {
                    let node = Node {
                        metadata: ObjectMeta {
                            name: Some(node_name(i)),
                            labels: Some(BTreeMap::from([
                                ("kubernetes.io/hostname".to_owned(), node_name(i)),
                                ("kubernetes.io/os".to_owned(), "linux".to_owned()),
                                (
                                    "topology.kubernetes.io/zone".to_owned(),
                                    format!("zone-{}", i % 3),
                                ),
                            ])),
                            ..Default::default()
                        },
                        ..Default::default()
                    };
                    api.create(&PostParams::default(), &node)
                        .await
                        .expect("node created");
                }
            })
            .buffer_unordered(concurrency)
            .collect::<Vec<()>>()
            .await;
    }

    /// A namespace with its `default` ServiceAccount, which the pods run as.
    pub async fn namespace(&self, name: &str) {
        self.plane
            .create_namespace(name, BTreeMap::new(), BTreeMap::new())
            .await
            .expect("namespace created");
    }

    pub async fn pool(&self, name: &str, cidr: &str, block_size: i32) {
        let spec = IPPoolSpec {
            cidr: cidr.to_owned(),
            block_size: Some(block_size),
            ..Default::default()
        };
        Api::<IPPool>::all(self.admin.clone())
            .create(&PostParams::default(), &IPPool::new(name, spec))
            .await
            .expect("pool created");
    }
}

/// A pod to create: its namespace and name, and its body, encoded ahead of the request.
pub struct PodCreate {
    pub namespace: String,
    pub name: String,
    pub body: Vec<u8>,
}

impl PodCreate {
    pub fn of(pod: &Pod) -> PodCreate {
        PodCreate {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            body: serde_json::to_vec(pod).expect("pod encodes"),
        }
    }
}

/// Creates the pods with at most `concurrency` requests in flight; returns each pod's UID (in
/// the order given) and when its create was sent. Of each answer only the UID is decoded: the
/// benchmark stands in for the scheduler, whose CPU a real cluster does not share with the API
/// server and the controller. With `progress`, prints how far it got every 10 seconds.
pub async fn create_pods(
    client: Client,
    pods: impl Iterator<Item = PodCreate>,
    concurrency: usize,
    progress: Option<&str>,
) -> Vec<(String, Instant)> {
    let start = Instant::now();
    let mut last_report = start;
    let mut done = 0usize;
    let mut out: Vec<(usize, String, Instant)> = futures::stream::iter(pods.enumerate())
        .map(|(i, pod)| {
            let client = client.clone();
            async move {
                let sent = Instant::now();
                (i, create_pod(&client, &pod).await, sent)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .inspect(|_| {
            done += 1;
            if let Some(label) = progress
                && last_report.elapsed() >= Duration::from_secs(10)
            {
                last_report = Instant::now();
                let elapsed = start.elapsed().as_secs_f64();
                println!(
                    "{label}: {done} pods in {elapsed:.0} s ({:.0}/s)",
                    done as f64 / elapsed
                );
            }
        })
        .collect()
        .await;
    out.sort_by_key(|(i, ..)| *i);
    out.into_iter().map(|(_, uid, sent)| (uid, sent)).collect()
}

/// Creates one pod, retrying what a loaded server may answer (429, 5xx, a timed-out request);
/// a 409 after a retry means the earlier attempt went through. Returns the pod's UID.
async fn create_pod(client: &Client, pod: &PodCreate) -> String {
    #[derive(serde::Deserialize)]
    struct Created {
        metadata: CreatedMeta,
    }
    #[derive(serde::Deserialize)]
    struct CreatedMeta {
        uid: String,
    }
    let path = format!("/api/v1/namespaces/{}/pods", pod.namespace);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let request = kube::core::Request::new(&path)
            .create(&PostParams::default(), pod.body.clone())
            .expect("create request");
        let error = match client.request::<Created>(request).await {
            Ok(created) => return created.metadata.uid,
            Err(e) => e,
        };
        if attempt > 1 && matches!(&error, kube::Error::Api(s) if s.code == 409) {
            let existing: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
            let uid = existing
                .get(&pod.name)
                .await
                .ok()
                .and_then(|p| p.metadata.uid);
            if let Some(uid) = uid {
                return uid;
            }
        }
        assert!(
            attempt < 5,
            "pod {}/{} not created: {error}",
            pod.namespace,
            pod.name
        );
        tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
    }
}

pub fn node_name(i: usize) -> String {
    format!("node-{i:05}")
}

/// A pod as a Deployment would create it: labels, one container with ports, resources, env and
/// probes. The controller drops all but a few fields from its cache; the API server keeps it
/// all, with its defaults added.
pub fn pod(name: &str, namespace: &str, node: &str, annotations: BTreeMap<String, String>) -> Pod {
    let app = name.rsplit_once('-').map_or(name, |(a, _)| a);
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app": app, "pod-template-hash": "5d9c7b8f6d", "tier": "backend"},
            "annotations": annotations,
        },
        "spec": {
            "nodeName": node,
            "serviceAccountName": "default",
            "containers": [{
                "name": "app",
                "image": "registry.example.com/team/app:1.27.3",
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "env": [
                    {"name": "MODE", "value": "production"},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                ],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                              "limits": {"memory": "256Mi"}},
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 5},
            }],
        },
    }))
    .expect("pod fixture decodes")
}

/// A `GET` over a fresh connection; the status code and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.ok()?;
    let text = String::from_utf8_lossy(&raw);
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// The samples of a metric family from an OpenMetrics text, as `name{labels} value` lines.
pub fn metric_lines<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(family))
        .collect()
}

/// The `q` quantile (nearest rank) of sorted samples.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// A number from the environment, or the default.
pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

pub fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

pub fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// `12.34` for a CPU reading, `unavailable` without one.
pub fn cpu(seconds: Option<f64>) -> String {
    seconds.map_or("unavailable".into(), |s| format!("{s:.2}"))
}
