#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::IPAMBlock;

fn alloc(handle: &str, sequence: i64) -> BlockAllocation {
    BlockAllocation {
        handle: handle.into(),
        namespace: "ns".into(),
        pod: format!("pod-{handle}"),
        container: None,
        sequence,
    }
}

fn spec(
    sequence: i64,
    affinity: Option<&str>,
    allocations: &[(u32, BlockAllocation)],
) -> IPAMBlockSpec {
    IPAMBlockSpec {
        cidr: "10.0.0.0/26".into(),
        pool: "p".into(),
        affinity: affinity.map(str::to_owned),
        sequence_number: sequence,
        allocations: allocations
            .iter()
            .map(|(o, a)| (o.to_string(), a.clone()))
            .collect(),
    }
}

fn doc(spec: &IPAMBlockSpec) -> Value {
    serde_json::to_value(IPAMBlock::new("10-0-0-0-26", spec.clone())).unwrap()
}

fn apply(target: &IPAMBlockSpec, patch: &Patch) -> Result<IPAMBlockSpec, json_patch::PatchError> {
    let mut value = doc(target);
    json_patch::patch(&mut value, patch)?;
    Ok(serde_json::from_value::<IPAMBlock>(value).unwrap().spec)
}

#[test]
fn allocate_release_and_affinity_round_trip() {
    let have = spec(4, Some("n1"), &[(0, alloc("a", 1)), (1, alloc("b", 2))]);
    let want = spec(5, None, &[(1, alloc("b", 2)), (2, alloc("c", 5))]);
    assert_eq!(apply(&have, &update(&have, &want)).unwrap(), want);
}

#[test]
fn a_stale_sequence_number_makes_the_whole_patch_fail() {
    let have = spec(4, Some("n1"), &[]);
    let want = spec(5, Some("n1"), &[(0, alloc("a", 5))]);
    let server = spec(6, Some("n1"), &[(0, alloc("z", 6))]);
    assert!(apply(&server, &update(&have, &want)).is_err());
}

#[test]
fn a_container_claim_written_meanwhile_survives() {
    let have = spec(4, Some("n1"), &[(0, alloc("a", 1))]);
    let want = spec(5, Some("n1"), &[(0, alloc("a", 1)), (1, alloc("b", 5))]);
    let mut claimed = alloc("a", 1);
    claimed.container = Some("sandbox-1".into());
    let server = spec(4, Some("n1"), &[(0, claimed.clone())]);
    let written = apply(&server, &update(&have, &want)).unwrap();
    assert_eq!(written.allocations["0"], claimed);
    assert_eq!(written.allocations["1"], alloc("b", 5));
}

#[test]
fn a_reassigned_ordinal_replaces_the_old_record() {
    let have = spec(4, None, &[(3, alloc("old", 1))]);
    let want = spec(5, None, &[(3, alloc("new", 5))]);
    assert_eq!(apply(&have, &update(&have, &want)).unwrap(), want);
}

#[test]
fn nothing_to_change_is_only_a_test() {
    let have = spec(4, Some("n1"), &[(0, alloc("a", 1))]);
    assert_eq!(update(&have, &have).0.len(), 1);
}

// The plugin's claim.

fn assigned(address: &str, block: &str) -> FamilyAssignment {
    FamilyAssignment {
        address: address.parse().unwrap(),
        pool: "payments".into(),
        block: block.into(),
    }
}

/// A block spec with one allocation at `ordinal` for `handle`.
fn one(cidr: &str, ordinal: u32, handle: &str, container: Option<&str>) -> IPAMBlockSpec {
    let mut allocations = BTreeMap::new();
    allocations.insert(
        ordinal.to_string(),
        BlockAllocation {
            handle: handle.into(),
            namespace: "shop".into(),
            pod: "web-0".into(),
            container: container.map(str::to_owned),
            sequence: 3,
        },
    );
    IPAMBlockSpec {
        cidr: cidr.into(),
        pool: "payments".into(),
        affinity: Some("node-1".into()),
        sequence_number: 3,
        allocations,
    }
}

/// Applies `patch` the way the API server does: all operations or none.
fn apply_spec(spec: &IPAMBlockSpec, patch: &json_patch::Patch) -> Result<IPAMBlockSpec, String> {
    let mut doc = json!({"spec": spec});
    json_patch::patch(&mut doc, &patch.0).map_err(|e| e.to_string())?;
    Ok(serde_json::from_value(doc["spec"].clone()).unwrap())
}

