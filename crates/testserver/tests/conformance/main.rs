//! Conformance-style tests: the test server driven by kube-rs (typed and dynamic APIs, watcher,
//! reflector, Controller), by raw HTTP where clients hide the wire, by the real kubectl, and as
//! a separate process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod crd;
mod crud;
mod faults;
mod kubectl;
mod patch;
mod process;
mod runtime;
mod watch;
