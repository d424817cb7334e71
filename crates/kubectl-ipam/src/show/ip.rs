//! `kubectl ipam show --ip ADDR`: who has this address? The first question when a firewall log
//! shows a source address.
//!
//! Read-only, like the rest of `show`: the pools, reservations and blocks are listed once, then
//! the pod each record names is read (to tell a live holder from a gone one, and to give its
//! node and since when it has the address), and, when no record holds the address, the pods
//! running with it as their address (`status.podIP`, the one field the API server selects pods
//! by). The answer is one of:
//!
//! - `Held`: a block records it for a pod: namespace, name, UID, node, pool, block, and since
//!   when (the pod's binding, else its creation: a block's sequence number is not a time). A
//!   record whose pod is gone is said to be a leak.
//! - `Parked`: kept for the next pod of a StatefulSet under a name ([`ipam::sticky`]).
//! - `InUseUnrecorded`: no record, but a live pod runs with it; the controller keeps it from
//!   other pods while that pod lives.
//! - `Reserved`: free, but an IPReservation or its pool's `reserveEdgeAddresses` keeps it from
//!   every pod ([`crate::reserved`]).
//! - `CoolingDown`: free, released at a time its block records (`spec.released`); the controller
//!   gives it to no pod until its `--ip-cooldown` has passed since then. The CLI does not know
//!   that flag, so it says when the address was released.
//! - `Free`: in a pool, and no one has it.
//! - `NotInPool`: in no pool and no block: rangepool never gives it out.
//!
//! A held or parked address may be reserved as well; both are said.

use std::net::IpAddr;

use api::IPAMBlock;
use ipam::validate::PoolVerdict;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use serde::Serialize;

use crate::cluster::{AccessError, Connection};
use crate::records::{self, Holder};
use crate::reserved::{Reserved, ReservedBy};
use crate::snapshot::{Snapshot, seconds_between};
use crate::text::{Table, age};

/// What the address is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum State {
    /// A block records it for a pod (live or gone).
    Held,
    /// A block keeps it for the next pod of a StatefulSet.
    Parked,
    /// No block records it, but a live pod runs with it.
    InUseUnrecorded,
    /// Free, and kept from every pod by a reservation.
    Reserved,
    /// Free, released recently.
    CoolingDown,
    /// Free.
    Free,
    /// In no pool and no block.
    NotInPool,
}

/// The answer, in the `-o json` / `-o yaml` shape (fields are only ever added).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lookup {
    /// The address asked about.
    pub address: IpAddr,
    /// What it is now.
    pub state: State,
    /// The pool of its block, else the pool whose range contains it.
    pub pool: Option<String>,
    /// The IPAMBlock that contains it.
    pub block: Option<String>,
    /// That block's range.
    pub block_cidr: Option<String>,
    /// The node that block belongs to.
    pub block_node: Option<String>,
    /// The pods the blocks record it for (more than one only when blocks overlap).
    pub holders: Vec<HolderPod>,
    /// The StatefulSet pod it is kept for.
    pub parked: Option<ParkedFor>,
    /// Live pods running with it that no record gives it to.
    pub used_by: Vec<PodRef>,
    /// What keeps it from every pod now.
    pub reserved_by: Vec<ReservedBy>,
    /// When it was released, if its block still says so (RFC 3339).
    pub released: Option<String>,
    /// Why its block gives out nothing new, if it is quarantined.
    pub quarantine: Option<String>,
    /// For a person.
    pub message: String,
}

/// A pod a record names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HolderPod {
    /// As the record names it.
    pub namespace: String,
    /// As the record names it.
    pub pod: String,
    /// The record's handle: the pod's UID.
    pub uid: String,
    /// The record's sequence (the block's sequence number when it was allocated; not a time).
    pub sequence: i64,
    /// `Running`, `Pending`, ... (its phase), `Terminating`, or `Gone` (no pod of that name) and
    /// `Recreated` (a pod of that name with another UID): then the record is a leak.
    pub pod_state: String,
    /// The pod's node.
    pub node: Option<String>,
    /// Since when the pod has had it, at the latest: its binding (PodScheduled), else its
    /// creation (RFC 3339). `null` for a pod that is gone.
    pub since: Option<String>,
}

/// A StatefulSet pod a parked record waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParkedFor {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The StatefulSet's UID.
    pub stateful_set_uid: String,
    /// The StatefulSet's name, from the pod's.
    pub stateful_set: Option<String>,
}

