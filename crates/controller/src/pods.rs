//! Facts about pods the controller needs, and the one write it makes to them: the assignment
//! annotations.

use std::collections::BTreeMap;
use std::fmt;

use api::Assignment;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Map, Value, json};

/// A pod's namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodKey {
    /// The namespace.
    pub namespace: Box<str>,
    /// The name.
    pub name: Box<str>,
}

impl PodKey {
    /// The key of a pod object.
    pub fn of(pod: &Pod) -> PodKey {
        PodKey {
            namespace: pod.namespace().unwrap_or_default().into(),
            name: pod.name_any().into(),
        }
    }
}

impl fmt::Display for PodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A pod's lifecycle phase, as far as the controller cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not finished (Pending, Running, Unknown or not reported yet).
    Active,
    /// Succeeded or Failed: its containers will not run again.
    Finished,
}

/// What the controller keeps of a pod: a few hundred bytes instead of a full object, so that
/// 150,000 pods fit the memory budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    /// Namespace and name.
    pub key: PodKey,
    /// The UID, the handle of its allocations.
    pub uid: Box<str>,
    /// The node it is bound to.
    pub node: Option<Box<str>>,
    /// On the host network: it needs no address.
    pub host_network: bool,
    /// Finished or not.
    pub phase: Phase,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    /// When the scheduler bound it, if recorded.
    pub bound_at: Option<k8s_openapi::jiff::Timestamp>,
    /// Only the annotations the controller reads: the pool keys and `rangepool.dev/*`.
    annotations: Box<[(Box<str>, Box<str>)]>,
}

/// Annotations the controller reads on a pod; every other one is dropped.
fn keeps_annotation(key: &str) -> bool {
    key == api::keys::IPV4_POOLS
        || key == api::keys::IPV6_POOLS
        || key.starts_with("rangepool.dev/")
}

impl PodInfo {
    /// Keeps what the controller needs of a pod object.
    pub fn of(pod: &Pod) -> PodInfo {
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let finished = matches!(
            status.and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        let bound_at = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| {
                c.iter()
                    .find(|c| c.type_ == "PodScheduled" && c.status == "True")
            })
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0);
        PodInfo {
            key: PodKey::of(pod),
            uid: pod.uid().unwrap_or_default().into(),
            node: spec
                .and_then(|s| s.node_name.as_deref())
                .filter(|n| !n.is_empty())
                .map(Into::into),
            host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
            phase: if finished {
                Phase::Finished
            } else {
                Phase::Active
            },
            deleting: pod.metadata.deletion_timestamp.is_some(),
            bound_at,
            annotations: pod
                .annotations()
                .iter()
                .filter(|(k, _)| keeps_annotation(k))
                .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
                .collect(),
        }
    }

    /// Whether the controller must give this pod addresses: bound to a node, not on the host
    /// network, not finished, not being deleted.
    pub fn wants_address(&self) -> bool {
        self.node.is_some() && !self.host_network && self.phase == Phase::Active && !self.deleting
    }

    /// Succeeded or Failed: its addresses can go.
    pub fn is_terminal(&self) -> bool {
        self.phase == Phase::Finished
    }

    /// The annotations the controller reads, as a map.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        self.annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A reference for Events about the pod.
    pub fn reference(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(self.key.namespace.to_string()),
            name: Some(self.key.name.to_string()),
            uid: Some(self.uid.to_string()),
            ..Default::default()
        }
    }
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
        let wants = |p: Pod| PodInfo::of(&p).wants_address();
        assert!(wants(pod(Some("n1"), Some("Pending"), false)));
        assert!(!wants(pod(None, Some("Pending"), false)));
        assert!(!wants(pod(Some(""), None, false)));
        assert!(!wants(pod(Some("n1"), None, true)));
        assert!(!wants(pod(Some("n1"), Some("Succeeded"), false)));
        assert!(!wants(pod(Some("n1"), Some("Failed"), false)));
        assert!(PodInfo::of(&pod(Some("n1"), Some("Failed"), false)).is_terminal());
    }

    #[test]
    fn only_the_annotations_the_controller_reads_are_kept() {
        let mut p = pod(Some("n1"), None, false);
        p.metadata.annotations = Some(
            [
                (api::keys::IPV4_POOLS, "[\"a\"]"),
                (api::keys::ASSIGNED_IPV4, "10.0.0.1"),
                ("kubectl.kubernetes.io/last-applied-configuration", "{}"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        );
        let kept = PodInfo::of(&p).annotations();
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert!(kept.contains_key(api::keys::IPV4_POOLS));
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
