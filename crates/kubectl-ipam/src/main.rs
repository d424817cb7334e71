//! `kubectl ipam`: the admin's view of rangepool.
//!
//! `plan` runs the real allocation core over manifests on disk, with no cluster. It must not hold
//! rules of its own: every decision comes from the `ipam` crate, as in the controller.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod manifests;
mod plan;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Manage rangepool IP pools and addresses.
#[derive(Parser, Debug)]
#[command(name = "kubectl-ipam", bin_name = "kubectl ipam", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show, offline, which address every pod in a directory of manifests would get.
    ///
    /// Reads IPPools (rangepool.dev/v1 or Calico's projectcalico.org/v3), Namespaces, Nodes,
    /// Pods bound to nodes, and optionally the kube-system/kubeadm-config ConfigMap, and runs the
    /// controller's own pool validation, pool choice and allocation over them. Pods are planned
    /// in file order (files sorted by path), so the plan is deterministic; pools without a
    /// creationTimestamp count as created in name order.
    ///
    /// Exit status: 0 when every pod gets an address and every pool is allocatable (disabled
    /// pools count as fine), 1 when a pod gets no address or a pool is not allocatable, 2 when
    /// the input cannot be read.
    #[command(after_long_help = PLAN_JSON_HELP)]
    Plan {
        /// File or directory of YAML/JSON manifests (searched recursively).
        #[arg(short = 'f', long = "filename", value_name = "DIR")]
        dir: PathBuf,
        /// The cluster's pod CIDR (repeatable); defaults to the kubeadm-config ConfigMap's
        /// podSubnet found among the manifests.
        #[arg(long = "pod-cidr", value_name = "CIDR")]
        pod_cidrs: Vec<String>,
        /// Address families to plan (`ipv4`, `ipv6`, comma separated); defaults to the pod
        /// CIDRs' families, else IPv4.
        #[arg(long, value_name = "FAMILIES", value_delimiter = ',')]
        families: Vec<String>,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

/// The `-o json` shape, shown by `kubectl ipam plan --help`; keep in step with `plan/json.rs`.
const PLAN_JSON_HELP: &str = "\
-o json prints one object (fields are only ever added, never renamed):
  podCIDRs       the pod CIDRs used ([] when unknown)
  podCIDRSource  \"flags\", \"kubeadm-config\" or \"unknown\"
  families       \"ipv4\" and/or \"ipv6\"
  clean          true exactly when the exit status is 0
  pods           one entry per pod and family, in file order: namespace, name, node, family,
                 pool and address (null when refused), reason and message (null when served)
  pools          one entry per pool, in file order: name, file, cidr, blockSize, assignmentMode,
                 allocatable, reason, message, note, capacity, planned, blocks
  skipped        objects not planned: file, kind, name, reason
  notes          assumptions the plan made";

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Output {
    Table,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Plan {
            dir,
            pod_cidrs,
            families,
            output,
        } => plan::run(&plan::Args {
            dir,
            pod_cidrs,
            families,
            json: matches!(output, Output::Json),
        }),
    }
}
