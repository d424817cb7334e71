//! The plugin's check of an assignment, by reading only: an address on a pod is used only when
//! the IPAMBlock its annotation names records that address for the pod's UID.
//!
//! The plugin writes nothing to the API server. ADD and CHECK read the pod and then each block
//! the pod's `rangepool.dev/blocks` annotation names (one GET per address); DEL and GC send no
//! request at all. Anyone who may create pods can write the annotations, but only the
//! controller writes blocks, and the node's credentials cannot: the chart's node ClusterRole
//! grants no write on IPAMBlocks. A block that does not record the address for the pod
//! therefore means a forged or stale annotation, and the address is refused.
//!
//! The rule itself (the block's range from its name, the address's ordinal, the allocation's
//! handle) is [`Slot`] in `api::block`; this module only reads the block, logs the request and
//! turns the verdict into the plugin's errors.

use api::block::Slot;
use api::{FamilyAssignment, IPAMBlock};
use ipnet::IpNet;
use kube::api::Api;

use crate::cluster::{Cluster, Freshness};
use crate::error::CniError;
use crate::log::Logger;
use crate::request::PodRef;
use crate::text::echo;

/// The pod whose address is checked.
pub struct Subject<'a> {
    /// The pod.
    pub pod: &'a PodRef,
    /// The pod's UID as the API server reports it.
    pub uid: &'a str,
    /// Where requests are logged (at debug level).
    pub log: &'a Logger,
    /// How fresh the block must be read.
    pub fresh: Freshness,
}

/// Which command checks, and so which error a missing record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose<'a> {
    /// ADD: [`CniError::NotRecorded`], the address is refused.
    Add,
    /// CHECK: [`CniError::AddressLost`] for the container being checked.
    Check {
        /// `CNI_CONTAINERID`
        container: &'a str,
    },
}

impl Purpose<'_> {
    /// The error for `assigned` when its block does not record it for the pod.
    pub fn refusal(
        &self,
        who: &Subject<'_>,
        assigned: &FamilyAssignment,
        reason: String,
    ) -> CniError {
        // The reason can quote the block's own fields.
        let reason = echo(&reason).to_string();
        match self {
            Purpose::Add => CniError::NotRecorded {
                pod: who.pod.to_string(),
                pool: assigned.pool.clone(),
                address: assigned.address,
                block: assigned.block.clone(),
                reason,
            },
            Purpose::Check { container } => CniError::AddressLost {
                pod: who.pod.to_string(),
                container: (*container).to_owned(),
                reason: format!(
                    "address {} (pool {}, IPAMBlock {}): {reason}",
                    assigned.address, assigned.pool, assigned.block
                ),
            },
        }
    }
}

/// Reads the block `assigned` names and checks that it records the address for the pod; the
/// block's range when it does. A block that is missing or records something else is
/// `purpose`'s error, naming the reason; a failed read is the usual
/// [`ApiFailure`](crate::cluster::ApiFailure) mapping.
pub async fn verify(
    cluster: &Cluster,
    who: &Subject<'_>,
    assigned: &FamilyAssignment,
    purpose: Purpose<'_>,
) -> Result<IpNet, CniError> {
    let refuse = |reason: String| purpose.refusal(who, assigned, reason);
    let slot = Slot::locate(assigned).map_err(refuse)?;
    who.log.debug(format_args!(
        "request: GET ipamblocks/{}{}",
        assigned.block,
        who.fresh.marker()
    ));
    let read = Api::<IPAMBlock>::all(cluster.client.clone())
        .get_with(&assigned.block, &who.fresh.params())
        .await;
    let block = match read {
        Ok(block) => block,
        Err(kube::Error::Api(status)) if status.code == 404 => {
            return Err(refuse("the IPAMBlock does not exist".into()));
        }
        Err(e) => {
            return Err(cluster.failure(&e).into_error(
                &who.pod.to_string(),
                &format!("read IPAMBlock {}", assigned.block),
            ));
        }
    };
    slot.diagnose(&block.spec, who.uid).map_err(refuse)?;
    Ok(slot.block)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::log::Level;

    fn assigned() -> FamilyAssignment {
        FamilyAssignment {
            address: "10.0.0.5".parse().unwrap(),
            pool: "gold".into(),
            block: "10-0-0-0-26".into(),
        }
    }

    #[test]
    fn add_refuses_the_address_and_check_reports_it_lost() {
        let pod = PodRef {
            namespace: "ns".into(),
            name: "web".into(),
            uid: None,
        };
        let log = Logger::stderr(Level::Error);
        let who = Subject {
            pod: &pod,
            uid: "u1",
            log: &log,
            fresh: Freshness::Cached,
        };
        let add = Purpose::Add.refusal(&who, &assigned(), "gone".into());
        assert_eq!(add.code(), 101);
        assert_eq!(
            add.to_string(),
            "pod ns/web: address 10.0.0.5 (pool gold) is not recorded for this pod in IPAMBlock 10-0-0-0-26: gone; refusing to use it"
        );
        let check = Purpose::Check { container: "c1" }.refusal(&who, &assigned(), "gone".into());
        assert_eq!(check.code(), 105);
        assert_eq!(
            check.to_string(),
            "pod ns/web: container c1 no longer holds its address: address 10.0.0.5 (pool gold, IPAMBlock 10-0-0-0-26): gone"
        );
    }
}
