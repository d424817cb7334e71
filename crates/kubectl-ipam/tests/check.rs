//! `kubectl ipam check` against a real API server (envtest), with the test playing the controller.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use api::{Assignment, FamilyAssignment};
use serde_json::Value;
use support::cluster::Cluster;
use support::*;

fn problems(report: &Value) -> &Vec<Value> {
    report["problems"].as_array().unwrap()
}

fn only<'a>(report: &'a Value, kind: &str) -> &'a Value {
    let found: Vec<&Value> = problems(report)
        .iter()
        .filter(|p| p["kind"] == kind)
        .collect();
    assert_eq!(found.len(), 1, "one {kind} expected in {report:#}");
    found[0]
}

#[tokio::test]
async fn a_consistent_cluster_is_clean_and_exits_0() {
    let c = Cluster::with_general_pool().await;
    c.running("a", "10.244.0.0").await;
    c.running("b", "10.244.0.1").await;
    let run = c.run(&["check", "-o", "json"]).await;
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["reportVersion"], 1);
    assert_eq!(report["clean"], true);
    assert_eq!(report["problems"], serde_json::json!([]));
    assert_eq!(report["notes"], serde_json::json!([]));
    assert_eq!(
        report["checked"],
        serde_json::json!({"pools": 1, "blocks": 1, "allocations": 2, "pods": 2})
    );
    assert_eq!(report["server"], c.plane.url().to_owned() + "/");
    assert!(report["generatedAt"].as_str().unwrap().ends_with('Z'));

    let text = c.run(&["check"]).await;
    assert_eq!(text.status, 0);
    assert!(
        text.stdout.contains("Result: no problem; exit status 0"),
        "{}",
        text.stdout
    );
}

#[tokio::test]
async fn an_allocation_whose_pod_is_gone_is_a_leak_with_what_release_needs() {
    let c = Cluster::with_general_pool().await;
    c.running("keep", "10.244.0.0").await;
    let gone = c.running("gone", "10.244.0.1").await;
    c.delete_pod(&gone).await;

    let run = c.run(&["check", "-o", "json"]).await;
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["clean"], false);
    assert_eq!(problems(&report).len(), 1, "{report:#}");
    let leak = only(&report, "LeakedAllocation");
    assert_eq!(leak["address"], "10.244.0.1");
    assert_eq!(leak["block"], "10-244-0-0-26");
    assert_eq!(leak["pool"], "general");
    assert_eq!(leak["ordinal"], 1);
    assert_eq!(leak["handle"], gone.metadata.uid.clone().unwrap());
    assert_eq!(leak["sequence"], 2);
    assert_eq!(leak["namespace"], "web");
    assert_eq!(leak["pod"], "gone");
    assert_eq!(leak["podState"], "NotFound");
    assert_eq!(leak["goneBefore"], Value::Null);
    assert!(leak["blockCreated"].is_string(), "{leak:#}");
    let message = leak["message"].as_str().unwrap();
    assert!(
        message.contains("pod not found")
            && message.contains("kubectl ipam release --ip 10.244.0.1"),
        "{message}"
    );

    let text = c.run(&["check"]).await;
    assert_eq!(text.status, 1);
    assert!(
        text.stdout
            .contains("  LeakedAllocation: 10.244.0.1 held by web/gone\n"),
        "{}",
        text.stdout
    );
}

#[tokio::test]
async fn a_pod_re_created_under_the_same_name_leaves_a_leak_gone_before_its_creation() {
    let c = Cluster::with_general_pool().await;
    let old = c.running("web-0", "10.244.0.0").await;
    c.delete_pod(&old).await;
    let new = c.running("web-0", "10.244.0.1").await;
    let run = c.run(&["check", "-o", "json"]).await;
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    let leak = only(&report, "LeakedAllocation");
    assert_eq!(leak["address"], "10.244.0.0");
    assert_eq!(leak["podState"], "Recreated");
    assert_eq!(leak["currentUid"], new.metadata.uid.clone().unwrap());
    assert_eq!(
        leak["goneBefore"].as_str().unwrap(),
        new.metadata.creation_timestamp.unwrap().0.to_string()
    );
}

