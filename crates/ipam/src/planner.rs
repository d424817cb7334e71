//! Deciding a pod's addresses: validated pools, pool choice and allocation behind one call.
//!
//! [`Planner`] is what the controller keeps in memory and what `kubectl ipam plan` runs over
//! files: both feed it the pools ([`Planner::set_pools`]) and the blocks they know, and ask
//! [`Planner::assign`] for each pod that needs an address. A pod that already holds an address
//! of every family keeps it, without its node or namespace being looked at; otherwise the node's
//! labels and the namespace must be known, since the selectors and the namespace's pool
//! annotations decide, and the cluster's pod CIDR must be known, since no pool can be checked
//! without it. Then, per family still missing: if the pod already uses an address of that
//! family that no record gives it (its annotation names one whose record was lost, or its
//! sandbox runs with one from before), record that one if its pool admits the pod, and never
//! give a second; else choose the candidate pools ([`PoolCatalog::choose`]) and allocate from
//! them in order ([`Allocator::allocate`]). Addresses other live pods are seen using are never
//! handed out ([`Allocator::set_in_use`]).
//!
//! A family allocated before another family fails stays allocated: the pod keeps it, and the
//! next attempt only asks for what is still missing.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;
use thiserror::Error;

use crate::allocator::{AllocError, Allocator, Request};
use crate::choice::{ChoiceError, NotAdmitted, PodFacts, PoolCatalog};
use crate::cidr::Family;
use crate::fixed::{FixedError, IP_ADDRS};
use crate::pool::PoolInput;
use crate::sticky;
use crate::validate::{PoolVerdict, validate_pools};

/// Labels or annotations.
pub type Map = BTreeMap<String, String>;

/// What [`Planner::assign`] reads of a pod and its surroundings.
#[derive(Debug, Clone, Copy)]
pub struct PodContext<'a> {
    /// The pod's namespace.
    pub namespace: &'a str,
    /// The pod's name.
    pub name: &'a str,
    /// The node the pod is bound to.
    pub node: &'a str,
    /// The pod's annotations.
    pub annotations: &'a Map,
    /// The node's labels; `None` when the node is not known.
    pub node_labels: Option<&'a Map>,
    /// The namespace's labels and annotations; `None` when the namespace is not known.
    pub namespace_meta: Option<(&'a Map, &'a Map)>,
    /// The addresses the pod's assignment annotation names now: the controller confirmed them to
    /// the pod. A record the pod holds that is not among them was never confirmed, and is used
    /// only if it is one the controller would make now (see [`Planner::assign`]).
    pub confirmed: &'a [IpAddr],
    /// The addresses the pod's sandbox runs with (`status.podIPs`). One no record gives the
    /// pod is recorded as its own if its pool admits the pod, and the pod never gets a second
    /// address of that family (see [`Planner::assign`]).
    pub running: &'a [IpAddr],
    /// The UID of the StatefulSet that controls the pod, if one does: in a pool with
    /// `stickyStatefulSets`, the pod takes over the address its predecessor of the same name
    /// left parked (see [`crate::sticky`]).
    pub statefulset: Option<&'a str>,
}

impl<'a> PodContext<'a> {
    /// The address of `family` the pod is known to use, and where that is seen: first its
    /// assignment annotation (the controller gave it), then its sandbox's.
    fn in_use(&self, family: Family) -> Option<(IpAddr, &'static str)> {
        let of = |list: &[IpAddr]| list.iter().copied().find(|a| Family::of_addr(a) == family);
        of(self.confirmed)
            .map(|a| (a, "its assignment annotation"))
            .or_else(|| of(self.running).map(|a| (a, "its status.podIPs")))
    }

