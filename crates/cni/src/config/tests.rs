#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use serde_json::{Value, json};

use super::*;

/// A valid configuration of a bridge network; tests change one key at a time.
fn base() -> Value {
    json!({
        "cniVersion": "1.1.0",
        "name": "pods",
        "type": "bridge",
        "bridge": "cni0",
        "ipam": {
            "type": "rangepool-ipam",
            "kubeconfig": "/etc/cni/net.d/rangepool.kubeconfig"
        }
    })
}

/// `base()` with `value` set at the colon-separated `path` (`null` removes the key).
fn with(path: &str, value: Value) -> Value {
    let mut root = base();
    let mut parts: Vec<&str> = path.split(':').collect();
    let last = parts.pop().unwrap();
    let mut node = &mut root;
    for p in parts {
        node = node
            .as_object_mut()
            .unwrap()
            .entry(p)
            .or_insert_with(|| json!({}));
    }
    let map = node.as_object_mut().unwrap();
    if value.is_null() {
        map.remove(last);
    } else {
        map.insert(last.to_owned(), value);
    }
    root
}

fn parse_value(v: &Value) -> Result<NetConf, CniError> {
    parse(&parse_json(v.to_string().as_bytes())?)
}

#[test]
fn minimal_config_gets_the_documented_defaults() {
    let conf = parse_value(&base()).unwrap();
    assert_eq!(conf.version, CniVersion::V1_1_0);
    assert_eq!(conf.name, "pods");
    let ipam = conf.ipam;
    assert_eq!(
        ipam.backend,
        Backend::Direct {
            kubeconfig: PathBuf::from("/etc/cni/net.d/rangepool.kubeconfig")
        }
    );
    assert_eq!(ipam.timeout, DEFAULT_TIMEOUT);
    assert_eq!(ipam.prefix, PrefixStyle::Host);
    assert_eq!((ipam.gateway_v4, ipam.gateway_v6), (None, None));
    assert!(ipam.routes.is_empty());
    assert_eq!(ipam.dns, None);
    assert_eq!(ipam.log_level, Level::Info);
    assert_eq!(ipam.log_file, None);
    assert_eq!(conf.prev_ips, None);
    assert_eq!(conf.valid_attachments, None);
}

#[test]
fn the_agent_socket_makes_the_kubeconfig_optional() {
    let agent = |conf: Value| parse_value(&conf).unwrap().ipam.backend;
    let socket = Backend::Agent {
        socket: PathBuf::from("/run/rangepool/agent.sock"),
    };
    let both = with("ipam:agentSocket", json!("/run/rangepool/agent.sock"));
    assert_eq!(
        agent(both.clone()),
        socket,
        "the agent answers, the kubeconfig is not read"
    );
    let mut alone = both.clone();
    alone["ipam"].as_object_mut().unwrap().remove("kubeconfig");
    assert_eq!(agent(alone.clone()), socket);
    // A kubeconfig given next to the socket is still checked: removing agentSocket later must
    // leave a configuration that works.
    let mut broken = both;
    broken["ipam"]["kubeconfig"] = json!("");
    let err = parse_value(&broken).unwrap_err();
    assert_eq!(
        err.to_string(),
        "network configuration key ipam.kubeconfig: must not be empty"
    );
    // Neither: the message names both ways.
    alone["ipam"].as_object_mut().unwrap().remove("agentSocket");
    let err = parse_value(&alone).unwrap_err();
    assert_eq!(err.code(), 7);
    assert!(
        err.to_string()
            .starts_with("network configuration key ipam.kubeconfig: missing")
            && err.to_string().contains("ipam.agentSocket"),
        "{err}"
    );
}

#[test]
fn every_key_is_read() {
    let mut v = base();
    v["ipam"] = json!({
        "type": "rangepool-ipam",
        "kubeconfig": "/k",
        "timeout": 2.5,
        "prefix": {"ipv4": 24, "ipv6": 64},
        "gateway": {"ipv4": "10.99.0.1", "ipv6": "fd00:99::1"},
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "fd00::/8", "gw": "fd00:99::1"}],
        "dns": {"nameservers": ["10.96.0.10"], "domain": "cluster.local",
                "search": ["svc.cluster.local"], "options": ["ndots:5"]},
        "logLevel": "debug",
        "logFile": "/var/log/rangepool-ipam.log",
        "nodeName": "node-1",
        "someoneElsesKey": {"anything": [1, 2]}
    });
    v["prevResult"] = json!({"cniVersion": "1.1.0", "ips": [{"address": "10.99.0.130/24"}]});
    v["cni.dev/valid-attachments"] = json!([{"containerID": "c1", "ifname": "eth0"}]);
    let conf = parse_value(&v).unwrap();
    let ipam = &conf.ipam;
    assert_eq!(ipam.timeout, Duration::from_millis(2500));
    assert_eq!(
        ipam.prefix,
        PrefixStyle::Fixed {
            ipv4: Some(24),
            ipv6: Some(64)
        }
    );
    assert_eq!(ipam.gateway(Family::V4), Some("10.99.0.1".parse().unwrap()));
    assert_eq!(
        ipam.gateway(Family::V6),
        Some("fd00:99::1".parse().unwrap())
    );
    assert_eq!(ipam.routes.len(), 2);
    assert_eq!(ipam.routes[0].gw, None);
    assert_eq!(ipam.routes[1].gw, Some("fd00:99::1".parse().unwrap()));
    let dns = ipam.dns.as_ref().unwrap();
    assert_eq!(dns.nameservers, ["10.96.0.10"]);
    assert_eq!(dns.domain.as_deref(), Some("cluster.local"));
    assert_eq!(dns.search, ["svc.cluster.local"]);
    assert_eq!(dns.options, ["ndots:5"]);
    assert_eq!(ipam.log_level, Level::Debug);
    assert_eq!(
        ipam.log_file.as_deref(),
        Some(Path::new("/var/log/rangepool-ipam.log"))
    );
    assert_eq!(ipam.node_name.as_deref(), Some("node-1"));
    assert_eq!(conf.prev_ips, Some(vec!["10.99.0.130".parse().unwrap()]));
    assert_eq!(conf.valid_attachments, Some(vec!["c1".to_owned()]));
}

