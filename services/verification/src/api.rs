//! Verification's HTTP routes: rectification progress and reports from local governments,
//! verdicts and re-checks from verifier teams, the work waiting for verifiers, and the
//! escalation ladder.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use shared::auth::{Caller, Role};
use shared::clock::Clock;
use shared::error::ApiError;
use shared::events::{
    Commitment, CommitmentVerified, InspectionScope, Official, PROBLEM_CLOSED, PROBLEM_REOPENED, ProblemClosed,
    ProblemReopened, RECHECK_FAILED, RECTIFICATION_PROGRESSED, RECTIFICATION_REPORTED, RecheckFailed,
    RectificationProgressed, RectificationReported, SpecialInspectionConcluded, SpecialInspectionOpened, SummonsHeld,
    SummonsScheduled,
};
use shared::http::{JsonBody, QueryParams, parse_id, parse_value};
use shared::order;
use shared::outbox::{Outbox, Outgoing};
use shared::reference;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{
    self, Earlier, FieldItem, Judgement, ProgressRequest, RectificationItem, RectificationRequest, Standing,
    VerdictItem, VerdictRequest,
};
use crate::rechecks;
use crate::store::{self, Problem};

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub outbox: Outbox,
    pub clock: Clock,
    pub recheck_sample_percent: i64,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/problems/{id}", get(get_problem))
        .route("/v1/problems/{id}/progress", post(post_progress))
        .route("/v1/problems/{id}/rectification", post(post_rectification))
        .route("/v1/problems/{id}/verdict", post(post_verdict))
        .route("/v1/rectifications/batch", post(post_rectification_batch))
        .route("/v1/verdicts/batch", post(post_verdict_batch))
        .route("/v1/tasks", get(list_tasks))
        .route("/v1/rechecks/sweep", post(post_sweep))
        .route("/v1/rechecks/{id}/verdict", post(post_recheck_verdict))
        .route("/v1/escalations", get(list_escalations))
        .route("/v1/legacy-problems/batch", post(import_legacy))
        .route("/v1/summonses", post(post_summons).get(list_summonses))
        .route("/v1/summonses/{id}", get(get_summons))
        .route("/v1/summonses/{id}/held", post(post_summons_held))
        .route("/v1/commitments/{id}/verdict", post(post_commitment_verdict))
        .route("/v1/special-inspections", post(post_special_inspection).get(list_special_inspections))
        .route("/v1/special-inspections/{id}", get(get_special_inspection))
        .route("/v1/special-inspections/{id}/findings", post(post_findings))
        .route("/v1/special-inspections/{id}/conclusion", post(post_conclusion))
        .with_state(state)
}

/// Whether a local government is responsible for a handed-over problem (a city answers for its
/// counties). Anything else is answered 404, so existence does not leak.
fn belongs_to(problem: &Problem, jurisdiction: &str) -> bool {
    problem.jurisdiction.as_deref().is_some_and(|j| reference::jurisdiction_covers(jurisdiction, j))
}

async fn get_problem(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let mut conn = s.pool.acquire().await?;
    let problem = store::problem(&mut conn, id).await?;
    let visible = match caller.0.role {
        Role::Admin | Role::Verifier => problem,
        Role::LocalGov => problem.filter(|p| belongs_to(p, caller.jurisdiction().unwrap_or(""))),
        Role::Inspector => None,
    };
    let problem = visible.ok_or_else(|| ApiError::not_found(format!("problem {id}")))?;
    let mut body = serde_json::to_value(problem).map_err(anyhow::Error::from)?;
    // The measures and photos the government reported: what the verifier checks on site.
    body["rectifications"] = Value::from(store::rectifications_of(&mut conn, id).await?);
    Ok(Json(body))
}

/// The problem a local government acts on: its own and still to rectify.
async fn own_rectifiable(conn: &mut PgConnection, caller: &Caller, id: Uuid) -> Result<Problem, ApiError> {
    caller.require(Role::LocalGov)?;
    let jurisdiction = caller.jurisdiction()?;
    let problem = store::problem_for_update(conn, id)
        .await?
        .filter(|p| belongs_to(p, jurisdiction))
        .ok_or_else(|| ApiError::not_found(format!("problem {id}")))?;
    if !domain::RECTIFIABLE.contains(&problem.status.as_str()) {
        return Err(ApiError::conflict(
            "status",
            format!("the problem is {}; this needs it handed over, or reopened, and not yet rectified", problem.status),
        ));
    }
    Ok(problem)
}

