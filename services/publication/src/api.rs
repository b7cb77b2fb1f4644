//! Publication's HTTP routes: everything here is public and needs no token.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::error::ApiError;
use shared::http::QueryParams;
use shared::reference;
use sqlx::PgPool;
use uuid::Uuid;

use crate::render;
use crate::store::{self, ProblemFilter};

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub base_url: String,
    pub feed_size: i64,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(front_page))
        .route("/problems/{id}", get(problem_page))
        .route("/v1/problems", get(list_problems))
        .route("/v1/problems/{id}", get(get_problem))
        .route("/v1/stats", get(stats))
        .route("/v1/chain", get(chain))
        .route("/feed.atom", get(atom))
        .route("/feed.json", get(json_feed))
        .route("/problems.geojson", get(geojson))
        .route("/problems.csv", get(csv))
        .with_state(state)
}

#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(flatten)]
    filter: ProblemFilter,
    limit: Option<i64>,
}

fn checked(q: &ListQuery, default_limit: i64, max: i64) -> Result<i64, ApiError> {
    let mut v = shared::error::Validator::new();
    if let Some(city) = &q.filter.city {
        v.check(reference::city(city).is_some(), "city", "not one of the 39 key cities");
    }
    if let Some(category) = &q.filter.category {
        v.check(reference::category(category).is_some(), "category", "not a known category");
    }
    let limit = q.limit.unwrap_or(default_limit);
    v.check((1..=max).contains(&limit), "limit", format!("between 1 and {max}"));
    v.finish()?;
    Ok(limit)
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::invalid("id", "a problem id is a UUID"))
}

async fn list_problems(
    State(s): State<AppState>,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = checked(&q, 100, 1000)?;
    let items = store::public_problems(&mut *s.pool.acquire().await?, &q.filter, limit).await?;
    Ok(Json(json!({ "count": items.len(), "items": items })))
}

async fn public_problem(s: &AppState, id: &str) -> Result<(store::PublicProblem, Vec<store::HistoryItem>), ApiError> {
    let id = parse_id(id)?;
    let mut conn = s.pool.acquire().await?;
    let problem =
        store::public_problem(&mut conn, id).await?.ok_or_else(|| ApiError::not_found(format!("problem {id}")))?;
    let history = store::history(&mut conn, id).await?;
    Ok((problem, history))
}

async fn get_problem(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let (problem, history) = public_problem(&s, &id).await?;
    let mut body = serde_json::to_value(problem).map_err(anyhow::Error::from)?;
    body["history"] = serde_json::to_value(history).map_err(anyhow::Error::from)?;
    Ok(Json(body))
}

async fn problem_page(State(s): State<AppState>, Path(id): Path<String>) -> Result<Html<String>, ApiError> {
    let (problem, history) = public_problem(&s, &id).await?;
    Ok(Html(render::problem_page(&problem, &history)))
}

/// Totals with per-city and per-category breakdowns; filters `round`, `city`, `category`.
#[derive(Deserialize)]
struct StatsQuery {
    round: Option<String>,
    city: Option<String>,
    category: Option<String>,
}

async fn stats(
    State(s): State<AppState>,
    QueryParams(stats_query): QueryParams<StatsQuery>,
) -> Result<Json<Value>, ApiError> {
    let StatsQuery { round, city, category } = stats_query;
    let q = ListQuery { filter: ProblemFilter { city, category, round, ..Default::default() }, limit: None };
    checked(&q, 1, 1)?;
    let mut conn = s.pool.acquire().await?;
    let counts = store::problem_counts(&mut conn, &q.filter).await?;
    let checks = store::check_counts(&mut conn, &q.filter).await?;
    let mut totals = json!({ "site_checks": 0, "problems": 0, "by_status": {} });
    let mut cities: BTreeMap<String, Value> = BTreeMap::new();
    let mut categories: BTreeMap<String, Value> = BTreeMap::new();
    let empty = || json!({ "site_checks": 0, "problems": 0, "by_status": {} });
    for (city, n) in &checks {
        if q.filter.category.is_none() {
            totals["site_checks"] = json!(totals["site_checks"].as_i64().unwrap_or(0) + n);
        }
        cities.entry(city.clone()).or_insert_with(empty)["site_checks"] = json!(n);
    }
    for (city, category, status, n) in counts {
        for bucket in
            [&mut totals, cities.entry(city).or_insert_with(empty), categories.entry(category).or_insert_with(empty)]
        {
            bucket["problems"] = json!(bucket["problems"].as_i64().unwrap_or(0) + n);
            let by = &mut bucket["by_status"][&status];
            *by = json!(by.as_i64().unwrap_or(0) + n);
        }
    }
    for bucket in categories.values_mut() {
        if let Some(map) = bucket.as_object_mut() {
            map.remove("site_checks");
        }
    }
    Ok(Json(json!({ "totals": totals, "cities": cities, "categories": categories })))
}

