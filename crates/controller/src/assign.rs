//! Deciding and recording pod addresses: choose pools with the core, allocate in the model,
//! write the blocks, then annotate the pods whose blocks were written.

use std::collections::HashSet;
use std::sync::Arc;

use api::{Assignment, FamilyAssignment};
use ipam::cidr::Family;
use kube::runtime::events::EventType;

use crate::annotations::{Job, Outcome, Patched};
use crate::engine::Engine;
use crate::pods::{self, PodInfo, PodKey};
use crate::queue::FIRST_BACKOFF;
use crate::world::Surroundings;

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
        let mut failures = Vec::new();
        let mut finished = Vec::new();
        let mut notes = Vec::new();
        for key in keys {
            if self.annotations.busy(&key) || self.waiting.holds(&key) {
                // Looked at again once its patch is answered; or its addresses are decided and
                // it waits for its block to be written.
                continue;
            }
            let Some(pod) = self.stores.pods.get(&key) else {
                // Deleted: the PodGone change (or the sweep) releases its addresses.
                self.queue.done(&key);
                continue;
            };
            if pod.is_terminal() {
                self.queue.done(&key);
                finished.push(pod);
                continue;
            }
            if !pod.wants_address() {
                self.queue.done(&key);
                continue;
            }
            match self.decide(&pod) {
                Decision::Done => {
                    self.queue.done(&key);
                }
                Decision::Annotate {
                    assignment,
                    blocks,
                    new,
                } => {
                    if new
                        && let Some(note) = ipam::fixed::floating_ips_note(
                            &pod.key.namespace,
                            &pod.key.name,
                            &pod.annotations(),
                        )
                    {
                        notes.push((pod.reference(), note));
                    }
                    self.waiting.push(
                        Job {
                            pod,
                            assignment,
                            new,
                        },
                        blocks,
                    );
                }
                Decision::Fail { reason, message } => failures.push((pod, reason, message)),
            }
        }

        self.report_distrusted().await;
        for (reference, note) in notes {
            self.cluster
                .event(
                    &reference,
                    EventType::Warning,
                    "FloatingIPsNotHonoured",
                    note,
                    "AssignAddress",
                )
                .await;
        }
        self.release_finished(finished).await;
        self.flush_blocks().await;
        for (pod, reason, message) in failures {
            self.fail(&pod, reason, message).await;
        }
    }

    fn decide(&mut self, pod: &PodInfo) -> Decision {
        let Some(node) = pod.node.as_deref() else {
            return Decision::Done;
        };
        let families = &self.settings.families;
        let confirmed = pod.assigned();
        // The usual case on a relist, and for the echo of our own patch: the pod holds an
        // address of every family already, and its annotation names them.
        if let Some(held) = self.model.held(&pod.uid, families)
            && held.iter().all(|h| confirmed.contains(&h.address))
        {
            return annotate_if_needed(pod, held, false);
        }
        let surroundings = Surroundings::of(&self.stores, pod, node);
        let context = surroundings.context(pod, node, &confirmed);
        match self.model.assign(&context, &pod.uid, families) {
            Ok(placed) => {
                let fresh = placed.iter().filter(|(_, new)| *new).count();
                self.cluster.metrics.allocations.inc_by(fresh as u64);
                let held = placed.into_iter().map(|(a, _)| a).collect();
                annotate_if_needed(pod, held, fresh > 0)
            }
            // The core's messages already name the pod, the pool and the reason.
            Err(e) => Decision::Fail {
                reason: e.reason(),
                message: e.to_string(),
            },
        }
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
                self.queue.done(&key);
                let addresses: Vec<String> = assignment.addresses().map(describe).collect();
                tracing::info!(pod = %key, addresses = ?addresses, "assigned");
                if new && let Some(bound) = pod.bound_at {
                    let seconds = (k8s_openapi::jiff::Timestamp::now() - bound)
                        .total(k8s_openapi::jiff::Unit::Second)
                        .unwrap_or(0.0);
                    self.cluster
                        .metrics
                        .assignment_latency
                        .observe(seconds.max(0.0));
                }
            }
            // The pod is gone or was re-created: the watch brings the news.
            Err(kube::Error::Api(status))
                if status.code == 404 || status.code == 409 || status.code == 422 =>
            {
                self.cluster.metrics.conflict("pod");
                self.queue.done(&key);
            }
            Err(e) => {
                tracing::warn!(pod = %key, error = %e, "could not annotate pod; will retry");
                self.queue
                    .retry(&key, format!("annotating failed: {e}"), FIRST_BACKOFF);
            }
        }
        again.then_some(key)
    }

    /// Records the core found claiming pods and did not use (written by hand or forged): a
    /// Warning Event on the pod and a metric each. They were released in the model, and the
    /// block writes of this step remove them.
    async fn report_distrusted(&mut self) {
        for d in self.model.take_distrusted() {
            self.cluster.metrics.records_not_trusted.inc();
            tracing::warn!(pod = %format!("{}/{}", d.namespace, d.pod), pool = %d.pool, address = %d.address, "{}", d.message);
            let reference = k8s_openapi::api::core::v1::ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                namespace: Some(d.namespace.clone()),
                name: Some(d.pod.clone()),
                ..Default::default()
            };
            self.cluster
                .event(
                    &reference,
                    EventType::Warning,
                    "RecordNotTrusted",
                    d.message,
                    "AssignAddress",
                )
                .await;
        }
    }

    /// Records a failure: a Warning Event and the error annotation the first time (or when the
    /// reason changes), then a backoff before the next try.
    async fn fail(&mut self, pod: &PodInfo, reason: &'static str, message: String) {
        let key = pod.key.clone();
        if !self.queue.failed(&key, &message) {
            return;
        }
        self.cluster.metrics.failure(reason);
        tracing::warn!(pod = %key, reason, "{message}");
        self.cluster
            .event(
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
                &self.cluster.client,
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
                    &self.cluster.client,
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
            let (released, parked) =
                self.release_pod(&uid, &pod.key.name, pod.statefulset.as_deref());
            if released > 0 {
                tracing::info!(pod = %pod.key.clone(), released, "released the addresses of a finished pod");
                self.cluster.metrics.released("terminal", released);
            }
            if parked > 0 {
                tracing::info!(pod = %pod.key.clone(), parked, "kept the sticky addresses of a finished StatefulSet pod for its successor");
            }
        }
    }
}

/// Annotate the pod unless its annotations already say what the blocks record.
fn annotate_if_needed(pod: &PodInfo, held: Vec<FamilyAssignment>, new: bool) -> Decision {
    let blocks = held.iter().map(|a| a.block.clone()).collect();
    let mut assignment = Assignment::default();
    for a in held {
        match Family::of_addr(&a.address) {
            Family::V4 => assignment.ipv4 = Some(a),
            Family::V6 => assignment.ipv6 = Some(a),
        }
    }
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
