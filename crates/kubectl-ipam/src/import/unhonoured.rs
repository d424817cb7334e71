//! Calico pod annotations rangepool does not honour, found in the file being imported: a Pod,
//! or the pod template of a workload, carrying `cni.projectcalico.org/ipAddrsNoIpam` (such pods
//! get no address) or `cni.projectcalico.org/floatingIPs` (no floating address; the pod gets its
//! own as usual). Whether a key is honoured, and what it means for the pod, is the core's
//! ([`ipam::fixed`]); the messages are its own, as the controller's Events carry them.

use std::collections::BTreeMap;

use serde_json::Value;

/// Where workloads keep their pod template's annotations.
const TEMPLATES: [&str; 2] = [
    // Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, ReplicationController.
    "/spec/template/metadata/annotations",
    // CronJob.
    "/spec/jobTemplate/spec/template/metadata/annotations",
];

/// The warnings for one document (not a List).
pub(super) fn find(doc: &Value) -> Vec<String> {
    let text = |pointer: &str| doc.pointer(pointer).and_then(Value::as_str).unwrap_or("");
    let (kind, name) = (text("/kind"), text("/metadata/name"));
    let namespace = match text("/metadata/namespace") {
        "" => "default",
        ns => ns,
    };
    if kind == "Pod" {
        return ipam::fixed::unhonoured(
            namespace,
            name,
            &annotations(doc, "/metadata/annotations"),
        );
    }
    TEMPLATES
        .iter()
        .map(|pointer| annotations(doc, pointer))
        .find(|a| !a.is_empty())
        .map(|a| {
            // The core's message names a pod; here it is every pod of the workload.
            let prefix = format!("pod {namespace}/{name}: ");
            ipam::fixed::unhonoured(namespace, name, &a)
                .into_iter()
                .map(|m| {
                    format!(
                        "{kind} {namespace}/{name}: its pod template: {}",
                        m.strip_prefix(&prefix).unwrap_or(&m)
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn annotations(doc: &Value, pointer: &str) -> BTreeMap<String, String> {
    doc.pointer(pointer)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}
