//! Sticky StatefulSet addresses (`stickyStatefulSets: true` on a pool): a StatefulSet's pod
//! gets back the address it had each time it is created again under the same name, while the
//! StatefulSet exists and keeps that ordinal.
//!
//! When such a pod is deleted (or finishes), its record in a sticky pool is not freed but
//! **parked**: the record's handle becomes [`parked_handle`] — the StatefulSet's UID and the pod's
//! name instead of the pod's UID — and the address stays taken. A new pod of the same
//! StatefulSet and name takes the parked record over (see [`crate::planner`]), wherever it is
//! scheduled. A parked record is released when [`Parked::due`] says so: the StatefulSet is
//! gone (a new StatefulSet of the same name is another one, with another UID), or its replicas
//! no longer include the ordinal.

use std::fmt;

/// The handle of a parked record: `sts:<StatefulSet UID>/<pod name>`. Pod UIDs never contain
/// `:`, so a parked handle is never a pod's.
pub fn parked_handle(statefulset_uid: &str, pod: &str) -> String {
    format!("{PREFIX}{statefulset_uid}/{pod}")
}

const PREFIX: &str = "sts:";

/// Whether an owner reference of a pod (its `apiVersion`, `kind` and `controller`) names the
/// StatefulSet that controls the pod: the one whose UID the pod's parked record carries. Other
/// owners, and a StatefulSet that only owns the pod without controlling it, make no address
/// sticky.
pub fn controls_pod(api_version: &str, kind: &str, controller: Option<bool>) -> bool {
    controller == Some(true) && kind == "StatefulSet" && api_version == "apps/v1"
}

/// A parked record's handle, read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parked<'a> {
    /// The StatefulSet's UID.
    pub statefulset_uid: &'a str,
    /// The pod's name, `<StatefulSet name>-<ordinal>`.
    pub pod: &'a str,
}

/// The StatefulSet of a parked record's name as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatefulSetNow<'a> {
    /// `metadata.uid`.
    pub uid: &'a str,
    /// `spec.replicas` (Kubernetes' default is 1).
    pub replicas: u32,
    /// `spec.ordinals.start` (default 0).
    pub start: u32,
}

/// Why a parked record is released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unpark {
    /// No StatefulSet of that name has the record's UID.
    StatefulSetGone,
    /// The StatefulSet's ordinals no longer include the pod's.
    ScaledDown {
        /// The pod's ordinal.
        ordinal: u32,
        /// The StatefulSet's replicas.
        replicas: u32,
    },
    /// The pod name has no ordinal: no StatefulSet made it.
    NoOrdinal,
}

impl fmt::Display for Unpark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unpark::StatefulSetGone => f.write_str("its StatefulSet was deleted"),
            Unpark::ScaledDown { ordinal, replicas } => write!(
                f,
                "its StatefulSet was scaled to {replicas} replicas, below ordinal {ordinal}"
            ),
            Unpark::NoOrdinal => f.write_str("the pod name has no StatefulSet ordinal"),
        }
    }
}

impl<'a> Parked<'a> {
    /// Reads a handle; `None` when it is not a parked one (a pod's UID).
    pub fn parse(handle: &'a str) -> Option<Parked<'a>> {
        let (statefulset_uid, pod) = handle.strip_prefix(PREFIX)?.split_once('/')?;
        (!statefulset_uid.is_empty() && !pod.is_empty()).then_some(Parked {
            statefulset_uid,
            pod,
        })
    }

    /// The StatefulSet's name and the pod's ordinal, from the pod's name.
    pub fn statefulset(&self) -> Option<(&'a str, u32)> {
        let (name, ordinal) = self.pod.rsplit_once('-')?;
        // Ordinals are written without leading zeros.
        if name.is_empty() || (ordinal.len() > 1 && ordinal.starts_with('0')) {
            return None;
        }
        Some((name, ordinal.parse().ok()?))
    }

    /// Whether the record must be released, given the StatefulSet of its name as it is now
    /// (`None` when there is none).
    pub fn due(&self, now: Option<StatefulSetNow<'_>>) -> Option<Unpark> {
        let Some((_, ordinal)) = self.statefulset() else {
            return Some(Unpark::NoOrdinal);
        };
        let Some(sts) = now.filter(|s| s.uid == self.statefulset_uid) else {
            return Some(Unpark::StatefulSetGone);
        };
        let inside = ordinal >= sts.start && ordinal - sts.start < sts.replicas;
        (!inside).then_some(Unpark::ScaledDown {
            ordinal,
            replicas: sts.replicas,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parked_handle_reads_back_and_is_never_a_pod_uid() {
        let handle = parked_handle("5a1e-uid", "db-2");
        assert_eq!(handle, "sts:5a1e-uid/db-2");
        let parked = Parked::parse(&handle).unwrap_or_else(|| panic!("{handle}"));
        assert_eq!(parked.statefulset_uid, "5a1e-uid");
        assert_eq!(parked.statefulset(), Some(("db", 2)));
        for pod_uid in [
            "0d5c7c8e-3b0f-4c5e-9a51-2f4b9c1d7e21",
            "sts-uid",
            "sts:",
            "sts:x",
        ] {
            assert_eq!(Parked::parse(pod_uid), None, "{pod_uid}");
        }
    }

    #[test]
    fn only_the_controlling_apps_v1_statefulset_counts() {
        assert!(controls_pod("apps/v1", "StatefulSet", Some(true)));
        assert!(!controls_pod("apps/v1", "StatefulSet", Some(false)));
        assert!(!controls_pod("apps/v1", "StatefulSet", None));
        assert!(!controls_pod("apps/v1", "ReplicaSet", Some(true)));
        assert!(!controls_pod("apps/v1beta2", "StatefulSet", Some(true)));
    }

    #[test]
    fn released_when_the_statefulset_is_gone_or_scaled_below_the_ordinal() {
        let handle = parked_handle("u1", "web-db-3");
        let p = Parked::parse(&handle).unwrap_or_else(|| panic!("{handle}"));
        assert_eq!(p.statefulset(), Some(("web-db", 3)));
        let now = |uid, replicas, start| {
            Some(StatefulSetNow {
                uid,
                replicas,
                start,
            })
        };
        assert_eq!(p.due(now("u1", 4, 0)), None);
        assert_eq!(
            p.due(now("u1", 3, 0)),
            Some(Unpark::ScaledDown {
                ordinal: 3,
                replicas: 3
            })
        );
        // Ordinals starting at 2: 2, 3 with two replicas.
        assert_eq!(p.due(now("u1", 2, 2)), None);
        assert!(p.due(now("u1", 2, 4)).is_some());
        // Same name, another StatefulSet.
        assert_eq!(p.due(now("u2", 4, 0)), Some(Unpark::StatefulSetGone));
        assert_eq!(p.due(None), Some(Unpark::StatefulSetGone));
        let odd = parked_handle("u1", "db-03");
        assert_eq!(
            Parked::parse(&odd).and_then(|p| p.due(now("u1", 9, 0))),
            Some(Unpark::NoOrdinal)
        );
    }
}
