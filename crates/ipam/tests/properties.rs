//! Property tests of the allocation core, through the public API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;
use proptest::prelude::*;

use ipam::allocator::{Allocator, Request};
use ipam::block::{AllocationRecord, Block, BlockRecord};
use ipam::choice::{IPV4_POOLS_ANNOTATION, PodFixture, PoolCatalog};
use ipam::cidr::{self, Family};
use ipam::pool::{Pool, PoolInput};
use ipam::selector::Selector;
use ipam::validate::validate_pools;

// ---------------------------------------------------------------------------------------------
// Allocator: random allocate / release sequences.

/// Small pools so that blocks fill, new blocks are claimed, slots are borrowed and pools run out.
fn pools() -> Vec<Pool> {
    [
        PoolInput::new("a", "10.0.0.0/28").block_size(30),
        PoolInput::new("b", "10.0.1.0/29").block_size(30),
        PoolInput::new("c6", "fd00::/124").block_size(126),
    ]
    .iter()
    .map(|i| Pool::parse(i).unwrap())
    .collect()
}

#[derive(Debug, Clone)]
enum Op {
    Allocate {
        handle: u8,
        node: u8,
        v6: bool,
        pools: Vec<u8>,
    },
    ReleaseHandle(u8),
    /// Release the address a handle holds, naming the right or a stale sequence.
    ReleaseAddress {
        handle: u8,
        stale: bool,
    },
    /// A node goes away.
    DropNode(u8),
    /// A live pod is seen using these addresses (offsets into pool `a`), or none.
    InUse {
        handle: u8,
        offsets: Vec<u8>,
    },
    /// A pod is recorded with the address it is seen using (an offset into pool `a`).
    Adopt {
        handle: u8,
        node: u8,
        offset: u8,
    },
    /// The n-th block (by range) is quarantined, or its quarantine lifted.
    Quarantine {
        block: u8,
        on: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..24, 0u8..4, any::<bool>(), prop::collection::vec(0u8..2, 1..3)).prop_map(
            |(handle, node, v6, pools)| Op::Allocate { handle, node, v6, pools }
        ),
        2 => (0u8..24).prop_map(Op::ReleaseHandle),
        2 => (0u8..24, any::<bool>()).prop_map(|(handle, stale)| Op::ReleaseAddress { handle, stale }),
        1 => (0u8..4).prop_map(Op::DropNode),
        1 => (0u8..24, prop::collection::vec(0u8..16, 0..3))
            .prop_map(|(handle, offsets)| Op::InUse { handle, offsets }),
        1 => (0u8..24, 0u8..4, 0u8..16).prop_map(|(handle, node, offset)| Op::Adopt { handle, node, offset }),
        1 => (0u8..8, any::<bool>()).prop_map(|(block, on)| Op::Quarantine { block, on }),
    ]
}

/// The address at `offset` in pool `a` (10.0.0.0/28).
fn in_a(offset: u8) -> IpAddr {
    IpAddr::from(std::net::Ipv4Addr::new(10, 0, 0, offset % 16))
}

/// Checks every invariant of the allocator against its own blocks.
fn check_invariants(a: &Allocator, pools: &[Pool]) -> Result<(), TestCaseError> {
    let mut holder: HashMap<IpAddr, String> = HashMap::new();
    let mut per_handle: HashMap<(String, Family), usize> = HashMap::new();
    for b in a.blocks() {
        let pool = pools.iter().find(|p| p.name() == b.pool()).unwrap();
        prop_assert!(
            cidr::contains(&pool.cidr(), &b.cidr()),
            "block {} outside pool",
            b.cidr()
        );
        for (ordinal, alloc) in b.allocations() {
            let address = b.address(ordinal).unwrap();
            prop_assert!(b.cidr().contains(&address));
            let before = holder.insert(address, alloc.handle().to_owned());
            prop_assert!(before.is_none(), "{address} held twice");
            *per_handle
                .entry((alloc.handle().to_owned(), b.family()))
                .or_default() += 1;
            prop_assert!(alloc.sequence() <= b.sequence());
        }
    }
    for ((handle, family), n) in &per_handle {
        prop_assert_eq!(*n, 1, "handle {} holds {} {} addresses", handle, n, family);
        let found = a.find(handle, *family).unwrap();
        prop_assert_eq!(holder.get(&found.address), Some(handle));
    }
    Ok(())
}

