//! Every write anyone makes to an IPAMBlock, as the JSON patch sent to the API server, and what
//! the server's answers to those writes mean. Pure: building a patch needs no client, so each
//! binary keeps only its send and its retry policy. The CNI plugin writes nothing: it only
//! reads blocks (see [`crate::block::Slot`]).
//!
//! - [`update`]: the controller's change from the version it last read to the one it wants.
//!   Its first operation tests `spec.sequenceNumber`, which every change of allocations or
//!   affinity bumps, so the patch fails when anyone changed them since the read.
//! - [`release`]: one allocation removed from a block as last read, as `kubectl ipam release`
//!   does: the core's own release applied to the read, written with [`update`].
//!
//! Every write that changes a block also clears its `managedFields` (see [`update`]).
//!
//! A refused `test` answers 422 on a real API server (the patch handler reports any JSON-patch
//! error as Unprocessable Entity); [`refusal`] reads every status a block write can get.

use std::time::Duration;

use ipam::block::Block;
use json_patch::jsonptr::PointerBuf;
use json_patch::{
    AddOperation, Patch, PatchOperation, RemoveOperation, ReplaceOperation, TestOperation,
};
use serde_json::{Value, json};

use crate::IPAMBlockSpec;

/// What a refused block write means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The block is not as the write expected: a `test` failed (422), the resourceVersion is
    /// stale or the name exists (409). Read it again and recompute.
    Conflict,
    /// The block does not exist (404).
    Gone,
    /// Anything else: the request itself failed (authorization, overload, server error).
    Other,
}

/// The meaning of the HTTP status of a refused block write.
pub fn refusal(status: u16) -> Refusal {
    match status {
        409 | 422 => Refusal::Conflict,
        404 => Refusal::Gone,
        _ => Refusal::Other,
    }
}

/// A bounded retry: `attempts` tries in all, pausing `first_pause` after the first failure and
/// twice as long after each next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Tries in all, the first included.
    pub attempts: u32,
    /// The pause after the first failed try.
    pub first_pause: Duration,
}

impl Retry {
    /// The pause after failed try number `attempt` (1-based), or `None` when it was the last.
    pub fn pause_after(&self, attempt: u32) -> Option<Duration> {
        (attempt < self.attempts).then(|| {
            self.first_pause
                .saturating_mul(1u32 << (attempt - 1).min(16))
        })
    }
}

/// The JSON patch that turns `have` (as last read) into `want`, guarded by a test of `have`'s
/// sequence number.
///
/// `want` keeps every record in `holders` ([`IPAMBlockSpec::from_record`]). Records whose
/// value is unchanged are left alone; a removed one is tested for its value (pod UID and
/// sequence included), so an address re-assigned since the read is never freed, even if the
/// block test were lifted. A block still holding records in the format of rangepool 0.1
/// (`allocations`) is moved to `holders` whole: each old record is tested for its handle and
/// sequence, `allocations` is removed and `holders` written in one operation. So is a block
/// whose `holders` is empty: it may be absent from a block an earlier version wrote, so no
/// operation may address a member of it.
pub fn update(have: &IPAMBlockSpec, want: &IPAMBlockSpec) -> Patch {
    let sequence = || pointer(&["spec", "sequenceNumber"]);
    let mut ops = vec![test(sequence(), json!(have.sequence_number))];
    if want.sequence_number != have.sequence_number {
        ops.push(PatchOperation::Replace(ReplaceOperation {
            path: sequence(),
            value: json!(want.sequence_number),
        }));
    }
    let affinity = || pointer(&["spec", "affinity"]);
    match (&have.affinity, &want.affinity) {
        (Some(_), None) => ops.push(remove(affinity())),
        (old, Some(new)) if old.as_ref() != Some(new) => ops.push(add(affinity(), json!(new))),
        _ => {}
    }
    let quarantine = || pointer(&["spec", "quarantine"]);
    match (&have.quarantine, &want.quarantine) {
        (Some(_), None) => ops.push(remove(quarantine())),
        (old, Some(new)) if old.as_ref() != Some(new) => ops.push(add(quarantine(), json!(new))),
        _ => {}
    }
    if have.released != want.released {
        // Small and only ever delays a reuse: written whole.
        let released = || pointer(&["spec", "released"]);
        if want.released.is_empty() {
            ops.push(remove(released()));
        } else {
            ops.push(add(released(), json!(want.released)));
        }
    }
    let holder = |ordinal: &str| pointer(&["spec", "holders", ordinal]);
    if have.allocations.is_empty() && !have.holders.is_empty() {
        for (ordinal, old) in &have.holders {
            if !want.holders.contains_key(ordinal) {
                ops.push(test(holder(ordinal), json!(old)));
                ops.push(remove(holder(ordinal)));
            }
        }
        for (ordinal, new) in &want.holders {
            if have.holders.get(ordinal) != Some(new) {
                ops.push(add(holder(ordinal), json!(new)));
            }
        }
    } else {
        for (ordinal, old) in &have.allocations {
            let at = |field: &str| pointer(&["spec", "allocations", ordinal, field]);
            ops.push(test(at("handle"), json!(old.handle)));
            ops.push(test(at("sequence"), json!(old.sequence)));
        }
        for (ordinal, old) in &have.holders {
            ops.push(test(holder(ordinal), json!(old)));
        }
        if !have.allocations.is_empty() {
            ops.push(remove(pointer(&["spec", "allocations"])));
        }
        if !want.holders.is_empty() || !have.allocations.is_empty() {
            ops.push(add(pointer(&["spec", "holders"]), json!(want.holders)));
        }
    }
    if ops.len() > 1 {
        ops.push(reset_managed_fields());
    }
    Patch(ops)
}

