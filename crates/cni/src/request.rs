//! One plugin call, read from the `CNI_*` environment and the configuration on standard input
//! into a single [`Command`]; and, before that, whether the binary was started for a call at
//! all or by a person asking for `--help` or `--version` ([`invocation`]).

use std::ffi::OsString;
use std::fmt;

use crate::config::{self, NetConf};
use crate::error::CniError;
use crate::text::{echo, is_dns_label, is_dns_subdomain};
use crate::version::CniVersion;

/// The pod a call is for, from `CNI_ARGS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    /// `K8S_POD_NAMESPACE`
    pub namespace: String,
    /// `K8S_POD_NAME`
    pub name: String,
    /// `K8S_POD_UID`. ADD refuses a call without it; CHECK and DEL go on without.
    pub uid: Option<String>,
}

impl fmt::Display for PodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// ADD, DEL and CHECK act on one container's attachment to the network.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    /// `CNI_CONTAINERID`: the sandbox, for logs and CHECK's error.
    pub container_id: String,
    /// `CNI_IFNAME`, for logs.
    pub ifname: String,
    /// The pod, from `CNI_ARGS`.
    pub pod: PodRef,
    /// The network configuration.
    pub conf: NetConf,
}

/// A parsed plugin call.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Check the pod's address against its block and return it.
    Add(Attachment),
    /// Nothing to undo: the address stays the pod's.
    Del(Attachment),
    /// Verify the block still records the pod's address.
    Check(Attachment),
    /// Report the supported CNI versions.
    Version,
    /// Report whether ADD can be served.
    Status(NetConf),
    /// Nothing to collect: nothing is held per container.
    Gc(NetConf),
}

impl Command {
    /// The `CNI_COMMAND` word.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Add(_) => "ADD",
            Command::Del(_) => "DEL",
            Command::Check(_) => "CHECK",
            Command::Version => "VERSION",
            Command::Status(_) => "STATUS",
            Command::Gc(_) => "GC",
        }
    }

    /// The network configuration, for every command but VERSION.
    pub fn conf(&self) -> Option<&NetConf> {
        match self {
            Command::Add(a) | Command::Del(a) | Command::Check(a) => Some(&a.conf),
            Command::Status(c) | Command::Gc(c) => Some(c),
            Command::Version => None,
        }
    }

    /// The pod, for ADD, DEL and CHECK.
    pub fn pod(&self) -> Option<&PodRef> {
        match self {
            Command::Add(a) | Command::Del(a) | Command::Check(a) => Some(&a.pod),
            _ => None,
        }
    }
}

/// How the binary was started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// A CNI call, read with [`parse`]: `CNI_COMMAND` is set (whatever the arguments), or
    /// nothing asks otherwise.
    Cni,
    /// `--help` or `-h` without `CNI_COMMAND`: [`crate::usage::HELP`] on stdout.
    Help,
    /// `--version` or `-V` without `CNI_COMMAND`: [`crate::usage::version_text`] on stdout.
    Version,
    /// Another argument without `CNI_COMMAND`: what is wrong, for stderr (exit 2, no CNI reply).
    BadArgument(String),
}

/// Tells a runtime's call from a person's `--help` or `--version`. A runtime always sets
/// `CNI_COMMAND` and passes no arguments; with `CNI_COMMAND` set the arguments are not looked
/// at, so a call is read exactly as it would be without them. `--help` wins over `--version`.
pub fn invocation(cni_command_set: bool, args: &[OsString]) -> Invocation {
    if cni_command_set || args.is_empty() {
        return Invocation::Cni;
    }
    let mut asked = Invocation::Version;
    for arg in args {
        match arg.to_str() {
            Some("--help" | "-h") => asked = Invocation::Help,
            Some("--version" | "-V") => {}
            _ => {
                return Invocation::BadArgument(format!(
                    "unknown argument {:?}; rangepool-ipam takes --help or --version, and is otherwise run by the container runtime with CNI_COMMAND set",
                    echo(&arg.to_string_lossy())
                ));
            }
        }
    }
    asked
}

/// A call that could not be parsed, with what is known for the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseFailure {
    /// What is wrong.
    pub error: CniError,
    /// The pod, when `CNI_ARGS` was read before the failure.
    pub pod: Option<String>,
    /// The version to reply in: the configuration's when it could be read.
    pub version: CniVersion,
}

/// The longest container ID accepted: what an IPAMBlock allocation's `container` field held when
/// earlier versions recorded it, and far more than any runtime sends.
const MAX_CONTAINER_ID: usize = 128;
/// The longest pod UID accepted: a UUID has 36 characters, a static pod's hash 32.
const MAX_POD_UID: usize = 128;
/// The longest interface name Linux accepts (`IFNAMSIZ` less the terminating NUL).
const MAX_IFNAME: usize = 15;

