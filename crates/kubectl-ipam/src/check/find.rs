//! The consistency rules, as plain functions of a [`Snapshot`]: no I/O here.
//!
//! They restate the invariants of `docs/design.md` as questions about what was read: is every
//! address recorded once, for one pod, in a block of an existing pool that contains it? Does
//! every recorded pod still exist, and every annotated address have its record? Does every pod
//! that needs an address have one, and if not, why? Is an address a live pod holds now kept
//! from pods (reserved)? A record parked for a StatefulSet's next pod ([`ipam::sticky`]) is no
//! pod's and no leak: it is listed as a note.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use api::{Assignment, IPAMBlock, IPPool};
use ipam::block::Block;
use ipam::cidr::{self, Family};
use ipam::pool::PoolInput;
use ipam::validate::{PoolVerdict, Reason, validate_pools};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::finding::{
    BlockIssue, Duplicate, Finding, Finished, Leak, NotAdmitted, Overlap, ParkedAddress,
    PodIPNotRecorded, PodState, PoolIssue, ReservedHeld, Stuck, Unaddressed, Unrecorded,
};
use crate::records::{self, Holder, Recorded};
use crate::reserved::Reserved;
use crate::snapshot::{Snapshot, seconds_between};
use crate::text::age;

/// A bound pod without an address and without an error is a problem only after this long; the
/// controller normally assigns within a second of the binding. Also the slack past a pod's
/// deletion time before it counts as stuck.
pub const PENDING_GRACE_SECONDS: i64 = 30;

/// Problems and notes, in a stable order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Findings {
    /// Each one makes the exit status 1.
    pub problems: Vec<Finding>,
    /// Worth knowing, not wrong.
    pub notes: Vec<Finding>,
}

/// Every rule over the snapshot.
pub fn find(s: &Snapshot) -> Findings {
    let recorded = records::recorded(&s.blocks);
    let pods = PodIndex::new(&s.pods);
    let mut live: Vec<&Pod> = s
        .pods
        .iter()
        .filter(|p| address_state(p).needs_address())
        .collect();
    live.sort_by(|a, b| by_key(a).cmp(&by_key(b)));
    let reserved = Reserved::new(&s.pools, s.reservations.as_deref().unwrap_or_default());
    let mut f = Findings::default();
    pools(s, &recorded, &mut f);
    blocks(s, &mut f);
    duplicates(&recorded, &mut f);
    holders(s, &recorded, &pods, &reserved, &mut f);
    reserved_held(&live, &recorded, &reserved, &mut f);
    f.problems
        .extend(unrecorded_annotations(&s.pods, &recorded));
    unaddressed(s, &live, &mut f);
    not_admitted(s, &recorded, &mut f);
    running(&live, &recorded, &mut f);
    f
}

/// Live pods whose sandbox addresses (`status.podIPs`) no block records for them. The
/// controller records such an address as the pod's when its pool admits the pod (and reports
/// it otherwise), so one left over means it could not.
fn running(live: &[&Pod], recorded: &[Recorded], f: &mut Findings) {
    let by_address: HashMap<IpAddr, &Holder> = recorded
        .iter()
        .map(|r| (r.holder.address, &r.holder))
        .collect();
    for pod in live {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let key = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
        let ips = pod.status.as_ref().and_then(|st| st.pod_ips.as_ref());
        for address in ips
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.parse::<IpAddr>().ok())
        {
            let holder = by_address.get(&address).copied();
            if holder.is_some_and(|h| h.handle == uid) {
                continue;
            }
            let family = Family::of_addr(&address);
            let own = recorded
                .iter()
                .find(|r| r.holder.handle == uid && Family::of_addr(&r.holder.address) == family)
                .map(|r| r.holder.address);
            let why = match (holder, own) {
                (Some(h), _) => format!(
                    "the blocks record it for pod {}: two sandboxes may use one address",
                    h.pod_key()
                ),
                (None, Some(own)) => format!(
                    "the blocks record {own} for it instead: its sandbox does not have the address it was given"
                ),
                (None, None) => {
                    "no block records it; the controller's Event on the pod says why".to_owned()
                }
            };
            f.problems.push(Finding::PodIPNotRecorded(PodIPNotRecorded {
                namespace: pod.namespace().unwrap_or_default(),
                pod: pod.name_any(),
                uid: uid.clone(),
                address,
                recorded: own,
                holder: holder.cloned(),
                message: format!(
                    "pod {key} runs with {address} (status.podIPs), but {why} (see docs/troubleshooting.md, \"A pod runs with an address no block records\")"
                ),
            }));
        }
    }
}

