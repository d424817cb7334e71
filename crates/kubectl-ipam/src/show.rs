//! `kubectl ipam show`: every pool with its range, block size, mode, whether it gives addresses,
//! and how many of its addresses are used and free — counted from the blocks themselves, not
//! taken from the pool status, which the controller writes every few seconds and not at all
//! while it is down. With `--nodes`, every block with its node and usage.
//!
//! Whether a pool is allocatable is the controller's verdict (its `Allocatable` condition): it
//! depends on the cluster's pod CIDR, which only the controller knows.

use std::collections::BTreeMap;
use std::process::ExitCode;

use api::IPPool;
use ipam::pool::PoolInput;
use ipam::validate::{PoolVerdict, validate_pools};
use kube::ResourceExt;
use serde::Serialize;

use crate::cluster::{Access, AccessError, block_on};
use crate::records;
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
    /// `-o`.
    pub format: Format,
}

/// Reads the cluster and prints its usage; exit status 0, or 2 when the cluster cannot be read.
pub fn run(args: &Args) -> ExitCode {
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
    /// `capacity - used`.
    pub free: Option<u128>,
    /// Blocks cut from it.
    pub blocks: u64,
    /// What the pool status says is allocated (`status.allocated`), for comparison.
    pub status_used: Option<i64>,
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
    let inputs: Vec<PoolInput> = snapshot.pools.iter().map(IPPool::to_input).collect();
    let verdicts = validate_pools(&inputs, None);
    let mut pools: Vec<PoolUsage> = snapshot
        .pools
        .iter()
        .zip(&verdicts)
        .map(|(p, verdict)| {
            let (u, b) = used.get(p.name_any().as_str()).copied().unwrap_or_default();
            pool_usage(p, verdict, u, b)
        })
        .collect();
    pools.sort_by(|a, b| a.name.cmp(&b.name));

    let mut notes = Vec::new();
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
        notes,
    }
}

fn pool_usage(pool: &IPPool, verdict: &PoolVerdict, used: u64, blocks: u64) -> PoolUsage {
    let spec = &pool.spec;
    let cidr = verdict.cidr;
    let (block_size, assignment_mode) = match &verdict.pool {
        Some(p) => (
            Some(p.block_prefix()),
            p.assignment_mode().as_str().to_owned(),
        ),
        None => (
            spec.block_size.and_then(|b| u8::try_from(b).ok()),
            spec.assignment_mode
                .clone()
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "Automatic".to_owned()),
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
        free: capacity.map(|c| c.saturating_sub(u128::from(used))),
        blocks,
        status_used: pool.status.as_ref().and_then(|s| s.allocated),
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
        let details = if p.allocatable == Some(true) || p.message.is_empty() {
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
    if !usage.notes.is_empty() {
        out.push_str("\nNotes\n");
        for n in &usage.notes {
            wrap_into(&mut out, n, "  ", DETAIL_INDENT);
        }
    }
    out
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
}
