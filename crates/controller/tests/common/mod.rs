//! Fixtures for the controller's tests: a real control plane (envtest) with our CRDs, builders
//! for pods, pools, namespaces and nodes, and the real controller running in-process with the
//! chart's controller identity.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use api::{Assignment, IPAMBlock, IPPool, IPPoolSpec};
use envtest::faults::FaultProxy;
use envtest::{ChartIdentity, ControlPlane, Credentials};
use ipam::cidr::Family;
use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec};
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use rangepool_controller::config::Settings;
use rangepool_controller::run::{Options, run};
use tokio::sync::oneshot;

/// How long a test waits for the controller before failing.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A real control plane with rangepool's CRDs installed and the chart's RBAC applied.
pub struct Cluster {
    pub plane: ControlPlane,
    /// The admin's client: the tests' own setup and checks.
    pub client: Client,
    /// The chart's controller ServiceAccount, which every controller under test runs as.
    pub identity: Credentials,
    /// The kubeconfig the controller under test reads: the controller's token, against the
    /// server or against the fault proxy.
    controller_kubeconfig: PathBuf,
    faults: Option<FaultProxy>,
}

impl Cluster {
    pub async fn new() -> Cluster {
        Cluster::start(envtest::Options::default(), false).await
    }

    /// With the fault proxy between the controller under test and the server; the tests' own
    /// requests go to the server directly.
    pub async fn with_faults() -> Cluster {
        Cluster::start(envtest::Options::default(), true).await
    }

    pub async fn with(options: envtest::Options) -> Cluster {
        Cluster::start(options, false).await
    }

    async fn start(options: envtest::Options, faults: bool) -> Cluster {
        // The controller's logs with RUST_LOG (e.g. `rangepool_controller=debug`), in the
        // output of a failed test; nothing without it.
        let filter = tracing_subscriber::EnvFilter::builder()
            .with_default_directive(tracing_subscriber::filter::LevelFilter::OFF.into())
            .from_env_lossy();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
        let plane = ControlPlane::start_with(options).await.unwrap();
        let client = plane.client().unwrap();
        let crds: Vec<_> = api::crd::all().into_iter().map(|(_, crd)| crd).collect();
        plane.install_crds(&crds).await.unwrap();
        let identity = plane
            .chart_identity(ChartIdentity::Controller)
            .await
            .unwrap();
        let (controller_kubeconfig, faults) = if faults {
            let proxy = plane.fault_proxy().await.unwrap();
            let path = plane.dir().join("controller-via-proxy.kubeconfig");
            std::fs::write(&path, plane.kubeconfig_for(proxy.url(), &identity.token)).unwrap();
            (path, Some(proxy))
        } else {
            (identity.kubeconfig.clone(), None)
        };
        Cluster {
            plane,
            client,
            identity,
            controller_kubeconfig,
            faults,
        }
    }

    /// The fault proxy in front of the controller under test ([`Cluster::with_faults`]).
    pub fn faults(&self) -> &FaultProxy {
        self.faults
            .as_ref()
            .expect("a cluster made with Cluster::with_faults")
    }

    /// Creates a namespace and its `default` ServiceAccount, without which the server refuses
    /// pods in it.
    pub async fn namespace(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        annotations: &[(&str, &str)],
    ) {
        self.plane
            .create_namespace(name, map(labels), map(annotations))
            .await
            .unwrap();
    }

    pub async fn node(&self, name: &str, labels: &[(&str, &str)]) {
        let node = Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(map(labels)),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Node>::all(self.client.clone())
            .create(&PostParams::default(), &node)
            .await
            .unwrap();
    }

    pub async fn pool(&self, name: &str, spec: IPPoolSpec) {
        Api::<IPPool>::all(self.client.clone())
            .create(&PostParams::default(), &IPPool::new(name, spec))
            .await
            .unwrap();
    }

    pub async fn create(&self, pod: PodBuilder) -> Pod {
        Api::<Pod>::namespaced(self.client.clone(), &pod.namespace)
            .create(&PostParams::default(), &pod.build())
            .await
            .unwrap()
    }

    pub async fn get_pod(&self, namespace: &str, name: &str) -> Option<Pod> {
        Api::<Pod>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .unwrap()
    }

