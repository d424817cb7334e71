//! What the controller sees of the cluster: one watch per kind, shared reflector stores, and a
//! channel of changes that wakes the leader's loop.
//!
//! Every replica runs these watches, leader or not, so that a standby that takes over starts
//! with warm caches. Pods are stripped to the few fields the controller reads before they are
//! stored: 150,000 full pod objects would not fit the memory budget.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, RwLock};

use api::{IPAMBlock, IPPool, IPReservation};
use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};

use crate::lean::LeanBlock;
use crate::pods::{PodInfo, PodKey, WatchedPod};

/// Objects per page of a watch's initial list (the kube-rs default).
const PAGE_SIZE: u32 = 500;
/// Blocks per page: a block of 64 allocations is some 70 kB of JSON, mostly managedFields, and
/// a page's whole body is held while it is decoded.
const BLOCK_PAGE_SIZE: u32 = 50;

/// Something changed that the leader may have to act on.
#[derive(Debug, Clone)]
pub enum Change {
    /// A pod was added or changed.
    Pod(PodKey),
    /// A pod is gone from the API server: its addresses can be released.
    PodGone {
        /// The pod's UID, the handle of its allocations.
        uid: String,
        /// Its namespace and name.
        key: PodKey,
        /// The UID of the StatefulSet that controlled it, if one did: its addresses in sticky
        /// pools are parked for its successor.
        statefulset: Option<String>,
    },
    /// A namespace was added, changed or removed.
    Namespace(String),
    /// A node was added or changed.
    Node(String),
    /// A node is gone: its blocks lose their affinity.
    NodeGone(String),
    /// Pools changed.
    Pools,
    /// A block changed or was deleted; the name.
    Block(String),
    /// A watch (re)listed everything: the leader re-checks everything of that kind.
    Relisted(Kind),
}

/// The kinds the controller watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// core/v1 Pod.
    Pod,
    /// core/v1 Namespace.
    Namespace,
    /// core/v1 Node.
    Node,
    /// rangepool.dev/v1 IPPool.
    Pool,
    /// rangepool.dev/v1 IPAMBlock.
    Block,
    /// rangepool.dev/v1 IPReservation.
    Reservation,
}

/// The shared caches.
#[derive(Clone)]
pub struct Stores {
    /// Pods, reduced to what the controller reads (see [`PodInfo`]).
    pub pods: PodIndex,
    /// Namespaces (labels and annotations are what matters).
    pub namespaces: Store<Namespace>,
    /// Nodes, stripped to metadata.
    pub nodes: Store<Node>,
    /// Pools.
    pub pools: Store<IPPool>,
    /// Blocks.
    pub blocks: Store<IPAMBlock>,
    /// Reservations.
    pub reservations: Store<IPReservation>,
}

impl Stores {
    /// Waits until every watch has listed its objects once.
    pub async fn ready(&self) -> bool {
        self.pods.wait_until_ready().await
            && self.namespaces.wait_until_ready().await.is_ok()
            && self.nodes.wait_until_ready().await.is_ok()
            && self.pools.wait_until_ready().await.is_ok()
            && self.blocks.wait_until_ready().await.is_ok()
            && self.reservations.wait_until_ready().await.is_ok()
    }
}

/// Starts every watch. Changes are sent on the returned channel; the tasks run until aborted.
pub fn watch_all(
    client: &Client,
) -> (
    Stores,
    mpsc::UnboundedReceiver<Change>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::new();

    let (pods, task) = PodIndex::watch(Api::<WatchedPod>::all(client.clone()), tx.clone());
    tasks.push(task);
    let (namespaces, task) = spawn_watch(
        Api::<Namespace>::all(client.clone()),
        tx.clone(),
        Kind::Namespace,
        PAGE_SIZE,
        strip_namespace,
        |event| match event {
            Event::Apply(n) | Event::Delete(n) => Some(Change::Namespace(n.name_any())),
            _ => None,
        },
    );
    tasks.push(task);
    let (nodes, task) = spawn_watch(
        Api::<Node>::all(client.clone()),
        tx.clone(),
        Kind::Node,
        PAGE_SIZE,
        strip_node,
        |event| match event {
            Event::Apply(n) => Some(Change::Node(n.name_any())),
            Event::Delete(n) => Some(Change::NodeGone(n.name_any())),
            _ => None,
        },
    );
    tasks.push(task);
    let (pools, task) = spawn_watch(
        Api::<IPPool>::all(client.clone()),
        tx.clone(),
        Kind::Pool,
        PAGE_SIZE,
        |mut p| {
            p.metadata.managed_fields = None;
            p
        },
        |event| match event {
            Event::Apply(_) | Event::Delete(_) => Some(Change::Pools),
            _ => None,
        },
    );
    tasks.push(task);
    let (reservations, task) = spawn_watch(
        Api::<IPReservation>::all(client.clone()),
        tx.clone(),
        Kind::Reservation,
        PAGE_SIZE,
        |mut r| {
            r.metadata.managed_fields = None;
            r
        },
        // Reservations are read with the pools.
        |event| match event {
            Event::Apply(_) | Event::Delete(_) => Some(Change::Pools),
            _ => None,
        },
    );
    tasks.push(task);
    let (blocks, writer) = reflector::store::<IPAMBlock>();
    let stream = watcher(
        Api::<LeanBlock>::all(client.clone()),
        watcher::Config::default().page_size(BLOCK_PAGE_SIZE),
    )
    .default_backoff()
    .map_ok(|event| map_event(event, LeanBlock::into_inner))
    .reflect(writer);
    let task = tokio::spawn(forward(stream, tx, Kind::Block, |event| match event {
        Event::Apply(b) | Event::Delete(b) => Some(Change::Block(b.name_any())),
        _ => None,
    }));
    tasks.push(task);

    (
        Stores {
            pods,
            namespaces,
            nodes,
            pools,
            blocks,
            reservations,
        },
        rx,
        tasks,
    )
}

