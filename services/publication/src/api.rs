//! Publication's HTTP routes. Everything is public and needs no token, except the campaign
//! office's acts under `/v1/admin/` (admin token).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use shared::auth::{Caller, Role};
use shared::error::{ApiError, Validator};
use shared::http::{JsonBody, QueryParams, parse_id};
use shared::reference;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::frontier::{self, NodeId, Nodes};
use crate::handlers::Publisher;
use crate::merkle;
use crate::render::{self, Lang};
use crate::store::{self, Cursor, HistoryLine, ProblemFilter, Retracted, StatsFilter};
use crate::tiles;
use crate::witnessing::Witness;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub base_url: String,
    pub feed_size: i64,
    pub league_min_checks: i64,
    pub publisher: Publisher,
    /// The witnesses the deployment names, who cosign its checkpoints.
    pub witnesses: Arc<Vec<Witness>>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(front_page))
        .route("/problems/{id}", get(problem_page))
        .route("/record-check.js", get(record_check_script))
        .route("/v1/problems", get(list_problems))
        .route("/v1/problems/{id}", get(get_problem))
        .route("/v1/stats", get(stats))
        .route("/v1/summonses", get(list_summonses))
        .route("/v1/special-inspections", get(list_special_inspections))
        .route("/v1/chain", get(chain))
        .route("/v1/chain/key", get(chain_key))
        .route("/v1/chain/witnesses", get(chain_witnesses))
        .route("/v1/chain/entries", get(chain_entries))
        .route("/v1/chain/checkpoint", get(latest_checkpoint))
        .route("/v1/chain/checkpoints", get(checkpoints))
        .route("/v1/chain/proof/inclusion", get(inclusion_proof))
        .route("/v1/chain/proof/consistency", get(consistency_proof))
        .route("/checkpoint", get(checkpoint_note))
        .route("/tile/{*path}", get(tile))
        .route("/feed.atom", get(atom))
        .route("/feed.json", get(json_feed))
        .route("/typical-cases.atom", get(typical_atom))
        .route("/typical-cases.json", get(typical_json))
        .route("/problems.geojson", get(geojson))
        .route("/problems.csv", get(csv))
        .route("/v1/admin/pending", get(pending))
        .route("/v1/admin/problems/{id}/typical-case", put(mark_typical))
        .route("/v1/admin/problems/{id}/approval", post(approve))
        .route("/v1/admin/problems/{id}/retraction", post(retract))
        .route("/v1/admin/problems/{id}/correction", post(correct))
        .route("/v1/admin/entries/{index}/takedown", post(takedown))
        .with_state(state)
}

// ---------------------------------------------------------------------------------------------
// Conditional GET

fn http_date(at: OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    at.to_offset(time::UtcOffset::UTC).format(&format).unwrap_or_default()
}

fn parse_http_date(text: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(text.trim(), &format).ok().map(|t| t.assume_utc())
}

/// Answers `body` with an ETag (its hash) and Last-Modified (when the public record last
/// changed), or 304 when the client's copy is current. If-None-Match wins over
/// If-Modified-Since (RFC 9110 §13.2.2).
fn conditional(request: &HeaderMap, last_modified: OffsetDateTime, content_type: &str, body: Vec<u8>) -> Response {
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&body))[..32]);
    let not_modified = match request.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        Some(tags) => tags.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == etag),
        None => request
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date)
            .is_some_and(|since| last_modified.unix_timestamp() <= since.unix_timestamp()),
    };
    let mut headers = HeaderMap::new();
    let mut set = |name, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set(header::ETAG, &etag);
    set(header::LAST_MODIFIED, &http_date(last_modified));
    set(header::CACHE_CONTROL, "public, no-cache");
    if not_modified {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    set(header::CONTENT_TYPE, content_type);
    (headers, body).into_response()
}

fn json_bytes(value: &impl serde::Serialize) -> Result<Vec<u8>, ApiError> {
    Ok(serde_json::to_vec(value).map_err(anyhow::Error::from)?)
}

const JSON: &str = "application/json";
const HTML: &str = "text/html; charset=utf-8";

// ---------------------------------------------------------------------------------------------
// Problems

#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(flatten)]
    filter: ProblemFilter,
    limit: Option<i64>,
    /// Where the page starts: the `next_cursor` of the page before.
    cursor: Option<String>,
    /// GeoJSON only: `min_lon,min_lat,max_lon,max_lat`.
    bbox: Option<String>,
    lang: Option<String>,
}

struct Checked {
    limit: i64,
    cursor: Option<Cursor>,
    bbox: Option<[f64; 4]>,
}

const STATUSES: &[&str] = &["assigned", "acknowledged", "rectification_reported", "reopened", "closed"];

fn check_filter(v: &mut Validator, f: &ProblemFilter) {
    if let Some(city) = &f.city {
        v.check(reference::city(city).is_some(), "city", "not one of the 39 key cities");
    }
    if let Some(county) = &f.county {
        v.check(reference::is_jurisdiction(county), "county", "not a county of a key city");
    }
    if let Some(category) = &f.category {
        v.check(reference::category(category).is_some(), "category", "not a known category");
    }
    if let Some(status) = &f.status {
        v.check(STATUSES.contains(&status.as_str()), "status", format!("one of {}", STATUSES.join(", ")));
    }
}

