//! Field ownership (`metadata.managedFields`, FieldsV1) and server-side apply: who owns which
//! field, conflicts between managers, removal of fields a manager stopped applying, and the merge
//! of an applied configuration into the live object.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult, cause};
use crate::resources::ResourceDef;
use crate::schema;
use crate::store::Sub;

/// A path into an object in FieldsV1 segments: `f:name`, `k:{"name":"a"}`, `v:"x"`.
pub type Path = Vec<String>;
/// A set of owned paths; a path ending in `k:`/`v:` stands for the list item itself.
pub type FieldSet = BTreeSet<Path>;

/// How a list merges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// replaced whole
    Atomic,
    /// items identified by these key fields
    Map(Vec<String>),
    /// scalar items, union
    Set,
}

/// The list type of the list at `fields` (field names from the root, without list indexes).
pub fn list_type(def: &ResourceDef, fields: &[String]) -> ListType {
    if let Some(last) = fields.last() {
        if fields.len() == 2 && fields[0] == "metadata" {
            return match last.as_str() {
                "finalizers" => ListType::Set,
                "ownerReferences" => ListType::Map(vec!["uid".into()]),
                _ => ListType::Atomic,
            };
        }
        if def.builtin.is_none() {
            return def
                .schema
                .as_deref()
                .map_or(ListType::Atomic, |s| schema::list_type(s, fields));
        }
        let key = match last.as_str() {
            "containers"
            | "initContainers"
            | "ephemeralContainers"
            | "volumes"
            | "env"
            | "imagePullSecrets" => "name",
            "ports" if fields.len() >= 2 && fields[fields.len() - 2] != "spec" => "containerPort",
            // a Service's ports
            "ports" => "port",
            "volumeMounts" => "mountPath",
            "volumeDevices" => "devicePath",
            "conditions" | "addresses" => "type",
            "hostAliases" | "podIPs" | "hostIPs" => "ip",
            "finalizers" => return ListType::Set,
            _ => return ListType::Atomic,
        };
        return ListType::Map(vec![key.to_string()]);
    }
    ListType::Atomic
}

fn excluded(def: &ResourceDef, sub: Sub, fields: &[String]) -> bool {
    match fields {
        [top] if top == "apiVersion" || top == "kind" => true,
        [top, ..] if top == "status" => sub != Sub::Status && def.status_subresource,
        [top] if sub == Sub::Status && top != "status" => true,
        [m, f] if m == "metadata" => matches!(
            f.as_str(),
            "name"
                | "namespace"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "deletionTimestamp"
                | "deletionGracePeriodSeconds"
                | "managedFields"
                | "selfLink"
                | "generateName"
        ),
        [top, ..] if sub == Sub::Status && top != "status" => true,
        _ => false,
    }
}

fn item_key(item: &Value, keys: &[String]) -> String {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = item.get(k) {
            m.insert(k.clone(), v.clone());
        }
    }
    format!("k:{}", Value::Object(m))
}

/// The set of fields an object sets, as ownership sees them.
pub fn fields_of(def: &ResourceDef, sub: Sub, obj: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    let mut names = Vec::new();
    walk(def, sub, obj, &mut Vec::new(), &mut names, &mut out);
    out
}