#[test]
fn locates_the_ordinal_from_block_name_and_address() {
    let slot = Slot::locate(&assigned("10.244.8.5", "10-244-8-0-26")).unwrap();
    assert_eq!(slot.block.to_string(), "10.244.8.0/26");
    assert_eq!(slot.ordinal, 5);
    let v6 = Slot::locate(&assigned("fd00:10::41", "fd00-10-0-0-0-0-0-40-122")).unwrap();
    assert_eq!(v6.ordinal, 1);
}

#[test]
fn an_annotation_whose_parts_disagree_is_refused_before_any_write() {
    let outside = Slot::locate(&assigned("10.244.9.5", "10-244-8-0-26")).unwrap_err();
    assert!(
        outside.contains("outside the block's range 10.244.8.0/26"),
        "{outside}"
    );
    let bad_name = Slot::locate(&assigned("10.244.8.5", "payments")).unwrap_err();
    assert!(bad_name.contains("not a block name"), "{bad_name}");
}

#[test]
fn claim_patch_tests_range_and_owner_then_adds_the_container() {
    let slot = Slot::locate(&assigned("10.244.8.5", "10-244-8-0-26")).unwrap();
    let patch = slot.claim("uid-1", "c1");
    assert_eq!(
        serde_json::to_value(&patch).unwrap(),
        json!([
            {"op": "test", "path": "/spec/cidr", "value": "10.244.8.0/26"},
            {"op": "test", "path": "/spec/allocations/5/handle", "value": "uid-1"},
            {"op": "add", "path": "/spec/allocations/5/container", "value": "c1"},
        ])
    );
}

#[test]
fn claim_semantics() {
    let slot = Slot::locate(&assigned("10.244.8.5", "10-244-8-0-26")).unwrap();
    let block = one("10.244.8.0/26", 5, "uid-1", None);

    let claimed = apply_spec(&block, &slot.claim("uid-1", "c1")).unwrap();
    assert_eq!(claimed.allocations["5"].container.as_deref(), Some("c1"));
    // Everything else about the allocation is untouched.
    assert_eq!(claimed.allocations["5"].sequence, 3);
    assert_eq!(claimed.allocations["5"].handle, "uid-1");

    // Idempotent, and a new sandbox of the same pod takes the claim over.
    let again = apply_spec(&claimed, &slot.claim("uid-1", "c1")).unwrap();
    assert_eq!(again, claimed);
    let taken = apply_spec(&claimed, &slot.claim("uid-1", "c2")).unwrap();
    assert_eq!(taken.allocations["5"].container.as_deref(), Some("c2"));

    // Another pod's UID, another range, or no allocation: the whole patch fails.
    assert!(apply_spec(&block, &slot.claim("uid-2", "c1")).is_err());
    let moved = one("10.244.8.64/26", 5, "uid-1", None);
    assert!(apply_spec(&moved, &slot.claim("uid-1", "c1")).is_err());
    let elsewhere = one("10.244.8.0/26", 6, "uid-1", None);
    assert!(apply_spec(&elsewhere, &slot.claim("uid-1", "c1")).is_err());
}

#[test]
fn release_semantics() {
    let slot = Slot::locate(&assigned("10.244.8.5", "10-244-8-0-26")).unwrap();
    let held = one("10.244.8.0/26", 5, "uid-1", Some("c1"));
    let released = apply_spec(&held, &slot.unclaim("uid-1", "c1")).unwrap();
    assert_eq!(released.allocations["5"].container, None);
    assert_eq!(
        released.allocations["5"].handle, "uid-1",
        "the address stays the pod's"
    );
    // Not this container's claim (taken over), not this pod, or already released: no change.
    assert!(apply_spec(&held, &slot.unclaim("uid-1", "c0")).is_err());
    assert!(apply_spec(&held, &slot.unclaim("uid-2", "c1")).is_err());
    assert!(apply_spec(&released, &slot.unclaim("uid-1", "c1")).is_err());
}

