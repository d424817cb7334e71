//! The assignment the controller records on a pod, as annotations, and how it is read back.
//!
//! The controller writes these annotations only after the IPAMBlock records the address, and the
//! CNI plugin trusts them only after checking that block: a value a user wrote is never trusted.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::keys::{
    ASSIGNED_BLOCKS, ASSIGNED_IPV4, ASSIGNED_IPV6, ASSIGNED_POOLS, ASSIGNMENT_ERROR,
};

/// One address of a pod with where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FamilyAssignment {
    /// The address, e.g. `10.244.8.3`.
    pub address: IpAddr,
    /// The IPPool it was allocated from.
    pub pool: String,
    /// The name of the IPAMBlock that records it.
    pub block: String,
}

/// What the pod annotations say about a pod's addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assignment {
    /// The IPv4 address, if one was assigned.
    pub ipv4: Option<FamilyAssignment>,
    /// The IPv6 address, if one was assigned.
    pub ipv6: Option<FamilyAssignment>,
    /// Why the pod could not get an address, if the controller gave up on it for now.
    pub error: Option<String>,
}

/// The annotations are present but cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AssignmentError {
    /// An address annotation is not an IP address of its family.
    #[error("annotation {key} holds {value:?}, which is not an {family} address")]
    BadAddress {
        /// The annotation key.
        key: &'static str,
        /// The value found.
        value: String,
        /// `IPv4` or `IPv6`.
        family: &'static str,
    },
    /// The pools or blocks annotation is not a JSON object of strings keyed by family.
    #[error(
        "annotation {key} holds {value:?}, which is not a JSON object such as {{\"ipv4\":\"...\"}}"
    )]
    BadMap {
        /// The annotation key.
        key: &'static str,
        /// The value found.
        value: String,
    },
    /// An address annotation is present without the pool or block it came from.
    #[error("annotation {key} names no {what} for the {family} address")]
    Missing {
        /// The annotation key that lacks the entry.
        key: &'static str,
        /// `pool` or `block`.
        what: &'static str,
        /// `ipv4` or `ipv6`.
        family: &'static str,
    },
}

impl AssignmentError {
    /// Short stable label for metrics and events.
    pub fn reason(&self) -> &'static str {
        "MalformedAssignment"
    }
}

#[derive(Serialize, Default)]
struct PerFamily {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ipv4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ipv6: Option<String>,
}

impl Assignment {
    /// Reads the assignment from a pod's annotations. `Ok` with no addresses and no error when
    /// the controller has written nothing yet.
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
    ) -> Result<Self, AssignmentError> {
        let pools = per_family(annotations, ASSIGNED_POOLS)?;
        let blocks = per_family(annotations, ASSIGNED_BLOCKS)?;
        let ipv4 = family(annotations, ASSIGNED_IPV4, "ipv4", pools.ipv4, blocks.ipv4)?;
        let ipv6 = family(annotations, ASSIGNED_IPV6, "ipv6", pools.ipv6, blocks.ipv6)?;
        Ok(Assignment {
            ipv4,
            ipv6,
            error: annotations.get(ASSIGNMENT_ERROR).cloned(),
        })
    }

    /// The annotations that record this assignment. Keys of absent parts map to `None`, so that
    /// a merge patch built from them removes stale values.
    pub fn to_annotations(&self) -> BTreeMap<&'static str, Option<String>> {
        let mut pools = PerFamily::default();
        let mut blocks = PerFamily::default();
        let mut out = BTreeMap::new();
        for (key, slot, pool, block) in [
            (ASSIGNED_IPV4, &self.ipv4, &mut pools.ipv4, &mut blocks.ipv4),
            (ASSIGNED_IPV6, &self.ipv6, &mut pools.ipv6, &mut blocks.ipv6),
        ] {
            out.insert(key, slot.as_ref().map(|a| a.address.to_string()));
            *pool = slot.as_ref().map(|a| a.pool.clone());
            *block = slot.as_ref().map(|a| a.block.clone());
        }
        let any = self.ipv4.is_some() || self.ipv6.is_some();
        out.insert(ASSIGNED_POOLS, any.then(|| json_string(&pools)));
        out.insert(ASSIGNED_BLOCKS, any.then(|| json_string(&blocks)));
        out.insert(ASSIGNMENT_ERROR, self.error.clone());
        out
    }

    /// The addresses in family order (IPv4 first).
    pub fn addresses(&self) -> impl Iterator<Item = &FamilyAssignment> {
        self.ipv4.iter().chain(self.ipv6.iter())
    }
}

