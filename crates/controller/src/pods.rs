//! Facts about pods the controller needs, and the one write it makes to them: the assignment
//! annotations.

use std::collections::BTreeMap;

use api::Assignment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Map, Value, json};

/// Whether the controller must give this pod addresses: bound to a node, not on the host
/// network, not finished, not being deleted.
pub fn wants_address(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let bound = spec
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    bound && !host_network && !is_terminal(pod) && pod.metadata.deletion_timestamp.is_none()
}

/// Succeeded or Failed: its containers will not run again, so its addresses can go.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

/// The node the pod is bound to.
pub fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()?
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())
}

/// When the pod was bound to its node, if the scheduler recorded it.
pub fn bound_at(pod: &Pod) -> Option<k8s_openapi::jiff::Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "True")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

/// Writes the pod's assignment annotations (and removes stale ones), only if the pod still has
/// `uid`: a pod re-created under the same name never receives another pod's address.
pub async fn annotate(
    client: &Client,
    namespace: &str,
    name: &str,
    uid: &str,
    assignment: &Assignment,
) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let patch = annotation_patch(uid, assignment);
    let params = PatchParams {
        field_manager: Some(api::keys::CONTROLLER_MANAGER.into()),
        ..Default::default()
    };
    api.patch(name, &params, &Patch::Merge(patch))
        .await
        .map(|_| ())
}

/// The merge patch that records `assignment` on the pod with UID `uid`. The UID in the patch is
/// a precondition: the API server refuses it when the pod has another UID.
pub fn annotation_patch(uid: &str, assignment: &Assignment) -> Value {
    let annotations: Map<String, Value> = assignment
        .to_annotations()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.map_or(Value::Null, Value::String)))
        .collect();
    json!({ "metadata": { "uid": uid, "annotations": annotations } })
}

/// The pod's annotations, empty when it has none.
pub fn annotations(pod: &Pod) -> &BTreeMap<String, String> {
    pod.annotations()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};

    fn pod(node: Option<&str>, phase: Option<&str>, host_network: bool) -> Pod {
        Pod {
            spec: Some(PodSpec {
                node_name: node.map(str::to_owned),
                host_network: Some(host_network),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: phase.map(str::to_owned),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn only_bound_running_pod_network_pods_want_an_address() {
        assert!(wants_address(&pod(Some("n1"), Some("Pending"), false)));
        assert!(!wants_address(&pod(None, Some("Pending"), false)));
        assert!(!wants_address(&pod(Some(""), None, false)));
        assert!(!wants_address(&pod(Some("n1"), None, true)));
        assert!(!wants_address(&pod(Some("n1"), Some("Succeeded"), false)));
        assert!(!wants_address(&pod(Some("n1"), Some("Failed"), false)));
    }

    #[test]
    fn the_patch_carries_the_uid_precondition_and_removes_stale_keys() {
        let patch = annotation_patch(
            "uid-1",
            &Assignment {
                error: Some("no pool".into()),
                ..Default::default()
            },
        );
        assert_eq!(patch["metadata"]["uid"], "uid-1");
        let annotations = &patch["metadata"]["annotations"];
        assert_eq!(annotations[api::keys::ASSIGNMENT_ERROR], "no pool");
        assert_eq!(annotations[api::keys::ASSIGNED_IPV4], Value::Null);
    }
}
