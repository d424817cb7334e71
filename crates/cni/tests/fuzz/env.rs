//! The `CNI_*` environment: every variable the plugin reads, mostly valid, else malformed,
//! junk or missing.

use std::collections::BTreeMap;

use proptest::collection::vec;
use proptest::prelude::*;

use crate::junk_text;

/// `valid` most of the time, else one of the `wrong` shapes, junk, or missing.
fn field(
    valid: impl Strategy<Value = String> + 'static,
    wrong: impl Strategy<Value = String> + 'static,
) -> BoxedStrategy<Option<String>> {
    prop_oneof![
        36 => valid.prop_map(Some),
        2 => wrong.prop_map(Some),
        1 => junk_text().prop_map(Some),
        1 => Just(None),
    ]
    .boxed()
}

pub(crate) fn environment() -> BoxedStrategy<BTreeMap<&'static str, String>> {
    let command = prop_oneof![
        3 => Just("ADD"),
        2 => Just("DEL"),
        2 => Just("CHECK"),
        2 => Just("GC"),
        1 => Just("STATUS"),
        1 => Just("VERSION"),
    ];
    (
        field(
            command.prop_map(str::to_owned),
            proptest::sample::select(vec!["add", " ADD", "DEL\n", "VERSION ", ""])
                .prop_map(str::to_owned),
        ),
        field(
            "[0-9a-f]{64}|[a-z0-9][a-z0-9_.-]{0,20}",
            "[a-z]{129,140}|[_.-][a-z]{0,5}",
        ),
        field(Just("/var/run/netns/cni-1".to_owned()), "[ -~]{0,40}"),
        field(
            "eth0|net1|[a-z0-9]{1,15}",
            "\\.|\\.\\.|[a-z]{16,20}|eth/0|eth 0",
        ),
        field(cni_args(), "K8S_POD_NAMESPACE=shop|;;|=|K8S_POD_NAME"),
        field(Just("/opt/cni/bin".to_owned()), "[ -~]{0,40}"),
    )
        .prop_map(|(command, container, netns, ifname, args, path)| {
            [
                ("CNI_COMMAND", command),
                ("CNI_CONTAINERID", container),
                ("CNI_NETNS", netns),
                ("CNI_IFNAME", ifname),
                ("CNI_ARGS", args),
                ("CNI_PATH", path),
            ]
            .into_iter()
            // A process environment cannot hold NUL.
            .filter_map(|(k, v)| Some((k, v?.replace('\0', ""))))
            .collect()
        })
        .boxed()
}

/// `K8S_POD_NAMESPACE=..;K8S_POD_NAME=..;K8S_POD_UID=..` with entries missing, malformed,
/// repeated or unknown, in any order.
pub(crate) fn cni_args() -> BoxedStrategy<String> {
    let entry = |key: &'static str, valid: &'static str, wrong: &'static str| {
        field(valid, wrong).prop_map(move |v| v.map(|v| format!("{key}={v}")))
    };
    let extra = prop_oneof![
        3 => Just("IgnoreUnknown=1".to_owned()),
        3 => Just("K8S_POD_INFRA_CONTAINER_ID=abc".to_owned()),
        1 => Just("K8S_POD_NAME=web-1".to_owned()),
        1 => junk_text(),
    ];
    (
        entry(
            "K8S_POD_NAMESPACE",
            "shop|kube-system|[a-z]([a-z0-9-]{0,10}[a-z])?",
            "[a-z]{64}|Shop|-a|a\\.b",
        ),
        entry(
            "K8S_POD_NAME",
            "web-0|[a-z]([a-z0-9-]{0,10}[a-z])?(\\.[a-z]{1,5}){0,2}",
            "a{254}|Web|a\\.\\.b|a/b|a_b",
        ),
        entry(
            "K8S_POD_UID",
            "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "[a-z]{129}|a b|a;b",
        ),
        vec(extra, 0..3),
    )
        .prop_flat_map(|(ns, name, uid, extra)| {
            let entries: Vec<String> = [ns, name, uid].into_iter().flatten().chain(extra).collect();
            Just(entries).prop_shuffle()
        })
        .prop_map(|entries| entries.join(";"))
        .boxed()
}
