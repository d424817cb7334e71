//! Pool validation, status, the in-use finalizer and the default pool.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use api::IPPool;
use common::*;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};

const POOLS: &str = "cni.projectcalico.org/ipv4pools";

async fn condition(c: &Cluster, pool: &str) -> (String, String, String) {
    eventually(
        &format!("pool {pool} to get its Allocatable condition"),
        || async {
            let p = c.get_pool(pool).await?;
            let cond = p.allocatable()?;
            Some((
                cond.status.clone(),
                cond.reason.clone(),
                cond.message.clone(),
            ))
        },
    )
    .await
}

#[tokio::test]
async fn outside_the_pod_cidr_and_overlapping_pools_are_not_allocatable() {
    let c = Cluster::new().await;
    c.pool("good", spec("10.244.0.0/24")).await;
    c.pool("dmz", manual("192.168.50.0/24")).await;
    // Created later than "good", so "good" keeps the range.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c.pool("overlapping", spec("10.244.0.128/25")).await;
    let _controller = c.controller(settings()).await;

    assert_eq!(condition(&c, "good").await.0, "True");
    let (status, reason, message) = condition(&c, "dmz").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "OutsidePodCIDR")
    );
    assert!(message.contains("10.244.0.0/16"), "{message}");
    let (status, reason, message) = condition(&c, "overlapping").await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "CIDROverlap"));
    assert!(message.contains("good"), "{message}");

    // The events say so too.
    let events = eventually("a CIDROverlap event", || async {
        let events = c.events_about("default", "overlapping").await;
        events
            .iter()
            .any(|(r, _)| r == "CIDROverlap")
            .then_some(events)
    })
    .await;
    assert!(!events.is_empty());
}

#[tokio::test]
async fn status_counts_follow_allocations() {
    let c = Cluster::new().await;
    c.node("node-1", &[]).await;
    c.namespace("web", &[], &[]).await;
    c.pool("small", spec("10.244.0.0/24")).await;
    let _controller = c.controller(settings()).await;
    for i in 0..3 {
        c.create(pod(&format!("p{i}")).in_ns("web").on_node("node-1"))
            .await;
    }
    for i in 0..3 {
        c.wait_assigned("web", &format!("p{i}")).await;
    }
    let status = eventually("the pool's counts", || async {
        let s = c.get_pool("small").await?.status?;
        (s.allocated == Some(3)).then_some(s)
    })
    .await;
    assert_eq!(status.capacity, Some(256));
    assert_eq!(status.free, Some(253));
    assert_eq!(status.blocks, Some(1));
    assert!(status.observed_generation.is_some());
}

#[tokio::test]
async fn a_deleted_pool_in_use_waits_for_its_addresses() {
    let c = Cluster::new().await;
    c.node("node-1", &[]).await;
    c.namespace("web", &[], &[]).await;
    c.pool("going", manual("10.244.1.0/24")).await;
    let _controller = c.controller(settings()).await;
    c.create(
        pod("holder")
            .in_ns("web")
            .on_node("node-1")
            .annotated(POOLS, "[\"going\"]"),
    )
    .await;
    c.wait_assigned("web", "holder").await;
    eventually("the finalizer", || async {
        c.get_pool("going")
            .await?
            .finalizers()
            .iter()
            .any(|f| f == api::keys::FINALIZER)
            .then_some(())
    })
    .await;

    let pools: Api<IPPool> = Api::all(c.client.clone());
    pools
        .delete("going", &DeleteParams::default())
        .await
        .unwrap();
    let (status, reason, _) = eventually("the pool to be Terminating", || async {
        let p = c.get_pool("going").await?;
        let cond = p.allocatable()?;
        (cond.reason == "Terminating").then(|| {
            (
                cond.status.clone(),
                cond.reason.clone(),
                cond.message.clone(),
            )
        })
    })
    .await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Terminating"));

    // No new address comes from it while it waits.
    c.create(
        pod("late")
            .in_ns("web")
            .on_node("node-1")
            .annotated(POOLS, "[\"going\"]"),
    )
    .await;
    let error = c.wait_error("web", "late").await;
    assert!(error.contains("going"), "{error}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        c.get_pool("going").await.is_some(),
        "the pool must wait for its addresses"
    );

    c.delete_pod("web", "holder").await;
    eventually("the pool to go", || async {
        c.get_pool("going").await.is_none().then_some(())
    })
    .await;
    assert!(
        c.blocks().await.iter().all(|b| b.spec.pool != "going"),
        "its blocks went back first"
    );
}

#[tokio::test]
async fn a_default_pool_is_created_on_a_cluster_without_pools() {
    let c = Cluster::new().await;
    let mut s = settings();
    s.default_pool = true;
    let _controller = c.controller(s).await;
    let pool = eventually("the default pool", || async {
        c.get_pool("default-ipv4-ippool").await
    })
    .await;
    assert_eq!(pool.spec.cidr, "10.244.0.0/16");
}

#[tokio::test]
async fn no_default_pool_when_turned_off_or_pools_exist() {
    let c = Cluster::new().await;
    c.pool("mine", spec("10.244.0.0/24")).await;
    let mut s = settings();
    s.default_pool = true;
    let _controller = c.controller(s).await;
    condition(&c, "mine").await;
    assert_eq!(c.pools().await.len(), 1);
}

#[tokio::test]
async fn disabling_a_pool_keeps_its_addresses() {
    let c = Cluster::new().await;
    c.node("node-1", &[]).await;
    c.namespace("web", &[], &[]).await;
    c.pool("p", spec("10.244.0.0/24")).await;
    let _controller = c.controller(settings()).await;
    c.create(pod("a").in_ns("web").on_node("node-1")).await;
    let before = c.wait_assigned("web", "a").await;
    Api::<IPPool>::all(c.client.clone())
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"disabled": true}})),
        )
        .await
        .unwrap();
    eventually("PoolDisabled", || async {
        (condition(&c, "p").await.1 == "PoolDisabled").then_some(())
    })
    .await;
    let pod = c.get_pod("web", "a").await.unwrap();
    assert_eq!(
        api::Assignment::from_annotations(pod.annotations()).unwrap(),
        before
    );
    let uid = pod.metadata.uid.unwrap();
    assert!(
        c.recorded()
            .await
            .contains(&(before.ipv4.unwrap().address, uid))
    );
}
