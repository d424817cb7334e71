//! Decoding of request bodies as the real server decodes them: built-in kinds through their typed
//! Go-equivalent structs (k8s-openapi), which drops unknown fields and refuses wrong types;
//! custom resources through their structural schema (pruning, defaulting). Also the conversion
//! between a storage and its served views (CR versions, events.k8s.io/v1 Events).

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::resources::{Builtin, ResourceDef};
use crate::schema;

/// The `fieldValidation` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// unknown fields are an error (400)
    Strict,
    /// unknown fields are dropped with a warning (the default)
    Warn,
    /// unknown fields are dropped silently
    Ignore,
}

impl FieldValidation {
    /// Parse the query value (default Warn).
    pub fn parse(s: Option<&str>) -> ApiResult<Self> {
        match s {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(o) => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of Strict, Warn, Ignore, got {o}"
            ))),
        }
    }
}

fn roundtrip<T: DeserializeOwned + Serialize>(def: &ResourceDef, v: &Value) -> ApiResult<Value> {
    let typed: T = serde_json::from_value(v.clone()).map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version \"{ver}\" cannot be handled as a {kind}: {e}",
            kind = def.kind,
            ver = def.version
        ))
    })?;
    serde_json::to_value(typed).map_err(|e| ApiError::internal(e.to_string()))
}

/// Paths present (non-null) in `input` but absent from `output`.
fn unknown_fields(input: &Value, output: &Value, path: &str, out: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            for (k, v) in i {
                if v.is_null() {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match o.get(k) {
                    None => out.push(p),
                    Some(ov) => unknown_fields(v, ov, &p, out),
                }
            }
        }
        (Value::Array(i), Value::Array(o)) => {
            for (n, (iv, ov)) in i.iter().zip(o).enumerate() {
                unknown_fields(iv, ov, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

fn check_type(def: &ResourceDef, obj: &Value) -> ApiResult<()> {
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str)
        && av != def.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            def.api_version()
        )));
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str)
        && k != def.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            def.kind
        )));
    }
    Ok(())
}

/// Decode a desired object (body of a create/update, or result of a patch) in the served view
/// of `def`; returns the object in storage form and the warnings to send.
pub fn decode(
    def: &ResourceDef,
    mut obj: Value,
    fv: FieldValidation,
) -> ApiResult<(Value, Vec<String>)> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request is not a JSON object",
        ));
    }
    check_type(def, &obj)?;
    obj["apiVersion"] = json!(def.api_version());
    obj["kind"] = json!(def.kind);
    use k8s_openapi::api as k;
    let out = match def.builtin {
        Some(Builtin::Pod) => roundtrip::<k::core::v1::Pod>(def, &obj)?,
        Some(Builtin::Namespace) => roundtrip::<k::core::v1::Namespace>(def, &obj)?,
        Some(Builtin::Node) => roundtrip::<k::core::v1::Node>(def, &obj)?,
        Some(Builtin::Event) => roundtrip::<k::core::v1::Event>(def, &obj)?,
        Some(Builtin::EventV1) => roundtrip::<k::events::v1::Event>(def, &obj)?,
        Some(Builtin::ConfigMap) => roundtrip::<k::core::v1::ConfigMap>(def, &obj)?,
        Some(Builtin::Secret) => roundtrip::<k::core::v1::Secret>(def, &obj)?,
        Some(Builtin::ServiceAccount) => roundtrip::<k::core::v1::ServiceAccount>(def, &obj)?,
        Some(Builtin::Lease) => roundtrip::<k::coordination::v1::Lease>(def, &obj)?,
        Some(Builtin::Service) => roundtrip::<k::core::v1::Service>(def, &obj)?,
        Some(Builtin::Deployment) => roundtrip::<k::apps::v1::Deployment>(def, &obj)?,
        Some(Builtin::DaemonSet) => roundtrip::<k::apps::v1::DaemonSet>(def, &obj)?,
        Some(Builtin::StatefulSet) => roundtrip::<k::apps::v1::StatefulSet>(def, &obj)?,
        Some(Builtin::ClusterRole) => roundtrip::<k::rbac::v1::ClusterRole>(def, &obj)?,
        Some(Builtin::ClusterRoleBinding) => roundtrip::<k::rbac::v1::ClusterRoleBinding>(def, &obj)?,
        Some(Builtin::Role) => roundtrip::<k::rbac::v1::Role>(def, &obj)?,
        Some(Builtin::RoleBinding) => roundtrip::<k::rbac::v1::RoleBinding>(def, &obj)?,
        Some(Builtin::Crd) => roundtrip::<
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
        >(def, &obj)?,
        None => {
            let mut o = obj.clone();
            if let Some(m) = obj.get("metadata") {
                let meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta =
                    serde_json::from_value(m.clone()).map_err(|e| ApiError::bad_request(format!("metadata: {e}")))?;
                o["metadata"] = serde_json::to_value(meta).map_err(|e| ApiError::internal(e.to_string()))?;
            }
            if let Some(s) = &def.schema {
                schema::prune_and_default(s, &mut o);
            }
            o
        }
    };
    let mut unknown = Vec::new();
    unknown_fields(&obj, &out, "", &mut unknown);
    let mut warnings = Vec::new();
    match fv {
        FieldValidation::Strict if !unknown.is_empty() => {
            let list: Vec<String> = unknown
                .iter()
                .map(|u| format!("unknown field \"{u}\""))
                .collect();
            return Err(ApiError::bad_request(format!(
                ".: strict decoding error: {}",
                list.join(", ")
            )));
        }
        FieldValidation::Warn => {
            warnings.extend(unknown.iter().map(|u| format!("unknown field \"{u}\"")))
        }
        _ => {}
    }
    let mut out = out;
    match def.builtin {
        Some(Builtin::Pod) => default_pod(&mut out),
        Some(Builtin::Secret) => secret_string_data(&mut out),
        Some(Builtin::Deployment) | Some(Builtin::StatefulSet) => {
            if let Some(spec) = out.get_mut("spec").filter(|s| s.is_object()) {
                set_default(spec, "replicas", json!(1));
                set_default(spec, "revisionHistoryLimit", json!(10));
            }
        }
        Some(Builtin::Service) => {
            if let Some(spec) = out.get_mut("spec").filter(|s| s.is_object()) {
                set_default(spec, "type", json!("ClusterIP"));
                set_default(spec, "sessionAffinity", json!("None"));
                if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports {
                        set_default(p, "protocol", json!("TCP"));
                        let port = p.get("port").cloned().unwrap_or(Value::Null);
                        set_default(p, "targetPort", port);
                    }
                }
            }
        }
        Some(Builtin::EventV1) => out = event_v1_to_core(out),
        _ => {}
    }
    Ok((out, warnings))
}

