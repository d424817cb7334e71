//! The object store: one lock, one global resourceVersion counter, compare-and-swap writes,
//! finalizers, cascading namespace/CRD deletion, and the retained change history that watches
//! replay from.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::BuildHasher;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::error::{ApiError, ApiResult, Reason, qualified};
use crate::fields;
use crate::resources::{Builtin, Registry, ResourceDef, StorageKey};
use crate::strategy;

/// (namespace, name); namespace is "" for cluster-scoped objects.
pub type ObjKey = (String, String);

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// created
    Added,
    /// updated
    Modified,
    /// removed
    Deleted,
}

/// One committed change, as watches see it.
#[derive(Debug)]
pub struct Change {
    /// resourceVersion of the change
    pub rv: u64,
    /// storage it happened in
    pub storage: StorageKey,
    /// added, modified, deleted
    pub kind: ChangeKind,
    /// the object after the change (for deletions: the last state, with the deletion's RV)
    pub object: Arc<Value>,
    /// the object before the change
    pub prev: Option<Arc<Value>>,
}

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    /// the main resource
    Main,
    /// the `/status` subresource
    Status,
    /// the `pods/binding` subresource (sets spec.nodeName once)
    Binding,
}

/// Per-request write options.
#[derive(Debug, Clone)]
pub struct WriteCtx {
    /// field manager for managedFields
    pub manager: String,
    /// `dryRun=All`
    pub dry_run: bool,
    /// managedFields were computed by server-side apply already
    pub apply: bool,
}

mod delete;

pub use delete::{DeleteOpts, Propagation};

pub(crate) struct State {
    rv: u64,
    objects: HashMap<StorageKey, BTreeMap<ObjKey, Arc<Value>>>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// watches from a resourceVersion below this one get 410 Gone
    compacted: u64,
    registry: Arc<Registry>,
    seq: u64,
    random: std::collections::hash_map::RandomState,
    tx: broadcast::Sender<Arc<Change>>,
}

/// The store shared by all requests.
pub struct Store {
    state: Mutex<State>,
}

/// RFC 3339 timestamp with second precision, as `metav1.Time` serializes.
pub fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub(crate) fn meta(obj: &Value, field: &str) -> Option<String> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .map(str::to_string)
}

pub(crate) fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

