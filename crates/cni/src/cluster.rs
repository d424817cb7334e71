//! The plugin's view of the API server: connecting with the node's kubeconfig, telling
//! transient failures from final ones, and reading (or waiting for) a pod's assignment.
//!
//! Only pod metadata is ever read: the assignment lives in annotations, and the smaller answer
//! keeps ADD fast on nodes with large pod specs. Reads say how fresh they must be
//! ([`Freshness`]): the API server's watch cache answers in half the time of a read from etcd.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use api::{Assignment, keys};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, GetParams, PartialObjectMeta, WatchEvent, WatchParams};
use kube::config::KubeConfigOptions;
use kube::{Client, Config};
use tokio::time::Instant;

use crate::error::CniError;
use crate::kubeconfig;
use crate::log::Logger;
use crate::request::PodRef;
use crate::text::{echo, is_dns_subdomain};

/// How long a TCP connect to the API server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long reading the kubeconfig and the files it names, and building the client, may take.
pub const LOAD_BUDGET: Duration = Duration::from_secs(5);
/// Pause before watching again after a watch ended.
const RE_WATCH_PAUSE: Duration = Duration::from_millis(100);

/// A client for the node's API server.
#[derive(Clone)]
pub struct Cluster {
    /// The kube client.
    pub client: Client,
    /// Whether the API server refused the credentials (401) since the client was built: the
    /// node agent then reads the kubeconfig again instead of waiting for the file to change.
    unauthorized: Arc<AtomicBool>,
}

/// How fresh a read must be.
///
/// The commands read from the API server's watch cache first and accept what it shows; only a
/// refusal is read again from etcd before it is reported ([`crate::work::Work::perform`]). A
/// cached object may be a few milliseconds behind, but it is a version the object really had:
/// a block recording an address for the pod's UID means the controller gave the pod that
/// address, which stays the pod's while it lives. A missing pod, another pod's UID, a block not
/// recording the address yet: those may be the cache lagging, and are confirmed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Whatever the API server's watch cache holds (`resourceVersion=0`): no round trip to
    /// etcd.
    Cached,
    /// The latest version, read from etcd (a quorum read).
    Latest,
}

impl Freshness {
    /// The request's parameters.
    pub fn params(self) -> GetParams {
        match self {
            Freshness::Cached => GetParams::any(),
            Freshness::Latest => GetParams::default(),
        }
    }

    /// What a request line in the debug log ends with: nothing for the usual, cached read.
    pub fn marker(self) -> &'static str {
        match self {
            Freshness::Cached => "",
            Freshness::Latest => " (latest)",
        }
    }
}

/// What a failed API request means for the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiFailure {
    /// 404: the object is not there.
    NotFound,
    /// Worth retrying: no answer, overload, conflicts, server errors.
    Transient(String),
    /// Retrying will not help: forbidden, bad request, undecodable answer.
    Refused(String),
}

impl ApiFailure {
    /// Classifies a kube error.
    pub fn of(err: &kube::Error) -> ApiFailure {
        match err {
            kube::Error::Api(status) => {
                let reason = answer(err);
                match status.code {
                    404 => ApiFailure::NotFound,
                    408 | 409 | 429 | 500 | 502 | 503 | 504 => ApiFailure::Transient(reason),
                    _ => ApiFailure::Refused(reason),
                }
            }
            kube::Error::HyperError(_) | kube::Error::Service(_) => ApiFailure::Transient(format!(
                "the API server did not answer: {}",
                echo(&err.to_string())
            )),
            other => ApiFailure::Refused(echo(&other.to_string()).to_string()),
        }
    }

