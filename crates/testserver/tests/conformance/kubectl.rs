//! The real kubectl (from tests/tools/install-k8s-tools.sh) against the server.

use std::path::PathBuf;
use std::process::Output;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use rangepool_testserver::TestServer;
use serde_json::{Value, json};

use crate::common::*;

fn kubectl_path() -> PathBuf {
    if let Ok(p) = std::env::var("RANGEPOOL_KUBECTL") {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "RANGEPOOL_KUBECTL={} does not exist: run tests/tools/install-k8s-tools.sh from the repository root",
            p.display()
        );
        return p;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = root.join(".tools/bin/kubectl");
    assert!(
        p.exists(),
        "kubectl not found at {} (nor in RANGEPOOL_KUBECTL): run tests/tools/install-k8s-tools.sh from the repository root",
        p.display()
    );
    p
}

struct Kubectl {
    server: TestServer,
    dir: tempfile::TempDir,
}

impl Kubectl {
    async fn new() -> Self {
        Kubectl {
            server: TestServer::start().await.unwrap(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    async fn run(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(kubectl_path())
            .arg("--kubeconfig")
            .arg(self.server.kubeconfig_path())
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env("HOME", self.dir.path())
            .output()
            .await
            .expect("kubectl runs")
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        let (o, e) = (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        );
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\nstdout: {o}\nstderr: {e}"
        );
        o
    }

    async fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(!out.status.success(), "kubectl {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).to_string()
    }
}

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: ippools.rangepool.dev
spec:
  group: rangepool.dev
  names: {kind: IPPool, plural: ippools, singular: ippool, shortNames: [ipp]}
  scope: Cluster
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: CIDR, type: string, jsonPath: .spec.cidr}
    - {name: Mode, type: string, jsonPath: .spec.assignmentMode}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [cidr]
            properties:
              cidr: {type: string}
              blockSize: {type: integer, minimum: 20, maximum: 128}
              assignmentMode: {type: string, enum: [Automatic, Manual]}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"#;

fn pool(mode: &str, block: u32) -> String {
    format!(
        "apiVersion: rangepool.dev/v1\nkind: IPPool\nmetadata:\n  name: trusted\nspec:\n  cidr: 10.244.64.0/20\n  blockSize: {block}\n  assignmentMode: {mode}\n"
    )
}

#[tokio::test]
async fn kubectl_apply_crd_then_custom_resource_get_describe_delete() {
    let k = Kubectl::new().await;
    let crd = k.file("crd.yaml", CRD);
    assert!(
        k.ok(&["apply", "-f", &crd]).await.contains(
            "customresourcedefinition.apiextensions.k8s.io/ippools.rangepool.dev created"
        )
    );
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/ippools.rangepool.dev",
        "--timeout=10s",
    ])
    .await;
    let p = k.file("pool.yaml", &pool("Manual", 26));
    assert!(
        k.ok(&["apply", "-f", &p])
            .await
            .contains("ippool.rangepool.dev/trusted created")
    );
    let table = k.ok(&["get", "ipp"]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "CIDR", "MODE", "AGE"], "{table}");
    assert!(
        table.lines().nth(1).unwrap().starts_with("trusted")
            && table.contains("10.244.64.0/20")
            && table.contains("Manual"),
        "{table}"
    );
    // client-side apply of a change: a merge patch
    let p2 = k.file("pool2.yaml", &pool("Automatic", 24));
    assert!(k.ok(&["apply", "-f", &p2]).await.contains("configured"));
    let obj: Value =
        serde_json::from_str(&k.ok(&["get", "ippool", "trusted", "-o", "json"]).await).unwrap();
    assert_eq!(obj["spec"]["assignmentMode"], "Automatic");
    assert_eq!(obj["spec"]["blockSize"], 24);
    assert_eq!(obj["metadata"]["generation"], 2);
    // unchanged apply
    assert!(k.ok(&["apply", "-f", &p2]).await.contains("unchanged"));
    // server-side apply over client-side apply conflicts on changed fields, as on a real cluster
    let p3 = k.file("pool3.yaml", &pool("Manual", 25));
    let err = k.fails(&["apply", "--server-side", "-f", &p3]).await;
    assert!(
        err.contains("conflicts with \"kubectl-client-side-apply\"")
            && err.contains(".spec.blockSize"),
        "{err}"
    );
    assert!(
        k.ok(&["apply", "--server-side", "--force-conflicts", "-f", &p3])
            .await
            .contains("serverside-applied")
    );
    let describe = k.ok(&["describe", "ippool", "trusted"]).await;
    assert!(
        describe.contains("Name:") && describe.contains("trusted"),
        "{describe}"
    );
    assert!(
        describe
            .lines()
            .any(|l| l.trim_start().starts_with("Block Size:") && l.trim_end().ends_with("25")),
        "{describe}"
    );
    // a pool the schema refuses
    let bad = k.file("bad.yaml", &pool("Sometimes", 10));
    let err = k.fails(&["apply", "-f", &bad]).await;
    assert!(
        err.contains("Unsupported value: \"Sometimes\"") && err.contains("spec.blockSize"),
        "{err}"
    );
    assert!(k.ok(&["delete", "-f", &p3]).await.contains("deleted"));
    assert!(k.ok(&["get", "ippools"]).await.is_empty());
    let none = k.run(&["get", "ippools"]).await;
    assert!(String::from_utf8_lossy(&none.stderr).contains("No resources found"));
}

