//! The validated model of an IP pool.
//!
//! [`PoolInput`] holds a pool's fields as an admin wrote them (plain strings, options), so that
//! every conversion from a Kubernetes object or a file goes through one place: [`Pool::parse`].
//! A [`Pool`] can only be obtained from there, so code holding one may rely on a strictly masked
//! CIDR, a block size in range, parsed selectors and known enum values.
//!
//! The Calico data-plane fields (`allowedUses`, `ipipMode`, `vxlanMode`, `natOutgoing`,
//! `disableBGPExport`) are validated the way Calico validates them, so a manifest Calico refuses
//! is refused here too, but they have no effect on allocation — except that a pool whose
//! `allowedUses` lacks `Workload` never gives addresses to pods (see [`Pool::allows_workloads`]).

use std::collections::BTreeMap;
use std::fmt;

use ipnet::IpNet;
use thiserror::Error;

use crate::age::{Age, Timestamp};
use crate::cidr::{self, CidrError, Family};
use crate::selector::{Selector, SelectorError};
use crate::text::shown;

/// Whether a pool is used for any matching pod, or only for pods that name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AssignmentMode {
    /// Used for every pod whose node and namespace match the pool's selectors (the default).
    #[default]
    Automatic,
    /// Used only when a pod or its namespace names the pool in an annotation.
    Manual,
}

/// What a pool's addresses may be used for (Calico's `allowedUses`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AllowedUse {
    /// Pod addresses.
    Workload,
    /// Tunnel endpoint addresses of nodes.
    Tunnel,
    /// Service load-balancer addresses.
    LoadBalancer,
}

/// Which edge addresses a pool never hands out (`reserveEdgeAddresses`): addresses that look
/// like a subnet's network or broadcast address confuse some firewalls and bridge subnets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EdgeAddresses {
    /// The pool's first and last address.
    Pool,
    /// The first and last address of every block of the pool (for a bridge whose subnet is the
    /// node's block, `"prefix": "block"`).
    Blocks,
}

/// Calico's `ipipMode` / `vxlanMode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EncapMode {
    /// No encapsulation (the default).
    #[default]
    Never,
    /// Always encapsulate.
    Always,
    /// Encapsulate only across subnets.
    CrossSubnet,
}

