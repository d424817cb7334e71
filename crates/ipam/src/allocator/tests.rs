#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::pool::PoolInput;

fn pool(name: &str, cidr: &str, block_size: i64) -> Pool {
    Pool::parse(&PoolInput::new(name, cidr).block_size(block_size)).unwrap()
}

/// An allocator with the given pools, all allocatable.
fn allocator(pools: &[Pool]) -> Allocator {
    let mut a = Allocator::new();
    for p in pools {
        a.set_pool(p.clone(), true);
    }
    a
}

struct Req {
    handle: String,
    node: String,
    family: Family,
    pools: Vec<String>,
}

fn req(handle: &str, node: &str, pools: &[&str]) -> Req {
    Req {
        handle: handle.to_owned(),
        node: node.to_owned(),
        family: Family::V4,
        pools: pools.iter().map(|p| (*p).to_owned()).collect(),
    }
}

impl Req {
    fn v6(mut self) -> Self {
        self.family = Family::V6;
        self
    }

    fn run(&self, a: &mut Allocator) -> Result<Assigned, AllocError> {
        a.allocate(&Request {
            handle: &self.handle,
            namespace: "ns",
            pod: &self.handle,
            node: &self.node,
            family: self.family,
            pools: &self.pools,
        })
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[test]
fn a_node_fills_its_own_block_first() {
    let mut a = allocator(&[pool("p", "10.0.0.0/24", 28)]);
    let first = req("a", "n1", &["p"]).run(&mut a).unwrap();
    assert_eq!(first.address, ip("10.0.0.0"));
    assert_eq!(first.block, net("10.0.0.0/28"));
    assert!(first.created_block && first.new);
    assert_eq!(a.pool_name(first.pool), "p");
    assert_eq!(a.pool_ref("p"), Some(first.pool));
    let second = req("b", "n1", &["p"]).run(&mut a).unwrap();
    assert_eq!(second.address, ip("10.0.0.1"));
    assert!(!second.created_block);
    let other = req("c", "n2", &["p"]).run(&mut a).unwrap();
    assert_eq!(other.block, net("10.0.0.16/28"));
    assert!(other.created_block);
    assert_eq!(a.node_blocks("n1"), vec![net("10.0.0.0/28")]);
    assert_eq!(
        a.block(&net("10.0.0.16/28")).unwrap().affinity(),
        Some("n2")
    );
}

#[test]
fn allocation_is_idempotent_per_handle_and_family() {
    let mut a = allocator(&[pool("p", "10.0.0.0/24", 28), pool("p6", "fd00::/120", 124)]);
    let first = req("a", "n1", &["p"]).run(&mut a).unwrap();
    let again = req("a", "n2", &["p"]).run(&mut a).unwrap();
    assert_eq!(again.address, first.address);
    assert!(!again.new && !again.created_block);
    assert_eq!(again.sequence, first.sequence);
    let v6 = req("a", "n1", &["p6"]).v6().run(&mut a).unwrap();
    assert_eq!(v6.address, ip("fd00::"));
    assert!(v6.new);
    assert_eq!(a.holdings("a").len(), 2);
    assert_eq!(a.find("a", Family::V6).unwrap().address, v6.address);
}

#[test]
fn a_full_node_claims_a_new_block_then_borrows() {
    // Two blocks of four addresses.
    let mut a = allocator(&[pool("p", "10.0.0.0/29", 30)]);
    for i in 0..4 {
        req(&format!("a{i}"), "n1", &["p"]).run(&mut a).unwrap();
    }
    let fifth = req("a4", "n1", &["p"]).run(&mut a).unwrap();
    assert_eq!(fifth.block, net("10.0.0.4/30"));
    assert!(fifth.created_block);
    assert_eq!(a.node_blocks("n1").len(), 2);
    // n2 has no block and none is left to claim: it borrows one of n1's free slots.
    let borrowed = req("b", "n2", &["p"]).run(&mut a).unwrap();
    assert_eq!(borrowed.block, net("10.0.0.4/30"));
    assert!(!borrowed.created_block);
    assert!(a.node_blocks("n2").is_empty());
}

#[test]
fn strict_affinity_never_borrows() {
    let mut a = allocator(&[pool("p", "10.0.0.0/29", 30)]);
    a.set_strict_affinity(true);
    req("a", "n1", &["p"]).run(&mut a).unwrap();
    req("b", "n2", &["p"]).run(&mut a).unwrap();
    let err = req("c", "n3", &["p"]).run(&mut a).unwrap_err();
    assert_eq!(err.reason(), "PoolsExhausted");
    let msg = err.to_string();
    assert!(msg.contains("pod ns/c") && msg.contains("node n3"), "{msg}");
    assert!(
        msg.contains("pool p") && msg.contains("strict affinity"),
        "{msg}"
    );
    a.set_strict_affinity(false);
    assert!(req("c", "n3", &["p"]).run(&mut a).is_ok());
}

#[test]
fn exhaustion_falls_through_to_the_next_pool_and_names_all_pools() {
    let mut a = allocator(&[
        pool("small", "10.0.0.0/30", 30),
        pool("big", "10.1.0.0/24", 26),
    ]);
    for i in 0..4 {
        let got = req(&format!("s{i}"), "n1", &["small", "big"])
            .run(&mut a)
            .unwrap();
        assert_eq!(a.pool_name(got.pool), "small");
    }
    let spill = req("s4", "n1", &["small", "big"]).run(&mut a).unwrap();
    assert_eq!(a.pool_name(spill.pool), "big");
    let err = req("x", "n1", &["small"]).run(&mut a).unwrap_err();
    match err {
        AllocError::Exhausted { pools, .. } => assert_eq!(pools, vec!["small".to_owned()]),
        other => panic!("{other}"),
    }
}

#[test]
fn candidate_pools_are_checked_before_allocating() {
    let mut a = allocator(&[pool("p", "10.0.0.0/24", 26), pool("v6", "fd00::/64", 122)]);
    a.set_pool(pool("off", "10.2.0.0/24", 26), false);
    let cases = [
        (
            req("h", "n1", &["p", "nope"]),
            "UnknownPool",
            "pool nope does not exist",
        ),
        (req("h", "n1", &["v6"]), "WrongFamily", "IPv6 pool"),
        (req("h", "n1", &["off"]), "PoolNotAllocatable", "pool off"),
        (req("h", "n1", &[]), "NoPool", "no IPv4 pool"),
        (req("", "n1", &["p"]), "InvalidRequest", "handle"),
        (req("h", "", &["p"]), "InvalidRequest", "node"),
    ];
    for (r, reason, words) in cases {
        let err = r.run(&mut a).unwrap_err();
        assert_eq!(err.reason(), reason, "{err}");
        assert!(err.to_string().contains(words), "{err}");
    }
    assert_eq!(
        a.block_count(),
        0,
        "no block may be claimed by a refused request"
    );
}

#[test]
fn release_checks_handle_and_sequence() {
    let mut a = allocator(&[pool("p", "10.0.0.0/24", 26)]);
    let got = req("a", "n1", &["p"]).run(&mut a).unwrap();
    let wrong = a.release(got.address, "b", got.sequence).unwrap_err();
    assert_eq!(wrong.reason(), "HandleMismatch");
    let stale = a.release(got.address, "a", got.sequence + 100).unwrap_err();
    assert_eq!(stale.reason(), "SequenceMismatch");
    assert_eq!(
        a.release(ip("10.9.9.9"), "a", 1).unwrap_err().reason(),
        "NoBlock"
    );
    let r = a.release(got.address, "a", got.sequence).unwrap();
    assert_eq!(r.address, got.address);
    assert_eq!(r.allocation.handle(), "a");
    assert!(a.find("a", Family::V4).is_none());
    assert_eq!(
        a.release(got.address, "a", got.sequence)
            .unwrap_err()
            .reason(),
        "NotAllocated"
    );
}

#[test]
fn release_handle_frees_everything_and_is_idempotent() {
    let mut a = allocator(&[pool("p", "10.0.0.0/24", 26), pool("p6", "fd00::/64", 122)]);
    req("a", "n1", &["p"]).run(&mut a).unwrap();
    req("a", "n1", &["p6"]).v6().run(&mut a).unwrap();
    assert_eq!(a.release_handle("a").len(), 2);
    assert!(a.release_handle("a").is_empty());
    assert_eq!(a.usage("p").unwrap().allocated, 0);
}

#[test]
fn a_freed_address_is_not_reused_at_once() {
    let mut a = allocator(&[pool("p", "10.0.0.0/24", 26)]);
    let first = req("a", "n1", &["p"]).run(&mut a).unwrap();
    a.release_handle("a");
    let next = req("b", "n1", &["p"]).run(&mut a).unwrap();
    assert_ne!(next.address, first.address);
}

#[test]
fn usage_counts_capacity_and_allocations() {
    let mut a = allocator(&[pool("p", "10.0.0.0/24", 26)]);
    for i in 0..70 {
        req(&format!("h{i}"), "n1", &["p"]).run(&mut a).unwrap();
    }
    let u = a.usage("p").unwrap();
    assert_eq!(
        (u.capacity, u.allocated, u.blocks, u.free()),
        (256, 70, 2, 186)
    );
    assert!(a.usage("nope").is_none());
}

#[test]
fn dirty_blocks_are_reported_once_with_create_winning() {
    let mut a = allocator(&[pool("p", "10.0.0.0/24", 26)]);
    let x = req("a", "n1", &["p"]).run(&mut a).unwrap();
    req("b", "n1", &["p"]).run(&mut a).unwrap();
    assert_eq!(
        a.take_dirty(),
        vec![DirtyBlock {
            cidr: x.block,
            change: Change::Create
        }]
    );
    assert!(a.take_dirty().is_empty());
    a.release_handle("a");
    req("c", "n1", &["p"]).run(&mut a).unwrap();
    assert_eq!(
        a.take_dirty(),
        vec![DirtyBlock {
            cidr: x.block,
            change: Change::Update
        }]
    );
}

#[test]
fn dirty_blocks_left_by_take_dirty_if_stay_for_the_next_call() {
    let mut a = allocator(&[pool("p", "10.0.0.0/24", 26)]);
    let x = req("a", "n1", &["p"]).run(&mut a).unwrap();
    let y = req("b", "n2", &["p"]).run(&mut a).unwrap();
    a.take_dirty();
    a.release_handle("a");
    a.release_handle("b");
    let taken = a.take_dirty_if(|d| d.cidr == y.block);
    assert_eq!(
        taken.iter().map(|d| d.cidr).collect::<Vec<_>>(),
        vec![y.block]
    );
    // Changed again while left: still reported once.
    req("c", "n1", &["p"]).run(&mut a).unwrap();
    assert_eq!(
        a.take_dirty(),
        vec![DirtyBlock {
            cidr: x.block,
            change: Change::Update
        }]
    );
}

#[test]
fn blocks_from_the_api_are_indexed() {
    let mut a = allocator(&[pool("p", "10.0.0.0/24", 26)]);
    let mut b = Block::new(net("10.0.0.64/26"), "p", Some("n1")).unwrap();
    b.allocate("old", "ns", "old").unwrap();
    a.insert_block(b).unwrap();
    assert_eq!(a.find("old", Family::V4).unwrap().address, ip("10.0.0.64"));
    // n1 uses its existing block; n2 claims the first free index, skipping nothing.
    assert_eq!(
        req("x", "n1", &["p"]).run(&mut a).unwrap().block,
        net("10.0.0.64/26")
    );
    assert_eq!(
        req("y", "n2", &["p"]).run(&mut a).unwrap().block,
        net("10.0.0.0/26")
    );
    assert_eq!(
        req("z", "n3", &["p"]).run(&mut a).unwrap().block,
        net("10.0.0.128/26")
    );
    assert_eq!(a.usage("p").unwrap().allocated, 4);
}

#[test]
fn replacing_a_block_reindexes_its_handles() {
    let mut a = allocator(&[pool("p", "10.0.0.0/24", 26)]);
    let got = req("a", "n1", &["p"]).run(&mut a).unwrap();
    a.take_dirty();
    // The API's copy no longer has "a" but has "b".
    let mut fresh = Block::new(got.block, "p", Some("n1")).unwrap();
    fresh.allocate("b", "ns", "b").unwrap();
    a.insert_block(fresh).unwrap();
    assert!(a.find("a", Family::V4).is_none());
    assert!(a.find("b", Family::V4).is_some());
    assert_eq!(a.usage("p").unwrap().allocated, 1);
    assert!(
        a.take_dirty().is_empty(),
        "a block read from the API is clean"
    );
}

#[test]
fn overlapping_blocks_are_refused() {
    let mut a = allocator(&[pool("p", "10.0.0.0/24", 26)]);
    a.insert_block(Block::new(net("10.0.0.0/26"), "p", None).unwrap())
        .unwrap();
    let err = a
        .insert_block(Block::new(net("10.0.0.0/24"), "q", None).unwrap())
        .unwrap_err();
    assert_eq!(err.reason(), "BlockOverlap");
    assert!(err.to_string().contains("10.0.0.0/26"), "{err}");
}

#[test]
fn a_block_that_does_not_fit_its_pool_is_kept_but_not_used() {
    let mut a = allocator(&[pool("p", "10.0.0.0/24", 26)]);
    // A /28 written by someone else inside the first /26.
    let mut odd = Block::new(net("10.0.0.16/28"), "p", Some("n1")).unwrap();
    odd.allocate("x", "ns", "x").unwrap();
    a.insert_block(odd).unwrap();
    let got = req("a", "n1", &["p"]).run(&mut a).unwrap();
    assert_eq!(
        got.block,
        net("10.0.0.64/26"),
        "the /26 holding the /28 is skipped"
    );
    assert_eq!(a.usage("p").unwrap().allocated, 2);
    assert!(a.release_handle("x").len() == 1);
    assert_eq!(a.returnable_blocks(), vec![net("10.0.0.16/28")]);
    a.remove_block(&net("10.0.0.16/28")).unwrap();
    assert_eq!(
        req("b", "n2", &["p"]).run(&mut a).unwrap().block,
        net("10.0.0.0/26")
    );
}

#[test]
fn removed_blocks_are_claimed_again() {
    let mut a = allocator(&[pool("p", "10.0.0.0/24", 26)]);
    let x = req("a", "n1", &["p"]).run(&mut a).unwrap();
    req("b", "n2", &["p"]).run(&mut a).unwrap();
    a.release_handle("a");
    a.remove_block(&x.block).unwrap();
    assert_eq!(req("c", "n3", &["p"]).run(&mut a).unwrap().block, x.block);
}

#[test]
fn deleted_nodes_lose_affinity_and_empty_blocks_become_returnable() {
    let mut a = allocator(&[pool("p", "10.0.0.0/24", 26)]);
    let kept = req("a", "gone", &["p"]).run(&mut a).unwrap();
    for i in 0..64 {
        req(&format!("f{i}"), "gone", &["p"]).run(&mut a).unwrap();
    }
    a.release_handle("f63");
    let second = a.find("f63", Family::V4);
    assert!(second.is_none());
    a.take_dirty();
    let changed = a.release_affinity("gone");
    assert_eq!(changed, vec![net("10.0.0.0/26"), net("10.0.0.64/26")]);
    assert!(a.node_blocks("gone").is_empty());
    assert_eq!(a.take_dirty().len(), 2);
    assert_eq!(a.block(&kept.block).unwrap().affinity(), None);
    assert_eq!(a.returnable_blocks(), vec![net("10.0.0.64/26")]);
    assert_eq!(a.empty_blocks(), vec![net("10.0.0.64/26")]);
    // The unaffine block with room is still lent out without strict affinity.
    let lent = req("n", "other", &["p"]).run(&mut a).unwrap();
    assert!(
        lent.created_block,
        "a new block is claimed before borrowing"
    );
}

#[test]
fn a_pool_changing_shape_reindexes_its_blocks() {
    let mut a = allocator(&[pool("p", "10.0.0.0/24", 26)]);
    req("a", "n1", &["p"]).run(&mut a).unwrap();
    a.set_pool(pool("p", "10.0.0.0/24", 28), true);
    // The /26 no longer fits: n1 gets a new /28 outside it.
    let got = req("b", "n1", &["p"]).run(&mut a).unwrap();
    assert_eq!(got.block, net("10.0.0.64/28"));
    a.remove_pool("p");
    assert_eq!(
        req("c", "n1", &["p"]).run(&mut a).unwrap_err().reason(),
        "UnknownPool"
    );
    assert!(
        a.find("a", Family::V4).is_some(),
        "blocks outlive their pool"
    );
}

#[test]
fn the_allocator_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync + 'static>(_: &T) -> bool {
        true
    }
    let a = allocator(&[pool("p", "10.0.0.0/24", 26)]);
    assert!(
        shareable(&a),
        "the controller keeps it behind a lock across tasks"
    );
}

