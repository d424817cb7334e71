//! Watch over the wire: events from a resourceVersion, synthetic ADDED, bookmarks, streaming
//! lists, 410 Gone, timeouts, selector transitions, many watchers.

use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use rangepool_testserver::{Config, TestServer};
use serde_json::json;

use crate::common::*;

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
}

async fn next<K: Clone + std::fmt::Debug>(
    s: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<K>>> + Unpin),
) -> WatchEvent<K> {
    tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .expect("event in time")
        .expect("stream open")
        .expect("event")
}

fn kind<K>(e: &WatchEvent<K>) -> &'static str {
    match e {
        WatchEvent::Added(_) => "ADDED",
        WatchEvent::Modified(_) => "MODIFIED",
        WatchEvent::Deleted(_) => "DELETED",
        WatchEvent::Bookmark(_) => "BOOKMARK",
        WatchEvent::Error(_) => "ERROR",
    }
}

#[tokio::test]
async fn watch_from_a_resource_version_and_from_zero() {
    let (_server, client) = server().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let a = cms
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let rv = a.metadata.resource_version.clone().unwrap();
    let mut from_rv = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let mut from_zero = cms
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .unwrap();
    cms.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .unwrap();
    cms.delete("a", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(kind(&next(&mut from_rv).await));
    }
    assert_eq!(seen, ["MODIFIED", "ADDED", "DELETED"]);
    let first = next(&mut from_zero).await;
    assert!(
        matches!(&first, WatchEvent::Added(c) if c.metadata.name.as_deref() == Some("a")),
        "synthetic ADDED first"
    );
    let mut rest = Vec::new();
    for _ in 0..3 {
        rest.push(kind(&next(&mut from_zero).await));
    }
    assert_eq!(rest, ["MODIFIED", "ADDED", "DELETED"]);
}

#[tokio::test]
async fn deleted_event_carries_a_new_resource_version() {
    let (_server, client) = server().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let a = cms
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let rv = a.metadata.resource_version.clone().unwrap();
    let mut w = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    cms.delete("a", &DeleteParams::default()).await.unwrap();
    match next(&mut w).await {
        WatchEvent::Deleted(c) => assert!(
            c.metadata.resource_version.unwrap().parse::<u64>().unwrap()
                > rv.parse::<u64>().unwrap()
        ),
        e => panic!("{e:?}"),
    }
}

#[tokio::test]
async fn too_old_resource_version_gets_410_gone() {
    let (server, client) = server().await;
    server.set_history_limit(2);
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let a = cms
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    for i in 0..4 {
        cms.create(&PostParams::default(), &cm(&format!("x{i}"), json!({})))
            .await
            .unwrap();
    }
    let mut w = cms
        .watch(
            &WatchParams::default(),
            a.metadata.resource_version.as_ref().unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    match next(&mut w).await {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        e => panic!("expected 410, got {e:?}"),
    }
    // a recent enough resourceVersion still works
    let now = server.resource_version().to_string();
    let mut ok = cms
        .watch(&WatchParams::default(), &now)
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &cm("late", json!({})))
        .await
        .unwrap();
    assert_eq!(kind(&next(&mut ok).await), "ADDED");
}

#[tokio::test]
async fn bookmarks_and_streaming_list_initial_events() {
    let server = TestServer::start_with(Config {
        bookmark_interval: Duration::from_millis(100),
        ..Config::default()
    })
    .await
    .unwrap();
    let client = server.client().unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    cms.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let rv = server.resource_version();
    let mut w = cms
        .watch(&WatchParams::default(), &rv.to_string())
        .await
        .unwrap()
        .boxed();
    match next(&mut w).await {
        WatchEvent::Bookmark(b) => assert_eq!(b.metadata.resource_version, rv.to_string()),
        e => panic!("{e:?}"),
    }
    let mut stream = cms
        .watch(&WatchParams::streaming_lists(), "0")
        .await
        .unwrap()
        .boxed();
    assert!(matches!(next(&mut stream).await, WatchEvent::Added(_)));
    match next(&mut stream).await {
        WatchEvent::Bookmark(b) => {
            assert_eq!(
                b.metadata
                    .annotations
                    .get("k8s.io/initial-events-end")
                    .map(String::as_str),
                Some("true")
            );
            assert_eq!(b.metadata.resource_version, rv.to_string());
        }
        e => panic!("{e:?}"),
    }
}

