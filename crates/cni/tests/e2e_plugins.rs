//! End to end under Debian's real main plugins. With `bridge`: pods of two pools, each in its own
//! network namespace on a bridge this test creates, get the addresses the controller assigned,
//! are reachable from the host, pass CHECK, and keep their addresses in the blocks after DEL; the
//! plugin writes no block on the way. With `ptp`: the README's ptp configuration works as
//! documented. The API server is a real one (envtest): the plugin runs with the chart's node
//! credentials over TLS, the controller with the chart's controller credentials.
//!
//! Needs root (network namespaces, links) and `tests/tools/install-cni-plugins.sh`; skipped with
//! a printed reason when not root. Every namespace and link it creates carries a unique name and
//! is removed by a guard even when an assertion fails; so is the host's IPv4 forwarding setting,
//! which ptp turns on. Traffic goes only to the pod addresses in those namespaces.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use api::IPPool;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::Api;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use common::{Cluster, PLUGIN, pod};

const BRIDGE_PLUGIN: &str = "/usr/lib/cni/bridge";
const PTP_PLUGIN: &str = "/usr/lib/cni/ptp";
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
const DEBIAN_CNI_DIR: &str = "/usr/lib/cni";

/// Links, namespaces and settings this test made or changed; undone on drop, whatever happened.
struct Net {
    bridge: Option<String>,
    namespaces: Vec<String>,
    ip_forward: Option<String>,
}

impl Net {
    fn with_bridge(bridge: &str, gateway: &IpNet) -> Net {
        let net = Net {
            bridge: Some(bridge.to_owned()),
            namespaces: Vec::new(),
            ip_forward: None,
        };
        ip(&["link", "add", bridge, "type", "bridge"]);
        ip(&["addr", "add", &gateway.to_string(), "dev", bridge]);
        ip(&["link", "set", bridge, "up"]);
        net
    }

    /// Remembers the host's IPv4 forwarding setting, to put it back on drop.
    fn keeping_ip_forward() -> Net {
        Net {
            bridge: None,
            namespaces: Vec::new(),
            ip_forward: Some(std::fs::read_to_string(IP_FORWARD).unwrap()),
        }
    }

    fn namespace(&mut self, name: &str) -> PathBuf {
        ip(&["netns", "add", name]);
        self.namespaces.push(name.to_owned());
        PathBuf::from("/var/run/netns").join(name)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end in it and with it the host end.
        for ns in &self.namespaces {
            let _ = quiet("ip", &["netns", "del", ns]);
        }
        if let Some(bridge) = &self.bridge {
            let _ = quiet("ip", &["link", "del", bridge]);
        }
        if let Some(value) = &self.ip_forward {
            let _ = std::fs::write(IP_FORWARD, value);
        }
    }
}

fn quiet(program: &str, args: &[&str]) -> std::io::Result<std::process::Output> {
    std::process::Command::new(program).args(args).output()
}

