//! Verification's HTTP routes: rectification progress and reports from local governments,
//! verdicts and re-checks from verifier teams, the work waiting for verifiers, and the
//! escalation ladder.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::auth::{Caller, Role};
use shared::clock::Clock;
use shared::error::ApiError;
use shared::events::{
    PROBLEM_CLOSED, PROBLEM_REOPENED, ProblemClosed, ProblemReopened, RECTIFICATION_PROGRESSED, RECTIFICATION_REPORTED,
    RectificationProgressed, RectificationReported,
};
use shared::http::{JsonBody, QueryParams, parse_id};
use shared::outbox::Outbox;
use shared::reference;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{self, ProgressRequest, RectificationRequest, VerdictRequest};
use crate::rechecks;
use crate::store::{self, Problem};

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub outbox: Outbox,
    pub clock: Clock,
    pub reopened_deadline_days: i64,
    pub recheck_sample_percent: i64,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/problems/{id}", get(get_problem))
        .route("/v1/problems/{id}/progress", post(post_progress))
        .route("/v1/problems/{id}/rectification", post(post_rectification))
        .route("/v1/problems/{id}/verdict", post(post_verdict))
        .route("/v1/tasks", get(list_tasks))
        .route("/v1/rechecks/sweep", post(post_sweep))
        .route("/v1/rechecks/{id}/verdict", post(post_recheck_verdict))
        .route("/v1/escalations", get(list_escalations))
        .route("/v1/legacy-problems/batch", post(import_legacy))
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
    let problem = store::problem(&mut *s.pool.acquire().await?, id).await?;
    let visible = match caller.0.role {
        Role::Admin | Role::Verifier => problem,
        Role::LocalGov => problem.filter(|p| belongs_to(p, caller.jurisdiction().unwrap_or(""))),
        Role::Inspector => None,
    };
    let problem = visible.ok_or_else(|| ApiError::not_found(format!("problem {id}")))?;
    Ok(Json(serde_json::to_value(problem).map_err(anyhow::Error::from)?))
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
    let next = store::set_status(&mut tx, id, &problem.status, None, now, RECTIFICATION_PROGRESSED).await?;
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
    let next = store::set_status(&mut tx, id, "rectification_reported", None, now, RECTIFICATION_REPORTED).await?;
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

/// Closes the problem, or reopens it with a new, shorter deadline; publishes which.
async fn apply_verdict(
    s: &AppState,
    conn: &mut PgConnection,
    problem: &Problem,
    team: &str,
    result: &str,
) -> Result<(&'static str, Option<time::Date>), ApiError> {
    let now = s.clock.now();
    let (status, deadline) = domain::after_verdict(result, s.clock.today(), s.reopened_deadline_days);
    let id = problem.problem_id;
    let kind = if deadline.is_none() { PROBLEM_CLOSED } else { PROBLEM_REOPENED };
    let next = store::set_status(conn, id, status, deadline, now, kind).await?;
    let city = Some(problem.city_code.as_str());
    match deadline {
        None => {
            let event = ProblemClosed {
                problem_id: id,
                problem_seq: next.problem_seq,
                previous: next.previous,
                city_code: problem.city_code.clone(),
                team: team.into(),
                verified_at: now,
            };
            s.outbox.publish(conn, city, id.to_string(), &event).await?;
        }
        Some(deadline) => {
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
        }
    }
    Ok((status, deadline))
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
/// is back — a rebound — and it is reopened.
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
    store::record_recheck(&mut tx, id, &request, s.clock.now()).await?;
    let problem = store::problem_for_update(&mut tx, recheck.problem_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("problem {}", recheck.problem_id)))?;
    let (status, deadline) = if request.result == "rectified" || problem.status != "closed" {
        (problem.status.clone(), None)
    } else {
        store::mark_rebound(&mut tx, problem.problem_id).await?;
        let (status, deadline) = apply_verdict(&s, &mut tx, &problem, &request.team, "rebound").await?;
        (status.to_string(), deadline)
    };
    s.outbox.commit(tx).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "problem_id": problem.problem_id, "status": status, "deadline": deadline })),
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
