//! Just enough of the Kubernetes protobuf encoding to read the bodies kubectl's typed clients
//! send (`kubectl create namespace|configmap|secret|serviceaccount`): the `k8s\0` envelope
//! (`runtime.Unknown`) and the fields of those four kinds' messages. Anything else gets 415.

use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult, Reason};

fn unsupported(what: &str) -> ApiError {
    ApiError::new(
        Reason::UnsupportedMediaType,
        format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml ({what} in protobuf is not supported by rangepool-testserver)"
        ),
    )
}

/// One protobuf field: number and raw value (varints as numbers, length-delimited as bytes).
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i)?;
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn fields(b: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let tag = varint(b, &mut i)?;
        let (num, wt) = (tag >> 3, tag & 7);
        match wt {
            0 => out.push((num, Field::Varint(varint(b, &mut i)?))),
            2 => {
                let len = usize::try_from(varint(b, &mut i)?).ok()?;
                let end = i.checked_add(len).filter(|e| *e <= b.len())?;
                out.push((num, Field::Bytes(&b[i..end])));
                i = end;
            }
            1 => i += 8,
            5 => i += 4,
            _ => return None,
        }
    }
    Some(out)
}

fn string(f: &Field<'_>) -> String {
    match f {
        Field::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Field::Varint(v) => v.to_string(),
    }
}

fn map_entry(f: &Field<'_>, bytes_value: bool) -> Option<(String, Value)> {
    let Field::Bytes(b) = f else { return None };
    let mut key = String::new();
    let mut value = json!("");
    for (n, v) in fields(b)? {
        match (n, &v) {
            (1, _) => key = string(&v),
            (2, Field::Bytes(raw)) if bytes_value => {
                value = serde_json::to_value(k8s_openapi::ByteString(raw.to_vec())).ok()?
            }
            (2, _) => value = json!(string(&v)),
            _ => {}
        }
    }
    Some((key, value))
}

fn object_meta(b: &[u8]) -> Option<Value> {
    let mut m = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut finalizers = Vec::new();
    for (n, v) in fields(b)? {
        match n {
            1 => {
                m.insert("name".into(), json!(string(&v)));
            }
            2 => {
                m.insert("generateName".into(), json!(string(&v)));
            }
            3 => {
                m.insert("namespace".into(), json!(string(&v)));
            }
            11 => {
                let (k, val) = map_entry(&v, false)?;
                labels.insert(k, val);
            }
            12 => {
                let (k, val) = map_entry(&v, false)?;
                annotations.insert(k, val);
            }
            14 => finalizers.push(json!(string(&v))),
            _ => {}
        }
    }
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    Some(Value::Object(m))
}

fn delete_options(raw: &[u8]) -> Option<Value> {
    let mut o = json!({"apiVersion": "v1", "kind": "DeleteOptions"});
    let mut dry_run = Vec::new();
    for (n, v) in fields(raw)? {
        match (n, &v) {
            (1, Field::Varint(g)) => o["gracePeriodSeconds"] = json!(*g as i64),
            (2, Field::Bytes(p)) => {
                for (pn, pv) in fields(p)? {
                    match pn {
                        1 => o["preconditions"]["uid"] = json!(string(&pv)),
                        2 => o["preconditions"]["resourceVersion"] = json!(string(&pv)),
                        _ => {}
                    }
                }
            }
            (3, Field::Varint(b)) => o["orphanDependents"] = json!(*b != 0),
            (4, _) => o["propagationPolicy"] = json!(string(&v)),
            (5, _) => dry_run.push(json!(string(&v))),
            _ => {}
        }
    }
    if !dry_run.is_empty() {
        o["dryRun"] = Value::Array(dry_run);
    }
    Some(o)
}

