//! Every way a plugin call can fail, with its CNI error code.
//!
//! Codes below 100 are the spec's well-known ones; 100 and up are rangepool's own and are listed
//! in the crate README. Messages name the pod (namespace/name), the pool when known, and the
//! reason, because the container runtime shows them to a person as they are.

use std::net::IpAddr;
use std::path::Path;

use crate::text::echo;

/// The code of [`CniError::Internal`], set apart from the others so that a bug is never
/// mistaken for a refusal.
pub const INTERNAL_ERROR: u32 = 199;

/// A failed plugin call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CniError {
    /// The configuration declares a CNI version this plugin does not speak, or one too old for
    /// the command.
    #[error("{reason}; rangepool-ipam supports CNI versions {supported}")]
    IncompatibleVersion {
        /// What is wrong, e.g. `cniVersion "0.2.0" is not supported`.
        reason: String,
        /// The supported versions, comma separated.
        supported: String,
    },
    /// A `CNI_*` environment variable is missing or malformed.
    #[error("environment variable {var}: {reason}")]
    InvalidEnv {
        /// The variable's name.
        var: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading the input failed.
    #[error("cannot read {what}: {reason}")]
    Io {
        /// What was being read.
        what: &'static str,
        /// The I/O error.
        reason: String,
    },
    /// Standard input is not a JSON object.
    #[error("the network configuration on standard input is not a JSON object: {reason}")]
    Decode {
        /// The decoder's complaint (it never quotes the input).
        reason: String,
    },
    /// A configuration key is missing or holds a value of the wrong type or range.
    #[error("network configuration key {key}: {reason}")]
    InvalidConfig {
        /// The key's path, e.g. `ipam.timeout`.
        key: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// A condition that should clear up by itself: the controller has not assigned an address
    /// yet, or the API server did not answer in time.
    #[error("pod {pod}: {reason}; try again later")]
    TryAgain {
        /// namespace/name
        pod: String,
        /// What has not happened yet.
        reason: String,
    },
    /// STATUS: the plugin cannot serve ADD now.
    #[error("rangepool-ipam is not available: {reason}")]
    NotAvailable {
        /// Why.
        reason: String,
    },
    /// The controller gave up on the pod and said why in the `rangepool.dev/error` annotation.
    #[error("pod {pod}: the controller could not assign an address: {message}")]
    AssignmentFailed {
        /// namespace/name
        pod: String,
        /// The controller's message (it names the pool when one is involved).
        message: String,
    },
    /// The address on the pod is not recorded for the pod in the IPAMBlock it names: a forged
    /// or stale annotation.
    #[error(
        "pod {pod}: address {address} (pool {pool}) is not recorded for this pod in IPAMBlock {block}: {reason}; refusing to use it"
    )]
    NotRecorded {
        /// namespace/name
        pod: String,
        /// The pool named by the annotation.
        pool: String,
        /// The address named by the annotation.
        address: IpAddr,
        /// The IPAMBlock named by the annotation.
        block: String,
        /// What the block says instead.
        reason: String,
    },
    /// The pod does not exist (any more).
    #[error("pod {pod}: not found in the API server")]
    PodNotFound {
        /// namespace/name
        pod: String,
    },
    /// The pod of that name is another pod than the one the runtime sets up.
    #[error(
        "pod {pod}: the API server has UID {found} but the runtime asked for UID {expected} (K8S_POD_UID); the pod was re-created, refusing"
    )]
    UidMismatch {
        /// namespace/name
        pod: String,
        /// K8S_POD_UID
        expected: String,
        /// metadata.uid
        found: String,
    },
    /// The controller's annotations cannot be read.
    #[error("pod {pod}: {reason}")]
    MalformedAssignment {
        /// namespace/name
        pod: String,
        /// The parse error (names the annotation).
        reason: String,
    },
    /// CHECK: the pod's address is no longer the container's to use: the pod lost its
    /// assignment, `prevResult` does not list it, or its block no longer records it for the pod.
    #[error("pod {pod}: container {container} no longer holds its address: {reason}")]
    AddressLost {
        /// namespace/name
        pod: String,
        /// CNI_CONTAINERID
        container: String,
        /// What is wrong, naming the address, pool and block.
        reason: String,
    },
    /// The API server refused a request for a reason that retrying will not fix.
    #[error("pod {pod}: the API server refused to {action}: {reason}")]
    Api {
        /// namespace/name
        pod: String,
        /// What the plugin tried, e.g. `read the pod`.
        action: String,
        /// The server's answer.
        reason: String,
    },
    /// The kubeconfig named in the configuration cannot be read or used: not a regular file,
    /// too large, not a kubeconfig, or a field (server, token, tokenFile, ...) that cannot work.
    #[error("cannot use kubeconfig {path}: {reason}")]
    Kubeconfig {
        /// The path from `ipam.kubeconfig`, as [`echo`] shows it.
        path: String,
        /// Why, naming the field; never the file's content when that can hold a credential.
        reason: String,
    },
    /// The plugin and the node agent do not understand each other: a request or reply that
    /// does not parse or is too long, or another protocol version (a plugin and an agent of
    /// different releases).
    #[error(
        "rangepool-ipam and the rangepool node agent on {socket} do not understand each other: {reason}"
    )]
    AgentProtocol {
        /// The agent's socket, as [`echo`] shows it.
        socket: String,
        /// What could not be read; never the bytes themselves.
        reason: String,
    },
    /// The node agent's answer to the call, relayed as it is: its code and its message, which
    /// the agent built from the same errors the plugin uses, and which already names the pod.
    #[error("{msg}")]
    Relayed {
        /// The CNI error code, 1 to 255.
        code: u32,
        /// The message.
        msg: String,
    },
    /// The plugin panicked: a bug. The message gives where, never the panic's payload, which
    /// could quote input.
    #[error(
        "internal error: rangepool-ipam panicked at {location}; this is a bug, please report it"
    )]
    Internal {
        /// `file:line:column` of the panic.
        location: String,
    },
}

