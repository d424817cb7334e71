#![allow(clippy::unwrap_used)]

use std::path::Path;

use ipam::cidr::Family;
use ipam::validate::Reason;

use super::compute::{self, Outcome, Plan};
use super::settings::{CidrSource, InputError, Settings};
use crate::manifests::Manifests;

const KUBEADM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kubeadm-config, namespace: kube-system}\ndata:\n  ClusterConfiguration: |\n    networking:\n      podSubnet: 10.244.0.0/16,fd00::/56\n";

const BASICS: &str = "
apiVersion: v1
kind: Node
metadata: {name: n1}
---
apiVersion: v1
kind: Namespace
metadata: {name: web}
---
apiVersion: rangepool.dev/v1
kind: IPPool
metadata: {name: general}
spec: {cidr: 10.244.0.0/16}
";

fn manifests(files: &[(&str, &str)]) -> Manifests {
    let mut m = Manifests::default();
    for (file, text) in files {
        m.add_text(Path::new(file), text).unwrap();
    }
    m
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn plan(files: &[(&str, &str)], pod_cidrs: &[&str]) -> Plan {
    let m = manifests(files);
    let settings = Settings::resolve(&strings(pod_cidrs), &[], &m).unwrap();
    compute::compute(&m, settings)
}

fn pod(name: &str, ns: &str, node: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  nodeName: {node}\n  containers: [{{name: c, image: i}}]\n{extra}---\n"
    )
}

#[test]
fn pod_cidrs_come_from_flags_before_the_configmap() {
    let m = manifests(&[("k.yaml", KUBEADM)]);
    let s = Settings::resolve(&strings(&["10.0.0.0/8"]), &[], &m).unwrap();
    assert_eq!(s.pod_cidrs, Some(vec!["10.0.0.0/8".parse().unwrap()]));
    assert_eq!(s.source, CidrSource::Flags);
    assert_eq!(s.families, vec![Family::V4]);

    let s = Settings::resolve(&[], &[], &m).unwrap();
    assert_eq!(s.source, CidrSource::Kubeadm("k.yaml".into()));
    assert_eq!(s.families, vec![Family::V4, Family::V6]);
}

#[test]
fn unknown_pod_cidrs_default_to_ipv4_and_say_why() {
    let s = Settings::resolve(&[], &[], &Manifests::default()).unwrap();
    assert_eq!(s.pod_cidrs, None);
    assert_eq!(s.families, vec![Family::V4]);
    assert!(
        s.source.to_string().contains("no --pod-cidr"),
        "{}",
        s.source
    );

    let no_subnet = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kubeadm-config, namespace: kube-system}\ndata: {ClusterConfiguration: 'kind: ClusterConfiguration'}\n";
    let s = Settings::resolve(&[], &[], &manifests(&[("k.yaml", no_subnet)])).unwrap();
    assert_eq!(s.pod_cidrs, None);
    assert!(s.source.to_string().contains("k.yaml"), "{}", s.source);
}

#[test]
fn family_flags_are_parsed_like_the_controllers() {
    let m = Manifests::default();
    let s = Settings::resolve(&[], &strings(&["IPv6", "v4", "ipv6"]), &m).unwrap();
    assert_eq!(s.families, vec![Family::V4, Family::V6]);
    let err = Settings::resolve(&[], &strings(&["ipx"]), &m).unwrap_err();
    assert!(
        matches!(err, InputError::Family(ref f) if f == "ipx"),
        "{err}"
    );
}

#[test]
fn a_pod_cidr_flag_is_parsed_strictly() {
    let err = Settings::resolve(&strings(&["10.244.0.0"]), &[], &Manifests::default()).unwrap_err();
    assert!(matches!(err, InputError::PodCidrFlag(_)), "{err}");
    assert!(err.to_string().starts_with("--pod-cidr: "), "{err}");
}