/// A stage of a long rectification (a coal-to-gas project, say), before the final report.
async fn post_progress(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<ProgressRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = parse_id(&id)?;
    domain::validate_progress(&request).finish()?;
    let mut tx = s.pool.begin().await?;
    let problem = own_rectifiable(&mut tx, &caller, id).await?;
    let now = s.clock.now();
    let progress_id = store::insert_progress(&mut tx, id, &request, caller.jurisdiction()?, now).await?;
    let next = store::set_status(&mut tx, id, &problem.status, now, RECTIFICATION_PROGRESSED).await?;
    let event = RectificationProgressed {
        problem_id: id,
        problem_seq: next.problem_seq,
        previous: next.previous,
        city_code: problem.city_code.clone(),
        stage: request.stage.clone(),
        percent_done: request.percent_done,
        reported_at: now,
    };
    s.outbox.publish(&mut tx, Some(&problem.city_code), id.to_string(), &event).await?;
    s.outbox.commit(tx).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": progress_id, "problem_id": id, "stage": request.stage }))))
}

async fn post_rectification(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<RectificationRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = parse_id(&id)?;
    let now = s.clock.now();
    domain::validate_rectification(&request, now).finish()?;
    let mut tx = s.pool.begin().await?;
    let problem = own_rectifiable(&mut tx, &caller, id).await?;
    let rectification_id = store::insert_rectification(&mut tx, id, &request, caller.jurisdiction()?, now).await?;
    let next = store::set_status(&mut tx, id, "rectification_reported", now, RECTIFICATION_REPORTED).await?;
    let event = RectificationReported {
        problem_id: id,
        problem_seq: next.problem_seq,
        previous: next.previous,
        city_code: problem.city_code.clone(),
        measures: request.measures.clone(),
        completed_at: request.completed_at,
        reported_at: now,
    };
    s.outbox.publish(&mut tx, Some(&problem.city_code), id.to_string(), &event).await?;
    s.outbox.commit(tx).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": rectification_id, "problem_id": id, "status": "rectification_reported" })),
    ))
}

/// Checks that the caller's team may verify this problem; returns nothing or the refusal.
async fn check_verifier(
    conn: &mut PgConnection,
    caller: &Caller,
    request: &VerdictRequest,
    finder: Option<&str>,
    city: &str,
) -> Result<(), ApiError> {
    caller.require(Role::Verifier)?;
    domain::validate_verdict(request).finish()?;
    if caller.team()? != request.team {
        return Err(ApiError::forbidden("team", format!("your token is for team {}", caller.team()?)));
    }
    let province = store::team_province(conn, &request.team)
        .await?
        .ok_or_else(|| ApiError::invalid("team", format!("no team {} is registered", request.team)))?;
    domain::may_verify(&request.team, &province, finder, city)
}

/// Closes the problem, or reopens it on the deadline it had (a refused rectification earns no
/// new time); publishes which.
async fn apply_verdict(
    s: &AppState,
    conn: &mut PgConnection,
    problem: &Problem,
    team: &str,
    result: &str,
) -> Result<(&'static str, Option<time::Date>), ApiError> {
    let now = s.clock.now();
    let status = domain::after_verdict(result);
    let id = problem.problem_id;
    let kind = if status == "closed" { PROBLEM_CLOSED } else { PROBLEM_REOPENED };
    let next = store::set_status(conn, id, status, now, kind).await?;
    let city = Some(problem.city_code.as_str());
    if status == "closed" {
        let event = ProblemClosed {
            problem_id: id,
            problem_seq: next.problem_seq,
            previous: next.previous,
            city_code: problem.city_code.clone(),
            team: team.into(),
            verified_at: now,
        };
        s.outbox.publish(conn, city, id.to_string(), &event).await?;
        return Ok((status, None));
    }
    let deadline = problem.deadline.unwrap_or_else(|| s.clock.today());
    let event = ProblemReopened {
        problem_id: id,
        problem_seq: next.problem_seq,
        previous: next.previous,
        city_code: problem.city_code.clone(),
        result: result.to_string(),
        team: team.into(),
        deadline,
        verified_at: now,
    };
    s.outbox.publish(conn, city, id.to_string(), &event).await?;
    Ok((status, Some(deadline)))
}

async fn post_verdict(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<VerdictRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = parse_id(&id)?;
    let mut tx = s.pool.begin().await?;
    let problem =
        store::problem_for_update(&mut tx, id).await?.ok_or_else(|| ApiError::not_found(format!("problem {id}")))?;
    check_verifier(&mut tx, &caller, &request, problem.finder_team.as_deref(), &problem.city_code).await?;
    if problem.status != "rectification_reported" {
        return Err(ApiError::conflict(
            "status",
            format!("the problem is {}; a verdict needs a reported rectification", problem.status),
        ));
    }
    let verdict_id = store::insert_verdict(&mut tx, id, &request, s.clock.now()).await?;
    let (status, deadline) = apply_verdict(&s, &mut tx, &problem, &request.team, &request.result).await?;
    s.outbox.commit(tx).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": verdict_id, "problem_id": id, "status": status, "deadline": deadline })),
    ))
}

