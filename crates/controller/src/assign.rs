//! Deciding and recording pod addresses: choose pools with the core, allocate in the model,
//! write the blocks, then annotate the pods whose blocks were written.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use api::{Assignment, FamilyAssignment};
use ipam::cidr::Family;
use kube::ResourceExt;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use tokio::time::Instant;

use crate::annotations::{Job, Outcome, Patched, Pending};
use crate::engine::{Engine, Waiting};
use crate::model::Request;
use crate::pods::{self, PodInfo, PodKey};
use crate::world::labels_of;

/// First retry of a pod that could not get an address; doubles up to [`MAX_BACKOFF`]. A change
/// of pools, namespaces or nodes retries at once.
const FIRST_BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What one pod needs.
enum Decision {
    /// Its annotations already match what the blocks record.
    Done,
    /// Its addresses are allocated (in memory); annotate it once these blocks are written.
    Annotate {
        assignment: Assignment,
        blocks: Vec<String>,
        new: bool,
    },
    /// It gets no address now.
    Fail {
        reason: &'static str,
        message: String,
    },
}

impl Engine {
    /// Decides and records addresses for these pods.
    pub(crate) async fn assign(&mut self, keys: HashSet<PodKey>) {
        let mut pending = Pending::default();
        let mut failures = Vec::new();
        let mut finished = Vec::new();
        for key in keys {
            if self.annotations.busy(&key) {
                // Looked at again once its patch is answered.
                continue;
            }
            let Some(pod) = self.stores.pods.get(&key) else {
                // Deleted: the PodGone change (or the sweep) releases its addresses.
                self.waiting.remove(&key);
                continue;
            };
            if pod.is_terminal() {
                self.waiting.remove(&key);
                finished.push(pod);
                continue;
            }
            if !pod.wants_address() {
                self.waiting.remove(&key);
                continue;
            }
            match self.decide(&pod) {
                Decision::Done => {
                    self.waiting.remove(&key);
                }
                Decision::Annotate {
                    assignment,
                    blocks,
                    new,
                } => pending.push(
                    Job {
                        pod,
                        assignment,
                        new,
                    },
                    blocks,
                ),
                Decision::Fail { reason, message } => failures.push((pod, reason, message)),
            }
        }

        self.release_finished(finished).await;
        for job in self.flush_blocks(pending).await {
            // Its block changed under us and was re-read; decide again right away.
            self.wait(
                &job.pod,
                "block changed while assigning".into(),
                Duration::ZERO,
            );
        }
        for (pod, reason, message) in failures {
            self.fail(&pod, reason, message).await;
        }
    }

    fn decide(&mut self, pod: &PodInfo) -> Decision {
        let Some(node) = pod.node.as_deref() else {
            return Decision::Done;
        };
        // The usual case on a relist, and for the echo of our own patch: the pod holds an
        // address of every family already; only its annotations may need writing.
        if let Some(held) = self.held(&pod.uid) {
            return annotate_if_needed(pod, held, false);
        }
        let uid = pod.uid.to_string();
        let namespace = pod.key.namespace.to_string();
        let name = pod.key.name.to_string();
        let node_labels = match self.stores.nodes.get(&ObjectRef::new(node)) {
            Some(n) => labels_of(Some(&n)),
            None => {
                return Decision::Fail {
                    reason: "NodeUnknown",
                    message: format!(
                        "pod {namespace}/{name} gets no address: node {node} is not known to the controller yet"
                    ),
                };
            }
        };
        // Annotations count once, so a namespace the cache has not seen yet must not be read as
        // one without annotations: the pod would be pinned to the wrong pool for good.
        let Some(ns) = self.stores.namespaces.get(&ObjectRef::new(&namespace)) else {
            return Decision::Fail {
                reason: "NamespaceUnknown",
                message: format!(
                    "pod {namespace}/{name} gets no address: namespace {namespace} is not known to the controller yet"
                ),
            };
        };
        let ns = Some(ns);
        let ns_labels = labels_of(ns.as_ref());
        let ns_annotations = ns
            .as_ref()
            .map(|n| n.annotations().clone())
            .unwrap_or_default();
        let annotations = pod.annotations();

        let mut assignment = Assignment::default();
        let mut blocks = Vec::new();
        let mut new = false;
        for family in self.settings.families.clone() {
            let got = match self.model.find(&uid, family) {
                Some(got) => got,
                None => {
                    if self.settings.pod_cidrs.is_none() {
                        return Decision::Fail {
                            reason: "PodCIDRUnknown",
                            message: format!(
                                "pod {namespace}/{name} gets no address: the cluster pod CIDR is unknown; start the controller with --pod-cidr (Helm value podCIDRs)"
                            ),
                        };
                    }
                    let facts = ipam::choice::PodFacts {
                        namespace: &namespace,
                        name: &name,
                        node,
                        annotations: &annotations,
                        namespace_annotations: &ns_annotations,
                        namespace_labels: &ns_labels,
                        node_labels: &node_labels,
                    };
                    let candidates = match self.model.choose(&facts, family) {
                        Ok(candidates) => candidates,
                        // The core's messages already name the pod, the pool and the reason.
                        Err((reason, message)) => return Decision::Fail { reason, message },
                    };
                    let request = Request {
                        handle: &uid,
                        namespace: &namespace,
                        pod: &name,
                        node,
                        family,
                        pools: &candidates,
                    };
                    match self.model.allocate(&request) {
                        Ok(got) => {
                            new = true;
                            self.metrics.allocations.inc();
                            got
                        }
                        // The core's messages already name the pod, the pool and the reason.
                        Err((reason, message)) => return Decision::Fail { reason, message },
                    }
                }
            };
            blocks.push(got.block.clone());
            put(&mut assignment, family, got);
        }
        annotate_if_needed(pod, (assignment, blocks), new)
    }