macro_rules! enum_text {
    ($ty:ty { $($variant:ident),+ }) => {
        impl $ty {
            /// The exact (case-sensitive) spelling used in manifests.
            pub fn as_str(self) -> &'static str {
                match self { $(<$ty>::$variant => stringify!($variant)),+ }
            }

            fn from_manifest(s: &str) -> Option<Self> {
                match s { $(stringify!($variant) => Some(<$ty>::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

enum_text!(AssignmentMode { Automatic, Manual });
enum_text!(EdgeAddresses { Pool, Blocks });
enum_text!(AllowedUse {
    Workload,
    Tunnel,
    LoadBalancer
});
enum_text!(EncapMode {
    Never,
    Always,
    CrossSubnet
});

/// A field of `IPPool.spec`, as manifests spell it. The one list of the fields rangepool
/// knows: the Calico import keeps exactly these, and [`Pool::inert_settings`] reports the inert
/// ones; a test in `api` fails when the CRD has a field that is not here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpecField {
    /// `cidr`.
    Cidr,
    /// `blockSize`.
    BlockSize,
    /// `nodeSelector`.
    NodeSelector,
    /// `namespaceSelector`.
    NamespaceSelector,
    /// `disabled`.
    Disabled,
    /// `assignmentMode`.
    AssignmentMode,
    /// `allowedUses`.
    AllowedUses,
    /// `natOutgoing`.
    NatOutgoing,
    /// `ipipMode`.
    IpipMode,
    /// `vxlanMode`.
    VxlanMode,
    /// `disableBGPExport`.
    DisableBgpExport,
    /// `reserveEdgeAddresses` (rangepool's own).
    ReserveEdgeAddresses,
    /// `stickyStatefulSets` (rangepool's own).
    StickyStatefulSets,
}

/// What a spec field does in rangepool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// It decides which addresses go to which pods.
    Allocation,
    /// Only its `Workload` value acts: without it the pool serves no pod. Its other values
    /// (`Tunnel`, `LoadBalancer`) are inert.
    Uses,
    /// Validated as Calico validates it, with no effect: rangepool does not program the data
    /// plane (NAT, encapsulation, BGP).
    Inert,
}

impl SpecField {
    /// Every field, in the CRD's order.
    pub const ALL: [SpecField; 13] = [
        SpecField::Cidr,
        SpecField::BlockSize,
        SpecField::NodeSelector,
        SpecField::NamespaceSelector,
        SpecField::Disabled,
        SpecField::AssignmentMode,
        SpecField::AllowedUses,
        SpecField::NatOutgoing,
        SpecField::IpipMode,
        SpecField::VxlanMode,
        SpecField::DisableBgpExport,
        SpecField::ReserveEdgeAddresses,
        SpecField::StickyStatefulSets,
    ];

    /// The field's name in manifests.
    pub fn name(self) -> &'static str {
        match self {
            SpecField::Cidr => "cidr",
            SpecField::BlockSize => "blockSize",
            SpecField::NodeSelector => "nodeSelector",
            SpecField::NamespaceSelector => "namespaceSelector",
            SpecField::Disabled => "disabled",
            SpecField::AssignmentMode => "assignmentMode",
            SpecField::AllowedUses => "allowedUses",
            SpecField::NatOutgoing => "natOutgoing",
            SpecField::IpipMode => "ipipMode",
            SpecField::VxlanMode => "vxlanMode",
            SpecField::DisableBgpExport => "disableBGPExport",
            SpecField::ReserveEdgeAddresses => "reserveEdgeAddresses",
            SpecField::StickyStatefulSets => "stickyStatefulSets",
        }
    }

    /// What the field does here.
    pub fn effect(self) -> Effect {
        match self {
            SpecField::Cidr
            | SpecField::BlockSize
            | SpecField::NodeSelector
            | SpecField::NamespaceSelector
            | SpecField::Disabled
            | SpecField::AssignmentMode
            | SpecField::ReserveEdgeAddresses
            | SpecField::StickyStatefulSets => Effect::Allocation,
            SpecField::AllowedUses => Effect::Uses,
            SpecField::NatOutgoing
            | SpecField::IpipMode
            | SpecField::VxlanMode
            | SpecField::DisableBgpExport => Effect::Inert,
        }
    }

    /// The field with that manifest name (case-sensitive).
    pub fn named(name: &str) -> Option<SpecField> {
        SpecField::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// A pool's fields as an admin wrote them, before validation. Field names follow Calico's
/// `IPPool.spec`; `terminating` and `created` come from the object's metadata.
///
/// The builder methods (`PoolInput::new("a", "10.0.0.0/24").manual()`) exist for tests, the
/// offline planner and examples.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolInput {
    /// `metadata.name`.
    pub name: String,
    /// `spec.cidr`.
    pub cidr: String,
    /// `spec.blockSize`; `None` means the family default (26 / 122).
    pub block_size: Option<i64>,
    /// `spec.nodeSelector`; `None` or empty means every node.
    pub node_selector: Option<String>,
    /// `spec.namespaceSelector`; `None` or empty means every namespace.
    pub namespace_selector: Option<String>,
    /// `spec.disabled`.
    pub disabled: bool,
    /// `spec.assignmentMode`: `Automatic` (default when `None` or empty) or `Manual`.
    pub assignment_mode: Option<String>,
    /// `spec.allowedUses`; `None` or empty means `[Workload, Tunnel]` as in Calico.
    pub allowed_uses: Option<Vec<String>>,
    /// `spec.ipipMode`: `Never` (default), `Always`, `CrossSubnet`.
    pub ipip_mode: Option<String>,
    /// `spec.vxlanMode`: `Never` (default), `Always`, `CrossSubnet`.
    pub vxlan_mode: Option<String>,
    /// `spec.natOutgoing`.
    pub nat_outgoing: bool,
    /// `spec.disableBGPExport`.
    pub disable_bgp_export: bool,
    /// `spec.reserveEdgeAddresses`: `Pool` or `Blocks`; `None` or empty hands out every address.
    pub reserve_edge_addresses: Option<String>,
    /// `spec.stickyStatefulSets`.
    pub sticky_stateful_sets: bool,
    /// True when `metadata.deletionTimestamp` is set.
    pub terminating: bool,
    /// `metadata.creationTimestamp` in RFC 3339; empty when unknown (e.g. a file not yet
    /// applied). Used for "older wins".
    pub created: String,
}

impl PoolInput {
    /// A pool with a name and a CIDR, everything else default.
    pub fn new(name: &str, cidr: &str) -> PoolInput {
        PoolInput {
            name: name.to_owned(),
            cidr: cidr.to_owned(),
            ..PoolInput::default()
        }
    }

    /// Sets `cidr`.
    pub fn cidr(mut self, cidr: &str) -> Self {
        self.cidr = cidr.to_owned();
        self
    }

    /// Sets `blockSize`.
    pub fn block_size(mut self, size: i64) -> Self {
        self.block_size = Some(size);
        self
    }

    /// Sets `nodeSelector`.
    pub fn node_selector(mut self, selector: &str) -> Self {
        self.node_selector = Some(selector.to_owned());
        self
    }

    /// Sets `namespaceSelector`.
    pub fn namespace_selector(mut self, selector: &str) -> Self {
        self.namespace_selector = Some(selector.to_owned());
        self
    }

    /// Sets `disabled: true`.
    pub fn disabled(mut self) -> Self {
        self.disabled = true;
        self
    }

    /// Sets `assignmentMode: Manual`.
    pub fn manual(self) -> Self {
        self.assignment_mode("Manual")
    }

    /// Sets `assignmentMode` to any string (for testing validation).
    pub fn assignment_mode(mut self, mode: &str) -> Self {
        self.assignment_mode = Some(mode.to_owned());
        self
    }

    /// Sets `allowedUses`.
    pub fn allowed_uses(mut self, uses: &[&str]) -> Self {
        self.allowed_uses = Some(uses.iter().map(|u| (*u).to_owned()).collect());
        self
    }

    /// Sets `ipipMode`.
    pub fn ipip_mode(mut self, mode: &str) -> Self {
        self.ipip_mode = Some(mode.to_owned());
        self
    }

    /// Sets `vxlanMode`.
    pub fn vxlan_mode(mut self, mode: &str) -> Self {
        self.vxlan_mode = Some(mode.to_owned());
        self
    }

    /// Sets `reserveEdgeAddresses`.
    pub fn reserve_edges(mut self, edges: &str) -> Self {
        self.reserve_edge_addresses = Some(edges.to_owned());
        self
    }

    /// Sets `stickyStatefulSets: true`.
    pub fn sticky(mut self) -> Self {
        self.sticky_stateful_sets = true;
        self
    }

    /// Marks the pool as being deleted.
    pub fn terminating(mut self) -> Self {
        self.terminating = true;
        self
    }

    /// Sets the creation timestamp (RFC 3339).
    pub fn created(mut self, created: &str) -> Self {
        self.created = created.to_owned();
        self
    }
}

/// Why a pool's spec is invalid. Every message starts with the pool's name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PoolError {
    /// The pool has no name.
    #[error("a pool must have a name")]
    MissingName,
    /// `cidr` is not a strictly masked CIDR.
    #[error("pool {pool}: invalid cidr: {source}")]
    Cidr {
        /// The pool's name.
        pool: String,
        /// What is wrong with it.
        source: CidrError,
    },
    /// `cidr` overlaps the link-local range.
    #[error(
        "pool {pool}: cidr {cidr} overlaps the link-local range {range}; pod addresses there would clash with node-local services such as cloud metadata endpoints"
    )]
    LinkLocal {
        /// The pool's name.
        pool: String,
        /// The pool's range.
        cidr: IpNet,
        /// The family's link-local range.
        range: IpNet,
    },
    /// `blockSize` is outside the family's range.
    #[error(
        "pool {pool}: blockSize {size} is out of range for an {family} pool; use {} to {} (default {})",
        family.block_prefix_range().start(),
        family.block_prefix_range().end(),
        family.default_block_prefix()
    )]
    BlockSizeOutOfRange {
        /// The pool's name.
        pool: String,
        /// The value given.
        size: i64,
        /// The pool's family.
        family: Family,
    },
    /// The pool is smaller than one block and not disabled.
    #[error(
        "pool {pool}: cidr {cidr} is smaller than one block of /{block_prefix}; set blockSize to at least {} or use a larger cidr",
        cidr.prefix_len()
    )]
    SmallerThanBlock {
        /// The pool's name.
        pool: String,
        /// The pool's range.
        cidr: IpNet,
        /// The block prefix length in effect.
        block_prefix: u8,
    },
    /// `nodeSelector` or `namespaceSelector` does not parse (or uses `global()`).
    #[error("pool {pool}: invalid {field}: {source}")]
    Selector {
        /// The pool's name.
        pool: String,
        /// `nodeSelector` or `namespaceSelector`.
        field: &'static str,
        /// The parse error, with column.
        source: SelectorError,
    },
    /// An enum field has a value outside its (case-sensitive) set.
    #[error(
        "pool {pool}: {field} {} is not valid; use one of {allowed} (case-sensitive)",
        shown(value)
    )]
    BadValue {
        /// The pool's name.
        pool: String,
        /// The field, e.g. `ipipMode`.
        field: &'static str,
        /// The value given.
        value: String,
        /// The valid values, for the message.
        allowed: &'static str,
    },
    /// Both `ipipMode` and `vxlanMode` are enabled.
    #[error(
        "pool {pool}: ipipMode {ipip} and vxlanMode {vxlan} cannot both be enabled; set one of them to Never"
    )]
    IpipWithVxlan {
        /// The pool's name.
        pool: String,
        /// `ipipMode`.
        ipip: EncapMode,
        /// `vxlanMode`.
        vxlan: EncapMode,
    },
    /// `ipipMode` is enabled on an IPv6 pool.
    #[error(
        "pool {pool}: ipipMode {ipip} is not supported on an IPv6 pool ({cidr}); set it to Never"
    )]
    IpipOnIpv6 {
        /// The pool's name.
        pool: String,
        /// The pool's range.
        cidr: IpNet,
        /// `ipipMode`.
        ipip: EncapMode,
    },
    /// `allowedUses` mixes `LoadBalancer` with `Workload` or `Tunnel`.
    #[error(
        "pool {pool}: allowedUses LoadBalancer cannot be combined with Workload or Tunnel; use a separate pool for load-balancer addresses"
    )]
    LoadBalancerMixed {
        /// The pool's name.
        pool: String,
    },
    /// A pool allowing `Tunnel` use has a `namespaceSelector`.
    #[error(
        "pool {pool}: a pool whose allowedUses include Tunnel cannot have a namespaceSelector (tunnel addresses belong to nodes, not namespaces)"
    )]
    TunnelWithNamespaceSelector {
        /// The pool's name.
        pool: String,
    },
    /// The creation timestamp is not RFC 3339.
    #[error(
        "pool {pool}: creation timestamp {} is not an RFC 3339 time",
        shown(value)
    )]
    BadTimestamp {
        /// The pool's name.
        pool: String,
        /// The value given.
        value: String,
    },
}

