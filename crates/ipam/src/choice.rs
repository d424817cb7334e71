//! Which pools a pod's address may come from, per address family.
//!
//! 1. The pod's annotation `cni.projectcalico.org/ipv4pools` (or `ipv6pools`): a JSON list of
//!    pool names or pool CIDRs, tried in order.
//! 2. Else the same key on the pod's namespace. The override is per key: a pod's `ipv4pools`
//!    does not hide its namespace's `ipv6pools`.
//! 3. Else every `Automatic` pool of the family that is allocatable, allows workloads, and whose
//!    `nodeSelector` matches the node's labels and `namespaceSelector` the namespace's labels,
//!    oldest first (then by name).
//!
//! A named pool (paths 1 and 2) must exist, be of the family, be allocatable, allow workloads,
//! and match both selectors — unlike Calico, which ignores the selectors of named pools, so
//! that a pool reserved to one namespace cannot be reached by naming it from another. Manual
//! pools are used only when named. Any problem with any named pool is an error; there is no
//! silent fallback. Only exhaustion moves on to the next pool, and that happens in the
//! allocator. A name no pool has gets the closest existing name as a suggestion
//! ([`suggest`]), so every place the reason is shown points at the typo.

mod suggest;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use thiserror::Error;

use crate::age::Age;
use crate::cidr::{self, CidrError, Family};
use crate::pool::Pool;
use crate::text::shown;
use crate::validate::{PoolVerdict, Reason};

/// Pod or namespace annotation: JSON list of IPv4 pool names or CIDRs, tried in order.
pub const IPV4_POOLS_ANNOTATION: &str = "cni.projectcalico.org/ipv4pools";
/// Pod or namespace annotation: JSON list of IPv6 pool names or CIDRs, tried in order.
pub const IPV6_POOLS_ANNOTATION: &str = "cni.projectcalico.org/ipv6pools";

/// The pool-list annotation key for a family.
pub fn annotation_key(family: Family) -> &'static str {
    match family {
        Family::V4 => IPV4_POOLS_ANNOTATION,
        Family::V6 => IPV6_POOLS_ANNOTATION,
    }
}

/// What pool choice needs to know about a pod, borrowed from the Kubernetes objects.
#[derive(Debug, Clone, Copy)]
pub struct PodFacts<'a> {
    /// The pod's namespace.
    pub namespace: &'a str,
    /// The pod's name.
    pub name: &'a str,
    /// The node the pod is bound to (for messages).
    pub node: &'a str,
    /// The pod's annotations as they were at creation.
    pub annotations: &'a BTreeMap<String, String>,
    /// The namespace's annotations.
    pub namespace_annotations: &'a BTreeMap<String, String>,
    /// The namespace's labels (for `namespaceSelector`).
    pub namespace_labels: &'a BTreeMap<String, String>,
    /// The node's labels (for `nodeSelector`).
    pub node_labels: &'a BTreeMap<String, String>,
}

/// An owned pod description with builder methods, for tests, examples and the offline planner:
/// `PodFixture::new("web").in_ns("payments").on_node("n1").annotated(key, value)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodFixture {
    /// The pod's namespace (default `default`).
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The node (default `node-1`).
    pub node: String,
    /// The pod's annotations.
    pub annotations: BTreeMap<String, String>,
    /// The namespace's annotations.
    pub namespace_annotations: BTreeMap<String, String>,
    /// The namespace's labels.
    pub namespace_labels: BTreeMap<String, String>,
    /// The node's labels.
    pub node_labels: BTreeMap<String, String>,
}

impl PodFixture {
    /// A pod named `name` in namespace `default` on node `node-1`, without labels or
    /// annotations.
    pub fn new(name: &str) -> PodFixture {
        PodFixture {
            namespace: "default".to_owned(),
            name: name.to_owned(),
            node: "node-1".to_owned(),
            ..PodFixture::default()
        }
    }

    /// Sets the namespace.
    pub fn in_ns(mut self, namespace: &str) -> Self {
        self.namespace = namespace.to_owned();
        self
    }