    /// The error a call reports for this failure while doing `action` for `pod`.
    pub fn into_error(self, pod: &str, action: &str) -> CniError {
        match self {
            ApiFailure::Transient(reason) => CniError::TryAgain {
                pod: pod.to_owned(),
                reason: format!("could not {action}: {reason}"),
            },
            ApiFailure::NotFound => CniError::Api {
                pod: pod.to_owned(),
                action: action.to_owned(),
                reason: "not found".into(),
            },
            ApiFailure::Refused(reason) => CniError::Api {
                pod: pod.to_owned(),
                action: action.to_owned(),
                reason,
            },
        }
    }
}

/// The server's answer to a failed request as people read it: its message, code and reason;
/// the error itself when the server did not answer. Shown with [`echo`]: the message can quote
/// names taken from the pod's annotations.
pub fn answer(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) if status.message.is_empty() => {
            format!("{} {}", status.code, echo(&status.reason))
        }
        kube::Error::Api(status) => format!(
            "{} ({} {})",
            echo(&status.message),
            status.code,
            echo(&status.reason)
        ),
        other => echo(&other.to_string()).to_string(),
    }
}

impl Cluster {
    /// Builds a client from the kubeconfig file. Sends no request.
    ///
    /// The file and those it names are read, and an exec credential plugin is run, on a
    /// blocking thread, so that the call's deadline holds however they behave; [`LOAD_BUDGET`]
    /// bounds them on top of that with a clearer error.
    pub async fn connect(path: &Path) -> Result<Cluster, CniError> {
        let owned = path.to_owned();
        let building = tokio::task::spawn_blocking(move || build_client(&owned));
        match tokio::time::timeout(LOAD_BUDGET, building).await {
            Ok(Ok(built)) => built.map(|client| Cluster {
                client,
                unauthorized: Arc::default(),
            }),
            // Only without the binary's panic hook, which ends the process first.
            Ok(Err(_panicked)) => Err(CniError::Internal {
                location: "the thread reading the kubeconfig".into(),
            }),
            Err(_elapsed) => Err(CniError::kubeconfig(
                path,
                format!(
                    "reading it and the files it names did not finish within {}s (a hung file system?)",
                    LOAD_BUDGET.as_secs()
                ),
            )),
        }
    }

    /// The pods of the call's namespace.
    pub fn pods(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Classifies a failed request of this client, noting a refusal of its credentials.
    pub fn failure(&self, err: &kube::Error) -> ApiFailure {
        if matches!(err, kube::Error::Api(status) if status.code == 401) {
            self.unauthorized.store(true, Ordering::Relaxed);
        }
        ApiFailure::of(err)
    }

    /// Whether the API server refused this client's credentials (401) at least once.
    pub fn refused_credentials(&self) -> bool {
        self.unauthorized.load(Ordering::Relaxed)
    }

    /// Whether `other` is this client (a clone of it) rather than one built anew.
    pub fn same_client(&self, other: &Cluster) -> bool {
        Arc::ptr_eq(&self.unauthorized, &other.unauthorized)
    }
}

/// Reads and checks the kubeconfig and builds the client. Blocks.
fn build_client(path: &Path) -> Result<Client, CniError> {
    let kubeconfig = kubeconfig::load(path)?;
    let fail =
        |e: &dyn std::fmt::Display| CniError::kubeconfig(path, echo(&e.to_string()).to_string());
    // Not a real wait: kube only reads files here, which this thread may do.
    let mut config = futures::executor::block_on(Config::from_custom_kubeconfig(
        kubeconfig,
        &KubeConfigOptions::default(),
    ))
    .map_err(|e| fail(&e))?;
    refuse_proxy(&config, path)?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    // Every call has its own overall deadline; kube's retry-with-backoff would spend it
    // silently on one request.
    config.default_retry = false;
    // The blocking threads run inside the runtime, which the client's tasks need.
    Client::try_from(config).map_err(|e| fail(&e))
}

/// Refuses a proxy kube took from `HTTPS_PROXY` or `https_proxy` (one from the file is refused
/// by [`kubeconfig::load`]): kube, built without proxy support, would refuse it with an error
/// that shows its URL, password included.
fn refuse_proxy(config: &Config, path: &Path) -> Result<(), CniError> {
    match config.proxy_url {
        Some(_) => Err(CniError::kubeconfig(
            path,
            format!(
                "the plugin's environment sets HTTPS_PROXY or https_proxy, but {} (the proxy is not shown, as its URL can hold a password)",
                kubeconfig::NO_PROXY_SUPPORT
            ),
        )),
        None => Ok(()),
    }
}

/// What one look at the pod says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodState {
    /// The controller has assigned at least one address.
    Assigned {
        /// metadata.uid
        uid: String,
        /// The assignment.
        assignment: Assignment,
    },
    /// Nothing written yet.
    Pending {
        /// metadata.resourceVersion, to watch from.
        resource_version: String,
    },
}

