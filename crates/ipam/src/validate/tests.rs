#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn pool(name: &str, cidr: &str) -> PoolInput {
    PoolInput::new(name, cidr).created("2024-01-01T00:00:00Z")
}

fn pod_cidrs() -> Vec<IpNet> {
    vec![
        "10.244.0.0/16".parse().unwrap(),
        "fd00:10::/56".parse().unwrap(),
    ]
}

fn verdicts(inputs: &[PoolInput]) -> Vec<(String, &'static str)> {
    let cidrs = pod_cidrs();
    validate_pools(inputs, Some(&cidrs))
        .into_iter()
        .map(|v| (v.name, v.reason.as_str()))
        .collect()
}

fn reason_of(inputs: &[PoolInput], name: &str) -> PoolVerdict {
    let cidrs = pod_cidrs();
    validate_pools(inputs, Some(&cidrs))
        .into_iter()
        .find(|v| v.name == name)
        .unwrap()
}

#[test]
fn valid_pools_inside_the_pod_cidr_are_allocatable() {
    let v = reason_of(&[pool("a", "10.244.0.0/18")], "a");
    assert!(v.allocatable());
    assert_eq!(v.reason.as_str(), "OK");
    assert!(v.pool.is_some());
    assert!(v.message.contains("pool a"), "{}", v.message);
}

#[test]
fn calico_data_plane_settings_are_named_as_without_effect() {
    let plain = reason_of(&[pool("a", "10.244.0.0/18")], "a");
    assert!(!plain.message.contains("no effect"), "{}", plain.message);

    let mut calico = pool("b", "10.244.64.0/18").vxlan_mode("CrossSubnet");
    calico.nat_outgoing = true;
    calico.disable_bgp_export = true;
    let v = reason_of(&[calico], "b");
    assert!(v.allocatable(), "they do not stop the pool: {}", v.message);
    assert!(
        v.message.ends_with(
            "have no effect here, since rangepool assigns addresses and does not set up tunnels, NAT or BGP: natOutgoing: true, vxlanMode: CrossSubnet, disableBGPExport: true"
        ),
        "{}",
        v.message
    );
}

#[test]
fn older_pool_wins_an_overlap_and_is_named() {
    let old = pool("zeta", "10.244.0.0/18").created("2023-01-01T00:00:00Z");
    let new = pool("alpha", "10.244.0.0/20").created("2024-01-01T00:00:00Z");
    let got = verdicts(&[new.clone(), old.clone()]);
    assert_eq!(
        got,
        vec![("alpha".into(), "CIDROverlap"), ("zeta".into(), "OK")]
    );
    let v = reason_of(&[new, old], "alpha");
    assert_eq!(v.overlapped_by.as_deref(), Some("zeta"));
    assert!(v.message.contains("pool zeta"), "{}", v.message);
    assert!(v.message.starts_with("pool alpha"), "{}", v.message);
}

#[test]
fn same_age_ties_are_broken_by_name() {
    let got = verdicts(&[pool("b", "10.244.0.0/18"), pool("a", "10.244.0.0/18")]);
    assert_eq!(got, vec![("b".into(), "CIDROverlap"), ("a".into(), "OK")]);
}

#[test]
fn unknown_creation_time_counts_as_youngest() {
    let planned = PoolInput::new("aaa", "10.244.0.0/18");
    let got = verdicts(&[planned, pool("zzz", "10.244.0.0/18")]);
    assert_eq!(
        got,
        vec![("aaa".into(), "CIDROverlap"), ("zzz".into(), "OK")]
    );
}

#[test]
fn disabled_terminating_and_invalid_pools_still_hold_their_range() {
    let newer = |n: &str| pool(n, "10.244.0.0/24").created("2025-01-01T00:00:00Z");
    for holder in [
        pool("old", "10.244.0.0/18").disabled(),
        pool("old", "10.244.0.0/18").terminating(),
        pool("old", "10.244.0.0/18").node_selector("broken ="),
    ] {
        let v = reason_of(&[holder, newer("new")], "new");
        assert_eq!(v.reason, Reason::CidrOverlap, "{}", v.message);
        assert_eq!(v.overlapped_by.as_deref(), Some("old"));
    }
}