/// Runs `ip ARGS`, failing the test with its stderr when it fails.
fn ip(args: &[&str]) -> String {
    let out = quiet("ip", args).expect("ip runs");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn is_root() -> bool {
    quiet("id", &["-u"]).is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A /24 in 10.`second`.0.0/16 that no route or address of this host mentions.
fn free_subnet(second: u8) -> IpNet {
    let taken = format!(
        "{}{}",
        ip(&["-4", "route", "show"]),
        ip(&["-4", "addr", "show"])
    );
    // Start at a place given by the process ID so that concurrent runs pick different ones.
    let start = std::process::id() % 151;
    let third = (0..151u32)
        .map(|k| 100 + (start + k) % 151)
        .find(|t| !taken.contains(&format!("10.{second}.{t}.")))
        .expect("a free /24");
    format!("10.{second}.{third}.0/24").parse().unwrap()
}

/// Runs a main plugin as a container runtime would, with our plugin in `CNI_PATH`.
async fn main_plugin(
    plugin: &str,
    command: &str,
    env: &[(&str, String)],
    conf: &Value,
) -> (i32, String, String) {
    let mut child = tokio::process::Command::new(plugin)
        .env_clear()
        .env("CNI_COMMAND", command)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("main plugin starts");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(conf.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The controller's part, by the real controller: it runs in this process with the chart's
/// controller credentials, with a pod CIDR (the /16 around the pools) that contains every pool,
/// until each pod carries the address it assigned; then it stops.
async fn controller_assigns(cluster: &Cluster, pods: &[Pod]) {
    let pools = Api::<IPPool>::all(cluster.client.clone());
    let first = pools.list(&Default::default()).await.unwrap().items[0]
        .spec
        .cidr
        .clone();
    let pod_cidr = IpNet::new(first.parse::<IpNet>().unwrap().network(), 16)
        .unwrap()
        .trunc();
    let nodes = Api::<k8s_openapi::api::core::v1::Node>::all(cluster.client.clone());
    for node in pods
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
    {
        let node: k8s_openapi::api::core::v1::Node =
            serde_json::from_value(json!({"metadata": {"name": node}})).unwrap();
        // Already there from an earlier pod: fine.
        let _ = nodes.create(&Default::default(), &node).await;
    }
    let settings = rangepool_controller::config::Settings {
        pod_cidrs: Some(vec![pod_cidr]),
        families: vec![ipam::cidr::Family::V4],
        leak_grace: std::time::Duration::from_secs(300),
        sweep_interval: std::time::Duration::from_secs(60),
        default_pool: false,
        strict_affinity: false,
        ip_cooldown: std::time::Duration::ZERO,
        max_blocks_per_node: 0,
    };
    let options = rangepool_controller::run::Options {
        identity: "e2e".into(),
        lease_namespace: "kube-system".into(),
        lease_duration: 15,
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let client = cluster
        .plane
        .chart_identity(envtest::ChartIdentity::Controller)
        .await
        .expect("the chart's controller identity")
        .client;
    let controller = tokio::spawn(rangepool_controller::run::run(
        client,
        settings,
        options,
        async {
            let _ = stopped.await;
        },
    ));
    let api = Api::<Pod>::namespaced(cluster.client.clone(), "e2e");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for p in pods {
        loop {
            let fresh = api.get(&p.name_any()).await.unwrap();
            if fresh.annotations().contains_key(api::keys::ASSIGNED_IPV4) {
                break;
            }
            let error = fresh.annotations().get(api::keys::ASSIGNMENT_ERROR);
            assert!(
                error.is_none(),
                "the controller refused {}: {error:?}",
                p.name_any()
            );
            assert!(
                std::time::Instant::now() < deadline,
                "the controller did not assign {}",
                p.name_any()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    let _ = stop.send(());
    controller.await.unwrap().unwrap();
}

/// Whether the test can run here; prints why not.
fn runnable(plugin: &str) -> bool {
    if !is_root() {
        eprintln!(
            "SKIPPED: end-to-end tests under {plugin} need root (network namespaces and links)"
        );
        return false;
    }
    assert!(
        Path::new(plugin).exists(),
        "{plugin} is missing: run tests/tools/install-cni-plugins.sh (make setup)"
    );
    true
}

/// A temporary `CNI_PATH` holding our plugin, then Debian's.
fn cni_path() -> (tempfile::TempDir, String) {
    let plugins = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(PLUGIN, plugins.path().join("rangepool-ipam")).unwrap();
    let path = format!("{}:{DEBIAN_CNI_DIR}", plugins.path().display());
    (plugins, path)
}

fn cni_env(p: &Pod, container: &str, netns: &Path, cni_path: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CNI_CONTAINERID", container.to_owned()),
        ("CNI_NETNS", netns.display().to_string()),
        ("CNI_IFNAME", "eth0".to_owned()),
        ("CNI_PATH", cni_path.to_owned()),
        (
            "CNI_ARGS",
            format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_UID={}",
                p.namespace().unwrap(),
                p.name_any(),
                p.uid().unwrap()
            ),
        ),
    ]
}

fn ping(address: &IpAddr, via: Option<&str>) -> bool {
    let target = address.to_string();
    let mut args = vec!["-c1", "-W1"];
    if let Some(dev) = via {
        args.extend(["-I", dev]);
    }
    args.push(&target);
    quiet("ping", &args).is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn pods_of_two_pools_on_a_real_bridge() {
    if !runnable(BRIDGE_PLUGIN) {
        return;
    }
    let cluster = Cluster::start().await;
    let subnet = free_subnet(99);
    let base = match subnet.network() {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(_) => unreachable!("an IPv4 subnet"),
    };
    let at = |last: u8| format!("{}.{}.{}.{last}", base[0], base[1], base[2]);
    let gateway: IpNet = format!("{}/24", at(1)).parse().unwrap();
    let pid = std::process::id();
    let bridge = format!("rpbr{pid}");
    let mut net = Net::with_bridge(&bridge, &gateway);

    // Two pools inside the bridge's /24, the gateway outside both.
    let ctl = cluster.controller();
    ctl.pool("gold", &format!("{}/26", at(128))).await;
    ctl.pool("silver", &format!("{}/26", at(192))).await;
    let mut pods = Vec::new();
    for (name, pool) in [("e2e-gold", "gold"), ("e2e-silver", "silver")] {
        let p = pod(name)
            .in_ns("e2e")
            .annotated(api::keys::IPV4_POOLS, &format!("[\"{pool}\"]"))
            .create(&cluster)
            .await;
        pods.push(p);
    }
    controller_assigns(&cluster, &pods).await;

    let (_plugins, cni_path) = cni_path();
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": format!("rp-e2e-{pid}"),
        "type": "bridge",
        "bridge": bridge,
        "isGateway": false,
        "ipMasq": false,
        "ipam": {
            "type": "rangepool-ipam",
            "kubeconfig": cluster.kubeconfig(),
            "timeout": 10,
            "prefix": {"ipv4": 24},
            "gateway": {"ipv4": at(1)}
        }
    });

    for (i, p) in pods.iter().enumerate() {
        let netns = net.namespace(&format!("rp-e2e-{pid}-{i}"));
        let container = format!("e2e{pid}x{i}");
        let env = cni_env(p, &container, &netns, &cni_path);
        let first = if i == 0 { at(128) } else { at(192) };
        let pool_cidr: IpNet = format!("{first}/26").parse().unwrap();
        let written = cluster.block_version(&pool_cidr.to_string()).await;
        let (code, stdout, stderr) = main_plugin(BRIDGE_PLUGIN, "ADD", &env, &conf).await;
        assert_eq!(code, 0, "bridge ADD: {stdout} {stderr}");
        let result: Value = serde_json::from_str(&stdout).unwrap();

        // The address the controller assigned, from the pod's pool, on the pod's interface.
        let assigned = cluster_address(&cluster, p).await;
        assert!(pool_cidr.contains(&assigned), "{assigned} in {pool_cidr}");
        let ips = result["ips"].as_array().unwrap();
        assert_eq!(ips[0]["address"], format!("{assigned}/24"), "{result}");
        let shown = ip(&[
            "-n",
            &format!("rp-e2e-{pid}-{i}"),
            "-4",
            "addr",
            "show",
            "eth0",
        ]);
        assert!(shown.contains(&format!("inet {assigned}/24")), "{shown}");

        // Reachable from the host over our bridge.
        assert!(ping(&assigned, Some(&bridge)), "ping {assigned}");

        let mut checked = conf.clone();
        checked["prevResult"] = result;
        let (code, stdout, stderr) = main_plugin(BRIDGE_PLUGIN, "CHECK", &env, &checked).await;
        assert_eq!(code, 0, "bridge CHECK: {stdout} {stderr}");

        let (code, stdout, stderr) = main_plugin(BRIDGE_PLUGIN, "DEL", &env, &checked).await;
        assert_eq!(code, 0, "bridge DEL: {stdout} {stderr}");
        assert_eq!(
            cluster
                .holder(&pool_cidr.to_string(), &assigned.to_string())
                .await,
            p.uid(),
            "the address stays the pod's after DEL"
        );
        assert_eq!(
            cluster.block_version(&pool_cidr.to_string()).await,
            written,
            "ADD, CHECK and DEL wrote nothing"
        );
        let after = ip(&["-n", &format!("rp-e2e-{pid}-{i}"), "-4", "addr", "show"]);
        assert!(!after.contains(&assigned.to_string()), "{after}");
    }
}

/// The address the controller wrote on the pod.
async fn cluster_address(cluster: &Cluster, p: &Pod) -> IpAddr {
    let fresh = Api::<Pod>::namespaced(cluster.client.clone(), "e2e")
        .get(&p.name_any())
        .await
        .unwrap();
    fresh.annotations()[api::keys::ASSIGNED_IPV4]
        .parse()
        .unwrap()
}

/// The README's ptp example: a subnet prefix with the gateway inside it but outside the pools.
#[tokio::test]
async fn a_pod_under_ptp_with_the_documented_configuration() {
    if !runnable(PTP_PLUGIN) {
        return;
    }
    let cluster = Cluster::start().await;
    let subnet = free_subnet(98);
    let IpAddr::V4(base) = subnet.network() else {
        unreachable!("an IPv4 subnet");
    };
    let [a, b, c, _] = base.octets();
    let pid = std::process::id();
    // ptp turns on IPv4 forwarding on the host; the guard puts the old value back.
    let mut net = Net::keeping_ip_forward();

    let ctl = cluster.controller();
    ctl.pool("ptp-pool", &format!("{a}.{b}.{c}.64/26")).await;
    let p = pod("e2e-ptp")
        .in_ns("e2e")
        .annotated(api::keys::IPV4_POOLS, "[\"ptp-pool\"]")
        .create(&cluster)
        .await;
    controller_assigns(&cluster, std::slice::from_ref(&p)).await;
    let assigned = cluster_address(&cluster, &p).await;

    let block = format!("{a}.{b}.{c}.64/26");
    let written = cluster.block_version(&block).await;
    let (_plugins, cni_path) = cni_path();
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": format!("rp-e2e-ptp-{pid}"),
        "type": "ptp",
        "ipMasq": false,
        "ipam": {
            "type": "rangepool-ipam",
            "kubeconfig": cluster.kubeconfig(),
            "prefix": {"ipv4": 24},
            "gateway": {"ipv4": format!("{a}.{b}.{c}.1")},
            "routes": [{"dst": "0.0.0.0/0"}]
        }
    });
    let netns = net.namespace(&format!("rp-e2e-ptp-{pid}"));
    let container = format!("e2eptp{pid}");
    let env = cni_env(&p, &container, &netns, &cni_path);

    let (code, stdout, stderr) = main_plugin(PTP_PLUGIN, "ADD", &env, &conf).await;
    assert_eq!(code, 0, "ptp ADD: {stdout} {stderr}");
    let result: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        result["ips"][0]["address"],
        format!("{assigned}/24"),
        "{result}"
    );
    let routes = ip(&["-n", &format!("rp-e2e-ptp-{pid}"), "-4", "route", "show"]);
    assert!(
        routes.contains(&format!("default via {a}.{b}.{c}.1 dev eth0")),
        "{routes}"
    );
    assert!(ping(&assigned, None), "ping {assigned}");

    let mut checked = conf.clone();
    checked["prevResult"] = result;
    let (code, stdout, stderr) = main_plugin(PTP_PLUGIN, "CHECK", &env, &checked).await;
    assert_eq!(code, 0, "ptp CHECK: {stdout} {stderr}");
    let (code, stdout, stderr) = main_plugin(PTP_PLUGIN, "DEL", &env, &checked).await;
    assert_eq!(code, 0, "ptp DEL: {stdout} {stderr}");
    assert_eq!(cluster.holder(&block, &assigned.to_string()).await, p.uid());
    assert_eq!(
        cluster.block_version(&block).await,
        written,
        "no block write"
    );
}
