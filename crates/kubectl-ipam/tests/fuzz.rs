//! Property tests of `kubectl ipam plan` on manifests a careless admin (or a hostile
//! repository) hands it: the objects the planner reads, near-valid and then damaged (unknown and
//! misspelled fields, wrong types, huge numbers, bad CIDRs and selectors, deep nesting), written
//! as JSON or YAML, several documents to a file, and the text damaged too (duplicate keys, bad
//! indentation, tabs, invalid UTF-8, aliases).
//!
//! Whatever the input, the built binary exits 0, 1 or 2 on its own (never a panic's 101 or a
//! signal) within its bound; an exit 2 names a file it was given and prints no plan; an exit 0
//! or 1 with `-o json` prints one JSON document whose `clean` agrees with the exit status and
//! whose addresses are each given once, from the range of the pool that gives them.
//!
//! Every case is a process, so the default number of cases is small; `PROPTEST_CASES` raises it
//! (`make fuzz`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use serde_json::{Value, json};
use support::{Manifest, ippool, kubeadm, namespace, node, pod};

/// Cases per run when `PROPTEST_CASES` is not set.
const DEFAULT_CASES: u32 = 256;
/// A hang guard, not a speed goal: a plan of a few objects takes milliseconds.
const RUN_BOUND: Duration = Duration::from_secs(20);
const V4_POOLS: &str = "cni.projectcalico.org/ipv4pools";
const V6_POOLS: &str = "cni.projectcalico.org/ipv6pools";

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_manifests_get_a_plan_or_an_error_naming_the_file(input in input()) {
        let dir = tempfile::tempdir().unwrap();
        let files = input.write(dir.path());
        let run = plan(dir.path(), input.json);
        let code = run
            .code
            .ok_or_else(|| TestCaseError::fail(format!("killed by a signal; stderr: {}", run.stderr)))?;
        prop_assert!(
            matches!(code, 0..=2),
            "exit status {code}; stderr: {}",
            run.stderr
        );
        if code == 2 {
            prop_assert!(
                files.iter().any(|f| run.stderr.contains(&f.display().to_string())),
                "exit 2 without naming a file: {}",
                run.stderr
            );
            prop_assert!(run.stdout.is_empty(), "a plan after exit 2: {}", run.stdout);
        } else if input.json {
            check_plan(&run.stdout, code)?;
        } else {
            prop_assert!(!run.stdout.is_empty(), "exit {code} without a table");
        }
    }
}

/// `PROPTEST_CASES` cases, else [`DEFAULT_CASES`].
fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    Config {
        cases: cases.max(1),
        ..Config::default()
    }
}