/// Clears the block's `managedFields` (a list holding one empty entry asks the API server to
/// reset them). Nothing reads who owns a block's fields, and the list grows with every record,
/// making each later write of the block dearer for the API server.
fn reset_managed_fields() -> PatchOperation {
    add(pointer(&["metadata", "managedFields"]), json!([{}]))
}

/// The finalizer operations that keep a block holding allocations from vanishing: a block
/// whose wanted version records an address carries [`crate::keys::FINALIZER`]; an empty one
/// does not, so it can be deleted (or, when its deletion was asked for, goes). `finalizers` and
/// `deleting` are the block's metadata as last read; a block being deleted gets no new
/// finalizer (the API server refuses that).
pub fn finalizer(
    finalizers: &[String],
    deleting: bool,
    want: &IPAMBlockSpec,
) -> Vec<PatchOperation> {
    let at = finalizers.iter().position(|f| f == crate::keys::FINALIZER);
    match (at, want.allocated() == 0) {
        (None, false) if !deleting => {
            if finalizers.is_empty() {
                vec![add(
                    pointer(&["metadata", "finalizers"]),
                    json!([crate::keys::FINALIZER]),
                )]
            } else {
                vec![add(
                    pointer(&["metadata", "finalizers", "-"]),
                    json!(crate::keys::FINALIZER),
                )]
            }
        }
        (Some(i), true) => {
            let path = || pointer(&["metadata", "finalizers", &i.to_string()]);
            vec![test(path(), json!(crate::keys::FINALIZER)), remove(path())]
        }
        _ => Vec::new(),
    }
}

/// The patch that takes [`crate::keys::FINALIZER`] off an empty block about to be deleted, if
/// it carries it, guarded by a test that the block is still at `resource_version`.
pub fn unfinalize(finalizers: &[String], resource_version: &str) -> Option<Patch> {
    let at = finalizers
        .iter()
        .position(|f| f == crate::keys::FINALIZER)?;
    let path = || pointer(&["metadata", "finalizers", &at.to_string()]);
    Some(Patch(vec![
        test(
            pointer(&["metadata", "resourceVersion"]),
            json!(resource_version),
        ),
        test(path(), json!(crate::keys::FINALIZER)),
        remove(path()),
    ]))
}

/// The patch that releases the allocation at `ordinal` of a block last read as `have`, if it
/// is still held by `handle` with allocation `sequence`: the core's release (which bumps the
/// block's sequence number) applied to the read, sent as an [`update`]. The reason, naming the
/// block and address, when the read does not hold that allocation or cannot be read.
pub fn release(
    have: &IPAMBlockSpec,
    ordinal: u32,
    handle: &str,
    sequence: u64,
) -> Result<Patch, String> {
    let mut block = Block::from_record(&have.to_record()?).map_err(|e| e.to_string())?;
    block
        .release(ordinal, handle, sequence)
        .map_err(|e| e.to_string())?;
    Ok(update(
        have,
        &IPAMBlockSpec::from_record(&block.to_record()),
    ))
}

fn pointer(parts: &[&str]) -> PointerBuf {
    PointerBuf::from_tokens(parts.iter().copied())
}

fn test(path: PointerBuf, value: Value) -> PatchOperation {
    PatchOperation::Test(TestOperation { path, value })
}

fn add(path: PointerBuf, value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation { path, value })
}

fn remove(path: PointerBuf) -> PatchOperation {
    PatchOperation::Remove(RemoveOperation { path })
}

#[cfg(test)]
mod tests;