    /// Sets the node.
    pub fn on_node(mut self, node: &str) -> Self {
        self.node = node.to_owned();
        self
    }

    /// Adds a pod annotation.
    pub fn annotated(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Adds a namespace annotation.
    pub fn ns_annotated(mut self, key: &str, value: &str) -> Self {
        self.namespace_annotations
            .insert(key.to_owned(), value.to_owned());
        self
    }

    /// Adds a namespace label.
    pub fn ns_labelled(mut self, key: &str, value: &str) -> Self {
        self.namespace_labels
            .insert(key.to_owned(), value.to_owned());
        self
    }

    /// Adds a node label.
    pub fn node_labelled(mut self, key: &str, value: &str) -> Self {
        self.node_labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// The borrowed view [`PoolCatalog::choose`] takes.
    pub fn facts(&self) -> PodFacts<'_> {
        PodFacts {
            namespace: &self.namespace,
            name: &self.name,
            node: &self.node,
            annotations: &self.annotations,
            namespace_annotations: &self.namespace_annotations,
            namespace_labels: &self.namespace_labels,
            node_labels: &self.node_labels,
        }
    }
}

/// Where a pool list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The pod's own annotation.
    PodAnnotation,
    /// The pod's namespace's annotation.
    NamespaceAnnotation,
    /// No annotation: every matching automatic pool.
    Automatic,
}

/// The outcome of pool choice for one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Candidate pool names in the order to try them; feeds
    /// [`crate::allocator::Request::pools`].
    pub pools: Vec<String>,
    /// Where the list came from.
    pub source: Source,
}

/// Where a faulty annotation sits, for messages: "pod payments/web: annotation
/// cni.projectcalico.org/ipv4pools on the pod" (or "on namespace payments").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationSite {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The annotation key.
    pub key: &'static str,
    /// True when the annotation is the namespace's, false when it is the pod's.
    pub on_namespace: bool,
}

impl fmt::Display for AnnotationSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pod {}/{}: annotation {} on ",
            self.namespace, self.pod, self.key
        )?;
        if self.on_namespace {
            write!(f, "namespace {}", self.namespace)
        } else {
            f.write_str("the pod")
        }
    }
}

const EXAMPLE: &str = r#"write a JSON list of pool names, e.g. ["pool-1", "pool-2"]"#;

