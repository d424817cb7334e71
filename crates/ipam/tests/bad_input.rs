//! Bad input, through the public API: every case must be refused with a typed error whose
//! `reason()` is the expected label and whose message names the pool or the input, and none may
//! panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};

use ipam::allocator::Allocator;
use ipam::block::{AllocationRecord, Block, BlockRecord};
use ipam::choice::{IPV4_POOLS_ANNOTATION, PodFixture, PoolCatalog};
use ipam::cidr::{Family, parse_block_name};
use ipam::pool::{Pool, PoolInput};
use ipam::selector::Selector;
use ipam::validate::validate_pools;

/// A refusal: the error's reason label and its message.
type Refusal = (&'static str, String);

fn pool(name: &str) -> PoolInput {
    PoolInput::new(name, "10.244.0.0/16")
}

fn pod(name: &str) -> PodFixture {
    PodFixture::new(name)
}

fn pool_refusal(input: PoolInput) -> Refusal {
    let e = Pool::parse(&input).expect_err("pool must be refused");
    (e.reason(), e.to_string())
}

/// Pool choice for a pod in namespace `shop` against a few pools.
fn choice_refusal(p: PodFixture) -> Refusal {
    let inputs = [
        pool("general").cidr("10.244.0.0/20"),
        pool("old").cidr("10.244.16.0/20").disabled(),
        PoolInput::new("v6", "fd00::/64"),
        pool("fw")
            .cidr("10.244.32.0/24")
            .manual()
            .namespace_selector("team == 'payments'"),
    ];
    let pod_cidrs = [
        "10.244.0.0/16".parse().unwrap(),
        "fd00::/48".parse().unwrap(),
    ];
    let catalog = PoolCatalog::new(&validate_pools(&inputs, Some(&pod_cidrs)));
    let e = catalog
        .choose(&p.in_ns("shop").facts(), Family::V4)
        .expect_err("choice must be refused");
    (e.reason(), e.to_string())
}

fn annotated(value: &str) -> Refusal {
    choice_refusal(pod("web").annotated(IPV4_POOLS_ANNOTATION, value))
}

fn record(cidr: &str, allocations: Vec<(u32, &str, u64)>) -> BlockRecord {
    BlockRecord {
        cidr: cidr.parse().unwrap(),
        pool: "pool-a".into(),
        affinity: Some("node-1".into()),
        sequence: 5,
        allocations: allocations
            .into_iter()
            .map(|(ordinal, handle, sequence)| AllocationRecord {
                ordinal,
                handle: handle.into(),
                namespace: "ns".into(),
                pod: "p".into(),
                container: None,
                sequence,
            })
            .collect(),
        quarantine: None,
        released: Vec::new(),
    }
}

fn block_refusal(rec: BlockRecord) -> Refusal {
    let e = Block::from_record(&rec).expect_err("record must be refused");
    (e.reason(), e.to_string())
}

struct Case {
    what: &'static str,
    run: Box<dyn Fn() -> Refusal>,
    reason: &'static str,
    mentions: &'static [&'static str],
}

fn case(
    what: &'static str,
    reason: &'static str,
    mentions: &'static [&'static str],
    run: impl Fn() -> Refusal + 'static,
) -> Case {
    Case {
        what,
        run: Box::new(run),
        reason,
        mentions,
    }
}

