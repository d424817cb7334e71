#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use api::BlockAllocation;
use serde_json::{Value, json};

use super::*;

fn assigned(address: &str, block: &str) -> FamilyAssignment {
    FamilyAssignment {
        address: address.parse().unwrap(),
        pool: "payments".into(),
        block: block.into(),
    }
}

/// A block spec with one allocation at `ordinal` for `handle`.
fn spec(cidr: &str, ordinal: u32, handle: &str, container: Option<&str>) -> IPAMBlockSpec {
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
fn apply(spec: &IPAMBlockSpec, patch: &json_patch::Patch) -> Result<IPAMBlockSpec, String> {
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
    let patch = slot.claim_patch("uid-1", "c1").unwrap();
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
    let block = spec("10.244.8.0/26", 5, "uid-1", None);

    let claimed = apply(&block, &slot.claim_patch("uid-1", "c1").unwrap()).unwrap();
    assert_eq!(claimed.allocations["5"].container.as_deref(), Some("c1"));
    // Everything else about the allocation is untouched.
    assert_eq!(claimed.allocations["5"].sequence, 3);
    assert_eq!(claimed.allocations["5"].handle, "uid-1");

    // Idempotent, and a new sandbox of the same pod takes the claim over.
    let again = apply(&claimed, &slot.claim_patch("uid-1", "c1").unwrap()).unwrap();
    assert_eq!(again, claimed);
    let taken = apply(&claimed, &slot.claim_patch("uid-1", "c2").unwrap()).unwrap();
    assert_eq!(taken.allocations["5"].container.as_deref(), Some("c2"));

    // Another pod's UID, another range, or no allocation: the whole patch fails.
    assert!(apply(&block, &slot.claim_patch("uid-2", "c1").unwrap()).is_err());
    let moved = spec("10.244.8.64/26", 5, "uid-1", None);
    assert!(apply(&moved, &slot.claim_patch("uid-1", "c1").unwrap()).is_err());
    let elsewhere = spec("10.244.8.0/26", 6, "uid-1", None);
    assert!(apply(&elsewhere, &slot.claim_patch("uid-1", "c1").unwrap()).is_err());
}

#[test]
fn release_semantics() {
    let slot = Slot::locate(&assigned("10.244.8.5", "10-244-8-0-26")).unwrap();
    let held = spec("10.244.8.0/26", 5, "uid-1", Some("c1"));
    let released = apply(&held, &slot.release_patch("uid-1", "c1").unwrap()).unwrap();
    assert_eq!(released.allocations["5"].container, None);
    assert_eq!(
        released.allocations["5"].handle, "uid-1",
        "the address stays the pod's"
    );
    // Not this container's claim (taken over), not this pod, or already released: no change.
    assert!(apply(&held, &slot.release_patch("uid-1", "c0").unwrap()).is_err());
    assert!(apply(&held, &slot.release_patch("uid-2", "c1").unwrap()).is_err());
    assert!(apply(&released, &slot.release_patch("uid-1", "c1").unwrap()).is_err());
}

#[test]
fn diagnosis_says_what_the_block_holds_instead() {
    let slot = Slot::locate(&assigned("10.244.8.5", "10-244-8-0-26")).unwrap();
    let cases: [(IPAMBlockSpec, Option<&str>, Option<&str>); 6] = [
        (
            spec("10.244.8.0/26", 5, "uid-1", Some("c1")),
            Some("c1"),
            None,
        ),
        (spec("10.244.8.0/26", 5, "uid-1", None), None, None),
        (
            spec("10.244.8.64/26", 5, "uid-1", None),
            None,
            Some("the block's range is 10.244.8.64/26, not 10.244.8.0/26"),
        ),
        (
            spec("10.244.8.0/26", 6, "uid-1", None),
            None,
            Some("no allocation for the address"),
        ),
        (
            spec("10.244.8.0/26", 5, "uid-9", None),
            None,
            Some("allocated to another pod"),
        ),
        (
            spec("10.244.8.0/26", 5, "uid-1", Some("c0")),
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
    let unclaimed = slot.diagnose(
        &spec("10.244.8.0/26", 5, "uid-1", None),
        "uid-1",
        Some("c1"),
    );
    assert_eq!(
        unclaimed,
        Err("no container has claimed the address".into())
    );
}

#[test]
fn the_block_type_round_trips_the_patched_document() {
    // The patch paths must match the CRD's JSON field names, not the Rust ones.
    let doc: Value = serde_json::to_value(spec("10.244.8.0/26", 5, "u", Some("c"))).unwrap();
    assert_eq!(doc["allocations"]["5"]["container"], "c");
    assert_eq!(doc["cidr"], "10.244.8.0/26");
}
