//! The plugin through the node agent (`ipam.agentSocket`): the built `rangepool-agent` runs as a
//! process with the chart's node credentials, and the plugin, without a kubeconfig, asks it over
//! the unix socket. Every answer must be the one the direct path gives, error messages included;
//! an agent that is not there is "try again later".

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::{Duration, Instant};

use api::keys;
use envtest::faults::FailWrites;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::common::{
    Agent, Call, Cluster, Outcome, netconf, pod, replace_file, via_agent, with_ipam,
};

const BLOCK: &str = "10.99.0.128/26";

/// Runs `call` with `conf` directly and with `conf` sent through `agent`.
async fn both(call: impl Fn(&Value) -> Call, conf: &Value, agent: &Agent) -> (Outcome, Outcome) {
    let direct = call(conf).run().await;
    let through = call(&via_agent(conf.clone(), &agent.socket)).run().await;
    (direct, through)
}

/// Asserts that both ways fail with `code` and the same message, and returns it.
fn same_failure(direct: &Outcome, through: &Outcome, code: i32) -> String {
    let msg = direct.failed(code);
    assert_eq!(through.failed(code), msg, "agent: {}", through.stderr);
    msg
}

#[tokio::test]
async fn add_through_the_agent_returns_what_the_direct_path_returns() {
    // The "pool" prefix needs the node's `get` on IPPools, which the chart grants only for it.
    let cluster = Cluster::start_with(&["--set", "cni.prefix=pool"]).await;
    let agent = Agent::start(cluster.kubeconfig(), cluster.plane.dir()).await;
    let ctl = cluster.controller();
    ctl.pool("payments", "10.99.0.128/25").await;
    ctl.pool("payments-v6", "fd00:99::/112").await;
    let web = pod("web").create(&cluster).await;
    let v4 = ctl.allocate(&web, "payments", BLOCK, "10.99.0.131").await;
    let v6 = ctl
        .allocate(&web, "payments-v6", "fd00:99::/122", "fd00:99::7")
        .await;
    let assignment = api::Assignment {
        ipv4: Some(v4),
        ipv6: Some(v6),
        error: None,
    };
    ctl.annotate(&web, &assignment).await;
    let before = cluster.block_version(BLOCK).await;
    let base = with_ipam(
        netconf("1.1.0", cluster.kubeconfig()),
        "logLevel",
        json!("debug"),
    );
    let base = with_ipam(
        base,
        "routes",
        json!([{"dst": "0.0.0.0/0", "gw": "10.99.0.129"}, {"dst": "::/0"}]),
    );
    let add = |conf: &Value| Call::new("ADD", &web, "c1", conf);
    for (prefix, want) in [
        (json!("block"), ["10.99.0.131/26", "fd00:99::7/122"]),
        (json!("pool"), ["10.99.0.131/25", "fd00:99::7/112"]),
        (json!({"ipv4": 24}), ["10.99.0.131/24", "fd00:99::7/128"]),
    ] {
        let conf = with_ipam(base.clone(), "prefix", prefix.clone());
        let (direct, through) = both(add, &conf, &agent).await;
        let result = through.ok().expect("ADD prints a result");
        assert_eq!(result, direct.ok().unwrap(), "prefix {prefix}");
        assert_eq!(through.addresses(), want, "prefix {prefix}");
        // The plugin asked the agent and nothing else.
        assert_eq!(
            through.requests(),
            ["ADD through the node agent on ".to_owned() + &agent.socket.display().to_string()],
            "{}",
            through.stderr
        );
    }
    // The agent made the reads the direct path makes, with its one client.
    let log = agent.log();
    assert!(
        log.contains("request: GET pods/shop/web (metadata)"),
        "{log}"
    );
    assert!(
        log.contains("request: GET ipamblocks/fd00-99-0-0-0-0-0-0-122"),
        "{log}"
    );
    assert!(log.contains("request: GET ippools/payments-v6"), "{log}");
    assert!(
        log.contains("verified 10.99.0.131 (pool payments, IPAMBlock 10-99-0-128-26)"),
        "{log}"
    );
    assert_eq!(
        log.matches("reading kubeconfig").count(),
        1,
        "one client for every call: {log}"
    );
    assert_eq!(
        cluster.block_version(BLOCK).await,
        before,
        "nothing written"
    );
}