#[test]
fn prefix_styles_by_name() {
    for (name, style) in [
        ("host", PrefixStyle::Host),
        ("block", PrefixStyle::Block),
        ("pool", PrefixStyle::Pool),
    ] {
        let conf = parse_value(&with("ipam:prefix", json!(name))).unwrap();
        assert_eq!(conf.ipam.prefix, style, "{name}");
    }
    let only_v4 = parse_value(&with("ipam:prefix", json!({"ipv4": 24}))).unwrap();
    assert_eq!(
        only_v4.ipam.prefix,
        PrefixStyle::Fixed {
            ipv4: Some(24),
            ipv6: None
        }
    );
}

#[test]
fn null_is_absent_and_the_legacy_attachments_key_is_read() {
    let conf = parse_value(&with("ipam:timeout", Value::Null)).unwrap();
    assert_eq!(conf.ipam.timeout, DEFAULT_TIMEOUT);
    let mut v = base();
    v["ipam"]["gateway"] = Value::Null;
    v["cni.dev/attachments"] = json!([{"containerID": "old", "ifname": "eth0"}]);
    let conf = parse_value(&v).unwrap();
    assert_eq!(conf.ipam.gateway_v4, None);
    assert_eq!(conf.valid_attachments, Some(vec!["old".to_owned()]));
}

