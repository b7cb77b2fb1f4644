//! Open311 GeoReport v2 under `/open311/v2/`, each resource in `.json` and `.xml`: discovery,
//! services (the campaign's 14 categories), service definitions, POST and GET requests. Every
//! one of the 39 key cities is a jurisdiction (`jurisdiction_id` is its code).
//!
//! A POST whose `api_key` is an inspector's token records a site check with one problem through
//! the same path as the JSON API; one whose `api_key` is a complaint channel's key becomes a
//! lead for the teams covering the city (`GET /v1/leads`). Errors are the specification's
//! `errors` document with our HTTP statuses.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::auth::{Caller, Role, TokenVerifier};
use shared::clock::Clock;
use shared::error::{ApiError, FieldError};
use shared::http::QueryParams;
use shared::outbox::Outbox;
use shared::reference;
use sqlx::PgPool;
use uuid::Uuid;

use crate::open311_domain::{self as o311, Document, Format, Lang, RequestForm, RequestQuery, Submission};
use crate::open311_store::{self as store, NewLead};
use crate::recording::{self, Recorded};

/// The `[intake.open311]` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Open311Config {
    /// Complaint channels, by name: the key each posts with as `api_key`
    /// (`SKYLEDGER__INTAKE__OPEN311__COMPLAINT_CHANNELS__HOTLINE=…`). What comes through one
    /// is a lead for the teams covering the city, never a ledger entry by itself.
    pub complaint_channels: BTreeMap<String, String>,
}

#[derive(Clone)]
pub struct Open311State {
    pub pool: PgPool,
    pub outbox: Outbox,
    pub clock: Clock,
    pub config: Arc<Open311Config>,
    /// Empty: taken from each request's `Host`.
    pub public_base_url: String,
}

pub fn router(state: Open311State) -> Router {
    Router::new()
        .route("/open311/v2/{file}", get(get_resource).post(post_request))
        .route("/open311/v2/services/{file}", get(get_service_definition))
        .route("/open311/v2/requests/{file}", get(get_request))
        .route("/v1/leads", get(get_leads))
        .with_state(state)
}

/// The address clients reach this service at: configured, else from the request.
pub fn base_url(configured: &str, headers: &HeaderMap) -> String {
    if !configured.is_empty() {
        return configured.trim_end_matches('/').to_string();
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1:8081");
    let scheme = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).unwrap_or("http");
    format!("{scheme}://{host}")
}

fn respond(format: Format, status: StatusCode, document: &Document) -> Response {
    (status, [(header::CONTENT_TYPE, format.content_type())], document.render(format)).into_response()
}

/// An error as the specification's `errors` document, with our status and headers.
fn fail(format: Format, error: ApiError) -> Response {
    if let ApiError::Internal(e) = &error {
        tracing::error!(error = ?e, "internal error");
    }
    let mut response = respond(format, error.status(), &o311::errors(&error));
    let headers = response.headers_mut();
    if let ApiError::Unavailable { retry_after_secs, .. } = error {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    }
    if error.status() == StatusCode::UNAUTHORIZED {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

fn answer(format: Format, result: Result<(StatusCode, Document), ApiError>) -> Response {
    match result {
        Ok((status, document)) => respond(format, status, &document),
        Err(e) => fail(format, e),
    }
}

fn query_params(uri: &Uri) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
        params.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    params
}

fn lang(params: &BTreeMap<String, String>, headers: &HeaderMap) -> Lang {
    let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|h| h.to_str().ok());
    Lang::choose(params.get("locale").map(String::as_str), accept)
}

/// A `jurisdiction_id` given to a GET must be one of ours.
fn check_jurisdiction(params: &BTreeMap<String, String>) -> Result<(), ApiError> {
    match params.get("jurisdiction_id").map(|c| c.trim()).filter(|c| !c.is_empty()) {
        Some(code) if reference::city(code).is_none() => Err(ApiError::not_found(format!("jurisdiction {code}"))),
        _ => Ok(()),
    }
}

fn not_found(file: &str) -> ApiError {
    ApiError::not_found(format!("Open311 resource {file:?} (resources end in .json or .xml)"))
}

/// GET discovery, services and requests.
async fn get_resource(
    State(s): State<Open311State>,
    Path(file): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some((name, format)) = Format::split(&file) else {
        return fail(Format::guess(&file), not_found(&file));
    };
    let params = query_params(&uri);
    let lang = lang(&params, &headers);
    let result = async {
        match name {
            "discovery" => {
                Ok((StatusCode::OK, o311::discovery(&format!("{}/open311/v2", base_url(&s.public_base_url, &headers)))))
            }
            "services" => {
                check_jurisdiction(&params)?;
                Ok((StatusCode::OK, o311::services(lang)))
            }
            "requests" => {
                let query = o311::read_query(&params, s.clock.now())?;
                let views = store::requests(&mut *s.pool.acquire().await?, &query).await?;
                Ok((StatusCode::OK, o311::requests(&views, lang)))
            }
            _ => Err(not_found(&file)),
        }
    }
    .await;
    answer(format, result)
}

