//! Intake's HTTP routes: campaign set-up by the admin, and site checks from the inspectors.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::auth::{Caller, Role};
use shared::error::{ApiError, FieldError};
use shared::events::{
    INSPECTION_RECORDED, InspectionRecorded, PROBLEM_REPORTED, ProblemReported, ROUND_CONFIGURED, RoundConfigured,
    TEAM_ASSIGNED, TEAM_REGISTERED, TeamAssigned, TeamRegistered,
};
use shared::http::{JsonBody, parse_value};
use shared::outbox::Outbox;
use sqlx::{Acquire, PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{self, InspectionRequest, Outcome, RoundRequest, RoundTeamRequest, TeamRequest};
use crate::store;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub outbox: Outbox,
    pub max_batch_items: usize,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/rounds/{round}", put(put_round))
        .route("/v1/teams/{team}", put(put_team))
        .route("/v1/rounds/{round}/teams/{team}", put(put_round_team))
        .route("/v1/inspections", post(post_inspection))
        .route("/v1/inspections/batch", post(post_batch))
        .with_state(state)
}

async fn put_round(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(round): JsonBody<RoundRequest>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    domain::validate_round(&id, &round).finish()?;
    let mut tx = s.pool.begin().await?;
    store::upsert_round(&mut tx, &id, &round).await?;
    let event = RoundConfigured {
        round: id.clone(),
        starts_on: round.starts_on,
        ends_on: round.ends_on,
        kind: round.kind.clone(),
        cities: round.cities.clone(),
    };
    s.outbox.publish(&mut tx, &ROUND_CONFIGURED, None, &id, &event).await?;
    tx.commit().await?;
    Ok(Json(
        json!({ "id": id, "starts_on": round.starts_on, "ends_on": round.ends_on, "kind": round.kind, "cities": round.cities }),
    ))
}

async fn put_team(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(team): JsonBody<TeamRequest>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    domain::validate_team(&id, &team).finish()?;
    let mut tx = s.pool.begin().await?;
    store::upsert_team(&mut tx, &id, &team).await?;
    let event = TeamRegistered { team: id.clone(), home_province: team.home_province.clone() };
    s.outbox.publish(&mut tx, &TEAM_REGISTERED, None, &id, &event).await?;
    tx.commit().await?;
    Ok(Json(json!({ "id": id, "home_province": team.home_province, "members": team.members })))
}

async fn put_round_team(
    State(s): State<AppState>,
    caller: Caller,
    Path((round, team)): Path<(String, String)>,
    JsonBody(request): JsonBody<RoundTeamRequest>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let mut tx = s.pool.begin().await?;
    let round_cities = store::round_cities(&mut tx, &round)
        .await?
        .ok_or_else(|| ApiError::invalid("round", format!("no round {round}: PUT /v1/rounds/{round} first")))?;
    let province = store::team_province(&mut tx, &team)
        .await?
        .ok_or_else(|| ApiError::invalid("team", format!("no team {team}: PUT /v1/teams/{team} first")))?;
    domain::validate_round_team(&request, &round_cities, &province).finish()?;
    store::upsert_round_team(&mut tx, &round, &team, &request.cities).await?;
    let event = TeamAssigned { round: round.clone(), team: team.clone(), cities: request.cities.clone() };
    s.outbox.publish(&mut tx, &TEAM_ASSIGNED, None, format!("{round}/{team}"), &event).await?;
    tx.commit().await?;
    Ok(Json(json!({ "round": round, "team": team, "cities": request.cities })))
}

/// What the inspector is told about each problem of an inspection.
#[derive(Debug, Serialize, Deserialize)]
struct ProblemResult {
    id: Uuid,
    #[serde(flatten)]
    outcome: Value,
}

/// The first answer given for an inspection, kept and given again for a resend.
#[derive(Debug, Serialize, Deserialize)]
struct InspectionResult {
    id: Uuid,
    status: String,
    problems: Vec<ProblemResult>,
}

enum Recorded {
    Created(InspectionResult),
    AlreadyHad(InspectionResult),
}

