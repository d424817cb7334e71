//! Which pods need an address: the one rule the controller, `kubectl ipam plan` and
//! `kubectl ipam check` share.
//!
//! A pod needs an address from rangepool when it is bound to a node, does not use its node's
//! network, has not finished (`Succeeded` or `Failed`), and is not being deleted. A finished
//! pod's addresses can be released; a pod being deleted keeps its addresses until its object is
//! gone, since its containers may still run.

use std::fmt;

/// What the address rule reads of a pod, borrowed from the Kubernetes object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PodState<'a> {
    /// `spec.nodeName`; `None` or empty while the pod is not bound.
    pub node: Option<&'a str>,
    /// `spec.hostNetwork`.
    pub host_network: bool,
    /// `status.phase` is `Succeeded` or `Failed` (see [`PodState::finished_phase`]).
    pub finished: bool,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
}

/// Why a pod needs no address, in the order the rule checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoAddress {
    /// No `spec.nodeName` yet.
    Unbound,
    /// It uses its node's address.
    HostNetwork,
    /// Its phase is `Succeeded` or `Failed`: its addresses can go.
    Finished,
    /// It is being deleted: it gets nothing new and keeps what it has until it is gone.
    Deleting,
}

impl NoAddress {
    /// Short stable label.
    pub fn reason(self) -> &'static str {
        match self {
            NoAddress::Unbound => "Unbound",
            NoAddress::HostNetwork => "HostNetwork",
            NoAddress::Finished => "Finished",
            NoAddress::Deleting => "Deleting",
        }
    }
}

impl fmt::Display for NoAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NoAddress::Unbound => "not bound to a node (no spec.nodeName)",
            NoAddress::HostNetwork => "on the host network (it uses its node's address)",
            NoAddress::Finished => "finished (phase Succeeded or Failed)",
            NoAddress::Deleting => "being deleted (deletionTimestamp set)",
        })
    }
}

impl<'a> PodState<'a> {
    /// True for the phases of a pod whose containers will not run again.
    pub fn finished_phase(phase: Option<&str>) -> bool {
        matches!(phase, Some("Succeeded" | "Failed"))
    }

    /// The node the pod is bound to, if any (an empty `nodeName` is no node).
    pub fn node(&self) -> Option<&'a str> {
        self.node.filter(|n| !n.is_empty())
    }

    /// Why the pod needs no address, or `None` when it needs one.
    pub fn no_address(&self) -> Option<NoAddress> {
        if self.node().is_none() {
            Some(NoAddress::Unbound)
        } else if self.host_network {
            Some(NoAddress::HostNetwork)
        } else if self.finished {
            Some(NoAddress::Finished)
        } else if self.deleting {
            Some(NoAddress::Deleting)
        } else {
            None
        }
    }

    /// Whether rangepool must give the pod addresses.
    pub fn needs_address(&self) -> bool {
        self.no_address().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound() -> PodState<'static> {
        PodState {
            node: Some("n1"),
            ..PodState::default()
        }
    }

    #[test]
    fn only_bound_running_pod_network_pods_need_an_address() {
        assert!(bound().needs_address());
        let cases = [
            (PodState::default(), NoAddress::Unbound),
            (
                PodState {
                    node: Some(""),
                    ..bound()
                },
                NoAddress::Unbound,
            ),
            (
                PodState {
                    host_network: true,
                    finished: true,
                    ..bound()
                },
                NoAddress::HostNetwork,
            ),
            (
                PodState {
                    finished: true,
                    deleting: true,
                    ..bound()
                },
                NoAddress::Finished,
            ),
            (
                PodState {
                    deleting: true,
                    ..bound()
                },
                NoAddress::Deleting,
            ),
        ];
        for (state, why) in cases {
            assert_eq!(state.no_address(), Some(why), "{state:?}");
            assert!(!state.needs_address());
        }
    }

    #[test]
    fn succeeded_and_failed_are_the_finished_phases() {
        assert!(PodState::finished_phase(Some("Succeeded")));
        assert!(PodState::finished_phase(Some("Failed")));
        for phase in [
            None,
            Some("Pending"),
            Some("Running"),
            Some("Unknown"),
            Some("failed"),
        ] {
            assert!(!PodState::finished_phase(phase), "{phase:?}");
        }
    }
}
