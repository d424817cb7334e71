//! When a changed block is written: at once while the controller is idle, else once it is idle
//! again or the block has waited [`MAX_HOLD`], so that every allocation a block gets during a
//! burst goes out in one or two writes.
//!
//! A block write is the API server's dearest request (a custom resource is decoded, checked and
//! encoded whole, and sent to every watcher). During a burst of bound pods, rounds run back to
//! back and each adds a pod or two to every node's block: written at once, that is one block
//! write per pod. The arrival rate per block says nothing useful (at 5,000 nodes a block gains a
//! pod every few seconds even in a burst), so the signal is the controller's own load: a round
//! is part of a burst when blocks changed in the rounds of the last [`QUIET`], or when the pod
//! annotations are backed up (every patch connection busy), since a pod whose block is written
//! now would only queue behind them. Such a round holds its blocks back. A pod bound in a quiet
//! cluster is written, and annotated, without waiting; in a burst, a pod waits at most
//! [`MAX_HOLD`] for its block, and every block is written once more when the burst is over.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

/// How long after the last change of any block the controller counts as idle.
pub(crate) const QUIET: Duration = Duration::from_millis(150);
/// The longest a changed block is held back while the controller stays busy.
pub(crate) const MAX_HOLD: Duration = Duration::from_secs(2);

/// The blocks held back, and when blocks last changed.
#[derive(Debug)]
pub(crate) struct Coalescer {
    quiet: Duration,
    max_hold: Duration,
    /// Each held block, with when it was first held back.
    held: HashMap<String, Instant>,
    /// The allocator's change count at the last round (see `Allocator::changes`).
    changes: u64,
    /// The start of the last round that found blocks changed.
    last_active: Option<Instant>,
    /// The start of the last round.
    last_round: Option<Instant>,
}

impl Default for Coalescer {
    fn default() -> Self {
        Coalescer::new(QUIET, MAX_HOLD)
    }
}

impl Coalescer {
    pub(crate) fn new(quiet: Duration, max_hold: Duration) -> Coalescer {
        Coalescer {
            quiet,
            max_hold,
            held: HashMap::new(),
            changes: 0,
            last_active: None,
            last_round: None,
        }
    }

    /// Starts a round of writes at `now`, when the allocator's change count is `changes` and
    /// the pod annotations are `backed_up` or not; call [`Round::due`] for every changed block,
    /// then [`Round::end`]. The round holds blocks back when the annotations are backed up or
    /// an earlier round of the last [`QUIET`] found changes; its own changes count for the
    /// rounds after it.
    pub(crate) fn start_round(&mut self, now: Instant, changes: u64, backed_up: bool) -> Round<'_> {
        let busy = backed_up
            || self
                .last_active
                .is_some_and(|at| now.saturating_duration_since(at) < self.quiet);
        self.last_round = Some(now);
        if changes != self.changes {
            self.changes = changes;
            self.last_active = Some(now);
        }
        Round {
            coalescer: self,
            now,
            busy,
            held: HashMap::new(),
            written: HashSet::new(),
        }
    }

    /// Whether a block is held back: changed and not written yet.
    pub(crate) fn holds(&self, name: &str) -> bool {
        self.held.contains_key(name)
    }

    /// When a round should look at the held blocks again: [`QUIET`] after the last round (the
    /// controller may be idle by then), or when the block held longest has waited
    /// [`MAX_HOLD`], whichever is first.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        let longest = self.held.values().min()?;
        let held_out = *longest + self.max_hold;
        Some(match self.last_round {
            Some(at) => held_out.min(at + self.quiet),
            None => held_out,
        })
    }
}

/// One round of writes.
pub(crate) struct Round<'a> {
    coalescer: &'a mut Coalescer,
    now: Instant,
    busy: bool,
    held: HashMap<String, Instant>,
    written: HashSet<String>,
}

