//! Verbs, metadata, optimistic concurrency, finalizers, status isolation, pods, namespaces,
//! selectors, built-in kinds.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Node, Pod, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn create_get_list_set_server_metadata() {
    let (server, client) = server().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let a = pods
        .create(&PostParams::default(), &pod("a").build())
        .await
        .unwrap();
    let b = pods
        .create(&PostParams::default(), &pod("b").build())
        .await
        .unwrap();
    let (ra, rb): (u64, u64) = (
        a.metadata
            .resource_version
            .clone()
            .unwrap()
            .parse()
            .unwrap(),
        b.metadata
            .resource_version
            .clone()
            .unwrap()
            .parse()
            .unwrap(),
    );
    assert!(rb > ra, "one global increasing resourceVersion");
    assert_eq!(a.metadata.uid.as_ref().unwrap().len(), 36);
    assert_ne!(a.metadata.uid, b.metadata.uid);
    assert!(a.metadata.creation_timestamp.is_some());
    assert_eq!(a.metadata.generation, Some(1));
    assert_eq!(a.status.as_ref().unwrap().phase.as_deref(), Some("Pending"));
    let got = pods.get("a").await.unwrap();
    assert_eq!(got.metadata.uid, a.metadata.uid);
    let list = pods.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 2);
    assert_eq!(
        list.metadata.resource_version.unwrap(),
        server.resource_version().to_string()
    );
    // kube's list_metadata asks for PartialObjectMetadataList
    let metas = pods.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(metas.items.len(), 2);
    assert_eq!(metas.items[0].metadata.name.as_deref(), Some("a"));
}

#[tokio::test]
async fn errors_are_status_objects_with_the_right_codes() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.create(&PostParams::default(), &pod("a").build())
        .await
        .unwrap();
    assert_eq!(
        api_err(pods.create(&PostParams::default(), &pod("a").build()).await),
        (409, "AlreadyExists".into())
    );
    assert_eq!(api_err(pods.get("nope").await), (404, "NotFound".into()));
    let missing_ns: Api<Pod> = Api::namespaced(client.clone(), "nowhere");
    assert_eq!(
        api_err(
            missing_ns
                .create(&PostParams::default(), &pod("a").in_ns("nowhere").build())
                .await
        )
        .0,
        404
    );
    let mut bad = pod("bad").build();
    bad.spec.as_mut().unwrap().containers.clear();
    let err = pods.create(&PostParams::default(), &bad).await.unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
            assert!(
                s.message.contains("spec.containers: Required value"),
                "{}",
                s.message
            );
        }
        e => panic!("{e:?}"),
    }
    // an object read back from the server cannot be created again as is
    let mut again = pods.get("a").await.unwrap();
    again.metadata.name = Some("copy".into());
    let (code, _) = api_err(pods.create(&PostParams::default(), &again).await);
    assert_eq!(
        code, 500,
        "resourceVersion should not be set on objects to be created"
    );
    let (code, body) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/pods",
        "application/json",
        "{not json",
    )
    .await;
    assert_eq!(code, 400, "{body}");
    let (code, _) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/pods",
        "application/json",
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},"spec":{"containers":"oops"}}"#,
    )
    .await;
    assert_eq!(code, 400, "a wrong type is a decoding error");
}

#[tokio::test]
async fn stale_resource_version_is_a_conflict() {
    let (_server, client) = server().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"k": "1"}})).unwrap();
    let v1 = cms.create(&PostParams::default(), &cm).await.unwrap();
    let mut v2 = v1.clone();
    v2.data.as_mut().unwrap().insert("k".into(), "2".into());
    let v2 = cms.replace("c", &PostParams::default(), &v2).await.unwrap();
    assert_ne!(v1.metadata.resource_version, v2.metadata.resource_version);
    let mut stale = v1.clone();
    stale.data.as_mut().unwrap().insert("k".into(), "3".into());
    let (code, reason) = api_err(cms.replace("c", &PostParams::default(), &stale).await);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    let patch =
        json!({"metadata": {"resourceVersion": v1.metadata.resource_version}, "data": {"k": "4"}});
    assert_eq!(
        api_err(
            cms.patch("c", &PatchParams::default(), &Patch::Merge(&patch))
                .await
        )
        .0,
        409
    );
    // without a resourceVersion the update is unconditional
    let mut uncond = v1.clone();
    uncond.metadata.resource_version = None;
    uncond.data.as_mut().unwrap().insert("k".into(), "5".into());
    let out = cms
        .replace("c", &PostParams::default(), &uncond)
        .await
        .unwrap();
    assert_eq!(out.data.unwrap()["k"], "5");
}

