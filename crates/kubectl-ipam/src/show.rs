//! `kubectl ipam show`: every pool with its range, block size, mode, whether it gives addresses,
//! and how many of its addresses are used and free — counted from the blocks themselves, not
//! taken from the pool status, which the controller writes every few seconds and not at all
//! while it is down. With `--nodes`, every block with its node and usage.
//!
//! Whether a pool is allocatable is the controller's verdict (its `Allocatable` condition): it
//! depends on the cluster's pod CIDR, which only the controller knows. How many addresses of a
//! pool are reserved (IPReservations, `reserveEdgeAddresses`) is counted by the core, as the
//! controller counts it ([`crate::reserved`]); the IPReservations are listed with the addresses
//! they keep back of each pool.

mod ip;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::ExitCode;

use api::IPPool;
use ipam::cidr::Family;
use ipam::pool::AssignmentMode;
use ipam::validate::PoolVerdict;
use kube::ResourceExt;
use serde::Serialize;

use crate::cluster::{Access, AccessError, block_on};
use crate::records;
use crate::reserved::Reserved;
use crate::snapshot::Snapshot;
use crate::text::{DETAIL_INDENT, Table, wrap_into};

/// `reason` of a pool the controller has not written a status for.
pub const NO_STATUS: &str = "Unknown";
/// Exit status when the cluster cannot be read.
const EXIT_ACCESS: u8 = 2;

pub use crate::text::Format;

/// What `kubectl ipam show` was asked.
#[derive(Debug, Clone)]
pub struct Args {
    /// The cluster.
    pub access: Access,
    /// `--nodes`: also every block.
    pub nodes: bool,
    /// `--ip`: who has this address, instead of the usage.
    pub ip: Option<IpAddr>,
    /// `-o`.
    pub format: Format,
}

/// Reads the cluster and prints its usage; exit status 0, or 2 when the cluster cannot be read.
pub fn run(args: &Args) -> ExitCode {
    if let Some(address) = args.ip {
        return run_ip(args, address);
    }
    let usage = match block_on(read(args)).and_then(|r| r) {
        Ok(usage) => usage,
        Err(e) => {
            eprintln!("kubectl ipam show: {e}");
            return ExitCode::from(EXIT_ACCESS);
        }
    };
    let out = crate::text::serialized(&usage, args.format).unwrap_or_else(|| table(&usage));
    crate::print(&out);
    ExitCode::SUCCESS
}

/// `--ip`: exit status 0 whatever the answer, 2 when the cluster cannot be read.
fn run_ip(args: &Args, address: IpAddr) -> ExitCode {
    let work = async {
        let connection = args.access.connect().await?;
        ip::read(&connection, address).await
    };
    let found = match block_on(work).and_then(|r| r) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("kubectl ipam show: {e}");
            return ExitCode::from(EXIT_ACCESS);
        }
    };
    let out = crate::text::serialized(&found, args.format).unwrap_or_else(|| ip::table(&found));
    crate::print(&out);
    ExitCode::SUCCESS
}

async fn read(args: &Args) -> Result<Usage, AccessError> {
    let connection = args.access.connect().await?;
    let snapshot = Snapshot::read(&connection.client, false).await?;
    Ok(compute(&snapshot, args.nodes))
}

/// Usage of every pool, and of every block when asked. The `-o json` / `-o yaml` shape: fields
/// are only ever added, never renamed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// One entry per pool, by name.
    pub pools: Vec<PoolUsage>,
    /// One entry per block, by node then range; only with `--nodes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Vec<BlockUsage>>,
    /// One entry per IPReservation, by name.
    pub reservations: Vec<ReservationUsage>,
    /// Things a reader should know, e.g. blocks of pools that do not exist.
    pub notes: Vec<String>,
}

/// One pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolUsage {
    /// Its name.
    pub name: String,
    /// `spec.cidr` as written.
    pub cidr: String,
    /// The block prefix length in effect (the family default when unset); as written when the
    /// spec is invalid; `None` when it is unset in an invalid spec.
    pub block_size: Option<u8>,
    /// `Automatic` or `Manual` (as written when it is neither).
    pub assignment_mode: String,
    /// `spec.disabled`.
    pub disabled: bool,
    /// The controller's verdict; `None` before it wrote one.
    pub allocatable: Option<bool>,
    /// The condition's reason (`OK`, `OutsidePodCIDR`, ...), or `Unknown` without a status.
    pub reason: String,
    /// The condition's message.
    pub message: String,
    /// Addresses in the range; `None` when the range does not parse.
    pub capacity: Option<u128>,
    /// Addresses its blocks record as allocated.
    pub used: u64,
    /// Addresses no pod is given: in an IPReservation, or edge addresses it keeps back
    /// (`reserveEdgeAddresses`); `None` when its spec does not parse.
    pub reserved: Option<u128>,
    /// `capacity - used - reserved`, as the controller's status counts it.
    pub free: Option<u128>,
    /// Blocks cut from it.
    pub blocks: u64,
    /// What the pool status says is allocated (`status.allocated`), for comparison.
    pub status_used: Option<i64>,
    /// Its Calico data-plane settings, which have no effect here (the controller's message
    /// says so); the table shows the message for them.
    #[serde(skip)]
    pub inert: Vec<String>,
}

