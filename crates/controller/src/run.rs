//! Wiring: watches, health endpoints, leader election and the leader's engine, until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube::Client;
use kube::runtime::events::Reporter;
use tokio::sync::{mpsc, watch};

use crate::config::Settings;
use crate::engine::Engine;
use crate::http::{self, Health};
use crate::metrics::Metrics;
use crate::world::{self, Change};

/// How this replica identifies itself and where it serves metrics.
#[derive(Debug, Clone)]
pub struct Options {
    /// Identity in the Lease and in Events.
    pub identity: String,
    /// Namespace of the Lease.
    pub lease_namespace: String,
    /// Lease duration in seconds.
    pub lease_duration: u64,
    /// Where to serve /metrics, /healthz, /readyz.
    pub metrics_addr: SocketAddr,
}

/// Runs the controller until `shutdown` completes; then stops leading (releasing the Lease)
/// and returns.
pub async fn run(
    client: Client,
    settings: Settings,
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let (addr, http_task) = http::serve(
        options.metrics_addr,
        Health {
            ready: ready.clone(),
            metrics: metrics.clone(),
        },
    )
    .await?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");

    let (stores, mut changes, watch_tasks) = world::watch_all(&client);
    let (mut leading, lease_task) = crate::leader::elect(
        client.clone(),
        &options.lease_namespace,
        &options.identity,
        options.lease_duration,
    )
    .await?;

    let work = async {
        if !stores.ready().await {
            anyhow::bail!("a watch stopped before listing its objects");
        }
        ready.store(true, Ordering::Relaxed);
        tracing::info!(pod_cidrs = ?settings.pod_cidrs, families = ?settings.families, "caches synced");
        loop {
            follow(&mut changes, &mut leading).await?;
            tracing::info!(identity = %options.identity, "became the leader");
            metrics.leader.set(1);
            let reporter = Reporter {
                controller: "rangepool-controller".into(),
                instance: Some(options.identity.clone()),
            };
            Engine::new(
                client.clone(),
                settings.clone(),
                stores.clone(),
                metrics.clone(),
                reporter,
            )
            .run(&mut changes, &mut leading)
            .await;
            metrics.leader.set(0);
            tracing::warn!(identity = %options.identity, "stopped leading");
        }
    };
    let result = tokio::select! {
        r = work => r,
        _ = shutdown => {
            tracing::info!("shutting down");
            Ok(())
        }
    };
    // Dropping the receiver ends the lease manager, which releases the Lease for a standby.
    drop(leading);
    let _ = lease_task.await;
    for task in watch_tasks {
        task.abort();
    }
    http_task.abort();
    result
}

/// Keeps the change channel drained while another replica leads; returns once this one leads.
async fn follow(
    changes: &mut mpsc::UnboundedReceiver<Change>,
    leading: &mut watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        if *leading.borrow_and_update() {
            return Ok(());
        }
        tokio::select! {
            change = changes.recv() => if change.is_none() {
                anyhow::bail!("the watches stopped");
            },
            r = leading.changed() => if r.is_err() {
                anyhow::bail!("leader election stopped");
            },
        }
    }
}