fn set_default(v: &mut Value, key: &str, d: Value) {
    if let Some(m) = v.as_object_mut() {
        m.entry(key.to_string()).or_insert(d);
    }
}

fn default_pod(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "enableServiceLinks", json!(true));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                let image = c["image"].as_str().unwrap_or_default().to_string();
                let tag = image
                    .rsplit('/')
                    .next()
                    .and_then(|last| last.split_once(':'))
                    .map(|(_, t)| t.to_string());
                let policy = if image.contains('@') || tag.as_deref().is_some_and(|t| t != "latest")
                {
                    "IfNotPresent"
                } else {
                    "Always"
                };
                set_default(c, "imagePullPolicy", json!(policy));
                set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
                set_default(c, "terminationMessagePolicy", json!("File"));
                set_default(c, "resources", json!({}));
            }
        }
    }
}

fn secret_string_data(secret: &mut Value) {
    if secret
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        secret["type"] = json!("Opaque");
    }
    let Some(Value::Object(sd)) = secret.as_object_mut().and_then(|m| m.remove("stringData"))
    else {
        return;
    };
    let mut data: Map<String, Value> = secret
        .get("data")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (k, v) in sd {
        let bytes = k8s_openapi::ByteString(v.as_str().unwrap_or_default().as_bytes().to_vec());
        if let Ok(enc) = serde_json::to_value(bytes) {
            data.insert(k, enc);
        }
    }
    secret["data"] = Value::Object(data);
}

const EVENT_RENAMES: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("count", "deprecatedCount"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("source", "deprecatedSource"),
    ("reportingComponent", "reportingController"),
];

fn event_v1_to_core(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        for (core, v1) in EVENT_RENAMES {
            if let Some(x) = m.remove(v1) {
                m.insert(core.to_string(), x);
            }
        }
        m.insert("apiVersion".into(), json!("v1"));
    }
    v
}

fn event_core_to_v1(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        for (core, v1) in EVENT_RENAMES {
            if let Some(x) = m.remove(core) {
                m.insert(v1.to_string(), x);
            }
        }
        m.insert("apiVersion".into(), json!("events.k8s.io/v1"));
    }
    v
}

/// The stored object as `def` serves it.
pub fn to_view(def: &ResourceDef, stored: &Value) -> Value {
    match def.builtin {
        Some(Builtin::EventV1) => event_core_to_v1(stored.clone()),
        None => {
            let mut v = stored.clone();
            v["apiVersion"] = json!(def.api_version());
            v
        }
        _ => stored.clone(),
    }
}
