//! The plan as text for a person (`-o table`, the default): readable in 100-120 columns, with
//! every long message on its own indented, wrapped lines under the row it explains.

use std::fmt::Write;

use ipam::cidr::Family;

use super::compute::{Outcome, Plan, PoolRow, ReservationRow};
use crate::text::{DETAIL_INDENT, Table, range, wrap_into};

/// Renders the whole plan.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    let settings = &plan.settings;
    let cidrs = match &settings.pod_cidrs {
        Some(cidrs) => {
            let list: Vec<String> = cidrs.iter().map(ToString::to_string).collect();
            format!("{}, {}", list.join(", "), settings.source)
        }
        None => format!("{}; no pool is allocatable", settings.source),
    };
    wrap_into(&mut out, &format!("Pod CIDRs: {cidrs}"), "", "           ");
    let families: Vec<String> = settings.families.iter().map(ToString::to_string).collect();
    let _ = writeln!(out, "Families:  {}", families.join(", "));
    out.push('\n');

    out.push_str(&pods_table(plan).render());
    out.push('\n');
    out.push_str("Pools\n");
    out.push_str(&pools_table(&plan.pools).render());
    if !plan.reservations.is_empty() {
        out.push_str("\nReservations\n");
        out.push_str(&reservations_table(&plan.reservations).render());
    }

    if !plan.skipped.is_empty() {
        out.push_str("\nSkipped\n");
        for s in &plan.skipped {
            wrap_into(&mut out, &s.to_string(), "  ", DETAIL_INDENT);
        }
    }
    if !plan.notes.is_empty() {
        out.push_str("\nNotes\n");
        for n in &plan.notes {
            wrap_into(&mut out, n, "  ", DETAIL_INDENT);
        }
    }
    out.push('\n');
    wrap_into(&mut out, &summary(plan), "", "");
    out
}

fn pods_table(plan: &Plan) -> Table {
    let dual = plan.settings.families.len() > 1;
    let mut headers = vec!["POD", "NAMESPACE", "NODE"];
    if dual {
        headers.push("FAMILY");
    }
    headers.extend(["POOL", "ADDRESS"]);
    let mut table = Table::new(headers);
    for row in &plan.pods {
        let mut cells = vec![row.name.clone(), row.namespace.clone(), row.node.clone()];
        if dual {
            cells.push(row.family.to_string());
        }
        let details = match &row.outcome {
            Outcome::Address { pool, address } => {
                cells.extend([pool.clone(), address.to_string()]);
                Vec::new()
            }
            Outcome::Refused { reason, message } => {
                cells.push(format!("no address: {reason}"));
                vec![message.clone()]
            }
        };
        table.push(cells, details);
    }
    if plan.pods.is_empty() {
        table.push(vec!["(no pod to plan)".to_owned()], Vec::new());
    }
    table
}

fn pools_table(pools: &[PoolRow]) -> Table {
    let mut table = Table::new(vec![
        "NAME",
        "CIDR",
        "BLOCK",
        "MODE",
        "ALLOCATABLE",
        "PLANNED",
        "RESERVED",
        "BLOCKS",
    ]);
    for pool in pools {
        let allocatable = if pool.allocatable() {
            format!("yes ({})", pool.reason)
        } else {
            format!("no ({})", pool.reason)
        };
        let cells = vec![
            pool.name.clone(),
            pool.cidr.clone(),
            pool.block_size
                .map_or_else(|| "-".to_owned(), |b| format!("/{b}")),
            pool.assignment_mode
                .clone()
                .unwrap_or_else(|| "-".to_owned()),
            allocatable,
            format!("{}/{}", pool.planned, pool.capacity),
            pool.reserved.to_string(),
            pool.blocks.to_string(),
        ];
        let mut details = Vec::new();
        // An allocatable pool's message only says so, unless it notes the Calico settings that
        // have no effect here.
        if !pool.allocatable() || !pool.inert.is_empty() {
            details.push(pool.message.clone());
        }
        details.extend(pool.note.clone());
        table.push(cells, details);
    }
    if pools.is_empty() {
        table.push(
            vec!["(no IPPool among the manifests)".to_owned()],
            Vec::new(),
        );
    }
    table
}

fn reservations_table(reservations: &[ReservationRow]) -> Table {
    let mut table = Table::new(vec!["NAME", "FILE", "RESERVED"]);
    for r in reservations {
        let ranges: Vec<String> = r.ranges.iter().map(range).collect();
        table.push(
            vec![
                r.name.clone(),
                r.file.display().to_string(),
                ranges.join(", "),
            ],
            r.invalid
                .iter()
                .map(|why| format!("{why}: ignored, as the controller ignores it"))
                .collect(),
        );
    }
    table
}

fn summary(plan: &Plan) -> String {
    let mut pods: Vec<(&str, &str, bool)> = Vec::new();
    for row in &plan.pods {
        let ok = row.outcome.address().is_some();
        match pods.last_mut() {
            Some((ns, name, all_ok)) if *ns == row.namespace && *name == row.name => *all_ok &= ok,
            _ => pods.push((&row.namespace, &row.name, ok)),
        }
    }
    let served = pods.iter().filter(|p| p.2).count();
    let what = match plan.settings.families.as_slice() {
        [Family::V4] => "an IPv4 address",
        [Family::V6] => "an IPv6 address",
        _ => "all their addresses",
    };
    let bad_pools = plan.pools.iter().filter(|p| !p.fine()).count();
    let status = if plan.clean() { 0 } else { 1 };
    format!(
        "Result: {served} of {} pods get {what}; {bad_pools} of {} pools not allocatable; exit status {status}",
        pods.len(),
        plan.pools.len()
    )
}