/// Records one inspection within `conn`'s transaction: checks it, recognises duplicates and
/// rebounds, stores it and its problems, and puts its events in the outbox.
async fn record(
    conn: &mut PgConnection,
    outbox: &Outbox,
    caller_team: &str,
    inspection: &InspectionRequest,
) -> Result<Recorded, ApiError> {
    if let Some(stored) = store::inspection_result(conn, inspection.id).await? {
        let mut result: InspectionResult = serde_json::from_value(stored).map_err(anyhow::Error::from)?;
        result.status = "already_had".into();
        return Ok(Recorded::AlreadyHad(result));
    }
    if inspection.team != caller_team {
        return Err(ApiError::forbidden("team", format!("your token is for team {caller_team}")));
    }
    domain::validate_inspection(inspection).finish()?;
    match store::covered_cities(conn, &inspection.round, &inspection.team).await? {
        Some(cities) if cities.contains(&inspection.city_code) => {}
        Some(_) => {
            return Err(ApiError::forbidden(
                "city_code",
                format!(
                    "team {} does not cover {} in round {}",
                    inspection.team, inspection.city_code, inspection.round
                ),
            ));
        }
        None if store::round_cities(conn, &inspection.round).await?.is_none() => {
            return Err(ApiError::invalid("round", format!("no round {}", inspection.round)));
        }
        None => {
            return Err(ApiError::forbidden(
                "team",
                format!("team {} has no cities in round {}", inspection.team, inspection.round),
            ));
        }
    }
    for (i, problem) in inspection.problems.iter().enumerate() {
        if let Some(other) = store::problem_inspection(conn, problem.id).await? {
            return Err(ApiError::conflict(
                format!("problems[{i}].id"),
                format!("already reported with inspection {other}"),
            ));
        }
    }

    let site_key = domain::site_key(&inspection.site);
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(inspection.problems.len());
    for (i, problem) in inspection.problems.iter().enumerate() {
        // A second problem of the same category in the same check repeats the first.
        let same_check = inspection.problems[..i].iter().position(|p| p.category == problem.category);
        let outcome = match same_check {
            Some(j) => match outcomes[j] {
                Outcome::Duplicate { duplicate_of } => Outcome::Duplicate { duplicate_of },
                _ => Outcome::Duplicate { duplicate_of: inspection.problems[j].id },
            },
            None => {
                store::lock_site_category(conn, &site_key, &problem.category).await?;
                domain::classify(store::latest_entry(conn, &site_key, &problem.category).await?)
            }
        };
        outcomes.push(outcome);
    }
    let result = InspectionResult {
        id: inspection.id,
        status: "created".into(),
        problems: inspection
            .problems
            .iter()
            .zip(&outcomes)
            .map(|(p, o)| ProblemResult { id: p.id, outcome: serde_json::to_value(o).expect("outcome serialises") })
            .collect(),
    };
    store::insert_inspection(conn, inspection, &site_key, &serde_json::to_value(&result).map_err(anyhow::Error::from)?)
        .await?;

    let city = Some(inspection.city_code.as_str());
    let mut duplicates = 0;
    for (index, (problem, outcome)) in inspection.problems.iter().zip(&outcomes).enumerate() {
        let (duplicate_of, rebound_of) = match *outcome {
            Outcome::Reported => (None, None),
            Outcome::Duplicate { duplicate_of } => (Some(duplicate_of), None),
            Outcome::Rebound { rebound_of } => (None, Some(rebound_of)),
        };
        store::insert_problem(
            conn,
            store::NewProblem { inspection, index, site_key: &site_key, duplicate_of, rebound_of },
        )
        .await?;
        if duplicate_of.is_some() {
            duplicates += 1;
            continue;
        }
        let event = ProblemReported {
            problem_id: problem.id,
            problem_seq: 1,
            inspection_id: inspection.id,
            round: inspection.round.clone(),
            team: inspection.team.clone(),
            city_code: inspection.city_code.clone(),
            county_code: inspection.county_code.clone(),
            category: problem.category.clone(),
            severity: problem.severity.clone(),
            description: problem.description.clone(),
            site: inspection.site.clone(),
            checked_at: inspection.checked_at,
            rebound_of,
        };
        outbox.publish(conn, &PROBLEM_REPORTED, city, problem.id.to_string(), &event).await?;
    }
    let recorded = InspectionRecorded {
        inspection_id: inspection.id,
        round: inspection.round.clone(),
        team: inspection.team.clone(),
        city_code: inspection.city_code.clone(),
        county_code: inspection.county_code.clone(),
        checked_at: inspection.checked_at,
        problems_reported: (inspection.problems.len() - duplicates) as u32,
        duplicates: duplicates as u32,
    };
    outbox.publish(conn, &INSPECTION_RECORDED, city, inspection.id.to_string(), &recorded).await?;
    Ok(Recorded::Created(result))
}