fn checked(q: &ListQuery, default_limit: i64, max: i64) -> Result<Checked, ApiError> {
    let mut v = Validator::new();
    check_filter(&mut v, &q.filter);
    let limit = q.limit.unwrap_or(default_limit);
    v.check((1..=max).contains(&limit), "limit", format!("between 1 and {max}"));
    let cursor = q.cursor.as_deref().map(Cursor::decode);
    v.check(!matches!(cursor, Some(None)), "cursor", "not a cursor this service gave");
    let bbox = q.bbox.as_deref().map(|b| {
        let parts: Vec<f64> = b.split(',').filter_map(|x| x.trim().parse().ok()).collect();
        match parts[..] {
            [w, s, e, n]
                if (-180.0..=180.0).contains(&w)
                    && (-180.0..=180.0).contains(&e)
                    && (-90.0..=90.0).contains(&s)
                    && (-90.0..=90.0).contains(&n)
                    && s <= n =>
            {
                Some([w, s, e, n])
            }
            _ => None,
        }
    });
    v.check(!matches!(bbox, Some(None)), "bbox", "min_lon,min_lat,max_lon,max_lat in degrees (WGS 84)");
    v.finish()?;
    Ok(Checked { limit, cursor: cursor.flatten(), bbox: bbox.flatten() })
}

/// The query string of a list with its filters and a cursor, for `next` links.
fn query_with(f: &ProblemFilter, cursor: Option<&str>, extra: &[(&str, String)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    let pairs = [
        ("city", f.city.clone()),
        ("county", f.county.clone()),
        ("category", f.category.clone()),
        ("status", f.status.clone()),
        ("round", f.round.clone()),
        ("q", f.q.clone()),
        ("typical", f.typical.map(|b| b.to_string())),
        ("overdue", f.overdue.map(|b| b.to_string())),
    ];
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, &v);
        }
    }
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    if let Some(c) = cursor {
        q.append_pair("cursor", c);
    }
    let s = q.finish();
    if s.is_empty() { s } else { format!("?{s}") }
}

/// A page of problems and the cursor of the next page, if there may be one.
async fn page(
    conn: &mut PgConnection,
    f: &ProblemFilter,
    retracted: Retracted,
    c: &Checked,
) -> Result<(Vec<store::PublicProblem>, Option<String>), ApiError> {
    let mut items = store::public_problems(conn, f, retracted, c.cursor, c.limit + 1).await?;
    let more = items.len() as i64 > c.limit;
    items.truncate(c.limit as usize);
    let next = if more { items.last().map(|p| Cursor::after(p).encode()) } else { None };
    Ok((items, next))
}

async fn list_problems(
    State(s): State<AppState>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Response, ApiError> {
    let c = checked(&q, 100, 1000)?;
    let mut conn = s.pool.acquire().await?;
    let (items, next_cursor) = page(&mut conn, &q.filter, Retracted::Omitted, &c).await?;
    let next = next_cursor.as_deref().map(|n| {
        format!("{}/v1/problems{}", s.base_url, query_with(&q.filter, Some(n), &[("limit", c.limit.to_string())]))
    });
    let body = json!({ "count": items.len(), "items": items, "next_cursor": next_cursor, "next": next });
    let modified = store::last_modified(&mut conn).await?;
    Ok(conditional(&headers, modified, JSON, json_bytes(&body)?))
}

async fn public_problem(
    conn: &mut PgConnection,
    id: &str,
) -> Result<(store::PublicProblem, Vec<store::HistoryItem>), ApiError> {
    let id = parse_id(id)?;
    let problem = store::public_problem(conn, id).await?.ok_or_else(|| ApiError::not_found(format!("problem {id}")))?;
    let history = store::history(conn, id).await?;
    Ok((problem, history))
}

async fn get_problem(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let mut conn = s.pool.acquire().await?;
    let (problem, history) = public_problem(&mut conn, &id).await?;
    let modified = problem.updated_at;
    let mut body = serde_json::to_value(problem).map_err(anyhow::Error::from)?;
    body["history"] = serde_json::to_value(history).map_err(anyhow::Error::from)?;
    Ok(conditional(&headers, modified, JSON, json_bytes(&body)?))
}

#[derive(Deserialize)]
struct PageQuery {
    lang: Option<String>,
}

async fn problem_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let mut conn = s.pool.acquire().await?;
    let (problem, history) = public_problem(&mut conn, &id).await?;
    let witnesses: Vec<String> = s.witnesses.iter().map(|w| w.vkey.clone()).collect();
    let check = render::RecordCheck::new(&problem, &history, s.publisher.signer.verifier_key(), &witnesses);
    let html = render::problem_page(&problem, &history, check, Lang::from_query(q.lang.as_deref()));
    Ok(conditional(&headers, problem.updated_at, HTML, html.into_bytes()))
}

/// The problem page's script that checks its record in the browser (WebCrypto only). It is
/// part of the build, so it changes only with a new release: an ETag, and look again each time.
async fn record_check_script(headers: HeaderMap) -> Response {
    const SCRIPT: &str = include_str!("../assets/record-check.js");
    let etag = format!("\"{}\"", &merkle::to_hex(&crate::public_log::content_hash(SCRIPT))[..16]);
    if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let headers = [
        (header::CONTENT_TYPE, "text/javascript; charset=utf-8".to_string()),
        (header::CACHE_CONTROL, "no-cache".to_string()),
        (header::ETAG, etag),
    ];
    (headers, SCRIPT).into_response()
}

