//! `kubectl ipam release` against a real API server (envtest): leaks are released by address and
//! from a `check` report, live pods are refused without `--force`, and the guarded write never
//! frees an allocation that changed since it was read (write faults come from envtest's proxy).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use envtest::faults::FailWrites;
use k8s_openapi::api::core::v1::Pod;
use support::cluster::Cluster;

const BLOCK: &str = "10-244-0-0-26";

/// `keep` holds .0 and lives; `gone` held .1 and was deleted.
async fn with_leak(c: &Cluster) -> (Pod, Pod) {
    let keep = c.running("keep", "10.244.0.0").await;
    let gone = c.running("gone", "10.244.0.1").await;
    c.delete_pod(&gone).await;
    (keep, gone)
}

/// Ordinals the block records, with their handles.
async fn allocations(c: &Cluster) -> Vec<(String, String)> {
    let record = c.block_spec(BLOCK).await.to_record().unwrap();
    record
        .allocations
        .into_iter()
        .map(|a| (a.ordinal.to_string(), a.handle))
        .collect()
}

fn uid(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap()
}

#[tokio::test]
async fn release_ip_frees_a_leak_with_the_guarded_write() {
    let c = Cluster::with_general_pool().await;
    let (keep, _) = with_leak(&c).await;
    let before = c.block_spec(BLOCK).await.sequence_number;

    let run = c.run(&["release", "--ip", "10.244.0.1"]).await;
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.starts_with(
            "released 10.244.0.1 (block 10-244-0-0-26, pool general): pod web/gone is gone (not found)\n"
        ),
        "{}",
        run.stdout
    );
    assert_eq!(allocations(&c).await, [("0".to_owned(), uid(&keep))]);
    assert_eq!(c.block_spec(BLOCK).await.sequence_number, before + 1);

    let after = c.run(&["check"]).await;
    assert_eq!(after.status, 0, "{}", after.stdout);
}

#[tokio::test]
async fn release_from_report_frees_what_check_found_and_is_idempotent() {
    let c = Cluster::with_general_pool().await;
    let (keep, _) = with_leak(&c).await;
    let check = c.run(&["check", "-o", "json"]).await;
    assert_eq!(check.status, 1);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    std::fs::write(&report, &check.stdout).unwrap();
    let report = report.to_str().unwrap();

    let dry = c
        .run(&["release", "--from-report", report, "--dry-run"])
        .await;
    assert_eq!(dry.status, 0, "{}{}", dry.stdout, dry.stderr);
    assert!(
        dry.stdout.starts_with("would release 10.244.0.1"),
        "{}",
        dry.stdout
    );
    assert_eq!(allocations(&c).await.len(), 2, "a dry run changes nothing");

    let run = c.run(&["release", "--from-report", report]).await;
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("released 1 of 1 address(es)"),
        "{}",
        run.stdout
    );
    assert_eq!(allocations(&c).await, [("0".to_owned(), uid(&keep))]);

    let again = c.run(&["release", "--from-report", report]).await;
    assert_eq!(again.status, 0, "{}{}", again.stdout, again.stderr);
    assert!(
        again.stdout.contains("skipped 10.244.0.1") && again.stdout.contains("already released"),
        "{}",
        again.stdout
    );
}

#[tokio::test]
async fn a_live_pods_address_is_refused_without_force_and_released_with_it() {
    let c = Cluster::with_general_pool().await;
    let keep = c.running("keep", "10.244.0.0").await;
    let run = c.run(&["release", "--ip", "10.244.0.0"]).await;
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    let line = run.stdout.lines().next().unwrap();
    assert!(
        line.starts_with("refused 10.244.0.0")
            && line.contains(&format!("pod web/keep (uid {}) is alive", uid(&keep)))
            && line.contains("--force"),
        "{line}"
    );
    assert_eq!(allocations(&c).await.len(), 1);

    let forced = c.run(&["release", "--ip", "10.244.0.0", "--force"]).await;
    assert_eq!(forced.status, 0, "{}{}", forced.stdout, forced.stderr);
    assert!(
        forced.stdout.contains("allowed by --force"),
        "{}",
        forced.stdout
    );
    assert!(allocations(&c).await.is_empty());
}