async fn post_inspection(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(inspection): JsonBody<InspectionRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Role::Inspector)?;
    let team = caller.team()?.to_string();
    let mut tx = s.pool.begin().await?;
    let answer = match record(&mut tx, &s.outbox, &team, &inspection).await {
        Ok(answer) => answer,
        Err(ApiError::Internal(e)) => {
            // The same id sent twice at once: the loser of the race answers with what was stored.
            drop(tx);
            let mut conn = s.pool.acquire().await?;
            return match store::inspection_result(&mut conn, inspection.id).await? {
                Some(stored) => Ok((StatusCode::OK, Json(with_status(stored, "already_had")))),
                None => Err(ApiError::Internal(e)),
            };
        }
        Err(other) => return Err(other),
    };
    match answer {
        Recorded::Created(result) => {
            tx.commit().await?;
            Ok((StatusCode::CREATED, Json(serde_json::to_value(result).map_err(anyhow::Error::from)?)))
        }
        Recorded::AlreadyHad(result) => {
            Ok((StatusCode::OK, Json(serde_json::to_value(result).map_err(anyhow::Error::from)?)))
        }
    }
}

fn with_status(mut stored: Value, status: &str) -> Value {
    stored["status"] = status.into();
    stored
}

#[derive(Deserialize)]
struct BatchRequest {
    items: Vec<Value>,
}

#[derive(Serialize)]
struct BatchItemResult {
    id: Option<String>,
    status: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problems: Option<Vec<ProblemResult>>,
}

/// Offline sync: each item is recorded or refused on its own (a savepoint each), in one
/// transaction; a resend of the same batch answers `already_had` and stores nothing new.
async fn post_batch(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(batch): JsonBody<BatchRequest>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Inspector)?;
    let team = caller.team()?.to_string();
    if batch.items.len() > s.max_batch_items {
        return Err(ApiError::invalid("items", format!("at most {} items in one batch", s.max_batch_items)));
    }
    let mut tx = s.pool.begin().await?;
    let mut results = Vec::with_capacity(batch.items.len());
    for item in batch.items {
        let id = item.get("id").and_then(Value::as_str).map(str::to_owned);
        let inspection: InspectionRequest = match parse_value(item) {
            Ok(inspection) => inspection,
            Err(e) => {
                results.push(BatchItemResult { id, status: "refused", errors: e.field_errors(), problems: None });
                continue;
            }
        };
        let mut savepoint = tx.begin().await?;
        match record(&mut savepoint, &s.outbox, &team, &inspection).await {
            Ok(Recorded::Created(result)) => {
                savepoint.commit().await?;
                results.push(BatchItemResult {
                    id,
                    status: "created",
                    errors: vec![],
                    problems: Some(result.problems),
                });
            }
            Ok(Recorded::AlreadyHad(result)) => {
                savepoint.rollback().await?;
                results.push(BatchItemResult {
                    id,
                    status: "already_had",
                    errors: vec![],
                    problems: Some(result.problems),
                });
            }
            // Not the item's fault: the whole batch fails and can be sent again.
            Err(e @ (ApiError::Internal(_) | ApiError::Unavailable { .. })) => return Err(e),
            Err(e) => {
                savepoint.rollback().await?;
                results.push(BatchItemResult { id, status: "refused", errors: e.field_errors(), problems: None });
            }
        }
    }
    tx.commit().await?;
    Ok(Json(json!({ "results": results })))
}
