//! The plan for machines (`-o json`, and the same object as `-o yaml`). The shape is an
//! interface; add fields, never rename them.
//!
//! ```json
//! {
//!   "podCIDRs": ["10.244.0.0/16"],          // [] when unknown
//!   "podCIDRSource": "kubeadm-config",      // "flags", "kubeadm-config" or "unknown"
//!   "families": ["ipv4"],
//!   "clean": false,                         // true exactly when the exit status is 0
//!   "pods": [{"namespace": "payments", "name": "batch-1", "node": "node-1", "family": "ipv4",
//!             "pool": "payments", "address": "10.244.8.0",  // null when refused
//!             "reason": null, "message": null}],            // the core's label and message
//!   "pools": [{"name": "payments", "file": "pools.yaml", "cidr": "10.244.8.0/24",
//!              "blockSize": 28, "assignmentMode": "Manual", "allocatable": true,
//!              "reason": "OK", "message": "...", "note": null,
//!              "capacity": 256, "planned": 1, "reserved": 2, "blocks": 1}],
//!   "reservations": [{"name": "appliances", "file": "r.yaml",
//!                     "ranges": ["10.244.8.1/32"], "invalid": []}],
//!   "skipped": [{"file": "x.yaml", "kind": "Service", "name": "web/svc", "reason": "..."}],
//!   "notes": ["..."],
//!   "warnings": ["pods.yaml: pod web/x: annotation cni.projectcalico.org/floatingIPs ..."]
//! }
//! ```
//!
//! `capacity`, `planned` and `reserved` are exact integers (an IPv6 pool's capacity can exceed
//! 2^64).

use serde::Serialize;

use super::compute::{Outcome, Plan};
use super::settings::CidrSource;
use crate::text::Format;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Out<'a> {
    #[serde(rename = "podCIDRs")]
    pod_cidrs: Vec<String>,
    #[serde(rename = "podCIDRSource")]
    pod_cidr_source: &'static str,
    families: Vec<&'static str>,
    clean: bool,
    pods: Vec<PodOut<'a>>,
    pools: Vec<PoolOut<'a>>,
    skipped: Vec<SkippedOut<'a>>,
    notes: &'a [String],
    reservations: Vec<ReservationOut<'a>>,
    warnings: &'a [String],
}

#[derive(Serialize)]
struct ReservationOut<'a> {
    name: &'a str,
    file: String,
    ranges: Vec<String>,
    invalid: &'a [String],
}

#[derive(Serialize)]
struct PodOut<'a> {
    namespace: &'a str,
    name: &'a str,
    node: &'a str,
    family: &'static str,
    pool: Option<&'a str>,
    address: Option<String>,
    reason: Option<&'static str>,
    message: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PoolOut<'a> {
    name: &'a str,
    file: String,
    cidr: &'a str,
    block_size: Option<i64>,
    assignment_mode: Option<&'a str>,
    allocatable: bool,
    reason: &'static str,
    message: &'a str,
    note: Option<&'a str>,
    capacity: u128,
    planned: u128,
    reserved: u128,
    blocks: usize,
}

#[derive(Serialize)]
struct SkippedOut<'a> {
    file: String,
    kind: &'a str,
    name: &'a str,
    reason: &'a str,
}

/// Renders the plan as pretty-printed JSON with a trailing newline, or as YAML; `None` for the
/// table.
pub fn render(plan: &Plan, format: Format) -> Option<String> {
    if format == Format::Table {
        return None;
    }
    let settings = &plan.settings;
    let out = Out {
        pod_cidrs: settings
            .pod_cidrs
            .iter()
            .flatten()
            .map(ToString::to_string)
            .collect(),
        pod_cidr_source: match settings.source {
            CidrSource::Flags => "flags",
            CidrSource::Kubeadm(_) => "kubeadm-config",
            CidrSource::Unknown(_) => "unknown",
        },
        families: settings.families.iter().map(|f| f.key()).collect(),
        clean: plan.clean(),
        pods: plan
            .pods
            .iter()
            .map(|p| {
                let (pool, address, reason, message) = match &p.outcome {
                    Outcome::Address { pool, address } => {
                        (Some(pool.as_str()), Some(address.to_string()), None, None)
                    }
                    Outcome::Refused { reason, message } => {
                        (None, None, Some(*reason), Some(message.as_str()))
                    }
                };
                PodOut {
                    namespace: &p.namespace,
                    name: &p.name,
                    node: &p.node,
                    family: p.family.key(),
                    pool,
                    address,
                    reason,
                    message,
                }
            })
            .collect(),
        pools: plan
            .pools
            .iter()
            .map(|p| PoolOut {
                name: &p.name,
                file: p.file.display().to_string(),
                cidr: &p.cidr,
                block_size: p.block_size,
                assignment_mode: p.assignment_mode.as_deref(),
                allocatable: p.allocatable(),
                reason: p.reason.as_str(),
                message: &p.message,
                note: p.note.as_deref(),
                capacity: p.capacity,
                planned: p.planned,
                reserved: p.reserved,
                blocks: p.blocks,
            })
            .collect(),
        skipped: plan
            .skipped
            .iter()
            .map(|s| SkippedOut {
                file: s.file.display().to_string(),
                kind: &s.kind,
                name: &s.name,
                reason: &s.reason,
            })
            .collect(),
        notes: &plan.notes,
        reservations: plan
            .reservations
            .iter()
            .map(|r| ReservationOut {
                name: &r.name,
                file: r.file.display().to_string(),
                ranges: r.ranges.iter().map(ToString::to_string).collect(),
                invalid: &r.invalid,
            })
            .collect(),
        warnings: &plan.warnings,
    };
    crate::text::serialized(&out, format)
}