#[tokio::test]
async fn timeout_seconds_ends_the_stream() {
    let (_server, client) = server().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let mut w = cms
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap()
        .boxed();
    let ended = tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("stream ended in time");
    assert!(ended.is_none());
}

#[tokio::test]
async fn selector_transitions_become_added_and_deleted() {
    let (_server, client) = server().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let a = cms
        .create(&PostParams::default(), &cm("a", json!({"sel": "yes"})))
        .await
        .unwrap();
    let rv = a.metadata.resource_version.unwrap();
    let mut w = cms
        .watch(&WatchParams::default().labels("sel=yes"), &rv)
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &cm("other", json!({"sel": "no"})))
        .await
        .unwrap();
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"sel": "no"}}})),
    )
    .await
    .unwrap();
    assert_eq!(
        kind(&next(&mut w).await),
        "DELETED",
        "leaving the selection"
    );
    cms.patch(
        "other",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"sel": "yes"}}})),
    )
    .await
    .unwrap();
    match next(&mut w).await {
        WatchEvent::Added(c) => assert_eq!(c.metadata.name.as_deref(), Some("other")),
        e => panic!("{e:?}"),
    }
}

#[tokio::test]
async fn field_selector_watch_on_node_name() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::all(client.clone());
    let mut w = pods
        .watch(&WatchParams::default().fields("spec.nodeName=n1"), "0")
        .await
        .unwrap()
        .boxed();
    create_pod(&client, pod("elsewhere").on_node("n2").build()).await;
    create_pod(&client, pod("here").on_node("n1").build()).await;
    match next(&mut w).await {
        WatchEvent::Added(p) => assert_eq!(p.metadata.name.as_deref(), Some("here")),
        e => panic!("{e:?}"),
    }
}

#[tokio::test]
async fn many_concurrent_watchers_all_see_the_change() {
    let (server, client) = server().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let rv = server.resource_version().to_string();
    let mut streams = Vec::new();
    for _ in 0..40 {
        streams.push(
            cms.watch(&WatchParams::default(), &rv)
                .await
                .unwrap()
                .boxed(),
        );
    }
    cms.create(&PostParams::default(), &cm("x", json!({})))
        .await
        .unwrap();
    let kinds: Vec<&str> = futures::future::join_all(
        streams
            .iter_mut()
            .map(|s| async move { kind(&next(s).await) }),
    )
    .await;
    assert_eq!(kinds.len(), 40);
    assert!(kinds.iter().all(|k| *k == "ADDED"));
}

#[tokio::test]
async fn raw_watch_lines_are_newline_delimited_json() {
    let (_server, client) = server().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    cms.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let req = http::Request::get("/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1")
        .body(vec![])
        .unwrap();
    let lines: Vec<String> = client
        .request_stream(req)
        .await
        .unwrap()
        .lines()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(lines.len(), 1);
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["type"], "ADDED");
    assert_eq!(v["object"]["metadata"]["name"], "a");
}

#[tokio::test]
async fn list_options_are_validated_like_the_real_server() {
    let (_server, client) = server().await;
    for path in [
        "/api/v1/namespaces/default/configmaps?resourceVersionMatch=NotOlderThan",
        "/api/v1/namespaces/default/configmaps?resourceVersion=0&resourceVersionMatch=Exact",
        "/api/v1/namespaces/default/configmaps?resourceVersion=1&resourceVersionMatch=Newest",
        "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true&allowWatchBookmarks=true",
    ] {
        let (code, body) = raw(&client, "GET", path, "application/json", "").await;
        assert_eq!(code, 422, "{path}: {body}");
        assert!(body.contains("ListOptions.meta.k8s.io"), "{body}");
    }
    let (code, _) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/default/configmaps?resourceVersion=0&resourceVersionMatch=NotOlderThan",
        "application/json",
        "",
    )
    .await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn legacy_watch_path_for_one_object() {
    let (_server, client) = server().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    cms.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .unwrap();
    let req = http::Request::get("/api/v1/watch/namespaces/default/configmaps/b?timeoutSeconds=1")
        .body(vec![])
        .unwrap();
    let lines: Vec<String> = client
        .request_stream(req)
        .await
        .unwrap()
        .lines()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(lines.len(), 1);
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["object"]["metadata"]["name"], "b");
}
