//! HTTP routing: Kubernetes REST paths to verbs (get, list, watch, create, update, patch,
//! delete, deletecollection, status and binding subresources), discovery, and the
//! `/_testserver/` side door for fault injection.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};

use crate::decode::{FieldValidation, decode, to_view};
use crate::discovery;
use crate::error::{ApiError, ApiResult, Reason};
use crate::fields;
use crate::patch::{PatchType, apply_patch, parse_json, parse_yaml};
use crate::render::{self, Format};
use crate::resources::{Builtin, ResourceDef};
use crate::selectors::{FieldSelector, Filter, LabelSelector};
use crate::server::Shared;
use crate::store::{Sub, WriteCtx, now_rfc3339};
use crate::watch::{self, WatchRequest};

mod extra;
use extra::{binding, delete_opts, kubelet_finish, side_door};

/// Response body: whole or streamed (watch).
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

const MAX_BODY: usize = 3 * 1024 * 1024;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed_unsync()
}

fn respond(code: u16, v: &Value, warnings: &[String]) -> Response<Body> {
    let mut b = Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::OK))
        .header(header::CONTENT_TYPE, "application/json");
    for w in warnings {
        b = b.header("Warning", format!("299 - \"{}\"", w.replace('"', "\\\"")));
    }
    b.body(full(v.to_string()))
        .unwrap_or_else(|_| Response::new(full("{}")))
}

fn respond_typed(code: u16, v: &Value, content_type: &str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::OK))
        .header(header::CONTENT_TYPE, content_type)
        .body(full(v.to_string()))
        .unwrap_or_else(|_| Response::new(full("{}")))
}

fn error_response(e: &ApiError) -> Response<Body> {
    respond(e.code, &e.to_status(), &[])
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (pct_decode(k), pct_decode(v)),
            None => (pct_decode(p), String::new()),
        })
        .collect()
}

/// One request, parsed.
struct Req {
    method: Method,
    segs: Vec<String>,
    query: HashMap<String, String>,
    accept: Option<String>,
    content_type: String,
    user_agent: String,
    body: Bytes,
}

impl Req {
    fn q(&self, k: &str) -> Option<&str> {
        self.query
            .get(k)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    fn manager(&self) -> String {
        self.q("fieldManager")
            .map(str::to_string)
            .unwrap_or_else(|| {
                let ua = self.user_agent.split('/').next().unwrap_or_default();
                if ua.is_empty() {
                    "unknown".into()
                } else {
                    ua.to_string()
                }
            })
    }

    fn ctx(&self) -> WriteCtx {
        WriteCtx {
            manager: self.manager(),
            dry_run: self.q("dryRun") == Some("All"),
            apply: false,
        }
    }

    fn field_validation(&self) -> ApiResult<FieldValidation> {
        FieldValidation::parse(self.q("fieldValidation"))
    }
}

/// Handle one request; never fails (errors become Status responses).
pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let side_door = req.uri().path().starts_with("/_testserver");
    if !side_door && let Some(d) = shared.faults.delay() {
        tokio::time::sleep(d).await;
    }
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error_response(&ApiError::bad_request(format!("reading body: {e}"))),
    };
    if body.len() > MAX_BODY {
        return error_response(
            &ApiError::new(
                Reason::BadRequest,
                "Request entity too large: limit is 3145728",
            )
            .with_code(413),
        );
    }
    let hv = |h: header::HeaderName| {
        parts
            .headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let r = Req {
        method: parts.method.clone(),
        segs: parts
            .uri
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(pct_decode)
            .collect(),
        query: parse_query(parts.uri.query()),
        accept: hv(header::ACCEPT),
        content_type: hv(header::CONTENT_TYPE).unwrap_or_default(),
        user_agent: hv(header::USER_AGENT).unwrap_or_default(),
        body,
    };
    let mut r = r;
    if r.content_type
        .starts_with("application/vnd.kubernetes.protobuf")
        && !r.body.is_empty()
    {
        match crate::protobuf::decode(&r.body) {
            Ok(v) => {
                r.body = Bytes::from(v.to_string());
                r.content_type = "application/json".into();
            }
            Err(e) => return error_response(&e),
        }
    }
    match route(&shared, &r) {
        Ok(resp) => resp,
        Err(e) => error_response(&e),
    }
}

