//! A fault-injecting proxy in front of the real API server, for the faults a server does not
//! produce on demand: a write (or, when asked for by verb, a read) refused with a chosen status,
//! or every open watch cut.
//!
//! The proxy listens on plain HTTP on 127.0.0.1 and forwards each request, with its own
//! `Authorization` header, to the API server over TLS, so a client keeps its identity and RBAC.
//! Only a rule that matches changes anything: the request is answered with a `Status` of the
//! rule's code instead of being forwarded, the way the server itself answers that error.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};

use crate::{ControlPlane, Error};

/// Fail the next `count` writes to `group`/`resource` (optionally one object, optionally some
/// verbs: `create`, `update`, `patch`, `delete`, `deletecollection`) with `code`. Reads (`get`,
/// `list`, `watch`) fail only when [`FailWrites::verbs`] names them: `.verbs(&["get"])` makes a
/// client's read of the object fail.
#[derive(Clone, Debug)]
pub struct FailWrites {
    pub group: String,
    pub resource: String,
    pub code: u16,
    pub count: u32,
    pub name: Option<String>,
    pub verbs: Option<Vec<String>>,
}

impl FailWrites {
    pub fn new(group: &str, resource: &str, code: u16, count: u32) -> FailWrites {
        FailWrites {
            group: group.into(),
            resource: resource.into(),
            code,
            count,
            name: None,
            verbs: None,
        }
    }

    pub fn named(mut self, name: &str) -> FailWrites {
        self.name = Some(name.into());
        self
    }

    pub fn verbs(mut self, verbs: &[&str]) -> FailWrites {
        self.verbs = Some(verbs.iter().map(|v| v.to_string()).collect());
        self
    }

    fn matches(&self, target: &Target) -> bool {
        self.count > 0
            && self.group == target.group
            && self.resource == target.resource
            && self
                .name
                .as_ref()
                .is_none_or(|n| Some(n) == target.name.as_ref())
            && match &self.verbs {
                None => target.is_write(),
                Some(v) => v.iter().any(|v| *v == target.verb),
            }
    }
}

/// A running proxy. Dropping it closes its port and ends the connections through it.
pub struct FaultProxy {
    url: String,
    rules: Arc<Mutex<Vec<FailWrites>>>,
    cut: broadcast::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl ControlPlane {
    /// Starts a fault proxy in front of this control plane.
    pub async fn fault_proxy(&self) -> Result<FaultProxy, Error> {
        let upstream = upstream_client(self).await?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let rules = Arc::new(Mutex::new(Vec::new()));
        let (cut, _) = broadcast::channel(4);
        let state = Shared {
            upstream,
            rules: rules.clone(),
            cut: cut.clone(),
        };
        let task = tokio::spawn(serve(listener, state));
        Ok(FaultProxy {
            url,
            rules,
            cut,
            task,
        })
    }
}

impl FaultProxy {
    /// `http://127.0.0.1:PORT`: give this to a client instead of the server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn fail_writes(&self, rule: FailWrites) {
        self.lock().push(rule);
    }

    /// Ends every watch open through the proxy now; clients watch again.
    pub fn drop_watches(&self) {
        let _ = self.cut.send(());
    }

