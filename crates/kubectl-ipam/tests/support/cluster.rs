//! A real control plane (etcd + kube-apiserver from `envtest`) with rangepool's CRDs, fixtures
//! written the way the controller writes them, and a runner for the built binary pointed at the
//! server with the admin's `--kubeconfig`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use api::{Assignment, FamilyAssignment, IPAMBlock, IPAMBlockSpec, IPPool};
use envtest::ControlPlane;
use envtest::faults::FaultProxy;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use super::{Manifest, MetaB, PodB, PoolB, Run, ippool, pod};

/// The ServiceAccount an admin runs `kubectl ipam` as through the fault proxy (the admin's own
/// static token is not handed out), bound to `cluster-admin`.
const PROXY_ADMIN: (&str, &str) = ("kube-system", "ipam-admin");

/// A control plane with the CRDs installed.
pub struct Cluster {
    pub plane: ControlPlane,
    /// The admin's client (`system:masters`).
    pub client: Client,
}

impl Cluster {
    /// A server with the CRDs, namespace `web` and nothing else.
    pub async fn new() -> Cluster {
        let c = Cluster::bare().await;
        let crds: Vec<_> = api::crd::all().into_iter().map(|(_, crd)| crd).collect();
        c.plane.install_crds(&crds).await.unwrap();
        c.namespace(super::namespace("web")).await;
        c
    }

    /// Pool `general` (allocatable, /26 blocks) with one block, 10.244.0.0/26, on node-1.
    pub async fn with_general_pool() -> Cluster {
        let c = Cluster::new().await;
        c.pool(
            ippool("general", "10.244.0.0/24").block_size(26),
            Some(("True", "OK")),
        )
        .await;
        c.block("10.244.0.0/26", "general", Some("node-1")).await;
        c
    }

    /// [`Cluster::with_general_pool`], and the addresses no pod may be given: pod web/a runs with
    /// 10.244.0.0, which IPReservation `appliances` (10.244.0.0 and 10.244.0.9) reserves since;
    /// 10.244.0.5 is parked for the next pod web/db-0 of the StatefulSet of UID `sts-uid`;
    /// 10.244.0.7 was released a minute ago. Returns pod web/a.
    pub async fn with_kept_addresses() -> (Cluster, Pod) {
        let c = Cluster::with_general_pool().await;
        let a = c.running("a", "10.244.0.0").await;
        c.set_phase(&a, "Running").await;
        c.reservation("appliances", &["10.244.0.0", "10.244.0.9"])
            .await;
        c.park("10.244.0.5", "web", "db-0", "sts-uid").await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        c.released("10.244.0.7", i64::try_from(now).unwrap() - 60)
            .await;
        (c, a)
    }

    /// A pod in `web` on node-1 holding `address`, assigned as the controller does.
    pub async fn running(&self, name: &str, address: &str) -> Pod {
        let p = self.pod(pod(name).in_ns("web").on_node("node-1")).await;
        self.assign(&p, address).await
    }

    /// A server without our CRDs.
    pub async fn bare() -> Cluster {
        let plane = ControlPlane::start().await.unwrap();
        let client = plane.client().unwrap();
        Cluster { plane, client }
    }

