//! Property tests of the plugin on the input an attacker or a careless admin controls: the
//! `CNI_*` environment, the network configuration on stdin, and the kubeconfig it names.
//! Whatever the input, a call returns; it exits 0 only where it can succeed without an API
//! server (VERSION, DEL, GC); stdout is at most one JSON document, and a failure's is a CNI
//! error with a one-line, bounded message; and no credential from the kubeconfig ever reaches
//! stdout or the log.
//!
//! Every kubeconfig names a server (and proxy) on 127.0.0.1 at a port nothing listens on, so a
//! call that gets as far as the network fails at once, and no other host is ever contacted.
//! The inputs are mostly near-valid, so that most cases get past the first check.
//!
//! The default number of cases keeps a run short; `PROPTEST_CASES` raises it (`make fuzz`).
//! `main_with` runs in process for every case, with the log going to a file as well; the built
//! binary runs for an eighth of them, for its stderr, exit status and panic hook.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod env;
mod kubeconfig;
mod netconf;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use rangepool_cni::{Reply, main_with};
use serde_json::{Value, json};

use env::environment;
use kubeconfig::{Encoding, Kubeconfig, KubeconfigFile, Scalar, Style, User, kubeconfig_file};
use netconf::{Damage, Stdin, stdin};

/// Written wherever a kubeconfig holds a credential; must never be shown.
pub(crate) const MARKER: &str = "SECRET-TOKEN-1234";
/// tcpmux: listening there takes root, so nothing does; checked before the first case.
const CLOSED: &str = "127.0.0.1:1";
/// Cases per run when `PROPTEST_CASES` is not set.
const DEFAULT_CASES: u32 = 512;
/// A hang guard, not a speed goal: the plugin's own deadline for a call that reaches no server
/// is its request budget (10 s) plus the kubeconfig's load budget (5 s).
const CALL_BOUND: Duration = Duration::from_secs(30);
/// What the runner's error shape may hold (CNI spec, "Error").
const ERROR_KEYS: [&str; 4] = ["cniVersion", "code", "msg", "details"];
const SUPPORTED: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

// ---------------------------------------------------------------------------------------------
// The properties.

proptest! {
    #![proptest_config(config(1))]

    #[test]
    fn in_process_any_input_gets_one_safe_reply(input in input()) {
        let case = input.write();
        let reply = call_in_process(&case);
        check_reply(&case, reply.exit_code, reply.stdout.as_deref())?;
        // Only a call whose configuration was read logs to the file, and only those read the
        // kubeconfig.
        let log = std::fs::read(&case.log).unwrap_or_default();
        check_log(&case, &log)?;
    }
}

proptest! {
    #![proptest_config(config(8))]

    #[test]
    fn the_binary_on_any_input_exits_with_its_reply_and_logs_safely(input in input()) {
        let case = input.write();
        let run = call_binary(&case);
        let code = run.code.ok_or_else(|| TestCaseError::fail("killed by a signal"))?;
        let stdout = String::from_utf8(run.stdout)
            .map_err(|_| TestCaseError::fail("stdout is not UTF-8"))?;
        let stdout = (!stdout.is_empty()).then_some(stdout);
        let code = u8::try_from(code).map_err(|_| TestCaseError::fail("exit status above 255"))?;
        check_reply(&case, code, stdout.as_deref())?;
        check_log(&case, &run.stderr)?;
    }
}

/// `PROPTEST_CASES` cases (else [`DEFAULT_CASES`]), divided by `share` for a costlier property.
fn config(share: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    Config {
        cases: (cases / share).max(1),
        ..Config::default()
    }
}

