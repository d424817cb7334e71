//! Every reason a pod gets no address gives an Event and the error annotation, and no address;
//! fixing the cause lets the pod get its address without restarting anything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use api::IPPoolSpec;
use common::*;

const POOLS: &str = "cni.projectcalico.org/ipv4pools";

async fn cluster() -> Cluster {
    let c = Cluster::new().await;
    c.node("node-1", &[("zone", "a")]).await;
    c.namespace("web", &[("team", "web")], &[]).await;
    c.namespace("payments", &[("team", "payments")], &[]).await;
    c
}

/// Asserts the pod has no address, the error names `needle`, and an Event with `reason` says so.
async fn assert_refused(c: &Cluster, ns: &str, name: &str, reason: &str, needle: &str) {
    let error = c.wait_error(ns, name).await;
    assert!(
        error.contains(needle),
        "error {error:?} should mention {needle:?}"
    );
    assert!(
        error.contains(&format!("{ns}/{name}")),
        "error {error:?} should name the pod"
    );
    let pod = c.get_pod(ns, name).await.unwrap();
    assert!(!kube::ResourceExt::annotations(&pod).contains_key(api::keys::ASSIGNED_IPV4));
    let events = eventually(&format!("a {reason} event for {ns}/{name}"), || async {
        let events = c.events_about(ns, name).await;
        events.iter().any(|(r, _)| r == reason).then_some(events)
    })
    .await;
    let (_, note) = events.iter().find(|(r, _)| r == reason).unwrap();
    assert!(
        note.contains(needle),
        "event {note:?} should mention {needle:?}"
    );
}

/// Starts the controller, creates pod `p` in namespace `web` with `annotation` as its IPv4 pool
/// list, and asserts that it is refused for `reason` with a message naming `needle`.
async fn refused(
    c: &Cluster,
    settings: rangepool_controller::config::Settings,
    annotation: &str,
    reason: &str,
    needle: &str,
) {
    let _controller = c.controller(settings).await;
    c.create(
        pod("p")
            .in_ns("web")
            .on_node("node-1")
            .annotated(POOLS, annotation),
    )
    .await;
    assert_refused(c, "web", "p", reason, needle).await;
}

#[tokio::test]
async fn unknown_pool_then_fixed_by_creating_it() {
    let c = cluster().await;
    let _controller = c.controller(settings()).await;
    c.create(
        pod("typo")
            .in_ns("web")
            .on_node("node-1")
            .annotated(POOLS, "[\"paymnts\"]"),
    )
    .await;
    assert_refused(&c, "web", "typo", "UnknownPool", "paymnts").await;
    c.pool("paymnts", manual("10.244.3.0/24")).await;
    let got = c.wait_assigned("web", "typo").await.ipv4.unwrap();
    assert!(in_net(got.address, "10.244.3.0/24"));
    let pod = c.get_pod("web", "typo").await.unwrap();
    assert!(
        !kube::ResourceExt::annotations(&pod).contains_key(api::keys::ASSIGNMENT_ERROR),
        "the error annotation is cleared"
    );
}

#[tokio::test]
async fn malformed_annotation() {
    let c = cluster().await;
    c.pool("pool-1", manual("10.244.1.0/24")).await;
    refused(&c, settings(), "pool-1", "AnnotationNotJSON", POOLS).await;
}

#[tokio::test]
async fn wrong_family() {
    let c = cluster().await;
    c.pool("v6", manual("fd00:10:244::/64")).await;
    let mut s = settings();
    s.pod_cidrs = Some(vec![
        "10.244.0.0/16".parse().unwrap(),
        "fd00:10:244::/56".parse().unwrap(),
    ]);
    refused(&c, s, "[\"v6\"]", "WrongFamily", "v6").await;
}

#[tokio::test]
async fn disabled_pool() {
    let c = cluster().await;
    c.pool(
        "old",
        IPPoolSpec {
            disabled: true,
            ..manual("10.244.4.0/24")
        },
    )
    .await;
    refused(&c, settings(), "[\"old\"]", "PoolNotAllocatable", "old").await;
}

