//! CIDR maths over [`ipnet`]: strict parsing, containment, cutting a pool into blocks, addresses
//! by ordinal, and block object names.
//!
//! Addresses are handled as `u128` offsets internally so that IPv4 and IPv6 share one code path;
//! every function here is total (returns `Option`/`Result` instead of panicking) because its
//! inputs come from manifests and API objects.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use thiserror::Error;

use crate::text::shown;

/// An IP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// Both families, IPv4 first.
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    /// The family of a network.
    pub fn of(net: &IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }

    /// The family of an address.
    pub fn of_addr(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Number of bits in an address: 32 or 128.
    pub const fn max_prefix(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    /// The block prefix length a pool gets when `blockSize` is not set: 26 (64 addresses) for
    /// IPv4, 122 (64 addresses) for IPv6.
    pub const fn default_block_prefix(self) -> u8 {
        match self {
            Family::V4 => 26,
            Family::V6 => 122,
        }
    }

    /// The allowed block prefix lengths: 20-32 for IPv4, 116-128 for IPv6. The upper bound on
    /// block size (4096 addresses) keeps one block record within a Kubernetes object's size.
    pub const fn block_prefix_range(self) -> RangeInclusive<u8> {
        match self {
            Family::V4 => 20..=32,
            Family::V6 => 116..=128,
        }
    }

    /// Lower-case key used in JSON maps and annotations: `ipv4` or `ipv6`.
    pub const fn key(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
}

impl Family {
    /// The families to assign: those named (any of `ipv4`, `v4`, `ipv6`, `v6`, any case, each
    /// once), else those of the pod CIDRs, else IPv4 alone. Always IPv4 first.
    pub fn select(
        named: &[String],
        pod_cidrs: Option<&[IpNet]>,
    ) -> Result<Vec<Family>, FamilyError> {
        let mut families: Vec<Family> = if named.is_empty() {
            pod_cidrs.into_iter().flatten().map(Family::of).collect()
        } else {
            named.iter().map(|n| n.parse()).collect::<Result<_, _>>()?
        };
        families.sort();
        families.dedup();
        if families.is_empty() {
            families.push(Family::V4);
        }
        Ok(families)
    }
}

/// A name that is not an address family.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{} is not ipv4 or ipv6", shown(.0))]
pub struct FamilyError(pub String);

impl FromStr for Family {
    type Err = FamilyError;

    /// `ipv4` / `v4` / `ipv6` / `v6`, any case, surrounding spaces ignored.
    fn from_str(s: &str) -> Result<Family, FamilyError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ipv4" | "v4" => Ok(Family::V4),
            "ipv6" | "v6" => Ok(Family::V6),
            _ => Err(FamilyError(s.to_owned())),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// Why a string is not a strictly masked CIDR, or not a block name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CidrError {
    /// No `/` separating address and prefix length.
    #[error(
        "{} is not a CIDR: it has no prefix length; write ADDRESS/PREFIX, e.g. 10.244.0.0/16 or fd00::/64",
        shown(input)
    )]
    MissingPrefix {
        /// The input as given.
        input: String,
    },
    /// The part before `/` is not an IPv4 or IPv6 address.
    #[error(
        "{} is not a CIDR: {} is not an IPv4 or IPv6 address",
        shown(input),
        shown(address)
    )]
    BadAddress {
        /// The input as given.
        input: String,
        /// The address part.
        address: String,
    },
    /// The part after `/` is not a number in range for the family.
    #[error(
        "{} is not a CIDR: prefix length {} must be a number from 0 to {max} for an {family} address",
        shown(input),
        shown(prefix)
    )]
    BadPrefix {
        /// The input as given.
        input: String,
        /// The prefix part.
        prefix: String,
        /// The family of the address part.
        family: Family,
        /// The largest prefix for that family.
        max: u8,
    },
    /// Bits below the prefix are set, so the range is ambiguous.
    #[error("{input} has host bits set; did you mean {masked}?")]
    HostBitsSet {
        /// The input as given.
        input: String,
        /// The same range with host bits cleared.
        masked: IpNet,
    },
    /// Not a name produced by [`block_name`].
    #[error(
        "{} is not a block name: expected the block's address and prefix joined by '-', e.g. 10-244-0-64-26 or fd00-10-0-0-0-0-0-40-122",
        shown(input)
    )]
    BadBlockName {
        /// The input as given.
        input: String,
    },
}