    /// Failures not yet handed out.
    pub fn pending(&self) -> u32 {
        self.lock().iter().map(|r| r.count).sum()
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<FailWrites>> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Shared {
    upstream: kube::Client,
    rules: Arc<Mutex<Vec<FailWrites>>>,
    cut: broadcast::Sender<()>,
}

type ProxyBody = UnsyncBoxBody<Bytes, Infallible>;

async fn upstream_client(plane: &ControlPlane) -> Result<kube::Client, Error> {
    // The server's URL and CA, and no credentials of its own: each request brings its client's.
    let text = crate::kubeconfig_text(plane.url(), plane.ca_pem(), None);
    let kubeconfig = Kubeconfig::from_yaml(&text).map_err(|e| Error::Kubeconfig(e.to_string()))?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| Error::Kubeconfig(e.to_string()))?;
    // Watches through the proxy last as long as their clients ask.
    config.read_timeout = None;
    Ok(kube::Client::try_from(config)?)
}

async fn serve(listener: TcpListener, state: Shared) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(state: Shared, req: Request<Incoming>) -> Result<Response<ProxyBody>, Infallible> {
    if let Some(target) = Target::of(req.method(), req.uri()) {
        let mut rules = state.rules.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rule) = rules.iter_mut().find(|r| r.matches(&target)) {
            rule.count -= 1;
            return Ok(status_response(rule.code, &target));
        }
    }
    let watch = is_watch(req.uri());
    let (mut parts, body) = req.into_parts();
    parts.headers.remove(http::header::HOST);
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(plain(
                StatusCode::BAD_GATEWAY,
                &format!("reading the request: {e}"),
            ));
        }
    };
    let upstream = Request::from_parts(parts, kube::client::Body::from(body.to_vec()));
    let response = match state.upstream.send(upstream).await {
        Ok(r) => r,
        Err(e) => return Ok(plain(StatusCode::BAD_GATEWAY, &format!("upstream: {e}"))),
    };
    let (parts, mut body) = response.into_parts();
    // Copy frames through a channel, so that a cut can end the stream between two of them.
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let mut cut = state.cut.subscribe();
    tokio::spawn(async move {
        loop {
            let frame = tokio::select! {
                frame = body.frame() => frame,
                _ = cut.recv(), if watch => return,
            };
            match frame {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && tx.send(data).await.is_err()
                    {
                        return;
                    }
                }
                _ => return,
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|data| (Ok::<_, Infallible>(Frame::data(data)), rx))
    });
    Ok(Response::from_parts(
        parts,
        BodyExt::boxed_unsync(StreamBody::new(stream.boxed())),
    ))
}

/// What a request is aimed at.
struct Target {
    group: String,
    resource: String,
    name: Option<String>,
    verb: &'static str,
}

impl Target {
    fn of(method: &Method, uri: &http::Uri) -> Option<Target> {
        let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
        let (group, rest) = match segments.as_slice() {
            ["api", _version, rest @ ..] => ("", rest),
            ["apis", group, _version, rest @ ..] => (*group, rest),
            _ => return None,
        };
        let rest = match rest {
            ["namespaces", _ns, rest @ ..] if !rest.is_empty() => rest,
            other => other,
        };
        let (resource, name) = match rest {
            [resource] => (*resource, None),
            [resource, name, ..] => (*resource, Some((*name).to_owned())),
            [] => return None,
        };
        let verb = match (method, &name) {
            (&Method::POST, _) => "create",
            (&Method::PUT, _) => "update",
            (&Method::PATCH, _) => "patch",
            (&Method::DELETE, Some(_)) => "delete",
            (&Method::DELETE, None) => "deletecollection",
            (&Method::GET, _) if is_watch(uri) => "watch",
            (&Method::GET, Some(_)) => "get",
            (&Method::GET, None) => "list",
            _ => return None,
        };
        Some(Target {
            group: group.to_owned(),
            resource: resource.to_owned(),
            name,
            verb,
        })
    }

    fn is_write(&self) -> bool {
        !matches!(self.verb, "get" | "list" | "watch")
    }
}

fn is_watch(uri: &http::Uri) -> bool {
    uri.query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"))
}

/// The `Status` a real server sends for `code`.
fn status_response(code: u16, target: &Target) -> Response<ProxyBody> {
    let (reason, message) = match code {
        409 => (
            "Conflict",
            "the object has been modified; please apply your changes to the latest version and try again",
        ),
        429 => (
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later",
        ),
        503 => (
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        ),
        504 => (
            "Timeout",
            "the server was unable to return a response in the time allotted",
        ),
        _ => (
            "InternalError",
            "an error on the server (\"injected by the envtest fault proxy\") has prevented the request from succeeding",
        ),
    };
    let status = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": format!("{} {:?}: {message}", target.resource, target.name.as_deref().unwrap_or("")),
        "reason": reason, "code": code,
        "details": {"name": target.name, "group": target.group, "kind": target.resource},
    });
    let mut response = Response::new(full(Bytes::from(status.to_string())));
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn plain(code: StatusCode, text: &str) -> Response<ProxyBody> {
    let mut response = Response::new(full(Bytes::from(text.to_owned())));
    *response.status_mut() = code;
    response
}

fn full(bytes: Bytes) -> ProxyBody {
    http_body_util::Full::new(bytes).boxed_unsync()
}
