//! Reading a directory of Kubernetes manifests for the offline planner.
//!
//! Accepts YAML (several documents per file) and JSON, `List` objects, and IPPools and
//! IPReservations in both our API group and Calico's (`projectcalico.org/v3`, and
//! `crd.projectcalico.org/v1` as stored by Calico's CRD backend; same fields), so an admin can
//! plan a migration from Calico manifests as they are. Both kinds are read strictly, as
//! `kubectl apply` reads them: a field their CRD does not have is an error. Every object
//! remembers the file it came from, so that every message can name it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use api::{IPPool, IPReservation};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

/// API versions under which an `IPPool` or `IPReservation` manifest is read as rangepool's.
const API_VERSIONS: [&str; 3] = [
    "rangepool.dev/v1",
    "projectcalico.org/v3",
    "crd.projectcalico.org/v1",
];

/// Why a manifest of one of our kinds has fields its CRD (as we ship it) does not, as `kubectl
/// apply`'s strict field validation would refuse them; `None` when it has none.
fn unknown_fields<K: kube::CustomResourceExt + kube::Resource<DynamicType = ()>>(
    crd: &'static std::sync::OnceLock<CustomResourceDefinition>,
    doc: &Value,
    api_version: &str,
) -> Option<String> {
    let unknown = api::crd::unknown_fields(crd.get_or_init(K::crd), doc);
    if unknown.is_empty() {
        return None;
    }
    let listed: Vec<String> = unknown
        .iter()
        .map(|u| {
            format!(
                "unknown field {} (known there: {})",
                u.path,
                u.known.join(", ")
            )
        })
        .collect();
    let calico = if api_version == "rangepool.dev/v1" {
        ""
    } else {
        "; Calico fields rangepool does not have are dropped by `kubectl ipam import-calico`, which lists them"
    };
    Some(format!(
        "{}: the {} CRD refuses {}, as `kubectl apply` would{calico}",
        listed.join("; "),
        K::kind(&()),
        if unknown.len() == 1 { "it" } else { "them" }
    ))
}

static POOL_CRD: std::sync::OnceLock<CustomResourceDefinition> = std::sync::OnceLock::new();
static RESERVATION_CRD: std::sync::OnceLock<CustomResourceDefinition> = std::sync::OnceLock::new();

/// An object and the file it was read from.
#[derive(Debug, Clone)]
pub struct Sourced<T> {
    /// The file.
    pub file: PathBuf,
    /// The object.
    pub object: T,
}

/// An object the planner does not use, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The file it is in.
    pub file: PathBuf,
    /// Its kind (empty when the document has none).
    pub kind: String,
    /// `namespace/name` for namespaced objects, else `name`.
    pub name: String,
    /// Why it is not used.
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.kind.is_empty() {
            "(no kind)"
        } else {
            &self.kind
        };
        write!(
            f,
            "{}: {kind} {}: {}",
            self.file.display(),
            if self.name.is_empty() {
                "(no name)"
            } else {
                &self.name
            },
            self.reason
        )
    }
}

/// Everything the planner needs, as read from files.
#[derive(Default, Debug)]
pub struct Manifests {
    /// IPPools, in file order.
    pub pools: Vec<Sourced<IPPool>>,
    /// IPReservations, in file order.
    pub reservations: Vec<Sourced<IPReservation>>,
    /// Namespaces by name (a later manifest of the same name replaces an earlier one, as
    /// `kubectl apply` would).
    pub namespaces: BTreeMap<String, Sourced<Namespace>>,
    /// Nodes by name (same rule).
    pub nodes: BTreeMap<String, Sourced<Node>>,
    /// Pods, in file order.
    pub pods: Vec<Sourced<Pod>>,
    /// The `ClusterConfiguration` of the kube-system/kubeadm-config ConfigMap, if one was given
    /// (`None` inside when the ConfigMap has no such key).
    pub kubeadm_cluster_configuration: Option<Sourced<Option<String>>>,
    /// Objects of other kinds, in file order.
    pub skipped: Vec<Skipped>,
}

/// A file that could not be read or understood.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Reading the directory or a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid YAML or JSON.
    #[error("{}: not valid YAML or JSON: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the location.
        message: String,
    },
    /// An object does not have the shape of its kind.
    #[error("{}: {kind} {name:?}: {message}", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// Two objects claim to be the one kubeadm-config ConfigMap.
    #[error(
        "{}: a second kube-system/kubeadm-config ConfigMap (the first is in {}); keep one",
        second.display(),
        first.display()
    )]
    TwoKubeadmConfigs {
        /// The file of the first one.
        first: PathBuf,
        /// The file of the second one.
        second: PathBuf,
    },
}