#[tokio::test]
async fn kubectl_pods_namespaces_events() {
    let k = Kubectl::new().await;
    let client = k.server.client().unwrap();
    k.ok(&["create", "namespace", "team"]).await;
    let pod_yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: team\n  labels: {app: web}\nspec:\n  nodeName: node-1\n  containers:\n  - name: main\n    image: busybox:1.36\n  - name: side\n    image: nginx:1\n";
    let f = k.file("pod.yaml", pod_yaml);
    k.ok(&["apply", "-f", &f]).await;
    // a client-side apply of a built-in kind is a strategic merge patch
    let f2 = k.file("pod2.yaml", &pod_yaml.replace("nginx:1", "nginx:2"));
    assert!(k.ok(&["apply", "-f", &f2]).await.contains("configured"));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "team");
    let p = pods.get("web").await.unwrap();
    assert_eq!(
        p.spec.as_ref().unwrap().containers[1].image.as_deref(),
        Some("nginx:2")
    );
    pods.create(
        &PostParams::default(),
        &pod("db").in_ns("team").labeled("app", "db").build(),
    )
    .await
    .unwrap();
    let wide = k
        .ok(&["get", "pods", "-n", "team", "-l", "app=web", "-o", "wide"])
        .await;
    assert!(
        wide.contains("web") && wide.contains("node-1") && !wide.contains("db"),
        "{wide}"
    );
    let by_field = k
        .ok(&[
            "get",
            "pods",
            "-A",
            "--field-selector",
            "spec.nodeName=node-1",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(by_field.trim(), "pod/web");
    // an event written with events.k8s.io/v1 shows in describe
    let ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "web.1", "namespace": "team"},
        "eventTime": "2025-01-01T00:00:00.000000Z", "reportingController": "rangepool.dev/controller", "reportingInstance": "c-0",
        "action": "Allocate", "reason": "PoolNotAllowed", "type": "Warning", "note": "pool trusted does not allow namespace team",
        "regarding": {"apiVersion": "v1", "kind": "Pod", "namespace": "team", "name": "web", "uid": p.metadata.uid.clone().unwrap()}});
    let (code, body) = raw(
        &client,
        "POST",
        "/apis/events.k8s.io/v1/namespaces/team/events",
        "application/json",
        &ev.to_string(),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let describe = k.ok(&["describe", "pod", "web", "-n", "team"]).await;
    assert!(
        describe.contains("node-1")
            && describe.contains("PoolNotAllowed")
            && describe.contains("pool trusted does not allow namespace team"),
        "{describe}"
    );
    let ns = k
        .ok(&[
            "get",
            "ns",
            "team",
            "-o",
            "jsonpath={.metadata.labels.kubernetes\\.io/metadata\\.name}",
        ])
        .await;
    assert_eq!(ns, "team");
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let node = json!({"metadata": {"name": "node-1", "labels": {"node-role.kubernetes.io/worker": ""}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.33.0",
        "architecture": "amd64", "bootID": "", "containerRuntimeVersion": "", "kernelVersion": "", "kubeProxyVersion": "",
        "machineID": "", "operatingSystem": "linux", "osImage": "", "systemUUID": ""}}});
    nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(node).unwrap(),
        )
        .await
        .unwrap();
    let table = k.ok(&["get", "nodes"]).await;
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        (row[0], row[1], row[2], row[4]),
        ("node-1", "Ready", "worker", "v1.33.0"),
        "{table}"
    );
    k.ok(&["delete", "namespace", "team"]).await;
    assert!(k.fails(&["get", "ns", "team"]).await.contains("NotFound"));
}

