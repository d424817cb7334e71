//! Structural schemas of CRDs (`openAPIV3Schema`): pruning of unknown fields, defaulting and
//! validation of custom resources, with the real server's messages. CEL rules
//! (`x-kubernetes-validations`) are evaluated separately, in `cel.rs`.

use serde_json::{Map, Value};

use crate::error::{Cause, cause};
use crate::fields::ListType;

/// Remove fields the schema does not know (unless preserved) and apply defaults. Returns the
/// dotted paths of removed fields, for `fieldValidation` warnings or errors.
pub fn prune_and_default(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    if let Value::Object(m) = obj {
        let props = schema.get("properties").and_then(Value::as_object);
        default_props(schema, m);
        let keys: Vec<String> = m.keys().cloned().collect();
        for k in keys {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            match props.and_then(|p| p.get(&k)) {
                Some(s) => {
                    if let Some(child) = m.get_mut(&k) {
                        prune(s, child, &k, &mut unknown);
                    }
                }
                None if preserves(schema) => {}
                None => {
                    m.remove(&k);
                    unknown.push(k);
                }
            }
        }
    }
    unknown
}

fn preserves(s: &Value) -> bool {
    s.get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

fn default_props(schema: &Value, m: &mut Map<String, Value>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, s) in props {
            if !m.contains_key(k)
                && let Some(d) = s.get("default")
            {
                m.insert(k.clone(), d.clone());
            }
        }
    }
}