impl PoolError {
    /// Short stable label, also used as the reason of the pool's `Allocatable=False` condition:
    /// `InvalidCIDR`, `InvalidBlockSize`, `InvalidSelector`, `InvalidField` or `LinkLocal`.
    pub fn reason(&self) -> &'static str {
        crate::validate::Reason::of_error(self).as_str()
    }

    /// The name of the pool the error is about (empty for [`PoolError::MissingName`]).
    pub fn pool(&self) -> &str {
        match self {
            PoolError::MissingName => "",
            PoolError::Cidr { pool, .. }
            | PoolError::LinkLocal { pool, .. }
            | PoolError::BlockSizeOutOfRange { pool, .. }
            | PoolError::SmallerThanBlock { pool, .. }
            | PoolError::Selector { pool, .. }
            | PoolError::BadValue { pool, .. }
            | PoolError::IpipWithVxlan { pool, .. }
            | PoolError::IpipOnIpv6 { pool, .. }
            | PoolError::LoadBalancerMixed { pool }
            | PoolError::TunnelWithNamespaceSelector { pool }
            | PoolError::BadTimestamp { pool, .. } => pool,
        }
    }
}

/// A validated IP pool. Obtained only through [`Pool::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    name: String,
    cidr: IpNet,
    block_prefix: u8,
    node_selector: Selector,
    namespace_selector: Selector,
    disabled: bool,
    assignment_mode: AssignmentMode,
    allowed_uses: Vec<AllowedUse>,
    ipip_mode: EncapMode,
    vxlan_mode: EncapMode,
    nat_outgoing: bool,
    disable_bgp_export: bool,
    reserve_edges: Option<EdgeAddresses>,
    sticky_stateful_sets: bool,
    terminating: bool,
    age: Age,
}

