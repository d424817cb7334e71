//! The leader's handles on the API server: the client, the block store, Events and metrics.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::blocks::BlockStore;
use crate::metrics::Metrics;

/// Longest Event note the API server takes.
const NOTE_LIMIT: usize = 1000;

/// See the module docs.
pub(crate) struct Cluster {
    pub(crate) client: Client,
    pub(crate) blocks: BlockStore,
    pub(crate) metrics: Arc<Metrics>,
    recorder: Recorder,
}

impl Cluster {
    pub(crate) fn new(client: Client, metrics: Arc<Metrics>, reporter: Reporter) -> Cluster {
        Cluster {
            recorder: Recorder::new(client.clone(), reporter),
            blocks: BlockStore::new(client.clone()),
            client,
            metrics,
        }
    }

    /// Publishes an Event; failures to publish are logged, never fatal.
    pub(crate) async fn event(
        &self,
        reference: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
        action: &str,
    ) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate(note, NOTE_LIMIT)),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, reference).await {
            tracing::warn!(error = %e, reason, "could not publish event");
        }
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}