/// A verdict on a re-check: `rectified` confirms the closure; anything else means the problem
/// is back — a rebound (回潮). The closed problem stays closed; a new ledger entry linked to it
/// is made (`recheck.failed`, which intake enters as a report with `rebound_of`).
async fn post_recheck_verdict(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<VerdictRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = parse_id(&id)?;
    let mut tx = s.pool.begin().await?;
    let recheck =
        store::recheck_for_update(&mut tx, id).await?.ok_or_else(|| ApiError::not_found(format!("re-check {id}")))?;
    check_verifier(&mut tx, &caller, &request, recheck.finder_team.as_deref(), &recheck.city_code).await?;
    if recheck.result.is_some() {
        return Err(ApiError::conflict("id", "this re-check has its verdict already"));
    }
    let problem = store::problem_for_update(&mut tx, recheck.problem_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("problem {}", recheck.problem_id)))?;
    let now = s.clock.now();
    let rebound_id = domain::recheck_finds_rebound(&request.result, &problem.status).then(Uuid::now_v7);
    store::record_recheck(&mut tx, id, &request, now, rebound_id).await?;
    if let Some(rebound_id) = rebound_id {
        let rounds: Vec<(String, time::Date)> =
            store::rounds(&mut tx).await?.into_iter().map(|r| (r.id, r.starts_on)).collect();
        let next = order::advance_one(&mut tx, store::PROBLEMS, problem.problem_id, RECHECK_FAILED)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("problem {}", problem.problem_id)))?;
        let event = RecheckFailed {
            problem_id: problem.problem_id,
            problem_seq: next.problem_seq,
            previous: next.previous,
            recheck_id: id,
            rebound_id,
            round: domain::round_on(&rounds, s.clock.today(), &recheck.after_round),
            team: request.team.clone(),
            city_code: problem.city_code.clone(),
            county_code: problem.county_code.clone(),
            category: problem.category.clone().unwrap_or_else(|| "other".into()),
            site_name: store::site_name(&mut tx, problem.problem_id).await?,
            result: request.result.clone(),
            verified_at: now,
        };
        s.outbox.publish(&mut tx, Some(&problem.city_code), problem.problem_id.to_string(), &event).await?;
    }
    s.outbox.commit(tx).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "problem_id": problem.problem_id, "status": problem.status, "rebound_id": rebound_id })),
    ))
}

/// What waits for a verifier team: rectifications to verify and re-checks, each only where the
/// team may give the verdict.
async fn list_tasks(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let mut conn = s.pool.acquire().await?;
    // The verifier's team and its province; the campaign office sees every task.
    let team: Option<(String, String)> = match caller.0.role {
        Role::Admin => None,
        Role::Verifier => {
            let team = caller.team()?.to_string();
            let province = store::team_province(&mut conn, &team).await?.unwrap_or_default();
            Some((team, province))
        }
        _ => return Err(ApiError::forbidden("Authorization", "tasks are for verifiers and the campaign office")),
    };
    let eligible = |finder: Option<&str>, city: &str| {
        team.as_ref().is_none_or(|(team, province)| domain::may_verify(team, province, finder, city).is_ok())
    };
    let verdicts: Vec<Value> = store::awaiting_verdict(&mut conn)
        .await?
        .into_iter()
        .filter(|p| eligible(p.finder_team.as_deref(), &p.city_code))
        .map(|p| json!({ "kind": "verdict", "problem_id": p.problem_id, "city_code": p.city_code, "jurisdiction": p.jurisdiction }))
        .collect();
    let rechecks: Vec<Value> = store::open_rechecks(&mut conn)
        .await?
        .into_iter()
        .filter(|r| eligible(r.finder_team.as_deref(), &r.city_code))
        .map(|r| json!({ "kind": "recheck", "id": r.id, "problem_id": r.problem_id, "city_code": r.city_code, "after_round": r.after_round }))
        .collect();
    Ok(Json(json!({ "verdicts": verdicts, "rechecks": rechecks })))
}

#[derive(Deserialize)]
struct SweepRequest {
    /// The round after which to sweep: its closed problems and those of the rounds before it.
    round: String,
    sample_percent: Option<i64>,
}

/// The campaign office orders a re-check sweep now.
async fn post_sweep(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<SweepRequest>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let percent = request.sample_percent.unwrap_or(s.recheck_sample_percent);
    if !(0..=100).contains(&percent) {
        return Err(ApiError::invalid("sample_percent", "between 0 and 100"));
    }
    let mut tx = s.pool.begin().await?;
    if !store::rounds(&mut tx).await?.iter().any(|r| r.id == request.round) {
        return Err(ApiError::invalid("round", format!("no round {}", request.round)));
    }
    let opened = rechecks::sweep(&mut tx, &request.round, percent, &s.clock).await?;
    s.outbox.commit(tx).await?;
    Ok(Json(json!({ "round": request.round, "rechecks_opened": opened })))
}

#[derive(Deserialize)]
struct EscalationQuery {
    city: Option<String>,
}

