//! HTTP plumbing: the JSON body extractor that names the bad field, the metrics recorder and the
//! request-latency middleware, and the layers every service's router gets.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{FromRequest, MatchedPath, Request};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
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

/// Whether JSON text carries the escape `\u0000`: valid JSON, but Postgres stores no NUL
/// character in text or jsonb, so it is refused before it gets there.
fn has_escaped_nul(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1) == Some(&b'u') && bytes.get(i + 2..i + 6) == Some(b"0000".as_slice()) {
                return true;
            }
            // Skip the escaped character (a `\\` is one backslash, not the start of an escape).
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// An id in a path (`/v1/problems/{id}`), refused as 422 naming `id` when it is no UUID.
pub fn parse_id(id: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(id).map_err(|_| ApiError::invalid("id", "an id is a UUID"))
}

/// Parses JSON, naming the field of the first error found.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if has_escaped_nul(bytes) {
        return Err(ApiError::invalid("body", "text may not contain the NUL character (\\u0000)"));
    }
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

/// Answers a request that takes longer than `timeout` with 503 problem+json and `Retry-After`.
async fn time_limit(
    axum::extract::State(timeout): axum::extract::State<Duration>,
    req: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            metrics::counter!("http_timeouts_total").increment(1);
            ApiError::Unavailable {
                detail: format!("the request took longer than {} s; try again shortly", timeout.as_secs_f64()),
                retry_after_secs: 5,
            }
            .into_response()
        }
    }
}

/// Gives every error answer the framework makes by itself (no such route, method not allowed,
/// a path parameter that does not parse, a body over the limit: plain text or empty) the
/// problem+json shape every other error has. Answers a handler shaped itself (problem+json, an
/// Open311 error in JSON or XML) pass untouched.
async fn problem_details(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let media = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !(media.is_empty() || media.starts_with("text/plain")) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024).await.map(|b| String::from_utf8_lossy(&b).into_owned());
    let detail = text.ok().filter(|t| !t.trim().is_empty());
    let mut problem = match status {
        StatusCode::NOT_FOUND => ApiError::NotFound("no such resource".into()).into_response(),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge.into_response(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(FieldError::new(
            "Content-Type",
            detail.unwrap_or_else(|| "unsupported media type".into()),
        ))
        .into_response(),
        // A path parameter or query the router could not read.
        StatusCode::BAD_REQUEST => {
            ApiError::Malformed(FieldError::new("path", detail.unwrap_or_else(|| "malformed request".into())))
                .into_response()
        }
        other => crate::error::problem_response(
            other,
            detail.unwrap_or_else(|| other.canonical_reason().unwrap_or("error").to_lowercase()),
        ),
    };
    // Keep what the framework said besides (`Allow` on a 405, say).
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().entry(name.clone()).or_insert(value.clone());
        }
    }
    problem
}

/// Refuses a path or query carrying an encoded NUL character (`%00`): no identifier or filter
/// holds one, and Postgres cannot compare text with it.
async fn refuse_nul(req: Request, next: Next) -> Response {
    let nul = |text: &str| text.as_bytes().windows(3).any(|w| w.eq_ignore_ascii_case(b"%00"));
    let uri = req.uri();
    if nul(uri.path()) {
        return ApiError::Malformed(FieldError::new("path", "the NUL character (%00) is not allowed")).into_response();
    }
    if uri.query().is_some_and(nul) {
        return ApiError::Malformed(FieldError::new("query", "the NUL character (%00) is not allowed")).into_response();
    }
    next.run(req).await
}

/// Settings of the admission limit on a service's API routes.
#[derive(Debug, Clone)]
pub struct AdmissionLimit {
    /// Requests handled at once; 0: no limit.
    pub max_in_flight: usize,
    /// Requests that may wait for a place; beyond that, refused at once.
    pub max_waiting: usize,
    /// How long a request waits for a place before it is refused.
    pub max_wait: Duration,
    /// The `Retry-After` of a refusal, in seconds.
    pub retry_after_secs: u64,
}

#[derive(Clone)]
struct Admission {
    limit: Arc<AdmissionLimit>,
    places: Arc<tokio::sync::Semaphore>,
    waiting: Arc<AtomicUsize>,
}

