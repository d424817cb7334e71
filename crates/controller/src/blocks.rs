//! The one seam through which the controller sends IPAM block writes.
//!
//! The writes themselves are built by [`api::write::update`] from the version of the block we
//! last read (`have`) to the version we want, and the answers read by [`api::write::refusal`].
//! A failed write is never retried blindly: the caller re-reads the block and recomputes.
//!
//! A block that records an address carries the [`api::keys::FINALIZER`], so deleting it by hand
//! only marks it: it goes once its last address is released ([`api::write::finalizer`]).

use api::write::Refusal;
use api::{IPAMBlock, IPAMBlockSpec};
use kube::api::{DeleteParams, Patch as KubePatch, PatchParams, PostParams, Preconditions};
use kube::{Api, Client, ResourceExt};

use crate::lean::LeanBlock;

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
        let mut block = IPAMBlock::new(name, spec);
        if block.spec.allocated() > 0 {
            block.metadata.finalizers = Some(vec![api::keys::FINALIZER.to_owned()]);
        }
        let block = LeanBlock(block);
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
        have: &IPAMBlock,
        want: &IPAMBlockSpec,
    ) -> Result<IPAMBlock, WriteError> {
        let mut patch = api::write::update(&have.spec, want);
        patch.0.extend(api::write::finalizer(
            have.finalizers(),
            have.metadata.deletion_timestamp.is_some(),
            want,
        ));
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

    /// Deletes an empty block, only if it is still as last read (`have`). Its finalizer, if it
    /// carries one, is removed first, by a write tested against the same version.
    pub async fn delete(&self, name: &str, have: &IPAMBlock) -> Result<(), WriteError> {
        let mut resource_version = have.resource_version().unwrap_or_default();
        if let Some(patch) = api::write::unfinalize(have.finalizers(), &resource_version) {
            let params = PatchParams {
                field_manager: Some(api::keys::CONTROLLER_MANAGER.into()),
                ..Default::default()
            };
            let written = self
                .api
                .patch(name, &params, &KubePatch::Json::<()>(patch))
                .await
                .map_err(|e| classify(name, e))?;
            if have.metadata.deletion_timestamp.is_some() {
                // Its deletion was asked for already: without the finalizer it is gone.
                return Ok(());
            }
            resource_version = written.0.resource_version().unwrap_or_default();
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: Some(resource_version),
                uid: None,
            }),
            ..Default::default()
        };
        match self.api.delete(name, &params).await {
            Ok(_) => Ok(()),
            Err(e) => match classify(name, e) {
                WriteError::Gone(_) => Ok(()),
                other => Err(other),
            },
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
    let refusal = match &e {
        kube::Error::Api(status) => api::write::refusal(status.code),
        _ => Refusal::Other,
    };
    match refusal {
        Refusal::Conflict => WriteError::Conflict(name.to_owned()),
        Refusal::Gone => WriteError::Gone(name.to_owned()),
        Refusal::Other => api_error(name, e),
    }
}