/// The ladder: every step each city has reached, with the counts that put it there. A local
/// government sees its own city's.
async fn list_escalations(
    State(s): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<EscalationQuery>,
) -> Result<Json<Value>, ApiError> {
    let city = match caller.0.role {
        Role::Admin | Role::Verifier => q.city,
        Role::LocalGov => {
            let jurisdiction = caller.jurisdiction()?;
            let city = reference::city(jurisdiction)
                .or_else(|| reference::city_of_county(jurisdiction))
                .map(|c| c.code.clone())
                .ok_or_else(|| ApiError::forbidden("Authorization", "no city for this jurisdiction"))?;
            Some(city)
        }
        Role::Inspector => return Err(ApiError::forbidden("Authorization", "escalations are for the campaign office")),
    };
    let items = store::escalations(&mut *s.pool.acquire().await?, city.as_deref()).await?;
    let mut current = serde_json::Map::new();
    for e in &items {
        current.insert(e.city_code.clone(), json!(e.level));
    }
    Ok(Json(json!({ "current": current, "steps": items })))
}

#[derive(Deserialize)]
struct LegacyBatch {
    /// What last year's ledger is called, e.g. `2018`; its problems' re-checks carry it.
    round: String,
    items: Vec<Value>,
}

/// Last year's ledger, a batch at a time (at most 1,000): each problem entered as closed with a
/// re-check to visit it again. Items are judged one by one; sending a batch again changes nothing.
async fn import_legacy(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(batch): JsonBody<LegacyBatch>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let mut v = shared::error::Validator::new();
    v.check(!batch.round.trim().is_empty() && batch.round.len() <= 64, "round", "name last year's ledger, e.g. 2018");
    v.check(batch.items.len() <= 1000, "items", "at most 1000 items in one batch");
    v.finish()?;
    let mut tx = s.pool.begin().await?;
    let mut results = Vec::with_capacity(batch.items.len());
    for item in batch.items {
        let id = item.get("id").cloned().unwrap_or(Value::Null);
        let problem: domain::LegacyProblem = match shared::http::parse_value(item) {
            Ok(p) => p,
            Err(e) => {
                results.push(json!({ "id": id, "status": "refused", "errors": e.field_errors() }));
                continue;
            }
        };
        if let Err(e) = domain::validate_legacy(&problem).finish() {
            results.push(json!({ "id": id, "status": "refused", "errors": e.field_errors() }));
            continue;
        }
        let created = store::import_legacy(&mut tx, &batch.round, &problem, s.clock.now()).await?;
        results.push(json!({ "id": id, "status": if created { "created" } else { "already_had" } }));
    }
    s.outbox.commit(tx).await?;
    Ok(Json(json!({ "results": results })))
}

/// A batch from the field: rectifications from a local government, or verdicts from a
/// verifier team, as the workbench syncs them after offline work.
#[derive(Deserialize)]
struct FieldBatch {
    items: Vec<Value>,
}

/// A batch's items as read: each item's `problem_id` as sent, and the item or why it is unreadable.
type ReadItems<T> = (Vec<Value>, Vec<Result<T, ApiError>>);

/// Reads a batch's items, each on its own (a bad one is refused without failing the others);
/// answers each item's `problem_id` as sent, for its result.
fn read_items<T: DeserializeOwned>(items: Vec<Value>) -> Result<ReadItems<T>, ApiError> {
    if items.len() > domain::MAX_BATCH_ITEMS {
        return Err(ApiError::invalid("items", format!("at most {} items in one batch", domain::MAX_BATCH_ITEMS)));
    }
    Ok(items
        .into_iter()
        .map(|item| (item.get("problem_id").cloned().unwrap_or(Value::Null), parse_value::<T>(item)))
        .unzip())
}

/// The problems a batch is about, locked (one statement), as the batch's rules judge them, and
/// each one's deadline.
async fn lock_standings<T: FieldItem>(
    conn: &mut PgConnection,
    items: &[Result<T, ApiError>],
) -> Result<(HashMap<Uuid, Standing>, HashMap<Uuid, Option<time::Date>>), ApiError> {
    let mut ids: Vec<Uuid> = items.iter().flatten().map(FieldItem::problem_id).collect();
    ids.sort();
    ids.dedup();
    let mut standings = HashMap::new();
    let mut deadlines = HashMap::new();
    for p in store::problems_for_update(conn, &ids).await? {
        deadlines.insert(p.problem_id, p.deadline);
        let standing = Standing {
            city_code: p.city_code,
            jurisdiction: p.jurisdiction,
            finder_team: p.finder_team,
            status: p.status,
        };
        standings.insert(p.problem_id, standing);
    }
    Ok((standings, deadlines))
}

/// The client ids a batch names.
fn client_ids<T: FieldItem>(items: &[Result<T, ApiError>]) -> Vec<Uuid> {
    items.iter().flatten().filter_map(FieldItem::client_id).collect()
}

fn earlier(rows: Vec<(Uuid, Uuid, String)>) -> HashMap<Uuid, Earlier> {
    rows.into_iter().map(|(id, problem_id, by)| (id, Earlier { problem_id, by })).collect()
}

