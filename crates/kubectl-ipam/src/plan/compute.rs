//! Feeding the manifests to the core, the way the controller does, and collecting what it
//! decides.
//!
//! The rules are the core's: which pods want an address at all ([`PodState`]), and pool
//! validation, pool choice and allocation behind one [`Planner`], as the controller runs them.
//! What is decided here is only what the controller learns from the API server rather than from
//! the core: the labels of each pod's node and namespace, found among the manifests, and each
//! pod's handle; the plan's own bookkeeping (duplicate pods, the rows per family, notes). A pod
//! whose Node or Namespace manifest is missing gets no address (the core's `NodeUnknown`,
//! `NamespaceUnknown`), since the selectors cannot be checked without their labels; the
//! namespaces Kubernetes itself creates (`default`, `kube-system`, ...) are assumed as
//! Kubernetes creates them when no manifest is given.
//!
//! IPReservations are read as the controller reads them ([`api::IPReservationSpec::ranges`],
//! entries that are not addresses or ranges ignored and noted) and handed to the core's
//! allocator, which keeps them, and the edge addresses of pools with `reserveEdgeAddresses`,
//! from every pod. A pod asking for an address (`cni.projectcalico.org/ipAddrs`) goes through
//! the same [`Planner::assign`], with every refusal the controller makes; a pod's controlling
//! StatefulSet is passed on as the controller passes it. Pods carrying Calico's
//! `ipAddrsNoIpam` or `floatingIPs`, which rangepool does not honour, are listed as warnings.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;

use ipam::age::Age;
use ipam::allocator::Allocator;
use ipam::cidr::Family;
use ipam::planner::{AssignError, Planner, PodContext};
use ipam::pod::{NoAddress, PodState};
use ipam::pool::{AssignmentMode, PoolInput};
use ipam::validate::{PoolVerdict, Reason};
use k8s_openapi::api::core::v1::Pod;

use super::settings::Settings;
use crate::manifests::{Manifests, Skipped, Sourced};

/// The label the API server puts on every namespace, holding its name.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Namespaces every cluster has, with no annotations and only [`NAMESPACE_NAME_LABEL`].
const BUILT_IN_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// The result of one plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Pod CIDRs and families used.
    pub settings: Settings,
    /// One row per pod and family, pods in file order.
    pub pods: Vec<PodRow>,
    /// One row per pool, in file order.
    pub pools: Vec<PoolRow>,
    /// Objects not planned, in file order: other kinds, then pods that want no address.
    pub skipped: Vec<Skipped>,
    /// Assumptions the plan made, for the reader.
    pub notes: Vec<String>,
    /// One row per IPReservation, in file order.
    pub reservations: Vec<ReservationRow>,
    /// Pod annotations rangepool does not honour (`ipAddrsNoIpam`, `floatingIPs`), in file
    /// order, each naming the file and the pod.
    pub warnings: Vec<String>,
}

/// One IPReservation as the plan used it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationRow {
    /// Its name.
    pub name: String,
    /// The file it came from.
    pub file: PathBuf,
    /// The addresses and ranges kept from every pod.
    pub ranges: Vec<ipnet::IpNet>,
    /// Entries that are not addresses or ranges, each with why; ignored, as the controller
    /// ignores them.
    pub invalid: Vec<String>,
}

impl Plan {
    /// True when every pod gets an address and every pool is allocatable or disabled.
    pub fn clean(&self) -> bool {
        self.pods.iter().all(|p| p.outcome.address().is_some())
            && self.pools.iter().all(PoolRow::fine)
    }
}

/// What one pod gets in one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRow {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The node it is bound to.
    pub node: String,
    /// The family.
    pub family: Family,
    /// The address, or why there is none.
    pub outcome: Outcome,
}

/// An address, or the reason there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The pod gets `address` from `pool`.
    Address {
        /// The pool.
        pool: String,
        /// The address.
        address: IpAddr,
    },
    /// The pod gets no address.
    Refused {
        /// The short stable label (the core error's `reason()`).
        reason: &'static str,
        /// The message the pod's Event would carry.
        message: String,
    },
}

impl Outcome {
    /// The pool and address, if any.
    pub fn address(&self) -> Option<(&str, IpAddr)> {
        match self {
            Outcome::Address { pool, address } => Some((pool, *address)),
            Outcome::Refused { .. } => None,
        }
    }
}

