//! A container's claim on its pod's allocation: the `container` field of one IPAMBlock
//! allocation, written and cleared with one conditional JSON patch each.
//!
//! The `test` operations make the API server refuse the write unless the block is the range
//! the annotation implies and the allocation at the address's ordinal belongs to the pod's UID.
//! The server applies the patch to the latest stored object, so the write never overwrites the
//! controller's concurrent changes and never needs a read first: ADD costs one GET (the pod) and
//! one PATCH. A failed `test` answers 422 on a real API server (the patch handler reports any
//! JSON-patch application error as 422 Unprocessable Entity); only then is the block read, to
//! say why.

use api::keys::PLUGIN_MANAGER;
use api::{FamilyAssignment, IPAMBlock, IPAMBlockSpec};
use ipam::cidr::{ordinal_of, parse_block_name};
use ipnet::IpNet;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::cluster::{ApiFailure, Cluster};
use crate::error::CniError;
use crate::log::Logger;
use crate::request::PodRef;

/// Where an address is recorded: its block's range and its ordinal in the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The block's range, from its name.
    pub block: IpNet,
    /// The address's ordinal in the block: the allocation's key.
    pub ordinal: u32,
}

impl Slot {
    /// Finds the slot from the annotation's block name and address; the reason when the two do
    /// not fit together.
    pub fn locate(assigned: &FamilyAssignment) -> Result<Slot, String> {
        let block = parse_block_name(&assigned.block).map_err(|e| e.to_string())?;
        let ordinal = ordinal_of(&block, assigned.address).ok_or_else(|| {
            format!(
                "{} lies outside the block's range {block}",
                assigned.address
            )
        })?;
        Ok(Slot { block, ordinal })
    }

    fn path(&self, field: &str) -> String {
        format!("/spec/allocations/{}/{field}", self.ordinal)
    }

    /// Claim: the block is this range, the allocation is the pod's; then record the container.
    /// `add` replaces an existing value, so a sandbox restart takes the claim over.
    pub fn claim_patch(&self, uid: &str, container: &str) -> Result<json_patch::Patch, String> {
        patch(json!([
            {"op": "test", "path": "/spec/cidr", "value": self.block.to_string()},
            {"op": "test", "path": self.path("handle"), "value": uid},
            {"op": "add", "path": self.path("container"), "value": container},
        ]))
    }

    /// Release: only this container's claim on this pod's allocation; never the allocation.
    pub fn release_patch(&self, uid: &str, container: &str) -> Result<json_patch::Patch, String> {
        patch(json!([
            {"op": "test", "path": self.path("handle"), "value": uid},
            {"op": "test", "path": self.path("container"), "value": container},
            {"op": "remove", "path": self.path("container")},
        ]))
    }

    /// Why the block does not record the address for `uid` (and, when given, for `container`);
    /// `Ok` when it does.
    pub fn diagnose(
        &self,
        spec: &IPAMBlockSpec,
        uid: &str,
        container: Option<&str>,
    ) -> Result<(), String> {
        if spec.cidr != self.block.to_string() {
            return Err(format!(
                "the block's range is {}, not {}",
                spec.cidr, self.block
            ));
        }
        let Some(allocation) = spec.allocations.get(&self.ordinal.to_string()) else {
            return Err("the block holds no allocation for the address".into());
        };
        if allocation.handle != uid {
            return Err("the address is allocated to another pod".into());
        }
        match (container, allocation.container.as_deref()) {
            (Some(want), Some(have)) if want != have => {
                Err(format!("the claim belongs to container {have}"))
            }
            (Some(_), None) => Err("no container has claimed the address".into()),
            _ => Ok(()),
        }
    }
}

fn patch(ops: serde_json::Value) -> Result<json_patch::Patch, String> {
    serde_json::from_value(ops).map_err(|e| format!("cannot build the JSON patch: {e}"))
}

/// The request identity shared by claim, release and verify.
pub struct Claimant<'a> {
    /// The pod.
    pub pod: &'a PodRef,
    /// The pod's UID as the API server reports it.
    pub uid: &'a str,
    /// `CNI_CONTAINERID`
    pub container: &'a str,
    /// Where requests are logged (at debug level).
    pub log: &'a Logger,
}

