//! CRD `x-kubernetes-validations` (CEL rules, transition rules with `oldSelf`), evaluated with
//! kube-cel and reported like the real server: `spec.blockSize: Invalid value: "object": <message>`.
//! Rules that this CEL implementation cannot compile or evaluate are skipped with a warning
//! rather than refusing writes a real server would accept.

use serde_json::Value;

use crate::error::{Cause, cause};

/// The schema type of the node along `field_path` whose rules include `rule` (the real server
/// reports that type in "Invalid value").
fn rule_node_type(schema: &Value, field_path: &str, rule: &str) -> String {
    let mut node = schema;
    let mut found = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("object")
        .to_string();
    let has_rule = |n: &Value| {
        n.get("x-kubernetes-validations")
            .and_then(Value::as_array)
            .is_some_and(|rs| rs.iter().any(|r| r["rule"] == rule))
    };
    if has_rule(node) {
        return found;
    }
    for seg in field_path.split('.').filter(|s| !s.is_empty()) {
        let name = seg.split('[').next().unwrap_or(seg);
        let next = node
            .get("properties")
            .and_then(|p| p.get(name))
            .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()));
        let Some(mut next) = next else { break };
        if seg.contains('[')
            && let Some(items) = next.get("items")
        {
            next = items;
        }
        node = next;
        if has_rule(node) {
            found = node
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("object")
                .to_string();
            break;
        }
    }
    found
}

/// Evaluate every rule of `schema` (compiled as `compiled`) on `obj` (and transition rules
/// against `old`).
pub fn validate(
    schema: &Value,
    compiled: &kube_cel::CompiledSchema,
    obj: &Value,
    old: Option<&Value>,
) -> Vec<Cause> {
    use kube_cel::ErrorKind;
    let mut errors = Vec::new();
    walk(compiled, obj, old, String::new(), &mut errors);
    let mut causes = Vec::new();
    for e in errors {
        match e.kind {
            ErrorKind::ValidationFailure
            | ErrorKind::InvalidResult
            | ErrorKind::EvaluationError => {
                let ty = rule_node_type(schema, &e.field_path, &e.rule);
                let (kind, message) = match e.reason.as_deref() {
                    Some("FieldValueForbidden") => {
                        ("FieldValueForbidden", format!("Forbidden: {}", e.message))
                    }
                    Some("FieldValueRequired") => (
                        "FieldValueRequired",
                        format!("Required value: {}", e.message),
                    ),
                    Some("FieldValueDuplicate") => {
                        ("FieldValueDuplicate", format!("Duplicate value: \"{ty}\""))
                    }
                    _ => (
                        "FieldValueInvalid",
                        format!("Invalid value: \"{ty}\": {}", e.message),
                    ),
                };
                causes.push(cause(kind, e.field_path, message));
            }
            _ => {
                tracing::warn!(rule = %e.rule, "CEL rule not evaluated by rangepool-testserver: {}", e.message)
            }
        }
    }
    causes
}

/// Goes down the schema to the nodes that carry rules and has kube-cel evaluate each such node
/// on its part of the object. kube-cel, given the root, converts the whole subtree below every
/// schema node into a CEL value, rules or not: for a block with 60 allocations that was most of
/// the cost of a write. Paths and transition (`oldSelf`) pairing are those kube-cel would use.
fn walk(
    node: &kube_cel::CompiledSchema,
    value: &Value,
    old: Option<&Value>,
    path: String,
    errors: &mut Vec<kube_cel::ValidationError>,
) {
    if !node.validations.is_empty() {
        if let Err(found) = kube_cel::validate_compiled(node, value, old) {
            errors.extend(found.into_vec().into_iter().map(|mut e| {
                e.field_path = join(&path, &e.field_path);
                e
            }));
        }
        return;
    }
    if let Some(fields) = value.as_object() {
        for (name, child) in &node.properties {
            if let Some(v) = fields.get(name)
                && has_rules(child)
            {
                let old = old.and_then(|o| o.get(name));
                walk(child, v, old, join(&path, name), errors);
            }
        }
        if let Some(child) = &node.additional_properties
            && !node.preserve_unknown_fields
            && has_rules(child)
        {
            for (key, v) in fields {
                if !node.properties.contains_key(key) {
                    let old = old.and_then(|o| o.get(key));
                    walk(child, v, old, join(&path, key), errors);
                }
            }
        }
    }
    if let (Some(child), Some(items)) = (&node.items, value.as_array())
        && has_rules(child)
    {
        for (i, item) in items.iter().enumerate() {
            let old = old.and_then(Value::as_array).and_then(|a| a.get(i));
            walk(child, item, old, format!("{path}[{i}]"), errors);
        }
    }
    for branch in node.all_of.iter().chain(&node.one_of).chain(&node.any_of) {
        if has_rules(branch) {
            walk(branch, value, old, path.clone(), errors);
        }
    }
}

/// Whether `node` or anything below it carries a rule (or a rule that failed to compile).
fn has_rules(node: &kube_cel::CompiledSchema) -> bool {
    !node.validations.is_empty()
        || node.properties.values().any(has_rules)
        || node.items.as_deref().is_some_and(has_rules)
        || node.additional_properties.as_deref().is_some_and(has_rules)
        || node
            .all_of
            .iter()
            .chain(&node.one_of)
            .chain(&node.any_of)
            .any(has_rules)
}

