//! The wire between the plugin and the node agent: one JSON request line per connection, one
//! JSON reply line.
//!
//! ```text
//! {"version":1,"command":"ADD","pod":{"namespace":"shop","name":"web","uid":"..."},"container":"c1","waitMs":30000,"poolPrefix":false}
//! {"version":1,"command":"CHECK","pod":{...},"container":"c1","prevIps":["10.244.8.3"]}
//! {"version":1,"command":"STATUS"}
//!
//! {"version":1,"granted":[{"address":"10.244.8.3","pool":"general","block":"10.244.8.0/26","poolCidr":"10.244.0.0/17"}]}
//! {"version":1,"granted":[]}                                   (CHECK and STATUS passed)
//! {"version":1,"error":{"code":101,"msg":"pod shop/web: ..."}}
//! ```
//!
//! Both sides check what they read, by hand rather than with derived decoders, so that an error
//! names the field and never quotes the bytes: both carry the plugin's input, and a version
//! skew between plugin and agent must end in a clear error, never a panic. The plugin builds
//! the CNI result itself from the granted addresses and its own configuration.

use std::io::{self, BufRead};
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde_json::{Map, Value, json};

use crate::config::MAX_TIMEOUT;
use crate::error::CniError;
use crate::request::{PodRef, is_container_id, is_pod_uid};
use crate::result::Granted;
use crate::text::{is_dns_label, is_dns_subdomain, one_line};
use crate::work::Work;

/// The protocol version both sides speak.
pub const VERSION: u64 = 1;
/// The longest request or reply line, without its newline.
pub const MAX_LINE: usize = 64 * 1024;
/// The longest error message relayed as it is; longer ones are cut.
pub const MAX_MESSAGE: usize = 16 * 1024;

/// A request, as the agent holds it after reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// ADD.
    Add {
        /// The pod, with its UID.
        pod: PodRef,
        /// `CNI_CONTAINERID`.
        container: String,
        /// How long to wait for the controller's assignment.
        wait: Duration,
        /// Whether each pool's range is wanted (`"prefix": "pool"`).
        pool_prefix: bool,
    },
    /// CHECK.
    Check {
        /// The pod.
        pod: PodRef,
        /// `CNI_CONTAINERID`.
        container: String,
        /// The addresses of `prevResult`, when given.
        prev_ips: Option<Vec<IpAddr>>,
    },
    /// STATUS.
    Status,
}

/// The agent's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// ADD's verified addresses; empty when CHECK or STATUS passed.
    Granted(Vec<Granted>),
    /// The call failed with this CNI error.
    Failed {
        /// The CNI error code.
        code: u32,
        /// The message, naming the pod.
        msg: String,
    },
}

impl Request {
    /// The request for `work`.
    pub fn of(work: &Work<'_>) -> Request {
        match *work {
            Work::Add {
                pod,
                container,
                wait,
                pool_prefix,
            } => Request::Add {
                pod: pod.clone(),
                container: container.to_owned(),
                wait,
                pool_prefix,
            },
            Work::Check {
                pod,
                container,
                prev_ips,
            } => Request::Check {
                pod: pod.clone(),
                container: container.to_owned(),
                prev_ips: prev_ips.map(<[IpAddr]>::to_vec),
            },
            Work::Status => Request::Status,
        }
    }

