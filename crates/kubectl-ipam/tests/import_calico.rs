//! `kubectl ipam import-calico` on a realistic Calico manifest: the output is rangepool YAML the
//! API server accepts, the inert and dropped fields are listed, and a pool the core refuses
//! stops the whole conversion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use api::IPPool;
use kube::Api;
use kube::api::PostParams;
use support::cluster::Cluster;
use support::*;

/// What `calicoctl get ippools -o yaml` and `kubectl get ippools.crd.projectcalico.org -o yaml`
/// print for a cluster installed by the Tigera operator plus two hand-made pools.
const CALICO: &str = r#"
apiVersion: projectcalico.org/v3
kind: IPPoolList
items:
- apiVersion: projectcalico.org/v3
  kind: IPPool
  metadata:
    name: default-ipv4-ippool
    uid: 3e0f9c0a-3c64-4c1c-9d36-0d8b8a1f3a10
    resourceVersion: "912"
    creationTimestamp: "2024-03-01T10:00:00Z"
  spec:
    allowedUses: [Workload, Tunnel]
    blockSize: 26
    cidr: 10.244.0.0/17
    ipipMode: Always
    natOutgoing: true
    nodeSelector: all()
    vxlanMode: Never
- apiVersion: projectcalico.org/v3
  kind: IPPool
  metadata:
    name: payments
    labels: {team: payments}
    annotations:
      kubectl.kubernetes.io/last-applied-configuration: '{"spec":{}}'
  spec:
    cidr: 10.244.200.0/24
    blockSize: 28
    assignmentMode: Manual
    namespaceSelector: team == 'payments'
    disableBGPExport: true
    awsSubnetID: subnet-0123456789abcdef0
---
apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata:
  name: default-ipv6-ippool
  annotations:
    projectcalico.org/metadata: '{"creationTimestamp":"2024-03-01T10:00:00Z"}'
spec:
  cidr: fd00:10:244::/64
  blockSize: 122
  vxlanMode: CrossSubnet
  natOutgoing: false
  ipip: {enabled: false}
"#;

fn file(text: &str) -> Dir {
    Dir::new().file("calico.yaml", text)
}

#[tokio::test]
async fn a_calico_manifest_becomes_pools_the_api_server_accepts() {
    let dir = file(CALICO);
    let path = dir.path().join("calico.yaml");
    let run = kubectl_ipam(&["import-calico", "-f", path.to_str().unwrap()]);
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);

    let pools: Vec<IPPool> = serde_saphyr::from_multiple(&run.stdout).unwrap();
    let names: Vec<&str> = pools
        .iter()
        .map(|p| p.metadata.name.as_deref().unwrap())
        .collect();
    assert_eq!(
        names,
        ["default-ipv4-ippool", "payments", "default-ipv6-ippool"]
    );
    let payments = &pools[1];
    assert_eq!(payments.spec.assignment_mode.as_deref(), Some("Manual"));
    assert_eq!(
        payments.spec.namespace_selector.as_deref(),
        Some("team == 'payments'")
    );
    assert_eq!(payments.spec.disable_bgp_export, Some(true));
    assert_eq!(payments.metadata.annotations, None);
    assert!(!run.stdout.contains("awsSubnetID") && !run.stdout.contains("resourceVersion"));
    assert!(run.stdout.contains("apiVersion: rangepool.dev/v1"));

    // Inert fields, each on its own line, named with the pool.
    for needle in [
        "pool default-ipv4-ippool: ipipMode (Always): kept, no effect here",
        "pool default-ipv4-ippool: natOutgoing (true): kept, no effect here",
        "pool default-ipv4-ippool: allowedUses Tunnel: kept, no effect here",
        "pool payments: disableBGPExport (true): kept, no effect here",
        "pool default-ipv6-ippool: vxlanMode (CrossSubnet): kept, no effect here",
        "pool payments: awsSubnetID (subnet-0123456789abcdef0): dropped",
        "pool default-ipv6-ippool: ipip ({\"enabled\":false}): dropped",
        "pool payments: annotation kubectl.kubernetes.io/last-applied-configuration: dropped",
        "pool default-ipv4-ippool: metadata creationTimestamp, resourceVersion, uid: dropped",
    ] {
        assert!(
            run.stderr.lines().any(|l| l.starts_with(needle)),
            "no line starting {needle:?} in:\n{}",
            run.stderr
        );
    }

    // The API server (CRD schema) takes every converted pool as it is.
    let c = Cluster::new().await;
    let api: Api<IPPool> = Api::all(c.client.clone());
    for p in &pools {
        api.create(&PostParams::default(), p).await.unwrap();
    }
    let show = c.run(&["show", "-o", "json"]).await;
    assert_eq!(show.json()["pools"].as_array().unwrap().len(), 3);
}

#[test]
fn a_pool_the_core_refuses_stops_the_conversion_with_its_reason() {
    let dir = file(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: ok}\nspec: {cidr: 10.1.0.0/24}\n---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: sloppy}\nspec: {cidr: 10.2.0.1/24}\n",
    );
    let path = dir.path().join("calico.yaml");
    let run = kubectl_ipam(&["import-calico", "-f", path.to_str().unwrap()]);
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, "", "nothing may reach `kubectl apply`");
    assert!(
        run.stderr.contains(
            "refused: pool sloppy: invalid cidr: 10.2.0.1/24 has host bits set; did you mean 10.2.0.0/24? (InvalidCIDR)"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn a_file_without_calico_pools_exits_2() {
    let dir = file("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n");
    let path = dir.path().join("calico.yaml");
    let run = kubectl_ipam(&["import-calico", "-f", path.to_str().unwrap()]);
    assert_eq!(run.status, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("holds no Calico IPPool"),
        "{}",
        run.stderr
    );
    let missing = kubectl_ipam(&["import-calico", "-f", "/nonexistent.yaml"]);
    assert_eq!(missing.status, 2);
}

#[tokio::test]
async fn a_calico_reservation_becomes_one_the_api_server_accepts_and_pods_are_warned_about() {
    let dir = file(
        r#"
apiVersion: projectcalico.org/v3
kind: IPReservation
metadata: {name: appliances, resourceVersion: "77"}
spec:
  reservedCIDRs: [10.244.200.1, 10.244.200.240/28]
---
apiVersion: v1
kind: Pod
metadata:
  name: legacy-db
  namespace: shop
  annotations: {cni.projectcalico.org/ipAddrsNoIpam: '["10.9.9.9"]'}
"#,
    );
    let path = dir.path().join("calico.yaml");
    let run = kubectl_ipam(&["import-calico", "-f", path.to_str().unwrap()]);
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.lines().any(|l| l.starts_with(
            "warning: pod shop/legacy-db: annotation cni.projectcalico.org/ipAddrsNoIpam is not supported"
        )),
        "{}",
        run.stderr
    );
    let reservations: Vec<api::IPReservation> = serde_saphyr::from_multiple(&run.stdout).unwrap();
    assert_eq!(reservations.len(), 1, "{}", run.stdout);
    assert_eq!(
        reservations[0].spec.reserved_cidrs,
        ["10.244.200.1", "10.244.200.240/28"]
    );

    // The API server (CRD schema) takes it as it is.
    let c = Cluster::new().await;
    let api: Api<api::IPReservation> = Api::all(c.client.clone());
    let created = api
        .create(&PostParams::default(), &reservations[0])
        .await
        .unwrap();
    assert_eq!(created.spec, reservations[0].spec);
}