/// Live pods holding addresses of pools that no longer admit them, by the core's rule
/// ([`ipam::choice::PoolCatalog::admits`]). A pod whose node or namespace is not in the snapshot
/// cannot be judged and is left out.
fn not_admitted(s: &Snapshot, recorded: &[Recorded], f: &mut Findings) {
    let inputs: Vec<PoolInput> = s.pools.iter().map(IPPool::to_input).collect();
    let catalog = ipam::choice::PoolCatalog::new(&validate_pools(&inputs, None));
    let namespaces: HashMap<String, &k8s_openapi::api::core::v1::Namespace> =
        s.namespaces.iter().map(|n| (n.name_any(), n)).collect();
    let nodes: HashMap<String, &k8s_openapi::api::core::v1::Node> =
        s.nodes.iter().map(|n| (n.name_any(), n)).collect();
    let by_uid: HashMap<&str, &Pod> = s
        .pods
        .iter()
        .filter_map(|p| Some((p.metadata.uid.as_deref()?, p)))
        .collect();
    let empty = BTreeMap::new();
    for r in recorded {
        let h = &r.holder;
        let Some(pod) = by_uid.get(h.handle.as_str()) else {
            continue;
        };
        let state = address_state(pod);
        let (true, Some(node)) = (state.needs_address(), state.node()) else {
            continue;
        };
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let (Some(ns), Some(node_object)) = (namespaces.get(namespace), nodes.get(node)) else {
            continue;
        };
        let facts = ipam::choice::PodFacts {
            namespace,
            name: pod.metadata.name.as_deref().unwrap_or_default(),
            node,
            annotations: pod.metadata.annotations.as_ref().unwrap_or(&empty),
            namespace_annotations: ns.metadata.annotations.as_ref().unwrap_or(&empty),
            namespace_labels: ns.metadata.labels.as_ref().unwrap_or(&empty),
            node_labels: node_object.metadata.labels.as_ref().unwrap_or(&empty),
        };
        if let Err(e) = catalog.admits(&facts, &h.pool, h.address) {
            f.problems.push(Finding::AddressNotAdmitted(NotAdmitted {
                holder: h.clone(),
                reason: e.reason().to_owned(),
                message: format!(
                    "{e}. It keeps the address while it runs, but a source-IP rule trusting the pool trusts it too: fix the labels or annotation, or re-create the pod to get an address its pools admit"
                ),
            }));
        }
    }
}

/// Pods by namespace and name.
struct PodIndex<'a> {
    by_name: HashMap<(&'a str, &'a str), &'a Pod>,
}

impl<'a> PodIndex<'a> {
    fn new(pods: &'a [Pod]) -> PodIndex<'a> {
        let by_name = pods
            .iter()
            .filter_map(|p| {
                Some((
                    (
                        p.metadata.namespace.as_deref()?,
                        p.metadata.name.as_deref()?,
                    ),
                    p,
                ))
            })
            .collect();
        PodIndex { by_name }
    }

    fn get(&self, namespace: &str, name: &str) -> Option<&'a Pod> {
        self.by_name.get(&(namespace, name)).copied()
    }
}

