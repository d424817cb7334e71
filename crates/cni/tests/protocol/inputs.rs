//! What the binary makes of its input: VERSION, version gates, every configuration error,
//! environment errors, the rule that stdin is never logged, and kubeconfigs that are broken,
//! special files or hold what kube's client panicked on.

use std::path::Path;

use serde_json::{Value, json};

use crate::common::{Call, Cluster, netconf, pod, with_ipam};

#[tokio::test]
async fn version_lists_the_supported_versions_without_reading_stdin() {
    let out = Call::bare("VERSION", &json!({})).stdin(b"").run().await;
    assert_eq!(
        out.ok().unwrap(),
        json!({"cniVersion": "1.1.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
    );
}

#[tokio::test]
async fn help_and_version_by_hand_are_plain_text_and_no_call() {
    for args in [&["--help"][..], &["-h"], &["--version", "--help"]] {
        let out = Call::by_hand(args).run().await;
        assert_eq!(out.code, 0, "{args:?}: {} / {}", out.stdout, out.stderr);
        assert!(
            out.stdout
                .starts_with("rangepool-ipam: rangepool's CNI IPAM plugin."),
            "{args:?}: {}",
            out.stdout
        );
        assert!(
            out.stdout
                .contains("Usage: rangepool-ipam --help | --version")
        );
        assert!(serde_json::from_str::<Value>(&out.stdout).is_err());
        assert_eq!(out.stderr, "", "{args:?}: no log line");
    }
    for args in [&["--version"][..], &["-V"]] {
        let out = Call::by_hand(args).run().await;
        assert_eq!(out.code, 0, "{args:?}: {} / {}", out.stdout, out.stderr);
        assert_eq!(
            out.stdout,
            format!(
                "rangepool-ipam {} (rangepool's CNI IPAM plugin)\nCNI protocol versions supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0\n",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(out.stderr, "", "{args:?}: no log line");
    }
    // An unknown argument: usage on stderr, exit 2, nothing on stdout, still no CNI reply.
    let out = Call::by_hand(&["--kubeconfig", "/k"]).run().await;
    assert_eq!(out.code, 2);
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr
            .starts_with("rangepool-ipam: unknown argument \"--kubeconfig\""),
        "{}",
        out.stderr
    );
    // With CNI_COMMAND set the arguments do not count: VERSION answers in JSON as always, and a
    // bare run without CNI_COMMAND is still a CNI error.
    let out = Call::bare("VERSION", &json!({})).arg("--help").run().await;
    assert_eq!(
        out.ok().unwrap(),
        json!({"cniVersion": "1.1.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
    );
    let out = Call::bare("ADD", &json!({})).arg("--version").run().await;
    assert!(out.failed(4).contains("CNI_CONTAINERID"), "{}", out.stdout);
    let out = Call::by_hand(&[]).run().await;
    assert!(out.failed(4).contains("CNI_COMMAND"), "{}", out.stdout);
}

#[tokio::test]
async fn commands_are_gated_by_the_declared_version() {
    let cluster = Cluster::start().await;
    let web = pod("web").create(&cluster).await;
    let path = cluster.kubeconfig();
    for version in ["0.3.0", "0.3.1"] {
        let msg = Call::new("CHECK", &web, "c1", &netconf(version, path))
            .run()
            .await
            .failed(1);
        assert!(msg.contains("CHECK needs cniVersion 0.4.0"), "{msg}");
    }
    for command in ["STATUS", "GC"] {
        let out = Call::bare(command, &netconf("1.0.0", path)).run().await;
        assert!(out.failed(1).contains("needs cniVersion 1.1.0"));
        assert_eq!(
            out.json()["cniVersion"],
            "1.0.0",
            "the reply speaks the declared version"
        );
    }
    for version in ["0.1.0", "0.2.0", "2.0.0"] {
        let msg = Call::new("ADD", &web, "c1", &netconf(version, path))
            .run()
            .await
            .failed(1);
        assert!(
            msg.contains("pod shop/web") && msg.contains(version),
            "{msg}"
        );
    }
}

#[tokio::test]
async fn every_configuration_error_names_its_key() {
    let cluster = Cluster::start().await;
    let web = pod("web").create(&cluster).await;
    let base = netconf("1.1.0", cluster.kubeconfig());
    let cases: Vec<(Value, i32, &str)> = vec![
        (
            json!({"cniVersion": "1.1.0", "name": "pods"}),
            7,
            "key ipam: missing",
        ),
        (
            with_ipam(base.clone(), "kubeconfig", Value::Null),
            7,
            "ipam.kubeconfig: missing",
        ),
        (
            with_ipam(base.clone(), "kubeconfig", json!(1)),
            7,
            "ipam.kubeconfig: expected a string",
        ),
        (
            with_ipam(base.clone(), "timeout", json!("5s")),
            7,
            "ipam.timeout: expected a number of seconds",
        ),
        (
            with_ipam(base.clone(), "timeout", json!(9000)),
            7,
            "ipam.timeout: at most 600 seconds",
        ),
        (
            with_ipam(base.clone(), "prefix", json!("subnet")),
            7,
            "ipam.prefix: \"subnet\" is not",
        ),
        (
            with_ipam(base.clone(), "prefix", json!({"ipv6": 129})),
            7,
            "ipam.prefix.ipv6",
        ),
        (
            with_ipam(base.clone(), "gateway", json!({"ipv4": "fd00::1"})),
            7,
            "ipam.gateway.ipv4",
        ),
        (
            with_ipam(base.clone(), "routes", json!([{"dst": "10.0.0.0"}])),
            7,
            "ipam.routes[0].dst",
        ),
        (
            with_ipam(
                base.clone(),
                "routes",
                json!([{"dst": "::/0", "gw": "10.0.0.1"}]),
            ),
            7,
            "ipam.routes[0].gw",
        ),
        (
            with_ipam(base.clone(), "dns", json!({"nameservers": ["ns1"]})),
            7,
            "ipam.dns.nameservers[0]",
        ),
        (
            with_ipam(base.clone(), "logLevel", json!("trace")),
            7,
            "ipam.logLevel",
        ),
        (
            with_ipam(base.clone(), "logFile", json!(0)),
            7,
            "ipam.logFile",
        ),
        (
            with_ipam(base.clone(), "nodeName", json!(0)),
            7,
            "ipam.nodeName",
        ),
        (
            json!({"name": "pods", "ipam": base["ipam"]}),
            7,
            "cniVersion: missing",
        ),
        (
            json!({"cniVersion": 1, "ipam": base["ipam"]}),
            7,
            "cniVersion: expected a string",
        ),
    ];
    for (conf, code, key) in cases {
        let msg = Call::new("ADD", &web, "c1", &conf).run().await.failed(code);
        assert!(msg.contains(key), "want {key:?} in {msg}");
        assert!(msg.starts_with("pod shop/web: "), "{msg}");
    }
    let garbage = Call::new("ADD", &web, "c1", &base).stdin(b"{\"cniVersion\": ");
    let msg = garbage.run().await.failed(6);
    assert!(msg.contains("not a JSON object"), "{msg}");
    // Unknown keys anywhere are someone else's.
    let extra = with_ipam(base.clone(), "subnet", json!("10.0.0.0/8"));
    let mut extra = extra;
    extra["someMainPluginKey"] = json!({"x": 1});
    let msg = Call::new("ADD", &web, "c1", &with_ipam(extra, "timeout", json!(0)))
        .run()
        .await
        .failed(11);
    assert!(msg.contains("has not assigned"), "{msg}");
}

#[tokio::test]
async fn environment_errors_name_the_variable() {
    let cluster = Cluster::start().await;
    let web = pod("web").create(&cluster).await;
    let conf = netconf("1.1.0", cluster.kubeconfig());
    let add = Call::new("ADD", &web, "c1", &conf);
    for (call, var) in [
        (add.clone().without("CNI_COMMAND"), "CNI_COMMAND"),
        (add.clone().env("CNI_COMMAND", "INIT"), "CNI_COMMAND"),
        (add.clone().without("CNI_CONTAINERID"), "CNI_CONTAINERID"),
        (
            add.clone().env("CNI_CONTAINERID", "has space"),
            "CNI_CONTAINERID",
        ),
        (add.clone().without("CNI_IFNAME"), "CNI_IFNAME"),
        (add.clone().without("CNI_ARGS"), "K8S_POD_NAMESPACE"),
        (
            add.clone().env("CNI_ARGS", "K8S_POD_NAMESPACE=shop"),
            "K8S_POD_NAME",
        ),
        (
            add.clone()
                .env("CNI_ARGS", "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web"),
            "K8S_POD_UID",
        ),
        (
            add.clone().env(
                "CNI_ARGS",
                "K8S_POD_NAMESPACE=shop\nINFO x;K8S_POD_NAME=web",
            ),
            "K8S_POD_NAMESPACE",
        ),
        (add.clone().env("CNI_IFNAME", "eth0\nINFO x"), "CNI_IFNAME"),
    ] {
        let out = call.run().await;
        let msg = out.failed(4);
        assert!(msg.contains(var), "want {var} in {msg}");
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    }
    // ADD refuses to go on without the pod's UID (an old sandbox of a re-created pod would get
    // the new pod's address); DEL and CHECK do without it.
    let no_uid = "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web";
    let msg = add.clone().env("CNI_ARGS", no_uid).run().await.failed(4);
    assert!(
        msg.starts_with("pod shop/web: environment variable CNI_ARGS: K8S_POD_UID is missing"),
        "{msg}"
    );
    let del = Call::new("DEL", &web, "c1", &conf).env("CNI_ARGS", no_uid);
    assert_eq!(del.run().await.ok(), None);
    // The pod has no address yet: CHECK got past its input and read the pod.
    let check = Call::new("CHECK", &web, "c1", &conf).env("CNI_ARGS", no_uid);
    let msg = check.run().await.failed(105);
    assert!(msg.contains("the pod has no address assigned"), "{msg}");
}

#[tokio::test]
async fn stdin_is_never_logged_and_stdout_is_only_the_reply() {
    let cluster = Cluster::start().await;
    let web = pod("web").create(&cluster).await;
    cluster
        .controller()
        .assign(&web, "payments", "10.99.0.128/26", "10.99.0.133")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let log_file = dir.path().join("ipam.log");
    let mut conf = with_ipam(
        netconf("1.1.0", cluster.kubeconfig()),
        "logLevel",
        json!("debug"),
    );
    conf = with_ipam(conf, "logFile", json!(log_file));
    conf["credentials"] = json!({"token": "s3cr3t-token"});
    let out = Call::new("ADD", &web, "c1", &conf).run().await;
    assert_eq!(out.addresses(), ["10.99.0.133/26"]);
    let logged = std::fs::read_to_string(&log_file).unwrap();
    assert!(logged.contains("verified 10.99.0.133"), "{logged}");
    assert!(logged.contains("pod=shop/web"), "{logged}");
    for text in [&out.stderr, &logged, &out.stdout] {
        assert!(!text.contains("s3cr3t-token"), "stdin leaked: {text}");
    }

    // A bad value is described by type, never echoed.
    let bad = with_ipam(conf, "timeout", json!("s3cr3t-token"));
    let out = Call::new("ADD", &web, "c1", &bad).run().await;
    out.failed(7);
    assert!(!out.stdout.contains("s3cr3t-token") && !out.stderr.contains("s3cr3t-token"));
}

/// A node kubeconfig whose user entry is `user` (indented under `user:`).
fn kubeconfig_with_user(server: &str, user: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: node
  cluster:
    server: {server}
contexts:
- name: node
  context:
    cluster: node
    user: node
current-context: node
users:
- name: node
  user:
{user}
"
    )
}

/// An ADD that logs everything, to stderr and to a log file in `dir`.
fn logged_add(pod: &k8s_openapi::api::core::v1::Pod, kubeconfig: &Path, dir: &Path) -> Call {
    let conf = with_ipam(netconf("1.1.0", kubeconfig), "logLevel", json!("debug"));
    let conf = with_ipam(conf, "logFile", json!(dir.join("ipam.log")));
    Call::new("ADD", pod, "c1", &conf)
}

#[tokio::test]
async fn a_kubeconfig_that_does_not_parse_never_shows_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let web = pod("web").unsaved();
    let path = dir.path().join("kubeconfig");
    let text = kubeconfig_with_user(
        "https://10.0.0.1:6443",
        "    token: SECRET-TOKEN-123\n  oops: [not closed\ncurrent-context: node",
    );
    std::fs::write(&path, text).unwrap();
    let out = logged_add(&web, &path, dir.path()).run().await;
    let msg = out.failed(107);
    assert!(
        msg.starts_with(&format!(
            "pod shop/web: cannot use kubeconfig {}: ",
            path.display()
        )),
        "{msg}"
    );
    assert!(
        msg.contains("YAML syntax or structure error at line 18, column "),
        "{msg}"
    );
    let logged = std::fs::read_to_string(dir.path().join("ipam.log")).unwrap();
    assert!(logged.contains("at line 18"), "{logged}");
    for text in [&out.stdout, &out.stderr, &logged] {
        assert!(
            !text.contains("SECRET-TOKEN-123"),
            "the token leaked: {text}"
        );
        assert!(!text.contains("not closed"), "the file leaked: {text}");
    }
}

#[tokio::test]
async fn kubeconfigs_that_are_not_regular_files_fail_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let web = pod("web").unsaved();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // Each of these kept kube's reader busy forever; `finish` fails the test after a minute.
    for (path, kind) in [
        (fifo.as_path(), "a FIFO"),
        (dir.path(), "a directory"),
        (Path::new("/dev/zero"), "a character device"),
    ] {
        let conf = with_ipam(netconf("1.1.0", path), "timeout", json!(1));
        for call in [
            Call::new("ADD", &web, "c1", &conf),
            Call::new("CHECK", &web, "c1", &conf),
        ] {
            let msg = call.run().await.failed(107);
            assert!(
                msg.ends_with(&format!(
                    "cannot use kubeconfig {}: the file is {kind}, not a regular file",
                    path.display()
                )),
                "{msg}"
            );
        }
        let msg = Call::bare("STATUS", &conf).run().await.failed(50);
        assert!(
            msg.contains(&format!("is {kind}, not a regular file")),
            "{msg}"
        );
    }
}

#[tokio::test]
async fn a_server_without_a_scheme_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let web = pod("web").unsaved();
    for (server, want) in [
        (
            "127.0.0.1:6443",
            "field server of cluster \"node\": \"127.0.0.1:6443\" has no scheme; write https://HOST:PORT (here https://127.0.0.1:6443)",
        ),
        (
            "https://10.0.0.1:6443x",
            "field server of cluster \"node\": \"https://10.0.0.1:6443x\" is not a URL; write https://HOST:PORT",
        ),
    ] {
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, kubeconfig_with_user(server, "    token: abc")).unwrap();
        let out = logged_add(&web, &path, dir.path()).run().await;
        let msg = out.failed(107);
        assert!(msg.ends_with(want), "want {want:?} in {msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
}

#[tokio::test]
async fn tokens_ending_in_a_newline_work_and_broken_ones_are_refused() {
    let cluster = Cluster::start().await;
    let web = pod("web").create(&cluster).await;
    cluster
        .controller()
        .assign(&web, "payments", "10.99.0.128/26", "10.99.0.140")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let base = envtest::kubeconfig_text(cluster.plane.url(), cluster.plane.ca_pem(), Some("TOKEN"));
    let token = &cluster.node.token;
    let token_file = dir.path().join("token");
    // As `kubectl create token ... > token` writes it.
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let variants = [
        (
            "block",
            base.replace("token: TOKEN", &format!("token: |\n      {token}")),
        ),
        (
            "file",
            base.replace(
                "token: TOKEN",
                &format!("tokenFile: {}", token_file.display()),
            ),
        ),
    ];
    for (name, text) in variants {
        let path = dir.path().join(format!("{name}.kubeconfig"));
        std::fs::write(&path, text).unwrap();
        let out = logged_add(&web, &path, dir.path()).run().await;
        assert_eq!(
            out.addresses(),
            ["10.99.0.140/26"],
            "{name}: {}",
            out.stderr
        );
    }

    // A newline inside the token is no trailing whitespace: refused, by field, never shown.
    let path = dir.path().join("broken.kubeconfig");
    let broken = base.replace(
        "token: TOKEN",
        &format!("token: \"{}\\n{}\"", &token[..10], &token[10..]),
    );
    std::fs::write(&path, broken).unwrap();
    let out = logged_add(&web, &path, dir.path()).run().await;
    let msg = out.failed(107);
    assert!(
        msg.contains("field token of user \"envtest\": holds a control character (character 11"),
        "{msg}"
    );
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains(&token[10..]), "the token leaked: {text}");
    }
}