    /// The work it asks for.
    pub fn work(&self) -> Work<'_> {
        match self {
            Request::Add {
                pod,
                container,
                wait,
                pool_prefix,
            } => Work::Add {
                pod,
                container,
                wait: *wait,
                pool_prefix: *pool_prefix,
            },
            Request::Check {
                pod,
                container,
                prev_ips,
            } => Work::Check {
                pod,
                container,
                prev_ips: prev_ips.as_deref(),
            },
            Request::Status => Work::Status,
        }
    }

    /// The request line, newline included.
    pub fn encode(&self) -> String {
        let mut out = Map::new();
        out.insert("version".into(), json!(VERSION));
        out.insert("command".into(), json!(self.work().verb()));
        match self {
            Request::Add {
                pod,
                container,
                wait,
                pool_prefix,
            } => {
                out.insert("pod".into(), pod_json(pod));
                out.insert("container".into(), json!(container));
                let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
                out.insert("waitMs".into(), json!(ms));
                out.insert("poolPrefix".into(), json!(pool_prefix));
            }
            Request::Check {
                pod,
                container,
                prev_ips,
            } => {
                out.insert("pod".into(), pod_json(pod));
                out.insert("container".into(), json!(container));
                if let Some(ips) = prev_ips {
                    let ips: Vec<String> = ips.iter().map(ToString::to_string).collect();
                    out.insert("prevIps".into(), json!(ips));
                }
            }
            Request::Status => {}
        }
        format!("{}\n", Value::Object(out))
    }

    /// Reads a request line (without its newline). The error says what is wrong, naming the
    /// field, never quoting the line.
    pub fn decode(line: &[u8]) -> Result<Request, String> {
        let root = object(line)?;
        version(&root)?;
        let command = string(&root, "command")?.ok_or("command: missing")?;
        match command {
            "ADD" => {
                let pod = pod(&root)?;
                if pod.uid.is_none() {
                    return Err("pod.uid: missing; ADD needs the pod's UID".into());
                }
                let wait = match root.get("waitMs") {
                    None => return Err("waitMs: missing".into()),
                    Some(v) => v
                        .as_u64()
                        .map(Duration::from_millis)
                        .filter(|w| *w <= MAX_TIMEOUT)
                        .ok_or_else(|| {
                            format!(
                                "waitMs: expected a whole number of milliseconds up to {}",
                                MAX_TIMEOUT.as_millis()
                            )
                        })?,
                };
                let pool_prefix = match root.get("poolPrefix") {
                    None => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => return Err("poolPrefix: expected true or false".into()),
                };
                Ok(Request::Add {
                    pod,
                    container: container(&root)?,
                    wait,
                    pool_prefix,
                })
            }
            "CHECK" => Ok(Request::Check {
                pod: pod(&root)?,
                container: container(&root)?,
                prev_ips: match root.get("prevIps") {
                    None => None,
                    Some(Value::Array(items)) => Some(
                        items
                            .iter()
                            .map(|ip| ip.as_str().and_then(|s| s.parse::<IpAddr>().ok()))
                            .collect::<Option<Vec<_>>>()
                            .ok_or("prevIps: expected a list of IP addresses")?,
                    ),
                    Some(_) => return Err("prevIps: expected a list of IP addresses".into()),
                },
            }),
            "STATUS" => Ok(Request::Status),
            _ => Err("command: not one of ADD, CHECK, STATUS".into()),
        }
    }
}

impl Reply {
    /// The reply to a call that ended with `outcome`; `pod` names the pod in the message as
    /// the plugin's own reply would.
    pub fn of(outcome: Result<Vec<Granted>, CniError>, pod: Option<&PodRef>) -> Reply {
        match outcome {
            Ok(granted) => Reply::Granted(granted),
            Err(err) => Reply::Failed {
                code: err.code(),
                msg: one_line(&err.message(pod.map(ToString::to_string).as_deref())),
            },
        }
    }

    /// The reply line, newline included.
    pub fn encode(&self) -> String {
        let body = match self {
            Reply::Granted(granted) => {
                let items: Vec<Value> = granted
                    .iter()
                    .map(|g| {
                        let mut item = Map::new();
                        item.insert("address".into(), json!(g.address.to_string()));
                        item.insert("pool".into(), json!(g.pool));
                        item.insert("block".into(), json!(g.block.to_string()));
                        if let Some(cidr) = g.pool_cidr {
                            item.insert("poolCidr".into(), json!(cidr.to_string()));
                        }
                        Value::Object(item)
                    })
                    .collect();
                json!({"version": VERSION, "granted": items})
            }
            Reply::Failed { code, msg } => {
                json!({"version": VERSION, "error": {"code": code, "msg": msg}})
            }
        };
        format!("{body}\n")
    }

    /// Reads a reply line (without its newline). The error says what is wrong, never quoting
    /// the line.
    pub fn decode(line: &[u8]) -> Result<Reply, String> {
        let root = object(line)?;
        version(&root)?;
        match (root.get("granted"), root.get("error")) {
            (Some(Value::Array(items)), None) => items
                .iter()
                .enumerate()
                .map(|(i, item)| granted(i, item))
                .collect::<Result<Vec<_>, _>>()
                .map(Reply::Granted),
            (None, Some(Value::Object(error))) => {
                let code = error
                    .get("code")
                    .and_then(Value::as_u64)
                    .filter(|c| (1..=u64::from(u8::MAX)).contains(c))
                    .ok_or("error.code: expected a CNI error code from 1 to 255")?;
                let msg = error
                    .get("msg")
                    .and_then(Value::as_str)
                    .ok_or("error.msg: expected a string")?;
                Ok(Reply::Failed {
                    code: u32::try_from(code).map_err(|_| "error.code: out of range")?,
                    msg: bounded(msg),
                })
            }
            _ => Err("expected exactly one of granted (a list) and error (an object)".into()),
        }
    }
}

/// What went wrong reading a line.
#[derive(Debug)]
pub enum LineError {
    /// The peer closed the connection before sending anything.
    Closed,
    /// More than [`MAX_LINE`] bytes without a newline.
    TooLong,
    /// Reading failed (a timeout included).
    Io(io::Error),
}

