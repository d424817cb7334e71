//! One plugin call from input to reply: parse, run the command under a hard deadline on a
//! current-thread runtime, and turn the outcome into the one JSON reply and exit code.

use std::io;
use std::panic::Location;
use std::sync::OnceLock;
use std::time::Duration;

use api::{FamilyAssignment, IPPool};
use ipnet::IpNet;
use kube::api::{Api, ListParams};
use serde_json::Value;

use crate::cluster::{self, ApiFailure, Cluster, PodState};
use crate::config::{NetConf, PrefixStyle};
use crate::error::CniError;
use crate::log::{Level, Logger};
use crate::request::{self, Attachment, Command};
use crate::result::{self, Granted};
use crate::text::{echo, one_line};
use crate::verify::{self, Purpose, Subject};
use crate::version::CniVersion;

/// Time for the API requests of one call, on top of ADD's wait for the assignment.
pub const REQUEST_BUDGET: Duration = Duration::from_secs(10);

/// The call being served, once read: what the panic hook's reply and log line need.
static CALL: OnceLock<Call> = OnceLock::new();

struct Call {
    version: CniVersion,
    pod: Option<String>,
    /// The log lines' context.
    context: String,
}

/// What the process prints and how it exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The one JSON document for stdout, if any.
    pub stdout: Option<String>,
    /// The exit code: 0 or the CNI error code.
    pub exit_code: u8,
}

/// Runs one call. `env` reads an environment variable; `stdin` reads standard input.
pub fn main_with(
    env: &dyn Fn(&str) -> Option<String>,
    stdin: impl FnOnce() -> io::Result<Vec<u8>>,
) -> Reply {
    let mut log = Logger::stderr(Level::Info);
    let command = match request::parse(env, stdin) {
        Ok(command) => command,
        Err(f) => {
            log.set_context(echo(&env("CNI_COMMAND").unwrap_or_default()).to_string());
            return failure(&log, f.version, &f.error, f.pod.as_deref());
        }
    };
    if let Some(conf) = command.conf() {
        log.set_level(conf.ipam.log_level);
        log = log.with_file(conf.ipam.log_file.as_deref());
    }
    let call_context = context(&command);
    log.set_context(call_context.clone());
    let version = command.conf().map_or(CniVersion::LATEST, |c| c.version);
    let pod = command.pod().map(ToString::to_string);
    // For the panic hook's reply; a second call in one process (only tests do that) keeps the
    // first's, which only costs the hook's message the right pod.
    let _ = CALL.set(Call {
        version,
        pod: pod.clone(),
        context: call_context,
    });

    if matches!(command, Command::Version) {
        return success(Some(result::version_info()));
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let err = CniError::Io {
                what: "a runtime for the API client",
                reason: e.to_string(),
            };
            return failure(&log, version, &err, pod.as_deref());
        }
    };
    let outcome = runtime.block_on(execute(&command, &log));
    // A file read past the deadline still blocks its thread: leave it behind, the process ends.
    runtime.shutdown_background();
    match outcome {
        Ok(out) => success(out),
        Err(err) => failure(&log, version, &err, pod.as_deref()),
    }
}

/// The reply for a panic at `location`, for the binary's panic hook: [`CniError::Internal`],
/// in the version of the call and naming its pod when those were read. The panic's payload is
/// never shown: it could quote input.
pub fn panic_reply(location: Option<&Location<'_>>) -> Reply {
    let call = CALL.get();
    let mut log = Logger::stderr(Level::Error);
    log.set_context(call.map_or_else(String::new, |c| c.context.clone()));
    let err = CniError::Internal {
        location: location.map_or_else(|| "an unknown place".into(), ToString::to_string),
    };
    let version = call.map_or(CniVersion::LATEST, |c| c.version);
    failure(&log, version, &err, call.and_then(|c| c.pod.as_deref()))
}

fn context(command: &Command) -> String {
    match command {
        Command::Add(a) | Command::Del(a) | Command::Check(a) => format!(
            "{} container={} ifname={} pod={}",
            command.verb(),
            a.container_id,
            a.ifname,
            a.pod
        ),
        Command::Status(c) | Command::Gc(c) => format!("{} network={}", command.verb(), c.name),
        Command::Version => command.verb().to_owned(),
    }
}

