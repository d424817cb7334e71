#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[test]
fn family_display_and_of() {
    assert_eq!(Family::V4.to_string(), "IPv4");
    assert_eq!(Family::V6.to_string(), "IPv6");
    assert_eq!(Family::of(&net("10.0.0.0/8")), Family::V4);
    assert_eq!(Family::of(&net("fd00::/8")), Family::V6);
    assert_eq!(Family::of_addr(&"::1".parse().unwrap()), Family::V6);
    assert_eq!(Family::V4.default_block_prefix(), 26);
    assert_eq!(Family::V6.default_block_prefix(), 122);
    assert_eq!(Family::V4.block_prefix_range(), 20..=32);
    assert_eq!(Family::V6.block_prefix_range(), 116..=128);
}

#[test]
fn parse_strict_accepts_masked_cidrs() {
    assert_eq!(parse_strict("10.0.0.0/16").unwrap(), net("10.0.0.0/16"));
    assert_eq!(parse_strict("0.0.0.0/0").unwrap(), net("0.0.0.0/0"));
    assert_eq!(parse_strict("10.1.2.3/32").unwrap(), net("10.1.2.3/32"));
    assert_eq!(parse_strict("fd00:10::/64").unwrap(), net("fd00:10::/64"));
    assert_eq!(parse_strict("FD00:10::/64").unwrap(), net("fd00:10::/64"));
}

#[test]
fn parse_strict_rejects_host_bits_with_a_suggestion() {
    let err = parse_strict("10.0.0.1/16").unwrap_err();
    assert_eq!(err.reason(), "HostBitsSet");
    assert_eq!(
        err.to_string(),
        "10.0.0.1/16 has host bits set; did you mean 10.0.0.0/16?"
    );
    let err = parse_strict("fd00::1/64").unwrap_err();
    assert!(err.to_string().contains("did you mean fd00::/64?"), "{err}");
}

#[test]
fn parse_strict_rejects_garbage_with_the_right_reason() {
    let cases = [
        ("10.0.0.0", "MissingPrefix"),
        ("", "MissingPrefix"),
        ("banana/8", "BadAddress"),
        ("10.0.0/8", "BadAddress"),
        (" 10.0.0.0/8", "BadAddress"),
        ("010.0.0.0/8", "BadAddress"),
        ("fe80::1%eth0/64", "BadAddress"),
        ("10.0.0.0/33", "BadPrefix"),
        ("10.0.0.0/", "BadPrefix"),
        ("10.0.0.0/+8", "BadPrefix"),
        ("10.0.0.0/08", "BadPrefix"),
        ("10.0.0.0/8 ", "BadPrefix"),
        ("10.0.0.0/8/8", "BadPrefix"),
        ("fd00::/129", "BadPrefix"),
        ("fd00::/99999999999999999999", "BadPrefix"),
    ];
    for (input, reason) in cases {
        let err = parse_strict(input).unwrap_err();
        assert_eq!(err.reason(), reason, "{input}: {err}");
        assert!(
            err.to_string().contains(&format!("{input:?}")),
            "message must quote the input: {err}"
        );
    }
}

#[test]
fn containment_and_overlap() {
    let pool = net("10.0.0.0/16");
    assert!(contains(&pool, &net("10.0.1.0/24")));
    assert!(contains(&pool, &pool));
    assert!(!contains(&net("10.0.1.0/24"), &pool));
    assert!(!contains(&pool, &net("fd00::/64")));
    assert!(overlaps(&pool, &net("10.0.0.0/8")));
    assert!(overlaps(&net("10.0.0.0/8"), &pool));
    assert!(!overlaps(&pool, &net("10.1.0.0/16")));
    assert!(!overlaps(&net("::/0"), &net("0.0.0.0/0")));
}

#[test]
fn blocks_of_a_pool() {
    let pool = net("10.0.0.0/16");
    assert_eq!(block_count(&pool, 26), 1024);
    assert_eq!(block_count(&pool, 16), 1);
    assert_eq!(block_count(&pool, 15), 0);
    assert_eq!(block_count(&pool, 33), 0);
    assert_eq!(nth_block(&pool, 26, 0), Some(net("10.0.0.0/26")));
    assert_eq!(nth_block(&pool, 26, 5), Some(net("10.0.1.64/26")));
    assert_eq!(nth_block(&pool, 26, 1023), Some(net("10.0.255.192/26")));
    assert_eq!(nth_block(&pool, 26, 1024), None);
    assert_eq!(block_index(&pool, &net("10.0.1.64/26")), Some(5));
    assert_eq!(block_index(&pool, &net("10.1.0.0/26")), None);
    assert_eq!(
        block_containing("10.0.1.77".parse().unwrap(), 26),
        Some(net("10.0.1.64/26"))
    );
    assert_eq!(block_containing("10.0.1.77".parse().unwrap(), 33), None);
}

