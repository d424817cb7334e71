//! The one write `release` makes: removing an allocation from its block. The patch is
//! [`api::write::release`], the shape every controller write has (it tests the block's
//! `sequenceNumber` and the allocation's handle and sequence); the server's answer is read with
//! [`api::write::refusal`], and a write refused because the block changed is retried on a fresh
//! read, paced by one [`Retry`] schedule.

use std::time::Duration;

use api::IPAMBlock;
use api::write::{Refusal, Retry, refusal};
use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::cluster::AccessError;
use crate::records::Holder;

/// Field manager of the CLI's writes, so `managedFields` tell them from the controller's.
pub const FIELD_MANAGER: &str = "kubectl-ipam";
/// Writes tried before giving up on a block that keeps changing, and the pauses between them.
const RETRY: Retry = Retry {
    attempts: 5,
    first_pause: Duration::from_millis(100),
};

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
    /// Not released: the record is parked for a StatefulSet's next pod (and no `--force`).
    Parked(String),
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
            Outcome::Parked(why) => format!("refused {what}: {why} (--force to release anyway)"),
            Outcome::Stale(why) => format!("skipped {what}: {why}"),
            Outcome::Conflict(why) => format!("not released {what}: {why}"),
        }
    }
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
    let record = match block.spec.record_at(holder.ordinal) {
        Ok(record) => record,
        Err(why) => {
            return Ok(Err(Outcome::Stale(format!(
                "block {} cannot be read ({why}); nothing was released",
                holder.block
            ))));
        }
    };
    Ok(match record {
        None => Err(Outcome::Stale("already released".to_owned())),
        Some(a)
            if a.handle != holder.handle
                || i64::try_from(a.sequence).ok() != Some(holder.sequence) =>
        {
            Err(Outcome::Stale(format!(
                "re-assigned since it was read: now held by {}/{} (uid {})",
                a.namespace, a.pod, a.handle
            )))
        }
        Some(_) => Ok(block),
    })
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
    let Ok(sequence) = u64::try_from(holder.sequence) else {
        return Ok(Outcome::Stale(format!(
            "its allocation sequence {} is negative, so it names no allocation rangepool writes; nothing was released",
            holder.sequence
        )));
    };
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        dry_run,
        ..Default::default()
    };
    let mut attempt = 1;
    loop {
        // The core refuses when the block as read does not hold this allocation.
        let patch = match api::write::release(&block.spec, holder.ordinal, &holder.handle, sequence)
        {
            Ok(patch) => patch,
            Err(not_held) => return Ok(Outcome::Stale(not_held)),
        };
        match api
            .patch(&holder.block, &params, &Patch::Json::<()>(patch))
            .await
        {
            Ok(_) if dry_run => return Ok(Outcome::WouldRelease { why }),
            Ok(_) => return Ok(Outcome::Released { why }),
            // The block changed since it was read: read it again.
            Err(kube::Error::Api(s)) if refusal(s.code) == Refusal::Conflict => {}
            Err(kube::Error::Api(s)) if refusal(s.code) == Refusal::Gone => {
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
        let Some(pause) = RETRY.pause_after(attempt) else {
            break;
        };
        tokio::time::sleep(pause).await;
        attempt += 1;
        block = match still_held(api, holder).await? {
            Ok(block) => block,
            Err(stale) => return Ok(stale),
        };
    }
    Ok(Outcome::Conflict(format!(
        "block {} changed under each of {} guarded writes; nothing was released, run the command again",
        holder.block, RETRY.attempts
    )))
}
