//! Label selectors (equality and set-based) and field selectors, parsed as the real server parses
//! `labelSelector=` and `fieldSelector=` query parameters.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// One label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    NotExists(String),
    Gt(String, i64),
    Lt(String, i64),
}

/// A parsed label selector: all requirements must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    reqs: Vec<LabelReq>,
}

impl LabelSelector {
    /// Parse `a=b,c!=d,e in (x,y),f notin (z),g,!h`.
    pub fn parse(s: &str) -> ApiResult<Self> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            reqs.push(parse_label_req(part)?);
        }
        Ok(LabelSelector { reqs })
    }

    /// Whether an object's labels match.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.reqs.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.contains(x)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|x| !vs.contains(x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
            LabelReq::Gt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            LabelReq::Lt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        })
    }
}

/// Split on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn bad(part: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!("unable to parse requirement: {why}: \"{part}\""))
}

fn check_key(part: &str, key: &str) -> ApiResult<String> {
    let key = key.trim();
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
    });
    if name_ok && prefix_ok {
        Ok(key.to_string())
    } else {
        Err(bad(part, "invalid label key"))
    }
}

fn check_value(part: &str, v: &str) -> ApiResult<String> {
    let v = v.trim();
    let ok = v.is_empty()
        || (v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()));
    if ok {
        Ok(v.to_string())
    } else {
        Err(bad(part, "invalid label value"))
    }
}

fn parse_set(part: &str, rest: &str) -> ApiResult<BTreeSet<String>> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| bad(part, "expected a set in parentheses"))?;
    inner.split(',').map(|v| check_value(part, v)).collect()
}

fn parse_label_req(part: &str) -> ApiResult<LabelReq> {
    if let Some(k) = part.strip_prefix('!') {
        return Ok(LabelReq::NotExists(check_key(part, k)?));
    }
    // set-based: "key in (..)" / "key notin (..)"
    let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    if words.len() == 2 {
        let key = words[0];
        let rest = words[1].trim_start();
        if let Some(r) = rest.strip_prefix("notin") {
            return Ok(LabelReq::NotIn(check_key(part, key)?, parse_set(part, r)?));
        }
        if let Some(r) = rest.strip_prefix("in") {
            return Ok(LabelReq::In(check_key(part, key)?, parse_set(part, r)?));
        }
    }
    for (op, build) in [
        ("!=", LabelReq::NotEq as fn(String, String) -> LabelReq),
        ("==", LabelReq::Eq),
        ("=", LabelReq::Eq),
    ] {
        if let Some((k, v)) = part.split_once(op) {
            return Ok(build(check_key(part, k)?, check_value(part, v)?));
        }
    }
    for (op, gt) in [(">", true), ("<", false)] {
        if let Some((k, v)) = part.split_once(op) {
            let n: i64 = v.trim().parse().map_err(|_| {
                bad(
                    part,
                    "for 'Gt', 'Lt' operators, the value must be an integer",
                )
            })?;
            let k = check_key(part, k)?;
            return Ok(if gt {
                LabelReq::Gt(k, n)
            } else {
                LabelReq::Lt(k, n)
            });
        }
    }
    Ok(LabelReq::Exists(check_key(part, part)?))
}

/// A parsed field selector: `field=value`, `field==value`, `field!=value`, comma separated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    reqs: Vec<(String, bool, String)>,
}

impl FieldSelector {
    /// Parse and check each field against the resource's supported field labels.
    pub fn parse(s: &str, supported: &[&str], kind_version: &str) -> ApiResult<Self> {
        let mut reqs = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (field, eq, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            if !supported.contains(&field) {
                return Err(
                    ApiError::bad_request(format!("field label not supported: {field}")).details(
                        "",
                        kind_version,
                        "",
                    ),
                );
            }
            reqs.push((field.to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector { reqs })
    }

    /// Whether an object matches. Missing fields compare as the empty string, booleans as
    /// `true`/`false`, like the real field label conversion.
    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|(field, eq, want)| {
            let got = field_value(obj, field);
            (got == *want) == *eq
        })
    }

    /// No requirement at all.
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }
}

/// The string value of a dotted field path, as field selectors see it.
pub fn field_value(obj: &Value, field: &str) -> String {
    let mut cur = obj;
    for seg in field.split('.') {
        match cur.get(seg) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// What a list or watch selects: namespace, labels and fields.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// only this namespace (None: all)
    pub namespace: Option<String>,
    /// label selector
    pub labels: LabelSelector,
    /// field selector
    pub fields: FieldSelector,
}

impl Filter {
    /// Whether a stored object is selected; field selectors see the served view.
    pub fn matches(&self, def: &crate::resources::ResourceDef, stored: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && stored
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                != Some(ns.as_str())
        {
            return false;
        }
        if !self.labels.matches(stored) {
            return false;
        }
        if self.fields.is_empty() {
            return true;
        }
        if def.builtin == Some(crate::resources::Builtin::EventV1) {
            self.fields.matches(&crate::decode::to_view(def, stored))
        } else {
            self.fields.matches(stored)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "labels": labels}, "spec": {"nodeName": "n1"}})
    }

    #[test]
    fn label_selector_forms() {
        let o = obj(json!({"app": "web", "tier": "fe", "n": "5"}));
        let t = |s: &str| LabelSelector::parse(s).unwrap().matches(&o);
        assert!(t("app=web"));
        assert!(t("app==web"));
        assert!(!t("app!=web"));
        assert!(t("app in (web, db)"));
        assert!(!t("app notin (web)"));
        assert!(t("missing notin (web)"));
        assert!(t("tier"));
        assert!(!t("!tier"));
        assert!(t("!missing"));
        assert!(t("app=web,tier in (fe),!x"));
        assert!(t("n>4"));
        assert!(!t("n<4"));
        assert!(t(""));
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a b c=d").is_err());
    }

    #[test]
    fn field_selector_forms() {
        let o = obj(json!({}));
        let sup = ["metadata.name", "spec.nodeName"];
        let t = |s: &str| FieldSelector::parse(s, &sup, "Pod").unwrap().matches(&o);
        assert!(t("metadata.name=a"));
        assert!(t("spec.nodeName!=n2"));
        assert!(!t("spec.nodeName!=n1"));
        assert!(t("metadata.name==a,spec.nodeName=n1"));
        assert!(FieldSelector::parse("spec.foo=x", &sup, "Pod").is_err());
        let unbound = json!({"metadata": {"name": "b"}, "spec": {}});
        assert!(
            FieldSelector::parse("spec.nodeName=", &sup, "Pod")
                .unwrap()
                .matches(&unbound)
        );
    }
}
