//! The resource registry: built-in kinds and the resources that CustomResourceDefinitions add.
//! One entry per served group/version/resource; several entries may share one storage
//! (a CRD's versions, or core/v1 and events.k8s.io/v1 Events).

use std::sync::Arc;

use serde_json::Value;

/// Where objects live: (group, resource) of the storage.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageKey {
    /// API group, "" for core
    pub group: String,
    /// plural resource name
    pub resource: String,
}

impl StorageKey {
    /// Build one.
    pub fn new(group: &str, resource: &str) -> Self {
        StorageKey {
            group: group.to_string(),
            resource: resource.to_string(),
        }
    }
}

/// Built-in kinds that get typed decoding and kind-specific behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// core/v1 Pod
    Pod,
    /// core/v1 Namespace
    Namespace,
    /// core/v1 Node
    Node,
    /// core/v1 Event
    Event,
    /// events.k8s.io/v1 Event (a view of the core Events storage)
    EventV1,
    /// core/v1 ConfigMap
    ConfigMap,
    /// core/v1 Secret
    Secret,
    /// core/v1 ServiceAccount
    ServiceAccount,
    /// coordination.k8s.io/v1 Lease
    Lease,
    /// apiextensions.k8s.io/v1 CustomResourceDefinition
    Crd,
    /// apps/v1 Deployment (stored and served only: no controller acts on it)
    Deployment,
    /// apps/v1 DaemonSet (stored and served only)
    DaemonSet,
    /// apps/v1 StatefulSet (stored and served only)
    StatefulSet,
    /// core/v1 Service (stored and served only; a cluster IP is assigned)
    Service,
    /// rbac.authorization.k8s.io/v1 ClusterRole (stored, never enforced)
    ClusterRole,
    /// rbac.authorization.k8s.io/v1 ClusterRoleBinding (stored, never enforced)
    ClusterRoleBinding,
    /// rbac.authorization.k8s.io/v1 Role (stored, never enforced)
    Role,
    /// rbac.authorization.k8s.io/v1 RoleBinding (stored, never enforced)
    RoleBinding,
}

/// One served resource at one group/version.
#[derive(Debug, Clone)]
pub struct ResourceDef {
    /// group, "" for core
    pub group: String,
    /// version served here
    pub version: String,
    /// plural
    pub resource: String,
    /// singular
    pub singular: String,
    /// Kind
    pub kind: String,
    /// namespaced or cluster scoped
    pub namespaced: bool,
    /// short names for kubectl
    pub short_names: Vec<String>,
    /// categories (e.g. `all`)
    pub categories: Vec<String>,
    /// whether `/status` is a subresource (status isolated from main writes)
    pub status_subresource: bool,
    /// storage of the objects
    pub storage: StorageKey,
    /// typed kind, when built in
    pub builtin: Option<Builtin>,
    /// CRD `openAPIV3Schema` of this version
    pub schema: Option<Arc<Value>>,
    /// its CEL rules, compiled once per CRD change
    pub cel: Option<Arc<kube_cel::CompiledSchema>>,
    /// CRD `additionalPrinterColumns` of this version
    pub printer_columns: Vec<Value>,
    /// CRD `selectableFields` json paths (without the leading dot)
    pub selectable_fields: Vec<String>,
    /// whether a CRD is being deleted (creates refused)
    pub terminating: bool,
}

impl ResourceDef {
    /// `v1` or `group/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Field labels a field selector may use.
    pub fn field_labels(&self) -> Vec<&str> {
        let mut f: Vec<&str> = vec!["metadata.name", "metadata.namespace"];
        match self.builtin {
            Some(Builtin::Pod) => f.extend([
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ]),
            Some(Builtin::Node) => f.push("spec.unschedulable"),
            Some(Builtin::Namespace) => f.push("status.phase"),
            Some(Builtin::Secret) => f.push("type"),
            Some(Builtin::Event) => f.extend([
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ]),
            Some(Builtin::EventV1) => f.extend([
                "regarding.kind",
                "regarding.namespace",
                "regarding.name",
                "regarding.uid",
                "reason",
                "reportingController",
                "type",
            ]),
            _ => {}
        }
        f.extend(self.selectable_fields.iter().map(String::as_str));
        f
    }

