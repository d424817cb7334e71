//! The `IPPool` custom resource: a named range of pod addresses.
//!
//! Field names and meanings follow Calico's `projectcalico.org/v3` IPPool so that an admin's
//! existing manifest applies after changing `apiVersion`. The Rust types are lenient (plain
//! strings) so that one odd object can never stop the controller's watch; the generated schema
//! and its CEL rules are strict, so `kubectl apply` refuses bad input with a readable message.
//! CIDR correctness itself (host bits, prefix range) is checked by the controller, because the
//! CEL CIDR functions only exist from Kubernetes 1.31 on and our floor is 1.28.

// The derive takes one `printcolumn(...)` per column, which clippy reads as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Desired state of an IP pool.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "rangepool.dev",
    version = "v1",
    kind = "IPPool",
    plural = "ippools",
    shortname = "ipp",
    category = "rangepool",
    status = "IPPoolStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A named range of pod IP addresses that pods, namespaces or nodes can be pinned to.",
    printcolumn(name = "CIDR", type_ = "string", json_path = ".spec.cidr"),
    printcolumn(name = "Block", type_ = "integer", json_path = ".spec.blockSize"),
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.assignmentMode"),
    printcolumn(
        name = "Allocatable",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Allocatable\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Allocatable\")].reason"
    ),
    printcolumn(name = "Used", type_ = "integer", json_path = ".status.allocated"),
    printcolumn(name = "Free", type_ = "integer", json_path = ".status.free"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new(
    "!has(self.blockSize) || (self.cidr.contains(':') ? (self.blockSize >= 116 && self.blockSize <= 128) : (self.blockSize >= 20 && self.blockSize <= 32))"
).message("blockSize must be between 20 and 32 for an IPv4 pool, or between 116 and 128 for an IPv6 pool").field_path(".blockSize"))]
#[x_kube(validation = Rule::new(
    "(has(self.blockSize) ? self.blockSize : (self.cidr.contains(':') ? 122 : 26)) == (has(oldSelf.blockSize) ? oldSelf.blockSize : (oldSelf.cidr.contains(':') ? 122 : 26))"
).message("blockSize is immutable: create a new pool with the block size you want and move pods to it").field_path(".blockSize"))]
#[x_kube(validation = Rule::new(
    "!(has(self.ipipMode) && self.ipipMode != 'Never' && has(self.vxlanMode) && self.vxlanMode != 'Never')"
).message("ipipMode and vxlanMode cannot both be enabled on one pool"))]
#[x_kube(validation = Rule::new(
    "!(self.cidr.contains(':') && has(self.ipipMode) && self.ipipMode != 'Never')"
).message("ipipMode is not supported on an IPv6 pool").field_path(".ipipMode"))]
#[x_kube(validation = Rule::new(
    "!has(self.allowedUses) || !('LoadBalancer' in self.allowedUses) || self.allowedUses.size() == 1"
).message("allowedUses LoadBalancer cannot be combined with Workload or Tunnel").field_path(".allowedUses"))]
#[x_kube(validation = Rule::new(
    "!(has(self.allowedUses) && 'Tunnel' in self.allowedUses && has(self.namespaceSelector) && self.namespaceSelector != '')"
).message("a pool that allows Tunnel use cannot have a namespaceSelector").field_path(".namespaceSelector"))]
#[serde(rename_all = "camelCase")]
pub struct IPPoolSpec {
    /// The pool's range, e.g. `10.244.64.0/18` or `fd00:10:244::/56`. Must be strictly masked
    /// (no host bits set), inside one of the cluster's pod CIDRs, and overlap no other pool.
    /// Immutable.
    #[schemars(length(min = 1, max = 43))]
    #[x_kube(validation = Rule::new("self.matches('^[0-9a-fA-F.:]+/[0-9]{1,3}$')")
        .message("cidr must be an address range written as ADDRESS/PREFIX, e.g. 10.244.0.0/16 or fd00::/64"))]
    #[x_kube(validation = Rule::new("self == oldSelf")
        .message("cidr is immutable: create a new pool with the range you want and move pods to it"))]
    pub cidr: String,

    /// Prefix length of the blocks the pool is cut into, one node's share at a time. Defaults to
    /// 26 for IPv4 (64 addresses) and 122 for IPv6. 20-32 for IPv4, 116-128 for IPv6. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 20, max = 128), extend("format" = "int32"))]
    pub block_size: Option<i32>,

    /// Calico selector over node labels: only pods on matching nodes get addresses from this pool.
    /// Empty or absent means every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub node_selector: Option<String>,

    /// Calico selector over namespace labels: only pods in matching namespaces get addresses from
    /// this pool, even when they name it in an annotation. Empty or absent means every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub namespace_selector: Option<String>,

    /// When true, no new address is given from this pool; addresses in use stay.
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,

    /// `Automatic` (default): used for any pod whose node and namespace match the selectors.
    /// `Manual`: used only by pods or namespaces that name the pool in an annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Automatic", "Manual"]))]
    pub assignment_mode: Option<String>,

    /// Accepted for Calico compatibility: `Workload`, `Tunnel`, `LoadBalancer`. rangepool only
    /// assigns workload addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 3))]
    pub allowed_uses: Option<Vec<AllowedUse>>,

    /// Accepted for Calico compatibility; rangepool does not program the data plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_outgoing: Option<bool>,

    /// Accepted for Calico compatibility (`Never`, `Always`, `CrossSubnet`); no effect here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Never", "Always", "CrossSubnet"]))]
    pub ipip_mode: Option<String>,

    /// Accepted for Calico compatibility (`Never`, `Always`, `CrossSubnet`); no effect here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Never", "Always", "CrossSubnet"]))]
    pub vxlan_mode: Option<String>,

    /// Accepted for Calico compatibility; no effect here.
    #[serde(
        default,
        rename = "disableBGPExport",
        skip_serializing_if = "Option::is_none"
    )]
    pub disable_bgp_export: Option<bool>,

    /// rangepool's own: never hand out these edge addresses, which look like a subnet's network
    /// or broadcast address to some firewalls and bridges. `Pool`: the pool's first and last
    /// address. `Blocks`: the first and last address of every block (for a bridge whose subnet
    /// is the node's block). Absent: every address may be given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Pool", "Blocks"]))]
    pub reserve_edge_addresses: Option<String>,

    /// rangepool's own: when true, a pod of a StatefulSet gets back the address it had each time
    /// it is created again under the same name, while the StatefulSet exists and keeps that
    /// ordinal (docs/pools.md, "A database StatefulSet").
    #[serde(default, skip_serializing_if = "is_false")]
    pub sticky_stateful_sets: bool,
}