/// One pool's verdict and planned usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRow {
    /// The pool's name.
    pub name: String,
    /// The file it came from.
    pub file: PathBuf,
    /// `spec.cidr` (normalised when it parses, else as written).
    pub cidr: String,
    /// The block prefix length in effect, or as written when the spec is invalid.
    pub block_size: Option<i64>,
    /// `Automatic` or `Manual`, or as written when the spec is invalid.
    pub assignment_mode: Option<String>,
    /// The core's verdict.
    pub reason: Reason,
    /// The core's message.
    pub message: String,
    /// How "older wins" was decided, when it was by name because creation times are unknown.
    pub note: Option<String>,
    /// Addresses in the pool's range.
    pub capacity: u128,
    /// Addresses the plan gives out from it.
    pub planned: u128,
    /// Addresses of it no pod is given: in an IPReservation, or edge addresses it keeps back.
    pub reserved: u128,
    /// Its Calico data-plane settings, which have no effect here (its message says so).
    pub inert: Vec<String>,
    /// Blocks the plan claims in it.
    pub blocks: usize,
}

impl PoolRow {
    /// True when the pool may give out addresses.
    pub fn allocatable(&self) -> bool {
        self.reason == Reason::Ok
    }

    /// Allocatable, or disabled on purpose.
    pub fn fine(&self) -> bool {
        matches!(self.reason, Reason::Ok | Reason::PoolDisabled)
    }
}

/// Runs the core over the manifests.
pub fn compute(manifests: &Manifests, settings: Settings) -> Plan {
    let inputs: Vec<PoolInput> = manifests
        .pools
        .iter()
        .map(|p| p.object.to_input())
        .collect();
    // The controller's default: a node may borrow a free slot of another node's block.
    let mut core = Planner::new(false);
    core.set_pools(&inputs, settings.pod_cidrs.as_deref());
    let reservations: Vec<ReservationRow> = manifests
        .reservations
        .iter()
        .map(|r| {
            let (ranges, invalid) = r.object.spec.ranges();
            ReservationRow {
                name: r.object.metadata.name.clone().unwrap_or_default(),
                file: r.file.clone(),
                ranges,
                invalid,
            }
        })
        .collect();
    core.allocator_mut().set_reserved(
        reservations
            .iter()
            .flat_map(|r| r.ranges.iter().copied())
            .collect(),
    );

    let mut planner = PodPlanner {
        manifests,
        core: &mut core,
        families: &settings.families,
        rows: Vec::new(),
        skipped: Vec::new(),
        assumed: Vec::new(),
        warnings: Vec::new(),
        seen: HashMap::new(),
        handles: HashSet::new(),
    };
    for pod in &manifests.pods {
        planner.plan(pod);
    }
    let PodPlanner {
        rows,
        skipped: skipped_pods,
        assumed,
        warnings,
        ..
    } = planner;

    let mut notes = Vec::new();
    for r in &reservations {
        for why in &r.invalid {
            notes.push(format!(
                "{}: IPReservation {}: {why}; the controller ignores the entry, and so does the plan",
                r.file.display(),
                r.name
            ));
        }
    }
    for ns in assumed {
        notes.push(format!(
            "namespace {ns} has no manifest; assumed as Kubernetes creates it (no annotations, label {NAMESPACE_NAME_LABEL}={ns})"
        ));
    }
    let pools = manifests
        .pools
        .iter()
        .zip(&inputs)
        .zip(core.verdicts())
        .map(|((sourced, input), verdict)| {
            pool_row(sourced, input, verdict, &inputs, core.allocator())
        })
        .collect();
    let mut skipped = manifests.skipped.clone();
    skipped.extend(skipped_pods);
    Plan {
        settings,
        pods: rows,
        pools,
        skipped,
        notes,
        reservations,
        warnings,
    }
}

/// State while planning pods one by one.
struct PodPlanner<'a> {
    manifests: &'a Manifests,
    core: &'a mut Planner,
    families: &'a [Family],
    rows: Vec<PodRow>,
    skipped: Vec<Skipped>,
    /// Built-in namespaces used without a manifest, in first-use order.
    assumed: Vec<String>,
    /// See [`Plan::warnings`].
    warnings: Vec<String>,
    /// `namespace/name` -> file of the first pod with it.
    seen: HashMap<String, PathBuf>,
    handles: HashSet<String>,
}

