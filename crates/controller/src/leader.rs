//! Leader election over a coordination.k8s.io Lease, with `kube-lease-manager`.
//!
//! Every replica keeps its caches warm; only the one holding the Lease allocates, releases and
//! writes status. Leadership is published on a watch channel that the writer tasks follow.

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseParams};
use tokio::sync::watch;

/// The Lease's name; one per cluster.
pub const LEASE_NAME: &str = "rangepool-controller";

/// Starts competing for the Lease. The receiver reads `true` while this replica leads. The
/// returned task ends (and the Lease is released) when every receiver is dropped.
pub async fn elect(
    client: Client,
    namespace: &str,
    identity: &str,
    duration_seconds: u64,
) -> Result<
    (watch::Receiver<bool>, tokio::task::JoinHandle<()>),
    kube_lease_manager::LeaseManagerError,
> {
    // The grace is how long before expiry the holder renews; a third of the duration leaves two
    // renewal attempts before a standby may take over.
    let duration_seconds = duration_seconds.max(3);
    let grace = (duration_seconds / 3).max(1);
    let manager = LeaseManagerBuilder::new(client, LEASE_NAME)
        .with_namespace(namespace)
        // The library's default field manager includes the identity: it must differ per replica
        // for server-side apply to detect two replicas taking the Lease at once.
        .with_parameters(LeaseParams::new(identity, duration_seconds, grace))
        .build()
        .await?;
    let (channel, task) = manager.watch().await;
    let task = tokio::spawn(async move {
        match task.await {
            Ok(Ok(manager)) => {
                if let Err(e) = manager.release().await {
                    tracing::warn!(error = %e, "could not release the leader Lease");
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "leader election stopped"),
            Err(e) => tracing::error!(error = %e, "leader election task failed"),
        }
    });
    Ok((channel, task))
}
