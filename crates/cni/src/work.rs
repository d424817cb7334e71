//! What ADD, CHECK and STATUS do once a client for the API server is at hand. The plugin's
//! direct path (a client built from the kubeconfig for one call) and the node agent (one
//! long-lived client for every call on the node) both run exactly this, so every rule, every
//! request and every error a pod's events can show has one home.

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use api::{FamilyAssignment, IPAMBlock, IPPool};
use ipnet::IpNet;
use kube::api::{Api, ListParams};

use crate::cluster::{self, ApiFailure, Cluster, Freshness, PodState};
use crate::config::PrefixStyle;
use crate::error::CniError;
use crate::log::Logger;
use crate::request::{Command, PodRef};
use crate::result::Granted;
use crate::text::echo;
use crate::verify::{self, Purpose, Subject};

/// Time for the API requests of one call, on top of ADD's wait for the assignment.
pub const REQUEST_BUDGET: Duration = Duration::from_secs(10);

/// One command that needs the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work<'a> {
    /// The pod's verified addresses.
    Add {
        /// The pod; its UID is always known (ADD refuses a call without it).
        pod: &'a PodRef,
        /// `CNI_CONTAINERID`, for logs.
        container: &'a str,
        /// How long to wait for the controller's assignment (`ipam.timeout`).
        wait: Duration,
        /// Whether each address's pool is read for its range (`"prefix": "pool"`).
        pool_prefix: bool,
    },
    /// Whether the pod still holds the addresses its container was given.
    Check {
        /// The pod.
        pod: &'a PodRef,
        /// `CNI_CONTAINERID`, for the error.
        container: &'a str,
        /// The addresses of `prevResult`, when given.
        prev_ips: Option<&'a [IpAddr]>,
    },
    /// Whether ADD can be served: the API server answers, the credentials work, the CRDs exist.
    Status,
}

impl<'a> Work<'a> {
    /// The work of a plugin call; `None` for the commands that need no API server (DEL, GC,
    /// VERSION).
    pub fn of(command: &'a Command) -> Option<Work<'a>> {
        match command {
            Command::Add(a) => Some(Work::Add {
                pod: &a.pod,
                container: &a.container_id,
                wait: a.conf.ipam.timeout,
                pool_prefix: a.conf.ipam.prefix == PrefixStyle::Pool,
            }),
            Command::Check(a) => Some(Work::Check {
                pod: &a.pod,
                container: &a.container_id,
                prev_ips: a.conf.prev_ips.as_deref(),
            }),
            Command::Status(_) => Some(Work::Status),
            Command::Del(_) | Command::Gc(_) | Command::Version => None,
        }
    }

    /// The pod, for ADD and CHECK.
    pub fn pod(&self) -> Option<&'a PodRef> {
        match self {
            Work::Add { pod, .. } | Work::Check { pod, .. } => Some(pod),
            Work::Status => None,
        }
    }

