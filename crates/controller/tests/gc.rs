//! Garbage collection: deleted pods, finished pods, pods deleted while no controller ran, records
//! of pods that never existed, and nodes that are gone (the only place a grace period applies).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use api::{IPAMBlock, IPAMBlockSpec};
use common::*;
use kube::{Api, ResourceExt};

async fn cluster() -> Cluster {
    let c = Cluster::new().await;
    c.node("node-1", &[]).await;
    c.namespace("web", &[], &[]).await;
    c.pool("general", spec("10.244.0.0/24")).await;
    c
}

async fn uid_of(c: &Cluster, ns: &str, name: &str) -> String {
    c.get_pod(ns, name).await.unwrap().metadata.uid.unwrap()
}

async fn released(c: &Cluster, uid: &str) {
    eventually(
        &format!("the addresses of {uid} to be released"),
        || async {
            c.recorded()
                .await
                .iter()
                .all(|(_, h)| h != uid)
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_deleted_pod_loses_its_address() {
    let c = cluster().await;
    let _controller = c.controller(settings()).await;
    c.create(pod("a").in_ns("web").on_node("node-1")).await;
    c.wait_assigned("web", "a").await;
    let uid = uid_of(&c, "web", "a").await;
    c.delete_pod("web", "a").await;
    released(&c, &uid).await;
}

#[tokio::test]
async fn a_finished_pod_loses_its_annotation_then_its_address() {
    let c = cluster().await;
    let _controller = c.controller(settings()).await;
    c.create(pod("job").in_ns("web").on_node("node-1")).await;
    c.wait_assigned("web", "job").await;
    let uid = uid_of(&c, "web", "job").await;
    c.set_phase("web", "job", "Succeeded").await;
    released(&c, &uid).await;
    let pod = c.get_pod("web", "job").await.unwrap();
    assert!(
        !pod.annotations().contains_key(api::keys::ASSIGNED_IPV4),
        "a finished pod must not keep an annotation naming a released address"
    );
}

#[tokio::test]
async fn a_pod_deleted_while_the_controller_was_down_is_released_at_the_first_sweep() {
    let c = cluster().await;
    let controller = c.controller(settings()).await;
    c.create(pod("a").in_ns("web").on_node("node-1")).await;
    c.create(pod("b").in_ns("web").on_node("node-1")).await;
    c.wait_assigned("web", "a").await;
    let kept = c.wait_assigned("web", "b").await.ipv4.unwrap();
    let uid_a = uid_of(&c, "web", "a").await;
    let uid_b = uid_of(&c, "web", "b").await;
    controller.stop().await;

    // Gone before the next controller starts, so only its sweep can find the leak. A direct
    // read proves the pod gone, so no grace period is waited for (this one would outlast the
    // test).
    c.delete_pod_and_wait_gone("web", "a").await;
    let mut s = settings();
    s.leak_grace = Duration::from_secs(3600);
    let _controller = c.controller(s).await;
    released(&c, &uid_a).await;
    assert!(
        c.recorded().await.contains(&(kept.address, uid_b)),
        "the live pod keeps its address"
    );
}

#[tokio::test]
async fn an_allocation_of_a_live_pod_is_never_swept() {
    let c = cluster().await;
    let mut s = settings();
    s.leak_grace = Duration::from_millis(200);
    s.sweep_interval = Duration::from_millis(100);
    let _controller = c.controller(s).await;
    c.create(pod("a").in_ns("web").on_node("node-1")).await;
    let got = c.wait_assigned("web", "a").await.ipv4.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let uid = uid_of(&c, "web", "a").await;
    assert!(c.recorded().await.contains(&(got.address, uid)));
}

#[tokio::test]
async fn a_record_of_a_pod_that_never_existed_is_released_at_the_first_sweep() {
    let c = cluster().await;
    // A block recording an address for a pod that never existed, as a crashed writer or an
    // older installation could leave behind.
    let blocks: Api<IPAMBlock> = Api::all(c.client.clone());
    let spec = IPAMBlockSpec {
        cidr: "10.244.0.0/26".into(),
        pool: "general".into(),
        affinity: Some("node-1".into()),
        sequence_number: 1,
        holders: [("5".to_owned(), "web/ghost ghost-uid 1".to_owned())].into(),
        ..Default::default()
    };
    blocks
        .create(&Default::default(), &IPAMBlock::new("10-244-0-0-26", spec))
        .await
        .unwrap();
    let mut s = settings();
    s.leak_grace = Duration::from_secs(3600);
    let _controller = c.controller(s).await;
    released(&c, "ghost-uid").await;
}

#[tokio::test]
async fn blocks_of_a_deleted_node_lose_their_affinity_and_empty_ones_go() {
    let c = cluster().await;
    c.node("node-2", &[]).await;
    let _controller = c.controller(settings()).await;
    c.create(pod("a").in_ns("web").on_node("node-2")).await;
    c.wait_assigned("web", "a").await;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(c.client.clone());
    nodes.delete("node-2", &Default::default()).await.unwrap();
    eventually("the block to lose its affinity", || async {
        let blocks = c.blocks().await;
        (!blocks.is_empty() && blocks.iter().all(|b| b.spec.affinity.is_none())).then_some(())
    })
    .await;
    c.delete_pod("web", "a").await;
    eventually("the empty block to go back to the pool", || async {
        c.blocks().await.is_empty().then_some(())
    })
    .await;
}
