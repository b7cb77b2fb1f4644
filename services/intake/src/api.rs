//! Intake's HTTP routes: campaign set-up by the admin, and site checks from the inspectors.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::auth::{Caller, Role};
use std::collections::HashMap;

use shared::clock::Clock;
use shared::error::ApiError;
use shared::events::{
    CityPackageConfigured, PROBLEM_REPORTED, Previous, ProblemMerged, ProblemWithdrawn, RoundConfigured, TeamAssigned,
    TeamRegistered,
};
use shared::http::{JsonBody, parse_id, parse_value};
use shared::outbox::Outbox;
use sqlx::PgPool;

use crate::domain::{
    self, CityPackageRequest, Correction, InspectionRequest, RoundRequest, RoundTeamRequest, TeamRequest,
};
use crate::recording::{self, Recorded};
use crate::registers;
use crate::store;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub outbox: Outbox,
    pub clock: Clock,
    pub max_batch_items: usize,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/rounds", get(list_rounds))
        .route("/v1/teams", get(list_teams))
        .route("/v1/teams/{team}/rounds", get(team_rounds))
        .route("/v1/teams/{team}/inspections", get(team_inspections))
        .route("/v1/cities/packages", get(list_packages))
        .route("/v1/rounds/{round}", put(put_round))
        .route("/v1/teams/{team}", put(put_team))
        .route("/v1/rounds/{round}/teams/{team}", put(put_round_team))
        .route("/v1/inspections", post(post_inspection))
        .route("/v1/inspections/batch", post(post_batch))
        .route("/v1/cities/{city}/package", put(put_package))
        .route(
            "/v1/cities/{city}/emergency-list",
            get(registers::get_emergency_list).post(registers::post_emergency_list),
        )
        .route("/v1/cities/{city}/alerts", get(registers::list_alerts))
        .route("/v1/cities/{city}/registers/{register}", get(registers::get_register).post(registers::post_register))
        .route("/v1/cities/{city}/alerts/{alert}", put(registers::put_alert))
        .route("/v1/rounds/{round}/quality", get(get_quality))
        .route("/v1/problems/{id}", get(get_problem))
        .route("/v1/problems/{id}/withdraw", post(withdraw_problem))
        .route("/v1/problems/{id}/merge", post(merge_problem))
        .with_state(state)
}

/// The campaign set-up read back, for the campaign office: rounds with their teams and cities.
async fn list_rounds(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let items = store::rounds(&mut *s.pool.acquire().await?).await?;
    Ok(Json(json!({ "count": items.len(), "items": items })))
}

async fn list_teams(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let items = store::teams(&mut *s.pool.acquire().await?).await?;
    Ok(Json(json!({ "count": items.len(), "items": items })))
}

/// A team's own business: its inspectors (and verifiers) and the campaign office see it.
fn own_team(caller: &Caller, team: &str) -> Result<(), ApiError> {
    match caller.0.role {
        Role::Admin => Ok(()),
        Role::Inspector | Role::Verifier if caller.0.team.as_deref() == Some(team) => Ok(()),
        _ => Err(ApiError::forbidden("team", format!("team {team} is not yours"))),
    }
}

/// The rounds a team works in, with the cities it covers in each: what the field app keeps on
/// the device.
async fn team_rounds(
    State(s): State<AppState>,
    caller: Caller,
    Path(team): Path<String>,
) -> Result<Json<Value>, ApiError> {
    own_team(&caller, &team)?;
    let items = store::team_rounds(&mut *s.pool.acquire().await?, &team).await?;
    Ok(Json(json!({ "team": team, "count": items.len(), "items": items })))
}

#[derive(Deserialize)]
struct RoundQuery {
    round: String,
}

/// A team's site checks of a round, newest first, each with what became of its problems.
async fn team_inspections(
    State(s): State<AppState>,
    caller: Caller,
    Path(team): Path<String>,
    shared::http::QueryParams(query): shared::http::QueryParams<RoundQuery>,
) -> Result<Json<Value>, ApiError> {
    own_team(&caller, &team)?;
    let items = store::team_inspections(&mut *s.pool.acquire().await?, &team, &query.round).await?;
    Ok(Json(json!({ "team": team, "round": query.round, "count": items.len(), "items": items })))
}

async fn list_packages(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let items = store::packages(&mut *s.pool.acquire().await?).await?;
    Ok(Json(json!({ "count": items.len(), "items": items })))
}

/// A problem as reported, with its site and the inspectors' photos: for the campaign office,
/// verifiers, the team that found it, and the government it concerns. Anyone else is answered
/// 404, so existence does not leak.
async fn get_problem(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = shared::http::parse_id(&id)?;
    let problem = store::problem(&mut *s.pool.acquire().await?, id).await?;
    let claims = &caller.0;
    let visible = problem.filter(|p| match claims.role {
        Role::Admin | Role::Verifier => true,
        Role::Inspector => claims.team.as_deref() == p["team"].as_str(),
        Role::LocalGov => {
            let jurisdiction = claims.jurisdiction.as_deref().unwrap_or_default();
            let place = p["county_code"].as_str().or(p["city_code"].as_str()).unwrap_or_default();
            shared::reference::jurisdiction_covers(jurisdiction, place) || p["city_code"] == jurisdiction
        }
    });
    let mut problem = visible.ok_or_else(|| ApiError::not_found(format!("problem {id}")))?;
    // Which team found it is the campaign's business, not the government's.
    if claims.role == Role::LocalGov {
        problem.as_object_mut().map(|p| p.remove("team"));
    }
    Ok(Json(problem))
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
    s.outbox.publish(&mut tx, None, &id, &event).await?;
    s.outbox.commit(tx).await?;
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
    s.outbox.publish(&mut tx, None, &id, &event).await?;
    s.outbox.commit(tx).await?;
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
    let (province, members) = store::team_province_and_members(&mut tx, &team)
        .await?
        .ok_or_else(|| ApiError::invalid("team", format!("no team {team}: PUT /v1/teams/{team} first")))?;
    domain::validate_round_team(&request, &round_cities, &province).finish()?;
    store::upsert_round_team(&mut tx, &round, &team, &request.cities).await?;
    let event = TeamAssigned {
        round: round.clone(),
        team: team.clone(),
        cities: request.cities.clone(),
        members: members.max(0) as u32,
    };
    s.outbox.publish(&mut tx, None, format!("{round}/{team}"), &event).await?;
    s.outbox.commit(tx).await?;
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
            s.outbox.commit(tx).await?;
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
                let mut result = json!({ "id": id, "status": answer["status"], "problems": answer["problems"] });
                if let Some(level) = answer.get("emergency_alert") {
                    result["emergency_alert"] = level.clone();
                }
                result
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
    s.outbox.commit(tx).await?;
    Ok(Json(json!({ "results": results })))
}