/// A concurrent request recorded one of the batch's ids first (for another problem, since the
/// problem's lock was ours): the batch changes nothing, and sent again it is judged against
/// what is stored.
fn taken_meanwhile() -> ApiError {
    ApiError::conflict("items", "an id of this batch was just taken by another request; send the batch again")
}

/// One item's result: the problem's id as sent, what became of it, and why when refused.
fn item_result(problem_id: Value, judged: Judgement, extra: Value) -> Value {
    let mut result = json!({ "id": problem_id, "status": judged.status() });
    match judged {
        Judgement::Refused(e) => result["errors"] = json!(e.field_errors()),
        _ => {
            for (k, v) in extra.as_object().into_iter().flatten() {
                result[k] = v.clone();
            }
        }
    }
    result
}

/// A local government's rectifications, up to 1,000 at a time. Each item is judged by the rules
/// of `POST /v1/problems/{id}/rectification`, after the batch's earlier items; the whole batch
/// costs the same few statements whatever its size.
async fn post_rectification_batch(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(batch): JsonBody<FieldBatch>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::LocalGov)?;
    let jurisdiction = caller.jurisdiction()?.to_string();
    let (answer_ids, items) = read_items::<RectificationItem>(batch.items)?;
    let now = s.clock.now();
    let mut tx = s.pool.begin().await?;
    let (mut problems, _) = lock_standings(&mut tx, &items).await?;
    let stored = earlier(store::rectifications_by_id(&mut tx, &client_ids(&items)).await?);
    let judged = domain::judge_batch(&items, &mut problems, &stored, &jurisdiction, |item, problem| {
        domain::judge_rectification(item, problem, &jurisdiction, now)
    });

    // What is recorded: each accepted item under its own id or a new one. A problem is accepted
    // at most once in a batch (a rectified problem is no longer rectifiable).
    let mut records: Vec<Option<Uuid>> = vec![None; items.len()];
    let mut rows: Vec<(Uuid, &RectificationItem)> = Vec::new();
    for (i, (item, judgement)) in items.iter().zip(&judged).enumerate() {
        let Ok(item) = item else { continue };
        match judgement {
            Judgement::Create(_) => {
                let id = item.id.unwrap_or_else(Uuid::now_v7);
                rows.push((id, item));
                records[i] = Some(id);
            }
            Judgement::AlreadyHad => records[i] = item.id,
            Judgement::Refused(_) => {}
        }
    }
    if store::insert_rectifications(&mut tx, &rows, &jurisdiction, now).await? < rows.len() {
        return Err(taken_meanwhile());
    }
    let changes: Vec<(Uuid, &str)> = rows.iter().map(|(_, item)| (item.problem_id, "rectification_reported")).collect();
    store::set_statuses(&mut tx, &changes, now).await?;
    let moved: Vec<Uuid> = rows.iter().map(|(_, item)| item.problem_id).collect();
    let mut next = order::advance(&mut tx, store::PROBLEMS, &moved, RECTIFICATION_REPORTED).await?;
    let mut events = Vec::with_capacity(rows.len());
    for (_, item) in &rows {
        let place = next.remove(&item.problem_id).expect("a problem rectified has its row");
        let city = &problems[&item.problem_id].city_code;
        let event = RectificationReported {
            problem_id: item.problem_id,
            problem_seq: place.problem_seq,
            previous: place.previous,
            city_code: city.clone(),
            measures: item.measures.clone(),
            completed_at: item.completed_at,
            reported_at: now,
        };
        events.push(Outgoing::new(Some(city), item.problem_id.to_string(), &event));
    }
    s.outbox.publish_many(&mut tx, events).await?;
    s.outbox.commit(tx).await?;
    let results: Vec<Value> = answer_ids
        .into_iter()
        .zip(judged)
        .zip(records)
        .map(|((problem_id, judgement), record)| {
            item_result(problem_id, judgement, json!({ "rectification_id": record }))
        })
        .collect();
    Ok(Json(json!({ "results": results })))
}