fn walk(
    def: &ResourceDef,
    sub: Sub,
    v: &Value,
    path: &mut Path,
    names: &mut Vec<String>,
    out: &mut FieldSet,
) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                names.push(k.clone());
                if excluded(def, sub, names) || child.is_null() {
                    names.pop();
                    continue;
                }
                path.push(format!("f:{k}"));
                match child {
                    Value::Object(cm) if !cm.is_empty() => walk(def, sub, child, path, names, out),
                    Value::Array(_) => walk(def, sub, child, path, names, out),
                    _ => {
                        out.insert(path.clone());
                    }
                }
                path.pop();
                names.pop();
            }
        }
        Value::Array(items) => match list_type(def, names) {
            ListType::Atomic => {
                out.insert(path.clone());
            }
            ListType::Set => {
                for it in items {
                    path.push(format!("v:{it}"));
                    out.insert(path.clone());
                    path.pop();
                }
            }
            ListType::Map(keys) => {
                for it in items {
                    path.push(item_key(it, &keys));
                    out.insert(path.clone());
                    if it.is_object() {
                        walk(def, sub, it, path, names, out);
                    }
                    path.pop();
                }
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

fn find_item(items: &[Value], seg: &str) -> Option<usize> {
    if let Some(k) = seg.strip_prefix("k:") {
        let want: Value = serde_json::from_str(k).ok()?;
        let want = want.as_object()?;
        items
            .iter()
            .position(|it| want.iter().all(|(wk, wv)| it.get(wk) == Some(wv)))
    } else if let Some(v) = seg.strip_prefix("v:") {
        let want: Value = serde_json::from_str(v).ok()?;
        items.iter().position(|it| *it == want)
    } else {
        None
    }
}

/// The value at a path.
pub fn value_at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path {
        cur = match (seg.strip_prefix("f:"), cur) {
            (Some(f), Value::Object(m)) => m.get(f)?,
            (None, Value::Array(items)) => &items[find_item(items, seg)?],
            _ => return None,
        };
    }
    Some(cur)
}

fn remove_path(v: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for seg in parent {
        cur = match (seg.strip_prefix("f:"), cur) {
            (Some(f), Value::Object(m)) => match m.get_mut(f) {
                Some(c) => c,
                None => return,
            },
            (None, Value::Array(items)) => match find_item(items, seg) {
                Some(i) => &mut items[i],
                None => return,
            },
            _ => return,
        };
    }
    match (last.strip_prefix("f:"), cur) {
        (Some(f), Value::Object(m)) => {
            m.remove(f);
        }
        (None, Value::Array(items)) => {
            if let Some(i) = find_item(items, last) {
                items.remove(i);
            }
        }
        _ => {}
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: String,
    set: FieldSet,
}

fn parse_tree(node: &Value, path: &mut Path, out: &mut FieldSet) {
    let Some(m) = node.as_object() else { return };
    for (k, child) in m {
        if k == "." {
            out.insert(path.clone());
            continue;
        }
        path.push(k.clone());
        if child.as_object().is_some_and(Map::is_empty) {
            out.insert(path.clone());
        } else {
            parse_tree(child, path, out);
        }
        path.pop();
    }
}

fn to_tree(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for p in set {
        let is_item = p.last().is_some_and(|s| s.starts_with("k:"));
        insert_path(&mut root, p, is_item);
    }
    Value::Object(root)
}

fn insert_path(node: &mut Map<String, Value>, p: &[String], is_item: bool) {
    match p.split_first() {
        None => {
            if is_item {
                node.insert(".".into(), json!({}));
            }
        }
        Some((seg, rest)) => {
            if let Value::Object(child) = node.entry(seg.clone()).or_insert_with(|| json!({})) {
                insert_path(child, rest, is_item);
            }
        }
    }
}

fn entries(obj: Option<&Value>) -> Vec<Entry> {
    let Some(list) = obj
        .and_then(|o| o.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .map(|e| {
            let mut set = FieldSet::new();
            parse_tree(&e["fieldsV1"], &mut Vec::new(), &mut set);
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            Entry {
                manager: s("manager"),
                operation: s("operation"),
                api_version: s("apiVersion"),
                time: s("time"),
                subresource: s("subresource"),
                set,
            }
        })
        .collect()
}

fn store_entries(obj: &mut Value, list: Vec<Entry>) {
    let list: Vec<Value> = list
        .into_iter()
        .filter(|e| !e.set.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_tree(&e.set),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            m.remove("managedFields");
        } else {
            m.insert("managedFields".into(), Value::Array(list));
        }
    }
}

fn sub_name(sub: Sub) -> String {
    if sub == Sub::Status {
        "status".into()
    } else {
        String::new()
    }
}

/// Record a non-apply write by `manager`: fields it changed become its own (operation Update)
/// and leave other managers; fields that disappeared leave everyone.
pub fn record_write(
    def: &ResourceDef,
    sub: Sub,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    now: &str,
) {
    let mut list = entries(old);
    let old_set = old.map(|o| fields_of(def, sub, o)).unwrap_or_default();
    let new_set = fields_of(def, sub, new);
    let is_item = |p: &Path| {
        p.last()
            .is_some_and(|s| s.starts_with("k:") || s.starts_with("v:"))
    };
    // a list item changes hands only when it is new; a changed field inside it is owned alone
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| match old {
            None => true,
            Some(_) if is_item(p) => !old_set.contains(*p),
            Some(o) => value_at(o, p) != value_at(new, p),
        })
        .cloned()
        .collect();
    let gone: FieldSet = old_set.difference(&new_set).cloned().collect();
    let api_version = new["apiVersion"].as_str().unwrap_or_default().to_string();
    let subresource = sub_name(sub);
    for e in &mut list {
        let before = e.set.len();
        e.set
            .retain(|p| !changed.contains(p) && !gone.iter().any(|g| p.starts_with(g)));
        if e.set.len() != before {
            e.time = now.to_string();
        }
    }
    if !changed.is_empty() {
        match list.iter_mut().find(|e| {
            e.manager == manager && e.operation == "Update" && e.subresource == subresource
        }) {
            Some(e) => {
                e.set.extend(changed);
                e.time = now.to_string();
                e.api_version = api_version;
            }
            None => list.push(Entry {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version,
                time: now.to_string(),
                subresource,
                set: changed,
            }),
        }
    }
    store_entries(new, list);
}

/// Server-side apply of `applied` by `manager` onto `live` (None: create). Returns the merged
/// object with its managedFields, or 409 with the conflicting fields when not forced.
pub fn apply(
    def: &ResourceDef,
    sub: Sub,
    live: Option<&Value>,
    mut applied: Value,
    manager: &str,
    force: bool,
    now: &str,
) -> ApiResult<Value> {
    if applied
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
        || applied
            .get("kind")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        return Err(ApiError::bad_request(
            "invalid object type: apiVersion and kind must be set in an applied configuration",
        ));
    }
    if let Some(m) = applied.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    let applied_set = fields_of(def, sub, &applied);
    let subresource = sub_name(sub);
    let mut list = entries(live);
    let empty = json!({});
    let live_v = live.unwrap_or(&empty);
    let mut conflicts = Vec::new();
    for e in &mut list {
        if e.manager == manager {
            continue;
        }
        let clashing: Vec<Path> = e
            .set
            .intersection(&applied_set)
            .filter(|p| {
                !p.last()
                    .is_some_and(|s| s.starts_with("k:") || s.starts_with("v:"))
            })
            .filter(|p| value_at(live_v, p) != value_at(&applied, p))
            .cloned()
            .collect();
        if force {
            for p in &clashing {
                e.set.remove(p);
            }
        } else {
            for p in clashing {
                conflicts.push((e.manager.clone(), e.api_version.clone(), p));
            }
        }
    }
    if !conflicts.is_empty() {
        let causes: Vec<_> = conflicts
            .iter()
            .map(|(m, v, p)| {
                cause(
                    "FieldManagerConflict",
                    dotted(p),
                    format!("conflict with \"{m}\" using {v}"),
                )
            })
            .collect();
        let name = applied
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let text = if conflicts.len() == 1 {
            let (m, v, p) = &conflicts[0];
            format!("conflict with \"{m}\" using {v}: {}", dotted(p))
        } else {
            let mut by_manager: Vec<(String, String, Vec<String>)> = Vec::new();
            for (m, v, p) in &conflicts {
                match by_manager.iter_mut().find(|(bm, bv, _)| bm == m && bv == v) {
                    Some((_, _, ps)) => ps.push(dotted(p)),
                    None => by_manager.push((m.clone(), v.clone(), vec![dotted(p)])),
                }
            }
            let parts: Vec<String> = by_manager
                .iter()
                .map(|(m, v, ps)| {
                    format!("conflicts with \"{m}\" using {v}:\n- {}", ps.join("\n- "))
                })
                .collect();
            parts.join("\n")
        };
        let mut e = ApiError::conflict_msg(
            &def.group,
            &def.resource,
            &name,
            format!(
                "Apply failed with {} conflict{}: {text}",
                conflicts.len(),
                if conflicts.len() == 1 { "" } else { "s" }
            ),
        );
        e.causes = causes;
        return Err(e);
    }
    let prior_entry = list
        .iter()
        .find(|e| e.manager == manager && e.operation == "Apply" && e.subresource == subresource)
        .cloned();
    let prior: FieldSet = prior_entry
        .as_ref()
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let others: FieldSet = list
        .iter()
        .filter(|e| {
            !(e.manager == manager && e.operation == "Apply" && e.subresource == subresource)
        })
        .flat_map(|e| e.set.iter().cloned())
        .collect();
    let mut merged = live.cloned().unwrap_or_else(|| json!({}));
    let mut drop: Vec<&Path> = prior
        .iter()
        .filter(|p| !applied_set.contains(*p) && !others.contains(*p) && !is_item_key(p))
        .collect();
    // whole list items first; their fields then find nothing left to remove
    drop.sort_by_key(|p| p.len());
    for p in drop {
        remove_path(&mut merged, p);
    }
    merge_into(def, &mut merged, &applied, &mut Vec::new());
    let api_version = applied["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    list.retain(|e| {
        !(e.manager == manager && e.operation == "Apply" && e.subresource == subresource)
    });
    // an apply that changes nothing must not change the object (no new resourceVersion)
    let time = match prior_entry {
        Some(e) if e.set == applied_set => e.time,
        _ => now.to_string(),
    };
    list.push(Entry {
        manager: manager.to_string(),
        operation: "Apply".into(),
        api_version,
        time,
        subresource,
        set: applied_set,
    });
    store_entries(&mut merged, list);
    Ok(merged)
}

