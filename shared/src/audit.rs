//! The audit log: who did what, when, from where — every write and every refused request,
//! with the caller's role, team, jurisdiction and token id (never the token). Records are
//! written by a background task in batches through a bounded queue, so auditing never slows a
//! request; if the queue is ever full the record is counted as dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use sqlx::{AssertSqlSafe, PgPool};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::auth::TokenVerifier;

#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub method: String,
    pub route: String,
    pub status: u16,
    pub role: Option<String>,
    pub team: Option<String>,
    pub jurisdiction: Option<String>,
    pub token_id: Option<Uuid>,
    /// The person a sign-in token names, and their name.
    pub person_id: Option<Uuid>,
    pub person: Option<String>,
    pub remote: Option<String>,
}

#[derive(Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<AuditRecord>,
    verifier: Arc<TokenVerifier>,
}

impl AuditLog {
    /// Starts the writer for `schema`; it drains the queue when `shutdown` comes.
    pub fn start(
        pool: PgPool,
        schema: &'static str,
        verifier: Arc<TokenVerifier>,
        shutdown: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (queue, mut records) = mpsc::channel::<AuditRecord>(10_000);
        let writer = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(500);
            loop {
                let more = tokio::select! {
                    n = records.recv_many(&mut batch, 500) => n > 0,
                    _ = shutdown.cancelled() => {
                        records.close();
                        while let Ok(r) = records.try_recv() { batch.push(r); }
                        false
                    }
                };
                if !batch.is_empty() {
                    if let Err(e) = write(&pool, schema, &batch).await {
                        tracing::warn!(error = %e, records = batch.len(), "cannot write audit records");
                    }
                    batch.clear();
                }
                if !more {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        (Self { queue, verifier }, writer)
    }
}

async fn write(pool: &PgPool, schema: &str, batch: &[AuditRecord]) -> sqlx::Result<()> {
    let sql = format!(
        "INSERT INTO {schema}.audit (method, route, status, role, team, jurisdiction, token_id, remote, person_id, person)
         SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::uuid[], $8::text[],
                              $9::uuid[], $10::text[])"
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(batch.iter().map(|r| r.method.clone()).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.route.clone()).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.status as i32).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.role.clone()).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.team.clone()).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.jurisdiction.clone()).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.token_id).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.remote.clone()).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.person_id).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.person.clone()).collect::<Vec<_>>())
        .execute(pool)
        .await?;
    Ok(())
}

/// Records writes and refusals. The caller is read from the bearer token (if it verifies);
/// where from is the peer address, or the first `X-Forwarded-For` hop behind a proxy.
pub async fn record(State(audit): State<AuditLog>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| request.uri().path().to_owned());
    let forwarded = request
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_string());
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.to_string());
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| crate::auth::cookie(request.headers(), crate::auth::SESSION_COOKIE))
        .map(|t| t.trim().to_string());
    let response = next.run(request).await;
    let status = response.status();
    let refused = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
    let read = method == Method::GET || method == Method::HEAD;
    if read && !refused {
        return response;
    }
    // An expired or revoked token still says who tried.
    let claims = token.as_deref().and_then(|t| audit.verifier.claims_even_if_stale(t));
    let record = AuditRecord {
        method: method.to_string(),
        route,
        status: status.as_u16(),
        role: claims.as_ref().map(|c| c.role.as_str().to_string()),
        team: claims.as_ref().and_then(|c| c.team.clone()),
        jurisdiction: claims.as_ref().and_then(|c| c.jurisdiction.clone()),
        token_id: claims.as_ref().map(|c| c.jti),
        person_id: claims.as_ref().and_then(|c| c.sub),
        person: claims.as_ref().and_then(|c| c.name.clone()),
        remote: forwarded.or(peer),
    };
    if audit.queue.try_send(record).is_err() {
        metrics::counter!("audit_records_dropped_total").increment(1);
    }
    response
}