/// `path` followed by a path kube-cel reported relative to it ("", "name", ".name", "[2]"). A map
/// key that itself starts with `.` or `[` is joined without the dot kube-cel would put before it.
fn join(path: &str, rest: &str) -> String {
    match (path.is_empty(), rest) {
        (true, _) => rest.to_owned(),
        (false, "") => path.to_owned(),
        (false, r) if r.starts_with(['.', '[']) => format!("{path}{r}"),
        (false, r) => format!("{path}.{r}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {
            "type": "object",
            "properties": {
                "cidr": {"type": "string", "x-kubernetes-validations": [
                    {"rule": "self == oldSelf", "message": "cidr is immutable"}]},
                "blockSize": {"type": "integer"}
            },
            "x-kubernetes-validations": [{"fieldPath": ".blockSize", "message": "blockSize must be between 20 and 32",
                "rule": "!has(self.blockSize) || (self.blockSize >= 20 && self.blockSize <= 32)"}]
        }}})
    }

    #[test]
    fn rules_and_transition_rules() {
        let ok = json!({"spec": {"cidr": "10.0.0.0/16", "blockSize": 26}});
        let compiled = kube_cel::compile_schema(&schema());
        let validate =
            |o: &Value, old: Option<&Value>| super::validate(&schema(), &compiled, o, old);
        assert!(validate(&ok, None).is_empty());
        let bad = json!({"spec": {"cidr": "10.0.0.0/16", "blockSize": 40}});
        let c = validate(&bad, None);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "spec.blockSize");
        assert_eq!(
            c[0].message,
            "Invalid value: \"object\": blockSize must be between 20 and 32"
        );
        let moved = json!({"spec": {"cidr": "10.1.0.0/16", "blockSize": 26}});
        let c = validate(&moved, Some(&ok));
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].field, "spec.cidr");
        assert!(c[0].message.contains("cidr is immutable"));
    }

    /// Rules at the root, under a map, under a list and with a field path: going straight to
    /// the rule nodes reports what kube-cel reports when it walks the whole object.
    #[test]
    fn walking_to_the_rules_reports_what_kube_cel_reports_from_the_root() {
        let schema = json!({"type": "object",
        "x-kubernetes-validations": [{"rule": "has(self.spec)", "message": "spec is required"}],
        "properties": {
            "metadata": {"type": "object"},
            "spec": {"type": "object", "properties": {
                "size": {"type": "integer"},
                "owners": {"type": "object", "additionalProperties": {
                    "type": "object",
                    "properties": {"seq": {"type": "integer",
                        "x-kubernetes-validations": [{"rule": "self >= oldSelf", "message": "seq only grows"}]}},
                    "x-kubernetes-validations": [{"rule": "self.seq < 100", "message": "seq below 100",
                        "fieldPath": ".seq"}]}},
                "ports": {"type": "array", "items": {"type": "integer",
                    "x-kubernetes-validations": [{"rule": "self > 0", "message": "port positive"}]}}
            }}
        }});
        let compiled = kube_cel::compile_schema(&schema);
        let ours = |o: &Value, old: Option<&Value>| {
            let mut found: Vec<(String, String)> = super::validate(&schema, &compiled, o, old)
                .into_iter()
                .map(|c| (c.field, c.message))
                .collect();
            found.sort();
            found
        };
        let theirs = |o: &Value, old: Option<&Value>| {
            let mut found: Vec<(String, String)> = kube_cel::validate_compiled(&compiled, o, old)
                .err()
                .map(|e| e.into_vec())
                .unwrap_or_default()
                .into_iter()
                .map(|e| {
                    let ty = rule_node_type(&schema, &e.field_path, &e.rule);
                    (
                        e.field_path,
                        format!("Invalid value: \"{ty}\": {}", e.message),
                    )
                })
                .collect();
            found.sort();
            found
        };
        let old = json!({"spec": {"owners": {"a": {"seq": 5}, "b": {"seq": 1}}, "ports": [1, 2]}});
        let cases = [
            (json!({"metadata": {"name": "x"}}), None),
            (
                json!({"spec": {"owners": {"a": {"seq": 200}}, "ports": [0, 3, -1]}}),
                None,
            ),
            (
                json!({"spec": {"owners": {"a": {"seq": 4}, "b": {"seq": 150}}, "ports": [1]}}),
                Some(&old),
            ),
            (old.clone(), Some(&old)),
        ];
        for (object, old) in cases {
            let found = ours(&object, old);
            assert_eq!(found, theirs(&object, old), "{object}");
        }
        // The cases do find something: the root rule, and one owner and two ports.
        assert_eq!(ours(&json!({"metadata": {}}), None).len(), 1);
        let bad = json!({"spec": {"owners": {"a": {"seq": 200}}, "ports": [0, 3, -1]}});
        let paths: Vec<String> = ours(&bad, None).into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            ["spec.owners.a.seq", "spec.ports[0]", "spec.ports[2]"]
        );
    }
}