/// Judges one version of the pod: refuses another pod of the same name (when the call names a
/// UID: ADD always does, CHECK may not), refuses annotations it cannot read, fails at once on
/// the controller's error, and reports whether an address is there yet.
pub fn judge(meta: &PartialObjectMeta<Pod>, pod: &PodRef) -> Result<PodState, CniError> {
    let found = meta.metadata.uid.clone().unwrap_or_default();
    if let Some(expected) = &pod.uid
        && *expected != found
    {
        return Err(CniError::UidMismatch {
            pod: pod.to_string(),
            expected: expected.clone(),
            found,
        });
    }
    let empty = Default::default();
    let annotations = meta.metadata.annotations.as_ref().unwrap_or(&empty);
    let malformed = |reason: String| CniError::MalformedAssignment {
        pod: pod.to_string(),
        reason,
    };
    // The parse error quotes the value it could not read.
    let assignment = Assignment::from_annotations(annotations)
        .map_err(|e| malformed(echo(&e.to_string()).to_string()))?;
    // Names that are sent in requests, logged and shown in messages: only object names pass.
    for assigned in assignment.addresses() {
        for (key, what, name) in [
            (keys::ASSIGNED_POOLS, "IPPool", &assigned.pool),
            (keys::ASSIGNED_BLOCKS, "IPAMBlock", &assigned.block),
        ] {
            if !is_dns_subdomain(name) {
                return Err(malformed(format!(
                    "annotation {key} names the {what} {:?}, which is not a Kubernetes object name",
                    echo(name)
                )));
            }
        }
    }
    if let Some(message) = &assignment.error {
        return Err(CniError::AssignmentFailed {
            pod: pod.to_string(),
            message: echo(message).to_string(),
        });
    }
    if assignment.addresses().next().is_some() {
        return Ok(PodState::Assigned {
            uid: found,
            assignment,
        });
    }
    Ok(PodState::Pending {
        resource_version: meta.metadata.resource_version.clone().unwrap_or_default(),
    })
}

/// Reads the pod's metadata; `None` when the pod does not exist (or, [`Freshness::Cached`], is
/// not in the cache yet).
pub async fn read_pod(
    cluster: &Cluster,
    pod: &PodRef,
    fresh: Freshness,
    log: &Logger,
) -> Result<Option<PartialObjectMeta<Pod>>, CniError> {
    log.debug(format_args!(
        "request: GET pods/{}/{} (metadata){}",
        pod.namespace,
        pod.name,
        fresh.marker()
    ));
    cluster
        .pods(&pod.namespace)
        .get_metadata_opt_with(&pod.name, &fresh.params())
        .await
        .map_err(|e| {
            cluster
                .failure(&e)
                .into_error(&pod.to_string(), "read the pod")
        })
}

