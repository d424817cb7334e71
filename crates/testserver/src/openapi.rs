//! A minimal OpenAPI v3 surface: the `/openapi/v3` index and one document per group/version
//! listing each resource's PATCH operation with its `x-kubernetes-group-version-kind` and the
//! `fieldValidation` query parameter (what kubectl checks before it leaves validation to the
//! server with `fieldValidation=Strict`), plus the structural schemas of custom resources (for
//! `kubectl explain`). Built-in kinds publish no schema (kubectl then uses its compiled-in types
//! for strategic merge patches); `/openapi/v2` answers 404 as on servers that disabled it.

use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Map, Value, json};

use crate::resources::Registry;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn group_versions(reg: &Registry) -> Vec<(String, String)> {
    let mut gvs: Vec<(String, String)> = Vec::new();
    for d in reg.all() {
        let gv = (d.group.clone(), d.version.clone());
        if !gvs.contains(&gv) {
            gvs.push(gv);
        }
    }
    gvs
}

/// `/openapi/v3`
pub fn index(reg: &Registry) -> Value {
    let mut paths = Map::new();
    for (g, v) in group_versions(reg) {
        let p = gv_path(&g, &v);
        let hash = {
            let mut h = DefaultHasher::new();
            document(reg, &g, &v).map(|d| d.to_string()).hash(&mut h);
            format!("{:016X}", h.finish())
        };
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/<group>/<version>`
pub fn document(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let defs = reg.in_group_version(group, version);
    if defs.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for d in &defs {
        // custom resources publish their structural schema, so `kubectl explain` works for them
        if let Some(schema) = &d.schema {
            let mut sch = schema.as_ref().clone();
            sch["x-kubernetes-group-version-kind"] =
                json!([{"group": d.group, "version": d.version, "kind": d.kind}]);
            let reversed: Vec<&str> = d.group.split('.').rev().collect();
            schemas.insert(
                format!("{}.{}.{}", reversed.join("."), d.version, d.kind),
                sch,
            );
        }
    }
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    for d in defs {
        let path = if d.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", d.resource)
        } else {
            format!("{prefix}/{}/{{name}}", d.resource)
        };
        let patch = json!({
            "operationId": format!("patch{}", d.kind),
            "parameters": [
                {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}
            ],
            "responses": {"200": {"description": "OK"}},
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": d.group, "version": d.version, "kind": d.kind},
        });
        paths.insert(path, json!({"patch": patch}));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", crate::discovery::MAJOR, crate::discovery::MINOR)},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}