/// Why no candidate list could be given. Every message names the pod, and for annotation
/// problems the annotation key, whether it sits on the pod or its namespace, and the pool.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChoiceError {
    /// The annotation value is not JSON.
    #[error("{site} is not valid JSON ({detail}): {}; {EXAMPLE}", shown(value))]
    NotJson {
        /// Where.
        site: Box<AnnotationSite>,
        /// The value.
        value: String,
        /// The JSON parser's complaint.
        detail: String,
    },
    /// The annotation is JSON but not a list.
    #[error("{site} is not a list: {}; {EXAMPLE}", shown(value))]
    NotList {
        /// Where.
        site: Box<AnnotationSite>,
        /// The value.
        value: String,
    },
    /// The list holds something other than strings.
    #[error("{site}: entry {index} is not a string: {}; {EXAMPLE}", shown(value))]
    NotStrings {
        /// Where.
        site: Box<AnnotationSite>,
        /// 1-based position of the first offending entry.
        index: usize,
        /// The value.
        value: String,
    },
    /// The list is empty.
    #[error("{site} is an empty list; name at least one pool or remove the annotation")]
    Empty {
        /// Where.
        site: Box<AnnotationSite>,
    },
    /// One pool appears twice (by name or by name and CIDR).
    #[error("{site} names pool {pool} twice")]
    DuplicatePool {
        /// Where.
        site: Box<AnnotationSite>,
        /// The pool.
        pool: String,
    },
    /// No pool has that name.
    #[error(
        "{site} names pool {}, which does not exist{}",
        shown(pool),
        suggest::DidYouMean(suggestion)
    )]
    UnknownPool {
        /// Where.
        site: Box<AnnotationSite>,
        /// The name as written.
        pool: String,
        /// The existing pool whose name is closest to it, when it is close enough to be the
        /// one meant (a typo).
        suggestion: Option<String>,
    },
    /// An entry with `/` that is not a strictly masked CIDR.
    #[error(
        "{site} lists {}, which is neither a pool name nor a valid CIDR: {source}",
        shown(entry)
    )]
    BadCidr {
        /// Where.
        site: Box<AnnotationSite>,
        /// The entry as written.
        entry: String,
        /// What is wrong with it.
        source: CidrError,
    },
    /// No pool has that CIDR.
    #[error("{site} lists CIDR {cidr}, but no pool has exactly that range")]
    NoPoolWithCidr {
        /// Where.
        site: Box<AnnotationSite>,
        /// The CIDR.
        cidr: IpNet,
    },
    /// The pool is of the other family.
    #[error("{site} names pool {pool}, which is an {pool_family} pool; list it under {} instead", annotation_key(*pool_family))]
    WrongFamily {
        /// Where.
        site: Box<AnnotationSite>,
        /// The pool.
        pool: String,
        /// The pool's family.
        pool_family: Family,
    },
    /// The pool's spec is invalid.
    #[error("{site} names pool {pool}, which is invalid ({reason}): {message}")]
    PoolInvalid {
        /// Where.
        site: Box<AnnotationSite>,
        /// The pool.
        pool: String,
        /// The pool's condition reason.
        reason: Reason,
        /// The pool's condition message.
        message: String,
    },
    /// The pool is valid but not allocatable (disabled, overlapping, outside the pod CIDR...).
    #[error("{site} names pool {pool}, which is not allocatable ({reason}): {message}")]
    PoolNotAllocatable {
        /// Where.
        site: Box<AnnotationSite>,
        /// The pool.
        pool: String,
        /// The pool's condition reason.
        reason: Reason,
        /// The pool's condition message.
        message: String,
    },
    /// The pool's `allowedUses` lack `Workload`.
    #[error("{site} names pool {pool}, whose allowedUses ({uses}) do not include Workload")]
    NotForWorkloads {
        /// Where.
        site: Box<AnnotationSite>,
        /// The pool.
        pool: String,
        /// The pool's uses, comma-separated.
        uses: String,
    },
    /// The node's labels do not match the pool's `nodeSelector`.
    #[error("{site} names pool {pool}, whose nodeSelector {selector} does not match node {node}")]
    NodeSelectorMismatch {
        /// Where.
        site: Box<AnnotationSite>,
        /// The pool.
        pool: String,
        /// The selector.
        selector: String,
        /// The node.
        node: String,
    },
    /// The namespace's labels do not match the pool's `namespaceSelector`.
    #[error("{site} names pool {pool}, whose namespaceSelector {selector} does not match namespace {}", site.namespace)]
    NamespaceSelectorMismatch {
        /// Where.
        site: Box<AnnotationSite>,
        /// The pool.
        pool: String,
        /// The selector.
        selector: String,
    },
    /// No annotation and no automatic pool fits.
    #[error(
        "pod {namespace}/{pod}: no {family} pool is allocatable, Automatic, and matches node {node} and namespace {namespace}; name a pool in annotation {} or create a matching pool",
        annotation_key(*family)
    )]
    NoMatchingPool {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The node.
        node: String,
        /// The family.
        family: Family,
    },
}