#[test]
fn pools_that_can_never_allocate_take_no_range_from_one_that_can() {
    // Created in the same second, so "older" would be decided by name.
    for never in [
        pool("a-everything", "0.0.0.0/0"),
        pool("a-outside", "10.0.0.0/8"),
        pool("a-linklocal", "169.254.0.0/16"),
        pool("a-tiny", "10.244.0.0/24").block_size(19),
    ] {
        let v = reason_of(&[never.clone(), pool("web", "10.244.0.0/24")], "web");
        assert_eq!(v.reason, Reason::Ok, "{}: {}", never.name, v.message);
        assert_ne!(
            reason_of(std::slice::from_ref(&never), &never.name).reason,
            Reason::Ok
        );
    }
    // Without known pod CIDRs only the spec decides: a pool outside them still counts.
    let both = [pool("a-outside", "10.0.0.0/8"), pool("web", "10.0.1.0/24")];
    assert_eq!(overlapped_by(&both, None), [None, Some(0)]);
    assert_eq!(overlapped_by(&both, Some(&pod_cidrs())), [None, None]);
}

#[test]
fn verdicts_do_not_depend_on_input_order() {
    let inputs = vec![
        pool("a", "10.244.0.0/18").created("2024-03-01T00:00:00Z"),
        pool("b", "10.244.0.0/17").created("2024-02-01T00:00:00Z"),
        pool("c", "10.244.128.0/18"),
        pool("d", "10.244.128.0/18"),
        pool("e", "10.245.0.0/16"),
        pool("f", "10.244.200.0/24").disabled(),
    ];
    let cidrs = pod_cidrs();
    let base = validate_pools(&inputs, Some(&cidrs));
    let mut reversed = inputs.clone();
    reversed.reverse();
    let mut rev = validate_pools(&reversed, Some(&cidrs));
    rev.reverse();
    assert_eq!(base, rev);
    let reasons: Vec<_> = base.iter().map(|v| v.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "CIDROverlap",
            "OK",
            "OK",
            "CIDROverlap",
            "OutsidePodCIDR",
            "PoolDisabled"
        ]
    );
}

#[test]
fn pod_cidr_rules() {
    let inputs = [pool("a", "10.244.0.0/18"), pool("v6", "fd00:10::/64")];
    for v in validate_pools(&inputs, None) {
        assert_eq!(v.reason.as_str(), "PodCIDRUnknown");
        assert!(v.message.contains("--pod-cidr"), "{}", v.message);
    }
    let only_v4: Vec<IpNet> = vec!["10.244.0.0/16".parse().unwrap()];
    let got = validate_pools(&inputs, Some(&only_v4));
    assert_eq!(got[0].reason, Reason::Ok);
    assert_eq!(got[1].reason, Reason::OutsidePodCidr);
    assert!(
        got[1].message.contains("10.244.0.0/16"),
        "{}",
        got[1].message
    );
}

#[test]
fn terminating_and_disabled_reasons() {
    assert_eq!(
        reason_of(&[pool("a", "10.244.0.0/18").terminating()], "a").reason,
        Reason::Terminating
    );
    assert_eq!(
        reason_of(&[pool("a", "10.244.0.0/18").disabled()], "a").reason,
        Reason::PoolDisabled
    );
}

#[test]
fn invalid_specs_carry_their_reason_and_error() {
    let cases = [
        (pool("a", "10.244.0.1/18"), "InvalidCIDR"),
        (
            pool("a", "10.244.0.0/18").block_size(40),
            "InvalidBlockSize",
        ),
        (
            pool("a", "10.244.0.0/18").node_selector("x ="),
            "InvalidSelector",
        ),
        (
            pool("a", "10.244.0.0/18").ipip_mode("sometimes"),
            "InvalidField",
        ),
        (pool("a", "169.254.0.0/16"), "LinkLocal"),
    ];
    for (input, reason) in cases {
        let v = reason_of(&[input], "a");
        assert_eq!(v.reason.as_str(), reason, "{}", v.message);
        assert!(v.pool.is_none());
        assert_eq!(v.error.as_ref().unwrap().reason(), reason);
        assert!(v.message.starts_with("pool a:"), "{}", v.message);
    }
}

#[test]
fn duplicate_names_make_both_invalid() {
    let got = verdicts(&[pool("a", "10.244.0.0/18"), pool("a", "10.244.64.0/18")]);
    assert_eq!(
        got,
        vec![("a".into(), "InvalidField"), ("a".into(), "InvalidField")]
    );
}