#[tokio::test]
async fn a_forged_annotation_is_reported_and_the_real_holder_named() {
    let c = Cluster::with_general_pool().await;
    let owner = c.running("owner", "10.244.0.0").await;
    let forger = c.pod(pod("forger").in_ns("web").on_node("node-1")).await;
    c.annotate(
        &forger,
        &Assignment {
            ipv4: Some(FamilyAssignment {
                address: "10.244.0.0".parse().unwrap(),
                pool: "general".into(),
                block: "10-244-0-0-26".into(),
            }),
            ..Default::default()
        },
    )
    .await;

    let run = c.run(&["check", "-o", "json"]).await;
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(problems(&report).len(), 1, "{report:#}");
    let forged = only(&report, "UnrecordedAddress");
    assert_eq!(forged["pod"], "forger");
    assert_eq!(forged["uid"], forger.metadata.uid.clone().unwrap());
    assert_eq!(forged["family"], "ipv4");
    assert_eq!(forged["address"], "10.244.0.0");
    assert_eq!(forged["annotatedBlock"], "10-244-0-0-26");
    assert_eq!(
        forged["recorded"][0]["handle"],
        owner.metadata.uid.clone().unwrap()
    );
    assert!(
        forged["message"]
            .as_str()
            .unwrap()
            .contains("for web/owner"),
        "{forged:#}"
    );
}

#[tokio::test]
async fn an_address_recorded_in_two_blocks_is_a_duplicate() {
    let c = Cluster::with_general_pool().await;
    // A second, overlapping block of another size, as a hand edit or a buggy writer leaves.
    c.block("10.244.0.0/28", "general", Some("node-2")).await;
    let a = c.running("a", "10.244.0.5").await;
    let b = c.pod(pod("b").in_ns("web").on_node("node-2")).await;
    c.record_in("10-244-0-0-28", &b, "10.244.0.5".parse().unwrap())
        .await;
    let run = c.run(&["check", "-o", "json"]).await;
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    let dup = only(&report, "DuplicateAddress");
    assert_eq!(dup["address"], "10.244.0.5");
    let holders: Vec<(&str, &str)> = dup["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["block"].as_str().unwrap(), h["handle"].as_str().unwrap()))
        .collect();
    assert_eq!(
        holders,
        [
            ("10-244-0-0-26", a.metadata.uid.as_deref().unwrap()),
            ("10-244-0-0-28", b.metadata.uid.as_deref().unwrap()),
        ]
    );
    only(&report, "OverlappingBlocks");
    only(&report, "BlockNotMatchingPool");
}

#[tokio::test]
async fn a_bound_pod_the_controller_refused_is_reported_with_its_reason() {
    let c = Cluster::with_general_pool().await;
    c.pool(
        ippool("dmz", "192.168.0.0/24"),
        Some(("False", "OutsidePodCIDR")),
    )
    .await;
    let refused = c
        .pod(
            pod("probe")
                .in_ns("web")
                .annotated("cni.projectcalico.org/ipv4pools", r#"["dmz"]"#),
        )
        .await;
    let error = "pod web/probe: annotation cni.projectcalico.org/ipv4pools on the pod names pool dmz, which is not allocatable (OutsidePodCIDR)";
    c.annotate(
        &refused,
        &Assignment {
            error: Some(error.into()),
            ..Default::default()
        },
    )
    .await;
    // A finished pod without an address is not waiting for one.
    let done = c.pod(pod("done").in_ns("web")).await;
    c.set_phase(&done, "Succeeded").await;

    let run = c.run(&["check", "-o", "json"]).await;
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    let kinds: Vec<&str> = problems(&report)
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["PoolNotAllocatable", "PodWithoutAddress"],
        "{report:#}"
    );
    let waiting = only(&report, "PodWithoutAddress");
    assert_eq!(waiting["pod"], "probe");
    assert_eq!(waiting["node"], "node-1");
    assert_eq!(waiting["error"], error);
    assert!(
        waiting["message"]
            .as_str()
            .unwrap()
            .ends_with("names pool dmz, which is not allocatable (OutsidePodCIDR)"),
        "{waiting:#}"
    );
    assert_eq!(only(&report, "PoolNotAllocatable")["pool"], "dmz");
}

#[tokio::test]
async fn a_pod_bound_a_moment_ago_is_a_note_not_a_problem() {
    let c = Cluster::with_general_pool().await;
    c.pod(pod("new").in_ns("web")).await;
    let run = c.run(&["check", "-o", "json"]).await;
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["notes"][0]["kind"], "PodWaiting");
    assert_eq!(report["notes"][0]["pod"], "new");
}

