//! HTTP plumbing: the JSON body extractor that names the bad field, the metrics recorder and the
//! request-latency middleware, and the layers every service's router gets.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{FromRequest, MatchedPath, Request};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

/// A JSON request body. Unlike axum's own, every rejection is problem+json, and a value of the
/// wrong shape names its field as a path (`site.lat`, `problems[0].category`).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json_content = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| {
                let v = v.trim();
                v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
            })
            .unwrap_or(false);
        if !json_content {
            return Err(ApiError::UnsupportedMediaType(FieldError::new("Content-Type", "expected application/json")));
        }
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::Malformed(FieldError::new("body", rejection.body_text()))
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Query parameters. Unlike axum's own, a bad one is answered problem+json naming it.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(QueryParams).map_err(|e| {
            let field = e.path().to_string();
            let detail = e.into_inner().to_string();
            let field = match detail.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
                Some(missing) => missing.to_string(),
                None if field == "." => "query".to_string(),
                None => field,
            };
            ApiError::Invalid(vec![FieldError::new(field, detail)])
        })
    }
}

/// Parses JSON, naming the field of the first error found.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(field_error)
}

/// Reads an already-parsed JSON value (a batch item, say) into `T`, naming the bad field.
pub fn parse_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(field_error)
}

fn field_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if inner.is_syntax() || inner.is_eof() {
        return ApiError::Malformed(FieldError::new("body", format!("malformed JSON: {inner}")));
    }
    let message = inner.to_string();
    // serde names a missing field in its message, while the path stops at its parent.
    let field = match message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
        Some(missing) if path == "." => missing.to_string(),
        Some(missing) => format!("{path}.{missing}"),
        None if path == "." => "body".to_string(),
        None => path,
    };
    let detail = message.split(" at line ").next().unwrap_or(&message).to_string();
    ApiError::Invalid(vec![FieldError::new(field, detail)])
}

/// The process-wide Prometheus recorder (one service per process, so one recorder).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
                .expect("bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Records each request's latency by route and status.
pub async fn track_requests(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route, "status" => status)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The layers every service's router gets: body limit (413), request timeout (503), latency
/// metrics, and a request span.
pub fn with_standard_layers(router: axum::Router, max_body_bytes: usize, timeout: Duration) -> axum::Router {
    router
        .layer(axum::middleware::from_fn(track_requests))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, timeout))
        .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        site: Inner,
        items: Vec<Inner>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        lat: f64,
    }

    fn field_of(json: &str) -> (StatusCode, String) {
        let e = parse_json::<Outer>(json.as_bytes()).unwrap_err();
        (e.status(), e.field_errors()[0].field.clone())
    }

    #[test]
    fn json_errors_name_the_field() {
        assert_eq!(
            field_of(r#"{"site": {"lat": "x"}, "items": []}"#),
            (StatusCode::UNPROCESSABLE_ENTITY, "site.lat".into())
        );
        assert_eq!(field_of(r#"{"site": {}, "items": []}"#), (StatusCode::UNPROCESSABLE_ENTITY, "site.lat".into()));
        assert_eq!(field_of(r#"{"items": []}"#), (StatusCode::UNPROCESSABLE_ENTITY, "site".into()));
        assert_eq!(
            field_of(r#"{"site": {"lat": 1}, "items": [{"lat": 1}, {"lat": true}]}"#),
            (StatusCode::UNPROCESSABLE_ENTITY, "items[1].lat".into())
        );
        assert_eq!(field_of(r#"{"site": "#), (StatusCode::BAD_REQUEST, "body".into()));
    }
}