/// A key field of a list item (`k:{"name":"a"}` / `f:name`): it goes with its item, never alone.
fn is_item_key(p: &Path) -> bool {
    let [.., parent, last] = p.as_slice() else {
        return false;
    };
    let (Some(item), Some(field)) = (parent.strip_prefix("k:"), last.strip_prefix("f:")) else {
        return false;
    };
    serde_json::from_str::<Value>(item).is_ok_and(|k| k.get(field).is_some())
}

fn dotted(p: &Path) -> String {
    let mut s = String::new();
    for seg in p {
        match seg.strip_prefix("f:") {
            Some(f) => {
                s.push('.');
                s.push_str(f);
            }
            None => {
                s.push('[');
                s.push_str(&seg[2..]);
                s.push(']');
            }
        }
    }
    s
}

/// Merge an applied configuration into an object: maps recursively, associative lists by key,
/// sets as unions, everything else replaced.
pub fn merge_into(def: &ResourceDef, live: &mut Value, applied: &Value, names: &mut Vec<String>) {
    match (live, applied) {
        (Value::Object(lm), Value::Object(am)) => {
            for (k, av) in am {
                if av.is_null() {
                    lm.remove(k);
                    continue;
                }
                names.push(k.clone());
                match lm.get_mut(k) {
                    Some(lv)
                        if (lv.is_object() && av.is_object())
                            || (lv.is_array() && av.is_array()) =>
                    {
                        merge_into(def, lv, av, names)
                    }
                    _ => {
                        lm.insert(k.clone(), av.clone());
                    }
                }
                names.pop();
            }
        }
        (Value::Array(litems), Value::Array(aitems)) => match list_type(def, names) {
            ListType::Atomic => *litems = aitems.clone(),
            ListType::Set => {
                for it in aitems {
                    if !litems.contains(it) {
                        litems.push(it.clone());
                    }
                }
            }
            ListType::Map(keys) => {
                for it in aitems {
                    let seg = item_key(it, &keys);
                    match find_item(litems, &seg) {
                        Some(i) => merge_into(def, &mut litems[i], it, names),
                        None => litems.push(it.clone()),
                    }
                }
            }
        },
        (live, applied) => *live = applied.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::resources::builtins;

    fn pods() -> ResourceDef {
        builtins()
            .into_iter()
            .find(|d| d.resource == "pods")
            .unwrap()
    }

    fn cfg(containers: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers}})
    }

    #[test]
    fn apply_merges_keyed_lists_and_drops_what_is_no_longer_applied() {
        let def = pods();
        let now = "2025-01-01T00:00:00Z";
        let a = cfg(json!([{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]));
        let live = apply(&def, Sub::Main, None, a, "m1", false, now).unwrap();
        // another manager adds its own container: kept next to m1's
        let other = cfg(json!([{"name": "c", "image": "z"}]));
        let live = apply(&def, Sub::Main, Some(&live), other, "m2", false, now).unwrap();
        let names: Vec<&str> = live["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        // m1 stops applying b: it goes, c stays
        let shrink = cfg(json!([{"name": "a", "image": "x"}]));
        let live = apply(&def, Sub::Main, Some(&live), shrink, "m1", false, now).unwrap();
        let names: Vec<&str> = live["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "c"]);
        // m2 changing a's image conflicts with m1
        let steal = cfg(json!([{"name": "a", "image": "w"}]));
        let err = apply(&def, Sub::Main, Some(&live), steal, "m2", false, now).unwrap_err();
        assert_eq!(err.code, 409);
        assert!(
            err.message.contains(r#"conflict with "m1""#),
            "{}",
            err.message
        );
        assert_eq!(
            err.causes[0].field,
            r#".spec.containers[{"name":"a"}].image"#
        );
    }

    #[test]
    fn fieldsv1_round_trips() {
        let def = pods();
        let obj = cfg(json!([{"name": "a", "image": "x"}]));
        let set = fields_of(&def, Sub::Main, &obj);
        let mut back = FieldSet::new();
        parse_tree(&to_tree(&set), &mut Vec::new(), &mut back);
        assert_eq!(set, back);
        let tree = to_tree(&set);
        assert_eq!(
            tree["f:spec"]["f:containers"][r#"k:{"name":"a"}"#]["."],
            json!({})
        );
    }

    #[test]
    fn updates_take_ownership_of_changed_fields() {
        let def = pods();
        let now = "2025-01-01T00:00:00Z";
        let live = apply(
            &def,
            Sub::Main,
            None,
            cfg(json!([{"name": "a", "image": "x"}])),
            "m1",
            false,
            now,
        )
        .unwrap();
        let mut changed = live.clone();
        changed["spec"]["containers"][0]["image"] = json!("y");
        record_write(&def, Sub::Main, Some(&live), &mut changed, "editor", now);
        let managers: Vec<(String, String)> = entries(Some(&changed))
            .into_iter()
            .map(|e| (e.manager, e.operation))
            .collect();
        assert_eq!(
            managers,
            [
                ("m1".to_string(), "Apply".to_string()),
                ("editor".to_string(), "Update".to_string())
            ]
        );
        let err = apply(
            &def,
            Sub::Main,
            Some(&changed),
            cfg(json!([{"name": "a", "image": "x"}])),
            "m1",
            false,
            now,
        )
        .unwrap_err();
        assert!(err.message.contains(r#"conflict with "editor""#));
    }
}