/// The reply's rules: exit status, one JSON document, the error shape, no secret.
fn check_reply(case: &Case, exit_code: u8, stdout: Option<&str>) -> Result<(), TestCaseError> {
    let command = case.env.get("CNI_COMMAND").map(String::as_str);
    for secret in &case.secrets {
        prop_assert!(
            !stdout.unwrap_or_default().contains(secret.as_str()),
            "stdout shows a credential: {stdout:?}"
        );
    }
    if command == Some("VERSION") {
        prop_assert_eq!(exit_code, 0, "VERSION failed: {:?}", stdout);
        let out: Value = serde_json::from_str(stdout.unwrap_or_default())?;
        prop_assert_eq!(&out["supportedVersions"], &json!(SUPPORTED));
        return Ok(());
    }
    if exit_code == 0 {
        // With no API server only the calls that send no request can succeed.
        prop_assert!(
            matches!(command, Some("DEL" | "GC")),
            "{command:?} succeeded without an API server: {stdout:?}"
        );
        prop_assert_eq!(stdout, None, "DEL and GC print nothing");
        return Ok(());
    }
    let Some(stdout) = stdout else {
        return Err(TestCaseError::fail(format!(
            "exit status {exit_code} without a reply"
        )));
    };
    // `from_str` refuses anything after the first document.
    let reply: Value = serde_json::from_str(stdout).map_err(|e| {
        TestCaseError::fail(format!("stdout is not one JSON document ({e}): {stdout}"))
    })?;
    let fields = reply
        .as_object()
        .ok_or_else(|| TestCaseError::fail(format!("reply is not an object: {stdout}")))?;
    prop_assert!(
        fields.keys().all(|k| ERROR_KEYS.contains(&k.as_str())),
        "keys outside the spec's error shape: {stdout}"
    );
    prop_assert!(
        SUPPORTED.contains(&reply["cniVersion"].as_str().unwrap_or_default()),
        "cniVersion: {stdout}"
    );
    let code = reply["code"].as_u64().filter(|c| u32::try_from(*c).is_ok());
    prop_assert_eq!(
        code,
        Some(u64::from(exit_code)),
        "code is the exit status: {}",
        stdout
    );
    let msg = reply["msg"].as_str().unwrap_or_default();
    prop_assert!(!msg.is_empty(), "no msg: {stdout}");
    prop_assert!(
        !msg.chars().any(char::is_control),
        "msg is not one line: {msg:?}"
    );
    prop_assert!(
        msg.chars().count() < 4096,
        "msg of {} characters: {msg:.300}",
        msg.chars().count()
    );
    prop_assert!(reply.get("details").is_none_or(Value::is_string));
    Ok(())
}