impl Manifests {
    /// Reads every `.yaml`, `.yml` and `.json` file below `dir` (or `dir` itself if it is a file),
    /// in path order, skipping hidden files and directories (`.git`, the `..data` links of a
    /// mounted ConfigMap).
    pub fn read(dir: &Path) -> Result<Manifests, ManifestError> {
        let mut files = Vec::new();
        collect_files(dir, &mut files)?;
        files.sort();
        let mut out = Manifests::default();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|source| ManifestError::Io {
                path: file.clone(),
                source,
            })?;
            out.add_text(&file, &text)?;
        }
        Ok(out)
    }

    /// Adds the objects of one file's text (YAML documents or JSON), read from `file`.
    pub fn add_text(&mut self, file: &Path, text: &str) -> Result<(), ManifestError> {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(text).map_err(|e| ManifestError::Syntax {
                path: file.to_owned(),
                message: e.to_string(),
            })?;
        for doc in docs {
            self.add(file, doc)?;
        }
        Ok(())
    }

    fn add(&mut self, file: &Path, doc: Value) -> Result<(), ManifestError> {
        if doc.is_null() {
            return Ok(());
        }
        let text = |pointer: &str| {
            doc.pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let kind = text("/kind");
        let api_version = text("/apiVersion");
        let name = text("/metadata/name");
        let namespace = text("/metadata/namespace");
        let shape = |message: String| ManifestError::Shape {
            path: file.to_owned(),
            kind: kind.clone(),
            name: name.clone(),
            message,
        };
        let skip = |reason: String| Skipped {
            file: file.to_owned(),
            kind: kind.clone(),
            name: if namespace.is_empty() {
                name.clone()
            } else {
                format!("{namespace}/{name}")
            },
            reason,
        };
        if !doc.is_object() {
            return Err(shape(
                "a manifest must be a mapping with apiVersion, kind and metadata".into(),
            ));
        }
        match (kind.as_str(), api_version.as_str()) {
            (k, _) if k.ends_with("List") => {
                let Some(items) = doc.get("items").and_then(Value::as_array) else {
                    return Err(shape("a List must have an items array".into()));
                };
                for item in items.clone() {
                    self.add(file, item)?;
                }
            }
            ("IPPool", v) if API_VERSIONS.contains(&v) => {
                if let Some(message) = unknown_fields::<IPPool>(&POOL_CRD, &doc, v) {
                    return Err(shape(message));
                }
                let mut doc = doc;
                doc["apiVersion"] = Value::from("rangepool.dev/v1");
                let pool: IPPool = serde_json::from_value(doc).map_err(|e| shape(e.to_string()))?;
                self.pools.push(Sourced {
                    file: file.to_owned(),
                    object: pool,
                });
            }
            ("IPReservation", v) if API_VERSIONS.contains(&v) => {
                if let Some(message) = unknown_fields::<IPReservation>(&RESERVATION_CRD, &doc, v) {
                    return Err(shape(message));
                }
                let mut doc = doc;
                doc["apiVersion"] = Value::from("rangepool.dev/v1");
                let reservation: IPReservation =
                    serde_json::from_value(doc).map_err(|e| shape(e.to_string()))?;
                self.reservations.push(Sourced {
                    file: file.to_owned(),
                    object: reservation,
                });
            }
            ("IPPool" | "IPReservation", v) => self.skipped.push(skip(format!(
                "apiVersion {v:?} is not one the planner reads ({})",
                API_VERSIONS.join(", ")
            ))),
            ("Namespace", "v1") => {
                let ns: Namespace =
                    serde_json::from_value(doc).map_err(|e| shape(e.to_string()))?;
                self.namespaces.insert(
                    name,
                    Sourced {
                        file: file.to_owned(),
                        object: ns,
                    },
                );
            }
            ("Node", "v1") => {
                let node: Node = serde_json::from_value(doc).map_err(|e| shape(e.to_string()))?;
                self.nodes.insert(
                    name,
                    Sourced {
                        file: file.to_owned(),
                        object: node,
                    },
                );
            }
            ("Pod", "v1") => {
                let pod: Pod = serde_json::from_value(doc).map_err(|e| shape(e.to_string()))?;
                self.pods.push(Sourced {
                    file: file.to_owned(),
                    object: pod,
                });
            }
            ("ConfigMap", "v1")
                if (namespace.as_str(), name.as_str()) == api::cluster::KUBEADM_CONFIG =>
            {
                if let Some(first) = &self.kubeadm_cluster_configuration {
                    return Err(ManifestError::TwoKubeadmConfigs {
                        first: first.file.clone(),
                        second: file.to_owned(),
                    });
                }
                let cm: ConfigMap =
                    serde_json::from_value(doc).map_err(|e| shape(e.to_string()))?;
                self.kubeadm_cluster_configuration = Some(Sourced {
                    file: file.to_owned(),
                    object: cm.data.and_then(|mut d| d.remove("ClusterConfiguration")),
                });
            }
            _ => self
                .skipped
                .push(skip("not a kind the planner uses".to_owned())),
        }
        Ok(())
    }
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), ManifestError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ManifestError::Io { path, source }
    };
    let meta = std::fs::metadata(path).map_err(io(path))?;
    if meta.is_file() {
        out.push(path.to_owned());
        return Ok(());
    }
    for entry in std::fs::read_dir(path).map_err(io(path))? {
        let entry = entry.map_err(io(path))?;
        let p = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        // Not following symlinked directories keeps a link loop from recursing forever.
        let file_type = entry.file_type().map_err(io(&p))?;
        if file_type.is_dir() {
            collect_files(&p, out)?;
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn read(files: &[(&str, &str)]) -> Result<Manifests, ManifestError> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        Manifests::read(dir.path())
    }

    #[test]
    fn reads_lists_calico_pools_and_skips_other_kinds() {
        let m = read(&[
            (
                "a.yaml",
                "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: calico}\nspec: {cidr: 10.0.0.0/24}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: svc, namespace: web}\n",
            ),
            (
                "b.json",
                r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"web"}}]}"#,
            ),
        ])
        .unwrap();
        assert_eq!(m.pools.len(), 1);
        assert_eq!(m.pools[0].object.spec.cidr, "10.0.0.0/24");
        assert!(m.namespaces.contains_key("web"));
        assert_eq!(m.skipped.len(), 1);
        assert_eq!(m.skipped[0].kind, "Service");
        assert_eq!(m.skipped[0].name, "web/svc");
    }

    #[test]
    fn only_kube_system_kubeadm_config_counts() {
        let cm = |ns: &str| {
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: kubeadm-config, namespace: {ns}}}\ndata:\n  ClusterConfiguration: 'networking: {{podSubnet: 10.0.0.0/8}}'\n"
            )
        };
        let m = read(&[("cm.yaml", &cm("default"))]).unwrap();
        assert!(m.kubeadm_cluster_configuration.is_none());
        let m = read(&[("cm.yaml", &cm("kube-system"))]).unwrap();
        let got = m.kubeadm_cluster_configuration.unwrap().object.unwrap();
        assert!(got.contains("10.0.0.0/8"), "{got}");
        let err = read(&[
            ("a.yaml", &cm("kube-system")),
            ("b.yaml", &cm("kube-system")),
        ])
        .unwrap_err();
        assert!(
            matches!(err, ManifestError::TwoKubeadmConfigs { .. }),
            "{err}"
        );
    }

    #[test]
    fn a_misspelled_pool_field_is_refused_naming_file_pool_and_field() {
        for version in ["rangepool.dev/v1", "projectcalico.org/v3"] {
            let err = read(&[(
                "pools.yaml",
                &format!(
                    "apiVersion: {version}\nkind: IPPool\nmetadata: {{name: payments}}\nspec: {{cidr: 10.0.0.0/24, assignmentMode: Manual, namespaceSelecter: \"team == 'payments'\"}}\n"
                ),
            )])
            .unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("pools.yaml")
                    && text.contains("IPPool \"payments\"")
                    && text.contains("unknown field spec.namespaceSelecter")
                    && text.contains("namespaceSelector"),
                "{text}"
            );
        }
    }

    #[test]
    fn reservations_are_read_in_both_groups_and_strictly() {
        let m = read(&[(
            "r.yaml",
            "apiVersion: projectcalico.org/v3\nkind: IPReservation\nmetadata: {name: appliances}\nspec: {reservedCIDRs: [10.244.8.1, 10.244.8.240/28]}\n---\napiVersion: rangepool.dev/v1\nkind: IPReservation\nmetadata: {name: edge}\nspec: {reservedCIDRs: [10.244.9.0]}\n",
        )])
        .unwrap();
        let names: Vec<String> = m
            .reservations
            .iter()
            .map(|r| r.object.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["appliances", "edge"]);
        assert_eq!(
            m.reservations[0].object.spec.reserved_cidrs,
            ["10.244.8.1", "10.244.8.240/28"]
        );

        let err = read(&[(
            "r.yaml",
            "apiVersion: rangepool.dev/v1\nkind: IPReservation\nmetadata: {name: typo}\nspec: {reservedCIDR: [10.244.8.1]}\n",
        )])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("r.yaml")
                && err.contains("IPReservation \"typo\"")
                && err.contains("unknown field spec.reservedCIDR ")
                && err.contains("reservedCIDRs")
                && err.contains("the IPReservation CRD refuses it"),
            "{err}"
        );
    }

    #[test]
    fn an_object_of_the_wrong_shape_names_file_kind_and_name() {
        let err = read(&[(
            "pods.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {a: [1]}}\n",
        )])
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("pods.yaml") && text.contains("Pod \"p\""),
            "{text}"
        );
    }

    #[test]
    fn a_scalar_document_is_refused() {
        let err = read(&[("x.yaml", "just a string\n")]).unwrap_err();
        assert!(err.to_string().contains("x.yaml"), "{err}");
    }

    #[test]
    fn hidden_entries_and_other_extensions_are_ignored() {
        let m = read(&[
            (".git/pool.yaml", "not: [valid"),
            ("notes.txt", "not: [valid"),
            ("empty.yaml", "# nothing here\n"),
        ])
        .unwrap();
        assert!(m.pools.is_empty() && m.skipped.is_empty());
    }
}
