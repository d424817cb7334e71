//! DEL, CHECK, STATUS and GC: claims come and go, addresses stay the pod's.

use api::IPAMBlock;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use serde_json::{Value, json};

use crate::common::{Call, Cluster, netconf, pod, with_ipam};

const BLOCK: &str = "10.99.0.192/26";

async fn assigned_pod(cluster: &Cluster, name: &str, address: &str) -> Pod {
    let p = pod(name).create(cluster).await;
    cluster
        .controller()
        .assign(&p, "batch", BLOCK, address)
        .await;
    p
}

#[tokio::test]
async fn del_clears_only_this_containers_claim_and_keeps_the_address() {
    let cluster = Cluster::start().await;
    let web = assigned_pod(&cluster, "web", "10.99.0.200").await;
    let conf = netconf("1.1.0", cluster.kubeconfig());
    Call::new("ADD", &web, "c1", &conf).run().await.ok();

    // Another container's DEL (e.g. a stale sandbox) leaves the claim alone.
    let other = Call::new("DEL", &web, "c0", &conf).run().await;
    assert_eq!(other.ok(), None, "DEL prints nothing");
    assert_eq!(
        cluster.claim(BLOCK, "10.99.0.200").await.as_deref(),
        Some("c1")
    );

    Call::new("DEL", &web, "c1", &conf).run().await.ok();
    assert_eq!(cluster.claim(BLOCK, "10.99.0.200").await, None);
    let block = cluster.block(BLOCK).await;
    let allocation = &block.spec.allocations["8"];
    assert_eq!(
        allocation.handle,
        web.uid().unwrap(),
        "the address stays the pod's"
    );

    // Idempotent.
    let again = Call::new("DEL", &web, "c1", &conf).run().await;
    assert_eq!(again.ok(), None);
}

#[tokio::test]
async fn del_succeeds_when_pod_block_or_assignment_is_gone() {
    let cluster = Cluster::start().await;
    let conf = netconf("0.3.1", cluster.kubeconfig());

    let unassigned = pod("unassigned").create(&cluster).await;
    Call::new("DEL", &unassigned, "c1", &conf).run().await.ok();

    let web = assigned_pod(&cluster, "web", "10.99.0.201").await;
    Call::new("ADD", &web, "c1", &conf).run().await.ok();
    Api::<IPAMBlock>::all(cluster.client.clone())
        .delete("10-99-0-192-26", &DeleteParams::default())
        .await
        .unwrap();
    Call::new("DEL", &web, "c1", &conf).run().await.ok();

    cluster.delete_pod("shop", "web").await;
    let gone = Call::new("DEL", &web, "c1", &conf).run().await;
    assert_eq!(gone.ok(), None);
    assert!(gone.stderr.contains("pod is gone"), "{}", gone.stderr);
}

#[tokio::test]
async fn check_verifies_the_claim() {
    let cluster = Cluster::start().await;
    let web = assigned_pod(&cluster, "web", "10.99.0.202").await;
    let conf = netconf("1.0.0", cluster.kubeconfig());
    let result = Call::new("ADD", &web, "c1", &conf)
        .run()
        .await
        .ok()
        .unwrap();
    let mut checked = conf.clone();
    checked["prevResult"] = result;

    assert_eq!(
        Call::new("CHECK", &web, "c1", &checked).run().await.ok(),
        None
    );

    // prevResult that does not list the address.
    let mut wrong = conf.clone();
    wrong["prevResult"] = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.99.0.9/26"}]});
    let msg = Call::new("CHECK", &web, "c1", &wrong)
        .run()
        .await
        .failed(105);
    assert!(
        msg.contains("pod shop/web") && msg.contains("prevResult"),
        "{msg}"
    );

    // A new sandbox took the claim over.
    Call::new("ADD", &web, "c2", &conf).run().await.ok();
    let msg = Call::new("CHECK", &web, "c1", &checked)
        .run()
        .await
        .failed(105);
    assert!(msg.contains("10.99.0.202 (pool batch)"), "{msg}");
    assert!(msg.contains("the claim belongs to container c2"), "{msg}");

    // The block is gone.
    Api::<IPAMBlock>::all(cluster.client.clone())
        .delete("10-99-0-192-26", &DeleteParams::default())
        .await
        .unwrap();
    let msg = Call::new("CHECK", &web, "c2", &checked)
        .run()
        .await
        .failed(105);
    assert!(
        msg.contains("IPAMBlock 10-99-0-192-26 does not exist"),
        "{msg}"
    );
}

#[tokio::test]
async fn status_reports_whether_the_api_server_answers() {
    let cluster = Cluster::start().await;
    let conf = netconf("1.1.0", cluster.kubeconfig());
    let ready = Call::bare("STATUS", &conf).run().await;
    assert_eq!(ready.ok(), None, "STATUS prints nothing when ready");

    let dead = netconf("1.1.0", &cluster.dead_kubeconfig());
    let msg = Call::bare("STATUS", &dead).run().await.failed(50);
    assert!(msg.contains("not available"), "{msg}");

    let missing = netconf("1.1.0", &cluster.plane.dir().join("absent.kubeconfig"));
    let msg = Call::bare("STATUS", &missing).run().await.failed(50);
    assert!(msg.contains("absent.kubeconfig"), "{msg}");
}

fn gc_conf(cluster: &Cluster, valid: &[&str]) -> Value {
    let mut conf = with_ipam(
        netconf("1.1.0", cluster.kubeconfig()),
        "nodeName",
        json!("node-1"),
    );
    conf["cni.dev/valid-attachments"] = valid
        .iter()
        .map(|id| json!({"containerID": id, "ifname": "eth0"}))
        .collect();
    conf
}

#[tokio::test]
async fn gc_clears_stale_claims_of_this_nodes_pods_only() {
    let cluster = Cluster::start().await;
    let conf = netconf("1.1.0", cluster.kubeconfig());
    let live = assigned_pod(&cluster, "live", "10.99.0.210").await;
    let stale = assigned_pod(&cluster, "stale", "10.99.0.211").await;
    let elsewhere = pod("elsewhere").on_node("node-2").create(&cluster).await;
    cluster
        .controller()
        .assign(&elsewhere, "batch", BLOCK, "10.99.0.212")
        .await;
    for (p, container) in [
        (&live, "c-live"),
        (&stale, "c-stale"),
        (&elsewhere, "c-other"),
    ] {
        Call::new("ADD", p, container, &conf).run().await.ok();
    }

    let out = Call::bare("GC", &gc_conf(&cluster, &["c-live"]))
        .run()
        .await;
    assert_eq!(out.ok(), None, "GC prints nothing");
    assert!(
        out.stderr.contains("1 stale claims cleared"),
        "{}",
        out.stderr
    );
    assert_eq!(
        cluster.claim(BLOCK, "10.99.0.210").await.as_deref(),
        Some("c-live")
    );
    assert_eq!(cluster.claim(BLOCK, "10.99.0.211").await, None);
    assert_eq!(
        cluster.claim(BLOCK, "10.99.0.212").await.as_deref(),
        Some("c-other"),
        "another node's runtime decides about its containers"
    );
    assert_eq!(
        cluster.block(BLOCK).await.spec.allocations.len(),
        3,
        "no address freed"
    );

    // Nothing left to do.
    let again = Call::bare("GC", &gc_conf(&cluster, &["c-live"]))
        .run()
        .await;
    assert_eq!(again.ok(), None);
    assert!(
        again.stderr.contains("0 stale claims cleared"),
        "{}",
        again.stderr
    );
}
