//! The leak rule: something is acted on as gone only after it was seen missing in two
//! observations at least a grace period apart.
//!
//! A watch cache may lag behind the API server, and a pod or node can be missing from one list
//! and back in the next (a relist, a re-created object). So the controller's sweep records when
//! it first saw each allocation's pod (or each block's node) missing, and only what is still
//! missing a grace period later is due; the caller then confirms with a direct read before it
//! releases anything. The clock is the caller's: every call takes `now`.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Keys seen missing, with when each was first seen so.
#[derive(Debug, Clone)]
pub struct Absence<K> {
    grace: Duration,
    since: HashMap<K, Instant>,
}

impl<K: Hash + Eq + Clone> Absence<K> {
    /// No key missing yet; `grace` is the least time between the two observations.
    pub fn new(grace: Duration) -> Absence<K> {
        Absence {
            grace,
            since: HashMap::new(),
        }
    }

    /// One observation at `now`: `missing` are the keys missing now. Keys not in it are
    /// forgotten (they came back). Returns the keys first seen missing at least the grace period
    /// ago, which are forgotten too: if the caller finds one not gone after all, the next
    /// observation starts its grace period again.
    pub fn observe(&mut self, now: Instant, missing: impl IntoIterator<Item = K>) -> Vec<K> {
        let mut still = HashMap::new();
        let mut due = Vec::new();
        let mut counted = HashSet::new();
        for key in missing {
            if !counted.insert(key.clone()) {
                continue;
            }
            let first = self.since.get(&key).copied().unwrap_or(now);
            if now.saturating_duration_since(first) >= self.grace {
                due.push(key);
            } else {
                still.insert(key, first);
            }
        }
        self.since = still;
        due
    }

    /// How many keys wait for their grace period to pass.
    pub fn len(&self) -> usize {
        self.since.len()
    }

    /// True when no key waits.
    pub fn is_empty(&self) -> bool {
        self.since.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(60);

    #[test]
    fn a_key_is_due_only_when_missing_twice_a_grace_period_apart() {
        let t0 = Instant::now();
        let mut a = Absence::new(GRACE);
        assert!(a.observe(t0, ["p1", "p2"]).is_empty());
        assert_eq!(a.len(), 2);
        assert!(a.observe(t0 + GRACE / 2, ["p1", "p2"]).is_empty());
        assert_eq!(a.observe(t0 + GRACE, ["p1", "p2", "p3"]), ["p1", "p2"]);
        // Due keys are forgotten; one still missing starts over.
        assert_eq!(a.len(), 1);
        assert!(a.observe(t0 + GRACE * 2, ["p1"]).is_empty());
        assert_eq!(a.observe(t0 + GRACE * 3, ["p1"]), ["p1"]);
    }

    #[test]
    fn a_key_that_comes_back_starts_over() {
        let t0 = Instant::now();
        let mut a = Absence::new(GRACE);
        a.observe(t0, ["p1"]);
        a.observe(t0 + GRACE / 2, Vec::<&str>::new());
        assert!(a.is_empty());
        assert!(a.observe(t0 + GRACE, ["p1"]).is_empty());
        assert_eq!(a.observe(t0 + GRACE * 2, ["p1"]), ["p1"]);
    }

    #[test]
    fn a_zero_grace_makes_every_missing_key_due_at_once_and_repeats_count_once() {
        let mut a = Absence::new(Duration::ZERO);
        assert_eq!(a.observe(Instant::now(), ["n1", "n1", "n2"]), ["n1", "n2"]);
        assert!(a.is_empty());
    }

    #[test]
    fn a_clock_going_backwards_never_makes_a_key_due() {
        let t0 = Instant::now() + GRACE;
        let mut a = Absence::new(GRACE);
        a.observe(t0, ["p1"]);
        assert!(a.observe(t0 - GRACE, ["p1"]).is_empty());
    }
}