impl CidrError {
    /// Short stable label for events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            CidrError::MissingPrefix { .. } => "MissingPrefix",
            CidrError::BadAddress { .. } => "BadAddress",
            CidrError::BadPrefix { .. } => "BadPrefix",
            CidrError::HostBitsSet { .. } => "HostBitsSet",
            CidrError::BadBlockName { .. } => "BadBlockName",
        }
    }
}

/// Parses `ADDRESS/PREFIX` strictly: a prefix length is required, it is plain decimal without
/// sign or leading zeros, in range for the family, and no host bit may be set.
pub fn parse_strict(input: &str) -> Result<IpNet, CidrError> {
    let Some((address, prefix)) = input.split_once('/') else {
        return Err(CidrError::MissingPrefix {
            input: input.to_owned(),
        });
    };
    let addr: IpAddr = address.parse().map_err(|_| CidrError::BadAddress {
        input: input.to_owned(),
        address: address.to_owned(),
    })?;
    let family = Family::of_addr(&addr);
    let max = family.max_prefix();
    let bad_prefix = || CidrError::BadPrefix {
        input: input.to_owned(),
        prefix: prefix.to_owned(),
        family,
        max,
    };
    // `u8::from_str` accepts "+8" and "08"; neither is a prefix anyone means to write.
    let plain_decimal = !prefix.is_empty()
        && prefix.len() <= 3
        && prefix.bytes().all(|b| b.is_ascii_digit())
        && (prefix == "0" || !prefix.starts_with('0'));
    if !plain_decimal {
        return Err(bad_prefix());
    }
    let len: u8 = prefix.parse().map_err(|_| bad_prefix())?;
    let net = IpNet::new(addr, len).map_err(|_| bad_prefix())?;
    let masked = net.trunc();
    if masked != net {
        return Err(CidrError::HostBitsSet {
            input: input.to_owned(),
            masked,
        });
    }
    Ok(net)
}

/// True when `inner` lies entirely inside `outer` (same family; equal ranges count).
pub fn contains(outer: &IpNet, inner: &IpNet) -> bool {
    Family::of(outer) == Family::of(inner) && outer.contains(inner)
}

/// True when the two ranges share at least one address. Ranges of different families never do.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    contains(a, b) || contains(b, a)
}

/// The address as an unsigned offset from the start of its family's space.
pub(crate) fn addr_to_u128(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address at `value` in `family`'s space, or `None` when it does not fit.
pub(crate) fn u128_to_addr(family: Family, value: u128) -> Option<IpAddr> {
    match family {
        Family::V4 => u32::try_from(value)
            .ok()
            .map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        Family::V6 => Some(IpAddr::V6(Ipv6Addr::from(value))),
    }
}

/// `2^bits`, saturating at `u128::MAX` for the one value (`2^128`) that does not fit.
fn pow2(bits: u32) -> u128 {
    1u128.checked_shl(bits).unwrap_or(u128::MAX)
}

/// Every pair of ranges among `nets` that overlap, as indices `(i, j)` with `i < j`, sorted.
/// One sweep over the ranges sorted by start address: `O(n log n)` plus the pairs found.
pub fn overlapping_pairs(nets: &[IpNet]) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..nets.len()).collect();
    order.sort_by_key(|&i| span(&nets[i]));
    let mut pairs = Vec::new();
    // Ranges started so far whose end has not been passed, per family.
    let mut open: Vec<usize> = Vec::new();
    for &i in &order {
        let (family, start, _) = span(&nets[i]);
        open.retain(|&j| {
            let (f, _, end) = span(&nets[j]);
            f == family && end >= start
        });
        pairs.extend(open.iter().map(|&j| (j.min(i), j.max(i))));
        open.push(i);
    }
    pairs.sort_unstable();
    pairs
}

