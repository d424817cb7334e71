//! The leader's loop: gather changes, decide with the core, write blocks, then pods.
//!
//! One task owns the in-memory model of every block, so decisions never race each other. Each
//! step takes every change that arrived (a burst of bound pods becomes one step), makes all
//! allocations and releases in memory, writes each changed block that is due once
//! (compare-and-swap on its sequence number; a block written moments ago is held back a little,
//! see [`crate::coalesce`]), and only then annotates the pods whose blocks were written. A
//! failed block write re-reads that block and leaves its pods for the next step, so nothing is
//! annotated with an address that no block records.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::runtime::events::Reporter;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::annotations::{Annotations, Outcome, Pending};
use crate::cluster::Cluster;
use crate::coalesce::Coalescer;
use crate::config::Settings;
use crate::gc::Sweep;
use crate::metrics::Metrics;
use crate::model::Model;
use crate::pods::PodKey;
use crate::pools::StatusDue;
use crate::queue::Queue;
use crate::world::{Change, Kind, Stores};

/// How long the loop keeps collecting changes after the first one, so that a burst of bound
/// pods is decided and written together.
const BATCH_WINDOW: Duration = Duration::from_millis(20);
/// Pods decided together when the leader looks at every pod (start, relist); the next slice
/// waits until at most this many annotations are queued.
const ALL_PODS_SLICE: usize = 5_000;
/// With this many pod patches queued or in flight, the next step waits for some to be answered:
/// the patches are then the bottleneck, and pods that arrive meanwhile join one larger step, so
/// that a node's block is written once for many of them instead of once for each few.
const PATCH_BACKLOG: usize = 2 * crate::annotations::PATCH_CONCURRENCY;
/// The longest a step waits for that backlog to shrink.
const BACKLOG_PATIENCE: Duration = Duration::from_secs(1);

/// A pod gone from the API server.
pub(crate) struct Gone {
    pub(crate) uid: String,
    pub(crate) key: PodKey,
    /// The UID of the StatefulSet that controlled it, if one did.
    pub(crate) statefulset: Option<String>,
}

/// What one step has to look at.
#[derive(Default)]
pub(crate) struct Work {
    pub(crate) pods: HashSet<PodKey>,
    pub(crate) gone: Vec<Gone>,
    pub(crate) gone_nodes: Vec<String>,
    pub(crate) blocks: HashSet<String>,
    pub(crate) all_pods: bool,
    pub(crate) all_blocks: bool,
    pub(crate) pools: bool,
    /// Namespaces or nodes changed: pods waiting on a cause get another chance.
    pub(crate) context: bool,
}

impl Work {
    fn everything() -> Work {
        Work {
            all_pods: true,
            all_blocks: true,
            pools: true,
            context: true,
            ..Default::default()
        }
    }

    fn is_empty(&self) -> bool {
        self.pods.is_empty()
            && self.gone.is_empty()
            && self.gone_nodes.is_empty()
            && self.blocks.is_empty()
            && !(self.all_pods || self.all_blocks || self.pools || self.context)
    }

    fn add(&mut self, change: Change) {
        match change {
            Change::Pod(key) => {
                self.pods.insert(key);
            }
            Change::PodGone {
                uid,
                key,
                statefulset,
            } => self.gone.push(Gone {
                uid,
                key,
                statefulset,
            }),
            Change::Namespace(_) | Change::Node(_) => self.context = true,
            Change::NodeGone(name) => {
                self.gone_nodes.push(name);
                self.context = true;
            }
            Change::Pools => self.pools = true,
            Change::Block(name) => {
                self.blocks.insert(name);
            }
            Change::Relisted(Kind::Pod) => self.all_pods = true,
            Change::Relisted(Kind::Block) => self.all_blocks = true,
            Change::Relisted(Kind::Pool | Kind::Reservation) => self.pools = true,
            Change::Relisted(Kind::Namespace | Kind::Node) => self.context = true,
        }
    }
}