impl CniError {
    /// The CNI error code, also the process exit code.
    pub fn code(&self) -> u32 {
        match self {
            CniError::IncompatibleVersion { .. } => 1,
            CniError::InvalidEnv { .. } => 4,
            CniError::Io { .. } => 5,
            CniError::Decode { .. } => 6,
            CniError::InvalidConfig { .. } => 7,
            CniError::TryAgain { .. } => 11,
            CniError::NotAvailable { .. } => 50,
            CniError::AssignmentFailed { .. } => 100,
            CniError::NotRecorded { .. } => 101,
            CniError::PodNotFound { .. } => 102,
            CniError::UidMismatch { .. } => 103,
            CniError::MalformedAssignment { .. } => 104,
            CniError::AddressLost { .. } => 105,
            CniError::Api { .. } => 106,
            CniError::Kubeconfig { .. } => 107,
            // 108 was "GC could not finish": GC holds nothing to clean up now and never fails.
            CniError::AgentProtocol { .. } => 109,
            CniError::Relayed { code, .. } => *code,
            CniError::Internal { .. } => INTERNAL_ERROR,
        }
    }

    /// The protocol error for the agent at `socket`.
    pub fn agent_protocol(socket: &Path, reason: impl Into<String>) -> CniError {
        CniError::AgentProtocol {
            socket: echo(&socket.display().to_string()).to_string(),
            reason: reason.into(),
        }
    }

