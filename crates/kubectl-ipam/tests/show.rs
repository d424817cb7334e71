//! `kubectl ipam show` against a real API server (envtest): counts from the blocks, the
//! controller's verdicts, `--nodes`, the three output formats, finding the cluster as kubectl
//! does, and what it says when RBAC refuses it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use envtest::ChartIdentity;
use serde_json::{Value, json};
use support::cluster::{Cluster, run};
use support::*;

/// Pools `general` (allocatable) and `dmz` (outside the pod CIDR), two blocks of general on two
/// nodes holding three addresses, and one block of a pool that does not exist.
async fn cluster() -> Cluster {
    let c = Cluster::new().await;
    c.pool(
        ippool("general", "10.244.0.0/24").block_size(26),
        Some(("True", "OK")),
    )
    .await;
    c.pool(
        ippool("dmz", "192.168.50.0/24").manual(),
        Some(("False", "OutsidePodCIDR")),
    )
    .await;
    c.block("10.244.0.0/26", "general", Some("node-1")).await;
    c.block("10.244.0.64/26", "general", Some("node-2")).await;
    c.block("10.244.9.0/28", "vanished", None).await;
    for (name, node, address) in [
        ("a", "node-1", "10.244.0.0"),
        ("b", "node-1", "10.244.0.1"),
        ("c", "node-2", "10.244.0.64"),
        ("d", "node-3", "10.244.9.3"),
    ] {
        let p = c.pod(pod(name).in_ns("web").on_node(node)).await;
        c.assign(&p, address).await;
    }
    c
}

fn pool<'a>(out: &'a Value, name: &str) -> &'a Value {
    out["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no pool {name} in {out:#}"))
}

#[tokio::test]
async fn counts_come_from_the_blocks_with_the_controllers_verdict() {
    let c = cluster().await;
    let run = c.run(&["show", "-o", "json"]).await;
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    let out = run.json();
    let general = pool(&out, "general");
    assert_eq!(general["capacity"], 256);
    assert_eq!(general["used"], 3);
    assert_eq!(general["free"], 253);
    assert_eq!(general["blocks"], 2);
    assert_eq!(general["blockSize"], 26);
    assert_eq!(general["allocatable"], true);
    assert_eq!(general["reason"], "OK");
    // The controller never wrote counts into this status: show does not rely on them.
    assert_eq!(general["statusUsed"], Value::Null);
    let dmz = pool(&out, "dmz");
    assert_eq!(dmz["allocatable"], false);
    assert_eq!(dmz["reason"], "OutsidePodCIDR");
    assert_eq!(dmz["assignmentMode"], "Manual");
    assert_eq!(dmz["used"], 0);
    assert!(
        out.get("blocks").is_none(),
        "blocks only with --nodes: {out:#}"
    );
    let notes = out["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{notes:#?}");
    assert!(
        notes[0]
            .as_str()
            .unwrap()
            .contains("pool vanished, which does not exist")
    );
}

#[tokio::test]
async fn the_table_has_one_row_per_pool_with_the_reason_of_a_refused_one() {
    let c = cluster().await;
    let run = c.run(&["show"]).await;
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    let header: Vec<&str> = run.row("NAME").split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "CIDR",
            "BLOCK",
            "MODE",
            "ALLOCATABLE",
            "CAPACITY",
            "USED",
            "RESERVED",
            "FREE",
            "BLOCKS"
        ]
    );
    let general: Vec<&str> = run.row("general").split_whitespace().collect();
    assert_eq!(
        general,
        [
            "general",
            "10.244.0.0/24",
            "/26",
            "Automatic",
            "True",
            "(OK)",
            "256",
            "3",
            "0",
            "253",
            "2"
        ]
    );
    assert!(run.row("dmz").contains("False (OutsidePodCIDR)"));
    assert_eq!(run.detail("dmz"), "pool dmz: OutsidePodCIDR");
}

