//! Drift: a pod whose pool no longer admits it keeps its address, and the drift is reported on
//! the pod (an Event) and on the pool's status.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

#[tokio::test]
async fn a_pod_whose_namespace_stops_matching_its_pool_keeps_its_address_and_is_reported() {
    let c = Cluster::new().await;
    c.node("node-1", &[]).await;
    c.namespace("shop", &[("team", "payments")], &[]).await;
    let mut payments = spec("10.244.8.0/24");
    payments.namespace_selector = Some("team == 'payments'".into());
    c.pool("payments", payments).await;
    let _controller = c.controller(settings()).await;
    c.create(pod("web").in_ns("shop").on_node("node-1")).await;
    let got = c.wait_assigned("shop", "web").await.ipv4.unwrap();

    // The namespace is relabelled: the trusted pool no longer admits its pods.
    Api::<Namespace>::all(c.client.clone())
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "web"}}})),
        )
        .await
        .unwrap();

    let note = eventually("a Warning Event about the drift", || async {
        c.events_about("shop", "web")
            .await
            .into_iter()
            .find(|(reason, _)| reason == "SelectorMismatch")
            .map(|(_, note)| note)
    })
    .await;
    for part in [
        "pod shop/web",
        "pool payments",
        &got.address.to_string(),
        "namespaceSelector",
    ] {
        assert!(note.contains(part), "{part}: {note}");
    }
    eventually("the pool's status to count it", || async {
        let pool = c.get_pool("payments").await?;
        (pool.status?.not_admitted == Some(1)).then_some(())
    })
    .await;
    // The address stays the pod's: it is in use.
    let uid = c
        .get_pod("shop", "web")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    assert!(c.recorded().await.contains(&(got.address, uid)));

    // Labelled back: no longer counted.
    Api::<Namespace>::all(c.client.clone())
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "payments"}}})),
        )
        .await
        .unwrap();
    eventually("the count to go back to 0", || async {
        let pool = c.get_pool("payments").await?;
        (pool.status?.not_admitted == Some(0)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_record_the_controller_did_not_write_is_not_adopted() {
    use api::{IPAMBlock, IPAMBlockSpec};
    let c = Cluster::new().await;
    c.node("node-1", &[]).await;
    c.namespace("shop", &[], &[]).await;
    let mut payments = manual("10.244.8.0/24");
    payments.namespace_selector = Some("team == 'payments'".into());
    c.pool("payments", payments).await;
    c.pool("general", spec("10.244.0.0/24")).await;
    // While no controller runs, someone with write access to blocks records a trusted address
    // for a pod the trusted pool does not admit.
    let evil = c.create(pod("evil").in_ns("shop").on_node("node-1")).await;
    let uid = evil.metadata.uid.unwrap();
    let forged = IPAMBlockSpec {
        cidr: "10.244.8.0/26".into(),
        pool: "payments".into(),
        affinity: Some("node-1".into()),
        sequence_number: 1,
        holders: [("7".to_owned(), format!("shop/evil {uid} 1"))].into(),
        ..Default::default()
    };
    Api::<IPAMBlock>::all(c.client.clone())
        .create(
            &Default::default(),
            &IPAMBlock::new("10-244-8-0-26", forged),
        )
        .await
        .unwrap();

    let _controller = c.controller(settings()).await;
    let got = c.wait_assigned("shop", "evil").await.ipv4.unwrap();
    assert_eq!(got.pool, "general", "{got:?}");
    let note = eventually("a Warning Event about the record", || async {
        c.events_about("shop", "evil")
            .await
            .into_iter()
            .find(|(reason, _)| reason == "RecordNotTrusted")
            .map(|(_, note)| note)
    })
    .await;
    assert!(
        note.contains("10.244.8.7") && note.contains("payments"),
        "{note}"
    );
    eventually("the forged record to be released", || async {
        let recorded = c.recorded().await;
        (!recorded.contains(&("10.244.8.7".parse().unwrap(), uid.clone()))).then_some(())
    })
    .await;
}
