#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::Value;

use super::*;

fn repo_crds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crds")
}

fn schema(crd: &CustomResourceDefinition) -> Value {
    let version = &crd.spec.versions[0];
    let schema = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("every CRD has a schema");
    serde_json::to_value(schema).unwrap()
}

/// Calls `visit(path, node)` on every schema node below `node`.
fn walk(path: &str, node: &Value, visit: &mut dyn FnMut(&str, &Value)) {
    visit(path, node);
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            walk(&format!("{path}.{name}"), child, visit);
        }
    }
    if let Some(items) = node.get("items") {
        walk(&format!("{path}[]"), items, visit);
    }
    if let Some(extra) = node.get("additionalProperties").filter(|v| v.is_object()) {
        walk(&format!("{path}{{}}"), extra, visit);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        for (i, child) in node
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            walk(&format!("{path}<{key}{i}>"), child, visit);
        }
    }
}

fn rules(node: &Value) -> Vec<String> {
    node.get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("rule").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

#[test]
fn committed_crds_match_the_types() {
    for (file, crd) in all() {
        let want = to_yaml(&crd).unwrap();
        let path = repo_crds_dir().join(file);
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} is stale: run `cargo run -p api --bin crdgen` and commit the result",
            path.display()
        );
    }
}

#[test]
fn every_schema_node_is_structural() {
    for (file, crd) in all() {
        walk("", &schema(&crd), &mut |path, node| {
            let preserves = node.get("x-kubernetes-preserve-unknown-fields")
                == Some(&Value::Bool(true))
                || node.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
            assert!(
                node.get("type").is_some() || preserves,
                "{file}: schema node {path:?} has no type: real API servers refuse it"
            );
            if let Some(format) = node.get("format").and_then(Value::as_str) {
                assert!(
                    !format.starts_with("uint"),
                    "{file}: {path:?} has format {format}"
                );
            }
        });
    }
}

#[test]
fn rules_stay_within_kubernetes_1_28_and_the_cost_budget() {
    const NEWER_THAN_1_28: [&str; 7] = [
        "isCIDR",
        "cidr(",
        ".masked(",
        "isIP(",
        "ip(",
        "format.",
        "optionalOldSelf",
    ];
    for (file, crd) in all() {
        walk("", &schema(&crd), &mut |path, node| {
            for rule in rules(node) {
                for f in NEWER_THAN_1_28 {
                    assert!(
                        !rule.contains(f),
                        "{file}: rule at {path:?} uses {f}: {rule}"
                    );
                }
            }
            if node.get("type").and_then(Value::as_str) == Some("array") {
                assert!(
                    node.get("maxItems").is_some(),
                    "{file}: list {path:?} has no maxItems"
                );
            }
            if node.get("type").and_then(Value::as_str) == Some("string")
                && node.get("enum").is_none()
            {
                assert!(
                    node.get("maxLength").is_some(),
                    "{file}: string {path:?} has no maxLength"
                );
            }
        });
    }
}

#[test]
fn names_scope_and_subresources() {
    let crds = all();
    let (_, pool) = &crds[0];
    assert_eq!(pool.metadata.name.as_deref(), Some("ippools.rangepool.dev"));
    assert_eq!(pool.spec.scope, "Cluster");
    assert_eq!(
        pool.spec.names.short_names.as_deref(),
        Some(&["ipp".to_owned()][..])
    );
    let version = &pool.spec.versions[0];
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    let columns: Vec<&str> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    for want in ["CIDR", "Block", "Allocatable", "Used", "Free"] {
        assert!(
            columns.contains(&want),
            "IPPool lacks printer column {want}: {columns:?}"
        );
    }

    let (_, block) = &crds[1];
    assert_eq!(
        block.metadata.name.as_deref(),
        Some("ipamblocks.rangepool.dev")
    );
    assert_eq!(block.spec.scope, "Cluster");
    assert_eq!(
        block.spec.names.short_names.as_deref(),
        Some(&["ipb".to_owned()][..])
    );
}

#[test]
fn cidr_and_block_size_are_immutable_by_rule() {
    let crds = all();
    let spec = schema(&crds[0].1)["properties"]["spec"].clone();
    assert!(
        rules(&spec["properties"]["cidr"])
            .iter()
            .any(|r| r == "self == oldSelf")
    );
    assert!(rules(&spec).iter().any(|r| r.contains("oldSelf.blockSize")));
}

#[test]
fn optional_fields_are_not_required_and_never_null() {
    let crds = all();
    let spec = schema(&crds[0].1)["properties"]["spec"].clone();
    let required: Vec<&str> = spec["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        required,
        vec!["cidr"],
        "only cidr is required in an IPPool spec"
    );

    // An IPPool with only a CIDR serializes without nulls (real servers refuse explicit null).
    let pool = IPPool::new(
        "p",
        crate::IPPoolSpec {
            cidr: "10.0.0.0/24".into(),
            ..Default::default()
        },
    );
    let json = serde_json::to_string(&pool).unwrap();
    assert!(!json.contains("null"), "{json}");
}

#[test]
fn every_pool_spec_field_of_the_crd_is_one_the_core_knows() {
    let crd = <crate::IPPool as kube::CustomResourceExt>::crd();
    let spec = schema(&crd)["properties"]["spec"]["properties"].clone();
    let mut in_crd: Vec<&str> = spec
        .as_object()
        .expect("spec has properties")
        .keys()
        .map(String::as_str)
        .collect();
    let mut known: Vec<&str> = ipam::SpecField::ALL.iter().map(|f| f.name()).collect();
    in_crd.sort_unstable();
    known.sort_unstable();
    assert_eq!(
        in_crd, known,
        "a field of IPPool.spec must be in ipam::SpecField with its effect (Allocation, Uses or Inert), so that the Calico import keeps it and the pool's message reports it when inert"
    );
}

#[test]
fn unknown_fields_are_found_where_the_schema_has_no_such_property() {
    let crd = <crate::IPPool as kube::CustomResourceExt>::crd();
    let doc = serde_json::json!({
        "apiVersion": "rangepool.dev/v1",
        "kind": "IPPool",
        "metadata": {"name": "p", "labels": {"any": "thing"}},
        "spec": {"cidr": "10.0.0.0/24", "namespaceSelecter": "team == 'a'", "allowedUses": ["Workload"]},
        "extra": 1
    });
    let unknown = unknown_fields(&crd, &doc);
    let paths: Vec<&str> = unknown.iter().map(|u| u.path.as_str()).collect();
    assert_eq!(paths, ["extra", "spec.namespaceSelecter"]);
    assert!(unknown[1].known.contains(&"namespaceSelector".to_owned()));
    assert!(unknown[0].known.contains(&"metadata".to_owned()));
    let clean = serde_json::json!({"apiVersion": "rangepool.dev/v1", "kind": "IPPool", "spec": {"cidr": "10.0.0.0/24"}});
    assert!(unknown_fields(&crd, &clean).is_empty());
}
