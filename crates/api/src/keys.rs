//! Names that other tools rely on: annotation keys, finalizers, field managers.
//!
//! Changing any of these breaks users' manifests or running clusters, so they live in one place.

/// Pod or namespace annotation: JSON list of IPv4 pool names (or CIDRs) to allocate from, in order.
/// The key is Calico's, so manifests written for Calico IPAM keep working.
pub const IPV4_POOLS: &str = "cni.projectcalico.org/ipv4pools";
/// Pod or namespace annotation: JSON list of IPv6 pool names (or CIDRs) to allocate from, in order.
pub const IPV6_POOLS: &str = "cni.projectcalico.org/ipv6pools";

/// Pod annotation written by the controller: the assigned IPv4 address, e.g. `10.244.64.3`.
pub const ASSIGNED_IPV4: &str = "rangepool.dev/ipv4";
/// Pod annotation written by the controller: the assigned IPv6 address.
pub const ASSIGNED_IPV6: &str = "rangepool.dev/ipv6";
/// Pod annotation written by the controller: which pool each address came from, as a JSON object
/// keyed by family, e.g. `{"ipv4":"payments"}`.
pub const ASSIGNED_POOLS: &str = "rangepool.dev/pools";
/// Pod annotation written by the controller: the IPAMBlock that records each address, as a JSON
/// object keyed by family, e.g. `{"ipv4":"10-244-8-0-26"}`. Lets the CNI plugin check the
/// assignment with one read of that block instead of a search; a forged value fails that check.
pub const ASSIGNED_BLOCKS: &str = "rangepool.dev/blocks";
/// Pod annotation written by the controller when the pod cannot get an address: the same message
/// as the Warning Event. The CNI plugin fails at once with it.
pub const ASSIGNMENT_ERROR: &str = "rangepool.dev/error";

/// Finalizer that keeps a deleted pool, or a deleted block holding allocations, until every
/// address recorded in it is released.
pub const FINALIZER: &str = "rangepool.dev/addresses-in-use";

/// Field manager of every server-side apply the controller makes.
pub const CONTROLLER_MANAGER: &str = "rangepool-controller";

/// The API group of rangepool's custom resources.
pub const GROUP: &str = "rangepool.dev";
