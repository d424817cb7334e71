//! `rangepool-testserver`: run the test API server as a process until SIGTERM/SIGINT.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rangepool_testserver::{Config, TestServer};

/// A Kubernetes API server stand-in for rangepool's tests (plain HTTP on 127.0.0.1).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TCP port on 127.0.0.1; 0 picks a free one
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// write a kubeconfig for the server here
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// keep state in this directory across restarts
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// changes retained for watches; older resourceVersions get 410 Gone
    #[arg(long, default_value_t = 10_000)]
    history_limit: usize,
    /// seconds between watch BOOKMARK events
    #[arg(long, default_value_t = 60)]
    bookmark_interval_secs: u64,
    /// how long a gracefully deleted pod stays terminating before the kubelet stand-in
    /// finishes its deletion
    #[arg(long, default_value_t = 0)]
    kubelet_delay_ms: u64,
    /// no kubelet stand-in: deleted pods bound to a node stay terminating until deleted
    /// with --grace-period=0
    #[arg(long)]
    no_kubelet: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = Config {
        port: args.port,
        history_limit: args.history_limit,
        bookmark_interval: Duration::from_secs(args.bookmark_interval_secs.max(1)),
        data_dir: args.data_dir,
        kubelet_delay: (!args.no_kubelet).then(|| Duration::from_millis(args.kubelet_delay_ms)),
    };
    let mut server = match &args.kubeconfig_out {
        Some(path) => TestServer::start_at(config, path).await,
        None => TestServer::start_with(config).await,
    }
    .context("starting the test server")?;
    println!("listening on {}", server.url());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    server.shutdown();
    Ok(())
}
