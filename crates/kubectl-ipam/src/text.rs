//! Text for people: a left-aligned table whose rows carry wrapped detail lines, word wrapping,
//! and short durations. Every command's table output goes through here, so they all read alike
//! and fit in 100-120 columns.

/// How a command prints its result: tables for a person, or one object for machines (`-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Tables for a person.
    Table,
    /// Pretty-printed JSON.
    Json,
    /// YAML.
    Yaml,
}

/// `value` as pretty JSON (with a trailing newline) or YAML; `None` for [`Format::Table`], which
/// each command renders itself. The values are plain structs of strings, numbers, options and
/// lists, so serializing them cannot fail.
pub fn serialized<T: serde::Serialize>(value: &T, format: Format) -> Option<String> {
    match format {
        Format::Table => None,
        Format::Json => Some(serde_json::to_string_pretty(value).unwrap_or_default() + "\n"),
        Format::Yaml => Some(serde_saphyr::to_string(value).unwrap_or_default()),
    }
}

/// Lines are wrapped to this width.
pub const WIDTH: usize = 110;
/// A column is never padded wider than this; a longer cell pushes its row to the right.
const MAX_COLUMN: usize = 40;
/// Indent of message lines under a row.
pub const DETAIL_INDENT: &str = "    ";

/// A duration in seconds as a person reads it at a glance, like kubectl's AGE column: `45s`,
/// `12m`, `3h12m`, `4d3h`. Negative values (clock skew) read as `0s`.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

/// A range as an admin wrote it: a single address without its `/32` or `/128`.
pub fn range(net: &ipnet::IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

/// A left-aligned table whose rows may carry wrapped detail lines.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<(Vec<String>, Vec<String>)>,
}

impl Table {
    pub fn new(headers: Vec<&'static str>) -> Table {
        Table {
            headers,
            rows: Vec::new(),
        }
    }

    /// Adds a row. A row may have fewer cells than headers: its last cell then spans the rest.
    pub fn push(&mut self, cells: Vec<String>, details: Vec<String>) {
        self.rows.push((cells, details));
    }

    pub fn render(&self) -> String {
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
pub fn wrap_into(out: &mut String, text: &str, first: &str, rest: &str) {
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
    fn ages_read_like_kubectl() {
        assert_eq!(age(-3), "0s");
        assert_eq!(age(45), "45s");
        assert_eq!(age(12 * 60 + 5), "12m");
        assert_eq!(age(3 * 3600), "3h");
        assert_eq!(age(3 * 3600 + 12 * 60), "3h12m");
        assert_eq!(age(4 * 86_400 + 3 * 3600 + 59), "4d3h");
        assert_eq!(age(2 * 86_400 + 59), "2d");
    }

    #[test]
    fn a_host_range_reads_as_its_address() {
        let net = |s: &str| {
            s.parse::<ipnet::IpNet>()
                .unwrap_or_else(|e| panic!("{s}: {e}"))
        };
        assert_eq!(range(&net("10.244.8.1/32")), "10.244.8.1");
        assert_eq!(range(&net("fd00::1/128")), "fd00::1");
        assert_eq!(range(&net("10.244.8.240/28")), "10.244.8.240/28");
    }

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