/// Seconds since the Unix epoch: what release times in blocks are measured in.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What ended the engine's wait.
enum Wake {
    Change(Change),
    Annotated(Outcome),
    /// The deadline passed.
    Due,
    /// Leadership may have changed.
    Leading,
    /// The change channel or the leader election is gone: the engine must stop.
    Closed,
}

/// The leader's state.
pub struct Engine {
    pub(crate) cluster: Cluster,
    pub(crate) settings: Settings,
    pub(crate) stores: Stores,
    pub(crate) model: Model,
    pub(crate) annotations: Annotations,
    /// Pods whose addresses are decided, waiting for their blocks to be written.
    pub(crate) waiting: Pending,
    /// When each changed block is written.
    pub(crate) coalescer: Coalescer,
    pub(crate) queue: Queue,
    pub(crate) sweep: Sweep,
    pub(crate) status: StatusDue,
}

impl Engine {
    /// A leader's engine over warm caches.
    pub fn new(
        client: Client,
        settings: Settings,
        stores: Stores,
        metrics: Arc<Metrics>,
        reporter: Reporter,
    ) -> Engine {
        let mut model = Model::new(settings.strict_affinity);
        model.set_limits(settings.ip_cooldown.as_secs(), settings.max_blocks_per_node);
        Engine {
            model,
            annotations: Annotations::new(client.clone()),
            waiting: Pending::default(),
            coalescer: Coalescer::default(),
            cluster: Cluster::new(client, metrics, reporter),
            queue: Queue::default(),
            sweep: Sweep::new(settings.leak_grace),
            status: StatusDue::default(),
            stores,
            settings,
        }
    }

    /// Runs while `leading` reads true. Returns when leadership is lost or the change channel
    /// closes; patches still in flight are then aborted.
    pub async fn run(
        mut self,
        changes: &mut mpsc::UnboundedReceiver<Change>,
        leading: &mut watch::Receiver<bool>,
    ) {
        self.ensure_default_pools().await;
        let mut work = Work::everything();
        loop {
            if !*leading.borrow() {
                return;
            }
            self.step(std::mem::take(&mut work)).await;
            if !self.await_backlog(&mut work, changes, leading).await {
                return;
            }
            // What arrived during the step is a batch already: no need to wait for more. A pass
            // over every pod goes on with its next slice.
            let mut queued = !work.is_empty() || self.queue.passing();
            // Answers that came during the step, taken in even when changes keep coming.
            while let Some(outcome) = self.annotations.try_next() {
                queued |= self.take_in(Wake::Annotated(outcome), &mut work);
            }
            while let Ok(change) = changes.try_recv() {
                queued |= self.take_in(Wake::Change(change), &mut work);
            }
            if queued {
                continue;
            }
            // Wait for something to do. Answers to pod patches are taken in as they come; only
            // a pod the engine must look at again makes a step.
            loop {
                match self.wake(changes, leading, self.next_deadline()).await {
                    Wake::Closed => return,
                    Wake::Due | Wake::Leading => break,
                    wake => {
                        if self.take_in(wake, &mut work) {
                            break;
                        }
                    }
                }
            }
            if !*leading.borrow() {
                return;
            }
            // Let a burst arrive, then take everything queued.
            let window = Instant::now() + BATCH_WINDOW;
            loop {
                match self.wake(changes, leading, window).await {
                    Wake::Closed => return,
                    Wake::Due | Wake::Leading => break,
                    wake => {
                        self.take_in(wake, &mut work);
                    }
                }
            }
            while let Ok(change) = changes.try_recv() {
                work.add(change);
            }
        }
    }

    /// Waits for the next change, patch answer, change of leadership, or `until`.
    async fn wake(
        &mut self,
        changes: &mut mpsc::UnboundedReceiver<Change>,
        leading: &mut watch::Receiver<bool>,
        until: Instant,
    ) -> Wake {
        tokio::select! {
            change = changes.recv() => change.map_or(Wake::Closed, Wake::Change),
            outcome = self.annotations.next() => Wake::Annotated(outcome),
            _ = tokio::time::sleep_until(until) => Wake::Due,
            r = leading.changed() => if r.is_ok() { Wake::Leading } else { Wake::Closed },
        }
    }