#[test]
fn diagnosis_says_what_the_block_holds_instead() {
    let slot = Slot::locate(&assigned("10.244.8.5", "10-244-8-0-26")).unwrap();
    let cases: [(IPAMBlockSpec, Option<&str>, Option<&str>); 6] = [
        (
            one("10.244.8.0/26", 5, "uid-1", Some("c1")),
            Some("c1"),
            None,
        ),
        (one("10.244.8.0/26", 5, "uid-1", None), None, None),
        (
            one("10.244.8.64/26", 5, "uid-1", None),
            None,
            Some("the block's range is 10.244.8.64/26, not 10.244.8.0/26"),
        ),
        (
            one("10.244.8.0/26", 6, "uid-1", None),
            None,
            Some("no allocation for the address"),
        ),
        (
            one("10.244.8.0/26", 5, "uid-9", None),
            None,
            Some("allocated to another pod"),
        ),
        (
            one("10.244.8.0/26", 5, "uid-1", Some("c0")),
            Some("c1"),
            Some("the claim belongs to container c0"),
        ),
    ];
    for (block, container, want) in cases {
        let got = slot.diagnose(&block, "uid-1", container);
        match want {
            None => assert_eq!(got, Ok(())),
            Some(text) => {
                let reason = got.unwrap_err();
                assert!(reason.contains(text), "want {text:?} in {reason:?}");
            }
        }
    }
    let unclaimed = slot.diagnose(&one("10.244.8.0/26", 5, "uid-1", None), "uid-1", Some("c1"));
    assert_eq!(
        unclaimed,
        Err("no container has claimed the address".into())
    );
}

#[test]
fn the_block_type_round_trips_the_patched_document() {
    // The patch paths must match the CRD's JSON field names, not the Rust ones.
    let doc: Value = serde_json::to_value(one("10.244.8.0/26", 5, "u", Some("c"))).unwrap();
    assert_eq!(doc["allocations"]["5"]["container"], "c");
    assert_eq!(doc["cidr"], "10.244.8.0/26");
}

// `kubectl ipam release`'s guarded release.

/// Applies `patch` to `now` as the API server would: all operations or none.
fn apply_to(now: &IPAMBlockSpec, patch: &Patch) -> Result<IPAMBlockSpec, IPAMBlockSpec> {
    apply(now, patch).map_err(|_| now.clone())
}

#[test]
fn a_release_removes_only_the_allocation_it_names_and_bumps_the_sequence() {
    let block = spec(7, Some("n1"), &[(5, alloc("u-a", 3)), (6, alloc("u-b", 7))]);
    let done = apply_to(&block, &release(&block, 5, "u-a", 3).unwrap()).unwrap();
    assert_eq!(done.sequence_number, 8);
    assert_eq!(done.allocations.keys().collect::<Vec<_>>(), ["6"]);
    assert_eq!(done.affinity.as_deref(), Some("n1"));
}

#[test]
fn a_release_fails_when_the_block_or_the_allocation_changed_since_it_was_read() {
    let read = spec(7, None, &[(5, alloc("u-a", 3))]);
    let patch = release(&read, 5, "u-a", 3).unwrap();
    // The controller wrote the block meanwhile (sequence number bumped): nothing changes.
    let bumped = spec(8, None, &[(5, alloc("u-a", 3)), (6, alloc("u-b", 8))]);
    assert_eq!(apply_to(&bumped, &patch).unwrap_err(), bumped);
    // Even without the block test, an address given to another pod, or the same pod's later
    // allocation, is never freed.
    let unguarded = Patch(patch.0[1..].to_vec());
    let reassigned = spec(7, None, &[(5, alloc("u-c", 7))]);
    assert!(apply_to(&reassigned, &unguarded).is_err());
    let later = spec(7, None, &[(5, alloc("u-a", 9))]);
    assert!(apply_to(&later, &unguarded).is_err());
    // A read that does not hold the allocation builds no patch, and says why.
    for (read, why) in [
        (spec(7, None, &[(5, alloc("u-c", 7))]), "u-c"),
        (spec(9, None, &[(5, alloc("u-a", 9))]), "sequence"),
        (spec(8, None, &[]), "not allocated"),
    ] {
        let err = release(&read, 5, "u-a", 3).unwrap_err();
        assert!(err.contains(why), "{why}: {err}");
    }
}

#[test]
fn refusals_are_read_from_the_status_code() {
    assert_eq!(refusal(422), Refusal::Conflict);
    assert_eq!(refusal(409), Refusal::Conflict);
    assert_eq!(refusal(404), Refusal::Gone);
    for code in [400, 401, 403, 429, 500, 503, 504] {
        assert_eq!(refusal(code), Refusal::Other, "{code}");
    }
}

#[test]
fn a_retry_pauses_twice_as_long_each_time_and_stops_after_its_attempts() {
    let retry = Retry {
        attempts: 4,
        first_pause: std::time::Duration::from_millis(100),
    };
    let pauses: Vec<u128> = (1..=5)
        .map_while(|a| retry.pause_after(a))
        .map(|p| p.as_millis())
        .collect();
    assert_eq!(pauses, [100, 200, 400]);
    let once = Retry {
        attempts: 1,
        first_pause: std::time::Duration::from_secs(1),
    };
    assert_eq!(once.pause_after(1), None);
}
