//! `kubectl ipam plan -f DIR`: which address every pod in a directory of manifests would get,
//! computed offline by the same core the controller runs.
//!
//! The steps mirror the controller: the pod CIDRs come from `--pod-cidr`, else from the
//! kube-system/kubeadm-config ConfigMap among the manifests, else they are unknown, and the
//! families are chosen by [`ipam::cidr::Family::select`]; which pods want an address is
//! [`ipam::pod::PodState`]'s rule, and pool validation, pool choice and allocation go through
//! one [`ipam::planner::Planner`], the controller's own. This module only reads the input
//! ([`settings`]), feeds the core ([`compute`]) and prints ([`table`], [`json`]); it holds no
//! allocation rule of its own.
//!
//! Exit status: 0 when every pod gets an address and every pool is allocatable (or disabled),
//! 1 otherwise, 2 when the input cannot be read.

mod compute;
mod json;
mod settings;
mod table;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

pub use compute::Plan;
pub use settings::InputError;

use crate::manifests::Manifests;
pub use crate::text::Format;
use settings::Settings;

/// What `kubectl ipam plan` was asked.
#[derive(Debug, Clone)]
pub struct Args {
    /// File or directory of manifests.
    pub dir: PathBuf,
    /// `--pod-cidr` values as given.
    pub pod_cidrs: Vec<String>,
    /// `--families` values as given.
    pub families: Vec<String>,
    /// `-o`: the table, JSON or YAML.
    pub format: Format,
}

/// Exit status when a pod gets no address or a pool is not allocatable.
const EXIT_PROBLEMS: u8 = 1;
/// Exit status when the input cannot be read.
const EXIT_BAD_INPUT: u8 = 2;

/// Runs the planner and prints its result; returns the exit status described in the module docs.
pub fn run(args: &Args) -> ExitCode {
    let plan = match plan(args) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("kubectl ipam plan: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    // On stderr whatever the format, so that a CI log shows them next to the plan.
    for w in &plan.warnings {
        eprintln!("warning: {w}");
    }
    let out = json::render(&plan, args.format).unwrap_or_else(|| table::render(&plan));
    // A closed pipe (`| head`) is not worth a panic; the exit status still tells the result.
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    if plan.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PROBLEMS)
    }
}

/// Reads the manifests and computes the plan.
pub fn plan(args: &Args) -> Result<Plan, InputError> {
    let manifests = Manifests::read(&args.dir)?;
    let settings = Settings::resolve(&args.pod_cidrs, &args.families, &manifests)?;
    Ok(compute::compute(&manifests, settings))
}

#[cfg(test)]
mod tests;