// ---------------------------------------------------------------------------------------------
// Statistics

fn check_stats(f: &StatsFilter) -> Result<(), ApiError> {
    let mut v = Validator::new();
    check_filter(&mut v, &ProblemFilter { city: f.city.clone(), category: f.category.clone(), ..Default::default() });
    v.finish()
}

/// Everything `/v1/stats` and the front page show, computed from the events alone.
pub async fn statistics(conn: &mut PgConnection, f: &StatsFilter, league_min_checks: i64) -> Result<Value, ApiError> {
    let figures = store::figures(conn, f).await?;
    let checks = store::site_checks(conn, f).await?;
    let public = store::public_counts(conn, f).await?;
    let by_category = store::handed_over_by_category(conn, f).await?;
    let (rounds, team_rounds, person_times) = store::rounds_and_teams(conn, f).await?;
    let (escalations, levels) = store::escalations(conn, f).await?;
    let (from, to) = store::period(conn, f).await?;
    let register_counts = store::register_counts(conn, f).await?;
    let as_of = store::last_modified(conn).await?;

    let mut groups: BTreeMap<(String, String), Value> = BTreeMap::new();
    for fig in &figures {
        let mut v = serde_json::to_value(fig).map_err(anyhow::Error::from)?;
        v["site_checks"] = Value::Null;
        groups.insert((fig.dimension.clone(), fig.key.clone()), v);
    }
    let empty = || serde_json::to_value(store::Figures::empty()).expect("figures serialise");
    // Checks have no category: with a category filter they are not counted.
    if f.category.is_none() {
        for (dimension, key, n, emergency) in &checks {
            let group = groups.entry((dimension.clone(), key.clone())).or_insert_with(empty);
            group["site_checks"] = json!(n);
            group["emergency_plan_checks"] = json!(emergency);
        }
    }
    let total = groups.get(&("total".into(), String::new())).cloned().unwrap_or_else(empty);
    let of = |dimension: &str| -> BTreeMap<String, Value> {
        groups.iter().filter(|((d, _), _)| d == dimension).map(|((_, k), v)| (k.clone(), v.clone())).collect()
    };
    let mut cities = of("city");
    let mut provinces = of("province");
    let rounds_figures = of("round");
    let mut categories = of("category");
    // The public problems by status, as before: what the public can see now.
    let mut public_total = 0;
    let mut by_status: BTreeMap<String, i64> = BTreeMap::new();
    for (city, category, status, n) in &public {
        public_total += n;
        *by_status.entry(status.clone()).or_default() += n;
        for bucket in
            [cities.entry(city.clone()).or_insert_with(empty), categories.entry(category.clone()).or_insert_with(empty)]
        {
            bucket["problems"] = json!(bucket["problems"].as_i64().unwrap_or(0) + n);
            let s = &mut bucket["by_status"][status];
            *s = json!(s.as_i64().unwrap_or(0) + n);
        }
    }
    let levels: BTreeMap<String, String> = levels.into_iter().collect();
    for (code, v) in cities.iter_mut() {
        if let Some(c) = reference::city(code) {
            v["name_zh"] = json!(c.name_zh);
            v["name_en"] = json!(c.name_en);
            v["province_code"] = json!(c.province_code);
        }
        v["escalation_level"] = json!(levels.get(code));
    }
    for (code, v) in provinces.iter_mut() {
        if let Some(c) = reference::cities().iter().find(|c| &c.province_code == code) {
            v["name_zh"] = json!(c.province_zh);
            v["name_en"] = json!(c.province_en);
        }
    }
    for (code, v) in categories.iter_mut() {
        if let Some(c) = reference::category(code) {
            v["name_zh"] = json!(c.name_zh);
            v["name_en"] = json!(c.name_en);
        }
    }
    let league = crate::domain::league(
        reference::cities()
            .iter()
            .filter(|c| f.city.as_ref().is_none_or(|code| code == &c.code))
            .map(|c| {
                let g = cities.get(&c.code);
                let n = |k: &str| g.and_then(|g| g[k].as_i64()).unwrap_or(0);
                crate::domain::CityFigures {
                    city_code: c.code.clone(),
                    site_checks: n("site_checks"),
                    problems_found: n("problems_found"),
                    handed_over: n("handed_over"),
                    closed: n("closed"),
                    closed_on_time: n("closed_on_time"),
                    overdue: n("overdue"),
                    reopened: n("reopened"),
                    rebounds: n("rebounds"),
                }
            })
            .collect(),
        league_min_checks,
    );
    let league: Vec<Value> = league
        .into_iter()
        .map(|row| {
            let mut v = serde_json::to_value(&row).expect("league serialises");
            if let Some(c) = reference::city(&row.figures.city_code) {
                v["name_zh"] = json!(c.name_zh);
                v["name_en"] = json!(c.name_en);
            }
            v["escalation_level"] = json!(levels.get(&row.figures.city_code));
            v
        })
        .collect();
    let n = |k: &str| total[k].as_i64().unwrap_or(0);
    let handed: BTreeMap<String, i64> = by_category.into_iter().collect();
    let escalation_counts: BTreeMap<String, i64> = escalations.into_iter().collect();
    let summary = crate::domain::CampaignSummary {
        rounds,
        teams_deployed: team_rounds,
        person_times,
        site_checks: total["site_checks"].as_i64().unwrap_or(0),
        emergency_plan_checks: total["emergency_plan_checks"].as_i64().unwrap_or(0),
        problems_found: n("problems_found"),
        handed_over: n("handed_over"),
        closed: n("closed"),
        closed_on_time: n("closed_on_time"),
        overdue: n("overdue"),
        reopened: n("reopened"),
        rebounds: n("rebounds"),
        rerouted: n("rerouted"),
        extended: n("extended"),
        emergency_plan_problems: handed.get("emergency_plan").copied().unwrap_or(0),
        scattered_polluting_problems: handed.get("scattered_polluting").copied().unwrap_or(0),
        coal_boiler_problems: handed.get("coal_boiler").copied().unwrap_or(0),
        coal_to_gas_lagging_projects: handed.get("coal_to_gas").copied().unwrap_or(0),
        escalations: escalation_counts.values().sum(),
        escalations_by_level: escalation_counts,
        handed_over_by_category: handed,
        median_days_to_close: total["median_days_to_close"].as_f64(),
    };
    let mut totals = total.clone();
    totals["problems"] = json!(public_total);
    totals["by_status"] = json!(by_status);
    Ok(json!({
        "filters": { "round": f.round, "city": f.city, "category": f.category },
        // Every figure is of these days, counted up to the last change the service applied.
        "period": {
            "from": from.map(|d| d.to_string()),
            "to": to.map(|d| d.to_string()),
            "rounds": rounds,
            "as_of": shared::csv::timestamp(as_of),
        },
        "totals": totals,
        "summary": summary.with_text(),
        "league": league,
        "league_min_checks": league_min_checks,
        "registers": registers_json(&register_counts),
        "cities": cities,
        "provinces": provinces,
        "rounds": rounds_figures,
        "categories": categories,
    }))
}

