//! `make demo`: the real controller and the real CNI plugin, against a real kube-apiserver and
//! etcd started on 127.0.0.1, on the legacy-firewall example.
//!
//! 1. starts etcd and kube-apiserver (crates/envtest: TLS, RBAC, admission) and applies the Helm
//!    chart's ServiceAccounts and RBAC, so the controller and the plugin run with the
//!    credentials and permissions they have in a cluster;
//! 2. applies the CRDs and every manifest of the example directory (pools, namespaces, nodes,
//!    the kubeadm-config ConfigMap that tells the pod CIDR, and the pods, bound to nodes);
//! 3. runs the `rangepool-controller` binary against it with the controller's credentials;
//! 4. for each pod, runs the `rangepool-ipam` binary with `CNI_COMMAND=ADD` as a container
//!    runtime would, with the node's credentials (no network namespace is needed for an IPAM
//!    plugin);
//! 5. prints which pod got which address, or the Event explaining why not, checks that every
//!    address lies in the pool it came from, and stops everything it started.
//!
//! It says how long each part took, and keeps every log in `--log-dir` (make's:
//! `target/rangepool-logs/demo/`): the controller's, the plugin's, and etcd's and
//! kube-apiserver's under `control-plane/`, copied there when the demo ends, also when it fails.
//!
//! Not product code: it never ships.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use api::{Assignment, IPPool};
use clap::Parser;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::{DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(
    about = "Run rangepool's controller and CNI plugin on an example, against a real kube-apiserver started on 127.0.0.1"
)]
struct Args {
    /// Directory with the example's manifests.
    #[arg(long, default_value = "config/examples/legacy-firewall")]
    example: PathBuf,
    /// Directory holding the built `rangepool-controller` and `rangepool-ipam` binaries.
    #[arg(long, default_value = "target/debug")]
    bin_dir: PathBuf,
    /// How long to wait for the controller to decide every pod.
    #[arg(long, default_value_t = 60)]
    timeout_seconds: u64,
    /// Where the logs of the controller, the plugin and the control plane are kept (replaced by
    /// the next run).
    #[arg(long, default_value = "target/rangepool-logs/demo")]
    log_dir: PathBuf,
}

/// A child process that is killed when dropped, so nothing outlives the demo.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Prints what the demo did, with the time since it started, so that a slow part shows.
struct Clock(Instant);

