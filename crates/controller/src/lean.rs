//! IPAM blocks decoded without their managedFields.
//!
//! The API server records an owner for every allocation of a block, so managedFields are most of
//! a block's JSON (about 25 of 35 kB for 30 allocations), and the controller never reads them.
//! Decoding them costs a tree of small allocations per block, on every watch event and every
//! write's answer; [`LeanBlock`] skips them while parsing.

use std::borrow::Cow;

use api::{IPAMBlock, IPAMBlockSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

/// An [`IPAMBlock`] read from the API server without its `metadata.managedFields`.
#[derive(Debug, Clone)]
pub struct LeanBlock(pub IPAMBlock);

impl LeanBlock {
    /// The block.
    pub fn into_inner(self) -> IPAMBlock {
        self.0
    }
}

impl<'de> Deserialize<'de> for LeanBlock {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default, deserialize_with = "meta_without_managed_fields")]
            metadata: ObjectMeta,
            spec: IPAMBlockSpec,
        }
        let raw = Raw::deserialize(deserializer)?;
        let mut block = IPAMBlock::new("", raw.spec);
        block.metadata = raw.metadata;
        Ok(LeanBlock(block))
    }
}

impl Serialize for LeanBlock {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl kube::Resource for LeanBlock {
    type DynamicType = ();
    type Scope = <IPAMBlock as kube::Resource>::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        IPAMBlock::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        IPAMBlock::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        IPAMBlock::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        IPAMBlock::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.0.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.0.metadata
    }
}

/// `ObjectMeta` with `managedFields` skipped unread; a missing or null object is empty.
fn meta_without_managed_fields<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<ObjectMeta, D::Error> {
    struct Lean;
    impl<'de> Visitor<'de> for Lean {
        type Value = ObjectMeta;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("object metadata")
        }

        fn visit_unit<E: de::Error>(self) -> Result<ObjectMeta, E> {
            Ok(ObjectMeta::default())
        }

        fn visit_none<E: de::Error>(self) -> Result<ObjectMeta, E> {
            Ok(ObjectMeta::default())
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<ObjectMeta, D::Error> {
            d.deserialize_map(Lean)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ObjectMeta, A::Error> {
            let mut rest = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                if key == "managedFields" {
                    map.next_value::<IgnoredAny>()?;
                } else {
                    rest.insert(key, map.next_value::<Value>()?);
                }
            }
            ObjectMeta::deserialize(Value::Object(rest)).map_err(de::Error::custom)
        }
    }
    deserializer.deserialize_option(Lean)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn a_block_keeps_everything_but_its_managed_fields() {
        let json = json!({
            "apiVersion": "rangepool.dev/v1",
            "kind": "IPAMBlock",
            "metadata": {
                "name": "10-244-0-0-26",
                "uid": "u-1",
                "resourceVersion": "7",
                "creationTimestamp": "2026-11-25T09:00:00Z",
                "labels": {"rangepool.dev/pool": "default"},
                "managedFields": [{
                    "manager": "rangepool-controller",
                    "operation": "Update",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:allocations": {"f:0": {}}}}
                }]
            },
            "spec": {
                "cidr": "10.244.0.0/26",
                "pool": "default",
                "affinity": "node-1",
                "sequenceNumber": 3,
                "allocations": {"0": {"handle": "uid-a", "namespace": "ns", "pod": "p", "node": "node-1"}}
            }
        });
        let full: IPAMBlock = serde_json::from_value(json.clone()).unwrap();
        let lean = serde_json::from_value::<LeanBlock>(json)
            .unwrap()
            .into_inner();
        assert!(full.metadata.managed_fields.is_some());
        assert!(lean.metadata.managed_fields.is_none());
        assert_eq!(lean.spec, full.spec);
        assert_eq!(
            ObjectMeta {
                managed_fields: None,
                ..full.metadata
            },
            lean.metadata
        );
    }

    #[test]
    fn a_block_without_metadata_or_with_null_metadata_decodes() {
        for json in [
            json!({"spec": {"cidr": "10.0.0.0/30", "pool": "p"}}),
            json!({"metadata": null, "spec": {"cidr": "10.0.0.0/30", "pool": "p"}}),
        ] {
            let lean: LeanBlock = serde_json::from_value(json).unwrap();
            assert_eq!(lean.0.metadata, ObjectMeta::default());
        }
    }
}