/// `None` and `""` both mean "not set" for optional string fields, since Kubernetes clients
/// differ in which they send for an omitted field.
fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

impl Pool {
    /// Validates a pool's fields. Checks, in order: name, CIDR syntax, link-local overlap, block
    /// size, selectors, enum fields, Calico's combination rules, creation timestamp; the first
    /// failure is returned.
    pub fn parse(input: &PoolInput) -> Result<Pool, PoolError> {
        if input.name.is_empty() {
            return Err(PoolError::MissingName);
        }
        let pool = || input.name.clone();

        let cidr = cidr::parse_strict(&input.cidr).map_err(|source| PoolError::Cidr {
            pool: pool(),
            source,
        })?;
        let family = Family::of(&cidr);
        if cidr::is_link_local(&cidr) {
            return Err(PoolError::LinkLocal {
                pool: pool(),
                cidr,
                range: cidr::link_local_range(family),
            });
        }

        let block_prefix = match input.block_size {
            None => family.default_block_prefix(),
            Some(size) => u8::try_from(size)
                .ok()
                .filter(|p| family.block_prefix_range().contains(p))
                .ok_or(PoolError::BlockSizeOutOfRange {
                    pool: pool(),
                    size,
                    family,
                })?,
        };
        // A disabled pool may be smaller than a block: it gives no new addresses, and Calico
        // lets admins keep such a pool around while they migrate.
        if cidr.prefix_len() > block_prefix && !input.disabled {
            return Err(PoolError::SmallerThanBlock {
                pool: pool(),
                cidr,
                block_prefix,
            });
        }

        let selector = |field: &'static str, value: &Option<String>| {
            Selector::parse(value.as_deref().unwrap_or("")).map_err(|source| PoolError::Selector {
                pool: pool(),
                field,
                source,
            })
        };
        let node_selector = selector("nodeSelector", &input.node_selector)?;
        let namespace_selector = selector("namespaceSelector", &input.namespace_selector)?;

