//! "Did you mean": the existing pool name closest to one an annotation names that does not
//! exist, so that the Event, the CNI error and the plan all point at the typo (`"payment"` ->
//! `did you mean "payments"?`).

use std::fmt;

use crate::text::shown;

/// The name of `names` closest to `written` by edit distance (insertions, deletions,
/// substitutions and swaps of two neighbouring characters each count one; case is ignored), if
/// it is close enough to be the one meant: at most one edit for names of up to five characters,
/// two up to eight, three beyond. Of equally close names, the first in name order wins, so the
/// answer never depends on the order the pools were listed in.
pub(super) fn closest<'a>(
    written: &str,
    names: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let want: Vec<char> = written.to_lowercase().chars().collect();
    let limit = match want.len() {
        0 => return None,
        1..=5 => 1,
        6..=8 => 2,
        _ => 3,
    };
    names
        .into_iter()
        .filter(|n| *n != written)
        .filter_map(|n| {
            let have: Vec<char> = n.to_lowercase().chars().collect();
            // Lengths that differ by more than the limit cannot be within it.
            if have.len().abs_diff(want.len()) > limit {
                return None;
            }
            let d = distance(&want, &have);
            (d <= limit).then_some((d, n))
        })
        .min()
        .map(|(_, n)| n)
}

/// Optimal string alignment distance: Levenshtein plus the swap of two neighbours.
fn distance(a: &[char], b: &[char]) -> usize {
    // Three rows: the one two back (for swaps), the previous and the current.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            current[j] = d;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// `; did you mean "payments"?` after a message, or nothing.
pub(super) struct DidYouMean<'a>(pub(super) &'a Option<String>);

impl fmt::Display for DidYouMean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(name) => write!(f, "; did you mean {}?", shown(name)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(a: &str, b: &str) -> usize {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        distance(&a, &b)
    }

    #[test]
    fn distance_counts_each_edit_once() {
        assert_eq!(d("payments", "payments"), 0);
        assert_eq!(d("payment", "payments"), 1);
        assert_eq!(d("paymnets", "payments"), 1);
        assert_eq!(d("paymnts", "payments"), 1);
        assert_eq!(d("pazments", "payments"), 1);
        assert_eq!(d("", "abc"), 3);
    }

    #[test]
    fn a_close_name_is_suggested_and_a_far_one_is_not() {
        let names = ["general", "partners", "payments", "legacy-dmz"];
        assert_eq!(closest("payment", names), Some("payments"));
        assert_eq!(closest("Payments", names), Some("payments"));
        assert_eq!(closest("paymnets", names), Some("payments"));
        assert_eq!(closest("legacy-dnz", names), Some("legacy-dmz"));
        assert_eq!(closest("genral", names), Some("general"));
        assert_eq!(closest("billing", names), None);
        assert_eq!(closest("dmz", names), None);
        assert_eq!(closest("", names), None);
        // Short names get one edit at most.
        assert_eq!(closest("db", ["dc", "xy"]), Some("dc"));
        assert_eq!(closest("ab", ["cd"]), None);
    }

    #[test]
    fn equally_close_names_resolve_by_name_whatever_their_order() {
        assert_eq!(closest("pool-c", ["pool-b", "pool-a"]), Some("pool-a"));
        assert_eq!(closest("pool-c", ["pool-a", "pool-b"]), Some("pool-a"));
    }

    #[test]
    fn the_suffix_quotes_the_name_or_is_empty() {
        let some = Some("payments".to_owned());
        assert_eq!(
            DidYouMean(&some).to_string(),
            "; did you mean \"payments\"?"
        );
        assert_eq!(DidYouMean(&None).to_string(), "");
    }
}