#[tokio::test]
async fn nodes_lists_every_block_with_its_node_and_usage() {
    let c = cluster().await;
    let run = c.run(&["show", "--nodes", "-o", "json"]).await;
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    let blocks = &run.json()["blocks"];
    assert_eq!(
        blocks,
        &json!([
            {"node": "node-1", "block": "10-244-0-0-26", "cidr": "10.244.0.0/26", "pool": "general", "used": 2, "size": 64},
            {"node": "node-2", "block": "10-244-0-64-26", "cidr": "10.244.0.64/26", "pool": "general", "used": 1, "size": 64},
            {"node": null, "block": "10-244-9-0-28", "cidr": "10.244.9.0/28", "pool": "vanished", "used": 1, "size": 16},
        ])
    );

    let table = c.run(&["show", "--nodes"]).await;
    let row: Vec<&str> = table.row("node-1").split_whitespace().collect();
    assert_eq!(
        row,
        [
            "node-1",
            "10-244-0-0-26",
            "10.244.0.0/26",
            "general",
            "2/64"
        ]
    );
    assert!(
        table.row("(none)").ends_with("vanished  1/16"),
        "{}",
        table.stdout
    );
}

#[tokio::test]
async fn yaml_output_carries_the_same_numbers() {
    let c = cluster().await;
    let run = c.run(&["show", "-o", "yaml"]).await;
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    let out: Value = serde_saphyr::from_str(&run.stdout).unwrap();
    assert_eq!(pool(&out, "general")["used"], 3);
    assert_eq!(pool(&out, "dmz")["reason"], "OutsidePodCIDR");
}

#[tokio::test]
async fn the_kubeconfig_comes_from_kubeconfig_when_no_flag_is_given() {
    let c = cluster().await;
    let path = c.kubeconfig().to_str().unwrap().to_owned();
    let run = run(&["show", "-o", "json"], &[("KUBECONFIG", &path)]).await;
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(pool(&run.json(), "general")["used"], 3);
}

#[tokio::test]
async fn an_unreachable_server_or_missing_crds_exit_2_with_a_reason() {
    let bare = Cluster::bare().await;
    let missing = bare.run(&["show"]).await;
    assert_eq!(missing.status, 2, "{}{}", missing.stdout, missing.stderr);
    assert!(
        missing.stderr.contains("CRDs installed"),
        "{}",
        missing.stderr
    );

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    let text = std::fs::read_to_string(bare.kubeconfig()).unwrap();
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = bare.plane.url();
    assert!(text.contains(url), "{text}");
    std::fs::write(
        &kubeconfig,
        text.replace(url, &format!("https://127.0.0.1:{port}")),
    )
    .unwrap();
    let down = run(&["show", "--kubeconfig", kubeconfig.to_str().unwrap()], &[]).await;
    assert_eq!(down.status, 2, "{}{}", down.stdout, down.stderr);
    assert!(
        down.stderr.contains("cannot reach the API server"),
        "{}",
        down.stderr
    );

    let none = run(&["check", "--kubeconfig", "/nonexistent/config"], &[]).await;
    assert_eq!(none.status, 2, "{}{}", none.stdout, none.stderr);
    assert!(
        none.stderr.contains("/nonexistent/config"),
        "{}",
        none.stderr
    );
}

#[tokio::test]
async fn credentials_the_rbac_refuses_exit_2_naming_the_permissions_needed() {
    let c = cluster().await;
    // The chart's node identity (the CNI plugin's) reads blocks and pods, not pools.
    let node = c.plane.chart_identity(ChartIdentity::Node).await.unwrap();
    let run = c.run_with(&node.kubeconfig, &["show"]).await;
    assert_eq!(run.status, 2, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains(&format!(
            "User \"{}\" cannot list resource \"ippools\" in API group \"rangepool.dev\"",
            node.user
        )) && run.stderr.contains(
            "kubectl ipam needs get and list on ippools, ipamblocks, ipreservations, pods, namespaces and nodes, and patch on ipamblocks to release"
        ),
        "{}",
        run.stderr
    );
}