/// A verifier team's verdicts, up to 1,000 at a time. Each item is judged by the rules of
/// `POST /v1/problems/{id}/verdict`, after the batch's earlier items; the whole batch costs the
/// same few statements whatever its size.
async fn post_verdict_batch(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(batch): JsonBody<FieldBatch>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Verifier)?;
    let team = caller.team()?.to_string();
    let (answer_ids, items) = read_items::<VerdictItem>(batch.items)?;
    let (now, today) = (s.clock.now(), s.clock.today());
    let mut tx = s.pool.begin().await?;
    let (mut problems, deadlines) = lock_standings(&mut tx, &items).await?;
    let stored = earlier(store::verdicts_by_id(&mut tx, &client_ids(&items)).await?);
    let province = store::team_province(&mut tx, &team).await?;
    let judged = domain::judge_batch(&items, &mut problems, &stored, &team, |item, problem| {
        domain::judge_verdict(item, problem, &team, province.as_deref())
    });

    // What is recorded; a problem gets at most one verdict in a batch (the first counts).
    let mut records: Vec<Value> = vec![json!({}); items.len()];
    let mut rows: Vec<(Uuid, &VerdictItem)> = Vec::new();
    let mut changes: Vec<(Uuid, &str)> = Vec::new();
    for (i, (item, judgement)) in items.iter().zip(&judged).enumerate() {
        let Ok(item) = item else { continue };
        match judgement {
            Judgement::Create(_) => {
                let id = item.id.unwrap_or_else(Uuid::now_v7);
                let status = domain::after_verdict(&item.result);
                // Reopened on the deadline it had: a refused rectification earns no new time.
                let deadline =
                    (status == "reopened").then(|| deadlines.get(&item.problem_id).copied().flatten().unwrap_or(today));
                rows.push((id, item));
                changes.push((item.problem_id, status));
                records[i] = json!({ "verdict_id": id, "problem_status": status, "deadline": deadline });
            }
            Judgement::AlreadyHad => records[i] = json!({ "verdict_id": item.id }),
            Judgement::Refused(_) => {}
        }
    }
    if store::insert_verdicts(&mut tx, &rows, now).await? < rows.len() {
        return Err(taken_meanwhile());
    }
    store::set_statuses(&mut tx, &changes, now).await?;
    let of = |status: &str| changes.iter().filter(|c| c.1 == status).map(|c| c.0).collect::<Vec<Uuid>>();
    let mut closed = order::advance(&mut tx, store::PROBLEMS, &of("closed"), PROBLEM_CLOSED).await?;
    let mut reopened = order::advance(&mut tx, store::PROBLEMS, &of("reopened"), PROBLEM_REOPENED).await?;
    let mut events = Vec::with_capacity(rows.len());
    for ((_, item), (problem_id, status)) in rows.iter().zip(&changes) {
        let city = &problems[problem_id].city_code;
        let subject = problem_id.to_string();
        if *status == "closed" {
            let place = closed.remove(problem_id).expect("a problem closed has its row");
            let event = ProblemClosed {
                problem_id: *problem_id,
                problem_seq: place.problem_seq,
                previous: place.previous,
                city_code: city.clone(),
                team: item.team.clone(),
                verified_at: now,
            };
            events.push(Outgoing::new(Some(city), subject, &event));
        } else {
            let deadline = deadlines.get(problem_id).copied().flatten().unwrap_or(today);
            let place = reopened.remove(problem_id).expect("a problem reopened has its row");
            let event = ProblemReopened {
                problem_id: *problem_id,
                problem_seq: place.problem_seq,
                previous: place.previous,
                city_code: city.clone(),
                result: item.result.clone(),
                team: item.team.clone(),
                deadline,
                verified_at: now,
            };
            events.push(Outgoing::new(Some(city), subject, &event));
        }
    }
    s.outbox.publish_many(&mut tx, events).await?;
    s.outbox.commit(tx).await?;
    let results: Vec<Value> = answer_ids
        .into_iter()
        .zip(judged)
        .zip(records)
        .map(|((problem_id, judgement), record)| item_result(problem_id, judgement, record))
        .collect();
    Ok(Json(json!({ "results": results })))
}

// The campaign office's acts on a city's ladder (DESIGN.md: "The last two are acts of the
// campaign office"): summonses and special inspections.

/// The city a caller may see acts about: any for the office and verifiers, its own for a
/// local government (a county sees its city's).
fn acts_city(caller: &Caller, asked: Option<String>) -> Result<Option<String>, ApiError> {
    match caller.0.role {
        Role::Admin | Role::Verifier => Ok(asked),
        Role::LocalGov => {
            let jurisdiction = caller.jurisdiction()?;
            let city = reference::city(jurisdiction)
                .or_else(|| reference::city_of_county(jurisdiction))
                .map(|c| c.code.clone())
                .ok_or_else(|| ApiError::forbidden("Authorization", "no city for this jurisdiction"))?;
            Ok(Some(city))
        }
        Role::Inspector => {
            Err(ApiError::forbidden("Authorization", "summonses and special inspections are for the campaign office"))
        }
    }
}

/// Marks each commitment `overdue` when it is unkept today ([`domain::commitment_unkept`]): what
/// counts on the city's ladder.
fn with_overdue_commitments(mut summonses: Vec<Value>, today: time::Date) -> Vec<Value> {
    for summons in &mut summonses {
        for c in summons["commitments"].as_array_mut().into_iter().flatten() {
            let follow_up_on = serde_json::from_value::<time::Date>(c["follow_up_on"].clone()).ok();
            let unkept = follow_up_on.is_some_and(|on| domain::commitment_unkept(c["result"].as_str(), on, today));
            c["overdue"] = Value::Bool(unkept);
        }
    }
    summonses
}

fn officials_of(value: &Value) -> Vec<Official> {
    serde_json::from_value(value.clone()).unwrap_or_default()
}

