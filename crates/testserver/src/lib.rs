//! rangepool-testserver: a Kubernetes API server stand-in for rangepool's tests and demo.
//!
//! It speaks the real Kubernetes REST protocol over plain HTTP on 127.0.0.1, so kube-rs clients
//! in-process and separate processes (the controller, the CNI plugin, `kubectl ipam`, real
//! `kubectl`) use it through an ordinary kubeconfig. It keeps objects in memory (optionally in a
//! data directory), serves core Pods, Namespaces, Nodes, Events, ConfigMaps, Secrets,
//! ServiceAccounts, events.k8s.io Events, Leases and CRDs plus their custom resources, with
//! watches, selectors, all patch types, finalizers, status subresources, schema validation and
//! fault injection. See README.md for what it does not reproduce.
//!
//! Test support only, never shipped. It depends on kube-rs for types and the client it hands
//! out, never on rangepool's own crates: it must not encode our product's rules.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rangepool_testserver::Error> {
//! let server = rangepool_testserver::TestServer::start().await?;
//! let client = server.client()?;
//! server.faults().fail_writes(rangepool_testserver::FailWrites::new("", "pods", 409, 1));
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod cel;
mod decode;
mod discovery;
mod error;
mod faults;
mod fields;
mod http;
mod kubeconfig;
mod openapi;
mod patch;
mod persist;
mod protobuf;
mod render;
mod resources;
mod schema;
mod selectors;
mod server;
mod store;
mod strategy;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use error::{ApiError, Reason};
pub use faults::{FailWrites, FaultRequest};
pub use resources::StorageKey;
pub use server::Config;
pub use store::{Change, ChangeKind};

/// Errors of starting or using the server from tests.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// binding, temp dir, kubeconfig, data dir
    #[error("testserver I/O: {0}")]
    Io(#[from] std::io::Error),
    /// building a kube client
    #[error("kube client: {0}")]
    Kube(#[from] kube::Error),
    /// the URL did not parse
    #[error("server URL: {0}")]
    Url(String),
}

/// A running server. Dropping it stops it (open connections are closed).
pub struct TestServer {
    shared: Arc<server::Shared>,
    url: String,
    kubeconfig: PathBuf,
    _dir: Option<tempfile::TempDir>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Start on `127.0.0.1:0` with the default configuration.
    pub async fn start() -> Result<Self, Error> {
        Self::start_with(Config::default()).await
    }

    /// Start with a configuration; the kubeconfig goes to a temp dir owned by the server.
    pub async fn start_with(config: Config) -> Result<Self, Error> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("kubeconfig");
        let mut s = Self::start_at(config, &path).await?;
        s._dir = Some(dir);
        Ok(s)
    }

    /// Start and write the kubeconfig to `kubeconfig` (the binary's `--kubeconfig-out`).
    pub async fn start_at(config: Config, kubeconfig: &Path) -> Result<Self, Error> {
        let (listener, shared) = server::bind(config).await?;
        let url = format!("http://{}", shared.addr);
        kubeconfig::write(kubeconfig, &url)?;
        let mut tasks = vec![tokio::spawn(server::serve(listener, shared.clone()))];
        if shared.config.data_dir.is_some() {
            tasks.push(tokio::spawn(persist::run(shared.clone())));
        }
        Ok(TestServer {
            shared,
            url,
            kubeconfig: kubeconfig.to_path_buf(),
            _dir: None,
            tasks,
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.shared.addr.port()
    }

    /// Path of a kubeconfig for this server.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kube client for this server (namespace `default`).
    pub fn client(&self) -> Result<kube::Client, Error> {
        let uri: ::http::Uri = self
            .url
            .parse()
            .map_err(|e: ::http::uri::InvalidUri| Error::Url(e.to_string()))?;
        let config = kube::Config::new(uri);
        Ok(kube::Client::try_from(config)?)
    }

    /// Fault injection.
    pub fn faults(&self) -> Faults<'_> {
        Faults {
            shared: &self.shared,
        }
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store.resource_version()
    }

    /// Every change the server commits from now on, in resourceVersion order, with the
    /// resourceVersion the first one follows. In-process and free of HTTP and serialization,
    /// so that a benchmark can observe every write without adding load to what it measures
    /// (a watch costs the server an encoding per event and the observer a decoding). The
    /// channel holds 16,384 changes; a receiver that falls further behind gets `Lagged`.
    pub fn commits(&self) -> (u64, tokio::sync::broadcast::Receiver<Arc<Change>>) {
        self.shared.store.subscribe()
    }

    /// How many changes are retained for watches (older resourceVersions get 410 Gone).
    pub fn set_history_limit(&self, limit: usize) {
        self.shared.store.set_history_limit(limit);
    }

    /// Write the data dir snapshot now (when configured).
    pub fn persist_now(&self) -> Result<(), Error> {
        if let Some(dir) = &self.shared.config.data_dir {
            persist::save(dir, &self.shared.store)?;
        }
        Ok(())
    }

    /// Stop serving (also done on drop); saves the data dir first when configured.
    pub fn shutdown(&mut self) {
        let _ = self.persist_now();
        self.shared.drop_watches();
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The fault-injection handle of a [`TestServer`].
pub struct Faults<'a> {
    shared: &'a server::Shared,
}

impl Faults<'_> {
    /// Answer the next `rule.count` matching writes with `rule.code`.
    pub fn fail_writes(&self, rule: FailWrites) {
        self.shared.faults.add(rule);
    }

    /// Delay every API response (None or zero: no delay).
    pub fn set_delay(&self, delay: Option<Duration>) {
        self.shared.faults.set_delay(delay);
    }

    /// End every open watch stream now (clients see the stream end and re-watch).
    pub fn drop_watches(&self) {
        self.shared.drop_watches();
    }

    /// Forget watch history: watches from any resourceVersion older than now get 410 Gone.
    pub fn compact(&self) {
        self.shared.store.compact();
    }

    /// Failures not yet consumed.
    pub fn pending(&self) -> u32 {
        self.shared.faults.pending()
    }

    /// Remove every rule and the delay.
    pub fn clear(&self) {
        self.shared.faults.clear();
    }

    /// Apply a request as the HTTP side door does.
    pub fn apply(&self, req: FaultRequest) {
        apply_fault_request(self.shared, req);
    }
}

pub(crate) fn apply_fault_request(shared: &server::Shared, req: FaultRequest) {
    if req.clear {
        shared.faults.clear();
    }
    if let Some(rule) = req.fail_writes {
        shared.faults.add(rule);
    }
    if let Some(ms) = req.delay_millis {
        shared.faults.set_delay(Some(Duration::from_millis(ms)));
    }
    if req.compact {
        shared.store.compact();
    }
    if req.drop_watches {
        shared.drop_watches();
    }
}
