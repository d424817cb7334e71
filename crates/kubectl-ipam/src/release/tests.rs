#![allow(clippy::unwrap_used)]

use std::io::Write as _;

use api::{BlockAllocation, IPAMBlockSpec};
use serde_json::{Value, json};

use super::*;

fn holder(ordinal: u32, handle: &str, sequence: i64) -> Holder {
    Holder {
        address: "10.244.0.5".parse().unwrap(),
        block: "10-244-0-0-26".into(),
        pool: "general".into(),
        ordinal,
        handle: handle.into(),
        sequence,
        namespace: "web".into(),
        pod: "a".into(),
    }
}

fn spec(sequence_number: i64, allocations: &[(u32, &str, i64)]) -> IPAMBlockSpec {
    IPAMBlockSpec {
        cidr: "10.244.0.0/26".into(),
        pool: "general".into(),
        affinity: Some("node-1".into()),
        sequence_number,
        allocations: allocations
            .iter()
            .map(|(o, h, s)| {
                (
                    o.to_string(),
                    BlockAllocation {
                        handle: (*h).into(),
                        namespace: "web".into(),
                        pod: "a".into(),
                        container: Some("c1".into()),
                        sequence: *s,
                    },
                )
            })
            .collect(),
    }
}

/// Applies the guard patch made from `read` to the block as it is `now`, as the API server
/// would.
fn apply(read: &IPAMBlockSpec, now: &IPAMBlockSpec, h: &Holder) -> Result<Value, Value> {
    let patch: json_patch::Patch = serde_json::from_value(write::guard_patch(read, h)).unwrap();
    let original = json!({"spec": now});
    let mut doc = original.clone();
    match json_patch::patch(&mut doc, &patch) {
        Ok(()) => Ok(doc),
        // json-patch leaves the document as it was on failure, as the server does.
        Err(_) => Err(doc),
    }
}

#[test]
fn the_guard_removes_only_the_allocation_it_names_and_bumps_the_sequence() {
    let block = spec(7, &[(5, "u-a", 3), (6, "u-b", 7)]);
    let done = apply(&block, &block, &holder(5, "u-a", 3)).unwrap();
    assert_eq!(done["spec"]["sequenceNumber"], 8);
    let left: Vec<&String> = done["spec"]["allocations"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(left, ["6"]);
}

#[test]
fn the_guard_fails_when_the_block_or_the_allocation_changed_since_it_was_read() {
    let read = spec(7, &[(5, "u-a", 3)]);
    // The controller wrote the block meanwhile (sequence number bumped).
    let bumped = spec(8, &[(5, "u-a", 3), (6, "u-b", 8)]);
    let kept = apply(&read, &bumped, &holder(5, "u-a", 3)).unwrap_err();
    assert_eq!(kept["spec"], serde_json::to_value(&bumped).unwrap());
    // The address was released and given to another pod: same ordinal, other handle.
    let reassigned = spec(7, &[(5, "u-c", 7)]);
    assert!(apply(&reassigned, &reassigned, &holder(5, "u-a", 3)).is_err());
    // Same handle but a later allocation (the sequence tells them apart).
    let again = spec(9, &[(5, "u-a", 9)]);
    assert!(apply(&again, &again, &holder(5, "u-a", 3)).is_err());
    // Already released.
    let empty = spec(8, &[]);
    assert!(apply(&empty, &empty, &holder(5, "u-a", 3)).is_err());
}

fn report_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[test]
fn a_report_yields_its_leaks_and_counts_the_other_problems() {
    let leak = json!({
        "kind": "LeakedAllocation", "address": "10.244.0.5", "block": "10-244-0-0-26",
        "pool": "general", "ordinal": 5, "handle": "u-a", "sequence": 3, "namespace": "web",
        "pod": "a", "podState": "NotFound", "message": "gone"
    });
    let report = json!({
        "reportVersion": 1, "server": "https://x:6443/", "clean": false,
        "problems": [
            {"kind": "PoolNotAllocatable", "pool": "p", "message": "m"},
            leak,
            {"kind": "SomethingNewer", "message": "from a later version"}
        ],
        "notes": []
    });
    let f = report_file(&report.to_string());
    let got = read_report(f.path()).unwrap();
    assert_eq!(got.leaks, [holder(5, "u-a", 3)]);
    assert_eq!(got.others, 2);
    assert_eq!(got.server.as_deref(), Some("https://x:6443/"));
}

#[test]
fn a_report_of_another_version_or_shape_is_refused_with_the_file_name() {
    let cases = [
        json!({"reportVersion": 2, "problems": []}).to_string(),
        "not json".to_owned(),
        json!({"reportVersion": 1, "problems": [{"kind": "LeakedAllocation", "address": "x"}]})
            .to_string(),
    ];
    for text in cases {
        let f = report_file(&text);
        let err = read_report(f.path()).unwrap_err().to_string();
        assert!(
            err.contains(&f.path().display().to_string()),
            "{text}: {err}"
        );
    }
}
