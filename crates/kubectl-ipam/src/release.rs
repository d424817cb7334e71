//! `kubectl ipam release`: frees leaked addresses the way the controller's leak sweep does.
//!
//! For each allocation: read its block and confirm the allocation is still the one meant (same
//! handle and sequence); look its pod up live by namespace and name, as recorded in the
//! allocation; release only when that pod is gone or has another UID (a re-created pod), unless
//! `--force`. The write is one JSON patch built by [`api::write::release`]: the core's release
//! applied to the block as read, sent in the controller's own shape, which tests the block's
//! `sequenceNumber` and the allocation's handle and sequence, so a write racing with the
//! controller fails instead of freeing an address that was re-assigned; the block is then
//! re-read and the write retried on [`api::write::Retry`]'s bounded schedule.
//!
//! A record parked for a StatefulSet's next pod ([`ipam::sticky::Parked`]) belongs to no pod and
//! is not a leak: it is never released from a report (even one that lists it as a leak), and
//! `--ip` releases it only with `--force`.
//!
//! Exit status: 0 when every address asked for is free now (released, or already released
//! since the report), 1 when one was refused or could not be released, 2 when the cluster
//! cannot be reached or the input cannot be read.

mod write;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use api::IPAMBlock;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};
use serde::Deserialize;
use serde_json::Value;

use crate::check::finding::{Leak, REPORT_VERSION};
use crate::cluster::{Access, AccessError, block_on};
use crate::records::{self, Holder};
use crate::snapshot::read_blocks;

pub use write::Outcome;

/// Exit status when an address was not released.
const EXIT_NOT_RELEASED: u8 = 1;
/// Exit status when the cluster or the input cannot be read.
const EXIT_ACCESS: u8 = 2;

/// Which addresses to release.
#[derive(Debug, Clone)]
pub enum Target {
    /// `--ip`: every allocation of this address.
    Ip(IpAddr),
    /// `--from-report`: the `LeakedAllocation` entries of a `check -o json` report (`-` reads
    /// stdin).
    Report(PathBuf),
}

/// What `kubectl ipam release` was asked.
#[derive(Debug, Clone)]
pub struct Args {
    /// The cluster.
    pub access: Access,
    /// Which addresses.
    pub target: Target,
    /// Release even when the pod still exists.
    pub force: bool,
    /// Check everything and send the write with `dryRun=All`, changing nothing.
    pub dry_run: bool,
}

/// The report file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct InputError {
    /// The file (`-` for stdin).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Runs the command; returns the exit status in the module docs.
pub fn run(args: &Args) -> ExitCode {
    let input = match &args.target {
        Target::Ip(ip) => Input::Ip(*ip),
        Target::Report(path) => match read_report(path) {
            Ok(r) => Input::Report(r),
            Err(e) => {
                eprintln!("kubectl ipam release: {e}");
                return ExitCode::from(EXIT_ACCESS);
            }
        },
    };
    match block_on(release(args, input)).and_then(|r| r) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("kubectl ipam release: {e}");
            ExitCode::from(EXIT_ACCESS)
        }
    }
}

/// The target with its report read.
enum Input {
    Ip(IpAddr),
    Report(ReportInput),
}

/// The leaks a report lists.
#[derive(Debug, Clone, Default)]
pub struct ReportInput {
    /// The server the report was made from.
    pub server: Option<String>,
    /// Its `LeakedAllocation` entries.
    pub leaks: Vec<Holder>,
    /// Problems of other kinds, which release leaves alone.
    pub others: usize,
    /// `LeakedAllocation` entries naming a parked record, which release never frees.
    pub parked: Vec<Holder>,
}

/// Reads the leaks of a `kubectl ipam check -o json` report. Entries of other kinds are counted
/// and skipped, so a report from a newer version with new kinds still works.
pub fn read_report(path: &std::path::Path) -> Result<ReportInput, InputError> {
    let shown = path.display().to_string();
    let bad = |message: String| InputError {
        path: shown.clone(),
        message,
    };
    let text = if shown == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| bad(e.to_string()))?
    } else {
        std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?
    };
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Raw {
        report_version: u32,
        #[serde(default)]
        server: Option<String>,
        problems: Vec<Value>,
    }
    let raw: Raw = serde_json::from_str(&text).map_err(|e| {
        bad(format!(
            "not a report of `kubectl ipam check -o json` ({e})"
        ))
    })?;
    if raw.report_version != REPORT_VERSION {
        return Err(bad(format!(
            "reportVersion {} is not one this kubectl-ipam reads ({REPORT_VERSION})",
            raw.report_version
        )));
    }
    let mut out = ReportInput {
        server: raw.server,
        ..Default::default()
    };
    for (i, p) in raw.problems.into_iter().enumerate() {
        if p.get("kind").and_then(Value::as_str) != Some("LeakedAllocation") {
            out.others += 1;
            continue;
        }
        let leak: Leak = serde_json::from_value(p)
            .map_err(|e| bad(format!("problems[{i}] (LeakedAllocation): {e}")))?;
        // `check` reports parked records as notes; a report that lists one as a leak was
        // written by hand or by another tool.
        if ipam::sticky::Parked::parse(&leak.holder.handle).is_some() {
            out.parked.push(leak.holder);
        } else {
            out.leaks.push(leak.holder);
        }
    }
    Ok(out)
}