    /// What pool choice reads, once the node and the namespace are known.
    fn facts(&self) -> Result<PodFacts<'a>, AssignError> {
        let Some(node_labels) = self.node_labels else {
            return Err(AssignError::NodeUnknown {
                namespace: self.namespace.to_owned(),
                pod: self.name.to_owned(),
                node: self.node.to_owned(),
            });
        };
        let Some((namespace_labels, namespace_annotations)) = self.namespace_meta else {
            return Err(AssignError::NamespaceUnknown {
                namespace: self.namespace.to_owned(),
                pod: self.name.to_owned(),
            });
        };
        Ok(PodFacts {
            namespace: self.namespace,
            name: self.name,
            node: self.node,
            annotations: self.annotations,
            namespace_annotations,
            namespace_labels,
            node_labels,
        })
    }
}

/// A block record that claimed a pod but was not used: it names another pod, or a pool that
/// does not admit the pod, and the pod was never annotated with it. It was released, and the pod
/// got an address the ordinary way. A record like this is written by hand (or by a forged
/// write): the controller only writes records it would use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distrusted {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The address the record named.
    pub address: IpAddr,
    /// Its pool.
    pub pool: String,
    /// Why it was not used, naming pod, pool and reason.
    pub message: String,
}

/// One family's address for a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The family.
    pub family: Family,
    /// The address.
    pub address: IpAddr,
    /// The pool's name.
    pub pool: String,
    /// The block that records it.
    pub block: IpNet,
    /// False when the pod held it already.
    pub new: bool,
}

/// Why a pod gets no address (now). Every message names the pod.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AssignError {
    /// The node's labels are not known, so no `nodeSelector` can be checked.
    #[error(
        "pod {namespace}/{pod} gets no address: node {node} is not known, so the pools' nodeSelectors cannot be checked against its labels"
    )]
    NodeUnknown {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The node.
        node: String,
    },
    /// The namespace is not known. Pool annotations count once, so a namespace not seen yet must
    /// not be read as one without annotations: the pod would be pinned to the wrong pool for
    /// good.
    #[error(
        "pod {namespace}/{pod} gets no address: namespace {namespace} is not known, so its labels and pool annotations cannot be read"
    )]
    NamespaceUnknown {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
    },
    /// The cluster's pod CIDR is not known, so no pool is allocatable.
    #[error(
        "pod {namespace}/{pod} gets no address: the cluster pod CIDR is unknown, so no pool can be checked against it; set --pod-cidr (Helm value podCIDRs) or kubeadm's podSubnet"
    )]
    PodCidrUnknown {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
    },
    /// The pod already uses an address that lies in no pool: it was given elsewhere.
    #[error(
        "pod {namespace}/{pod} already uses {address} ({seen_in}), which lies in no IP pool; it keeps it and gets no second address"
    )]
    InUseOutsidePools {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The address.
        address: IpAddr,
        /// Where it was seen.
        seen_in: &'static str,
    },
    /// The pod already uses an address of a pool that does not admit it.
    #[error(
        "{reason} (the pod already uses it: {seen_in}); it gets no second address, and the address is kept from other pods while the pod lives"
    )]
    InUseNotAdmitted {
        /// Why the pool does not admit the pod.
        reason: Box<NotAdmitted>,
        /// Where it was seen.
        seen_in: &'static str,
    },
    /// The pod's `ipAddrs` (or `ipAddrsNoIpam`) annotation cannot be honoured.
    #[error(transparent)]
    Fixed(#[from] FixedError),
    /// The address the pod asks for lies in no pool.
    #[error(
        "pod {namespace}/{pod}: annotation {IP_ADDRS} asks for {address}, which lies in no IP pool"
    )]
    RequestedOutsidePools {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The address.
        address: IpAddr,
    },
    /// The pool of the address the pod asks for does not admit it, or gives no addresses now.
    #[error(
        "pod {namespace}/{pod}: annotation {IP_ADDRS} asks for {address}, but {why}; naming an address does not open a pool to a pod"
    )]
    RequestedNotAllowed {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The address.
        address: IpAddr,
        /// Why, naming the pool.
        why: String,
    },
    /// The address the pod asks for is reserved.
    #[error(
        "pod {namespace}/{pod}: annotation {IP_ADDRS} asks for {address}, which is reserved (an IPReservation, or an edge address its pool keeps back with reserveEdgeAddresses)"
    )]
    RequestedReserved {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The address.
        address: IpAddr,
    },
    /// Another pod holds (or uses) the address the pod asks for.
    #[error(
        "pod {namespace}/{pod}: annotation {IP_ADDRS} asks for {address}, but {holder} holds it"
    )]
    RequestedTaken {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The address.
        address: IpAddr,
        /// Who holds it.
        holder: String,
    },
    /// No pool may serve the pod (annotation, selectors, pool state).
    #[error(transparent)]
    Choice(#[from] ChoiceError),
    /// The candidate pools have no room, or the request is malformed.
    #[error(transparent)]
    Alloc(#[from] AllocError),
}

impl AssignError {
    /// Short stable label for Events, the pod's error annotation and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AssignError::NodeUnknown { .. } => "NodeUnknown",
            AssignError::NamespaceUnknown { .. } => "NamespaceUnknown",
            AssignError::PodCidrUnknown { .. } => "PodCIDRUnknown",
            AssignError::InUseOutsidePools { .. } => "AddressOutsidePools",
            AssignError::InUseNotAdmitted { .. } => "AddressNotAdmitted",
            AssignError::Fixed(e) => e.reason(),
            AssignError::RequestedOutsidePools { .. } => "AddressOutsidePools",
            AssignError::RequestedNotAllowed { .. } => "AddressNotAllowed",
            AssignError::RequestedReserved { .. } => "AddressReserved",
            AssignError::RequestedTaken { .. } => "AddressTaken",
            AssignError::Choice(e) => e.reason(),
            AssignError::Alloc(e) => e.reason(),
        }
    }
}

