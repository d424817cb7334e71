//! The cluster state `show` and `check` look at, read once.
//!
//! Pools and reservations first, then blocks, then pods. The order matters for `check`: an allocation found in
//! the blocks was made for a pod that existed before the pods were listed, so a pod missing
//! from the later list is really gone — never a pod created a moment after the blocks were read.

use api::{IPAMBlock, IPPool, IPReservation};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::{Api, Client};

use crate::cluster::{AccessError, list_all, list_if_installed};

/// What was read, and when.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every IPPool.
    pub pools: Vec<IPPool>,
    /// Every IPReservation; `None` when the cluster does not have the IPReservation CRD (it
    /// came with a later version than the one installed).
    pub reservations: Option<Vec<IPReservation>>,
    /// Every IPAMBlock.
    pub blocks: Vec<IPAMBlock>,
    /// Every pod in every namespace (empty unless asked for).
    pub pods: Vec<Pod>,
    /// Every namespace (with the pods): their labels and annotations decide which pools admit
    /// their pods.
    pub namespaces: Vec<Namespace>,
    /// Every node (with the pods): their labels decide which pools admit their pods.
    pub nodes: Vec<Node>,
    /// When the reading started, by this machine's clock.
    pub at: Timestamp,
}

impl Snapshot {
    /// Reads pools, reservations, blocks and, when `with_pods`, pods, namespaces and nodes.
    pub async fn read(client: &Client, with_pods: bool) -> Result<Snapshot, AccessError> {
        let at = Timestamp::now();
        let pools = list_all(&Api::<IPPool>::all(client.clone()), "ippools.rangepool.dev").await?;
        let reservations = list_if_installed(
            &Api::<IPReservation>::all(client.clone()),
            "ipreservations.rangepool.dev",
        )
        .await?;
        let blocks = read_blocks(client).await?;
        let (pods, namespaces, nodes) = if with_pods {
            (
                list_all(&Api::<Pod>::all(client.clone()), "pods").await?,
                list_all(&Api::<Namespace>::all(client.clone()), "namespaces").await?,
                list_all(&Api::<Node>::all(client.clone()), "nodes").await?,
            )
        } else {
            Default::default()
        };
        Ok(Snapshot {
            pools,
            reservations,
            blocks,
            pods,
            namespaces,
            nodes,
            at,
        })
    }
}

/// Every IPAMBlock.
pub async fn read_blocks(client: &Client) -> Result<Vec<IPAMBlock>, AccessError> {
    list_all(
        &Api::<IPAMBlock>::all(client.clone()),
        "ipamblocks.rangepool.dev",
    )
    .await
}

/// Seconds from `then` to `now` (negative when `then` is later: clock skew).
pub fn seconds_between(then: Timestamp, now: Timestamp) -> i64 {
    now.as_second() - then.as_second()
}