fn json_string(value: &PerFamily) -> String {
    // Serializing two optional strings cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

fn per_family(
    annotations: &BTreeMap<String, String>,
    key: &'static str,
) -> Result<PerFamily, AssignmentError> {
    match annotations.get(key) {
        None => Ok(PerFamily::default()),
        Some(value) => {
            let bad = || AssignmentError::BadMap {
                key,
                value: value.clone(),
            };
            // Through a map rather than the struct: serde would also accept a JSON list.
            let mut map: BTreeMap<String, String> =
                serde_json::from_str(value).map_err(|_| bad())?;
            let out = PerFamily {
                ipv4: map.remove("ipv4"),
                ipv6: map.remove("ipv6"),
            };
            if map.is_empty() { Ok(out) } else { Err(bad()) }
        }
    }
}

fn family(
    annotations: &BTreeMap<String, String>,
    key: &'static str,
    family: &'static str,
    pool: Option<String>,
    block: Option<String>,
) -> Result<Option<FamilyAssignment>, AssignmentError> {
    let Some(value) = annotations.get(key) else {
        return Ok(None);
    };
    let address: IpAddr = value.parse().map_err(|_| bad_address(key, value, family))?;
    if address.is_ipv4() != (family == "ipv4") {
        return Err(bad_address(key, value, family));
    }
    let pool = pool.ok_or(AssignmentError::Missing {
        key: ASSIGNED_POOLS,
        what: "pool",
        family,
    })?;
    let block = block.ok_or(AssignmentError::Missing {
        key: ASSIGNED_BLOCKS,
        what: "block",
        family,
    })?;
    Ok(Some(FamilyAssignment {
        address,
        pool,
        block,
    }))
}

fn bad_address(key: &'static str, value: &str, family: &'static str) -> AssignmentError {
    AssignmentError::BadAddress {
        key,
        value: value.to_owned(),
        family: if family == "ipv4" { "IPv4" } else { "IPv6" },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn v4(address: &str) -> FamilyAssignment {
        FamilyAssignment {
            address: address.parse().unwrap(),
            pool: "payments".into(),
            block: "10-244-8-0-26".into(),
        }
    }

    #[test]
    fn nothing_written_yet_reads_as_empty() {
        let got = Assignment::from_annotations(&annotations(&[("other", "x")])).unwrap();
        assert_eq!(got, Assignment::default());
    }

    #[test]
    fn round_trips_through_annotations() {
        let want = Assignment {
            ipv4: Some(v4("10.244.8.3")),
            ipv6: None,
            error: None,
        };
        let written: BTreeMap<String, String> = want
            .to_annotations()
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect();
        assert_eq!(
            written.get(ASSIGNED_POOLS).map(String::as_str),
            Some(r#"{"ipv4":"payments"}"#)
        );
        assert_eq!(Assignment::from_annotations(&written).unwrap(), want);
    }

    #[test]
    fn absent_parts_are_removed_by_the_patch() {
        let only_error = Assignment {
            error: Some("no pool".into()),
            ..Default::default()
        };
        let written = only_error.to_annotations();
        assert_eq!(written[ASSIGNED_IPV4], None);
        assert_eq!(written[ASSIGNED_POOLS], None);
        assert_eq!(written[ASSIGNMENT_ERROR].as_deref(), Some("no pool"));
    }

    #[test]
    fn malformed_values_are_errors_not_panics() {
        let cases = [
            annotations(&[(ASSIGNED_IPV4, "not-an-ip")]),
            annotations(&[(ASSIGNED_IPV4, "fd00::1")]),
            annotations(&[(ASSIGNED_IPV6, "10.0.0.1")]),
            annotations(&[(ASSIGNED_POOLS, "[\"a\"]")]),
            annotations(&[(ASSIGNED_BLOCKS, "{\"ipv5\":\"x\"}")]),
            annotations(&[(ASSIGNED_IPV4, "10.0.0.1")]),
            annotations(&[
                (ASSIGNED_IPV4, "10.0.0.1"),
                (ASSIGNED_POOLS, r#"{"ipv4":"p"}"#),
            ]),
        ];
        for case in cases {
            let err = Assignment::from_annotations(&case).unwrap_err();
            assert_eq!(err.reason(), "MalformedAssignment", "{case:?}");
            assert!(err.to_string().contains("rangepool.dev/"), "{err}");
        }
    }
}