#[tokio::test]
async fn kubectl_create_generators_send_protobuf_bodies() {
    let k = Kubectl::new().await;
    let client = k.server.client().unwrap();
    k.ok(&["create", "configmap", "cm", "--from-literal=a=b"])
        .await;
    k.ok(&[
        "create",
        "secret",
        "generic",
        "s",
        "--from-literal=token=hello",
    ])
    .await;
    k.ok(&["create", "serviceaccount", "robot"]).await;
    k.ok(&["label", "configmap", "cm", "tier=fe"]).await;
    let cm: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::default_namespaced(client.clone());
    let cm = cm.get("cm").await.unwrap();
    assert_eq!(cm.data.unwrap()["a"], "b");
    assert_eq!(cm.metadata.labels.unwrap()["tier"], "fe");
    let s: Api<k8s_openapi::api::core::v1::Secret> = Api::default_namespaced(client);
    let s = s.get("s").await.unwrap();
    assert_eq!(s.data.unwrap()["token"].0, b"hello".to_vec());
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
    let table = k.ok(&["get", "secrets"]).await;
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()[..3]
            == ["s", "Opaque", "1"],
        "{table}"
    );
}

#[tokio::test]
async fn helm_installs_upgrades_and_uninstalls_a_chart() {
    let k = Kubectl::new().await;
    let helm = kubectl_path().with_file_name("helm");
    assert!(
        helm.exists(),
        "helm not found next to kubectl: run tests/tools/install-k8s-tools.sh"
    );
    let chart = k.dir.path().join("chart");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::create_dir_all(chart.join("crds")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: demo\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(chart.join("crds/ippools.yaml"), CRD).unwrap();
    std::fs::write(
        chart.join("templates/all.yaml"),
        r#"apiVersion: v1
kind: ServiceAccount
metadata: {name: ctl}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: ctl}
rules: [{apiGroups: [""], resources: [pods], verbs: [get, list, watch, patch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ctl}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ctl}
subjects: [{kind: ServiceAccount, name: ctl, namespace: "{{ .Release.Namespace }}"}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ctl}
spec:
  replicas: {{ .Values.replicas | default 2 }}
  selector: {matchLabels: {app: ctl}}
  template:
    metadata: {labels: {app: ctl}}
    spec: {serviceAccountName: ctl, containers: [{name: ctl, image: "rangepool/controller:dev"}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: node}
spec:
  selector: {matchLabels: {app: node}}
  template:
    metadata: {labels: {app: node}}
    spec: {hostNetwork: true, containers: [{name: cni, image: "rangepool/cni:dev"}]}
---
apiVersion: v1
kind: Service
metadata: {name: metrics}
spec: {selector: {app: ctl}, ports: [{port: 9090}]}
---
apiVersion: rangepool.dev/v1
kind: IPPool
metadata: {name: default-pool}
spec: {cidr: 10.244.0.0/16, assignmentMode: Automatic}
"#,
    )
    .unwrap();
    let run = |args: Vec<String>| {
        let helm = helm.clone();
        let kc = k.server.kubeconfig_path().to_path_buf();
        let home = k.dir.path().to_path_buf();
        async move {
            let out = tokio::process::Command::new(helm)
                .args(&args)
                .arg("--kubeconfig")
                .arg(kc)
                .env("HOME", home)
                .output()
                .await
                .unwrap();
            assert!(
                out.status.success(),
                "helm {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).to_string()
        }
    };
    let chart = chart.display().to_string();
    assert!(
        run(vec!["install".into(), "demo".into(), chart.clone()])
            .await
            .contains("STATUS: deployed")
    );
    let all = k.ok(&["get", "all"]).await;
    assert!(
        all.contains("deployment.apps/ctl")
            && all.contains("daemonset.apps/node")
            && all.contains("service/metrics"),
        "{all}"
    );
    assert!(
        k.ok(&["get", "ipp", "default-pool", "-o", "name"])
            .await
            .contains("ippool.rangepool.dev/default-pool")
    );
    run(vec![
        "upgrade".into(),
        "demo".into(),
        chart,
        "--set".into(),
        "replicas=3".into(),
    ])
    .await;
    assert_eq!(
        k.ok(&["get", "deploy", "ctl", "-o", "jsonpath={.spec.replicas}"])
            .await,
        "3"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "deploy",
            "ctl",
            "-o",
            "jsonpath={.metadata.generation}"
        ])
        .await,
        "2"
    );
    run(vec!["uninstall".into(), "demo".into()]).await;
    assert!(
        k.fails(&["get", "deploy", "ctl"])
            .await
            .contains("NotFound")
    );
    assert!(
        k.ok(&["get", "secrets", "-o", "name"]).await.is_empty(),
        "release secrets purged"
    );
}

#[tokio::test]
async fn kubectl_applies_the_project_crds_and_enforces_their_cel_rules() {
    let crds = std::fs::canonicalize(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crds"))
        .expect("the repository's crds/ directory");
    let k = Kubectl::new().await;
    let out = k.ok(&["apply", "-f", &crds.display().to_string()]).await;
    assert!(
        out.contains("ippools.rangepool.dev") && out.contains("ipamblocks.rangepool.dev"),
        "{out}"
    );
    let pool = |cidr: &str, block: u32| {
        format!(
            "apiVersion: rangepool.dev/v1\nkind: IPPool\nmetadata:\n  name: p\nspec:\n  cidr: {cidr}\n  blockSize: {block}\n"
        )
    };
    // blockSize range is a CEL rule on spec
    let bad = k.file("bad.yaml", &pool("10.244.0.0/16", 40));
    let err = k.fails(&["apply", "-f", &bad]).await;
    assert!(
        err.contains("is invalid") && err.contains("spec.blockSize"),
        "{err}"
    );
    let good = k.file("good.yaml", &pool("10.244.0.0/16", 26));
    k.ok(&["apply", "-f", &good]).await;
    // cidr is immutable: a transition rule
    let moved = k.file("moved.yaml", &pool("10.245.0.0/16", 26));
    let err = k.fails(&["apply", "-f", &moved]).await;
    assert!(
        err.contains("is invalid") && err.contains("spec.cidr"),
        "{err}"
    );
    let table = k.ok(&["get", "ipp"]).await;
    assert!(
        table.lines().next().unwrap().contains("ALLOCATABLE"),
        "{table}"
    );
    let explain = k.ok(&["explain", "ippools.spec"]).await;
    assert!(
        explain.contains("assignmentMode") && explain.contains("enum: Automatic, Manual"),
        "{explain}"
    );
}
