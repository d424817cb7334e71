//! Response shapes negotiated by `Accept`: full objects, `PartialObjectMetadata(List)` and
//! `meta.k8s.io/v1` Tables (server-side printing for `kubectl get`, with CRD printer columns).

use serde_json::{Value, json};

use crate::decode::to_view;
use crate::error::{ApiError, ApiResult, Reason};
use crate::resources::{Builtin, ResourceDef};

/// What the client accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// plain JSON objects
    Full,
    /// `PartialObjectMetadata`
    Metadata,
    /// `Table`
    Table,
}

/// Choose a format from the Accept header (406 when only unsupported types are accepted).
pub fn negotiate(accept: Option<&str>) -> ApiResult<Format> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Format::Full);
    };
    for part in accept.split(',') {
        let mut it = part.split(';').map(str::trim);
        let media = it.next().unwrap_or_default();
        let params: Vec<&str> = it.collect();
        let as_ = params.iter().find_map(|p| p.strip_prefix("as="));
        if !matches!(
            media,
            "application/json" | "*/*" | "application/*" | "application/json-seq"
        ) {
            continue;
        }
        match as_ {
            None => return Ok(Format::Full),
            Some("Table") => return Ok(Format::Table),
            Some("PartialObjectMetadata") | Some("PartialObjectMetadataList") => {
                return Ok(Format::Metadata);
            }
            Some(_) => continue,
        }
    }
    Err(ApiError::new(
        Reason::NotAcceptable,
        "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf",
    ))
}

fn partial(view: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": view["metadata"]})
}

/// One object as the client asked for it.
pub fn object(def: &ResourceDef, stored: &Value, fmt: Format, include: &str) -> Value {
    let view = to_view(def, stored);
    match fmt {
        Format::Full => view,
        Format::Metadata => partial(&view),
        Format::Table => table(def, &[view], None, include),
    }
}

/// A list as the client asked for it.
pub fn list(
    def: &ResourceDef,
    stored: &[std::sync::Arc<Value>],
    fmt: Format,
    include: &str,
    meta: Value,
) -> Value {
    let views: Vec<Value> = stored.iter().map(|s| to_view(def, s)).collect();
    match fmt {
        Format::Full => {
            // items of built-in lists carry no apiVersion/kind on a real server (typed encoding);
            // items of custom resource lists do
            let items: Vec<Value> = if def.builtin.is_some() {
                views
                    .into_iter()
                    .map(|mut v| {
                        if let Some(o) = v.as_object_mut() {
                            o.remove("apiVersion");
                            o.remove("kind");
                        }
                        v
                    })
                    .collect()
            } else {
                views
            };
            json!({"kind": format!("{}List", def.kind), "apiVersion": def.api_version(), "metadata": meta, "items": items})
        }
        Format::Metadata => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": meta,
            "items": views.iter().map(partial).collect::<Vec<_>>(),
        }),
        Format::Table => table(def, &views, Some(meta), include),
    }
}

fn col(name: &str, ty: &str, priority: i64) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": ty, "format": format, "description": "", "priority": priority})
}

/// kubectl's human durations ("45s", "3m20s", "5h", "12d").
pub fn human_age(ts: &str) -> String {
    let Ok(t) = ts.parse::<k8s_openapi::jiff::Timestamp>() else {
        return "<unknown>".into();
    };
    let secs = (k8s_openapi::jiff::Timestamp::now().as_second() - t.as_second()).max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        let s = secs % 60;
        if s == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{s}s")
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        let mm = m % 60;
        if mm == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{mm}m")
        }
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        let hh = h % 24;
        if hh == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{hh}h")
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y", d / 365)
    }
}

fn s(v: &Value, p: &str) -> String {
    match v.pointer(p) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Null) | None => String::new(),
        Some(o) => o.to_string(),
    }
}

enum Step {
    Field(String),
    Index(usize),
    All,
    Filter(Vec<String>, String),
}

