//! `show --ip` over hand-built snapshots: one case per answer, each with what tells it apart.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use api::{IPAMBlockSpec, IPPool, IPPoolSpec, IPReservation, IPReservationSpec};
use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::*;

fn now() -> Timestamp {
    "2025-01-01T01:00:00Z".parse().unwrap()
}

/// Released 2 minutes before `now`, in seconds since the epoch.
const RELEASED: i64 = 1_735_693_080;

fn pool(name: &str, cidr: &str, edges: Option<&str>) -> IPPool {
    IPPool::new(
        name,
        IPPoolSpec {
            cidr: cidr.into(),
            block_size: Some(26),
            reserve_edge_addresses: edges.map(str::to_owned),
            ..Default::default()
        },
    )
}

/// Block 10.244.0.0/26 on node-1: .5 held by web/a (u-a), .6 parked for shop/db-0, .7
/// released at [`RELEASED`].
fn block() -> IPAMBlock {
    let holders: BTreeMap<String, String> =
        [("5", "web/a u-a 1"), ("6", "shop/db-0 sts:s-uid/db-0 3")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
    IPAMBlock::new(
        "10-244-0-0-26",
        IPAMBlockSpec {
            cidr: "10.244.0.0/26".into(),
            pool: "general".into(),
            affinity: Some("node-1".into()),
            sequence_number: 4,
            holders,
            allocations: BTreeMap::new(),
            released: [("7".to_owned(), RELEASED)].into(),
            quarantine: None,
        },
    )
}

fn snapshot(reserved: &[&str]) -> Snapshot {
    Snapshot {
        pools: vec![
            pool("general", "10.244.0.0/24", None),
            pool("edgy", "10.244.1.0/24", Some("Pool")),
        ],
        reservations: Some(vec![IPReservation::new(
            "appliances",
            IPReservationSpec {
                reserved_cidrs: reserved.iter().map(|r| (*r).to_owned()).collect(),
            },
        )]),
        blocks: vec![block()],
        at: now(),
        ..Snapshot::default()
    }
}

fn pod(ns: &str, name: &str, uid: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            uid: Some(uid.into()),
            creation_timestamp: Some(Time("2025-01-01T00:00:00Z".parse().unwrap())),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some("node-1".into()),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "PodScheduled".into(),
                status: "True".into(),
                last_transition_time: Some(Time("2025-01-01T00:00:02Z".parse().unwrap())),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn a_held_address_names_pod_node_pool_block_and_since_when() {
    let l = lookup(
        ip("10.244.0.5"),
        &snapshot(&[]),
        &[pod("web", "a", "u-a")],
        &[],
    );
    assert_eq!(l.state, State::Held);
    assert_eq!(
        (
            l.pool.as_deref(),
            l.block.as_deref(),
            l.block_node.as_deref()
        ),
        (Some("general"), Some("10-244-0-0-26"), Some("node-1"))
    );
    assert_eq!(
        l.holders,
        [HolderPod {
            namespace: "web".into(),
            pod: "a".into(),
            uid: "u-a".into(),
            sequence: 1,
            pod_state: "Running".into(),
            node: Some("node-1".into()),
            // The binding, not the creation, nor the record's sequence.
            since: Some("2025-01-01T00:00:02Z".into()),
        }]
    );
    assert!(
        l.message.starts_with("10.244.0.5 (pool general, block 10-244-0-0-26) is held by pod web/a (uid u-a, Running) on node node-1, which has had it since 2025-01-01T00:00:02Z (59m ago) at the latest"),
        "{}",
        l.message
    );
    let text = table(&l);
    let row: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        row,
        [
            "10.244.0.5",
            "Held",
            "(Running)",
            "web/a",
            "node-1",
            "general",
            "10-244-0-0-26",
            "2025-01-01T00:00:02Z"
        ],
        "{text}"
    );
    let json = serde_json::to_value(&l).unwrap();
    assert_eq!(json["state"], "Held");
    assert_eq!(json["holders"][0]["podState"], "Running");
    assert_eq!(json["blockCidr"], "10.244.0.0/26");
}

#[test]
fn a_record_whose_pod_is_gone_or_recreated_is_a_leak() {
    let gone = lookup(ip("10.244.0.5"), &snapshot(&[]), &[], &[]);
    assert_eq!(gone.state, State::Held);
    assert_eq!(gone.holders[0].pod_state, "Gone");
    assert_eq!(gone.holders[0].since, None);
    assert!(
        gone.message
            .contains("no longer exists: a leaked allocation")
            && gone
                .message
                .contains("kubectl ipam release --ip 10.244.0.5"),
        "{}",
        gone.message
    );
    let again = lookup(
        ip("10.244.0.5"),
        &snapshot(&[]),
        &[pod("web", "a", "u-other")],
        &[],
    );
    assert_eq!(again.holders[0].pod_state, "Recreated");
}

#[test]
fn a_parked_address_names_the_statefulset_pod_it_is_kept_for() {
    let l = lookup(ip("10.244.0.6"), &snapshot(&[]), &[], &[]);
    assert_eq!(l.state, State::Parked);
    assert!(l.holders.is_empty());
    assert_eq!(
        l.parked,
        Some(ParkedFor {
            namespace: "shop".into(),
            pod: "db-0".into(),
            stateful_set_uid: "s-uid".into(),
            stateful_set: Some("db".into()),
        })
    );
    assert!(
        l.message
            .contains("parked for the next pod shop/db-0 of StatefulSet db (uid s-uid)"),
        "{}",
        l.message
    );
    assert!(table(&l).contains("shop/db-0 (parked)"), "{}", table(&l));
}

#[test]
fn a_released_address_says_when_it_was_released() {
    let l = lookup(ip("10.244.0.7"), &snapshot(&[]), &[], &[]);
    assert_eq!(l.state, State::CoolingDown);
    assert_eq!(l.released.as_deref(), Some("2025-01-01T00:58:00Z"));
    assert!(
        l.message
            .contains("it was released at 2025-01-01T00:58:00Z (2m ago)")
            && l.message.contains("--ip-cooldown"),
        "{}",
        l.message
    );
}

#[test]
fn a_reserved_address_names_the_reservation_or_the_edge_rule() {
    let l = lookup(ip("10.244.0.9"), &snapshot(&["10.244.0.8/30"]), &[], &[]);
    assert_eq!(l.state, State::Reserved);
    assert!(
        l.message
            .ends_with("is free, but no pod gets it. It is reserved by IPReservation appliances (10.244.0.8/30)"),
        "{}",
        l.message
    );
    let edge = lookup(ip("10.244.1.255"), &snapshot(&[]), &[], &[]);
    assert_eq!(edge.state, State::Reserved);
    assert_eq!(
        (edge.pool.as_deref(), edge.block.as_deref()),
        (Some("edgy"), None)
    );
    assert_eq!(
        edge.reserved_by,
        [ReservedBy::EdgeAddress {
            pool: "edgy".into(),
            rule: "Pool".into()
        }]
    );
    // Held and reserved: both are said, and the holder keeps it.
    let held = lookup(
        ip("10.244.0.5"),
        &snapshot(&["10.244.0.5"]),
        &[pod("web", "a", "u-a")],
        &[],
    );
    assert_eq!(held.state, State::Held);
    assert!(
        held.message.contains(
            "It is reserved now by IPReservation appliances (10.244.0.5): the pod keeps it"
        ),
        "{}",
        held.message
    );
}

#[test]
fn free_unrecorded_and_outside_addresses_say_so() {
    let s = snapshot(&[]);
    let free = lookup(ip("10.244.0.20"), &s, &[], &[]);
    assert_eq!(free.state, State::Free);
    assert_eq!(free.block.as_deref(), Some("10-244-0-0-26"));
    let blockless = lookup(ip("10.244.0.100"), &s, &[], &[]);
    assert_eq!(blockless.state, State::Free);
    assert_eq!(blockless.block, None);
    assert!(
        blockless.message.contains("pool general, in no block yet"),
        "{}",
        blockless.message
    );
    let outside = lookup(ip("10.99.0.1"), &s, &[], &[]);
    assert_eq!(outside.state, State::NotInPool);
    assert_eq!(outside.pool, None);
    let used = lookup(ip("10.244.0.30"), &s, &[], &[pod("web", "legacy", "u-l")]);
    assert_eq!(used.state, State::InUseUnrecorded);
    assert_eq!(used.used_by[0].pod, "legacy");
    assert!(
        used.message
            .contains("but pod web/legacy (uid u-l) on node node-1 runs with it"),
        "{}",
        used.message
    );
}
