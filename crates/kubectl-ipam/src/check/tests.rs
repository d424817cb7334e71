//! The rules of `check` over hand-built snapshots: one test per rule, each with the case that
//! must be flagged and the neighbouring case that must not.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use api::{IPAMBlock, IPAMBlockSpec, IPPool, IPPoolSpec, IPPoolStatus, PoolCondition};
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::find::Findings;
use super::finding::{Finding, PodState};
use super::*;
use crate::snapshot::Snapshot;

/// The moment every snapshot is read at.
fn now() -> Timestamp {
    "2025-01-01T01:00:00Z".parse().unwrap()
}

fn ago(seconds: i64) -> Time {
    Time(now() - SignedDuration::from_secs(seconds))
}

#[derive(Clone)]
struct PodB(Pod);

fn pod(ns: &str, name: &str, uid: &str) -> PodB {
    PodB(Pod {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            uid: Some(uid.into()),
            creation_timestamp: Some(ago(3600)),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some("node-1".into()),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        }),
    })
}

impl PodB {
    fn annotated(mut self, k: &str, v: &str) -> Self {
        self.0
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(k.into(), v.into());
        self
    }
    /// Annotated the way the controller annotates an assigned pod.
    fn assigned(self, address: &str, pool: &str, block: &str) -> Self {
        self.annotated(api::keys::ASSIGNED_IPV4, address)
            .annotated(
                api::keys::ASSIGNED_POOLS,
                &format!(r#"{{"ipv4":"{pool}"}}"#),
            )
            .annotated(
                api::keys::ASSIGNED_BLOCKS,
                &format!(r#"{{"ipv4":"{block}"}}"#),
            )
    }
    fn phase(mut self, phase: &str) -> Self {
        self.0.status.as_mut().unwrap().phase = Some(phase.into());
        self
    }
    fn created(mut self, seconds_ago: i64) -> Self {
        self.0.metadata.creation_timestamp = Some(ago(seconds_ago));
        self
    }
    fn deleting_since(mut self, seconds_ago: i64) -> Self {
        self.0.metadata.deletion_timestamp = Some(ago(seconds_ago));
        self
    }
    fn unbound(mut self) -> Self {
        self.0.spec.as_mut().unwrap().node_name = None;
        self
    }
}

#[derive(Clone)]
struct BlockB(IPAMBlock);

fn block(cidr: &str, pool: &str) -> BlockB {
    let name = ipam::cidr::block_name(&cidr.parse().unwrap());
    let mut b = IPAMBlock::new(
        &name,
        IPAMBlockSpec {
            cidr: cidr.into(),
            pool: pool.into(),
            affinity: Some("node-1".into()),
            sequence_number: 0,
            holders: BTreeMap::new(),
            allocations: BTreeMap::new(),
            released: BTreeMap::new(),
            quarantine: None,
        },
    );
    b.metadata.creation_timestamp = Some(ago(7200));
    BlockB(b)
}

impl BlockB {
    /// Records ordinal `ordinal` for the pod `namespace/name` with `uid`.
    fn holds(mut self, ordinal: u32, uid: &str, namespace: &str, name: &str) -> Self {
        let spec = &mut self.0.spec;
        spec.sequence_number += 1;
        spec.holders.insert(
            ordinal.to_string(),
            format!("{namespace}/{name} {uid} {}", spec.sequence_number),
        );
        self
    }
    fn named(mut self, name: &str) -> Self {
        self.0.metadata.name = Some(name.into());
        self
    }
}

fn pool(name: &str, cidr: &str, condition: Option<(&str, &str)>) -> IPPool {
    let mut p = IPPool::new(
        name,
        IPPoolSpec {
            cidr: cidr.into(),
            ..Default::default()
        },
    );
    p.status = condition.map(|(status, reason)| IPPoolStatus {
        conditions: vec![PoolCondition {
            type_: "Allocatable".into(),
            status: status.into(),
            reason: reason.into(),
            message: format!("pool {name}: {reason} (the controller's words)"),
            observed_generation: None,
        }],
        ..Default::default()
    });
    p
}

fn ok_pool(name: &str, cidr: &str) -> IPPool {
    pool(name, cidr, Some(("True", "OK")))
}

fn snapshot(pools: Vec<IPPool>, blocks: Vec<BlockB>, pods: Vec<PodB>) -> Snapshot {
    Snapshot {
        pools,
        blocks: blocks.into_iter().map(|b| b.0).collect(),
        pods: pods.into_iter().map(|p| p.0).collect(),
        at: now(),
        ..Snapshot::default()
    }
}

fn meta(name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        labels: Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        ..Default::default()
    }
}

#[test]
fn a_pod_its_pool_no_longer_admits_is_a_problem_naming_pod_pool_and_selector() {
    let (mut pools, blocks, pods) = healthy();
    pools[0].spec.namespace_selector = Some("team == 'payments'".into());
    let with_team = |team: &str| {
        let mut s = snapshot(pools.clone(), blocks.clone(), pods.clone());
        s.namespaces = vec![k8s_openapi::api::core::v1::Namespace {
            metadata: meta("web", &[("team", team)]),
            ..Default::default()
        }];
        s.nodes = vec![k8s_openapi::api::core::v1::Node {
            metadata: meta("node-1", &[]),
            ..Default::default()
        }];
        s
    };
    assert_eq!(find(&with_team("payments")), Findings::default());
    let f = find(&with_team("web"));
    assert_eq!(kinds(&f.problems), ["AddressNotAdmitted"]);
    let Finding::AddressNotAdmitted(x) = &f.problems[0] else {
        unreachable!()
    };
    assert_eq!(x.reason, "SelectorMismatch");
    assert_eq!(x.holder.address.to_string(), "10.244.0.0");
    for part in [
        "pod web/a",
        "pool general",
        "namespaceSelector",
        "re-create the pod",
    ] {
        assert!(x.message.contains(part), "{part}: {}", x.message);
    }
    // Without the namespace or node it cannot be judged, and is not guessed.
    let (pools, blocks, pods) = healthy();
    assert_eq!(find(&snapshot(pools, blocks, pods)), Findings::default());
}

fn kinds(list: &[Finding]) -> Vec<&'static str> {
    list.iter().map(Finding::kind).collect()
}