#[tokio::test]
async fn namespace_selector_mismatch_keeps_a_trusted_pool_private() {
    let c = cluster().await;
    c.pool(
        "payments",
        IPPoolSpec {
            namespace_selector: Some("team == 'payments'".into()),
            ..manual("10.244.8.0/24")
        },
    )
    .await;
    let _controller = c.controller(settings()).await;
    c.create(
        pod("sneaky")
            .in_ns("web")
            .on_node("node-1")
            .annotated(POOLS, "[\"payments\"]"),
    )
    .await;
    c.create(
        pod("legit")
            .in_ns("payments")
            .on_node("node-1")
            .annotated(POOLS, "[\"payments\"]"),
    )
    .await;
    assert_refused(&c, "web", "sneaky", "NamespaceSelectorMismatch", "payments").await;
    let got = c.wait_assigned("payments", "legit").await.ipv4.unwrap();
    assert!(in_net(got.address, "10.244.8.0/24"));
}

#[tokio::test]
async fn node_selector_mismatch() {
    let c = cluster().await;
    c.pool(
        "zone-b",
        IPPoolSpec {
            node_selector: Some("zone == 'b'".into()),
            ..manual("10.244.5.0/24")
        },
    )
    .await;
    refused(
        &c,
        settings(),
        "[\"zone-b\"]",
        "NodeSelectorMismatch",
        "zone-b",
    )
    .await;
}

#[tokio::test]
async fn exhausted_pool_then_room_made() {
    let c = cluster().await;
    c.pool(
        "tiny",
        IPPoolSpec {
            block_size: Some(31),
            ..manual("10.244.6.0/31")
        },
    )
    .await;
    let _controller = c.controller(settings()).await;
    for name in ["a", "b"] {
        c.create(
            pod(name)
                .in_ns("web")
                .on_node("node-1")
                .annotated(POOLS, "[\"tiny\"]"),
        )
        .await;
        c.wait_assigned("web", name).await;
    }
    c.create(
        pod("c")
            .in_ns("web")
            .on_node("node-1")
            .annotated(POOLS, "[\"tiny\"]"),
    )
    .await;
    assert_refused(&c, "web", "c", "PoolsExhausted", "tiny").await;
    c.delete_pod("web", "a").await;
    let got = eventually("pod c to get the freed address", || async {
        let pod = c.get_pod("web", "c").await?;
        api::Assignment::from_annotations(kube::ResourceExt::annotations(&pod))
            .ok()?
            .ipv4
    })
    .await;
    assert!(in_net(got.address, "10.244.6.0/31"));
}

#[tokio::test]
async fn pod_cidr_unknown() {
    let c = cluster().await;
    c.pool("general", spec("10.244.0.0/16")).await;
    let mut s = settings();
    s.pod_cidrs = None;
    let _controller = c.controller(s).await;
    c.create(pod("p").in_ns("web").on_node("node-1")).await;
    assert_refused(&c, "web", "p", "PodCIDRUnknown", "--pod-cidr").await;
}

#[tokio::test]
async fn a_later_pool_in_the_list_is_used_when_the_first_is_full() {
    let c = cluster().await;
    c.pool(
        "first",
        IPPoolSpec {
            block_size: Some(32),
            ..manual("10.244.7.0/32")
        },
    )
    .await;
    c.pool("second", manual("10.244.9.0/24")).await;
    let _controller = c.controller(settings()).await;
    c.create(
        pod("a")
            .in_ns("web")
            .on_node("node-1")
            .annotated(POOLS, "[\"first\", \"second\"]"),
    )
    .await;
    assert_eq!(
        c.wait_assigned("web", "a").await.ipv4.unwrap().pool,
        "first"
    );
    c.create(
        pod("b")
            .in_ns("web")
            .on_node("node-1")
            .annotated(POOLS, "[\"first\", \"second\"]"),
    )
    .await;
    assert_eq!(
        c.wait_assigned("web", "b").await.ipv4.unwrap().pool,
        "second"
    );
}

#[tokio::test]
async fn a_pool_name_a_typo_away_is_suggested_in_the_event_and_the_annotation() {
    let c = cluster().await;
    c.pool("payments", manual("10.244.3.0/24")).await;
    let _controller = c.controller(settings()).await;
    c.create(
        pod("typo")
            .in_ns("payments")
            .on_node("node-1")
            .annotated(POOLS, "[\"paymnts\"]"),
    )
    .await;
    assert_refused(
        &c,
        "payments",
        "typo",
        "UnknownPool",
        "did you mean \"payments\"?",
    )
    .await;
}
