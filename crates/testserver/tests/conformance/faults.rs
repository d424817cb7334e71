//! Fault injection, in-process and through the HTTP side door.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, PostParams, WatchParams};
use rangepool_testserver::FailWrites;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn failing_writes_by_resource_and_name() {
    let (server, client) = server().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    server
        .faults()
        .fail_writes(FailWrites::new("", "pods", 409, 2));
    assert_eq!(
        api_err(pods.create(&PostParams::default(), &pod("a").build()).await),
        (409, "Conflict".into())
    );
    assert_eq!(
        api_err(pods.create(&PostParams::default(), &pod("a").build()).await).0,
        409
    );
    pods.create(&PostParams::default(), &pod("a").build())
        .await
        .unwrap();
    server
        .faults()
        .fail_writes(FailWrites::new("", "pods", 500, 1).named("b"));
    pods.create(&PostParams::default(), &pod("c").build())
        .await
        .unwrap();
    assert_eq!(
        api_err(pods.create(&PostParams::default(), &pod("b").build()).await).0,
        500
    );
    assert!(pods.get("a").await.is_ok(), "reads are not failed");
    // only updates of this pod
    server.faults().fail_writes(
        FailWrites::new("", "pods", 409, 1)
            .named("a")
            .verbs(&["update", "patch"]),
    );
    pods.delete("c", &Default::default()).await.unwrap();
    let p = json!({"metadata": {"labels": {"x": "y"}}});
    let pp = kube::api::PatchParams::default();
    assert_eq!(
        api_err(pods.patch("a", &pp, &kube::api::Patch::Merge(&p)).await).0,
        409
    );
    pods.patch("a", &pp, &kube::api::Patch::Merge(&p))
        .await
        .unwrap();
    server
        .faults()
        .fail_writes(FailWrites::new("", "pods", 429, 1));
    // kube-rs retries 429/503/504 by itself: the fault is consumed, the create succeeds
    pods.create(&PostParams::default(), &pod("d").build())
        .await
        .unwrap();
    assert_eq!(server.faults().pending(), 0);
}

#[tokio::test]
async fn side_door_over_http() {
    let (server, client) = server().await;
    let body =
        json!({"failWrites": {"group": "", "resource": "configmaps", "code": 500, "count": 1}});
    let (code, text) = raw(
        &client,
        "POST",
        "/_testserver/faults",
        "application/json",
        &body.to_string(),
    )
    .await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(server.faults().pending(), 1);
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap();
    assert_eq!(
        api_err(cms.create(&PostParams::default(), &cm).await).0,
        500
    );
    cms.create(&PostParams::default(), &cm).await.unwrap();
    raw(
        &client,
        "POST",
        "/_testserver/faults",
        "application/json",
        r#"{"delayMillis": 300}"#,
    )
    .await;
    let t = Instant::now();
    cms.get("c").await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "response delayed"
    );
    let (code, _) = raw(
        &client,
        "DELETE",
        "/_testserver/faults",
        "application/json",
        "",
    )
    .await;
    assert_eq!(code, 200);
    let (_, state) = raw(
        &client,
        "GET",
        "/_testserver/faults",
        "application/json",
        "",
    )
    .await;
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state, json!({"pendingFailures": 0, "delayMillis": 0}));
}

#[tokio::test]
async fn dropping_watches_ends_open_streams() {
    let (server, client) = server().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let mut w = cms
        .watch(
            &WatchParams::default(),
            &server.resource_version().to_string(),
        )
        .await
        .unwrap()
        .boxed();
    server.faults().drop_watches();
    let ended = tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("ended in time");
    assert!(ended.is_none());
}
