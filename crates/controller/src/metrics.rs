//! Prometheus metrics. Labels are bounded: per pool, per reason, per cause — never per pod.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label set naming a pool.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabel {
    /// The pool's name.
    pub pool: String,
}

/// Label set naming a short stable reason or cause.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// A CamelCase reason label from the core's errors, or a release cause.
    pub reason: String,
}

/// Label set naming the kind of object a write went to.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabel {
    /// `ipamblock`, `pod`, `ippool`.
    pub resource: String,
}

/// The reasons a pod can be refused an address (`ipam::planner::AssignError::reason` and the
/// errors it wraps), whose failure counters are exported at 0 from the start: a counter that
/// appears at 1 shows no `increase()`, so the first refusal of a kind would raise no alert. A
/// reason missing here is still counted; it only appears with its first refusal.
pub const ASSIGNMENT_FAILURE_REASONS: &[&str] = &[
    // AssignError
    "NodeUnknown",
    "NamespaceUnknown",
    "PodCIDRUnknown",
    "AddressOutsidePools",
    "AddressNotAdmitted",
    "AddressNotAllowed",
    "AddressReserved",
    "AddressTaken",
    // FixedError
    "InvalidIpAddrs",
    "IpAddrsNoIpamNotSupported",
    // ChoiceError and NotAdmitted
    "AnnotationEmpty",
    "AnnotationNotJSON",
    "AnnotationNotList",
    "AnnotationNotStrings",
    "DuplicatePool",
    "InvalidPoolCIDR",
    "ManualPoolNotNamed",
    "NamespaceSelectorMismatch",
    "NoMatchingPool",
    "NodeSelectorMismatch",
    "PoolGone",
    "PoolInvalid",
    "PoolNotAllocatable",
    "PoolNotForWorkloads",
    "PoolNotNamed",
    "SelectorMismatch",
    "UnknownPool",
    "UnknownPoolCIDR",
    "WrongFamily",
    // AllocError
    "InvalidRequest",
    "NoPool",
    "PoolsExhausted",
];