async fn front_page(State(s): State<AppState>) -> Result<Html<String>, ApiError> {
    let mut conn = s.pool.acquire().await?;
    let problems = store::public_problems(&mut conn, &ProblemFilter::default(), s.feed_size).await?;
    let counts = store::problem_counts(&mut conn, &ProblemFilter::default()).await?;
    let checks: BTreeMap<String, i64> =
        store::check_counts(&mut conn, &ProblemFilter::default()).await?.into_iter().collect();
    let mut per_city: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (city, _, status, n) in counts {
        let entry = per_city.entry(city).or_default();
        entry.0 += n;
        if status == "closed" {
            entry.1 += n;
        }
    }
    let rows: Vec<(String, i64, i64, i64)> = reference::cities()
        .iter()
        .map(|c| {
            let (found, closed) = per_city.get(&c.code).copied().unwrap_or_default();
            (c.code.clone(), checks.get(&c.code).copied().unwrap_or(0), found, closed)
        })
        .collect();
    Ok(Html(render::front_page(&problems, &rows)))
}

#[derive(Deserialize)]
struct ChainQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

/// The hash chain of every public entry, in order, paged by `after`.
async fn chain(State(s): State<AppState>, QueryParams(q): QueryParams<ChainQuery>) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::invalid("limit", "between 1 and 10000"));
    }
    let entries = store::chain(&mut *s.pool.acquire().await?, q.after.unwrap_or(0), limit).await?;
    Ok(Json(json!({ "entries": entries })))
}

async fn feed_rows(s: &AppState, q: &ListQuery) -> Result<Vec<store::PublicProblem>, ApiError> {
    let limit = checked(q, s.feed_size, 10_000)?;
    Ok(store::public_problems(&mut *s.pool.acquire().await?, &q.filter, limit).await?)
}

async fn atom(State(s): State<AppState>, QueryParams(q): QueryParams<ListQuery>) -> Result<Response, ApiError> {
    let rows = feed_rows(&s, &q).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        render::atom(&rows, &s.base_url, "/feed.atom"),
    )
        .into_response())
}

async fn json_feed(State(s): State<AppState>, QueryParams(q): QueryParams<ListQuery>) -> Result<Response, ApiError> {
    let rows = feed_rows(&s, &q).await?;
    Ok(([(header::CONTENT_TYPE, "application/feed+json; charset=utf-8")], Json(render::json_feed(&rows, &s.base_url)))
        .into_response())
}

async fn geojson(State(s): State<AppState>, QueryParams(q): QueryParams<ListQuery>) -> Result<Response, ApiError> {
    let limit = checked(&q, 10_000, 100_000)?;
    let rows = store::public_problems(&mut *s.pool.acquire().await?, &q.filter, limit).await?;
    Ok(([(header::CONTENT_TYPE, "application/geo+json")], Json(render::geojson(&rows))).into_response())
}

async fn csv(State(s): State<AppState>, QueryParams(q): QueryParams<ListQuery>) -> Result<Response, ApiError> {
    let limit = checked(&q, 100_000, 1_000_000)?;
    let rows = store::public_problems(&mut *s.pool.acquire().await?, &q.filter, limit).await?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], render::csv(&rows)).into_response())
}