fn cases() -> Vec<Case> {
    vec![
        // CIDRs
        case("garbage cidr", "InvalidCIDR", &["pool p", "banana"], || {
            pool_refusal(pool("p").cidr("banana"))
        }),
        case(
            "missing prefix",
            "InvalidCIDR",
            &["pool p", "10.0.0.0", "prefix length"],
            || pool_refusal(pool("p").cidr("10.0.0.0")),
        ),
        case(
            "prefix out of range",
            "InvalidCIDR",
            &["pool p", "10.0.0.0/33", "0 to 32"],
            || pool_refusal(pool("p").cidr("10.0.0.0/33")),
        ),
        case("empty cidr", "InvalidCIDR", &["pool p"], || {
            pool_refusal(pool("p").cidr(""))
        }),
        case(
            "host bits",
            "InvalidCIDR",
            &["pool p", "did you mean 10.0.0.0/16?"],
            || pool_refusal(pool("p").cidr("10.0.0.1/16")),
        ),
        case(
            "IPv6 host bits",
            "InvalidCIDR",
            &["pool p6", "did you mean fd00::/64?"],
            || pool_refusal(PoolInput::new("p6", "fd00::1/64")),
        ),
        // Block sizes
        case(
            "block size below range",
            "InvalidBlockSize",
            &["pool p", "blockSize 19", "20 to 32"],
            || pool_refusal(pool("p").block_size(19)),
        ),
        case(
            "block size above range",
            "InvalidBlockSize",
            &["pool p", "blockSize 33"],
            || pool_refusal(pool("p").block_size(33)),
        ),
        case(
            "IPv6 block size",
            "InvalidBlockSize",
            &["pool p6", "116 to 128"],
            || pool_refusal(PoolInput::new("p6", "fd00::/64").block_size(115)),
        ),
        case(
            "pool smaller than a block",
            "InvalidBlockSize",
            &["pool p", "10.0.0.0/28", "/26"],
            || pool_refusal(pool("p").cidr("10.0.0.0/28")),
        ),
        // Selectors
        case(
            "single =",
            "InvalidSelector",
            &["pool p", "nodeSelector", "column 6"],
            || pool_refusal(pool("p").node_selector("zone = 'a'")),
        ),
        case(
            "unterminated string",
            "InvalidSelector",
            &["pool p", "namespaceSelector", "column 9"],
            || pool_refusal(pool("p").namespace_selector("team == 'x")),
        ),
        case(
            "global()",
            "InvalidSelector",
            &["pool p", "global()", "all()"],
            || pool_refusal(pool("p").node_selector("global()")),
        ),
        case(
            "unclosed has(",
            "InvalidSelector",
            &["pool p", "column 9"],
            || pool_refusal(pool("p").node_selector("has(zone")),
        ),
        case(
            // One comma before `}` is fine, as in Calico; two are not.
            "doubled comma in set",
            "SelectorSyntax",
            &["column 11", "a quoted string"],
            || {
                let e = Selector::parse("a in {'x',,}").unwrap_err();
                (e.reason(), e.to_string())
            },
        ),
        // Calico-compatible fields
        case(
            "assignmentMode case",
            "InvalidField",
            &["pool p", "assignmentMode", "manual"],
            || pool_refusal(pool("p").assignment_mode("manual")),
        ),
        case(
            "ipipMode case",
            "InvalidField",
            &["pool p", "ipipMode", "always"],
            || pool_refusal(pool("p").ipip_mode("always")),
        ),
        case(
            "vxlanMode value",
            "InvalidField",
            &["pool p", "vxlanMode", "Sometimes"],
            || pool_refusal(pool("p").vxlan_mode("Sometimes")),
        ),
        case(
            "allowedUses value",
            "InvalidField",
            &["pool p", "allowedUses", "Workloads"],
            || pool_refusal(pool("p").allowed_uses(&["Workloads"])),
        ),
        case(
            "IPIP and VXLAN",
            "InvalidField",
            &["pool p", "ipipMode Always", "vxlanMode Always"],
            || pool_refusal(pool("p").ipip_mode("Always").vxlan_mode("Always")),
        ),
        case("IPIP on IPv6", "InvalidField", &["pool p6", "IPv6"], || {
            pool_refusal(PoolInput::new("p6", "fd00::/64").ipip_mode("CrossSubnet"))
        }),
        case(
            "LoadBalancer mixed",
            "InvalidField",
            &["pool p", "LoadBalancer"],
            || pool_refusal(pool("p").allowed_uses(&["LoadBalancer", "Workload"])),
        ),
        case(
            "Tunnel with namespaceSelector",
            "InvalidField",
            &["pool p", "Tunnel", "namespaceSelector"],
            || {
                pool_refusal(
                    pool("p")
                        .allowed_uses(&["Tunnel"])
                        .namespace_selector("a == 'b'"),
                )
            },
        ),
        case("no name", "InvalidField", &["name"], || {
            pool_refusal(PoolInput::new("", "10.0.0.0/16"))
        }),
        // Link-local
        case(
            "IPv4 link-local",
            "LinkLocal",
            &["pool ll", "169.254.0.0/16"],
            || pool_refusal(PoolInput::new("ll", "169.254.0.0/16")),
        ),
        case(
            "IPv6 link-local",
            "LinkLocal",
            &["pool ll6", "fe80::/10"],
            || pool_refusal(PoolInput::new("ll6", "fe80::/64")),
        ),
        // Annotations
        case(
            "annotation not JSON",
            "AnnotationNotJSON",
            &[
                "pod shop/web",
                IPV4_POOLS_ANNOTATION,
                "on the pod",
                "general",
            ],
            || annotated("general"),
        ),
        case(
            "annotation not a list",
            "AnnotationNotList",
            &["pod shop/web", IPV4_POOLS_ANNOTATION],
            || annotated(r#""general""#),
        ),
        case(
            "annotation not strings",
            "AnnotationNotStrings",
            &["pod shop/web", "entry 1"],
            || annotated(r#"[{"name": "general"}]"#),
        ),
        case(
            "annotation empty list",
            "AnnotationEmpty",
            &["pod shop/web", IPV4_POOLS_ANNOTATION],
            || annotated("[]"),
        ),
        case(
            "duplicate pool",
            "DuplicatePool",
            &["pod shop/web", "general"],
            || annotated(r#"["general", "general"]"#),
        ),
        case(
            "unknown pool",
            "UnknownPool",
            &["pod shop/web", "nope"],
            || annotated(r#"["nope"]"#),
        ),
        case(
            "unknown pool on the namespace",
            "UnknownPool",
            &["namespace shop", "nope"],
            || choice_refusal(pod("web").ns_annotated(IPV4_POOLS_ANNOTATION, r#"["nope"]"#)),
        ),
        case(
            "IPv6 pool in ipv4pools",
            "WrongFamily",
            &["pod shop/web", "v6", "IPv6"],
            || annotated(r#"["v6"]"#),
        ),
        case(
            "disabled pool named",
            "PoolNotAllocatable",
            &["pod shop/web", "old", "PoolDisabled"],
            || annotated(r#"["old"]"#),
        ),
        case(
            "pool of another namespace",
            "NamespaceSelectorMismatch",
            &["pod shop/web", "fw"],
            || annotated(r#"["fw"]"#),
        ),
        case(
            "CIDR naming no pool",
            "UnknownPoolCIDR",
            &["pod shop/web", "10.9.0.0/16"],
            || annotated(r#"["10.9.0.0/16"]"#),
        ),
        // Hostile block records
        case(
            "block with host bits",
            "BlockCIDRNotMasked",
            &["pool-a", "10.0.0.1/26"],
            || block_refusal(record("10.0.0.1/26", vec![])),
        ),
        case(
            "block too large",
            "InvalidBlockSize",
            &["pool-a", "10.0.0.0/16"],
            || block_refusal(record("10.0.0.0/16", vec![])),
        ),
        case(
            "ordinal outside the block",
            "OrdinalOutOfRange",
            &["pool-a", "ordinal 64"],
            || block_refusal(record("10.0.0.0/26", vec![(64, "h", 1)])),
        ),
        case(
            "ordinal twice",
            "DuplicateOrdinal",
            &["pool-a", "10.0.0.3"],
            || block_refusal(record("10.0.0.0/26", vec![(3, "h", 1), (3, "g", 2)])),
        ),
        case(
            "handle twice",
            "DuplicateHandle",
            &["pool-a", "10.0.0.3", "10.0.0.4"],
            || block_refusal(record("10.0.0.0/26", vec![(3, "h", 1), (4, "h", 2)])),
        ),
        case(
            "allocation ahead of the block",
            "SequenceAhead",
            &["pool-a", "sequence 9"],
            || block_refusal(record("10.0.0.0/26", vec![(3, "h", 9)])),
        ),
        case(
            "empty handle",
            "EmptyHandle",
            &["pool-a", "10.0.0.3"],
            || block_refusal(record("10.0.0.0/26", vec![(3, "", 1)])),
        ),
        case("bad block name", "BadBlockName", &["10-0-0-1-26"], || {
            let e = parse_block_name("10-0-0-1-26").unwrap_err();
            (e.reason(), e.to_string())
        }),
        // Allocator
        case(
            "release of an unknown address",
            "NoBlock",
            &["10.1.2.3"],
            || {
                let mut a = Allocator::new();
                let address: IpAddr = "10.1.2.3".parse().unwrap();
                let e = a.release(address, "h", 1).unwrap_err();
                (e.reason(), e.to_string())
            },
        ),
        case(
            "overlapping block",
            "BlockOverlap",
            &["10.0.0.0/24", "10.0.0.0/26"],
            || {
                let mut a = Allocator::new();
                a.insert_block(Block::new("10.0.0.0/26".parse().unwrap(), "p", None).unwrap())
                    .unwrap();
                let e = a
                    .insert_block(Block::new("10.0.0.0/24".parse().unwrap(), "q", None).unwrap())
                    .unwrap_err();
                (e.reason(), e.to_string())
            },
        ),
    ]
}

#[test]
fn every_bad_input_is_refused_with_its_reason_and_a_message_naming_it() {
    let cases = cases();
    assert!(cases.len() >= 30, "the table must stay at least 30 cases");
    let mut failures = Vec::new();
    for c in &cases {
        match catch_unwind(AssertUnwindSafe(|| (c.run)())) {
            Err(_) => failures.push(format!("{}: panicked", c.what)),
            Ok((reason, message)) => {
                if reason != c.reason {
                    failures.push(format!(
                        "{}: reason {reason}, want {}: {message}",
                        c.what, c.reason
                    ));
                }
                for m in c.mentions {
                    if !message.contains(m) {
                        failures.push(format!("{}: message lacks {m:?}: {message}", c.what));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