fn pools(s: &Snapshot, recorded: &[Recorded], f: &mut Findings) {
    let mut held: HashMap<&str, usize> = HashMap::new();
    for r in recorded {
        *held.entry(r.holder.pool.as_str()).or_default() += 1;
    }
    let mut pools: Vec<&IPPool> = s.pools.iter().collect();
    pools.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for pool in pools {
        let name = pool.name_any();
        let allocations = held.get(name.as_str()).copied().unwrap_or_default();
        let issue = |reason: &str, message: String| PoolIssue {
            pool: name.clone(),
            reason: reason.to_owned(),
            allocations,
            message,
        };
        match pool.allocatable() {
            None => f.problems.push(Finding::PoolNotAllocatable(issue(
                "Unknown",
                format!(
                    "pool {name}: the controller has not written its status, so whether it gives addresses is unknown; check that the controller is running and leading (kubectl -n kube-system get lease rangepool-controller)"
                ),
            ))),
            Some(c) if c.status == "True" => {}
            // A reason this version does not know is a problem: it is not one of the two
            // states an admin chose.
            Some(c) => match c.reason.parse::<Reason>() {
                Ok(Reason::PoolDisabled) => f.notes.push(Finding::PoolDisabled(issue(
                    &c.reason,
                    format!(
                        "pool {name} is disabled: it gives no new addresses; the {allocations} address(es) in use stay"
                    ),
                ))),
                Ok(Reason::Terminating) => f.notes.push(Finding::PoolTerminating(issue(
                    &c.reason,
                    format!(
                        "pool {name} is being deleted; it goes once its {allocations} address(es) in use are released (finalizer {})",
                        api::keys::FINALIZER
                    ),
                ))),
                _ => f
                    .problems
                    .push(Finding::PoolNotAllocatable(issue(&c.reason, c.message.clone()))),
            },
        }
    }
}

fn blocks(s: &Snapshot, f: &mut Findings) {
    // The pools' facts (range, block size) as the core reads them. The pod CIDR is the
    // controller's to know, and no fact used here depends on it.
    let inputs: Vec<PoolInput> = s.pools.iter().map(IPPool::to_input).collect();
    let verdicts = validate_pools(&inputs, None);
    let pools: HashMap<&str, &PoolVerdict> =
        verdicts.iter().map(|v| (v.name.as_str(), v)).collect();
    let mut ranges: Vec<(IpNet, &IPAMBlock)> = Vec::new();
    for block in &s.blocks {
        let name = block.name_any();
        let spec = &block.spec;
        let issue = |message: String| BlockIssue {
            block: name.clone(),
            cidr: spec.cidr.clone(),
            pool: spec.pool.clone(),
            allocations: spec.allocated(),
            message,
        };
        let range = match records::range(block) {
            Ok(range) => range,
            Err(e) => {
                f.problems.push(Finding::InvalidBlock(issue(format!(
                    "block {name}: its range is not usable ({e}); none of its {} allocation(s) can be trusted",
                    spec.allocated()
                ))));
                continue;
            }
        };
        ranges.push((range, block));
        if let Some(why) = &spec.quarantine {
            f.notes.push(Finding::BlockQuarantined(issue(format!(
                "block {name} is quarantined: {why}. Check that none of its free addresses is still in use, then remove spec.quarantine (see docs/troubleshooting.md, \"A block is quarantined\")"
            ))));
        }
        let want = cidr::block_name(&range);
        if want != name {
            f.problems.push(Finding::InvalidBlock(issue(format!(
                "block {name} records the range {range}, whose block must be named {want}: the CNI plugin finds a block by its name, so pods with addresses here cannot start"
            ))));
        }
        let content = spec
            .to_record()
            .and_then(|r| Block::from_record(&r).map_err(|e| e.to_string()));
        if let Err(e) = content {
            f.problems.push(Finding::InvalidBlock(issue(format!(
                "block {name}: its records are not ones rangepool writes: {e}"
            ))));
        }
        match pools.get(spec.pool.as_str()) {
            None => {
                let inside: Vec<&str> = verdicts
                    .iter()
                    .filter(|v| v.cidr.is_some_and(|c| cidr::contains(&c, &range)))
                    .map(|v| v.name.as_str())
                    .collect();
                let where_ = if inside.is_empty() {
                    "its range lies in no pool".to_owned()
                } else {
                    format!("its range lies in pool {}", inside.join(", "))
                };
                f.problems.push(Finding::BlockWithoutPool(issue(format!(
                    "block {name} ({range}) belongs to pool {}, which does not exist; {where_}. Its {} allocation(s) count in no pool",
                    spec.pool,
                    spec.allocated()
                ))));
            }
            Some(pool) => {
                if let Some(message) = mismatch(&name, &range, pool) {
                    f.problems
                        .push(Finding::BlockNotMatchingPool(issue(message)));
                }
            }
        }
    }
    overlaps(&mut ranges, f);
}