impl PodPlanner<'_> {
    fn plan(&mut self, sourced: &Sourced<Pod>) {
        let manifests = self.manifests;
        let pod = &sourced.object;
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let key = format!("{namespace}/{name}");
        let skip = |reason: String| Skipped {
            file: sourced.file.clone(),
            kind: "Pod".to_owned(),
            name: key.clone(),
            reason,
        };
        if name.is_empty() {
            self.skipped
                .push(skip("no metadata.name: skipped".to_owned()));
            return;
        }
        if let Some(first) = self.seen.get(&key) {
            self.skipped.push(skip(format!(
                "duplicate: skipped (a pod of this name is already in {})",
                first.display()
            )));
            return;
        }
        self.seen.insert(key.clone(), sourced.file.clone());
        self.warn_unhonoured(sourced, namespace, name);
        let spec = pod.spec.as_ref();
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let state = PodState {
            node: spec.and_then(|s| s.node_name.as_deref()),
            host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
            finished: PodState::finished_phase(phase),
            deleting: pod.metadata.deletion_timestamp.is_some(),
        };
        let node = match (state.no_address(), state.node()) {
            (None, Some(node)) => node,
            (why, _) => {
                self.skipped
                    .push(skip(skip_reason(why.unwrap_or(NoAddress::Unbound), phase)));
                return;
            }
        };
        let handle = pod
            .metadata
            .uid
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| key.clone());
        if !self.handles.insert(handle.clone()) {
            self.skipped.push(skip(format!(
                "duplicate: skipped (uid {handle} belongs to an earlier pod)"
            )));
            return;
        }

        let empty = BTreeMap::new();
        let namespace_meta = self.namespace(namespace);
        let context = PodContext {
            namespace,
            name,
            node,
            annotations: pod.metadata.annotations.as_ref().unwrap_or(&empty),
            node_labels: manifests
                .nodes
                .get(node)
                .map(|n| n.object.metadata.labels.as_ref().unwrap_or(&empty)),
            namespace_meta: namespace_meta.as_ref().map(|(l, a)| (l, a)),
            // A plan starts from no block: nothing is held, so nothing was confirmed.
            confirmed: &[],
            running: &[],
            statefulset: controlling_statefulset(pod),
        };
        let row = |family, outcome| PodRow {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            node: node.to_owned(),
            family,
            outcome,
        };
        // One family at a time, so that a family the pod cannot get does not hide the row of
        // one it can.
        for &family in self.families {
            match self.core.assign(&context, &handle, &[family]) {
                Ok(placed) => self.rows.extend(placed.into_iter().map(|p| {
                    row(
                        p.family,
                        Outcome::Address {
                            pool: p.pool,
                            address: p.address,
                        },
                    )
                })),
                Err(e) => self.rows.push(row(
                    family,
                    Outcome::Refused {
                        reason: e.reason(),
                        message: refusal_message(&e),
                    },
                )),
            }
        }
    }

    /// Notes the Calico annotations of a pod that rangepool does not honour: `ipAddrsNoIpam`
    /// (the pod gets no address: the core refuses it) and `floatingIPs` (the pod gets its
    /// address as usual). The messages are the core's, as the controller's Events carry them.
    fn warn_unhonoured(&mut self, sourced: &Sourced<Pod>, namespace: &str, name: &str) {
        let Some(annotations) = sourced.object.metadata.annotations.as_ref() else {
            return;
        };
        let file = sourced.file.display();
        self.warnings.extend(
            ipam::fixed::unhonoured(namespace, name, annotations)
                .into_iter()
                .map(|m| format!("{file}: {m}")),
        );
    }

    /// The namespace's labels (with the one the API server adds) and annotations, or `None`
    /// when it has no manifest and is not one Kubernetes creates itself.
    fn namespace(
        &mut self,
        name: &str,
    ) -> Option<(BTreeMap<String, String>, BTreeMap<String, String>)> {
        let (mut labels, annotations) = match self.manifests.namespaces.get(name) {
            Some(ns) => (
                ns.object.metadata.labels.clone().unwrap_or_default(),
                ns.object.metadata.annotations.clone().unwrap_or_default(),
            ),
            None if BUILT_IN_NAMESPACES.contains(&name) => {
                if !self.assumed.iter().any(|a| a == name) {
                    self.assumed.push(name.to_owned());
                }
                (BTreeMap::new(), BTreeMap::new())
            }
            None => return None,
        };
        labels.insert(NAMESPACE_NAME_LABEL.to_owned(), name.to_owned());
        Some((labels, annotations))
    }
}