/// A range as its family and first and last address, for sorting and sweeping.
fn span(net: &IpNet) -> (Family, u128, u128) {
    let number = |a: IpAddr| match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    };
    (
        Family::of(net),
        number(net.network()),
        number(net.broadcast()),
    )
}

/// Number of addresses in a range (saturates at `u128::MAX` for `::/0`).
pub fn addr_count(net: &IpNet) -> u128 {
    pow2(u32::from(net.max_prefix_len() - net.prefix_len()))
}

/// How many addresses of `within` lie in at least one of `ranges` (which may overlap each other
/// and `within` in part, or be of the other family). Saturates at `u128::MAX`.
pub fn covered(within: &IpNet, ranges: &[IpNet]) -> u128 {
    let (lo, hi) = (
        addr_to_u128(within.network()),
        addr_to_u128(within.broadcast()),
    );
    let mut spans: Vec<(u128, u128)> = ranges
        .iter()
        .filter(|r| Family::of(r) == Family::of(within))
        .map(|r| {
            (
                addr_to_u128(r.network()).max(lo),
                addr_to_u128(r.broadcast()).min(hi),
            )
        })
        .filter(|(s, e)| s <= e)
        .collect();
    spans.sort_unstable();
    let mut total: u128 = 0;
    let mut current: Option<(u128, u128)> = None;
    for (s, e) in spans {
        match current {
            Some((cs, ce)) if s <= ce.saturating_add(1) => current = Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total = total.saturating_add(ce - cs).saturating_add(1);
                current = Some((s, e));
            }
            None => current = Some((s, e)),
        }
    }
    if let Some((cs, ce)) = current {
        total = total.saturating_add(ce - cs).saturating_add(1);
    }
    total
}

/// Number of blocks of prefix `block_prefix` in `pool`; 0 when `block_prefix` is shorter than
/// the pool's prefix or longer than the family allows. Saturates at `u128::MAX`.
pub fn block_count(pool: &IpNet, block_prefix: u8) -> u128 {
    if block_prefix < pool.prefix_len() || block_prefix > pool.max_prefix_len() {
        return 0;
    }
    pow2(u32::from(block_prefix - pool.prefix_len()))
}

/// The `n`th block (0-based, in address order) of prefix `block_prefix` in `pool`.
pub fn nth_block(pool: &IpNet, block_prefix: u8, n: u128) -> Option<IpNet> {
    if n >= block_count(pool, block_prefix) {
        return None;
    }
    let shift = u32::from(pool.max_prefix_len() - block_prefix);
    let offset = n.checked_shl(shift)?;
    let start = addr_to_u128(pool.network()).checked_add(offset)?;
    let addr = u128_to_addr(Family::of(pool), start)?;
    IpNet::new(addr, block_prefix).ok()
}

/// The position of `block` among the blocks of its prefix length in `pool`: the inverse of
/// [`nth_block`]. `None` when the block is not inside the pool or is not strictly masked.
pub fn block_index(pool: &IpNet, block: &IpNet) -> Option<u128> {
    if !contains(pool, block) || block.trunc() != *block {
        return None;
    }
    let shift = u32::from(block.max_prefix_len() - block.prefix_len());
    let offset = addr_to_u128(block.network()) - addr_to_u128(pool.network());
    offset.checked_shr(shift).or(Some(0))
}

/// The block of prefix length `prefix` that holds `addr`; `None` when the prefix is too long
/// for the address family.
pub fn block_containing(addr: IpAddr, prefix: u8) -> Option<IpNet> {
    IpNet::new(addr, prefix).ok().map(|n| n.trunc())
}

/// The address at `ordinal` (0 = the block's first address) inside `block`.
pub fn nth_addr(block: &IpNet, ordinal: u32) -> Option<IpAddr> {
    if u128::from(ordinal) >= addr_count(block) {
        return None;
    }
    let start = addr_to_u128(block.network());
    u128_to_addr(Family::of(block), start.checked_add(u128::from(ordinal))?)
}

