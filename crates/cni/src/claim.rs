//! A container's claim on its pod's allocation: the `container` field of one IPAMBlock
//! allocation, written and cleared with one conditional JSON patch each.
//!
//! The patch shapes ([`Slot::claim`], [`Slot::unclaim`]) and the reading of the server's
//! answers to them ([`write::refusal`]) come from `api::write`, the one place that builds
//! IPAMBlock writes; this module only sends them, logs the requests and turns the answers into
//! the plugin's errors.
//!
//! The patches' `test` operations make the API server refuse the write unless the block is the
//! range the annotation implies and the allocation at the address's ordinal belongs to the
//! pod's UID. The server applies the patch to the latest stored object, so the write never
//! overwrites the controller's concurrent changes and never needs a read first: ADD costs one
//! GET (the pod) and one PATCH. Only when the server refuses a claim as a conflict is the block
//! read, to say why.

use api::keys::PLUGIN_MANAGER;
use api::write::{self, Refusal, Slot};
use api::{FamilyAssignment, IPAMBlock};
use ipnet::IpNet;
use kube::api::{Api, Patch, PatchParams};

use crate::cluster::{self, ApiFailure, Cluster};
use crate::error::CniError;
use crate::log::Logger;
use crate::request::PodRef;

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

/// `api::write`'s reading of a failed block write; a request the server never answered is
/// [`Refusal::Other`].
fn refusal(err: &kube::Error) -> Refusal {
    match err {
        kube::Error::Api(status) => write::refusal(status.code),
        _ => Refusal::Other,
    }
}

/// Records the container's claim on the pod's allocation; the block's range on success.
pub async fn claim(
    cluster: &Cluster,
    who: &Claimant<'_>,
    assigned: &FamilyAssignment,
) -> Result<IpNet, CniError> {
    let slot = Slot::locate(assigned).map_err(|r| who.not_recorded(assigned, r))?;
    let patch = slot.claim(who.uid, who.container);
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
    match refusal(&err) {
        Refusal::Gone => Err(who.not_recorded(assigned, "the IPAMBlock does not exist".into())),
        Refusal::Conflict => {
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
                    reason: format!("could not {action}: {}", cluster::answer(&err)),
                }),
            }
        }
        Refusal::Other => Err(ApiFailure::of(&err).into_error(&who.pod.to_string(), &action)),
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
    let patch = slot.unclaim(who.uid, who.container);
    who.log.debug(format_args!(
        "request: PATCH ipamblocks/{block_name} (release ordinal {})",
        slot.ordinal
    ));
    match blocks(cluster)
        .patch_metadata(block_name, &params(), &Patch::Json::<()>(patch))
        .await
    {
        Ok(_) => Ok(Released::Cleared),
        Err(err) => not_released(&err, &who.pod.to_string(), block_name),
    }
}

/// What a refused release means: a block that is gone, or that no longer holds this
/// container's claim on the pod's allocation, leaves nothing to release, which DEL and GC count
/// as done.
fn not_released(err: &kube::Error, pod: &str, block_name: &str) -> Result<Released, CniError> {
    match refusal(err) {
        Refusal::Gone | Refusal::Conflict => Ok(Released::Absent),
        Refusal::Other => Err(ApiFailure::of(err)
            .into_error(pod, &format!("release the claim in IPAMBlock {block_name}"))),
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
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn answer(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            message: "m".into(),
            ..Default::default()
        }))
    }

    #[test]
    fn a_release_the_block_refuses_leaves_nothing_to_release() {
        for code in [404, 409, 422] {
            assert_eq!(
                not_released(&answer(code), "ns/web", "b"),
                Ok(Released::Absent),
                "{code}"
            );
        }
    }

    #[test]
    fn a_release_that_failed_otherwise_is_an_error() {
        let busy = not_released(&answer(503), "ns/web", "b").unwrap_err();
        assert_eq!(busy.code(), 11);
        let forbidden = not_released(&answer(403), "ns/web", "b").unwrap_err();
        assert_eq!(forbidden.code(), 106);
        assert!(
            forbidden
                .to_string()
                .contains("release the claim in IPAMBlock b"),
            "{forbidden}"
        );
        let unanswered = kube::Error::Service(Box::new(std::io::Error::other("reset")));
        assert_eq!(refusal(&unanswered), Refusal::Other);
        assert_eq!(
            not_released(&unanswered, "ns/web", "b").unwrap_err().code(),
            11
        );
    }
}