/// Every metric the controller exports.
pub struct Metrics {
    registry: Registry,
    /// Addresses in each pool.
    pub pool_capacity: Family<PoolLabel, Gauge>,
    /// Addresses allocated in each pool.
    pub pool_allocated: Family<PoolLabel, Gauge>,
    /// Addresses of each pool held by pods the pool no longer admits.
    pub pool_not_admitted: Family<PoolLabel, Gauge>,
    /// Seconds from a pod's binding to its annotation.
    pub assignment_latency: Histogram,
    /// Addresses allocated.
    pub allocations: Counter,
    /// Addresses released, by cause (`deleted`, `terminal`, `leak`, `pool`).
    pub releases: Family<ReasonLabel, Counter>,
    /// Allocations whose pod the cache does not have but a direct read did not prove gone.
    pub gc_candidates: Gauge,
    /// Leaked allocations reclaimed by the sweep.
    pub gc_reclaimed: Counter,
    /// Block records claiming a pod that the controller did not confirm and would not make, so
    /// released instead of adopted.
    pub records_not_trusted: Counter,
    /// Writes refused because the object changed meanwhile, by resource.
    pub write_conflicts: Family<ResourceLabel, Counter>,
    /// Pods that could not get an address, by reason.
    pub failures: Family<ReasonLabel, Counter>,
    /// Blocks found unusable (unreadable, overlapping, lost), by reason.
    pub block_troubles: Family<ReasonLabel, Counter>,
    /// 1 while this replica is the leader.
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("rangepool");
        let m = Metrics {
            pool_capacity: Family::default(),
            pool_allocated: Family::default(),
            pool_not_admitted: Family::default(),
            assignment_latency: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            allocations: Counter::default(),
            releases: Family::default(),
            gc_candidates: Gauge::default(),
            gc_reclaimed: Counter::default(),
            records_not_trusted: Counter::default(),
            write_conflicts: Family::default(),
            failures: Family::default(),
            block_troubles: Family::default(),
            leader: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "pool_capacity_addresses",
            "Addresses in the pool",
            m.pool_capacity.clone(),
        );
        registry.register(
            "pool_allocated_addresses",
            "Addresses allocated in the pool",
            m.pool_allocated.clone(),
        );
        registry.register(
            "pool_not_admitted_addresses",
            "Addresses of the pool held by pods the pool no longer admits (namespace, node, annotation or pool changed)",
            m.pool_not_admitted.clone(),
        );
        registry.register(
            "assignment_latency_seconds",
            "Seconds from a pod's binding to a node until its address annotation was written",
            m.assignment_latency.clone(),
        );
        registry.register("allocations", "Addresses allocated", m.allocations.clone());
        registry.register(
            "releases",
            "Addresses released, by cause",
            m.releases.clone(),
        );
        registry.register(
            "gc_candidates",
            "Allocations whose pod the cache does not have but a direct read did not prove gone",
            m.gc_candidates.clone(),
        );
        registry.register(
            "gc_reclaimed",
            "Leaked allocations released by the sweep",
            m.gc_reclaimed.clone(),
        );
        registry.register(
            "records_not_trusted",
            "Block records claiming a pod that the controller did not write and would not make (another pod's name, or a pool that does not admit the pod), released instead of adopted",
            m.records_not_trusted.clone(),
        );
        registry.register(
            "write_conflicts",
            "Writes refused because the object changed meanwhile",
            m.write_conflicts.clone(),
        );
        registry.register(
            "assignment_failures",
            "Pods that could not get an address, by reason",
            m.failures.clone(),
        );
        registry.register(
            "block_troubles",
            "Blocks found unusable (BlockUnreadable, BlockOverlap, BlockLost), by reason",
            m.block_troubles.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica is the leader",
            m.leader.clone(),
        );
        // Every known label value from the start, at 0: a family without a sample is left out
        // of the exposition, and a counter that appears at 1 shows no increase, so a first
        // refusal, conflict or broken block would be invisible to increase() and to alerts.
        for resource in ["ipamblock", "pod", "ippool"] {
            let _ = m.write_conflicts.get_or_create(&ResourceLabel {
                resource: resource.to_owned(),
            });
        }
        for reason in ASSIGNMENT_FAILURE_REASONS {
            let _ = m.failures.get_or_create(&ReasonLabel {
                reason: (*reason).to_owned(),
            });
        }
        for reason in ["BlockUnreadable", "BlockOverlap", "BlockLost"] {
            let _ = m.block_troubles.get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            });
        }
        Metrics { registry, ..m }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts a refused write.
    pub fn conflict(&self, resource: &str) {
        self.write_conflicts
            .get_or_create(&ResourceLabel {
                resource: resource.to_owned(),
            })
            .inc();
    }

    /// Counts a failed assignment.
    pub fn failure(&self, reason: &str) {
        self.failures
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a block found unusable.
    pub fn block_trouble(&self, reason: &str) {
        self.block_troubles
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts released addresses.
    pub fn released(&self, cause: &str, n: u64) {
        self.releases
            .get_or_create(&ReasonLabel {
                reason: cause.to_owned(),
            })
            .inc_by(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_family_with_bounded_labels() {
        let m = Metrics::new();
        m.pool_capacity
            .get_or_create(&PoolLabel {
                pool: "payments".into(),
            })
            .set(256);
        m.failure("UnknownPool");
        m.released("deleted", 2);
        m.conflict("ipamblock");
        let text = m.encode();
        for want in [
            "rangepool_pool_capacity_addresses{pool=\"payments\"} 256",
            "rangepool_assignment_failures_total{reason=\"UnknownPool\"} 1",
            "rangepool_releases_total{reason=\"deleted\"} 2",
            "rangepool_write_conflicts_total{resource=\"ipamblock\"} 1",
            "rangepool_assignment_latency_seconds_bucket",
            "rangepool_leader 0",
            "rangepool_write_conflicts_total{resource=\"ippool\"} 0",
            "rangepool_block_troubles_total{reason=\"BlockLost\"} 0",
            "rangepool_assignment_failures_total{reason=\"PoolsExhausted\"} 0",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }
}