#[tokio::test]
async fn a_parked_record_is_a_note_release_leaves_alone_and_a_reserved_holder_a_problem() {
    let (c, a) = Cluster::with_kept_addresses().await;
    let run = c.run(&["check", "-o", "json"]).await;
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    let kinds = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|f| f["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    // No leak: the parked record belongs to no pod, and the released address is free.
    assert_eq!(
        kinds(&report["problems"]),
        ["ReservedAddressHeld"],
        "{report:#}"
    );
    assert_eq!(
        kinds(&report["notes"]),
        ["ParkedStickyAddress"],
        "{report:#}"
    );
    let held = only(&report, "ReservedAddressHeld");
    assert_eq!(held["address"], "10.244.0.0");
    assert_eq!(held["handle"], a.metadata.uid.clone().unwrap());
    assert_eq!(
        held["reservedBy"],
        serde_json::json!([{"by": "IPReservation", "name": "appliances", "range": "10.244.0.0/32"}])
    );
    let parked = &report["notes"][0];
    assert_eq!(parked["address"], "10.244.0.5");
    assert_eq!(parked["handle"], "sts:sts-uid/db-0");
    assert_eq!(parked["statefulSetUid"], "sts-uid");
    assert_eq!(parked["statefulSet"], "db");
    assert_eq!(parked["ordinal"], 0);
    assert!(!run.stdout.contains("10.244.0.7"), "{}", run.stdout);

    let text = c.run(&["check"]).await;
    assert!(
        text.stdout
            .contains("  ParkedStickyAddress: 10.244.0.5 kept for web/db-0\n")
            && text
                .stdout
                .contains("  ReservedAddressHeld: 10.244.0.0 held by web/a\n"),
        "{}",
        text.stdout
    );

    // release never frees the parked record from a report: not from check's (a note), nor
    // from one that lists it as a leak.
    let held_5 = |spec: api::IPAMBlockSpec| spec.holders.contains_key("5");
    let dir = tempfile::tempdir().unwrap();
    let from_check = dir.path().join("check.json");
    std::fs::write(&from_check, &run.stdout).unwrap();
    let release = c
        .run(&["release", "--from-report", from_check.to_str().unwrap()])
        .await;
    assert_eq!(release.status, 0, "{}{}", release.stdout, release.stderr);
    assert!(held_5(c.block_spec("10-244-0-0-26").await));
    let mut forged = report.clone();
    let mut leak = parked.clone();
    leak["kind"] = "LeakedAllocation".into();
    leak["podState"] = "NotFound".into();
    forged["problems"] = serde_json::json!([leak]);
    let forged_path = dir.path().join("forged.json");
    std::fs::write(&forged_path, forged.to_string()).unwrap();
    let release = c
        .run(&[
            "release",
            "--from-report",
            forged_path.to_str().unwrap(),
            "--force",
        ])
        .await;
    assert_eq!(release.status, 0, "{}{}", release.stdout, release.stderr);
    assert!(
        release.stderr.contains("never released from a report"),
        "{}",
        release.stderr
    );
    assert!(held_5(c.block_spec("10-244-0-0-26").await));

    // By address: refused, unless --force.
    let refused = c.run(&["release", "--ip", "10.244.0.5"]).await;
    assert_eq!(refused.status, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stdout.contains("parked for the next pod web/db-0"),
        "{}",
        refused.stdout
    );
    assert!(held_5(c.block_spec("10-244-0-0-26").await));
    let forced = c.run(&["release", "--ip", "10.244.0.5", "--force"]).await;
    assert_eq!(forced.status, 0, "{}{}", forced.stdout, forced.stderr);
    assert!(!held_5(c.block_spec("10-244-0-0-26").await));
}