/// Each clean-up register's figures, overall and per city (`registers` in `/v1/stats`).
fn registers_json(counts: &[(String, String, String, i64)]) -> Value {
    let figures: serde_json::Map<String, Value> = crate::domain::register_figures(counts)
        .into_iter()
        .map(|(code, (overall, cities))| {
            let mut v = serde_json::to_value(&overall).expect("figures serialise");
            v["cities"] = serde_json::to_value(&cities).expect("figures serialise");
            (code.to_string(), v)
        })
        .collect();
    Value::Object(figures)
}

async fn stats(
    State(s): State<AppState>,
    headers: HeaderMap,
    QueryParams(f): QueryParams<StatsFilter>,
) -> Result<Response, ApiError> {
    check_stats(&f)?;
    let mut conn = s.pool.acquire().await?;
    let body = statistics(&mut conn, &f, s.league_min_checks).await?;
    let modified = store::last_modified(&mut conn).await?;
    Ok(conditional(&headers, modified, JSON, json_bytes(&body)?))
}

// ---------------------------------------------------------------------------------------------
// The public page

#[derive(Deserialize)]
struct FrontQuery {
    lang: Option<String>,
    city: Option<String>,
    q: Option<String>,
}

async fn front_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<FrontQuery>,
) -> Result<Response, ApiError> {
    let city = q.city.filter(|c| !c.is_empty());
    let search = q.q.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    if let Some(code) = &city
        && reference::city(code).is_none()
    {
        return Err(ApiError::invalid("city", "not one of the 39 key cities"));
    }
    let mut conn = s.pool.acquire().await?;
    let stats = statistics(&mut conn, &StatsFilter::default(), s.league_min_checks).await?;
    let filter = ProblemFilter { city: city.clone(), q: search.clone(), ..Default::default() };
    let problems = store::public_problems(&mut conn, &filter, Retracted::Omitted, None, s.feed_size).await?;
    let typical = store::typical_cases(&mut conn, 10).await?;
    let daily = store::daily(&mut conn).await?;
    let summonses = store::public_summonses(&mut conn, city.as_deref()).await?;
    let inspections = store::public_special_inspections(&mut conn, city.as_deref()).await?;
    let witnessed = match store::latest_checkpoint(&mut conn, &s.publisher.signer.origin).await? {
        Some(c) if !s.witnesses.is_empty() => Some(render::Witnessed {
            tree_size: c.tree_size,
            by: store::cosignatures(&mut conn, c.tree_size)
                .await?
                .into_iter()
                .map(|c| (c.witness_name, c.cosigned_at))
                .collect(),
        }),
        _ => None,
    };
    let view = render::FrontPage {
        lang: Lang::from_query(q.lang.as_deref()),
        stats: &stats,
        problems: &problems,
        typical: &typical,
        daily: &daily,
        city: city.as_deref(),
        q: search.as_deref(),
        witnessed: witnessed.as_ref(),
        summonses: &summonses,
        inspections: &inspections,
    };
    let modified = store::last_modified(&mut conn).await?;
    Ok(conditional(&headers, modified, HTML, render::front_page(&view).into_bytes()))
}

