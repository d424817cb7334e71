//! The network configuration on stdin: a valid one with known keys set to plausible or junk
//! values, removed, or joined by unknown ones, and then its bytes damaged; or bytes that never
//! were a configuration.

use std::path::{Path, PathBuf};
use std::process::Command;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::junk_text;

/// Paths of the configuration's known keys (`0`: the first item of a list).
pub(crate) const KEYS: &[&[&str]] = &[
    &["cniVersion"],
    &["name"],
    &["ipam"],
    &["ipam", "kubeconfig"],
    // A path nothing listens on, or no path at all: the node agent is never there.
    &["ipam", "agentSocket"],
    &["ipam", "timeout"],
    &["ipam", "prefix"],
    &["ipam", "prefix", "ipv4"],
    &["ipam", "prefix", "ipv6"],
    &["ipam", "gateway"],
    &["ipam", "gateway", "ipv4"],
    &["ipam", "gateway", "ipv6"],
    &["ipam", "routes"],
    &["ipam", "routes", "0"],
    &["ipam", "routes", "0", "dst"],
    &["ipam", "routes", "0", "gw"],
    &["ipam", "dns"],
    &["ipam", "dns", "nameservers"],
    &["ipam", "dns", "nameservers", "0"],
    &["ipam", "dns", "domain"],
    &["ipam", "dns", "search"],
    &["ipam", "logLevel"],
    &["ipam", "nodeName"],
    &["prevResult"],
    &["prevResult", "ips"],
    &["prevResult", "ips", "0", "address"],
    &["cni.dev/valid-attachments"],
    &["cni.dev/valid-attachments", "0", "containerID"],
    &["cni.dev/attachments"],
];

#[derive(Debug, Clone)]
pub(crate) enum Stdin {
    /// The base configuration with edits, then the bytes damaged.
    Conf { edits: Vec<Edit>, damage: Damage },
    /// Bytes that were never a configuration.
    Raw(Vec<u8>),
    /// Reading stdin fails.
    Unreadable,
}

#[derive(Debug, Clone)]
pub(crate) enum Edit {
    Set(&'static [&'static str], Value),
    Remove(&'static [&'static str]),
    /// `ipam.logFile` naming something other than a new file.
    LogFile(LogFile),
    /// A key the plugin does not know, at the top or in `ipam`.
    Unknown {
        in_ipam: bool,
        key: String,
        value: Value,
    },
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum LogFile {
    /// A named pipe nobody reads.
    Fifo,
    /// The reply's own stream.
    Stdout,
    Directory,
    InMissingDirectory,
    Empty,
}

#[derive(Debug, Clone)]
pub(crate) enum Damage {
    None,
    /// Cut after this fraction (per mille) of the bytes.
    Truncate(u16),
    /// These bytes inserted at this fraction (per mille).
    Splice(u16, Vec<u8>),
    /// A second document after the first.
    Trailing(String),
}

pub(crate) fn stdin() -> BoxedStrategy<Stdin> {
    let damage = prop_oneof![
        28 => Just(Damage::None),
        1 => (0..1000u16).prop_map(Damage::Truncate),
        2 => (0..1000u16, prop_oneof![
            Just(b"\xff".to_vec()), Just(b"\xc3".to_vec()), Just(b"\0".to_vec()),
            Just(b"\xef\xbb\xbf".to_vec()), Just(b"\x1b[2J".to_vec()), Just(b"\"".to_vec()),
        ]).prop_map(|(at, bytes)| Damage::Splice(at, bytes)),
        1 => prop_oneof![Just("{}"), Just("[]"), Just(" x")].prop_map(|s| Damage::Trailing(s.into())),
    ];
    prop_oneof![
        20 => (vec(edit(), 0..3), damage).prop_map(|(edits, damage)| Stdin::Conf { edits, damage }),
        1 => vec(any::<u8>(), 0..256).prop_map(Stdin::Raw),
        1 => prop_oneof![
            Just(b"".to_vec()), Just(b"null".to_vec()), Just(b"[1]".to_vec()), Just(b"\"s\"".to_vec()),
            (1..20_000usize).prop_map(|n| "[".repeat(n).into_bytes()),
            (1..2_000usize).prop_map(|n| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n)).into_bytes()),
        ].prop_map(Stdin::Raw),
        1 => Just(Stdin::Unreadable),
    ]
    .boxed()
}

pub(crate) fn edit() -> BoxedStrategy<Edit> {
    let path = proptest::sample::select(KEYS);
    prop_oneof![
        3 => valid_edit(),
        3 => (path.clone(), prop_oneof![plausible_value(), junk_value()])
            .prop_map(|(p, v)| Edit::Set(p, v)),
        1 => path.prop_map(Edit::Remove),
        1 => proptest::sample::select(vec![
            LogFile::Fifo, LogFile::Stdout, LogFile::Directory, LogFile::InMissingDirectory,
            LogFile::Empty,
        ])
        .prop_map(Edit::LogFile),
        1 => (any::<bool>(), junk_text(), junk_value())
            .prop_map(|(in_ipam, key, value)| Edit::Unknown { in_ipam, key, value }),
    ]
    .boxed()
}