    pub async fn delete_pod(&self, namespace: &str, name: &str) {
        Api::<Pod>::namespaced(self.client.clone(), namespace)
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }

    /// Deletes a pod and waits until it is gone: a pod bound to a node is only marked until the
    /// kubelet (here envtest's stand-in) confirms, a moment later.
    pub async fn delete_pod_and_wait_gone(&self, namespace: &str, name: &str) {
        self.delete_pod(namespace, name).await;
        eventually(&format!("pod {namespace}/{name} to be gone"), || async {
            self.get_pod(namespace, name).await.is_none().then_some(())
        })
        .await;
    }

    pub async fn set_phase(&self, namespace: &str, name: &str, phase: &str) {
        Api::<Pod>::namespaced(self.client.clone(), namespace)
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"status": {"phase": phase}})),
            )
            .await
            .unwrap();
    }

    pub async fn annotate_pod(&self, namespace: &str, name: &str, key: &str, value: &str) {
        Api::<Pod>::namespaced(self.client.clone(), namespace)
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"metadata": {"annotations": {key: value}}})),
            )
            .await
            .unwrap();
    }

    /// Sets `status.podIPs` (and phase Running), as the kubelet does once the sandbox runs.
    pub async fn set_running(&self, namespace: &str, name: &str, address: &str) {
        Api::<Pod>::namespaced(self.client.clone(), namespace)
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"status": {
                    "phase": "Running", "podIP": address, "podIPs": [{"ip": address}]
                }})),
            )
            .await
            .unwrap();
    }

    /// Takes the finalizer off a block and deletes it, as an admin forcing it would, and waits
    /// until it is gone.
    pub async fn force_delete_block(&self, name: &str) {
        let blocks = Api::<IPAMBlock>::all(self.client.clone());
        blocks
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
            )
            .await
            .unwrap();
        let _ = blocks.delete(name, &DeleteParams::default()).await;
        eventually("the block to be gone", || async {
            blocks.get_opt(name).await.unwrap().is_none().then_some(())
        })
        .await;
    }

    pub async fn blocks(&self) -> Vec<IPAMBlock> {
        Api::<IPAMBlock>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
    }

    pub async fn pools(&self) -> Vec<IPPool> {
        Api::<IPPool>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
    }

    pub async fn get_pool(&self, name: &str) -> Option<IPPool> {
        Api::<IPPool>::all(self.client.clone())
            .get_opt(name)
            .await
            .unwrap()
    }

    /// Every (address, handle) recorded in any block.
    pub async fn recorded(&self) -> Vec<(IpAddr, String)> {
        let mut out = Vec::new();
        for block in self.blocks().await {
            let record = block.spec.to_record().unwrap();
            for a in record.allocations {
                let address = ipam::cidr::nth_addr(&record.cidr, a.ordinal).unwrap();
                out.push((address, a.handle));
            }
        }
        out
    }

    /// The reasons and notes of the events about an object.
    pub async fn events_about(&self, namespace: &str, name: &str) -> Vec<(String, String)> {
        let api: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), namespace);
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }

    /// Waits until the pod's annotations name an address for every family asked.
    pub async fn wait_assigned(&self, namespace: &str, name: &str) -> Assignment {
        eventually(
            &format!("pod {namespace}/{name} to get an address"),
            || async {
                let pod = self.get_pod(namespace, name).await?;
                let a = Assignment::from_annotations(pod.annotations()).ok()?;
                a.ipv4.is_some().then_some(a)
            },
        )
        .await
    }

    /// Waits until the pod carries the controller's error annotation.
    pub async fn wait_error(&self, namespace: &str, name: &str) -> String {
        eventually(
            &format!("pod {namespace}/{name} to get an error"),
            || async {
                let pod = self.get_pod(namespace, name).await?;
                pod.annotations().get(api::keys::ASSIGNMENT_ERROR).cloned()
            },
        )
        .await
    }

    /// Starts the real controller in-process, as the chart's controller ServiceAccount.
    pub async fn controller(&self, settings: Settings) -> ControllerHandle {
        self.controller_as("test-controller", settings).await
    }

    /// As [`Cluster::controller`], with `identity` in the Lease and in Events.
    ///
    /// The controller gets a runtime of its own, and its client is made inside it: every task
    /// and connection it starts lives there, so that [`ControllerHandle::kill`] stops all of them
    /// at once, as the death of its process would.
    pub async fn controller_as(&self, identity: &str, settings: Settings) -> ControllerHandle {
        self.controller_with(identity, settings, "127.0.0.1:0".parse().unwrap())
            .await
    }

    /// As [`Cluster::controller`], serving `/metrics` on `metrics_addr`.
    pub async fn controller_serving(
        &self,
        settings: Settings,
        metrics_addr: SocketAddr,
    ) -> ControllerHandle {
        self.controller_with("test-controller", settings, metrics_addr)
            .await
    }

    async fn controller_with(
        &self,
        identity: &str,
        settings: Settings,
        metrics_addr: SocketAddr,
    ) -> ControllerHandle {
        let (stop, stopped) = oneshot::channel::<()>();
        let options = Options {
            identity: identity.to_owned(),
            lease_namespace: "kube-system".into(),
            lease_duration: 3,
            metrics_addr,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("controller-{identity}"))
            .enable_all()
            .build()
            .unwrap();
        let kubeconfig = self.controller_kubeconfig.clone();
        let task = runtime.spawn(async move {
            let client = envtest::client_from(&kubeconfig).await?;
            run(client, settings, options, async {
                let _ = stopped.await;
            })
            .await
        });
        ControllerHandle {
            stop: Some(stop),
            task: Some(task),
            runtime: Some(runtime),
        }
    }
}