impl ChoiceError {
    /// Short stable label for events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ChoiceError::NotJson { .. } => "AnnotationNotJSON",
            ChoiceError::NotList { .. } => "AnnotationNotList",
            ChoiceError::NotStrings { .. } => "AnnotationNotStrings",
            ChoiceError::Empty { .. } => "AnnotationEmpty",
            ChoiceError::DuplicatePool { .. } => "DuplicatePool",
            ChoiceError::UnknownPool { .. } => "UnknownPool",
            ChoiceError::BadCidr { .. } => "InvalidPoolCIDR",
            ChoiceError::NoPoolWithCidr { .. } => "UnknownPoolCIDR",
            ChoiceError::WrongFamily { .. } => "WrongFamily",
            ChoiceError::PoolInvalid { .. } => "PoolInvalid",
            ChoiceError::PoolNotAllocatable { .. } => "PoolNotAllocatable",
            ChoiceError::NotForWorkloads { .. } => "PoolNotForWorkloads",
            ChoiceError::NodeSelectorMismatch { .. } => "NodeSelectorMismatch",
            ChoiceError::NamespaceSelectorMismatch { .. } => "NamespaceSelectorMismatch",
            ChoiceError::NoMatchingPool { .. } => "NoMatchingPool",
        }
    }
}

/// Why a pool no longer admits a pod that holds one of its addresses: the pod's namespace or
/// node changed, or the pool did, since the address was given. Every message names the pod and
/// the pool. The pod keeps the address (it is in use); the drift is reported.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NotAdmitted {
    /// The pool is gone or its spec is invalid.
    #[error(
        "pod {namespace}/{pod} holds {address} of pool {pool}, which no longer exists or whose spec is invalid"
    )]
    PoolGone {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The pool.
        pool: String,
        /// The address.
        address: String,
    },
    /// The pod or its namespace has a pool annotation of the family that does not name the pool.
    #[error("pod {namespace}/{pod} holds {address} of pool {pool}, but annotation {key} on {} no longer names it", if *on_namespace { format!("namespace {namespace}") } else { "the pod".to_owned() })]
    NotNamed {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The pool.
        pool: String,
        /// The address.
        address: String,
        /// The annotation.
        key: &'static str,
        /// Whether the annotation is the namespace's.
        on_namespace: bool,
    },
    /// The pool is Manual and nothing names it.
    #[error(
        "pod {namespace}/{pod} holds {address} of pool {pool}, which is Manual, but neither the pod nor its namespace names it"
    )]
    ManualNotNamed {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The pool.
        pool: String,
        /// The address.
        address: String,
    },
    /// The pool's `allowedUses` no longer include `Workload`.
    #[error(
        "pod {namespace}/{pod} holds {address} of pool {pool}, whose allowedUses no longer include Workload"
    )]
    NotForWorkloads {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The pool.
        pool: String,
        /// The address.
        address: String,
    },
    /// A selector of the pool no longer matches the pod's node or namespace.
    #[error(
        "pod {namespace}/{pod} holds {address} of pool {pool}, whose {field} {selector} no longer matches its {subject}"
    )]
    SelectorMismatch {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The pool.
        pool: String,
        /// The address.
        address: String,
        /// `nodeSelector` or `namespaceSelector`.
        field: &'static str,
        /// The selector, as written.
        selector: String,
        /// What it does not match, e.g. `namespace shop`.
        subject: String,
    },
}

impl NotAdmitted {
    /// Short stable label for Events, findings and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            NotAdmitted::PoolGone { .. } => "PoolGone",
            NotAdmitted::NotNamed { .. } => "PoolNotNamed",
            NotAdmitted::ManualNotNamed { .. } => "ManualPoolNotNamed",
            NotAdmitted::NotForWorkloads { .. } => "PoolNotForWorkloads",
            NotAdmitted::SelectorMismatch { .. } => "SelectorMismatch",
        }
    }

    /// Why the pool does not admit the pod, without the address: fits a pod that asks for an
    /// address of the pool as well as one that holds one.
    pub fn requirement(&self) -> String {
        match self {
            NotAdmitted::PoolGone { pool, .. } => {
                format!("pool {pool} does not exist or its spec is invalid")
            }
            NotAdmitted::NotNamed {
                namespace,
                pool,
                key,
                on_namespace,
                ..
            } => format!(
                "annotation {key} on {} does not name pool {pool}",
                if *on_namespace {
                    format!("namespace {namespace}")
                } else {
                    "the pod".to_owned()
                }
            ),
            NotAdmitted::ManualNotNamed { pool, .. } => format!(
                "pool {pool} is Manual, and neither the pod nor its namespace names it in annotation cni.projectcalico.org/ipv4pools or ipv6pools"
            ),
            NotAdmitted::NotForWorkloads { pool, .. } => {
                format!("the allowedUses of pool {pool} do not include Workload")
            }
            NotAdmitted::SelectorMismatch {
                pool,
                field,
                selector,
                subject,
                ..
            } => {
                format!("the {field} {selector} of pool {pool} does not match the pod's {subject}")
            }
        }
    }

    /// The pool the pod holds an address of.
    pub fn pool(&self) -> &str {
        match self {
            NotAdmitted::PoolGone { pool, .. }
            | NotAdmitted::NotNamed { pool, .. }
            | NotAdmitted::ManualNotNamed { pool, .. }
            | NotAdmitted::NotForWorkloads { pool, .. }
            | NotAdmitted::SelectorMismatch { pool, .. } => pool,
        }
    }
}