    /// Whether metadata.generation is maintained for this resource.
    pub fn tracks_generation(&self) -> bool {
        matches!(
            self.builtin,
            None | Some(Builtin::Pod)
                | Some(Builtin::Crd)
                | Some(Builtin::Deployment)
                | Some(Builtin::DaemonSet)
                | Some(Builtin::StatefulSet)
        )
    }
}

fn builtin(
    group: &str,
    resource: &str,
    kind: &str,
    namespaced: bool,
    short: &[&str],
    status: bool,
    b: Builtin,
) -> ResourceDef {
    ResourceDef {
        group: group.to_string(),
        version: "v1".to_string(),
        resource: resource.to_string(),
        singular: kind.to_lowercase(),
        kind: kind.to_string(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: if matches!(
            b,
            Builtin::Pod
                | Builtin::Service
                | Builtin::Deployment
                | Builtin::DaemonSet
                | Builtin::StatefulSet
        ) {
            vec!["all".to_string()]
        } else {
            Vec::new()
        },
        status_subresource: status,
        storage: StorageKey::new(group, resource),
        builtin: Some(b),
        schema: None,
        cel: None,
        printer_columns: Vec::new(),
        selectable_fields: Vec::new(),
        terminating: false,
    }
}

/// The built-in resources.
pub fn builtins() -> Vec<ResourceDef> {
    let mut events_v1 = builtin(
        "events.k8s.io",
        "events",
        "Event",
        true,
        &["ev"],
        false,
        Builtin::EventV1,
    );
    events_v1.storage = StorageKey::new("", "events");
    vec![
        builtin("", "pods", "Pod", true, &["po"], true, Builtin::Pod),
        builtin(
            "",
            "namespaces",
            "Namespace",
            false,
            &["ns"],
            true,
            Builtin::Namespace,
        ),
        builtin("", "nodes", "Node", false, &["no"], true, Builtin::Node),
        builtin("", "events", "Event", true, &["ev"], false, Builtin::Event),
        builtin(
            "",
            "configmaps",
            "ConfigMap",
            true,
            &["cm"],
            false,
            Builtin::ConfigMap,
        ),
        builtin("", "secrets", "Secret", true, &[], false, Builtin::Secret),
        builtin(
            "",
            "serviceaccounts",
            "ServiceAccount",
            true,
            &["sa"],
            false,
            Builtin::ServiceAccount,
        ),
        events_v1,
        builtin(
            "coordination.k8s.io",
            "leases",
            "Lease",
            true,
            &[],
            false,
            Builtin::Lease,
        ),
        builtin(
            "",
            "services",
            "Service",
            true,
            &["svc"],
            true,
            Builtin::Service,
        ),
        builtin(
            "apps",
            "deployments",
            "Deployment",
            true,
            &["deploy"],
            true,
            Builtin::Deployment,
        ),
        builtin(
            "apps",
            "daemonsets",
            "DaemonSet",
            true,
            &["ds"],
            true,
            Builtin::DaemonSet,
        ),
        builtin(
            "apps",
            "statefulsets",
            "StatefulSet",
            true,
            &["sts"],
            true,
            Builtin::StatefulSet,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "clusterroles",
            "ClusterRole",
            false,
            &[],
            false,
            Builtin::ClusterRole,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            &[],
            false,
            Builtin::ClusterRoleBinding,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "roles",
            "Role",
            true,
            &[],
            false,
            Builtin::Role,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "rolebindings",
            "RoleBinding",
            true,
            &[],
            false,
            Builtin::RoleBinding,
        ),
        builtin(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            true,
            Builtin::Crd,
        ),
    ]
}

/// Kubernetes version priority: GA > beta > alpha > other; higher numbers first.
pub fn version_priority(v: &str) -> (u8, u32, u32, String) {
    let parse = |s: &str| -> Option<(u32, u8, u32)> {
        let rest = s.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: u32 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((major, 3, 0));
        }
        for (pfx, rank) in [("beta", 2u8), ("alpha", 1u8)] {
            if let Some(n) = tail.strip_prefix(pfx) {
                let minor: u32 = n.parse().ok()?;
                return Some((major, rank, minor));
            }
        }
        None
    };
    match parse(v) {
        // sort ascending = most preferred first
        Some((major, rank, minor)) => (3 - rank, u32::MAX - major, u32::MAX - minor, String::new()),
        None => (4, 0, 0, v.to_string()),
    }
}