/// The ordinal of `addr` inside `block`, or `None` when the address is not in the block (or the
/// block is too large for ordinals to fit in a `u32`).
pub fn ordinal_of(block: &IpNet, addr: IpAddr) -> Option<u32> {
    if Family::of(block) != Family::of_addr(&addr) || !block.contains(&addr) {
        return None;
    }
    let offset = addr_to_u128(addr) - addr_to_u128(block.network());
    u32::try_from(offset).ok()
}

/// The Kubernetes object name of a block: the address's parts and the prefix length joined by
/// `-`. IPv4 `10.244.0.0/26` gives `10-244-0-0-26`; IPv6 gives all eight groups in lower-case hex
/// without leading zeros, e.g. `fd00:10::/122` gives `fd00-10-0-0-0-0-0-0-122`. The result is a
/// valid DNS-1123 subdomain and never needs `::` compression, so it maps back one to one.
pub fn block_name(block: &IpNet) -> String {
    match block {
        IpNet::V4(n) => {
            let [a, b, c, d] = n.network().octets();
            format!("{a}-{b}-{c}-{d}-{}", n.prefix_len())
        }
        IpNet::V6(n) => {
            let mut out = String::with_capacity(48);
            for group in n.network().segments() {
                out.push_str(&format!("{group:x}-"));
            }
            out.push_str(&n.prefix_len().to_string());
            out
        }
    }
}

/// Parses a name produced by [`block_name`] back into the block's range. Only the exact form
/// [`block_name`] writes is accepted (no upper case, no leading zeros, strictly masked).
pub fn parse_block_name(name: &str) -> Result<IpNet, CidrError> {
    let bad = || CidrError::BadBlockName {
        input: name.to_owned(),
    };
    let parts: Vec<&str> = name.split('-').collect();
    let (prefix, groups) = parts.split_last().ok_or_else(bad)?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    let net = match groups.len() {
        4 => {
            let mut octets = [0u8; 4];
            for (slot, part) in octets.iter_mut().zip(groups) {
                *slot = part.parse().map_err(|_| bad())?;
            }
            IpNet::V4(Ipv4Net::new(Ipv4Addr::from(octets), prefix).map_err(|_| bad())?)
        }
        8 => {
            let mut segments = [0u16; 8];
            for (slot, part) in segments.iter_mut().zip(groups) {
                if part.is_empty() || part.len() > 4 {
                    return Err(bad());
                }
                *slot = u16::from_str_radix(part, 16).map_err(|_| bad())?;
            }
            IpNet::V6(Ipv6Net::new(Ipv6Addr::from(segments), prefix).map_err(|_| bad())?)
        }
        _ => return Err(bad()),
    };
    // Round-tripping rejects every spelling other than the canonical one ("010", "FD00", "+1"),
    // so that one block has exactly one object name.
    if net.trunc() != net || block_name(&net) != name {
        return Err(bad());
    }
    Ok(net)
}

/// IPv4 link-local range, RFC 3927. (`new_assert` runs at compile time in a const.)
const LINK_LOCAL_V4: IpNet = IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(169, 254, 0, 0), 16));

/// IPv6 link-local unicast range, RFC 4291.
const LINK_LOCAL_V6: IpNet = IpNet::V6(Ipv6Net::new_assert(
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
    10,
));

/// True when the range shares any address with the link-local range of its family
/// (`169.254.0.0/16`, `fe80::/10`). Pod addresses there would clash with node-local services
/// such as cloud metadata endpoints.
pub fn is_link_local(net: &IpNet) -> bool {
    overlaps(net, &LINK_LOCAL_V4) || overlaps(net, &LINK_LOCAL_V6)
}

/// The family's link-local range, for messages.
pub(crate) fn link_local_range(family: Family) -> IpNet {
    match family {
        Family::V4 => LINK_LOCAL_V4,
        Family::V6 => LINK_LOCAL_V6,
    }
}

#[cfg(test)]
mod tests;
