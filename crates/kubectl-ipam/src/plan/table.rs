//! The plan as text for a person (`-o table`, the default): readable in 100-120 columns, with
//! every long message on its own indented, wrapped lines under the row it explains.

use std::fmt::Write;

use ipam::cidr::Family;

use super::compute::{Outcome, Plan, PoolRow};

/// Lines are wrapped to this width.
const WIDTH: usize = 110;
/// A column is never padded wider than this; a longer cell pushes its row to the right.
const MAX_COLUMN: usize = 40;
/// Indent of message lines under a row.
const DETAIL_INDENT: &str = "    ";

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
            pool.blocks.to_string(),
        ];
        let mut details = Vec::new();
        if !pool.allocatable() {
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

/// A left-aligned table whose rows may carry wrapped detail lines.
struct Table {
    headers: Vec<&'static str>,
    rows: Vec<(Vec<String>, Vec<String>)>,
}

impl Table {
    fn new(headers: Vec<&'static str>) -> Table {
        Table {
            headers,
            rows: Vec::new(),
        }
    }

    /// Adds a row. A row may have fewer cells than headers: its last cell then spans the rest.
    fn push(&mut self, cells: Vec<String>, details: Vec<String>) {
        self.rows.push((cells, details));
    }

    fn render(&self) -> String {
        // The last cell of a row is never padded, so it does not widen its column.
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for (cells, _) in &self.rows {
            for (i, cell) in cells.iter().enumerate().take(cells.len().saturating_sub(1)) {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.chars().count()).min(MAX_COLUMN);
                }
            }
        }
        let mut out = String::new();
        let headers: Vec<String> = self.headers.iter().map(|h| (*h).to_owned()).collect();
        line(&mut out, &headers, &widths);
        for (cells, details) in &self.rows {
            line(&mut out, cells, &widths);
            for d in details {
                wrap_into(&mut out, d, DETAIL_INDENT, DETAIL_INDENT);
            }
        }
        out
    }
}

fn line(out: &mut String, cells: &[String], widths: &[usize]) {
    let mut text = String::new();
    for (i, cell) in cells.iter().enumerate() {
        text.push_str(cell);
        if i + 1 < cells.len() {
            let width = widths.get(i).copied().unwrap_or(0);
            let pad = width.saturating_sub(cell.chars().count()) + 2;
            text.extend(std::iter::repeat_n(' ', pad));
        }
    }
    out.push_str(text.trim_end());
    out.push('\n');
}

/// Appends `text` wrapped at [`WIDTH`] on spaces: the first line after `first`, the others after
/// `rest`. A word longer than a line stays whole.
fn wrap_into(out: &mut String, text: &str, first: &str, rest: &str) {
    let mut current = first.to_owned();
    let mut empty = true;
    for word in text.split_whitespace() {
        let len = current.chars().count();
        if !empty && len + 1 + word.chars().count() > WIDTH {
            out.push_str(&current);
            out.push('\n');
            current = rest.to_owned();
            empty = true;
        }
        if !empty {
            current.push(' ');
        }
        current.push_str(word);
        empty = false;
    }
    out.push_str(&current);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_keeps_every_word_and_the_width() {
        let text = "word ".repeat(60);
        let mut out = String::new();
        wrap_into(&mut out, &text, "    ", "    ");
        assert!(out.lines().count() > 1, "{out}");
        assert!(
            out.lines()
                .all(|l| l.len() <= WIDTH && l.starts_with("    ")),
            "{out}"
        );
        assert_eq!(out.split_whitespace().count(), 60);
    }

    #[test]
    fn a_spanning_last_cell_does_not_widen_its_column() {
        let mut t = Table::new(vec!["A", "B", "C"]);
        t.push(vec!["x".into(), "y".into(), "z".into()], Vec::new());
        t.push(
            vec!["x".into(), "a very long spanning cell".into()],
            Vec::new(),
        );
        let out = t.render();
        assert_eq!(out.lines().next(), Some("A  B  C"), "{out}");
        assert_eq!(out.lines().nth(1), Some("x  y  z"), "{out}");
    }
}
