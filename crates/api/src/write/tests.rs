#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use serde_json::Value;

use super::*;
use crate::{BlockAllocation, IPAMBlock};

/// A record of `handle` (pod `ns/pod-<handle>`) allocated at block sequence `sequence`.
fn alloc(handle: &str, sequence: i64) -> BlockAllocation {
    BlockAllocation {
        handle: handle.into(),
        namespace: "ns".into(),
        pod: format!("pod-{handle}"),
        container: None,
        sequence,
    }
}

/// A block as the controller writes it: every record in `holders`.
fn spec(
    sequence: i64,
    affinity: Option<&str>,
    allocations: &[(u32, BlockAllocation)],
) -> IPAMBlockSpec {
    IPAMBlockSpec {
        cidr: "10.0.0.0/26".into(),
        pool: "p".into(),
        affinity: affinity.map(str::to_owned),
        sequence_number: sequence,
        holders: allocations
            .iter()
            .map(|(o, a)| (o.to_string(), holder(a)))
            .collect(),
        allocations: BTreeMap::new(),
        released: BTreeMap::new(),
        quarantine: None,
    }
}

/// The same block as rangepool 0.1 wrote it: every record in `allocations`.
fn legacy(
    sequence: i64,
    affinity: Option<&str>,
    allocations: &[(u32, BlockAllocation)],
) -> IPAMBlockSpec {
    let mut block = spec(sequence, affinity, &[]);
    block.allocations = allocations
        .iter()
        .map(|(o, a)| (o.to_string(), a.clone()))
        .collect();
    block
}

fn holder(a: &BlockAllocation) -> String {
    format!("{}/{} {} {}", a.namespace, a.pod, a.handle, a.sequence)
}

fn doc(spec: &IPAMBlockSpec) -> Value {
    serde_json::to_value(IPAMBlock::new("10-0-0-0-26", spec.clone())).unwrap()
}

fn apply(target: &IPAMBlockSpec, patch: &Patch) -> Result<IPAMBlockSpec, json_patch::PatchError> {
    apply_doc(doc(target), patch)
}

fn apply_doc(mut value: Value, patch: &Patch) -> Result<IPAMBlockSpec, json_patch::PatchError> {
    json_patch::patch(&mut value, patch)?;
    Ok(serde_json::from_value::<IPAMBlock>(value).unwrap().spec)
}

#[test]
fn allocate_release_and_affinity_round_trip() {
    let have = spec(4, Some("n1"), &[(0, alloc("a", 1)), (1, alloc("b", 2))]);
    let want = spec(5, None, &[(1, alloc("b", 2)), (2, alloc("c", 5))]);
    assert_eq!(apply(&have, &update(&have, &want)).unwrap(), want);
}

#[test]
fn a_stale_sequence_number_makes_the_whole_patch_fail() {
    let have = spec(4, Some("n1"), &[]);
    let want = spec(5, Some("n1"), &[(0, alloc("a", 5))]);
    let server = spec(6, Some("n1"), &[(0, alloc("z", 6))]);
    assert!(apply(&server, &update(&have, &want)).is_err());
}

#[test]
fn the_records_of_an_earlier_version_move_to_holders_on_the_first_write() {
    let have = legacy(4, Some("n1"), &[(0, alloc("a", 1)), (1, alloc("b", 2))]);
    let mut claimed = have.clone();
    if let Some(a) = claimed.allocations.get_mut("0") {
        a.container = Some("sandbox-1".into());
    }
    let want = spec(5, Some("n1"), &[(0, alloc("a", 1)), (2, alloc("c", 5))]);
    assert_eq!(
        IPAMBlockSpec::from_record(&claimed.to_record().unwrap()).holders,
        spec(4, Some("n1"), &[(0, alloc("a", 1)), (1, alloc("b", 2))]).holders,
        "the earlier format reads as the same records, the container aside"
    );
    let written = apply(&claimed, &update(&have, &want)).unwrap();
    assert_eq!(written, want);
    assert!(doc(&written)["spec"].get("allocations").is_none());
    // A block an earlier version wrote may have no `holders` at all.
    let mut bare = doc(&claimed);
    bare["spec"].as_object_mut().unwrap().remove("holders");
    assert_eq!(apply_doc(bare, &update(&have, &want)).unwrap(), want);
    // The old records are tested before they go: a block changed meanwhile is left alone.
    let unguarded = Patch(update(&have, &want).0[1..].to_vec());
    let reassigned = legacy(4, Some("n1"), &[(0, alloc("z", 3)), (1, alloc("b", 2))]);
    assert!(apply(&reassigned, &unguarded).is_err());
}

