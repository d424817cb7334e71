//! Pools: validation through the core, status, the in-use finalizer, and the default pool.

use api::keys::{CONTROLLER_MANAGER, FINALIZER};
use api::pool::ALLOCATABLE;
use api::{IPPool, IPPoolSpec, IPPoolStatus, PoolCondition};
use ipam::cidr::Family;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use std::time::Duration;

use tokio::time::Instant;

use crate::engine::Engine;

/// At most this often the pools' status is written.
const STATUS_INTERVAL: Duration = Duration::from_secs(2);

/// Whether the pools' status needs writing, and when it may be written next.
pub(crate) struct StatusDue {
    changed: bool,
    next: Instant,
}

impl Default for StatusDue {
    /// Due at once: a new leader writes every pool's status.
    fn default() -> StatusDue {
        StatusDue {
            changed: true,
            next: Instant::now(),
        }
    }
}

impl StatusDue {
    /// Something the status shows changed.
    pub(crate) fn changed(&mut self) {
        self.changed = true;
    }

    /// When the status is to be written next, if it changed.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.changed.then_some(self.next)
    }

    /// Whether the status is to be written at `now`.
    pub(crate) fn due(&self, now: Instant) -> bool {
        self.changed && now >= self.next
    }

    /// A write was attempted at `now`.
    fn written(&mut self, now: Instant) {
        self.changed = false;
        self.next = now + STATUS_INTERVAL;
    }
}

impl Engine {
    /// Re-validates every pool and hands the result to the model.
    pub(crate) fn refresh_pools(&mut self) {
        let pools = self.stores.pools.state();
        let inputs: Vec<ipam::pool::PoolInput> = pools.iter().map(|p| p.to_input()).collect();
        self.model
            .set_pools(&inputs, self.settings.pod_cidrs.as_deref());
        let mut reserved = Vec::new();
        for reservation in self.stores.reservations.state() {
            let (ranges, bad) = reservation.spec.ranges();
            reserved.extend(ranges);
            for why in bad {
                // The schema bounds the entries; what it cannot check is reported and skipped.
                tracing::warn!(reservation = %reservation.name_any(), "{why}; the entry is ignored");
            }
        }
        self.model.set_reserved(reserved);
        self.status.changed();
    }

    /// On a cluster with no pool at all, creates one pool per pod CIDR, named as Calico names
    /// its defaults.
    pub(crate) async fn ensure_default_pools(&mut self) {
        if !self.settings.default_pool || !self.stores.pools.state().is_empty() {
            return;
        }
        let Some(cidrs) = self.settings.pod_cidrs.clone() else {
            tracing::warn!("no pool exists and the pod CIDR is unknown: no default pool created");
            return;
        };
        let api: Api<IPPool> = Api::all(self.cluster.client.clone());
        for cidr in cidrs {
            let name = match Family::of(&cidr) {
                Family::V4 => "default-ipv4-ippool",
                Family::V6 => "default-ipv6-ippool",
            };
            let pool = IPPool::new(
                name,
                IPPoolSpec {
                    cidr: cidr.to_string(),
                    ..Default::default()
                },
            );
            let params = PostParams {
                field_manager: Some(CONTROLLER_MANAGER.into()),
                ..Default::default()
            };
            match api.create(&params, &pool).await {
                Ok(_) => tracing::info!(pool = name, %cidr, "created the default pool"),
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => {
                    tracing::warn!(pool = name, error = %e, "could not create the default pool")
                }
            }
        }
    }

