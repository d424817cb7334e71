//! One plugin call from input to reply: parse, have the command's work done (by the node agent
//! over its socket, or here on a current-thread runtime under a hard deadline), and turn the
//! outcome into the one JSON reply and exit code.

use std::io;
use std::panic::Location;
use std::path::Path;
use std::sync::OnceLock;

use serde_json::Value;

use crate::agent;
use crate::cluster::Cluster;
use crate::config::{Backend, NetConf};
use crate::error::CniError;
use crate::log::{Level, Logger};
use crate::request::{self, Attachment, Command};
use crate::result::{self, Granted};
use crate::text::{echo, one_line};
use crate::version::CniVersion;
use crate::work::Work;

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
    let (Some(work), Some(conf)) = (Work::of(&command), command.conf()) else {
        match &command {
            Command::Del(a) => del(a, &log),
            Command::Gc(conf) => collect(conf, &log),
            _ => {}
        }
        return success(None);
    };
    let outcome = match &conf.ipam.backend {
        // No runtime, no kubeconfig: one blocking request to the agent.
        Backend::Agent { socket } => agent::client::ask(socket, &work, &log),
        Backend::Direct { kubeconfig } => direct(kubeconfig, &work, &log),
    };
    let reply = outcome.and_then(|granted| match work {
        Work::Add { .. } => result::build(conf.version, &conf.ipam, &granted).map(Some),
        _ => Ok(None),
    });
    match reply {
        Ok(out) => success(out),
        Err(err) => failure(&log, version, &err, pod.as_deref()),
    }
}

/// The work done by this process: a client built from the kubeconfig, on a current-thread
/// runtime, under the call's hard deadline.
fn direct(kubeconfig: &Path, work: &Work<'_>, log: &Logger) -> Result<Vec<Granted>, CniError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CniError::Io {
            what: "a runtime for the API client",
            reason: e.to_string(),
        })?;
    let outcome = runtime.block_on(work.within(work.budget(), async {
        let cluster = Cluster::connect(kubeconfig)
            .await
            .map_err(|e| work.unusable(e))?;
        work.perform(&cluster, log).await
    }));
    // A file read past the deadline still blocks its thread: leave it behind, the process ends.
    runtime.shutdown_background();
    outcome
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