/// Reads one call. `env` looks up an environment variable; `stdin` reads standard input and is
/// called only for commands that take a configuration.
pub fn parse(
    env: &dyn Fn(&str) -> Option<String>,
    stdin: impl FnOnce() -> std::io::Result<Vec<u8>>,
) -> Result<Command, Box<ParseFailure>> {
    let fail = |error, pod: Option<&str>, version| {
        Box::new(ParseFailure {
            error,
            pod: pod.map(str::to_owned),
            version,
        })
    };
    let verb = env("CNI_COMMAND").unwrap_or_default();
    let verb = match verb.as_str() {
        "VERSION" => return Ok(Command::Version),
        "ADD" | "DEL" | "CHECK" | "STATUS" | "GC" => verb,
        "" => {
            return Err(fail(
                env_error("CNI_COMMAND", "missing"),
                None,
                CniVersion::LATEST,
            ));
        }
        other => {
            return Err(fail(
                env_error(
                    "CNI_COMMAND",
                    format!(
                        "{:?} is not one of ADD, DEL, CHECK, VERSION, STATUS, GC",
                        echo(other)
                    ),
                ),
                None,
                CniVersion::LATEST,
            ));
        }
    };
    let container = if matches!(verb.as_str(), "ADD" | "DEL" | "CHECK") {
        let ids = container_env(env).map_err(|e| fail(e, None, CniVersion::LATEST))?;
        Some(ids)
    } else {
        None
    };
    let pod_name = container.as_ref().map(|(_, _, pod)| pod.to_string());
    let pod = pod_name.as_deref();
    // Without the UID an old sandbox of a re-created pod (same namespace and name) would be
    // given the new pod's address. DEL sends no request, and CHECK only re-reads what ADD gave.
    if verb == "ADD"
        && let Some((_, _, p)) = &container
        && p.uid.is_none()
    {
        return Err(fail(
            env_error(
                "CNI_ARGS",
                "K8S_POD_UID is missing; ADD needs the pod's UID so that the sandbox of an older pod of the same name cannot take the address of the pod that replaced it (containerd and CRI-O always send it)",
            ),
            pod,
            CniVersion::LATEST,
        ));
    }

    let bytes = stdin().map_err(|e| {
        fail(
            CniError::Io {
                what: "the network configuration from standard input",
                reason: e.to_string(),
            },
            pod,
            CniVersion::LATEST,
        )
    })?;
    let root = config::parse_json(&bytes).map_err(|e| fail(e, pod, CniVersion::LATEST))?;
    let version = config::parse_version(&root).map_err(|e| fail(e, pod, CniVersion::LATEST))?;
    let conf = config::parse(&root).map_err(|e| fail(e, pod, version))?;

    let too_old = |needed: &str| {
        fail(
            CniError::IncompatibleVersion {
                reason: format!(
                    "{verb} needs cniVersion {needed} or later, the configuration declares {version}"
                ),
                supported: CniVersion::supported_list().join(", "),
            },
            pod,
            version,
        )
    };
    match (verb.as_str(), container) {
        ("ADD", Some((container_id, ifname, pod))) => Ok(Command::Add(Attachment {
            container_id,
            ifname,
            pod,
            conf,
        })),
        ("DEL", Some((container_id, ifname, pod))) => Ok(Command::Del(Attachment {
            container_id,
            ifname,
            pod,
            conf,
        })),
        ("CHECK", Some(_)) if !version.has_check() => Err(too_old("0.4.0")),
        ("CHECK", Some((container_id, ifname, pod))) => Ok(Command::Check(Attachment {
            container_id,
            ifname,
            pod,
            conf,
        })),
        ("STATUS" | "GC", _) if !version.has_status_and_gc() => Err(too_old("1.1.0")),
        ("STATUS", _) => Ok(Command::Status(conf)),
        _ if conf.valid_attachments.is_none() => {
            Err(fail(config_missing_attachments(), None, version))
        }
        _ => Ok(Command::Gc(conf)),
    }
}

fn config_missing_attachments() -> CniError {
    crate::error::invalid(
        "cni.dev/valid-attachments",
        "missing; the runtime sends its list of valid attachments with every GC (CNI 1.1)",
    )
}

fn env_error(var: &'static str, reason: impl Into<String>) -> CniError {
    CniError::InvalidEnv {
        var,
        reason: reason.into(),
    }
}

