//! What both measurements share: the test API server with our CRDs, object builders, concurrent
//! creation, a log of every change the API server commits (with its resourceVersion, so writes
//! can be counted exactly), and a tiny HTTP GET for the controller's endpoints.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::{IPPool, IPPoolSpec};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use rangepool_testserver::{ChangeKind, TestServer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast;

/// A test API server with rangepool's CRDs installed, and a client for the benchmark's own
/// requests (the "scheduler"; the controller gets a client of its own).
pub struct Cluster {
    pub server: TestServer,
    pub client: Client,
}

impl Cluster {
    pub async fn start() -> Cluster {
        let server = TestServer::start().await.expect("test API server starts");
        let client = server.client().expect("client for the test API server");
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for (_, crd) in api::crd::all() {
            crds.create(&PostParams::default(), &crd)
                .await
                .expect("CRD created");
        }
        Cluster { server, client }
    }

    /// Creates nodes `node-00000` .. concurrently.
    pub async fn nodes(&self, count: usize, concurrency: usize) {
        let api: Api<Node> = Api::all(self.client.clone());
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

    pub async fn namespace(&self, name: &str) {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace created");
    }

    pub async fn pool(&self, name: &str, cidr: &str, block_size: i32) {
        let spec = IPPoolSpec {
            cidr: cidr.to_owned(),
            block_size: Some(block_size),
            ..Default::default()
        };
        Api::<IPPool>::all(self.client.clone())
            .create(&PostParams::default(), &IPPool::new(name, spec))
            .await
            .expect("pool created");
    }

    /// Opens `connections` connections in `client`'s pool, by sending as many requests at once,
    /// so that a measurement does not include setting them up: a scheduler or a controller that
    /// has been running for a while has its connections open.
    pub async fn warm(client: &Client, connections: usize) {
        futures::stream::iter(0..connections)
            .map(|_| {
                let client = client.clone();
                async move {
                    client.apiserver_version().await.expect("GET /version");
                }
            })
            .buffer_unordered(connections.max(1))
            .collect::<Vec<()>>()
            .await;
    }

    /// Creates the pods with at most `concurrency` requests in flight; returns each pod's UID
    /// (in the order given) and when its create was sent. Bodies are encoded before the first
    /// request and of each answer only the UID is read: the benchmark stands in for the
    /// scheduler, whose CPU a real cluster does not share with the API server and controller.
    pub async fn create_pods(&self, pods: Vec<Pod>, concurrency: usize) -> Vec<(String, Instant)> {
        create_pods_with(self.client.clone(), pods, concurrency).await
    }
}

/// The scheduler's stand-in: it creates the bound pods from a thread and a runtime of its own,
/// with its connections already open. In a cluster the scheduler is another process; sharing the
/// runtime of the API server and the controller, its thousand requests in flight queued ahead of
/// every watch event and every write of theirs, and opening a thousand connections took a
/// fifth of the burst.
pub struct Scheduler {
    runtime: Option<tokio::runtime::Runtime>,
    client: Client,
}

impl Scheduler {
    /// A scheduler with `connections` connections open to `server`.
    pub async fn start(server: &TestServer, connections: usize) -> Scheduler {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("scheduler")
            .enable_all()
            .build()
            .expect("the scheduler's runtime");
        // Made on its runtime, so that the client's connections live there.
        let client = {
            let _entered = runtime.enter();
            server.client().expect("the scheduler's client")
        };
        let warming = client.clone();
        runtime
            .spawn(async move { Cluster::warm(&warming, connections).await })
            .await
            .expect("the scheduler opens its connections");
        Scheduler {
            runtime: Some(runtime),
            client,
        }
    }

