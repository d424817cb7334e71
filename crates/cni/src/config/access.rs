//! Typed reads from a JSON object that name the key's full path in every error.
//!
//! The configuration is read through these rather than derived `Deserialize` structs because
//! serde's messages point at a line and column of the input, which a person cannot map back to
//! the file the runtime assembled; and because this plugin must never echo its input (it can
//! hold credentials), errors name the type that was found, never the value.

use serde_json::{Map, Value};

use crate::error::{CniError, invalid};

/// A JSON object together with its path from the configuration's root.
#[derive(Clone, Copy)]
pub(crate) struct Obj<'a> {
    path: &'a str,
    map: &'a Map<String, Value>,
}

/// The JSON type of a value, for messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// `path.key`, or `key` at the root.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

pub(crate) fn wrong_type(key: &str, expected: &str, found: &Value) -> CniError {
    invalid(
        key,
        format!("expected {expected}, found {}", type_name(found)),
    )
}

impl<'a> Obj<'a> {
    /// The root object.
    pub(crate) fn root(map: &'a Map<String, Value>) -> Self {
        Obj { path: "", map }
    }

    /// A nested object at `path` (the caller keeps the path string alive).
    pub(crate) fn at(path: &'a str, map: &'a Map<String, Value>) -> Self {
        Obj { path, map }
    }

    /// The full path of `key` in this object.
    pub(crate) fn key(&self, key: &str) -> String {
        join(self.path, key)
    }

    /// The raw value of `key`; JSON `null` counts as absent, as Go's decoders treat it.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// An optional string.
    pub(crate) fn str(&self, key: &str) -> Result<Option<&'a str>, CniError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(wrong_type(&self.key(key), "a string", other)),
        }
    }

    /// A required string.
    pub(crate) fn required_str(&self, key: &str, what: &str) -> Result<&'a str, CniError> {
        self.str(key)?
            .ok_or_else(|| invalid(self.key(key), format!("missing; expected {what}")))
    }

    /// An optional object.
    pub(crate) fn map(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, CniError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(other) => Err(wrong_type(&self.key(key), "an object", other)),
        }
    }

    /// An optional list.
    pub(crate) fn list(&self, key: &str) -> Result<Option<&'a Vec<Value>>, CniError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(other) => Err(wrong_type(&self.key(key), "a list", other)),
        }
    }

    /// An optional list of strings.
    pub(crate) fn strings(&self, key: &str) -> Result<Vec<String>, CniError> {
        let Some(items) = self.list(key)? else {
            return Ok(Vec::new());
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(wrong_type(
                    &format!("{}[{i}]", self.key(key)),
                    "a string",
                    other,
                )),
            })
            .collect()
    }

    /// An optional non-negative number.
    pub(crate) fn number(&self, key: &str, expected: &str) -> Result<Option<f64>, CniError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(v) if v >= 0.0 && v.is_finite() => Ok(Some(v)),
                _ => Err(invalid(
                    self.key(key),
                    format!("expected {expected}, found a negative number"),
                )),
            },
            Some(other) => Err(wrong_type(&self.key(key), expected, other)),
        }
    }
}