/// `CNI_CONTAINERID`, `CNI_IFNAME` and the pod from `CNI_ARGS`.
fn container_env(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, String, PodRef), CniError> {
    let id = env("CNI_CONTAINERID").unwrap_or_default();
    check_container_id(&id)?;
    let ifname = env("CNI_IFNAME").unwrap_or_default();
    check_ifname(&ifname)?;
    let pod = parse_cni_args(&env("CNI_ARGS").unwrap_or_default())?;
    Ok((id, ifname, pod))
}

fn check_container_id(id: &str) -> Result<(), CniError> {
    if id.is_empty() {
        return Err(env_error("CNI_CONTAINERID", "missing"));
    }
    if !container_shaped(id) {
        return Err(env_error(
            "CNI_CONTAINERID",
            "must start with a letter or digit followed by letters, digits, '_', '.' or '-'",
        ));
    }
    if id.len() > MAX_CONTAINER_ID {
        return Err(env_error(
            "CNI_CONTAINERID",
            format!("longer than {MAX_CONTAINER_ID} characters"),
        ));
    }
    Ok(())
}

/// Whether `id` is a container ID as the plugin accepts it: a letter or digit followed by
/// letters, digits, '_', '.' or '-', at most 128 characters.
pub fn is_container_id(id: &str) -> bool {
    id.len() <= MAX_CONTAINER_ID && container_shaped(id)
}

fn container_shaped(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Whether `uid` is a pod UID as the plugin accepts it: at most 128 letters, digits, '-', '_'
/// or '.'.
pub fn is_pod_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= MAX_POD_UID
        && uid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// An interface name as Linux accepts it (`dev_valid_name`): 1 to 15 bytes, not `.` or `..`,
/// without '/', ':' or whitespace.
fn check_ifname(name: &str) -> Result<(), CniError> {
    if name.is_empty() {
        return Err(env_error("CNI_IFNAME", "missing"));
    }
    let valid = name.len() <= MAX_IFNAME
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if valid {
        Ok(())
    } else {
        Err(env_error(
            "CNI_IFNAME",
            format!(
                "{:?} is not an interface name (at most {MAX_IFNAME} bytes, no '/', ':' or whitespace)",
                echo(name)
            ),
        ))
    }
}

/// Reads `K8S_POD_NAMESPACE`, `K8S_POD_NAME` and `K8S_POD_UID` from `KEY=VALUE;...`; other keys
/// (`IgnoreUnknown`, `K8S_POD_INFRA_CONTAINER_ID`, ...) are ignored.
pub fn parse_cni_args(raw: &str) -> Result<PodRef, CniError> {
    let (mut namespace, mut name, mut uid) = (None, None, None);
    for pair in raw.split(';').filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(env_error(
                "CNI_ARGS",
                format!("entry {:?} is not KEY=VALUE", echo(pair)),
            ));
        };
        match key {
            "K8S_POD_NAMESPACE" => namespace = Some(value),
            "K8S_POD_NAME" => name = Some(value),
            "K8S_POD_UID" => uid = Some(value),
            _ => {}
        }
    }
    let required = |value: Option<&str>, key: &str| match value {
        Some(v) if !v.is_empty() => Ok(v.to_owned()),
        _ => Err(env_error(
            "CNI_ARGS",
            format!("{key} is missing; rangepool-ipam serves Kubernetes pods only"),
        )),
    };
    let namespace = required(namespace, "K8S_POD_NAMESPACE")?;
    let name = required(name, "K8S_POD_NAME")?;
    // Both are in every message and log line: only what Kubernetes allows passes.
    shaped(
        &namespace,
        "K8S_POD_NAMESPACE",
        "a namespace's name (at most 63 lowercase letters, digits and '-')",
        is_dns_label,
    )?;
    shaped(
        &name,
        "K8S_POD_NAME",
        "a pod's name (at most 253 lowercase letters, digits, '-' and '.')",
        is_dns_subdomain,
    )?;
    let uid = uid.filter(|u| !u.is_empty()).map(str::to_owned);
    if let Some(uid) = &uid
        && !is_pod_uid(uid)
    {
        return Err(env_error(
            "CNI_ARGS",
            format!(
                "K8S_POD_UID {:?} is not a pod UID (at most {MAX_POD_UID} letters, digits, '-', '_' or '.')",
                echo(uid)
            ),
        ));
    }
    Ok(PodRef {
        namespace,
        name,
        uid,
    })
}

fn shaped(value: &str, key: &str, expected: &str, valid: fn(&str) -> bool) -> Result<(), CniError> {
    if valid(value) {
        Ok(())
    } else {
        Err(env_error(
            "CNI_ARGS",
            format!("{key} {:?} is not {expected}", echo(value)),
        ))
    }
}

#[cfg(test)]
mod tests;