    /// [`Cluster::create_pods`], from the scheduler's runtime.
    pub async fn create_pods(&self, pods: Vec<Pod>, concurrency: usize) -> Vec<(String, Instant)> {
        let runtime = self.runtime.as_ref().expect("running");
        runtime
            .spawn(create_pods_with(self.client.clone(), pods, concurrency))
            .await
            .expect("the scheduler creates the pods")
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// [`Cluster::create_pods`] with any client.
async fn create_pods_with(
    client: Client,
    pods: Vec<Pod>,
    concurrency: usize,
) -> Vec<(String, Instant)> {
    #[derive(serde::Deserialize)]
    struct Created {
        metadata: CreatedMeta,
    }
    #[derive(serde::Deserialize)]
    struct CreatedMeta {
        uid: String,
    }
    let requests: Vec<_> = pods
        .iter()
        .map(|pod| {
            let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
            let body = serde_json::to_vec(pod).expect("pod encodes");
            kube::core::Request::new(format!("/api/v1/namespaces/{namespace}/pods"))
                .create(&PostParams::default(), body)
                .expect("create request")
        })
        .collect();
    let mut out: Vec<(usize, String, Instant)> =
        futures::stream::iter(requests.into_iter().enumerate())
            .map(|(i, request)| {
                let client = client.clone();
                async move {
                    let sent = Instant::now();
                    let created: Created = client.request(request).await.expect("pod created");
                    (i, created.metadata.uid, sent)
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
    out.sort_by_key(|(i, ..)| *i);
    out.into_iter().map(|(_, uid, sent)| (uid, sent)).collect()
}

pub fn node_name(i: usize) -> String {
    format!("node-{i:05}")
}

/// A pod as a Deployment would create it: labels, one container with ports, resources, env and
/// probes. The controller drops all but a few fields from its cache; the test server keeps it all.
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

/// What kind of change the API server committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    Create,
    Update,
    Delete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

/// One committed change.
#[derive(Debug, Clone)]
pub struct Seen {
    pub rv: u64,
    /// The kind, singular and lower case: `pod`, `ipamblock`, `lease`.
    pub resource: String,
    pub op: Op,
    /// When the log received it.
    pub at: Instant,
}

#[derive(Default)]
struct LogState {
    seen: Vec<Seen>,
    /// (resource, namespace/name) -> first change that carried the mark: (rv, when seen).
    marked: HashMap<(String, String), (u64, Instant)>,
    /// Changes the log fell too far behind to receive.
    lost: u64,
}

/// Every change the test API server commits, taken from its in-process feed rather than from
/// watches: observing costs the server no encoding and the benchmark no decoding, so the
/// measurement does not load what it measures. The server bumps its one global
/// resourceVersion exactly once per write that changes an object, so the changes between two
/// resourceVersions are the successful writes between them.
pub struct CommitLog {
    state: Arc<Mutex<LogState>>,
    task: tokio::task::JoinHandle<()>,
}

impl CommitLog {
    /// Records every commit from now on; `mark(resource, object)` flags objects of interest
    /// (e.g. annotated pods), whose first flagged change is remembered with the instant it was
    /// seen. Returns the log and the resourceVersion it starts after.
    pub fn start(server: &TestServer, mark: fn(&str, &Value) -> bool) -> (CommitLog, u64) {
        let (rv0, mut commits) = server.commits();
        let state: Arc<Mutex<LogState>> = Arc::default();
        let log_state = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let change = match commits.recv().await {
                    Ok(change) => change,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        eprintln!("warning: the commit log fell {n} changes behind");
                        log_state.lock().expect("commit log lock").lost += n;
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let at = Instant::now();
                let resource = singular(&change.storage.resource);
                let op = match change.kind {
                    ChangeKind::Added => Op::Create,
                    ChangeKind::Modified => Op::Update,
                    ChangeKind::Deleted => Op::Delete,
                };
                let marked = mark(&resource, &change.object);
                let mut st = log_state.lock().expect("commit log lock");
                if marked {
                    let meta = &change.object["metadata"];
                    let key = format!(
                        "{}/{}",
                        meta["namespace"].as_str().unwrap_or_default(),
                        meta["name"].as_str().unwrap_or_default()
                    );
                    st.marked
                        .entry((resource.clone(), key))
                        .or_insert((change.rv, at));
                }
                st.seen.push(Seen {
                    rv: change.rv,
                    resource,
                    op,
                    at,
                });
            }
        });
        (CommitLog { state, task }, rv0)
    }

    /// How many objects of `resource` carried the mark at least once.
    pub fn marked_count(&self, resource: &str) -> usize {
        let st = self.state.lock().expect("commit log lock");
        st.marked.keys().filter(|(r, _)| r == resource).count()
    }

    /// namespace/name -> (resourceVersion, instant) of the first marked change.
    pub fn marks(&self, resource: &str) -> HashMap<String, (u64, Instant)> {
        let st = self.state.lock().expect("commit log lock");
        st.marked
            .iter()
            .filter(|((r, _), _)| r == resource)
            .map(|((_, k), v)| (k.clone(), *v))
            .collect()
    }

    /// Changes with `after < rv <= upto`, in the order the API server committed them.
    pub fn changes(&self, after: u64, upto: u64) -> Vec<Seen> {
        let st = self.state.lock().expect("commit log lock");
        st.seen
            .iter()
            .filter(|s| s.rv > after && s.rv <= upto)
            .cloned()
            .collect()
    }

    /// Changes with `after < rv <= upto`, by resource and kind of change.
    pub fn count(&self, after: u64, upto: u64) -> BTreeMap<(String, Op), u64> {
        let st = self.state.lock().expect("commit log lock");
        let mut out = BTreeMap::new();
        for s in st.seen.iter().filter(|s| s.rv > after && s.rv <= upto) {
            *out.entry((s.resource.clone(), s.op)).or_default() += 1;
        }
        out
    }

    /// Waits (at most `patience`) until the log accounts for every resourceVersion in
    /// `(after, upto]`; returns the counts.
    pub async fn settle(
        &self,
        after: u64,
        upto: u64,
        patience: Duration,
    ) -> BTreeMap<(String, Op), u64> {
        let deadline = Instant::now() + patience;
        loop {
            let counts = self.count(after, upto);
            if counts.values().sum::<u64>() >= upto - after || Instant::now() >= deadline {
                return counts;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for CommitLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `pods` -> `pod`, `ipamblocks` -> `ipamblock`.
fn singular(plural: &str) -> String {
    plural.strip_suffix('s').unwrap_or(plural).to_owned()
}

/// Prints `prefix_writes_<resource>_<op>: n` for each kind, and the writes no followed watch
/// saw (there should be none).
pub fn print_writes(prefix: &str, counts: &BTreeMap<(String, Op), u64>, rv_delta: u64) {
    let mut attributed = 0;
    for ((resource, op), n) in counts {
        println!("{prefix}_writes_{resource}_{}: {n}", op.as_str());
        attributed += n;
    }
    println!(
        "{prefix}_writes_unattributed: {}",
        rv_delta.saturating_sub(attributed)
    );
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

/// Resident set size of a process, from `/proc/<pid>/status`: (VmRSS, VmHWM) in KiB.
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat` (USER_HZ = 100).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// The machine's load averages (1, 5, 15 minutes): other work on the machine skews every number.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

pub fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

pub fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}
