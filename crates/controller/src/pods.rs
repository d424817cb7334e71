//! Facts about pods the controller needs, and the one write it makes to them: the assignment
//! annotations.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use api::Assignment;
use ipam::pod::PodState;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value, json};

/// A pod's namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodKey {
    /// The namespace.
    pub namespace: Box<str>,
    /// The name.
    pub name: Box<str>,
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

/// A pod as the controller's watch decodes it: the few fields [`PodInfo`] keeps. Everything else
/// in the JSON (containers, volumes, labels, managedFields, other annotations) is skipped while
/// parsing, never allocated: a full `Pod` costs several kilobytes and most of the decoding time
/// of a watch event.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WatchedPod {
    /// Name, namespace, UID, resourceVersion, deletionTimestamp and the annotations the
    /// controller reads.
    #[serde(default, deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    /// The node and host networking.
    #[serde(default, deserialize_with = "null_as_default")]
    pub spec: WatchedSpec,
    /// Phase and when the pod was scheduled.
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: WatchedStatus,
}

/// What the controller reads of a pod's spec.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchedSpec {
    /// `spec.nodeName`.
    #[serde(default)]
    pub node_name: Option<String>,
    /// `spec.hostNetwork`.
    #[serde(default)]
    pub host_network: Option<bool>,
}

/// What the controller reads of a pod's status.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WatchedStatus {
    /// `status.phase`.
    #[serde(default)]
    pub phase: Option<String>,
    /// The last transition of the `PodScheduled=True` condition.
    #[serde(default, rename = "conditions", deserialize_with = "scheduled_at")]
    pub scheduled_at: Option<k8s_openapi::jiff::Timestamp>,
    /// `status.podIPs`: the addresses its sandbox runs with, as the kubelet reports them;
    /// entries that are not addresses are left out.
    #[serde(default, rename = "podIPs", deserialize_with = "pod_ips")]
    pub pod_ips: Vec<IpAddr>,
}

/// `status.podIPs` as addresses; anything else in the list is skipped.
fn pod_ips<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpAddr>, D::Error> {
    #[derive(Deserialize)]
    struct Entry {
        #[serde(default)]
        ip: Option<String>,
    }
    let entries = Option::<Vec<Option<Entry>>>::deserialize(deserializer)?.unwrap_or_default();
    Ok(entries
        .into_iter()
        .flatten()
        .filter_map(|e| e.ip?.parse().ok())
        .take(2)
        .collect())
}

impl k8s_openapi::Resource for WatchedPod {
    const API_VERSION: &'static str = <Pod as k8s_openapi::Resource>::API_VERSION;
    const GROUP: &'static str = <Pod as k8s_openapi::Resource>::GROUP;
    const KIND: &'static str = <Pod as k8s_openapi::Resource>::KIND;
    const VERSION: &'static str = <Pod as k8s_openapi::Resource>::VERSION;
    const URL_PATH_SEGMENT: &'static str = <Pod as k8s_openapi::Resource>::URL_PATH_SEGMENT;
    type Scope = <Pod as k8s_openapi::Resource>::Scope;
}

impl k8s_openapi::Metadata for WatchedPod {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// A missing or null object is an empty one.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// The metadata fields a watched pod keeps; annotations only those [`keeps_annotation`] names.
fn slim_meta<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Slim {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        namespace: Option<String>,
        #[serde(default)]
        uid: Option<String>,
        #[serde(default)]
        resource_version: Option<String>,
        #[serde(default)]
        deletion_timestamp: Option<Time>,
        #[serde(default, deserialize_with = "kept_annotations")]
        annotations: Option<BTreeMap<String, String>>,
        #[serde(default, deserialize_with = "controlling_statefulset")]
        owner_references: Option<Vec<OwnerReference>>,
    }
    let Some(slim) = Option::<Slim>::deserialize(deserializer)? else {
        return Ok(ObjectMeta::default());
    };
    Ok(ObjectMeta {
        name: slim.name,
        namespace: slim.namespace,
        uid: slim.uid,
        resource_version: slim.resource_version,
        deletion_timestamp: slim.deletion_timestamp,
        annotations: slim.annotations,
        owner_references: slim.owner_references,
        ..ObjectMeta::default()
    })
}

/// Of the owner references, only the StatefulSet that controls the pod, if one does (sticky
/// addresses depend on it); the others are skipped.
fn controlling_statefulset<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<OwnerReference>>, D::Error> {
    let owners: Option<Vec<OwnerReference>> = Option::deserialize(deserializer)?;
    let kept: Vec<OwnerReference> = owners
        .into_iter()
        .flatten()
        .filter(|o| ipam::sticky::controls_pod(&o.api_version, &o.kind, o.controller))
        .take(1)
        .collect();
    Ok((!kept.is_empty()).then_some(kept))
}

/// The annotations the controller reads; the values of all others are skipped unread.
fn kept_annotations<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    struct Kept;
    impl<'de> Visitor<'de> for Kept {
        type Value = Option<BTreeMap<String, String>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of annotations")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(Kept)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut kept = BTreeMap::new();
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                if keeps_annotation(&key) {
                    let value = bounded(map.next_value::<String>()?);
                    kept.insert(key.into_owned(), value);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(Some(kept))
        }
    }
    deserializer.deserialize_option(Kept)
}