#[tokio::test]
async fn unchanged_writes_do_not_bump_the_resource_version() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    let p = pods
        .create(&PostParams::default(), &pod("a").labeled("x", "1").build())
        .await
        .unwrap();
    let same = pods
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "1"}}})),
        )
        .await
        .unwrap();
    assert_eq!(p.metadata.resource_version, same.metadata.resource_version);
}

#[tokio::test]
async fn finalizers_delay_deletion_until_the_last_one_is_removed() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    pods.create(
        &PostParams::default(),
        &pod("f").finalizer("a.dev/x").finalizer("a.dev/y").build(),
    )
    .await
    .unwrap();
    let deleted = pods.delete("f", &DeleteParams::default()).await.unwrap();
    let marked = deleted.left().expect("object returned");
    assert!(marked.metadata.deletion_timestamp.is_some());
    let still = pods.get("f").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());
    // no new finalizers once terminating
    let add = json!({"metadata": {"finalizers": ["a.dev/x", "a.dev/y", "a.dev/z"]}});
    assert_eq!(
        api_err(
            pods.patch("f", &PatchParams::default(), &Patch::Merge(&add))
                .await
        )
        .0,
        422
    );
    pods.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": ["a.dev/y"]}})),
    )
    .await
    .unwrap();
    assert!(pods.get("f").await.is_ok(), "one finalizer left");
    pods.patch(
        "f",
        &PatchParams::default(),
        &Patch::Json::<()>(
            serde_json::from_value(json!([{"op": "remove", "path": "/metadata/finalizers"}]))
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(api_err(pods.get("f").await).0, 404);
}

#[tokio::test]
async fn preconditions_on_delete() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    pods.create(&PostParams::default(), &pod("p").build())
        .await
        .unwrap();
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("wrong".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    assert_eq!(api_err(pods.delete("p", &dp).await).0, 409);
    pods.delete("p", &DeleteParams::default()).await.unwrap();
    assert_eq!(
        api_err(pods.delete("p", &DeleteParams::default()).await).0,
        404
    );
}

#[tokio::test]
async fn pod_status_is_isolated_and_generation_follows_spec() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    pods.create(&PostParams::default(), &pod("s").build())
        .await
        .unwrap();
    // a main write cannot change status
    let p = pods
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"phase": "Running"}, "metadata": {"labels": {"a": "b"}}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Pending"));
    assert_eq!(
        p.metadata.generation,
        Some(1),
        "metadata changes keep generation"
    );
    // a status write changes only status
    let p = pods
        .patch_status("s", &PatchParams::default(), &Patch::Merge(json!({"status": {"phase": "Running", "podIP": "10.0.0.5"}, "metadata": {"labels": {"c": "d"}}})))
        .await
        .unwrap();
    assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Running"));
    assert!(!p.metadata.labels.unwrap().contains_key("c"));
    // image is the mutable part of a pod spec
    let p = pods
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Strategic(
                json!({"spec": {"containers": [{"name": "main", "image": "busybox:1.37"}]}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(p.metadata.generation, Some(2));
    assert_eq!(
        p.spec.unwrap().containers[0].image.as_deref(),
        Some("busybox:1.37")
    );
    let (code, _) = api_err(
        pods.patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"nodeName": "n1"}})),
        )
        .await,
    );
    assert_eq!(code, 422, "nodeName is set by binding, not by update");
}