/// One JSON document in the documented shape, agreeing with the exit status, and every address
/// given once and from its pool's range.
fn check_plan(stdout: &str, code: i32) -> Result<(), TestCaseError> {
    let plan: Value = serde_json::from_str(stdout).map_err(|e| {
        TestCaseError::fail(format!("stdout is not one JSON document ({e}): {stdout}"))
    })?;
    prop_assert_eq!(
        plan["clean"].as_bool(),
        Some(code == 0),
        "clean vs exit {}",
        code
    );
    for key in ["podCIDRs", "families", "pods", "pools", "skipped", "notes"] {
        prop_assert!(plan[key].is_array(), "{key} is not a list: {stdout}");
    }
    let pools = plan["pools"].as_array().unwrap();
    let mut given = BTreeSet::new();
    for row in plan["pods"].as_array().unwrap() {
        let Some(address) = row["address"].as_str() else {
            prop_assert!(row["reason"].is_string(), "no address and no reason: {row}");
            continue;
        };
        let address: IpAddr = address.parse()?;
        prop_assert!(given.insert(address), "{address} given twice: {stdout}");
        let pool = pools
            .iter()
            .find(|p| p["name"] == row["pool"])
            .ok_or_else(|| TestCaseError::fail(format!("no row for the pool of {row}")))?;
        let cidr: IpNet = pool["cidr"].as_str().unwrap_or_default().parse()?;
        prop_assert!(
            cidr.contains(&address),
            "{address} outside {cidr}: {stdout}"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Running the binary.

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `kubectl ipam plan -f DIR [-o json]`, killed after [`RUN_BOUND`].
fn plan(dir: &Path, json: bool) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubectl-ipam"));
    command.arg("plan").arg("-f").arg(dir);
    if json {
        command.args(["-o", "json"]);
    }
    let mut child = command
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kubectl-ipam");
    let drain = |mut from: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = from.read_to_end(&mut out);
            String::from_utf8_lossy(&out).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > RUN_BOUND {
            let _ = child.kill();
            panic!("kubectl ipam plan did not exit in {RUN_BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Run {
        code: status.code(),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs.

/// A directory of manifest files, and the output asked for.
#[derive(Debug, Clone)]
struct Input {
    files: Vec<File>,
    json: bool,
}

#[derive(Debug, Clone)]
struct File {
    name: &'static str,
    docs: Vec<Value>,
    yaml: bool,
    edits: Vec<TextEdit>,
}

#[derive(Debug, Clone)]
enum TextEdit {
    DropLine(usize),
    /// In block YAML: the same key twice.
    DuplicateLine(usize),
    Indent(usize),
    Truncate(u16),
    Splice(u16, Vec<u8>),
    /// Anchors and aliases that expand a billion-fold.
    AliasBomb,
}

fn input() -> BoxedStrategy<Input> {
    let pod_subnet = prop_oneof![
        4 => Just("10.244.0.0/16".to_owned()),
        2 => Just("10.244.0.0/16,fd00:10:244::/56".to_owned()),
        1 => cidr(),
    ];
    (
        edited(pod_subnet.prop_map(|c| kubeadm(&c)).boxed()),
        vec(edited(object()), 1..10),
        vec(file_shape(), 1..4),
        vec(any::<prop::sample::Index>(), 12),
        prop_oneof![3 => Just(true), 1 => Just(false)],
    )
        .prop_map(|(kubeadm, objects, mut files, placement, json)| {
            // The usual background first: a pod CIDR, a node and a namespace, then the objects,
            // each in one of the files.
            let background = [
                kubeadm,
                node("node-1").to_json(),
                namespace("default").to_json(),
            ];
            for (i, doc) in background.into_iter().chain(objects).enumerate() {
                let at = placement[i % placement.len()].index(files.len());
                files[at].docs.push(doc);
            }
            Input { files, json }
        })
        .boxed()
}

fn file_shape() -> BoxedStrategy<File> {
    let name = proptest::sample::select(vec![
        "cluster.yaml",
        "pools.yml",
        "pods.json",
        "sub/dir/more.yaml",
        "notes.txt",
        ".hidden.yaml",
    ]);
    let edits = prop_oneof![3 => Just(Vec::new()), 1 => vec(text_edit(), 1..4)];
    (name, any::<bool>(), edits)
        .prop_map(|(name, yaml, edits)| File {
            name,
            docs: Vec::new(),
            yaml,
            edits,
        })
        .boxed()
}

fn text_edit() -> BoxedStrategy<TextEdit> {
    prop_oneof![
        2 => (0..200usize).prop_map(TextEdit::DropLine),
        2 => (0..200usize).prop_map(TextEdit::DuplicateLine),
        2 => (0..200usize).prop_map(TextEdit::Indent),
        1 => (0..1000u16).prop_map(TextEdit::Truncate),
        2 => (0..1000u16, proptest::sample::select(vec![
            b"\xff".to_vec(), b"\xc3".to_vec(), b"\t".to_vec(), b"\0".to_vec(), b"\r".to_vec(),
            b"'".to_vec(), b"{".to_vec(), b"\n---\n".to_vec(), b"\n...\n".to_vec(), b"&a ".to_vec(),
            b"*a".to_vec(), b"!!binary ".to_vec(), b"\xef\xbb\xbf".to_vec(),
        ])).prop_map(|(at, bytes)| TextEdit::Splice(at, bytes)),
        1 => Just(TextEdit::AliasBomb),
    ]
    .boxed()
}

impl Input {
    /// Writes the files below `dir`; returns the paths the planner reads.
    fn write(&self, dir: &Path) -> Vec<PathBuf> {
        let mut read = Vec::new();
        for (i, file) in self.files.iter().enumerate() {
            // Two files of one name would overwrite each other.
            let path = dir.join(i.to_string()).join(file.name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, file.render()).unwrap();
            if !file.name.ends_with(".txt") && !file.name.starts_with('.') {
                read.push(path);
            }
        }
        read
    }
}

impl File {
    fn render(&self) -> Vec<u8> {
        let docs: Vec<String> = self
            .docs
            .iter()
            .map(|doc| {
                if self.yaml {
                    serde_saphyr::to_string(doc).unwrap()
                } else {
                    doc.to_string()
                }
            })
            .collect();
        let text = docs.join("\n---\n");
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let mut tail = Vec::new();
        for edit in &self.edits {
            let n = lines.len().max(1);
            match edit {
                TextEdit::DropLine(i) if !lines.is_empty() => drop(lines.remove(i % n)),
                TextEdit::DuplicateLine(i) if !lines.is_empty() => {
                    let line = lines[i % n].clone();
                    lines.insert(i % n, line);
                }
                TextEdit::Indent(i) if !lines.is_empty() => lines[i % n].insert_str(0, "  "),
                TextEdit::AliasBomb => {
                    lines.push("---".into());
                    lines.push("a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]".into());
                    for level in 1..9 {
                        let prev = format!("*a{}", level - 1);
                        lines.push(format!(
                            "a{level}: &a{level} [{}]",
                            vec![prev; 10].join(",")
                        ));
                    }
                }
                TextEdit::Truncate(_) | TextEdit::Splice(..) => tail.push(edit),
                _ => {}
            }
        }
        let mut bytes = (lines.join("\n") + "\n").into_bytes();
        for edit in tail {
            let at = |per_mille: &u16| bytes.len() * usize::from(*per_mille) / 1000;
            match edit {
                TextEdit::Truncate(per_mille) => bytes.truncate(at(per_mille)),
                TextEdit::Splice(per_mille, extra) => {
                    let at = at(per_mille);
                    bytes.splice(at..at, extra.iter().copied());
                }
                _ => {}
            }
        }
        bytes
    }
}

// --- Objects.

/// One object the planner reads, near-valid.
fn object() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => pool_object(),
        4 => pod_object(),
        1 => labelled("Namespace"),
        1 => labelled("Node"),
        1 => Just(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc", "namespace": "default"}})),
    ]
    .boxed()
}

/// `base`, maybe edited and maybe wrapped in a List.
fn edited(base: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    let edits = prop_oneof![2 => Just(Vec::new()), 1 => vec(object_edit(), 1..4)];
    (base, edits, prop_oneof![9 => Just(false), 1 => Just(true)])
        .prop_map(|(mut doc, edits, listed)| {
            for edit in edits {
                edit.apply(&mut doc);
            }
            if listed {
                json!({"apiVersion": "v1", "kind": "List", "items": [doc]})
            } else {
                doc
            }
        })
        .boxed()
}

fn pool_object() -> BoxedStrategy<Value> {
    (
        proptest::sample::select(vec!["general", "payments", "partners", "gold", "v6"]),
        cidr(),
        proptest::option::of(prop_oneof![20..=32i64, 116..=128i64]),
        proptest::option::of(selector()),
        proptest::option::of(selector()),
        (
            any::<bool>(),
            prop_oneof![9 => Just(false), 1 => Just(true)],
            any::<bool>(),
        ),
        proptest::option::of(Just("2024-01-01T00:00:00Z")),
    )
        .prop_map(
            |(name, cidr, block, ns_sel, node_sel, (manual, disabled, calico), created)| {
                let mut pool = ippool(name, &cidr);
                if let Some(size) = block {
                    pool = pool.block_size(size);
                }
                if let Some(s) = ns_sel {
                    pool = pool.namespace_selector(&s);
                }
                if let Some(s) = node_sel {
                    pool = pool.node_selector(&s);
                }
                if manual {
                    pool = pool.manual();
                }
                if disabled {
                    pool = pool.disabled();
                }
                if calico {
                    pool = pool.calico();
                }
                if let Some(at) = created {
                    pool = pool.created(at);
                }
                pool.to_json()
            },
        )
        .boxed()
}

fn pod_object() -> BoxedStrategy<Value> {
    let pools = proptest::sample::select(vec![
        "[\"general\"]",
        "[\"payments\", \"gold\"]",
        "[\"v6\"]",
        "[\"missing\"]",
        "[]",
        "general",
        "[\"general\"",
    ]);
    (
        "web|db|batch-[0-9]|[a-z]{1,8}",
        proptest::sample::select(vec!["default", "payments", "kube-system", "missing"]),
        proptest::sample::select(vec![Some("node-1"), Some("node-2"), None]),
        proptest::option::of((proptest::sample::select(vec![V4_POOLS, V6_POOLS]), pools)),
        prop_oneof![6 => Just(None), 1 => Just(Some("Succeeded")), 1 => Just(Some("Running"))],
        prop_oneof![9 => Just(false), 1 => Just(true)],
    )
        .prop_map(|(name, ns, on, pools, phase, host)| {
            let mut pod = pod(&name).in_ns(ns);
            pod = match on {
                Some(node) => pod.on_node(node),
                None => pod.unbound(),
            };
            if let Some((key, value)) = pools {
                pod = pod.annotated(key, value);
            }
            if let Some(phase) = phase {
                pod = pod.phase(phase);
            }
            if host {
                pod = pod.host_network();
            }
            pod.to_json()
        })
        .boxed()
}

/// A Namespace or Node with a label the selectors look at.
fn labelled(kind: &'static str) -> BoxedStrategy<Value> {
    (
        proptest::sample::select(vec!["default", "payments", "node-1", "node-2"]),
        proptest::sample::select(vec!["payments", "web", "edge", ""]),
    )
        .prop_map(move |(name, team)| {
            let object = if kind == "Node" {
                node(name)
            } else {
                namespace(name)
            };
            object.labelled("team", team).to_json()
        })
        .boxed()
}

fn cidr() -> BoxedStrategy<String> {
    prop_oneof![
        6 => proptest::sample::select(vec![
            "10.244.0.0/16", "10.244.8.0/24", "10.244.9.0/28", "10.244.128.0/17", "10.244.0.0/31",
            "10.244.0.0/32", "fd00:10:244::/56", "fd00:10:244::/120", "fd00:10:244::/64",
        ]),
        1 => proptest::sample::select(vec![
            "10.244.0.1/16", "192.168.0.0/16", "0.0.0.0/0", "::/0", "10.244.0.0/33", "10.244.0.0",
            "banana", "", " 10.244.0.0/16", "10.244.0.0/16\n", "fd00::/129", "10.244.0.0/8",
            "::ffff:10.244.0.0/112",
        ]),
    ]
    .prop_map(str::to_owned)
    .boxed()
}

fn selector() -> BoxedStrategy<String> {
    prop_oneof![
        6 => proptest::sample::select(vec![
            "all()", "", "team == 'payments'", "team != \"web\"", "has(team)", "!has(team)",
            "team in {'payments', 'web'}", "team not in {}", "team contains 'pay'",
            "team starts with 'p' && !(team ends with 's') || all()",
        ]).prop_map(str::to_owned),
        1 => proptest::sample::select(vec![
            "global()", "team = 'a'", "team == 'a", "has(", "((((", "team in {'a',}", "&&", "!",
            "team == 'a' &&",
        ]).prop_map(str::to_owned),
        1 => (1..2000usize).prop_map(|n| format!("{}all(){}", "(".repeat(n), ")".repeat(n))),
        1 => (1..2000usize).prop_map(|n| format!("{}all()", "!".repeat(n))),
        1 => (1..3000usize).prop_map(|n| format!("{} == 'a'", "k".repeat(n))),
        1 => "\\PC{0,40}",
    ]
    .boxed()
}

// --- Edits of an object.

/// Where an edit lands (`*` in a label or annotation key: the first one there).
const PATHS: &[&[&str]] = &[
    &["kind"],
    &["apiVersion"],
    &["metadata"],
    &["metadata", "name"],
    &["metadata", "namespace"],
    &["metadata", "labels"],
    &["metadata", "labels", "team"],
    &["metadata", "annotations"],
    &["metadata", "annotations", V4_POOLS],
    &["metadata", "creationTimestamp"],
    &["spec"],
    &["spec", "cidr"],
    &["spec", "blockSize"],
    &["spec", "nodeSelector"],
    &["spec", "namespaceSelector"],
    &["spec", "assignmentMode"],
    &["spec", "disabled"],
    &["spec", "allowedUses"],
    &["spec", "nodeName"],
    &["spec", "hostNetwork"],
    &["spec", "containers"],
    &["status", "phase"],
    &["data", "ClusterConfiguration"],
    &["items"],
];

#[derive(Debug, Clone)]
enum ObjectEdit {
    Set(&'static [&'static str], Value),
    Remove(&'static [&'static str]),
    /// A field the CRD or the Kubernetes type does not have, e.g. a misspelling.
    Unknown(&'static [&'static str], String, Value),
}

fn object_edit() -> BoxedStrategy<ObjectEdit> {
    let path = proptest::sample::select(PATHS);
    let parent = proptest::sample::select(vec![
        &[][..],
        &["metadata"][..],
        &["spec"][..],
        &["status"][..],
    ]);
    let key = prop_oneof![
        proptest::sample::select(vec![
            "namespaceSelecter",
            "blocksize",
            "cidrs",
            "nodeselector",
            "natOutgoing",
            "ipipMode",
            "vxlanMode",
            "disableBGPExport",
            "awsSubnetID",
            "nodeName",
            "kind",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,12}",
    ];
    prop_oneof![
        4 => (path.clone(), prop_oneof![plausible_value(), junk_value()])
            .prop_map(|(p, v)| ObjectEdit::Set(p, v)),
        1 => path.prop_map(ObjectEdit::Remove),
        2 => (parent, key, junk_value()).prop_map(|(p, k, v)| ObjectEdit::Unknown(p, k, v)),
    ]
    .boxed()
}

/// Values of the right kind for some field and the wrong one for most.
fn plausible_value() -> BoxedStrategy<Value> {
    prop_oneof![
        cidr().prop_map(Value::from),
        selector().prop_map(Value::from),
        proptest::sample::select(vec![
            json!(26),
            json!(20),
            json!(19),
            json!(33),
            json!(122),
            json!(129),
            json!(0),
            json!(-1),
            json!(i32::MAX),
            json!(i64::MAX),
            json!(u64::MAX),
            json!(1e300),
            json!(26.5),
            json!("26"),
            json!(true),
            json!(null),
            json!("Manual"),
            json!("manual"),
            json!(["Workload", "Tunnel"]),
            json!(["Bogus"]),
            json!("IPPool"),
            json!("Pod"),
            json!("PodList"),
            json!("rangepool.dev/v1"),
            json!("projectcalico.org/v3"),
            json!("crd.projectcalico.org/v1"),
            json!("v1"),
            json!("not a time"),
            json!("node-1"),
            json!("Succeeded"),
            json!([]),
            json!({}),
            json!([{"name": "app"}]),
            json!("networking:\n  podSubnet: 10.244.0.0/16,fd00:10:244::/56\n"),
            json!("networking: {podSubnet: banana}"),
            json!("networking: [unclosed"),
        ]),
    ]
    .boxed()
}

/// Any JSON at all, nested a few levels or very deep.
fn junk_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,16}".prop_map(Value::from),
        (1..100_000usize).prop_map(|n| Value::from("x".repeat(n))),
    ];
    prop_oneof![
        8 => leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..4).prop_map(Value::Array),
                btree_map("\\PC{0,8}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        }),
        1 => (1..300usize).prop_map(|depth| (0..depth).fold(json!(1), |v, _| json!([v]))),
    ]
    .boxed()
}

impl ObjectEdit {
    fn apply(self, doc: &mut Value) {
        match self {
            ObjectEdit::Set(path, value) => set(doc, path, value),
            ObjectEdit::Remove(path) => remove(doc, path),
            ObjectEdit::Unknown(parent, key, value) => {
                let mut path: Vec<&str> = parent.to_vec();
                path.push(&key);
                set(doc, &path, value);
            }
        }
    }
}

/// Sets the value at `path`, making the objects on the way.
fn set(at: &mut Value, path: &[&str], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        *at = value;
        return;
    };
    if !at.is_object() {
        *at = json!({});
    }
    let child = at
        .as_object_mut()
        .unwrap()
        .entry(*first)
        .or_insert(Value::Null);
    set(child, rest, value);
}

fn remove(at: &mut Value, path: &[&str]) {
    match path {
        [] => {}
        [last] => {
            if let Some(map) = at.as_object_mut() {
                map.remove(*last);
            }
        }
        [first, rest @ ..] => {
            if let Some(child) = at.get_mut(*first) {
                remove(child, rest);
            }
        }
    }
}
