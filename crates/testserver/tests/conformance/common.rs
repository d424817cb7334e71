//! Fixtures: builders for pods and CRDs, raw requests, error helpers.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Namespace, Pod, PodSpec};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use rangepool_testserver::TestServer;
use serde_json::{Value, json};

pub async fn server() -> (TestServer, Client) {
    let server = TestServer::start().await.expect("server starts");
    let client = server.client().expect("client");
    (server, client)
}

/// `pod("web").in_ns("a").on_node("n1").labeled("app", "web").build()`
pub struct PodBuilder {
    pod: Pod,
}

pub fn pod(name: &str) -> PodBuilder {
    PodBuilder {
        pod: Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "main".into(),
                    image: Some("busybox:1.36".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        },
    }
}

impl PodBuilder {
    pub fn in_ns(mut self, ns: &str) -> Self {
        self.pod.metadata.namespace = Some(ns.into());
        self
    }
    pub fn on_node(mut self, node: &str) -> Self {
        self.pod.spec.as_mut().unwrap().node_name = Some(node.into());
        self
    }
    pub fn labeled(mut self, k: &str, v: &str) -> Self {
        self.pod
            .metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(k.into(), v.into());
        self
    }
    pub fn finalizer(mut self, f: &str) -> Self {
        self.pod
            .metadata
            .finalizers
            .get_or_insert_with(Vec::new)
            .push(f.into());
        self
    }
    pub fn host_network(mut self) -> Self {
        self.pod.spec.as_mut().unwrap().host_network = Some(true);
        self
    }
    pub fn build(self) -> Pod {
        self.pod
    }
}

pub async fn create_ns(client: &Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

pub async fn create_pod(client: &Client, p: Pod) -> Pod {
    let ns = p.metadata.namespace.clone().unwrap();
    Api::<Pod>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &p)
        .await
        .unwrap()
}

/// The status code and reason of an API error.
pub fn api_err<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> (u16, String) {
    match r {
        Err(kube::Error::Api(s)) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The IPPool CRD (cluster scoped, status subresource, schema with enum/min/max/pattern/default).
pub fn ippool_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "ippools.rangepool.dev"},
        "spec": {
            "group": "rangepool.dev",
            "names": {"kind": "IPPool", "plural": "ippools", "singular": "ippool", "shortNames": ["ipp"]},
            "scope": "Cluster",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "CIDR", "type": "string", "jsonPath": ".spec.cidr"},
                    {"name": "Free", "type": "integer", "jsonPath": ".status.free"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["cidr"],
                            "properties": {
                                "cidr": {"type": "string", "pattern": "^[0-9a-f:./]+$", "maxLength": 43},
                                "blockSize": {"type": "integer", "minimum": 20, "maximum": 128, "default": 26},
                                "assignmentMode": {"type": "string", "enum": ["Automatic", "Manual"]},
                                "nodeSelector": {"type": "string"},
                                "allowedUses": {"type": "array", "maxItems": 3, "items": {"type": "string"}},
                                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                            }
                        },
                        "status": {
                            "type": "object",
                            "properties": {
                                "free": {"type": "integer"},
                                "observedGeneration": {"type": "integer"},
                                "conditions": {
                                    "type": "array",
                                    "x-kubernetes-list-type": "map",
                                    "x-kubernetes-list-map-keys": ["type"],
                                    "items": {"type": "object", "properties": {"type": {"type": "string"}, "status": {"type": "string"}}}
                                }
                            }
                        }
                    }
                }}
            }]
        }
    }))
    .unwrap()
}

/// A namespaced CRD without status subresource.
pub fn widget_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.dev"},
        "spec": {
            "group": "example.dev",
            "names": {"kind": "Widget", "plural": "widgets"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
            }]
        }
    }))
    .unwrap()
}

pub async fn install_crd(client: &Client, crd: CustomResourceDefinition) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let created = api.create(&PostParams::default(), &crd).await.unwrap();
    let established = created
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True");
    assert!(established, "CRD is Established");
}

pub fn ippool_api(client: &Client) -> Api<kube::api::DynamicObject> {
    let ar = kube::api::ApiResource {
        group: "rangepool.dev".into(),
        version: "v1".into(),
        api_version: "rangepool.dev/v1".into(),
        kind: "IPPool".into(),
        plural: "ippools".into(),
    };
    Api::all_with(client.clone(), &ar)
}

pub fn ippool(name: &str, spec: Value) -> kube::api::DynamicObject {
    serde_json::from_value(json!({"apiVersion": "rangepool.dev/v1", "kind": "IPPool", "metadata": {"name": name}, "spec": spec})).unwrap()
}

/// A raw request through the kube client (status code + body text, errors included).
pub async fn raw(
    client: &Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, String) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Content-Type", content_type)
        .body(body.as_bytes().to_vec())
        .unwrap();
    match client.request_text(req).await {
        Ok(t) => (200, t),
        Err(kube::Error::Api(s)) => (s.code, serde_json::to_string(&s).unwrap()),
        Err(e) => panic!("transport error: {e}"),
    }
}