async fn get_service_definition(Path(file): Path<String>, uri: Uri, headers: HeaderMap) -> Response {
    let Some((code, format)) = Format::split(&file) else {
        return fail(Format::guess(&file), not_found(&file));
    };
    let params = query_params(&uri);
    let result = check_jurisdiction(&params).and_then(|()| {
        let category = reference::category(code).ok_or_else(|| ApiError::not_found(format!("service {code}")))?;
        Ok((StatusCode::OK, o311::service_definition(category, lang(&params, &headers))))
    });
    answer(format, result)
}

/// GET requests/{id}: a ledger entry, or a lead (that it was received, nothing of its content).
async fn get_request(
    State(s): State<Open311State>,
    Path(file): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some((id, format)) = Format::split(&file) else {
        return fail(Format::guess(&file), not_found(&file));
    };
    let params = query_params(&uri);
    let result = async {
        check_jurisdiction(&params)?;
        let missing = || ApiError::not_found(format!("service request {id}"));
        let id: Uuid = id.parse().map_err(|_| missing())?;
        let mut conn = s.pool.acquire().await?;
        let mut views = store::requests(&mut conn, &RequestQuery { ids: vec![id], ..Default::default() }).await?;
        if views.is_empty() {
            views.extend(store::lead_status(&mut conn, id).await?);
        }
        if views.is_empty() {
            return Err(missing());
        }
        Ok((StatusCode::OK, o311::requests(&views, lang(&params, &headers))))
    }
    .await;
    answer(format, result)
}

/// Compares keys in time independent of where they differ.
fn same_key(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Who posts: an inspector's team, or a complaint channel.
enum Poster {
    Inspector(String),
    Channel(String),
}

fn poster(config: &Open311Config, verifier: &TokenVerifier, key: Option<String>) -> Result<Poster, ApiError> {
    let unauthenticated = |detail: &str| ApiError::Unauthenticated(FieldError::new("api_key", detail));
    let key = key.ok_or_else(|| unauthenticated("required: an inspector's token, or a complaint channel's key"))?;
    if let Some((channel, _)) =
        config.complaint_channels.iter().find(|(_, k)| !k.trim().is_empty() && same_key(k.trim(), key.trim()))
    {
        return Ok(Poster::Channel(channel.clone()));
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = verifier.verify(key.trim(), now).map_err(|e| unauthenticated(&e.to_string()))?;
    match (claims.role, claims.team) {
        (Role::Inspector, Some(team)) => Ok(Poster::Inspector(team)),
        _ => Err(ApiError::forbidden("api_key", "only inspectors and complaint channels post service requests")),
    }
}

/// POST requests: form-encoded, as the specification says.
async fn post_request(
    State(s): State<Open311State>,
    Extension(verifier): Extension<Arc<TokenVerifier>>,
    Path(file): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let format = match Format::split(&file) {
        Some(("requests", format)) => format,
        _ => return fail(Format::guess(&file), not_found(&file)),
    };
    let result = async {
        let form_content = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
        if !form_content {
            return Err(ApiError::UnsupportedMediaType(FieldError::new(
                "Content-Type",
                "expected application/x-www-form-urlencoded",
            )));
        }
        let body = body.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::Malformed(FieldError::new("body", rejection.body_text()))
            }
        })?;
        let form = RequestForm::parse(&body);
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::to_string);
        let poster = poster(&s.config, &verifier, form.get("api_key").map(str::to_string).or(bearer))?;
        let submission = o311::read_submission(&form)?;
        match poster {
            Poster::Inspector(team) => report(&s, &team, &submission).await,
            Poster::Channel(channel) => complain(&s, &channel, &form, &submission).await,
        }
    }
    .await;
    answer(format, result)
}

/// An inspector's report: a site check with one problem, in the round running today in which
/// the team covers the city.
async fn report(s: &Open311State, team: &str, submission: &Submission) -> Result<(StatusCode, Document), ApiError> {
    let city = &submission.city.code;
    let today = s.clock.today();
    let mut tx = s.pool.begin().await?;
    let round = store::current_round(&mut tx, team, city, today).await?.ok_or_else(|| {
        ApiError::forbidden(
            "jurisdiction_id",
            format!("team {team} covers {city} in no round running today ({today}, Asia/Shanghai)"),
        )
    })?;
    let inspection = o311::inspection(submission, &round, team, s.clock.now())?;
    let recorded = recording::record(&mut tx, &s.outbox, team, vec![Ok(inspection)])
        .await?
        .pop()
        .expect("one answer for one item");
    let answer = match recorded {
        Recorded::Created(answer) | Recorded::AlreadyHad(answer) => answer,
        Recorded::Refused(e) => {
            drop(tx);
            crate::store::count_refusals(&mut *s.pool.acquire().await?, &round, team, 1).await?;
            return Err(o311::in_form_terms(e));
        }
    };
    s.outbox.commit(tx).await?;
    let problem = &answer["problems"][0];
    let id = |key: &str| problem[key].as_str().and_then(|v| v.parse::<Uuid>().ok());
    let created = id("id").expect("a recorded problem has its id");
    Ok(match problem["outcome"].as_str() {
        // The same site and category is open in the ledger: the client follows that entry.
        Some("duplicate") => {
            let earlier = id("duplicate_of").unwrap_or(created);
            let notice =
                format!("该点位同类问题已在台账中（{earlier}），本次记为重复 · already in the ledger as {earlier}");
            (StatusCode::OK, o311::posted(earlier, &notice))
        }
        Some("rebound") => {
            let notice = format!(
                "反弹问题，已重新登记并交办 · a rebound of {}, entered anew and handed over",
                id("rebound_of").map(|u| u.to_string()).unwrap_or_default()
            );
            (StatusCode::CREATED, o311::posted(created, &notice))
        }
        _ => (
            StatusCode::CREATED,
            o311::posted(created, "已登记，将交办属地政府整改 · recorded; it will be handed over"),
        ),
    })
}

