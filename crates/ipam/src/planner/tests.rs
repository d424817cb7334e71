#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::choice::IPV4_POOLS_ANNOTATION;

fn planner(pools: &[PoolInput], pod_cidrs: Option<&[IpNet]>) -> Planner {
    let mut p = Planner::new(false);
    p.set_pools(pools, pod_cidrs);
    p
}

fn cidrs() -> Vec<IpNet> {
    vec![
        "10.244.0.0/16".parse().unwrap(),
        "fd00::/48".parse().unwrap(),
    ]
}

fn general() -> Vec<PoolInput> {
    vec![
        PoolInput::new("general", "10.244.0.0/20"),
        PoolInput::new("v6", "fd00::/64"),
    ]
}

struct Pod {
    annotations: Map,
    node_labels: Map,
    ns_labels: Map,
    ns_annotations: Map,
}

impl Pod {
    fn new() -> Pod {
        Pod {
            annotations: Map::new(),
            node_labels: Map::new(),
            ns_labels: Map::new(),
            ns_annotations: Map::new(),
        }
    }

    fn known(&self) -> PodContext<'_> {
        PodContext {
            namespace: "shop",
            name: "web",
            node: "n1",
            annotations: &self.annotations,
            node_labels: Some(&self.node_labels),
            namespace_meta: Some((&self.ns_labels, &self.ns_annotations)),
            confirmed: &[],
            running: &[],
            statefulset: None,
        }
    }
}

#[test]
fn a_pod_gets_one_address_per_family_and_keeps_it_on_the_next_call() {
    let mut p = planner(&general(), Some(&cidrs()));
    let pod = Pod::new();
    let got = p.assign(&pod.known(), "u1", &Family::ALL).unwrap();
    let shown: Vec<(String, String, bool)> = got
        .iter()
        .map(|g| (g.address.to_string(), g.pool.clone(), g.new))
        .collect();
    assert_eq!(
        shown,
        [
            ("10.244.0.0".to_owned(), "general".to_owned(), true),
            ("fd00::".to_owned(), "v6".to_owned(), true)
        ]
    );
    let again = p.assign(&pod.known(), "u1", &Family::ALL).unwrap();
    assert!(again.iter().all(|g| !g.new));
    assert_eq!(again[0].address, got[0].address);
    assert_eq!(p.allocator().usage("general").unwrap().allocated, 1);
}

#[test]
fn a_pod_holding_every_family_needs_neither_node_nor_namespace() {
    let mut p = planner(&general(), Some(&cidrs()));
    let pod = Pod::new();
    p.assign(&pod.known(), "u1", &[Family::V4]).unwrap();
    let confirmed = ["10.244.0.0".parse().unwrap()];
    let unknown = PodContext {
        node_labels: None,
        namespace_meta: None,
        confirmed: &confirmed,
        ..pod.known()
    };
    let got = p.assign(&unknown, "u1", &[Family::V4]).unwrap();
    assert_eq!(got[0].address.to_string(), "10.244.0.0");
    // One not confirmed to the pod is only used once its node and namespace are known.
    let unconfirmed = PodContext {
        confirmed: &[],
        ..unknown
    };
    assert_eq!(
        p.assign(&unconfirmed, "u1", &[Family::V4])
            .unwrap_err()
            .reason(),
        "NodeUnknown"
    );
    // Asking for a family it does not hold needs them again.
    let err = p.assign(&unknown, "u1", &Family::ALL).unwrap_err();
    assert_eq!(err.reason(), "NodeUnknown");
}

#[test]
fn unknown_node_namespace_or_pod_cidr_each_have_their_reason() {
    let pod = Pod::new();
    let mut p = planner(&general(), Some(&cidrs()));
    let no_node = PodContext {
        node_labels: None,
        ..pod.known()
    };
    let err = p.assign(&no_node, "u1", &[Family::V4]).unwrap_err();
    assert_eq!(err.reason(), "NodeUnknown");
    assert!(err.to_string().contains("pod shop/web") && err.to_string().contains("node n1"));
    let no_ns = PodContext {
        namespace_meta: None,
        ..pod.known()
    };
    let err = p.assign(&no_ns, "u1", &[Family::V4]).unwrap_err();
    assert_eq!(err.reason(), "NamespaceUnknown");
    assert!(err.to_string().contains("namespace shop"), "{err}");

    let mut blind = planner(&general(), None);
    let err = blind.assign(&pod.known(), "u1", &[Family::V4]).unwrap_err();
    assert_eq!(err.reason(), "PodCIDRUnknown");
    assert!(err.to_string().contains("--pod-cidr"), "{err}");
    assert_eq!(blind.verdicts()[0].reason.as_str(), "PodCIDRUnknown");
}

