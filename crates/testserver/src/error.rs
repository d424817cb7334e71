//! API errors, rendered as Kubernetes `Status` objects exactly as kube-rs and kubectl decode them.

use serde_json::{Value, json};

/// The `reason` vocabulary of `metav1.StatusReason` that this server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// 400
    BadRequest,
    /// 403
    Forbidden,
    /// 404
    NotFound,
    /// 405
    MethodNotAllowed,
    /// 406
    NotAcceptable,
    /// 409, name taken
    AlreadyExists,
    /// 409, optimistic concurrency
    Conflict,
    /// 410
    Expired,
    /// 410 on watch
    Gone,
    /// 415
    UnsupportedMediaType,
    /// 422
    Invalid,
    /// 500
    InternalError,
    /// 504
    Timeout,
    /// 429
    TooManyRequests,
    /// 503
    ServiceUnavailable,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::BadRequest => "BadRequest",
            Reason::Forbidden => "Forbidden",
            Reason::NotFound => "NotFound",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::NotAcceptable => "NotAcceptable",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Expired => "Expired",
            Reason::Gone => "Gone",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::Invalid => "Invalid",
            Reason::InternalError => "InternalError",
            Reason::Timeout => "Timeout",
            Reason::TooManyRequests => "TooManyRequests",
            Reason::ServiceUnavailable => "ServiceUnavailable",
        }
    }

    fn code(self) -> u16 {
        match self {
            Reason::BadRequest => 400,
            Reason::Forbidden => 403,
            Reason::NotFound => 404,
            Reason::MethodNotAllowed => 405,
            Reason::NotAcceptable => 406,
            Reason::AlreadyExists | Reason::Conflict => 409,
            Reason::Expired | Reason::Gone => 410,
            Reason::UnsupportedMediaType => 415,
            Reason::Invalid => 422,
            Reason::InternalError => 500,
            Reason::Timeout => 504,
            Reason::TooManyRequests => 429,
            Reason::ServiceUnavailable => 503,
        }
    }
}

/// One entry of `Status.details.causes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// e.g. `FieldValueRequired`, `FieldValueInvalid`, `FieldManagerConflict`
    pub kind: String,
    /// human readable
    pub message: String,
    /// field path, e.g. `spec.cidr`
    pub field: String,
}

/// An error answer of the API: status code, reason, message and details.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason:?}: {message}")]
pub struct ApiError {
    /// HTTP status code
    pub code: u16,
    /// `Status.reason`
    pub reason: Reason,
    /// `Status.message`
    pub message: String,
    /// `details.group`, `details.kind` (the resource), `details.name`
    pub details: Option<Box<(String, String, String)>>,
    /// `details.causes`
    pub causes: Vec<Cause>,
}

impl ApiError {
    /// An error with the reason's usual code.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        ApiError {
            code: reason.code(),
            reason,
            message: message.into(),
            details: None,
            causes: Vec::new(),
        }
    }

    /// Same with an explicit code (fault injection may pick any).
    pub fn with_code(mut self, code: u16) -> Self {
        self.code = code;
        self
    }

    /// Attach `details` (group, resource, name).
    pub fn details(mut self, group: &str, resource: &str, name: &str) -> Self {
        self.details = Some(Box::new((
            group.to_string(),
            resource.to_string(),
            name.to_string(),
        )));
        self
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Reason::BadRequest, message)
    }

    /// 404 for a path that names no known resource.
    pub fn no_route() -> Self {
        Self::new(
            Reason::NotFound,
            "the server could not find the requested resource",
        )
    }

    /// 404 for a missing object, worded like the real server.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            Reason::NotFound,
            format!("{} \"{name}\" not found", qualified(group, resource)),
        )
        .details(group, resource, name)
    }

    /// 409 AlreadyExists.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            Reason::AlreadyExists,
            format!("{} \"{name}\" already exists", qualified(group, resource)),
        )
        .details(group, resource, name)
    }

    /// 409 Conflict on a stale resourceVersion.
    pub fn conflict(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            Reason::Conflict,
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                qualified(group, resource)
            ),
        )
        .details(group, resource, name)
    }

    /// 409 Conflict with a free message.
    pub fn conflict_msg(
        group: &str,
        resource: &str,
        name: &str,
        message: impl Into<String>,
    ) -> Self {
        Self::new(Reason::Conflict, message).details(group, resource, name)
    }

    /// 422 Invalid with field causes, message built like the real server's.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let list: Vec<String> = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        let joined = if list.len() == 1 {
            list[0].clone()
        } else {
            format!("[{}]", list.join(", "))
        };
        let mut e = Self::new(
            Reason::Invalid,
            format!("{} \"{name}\" is invalid: {joined}", qualified(group, kind)),
        )
        .details(group, kind, name);
        e.causes = causes;
        e
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Reason::InternalError, message)
    }

    /// The `Status` object for the body.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason.as_str(),
            "code": self.code,
        });
        if self.details.is_some() || !self.causes.is_empty() {
            let mut d = serde_json::Map::new();
            if let Some(det) = &self.details {
                let (group, kind, name) = det.as_ref();
                if !name.is_empty() {
                    d.insert("name".into(), json!(name));
                }
                if !group.is_empty() {
                    d.insert("group".into(), json!(group));
                }
                d.insert("kind".into(), json!(kind));
            }
            if !self.causes.is_empty() {
                let causes: Vec<Value> = self
                    .causes
                    .iter()
                    .map(|c| json!({"reason": c.kind, "message": c.message, "field": c.field}))
                    .collect();
                d.insert("causes".into(), Value::Array(causes));
            }
            status["details"] = Value::Object(d);
        }
        status
    }
}

/// `pods` or `ippools.rangepool.dev`, as the real server names a resource in messages.
pub fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// A field cause.
pub fn cause(kind: &str, field: impl Into<String>, message: impl Into<String>) -> Cause {
    Cause {
        kind: kind.to_string(),
        message: message.into(),
        field: field.into(),
    }
}

/// Result alias for API handlers.
pub type ApiResult<T> = Result<T, ApiError>;
