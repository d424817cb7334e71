//! rangepool's CNI IPAM plugin, run by the container runtime as `rangepool-ipam` inside a main
//! plugin's configuration (`"ipam": {"type": "rangepool-ipam", ...}`).
//!
//! Owns the plugin side of an address's life: reading the call (`CNI_*` environment and the
//! network configuration on stdin), waiting for the controller's assignment on the pod,
//! checking by a read of the IPAMBlock that the block records the address for the pod, and
//! building the CNI result per spec version. It writes nothing to the API server, and never
//! allocates or frees an address: that is the controller's alone.
//!
//! Also owns the node agent (`rangepool-agent`, [`agent`]): a long-lived process per node that
//! runs the same checks ([`work`]) with one warm client and answers the plugin over a unix
//! socket, so that the plugin's call needs no TLS handshake and no async runtime.
//!
//! Depends on `api` (resource types, annotation keys) and `ipam` (CIDR maths) and talks to the
//! API server through kube. It must not depend on the controller, the CLI or the test server
//! (a dev-dependency only), and it must stay small and quick to start: one process per call,
//! a current-thread runtime only when it reads the API server itself, no logging framework.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod agent;
pub mod cluster;
pub mod config;
pub mod error;
pub mod kubeconfig;
pub mod log;
pub mod request;
pub mod result;
pub mod run;
pub mod text;
pub mod usage;
pub mod verify;
pub mod version;
pub mod work;

pub use error::CniError;
pub use run::{Reply, main_with, panic_reply};
pub use version::CniVersion;
