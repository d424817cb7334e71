//! Optional persistence: a JSON snapshot of every object and the resourceVersion counter in
//! `<data-dir>/state.json`, written atomically after changes and read at start. Watch history
//! is not persisted: after a restart, watches from an older resourceVersion get 410 Gone and
//! clients relist, as after an etcd compaction.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::resources::StorageKey;
use crate::server::Shared;
use crate::store::Store;

const FILE: &str = "state.json";

/// Load a snapshot if there is one.
pub fn load(dir: &Path, store: &Store) -> std::io::Result<()> {
    let path = dir.join(FILE);
    if !path.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&path)?;
    let v: Value = serde_json::from_str(&text).map_err(std::io::Error::other)?;
    let rv = v["resourceVersion"].as_u64().unwrap_or(0);
    let mut objects = Vec::new();
    for o in v["objects"].as_array().into_iter().flatten() {
        let key = StorageKey::new(
            o["group"].as_str().unwrap_or_default(),
            o["resource"].as_str().unwrap_or_default(),
        );
        let ns = o["object"]
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = o["object"]
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        objects.push((key, (ns, name), o["object"].clone()));
    }
    store.load(rv, objects);
    Ok(())
}

/// Write a snapshot now (atomically: temp file then rename).
pub fn save(dir: &Path, store: &Store) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let (rv, objects) = store.dump();
    let objects: Vec<Value> = objects
        .into_iter()
        .map(|(k, _, o)| json!({"group": k.group, "resource": k.resource, "object": o.as_ref()}))
        .collect();
    let text = serde_json::to_string(&json!({"resourceVersion": rv, "objects": objects}))
        .map_err(std::io::Error::other)?;
    let tmp = dir.join(format!("{FILE}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, dir.join(FILE))
}

/// Save whenever the resourceVersion moved, checking every 100 ms.
pub async fn run(shared: Arc<Shared>) {
    let Some(dir) = shared.config.data_dir.clone() else {
        return;
    };
    let mut saved = shared.store.resource_version();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = shared.store.resource_version();
        if now != saved {
            match save(&dir, &shared.store) {
                Ok(()) => saved = now,
                Err(e) => tracing::warn!("saving state to {}: {e}", dir.display()),
            }
        }
    }
}
