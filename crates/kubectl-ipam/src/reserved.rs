//! Which addresses no pod may be given now, and what keeps each back: an IPReservation, or the
//! edge rule of a pool with `reserveEdgeAddresses`.
//!
//! The rules are the core's and the controller's: the reservations are read as the controller
//! reads them ([`api::IPReservationSpec::ranges`], entries that are not addresses or ranges
//! ignored), handed to the core's allocator ([`ipam::allocator::Allocator::set_reserved`]),
//! which answers whether an address is reserved ([`ipam::allocator::Allocator::is_reserved`])
//! and how many addresses of each pool are ([`ipam::allocator::Usage::reserved`]). This module
//! only names what reserves an address, with the same core pieces: the ranges as parsed, and
//! [`ipam::pool::Pool::is_reserved_edge`].

use std::net::IpAddr;

use api::{IPPool, IPReservation};
use ipam::planner::Planner;
use ipam::pool::{EdgeAddresses, Pool, PoolInput};
use ipam::validate::PoolVerdict;
use ipnet::IpNet;
use kube::ResourceExt;
use serde::{Deserialize, Serialize};

/// What keeps an address from every pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by")]
pub enum ReservedBy {
    /// An entry of an IPReservation.
    IPReservation {
        /// The reservation's name.
        name: String,
        /// Its entry that holds the address (a single address is a host range).
        range: IpNet,
    },
    /// A pool's `reserveEdgeAddresses`.
    EdgeAddress {
        /// The pool.
        pool: String,
        /// `Pool` (its first and last address) or `Blocks` (those of every block).
        rule: String,
    },
}

impl std::fmt::Display for ReservedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReservedBy::IPReservation { name, range } => {
                write!(f, "IPReservation {name} ({})", crate::text::range(range))
            }
            ReservedBy::EdgeAddress { pool, rule } => {
                let what = if rule == EdgeAddresses::Blocks.as_str() {
                    "the first or last address of one of its blocks"
                } else {
                    "its first or last address"
                };
                write!(f, "pool {pool}'s reserveEdgeAddresses: {rule} ({what})")
            }
        }
    }
}

/// One IPReservation as the controller reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// Its name.
    pub name: String,
    /// The ranges it keeps back.
    pub ranges: Vec<IpNet>,
    /// Entries the controller ignores (not an address or a range), each with why.
    pub invalid: Vec<String>,
}

/// The cluster's reservations and pools, loaded into the core.
#[derive(Debug)]
pub struct Reserved {
    planner: Planner,
    reservations: Vec<Reservation>,
    /// The pools whose spec the core reads, by name.
    pools: Vec<Pool>,
}

impl Reserved {
    /// The reservations and the pools' edge rules, as the controller reads them.
    pub fn new(pools: &[IPPool], reservations: &[IPReservation]) -> Reserved {
        let inputs: Vec<PoolInput> = pools.iter().map(IPPool::to_input).collect();
        let mut planner = Planner::new(false);
        // Whether a pool is allocatable does not matter here: only its range and rules.
        planner.set_pools(&inputs, None);
        let mut reservations: Vec<Reservation> = reservations
            .iter()
            .map(|r| {
                let (ranges, invalid) = r.spec.ranges();
                Reservation {
                    name: r.name_any(),
                    ranges,
                    invalid,
                }
            })
            .collect();
        reservations.sort_by(|a, b| a.name.cmp(&b.name));
        planner.allocator_mut().set_reserved(
            reservations
                .iter()
                .flat_map(|r| r.ranges.iter().copied())
                .collect(),
        );
        let mut pools: Vec<Pool> = planner
            .verdicts()
            .iter()
            .filter_map(|v| v.pool.clone())
            .collect();
        pools.sort_by(|a, b| a.name().cmp(b.name()));
        Reserved {
            planner,
            reservations,
            pools,
        }
    }

    /// The core's verdict on each pool, in the order of the pools given to [`Reserved::new`].
    pub fn verdicts(&self) -> &[PoolVerdict] {
        self.planner.verdicts()
    }

    /// The reservations, by name.
    pub fn reservations(&self) -> &[Reservation] {
        &self.reservations
    }

    /// Whether no pod may be given `address` now (the core's rule).
    pub fn is_reserved(&self, address: IpAddr) -> bool {
        self.planner.allocator().is_reserved(address)
    }

