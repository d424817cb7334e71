#![allow(clippy::unwrap_used)]

use std::io::Cursor;

use super::*;

fn web(uid: Option<&str>) -> PodRef {
    PodRef {
        namespace: "shop".into(),
        name: "web-0".into(),
        uid: uid.map(str::to_owned),
    }
}

fn line(text: &str) -> Vec<u8> {
    text.trim_end_matches('\n').as_bytes().to_vec()
}

#[test]
fn requests_round_trip() {
    let requests = [
        Request::Add {
            pod: web(Some("0f4e-11")),
            container: "abc123".into(),
            wait: Duration::from_millis(30_500),
            pool_prefix: true,
        },
        Request::Check {
            pod: web(None),
            container: "abc123".into(),
            prev_ips: Some(vec![
                "10.0.0.5".parse().unwrap(),
                "fd00::5".parse().unwrap(),
            ]),
        },
        Request::Check {
            pod: web(Some("u")),
            container: "c".into(),
            prev_ips: None,
        },
        Request::Status,
    ];
    for request in requests {
        let encoded = request.encode();
        assert!(encoded.ends_with('\n') && encoded.matches('\n').count() == 1);
        assert_eq!(Request::decode(&line(&encoded)), Ok(request.clone()));
        // And through the work it stands for, as the plugin builds it.
        assert_eq!(Request::of(&request.work()), request);
    }
    let status: Value = serde_json::from_str(&Request::Status.encode()).unwrap();
    assert_eq!(status, json!({"version": 1, "command": "STATUS"}));
}

#[test]
fn replies_round_trip() {
    let granted = vec![
        Granted {
            address: "10.99.0.130".parse().unwrap(),
            pool: "payments".into(),
            block: "10.99.0.128/26".parse().unwrap(),
            pool_cidr: Some("10.99.0.0/24".parse().unwrap()),
        },
        Granted {
            address: "fd00:99::7".parse().unwrap(),
            pool: "payments-v6".into(),
            block: "fd00:99::/122".parse().unwrap(),
            pool_cidr: None,
        },
    ];
    for reply in [
        Reply::Granted(granted),
        Reply::Granted(Vec::new()),
        Reply::Failed {
            code: 101,
            msg: "pod shop/web: address 10.99.0.130 ... \"quoted\" \\ ünïcode".into(),
        },
    ] {
        assert_eq!(Reply::decode(&line(&reply.encode())), Ok(reply));
    }
}

#[test]
fn a_reply_carries_the_errors_code_and_the_plugins_message() {
    let pod = web(Some("u1"));
    let err = CniError::TryAgain {
        pod: pod.to_string(),
        reason: "the controller has not assigned\nan address".into(),
    };
    let reply = Reply::of(Err(err.clone()), Some(&pod));
    assert_eq!(
        reply,
        Reply::Failed {
            code: 11,
            msg: "pod shop/web-0: the controller has not assigned\\nan address; try again later"
                .into()
        }
    );
    // An error that does not name the pod itself gets it in front, as in the plugin's reply.
    let kubeconfig = CniError::kubeconfig(std::path::Path::new("/k"), "missing");
    let Reply::Failed { code, msg } = Reply::of(Err(kubeconfig), Some(&pod)) else {
        panic!("not a failure");
    };
    assert_eq!(code, 107);
    assert_eq!(msg, "pod shop/web-0: cannot use kubeconfig /k: missing");
}

