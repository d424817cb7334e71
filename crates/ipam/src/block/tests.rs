#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn block(cidr: &str) -> Block {
    Block::new(cidr.parse().unwrap(), "pool-a", Some("n1")).unwrap()
}

fn alloc(b: &mut Block, handle: &str) -> Slot {
    b.allocate(handle, "ns", handle).unwrap()
}

fn record(cidr: &str, allocations: Vec<AllocationRecord>) -> BlockRecord {
    BlockRecord {
        cidr: cidr.parse().unwrap(),
        pool: "pool-a".into(),
        affinity: Some("n1".into()),
        sequence: 10,
        allocations,
        quarantine: None,
        released: Vec::new(),
    }
}

fn arec(ordinal: u32, handle: &str, sequence: u64) -> AllocationRecord {
    AllocationRecord {
        ordinal,
        handle: handle.into(),
        namespace: "ns".into(),
        pod: format!("pod-{handle}"),
        container: None,
        sequence,
    }
}

#[test]
fn allocates_in_order_and_counts() {
    let mut b = block("10.0.0.0/30");
    assert_eq!(b.capacity(), 4);
    assert!(b.is_empty());
    let s0 = alloc(&mut b, "a");
    let s1 = alloc(&mut b, "b");
    assert_eq!((s0.ordinal, s1.ordinal), (0, 1));
    assert_eq!((s0.sequence, s1.sequence), (1, 2));
    assert_eq!(b.sequence(), 2);
    assert_eq!(b.allocated(), 2);
    assert_eq!(b.free_count(), 2);
    assert_eq!(b.find_handle("b"), Some(1));
    assert_eq!(b.get(1).unwrap().pod(), "b");
    assert_eq!(b.get(1).unwrap().handle(), "b");
    assert_eq!(b.get(1).unwrap().namespace(), "ns");
    assert_eq!(b.address(1), Some("10.0.0.1".parse().unwrap()));
}

#[test]
fn a_released_address_goes_to_the_back_of_the_queue() {
    let mut b = block("10.0.0.0/30");
    let a = alloc(&mut b, "a");
    alloc(&mut b, "b");
    b.release(a.ordinal, "a", a.sequence).unwrap();
    // Ordinal 0 was just freed: 2 and 3 come first.
    assert_eq!(alloc(&mut b, "c").ordinal, 2);
    assert_eq!(alloc(&mut b, "d").ordinal, 3);
    assert_eq!(alloc(&mut b, "e").ordinal, 0);
    assert!(b.is_full());
    let err = b.allocate("f", "ns", "f").unwrap_err();
    assert_eq!(err.reason(), "BlockFull");
    assert!(
        err.to_string().contains("10.0.0.0/30 of pool pool-a"),
        "{err}"
    );
}

#[test]
fn a_handle_gets_one_address_per_block() {
    let mut b = block("10.0.0.0/30");
    alloc(&mut b, "a");
    let err = b.allocate("a", "ns", "a").unwrap_err();
    assert_eq!(err.reason(), "HandleExists");
    assert!(err.to_string().contains("10.0.0.0"), "{err}");
}

#[test]
fn release_refuses_a_reassigned_address() {
    let mut b = block("10.0.0.0/31");
    let first = alloc(&mut b, "a");
    b.release(first.ordinal, "a", first.sequence).unwrap();
    alloc(&mut b, "x"); // takes ordinal 1
    let again = alloc(&mut b, "a"); // ordinal 0 again, new sequence
    assert_eq!(again.ordinal, first.ordinal);
    let stale = b.release(first.ordinal, "a", first.sequence).unwrap_err();
    assert_eq!(stale.reason(), "SequenceMismatch");
    assert!(b.get(0).is_some(), "stale release must not free");

    let other = b.release(1, "a", again.sequence).unwrap_err();
    assert_eq!(other.reason(), "HandleMismatch");
    assert!(other.to_string().contains("re-assigned"), "{other}");

    b.release(again.ordinal, "a", again.sequence).unwrap();
    assert_eq!(
        b.release(0, "a", again.sequence).unwrap_err().reason(),
        "NotAllocated"
    );
    assert_eq!(
        b.release(9, "a", 1).unwrap_err().reason(),
        "OrdinalOutOfRange"
    );
}

#[test]
fn release_by_handle() {
    let mut b = block("10.0.0.0/30");
    alloc(&mut b, "a");
    let s = alloc(&mut b, "b");
    let (ordinal, gone) = b.release_handle("b").unwrap();
    assert_eq!(ordinal, s.ordinal);
    assert_eq!(gone.handle(), "b");
    assert!(b.release_handle("b").is_none());
    assert_eq!(b.allocated(), 1);
}

