//! Notification's HTTP routes: the recipients of each jurisdiction and the notices sent.

use axum::extract::{Path, State};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::auth::{Caller, Role};
use shared::error::ApiError;
use shared::http::{JsonBody, QueryParams};
use sqlx::PgPool;

use crate::domain::{self, RecipientRequest};
use crate::store;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub webhook_deny_hosts: Vec<String>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/recipients/{code}", put(put_recipient).get(get_recipient))
        .route("/v1/notices", get(list_notices))
        .with_state(state)
}

async fn put_recipient(
    State(s): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    JsonBody(request): JsonBody<RecipientRequest>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    domain::validate_recipient(&code, &request, &s.webhook_deny_hosts).finish()?;
    let mut tx = s.pool.begin().await?;
    store::upsert_recipient(&mut tx, &code, &request).await?;
    // Notices that waited for a recipient go out now.
    let queued = store::queue_deliveries(&mut tx, &code).await?;
    let recipient = store::recipient(&mut tx, &code).await?;
    tx.commit().await?;
    Ok(Json(json!({ "recipient": recipient, "queued_notices": queued })))
}

async fn get_recipient(
    State(s): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let recipient = store::recipient(&mut *s.pool.acquire().await?, &code)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("recipient {code}")))?;
    Ok(Json(json!(recipient)))
}

#[derive(Deserialize)]
struct NoticeQuery {
    jurisdiction: Option<String>,
    /// Notices with a delivery in this status: pending, delivered or dead.
    status: Option<String>,
    limit: Option<i64>,
}

/// The campaign office sees every notice; a local government its own.
async fn list_notices(
    State(s): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<NoticeQuery>,
) -> Result<Json<Value>, ApiError> {
    let jurisdiction = match caller.0.role {
        Role::Admin => q.jurisdiction.clone(),
        Role::LocalGov => Some(caller.jurisdiction()?.to_string()),
        _ => {
            return Err(ApiError::forbidden(
                "Authorization",
                "notices are for the campaign office and their recipients",
            ));
        }
    };
    if let Some(status) = &q.status
        && !["pending", "delivered", "dead"].contains(&status.as_str())
    {
        return Err(ApiError::invalid("status", "pending, delivered or dead"));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "between 1 and 1000"));
    }
    let rows =
        store::notices(&mut *s.pool.acquire().await?, jurisdiction.as_deref(), q.status.as_deref(), limit).await?;
    Ok(Json(json!({ "count": rows.len(), "items": rows })))
}