#[test]
fn pods_that_want_no_address_are_skipped_with_the_reason() {
    let pods = [
        pod("a", "web", "n1", ""),
        pod("host", "web", "n1", "  hostNetwork: true\n"),
        pod("done", "web", "n1", "status: {phase: Failed}\n"),
        pod("a", "web", "n1", ""),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: idle, namespace: web}\nspec: {containers: [{name: c, image: i}]}\n".to_owned(),
    ]
    .concat();
    let p = plan(&[("b.yaml", BASICS), ("p.yaml", &pods)], &["10.244.0.0/16"]);
    assert_eq!(p.pods.len(), 1);
    assert_eq!(p.pods[0].name, "a");
    let reasons: Vec<(&str, &str)> = p
        .skipped
        .iter()
        .map(|s| (s.name.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(reasons[0].0 == "web/host" && reasons[0].1.starts_with("host network"));
    assert!(reasons[1].0 == "web/done" && reasons[1].1.contains("Failed"));
    assert!(reasons[2].0 == "web/a" && reasons[2].1.contains("duplicate"));
    assert!(reasons[3].0 == "web/idle" && reasons[3].1.starts_with("not bound: skipped"));
    assert!(p.clean());
}

#[test]
fn missing_node_or_namespace_refuses_every_family() {
    let pods = [pod("x", "web", "n9", ""), pod("yy", "gone", "n1", "")].concat();
    let p = plan(
        &[("b.yaml", BASICS), ("p.yaml", &pods)],
        &["10.244.0.0/16", "fd00::/56"],
    );
    let reasons: Vec<(&str, Family, &str)> = p
        .pods
        .iter()
        .map(|r| match &r.outcome {
            Outcome::Refused { reason, .. } => (r.name.as_str(), r.family, *reason),
            Outcome::Address { .. } => panic!("{r:?}"),
        })
        .collect();
    assert_eq!(
        reasons,
        [
            ("x", Family::V4, "NodeUnknown"),
            ("x", Family::V6, "NodeUnknown"),
            ("yy", Family::V4, "NamespaceUnknown"),
            ("yy", Family::V6, "NamespaceUnknown"),
        ]
    );
    assert!(!p.clean());
}

#[test]
fn the_same_input_gives_the_same_plan_and_pods_keep_file_order() {
    let pods: String = (0..5)
        .map(|i| pod(&format!("p{i}"), "web", "n1", ""))
        .collect();
    let files = [("b.yaml", BASICS), ("p.yaml", pods.as_str())];
    let a = plan(&files, &["10.244.0.0/16"]);
    let b = plan(&files, &["10.244.0.0/16"]);
    assert_eq!(a.pods, b.pods);
    let names: Vec<&str> = a.pods.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["p0", "p1", "p2", "p3", "p4"]);
    let addresses: std::collections::HashSet<_> = a
        .pods
        .iter()
        .filter_map(|r| r.outcome.address())
        .map(|(_, a)| a)
        .collect();
    assert_eq!(addresses.len(), 5);
}

#[test]
fn a_disabled_pool_is_fine_but_an_overlapping_one_is_not() {
    let pools = "
apiVersion: rangepool.dev/v1
kind: IPPool
metadata: {name: spare}
spec: {cidr: 10.245.0.0/16, disabled: true}
";
    let p = plan(&[("b.yaml", BASICS), ("o.yaml", pools)], &["10.244.0.0/15"]);
    let off = p.pools.iter().find(|r| r.name == "spare").unwrap();
    assert_eq!(off.reason, Reason::PoolDisabled);
    assert!(off.fine() && !off.allocatable());
    assert!(p.clean());

    let p = plan(
        &[
            ("b.yaml", BASICS),
            (
                "o.yaml",
                &pools
                    .replace("disabled: true", "blockSize: 24")
                    .replace("10.245", "10.244"),
            ),
        ],
        &["10.244.0.0/15"],
    );
    let off = p.pools.iter().find(|r| r.name == "spare").unwrap();
    assert_eq!(off.reason, Reason::CidrOverlap);
    assert_eq!(off.block_size, Some(24));
    assert!(!p.clean());
}

/// A bound pod in `web` on n1 with annotations (`key: 'value'` YAML lines).
fn annotated_pod(name: &str, annotations: &[(&str, &str)]) -> String {
    let lines: String = annotations
        .iter()
        .map(|(k, v)| format!("    {k}: '{v}'\n"))
        .collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: web\n  annotations:\n{lines}spec:\n  nodeName: n1\n  containers: [{{name: c, image: i}}]\n---\n"
    )
}

fn outcome<'a>(p: &'a Plan, name: &str) -> &'a Outcome {
    &p.pods
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no row for {name}: {:?}", p.pods))
        .outcome
}

fn refused<'a>(p: &'a Plan, name: &str) -> (&'static str, &'a str) {
    match outcome(p, name) {
        Outcome::Refused { reason, message } => (*reason, message.as_str()),
        other => panic!("{name}: {other:?}"),
    }
}

const IP_ADDRS: &str = "cni.projectcalico.org/ipAddrs";

