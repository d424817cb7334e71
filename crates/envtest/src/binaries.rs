//! Where the control plane's binaries come from: `tests/k8s/build.sh`, which builds them from the
//! pinned Go modules into a cache outside the repository (or reuses that cache).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::Error;

/// The repository's root (this crate lives in `crates/envtest`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Kubernetes version the tests run against: `RANGEPOOL_K8S_VERSION`, else
/// `tests/k8s/DEFAULT`.
pub fn version() -> String {
    std::env::var("RANGEPOOL_K8S_VERSION")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| std::fs::read_to_string(repo_root().join("tests/k8s/DEFAULT")).ok())
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

/// The folder holding `etcd`, `kube-apiserver`, `kube-controller-manager` and `kube-scheduler`:
/// `RANGEPOOL_K8S_BIN` when set (make test sets it after building once), else what
/// `tests/k8s/build.sh` prints. Looked up once per process.
pub fn dir() -> Result<&'static Path, Error> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(find)
        .as_deref()
        .map_err(|e| Error::Binaries(e.clone()))
}

fn find() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("RANGEPOOL_K8S_BIN").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let script = repo_root().join("tests/k8s/build.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(version())
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}):\n{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .last()
        .map(PathBuf::from)
        .ok_or_else(|| format!("{} printed no folder", script.display()))
}

/// The path of one binary in [`dir`].
pub fn path(name: &str) -> Result<PathBuf, Error> {
    Ok(dir()?.join(name))
}