/// Resource definitions served for one CRD object (one per served version).
pub fn from_crd(crd: &Value) -> Vec<ResourceDef> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default().to_string();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default().to_string();
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    let singular = names["singular"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let namespaced = spec["scope"].as_str() == Some("Namespaced");
    let terminating = crd.pointer("/metadata/deletionTimestamp").is_some();
    let mut out = Vec::new();
    for v in spec["versions"].as_array().into_iter().flatten() {
        if v["served"].as_bool() != Some(true) {
            continue;
        }
        let schema = v.pointer("/schema/openAPIV3Schema").cloned().map(Arc::new);
        let selectable = v["selectableFields"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| {
                        f["jsonPath"]
                            .as_str()
                            .map(|p| p.trim_start_matches('.').to_string())
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(ResourceDef {
            group: group.clone(),
            version: v["name"].as_str().unwrap_or_default().to_string(),
            resource: plural.clone(),
            singular: singular.clone(),
            kind: kind.clone(),
            namespaced,
            short_names: strs(&names["shortNames"]),
            categories: strs(&names["categories"]),
            status_subresource: v.pointer("/subresources/status").is_some(),
            storage: StorageKey::new(&group, &plural),
            builtin: None,
            cel: schema
                .as_deref()
                .map(|s| Arc::new(kube_cel::compile_schema(s))),
            schema,
            printer_columns: v["additionalPrinterColumns"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            selectable_fields: selectable,
            terminating,
        });
    }
    out.sort_by_key(|d| version_priority(&d.version));
    out
}

/// All served resources, rebuilt when CRDs change.
#[derive(Debug, Clone)]
pub struct Registry {
    defs: Vec<Arc<ResourceDef>>,
}

impl Registry {
    /// From builtins plus the given CRD objects.
    pub fn build<'a>(crds: impl Iterator<Item = &'a Value>) -> Self {
        let mut defs: Vec<Arc<ResourceDef>> = builtins().into_iter().map(Arc::new).collect();
        for crd in crds {
            defs.extend(from_crd(crd).into_iter().map(Arc::new));
        }
        Registry { defs }
    }

    /// Look up group/version/resource.
    pub fn get(&self, group: &str, version: &str, resource: &str) -> Option<Arc<ResourceDef>> {
        self.defs
            .iter()
            .find(|d| d.group == group && d.version == version && d.resource == resource)
            .cloned()
    }

    /// Every served resource.
    pub fn all(&self) -> &[Arc<ResourceDef>] {
        &self.defs
    }

    /// Groups with their versions, most preferred first; the core group is not included.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for d in &self.defs {
            if d.group.is_empty() {
                continue;
            }
            match groups.iter_mut().find(|(g, _)| *g == d.group) {
                Some((_, vs)) => {
                    if !vs.contains(&d.version) {
                        vs.push(d.version.clone());
                    }
                }
                None => groups.push((d.group.clone(), vec![d.version.clone()])),
            }
        }
        for (_, vs) in &mut groups {
            vs.sort_by_key(|v| version_priority(v));
        }
        groups
    }

    /// Resources of one group/version.
    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<Arc<ResourceDef>> {
        self.defs
            .iter()
            .filter(|d| d.group == group && d.version == version)
            .cloned()
            .collect()
    }

    /// The storage-version (preferred) definition of a storage, used for internal writes.
    pub fn for_storage(&self, key: &StorageKey) -> Option<Arc<ResourceDef>> {
        self.defs
            .iter()
            .find(|d| &d.storage == key && d.group == key.group)
            .cloned()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn version_priority_orders_like_kubernetes() {
        let mut v = vec![
            "v1alpha1", "foo", "v2beta1", "v1", "v1beta2", "v2", "v1beta1",
        ];
        v.sort_by_key(|s| version_priority(s));
        assert_eq!(
            v,
            vec![
                "v2", "v1", "v2beta1", "v1beta2", "v1beta1", "v1alpha1", "foo"
            ]
        );
    }
}