/// Reads the pod and, while the controller has not assigned an address, watches that one pod
/// until it does or `wait` has passed. The watch starts from the version read, so a cached
/// read that is behind only makes the watch deliver what it missed.
pub async fn wait_for_assignment(
    cluster: &Cluster,
    pod: &PodRef,
    wait: Duration,
    fresh: Freshness,
    log: &Logger,
) -> Result<(String, Assignment), CniError> {
    let api = cluster.pods(&pod.namespace);
    let deadline = Instant::now() + wait;
    let not_found = || CniError::PodNotFound {
        pod: pod.to_string(),
    };
    let meta = read_pod(cluster, pod, fresh, log)
        .await?
        .ok_or_else(not_found)?;
    let mut resource_version = match judge(&meta, pod)? {
        PodState::Assigned { uid, assignment } => return Ok((uid, assignment)),
        PodState::Pending { resource_version } => resource_version,
    };
    log.info(format_args!(
        "no address assigned yet; waiting up to {}s for the controller",
        wait.as_secs_f64()
    ));
    let field_selector = format!("metadata.name={}", pod.name);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(CniError::TryAgain {
                pod: pod.to_string(),
                reason: format!(
                    "the controller has not assigned an address to the pod within {}s (is rangepool-controller running?)",
                    wait.as_secs_f64()
                ),
            });
        }
        // The server ends the watch by itself shortly after the deadline; the local timeout
        // below is what actually bounds the wait.
        let secs = u32::try_from(left.as_secs().saturating_add(1)).unwrap_or(u32::MAX);
        let params = WatchParams::default().fields(&field_selector).timeout(secs);
        log.debug(format_args!(
            "request: WATCH pods/{} fieldSelector={field_selector} from resourceVersion {resource_version}",
            pod.namespace
        ));
        let watched = tokio::time::timeout(left, async {
            let mut stream = api
                .watch_metadata(&params, &resource_version)
                .await
                .map_err(|e| {
                    cluster
                        .failure(&e)
                        .into_error(&pod.to_string(), "watch the pod")
                })?
                .boxed();
            while let Some(event) = stream.next().await {
                match event {
                    Ok(WatchEvent::Added(meta)) | Ok(WatchEvent::Modified(meta)) => {
                        match judge(&meta, pod)? {
                            PodState::Assigned { uid, assignment } => {
                                return Ok(Watched::Assigned(uid, assignment));
                            }
                            PodState::Pending {
                                resource_version: rv,
                            } => resource_version = rv,
                        }
                    }
                    Ok(WatchEvent::Deleted(_)) => return Err(not_found()),
                    Ok(WatchEvent::Bookmark(b)) => {
                        resource_version = b.metadata.resource_version;
                    }
                    // 410 Gone and friends: the version to watch from is lost.
                    Ok(WatchEvent::Error(status)) => {
                        log.debug(format_args!("watch ended: {}", status.message));
                        return Ok(Watched::Reread);
                    }
                    Err(e) => {
                        log.debug(format_args!("watch stream broke: {e}"));
                        return Ok(Watched::Reread);
                    }
                }
            }
            Ok(Watched::Ended)
        })
        .await;
        match watched {
            // The deadline check at the top of the loop reports it.
            Err(_elapsed) => {}
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Watched::Assigned(uid, assignment))) => return Ok((uid, assignment)),
            // A server that keeps closing watches at once must not be hammered.
            Ok(Ok(Watched::Ended)) => tokio::time::sleep(RE_WATCH_PAUSE.min(left)).await,
            Ok(Ok(Watched::Reread)) => {
                tokio::time::sleep(RE_WATCH_PAUSE.min(left)).await;
                let meta = read_pod(cluster, pod, fresh, log)
                    .await?
                    .ok_or_else(not_found)?;
                match judge(&meta, pod)? {
                    PodState::Assigned { uid, assignment } => return Ok((uid, assignment)),
                    PodState::Pending {
                        resource_version: rv,
                    } => resource_version = rv,
                }
            }
        }
    }
}

/// How one watch request ended.
enum Watched {
    Assigned(String, Assignment),
    /// Start over from a fresh read of the pod.
    Reread,
    /// The server closed the watch: watch again from the last version seen.
    Ended,
}

#[cfg(test)]
mod tests;
