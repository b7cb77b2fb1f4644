//! Assignment's HTTP routes: the ledger and its exports, handover sheets and their
//! acknowledgement, disputes and reroutes, deadline extensions, and the jurisdiction table.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::auth::{Caller, Claims, Role};
use shared::clock::Clock;
use shared::error::{ApiError, Validator};
use shared::events::{
    EXTENSION_REQUESTED, EventKind, ExtensionRequested, PROBLEM_DISPUTED, PROBLEM_EXTENDED, PROBLEM_REROUTED,
    ProblemDisputed, ProblemExtended, ProblemRerouted,
};
use shared::http::{JsonBody, QueryParams, parse_id};
use shared::order;
use shared::outbox::Outbox;
use shared::reference;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{self, Decision, DisputeRequest, ExtensionRequest, JurisdictionRequest, RerouteRequest};
use crate::export;
use crate::store::{self, LEDGER, LedgerEntry, LedgerFilter};

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub outbox: Outbox,
    pub clock: Clock,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/ledger", get(get_ledger))
        .route("/v1/ledger/count", get(get_ledger_count))
        .route("/v1/handovers", get(list_handovers))
        .route("/v1/problems/{id}", get(get_entry))
        .route("/v1/handovers/{no}", get(get_handover))
        .route("/v1/handovers/{no}/acknowledge", post(acknowledge_handover))
        .route("/v1/problems/{id}/dispute", post(dispute))
        .route("/v1/problems/{id}/dispute/dismiss", post(dismiss_dispute))
        .route("/v1/problems/{id}/reroute", post(reroute))
        .route("/v1/disputes", get(list_disputes))
        .route("/v1/problems/{id}/extensions", post(request_extension))
        .route("/v1/extensions", get(list_extensions))
        .route("/v1/extensions/{id}/grant", post(grant_extension))
        .route("/v1/extensions/{id}/refuse", post(refuse_extension))
        .route("/v1/jurisdictions", get(list_jurisdictions))
        .route("/v1/jurisdictions/{code}", put(put_jurisdiction))
        .route("/v1/deadline-policy", get(get_deadline_policy).put(put_deadline_policy))
        .route("/v1/deadline-policy/versions", get(list_deadline_policies))
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

/// Whether a local government answers for a problem (a city answers for its counties').
fn owns(jurisdiction: &str, entry: &LedgerEntry) -> bool {
    reference::jurisdiction_covers(jurisdiction, &entry.jurisdiction) || jurisdiction == entry.city_code
}

/// The entry a local government acts on: its own, else 404 so that existence does not leak.
async fn own_entry(conn: &mut PgConnection, caller: &Caller, id: Uuid) -> Result<LedgerEntry, ApiError> {
    caller.require(Role::LocalGov)?;
    let jurisdiction = caller.jurisdiction()?;
    store::entry(conn, id, true)
        .await?
        .filter(|e| owns(jurisdiction, e))
        .ok_or_else(|| ApiError::not_found(format!("problem {id}")))
}

#[derive(Deserialize)]
struct LedgerQuery {
    city: Option<String>,
    county: Option<String>,
    round: Option<String>,
    status: Option<String>,
    category: Option<String>,
    overdue: Option<bool>,
    format: Option<String>,
}

enum Format {
    Json,
    Csv,
    Xlsx,
}

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

