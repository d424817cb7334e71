#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn alloc(handle: &str, sequence: i64) -> BlockAllocation {
    BlockAllocation {
        handle: handle.into(),
        namespace: "ns".into(),
        pod: format!("pod-{handle}"),
        container: None,
        sequence,
    }
}

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
        allocations: allocations
            .iter()
            .map(|(o, a)| (o.to_string(), a.clone()))
            .collect(),
    }
}

fn doc(spec: &IPAMBlockSpec) -> Value {
    serde_json::to_value(IPAMBlock::new("10-0-0-0-26", spec.clone())).unwrap()
}

fn apply(target: &IPAMBlockSpec, patch: &Patch) -> Result<IPAMBlockSpec, json_patch::PatchError> {
    let mut value = doc(target);
    json_patch::patch(&mut value, patch)?;
    Ok(serde_json::from_value::<IPAMBlock>(value).unwrap().spec)
}

#[test]
fn allocate_release_and_affinity_round_trip() {
    let have = spec(4, Some("n1"), &[(0, alloc("a", 1)), (1, alloc("b", 2))]);
    let want = spec(5, None, &[(1, alloc("b", 2)), (2, alloc("c", 5))]);
    assert_eq!(apply(&have, &diff(&have, &want)).unwrap(), want);
}

#[test]
fn a_stale_sequence_number_makes_the_whole_patch_fail() {
    let have = spec(4, Some("n1"), &[]);
    let want = spec(5, Some("n1"), &[(0, alloc("a", 5))]);
    let server = spec(6, Some("n1"), &[(0, alloc("z", 6))]);
    assert!(apply(&server, &diff(&have, &want)).is_err());
}

#[test]
fn a_container_claim_written_meanwhile_survives() {
    let have = spec(4, Some("n1"), &[(0, alloc("a", 1))]);
    let want = spec(5, Some("n1"), &[(0, alloc("a", 1)), (1, alloc("b", 5))]);
    let mut claimed = alloc("a", 1);
    claimed.container = Some("sandbox-1".into());
    let server = spec(4, Some("n1"), &[(0, claimed.clone())]);
    let written = apply(&server, &diff(&have, &want)).unwrap();
    assert_eq!(written.allocations["0"], claimed);
    assert_eq!(written.allocations["1"], alloc("b", 5));
}

#[test]
fn a_reassigned_ordinal_replaces_the_old_record() {
    let have = spec(4, None, &[(3, alloc("old", 1))]);
    let want = spec(5, None, &[(3, alloc("new", 5))]);
    assert_eq!(apply(&have, &diff(&have, &want)).unwrap(), want);
}

#[test]
fn nothing_to_change_is_only_a_test() {
    let have = spec(4, Some("n1"), &[(0, alloc("a", 1))]);
    assert_eq!(diff(&have, &have).0.len(), 1);
}