/// One IPReservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationUsage {
    /// Its name.
    pub name: String,
    /// The addresses and ranges it keeps from every pod (a single address without `/32`).
    pub ranges: Vec<String>,
    /// Entries that are not addresses or ranges, each with why; the controller ignores them.
    pub invalid: Vec<String>,
    /// How many addresses of each pool it keeps back, by pool name; pools it does not touch
    /// are left out.
    pub pools: Vec<PoolShare>,
}

/// A reservation's share of one pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolShare {
    /// The pool.
    pub pool: String,
    /// How many of its addresses the reservation covers.
    pub reserved: u128,
}

/// One block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockUsage {
    /// The node it is affine to; `None` once the node is gone.
    pub node: Option<String>,
    /// The IPAMBlock's name.
    pub block: String,
    /// Its range.
    pub cidr: String,
    /// Its pool.
    pub pool: String,
    /// Allocated addresses.
    pub used: u64,
    /// Addresses in the block (0 when its range does not parse).
    pub size: u32,
}

/// Counts usage from the snapshot's pools and blocks.
pub fn compute(snapshot: &Snapshot, with_blocks: bool) -> Usage {
    let mut used: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for block in &snapshot.blocks {
        let entry = used.entry(block.spec.pool.as_str()).or_default();
        entry.0 += block.spec.allocated() as u64;
        entry.1 += 1;
    }
    // The pools' range and block size as the core reads them; whether a pool gives addresses
    // is the controller's verdict, from the status, since only it knows the pod CIDR.
    let reserved = Reserved::new(
        &snapshot.pools,
        snapshot.reservations.as_deref().unwrap_or_default(),
    );
    let mut pools: Vec<PoolUsage> = snapshot
        .pools
        .iter()
        .zip(reserved.verdicts())
        .map(|(p, verdict)| {
            let (u, b) = used.get(p.name_any().as_str()).copied().unwrap_or_default();
            pool_usage(p, verdict, u, b, reserved.count_in(&verdict.name))
        })
        .collect();
    pools.sort_by(|a, b| a.name.cmp(&b.name));
    let reservations = reserved
        .reservations()
        .iter()
        .map(|r| ReservationUsage {
            name: r.name.clone(),
            ranges: r.ranges.iter().map(crate::text::range).collect(),
            invalid: r.invalid.clone(),
            pools: reserved
                .per_pool(r)
                .into_iter()
                .map(|(pool, reserved)| PoolShare { pool, reserved })
                .collect(),
        })
        .collect();

    let mut notes = Vec::new();
    if snapshot.reservations.is_none() {
        notes.push(
            "the cluster has no IPReservation CRD (it came with a later rangepool than the one installed): no address counts as reserved but edge addresses; kubectl apply -f crds/ installs it".to_owned(),
        );
    }
    let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
    for (pool, (addresses, blocks)) in &used {
        if !names.contains(pool) {
            notes.push(format!(
                "{blocks} block(s) name pool {pool}, which does not exist; they hold {addresses} address(es) (kubectl ipam check lists them)"
            ));
        }
    }
    for p in &pools {
        if let Some(status) = p.status_used
            && u64::try_from(status).ok() != Some(p.used)
        {
            notes.push(format!(
                "pool {}: its status says {status} used, its blocks hold {}; the controller updates the status every few seconds, so a lasting difference means it is not running or not leading",
                p.name, p.used
            ));
        }
    }

    let blocks = with_blocks.then(|| {
        let mut rows: Vec<BlockUsage> = snapshot
            .blocks
            .iter()
            .map(|b| BlockUsage {
                node: b.spec.affinity.clone(),
                block: b.name_any(),
                cidr: b.spec.cidr.clone(),
                pool: b.spec.pool.clone(),
                used: b.spec.allocated() as u64,
                size: records::range(b).map_or(0, |c| records::block_size(&c)),
            })
            .collect();
        // Blocks without a node last; then by pool and range.
        rows.sort_by(|a, b| {
            (a.node.is_none(), &a.node, &a.pool, &a.block).cmp(&(
                b.node.is_none(),
                &b.node,
                &b.pool,
                &b.block,
            ))
        });
        rows
    });
    Usage {
        pools,
        blocks,
        reservations,
        notes,
    }
}