    /// What the pod holds if it holds an address of every family the controller assigns, with
    /// the blocks that record them.
    fn held(&self, uid: &str) -> Option<(Assignment, Vec<String>)> {
        let mut assignment = Assignment::default();
        let mut blocks = Vec::new();
        for &family in &self.settings.families {
            let got = self.model.find(uid, family)?;
            blocks.push(got.block.clone());
            put(&mut assignment, family, got);
        }
        Some((assignment, blocks))
    }

    /// Takes in the answer to a pod's annotation patch. Returns the pod if the engine must look
    /// at it again.
    pub(crate) fn annotated(&mut self, outcome: Outcome) -> Option<PodKey> {
        let Patched { job, result, again } = match outcome {
            Outcome::Patched(patched) => *patched,
            Outcome::Lost(key) => return Some(key),
        };
        let Job {
            pod,
            assignment,
            new,
        } = job;
        let key = pod.key.clone();
        match result {
            Ok(()) => {
                self.waiting.remove(&key);
                let addresses: Vec<String> = assignment.addresses().map(describe).collect();
                tracing::info!(pod = %key, addresses = ?addresses, "assigned");
                if new && let Some(bound) = pod.bound_at {
                    let seconds = (k8s_openapi::jiff::Timestamp::now() - bound)
                        .total(k8s_openapi::jiff::Unit::Second)
                        .unwrap_or(0.0);
                    self.metrics.assignment_latency.observe(seconds.max(0.0));
                }
            }
            // The pod is gone or was re-created: the watch brings the news.
            Err(kube::Error::Api(status))
                if status.code == 404 || status.code == 409 || status.code == 422 =>
            {
                self.metrics.conflict("pod");
                self.waiting.remove(&key);
            }
            Err(e) => {
                tracing::warn!(pod = %key, error = %e, "could not annotate pod; will retry");
                self.wait(&pod, format!("annotating failed: {e}"), FIRST_BACKOFF);
            }
        }
        again.then_some(key)
    }

    /// Records a failure: a Warning Event and the error annotation the first time (or when the
    /// reason changes), then a backoff before the next try.
    async fn fail(&mut self, pod: &PodInfo, reason: &'static str, message: String) {
        let key = pod.key.clone();
        let previous = self
            .waiting
            .get(&key)
            .map(|w| (w.message.clone(), w.attempts));
        let attempts = previous.as_ref().map_or(0, |(_, a)| *a + 1);
        let backoff = FIRST_BACKOFF
            .saturating_mul(1u32 << attempts.min(5))
            .min(MAX_BACKOFF);
        let changed = previous.as_ref().is_none_or(|(m, _)| m != &message);
        self.waiting.insert(
            key.clone(),
            Waiting {
                message: message.clone(),
                attempts,
                due: Instant::now() + backoff,
            },
        );
        if !changed {
            return;
        }
        self.metrics.failure(reason);
        tracing::warn!(pod = %key, reason, "{message}");
        self.event(
            &pod.reference(),
            EventType::Warning,
            reason,
            message.clone(),
            "AssignAddress",
        )
        .await;
        let error = Assignment {
            error: Some(message),
            ..Default::default()
        };
        let already = Assignment::from_annotations(&pod.annotations()).ok();
        if already.as_ref() != Some(&error)
            && let Err(e) = pods::annotate(
                &self.client,
                &pod.key.namespace,
                &pod.key.name,
                &pod.uid,
                &error,
            )
            .await
        {
            tracing::debug!(pod = %key, error = %e, "could not write the error annotation");
        }
    }

    fn wait(&mut self, pod: &PodInfo, message: String, after: Duration) {
        let key = pod.key.clone();
        let attempts = self.waiting.get(&key).map_or(0, |w| w.attempts);
        self.waiting.insert(
            key,
            Waiting {
                message,
                attempts,
                due: Instant::now() + after,
            },
        );
    }

    /// Finished pods: first remove the addresses from the pod, so that no annotation ever names
    /// an address no block records, then release them.
    async fn release_finished(&mut self, finished: Vec<Arc<PodInfo>>) {
        for pod in finished {
            let uid = pod.uid.to_string();
            let annotated = Assignment::from_annotations(&pod.annotations())
                .map(|a| a.addresses().next().is_some())
                .unwrap_or(true);
            if annotated {
                let cleared = Assignment::default();
                if let Err(e) = pods::annotate(
                    &self.client,
                    &pod.key.namespace,
                    &pod.key.name,
                    &uid,
                    &cleared,
                )
                .await
                {
                    tracing::debug!(pod = %pod.key.clone(), error = %e, "could not clear the addresses of a finished pod; will retry");
                    continue;
                }
            }
            let released = self.release(&uid);
            if released > 0 {
                tracing::info!(pod = %pod.key.clone(), released, "released the addresses of a finished pod");
                self.metrics.released("terminal", released);
            }
        }
    }
}

/// Records one family's address in an assignment.
fn put(assignment: &mut Assignment, family: Family, got: FamilyAssignment) {
    match family {
        Family::V4 => assignment.ipv4 = Some(got),
        Family::V6 => assignment.ipv6 = Some(got),
    }
}

/// Annotate the pod unless its annotations already say what the blocks record.
fn annotate_if_needed(
    pod: &PodInfo,
    (assignment, blocks): (Assignment, Vec<String>),
    new: bool,
) -> Decision {
    let current = Assignment::from_annotations(&pod.annotations()).unwrap_or_default();
    if current == assignment {
        Decision::Done
    } else {
        Decision::Annotate {
            assignment,
            blocks,
            new,
        }
    }
}

fn describe(a: &FamilyAssignment) -> String {
    format!("{} from pool {}", a.address, a.pool)
}