#[tokio::test]
async fn add_through_the_agent_waits_for_the_controllers_annotation() {
    let cluster = Cluster::start().await;
    let agent = Agent::start(cluster.kubeconfig(), cluster.plane.dir()).await;
    let web = pod("web").create(&cluster).await;
    let conf = via_agent(
        with_ipam(netconf("0.4.0", cluster.kubeconfig()), "timeout", json!(20)),
        &agent.socket,
    );
    let add = Call::new("ADD", &web, "c1", &conf).spawn().await;
    agent.logged("waiting up to 20s for the controller").await;
    agent.logged("request: WATCH pods/shop").await;
    cluster
        .controller()
        .assign(&web, "payments", BLOCK, "10.99.0.170")
        .await;
    let out = add.finish().await;
    assert_eq!(out.addresses(), ["10.99.0.170/26"], "{}", out.stderr);

    // No assignment within the timeout: the direct path's message, code 11.
    let idle = pod("idle").create(&cluster).await;
    let conf = with_ipam(netconf("1.1.0", cluster.kubeconfig()), "timeout", json!(1));
    let (direct, through) = both(|c| Call::new("ADD", &idle, "c1", c), &conf, &agent).await;
    let msg = same_failure(&direct, &through, 11);
    assert!(msg.contains("has not assigned an address"), "{msg}");
}