fn spawn_watch<K>(
    api: Api<K>,
    tx: mpsc::UnboundedSender<Change>,
    kind: Kind,
    page_size: u32,
    strip: fn(K) -> K,
    to_change: fn(&Event<K>) -> Option<Change>,
) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: Resource + Clone + Default + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let (store, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default().page_size(page_size))
        .default_backoff()
        .modify(move |obj| *obj = strip(std::mem::take(obj)))
        .reflect(writer);
    let task = tokio::spawn(forward(stream, tx, kind, to_change));
    (store, task)
}

async fn forward<K>(
    stream: impl Stream<Item = Result<Event<K>, watcher::Error>>,
    tx: mpsc::UnboundedSender<Change>,
    kind: Kind,
    to_change: fn(&Event<K>) -> Option<Change>,
) {
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        let change = match &event {
            Ok(Event::InitDone) => Some(Change::Relisted(kind)),
            Ok(event) => to_change(event),
            Err(e) => {
                tracing::warn!(?kind, error = %e, "watch failed; retrying with backoff");
                None
            }
        };
        if let Some(change) = change
            && tx.send(change).is_err()
        {
            return;
        }
    }
}

fn watcher<K>(
    api: Api<K>,
    config: watcher::Config,
) -> impl Stream<Item = Result<Event<K>, watcher::Error>>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    watcher::watcher(api, config)
}

fn strip_namespace(ns: Namespace) -> Namespace {
    Namespace {
        metadata: kube::api::ObjectMeta {
            managed_fields: None,
            ..ns.metadata
        },
        spec: None,
        status: None,
    }
}

fn strip_node(node: Node) -> Node {
    Node {
        metadata: kube::api::ObjectMeta {
            managed_fields: None,
            annotations: None,
            ..node.metadata
        },
        spec: None,
        status: None,
    }
}

/// The same event about another representation of the object.
fn map_event<A, B>(event: Event<A>, f: fn(A) -> B) -> Event<B> {
    match event {
        Event::Apply(o) => Event::Apply(f(o)),
        Event::Delete(o) => Event::Delete(f(o)),
        Event::Init => Event::Init,
        Event::InitApply(o) => Event::InitApply(f(o)),
        Event::InitDone => Event::InitDone,
    }
}

/// What the core reads of a pod's surroundings: its node and namespace as the caches hold them
/// (`None` where the cache has not seen them; shared, not copied), and the pod's own annotations.
pub struct Surroundings {
    node: Option<Arc<Node>>,
    namespace: Option<Arc<Namespace>>,
    annotations: BTreeMap<String, String>,
}

/// Labels or annotations of an object that has none.
static NONE: BTreeMap<String, String> = BTreeMap::new();

impl Surroundings {
    /// Looks up `pod`'s node (bound to `node`) and namespace.
    pub fn of(stores: &Stores, pod: &PodInfo, node: &str) -> Surroundings {
        Surroundings {
            node: stores.nodes.get(&reflector::ObjectRef::new(node)),
            namespace: stores
                .namespaces
                .get(&reflector::ObjectRef::new(&pod.key.namespace)),
            annotations: pod.annotations(),
        }
    }

