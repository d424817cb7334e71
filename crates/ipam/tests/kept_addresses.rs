//! Fixed, sticky and reserved addresses through the core's public API: a specific address asked
//! for with `cni.projectcalico.org/ipAddrs` never escapes the trust rules; reserved and cooling
//! addresses are never handed out; a sticky address returns to the same pod name of the same
//! StatefulSet and to no other; small pools give their empty blocks back and honour a per-node
//! block limit. Unit cases first, then properties over random operation sequences.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipam::fixed::IP_ADDRS;
use ipam::sticky::{Parked, StatefulSetNow, parked_handle};
use ipam::{Family, IPV4_POOLS_ANNOTATION, Planner, PodContext, PoolInput};
use ipnet::IpNet;
use proptest::prelude::*;

type Map = BTreeMap<String, String>;

fn pod_cidrs() -> Vec<IpNet> {
    vec!["10.244.0.0/16".parse().unwrap()]
}

/// A general pool, and a Manual pool only namespace `pay` (team=payments) may use.
fn pools() -> Vec<PoolInput> {
    vec![
        PoolInput::new("general", "10.244.0.0/24").created("2024-01-01T00:00:00Z"),
        PoolInput::new("payments", "10.244.8.0/24")
            .manual()
            .namespace_selector("team == 'payments'")
            .created("2024-01-01T00:00:00Z"),
    ]
}

fn planner(pools: &[PoolInput]) -> Planner {
    let mut p = Planner::new(false);
    p.set_pools(pools, Some(&pod_cidrs()));
    p
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A pod's fixture: namespace, name, node, annotations, namespace labels, StatefulSet.
#[derive(Clone)]
struct Pod {
    namespace: String,
    name: String,
    node: String,
    annotations: Map,
    ns_labels: Map,
    statefulset: Option<String>,
}

static EMPTY: Map = Map::new();

fn pod(namespace: &str, name: &str) -> Pod {
    let team = if namespace == "pay" {
        "payments"
    } else {
        "web"
    };
    Pod {
        namespace: namespace.into(),
        name: name.into(),
        node: "n1".into(),
        annotations: Map::new(),
        ns_labels: [("team".to_owned(), team.to_owned())].into(),
        statefulset: None,
    }
}

impl Pod {
    fn annotated(mut self, key: &str, value: &str) -> Pod {
        self.annotations.insert(key.into(), value.into());
        self
    }

    fn asking(self, address: &str) -> Pod {
        self.annotated(IP_ADDRS, &format!("[\"{address}\"]"))
    }

    fn on(mut self, node: &str) -> Pod {
        self.node = node.into();
        self
    }

    fn of(mut self, statefulset: &str) -> Pod {
        self.statefulset = Some(statefulset.into());
        self
    }

    fn context(&self) -> PodContext<'_> {
        PodContext {
            namespace: &self.namespace,
            name: &self.name,
            node: &self.node,
            annotations: &self.annotations,
            node_labels: Some(&EMPTY),
            namespace_meta: Some((&self.ns_labels, &EMPTY)),
            confirmed: &[],
            running: &[],
            statefulset: self.statefulset.as_deref(),
        }
    }

    /// Assigns an IPv4 address: the address, or the refusal's reason and message.
    fn assign(&self, p: &mut Planner, uid: &str) -> Result<IpAddr, (String, String)> {
        p.assign(&self.context(), uid, &[Family::V4])
            .map(|placed| placed[0].address)
            .map_err(|e| (e.reason().to_owned(), e.to_string()))
    }
}

// ---- A specific address (ipAddrs). ----

