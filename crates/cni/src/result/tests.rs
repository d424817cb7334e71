#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::config::Route;
use crate::log::Level;

fn ipam(prefix: PrefixStyle) -> IpamConfig {
    IpamConfig {
        backend: crate::config::Backend::Direct {
            kubeconfig: PathBuf::from("/k"),
        },
        timeout: Duration::from_secs(1),
        prefix,
        gateway_v4: None,
        gateway_v6: None,
        routes: Vec::new(),
        dns: None,
        log_level: Level::Info,
        log_file: None,
        node_name: None,
    }
}

fn v4(address: &str, block: &str) -> Granted {
    Granted {
        address: address.parse().unwrap(),
        pool: "payments".into(),
        block: block.parse().unwrap(),
        pool_cidr: Some("10.99.0.128/25".parse().unwrap()),
    }
}

fn v6(address: &str) -> Granted {
    Granted {
        address: address.parse().unwrap(),
        pool: "v6".into(),
        block: "fd00:99::/122".parse().unwrap(),
        pool_cidr: Some("fd00:99::/112".parse().unwrap()),
    }
}

fn addresses(result: &Value) -> Vec<String> {
    result["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ip| ip["address"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn format_follows_the_declared_version() {
    let granted = [v4("10.99.0.130", "10.99.0.128/26"), v6("fd00:99::5")];
    for version in CniVersion::ALL {
        let got = build(version, &ipam(PrefixStyle::Host), &granted).unwrap();
        assert_eq!(got["cniVersion"], version.as_str());
        assert!(
            got.get("interfaces").is_none(),
            "IPAM results name no interface"
        );
        let ips = got["ips"].as_array().unwrap();
        if version.ips_carry_version() {
            assert_eq!(ips[0]["version"], "4", "{version}");
            assert_eq!(ips[1]["version"], "6", "{version}");
        } else {
            assert!(ips[0].get("version").is_none(), "{version}");
        }
    }
}

#[test]
fn exact_result_for_1_1_0() {
    let mut conf = ipam(PrefixStyle::Fixed {
        ipv4: Some(24),
        ipv6: None,
    });
    conf.gateway_v4 = Some("10.99.0.1".parse().unwrap());
    conf.routes = vec![Route {
        dst: "0.0.0.0/0".parse().unwrap(),
        gw: None,
    }];
    conf.dns = Some(crate::config::Dns {
        nameservers: vec!["10.96.0.10".into()],
        domain: None,
        search: vec!["svc.cluster.local".into()],
        options: vec![],
    });
    let got = build(
        CniVersion::V1_1_0,
        &conf,
        &[v4("10.99.0.130", "10.99.0.128/26")],
    )
    .unwrap();
    assert_eq!(
        got,
        json!({
            "cniVersion": "1.1.0",
            "ips": [{"address": "10.99.0.130/24", "gateway": "10.99.0.1"}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]}
        })
    );
}

#[test]
fn prefix_styles() {
    let granted = [v4("10.99.0.130", "10.99.0.128/26"), v6("fd00:99::5")];
    let cases = [
        (PrefixStyle::Host, ["10.99.0.130/32", "fd00:99::5/128"]),
        (PrefixStyle::Block, ["10.99.0.130/26", "fd00:99::5/122"]),
        (PrefixStyle::Pool, ["10.99.0.130/25", "fd00:99::5/112"]),
        (
            PrefixStyle::Fixed {
                ipv4: Some(24),
                ipv6: Some(64),
            },
            ["10.99.0.130/24", "fd00:99::5/64"],
        ),
        (
            PrefixStyle::Fixed {
                ipv4: Some(16),
                ipv6: None,
            },
            ["10.99.0.130/16", "fd00:99::5/128"],
        ),
    ];
    for (style, want) in cases {
        let got = build(CniVersion::V1_0_0, &ipam(style), &granted).unwrap();
        assert_eq!(addresses(&got), want, "{style:?}");
    }
}

