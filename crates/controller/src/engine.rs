//! The leader's loop: gather changes, decide with the core, write blocks, then pods.
//!
//! One task owns the in-memory model of every block, so decisions never race each other. Each
//! step takes every change that arrived (a burst of bound pods becomes one step), makes all
//! allocations and releases in memory, writes each changed block once (compare-and-swap on its
//! sequence number), and only then annotates the pods whose blocks were written. A failed block
//! write re-reads that block and leaves its pods for the next step, so nothing is annotated
//! with an address that no block records.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::annotations::{Annotations, Job, Outcome, Pending};
use crate::blocks::{BlockStore, WriteError};
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::model::Model;
use crate::pods::PodKey;
use crate::world::{Change, Kind, Stores};

/// How long the loop keeps collecting changes after the first one, so that a burst of bound
/// pods is decided and written together.
const BATCH_WINDOW: Duration = Duration::from_millis(20);
/// At most this often the pools' status is written.
const STATUS_INTERVAL: Duration = Duration::from_secs(2);
/// Writes in flight at once.
const WRITE_CONCURRENCY: usize = 32;
/// Pods decided together when the leader looks at every pod (start, relist); the next slice
/// waits until at most this many annotations are queued.
const ALL_PODS_SLICE: usize = 5_000;
/// With this many pod patches queued or in flight, the next step waits for some to be answered:
/// the patches are then the bottleneck, and pods that arrive meanwhile join one larger step, so
/// that a node's block is written once for many of them instead of once for each few.
const PATCH_BACKLOG: usize = 2 * crate::annotations::PATCH_CONCURRENCY;
/// The longest a step waits for that backlog to shrink.
const BACKLOG_PATIENCE: Duration = Duration::from_secs(1);

/// What one step has to look at.
#[derive(Default)]
pub(crate) struct Work {
    pub(crate) pods: HashSet<PodKey>,
    pub(crate) gone: Vec<(String, PodKey)>,
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
            Change::PodGone { uid, key } => self.gone.push((uid, key)),
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
            Change::Relisted(Kind::Pool) => self.pools = true,
            Change::Relisted(Kind::Namespace | Kind::Node) => self.context = true,
        }
    }
}

/// What ended the engine's wait.
enum Wake {
    Change(Change),
    Annotated(Outcome),
    Due,
    Leading,
}

/// A pod that could not get an address, waiting for its cause to change or its backoff.
pub(crate) struct Waiting {
    pub(crate) message: String,
    pub(crate) attempts: u32,
    pub(crate) due: Instant,
}

