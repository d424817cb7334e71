//! Throughput of custom-resource writes whose CRD has CEL rules (the project's IPPool CRD from
//! `crds/`). Prints numbers; not a test. `cargo run --release -p rangepool-testserver --example
//! cel_load -- [WRITES]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use rangepool_testserver::TestServer;
use serde_json::json;

#[tokio::main]
async fn main() {
    let writes: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    let server = TestServer::start().await.unwrap();
    let client = server.client().unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../crds/ippools.rangepool.dev.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_saphyr::from_str(&text).unwrap();
    Api::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
    let ar = ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
        "rangepool.dev",
        "v1",
        "IPPool",
    ));
    let pools: Api<DynamicObject> = Api::all_with(client, &ar);
    let t = Instant::now();
    for i in 0..writes {
        let p = json!({"apiVersion": "rangepool.dev/v1", "kind": "IPPool", "metadata": {"name": format!("p{i}")},
            "spec": {"cidr": format!("10.{}.{}.0/24", i / 256, i % 256), "blockSize": 28}});
        pools
            .patch(
                &format!("p{i}"),
                &PatchParams::apply("bench"),
                &Patch::Apply(&p),
            )
            .await
            .unwrap();
    }
    let create = t.elapsed();
    let t = Instant::now();
    for i in 0..writes {
        let p = json!({"metadata": {"labels": {"round": "2"}}});
        pools
            .patch(&format!("p{i}"), &PatchParams::default(), &Patch::Merge(&p))
            .await
            .unwrap();
    }
    let update = t.elapsed();
    println!(
        "IPPool apply-create: {writes} in {create:?} ({:.0}/s)",
        writes as f64 / create.as_secs_f64()
    );
    println!(
        "IPPool merge-patch (transition rules run): {writes} in {update:?} ({:.0}/s)",
        writes as f64 / update.as_secs_f64()
    );
}
