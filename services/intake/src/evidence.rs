//! Evidence from the field: photos and documents, kept in the JetStream object store (bucket
//! `{namespace}_evidence`) under their SHA-256, which is also their address.
//!
//! `POST /v1/evidence?visibility=public|internal` takes the raw bytes with their `Content-Type`
//! (not multipart: a field device sends one file per request and needs no form encoding) and
//! answers the URL and SHA-256 to put in a report's `evidence`. `GET /v1/evidence/{sha256}`
//! serves public evidence to anyone and internal evidence only to a bearer of a campaign token.

use std::collections::HashMap;
use std::sync::Arc;

use async_nats::jetstream::object_store::{self, InfoErrorKind, ObjectMetadata, ObjectStore};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use shared::auth::{Caller, Role, TokenVerifier};
use shared::error::{ApiError, FieldError};
use shared::http::QueryParams;
use shared::runtime::Runtime;
use sqlx::PgPool;
use tokio::io::AsyncReadExt;

/// The `[intake.evidence]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct EvidenceConfig {
    /// Largest photo or document accepted, in bytes; larger ones get 413.
    pub max_bytes: usize,
    /// The media types accepted (anything else gets 415): photos, video, PDF and office files,
    /// never anything a browser would run.
    pub content_types: Vec<String>,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        Self {
            max_bytes: 25 * 1024 * 1024,
            content_types: [
                "image/jpeg",
                "image/png",
                "image/webp",
                "image/heic",
                "image/heif",
                "image/gif",
                "image/tiff",
                "video/mp4",
                "video/quicktime",
                "application/pdf",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "text/plain",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        }
    }
}

#[derive(Clone)]
pub struct EvidenceState {
    pub pool: PgPool,
    pub store: ObjectStore,
    pub config: Arc<EvidenceConfig>,
    /// Empty: taken from each request's `Host`.
    pub public_base_url: String,
}

/// The bucket of a namespace.
pub fn bucket(namespace: &str) -> String {
    format!("{namespace}_evidence")
}

/// Opens (creating it the first time) the namespace's evidence bucket, file-backed.
pub async fn open_store(runtime: &Runtime) -> anyhow::Result<ObjectStore> {
    let name = bucket(&runtime.config.namespace);
    match runtime.jetstream.get_object_store(&name).await {
        Ok(store) => Ok(store),
        Err(_) => runtime
            .jetstream
            .create_object_store(object_store::Config {
                bucket: name.clone(),
                description: Some("Skyledger evidence: photos and documents by SHA-256".into()),
                storage: async_nats::jetstream::stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("cannot create the object store {name}: {e}")),
    }
}

pub fn router(state: EvidenceState) -> Router {
    let limit = state.config.max_bytes;
    Router::new()
        .route("/v1/evidence", post(upload).layer(DefaultBodyLimit::max(limit)))
        .route("/v1/evidence/{sha256}", get(download))
        .with_state(state)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Public,
    Internal,
}

impl Visibility {
    fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Internal => "internal",
        }
    }
}

#[derive(Deserialize)]
struct UploadQuery {
    /// Internal unless said otherwise.
    visibility: Option<Visibility>,
}

/// The media type of a `Content-Type` value, lowercased, without its parameters.
pub fn media_type(value: &str) -> String {
    value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A digest as it may appear in a URL: 64 hex digits, lowercased.
pub fn valid_digest(value: &str) -> Option<String> {
    (value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())).then(|| value.to_ascii_lowercase())
}

fn store_error(e: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "the evidence store failed");
    ApiError::Unavailable { detail: "the evidence store is unavailable".into(), retry_after_secs: 2 }
}

