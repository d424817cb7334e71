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
//! two sweeps at least the grace period apart (the core's [`Absence`]). The same rule returns a
//! node's empty blocks beyond one spare per pool, so that a small pool is not stranded on nodes
//! that once ran a pod.
//!
//! Parked sticky records (`ipam::sticky`) belong to no pod: they are released when a direct
//! read shows their StatefulSet gone, or scaled below their ordinal.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ipam::absence::Absence;
use ipam::choice::NotAdmitted;
use ipnet::IpNet;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tokio::time::Instant;

use crate::engine::Engine;
use crate::model::Owner;
use crate::pods::PodInfo;
use crate::world::Surroundings;

/// The sweep's state: which nodes are missing since when, which pods hold addresses their pool
/// no longer admits, and when the next sweep runs.
pub(crate) struct Sweep {
    /// Nodes blocks are affine to that are missing.
    nodes: Absence<String>,
    /// Empty blocks a node keeps beyond its one spare per pool.
    spare: Absence<IpNet>,
    /// Drift already reported, by handle and pool, with its message, so each is reported once.
    drifted: HashMap<String, String>,
    /// Pods holding an address that is now reserved, by handle and address, reported once.
    reserved: HashSet<String>,
    /// Per pool: addresses held by pods the pool no longer admits.
    not_admitted: HashMap<String, u64>,
    next: Instant,
}