#[tokio::test]
async fn binding_sets_node_once_and_host_network_is_kept() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.create(&PostParams::default(), &pod("b").host_network().build())
        .await
        .unwrap();
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "b"}, "target": {"kind": "Node", "name": "node-1"}});
    let (code, body) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/pods/b/binding",
        "application/json",
        &binding.to_string(),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let p = pods.get("b").await.unwrap();
    let spec = p.spec.unwrap();
    assert_eq!(spec.node_name.as_deref(), Some("node-1"));
    assert_eq!(spec.host_network, Some(true));
    assert!(
        p.status
            .unwrap()
            .conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "True")
    );
    let (code, body) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/pods/b/binding",
        "application/json",
        &binding.to_string(),
    )
    .await;
    assert_eq!(code, 409, "{body}");
    let bound = pods
        .create(&PostParams::default(), &pod("c").on_node("node-2").build())
        .await
        .unwrap();
    assert_eq!(bound.spec.unwrap().node_name.as_deref(), Some("node-2"));
}

#[tokio::test]
async fn label_and_field_selectors_on_list() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    for (n, app, node, tier) in [
        ("a", "web", "n1", "fe"),
        ("b", "web", "n2", "be"),
        ("c", "db", "n1", "be"),
        ("d", "db", "", ""),
    ] {
        let mut b = pod(n).labeled("app", app);
        if !node.is_empty() {
            b = b.on_node(node);
        }
        if !tier.is_empty() {
            b = b.labeled("tier", tier);
        }
        pods.create(&PostParams::default(), &b.build())
            .await
            .unwrap();
    }
    pods.patch_status(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running"}})),
    )
    .await
    .unwrap();
    let names = |l: kube::core::ObjectList<Pod>| {
        l.items
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect::<Vec<_>>()
    };
    let q = |s: &str| ListParams::default().labels(s);
    assert_eq!(names(pods.list(&q("app=web")).await.unwrap()), ["a", "b"]);
    assert_eq!(names(pods.list(&q("app==db")).await.unwrap()), ["c", "d"]);
    assert_eq!(names(pods.list(&q("app!=web")).await.unwrap()), ["c", "d"]);
    assert_eq!(
        names(
            pods.list(&q("tier in (fe,be),app notin (db)"))
                .await
                .unwrap()
        ),
        ["a", "b"]
    );
    assert_eq!(names(pods.list(&q("tier")).await.unwrap()), ["a", "b", "c"]);
    assert_eq!(names(pods.list(&q("!tier")).await.unwrap()), ["d"]);
    let f = |s: &str| ListParams::default().fields(s);
    assert_eq!(
        names(pods.list(&f("spec.nodeName=n1")).await.unwrap()),
        ["a", "c"]
    );
    assert_eq!(
        names(pods.list(&f("spec.nodeName!=n1")).await.unwrap()),
        ["b", "d"]
    );
    assert_eq!(names(pods.list(&f("spec.nodeName=")).await.unwrap()), ["d"]);
    assert_eq!(
        names(pods.list(&f("status.phase=Running")).await.unwrap()),
        ["c"]
    );
    assert_eq!(
        names(
            pods.list(&f("metadata.name=b,metadata.namespace=default"))
                .await
                .unwrap()
        ),
        ["b"]
    );
    assert_eq!(api_err(pods.list(&f("spec.bogus=1")).await).0, 400);
    assert_eq!(api_err(pods.list(&q("app in web")).await).0, 400);
    let all: Api<Pod> = Api::all(client);
    assert_eq!(
        all.list(&f("spec.nodeName=n2")).await.unwrap().items.len(),
        1
    );
}

#[tokio::test]
async fn pagination_with_limit_and_continue() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    for i in 0..5 {
        pods.create(&PostParams::default(), &pod(&format!("p{i}")).build())
            .await
            .unwrap();
    }
    let first = pods.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.clone().unwrap();
    let second = pods
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(second.items[0].metadata.name.as_deref(), Some("p2"));
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
    let third = pods
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(second.metadata.continue_.as_ref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(third.items.len(), 1);
    assert!(third.metadata.continue_.is_none_or(|c| c.is_empty()));
}