/// Why a block does not fit its pool, if it does not. The block size is known only when the
/// pool's spec is valid.
fn mismatch(name: &str, range: &IpNet, pool: &PoolVerdict) -> Option<String> {
    let pool_name = &pool.name;
    let pool_range = pool.cidr?;
    if !cidr::contains(&pool_range, range) {
        return Some(format!(
            "block {name} ({range}) lies outside the range {pool_range} of its pool {pool_name}"
        ));
    }
    let prefix = pool.pool.as_ref()?.block_prefix();
    (range.prefix_len() != prefix).then(|| {
        format!(
            "block {name} ({range}) is a /{} block, but pool {pool_name} is cut into /{prefix} blocks",
            range.prefix_len()
        )
    })
}

/// Every pair of blocks whose ranges overlap, in range order.
fn overlaps(ranges: &mut [(IpNet, &IPAMBlock)], f: &mut Findings) {
    ranges.sort_by_key(|(net, b)| (net.network(), net.broadcast(), b.name_any()));
    let nets: Vec<IpNet> = ranges.iter().map(|(net, _)| *net).collect();
    for (i, j) in cidr::overlapping_pairs(&nets) {
        let (a, b) = (&ranges[i], &ranges[j]);
        f.problems.push(Finding::OverlappingBlocks(Overlap {
            blocks: [a.1.name_any(), b.1.name_any()],
            cidrs: [a.0.to_string(), b.0.to_string()],
            message: format!(
                "blocks {} ({}) and {} ({}) overlap: the same addresses could be given twice",
                a.1.name_any(),
                a.0,
                b.1.name_any(),
                b.0
            ),
        }));
    }
}

fn duplicates(recorded: &[Recorded], f: &mut Findings) {
    let mut by_address: BTreeMap<IpAddr, Vec<&Holder>> = BTreeMap::new();
    let mut by_handle: BTreeMap<(&str, Family), Vec<&Holder>> = BTreeMap::new();
    for r in recorded {
        let h = &r.holder;
        by_address.entry(h.address).or_default().push(h);
        by_handle
            .entry((h.handle.as_str(), Family::of_addr(&h.address)))
            .or_default()
            .push(h);
    }
    for (address, holders) in by_address {
        if holders.len() < 2 {
            continue;
        }
        let list: Vec<String> = holders
            .iter()
            .map(|h| format!("block {} for {} (uid {})", h.block, h.pod_key(), h.handle))
            .collect();
        f.problems.push(Finding::DuplicateAddress(Duplicate {
            address: Some(address),
            handle: None,
            family: None,
            holders: holders.into_iter().cloned().collect(),
            message: format!(
                "{address} is recorded {} times: {}; two pods may use one address",
                list.len(),
                list.join(", ")
            ),
        }));
    }
    for ((handle, family), holders) in by_handle {
        if holders.len() < 2 {
            continue;
        }
        let list: Vec<String> = holders
            .iter()
            .map(|h| format!("{} (block {})", h.address, h.block))
            .collect();
        let pod = holders.first().map(|h| h.pod_key()).unwrap_or_default();
        f.problems.push(Finding::DuplicateHandle(Duplicate {
            address: None,
            handle: Some(handle.to_owned()),
            family: Some(family.key().to_owned()),
            holders: holders.into_iter().cloned().collect(),
            message: format!(
                "{pod} (uid {handle}) holds {} {family} addresses: {}; a pod gets one per family, so all but the one on its annotation are lost to the pool",
                list.len(),
                list.join(", ")
            ),
        }));
    }
}