fn success(out: Option<Value>) -> Reply {
    Reply {
        stdout: out.map(|v| v.to_string()),
        exit_code: 0,
    }
}

fn failure(log: &Logger, version: CniVersion, err: &CniError, pod: Option<&str>) -> Reply {
    // Values in the message are shown with `echo` already; this is the last guard.
    let msg = one_line(&err.message(pod));
    log.error(format_args!("{msg} (code {})", err.code()));
    let code = err.code();
    Reply {
        stdout: Some(result::error_reply(version, code, &msg, None).to_string()),
        exit_code: u8::try_from(code).unwrap_or(u8::MAX),
    }
}

/// Runs the command under its hard deadline.
async fn execute(command: &Command, log: &Logger) -> Result<Option<Value>, CniError> {
    let budget = match command {
        Command::Add(a) => a.conf.ipam.timeout + REQUEST_BUDGET,
        _ => REQUEST_BUDGET,
    };
    let work = async {
        match command {
            Command::Add(a) => add(a, log).await.map(Some),
            Command::Del(a) => {
                del(a, log);
                Ok(None)
            }
            Command::Check(a) => check(a, log).await.map(|()| None),
            Command::Status(conf) => status(conf, log).await.map(|()| None),
            Command::Gc(conf) => {
                collect(conf, log);
                Ok(None)
            }
            Command::Version => Ok(Some(result::version_info())),
        }
    };
    match tokio::time::timeout(budget, work).await {
        Ok(outcome) => outcome,
        Err(_) => {
            let reason = format!(
                "the API server did not answer within {}s",
                budget.as_secs_f64()
            );
            Err(match command {
                Command::Add(a) | Command::Del(a) | Command::Check(a) => CniError::TryAgain {
                    pod: a.pod.to_string(),
                    reason,
                },
                _ => CniError::NotAvailable { reason },
            })
        }
    }
}

async fn add(a: &Attachment, log: &Logger) -> Result<Value, CniError> {
    let ipam = &a.conf.ipam;
    let cluster = Cluster::connect(&ipam.kubeconfig).await?;
    let (uid, assignment) =
        cluster::wait_for_assignment(&cluster, &a.pod, ipam.timeout, log).await?;
    let who = Subject {
        pod: &a.pod,
        uid: &uid,
        log,
    };
    let mut granted = Vec::with_capacity(2);
    for assigned in assignment.addresses() {
        let block = verify::verify(&cluster, &who, assigned, Purpose::Add).await?;
        let pool_cidr = match ipam.prefix {
            PrefixStyle::Pool => {
                log.debug(format_args!("request: GET ippools/{}", assigned.pool));
                Some(pool_cidr(&cluster, &a.pod.to_string(), assigned).await?)
            }
            _ => None,
        };
        log.info(format_args!(
            "verified {} (pool {}, IPAMBlock {})",
            assigned.address, assigned.pool, assigned.block
        ));
        granted.push(Granted {
            address: assigned.address,
            pool: assigned.pool.clone(),
            block,
            pool_cidr,
        });
    }
    result::build(a.conf.version, ipam, &granted)
}

/// The range of the pool an address came from, for `"prefix": "pool"`.
async fn pool_cidr(
    cluster: &Cluster,
    pod: &str,
    assigned: &FamilyAssignment,
) -> Result<IpNet, CniError> {
    let action = format!("read IPPool {}", assigned.pool);
    let pool = Api::<IPPool>::all(cluster.client.clone())
        .get_opt(&assigned.pool)
        .await
        .map_err(|e| ApiFailure::of(&e).into_error(pod, &action))?
        .ok_or_else(|| CniError::Api {
            pod: pod.to_owned(),
            action: action.clone(),
            reason: "the pool does not exist".into(),
        })?;
    pool.spec
        .cidr
        .parse::<IpNet>()
        .ok()
        .filter(|net| net.contains(&assigned.address))
        .ok_or_else(|| CniError::Api {
            pod: pod.to_owned(),
            action,
            reason: format!(
                "its cidr {:?} is not a range holding {}",
                echo(&pool.spec.cidr),
                assigned.address
            ),
        })
}