#[test]
fn a_recorded_container_is_kept_and_moves_nothing() {
    // Earlier versions of the CNI plugin recorded the sandbox; blocks read back keep it.
    let mut b = block("10.0.0.0/30");
    let s = alloc(&mut b, "a");
    let mut rec = b.to_record();
    rec.allocations[0].container = Some("sandbox-1".into());
    let mut back = Block::from_record(&rec).unwrap();
    assert_eq!(back.get(s.ordinal).unwrap().container(), Some("sandbox-1"));
    assert_eq!(back.sequence(), b.sequence());
    assert_eq!(back.to_record(), rec);
    // Releasing the address takes the container with it.
    let gone = back.release(s.ordinal, "a", s.sequence).unwrap();
    assert_eq!(gone.container(), Some("sandbox-1"));
    assert!(back.to_record().allocations.is_empty());
}

#[test]
fn affinity_changes_bump_the_sequence() {
    let mut b = block("10.0.0.0/30");
    assert!(!b.set_affinity(Some("n1")));
    assert_eq!(b.sequence(), 0);
    assert!(b.set_affinity(None));
    assert_eq!(b.affinity(), None);
    assert_eq!(b.sequence(), 1);
}

#[test]
fn record_round_trip_keeps_everything() {
    let mut b = block("fd00::40/122");
    let s = alloc(&mut b, "a");
    alloc(&mut b, "b");
    b.release_handle("b");
    alloc(&mut b, "c");
    let mut rec = b.to_record();
    let first = rec
        .allocations
        .iter_mut()
        .find(|a| a.ordinal == s.ordinal)
        .unwrap();
    first.container = Some("c1".into());
    let b = Block::from_record(&rec).unwrap();
    let rec = b.to_record();
    assert!(
        rec.allocations
            .windows(2)
            .all(|w| w[0].ordinal < w[1].ordinal)
    );
    let back = Block::from_record(&rec).unwrap();
    assert_eq!(back.to_record(), rec);
    assert_eq!(back.sequence(), b.sequence());
    assert_eq!(back.allocated(), 2);
    let json = serde_json::to_string(&rec).unwrap();
    assert!(json.contains("\"allocations\""), "{json}");
    let parsed: BlockRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed, rec);
}

#[test]
fn rebuilt_blocks_hand_out_free_addresses_in_ascending_order() {
    let rec = record("10.0.0.0/29", vec![arec(1, "a", 1), arec(4, "b", 2)]);
    let mut b = Block::from_record(&rec).unwrap();
    let got: Vec<u32> = (0..6)
        .map(|i| alloc(&mut b, &format!("h{i}")).ordinal)
        .collect();
    assert_eq!(got, vec![0, 2, 3, 5, 6, 7]);
    assert!(b.is_full());
}

#[test]
fn hostile_records_are_refused_with_typed_errors() {
    let cases: Vec<(BlockRecord, &str)> = vec![
        (record("10.0.0.1/26", vec![]), "BlockCIDRNotMasked"),
        (record("10.0.0.0/16", vec![]), "InvalidBlockSize"),
        (record("fd00::/64", vec![]), "InvalidBlockSize"),
        (
            record("10.0.0.0/26", vec![arec(64, "a", 1)]),
            "OrdinalOutOfRange",
        ),
        (
            record("10.0.0.0/26", vec![arec(u32::MAX, "a", 1)]),
            "OrdinalOutOfRange",
        ),
        (
            record("10.0.0.0/26", vec![arec(3, "a", 1), arec(3, "b", 2)]),
            "DuplicateOrdinal",
        ),
        (
            record("10.0.0.0/26", vec![arec(3, "a", 1), arec(5, "a", 2)]),
            "DuplicateHandle",
        ),
        (record("10.0.0.0/26", vec![arec(3, "", 1)]), "EmptyHandle"),
        (
            record("10.0.0.0/26", vec![arec(3, "a", 11)]),
            "SequenceAhead",
        ),
        (
            BlockRecord {
                pool: String::new(),
                ..record("10.0.0.0/26", vec![])
            },
            "MissingPool",
        ),
    ];
    for (rec, reason) in cases {
        let err = Block::from_record(&rec).unwrap_err();
        assert_eq!(err.reason(), reason, "{err}");
        assert!(err.to_string().contains(&rec.cidr.to_string()), "{err}");
    }
}

#[test]
fn duplicate_handle_error_names_both_addresses() {
    let rec = record("10.0.0.0/26", vec![arec(3, "a", 1), arec(5, "a", 2)]);
    let msg = Block::from_record(&rec).unwrap_err().to_string();
    assert!(
        msg.contains("10.0.0.3") && msg.contains("10.0.0.5"),
        "{msg}"
    );
}