/// Pools, their verdicts and every block: see the module docs.
#[derive(Debug, Default)]
pub struct Planner {
    allocator: Allocator,
    catalog: PoolCatalog,
    /// In the order the pools were given.
    verdicts: Vec<PoolVerdict>,
    pod_cidrs_known: bool,
    distrusted: Vec<Distrusted>,
}

impl Planner {
    /// A planner with no pool and no block. With `strict_affinity`, a pod gets an address only
    /// from its node's blocks or a new block, never from another node's block.
    pub fn new(strict_affinity: bool) -> Planner {
        let mut allocator = Allocator::new();
        allocator.set_strict_affinity(strict_affinity);
        Planner {
            allocator,
            ..Planner::default()
        }
    }

    /// Validates the pools (all of them, every time: a verdict depends on the others) and
    /// hands the valid ones to the allocator. Blocks of pools that are gone stay until removed.
    pub fn set_pools(&mut self, inputs: &[PoolInput], pod_cidrs: Option<&[IpNet]>) {
        let verdicts = validate_pools(inputs, pod_cidrs);
        let names: HashSet<&str> = verdicts.iter().map(|v| v.name.as_str()).collect();
        for old in &self.verdicts {
            if !names.contains(old.name.as_str()) {
                self.allocator.remove_pool(&old.name);
            }
        }
        for verdict in &verdicts {
            match &verdict.pool {
                Some(pool) => self.allocator.set_pool(pool.clone(), verdict.allocatable()),
                None => self.allocator.remove_pool(&verdict.name),
            }
        }
        self.catalog = PoolCatalog::new(&verdicts);
        self.verdicts = verdicts;
        self.pod_cidrs_known = pod_cidrs.is_some();
    }

    /// Every pool's verdict, in the order [`Planner::set_pools`] was given them.
    pub fn verdicts(&self) -> &[PoolVerdict] {
        &self.verdicts
    }

    /// The verdict of the pool with that name.
    pub fn verdict(&self, name: &str) -> Option<&PoolVerdict> {
        self.catalog.verdict(name)
    }

    /// The allocator, for usage and blocks.
    pub fn allocator(&self) -> &Allocator {
        &self.allocator
    }

    /// The allocator, to load, drop and release blocks.
    pub fn allocator_mut(&mut self) -> &mut Allocator {
        &mut self.allocator
    }