#[test]
fn an_address_a_live_pod_uses_goes_to_no_other_pod() {
    let mut a = allocator(&[pool("p", "10.0.0.0/24", 30)]);
    // A pod runs with 10.0.0.0 and 10.0.0.2, recorded nowhere (installed before us).
    a.set_in_use("old", &[ip("10.0.0.0"), ip("10.0.0.2")]);
    let got: Vec<IpAddr> = (0..4)
        .map(|i| {
            req(&format!("u{i}"), "n1", &["p"])
                .run(&mut a)
                .unwrap()
                .address
        })
        .collect();
    assert!(!got.contains(&ip("10.0.0.0")) && !got.contains(&ip("10.0.0.2")));
    assert_eq!(a.in_use_count(), 2);
    // Once the pod is gone, its addresses are free again.
    a.set_in_use("old", &[]);
    assert_eq!(a.in_use_count(), 0);
    assert_eq!(
        req("u9", "n1", &["p"]).run(&mut a).unwrap().address,
        ip("10.0.0.0")
    );
}

#[test]
fn a_pod_is_recorded_with_the_address_it_uses_and_no_one_else_is() {
    let mut a = allocator(&[pool("p", "10.0.0.0/24", 28)]);
    let request = |handle: &'static str| Request {
        handle,
        namespace: "ns",
        pod: handle,
        node: "n1",
        family: Family::V4,
        pools: &[],
    };
    // No block covers it yet: one is created for the pod's node.
    let got = a
        .adopt(&request("old"), "p", ip("10.0.0.37"), None)
        .unwrap();
    assert_eq!((got.block, got.created_block), (net("10.0.0.32/28"), true));
    assert_eq!(
        a.block(&net("10.0.0.32/28")).unwrap().affinity(),
        Some("n1")
    );
    // Asking again is the same address; another pod cannot have it.
    assert_eq!(
        a.adopt(&request("old"), "p", ip("10.0.0.37"), None)
            .unwrap()
            .address,
        ip("10.0.0.37")
    );
    let taken = a
        .adopt(&request("new"), "p", ip("10.0.0.37"), None)
        .unwrap_err();
    assert_eq!(taken.reason(), "AddressTaken");
    assert!(taken.to_string().contains("ns/old holds it"), "{taken}");
    // An address outside the pool is refused.
    let outside = a
        .adopt(&request("new"), "p", ip("10.9.0.1"), None)
        .unwrap_err();
    assert_eq!(outside.reason(), "AddressOutsidePools");
    // Ordinary allocation skips it.
    for i in 0..15 {
        let next = req(&format!("u{i}"), "n1", &["p"]).run(&mut a).unwrap();
        assert_ne!(next.address, ip("10.0.0.37"));
    }
}