fn time_of(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> Timestamp {
    t.0
}

/// Live pods holding an address that is reserved now (the core's rule): they keep it, but the
/// reservation means it for something else.
fn reserved_held(live: &[&Pod], recorded: &[Recorded], reserved: &Reserved, f: &mut Findings) {
    let live: HashMap<&str, &Pod> = live
        .iter()
        .filter_map(|p| Some((p.metadata.uid.as_deref()?, *p)))
        .collect();
    for r in recorded {
        let h = &r.holder;
        if !live.contains_key(h.handle.as_str()) {
            continue;
        }
        let by = reserved.by(h.address);
        if by.is_empty() {
            continue;
        }
        let list: Vec<String> = by.iter().map(ToString::to_string).collect();
        f.problems.push(Finding::ReservedAddressHeld(ReservedHeld {
            holder: h.clone(),
            reserved_by: by,
            message: format!(
                "pod {} holds {} (block {}, pool {}), which is now reserved by {}. It keeps the address while it runs and no other pod gets it, but what the reservation is for would clash with it: re-create the pod to give it a free address, or change the reservation",
                h.pod_key(),
                h.address,
                h.block,
                h.pool,
                list.join(" and ")
            ),
        }));
    }
}

/// A record parked for the next pod of a StatefulSet under its name.
fn parked(h: &Holder, p: ipam::sticky::Parked<'_>, reserved: &Reserved) -> Finding {
    let statefulset = p.statefulset();
    let (sts, when) = match statefulset {
        Some((name, ordinal)) => (
            format!(
                "StatefulSet {}/{name} (uid {})",
                h.namespace, p.statefulset_uid
            ),
            format!(
                "when the StatefulSet is deleted or scaled below ordinal {}",
                ordinal.saturating_add(1)
            ),
        ),
        None => (
            format!("the StatefulSet of uid {}", p.statefulset_uid),
            "at its next sweep: the pod name has no ordinal".to_owned(),
        ),
    };
    let by = reserved.by(h.address);
    let reserved_now = if by.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = by.iter().map(ToString::to_string).collect();
        format!(
            " It is reserved now by {}, and still goes back to that pod.",
            list.join(" and ")
        )
    };
    Finding::ParkedStickyAddress(ParkedAddress {
        holder: h.clone(),
        stateful_set_uid: p.statefulset_uid.to_owned(),
        stateful_set: statefulset.map(|(name, _)| name.to_owned()),
        ordinal: statefulset.map(|(_, o)| o),
        message: format!(
            "{} (block {}, pool {}) is kept for the next pod {}/{} of {sts}: its pool has stickyStatefulSets, so the address stayed when the pod went, and the pod created again under that name gets it back. The controller releases it {when}. It is no leak: release --from-report leaves it alone.{reserved_now}",
            h.address, h.block, h.pool, h.namespace, p.pod
        ),
    })
}

/// Allocations whose pod is gone, finished, or stuck in deletion; parked records are noted.
fn holders(
    s: &Snapshot,
    recorded: &[Recorded],
    pods: &PodIndex<'_>,
    reserved: &Reserved,
    f: &mut Findings,
) {
    let created: HashMap<String, Timestamp> = s
        .blocks
        .iter()
        .filter_map(|b| {
            Some((
                b.name_any(),
                time_of(b.metadata.creation_timestamp.as_ref()?),
            ))
        })
        .collect();
    let mut stuck: BTreeMap<(String, String), Stuck> = BTreeMap::new();
    for r in recorded {
        let h = &r.holder;
        if let Some(p) = ipam::sticky::Parked::parse(&h.handle) {
            f.notes.push(parked(h, p, reserved));
            continue;
        }
        let block_created = created.get(&h.block).copied();
        match pods.get(&h.namespace, &h.pod) {
            None => {
                let bound = match block_created {
                    Some(t) => format!(
                        "; the allocation is at most {} old (its block was created then)",
                        age(seconds_between(t, s.at))
                    ),
                    None => String::new(),
                };
                f.problems.push(Finding::LeakedAllocation(Leak {
                    holder: h.clone(),
                    pod_state: PodState::NotFound,
                    current_uid: None,
                    gone_before: None,
                    block_created: block_created.map(|t| t.to_string()),
                    message: format!(
                        "{} (block {}, pool {}) is held by {} (uid {}), which no longer exists: pod not found. When it went is not recorded{bound}. {}",
                        h.address,
                        h.block,
                        h.pool,
                        h.pod_key(),
                        h.handle,
                        release_hint(h)
                    ),
                }));
            }
            Some(pod) if pod.metadata.uid.as_deref() != Some(h.handle.as_str()) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                let since = pod.metadata.creation_timestamp.as_ref().map(time_of);
                let when = match since {
                    Some(t) => format!(
                        ", created {} ago, so the holder was gone before then",
                        age(seconds_between(t, s.at))
                    ),
                    None => String::new(),
                };
                f.problems.push(Finding::LeakedAllocation(Leak {
                    holder: h.clone(),
                    pod_state: PodState::Recreated,
                    current_uid: Some(uid.clone()),
                    gone_before: since.map(|t| t.to_string()),
                    block_created: block_created.map(|t| t.to_string()),
                    message: format!(
                        "{} (block {}, pool {}) is held by {} (uid {}), which no longer exists: the pod of that name now has uid {uid}{when}. {}",
                        h.address,
                        h.block,
                        h.pool,
                        h.pod_key(),
                        h.handle,
                        release_hint(h)
                    ),
                }));
            }
            Some(pod) => {
                let phase = phase_of(pod);
                if ipam::pod::PodState::finished_phase(phase) {
                    let phase = phase.unwrap_or_default();
                    let finished = finished_at(pod);
                    let when = finished.map_or_else(String::new, |t| {
                        format!(" {} ago", age(seconds_between(t, s.at)))
                    });
                    f.problems
                        .push(Finding::FinishedPodHoldsAddress(Finished {
                            holder: h.clone(),
                            phase: phase.to_owned(),
                            finished_at: finished.map(|t| t.to_string()),
                            message: format!(
                                "pod {} finished ({phase}){when} but still holds {} (block {}): the controller frees the addresses of finished pods at once, so it is not running or not leading. Deleting the pod frees it too",
                                h.pod_key(),
                                h.address,
                                h.block
                            ),
                        }));
                } else if let Some(deadline) = pod.metadata.deletion_timestamp.as_ref().map(time_of)
                    && seconds_between(deadline, s.at) > PENDING_GRACE_SECONDS
                {
                    let entry = stuck
                        .entry((h.namespace.clone(), h.pod.clone()))
                        .or_insert_with(|| Stuck {
                            namespace: h.namespace.clone(),
                            pod: h.pod.clone(),
                            uid: h.handle.clone(),
                            deletion_timestamp: deadline.to_string(),
                            addresses: Vec::new(),
                            message: String::new(),
                        });
                    entry.addresses.push(h.address);
                    let list: Vec<String> =
                        entry.addresses.iter().map(ToString::to_string).collect();
                    entry.message = format!(
                        "pod {} should have been gone {} ago (deletionTimestamp {deadline}) but still exists, so it keeps {}: its node may be unreachable, or a finalizer holds it. Its addresses are released once the pod object is gone",
                        h.pod_key(),
                        age(seconds_between(deadline, s.at)),
                        list.join(", ")
                    );
                }
            }
        }
    }
    f.notes
        .extend(stuck.into_values().map(Finding::PodStuckTerminating));
}

