//! Pod annotations in flight.
//!
//! Once a step's blocks are written, annotating its pods no longer needs the engine: the patches
//! run in a background task while the engine decides and writes the next step's blocks, so a
//! burst of bound pods is not split into steps that each wait for the last one's annotations.
//! A pod whose annotation is in flight is not decided again until its result is back.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use api::Assignment;
use kube::Client;
use tokio::sync::Semaphore;
use tokio::task::{Id, JoinError, JoinSet};

use crate::pods::{self, PodInfo, PodKey};

/// Pod patches in flight at once, over all steps.
pub(crate) const PATCH_CONCURRENCY: usize = 32;

/// One pod to annotate: its blocks are written.
pub(crate) struct Job {
    pub(crate) pod: Arc<PodInfo>,
    pub(crate) assignment: Assignment,
    /// A fresh allocation (not a pod healed after a crash): its latency is observed.
    pub(crate) new: bool,
}

/// Pods whose annotations wait for their blocks to be written: each one starts as soon as the
/// last of its blocks is, not when a whole step's writes are done. Kept from step to step, since
/// a block may be held back ([`crate::coalesce`]) while its pods wait.
#[derive(Default)]
pub(crate) struct Pending {
    /// Pods pushed since the last [`Pending::begin`], with their blocks.
    fresh: Vec<(Job, Vec<String>)>,
    /// Each waiting job with the number of its blocks not written yet.
    jobs: HashMap<u64, (Job, usize)>,
    waiting_on: HashMap<String, Vec<u64>>,
    pods: HashSet<PodKey>,
    next_id: u64,
}

impl Pending {
    /// Adds a pod that may be annotated once `blocks` are written.
    pub(crate) fn push(&mut self, job: Job, blocks: Vec<String>) {
        self.pods.insert(job.pod.key.clone());
        self.fresh.push((job, blocks));
    }

    /// Whether the pod waits here.
    pub(crate) fn holds(&self, key: &PodKey) -> bool {
        self.pods.contains(key)
    }

    /// Writes are about to start: the pods pushed since the last call wait for those of their
    /// blocks that `unwritten` names (being written now, or held back). Returns the pods that
    /// wait for none.
    pub(crate) fn begin(&mut self, unwritten: impl Fn(&str) -> bool) -> Vec<Job> {
        let mut ready = Vec::new();
        for (job, blocks) in std::mem::take(&mut self.fresh) {
            let id = self.next_id;
            let mut remaining = 0;
            for block in blocks.into_iter().filter(|b| unwritten(b)) {
                self.waiting_on.entry(block).or_default().push(id);
                remaining += 1;
            }
            if remaining == 0 {
                self.pods.remove(&job.pod.key);
                ready.push(job);
            } else {
                self.next_id += 1;
                self.jobs.insert(id, (job, remaining));
            }
        }
        ready
    }

    /// A block was written: the jobs that waited on it last.
    pub(crate) fn written(&mut self, block: &str) -> Vec<Job> {
        let mut ready = Vec::new();
        for id in self.waiting_on.remove(block).unwrap_or_default() {
            let Some((_, count)) = self.jobs.get_mut(&id) else {
                continue;
            };
            *count -= 1;
            if *count == 0 {
                ready.extend(self.take(id));
            }
        }
        ready
    }

    /// A block was not written: the jobs that waited on it can not go ahead.
    pub(crate) fn not_written(&mut self, block: &str) -> Vec<Job> {
        self.waiting_on
            .remove(block)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|id| self.take(id))
            .collect()
    }

    fn take(&mut self, id: u64) -> Option<Job> {
        let (job, _) = self.jobs.remove(&id)?;
        self.pods.remove(&job.pod.key);
        Some(job)
    }
}

/// An answered patch.
pub(crate) struct Patched {
    pub(crate) job: Job,
    pub(crate) result: Result<(), kube::Error>,
    /// The engine wanted to look at the pod again while the patch was in flight.
    pub(crate) again: bool,
}

/// What a patch task returns.
type PatchResult = (Job, Result<(), kube::Error>);

/// How a patch ended.
pub(crate) enum Outcome {
    /// The patch was answered.
    Patched(Box<Patched>),
    /// The task patching this pod died; the engine must look at the pod again.
    Lost(PodKey),
}

/// The patches in flight, one task each, at most [`PATCH_CONCURRENCY`] talking to the API
/// server. Dropping it (the leader stepped down) aborts them: only the leader writes, and an
/// aborted patch is redone by the next leader from the block this one already wrote.
pub(crate) struct Annotations {
    client: Client,
    permits: Arc<Semaphore>,
    tasks: JoinSet<PatchResult>,
    in_flight: HashSet<PodKey>,
    tasks_of: HashMap<Id, PodKey>,
    again: HashSet<PodKey>,
}

impl Annotations {
    pub(crate) fn new(client: Client) -> Annotations {
        Annotations {
            client,
            permits: Arc::new(Semaphore::new(PATCH_CONCURRENCY)),
            tasks: JoinSet::new(),
            in_flight: HashSet::new(),
            tasks_of: HashMap::new(),
            again: HashSet::new(),
        }
    }

    /// Whether the pod's annotation is in flight; if so, the engine will be told to look at it
    /// again once the patch is done.
    pub(crate) fn busy(&mut self, key: &PodKey) -> bool {
        let busy = self.in_flight.contains(key);
        if busy {
            self.again.insert(key.clone());
        }
        busy
    }