impl Claimant<'_> {
    fn not_recorded(&self, assigned: &FamilyAssignment, reason: String) -> CniError {
        CniError::NotRecorded {
            pod: self.pod.to_string(),
            pool: assigned.pool.clone(),
            address: assigned.address,
            block: assigned.block.clone(),
            reason,
        }
    }

    /// CHECK's error for `assigned`.
    pub fn lost(&self, assigned: &FamilyAssignment, reason: String) -> CniError {
        CniError::ClaimLost {
            pod: self.pod.to_string(),
            container: self.container.to_owned(),
            reason: format!(
                "address {} (pool {}): {reason}",
                assigned.address, assigned.pool
            ),
        }
    }
}

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(PLUGIN_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

fn blocks(cluster: &Cluster) -> Api<IPAMBlock> {
    Api::all(cluster.client.clone())
}

/// Records the container's claim on the pod's allocation; the block's range on success.
pub async fn claim(
    cluster: &Cluster,
    who: &Claimant<'_>,
    assigned: &FamilyAssignment,
) -> Result<IpNet, CniError> {
    let slot = Slot::locate(assigned).map_err(|r| who.not_recorded(assigned, r))?;
    let patch = slot
        .claim_patch(who.uid, who.container)
        .map_err(|r| who.not_recorded(assigned, r))?;
    let api = blocks(cluster);
    who.log.debug(format_args!(
        "request: PATCH ipamblocks/{} (claim ordinal {})",
        assigned.block, slot.ordinal
    ));
    let err = match api
        .patch_metadata(&assigned.block, &params(), &Patch::Json::<()>(patch))
        .await
    {
        Ok(_) => return Ok(slot.block),
        Err(err) => err,
    };
    let action = format!("claim {} in IPAMBlock {}", assigned.address, assigned.block);
    match ApiFailure::of(&err) {
        ApiFailure::NotFound => {
            Err(who.not_recorded(assigned, "the IPAMBlock does not exist".into()))
        }
        ApiFailure::Unprocessable(answer) => {
            // Rare path: read the block to tell a forged annotation from a race.
            who.log
                .debug(format_args!("request: GET ipamblocks/{}", assigned.block));
            let spec = match api.get_opt(&assigned.block).await {
                Ok(Some(block)) => block.spec,
                Ok(None) => {
                    return Err(who.not_recorded(assigned, "the IPAMBlock does not exist".into()));
                }
                Err(e) => return Err(ApiFailure::of(&e).into_error(&who.pod.to_string(), &action)),
            };
            match slot.diagnose(&spec, who.uid, None) {
                Err(reason) => Err(who.not_recorded(assigned, reason)),
                Ok(()) => Err(CniError::TryAgain {
                    pod: who.pod.to_string(),
                    reason: format!("could not {action}: {answer}"),
                }),
            }
        }
        other => Err(other.into_error(&who.pod.to_string(), &action)),
    }
}

/// Whether a release changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// The container's claim was removed.
    Cleared,
    /// Nothing to do: the block, the allocation or the claim is gone or another's.
    Absent,
}

/// Removes the container's claim, if it still holds.
pub async fn release(
    cluster: &Cluster,
    who: &Claimant<'_>,
    block_name: &str,
    slot: &Slot,
) -> Result<Released, CniError> {
    let patch = slot
        .release_patch(who.uid, who.container)
        .map_err(|reason| CniError::Api {
            pod: who.pod.to_string(),
            action: "build the release patch".into(),
            reason,
        })?;
    who.log.debug(format_args!(
        "request: PATCH ipamblocks/{block_name} (release ordinal {})",
        slot.ordinal
    ));
    match blocks(cluster)
        .patch_metadata(block_name, &params(), &Patch::Json::<()>(patch))
        .await
    {
        Ok(_) => Ok(Released::Cleared),
        Err(err) => match ApiFailure::of(&err) {
            ApiFailure::NotFound | ApiFailure::Unprocessable(_) => Ok(Released::Absent),
            other => Err(other.into_error(
                &who.pod.to_string(),
                &format!("release the claim in IPAMBlock {block_name}"),
            )),
        },
    }
}

/// CHECK: the block still records the address for the pod and the container.
pub async fn verify(
    cluster: &Cluster,
    who: &Claimant<'_>,
    assigned: &FamilyAssignment,
) -> Result<(), CniError> {
    let slot = Slot::locate(assigned).map_err(|r| who.lost(assigned, r))?;
    who.log
        .debug(format_args!("request: GET ipamblocks/{}", assigned.block));
    let block = blocks(cluster)
        .get_opt(&assigned.block)
        .await
        .map_err(|e| {
            ApiFailure::of(&e).into_error(
                &who.pod.to_string(),
                &format!("read IPAMBlock {}", assigned.block),
            )
        })?
        .ok_or_else(|| {
            who.lost(
                assigned,
                format!("IPAMBlock {} does not exist", assigned.block),
            )
        })?;
    slot.diagnose(&block.spec, who.uid, Some(who.container))
        .map_err(|r| who.lost(assigned, r))
}

#[cfg(test)]
mod tests;