#[derive(Deserialize)]
struct ActsQuery {
    city: Option<String>,
}

fn acts_city(q: ActsQuery) -> Result<Option<String>, ApiError> {
    let city = q.city.filter(|c| !c.is_empty());
    if let Some(code) = &city
        && reference::city(code).is_none()
    {
        return Err(ApiError::invalid("city", "not one of the 39 key cities"));
    }
    Ok(city)
}

/// Summonses (约谈) once held, with their commitments and what verifiers found of them.
async fn list_summonses(
    State(s): State<AppState>,
    QueryParams(q): QueryParams<ActsQuery>,
) -> Result<Json<Value>, ApiError> {
    let city = acts_city(q)?;
    let items = store::public_summonses(&mut *s.pool.acquire().await?, city.as_deref()).await?;
    Ok(Json(json!({ "items": items })))
}

/// Special inspections (专项督察) once concluded: scope, findings, conclusion.
async fn list_special_inspections(
    State(s): State<AppState>,
    QueryParams(q): QueryParams<ActsQuery>,
) -> Result<Json<Value>, ApiError> {
    let city = acts_city(q)?;
    let items = store::public_special_inspections(&mut *s.pool.acquire().await?, city.as_deref()).await?;
    Ok(Json(json!({ "items": items })))
}

// ---------------------------------------------------------------------------------------------
// The public log

#[derive(Deserialize)]
struct RangeQuery {
    start: Option<i64>,
    after: Option<i64>,
    limit: Option<i64>,
}

async fn chain_key(State(s): State<AppState>) -> Json<Value> {
    let signer = &s.publisher.signer;
    Json(json!({
        "origin": signer.origin,
        "algorithm": "Ed25519",
        "public_key": signer.public_key_hex(),
        "verifier_key": signer.verifier_key(),
    }))
}

/// The latest checkpoint as a C2SP signed note (`c2sp.org/tlog-checkpoint`), for tlog tools:
/// the log's signature line, then the witnesses' cosignatures held for it (`c2sp.org/tlog-
/// cosignature`), if any yet.
async fn checkpoint_note(State(s): State<AppState>) -> Result<Response, ApiError> {
    let signer = &s.publisher.signer;
    let mut conn = s.pool.acquire().await?;
    let checkpoint = store::latest_checkpoint(&mut conn, &signer.origin)
        .await?
        .ok_or_else(|| ApiError::not_found("checkpoint (the log is empty)"))?;
    let mut note = signer.signed_note(&checkpoint);
    for cosignature in store::cosignatures(&mut conn, checkpoint.tree_size).await? {
        note.push_str(&cosignature.line);
        note.push('\n');
    }
    let headers = [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")];
    Ok((headers, note).into_response())
}

/// The witnesses the deployment names, and which of them cosigned the latest checkpoint.
async fn chain_witnesses(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mut conn = s.pool.acquire().await?;
    let checkpoint = store::latest_checkpoint(&mut conn, &s.publisher.signer.origin).await?;
    let cosigned = match &checkpoint {
        Some(c) => store::cosignatures(&mut conn, c.tree_size).await?,
        None => vec![],
    };
    let witnesses: Vec<Value> = s
        .witnesses
        .iter()
        .map(|w| {
            let cosignature = cosigned.iter().find(|c| c.witness_key == w.vkey);
            json!({
                "name": w.key.name,
                "verifier_key": w.vkey,
                "cosigned_latest_at": cosignature.map(|c| shared::csv::timestamp(c.cosigned_at)),
            })
        })
        .collect();
    Ok(Json(json!({
        "tree_size": checkpoint.map(|c| c.tree_size),
        "witnesses": witnesses,
    })))
}

/// A tile of the log (`c2sp.org/tlog-tiles`): hashes, or an entry bundle. What a path names
/// never changes, so every tile answered is cacheable for good; one not complete yet is 404.
async fn tile(State(s): State<AppState>, Path(path): Path<String>) -> Result<Response, ApiError> {
    let tile = tiles::parse(&path).ok_or_else(|| ApiError::not_found(format!("tile/{path}")))?;
    let mut conn = s.pool.acquire().await?;
    let size = store::log_size(&mut conn).await?;
    if !tile.within(size as u64) {
        return Err(ApiError::not_found(format!("{} (the log has {size} entries)", tile.path())));
    }
    let (level, first) = tile.nodes();
    let body = match tile {
        tiles::Tile::Hashes { .. } => store::tile_hashes(&mut conn, level, first, tile.width()).await?.concat(),
        tiles::Tile::Entries { .. } => {
            let entries = store::content_hashes(&mut conn, first, tile.width()).await?;
            tiles::entry_bundle(entries.iter().map(|h| &h[..]))
        }
    };
    if body.is_empty() {
        return Err(ApiError::not_found(tile.path()));
    }
    let headers = [
        (header::CONTENT_TYPE, "application/octet-stream"),
        (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
    ];
    Ok((headers, body).into_response())
}

/// The log at a glance: its key, its latest checkpoint, and where the rest is.
async fn chain(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mut conn = s.pool.acquire().await?;
    let signer = &s.publisher.signer;
    let checkpoint = store::latest_checkpoint(&mut conn, &signer.origin).await?;
    let size: i64 = store::log_size(&mut conn).await?;
    Ok(Json(json!({
        "origin": signer.origin,
        "algorithm": "Ed25519",
        "public_key": signer.public_key_hex(),
        "size": size,
        "checkpoint": checkpoint,
        "links": {
            "entries": "/v1/chain/entries?start=0",
            "checkpoint": "/v1/chain/checkpoint",
            "checkpoints": "/v1/chain/checkpoints",
            "inclusion_proof": "/v1/chain/proof/inclusion?index={index}&tree_size={tree_size}",
            "consistency_proof": "/v1/chain/proof/consistency?first={first}&second={second}",
            "signed_note": "/checkpoint",
            "witnesses": "/v1/chain/witnesses",
            "tiles": "/tile/{L}/{N}[.p/{W}] and /tile/entries/{N}[.p/{W}] (c2sp.org/tlog-tiles)",
        },
    })))
}

async fn chain_entries(
    State(s): State<AppState>,
    QueryParams(q): QueryParams<RangeQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(1000);
    let start = q.start.unwrap_or(0);
    let mut v = Validator::new();
    v.check((1..=10_000).contains(&limit), "limit", "between 1 and 10000");
    v.check(start >= 0, "start", "an entry index, from 0");
    v.finish()?;
    let entries = store::log_entries(&mut *s.pool.acquire().await?, start, limit).await?;
    Ok(Json(json!({ "entries": entries })))
}

async fn latest_checkpoint(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let checkpoint = store::latest_checkpoint(&mut *s.pool.acquire().await?, &s.publisher.signer.origin)
        .await?
        .ok_or_else(|| ApiError::not_found("checkpoint (the log is empty)"))?;
    Ok(Json(serde_json::to_value(checkpoint).map_err(anyhow::Error::from)?))
}

async fn checkpoints(
    State(s): State<AppState>,
    QueryParams(q): QueryParams<RangeQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::invalid("limit", "between 1 and 10000"));
    }
    let list =
        store::checkpoints(&mut *s.pool.acquire().await?, q.after.unwrap_or(0), limit, &s.publisher.signer.origin)
            .await?;
    Ok(Json(json!({ "checkpoints": list })))
}

