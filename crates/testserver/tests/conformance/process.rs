//! The `rangepool-testserver` binary: prints its URL, writes a kubeconfig, serves separate
//! processes, keeps state in a data dir across a restart, stops on SIGTERM.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::*;

async fn spawn(
    kubeconfig: &std::path::Path,
    data: &std::path::Path,
) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rangepool-testserver"))
        .args(["--port", "0", "--kubeconfig-out"])
        .arg(kubeconfig)
        .arg("--data-dir")
        .arg(data)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    (child, line)
}

async fn client_from(kubeconfig: &std::path::Path) -> kube::Client {
    let kc = Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

fn sigterm(child: &tokio::process::Child) {
    let pid = child.id().unwrap();
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[tokio::test]
async fn binary_serves_through_its_kubeconfig_and_persists_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    let data = dir.path().join("data");
    let (mut child, line) = spawn(&kc, &data).await;
    assert!(line.starts_with("listening on http://127.0.0.1:"), "{line}");
    let client = client_from(&kc).await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    let created = pods
        .create(&PostParams::default(), &pod("keep").build())
        .await
        .unwrap();
    sigterm(&child);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "clean exit on SIGTERM");
    let (mut child, _) = spawn(&kc, &data).await;
    let pods: Api<Pod> = Api::default_namespaced(client_from(&kc).await);
    let again = pods.get("keep").await.unwrap();
    assert_eq!(again.metadata.uid, created.metadata.uid);
    let next = pods
        .create(&PostParams::default(), &pod("next").build())
        .await
        .unwrap();
    let rv = |p: &Pod| {
        p.metadata
            .resource_version
            .clone()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(
        rv(&next) > rv(&again),
        "resourceVersion keeps increasing after restart"
    );
    sigterm(&child);
    child.wait().await.unwrap();
}
