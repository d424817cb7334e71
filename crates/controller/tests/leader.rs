//! Two controllers at once: only the Lease holder writes; killing it hands over.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::ListParams;

const POOLS: &str = "cni.projectcalico.org/ipv4pools";

async fn holder(c: &Cluster) -> String {
    eventually("a Lease holder", || async {
        let lease = Api::<Lease>::namespaced(c.client.clone(), "kube-system")
            .get_opt(rangepool_controller::leader::LEASE_NAME)
            .await
            .unwrap()?;
        lease.spec?.holder_identity
    })
    .await
}

/// Identities that reported events about the pod.
async fn reporters(c: &Cluster, name: &str) -> Vec<String> {
    Api::<Event>::namespaced(c.client.clone(), "web")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reporting_instance)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_writes_and_a_standby_takes_over() {
    let c = Cluster::new().await;
    c.node("node-1", &[]).await;
    c.namespace("web", &[], &[]).await;
    c.pool("general", spec("10.244.0.0/24")).await;

    let a = c.controller_as("replica-a", settings()).await;
    // Let replica-a take the Lease before replica-b starts competing.
    assert_eq!(holder(&c).await, "replica-a");
    let b = c.controller_as("replica-b", settings()).await;

    c.create(pod("first").in_ns("web").on_node("node-1")).await;
    c.wait_assigned("web", "first").await;
    c.create(
        pod("refused-1")
            .in_ns("web")
            .on_node("node-1")
            .annotated(POOLS, "[\"nope\"]"),
    )
    .await;
    c.wait_error("web", "refused-1").await;
    let who = eventually("an event about refused-1", || async {
        let r = reporters(&c, "refused-1").await;
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert!(
        who.iter().all(|r| r == "replica-a"),
        "only the leader reports: {who:?}"
    );

    // The leader dies without releasing the Lease: the standby waits for it to expire.
    let killed = tokio::time::Instant::now();
    a.kill();
    let lease = Api::<Lease>::namespaced(c.client.clone(), "kube-system")
        .get(rangepool_controller::leader::LEASE_NAME)
        .await
        .unwrap();
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("replica-a"),
        "a killed leader cannot release its Lease"
    );
    c.create(pod("second").in_ns("web").on_node("node-1")).await;
    c.wait_assigned("web", "second").await;
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(15), "handover took {took:?}");
    assert_eq!(holder(&c).await, "replica-b");

    c.create(
        pod("refused-2")
            .in_ns("web")
            .on_node("node-1")
            .annotated(POOLS, "[\"nope\"]"),
    )
    .await;
    c.wait_error("web", "refused-2").await;
    let who = eventually("an event about refused-2", || async {
        let r = reporters(&c, "refused-2").await;
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert!(who.iter().all(|r| r == "replica-b"), "{who:?}");
    b.stop().await;
}
