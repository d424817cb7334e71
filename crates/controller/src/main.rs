//! `rangepool-controller`: see the crate documentation of `rangepool_controller`.

use anyhow::Context;
use clap::Parser;
use kube::Client;
use rangepool_controller::config::{Flags, Settings};
use rangepool_controller::run::{Options, run};

/// mimalloc rather than the system allocator: after assigning 150,000 pods itself, the
/// controller's heap peaks at about 265 MiB, but with glibc's malloc its RSS stayed at 386 MiB
/// (memory freed between long-lived pod and block records was not given back); with mimalloc it
/// is 275 MiB (`BENCH_MEMORY_MODE=assign BENCH_ONLY=memory make bench-controller`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    init_logging(&flags.log_format);

    let config = match &flags.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("no in-cluster configuration and no --kubeconfig")?,
    };
    let client = Client::try_from(config)?;
    let settings = Settings::discover(&flags, &client).await?;
    let identity = flags.identity.clone().unwrap_or_else(hostname);
    let options = Options {
        identity,
        lease_namespace: flags
            .lease_namespace
            .clone()
            .unwrap_or_else(|| "kube-system".into()),
        lease_duration: flags.lease_duration,
        metrics_addr: flags.metrics_addr,
    };
    run(client, settings, options, shutdown_signal()).await
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("rangepool-controller-{}", std::process::id()))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
