//! The one write `release` makes: removing an allocation from its block, guarded as the
//! controller guards its own writes (`crates/controller/src/blocks.rs`).

use std::time::Duration;

use api::{IPAMBlock, IPAMBlockSpec};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::cluster::AccessError;
use crate::records::Holder;

/// Field manager of the CLI's writes, so `managedFields` tell them from the controller's.
pub const FIELD_MANAGER: &str = "kubectl-ipam";
/// Writes tried before giving up on a block that keeps changing.
const ATTEMPTS: u32 = 5;
/// Pause after the first failed write; doubles after each.
const FIRST_PAUSE: Duration = Duration::from_millis(100);

/// What happened to one allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Released; `why` says why it was allowed.
    Released {
        /// Why it was allowed.
        why: String,
    },
    /// `--dry-run`: the API server accepted the guarded write without making it.
    WouldRelease {
        /// Why it would be allowed.
        why: String,
    },
    /// Not released: the pod still exists (and no `--force`).
    Refused(String),
    /// Not released: the allocation is no longer the one meant (already released, or the
    /// address was re-assigned since it was read).
    Stale(String),
    /// Not released: every guarded write failed because the block kept changing.
    Conflict(String),
}

impl Outcome {
    /// One line for a person.
    pub fn line(&self, h: &Holder) -> String {
        let what = format!("{} (block {}, pool {})", h.address, h.block, h.pool);
        match self {
            Outcome::Released { why } => format!("released {what}: {why}"),
            Outcome::WouldRelease { why } => format!(
                "would release {what} (dry run; the API server accepted the guarded write): {why}"
            ),
            Outcome::Refused(why) => format!(
                "refused {what}: {why}; releasing it would let another pod get an address this pod still uses (--force to release anyway)"
            ),
            Outcome::Stale(why) => format!("skipped {what}: {why}"),
            Outcome::Conflict(why) => format!("not released {what}: {why}"),
        }
    }
}

/// The JSON patch that removes `holder`'s allocation from a block last read as `have`: it tests
/// the block's sequence number and the allocation's handle and sequence, removes the
/// allocation and bumps the sequence number, as a controller release does.
pub fn guard_patch(have: &IPAMBlockSpec, holder: &Holder) -> serde_json::Value {
    let at = format!("/spec/allocations/{}", holder.ordinal);
    json!([
        {"op": "test", "path": "/spec/sequenceNumber", "value": have.sequence_number},
        {"op": "test", "path": format!("{at}/handle"), "value": holder.handle},
        {"op": "test", "path": format!("{at}/sequence"), "value": holder.sequence},
        {"op": "remove", "path": at},
        {"op": "replace", "path": "/spec/sequenceNumber", "value": have.sequence_number + 1},
    ])
}

/// The block, if it still records `holder`'s allocation; else why not.
pub async fn still_held(
    api: &Api<IPAMBlock>,
    holder: &Holder,
) -> Result<Result<IPAMBlock, Outcome>, AccessError> {
    let block = api
        .get_opt(&holder.block)
        .await
        .map_err(|e| AccessError::request(format!("reading ipamblock {}", holder.block), &e))?;
    let Some(block) = block else {
        return Ok(Err(Outcome::Stale(format!(
            "block {} no longer exists, so the address is free",
            holder.block
        ))));
    };
    Ok(
        match block.spec.allocations.get(&holder.ordinal.to_string()) {
            None => Err(Outcome::Stale("already released".to_owned())),
            Some(a) if a.handle != holder.handle || a.sequence != holder.sequence => {
                Err(Outcome::Stale(format!(
                    "re-assigned since it was read: now held by {}/{} (uid {})",
                    a.namespace, a.pod, a.handle
                )))
            }
            Some(_) => Ok(block),
        },
    )
}

/// Removes the allocation from `block` (as just read), re-reading and retrying while the block
/// changes under us.
pub async fn remove(
    api: &Api<IPAMBlock>,
    mut block: IPAMBlock,
    holder: &Holder,
    dry_run: bool,
    why: String,
) -> Result<Outcome, AccessError> {
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        dry_run,
        ..Default::default()
    };
    let mut pause = FIRST_PAUSE;
    for attempt in 1..=ATTEMPTS {
        let ops = guard_patch(&block.spec, holder);
        // The ops are built from literals above: they always parse as a JSON patch.
        let patch: json_patch::Patch = serde_json::from_value(ops).unwrap_or_default();
        match api
            .patch(&holder.block, &params, &Patch::Json::<()>(patch))
            .await
        {
            Ok(_) if dry_run => return Ok(Outcome::WouldRelease { why }),
            Ok(_) => return Ok(Outcome::Released { why }),
            // A failed `test` is 422; a stale write 409. Either way: read again.
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 422 => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {
                return Ok(Outcome::Stale(format!(
                    "block {} no longer exists, so the address is free",
                    holder.block
                )));
            }
            Err(e) => {
                return Err(AccessError::request(
                    format!("patching ipamblock {}", holder.block),
                    &e,
                ));
            }
        }
        if attempt == ATTEMPTS {
            break;
        }
        tokio::time::sleep(pause).await;
        pause *= 2;
        block = match still_held(api, holder).await? {
            Ok(block) => block,
            Err(stale) => return Ok(stale),
        };
    }
    Ok(Outcome::Conflict(format!(
        "block {} changed under each of {ATTEMPTS} guarded writes; nothing was released, run the command again",
        holder.block
    )))
}
