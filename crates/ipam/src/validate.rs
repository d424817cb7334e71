//! Cluster-wide pool validation: which pools may give out addresses, and why not.
//!
//! [`validate_pools`] takes every pool as written plus the cluster's pod CIDRs and returns one
//! [`PoolVerdict`] per pool, in input order. The verdict for a pool depends only on the set of
//! inputs, never on their order, so every controller replica (and the offline planner) reaches
//! the same conclusion.
//!
//! A pool is allocatable when its spec is valid and, checked in this order, it is not being
//! deleted, not disabled, the pod CIDRs are known, it lies inside one of them, and no older pool
//! overlaps it. On overlap the older pool (earlier creation, then smaller name) keeps the range.
//! Every pool that may ever have given out an address takes part in the overlap check, even one
//! that is disabled, terminating or invalid for a reason an edit can fix: its blocks may still
//! hold addresses, and handing the same range to a newer pool would give one address to two
//! pods. A pool that can never have allocated does not take part, so it cannot take a range from
//! a pool that works: one whose immutable `cidr` or `blockSize` is refused (`LinkLocal`,
//! `InvalidBlockSize`), or that lies outside the pod CIDRs (e.g. `0.0.0.0/0`).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;

use crate::age::Age;
use crate::cidr;
use crate::pool::{Pool, PoolError, PoolInput};

/// The reason of a pool's `Allocatable` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Allocatable.
    Ok,
    /// `cidr` is not a strictly masked CIDR.
    InvalidCidr,
    /// `blockSize` out of range, or the pool is smaller than a block.
    InvalidBlockSize,
    /// A selector does not parse.
    InvalidSelector,
    /// Some other field is invalid (enum value, Calico combination rule, duplicate name...).
    InvalidField,
    /// The pool overlaps the link-local range.
    LinkLocal,
    /// The pool is not inside any of the cluster's pod CIDRs.
    OutsidePodCidr,
    /// The cluster's pod CIDRs are not known.
    PodCidrUnknown,
    /// An older pool overlaps this one.
    CidrOverlap,
    /// `spec.disabled` is true.
    PoolDisabled,
    /// The pool is being deleted.
    Terminating,
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 11] = [
        Reason::Ok,
        Reason::InvalidCidr,
        Reason::InvalidBlockSize,
        Reason::InvalidSelector,
        Reason::InvalidField,
        Reason::LinkLocal,
        Reason::OutsidePodCidr,
        Reason::PodCidrUnknown,
        Reason::CidrOverlap,
        Reason::PoolDisabled,
        Reason::Terminating,
    ];

    /// The condition reason as written to the API: `OK`, `InvalidCIDR`, `InvalidBlockSize`,
    /// `InvalidSelector`, `InvalidField`, `LinkLocal`, `OutsidePodCIDR`, `PodCIDRUnknown`,
    /// `CIDROverlap`, `PoolDisabled`, `Terminating`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "OK",
            Reason::InvalidCidr => "InvalidCIDR",
            Reason::InvalidBlockSize => "InvalidBlockSize",
            Reason::InvalidSelector => "InvalidSelector",
            Reason::InvalidField => "InvalidField",
            Reason::LinkLocal => "LinkLocal",
            Reason::OutsidePodCidr => "OutsidePodCIDR",
            Reason::PodCidrUnknown => "PodCIDRUnknown",
            Reason::CidrOverlap => "CIDROverlap",
            Reason::PoolDisabled => "PoolDisabled",
            Reason::Terminating => "Terminating",
        }
    }

    /// The condition reason of an invalid spec; agrees with [`PoolError::reason`].
    pub fn of_error(e: &PoolError) -> Reason {
        match e {
            PoolError::Cidr { .. } => Reason::InvalidCidr,
            PoolError::BlockSizeOutOfRange { .. } | PoolError::SmallerThanBlock { .. } => {
                Reason::InvalidBlockSize
            }
            PoolError::Selector { .. } => Reason::InvalidSelector,
            PoolError::LinkLocal { .. } => Reason::LinkLocal,
            PoolError::MissingName
            | PoolError::BadValue { .. }
            | PoolError::IpipWithVxlan { .. }
            | PoolError::IpipOnIpv6 { .. }
            | PoolError::LoadBalancerMixed { .. }
            | PoolError::TunnelWithNamespaceSelector { .. }
            | PoolError::BadTimestamp { .. } => Reason::InvalidField,
        }
    }
}