#[tokio::test]
async fn generate_name_owner_references_and_deletecollection() {
    let (_server, client) = server().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let owner = json!([{"apiVersion": "v1", "kind": "Pod", "name": "o", "uid": "1234", "controller": true}]);
    for _ in 0..3 {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"generateName": "gen-", "labels": {"g": "1"}, "ownerReferences": owner}})).unwrap();
        let c = cms.create(&PostParams::default(), &cm).await.unwrap();
        assert!(c.metadata.name.unwrap().starts_with("gen-"));
        assert_eq!(c.metadata.owner_references.unwrap()[0].uid, "1234");
    }
    let keep: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "keep"}})).unwrap();
    cms.create(&PostParams::default(), &keep).await.unwrap();
    cms.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("g=1"),
    )
    .await
    .unwrap();
    let left = cms.list(&ListParams::default()).await.unwrap();
    assert_eq!(left.items.len(), 1);
    assert_eq!(left.items[0].metadata.name.as_deref(), Some("keep"));
}

#[tokio::test]
async fn namespaces_get_defaults_and_deletion_removes_their_objects() {
    let (_server, client) = server().await;
    create_ns(&client, "team").await;
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns = nss.get("team").await.unwrap();
    assert_eq!(
        ns.metadata.labels.unwrap()["kubernetes.io/metadata.name"],
        "team"
    );
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Active"));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "team");
    pods.create(&PostParams::default(), &pod("a").in_ns("team").build())
        .await
        .unwrap();
    pods.create(
        &PostParams::default(),
        &pod("held").in_ns("team").finalizer("x.dev/y").build(),
    )
    .await
    .unwrap();
    nss.delete("team", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_err(pods.get("a").await).0, 404);
    assert_eq!(
        nss.get("team")
            .await
            .unwrap()
            .status
            .unwrap()
            .phase
            .as_deref(),
        Some("Terminating")
    );
    assert_eq!(
        api_err(
            pods.create(&PostParams::default(), &pod("new").in_ns("team").build())
                .await
        )
        .0,
        403
    );
    pods.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(
        api_err(nss.get("team").await).0,
        404,
        "namespace goes once empty"
    );
}