#[derive(Deserialize)]
struct InclusionQuery {
    index: i64,
    tree_size: Option<i64>,
}

/// The audit path of one entry in the tree of `tree_size` entries (default: the latest checkpoint's).
async fn inclusion_proof(
    State(s): State<AppState>,
    QueryParams(q): QueryParams<InclusionQuery>,
) -> Result<Json<Value>, ApiError> {
    let mut conn = s.pool.acquire().await?;
    let tree_size = match q.tree_size {
        Some(n) => n,
        None => {
            store::latest_checkpoint(&mut conn, &s.publisher.signer.origin).await?.map(|c| c.tree_size).unwrap_or(0)
        }
    };
    let size = store::log_size(&mut conn).await?;
    let mut v = Validator::new();
    v.check(tree_size >= 1 && tree_size <= size, "tree_size", format!("between 1 and the log's size ({size})"));
    v.check(q.index >= 0 && q.index < tree_size.max(1), "index", "an entry index below tree_size");
    v.finish()?;
    let (index, size) = (q.index as u64, tree_size as u64);
    let ask = |t: &mut Nodes<'_>| Some((t.leaf(index)?, t.root(size)?, t.inclusion_proof(index, size)?));
    let (leaf, root, path) = from_stored_nodes(&mut conn, ask).await?;
    Ok(Json(json!({
        "index": q.index,
        "tree_size": tree_size,
        "leaf_hash": merkle::to_hex(&leaf),
        "root_hash": merkle::to_hex(&root),
        "audit_path": path.iter().map(merkle::to_hex).collect::<Vec<_>>(),
    })))
}

