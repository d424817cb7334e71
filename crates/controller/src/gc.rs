//! The leak sweep: allocations whose pod is gone, affinities of nodes that are gone, and empty
//! blocks nobody needs.
//!
//! A deleted pod normally has its addresses released at once from its watch event. The sweep is
//! for what the events missed: pods deleted while no controller ran, or during a watch gap. An
//! allocation is released only after its pod was found missing in two sweeps at least the grace
//! period apart, and after a direct read from the API server (not the cache) right before the
//! release confirms that the pod is gone; the release itself names the allocation's handle and
//! sequence, so an address re-assigned meanwhile is never freed.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, ResourceExt};
use tokio::time::Instant;

use crate::annotations::Pending;
use crate::engine::Engine;

impl Engine {
    /// One sweep.
    pub(crate) async fn sweep(&mut self) {
        let now = Instant::now();
        let grace = self.settings.leak_grace;
        let model = &self.model;
        let orphans = self
            .stores
            .pods
            .with_uids(|live| model.owners_except(|handle| live.contains(handle)));

        let mut missing = HashSet::new();
        let mut due = Vec::new();
        for owner in orphans {
            missing.insert(owner.handle.clone());
            let first = *self.suspects.entry(owner.handle.clone()).or_insert(now);
            if now.duration_since(first) >= grace {
                due.push(owner);
            }
        }
        self.suspects.retain(|handle, _| missing.contains(handle));

        for owner in due {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &owner.namespace);
            let gone = match api.get_opt(&owner.pod).await {
                Ok(None) => true,
                Ok(Some(pod)) => pod.uid().as_deref() != Some(owner.handle.as_str()),
                Err(e) => {
                    tracing::warn!(pod = %format!("{}/{}", owner.namespace, owner.pod), error = %e, "could not re-check a suspected leak; keeping it");
                    false
                }
            };
            if gone {
                let released = self.release(&owner.handle);
                if released > 0 {
                    tracing::info!(pod = %format!("{}/{}", owner.namespace, owner.pod), handle = %owner.handle, released, "released leaked addresses");
                    self.metrics.released("leak", released);
                    self.metrics.gc_reclaimed.inc_by(released);
                }
            }
            self.suspects.remove(&owner.handle);
        }
        self.metrics
            .gc_candidates
            .set(i64::try_from(self.suspects.len()).unwrap_or(i64::MAX));

        // Nodes: the same two-observation rule before a block loses its affinity.
        let nodes: HashSet<String> = self
            .stores
            .nodes
            .state()
            .iter()
            .map(|n| n.name_any())
            .collect();
        let mut absent = HashSet::new();
        for node in self.model.affine_nodes() {
            if nodes.contains(&node) {
                continue;
            }
            let first = *self.node_suspects.entry(node.clone()).or_insert(now);
            if now.duration_since(first) >= grace {
                tracing::info!(node = %node, "node is gone; its blocks lose their affinity");
                self.model.release_affinity(&node);
            } else {
                absent.insert(node);
            }
        }
        self.node_suspects.retain(|n, _| absent.contains(n));

        // Blocks that hold nothing and belong to no node go back to their pool.
        self.model.drop_empty_unaffine_blocks();
        self.flush_blocks(Pending::default()).await;
    }
}
