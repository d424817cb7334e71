//! Keeping the model and the API server's blocks in step: taking in the blocks the watch shows,
//! and writing every block the model changed, at most [`WRITE_CONCURRENCY`] at once, before the
//! pods whose addresses they record are annotated.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use tokio::time::Instant;

use crate::annotations::Job;
use crate::blocks::WriteError;
use crate::engine::Engine;
use crate::pods::PodKey;

/// Writes in flight at once.
const WRITE_CONCURRENCY: usize = 32;

impl Engine {
    /// Releases everything a pod holds; pods waiting for room get another chance.
    pub(crate) fn release(&mut self, handle: &str) -> u64 {
        self.model.set_in_use(handle, &[]);
        let released = self.model.release_handle(handle);
        if released > 0 {
            self.queue.freed();
        }
        released
    }

    /// Releases what a pod that is gone or finished holds, but parks its addresses of sticky
    /// pools when a StatefulSet controlled it (see `ipam::sticky`). Returns how many were
    /// released and how many parked.
    pub(crate) fn release_pod(
        &mut self,
        handle: &str,
        pod: &str,
        statefulset: Option<&str>,
    ) -> (u64, u64) {
        self.model.set_in_use(handle, &[]);
        let (released, parked) = self.model.release_pod(handle, pod, statefulset);
        if released > 0 {
            self.queue.freed();
        }
        (released, parked)
    }

    /// Tells the model which addresses the changed pods (all of them, after a relist) are seen
    /// using, before any pod is given one: an address a live pod uses goes to no other pod,
    /// whatever order the pods are looked at in.
    pub(crate) fn declare_in_use(&mut self, all: bool, keys: &HashSet<PodKey>) {
        let pods = if all {
            self.stores.pods.all()
        } else {
            keys.iter()
                .filter_map(|k| self.stores.pods.get(k))
                .collect()
        };
        for pod in pods {
            let in_use = if pod.wants_address() {
                pod.in_use()
            } else {
                Vec::new()
            };
            self.model.set_in_use(&pod.uid, &in_use);
        }
    }

    /// Reports the blocks the model found unusable: a Warning Event on the block's pool and a
    /// metric each.
    pub(crate) async fn report_troubles(&mut self) {
        for t in self.model.take_troubles() {
            self.cluster.metrics.block_trouble(t.reason);
            let reference = k8s_openapi::api::core::v1::ObjectReference {
                api_version: Some(api::IPPool::api_version(&()).into_owned()),
                kind: Some("IPPool".into()),
                name: Some(t.pool.clone()),
                ..Default::default()
            };
            self.cluster
                .event(
                    &reference,
                    kube::runtime::events::EventType::Warning,
                    t.reason,
                    t.message,
                    "ReadBlock",
                )
                .await;
        }
    }

    /// Brings the model up to date with the blocks the watch has seen.
    pub(crate) async fn sync_blocks(&mut self, all: bool, names: &HashSet<String>) {
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
            self.status.changed();
        }
    }

    /// Re-reads one block from the API server into the model, dropping whatever the model had
    /// decided for it that was not written.
    pub(crate) async fn reload_block(&mut self, name: &str) {
        match self.cluster.blocks.read(name).await {
            Ok(Some(block)) => self.model.accept(&Arc::new(block)),
            Ok(None) => self.model.forget(name),
            Err(e) => {
                // Keep what we have; a later write will fail its test and come back here.
                tracing::warn!(block = name, error = %e, "could not re-read block");
            }
        }
    }

    /// Writes the blocks the model changed that are due ([`crate::coalesce`]), and starts
    /// annotating each waiting pod as soon as its blocks are written. A pod whose block could
    /// not be written is decided again.
    pub(crate) async fn flush_blocks(&mut self) {
        let changes = self.model.changes();
        let backed_up = self.annotations.in_flight() >= crate::annotations::PATCH_CONCURRENCY;
        let mut round = self
            .coalescer
            .start_round(Instant::now(), changes, backed_up);
        let writes = self.model.take_writes_if(|name| round.due(name));
        let mut blocked = Vec::new();
        for name in round.end() {
            blocked.extend(self.waiting.not_written(&name));
        }
        let writing: HashSet<String> = writes.iter().map(|w| w.name().to_owned()).collect();
        let coalescer = &self.coalescer;
        let ready = self
            .waiting
            .begin(|block| writing.contains(block) || coalescer.holds(block));
        self.annotate(ready);
        let store = self.cluster.blocks.clone();
        let mut results = futures::stream::iter(writes)
            .map(|write| {
                let store = store.clone();
                async move {
                    let result = write.perform(&store).await;
                    (write.name().to_owned(), result)
                }
            })
            .buffer_unordered(WRITE_CONCURRENCY);
        let mut wrote = false;
        while let Some((name, result)) = results.next().await {
            wrote = true;
            match result {
                Ok(written) => {
                    match written {
                        Some(block) => self.model.accept(&Arc::new(block)),
                        None => self.model.forget(&name),
                    }
                    let ready = self.waiting.written(&name);
                    self.annotate(ready);
                }
                Err(e) => {
                    if matches!(e, WriteError::Conflict(_) | WriteError::Gone(_)) {
                        self.cluster.metrics.conflict("ipamblock");
                        tracing::debug!(block = %name, error = %e, "block changed meanwhile; re-reading it");
                    } else {
                        tracing::warn!(block = %name, error = %e, "block write failed");
                    }
                    self.reload_block(&name).await;
                    blocked.extend(self.waiting.not_written(&name));
                }
            }
        }
        if wrote {
            self.status.changed();
        }
        for job in blocked {
            // Its block changed under us and was re-read; decide again right away.
            self.queue.retry(
                &job.pod.key,
                "block changed while assigning".into(),
                Duration::ZERO,
            );
        }
    }

    /// Starts annotating pods whose blocks are written, each with what the model still records
    /// for it: a pod released, or whose block was re-read, while it waited is decided again.
    fn annotate(&mut self, jobs: Vec<Job>) {
        let (current, stale): (Vec<Job>, Vec<Job>) =
            jobs.into_iter().partition(|job| self.still_held(job));
        for job in stale {
            self.queue.retry(
                &job.pod.key,
                "its addresses changed while its block was written".into(),
                Duration::ZERO,
            );
        }
        self.annotations.start(current);
    }

    fn still_held(&self, job: &Job) -> bool {
        let Some(held) = self.model.held(&job.pod.uid, &self.settings.families) else {
            return false;
        };
        let wanted: Vec<IpAddr> = [&job.assignment.ipv4, &job.assignment.ipv6]
            .into_iter()
            .flatten()
            .map(|a| a.address)
            .collect();
        held.len() == wanted.len() && held.iter().all(|h| wanted.contains(&h.address))
    }
}