/// A controller running in-process on its own runtime. Dropping it kills it.
pub struct ControllerHandle {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl ControllerHandle {
    /// Graceful shutdown (releases the Lease); fails the test if the controller had failed.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("the controller's task")
                .expect("the controller stops cleanly");
        }
    }

    /// A crash: the controller's runtime is shut down, so every one of its tasks (watches,
    /// writes, the Lease renewal) stops wherever it is, and the Lease is left to expire.
    pub fn kill(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Dropping a runtime would block, which an async test must not.
            runtime.shutdown_background();
        }
    }
}

impl Drop for ControllerHandle {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Settings for a cluster whose pod CIDR is `10.244.0.0/16`, IPv4 only.
pub fn settings() -> Settings {
    Settings {
        pod_cidrs: Some(vec!["10.244.0.0/16".parse().unwrap()]),
        families: vec![Family::V4],
        leak_grace: Duration::from_secs(2),
        sweep_interval: Duration::from_millis(500),
        default_pool: false,
        strict_affinity: false,
        ip_cooldown: Duration::ZERO,
        max_blocks_per_node: 0,
    }
}

/// Polls `check` until it returns `Some`, or fails the test after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub struct PodBuilder {
    pub name: String,
    pub namespace: String,
    pub node: Option<String>,
    pub annotations: BTreeMap<String, String>,
    pub host_network: bool,
}

/// `pod("web").in_ns("a").on_node("n1").annotated(k, v)`
pub fn pod(name: &str) -> PodBuilder {
    PodBuilder {
        name: name.into(),
        namespace: "default".into(),
        node: None,
        annotations: BTreeMap::new(),
        host_network: false,
    }
}

impl PodBuilder {
    pub fn in_ns(mut self, ns: &str) -> Self {
        self.namespace = ns.into();
        self
    }
    pub fn on_node(mut self, node: &str) -> Self {
        self.node = Some(node.into());
        self
    }
    pub fn annotated(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }
    pub fn host_network(mut self) -> Self {
        self.host_network = true;
        self
    }
    pub fn build(&self) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                annotations: Some(self.annotations.clone()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: self.node.clone(),
                host_network: Some(self.host_network),
                containers: vec![Container {
                    name: "app".into(),
                    image: Some("app:1".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: None,
        }
    }
}

/// An IPPool spec with the given range.
pub fn spec(cidr: &str) -> IPPoolSpec {
    IPPoolSpec {
        cidr: cidr.into(),
        ..Default::default()
    }
}

pub fn manual(cidr: &str) -> IPPoolSpec {
    IPPoolSpec {
        cidr: cidr.into(),
        assignment_mode: Some("Manual".into()),
        ..Default::default()
    }
}

pub fn in_net(address: IpAddr, cidr: &str) -> bool {
    cidr.parse::<ipnet::IpNet>().unwrap().contains(&address)
}