/// Reads one line of at most [`MAX_LINE`] bytes, without its newline. A last line without a
/// newline counts when the peer closed after it.
pub fn read_line(reader: &mut impl BufRead) -> Result<Vec<u8>, LineError> {
    let mut buf = Vec::new();
    let cap = u64::try_from(MAX_LINE + 1).unwrap_or(u64::MAX);
    // `Read::take` on the reference: the reader itself stays the caller's.
    std::io::Read::take(reader, cap)
        .read_until(b'\n', &mut buf)
        .map_err(LineError::Io)?;
    finish_line(buf)
}

/// What was read (up to [`MAX_LINE`] + 1 bytes, up to and including the first newline) as a
/// line; shared by the plugin's blocking reads and the agent's asynchronous ones.
pub fn finish_line(mut buf: Vec<u8>) -> Result<Vec<u8>, LineError> {
    if buf.last() == Some(&b'\n') {
        buf.pop();
        Ok(buf)
    } else if buf.len() > MAX_LINE {
        Err(LineError::TooLong)
    } else if buf.is_empty() {
        Err(LineError::Closed)
    } else {
        Ok(buf)
    }
}

fn object(line: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("not a JSON object".into()),
        // serde's message can quote the input: keep only where.
        Err(e) => Err(format!(
            "not JSON ({:?} error at column {})",
            e.classify(),
            e.column()
        )),
    }
}

fn version(root: &Map<String, Value>) -> Result<(), String> {
    match root.get("version").and_then(Value::as_u64) {
        Some(VERSION) => Ok(()),
        Some(other) => Err(format!(
            "protocol version {other}, but this side speaks version {VERSION}; are the plugin and the agent of the same release?"
        )),
        None => Err("version: missing or not a number".into()),
    }
}

fn string<'a>(map: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, String> {
    match map.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{key}: expected a string")),
    }
}

fn pod_json(pod: &PodRef) -> Value {
    let mut out = json!({"namespace": pod.namespace, "name": pod.name});
    if let Some(uid) = &pod.uid {
        out["uid"] = json!(uid);
    }
    out
}

/// The pod, under the rules the plugin applies to `CNI_ARGS`: its names are in every message
/// and log line.
fn pod(root: &Map<String, Value>) -> Result<PodRef, String> {
    let Some(Value::Object(pod)) = root.get("pod") else {
        return Err("pod: missing or not an object".into());
    };
    let namespace = string(pod, "namespace")?
        .filter(|n| is_dns_label(n))
        .ok_or("pod.namespace: expected a namespace's name")?;
    let name = string(pod, "name")?
        .filter(|n| is_dns_subdomain(n))
        .ok_or("pod.name: expected a pod's name")?;
    let uid = match string(pod, "uid")? {
        None => None,
        Some(uid) if is_pod_uid(uid) => Some(uid.to_owned()),
        Some(_) => return Err("pod.uid: expected a pod UID".into()),
    };
    Ok(PodRef {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        uid,
    })
}

fn container(root: &Map<String, Value>) -> Result<String, String> {
    string(root, "container")?
        .filter(|c| is_container_id(c))
        .map(str::to_owned)
        .ok_or_else(|| "container: expected a container ID".into())
}

fn granted(i: usize, item: &Value) -> Result<Granted, String> {
    let at = |key: &str| format!("granted[{i}].{key}");
    let Value::Object(item) = item else {
        return Err(format!("granted[{i}]: expected an object"));
    };
    let field = |key: &str| item.get(key).and_then(Value::as_str);
    let address: IpAddr = field("address")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("{}: expected an IP address", at("address")))?;
    let range = |key: &str| -> Result<Option<IpNet>, String> {
        match item.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .and_then(|r| r.parse::<IpNet>().ok())
                .filter(|net| net.contains(&address))
                .map(Some)
                .ok_or_else(|| format!("{}: expected a range holding {address}", at(key))),
        }
    };
    Ok(Granted {
        address,
        pool: field("pool")
            .filter(|p| is_dns_subdomain(p))
            .ok_or_else(|| format!("{}: expected a pool's name", at("pool")))?
            .to_owned(),
        block: range("block")?.ok_or_else(|| format!("{}: missing", at("block")))?,
        pool_cidr: range("poolCidr")?,
    })
}

/// `msg` on one line and at most [`MAX_MESSAGE`] characters.
fn bounded(msg: &str) -> String {
    let line = one_line(msg);
    match line.char_indices().nth(MAX_MESSAGE) {
        None => line,
        Some((at, _)) => format!(
            "{}... ({} more characters)",
            &line[..at],
            line[at..].chars().count()
        ),
    }
}

#[cfg(test)]
mod tests;
