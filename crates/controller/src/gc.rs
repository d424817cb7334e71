//! The leak sweep: allocations whose pod is gone, affinities of nodes that are gone, and empty
//! blocks nobody needs.
//!
//! A deleted pod normally has its addresses released at once from its watch event. The sweep is
//! for what the events missed: pods deleted while no controller ran, or during a watch gap, and
//! records nobody's pod holds. An allocation whose pod the cache does not have is released as
//! soon as it is provable: a direct read from the API server (not the cache) shows no pod of that
//! name with the allocation's UID. UIDs are never reused and the controller allocates only for
//! pods it has seen, so that read is proof; no grace period is needed, also at the first sweep
//! after a restart. The release names the allocation's handle and sequence, so an address
//! re-assigned meanwhile is never freed.
//!
//! A node is different: a Node object can be deleted and registered again under the same name
//! (a kubelet re-joining), so a block loses its node's affinity only when the node was missing in
//! two sweeps at least the grace period apart (the core's [`Absence`]).

use std::collections::HashSet;
use std::time::Duration;

use ipam::absence::Absence;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, ResourceExt};
use tokio::time::Instant;

use crate::annotations::Pending;
use crate::engine::Engine;
use crate::model::Owner;

/// The sweep's state: which nodes are missing since when, and when the next sweep runs.
pub(crate) struct Sweep {
    /// Nodes blocks are affine to that are missing.
    nodes: Absence<String>,
    next: Instant,
}

impl Sweep {
    /// The first sweep runs at once: it starts the grace period of whatever leaked while no
    /// controller was running.
    pub(crate) fn new(grace: Duration) -> Sweep {
        Sweep {
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
        let mut unconfirmed = 0usize;
        for owner in &orphans {
            if !self.confirmed_gone(owner).await {
                // The cache lags behind the API server, or the read failed: the next sweep
                // looks again.
                unconfirmed += 1;
                continue;
            }
            let released = self.release(&owner.handle);
            if released > 0 {
                tracing::info!(pod = %format!("{}/{}", owner.namespace, owner.pod), handle = %owner.handle, released, "released leaked addresses: the pod is gone");
                self.cluster.metrics.released("leak", released);
                self.cluster.metrics.gc_reclaimed.inc_by(released);
            }
        }
        self.cluster
            .metrics
            .gc_candidates
            .set(i64::try_from(unconfirmed).unwrap_or(i64::MAX));

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
