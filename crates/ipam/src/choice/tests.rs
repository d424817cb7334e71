#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::pool::PoolInput;
use crate::validate::validate_pools;

const V4: &str = IPV4_POOLS_ANNOTATION;
const V6: &str = IPV6_POOLS_ANNOTATION;

fn pool(name: &str) -> PoolInput {
    PoolInput::new(name, "10.244.0.0/24")
}

fn pod(name: &str) -> PodFixture {
    PodFixture::new(name)
}

fn catalog(inputs: &[PoolInput]) -> PoolCatalog {
    let pod_cidrs: Vec<IpNet> = vec![
        "10.244.0.0/16".parse().unwrap(),
        "fd00::/48".parse().unwrap(),
    ];
    PoolCatalog::new(&validate_pools(inputs, Some(&pod_cidrs)))
}

/// A small cluster: two automatic pools, a manual firewall pool for namespace payments, a
/// disabled pool, an IPv6 pool and a zone-restricted pool.
fn cluster() -> PoolCatalog {
    catalog(&[
        pool("general")
            .cidr("10.244.0.0/20")
            .created("2024-01-01T00:00:00Z"),
        pool("spare")
            .cidr("10.244.16.0/20")
            .created("2024-02-01T00:00:00Z"),
        pool("fw-payments")
            .cidr("10.244.64.0/24")
            .manual()
            .namespace_selector("team == 'payments'"),
        pool("old").cidr("10.244.65.0/24").disabled(),
        pool("v6").cidr("fd00::/64"),
        pool("zone-b")
            .cidr("10.244.66.0/24")
            .manual()
            .node_selector("zone == 'b'"),
        pool("lb")
            .cidr("10.244.67.0/24")
            .allowed_uses(&["LoadBalancer"]),
    ])
}

fn choose(c: &PoolCatalog, p: &PodFixture, family: Family) -> Result<Choice, ChoiceError> {
    c.choose(&p.facts(), family)
}

#[test]
fn automatic_pools_oldest_first_without_manual_disabled_or_lb() {
    let c = cluster();
    let got = choose(&c, &pod("web"), Family::V4).unwrap();
    assert_eq!(got.pools, vec!["general", "spare"]);
    assert_eq!(got.source, Source::Automatic);
    let v6 = choose(&c, &pod("web"), Family::V6).unwrap();
    assert_eq!(v6.pools, vec!["v6"]);
}