/// One pool as pool choice sees it.
#[derive(Debug, Clone)]
struct Entry {
    verdict: PoolVerdict,
}

impl Entry {
    fn pool(&self) -> Option<&Pool> {
        self.verdict.pool.as_ref()
    }

    fn family(&self) -> Option<Family> {
        self.verdict.cidr.as_ref().map(Family::of)
    }
}

/// Every pool's verdict, indexed for pool choice. Build it once per change of the pool set.
#[derive(Debug, Clone, Default)]
pub struct PoolCatalog {
    /// Sorted oldest first, then by name and CIDR, so every lookup is independent of the order
    /// the verdicts came in.
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
    by_cidr: HashMap<IpNet, usize>,
}

impl PoolCatalog {
    /// Indexes the verdicts of [`crate::validate::validate_pools`].
    pub fn new(verdicts: &[PoolVerdict]) -> PoolCatalog {
        let mut entries: Vec<Entry> = verdicts
            .iter()
            .map(|v| Entry { verdict: v.clone() })
            .collect();
        let key = |e: &Entry| {
            let age = e
                .pool()
                .map_or_else(|| Age::new("", &e.verdict.name), |p| p.age().clone());
            (
                age,
                e.verdict.name.clone(),
                e.verdict.cidr.map(|c| c.to_string()),
            )
        };
        entries.sort_by_cached_key(key);
        let mut by_name = HashMap::new();
        let mut by_cidr = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            by_name.entry(e.verdict.name.clone()).or_insert(i);
            if let Some(c) = e.verdict.cidr {
                by_cidr.entry(c).or_insert(i);
            }
        }
        PoolCatalog {
            entries,
            by_name,
            by_cidr,
        }
    }

    /// The verdict of the pool with that name.
    pub fn verdict(&self, name: &str) -> Option<&PoolVerdict> {
        Some(&self.entries[*self.by_name.get(name)?].verdict)
    }

    /// The candidate pools for the pod's address of `family`; see the module docs.
    pub fn choose(&self, pod: &PodFacts<'_>, family: Family) -> Result<Choice, ChoiceError> {
        let key = annotation_key(family);
        let (value, source) = if let Some(v) = pod.annotations.get(key) {
            (v, Source::PodAnnotation)
        } else if let Some(v) = pod.namespace_annotations.get(key) {
            (v, Source::NamespaceAnnotation)
        } else {
            return self.automatic(pod, family);
        };
        let site = Box::new(AnnotationSite {
            namespace: pod.namespace.to_owned(),
            pod: pod.name.to_owned(),
            key,
            on_namespace: source == Source::NamespaceAnnotation,
        });
        let names = parse_list(value, &site)?;
        let mut seen = HashSet::with_capacity(names.len());
        let mut pools = Vec::with_capacity(names.len());
        for written in names {
            let entry = self.resolve(&written, &site)?;
            let name = &entry.verdict.name;
            if !seen.insert(name.clone()) {
                return Err(ChoiceError::DuplicatePool {
                    site,
                    pool: name.clone(),
                });
            }
            check_named(entry, pod, family, &site)?;
            pools.push(name.clone());
        }
        Ok(Choice { pools, source })
    }

    /// Whether pool `pool` still admits a pod that holds `address` from it, as pool choice
    /// would decide, whatever the pool's state: a disabled, full or overlapped pool still
    /// admits the pods it serves. The pod (or its namespace) must name the pool when it has a
    /// pool annotation of the pool's family, else the pool must be Automatic; the pool must allow
    /// workloads; both selectors must match.
    // The error is built only for a pod that drifted, and most callers only test it or turn
    // it into a message; boxing it would cost each of them for nothing.
    #[allow(clippy::result_large_err)]
    pub fn admits(
        &self,
        pod: &PodFacts<'_>,
        pool: &str,
        address: IpAddr,
    ) -> Result<(), NotAdmitted> {
        let gone = || NotAdmitted::PoolGone {
            namespace: pod.namespace.to_owned(),
            pod: pod.name.to_owned(),
            pool: pool.to_owned(),
            address: address.to_string(),
        };
        let entry = self
            .by_name
            .get(pool)
            .map(|&i| &self.entries[i])
            .ok_or_else(gone)?;
        let found = entry.pool().ok_or_else(gone)?;
        let family = found.family();
        let key = annotation_key(family);
        let named = if let Some(v) = pod.annotations.get(key) {
            Some((v, false))
        } else {
            pod.namespace_annotations.get(key).map(|v| (v, true))
        };
        let fields = |pool: &str| {
            (
                pod.namespace.to_owned(),
                pod.name.to_owned(),
                pool.to_owned(),
                address.to_string(),
            )
        };
        match named {
            Some((value, on_namespace)) => {
                let site = AnnotationSite {
                    namespace: pod.namespace.to_owned(),
                    pod: pod.name.to_owned(),
                    key,
                    on_namespace,
                };
                let listed = parse_list(value, &site).unwrap_or_default();
                let names_it = listed.iter().any(|w| {
                    self.resolve(w, &site)
                        .is_ok_and(|e| e.verdict.name == entry.verdict.name)
                });
                if !names_it {
                    let (namespace, pod, pool, address) = fields(pool);
                    return Err(NotAdmitted::NotNamed {
                        namespace,
                        pod,
                        pool,
                        address,
                        key,
                        on_namespace,
                    });
                }
            }
            None if found.is_manual() => {
                let (namespace, pod, pool, address) = fields(pool);
                return Err(NotAdmitted::ManualNotNamed {
                    namespace,
                    pod,
                    pool,
                    address,
                });
            }
            None => {}
        }
        if !found.allows_workloads() {
            let (namespace, pod, pool, address) = fields(pool);
            return Err(NotAdmitted::NotForWorkloads {
                namespace,
                pod,
                pool,
                address,
            });
        }
        for (field, selector, labels, what) in [
            (
                "nodeSelector",
                found.node_selector(),
                pod.node_labels,
                format!("node {}", pod.node),
            ),
            (
                "namespaceSelector",
                found.namespace_selector(),
                pod.namespace_labels,
                format!("namespace {}", pod.namespace),
            ),
        ] {
            if !selector.matches(labels) {
                let (namespace, pod, pool, address) = fields(pool);
                return Err(NotAdmitted::SelectorMismatch {
                    namespace,
                    pod,
                    pool,
                    address,
                    field,
                    selector: selector.to_string(),
                    subject: what,
                });
            }
        }
        Ok(())
    }

    fn resolve(&self, written: &str, site: &AnnotationSite) -> Result<&Entry, ChoiceError> {
        // Pool names are Kubernetes object names and cannot contain '/', so an entry with one
        // is meant as a CIDR.
        let index = if written.contains('/') {
            let cidr = cidr::parse_strict(written).map_err(|source| ChoiceError::BadCidr {
                site: Box::new(site.clone()),
                entry: written.to_owned(),
                source,
            })?;
            *self
                .by_cidr
                .get(&cidr)
                .ok_or_else(|| ChoiceError::NoPoolWithCidr {
                    site: Box::new(site.clone()),
                    cidr,
                })?
        } else {
            *self
                .by_name
                .get(written)
                .ok_or_else(|| ChoiceError::UnknownPool {
                    site: Box::new(site.clone()),
                    pool: written.to_owned(),
                    suggestion: suggest::closest(written, self.by_name.keys().map(String::as_str))
                        .map(str::to_owned),
                })?
        };
        Ok(&self.entries[index])
    }

    fn automatic(&self, pod: &PodFacts<'_>, family: Family) -> Result<Choice, ChoiceError> {
        let pools: Vec<String> = self
            .entries
            .iter()
            .filter(|e| e.verdict.allocatable())
            .filter_map(Entry::pool)
            .filter(|p| {
                p.family() == family
                    && !p.is_manual()
                    && p.allows_workloads()
                    && p.selects(pod.node_labels, pod.namespace_labels)
            })
            .map(|p| p.name().to_owned())
            .collect();
        if pools.is_empty() {
            return Err(ChoiceError::NoMatchingPool {
                namespace: pod.namespace.to_owned(),
                pod: pod.name.to_owned(),
                node: pod.node.to_owned(),
                family,
            });
        }
        Ok(Choice {
            pools,
            source: Source::Automatic,
        })
    }
}

