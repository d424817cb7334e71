//! CRDs: established, discovered, served generically; status subresource; generation; schema
//! validation, pruning and defaults; namespaced CRs; CRD deletion.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::discovery::{Discovery, Scope};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn crd_resources_are_discovered_and_served() {
    let (_server, client) = server().await;
    install_crd(&client, ippool_crd()).await;
    install_crd(&client, widget_crd()).await;
    for aggregated in [false, true] {
        let d = Discovery::new(client.clone());
        let d = if aggregated {
            d.run_aggregated().await.unwrap()
        } else {
            d.run().await.unwrap()
        };
        let group = d.get("rangepool.dev").expect("group discovered");
        let (ar, caps) = group.recommended_kind("IPPool").expect("kind discovered");
        assert_eq!(ar.plural, "ippools");
        assert_eq!(caps.scope, Scope::Cluster);
        assert!(
            caps.subresources
                .iter()
                .any(|(s, _)| s.plural == "ippools/status" || s.plural == "status"),
            "{:?}",
            caps.subresources
        );
        let (_, pods) = d.get("").unwrap().recommended_kind("Pod").unwrap();
        assert_eq!(pods.scope, Scope::Namespaced);
        assert!(d.get("coordination.k8s.io").is_some() && d.get("events.k8s.io").is_some());
    }
    let widgets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "example.dev",
            "v1",
            "Widget",
        )),
    );
    let w: DynamicObject = serde_json::from_value(json!({"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "w"}, "anything": {"goes": 1}})).unwrap();
    let w = widgets.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(
        w.data["anything"]["goes"], 1,
        "preserve-unknown-fields keeps data"
    );
    assert_eq!(w.metadata.namespace.as_deref(), Some("default"));
    // without a status subresource, any non-metadata change bumps generation, status included
    let w = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"x": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(w.metadata.generation, Some(2));
    assert_eq!(w.data["status"]["x"], 1);
}

#[tokio::test]
async fn status_subresource_and_generation_on_custom_resources() {
    let (_server, client) = server().await;
    install_crd(&client, ippool_crd()).await;
    let api = ippool_api(&client);
    let mut p = ippool("p", json!({"cidr": "10.0.0.0/16"}));
    p.data["status"] = json!({"free": 5});
    let p = api.create(&PostParams::default(), &p).await.unwrap();
    assert!(
        p.data.get("status").is_none(),
        "status is dropped on create"
    );
    assert_eq!(p.metadata.generation, Some(1));
    let p = api
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}, "status": {"free": 9}})),
        )
        .await
        .unwrap();
    assert_eq!(p.metadata.generation, Some(1), "metadata-only change");
    assert!(p.data.get("status").is_none(), "main writes ignore status");
    let p = api
        .patch_status(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"free": 3}, "spec": {"cidr": "1.0.0.0/8"}})),
        )
        .await
        .unwrap();
    assert_eq!(p.data["status"]["free"], 3);
    assert_eq!(
        p.data["spec"]["cidr"], "10.0.0.0/16",
        "status writes ignore spec"
    );
    assert_eq!(p.metadata.generation, Some(1));
    let p = api
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"blockSize": 24}})),
        )
        .await
        .unwrap();
    assert_eq!(p.metadata.generation, Some(2), "spec change");
    assert_eq!(p.data["status"]["free"], 3);
    // custom resources allow no unconditional update
    let mut unconditional = p.clone();
    unconditional.metadata.resource_version = None;
    match api
        .replace("p", &PostParams::default(), &unconditional)
        .await
    {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422);
            assert!(
                s.message.contains(
                    "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
                ),
                "{}",
                s.message
            );
        }
        other => panic!("{other:?}"),
    }
    let mut stale = p.clone();
    stale.metadata.resource_version = Some("1".into());
    assert_eq!(
        api_err(
            api.replace_status("p", &PostParams::default(), &stale)
                .await
        )
        .0,
        409
    );
}

#[tokio::test]
async fn schema_validation_pruning_and_defaults() {
    let (_server, client) = server().await;
    install_crd(&client, ippool_crd()).await;
    let api = ippool_api(&client);
    let p = api
        .create(
            &PostParams::default(),
            &ippool(
                "ok",
                json!({"cidr": "10.0.0.0/16", "bogus": true, "extra": {"kept": 1}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(p.data["spec"]["blockSize"], 26, "default applied");
    assert!(
        p.data["spec"].get("bogus").is_none(),
        "unknown field pruned"
    );
    assert_eq!(
        p.data["spec"]["extra"]["kept"], 1,
        "x-kubernetes-preserve-unknown-fields"
    );
    for (spec, field, needle) in [
        (json!({"blockSize": 24}), "spec.cidr", "Required value"),
        (
            json!({"cidr": "10.0.0.0/16", "blockSize": 10}),
            "spec.blockSize",
            "greater than or equal to 20",
        ),
        (
            json!({"cidr": "10.0.0.0/16", "blockSize": "x"}),
            "spec.blockSize",
            "must be of type integer",
        ),
        (
            json!({"cidr": "10.0.0.0/16", "assignmentMode": "Sometimes"}),
            "spec.assignmentMode",
            "Unsupported value",
        ),
        (json!({"cidr": "not a cidr"}), "spec.cidr", "should match"),
        (
            json!({"cidr": "10.0.0.0/16", "allowedUses": ["a", "b", "c", "d"]}),
            "spec.allowedUses",
            "must have at most 3 items",
        ),
    ] {
        match api
            .create(&PostParams::default(), &ippool("bad", spec.clone()))
            .await
        {
            Err(kube::Error::Api(s)) => {
                assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{spec}");
                assert!(
                    s.message.contains(field) && s.message.contains(needle),
                    "{spec}: {}",
                    s.message
                );
                assert!(
                    s.message
                        .starts_with("IPPool.rangepool.dev \"bad\" is invalid"),
                    "{}",
                    s.message
                );
            }
            other => panic!("{spec} accepted: {other:?}"),
        }
    }
    // fieldValidation=Strict refuses unknown fields instead of pruning them
    let strict = PatchParams::apply("t").validation_strict();
    let cfg = json!({"apiVersion": "rangepool.dev/v1", "kind": "IPPool", "metadata": {"name": "s"}, "spec": {"cidr": "10.2.0.0/16", "bogus": 1}});
    assert_eq!(
        api_err(api.patch("s", &strict, &Patch::Apply(&cfg)).await).0,
        400
    );
}

#[tokio::test]
async fn deleting_a_crd_removes_its_resources() {
    let (_server, client) = server().await;
    install_crd(&client, ippool_crd()).await;
    let api = ippool_api(&client);
    api.create(
        &PostParams::default(),
        &ippool("a", json!({"cidr": "10.0.0.0/16"})),
    )
    .await
    .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.delete("ippools.rangepool.dev", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(api_err(crds.get("ippools.rangepool.dev").await).0, 404);
    assert_eq!(
        api_err(api.list(&ListParams::default()).await).0,
        404,
        "no longer served"
    );
}

#[tokio::test]
async fn await_condition_sees_crds_established() {
    use kube::runtime::wait::{await_condition, conditions};
    let (_server, client) = server().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let waiting = tokio::spawn(await_condition(
        crds.clone(),
        "ippools.rangepool.dev",
        conditions::is_crd_established(),
    ));
    crds.create(&PostParams::default(), &ippool_crd())
        .await
        .unwrap();
    let crd = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(crd.unwrap().spec.names.kind, "IPPool");
}
