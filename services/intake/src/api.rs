//! Intake's HTTP routes: campaign set-up by the admin, and site checks from the inspectors.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::auth::{Caller, Role};
use std::collections::HashMap;

use shared::error::ApiError;
use shared::events::{ROUND_CONFIGURED, RoundConfigured, TEAM_ASSIGNED, TEAM_REGISTERED, TeamAssigned, TeamRegistered};
use shared::http::{JsonBody, parse_value};
use shared::outbox::Outbox;
use sqlx::PgPool;

use crate::domain::{self, InspectionRequest, RoundRequest, RoundTeamRequest, TeamRequest};
use crate::recording::{self, Recorded};
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

async fn post_inspection(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(inspection): JsonBody<InspectionRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Role::Inspector)?;
    let team = caller.team()?.to_string();
    let (id, round) = (inspection.id, inspection.round.clone());
    let mut tx = s.pool.begin().await?;
    let recorded = match recording::record(&mut tx, &s.outbox, &team, vec![Ok(inspection)]).await {
        Ok(mut answers) => answers.pop().expect("one answer for one item"),
        Err(ApiError::Internal(e)) => {
            // The same id sent twice at once: the loser of the race answers with what was stored.
            drop(tx);
            let mut conn = s.pool.acquire().await?;
            return match store::inspection_results(&mut conn, &[id]).await?.pop() {
                Some((_, mut stored)) => {
                    stored["status"] = "already_had".into();
                    Ok((StatusCode::OK, Json(stored)))
                }
                None => Err(ApiError::Internal(e)),
            };
        }
        Err(other) => return Err(other),
    };
    match recorded {
        Recorded::Created(answer) => {
            tx.commit().await?;
            Ok((StatusCode::CREATED, Json(answer)))
        }
        Recorded::AlreadyHad(answer) => Ok((StatusCode::OK, Json(answer))),
        Recorded::Refused(e) => {
            drop(tx);
            store::count_refusals(&mut *s.pool.acquire().await?, &round, &team, 1).await?;
            Err(e)
        }
    }
}

#[derive(Deserialize)]
struct BatchRequest {
    items: Vec<Value>,
}

/// Offline sync: each item is recorded or refused on its own, in one transaction; a resend of
/// the same batch answers `already_had` and stores nothing new.
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
    let mut ids = Vec::with_capacity(batch.items.len());
    let mut rounds = Vec::with_capacity(batch.items.len());
    let mut items = Vec::with_capacity(batch.items.len());
    for item in batch.items {
        ids.push(item.get("id").cloned().unwrap_or(Value::Null));
        rounds.push(item.get("round").and_then(Value::as_str).unwrap_or_default().to_string());
        items.push(parse_value::<InspectionRequest>(item));
    }
    let mut tx = s.pool.begin().await?;
    let answers = recording::record(&mut tx, &s.outbox, &team, items).await?;
    let mut refused: HashMap<&str, i64> = HashMap::new();
    let results: Vec<Value> = answers
        .into_iter()
        .zip(&ids)
        .zip(&rounds)
        .map(|((recorded, id), round)| match recorded {
            Recorded::Created(answer) | Recorded::AlreadyHad(answer) => {
                json!({ "id": id, "status": answer["status"], "problems": answer["problems"] })
            }
            Recorded::Refused(e) => {
                *refused.entry(round.as_str()).or_default() += 1;
                json!({ "id": id, "status": "refused", "errors": e.field_errors() })
            }
        })
        .collect();
    for (round, n) in refused {
        store::count_refusals(&mut tx, round, &team, n).await?;
    }
    tx.commit().await?;
    Ok(Json(json!({ "results": results })))
}