/// When the `PodScheduled=True` condition last changed, from `status.conditions`.
fn scheduled_at<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<k8s_openapi::jiff::Timestamp>, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Condition {
        #[serde(rename = "type")]
        type_: Cow<'static, str>,
        #[serde(default)]
        status: Cow<'static, str>,
        #[serde(default)]
        last_transition_time: Option<Time>,
    }
    let conditions: Option<Vec<Condition>> = Option::deserialize(deserializer)?;
    Ok(conditions
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "True")
        .and_then(|c| c.last_transition_time)
        .map(|t| t.0))
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
    /// Only the annotations the controller reads ([`READ_ANNOTATIONS`]), each value at most
    /// [`MAX_ANNOTATION_BYTES`].
    annotations: Box<[(Box<str>, Box<str>)]>,
    /// The addresses its sandbox runs with (`status.podIPs`), at most one per family.
    pub running: Box<[IpAddr]>,
    /// The UID of the StatefulSet that controls it, if one does.
    pub statefulset: Option<Box<str>>,
}

/// The pod annotations the controller reads: the pool lists, the Calico keys that ask for a
/// specific address (honoured or reported), and its own assignment. Every
/// other one is dropped as the watch decodes the pod, so no pod creator can make the controller
/// keep what it does not need.
pub const READ_ANNOTATIONS: [&str; 10] = [
    api::keys::IPV4_POOLS,
    api::keys::IPV6_POOLS,
    ipam::fixed::IP_ADDRS,
    ipam::fixed::IP_ADDRS_NO_IPAM,
    ipam::fixed::FLOATING_IPS,
    api::keys::ASSIGNED_IPV4,
    api::keys::ASSIGNED_IPV6,
    api::keys::ASSIGNED_POOLS,
    api::keys::ASSIGNED_BLOCKS,
    api::keys::ASSIGNMENT_ERROR,
];

/// The longest annotation value the controller keeps. Its own values are far shorter, and a
/// pool list this long names dozens of pools. A longer value is kept as a short note of its
/// size, which no rule accepts: a pool list is refused with that note in the pod's Event, and a
/// value under `rangepool.dev/` is overwritten with the real assignment. So 150,000 pods cost
/// the same memory whatever their creators put in their annotations.
pub const MAX_ANNOTATION_BYTES: usize = 4096;

fn keeps_annotation(key: &str) -> bool {
    READ_ANNOTATIONS.contains(&key)
}

/// `value`, or a note of its size when it is over [`MAX_ANNOTATION_BYTES`].
fn bounded(value: String) -> String {
    if value.len() <= MAX_ANNOTATION_BYTES {
        value
    } else {
        format!(
            "<a value of {} bytes, over the {MAX_ANNOTATION_BYTES}-byte limit rangepool reads>",
            value.len()
        )
    }
}

impl PodInfo {
    /// Keeps what the controller needs of a pod as its watch decoded it.
    pub fn of(pod: &WatchedPod) -> PodInfo {
        let meta = &pod.metadata;
        let finished = PodState::finished_phase(pod.status.phase.as_deref());
        PodInfo {
            key: PodKey {
                namespace: meta.namespace.as_deref().unwrap_or_default().into(),
                name: meta.name.as_deref().unwrap_or_default().into(),
            },
            uid: meta.uid.as_deref().unwrap_or_default().into(),
            node: pod
                .spec
                .node_name
                .as_deref()
                .filter(|n| !n.is_empty())
                .map(Into::into),
            host_network: pod.spec.host_network.unwrap_or(false),
            phase: if finished {
                Phase::Finished
            } else {
                Phase::Active
            },
            deleting: meta.deletion_timestamp.is_some(),
            bound_at: pod.status.scheduled_at,
            annotations: meta
                .annotations
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
                .collect(),
            running: pod.status.pod_ips.iter().copied().collect(),
            statefulset: meta
                .owner_references
                .iter()
                .flatten()
                .next()
                .map(|o| o.uid.as_str().into()),
        }
    }

    /// The addresses the pod is known to use: those its assignment annotation names, then its
    /// sandbox's.
    pub fn in_use(&self) -> Vec<IpAddr> {
        let mut out = self.assigned();
        out.extend(
            self.running
                .iter()
                .filter(|a| !out.contains(a))
                .copied()
                .collect::<Vec<_>>(),
        );
        out
    }

    /// The addresses the pod's assignment annotation names.
    pub fn assigned(&self) -> Vec<IpAddr> {
        Assignment::from_annotations(&self.annotations())
            .map(|a| a.addresses().map(|a| a.address).collect())
            .unwrap_or_default()
    }

