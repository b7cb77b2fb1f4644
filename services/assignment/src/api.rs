//! Assignment's HTTP routes: the ledger, handover sheets and their acknowledgement.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use shared::auth::{Caller, Claims, Role};
use shared::clock::Clock;
use shared::error::ApiError;
use shared::events::{HANDOVER_ACKNOWLEDGED, HandoverAcknowledged, ProblemSeq};
use shared::http::QueryParams;
use shared::outbox::Outbox;
use shared::reference;
use sqlx::PgPool;

use crate::store::{self, LedgerEntry, LedgerFilter};

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub outbox: Outbox,
    pub clock: Clock,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/ledger", get(get_ledger))
        .route("/v1/handovers/{no}", get(get_handover))
        .route("/v1/handovers/{no}/acknowledge", post(acknowledge_handover))
        .with_state(state)
}

/// Who may read the ledger, and which part: the campaign office and verifiers all of it, a
/// local government its own jurisdiction.
fn reading_scope(caller: &Caller) -> Result<Option<&str>, ApiError> {
    match caller.0.role {
        Role::Admin | Role::Verifier => Ok(None),
        Role::LocalGov => caller.jurisdiction().map(Some),
        Role::Inspector => Err(ApiError::forbidden(
            "Authorization",
            "the ledger is for the campaign office, verifiers and local governments",
        )),
    }
}

#[derive(serde::Deserialize)]
struct LedgerQuery {
    #[serde(flatten)]
    filter: LedgerFilter,
    format: Option<String>,
}

async fn get_ledger(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    QueryParams(query): QueryParams<LedgerQuery>,
) -> Result<Response, ApiError> {
    let within = reading_scope(&caller)?;
    let mut v = shared::error::Validator::new();
    if let Some(status) = &query.filter.status {
        v.check(
            crate::domain::STATUSES.contains(&status.as_str()),
            "status",
            format!("one of {}", crate::domain::STATUSES.join(", ")),
        );
    }
    if let Some(category) = &query.filter.category {
        v.check(reference::category(category).is_some(), "category", "not a known category");
    }
    v.finish()?;
    let rows = store::ledger(&mut *s.pool.acquire().await?, &query.filter, within).await?;
    let wants_csv = match query.format.as_deref() {
        Some("csv") => true,
        Some("json") | None => {
            query.format.is_none()
                && headers.get(header::ACCEPT).and_then(|a| a.to_str().ok()).is_some_and(|a| a.contains("text/csv"))
        }
        Some(other) => return Err(ApiError::invalid("format", format!("{other:?}: json or csv"))),
    };
    if wants_csv {
        Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], ledger_csv(&rows)).into_response())
    } else {
        Ok(Json(json!({ "count": rows.len(), "items": rows })).into_response())
    }
}

fn ledger_csv(rows: &[LedgerEntry]) -> String {
    let mut out = shared::csv::line(&[
        "problem_id",
        "round",
        "city_code",
        "county_code",
        "jurisdiction",
        "category",
        "severity",
        "site_name",
        "description",
        "handover_no",
        "assigned_at",
        "deadline",
        "status",
    ]);
    for r in rows {
        out.push_str(&shared::csv::line(&[
            &r.problem_id.to_string(),
            &r.round_id,
            &r.city_code,
            r.county_code.as_deref().unwrap_or(""),
            &r.jurisdiction,
            &r.category,
            &r.severity,
            &r.site_name,
            &r.description,
            r.handover_no.as_deref().unwrap_or(""),
            &r.assigned_at.map(shared::csv::timestamp).unwrap_or_default(),
            &r.deadline.map(|d| d.to_string()).unwrap_or_default(),
            &r.status,
        ]));
    }
    out
}

/// A local government sees a sheet addressed to its city, or to the city it is a county of.
fn may_see_sheet(claims: &Claims, city_code: &str) -> bool {
    match claims.role {
        Role::Admin | Role::Verifier => true,
        Role::LocalGov => claims.jurisdiction.as_deref().is_some_and(|j| reference::jurisdiction_covers(city_code, j)),
        Role::Inspector => false,
    }
}

async fn get_handover(
    State(s): State<AppState>,
    caller: Caller,
    Path(no): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut conn = s.pool.acquire().await?;
    let sheet = store::handover(&mut conn, &no, false)
        .await?
        .filter(|h| may_see_sheet(&caller.0, &h.city_code))
        .ok_or_else(|| ApiError::not_found(format!("handover sheet {no}")))?;
    let problems = store::handover_problems(&mut conn, &no).await?;
    Ok(Json(json!({ "handover": sheet, "problems": problems })))
}

/// The city government acknowledges receipt of a sheet (签收). Acknowledging again changes
/// nothing and answers the same.
async fn acknowledge_handover(
    State(s): State<AppState>,
    caller: Caller,
    Path(no): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Role::LocalGov)?;
    let jurisdiction = caller.jurisdiction()?.to_string();
    let mut tx = s.pool.begin().await?;
    let sheet = store::handover(&mut tx, &no, true)
        .await?
        .filter(|h| reference::jurisdiction_covers(&h.city_code, &jurisdiction))
        .ok_or_else(|| ApiError::not_found(format!("handover sheet {no}")))?;
    if sheet.city_code != jurisdiction {
        return Err(ApiError::forbidden("Authorization", "the city government acknowledges its sheets"));
    }
    if let Some(at) = sheet.acknowledged_at {
        return Ok(Json(json!({ "handover_no": no, "acknowledged_at": shared::csv::timestamp(at), "already": true })));
    }
    let now = s.clock.now();
    let moved = store::acknowledge(&mut tx, &no, &jurisdiction, now).await?;
    let event = HandoverAcknowledged {
        handover_no: no.clone(),
        city_code: sheet.city_code.clone(),
        acknowledged_at: now,
        problems: moved.into_iter().map(|(problem_id, problem_seq)| ProblemSeq { problem_id, problem_seq }).collect(),
    };
    s.outbox.publish(&mut tx, &HANDOVER_ACKNOWLEDGED, Some(&sheet.city_code), &no, &event).await?;
    tx.commit().await?;
    Ok(Json(json!({ "handover_no": no, "acknowledged_at": shared::csv::timestamp(now), "already": false })))
}
