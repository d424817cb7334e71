//! `kubectl ipam show` against a real API server (envtest): counts from the blocks, the
//! controller's verdicts, `--nodes`, the three output formats, finding the cluster as kubectl
//! does, and what it says when RBAC refuses it; `--ip` on held, parked, reserved, released, free
//! and outside addresses.
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

#[tokio::test]
async fn ip_says_who_holds_an_address_or_why_no_pod_does() {
    let (c, a) = Cluster::with_kept_addresses().await;
    let look = |address: &'static str| {
        let c = &c;
        async move {
            let run = c.run(&["show", "--ip", address, "-o", "json"]).await;
            assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
            run.json()
        }
    };

    let held = look("10.244.0.0").await;
    assert_eq!(held["state"], "Held");
    assert_eq!(held["pool"], "general");
    assert_eq!(held["block"], "10-244-0-0-26");
    assert_eq!(held["blockNode"], "node-1");
    let holder = &held["holders"][0];
    assert_eq!(holder["namespace"], "web");
    assert_eq!(holder["pod"], "a");
    assert_eq!(holder["uid"], a.metadata.uid.clone().unwrap());
    assert_eq!(holder["node"], "node-1");
    // No scheduler binds it here: since its creation.
    assert_eq!(
        holder["since"],
        a.metadata.creation_timestamp.clone().unwrap().0.to_string()
    );
    assert_eq!(
        held["reservedBy"],
        json!([{"by": "IPReservation", "name": "appliances", "range": "10.244.0.0/32"}])
    );

    let parked = look("10.244.0.5").await;
    assert_eq!(parked["state"], "Parked");
    assert_eq!(
        parked["parked"],
        json!({"namespace": "web", "pod": "db-0", "statefulSetUid": "sts-uid", "statefulSet": "db"})
    );
    assert_eq!(parked["holders"], json!([]));

    let cooling = look("10.244.0.7").await;
    assert_eq!(cooling["state"], "CoolingDown");
    let released: k8s_openapi::jiff::Timestamp =
        cooling["released"].as_str().unwrap().parse().unwrap();
    let ago = k8s_openapi::jiff::Timestamp::now().as_second() - released.as_second();
    assert!(
        (55..120).contains(&ago),
        "released {ago} s ago: {cooling:#}"
    );

    let reserved = look("10.244.0.9").await;
    assert_eq!(reserved["state"], "Reserved");
    assert_eq!(reserved["reservedBy"][0]["name"], "appliances");

    assert_eq!(look("10.244.0.20").await["state"], "Free");
    assert_eq!(look("10.99.0.1").await["state"], "NotInPool");

    // The table: one row, the sentence under it; YAML carries the same object.
    let table = c.run(&["show", "--ip", "10.244.0.0"]).await;
    assert_eq!(table.status, 0, "{}", table.stderr);
    let row: Vec<&str> = table.row("10.244.0.0").split_whitespace().collect();
    assert_eq!(
        row[..7],
        [
            "10.244.0.0",
            "Held",
            "(Running)",
            "web/a",
            "node-1",
            "general",
            "10-244-0-0-26"
        ],
        "{}",
        table.stdout
    );
    assert!(
        table
            .detail("10.244.0.0")
            .contains("reserved now by IPReservation appliances"),
        "{}",
        table.stdout
    );
    let yaml = c.run(&["show", "--ip", "10.244.0.5", "-o", "yaml"]).await;
    let yaml: Value = serde_saphyr::from_str(&yaml.stdout).unwrap();
    assert_eq!(yaml, parked);

    // --ip is one address: --nodes does not go with it.
    let both = c.run(&["show", "--ip", "10.244.0.0", "--nodes"]).await;
    assert_eq!(both.status, 2, "{}{}", both.stdout, both.stderr);
}

#[tokio::test]
async fn reservations_are_listed_and_counted_in_their_pools() {
    let (c, _) = Cluster::with_kept_addresses().await;
    let run = c.run(&["show", "-o", "json"]).await;
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    let out = run.json();
    let general = pool(&out, "general");
    // Two reserved, two used (web/a and the parked record).
    assert_eq!(
        (&general["reserved"], &general["used"], &general["free"]),
        (&json!(2), &json!(2), &json!(252))
    );
    assert_eq!(
        out["reservations"],
        json!([{"name": "appliances", "ranges": ["10.244.0.0", "10.244.0.9"], "invalid": [],
                "pools": [{"pool": "general", "reserved": 2}]}])
    );
    let table = c.run(&["show"]).await;
    assert!(
        table.row("appliances").split_whitespace().eq([
            "appliances",
            "general:",
            "2",
            "10.244.0.0,",
            "10.244.0.9"
        ]),
        "{}",
        table.stdout
    );
}
