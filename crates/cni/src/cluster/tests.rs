#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use api::keys;

use super::*;

fn meta(uid: &str, annotations: &[(&str, &str)]) -> PartialObjectMeta<Pod> {
    let mut m = PartialObjectMeta::<Pod>::default();
    m.metadata.uid = Some(uid.into());
    m.metadata.resource_version = Some("7".into());
    m.metadata.annotations = Some(
        annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    );
    m
}

fn pod(uid: Option<&str>) -> PodRef {
    PodRef {
        namespace: "ns".into(),
        name: "web".into(),
        uid: uid.map(str::to_owned),
    }
}

const ASSIGNED: [(&str, &str); 3] = [
    (keys::ASSIGNED_IPV4, "10.0.0.5"),
    (keys::ASSIGNED_POOLS, r#"{"ipv4":"p"}"#),
    (keys::ASSIGNED_BLOCKS, r#"{"ipv4":"10-0-0-0-26"}"#),
];

#[test]
fn pending_until_an_address_is_written() {
    let got = judge(&meta("u1", &[]), &pod(Some("u1"))).unwrap();
    assert_eq!(
        got,
        PodState::Pending {
            resource_version: "7".into()
        }
    );
    let PodState::Assigned { uid, assignment } =
        judge(&meta("u1", &ASSIGNED), &pod(Some("u1"))).unwrap()
    else {
        panic!("expected an assignment");
    };
    assert_eq!(uid, "u1");
    assert_eq!(assignment.ipv4.unwrap().block, "10-0-0-0-26");
}

#[test]
fn another_uid_is_refused_and_a_missing_uid_is_trusted() {
    let err = judge(&meta("u2", &ASSIGNED), &pod(Some("u1"))).unwrap_err();
    assert_eq!(err.code(), 103);
    assert!(err.to_string().contains("ns/web"), "{err}");
    assert!(judge(&meta("u2", &ASSIGNED), &pod(None)).is_ok());
}

#[test]
fn the_controllers_error_fails_at_once() {
    let err = judge(
        &meta(
            "u1",
            &[(keys::ASSIGNMENT_ERROR, "pool \"gold\" is exhausted")],
        ),
        &pod(Some("u1")),
    )
    .unwrap_err();
    assert_eq!(err.code(), 100);
    assert!(
        err.to_string().contains("pool \"gold\" is exhausted"),
        "{err}"
    );
}

#[test]
fn the_controllers_error_is_shown_on_one_line_and_cut() {
    let forged = format!(
        "pool \"gold\" is exhausted\n2030-01-01T00:00:00.000Z rangepool-ipam INFO ADD: verified{}",
        "x".repeat(3000)
    );
    let err = judge(
        &meta("u1", &[(keys::ASSIGNMENT_ERROR, &forged)]),
        &pod(Some("u1")),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.code(), 100);
    assert!(!msg.contains('\n'), "{msg}");
    assert!(
        msg.contains("pool \"gold\" is exhausted\\n2030-01-01T00:00:00.000Z"),
        "{msg}"
    );
    assert!(msg.ends_with("more characters)"), "{msg}");
    assert!(msg.len() < 1200, "{}", msg.len());
}

#[test]
fn names_in_the_annotations_must_be_object_names() {
    let with = |pools: &str, blocks: &str| {
        meta(
            "u1",
            &[
                (keys::ASSIGNED_IPV4, "10.0.0.5"),
                (keys::ASSIGNED_POOLS, pools),
                (keys::ASSIGNED_BLOCKS, blocks),
            ],
        )
    };
    let err = judge(
        &with(r#"{"ipv4":"p\nINFO forged"}"#, r#"{"ipv4":"10-0-0-0-26"}"#),
        &pod(Some("u1")),
    )
    .unwrap_err();
    assert_eq!(err.code(), 104);
    assert_eq!(
        err.to_string(),
        format!(
            "pod ns/web: annotation {} names the IPPool \"p\\nINFO forged\", which is not a Kubernetes object name",
            keys::ASSIGNED_POOLS
        )
    );
    let err = judge(
        &with(r#"{"ipv4":"p"}"#, r#"{"ipv4":"../../namespaces/x"}"#),
        &pod(Some("u1")),
    )
    .unwrap_err();
    assert!(err.to_string().contains(keys::ASSIGNED_BLOCKS), "{err}");
    // An unreadable value is quoted, cut and on one line.
    let long = format!("{}\n{}", "1".repeat(2000), "2".repeat(10));
    let err = judge(&meta("u1", &[(keys::ASSIGNED_IPV4, &long)]), &pod(None)).unwrap_err();
    assert!(!err.to_string().contains('\n'), "{err}");
    assert!(err.to_string().contains("more characters)"), "{err}");
}

#[tokio::test]
async fn connect_refuses_bad_kubeconfigs_without_panicking_or_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let Err(err) = Cluster::connect(&fifo).await else {
        panic!("a FIFO is no kubeconfig");
    };
    assert!(err.to_string().contains("is a FIFO"), "{err}");

    let kubeconfig = |server: &str, token: &str| {
        format!(
            "apiVersion: v1
clusters:
- name: c
  cluster: {{server: \"{server}\"}}
contexts:
- name: x
  context: {{cluster: c, user: u}}
current-context: x
users:
- name: u
  user: {{token: \"{token}\"}}
"
        )
    };
    let path = dir.path().join("kubeconfig");
    // Both made kube's client panic.
    std::fs::write(&path, kubeconfig("127.0.0.1:6443", "t")).unwrap();
    let Err(err) = Cluster::connect(&path).await else {
        panic!("no scheme");
    };
    assert_eq!(err.code(), 107);
    assert!(
        err.to_string().contains("field server of cluster \"c\""),
        "{err}"
    );
    std::fs::write(&path, kubeconfig("https://127.0.0.1:6443", "t\\n")).unwrap();
    assert!(
        Cluster::connect(&path).await.is_ok(),
        "the newline is trimmed"
    );
}

#[test]
fn malformed_annotations_name_the_key() {
    let err = judge(
        &meta("u1", &[(keys::ASSIGNED_IPV4, "not-an-ip")]),
        &pod(None),
    )
    .unwrap_err();
    assert_eq!(err.code(), 104);
    assert!(err.to_string().contains(keys::ASSIGNED_IPV4), "{err}");
}

#[test]
fn failures_are_classified() {
    let status = |code: u16| {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            message: "m".into(),
            ..Default::default()
        }))
    };
    assert_eq!(ApiFailure::of(&status(404)), ApiFailure::NotFound);
    assert_eq!(
        ApiFailure::of(&status(422)),
        ApiFailure::Refused("m (422 )".into())
    );
    assert!(matches!(
        ApiFailure::of(&status(503)),
        ApiFailure::Transient(_)
    ));
    assert!(matches!(
        ApiFailure::of(&status(403)),
        ApiFailure::Refused(_)
    ));
    let again = ApiFailure::of(&status(500)).into_error("ns/web", "read the pod");
    assert_eq!(again.code(), 11);
}

#[test]
fn a_proxy_from_the_environment_is_refused_without_showing_it() {
    // Found by the fuzz test: kube's own error for it showed the URL, password included.
    let mut config = Config::new("https://10.0.0.1:6443".parse().unwrap());
    let path = Path::new("/etc/cni/net.d/rangepool/kubeconfig");
    assert_eq!(refuse_proxy(&config, path), Ok(()));
    config.proxy_url = Some("http://node:SECRET@10.0.0.2:3128".parse().unwrap());
    let err = refuse_proxy(&config, path).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.code(), 107);
    assert!(!msg.contains("SECRET"), "{msg}");
    assert!(msg.contains("HTTPS_PROXY"), "{msg}");
}
