//! The seed how-to, literally: pool annotations on pods and namespaces, precedence, and
//! "fixed at creation".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;

const POOLS: &str = "cni.projectcalico.org/ipv4pools";

async fn cluster_with_two_pools() -> Cluster {
    let c = Cluster::new().await;
    c.node("node-1", &[]).await;
    c.pool("default-range", spec("10.244.128.0/17")).await;
    c.pool("pool-1", manual("10.244.1.0/24")).await;
    c.pool("pool-2", manual("10.244.2.0/24")).await;
    c
}

#[tokio::test]
async fn a_pod_annotated_with_pool_names_gets_an_address_from_those_pools() {
    let c = cluster_with_two_pools().await;
    c.namespace("apps", &[], &[]).await;
    let _controller = c.controller(settings()).await;
    c.create(
        pod("web")
            .in_ns("apps")
            .on_node("node-1")
            .annotated(POOLS, "[\"pool-1\", \"pool-2\"]"),
    )
    .await;
    let got = c.wait_assigned("apps", "web").await;
    let v4 = got.ipv4.unwrap();
    assert!(in_net(v4.address, "10.244.1.0/24"), "{v4:?}");
    assert_eq!(v4.pool, "pool-1");
    // The block the annotation names records the address for this pod.
    let uid = c
        .get_pod("apps", "web")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    assert!(c.recorded().await.contains(&(v4.address, uid)));
}

#[tokio::test]
async fn a_namespace_annotation_applies_to_its_pods_and_the_pod_annotation_wins() {
    let c = cluster_with_two_pools().await;
    c.namespace("payments", &[], &[(POOLS, "[\"pool-2\"]")])
        .await;
    let _controller = c.controller(settings()).await;
    c.create(pod("batch").in_ns("payments").on_node("node-1"))
        .await;
    c.create(
        pod("override")
            .in_ns("payments")
            .on_node("node-1")
            .annotated(POOLS, "[\"pool-1\"]"),
    )
    .await;
    let batch = c.wait_assigned("payments", "batch").await.ipv4.unwrap();
    assert_eq!(batch.pool, "pool-2");
    assert!(in_net(batch.address, "10.244.2.0/24"));
    let over = c.wait_assigned("payments", "override").await.ipv4.unwrap();
    assert_eq!(over.pool, "pool-1");
    assert!(in_net(over.address, "10.244.1.0/24"));
}

#[tokio::test]
async fn without_annotations_a_pod_gets_an_automatic_pool_never_a_manual_one() {
    let c = cluster_with_two_pools().await;
    c.namespace("web", &[], &[]).await;
    let _controller = c.controller(settings()).await;
    c.create(pod("front").in_ns("web").on_node("node-1")).await;
    let got = c.wait_assigned("web", "front").await.ipv4.unwrap();
    assert_eq!(got.pool, "default-range");
}

#[tokio::test]
async fn adding_the_annotation_to_an_existing_pod_changes_nothing() {
    let c = cluster_with_two_pools().await;
    c.namespace("web", &[], &[]).await;
    let _controller = c.controller(settings()).await;
    c.create(pod("front").in_ns("web").on_node("node-1")).await;
    let before = c.wait_assigned("web", "front").await;
    c.annotate_pod("web", "front", POOLS, "[\"pool-1\"]").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pod = c.get_pod("web", "front").await.unwrap();
    let after = api::Assignment::from_annotations(kube::ResourceExt::annotations(&pod)).unwrap();
    assert_eq!(after, before);
}

#[tokio::test]
async fn unbound_and_host_network_pods_get_nothing() {
    let c = cluster_with_two_pools().await;
    c.namespace("web", &[], &[]).await;
    let _controller = c.controller(settings()).await;
    c.create(pod("pending").in_ns("web")).await;
    c.create(pod("host").in_ns("web").on_node("node-1").host_network())
        .await;
    c.create(pod("marker").in_ns("web").on_node("node-1")).await;
    // Once a later pod is assigned, the earlier ones were looked at too.
    c.wait_assigned("web", "marker").await;
    for name in ["pending", "host"] {
        let pod = c.get_pod("web", name).await.unwrap();
        assert!(
            kube::ResourceExt::annotations(&pod)
                .keys()
                .all(|k| !k.starts_with("rangepool.dev/")),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_forged_assignment_annotation_is_replaced_by_a_real_one() {
    let c = cluster_with_two_pools().await;
    c.namespace("web", &[], &[]).await;
    let _controller = c.controller(settings()).await;
    c.create(
        pod("forger")
            .in_ns("web")
            .on_node("node-1")
            .annotated(POOLS, "[\"pool-1\"]")
            .annotated(api::keys::ASSIGNED_IPV4, "10.244.1.200")
            .annotated(api::keys::ASSIGNED_POOLS, r#"{"ipv4":"pool-1"}"#)
            .annotated(api::keys::ASSIGNED_BLOCKS, r#"{"ipv4":"10-244-1-192-26"}"#),
    )
    .await;
    let uid = c
        .get_pod("web", "forger")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    let got = eventually("the forged annotation to be replaced", || async {
        let pod = c.get_pod("web", "forger").await?;
        let a = api::Assignment::from_annotations(kube::ResourceExt::annotations(&pod)).ok()?;
        let v4 = a.ipv4?;
        c.recorded()
            .await
            .contains(&(v4.address, uid.clone()))
            .then_some(v4)
    })
    .await;
    assert!(in_net(got.address, "10.244.1.0/24"));
}