#[test]
fn every_config_error_names_its_key() {
    // (mutation, code, text the message must contain)
    let cases: Vec<(Value, u32, &str)> = vec![
        (with("ipam", Value::Null), 7, "key ipam: missing"),
        (
            with("ipam", json!("rangepool-ipam")),
            7,
            "key ipam: expected an object, found a string",
        ),
        (
            with("ipam:kubeconfig", Value::Null),
            7,
            "ipam.kubeconfig: missing",
        ),
        (
            with("ipam:agentSocket", json!(["/run/rangepool/agent.sock"])),
            7,
            "ipam.agentSocket: expected a string, found a list",
        ),
        (
            with("ipam:agentSocket", json!("")),
            7,
            "ipam.agentSocket: must not be empty",
        ),
        (
            with("ipam:kubeconfig", json!(7)),
            7,
            "ipam.kubeconfig: expected a string, found a number",
        ),
        (
            with("ipam:kubeconfig", json!("")),
            7,
            "ipam.kubeconfig: must not be empty",
        ),
        (
            with("ipam:timeout", json!("30s")),
            7,
            "ipam.timeout: expected a number of seconds, found a string",
        ),
        (
            with("ipam:timeout", json!(-1)),
            7,
            "ipam.timeout: expected a number of seconds, found a negative number",
        ),
        (
            with("ipam:timeout", json!(601)),
            7,
            "ipam.timeout: at most 600 seconds",
        ),
        (
            with("ipam:prefix", json!("subnet")),
            7,
            "ipam.prefix: \"subnet\" is not \"host\"",
        ),
        (
            with("ipam:prefix", json!(24)),
            7,
            "ipam.prefix: expected \"host\"",
        ),
        (
            with("ipam:prefix", json!({"ipv4": 33})),
            7,
            "ipam.prefix.ipv4: expected a whole number from 0 to 32",
        ),
        (
            with("ipam:prefix", json!({"ipv6": "64"})),
            7,
            "ipam.prefix.ipv6: expected a whole number from 0 to 128, found a string",
        ),
        (
            with("ipam:prefix", json!({"ipv4": 24.5})),
            7,
            "ipam.prefix.ipv4",
        ),
        (
            with("ipam:gateway", json!("10.0.0.1")),
            7,
            "ipam.gateway: expected an object",
        ),
        (
            with("ipam:gateway", json!({"ipv4": "fd00::1"})),
            7,
            "ipam.gateway.ipv4: \"fd00::1\" is not an IPv4 address",
        ),
        (
            with("ipam:gateway", json!({"ipv6": "nope"})),
            7,
            "ipam.gateway.ipv6: \"nope\" is not an IPv6 address",
        ),
        (
            with("ipam:gateway", json!({"ipv4": 1})),
            7,
            "ipam.gateway.ipv4: expected a string, found a number",
        ),
        (
            with("ipam:routes", json!({"dst": "0.0.0.0/0"})),
            7,
            "ipam.routes: expected a list, found an object",
        ),
        (
            with("ipam:routes", json!(["0.0.0.0/0"])),
            7,
            "ipam.routes[0]: expected an object",
        ),
        (
            with("ipam:routes", json!([{"gw": "10.0.0.1"}])),
            7,
            "ipam.routes[0].dst: missing",
        ),
        (
            with("ipam:routes", json!([{"dst": "default"}])),
            7,
            "ipam.routes[0].dst: \"default\" is not a CIDR",
        ),
        (
            with("ipam:routes", json!([{"dst": "10.0.0.1/8"}])),
            7,
            "ipam.routes[0].dst: \"10.0.0.1/8\" has host bits set; did you mean 10.0.0.0/8?",
        ),
        (
            with(
                "ipam:routes",
                json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "10.0.0.1"}]),
            ),
            7,
            "ipam.routes[1].gw: \"10.0.0.1\" is not an IPv6 address",
        ),
        (
            with("ipam:dns", json!(["10.96.0.10"])),
            7,
            "ipam.dns: expected an object, found a list",
        ),
        (
            with("ipam:dns", json!({"nameservers": "10.96.0.10"})),
            7,
            "ipam.dns.nameservers: expected a list, found a string",
        ),
        (
            with("ipam:dns", json!({"nameservers": ["10.96.0.10", "dns"]})),
            7,
            "ipam.dns.nameservers[1]: \"dns\" is not an IP address",
        ),
        (
            with("ipam:dns", json!({"search": [1]})),
            7,
            "ipam.dns.search[0]: expected a string, found a number",
        ),
        (
            with("ipam:dns", json!({"domain": false})),
            7,
            "ipam.dns.domain: expected a string, found a boolean",
        ),
        (
            with("ipam:logLevel", json!("verbose")),
            7,
            "ipam.logLevel: \"verbose\" is not one of",
        ),
        (
            with("ipam:logLevel", json!(3)),
            7,
            "ipam.logLevel: expected a string, found a number",
        ),
        (
            with("ipam:logFile", json!(true)),
            7,
            "ipam.logFile: expected a string, found a boolean",
        ),
        (
            with("ipam:nodeName", json!(["n"])),
            7,
            "ipam.nodeName: expected a string, found a list",
        ),
        (with("cniVersion", Value::Null), 7, "cniVersion: missing"),
        (
            with("cniVersion", json!(1.1)),
            7,
            "cniVersion: expected a string, found a number",
        ),
        (
            with("cniVersion", json!("0.2.0")),
            1,
            "cniVersion \"0.2.0\" is not supported",
        ),
        (
            with("cniVersion", json!("1.2.0")),
            1,
            "supports CNI versions 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0",
        ),
        (with("name", json!(5)), 7, "key name: expected a string"),
        (
            with("prevResult", json!({"ips": [{"address": "10.0.0.5"}]})),
            7,
            "prevResult.ips[0].address: \"10.0.0.5\" is not ADDRESS/PREFIX",
        ),
        (
            with("prevResult", json!({"ips": "x"})),
            7,
            "prevResult.ips: expected a list",
        ),
        (
            with("cni.dev/valid-attachments", json!([{"ifname": "eth0"}])),
            7,
            "cni.dev/valid-attachments[0].containerID: missing",
        ),
        (
            with("cni.dev/valid-attachments", json!("c1")),
            7,
            "cni.dev/valid-attachments: expected a list",
        ),
    ];
    for (value, code, text) in cases {
        let err = parse_value(&value).expect_err(text);
        assert_eq!(err.code(), code, "{text}: {err}");
        assert!(err.to_string().contains(text), "want {text:?} in {err}");
    }
}

#[test]
fn undecodable_input_is_code_6_and_never_quoted() {
    for input in [
        &b"{\"cniVersion\": \"1.1.0\", \"password\": \"hunter2"[..],
        b"",
        b"[1,2]",
        b"\"x\"",
    ] {
        let err = parse_json(input).unwrap_err();
        assert_eq!(err.code(), 6);
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
    let err = parse_json(b"[1,2]").unwrap_err();
    assert!(err.to_string().contains("found a list"), "{err}");
}

#[test]
fn every_supported_version_is_accepted() {
    for version in CniVersion::ALL {
        let conf = parse_value(&with("cniVersion", json!(version.as_str()))).unwrap();
        assert_eq!(conf.version, version);
    }
}