impl FromStr for Reason {
    type Err = UnknownReason;

    /// The reason as written to the API (see [`Reason::as_str`]).
    fn from_str(s: &str) -> Result<Reason, UnknownReason> {
        Reason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownReason(s.to_owned()))
    }
}

/// A condition reason rangepool does not write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a reason rangepool writes")]
pub struct UnknownReason(pub String);

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of validating one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolVerdict {
    /// The pool's name as given.
    pub name: String,
    /// The pool's range when it parses strictly, even if the rest of the spec is invalid.
    pub cidr: Option<IpNet>,
    /// The parsed pool when its spec is valid (and its name unique); `None` otherwise.
    pub pool: Option<Pool>,
    /// The parse error, when the spec is invalid.
    pub error: Option<PoolError>,
    /// Why the pool is (not) allocatable.
    pub reason: Reason,
    /// The same in words for a cluster admin; names the pool.
    pub message: String,
    /// With [`Reason::CidrOverlap`]: the older pool that keeps the range.
    pub overlapped_by: Option<String>,
}

impl PoolVerdict {
    /// True when the pool may give out new addresses.
    pub fn allocatable(&self) -> bool {
        self.reason == Reason::Ok
    }
}

/// One pool's place in the "older wins" order: age, then the CIDR as text, so that "older" is
/// a total order even for two pools with the same name and creation time.
fn order_key(input: &PoolInput, cidr: &IpNet) -> (Age, String) {
    (Age::new(&input.created, &input.name), cidr.to_string())
}

/// For each pool, the index of the oldest other pool whose range overlaps its own and that is
/// older than it: the pool that keeps the range. `None` for a pool that overlaps no older one
/// or whose CIDR does not parse. Pools that can never allocate take no part (see the module
/// docs); with `pod_cidrs` unknown (`None`), only the spec decides that.
pub fn overlapped_by(inputs: &[PoolInput], pod_cidrs: Option<&[IpNet]>) -> Vec<Option<usize>> {
    let parsed: Vec<(usize, IpNet)> = inputs
        .iter()
        .enumerate()
        .filter_map(|(i, input)| Some((i, cidr::parse_strict(&input.cidr).ok()?)))
        .filter(|(i, cidr)| may_have_allocated(&inputs[*i], cidr, pod_cidrs))
        .collect();
    let keys: Vec<(Age, String)> = parsed
        .iter()
        .map(|(i, c)| order_key(&inputs[*i], c))
        .collect();
    let nets: Vec<IpNet> = parsed.iter().map(|(_, c)| *c).collect();
    // Indexed like `parsed`: the oldest older overlapping pool found so far.
    let mut best: Vec<Option<usize>> = vec![None; parsed.len()];
    for (a, b) in cidr::overlapping_pairs(&nets) {
        let (older, newer) = match keys[a].cmp(&keys[b]) {
            std::cmp::Ordering::Less => (a, b),
            std::cmp::Ordering::Greater => (b, a),
            std::cmp::Ordering::Equal => continue,
        };
        if best[newer].is_none_or(|w| keys[older] < keys[w]) {
            best[newer] = Some(older);
        }
    }
    let mut winner = vec![None; inputs.len()];
    for (p, (i, _)) in parsed.iter().enumerate() {
        winner[*i] = best[p].map(|w| parsed[w].0);
    }
    winner
}

/// False for a pool that could never give out an address: its immutable fields are refused, or
/// it lies outside the pod CIDRs.
fn may_have_allocated(input: &PoolInput, cidr: &IpNet, pod_cidrs: Option<&[IpNet]>) -> bool {
    let fixed_forever = match Pool::parse(input) {
        Ok(_) => false,
        Err(e) => matches!(
            Reason::of_error(&e),
            Reason::LinkLocal | Reason::InvalidBlockSize
        ),
    };
    let outside = pod_cidrs.is_some_and(|p| !p.iter().any(|p| cidr::contains(p, cidr)));
    !fixed_forever && !outside
}

