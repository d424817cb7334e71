//! `kubectl ipam`: the admin's view of rangepool.
//!
//! `plan` and `import-calico` work on files with no cluster (and so take no `--kubeconfig`);
//! `show`, `check` and `release` talk to the cluster through a kubeconfig found as kubectl
//! finds it. None of them holds rules of its own; they read files and the cluster, feed the
//! core and print. From the `ipam` crate: which pods need an address (`pod::PodState`), pool
//! validation, pool choice and allocation behind one `planner::Planner` (addresses pods ask
//! for included), the address families (`Family::select`), the overlap sweep, the condition
//! reasons, the list of pool fields with their effect (`pool::SpecField`), which addresses are
//! reserved and how many (`Allocator::is_reserved`, `Usage::reserved`, behind
//! [`reserved`]), the Calico keys rangepool does not honour (`fixed`), and parked sticky
//! records and the owner that makes a pod sticky (`sticky`). From `api`: resource types,
//! annotation keys, how an IPReservation's entries are read, and, for the one write
//! (`release`), the guarded patch, the meaning of the server's refusals and the bounded retry
//! schedule (`api::write`), the same the controller's writes use. Must not depend on the
//! controller or the CNI plugin.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod check;
mod cluster;
mod import;
mod manifests;
mod plan;
mod records;
mod release;
mod reserved;
mod show;
mod snapshot;
mod text;

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};

use cluster::Access;

/// Manage rangepool IP pools and addresses.
#[derive(Parser, Debug)]
#[command(name = "kubectl-ipam", bin_name = "kubectl ipam", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the cluster is: only the commands that talk to one take these.
#[derive(ClapArgs, Debug, Clone)]
struct ClusterArgs {
    /// Path to the kubeconfig file (default: KUBECONFIG, else ~/.kube/config, else the
    /// in-cluster service account).
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
}