/// The city package (三位一体包保): one ministry department, one affiliated unit and one
/// provincial department answer for the city; notices to the city are copied to them.
async fn put_package(
    State(s): State<AppState>,
    caller: Caller,
    Path(city): Path<String>,
    JsonBody(package): JsonBody<CityPackageRequest>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    domain::validate_package(&city, &package).finish()?;
    let mut tx = s.pool.begin().await?;
    store::upsert_package(&mut tx, &city, &package).await?;
    let event = CityPackageConfigured {
        city_code: city.clone(),
        ministry_department: package.ministry_department.clone(),
        affiliated_unit: package.affiliated_unit.clone(),
        provincial_department: package.provincial_department.clone(),
    };
    s.outbox.publish(&mut tx, Some(&city), &city, &event).await?;
    s.outbox.commit(tx).await?;
    Ok(Json(json!({ "city": city, "package": package })))
}

/// Each team's figures for a round: site checks, ledger entries, duplicates, withdrawn, refused.
async fn get_quality(
    State(s): State<AppState>,
    caller: Caller,
    Path(round): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let mut conn = s.pool.acquire().await?;
    if store::round_cities(&mut conn, &round).await?.is_none() {
        return Err(ApiError::not_found(format!("round {round}")));
    }
    let teams = store::quality(&mut conn, &round).await?;
    Ok(Json(json!({ "round": round, "teams": teams })))
}

fn check_reason(reason: &str) -> Result<(), ApiError> {
    let mut v = shared::error::Validator::new();
    v.reason(reason);
    v.finish()
}

/// A ledger entry the campaign office may still correct.
async fn correctable(conn: &mut sqlx::PgConnection, id: uuid::Uuid, field: &str) -> Result<store::Entry, ApiError> {
    let entry = store::entry_for_update(conn, id).await?.ok_or_else(|| ApiError::not_found(format!("problem {id}")))?;
    if entry.withdrawn {
        return Err(ApiError::conflict(field, "the report was withdrawn"));
    }
    if entry.duplicate_of.is_some() {
        return Err(ApiError::conflict(field, "a duplicate is no ledger entry of its own"));
    }
    Ok(entry)
}

/// The campaign office withdraws a report entered in error, with the reason; it leaves the
/// ledger and the public record says so.
async fn withdraw_problem(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(correction): JsonBody<Correction>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let id = parse_id(&id)?;
    check_reason(&correction.reason)?;
    let mut tx = s.pool.begin().await?;
    let entry = correctable(&mut tx, id, "id").await?;
    let now = s.clock.now();
    store::withdraw(&mut tx, id, &correction.reason, now).await?;
    let event = ProblemWithdrawn {
        problem_id: id,
        problem_seq: 2,
        previous: Previous::of(&[(PROBLEM_REPORTED, 1)]),
        city_code: entry.city_code.clone(),
        reason: correction.reason,
        withdrawn_at: now,
    };
    s.outbox.publish(&mut tx, Some(&entry.city_code), id.to_string(), &event).await?;
    s.outbox.commit(tx).await?;
    Ok(Json(json!({ "id": id, "status": "withdrawn" })))
}

/// The campaign office finds two entries to be one problem: this one becomes a duplicate of
/// `into`, with the reason, and leaves the ledger.
async fn merge_problem(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(correction): JsonBody<Correction>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let id = parse_id(&id)?;
    check_reason(&correction.reason)?;
    let into = correction.into.ok_or_else(|| ApiError::invalid("into", "the entry this one repeats"))?;
    if into == id {
        return Err(ApiError::invalid("into", "an entry cannot repeat itself"));
    }
    let mut tx = s.pool.begin().await?;
    let entry = correctable(&mut tx, id, "id").await?;
    let target = store::entry_for_update(&mut tx, into)
        .await?
        .ok_or_else(|| ApiError::invalid("into", format!("no problem {into}")))?;
    if target.withdrawn || target.duplicate_of.is_some() || target.city_code != entry.city_code {
        return Err(ApiError::invalid("into", "a ledger entry of the same city"));
    }
    store::merge(&mut tx, id, into, &correction.reason).await?;
    let event = ProblemMerged {
        problem_id: id,
        problem_seq: 2,
        previous: Previous::of(&[(PROBLEM_REPORTED, 1)]),
        into,
        city_code: entry.city_code.clone(),
        reason: correction.reason,
        merged_at: s.clock.now(),
    };
    s.outbox.publish(&mut tx, Some(&entry.city_code), id.to_string(), &event).await?;
    s.outbox.commit(tx).await?;
    Ok(Json(json!({ "id": id, "status": "merged", "into": into })))
}