impl Clock {
    fn say(&self, what: impl std::fmt::Display) {
        println!("[{:>5.1} s] {what}", self.0.elapsed().as_secs_f64());
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let controller_bin = args.bin_dir.join("rangepool-controller");
    let plugin_bin = args.bin_dir.join("rangepool-ipam");
    for bin in [&controller_bin, &plugin_bin] {
        if !bin.exists() {
            bail!(
                "{} is missing: build it first (make demo does)",
                bin.display()
            );
        }
    }
    std::fs::create_dir_all(&args.log_dir)?;
    let logs = args.log_dir.canonicalize()?;
    // The logs of this run only.
    for old in ["controller.log", "plugin.log"] {
        let _ = std::fs::remove_file(logs.join(old));
    }
    let _ = std::fs::remove_dir_all(logs.join("control-plane"));

    let clock = Clock(Instant::now());
    clock.say(format_args!(
        "starting etcd and kube-apiserver {} on 127.0.0.1 (TLS, RBAC, admission; a few seconds) ...",
        envtest::binaries::version()
    ));
    let plane = envtest::ControlPlane::start()
        .await
        .context("starting the control plane")?;
    let outcome = demo(&args, &plane, &clock, &logs).await;
    // Also when the demo failed: the logs tell why.
    let kept = keep_control_plane_logs(plane.dir(), &logs.join("control-plane"));
    drop(plane);
    outcome?;
    println!(
        "logs: {} (controller.log, plugin.log; control-plane/: {})",
        logs.display(),
        kept?.join(", ")
    );
    Ok(())
}

/// Everything after the control plane is up; `logs` is the log folder.
async fn demo(
    args: &Args,
    plane: &envtest::ControlPlane,
    clock: &Clock,
    logs: &Path,
) -> anyhow::Result<()> {
    let controller_bin = args.bin_dir.join("rangepool-controller");
    let plugin_bin = args.bin_dir.join("rangepool-ipam");
    let client = plane.client()?;
    clock.say(format_args!("API server {} is ready", plane.url()));

    plane
        .install_crds(
            &api::crd::all()
                .into_iter()
                .map(|(_, c)| c)
                .collect::<Vec<_>>(),
        )
        .await
        .context("installing the CRDs")?;
    // As the chart installs it, without podCIDRs: the controller reads the pod CIDR from
    // kubeadm's ConfigMap, which the example contains.
    let chart = ["--set", "podCIDRs=null"];
    let controller_identity = plane
        .chart_identity_with(envtest::ChartIdentity::Controller, &chart)
        .await
        .context("the chart's controller identity")?;
    let node_identity = plane
        .chart_identity_with(envtest::ChartIdentity::Node, &chart)
        .await
        .context("the chart's node identity")?;
    clock.say(format_args!(
        "applied the CRDs and the chart's RBAC: the controller runs as {}, the plugin as {}",
        controller_identity.user, node_identity.user
    ));
    let applied = apply_dir(plane, &client, &args.example).await?;
    clock.say(format_args!(
        "applied {applied} objects from {}",
        args.example.display()
    ));

    let controller_log = logs.join("controller.log");
    let log = std::fs::File::create(&controller_log)?;
    let _controller = Guard(
        Command::new(&controller_bin)
            .arg("--kubeconfig")
            .arg(&controller_identity.kubeconfig)
            .args([
                "--metrics-addr",
                "127.0.0.1:0",
                "--lease-namespace",
                "kube-system",
                "--identity",
                "demo",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting rangepool-controller")?,
    );
    clock.say(format_args!(
        "controller started (log: {}); waiting until it has decided every pod ...",
        controller_log.display()
    ));

    let pods: Api<Pod> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(args.timeout_seconds);
    let pods = loop {
        let list = pods.list(&ListParams::default()).await?.items;
        let decided = list.iter().all(|p| {
            let a = Assignment::from_annotations(p.annotations()).unwrap_or_default();
            a.ipv4.is_some() || a.ipv6.is_some() || a.error.is_some()
        });
        if decided && !list.is_empty() {
            break list;
        }
        if Instant::now() > deadline {
            bail!(
                "the controller did not decide every pod within {}s; see {}",
                args.timeout_seconds,
                controller_log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    clock.say(format_args!(
        "the controller decided all {} pods; running rangepool-ipam ADD for each (log: {})",
        pods.len(),
        logs.join("plugin.log").display()
    ));

    let pools: BTreeMap<String, IPPool> = Api::<IPPool>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|p| (p.name_any(), p))
        .collect();
    let cni_config = json!({
        "cniVersion": "1.1.0",
        "name": "demo",
        "type": "bridge",
        "ipam": {
            "type": "rangepool-ipam",
            "kubeconfig": node_identity.kubeconfig,
            "timeout": 5,
            "prefix": "host",
        }
    });

    println!();
    println!(
        "{:<12} {:<10} {:<8} {:<10} ADDRESS (from rangepool-ipam ADD) / WHY NOT",
        "POD", "NAMESPACE", "NODE", "POOL"
    );
    let mut misplaced = Vec::new();
    let (mut with, mut without) = (0, 0);
    for pod in &pods {
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let uid = pod.uid().unwrap_or_default();
        let reply = cni_add(&plugin_bin, &cni_config, &ns, &name, &uid, logs)?;
        match reply {
            Ok(address) => {
                with += 1;
                let assignment =
                    Assignment::from_annotations(pod.annotations()).unwrap_or_default();
                let pool = assignment
                    .ipv4
                    .as_ref()
                    .map(|a| a.pool.clone())
                    .unwrap_or_default();
                let inside = pools
                    .get(&pool)
                    .and_then(|p| p.spec.cidr.parse::<ipnet::IpNet>().ok())
                    .zip(
                        address
                            .split('/')
                            .next()
                            .and_then(|a| a.parse::<std::net::IpAddr>().ok()),
                    )
                    .is_some_and(|(net, addr)| net.contains(&addr));
                if !inside {
                    misplaced.push(format!("{ns}/{name}: {address} is not inside pool {pool}"));
                }
                println!("{name:<12} {ns:<10} {node:<8} {pool:<10} {address}");
            }
            Err(message) => {
                without += 1;
                let event = warning_event(&client, &ns, &name).await.unwrap_or(message);
                println!(
                    "{name:<12} {ns:<10} {node:<8} {:<10} no address: {event}",
                    "-"
                );
            }
        }
    }
    println!();
    clock.say(format_args!(
        "{with} pods got an address, {without} got none (the example has three such pods on purpose)."
    ));
    if !misplaced.is_empty() {
        for m in &misplaced {
            eprintln!("WRONG: {m}");
        }
        bail!("{} addresses are outside their pool", misplaced.len());
    }
    println!("every address lies inside the pool it came from.");
    Ok(())
}

/// Copies the control plane's logs (etcd.log, kube-apiserver.log, ...) into `to`, since the
/// control plane's own folder is temporary. Returns the names copied.
fn keep_control_plane_logs(from: &Path, to: &Path) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(to)?;
    let mut names = Vec::new();
    for entry in std::fs::read_dir(from)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "log") {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            std::fs::copy(&path, to.join(&name))
                .with_context(|| format!("keeping {}", path.display()))?;
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Runs the plugin's ADD for one pod. `Ok(address)` or `Err(the CNI error message)`.
fn cni_add(
    plugin: &Path,
    config: &Value,
    ns: &str,
    name: &str,
    uid: &str,
    work: &Path,
) -> anyhow::Result<Result<String, String>> {
    let mut child = Command::new(plugin)
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", format!("demo-{uid}"))
        .env("CNI_NETNS", "/var/run/netns/demo")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", plugin.parent().unwrap_or(Path::new(".")))
        .env(
            "CNI_ARGS",
            format!("K8S_POD_NAMESPACE={ns};K8S_POD_NAME={name};K8S_POD_UID={uid}"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(
            std::fs::File::options()
                .create(true)
                .append(true)
                .open(work.join("plugin.log"))?,
        )
        .spawn()
        .context("running rangepool-ipam")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(config.to_string().as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let reply: Value =
        serde_json::from_slice(&out.stdout).context("rangepool-ipam printed no JSON")?;
    if out.status.success() {
        let address = reply
            .pointer("/ips/0/address")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        Ok(Ok(address))
    } else {
        let msg = reply.get("msg").and_then(Value::as_str).unwrap_or("error");
        let details = reply.get("details").and_then(Value::as_str).unwrap_or("");
        Ok(Err(if details.is_empty() {
            msg.to_owned()
        } else {
            format!("{msg}: {details}")
        }))
    }
}

/// The newest Warning Event's note about a pod.
async fn warning_event(client: &Client, ns: &str, name: &str) -> Option<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let list = events.list(&ListParams::default()).await.ok()?.items;
    list.into_iter()
        .rev()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .find(|e| e.type_.as_deref() == Some("Warning"))
        .map(|e| {
            format!(
                "[{}] {}",
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default()
            )
        })
}

/// Creates every object in the YAML files of `dir`, in an order that satisfies dependencies.
async fn apply_dir(
    plane: &envtest::ControlPlane,
    client: &Client,
    dir: &Path,
) -> anyhow::Result<usize> {
    let mut docs = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        let values: Vec<Value> = serde_saphyr::from_multiple(&text)
            .with_context(|| format!("reading {}", file.display()))?;
        docs.extend(values.into_iter().filter(|v| !v.is_null()));
    }
    let rank = |v: &Value| match v.get("kind").and_then(Value::as_str) {
        Some("Namespace") => 0,
        Some("Node" | "ConfigMap") => 1,
        Some("IPPool") => 2,
        _ => 3,
    };
    docs.sort_by_key(rank);
    let count = docs.len();
    for doc in docs {
        let obj: DynamicObject = serde_json::from_value(doc)?;
        let types = obj
            .types
            .clone()
            .context("an object without apiVersion/kind")?;
        let gvk = GroupVersionKind::try_from(&types)?;
        let (resource, caps) = kube::discovery::pinned_kind(client, &gvk).await?;
        let api: Api<DynamicObject> = match (caps.scope, obj.namespace()) {
            (kube::discovery::Scope::Namespaced, Some(ns)) => {
                Api::namespaced_with(client.clone(), &ns, &resource)
            }
            (kube::discovery::Scope::Namespaced, None) => {
                Api::default_namespaced_with(client.clone(), &resource)
            }
            (kube::discovery::Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
        };
        api.create(&PostParams::default(), &obj)
            .await
            .with_context(|| format!("creating {} {}", types.kind, obj.name_any()))?;
        if types.kind == "Namespace" {
            // Its pods need the `default` ServiceAccount a controller-manager would make.
            plane
                .ensure_default_service_account(&obj.name_any())
                .await?;
        }
    }
    Ok(count)
}
