//! Verification's HTTP routes: rectification reports from local governments and verdicts from
//! verifier teams.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use shared::auth::{Caller, Role};
use shared::clock::{Clock, shanghai_date};
use shared::error::ApiError;
use shared::events::{
    PROBLEM_CLOSED, PROBLEM_REOPENED, ProblemClosed, ProblemReopened, RECTIFICATION_REPORTED, RectificationReported,
};
use shared::http::JsonBody;
use shared::outbox::Outbox;
use shared::reference;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{self, RectificationRequest, VerdictRequest};
use crate::store::{self, Problem};

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub outbox: Outbox,
    pub clock: Clock,
    pub reopened_deadline_days: i64,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/problems/{id}", get(get_problem))
        .route("/v1/problems/{id}/rectification", post(post_rectification))
        .route("/v1/problems/{id}/verdict", post(post_verdict))
        .with_state(state)
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::invalid("id", "a problem id is a UUID"))
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

async fn post_rectification(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<RectificationRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Role::LocalGov)?;
    let jurisdiction = caller.jurisdiction()?.to_string();
    let id = parse_id(&id)?;
    let now = s.clock.now();
    domain::validate_rectification(&request, now).finish()?;
    let mut tx = s.pool.begin().await?;
    let problem = store::problem_for_update(&mut tx, id)
        .await?
        .filter(|p| belongs_to(p, &jurisdiction))
        .ok_or_else(|| ApiError::not_found(format!("problem {id}")))?;
    if !domain::RECTIFIABLE.contains(&problem.status.as_str()) {
        return Err(ApiError::conflict(
            "status",
            format!("the problem is {}; rectification is reported once it is handed over or reopened", problem.status),
        ));
    }
    let rectification_id = store::insert_rectification(&mut tx, id, &request, &jurisdiction, now).await?;
    let problem_seq = store::set_status(&mut tx, id, "rectification_reported", None).await?;
    let event = RectificationReported {
        problem_id: id,
        problem_seq,
        city_code: problem.city_code.clone(),
        measures: request.measures.clone(),
        completed_at: request.completed_at,
        reported_at: now,
    };
    s.outbox.publish(&mut tx, &RECTIFICATION_REPORTED, Some(&problem.city_code), id.to_string(), &event).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": rectification_id, "problem_id": id, "status": "rectification_reported" })),
    ))
}

async fn post_verdict(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<VerdictRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Role::Verifier)?;
    let id = parse_id(&id)?;
    domain::validate_verdict(&request).finish()?;
    if caller.team()? != request.team {
        return Err(ApiError::forbidden("team", format!("your token is for team {}", caller.team()?)));
    }
    let mut tx = s.pool.begin().await?;
    let problem =
        store::problem_for_update(&mut tx, id).await?.ok_or_else(|| ApiError::not_found(format!("problem {id}")))?;
    let province = store::team_province(&mut tx, &request.team)
        .await?
        .ok_or_else(|| ApiError::invalid("team", format!("no team {} is registered", request.team)))?;
    domain::may_verify(&request.team, &province, problem.finder_team.as_deref(), &problem.city_code)?;
    if problem.status != "rectification_reported" {
        return Err(ApiError::conflict(
            "status",
            format!("the problem is {}; a verdict needs a reported rectification", problem.status),
        ));
    }
    let now = s.clock.now();
    let verdict_id = store::insert_verdict(&mut tx, id, &request, now).await?;
    let (status, deadline) = domain::after_verdict(&request.result, shanghai_date(now), s.reopened_deadline_days);
    let problem_seq = store::set_status(&mut tx, id, status, deadline).await?;
    let city = Some(problem.city_code.as_str());
    match deadline {
        None => {
            let event = ProblemClosed {
                problem_id: id,
                problem_seq,
                city_code: problem.city_code.clone(),
                team: request.team.clone(),
                verified_at: now,
            };
            s.outbox.publish(&mut tx, &PROBLEM_CLOSED, city, id.to_string(), &event).await?;
        }
        Some(deadline) => {
            let event = ProblemReopened {
                problem_id: id,
                problem_seq,
                city_code: problem.city_code.clone(),
                result: request.result.clone(),
                team: request.team.clone(),
                deadline,
                verified_at: now,
            };
            s.outbox.publish(&mut tx, &PROBLEM_REOPENED, city, id.to_string(), &event).await?;
        }
    }
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": verdict_id, "problem_id": id, "status": status, "deadline": deadline })),
    ))
}