/// One healthy pod with its block and annotation.
fn healthy() -> (Vec<IPPool>, Vec<BlockB>, Vec<PodB>) {
    (
        vec![ok_pool("general", "10.244.0.0/24")],
        vec![block("10.244.0.0/26", "general").holds(0, "u-a", "web", "a")],
        vec![pod("web", "a", "u-a").assigned("10.244.0.0", "general", "10-244-0-0-26")],
    )
}

#[test]
fn a_consistent_cluster_has_no_problem_and_no_note() {
    let (pools, blocks, pods) = healthy();
    let f = find(&snapshot(pools, blocks, pods));
    assert_eq!(f, Findings::default());
}

#[test]
fn an_allocation_of_a_missing_pod_is_a_leak_with_the_block_age_as_bound() {
    let (pools, blocks, _) = healthy();
    let f = find(&snapshot(pools, blocks, vec![]));
    assert_eq!(kinds(&f.problems), ["LeakedAllocation"]);
    let Finding::LeakedAllocation(leak) = &f.problems[0] else {
        unreachable!()
    };
    assert_eq!(leak.pod_state, PodState::NotFound);
    assert_eq!(leak.holder.address.to_string(), "10.244.0.0");
    assert_eq!(
        (leak.holder.handle.as_str(), leak.holder.sequence),
        ("u-a", 1)
    );
    assert_eq!(leak.gone_before, None);
    assert_eq!(leak.block_created.as_deref(), Some("2024-12-31T23:00:00Z"));
    assert!(
        leak.message.contains("pod not found") && leak.message.contains("at most 2h old"),
        "{}",
        leak.message
    );
}