#[tokio::test]
async fn other_builtin_kinds() {
    let (_server, client) = server().await;
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let s: Secret = serde_json::from_value(
        json!({"metadata": {"name": "s"}, "stringData": {"token": "hello"}}),
    )
    .unwrap();
    let s = secrets.create(&PostParams::default(), &s).await.unwrap();
    assert_eq!(s.data.unwrap()["token"].0, b"hello".to_vec());
    assert!(s.string_data.is_none());
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
    let sas: Api<ServiceAccount> = Api::default_namespaced(client.clone());
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "sa"}})).unwrap(),
    )
    .await
    .unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    let n = nodes.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "node-1", "labels": {"zone": "a"}}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}})).unwrap()).await.unwrap();
    assert_eq!(n.status.unwrap().conditions.unwrap()[0].type_, "Ready");
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let l: Lease = serde_json::from_value(json!({"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "renewTime": "2025-01-01T00:00:00.000000Z"}})).unwrap();
    leases.create(&PostParams::default(), &l).await.unwrap();
    let mut l = leases.get("leader").await.unwrap();
    l.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let l2 = leases
        .replace("leader", &PostParams::default(), &l)
        .await
        .unwrap();
    assert_eq!(l2.spec.unwrap().holder_identity.as_deref(), Some("b"));
    // an Event written through events.k8s.io/v1 is read through core/v1 (one storage)
    let ev_v1: Api<k8s_openapi::api::events::v1::Event> = Api::default_namespaced(client.clone());
    let e: k8s_openapi::api::events::v1::Event = serde_json::from_value(json!({
        "metadata": {"name": "e1"},
        "eventTime": "2025-01-01T00:00:00.000000Z",
        "reportingController": "rangepool.dev/controller", "reportingInstance": "c-1",
        "action": "Allocate", "reason": "NoPool", "type": "Warning", "note": "no pool matches",
        "regarding": {"kind": "Pod", "namespace": "default", "name": "web", "uid": "u-1", "apiVersion": "v1"}
    })).unwrap();
    ev_v1.create(&PostParams::default(), &e).await.unwrap();
    let core: Api<Event> = Api::default_namespaced(client.clone());
    let got = core
        .list(&ListParams::default().fields("involvedObject.name=web,involvedObject.uid=u-1"))
        .await
        .unwrap();
    assert_eq!(got.items.len(), 1);
    assert_eq!(got.items[0].message.as_deref(), Some("no pool matches"));
    assert_eq!(
        got.items[0].reporting_component.as_deref(),
        Some("rangepool.dev/controller")
    );
    let back = ev_v1
        .list(&ListParams::default().fields("regarding.name=web"))
        .await
        .unwrap();
    assert_eq!(back.items[0].note.as_deref(), Some("no pool matches"));
}

#[tokio::test]
async fn bound_pods_are_deleted_gracefully_and_the_kubelet_finishes() {
    use futures::StreamExt;
    use kube::api::{WatchEvent, WatchParams};
    use rangepool_testserver::{Config, TestServer};
    // no kubelet: a bound pod stays terminating until deleted with grace 0
    let server = TestServer::start_with(Config {
        kubelet_delay: None,
        ..Config::default()
    })
    .await
    .unwrap();
    let pods: Api<Pod> = Api::default_namespaced(server.client().unwrap());
    pods.create(&PostParams::default(), &pod("bound").on_node("n1").build())
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("pending").build())
        .await
        .unwrap();
    let marked = pods
        .delete("bound", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(30));
    assert!(
        pods.get("bound")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    pods.delete("pending", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        api_err(pods.get("pending").await).0,
        404,
        "unscheduled pods go at once"
    );
    pods.delete(
        "bound",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(api_err(pods.get("bound").await).0, 404);
    // default: the kubelet stand-in finishes at once; watchers see MODIFIED then DELETED
    let (server, client) = crate::common::server().await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    pods.create(&PostParams::default(), &pod("p").on_node("n1").build())
        .await
        .unwrap();
    let mut w = pods
        .watch(
            &WatchParams::default(),
            &server.resource_version().to_string(),
        )
        .await
        .unwrap()
        .boxed();
    pods.delete("p", &DeleteParams::default()).await.unwrap();
    let mut kinds = Vec::new();
    for _ in 0..2 {
        match w.next().await.unwrap().unwrap() {
            WatchEvent::Modified(p) => {
                assert!(p.metadata.deletion_timestamp.is_some());
                kinds.push("MODIFIED");
            }
            WatchEvent::Deleted(_) => kinds.push("DELETED"),
            e => panic!("{e:?}"),
        }
    }
    assert_eq!(kinds, ["MODIFIED", "DELETED"]);
}

#[tokio::test]
async fn garbage_collection_follows_owner_references() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let owner = pods
        .create(&PostParams::default(), &pod("owner").build())
        .await
        .unwrap();
    let uid = owner.metadata.uid.clone().unwrap();
    for n in ["dep1", "dep2"] {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": n, "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "owner", "uid": uid}]}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    pods.delete("owner", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(api_err(cms.get("dep1").await).0, 404, "dependent collected");
    let owner2 = pods
        .create(&PostParams::default(), &pod("owner2").build())
        .await
        .unwrap();
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "orphan", "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "owner2", "uid": owner2.metadata.uid.unwrap()}]}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    pods.delete("owner2", &DeleteParams::orphan())
        .await
        .unwrap();
    let kept = cms.get("orphan").await.unwrap();
    assert!(kept.metadata.owner_references.is_none_or(|r| r.is_empty()));
}

#[tokio::test]
async fn list_items_carry_types_only_for_custom_resources() {
    let (_server, client) = server().await;
    create_pod(&client, pod("a").build()).await;
    install_crd(&client, ippool_crd()).await;
    ippool_api(&client)
        .create(
            &PostParams::default(),
            &ippool("p", json!({"cidr": "10.0.0.0/16"})),
        )
        .await
        .unwrap();
    let (_, pods) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/default/pods",
        "application/json",
        "",
    )
    .await;
    let pods: serde_json::Value = serde_json::from_str(&pods).unwrap();
    assert_eq!(pods["kind"], "PodList");
    assert!(pods["items"][0].get("kind").is_none() && pods["items"][0].get("apiVersion").is_none());
    let (_, pools) = raw(
        &client,
        "GET",
        "/apis/rangepool.dev/v1/ippools",
        "application/json",
        "",
    )
    .await;
    let pools: serde_json::Value = serde_json::from_str(&pools).unwrap();
    assert_eq!(pools["items"][0]["kind"], "IPPool");
    assert_eq!(pools["items"][0]["apiVersion"], "rangepool.dev/v1");
}