#[tokio::test]
async fn refusals_are_the_direct_paths_word_for_word() {
    let cluster = Cluster::start().await;
    let agent = Agent::start(cluster.kubeconfig(), cluster.plane.dir()).await;
    let ctl = cluster.controller();
    let victim = pod("victim").create(&cluster).await;
    ctl.assign(&victim, "payments", BLOCK, "10.99.0.150").await;
    let conf = netconf("1.1.0", cluster.kubeconfig());

    // A forged annotation: another pod's address. The block records another UID.
    let thief = pod("thief")
        .annotated(keys::ASSIGNED_IPV4, "10.99.0.150")
        .annotated(keys::ASSIGNED_POOLS, r#"{"ipv4":"payments"}"#)
        .annotated(keys::ASSIGNED_BLOCKS, r#"{"ipv4":"10-99-0-128-26"}"#)
        .create(&cluster)
        .await;
    let (direct, through) = both(|c| Call::new("ADD", &thief, "t1", c), &conf, &agent).await;
    let msg = same_failure(&direct, &through, 101);
    assert!(
        msg.contains("pod shop/thief") && msg.contains("allocated to another pod"),
        "{msg}"
    );

    // The sandbox of an older pod of the same name.
    let stale = |c: &Value| {
        Call::new("ADD", &victim, "c1", c).env(
            "CNI_ARGS",
            "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=victim;K8S_POD_UID=0000-stale",
        )
    };
    let (direct, through) = both(stale, &conf, &agent).await;
    let msg = same_failure(&direct, &through, 103);
    assert!(msg.contains("0000-stale"), "{msg}");

    // The controller's error, and a pod that is not there.
    let failed = pod("failed").create(&cluster).await;
    ctl.fail(&failed, "pool \"gold\" does not exist\nsecond line")
        .await;
    let (direct, through) = both(|c| Call::new("ADD", &failed, "f1", c), &conf, &agent).await;
    let msg = same_failure(&direct, &through, 100);
    assert!(msg.contains("does not exist\\nsecond line"), "{msg}");
    let ghost = |c: &Value| {
        Call::new("ADD", &failed, "g1", c).env(
            "CNI_ARGS",
            "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=nobody;K8S_POD_UID=0000-nobody",
        )
    };
    let (direct, through) = both(ghost, &conf, &agent).await;
    same_failure(&direct, &through, 102);
    assert_eq!(
        cluster.holder(BLOCK, "10.99.0.150").await,
        kube::ResourceExt::uid(&victim)
    );
}

#[tokio::test]
async fn a_refusal_read_from_the_cache_is_confirmed_from_etcd() {
    let cluster = Cluster::start().await;
    let faults = cluster.faults().await;
    let agent = Agent::start(&faults.kubeconfig, cluster.plane.dir()).await;
    let web = pod("web").create(&cluster).await;
    cluster
        .controller()
        .assign(&web, "payments", BLOCK, "10.99.0.190")
        .await;
    let conf = with_ipam(
        netconf("1.1.0", &faults.kubeconfig),
        "logLevel",
        json!("debug"),
    );
    // The first read of the block answers 404, as a watch cache that has not seen the block
    // yet would: both ways read everything again from etcd and grant the address.
    for conf in [conf.clone(), via_agent(conf.clone(), &agent.socket)] {
        faults
            .proxy
            .fail_writes(FailWrites::new("rangepool.dev", "ipamblocks", 404, 1).verbs(&["get"]));
        let out = Call::new("ADD", &web, "c1", &conf).run().await;
        assert_eq!(out.addresses(), ["10.99.0.190/26"], "{}", out.stderr);
        assert_eq!(faults.proxy.pending(), 0, "the 404 was handed out");
    }
    let log = agent.log();
    let reads: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once("request: ").map(|(_, r)| r))
        .collect();
    assert_eq!(
        reads,
        [
            "GET pods/shop/web (metadata)",
            "GET ipamblocks/10-99-0-128-26",
            "GET pods/shop/web (metadata) (latest)",
            "GET ipamblocks/10-99-0-128-26 (latest)",
        ],
        "{log}"
    );
    assert!(
        log.contains("confirming with the latest state from etcd before refusing"),
        "{log}"
    );
    // A pod the cache does not have yet, likewise.
    faults
        .proxy
        .fail_writes(FailWrites::new("", "pods", 404, 1).verbs(&["get"]));
    let out = Call::new("ADD", &web, "c2", &conf).run().await;
    assert_eq!(out.addresses(), ["10.99.0.190/26"], "{}", out.stderr);
    // A refusal that stands is the one read from etcd.
    let thief = pod("thief")
        .annotated(keys::ASSIGNED_IPV4, "10.99.0.190")
        .annotated(keys::ASSIGNED_POOLS, r#"{"ipv4":"payments"}"#)
        .annotated(keys::ASSIGNED_BLOCKS, r#"{"ipv4":"10-99-0-128-26"}"#)
        .create(&cluster)
        .await;
    let out = Call::new("ADD", &thief, "t1", &conf).run().await;
    assert!(out.failed(101).contains("allocated to another pod"));
    assert_eq!(
        out.requests(),
        [
            "GET pods/shop/thief (metadata)",
            "GET ipamblocks/10-99-0-128-26",
            "GET pods/shop/thief (metadata) (latest)",
            "GET ipamblocks/10-99-0-128-26 (latest)",
        ]
    );
}

#[tokio::test]
async fn check_and_status_through_the_agent() {
    let cluster = Cluster::start().await;
    let agent = Agent::start(cluster.kubeconfig(), cluster.plane.dir()).await;
    let web = pod("web").create(&cluster).await;
    cluster
        .controller()
        .assign(&web, "payments", BLOCK, "10.99.0.140")
        .await;
    let conf = netconf("1.1.0", cluster.kubeconfig());
    let through = via_agent(conf.clone(), &agent.socket);
    let result = Call::new("ADD", &web, "c1", &through)
        .run()
        .await
        .ok()
        .unwrap();

    let mut checked = through.clone();
    checked["prevResult"] = result;
    let out = Call::new("CHECK", &web, "c1", &checked).run().await;
    assert_eq!(out.ok(), None, "{}", out.stderr);
    // prevResult lists another address: the direct path's 105.
    let mut moved = conf.clone();
    moved["prevResult"] = json!({"ips": [{"address": "10.99.0.141/26"}]});
    let (direct, through_agent) = both(|c| Call::new("CHECK", &web, "c1", c), &moved, &agent).await;
    let msg = same_failure(&direct, &through_agent, 105);
    assert!(msg.contains("prevResult does not list it"), "{msg}");

    let out = Call::bare("STATUS", &through).run().await;
    assert_eq!(out.ok(), None, "{}", out.stderr);
    assert!(agent.log().contains("request: LIST ipamblocks (limit 1)"));
}

#[tokio::test]
async fn an_agent_that_is_not_there_is_try_again_later() {
    let cluster = Cluster::start().await;
    let mut agent = Agent::start(cluster.kubeconfig(), cluster.plane.dir()).await;
    let run = agent.socket.parent().unwrap().to_owned();
    assert_eq!(mode(&run), 0o700, "the socket's directory is root's only");
    assert_eq!(mode(&agent.socket), 0o600, "the socket is root's only");
    let web = pod("web").create(&cluster).await;
    cluster
        .controller()
        .assign(&web, "payments", BLOCK, "10.99.0.160")
        .await;
    let conf = via_agent(netconf("1.1.0", cluster.kubeconfig()), &agent.socket);
    let socket = agent.socket.display().to_string();
    Call::new("ADD", &web, "c1", &conf).run().await.ok();

    // Stopped as the kubelet stops it: the socket goes with it.
    assert_eq!(agent.terminate().await, Some(0), "{}", agent.log());
    assert!(!agent.socket.exists(), "the socket is removed on SIGTERM");
    let msg = Call::new("ADD", &web, "c2", &conf).run().await.failed(11);
    assert!(msg.starts_with("pod shop/web: "), "{msg}");
    assert!(
        msg.contains(&format!(
            "the rangepool node agent is not answering on {socket}"
        )),
        "{msg}"
    );
    assert!(
        msg.contains("is the chart's node DaemonSet running on this node?")
            && msg.ends_with("; try again later"),
        "{msg}"
    );
    let msg = Call::new("CHECK", &web, "c2", &conf).run().await.failed(11);
    assert!(msg.contains("not answering"), "{msg}");
    let msg = Call::bare("STATUS", &conf).run().await.failed(50);
    assert!(msg.contains(&format!("not answering on {socket}")), "{msg}");
    // DEL and GC never needed it.
    Call::new("DEL", &web, "c1", &conf).run().await.ok();

    // Killed: its socket file stays, and nobody listens on it.
    let mut agent = Agent::start(cluster.kubeconfig(), cluster.plane.dir()).await;
    agent.kill().await;
    assert!(agent.socket.exists());
    let msg = Call::new("ADD", &web, "c3", &conf).run().await.failed(11);
    assert!(
        msg.contains("not answering") && msg.contains("Connection refused"),
        "{msg}"
    );
    // The next agent takes the stale file's place.
    let agent = Agent::start(cluster.kubeconfig(), cluster.plane.dir()).await;
    assert!(
        agent
            .log()
            .contains("removed the socket file an earlier agent left")
    );
    let out = Call::new("ADD", &web, "c4", &conf).run().await;
    assert_eq!(out.addresses(), ["10.99.0.160/26"], "{}", out.stderr);
}

#[tokio::test]
async fn a_silent_or_garbled_agent_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let web = pod("web").unsaved();
    let conf = |socket: &Path| {
        via_agent(
            with_ipam(netconf("1.1.0", Path::new("/nowhere")), "timeout", json!(0)),
            socket,
        )
    };
    // Answers every request with a line that is not a reply, quoting a secret.
    let garbled = dir.path().join("garbled.sock");
    serve(&garbled, |_| Some(b"token=s3cret {\n".to_vec()));
    let out = Call::new("ADD", &web, "c1", &conf(&garbled)).run().await;
    let msg = out.failed(109);
    assert!(
        msg.contains("do not understand each other: cannot read the reply: not JSON"),
        "{msg}"
    );
    assert!(!out.stdout.contains("s3cret") && !out.stderr.contains("s3cret"));
    // Answers an ADD with nothing granted.
    let empty = dir.path().join("empty.sock");
    serve(&empty, |_| {
        Some(b"{\"version\":1,\"granted\":[]}\n".to_vec())
    });
    let msg = Call::new("ADD", &web, "c1", &conf(&empty))
        .run()
        .await
        .failed(109);
    assert!(msg.contains("it grants no address"), "{msg}");
    // Takes the request and never answers: the deadline (timeout 0 + 10 s) ends the wait.
    let silent = dir.path().join("silent.sock");
    serve(&silent, |_| None);
    let msg = Call::new("ADD", &web, "c1", &conf(&silent))
        .run()
        .await
        .failed(11);
    assert!(
        msg.contains("not answering") && msg.contains("no answer within 10s"),
        "{msg}"
    );
}

#[tokio::test]
async fn the_agent_refuses_what_is_not_a_request() {
    let cluster = Cluster::start().await;
    let agent = Agent::start(cluster.kubeconfig(), cluster.plane.dir()).await;
    let ask = |bytes: Vec<u8>| {
        let socket = agent.socket.clone();
        tokio::task::spawn_blocking(move || {
            let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
            // The agent may answer and close before it read everything.
            let _ = stream.write_all(&bytes);
            let mut line = String::new();
            BufReader::new(stream).read_line(&mut line).unwrap();
            serde_json::from_str::<Value>(&line).unwrap()
        })
    };
    let oversize = ask(vec![b' '; 70 * 1024]).await.unwrap();
    assert_eq!(oversize["error"]["code"], 109);
    assert!(
        oversize["error"]["msg"]
            .as_str()
            .unwrap()
            .contains("the request is longer than 65536 bytes"),
        "{oversize}"
    );
    let newer = ask(b"{\"version\":2,\"command\":\"ADD\"}\n".to_vec())
        .await
        .unwrap();
    assert!(
        newer["error"]["msg"]
            .as_str()
            .unwrap()
            .contains("protocol version 2, but this side speaks version 1"),
        "{newer}"
    );
    // It still serves.
    let status = ask(b"{\"version\":1,\"command\":\"STATUS\"}\n".to_vec())
        .await
        .unwrap();
    assert_eq!(status, json!({"version": 1, "granted": []}));
}

#[tokio::test]
async fn a_rewritten_kubeconfig_is_picked_up() {
    let cluster = Cluster::start().await;
    // The agent's own copy, rewritten below as the installer rewrites it.
    let kubeconfig = cluster.plane.dir().join("agent.kubeconfig");
    let node_file = std::fs::read_to_string(cluster.kubeconfig()).unwrap();
    replace_file(&kubeconfig, &node_file);
    let agent = Agent::start(&kubeconfig, cluster.plane.dir()).await;
    let web = pod("web").create(&cluster).await;
    cluster
        .controller()
        .assign(&web, "payments", BLOCK, "10.99.0.180")
        .await;
    let conf = via_agent(netconf("1.1.0", Path::new("/unused")), &agent.socket);
    let add = || async { Call::new("ADD", &web, "c1", &conf).run().await };
    add().await.ok();

    // Another identity's token, which may not read pods: the agent's next client is refused.
    let stranger = cluster
        .plane
        .service_account("shop", "default")
        .await
        .unwrap();
    replace_file(
        &kubeconfig,
        &cluster
            .plane
            .kubeconfig_for(cluster.plane.url(), &stranger.token),
    );
    let refused = until(|| async {
        let out = add().await;
        (out.code == 106).then_some(out)
    })
    .await;
    assert!(refused.msg().contains("forbidden"), "{}", refused.msg());
    // And back: the node's token works again.
    replace_file(&kubeconfig, &node_file);
    until(|| async { (add().await.code == 0).then_some(()) }).await;

    // The token is revoked: the agent's client is refused (401) ...
    cluster.revoke_node_token().await;
    let msg = add().await.failed(106);
    assert!(msg.contains("Unauthorized"), "{msg}");
    // ... until the installer writes the new one: the next call takes it at once.
    let accounts: Api<ServiceAccount> =
        Api::namespaced(cluster.client.clone(), &cluster.node.namespace);
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": cluster.node.name}})).unwrap();
    accounts
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let renewed = cluster
        .plane
        .service_account(&cluster.node.namespace, &cluster.node.name)
        .await
        .unwrap();
    replace_file(
        &kubeconfig,
        &cluster
            .plane
            .kubeconfig_for(cluster.plane.url(), &renewed.token),
    );
    let out = add().await;
    assert_eq!(out.addresses(), ["10.99.0.180/26"], "{}", agent.log());
    assert!(
        agent
            .log()
            .contains("the API server refused the credentials and kubeconfig"),
        "{}",
        agent.log()
    );
}

/// Polls `probe` until it gives something, for at most 30 s.
async fn until<T, F: std::future::Future<Output = Option<T>>>(probe: impl Fn() -> F) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "the agent never took the new kubeconfig"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A stand-in for the agent on `socket`: reads each request line and answers what `reply`
/// gives for it, or holds the connection open without answering.
fn serve(socket: &Path, reply: impl Fn(&str) -> Option<Vec<u8>> + Send + 'static) {
    let listener = UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut line = String::new();
            let _ = BufReader::new(&stream).read_line(&mut line);
            match reply(&line) {
                Some(bytes) => {
                    let _ = stream.write_all(&bytes);
                }
                None => held.push(stream),
            }
        }
    });
}
