//! Kind-specific write rules, after the real server's registry strategies: what create resets,
//! what an update may change (status isolation, immutable pod spec), when generation moves,
//! and validation.

use serde_json::{Value, json};

use crate::error::{Cause, cause};
use crate::resources::{Builtin, ResourceDef};
use crate::schema;
use crate::store::{Sub, now_rfc3339};

const NS_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Reset what a create may not set.
pub fn prepare_create(def: &ResourceDef, obj: &mut Value) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    match def.builtin {
        None if def.status_subresource => {
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
        }
        Some(Builtin::Pod) => {
            let qos = qos_class(obj);
            obj["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        Some(Builtin::Namespace) => {
            obj["metadata"]["labels"][NS_NAME_LABEL] = json!(name);
            if obj.pointer("/spec/finalizers").is_none() {
                obj["spec"]["finalizers"] = json!(["kubernetes"]);
            }
            obj["status"] = json!({"phase": "Active"});
        }
        Some(Builtin::Crd) => {
            default_crd(obj);
            obj["status"] = json!({});
            refresh_crd_status(obj);
        }
        Some(Builtin::Deployment) | Some(Builtin::DaemonSet) | Some(Builtin::StatefulSet) => {
            obj["status"] = json!({});
        }
        Some(Builtin::Service) => {
            let headless = obj
                .pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .is_some();
            let external =
                obj.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName");
            if !headless && !external {
                // a stable address from 10.96.0.0/16, derived from the name
                let h = name.bytes().fold(2166136261u32, |h, b| {
                    (h ^ u32::from(b)).wrapping_mul(16777619)
                });
                let ip = format!("10.96.{}.{}", (h >> 8) & 0xff, (h & 0xff).max(1));
                obj["spec"]["clusterIP"] = json!(ip);
                obj["spec"]["clusterIPs"] = json!([ip]);
            }
            obj["status"] = json!({"loadBalancer": {}});
        }
        _ => {}
    }
}

/// Keep what an update of `sub` may not change.
pub fn prepare_update(def: &ResourceDef, sub: Sub, new: &mut Value, old: &Value) {
    match sub {
        // the binding handler computed the whole pod
        Sub::Binding => {}
        Sub::Status => {
            let status = new.get("status").cloned();
            // server-side apply computed the field ownership of this write; other writers' entries
            // are recomputed from the stored object afterwards
            let managed = new.pointer("/metadata/managedFields").cloned();
            *new = old.clone();
            if let Some(m) = managed {
                new["metadata"]["managedFields"] = m;
            }
            match status {
                Some(s) => new["status"] = s,
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            // the client's resourceVersion was checked already; metadata comes from the stored object
        }
        Sub::Main => {
            if def.status_subresource {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Some(o) = new.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
            }
            match def.builtin {
                Some(Builtin::Namespace) => {
                    let name = old
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    new["metadata"]["labels"][NS_NAME_LABEL] = json!(name);
                    new["spec"] = old.get("spec").cloned().unwrap_or_else(|| json!({}));
                }
                Some(Builtin::Crd) => {
                    default_crd(new);
                    refresh_crd_status(new);
                }
                _ => {}
            }
        }
    }
}

/// Whether a change moves `metadata.generation`: the spec (everything but metadata and status)
/// for resources with a status subresource, otherwise everything but metadata.
pub fn spec_changed(def: &ResourceDef, old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("metadata");
            if def.status_subresource {
                o.remove("status");
            }
        }
        v
    };
    strip(old) != strip(new)
}

fn default_crd(obj: &mut Value) {
    let kind = obj
        .pointer("/spec/names/kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if obj.pointer("/spec/names/singular").is_none() && !kind.is_empty() {
        obj["spec"]["names"]["singular"] = json!(kind.to_lowercase());
    }
    if obj.pointer("/spec/names/listKind").is_none() && !kind.is_empty() {
        obj["spec"]["names"]["listKind"] = json!(format!("{kind}List"));
    }
    if obj.pointer("/spec/conversion").is_none() && obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"]["conversion"] = json!({"strategy": "None"});
    }
}

fn refresh_crd_status(obj: &mut Value) {
    let now = now_rfc3339();
    let names = obj
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let storage: Option<String> = obj
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|vs| vs.iter().find(|v| v["storage"].as_bool() == Some(true)))
        .and_then(|v| v["name"].as_str())
        .map(str::to_string);
    let mut stored: Vec<Value> = obj
        .pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(s) = storage
        && !stored.contains(&json!(s))
    {
        stored.push(json!(s));
    }
    let keep_time = |t: &str| -> String {
        obj.pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == t))
            .and_then(|c| c["lastTransitionTime"].as_str())
            .map_or_else(|| now.clone(), str::to_string)
    };
    let conditions = json!([
        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": keep_time("NamesAccepted")},
        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": keep_time("Established")}
    ]);
    obj["status"] =
        json!({"acceptedNames": names, "storedVersions": stored, "conditions": conditions});
}

fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| pod.pointer(&format!("/spec/{k}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let res = |c: &Value, what: &str| {
        c.pointer(&format!("/resources/{what}"))
            .and_then(Value::as_object)
            .filter(|m| !m.is_empty())
            .cloned()
    };
    if containers
        .iter()
        .all(|c| res(c, "requests").is_none() && res(c, "limits").is_none())
    {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        let limits = res(c, "limits").unwrap_or_default();
        let requests = res(c, "requests").unwrap_or_else(|| limits.clone());
        ["cpu", "memory"]
            .iter()
            .all(|r| limits.get(*r).is_some() && limits.get(*r) == requests.get(*r))
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// DNS-1123 subdomain.
pub fn is_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_label_part)
}

