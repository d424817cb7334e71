//! DEL, CHECK, STATUS and GC: the plugin holds nothing per container, so DEL and GC need no API
//! server and change nothing; CHECK reads the block again; addresses stay the pod's.

use api::IPAMBlock;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::common::{Call, Cluster, netconf, pod, with_ipam};

const BLOCK: &str = "10.99.0.192/26";
const BLOCK_NAME: &str = "10-99-0-192-26";

async fn assigned_pod(cluster: &Cluster, name: &str, address: &str) -> Pod {
    let p = pod(name).create(cluster).await;
    cluster
        .controller()
        .assign(&p, "batch", BLOCK, address)
        .await;
    p
}

fn debug(conf: Value) -> Value {
    with_ipam(conf, "logLevel", json!("debug"))
}

#[tokio::test]
async fn del_sends_no_request_and_keeps_the_address() {
    let cluster = Cluster::start().await;
    let web = assigned_pod(&cluster, "web", "10.99.0.200").await;
    let conf = debug(netconf("1.1.0", cluster.kubeconfig()));
    Call::new("ADD", &web, "c1", &conf).run().await.ok();
    let before = cluster.block_version(BLOCK).await;

    let out = Call::new("DEL", &web, "c1", &conf).run().await;
    assert_eq!(out.ok(), None, "DEL prints nothing");
    assert_eq!(out.requests(), Vec::<&str>::new(), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("the address stays the pod's until the controller releases it"),
        "{}",
        out.stderr
    );
    assert_eq!(cluster.block_version(BLOCK).await, before);
    assert_eq!(
        cluster.holder(BLOCK, "10.99.0.200").await,
        web.uid(),
        "the address stays the pod's"
    );

    // Idempotent, for any container, and for a pod that is gone.
    Call::new("DEL", &web, "c1", &conf).run().await.ok();
    Call::new("DEL", &web, "c0", &conf).run().await.ok();
    cluster.delete_pod("shop", "web").await;
    let gone = Call::new("DEL", &web, "c1", &conf).run().await;
    assert_eq!(gone.ok(), None);
    assert_eq!(gone.requests(), Vec::<&str>::new(), "{}", gone.stderr);
}

#[tokio::test]
async fn del_succeeds_without_the_api_server_and_with_a_revoked_token() {
    let cluster = Cluster::start().await;
    let web = assigned_pod(&cluster, "web", "10.99.0.201").await;
    let conf = netconf("0.3.1", cluster.kubeconfig());
    Call::new("ADD", &web, "c1", &conf).run().await.ok();

    // Nothing listens where the kubeconfig points.
    let unreachable = debug(netconf("0.3.1", &cluster.dead_kubeconfig()));
    let out = Call::new("DEL", &web, "c1", &unreachable).run().await;
    assert_eq!(out.ok(), None, "{}", out.stderr);
    assert_eq!(out.requests(), Vec::<&str>::new());
    // The kubeconfig file is gone (the node's installer was removed).
    let absent = netconf("0.3.1", &cluster.plane.dir().join("absent.kubeconfig"));
    Call::new("DEL", &web, "c1", &absent).run().await.ok();

    // The token was revoked: every request with it is refused, as ADD shows; DEL still succeeds.
    cluster.revoke_node_token().await;
    let msg = Call::new("ADD", &web, "c2", &conf).run().await.failed(106);
    assert!(msg.contains("Unauthorized"), "{msg}");
    let out = Call::new("DEL", &web, "c1", &conf).run().await;
    assert_eq!(out.ok(), None, "{}", out.stderr);
    assert_eq!(cluster.holder(BLOCK, "10.99.0.201").await, web.uid());
}

