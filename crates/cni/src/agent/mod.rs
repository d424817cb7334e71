//! The node agent `rangepool-agent`: a long-lived process on each node that keeps one warm
//! client for the API server and answers the plugin's ADD, CHECK and STATUS over a unix
//! socket, so that the plugin's ADD needs no TLS handshake, no kubeconfig and no async runtime.
//!
//! It runs the plugin's own code ([`crate::work::Work`]) with its long-lived
//! [`crate::cluster::Cluster`], so the errors, messages and codes a pod's events show are those
//! of the direct path. Like the plugin, it writes nothing to the API server.
//!
//! - [`protocol`]: the request and reply lines, shared by both sides;
//! - [`client`]: the plugin's side, blocking, with deadlines;
//! - [`server`]: the socket, its limits, one task per connection;
//! - [`warm`]: the client, rebuilt when the kubeconfig is rewritten;
//! - [`cli`]: the binary's flags.

pub mod cli;
pub mod client;
pub mod protocol;
pub mod server;
pub mod warm;

use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};

use crate::log::Logger;
use crate::text::echo;
use cli::Options;
use server::{AgentError, Listening};
use warm::Warm;

/// Runs the agent until SIGTERM or SIGINT; the socket is removed on the way out. Needs a
/// runtime with I/O and timers.
pub async fn run(options: &Options, log: &Logger) -> Result<(), AgentError> {
    let mut terminate = signal(SignalKind::terminate()).map_err(AgentError::Runtime)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(AgentError::Runtime)?;
    let listening = Listening::bind(&options.socket, log)?;
    log.info(format_args!(
        "listening on {} (kubeconfig {})",
        echo(&options.socket.display().to_string()),
        echo(&options.kubeconfig.display().to_string())
    ));
    let warm = Arc::new(Warm::new(options.kubeconfig.clone()));
    // Read the kubeconfig now, so that the first call finds the client built and a broken
    // file shows in the log at once; a missing one is read when it appears.
    let _ = warm.cluster(log).await;
    let stop = async {
        tokio::select! {
            _ = terminate.recv() => log.info(format_args!("SIGTERM: stopping")),
            _ = interrupt.recv() => log.info(format_args!("SIGINT: stopping")),
        }
    };
    listening.serve(warm, log, stop).await;
    log.info(format_args!("stopped; socket removed"));
    Ok(())
}