/// What a real configuration holds, so that calls get past the configuration.
pub(crate) fn valid_edit() -> BoxedStrategy<Edit> {
    let set = |path: &'static [&'static str], v: Value| Just(Edit::Set(path, v));
    prop_oneof![
        set(&["cniVersion"], json!("0.3.1")),
        set(&["cniVersion"], json!("1.0.0")),
        set(&["ipam", "prefix"], json!("block")),
        set(&["ipam", "prefix"], json!({"ipv4": 24, "ipv6": 64})),
        set(&["ipam", "gateway"], json!({"ipv4": "10.99.0.1"})),
        set(
            &["ipam", "routes"],
            json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "fd00::1"}])
        ),
        set(
            &["ipam", "dns"],
            json!({"nameservers": ["10.96.0.10"], "search": ["cluster.local"]})
        ),
        set(&["ipam", "logLevel"], json!("debug")),
        set(&["ipam", "timeout"], json!(600)),
        set(
            &["prevResult"],
            json!({"ips": [{"address": "10.99.0.130/24"}]})
        ),
        set(
            &["cni.dev/valid-attachments"],
            json!([{"containerID": "c1", "ifname": "eth0"}])
        ),
    ]
    .boxed()
}

/// Values of the right kind for some key and the wrong one for most.
pub(crate) fn plausible_value() -> BoxedStrategy<Value> {
    prop_oneof![
        proptest::sample::select(vec![
            "1.1.0",
            "0.4.0",
            "0.2.0",
            "2.0.0",
            "1.1",
            " 1.1.0",
            "",
            "host",
            "block",
            "pool",
            "debug",
            "TRACE",
            "10.0.0.1",
            "fd00::1",
            "10.0.0.0/8",
            "10.0.0.1/8",
            "::/0",
            "0.0.0.0/0",
            "300.1.1.1",
            "10.0.0.0/33",
            "/",
            ".",
            "/dev/null",
        ])
        .prop_map(Value::from),
        proptest::sample::select(vec![
            json!(0),
            json!(24),
            json!(64),
            json!(129),
            json!(-1),
            json!(0.5),
            json!(1e308),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(true),
            json!(null),
            json!([]),
            json!({}),
            json!([{}]),
            json!(["10.0.0.1", 1]),
        ]),
    ]
    .boxed()
}

/// Any JSON at all, nested a few levels.
pub(crate) fn junk_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        junk_text().prop_map(Value::from),
        (1..300_000usize).prop_map(|n| Value::from("x".repeat(n))),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            btree_map("\\PC{0,8}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

impl Stdin {
    /// The bytes on stdin, naming these files (and making the special log file an edit asks
    /// for next to `log`); `None` when reading stdin fails.
    pub(crate) fn render(&self, kubeconfig: &Path, log: &Path) -> Option<Vec<u8>> {
        let (edits, damage) = match self {
            Stdin::Conf { edits, damage } => (edits, damage),
            Stdin::Raw(bytes) => return Some(bytes.clone()),
            Stdin::Unreadable => return None,
        };
        let mut conf = json!({
            "cniVersion": "1.1.0",
            "name": "pods",
            "type": "bridge",
            "ipam": {"type": "rangepool-ipam", "kubeconfig": kubeconfig, "logFile": log, "timeout": 1},
        });
        for edit in edits {
            match edit {
                Edit::Set(path, value) => set(&mut conf, path, value.clone()),
                Edit::Remove(path) => remove(&mut conf, path),
                Edit::LogFile(kind) => set(&mut conf, &["ipam", "logFile"], kind.make(log).into()),
                Edit::Unknown {
                    in_ipam,
                    key,
                    value,
                } => {
                    let at = if *in_ipam {
                        &mut conf["ipam"]
                    } else {
                        &mut conf
                    };
                    if let Some(map) = at.as_object_mut()
                        && !["logFile", "kubeconfig"].contains(&key.as_str())
                    {
                        map.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        let mut bytes = serde_json::to_vec(&conf).unwrap();
        let at = |per_mille: u16| bytes.len() * usize::from(per_mille) / 1000;
        match damage {
            Damage::None => {}
            Damage::Truncate(per_mille) => bytes.truncate(at(*per_mille)),
            Damage::Splice(per_mille, extra) => {
                let at = at(*per_mille);
                bytes.splice(at..at, extra.iter().copied());
            }
            Damage::Trailing(doc) => bytes.extend_from_slice(doc.as_bytes()),
        }
        Some(bytes)
    }
}

impl LogFile {
    /// Makes the file next to `log` if it takes one; returns its path.
    fn make(self, log: &Path) -> String {
        let dir = log.parent().unwrap();
        let path = match self {
            LogFile::Fifo => {
                let fifo = dir.join("log.fifo");
                if !fifo.exists() {
                    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
                    assert!(made.success(), "mkfifo {}", fifo.display());
                }
                fifo
            }
            LogFile::Stdout => PathBuf::from("/dev/stdout"),
            LogFile::Directory => dir.to_owned(),
            LogFile::InMissingDirectory => dir.join("missing/ipam.log"),
            LogFile::Empty => PathBuf::new(),
        };
        path.display().to_string()
    }
}

/// Sets the value at `path`, making the objects and lists on the way.
pub(crate) fn set(at: &mut Value, path: &[&str], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        *at = value;
        return;
    };
    let child = if *first == "0" {
        if !at.is_array() {
            *at = json!([]);
        }
        let items = at.as_array_mut().unwrap();
        if items.is_empty() {
            items.push(json!({}));
        }
        &mut items[0]
    } else {
        if !at.is_object() {
            *at = json!({});
        }
        at.as_object_mut()
            .unwrap()
            .entry(*first)
            .or_insert(Value::Null)
    };
    set(child, rest, value);
}

pub(crate) fn remove(at: &mut Value, path: &[&str]) {
    match path {
        [] => {}
        [last] => match at {
            Value::Object(map) => drop(map.remove(*last)),
            Value::Array(items) if *last == "0" && !items.is_empty() => drop(items.remove(0)),
            _ => {}
        },
        [first, rest @ ..] => {
            let child = match at {
                Value::Array(items) if *first == "0" => items.first_mut(),
                Value::Object(map) => map.get_mut(*first),
                _ => None,
            };
            if let Some(child) = child {
                remove(child, rest);
            }
        }
    }
}
