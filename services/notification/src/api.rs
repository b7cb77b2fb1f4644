//! Notification's HTTP routes: the recipients of each jurisdiction and a city's package units,
//! the notices sent, their receipts, and the replay of dead ones.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{Html, Redirect};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::auth::{Caller, Role};
use shared::clock::Clock;
use shared::error::ApiError;
use shared::http::{JsonBody, QueryParams};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{self, Kind, PackageUnitsRequest, Receipts, RecipientRequest};
use crate::store;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub webhook_deny_hosts: Vec<String>,
    pub receipts: Receipts,
    pub clock: Clock,
    pub sms: bool,
    pub outbox: shared::outbox::Outbox,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/recipients/{code}", put(put_recipient).get(get_recipient))
        .route("/v1/recipients/{code}/package-units", put(put_package_units).get(get_package_units))
        .route("/v1/notices", get(list_notices))
        .route("/v1/notices/{id}/acknowledge", post(acknowledge))
        .route("/v1/notices/{id}/receipt", get(receipt_page).post(give_receipt))
        .route("/v1/notices/{id}/replay", post(replay))
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
    store::upsert_recipient(&mut tx, &code, &request, None, None).await?;
    // Notices that waited for a recipient go out now.
    let queued = store::queue_deliveries(&mut tx, &[], Some(&domain::city_of(&code)), s.sms).await?;
    let recipient = store::recipient(&mut tx, &code).await?.map(|r| r.view());
    tx.commit().await?;
    Ok(Json(json!({ "recipient": recipient, "queued_notices": queued })))
}

async fn get_recipient(
    State(s): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let mut conn = s.pool.acquire().await?;
    let recipient =
        store::recipient(&mut conn, &code).await?.ok_or_else(|| ApiError::not_found(format!("recipient {code}")))?;
    let units: Vec<Value> = store::package_units(&mut conn, &code).await?.iter().map(|u| u.view()).collect();
    let mut view = recipient.view();
    view["package_units"] = json!(units);
    Ok(Json(view))
}

/// The city's package units (三位一体包保), replaced as a whole: they get escalations of the
/// city in CC, and handover notices the city leaves unacknowledged.
async fn put_package_units(
    State(s): State<AppState>,
    caller: Caller,
    Path(city): Path<String>,
    JsonBody(request): JsonBody<PackageUnitsRequest>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    domain::validate_package_units(&city, &request, &s.webhook_deny_hosts).finish()?;
    let mut tx = s.pool.begin().await?;
    let codes: Vec<String> = request.units.iter().map(|u| domain::package_unit_code(&city, &u.role)).collect();
    store::remove_package_units_except(&mut tx, &city, &codes).await?;
    for (unit, code) in request.units.iter().zip(&codes) {
        store::upsert_recipient(&mut tx, code, &unit.recipient, Some(&city), Some(&unit.role)).await?;
    }
    let queued = store::queue_deliveries(&mut tx, &[], Some(&city), s.sms).await?;
    let units: Vec<Value> = store::package_units(&mut tx, &city).await?.iter().map(|u| u.view()).collect();
    tx.commit().await?;
    Ok(Json(json!({ "city": city, "units": units, "queued_notices": queued })))
}

async fn get_package_units(
    State(s): State<AppState>,
    caller: Caller,
    Path(city): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let units: Vec<Value> =
        store::package_units(&mut *s.pool.acquire().await?, &city).await?.iter().map(|u| u.view()).collect();
    Ok(Json(json!({ "city": city, "units": units })))
}

#[derive(Deserialize)]
struct NoticeQuery {
    jurisdiction: Option<String>,
    /// Notices with a delivery in this status: pending, delivered or dead.
    status: Option<String>,
    kind: Option<String>,
    limit: Option<i64>,
}

/// The campaign office sees every notice; a local government its own (a city also its
/// counties').
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
    if let Some(kind) = &q.kind
        && !Kind::ALL.iter().any(|k| k.as_str() == kind)
    {
        let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        return Err(ApiError::invalid("kind", format!("one of {}", kinds.join(", "))));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "between 1 and 1000"));
    }
    let filter = store::NoticeFilter {
        jurisdiction: jurisdiction.as_deref(),
        status: q.status.as_deref(),
        kind: q.kind.as_deref(),
        limit,
    };
    let rows = store::notices(&mut *s.pool.acquire().await?, &filter).await?;
    Ok(Json(json!({ "count": rows.len(), "items": rows })))
}

fn notice_id(text: &str) -> Result<Uuid, ApiError> {
    text.parse().map_err(|_| ApiError::invalid("id", "a notice id (UUID)"))
}