fn prune(schema: &Value, v: &mut Value, path: &str, unknown: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if schema
                .get("x-kubernetes-embedded-resource")
                .and_then(Value::as_bool)
                == Some(true)
            {
                // apiVersion, kind and metadata of an embedded object are kept
            }
            default_props(schema, m);
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let sub = format!("{path}.{k}");
                let child_schema = props.and_then(|p| p.get(&k)).or(additional);
                match child_schema {
                    Some(s) => {
                        if let Some(child) = m.get_mut(&k) {
                            prune(s, child, &sub, unknown);
                        }
                    }
                    None if preserves(schema)
                        || schema.get("additionalProperties").and_then(Value::as_bool)
                            == Some(true)
                        || (schema
                            .get("x-kubernetes-embedded-resource")
                            .and_then(Value::as_bool)
                            == Some(true)
                            && matches!(k.as_str(), "apiVersion" | "kind" | "metadata")) => {}
                    None => {
                        m.remove(&k);
                        unknown.push(sub);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, it) in items.iter_mut().enumerate() {
                    prune(s, it, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

/// The list type declared at a path of field names.
pub fn list_type(schema: &Value, fields: &[String]) -> ListType {
    let mut node = schema;
    for f in fields {
        while node.get("type").and_then(Value::as_str) == Some("array") {
            match node.get("items") {
                Some(i) => node = i,
                None => return ListType::Atomic,
            }
        }
        node = match node
            .get("properties")
            .and_then(|p| p.get(f))
            .or_else(|| node.get("additionalProperties"))
        {
            Some(n) => n,
            None => return ListType::Atomic,
        };
    }
    match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("map") => ListType::Map(
            node.get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|k| k.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        Some("set") => ListType::Set,
        _ => ListType::Atomic,
    }
}

/// Validate an object against its schema (metadata excluded).
pub fn validate(schema: &Value, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Value::Object(m) = obj {
        let mut top = m.clone();
        top.remove("metadata");
        top.remove("apiVersion");
        top.remove("kind");
        let mut s = schema.clone();
        if let Some(props) = s.get_mut("properties").and_then(Value::as_object_mut) {
            props.remove("metadata");
            props.remove("apiVersion");
            props.remove("kind");
        }
        check(&s, &Value::Object(top), "", &mut causes);
    }
    causes
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => true,
    }
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

fn check(s: &Value, v: &Value, path: &str, out: &mut Vec<Cause>) {
    if v.is_null() {
        if s.get("nullable").and_then(Value::as_bool) != Some(true) && s.get("type").is_some() {
            let t = s["type"].as_str().unwrap_or_default();
            out.push(cause(
                "FieldValueTypeInvalid",
                path,
                format!("Invalid value: \"null\": {path} in body must be of type {t}: \"null\""),
            ));
        }
        return;
    }
    let int_or_string = s.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true);
    if int_or_string {
        if !(v.is_string() || v.is_i64() || v.is_u64()) {
            out.push(cause(
                "FieldValueTypeInvalid",
                path,
                format!(
                    "Invalid value: {}: {path} in body must be of type integer,string: {}",
                    show(v),
                    show(v)
                ),
            ));
            return;
        }
    } else if let Some(t) = s.get("type").and_then(Value::as_str)
        && !type_ok(t, v)
    {
        let got = match v {
            Value::String(_) => "string",
            Value::Number(_) => "number",
            Value::Bool(_) => "boolean",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
            Value::Null => "null",
        };
        out.push(cause(
            "FieldValueTypeInvalid",
            path,
            format!("Invalid value: \"{got}\": {path} in body must be of type {t}: \"{got}\""),
        ));
        return;
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        let allowed: Vec<String> = e.iter().map(show).collect();
        out.push(cause(
            "FieldValueNotSupported",
            path,
            format!(
                "Unsupported value: {}: supported values: {}",
                show(v),
                allowed.join(", ")
            ),
        ));
    }
    match v {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or_default();
            let excl_min = s.get("exclusiveMinimum").and_then(Value::as_bool) == Some(true);
            let excl_max = s.get("exclusiveMaximum").and_then(Value::as_bool) == Some(true);
            if let Some(min) = s.get("minimum").and_then(Value::as_f64)
                && (x < min || (excl_min && x == min))
            {
                let rel = if excl_min {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                out.push(cause(
                    "FieldValueInvalid",
                    path,
                    format!(
                        "Invalid value: {v}: {path} in body should be {rel} {}",
                        s["minimum"]
                    ),
                ));
            }
            if let Some(max) = s.get("maximum").and_then(Value::as_f64)
                && (x > max || (excl_max && x == max))
            {
                let rel = if excl_max {
                    "less than"
                } else {
                    "less than or equal to"
                };
                out.push(cause(
                    "FieldValueInvalid",
                    path,
                    format!(
                        "Invalid value: {v}: {path} in body should be {rel} {}",
                        s["maximum"]
                    ),
                ));
            }
        }
        Value::String(st) => {
            let len = st.chars().count() as u64;
            if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                out.push(cause(
                    "FieldValueTooLong",
                    path,
                    format!("Too long: may not be more than {max} bytes"),
                ));
            }
            if let Some(min) = s.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                out.push(cause("FieldValueInvalid", path, format!("Invalid value: \"{st}\": {path} in body should be at least {min} chars long")));
            }
            if let Some(p) = s.get("pattern").and_then(Value::as_str)
                && let Ok(re) = regex::Regex::new(p)
                && !re.is_match(st)
            {
                out.push(cause(
                    "FieldValueInvalid",
                    path,
                    format!("Invalid value: \"{st}\": {path} in body should match '{p}'"),
                ));
            }
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
                && n > max
            {
                out.push(cause(
                    "FieldValueTooMany",
                    path,
                    format!("Too many: {n}: must have at most {max} items"),
                ));
            }
            if let Some(min) = s.get("minItems").and_then(Value::as_u64)
                && n < min
            {
                out.push(cause(
                    "FieldValueInvalid",
                    path,
                    format!("Invalid value: {n}: {path} in body should have at least {min} items"),
                ));
            }
            if let Some(is) = s.get("items") {
                for (i, it) in items.iter().enumerate() {
                    check(is, it, &format!("{path}[{i}]"), out);
                }
            }
            if s.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("set") {
                for (i, it) in items.iter().enumerate() {
                    if items[..i].contains(it) {
                        out.push(cause(
                            "FieldValueDuplicate",
                            format!("{path}[{i}]"),
                            format!("Duplicate value: {}", show(it)),
                        ));
                    }
                }
            }
        }
        Value::Object(m) => {
            for r in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(k) = r.as_str()
                    && !m.contains_key(k)
                {
                    out.push(cause("FieldValueRequired", join(path, k), "Required value"));
                }
            }
            let n = m.len() as u64;
            if let Some(max) = s.get("maxProperties").and_then(Value::as_u64)
                && n > max
            {
                out.push(cause(
                    "FieldValueTooMany",
                    path,
                    format!("Too many: {n}: must have at most {max} items"),
                ));
            }
            if let Some(min) = s.get("minProperties").and_then(Value::as_u64)
                && n < min
            {
                out.push(cause(
                    "FieldValueInvalid",
                    path,
                    format!(
                        "Invalid value: {n}: {path} in body should have at least {min} properties"
                    ),
                ));
            }
            let props = s.get("properties").and_then(Value::as_object);
            let additional = s.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in m {
                if let Some(cs) = props.and_then(|p| p.get(k)).or(additional) {
                    check(cs, child, &join(path, k), out);
                }
            }
        }
        _ => {}
    }
    for a in s
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        check(a, v, path, out);
    }
    if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
        let ok = any.iter().any(|a| {
            let mut c = Vec::new();
            check(a, v, path, &mut c);
            c.is_empty()
        });
        if !ok {
            out.push(cause(
                "FieldValueInvalid",
                path,
                format!(
                    "Invalid value: {}: {path} in body must match at least one schema (anyOf)",
                    show(v)
                ),
            ));
        }
    }
    if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
        let n = one
            .iter()
            .filter(|a| {
                let mut c = Vec::new();
                check(a, v, path, &mut c);
                c.is_empty()
            })
            .count();
        if n != 1 {
            out.push(cause(
                "FieldValueInvalid",
                path,
                format!(
                    "Invalid value: {}: {path} in body must match exactly one schema (oneOf)",
                    show(v)
                ),
            ));
        }
    }
    if let Some(not) = s.get("not") {
        let mut c = Vec::new();
        check(not, v, path, &mut c);
        if c.is_empty() {
            out.push(cause(
                "FieldValueInvalid",
                path,
                format!(
                    "Invalid value: {}: {path} in body must not match the schema (not)",
                    show(v)
                ),
            ));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["cidr"], "properties": {
                "cidr": {"type": "string", "pattern": "^[0-9./]+$", "maxLength": 18},
                "blockSize": {"type": "integer", "minimum": 20, "maximum": 32, "default": 26},
                "mode": {"type": "string", "enum": ["Automatic", "Manual"]},
                "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }},
            "status": {"type": "object"}
        }})
    }

    #[test]
    fn prunes_unknown_and_defaults() {
        let mut o = json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "x"},
            "spec": {"cidr": "10.0.0.0/8", "bogus": 1, "free": {"anything": true}}, "extra": 2});
        let unknown = prune_and_default(&schema(), &mut o);
        assert_eq!(unknown, vec!["extra".to_string(), "spec.bogus".to_string()]);
        assert_eq!(o["spec"]["blockSize"], 26);
        assert_eq!(o["spec"]["free"]["anything"], true);
        assert!(validate(&schema(), &o).is_empty());
    }

    #[test]
    fn reports_violations() {
        let o = json!({"spec": {"cidr": "abc", "blockSize": 10, "mode": "Other", "tags": ["a", "b", "c"]}});
        let causes = validate(&schema(), &o);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["spec.blockSize", "spec.cidr", "spec.mode", "spec.tags"]
        );
        let missing = validate(&schema(), &json!({"spec": {"blockSize": "x"}}));
        assert!(
            missing
                .iter()
                .any(|c| c.field == "spec.cidr" && c.kind == "FieldValueRequired")
        );
        assert!(
            missing
                .iter()
                .any(|c| c.field == "spec.blockSize"
                    && c.message.contains("must be of type integer"))
        );
    }
}
