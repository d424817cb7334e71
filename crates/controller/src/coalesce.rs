//! When a changed block is written: at once if it has not been written for a while, else once
//! [`LINGER`] has passed since its last write, so that the allocations a busy block gets
//! meanwhile go out in one write.
//!
//! A block write is the API server's dearest request (a custom resource is decoded, converted
//! and encoded whole, and sent to every watcher), and during a burst of bound pods most steps
//! add one or two pods to each node's block. Holding a busy block back a moment turns one write
//! per pod into one write per block per [`LINGER`], while a pod arriving on a quiet node is
//! written, and annotated, without waiting.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use ipam::allocator::Change;
use tokio::time::Instant;

/// The shortest time between two writes of one block while it keeps changing.
pub(crate) const LINGER: Duration = Duration::from_millis(500);

/// The last write of each recently written block, and the blocks held back.
#[derive(Debug)]
pub(crate) struct Coalescer {
    linger: Duration,
    last_write: HashMap<String, Instant>,
    held: HashSet<String>,
}

impl Default for Coalescer {
    fn default() -> Self {
        Coalescer::new(LINGER)
    }
}

impl Coalescer {
    pub(crate) fn new(linger: Duration) -> Coalescer {
        Coalescer {
            linger,
            last_write: HashMap::new(),
            held: HashSet::new(),
        }
    }

    /// Starts a round of writes at `now`; call [`Coalescer::due`] for every changed block,
    /// then [`Coalescer::end_round`].
    pub(crate) fn start_round(&mut self, now: Instant) -> Round<'_> {
        let linger = self.linger;
        self.last_write
            .retain(|_, at| now.saturating_duration_since(*at) < linger);
        Round {
            coalescer: self,
            now,
            held: HashSet::new(),
            written: HashSet::new(),
        }
    }

    /// Whether a block is held back, changed and not written yet.
    pub(crate) fn holds(&self, name: &str) -> bool {
        self.held.contains(name)
    }

    /// When the first held block is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.held
            .iter()
            .filter_map(|name| self.last_write.get(name))
            .min()
            .map(|at| *at + self.linger)
    }
}

/// One round of writes.
pub(crate) struct Round<'a> {
    coalescer: &'a mut Coalescer,
    now: Instant,
    held: HashSet<String>,
    written: HashSet<String>,
}

impl Round<'_> {
    /// Whether to write this changed block now. A block to create is always written: pods wait
    /// for it, and there is nothing to merge it with.
    pub(crate) fn due(&mut self, name: &str, change: Change) -> bool {
        let c = &mut *self.coalescer;
        let quiet = c
            .last_write
            .get(name)
            .is_none_or(|at| self.now.saturating_duration_since(*at) >= c.linger);
        if change == Change::Create || quiet {
            c.last_write.insert(name.to_owned(), self.now);
            self.written.insert(name.to_owned());
            return true;
        }
        self.held.insert(name.to_owned());
        false
    }

    /// Ends the round. Returns the blocks held back before it that it no longer saw changed
    /// (re-read, or forgotten, meanwhile): the pods waiting for them must be decided again.
    pub(crate) fn end_round(self) -> Vec<String> {
        let Round {
            coalescer,
            held,
            written,
            ..
        } = self;
        let before = std::mem::replace(&mut coalescer.held, held);
        before
            .into_iter()
            .filter(|name| !coalescer.held.contains(name) && !written.contains(name))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn round(
        c: &mut Coalescer,
        now: Instant,
        blocks: &[(&str, Change)],
    ) -> (Vec<String>, Vec<String>) {
        let mut r = c.start_round(now);
        let written = blocks
            .iter()
            .filter(|(name, change)| r.due(name, *change))
            .map(|(name, _)| name.to_string())
            .collect();
        (written, r.end_round())
    }

    #[test]
    fn a_quiet_block_is_written_at_once_and_a_busy_one_after_the_linger() {
        let mut c = Coalescer::new(500 * MS);
        let t0 = Instant::now();
        let (written, _) = round(&mut c, t0, &[("a", Change::Update)]);
        assert_eq!(written, ["a"]);
        // Changed again 100 ms later: held back until 500 ms after its write.
        let (written, dropped) = round(&mut c, t0 + 100 * MS, &[("a", Change::Update)]);
        assert!(written.is_empty() && dropped.is_empty());
        assert!(c.holds("a"));
        assert_eq!(c.next_due(), Some(t0 + 500 * MS));
        let (written, _) = round(&mut c, t0 + 300 * MS, &[("a", Change::Update)]);
        assert!(written.is_empty());
        let (written, dropped) = round(&mut c, t0 + 500 * MS, &[("a", Change::Update)]);
        assert_eq!(written, ["a"]);
        assert!(dropped.is_empty() && !c.holds("a"));
        assert_eq!(c.next_due(), None);
        // Quiet again after the linger: at once.
        let (written, _) = round(&mut c, t0 + 1_100 * MS, &[("a", Change::Update)]);
        assert_eq!(written, ["a"]);
    }

    #[test]
    fn a_block_to_create_is_never_held() {
        let mut c = Coalescer::new(500 * MS);
        let t0 = Instant::now();
        round(&mut c, t0, &[("a", Change::Update)]);
        let (written, _) = round(&mut c, t0 + MS, &[("a", Change::Create)]);
        assert_eq!(written, ["a"]);
    }

    #[test]
    fn a_held_block_that_is_no_longer_changed_is_reported() {
        let mut c = Coalescer::new(500 * MS);
        let t0 = Instant::now();
        round(&mut c, t0, &[("a", Change::Update), ("b", Change::Update)]);
        round(
            &mut c,
            t0 + MS,
            &[("a", Change::Update), ("b", Change::Update)],
        );
        // `b` was re-read meanwhile: the model no longer has a change for it.
        let (_, dropped) = round(&mut c, t0 + 2 * MS, &[("a", Change::Update)]);
        assert_eq!(dropped, ["b"]);
        assert!(c.holds("a") && !c.holds("b"));
    }
}