#[tokio::test]
async fn delete_answers_object_or_status_per_resource() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.create(&PostParams::default(), &pod("a").build())
        .await
        .unwrap();
    assert!(
        pods.delete("a", &DeleteParams::default())
            .await
            .unwrap()
            .is_left(),
        "pods return the object"
    );
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap(),
    )
    .await
    .unwrap();
    let status = cms
        .delete("c", &DeleteParams::default())
        .await
        .unwrap()
        .right()
        .expect("a Status");
    assert_eq!(
        status.status,
        Some(kube::core::response::StatusSummary::Success)
    );
    assert_eq!(status.details.unwrap().name, "c");
    let held: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "held", "finalizers": ["x.dev/y"]}}))
            .unwrap();
    cms.create(&PostParams::default(), &held).await.unwrap();
    let marked = cms
        .delete("held", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("the marked object");
    assert!(marked.metadata.deletion_timestamp.is_some());
}

#[tokio::test]
async fn continue_pages_and_exact_lists_are_snapshots() {
    let (server, client) = server().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let cm = |n: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": n}, "data": {"v": "1"}})).unwrap()
    };
    for n in ["a", "b", "c", "d"] {
        cms.create(&PostParams::default(), &cm(n)).await.unwrap();
    }
    let first = cms.list(&ListParams::default().limit(2)).await.unwrap();
    let rv = first.metadata.resource_version.clone().unwrap();
    // changes between pages are not seen by the rest of the list
    cms.delete("c", &DeleteParams::default()).await.unwrap();
    cms.patch(
        "d",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await
    .unwrap();
    cms.create(&PostParams::default(), &cm("e")).await.unwrap();
    let token = first.metadata.continue_.clone().unwrap();
    let rest = cms
        .list(&ListParams::default().continue_token(&token))
        .await
        .unwrap();
    let names: Vec<String> = rest
        .items
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["c", "d"]);
    assert_eq!(rest.items[1].data.as_ref().unwrap()["v"], "1");
    assert_eq!(rest.metadata.resource_version.as_deref(), Some(rv.as_str()));
    // an Exact list at the first page's resourceVersion sees the same snapshot
    let exact = cms
        .list(
            &ListParams::default()
                .at(&rv)
                .matching(kube::api::VersionMatch::Exact),
        )
        .await
        .unwrap();
    assert_eq!(exact.items.len(), 4);
    // once the history is gone, both expire
    server.faults().compact();
    assert_eq!(
        api_err(
            cms.list(&ListParams::default().continue_token(&token))
                .await
        )
        .0,
        410
    );
    assert_eq!(
        api_err(
            cms.list(
                &ListParams::default()
                    .at(&rv)
                    .matching(kube::api::VersionMatch::Exact)
            )
            .await
        )
        .0,
        410
    );
}