fn parse_path(path: &str) -> Option<Vec<Step>> {
    let p = path.trim().trim_start_matches('{').trim_end_matches('}');
    let chars: Vec<char> = p.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let start = i + 1;
                i = start;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let f: String = chars[start..i].iter().collect();
                if !f.is_empty() {
                    steps.push(Step::Field(f));
                }
            }
            '[' => {
                let end = chars[i..].iter().position(|c| *c == ']')? + i;
                let inner: String = chars[i + 1..end].iter().collect();
                let inner = inner.trim();
                if inner == "*" {
                    steps.push(Step::All);
                } else if let Ok(n) = inner.parse::<usize>() {
                    steps.push(Step::Index(n));
                } else {
                    let cond = inner.strip_prefix("?(@.")?.strip_suffix(')')?;
                    let (lhs, rhs) = cond.split_once("==")?;
                    let value = rhs.trim().trim_matches(|c| c == '"' || c == '\'');
                    steps.push(Step::Filter(
                        lhs.trim().split('.').map(str::to_string).collect(),
                        value.to_string(),
                    ));
                }
                i = end + 1;
            }
            _ => {
                // a leading field without a dot
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                steps.push(Step::Field(chars[start..i].iter().collect()));
            }
        }
    }
    Some(steps)
}

/// Evaluate a CRD printer-column JSONPath (`.spec.x`, `.a[0].b`, `.a[*].b`,
/// `.status.conditions[?(@.type=="Ready")].status`); several results are joined by commas.
fn json_path(v: &Value, path: &str) -> Option<Value> {
    let mut cur: Vec<&Value> = vec![v];
    for step in parse_path(path)? {
        cur = cur
            .into_iter()
            .flat_map(|c| -> Vec<&Value> {
                match &step {
                    Step::Field(f) => c.get(f.as_str()).into_iter().collect(),
                    Step::Index(n) => c.get(*n).into_iter().collect(),
                    Step::All => c.as_array().map(|a| a.iter().collect()).unwrap_or_default(),
                    Step::Filter(field, want) => c
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter(|it| {
                                    let mut x = Some(*it);
                                    for f in field {
                                        x = x.and_then(|x| x.get(f.as_str()));
                                    }
                                    match x {
                                        Some(Value::String(s)) => s == want,
                                        Some(other) => {
                                            *other == Value::String(want.clone())
                                                || other.to_string().as_str() == want.as_str()
                                        }
                                        None => false,
                                    }
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                }
            })
            .collect();
    }
    match cur.len() {
        0 => None,
        1 => Some(cur[0].clone()),
        _ => Some(Value::String(
            cur.iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(","),
        )),
    }
}

/// Roles from `node-role.kubernetes.io/<role>` labels, as kubectl prints them.
fn node_roles(v: &Value) -> String {
    let mut roles: Vec<&str> = v
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|l| {
            l.keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                .filter(|r| !r.is_empty())
                .collect()
        })
        .unwrap_or_default();
    roles.sort_unstable();
    if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.join(",")
    }
}

fn age(v: &Value) -> Value {
    json!(human_age(&s(v, "/metadata/creationTimestamp")))
}

