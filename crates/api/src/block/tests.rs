#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use super::*;

fn assigned(address: &str, block: &str) -> FamilyAssignment {
    FamilyAssignment {
        address: address.parse().unwrap(),
        pool: "payments".into(),
        block: block.into(),
    }
}

/// A block spec with one allocation at `ordinal` for `handle`.
fn one(cidr: &str, ordinal: u32, handle: &str) -> IPAMBlockSpec {
    let mut allocations = BTreeMap::new();
    allocations.insert(
        ordinal.to_string(),
        BlockAllocation {
            handle: handle.into(),
            namespace: "shop".into(),
            pod: "web-0".into(),
            container: None,
            sequence: 3,
        },
    );
    IPAMBlockSpec {
        cidr: cidr.into(),
        pool: "payments".into(),
        affinity: Some("node-1".into()),
        sequence_number: 3,
        allocations,
        quarantine: None,
    }
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
fn an_annotation_whose_parts_disagree_is_refused_before_any_read() {
    let outside = Slot::locate(&assigned("10.244.9.5", "10-244-8-0-26")).unwrap_err();
    assert!(
        outside.contains("outside the block's range 10.244.8.0/26"),
        "{outside}"
    );
    let bad_name = Slot::locate(&assigned("10.244.8.5", "payments")).unwrap_err();
    assert!(bad_name.contains("not a block name"), "{bad_name}");
}

#[test]
fn diagnosis_says_what_the_block_holds_instead() {
    let slot = Slot::locate(&assigned("10.244.8.5", "10-244-8-0-26")).unwrap();
    let cases: [(IPAMBlockSpec, Option<&str>); 4] = [
        (one("10.244.8.0/26", 5, "uid-1"), None),
        (
            one("10.244.8.64/26", 5, "uid-1"),
            Some("the block's range is 10.244.8.64/26, not 10.244.8.0/26"),
        ),
        (
            one("10.244.8.0/26", 6, "uid-1"),
            Some("no allocation for the address"),
        ),
        (
            one("10.244.8.0/26", 5, "uid-9"),
            Some("allocated to another pod"),
        ),
    ];
    for (block, want) in cases {
        let got = slot.diagnose(&block, "uid-1");
        match want {
            None => assert_eq!(got, Ok(())),
            Some(text) => {
                let reason = got.unwrap_err();
                assert!(reason.contains(text), "want {text:?} in {reason:?}");
            }
        }
    }
}

#[test]
fn a_container_an_earlier_plugin_recorded_neither_helps_nor_hurts() {
    let slot = Slot::locate(&assigned("10.244.8.5", "10-244-8-0-26")).unwrap();
    let mut claimed = one("10.244.8.0/26", 5, "uid-1");
    if let Some(a) = claimed.allocations.get_mut("5") {
        a.container = Some("sandbox-0".into());
    }
    assert_eq!(slot.diagnose(&claimed, "uid-1"), Ok(()));
    assert!(slot.diagnose(&claimed, "uid-2").is_err());
    // And it is still read back from blocks that carry it.
    let doc = serde_json::to_value(&claimed).unwrap();
    assert_eq!(doc["allocations"]["5"]["container"], "sandbox-0");
    let back: IPAMBlockSpec = serde_json::from_value(doc).unwrap();
    assert_eq!(back, claimed);
}