/// A pod by namespace, name, UID and node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRef {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub pod: String,
    /// Its UID.
    pub uid: String,
    /// Its node.
    pub node: Option<String>,
}

/// Reads what the lookup needs, and looks.
pub async fn read(connection: &Connection, address: IpAddr) -> Result<Lookup, AccessError> {
    let client = &connection.client;
    let snapshot = Snapshot::read(client, false).await?;
    let recorded = records_of(&snapshot.blocks, address);
    let mut pods = Vec::new();
    for h in recorded
        .iter()
        .filter(|h| ipam::sticky::Parked::parse(&h.handle).is_none())
    {
        let api: Api<Pod> = Api::namespaced(client.clone(), &h.namespace);
        let got = api
            .get_opt(&h.pod)
            .await
            .map_err(|e| AccessError::request(format!("reading pod {}", h.pod_key()), &e))?;
        pods.extend(got);
    }
    let running = if recorded.is_empty() {
        running_with(client, address).await?
    } else {
        Vec::new()
    };
    Ok(lookup(address, &snapshot, &pods, &running))
}

/// Live pods whose (first) address is `address`.
async fn running_with(client: &Client, address: IpAddr) -> Result<Vec<Pod>, AccessError> {
    let api: Api<Pod> = Api::all(client.clone());
    let params = ListParams::default().fields(&format!("status.podIP={address}"));
    let found = api
        .list(&params)
        .await
        .map_err(|e| AccessError::request(format!("listing pods with address {address}"), &e))?;
    Ok(found
        .items
        .into_iter()
        .filter(|p| crate::check::address_state(p).needs_address())
        .collect())
}

/// Every record of `address` in `blocks`.
fn records_of(blocks: &[IPAMBlock], address: IpAddr) -> Vec<Holder> {
    records::recorded(blocks)
        .into_iter()
        .map(|r| r.holder)
        .filter(|h| h.address == address)
        .collect()
}

/// The answer from what was read: `pods` are the pods the records name, as read (those that
/// exist), `running` the live pods running with the address.
pub fn lookup(address: IpAddr, snapshot: &Snapshot, pods: &[Pod], running: &[Pod]) -> Lookup {
    let recorded = records_of(&snapshot.blocks, address);
    let block = snapshot
        .blocks
        .iter()
        .filter(|b| records::range(b).is_ok_and(|c| c.contains(&address)))
        .min_by_key(|b| b.name_any());
    let reserved = Reserved::new(
        &snapshot.pools,
        snapshot.reservations.as_deref().unwrap_or_default(),
    );
    let pool = block
        .map(|b| b.spec.pool.clone())
        .or_else(|| pool_containing(reserved.verdicts(), address));
    let reserved_by = reserved.by(address);
    let released = block.and_then(|b| released_at(b, address));
    let mut holders = Vec::new();
    let mut parked = None;
    for h in &recorded {
        match ipam::sticky::Parked::parse(&h.handle) {
            Some(p) => {
                parked = Some(ParkedFor {
                    namespace: h.namespace.clone(),
                    pod: p.pod.to_owned(),
                    stateful_set_uid: p.statefulset_uid.to_owned(),
                    stateful_set: p.statefulset().map(|(name, _)| name.to_owned()),
                });
            }
            None => holders.push(holder_pod(h, pods)),
        }
    }
    let used_by: Vec<PodRef> = running
        .iter()
        .map(|p| PodRef {
            namespace: p.namespace().unwrap_or_default(),
            pod: p.name_any(),
            uid: p.metadata.uid.clone().unwrap_or_default(),
            node: p.spec.as_ref().and_then(|s| s.node_name.clone()),
        })
        .collect();
    let state = if !holders.is_empty() {
        State::Held
    } else if parked.is_some() {
        State::Parked
    } else if !used_by.is_empty() {
        State::InUseUnrecorded
    } else if !reserved_by.is_empty() {
        State::Reserved
    } else if released.is_some() {
        State::CoolingDown
    } else if pool.is_some() {
        State::Free
    } else {
        State::NotInPool
    };
    let mut out = Lookup {
        address,
        state,
        pool,
        block: block.map(ResourceExt::name_any),
        block_cidr: block.map(|b| b.spec.cidr.clone()),
        block_node: block.and_then(|b| b.spec.affinity.clone()),
        holders,
        parked,
        used_by,
        reserved_by,
        released: released.map(|t| t.to_string()),
        quarantine: block.and_then(|b| b.spec.quarantine.clone()),
        message: String::new(),
    };
    out.message = message(&out, released, snapshot.at);
    out
}

