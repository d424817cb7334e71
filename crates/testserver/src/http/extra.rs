//! Less common routes: the `/_testserver/` side door, delete options and the kubelet stand-in,
//! and the `pods/binding` subresource.

use std::sync::Arc;

use http::{Method, Response};
use serde_json::{Value, json};

use super::{Body, Req, check_fault, parse_body, parse_json, respond};
use crate::error::{ApiError, ApiResult};
use crate::faults::FaultRequest;
use crate::resources::{Builtin, ResourceDef};
use crate::server::Shared;
use crate::store::{DeleteOpts, Propagation, Sub, now_rfc3339};

pub(super) fn side_door(shared: &Arc<Shared>, r: &Req, rest: &[&str]) -> ApiResult<Response<Body>> {
    match (r.method.clone(), rest) {
        (Method::POST, ["faults"]) => {
            let req: FaultRequest = serde_json::from_slice(&r.body)
                .map_err(|e| ApiError::bad_request(format!("fault request: {e}")))?;
            crate::apply_fault_request(shared, req);
            Ok(respond(
                200,
                &json!({"pendingFailures": shared.faults.pending()}),
                &[],
            ))
        }
        (Method::DELETE, ["faults"]) => {
            shared.faults.clear();
            Ok(respond(200, &json!({"pendingFailures": 0}), &[]))
        }
        (Method::GET, ["faults"]) => Ok(respond(
            200,
            &json!({"pendingFailures": shared.faults.pending(), "delayMillis": shared.faults.delay().map_or(0, |d| d.as_millis() as u64)}),
            &[],
        )),
        _ => Err(ApiError::no_route()),
    }
}

pub(super) fn delete_opts(r: &Req) -> ApiResult<DeleteOpts> {
    let mut opts = DeleteOpts {
        dry_run: r.q("dryRun") == Some("All"),
        ..Default::default()
    };
    let mut grace = r.q("gracePeriodSeconds").map(str::to_string);
    let mut propagation = r.q("propagationPolicy").map(str::to_string);
    if !r.body.is_empty() {
        let body = parse_json(&r.body)?;
        opts.uid = body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        opts.resource_version = body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        if body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x == "All"))
        {
            opts.dry_run = true;
        }
        if let Some(g) = body.get("gracePeriodSeconds").and_then(Value::as_i64) {
            grace = Some(g.to_string());
        }
        if let Some(p) = body.get("propagationPolicy").and_then(Value::as_str) {
            propagation = Some(p.to_string());
        }
        if body.get("orphanDependents").and_then(Value::as_bool) == Some(true) {
            propagation = Some("Orphan".into());
        }
    }
    if let Some(g) = grace {
        opts.grace_period = Some(
            g.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds: {g}")))?,
        );
    }
    opts.propagation = match propagation.as_deref() {
        None | Some("Background") => Propagation::Background,
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some(o) => {
            return Err(ApiError::bad_request(format!(
                "invalid propagationPolicy: {o}"
            )));
        }
    };
    Ok(opts)
}

/// The kubelet stand-in: finish the graceful deletion of a pod (see `Config::kubelet_delay`).
pub(super) fn kubelet_finish(
    shared: &Arc<Shared>,
    def: &Arc<ResourceDef>,
    ns: &str,
    name: &str,
    out: &Value,
) {
    let graceful = out
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .is_some_and(|g| g > 0);
    if def.builtin != Some(Builtin::Pod) || !graceful {
        return;
    }
    let Some(delay) = shared.config.kubelet_delay else {
        return;
    };
    let opts = DeleteOpts {
        uid: out
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        grace_period: Some(0),
        ..DeleteOpts::default()
    };
    if delay.is_zero() {
        let _ = shared.store.delete(def, ns, name, &opts);
        return;
    }
    let (shared, def, ns, name) = (
        shared.clone(),
        def.clone(),
        ns.to_string(),
        name.to_string(),
    );
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let _ = shared.store.delete(&def, &ns, &name, &opts);
    });
}

pub(super) fn binding(
    shared: &Arc<Shared>,
    r: &Req,
    def: &Arc<ResourceDef>,
    ns: &str,
    name: &str,
) -> ApiResult<Response<Body>> {
    let b = parse_body(&r.body)?;
    check_fault(shared, "create", def, name)?;
    let node = b
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            "",
            "Binding",
            name,
            vec![crate::error::cause(
                "FieldValueRequired",
                "target.name",
                "Required value",
            )],
        ));
    }
    let annotations = b.pointer("/metadata/annotations").cloned();
    shared.store.modify(def, ns, name, Sub::Binding, &r.ctx(), false, |cur| {
        let cur = cur.ok_or_else(|| ApiError::not_found(&def.group, &def.resource, name))?;
        if let Some(n) = cur.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty()) {
            return Err(ApiError::conflict_msg(
                &def.group,
                &def.resource,
                name,
                format!("Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{n}\""),
            ));
        }
        let mut pod = cur.clone();
        pod["spec"]["nodeName"] = json!(node);
        if let Some(Value::Object(a)) = &annotations {
            for (k, v) in a {
                pod["metadata"]["annotations"][k] = v.clone();
            }
        }
        let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now_rfc3339()});
        match pod["status"]["conditions"].as_array_mut() {
            Some(cs) => {
                cs.retain(|c| c["type"] != "PodScheduled");
                cs.push(cond);
            }
            None => pod["status"]["conditions"] = json!([cond]),
        }
        Ok(pod)
    })?;
    Ok(respond(
        201,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        &[],
    ))
}
