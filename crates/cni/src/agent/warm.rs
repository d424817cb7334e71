//! The agent's one client for the API server, kept warm across calls and rebuilt when the
//! kubeconfig changes.
//!
//! The chart's installer rewrites the kubeconfig (by a rename) whenever the kubelet rotates the
//! projected token. The agent looks at the file's identity (inode, size, modification and change
//! times) at most once a [`RECHECK`], and at once after the API server refused the credentials
//! (401), and builds a new client when it changed, with the same reading and checks as the
//! plugin's direct path ([`Cluster::connect`]). A kubeconfig that cannot be used gives the
//! same error as the direct path would (code 107); the agent keeps serving, and picks the file
//! up when it is written, so it may start before the installer.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::cluster::Cluster;
use crate::error::CniError;
use crate::log::Logger;
use crate::text::echo;

/// How often, at most, the kubeconfig is looked at for a change.
pub const RECHECK: Duration = Duration::from_secs(1);

/// The long-lived client.
pub struct Warm {
    kubeconfig: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The client (or why there is none) built from the file as `stamp` found it.
    built: Option<Result<Cluster, CniError>>,
    stamp: Option<Stamp>,
    /// When the file was last looked at.
    checked: Option<Instant>,
}

/// What changes when the file is rewritten, in place or by a rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    /// The file's stamp; `None` when it cannot be looked at (missing, for one).
    fn of(path: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        })
    }
}

impl Warm {
    /// A client to be built from `kubeconfig` when first needed.
    pub fn new(kubeconfig: PathBuf) -> Warm {
        Warm {
            kubeconfig,
            state: Mutex::new(State::default()),
        }
    }

    /// The client for the next call: the current one, or a new one when the kubeconfig
    /// changed since it was built; the kubeconfig's error when it cannot be used.
    pub async fn cluster(&self, log: &Logger) -> Result<Cluster, CniError> {
        let mut state = self.state.lock().await;
        let refused = matches!(&state.built, Some(Ok(c)) if c.refused_credentials());
        let recent = state.checked.is_some_and(|t| t.elapsed() < RECHECK);
        if let Some(built) = &state.built
            && recent
            && !refused
        {
            return built.clone();
        }
        let stamp = Stamp::of(&self.kubeconfig);
        state.checked = Some(Instant::now());
        if let Some(built) = &state.built
            && stamp == state.stamp
        {
            return built.clone();
        }
        let shown = echo(&self.kubeconfig.display().to_string()).to_string();
        match (&state.built, refused) {
            (None, _) => log.info(format_args!("reading kubeconfig {shown}")),
            (Some(_), true) => log.info(format_args!(
                "the API server refused the credentials and kubeconfig {shown} changed: building a new client"
            )),
            (Some(_), false) => log.info(format_args!(
                "kubeconfig {shown} changed: building a new client"
            )),
        }
        let built = Cluster::connect(&self.kubeconfig).await;
        if let Err(e) = &built {
            log.warn(format_args!(
                "{e}; calls fail with this error until the file is fixed"
            ));
        }
        state.stamp = stamp;
        state.built = Some(built.clone());
        built
    }
}
