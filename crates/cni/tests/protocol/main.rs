//! The built `rangepool-ipam` binary driven as a container runtime drives it (environment and
//! stdin in, one JSON document and an exit code out) against a real kube-apiserver and etcd (envtest),
//! with the chart's node credentials, and the test playing the controller.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

mod add;
mod agent;
mod inputs;
mod lifecycle;
mod node_credentials;