fn columns_and_cells(def: &ResourceDef, views: &[Value]) -> (Vec<Value>, Vec<Vec<Value>>) {
    let name = |v: &Value| json!(s(v, "/metadata/name"));
    match def.builtin {
        None => {
            let mut cols = vec![col("Name", "string", 0)];
            let pcs = &def.printer_columns;
            if pcs.is_empty() {
                cols.push(col("Age", "date", 0));
            }
            for pc in pcs {
                let ty = pc["type"].as_str().unwrap_or("string");
                cols.push(col(
                    pc["name"].as_str().unwrap_or_default(),
                    ty,
                    pc["priority"].as_i64().unwrap_or(0),
                ));
            }
            let rows = views
                .iter()
                .map(|v| {
                    let mut cells = vec![name(v)];
                    if pcs.is_empty() {
                        cells.push(age(v));
                    }
                    for pc in pcs {
                        let val = json_path(v, pc["jsonPath"].as_str().unwrap_or_default());
                        let cell = match (pc["type"].as_str(), val) {
                            (_, None) | (_, Some(Value::Null)) => Value::Null,
                            (Some("date"), Some(Value::String(t))) => json!(human_age(&t)),
                            (Some("string"), Some(Value::String(t))) => json!(t),
                            (Some("string"), Some(o)) => json!(o.to_string()),
                            (_, Some(o)) => o,
                        };
                        cells.push(cell);
                    }
                    cells
                })
                .collect();
            (cols, rows)
        }
        Some(Builtin::Pod) => {
            let cols = vec![
                col("Name", "string", 0),
                col("Ready", "string", 0),
                col("Status", "string", 0),
                col("Restarts", "string", 0),
                col("Age", "string", 0),
                col("IP", "string", 1),
                col("Node", "string", 1),
                col("Nominated Node", "string", 1),
                col("Readiness Gates", "string", 1),
            ];
            let rows = views
                .iter()
                .map(|v| {
                    let total = v
                        .pointer("/spec/containers")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len);
                    let statuses = v
                        .pointer("/status/containerStatuses")
                        .and_then(Value::as_array);
                    let ready =
                        statuses.map_or(0, |cs| cs.iter().filter(|c| c["ready"] == true).count());
                    let restarts: i64 = statuses.map_or(0, |cs| {
                        cs.iter().filter_map(|c| c["restartCount"].as_i64()).sum()
                    });
                    let mut status = s(v, "/status/phase");
                    if v.pointer("/metadata/deletionTimestamp").is_some() {
                        status = "Terminating".into();
                    }
                    let none = |x: String| {
                        if x.is_empty() {
                            "<none>".to_string()
                        } else {
                            x
                        }
                    };
                    vec![
                        name(v),
                        json!(format!("{ready}/{total}")),
                        json!(status),
                        json!(restarts.to_string()),
                        age(v),
                        json!(none(s(v, "/status/podIP"))),
                        json!(none(s(v, "/spec/nodeName"))),
                        json!("<none>"),
                        json!("<none>"),
                    ]
                })
                .collect();
            (cols, rows)
        }
        Some(Builtin::Namespace) => (
            vec![
                col("Name", "string", 0),
                col("Status", "string", 0),
                col("Age", "string", 0),
            ],
            views
                .iter()
                .map(|v| vec![name(v), json!(s(v, "/status/phase")), age(v)])
                .collect(),
        ),
        Some(Builtin::Node) => (
            vec![
                col("Name", "string", 0),
                col("Status", "string", 0),
                col("Roles", "string", 0),
                col("Age", "string", 0),
                col("Version", "string", 0),
            ],
            views
                .iter()
                .map(|v| {
                    let ready = v
                        .pointer("/status/conditions")
                        .and_then(Value::as_array)
                        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                        .map(|c| {
                            if c["status"] == "True" {
                                "Ready"
                            } else {
                                "NotReady"
                            }
                        })
                        .unwrap_or("Unknown");
                    vec![
                        name(v),
                        json!(ready),
                        json!(node_roles(v)),
                        age(v),
                        json!(s(v, "/status/nodeInfo/kubeletVersion")),
                    ]
                })
                .collect(),
        ),
        Some(Builtin::ConfigMap) => (
            vec![
                col("Name", "string", 0),
                col("Data", "integer", 0),
                col("Age", "string", 0),
            ],
            views
                .iter()
                .map(|v| {
                    let n = ["data", "binaryData"]
                        .iter()
                        .filter_map(|k| v.get(*k).and_then(Value::as_object))
                        .map(|m| m.len())
                        .sum::<usize>();
                    vec![name(v), json!(n), age(v)]
                })
                .collect(),
        ),
        Some(Builtin::Secret) => (
            vec![
                col("Name", "string", 0),
                col("Type", "string", 0),
                col("Data", "integer", 0),
                col("Age", "string", 0),
            ],
            views
                .iter()
                .map(|v| {
                    vec![
                        name(v),
                        json!(s(v, "/type")),
                        json!(
                            v.get("data")
                                .and_then(Value::as_object)
                                .map_or(0, |m| m.len())
                        ),
                        age(v),
                    ]
                })
                .collect(),
        ),
        Some(Builtin::Lease) => (
            vec![
                col("Name", "string", 0),
                col("Holder", "string", 0),
                col("Age", "string", 0),
            ],
            views
                .iter()
                .map(|v| vec![name(v), json!(s(v, "/spec/holderIdentity")), age(v)])
                .collect(),
        ),
        Some(Builtin::Event) | Some(Builtin::EventV1) => (
            vec![
                col("Last Seen", "string", 0),
                col("Type", "string", 0),
                col("Reason", "string", 0),
                col("Object", "string", 0),
                col("Message", "string", 0),
            ],
            views
                .iter()
                .map(|v| {
                    let (obj, msg) = if def.builtin == Some(Builtin::Event) {
                        (&v["involvedObject"], s(v, "/message"))
                    } else {
                        (&v["regarding"], s(v, "/note"))
                    };
                    let when = [
                        s(v, "/lastTimestamp"),
                        s(v, "/deprecatedLastTimestamp"),
                        s(v, "/eventTime"),
                        s(v, "/metadata/creationTimestamp"),
                    ]
                    .into_iter()
                    .find(|t| !t.is_empty())
                    .unwrap_or_default();
                    let o = format!("{}/{}", s(obj, "/kind").to_lowercase(), s(obj, "/name"));
                    vec![
                        json!(human_age(&when)),
                        json!(s(v, "/type")),
                        json!(s(v, "/reason")),
                        json!(o),
                        json!(msg),
                    ]
                })
                .collect(),
        ),
        Some(Builtin::Crd) => (
            vec![col("Name", "string", 0), col("Created At", "date", 0)],
            views
                .iter()
                .map(|v| vec![name(v), json!(s(v, "/metadata/creationTimestamp"))])
                .collect(),
        ),
        Some(Builtin::Deployment) | Some(Builtin::StatefulSet) => (
            vec![
                col("Name", "string", 0),
                col("Ready", "string", 0),
                col("Age", "string", 0),
            ],
            views
                .iter()
                .map(|v| {
                    let want = v
                        .pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1);
                    let ready = v
                        .pointer("/status/readyReplicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    vec![name(v), json!(format!("{ready}/{want}")), age(v)]
                })
                .collect(),
        ),
        Some(Builtin::Service) => (
            vec![
                col("Name", "string", 0),
                col("Type", "string", 0),
                col("Cluster-IP", "string", 0),
                col("Age", "string", 0),
            ],
            views
                .iter()
                .map(|v| {
                    vec![
                        name(v),
                        json!(s(v, "/spec/type")),
                        json!(s(v, "/spec/clusterIP")),
                        age(v),
                    ]
                })
                .collect(),
        ),
        Some(Builtin::DaemonSet)
        | Some(Builtin::ClusterRole)
        | Some(Builtin::ClusterRoleBinding)
        | Some(Builtin::Role)
        | Some(Builtin::RoleBinding) => (
            vec![col("Name", "string", 0), col("Age", "string", 0)],
            views.iter().map(|v| vec![name(v), age(v)]).collect(),
        ),
        Some(Builtin::ServiceAccount) => (
            vec![
                col("Name", "string", 0),
                col("Secrets", "integer", 0),
                col("Age", "string", 0),
            ],
            views
                .iter()
                .map(|v| {
                    vec![
                        name(v),
                        json!(
                            v.get("secrets")
                                .and_then(Value::as_array)
                                .map_or(0, Vec::len)
                        ),
                        age(v),
                    ]
                })
                .collect(),
        ),
    }
}

