//! `rangepool-envtest`: the test control plane as a process, for shell scripts (the chart checks)
//! and anyone who wants to try rangepool by hand on a real API server.
//!
//! ```sh
//! rangepool-envtest --kubeconfig-out /tmp/kc [--controller-manager] [--scheduler] [--chart-identities]
//!                   [--address IP] [--all-controllers] [--node NAME]...
//! # prints "ready https://127.0.0.1:PORT" once the server answers, then runs until SIGTERM/SIGINT
//! ```
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

use std::path::PathBuf;

use envtest::{ChartIdentity, ControlPlane, Options};

struct Args {
    kubeconfig_out: PathBuf,
    options: Options,
    chart_identities: bool,
}

const USAGE: &str = "usage: rangepool-envtest --kubeconfig-out PATH [--controller-manager] [--scheduler] [--chart-identities]
                         [--address IP] [--all-controllers] [--node NAME]...
  Starts etcd and kube-apiserver (built by tests/k8s/build.sh) on 127.0.0.1, writes the admin's
  kubeconfig to PATH, prints \"ready URL\" and runs until SIGTERM or SIGINT.
  --chart-identities also applies the Helm chart's RBAC and writes the controller's and the node's
  kubeconfigs next to PATH (PATH.controller, PATH.node).
  --address IP: kube-apiserver binds and advertises IP instead of 127.0.0.1 (for real nodes).
  --all-controllers: kube-controller-manager with every default controller (implies
  --controller-manager).
  --node NAME: a kubelet identity system:node:NAME, written to PATH.node-NAME, and a kube-proxy
  identity, written to PATH.kube-proxy.";

fn parse() -> Result<Args, String> {
    let mut kubeconfig_out = None;
    let mut options = Options::default();
    let mut chart_identities = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--kubeconfig-out" => kubeconfig_out = args.next().map(PathBuf::from),
            "--controller-manager" => options.controller_manager = true,
            "--scheduler" => options.scheduler = true,
            "--chart-identities" => chart_identities = true,
            "--all-controllers" => options.all_controllers = true,
            "--address" => {
                let value = args.next().unwrap_or_default();
                options.address = value
                    .parse()
                    .map_err(|_| format!("--address: {value:?} is not an IP address\n{USAGE}"))?;
            }
            "--node" => options.nodes.extend(args.next().filter(|n| !n.is_empty())),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    let kubeconfig_out =
        kubeconfig_out.ok_or_else(|| format!("--kubeconfig-out is required\n{USAGE}"))?;
    // Real kubelets finish the deletion of their pods; the stand-in would race them.
    if !options.nodes.is_empty() {
        options.kubelet = None;
    }
    Ok(Args {
        kubeconfig_out,
        options,
        chart_identities,
    })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(message) => {
            eprintln!("{message}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rangepool-envtest: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), envtest::Error> {
    let plane = ControlPlane::start_with(args.options.clone()).await?;
    if let Some(parent) = args
        .kubeconfig_out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(plane.kubeconfig_path(), &args.kubeconfig_out)?;
    let sibling = |suffix: &str| {
        let mut path = args.kubeconfig_out.clone().into_os_string();
        path.push(format!(".{suffix}"));
        PathBuf::from(path)
    };
    if args.chart_identities {
        for (who, suffix) in [
            (ChartIdentity::Controller, "controller"),
            (ChartIdentity::Node, "node"),
        ] {
            let credentials = plane.chart_identity(who).await?;
            std::fs::copy(&credentials.kubeconfig, sibling(suffix))?;
        }
    }
    for node in &args.options.nodes {
        std::fs::write(
            sibling(&format!("node-{node}")),
            plane.node_kubeconfig(node),
        )?;
    }
    if !args.options.nodes.is_empty() {
        std::fs::write(sibling("kube-proxy"), plane.kube_proxy_kubeconfig())?;
    }
    println!("ready {}", plane.url());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    drop(plane);
    Ok(())
}