#[test]
fn a_quarantined_block_keeps_its_range_and_gives_nothing_new() {
    let mut a = allocator(&[pool("p", "10.0.0.0/30", 31)]);
    let first = req("u1", "n1", &["p"]).run(&mut a).unwrap();
    a.take_dirty();
    assert!(a.set_quarantine(&first.block, Some("lost")));
    assert_eq!(a.take_dirty().len(), 1, "the quarantine is written");
    // The quarantined block's free slot is not used and its range is not claimed again: the
    // pod gets the pool's other block.
    let second = req("u2", "n1", &["p"]).run(&mut a).unwrap();
    assert_ne!(second.block, first.block);
    let third = req("u3", "n1", &["p"]).run(&mut a).unwrap();
    assert_eq!(third.block, second.block);
    assert_eq!(
        req("u4", "n1", &["p"]).run(&mut a).unwrap_err().reason(),
        "PoolsExhausted"
    );
    // It still releases, and is never returned to the pool while quarantined.
    a.release_handle("u1");
    assert!(!a.returnable_blocks().contains(&first.block));
    a.set_quarantine(&first.block, None);
    assert_eq!(
        req("u4", "n1", &["p"]).run(&mut a).unwrap().block,
        first.block
    );
}

#[test]
fn a_block_deleted_behind_its_back_is_created_again_quarantined() {
    let mut a = allocator(&[pool("p", "10.0.0.0/24", 28)]);
    let got = req("u1", "n1", &["p"]).run(&mut a).unwrap();
    a.take_dirty();
    a.recreate(&got.block, "deleted by hand");
    let dirty = a.take_dirty();
    assert_eq!(dirty.len(), 1);
    assert_eq!(dirty[0].change, Change::Create);
    let block = a.block(&got.block).unwrap();
    assert_eq!(block.quarantine(), Some("deleted by hand"));
    assert_eq!(block.get(got.ordinal).unwrap().handle(), "u1");
}