    /// What the core's address rule reads of the pod.
    pub fn state(&self) -> PodState<'_> {
        PodState {
            node: self.node.as_deref(),
            host_network: self.host_network,
            finished: self.phase == Phase::Finished,
            deleting: self.deleting,
        }
    }

    /// Whether the controller must give this pod addresses ([`PodState::needs_address`]).
    pub fn wants_address(&self) -> bool {
        self.state().needs_address()
    }

    /// Succeeded or Failed: its addresses can go.
    pub fn is_terminal(&self) -> bool {
        self.state().finished
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
    // The answer is the whole pod; only the few fields of a watched pod are decoded.
    let api: Api<WatchedPod> = Api::namespaced(client.clone(), namespace);
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

    /// The pod as the controller's watch decodes it.
    fn watched(p: &Pod) -> WatchedPod {
        serde_json::from_value(serde_json::to_value(p).unwrap()).unwrap()
    }

    #[test]
    fn a_watched_pod_keeps_what_the_controller_reads_of_a_full_pod() {
        let json = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "web-1",
                "namespace": "shop",
                "uid": "u-1",
                "resourceVersion": "42",
                "deletionTimestamp": "2026-11-25T10:00:00Z",
                "labels": {"app": "web"},
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"big\": [1, 2, 3]}",
                    "cni.projectcalico.org/ipv4pools": "[\"fw\"]",
                    "rangepool.dev/ipv4": "10.0.0.7",
                    "other": "x"
                },
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:metadata": {}}}],
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "r"}]
            },
            "spec": {
                "nodeName": "node-3",
                "hostNetwork": false,
                "containers": [{"name": "app", "image": "app:1", "ports": [{"containerPort": 80}]}]
            },
            "status": {
                "phase": "Running",
                "podIP": "10.0.0.7",
                "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-25T09:00:05Z"},
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-25T09:00:00Z"}
                ]
            }
        });
        let watched: WatchedPod = serde_json::from_value(json).unwrap();
        assert_eq!(watched.metadata.resource_version.as_deref(), Some("42"));
        assert!(watched.metadata.labels.is_none() && watched.metadata.managed_fields.is_none());
        let info = PodInfo::of(&watched);
        assert_eq!(info.key.to_string(), "shop/web-1");
        assert_eq!(&*info.uid, "u-1");
        assert_eq!(info.node.as_deref(), Some("node-3"));
        assert!(info.deleting && !info.host_network && info.phase == Phase::Active);
        assert_eq!(
            info.bound_at.map(|t| t.to_string()).as_deref(),
            Some("2026-11-25T09:00:00Z")
        );
        let kept: Vec<String> = info.annotations().into_keys().collect();
        assert_eq!(
            kept,
            ["cni.projectcalico.org/ipv4pools", "rangepool.dev/ipv4"]
        );
    }

    #[test]
    fn a_watched_pod_without_spec_status_or_annotations_decodes() {
        for json in [
            json!({"metadata": {"name": "p", "annotations": null}}),
            json!({"metadata": {"name": "p"}, "spec": null, "status": {"conditions": null}}),
            json!({}),
            json!({"metadata": null}),
        ] {
            let watched: WatchedPod = serde_json::from_value(json.clone()).unwrap();
            let info = PodInfo::of(&watched);
            assert!(!info.wants_address(), "{json}");
            assert!(info.annotations().is_empty());
        }
    }

    #[test]
    fn only_bound_running_pod_network_pods_want_an_address() {
        let wants = |p: Pod| PodInfo::of(&watched(&p)).wants_address();
        assert!(wants(pod(Some("n1"), Some("Pending"), false)));
        assert!(!wants(pod(None, Some("Pending"), false)));
        assert!(!wants(pod(Some(""), None, false)));
        assert!(!wants(pod(Some("n1"), None, true)));
        assert!(!wants(pod(Some("n1"), Some("Succeeded"), false)));
        assert!(!wants(pod(Some("n1"), Some("Failed"), false)));
        assert!(PodInfo::of(&watched(&pod(Some("n1"), Some("Failed"), false))).is_terminal());
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
        let kept = PodInfo::of(&watched(&p)).annotations();
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert!(kept.contains_key(api::keys::IPV4_POOLS));
    }

    #[test]
    fn only_the_exact_keys_are_kept_and_oversized_values_become_a_note() {
        let json = json!({
            "metadata": {
                "name": "p",
                "annotations": {
                    "rangepool.dev/anything-else": "x".repeat(100),
                    "cni.projectcalico.org/ipv4pools": "y".repeat(200_000),
                    "rangepool.dev/error": "a short forged error",
                }
            }
        });
        let watched: WatchedPod = serde_json::from_value(json).unwrap();
        let kept = PodInfo::of(&watched).annotations();
        assert_eq!(
            kept.keys().collect::<Vec<_>>(),
            ["cni.projectcalico.org/ipv4pools", "rangepool.dev/error"]
        );
        let pools = &kept["cni.projectcalico.org/ipv4pools"];
        assert!(pools.len() < 100, "{pools}");
        assert!(pools.contains("200000 bytes"), "{pools}");
        // No rule accepts the note: the pool list does not parse, so the pod gets an Event.
        assert!(serde_json::from_str::<Value>(pools).is_err());
        assert_eq!(kept["rangepool.dev/error"], "a short forged error");
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