fn release_hint(h: &Holder) -> String {
    format!(
        "The controller's leak sweep frees it at its next sweep when the controller runs; to free it now: kubectl ipam release --ip {}",
        h.address
    )
}

/// `status.phase`.
fn phase_of(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

/// When the pod's last container finished, if the kubelet recorded it.
fn finished_at(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(time_of)
        .max()
}

/// Namespace and name, for sorting.
fn by_key(pod: &Pod) -> (Option<&str>, Option<&str>) {
    (
        pod.metadata.namespace.as_deref(),
        pod.metadata.name.as_deref(),
    )
}

/// What the core's address rule reads of the pod: the controller's rule, so `check` expects an
/// address exactly where the controller gives one.
pub(crate) fn address_state(pod: &Pod) -> ipam::pod::PodState<'_> {
    let spec = pod.spec.as_ref();
    ipam::pod::PodState {
        node: spec.and_then(|s| s.node_name.as_deref()),
        host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
        finished: ipam::pod::PodState::finished_phase(phase_of(pod)),
        deleting: pod.metadata.deletion_timestamp.is_some(),
    }
}

/// Pods whose annotations name an address that no block records for them, in the block they
/// name. The CNI plugin refuses such an address (error 101).
pub fn unrecorded_annotations(pods: &[Pod], recorded: &[Recorded]) -> Vec<Finding> {
    let mut by_address: HashMap<IpAddr, Vec<&Holder>> = HashMap::new();
    for r in recorded {
        by_address
            .entry(r.holder.address)
            .or_default()
            .push(&r.holder);
    }
    let mut out = Vec::new();
    let mut pods: Vec<&Pod> = pods.iter().collect();
    pods.sort_by(|a, b| by_key(a).cmp(&by_key(b)));
    for pod in pods {
        let namespace = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let key = format!("{namespace}/{name}");
        let assignment = match Assignment::from_annotations(pod.annotations()) {
            Ok(a) => a,
            Err(e) => {
                let raw = [api::keys::ASSIGNED_IPV4, api::keys::ASSIGNED_IPV6]
                    .iter()
                    .find_map(|k| pod.annotations().get(*k).cloned());
                out.push(Finding::UnrecordedAddress(Unrecorded {
                    namespace: namespace.clone(),
                    pod: name.clone(),
                    uid: uid.clone(),
                    family: None,
                    address: raw,
                    annotated_block: None,
                    recorded: Vec::new(),
                    message: format!(
                        "pod {key}: its rangepool annotations cannot be read ({e}). The CNI plugin refuses them; values under rangepool.dev/ are the controller's and are never trusted"
                    ),
                }));
                continue;
            }
        };
        for (family, a) in [("ipv4", &assignment.ipv4), ("ipv6", &assignment.ipv6)] {
            let Some(a) = a else { continue };
            let holders = by_address.get(&a.address).cloned().unwrap_or_default();
            if holders
                .iter()
                .any(|h| h.handle == uid && h.block == a.block)
            {
                continue;
            }
            let why = match holders.iter().find(|h| h.handle == uid) {
                Some(h) => format!(
                    "block {} records it for this pod, not the block {} the annotation names",
                    h.block, a.block
                ),
                None if holders.is_empty() => "no block records it".to_owned(),
                None => {
                    let others: Vec<String> = holders
                        .iter()
                        .map(|h| {
                            format!(
                                "block {} records it for {} (uid {})",
                                h.block,
                                h.pod_key(),
                                h.handle
                            )
                        })
                        .collect();
                    others.join("; ")
                }
            };
            out.push(Finding::UnrecordedAddress(Unrecorded {
                namespace: namespace.clone(),
                pod: name.clone(),
                uid: uid.clone(),
                family: Some(family.to_owned()),
                address: Some(a.address.to_string()),
                annotated_block: Some(a.block.clone()),
                recorded: holders.into_iter().cloned().collect(),
                message: format!(
                    "pod {key} (uid {uid}): its annotation {} names {}, but {why}. A forged or stale annotation: the CNI plugin refuses it (error 101), so the pod's sandbox cannot be set up with it",
                    if family == "ipv4" {
                        api::keys::ASSIGNED_IPV4
                    } else {
                        api::keys::ASSIGNED_IPV6
                    },
                    a.address
                ),
            }));
        }
    }
    out
}

