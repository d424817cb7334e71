//! `kubectl ipam plan` end to end: the built binary on directories of manifests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;
use support::*;

const V4_POOLS: &str = "cni.projectcalico.org/ipv4pools";
const V6_POOLS: &str = "cni.projectcalico.org/ipv6pools";

fn address(v: &Value) -> IpAddr {
    v["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no address in {v:#}"))
        .parse()
        .unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// A node, a namespace and a kubeadm ConfigMap for 10.244.0.0/16: the usual background.
fn cluster() -> Dir {
    Dir::new().objects(
        "cluster.yaml",
        &[
            &kubeadm("10.244.0.0/16"),
            &node("node-1"),
            &namespace("default"),
        ],
    )
}

#[test]
fn the_example_plans_every_pod_as_its_readme_says() {
    let run = kubectl_ipam(&["plan", "-f", example_dir().to_str().unwrap(), "-o", "json"]);
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    let plan = run.json();
    assert_eq!(plan["podCIDRs"], serde_json::json!(["10.244.0.0/16"]));
    assert_eq!(plan["podCIDRSource"], "kubeadm-config");

    let batch = pod_row(&plan, "batch-1", "ipv4");
    assert_eq!(batch["pool"], "payments");
    assert!(net("10.244.8.0/24").contains(&address(batch)), "{batch}");

    let reconciler = pod_row(&plan, "reconciler", "ipv4");
    assert_eq!(reconciler["pool"], "partners");
    assert!(
        net("10.244.9.0/24").contains(&address(reconciler)),
        "{reconciler}"
    );

    let frontend = pod_row(&plan, "frontend-1", "ipv4");
    assert_eq!(frontend["pool"], "general");
    assert!(
        net("10.244.128.0/17").contains(&address(frontend)),
        "{frontend}"
    );

    let unknown = pod_row(&plan, "unknown-pool", "ipv4");
    assert_eq!(unknown["reason"], "UnknownPool");
    assert_eq!(unknown["address"], Value::Null);
    let message = unknown["message"].as_str().unwrap();
    assert!(
        message.contains("\"payment\"")
            && message.ends_with("does not exist; did you mean \"payments\"?"),
        "{message}"
    );

    let sneaky = pod_row(&plan, "sneaky", "ipv4");
    assert_eq!(sneaky["reason"], "NamespaceSelectorMismatch");
    let message = sneaky["message"].as_str().unwrap();
    assert!(
        message.contains("pool payments") && message.contains("namespaceSelector"),
        "{message}"
    );

    let probe = pod_row(&plan, "dmz-probe", "ipv4");
    assert_eq!(probe["reason"], "PoolNotAllocatable");
    let message = probe["message"].as_str().unwrap();
    assert!(
        message.contains("legacy-dmz") && message.contains("OutsidePodCIDR"),
        "{message}"
    );

    let dmz = pool_row(&plan, "legacy-dmz");
    assert_eq!(dmz["allocatable"], false);
    assert_eq!(dmz["reason"], "OutsidePodCIDR");
    for name in ["general", "payments", "partners"] {
        assert_eq!(pool_row(&plan, name)["planned"], 1, "{name}");
    }
}

#[test]
fn the_example_table_has_one_readable_row_per_pod() {
    let run = kubectl_ipam(&["plan", "-f", example_dir().to_str().unwrap()]);
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    let header = run.row("POD");
    assert!(
        header
            .split_whitespace()
            .eq(["POD", "NAMESPACE", "NODE", "POOL", "ADDRESS"]),
        "{header}"
    );
    let cells = |name: &str| -> Vec<String> {
        run.row(name)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        cells("batch-1")[..4],
        ["batch-1", "payments", "node-1", "payments"]
    );
    assert!(cells("batch-1")[4].starts_with("10.244.8."));
    assert_eq!(cells("reconciler")[3], "partners");
    assert!(cells("reconciler")[4].starts_with("10.244.9."));
    assert_eq!(
        cells("unknown-pool")[3..],
        ["no", "address:", "UnknownPool"]
    );
    assert!(run.detail("unknown-pool").contains("\"payment\""));
    assert!(run.detail("dmz-probe").contains("OutsidePodCIDR"));
    assert!(run.row("legacy-dmz").contains("no (OutsidePodCIDR)"));
    assert!(run.detail("legacy-dmz").contains("192.168.50.0/24"));
    let widest = run.stdout.lines().map(str::len).max().unwrap();
    assert!(widest <= 120, "a line of {widest} columns:\n{}", run.stdout);
}

