//! ADD: the assignment is read, checked against the block by reading it, and returned; nothing
//! is written. Everything else is refused with a message naming the pod.

use std::time::{Duration, Instant};

use api::{IPAMBlock, IPAMBlockSpec, keys};
use envtest::faults::FailWrites;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use rangepool_cni::CniVersion;
use serde_json::json;

use crate::common::{Call, Cluster, netconf, pod, with_ipam};

const BLOCK: &str = "10.99.0.128/26";

#[tokio::test]
async fn add_returns_the_recorded_address_and_writes_nothing() {
    let cluster = Cluster::start().await;
    let web = pod("web").create(&cluster).await;
    cluster
        .controller()
        .assign(&web, "payments", BLOCK, "10.99.0.130")
        .await;
    let before = cluster.block_version(BLOCK).await;
    let conf = with_ipam(
        netconf("1.1.0", cluster.kubeconfig()),
        "logLevel",
        json!("debug"),
    );

    let out = Call::new("ADD", &web, "sandbox-1", &conf).run().await;
    let reply = out.ok().expect("ADD prints a result");
    // Two reads: the pod, then the block its annotation names.
    assert_eq!(
        out.requests(),
        [
            "GET pods/shop/web (metadata)",
            "GET ipamblocks/10-99-0-128-26"
        ]
    );
    assert_eq!(
        reply,
        json!({"cniVersion": "1.1.0", "ips": [{"address": "10.99.0.130/26"}]})
    );
    assert_eq!(
        cluster.block_version(BLOCK).await,
        before,
        "the block is unchanged"
    );
    assert!(
        out.stderr
            .contains("verified 10.99.0.130 (pool payments, IPAMBlock 10-99-0-128-26)"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn result_format_follows_every_declared_version() {
    let cluster = Cluster::start().await;
    for (i, version) in CniVersion::ALL.into_iter().enumerate() {
        let p = pod(&format!("web-{i}")).create(&cluster).await;
        let address = format!("10.99.0.{}", 130 + i);
        cluster
            .controller()
            .assign(&p, "payments", BLOCK, &address)
            .await;
        let conf = with_ipam(
            netconf(version.as_str(), cluster.kubeconfig()),
            "prefix",
            json!({"ipv4": 24}),
        );
        let conf = with_ipam(conf, "gateway", json!({"ipv4": "10.99.0.1"}));
        let reply = Call::new("ADD", &p, &format!("c{i}"), &conf)
            .run()
            .await
            .ok()
            .unwrap();
        let mut ip = json!({"address": format!("{address}/24"), "gateway": "10.99.0.1"});
        if version.ips_carry_version() {
            ip["version"] = json!("4");
        }
        assert_eq!(
            reply,
            json!({"cniVersion": version.as_str(), "ips": [ip]}),
            "{version}"
        );
    }
}

#[tokio::test]
async fn repeating_add_is_idempotent_and_a_new_sandbox_gets_the_same_address() {
    let cluster = Cluster::start().await;
    let web = pod("web").create(&cluster).await;
    cluster
        .controller()
        .assign(&web, "payments", BLOCK, "10.99.0.140")
        .await;
    let before = cluster.block_version(BLOCK).await;
    let conf = netconf("1.0.0", cluster.kubeconfig());
    let first = Call::new("ADD", &web, "sandbox-1", &conf).run().await;
    let again = Call::new("ADD", &web, "sandbox-1", &conf).run().await;
    assert_eq!(first.ok(), again.ok());
    let restarted = Call::new("ADD", &web, "sandbox-2", &conf).run().await;
    assert_eq!(restarted.addresses(), ["10.99.0.140/26"]);
    assert_eq!(
        cluster.block_version(BLOCK).await,
        before,
        "no ADD wrote the block"
    );
    let block = cluster.block(BLOCK).await;
    assert_eq!(block.spec.allocated(), 1, "no allocation was added");
}

#[tokio::test]
async fn forged_annotations_are_refused() {
    let cluster = Cluster::start().await;
    let ctl = cluster.controller();
    let victim = pod("victim").create(&cluster).await;
    ctl.assign(&victim, "payments", BLOCK, "10.99.0.150").await;
    // The wrong block: its name implies the range 10.99.1.128/26, and it records the pod's UID
    // at the address's ordinal, but it is another range.
    let mover = pod("mover").create(&cluster).await;
    let mut record = ctl.allocate(&mover, "payments", BLOCK, "10.99.0.160").await;
    let mut spec: IPAMBlockSpec = cluster.block(BLOCK).await.spec;
    spec.cidr = "10.97.0.128/26".into();
    Api::<IPAMBlock>::all(cluster.client.clone())
        .create(
            &PostParams::default(),
            &IPAMBlock::new("10-99-1-128-26", spec),
        )
        .await
        .unwrap();
    record.address = "10.99.1.160".parse().unwrap();
    record.block = "10-99-1-128-26".into();
    let forged_move = api::Assignment {
        ipv4: Some(record),
        ..Default::default()
    };
    ctl.annotate(&mover, &forged_move).await;
    let conf = netconf("1.1.0", cluster.kubeconfig());
    let forged = |name: &str, address: &str, block: &str| {
        pod(name)
            .annotated(keys::ASSIGNED_IPV4, address)
            .annotated(keys::ASSIGNED_POOLS, r#"{"ipv4":"payments"}"#)
            .annotated(keys::ASSIGNED_BLOCKS, &format!(r#"{{"ipv4":"{block}"}}"#))
    };
    let before = (
        cluster.block_version(BLOCK).await,
        cluster.block_version("10.99.1.128/26").await,
    );

    // Another pod's address, in a real block: the block records another pod's UID.
    let thief = forged("thief", "10.99.0.150", "10-99-0-128-26")
        .create(&cluster)
        .await;
    let msg = Call::new("ADD", &thief, "t1", &conf)
        .run()
        .await
        .failed(101);
    assert!(msg.contains("pod shop/thief"), "{msg}");
    assert!(msg.contains("10.99.0.150 (pool payments)"), "{msg}");
    assert!(msg.contains("IPAMBlock 10-99-0-128-26"), "{msg}");
    assert!(msg.contains("allocated to another pod"), "{msg}");

    // A free address of a real block: the block does not record it for the pod.
    let squatter = forged("squatter", "10.99.0.151", "10-99-0-128-26")
        .create(&cluster)
        .await;
    let msg = Call::new("ADD", &squatter, "s1", &conf)
        .run()
        .await
        .failed(101);
    assert!(msg.contains("no allocation for the address"), "{msg}");

    // A block that does not exist, and an address outside the named block.
    let nowhere = forged("nowhere", "10.98.0.5", "10-98-0-0-26")
        .create(&cluster)
        .await;
    let msg = Call::new("ADD", &nowhere, "n1", &conf)
        .run()
        .await
        .failed(101);
    assert!(msg.contains("the IPAMBlock does not exist"), "{msg}");
    let outside = forged("outside", "10.99.1.5", "10-99-0-128-26")
        .create(&cluster)
        .await;
    let msg = Call::new("ADD", &outside, "o1", &conf)
        .run()
        .await
        .failed(101);
    assert!(msg.contains("outside the block's range"), "{msg}");

    // The wrong block.
    let msg = Call::new("ADD", &mover, "m1", &conf)
        .run()
        .await
        .failed(101);
    assert!(
        msg.contains("the block's range is 10.97.0.128/26, not 10.99.1.128/26"),
        "{msg}"
    );

    // No call wrote anything: the victim keeps its address, and no record was added.
    let after = (
        cluster.block_version(BLOCK).await,
        cluster.block_version("10.99.1.128/26").await,
    );
    assert_eq!(after, before);
    assert_eq!(cluster.holder(BLOCK, "10.99.0.150").await, victim.uid());
    assert_eq!(cluster.block(BLOCK).await.spec.allocated(), 2);
}

#[tokio::test]
async fn another_pod_of_the_same_name_is_refused() {
    let cluster = Cluster::start().await;
    let web = pod("web").create(&cluster).await;
    cluster
        .controller()
        .assign(&web, "payments", BLOCK, "10.99.0.160")
        .await;
    let conf = netconf("1.1.0", cluster.kubeconfig());
    let args = "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web;K8S_POD_UID=0000-stale";
    let out = Call::new("ADD", &web, "c1", &conf)
        .env("CNI_ARGS", args)
        .run()
        .await;
    let msg = out.failed(103);
    assert!(
        msg.contains("pod shop/web") && msg.contains("0000-stale"),
        "{msg}"
    );
}

#[tokio::test]
async fn the_controllers_error_fails_at_once() {
    let cluster = Cluster::start().await;
    let web = pod("web").create(&cluster).await;
    let message = "pool \"gold\" does not exist (pod annotation cni.projectcalico.org/ipv4pools)";
    cluster.controller().fail(&web, message).await;
    let conf = with_ipam(netconf("1.1.0", cluster.kubeconfig()), "timeout", json!(30));
    let out = Call::new("ADD", &web, "c1", &conf).run().await;
    let msg = out.failed(100);
    assert!(
        msg.contains("pod shop/web") && msg.contains(message),
        "{msg}"
    );
    assert!(
        out.elapsed < Duration::from_secs(15),
        "did not wait: {:?}",
        out.elapsed
    );
}

#[tokio::test]
async fn the_controllers_error_is_cut_and_kept_on_one_line() {
    let cluster = Cluster::start().await;
    let web = pod("web").create(&cluster).await;
    // Whoever can write the pod's annotations can write this one too.
    let forged = format!(
        "pool \"gold\" is exhausted\n2030-01-01T00:00:00.000Z rangepool-ipam INFO ADD: verified 10.0.0.1{}",
        "x".repeat(5000)
    );
    cluster.controller().fail(&web, &forged).await;
    let conf = netconf("1.1.0", cluster.kubeconfig());
    let out = Call::new("ADD", &web, "c1", &conf).run().await;
    let msg = out.failed(100);
    assert!(!msg.contains('\n'), "{msg}");
    assert!(
        msg.contains("pool \"gold\" is exhausted\\n2030-01-01T00:00:00.000Z rangepool-ipam INFO"),
        "{msg}"
    );
    assert!(msg.ends_with("more characters)"), "{msg}");
    assert!(msg.len() < 1200, "{} characters", msg.len());
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}

#[tokio::test]
async fn no_assignment_within_the_timeout_is_try_again_later() {
    let cluster = Cluster::start().await;
    let web = pod("web").create(&cluster).await;
    let conf = with_ipam(netconf("1.1.0", cluster.kubeconfig()), "timeout", json!(1));
    let msg = Call::new("ADD", &web, "c1", &conf).run().await.failed(11);
    assert!(msg.contains("pod shop/web"), "{msg}");
    assert!(msg.contains("has not assigned an address"), "{msg}");
}

#[tokio::test]
async fn waits_for_the_assignment_written_meanwhile() {
    let cluster = Cluster::start().await;
    let faults = cluster.faults().await;
    let web = pod("web").create(&cluster).await;
    let conf = with_ipam(netconf("0.4.0", &faults.kubeconfig), "timeout", json!(20));
    let conf = with_ipam(conf, "logLevel", json!("debug"));
    let mut add = Call::new("ADD", &web, "c1", &conf).spawn().await;
    add.logged("waiting up to 20s").await;
    add.logged("request: WATCH pods/shop").await;
    // A watch broken meanwhile is re-established. The plugin logs the request before the
    // proxy has the watch open, so cut until a second watch request shows the first one ended.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        faults.proxy.drop_watches();
        if add
            .logs_within("request: WATCH pods/shop", Duration::from_millis(300))
            .await
        {
            break;
        }
        assert!(Instant::now() < deadline, "the watch was never cut");
    }
    cluster
        .controller()
        .assign(&web, "payments", BLOCK, "10.99.0.170")
        .await;
    let out = add.finish().await;
    assert_eq!(out.addresses(), ["10.99.0.170/26"], "{}", out.stderr);
    assert!(
        out.stderr.matches("request: WATCH pods/shop").count() >= 2,
        "{}",
        out.stderr
    );
    assert_eq!(
        out.requests().last(),
        Some(&"GET ipamblocks/10-99-0-128-26"),
        "the block is read once the assignment is there: {}",
        out.stderr
    );
}

#[tokio::test]
async fn a_missing_pod_and_unreadable_annotations_are_errors() {
    let cluster = Cluster::start().await;
    let conf = netconf("1.1.0", cluster.kubeconfig());
    let ghost = pod("ghost").create(&cluster).await;
    let call = Call::new("ADD", &ghost, "c1", &conf).env(
        "CNI_ARGS",
        "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=nobody;K8S_POD_UID=0000-nobody",
    );
    let msg = call.run().await.failed(102);
    assert!(msg.contains("pod shop/nobody: not found"), "{msg}");

    let broken = pod("broken")
        .annotated(keys::ASSIGNED_IPV4, "10.99.0.300")
        .create(&cluster)
        .await;
    let msg = Call::new("ADD", &broken, "c1", &conf)
        .run()
        .await
        .failed(104);
    assert!(
        msg.contains("pod shop/broken") && msg.contains(keys::ASSIGNED_IPV4),
        "{msg}"
    );
}

#[tokio::test]
async fn dual_stack_with_the_pools_prefix() {
    // The chart grants the node `get` on IPPools only for this prefix style.
    let cluster = Cluster::start_with(&["--set", "cni.prefix=pool"]).await;
    let ctl = cluster.controller();
    ctl.pool("payments", "10.99.0.128/25").await;
    ctl.pool("payments-v6", "fd00:99::/112").await;
    let web = pod("web").create(&cluster).await;
    let v4 = ctl.allocate(&web, "payments", BLOCK, "10.99.0.131").await;
    let v6 = ctl
        .allocate(&web, "payments-v6", "fd00:99::/122", "fd00:99::7")
        .await;
    let assignment = api::Assignment {
        ipv4: Some(v4),
        ipv6: Some(v6),
        error: None,
    };
    ctl.annotate(&web, &assignment).await;
    let conf = with_ipam(
        netconf("1.1.0", cluster.kubeconfig()),
        "prefix",
        json!("pool"),
    );
    let conf = with_ipam(
        conf,
        "routes",
        json!([{"dst": "0.0.0.0/0", "gw": "10.99.0.129"}, {"dst": "::/0"}]),
    );
    let conf = with_ipam(conf, "logLevel", json!("debug"));
    let out = Call::new("ADD", &web, "c1", &conf).run().await;
    assert_eq!(out.addresses(), ["10.99.0.131/25", "fd00:99::7/112"]);
    assert_eq!(
        out.json()["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "10.99.0.129"}, {"dst": "::/0"}])
    );
    // Each family's block is checked, and its pool read for the prefix.
    assert_eq!(
        out.requests(),
        [
            "GET pods/shop/web (metadata)",
            "GET ipamblocks/10-99-0-128-26",
            "GET ippools/payments",
            "GET ipamblocks/fd00-99-0-0-0-0-0-0-122",
            "GET ippools/payments-v6",
        ]
    );
}

#[tokio::test]
async fn api_trouble_is_try_again_later() {
    let cluster = Cluster::start().await;
    let web = pod("web").create(&cluster).await;
    cluster
        .controller()
        .assign(&web, "payments", BLOCK, "10.99.0.180")
        .await;
    let faults = cluster.faults().await;
    let conf = netconf("1.1.0", &faults.kubeconfig);
    faults
        .proxy
        .fail_writes(FailWrites::new("rangepool.dev", "ipamblocks", 503, 1).verbs(&["get"]));
    let msg = Call::new("ADD", &web, "c1", &conf).run().await.failed(11);
    assert!(
        msg.contains("pod shop/web") && msg.contains("could not read IPAMBlock 10-99-0-128-26"),
        "{msg}"
    );
    assert_eq!(
        faults.proxy.pending(),
        0,
        "the injected failure was handed out"
    );
    // The next try goes through.
    let again = Call::new("ADD", &web, "c1", &conf).run().await;
    assert_eq!(again.addresses(), ["10.99.0.180/26"]);

    let conf = netconf("1.1.0", &cluster.dead_kubeconfig());
    let msg = Call::new("ADD", &web, "c1", &conf).run().await.failed(11);
    assert!(
        msg.contains("pod shop/web") && msg.contains("did not answer"),
        "{msg}"
    );
}