fn route(shared: &Arc<Shared>, r: &Req) -> ApiResult<Response<Body>> {
    let segs: Vec<&str> = r.segs.iter().map(String::as_str).collect();
    let reg = shared.store.registry();
    let accept = r.accept.as_deref();
    match (r.method.clone(), segs.as_slice()) {
        (_, ["_testserver", rest @ ..]) => side_door(shared, r, rest),
        (Method::GET, ["version"]) => Ok(respond(200, &discovery::version(), &[])),
        (Method::GET, ["healthz" | "livez" | "readyz", ..]) => Ok(Response::new(full("ok"))),
        (Method::GET, ["api"]) => Ok(match discovery::wants_aggregated(accept) {
            Some(media) => respond_typed(200, &discovery::aggregated(&reg, true, media), media),
            None => respond(200, &discovery::api_versions(&shared.addr.to_string()), &[]),
        }),
        (Method::GET, ["apis"]) => Ok(match discovery::wants_aggregated(accept) {
            Some(media) => respond_typed(200, &discovery::aggregated(&reg, false, media), media),
            None => respond(200, &discovery::api_groups(&reg), &[]),
        }),
        (Method::GET, ["openapi", "v3"]) => Ok(respond(200, &crate::openapi::index(&reg), &[])),
        (Method::GET, ["openapi", "v3", "api", v]) => crate::openapi::document(&reg, "", v)
            .map(|d| respond(200, &d, &[]))
            .ok_or_else(ApiError::no_route),
        (Method::GET, ["openapi", "v3", "apis", g, v]) => crate::openapi::document(&reg, g, v)
            .map(|d| respond(200, &d, &[]))
            .ok_or_else(ApiError::no_route),
        (Method::GET, ["api", "v1"]) => Ok(respond(
            200,
            &discovery::resource_list(&reg, "", "v1").unwrap_or_default(),
            &[],
        )),
        (Method::GET, ["apis", g]) => discovery::api_group(&reg, g)
            .map(|d| respond(200, &d, &[]))
            .ok_or_else(ApiError::no_route),
        (Method::GET, ["apis", g, v]) => discovery::resource_list(&reg, g, v)
            .map(|d| respond(200, &d, &[]))
            .ok_or_else(ApiError::no_route),
        (_, ["api", "v1", rest @ ..]) => resource(shared, r, "", "v1", rest),
        (_, ["apis", g, v, rest @ ..]) => resource(shared, r, g, v, rest),
        _ => Err(ApiError::no_route()),
    }
}

struct Target {
    def: Arc<ResourceDef>,
    ns: Option<String>,
    name: Option<String>,
    sub: Option<String>,
    watch_path: bool,
}

fn target(shared: &Shared, group: &str, version: &str, rest: &[&str]) -> ApiResult<Target> {
    let reg = shared.store.registry();
    let (watch_path, rest) = match rest.split_first() {
        Some((&"watch", r)) => (true, r),
        _ => (false, rest),
    };
    let namespaced_child = rest.len() >= 3
        && rest[0] == "namespaces"
        && reg
            .get(group, version, rest[2])
            .is_some_and(|d| d.namespaced);
    let (ns, resource, name, sub) = if namespaced_child {
        (
            Some(rest[1]),
            rest[2],
            rest.get(3).copied(),
            rest.get(4).copied(),
        )
    } else {
        let Some(res) = rest.first() else {
            return Err(ApiError::no_route());
        };
        (None, *res, rest.get(1).copied(), rest.get(2).copied())
    };
    if rest.len() > if namespaced_child { 5 } else { 3 } {
        return Err(ApiError::no_route());
    }
    let def = reg
        .get(group, version, resource)
        .ok_or_else(ApiError::no_route)?;
    if !def.namespaced && ns.is_some() {
        return Err(ApiError::no_route());
    }
    if def.namespaced && ns.is_none() && name.is_some() {
        return Err(ApiError::no_route());
    }
    Ok(Target {
        def,
        ns: ns.map(str::to_string),
        name: name.map(str::to_string),
        sub: sub.map(str::to_string),
        watch_path,
    })
}