async fn get_ledger(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    QueryParams(q): QueryParams<LedgerQuery>,
) -> Result<Response, ApiError> {
    let within = reading_scope(&caller)?;
    let mut v = Validator::new();
    if let Some(status) = &q.status {
        v.check(
            domain::STATUSES.contains(&status.as_str()),
            "status",
            format!("one of {}", domain::STATUSES.join(", ")),
        );
    }
    if let Some(category) = &q.category {
        v.check(reference::category(category).is_some(), "category", "not a known category");
    }
    let accept = headers.get(header::ACCEPT).and_then(|a| a.to_str().ok()).unwrap_or_default();
    let format = match q.format.as_deref() {
        Some("json") => Format::Json,
        Some("csv") => Format::Csv,
        Some("xlsx") => Format::Xlsx,
        Some(other) => {
            v.fail("format", format!("{other:?}: json, csv or xlsx"));
            Format::Json
        }
        None if accept.contains(XLSX) => Format::Xlsx,
        None if accept.contains("text/csv") => Format::Csv,
        None => Format::Json,
    };
    v.finish()?;
    let filter = LedgerFilter {
        city: q.city,
        county: q.county,
        round: q.round,
        status: q.status,
        category: q.category,
        overdue: q.overdue,
    };
    let rows = store::ledger(&mut *s.pool.acquire().await?, &filter, within).await?;
    let attachment = |ext: &str| format!("attachment; filename=\"ledger-{}.{ext}\"", s.clock.today());
    Ok(match format {
        Format::Json => Json(json!({ "count": rows.len(), "items": rows })).into_response(),
        Format::Csv => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (header::CONTENT_DISPOSITION, attachment("csv")),
            ],
            export::csv(&rows),
        )
            .into_response(),
        Format::Xlsx => {
            let bytes = export::xlsx(&rows).map_err(|e| ApiError::Internal(e.into()))?;
            ([(header::CONTENT_TYPE, XLSX.to_string()), (header::CONTENT_DISPOSITION, attachment("xlsx"))], bytes)
                .into_response()
        }
    })
}

/// One ledger entry with its extensions: the campaign office, verifiers, and the government
/// responsible.
async fn get_entry(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let within = reading_scope(&caller)?;
    let mut conn = s.pool.acquire().await?;
    let entry = store::entry(&mut conn, id, false)
        .await?
        .filter(|e| within.is_none_or(|j| owns(j, e)))
        .ok_or_else(|| ApiError::not_found(format!("problem {id}")))?;
    let extensions = store::extensions(&mut conn, None, Some(id)).await?;
    Ok(Json(json!({ "entry": entry, "extensions": extensions })))
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
) -> Result<Json<Value>, ApiError> {
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
) -> Result<Json<Value>, ApiError> {
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
    let now = s.clock.now();
    let (at, already) = match crate::sheets::acknowledge(&mut tx, &s.outbox, &sheet, now).await? {
        Some(at) => (at, true),
        None => (now, false),
    };
    s.outbox.commit(tx).await?;
    Ok(Json(json!({ "handover_no": no, "acknowledged_at": shared::csv::timestamp(at), "already": already })))
}

/// The problem's next place in assignment's order, for an event of `kind` about it.
async fn next_in_order(conn: &mut PgConnection, id: Uuid, kind: EventKind) -> Result<order::Next, ApiError> {
    order::advance_one(conn, LEDGER, id, kind).await?.ok_or_else(|| ApiError::not_found(format!("problem {id}")))
}

fn still_with_the_government(entry: &LedgerEntry, what: &str) -> Result<(), ApiError> {
    if domain::OPEN_FOR_THE_GOVERNMENT.contains(&entry.status.as_str()) {
        Ok(())
    } else {
        Err(ApiError::conflict(
            "status",
            format!("the problem is {}; {what} needs it handed over and not yet rectified", entry.status),
        ))
    }
}

/// A government says "not ours"; the campaign office then reroutes or dismisses.
async fn dispute(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<DisputeRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = parse_id(&id)?;
    domain::validate_reason(&request.reason).finish()?;
    let mut tx = s.pool.begin().await?;
    let entry = own_entry(&mut tx, &caller, id).await?;
    still_with_the_government(&entry, "a dispute")?;
    if entry.disputed {
        return Err(ApiError::conflict("id", "the problem is already disputed; the campaign office will decide"));
    }
    let now = s.clock.now();
    let jurisdiction = caller.jurisdiction()?.to_string();
    let dispute_id = store::raise_dispute(&mut tx, id, &jurisdiction, &request.reason, now).await?;
    let next = next_in_order(&mut tx, id, PROBLEM_DISPUTED).await?;
    let event = ProblemDisputed {
        problem_id: id,
        problem_seq: next.problem_seq,
        previous: next.previous,
        city_code: entry.city_code.clone(),
        jurisdiction,
        reason: request.reason,
        disputed_at: now,
    };
    s.outbox.publish(&mut tx, Some(&entry.city_code), id.to_string(), &event).await?;
    s.outbox.commit(tx).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": dispute_id, "problem_id": id, "status": "open" }))))
}