#[test]
fn choice_and_allocation_errors_keep_their_own_reasons() {
    let mut p = planner(
        &[PoolInput::new("tiny", "10.244.0.0/32").block_size(32)],
        Some(&cidrs()),
    );
    let mut pod = Pod::new();
    pod.annotations
        .insert(IPV4_POOLS_ANNOTATION.to_owned(), r#"["nope"]"#.to_owned());
    let err = p.assign(&pod.known(), "u1", &[Family::V4]).unwrap_err();
    assert_eq!(err.reason(), "UnknownPool");
    assert!(matches!(err, AssignError::Choice(_)));

    let pod = Pod::new();
    p.assign(&pod.known(), "u1", &[Family::V4]).unwrap();
    let err = p.assign(&pod.known(), "u2", &[Family::V4]).unwrap_err();
    assert_eq!(err.reason(), "PoolsExhausted");
    assert!(err.to_string().contains("pod shop/web"), "{err}");
}

#[test]
fn a_family_allocated_before_another_fails_is_kept_and_not_asked_again() {
    let mut p = planner(&general()[..1], Some(&cidrs()));
    let pod = Pod::new();
    let err = p.assign(&pod.known(), "u1", &Family::ALL).unwrap_err();
    assert_eq!(err.reason(), "NoMatchingPool");
    assert!(p.held("u1", Family::V4).is_some());
    p.set_pools(&general(), Some(&cidrs()));
    let got = p.assign(&pod.known(), "u1", &Family::ALL).unwrap();
    assert_eq!(got.iter().map(|g| g.new).collect::<Vec<_>>(), [false, true]);
    assert_eq!(p.allocator().usage("general").unwrap().allocated, 1);
}

#[test]
fn a_pool_removed_from_the_set_is_gone_from_the_allocator_and_the_verdicts() {
    let mut p = planner(&general(), Some(&cidrs()));
    assert!(p.verdict("v6").is_some());
    p.set_pools(&general()[..1], Some(&cidrs()));
    assert!(p.verdict("v6").is_none());
    assert!(p.allocator().pool("v6").is_none());
    assert_eq!(p.verdicts().len(), 1);
}

#[test]
fn drift_is_what_the_pool_no_longer_admits_whatever_its_state() {
    let team = |t: &str| {
        PoolInput::new("payments", "10.244.8.0/24")
            .namespace_selector(&format!("team == '{t}'"))
            .created("2024-01-01T00:00:00Z")
    };
    let mut p = planner(&[team("a")], Some(&cidrs()));
    let mut pod = Pod::new();
    pod.ns_labels.insert("team".into(), "a".into());
    p.assign(&pod.known(), "u1", &[Family::V4]).unwrap();
    assert_eq!(p.drift(&pod.known(), "u1"), Some(vec![]));
    // Disabling the pool is no drift: the pod keeps a valid address.
    p.set_pools(&[team("a").disabled()], Some(&cidrs()));
    assert_eq!(p.drift(&pod.known(), "u1"), Some(vec![]));
    // The namespace stops matching: drift, naming pod, pool, address and selector.
    p.set_pools(&[team("a")], Some(&cidrs()));
    pod.ns_labels.insert("team".into(), "b".into());
    let drift = p.drift(&pod.known(), "u1").unwrap();
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].reason(), "SelectorMismatch");
    let message = drift[0].to_string();
    for part in [
        "pod shop/web",
        "10.244.8.0",
        "pool payments",
        "team == \"a\"",
        "namespace shop",
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }
    // Unknown node or namespace: cannot be judged.
    let unknown = PodContext {
        node_labels: None,
        ..pod.known()
    };
    assert_eq!(p.drift(&unknown, "u1"), None);
}