#[tokio::test]
async fn a_finished_pod_still_exists_so_its_address_is_refused() {
    let c = Cluster::with_general_pool().await;
    let job = c.running("job", "10.244.0.0").await;
    c.set_phase(&job, "Succeeded").await;
    let run = c.run(&["release", "--ip", "10.244.0.0"]).await;
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("phase Succeeded"), "{}", run.stdout);
    assert_eq!(allocations(&c).await.len(), 1);
}

#[tokio::test]
async fn an_address_re_assigned_since_the_report_is_left_to_its_new_pod() {
    let c = Cluster::with_general_pool().await;
    with_leak(&c).await;
    let check = c.run(&["check", "-o", "json"]).await;
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    std::fs::write(&report, &check.stdout).unwrap();

    // Meanwhile the controller's sweep released .1 and gave it to a new pod.
    let spec = c.block_spec(BLOCK).await;
    let patch = serde_json::json!([
        {"op": "remove", "path": "/spec/holders/1"},
        {"op": "replace", "path": "/spec/sequenceNumber", "value": spec.sequence_number + 1},
    ]);
    c.blocks()
        .patch(
            BLOCK,
            &Default::default(),
            &kube::api::Patch::Json::<()>(serde_json::from_value(patch).unwrap()),
        )
        .await
        .unwrap();
    let new = c.running("new", "10.244.0.1").await;

    let run = c
        .run(&["release", "--from-report", report.to_str().unwrap()])
        .await;
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(&format!(
            "skipped 10.244.0.1 (block 10-244-0-0-26, pool general): re-assigned since it was read: now held by web/new (uid {})",
            uid(&new)
        )),
        "{}",
        run.stdout
    );
    assert!(allocations(&c).await.contains(&("1".to_owned(), uid(&new))));
}

#[tokio::test]
async fn a_concurrent_write_makes_the_release_retry_on_a_fresh_read() {
    let c = Cluster::with_general_pool().await;
    with_leak(&c).await;
    let (proxy, kubeconfig) = c.fault_proxy().await;
    // The next two writes of the block fail as if the controller had just written it.
    proxy.fail_writes(
        FailWrites::new("rangepool.dev", "ipamblocks", 409, 2)
            .named(BLOCK)
            .verbs(&["patch"]),
    );
    let run = c
        .run_with(&kubeconfig, &["release", "--ip", "10.244.0.1"])
        .await;
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(proxy.pending(), 0);
    assert_eq!(allocations(&c).await.len(), 1);
}

#[tokio::test]
async fn a_block_that_keeps_changing_is_left_alone_and_exits_1() {
    let c = Cluster::with_general_pool().await;
    with_leak(&c).await;
    let before = c.block_spec(BLOCK).await;
    let (proxy, kubeconfig) = c.fault_proxy().await;
    proxy.fail_writes(
        FailWrites::new("rangepool.dev", "ipamblocks", 422, 100)
            .named(BLOCK)
            .verbs(&["patch"]),
    );
    let run = c
        .run_with(&kubeconfig, &["release", "--ip", "10.244.0.1"])
        .await;
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("not released 10.244.0.1"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("5 guarded writes"), "{}", run.stdout);
    assert_eq!(proxy.pending(), 95, "five guarded writes, no more");
    proxy.clear();
    assert_eq!(c.block_spec(BLOCK).await, before);
}

#[tokio::test]
async fn an_address_no_block_holds_is_not_released_and_exits_1() {
    let c = Cluster::with_general_pool().await;
    let free = c.run(&["release", "--ip", "10.244.0.9"]).await;
    assert_eq!(free.status, 1, "{}{}", free.stdout, free.stderr);
    assert!(
        free.stdout.contains("records no allocation"),
        "{}",
        free.stdout
    );
    let outside = c.run(&["release", "--ip", "10.99.0.1"]).await;
    assert_eq!(outside.status, 1);
    assert!(
        outside.stdout.contains("no block contains it"),
        "{}",
        outside.stdout
    );
    let bad = c
        .run(&["release", "--from-report", "/nonexistent.json"])
        .await;
    assert_eq!(bad.status, 2, "{}{}", bad.stdout, bad.stderr);
}
