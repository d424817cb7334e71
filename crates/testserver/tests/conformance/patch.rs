//! Patch types: JSON merge, JSON patch with `test`, strategic merge, server-side apply, 415.

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn json_patch_with_test_op() {
    let (_server, client) = server().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"k": "1"}})).unwrap(),
    )
    .await
    .unwrap();
    let ok: json_patch_ops::Ops = json_patch_ops::ops(
        json!([{"op": "test", "path": "/data/k", "value": "1"}, {"op": "replace", "path": "/data/k", "value": "2"}]),
    );
    let out = cms
        .patch("c", &PatchParams::default(), &Patch::Json::<()>(ok))
        .await
        .unwrap();
    assert_eq!(out.data.unwrap()["k"], "2");
    let failing = json_patch_ops::ops(
        json!([{"op": "test", "path": "/data/k", "value": "1"}, {"op": "replace", "path": "/data/k", "value": "3"}]),
    );
    assert_eq!(
        api_err(
            cms.patch("c", &PatchParams::default(), &Patch::Json::<()>(failing))
                .await
        )
        .0,
        422
    );
    assert_eq!(
        cms.get("c").await.unwrap().data.unwrap()["k"],
        "2",
        "a failed test changes nothing"
    );
}

mod json_patch_ops {
    pub type Ops = json_patch::Patch;
    pub fn ops(v: serde_json::Value) -> Ops {
        serde_json::from_value(v).unwrap()
    }
}

#[tokio::test]
async fn unknown_patch_type_is_415_and_crs_refuse_strategic() {
    let (_server, client) = server().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap(),
    )
    .await
    .unwrap();
    let (code, _) = raw(
        &client,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/c",
        "application/xml",
        "<x/>",
    )
    .await;
    assert_eq!(code, 415);
    install_crd(&client, ippool_crd()).await;
    ippool_api(&client)
        .create(
            &PostParams::default(),
            &ippool("p", json!({"cidr": "10.0.0.0/16"})),
        )
        .await
        .unwrap();
    let (code, _) = raw(
        &client,
        "PATCH",
        "/apis/rangepool.dev/v1/ippools/p",
        "application/strategic-merge-patch+json",
        "{}",
    )
    .await;
    assert_eq!(code, 415, "custom resources have no strategic merge patch");
}

#[tokio::test]
async fn strategic_merge_by_container_name() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    let mut p = pod("s").build();
    p.spec
        .as_mut()
        .unwrap()
        .containers
        .push(k8s_openapi::api::core::v1::Container {
            name: "side".into(),
            image: Some("nginx:1".into()),
            ..Default::default()
        });
    pods.create(&PostParams::default(), &p).await.unwrap();
    let out = pods
        .patch("s", &PatchParams::default(), &Patch::Strategic(json!({"$setElementOrder/containers": [{"name": "main"}, {"name": "side"}], "spec": {"containers": [{"name": "side", "image": "nginx:2"}]}, "metadata": {"finalizers": ["a.dev/f"]}})))
        .await
        .unwrap();
    let cs = out.spec.unwrap().containers;
    assert_eq!(cs.len(), 2, "merged by name, not replaced");
    assert_eq!(cs[0].image.as_deref(), Some("busybox:1.36"));
    assert_eq!(cs[1].image.as_deref(), Some("nginx:2"));
    assert_eq!(
        out.metadata.finalizers.unwrap(),
        vec!["a.dev/f".to_string()]
    );
}

#[tokio::test]
async fn server_side_apply_owns_fields_and_detects_conflicts() {
    let (_server, client) = server().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"owner": "one"}}, "data": {"x": "1", "y": "1"}});
    let created = cms
        .patch("a", &PatchParams::apply("one"), &Patch::Apply(&cfg))
        .await
        .unwrap();
    let mf = created.metadata.managed_fields.clone().unwrap();
    assert_eq!(mf[0].manager.as_deref(), Some("one"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    // the same apply again is a no-op
    let again = cms
        .patch("a", &PatchParams::apply("one"), &Patch::Apply(&cfg))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        created.metadata.resource_version
    );
    // another manager setting a field differently conflicts...
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "2"}});
    let err = cms
        .patch("a", &PatchParams::apply("two"), &Patch::Apply(&other))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert!(s.message.contains("conflict with \"one\""), "{}", s.message);
        }
        e => panic!("{e:?}"),
    }
    // ...unless forced, which moves ownership
    let forced = cms
        .patch(
            "a",
            &PatchParams::apply("two").force(),
            &Patch::Apply(&other),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.as_ref().unwrap()["x"], "2");
    // a field the manager no longer applies is removed (y), one it lost is kept (x)
    let shrink = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"owner": "one"}}, "data": {}});
    let out = cms
        .patch("a", &PatchParams::apply("one"), &Patch::Apply(&shrink))
        .await
        .unwrap();
    let data = out.data.unwrap_or_default();
    assert!(!data.contains_key("y"), "{data:?}");
    assert_eq!(data["x"], "2");
    // a merge patch by another manager takes ownership of what it changes
    cms.patch(
        "a",
        &PatchParams {
            field_manager: Some("three".into()),
            ..Default::default()
        },
        &Patch::Merge(json!({"metadata": {"labels": {"owner": "three"}}})),
    )
    .await
    .unwrap();
    let err = cms
        .patch("a", &PatchParams::apply("one"), &Patch::Apply(&shrink))
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 409));
}