/// Decode a `k8s\0`-enveloped protobuf body into the JSON object it stands for.
pub fn decode(body: &[u8]) -> ApiResult<Value> {
    let bad = || ApiError::bad_request("unable to decode protobuf body");
    let inner = body.strip_prefix(b"k8s\0").ok_or_else(bad)?;
    let (mut api_version, mut kind, mut raw): (String, String, &[u8]) =
        (String::new(), String::new(), &[]);
    for (n, v) in fields(inner).ok_or_else(bad)? {
        match (n, v) {
            (1, Field::Bytes(tm)) => {
                for (tn, tv) in fields(tm).ok_or_else(bad)? {
                    match tn {
                        1 => api_version = string(&tv),
                        2 => kind = string(&tv),
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(r)) => raw = r,
            _ => {}
        }
    }
    if kind == "DeleteOptions" {
        return delete_options(raw).ok_or_else(bad);
    }
    if !matches!(
        (api_version.as_str(), kind.as_str()),
        (
            "v1",
            "Namespace" | "ConfigMap" | "Secret" | "ServiceAccount"
        )
    ) {
        return Err(unsupported(&format!("{api_version} {kind}")));
    }
    let mut obj = json!({"apiVersion": api_version, "kind": kind});
    let mut data = Map::new();
    let mut binary = Map::new();
    let mut string_data = Map::new();
    for (n, v) in fields(raw).ok_or_else(bad)? {
        match (kind.as_str(), n, &v) {
            (_, 1, Field::Bytes(b)) => obj["metadata"] = object_meta(b).ok_or_else(bad)?,
            ("Namespace", 2, Field::Bytes(spec)) => {
                let fins: Vec<Value> = fields(spec)
                    .ok_or_else(bad)?
                    .iter()
                    .filter(|(n, _)| *n == 1)
                    .map(|(_, f)| json!(string(f)))
                    .collect();
                obj["spec"] = json!({"finalizers": fins});
            }
            ("ConfigMap", 2, _) => {
                let (k, val) = map_entry(&v, false).ok_or_else(bad)?;
                data.insert(k, val);
            }
            ("ConfigMap", 3, _) => {
                let (k, val) = map_entry(&v, true).ok_or_else(bad)?;
                binary.insert(k, val);
            }
            ("ConfigMap", 4, Field::Varint(x)) | ("Secret", 5, Field::Varint(x)) => {
                obj["immutable"] = json!(*x != 0)
            }
            ("Secret", 2, _) => {
                let (k, val) = map_entry(&v, true).ok_or_else(bad)?;
                data.insert(k, val);
            }
            ("Secret", 3, _) => obj["type"] = json!(string(&v)),
            ("Secret", 4, _) => {
                let (k, val) = map_entry(&v, false).ok_or_else(bad)?;
                string_data.insert(k, val);
            }
            ("ServiceAccount", 4, Field::Varint(x)) => {
                obj["automountServiceAccountToken"] = json!(*x != 0)
            }
            _ => {}
        }
    }
    if !data.is_empty() {
        obj["data"] = Value::Object(data);
    }
    if !binary.is_empty() {
        obj["binaryData"] = Value::Object(binary);
    }
    if !string_data.is_empty() {
        obj["stringData"] = Value::Object(string_data);
    }
    Ok(obj)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn ld(field: u8, bytes: &[u8]) -> Vec<u8> {
        let mut v = vec![(field << 3) | 2, bytes.len() as u8];
        v.extend_from_slice(bytes);
        v
    }

    #[test]
    fn decodes_a_configmap_envelope() {
        let meta = [
            ld(1, b"cm"),
            ld(11, &[ld(1, b"app"), ld(2, b"web")].concat()),
        ]
        .concat();
        let raw = [ld(1, &meta), ld(2, &[ld(1, b"k"), ld(2, b"v")].concat())].concat();
        let unknown = [
            ld(1, &[ld(1, b"v1"), ld(2, b"ConfigMap")].concat()),
            ld(2, &raw),
        ]
        .concat();
        let body = [b"k8s\0".to_vec(), unknown].concat();
        let v = decode(&body).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "labels": {"app": "web"}}, "data": {"k": "v"}})
        );
    }

    #[test]
    fn other_kinds_are_unsupported() {
        let unknown = ld(1, &[ld(1, b"v1"), ld(2, b"Pod")].concat());
        let body = [b"k8s\0".to_vec(), unknown].concat();
        assert_eq!(decode(&body).unwrap_err().code, 415);
    }
}
