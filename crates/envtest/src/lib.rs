//! rangepool-envtest: a real Kubernetes control plane for rangepool's tests, benchmarks and demo.
//!
//! [`ControlPlane::start`] runs etcd and kube-apiserver — built from the Go modules pinned in
//! `tests/k8s/` — on free ports of 127.0.0.1, with TLS, `--authorization-mode=Node,RBAC`, the
//! default admission chain plus NodeRestriction, and a ServiceAccount signing key. On request it
//! adds kube-controller-manager (namespace, ServiceAccount, garbage-collector and ClusterRole
//! aggregation controllers) and kube-scheduler. It hands out clients and kubeconfigs for an admin and for ServiceAccounts
//! carrying exactly the RBAC the Helm chart grants ([`ControlPlane::chart_identity`]), finishes
//! the graceful deletion of pods as a kubelet would ([`kubelet`]), and can put a fault-injecting
//! proxy in front of the server ([`faults`]). Dropping it stops everything it started and removes
//! its files.
//!
//! Test support only, never shipped. It knows Kubernetes, not rangepool's rules: it must not
//! depend on rangepool's crates.
//!
//! ```no_run
//! # async fn demo() -> Result<(), envtest::Error> {
//! let plane = envtest::ControlPlane::start().await?;
//! let admin: kube::Client = plane.client()?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod binaries;
mod crds;
pub mod faults;
mod identity;
pub mod kubelet;
mod pki;
mod process;
mod ready;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

pub use identity::{ChartIdentity, Credentials};
pub use process::Process;

/// Errors of starting or using a control plane.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("envtest I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("control plane binaries: {0}")]
    Binaries(String),
    #[error("certificates: {0}")]
    Pki(String),
    #[error("{component} did not start: {reason}")]
    Start { component: String, reason: String },
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("kube: {0}")]
    Kube(#[from] kube::Error),
    #[error("chart: {0}")]
    Chart(String),
}

/// What to run besides etcd and kube-apiserver.
#[derive(Clone, Debug)]
pub struct Options {
    /// kube-controller-manager with the namespace, ServiceAccount, root-CA publisher,
    /// garbage-collector and ClusterRole aggregation controllers (the last fills the built-in
    /// `admin`, `edit` and `view` roles).
    pub controller_manager: bool,
    /// kube-scheduler.
    pub scheduler: bool,
    /// The kubelet stand-in that finishes graceful pod deletion; `None` leaves deleted pods of a
    /// node terminating until someone deletes them with a grace period of 0.
    pub kubelet: Option<kubelet::Settings>,
    /// The address kube-apiserver binds and advertises (the `kubernetes` Service's endpoint):
    /// 127.0.0.1 unless real nodes in other network namespaces must reach it. Its serving
    /// certificate names it, and the `kubernetes` Service's ClusterIP 10.96.0.1.
    pub address: IpAddr,
    /// kube-controller-manager with every controller it runs by default (`--controllers=*`:
    /// Deployments, ReplicaSets, DaemonSets, pod garbage collection, node lifecycle, ...), as a
    /// cluster with real nodes needs, instead of the few above.
    pub all_controllers: bool,
    /// Names of real nodes that will join: each gets a token of `system:node:NAME` in group
    /// `system:nodes` for its kubelet ([`ControlPlane::node_kubeconfig`]), and kube-proxy one of
    /// `system:kube-proxy` ([`ControlPlane::kube_proxy_kubeconfig`]).
    pub nodes: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            controller_manager: false,
            scheduler: false,
            kubelet: Some(kubelet::Settings::default()),
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            all_controllers: false,
            nodes: Vec::new(),
        }
    }
}

/// The kubelet's static token of node `name`.
fn node_token(name: &str) -> String {
    format!("envtest-node-{name}")
}

/// kube-proxy's static token.
const KUBE_PROXY_TOKEN: &str = "envtest-kube-proxy";

/// The admin's static bearer token (group `system:masters`); the server is on loopback only and
/// lives as long as one test.
const ADMIN_TOKEN: &str = "envtest-admin";

/// A running control plane. Dropping it stops every process and task it started.
pub struct ControlPlane {
    url: String,
    ca_pem: String,
    version: String,
    kubeconfig: PathBuf,
    client: kube::Client,
    kubelet: Option<tokio::task::JoinHandle<()>>,
    // Dropped in reverse order of start: the scheduler and controller-manager before the API
    // server, the API server before etcd.
    components: Vec<Process>,
    dir: Option<tempfile::TempDir>,
    keep: bool,
}