async fn dismiss_dispute(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(decision): JsonBody<Decision>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let id = parse_id(&id)?;
    domain::validate_reason(&decision.reason).finish()?;
    let mut tx = s.pool.begin().await?;
    if store::resolve_dispute(&mut tx, id, "dismissed", &decision.reason, s.clock.now()).await? == 0 {
        return Err(ApiError::not_found(format!("an open dispute of problem {id}")));
    }
    s.outbox.commit(tx).await?;
    Ok(Json(json!({ "problem_id": id, "status": "dismissed" })))
}

#[derive(Deserialize)]
struct StatusQuery {
    status: Option<String>,
}

async fn list_disputes(
    State(s): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<StatusQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let items = store::disputes(&mut *s.pool.acquire().await?, q.status.as_deref()).await?;
    Ok(Json(json!({ "count": items.len(), "items": items })))
}

/// Whether `code` is a jurisdiction a problem can be handed to, and its key city.
async fn city_of(conn: &mut PgConnection, code: &str) -> Result<Option<String>, ApiError> {
    if let Some(city) = reference::city(code) {
        return Ok(Some(city.code.clone()));
    }
    if let Some(city) = reference::city_of_county(code) {
        return Ok(Some(city.code.clone()));
    }
    Ok(store::jurisdiction(conn, code).await?.map(|j| j.city_code))
}

/// The campaign office hands a problem to the government responsible after all, with a new
/// deadline from today; the new owner gets a notice of its own.
async fn reroute(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<RerouteRequest>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let id = parse_id(&id)?;
    domain::validate_reason(&request.reason).finish()?;
    let mut tx = s.pool.begin().await?;
    let entry = store::entry(&mut tx, id, true).await?.ok_or_else(|| ApiError::not_found(format!("problem {id}")))?;
    still_with_the_government(&entry, "a reroute")?;
    let city = city_of(&mut tx, &request.to)
        .await?
        .ok_or_else(|| ApiError::invalid("to", format!("{} is no known jurisdiction", request.to)))?;
    if request.to == entry.jurisdiction {
        return Err(ApiError::invalid("to", "the problem is already with this jurisdiction"));
    }
    let now = s.clock.now();
    // The policy in force today, as for a sheet made now.
    let policy = store::current_policy(&mut tx).await?;
    let deadline = domain::deadline(&policy.policy, &entry.category, &entry.severity, s.clock.today());
    let county = (request.to != city).then_some(request.to.as_str());
    let reroute = store::Reroute {
        problem_id: id,
        from: &entry.jurisdiction,
        to: &request.to,
        city_code: &city,
        county_code: county,
        reason: &request.reason,
        deadline,
        at: now,
    };
    store::reroute(&mut tx, &reroute).await?;
    let next = next_in_order(&mut tx, id, PROBLEM_REROUTED).await?;
    store::resolve_dispute(&mut tx, id, "rerouted", &request.reason, now).await?;
    let event = ProblemRerouted {
        problem_id: id,
        problem_seq: next.problem_seq,
        previous: next.previous,
        city_code: city.clone(),
        from_jurisdiction: entry.jurisdiction.clone(),
        to_jurisdiction: request.to.clone(),
        reason: request.reason.clone(),
        deadline,
        category: entry.category.clone(),
        site_name: entry.site_name.clone(),
        description: entry.description.clone(),
        rerouted_at: now,
    };
    s.outbox.publish(&mut tx, Some(&city), id.to_string(), &event).await?;
    s.outbox.commit(tx).await?;
    Ok(Json(json!({ "problem_id": id, "jurisdiction": request.to, "city_code": city, "deadline": deadline })))
}

