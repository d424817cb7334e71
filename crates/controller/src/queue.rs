//! Which pods the next step looks at, besides those whose watch events arrived: pods waiting to
//! retry after a failure, and the pass over every pod when the leader starts or a watch relists.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use crate::pods::PodKey;

/// First retry of a pod that could not get an address; doubles up to [`MAX_BACKOFF`]. A change
/// of pools, namespaces or nodes retries at once.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// A pod that could not get an address, waiting for its cause to change or its backoff.
struct Waiting {
    message: String,
    attempts: u32,
    due: Instant,
}

/// See the module docs.
#[derive(Default)]
pub(crate) struct Queue {
    /// The pods a pass over every pod has not looked at yet.
    pass: VecDeque<PodKey>,
    waiting: HashMap<PodKey, Waiting>,
    /// Addresses were released: pods waiting for room get another chance at the next step.
    freed: bool,
}

impl Queue {
    /// Every pod is to be looked at again. A pass already under way keeps the pods it has not
    /// looked at yet first, so that relists in a row cannot keep it from reaching the last ones.
    pub(crate) fn start_pass(&mut self, everyone: Vec<PodKey>) {
        let queued: HashSet<&PodKey> = self.pass.iter().collect();
        let again: Vec<PodKey> = everyone
            .into_iter()
            .filter(|k| !queued.contains(k))
            .collect();
        self.pass.extend(again);
    }

    /// True while a pass has pods left.
    pub(crate) fn passing(&self) -> bool {
        !self.pass.is_empty()
    }

    /// The next pods of the pass, at most `max`.
    pub(crate) fn next_slice(&mut self, max: usize) -> impl Iterator<Item = PodKey> + '_ {
        let slice = self.pass.len().min(max);
        self.pass.drain(..slice)
    }

    /// Pods whose retry is due at `now`, or every waiting pod with `all` (their cause may have
    /// changed) or after addresses were freed.
    pub(crate) fn due(&mut self, now: Instant, all: bool) -> Vec<PodKey> {
        let all = all || std::mem::take(&mut self.freed);
        self.waiting
            .iter()
            .filter(|(_, w)| all || w.due <= now)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The earliest retry, or now when addresses were freed.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        if self.freed {
            return Some(Instant::now());
        }
        self.waiting.values().map(|w| w.due).min()
    }

    /// Addresses were released.
    pub(crate) fn freed(&mut self) {
        self.freed = true;
    }

    /// The pod needs nothing more (it got its address, finished or is gone).
    pub(crate) fn done(&mut self, key: &PodKey) {
        self.waiting.remove(key);
    }

    /// The pod failed with `message`: its next try backs off (doubling each time). True when
    /// the message is new for it, so that the failure is reported once, not at every retry.
    pub(crate) fn failed(&mut self, key: &PodKey, message: &str) -> bool {
        let previous = self.waiting.get(key);
        let changed = previous.is_none_or(|w| w.message != message);
        let attempts = previous.map_or(0, |w| w.attempts + 1);
        let backoff = FIRST_BACKOFF
            .saturating_mul(1u32 << attempts.min(5))
            .min(MAX_BACKOFF);
        self.waiting.insert(
            key.clone(),
            Waiting {
                message: message.to_owned(),
                attempts,
                due: Instant::now() + backoff,
            },
        );
        changed
    }

    /// Look at the pod again after `after`, without counting a failure.
    pub(crate) fn retry(&mut self, key: &PodKey, message: String, after: Duration) {
        let attempts = self.waiting.get(key).map_or(0, |w| w.attempts);
        self.waiting.insert(
            key.clone(),
            Waiting {
                message,
                attempts,
                due: Instant::now() + after,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn key(name: &str) -> PodKey {
        PodKey {
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_is_reported_once_per_message_and_backs_off_doubling() {
        let mut q = Queue::default();
        let start = Instant::now();
        assert!(q.failed(&key("a"), "no pool"));
        assert_eq!(q.next_due(), Some(start + FIRST_BACKOFF));
        assert!(!q.failed(&key("a"), "no pool"));
        assert_eq!(q.next_due(), Some(start + FIRST_BACKOFF * 2));
        assert!(q.failed(&key("a"), "pool full"));
        assert!(q.due(start, false).is_empty());
        assert_eq!(q.due(start, true), [key("a")]);
        q.done(&key("a"));
        assert_eq!(q.next_due(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn freed_addresses_wake_every_waiting_pod_once() {
        let mut q = Queue::default();
        q.failed(&key("a"), "full");
        q.freed();
        assert_eq!(q.next_due(), Some(Instant::now()));
        assert_eq!(q.due(Instant::now(), false), [key("a")]);
        assert!(q.due(Instant::now(), false).is_empty());
    }

    #[test]
    fn a_second_pass_keeps_the_first_ones_pods_first_and_once() {
        let mut q = Queue::default();
        q.start_pass(vec![key("a"), key("b"), key("c")]);
        assert_eq!(q.next_slice(1).collect::<Vec<_>>(), [key("a")]);
        q.start_pass(vec![key("a"), key("b"), key("d")]);
        assert_eq!(
            q.next_slice(10).collect::<Vec<_>>(),
            [key("b"), key("c"), key("a"), key("d")]
        );
        assert!(!q.passing());
    }
}
