//! One error type for every HTTP API, mapped once to RFC 9457 `application/problem+json`.
//! Every client error names the field it is about, so a form or a batch tool can point at it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// One thing wrong with a request: the field (a JSON path such as `site.lat`, or a header or
/// path parameter name) and what is wrong with it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub detail: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { field: field.into(), detail: detail.into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request parsed but breaks the rules (422).
    #[error("the request is not valid")]
    Invalid(Vec<FieldError>),
    /// The request could not be read at all: malformed JSON, wrong content type (400).
    #[error("the request is malformed: {0:?}")]
    Malformed(FieldError),
    #[error("authentication required: {0:?}")]
    Unauthenticated(FieldError),
    #[error("not allowed: {0:?}")]
    Forbidden(FieldError),
    /// Also answered where the caller may not know whether the thing exists.
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0:?}")]
    Conflict(FieldError),
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("unsupported media type: {0:?}")]
    UnsupportedMediaType(FieldError),
    /// Overload or a dependency down: the client should retry after the given seconds.
    #[error("unavailable: {detail}")]
    Unavailable { detail: String, retry_after_secs: u64 },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, detail)])
    }
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Forbidden(FieldError::new(field, detail))
    }
    pub fn conflict(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Conflict(FieldError::new(field, detail))
    }
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(what.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Malformed(_) => StatusCode::BAD_REQUEST,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The field errors this error carries, as the batch API reports them per item.
    pub fn field_errors(&self) -> Vec<FieldError> {
        match self {
            Self::Invalid(errors) => errors.clone(),
            Self::Malformed(e)
            | Self::Unauthenticated(e)
            | Self::Forbidden(e)
            | Self::Conflict(e)
            | Self::UnsupportedMediaType(e) => vec![e.clone()],
            Self::NotFound(what) => vec![FieldError::new("id", format!("{what} not found"))],
            Self::PayloadTooLarge => vec![FieldError::new("body", "too large")],
            Self::Unavailable { detail, .. } => vec![FieldError::new("", detail.clone())],
            Self::Internal(_) => vec![FieldError::new("", "internal error")],
        }
    }

    fn slug_and_title(&self) -> (&'static str, &'static str) {
        match self {
            Self::Invalid(_) => ("invalid-request", "The request is not valid"),
            Self::Malformed(_) => ("malformed-request", "The request is malformed"),
            Self::Unauthenticated(_) => ("unauthenticated", "Authentication required"),
            Self::Forbidden(_) => ("forbidden", "Not allowed"),
            Self::NotFound(_) => ("not-found", "Not found"),
            Self::Conflict(_) => ("conflict", "Conflict with the stored state"),
            Self::PayloadTooLarge => ("payload-too-large", "The request body is too large"),
            Self::UnsupportedMediaType(_) => ("unsupported-media-type", "Unsupported media type"),
            Self::Unavailable { .. } => ("unavailable", "Temporarily unavailable"),
            Self::Internal(_) => ("internal", "Internal error"),
        }
    }
}

impl ApiError {
    /// The answer while the database is away (restarting, unreachable, out of connections).
    pub fn database_unavailable() -> Self {
        Self::Unavailable { detail: "the database is unavailable; try again shortly".into(), retry_after_secs: 2 }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if crate::db::is_transient(&e) {
            return Self::database_unavailable();
        }
        // Class 22 (data exception): a value the database cannot hold (out of range, a
        // character it cannot store, a date that does not exist) came from the request.
        if let sqlx::Error::Database(db) = &e
            && db.code().is_some_and(|c| c.starts_with("22"))
        {
            tracing::warn!(error = %db, "a request value the database refused");
            return Self::invalid("body", format!("a value cannot be stored: {}", db.message()));
        }
        Self::Internal(e.into())
    }
}

/// RFC 9457 problem details, with the field errors as an extension member.
#[derive(Serialize)]
struct ProblemDetails<'a> {
    #[serde(rename = "type")]
    problem_type: String,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldError>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // A handler that wrapped a database outage in its own error still answers 503.
        let this = match self {
            Self::Internal(e) if crate::db::is_transient_chain(&e) => Self::database_unavailable(),
            other => other,
        };
        let status = this.status();
        let (slug, title) = this.slug_and_title();
        let errors = match &this {
            Self::Internal(_) | Self::NotFound(_) | Self::PayloadTooLarge => vec![],
            other => other.field_errors(),
        };
        let detail = match &this {
            Self::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                "an internal error occurred; it has been logged".to_string()
            }
            Self::NotFound(what) => format!("{what} not found"),
            Self::Unavailable { detail, .. } => detail.clone(),
            _ => errors
                .iter()
                .map(|e| if e.field.is_empty() { e.detail.clone() } else { format!("{}: {}", e.field, e.detail) })
                .collect::<Vec<_>>()
                .join("; "),
        };
        let body = ProblemDetails {
            problem_type: format!("https://skyledger.org/problems/{slug}"),
            title,
            status: status.as_u16(),
            detail,
            errors,
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Self::Unavailable { retry_after_secs, .. } = this {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A problem+json answer of any status, for errors the framework makes (405, say) that no
/// variant of [`ApiError`] stands for.
pub fn problem_response(status: StatusCode, detail: String) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let slug = title.to_lowercase().replace(' ', "-");
    let body = ProblemDetails {
        problem_type: format!("https://skyledger.org/problems/{slug}"),
        title,
        status: status.as_u16(),
        detail,
        errors: vec![],
    };
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    response
}

/// Collects every rule a request breaks, so one answer names all the bad fields at once.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn check(&mut self, ok: bool, field: impl Into<String>, detail: impl Into<String>) -> bool {
        if !ok {
            self.errors.push(FieldError::new(field, detail));
        }
        ok
    }
    pub fn fail(&mut self, field: impl Into<String>, detail: impl Into<String>) {
        self.errors.push(FieldError::new(field, detail));
    }
    /// A required piece of text of at most `max_bytes`, not blank.
    pub fn text(&mut self, field: &str, value: &str, max_bytes: usize, detail: &str) -> bool {
        self.check(
            !value.trim().is_empty() && value.len() <= max_bytes,
            field,
            format!("{detail} (at most {max_bytes} bytes)"),
        )
    }

    /// The reason kept with a decision (a withdrawal, a dispute, an extension…).
    pub fn reason(&mut self, reason: &str) -> bool {
        self.text("reason", reason, 2000, "give a reason")
    }

    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() { Ok(()) } else { Err(ApiError::Invalid(self.errors)) }
    }
}