/// A government asks for more time, with a reason; the campaign office decides.
async fn request_extension(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<ExtensionRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = parse_id(&id)?;
    let mut tx = s.pool.begin().await?;
    let entry = own_entry(&mut tx, &caller, id).await?;
    still_with_the_government(&entry, "an extension")?;
    let current = entry.deadline.ok_or_else(|| ApiError::conflict("status", "the problem has no deadline yet"))?;
    domain::validate_extension(&request, current).finish()?;
    let by = caller.jurisdiction()?.to_string();
    let now = s.clock.now();
    let extension = store::request_extension(&mut tx, id, &by, &request.reason, current, request.deadline, now).await?;
    // Announced so the campaign office hears of it (notification tells the office's people).
    let next = next_in_order(&mut tx, id, EXTENSION_REQUESTED).await?;
    let event = ExtensionRequested {
        problem_id: id,
        problem_seq: next.problem_seq,
        previous: next.previous,
        extension_id: extension,
        city_code: entry.city_code.clone(),
        jurisdiction: entry.jurisdiction.clone(),
        requested_deadline: request.deadline,
        reason: request.reason.clone(),
        requested_at: now,
    };
    s.outbox.publish(&mut tx, Some(&entry.city_code), id.to_string(), &event).await?;
    s.outbox.commit(tx).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": extension, "problem_id": id, "status": "requested" }))))
}

async fn list_extensions(
    State(s): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<StatusQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let items = store::extensions(&mut *s.pool.acquire().await?, q.status.as_deref(), None).await?;
    Ok(Json(json!({ "count": items.len(), "items": items })))
}

async fn decide(
    s: &AppState,
    caller: &Caller,
    id: &str,
    decision: &Decision,
    grant: bool,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let id = parse_id(id)?;
    domain::validate_reason(&decision.reason).finish()?;
    let mut tx = s.pool.begin().await?;
    let extension = store::extension_for_update(&mut tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("extension {id}")))?;
    if extension.status != "requested" {
        return Err(ApiError::conflict("status", format!("the extension was {} already", extension.status)));
    }
    let now = s.clock.now();
    let status = if grant { "granted" } else { "refused" };
    store::decide_extension(&mut tx, id, status, &decision.reason, now).await?;
    if grant {
        let entry = store::entry(&mut tx, extension.problem_id, true)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("problem {}", extension.problem_id)))?;
        still_with_the_government(&entry, "an extension")?;
        let previous_deadline = entry.deadline.unwrap_or(extension.previous_deadline);
        store::extend(&mut tx, entry.problem_id, extension.requested_deadline).await?;
        let next = next_in_order(&mut tx, entry.problem_id, PROBLEM_EXTENDED).await?;
        let event = ProblemExtended {
            problem_id: entry.problem_id,
            problem_seq: next.problem_seq,
            previous: next.previous,
            city_code: entry.city_code.clone(),
            jurisdiction: entry.jurisdiction.clone(),
            previous_deadline,
            deadline: extension.requested_deadline,
            reason: decision.reason.clone(),
            granted_at: now,
        };
        s.outbox.publish(&mut tx, Some(&entry.city_code), entry.problem_id.to_string(), &event).await?;
    }
    s.outbox.commit(tx).await?;
    Ok(Json(json!({ "id": id, "problem_id": extension.problem_id, "status": status })))
}

async fn grant_extension(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(decision): JsonBody<Decision>,
) -> Result<Json<Value>, ApiError> {
    decide(&s, &caller, &id, &decision, true).await
}

async fn refuse_extension(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(decision): JsonBody<Decision>,
) -> Result<Json<Value>, ApiError> {
    decide(&s, &caller, &id, &decision, false).await
}

async fn list_jurisdictions(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    reading_scope(&caller)?;
    let items = store::jurisdictions(&mut *s.pool.acquire().await?).await?;
    Ok(Json(json!({ "count": items.len(), "items": items })))
}

/// The campaign office adds a jurisdiction the code rules do not know (a development zone, say)
/// or names one.
async fn put_jurisdiction(
    State(s): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    JsonBody(request): JsonBody<JurisdictionRequest>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let mut v = Validator::new();
    v.check(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()), "code", "a 6-digit code");
    v.check(!request.name.trim().is_empty(), "name", "the jurisdiction's name");
    v.check(reference::city(&request.city_code).is_some(), "city_code", "one of the 39 key cities");
    v.check(reference::city(&code).is_none(), "code", "key cities are reference data");
    v.finish()?;
    let mut conn = s.pool.acquire().await?;
    store::upsert_jurisdiction(&mut conn, &code, &request.name, &request.city_code).await?;
    Ok(Json(json!({ "code": code, "name": request.name, "city_code": request.city_code })))
}

