//! Deletion: preconditions, finalizers, graceful deletion of pods bound to a node, cascading
//! deletion of a namespace's or a CRD's content, and garbage collection of dependents through
//! `ownerReferences`.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};

use super::{ChangeKind, State, finalizers, meta, meta_mut, now_rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::resources::{Builtin, ResourceDef, StorageKey};

/// `propagationPolicy` of a delete.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Propagation {
    /// dependents are deleted after the owner (the default)
    #[default]
    Background,
    /// dependents are deleted before the owner
    Foreground,
    /// dependents lose their owner reference and stay
    Orphan,
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    /// `preconditions.uid`
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`
    pub resource_version: Option<String>,
    /// `dryRun=All`
    pub dry_run: bool,
    /// `gracePeriodSeconds`
    pub grace_period: Option<i64>,
    /// `propagationPolicy`
    pub propagation: Propagation,
}

fn precondition_failed(
    def: &ResourceDef,
    name: &str,
    what: &str,
    want: &str,
    got: &str,
) -> ApiError {
    ApiError::conflict_msg(
        &def.group,
        &def.resource,
        name,
        format!(
            "Precondition failed: {what} in precondition: {want}, {what} in object meta: {got}"
        ),
    )
}

fn timestamp_in(secs: i64) -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    let later = now
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(secs))
        .unwrap_or(now);
    later.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl State {
    pub(super) fn delete(
        &mut self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> ApiResult<Value> {
        let old = self
            .find(def, ns, name)
            .ok_or_else(|| ApiError::not_found(&def.group, &def.resource, name))?;
        let (uid, rv) = (
            meta(&old, "uid").unwrap_or_default(),
            meta(&old, "resourceVersion").unwrap_or_default(),
        );
        if let Some(want) = opts.uid.as_ref().filter(|w| **w != uid) {
            return Err(precondition_failed(def, name, "UID", want, &uid));
        }
        if let Some(want) = opts.resource_version.as_ref().filter(|w| **w != rv) {
            return Err(precondition_failed(def, name, "ResourceVersion", want, &rv));
        }
        if opts.dry_run {
            return Ok(old.as_ref().clone());
        }
        if def.builtin == Some(Builtin::Pod)
            && let Some(grace) = self.pod_grace(&old, opts)
        {
            return Ok(self.mark(def, ns, name, &old, grace, opts).as_ref().clone());
        }
        let cascades = matches!(def.builtin, Some(Builtin::Namespace) | Some(Builtin::Crd));
        if finalizers(&old) > 0 || cascades {
            let marked = self.mark(def, ns, name, &old, 0, opts);
            if cascades {
                self.cascade(def, &marked);
                // the container is gone already when it was empty
                return Ok(self
                    .find(def, ns, name)
                    .map_or_else(|| marked.as_ref().clone(), |v| v.as_ref().clone()));
            }
            return Ok(marked.as_ref().clone());
        }
        if opts.propagation == Propagation::Foreground {
            self.collect_dependents(&uid, Propagation::Foreground);
        }
        let removed = self.remove(def, ns, name, &old, opts.propagation);
        Ok(removed.as_ref().clone())
    }

    /// Graceful deletion applies to pods bound to a node and not terminal: they stay, marked,
    /// until the kubelet (or a delete with grace 0) finishes them.
    fn pod_grace(&self, pod: &Value, opts: &DeleteOpts) -> Option<i64> {
        let bound = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let terminal = matches!(
            pod.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        );
        let spec_grace = pod
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30);
        let grace = opts.grace_period.unwrap_or(spec_grace);
        let grace = if grace < 0 { 1 } else { grace };
        if !bound || terminal || grace == 0 {
            return None;
        }
        Some(grace)
    }

    /// Set deletionTimestamp (now + grace) unless already set with a shorter grace; with grace 0
    /// and no finalizers left the object goes.
    fn mark(
        &mut self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        old: &Arc<Value>,
        grace: i64,
        opts: &DeleteOpts,
    ) -> Arc<Value> {
        let current_grace = old
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64);
        let already = old.pointer("/metadata/deletionTimestamp").is_some();
        if already && current_grace.is_some_and(|g| g <= grace) {
            return old.clone();
        }
        let mut new = old.as_ref().clone();
        let m = meta_mut(&mut new);
        m.insert("deletionTimestamp".into(), json!(timestamp_in(grace)));
        m.insert("deletionGracePeriodSeconds".into(), json!(grace));
        if !already && let Some(g) = m.get("generation").and_then(Value::as_i64) {
            m.insert("generation".into(), json!(g + 1));
        }
        if def.builtin == Some(Builtin::Namespace) {
            new["status"]["phase"] = json!("Terminating");
        }
        if def.builtin == Some(Builtin::Crd) {
            new["status"]["conditions"] = json!([{"type": "Terminating", "status": "True", "reason": "InstanceDeletionInProgress", "message": "CustomResource deletion is in progress", "lastTransitionTime": now_rfc3339()}]);
        }
        if grace == 0
            && finalizers(&new) == 0
            && !matches!(def.builtin, Some(Builtin::Namespace) | Some(Builtin::Crd))
        {
            return self.remove(def, ns, name, old, opts.propagation);
        }
        let rv = self.next_rv();
        meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
        let arc = Arc::new(new);
        self.store_modified(def, key(def, ns, name), arc.clone(), old.clone(), rv);
        arc
    }

    /// Remove an object now, with a DELETED event carrying the deletion's resourceVersion.
    pub(super) fn remove(
        &mut self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        old: &Arc<Value>,
        propagation: Propagation,
    ) -> Arc<Value> {
        let rv = self.next_rv();
        let mut last = old.as_ref().clone();
        meta_mut(&mut last).insert("resourceVersion".into(), json!(rv.to_string()));
        let key = key(def, ns, name);
        if let Some(m) = self.objects.get_mut(&def.storage) {
            m.remove(&key);
        }
        let arc = Arc::new(last);
        self.emit(
            &def.storage,
            ChangeKind::Deleted,
            arc.clone(),
            Some(old.clone()),
            rv,
        );
        self.after_removal(def, &arc, propagation);
        arc
    }

    /// Delete the content of a terminating namespace or CRD, then the container once empty.
    fn cascade(&mut self, def: &ResourceDef, container: &Arc<Value>) {
        let registry = self.registry.clone();
        let name = meta(container, "name").unwrap_or_default();
        let mut victims: Vec<(Arc<ResourceDef>, String, String)> = Vec::new();
        match def.builtin {
            Some(Builtin::Namespace) => {
                let mut seen = HashSet::new();
                for d in registry.all() {
                    if !d.namespaced || !seen.insert(d.storage.clone()) {
                        continue;
                    }
                    for o in self.list(&d.storage, Some(&name)) {
                        victims.push((
                            d.clone(),
                            name.clone(),
                            meta(&o, "name").unwrap_or_default(),
                        ));
                    }
                }
            }
            Some(Builtin::Crd) => {
                let key = crd_storage(container);
                if let Some(d) = registry.for_storage(&key) {
                    for o in self.list(&key, None) {
                        victims.push((
                            d.clone(),
                            meta(&o, "namespace").unwrap_or_default(),
                            meta(&o, "name").unwrap_or_default(),
                        ));
                    }
                }
            }
            _ => {}
        }
        // the namespace's content goes at once, as when its controller is done (no kubelet wait)
        let opts = DeleteOpts {
            grace_period: Some(0),
            ..DeleteOpts::default()
        };
        for (d, ns, n) in victims {
            let _ = self.delete(&d, &ns, &n, &opts);
        }
        self.finish_container(def, &name);
    }

    /// After an object went away: its dependents are collected, and a terminating namespace
    /// or CRD that is now empty goes too.
    pub(super) fn after_removal(
        &mut self,
        def: &ResourceDef,
        removed: &Value,
        propagation: Propagation,
    ) {
        if let Some(uid) = meta(removed, "uid") {
            self.collect_dependents(&uid, propagation);
        }
        if def.builtin == Some(Builtin::Crd) {
            self.rebuild_registry();
            return;
        }
        if def.namespaced
            && let Some(ns) = meta(removed, "namespace")
            && let Some(nsdef) = self.registry.get("", "v1", "namespaces")
        {
            self.finish_container(&nsdef, &ns);
        }
        if def.builtin.is_none() {
            let key = StorageKey::new("apiextensions.k8s.io", "customresourcedefinitions");
            let crd_name = format!("{}.{}", def.storage.resource, def.storage.group);
            if let Some(crddef) = self.registry.for_storage(&key) {
                self.finish_container(&crddef, &crd_name);
            }
        }
    }

    /// The garbage collector, run synchronously: objects owned by `owner_uid` are deleted when
    /// no other owner of theirs remains (or lose the reference when orphaned or still owned).
    fn collect_dependents(&mut self, owner_uid: &str, propagation: Propagation) {
        let registry = self.registry.clone();
        let mut dependents: Vec<(Arc<ResourceDef>, Arc<Value>)> = Vec::new();
        let mut live_uids: HashSet<String> = HashSet::new();
        let mut seen = HashSet::new();
        for d in registry.all() {
            if !seen.insert(d.storage.clone()) {
                continue;
            }
            for o in self.list(&d.storage, None) {
                if let Some(u) = meta(&o, "uid") {
                    live_uids.insert(u);
                }
                let owned = o
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == owner_uid));
                if owned {
                    dependents.push((d.clone(), o.clone()));
                }
            }
        }
        for (d, dep) in dependents {
            let ns = meta(&dep, "namespace").unwrap_or_default();
            let name = meta(&dep, "name").unwrap_or_default();
            let refs: Vec<Value> = dep
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let others_alive = refs.iter().any(|r| {
                r["uid"] != owner_uid && r["uid"].as_str().is_some_and(|u| live_uids.contains(u))
            });
            if propagation == Propagation::Orphan || others_alive {
                let mut new = dep.as_ref().clone();
                let kept: Vec<Value> = refs.into_iter().filter(|r| r["uid"] != owner_uid).collect();
                if kept.is_empty() {
                    meta_mut(&mut new).remove("ownerReferences");
                } else {
                    meta_mut(&mut new).insert("ownerReferences".into(), Value::Array(kept));
                }
                let rv = self.next_rv();
                meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
                let arc = Arc::new(new);
                self.objects
                    .entry(d.storage.clone())
                    .or_default()
                    .insert(key(&d, &ns, &name), arc.clone());
                self.emit(&d.storage, ChangeKind::Modified, arc, Some(dep.clone()), rv);
            } else {
                let opts = DeleteOpts {
                    propagation,
                    grace_period: Some(0),
                    ..DeleteOpts::default()
                };
                let _ = self.delete(&d, &ns, &name, &opts);
            }
        }
    }

    fn finish_container(&mut self, def: &ResourceDef, name: &str) {
        let Some(obj) = self.find(def, "", name) else {
            return;
        };
        if obj.pointer("/metadata/deletionTimestamp").is_none() || finalizers(&obj) > 0 {
            return;
        }
        let empty = match def.builtin {
            Some(Builtin::Namespace) => {
                let registry = self.registry.clone();
                registry
                    .all()
                    .iter()
                    .filter(|d| d.namespaced)
                    .all(|d| self.list(&d.storage, Some(name)).is_empty())
            }
            Some(Builtin::Crd) => self.list(&crd_storage(&obj), None).is_empty(),
            _ => false,
        };
        if empty {
            self.remove(def, "", name, &obj, Propagation::Background);
        }
    }
}

fn crd_storage(crd: &Value) -> StorageKey {
    let group = crd
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let plural = crd
        .pointer("/spec/names/plural")
        .and_then(Value::as_str)
        .unwrap_or_default();
    StorageKey::new(group, plural)
}

fn key(def: &ResourceDef, ns: &str, name: &str) -> (String, String) {
    (
        if def.namespaced {
            ns.to_string()
        } else {
            String::new()
        },
        name.to_string(),
    )
}
