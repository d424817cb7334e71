#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn pool(name: &str) -> PoolInput {
    PoolInput::new(name, "10.244.0.0/16")
}

fn err(input: PoolInput) -> PoolError {
    Pool::parse(&input).expect_err("pool must be refused")
}

#[test]
fn defaults_follow_calico() {
    let p = Pool::parse(&pool("a")).unwrap();
    assert_eq!(p.name(), "a");
    assert_eq!(p.family(), Family::V4);
    assert_eq!(p.block_prefix(), 26);
    assert_eq!(p.block_count(), 1024);
    assert_eq!(p.capacity(), 65536);
    assert!(p.node_selector().is_all());
    assert!(p.namespace_selector().is_all());
    assert_eq!(p.assignment_mode(), AssignmentMode::Automatic);
    assert_eq!(
        p.allowed_uses(),
        &[AllowedUse::Workload, AllowedUse::Tunnel]
    );
    assert!(p.allows_workloads());
    assert_eq!(p.ipip_mode(), EncapMode::Never);
    assert_eq!(p.vxlan_mode(), EncapMode::Never);
    assert!(!p.disabled() && !p.terminating());

    let v6 = Pool::parse(&PoolInput::new("b", "fd00:10::/64")).unwrap();
    assert_eq!(v6.family(), Family::V6);
    assert_eq!(v6.block_prefix(), 122);
}

#[test]
fn empty_strings_mean_unset() {
    let mut input = pool("a");
    input.assignment_mode = Some(String::new());
    input.ipip_mode = Some(String::new());
    input.node_selector = Some(String::new());
    input.allowed_uses = Some(Vec::new());
    let p = Pool::parse(&input).unwrap();
    assert_eq!(p.assignment_mode(), AssignmentMode::Automatic);
    assert_eq!(p.ipip_mode(), EncapMode::Never);
    assert!(p.node_selector().is_all());
    assert!(p.allows_workloads());
}

#[test]
fn explicit_fields_are_kept() {
    let p = Pool::parse(
        &pool("fw")
            .cidr("10.244.8.0/24")
            .block_size(28)
            .manual()
            .node_selector("zone == 'a'")
            .namespace_selector("team == 'payments'")
            .allowed_uses(&["Workload"])
            .vxlan_mode("CrossSubnet")
            .created("2024-01-01T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(p.block_prefix(), 28);
    assert!(p.is_manual());
    assert_eq!(p.vxlan_mode(), EncapMode::CrossSubnet);
    assert_eq!(p.allowed_uses(), &[AllowedUse::Workload]);
    let node = [("zone".to_owned(), "a".to_owned())].into();
    let ns = [("team".to_owned(), "payments".to_owned())].into();
    assert!(p.selects(&node, &ns));
    assert!(!p.selects(&node, &BTreeMap::new()));
    assert!(p.age().created().is_some());
}

#[test]
fn namespace_selector_with_default_uses_is_valid() {
    // Calico applies the Tunnel rule only to uses written in the manifest.
    let p = Pool::parse(&pool("a").namespace_selector("team == 'x'")).unwrap();
    assert!(p.allowed_uses().contains(&AllowedUse::Tunnel));
    let e = err(pool("a")
        .namespace_selector("team == 'x'")
        .allowed_uses(&["Workload", "Tunnel"]));
    assert_eq!(e.reason(), "InvalidField");
}

#[test]
fn disabled_pool_may_be_smaller_than_a_block() {
    let small = pool("a").cidr("10.0.0.0/28");
    assert_eq!(err(small.clone()).reason(), "InvalidBlockSize");
    let p = Pool::parse(&small.disabled()).unwrap();
    assert!(p.disabled());
    assert_eq!(p.block_count(), 0);
}

#[test]
fn block_size_bounds() {
    for ok in [20, 26, 32] {
        assert!(Pool::parse(&pool("a").block_size(ok)).is_ok(), "{ok}");
    }
    for bad in [19, 33, 0, -1, 122, i64::MAX, i64::MIN] {
        let e = err(pool("a").block_size(bad));
        assert_eq!(e.reason(), "InvalidBlockSize", "{bad}");
        assert!(e.to_string().contains("use 20 to 32"), "{e}");
    }
    let v6 = PoolInput::new("b", "fd00::/64");
    assert!(Pool::parse(&v6.clone().block_size(116)).is_ok());
    assert!(Pool::parse(&v6.clone().block_size(128)).is_ok());
    assert_eq!(err(v6.block_size(26)).reason(), "InvalidBlockSize");
}

#[test]
fn errors_name_the_pool() {
    let e = err(pool("fw-trusted").cidr("10.0.0.1/16"));
    assert_eq!(e.pool(), "fw-trusted");
    assert_eq!(
        e.to_string(),
        "pool fw-trusted: invalid cidr: 10.0.0.1/16 has host bits set; did you mean 10.0.0.0/16?"
    );
    let e = err(pool("fw-trusted").node_selector("zone = 'a'"));
    assert_eq!(e.reason(), "InvalidSelector");
    assert!(
        e.to_string()
            .starts_with("pool fw-trusted: invalid nodeSelector: selector")
    );
    assert!(e.to_string().contains("column 6"), "{e}");
}

#[test]
fn enums_are_case_sensitive() {
    let e = err(pool("a").assignment_mode("manual"));
    assert_eq!(e.reason(), "InvalidField");
    assert!(e.to_string().contains("Automatic, Manual"), "{e}");
    assert_eq!(err(pool("a").ipip_mode("always")).reason(), "InvalidField");
    assert_eq!(err(pool("a").vxlan_mode("ALWAYS")).reason(), "InvalidField");
    assert_eq!(
        err(pool("a").allowed_uses(&["workload"])).reason(),
        "InvalidField"
    );
}

#[test]
fn missing_name_and_bad_timestamp() {
    assert_eq!(
        err(PoolInput::new("", "10.0.0.0/16")).reason(),
        "InvalidField"
    );
    let e = err(pool("a").created("last tuesday"));
    assert_eq!(e.reason(), "InvalidField");
    assert!(e.to_string().contains("last tuesday"), "{e}");
}