impl ControlPlane {
    /// etcd and kube-apiserver, with the kubelet stand-in.
    pub async fn start() -> Result<ControlPlane, Error> {
        ControlPlane::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Result<ControlPlane, Error> {
        let dir = tempfile::Builder::new().prefix("envtest-").tempdir()?;
        let pki = pki::Pki::write(dir.path(), options.address)?;
        let tokens = dir.path().join("tokens.csv");
        let mut token_lines = format!(
            "{ADMIN_TOKEN},envtest-admin,envtest-admin,\"system:masters\"\n\
             envtest-kcm,system:kube-controller-manager,system:kube-controller-manager\n\
             envtest-scheduler,system:kube-scheduler,system:kube-scheduler\n"
        );
        for node in &options.nodes {
            token_lines.push_str(&format!(
                "{},system:node:{node},system:node:{node},\"system:nodes\"\n",
                node_token(node)
            ));
        }
        if !options.nodes.is_empty() {
            token_lines.push_str(&format!(
                "{KUBE_PROXY_TOKEN},system:kube-proxy,system:kube-proxy\n"
            ));
        }
        std::fs::write(&tokens, token_lines)?;
        let mut components = Vec::new();

        let etcd_port = process::free_port()?;
        let peer_port = process::free_port()?;
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd_args: Vec<String> = [
            "--name=envtest".to_owned(),
            format!("--data-dir={}", dir.path().join("etcd").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=envtest={peer_url}"),
            // A test's data does not outlive the test: no fsync, as envtest does.
            "--unsafe-no-fsync=true".to_owned(),
            "--log-level=warn".to_owned(),
        ]
        .into();
        components.push(Process::spawn(
            "etcd",
            &binaries::path("etcd")?,
            &etcd_args,
            dir.path(),
        )?);

        let port = process::free_port()?;
        let url = format!(
            "https://{}",
            std::net::SocketAddr::new(options.address, port)
        );
        let apiserver_args: Vec<String> = [
            format!("--etcd-servers={etcd_url}"),
            format!("--bind-address={}", options.address),
            format!("--advertise-address={}", options.address),
            format!("--secure-port={port}"),
            format!("--tls-cert-file={}", pki.serving_cert.display()),
            format!("--tls-private-key-file={}", pki.serving_key.display()),
            format!("--client-ca-file={}", pki.ca_file.display()),
            format!("--token-auth-file={}", tokens.display()),
            "--authorization-mode=Node,RBAC".to_owned(),
            // The default admission chain, plus what kubeadm adds.
            "--enable-admission-plugins=NodeRestriction".to_owned(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_owned(),
            format!(
                "--service-account-key-file={}",
                pki.service_account_pub.display()
            ),
            format!(
                "--service-account-signing-key-file={}",
                pki.service_account_key.display()
            ),
            "--service-cluster-ip-range=10.96.0.0/16".to_owned(),
            "--allow-privileged=true".to_owned(),
            // Real nodes' names resolve nowhere: reach kubelets (logs, exec) by their address.
            "--kubelet-preferred-address-types=InternalIP".to_owned(),
            format!("--cert-dir={}", dir.path().join("certs").display()),
            "--profiling=false".to_owned(),
            "-v=1".to_owned(),
        ]
        .into();
        components.push(Process::spawn(
            "kube-apiserver",
            &binaries::path("kube-apiserver")?,
            &apiserver_args,
            dir.path(),
        )?);

        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            kubeconfig_text(&url, &pki.ca_pem, Some(ADMIN_TOKEN)),
        )?;
        let client = client_from(&kubeconfig).await?;
        ready::wait_for_apiserver(&client, &mut components).await?;

        let mut plane = ControlPlane {
            url,
            ca_pem: pki.ca_pem.clone(),
            version: binaries::version(),
            kubeconfig,
            client,
            kubelet: None,
            components,
            dir: Some(dir),
            keep: false,
        };
        // Pods need their namespace's `default` ServiceAccount (the ServiceAccount admission
        // plugin refuses them otherwise); the controller-manager makes it in new namespaces, and
        // these two exist before it could.
        for ns in ["default", "kube-system"] {
            plane.ensure_default_service_account(ns).await?;
        }
        if options.controller_manager || options.all_controllers {
            plane.start_controller_manager(&pki, options.all_controllers)?;
        }
        if options.scheduler {
            plane.start_scheduler()?;
        }
        if let Some(settings) = options.kubelet {
            plane.kubelet = Some(kubelet::spawn(plane.client.clone(), settings));
        }
        Ok(plane)
    }

    fn start_controller_manager(&mut self, pki: &pki::Pki, all: bool) -> Result<(), Error> {
        let controllers = if all {
            "*"
        } else {
            "namespace-controller,serviceaccount-controller,garbage-collector-controller,root-ca-certificate-publisher-controller,clusterrole-aggregation-controller"
        };
        self.start_component(
            "kube-controller-manager",
            "envtest-kcm",
            vec![
                // Each controller acts as its own ServiceAccount with its bootstrap role, as
                // kubeadm runs it; system:kube-controller-manager itself may do almost nothing.
                "--use-service-account-credentials=true".to_owned(),
                format!("--controllers={controllers}"),
                format!("--root-ca-file={}", pki.ca_file.display()),
            ],
        )
    }

    fn start_scheduler(&mut self) -> Result<(), Error> {
        self.start_component("kube-scheduler", "envtest-scheduler", Vec::new())
    }

    /// Starts a component that talks to the API server with a static `token` and serves its
    /// own endpoints on a free port of 127.0.0.1.
    fn start_component(
        &mut self,
        name: &str,
        token: &str,
        mut args: Vec<String>,
    ) -> Result<(), Error> {
        let kubeconfig = self.dir().join(format!("{name}.kubeconfig"));
        std::fs::write(
            &kubeconfig,
            kubeconfig_text(&self.url, &self.ca_pem, Some(token)),
        )?;
        args.extend([
            format!("--kubeconfig={}", kubeconfig.display()),
            "--leader-elect=false".to_owned(),
            format!("--secure-port={}", process::free_port()?),
            "--bind-address=127.0.0.1".to_owned(),
            "-v=1".to_owned(),
        ]);
        let process = Process::spawn(name, &binaries::path(name)?, &args, self.dir())?;
        self.components.push(process);
        Ok(())
    }

    /// `https://127.0.0.1:PORT` (or the address of [`Options::address`]).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A kubeconfig for the kubelet of node `name` (one of [`Options::nodes`]).
    pub fn node_kubeconfig(&self, name: &str) -> String {
        kubeconfig_text(&self.url, &self.ca_pem, Some(&node_token(name)))
    }

    /// A kubeconfig for kube-proxy (user `system:kube-proxy`), when [`Options::nodes`] is set.
    pub fn kube_proxy_kubeconfig(&self) -> String {
        kubeconfig_text(&self.url, &self.ca_pem, Some(KUBE_PROXY_TOKEN))
    }

    /// The Kubernetes version running (`tests/k8s/DEFAULT` or `RANGEPOOL_K8S_VERSION`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The CA that signed the server's certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The admin's kubeconfig (group `system:masters`).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A folder that lives as long as the control plane, for a test's files.
    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map_or(Path::new("/nonexistent"), |d| d.path())
    }

    /// The admin's client (group `system:masters`), default namespace `default`.
    pub fn client(&self) -> Result<kube::Client, Error> {
        Ok(self.client.clone())
    }

    /// A kubeconfig for `token` against `server` (this control plane's URL, or a proxy's).
    pub fn kubeconfig_for(&self, server: &str, token: &str) -> String {
        kubeconfig_text(server, &self.ca_pem, Some(token))
    }

    /// Creates the namespace with these labels and annotations, and its `default`
    /// ServiceAccount, which pods need and which only a controller-manager would make.
    pub async fn create_namespace(
        &self,
        name: &str,
        labels: std::collections::BTreeMap<String, String>,
        annotations: std::collections::BTreeMap<String, String>,
    ) -> Result<Namespace, Error> {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(labels),
                annotations: Some(annotations),
                ..Default::default()
            },
            ..Default::default()
        };
        let created = Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        self.ensure_default_service_account(name).await?;
        Ok(created)
    }

    /// Makes sure `namespace` has its `default` ServiceAccount.
    pub async fn ensure_default_service_account(&self, namespace: &str) -> Result<(), Error> {
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some("default".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        match Api::<ServiceAccount>::namespaced(self.client.clone(), namespace)
            .create(&PostParams::default(), &sa)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The log file of a component (`etcd`, `kube-apiserver`, ...), if it was started.
    pub fn component_log(&self, name: &str) -> Option<&Path> {
        self.components
            .iter()
            .map(Process::log)
            .find(|p| p.file_stem().and_then(|s| s.to_str()) == Some(name))
    }

    /// Keeps the control plane's logs and certificates when it is dropped (etcd's data, 64 MiB of
    /// preallocated log, still goes); returns their folder.
    pub fn keep_logs(&mut self) -> &Path {
        self.keep = true;
        self.dir()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(kubelet) = self.kubelet.take() {
            kubelet.abort();
        }
        while let Some(process) = self.components.pop() {
            drop(process);
        }
        if self.keep
            && let Some(dir) = self.dir.take().map(tempfile::TempDir::keep)
        {
            let _ = std::fs::remove_dir_all(dir.join("etcd"));
        }
    }
}

/// A kubeconfig with one cluster, one bearer-token user (no credentials without a token) and
/// namespace `default`.
pub fn kubeconfig_text(server: &str, ca_pem: &str, token: Option<&str>) -> String {
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let user = match token {
        Some(token) => format!("\n    token: {token}"),
        None => " {}".to_owned(),
    };
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: envtest
  cluster:
    server: {server}
    certificate-authority-data: {ca}
contexts:
- name: envtest
  context:
    cluster: envtest
    user: envtest
    namespace: default
current-context: envtest
users:
- name: envtest
  user:{user}
"
    )
}

/// A client from a kubeconfig file, read the way kubectl and our binaries read it.
pub async fn client_from(path: &Path) -> Result<kube::Client, Error> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| Error::Kubeconfig(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| Error::Kubeconfig(e.to_string()))?;
    Ok(kube::Client::try_from(config)?)
}

/// The HTTP status of an API error, for assertions on refusals.
pub fn status_code<T>(result: &Result<T, kube::Error>) -> Option<u16> {
    match result {
        Err(kube::Error::Api(status)) => Some(status.code),
        _ => None,
    }
}

/// How long [`ready`] waits for a component.
pub const START_PATIENCE: Duration = Duration::from_secs(90);