/// Every log line is one entry of the plugin's format, and none shows a credential.
fn check_log(case: &Case, log: &[u8]) -> Result<(), TestCaseError> {
    let log = String::from_utf8_lossy(log);
    for secret in &case.secrets {
        prop_assert!(
            !log.contains(secret.as_str()),
            "the log shows a credential: {log}"
        );
    }
    for line in log.lines() {
        let level = line.split(' ').nth(2).unwrap_or_default();
        prop_assert!(
            line.split(' ').nth(1) == Some("rangepool-ipam")
                && ["ERROR", "WARN", "INFO", "DEBUG"].contains(&level),
            "not a log entry of its own: {line:.300}"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Running one case.

/// One input written out: its environment, its stdin, and the files it names.
struct Case {
    _dir: tempfile::TempDir,
    env: BTreeMap<String, String>,
    /// `None`: reading stdin fails.
    stdin: Option<Vec<u8>>,
    /// The file `ipam.logFile` names.
    log: PathBuf,
    /// Text that must not be shown: every credential written, in the form written.
    secrets: Vec<String>,
}

fn call_in_process(case: &Case) -> Reply {
    let env = case.env.clone();
    let stdin = case.stdin.clone();
    let (tx, rx) = mpsc::channel();
    // On a thread of its own so that a hang is reported instead of stalling the run.
    std::thread::spawn(move || {
        let read = move || stdin.ok_or_else(|| std::io::Error::other("stdin is gone"));
        let _ = tx.send(main_with(&|name| env.get(name).cloned(), read));
    });
    match rx.recv_timeout(CALL_BOUND) {
        Ok(reply) => reply,
        Err(RecvTimeoutError::Timeout) => panic!("main_with did not return in {CALL_BOUND:?}"),
        Err(RecvTimeoutError::Disconnected) => panic!("main_with panicked"),
    }
}

struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs the binary with only the case's environment (no proxy settings are inherited).
fn call_binary(case: &Case) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rangepool-ipam"))
        .env_clear()
        .envs(&case.env)
        .current_dir(case._dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rangepool-ipam");
    let mut stdin = child.stdin.take().unwrap();
    let bytes = case.stdin.clone().unwrap_or_default();
    // VERSION does not read stdin: a broken pipe is expected.
    std::thread::spawn(move || {
        let _ = stdin.write_all(&bytes);
    });
    let drain = |mut from: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = from.read_to_end(&mut out);
            out
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > CALL_BOUND {
            let _ = child.kill();
            panic!("rangepool-ipam did not exit in {CALL_BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Run {
        code: status.code(),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// The server every kubeconfig names, after checking that nothing answers there.
pub(crate) fn closed_server() -> &'static str {
    static CHECKED: std::sync::Once = std::sync::Once::new();
    CHECKED.call_once(|| {
        assert!(
            TcpStream::connect(CLOSED).is_err(),
            "something listens on {CLOSED}; the fuzz tests need it closed"
        );
        assert!(
            std::env::var_os("KUBE_RS_DEBUG_OVERRIDE_URL").is_none(),
            "KUBE_RS_DEBUG_OVERRIDE_URL would send the plugin's requests elsewhere"
        );
    });
    CLOSED
}

// ---------------------------------------------------------------------------------------------
// Inputs.

/// Everything one call is given, before it is written out.
#[derive(Debug, Clone)]
struct Input {
    env: BTreeMap<&'static str, String>,
    stdin: Stdin,
    kubeconfig: KubeconfigFile,
}

fn input() -> BoxedStrategy<Input> {
    (environment(), stdin(), kubeconfig_file())
        .prop_map(|(env, stdin, kubeconfig)| Input {
            env,
            stdin,
            kubeconfig,
        })
        .boxed()
}

impl Input {
    fn write(&self) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ipam.log");
        let mut secrets = vec![MARKER.to_owned()];
        let kubeconfig = self.kubeconfig.write(dir.path(), &mut secrets);
        Case {
            env: self
                .env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            stdin: self.stdin.render(&kubeconfig, &log),
            log,
            secrets,
            _dir: dir,
        }
    }
}

/// Text as it comes from outside: control characters, separators, non-ASCII, long runs.
pub(crate) fn junk_text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "\\PC{0,24}",
        3 => "[\\x00-\\x1f\\x7f\u{85}\u{202e}\u{feff}\"'\\\\ =;:/.a-z0-9-]{0,24}",
        1 => (any::<char>(), 1000..5000usize).prop_map(|(c, n)| c.to_string().repeat(n)),
        1 => Just(String::new()),
    ]
    .boxed()
}

/// The inputs the strategies start from get as far as the network, so that the properties
/// above cover the whole call and not only its first checks.
#[test]
fn the_undamaged_input_reaches_the_api_server() {
    let env = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_IFNAME", "eth0"),
        (
            "CNI_ARGS",
            "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web;K8S_POD_UID=u1",
        ),
    ];
    let input = Input {
        env: env.into_iter().map(|(k, v)| (k, v.to_owned())).collect(),
        stdin: Stdin::Conf {
            edits: Vec::new(),
            damage: Damage::None,
        },
        kubeconfig: KubeconfigFile::Written(Kubeconfig {
            server: format!("https://{}", closed_server()),
            cluster_lines: vec!["insecure-skip-tls-verify: true".into()],
            user: User::Token(Scalar {
                text: MARKER.into(),
                style: Style::Plain,
            }),
            edits: Vec::new(),
            padding: 0,
            encoding: Encoding::Utf8,
        }),
    };
    let case = input.write();
    let reply = call_in_process(&case);
    let out: Value = serde_json::from_str(reply.stdout.as_deref().unwrap()).unwrap();
    assert_eq!(reply.exit_code, 11, "{out}");
    assert!(
        out["msg"].as_str().unwrap().contains("did not answer"),
        "{out}"
    );
}