/// A public complaint: a lead for the teams covering the city, its complainant kept internal.
async fn complain(
    s: &Open311State,
    channel: &str,
    form: &RequestForm,
    submission: &Submission,
) -> Result<(StatusCode, Document), ApiError> {
    let id = Uuid::now_v7();
    let lead = NewLead {
        id,
        channel,
        city_code: &submission.city.code,
        county_code: submission.county_code.as_deref(),
        category: &submission.category.code,
        description: &submission.description,
        address: submission.address.as_deref(),
        lat: submission.lat,
        lon: submission.lon,
        media_url: submission.media_url.as_deref(),
        attributes: form.attributes_json(),
        complainant: serde_json::to_value(&submission.complainant).expect("a complainant serialises"),
        received_at: s.clock.now(),
    };
    store::insert_lead(&mut *s.pool.acquire().await?, &lead).await?;
    let city = submission.city;
    let notice = format!(
        "投诉已收到，已转交负责{}的督查组 · received; passed to the inspection teams covering {}",
        city.name_zh, city.name_en
    );
    Ok((StatusCode::CREATED, o311::posted(id, &notice)))
}

#[derive(Deserialize)]
struct LeadsQuery {
    city: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/leads`: an inspector sees the leads of the cities the team covers in the rounds
/// running today, the complainant's contact included; the campaign office sees every lead,
/// without the complainant.
async fn get_leads(
    State(s): State<Open311State>,
    caller: Caller,
    QueryParams(query): QueryParams<LeadsQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = query.limit.unwrap_or(500);
    if !(1..=5000).contains(&limit) {
        return Err(ApiError::invalid("limit", "between 1 and 5000"));
    }
    let mut conn = s.pool.acquire().await?;
    let cities: Option<Vec<String>> = match caller.0.role {
        Role::Admin => query.city.clone().map(|c| vec![c]),
        Role::Inspector => {
            let team = caller.team()?;
            let covered = store::cities_covered(&mut conn, team, s.clock.today()).await?;
            match &query.city {
                Some(city) if !covered.contains(city) => {
                    return Err(ApiError::forbidden("city", format!("team {team} does not cover {city} today")));
                }
                Some(city) => Some(vec![city.clone()]),
                None => Some(covered),
            }
        }
        _ => return Err(ApiError::forbidden("Authorization", "leads are for inspectors and the campaign office")),
    };
    let mut leads = store::leads(&mut conn, cities.as_deref(), limit).await?;
    if caller.0.role == Role::Admin {
        // The complainant's contact goes to the covering teams alone.
        leads.iter_mut().for_each(|lead| lead.complainant = Value::Null);
    }
    Ok(Json(json!({ "cities": cities, "items": leads })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complaint_keys_are_told_from_tokens() {
        let signer = shared::auth::TokenSigner::generate();
        let verifier = signer.verifier();
        let config = Open311Config { complaint_channels: BTreeMap::from([("hotline".into(), "k-12369".into())]) };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        assert!(matches!(poster(&config, &verifier, Some("k-12369".into())), Ok(Poster::Channel(c)) if c == "hotline"));
        let inspector = signer.issue(Role::Inspector, Some("T-370".into()), None, now, 60).unwrap();
        assert!(matches!(poster(&config, &verifier, Some(inspector)), Ok(Poster::Inspector(t)) if t == "T-370"));
        let government = signer.issue(Role::LocalGov, None, Some("130500".into()), now, 60).unwrap();
        assert_eq!(poster(&config, &verifier, Some(government)).err().map(|e| e.status()), Some(StatusCode::FORBIDDEN));
        assert_eq!(
            poster(&config, &verifier, Some("k-1236".into())).err().map(|e| e.status()),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(poster(&config, &verifier, None).err().map(|e| e.status()), Some(StatusCode::UNAUTHORIZED));
        let blank = Open311Config { complaint_channels: BTreeMap::from([("off".into(), String::new())]) };
        assert!(poster(&blank, &verifier, Some(String::new())).is_err(), "an empty key opens nothing");
    }

    #[test]
    fn the_base_url_is_configured_or_taken_from_the_request() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("intake.example:8081"));
        assert_eq!(base_url("", &headers), "http://intake.example:8081");
        assert_eq!(base_url("https://skyledger.example/", &headers), "https://skyledger.example");
    }
}