#[test]
fn a_pod_gets_the_address_it_asks_for_from_a_pool_that_admits_it() {
    let mut p = planner(&pools());
    let db = pod("pay", "db")
        .annotated(IPV4_POOLS_ANNOTATION, r#"["payments"]"#)
        .asking("10.244.8.77");
    assert_eq!(db.assign(&mut p, "u-db"), Ok(ip("10.244.8.77")));
    // The block around it is the pod's node's; the next pod of the node gets another address.
    let web = pod("web", "web").asking("10.244.0.9").on("n2");
    assert_eq!(web.assign(&mut p, "u-web"), Ok(ip("10.244.0.9")));
    // Another node's block may hold it: n1 asks for an address in n2's block.
    let near = pod("web", "near").asking("10.244.0.10");
    assert_eq!(near.assign(&mut p, "u-near"), Ok(ip("10.244.0.10")));
}

#[test]
fn naming_an_address_never_opens_a_pool_to_a_pod() {
    let mut p = planner(&pools());
    // Not named (Manual), wrong namespace (selector), outside every pool, malformed.
    let cases = [
        (
            pod("pay", "a").asking("10.244.8.5"),
            "AddressNotAllowed",
            "Manual",
        ),
        (
            pod("web", "b")
                .annotated(IPV4_POOLS_ANNOTATION, r#"["payments"]"#)
                .asking("10.244.8.5"),
            "AddressNotAllowed",
            "namespaceSelector",
        ),
        (
            pod("web", "c").asking("10.250.0.1"),
            "AddressOutsidePools",
            "no IP pool",
        ),
        (
            pod("web", "d").annotated(IP_ADDRS, "10.244.0.1"),
            "InvalidIpAddrs",
            "not a JSON list",
        ),
        (
            pod("web", "e").annotated(ipam::fixed::IP_ADDRS_NO_IPAM, r#"["10.244.0.1"]"#),
            "IpAddrsNoIpamNotSupported",
            "not supported",
        ),
    ];
    for (who, reason, detail) in cases {
        let (got, message) = who.assign(&mut p, &format!("u-{}", who.name)).unwrap_err();
        assert_eq!(got, reason, "{message}");
        assert!(
            message.contains(&format!("pod {}/{}", who.namespace, who.name))
                && message.contains(detail),
            "{message}"
        );
    }
    assert_eq!(p.allocator().usage("payments").unwrap().allocated, 0);
}

#[test]
fn an_address_someone_holds_or_that_is_reserved_is_refused() {
    let mut p = planner(&pools());
    let first = pod("web", "first").asking("10.244.0.20");
    assert_eq!(first.assign(&mut p, "u-1"), Ok(ip("10.244.0.20")));
    let (reason, message) = pod("web", "second")
        .asking("10.244.0.20")
        .assign(&mut p, "u-2")
        .unwrap_err();
    assert_eq!(reason, "AddressTaken");
    assert!(message.contains("web/first"), "{message}");
    p.allocator_mut()
        .set_reserved(vec!["10.244.0.32/28".parse().unwrap()]);
    let (reason, _) = pod("web", "third")
        .asking("10.244.0.40")
        .assign(&mut p, "u-3")
        .unwrap_err();
    assert_eq!(reason, "AddressReserved");
}

// ---- Reserved addresses. ----

#[test]
fn reserved_and_edge_addresses_are_never_allocated_and_counted() {
    let mut pools = pools();
    pools[0] = pools[0].clone().reserve_edges("Pool");
    let mut p = planner(&pools);
    p.allocator_mut().set_reserved(vec![
        "10.244.0.1/32".parse().unwrap(),
        "10.244.0.4/30".parse().unwrap(),
    ]);
    let mut got = Vec::new();
    for i in 0..10 {
        got.push(
            pod("web", &format!("p{i}"))
                .assign(&mut p, &format!("u{i}"))
                .unwrap(),
        );
    }
    let want: Vec<IpAddr> = ["2", "3", "8", "9", "10", "11", "12", "13", "14", "15"]
        .iter()
        .map(|o| ip(&format!("10.244.0.{o}")))
        .collect();
    assert_eq!(
        got, want,
        "the pool's first address .0 and the reserved .1, .4-.7 are skipped"
    );
    // The pool's last address is kept back too: .0 and .255, .1, and .4 to .7.
    assert!(p.allocator().is_reserved(ip("10.244.0.255")));
    assert_eq!(p.allocator().usage("general").unwrap().reserved, 7);
}

#[test]
fn block_edges_are_kept_back_in_every_block() {
    let mut pools = pools();
    pools[0] = PoolInput::new("general", "10.244.0.0/24")
        .block_size(30)
        .reserve_edges("Blocks")
        .created("2024-01-01T00:00:00Z");
    let mut p = planner(&pools);
    let got: Vec<IpAddr> = (0..4)
        .map(|i| {
            pod("web", &format!("p{i}"))
                .assign(&mut p, &format!("u{i}"))
                .unwrap()
        })
        .collect();
    // Each /30 gives only its two middle addresses.
    assert_eq!(
        got,
        ["10.244.0.1", "10.244.0.2", "10.244.0.5", "10.244.0.6"].map(ip)
    );
    assert_eq!(p.allocator().usage("general").unwrap().reserved, 128);
}

#[test]
fn turning_block_edges_off_gives_the_edge_addresses_of_full_blocks() {
    let mut pools = pools();
    let edges = |rule: Option<&str>| {
        let p = PoolInput::new("general", "10.244.0.0/30")
            .block_size(30)
            .created("2024-01-01T00:00:00Z");
        match rule {
            Some(r) => p.reserve_edges(r),
            None => p,
        }
    };
    pools[0] = edges(Some("Blocks"));
    let mut p = planner(&pools);
    for i in 0..2 {
        pod("web", &format!("p{i}"))
            .assign(&mut p, &format!("u{i}"))
            .unwrap();
    }
    // Only the block's edges are free, and they are kept back.
    assert!(pod("web", "p2").assign(&mut p, "u2").is_err());
    // The pool's range and block size stay; only the edge rule goes.
    pools[0] = edges(None);
    p.set_pools(&pools, Some(&pod_cidrs()));
    let got = pod("web", "p2").assign(&mut p, "u2").unwrap();
    assert!([ip("10.244.0.0"), ip("10.244.0.3")].contains(&got), "{got}");
}

// ---- Reuse cooldown. ----

#[test]
fn a_released_address_cools_down_and_the_cooldown_survives_a_restart() {
    let mut p = planner(&pools());
    p.allocator_mut().set_cooldown(300);
    p.allocator_mut().set_clock(1_000);
    let a = pod("web", "a").assign(&mut p, "u-a").unwrap();
    let b = pod("web", "b").assign(&mut p, "u-b").unwrap();
    p.release_pod("u-a", "a", None);
    p.release_pod("u-b", "b", None);
    // A restart: the blocks as written, read by a new planner.
    let records: Vec<_> = p.allocator().blocks().map(|b| b.to_record()).collect();
    let mut q = planner(&pools());
    q.allocator_mut().set_cooldown(300);
    q.allocator_mut().set_clock(1_100);
    for r in &records {
        q.allocator_mut()
            .insert_block(ipam::Block::from_record(r).unwrap())
            .unwrap();
    }
    for (i, planner) in [&mut p, &mut q].into_iter().enumerate() {
        planner.allocator_mut().set_clock(1_100);
        let c = pod("web", "c").assign(planner, &format!("u-c{i}")).unwrap();
        assert!(c != a && c != b, "{c} reused within the cooldown");
        assert_eq!(planner.allocator().cooling_until(a), Some(1_300));
    }
    // Asked for by name, a cooling address is given: the cooldown keeps it from others only.
    assert_eq!(
        pod("web", "named")
            .asking(&a.to_string())
            .assign(&mut q, "u-n"),
        Ok(a)
    );
    // Cooled off: back in use.
    q.allocator_mut().set_clock(1_301);
    assert_eq!(q.allocator().cooling_until(b), None);
}

#[test]
fn a_block_whose_free_addresses_all_cool_down_gets_its_room_back_when_they_cool_off() {
    let pools = [PoolInput::new("tiny", "10.244.0.0/30")
        .block_size(30)
        .created("2024-01-01T00:00:00Z")];
    let mut p = planner(&pools);
    p.allocator_mut().set_cooldown(60);
    p.allocator_mut().set_clock(10);
    for i in 0..4 {
        pod("web", &format!("p{i}"))
            .assign(&mut p, &format!("u{i}"))
            .unwrap();
    }
    p.release_pod("u0", "p0", None);
    let (reason, _) = pod("web", "late").assign(&mut p, "u-late").unwrap_err();
    assert_eq!(reason, "PoolsExhausted");
    p.allocator_mut().set_clock(70);
    assert_eq!(
        pod("web", "late").assign(&mut p, "u-late"),
        Ok(ip("10.244.0.0"))
    );
}

// ---- Sticky StatefulSet addresses. ----

fn sticky_pools() -> Vec<PoolInput> {
    vec![
        PoolInput::new("db", "10.244.0.0/24")
            .sticky()
            .created("2024-01-01T00:00:00Z"),
    ]
}

#[test]
fn a_statefulset_pod_gets_its_address_back_under_its_name_and_no_other_pod_does() {
    let mut p = planner(&sticky_pools());
    let db0 = pod("web", "db-0").of("sts-1");
    let db1 = pod("web", "db-1").of("sts-1");
    let a0 = db0.assign(&mut p, "u-0").unwrap();
    let a1 = db1.assign(&mut p, "u-1").unwrap();
    let (released, parked) = p.release_pod("u-0", "db-0", Some("sts-1"));
    assert_eq!((released.len(), parked.len()), (0, 1));
    // Neither another pod, nor another StatefulSet's pod of the same name, takes it.
    let other = pod("web", "web-0").assign(&mut p, "u-w").unwrap();
    assert_ne!(other, a0);
    let impostor = pod("web", "db-0")
        .of("sts-2")
        .assign(&mut p, "u-x")
        .unwrap();
    assert_ne!(impostor, a0);
    p.release_pod("u-x", "db-0", Some("sts-2"));
    // The successor, on another node, gets it back.
    let again = pod("web", "db-0").of("sts-1").on("n7");
    assert_eq!(again.assign(&mut p, "u-0b"), Ok(a0));
    assert_ne!(a0, a1);
    // A pool without stickyStatefulSets releases.
    let mut q = planner(&pools());
    let plain = pod("web", "db-0").of("sts-1");
    plain.assign(&mut q, "u-0").unwrap();
    let (released, parked) = q.release_pod("u-0", "db-0", Some("sts-1"));
    assert_eq!((released.len(), parked.len()), (1, 0));
}

#[test]
fn a_parked_address_is_due_when_the_statefulset_goes_or_shrinks() {
    let handle = parked_handle("sts-1", "db-2");
    let parked = Parked::parse(&handle).unwrap();
    let sts = |replicas| {
        Some(StatefulSetNow {
            uid: "sts-1",
            replicas,
            start: 0,
        })
    };
    assert_eq!(parked.due(sts(3)), None);
    assert!(parked.due(sts(2)).is_some());
    assert!(parked.due(None).is_some());
}

// ---- Small pools. ----

#[test]
fn a_node_keeps_one_spare_block_per_pool_and_respects_its_block_limit() {
    let pools = [PoolInput::new("small", "10.244.0.0/26")
        .block_size(28)
        .created("2024-01-01T00:00:00Z")];
    let mut p = planner(&pools);
    // 40 pods on n1 take three /28 blocks, then go.
    for i in 0..40 {
        pod("web", &format!("p{i}"))
            .assign(&mut p, &format!("u{i}"))
            .unwrap();
    }
    for i in 0..40 {
        p.release_pod(&format!("u{i}"), &format!("p{i}"), None);
    }
    let spare = p.allocator().spare_blocks();
    assert_eq!(spare.len(), 2, "three empty blocks, one kept: {spare:?}");
    // With a limit of one block per node, n2 borrows from n1's blocks rather than claiming.
    let mut q = planner(&pools);
    q.allocator_mut().set_max_blocks_per_node(1);
    for i in 0..16 {
        pod("web", &format!("a{i}"))
            .assign(&mut q, &format!("a{i}"))
            .unwrap();
    }
    let borrowed = pod("web", "b").on("n2").assign(&mut q, "b");
    assert!(borrowed.is_ok(), "{borrowed:?}");
    assert_eq!(q.allocator().node_blocks("n2").len(), 1);
    let third = pod("web", "c").on("n2");
    for i in 0..15 {
        pod("web", &format!("c{i}"))
            .on("n2")
            .assign(&mut q, &format!("c{i}"))
            .unwrap();
    }
    let (reason, message) = third.assign(&mut q, "c-last").unwrap_err();
    assert_eq!(reason, "PoolsExhausted");
    assert!(message.contains("max-blocks-per-node"), "{message}");
}

// ---- Properties. ----

#[derive(Debug, Clone)]
enum Op {
    /// A plain pod, by index.
    Plain(u8),
    /// A StatefulSet pod: set index and ordinal.
    Member(u8, u8),
    /// A pod asking for the address at this offset of the general pool.
    Asking(u8, u8),
    /// Deletes the pod created by the op at this index, if it still lives.
    Delete(u8),
    /// Reserves a /30 at this offset.
    Reserve(u8),
    /// Advances the clock by this many seconds.
    Tick(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<u8>().prop_map(Op::Plain),
        (0u8..2, 0u8..3).prop_map(|(s, o)| Op::Member(s, o)),
        (any::<u8>(), 0u8..64).prop_map(|(i, a)| Op::Asking(i, a)),
        any::<u8>().prop_map(Op::Delete),
        (0u8..8).prop_map(Op::Reserve),
        (0u8..120).prop_map(Op::Tick),
    ]
}

/// A live pod: its fixture, UID and address.
struct Live {
    pod: Pod,
    uid: String,
    address: IpAddr,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn kept_back_addresses_are_never_handed_out_and_sticky_ones_only_to_their_pod(
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let pools = vec![
            PoolInput::new("general", "10.244.0.0/26").block_size(28).reserve_edges("Blocks")
                .created("2024-01-01T00:00:00Z"),
            PoolInput::new("db", "10.244.1.0/26").block_size(28).sticky()
                .created("2024-01-01T00:00:00Z"),
        ];
        let mut p = planner(&pools);
        let cooldown = 60;
        p.allocator_mut().set_cooldown(cooldown);
        let mut now = 1_000u64;
        p.allocator_mut().set_clock(now);
        let mut live: Vec<Option<Live>> = Vec::new();
        let mut released_at: HashMap<IpAddr, u64> = HashMap::new();
        // StatefulSet member (set, ordinal) -> the address it last had.
        let mut sticky: HashMap<(u8, u8), IpAddr> = HashMap::new();
        let mut reserved: Vec<IpNet> = Vec::new();
        let mut uid = 0u32;
        for op in ops {
            uid += 1;
            let (who, asked) = match op {
                Op::Plain(i) => (
                    pod("web", &format!("plain-{i}-{uid}"))
                        .annotated(IPV4_POOLS_ANNOTATION, r#"["general"]"#),
                    None,
                ),
                Op::Member(s, o) => {
                    let name = format!("db{s}-{o}");
                    if live.iter().flatten().any(|l| l.pod.name == name) {
                        continue;
                    }
                    let mut m = pod("web", &name).of(&format!("sts-{s}"));
                    m.annotations.insert(IPV4_POOLS_ANNOTATION.into(), r#"["db"]"#.into());
                    (m, None)
                }
                Op::Asking(i, a) => {
                    let address: IpAddr = ip(&format!("10.244.0.{a}"));
                    (pod("web", &format!("ask-{i}-{uid}")).asking(&address.to_string()), Some(address))
                }
                Op::Delete(i) => {
                    let n = live.len();
                    if n == 0 { continue; }
                    let Some(gone) = live[usize::from(i) % n].take() else { continue };
                    let (released, parked) = p.release_pod(&gone.uid, &gone.pod.name, gone.pod.statefulset.as_deref());
                    for r in released {
                        released_at.insert(r.address, now);
                    }
                    prop_assert!(parked.iter().all(|pl| pl.address == gone.address));
                    continue;
                }
                Op::Reserve(o) => {
                    let net: IpNet = format!("10.244.0.{}/30", o * 4).parse().unwrap();
                    reserved.push(net);
                    p.allocator_mut().set_reserved(reserved.clone());
                    continue;
                }
                Op::Tick(s) => {
                    now += u64::from(s);
                    p.allocator_mut().set_clock(now);
                    continue;
                }
            };
            let id = format!("uid-{uid}");
            let Ok(address) = who.assign(&mut p, &id) else { continue };
            // Never an address another live pod holds.
            prop_assert!(live.iter().flatten().all(|l| l.address != address), "{address} twice");
            if let Some(asked) = asked {
                // What was asked for, or nothing: never another address, never a trusted pool.
                prop_assert_eq!(address, asked);
                prop_assert!(!reserved.iter().any(|r| r.contains(&address)), "{address} reserved");
            } else if who.statefulset.is_none() {
                prop_assert!(!p.allocator().is_reserved(address), "{address} reserved");
                if let Some(at) = released_at.get(&address) {
                    prop_assert!(at + cooldown <= now, "{address} reused {}s after its release", now - at);
                }
            }
            if let Some(sts) = &who.statefulset {
                let key = (sts.as_bytes()[4] - b'0', who.name.as_bytes()[who.name.len() - 1] - b'0');
                if let Some(before) = sticky.get(&key) {
                    prop_assert_eq!(*before, address, "{} did not get its address back", who.name);
                }
                sticky.insert(key, address);
            } else {
                prop_assert!(!sticky.values().any(|a| *a == address), "{address} is parked for another pod");
            }
            live.push(Some(Live { pod: who, uid: id, address }));
        }
    }
}