fn is_label_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// DNS-1123 label.
pub fn is_label(s: &str) -> bool {
    is_label_part(s)
}

fn label_value_ok(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// Validate the object about to be stored; empty means valid.
pub fn validate(def: &ResourceDef, obj: &Value, old: Option<&Value>, sub: Sub) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if old.is_none() {
        let ok = match def.builtin {
            Some(Builtin::Namespace) => is_label(name),
            _ => is_subdomain(name),
        };
        if !ok {
            causes.push(cause(
                "FieldValueInvalid",
                "metadata.name",
                format!(
                    "Invalid value: \"{name}\": a lowercase RFC 1123 {} must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                    if def.builtin == Some(Builtin::Namespace) { "label" } else { "subdomain" }
                ),
            ));
        }
    }
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            let vs = v.as_str().unwrap_or_default();
            if !label_value_ok(vs) {
                causes.push(cause(
                    "FieldValueInvalid",
                    "metadata.labels",
                    format!("Invalid value: \"{vs}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
                ));
            }
            if crate::selectors::LabelSelector::parse(k).is_err()
                || k.contains([',', '=', '!', ' '])
            {
                causes.push(cause("FieldValueInvalid", "metadata.labels", format!("Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.'")));
            }
        }
    }
    match def.builtin {
        Some(Builtin::Pod) => validate_pod(obj, old.filter(|_| sub != Sub::Binding), &mut causes),
        Some(Builtin::Crd) => validate_crd(obj, old, &mut causes),
        None => {
            if let Some(s) = &def.schema {
                causes.extend(schema::validate(s, obj));
                // CEL rules only run on objects that pass the structural checks, as on a real server
                if causes.is_empty()
                    && let Some(compiled) = &def.cel
                {
                    causes.extend(crate::cel::validate(s, compiled, obj, old));
                }
            }
        }
        _ => {}
    }
    causes
}

fn validate_pod(obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let containers = obj.pointer("/spec/containers").and_then(Value::as_array);
    match containers {
        None => causes.push(cause(
            "FieldValueRequired",
            "spec.containers",
            "Required value",
        )),
        Some(cs) if cs.is_empty() => causes.push(cause(
            "FieldValueRequired",
            "spec.containers",
            "Required value",
        )),
        Some(cs) => {
            for (i, c) in cs.iter().enumerate() {
                let n = c["name"].as_str().unwrap_or_default();
                if n.is_empty() {
                    causes.push(cause(
                        "FieldValueRequired",
                        format!("spec.containers[{i}].name"),
                        "Required value",
                    ));
                } else if !is_label(n) {
                    causes.push(cause("FieldValueInvalid", format!("spec.containers[{i}].name"), format!("Invalid value: \"{n}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'")));
                }
                if c["image"].as_str().unwrap_or_default().is_empty() {
                    causes.push(cause(
                        "FieldValueRequired",
                        format!("spec.containers[{i}].image"),
                        "Required value",
                    ));
                }
            }
        }
    }
    if let Some(old) = old {
        // only images, activeDeadlineSeconds and tolerations may change in a pod's spec
        let mutable = |v: &Value| -> Value {
            let mut s = v.get("spec").cloned().unwrap_or_default();
            for list in ["containers", "initContainers"] {
                if let Some(cs) = s.get_mut(list).and_then(Value::as_array_mut) {
                    for c in cs {
                        if let Some(o) = c.as_object_mut() {
                            o.remove("image");
                        }
                    }
                }
            }
            if let Some(o) = s.as_object_mut() {
                o.remove("activeDeadlineSeconds");
                o.remove("tolerations");
            }
            s
        };
        if mutable(old) != mutable(obj) {
            causes.push(cause(
                "FieldValueForbidden",
                "spec",
                "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
            ));
        }
    }
}

fn validate_crd(obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = spec
        .pointer("/names/plural")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = spec
        .pointer("/names/kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if group.is_empty() {
        causes.push(cause("FieldValueRequired", "spec.group", "Required value"));
    }
    if plural.is_empty() {
        causes.push(cause(
            "FieldValueRequired",
            "spec.names.plural",
            "Required value",
        ));
    }
    if kind.is_empty() {
        causes.push(cause(
            "FieldValueRequired",
            "spec.names.kind",
            "Required value",
        ));
    }
    if name != format!("{plural}.{group}") {
        causes.push(cause(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    match spec["scope"].as_str() {
        Some("Namespaced") | Some("Cluster") => {}
        _ => causes.push(cause(
            "FieldValueNotSupported",
            "spec.scope",
            "Unsupported value: supported values: \"Cluster\", \"Namespaced\"",
        )),
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        causes.push(cause(
            "FieldValueRequired",
            "spec.versions",
            "Required value: must have exactly one version marked as storage version",
        ));
    }
    let storage = versions
        .iter()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .count();
    if !versions.is_empty() && storage != 1 {
        causes.push(cause(
            "FieldValueInvalid",
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        if v.pointer("/schema/openAPIV3Schema").is_none() {
            causes.push(cause(
                "FieldValueRequired",
                format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "Required value: schemas are required",
            ));
        }
    }
    if let Some(old) = old
        && old["spec"]["scope"] != spec["scope"]
    {
        causes.push(cause(
            "FieldValueInvalid",
            "spec.scope",
            "Invalid value: field is immutable",
        ));
    }
}