    /// Whether the error is the API server's content or answer refusing the call (codes 100 to
    /// 106), as opposed to a timeout, bad input or a broken setup: a refusal read from the API
    /// server's cache is confirmed by a read from etcd before it is reported.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            CniError::AssignmentFailed { .. }
                | CniError::NotRecorded { .. }
                | CniError::PodNotFound { .. }
                | CniError::UidMismatch { .. }
                | CniError::MalformedAssignment { .. }
                | CniError::AddressLost { .. }
                | CniError::Api { .. }
        )
    }

    /// The error for the kubeconfig at `path`.
    pub fn kubeconfig(path: &Path, reason: impl Into<String>) -> CniError {
        CniError::Kubeconfig {
            path: echo(&path.display().to_string()).to_string(),
            reason: reason.into(),
        }
    }

    /// Whether the message already starts with the pod's name.
    fn names_pod(&self) -> bool {
        self.is_refusal() || matches!(self, CniError::TryAgain { .. } | CniError::Relayed { .. })
    }

    /// The message shown to a person: the error, prefixed with the pod when the error itself
    /// does not name it and the pod is known.
    pub fn message(&self, pod: Option<&str>) -> String {
        match pod {
            Some(pod) if !self.names_pod() => format!("pod {pod}: {self}"),
            _ => self.to_string(),
        }
    }
}

/// Shorthand for an invalid configuration key.
pub(crate) fn invalid(key: impl Into<String>, reason: impl Into<String>) -> CniError {
    CniError::InvalidConfig {
        key: key.into(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_specs_and_ours() {
        let env = CniError::InvalidEnv {
            var: "CNI_ARGS",
            reason: "x".into(),
        };
        assert_eq!(env.code(), 4);
        assert_eq!(invalid("ipam.timeout", "bad").code(), 7);
        let again = CniError::TryAgain {
            pod: "a/b".into(),
            reason: "r".into(),
        };
        assert_eq!(again.code(), 11);
        let failed = CniError::AssignmentFailed {
            pod: "a/b".into(),
            message: "m".into(),
        };
        assert!(failed.code() >= 100);
        let bug = CniError::Internal {
            location: "src/run.rs:1:2".into(),
        };
        assert_eq!(bug.code(), 199);
        assert_eq!(
            bug.message(Some("ns/web")),
            "pod ns/web: internal error: rangepool-ipam panicked at src/run.rs:1:2; this is a bug, please report it"
        );
    }

    #[test]
    fn only_what_the_api_server_said_is_confirmed_before_a_refusal() {
        let refusals = [
            CniError::AssignmentFailed {
                pod: "a/b".into(),
                message: "m".into(),
            },
            CniError::PodNotFound { pod: "a/b".into() },
            CniError::UidMismatch {
                pod: "a/b".into(),
                expected: "u1".into(),
                found: "u2".into(),
            },
            CniError::Api {
                pod: "a/b".into(),
                action: "read IPPool gold".into(),
                reason: "the pool does not exist".into(),
            },
        ];
        for err in refusals {
            assert!(err.is_refusal(), "{err}");
            assert!((100..=106).contains(&err.code()), "{err}");
        }
        let not = [
            CniError::TryAgain {
                pod: "a/b".into(),
                reason: "the API server did not answer within 10s".into(),
            },
            CniError::kubeconfig(Path::new("/k"), "missing"),
            CniError::NotAvailable { reason: "r".into() },
            CniError::Relayed {
                code: 101,
                msg: "pod a/b: ...".into(),
            },
        ];
        for err in not {
            assert!(!err.is_refusal(), "{err}");
        }
    }

    #[test]
    fn a_kubeconfig_path_is_shown_on_one_line() {
        let err = CniError::kubeconfig(Path::new("/etc/k\nINFO forged"), "missing");
        assert_eq!(err.code(), 107);
        assert_eq!(
            err.to_string(),
            "cannot use kubeconfig /etc/k\\nINFO forged: missing"
        );
    }

    #[test]
    fn message_names_the_pod_once() {
        let config = invalid("ipam.timeout", "must be a number");
        assert_eq!(
            config.message(Some("ns/web")),
            "pod ns/web: network configuration key ipam.timeout: must be a number"
        );
        assert_eq!(
            config.message(None),
            "network configuration key ipam.timeout: must be a number"
        );
        let again = CniError::TryAgain {
            pod: "ns/web".into(),
            reason: "no address yet".into(),
        };
        assert_eq!(
            again.message(Some("ns/web")),
            "pod ns/web: no address yet; try again later"
        );
    }
}