        let bad = |field: &'static str, value: &str, allowed: &'static str| PoolError::BadValue {
            pool: pool(),
            field,
            value: value.to_owned(),
            allowed,
        };
        let assignment_mode = match set(&input.assignment_mode) {
            None => AssignmentMode::Automatic,
            Some(v) => AssignmentMode::from_manifest(v)
                .ok_or_else(|| bad("assignmentMode", v, "Automatic, Manual"))?,
        };
        let encap = |field: &'static str, value: &Option<String>| match set(value) {
            None => Ok(EncapMode::Never),
            Some(v) => EncapMode::from_manifest(v)
                .ok_or_else(|| bad(field, v, "Never, Always, CrossSubnet")),
        };
        let reserve_edges = match set(&input.reserve_edge_addresses) {
            None => None,
            Some(v) => Some(
                EdgeAddresses::from_manifest(v)
                    .ok_or_else(|| bad("reserveEdgeAddresses", v, "Pool, Blocks"))?,
            ),
        };
        let ipip_mode = encap("ipipMode", &input.ipip_mode)?;
        let vxlan_mode = encap("vxlanMode", &input.vxlan_mode)?;
        let mut allowed_uses = Vec::new();
        for v in input.allowed_uses.iter().flatten() {
            let use_ = AllowedUse::from_manifest(v)
                .ok_or_else(|| bad("allowedUses", v, "Workload, Tunnel, LoadBalancer"))?;
            if !allowed_uses.contains(&use_) {
                allowed_uses.push(use_);
            }
        }
        // Like Calico, the Tunnel/namespaceSelector rule applies to the uses the admin wrote, not
        // to the default: a namespace-restricted pool without `allowedUses` is valid.
        let tunnel_written = allowed_uses.contains(&AllowedUse::Tunnel);
        if allowed_uses.is_empty() {
            allowed_uses = vec![AllowedUse::Workload, AllowedUse::Tunnel];
        }
        allowed_uses.sort();

        if ipip_mode != EncapMode::Never && vxlan_mode != EncapMode::Never {
            return Err(PoolError::IpipWithVxlan {
                pool: pool(),
                ipip: ipip_mode,
                vxlan: vxlan_mode,
            });
        }
        if family == Family::V6 && ipip_mode != EncapMode::Never {
            return Err(PoolError::IpipOnIpv6 {
                pool: pool(),
                cidr,
                ipip: ipip_mode,
            });
        }
        if allowed_uses.contains(&AllowedUse::LoadBalancer) && allowed_uses.len() > 1 {
            return Err(PoolError::LoadBalancerMixed { pool: pool() });
        }
        if tunnel_written && set(&input.namespace_selector).is_some_and(|s| !s.trim().is_empty()) {
            return Err(PoolError::TunnelWithNamespaceSelector { pool: pool() });
        }

        if !input.created.is_empty() && Timestamp::parse_rfc3339(&input.created).is_none() {
            return Err(PoolError::BadTimestamp {
                pool: pool(),
                value: input.created.clone(),
            });
        }

        Ok(Pool {
            name: input.name.clone(),
            cidr,
            block_prefix,
            node_selector,
            namespace_selector,
            disabled: input.disabled,
            assignment_mode,
            allowed_uses,
            ipip_mode,
            vxlan_mode,
            nat_outgoing: input.nat_outgoing,
            disable_bgp_export: input.disable_bgp_export,
            reserve_edges,
            sticky_stateful_sets: input.sticky_stateful_sets,
            terminating: input.terminating,
            age: Age::new(&input.created, &input.name),
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pool's range (strictly masked).
    pub fn cidr(&self) -> IpNet {
        self.cidr
    }

    /// The pool's address family.
    pub fn family(&self) -> Family {
        Family::of(&self.cidr)
    }

    /// Prefix length of the pool's blocks.
    pub fn block_prefix(&self) -> u8 {
        self.block_prefix
    }

    /// Number of blocks the pool can be cut into (0 for a disabled pool smaller than a block).
    pub fn block_count(&self) -> u128 {
        cidr::block_count(&self.cidr, self.block_prefix)
    }

    /// Number of addresses in the pool (saturates at `u128::MAX`).
    pub fn capacity(&self) -> u128 {
        cidr::addr_count(&self.cidr)
    }

    /// The parsed `nodeSelector` (`all()` when unset).
    pub fn node_selector(&self) -> &Selector {
        &self.node_selector
    }

    /// The parsed `namespaceSelector` (`all()` when unset).
    pub fn namespace_selector(&self) -> &Selector {
        &self.namespace_selector
    }

    /// True when both selectors match: the node's labels and the pod's namespace's labels.
    pub fn selects(
        &self,
        node_labels: &BTreeMap<String, String>,
        namespace_labels: &BTreeMap<String, String>,
    ) -> bool {
        self.node_selector.matches(node_labels) && self.namespace_selector.matches(namespace_labels)
    }

    /// `spec.disabled`.
    pub fn disabled(&self) -> bool {
        self.disabled
    }

    /// `spec.assignmentMode`.
    pub fn assignment_mode(&self) -> AssignmentMode {
        self.assignment_mode
    }

    /// True for `assignmentMode: Manual`.
    pub fn is_manual(&self) -> bool {
        self.assignment_mode == AssignmentMode::Manual
    }

    /// `spec.allowedUses`, deduplicated and sorted; `[Workload, Tunnel]` when unset.
    pub fn allowed_uses(&self) -> &[AllowedUse] {
        &self.allowed_uses
    }

    /// True when pods may get addresses from this pool (`allowedUses` includes `Workload`).
    pub fn allows_workloads(&self) -> bool {
        self.allowed_uses.contains(&AllowedUse::Workload)
    }

    /// `spec.ipipMode` (inert here).
    pub fn ipip_mode(&self) -> EncapMode {
        self.ipip_mode
    }

    /// `spec.vxlanMode` (inert here).
    pub fn vxlan_mode(&self) -> EncapMode {
        self.vxlan_mode
    }

    /// `spec.natOutgoing` (inert here).
    pub fn nat_outgoing(&self) -> bool {
        self.nat_outgoing
    }

    /// The Calico data-plane settings this pool asks for that rangepool does not carry out, as
    /// `field: value` (e.g. `natOutgoing: true`); empty when every one is at its default.
    pub fn inert_settings(&self) -> Vec<String> {
        SpecField::ALL
            .into_iter()
            .filter(|f| f.effect() == Effect::Inert)
            .filter_map(|f| Some(format!("{}: {}", f.name(), self.inert_value(f)?)))
            .collect()
    }

    /// The value of an inert field when it is not at its default.
    fn inert_value(&self, field: SpecField) -> Option<String> {
        let mode = |m: EncapMode| (m != EncapMode::Never).then(|| m.to_string());
        match field {
            SpecField::NatOutgoing => self.nat_outgoing.then(|| "true".to_owned()),
            SpecField::IpipMode => mode(self.ipip_mode),
            SpecField::VxlanMode => mode(self.vxlan_mode),
            SpecField::DisableBgpExport => self.disable_bgp_export.then(|| "true".to_owned()),
            SpecField::Cidr
            | SpecField::BlockSize
            | SpecField::NodeSelector
            | SpecField::NamespaceSelector
            | SpecField::Disabled
            | SpecField::AssignmentMode
            | SpecField::AllowedUses
            | SpecField::ReserveEdgeAddresses
            | SpecField::StickyStatefulSets => None,
        }
    }

    /// `spec.disableBGPExport` (inert here).
    pub fn disable_bgp_export(&self) -> bool {
        self.disable_bgp_export
    }

    /// `spec.reserveEdgeAddresses`.
    pub fn reserve_edges(&self) -> Option<EdgeAddresses> {
        self.reserve_edges
    }

    /// Whether `address` is an edge address the pool never hands out (see [`EdgeAddresses`]).
    pub fn is_reserved_edge(&self, address: std::net::IpAddr) -> bool {
        let edges = |net: IpNet| address == net.network() || address == net.broadcast();
        match self.reserve_edges {
            None => false,
            Some(EdgeAddresses::Pool) => edges(self.cidr),
            Some(EdgeAddresses::Blocks) => {
                crate::cidr::block_containing(address, self.block_prefix).is_some_and(edges)
            }
        }
    }

    /// `spec.stickyStatefulSets`: a StatefulSet's pod gets back its address when it is created
    /// again under the same name (see the planner).
    pub fn sticky_stateful_sets(&self) -> bool {
        self.sticky_stateful_sets
    }

    /// True while the pool is being deleted.
    pub fn terminating(&self) -> bool {
        self.terminating
    }

    /// The pool's place in the "older wins" order.
    pub fn age(&self) -> &Age {
        &self.age
    }
}

#[cfg(test)]
mod tests;