/// Parses the annotation value into the written entries.
fn parse_list(value: &str, site: &AnnotationSite) -> Result<Vec<String>, ChoiceError> {
    let json: serde_json::Value =
        serde_json::from_str(value).map_err(|e| ChoiceError::NotJson {
            site: Box::new(site.clone()),
            value: value.to_owned(),
            detail: e.to_string(),
        })?;
    let serde_json::Value::Array(items) = json else {
        return Err(ChoiceError::NotList {
            site: Box::new(site.clone()),
            value: value.to_owned(),
        });
    };
    if items.is_empty() {
        return Err(ChoiceError::Empty {
            site: Box::new(site.clone()),
        });
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            serde_json::Value::String(s) => Ok(s),
            other => Err(ChoiceError::NotStrings {
                site: Box::new(site.clone()),
                index: i + 1,
                value: other.to_string(),
            }),
        })
        .collect()
}

/// Checks that a named pool may serve this pod.
fn check_named(
    entry: &Entry,
    pod: &PodFacts<'_>,
    family: Family,
    site: &AnnotationSite,
) -> Result<(), ChoiceError> {
    let name = || entry.verdict.name.clone();
    if let Some(pool_family) = entry.family()
        && pool_family != family
    {
        return Err(ChoiceError::WrongFamily {
            site: Box::new(site.clone()),
            pool: name(),
            pool_family,
        });
    }
    let Some(pool) = entry.pool() else {
        return Err(ChoiceError::PoolInvalid {
            site: Box::new(site.clone()),
            pool: name(),
            reason: entry.verdict.reason,
            message: entry.verdict.message.clone(),
        });
    };
    if !entry.verdict.allocatable() {
        return Err(ChoiceError::PoolNotAllocatable {
            site: Box::new(site.clone()),
            pool: name(),
            reason: entry.verdict.reason,
            message: entry.verdict.message.clone(),
        });
    }
    if !pool.allows_workloads() {
        let uses: Vec<&str> = pool.allowed_uses().iter().map(|u| u.as_str()).collect();
        return Err(ChoiceError::NotForWorkloads {
            site: Box::new(site.clone()),
            pool: name(),
            uses: uses.join(", "),
        });
    }
    if !pool.node_selector().matches(pod.node_labels) {
        return Err(ChoiceError::NodeSelectorMismatch {
            site: Box::new(site.clone()),
            pool: name(),
            selector: pool.node_selector().to_string(),
            node: pod.node.to_owned(),
        });
    }
    if !pool.namespace_selector().matches(pod.namespace_labels) {
        return Err(ChoiceError::NamespaceSelectorMismatch {
            site: Box::new(site.clone()),
            pool: name(),
            selector: pool.namespace_selector().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