/// Answers `ask` from the log's stored subtrees: O(log n) of them, fetched in one query.
async fn from_stored_nodes<T>(
    conn: &mut PgConnection,
    ask: impl Fn(&mut Nodes<'_>) -> Option<T>,
) -> Result<T, ApiError> {
    let ids = frontier::needed(|t| {
        ask(t);
    });
    let stored = store::nodes(conn, &ids).await?;
    let mut lookup = |id: NodeId| stored.get(&id).copied();
    ask(&mut Nodes::new(&mut lookup))
        .ok_or_else(|| ApiError::from(anyhow::anyhow!("the log's stored tree lacks a node it should hold")))
}

#[derive(Deserialize)]
struct ConsistencyQuery {
    first: i64,
    second: i64,
}

async fn consistency_proof(
    State(s): State<AppState>,
    QueryParams(q): QueryParams<ConsistencyQuery>,
) -> Result<Json<Value>, ApiError> {
    let mut conn = s.pool.acquire().await?;
    let size = store::log_size(&mut conn).await?;
    let mut v = Validator::new();
    v.check(q.second >= 1 && q.second <= size, "second", format!("between 1 and the log's size ({size})"));
    v.check(q.first >= 1 && q.first <= q.second, "first", "between 1 and second");
    v.finish()?;
    let (first, second) = (q.first as u64, q.second as u64);
    let ask = |t: &mut Nodes<'_>| Some((t.root(first)?, t.root(second)?, t.consistency_proof(first, second)?));
    let (first_root, second_root, proof) = from_stored_nodes(&mut conn, ask).await?;
    Ok(Json(json!({
        "first": q.first,
        "second": q.second,
        "first_root": merkle::to_hex(&first_root),
        "second_root": merkle::to_hex(&second_root),
        "proof": proof.iter().map(merkle::to_hex).collect::<Vec<_>>(),
    })))
}

// ---------------------------------------------------------------------------------------------
// Feeds and downloads

fn feed_self(s: &AppState, path: &str, f: &ProblemFilter, cursor: Option<&str>) -> String {
    format!("{}{path}{}", s.base_url, query_with(f, cursor, &[]))
}

async fn feed(s: &AppState, headers: &HeaderMap, q: &ListQuery, path: &str, atom: bool) -> Result<Response, ApiError> {
    let c = checked(q, s.feed_size, 1000)?;
    let mut conn = s.pool.acquire().await?;
    let (rows, next) = page(&mut conn, &q.filter, Retracted::AsTombstones, &c).await?;
    let links = render::FeedLinks {
        base: s.base_url.clone(),
        this: feed_self(s, path, &q.filter, q.cursor.as_deref()),
        first: feed_self(s, path, &q.filter, None),
        next: next.as_deref().map(|n| feed_self(s, path, &q.filter, Some(n))),
        title_suffix: render::feed_title_suffix(&q.filter),
    };
    // The office's acts head the first page of the feed (they are few), city filter respected.
    let acts = if q.cursor.is_none() && q.filter.typical != Some(true) {
        let city = q.filter.city.as_deref();
        let summonses = store::public_summonses(&mut conn, city).await?;
        let inspections = store::public_special_inspections(&mut conn, city).await?;
        render::act_entries(&summonses, &inspections)
    } else {
        vec![]
    };
    let modified = store::last_modified(&mut conn).await?;
    if atom {
        Ok(conditional(
            headers,
            modified,
            "application/atom+xml; charset=utf-8",
            render::atom(&rows, &acts, &links).into_bytes(),
        ))
    } else {
        let body = json_bytes(&render::json_feed(&rows, &acts, &links))?;
        Ok(conditional(headers, modified, "application/feed+json; charset=utf-8", body))
    }
}

async fn atom(
    State(s): State<AppState>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Response, ApiError> {
    feed(&s, &headers, &q, "/feed.atom", true).await
}

async fn json_feed(
    State(s): State<AppState>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Response, ApiError> {
    feed(&s, &headers, &q, "/feed.json", false).await
}

async fn typical_atom(
    State(s): State<AppState>,
    headers: HeaderMap,
    QueryParams(mut q): QueryParams<ListQuery>,
) -> Result<Response, ApiError> {
    q.filter.typical = Some(true);
    feed(&s, &headers, &q, "/typical-cases.atom", true).await
}

async fn typical_json(
    State(s): State<AppState>,
    headers: HeaderMap,
    QueryParams(mut q): QueryParams<ListQuery>,
) -> Result<Response, ApiError> {
    q.filter.typical = Some(true);
    feed(&s, &headers, &q, "/typical-cases.json", false).await
}

async fn geojson(
    State(s): State<AppState>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Response, ApiError> {
    let c = checked(&q, 10_000, 100_000)?;
    let mut conn = s.pool.acquire().await?;
    let rows = store::public_problems(&mut conn, &q.filter, Retracted::AsTombstones, c.cursor, c.limit).await?;
    let body = json_bytes(&render::geojson(&rows, c.bbox, &s.base_url))?;
    let modified = store::last_modified(&mut conn).await?;
    Ok(conditional(&headers, modified, "application/geo+json", body))
}

async fn csv(
    State(s): State<AppState>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Response, ApiError> {
    let c = checked(&q, 100_000, 1_000_000)?;
    let mut conn = s.pool.acquire().await?;
    let rows = store::public_problems(&mut conn, &q.filter, Retracted::Omitted, c.cursor, c.limit).await?;
    let modified = store::last_modified(&mut conn).await?;
    let _ = q.lang;
    Ok(conditional(&headers, modified, "text/csv; charset=utf-8", render::csv(&rows).into_bytes()))
}

// ---------------------------------------------------------------------------------------------
// The campaign office's acts: each is a new public entry, never a silent edit.

/// Records an act as a history line of the problem and marks the problem for the log writer;
/// `published` logs it once the act's transaction has committed.
async fn record_act(
    s: &AppState,
    conn: &mut PgConnection,
    problem_id: Uuid,
    kind: &str,
    status: &str,
    what: &str,
) -> Result<(), ApiError> {
    let line = HistoryLine {
        problem_id,
        source_id: Uuid::now_v7(),
        at: s.publisher.clock.now(),
        kind,
        status,
        what: what.to_string(),
    };
    store::add_history(conn, &[line]).await?;
    store::mark_pending(conn, &[problem_id]).await?;
    Ok(())
}

/// Has the log writer publish what a committed act changed, so that the answer shows it. The
/// act stands whatever happens here: should the writer fail, its job publishes it later.
async fn published(s: &AppState, problem_id: Uuid) {
    if let Err(e) = s.publisher.publish_now(problem_id).await {
        tracing::warn!(error = format!("{e:#}"), %problem_id, "the log writer failed after an act; its job will publish it");
        s.publisher.wake();
    }
}

async fn answer_problem(conn: &mut PgConnection, id: Uuid) -> Result<Json<Value>, ApiError> {
    let (problem, history) = public_problem(conn, &id.to_string()).await?;
    let mut body = serde_json::to_value(problem).map_err(anyhow::Error::from)?;
    body["history"] = serde_json::to_value(history).map_err(anyhow::Error::from)?;
    Ok(Json(body))
}

fn required_text(v: &mut Validator, field: &str, value: &str, max: usize) {
    v.check(!value.trim().is_empty() && value.chars().count() <= max, field, format!("1 to {max} characters"));
}

#[derive(Deserialize)]
struct TypicalCase {
    /// The short public narrative.
    narrative: String,
}

async fn mark_typical(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<TypicalCase>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let id = parse_id(&id)?;
    let mut v = Validator::new();
    required_text(&mut v, "narrative", &body.narrative, 2000);
    v.finish()?;
    let mut tx = s.pool.begin().await?;
    if !store::mark_typical(&mut tx, id, body.narrative.trim(), s.publisher.clock.now()).await? {
        return Err(ApiError::not_found(format!("public problem {id}")));
    }
    let what = crate::domain::said_typical_case(body.narrative.trim());
    record_act(&s, &mut tx, id, "typical_case", "typical_case", &what).await?;
    tx.commit().await?;
    published(&s, id).await;
    answer_problem(&mut *s.pool.acquire().await?, id).await
}

async fn approve(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let id = parse_id(&id)?;
    let mut tx = s.pool.begin().await?;
    if !store::approve(&mut tx, id, s.publisher.clock.now()).await? {
        return Err(ApiError::not_found(format!("problem {id}")));
    }
    store::mark_pending(&mut tx, &[id]).await?;
    tx.commit().await?;
    published(&s, id).await;
    Ok(Json(json!({ "id": id, "approved": true })))
}

async fn pending(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let items = store::pending_approval(&mut *s.pool.acquire().await?, 1000).await?;
    Ok(Json(json!({ "count": items.len(), "items": items })))
}

/// Why something leaves the public record: a code from `domain::WITHDRAWAL_REASONS` and words.
#[derive(Deserialize)]
struct Withdrawal {
    code: String,
    reason: String,
}

impl Withdrawal {
    fn validate(&self) -> Result<(), ApiError> {
        let mut v = Validator::new();
        v.check(
            crate::domain::withdrawal_reason(&self.code).is_some(),
            "code",
            format!("one of {}", crate::domain::withdrawal_codes()),
        );
        required_text(&mut v, "reason", &self.reason, 1000);
        v.finish()
    }
}

async fn retract(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Withdrawal>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let id = parse_id(&id)?;
    body.validate()?;
    let (code, reason) = (body.code.as_str(), body.reason.trim());
    let mut tx = s.pool.begin().await?;
    if !store::retract(&mut tx, id, code, reason, s.publisher.clock.now()).await? {
        return Err(ApiError::not_found(format!("public problem {id}")));
    }
    record_act(&s, &mut tx, id, "retraction", "retracted", &crate::domain::said_retracted(code, reason)).await?;
    tx.commit().await?;
    published(&s, id).await;
    answer_problem(&mut *s.pool.acquire().await?, id).await
}

#[derive(Deserialize)]
struct Correction {
    field: String,
    value: String,
    reason: String,
}

async fn correct(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Correction>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let id = parse_id(&id)?;
    let mut v = Validator::new();
    v.check(
        store::CORRECTABLE.contains(&body.field.as_str()),
        "field",
        format!("one of {}", store::CORRECTABLE.join(", ")),
    );
    required_text(&mut v, "value", &body.value, 2000);
    required_text(&mut v, "reason", &body.reason, 1000);
    v.finish()?;
    let mut tx = s.pool.begin().await?;
    let Some(previous) = store::correct(&mut tx, id, &body.field, body.value.trim()).await? else {
        return Err(ApiError::not_found(format!("public problem {id}")));
    };
    let what = crate::domain::said_corrected(&body.field, &previous, body.value.trim(), body.reason.trim());
    record_act(&s, &mut tx, id, "correction", "corrected", &what).await?;
    tx.commit().await?;
    published(&s, id).await;
    answer_problem(&mut *s.pool.acquire().await?, id).await
}

async fn takedown(
    State(s): State<AppState>,
    caller: Caller,
    Path(index): Path<i64>,
    JsonBody(body): JsonBody<Withdrawal>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    body.validate()?;
    let (code, reason) = (body.code.as_str(), body.reason.trim());
    let mut tx = s.pool.begin().await?;
    let Some(problem) = store::withdraw(&mut tx, index, code, reason).await? else {
        return Err(ApiError::not_found(format!("entry {index} with content")));
    };
    if let Some(problem_id) = problem {
        let what = crate::domain::said_withdrawn(index, code, reason);
        record_act(&s, &mut tx, problem_id, "takedown", "withdrawn", &what).await?;
    }
    tx.commit().await?;
    if let Some(problem_id) = problem {
        published(&s, problem_id).await;
    }
    Ok(Json(json!({ "index": index, "withdrawn": true })))
}