#[test]
fn malformed_replies_are_refused_without_quoting_them() {
    let cases: &[(&str, &str)] = &[
        ("", "not JSON"),
        ("token=s3cret", "not JSON (Syntax error at column"),
        ("[1]", "not a JSON object"),
        (r#"{"granted": []}"#, "version: missing"),
        (r#"{"version": 2, "granted": []}"#, "protocol version 2"),
        (r#"{"version": 1}"#, "exactly one of granted"),
        (
            r#"{"version": 1, "granted": [], "error": {"code": 1, "msg": "x"}}"#,
            "exactly one of granted",
        ),
        (r#"{"version": 1, "granted": {}}"#, "exactly one of granted"),
        (
            r#"{"version": 1, "granted": [7]}"#,
            "granted[0]: expected an object",
        ),
        (
            r#"{"version": 1, "granted": [{"address": "10.0.0.300", "pool": "p", "block": "10.0.0.0/24"}]}"#,
            "granted[0].address: expected an IP address",
        ),
        (
            r#"{"version": 1, "granted": [{"address": "10.0.0.5", "pool": "p", "block": "10.1.0.0/24"}]}"#,
            "granted[0].block: expected a range holding 10.0.0.5",
        ),
        (
            r#"{"version": 1, "granted": [{"address": "10.0.0.5", "pool": "p"}]}"#,
            "granted[0].block: missing",
        ),
        (
            r#"{"version": 1, "granted": [{"address": "10.0.0.5", "pool": "P\n", "block": "10.0.0.0/24"}]}"#,
            "granted[0].pool: expected a pool's name",
        ),
        (
            r#"{"version": 1, "granted": [{"address": "10.0.0.5", "pool": "p", "block": "10.0.0.0/24", "poolCidr": 5}]}"#,
            "granted[0].poolCidr: expected a range holding 10.0.0.5",
        ),
        (
            r#"{"version": 1, "error": {"code": 0, "msg": "x"}}"#,
            "error.code",
        ),
        (
            r#"{"version": 1, "error": {"code": 256, "msg": "x"}}"#,
            "error.code",
        ),
        (
            r#"{"version": 1, "error": {"code": "11", "msg": "x"}}"#,
            "error.code",
        ),
        (r#"{"version": 1, "error": {"code": 11}}"#, "error.msg"),
    ];
    for (text, want) in cases {
        let err = Reply::decode(text.as_bytes()).unwrap_err();
        assert!(err.contains(want), "{text}: {err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}

#[test]
fn a_relayed_message_is_one_line_and_bounded() {
    let long = format!("pod a/b: {}\n{}", "x".repeat(MAX_MESSAGE), "y".repeat(10));
    let text = json!({"version": 1, "error": {"code": 100, "msg": long}}).to_string();
    let Reply::Failed { code, msg } = Reply::decode(text.as_bytes()).unwrap() else {
        panic!("not a failure");
    };
    assert_eq!(code, 100);
    assert!(!msg.contains('\n'));
    // "pod a/b: " and the x's fill the limit; the escaped newline and the y's are cut.
    let (kept, cut) = msg.split_once("... (").unwrap();
    assert_eq!(kept.chars().count(), MAX_MESSAGE);
    assert_eq!(cut, "21 more characters)");
}

#[test]
fn malformed_requests_name_the_field() {
    let cases: &[(&str, &str)] = &[
        (r#"{"version": 1}"#, "command: missing"),
        (
            r#"{"version": 1, "command": "DEL"}"#,
            "command: not one of ADD, CHECK, STATUS",
        ),
        (
            r#"{"version": 1, "command": 7}"#,
            "command: expected a string",
        ),
        (
            r#"{"version": 3, "command": "STATUS"}"#,
            "protocol version 3",
        ),
        (
            r#"{"version": 1, "command": "ADD", "container": "c", "waitMs": 1}"#,
            "pod: missing",
        ),
        (
            r#"{"version": 1, "command": "ADD", "pod": {"namespace": "Shop", "name": "w", "uid": "u"}, "container": "c", "waitMs": 1}"#,
            "pod.namespace",
        ),
        (
            r#"{"version": 1, "command": "ADD", "pod": {"namespace": "s", "name": "w\n", "uid": "u"}, "container": "c", "waitMs": 1}"#,
            "pod.name",
        ),
        (
            r#"{"version": 1, "command": "ADD", "pod": {"namespace": "s", "name": "w"}, "container": "c", "waitMs": 1}"#,
            "pod.uid: missing; ADD needs the pod's UID",
        ),
        (
            r#"{"version": 1, "command": "ADD", "pod": {"namespace": "s", "name": "w", "uid": "a b"}, "container": "c", "waitMs": 1}"#,
            "pod.uid: expected a pod UID",
        ),
        (
            r#"{"version": 1, "command": "ADD", "pod": {"namespace": "s", "name": "w", "uid": "u"}, "container": "-c", "waitMs": 1}"#,
            "container: expected a container ID",
        ),
        (
            r#"{"version": 1, "command": "ADD", "pod": {"namespace": "s", "name": "w", "uid": "u"}, "container": "c"}"#,
            "waitMs: missing",
        ),
        (
            r#"{"version": 1, "command": "ADD", "pod": {"namespace": "s", "name": "w", "uid": "u"}, "container": "c", "waitMs": 600001}"#,
            "waitMs: expected a whole number of milliseconds up to 600000",
        ),
        (
            r#"{"version": 1, "command": "ADD", "pod": {"namespace": "s", "name": "w", "uid": "u"}, "container": "c", "waitMs": 1, "poolPrefix": "yes"}"#,
            "poolPrefix: expected true or false",
        ),
        (
            r#"{"version": 1, "command": "CHECK", "pod": {"namespace": "s", "name": "w"}, "container": "c", "prevIps": ["10.0.0.1/24"]}"#,
            "prevIps: expected a list of IP addresses",
        ),
    ];
    for (text, want) in cases {
        let err = Request::decode(text.as_bytes()).unwrap_err();
        assert!(err.contains(want), "{text}: {err}");
    }
}

#[test]
fn lines_are_bounded() {
    let read = |bytes: Vec<u8>| read_line(&mut Cursor::new(bytes));
    assert_eq!(read(b"{}\nrest".to_vec()).unwrap(), b"{}");
    // The peer closed after a last line without its newline.
    assert_eq!(read(b"{}".to_vec()).unwrap(), b"{}");
    assert!(matches!(read(Vec::new()), Err(LineError::Closed)));
    // Exactly the limit, with and without the newline.
    let mut exact = vec![b'x'; MAX_LINE];
    assert_eq!(read(exact.clone()).unwrap().len(), MAX_LINE);
    exact.push(b'\n');
    assert_eq!(read(exact).unwrap().len(), MAX_LINE);
    // One byte more is refused, newline or not, and no more than the limit is read.
    let mut over = vec![b'x'; MAX_LINE + 1];
    assert!(matches!(read(over.clone()), Err(LineError::TooLong)));
    over.push(b'\n');
    assert!(matches!(read(over), Err(LineError::TooLong)));
    let mut huge = Cursor::new(vec![b'x'; 10 * MAX_LINE]);
    assert!(matches!(read_line(&mut huge), Err(LineError::TooLong)));
    assert_eq!(huge.position(), u64::try_from(MAX_LINE + 1).unwrap());
}