impl Sweep {
    /// The first sweep runs at once: it releases what leaked while no controller was running,
    /// and starts the grace period of nodes that are gone.
    pub(crate) fn new(grace: Duration) -> Sweep {
        Sweep {
            nodes: Absence::new(grace),
            spare: Absence::new(grace),
            drifted: HashMap::new(),
            reserved: HashSet::new(),
            not_admitted: HashMap::new(),
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

    /// Addresses of `pool` held by pods the pool no longer admits, as of the last sweep.
    pub(crate) fn not_admitted(&self, pool: &str) -> u64 {
        self.not_admitted.get(pool).copied().unwrap_or(0)
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

        self.unpark().await;
        self.check_admission().await;

        // Blocks that hold nothing and belong to no node go back to their pool, and so do a
        // node's empty blocks beyond one spare per pool once they stayed empty a grace period.
        self.model.drop_empty_unaffine_blocks();
        let spare = self.sweep.spare.observe(now, self.model.spare_blocks());
        if !spare.is_empty() {
            tracing::info!(
                blocks = spare.len(),
                "returning spare empty blocks to their pools"
            );
            self.model.drop_spare_blocks(&spare);
        }
        self.flush_blocks().await;
        self.sweep.next = Instant::now() + self.settings.sweep_interval;
    }

    /// Finds the pods holding addresses their pool no longer admits (the core's rule). They keep
    /// their addresses, which are in use; each is reported once by a Warning Event on the pod,
    /// and counted on its pool's status and metric.
    async fn check_admission(&mut self) {
        let mut found: HashMap<String, (Arc<PodInfo>, NotAdmitted)> = HashMap::new();
        let mut reserved = Vec::new();
        for pod in self.stores.pods.all() {
            if !pod.wants_address() {
                continue;
            }
            for held in self
                .model
                .held_any(&pod.uid)
                .into_iter()
                .filter(|h| self.model.is_reserved(h.address))
            {
                reserved.push((pod.clone(), held));
            }
            let Some(node) = pod.node.as_deref() else {
                continue;
            };
            let surroundings = Surroundings::of(&self.stores, &pod, node);
            let context = surroundings.context(&pod, node, &[]);
            let drift = self.model.drift(&context, &pod.uid).unwrap_or_default();
            for d in drift {
                found.insert(format!("{}/{}", pod.uid, d.pool()), (pod.clone(), d));
            }
        }
        let mut counts: HashMap<String, u64> = HashMap::new();
        let mut reported = HashMap::with_capacity(found.len());
        for (key, (pod, drift)) in found {
            *counts.entry(drift.pool().to_owned()).or_default() += 1;
            let message = drift.to_string();
            let known = self.sweep.drifted.get(&key) == Some(&message);
            reported.insert(key, message.clone());
            if known {
                continue;
            }
            tracing::warn!(pod = %pod.key, pool = drift.pool(), reason = drift.reason(), "{message}");
            self.cluster
                .event(
                    &pod.reference(),
                    EventType::Warning,
                    drift.reason(),
                    format!(
                        "{message}; the pod keeps the address while it runs. Fix the labels or annotation, or re-create the pod to get an address its pools admit"
                    ),
                    "CheckAdmission",
                )
                .await;
        }
        self.sweep.drifted = reported;
        let mut still = HashSet::with_capacity(reserved.len());
        for (pod, held) in reserved {
            let key = format!("{}/{}", pod.uid, held.address);
            still.insert(key.clone());
            if self.sweep.reserved.contains(&key) {
                continue;
            }
            let message = format!(
                "pod {} holds {} of pool {}, which is now reserved (an IPReservation, or an edge address the pool keeps back); the pod keeps it while it runs, and no other pod will get it",
                pod.key, held.address, held.pool
            );
            tracing::warn!(pod = %pod.key, address = %held.address, "{message}");
            self.cluster
                .event(
                    &pod.reference(),
                    EventType::Warning,
                    "ReservedAddressHeld",
                    message,
                    "CheckAdmission",
                )
                .await;
        }
        self.sweep.reserved = still;
        let pools: HashSet<String> = counts
            .keys()
            .chain(self.sweep.not_admitted.keys())
            .cloned()
            .collect();
        for pool in pools {
            let n = counts.get(&pool).copied().unwrap_or(0);
            self.cluster
                .metrics
                .pool_not_admitted
                .get_or_create(&crate::metrics::PoolLabel { pool: pool.clone() })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        if counts != self.sweep.not_admitted {
            self.sweep.not_admitted = counts;
            self.status.changed();
        }
    }

    /// Releases parked sticky records whose StatefulSet is gone, or no longer has their
    /// ordinal (the core's rule, `ipam::sticky::Parked::due`), as a direct read of the
    /// StatefulSet shows it. A failed read keeps the record until the next sweep.
    async fn unpark(&mut self) {
        // Each StatefulSet is read once per sweep, however many of its pods are parked.
        let mut read: HashMap<(String, String), Option<StatefulSet>> = HashMap::new();
        for owner in self.model.parked() {
            let Some(parked) = ipam::sticky::Parked::parse(&owner.handle) else {
                continue;
            };
            let now = match parked.statefulset() {
                None => None,
                Some((name, _)) => {
                    let key = (owner.namespace.clone(), name.to_owned());
                    if !read.contains_key(&key) {
                        let api: Api<StatefulSet> =
                            Api::namespaced(self.cluster.client.clone(), &owner.namespace);
                        match api.get_opt(name).await {
                            Ok(sts) => {
                                read.insert(key.clone(), sts);
                            }
                            Err(e) => {
                                tracing::warn!(pod = %format!("{}/{}", owner.namespace, owner.pod), error = %e, "could not read the StatefulSet of a parked sticky address; keeping it");
                                continue;
                            }
                        }
                    }
                    read.get(&key).and_then(Option::as_ref)
                }
            };
            let facts = now.map(|s| ipam::sticky::StatefulSetNow {
                uid: s.metadata.uid.as_deref().unwrap_or_default(),
                replicas: s
                    .spec
                    .as_ref()
                    .and_then(|s| s.replicas)
                    .map_or(1, |r| u32::try_from(r).unwrap_or(0)),
                start: s
                    .spec
                    .as_ref()
                    .and_then(|s| s.ordinals.as_ref())
                    .and_then(|o| o.start)
                    .map_or(0, |n| u32::try_from(n).unwrap_or(0)),
            });
            let Some(why) = parked.due(facts) else {
                continue;
            };
            let released = self.release(&owner.handle);
            if released > 0 {
                tracing::info!(pod = %format!("{}/{}", owner.namespace, owner.pod), released, "released a parked sticky address: {why}");
                self.cluster.metrics.released("sticky", released);
            }
        }
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