/// Pools `tiny` (10.244.0.0/29, automatic) and `fw` (10.244.1.0/29, Manual, namespace `web`
/// only when named), a reservation of 10.244.0.0-10.244.0.3 and 10.244.1.5.
const RESERVED: &str = "
apiVersion: v1
kind: Node
metadata: {name: n1}
---
apiVersion: v1
kind: Namespace
metadata: {name: web}
---
apiVersion: rangepool.dev/v1
kind: IPPool
metadata: {name: tiny}
spec: {cidr: 10.244.0.0/29, blockSize: 29}
---
apiVersion: rangepool.dev/v1
kind: IPPool
metadata: {name: fw}
spec: {cidr: 10.244.1.0/29, blockSize: 29, assignmentMode: Manual}
---
apiVersion: projectcalico.org/v3
kind: IPReservation
metadata: {name: appliances}
spec: {reservedCIDRs: [10.244.0.0/30, 10.244.1.5, not-an-address]}
";

#[test]
fn reserved_addresses_go_to_no_pod_and_are_counted_per_pool() {
    let pods: String = (0..5)
        .map(|i| annotated_pod(&format!("p{i}"), &[]))
        .collect();
    let p = plan(
        &[("r.yaml", RESERVED), ("p.yaml", &pods)],
        &["10.244.0.0/16"],
    );
    let given: Vec<String> = p
        .pods
        .iter()
        .filter_map(|r| r.outcome.address())
        .map(|(_, a)| a.to_string())
        .collect();
    // 8 addresses, 4 reserved: four pods get the other four, the fifth none.
    assert_eq!(
        given,
        ["10.244.0.4", "10.244.0.5", "10.244.0.6", "10.244.0.7"]
    );
    assert_eq!(refused(&p, "p4").0, "PoolsExhausted");
    let reserved: Vec<(&str, u128)> = p
        .pools
        .iter()
        .map(|r| (r.name.as_str(), r.reserved))
        .collect();
    assert_eq!(reserved, [("tiny", 4), ("fw", 1)]);
    assert_eq!(p.reservations.len(), 1);
    assert_eq!(p.reservations[0].name, "appliances");
    assert_eq!(p.reservations[0].ranges.len(), 2);
    assert_eq!(p.reservations[0].invalid.len(), 1);
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("IPReservation appliances") && n.contains("not-an-address")),
        "{:?}",
        p.notes
    );
}

#[test]
fn edge_addresses_a_pool_keeps_back_go_to_no_pod() {
    let pools = "
apiVersion: v1
kind: Node
metadata: {name: n1}
---
apiVersion: v1
kind: Namespace
metadata: {name: web}
---
apiVersion: rangepool.dev/v1
kind: IPPool
metadata: {name: edges}
spec: {cidr: 10.244.0.0/30, blockSize: 30, reserveEdgeAddresses: Pool}
";
    let pods: String = (0..3)
        .map(|i| annotated_pod(&format!("p{i}"), &[]))
        .collect();
    let p = plan(&[("r.yaml", pools), ("p.yaml", &pods)], &["10.244.0.0/16"]);
    let given: Vec<String> = p
        .pods
        .iter()
        .filter_map(|r| r.outcome.address())
        .map(|(_, a)| a.to_string())
        .collect();
    assert_eq!(given, ["10.244.0.1", "10.244.0.2"]);
    assert_eq!(p.pools[0].reserved, 2);
}