#[test]
fn a_re_created_pod_makes_the_old_allocation_a_leak_gone_before_the_new_pod() {
    let (pools, blocks, _) = healthy();
    let f = find(&snapshot(
        pools,
        blocks,
        vec![pod("web", "a", "u-a2").created(600)],
    ));
    let Finding::LeakedAllocation(leak) = &f.problems[0] else {
        panic!("{f:?}")
    };
    assert_eq!(leak.pod_state, PodState::Recreated);
    assert_eq!(leak.current_uid.as_deref(), Some("u-a2"));
    assert_eq!(leak.gone_before.as_deref(), Some("2025-01-01T00:50:00Z"));
    assert!(leak.message.contains("10m ago"), "{}", leak.message);
    // The new pod has no address yet and was created long ago: that is a problem too.
    assert_eq!(
        kinds(&f.problems),
        ["LeakedAllocation", "PodWithoutAddress"]
    );
}

#[test]
fn a_finished_pod_holding_an_address_is_flagged_but_a_running_one_is_not() {
    let (pools, blocks, _) = healthy();
    let f = find(&snapshot(
        pools,
        blocks,
        vec![pod("web", "a", "u-a").phase("Succeeded")],
    ));
    assert_eq!(kinds(&f.problems), ["FinishedPodHoldsAddress"]);
    assert!(f.problems[0].message().contains("Succeeded"));
}

