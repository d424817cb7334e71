//! Load numbers for the test server (not a test): creates, binds, lists and watches pods the way
//! a burst of scheduled pods would, and prints throughput. `cargo run --release -p
//! rangepool-testserver --example load -- [PODS] [CONCURRENCY]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use rangepool_testserver::TestServer;
use serde_json::json;

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let pods_n = args.first().copied().unwrap_or(2000);
    let conc = args.get(1).copied().unwrap_or(32);
    let server = TestServer::start().await.unwrap();
    let client = server.client().unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let rv = server.resource_version().to_string();
    let watch = pods
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let watched = tokio::spawn(async move {
        watch
            .take_while(|e| futures::future::ready(e.is_ok()))
            .filter(|e| futures::future::ready(matches!(e, Ok(WatchEvent::Modified(_)))))
            .take(pods_n)
            .count()
            .await
    });
    let t = Instant::now();
    futures::stream::iter(0..pods_n)
        .map(|i| {
            let pods = pods.clone();
            async move {
                let p: Pod = serde_json::from_value(json!({"metadata": {"name": format!("p{i}"), "labels": {"app": "load"}},
                    "spec": {"nodeName": format!("node-{}", i % 50), "containers": [{"name": "c", "image": "busybox:1"}]}}))
                .unwrap();
                pods.create(&PostParams::default(), &p).await
            }
        })
        .buffer_unordered(conc)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let create = t.elapsed();
    let t = Instant::now();
    futures::stream::iter(0..pods_n)
        .map(|i| {
            let pods = pods.clone();
            async move {
                let patch = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("p{i}"), "annotations": {"rangepool.dev/ipv4": format!("10.244.{}.{}", i / 250, i % 250)}}});
                pods.patch(&format!("p{i}"), &PatchParams::apply("load").force(), &Patch::Apply(&patch)).await
            }
        })
        .buffer_unordered(conc)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let apply = t.elapsed();
    let t = Instant::now();
    let listed = pods
        .list(&ListParams::default().fields("spec.nodeName=node-7"))
        .await
        .unwrap()
        .items
        .len();
    let list = t.elapsed();
    let seen = watched.await.unwrap();
    println!("pods={pods_n} concurrency={conc}");
    println!(
        "create: {:?} total, {:.0}/s",
        create,
        pods_n as f64 / create.as_secs_f64()
    );
    println!(
        "apply annotation: {:?} total, {:.0}/s",
        apply,
        pods_n as f64 / apply.as_secs_f64()
    );
    println!("list with field selector: {:?} ({listed} pods)", list);
    println!("watch saw {seen} MODIFIED events");
}
