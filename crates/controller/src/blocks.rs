//! The one seam through which the controller writes IPAM blocks.
//!
//! Every change is a JSON patch computed from the version of the block we last read (`have`) to
//! the version we want. Its first operation tests `spec.sequenceNumber`: only the controller bumps
//! it, so the patch fails when anyone changed the block's allocations since we read it, and it
//! does not fail when the CNI plugin merely recorded a container claim. A failed patch is never
//! retried blindly: the caller re-reads the block and recomputes.

use std::collections::BTreeMap;

use api::{BlockAllocation, IPAMBlock, IPAMBlockSpec};
use json_patch::{
    AddOperation, Patch, PatchOperation, RemoveOperation, ReplaceOperation, TestOperation,
};
use kube::api::{DeleteParams, Patch as KubePatch, PatchParams, PostParams, Preconditions};
use kube::{Api, Client};

use crate::lean::LeanBlock;
use serde_json::{Value, json};

/// A block write that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The block changed since we read it (or already exists, for a create).
    #[error("block {0} changed since it was read")]
    Conflict(String),
    /// The block no longer exists.
    #[error("block {0} no longer exists")]
    Gone(String),
    /// Any other API failure.
    #[error("writing block {name}: {source}")]
    Api {
        /// The block's name.
        name: String,
        /// What the API server said.
        #[source]
        source: kube::Error,
    },
}

impl WriteError {
    /// Short stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            WriteError::Conflict(_) => "Conflict",
            WriteError::Gone(_) => "Gone",
            WriteError::Api { .. } => "APIError",
        }
    }
}

/// Reads and writes IPAMBlocks.
#[derive(Clone)]
pub struct BlockStore {
    api: Api<LeanBlock>,
}

impl BlockStore {
    /// A store over the cluster's blocks.
    pub fn new(client: Client) -> BlockStore {
        BlockStore {
            api: Api::all(client),
        }
    }

    /// The block as the API server has it now, bypassing every cache.
    pub async fn read(&self, name: &str) -> Result<Option<IPAMBlock>, WriteError> {
        self.api
            .get_opt(name)
            .await
            .map(|block| block.map(LeanBlock::into_inner))
            .map_err(|source| api_error(name, source))
    }

    /// Creates a block that did not exist.
    pub async fn create(&self, name: &str, spec: IPAMBlockSpec) -> Result<IPAMBlock, WriteError> {
        let block = LeanBlock(IPAMBlock::new(name, spec));
        self.api
            .create(
                &PostParams {
                    field_manager: Some(api::keys::CONTROLLER_MANAGER.into()),
                    ..Default::default()
                },
                &block,
            )
            .await
            .map(LeanBlock::into_inner)
            .map_err(|e| classify(name, e))
    }

    /// Changes a block from `have` (as last read) to `want`. Returns the block as written.
    pub async fn update(
        &self,
        name: &str,
        have: &IPAMBlockSpec,
        want: &IPAMBlockSpec,
    ) -> Result<IPAMBlock, WriteError> {
        let patch = diff(have, want);
        let params = PatchParams {
            field_manager: Some(api::keys::CONTROLLER_MANAGER.into()),
            ..Default::default()
        };
        self.api
            .patch(name, &params, &KubePatch::Json::<()>(patch))
            .await
            .map(LeanBlock::into_inner)
            .map_err(|e| classify(name, e))
    }

    /// Deletes an empty block, only if it is still at `resource_version`.
    pub async fn delete(&self, name: &str, resource_version: &str) -> Result<(), WriteError> {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: Some(resource_version.to_owned()),
                uid: None,
            }),
            ..Default::default()
        };
        match self.api.delete(name, &params).await {
            Ok(_) => Ok(()),
            Err(e) => Err(classify(name, e)),
        }
    }
}

fn api_error(name: &str, source: kube::Error) -> WriteError {
    WriteError::Api {
        name: name.to_owned(),
        source,
    }
}

fn classify(name: &str, e: kube::Error) -> WriteError {
    match &e {
        // 422 is what a failed JSON-patch `test` operation gets; 409 a stale resourceVersion or
        // an existing name.
        kube::Error::Api(status) if status.code == 409 || status.code == 422 => {
            WriteError::Conflict(name.to_owned())
        }
        kube::Error::Api(status) if status.code == 404 => WriteError::Gone(name.to_owned()),
        _ => api_error(name, e),
    }
}

/// The JSON patch that turns `have` into `want`, guarded by a test of `have`'s sequence number.
///
/// Records whose owner (handle and sequence) is unchanged are left alone, so a container claim
/// the CNI plugin wrote meanwhile survives.
pub fn diff(have: &IPAMBlockSpec, want: &IPAMBlockSpec) -> Patch {
    let mut ops = vec![PatchOperation::Test(TestOperation {
        path: pointer(&["spec", "sequenceNumber"]),
        value: json!(have.sequence_number),
    })];
    if want.sequence_number != have.sequence_number {
        ops.push(PatchOperation::Replace(ReplaceOperation {
            path: pointer(&["spec", "sequenceNumber"]),
            value: json!(want.sequence_number),
        }));
    }
    match (&have.affinity, &want.affinity) {
        (Some(_), None) => ops.push(PatchOperation::Remove(RemoveOperation {
            path: pointer(&["spec", "affinity"]),
        })),
        (old, Some(new)) if old.as_ref() != Some(new) => {
            ops.push(PatchOperation::Add(AddOperation {
                path: pointer(&["spec", "affinity"]),
                value: json!(new),
            }))
        }
        _ => {}
    }
    diff_allocations(&have.allocations, &want.allocations, &mut ops);
    Patch(ops)
}

fn diff_allocations(
    have: &BTreeMap<String, BlockAllocation>,
    want: &BTreeMap<String, BlockAllocation>,
    ops: &mut Vec<PatchOperation>,
) {
    for (ordinal, old) in have {
        if !want.contains_key(ordinal) {
            // The release names the holder and the allocation's sequence, so an address that was
            // re-assigned since the read is never freed, even if the block test were lifted.
            ops.push(PatchOperation::Test(TestOperation {
                path: pointer(&["spec", "allocations", ordinal, "handle"]),
                value: json!(old.handle),
            }));
            ops.push(PatchOperation::Test(TestOperation {
                path: pointer(&["spec", "allocations", ordinal, "sequence"]),
                value: json!(old.sequence),
            }));
            ops.push(PatchOperation::Remove(RemoveOperation {
                path: pointer(&["spec", "allocations", ordinal]),
            }));
        }
    }
    for (ordinal, new) in want {
        if have.get(ordinal).is_some_and(|old| same_owner(old, new)) {
            continue;
        }
        ops.push(PatchOperation::Add(AddOperation {
            path: pointer(&["spec", "allocations", ordinal]),
            value: serde_json::to_value(new).unwrap_or(Value::Null),
        }));
    }
}

fn same_owner(a: &BlockAllocation, b: &BlockAllocation) -> bool {
    a.handle == b.handle && a.sequence == b.sequence
}

fn pointer(parts: &[&str]) -> json_patch::jsonptr::PointerBuf {
    json_patch::jsonptr::PointerBuf::from_tokens(parts.iter().copied())
}

#[cfg(test)]
mod tests;