/// The leader's state.
pub struct Engine {
    pub(crate) client: Client,
    pub(crate) settings: Settings,
    pub(crate) stores: Stores,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) recorder: Recorder,
    pub(crate) blocks: BlockStore,
    pub(crate) model: Model,
    pub(crate) annotations: Annotations,
    /// The pods a pass over every pod (leader start, relist) has not looked at yet.
    pass: VecDeque<PodKey>,
    pub(crate) waiting: HashMap<PodKey, Waiting>,
    pub(crate) suspects: HashMap<String, Instant>,
    pub(crate) node_suspects: HashMap<String, Instant>,
    pub(crate) status_dirty: bool,
    /// Addresses were released: pods waiting for room get another chance at the next step.
    pub(crate) freed: bool,
    next_status: Instant,
    next_sweep: Instant,
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
        let now = Instant::now();
        Engine {
            recorder: Recorder::new(client.clone(), reporter),
            blocks: BlockStore::new(client.clone()),
            model: Model::new(settings.strict_affinity),
            annotations: Annotations::new(client.clone()),
            pass: VecDeque::new(),
            client,
            metrics,
            stores,
            waiting: HashMap::new(),
            suspects: HashMap::new(),
            node_suspects: HashMap::new(),
            status_dirty: true,
            freed: false,
            next_status: now,
            // The first sweep runs at once: it starts the grace period of whatever leaked while
            // no controller was running.
            next_sweep: now,
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
            let mut queued = !work.is_empty() || !self.pass.is_empty();
            // Answers that came during the step, taken in even when changes keep coming.
            while let Some(outcome) = self.annotations.try_next() {
                if let Some(key) = self.annotated(outcome) {
                    work.pods.insert(key);
                    queued = true;
                }
            }
            while let Ok(change) = changes.try_recv() {
                work.add(change);
                queued = true;
            }
            if queued {
                continue;
            }
            // Wait for something to do. Answers to pod patches are taken in as they come; only
            // a pod the engine must look at again makes a step.
            loop {
                let deadline = self.next_deadline();
                let woke = tokio::select! {
                    change = changes.recv() => match change {
                        Some(change) => Wake::Change(change),
                        None => return,
                    },
                    outcome = self.annotations.next() => Wake::Annotated(outcome),
                    _ = tokio::time::sleep_until(deadline) => Wake::Due,
                    r = leading.changed() => match r {
                        Ok(()) => Wake::Leading,
                        Err(_) => return,
                    },
                };
                match woke {
                    Wake::Change(change) => {
                        work.add(change);
                        break;
                    }
                    Wake::Annotated(outcome) => {
                        if let Some(key) = self.annotated(outcome) {
                            work.pods.insert(key);
                            break;
                        }
                    }
                    Wake::Due | Wake::Leading => break,
                }
            }
            if !*leading.borrow() {
                return;
            }
            // Let a burst arrive, then take everything queued.
            let window = tokio::time::sleep(BATCH_WINDOW);
            tokio::pin!(window);
            loop {
                tokio::select! {
                    change = changes.recv() => match change {
                        Some(change) => work.add(change),
                        None => return,
                    },
                    outcome = self.annotations.next() => {
                        if let Some(key) = self.annotated(outcome) {
                            work.pods.insert(key);
                        }
                    }
                    _ = &mut window => break,
                }
            }
            while let Ok(change) = changes.try_recv() {
                work.add(change);
            }
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
        let patience = tokio::time::sleep(BACKLOG_PATIENCE);
        tokio::pin!(patience);
        while self.annotations.in_flight() >= PATCH_BACKLOG {
            tokio::select! {
                change = changes.recv() => match change {
                    Some(change) => work.add(change),
                    None => return false,
                },
                outcome = self.annotations.next() => {
                    if let Some(key) = self.annotated(outcome) {
                        work.pods.insert(key);
                    }
                }
                _ = &mut patience => break,
                r = leading.changed() => {
                    if r.is_err() || !*leading.borrow() {
                        return false;
                    }
                }
            }
        }
        true
    }

    fn next_deadline(&self) -> Instant {
        if self.freed {
            return Instant::now();
        }
        let mut deadline = self.next_sweep;
        if self.status_dirty {
            deadline = deadline.min(self.next_status);
        }
        if let Some(due) = self.waiting.values().map(|w| w.due).min() {
            deadline = deadline.min(due);
        }
        deadline
    }

    /// One round of decisions and writes.
    pub(crate) async fn step(&mut self, work: Work) {
        self.sync_blocks(work.all_blocks, &work.blocks).await;
        if work.pools || work.all_blocks {
            self.refresh_pools();
        }
        for (uid, key) in &work.gone {
            self.waiting.remove(key);
            let released = self.release(uid);
            if released > 0 {
                tracing::info!(pod = %key, released, "released the addresses of a deleted pod");
                self.metrics.released("deleted", released);
            }
        }
        for node in &work.gone_nodes {
            self.model.release_affinity(node);
        }

        let now = Instant::now();
        if work.all_pods {
            // Every pod, waiting ones included, is looked at again: a slice per step (below), so
            // that a pass over 150,000 pods neither holds a decision for each at once nor keeps
            // the pods bound meanwhile waiting until it is over. Sorted by node, so that a slice
            // touches the blocks of few nodes and each block is written about once.
            // A relist during a pass keeps the pods not looked at yet first, so that relists in
            // a row cannot keep the pass from reaching the last nodes.
            let everyone = self.stores.pods.keys_by_node();
            let again: Vec<PodKey> = {
                let queued: HashSet<&PodKey> = self.pass.iter().collect();
                everyone
                    .into_iter()
                    .filter(|k| !queued.contains(k))
                    .collect()
            };
            self.pass.extend(again);
        }
        let mut pods = work.pods;
        let wake_all = work.pools || work.context || std::mem::take(&mut self.freed);
        pods.extend(
            self.waiting
                .iter()
                .filter(|(_, w)| wake_all || w.due <= now)
                .map(|(k, _)| k.clone()),
        );
        // The next slice of the pass once at most a slice's annotations wait.
        if self.annotations.in_flight() <= ALL_PODS_SLICE {
            let slice = self.pass.len().min(ALL_PODS_SLICE);
            pods.extend(self.pass.drain(..slice));
        }
        self.assign(pods).await;

        if now >= self.next_sweep {
            self.sweep().await;
            self.next_sweep = Instant::now() + self.settings.sweep_interval;
        }
        self.pool_housekeeping().await;
        if self.status_dirty && Instant::now() >= self.next_status {
            self.write_pool_status().await;
            self.next_status = Instant::now() + STATUS_INTERVAL;
        }
    }

    /// Releases everything a pod holds; pods waiting for room get another chance.
    pub(crate) fn release(&mut self, handle: &str) -> u64 {
        let released = self.model.release_handle(handle);
        self.freed |= released > 0;
        released
    }

    /// Brings the model up to date with the blocks the watch has seen.
    async fn sync_blocks(&mut self, all: bool, names: &HashSet<String>) {
        let candidates: Vec<String> = if all {
            let mut names: HashSet<String> = self
                .stores
                .blocks
                .state()
                .iter()
                .map(|b| kube::ResourceExt::name_any(b.as_ref()))
                .collect();
            names.extend(self.model.block_names());
            names.into_iter().collect()
        } else {
            names.iter().cloned().collect()
        };
        for name in candidates {
            let cached = self.stores.blocks.get(&ObjectRef::new(&name));
            match cached {
                Some(block) if self.model.is_newer(&block) => self.model.accept(&block),
                Some(block) => {
                    self.model.share(&block);
                    continue;
                }
                // Gone from the cache: confirm with the API server before forgetting it, since
                // the cache may simply not have caught up with a block we just created.
                None if self.model.knows(&name) => self.reload_block(&name).await,
                None => continue,
            }
            // Counts changed: the pools' status is due (an idle controller writes nothing).
            self.status_dirty = true;
        }
    }

    /// Re-reads one block from the API server into the model, dropping whatever the model had
    /// decided for it that was not written.
    pub(crate) async fn reload_block(&mut self, name: &str) {
        match self.blocks.read(name).await {
            Ok(Some(block)) => self.model.accept(&Arc::new(block)),
            Ok(None) => self.model.forget(name),
            Err(e) => {
                // Keep what we have; a later write will fail its test and come back here.
                tracing::warn!(block = name, error = %e, "could not re-read block");
            }
        }
    }

    /// Writes every block the model changed, and starts annotating each pending pod as soon as
    /// its blocks are written. Returns the pods whose blocks could not be written.
    pub(crate) async fn flush_blocks(&mut self, mut pending: Pending) -> Vec<Job> {
        let writes = self.model.take_writes();
        let writing: HashSet<String> = writes.iter().map(|w| w.name().to_owned()).collect();
        self.annotations.start(pending.begin(&writing));
        if writes.is_empty() {
            return Vec::new();
        }
        let store = self.blocks.clone();
        let mut results = futures::stream::iter(writes)
            .map(|write| {
                let store = store.clone();
                async move {
                    let result = write.perform(&store).await;
                    (write.name().to_owned(), result)
                }
            })
            .buffer_unordered(WRITE_CONCURRENCY);
        let mut blocked = Vec::new();
        while let Some((name, result)) = results.next().await {
            match result {
                Ok(written) => {
                    match written {
                        Some(block) => self.model.accept(&Arc::new(block)),
                        None => self.model.forget(&name),
                    }
                    self.annotations.start(pending.written(&name));
                }
                Err(e) => {
                    if matches!(e, WriteError::Conflict(_) | WriteError::Gone(_)) {
                        self.metrics.conflict("ipamblock");
                        tracing::debug!(block = %name, error = %e, "block changed meanwhile; re-reading it");
                    } else {
                        tracing::warn!(block = %name, error = %e, "block write failed");
                    }
                    self.reload_block(&name).await;
                    blocked.extend(pending.not_written(&name));
                }
            }
        }
        self.status_dirty = true;
        blocked
    }

    /// Publishes an Event; failures to publish are logged, never fatal.
    pub(crate) async fn event(
        &self,
        reference: &k8s_openapi::api::core::v1::ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
        action: &str,
    ) {
        let event = KubeEvent {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate(note, 1000)),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, reference).await {
            tracing::warn!(error = %e, reason, "could not publish event");
        }
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}
