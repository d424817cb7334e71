//! Fault injection for reliability tests: failing writes, delayed responses, dropped watches.
//! Reachable through [`Faults`] in-process and through `POST /_testserver/faults` for tests that
//! drive separate processes.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{ApiError, Reason};

/// Fail the next `count` writes (create, update, patch, delete, deletecollection, and their
/// subresources) to a resource, optionally to one object name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailWrites {
    /// API group, "" for core
    #[serde(default)]
    pub group: String,
    /// plural resource, e.g. `pods`, `ipamblocks`
    pub resource: String,
    /// only writes to this object name
    #[serde(default)]
    pub name: Option<String>,
    /// only these verbs (`create`, `update`, `patch`, `delete`, `deletecollection`); empty: all
    #[serde(default)]
    pub verbs: Vec<String>,
    /// HTTP status to answer: 409 (Conflict), 500 (InternalError), or another code with its usual reason (429 TooManyRequests, 503 ServiceUnavailable, 504 Timeout, ...)
    pub code: u16,
    /// how many writes to fail
    pub count: u32,
}

impl FailWrites {
    /// Fail `count` writes to `group`/`resource` with `code`.
    pub fn new(group: &str, resource: &str, code: u16, count: u32) -> Self {
        FailWrites {
            group: group.to_string(),
            resource: resource.to_string(),
            name: None,
            verbs: Vec::new(),
            code,
            count,
        }
    }

    /// Only these verbs (`create`, `update`, `patch`, `delete`, `deletecollection`).
    pub fn verbs(mut self, verbs: &[&str]) -> Self {
        self.verbs = verbs.iter().map(|v| v.to_string()).collect();
        self
    }

    /// Only writes to this object.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
}

/// The JSON body of `POST /_testserver/faults`; every present field is applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRequest {
    /// add a write-failure rule
    #[serde(default)]
    pub fail_writes: Option<FailWrites>,
    /// delay every API response by this many milliseconds (0 clears)
    #[serde(default)]
    pub delay_millis: Option<u64>,
    /// end every open watch stream now
    #[serde(default)]
    pub drop_watches: bool,
    /// forget the watch history: watches from any older resourceVersion get 410 Gone
    #[serde(default)]
    pub compact: bool,
    /// remove all rules and the delay
    #[serde(default)]
    pub clear: bool,
}

#[derive(Debug, Default)]
struct Inner {
    rules: Vec<FailWrites>,
    delay: Option<Duration>,
}

/// The fault rules in force.
#[derive(Debug, Default)]
pub struct FaultState {
    inner: Mutex<Inner>,
}

impl FaultState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn add(&self, rule: FailWrites) {
        self.lock().rules.push(rule);
    }

    pub(crate) fn set_delay(&self, d: Option<Duration>) {
        self.lock().delay = d.filter(|d| !d.is_zero());
    }

    pub(crate) fn clear(&self) {
        let mut i = self.lock();
        i.rules.clear();
        i.delay = None;
    }

    pub(crate) fn delay(&self) -> Option<Duration> {
        self.lock().delay
    }

    /// Remaining failures over all rules.
    pub(crate) fn pending(&self) -> u32 {
        self.lock().rules.iter().map(|r| r.count).sum()
    }

    /// Consume one failure for this write, if a rule matches.
    pub(crate) fn take(
        &self,
        verb: &str,
        group: &str,
        resource: &str,
        name: &str,
    ) -> Option<ApiError> {
        let mut i = self.lock();
        let pos = i.rules.iter().position(|r| {
            r.count > 0
                && (r.verbs.is_empty() || r.verbs.iter().any(|v| v == verb))
                && r.group == group
                && r.resource == resource
                && r.name.as_deref().is_none_or(|n| n == name)
        })?;
        let rule = &mut i.rules[pos];
        rule.count -= 1;
        let code = rule.code;
        if rule.count == 0 {
            i.rules.remove(pos);
        }
        let err = match code {
            409 => ApiError::conflict(group, resource, name),
            500 => {
                ApiError::internal("Internal error occurred: injected fault (rangepool-testserver)")
            }
            c => {
                let reason = match c {
                    403 => Reason::Forbidden,
                    404 => Reason::NotFound,
                    429 => Reason::TooManyRequests,
                    503 => Reason::ServiceUnavailable,
                    504 => Reason::Timeout,
                    _ => Reason::InternalError,
                };
                ApiError::new(reason, "injected fault (rangepool-testserver)").with_code(c)
            }
        };
        Some(err)
    }
}
