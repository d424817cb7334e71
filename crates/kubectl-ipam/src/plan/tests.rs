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