#[test]
fn a_pod_asking_for_an_address_gets_it_or_the_controllers_reason() {
    let pods = [
        annotated_pod("fixed", &[(IP_ADDRS, r#"["10.244.0.6"]"#)]),
        annotated_pod("again", &[(IP_ADDRS, r#"["10.244.0.6"]"#)]),
        annotated_pod("outside", &[(IP_ADDRS, r#"["10.99.0.1"]"#)]),
        annotated_pod("manual", &[(IP_ADDRS, r#"["10.244.1.2"]"#)]),
        annotated_pod(
            "named",
            &[
                (IP_ADDRS, r#"["10.244.1.2"]"#),
                ("cni.projectcalico.org/ipv4pools", r#"["fw"]"#),
            ],
        ),
        annotated_pod("reserved", &[(IP_ADDRS, r#"["10.244.0.1"]"#)]),
        annotated_pod("garbled", &[(IP_ADDRS, "10.244.0.7")]),
        annotated_pod(
            "no-ipam",
            &[("cni.projectcalico.org/ipAddrsNoIpam", r#"["10.9.9.9"]"#)],
        ),
        annotated_pod(
            "floating",
            &[("cni.projectcalico.org/floatingIPs", r#"["1.2.3.4"]"#)],
        ),
        annotated_pod("shut", &[(IP_ADDRS, r#"["10.244.2.1"]"#)]),
    ]
    .concat();
    let disabled = "apiVersion: rangepool.dev/v1\nkind: IPPool\nmetadata: {name: shut}\nspec: {cidr: 10.244.2.0/29, blockSize: 29, disabled: true}\n";
    let p = plan(
        &[
            ("r.yaml", RESERVED),
            ("d.yaml", disabled),
            ("p.yaml", &pods),
        ],
        &["10.244.0.0/16"],
    );
    assert_eq!(
        outcome(&p, "fixed").address(),
        Some(("tiny", "10.244.0.6".parse().unwrap()))
    );
    let (reason, message) = refused(&p, "again");
    assert_eq!(reason, "AddressTaken");
    assert!(message.contains("web/fixed"), "{message}");
    assert_eq!(refused(&p, "outside").0, "AddressOutsidePools");
    let (reason, message) = refused(&p, "manual");
    assert_eq!(reason, "AddressNotAllowed");
    assert!(message.contains("pool fw is Manual"), "{message}");
    assert_eq!(
        outcome(&p, "named").address(),
        Some(("fw", "10.244.1.2".parse().unwrap()))
    );
    assert_eq!(refused(&p, "reserved").0, "AddressReserved");
    let (reason, message) = refused(&p, "shut");
    assert_eq!(reason, "AddressNotAllowed");
    assert!(
        message.contains("pool shut gives no addresses now (PoolDisabled)"),
        "{message}"
    );
    assert_eq!(refused(&p, "garbled").0, "InvalidIpAddrs");
    assert_eq!(refused(&p, "no-ipam").0, "IpAddrsNoIpamNotSupported");
    assert!(outcome(&p, "floating").address().is_some());
    // Warnings for the two keys rangepool does not honour, naming file and pod; none for the
    // others.
    assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
    assert!(
        p.warnings[0].starts_with("p.yaml: pod web/no-ipam:")
            && p.warnings[0].contains("ipAddrsNoIpam is not supported"),
        "{:?}",
        p.warnings
    );
    assert!(
        p.warnings[1].starts_with("p.yaml: pod web/floating:")
            && p.warnings[1].contains("floatingIPs is not honoured"),
        "{:?}",
        p.warnings
    );
}

#[test]
fn the_controlling_statefulset_is_the_pods_sticky_owner() {
    let pod = |owners: &str| -> k8s_openapi::api::core::v1::Pod {
        serde_json::from_str(&format!(
            r#"{{"metadata": {{"name": "db-0", "ownerReferences": {owners}}}}}"#
        ))
        .unwrap()
    };
    let owner = |kind: &str, uid: &str, controller: bool| {
        format!(
            r#"{{"apiVersion": "apps/v1", "kind": "{kind}", "name": "db", "uid": "{uid}", "controller": {controller}}}"#
        )
    };
    let both = format!(
        "[{}, {}]",
        owner("ReplicaSet", "rs-uid", false),
        owner("StatefulSet", "sts-uid", true)
    );
    assert_eq!(
        compute::controlling_statefulset(&pod(&both)),
        Some("sts-uid")
    );
    let not_controller = format!("[{}]", owner("StatefulSet", "sts-uid", false));
    assert_eq!(
        compute::controlling_statefulset(&pod(&not_controller)),
        None
    );
    assert_eq!(compute::controlling_statefulset(&pod("[]")), None);
}

#[test]
fn a_pool_with_a_bad_block_size_shows_its_mode_and_inert_settings_show_in_the_table() {
    let pools = "
apiVersion: rangepool.dev/v1
kind: IPPool
metadata: {name: odd}
spec: {cidr: 10.245.0.0/24, blockSize: 12}
---
apiVersion: rangepool.dev/v1
kind: IPPool
metadata: {name: odd-manual}
spec: {cidr: 10.245.1.0/24, blockSize: 12, assignmentMode: Manual}
---
apiVersion: rangepool.dev/v1
kind: IPPool
metadata: {name: natted}
spec: {cidr: 10.245.2.0/24, natOutgoing: true}
";
    let p = plan(&[("b.yaml", BASICS), ("o.yaml", pools)], &["10.244.0.0/15"]);
    let row = |name: &str| p.pools.iter().find(|r| r.name == name).unwrap();
    assert_eq!(row("odd").reason, Reason::InvalidBlockSize);
    assert_eq!(row("odd").assignment_mode.as_deref(), Some("Automatic"));
    assert_eq!(row("odd-manual").assignment_mode.as_deref(), Some("Manual"));
    assert_eq!(row("natted").inert, ["natOutgoing: true"]);
    let text = super::table::render(&p);
    let odd = text
        .lines()
        .find(|l| l.starts_with("odd  "))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(odd.split_whitespace().nth(3), Some("Automatic"), "{text}");
    assert!(
        text.contains("these Calico settings have no effect here"),
        "{text}"
    );
}