/// One entry of `allowedUses`, kept as a string newtype so an unexpected value never breaks
/// deserialization; the schema restricts it to Calico's values.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(transparent)]
#[schemars(extend("enum" = ["Workload", "Tunnel", "LoadBalancer"]))]
pub struct AllowedUse(pub String);

/// Observed state of an IP pool, written only by the controller. Holds no timestamps so that
/// writing it never wakes the controller again.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IPPoolStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Currently one condition, `Allocatable`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<PoolCondition>,

    /// Number of addresses in the pool (saturates at 2^63-1 for very large IPv6 pools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<i64>,

    /// Number of addresses currently allocated to pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated: Option<i64>,

    /// `capacity - allocated - reserved`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free: Option<i64>,

    /// Addresses of the pool no pod is given: in an IPReservation, or edge addresses kept back
    /// with `reserveEdgeAddresses`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved: Option<i64>,

    /// Number of blocks the pool has been cut into so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<i64>,

    /// Addresses of this pool held by pods the pool no longer admits: their namespace or node
    /// stopped matching a selector, or the annotation that named the pool changed. They keep
    /// their addresses; `kubectl ipam check` lists them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_admitted: Option<i64>,
}

/// A status condition without timestamps, so that writing it never wakes the controller again.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PoolCondition {
    /// Condition type, e.g. `Allocatable`.
    #[serde(rename = "type")]
    #[schemars(length(max = 64))]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    #[schemars(length(max = 16))]
    pub status: String,
    /// Short CamelCase reason, e.g. `OK`, `CIDROverlap`, `OutsidePodCIDR`.
    #[schemars(length(max = 64))]
    pub reason: String,
    /// Human-readable explanation.
    #[serde(default)]
    #[schemars(length(max = 4096))]
    pub message: String,
    /// The `metadata.generation` this condition describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The condition type the controller maintains on every pool.
pub const ALLOCATABLE: &str = "Allocatable";

fn is_false(b: &bool) -> bool {
    !*b
}

impl IPPool {
    /// The pool's `Allocatable` condition, if the controller has written one.
    pub fn allocatable(&self) -> Option<&PoolCondition> {
        self.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == ALLOCATABLE)
    }
}

impl IPPool {
    /// The pool as the pure core reads it: the spec as the admin wrote it, plus the metadata
    /// that decides "older wins" and whether the pool is being deleted.
    pub fn to_input(&self) -> ipam::pool::PoolInput {
        let spec = &self.spec;
        ipam::pool::PoolInput {
            name: self.metadata.name.clone().unwrap_or_default(),
            cidr: spec.cidr.clone(),
            block_size: spec.block_size.map(i64::from),
            node_selector: spec.node_selector.clone(),
            namespace_selector: spec.namespace_selector.clone(),
            disabled: spec.disabled,
            assignment_mode: spec.assignment_mode.clone(),
            allowed_uses: spec
                .allowed_uses
                .as_ref()
                .map(|uses| uses.iter().map(|u| u.0.clone()).collect()),
            ipip_mode: spec.ipip_mode.clone(),
            vxlan_mode: spec.vxlan_mode.clone(),
            nat_outgoing: spec.nat_outgoing.unwrap_or(false),
            disable_bgp_export: spec.disable_bgp_export.unwrap_or(false),
            reserve_edge_addresses: spec.reserve_edge_addresses.clone(),
            sticky_stateful_sets: spec.sticky_stateful_sets,
            terminating: self.metadata.deletion_timestamp.is_some(),
            created: self
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default(),
        }
    }
}
