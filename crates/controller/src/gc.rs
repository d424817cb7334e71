//! The leak sweep: allocations whose pod is gone, affinities of nodes that are gone, and empty
//! blocks nobody needs.
//!
//! A deleted pod normally has its addresses released at once from its watch event. The sweep is
//! for what the events missed: pods deleted while no controller ran, or during a watch gap. The
//! rule of when something counts as gone is the core's [`Absence`]: missing in two sweeps at
//! least the grace period apart. Here is only what the rule needs and what follows from it: the
//! cache's view of what is missing, a direct read from the API server (not the cache) right
//! before a release confirms that the pod is gone, and the release itself, which names the
//! allocation's handle and sequence, so an address re-assigned meanwhile is never freed.

use std::collections::HashSet;
use std::time::Duration;

use ipam::absence::Absence;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, ResourceExt};
use tokio::time::Instant;

use crate::annotations::Pending;
use crate::engine::Engine;
use crate::model::Owner;

/// The sweep's state: what is missing since when, and when the next sweep runs.
pub(crate) struct Sweep {
    /// Handles whose pod is missing.
    pods: Absence<String>,
    /// Nodes blocks are affine to that are missing.
    nodes: Absence<String>,
    next: Instant,
}

impl Sweep {
    /// The first sweep runs at once: it starts the grace period of whatever leaked while no
    /// controller was running.
    pub(crate) fn new(grace: Duration) -> Sweep {
        Sweep {
            pods: Absence::new(grace),
            nodes: Absence::new(grace),
            next: Instant::now(),
        }
    }

    /// When the next sweep is due.
    pub(crate) fn next(&self) -> Instant {
        self.next
    }

    /// Whether a sweep is due at `now`.
    pub(crate) fn due(&self, now: Instant) -> bool {
        now >= self.next
    }
}

impl Engine {
    /// One sweep.
    pub(crate) async fn sweep(&mut self) {
        let now = Instant::now().into_std();
        let model = &self.model;
        let orphans: Vec<Owner> = self
            .stores
            .pods
            .with_uids(|live| model.owners_except(|handle| live.contains(handle)));
        let due: HashSet<String> = self
            .sweep
            .pods
            .observe(now, orphans.iter().map(|o| o.handle.clone()))
            .into_iter()
            .collect();
        for owner in orphans.iter().filter(|o| due.contains(&o.handle)) {
            if self.confirmed_gone(owner).await {
                let released = self.release(&owner.handle);
                if released > 0 {
                    tracing::info!(pod = %format!("{}/{}", owner.namespace, owner.pod), handle = %owner.handle, released, "released leaked addresses");
                    self.cluster.metrics.released("leak", released);
                    self.cluster.metrics.gc_reclaimed.inc_by(released);
                }
            }
        }
        self.cluster
            .metrics
            .gc_candidates
            .set(i64::try_from(self.sweep.pods.len()).unwrap_or(i64::MAX));

        // Nodes: the same rule before a block loses its affinity.
        let nodes: HashSet<String> = self
            .stores
            .nodes
            .state()
            .iter()
            .map(|n| n.name_any())
            .collect();
        let absent = self
            .model
            .affine_nodes()
            .into_iter()
            .filter(|n| !nodes.contains(n));
        for node in self.sweep.nodes.observe(now, absent) {
            tracing::info!(node = %node, "node is gone; its blocks lose their affinity");
            self.model.release_affinity(&node);
        }

        // Blocks that hold nothing and belong to no node go back to their pool.
        self.model.drop_empty_unaffine_blocks();
        self.flush_blocks(Pending::default()).await;
        self.sweep.next = Instant::now() + self.settings.sweep_interval;
    }

    /// A direct read says the allocation's pod is gone (or was re-created with another UID).
    async fn confirmed_gone(&self, owner: &Owner) -> bool {
        let api: Api<Pod> = Api::namespaced(self.cluster.client.clone(), &owner.namespace);
        match api.get_opt(&owner.pod).await {
            Ok(None) => true,
            Ok(Some(pod)) => pod.uid().as_deref() != Some(owner.handle.as_str()),
            Err(e) => {
                tracing::warn!(pod = %format!("{}/{}", owner.namespace, owner.pod), error = %e, "could not re-check a suspected leak; keeping it");
                false
            }
        }
    }
}