    /// What keeps `address` from every pod; empty when nothing does.
    pub fn by(&self, address: IpAddr) -> Vec<ReservedBy> {
        if !self.is_reserved(address) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for r in &self.reservations {
            out.extend(
                r.ranges
                    .iter()
                    .filter(|range| range.contains(&address))
                    .map(|range| ReservedBy::IPReservation {
                        name: r.name.clone(),
                        range: *range,
                    }),
            );
        }
        for p in &self.pools {
            if let Some(rule) = p.reserve_edges()
                && p.cidr().contains(&address)
                && p.is_reserved_edge(address)
            {
                out.push(ReservedBy::EdgeAddress {
                    pool: p.name().to_owned(),
                    rule: rule.as_str().to_owned(),
                });
            }
        }
        out
    }

    /// How many addresses of pool `pool` no pod is given (the core's count), `None` when its
    /// spec does not parse.
    pub fn count_in(&self, pool: &str) -> Option<u128> {
        Some(self.planner.allocator().usage(pool)?.reserved)
    }

    /// How many addresses of each pool `reservation` keeps back, by pool name; pools it does not
    /// touch are left out.
    pub fn per_pool(&self, reservation: &Reservation) -> Vec<(String, u128)> {
        self.pools
            .iter()
            .map(|p| {
                (
                    p.name().to_owned(),
                    ipam::cidr::covered(&p.cidr(), &reservation.ranges),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use api::{IPPoolSpec, IPReservationSpec};

    use super::*;

    fn pool(name: &str, cidr: &str, edges: Option<&str>) -> IPPool {
        IPPool::new(
            name,
            IPPoolSpec {
                cidr: cidr.into(),
                block_size: Some(28),
                reserve_edge_addresses: edges.map(str::to_owned),
                ..Default::default()
            },
        )
    }

    fn reservation(name: &str, entries: &[&str]) -> IPReservation {
        IPReservation::new(
            name,
            IPReservationSpec {
                reserved_cidrs: entries.iter().map(|e| (*e).to_owned()).collect(),
            },
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn reserved() -> Reserved {
        Reserved::new(
            &[
                pool("general", "10.244.0.0/24", None),
                pool("edges", "10.244.1.0/24", Some("Blocks")),
                pool("whole", "10.244.2.0/24", Some("Pool")),
            ],
            &[
                reservation("appliances", &["10.244.0.1", "10.244.0.240/28", "junk"]),
                reservation("also", &["10.244.0.1"]),
            ],
        )
    }

    #[test]
    fn an_address_is_reserved_by_each_reservation_and_edge_rule_that_covers_it() {
        let r = reserved();
        assert_eq!(
            r.by(ip("10.244.0.1")),
            [
                ReservedBy::IPReservation {
                    name: "also".into(),
                    range: "10.244.0.1/32".parse().unwrap()
                },
                ReservedBy::IPReservation {
                    name: "appliances".into(),
                    range: "10.244.0.1/32".parse().unwrap()
                },
            ]
        );
        assert_eq!(
            r.by(ip("10.244.1.16")),
            [ReservedBy::EdgeAddress {
                pool: "edges".into(),
                rule: "Blocks".into()
            }]
        );
        assert_eq!(r.by(ip("10.244.2.0")).len(), 1);
        // Not the pool's edge for Pool, only its first and last address.
        assert!(r.by(ip("10.244.2.16")).is_empty());
        assert!(!r.is_reserved(ip("10.244.2.16")));
        assert!(r.by(ip("10.244.0.2")).is_empty());
        let text = r.by(ip("10.244.1.31"))[0].to_string();
        assert!(
            text.contains("pool edges") && text.contains("one of its blocks"),
            "{text}"
        );
    }

    #[test]
    fn counts_per_pool_are_the_cores() {
        let r = reserved();
        // 10.244.0.1 and 10.244.0.240/28 (16), counted once however many reserve them.
        assert_eq!(r.count_in("general"), Some(17));
        // 16 blocks of /28, two edges each.
        assert_eq!(r.count_in("edges"), Some(32));
        assert_eq!(r.count_in("whole"), Some(2));
        assert_eq!(r.count_in("nope"), None);
        let appliances = &r.reservations()[1];
        assert_eq!(appliances.name, "appliances");
        assert_eq!(appliances.invalid.len(), 1);
        assert_eq!(r.per_pool(appliances), [("general".to_owned(), 17)]);
    }
}