    /// The admin's kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        self.plane.kubeconfig_path()
    }

    /// Runs `kubectl-ipam ARGS --kubeconfig <the admin's>`, with no KUBECONFIG in the
    /// environment.
    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_with(self.kubeconfig(), args).await
    }

    /// Runs `kubectl-ipam ARGS --kubeconfig KUBECONFIG`, with no KUBECONFIG in the environment.
    pub async fn run_with(&self, kubeconfig: &Path, args: &[&str]) -> Run {
        let kubeconfig = kubeconfig.to_str().unwrap().to_owned();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--kubeconfig", &kubeconfig]);
        run(&all, &[]).await
    }

    /// A fault proxy in front of the server, and a kubeconfig through it for an admin: a
    /// ServiceAccount bound to `cluster-admin`, since the proxy forwards each client's own
    /// token.
    pub async fn fault_proxy(&self) -> (FaultProxy, PathBuf) {
        let (namespace, name) = PROXY_ADMIN;
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<ServiceAccount>::namespaced(self.client.clone(), namespace)
            .create(&PostParams::default(), &sa)
            .await
            .unwrap();
        let binding = ClusterRoleBinding {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: "cluster-admin".into(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: name.into(),
                namespace: Some(namespace.into()),
                ..Default::default()
            }]),
        };
        Api::<ClusterRoleBinding>::all(self.client.clone())
            .create(&PostParams::default(), &binding)
            .await
            .unwrap();
        let admin = self.plane.service_account(namespace, name).await.unwrap();
        // The authorizer sees a new binding a moment after it is stored.
        let blocks: Api<IPAMBlock> = Api::all(admin.client.clone());
        let start = Instant::now();
        while let Err(e) = blocks.list(&ListParams::default().limit(1)).await {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{} cannot list ipamblocks: {e}",
                admin.user
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let proxy = self.plane.fault_proxy().await.unwrap();
        let path = self.plane.dir().join("proxy.kubeconfig");
        std::fs::write(&path, self.plane.kubeconfig_for(proxy.url(), &admin.token)).unwrap();
        (proxy, path)
    }

    pub async fn namespace(&self, ns: MetaB) {
        let ns: Namespace = serde_json::from_value(ns.to_json()).unwrap();
        self.plane
            .create_namespace(
                &ns.name_any(),
                ns.metadata.labels.unwrap_or_default(),
                ns.metadata.annotations.unwrap_or_default(),
            )
            .await
            .unwrap();
    }

    /// Creates the pool, and writes its `Allocatable` condition as the controller would
    /// (`status` True/False with `reason`), unless `condition` is `None`.
    pub async fn pool(&self, pool: PoolB, condition: Option<(&str, &str)>) {
        let pool: IPPool = serde_json::from_value(pool.to_json()).unwrap();
        let name = pool.name_any();
        let api = Api::<IPPool>::all(self.client.clone());
        api.create(&PostParams::default(), &pool).await.unwrap();
        if let Some((status, reason)) = condition {
            let status = json!({"status": {"conditions": [{
                "type": "Allocatable", "status": status, "reason": reason,
                "message": format!("pool {name}: {reason}"),
            }]}});
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                .await
                .unwrap();
        }
    }

    /// Creates an empty block, as the controller does when it claims one for a node.
    pub async fn block(&self, cidr: &str, pool: &str, node: Option<&str>) -> String {
        let name = ipam::cidr::block_name(&cidr.parse().unwrap());
        let spec = IPAMBlockSpec {
            cidr: cidr.into(),
            pool: pool.into(),
            affinity: node.map(str::to_owned),
            sequence_number: 0,
            ..Default::default()
        };
        self.blocks()
            .create(&PostParams::default(), &IPAMBlock::new(&name, spec))
            .await
            .unwrap();
        name
    }

    pub fn blocks(&self) -> Api<IPAMBlock> {
        Api::all(self.client.clone())
    }

    pub async fn block_spec(&self, name: &str) -> IPAMBlockSpec {
        self.blocks().get(name).await.unwrap().spec
    }

    /// Creates a pod and returns it as stored (with its UID).
    pub async fn pod(&self, pod: PodB) -> Pod {
        let pod: Pod = serde_json::from_value(pod.to_json()).unwrap();
        let ns = pod.namespace().unwrap();
        Api::<Pod>::namespaced(self.client.clone(), &ns)
            .create(&PostParams::default(), &pod)
            .await
            .unwrap()
    }

    pub async fn delete_pod(&self, pod: &Pod) {
        Api::<Pod>::namespaced(self.client.clone(), &pod.namespace().unwrap())
            .delete(&pod.name_any(), &DeleteParams::default().grace_period(0))
            .await
            .unwrap();
    }

    pub async fn set_phase(&self, pod: &Pod, phase: &str) {
        Api::<Pod>::namespaced(self.client.clone(), &pod.namespace().unwrap())
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"phase": phase}})),
            )
            .await
            .unwrap();
    }

    /// Records `address` for the pod in the block that contains it, with the controller's
    /// guarded JSON patch (test the sequence number, add the allocation, bump the number).
    /// Returns the block's name.
    pub async fn record(&self, pod: &Pod, address: &str) -> String {
        let address: IpAddr = address.parse().unwrap();
        let block = self.block_of(address).await;
        self.record_in(&block, pod, address).await;
        block
    }

    /// [`Cluster::record`] in a named block.
    pub async fn record_in(&self, block: &str, pod: &Pod, address: IpAddr) {
        let holder = format!("{}/{}", pod.namespace().unwrap(), pod.name_any());
        self.hold(block, address, &holder, &pod.uid().unwrap())
            .await;
    }

    /// Parks `address` for the next pod `namespace/pod` of the StatefulSet of UID `sts_uid`, as
    /// the controller does when the pod of a `stickyStatefulSets` pool goes (handle
    /// `sts:<uid>/<pod>`). Returns the block's name.
    pub async fn park(&self, address: &str, namespace: &str, pod: &str, sts_uid: &str) -> String {
        let address: IpAddr = address.parse().unwrap();
        let block = self.block_of(address).await;
        let handle = ipam::sticky::parked_handle(sts_uid, pod);
        self.hold(&block, address, &format!("{namespace}/{pod}"), &handle)
            .await;
        block
    }

    /// Notes in its block, as the controller does under `--ip-cooldown`, that the free
    /// `address` was released at `at` (seconds since the Unix epoch).
    pub async fn released(&self, address: &str, at: i64) {
        let address: IpAddr = address.parse().unwrap();
        let block = self.block_of(address).await;
        let spec = self.block_spec(&block).await;
        let ordinal = ipam::cidr::ordinal_of(&spec.cidr.parse().unwrap(), address).unwrap();
        let patch = json!({"spec": {"released": {ordinal.to_string(): at}}});
        self.blocks()
            .patch(&block, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap();
    }

    /// Creates an IPReservation of `entries`.
    pub async fn reservation(&self, name: &str, entries: &[&str]) {
        let r = api::IPReservation::new(
            name,
            api::IPReservationSpec {
                reserved_cidrs: entries.iter().map(|e| (*e).to_owned()).collect(),
            },
        );
        Api::<api::IPReservation>::all(self.client.clone())
            .create(&PostParams::default(), &r)
            .await
            .unwrap();
    }

    /// The name of the block that contains `address`.
    async fn block_of(&self, address: IpAddr) -> String {
        self.blocks()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|b| {
                b.spec
                    .cidr
                    .parse::<ipnet::IpNet>()
                    .unwrap()
                    .contains(&address)
            })
            .unwrap_or_else(|| panic!("no block contains {address}"))
            .name_any()
    }

    /// Adds the record `"<holder> <handle> <sequence>"` for `address` to `block`, with the
    /// controller's guarded JSON patch (test the sequence number, add the record, bump the
    /// number).
    async fn hold(&self, block: &str, address: IpAddr, holder: &str, handle: &str) {
        let spec = self.block_spec(block).await;
        let ordinal = ipam::cidr::ordinal_of(&spec.cidr.parse().unwrap(), address).unwrap();
        let next = spec.sequence_number + 1;
        let patch = json!([
            {"op": "test", "path": "/spec/sequenceNumber", "value": spec.sequence_number},
            {"op": "add", "path": format!("/spec/holders/{ordinal}"), "value": format!(
                "{holder} {handle} {next}"
            )},
            {"op": "replace", "path": "/spec/sequenceNumber", "value": next},
        ]);
        let patch: json_patch::Patch = serde_json::from_value(patch).unwrap();
        self.blocks()
            .patch(block, &PatchParams::default(), &Patch::Json::<()>(patch))
            .await
            .unwrap();
    }

    /// What the controller does for a bound pod: the block first, then the annotations.
    pub async fn assign(&self, pod: &Pod, address: &str) -> Pod {
        let block = self.record(pod, address).await;
        let pool = self.block_spec(&block).await.pool;
        let assignment = Assignment {
            ipv4: Some(FamilyAssignment {
                address: address.parse().unwrap(),
                pool,
                block,
            }),
            ..Default::default()
        };
        self.annotate(pod, &assignment).await
    }

    /// Writes the assignment annotations (also forged ones), with the controller's UID
    /// precondition.
    pub async fn annotate(&self, pod: &Pod, assignment: &Assignment) -> Pod {
        let annotations: serde_json::Map<String, Value> = assignment
            .to_annotations()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.map_or(Value::Null, Value::String)))
            .collect();
        Api::<Pod>::namespaced(self.client.clone(), &pod.namespace().unwrap())
            .patch(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"metadata": {"uid": pod.metadata.uid, "annotations": annotations}}),
                ),
            )
            .await
            .unwrap()
    }
}

/// Runs the binary with `args` and extra environment variables, KUBECONFIG removed unless
/// given.
pub async fn run(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-ipam"));
    cmd.args(args).env_remove("KUBECONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("run kubectl-ipam");
    Run {
        status: out.status.code().expect("exit status"),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}
