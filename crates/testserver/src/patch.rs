//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902, with `test`), strategic merge
//! patch (built-in kinds; the directives kubectl sends) and the apply patch of server-side apply.

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult, Reason};
use crate::fields::{ListType, list_type};
use crate::resources::ResourceDef;

/// The patch flavours, by Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// application/merge-patch+json
    Merge,
    /// application/json-patch+json
    Json,
    /// application/strategic-merge-patch+json
    Strategic,
    /// application/apply-patch+yaml
    Apply,
}

impl PatchType {
    /// From a Content-Type header; 415 for anything else, like the real server.
    pub fn from_content_type(ct: &str, def: &ResourceDef) -> ApiResult<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        let t = match base {
            "application/merge-patch+json" => PatchType::Merge,
            "application/json-patch+json" => PatchType::Json,
            "application/strategic-merge-patch+json" if def.builtin.is_some() => {
                PatchType::Strategic
            }
            "application/apply-patch+yaml" | "application/apply-patch+json" => PatchType::Apply,
            _ => {
                let mut accepted = vec![
                    "application/json-patch+json",
                    "application/merge-patch+json",
                ];
                if def.builtin.is_some() {
                    accepted.push("application/strategic-merge-patch+json");
                }
                accepted.push("application/apply-patch+yaml");
                return Err(ApiError::new(
                    Reason::UnsupportedMediaType,
                    format!(
                        "the body of the request was in an unknown format - accepted media types include: {}",
                        accepted.join(", ")
                    ),
                ));
            }
        };
        Ok(t)
    }
}

/// Parse a JSON body (400 on bad JSON).
pub fn parse_json(body: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

/// Parse YAML or JSON (apply bodies, kubectl sends YAML).
pub fn parse_yaml(body: &[u8]) -> ApiResult<Value> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
}

/// Apply a non-apply patch to the current object (in its served view).
pub fn apply_patch(
    def: &ResourceDef,
    current: &Value,
    kind: PatchType,
    body: &[u8],
) -> ApiResult<Value> {
    let mut target = current.clone();
    match kind {
        PatchType::Merge => {
            let p = parse_json(body)?;
            if !p.is_object() {
                return Err(ApiError::bad_request("merge patch must be a JSON object"));
            }
            json_patch::merge(&mut target, &p);
        }
        PatchType::Json => {
            let p: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            json_patch::patch(&mut target, &p)
                .map_err(|e| ApiError::new(Reason::Invalid, e.to_string()))?;
        }
        PatchType::Strategic => {
            let p = parse_json(body)?;
            strategic(def, &mut target, &p, &mut Vec::new());
        }
        PatchType::Apply => {
            return Err(ApiError::internal(
                "apply patches go through server-side apply",
            ));
        }
    }
    Ok(target)
}

fn is_directive(k: &str) -> bool {
    k.starts_with('$')
}

/// Strategic merge: maps merge, lists with a merge key merge by key, `$patch`, `$retainKeys`,
/// `$deleteFromPrimitiveList/`, `$setElementOrder/` (order only, ignored) are understood.
pub fn strategic(def: &ResourceDef, target: &mut Value, patch: &Value, names: &mut Vec<String>) {
    let Value::Object(pm) = patch else {
        *target = patch.clone();
        return;
    };
    if pm.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut p = pm.clone();
        p.remove("$patch");
        *target = Value::Object(p);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(tm) = target else { return };
    for (k, pv) in pm {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Some(del)) = (tm.get_mut(field), pv.as_array()) {
                items.retain(|i| !del.contains(i));
            }
            continue;
        }
        if is_directive(k) {
            continue;
        }
        if pv.is_null() {
            tm.remove(k);
            continue;
        }
        if pv.get("$patch").and_then(Value::as_str) == Some("delete") {
            tm.remove(k);
            continue;
        }
        names.push(k.clone());
        match (tm.get_mut(k), pv) {
            (Some(tv @ Value::Object(_)), Value::Object(_)) => strategic(def, tv, pv, names),
            (Some(Value::Array(titems)), Value::Array(pitems)) => {
                merge_list(def, titems, pitems, names)
            }
            (_, Value::Object(_)) => {
                let mut fresh = Value::Object(Map::new());
                strategic(def, &mut fresh, pv, names);
                tm.insert(k.clone(), fresh);
            }
            (_, Value::Array(pitems)) => {
                let mut fresh = Vec::new();
                merge_list(def, &mut fresh, pitems, names);
                tm.insert(k.clone(), Value::Array(fresh));
            }
            _ => {
                tm.insert(k.clone(), pv.clone());
            }
        }
        names.pop();
    }
    if let Some(Value::Array(keep)) = pm.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        tm.retain(|k, _| keep.contains(&k.as_str()));
    }
}

fn merge_list(
    def: &ResourceDef,
    target: &mut Vec<Value>,
    patch: &[Value],
    names: &mut Vec<String>,
) {
    if patch
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *target = patch
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .cloned()
            .collect();
        return;
    }
    match list_type(def, names) {
        ListType::Atomic => {
            *target = patch
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .cloned()
                .collect()
        }
        ListType::Set => {
            for i in patch {
                if !target.contains(i) {
                    target.push(i.clone());
                }
            }
        }
        ListType::Map(keys) => {
            for item in patch {
                let same = |t: &Value| keys.iter().all(|k| t.get(k) == item.get(k));
                let pos = target.iter().position(same);
                let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                match (pos, delete) {
                    (Some(i), true) => {
                        target.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => strategic(def, &mut target[i], item, names),
                    (None, false) => {
                        let mut fresh = Value::Object(Map::new());
                        strategic(def, &mut fresh, item, names);
                        target.push(fresh);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::resources::builtins;
    use serde_json::json;

    fn pods() -> ResourceDef {
        builtins()
            .into_iter()
            .find(|d| d.resource == "pods")
            .unwrap()
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        let mut pod = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]},
                             "metadata": {"finalizers": ["f1"], "labels": {"x": "1", "y": "2"}}});
        let p = json!({"$setElementOrder/containers": [{"name": "a"}],
                       "spec": {"containers": [{"name": "a", "image": "z"}, {"name": "b", "$patch": "delete"}]},
                       "metadata": {"finalizers": ["f2"], "labels": {"x": null}}});
        strategic(&pods(), &mut pod, &p, &mut Vec::new());
        assert_eq!(
            pod["spec"]["containers"],
            json!([{"name": "a", "image": "z"}])
        );
        assert_eq!(pod["metadata"]["finalizers"], json!(["f1", "f2"]));
        assert_eq!(pod["metadata"]["labels"], json!({"y": "2"}));
    }

    #[test]
    fn json_patch_test_op_fails() {
        let cur = json!({"metadata": {"name": "a"}});
        let p = br#"[{"op": "test", "path": "/metadata/name", "value": "b"}]"#;
        let err = apply_patch(&pods(), &cur, PatchType::Json, p).unwrap_err();
        assert_eq!(err.code, 422);
    }

    #[test]
    fn unknown_patch_type_is_415() {
        assert_eq!(
            PatchType::from_content_type("text/plain", &pods())
                .unwrap_err()
                .code,
            415
        );
    }
}