/// A `meta.k8s.io/v1` Table of objects (views); `include` is `includeObject` (None, Metadata,
/// Object; default Metadata).
pub fn table(def: &ResourceDef, views: &[Value], meta: Option<Value>, include: &str) -> Value {
    let (cols, cells) = columns_and_cells(def, views);
    let rows: Vec<Value> = views
        .iter()
        .zip(cells)
        .map(|(v, c)| {
            let mut row = json!({"cells": c});
            match include {
                "None" => {}
                "Object" => row["object"] = v.clone(),
                _ => row["object"] = partial(v),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta.unwrap_or_else(|| json!({})),
        "columnDefinitions": cols,
        "rows": rows,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn printer_column_paths() {
        let v = json!({"spec": {"cidr": "10.0.0.0/8", "tags": ["a", "b"]},
            "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Allocatable", "status": "True"}]}});
        assert_eq!(json_path(&v, ".spec.cidr"), Some(json!("10.0.0.0/8")));
        assert_eq!(json_path(&v, ".spec.tags[1]"), Some(json!("b")));
        assert_eq!(json_path(&v, ".spec.tags[*]"), Some(json!("a,b")));
        assert_eq!(
            json_path(&v, r#".status.conditions[?(@.type=="Allocatable")].status"#),
            Some(json!("True"))
        );
        assert_eq!(
            json_path(&v, ".status.conditions[?(@.type=='Ready')].status"),
            Some(json!("False"))
        );
        assert_eq!(json_path(&v, ".status.missing"), None);
    }
}
