//! Builders for manifest directories and clusters, and runners for the built `kubectl-ipam` binary.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

pub mod cluster;

/// The result of one run of the binary.
pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The stdout parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// The table line that starts with `first_cell` followed by two spaces.
    pub fn row(&self, first_cell: &str) -> &str {
        let prefix = format!("{first_cell}  ");
        self.stdout
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no row for {first_cell}:\n{}", self.stdout))
    }

    /// The lines right after the row of `first_cell` that are indented (its messages), joined.
    pub fn detail(&self, first_cell: &str) -> String {
        let row = self.row(first_cell);
        self.stdout
            .lines()
            .skip_while(|l| *l != row)
            .skip(1)
            .take_while(|l| l.starts_with("    "))
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Runs `kubectl-ipam` with `args`.
pub fn kubectl_ipam(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-ipam"))
        .args(args)
        .output()
        .expect("run kubectl-ipam");
    Run {
        status: out.status.code().expect("exit status"),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

/// The shipped example.
pub fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/examples/legacy-firewall")
}

/// The pod in JSON `-o json` output with that name (and family).
pub fn pod_row<'a>(plan: &'a Value, name: &str, family: &str) -> &'a Value {
    plan["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name && p["family"] == family)
        .unwrap_or_else(|| panic!("no {family} row for pod {name} in {plan:#}"))
}

/// The pool in JSON `-o json` output with that name.
pub fn pool_row<'a>(plan: &'a Value, name: &str) -> &'a Value {
    plan["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no pool {name} in {plan:#}"))
}

/// A temporary directory of manifests.
pub struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        Dir {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn arg(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    /// Writes `text` to `name`.
    pub fn file(self, name: &str, text: &str) -> Dir {
        std::fs::write(self.dir.path().join(name), text).unwrap();
        self
    }

    /// Writes the objects to `name` as YAML documents (JSON is YAML).
    pub fn objects(self, name: &str, objects: &[&dyn Manifest]) -> Dir {
        let docs: Vec<String> = objects.iter().map(|o| o.to_json().to_string()).collect();
        self.file(name, &docs.join("\n---\n"))
    }

    /// Runs `kubectl ipam plan -f DIR` with extra arguments.
    pub fn plan(&self, extra: &[&str]) -> Run {
        let mut args = vec!["plan", "-f", self.arg()];
        args.extend_from_slice(extra);
        kubectl_ipam(&args)
    }
}

/// Something that can be written as a manifest.
pub trait Manifest {
    fn to_json(&self) -> Value;
}

impl Manifest for Value {
    fn to_json(&self) -> Value {
        self.clone()
    }
}

/// The kube-system/kubeadm-config ConfigMap with this podSubnet.
pub fn kubeadm(pod_subnet: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
        "data": {"ClusterConfiguration": format!(
            "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nnetworking:\n  podSubnet: {pod_subnet}\n"
        )}
    })
}

/// `IPPool` builder.
pub struct PoolB {
    api_version: &'static str,
    name: String,
    spec: serde_json::Map<String, Value>,
    created: Option<String>,
}

pub fn ippool(name: &str, cidr: &str) -> PoolB {
    let mut spec = serde_json::Map::new();
    spec.insert("cidr".into(), cidr.into());
    PoolB {
        api_version: "rangepool.dev/v1",
        name: name.into(),
        spec,
        created: None,
    }
}

impl PoolB {
    pub fn block_size(mut self, size: i64) -> Self {
        self.spec.insert("blockSize".into(), size.into());
        self
    }
    pub fn manual(mut self) -> Self {
        self.spec.insert("assignmentMode".into(), "Manual".into());
        self
    }
    pub fn disabled(mut self) -> Self {
        self.spec.insert("disabled".into(), true.into());
        self
    }
    pub fn namespace_selector(mut self, s: &str) -> Self {
        self.spec.insert("namespaceSelector".into(), s.into());
        self
    }
    pub fn node_selector(mut self, s: &str) -> Self {
        self.spec.insert("nodeSelector".into(), s.into());
        self
    }
    pub fn field(mut self, key: &str, value: Value) -> Self {
        self.spec.insert(key.into(), value);
        self
    }
    /// Written as Calico's `projectcalico.org/v3` IPPool.
    pub fn calico(mut self) -> Self {
        self.api_version = "projectcalico.org/v3";
        self
    }
    pub fn created(mut self, at: &str) -> Self {
        self.created = Some(at.into());
        self
    }
}

impl Manifest for PoolB {
    fn to_json(&self) -> Value {
        let mut metadata = json!({"name": self.name});
        if let Some(at) = &self.created {
            metadata["creationTimestamp"] = at.as_str().into();
        }
        json!({"apiVersion": self.api_version, "kind": "IPPool", "metadata": metadata, "spec": self.spec})
    }
}

/// `Namespace` or `Node` builder (both only have labels and annotations here).
pub struct MetaB {
    kind: &'static str,
    name: String,
    labels: serde_json::Map<String, Value>,
    annotations: serde_json::Map<String, Value>,
}

pub fn namespace(name: &str) -> MetaB {
    MetaB {
        kind: "Namespace",
        name: name.into(),
        labels: Default::default(),
        annotations: Default::default(),
    }
}

pub fn node(name: &str) -> MetaB {
    MetaB {
        kind: "Node",
        ..namespace(name)
    }
}

impl MetaB {
    pub fn labelled(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.into(), v.into());
        self
    }
    pub fn annotated(mut self, k: &str, v: &str) -> Self {
        self.annotations.insert(k.into(), v.into());
        self
    }
}

impl Manifest for MetaB {
    fn to_json(&self) -> Value {
        json!({"apiVersion": "v1", "kind": self.kind,
               "metadata": {"name": self.name, "labels": self.labels, "annotations": self.annotations}})
    }
}

/// `Pod` builder: `pod("web").in_ns("a").on_node("n1").annotated(k, v)`.
pub struct PodB {
    name: String,
    namespace: String,
    node: Option<String>,
    annotations: serde_json::Map<String, Value>,
    host_network: bool,
    phase: Option<String>,
}

pub fn pod(name: &str) -> PodB {
    PodB {
        name: name.into(),
        namespace: "default".into(),
        node: Some("node-1".into()),
        annotations: Default::default(),
        host_network: false,
        phase: None,
    }
}

impl PodB {
    pub fn in_ns(mut self, ns: &str) -> Self {
        self.namespace = ns.into();
        self
    }
    pub fn on_node(mut self, node: &str) -> Self {
        self.node = Some(node.into());
        self
    }
    pub fn unbound(mut self) -> Self {
        self.node = None;
        self
    }
    pub fn annotated(mut self, k: &str, v: &str) -> Self {
        self.annotations.insert(k.into(), v.into());
        self
    }
    pub fn host_network(mut self) -> Self {
        self.host_network = true;
        self
    }
    pub fn phase(mut self, phase: &str) -> Self {
        self.phase = Some(phase.into());
        self
    }
}

impl Manifest for PodB {
    fn to_json(&self) -> Value {
        let mut spec = json!({"containers": [{"name": "app", "image": "registry.example/app:1"}]});
        if let Some(node) = &self.node {
            spec["nodeName"] = node.as_str().into();
        }
        if self.host_network {
            spec["hostNetwork"] = true.into();
        }
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": self.name, "namespace": self.namespace, "annotations": self.annotations},
            "spec": spec});
        if let Some(phase) = &self.phase {
            pod["status"] = json!({"phase": phase});
        }
        pod
    }
}