#[test]
fn drift_from_annotations_and_manual_pools() {
    let pools = [
        PoolInput::new("fw", "10.244.8.0/24")
            .manual()
            .created("2024-01-01T00:00:00Z"),
        PoolInput::new("other", "10.244.9.0/24")
            .manual()
            .created("2024-01-01T00:00:00Z"),
    ];
    let mut p = planner(&pools, Some(&cidrs()));
    let mut pod = Pod::new();
    pod.annotations
        .insert(IPV4_POOLS_ANNOTATION.to_owned(), r#"["fw"]"#.to_owned());
    p.assign(&pod.known(), "u1", &[Family::V4]).unwrap();
    assert_eq!(p.drift(&pod.known(), "u1"), Some(vec![]));
    pod.annotations
        .insert(IPV4_POOLS_ANNOTATION.to_owned(), r#"["other"]"#.to_owned());
    assert_eq!(
        p.drift(&pod.known(), "u1").unwrap()[0].reason(),
        "PoolNotNamed"
    );
    pod.annotations.clear();
    assert_eq!(
        p.drift(&pod.known(), "u1").unwrap()[0].reason(),
        "ManualPoolNotNamed"
    );
    p.set_pools(&pools[1..], Some(&cidrs()));
    assert_eq!(p.drift(&pod.known(), "u1").unwrap()[0].reason(), "PoolGone");
}

#[test]
fn a_record_never_confirmed_to_the_pod_is_used_only_if_the_controller_would_make_it() {
    use crate::block::{AllocationRecord, Block, BlockRecord};
    let payments = PoolInput::new("payments", "10.244.8.0/24")
        .manual()
        .namespace_selector("team == 'payments'")
        .created("2024-01-01T00:00:00Z");
    let general = PoolInput::new("general", "10.244.0.0/20").created("2024-01-01T00:00:00Z");
    let forged = |namespace: &str, pod: &str| {
        let record = BlockRecord {
            cidr: "10.244.8.0/26".parse().unwrap(),
            pool: "payments".into(),
            affinity: Some("n1".into()),
            sequence: 1,
            allocations: vec![AllocationRecord {
                ordinal: 7,
                handle: "u-evil".into(),
                namespace: namespace.into(),
                pod: pod.into(),
                container: None,
                sequence: 1,
            }],
            quarantine: None,
            released: Vec::new(),
        };
        Block::from_record(&record).unwrap()
    };
    let pod = Pod::new(); // shop/web, namespace without team=payments
    for (namespace, name, why) in [
        ("shop", "web", "Manual"),
        ("payments", "db", "names pod payments/db"),
    ] {
        let mut p = planner(&[payments.clone(), general.clone()], Some(&cidrs()));
        p.allocator_mut()
            .insert_block(forged(namespace, name))
            .unwrap();
        let got = p.assign(&pod.known(), "u-evil", &[Family::V4]).unwrap();
        assert_eq!(got[0].pool, "general", "{why}");
        assert!(got[0].new);
        let distrusted = p.take_distrusted();
        assert_eq!(distrusted.len(), 1);
        assert_eq!(distrusted[0].address.to_string(), "10.244.8.7");
        assert!(
            distrusted[0].message.contains(why),
            "{}",
            distrusted[0].message
        );
        assert!(
            distrusted[0].message.contains("pod shop/web"),
            "{}",
            distrusted[0].message
        );
        // Released: the trusted address is free again.
        assert_eq!(p.allocator().usage("payments").unwrap().allocated, 0);
    }
    // Confirmed to the pod already (the controller annotated it): kept, whatever changed since.
    let mut p = planner(&[payments, general], Some(&cidrs()));
    p.allocator_mut()
        .insert_block(forged("shop", "web"))
        .unwrap();
    let confirmed = ["10.244.8.7".parse().unwrap()];
    let kept = PodContext {
        confirmed: &confirmed,
        ..pod.known()
    };
    let got = p.assign(&kept, "u-evil", &[Family::V4]).unwrap();
    assert_eq!(got[0].address.to_string(), "10.244.8.7");
    assert!(p.take_distrusted().is_empty());
}

#[test]
fn a_pod_running_with_an_address_keeps_it_if_its_pool_admits_it_and_never_gets_a_second() {
    let payments = PoolInput::new("payments", "10.244.8.0/24")
        .manual()
        .namespace_selector("team == 'payments'")
        .created("2024-01-01T00:00:00Z");
    let general = PoolInput::new("general", "10.244.0.0/20").created("2024-01-01T00:00:00Z");
    let mut p = planner(&[payments, general], Some(&cidrs()));
    let pod = Pod::new(); // shop/web: admitted to general, not to payments
    let assign = |p: &mut Planner, running: &[IpAddr], handle: &str| {
        let ctx = PodContext {
            running,
            ..pod.known()
        };
        p.assign(&ctx, handle, &[Family::V4])
    };
    // Installed over another IPAM: its sandbox has 10.244.1.10, inside general.
    let got = assign(&mut p, &["10.244.1.10".parse().unwrap()], "u1").unwrap();
    assert_eq!(got[0].address.to_string(), "10.244.1.10");
    assert_eq!((got[0].pool.as_str(), got[0].new), ("general", true));
    // An address of a pool that does not admit it: no second address, and the reason.
    let err = assign(&mut p, &["10.244.8.9".parse().unwrap()], "u2").unwrap_err();
    assert_eq!(err.reason(), "AddressNotAdmitted");
    assert!(
        err.to_string().contains("pod shop/web") && err.to_string().contains("payments"),
        "{err}"
    );
    assert_eq!(p.allocator().usage("payments").unwrap().allocated, 0);
    // An address in no pool: kept, no second one.
    let err = assign(&mut p, &["192.168.0.4".parse().unwrap()], "u3").unwrap_err();
    assert_eq!(err.reason(), "AddressOutsidePools");
    assert!(err.to_string().contains("192.168.0.4"), "{err}");
    // An address another pod holds: refused, naming the holder.
    let err = assign(&mut p, &["10.244.1.10".parse().unwrap()], "u4").unwrap_err();
    assert_eq!(err.reason(), "AddressTaken");
}

#[test]
fn a_pod_whose_record_was_lost_gets_its_annotated_address_back_not_another() {
    let mut p = planner(&general(), Some(&cidrs()));
    let pod = Pod::new();
    let first = p.assign(&pod.known(), "u1", &[Family::V4]).unwrap();
    // Its block is lost (deleted while the controller was down): nothing records the address,
    // but the pod's annotation names it.
    p.allocator_mut().remove_block(&first[0].block);
    let confirmed = [first[0].address];
    let ctx = PodContext {
        confirmed: &confirmed,
        ..pod.known()
    };
    let again = p.assign(&ctx, "u1", &[Family::V4]).unwrap();
    assert_eq!(again[0].address, first[0].address);
    assert!(p.allocator().block(&first[0].block).is_some(), "rebuilt");
}
