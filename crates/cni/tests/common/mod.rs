//! Fixtures shared by the plugin's protocol and end-to-end tests: a real control plane (envtest)
//! with rangepool's CRDs and the chart's node identity for the plugin, builders for pods and
//! network configurations, the test playing the controller, a runner for the built
//! `rangepool-ipam` binary, and the built `rangepool-agent` as a process.
//!
//! Two identities, as on a cluster: the test's own setup (namespaces, pods, pools, and the
//! controller's writes of blocks and annotations) uses the admin; the plugin gets a kubeconfig
//! file with the token of the chart's node ServiceAccount, the server's URL and its CA, and so
//! exactly the RBAC the chart grants on every node.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use api::{Assignment, FamilyAssignment, IPAMBlock, IPAMBlockSpec, IPPool};
use envtest::faults::FaultProxy;
use envtest::{ChartIdentity, ControlPlane, Credentials};
use ipam::cidr::{block_name, ordinal_of};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// The plugin binary under test.
pub const PLUGIN: &str = env!("CARGO_BIN_EXE_rangepool-ipam");
/// The node agent binary under test.
pub const AGENT: &str = env!("CARGO_BIN_EXE_rangepool-agent");

/// How long a test waits for the server to finish something it does in the background.
const PATIENCE: Duration = Duration::from_secs(30);

/// A real control plane with rangepool's CRDs installed and the chart's RBAC applied.
pub struct Cluster {
    pub plane: ControlPlane,
    /// The admin (`system:masters`): the test's setup and the controller's part.
    pub client: Client,
    /// The chart's node ServiceAccount: what the plugin runs as.
    pub node: Credentials,
}

impl Cluster {
    /// With the chart's RBAC as rendered with default values.
    pub async fn start() -> Cluster {
        Cluster::start_with(&[]).await
    }

    /// With the chart's RBAC as rendered with `helm_args` (`["--set", "cni.prefix=pool"]`
    /// gives the node `get` on IPPools, which only that prefix style needs).
    pub async fn start_with(helm_args: &[&str]) -> Cluster {
        let plane = ControlPlane::start().await.expect("control plane starts");
        let client = plane.client().unwrap();
        let crds: Vec<_> = api::crd::all().into_iter().map(|(_, crd)| crd).collect();
        plane.install_crds(&crds).await.expect("CRDs served");
        let node = plane
            .chart_identity_with(ChartIdentity::Node, helm_args)
            .await
            .expect("the chart's node identity");
        Cluster {
            plane,
            client,
            node,
        }
    }

    /// The plugin's kubeconfig: the node's token, the server's URL and CA.
    pub fn kubeconfig(&self) -> &Path {
        &self.node.kubeconfig
    }

    /// A fault proxy in front of the server, and a kubeconfig file that sends the plugin
    /// through it with the node's token.
    pub async fn faults(&self) -> Faults {
        let proxy = self.plane.fault_proxy().await.expect("fault proxy starts");
        let kubeconfig = self.plane.dir().join("node-via-proxy.kubeconfig");
        std::fs::write(
            &kubeconfig,
            self.plane.kubeconfig_for(proxy.url(), &self.node.token),
        )
        .unwrap();
        Faults { proxy, kubeconfig }
    }

    /// A kubeconfig like the node's, for an HTTPS port of 127.0.0.1 where nothing listens.
    pub fn dead_kubeconfig(&self) -> PathBuf {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let path = self.plane.dir().join("dead.kubeconfig");
        let server = format!("https://127.0.0.1:{port}");
        std::fs::write(&path, self.plane.kubeconfig_for(&server, &self.node.token)).unwrap();
        path
    }

    /// The test in the controller's role.
    pub fn controller(&self) -> FakeController {
        FakeController {
            client: self.client.clone(),
        }
    }

    pub async fn block(&self, cidr: &str) -> IPAMBlock {
        let net: IpNet = cidr.parse().unwrap();
        Api::<IPAMBlock>::all(self.client.clone())
            .get(&block_name(&net))
            .await
            .unwrap()
    }