#[test]
fn a_pod_long_past_its_deletion_time_is_noted_with_its_addresses() {
    let (pools, blocks, _) = healthy();
    let stuck = pod("web", "a", "u-a")
        .assigned("10.244.0.0", "general", "10-244-0-0-26")
        .deleting_since(3600);
    let f = find(&snapshot(pools.clone(), blocks, vec![stuck]));
    assert!(f.problems.is_empty(), "{f:?}");
    assert_eq!(kinds(&f.notes), ["PodStuckTerminating"]);
    let Finding::PodStuckTerminating(s) = &f.notes[0] else {
        unreachable!()
    };
    assert_eq!(
        s.addresses,
        ["10.244.0.0".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(s.message.contains("1h ago"), "{}", s.message);

    let (_, blocks, _) = healthy();
    let in_grace = pod("web", "a", "u-a")
        .assigned("10.244.0.0", "general", "10-244-0-0-26")
        .deleting_since(5);
    let f = find(&snapshot(pools, blocks, vec![in_grace]));
    assert_eq!(f, Findings::default());
}

#[test]
fn forged_stale_and_misplaced_annotations_are_unrecorded_addresses() {
    let pools = vec![ok_pool("general", "10.244.0.0/24")];
    let blocks = vec![
        block("10.244.0.0/26", "general")
            .holds(0, "u-a", "web", "a")
            .holds(1, "u-b", "web", "b"),
    ];
    let pods = vec![
        pod("web", "a", "u-a").assigned("10.244.0.0", "general", "10-244-0-0-26"),
        pod("web", "b", "u-b").assigned("10.244.0.1", "general", "10-244-0-64-26"),
        pod("web", "thief", "u-t").assigned("10.244.0.0", "general", "10-244-0-0-26"),
        pod("web", "forger", "u-f").assigned("10.244.0.9", "general", "10-244-0-0-26"),
        pod("web", "garbled", "u-g")
            .unbound()
            .annotated(api::keys::ASSIGNED_IPV4, "10.244.0.300"),
    ];
    let f = find(&snapshot(pools, blocks, pods));
    assert_eq!(kinds(&f.problems), ["UnrecordedAddress"; 4], "{f:#?}");
    let why = |pod: &str| {
        f.problems
            .iter()
            .find_map(|p| match p {
                Finding::UnrecordedAddress(u) if u.pod == pod => Some(u.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no finding for {pod}"))
    };
    assert!(
        why("b").message.contains("not the block 10-244-0-64-26"),
        "{}",
        why("b").message
    );
    let thief = why("thief");
    assert_eq!(thief.recorded.len(), 1);
    assert_eq!(thief.recorded[0].handle, "u-a");
    assert!(thief.message.contains("for web/a"), "{}", thief.message);
    assert!(why("forger").message.contains("no block records it"));
    let garbled = why("garbled");
    assert_eq!(garbled.family, None);
    assert_eq!(garbled.address.as_deref(), Some("10.244.0.300"));
}

#[test]
fn one_address_in_two_blocks_is_a_duplicate_and_the_blocks_overlap() {
    let pools = vec![ok_pool("general", "10.244.0.0/24")];
    let blocks = vec![
        block("10.244.0.0/26", "general").holds(5, "u-a", "web", "a"),
        block("10.244.0.0/28", "general").holds(5, "u-b", "web", "b"),
    ];
    let pods = vec![
        pod("web", "a", "u-a").assigned("10.244.0.5", "general", "10-244-0-0-26"),
        pod("web", "b", "u-b").assigned("10.244.0.5", "general", "10-244-0-0-28"),
    ];
    let f = find(&snapshot(pools, blocks, pods));
    assert_eq!(
        kinds(&f.problems),
        [
            "BlockNotMatchingPool",
            "OverlappingBlocks",
            "DuplicateAddress"
        ],
        "{f:#?}"
    );
    let Finding::DuplicateAddress(d) = &f.problems[2] else {
        unreachable!()
    };
    assert_eq!(d.address.unwrap().to_string(), "10.244.0.5");
    let handles: Vec<&str> = d.holders.iter().map(|h| h.handle.as_str()).collect();
    assert_eq!(handles, ["u-a", "u-b"]);
    assert!(
        f.problems[0].message().contains("/28 block"),
        "{}",
        f.problems[0].message()
    );
}

#[test]
fn one_pod_with_two_addresses_of_a_family_is_a_duplicate_handle() {
    let pools = vec![ok_pool("general", "10.244.0.0/24")];
    let blocks = vec![
        block("10.244.0.0/26", "general").holds(0, "u-a", "web", "a"),
        block("10.244.0.64/26", "general").holds(0, "u-a", "web", "a"),
    ];
    let pods = vec![pod("web", "a", "u-a").assigned("10.244.0.0", "general", "10-244-0-0-26")];
    let f = find(&snapshot(pools, blocks, pods));
    assert_eq!(kinds(&f.problems), ["DuplicateHandle"], "{f:#?}");
    let Finding::DuplicateHandle(d) = &f.problems[0] else {
        unreachable!()
    };
    assert_eq!(
        (d.handle.as_deref(), d.family.as_deref()),
        (Some("u-a"), Some("ipv4"))
    );
    assert_eq!(d.holders.len(), 2);
}

#[test]
fn blocks_of_missing_pools_outside_their_pool_misnamed_or_corrupt_are_flagged() {
    let pools = vec![ok_pool("general", "10.244.0.0/24")];
    let blocks = vec![
        block("10.244.0.0/26", "gone"),
        block("10.244.9.0/26", "general"),
        block("10.244.0.64/26", "general").named("my-block"),
        block("10.244.0.128/26", "general")
            .holds(0, "u-x", "web", "x")
            .holds(1, "u-x", "web", "x"),
    ];
    let x = pod("web", "x", "u-x").assigned("10.244.0.128", "general", "10-244-0-128-26");
    let f = find(&snapshot(pools, blocks, vec![x]));
    let got: Vec<(&str, String)> = f
        .problems
        .iter()
        .filter(|p| p.kind() != "DuplicateHandle")
        .map(|p| (p.kind(), p.subject()))
        .collect();
    assert_eq!(
        got,
        [
            ("BlockWithoutPool", "block 10-244-0-0-26".to_owned()),
            ("BlockNotMatchingPool", "block 10-244-9-0-26".to_owned()),
            ("InvalidBlock", "block my-block".to_owned()),
            ("InvalidBlock", "block 10-244-0-128-26".to_owned()),
        ],
        "{f:#?}"
    );
    assert!(f.problems[0].message().contains("lies in pool general"));
    assert!(
        f.problems[1]
            .message()
            .contains("outside the range 10.244.0.0/24")
    );
    assert!(
        f.problems[2]
            .message()
            .contains("must be named 10-244-0-64-26")
    );
}

#[test]
fn bound_pods_without_an_address_say_why_and_fresh_ones_are_only_noted() {
    let pools = vec![ok_pool("general", "10.244.0.0/24")];
    let pods = vec![
        pod("web", "refused", "u-r").annotated(
            api::keys::ASSIGNMENT_ERROR,
            "pod web/refused: annotation names pool \"payment\", which does not exist",
        ),
        pod("web", "fresh", "u-f").created(5),
        pod("web", "forgotten", "u-o").created(600),
        pod("web", "pending", "u-p").unbound(),
        pod("web", "done", "u-d").phase("Failed"),
    ];
    let f = find(&snapshot(pools, vec![], pods));
    let subjects: Vec<String> = f.problems.iter().map(Finding::subject).collect();
    assert_eq!(subjects, ["pod web/forgotten", "pod web/refused"], "{f:#?}");
    let Finding::PodWithoutAddress(refused) = &f.problems[1] else {
        unreachable!()
    };
    assert_eq!(
        refused.message,
        "pod web/refused on node node-1 has waited for 1h without an address: annotation names pool \"payment\", which does not exist"
    );
    assert!(f.problems[0].message().contains("without an error"));
    assert_eq!(kinds(&f.notes), ["PodWaiting"]);
    assert_eq!(f.notes[0].subject(), "pod web/fresh");
}

#[test]
fn pools_without_status_or_not_allocatable_are_problems_disabled_and_terminating_are_notes() {
    let pools = vec![
        pool("dmz", "192.168.0.0/24", Some(("False", "OutsidePodCIDR"))),
        pool("fresh", "10.244.1.0/24", None),
        pool("old", "10.244.2.0/24", Some(("False", "PoolDisabled"))),
        pool("leaving", "10.244.3.0/24", Some(("False", "Terminating"))),
        ok_pool("general", "10.244.0.0/24"),
    ];
    let blocks = vec![block("10.244.3.0/26", "leaving").holds(0, "u-a", "web", "a")];
    let f = find(&snapshot(
        pools,
        blocks,
        vec![pod("web", "a", "u-a").assigned("10.244.3.0", "leaving", "10-244-3-0-26")],
    ));
    let problems: Vec<String> = f.problems.iter().map(Finding::subject).collect();
    assert_eq!(problems, ["pool dmz", "pool fresh"]);
    assert_eq!(
        f.problems[0].message(),
        "pool dmz: OutsidePodCIDR (the controller's words)"
    );
    assert!(
        f.problems[1]
            .message()
            .contains("has not written its status")
    );
    assert_eq!(kinds(&f.notes), ["PoolTerminating", "PoolDisabled"]);
    let Finding::PoolTerminating(t) = &f.notes[0] else {
        unreachable!()
    };
    assert_eq!(t.allocations, 1);
}

#[test]
fn a_leak_round_trips_through_the_report_with_flat_fields() {
    let (pools, blocks, _) = healthy();
    let f = find(&snapshot(pools, blocks, vec![]));
    let json = serde_json::to_value(&f.problems[0]).unwrap();
    assert_eq!(json["kind"], "LeakedAllocation");
    assert_eq!(json["address"], "10.244.0.0");
    assert_eq!(json["block"], "10-244-0-0-26");
    assert_eq!(json["ordinal"], 0);
    assert_eq!(json["handle"], "u-a");
    assert_eq!(json["podState"], "NotFound");
    let back: Finding = serde_json::from_value(json).unwrap();
    assert_eq!(back, f.problems[0]);
}

#[test]
fn the_text_report_names_each_problem_and_the_exit_status() {
    let (pools, blocks, _) = healthy();
    let snapshot = snapshot(pools, blocks, vec![]);
    let f = find(&snapshot);
    let report = Report {
        report_version: REPORT_VERSION,
        generated_at: now().to_string(),
        server: "https://cluster.example:6443/".into(),
        clean: false,
        checked: Counts::default(),
        problems: f.problems,
        notes: f.notes,
    };
    let text = render(&report);
    assert!(
        text.contains("  LeakedAllocation: 10.244.0.0 held by web/a\n"),
        "{text}"
    );
    assert!(
        text.contains("Result: 1 problem(s); exit status 1"),
        "{text}"
    );
    assert!(
        text.contains("kubectl ipam release --from-report"),
        "{text}"
    );
    assert!(text.lines().all(|l| l.len() <= 120), "{text}");
}

impl PodB {
    /// Its sandbox runs with `address`, as the kubelet reports.
    fn running_with(mut self, address: &str) -> Self {
        self.0.status.as_mut().unwrap().pod_ips = Some(vec![k8s_openapi::api::core::v1::PodIP {
            ip: address.into(),
        }]);
        self
    }
}

#[test]
fn a_pod_running_with_an_address_no_block_records_for_it_is_a_problem() {
    let (pools, blocks, pods) = healthy();
    // Running with the recorded address: fine.
    let agreeing = vec![pods[0].clone().running_with("10.244.0.0")];
    let f = find(&snapshot(pools.clone(), blocks.clone(), agreeing));
    assert_eq!(f, Findings::default());
    // Running with another one: the record names 10.244.0.0.
    let other = vec![pods[0].clone().running_with("10.244.0.9")];
    let f = find(&snapshot(pools.clone(), blocks.clone(), other));
    assert_eq!(kinds(&f.problems), ["PodIPNotRecorded"]);
    let message = f.problems[0].message();
    assert!(
        message.contains("pod web/a runs with 10.244.0.9")
            && message.contains("record 10.244.0.0 for it instead"),
        "{message}"
    );
    // Running with an address recorded for another pod: names that pod.
    let mut two = pods.clone();
    two.push(pod("web", "b", "u-b").running_with("10.244.0.0"));
    let f = find(&snapshot(pools, blocks, two));
    let found: Vec<&Finding> = f
        .problems
        .iter()
        .filter(|p| p.kind() == "PodIPNotRecorded")
        .collect();
    assert_eq!(found.len(), 1);
    assert!(
        found[0].message().contains("for pod web/a"),
        "{}",
        found[0].message()
    );
}

#[test]
fn a_quarantined_block_is_a_note_saying_how_to_lift_it() {
    let (pools, mut blocks, pods) = healthy();
    blocks[0].0.spec.quarantine =
        Some("block 10-244-0-0-26 was deleted while it recorded 1 addresses".into());
    let f = find(&snapshot(pools, blocks, pods));
    assert!(f.problems.is_empty(), "{:?}", f.problems);
    assert_eq!(kinds(&f.notes), ["BlockQuarantined"]);
    assert!(f.notes[0].message().contains("remove spec.quarantine"));
}

fn reservation(name: &str, entries: &[&str]) -> api::IPReservation {
    api::IPReservation::new(
        name,
        api::IPReservationSpec {
            reserved_cidrs: entries.iter().map(|e| (*e).to_owned()).collect(),
        },
    )
}

#[test]
fn a_parked_sticky_record_is_a_note_naming_the_statefulset_and_never_a_leak() {
    let (pools, blocks, pods) = healthy();
    let blocks = vec![
        blocks[0]
            .clone()
            .holds(5, "sts:sts-uid/db-0", "shop", "db-0"),
    ];
    // Its pod is gone; and then a pod of that name exists with another UID (the successor, not
    // scheduled yet, so the controller has not given it the record): neither makes it a leak.
    let successor = pod("shop", "db-0", "u-new").unbound();
    for pods in [pods.clone(), [pods, vec![successor]].concat()] {
        let f = find(&snapshot(pools.clone(), blocks.clone(), pods));
        assert_eq!(kinds(&f.problems), Vec::<&str>::new(), "{f:#?}");
        assert_eq!(kinds(&f.notes), ["ParkedStickyAddress"]);
        let Finding::ParkedStickyAddress(x) = &f.notes[0] else {
            unreachable!()
        };
        assert_eq!(x.holder.address.to_string(), "10.244.0.5");
        assert_eq!(x.holder.handle, "sts:sts-uid/db-0");
        assert_eq!(x.stateful_set_uid, "sts-uid");
        assert_eq!(x.stateful_set.as_deref(), Some("db"));
        assert_eq!(x.ordinal, Some(0));
        for part in [
            "10.244.0.5 (block 10-244-0-0-26, pool general)",
            "next pod shop/db-0 of StatefulSet shop/db (uid sts-uid)",
            "scaled below ordinal 1",
            "no leak",
        ] {
            assert!(x.message.contains(part), "{part:?} in {}", x.message);
        }
        assert!(!x.message.contains("reserved"), "{}", x.message);
    }

    // Reserved meanwhile: still kept for its pod, and the note says so.
    let mut s = snapshot(pools, blocks, vec![]);
    s.reservations = Some(vec![reservation("appliances", &["10.244.0.5"])]);
    let f = find(&s);
    assert_eq!(kinds(&f.notes), ["ParkedStickyAddress"]);
    assert!(
        f.notes[0]
            .message()
            .contains("reserved now by IPReservation appliances (10.244.0.5)"),
        "{}",
        f.notes[0].message()
    );
    // The report keeps it under notes, where `release --from-report` never looks.
    let report = Report {
        report_version: REPORT_VERSION,
        generated_at: now().to_string(),
        server: "https://x/".into(),
        clean: f.problems.is_empty(),
        checked: Counts::default(),
        problems: f.problems.clone(),
        notes: f.notes.clone(),
    };
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["notes"][0]["kind"], "ParkedStickyAddress");
    assert_eq!(json["notes"][0]["statefulSetUid"], "sts-uid");
    assert_eq!(json["notes"][0]["handle"], "sts:sts-uid/db-0");
    assert!(
        render(&report).contains("  ParkedStickyAddress: 10.244.0.5 kept for shop/db-0\n"),
        "{}",
        render(&report)
    );
}

#[test]
fn a_live_pod_holding_a_reserved_address_is_a_problem_naming_what_reserves_it() {
    let (pools, blocks, pods) = healthy();
    let mut s = snapshot(pools.clone(), blocks.clone(), pods.clone());
    s.reservations = Some(vec![
        reservation("appliances", &["10.244.0.0/30"]),
        reservation("elsewhere", &["10.99.0.1"]),
    ]);
    let f = find(&s);
    assert_eq!(kinds(&f.problems), ["ReservedAddressHeld"]);
    let Finding::ReservedAddressHeld(x) = &f.problems[0] else {
        unreachable!()
    };
    assert_eq!(x.holder.pod_key(), "web/a");
    assert_eq!(
        x.reserved_by,
        [crate::reserved::ReservedBy::IPReservation {
            name: "appliances".into(),
            range: "10.244.0.0/30".parse().unwrap()
        }]
    );
    assert!(
        x.message.starts_with("pod web/a holds 10.244.0.0 (block 10-244-0-0-26, pool general), which is now reserved by IPReservation appliances (10.244.0.0/30)")
            && x.message.contains("re-create the pod"),
        "{}",
        x.message
    );
    let json = serde_json::to_value(&f.problems[0]).unwrap();
    assert_eq!(
        json["reservedBy"],
        serde_json::json!([{"by": "IPReservation", "name": "appliances", "range": "10.244.0.0/30"}])
    );

    // The pool keeping its edge addresses back: 10.244.0.0 is its first.
    let mut edged = pools.clone();
    edged[0].spec.reserve_edge_addresses = Some("Pool".into());
    let f = find(&snapshot(edged, blocks.clone(), pods.clone()));
    assert_eq!(kinds(&f.problems), ["ReservedAddressHeld"]);
    assert!(
        f.problems[0]
            .message()
            .contains("pool general's reserveEdgeAddresses: Pool"),
        "{}",
        f.problems[0].message()
    );

    // A finished pod is reported for that, not for the reservation; a reservation elsewhere
    // changes nothing.
    let mut s = snapshot(
        pools.clone(),
        blocks.clone(),
        vec![pods[0].clone().phase("Succeeded")],
    );
    s.reservations = Some(vec![reservation("appliances", &["10.244.0.0"])]);
    assert_eq!(kinds(&find(&s).problems), ["FinishedPodHoldsAddress"]);
    let mut s = snapshot(pools, blocks, pods);
    s.reservations = Some(vec![reservation("elsewhere", &["10.244.0.9"])]);
    assert_eq!(find(&s), Findings::default());
}