fn pool_usage(
    pool: &IPPool,
    verdict: &PoolVerdict,
    used: u64,
    blocks: u64,
    reserved: Option<u128>,
) -> PoolUsage {
    let spec = &pool.spec;
    let cidr = verdict.cidr;
    let (block_size, assignment_mode) = match &verdict.pool {
        Some(p) => (
            Some(p.block_prefix()),
            p.assignment_mode().as_str().to_owned(),
        ),
        // The spec is refused: the fields as written, the defaults where nothing is written.
        None => (
            match spec.block_size {
                Some(b) => u8::try_from(b).ok(),
                None => cidr.map(|c| Family::of(&c).default_block_prefix()),
            },
            spec.assignment_mode
                .clone()
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| AssignmentMode::default().as_str().to_owned()),
        ),
    };
    let (allocatable, reason, message) = match pool.allocatable() {
        Some(c) => (
            match c.status.as_str() {
                "True" => Some(true),
                "False" => Some(false),
                _ => None,
            },
            c.reason.clone(),
            c.message.clone(),
        ),
        None => (
            None,
            NO_STATUS.to_owned(),
            "the controller has not written this pool's status yet: is it running?".to_owned(),
        ),
    };
    let capacity = cidr.as_ref().map(ipam::cidr::addr_count);
    PoolUsage {
        name: pool.name_any(),
        cidr: spec.cidr.clone(),
        block_size,
        assignment_mode,
        disabled: spec.disabled,
        allocatable,
        reason,
        message,
        capacity,
        used,
        reserved,
        free: capacity.map(|c| {
            c.saturating_sub(u128::from(used))
                .saturating_sub(reserved.unwrap_or(0))
        }),
        blocks,
        status_used: pool.status.as_ref().and_then(|s| s.allocated),
        inert: verdict
            .pool
            .as_ref()
            .map(ipam::pool::Pool::inert_settings)
            .unwrap_or_default(),
    }
}

/// The usage as tables for a person.
pub fn table(usage: &Usage) -> String {
    let mut t = Table::new(vec![
        "NAME",
        "CIDR",
        "BLOCK",
        "MODE",
        "ALLOCATABLE",
        "CAPACITY",
        "USED",
        "RESERVED",
        "FREE",
        "BLOCKS",
    ]);
    let dash = || "-".to_owned();
    for p in &usage.pools {
        let allocatable = match p.allocatable {
            Some(true) => format!("True ({})", p.reason),
            Some(false) => format!("False ({})", p.reason),
            None if p.reason == NO_STATUS => "Unknown (no status)".to_owned(),
            None => format!("Unknown ({})", p.reason),
        };
        // An allocatable pool's message only says so, unless it notes the Calico settings that
        // have no effect here.
        let details = if p.message.is_empty() || (p.allocatable == Some(true) && p.inert.is_empty())
        {
            Vec::new()
        } else {
            vec![p.message.clone()]
        };
        t.push(
            vec![
                p.name.clone(),
                p.cidr.clone(),
                p.block_size.map_or_else(dash, |b| format!("/{b}")),
                p.assignment_mode.clone(),
                allocatable,
                p.capacity.map_or_else(dash, |c| c.to_string()),
                p.used.to_string(),
                p.reserved.map_or_else(dash, |r| r.to_string()),
                p.free.map_or_else(dash, |f| f.to_string()),
                p.blocks.to_string(),
            ],
            details,
        );
    }
    if usage.pools.is_empty() {
        t.push(vec!["(no IPPool in the cluster)".to_owned()], Vec::new());
    }
    let mut out = t.render();
    if let Some(blocks) = &usage.blocks {
        out.push('\n');
        let mut t = Table::new(vec!["NODE", "BLOCK", "CIDR", "POOL", "USED"]);
        for b in blocks {
            t.push(
                vec![
                    b.node.clone().unwrap_or_else(|| "(none)".to_owned()),
                    b.block.clone(),
                    b.cidr.clone(),
                    b.pool.clone(),
                    format!("{}/{}", b.used, b.size),
                ],
                Vec::new(),
            );
        }
        if blocks.is_empty() {
            t.push(vec!["(no IPAMBlock in the cluster)".to_owned()], Vec::new());
        }
        out.push_str(&t.render());
    }
    if !usage.reservations.is_empty() {
        out.push('\n');
        out.push_str(&reservations_table(&usage.reservations).render());
    }
    if !usage.notes.is_empty() {
        out.push_str("\nNotes\n");
        for n in &usage.notes {
            wrap_into(&mut out, n, "  ", DETAIL_INDENT);
        }
    }
    out
}

