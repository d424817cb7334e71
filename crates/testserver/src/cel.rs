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
    let Err(errors) = kube_cel::validate_compiled(compiled, obj, old) else {
        return Vec::new();
    };
    let mut causes = Vec::new();
    for e in errors.into_vec() {
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
}