/// Schedules a summons (约谈) of a city's officials; the city and its package units are told.
async fn post_summons(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<domain::ScheduleSummons>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Role::Admin)?;
    domain::validate_summons(&request).finish()?;
    let id = Uuid::now_v7();
    let now = s.clock.now();
    let officials: Vec<Official> =
        request.officials.iter().map(|o| Official { name: o.name.trim().into(), post: o.post.trim().into() }).collect();
    let officials_json = serde_json::to_value(&officials).map_err(anyhow::Error::from)?;
    let mut tx = s.pool.begin().await?;
    store::insert_summons(&mut tx, id, &request, &officials_json, now).await?;
    let event = SummonsScheduled {
        summons_id: id,
        city_code: request.city_code.clone(),
        officials,
        date: request.date,
        place: request.place.clone(),
        reasons: request.reasons.clone(),
        problems: request.problems.clone(),
        scheduled_at: now,
    };
    s.outbox.publish(&mut tx, Some(&request.city_code), id.to_string(), &event).await?;
    s.outbox.commit(tx).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id, "city_code": request.city_code, "status": "scheduled" }))))
}

#[derive(Deserialize)]
struct CityQuery {
    city: Option<String>,
}

async fn list_summonses(
    State(s): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<CityQuery>,
) -> Result<Json<Value>, ApiError> {
    let city = acts_city(&caller, q.city)?;
    let items = store::summonses(&mut *s.pool.acquire().await?, city.as_deref(), None).await?;
    Ok(Json(json!({ "items": with_overdue_commitments(items, s.clock.today()) })))
}

async fn get_summons(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let city = acts_city(&caller, None)?;
    let items = store::summonses(&mut *s.pool.acquire().await?, city.as_deref(), Some(id)).await?;
    let item = with_overdue_commitments(items, s.clock.today()).pop();
    Ok(Json(item.ok_or_else(|| ApiError::not_found(format!("summons {id}")))?))
}

/// Records that a summons was held, with its written commitments: from now on it is public.
async fn post_summons_held(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<domain::HoldSummons>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Role::Admin)?;
    let id = parse_id(&id)?;
    domain::validate_held(&request).finish()?;
    let mut tx = s.pool.begin().await?;
    let summons =
        store::summons_for_update(&mut tx, id).await?.ok_or_else(|| ApiError::not_found(format!("summons {id}")))?;
    if summons.held_on.is_some() {
        return Err(ApiError::conflict("held_on", "this summons is already recorded as held"));
    }
    let now = s.clock.now();
    let commitments: Vec<Commitment> = request
        .commitments
        .iter()
        .map(|c| Commitment { commitment_id: Uuid::now_v7(), text: c.text.trim().into(), follow_up_on: c.follow_up_on })
        .collect();
    let rows: Vec<(Uuid, &str, time::Date)> =
        commitments.iter().map(|c| (c.commitment_id, c.text.as_str(), c.follow_up_on)).collect();
    store::summons_held(&mut tx, &summons, request.held_on, request.note.as_deref(), &rows, now).await?;
    let event = SummonsHeld {
        summons_id: id,
        city_code: summons.city_code.clone(),
        officials: officials_of(&summons.officials),
        held_on: request.held_on,
        place: summons.place.clone(),
        reasons: summons.reasons.clone(),
        problems: summons.problems.clone(),
        commitments: commitments.clone(),
        held_at: now,
    };
    s.outbox.publish(&mut tx, Some(&summons.city_code), id.to_string(), &event).await?;
    s.outbox.commit(tx).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id, "status": "held", "commitments": commitments }))))
}

/// A verifier's finding on a commitment: kept, or not (then it counts on the city's ladder).
async fn post_commitment_verdict(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<domain::CommitmentVerdictRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Role::Verifier)?;
    let id = parse_id(&id)?;
    domain::validate_commitment_verdict(&request).finish()?;
    if caller.team()? != request.team {
        return Err(ApiError::forbidden("team", format!("your token is for team {}", caller.team()?)));
    }
    let mut tx = s.pool.begin().await?;
    let province = store::team_province(&mut tx, &request.team)
        .await?
        .ok_or_else(|| ApiError::invalid("team", format!("no team {} is registered", request.team)))?;
    let commitment = store::commitment_for_update(&mut tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("commitment {id}")))?;
    domain::may_verify(&request.team, &province, None, &commitment.city_code)?;
    if let Some(result) = &commitment.result {
        return Err(ApiError::conflict("result", format!("this commitment was already found {result}")));
    }
    let now = s.clock.now();
    store::commitment_verified(&mut tx, id, &request, now).await?;
    let event = CommitmentVerified {
        commitment_id: id,
        summons_id: commitment.summons_id,
        city_code: commitment.city_code.clone(),
        result: request.result.clone(),
        verified_at: now,
    };
    s.outbox.publish(&mut tx, Some(&commitment.city_code), id.to_string(), &event).await?;
    s.outbox.commit(tx).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id, "result": request.result }))))
}

