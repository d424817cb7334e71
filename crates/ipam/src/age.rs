//! "Older wins": the order in which pools are compared when they overlap, and in which automatic
//! pools are tried.
//!
//! A pool's age is its creation timestamp (`metadata.creationTimestamp`, RFC 3339), tie-broken
//! by name so that the order is total and the same on every replica. A pool whose timestamp is
//! unknown (e.g. read from a file by the offline planner) counts as younger than every pool with
//! one.

use std::cmp::Ordering;
use std::fmt;

/// A point in time with nanosecond precision, as seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
}

impl Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub fn unix_seconds(&self) -> i64 {
        self.secs
    }

    /// Parses an RFC 3339 timestamp such as `2024-05-01T12:00:00Z` or
    /// `2024-05-01T14:00:00.5+02:00`. Returns `None` for anything else.
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        if b.len() < 20 {
            return None;
        }
        let num = |range: std::ops::Range<usize>| -> Option<i64> {
            let part = b.get(range)?;
            if !part.iter().all(u8::is_ascii_digit) {
                return None;
            }
            part.iter()
                .try_fold(0i64, |acc, d| Some(acc * 10 + i64::from(d - b'0')))
        };
        let sep = |i: usize, allowed: &[u8]| b.get(i).is_some_and(|c| allowed.contains(c));
        if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
            return None;
        }
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return None;
        }
        let mut i = 19;
        let mut nanos: u32 = 0;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return None;
            }
            for (n, d) in b[i..i + digits].iter().enumerate() {
                if n < 9 {
                    nanos = nanos * 10 + u32::from(d - b'0');
                }
            }
            for _ in digits..9 {
                nanos *= 10;
            }
            i += digits;
        }
        let offset = match b.get(i..)? {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
                let h = num(i + 1..i + 3)?;
                let m = num(i + 4..i + 6)?;
                if h > 23 || m > 59 {
                    return None;
                }
                let off = h * 3600 + m * 60;
                if *sign == b'+' { off } else { -off }
            }
            _ => return None,
        };
        // A leap second (:60) is folded into the next second; order is all that matters here.
        let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
            - offset;
        Some(Timestamp { secs, nanos })
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A pool's place in the "older wins" order: creation time (unknown counts as youngest), then
/// name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Age {
    created: Option<Timestamp>,
    name: String,
}

impl Age {
    /// The age of a pool created at `created` (RFC 3339; empty or unparsable means unknown).
    pub fn new(created: &str, name: &str) -> Age {
        Age {
            created: Timestamp::parse_rfc3339(created),
            name: name.to_owned(),
        }
    }

    /// The creation time, if known.
    pub fn created(&self) -> Option<Timestamp> {
        self.created
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Ord for Age {
    fn cmp(&self, other: &Self) -> Ordering {
        let by_time = match (self.created, other.created) {
            (Some(a), Some(b)) => a.cmp(&b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        by_time.then_with(|| self.name.cmp(&other.name))
    }
}

impl PartialOrd for Age {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Age {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.created {
            Some(t) => write!(f, "{} (created at unix time {})", self.name, t.secs),
            None => write!(f, "{} (creation time unknown)", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_kubernetes_timestamps() {
        let t = Timestamp::parse_rfc3339("1970-01-02T00:00:01Z").unwrap();
        assert_eq!(t.unix_seconds(), 86_401);
        let t = Timestamp::parse_rfc3339("2024-02-29T12:00:00Z").unwrap();
        assert_eq!(t.unix_seconds(), 1_709_208_000);
    }

    #[test]
    fn offsets_and_fractions_order_correctly() {
        let a = Timestamp::parse_rfc3339("2024-05-01T14:00:00+02:00").unwrap();
        let b = Timestamp::parse_rfc3339("2024-05-01T12:00:00.5Z").unwrap();
        let c = Timestamp::parse_rfc3339("2024-05-01T12:00:00.25Z").unwrap();
        assert!(a < c && c < b, "{a:?} {b:?} {c:?}");
    }

    #[test]
    fn rejects_malformed_timestamps() {
        for bad in [
            "",
            "yesterday",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00+2:00",
            "2024-05-01T12:00:00Zjunk",
            "２０２４-05-01T12:00:00Z",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn older_wins_then_name_then_unknown_last() {
        let old = Age::new("2024-01-01T00:00:00Z", "zeta");
        let new_a = Age::new("2024-06-01T00:00:00Z", "alpha");
        let new_b = Age::new("2024-06-01T00:00:00Z", "beta");
        let unknown = Age::new("", "aaa");
        let mut v = vec![unknown.clone(), new_b.clone(), old.clone(), new_a.clone()];
        v.sort();
        assert_eq!(v, vec![old, new_a, new_b, unknown]);
    }
}
