//! Talking to the cluster: finding the kubeconfig as kubectl does, listing everything a command
//! reads, and turning API failures into messages that say what to do.
//!
//! The kubeconfig is `--kubeconfig PATH` when given, else `KUBECONFIG`, else `~/.kube/config`,
//! else the in-cluster service account; `--context` picks a context as in kubectl. Every command
//! that talks to the cluster runs on one current-thread runtime: the work is a handful of
//! sequential requests, and the machine the CLI runs on owes it no more threads.

use std::fmt::Debug;
use std::future::Future;
use std::path::PathBuf;

use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde::de::DeserializeOwned;

/// Page size of every list: a 150,000-pod cluster is read in bounded pieces.
const PAGE: u32 = 500;

/// Where to find the cluster, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`.
    pub context: Option<String>,
}

/// The cluster could not be reached or refused a request. Exit status 2.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The kubeconfig named by `--kubeconfig` cannot be used.
    #[error("kubeconfig {}: {source}", path.display())]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// `--context` was given but `KUBECONFIG` / `~/.kube/config` cannot be used.
    #[error("kubeconfig (KUBECONFIG or ~/.kube/config): {0}")]
    DefaultKubeconfig(#[source] kube::config::KubeconfigError),
    /// Neither a kubeconfig nor an in-cluster service account was found.
    #[error(
        "no cluster configuration: give --kubeconfig, set KUBECONFIG, or create ~/.kube/config ({0})"
    )]
    NoConfig(#[source] kube::config::InferConfigError),
    /// The client could not be built from the configuration.
    #[error("cannot build a client for {server}: {source}")]
    Client {
        /// The API server's URL.
        server: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// A request failed; `hint` says what it means for the user.
    #[error("{what}: {hint}")]
    Request {
        /// What was being done, e.g. `listing ipamblocks.rangepool.dev`.
        what: String,
        /// The failure in a person's words.
        hint: String,
    },
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl AccessError {
    /// The failure of a request, explained: 401/403 name the permission, 404 on our resources
    /// means the CRDs are missing, a connection failure names the server.
    pub fn request(what: impl Into<String>, e: &kube::Error) -> AccessError {
        let what = what.into();
        // Listing a resource of a CRD that is not installed is a bare 404.
        let ours = what.contains(api::keys::GROUP);
        let hint = match e {
            kube::Error::Api(s) if s.code == 401 => format!(
                "unauthorized ({}): the kubeconfig's credentials were refused",
                s.message
            ),
            kube::Error::Api(s) if s.code == 403 => format!(
                "forbidden ({}): kubectl ipam needs get and list on ippools, ipamblocks, ipreservations, pods, namespaces and nodes, and patch on ipamblocks to release",
                s.message
            ),
            kube::Error::Api(s) if s.code == 404 && ours && what.starts_with("listing") => {
                format!(
                    "not found ({}): are rangepool's CRDs installed? (kubectl apply -f crds/)",
                    s.message
                )
            }
            kube::Error::Api(s) => format!("the API server answered {}: {}", s.code, s.message),
            other => format!("cannot reach the API server: {other}"),
        };
        AccessError::Request { what, hint }
    }
}

/// A connected client and the server it talks to (for messages and reports).
pub struct Connection {
    /// The client.
    pub client: Client,
    /// The API server's URL.
    pub server: String,
}

impl Access {
    /// The client kubectl would use with the same flags and environment.
    pub async fn connect(&self) -> Result<Connection, AccessError> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        let config = match (&self.kubeconfig, &self.context) {
            (Some(path), _) => {
                let bad = |source| AccessError::Kubeconfig {
                    path: path.clone(),
                    source,
                };
                let kubeconfig = Kubeconfig::read_from(path).map_err(bad)?;
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(bad)?
            }
            // A context only makes sense in a kubeconfig: no in-cluster fallback.
            (None, Some(_)) => Config::from_kubeconfig(&options)
                .await
                .map_err(AccessError::DefaultKubeconfig)?,
            (None, None) => Config::infer().await.map_err(AccessError::NoConfig)?,
        };
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config).map_err(|source| AccessError::Client {
            server: server.clone(),
            source,
        })?;
        Ok(Connection { client, server })
    }
}

/// Runs `work` to completion on a current-thread runtime.
pub fn block_on<T>(work: impl Future<Output = T>) -> Result<T, AccessError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AccessError::Runtime)?;
    Ok(runtime.block_on(work))
}

/// Every object of `api`, read in pages.
pub async fn list_all<K>(api: &Api<K>, what: &str) -> Result<Vec<K>, AccessError>
where
    K: Clone + DeserializeOwned + Debug,
{
    pages(api)
        .await
        .map_err(|e| AccessError::request(format!("listing {what}"), &e))
}

/// Every object of `api`, or `None` when the server does not have the resource at all: a CRD
/// added in a later version and not installed yet.
pub async fn list_if_installed<K>(api: &Api<K>, what: &str) -> Result<Option<Vec<K>>, AccessError>
where
    K: Clone + DeserializeOwned + Debug,
{
    match pages(api).await {
        Ok(all) => Ok(Some(all)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(AccessError::request(format!("listing {what}"), &e)),
    }
}

async fn pages<K>(api: &Api<K>) -> Result<Vec<K>, kube::Error>
where
    K: Clone + DeserializeOwned + Debug,
{
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut params = ListParams::default().limit(PAGE);
        if let Some(t) = &token {
            params = params.continue_token(t);
        }
        let page = api.list(&params).await?;
        out.extend(page.items);
        match page.metadata.continue_ {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => return Ok(out),
        }
    }
}