fn reservations_table(reservations: &[ReservationUsage]) -> Table {
    let mut t = Table::new(vec!["RESERVATION", "ADDRESSES", "RANGES"]);
    for r in reservations {
        let pools: Vec<String> = r
            .pools
            .iter()
            .map(|s| format!("{}: {}", s.pool, s.reserved))
            .collect();
        let pools = if pools.is_empty() {
            "(none)".to_owned()
        } else {
            pools.join(", ")
        };
        t.push(
            vec![r.name.clone(), pools, r.ranges.join(", ")],
            r.invalid
                .iter()
                .map(|why| format!("{why}: ignored by the controller"))
                .collect(),
        );
    }
    t
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use api::{IPAMBlock, IPAMBlockSpec, IPPoolSpec, IPPoolStatus, PoolCondition};

    use super::*;

    fn pool(name: &str, cidr: &str, status: Option<(&str, &str, i64)>) -> IPPool {
        let mut p = IPPool::new(
            name,
            IPPoolSpec {
                cidr: cidr.into(),
                ..Default::default()
            },
        );
        p.status = status.map(|(s, reason, allocated)| IPPoolStatus {
            conditions: vec![PoolCondition {
                type_: "Allocatable".into(),
                status: s.into(),
                reason: reason.into(),
                message: format!("pool {name}: {reason}"),
                observed_generation: None,
            }],
            allocated: Some(allocated),
            ..Default::default()
        });
        p
    }

    fn block(cidr: &str, pool: &str, node: Option<&str>, used: usize) -> IPAMBlock {
        let holders: BTreeMap<String, String> = (0..used)
            .map(|i| (i.to_string(), format!("ns/pod-{i} {cidr}-{i} 0")))
            .collect();
        IPAMBlock::new(
            &cidr.replace(['.', '/'], "-"),
            IPAMBlockSpec {
                cidr: cidr.into(),
                pool: pool.into(),
                affinity: node.map(str::to_owned),
                sequence_number: used as i64,
                holders,
                allocations: BTreeMap::new(),
                released: BTreeMap::new(),
                quarantine: None,
            },
        )
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            pools: vec![
                pool("b-general", "10.244.0.0/24", Some(("True", "OK", 3))),
                pool(
                    "a-dmz",
                    "192.168.0.0/24",
                    Some(("False", "OutsidePodCIDR", 0)),
                ),
                pool("new", "fd00::/120", None),
            ],
            blocks: vec![
                block("10.244.0.64/26", "b-general", Some("node-2"), 1),
                block("10.244.0.0/26", "b-general", Some("node-1"), 2),
                block("10.244.9.0/26", "gone", None, 4),
            ],
            reservations: Some(Vec::new()),
            ..Default::default()
        }
    }

    #[test]
    fn counts_come_from_the_blocks_and_pools_sort_by_name() {
        let usage = compute(&snapshot(), false);
        let names: Vec<&str> = usage.pools.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a-dmz", "b-general", "new"]);
        let general = &usage.pools[1];
        assert_eq!(
            (general.capacity, general.used, general.free, general.blocks),
            (Some(256), 3, Some(253), 2)
        );
        assert_eq!(general.block_size, Some(26));
        assert_eq!(usage.pools[2].block_size, Some(122));
        assert_eq!(usage.pools[2].allocatable, None);
        assert_eq!(usage.pools[2].reason, NO_STATUS);
        assert_eq!(usage.pools[0].allocatable, Some(false));
        assert!(usage.blocks.is_none());
        assert_eq!(usage.notes.len(), 1, "{:?}", usage.notes);
        assert!(usage.notes[0].contains("pool gone"), "{:?}", usage.notes);
    }

    #[test]
    fn a_status_that_disagrees_with_the_blocks_is_noted() {
        let mut s = snapshot();
        s.blocks.pop();
        s.blocks.pop();
        let usage = compute(&s, false);
        assert_eq!(usage.pools[1].used, 1);
        assert!(
            usage.notes.iter().any(|n| n.contains("status says 3")),
            "{:?}",
            usage.notes
        );
    }

    #[test]
    fn blocks_sort_by_node_with_unaffine_blocks_last() {
        let usage = compute(&snapshot(), true);
        let rows: Vec<(Option<&str>, &str, u64, u32)> = usage
            .blocks
            .as_ref()
            .unwrap()
            .iter()
            .map(|b| (b.node.as_deref(), b.block.as_str(), b.used, b.size))
            .collect();
        assert_eq!(
            rows,
            [
                (Some("node-1"), "10-244-0-0-26", 2, 64),
                (Some("node-2"), "10-244-0-64-26", 1, 64),
                (None, "10-244-9-0-26", 4, 64),
            ]
        );
        let text = table(&usage);
        assert!(
            text.lines().any(|l| l.split_whitespace().eq([
                "(none)",
                "10-244-9-0-26",
                "10.244.9.0/26",
                "gone",
                "4/64"
            ])),
            "{text}"
        );
        assert!(
            text.contains("False (OutsidePodCIDR)") && text.contains("pool a-dmz: OutsidePodCIDR"),
            "{text}"
        );
    }

    #[test]
    fn reservations_are_listed_with_their_share_of_each_pool_and_counted_per_pool() {
        let mut s = snapshot();
        s.pools[1].spec.reserve_edge_addresses = Some("Pool".into());
        s.reservations = Some(vec![api::IPReservation::new(
            "appliances",
            api::IPReservationSpec {
                reserved_cidrs: vec!["10.244.0.1".into(), "10.244.0.248/29".into(), "junk".into()],
            },
        )]);
        let usage = compute(&s, false);
        let general = &usage.pools[1];
        assert_eq!(general.name, "b-general");
        // 1 + 8 reserved, 3 used: 244 free.
        assert_eq!((general.reserved, general.free), (Some(9), Some(244)));
        let dmz = &usage.pools[0];
        // Its first and last address.
        assert_eq!((dmz.reserved, dmz.free), (Some(2), Some(254)));
        assert_eq!(usage.reservations.len(), 1);
        let r = &usage.reservations[0];
        assert_eq!(r.ranges, ["10.244.0.1", "10.244.0.248/29"]);
        assert_eq!(r.invalid.len(), 1);
        assert_eq!(
            r.pools,
            [PoolShare {
                pool: "b-general".into(),
                reserved: 9
            }]
        );
        let text = table(&usage);
        let row: Vec<&str> = text
            .lines()
            .find(|l| l.starts_with("appliances  "))
            .unwrap_or_else(|| panic!("{text}"))
            .split_whitespace()
            .collect();
        assert_eq!(
            row,
            [
                "appliances",
                "b-general:",
                "9",
                "10.244.0.1,",
                "10.244.0.248/29"
            ]
        );
        assert!(text.contains("\"junk\""), "{text}");
        let general_row: Vec<&str> = text
            .lines()
            .find(|l| l.starts_with("b-general  "))
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(general_row[7..], ["3", "9", "244", "2"], "{text}");
        let json = serde_json::to_value(&usage).unwrap();
        assert_eq!(json["pools"][1]["reserved"], 9);
        assert_eq!(
            json["reservations"][0]["pools"],
            serde_json::json!([{"pool": "b-general", "reserved": 9}])
        );
    }

    #[test]
    fn without_the_reservation_crd_show_says_so() {
        let mut s = snapshot();
        s.reservations = None;
        let usage = compute(&s, false);
        assert!(
            usage
                .notes
                .iter()
                .any(|n| n.contains("no IPReservation CRD")),
            "{:?}",
            usage.notes
        );
        assert!(usage.reservations.is_empty());
    }

    #[test]
    fn a_refused_spec_shows_its_mode_and_default_block_size_and_inert_settings_show() {
        let mut s = snapshot();
        // Sorted by name, the pools are a-dmz (1), b-general (0) and new (2).
        s.pools[1].spec.block_size = Some(12);
        s.pools[1].spec.assignment_mode = Some("Manual".into());
        s.pools[2].spec.namespace_selector = Some("team ==".into());
        s.pools[0].spec.nat_outgoing = Some(true);
        s.pools[0].status.as_mut().unwrap().conditions[0].message =
            "pool b-general is allocatable; these Calico settings have no effect here: natOutgoing: true".into();
        let usage = compute(&s, false);
        assert_eq!(
            (
                usage.pools[0].block_size,
                usage.pools[0].assignment_mode.as_str()
            ),
            (Some(12), "Manual")
        );
        // Invalid selector: the block size is the family's default, the mode the default mode.
        assert_eq!(
            (
                usage.pools[2].block_size,
                usage.pools[2].assignment_mode.as_str()
            ),
            (Some(122), "Automatic")
        );
        let text = table(&usage);
        assert!(
            text.contains("these Calico settings have no effect here"),
            "{text}"
        );
    }
}