/// The deadline policy in force (its version, days and who set it and why): for every campaign
/// role, since local governments plan by it too.
async fn get_deadline_policy(State(s): State<AppState>, _caller: Caller) -> Result<Json<Value>, ApiError> {
    let policy = store::current_policy(&mut *s.pool.acquire().await?).await?;
    Ok(Json(policy.to_json()))
}

/// Every version of the deadline policy, oldest first: what each handover sheet was made under.
async fn list_deadline_policies(State(s): State<AppState>, _caller: Caller) -> Result<Json<Value>, ApiError> {
    let versions = store::policy_versions(&mut *s.pool.acquire().await?).await?;
    Ok(Json(json!({ "versions": versions.iter().map(store::PolicyVersion::to_json).collect::<Vec<_>>() })))
}

/// The campaign office sets a new version of the deadline policy. It applies, without a restart,
/// to the sheets (and reroutes) made from now on; sheets made before keep theirs.
async fn put_deadline_policy(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<domain::PolicyRequest>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    domain::validate_policy(&request).finish()?;
    let by = caller.0.name.clone().unwrap_or_else(|| format!("token {}", caller.0.jti));
    let mut tx = s.pool.begin().await?;
    let version = store::set_policy(&mut tx, &request.policy(), request.reason.as_deref(), &by, s.clock.now()).await?;
    tx.commit().await?;
    tracing::info!(version = version.version, by, "deadline policy set");
    Ok(Json(version.to_json()))
}

#[derive(Deserialize)]
struct CountQuery {
    city: Option<String>,
    county: Option<String>,
    round: Option<String>,
    status: Option<String>,
    category: Option<String>,
    overdue: Option<bool>,
}

/// How many ledger entries match the ledger's filters, without listing them: in all, handed
/// over (on a sheet), overdue, and by status and by round. Read by whoever may read the ledger,
/// within the same scope.
async fn get_ledger_count(
    State(s): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<CountQuery>,
) -> Result<Json<Value>, ApiError> {
    let within = reading_scope(&caller)?;
    let mut v = Validator::new();
    if let Some(status) = &q.status {
        v.check(
            domain::STATUSES.contains(&status.as_str()),
            "status",
            format!("one of {}", domain::STATUSES.join(", ")),
        );
    }
    if let Some(category) = &q.category {
        v.check(reference::category(category).is_some(), "category", "not a known category");
    }
    v.finish()?;
    let filter = LedgerFilter {
        city: q.city,
        county: q.county,
        round: q.round,
        status: q.status,
        category: q.category,
        overdue: q.overdue,
    };
    let rows = store::ledger_counts(&mut *s.pool.acquire().await?, &filter, within).await?;
    let (mut total, mut handed_over, mut overdue) = (0i64, 0i64, 0i64);
    let mut by_status = serde_json::Map::new();
    let mut by_round = serde_json::Map::new();
    for (round, status, n, handed, late) in rows {
        total += n;
        handed_over += handed;
        overdue += late;
        let add = |map: &mut serde_json::Map<String, Value>, key: String| {
            let sum = map.get(&key).and_then(Value::as_i64).unwrap_or(0) + n;
            map.insert(key, json!(sum));
        };
        add(&mut by_status, status);
        add(&mut by_round, round);
    }
    Ok(Json(json!({
        "total": total, "handed_over": handed_over, "overdue": overdue,
        "by_status": by_status, "by_round": by_round,
    })))
}

#[derive(Deserialize)]
struct HandoverQuery {
    round: Option<String>,
    city: Option<String>,
    acknowledged: Option<bool>,
}

/// The handover sheets, oldest first, by round, city and whether acknowledged: what a city has
/// to sign for (签收). A local government sees the sheets addressed to its city.
async fn list_handovers(
    State(s): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<HandoverQuery>,
) -> Result<Json<Value>, ApiError> {
    reading_scope(&caller)?;
    let items: Vec<store::Handover> =
        store::handovers(&mut *s.pool.acquire().await?, q.round.as_deref(), q.city.as_deref(), q.acknowledged)
            .await?
            .into_iter()
            .filter(|h| may_see_sheet(&caller.0, &h.city_code))
            .collect();
    Ok(Json(json!({ "count": items.len(), "items": items })))
}