#[test]
fn pool_style_without_the_pools_range_is_an_error() {
    let mut g = v4("10.99.0.130", "10.99.0.128/26");
    g.pool_cidr = None;
    let err = build(CniVersion::V1_1_0, &ipam(PrefixStyle::Pool), &[g]).unwrap_err();
    assert!(err.to_string().contains("payments"), "{err}");
}

#[test]
fn two_pools_share_one_bridge_subnet_with_a_gateway_outside_both() {
    // Pools 10.99.0.128/26 and 10.99.0.192/26 inside the bridge's 10.99.0.0/24.
    let mut conf = ipam(PrefixStyle::Fixed {
        ipv4: Some(24),
        ipv6: None,
    });
    conf.gateway_v4 = Some("10.99.0.1".parse().unwrap());
    for (address, block) in [
        ("10.99.0.130", "10.99.0.128/26"),
        ("10.99.0.200", "10.99.0.192/26"),
    ] {
        let got = build(CniVersion::V1_0_0, &conf, &[v4(address, block)]).unwrap();
        assert_eq!(addresses(&got), [format!("{address}/24")]);
        assert_eq!(got["ips"][0]["gateway"], "10.99.0.1");
    }
}

#[test]
fn a_gateway_must_fit_the_subnet() {
    let mut conf = ipam(PrefixStyle::Block);
    conf.gateway_v4 = Some("10.99.0.1".parse().unwrap());
    let err = build(
        CniVersion::V1_0_0,
        &conf,
        &[v4("10.99.0.130", "10.99.0.128/26")],
    )
    .unwrap_err();
    assert_eq!(err.code(), 7);
    assert!(
        err.to_string()
            .contains("ipam.gateway.ipv4: 10.99.0.1 is outside the pod's subnet 10.99.0.128/26"),
        "{err}"
    );
    conf.gateway_v4 = Some("10.99.0.130".parse().unwrap());
    let err = build(
        CniVersion::V1_0_0,
        &conf,
        &[v4("10.99.0.130", "10.99.0.128/26")],
    )
    .unwrap_err();
    assert!(err.to_string().contains("pod's own address"), "{err}");
    // Routed plugins reach a gateway outside the /32 on-link.
    conf.prefix = PrefixStyle::Host;
    conf.gateway_v4 = Some("169.254.1.1".parse().unwrap());
    let got = build(
        CniVersion::V1_0_0,
        &conf,
        &[v4("10.99.0.130", "10.99.0.128/26")],
    )
    .unwrap();
    assert_eq!(got["ips"][0]["gateway"], "169.254.1.1");
}

#[test]
fn routes_of_a_family_the_pod_lacks_are_left_out() {
    let mut conf = ipam(PrefixStyle::Host);
    conf.routes = vec![
        Route {
            dst: "0.0.0.0/0".parse().unwrap(),
            gw: Some("10.99.0.1".parse().unwrap()),
        },
        Route {
            dst: "::/0".parse().unwrap(),
            gw: None,
        },
    ];
    let only_v6 = build(CniVersion::V1_1_0, &conf, &[v6("fd00:99::5")]).unwrap();
    assert_eq!(only_v6["routes"], json!([{"dst": "::/0"}]));
    let only_v4 = build(
        CniVersion::V1_1_0,
        &conf,
        &[v4("10.99.0.130", "10.99.0.128/26")],
    )
    .unwrap();
    assert_eq!(
        only_v4["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "10.99.0.1"}])
    );
    conf.routes.clear();
    assert!(only_v4.get("dns").is_none());
    let none = build(CniVersion::V1_1_0, &conf, &[v6("fd00:99::5")]).unwrap();
    assert!(none.get("routes").is_none());
}

#[test]
fn version_and_error_replies() {
    assert_eq!(
        version_info(),
        json!({"cniVersion": "1.1.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
    );
    assert_eq!(
        error_reply(CniVersion::V0_4_0, 11, "pod a/b: later", None),
        json!({"cniVersion": "0.4.0", "code": 11, "msg": "pod a/b: later"})
    );
    assert_eq!(
        error_reply(CniVersion::V1_1_0, 101, "m", Some("d"))["details"],
        "d"
    );
}