    /// The `CNI_COMMAND` word.
    pub fn verb(&self) -> &'static str {
        match self {
            Work::Add { .. } => "ADD",
            Work::Check { .. } => "CHECK",
            Work::Status => "STATUS",
        }
    }

    /// The hard deadline of the whole call: ADD's wait plus [`REQUEST_BUDGET`].
    pub fn budget(&self) -> Duration {
        match self {
            Work::Add { wait, .. } => *wait + REQUEST_BUDGET,
            _ => REQUEST_BUDGET,
        }
    }

    /// The error for "the API server cannot be reached in time" (`reason`): try again later
    /// for ADD and CHECK (code 11), not available for STATUS (50).
    pub fn unreachable(&self, reason: String) -> CniError {
        match self.pod() {
            Some(pod) => CniError::TryAgain {
                pod: pod.to_string(),
                reason,
            },
            None => CniError::NotAvailable { reason },
        }
    }

    /// The error for a client that could not be built (a kubeconfig that cannot be used):
    /// as it is for ADD and CHECK, "not available" for STATUS.
    pub fn unusable(&self, err: CniError) -> CniError {
        match self {
            Work::Status => CniError::NotAvailable {
                reason: err.to_string(),
            },
            _ => err,
        }
    }

    /// Runs `work` (building the client and then [`Work::perform`]) under `budget`; past it,
    /// the API server did not answer in time.
    pub async fn within(
        &self,
        budget: Duration,
        work: impl Future<Output = Result<Vec<Granted>, CniError>>,
    ) -> Result<Vec<Granted>, CniError> {
        match tokio::time::timeout(budget, work).await {
            Ok(outcome) => outcome,
            Err(_elapsed) => Err(self.unreachable(format!(
                "the API server did not answer within {}s",
                budget.as_secs_f64()
            ))),
        }
    }

    /// Does the work with `cluster`: ADD's granted addresses; nothing for CHECK and STATUS.
    ///
    /// Reads come from the API server's watch cache; a refusal (the pod missing, another UID,
    /// a block not recording the address, ...) is confirmed by doing the work again with reads
    /// from etcd, and that outcome is the answer. So a cache a few milliseconds behind costs a
    /// second round of reads, never a wrong refusal.
    pub async fn perform(&self, cluster: &Cluster, log: &Logger) -> Result<Vec<Granted>, CniError> {
        match self.perform_with(cluster, Freshness::Cached, log).await {
            Err(err) if err.is_refusal() => {
                log.debug(format_args!(
                    "confirming with the latest state from etcd before refusing: {err}"
                ));
                self.perform_with(cluster, Freshness::Latest, log).await
            }
            outcome => outcome,
        }
    }

    async fn perform_with(
        &self,
        cluster: &Cluster,
        fresh: Freshness,
        log: &Logger,
    ) -> Result<Vec<Granted>, CniError> {
        match *self {
            Work::Add {
                pod,
                wait,
                pool_prefix,
                ..
            } => add(cluster, pod, wait, pool_prefix, fresh, log).await,
            Work::Check {
                pod,
                container,
                prev_ips,
            } => check(cluster, pod, container, prev_ips, fresh, log)
                .await
                .map(|()| Vec::new()),
            Work::Status => status(cluster, log).await.map(|()| Vec::new()),
        }
    }
}

async fn add(
    cluster: &Cluster,
    pod: &PodRef,
    wait: Duration,
    pool_prefix: bool,
    fresh: Freshness,
    log: &Logger,
) -> Result<Vec<Granted>, CniError> {
    let (uid, assignment) = cluster::wait_for_assignment(cluster, pod, wait, fresh, log).await?;
    let who = Subject {
        pod,
        uid: &uid,
        log,
        fresh,
    };
    let mut granted = Vec::with_capacity(2);
    for assigned in assignment.addresses() {
        let block = verify::verify(cluster, &who, assigned, Purpose::Add).await?;
        let pool_cidr = if pool_prefix {
            log.debug(format_args!(
                "request: GET ippools/{}{}",
                assigned.pool,
                fresh.marker()
            ));
            Some(pool_cidr(cluster, &pod.to_string(), assigned, fresh).await?)
        } else {
            None
        };
        log.info(format_args!(
            "verified {} (pool {}, IPAMBlock {})",
            assigned.address, assigned.pool, assigned.block
        ));
        granted.push(Granted {
            address: assigned.address,
            pool: assigned.pool.clone(),
            block,
            pool_cidr,
        });
    }
    Ok(granted)
}

/// The range of the pool an address came from, for `"prefix": "pool"`.
async fn pool_cidr(
    cluster: &Cluster,
    pod: &str,
    assigned: &FamilyAssignment,
    fresh: Freshness,
) -> Result<IpNet, CniError> {
    let action = format!("read IPPool {}", assigned.pool);
    let pool = match Api::<IPPool>::all(cluster.client.clone())
        .get_with(&assigned.pool, &fresh.params())
        .await
    {
        Ok(pool) => pool,
        Err(kube::Error::Api(status)) if status.code == 404 => {
            return Err(CniError::Api {
                pod: pod.to_owned(),
                action,
                reason: "the pool does not exist".into(),
            });
        }
        Err(e) => return Err(cluster.failure(&e).into_error(pod, &action)),
    };
    pool.spec
        .cidr
        .parse::<IpNet>()
        .ok()
        .filter(|net| net.contains(&assigned.address))
        .ok_or_else(|| CniError::Api {
            pod: pod.to_owned(),
            action,
            reason: format!(
                "its cidr {:?} is not a range holding {}",
                echo(&pool.spec.cidr),
                assigned.address
            ),
        })
}