#[test]
fn pod_annotation_wins_and_keeps_its_order() {
    let c = cluster();
    let p = pod("web")
        .in_ns("payments")
        .ns_labelled("team", "payments")
        .annotated(V4, r#"["fw-payments", "general"]"#)
        .ns_annotated(V4, r#"["spare"]"#);
    let got = choose(&c, &p, Family::V4).unwrap();
    assert_eq!(got.pools, vec!["fw-payments", "general"]);
    assert_eq!(got.source, Source::PodAnnotation);
}

#[test]
fn namespace_annotation_applies_per_key() {
    let c = cluster();
    let p = pod("web")
        .annotated(V4, r#"["spare"]"#)
        .ns_annotated(V6, r#"["v6"]"#);
    assert_eq!(
        choose(&c, &p, Family::V4).unwrap().source,
        Source::PodAnnotation
    );
    let v6 = choose(&c, &p, Family::V6).unwrap();
    assert_eq!(v6.pools, vec!["v6"]);
    assert_eq!(v6.source, Source::NamespaceAnnotation);
}

#[test]
fn pools_can_be_named_by_cidr() {
    let c = cluster();
    let p = pod("web").annotated(V4, r#"["10.244.16.0/20"]"#);
    assert_eq!(choose(&c, &p, Family::V4).unwrap().pools, vec!["spare"]);
}

#[test]
fn manual_pools_only_when_named_and_only_for_matching_namespaces() {
    let c = cluster();
    let payments = pod("api").in_ns("payments").ns_labelled("team", "payments");
    // Not named: the manual pool is not used even though the namespace matches.
    assert_eq!(
        choose(&c, &payments, Family::V4).unwrap().pools,
        vec!["general", "spare"]
    );
    // Named from another namespace: refused (differs from Calico on purpose).
    let intruder = pod("x")
        .in_ns("shop")
        .ns_labelled("team", "shop")
        .annotated(V4, r#"["fw-payments"]"#);
    let err = choose(&c, &intruder, Family::V4).unwrap_err();
    assert_eq!(err.reason(), "NamespaceSelectorMismatch");
    let msg = err.to_string();
    assert!(
        msg.starts_with("pod shop/x: annotation cni.projectcalico.org/ipv4pools on the pod"),
        "{msg}"
    );
    assert!(
        msg.contains("fw-payments") && msg.contains("team == \"payments\""),
        "{msg}"
    );
}

#[test]
fn node_selector_is_honoured_for_named_pools() {
    let c = cluster();
    let p = pod("w")
        .on_node("n-a")
        .node_labelled("zone", "a")
        .annotated(V4, r#"["zone-b"]"#);
    let err = choose(&c, &p, Family::V4).unwrap_err();
    assert_eq!(err.reason(), "NodeSelectorMismatch");
    assert!(err.to_string().contains("node n-a"), "{err}");
    let ok = pod("w")
        .node_labelled("zone", "b")
        .annotated(V4, r#"["zone-b"]"#);
    assert_eq!(choose(&c, &ok, Family::V4).unwrap().pools, vec!["zone-b"]);
}

#[test]
fn any_problem_with_any_named_pool_is_an_error() {
    let c = cluster();
    let cases = [
        (r#"["general", "nope"]"#, "UnknownPool", "nope"),
        (r#"["old"]"#, "PoolNotAllocatable", "PoolDisabled"),
        (
            r#"["v6"]"#,
            "WrongFamily",
            "cni.projectcalico.org/ipv6pools",
        ),
        (r#"["lb"]"#, "PoolNotForWorkloads", "LoadBalancer"),
        (r#"["general", "general"]"#, "DuplicatePool", "general"),
        (
            r#"["general", "10.244.0.0/20"]"#,
            "DuplicatePool",
            "general",
        ),
        (r#"["10.9.0.0/16"]"#, "UnknownPoolCIDR", "10.9.0.0/16"),
        (
            r#"["10.244.0.1/20"]"#,
            "InvalidPoolCIDR",
            "did you mean 10.244.0.0/20",
        ),
        ("general", "AnnotationNotJSON", "JSON"),
        ("", "AnnotationNotJSON", "JSON"),
        (
            r#"{"pools": ["general"]}"#,
            "AnnotationNotList",
            "not a list",
        ),
        (r#"["general", 7]"#, "AnnotationNotStrings", "entry 2"),
        ("[]", "AnnotationEmpty", "empty list"),
    ];
    for (value, reason, words) in cases {
        let p = pod("web").in_ns("shop").ns_annotated(V4, value);
        let err = choose(&c, &p, Family::V4).unwrap_err();
        assert_eq!(err.reason(), reason, "{value}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(words), "{value}: {msg}");
        assert!(
            msg.starts_with(
                "pod shop/web: annotation cni.projectcalico.org/ipv4pools on namespace shop"
            ),
            "{msg}"
        );
    }
}

#[test]
fn invalid_and_overlapping_pools_are_refused_with_their_reason() {
    let c = catalog(&[
        pool("a")
            .cidr("10.244.0.0/24")
            .created("2024-01-01T00:00:00Z"),
        pool("b")
            .cidr("10.244.0.0/25")
            .created("2024-06-01T00:00:00Z"),
        pool("bad").cidr("10.244.1.0/24").node_selector("x = 'y'"),
    ]);
    let err = choose(&c, &pod("p").annotated(V4, r#"["b"]"#), Family::V4).unwrap_err();
    assert_eq!(err.reason(), "PoolNotAllocatable");
    assert!(err.to_string().contains("CIDROverlap"), "{err}");
    let err = choose(&c, &pod("p").annotated(V4, r#"["bad"]"#), Family::V4).unwrap_err();
    assert_eq!(err.reason(), "PoolInvalid");
    assert!(err.to_string().contains("InvalidSelector"), "{err}");
}

#[test]
fn no_matching_pool_is_an_error_naming_node_and_namespace() {
    let c = catalog(&[pool("a").node_selector("zone == 'x'")]);
    let err = choose(&c, &pod("p").in_ns("ns1").on_node("n9"), Family::V4).unwrap_err();
    assert_eq!(err.reason(), "NoMatchingPool");
    let msg = err.to_string();
    assert!(
        msg.contains("node n9") && msg.contains("namespace ns1"),
        "{msg}"
    );
}

#[test]
fn automatic_selection_honours_both_selectors() {
    let c = catalog(&[
        pool("any")
            .cidr("10.244.0.0/24")
            .created("2024-03-01T00:00:00Z"),
        pool("zone-a")
            .cidr("10.244.1.0/24")
            .node_selector("zone == 'a'")
            .created("2024-01-01T00:00:00Z"),
        pool("team-x")
            .cidr("10.244.2.0/24")
            .namespace_selector("team == 'x'")
            .created("2024-02-01T00:00:00Z"),
    ]);
    let p = pod("p").node_labelled("zone", "a").ns_labelled("team", "x");
    assert_eq!(
        choose(&c, &p, Family::V4).unwrap().pools,
        vec!["zone-a", "team-x", "any"]
    );
    let q = pod("q").node_labelled("zone", "b");
    assert_eq!(choose(&c, &q, Family::V4).unwrap().pools, vec!["any"]);
}

#[test]
fn an_unknown_pool_name_suggests_the_closest_existing_one() {
    let c = catalog(&[
        pool("payments").cidr("10.244.8.0/24").manual(),
        pool("partners").cidr("10.244.9.0/24").manual(),
        pool("general").cidr("10.244.128.0/17"),
    ]);
    for (written, suggested) in [
        ("payment", Some("payments")),
        ("paymnets", Some("payments")),
        ("partner", Some("partners")),
        ("billing", None),
    ] {
        let p = pod("w").annotated(V4, &format!(r#"["{written}"]"#));
        let err = choose(&c, &p, Family::V4).unwrap_err();
        assert_eq!(err.reason(), "UnknownPool");
        let ChoiceError::UnknownPool { suggestion, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(suggestion.as_deref(), suggested, "{written}");
        let msg = err.to_string();
        let want = format!("names pool \"{written}\", which does not exist");
        match suggested {
            Some(s) => assert!(
                msg.ends_with(&format!("{want}; did you mean \"{s}\"?")),
                "{msg}"
            ),
            None => assert!(msg.ends_with(&want), "{msg}"),
        }
    }
    // The same on the namespace's annotation.
    let p = pod("w").ns_annotated(V4, r#"["payment"]"#);
    let msg = choose(&c, &p, Family::V4).unwrap_err().to_string();
    assert!(
        msg.contains("on namespace") && msg.ends_with("did you mean \"payments\"?"),
        "{msg}"
    );
}
