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

/// A block spec with one allocation at `ordinal` for `handle`, as the controller writes it.
fn one(cidr: &str, ordinal: u32, handle: &str) -> IPAMBlockSpec {
    IPAMBlockSpec {
        cidr: cidr.into(),
        pool: "payments".into(),
        affinity: Some("node-1".into()),
        sequence_number: 3,
        holders: [(ordinal.to_string(), format!("shop/web-0 {handle} 3"))].into(),
        allocations: BTreeMap::new(),
        released: BTreeMap::new(),
        quarantine: None,
    }
}

/// The same in the format of rangepool 0.1.
fn one_legacy(cidr: &str, ordinal: u32, handle: &str) -> IPAMBlockSpec {
    let mut spec = one(cidr, ordinal, handle);
    spec.holders.clear();
    spec.allocations.insert(
        ordinal.to_string(),
        BlockAllocation {
            handle: handle.into(),
            namespace: "shop".into(),
            pod: "web-0".into(),
            container: None,
            sequence: 3,
        },
    );
    spec
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
    let legacy = cases
        .clone()
        .map(|(block, want)| (one_legacy(&block.cidr, 0, "x"), block, want));
    for (mut old, block, want) in legacy {
        // The same verdicts from a block in the earlier format.
        old.allocations = block
            .to_record()
            .unwrap()
            .allocations
            .iter()
            .map(|a| {
                let mut record = old.allocations["0"].clone();
                record.handle = a.handle.clone();
                (a.ordinal.to_string(), record)
            })
            .collect();
        assert_eq!(
            slot.diagnose(&old, "uid-1").is_ok(),
            want.is_none(),
            "{old:?}"
        );
    }
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
    let mut claimed = one_legacy("10.244.8.0/26", 5, "uid-1");
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

#[test]
fn a_holder_is_one_string_that_reads_back_as_the_record() {
    let spec = one("10.244.8.0/26", 5, "0d5c7c8e-3b0f-4c5e-9a51-2f4b9c1d7e21");
    let record = spec.to_record().unwrap();
    let a = &record.allocations[0];
    assert_eq!(
        (a.ordinal, a.namespace.as_str(), a.pod.as_str(), a.sequence),
        (5, "shop", "web-0", 3)
    );
    assert_eq!(a.handle, "0d5c7c8e-3b0f-4c5e-9a51-2f4b9c1d7e21");
    assert_eq!(IPAMBlockSpec::from_record(&record), spec);
    let doc = serde_json::to_value(&spec).unwrap();
    assert_eq!(
        doc["holders"]["5"],
        "shop/web-0 0d5c7c8e-3b0f-4c5e-9a51-2f4b9c1d7e21 3"
    );
    assert!(doc.get("allocations").is_none(), "{doc}");
    assert_eq!(spec.allocated(), 1);
}

#[test]
fn a_holder_no_controller_writes_makes_the_block_unreadable() {
    for bad in [
        "",
        "shop/web-0 uid-1",
        "shop/web-0 uid-1 3 extra",
        "shop web-0 uid-1 3",
        "shop/web-0  uid-1 3",
        "shop/web/0 uid-1 3",
        "shop/web-0 uid-1 -3",
        "shop/web-0 uid-1 three",
    ] {
        let mut spec = one("10.244.8.0/26", 5, "uid-1");
        spec.holders.insert("5".into(), bad.into());
        let err = spec.to_record().unwrap_err();
        assert!(err.contains("holder of address 5"), "{bad:?}: {err}");
        assert!(spec.handle_at(5).is_err(), "{bad:?}");
        let slot = Slot::locate(&assigned("10.244.8.5", "10-244-8-0-26")).unwrap();
        assert!(slot.diagnose(&spec, "uid-1").is_err(), "{bad:?}");
    }
    // One address in both formats is not a block any controller wrote.
    let mut both = one("10.244.8.0/26", 5, "uid-1");
    both.allocations = one_legacy("10.244.8.0/26", 5, "uid-2").allocations;
    assert!(both.to_record().unwrap_err().contains("both"));
}