async fn upload(
    State(s): State<EvidenceState>,
    caller: Caller,
    QueryParams(query): QueryParams<UploadQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let claims = &caller.0;
    if !matches!(claims.role, Role::Inspector | Role::LocalGov | Role::Verifier) {
        return Err(ApiError::forbidden(
            "Authorization",
            "evidence is uploaded by inspectors, verifiers and local governments",
        ));
    }
    let visibility = query.visibility.unwrap_or(Visibility::Internal);
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(media_type);
    let content_type = match content_type {
        Some(t) if s.config.content_types.iter().any(|allowed| allowed.eq_ignore_ascii_case(&t)) => t,
        _ => {
            return Err(ApiError::UnsupportedMediaType(FieldError::new(
                "Content-Type",
                format!("the file's own type, one of {}", s.config.content_types.join(", ")),
            )));
        }
    };
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::Malformed(FieldError::new("body", rejection.body_text()))
        }
    })?;
    if body.is_empty() {
        return Err(ApiError::invalid("body", "the file is empty"));
    }
    let sha256 = sha256_hex(&body);
    // The object first, then the row: a row always has its object.
    match s.store.info(&sha256).await {
        Ok(_) => {}
        Err(e) if e.kind() == InfoErrorKind::NotFound => {
            let meta = ObjectMetadata {
                name: sha256.clone(),
                metadata: HashMap::from([("content-type".to_string(), content_type.clone())]),
                ..Default::default()
            };
            s.store.put(meta, &mut &body[..]).await.map_err(store_error)?;
        }
        Err(e) => return Err(store_error(e)),
    }
    let uploaded_by = json!({ "role": claims.role, "team": claims.team, "jurisdiction": claims.jurisdiction });
    // Once public, always public: whoever holds the bytes may publish them.
    let (visibility, content_type, inserted): (String, String, bool) = sqlx::query_as(
        "INSERT INTO intake.evidence (sha256, content_type, size_bytes, visibility, uploaded_by)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (sha256) DO UPDATE
             SET visibility = CASE WHEN excluded.visibility = 'public' THEN 'public' ELSE intake.evidence.visibility END
         RETURNING visibility, content_type, (xmax = 0)",
    )
    .bind(&sha256)
    .bind(&content_type)
    .bind(body.len() as i64)
    .bind(visibility.as_str())
    .bind(uploaded_by)
    .fetch_one(&s.pool)
    .await?;
    let url = format!("{}/v1/evidence/{sha256}", crate::open311::base_url(&s.public_base_url, &headers));
    let status = if inserted { StatusCode::CREATED } else { StatusCode::OK };
    Ok((
        status,
        Json(json!({
            "url": url, "sha256": sha256, "internal": visibility == "internal", "visibility": visibility,
            "content_type": content_type, "size": body.len(),
        })),
    ))
}

async fn download(
    State(s): State<EvidenceState>,
    Extension(verifier): Extension<Arc<TokenVerifier>>,
    Path(digest): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let missing = || ApiError::not_found(format!("evidence {digest}"));
    let sha256 = valid_digest(&digest).ok_or_else(missing)?;
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT visibility, content_type FROM intake.evidence WHERE sha256 = $1")
            .bind(&sha256)
            .fetch_optional(&s.pool)
            .await?;
    let (visibility, content_type) = row.ok_or_else(missing)?;
    let internal = visibility != "public";
    if internal {
        let unauthenticated = |detail: &str| ApiError::Unauthenticated(FieldError::new("Authorization", detail));
        // A bearer token, or a signed-in person's session cookie (the workbench shows photos).
        let token = shared::auth::token_in(&headers, &axum::http::Method::GET)
            .map_err(unauthenticated)?
            .ok_or_else(|| unauthenticated("internal evidence: a campaign token is required"))?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        verifier.verify(token.trim(), now).map_err(|e| unauthenticated(&e.to_string()))?;
    }
    let etag = format!("\"{sha256}\"");
    let cache = if internal { "private, no-store" } else { "public, max-age=31536000, immutable" };
    let mut response = if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut object = s.store.get(&sha256).await.map_err(store_error)?;
        let mut bytes = Vec::new();
        object.read_to_end(&mut bytes).await.map_err(store_error)?;
        let mut response = bytes.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&content_type).unwrap_or(HeaderValue::from_static("application/octet-stream")),
        );
        response
    };
    let out = response.headers_mut();
    out.insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex is a valid header value"));
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    out.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    out.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox; default-src 'none'"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_and_media_types() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(valid_digest(&"AB".repeat(32)), Some("ab".repeat(32)));
        assert_eq!(valid_digest("abc"), None);
        assert_eq!(valid_digest(&"g".repeat(64)), None);
        assert_eq!(media_type("Image/JPEG; charset=binary"), "image/jpeg");
        assert!(!EvidenceConfig::default().content_types.iter().any(|t| t.contains("html") || t.contains("svg")));
    }
}
