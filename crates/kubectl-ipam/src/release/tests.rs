//! The report file `release --from-report` reads. The guarded write's shape is tested where it
//! is built (`crates/api/src/write/tests.rs`), and against a real API server in
//! `tests/release.rs`.
#![allow(clippy::unwrap_used)]

use std::io::Write as _;

use serde_json::json;

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

#[test]
fn a_parked_record_is_never_taken_from_a_report_even_listed_as_a_leak() {
    let entry = |handle: &str| {
        json!({
            "kind": "LeakedAllocation", "address": "10.244.0.5", "block": "10-244-0-0-26",
            "pool": "general", "ordinal": 5, "handle": handle, "sequence": 3,
            "namespace": "web", "pod": "a", "podState": "NotFound", "message": "gone"
        })
    };
    let report = json!({
        "reportVersion": 1, "clean": false,
        "problems": [entry("sts:5a1e/db-0"), entry("u-a")],
        "notes": [{"kind": "ParkedStickyAddress", "message": "kept"}]
    });
    let f = report_file(&report.to_string());
    let got = read_report(f.path()).unwrap();
    assert_eq!(got.leaks, [holder(5, "u-a", 3)]);
    assert_eq!(got.parked, [holder(5, "sts:5a1e/db-0", 3)]);
}
