//! The harness itself on the real server: identities, RBAC, the kubelet stand-in, the proxy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use envtest::faults::FailWrites;
use envtest::{ChartIdentity, ControlPlane};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};

fn pod(name: &str, node: Option<&str>) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "app:1"}]}
    }))
    .unwrap()
}

#[tokio::test]
async fn identities_carry_the_charts_rbac_and_nothing_more() {
    let plane = ControlPlane::start().await.unwrap();
    let admin = plane.client().unwrap();
    let node: Node =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "n1"}})).unwrap();
    Api::<Node>::all(admin.clone())
        .create(&PostParams::default(), &node)
        .await
        .unwrap();

    let controller = plane
        .chart_identity(ChartIdentity::Controller)
        .await
        .unwrap();
    assert_eq!(
        controller.user,
        "system:serviceaccount:kube-system:rangepool-controller"
    );
    // The chart lets the controller read nodes and pods ...
    Api::<Node>::all(controller.client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    Api::<Pod>::all(controller.client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    // ... and not delete a node, nor read ConfigMaps.
    let denied = Api::<Node>::all(controller.client.clone())
        .delete("n1", &DeleteParams::default())
        .await;
    assert_eq!(envtest::status_code(&denied), Some(403), "{denied:?}");
    let denied = Api::<ConfigMap>::namespaced(controller.client.clone(), "default")
        .list(&ListParams::default())
        .await;
    assert_eq!(envtest::status_code(&denied), Some(403), "{denied:?}");

    let plugin = plane.chart_identity(ChartIdentity::Node).await.unwrap();
    let denied = Api::<Pod>::namespaced(plugin.client.clone(), "default")
        .create(&PostParams::default(), &pod("x", None))
        .await;
    assert_eq!(envtest::status_code(&denied), Some(403), "{denied:?}");
}

#[tokio::test]
async fn the_kubelet_stand_in_finishes_graceful_deletion() {
    let plane = ControlPlane::start().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(plane.client().unwrap(), "default");
    pods.create(&PostParams::default(), &pod("bound", Some("n1")))
        .await
        .unwrap();
    pods.delete("bound", &DeleteParams::default())
        .await
        .unwrap();
    let start = Instant::now();
    while pods.get_opt("bound").await.unwrap().is_some() {
        assert!(start.elapsed() < Duration::from_secs(20), "pod still there");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_fault_proxy_refuses_the_chosen_writes_and_forwards_the_rest() {
    let plane = ControlPlane::start().await.unwrap();
    let proxy = plane.fault_proxy().await.unwrap();
    let path = plane.dir().join("proxy.kubeconfig");
    let admin = plane
        .chart_identity(ChartIdentity::Controller)
        .await
        .unwrap();
    std::fs::write(&path, plane.kubeconfig_for(proxy.url(), &admin.token)).unwrap();
    let client = envtest::client_from(&path).await.unwrap();
    proxy.fail_writes(FailWrites::new("", "pods", 409, 1).verbs(&["patch"]));
    assert_eq!(proxy.pending(), 1);
    // Reads pass, with the client's own identity: the controller may list pods, not ConfigMaps.
    Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    let denied = Api::<ConfigMap>::namespaced(client.clone(), "default")
        .list(&ListParams::default())
        .await;
    assert_eq!(envtest::status_code(&denied), Some(403), "{denied:?}");
    let admin_pods: Api<Pod> = Api::namespaced(plane.client().unwrap(), "default");
    admin_pods
        .create(&PostParams::default(), &pod("p", None))
        .await
        .unwrap();
    let patch =
        kube::api::Patch::Merge(serde_json::json!({"metadata": {"annotations": {"a": "b"}}}));
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let refused = pods.patch("p", &Default::default(), &patch).await;
    assert_eq!(envtest::status_code(&refused), Some(409), "{refused:?}");
    assert_eq!(proxy.pending(), 0);
    pods.patch("p", &Default::default(), &patch).await.unwrap();
    // A rule without verbs fails writes only; reads fail only when a rule names their verb.
    // (500: kube's client retries a 503 by itself.)
    proxy.fail_writes(FailWrites::new("", "pods", 500, 1));
    pods.get("p").await.unwrap();
    assert_eq!(proxy.pending(), 1);
    proxy.clear();
    proxy.fail_writes(
        FailWrites::new("", "pods", 500, 1)
            .named("p")
            .verbs(&["get"]),
    );
    let unread = pods.get("p").await;
    assert_eq!(envtest::status_code(&unread), Some(500), "{unread:?}");
    pods.get("p").await.unwrap();
}