    /// The block's resourceVersion: unchanged unless someone wrote the block.
    pub async fn block_version(&self, cidr: &str) -> String {
        self.block(cidr).await.resource_version().unwrap()
    }

    /// Who the block `cidr` records `address` for: the allocation's handle (a pod UID).
    pub async fn holder(&self, cidr: &str, address: &str) -> Option<String> {
        let net: IpNet = cidr.parse().unwrap();
        let ordinal = ordinal_of(&net, address.parse().unwrap()).unwrap();
        let block = self.block(cidr).await;
        block.spec.handle_at(ordinal).unwrap()
    }

    /// Revokes the node's token the way an admin does after a theft: the ServiceAccount it
    /// belongs to is deleted, and the server refuses the token from then on (401).
    pub async fn revoke_node_token(&self) {
        Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(
            self.client.clone(),
            &self.node.namespace,
        )
        .delete(&self.node.name, &DeleteParams::default())
        .await
        .unwrap();
        let pods: Api<Pod> = Api::all(self.node.client.clone());
        let deadline = Instant::now() + PATIENCE;
        loop {
            let read = pods.list(&Default::default()).await;
            if envtest::status_code(&read) == Some(401) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the node's token still works: {read:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Deletes the pod and waits until it is gone: a pod bound to a node is only marked for
    /// deletion until its kubelet (here envtest's stand-in) confirms.
    pub async fn delete_pod(&self, namespace: &str, name: &str) {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        pods.delete(name, &DeleteParams::default()).await.unwrap();
        let deadline = Instant::now() + PATIENCE;
        while pods.get_opt(name).await.unwrap().is_some() {
            assert!(Instant::now() < deadline, "pod {namespace}/{name} not gone");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A fault proxy and the plugin's kubeconfig through it.
pub struct Faults {
    pub proxy: FaultProxy,
    pub kubeconfig: PathBuf,
}

/// A pod to create: `pod("web").in_ns("shop").on_node("node-1").annotated(k, v)`.
pub struct PodBuilder {
    name: String,
    namespace: String,
    node: Option<String>,
    annotations: BTreeMap<String, String>,
}

pub fn pod(name: &str) -> PodBuilder {
    PodBuilder {
        name: name.into(),
        namespace: "shop".into(),
        node: Some("node-1".into()),
        annotations: BTreeMap::new(),
    }
}

impl PodBuilder {
    pub fn in_ns(mut self, namespace: &str) -> Self {
        self.namespace = namespace.into();
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

    /// The pod as the server would return it, but not created: for calls that fail before
    /// they send a request (or send none, as DEL).
    pub fn unsaved(self) -> Pod {
        serde_json::from_value(json!({
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "uid": "00000000-0000-4000-8000-000000000001",
                "annotations": self.annotations
            },
            "spec": {"nodeName": self.node, "containers": [{"name": "app"}]}
        }))
        .unwrap()
    }

    /// Creates the pod (and its namespace, with the `default` ServiceAccount the server's
    /// admission wants before it takes a pod there); the server gives it a UID.
    pub async fn create(self, cluster: &Cluster) -> Pod {
        match cluster
            .plane
            .create_namespace(&self.namespace, BTreeMap::new(), BTreeMap::new())
            .await
        {
            Ok(_) => {}
            // Already there from an earlier pod of the same test.
            Err(envtest::Error::Kube(kube::Error::Api(s))) if s.code == 409 => {}
            Err(e) => panic!("namespace {}: {e}", self.namespace),
        }
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": self.name, "namespace": self.namespace, "annotations": self.annotations},
            "spec": {
                "nodeName": self.node,
                "containers": [{"name": "app", "image": "registry.example/app:1"}]
            }
        }))
        .unwrap();
        Api::<Pod>::namespaced(cluster.client.clone(), &self.namespace)
            .create(&PostParams::default(), &pod)
            .await
            .unwrap()
    }
}

/// What the controller does for a pod, done by the test. The end-to-end test calls only
/// [`FakeController::assign`] and [`FakeController::pool`]; when the real controller exists
/// these are the calls to replace.
pub struct FakeController {
    client: Client,
}

impl FakeController {
    /// Creates an IPPool (only its range matters to the plugin).
    pub async fn pool(&self, name: &str, cidr: &str) {
        let pool: IPPool = serde_json::from_value(json!({
            "apiVersion": "rangepool.dev/v1", "kind": "IPPool",
            "metadata": {"name": name},
            "spec": {"cidr": cidr}
        }))
        .unwrap();
        Api::<IPPool>::all(self.client.clone())
            .create(&PostParams::default(), &pool)
            .await
            .unwrap();
    }

    /// Records `address` for the pod in the block `block_cidr` (created when missing) and
    /// returns what the annotation will say.
    pub async fn allocate(
        &self,
        pod: &Pod,
        pool: &str,
        block_cidr: &str,
        address: &str,
    ) -> FamilyAssignment {
        let net: IpNet = block_cidr.parse().unwrap();
        let address: IpAddr = address.parse().unwrap();
        let name = block_name(&net);
        let blocks: Api<IPAMBlock> = Api::all(self.client.clone());
        if blocks.get_opt(&name).await.unwrap().is_none() {
            let block = IPAMBlock::new(
                &name,
                IPAMBlockSpec {
                    cidr: net.to_string(),
                    pool: pool.into(),
                    affinity: Some("node-1".into()),
                    sequence_number: 0,
                    ..Default::default()
                },
            );
            blocks.create(&PostParams::default(), &block).await.unwrap();
        }
        let ordinal = ordinal_of(&net, address).expect("address inside the block");
        let holder = format!(
            "{}/{} {} 1",
            pod.namespace().unwrap(),
            pod.name_any(),
            pod.uid().unwrap()
        );
        let patch = json!({"spec": {"holders": {ordinal.to_string(): holder}}});
        blocks
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        FamilyAssignment {
            address,
            pool: pool.into(),
            block: name,
        }
    }

    /// Writes the assignment annotations on the pod.
    pub async fn annotate(&self, pod: &Pod, assignment: &Assignment) {
        let annotations: BTreeMap<&str, Option<String>> = assignment.to_annotations();
        let patch = json!({"metadata": {"annotations": annotations}});
        Api::<Pod>::namespaced(self.client.clone(), &pod.namespace().unwrap())
            .patch(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .unwrap();
    }

    /// Block first, then the pod annotation, as the controller orders its writes.
    pub async fn assign(&self, pod: &Pod, pool: &str, block_cidr: &str, address: &str) {
        let assigned = self.allocate(pod, pool, block_cidr, address).await;
        let mut assignment = Assignment::default();
        if assigned.address.is_ipv4() {
            assignment.ipv4 = Some(assigned);
        } else {
            assignment.ipv6 = Some(assigned);
        }
        self.annotate(pod, &assignment).await;
    }

    /// The controller gives up on the pod.
    pub async fn fail(&self, pod: &Pod, message: &str) {
        let assignment = Assignment {
            error: Some(message.into()),
            ..Assignment::default()
        };
        self.annotate(pod, &assignment).await;
    }
}

/// A network configuration: a bridge network whose `ipam` section is ours.
pub fn netconf(version: &str, kubeconfig: &Path) -> Value {
    json!({
        "cniVersion": version,
        "name": "pods",
        "type": "bridge",
        "bridge": "cni0",
        "ipam": {
            "type": "rangepool-ipam",
            "kubeconfig": kubeconfig,
            "timeout": 5,
            "prefix": "block"
        }
    })
}

/// `conf` with `ipam.<key>` set to `value` (`null` removes it).
pub fn with_ipam(mut conf: Value, key: &str, value: Value) -> Value {
    let ipam = conf["ipam"].as_object_mut().unwrap();
    if value.is_null() {
        ipam.remove(key);
    } else {
        ipam.insert(key.into(), value);
    }
    conf
}

/// `conf` sent to the node agent on `socket`, with no kubeconfig at all.
pub fn via_agent(conf: Value, socket: &Path) -> Value {
    let conf = with_ipam(conf, "kubeconfig", Value::Null);
    with_ipam(conf, "agentSocket", json!(socket))
}

/// Writes `text` to `path` the way the chart's installer does: aside, then renamed over.
pub fn replace_file(path: &Path, text: &str) {
    let aside = path.with_extension("tmp");
    std::fs::write(&aside, text).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

/// The built `rangepool-agent`, as the chart runs it, logging at debug level to a file.
pub struct Agent {
    child: tokio::process::Child,
    /// Where it listens: `<dir>/run/agent.sock`.
    pub socket: PathBuf,
    log: PathBuf,
}

impl Agent {
    /// Starts an agent for `kubeconfig` listening under `dir`, and waits until it listens.
    pub async fn start(kubeconfig: &Path, dir: &Path) -> Agent {
        let socket = dir.join("run").join("agent.sock");
        let log = unused(dir.join("agent"));
        let file = std::fs::File::create(&log).unwrap();
        let child = tokio::process::Command::new(AGENT)
            .env_clear()
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--socket")
            .arg(&socket)
            .args(["--log-level", "debug"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .expect("the agent starts");
        let agent = Agent { child, socket, log };
        // Not the socket file: one a killed agent left may be there already.
        agent.logged("listening on").await;
        agent
    }

    /// What the agent logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the agent has logged a line containing `text`.
    pub async fn logged(&self, text: &str) {
        self.wait_until(text, || self.log().contains(text)).await;
    }

    async fn wait_until(&self, what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "agent: waited in vain for {what}: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM, as the kubelet stops a container, and returns the exit code.
    pub async fn terminate(&mut self) -> Option<i32> {
        let pid = self.child.id().expect("the agent runs").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("the agent stops on SIGTERM")
            .unwrap();
        status.code()
    }

    /// Kills the agent (SIGKILL): it leaves its socket file behind.
    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }
}

/// `path`, or a numbered variant of it when a file of that name exists already.
fn unused(path: PathBuf) -> PathBuf {
    (0..)
        .map(|n| path.with_extension(format!("{n}.log")))
        .find(|p| !p.exists())
        .unwrap_or(path)
}

/// One run of the plugin binary.
#[derive(Clone)]
pub struct Call {
    env: BTreeMap<String, String>,
    args: Vec<String>,
    stdin: Option<Vec<u8>>,
}

/// What the binary did.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Outcome {
    /// The reply; panics unless stdout is exactly one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }

    /// The error message of an error reply.
    pub fn msg(&self) -> String {
        self.json()["msg"].as_str().unwrap_or_default().to_owned()
    }

    /// Asserts success and returns the reply (if any).
    pub fn ok(&self) -> Option<Value> {
        assert_eq!(
            self.code, 0,
            "plugin failed: {} / {}",
            self.stdout, self.stderr
        );
        (!self.stdout.is_empty()).then(|| self.json())
    }

    /// Asserts failure with `code`, that the reply carries the same code, and returns the message.
    pub fn failed(&self, code: i32) -> String {
        assert_eq!(
            self.code, code,
            "exit code; stdout {} / {}",
            self.stdout, self.stderr
        );
        assert_eq!(self.json()["code"], code, "reply code");
        self.msg()
    }

    /// The requests the plugin logged (at debug level), as `VERB path ...`.
    pub fn requests(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter_map(|l| l.split_once("request: ").map(|(_, r)| r))
            .collect()
    }

    /// The addresses of an ADD result.
    pub fn addresses(&self) -> Vec<String> {
        self.json()["ips"]
            .as_array()
            .unwrap_or_else(|| panic!("no ips in {} / {}", self.stdout, self.stderr))
            .iter()
            .map(|ip| ip["address"].as_str().unwrap().to_owned())
            .collect()
    }
}

impl Call {
    /// A call for `pod` (ADD, DEL or CHECK) by container `container`.
    pub fn new(command: &str, pod: &Pod, container: &str, conf: &Value) -> Call {
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={container};K8S_POD_UID={}",
            pod.namespace().unwrap(),
            pod.name_any(),
            pod.uid().unwrap()
        );
        Call::bare(command, conf)
            .env("CNI_CONTAINERID", container)
            .env("CNI_NETNS", "/var/run/netns/test")
            .env("CNI_IFNAME", "eth0")
            .env("CNI_ARGS", &args)
    }

    /// A call with only `CNI_COMMAND`, `CNI_PATH` and the configuration (STATUS, GC, ...).
    pub fn bare(command: &str, conf: &Value) -> Call {
        let mut env = BTreeMap::new();
        env.insert("CNI_COMMAND".into(), command.into());
        env.insert("CNI_PATH".into(), "/opt/cni/bin".into());
        Call {
            env,
            args: Vec::new(),
            stdin: Some(conf.to_string().into_bytes()),
        }
    }

    /// A person running the binary with `args` and none of the CNI variables.
    pub fn by_hand(args: &[&str]) -> Call {
        Call {
            env: BTreeMap::new(),
            args: args.iter().map(ToString::to_string).collect(),
            stdin: None,
        }
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    pub fn without(mut self, key: &str) -> Self {
        self.env.remove(key);
        self
    }

    pub fn stdin(mut self, bytes: &[u8]) -> Self {
        self.stdin = Some(bytes.to_vec());
        self
    }

    /// Runs the binary with only these variables (nothing inherited) and waits for it.
    pub async fn run(&self) -> Outcome {
        self.spawn().await.finish().await
    }

    /// Starts the binary and feeds it stdin; [`Running::finish`] waits for it.
    pub async fn spawn(&self) -> Running {
        let started = Instant::now();
        let mut child = tokio::process::Command::new(PLUGIN)
            .args(&self.args)
            .env_clear()
            .envs(&self.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("plugin starts");
        let mut stdin = child.stdin.take().unwrap();
        if let Some(bytes) = &self.stdin {
            // A plugin that fails on its environment exits without reading stdin.
            if let Err(e) = stdin.write_all(bytes).await {
                assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
            }
        }
        drop(stdin);
        let stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        Running {
            child,
            stderr,
            seen: String::new(),
            started,
        }
    }
}

/// A plugin process that is still running.
pub struct Running {
    child: tokio::process::Child,
    stderr: tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
    seen: String,
    started: Instant,
}

impl Running {
    /// Waits until the plugin logs a line containing `text`.
    pub async fn logged(&mut self, text: &str) {
        let wait = async {
            while let Some(line) = self.stderr.next_line().await.unwrap() {
                self.seen.push_str(&line);
                self.seen.push('\n');
                if line.contains(text) {
                    return;
                }
            }
            panic!("the plugin ended without logging {text:?}: {}", self.seen);
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .expect("the plugin logs within 30s");
    }

    /// Whether the plugin logs a line containing `text` within `within`.
    pub async fn logs_within(&mut self, text: &str, within: Duration) -> bool {
        // `next_line` is cancel-safe: a timeout loses no line.
        tokio::time::timeout(within, self.logged(text))
            .await
            .is_ok()
    }

    /// Waits for the plugin to end.
    pub async fn finish(self) -> Outcome {
        let Running {
            mut child,
            mut stderr,
            mut seen,
            started,
        } = self;
        let mut stdout = String::new();
        let mut out = child.stdout.take().unwrap();
        // Both pipes at once, so that neither can fill up and stall the plugin.
        let read_out = out.read_to_string(&mut stdout);
        let read_err = async {
            while let Some(line) = stderr.next_line().await.unwrap() {
                seen.push_str(&line);
                seen.push('\n');
            }
        };
        let all = async {
            let (read, ()) = tokio::join!(read_out, read_err);
            read.unwrap();
            child.wait().await.unwrap()
        };
        let status = tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .expect("plugin finishes within a minute");
        Outcome {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr: seen,
            elapsed: started.elapsed(),
        }
    }
}