impl Round<'_> {
    /// Whether to write this changed block now. Blocks to create are held like the others: pods
    /// wait for them either way, and a block created in a burst gains more before it is written.
    pub(crate) fn due(&mut self, name: &str) -> bool {
        let since = self.coalescer.held.get(name).copied().unwrap_or(self.now);
        if !self.busy || self.now.saturating_duration_since(since) >= self.coalescer.max_hold {
            self.written.insert(name.to_owned());
            return true;
        }
        self.held.insert(name.to_owned(), since);
        false
    }

    /// Ends the round. Returns the blocks held back before it that it no longer saw changed
    /// (re-read, or forgotten, meanwhile): the pods waiting for them must be decided again.
    pub(crate) fn end(self) -> Vec<String> {
        let Round {
            coalescer,
            held,
            written,
            ..
        } = self;
        let before = std::mem::replace(&mut coalescer.held, held);
        before
            .into_keys()
            .filter(|name| !coalescer.held.contains_key(name) && !written.contains(name))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A round at `now` after `changes` block changes in all, offering `blocks` as changed.
    fn round(
        c: &mut Coalescer,
        now: Instant,
        changes: u64,
        blocks: &[&str],
    ) -> (Vec<String>, Vec<String>) {
        let mut r = c.start_round(now, changes, false);
        let written = blocks
            .iter()
            .filter(|name| r.due(name))
            .map(|name| name.to_string())
            .collect();
        (written, r.end())
    }

    #[test]
    fn an_idle_controller_writes_at_once() {
        let mut c = Coalescer::new(100 * MS, 2_000 * MS);
        let t0 = Instant::now();
        let (written, _) = round(&mut c, t0, 1, &["a"]);
        assert_eq!(written, ["a"]);
        assert_eq!(c.next_due(), None);
        // Quiet for longer than QUIET: at once again.
        let (written, _) = round(&mut c, t0 + 150 * MS, 2, &["a", "b"]);
        assert_eq!(written, ["a", "b"]);
    }

    #[test]
    fn a_busy_controller_holds_blocks_until_it_is_quiet() {
        let mut c = Coalescer::new(100 * MS, 2_000 * MS);
        let t0 = Instant::now();
        round(&mut c, t0, 1, &["a"]);
        // Changes keep coming: held.
        let (written, _) = round(&mut c, t0 + 20 * MS, 2, &["a", "b"]);
        assert!(written.is_empty());
        assert!(c.holds("a") && c.holds("b"));
        assert_eq!(c.next_due(), Some(t0 + 120 * MS));
        let (written, _) = round(&mut c, t0 + 60 * MS, 3, &["a", "b"]);
        assert!(written.is_empty());
        assert_eq!(c.next_due(), Some(t0 + 160 * MS));
        // A round without changes before QUIET has passed since the last one with changes.
        let (written, _) = round(&mut c, t0 + 100 * MS, 3, &["a", "b"]);
        assert!(written.is_empty());
        assert_eq!(c.next_due(), Some(t0 + 200 * MS));
        // Nothing changed for QUIET: everything held goes out.
        let (written, dropped) = round(&mut c, t0 + 200 * MS, 3, &["a", "b"]);
        assert_eq!(written, ["a", "b"]);
        assert!(dropped.is_empty());
        assert_eq!(c.next_due(), None);
    }

    #[test]
    fn a_block_held_for_max_hold_is_written_though_the_controller_stays_busy() {
        let mut c = Coalescer::new(100 * MS, 1_000 * MS);
        let t0 = Instant::now();
        round(&mut c, t0, 1, &[]);
        let mut changes = 1;
        let mut writes = Vec::new();
        for step in 1..=45 {
            changes += 1;
            let at = t0 + step * 50 * MS;
            let (written, _) = round(&mut c, at, changes, &["a"]);
            if !written.is_empty() {
                writes.push(step * 50);
            }
        }
        // Held from 50 ms, so written at 1,050 ms; held again from 1,100 ms, written at 2,100.
        assert_eq!(writes, [1_050, 2_100]);
    }

    #[test]
    fn backed_up_annotations_hold_blocks_though_nothing_changed() {
        let mut c = Coalescer::new(100 * MS, 2_000 * MS);
        let t0 = Instant::now();
        let mut r = c.start_round(t0, 1, true);
        assert!(!r.due("a"));
        r.end();
        // Looked at again a quiet period later; still backed up: still held.
        assert_eq!(c.next_due(), Some(t0 + 100 * MS));
        let mut r = c.start_round(t0 + 100 * MS, 1, true);
        assert!(!r.due("a"));
        r.end();
        let mut r = c.start_round(t0 + 200 * MS, 1, false);
        assert!(r.due("a"));
        r.end();
        assert_eq!(c.next_due(), None);
    }

    #[test]
    fn a_held_block_that_is_no_longer_changed_is_reported() {
        let mut c = Coalescer::new(100 * MS, 2_000 * MS);
        let t0 = Instant::now();
        round(&mut c, t0, 1, &[]);
        round(&mut c, t0 + MS, 2, &["a", "b"]);
        // `b` was re-read meanwhile: the model no longer has a change for it.
        let (_, dropped) = round(&mut c, t0 + 2 * MS, 3, &["a"]);
        assert_eq!(dropped, ["b"]);
        assert!(c.holds("a") && !c.holds("b"));
    }
}