    /// Adds the in-use finalizer to pools, and lets a deleted pool go once none of its
    /// addresses is in use: its empty blocks are deleted first, then the finalizer removed.
    pub(crate) async fn pool_housekeeping(&mut self) {
        let api: Api<IPPool> = Api::all(self.cluster.client.clone());
        let mut released_blocks = false;
        for pool in self.stores.pools.state() {
            let name = pool.name_any();
            let finalizers = pool.finalizers();
            let has = finalizers.iter().any(|f| f == FINALIZER);
            let deleting = pool.meta().deletion_timestamp.is_some();
            let new_finalizers: Option<Vec<String>> = match (deleting, has) {
                (false, false) => Some(
                    finalizers
                        .iter()
                        .cloned()
                        .chain([FINALIZER.to_owned()])
                        .collect(),
                ),
                (true, true) if self.model.pool_in_use(&name) => None,
                (true, true) => {
                    if self.model.drop_blocks_of_pool(&name) {
                        // Blocks to delete first; the finalizer goes in a later step.
                        released_blocks = true;
                        None
                    } else {
                        Some(
                            finalizers
                                .iter()
                                .filter(|f| *f != FINALIZER)
                                .cloned()
                                .collect(),
                        )
                    }
                }
                _ => None,
            };
            let Some(new_finalizers) = new_finalizers else {
                continue;
            };
            // The resourceVersion makes this a compare-and-swap on the finalizer list.
            let patch = json!({ "metadata": {
                "resourceVersion": pool.resource_version(),
                "finalizers": new_finalizers,
            }});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
                    self.cluster.metrics.conflict("ippool")
                }
                Err(e) => {
                    tracing::warn!(pool = %name, error = %e, "could not update the pool's finalizers")
                }
            }
        }
        if released_blocks {
            self.flush_blocks().await;
        }
    }

    /// Writes each pool's status where it differs from what the cache shows, and an Event when a
    /// pool becomes not allocatable.
    pub(crate) async fn write_pool_status(&mut self) {
        self.status.written(Instant::now());
        let api: Api<IPPool> = Api::all(self.cluster.client.clone());
        let params = PatchParams::apply(CONTROLLER_MANAGER).force();
        for pool in self.stores.pools.state() {
            let name = pool.name_any();
            let Some(state) = self.model.pool_state(&name) else {
                continue;
            };
            let generation = pool.meta().generation;
            let status = IPPoolStatus {
                observed_generation: generation,
                conditions: vec![PoolCondition {
                    type_: ALLOCATABLE.to_owned(),
                    status: if state.allocatable { "True" } else { "False" }.to_owned(),
                    reason: state.reason.clone(),
                    message: state.message.clone(),
                    observed_generation: generation,
                }],
                capacity: Some(saturating_i64(state.capacity)),
                allocated: Some(saturating_i64(u128::from(state.allocated))),
                free: Some(saturating_i64(
                    state
                        .capacity
                        .saturating_sub(u128::from(state.allocated))
                        .saturating_sub(state.reserved),
                )),
                reserved: Some(saturating_i64(state.reserved)),
                blocks: Some(saturating_i64(u128::from(state.blocks))),
                not_admitted: Some(saturating_i64(u128::from(self.sweep.not_admitted(&name)))),
            };
            let gauge = crate::metrics::PoolLabel { pool: name.clone() };
            self.cluster
                .metrics
                .pool_capacity
                .get_or_create(&gauge)
                .set(saturating_i64(state.capacity));
            self.cluster
                .metrics
                .pool_allocated
                .get_or_create(&gauge)
                .set(saturating_i64(u128::from(state.allocated)));
            // Also 0, so that every pool has the series (the sweep updates it too).
            self.cluster
                .metrics
                .pool_not_admitted
                .get_or_create(&gauge)
                .set(saturating_i64(u128::from(self.sweep.not_admitted(&name))));
            if pool.status.as_ref() == Some(&status) {
                continue;
            }
            let before = pool.allocatable().map(|c| c.reason.clone());
            let patch = json!({
                "apiVersion": "rangepool.dev/v1",
                "kind": "IPPool",
                "status": status,
            });
            if let Err(e) = api.patch_status(&name, &params, &Patch::Apply(patch)).await {
                tracing::warn!(pool = %name, error = %e, "could not write pool status");
                self.status.changed();
                continue;
            }
            if !state.allocatable && before.as_deref() != Some(state.reason.as_str()) {
                tracing::warn!(pool = %name, reason = %state.reason, "{}", state.message);
                self.cluster
                    .event(
                        &pool.object_ref(&()),
                        EventType::Warning,
                        &state.reason,
                        state.message.clone(),
                        "ValidatePool",
                    )
                    .await;
            }
        }
    }
}

fn saturating_i64(n: u128) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