/// The UID of the StatefulSet that controls the pod, by the core's rule
/// ([`ipam::sticky::controls_pod`]): in a pool with `stickyStatefulSets`, the pod would take
/// over the address its predecessor of the same name left parked. A plan starts from no block,
/// so nothing is parked yet; the pod is planned as the controller decides it.
pub(super) fn controlling_statefulset(pod: &Pod) -> Option<&str> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| ipam::sticky::controls_pod(&o.api_version, &o.kind, o.controller))
        .map(|o| o.uid.as_str())
}

/// Why a pod that wants no address is skipped, for the reader of the plan.
fn skip_reason(why: NoAddress, phase: Option<&str>) -> String {
    match why {
        NoAddress::Unbound => "not bound: skipped (no spec.nodeName)".to_owned(),
        NoAddress::HostNetwork => "host network: skipped (uses its node's address)".to_owned(),
        NoAddress::Finished => format!("finished (phase {}): skipped", phase.unwrap_or_default()),
        NoAddress::Deleting => "being deleted (deletionTimestamp set): skipped".to_owned(),
    }
}

/// The core's message, with what to do about it when the cause is a manifest missing from the
/// files rather than a rule.
fn refusal_message(e: &AssignError) -> String {
    match e {
        AssignError::NodeUnknown { node, .. } => {
            format!("{e}; node {node} has no manifest among the files: add its Node manifest")
        }
        AssignError::NamespaceUnknown { namespace, .. } => format!(
            "{e}; namespace {namespace} has no manifest among the files: add its Namespace manifest"
        ),
        _ => e.to_string(),
    }
}

fn pool_row(
    sourced: &Sourced<api::IPPool>,
    input: &PoolInput,
    verdict: &PoolVerdict,
    inputs: &[PoolInput],
    allocator: &Allocator,
) -> PoolRow {
    let usage = allocator.usage(&verdict.name).unwrap_or_default();
    let (block_size, assignment_mode) = match &verdict.pool {
        Some(pool) => (
            Some(i64::from(pool.block_prefix())),
            Some(pool.assignment_mode().as_str().to_owned()),
        ),
        // The spec is refused, so the core read no mode: show it as written, or the default
        // when it is not written, as the pool would have it.
        None => (
            input.block_size,
            Some(
                input
                    .assignment_mode
                    .clone()
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| AssignmentMode::default().as_str().to_owned()),
            ),
        ),
    };
    PoolRow {
        name: verdict.name.clone(),
        file: sourced.file.clone(),
        cidr: verdict
            .cidr
            .map_or_else(|| input.cidr.clone(), |c| c.to_string()),
        block_size,
        assignment_mode,
        reason: verdict.reason,
        message: verdict.message.clone(),
        note: overlap_note(input, verdict, inputs),
        capacity: verdict.cidr.as_ref().map_or(0, ipam::cidr::addr_count),
        planned: usage.allocated,
        reserved: usage.reserved,
        inert: verdict
            .pool
            .as_ref()
            .map(ipam::pool::Pool::inert_settings)
            .unwrap_or_default(),
        blocks: usage.blocks,
    }
}

/// Says so when an overlap was decided by name because creation times are missing or equal.
fn overlap_note(input: &PoolInput, verdict: &PoolVerdict, inputs: &[PoolInput]) -> Option<String> {
    let winner = inputs
        .iter()
        .find(|i| Some(&i.name) == verdict.overlapped_by.as_ref())?;
    let mine = Age::new(&input.created, &input.name).created();
    let theirs = Age::new(&winner.created, &winner.name).created();
    let (me, them) = (&input.name, &winner.name);
    match (mine, theirs) {
        (None, None) => Some(format!(
            "decided by name: neither {me} nor {them} has a creationTimestamp (as in files not yet applied), so {them}, whose name sorts first, counts as older; in a cluster the pool created first keeps the range"
        )),
        (None, Some(_)) => Some(format!(
            "decided by creation time: {me} has no creationTimestamp, so it counts as newer than {them}"
        )),
        (Some(a), Some(b)) if a == b => Some(format!(
            "decided by name: {me} and {them} have the same creationTimestamp, so {them}, whose name sorts first, counts as older"
        )),
        _ => None,
    }
}