/// The pool (by name order) whose range contains `address`, as the core reads the ranges.
fn pool_containing(verdicts: &[PoolVerdict], address: IpAddr) -> Option<String> {
    verdicts
        .iter()
        .filter(|v| v.cidr.is_some_and(|c| c.contains(&address)))
        .map(|v| v.name.clone())
        .min()
}

/// When `address`, free in `block`, was released, if the block records it.
fn released_at(block: &IPAMBlock, address: IpAddr) -> Option<Timestamp> {
    let range = records::range(block).ok()?;
    let ordinal = ipam::cidr::ordinal_of(&range, address)?;
    if block.spec.record_at(ordinal).ok().flatten().is_some() {
        return None;
    }
    let at = *block.spec.released.get(&ordinal.to_string())?;
    Timestamp::from_second(at).ok()
}

fn holder_pod(h: &Holder, pods: &[Pod]) -> HolderPod {
    let pod = pods.iter().find(|p| {
        p.metadata.namespace.as_deref() == Some(h.namespace.as_str())
            && p.metadata.name.as_deref() == Some(h.pod.as_str())
    });
    let (pod_state, node, since) = match pod {
        None => ("Gone".to_owned(), None, None),
        Some(p) if p.metadata.uid.as_deref() != Some(h.handle.as_str()) => {
            ("Recreated".to_owned(), None, None)
        }
        Some(p) => {
            let state = if p.metadata.deletion_timestamp.is_some() {
                "Terminating".to_owned()
            } else {
                p.status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_else(|| "Pending".to_owned())
            };
            let since = crate::check::bound_at(p)
                .or_else(|| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
            (
                state,
                p.spec.as_ref().and_then(|s| s.node_name.clone()),
                since.map(|t| t.to_string()),
            )
        }
    };
    HolderPod {
        namespace: h.namespace.clone(),
        pod: h.pod.clone(),
        uid: h.handle.clone(),
        sequence: h.sequence,
        pod_state,
        node,
        since,
    }
}

/// The sentence for a person.
fn message(l: &Lookup, released: Option<Timestamp>, now: Timestamp) -> String {
    let ip = l.address;
    let place = match (&l.pool, &l.block) {
        (Some(pool), Some(block)) => format!("pool {pool}, block {block}"),
        (Some(pool), None) => format!("pool {pool}, in no block yet"),
        (None, Some(block)) => format!("block {block}"),
        (None, None) => String::new(),
    };
    let when = |t: &str| -> String {
        match t.parse::<Timestamp>() {
            Ok(t) => format!("{t} ({} ago)", age(seconds_between(t, now))),
            Err(_) => t.to_owned(),
        }
    };
    let mut text = match l.state {
        State::Held => {
            let each: Vec<String> = l
                .holders
                .iter()
                .map(|h| {
                    let key = format!("{}/{}", h.namespace, h.pod);
                    match h.pod_state.as_str() {
                        "Gone" => format!(
                            "pod {key} (uid {}), which no longer exists: a leaked allocation; the controller's leak sweep frees it, or kubectl ipam release --ip {ip}",
                            h.uid
                        ),
                        "Recreated" => format!(
                            "pod {key} (uid {}), which no longer exists (a pod of that name has another UID now): a leaked allocation; the controller's leak sweep frees it, or kubectl ipam release --ip {ip}",
                            h.uid
                        ),
                        state => format!(
                            "pod {key} (uid {}, {state}) on node {}{}",
                            h.uid,
                            h.node.as_deref().unwrap_or("(none)"),
                            h.since
                                .as_deref()
                                .map_or_else(String::new, |s| format!(
                                    ", which has had it since {} at the latest",
                                    when(s)
                                ))
                        ),
                    }
                })
                .collect();
            format!("{ip} ({place}) is held by {}", each.join("; and by "))
        }
        State::Parked => {
            let p = l.parked.as_ref();
            format!(
                "{ip} ({place}) is parked for the next pod {}/{} of StatefulSet {} (uid {}): no pod has it now, and the pod created again under that name gets it back. The controller releases it when the StatefulSet is deleted or scaled below the pod's ordinal",
                p.map_or("", |p| &p.namespace),
                p.map_or("", |p| &p.pod),
                p.and_then(|p| p.stateful_set.as_deref()).unwrap_or("?"),
                p.map_or("", |p| &p.stateful_set_uid),
            )
        }
        State::InUseUnrecorded => {
            let pods: Vec<String> = l
                .used_by
                .iter()
                .map(|p| {
                    format!(
                        "pod {}/{} (uid {}) on node {}",
                        p.namespace,
                        p.pod,
                        p.uid,
                        p.node.as_deref().unwrap_or("(none)")
                    )
                })
                .collect();
            format!(
                "no block records {ip}{}, but {} runs with it (status.podIPs). The controller gives it to no other pod while that pod lives; kubectl ipam check reports it (PodIPNotRecorded)",
                if place.is_empty() {
                    String::new()
                } else {
                    format!(" ({place})")
                },
                pods.join(" and ")
            )
        }
        State::Reserved => format!("{ip} ({place}) is free, but no pod gets it"),
        State::CoolingDown => format!(
            "{ip} ({place}) is free; it was released at {}. The controller gives it to no pod until its --ip-cooldown has passed since then",
            released.map_or_else(String::new, |t| when(&t.to_string()))
        ),
        State::Free => format!("{ip} ({place}) is free: no pod has it"),
        State::NotInPool => {
            format!("{ip} lies in no IP pool and no block: rangepool never gives it to a pod")
        }
    };
    if !l.reserved_by.is_empty() {
        let by: Vec<String> = l.reserved_by.iter().map(ToString::to_string).collect();
        let by = by.join(" and ");
        text.push_str(&match l.state {
            State::Held => format!(
                ". It is reserved now by {by}: the pod keeps it while it runs (kubectl ipam check reports it: ReservedAddressHeld)"
            ),
            State::Parked => format!(". It is reserved now by {by}, and still goes back to that pod"),
            _ => format!(". It is reserved by {by}"),
        });
    }
    if let Some(why) = &l.quarantine {
        text.push_str(&format!(
            ". Its block is quarantined ({why}): it gives out no new address"
        ));
    }
    text
}

/// The answer as a table for a person: one row per holder (or one row), the message below.
pub fn table(l: &Lookup) -> String {
    let mut t = Table::new(vec![
        "ADDRESS", "STATE", "POD", "NODE", "POOL", "BLOCK", "SINCE",
    ]);
    let dash = || "-".to_owned();
    let pool = l.pool.clone().unwrap_or_else(dash);
    let block = l.block.clone().unwrap_or_else(dash);
    let mut rows: Vec<Vec<String>> = l
        .holders
        .iter()
        .map(|h| {
            vec![
                l.address.to_string(),
                format!("{} ({})", state_name(l.state), h.pod_state),
                format!("{}/{}", h.namespace, h.pod),
                h.node.clone().unwrap_or_else(dash),
                pool.clone(),
                block.clone(),
                h.since.clone().unwrap_or_else(dash),
            ]
        })
        .collect();
    if rows.is_empty() {
        let (pod, node) = match (&l.parked, l.used_by.first()) {
            (Some(p), _) => (format!("{}/{} (parked)", p.namespace, p.pod), dash()),
            (None, Some(p)) => (
                format!("{}/{}", p.namespace, p.pod),
                p.node.clone().unwrap_or_else(dash),
            ),
            (None, None) => (dash(), l.block_node.clone().unwrap_or_else(dash)),
        };
        rows.push(vec![
            l.address.to_string(),
            state_name(l.state).to_owned(),
            pod,
            node,
            pool,
            block,
            l.released.clone().unwrap_or_else(dash),
        ]);
    }
    let last = rows.len() - 1;
    for (i, row) in rows.into_iter().enumerate() {
        let details = if i == last {
            vec![l.message.clone()]
        } else {
            Vec::new()
        };
        t.push(row, details);
    }
    t.render()
}

fn state_name(s: State) -> &'static str {
    match s {
        State::Held => "Held",
        State::Parked => "Parked",
        State::InUseUnrecorded => "InUseUnrecorded",
        State::Reserved => "Reserved",
        State::CoolingDown => "CoolingDown",
        State::Free => "Free",
        State::NotInPool => "NotInPool",
    }
}

#[cfg(test)]
mod tests;