#[test]
fn pod_cidr_flags_override_the_configmap() {
    let run = kubectl_ipam(&[
        "plan",
        "-f",
        example_dir().to_str().unwrap(),
        "--pod-cidr",
        "192.168.0.0/16",
        "-o",
        "json",
    ]);
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    let plan = run.json();
    assert_eq!(plan["podCIDRs"], serde_json::json!(["192.168.0.0/16"]));
    assert_eq!(plan["podCIDRSource"], "flags");
    assert_eq!(pool_row(&plan, "legacy-dmz")["reason"], "OK");
    assert_eq!(pool_row(&plan, "general")["reason"], "OutsidePodCIDR");
    let probe = pod_row(&plan, "dmz-probe", "ipv4");
    assert!(net("192.168.50.0/24").contains(&address(probe)), "{probe}");
}

#[test]
fn a_bad_pod_cidr_flag_is_refused_with_exit_2() {
    let run = cluster().plan(&["--pod-cidr", "10.244.0.1/16"]);
    assert_eq!(run.status, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("--pod-cidr"), "{}", run.stderr);
    assert!(run.stderr.contains("10.244.0.1/16"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}

#[test]
fn a_bad_family_flag_is_refused_with_exit_2() {
    let run = cluster().plan(&["--families", "ipv5"]);
    assert_eq!(run.status, 2);
    assert!(
        run.stderr.contains("--families") && run.stderr.contains("ipv5"),
        "{}",
        run.stderr
    );
}

#[test]
fn without_a_pod_cidr_no_pool_is_allocatable() {
    let dir = Dir::new().objects(
        "all.yaml",
        &[
            &ippool("general", "10.244.0.0/16"),
            &node("node-1"),
            &namespace("default"),
            &pod("web"),
        ],
    );
    let run = dir.plan(&["-o", "json"]);
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    let plan = run.json();
    assert_eq!(plan["podCIDRs"], serde_json::json!([]));
    assert_eq!(plan["podCIDRSource"], "unknown");
    assert_eq!(pool_row(&plan, "general")["reason"], "PodCIDRUnknown");
    // The controller's reason for a pod when the pod CIDR is unknown.
    assert_eq!(pod_row(&plan, "web", "ipv4")["reason"], "PodCIDRUnknown");

    let table = dir.plan(&[]);
    assert!(
        table.stdout.starts_with("Pod CIDRs: unknown"),
        "{}",
        table.stdout
    );
    assert!(
        table.row("general").contains("no (PodCIDRUnknown)"),
        "{}",
        table.stdout
    );
}

#[test]
fn a_bad_pod_subnet_in_the_configmap_is_exit_2_naming_the_file() {
    let run = Dir::new()
        .objects("kubeadm.yaml", &[&kubeadm("10.244.0.1/16")])
        .plan(&[]);
    assert_eq!(run.status, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("kubeadm.yaml") && run.stderr.contains("podSubnet"),
        "{}",
        run.stderr
    );
}

#[test]
fn calico_ippool_manifests_are_planned_as_they_are() {
    let calico = ippool("calico-default", "10.244.0.0/16")
        .calico()
        .block_size(26)
        .node_selector("all()")
        .field("ipipMode", "Always".into())
        .field("natOutgoing", true.into());
    let run = cluster()
        .objects("pools.yaml", &[&calico])
        .objects("pods.yaml", &[&pod("web")])
        .plan(&["-o", "json"]);
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    let plan = run.json();
    assert_eq!(pool_row(&plan, "calico-default")["reason"], "OK");
    assert_eq!(pod_row(&plan, "web", "ipv4")["pool"], "calico-default");
}

#[test]
fn calico_validation_applies_to_calico_manifests() {
    let both = ippool("both", "10.244.0.0/16")
        .calico()
        .field("ipipMode", "Always".into())
        .field("vxlanMode", "Always".into());
    let run = cluster()
        .objects("pools.yaml", &[&both])
        .plan(&["-o", "json"]);
    assert_eq!(run.status, 1);
    assert_eq!(pool_row(&run.json(), "both")["reason"], "InvalidField");
}

#[test]
fn dual_stack_pods_get_one_address_per_family() {
    let dir = Dir::new()
        .objects(
            "cluster.yaml",
            &[
                &kubeadm("10.244.0.0/16,fd00:10:244::/56"),
                &node("node-1"),
                &namespace("default").annotated(V6_POOLS, r#"["v6-b"]"#),
            ],
        )
        .objects(
            "pools.yaml",
            &[
                &ippool("v4", "10.244.0.0/16"),
                &ippool("v6-a", "fd00:10:244::/64"),
                &ippool("v6-b", "fd00:10:244:1::/64").manual(),
            ],
        )
        .objects("pods.yaml", &[&pod("web").annotated(V4_POOLS, r#"["v4"]"#)]);
    let run = dir.plan(&["-o", "json"]);
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    let plan = run.json();
    assert_eq!(plan["families"], serde_json::json!(["ipv4", "ipv6"]));
    let v4 = pod_row(&plan, "web", "ipv4");
    assert!(net("10.244.0.0/16").contains(&address(v4)), "{v4}");
    // The pod's ipv4pools does not hide its namespace's ipv6pools.
    let v6 = pod_row(&plan, "web", "ipv6");
    assert_eq!(v6["pool"], "v6-b");
    assert!(net("fd00:10:244:1::/64").contains(&address(v6)), "{v6}");

    let table = dir.plan(&[]);
    assert!(table.row("POD").contains("FAMILY"), "{}", table.stdout);
    let rows: Vec<&str> = table
        .stdout
        .lines()
        .filter(|l| l.starts_with("web "))
        .collect();
    assert_eq!(rows.len(), 2, "{}", table.stdout);
    assert!(
        rows[0].contains("IPv4") && rows[1].contains("IPv6"),
        "{rows:?}"
    );
}

#[test]
fn families_flag_limits_the_plan() {
    let run = cluster()
        .objects("pools.yaml", &[&ippool("v4", "10.244.0.0/16")])
        .objects("pods.yaml", &[&pod("web")])
        .plan(&["--families", "ipv6", "-o", "json"]);
    assert_eq!(run.status, 1);
    let plan = run.json();
    assert_eq!(plan["families"], serde_json::json!(["ipv6"]));
    assert_eq!(pod_row(&plan, "web", "ipv6")["reason"], "NoMatchingPool");
    assert_eq!(plan["pods"].as_array().unwrap().len(), 1);
}

#[test]
fn json_output_has_the_documented_shape() {
    let run = cluster()
        .objects(
            "pools.yaml",
            &[
                &ippool("general", "10.244.0.0/16"),
                &ippool("bad", "10.245.0.1/16"),
            ],
        )
        .objects(
            "pods.yaml",
            &[
                &pod("ok"),
                &pod("idle").unbound(),
                &pod("typo").annotated(V4_POOLS, r#"["nope"]"#),
            ],
        )
        .file(
            "svc.yaml",
            "apiVersion: v1\nkind: Service\nmetadata: {name: svc, namespace: default}\n",
        )
        .plan(&["-o", "json"]);
    assert_eq!(run.status, 1);
    let plan = run.json();
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    let mut top = keys(&plan);
    top.sort();
    assert_eq!(
        top,
        [
            "clean",
            "families",
            "notes",
            "podCIDRSource",
            "podCIDRs",
            "pods",
            "pools",
            "reservations",
            "skipped",
            "warnings"
        ]
    );
    assert_eq!(plan["clean"], false);

    let pods = plan["pods"].as_array().unwrap();
    assert_eq!(pods.len(), 2, "the unbound pod is skipped, not planned");
    for p in pods {
        let mut k = keys(p);
        k.sort();
        assert_eq!(
            k,
            [
                "address",
                "family",
                "message",
                "name",
                "namespace",
                "node",
                "pool",
                "reason"
            ]
        );
    }
    let ok = pod_row(&plan, "ok", "ipv4");
    assert_eq!(
        (ok["reason"].is_null(), ok["message"].is_null()),
        (true, true)
    );
    assert_eq!(ok["node"], "node-1");
    assert_eq!(ok["namespace"], "default");
    let typo = pod_row(&plan, "typo", "ipv4");
    assert_eq!(
        (typo["pool"].is_null(), typo["address"].is_null()),
        (true, true)
    );
    assert_eq!(typo["reason"], "UnknownPool");

    let general = pool_row(&plan, "general");
    for (key, want) in [
        ("cidr", Value::from("10.244.0.0/16")),
        ("blockSize", Value::from(26)),
        ("assignmentMode", Value::from("Automatic")),
        ("allocatable", Value::from(true)),
        ("reason", Value::from("OK")),
        ("capacity", Value::from(65536)),
        ("planned", Value::from(1)),
        ("reserved", Value::from(0)),
        ("blocks", Value::from(1)),
    ] {
        assert_eq!(general[key], want, "{key} in {general:#}");
    }
    assert!(general["message"].is_string());
    let bad = pool_row(&plan, "bad");
    assert_eq!(bad["reason"], "InvalidCIDR");
    assert_eq!(bad["cidr"], "10.245.0.1/16");
    assert_eq!(bad["blockSize"], Value::Null);

    let skipped = plan["skipped"].as_array().unwrap();
    let idle = skipped
        .iter()
        .find(|s| s["name"] == "default/idle")
        .unwrap();
    assert_eq!(idle["kind"], "Pod");
    assert!(
        idle["reason"].as_str().unwrap().contains("not bound"),
        "{idle}"
    );
    assert!(
        idle["file"].as_str().unwrap().ends_with("pods.yaml"),
        "{idle}"
    );
    assert!(
        skipped
            .iter()
            .any(|s| s["kind"] == "Service" && s["name"] == "default/svc")
    );
}

#[test]
fn a_tiny_pool_runs_out_and_the_last_pod_says_so() {
    let pods: Vec<PodB> = (1..=5).map(|i| pod(&format!("p{i}"))).collect();
    let pods: Vec<&dyn Manifest> = pods.iter().map(|p| p as &dyn Manifest).collect();
    let run = cluster()
        .objects(
            "pools.yaml",
            &[&ippool("tiny", "10.244.0.0/30").block_size(30)],
        )
        .objects("pods.yaml", &pods)
        .plan(&["-o", "json"]);
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    let plan = run.json();
    let mut given = Vec::new();
    for i in 1..=4 {
        let p = pod_row(&plan, &format!("p{i}"), "ipv4");
        assert_eq!(p["pool"], "tiny", "{p}");
        given.push(address(p));
    }
    given.sort();
    given.dedup();
    assert_eq!(given.len(), 4, "four different addresses: {given:?}");
    let last = pod_row(&plan, "p5", "ipv4");
    assert_eq!(last["reason"], "PoolsExhausted");
    assert!(last["message"].as_str().unwrap().contains("tiny"), "{last}");
    assert_eq!(pool_row(&plan, "tiny")["planned"], 4);
    assert_eq!(pool_row(&plan, "tiny")["reason"], "OK");
}

#[test]
fn unreadable_yaml_is_exit_2_naming_the_file() {
    let dir = cluster().file(
        "broken.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: [oops\n",
    );
    let run = dir.plan(&[]);
    assert_eq!(run.status, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("broken.yaml"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn an_object_of_the_wrong_shape_is_exit_2_naming_file_and_object() {
    let run = cluster()
        .file(
            "pools.yaml",
            "apiVersion: rangepool.dev/v1\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.244.0.0/16, blockSize: big}\n",
        )
        .plan(&[]);
    assert_eq!(run.status, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("pools.yaml") && run.stderr.contains("IPPool \"p\""),
        "{}",
        run.stderr
    );
}

#[test]
fn a_missing_directory_is_exit_2_naming_it() {
    let dir = Dir::new();
    let missing = dir.path().join("nope");
    let run = kubectl_ipam(&["plan", "-f", missing.to_str().unwrap()]);
    assert_eq!(run.status, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(missing.to_str().unwrap()),
        "{}",
        run.stderr
    );
}

#[test]
fn a_clean_plan_exits_0_and_lists_what_it_skipped() {
    let run = cluster()
        .objects(
            "pools.yaml",
            &[
                &ippool("general", "10.244.0.0/17"),
                &ippool("off", "10.244.128.0/17").disabled(),
            ],
        )
        .objects(
            "pods.yaml",
            &[
                &pod("web"),
                &pod("pending").unbound(),
                &pod("hostnet").host_network(),
                &pod("done").phase("Succeeded"),
            ],
        )
        .plan(&[]);
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.row("web").contains("general"), "{}", run.stdout);
    assert!(
        run.row("off").contains("no (PoolDisabled)"),
        "{}",
        run.stdout
    );
    for (pod, why) in [
        ("default/pending", "not bound: skipped"),
        ("default/hostnet", "host network"),
        ("default/done", "Succeeded"),
    ] {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.contains(&format!("Pod {pod}: ")) && l.contains(why)),
            "{pod}: {}",
            run.stdout
        );
    }
    assert!(
        !run.stdout.lines().any(|l| l.starts_with("pending ")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("exit status 0"), "{}", run.stdout);
}

#[test]
fn a_pod_whose_node_or_namespace_is_missing_gets_a_row_saying_so() {
    let run = cluster()
        .objects("pools.yaml", &[&ippool("general", "10.244.0.0/16")])
        .objects(
            "pods.yaml",
            &[
                &pod("lost").on_node("node-9"),
                &pod("orphan").in_ns("ghost"),
            ],
        )
        .plan(&["-o", "json"]);
    assert_eq!(run.status, 1);
    let plan = run.json();
    let lost = pod_row(&plan, "lost", "ipv4");
    assert_eq!(lost["reason"], "NodeUnknown");
    assert!(
        lost["message"].as_str().unwrap().contains("node-9"),
        "{lost}"
    );
    let orphan = pod_row(&plan, "orphan", "ipv4");
    assert_eq!(orphan["reason"], "NamespaceUnknown");
    assert!(
        orphan["message"].as_str().unwrap().contains("ghost"),
        "{orphan}"
    );
}

#[test]
fn selectors_see_the_labels_of_node_and_namespace_manifests() {
    let run = Dir::new()
        .objects(
            "cluster.yaml",
            &[
                &kubeadm("10.244.0.0/16"),
                &node("edge-1").labelled("zone", "edge"),
                &node("core-1"),
                &namespace("shop"),
            ],
        )
        .objects(
            "pools.yaml",
            &[
                &ippool("edge", "10.244.0.0/24").node_selector("zone == 'edge'"),
                &ippool("shop", "10.244.1.0/24")
                    .namespace_selector("kubernetes.io/metadata.name == 'shop'"),
            ],
        )
        .objects(
            "pods.yaml",
            &[
                &pod("a").in_ns("shop").on_node("edge-1"),
                &pod("b").in_ns("shop").on_node("core-1"),
                &pod("c").in_ns("default").on_node("core-1"),
            ],
        )
        .plan(&["-o", "json"]);
    let plan = run.json();
    // Oldest first, then by name: both match pod a; "edge" sorts first.
    assert_eq!(pod_row(&plan, "a", "ipv4")["pool"], "edge");
    assert_eq!(pod_row(&plan, "b", "ipv4")["pool"], "shop");
    // The built-in namespace default is assumed (and said so); no pool matches it on core-1.
    assert_eq!(pod_row(&plan, "c", "ipv4")["reason"], "NoMatchingPool");
    let notes = plan["notes"].as_array().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.as_str().unwrap().contains("namespace default")),
        "{notes:?}"
    );
    assert_eq!(run.status, 1);
}

#[test]
fn an_overlap_decided_by_name_says_so() {
    let dir = cluster().objects(
        "pools.yaml",
        &[
            &ippool("b-wide", "10.244.0.0/16"),
            &ippool("a-narrow", "10.244.8.0/24"),
        ],
    );
    let run = dir.plan(&["-o", "json"]);
    assert_eq!(run.status, 1);
    let plan = run.json();
    let loser = pool_row(&plan, "b-wide");
    assert_eq!(loser["reason"], "CIDROverlap");
    assert!(
        loser["note"].as_str().unwrap().contains("decided by name"),
        "{loser}"
    );
    assert_eq!(pool_row(&plan, "a-narrow")["reason"], "OK");
    assert!(dir.plan(&[]).detail("b-wide").contains("decided by name"));

    // With creation times, time decides and there is nothing to say about names.
    let run = cluster()
        .objects(
            "pools.yaml",
            &[
                &ippool("b-wide", "10.244.0.0/16").created("2024-01-01T00:00:00Z"),
                &ippool("a-narrow", "10.244.8.0/24").created("2024-06-01T00:00:00Z"),
            ],
        )
        .plan(&["-o", "json"]);
    let plan = run.json();
    assert_eq!(pool_row(&plan, "a-narrow")["reason"], "CIDROverlap");
    assert_eq!(pool_row(&plan, "a-narrow")["note"], Value::Null);
    assert_eq!(pool_row(&plan, "b-wide")["reason"], "OK");
}

#[test]
fn a_misspelled_pool_field_fails_the_plan_with_exit_2_as_kubectl_apply_would() {
    // Planned with the typo ignored, this Manual pool would look open to every namespace.
    let run = cluster()
        .objects(
            "pools.yaml",
            &[&ippool("payments", "10.244.8.0/24")
                .manual()
                .field("namespaceSelecter", serde_json::json!("team == 'payments'"))],
        )
        .plan(&[]);
    assert_eq!(run.status, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    for part in [
        "pools.yaml",
        "IPPool \"payments\"",
        "spec.namespaceSelecter",
        "namespaceSelector",
    ] {
        assert!(run.stderr.contains(part), "{part}: {}", run.stderr);
    }
}

#[test]
fn yaml_output_is_the_json_object() {
    let dir = example_dir();
    let json = kubectl_ipam(&["plan", "-f", dir.to_str().unwrap(), "-o", "json"]);
    let yaml = kubectl_ipam(&["plan", "-f", dir.to_str().unwrap(), "-o", "yaml"]);
    assert_eq!(yaml.status, json.status, "{}{}", yaml.stdout, yaml.stderr);
    let from_yaml: Value = serde_saphyr::from_str(&yaml.stdout).unwrap();
    assert_eq!(from_yaml, json.json());
}

#[test]
fn plan_and_import_calico_take_no_cluster_flags_and_the_cluster_commands_do() {
    let dir = example_dir();
    for args in [
        vec!["plan", "-f", dir.to_str().unwrap(), "--kubeconfig", "/x"],
        vec!["plan", "-f", dir.to_str().unwrap(), "--context", "prod"],
        vec!["import-calico", "-f", "-", "--kubeconfig", "/x"],
    ] {
        let run = kubectl_ipam(&args);
        assert_eq!(run.status, 2, "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains("unexpected argument"),
            "{args:?}: {}",
            run.stderr
        );
    }
    for command in ["plan", "import-calico"] {
        let help = kubectl_ipam(&[command, "--help"]);
        assert_eq!(help.status, 0, "{}", help.stderr);
        assert!(
            !help.stdout.contains("--kubeconfig") && !help.stdout.contains("--context"),
            "{command}: {}",
            help.stdout
        );
    }
    for command in ["show", "check", "release"] {
        let help = kubectl_ipam(&[command, "--help"]);
        assert_eq!(help.status, 0, "{}", help.stderr);
        assert!(
            help.stdout.contains("--kubeconfig") && help.stdout.contains("--context"),
            "{command}: {}",
            help.stdout
        );
    }
}

#[test]
fn reservations_and_asked_for_addresses_are_planned_and_unhonoured_keys_warned_about() {
    let reservation = serde_json::json!({
        "apiVersion": "projectcalico.org/v3", "kind": "IPReservation",
        "metadata": {"name": "appliances"},
        "spec": {"reservedCIDRs": ["10.244.0.0/31"]},
    });
    let run = cluster()
        .objects(
            "pools.yaml",
            &[
                &ippool("general", "10.244.0.0/24").block_size(28),
                &reservation,
            ],
        )
        .objects(
            "pods.yaml",
            &[
                &pod("auto"),
                &pod("fixed").annotated("cni.projectcalico.org/ipAddrs", r#"["10.244.0.9"]"#),
                &pod("appliance").annotated("cni.projectcalico.org/ipAddrs", r#"["10.244.0.1"]"#),
                &pod("nat").annotated("cni.projectcalico.org/floatingIPs", r#"["1.2.3.4"]"#),
            ],
        )
        .plan(&["-o", "json"]);
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    let plan = run.json();
    assert_eq!(pod_row(&plan, "auto", "ipv4")["address"], "10.244.0.2");
    assert_eq!(pod_row(&plan, "fixed", "ipv4")["address"], "10.244.0.9");
    assert_eq!(
        pod_row(&plan, "appliance", "ipv4")["reason"],
        "AddressReserved"
    );
    assert_eq!(pod_row(&plan, "nat", "ipv4")["address"], "10.244.0.3");
    assert_eq!(pool_row(&plan, "general")["reserved"], 2);
    assert_eq!(
        plan["reservations"],
        serde_json::json!([{"name": "appliances", "file": plan["reservations"][0]["file"],
                            "ranges": ["10.244.0.0/31"], "invalid": []}])
    );
    let warnings = plan["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let warning = warnings[0].as_str().unwrap();
    assert!(
        warning.contains("pod default/nat") && warning.contains("floatingIPs is not honoured"),
        "{warning}"
    );
    assert!(
        run.stderr.contains(&format!("warning: {warning}")),
        "{}",
        run.stderr
    );

    let table = cluster()
        .objects(
            "pools.yaml",
            &[&ippool("general", "10.244.0.0/24"), &reservation],
        )
        .objects("pods.yaml", &[&pod("auto")])
        .plan(&[]);
    assert_eq!(table.status, 0, "{}{}", table.stdout, table.stderr);
    assert!(
        table.row("appliances").split_whitespace().last() == Some("10.244.0.0/31"),
        "{}",
        table.stdout
    );
}