pub(crate) fn finalizers(obj: &Value) -> usize {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

impl Store {
    /// A store with the default namespaces, retaining `history_limit` changes for watches.
    pub fn new(history_limit: usize) -> Self {
        let (tx, _) = broadcast::channel(16_384);
        let state = State {
            rv: 0,
            objects: HashMap::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted: 0,
            registry: Arc::new(Registry::build(std::iter::empty())),
            seq: 0,
            random: std::collections::hash_map::RandomState::new(),
            tx,
        };
        let store = Store {
            state: Mutex::new(state),
        };
        let ctx = WriteCtx {
            manager: "kube-apiserver".into(),
            dry_run: false,
            apply: false,
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            if let Some(def) = store.registry().get("", "v1", "namespaces") {
                let _ = store.create(
                    &def,
                    "",
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                    &ctx,
                );
            }
        }
        store
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every write is one insert), so
        // recovering from poisoning is safe here.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current registry of served resources.
    pub fn registry(&self) -> Arc<Registry> {
        self.lock().registry.clone()
    }

    /// Current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Every change committed from now on, and the resourceVersion they follow.
    pub fn subscribe(&self) -> (u64, broadcast::Receiver<Arc<Change>>) {
        let st = self.lock();
        (st.rv, st.tx.subscribe())
    }

    /// Change how many changes are retained for watches.
    pub fn set_history_limit(&self, limit: usize) {
        let mut st = self.lock();
        st.history_limit = limit.max(1);
        st.trim_history();
    }

    /// Forget all retained history: watches from any resourceVersion older than now get 410.
    pub fn compact(&self) {
        let mut st = self.lock();
        st.compacted = st.rv;
        st.history.clear();
    }

    /// One object.
    pub fn get(&self, def: &ResourceDef, ns: &str, name: &str) -> ApiResult<Arc<Value>> {
        let st = self.lock();
        st.find(def, ns, name)
            .ok_or_else(|| ApiError::not_found(&def.group, &def.resource, name))
    }

    /// All objects of a storage in a namespace (or all namespaces), in key order, with the
    /// resourceVersion of the list.
    pub fn list(&self, def: &ResourceDef, ns: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let st = self.lock();
        (st.list(&def.storage, ns), st.rv)
    }

    /// The objects as they were at resourceVersion `rv`, rebuilt from the retained history (410
    /// Expired when it is no longer retained, 504 when `rv` is in the future), in (namespace,
    /// name) order and starting after the key `after` (a continue token's last item). A page
    /// costs a walk over the objects after `after`, not a copy of the whole collection.
    pub fn list_at(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        rv: u64,
        after: Option<&ObjKey>,
    ) -> ApiResult<Vec<Arc<Value>>> {
        let st = self.lock();
        if rv > st.rv {
            return Err(ApiError::new(
                Reason::Timeout,
                format!("Too large resource version: {rv}, current: {}", st.rv),
            ));
        }
        if rv < st.compacted {
            return Err(ApiError::new(
                Reason::Expired,
                format!(
                    "The resourceVersion for the provided list is too old: {rv} ({})",
                    st.compacted
                ),
            ));
        }
        let in_range =
            |key: &ObjKey| ns.is_none_or(|n| n == key.0) && after.is_none_or(|a| key > a);
        // What changed since `rv`, undone: the state before the oldest such change of each
        // object (None: it did not exist yet).
        let mut undone: BTreeMap<ObjKey, Option<Arc<Value>>> = BTreeMap::new();
        for c in st.history.iter().rev().take_while(|c| c.rv > rv) {
            if c.storage != def.storage {
                continue;
            }
            let key = (
                meta(&c.object, "namespace").unwrap_or_default(),
                meta(&c.object, "name").unwrap_or_default(),
            );
            if !in_range(&key) {
                continue;
            }
            let before = match (c.kind, &c.prev) {
                (ChangeKind::Added, _) | (_, None) => None,
                (_, Some(prev)) => Some(prev.clone()),
            };
            undone.insert(key, before);
        }
        let empty = BTreeMap::new();
        let objects = st.objects.get(&def.storage).unwrap_or(&empty);
        let start = match (ns, after) {
            (_, Some(a)) => Bound::Excluded(a.clone()),
            (Some(n), None) => Bound::Included((n.to_string(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let current = objects
            .range((start, Bound::Unbounded))
            .take_while(|(k, _)| ns.is_none_or(|n| n == k.0));
        // Merge the two ordered sequences; the undone state wins.
        let mut out = Vec::new();
        let mut undone = undone.into_iter().peekable();
        for (key, object) in current {
            while let Some((k, _)) = undone.peek()
                && k < key
            {
                if let Some((_, Some(before))) = undone.next() {
                    out.push(before);
                }
            }
            match undone.peek() {
                Some((k, _)) if k == key => {
                    if let Some((_, Some(before))) = undone.next() {
                        out.push(before);
                    }
                }
                _ => out.push(object.clone()),
            }
        }
        out.extend(undone.filter_map(|(_, before)| before));
        Ok(out)
    }

    /// Start a watch: the changes after `from` (or 410), plus a receiver for what follows, taken
    /// under one lock so that nothing falls between them. With `from == None` the snapshot of the
    /// current objects is returned instead of history.
    #[allow(clippy::type_complexity)]
    pub fn watch_from(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        from: Option<u64>,
    ) -> ApiResult<(
        Vec<Arc<Value>>,
        Vec<Arc<Change>>,
        u64,
        broadcast::Receiver<Arc<Change>>,
    )> {
        let st = self.lock();
        let rx = st.tx.subscribe();
        match from {
            None => Ok((st.list(&def.storage, ns), Vec::new(), st.rv, rx)),
            Some(rv) => {
                if rv < st.compacted {
                    return Err(ApiError::new(
                        Reason::Expired,
                        format!("too old resource version: {rv} ({})", st.compacted),
                    )
                    .with_code(410));
                }
                let backlog = st
                    .history
                    .iter()
                    .filter(|c| c.rv > rv && c.storage == def.storage)
                    .cloned()
                    .collect();
                Ok((Vec::new(), backlog, st.rv, rx))
            }
        }
    }

    /// Create an object; `obj` has been decoded and defaulted already.
    pub fn create(
        &self,
        def: &ResourceDef,
        ns: &str,
        obj: Value,
        ctx: &WriteCtx,
    ) -> ApiResult<Value> {
        let mut st = self.lock();
        st.create(def, ns, obj, ctx)
    }

    /// Read-modify-write under the lock: `f` gets the current object (None if missing) and
    /// returns the desired one; the update rules (preconditions, status isolation, generation,
    /// finalizers) then apply. `create_if_missing` lets server-side apply create.
    #[allow(clippy::too_many_arguments)]
    pub fn modify<F>(
        &self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        sub: Sub,
        ctx: &WriteCtx,
        create_if_missing: bool,
        f: F,
    ) -> ApiResult<Value>
    where
        F: FnOnce(Option<&Value>) -> ApiResult<Value>,
    {
        let mut st = self.lock();
        let old = st.find(def, ns, name);
        let new = f(old.as_deref())?;
        match old {
            None if create_if_missing => {
                let mut new = new;
                if !ctx.apply {
                    // an update that creates (Events, Leases) carries no resourceVersion to keep
                    meta_mut(&mut new).remove("resourceVersion");
                }
                st.create(def, ns, new, ctx)
            }
            None => Err(ApiError::not_found(&def.group, &def.resource, name)),
            Some(old) => st.update(def, ns, name, sub, new, &old, ctx),
        }
    }

    /// Delete: marks objects with finalizers, removes the others (cascading for namespaces and CRDs).
    pub fn delete(
        &self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> ApiResult<Value> {
        let mut st = self.lock();
        st.delete(def, ns, name, opts)
    }

    /// Replace the whole content (used when loading a persisted snapshot).
    pub(crate) fn load(&self, rv: u64, objects: Vec<(StorageKey, ObjKey, Value)>) {
        let mut st = self.lock();
        st.objects.clear();
        for (k, ok, v) in objects {
            st.objects.entry(k).or_default().insert(ok, Arc::new(v));
        }
        st.rv = rv;
        st.compacted = rv;
        st.history.clear();
        st.rebuild_registry();
    }

    /// Everything, for persistence.
    pub(crate) fn dump(&self) -> (u64, Vec<(StorageKey, ObjKey, Arc<Value>)>) {
        let st = self.lock();
        let mut out = Vec::new();
        for (k, m) in &st.objects {
            for (ok, v) in m {
                out.push((k.clone(), ok.clone(), v.clone()));
            }
        }
        (st.rv, out)
    }
}

impl State {
    fn find(&self, def: &ResourceDef, ns: &str, name: &str) -> Option<Arc<Value>> {
        let ns = if def.namespaced { ns } else { "" };
        self.objects
            .get(&def.storage)?
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    fn list(&self, key: &StorageKey, ns: Option<&str>) -> Vec<Arc<Value>> {
        let Some(m) = self.objects.get(key) else {
            return Vec::new();
        };
        match ns {
            None => m.values().cloned().collect(),
            Some(ns) => m
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v.clone())
                .collect(),
        }
    }

    fn trim_history(&mut self) {
        while self.history.len() > self.history_limit {
            if let Some(c) = self.history.pop_front() {
                self.compacted = c.rv;
            }
        }
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn uid(&mut self) -> String {
        self.seq += 1;
        let a = self.random.hash_one(self.seq);
        let b = self.random.hash_one(a ^ 0x9e37_79b9_7f4a_7c15);
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            (a >> 32) as u32,
            (a >> 16) as u16,
            (a & 0xfff) as u16,
            ((b >> 48) as u16 & 0x3fff) | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }

    fn random_suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        self.seq += 1;
        let mut h = self.random.hash_one(self.seq);
        (0..5)
            .map(|_| {
                let c = ALPHABET[(h % ALPHABET.len() as u64) as usize] as char;
                h /= ALPHABET.len() as u64;
                c
            })
            .collect()
    }

    fn emit(
        &mut self,
        storage: &StorageKey,
        kind: ChangeKind,
        object: Arc<Value>,
        prev: Option<Arc<Value>>,
        rv: u64,
    ) {
        let change = Arc::new(Change {
            rv,
            storage: storage.clone(),
            kind,
            object,
            prev,
        });
        self.history.push_back(change.clone());
        self.trim_history();
        // no receivers is fine
        let _ = self.tx.send(change);
    }

    /// Stores a changed object and tells the watchers; a changed CRD changes what is served.
    fn store_modified(
        &mut self,
        def: &ResourceDef,
        key: (String, String),
        object: Arc<Value>,
        old: Arc<Value>,
        rv: u64,
    ) {
        self.objects
            .entry(def.storage.clone())
            .or_default()
            .insert(key, object.clone());
        self.emit(&def.storage, ChangeKind::Modified, object, Some(old), rv);
        if def.builtin == Some(Builtin::Crd) {
            self.rebuild_registry();
        }
    }

    fn rebuild_registry(&mut self) {
        let key = StorageKey::new("apiextensions.k8s.io", "customresourcedefinitions");
        let crds: Vec<Arc<Value>> = self
            .objects
            .get(&key)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        self.registry = Arc::new(Registry::build(crds.iter().map(|v| v.as_ref())));
    }

    fn check_namespace(&self, def: &ResourceDef, ns: &str) -> ApiResult<()> {
        if !def.namespaced {
            return Ok(());
        }
        if ns.is_empty() {
            return Err(
                ApiError::bad_request("the server could not find the requested resource")
                    .with_code(404),
            );
        }
        let key = StorageKey::new("", "namespaces");
        match self
            .objects
            .get(&key)
            .and_then(|m| m.get(&(String::new(), ns.to_string())))
        {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(n) if n.pointer("/metadata/deletionTimestamp").is_some() => Err(ApiError::new(
                Reason::Forbidden,
                format!(
                    "{} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    qualified(&def.group, &def.resource),
                ),
            )),
            Some(_) => Ok(()),
        }
    }

    fn create(
        &mut self,
        def: &ResourceDef,
        ns: &str,
        mut obj: Value,
        ctx: &WriteCtx,
    ) -> ApiResult<Value> {
        self.check_namespace(def, ns)?;
        if def.terminating {
            return Err(ApiError::new(
                Reason::MethodNotAllowed,
                "create not allowed while custom resource definition is terminating",
            ));
        }
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request is not a JSON object",
            ));
        }
        if meta(&obj, "resourceVersion")
            .and_then(|rv| rv.parse::<u64>().ok())
            .is_some_and(|rv| rv != 0)
        {
            return Err(ApiError::internal(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let m = meta_mut(&mut obj);
        if def.namespaced {
            match m.get("namespace").and_then(Value::as_str) {
                Some(n) if !n.is_empty() && n != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    m.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            m.remove("namespace");
        }
        let name = match m.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => match m
                .get("generateName")
                .and_then(Value::as_str)
                .map(str::to_string)
            {
                Some(prefix) if !prefix.is_empty() => {
                    let n = format!("{prefix}{}", self.random_suffix());
                    meta_mut(&mut obj).insert("name".into(), json!(n));
                    n
                }
                _ => {
                    return Err(ApiError::invalid(
                        &def.group,
                        &def.kind,
                        "",
                        vec![crate::error::cause(
                            "FieldValueRequired",
                            "metadata.name",
                            "Required value: name or generateName is required",
                        )],
                    ));
                }
            },
        };
        let ns_key = if def.namespaced {
            ns.to_string()
        } else {
            String::new()
        };
        if self
            .objects
            .get(&def.storage)
            .is_some_and(|m| m.contains_key(&(ns_key.clone(), name.clone())))
        {
            return Err(ApiError::already_exists(&def.group, &def.resource, &name));
        }
        strategy::prepare_create(def, &mut obj);
        let now = now_rfc3339();
        let uid = self.uid();
        let m = meta_mut(&mut obj);
        m.insert("uid".into(), json!(uid));
        m.insert("creationTimestamp".into(), json!(now));
        m.remove("deletionTimestamp");
        m.remove("deletionGracePeriodSeconds");
        m.remove("selfLink");
        if def.tracks_generation() {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
        if !ctx.apply {
            fields::record_write(def, Sub::Main, None, &mut obj, &ctx.manager, &now);
        }
        let causes = strategy::validate(def, &obj, None, Sub::Main);
        if !causes.is_empty() {
            return Err(ApiError::invalid(&def.group, &def.kind, &name, causes));
        }
        if ctx.dry_run {
            meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
            return Ok(obj);
        }
        let rv = self.next_rv();
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        let arc = Arc::new(obj);
        self.objects
            .entry(def.storage.clone())
            .or_default()
            .insert((ns_key, name), arc.clone());
        self.emit(&def.storage, ChangeKind::Added, arc.clone(), None, rv);
        if def.builtin == Some(Builtin::Crd) {
            self.rebuild_registry();
        }
        Ok(arc.as_ref().clone())
    }

    #[allow(clippy::too_many_arguments)]
    fn update(
        &mut self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        sub: Sub,
        mut new: Value,
        old: &Arc<Value>,
        ctx: &WriteCtx,
    ) -> ApiResult<Value> {
        if !new.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request is not a JSON object",
            ));
        }
        let old_rv = meta(old, "resourceVersion").unwrap_or_default();
        // custom resources allow no unconditional update
        if def.builtin.is_none() && meta(&new, "resourceVersion").is_none_or(|rv| rv.is_empty()) {
            return Err(ApiError::invalid(
                &def.group,
                &def.resource,
                name,
                vec![crate::error::cause(
                    "FieldValueInvalid",
                    "metadata.resourceVersion",
                    "Invalid value: 0x0: must be specified for an update",
                )],
            ));
        }
        if let Some(rv) = meta(&new, "resourceVersion").filter(|s| !s.is_empty())
            && rv != old_rv
        {
            return Err(ApiError::conflict(&def.group, &def.resource, name));
        }
        if let Some(uid) = meta(&new, "uid").filter(|s| !s.is_empty())
            && Some(&uid) != meta(old, "uid").as_ref()
        {
            return Err(ApiError::conflict_msg(
                &def.group,
                &def.resource,
                name,
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta(old, "uid").unwrap_or_default()
                ),
            ));
        }
        if let Some(n) = meta(&new, "name").filter(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        if def.namespaced
            && let Some(n) = meta(&new, "namespace").filter(|n| !n.is_empty() && n != ns)
        {
            return Err(ApiError::bad_request(format!(
                "the namespace of the object ({n}) does not match the namespace on the URL ({ns})"
            )));
        }
        strategy::prepare_update(def, sub, &mut new, old);
        // server-owned metadata comes from the stored object
        {
            let m = meta_mut(&mut new);
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
                "name",
            ] {
                match old.get("metadata").and_then(|om| om.get(k)) {
                    Some(v) => {
                        m.insert(k.into(), v.clone());
                    }
                    None => {
                        m.remove(k);
                    }
                }
            }
            m.remove("selfLink");
        }
        if def.tracks_generation() && strategy::spec_changed(def, old, &new) {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            meta_mut(&mut new).insert("generation".into(), json!(g));
        }
        let now = now_rfc3339();
        if !ctx.apply {
            fields::record_write(def, sub, Some(old), &mut new, &ctx.manager, &now);
        }
        meta_mut(&mut new).insert("resourceVersion".into(), json!(old_rv));
        let mut causes = strategy::validate(def, &new, Some(old), sub);
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            let old_f: Vec<&Value> = old
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            let added = new
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|f| !old_f.contains(&f)));
            if added {
                causes.push(crate::error::cause(
                    "FieldValueForbidden",
                    "metadata.finalizers",
                    "Forbidden: no new finalizers can be added if the object is being deleted",
                ));
            }
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(&def.group, &def.kind, name, causes));
        }
        // a write that changes nothing is not a write: no new resourceVersion, no event
        if &new == old.as_ref() || ctx.dry_run {
            return Ok(new);
        }
        let rv = self.next_rv();
        meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
        let ns_key = if def.namespaced {
            ns.to_string()
        } else {
            String::new()
        };
        let key = (ns_key, name.to_string());
        let arc = Arc::new(new);
        // the last finalizer of an object marked for immediate deletion is gone: the object goes
        let grace_over = old
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            == Some(0);
        if arc.pointer("/metadata/deletionTimestamp").is_some()
            && finalizers(&arc) == 0
            && grace_over
        {
            // the last finalizer is gone: the object goes
            if let Some(m) = self.objects.get_mut(&def.storage) {
                m.remove(&key);
            }
            self.emit(
                &def.storage,
                ChangeKind::Deleted,
                arc.clone(),
                Some(old.clone()),
                rv,
            );
            self.after_removal(def, &arc, Propagation::Background);
        } else {
            self.store_modified(def, key, arc.clone(), old.clone(), rv);
        }
        Ok(arc.as_ref().clone())
    }
}