    /// The core's view of the pod, with the addresses its annotation confirms.
    pub fn context<'a>(
        &'a self,
        pod: &'a PodInfo,
        node: &'a str,
        confirmed: &'a [std::net::IpAddr],
    ) -> ipam::planner::PodContext<'a> {
        ipam::planner::PodContext {
            namespace: &pod.key.namespace,
            name: &pod.key.name,
            node,
            annotations: &self.annotations,
            node_labels: self
                .node
                .as_ref()
                .map(|n| n.metadata.labels.as_ref().unwrap_or(&NONE)),
            namespace_meta: self.namespace.as_ref().map(|n| {
                (
                    n.metadata.labels.as_ref().unwrap_or(&NONE),
                    n.metadata.annotations.as_ref().unwrap_or(&NONE),
                )
            }),
            confirmed,
            running: &pod.running,
            statefulset: pod.statefulset.as_deref(),
        }
    }
}

/// Every pod, reduced to a [`PodInfo`], fed by a watch. A reflector store would keep full pod
/// objects: several kilobytes each, too much for 150,000 pods.
#[derive(Clone)]
pub struct PodIndex {
    pods: Arc<RwLock<HashMap<PodKey, Arc<PodInfo>>>>,
    ready: watch::Receiver<bool>,
}

impl PodIndex {
    /// Starts the watch; changes go to `tx`.
    fn watch(
        api: Api<WatchedPod>,
        tx: mpsc::UnboundedSender<Change>,
    ) -> (PodIndex, tokio::task::JoinHandle<()>) {
        let (ready_tx, ready) = watch::channel(false);
        let index = PodIndex {
            pods: Arc::default(),
            ready,
        };
        let pods = index.pods.clone();
        let task = tokio::spawn(async move {
            let stream = watcher(api, watcher::Config::default()).default_backoff();
            let mut stream = std::pin::pin!(stream);
            let mut buffer: HashMap<PodKey, Arc<PodInfo>> = HashMap::new();
            while let Some(event) = stream.next().await {
                let change = match event {
                    Ok(Event::Init) => {
                        buffer = HashMap::new();
                        None
                    }
                    Ok(Event::InitApply(pod)) => {
                        let info = PodInfo::of(&pod);
                        buffer.insert(info.key.clone(), Arc::new(info));
                        None
                    }
                    Ok(Event::InitDone) => {
                        *write(&pods) = std::mem::take(&mut buffer);
                        let _ = ready_tx.send(true);
                        Some(Change::Relisted(Kind::Pod))
                    }
                    Ok(Event::Apply(pod)) => {
                        let info = PodInfo::of(&pod);
                        let key = info.key.clone();
                        write(&pods).insert(key.clone(), Arc::new(info));
                        Some(Change::Pod(key))
                    }
                    Ok(Event::Delete(pod)) => {
                        let info = PodInfo::of(&pod);
                        write(&pods).remove(&info.key);
                        Some(Change::PodGone {
                            uid: info.uid.into(),
                            key: info.key,
                            statefulset: info.statefulset.map(Into::into),
                        })
                    }
                    Err(e) => {
                        tracing::warn!(kind = ?Kind::Pod, error = %e, "watch failed; retrying with backoff");
                        None
                    }
                };
                if let Some(change) = change
                    && tx.send(change).is_err()
                {
                    return;
                }
            }
        });
        (index, task)
    }

    /// Waits until the watch has listed every pod once. False if the watch stopped first.
    pub async fn wait_until_ready(&self) -> bool {
        let mut ready = self.ready.clone();
        ready.wait_for(|r| *r).await.is_ok()
    }

    /// The pod with that key.
    pub fn get(&self, key: &PodKey) -> Option<Arc<PodInfo>> {
        read(&self.pods).get(key).cloned()
    }

    /// The key of every pod, sorted by node (pods on no node first). Only keys: holding every
    /// pod while their annotations replace them in the index would keep two copies of each.
    pub fn keys_by_node(&self) -> Vec<PodKey> {
        // Sorted outside the lock, which the watch needs for every change.
        let mut sorted: Vec<Arc<PodInfo>> = read(&self.pods).values().cloned().collect();
        sorted.sort_unstable_by(|a, b| (&a.node, &a.key).cmp(&(&b.node, &b.key)));
        sorted.into_iter().map(|p| p.key.clone()).collect()
    }

    /// Every pod, shared with the index rather than copied.
    pub fn all(&self) -> Vec<Arc<PodInfo>> {
        read(&self.pods).values().cloned().collect()
    }

    /// Runs `f` over the UIDs of every pod, borrowed rather than copied.
    pub fn with_uids<R>(&self, f: impl FnOnce(&HashSet<&str>) -> R) -> R {
        let pods = read(&self.pods);
        let uids: HashSet<&str> = pods.values().map(|p| &*p.uid).collect();
        f(&uids)
    }
}

// A poisoned lock only means another task panicked while holding it; every write is a single
// insert, remove or swap, so the map itself is whole: keep using it.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