/// Decrements the waiting count however the wait ends (the client may hang up).
struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A bounded queue in front of the handlers: at most `max_in_flight` requests at once, at most
/// `max_waiting` waiting for a place, each at most `max_wait`; the rest are refused 503 with
/// `Retry-After` before their body is read, so memory stays bounded however hard clients push.
async fn admit(axum::extract::State(admission): axum::extract::State<Admission>, req: Request, next: Next) -> Response {
    let place = match admission.places.clone().try_acquire_owned() {
        Ok(place) => place,
        Err(_) => {
            let waiting = Waiting(admission.waiting.clone());
            let queued = admission.waiting.fetch_add(1, Ordering::SeqCst);
            let place = if queued < admission.limit.max_waiting {
                tokio::time::timeout(admission.limit.max_wait, admission.places.clone().acquire_owned()).await.ok()
            } else {
                None
            };
            drop(waiting);
            match place {
                Some(Ok(place)) => place,
                _ => {
                    metrics::counter!("http_refused_overload_total").increment(1);
                    discard_body(req).await;
                    return ApiError::Unavailable {
                        detail: "too many requests in progress; try again shortly".into(),
                        retry_after_secs: admission.limit.retry_after_secs,
                    }
                    .into_response();
                }
            }
        }
    };
    let response = next.run(req).await;
    drop(place);
    response
}

/// Reads a refused request's body and throws it away (at most 16 MiB, for at most 5 s), so the
/// client, still sending, gets to read the refusal instead of a broken pipe. Nothing is kept.
async fn discard_body(req: Request) {
    use futures::StreamExt;
    let mut chunks = req.into_body().into_data_stream();
    let mut seen = 0usize;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(chunk)) = chunks.next().await {
            seen += chunk.len();
            if seen > 16 * 1024 * 1024 {
                break;
            }
        }
    })
    .await;
}

/// Puts the admission limit on a service's own routes (not on the system routes, so health and
/// metrics answer under overload).
pub fn with_admission_limit(router: axum::Router, limit: AdmissionLimit) -> axum::Router {
    if limit.max_in_flight == 0 {
        return router;
    }
    let admission = Admission {
        places: Arc::new(tokio::sync::Semaphore::new(limit.max_in_flight)),
        limit: Arc::new(limit),
        waiting: Arc::new(AtomicUsize::new(0)),
    };
    router.layer(axum::middleware::from_fn_with_state(admission, admit))
}

/// Refuses writes (every method but GET and HEAD) 503 with `Retry-After` while the service's
/// outbox relay cannot get events to JetStream — the broker is away, or a NATS cluster lost its
/// quorum and stores nothing. What is accepted would wait in the outbox, unseen by every other
/// service, for as long as the outage lasts; the field app keeps it on the phone instead and
/// sends it again. Reads go on.
pub fn refuse_writes_while_stalled(router: axum::Router, outbox: crate::outbox::Outbox) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(outbox, refuse_if_stalled))
}

async fn refuse_if_stalled(
    axum::extract::State(outbox): axum::extract::State<crate::outbox::Outbox>,
    req: Request,
    next: Next,
) -> Response {
    let read = matches!(*req.method(), axum::http::Method::GET | axum::http::Method::HEAD);
    if read || !outbox.stalled() {
        return next.run(req).await;
    }
    metrics::counter!("http_refused_broker_unavailable_total").increment(1);
    discard_body(req).await;
    ApiError::Unavailable {
        detail: "events cannot reach the message broker just now; nothing was recorded, try again shortly".into(),
        retry_after_secs: 2,
    }
    .into_response()
}

/// The layers every service's router gets: body limit (413), request timeout (503 with
/// `Retry-After`), latency metrics, problem+json for the framework's own error answers, and a
/// request span.
pub fn with_standard_layers(router: axum::Router, max_body_bytes: usize, timeout: Duration) -> axum::Router {
    router
        .layer(axum::middleware::from_fn(track_requests))
        .layer(axum::middleware::from_fn_with_state(timeout, time_limit))
        .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(refuse_nul))
        .layer(axum::middleware::from_fn(problem_details))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(request_span)
                // One access-log line per request, inside its span, so it carries the trace id.
                .on_response(tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
}

/// A request's span, at INFO so that it is exported and its trace id is in the logs; it
/// continues the caller's trace when the request carries a `traceparent`.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        trace_id = tracing::field::Empty
    );
    let traceparent = request.headers().get("traceparent").and_then(|v| v.to_str().ok());
    crate::telemetry::continue_trace(&span, traceparent);
    span.record("trace_id", crate::telemetry::trace_id(&span));
    span
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

    #[test]
    fn an_escaped_nul_is_refused_and_an_escaped_backslash_before_u0000_is_not() {
        assert!(has_escaped_nul(br#"{"a": "x\u0000"}"#));
        assert!(has_escaped_nul(br#"{"a": "\\\u0000"}"#));
        assert!(!has_escaped_nul(br#"{"a": "\\u0000"}"#));
        assert!(!has_escaped_nul(br#"{"a": "\u0001"}"#));
        assert_eq!(
            parse_json::<serde_json::Value>(br#"{"a": "\u0000"}"#).unwrap_err().status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
}