    /// What `handle` holds in `family`.
    pub fn held(&self, handle: &str, family: Family) -> Option<Placed> {
        let got = self.allocator.find(handle, family)?;
        Some(Placed {
            family,
            address: got.address,
            pool: self.allocator.pool_name(got.pool).to_owned(),
            block: got.block,
            new: false,
        })
    }

    /// What `handle` holds, if it holds an address of every one of `families`.
    pub fn held_all(&self, handle: &str, families: &[Family]) -> Option<Vec<Placed>> {
        families.iter().map(|&f| self.held(handle, f)).collect()
    }

    /// The addresses `handle` holds that their pool no longer admits for this pod (see
    /// [`PoolCatalog::admits`]), or `None` when the pod's node or namespace is not known, so that
    /// admission cannot be judged.
    pub fn drift(&self, pod: &PodContext<'_>, handle: &str) -> Option<Vec<NotAdmitted>> {
        let facts = pod.facts().ok()?;
        Some(
            Family::ALL
                .iter()
                .filter_map(|&f| self.held(handle, f))
                .filter_map(|p| self.catalog.admits(&facts, &p.pool, p.address).err())
                .collect(),
        )
    }

    /// Records found claiming pods that were not used (see [`Distrusted`]), since the last call.
    pub fn take_distrusted(&mut self) -> Vec<Distrusted> {
        std::mem::take(&mut self.distrusted)
    }

    /// Why a record the pod holds but was never confirmed to it is not one the controller would
    /// make now: it names another pod, or its pool does not admit the pod. `None` when it is
    /// confirmed or would be made.
    fn unconfirmed_and_foreign(
        &self,
        pod: &PodContext<'_>,
        facts: &PodFacts<'_>,
        handle: &str,
        held: &Placed,
    ) -> Option<String> {
        if pod.confirmed.contains(&held.address) {
            return None;
        }
        let found = self.allocator.find(handle, held.family)?;
        let record = self.allocator.block(&found.block)?.get(found.ordinal)?;
        if (record.namespace(), record.pod()) != (pod.namespace, pod.name) {
            return Some(format!(
                "pod {}/{}: block {} records {} for its UID but names pod {}/{}; a record the controller did not write is not used: it was released, and the pod gets an address the usual way",
                pod.namespace,
                pod.name,
                crate::cidr::block_name(&found.block),
                held.address,
                record.namespace(),
                record.pod()
            ));
        }
        self.catalog
            .admits(facts, &held.pool, held.address)
            .err()
            .map(|e| {
                format!(
                    "{e}; the record was never confirmed to the pod, so it is not used: it was released, and the pod gets an address the usual way"
                )
            })
    }

    /// Records `address`, which the pod uses though no record gives it to the pod, as the pod's
    /// own: the pod was given it before its record was lost, or runs with it since before
    /// rangepool managed it. Only if the pool the address lies in admits the pod, and no other
    /// pod holds it.
    fn keep_in_use(
        &mut self,
        pod: &PodContext<'_>,
        facts: &PodFacts<'_>,
        handle: &str,
        address: IpAddr,
        seen_in: &'static str,
    ) -> Result<Placed, AssignError> {
        let pool = self
            .verdicts
            .iter()
            .filter_map(|v| v.pool.as_ref())
            .find(|p| p.cidr().contains(&address))
            .map(|p| p.name().to_owned())
            .ok_or_else(|| AssignError::InUseOutsidePools {
                namespace: pod.namespace.to_owned(),
                pod: pod.name.to_owned(),
                address,
                seen_in,
            })?;
        self.catalog
            .admits(facts, &pool, address)
            .map_err(|reason| AssignError::InUseNotAdmitted {
                reason: Box::new(reason),
                seen_in,
            })?;
        Ok(self.record_as_own(pod, handle, pool, address)?)
    }