    /// How many pods' patches are started and not yet taken in by [`Annotations::next`].
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Starts patching these pods.
    pub(crate) fn start(&mut self, jobs: Vec<Job>) {
        for job in jobs {
            let client = self.client.clone();
            let permits = self.permits.clone();
            let key = job.pod.key.clone();
            let handle = self.tasks.spawn(async move {
                // The semaphore is never closed.
                let _permit = permits.acquire_owned().await;
                let pod = &job.pod;
                // Boxed: a task waiting for its turn stays small; the request's state is only
                // allocated once it runs.
                let result = Box::pin(pods::annotate(
                    &client,
                    &pod.key.namespace,
                    &pod.key.name,
                    &pod.uid,
                    &job.assignment,
                ))
                .await;
                (job, result)
            });
            self.tasks_of.insert(handle.id(), key.clone());
            self.in_flight.insert(key);
        }
    }

    /// The next finished patch; waits for one, and forever while none is in flight.
    pub(crate) async fn next(&mut self) -> Outcome {
        loop {
            let Some(joined) = self.tasks.join_next_with_id().await else {
                return std::future::pending().await;
            };
            if let Some(outcome) = self.take_in(joined) {
                return outcome;
            }
        }
    }

    /// A finished patch, if one is ready now.
    pub(crate) fn try_next(&mut self) -> Option<Outcome> {
        while let Some(joined) = self.tasks.try_join_next_with_id() {
            if let Some(outcome) = self.take_in(joined) {
                return Some(outcome);
            }
        }
        None
    }

    fn take_in(&mut self, joined: Result<(Id, PatchResult), JoinError>) -> Option<Outcome> {
        let id = match &joined {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        let key = self.tasks_of.remove(&id)?;
        self.in_flight.remove(&key);
        let again = self.again.remove(&key);
        Some(match joined {
            Ok((_, (job, result))) => Outcome::Patched(Box::new(Patched { job, result, again })),
            Err(e) => {
                tracing::error!(pod = %key, error = %e, "a pod annotation task died");
                Outcome::Lost(key)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::pods::WatchedPod;

    fn job(name: &str) -> Job {
        let pod: WatchedPod = serde_json::from_value(
            serde_json::json!({"metadata": {"name": name, "namespace": "ns"}}),
        )
        .unwrap();
        Job {
            pod: Arc::new(PodInfo::of(&pod)),
            assignment: Assignment::default(),
            new: true,
        }
    }

    fn names(jobs: &[Job]) -> Vec<String> {
        let mut names: Vec<String> = jobs.iter().map(|j| j.pod.key.name.to_string()).collect();
        names.sort();
        names
    }

    fn blocks(names: &[&str]) -> Vec<String> {
        names.iter().map(|b| (*b).to_owned()).collect()
    }

    fn among<'a>(names: &'a [&str]) -> impl Fn(&str) -> bool + 'a {
        move |block| names.contains(&block)
    }

    #[test]
    fn a_pod_goes_ahead_once_the_last_of_its_blocks_is_written() {
        let mut pending = Pending::default();
        pending.push(job("dual"), blocks(&["v4-a", "v6-a"]));
        pending.push(job("single"), blocks(&["v4-a"]));
        pending.push(job("other"), blocks(&["v4-b"]));
        assert!(pending.begin(among(&["v4-a", "v6-a", "v4-b"])).is_empty());
        assert_eq!(names(&pending.written("v4-a")), ["single"]);
        assert_eq!(names(&pending.written("v6-a")), ["dual"]);
        assert_eq!(names(&pending.written("v4-b")), ["other"]);
        assert!(pending.written("v4-b").is_empty(), "a job goes ahead once");
    }

    #[test]
    fn a_pod_whose_blocks_need_no_write_goes_ahead_at_once() {
        // After a crash between block and pod write, the block already records the address.
        let mut pending = Pending::default();
        pending.push(job("healed"), blocks(&["v4-a"]));
        pending.push(job("new"), blocks(&["v4-b"]));
        assert_eq!(names(&pending.begin(among(&["v4-b"]))), ["healed"]);
        assert_eq!(names(&pending.written("v4-b")), ["new"]);
    }

    #[test]
    fn a_pod_with_a_block_not_written_never_goes_ahead() {
        let mut pending = Pending::default();
        pending.push(job("dual"), blocks(&["v4-a", "v6-a"]));
        pending.push(job("fine"), blocks(&["v4-b"]));
        assert!(pending.begin(among(&["v4-a", "v6-a", "v4-b"])).is_empty());
        assert!(pending.written("v4-a").is_empty());
        assert_eq!(names(&pending.not_written("v6-a")), ["dual"]);
        assert_eq!(names(&pending.written("v4-b")), ["fine"]);
        assert!(pending.written("v6-a").is_empty());
    }

    #[test]
    fn a_pod_waits_across_rounds_for_a_block_held_back() {
        let mut pending = Pending::default();
        pending.push(job("early"), blocks(&["v4-a"]));
        assert!(pending.begin(among(&["v4-a"])).is_empty());
        assert!(pending.holds(&job("early").pod.key));
        // The next round pushes another pod of the same block; neither is counted twice.
        pending.push(job("late"), blocks(&["v4-a"]));
        assert!(pending.begin(among(&["v4-a"])).is_empty());
        assert_eq!(names(&pending.written("v4-a")), ["early", "late"]);
        assert!(!pending.holds(&job("early").pod.key));
        assert!(!pending.holds(&job("late").pod.key));
    }
}
