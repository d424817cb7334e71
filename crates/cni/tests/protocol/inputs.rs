//! What the binary makes of its input: VERSION, version gates, every configuration error,
//! environment errors, and the rule that stdin is never logged.

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
    ] {
        let msg = call.run().await.failed(4);
        assert!(msg.contains(var), "want {var} in {msg}");
    }
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
