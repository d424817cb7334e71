#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::ffi::OsString;

use serde_json::json;

use super::*;

/// The environment of one call, built up by the test.
#[derive(Clone)]
struct Env(HashMap<&'static str, String>);

impl Env {
    fn add() -> Self {
        Env::command("ADD")
    }

    fn command(verb: &str) -> Self {
        let mut vars = HashMap::new();
        vars.insert("CNI_COMMAND", verb.to_owned());
        vars.insert("CNI_CONTAINERID", "0123abcd".to_owned());
        vars.insert("CNI_IFNAME", "eth0".to_owned());
        vars.insert("CNI_NETNS", "/var/run/netns/x".to_owned());
        vars.insert("CNI_PATH", "/opt/cni/bin".to_owned());
        vars.insert(
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=0123abcd;K8S_POD_UID=u-1"
                .to_owned(),
        );
        Env(vars)
    }

    fn set(mut self, key: &'static str, value: &str) -> Self {
        self.0.insert(key, value.to_owned());
        self
    }

    fn unset(mut self, key: &'static str) -> Self {
        self.0.remove(key);
        self
    }

    fn parse_with(&self, stdin: &serde_json::Value) -> Result<Command, Box<ParseFailure>> {
        let bytes = stdin.to_string().into_bytes();
        parse(&|k| self.0.get(k).cloned(), || Ok(bytes))
    }

    fn parse(&self) -> Result<Command, Box<ParseFailure>> {
        self.parse_with(&conf("1.1.0"))
    }
}

fn conf(version: &str) -> serde_json::Value {
    json!({
        "cniVersion": version,
        "name": "pods",
        "type": "bridge",
        "ipam": {"type": "rangepool-ipam", "kubeconfig": "/k"}
    })
}

fn env_error(result: Result<Command, Box<ParseFailure>>, var: &str) -> Box<ParseFailure> {
    let failure = result.expect_err("must fail");
    assert_eq!(failure.error.code(), 4, "{}", failure.error);
    assert!(
        failure.error.to_string().contains(var),
        "{} should name {var}",
        failure.error
    );
    failure
}

#[test]
fn add_reads_container_pod_and_config() {
    let Command::Add(a) = Env::add().parse().unwrap() else {
        panic!("expected ADD");
    };
    assert_eq!(a.container_id, "0123abcd");
    assert_eq!(a.ifname, "eth0");
    assert_eq!(
        a.pod,
        PodRef {
            namespace: "shop".into(),
            name: "web-0".into(),
            uid: Some("u-1".into())
        }
    );
    assert_eq!(a.pod.to_string(), "shop/web-0");
    assert_eq!(a.conf.version, CniVersion::V1_1_0);
}

#[test]
fn each_command_word_maps_to_its_command() {
    let gc_conf = {
        let mut c = conf("1.1.0");
        c["cni.dev/valid-attachments"] = json!([{"containerID": "c", "ifname": "eth0"}]);
        c
    };
    for (verb, stdin) in [
        ("ADD", conf("1.1.0")),
        ("DEL", conf("1.1.0")),
        ("CHECK", conf("1.1.0")),
        ("STATUS", conf("1.1.0")),
        ("GC", gc_conf),
    ] {
        let command = Env::command(verb).parse_with(&stdin).unwrap();
        assert_eq!(command.verb(), verb);
    }
}

#[test]
fn version_never_reads_stdin() {
    let env = Env::command("VERSION").unset("CNI_ARGS");
    let got = parse(&|k| env.0.get(k).cloned(), || panic!("stdin was read"));
    assert_eq!(got.unwrap(), Command::Version);
}

#[test]
fn status_and_gc_need_no_container() {
    let env = Env::command("STATUS")
        .unset("CNI_CONTAINERID")
        .unset("CNI_ARGS")
        .unset("CNI_IFNAME");
    assert!(matches!(env.parse().unwrap(), Command::Status(_)));
}

#[test]
fn environment_errors_are_code_4_and_name_the_variable() {
    env_error(Env::add().unset("CNI_COMMAND").parse(), "CNI_COMMAND");
    let f = env_error(Env::command("SETUP").parse(), "CNI_COMMAND");
    assert!(f.error.to_string().contains("\"SETUP\""));
    env_error(
        Env::add().unset("CNI_CONTAINERID").parse(),
        "CNI_CONTAINERID",
    );
    env_error(
        Env::add().set("CNI_CONTAINERID", "-abc").parse(),
        "CNI_CONTAINERID",
    );
    env_error(
        Env::add().set("CNI_CONTAINERID", "ab/c").parse(),
        "CNI_CONTAINERID",
    );
    env_error(
        Env::add().set("CNI_CONTAINERID", &"a".repeat(129)).parse(),
        "CNI_CONTAINERID",
    );
    env_error(Env::add().unset("CNI_IFNAME").parse(), "CNI_IFNAME");
    env_error(Env::add().unset("CNI_ARGS").parse(), "K8S_POD_NAMESPACE");
    env_error(
        Env::add().set("CNI_ARGS", "K8S_POD_NAMESPACE=a").parse(),
        "K8S_POD_NAME",
    );
    env_error(
        Env::add()
            .set("CNI_ARGS", "K8S_POD_NAMESPACE=a;K8S_POD_NAME=")
            .parse(),
        "K8S_POD_NAME",
    );
    env_error(
        Env::add()
            .set("CNI_ARGS", "K8S_POD_NAMESPACE=a;garbage")
            .parse(),
        "\"garbage\"",
    );
    env_error(
        Env::command("DEL").unset("CNI_CONTAINERID").parse(),
        "CNI_CONTAINERID",
    );
}

#[test]
fn add_needs_the_uid_while_del_and_check_do_without_and_netns_is_not_needed() {
    let no_uid = Env::add()
        .set(
            "CNI_ARGS",
            "K8S_POD_NAMESPACE=a;K8S_POD_NAME=b;K8S_POD_UID=",
        )
        .unset("CNI_NETNS");
    let f = env_error(no_uid.parse(), "K8S_POD_UID");
    assert!(f.error.to_string().contains("CNI_ARGS"), "{}", f.error);
    assert_eq!(f.pod.as_deref(), Some("a/b"));
    let f = env_error(
        no_uid
            .clone()
            .set("CNI_ARGS", "K8S_POD_NAMESPACE=a;K8S_POD_NAME=b")
            .parse(),
        "K8S_POD_UID",
    );
    assert!(
        f.error.message(f.pod.as_deref()).starts_with(
            "pod a/b: environment variable CNI_ARGS: K8S_POD_UID is missing; ADD needs the pod's UID"
        ),
        "{}",
        f.error
    );
    for verb in ["DEL", "CHECK"] {
        let command = no_uid.clone().set("CNI_COMMAND", verb).parse().unwrap();
        assert_eq!(command.pod().unwrap().uid, None, "{verb}");
    }
    let Command::Add(a) = Env::add().unset("CNI_NETNS").parse().unwrap() else {
        panic!("expected ADD");
    };
    assert_eq!(a.pod.uid.as_deref(), Some("u-1"));
}

#[test]
fn names_from_the_environment_must_be_kubernetes_names() {
    // Each ends up in every message and log line.
    let args = |ns: &str, name: &str, uid: &str| {
        format!("K8S_POD_NAMESPACE={ns};K8S_POD_NAME={name};K8S_POD_UID={uid}")
    };
    for (cni_args, text) in [
        (
            args("shop\nERROR x", "web", "u"),
            "K8S_POD_NAMESPACE \"shop\\nERROR x\" is not a namespace's name",
        ),
        (args("Shop", "web", "u"), "K8S_POD_NAMESPACE \"Shop\""),
        (
            args("shop", "web/0", "u"),
            "K8S_POD_NAME \"web/0\" is not a pod's name",
        ),
        (args("shop", &"w".repeat(254), "u"), "K8S_POD_NAME \"www"),
        (
            args("shop", "web", "u 1"),
            "K8S_POD_UID \"u 1\" is not a pod UID",
        ),
        (args("shop", "web", &"0".repeat(129)), "K8S_POD_UID \"000"),
    ] {
        let f = env_error(Env::add().set("CNI_ARGS", &cni_args).parse(), "CNI_ARGS");
        assert!(
            f.error.to_string().contains(text),
            "want {text:?} in {}",
            f.error
        );
        assert!(!f.error.to_string().contains('\n'), "{}", f.error);
    }
    assert!(
        Env::add()
            .set(
                "CNI_ARGS",
                &args(
                    "kube-system",
                    "coredns-5d78c9869d-x2x9q.v1",
                    "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
                )
            )
            .parse()
            .is_ok()
    );
    for bad in ["eth0\n", "a/b", "a:1", "a b", ".", "..", "abcdefghijklmnop"] {
        let f = env_error(Env::add().set("CNI_IFNAME", bad).parse(), "CNI_IFNAME");
        assert!(!f.error.to_string().contains('\n'), "{}", f.error);
    }
    for good in ["eth0", "net1", "abcdefghijklmno", "eth0.100"] {
        assert!(Env::add().set("CNI_IFNAME", good).parse().is_ok(), "{good}");
    }
}

#[test]
fn echoed_input_is_one_line_and_bounded() {
    let f = env_error(Env::command("ADD\nINFO forged").parse(), "CNI_COMMAND");
    assert!(
        f.error
            .to_string()
            .contains("\"ADD\\nINFO forged\" is not one of"),
        "{}",
        f.error
    );
    let long = format!("K8S_POD_NAMESPACE=a;{}", "x".repeat(5000));
    let f = env_error(Env::add().set("CNI_ARGS", &long).parse(), "CNI_ARGS");
    let msg = f.error.to_string();
    assert!(msg.contains("(4000 more characters)"), "{msg}");
    assert!(msg.len() < 1200, "{}", msg.len());
}

#[test]
fn config_errors_carry_the_pod_and_the_declared_version() {
    let mut bad = conf("0.4.0");
    bad["ipam"]["timeout"] = json!("soon");
    let f = Env::add().parse_with(&bad).unwrap_err();
    assert_eq!(f.error.code(), 7);
    assert_eq!(f.pod.as_deref(), Some("shop/web-0"));
    assert_eq!(f.version, CniVersion::V0_4_0);
    assert!(
        f.error
            .message(f.pod.as_deref())
            .starts_with("pod shop/web-0: ")
    );
}

#[test]
fn stdin_failures() {
    let env = Env::add();
    let io = parse(&|k| env.0.get(k).cloned(), || {
        Err(std::io::Error::other("broken pipe"))
    })
    .unwrap_err();
    assert_eq!(io.error.code(), 5);
    let garbage = parse(&|k| env.0.get(k).cloned(), || Ok(b"not json".to_vec())).unwrap_err();
    assert_eq!(garbage.error.code(), 6);
    assert_eq!(garbage.pod.as_deref(), Some("shop/web-0"));
}

#[test]
fn commands_newer_than_the_declared_version_are_code_1() {
    for version in ["0.3.0", "0.3.1"] {
        let f = Env::command("CHECK")
            .parse_with(&conf(version))
            .unwrap_err();
        assert_eq!(f.error.code(), 1, "{version}");
        assert!(f.error.to_string().contains("CHECK needs cniVersion 0.4.0"));
    }
    assert!(Env::command("CHECK").parse_with(&conf("0.4.0")).is_ok());
    for verb in ["STATUS", "GC"] {
        let f = Env::command(verb).parse_with(&conf("1.0.0")).unwrap_err();
        assert_eq!(f.error.code(), 1, "{verb}");
        assert_eq!(f.version, CniVersion::V1_0_0);
    }
}

#[test]
fn gc_without_the_attachment_list_does_nothing() {
    let f = Env::command("GC").parse_with(&conf("1.1.0")).unwrap_err();
    assert_eq!(f.error.code(), 7);
    assert!(f.error.to_string().contains("cni.dev/valid-attachments"));
}

#[test]
fn add_and_del_accept_every_supported_version() {
    for version in CniVersion::ALL {
        for verb in ["ADD", "DEL"] {
            let command = Env::command(verb)
                .parse_with(&conf(version.as_str()))
                .unwrap();
            assert_eq!(command.conf().unwrap().version, version);
        }
    }
}

#[test]
fn help_and_version_only_without_cni_command() {
    let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
    assert_eq!(invocation(false, &args(&["--help"])), Invocation::Help);
    assert_eq!(invocation(false, &args(&["-h"])), Invocation::Help);
    assert_eq!(
        invocation(false, &args(&["--version"])),
        Invocation::Version
    );
    assert_eq!(invocation(false, &args(&["-V"])), Invocation::Version);
    assert_eq!(
        invocation(false, &args(&["--version", "--help"])),
        Invocation::Help
    );
    // No arguments: a call (whose missing CNI_COMMAND `parse` reports as a CNI error).
    assert_eq!(invocation(false, &[]), Invocation::Cni);
    // A runtime's call is read as a call, whatever the arguments.
    for list in [&["--help"][..], &["--version"], &["--bogus"], &[]] {
        assert_eq!(invocation(true, &args(list)), Invocation::Cni, "{list:?}");
    }
    let Invocation::BadArgument(msg) = invocation(false, &args(&["--version", "ADD\nx"])) else {
        panic!("an unknown argument is refused");
    };
    assert!(msg.contains("unknown argument \"ADD\\nx\""), "{msg}");
    assert!(msg.contains("--help or --version"), "{msg}");
}