async fn check(
    cluster: &Cluster,
    pod: &PodRef,
    container: &str,
    prev_ips: Option<&[IpAddr]>,
    fresh: Freshness,
    log: &Logger,
) -> Result<(), CniError> {
    let meta = cluster::read_pod(cluster, pod, fresh, log)
        .await?
        .ok_or_else(|| CniError::PodNotFound {
            pod: pod.to_string(),
        })?;
    let (uid, assignment) = match cluster::judge(&meta, pod)? {
        PodState::Assigned { uid, assignment } => (uid, assignment),
        PodState::Pending { .. } => {
            return Err(CniError::AddressLost {
                pod: pod.to_string(),
                container: container.to_owned(),
                reason: "the pod has no address assigned".into(),
            });
        }
    };
    let who = Subject {
        pod,
        uid: &uid,
        log,
        fresh,
    };
    let purpose = Purpose::Check { container };
    for assigned in assignment.addresses() {
        if let Some(prev) = prev_ips
            && !prev.contains(&assigned.address)
        {
            return Err(purpose.refusal(&who, assigned, "prevResult does not list it".into()));
        }
        verify::verify(cluster, &who, assigned, purpose).await?;
        log.debug(format_args!(
            "{} is still recorded for the pod",
            assigned.address
        ));
    }
    Ok(())
}

async fn status(cluster: &Cluster, log: &Logger) -> Result<(), CniError> {
    log.debug(format_args!("request: LIST ipamblocks (limit 1)"));
    // Reading blocks proves the API server answers, the credentials work and the CRDs exist.
    Api::<IPAMBlock>::all(cluster.client.clone())
        .list_metadata(&ListParams::default().limit(1))
        .await
        .map(|_| ())
        .map_err(|e| CniError::NotAvailable {
            reason: format!(
                "cannot list IPAMBlocks: {}",
                match cluster.failure(&e) {
                    ApiFailure::NotFound => "the rangepool CRDs are not installed".into(),
                    ApiFailure::Transient(r) | ApiFailure::Refused(r) => r,
                }
            ),
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::request::{self, PodRef};

    #[test]
    fn deadlines_and_errors_follow_the_command() {
        let pod = PodRef {
            namespace: "shop".into(),
            name: "web".into(),
            uid: Some("u1".into()),
        };
        let add = Work::Add {
            pod: &pod,
            container: "c1",
            wait: Duration::from_secs(30),
            pool_prefix: false,
        };
        assert_eq!(add.budget(), Duration::from_secs(40));
        let late = add.unreachable("the API server did not answer within 40s".into());
        assert_eq!(late.code(), 11);
        assert_eq!(
            late.message(Some("shop/web")),
            "pod shop/web: the API server did not answer within 40s; try again later"
        );
        assert_eq!(Work::Status.budget(), REQUEST_BUDGET);
        assert_eq!(Work::Status.unreachable("gone".into()).code(), 50);
        let bad = CniError::kubeconfig(std::path::Path::new("/k"), "missing");
        assert_eq!(Work::Status.unusable(bad.clone()).code(), 50);
        assert_eq!(add.unusable(bad).code(), 107);
    }

    #[test]
    fn only_add_check_and_status_need_the_api_server() {
        let env = |verb: &'static str| {
            move |name: &str| match name {
                "CNI_COMMAND" => Some(verb.to_owned()),
                "CNI_CONTAINERID" => Some("c1".to_owned()),
                "CNI_IFNAME" => Some("eth0".to_owned()),
                "CNI_ARGS" => Some("K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web;K8S_POD_UID=u1".into()),
                _ => None,
            }
        };
        let conf = br#"{"cniVersion": "1.1.0", "name": "pods", "cni.dev/valid-attachments": [],
            "ipam": {"kubeconfig": "/k", "prefix": "pool", "timeout": 3}}"#;
        let parse = |verb| request::parse(&env(verb), || Ok(conf.to_vec())).unwrap();
        let add = parse("ADD");
        assert!(matches!(
            Work::of(&add),
            Some(Work::Add { container: "c1", wait, pool_prefix: true, .. })
                if wait == Duration::from_secs(3)
        ));
        let check = parse("CHECK");
        assert!(matches!(
            Work::of(&check),
            Some(Work::Check {
                container: "c1",
                prev_ips: None,
                ..
            })
        ));
        assert_eq!(Work::of(&parse("STATUS")), Some(Work::Status));
        assert_eq!(Work::of(&parse("DEL")), None);
        assert_eq!(Work::of(&parse("GC")), None);
    }
}
