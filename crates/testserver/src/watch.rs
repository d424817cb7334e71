//! Watch streams: newline-delimited JSON events from a resourceVersion, with synthetic ADDED
//! events for a fresh watch, streaming-list bookmarks (`sendInitialEvents`), periodic BOOKMARKs,
//! 410 Gone for a history that is no longer retained, `timeoutSeconds`, and selector transitions
//! (an object leaving the selection is DELETED, one entering it is ADDED).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::render::{self, Format};
use crate::resources::ResourceDef;
use crate::selectors::Filter;
use crate::server::Shared;
use crate::store::{Change, ChangeKind};

/// Parameters of one watch request.
#[derive(Debug, Clone)]
pub struct WatchRequest {
    /// what is watched
    pub def: Arc<ResourceDef>,
    /// selection
    pub filter: Filter,
    /// `resourceVersion` (None or 0: start with the current state)
    pub from: Option<u64>,
    /// `sendInitialEvents=true`
    pub send_initial_events: bool,
    /// `allowWatchBookmarks=true`
    pub bookmarks: bool,
    /// `timeoutSeconds`
    pub timeout: Duration,
    /// response shape
    pub format: Format,
    /// `includeObject` for tables
    pub include: String,
}

fn line(kind: &str, object: Value) -> Bytes {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

fn bookmark(def: &ResourceDef, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        json!({"kind": def.kind, "apiVersion": def.api_version(), "metadata": meta}),
    )
}

/// The event a watcher with `filter` sees for a change, if any.
fn event_for(req: &WatchRequest, c: &Change) -> Option<(&'static str, Arc<Value>)> {
    let now = req.filter.matches(&req.def, &c.object);
    let before = c
        .prev
        .as_ref()
        .is_some_and(|p| req.filter.matches(&req.def, p));
    match c.kind {
        ChangeKind::Added if now => Some(("ADDED", c.object.clone())),
        ChangeKind::Modified if now && before => Some(("MODIFIED", c.object.clone())),
        ChangeKind::Modified if now => Some(("ADDED", c.object.clone())),
        ChangeKind::Modified if before => {
            // leaving the selection: the previous content with the change's resourceVersion
            let mut prev = c.prev.as_deref().cloned().unwrap_or_default();
            prev["metadata"]["resourceVersion"] = json!(c.rv.to_string());
            Some(("DELETED", Arc::new(prev)))
        }
        ChangeKind::Deleted if now || before => Some(("DELETED", c.object.clone())),
        _ => None,
    }
}

fn render(req: &WatchRequest, obj: &Value) -> Value {
    render::object(&req.def, obj, req.format, &req.include)
}

/// Start a watch; the returned receiver yields the body's chunks until the watch ends.
pub fn start(shared: Arc<Shared>, req: WatchRequest) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let mut kill = shared.kill.subscribe();
    let started = shared
        .store
        .watch_from(&req.def, req.filter.namespace.as_deref(), req.from);
    let interval = shared.config.bookmark_interval;
    tokio::spawn(async move {
        let (snapshot, backlog, mut last_rv, mut changes) = match started {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(line("ERROR", e.to_status())).await;
                return;
            }
        };
        let initial = req.from.is_none();
        for obj in snapshot.iter().filter(|o| req.filter.matches(&req.def, o)) {
            if tx.send(line("ADDED", render(&req, obj))).await.is_err() {
                return;
            }
        }
        if initial
            && req.send_initial_events
            && req.bookmarks
            && tx.send(bookmark(&req.def, last_rv, true)).await.is_err()
        {
            return;
        }
        for c in &backlog {
            if let Some((kind, obj)) = event_for(&req, c)
                && tx.send(line(kind, render(&req, &obj))).await.is_err()
            {
                return;
            }
        }
        let deadline = tokio::time::sleep(req.timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = kill.changed() => return,
                _ = tx.closed() => return,
                _ = tick.tick(), if req.bookmarks => {
                    if tx.send(bookmark(&req.def, last_rv, false)).await.is_err() {
                        return;
                    }
                }
                got = changes.recv() => match got {
                    Ok(c) => {
                        last_rv = last_rv.max(c.rv);
                        if c.storage != req.def.storage {
                            continue;
                        }
                        if let Some((kind, obj)) = event_for(&req, &c)
                            && tx.send(line(kind, render(&req, &obj))).await.is_err()
                        {
                            return;
                        }
                    }
                    // a watcher too slow to keep up is closed, as the real server does; the
                    // client resumes from the last resourceVersion it saw
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    });
    rx
}