    /// Records `address` of `pool` for the pod (see [`Allocator::adopt`]): in the block that
    /// covers it, or in a new block claimed for the pod's node.
    fn record_as_own(
        &mut self,
        pod: &PodContext<'_>,
        handle: &str,
        pool: String,
        address: IpAddr,
    ) -> Result<Placed, AllocError> {
        let family = Family::of_addr(&address);
        let request = Request {
            handle,
            namespace: pod.namespace,
            pod: pod.name,
            node: pod.node,
            family,
            pools: &[],
        };
        let got = self.allocator.adopt(&request, &pool, address, None)?;
        Ok(Placed {
            family,
            address,
            pool,
            block: got.block,
            new: got.new,
        })
    }

    /// The address of `family` the pod's predecessor of the same name and StatefulSet left
    /// parked, taken over by the pod, if there is one and its pool still admits the pod. A
    /// parked address the pool no longer admits is released: the pod gets one the usual way.
    fn take_parked(
        &mut self,
        pod: &PodContext<'_>,
        facts: &PodFacts<'_>,
        handle: &str,
        family: Family,
    ) -> Option<Placed> {
        let parked = sticky::parked_handle(pod.statefulset?, pod.name);
        let held = self.held(&parked, family)?;
        if self
            .catalog
            .admits(facts, &held.pool, held.address)
            .is_err()
        {
            if let Some(found) = self.allocator.find(&parked, family) {
                // Held by the parked handle with this sequence: the release cannot fail.
                let _ = self
                    .allocator
                    .release(found.address, &parked, found.sequence);
            }
            return None;
        }
        let got = self
            .allocator
            .rehandle(&parked, family, handle, pod.namespace, pod.name)?;
        Some(Placed {
            family,
            address: got.address,
            pool: held.pool,
            block: got.block,
            new: true,
        })
    }

    /// Gives the pod the address its `ipAddrs` annotation asks for, under the rules any address
    /// follows: it lies in an allocatable pool that admits the pod (selectors, Manual naming),
    /// is not reserved, and no other pod holds or uses it. Its block may be another node's; a
    /// new block around it is claimed for the pod's node. The reuse cooldown does not apply:
    /// the address was asked for by name.
    fn give_requested(
        &mut self,
        pod: &PodContext<'_>,
        facts: &PodFacts<'_>,
        handle: &str,
        address: IpAddr,
    ) -> Result<Placed, AssignError> {
        let (namespace, name) = (pod.namespace.to_owned(), pod.name.to_owned());
        let not_allowed = |why: String| AssignError::RequestedNotAllowed {
            namespace: namespace.clone(),
            pod: name.clone(),
            address,
            why,
        };
        let verdict = self
            .verdicts
            .iter()
            .find(|v| v.pool.as_ref().is_some_and(|p| p.cidr().contains(&address)))
            .ok_or_else(|| AssignError::RequestedOutsidePools {
                namespace: namespace.clone(),
                pod: name.clone(),
                address,
            })?;
        let pool = verdict.name.clone();
        if !verdict.allocatable() {
            return Err(not_allowed(format!(
                "pool {pool} gives no addresses now ({}): {}",
                verdict.reason, verdict.message
            )));
        }
        self.catalog
            .admits(facts, &pool, address)
            .map_err(|e| not_allowed(e.requirement()))?;
        if self.allocator.is_reserved(address) {
            return Err(AssignError::RequestedReserved {
                namespace,
                pod: name,
                address,
            });
        }
        let taken = |holder: String| AssignError::RequestedTaken {
            namespace: namespace.clone(),
            pod: name.clone(),
            address,
            holder,
        };
        if self.allocator.in_use_by_other(address, handle) {
            return Err(taken(
                "a running pod (its status.podIPs) that no record gives it to".into(),
            ));
        }
        if let Some(reason) = self.allocator.quarantine_of(address) {
            return Err(not_allowed(format!("its block is quarantined: {reason}")));
        }
        self.record_as_own(pod, handle, pool, address)
            .map_err(|e| match e {
                AllocError::AddressTaken { holder, .. } => taken(format!("pod {holder}")),
                other => AssignError::Alloc(other),
            })
    }

