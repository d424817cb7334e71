//! GC: clears container claims that the runtime no longer knows.
//!
//! What is safe to touch, and why:
//! - Only the `container` claim field, never an allocation: addresses belong to pods, and only
//!   the controller frees them (when the pod is gone or terminal).
//! - Only claims of pods bound to this node (`spec.nodeName`), because the runtime's
//!   `cni.dev/valid-attachments` lists this node's attachments only. Claims are not filtered by
//!   the block's node affinity: a pod may hold an address lent by another node's block, and
//!   another node's pod may hold one from ours.
//! - Only claims whose pod still exists with the allocation's UID: a pod that is gone is the
//!   controller's to clean up, together with its allocation.
//! - Each removal is a JSON patch that tests the handle and the exact stale container ID, so a
//!   claim taken over meanwhile by a new sandbox is left alone.
//!
//! The cost is one LIST of the node's pod metadata, one GET per distinct block those pods use
//! (usually the node's own one or two), and one PATCH per stale claim.

use std::collections::{BTreeMap, HashSet};

use api::write::Slot;
use api::{Assignment, IPAMBlock};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use crate::claim::{self, Claimant, Released};
use crate::cluster::{ApiFailure, Cluster};
use crate::error::CniError;
use crate::log::Logger;
use crate::request::PodRef;

/// One pod address to look at.
struct Candidate {
    pod: PodRef,
    uid: String,
    slot: Slot,
}

/// What a sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Claims of this node's pods that were looked at.
    pub seen: usize,
    /// Stale claims removed.
    pub cleared: usize,
}

/// Sweeps the claims of `node`'s pods against the runtime's valid container IDs.
pub async fn sweep(
    cluster: &Cluster,
    node: &str,
    valid: &[String],
    log: &Logger,
) -> Result<Swept, CniError> {
    let fail = |reason: String| CniError::Gc {
        node: node.to_owned(),
        reason,
    };
    let valid: HashSet<&str> = valid.iter().map(String::as_str).collect();
    let pods: Api<Pod> = Api::all(cluster.client.clone());
    log.debug(format_args!(
        "request: LIST pods fieldSelector=spec.nodeName={node} (metadata)"
    ));
    let list = pods
        .list_metadata(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await
        .map_err(|e| fail(format!("cannot list the node's pods: {}", describe(&e))))?;

    let mut by_block: BTreeMap<String, Vec<Candidate>> = BTreeMap::new();
    for meta in list.items {
        let m = meta.metadata;
        let (Some(namespace), Some(name), Some(uid)) = (m.namespace, m.name, m.uid) else {
            continue;
        };
        let Some(annotations) = m.annotations else {
            continue;
        };
        // A pod whose annotations cannot be read has no claim this plugin could have made.
        let Ok(assignment) = Assignment::from_annotations(&annotations) else {
            continue;
        };
        for assigned in assignment.addresses() {
            let Ok(slot) = Slot::locate(assigned) else {
                continue;
            };
            by_block
                .entry(assigned.block.clone())
                .or_default()
                .push(Candidate {
                    pod: PodRef {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        uid: Some(uid.clone()),
                    },
                    uid: uid.clone(),
                    slot,
                });
        }
    }

    let blocks: Api<IPAMBlock> = Api::all(cluster.client.clone());
    let mut swept = Swept::default();
    let mut first_error = None;
    for (block_name, candidates) in by_block {
        log.debug(format_args!("request: GET ipamblocks/{block_name}"));
        let block = match blocks.get_opt(&block_name).await {
            Ok(Some(block)) => block,
            Ok(None) => continue,
            Err(e) => {
                let reason = format!("cannot read IPAMBlock {block_name}: {}", describe(&e));
                log.warn(format_args!("{reason}"));
                first_error.get_or_insert(reason);
                continue;
            }
        };
        for c in candidates {
            let Some(allocation) = block.spec.allocations.get(&c.slot.ordinal.to_string()) else {
                continue;
            };
            let Some(container) = allocation.container.as_deref() else {
                continue;
            };
            if allocation.handle != c.uid {
                continue;
            }
            swept.seen += 1;
            if valid.contains(container) {
                continue;
            }
            let who = Claimant {
                pod: &c.pod,
                uid: &c.uid,
                container,
                log,
            };
            match claim::release(cluster, &who, &block_name, &c.slot).await {
                Ok(Released::Cleared) => {
                    swept.cleared += 1;
                    log.info(format_args!(
                        "cleared stale claim of container {container} on {} (pod {}, IPAMBlock {block_name})",
                        c.slot.block, c.pod
                    ));
                }
                Ok(Released::Absent) => {}
                Err(e) => {
                    log.warn(format_args!("{e}"));
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
    }
    match first_error {
        Some(reason) => Err(fail(reason)),
        None => Ok(swept),
    }
}

fn describe(err: &kube::Error) -> String {
    match ApiFailure::of(err) {
        ApiFailure::NotFound => "not found".into(),
        ApiFailure::Transient(r) | ApiFailure::Refused(r) => r,
    }
}

/// The node this plugin runs on: `ipam.nodeName`, else the host name as the kubelet uses it by
/// default (lower-cased).
pub fn node_name(configured: Option<&str>) -> Result<String, CniError> {
    if let Some(name) = configured.filter(|n| !n.is_empty()) {
        return Ok(name.to_owned());
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_lowercase())
        .filter(|h| !h.is_empty());
    host.ok_or_else(|| {
        crate::error::invalid(
            "ipam.nodeName",
            "missing, and the host name cannot be read; set it to the node's name",
        )
    })
}