async fn record_receipt(s: &AppState, id: Uuid, by: &str) -> Result<Value, ApiError> {
    let mut tx = s.pool.begin().await?;
    store::acknowledge_notice(&mut tx, id, s.clock.now(), by).await?;
    let head = store::notice_head(&mut tx, id).await?.ok_or_else(|| ApiError::not_found(format!("notice {id}")))?;
    tx.commit().await?;
    Ok(json!({ "id": id, "kind": head.kind, "acknowledged_at": head.acknowledged_at.map(shared::csv::timestamp) }))
}

/// The recipient acknowledges a notice with its local government token.
async fn acknowledge(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::LocalGov)?;
    let id = notice_id(&id)?;
    let jurisdiction = caller.jurisdiction()?.to_string();
    let head = store::notice_head(&mut *s.pool.acquire().await?, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("notice {id}")))?;
    let addressed =
        shared::reference::jurisdiction_covers(&jurisdiction, &head.jurisdiction) || jurisdiction == head.city_code;
    if !addressed {
        return Err(ApiError::forbidden("Authorization", format!("notice {id} is not addressed to {jurisdiction}")));
    }
    Ok(Json(record_receipt(&s, id, &format!("local_gov:{jurisdiction}")).await?))
}

#[derive(Deserialize)]
struct ReceiptQuery {
    sig: String,
}

/// The receipt page a notice's signed link opens.
#[derive(Template)]
#[template(path = "receipt.html")]
struct ReceiptPage<'a> {
    sig: &'a str,
    title: &'a str,
    handover_no: Option<&'a str>,
    jurisdiction: &'a str,
    sent_at: String,
    acknowledged_at: Option<String>,
}

/// The signed link in a notice opens a page that shows what it is about and has a 签收 button.
/// Opening it changes nothing: a mail scanner that follows links must not sign for the city.
async fn receipt_page(
    State(s): State<AppState>,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<ReceiptQuery>,
) -> Result<Html<String>, ApiError> {
    let id = notice_id(&id)?;
    if !s.receipts.verify(id, &q.sig) {
        return Err(ApiError::forbidden("sig", "this link is not signed for this notice"));
    }
    let head = store::notice_head(&mut *s.pool.acquire().await?, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("notice {id}")))?;
    let page = ReceiptPage {
        sig: &q.sig,
        title: if head.handover_no.is_some() { "交办通知 / Handover notice" } else { "通知 / Notice" },
        handover_no: head.handover_no.as_deref(),
        jurisdiction: &head.jurisdiction,
        sent_at: shared::clock::beijing_minute(head.created_at),
        acknowledged_at: head.acknowledged_at.map(shared::clock::beijing_minute),
    };
    Ok(Html(page.render().expect("the receipt page renders")))
}

/// The receipt page's button (a form carrying the link's signature): records the receipt and
/// shows the page again.
async fn give_receipt(State(s): State<AppState>, Path(id): Path<String>, body: Bytes) -> Result<Redirect, ApiError> {
    let id = notice_id(&id)?;
    let sig = form_urlencoded::parse(&body)
        .find(|(name, _)| name == "sig")
        .map(|(_, value)| value.into_owned())
        .ok_or_else(|| ApiError::invalid("sig", "the form carries the link's signature"))?;
    if !s.receipts.verify(id, &sig) {
        return Err(ApiError::forbidden("sig", "this link is not signed for this notice"));
    }
    // One act: the receipt is recorded here and, in the same transaction, announced, so
    // assignment acknowledges the sheet in the ledger.
    let mut tx = s.pool.begin().await?;
    let head = store::notice_head(&mut tx, id).await?.ok_or_else(|| ApiError::not_found(format!("notice {id}")))?;
    if head.acknowledged_at.is_none() {
        let now = s.clock.now();
        store::acknowledge_notice(&mut tx, id, now, "link").await?;
        let event = shared::events::NoticeReceipted {
            notice_id: id,
            handover_no: head.handover_no.clone(),
            jurisdiction: head.jurisdiction.clone(),
            city_code: head.city_code.clone(),
            received_at: now,
        };
        s.outbox.publish(&mut tx, Some(&head.city_code), id.to_string(), &event).await?;
    }
    s.outbox.commit(tx).await?;
    let sig: String = form_urlencoded::byte_serialize(sig.as_bytes()).collect();
    // Relative, so the page works at the service's own address and under the one origin's
    // `/api/notification/`.
    Ok(Redirect::to(&format!("receipt?sig={sig}")))
}

/// The campaign office sends a dead notice again: its dead deliveries get a fresh budget, with
/// the same `webhook-id` and Message-ID.
async fn replay(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let id = notice_id(&id)?;
    let mut tx = s.pool.begin().await?;
    store::notice_head(&mut tx, id).await?.ok_or_else(|| ApiError::not_found(format!("notice {id}")))?;
    let replayed = store::replay_dead(&mut tx, id).await?;
    if replayed == 0 {
        return Err(ApiError::conflict("id", format!("notice {id} has no dead delivery")));
    }
    tx.commit().await?;
    Ok(Json(json!({ "id": id, "replayed_deliveries": replayed })))
}