    /// Parks or releases what pod `handle` holds, now that the pod is gone or finished: the
    /// addresses of pools with `stickyStatefulSets` are parked for its successor when the pod
    /// belonged to StatefulSet `statefulset` (see [`crate::sticky`]); the rest are released.
    /// Returns what was released and what was parked.
    pub fn release_pod(
        &mut self,
        handle: &str,
        pod: &str,
        statefulset: Option<&str>,
    ) -> (Vec<crate::allocator::Released>, Vec<Placed>) {
        let mut parked = Vec::new();
        if let Some(sts) = statefulset {
            let to = sticky::parked_handle(sts, pod);
            for family in Family::ALL {
                let Some(held) = self.held(handle, family) else {
                    continue;
                };
                let sticky = self
                    .allocator
                    .pool(&held.pool)
                    .is_some_and(crate::pool::Pool::sticky_stateful_sets);
                if !sticky {
                    continue;
                }
                let namespace = self
                    .allocator
                    .find(handle, family)
                    .and_then(|f| self.allocator.block(&f.block)?.get(f.ordinal))
                    .map(|a| a.namespace().to_owned())
                    .unwrap_or_default();
                if self
                    .allocator
                    .rehandle(handle, family, &to, &namespace, pod)
                    .is_some()
                {
                    parked.push(held);
                }
            }
        }
        (self.allocator.release_handle(handle), parked)
    }

    /// The pod's address of each of `families`, allocating what it does not hold yet (in
    /// memory; the blocks changed are in [`Allocator::take_dirty`]). See the module docs.
    pub fn assign(
        &mut self,
        pod: &PodContext<'_>,
        handle: &str,
        families: &[Family],
    ) -> Result<Vec<Placed>, AssignError> {
        if let Some(held) = self.held_all(handle, families)
            && held.iter().all(|h| pod.confirmed.contains(&h.address))
        {
            return Ok(held);
        }
        let facts = pod.facts()?;
        if !self.pod_cidrs_known {
            return Err(AssignError::PodCidrUnknown {
                namespace: pod.namespace.to_owned(),
                pod: pod.name.to_owned(),
            });
        }
        let requested = crate::fixed::requested(pod.namespace, pod.name, pod.annotations)?;
        let mut placed = Vec::with_capacity(families.len());
        for &family in families {
            if let Some(held) = self.held(handle, family) {
                match self.unconfirmed_and_foreign(pod, &facts, handle, &held) {
                    None => {
                        placed.push(held);
                        continue;
                    }
                    Some(message) => {
                        if let Some(found) = self.allocator.find(handle, family) {
                            // Held by this handle with this sequence: the release cannot fail.
                            let _ = self
                                .allocator
                                .release(found.address, handle, found.sequence);
                        }
                        self.distrusted.push(Distrusted {
                            namespace: pod.namespace.to_owned(),
                            pod: pod.name.to_owned(),
                            address: held.address,
                            pool: held.pool.clone(),
                            message,
                        });
                    }
                }
            }
            if let Some(got) = self.take_parked(pod, &facts, handle, family) {
                placed.push(got);
                continue;
            }
            if let Some((address, seen_in)) = pod.in_use(family) {
                placed.push(self.keep_in_use(pod, &facts, handle, address, seen_in)?);
                continue;
            }
            if let Some(address) = requested.get(family) {
                placed.push(self.give_requested(pod, &facts, handle, address)?);
                continue;
            }
            let choice = self.catalog.choose(&facts, family)?;
            let got = self.allocator.allocate(&Request {
                handle,
                namespace: pod.namespace,
                pod: pod.name,
                node: pod.node,
                family,
                pools: &choice.pools,
            })?;
            placed.push(Placed {
                family,
                address: got.address,
                pool: self.allocator.pool_name(got.pool).to_owned(),
                block: got.block,
                new: got.new,
            });
        }
        Ok(placed)
    }
}

#[cfg(test)]
mod tests;