fn check_fault(shared: &Shared, verb: &str, def: &ResourceDef, name: &str) -> ApiResult<()> {
    match shared.faults.take(verb, &def.group, &def.resource, name) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn resource(
    shared: &Arc<Shared>,
    r: &Req,
    group: &str,
    version: &str,
    rest: &[&str],
) -> ApiResult<Response<Body>> {
    let t = target(shared, group, version, rest)?;
    let def = t.def.clone();
    let ns = t.ns.clone().unwrap_or_default();
    let fmt = render::negotiate(r.accept.as_deref())?;
    let include = r.q("includeObject").unwrap_or("Metadata").to_string();
    let sub = match t.sub.as_deref() {
        None => Sub::Main,
        Some("status") if def.status_subresource => Sub::Status,
        Some("binding") if def.builtin == Some(Builtin::Pod) && r.method == Method::POST => {
            Sub::Binding
        }
        Some(_) => return Err(ApiError::no_route()),
    };
    let is_watch = t.watch_path || matches!(r.q("watch"), Some("true") | Some("1"));
    match (r.method.clone(), t.name.as_deref()) {
        (Method::GET, None) if is_watch => Ok(start_watch(shared, r, &t, fmt, include)?),
        (Method::GET, Some(_)) if is_watch => Ok(start_watch(shared, r, &t, fmt, include)?),
        (Method::GET, None) => list(shared, r, &t, fmt, &include),
        (Method::GET, Some(name)) => {
            let obj = shared.store.get(&def, &ns, name)?;
            Ok(respond(
                200,
                &render::object(&def, &obj, fmt, &include),
                &[],
            ))
        }
        (Method::POST, None) => {
            let obj = parse_body(&r.body)?;
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            check_fault(shared, "create", &def, &name)?;
            let (obj, warnings) = decode(&def, obj, r.field_validation()?)?;
            let out = shared.store.create(&def, &ns, obj, &r.ctx())?;
            Ok(respond(
                201,
                &render::object(&def, &out, fmt, &include),
                &warnings,
            ))
        }
        (Method::POST, Some(name)) if sub == Sub::Binding => binding(shared, r, &def, &ns, name),
        (Method::PUT, Some(name)) => {
            let obj = parse_body(&r.body)?;
            check_fault(shared, "update", &def, name)?;
            let (obj, warnings) = decode(&def, obj, r.field_validation()?)?;
            let create_on_update = matches!(
                def.builtin,
                Some(Builtin::Event) | Some(Builtin::EventV1) | Some(Builtin::Lease)
            );
            let existed = shared.store.get(&def, &ns, name).is_ok();
            let out =
                shared
                    .store
                    .modify(&def, &ns, name, sub, &r.ctx(), create_on_update, |_| {
                        Ok(obj)
                    })?;
            let code = if existed { 200 } else { 201 };
            Ok(respond(
                code,
                &render::object(&def, &out, fmt, &include),
                &warnings,
            ))
        }
        (Method::PATCH, Some(name)) => patch(shared, r, &def, &ns, name, sub, fmt, &include),
        (Method::DELETE, Some(name)) => {
            check_fault(shared, "delete", &def, name)?;
            let opts = delete_opts(r)?;
            let out = shared.store.delete(&def, &ns, name, &opts)?;
            kubelet_finish(shared, &def, &ns, name, &out);
            let uid = out
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let still_there = shared
                .store
                .get(&def, &ns, name)
                .is_ok_and(|o| o.pointer("/metadata/uid").and_then(Value::as_str) == Some(uid));
            // a real server answers a completed delete with the object only for some resources
            // (pods, namespaces, services, custom resources) and with a Success Status otherwise
            let returns_object = matches!(
                def.builtin,
                None | Some(Builtin::Pod) | Some(Builtin::Namespace) | Some(Builtin::Service)
            );
            if still_there || returns_object || opts.dry_run {
                return Ok(respond(
                    200,
                    &render::object(&def, &out, Format::Full, &include),
                    &[],
                ));
            }
            let mut details = json!({"name": name, "kind": def.resource, "uid": uid});
            if !def.group.is_empty() {
                details["group"] = json!(def.group);
            }
            Ok(respond(
                200,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
                &[],
            ))
        }
        (Method::DELETE, None) => {
            check_fault(shared, "deletecollection", &def, "")?;
            let opts = delete_opts(r)?;
            let filter = filter(r, &t)?;
            let (items, _) = shared.store.list(&def, t.ns.as_deref());
            let mut deleted = Vec::new();
            for o in items.iter().filter(|o| filter.matches(&def, o)) {
                let n = o
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let ons = o
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                match shared.store.delete(&def, ons, n, &opts) {
                    Ok(v) => {
                        kubelet_finish(shared, &def, ons, n, &v);
                        deleted.push(Arc::new(v));
                    }
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(respond(
                200,
                &render::list(&def, &deleted, Format::Full, &include, json!({})),
                &[],
            ))
        }
        _ => Err(ApiError::new(
            Reason::MethodNotAllowed,
            "the server does not allow this method on the requested resource",
        )),
    }
}

fn parse_body(body: &[u8]) -> ApiResult<Value> {
    if body.is_empty() {
        return Err(ApiError::bad_request("the body of the request was empty"));
    }
    parse_yaml(body).map_err(|e| {
        ApiError::bad_request(format!(
            "couldn't get version/kind; json parse error: {}",
            e.message
        ))
    })
}

fn filter(r: &Req, t: &Target) -> ApiResult<Filter> {
    let labels = LabelSelector::parse(r.q("labelSelector").unwrap_or_default())?;
    let mut fs = r.q("fieldSelector").unwrap_or_default().to_string();
    if let Some(name) = &t.name {
        if !fs.is_empty() {
            fs.push(',');
        }
        fs.push_str(&format!("metadata.name={name}"));
    }
    let fields = FieldSelector::parse(&fs, &t.def.field_labels(), &t.def.kind)?;
    Ok(Filter {
        namespace: t.ns.clone(),
        labels,
        fields,
    })
}

/// The ListOptions rules of the real server about resourceVersionMatch and sendInitialEvents.
fn check_list_options(r: &Req, watch: bool) -> ApiResult<()> {
    use crate::error::cause;
    let mut causes = Vec::new();
    let rv = r.q("resourceVersion");
    let send_initial = r.q("sendInitialEvents") == Some("true");
    match r.q("resourceVersionMatch") {
        None => {
            if watch && send_initial {
                causes.push(cause(
                    "FieldValueForbidden",
                    "resourceVersionMatch",
                    "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
        }
        Some(m) => {
            if !matches!(m, "NotOlderThan" | "Exact") {
                causes.push(cause(
                    "FieldValueNotSupported",
                    "resourceVersionMatch",
                    format!(
                        "Unsupported value: \"{m}\": supported values: \"Exact\", \"NotOlderThan\""
                    ),
                ));
            }
            if !watch && rv.is_none() {
                causes.push(cause(
                    "FieldValueForbidden",
                    "resourceVersionMatch",
                    "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            if m == "Exact" && rv == Some("0") {
                causes.push(cause(
                    "FieldValueForbidden",
                    "resourceVersionMatch",
                    "Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
            if watch && send_initial && m != "NotOlderThan" {
                causes.push(cause(
                    "FieldValueForbidden",
                    "resourceVersionMatch",
                    "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid("meta.k8s.io", "ListOptions", "", causes))
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    ns: String,
    name: String,
}

fn encode_continue(t: &ContinueToken) -> String {
    serde_json::to_string(t)
        .unwrap_or_default()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_continue(s: &str) -> ApiResult<ContinueToken> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    if !s.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Result<Vec<u8>, _> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16))
        .collect();
    serde_json::from_slice(&bytes.map_err(|_| bad())?).map_err(|_| bad())
}

fn list(
    shared: &Arc<Shared>,
    r: &Req,
    t: &Target,
    fmt: Format,
    include: &str,
) -> ApiResult<Response<Body>> {
    check_list_options(r, false)?;
    let filter = filter(r, t)?;
    let exact = match (r.q("resourceVersionMatch"), r.q("resourceVersion")) {
        (Some("Exact"), Some(v)) => Some(
            v.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {v}")))?,
        ),
        _ => None,
    };
    let token = r.q("continue").map(decode_continue).transpose()?;
    // continue pages and Exact lists are served from the snapshot at their resourceVersion
    let (items, rv) = match (&token, exact) {
        (Some(tok), _) => {
            let after = (tok.ns.clone(), tok.name.clone());
            let items = shared
                .store
                .list_at(&t.def, t.ns.as_deref(), tok.rv, Some(&after))
                .map_err(|e| {
                if e.code == 410 {
                    ApiError::new(
                        Reason::Expired,
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    )
                } else {
                    e
                }
            })?;
            (items, tok.rv)
        }
        (None, Some(rv)) => (shared.store.list_at(&t.def, t.ns.as_deref(), rv, None)?, rv),
        (None, None) => shared.store.list(&t.def, t.ns.as_deref()),
    };
    let mut matched: Vec<Arc<Value>> = items
        .into_iter()
        .filter(|o| filter.matches(&t.def, o))
        .collect();
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(limit) = r
        .q("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        && matched.len() > limit
    {
        let remaining = matched.len() - limit;
        matched.truncate(limit);
        if let Some(last) = matched.last() {
            let tok = ContinueToken {
                rv,
                ns: last
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                name: last
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            };
            meta["continue"] = json!(encode_continue(&tok));
            meta["remainingItemCount"] = json!(remaining);
        }
    }
    Ok(respond(
        200,
        &render::list(&t.def, &matched, fmt, include, meta),
        &[],
    ))
}

fn start_watch(
    shared: &Arc<Shared>,
    r: &Req,
    t: &Target,
    fmt: Format,
    include: String,
) -> ApiResult<Response<Body>> {
    check_list_options(r, true)?;
    let filter = filter(r, t)?;
    let send_initial_events = r.q("sendInitialEvents") == Some("true");
    let from = match r.q("resourceVersion") {
        None | Some("0") => None,
        Some(_) if send_initial_events => None,
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {v}")))?,
        ),
    };
    let timeout = r
        .q("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let req = WatchRequest {
        def: t.def.clone(),
        filter,
        from,
        send_initial_events,
        bookmarks: r.q("allowWatchBookmarks") == Some("true"),
        timeout,
        format: fmt,
        include,
    };
    let rx = watch::start(shared.clone(), req);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let body = StreamBody::new(stream).boxed_unsync();
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .header("Cache-Control", "no-cache, private")
        .body(body)
        .map_err(|e| ApiError::internal(e.to_string()))
}

#[allow(clippy::too_many_arguments)]
fn patch(
    shared: &Arc<Shared>,
    r: &Req,
    def: &Arc<ResourceDef>,
    ns: &str,
    name: &str,
    sub: Sub,
    fmt: Format,
    include: &str,
) -> ApiResult<Response<Body>> {
    let pt = PatchType::from_content_type(&r.content_type, def)?;
    check_fault(shared, "patch", def, name)?;
    let fv = r.field_validation()?;
    let mut warnings = Vec::new();
    let mut ctx = r.ctx();
    let force = r.q("force") == Some("true");
    if force && pt != PatchType::Apply {
        return Err(ApiError::bad_request(
            "force may not be set on non-apply patches",
        ));
    }
    let existed = shared.store.get(def, ns, name).is_ok();
    let out = if pt == PatchType::Apply {
        let Some(manager) = r.q("fieldManager").map(str::to_string) else {
            return Err(ApiError::bad_request(
                "PATCH, fieldManager is required for apply requests",
            ));
        };
        ctx.apply = true;
        let mut applied = parse_yaml(&r.body)?;
        if !applied.is_object() {
            return Err(ApiError::bad_request(
                "the applied configuration must be an object",
            ));
        }
        if applied.pointer("/metadata/name").is_none() {
            applied["metadata"]["name"] = json!(name);
        }
        shared
            .store
            .modify(def, ns, name, sub, &ctx, sub == Sub::Main, |cur| {
                let live = cur.map(|c| to_view(def, c));
                let merged = fields::apply(
                    def,
                    sub,
                    live.as_ref(),
                    applied,
                    &manager,
                    force,
                    &now_rfc3339(),
                )?;
                let (decoded, w) = decode(def, merged, fv)?;
                warnings = w;
                Ok(decoded)
            })?
    } else {
        shared
            .store
            .modify(def, ns, name, sub, &ctx, false, |cur| {
                let cur =
                    cur.ok_or_else(|| ApiError::not_found(&def.group, &def.resource, name))?;
                let patched = apply_patch(def, &to_view(def, cur), pt, &r.body)?;
                let (decoded, w) = decode(def, patched, fv)?;
                warnings = w;
                Ok(decoded)
            })?
    };
    let code = if existed { 200 } else { 201 };
    Ok(respond(
        code,
        &render::object(def, &out, fmt, include),
        &warnings,
    ))
}
