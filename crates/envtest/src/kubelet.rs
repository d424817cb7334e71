//! A stand-in for the one kubelet duty tests depend on while no real kubelet runs: finishing the
//! graceful deletion of pods bound to a node. The API server only marks such a pod (deletion
//! timestamp and grace period) and waits for the node's kubelet to confirm with a delete of grace
//! period 0; this task confirms for every node, after `delay`.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::watcher;

/// How the stand-in behaves.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// How long after the deletion mark the pod goes (a kubelet stopping its containers).
    pub delay: Duration,
}

/// Watches every pod and confirms the deletion of those marked for it. Runs until aborted.
pub fn spawn(client: kube::Client, settings: Settings) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let pods: Api<Pod> = Api::all(client.clone());
        let mut events = watcher(pods, watcher::Config::default()).boxed();
        while let Some(event) = events.next().await {
            let pod = match event {
                Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => pod,
                _ => continue,
            };
            let bound = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_some();
            if pod.metadata.deletion_timestamp.is_none() || !bound {
                continue;
            }
            let client = client.clone();
            let delay = settings.delay;
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                finish(client, pod).await;
            });
        }
    })
}

async fn finish(client: kube::Client, pod: Pod) {
    let Some(namespace) = pod.namespace() else {
        return;
    };
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    // 404 (gone already) and 409 (another pod of that name now) both mean there is nothing left
    // to confirm; other errors are retried by the next event about the pod.
    let _ = Api::<Pod>::namespaced(client, &namespace)
        .delete(&pod.name_any(), &params)
        .await;
}