impl ClusterArgs {
    fn access(self) -> Access {
        Access {
            kubeconfig: self.kubeconfig,
            context: self.context,
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show, offline, which address every pod in a directory of manifests would get.
    ///
    /// Reads IPPools and IPReservations (rangepool.dev/v1 or Calico's projectcalico.org/v3),
    /// Namespaces, Nodes, Pods bound to nodes, and optionally the kube-system/kubeadm-config
    /// ConfigMap, and runs the controller's own pool validation, pool choice and allocation over
    /// them, reserved addresses and addresses pods ask for (cni.projectcalico.org/ipAddrs)
    /// included. Pod annotations rangepool does not honour (ipAddrsNoIpam, floatingIPs) are
    /// warned about on stderr. Pods are planned
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
        #[arg(short = 'o', long = "output", value_enum, default_value_t = text::Format::Table)]
        output: text::Format,
    },
    /// Show the cluster's pools and how many of their addresses are used, or who has one
    /// address.
    ///
    /// One row per pool: range, block size, assignment mode, whether it gives addresses (the
    /// controller's Allocatable condition and its reason), capacity, used, reserved and free
    /// addresses, and blocks; then the IPReservations. Used addresses are counted from the
    /// IPAMBlocks themselves, so the numbers are right even when the controller is down. With
    /// --nodes, one row per block: its node, pool and usage. With --ip ADDR, only that address:
    /// who holds it, or why no pod does.
    ///
    /// Exit status: 0, or 2 when the cluster cannot be read.
    #[command(after_long_help = SHOW_JSON_HELP)]
    Show {
        /// Also list every block with its node and usage.
        #[arg(long, conflicts_with = "ip")]
        nodes: bool,
        /// Who has this address: the pod holding it (namespace, name, node, pool, block, since
        /// when), or that it is free, reserved, cooling down after a release, kept for a
        /// StatefulSet's pod, or in no pool.
        #[arg(long, value_name = "ADDR")]
        ip: Option<IpAddr>,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = text::Format::Table)]
        output: text::Format,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Check the cluster's addresses for leaks, forgeries, duplicates and stuck pods.
    ///
    /// Reports allocations whose pod no longer exists, finished pods still holding addresses,
    /// pod annotations naming addresses no block records for the pod, addresses recorded
    /// twice, pods holding two addresses of a family, blocks outside any pool or not matching
    /// their pool, overlapping blocks, bound pods without an address (with the controller's
    /// reason), pods holding an address that is now reserved, and pools that give no
    /// addresses. Addresses parked for a StatefulSet's next pod are notes, never leaks.
    ///
    /// Exit status: 0 when there is no problem, 1 when there is one, 2 when the cluster cannot
    /// be read.
    #[command(after_long_help = CHECK_JSON_HELP)]
    Check {
        /// Output format; `-o json` is the report `release --from-report` reads.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
        output: Output,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Release leaked addresses: allocations whose pod is gone.
    ///
    /// Each allocation's pod is looked up live by the namespace and name its allocation
    /// records; the address is released only if that pod no longer exists or has another UID
    /// (it was re-created), as the controller's leak sweep decides. The write tests the block's
    /// sequence number and the allocation's handle, so it fails safely if the controller
    /// changed the block meanwhile; it is then retried a few times on a fresh read.
    ///
    /// Exit status: 0 when every address asked for is free now, 1 when one was refused or not
    /// released, 2 when the cluster or the report cannot be read.
    Release(ReleaseArgs),
    /// Convert Calico IPPool and IPReservation manifests to rangepool.dev/v1 (YAML on stdout).
    ///
    /// Reads projectcalico.org/v3 and crd.projectcalico.org/v1 IPPools and IPReservations (also
    /// inside Lists). Lists on stderr the fields kept without effect here (natOutgoing,
    /// ipipMode, vxlanMode, disableBGPExport, allowedUses Tunnel/LoadBalancer) and the fields
    /// dropped (awsSubnetID, Calico v1 fields, server-set metadata), validates each pool and
    /// reservation as the controller reads them, and warns about pods and pod templates in the
    /// file carrying ipAddrsNoIpam or floatingIPs, which rangepool does not honour.
    ///
    /// Exit status: 0 converted, 1 a pool or reservation is refused (then nothing is printed on
    /// stdout), 2 the file cannot be read or holds no Calico IPPool or IPReservation.
    ImportCalico {
        /// The manifest file (`-` for stdin).
        #[arg(short = 'f', long = "filename", value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(ClapArgs, Debug)]
#[group(skip)]
#[command(group(clap::ArgGroup::new("which").required(true).multiple(false)))]
struct ReleaseArgs {
    /// Release this address (every allocation of it, each checked on its own).
    #[arg(long, value_name = "ADDR", group = "which")]
    ip: Option<IpAddr>,
    /// Release the LeakedAllocation entries of a `kubectl ipam check -o json` report (`-` for
    /// stdin). Each is checked again before it is released.
    #[arg(long, value_name = "FILE", group = "which")]
    from_report: Option<PathBuf>,
    /// Release even when the pod still exists (it keeps using the address until re-created).
    #[arg(long)]
    force: bool,
    /// Check everything and send the write in dry-run mode; change nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// The `-o json` shape of `plan`, shown by `kubectl ipam plan --help`; keep in step with
/// `plan/json.rs`.
const PLAN_JSON_HELP: &str = "\
-o json / -o yaml print one object (fields are only ever added, never renamed):
  podCIDRs       the pod CIDRs used ([] when unknown)
  podCIDRSource  \"flags\", \"kubeadm-config\" or \"unknown\"
  families       \"ipv4\" and/or \"ipv6\"
  clean          true exactly when the exit status is 0
  pods           one entry per pod and family, in file order: namespace, name, node, family,
                 pool and address (null when refused), reason and message (null when served)
  pools          one entry per pool, in file order: name, file, cidr, blockSize, assignmentMode,
                 allocatable, reason, message, note, capacity, planned, reserved, blocks
  reservations   one entry per IPReservation, in file order: name, file, ranges, invalid
  skipped        objects not planned: file, kind, name, reason
  notes          assumptions the plan made
  warnings       pod annotations rangepool does not honour (ipAddrsNoIpam, floatingIPs); also
                 on stderr";

/// The `-o json|yaml` shape of `show`; keep in step with `show.rs`.
const SHOW_JSON_HELP: &str = "\
-o json / -o yaml print one object (fields are only ever added, never renamed):
  pools         one entry per pool, by name: name, cidr, blockSize, assignmentMode, disabled,
                allocatable (true/false, null before the controller wrote a status), reason,
                message, capacity, used (counted from the blocks), reserved, free, blocks,
                statusUsed (status.allocated)
  blocks        with --nodes only, by node (blocks without a node last): node (null when none),
                block, cidr, pool, used, size
  reservations  one entry per IPReservation, by name: name, ranges, invalid, pools (pool and
                reserved: how many of its addresses the reservation covers)
  notes         blocks of pools that do not exist, status counts that disagree with the blocks
With --ip ADDR, one object: address, state (Held, Parked, InUseUnrecorded, Reserved,
CoolingDown, Free, NotInPool), pool, block, blockCidr, blockNode, holders (namespace, pod, uid,
sequence, podState, node, since), parked (namespace, pod, statefulSetUid, statefulSet), usedBy,
reservedBy, released, quarantine, message";

/// The `-o json` shape of `check`; keep in step with `check/finding.rs`.
const CHECK_JSON_HELP: &str = "\
-o json prints one report (fields are only ever added, never renamed):
  reportVersion  1
  generatedAt    when the cluster was read (RFC 3339)
  server         the API server
  clean          true exactly when the exit status is 0
  checked        pools, blocks, allocations, pods: how much was looked at
  problems       findings that make the exit status 1, each with kind and message:
                 LeakedAllocation, FinishedPodHoldsAddress, UnrecordedAddress, DuplicateAddress,
                 DuplicateHandle, BlockWithoutPool, BlockNotMatchingPool, InvalidBlock,
                 OverlappingBlocks, PodWithoutAddress, PoolNotAllocatable, AddressNotAdmitted,
                 PodIPNotRecorded, ReservedAddressHeld
  notes          findings that are not problems: PoolDisabled, PoolTerminating, PodWaiting,
                 PodStuckTerminating, BlockQuarantined, ParkedStickyAddress
An allocation (in LeakedAllocation, FinishedPodHoldsAddress, AddressNotAdmitted,
ReservedAddressHeld, ParkedStickyAddress, and the holders of duplicates) is address, block,
pool, ordinal, handle, sequence, namespace, pod. The crate's README lists the fields of every
kind.";

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Output {
    Table,
    Json,
}

/// Writes command output to stdout. A closed pipe (`| head`) is not worth a panic; the exit
/// status still tells the result.
pub(crate) fn print(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
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
            format: output,
        }),
        Command::Show {
            nodes,
            ip,
            output,
            cluster,
        } => show::run(&show::Args {
            access: cluster.access(),
            nodes,
            ip,
            format: output,
        }),
        Command::Check { output, cluster } => check::run(&check::Args {
            access: cluster.access(),
            json: matches!(output, Output::Json),
        }),
        Command::Release(r) => release::run(&release::Args {
            access: r.cluster.access(),
            target: match (r.ip, r.from_report) {
                (Some(ip), _) => release::Target::Ip(ip),
                (None, Some(file)) => release::Target::Report(file),
                // clap requires exactly one of them.
                (None, None) => return ExitCode::from(2),
            },
            force: r.force,
            dry_run: r.dry_run,
        }),
        Command::ImportCalico { file } => import::run(&import::Args { file }),
    }
}
