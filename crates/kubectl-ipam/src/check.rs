//! `kubectl ipam check`: a consistency report of the cluster's addresses.
//!
//! Reads pools, blocks and pods once ([`Snapshot`]), applies the rules of [`find`], and prints
//! the problems and notes. One rule needs a second look: an annotation whose address no block
//! records may belong to a pod assigned between the block list and the pod list, so such pods
//! are confirmed against a fresh list of the blocks (read after the pods) before they are
//! reported.
//!
//! Exit status: 0 when there is no problem, 1 when there is one, 2 when the cluster cannot be
//! read.

mod find;
pub mod finding;

use std::fmt::Write;
use std::process::ExitCode;

pub use find::find;
pub(crate) use find::{address_state, bound_at};
pub use finding::{Counts, Finding, REPORT_VERSION, Report};

use crate::cluster::{Access, AccessError, block_on};
use crate::records;
use crate::snapshot::{Snapshot, read_blocks};
use crate::text::{DETAIL_INDENT, wrap_into};

/// Exit status when there is a problem.
const EXIT_PROBLEMS: u8 = 1;
/// Exit status when the cluster cannot be read.
const EXIT_ACCESS: u8 = 2;

/// What `kubectl ipam check` was asked.
#[derive(Debug, Clone)]
pub struct Args {
    /// The cluster.
    pub access: Access,
    /// `-o json` instead of the text.
    pub json: bool,
}

/// Runs the check and prints the report; returns the exit status in the module docs.
pub fn run(args: &Args) -> ExitCode {
    let report = match block_on(report(&args.access)).and_then(|r| r) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("kubectl ipam check: {e}");
            return ExitCode::from(EXIT_ACCESS);
        }
    };
    let out = if args.json {
        // A report is plain strings, numbers and lists: serializing it cannot fail.
        let mut text = serde_json::to_string_pretty(&report).unwrap_or_default();
        text.push('\n');
        text
    } else {
        render(&report)
    };
    crate::print(&out);
    if report.clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PROBLEMS)
    }
}

/// Reads the cluster and builds the report.
pub async fn report(access: &Access) -> Result<Report, AccessError> {
    let connection = access.connect().await?;
    let snapshot = Snapshot::read(&connection.client, true).await?;
    let mut findings = find(&snapshot);
    if findings
        .problems
        .iter()
        .any(|f| matches!(f, Finding::UnrecordedAddress(_)))
    {
        let fresh = read_blocks(&connection.client).await?;
        let again = find::unrecorded_annotations(&snapshot.pods, &records::recorded(&fresh));
        findings.problems.retain(|f| match f {
            Finding::UnrecordedAddress(first) => again.iter().any(|g| match g {
                Finding::UnrecordedAddress(second) => {
                    (&first.namespace, &first.pod, &first.family)
                        == (&second.namespace, &second.pod, &second.family)
                }
                _ => false,
            }),
            _ => true,
        });
    }
    Ok(Report {
        report_version: REPORT_VERSION,
        generated_at: snapshot.at.to_string(),
        server: connection.server,
        clean: findings.problems.is_empty(),
        checked: Counts {
            pools: snapshot.pools.len(),
            blocks: snapshot.blocks.len(),
            allocations: snapshot.blocks.iter().map(|b| b.spec.allocated()).sum(),
            pods: snapshot.pods.len(),
        },
        problems: findings.problems,
        notes: findings.notes,
    })
}

/// The report as text for a person.
pub fn render(report: &Report) -> String {
    let c = &report.checked;
    let mut out = String::new();
    wrap_into(
        &mut out,
        &format!(
            "Checked {} pools, {} blocks holding {} addresses, and {} pods of {} at {}.",
            c.pools, c.blocks, c.allocations, c.pods, report.server, report.generated_at
        ),
        "",
        "",
    );
    for (title, list) in [("Problems", &report.problems), ("Notes", &report.notes)] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{title} ({})", list.len());
        for f in list {
            let _ = writeln!(out, "  {}: {}", f.kind(), f.subject());
            wrap_into(&mut out, f.message(), DETAIL_INDENT, DETAIL_INDENT);
        }
    }
    out.push('\n');
    if report.clean {
        out.push_str("Result: no problem; exit status 0\n");
    } else {
        let leaks = report
            .problems
            .iter()
            .filter(|f| matches!(f, Finding::LeakedAllocation(_)))
            .count();
        let _ = writeln!(
            out,
            "Result: {} problem(s); exit status {EXIT_PROBLEMS}",
            report.problems.len()
        );
        if leaks > 0 {
            let _ = writeln!(
                out,
                "To release the {leaks} leaked address(es):\n{DETAIL_INDENT}kubectl ipam check -o json > report.json && kubectl ipam release --from-report report.json"
            );
        }
    }
    out
}

#[cfg(test)]
mod tests;