#[test]
fn huge_ipv6_pools_saturate_instead_of_overflowing() {
    let all = net("::/0");
    assert_eq!(block_count(&all, 128), u128::MAX);
    assert_eq!(addr_count(&all), u128::MAX);
    assert_eq!(block_count(&net("fd00::/64"), 122), 1 << 58);
    assert_eq!(
        nth_block(&net("fd00::/64"), 122, (1 << 58) - 1),
        Some(net("fd00::ffff:ffff:ffff:ffc0/122"))
    );
}

#[test]
fn addresses_by_ordinal() {
    let block = net("10.0.1.64/26");
    assert_eq!(nth_addr(&block, 0), Some("10.0.1.64".parse().unwrap()));
    assert_eq!(nth_addr(&block, 63), Some("10.0.1.127".parse().unwrap()));
    assert_eq!(nth_addr(&block, 64), None);
    assert_eq!(ordinal_of(&block, "10.0.1.70".parse().unwrap()), Some(6));
    assert_eq!(ordinal_of(&block, "10.0.1.128".parse().unwrap()), None);
    assert_eq!(ordinal_of(&block, "fd00::1".parse().unwrap()), None);
    let v6 = net("fd00::40/122");
    assert_eq!(nth_addr(&v6, 3), Some("fd00::43".parse().unwrap()));
    assert_eq!(ordinal_of(&v6, "fd00::7f".parse().unwrap()), Some(63));
}

#[test]
fn block_names_are_kubernetes_names_and_round_trip() {
    assert_eq!(block_name(&net("10.244.0.0/26")), "10-244-0-0-26");
    assert_eq!(block_name(&net("fd00:10::/122")), "fd00-10-0-0-0-0-0-0-122");
    for s in ["10.244.0.0/26", "fd00:10::ffc0/122", "0.0.0.0/20", "::/116"] {
        let n = net(s);
        assert_eq!(parse_block_name(&block_name(&n)).unwrap(), n);
    }
}

#[test]
fn block_names_reject_other_spellings() {
    for bad in [
        "",
        "10-244-0-0",
        "10-244-0-0-33",
        "10-244-0-1-26",
        "010-244-0-0-26",
        "FD00-10-0-0-0-0-0-0-122",
        "fd00-0010-0-0-0-0-0-0-122",
        "fd00-10-0-0-0-0-0-122",
        "10-244-0-0-+26",
        "10.244.0.0-26",
    ] {
        let err = parse_block_name(bad).unwrap_err();
        assert_eq!(err.reason(), "BadBlockName", "{bad}");
    }
}

#[test]
fn link_local_detection() {
    assert!(is_link_local(&net("169.254.0.0/16")));
    assert!(is_link_local(&net("169.254.10.0/24")));
    assert!(is_link_local(&net("169.0.0.0/8")));
    assert!(!is_link_local(&net("10.0.0.0/8")));
    assert!(is_link_local(&net("fe80::/64")));
    assert!(!is_link_local(&net("fd00::/8")));
}

#[test]
fn families_parse_in_any_spelling_and_select_ipv4_first() {
    assert_eq!(" IPv6 ".parse::<Family>(), Ok(Family::V6));
    assert_eq!("v4".parse::<Family>(), Ok(Family::V4));
    let err = "ipv5".parse::<Family>().unwrap_err();
    assert_eq!(err.to_string(), "\"ipv5\" is not ipv4 or ipv6");
    let named = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        Family::select(&named(&["ipv6", "v4", "IPV6"]), None),
        Ok(vec![Family::V4, Family::V6])
    );
    let dual = [net("fd00::/48"), net("10.244.0.0/16")];
    assert_eq!(
        Family::select(&[], Some(&dual)),
        Ok(vec![Family::V4, Family::V6])
    );
    assert_eq!(Family::select(&[], None), Ok(vec![Family::V4]));
    assert!(Family::select(&named(&["v4", "x"]), None).is_err());
}

#[test]
fn overlapping_pairs_are_every_pair_that_shares_an_address() {
    let nets = [
        net("10.0.0.0/16"),
        net("fd00::/64"),
        net("10.0.1.0/24"),
        net("10.1.0.0/16"),
        net("10.0.1.128/25"),
        net("fd00::/120"),
        net("10.0.255.0/24"),
    ];
    assert_eq!(
        overlapping_pairs(&nets),
        [(0, 2), (0, 4), (0, 6), (1, 5), (2, 4)]
    );
    // The same as comparing every pair.
    let mut slow = Vec::new();
    for i in 0..nets.len() {
        for j in i + 1..nets.len() {
            if overlaps(&nets[i], &nets[j]) {
                slow.push((i, j));
            }
        }
    }
    assert_eq!(overlapping_pairs(&nets), slow);
    assert!(overlapping_pairs(&[]).is_empty());
}