#[tokio::test]
async fn check_verifies_the_block_still_records_the_address() {
    let cluster = Cluster::start().await;
    let web = assigned_pod(&cluster, "web", "10.99.0.202").await;
    let conf = netconf("1.0.0", cluster.kubeconfig());
    let result = Call::new("ADD", &web, "c1", &conf)
        .run()
        .await
        .ok()
        .unwrap();
    let mut checked = debug(conf.clone());
    checked["prevResult"] = result;
    let before = cluster.block_version(BLOCK).await;

    let out = Call::new("CHECK", &web, "c1", &checked).run().await;
    assert_eq!(out.ok(), None);
    assert_eq!(
        out.requests(),
        [
            "GET pods/shop/web (metadata)",
            "GET ipamblocks/10-99-0-192-26"
        ]
    );
    // No container is recorded: a new sandbox of the pod checks out as well.
    Call::new("ADD", &web, "c2", &conf).run().await.ok();
    assert_eq!(
        Call::new("CHECK", &web, "c2", &checked).run().await.ok(),
        None
    );
    assert_eq!(
        cluster.block_version(BLOCK).await,
        before,
        "CHECK wrote nothing"
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

    // The block no longer records the address (released by hand, say).
    let blocks = Api::<IPAMBlock>::all(cluster.client.clone());
    let ordinal = "10"; // 10.99.0.202 in 10.99.0.192/26
    let released = json!({"spec": {"holders": {ordinal: null}}});
    blocks
        .patch(
            BLOCK_NAME,
            &PatchParams::default(),
            &Patch::Merge(&released),
        )
        .await
        .unwrap();
    let msg = Call::new("CHECK", &web, "c1", &checked)
        .run()
        .await
        .failed(105);
    assert!(
        msg.contains("container c1 no longer holds its address"),
        "{msg}"
    );
    assert!(
        msg.contains("10.99.0.202 (pool batch, IPAMBlock 10-99-0-192-26)"),
        "{msg}"
    );
    assert!(msg.contains("no allocation for the address"), "{msg}");

    // The address recorded for another pod.
    let other = json!({"spec": {"holders": {ordinal: "shop/other another-uid 2"}}});
    blocks
        .patch(BLOCK_NAME, &PatchParams::default(), &Patch::Merge(&other))
        .await
        .unwrap();
    let msg = Call::new("CHECK", &web, "c1", &checked)
        .run()
        .await
        .failed(105);
    assert!(msg.contains("allocated to another pod"), "{msg}");

    // The block is gone.
    blocks
        .delete(BLOCK_NAME, &DeleteParams::default())
        .await
        .unwrap();
    let msg = Call::new("CHECK", &web, "c2", &checked)
        .run()
        .await
        .failed(105);
    assert!(
        msg.contains("IPAMBlock 10-99-0-192-26): the IPAMBlock does not exist"),
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

fn gc_conf(kubeconfig: &std::path::Path, valid: &[&str]) -> Value {
    let mut conf = debug(with_ipam(
        netconf("1.1.0", kubeconfig),
        "nodeName",
        json!("node-1"),
    ));
    conf["cni.dev/valid-attachments"] = valid
        .iter()
        .map(|id| json!({"containerID": id, "ifname": "eth0"}))
        .collect();
    conf
}

#[tokio::test]
async fn gc_has_nothing_to_collect_and_sends_no_request() {
    let cluster = Cluster::start().await;
    let conf = netconf("1.1.0", cluster.kubeconfig());
    let live = assigned_pod(&cluster, "live", "10.99.0.210").await;
    let stale = assigned_pod(&cluster, "stale", "10.99.0.211").await;
    for (p, container) in [(&live, "c-live"), (&stale, "c-stale")] {
        Call::new("ADD", p, container, &conf).run().await.ok();
    }
    let before = cluster.block_version(BLOCK).await;

    for kubeconfig in [cluster.kubeconfig().to_owned(), cluster.dead_kubeconfig()] {
        let out = Call::bare("GC", &gc_conf(&kubeconfig, &["c-live"]))
            .run()
            .await;
        assert_eq!(out.ok(), None, "GC prints nothing");
        assert_eq!(out.requests(), Vec::<&str>::new(), "{}", out.stderr);
        assert!(
            out.stderr
                .contains("nothing to collect: rangepool-ipam holds nothing per container (cni.dev/valid-attachments lists 1)"),
            "{}",
            out.stderr
        );
    }
    assert_eq!(cluster.block_version(BLOCK).await, before);
    assert_eq!(cluster.holder(BLOCK, "10.99.0.211").await, stale.uid());
}