/// Validates every pool against its own spec, the pod CIDRs (`None` when unknown) and the other
/// pools. Returns one verdict per input, in input order.
pub fn validate_pools(inputs: &[PoolInput], pod_cidrs: Option<&[IpNet]>) -> Vec<PoolVerdict> {
    let winners = overlapped_by(inputs, pod_cidrs);
    let mut name_counts: HashMap<&str, usize> = HashMap::new();
    for i in inputs {
        *name_counts.entry(i.name.as_str()).or_default() += 1;
    }

    inputs
        .iter()
        .zip(&winners)
        .map(|(input, winner)| {
            let cidr = cidr::parse_strict(&input.cidr).ok();
            let same_name = name_counts.get(input.name.as_str()).copied().unwrap_or(0);
            if same_name > 1 {
                return PoolVerdict {
                    name: input.name.clone(),
                    cidr,
                    pool: None,
                    error: None,
                    reason: Reason::InvalidField,
                    message: format!(
                        "pool {}: {same_name} pools have this name; pool names must be unique",
                        input.name
                    ),
                    overlapped_by: None,
                };
            }
            match Pool::parse(input) {
                Err(e) => PoolVerdict {
                    name: input.name.clone(),
                    cidr,
                    pool: None,
                    reason: Reason::of_error(&e),
                    message: e.to_string(),
                    error: Some(e),
                    overlapped_by: None,
                },
                Ok(pool) => {
                    let winner = winner.and_then(|w| {
                        Some((
                            inputs[w].name.clone(),
                            cidr::parse_strict(&inputs[w].cidr).ok()?,
                        ))
                    });
                    judge(pool, pod_cidrs, winner)
                }
            }
        })
        .collect()
}

/// The verdict of a pool whose spec is valid.
fn judge(pool: Pool, pod_cidrs: Option<&[IpNet]>, winner: Option<(String, IpNet)>) -> PoolVerdict {
    let name = pool.name().to_owned();
    let cidr = pool.cidr();
    let mut overlapped_by = None;
    let (reason, message) = if pool.terminating() {
        (
            Reason::Terminating,
            format!(
                "pool {name} is being deleted: it gives no new addresses and goes away once every address allocated from it is released"
            ),
        )
    } else if pool.disabled() {
        (
            Reason::PoolDisabled,
            format!(
                "pool {name} is disabled: it gives no new addresses; addresses already in use stay"
            ),
        )
    } else if let Some(pod_cidrs) = pod_cidrs {
        if !pod_cidrs.iter().any(|p| cidr::contains(p, &cidr)) {
            let list: Vec<String> = pod_cidrs.iter().map(ToString::to_string).collect();
            (
                Reason::OutsidePodCidr,
                format!(
                    "pool {name}: cidr {cidr} is not inside the cluster's pod CIDR ({}); pod addresses outside it break kube-proxy and network policies",
                    if list.is_empty() {
                        "none configured".to_owned()
                    } else {
                        list.join(", ")
                    }
                ),
            )
        } else if let Some((winner, winner_cidr)) = winner {
            let message = format!(
                "pool {name}: cidr {cidr} overlaps pool {winner} ({winner_cidr}), which is older and keeps the range; change or delete one of them"
            );
            overlapped_by = Some(winner);
            (Reason::CidrOverlap, message)
        } else {
            let mut message = format!(
                "pool {name} ({cidr}, blocks of /{}) is allocatable",
                pool.block_prefix()
            );
            let inert = pool.inert_settings();
            if !inert.is_empty() {
                message.push_str(&format!(
                    "; these Calico settings have no effect here, since rangepool assigns addresses and does not set up tunnels, NAT or BGP: {}",
                    inert.join(", ")
                ));
            }
            (Reason::Ok, message)
        }
    } else {
        (
            Reason::PodCidrUnknown,
            format!(
                "pool {name}: the cluster's pod CIDR is unknown, so no pool can be checked against it; set the controller's --pod-cidr (Helm value podCIDRs) or kubeadm's podSubnet"
            ),
        )
    };
    PoolVerdict {
        name,
        cidr: Some(cidr),
        pool: Some(pool),
        error: None,
        reason,
        message,
        overlapped_by,
    }
}

#[cfg(test)]
mod tests;
