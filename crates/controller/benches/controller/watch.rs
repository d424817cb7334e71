//! The benchmark's eyes: a WATCH of one kind of object, opened before the measurement starts,
//! recording when each event arrived and when each object was first seen in the state looked
//! for (a pod annotated). Waiting on it needs no polling, and its clock is the one the creates
//! were timed with.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::api::{ListParams, WatchEvent, WatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

/// What kind of change an event reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Modified,
    Deleted,
}

#[derive(Default)]
struct State {
    /// namespace/name -> when it was first seen marked.
    marked: HashMap<String, Instant>,
    /// Every event, when it arrived.
    events: Vec<(Instant, Change)>,
}

/// A watch running on the current runtime until dropped.
pub struct Watch {
    state: Arc<Mutex<State>>,
    marked: watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    /// Watches `api` from now on; `mark` says which objects are in the state looked for. Returns
    /// once the server has accepted the watch.
    pub async fn start<K>(api: Api<K>, mark: fn(&K) -> bool) -> Watch
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    {
        let list = api
            .list_metadata(&ListParams::default().limit(1))
            .await
            .expect("list to start the watch from");
        let mut version = list.metadata.resource_version.unwrap_or_default();
        let mut stream = api
            .watch(&WatchParams::default(), &version)
            .await
            .expect("watch")
            .boxed();
        let state: Arc<Mutex<State>> = Arc::default();
        let (count, marked) = watch::channel(0);
        let recording = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let event = match stream.try_next().await {
                    Ok(Some(event)) => event,
                    // The server ends a watch after a few minutes; go on from where it ended.
                    Ok(None) | Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        match api.watch(&WatchParams::default(), &version).await {
                            Ok(s) => {
                                stream = s.boxed();
                                continue;
                            }
                            Err(e) => {
                                eprintln!("warning: the benchmark's watch ended: {e}");
                                return;
                            }
                        }
                    }
                };
                let at = Instant::now();
                let (object, change) = match event {
                    WatchEvent::Added(o) => (o, Change::Added),
                    WatchEvent::Modified(o) => (o, Change::Modified),
                    WatchEvent::Deleted(o) => (o, Change::Deleted),
                    WatchEvent::Bookmark(b) => {
                        version = b.metadata.resource_version;
                        continue;
                    }
                    WatchEvent::Error(e) => {
                        eprintln!("warning: the benchmark's watch ended: {e:?}");
                        return;
                    }
                };
                version = object.resource_version().unwrap_or(version);
                let mut st = recording.lock().expect("watch state");
                st.events.push((at, change));
                if change != Change::Deleted && mark(&object) {
                    let key = format!(
                        "{}/{}",
                        object.namespace().unwrap_or_default(),
                        object.name_any()
                    );
                    st.marked.entry(key).or_insert(at);
                    count.send_replace(st.marked.len());
                }
            }
        });
        Watch {
            state,
            marked,
            task,
        }
    }

    /// How many objects were seen marked so far.
    pub fn marked_count(&self) -> usize {
        *self.marked.borrow()
    }

    /// Waits (at most `patience`) until `n` objects were seen marked; returns how many were.
    pub async fn wait_marked(&self, n: usize, patience: Duration) -> usize {
        let mut marked = self.marked.clone();
        let _ = tokio::time::timeout(patience, marked.wait_for(|m| *m >= n)).await;
        self.marked_count()
    }

    /// namespace/name -> when it was first seen marked.
    pub fn marks(&self) -> HashMap<String, Instant> {
        self.state.lock().expect("watch state").marked.clone()
    }

    /// Every event so far, when it arrived.
    pub fn events(&self) -> Vec<(Instant, Change)> {
        self.state.lock().expect("watch state").events.clone()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