#[test]
fn an_empty_block_of_an_earlier_version_gets_its_first_record() {
    let have = legacy(4, Some("n1"), &[]);
    let want = spec(5, Some("n1"), &[(3, alloc("a", 5))]);
    let mut bare = doc(&have);
    bare["spec"].as_object_mut().unwrap().remove("holders");
    assert_eq!(apply_doc(bare, &update(&have, &want)).unwrap(), want);
}

#[test]
fn a_reassigned_ordinal_replaces_the_old_record() {
    let have = spec(4, None, &[(3, alloc("old", 1))]);
    let want = spec(5, None, &[(3, alloc("new", 5))]);
    assert_eq!(apply(&have, &update(&have, &want)).unwrap(), want);
}

#[test]
fn nothing_to_change_is_only_a_test() {
    let have = spec(4, Some("n1"), &[(0, alloc("a", 1))]);
    assert_eq!(update(&have, &have).0.len(), 1);
}

#[test]
fn the_patch_paths_are_the_crds_json_field_names() {
    // The patch paths must match the CRD's JSON field names, not the Rust ones.
    let have = spec(4, Some("n1"), &[(0, alloc("a", 1))]);
    let want = spec(5, None, &[(1, alloc("b", 5))]);
    let paths: Vec<String> = update(&have, &want)
        .0
        .iter()
        .map(|op| {
            serde_json::to_value(op).unwrap()["path"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        paths,
        [
            "/spec/sequenceNumber",
            "/spec/sequenceNumber",
            "/spec/affinity",
            "/spec/holders/0",
            "/spec/holders/0",
            "/spec/holders/1",
            "/metadata/managedFields",
        ]
    );
    let doc = doc(&want);
    assert_eq!(doc["spec"]["sequenceNumber"], 5);
    assert_eq!(doc["spec"]["holders"]["1"], "ns/pod-b b 5");
}

// `kubectl ipam release`'s guarded release.

/// Applies `patch` to `now` as the API server would: all operations or none.
fn apply_to(now: &IPAMBlockSpec, patch: &Patch) -> Result<IPAMBlockSpec, Box<IPAMBlockSpec>> {
    apply(now, patch).map_err(|_| Box::new(now.clone()))
}

#[test]
fn a_release_removes_only_the_allocation_it_names_and_bumps_the_sequence() {
    let block = spec(7, Some("n1"), &[(5, alloc("u-a", 3)), (6, alloc("u-b", 7))]);
    let done = apply_to(&block, &release(&block, 5, "u-a", 3).unwrap()).unwrap();
    assert_eq!(done.sequence_number, 8);
    assert_eq!(done.holders.keys().collect::<Vec<_>>(), ["6"]);
    assert_eq!(done.affinity.as_deref(), Some("n1"));
}

#[test]
fn a_release_fails_when_the_block_or_the_allocation_changed_since_it_was_read() {
    let read = spec(7, None, &[(5, alloc("u-a", 3))]);
    let patch = release(&read, 5, "u-a", 3).unwrap();
    // The controller wrote the block meanwhile (sequence number bumped): nothing changes.
    let bumped = spec(8, None, &[(5, alloc("u-a", 3)), (6, alloc("u-b", 8))]);
    assert_eq!(*apply_to(&bumped, &patch).unwrap_err(), bumped);
    // Even without the block test, an address given to another pod, or the same pod's later
    // allocation, is never freed.
    let unguarded = Patch(patch.0[1..].to_vec());
    let reassigned = spec(7, None, &[(5, alloc("u-c", 7))]);
    assert!(apply_to(&reassigned, &unguarded).is_err());
    let later = spec(7, None, &[(5, alloc("u-a", 9))]);
    assert!(apply_to(&later, &unguarded).is_err());
    // A read that does not hold the allocation builds no patch, and says why.
    for (read, why) in [
        (spec(7, None, &[(5, alloc("u-c", 7))]), "u-c"),
        (spec(9, None, &[(5, alloc("u-a", 9))]), "sequence"),
        (spec(8, None, &[]), "not allocated"),
    ] {
        let err = release(&read, 5, "u-a", 3).unwrap_err();
        assert!(err.contains(why), "{why}: {err}");
    }
}

#[test]
fn refusals_are_read_from_the_status_code() {
    assert_eq!(refusal(422), Refusal::Conflict);
    assert_eq!(refusal(409), Refusal::Conflict);
    assert_eq!(refusal(404), Refusal::Gone);
    for code in [400, 401, 403, 429, 500, 503, 504] {
        assert_eq!(refusal(code), Refusal::Other, "{code}");
    }
}

#[test]
fn a_retry_pauses_twice_as_long_each_time_and_stops_after_its_attempts() {
    let retry = Retry {
        attempts: 4,
        first_pause: std::time::Duration::from_millis(100),
    };
    let pauses: Vec<u128> = (1..=5)
        .map_while(|a| retry.pause_after(a))
        .map(|p| p.as_millis())
        .collect();
    assert_eq!(pauses, [100, 200, 400]);
    let once = Retry {
        attempts: 1,
        first_pause: std::time::Duration::from_secs(1),
    };
    assert_eq!(once.pause_after(1), None);
}

#[test]
fn a_quarantine_is_written_and_lifted_like_any_field() {
    let have = spec(4, Some("n1"), &[(0, alloc("a", 1))]);
    let mut want = have.clone();
    want.quarantine = Some("lost".into());
    assert_eq!(apply(&have, &update(&have, &want)).unwrap(), want);
    assert_eq!(apply(&want, &update(&want, &have)).unwrap(), have);
}

/// The metadata finalizers after applying the finalizer operations to a block that has
/// `finalizers`.
fn finalized(finalizers: &[&str], deleting: bool, want: &IPAMBlockSpec) -> Vec<String> {
    let owned: Vec<String> = finalizers.iter().map(|f| (*f).to_owned()).collect();
    let mut block = IPAMBlock::new("10-0-0-0-26", want.clone());
    if !owned.is_empty() {
        block.metadata.finalizers = Some(owned.clone());
    }
    let mut value = serde_json::to_value(block).unwrap();
    json_patch::patch(&mut value, &finalizer(&owned, deleting, want)).unwrap();
    serde_json::from_value::<IPAMBlock>(value)
        .unwrap()
        .metadata
        .finalizers
        .unwrap_or_default()
}

#[test]
fn a_block_carries_the_finalizer_exactly_while_it_records_an_address() {
    let used = spec(5, Some("n1"), &[(0, alloc("a", 5))]);
    let empty = spec(6, Some("n1"), &[]);
    let ours = crate::keys::FINALIZER;
    assert_eq!(finalized(&[], false, &used), [ours]);
    assert_eq!(finalized(&["other"], false, &used), ["other", ours]);
    assert_eq!(finalized(&[ours], false, &used), [ours]);
    assert_eq!(finalized(&["other", ours], false, &empty), ["other"]);
    assert!(finalized(&[], false, &empty).is_empty());
    // Being deleted: never added (the API server refuses it), still removed once empty.
    assert!(finalized(&[], true, &used).is_empty());
    assert!(finalized(&[ours], true, &empty).is_empty());
}

#[test]
fn the_finalizer_comes_off_an_empty_block_only_at_the_version_read() {
    let ours = crate::keys::FINALIZER;
    assert!(unfinalize(&[], "7").is_none());
    let patch = unfinalize(&["other".into(), ours.into()], "7").unwrap();
    let mut block = IPAMBlock::new("10-0-0-0-26", spec(1, None, &[]));
    block.metadata.finalizers = Some(vec!["other".into(), ours.into()]);
    block.metadata.resource_version = Some("7".into());
    let mut value = serde_json::to_value(&block).unwrap();
    json_patch::patch(&mut value, &patch).unwrap();
    assert_eq!(
        value["metadata"]["finalizers"],
        serde_json::json!(["other"])
    );
    block.metadata.resource_version = Some("8".into());
    let mut stale = serde_json::to_value(&block).unwrap();
    assert!(json_patch::patch(&mut stale, &patch).is_err());
}