fn run_ops(ops: &[Op], strict: bool) -> Result<(), TestCaseError> {
    let pools = pools();
    let mut a = Allocator::new();
    a.set_strict_affinity(strict);
    for p in &pools {
        a.set_pool(p.clone(), true);
    }
    // What the test believes: address -> (handle, sequence).
    let mut model: HashMap<IpAddr, (String, u64)> = HashMap::new();
    // Addresses declared in use: address -> the live pod's handle.
    let mut in_use: HashMap<IpAddr, String> = HashMap::new();
    let mut claims: HashMap<String, Vec<IpAddr>> = HashMap::new();
    let mut quarantined: std::collections::HashSet<ipnet::IpNet> = Default::default();
    for op in ops {
        match op {
            Op::Allocate {
                handle,
                node,
                v6,
                pools: picks,
            } => {
                let handle = format!("uid-{handle}");
                let family = if *v6 { Family::V6 } else { Family::V4 };
                let names: Vec<String> = if *v6 {
                    vec!["c6".to_owned()]
                } else {
                    let mut names: Vec<String> = picks
                        .iter()
                        .map(|p| ["a", "b"][*p as usize].to_owned())
                        .collect();
                    names.dedup();
                    names
                };
                let before = a.find(&handle, family);
                let node = format!("node-{node}");
                let req = Request {
                    handle: &handle,
                    namespace: "ns",
                    pod: "pod",
                    node: &node,
                    family,
                    pools: &names,
                };
                match a.allocate(&req) {
                    Ok(got) => {
                        let got_pool = a.pool_name(got.pool).to_owned();
                        let pool = pools.iter().find(|p| p.name() == got_pool).unwrap();
                        prop_assert!(pool.cidr().contains(&got.address), "address left its pool");
                        prop_assert!(got.block.contains(&got.address), "address left its block");
                        prop_assert!(cidr::contains(&pool.cidr(), &got.block));
                        if got.new {
                            prop_assert!(before.is_none());
                            prop_assert!(names.contains(&got_pool), "pool not asked for");
                            let clash = model.insert(got.address, (handle.clone(), got.sequence));
                            prop_assert!(clash.is_none(), "{} handed out while held", got.address);
                            prop_assert!(
                                !in_use.contains_key(&got.address)
                                    || claims
                                        .get(&handle)
                                        .is_some_and(|l| l.contains(&got.address)),
                                "{} is in use by another pod",
                                got.address
                            );
                            prop_assert!(
                                !quarantined.contains(&got.block),
                                "{} came from a quarantined block",
                                got.address
                            );
                            if strict {
                                let owner = a.block(&got.block).unwrap().affinity();
                                prop_assert_eq!(
                                    owner,
                                    Some(node.as_str()),
                                    "strict affinity lent a slot"
                                );
                            }
                        } else {
                            prop_assert_eq!(Some(got.address), before.map(|b| b.address));
                            prop_assert_eq!(model.get(&got.address).map(|m| &m.0), Some(&handle));
                        }
                    }
                    Err(e) => {
                        prop_assert_eq!(e.reason(), "PoolsExhausted", "{}", e);
                        prop_assert!(before.is_none());
                        if !strict && in_use.is_empty() && quarantined.is_empty() {
                            // Without strict affinity only a truly full pool is exhausted.
                            for n in &names {
                                prop_assert_eq!(a.usage(n).unwrap().free(), 0, "{} not full", n);
                            }
                        }
                    }
                }
            }
            Op::ReleaseHandle(h) => {
                let handle = format!("uid-{h}");
                for r in a.release_handle(&handle) {
                    prop_assert_eq!(model.remove(&r.address).map(|m| m.0), Some(handle.clone()));
                }
                prop_assert!(a.holdings(&handle).is_empty());
            }
            Op::ReleaseAddress { handle, stale } => {
                let handle = format!("uid-{handle}");
                let Some(held) = a.find(&handle, Family::V4) else {
                    continue;
                };
                let sequence = if *stale {
                    held.sequence + 1
                } else {
                    held.sequence
                };
                let result = a.release(held.address, &handle, sequence);
                if *stale {
                    prop_assert_eq!(result.unwrap_err().reason(), "SequenceMismatch");
                    prop_assert!(a.find(&handle, Family::V4).is_some());
                } else {
                    prop_assert_eq!(result.unwrap().address, held.address);
                    model.remove(&held.address);
                }
            }
            Op::DropNode(n) => {
                let node = format!("node-{n}");
                a.release_affinity(&node);
                prop_assert!(a.node_blocks(&node).is_empty());
            }
            Op::InUse { handle, offsets } => {
                let handle = format!("uid-{handle}");
                let addresses: Vec<IpAddr> = offsets.iter().map(|o| in_a(*o)).collect();
                a.set_in_use(&handle, &addresses);
                let held = a.holdings(&handle);
                claims.insert(
                    handle.clone(),
                    addresses
                        .into_iter()
                        .filter(|x| !held.iter().any(|h| h.address == *x))
                        .collect(),
                );
                // Kept while any live pod claims it: for one of the claimants.
                in_use.clear();
                for (h, list) in &claims {
                    for address in list {
                        in_use.entry(*address).or_insert_with(|| h.clone());
                    }
                }
                prop_assert_eq!(a.in_use_count(), in_use.len());
                for address in in_use.keys() {
                    let claimants: Vec<&String> = claims
                        .iter()
                        .filter(|(_, l)| l.contains(address))
                        .map(|(h, _)| h)
                        .collect();
                    // Nobody but a claimant can be given it.
                    for h in 0..24u8 {
                        let other = format!("uid-{h}");
                        if !claimants.contains(&&other) {
                            prop_assert!(a.in_use_by_other(*address, &other));
                        }
                    }
                }
            }
            Op::Adopt {
                handle,
                node,
                offset,
            } => {
                let handle = format!("uid-{handle}");
                let node = format!("node-{node}");
                let address = in_a(*offset);
                let before = a.find(&handle, Family::V4);
                let req = Request {
                    handle: &handle,
                    namespace: "ns",
                    pod: "pod",
                    node: &node,
                    family: Family::V4,
                    pools: &[],
                };
                match a.adopt(&req, "a", address, None) {
                    Ok(got) => {
                        prop_assert_eq!(got.address, address);
                        if got.new {
                            prop_assert!(before.is_none());
                            let clash = model.insert(address, (handle.clone(), got.sequence));
                            prop_assert!(clash.is_none(), "{} adopted while held", address);
                        } else {
                            prop_assert_eq!(before.map(|b| b.address), Some(address));
                        }
                    }
                    Err(e) => match e.reason() {
                        "AddressTaken" => prop_assert!(
                            model.get(&address).is_some_and(|m| m.0 != handle),
                            "{}",
                            e
                        ),
                        // Held another address, or the range is another pool's block.
                        _ => prop_assert!(
                            before.is_some_and(|b| b.address != address)
                                || a.blocks()
                                    .any(|b| b.cidr().contains(&address) && b.pool() != "a"),
                            "{}",
                            e
                        ),
                    },
                }
            }
            Op::Quarantine { block, on } => {
                let mut ranges: Vec<ipnet::IpNet> = a.blocks().map(|b| b.cidr()).collect();
                ranges.sort();
                let Some(cidr) = ranges.get(*block as usize % ranges.len().max(1)).copied() else {
                    continue;
                };
                prop_assert!(a.set_quarantine(&cidr, on.then_some("test")));
                if *on {
                    quarantined.insert(cidr);
                } else {
                    quarantined.remove(&cidr);
                }
            }
        }
        check_invariants(&a, &pools)?;
        let held: usize = a.blocks().map(|b| b.allocated() as usize).sum();
        prop_assert_eq!(held, model.len());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// No address is ever held by two handles, a released address is never handed out while
    /// still held, and every allocation stays inside its pool and its block.
    #[test]
    fn allocation_sequences_keep_every_invariant(
        ops in prop::collection::vec(op(), 1..120),
        strict in any::<bool>(),
    ) {
        run_ops(&ops, strict)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Pool choice: the same facts in any order give the same answer.

const CIDRS: [&str; 6] = [
    "10.244.0.0/24",
    "10.244.1.0/24",
    "10.244.0.0/23",
    "10.245.0.0/24",
    "fd00::/120",
    "10.244.2.0/24",
];
const SELECTORS: [&str; 5] = [
    "",
    "zone == 'a'",
    "team in {'x', 'y'}",
    "!has(zone)",
    "zone = ",
];
const DATES: [&str; 3] = ["2024-01-01T00:00:00Z", "2024-06-01T00:00:00Z", ""];

fn pool_input() -> impl Strategy<Value = PoolInput> {
    (
        0usize..8,
        0usize..CIDRS.len(),
        0usize..SELECTORS.len(),
        0usize..SELECTORS.len(),
        any::<bool>(),
        any::<bool>(),
        0usize..DATES.len(),
    )
        .prop_map(|(name, cidr, node, ns, manual, disabled, date)| {
            let mut p = PoolInput::new(&format!("pool-{name}"), CIDRS[cidr])
                .node_selector(SELECTORS[node])
                .namespace_selector(SELECTORS[ns])
                .created(DATES[date]);
            if manual {
                p = p.manual();
            }
            if disabled {
                p = p.disabled();
            }
            p
        })
}

fn pod_facts() -> impl Strategy<Value = PodFixture> {
    (
        prop::option::of(prop::collection::vec(0usize..9, 0..3)),
        any::<bool>(),
        prop::option::of("[a-z]"),
        prop::option::of("[xyz]"),
    )
        .prop_map(|(annotation, on_namespace, zone, team)| {
            let mut p = PodFixture::new("web").in_ns("shop").on_node("n1");
            if let Some(list) = annotation {
                let names: Vec<String> = list
                    .iter()
                    .map(|i| {
                        if *i == 8 {
                            "10.244.0.0/24".to_owned()
                        } else {
                            format!("pool-{i}")
                        }
                    })
                    .collect();
                let json = serde_json::to_string(&names).unwrap();
                p = if on_namespace {
                    p.ns_annotated(IPV4_POOLS_ANNOTATION, &json)
                } else {
                    p.annotated(IPV4_POOLS_ANNOTATION, &json)
                };
            }
            if let Some(z) = zone {
                p = p.node_labelled("zone", &z);
            }
            if let Some(t) = team {
                p = p.ns_labelled("team", &t);
            }
            p
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Validation and pool choice depend only on the set of pools, not on their order.
    #[test]
    fn pool_choice_is_deterministic(
        inputs in prop::collection::vec(pool_input(), 0..7),
        pod in pod_facts(),
        shuffle in any::<prop::sample::Index>(),
        family_v6 in any::<bool>(),
    ) {
        let pod_cidrs: Vec<IpNet> = vec!["10.244.0.0/16".parse().unwrap(), "fd00::/64".parse().unwrap()];
        let family = if family_v6 { Family::V6 } else { Family::V4 };
        let mut shuffled = inputs.clone();
        // A rotation plus a reversal, driven by the random index.
        if !shuffled.is_empty() {
            let k = shuffle.index(shuffled.len());
            shuffled.rotate_left(k);
            shuffled.reverse();
        }
        let verdicts = validate_pools(&inputs, Some(&pod_cidrs));
        let again = validate_pools(&shuffled, Some(&pod_cidrs));
        let by_name = |v: &[ipam::validate::PoolVerdict]| {
            let mut m: Vec<(String, String, String)> = v
                .iter()
                .map(|v| (v.name.clone(), v.reason.as_str().to_owned(), v.message.clone()))
                .collect();
            m.sort();
            m
        };
        prop_assert_eq!(by_name(&verdicts), by_name(&again));
        let first = PoolCatalog::new(&verdicts).choose(&pod.facts(), family);
        let second = PoolCatalog::new(&again).choose(&pod.facts(), family);
        match (&first, &second) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
            _ => prop_assert!(false, "{:?} vs {:?}", first, second),
        }
        // Whatever was chosen is allocatable, of the family, and matches the pod.
        if let Ok(choice) = first {
            let catalog = PoolCatalog::new(&verdicts);
            for name in &choice.pools {
                let v = catalog.verdict(name).unwrap();
                prop_assert!(v.allocatable());
                let p = v.pool.as_ref().unwrap();
                prop_assert_eq!(p.family(), family);
                prop_assert!(p.selects(&pod.node_labels, &pod.namespace_labels));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Blocks: record round trip, and hostile records never panic.

#[derive(Debug, Clone)]
enum BlockOp {
    Allocate(u8),
    Release(u8),
}

fn block_op() -> impl Strategy<Value = BlockOp> {
    prop_oneof![
        (0u8..20).prop_map(BlockOp::Allocate),
        (0u8..20).prop_map(BlockOp::Release),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn block_records_round_trip(
        ops in prop::collection::vec(block_op(), 0..80),
        v6 in any::<bool>(),
        affinity in prop::option::of("[a-z]{1,8}"),
        containers in prop::collection::vec(prop::option::of("[a-z0-9]{1,12}"), 0..16),
    ) {
        let cidr: IpNet = if v6 { "fd00::10/124".parse().unwrap() } else { "10.0.0.16/28".parse().unwrap() };
        let mut b = Block::new(cidr, "pool", affinity.as_deref()).unwrap();
        for op in &ops {
            match op {
                BlockOp::Allocate(h) => {
                    let _ = b.allocate(&format!("h{h}"), "ns", &format!("pod-{h}"));
                }
                BlockOp::Release(h) => {
                    b.release_handle(&format!("h{h}"));
                }
            }
        }
        // Containers recorded by earlier versions of the CNI plugin are kept as read.
        let mut rec = b.to_record();
        for (a, container) in rec.allocations.iter_mut().zip(&containers) {
            a.container = container.clone();
        }
        let b = Block::from_record(&rec).unwrap();
        let rec = b.to_record();
        let back = Block::from_record(&rec).unwrap();
        prop_assert_eq!(back.to_record(), rec.clone());
        let json = serde_json::to_string(&rec).unwrap();
        let parsed: BlockRecord = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(parsed, rec);
        prop_assert_eq!(back.allocated(), b.allocated());
        prop_assert_eq!(back.sequence(), b.sequence());
    }

    #[test]
    fn hostile_block_records_never_panic(
        prefix in 0u8..=32,
        start in any::<u32>(),
        sequence in 0u64..10,
        allocations in prop::collection::vec(
            (0u32..80, "[a-c]{0,2}", 0u64..12, prop::option::of("[a-z]{0,3}")),
            0..20,
        ),
        pool in "[a-z]{0,3}",
    ) {
        let cidr = IpNet::new(IpAddr::from(std::net::Ipv4Addr::from(start)), prefix).unwrap();
        let rec = BlockRecord {
            cidr,
            pool,
            affinity: None,
            sequence,
            allocations: allocations
                .into_iter()
                .map(|(ordinal, handle, sequence, container)| AllocationRecord {
                    ordinal,
                    handle,
                    namespace: "ns".into(),
                    pod: "p".into(),
                    container,
                    sequence,
                })
                .collect(),
            quarantine: None,
            released: Vec::new(),
        };
        match Block::from_record(&rec) {
            Ok(b) => {
                prop_assert_eq!(b.allocated() as usize, rec.allocations.len());
                let mut sorted = rec.clone();
                sorted.allocations.sort_by_key(|a| a.ordinal);
                prop_assert_eq!(b.to_record(), sorted);
            }
            Err(e) => prop_assert!(!e.reason().is_empty() && e.to_string().contains(&rec.pool)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Selectors: never panic, and Display round-trips.

fn label() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9./_-]{0,6}"
}

fn value() -> impl Strategy<Value = String> {
    // Either quote may appear in a value, but not both.
    prop_oneof!["[a-z0-9 ]{0,5}", "[a-z']{0,4}", "[a-z\"]{0,4}"]
}

fn selector_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("all()".to_owned()),
        label().prop_map(|k| format!("has({k})")),
        (label(), value(), 0usize..5).prop_map(|(k, v, op)| {
            let q = if v.contains('\'') { '"' } else { '\'' };
            let op = ["==", "!=", "contains", "starts with", "ends with"][op];
            format!("{k} {op} {q}{v}{q}")
        }),
        (
            label(),
            prop::collection::vec("[a-z]{0,3}", 0..3),
            any::<bool>()
        )
            .prop_map(|(k, vs, not)| {
                let set: Vec<String> = vs.iter().map(|v| format!("'{v}'")).collect();
                format!(
                    "{k} {}in {{{}}}",
                    if not { "not " } else { "" },
                    set.join(", ")
                )
            }),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|s| format!("!({s})")),
            inner.clone().prop_map(|s| format!("!{s}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} && {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) || {b}")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("{a} || ({b})")),
        ]
    })
}

fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(label(), value(), 0..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn selector_parse_never_panics(input in any::<String>()) {
        if let Ok(s) = Selector::parse(&input) {
            let text = s.to_string();
            prop_assert_eq!(Selector::parse(&text).unwrap(), s);
        }
    }

    #[test]
    fn selector_parse_never_panics_on_selector_like_noise(
        input in "[a-z(){}!=&|,' \"]{0,40}",
    ) {
        let _ = Selector::parse(&input);
    }

    #[test]
    fn selector_display_round_trips(text in selector_text(), l in labels()) {
        let s = Selector::parse(&text).unwrap();
        let shown = s.to_string();
        let again = Selector::parse(&shown).unwrap();
        prop_assert_eq!(&again, &s);
        prop_assert_eq!(again.to_string(), shown);
        // Printing never changes what a selector matches.
        prop_assert_eq!(again.matches(&l), s.matches(&l));
    }
}

/// The same handle set never yields duplicate addresses across many nodes, in bulk.
#[test]
fn a_full_pool_has_every_address_exactly_once() {
    let pool = Pool::parse(&PoolInput::new("p", "10.9.0.0/22").block_size(26)).unwrap();
    let mut a = Allocator::new();
    a.set_pool(pool, true);
    let names = vec!["p".to_owned()];
    let mut seen = HashSet::new();
    for i in 0..1024 {
        let handle = format!("h{i}");
        let req = Request {
            handle: &handle,
            namespace: "ns",
            pod: &handle,
            node: &format!("n{}", i % 7),
            family: Family::V4,
            pools: &names,
        };
        assert!(seen.insert(a.allocate(&req).unwrap().address));
    }
    let req = Request {
        handle: "one-more",
        namespace: "ns",
        pod: "one-more",
        node: "n0",
        family: Family::V4,
        pools: &names,
    };
    assert_eq!(a.allocate(&req).unwrap_err().reason(), "PoolsExhausted");
    assert_eq!(a.usage("p").unwrap().free(), 0);
}

// ---------------------------------------------------------------------------------------------
// The planner: many pods, one call each, as the controller and `kubectl ipam plan` make it.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Every address goes to one pod, from a pool that admits the pod, and the same pools in
    /// another order give every pod the same address.
    #[test]
    fn planned_addresses_are_unique_admitted_and_independent_of_pool_order(
        inputs in prop::collection::vec(pool_input(), 1..6),
        pods in prop::collection::vec(pod_facts(), 1..40),
    ) {
        let pod_cidrs: Vec<IpNet> = vec!["10.244.0.0/16".parse().unwrap()];
        let mut reversed = inputs.clone();
        reversed.reverse();
        let plan = |inputs: &[PoolInput]| {
            let mut planner = ipam::Planner::new(false);
            planner.set_pools(inputs, Some(&pod_cidrs));
            let placed: Vec<Option<(IpAddr, String)>> = pods
                .iter()
                .enumerate()
                .map(|(i, pod)| {
                    let context = ipam::PodContext {
                        namespace: &pod.namespace,
                        name: &pod.name,
                        node: &pod.node,
                        annotations: &pod.annotations,
                        node_labels: Some(&pod.node_labels),
                        namespace_meta: Some((&pod.namespace_labels, &pod.namespace_annotations)),
                        confirmed: &[],
                        running: &[],
                        statefulset: None,
                    };
                    planner
                        .assign(&context, &format!("uid-{i}"), &[Family::V4])
                        .ok()
                        .map(|p| (p[0].address, p[0].pool.clone()))
                })
                .collect();
            (planner, placed)
        };
        let (planner, placed) = plan(&inputs);
        let mut seen = HashSet::new();
        for (pod, got) in pods.iter().zip(&placed) {
            let Some((address, pool)) = got else { continue };
            prop_assert!(seen.insert(*address), "{} given twice", address);
            let v = planner.verdict(pool).unwrap();
            prop_assert!(v.allocatable());
            let p = v.pool.as_ref().unwrap();
            prop_assert!(p.cidr().contains(address));
            prop_assert!(p.selects(&pod.node_labels, &pod.namespace_labels));
        }
        let (_, again) = plan(&reversed);
        prop_assert_eq!(placed, again);
    }

    /// The overlap sweep finds exactly the pairs a comparison of every pair finds.
    #[test]
    fn overlapping_pairs_agree_with_comparing_every_pair(
        nets in prop::collection::vec((0u32..64, 20u8..31), 0..24),
    ) {
        let nets: Vec<IpNet> = nets
            .into_iter()
            .map(|(i, len)| IpNet::new(IpAddr::from([10, 244, (i * 4) as u8, 0]), len).unwrap().trunc())
            .collect();
        let mut slow = Vec::new();
        for i in 0..nets.len() {
            for j in i + 1..nets.len() {
                if cidr::overlaps(&nets[i], &nets[j]) {
                    slow.push((i, j));
                }
            }
        }
        prop_assert_eq!(cidr::overlapping_pairs(&nets), slow);
    }
}