/// Opens a special inspection (专项督察) of a city: its scope and team(s).
async fn post_special_inspection(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<domain::OpenSpecialInspection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Role::Admin)?;
    domain::validate_special_inspection(&request).finish()?;
    let id = Uuid::now_v7();
    let now = s.clock.now();
    let scope = serde_json::to_value(&request.scope).map_err(anyhow::Error::from)?;
    let mut tx = s.pool.begin().await?;
    store::insert_special_inspection(&mut tx, id, &request, &scope, now).await?;
    let event = SpecialInspectionOpened {
        case_id: id,
        city_code: request.city_code.clone(),
        scope: request.scope.clone(),
        teams: request.teams.clone(),
        opened_at: now,
    };
    s.outbox.publish(&mut tx, Some(&request.city_code), id.to_string(), &event).await?;
    s.outbox.commit(tx).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id, "city_code": request.city_code, "status": "open" }))))
}

async fn list_special_inspections(
    State(s): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<CityQuery>,
) -> Result<Json<Value>, ApiError> {
    let city = acts_city(&caller, q.city)?;
    let items = store::special_inspections(&mut *s.pool.acquire().await?, city.as_deref(), None).await?;
    Ok(Json(json!({ "items": items })))
}

async fn get_special_inspection(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let city = acts_city(&caller, None)?;
    let item = store::special_inspections(&mut *s.pool.acquire().await?, city.as_deref(), Some(id)).await?.pop();
    Ok(Json(item.ok_or_else(|| ApiError::not_found(format!("special inspection {id}")))?))
}

/// An open case, locked for the rest of the transaction.
async fn open_case(conn: &mut PgConnection, id: Uuid) -> Result<store::SpecialInspection, ApiError> {
    let case = store::special_inspection_for_update(conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("special inspection {id}")))?;
    if case.concluded_on.is_some() {
        return Err(ApiError::conflict("status", "this special inspection is concluded"));
    }
    Ok(case)
}

/// Adds problems of the city to a case's findings: each found by one of the case's teams is
/// reported under it, any other is linked ([`domain::finding_kind`]).
async fn post_findings(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<domain::FindingsRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Role::Admin)?;
    let id = parse_id(&id)?;
    if request.problems.is_empty() || request.problems.len() > 1000 {
        return Err(ApiError::invalid("problems", "1 to 1000 problem ids"));
    }
    let mut tx = s.pool.begin().await?;
    let case = open_case(&mut tx, id).await?;
    let known = store::problems_for_update(&mut tx, &request.problems).await?;
    let mut findings = Vec::with_capacity(request.problems.len());
    for (i, problem_id) in request.problems.iter().enumerate() {
        let problem = known.iter().find(|p| p.problem_id == *problem_id);
        match problem {
            Some(p) if p.city_code == case.city_code => {
                findings.push((*problem_id, domain::finding_kind(p.finder_team.as_deref(), &case.teams)));
            }
            Some(_) => return Err(ApiError::invalid(format!("problems[{i}]"), "a problem of another city")),
            None => return Err(ApiError::invalid(format!("problems[{i}]"), format!("no problem {problem_id}"))),
        }
    }
    store::add_findings(&mut tx, id, &findings, s.clock.now()).await?;
    tx.commit().await?;
    let findings: Vec<Value> = store::findings(&mut *s.pool.acquire().await?, id)
        .await?
        .into_iter()
        .map(|(p, kind)| json!({ "problem_id": p, "kind": kind }))
        .collect();
    Ok((StatusCode::CREATED, Json(json!({ "id": id, "findings": findings }))))
}

/// Concludes a case: from now on its summary is public.
async fn post_conclusion(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<domain::ConcludeSpecialInspection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Role::Admin)?;
    let id = parse_id(&id)?;
    let mut tx = s.pool.begin().await?;
    let case = open_case(&mut tx, id).await?;
    let opened_on = case.opened_at.to_offset(shared::clock::SHANGHAI).date();
    domain::validate_conclusion(&request, opened_on).finish()?;
    let now = s.clock.now();
    store::conclude_special_inspection(&mut tx, id, request.conclusion.trim(), request.concluded_on, now).await?;
    let findings = store::findings(&mut tx, id).await?;
    let of = |kind: &str| findings.iter().filter(|f| f.1 == kind).map(|f| f.0).collect::<Vec<_>>();
    let scope: InspectionScope = serde_json::from_value(case.scope.clone()).map_err(anyhow::Error::from)?;
    let event = SpecialInspectionConcluded {
        case_id: id,
        city_code: case.city_code.clone(),
        scope,
        linked: of("linked"),
        reported: of("reported"),
        conclusion: request.conclusion.trim().into(),
        concluded_on: request.concluded_on,
        opened_at: case.opened_at,
    };
    s.outbox.publish(&mut tx, Some(&case.city_code), id.to_string(), &event).await?;
    s.outbox.commit(tx).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "status": "concluded", "linked": event.linked, "reported": event.reported })),
    ))
}