async fn release(args: &Args, input: Input) -> Result<u8, AccessError> {
    let connection = args.access.connect().await?;
    let client = &connection.client;
    let (targets, from_report) = match input {
        Input::Report(report) => {
            if let Some(server) = &report.server
                && server != &connection.server
            {
                eprintln!(
                    "warning: the report was made from {server}, and this is {}; every allocation is checked again before it is released",
                    connection.server
                );
            }
            if report.others > 0 {
                eprintln!(
                    "note: {} problem(s) of the report are not leaked allocations; release leaves them alone",
                    report.others
                );
            }
            for h in &report.parked {
                eprintln!(
                    "note: {} (block {}) is listed as leaked but its record is parked for a StatefulSet's next pod ({}): never released from a report",
                    h.address, h.block, h.handle
                );
            }
            (report.leaks, true)
        }
        Input::Ip(ip) => {
            let blocks = read_blocks(client).await?;
            let holders = holders_of(&blocks, ip);
            if holders.is_empty() {
                crate::print(&format!("{}\n", not_allocated(&blocks, ip)));
                return Ok(EXIT_NOT_RELEASED);
            }
            (holders, false)
        }
    };
    if targets.is_empty() {
        crate::print("nothing to release: the report lists no leaked allocation\n");
        return Ok(0);
    }
    let mut worst = 0;
    let mut released = 0;
    for holder in &targets {
        let outcome = release_one(client, holder, args.force, args.dry_run).await?;
        crate::print(&format!("{}\n", outcome.line(holder)));
        match &outcome {
            Outcome::Released { .. } | Outcome::WouldRelease { .. } => released += 1,
            Outcome::Stale(_) if from_report => {}
            _ => worst = EXIT_NOT_RELEASED,
        }
    }
    let verb = if args.dry_run {
        "would release"
    } else {
        "released"
    };
    crate::print(&format!(
        "{verb} {released} of {} address(es); exit status {worst}\n",
        targets.len()
    ));
    Ok(worst)
}

/// Every allocation of `ip` in `blocks`.
fn holders_of(blocks: &[IPAMBlock], ip: IpAddr) -> Vec<Holder> {
    records::recorded(blocks)
        .into_iter()
        .map(|r| r.holder)
        .filter(|h| h.address == ip)
        .collect()
}

fn not_allocated(blocks: &[IPAMBlock], ip: IpAddr) -> String {
    let containing: Vec<&str> = blocks
        .iter()
        .filter(|b| records::range(b).is_ok_and(|c| c.contains(&ip)))
        .map(|b| b.spec.cidr.as_str())
        .collect();
    if containing.is_empty() {
        format!("not released {ip}: no block contains it, so it is not allocated")
    } else {
        format!(
            "not released {ip}: its block ({}) records no allocation for it, so it is free",
            containing.join(", ")
        )
    }
}

/// Is the allocation's pod gone? `Err` describes the live pod.
async fn pod_gone(client: &Client, holder: &Holder) -> Result<Result<String, String>, AccessError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &holder.namespace);
    let key = holder.pod_key();
    let pod = api
        .get_opt(&holder.pod)
        .await
        .map_err(|e| AccessError::request(format!("reading pod {key}"), &e))?;
    Ok(match pod {
        None => Ok(format!("pod {key} is gone (not found)")),
        Some(p) if p.metadata.uid.as_deref() != Some(holder.handle.as_str()) => Ok(format!(
            "pod {key} is gone: the pod of that name now has uid {}",
            p.metadata.uid.unwrap_or_default()
        )),
        Some(p) => {
            let phase = p
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "unknown".to_owned());
            let node = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_else(|| "none".to_owned());
            let deleting = p
                .metadata
                .deletion_timestamp
                .as_ref()
                .map_or_else(String::new, |t| {
                    format!(", being deleted (deletionTimestamp {})", t.0)
                });
            Err(format!(
                "pod {key} (uid {}) is alive: phase {phase}, node {node}{deleting}",
                holder.handle
            ))
        }
    })
}

async fn release_one(
    client: &Client,
    holder: &Holder,
    force: bool,
    dry_run: bool,
) -> Result<Outcome, AccessError> {
    let blocks: Api<IPAMBlock> = Api::all(client.clone());
    // The allocation must still be the one meant before its pod is looked at.
    let block = match write::still_held(&blocks, holder).await? {
        Ok(block) => block,
        Err(stale) => return Ok(stale),
    };
    let why = if let Some(parked) = ipam::sticky::Parked::parse(&holder.handle) {
        let kept = format!(
            "it is parked for the next pod {}/{} of the StatefulSet of uid {}: the controller releases it when the StatefulSet is deleted or scaled below the pod's ordinal",
            holder.namespace, parked.pod, parked.statefulset_uid
        );
        if !force {
            return Ok(Outcome::Parked(kept));
        }
        format!("{kept}; allowed by --force: that pod will get another address")
    } else {
        match pod_gone(client, holder).await? {
            Ok(gone) => gone,
            Err(alive) if !force => return Ok(Outcome::Refused(alive)),
            Err(alive) => format!(
                "{alive}; allowed by --force: the pod keeps using the address until it is re-created, and another pod may get it meanwhile"
            ),
        }
    };
    write::remove(&blocks, block, holder, dry_run, why).await
}

#[cfg(test)]
mod tests;