/// Bound pods that need an address and have none, with the controller's reason when it gave
/// one.
fn unaddressed(s: &Snapshot, live: &[&Pod], f: &mut Findings) {
    for pod in live {
        // Unreadable annotations are reported as UnrecordedAddress.
        let Ok(a) = Assignment::from_annotations(pod.annotations()) else {
            continue;
        };
        if a.error.is_none() && (a.ipv4.is_some() || a.ipv6.is_some()) {
            continue;
        }
        let namespace = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let since = bound_at(pod).or_else(|| pod.metadata.creation_timestamp.as_ref().map(time_of));
        let waited = since.map(|t| seconds_between(t, s.at));
        let for_ = waited.map_or_else(String::new, |w| format!(" for {}", age(w)));
        let entry = |message: String| Unaddressed {
            namespace: namespace.clone(),
            pod: name.clone(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            node: node.clone(),
            error: a.error.clone(),
            waiting_since: since.map(|t| t.to_string()),
            message,
        };
        match &a.error {
            Some(error) => {
                // The controller's message names the pod already.
                let reason = error
                    .strip_prefix(&format!("pod {namespace}/{name}: "))
                    .unwrap_or(error);
                f.problems.push(Finding::PodWithoutAddress(entry(format!(
                    "pod {namespace}/{name} on node {node} has waited{for_} without an address: {reason}"
                ))))
            }
            None if waited.is_some_and(|w| w < PENDING_GRACE_SECONDS) => {
                f.notes.push(Finding::PodWaiting(entry(format!(
                    "pod {namespace}/{name} on node {node} was bound{for_}; the controller has not assigned it yet"
                ))))
            }
            None => f.problems.push(Finding::PodWithoutAddress(entry(format!(
                "pod {namespace}/{name} on node {node} has waited{for_} without an address and without an error: the controller assigns addresses within seconds, so check that it is running and leading (kubectl -n kube-system get lease rangepool-controller)"
            )))),
        }
    }
}

/// When the scheduler bound the pod, if it recorded it.
pub(crate) fn bound_at(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "True")?
        .last_transition_time
        .as_ref()
        .map(time_of)
}