/// DEL: nothing to undo. The plugin holds nothing per container, and the address stays the
/// pod's, so that a restarted sandbox keeps its IP; the controller releases it when the pod is
/// deleted or finishes. No request is sent: DEL succeeds without the API server, as it must
/// when a node is torn down.
fn del(a: &Attachment, log: &Logger) {
    log.info(format_args!(
        "nothing to release: the address stays the pod's until the controller releases it when the pod is deleted or finishes (pod {})",
        a.pod
    ));
}

async fn check(a: &Attachment, log: &Logger) -> Result<(), CniError> {
    let cluster = Cluster::connect(&a.conf.ipam.kubeconfig).await?;
    let meta = cluster::read_pod(&cluster.pods(&a.pod.namespace), &a.pod, log)
        .await?
        .ok_or_else(|| CniError::PodNotFound {
            pod: a.pod.to_string(),
        })?;
    let (uid, assignment) = match cluster::judge(&meta, &a.pod)? {
        PodState::Assigned { uid, assignment } => (uid, assignment),
        PodState::Pending { .. } => {
            return Err(CniError::AddressLost {
                pod: a.pod.to_string(),
                container: a.container_id.clone(),
                reason: "the pod has no address assigned".into(),
            });
        }
    };
    let who = Subject {
        pod: &a.pod,
        uid: &uid,
        log,
    };
    let purpose = Purpose::Check {
        container: &a.container_id,
    };
    for assigned in assignment.addresses() {
        if let Some(prev) = &a.conf.prev_ips
            && !prev.contains(&assigned.address)
        {
            return Err(purpose.refusal(&who, assigned, "prevResult does not list it".into()));
        }
        verify::verify(&cluster, &who, assigned, purpose).await?;
        log.debug(format_args!(
            "{} is still recorded for the pod",
            assigned.address
        ));
    }
    Ok(())
}

async fn status(conf: &NetConf, log: &Logger) -> Result<(), CniError> {
    let unavailable = |reason: String| CniError::NotAvailable { reason };
    let cluster = Cluster::connect(&conf.ipam.kubeconfig)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    log.debug(format_args!("request: LIST ipamblocks (limit 1)"));
    // Reading blocks proves the API server answers, the credentials work and the CRDs exist.
    Api::<api::IPAMBlock>::all(cluster.client)
        .list_metadata(&ListParams::default().limit(1))
        .await
        .map(|_| ())
        .map_err(|e| {
            unavailable(format!(
                "cannot list IPAMBlocks: {}",
                match ApiFailure::of(&e) {
                    ApiFailure::NotFound => "the rangepool CRDs are not installed".into(),
                    ApiFailure::Transient(r) | ApiFailure::Refused(r) => r,
                }
            ))
        })
}

/// GC: nothing to collect. Earlier versions recorded each container's claim in the block and
/// cleared stale ones here; now nothing is held per container, and addresses are released by
/// the controller alone. No request is sent.
fn collect(conf: &NetConf, log: &Logger) {
    let valid = conf.valid_attachments.as_ref().map_or(0, Vec::len);
    log.info(format_args!(
        "nothing to collect: rangepool-ipam holds nothing per container (cni.dev/valid-attachments lists {valid}); the controller releases addresses when their pods are deleted or finish"
    ));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_panic_is_one_error_reply_with_our_code_and_its_place() {
        let here = Location::caller();
        let reply = panic_reply(Some(here));
        assert_eq!(reply.exit_code, 199);
        let out: Value = serde_json::from_str(&reply.stdout.unwrap()).unwrap();
        assert_eq!(out["code"], 199);
        let msg = out["msg"].as_str().unwrap();
        assert!(msg.contains("internal error"), "{msg}");
        assert!(msg.contains("this is a bug"), "{msg}");
        assert!(
            msg.contains(&format!("src/run.rs:{}:", here.line())),
            "{msg}"
        );
        let unknown = panic_reply(None);
        assert_eq!(unknown.exit_code, 199);
        assert!(unknown.stdout.unwrap().contains("an unknown place"));
    }
}