#[tokio::test]
async fn apply_to_status_touches_only_status() {
    let (_server, client) = server().await;
    install_crd(&client, ippool_crd()).await;
    let api = ippool_api(&client);
    let cfg = json!({"apiVersion": "rangepool.dev/v1", "kind": "IPPool", "metadata": {"name": "p"}, "spec": {"cidr": "10.1.0.0/16"}, "status": {"free": 1}});
    let p = api
        .patch("p", &PatchParams::apply("ctl"), &Patch::Apply(&cfg))
        .await
        .unwrap();
    assert!(
        p.data.get("status").is_none(),
        "status ignored on the main resource"
    );
    let st = json!({"apiVersion": "rangepool.dev/v1", "kind": "IPPool", "metadata": {"name": "p"}, "status": {"free": 7, "observedGeneration": 1}, "spec": {"cidr": "1.2.3.0/24"}});
    let p = api
        .patch_status("p", &PatchParams::apply("ctl").force(), &Patch::Apply(&st))
        .await
        .unwrap();
    assert_eq!(p.data["status"]["free"], 7);
    assert_eq!(p.data["spec"]["cidr"], "10.1.0.0/16");
    assert_eq!(p.metadata.generation, Some(1));
}

#[tokio::test]
async fn lease_locking_through_apply_conflicts() {
    use k8s_openapi::api::coordination::v1::Lease;
    let (_server, client) = server().await;
    let leases: Api<Lease> = Api::default_namespaced(client);
    leases
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "lock"}, "spec": {}})).unwrap(),
        )
        .await
        .unwrap();
    let take = |who: &str| json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "spec": {"holderIdentity": who, "leaseDurationSeconds": 15, "acquireTime": "2025-01-01T00:00:00.000000Z"}});
    leases
        .patch(
            "lock",
            &PatchParams::apply("lease-a"),
            &Patch::Apply(take("a")),
        )
        .await
        .unwrap();
    let renew = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "spec": {"renewTime": "2025-01-01T00:00:05.000000Z"}});
    leases
        .patch(
            "lock",
            &PatchParams {
                field_manager: Some("lease-a".into()),
                ..Default::default()
            },
            &Patch::Strategic(renew),
        )
        .await
        .unwrap();
    let (code, reason) = api_err(
        leases
            .patch(
                "lock",
                &PatchParams::apply("lease-b"),
                &Patch::Apply(take("b")),
            )
            .await,
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"), "held by a");
    let release = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "spec": {"holderIdentity": null, "acquireTime": null, "renewTime": null, "leaseDurationSeconds": null}});
    leases
        .patch(
            "lock",
            &PatchParams {
                field_manager: Some("lease-a".into()),
                ..Default::default()
            },
            &Patch::Strategic(release),
        )
        .await
        .unwrap();
    let l = leases
        .patch(
            "lock",
            &PatchParams::apply("lease-b"),
            &Patch::Apply(take("b")),
        )
        .await
        .unwrap();
    assert_eq!(l.spec.unwrap().holder_identity.as_deref(), Some("b"));
}

#[tokio::test]
async fn status_apply_tracks_ownership_per_manager() {
    let (_server, client) = server().await;
    install_crd(&client, ippool_crd()).await;
    let api = ippool_api(&client);
    api.create(
        &PostParams::default(),
        &ippool("p", json!({"cidr": "10.1.0.0/16"})),
    )
    .await
    .unwrap();
    let st = |free: i64, extra: bool| {
        let mut s = json!({"free": free});
        if extra {
            s["observedGeneration"] = json!(1);
        }
        json!({"apiVersion": "rangepool.dev/v1", "kind": "IPPool", "metadata": {"name": "p"}, "status": s})
    };
    let p = api
        .patch_status(
            "p",
            &PatchParams::apply("ctl-a"),
            &Patch::Apply(st(5, true)),
        )
        .await
        .unwrap();
    let entry = p
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .find(|m| m.manager.as_deref() == Some("ctl-a"))
        .unwrap();
    assert_eq!(entry.subresource.as_deref(), Some("status"));
    // another manager's different value conflicts
    assert_eq!(
        api_err(
            api.patch_status(
                "p",
                &PatchParams::apply("ctl-b"),
                &Patch::Apply(st(6, false))
            )
            .await
        )
        .0,
        409
    );
    // the owner stops applying observedGeneration: it is removed
    let p = api
        .patch_status(
            "p",
            &PatchParams::apply("ctl-a"),
            &Patch::Apply(st(5, false)),
        )
        .await
        .unwrap();
    assert!(
        p.data["status"].get("observedGeneration").is_none(),
        "{}",
        p.data["status"]
    );
    assert_eq!(p.data["status"]["free"], 5);
}