    /// Adds a change or a patch answer to the next step's work. True when the step has a pod
    /// or change to look at (an answered patch usually needs nothing more).
    fn take_in(&mut self, wake: Wake, work: &mut Work) -> bool {
        match wake {
            Wake::Change(change) => {
                work.add(change);
                true
            }
            Wake::Annotated(outcome) => match self.annotated(outcome) {
                Some(key) => {
                    work.pods.insert(key);
                    true
                }
                None => false,
            },
            Wake::Due | Wake::Leading | Wake::Closed => false,
        }
    }

    /// Waits while [`PATCH_BACKLOG`] patches are queued, at most [`BACKLOG_PATIENCE`], taking
    /// in changes and answers meanwhile. False when the engine must stop.
    async fn await_backlog(
        &mut self,
        work: &mut Work,
        changes: &mut mpsc::UnboundedReceiver<Change>,
        leading: &mut watch::Receiver<bool>,
    ) -> bool {
        let patience = Instant::now() + BACKLOG_PATIENCE;
        while self.annotations.in_flight() >= PATCH_BACKLOG {
            match self.wake(changes, leading, patience).await {
                Wake::Closed => return false,
                Wake::Due => break,
                Wake::Leading if !*leading.borrow() => return false,
                wake => {
                    self.take_in(wake, work);
                }
            }
        }
        true
    }

    fn next_deadline(&self) -> Instant {
        let mut deadline = self.sweep.next();
        if let Some(status) = self.status.next() {
            deadline = deadline.min(status);
        }
        if let Some(due) = self.queue.next_due() {
            deadline = deadline.min(due);
        }
        if let Some(due) = self.coalescer.next_due() {
            deadline = deadline.min(due);
        }
        deadline
    }

    /// One round of decisions and writes.
    pub(crate) async fn step(&mut self, work: Work) {
        self.model.set_clock(unix_now());
        self.sync_blocks(work.all_blocks, &work.blocks).await;
        if work.pools || work.all_blocks {
            self.refresh_pools();
        }
        for gone in &work.gone {
            self.queue.done(&gone.key);
            let (released, parked) =
                self.release_pod(&gone.uid, &gone.key.name, gone.statefulset.as_deref());
            if released > 0 {
                tracing::info!(pod = %gone.key, released, "released the addresses of a deleted pod");
                self.cluster.metrics.released("deleted", released);
            }
            if parked > 0 {
                tracing::info!(pod = %gone.key, parked, "kept the sticky addresses of a deleted StatefulSet pod for its successor");
            }
        }
        for node in &work.gone_nodes {
            self.model.release_affinity(node);
        }
        self.declare_in_use(work.all_pods, &work.pods);
        self.report_troubles().await;

        let now = Instant::now();
        if work.all_pods {
            // Every pod, waiting ones included, is looked at again: a slice per step (below), so
            // that a pass over 150,000 pods neither holds a decision for each at once nor keeps
            // the pods bound meanwhile waiting until it is over. Sorted by node, so that a slice
            // touches the blocks of few nodes and each block is written about once.
            self.queue.start_pass(self.stores.pods.keys_by_node());
        }
        let mut pods = work.pods;
        pods.extend(self.queue.due(now, work.pools || work.context));
        // The next slice of the pass once at most a slice's annotations wait.
        if self.annotations.in_flight() <= ALL_PODS_SLICE {
            pods.extend(self.queue.next_slice(ALL_PODS_SLICE));
        }
        self.assign(pods).await;

        if self.sweep.due(now) {
            self.sweep().await;
        }
        self.pool_housekeeping().await;
        if self.status.due(Instant::now()) {
            self.write_pool_status().await;
        }
    }
}
