//! The campaign's registers, per city, kept by the campaign office by API or a spreadsheet
//! import. Two are read when a site check is recorded ([`crate::recording`]): the heavy-pollution
//! emergency list (应急减排清单, the enterprises and the measures each must take at each alert
//! level) and the alert periods (预警) the city declares. The clean-up registers — the "两散"
//! (scattered polluting enterprises, coal boilers) and the coal-to-gas villages — are passed on
//! as `register.updated`, so the public figures show each city's way to zero.

use std::collections::HashSet;

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::auth::{Caller, Role};
use shared::error::ApiError;
use shared::events::{RegisterItemState, RegisterUpdated};
use shared::http::{JsonBody, QueryParams, parse_value};
use shared::reference;

use crate::api::AppState;
use crate::domain::{self, AlertRequest, EmergencyEnterprise, RegisterItem};
use crate::store;

fn known_city(city: &str) -> Result<(), ApiError> {
    match reference::city(city) {
        Some(_) => Ok(()),
        None => Err(ApiError::invalid("city", format!("{city} is not one of the 39 key cities"))),
    }
}

#[derive(Deserialize)]
pub struct Batch {
    items: Vec<Value>,
}

/// A register batch judged item by item: what each answers (its key, or why it was refused) and
/// the items accepted, each key at most once.
struct Judged<T> {
    answers: Vec<Result<String, ApiError>>,
    accepted: Vec<T>,
}

impl<T: serde::de::DeserializeOwned> Judged<T> {
    /// Parses and checks each item with `check`, which answers the item's key (`key_field`).
    fn of(
        s: &AppState,
        batch: Batch,
        key_field: &'static str,
        check: impl Fn(&T) -> Result<String, ApiError>,
    ) -> Result<Self, ApiError> {
        if batch.items.len() > s.max_batch_items {
            return Err(ApiError::invalid("items", format!("at most {} items in one batch", s.max_batch_items)));
        }
        let mut judged = Judged { answers: Vec::with_capacity(batch.items.len()), accepted: Vec::new() };
        let mut seen = HashSet::new();
        for item in batch.items {
            let answer = parse_value::<T>(item).and_then(|item| {
                let key = check(&item)?;
                if !seen.insert(key.clone()) {
                    return Err(ApiError::conflict(key_field, "the same item twice in one batch"));
                }
                judged.accepted.push(item);
                Ok(key)
            });
            judged.answers.push(answer);
        }
        Ok(judged)
    }

    /// The answers in item order: `created` for the keys in `created`, `already_had` for the
    /// other accepted ones (now as sent), `refused` with the fields named.
    fn results(self, key_field: &str, created: &HashSet<String>) -> Json<Value> {
        let results: Vec<Value> = self
            .answers
            .into_iter()
            .map(|answer| match answer {
                Ok(key) => {
                    let status = if created.contains(&key) { "created" } else { "already_had" };
                    let mut result = json!({ "status": status });
                    result[key_field] = json!(key);
                    result
                }
                Err(e) => json!({ "status": "refused", "errors": e.field_errors() }),
            })
            .collect();
        Json(json!({ "results": results }))
    }
}

/// Enters or updates enterprises of a city's emergency list, each judged on its own.
pub async fn post_emergency_list(
    State(s): State<AppState>,
    caller: Caller,
    Path(city): Path<String>,
    JsonBody(batch): JsonBody<Batch>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    known_city(&city)?;
    let judged = Judged::of(&s, batch, "credit_code", |e: &EmergencyEnterprise| {
        domain::validate_emergency_enterprise(e).finish()?;
        Ok(e.credit_code.clone())
    })?;
    let mut tx = s.pool.begin().await?;
    let created = store::upsert_emergency_enterprises(&mut tx, &city, &judged.accepted).await?;
    tx.commit().await?;
    Ok(judged.results("credit_code", &created))
}

#[derive(Deserialize)]
pub struct Page {
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

fn default_limit() -> i64 {
    100
}

pub async fn get_emergency_list(
    State(s): State<AppState>,
    caller: Caller,
    Path(city): Path<String>,
    QueryParams(page): QueryParams<Page>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    known_city(&city)?;
    if !(1..=1000).contains(&page.limit) || page.offset < 0 {
        return Err(ApiError::invalid("limit", "1 to 1000, with an offset of 0 or more"));
    }
    let (count, items) = store::emergency_list(&mut *s.pool.acquire().await?, &city, page.limit, page.offset).await?;
    let items: Vec<Value> = items
        .into_iter()
        .map(|(credit_code, name, measures)| json!({ "credit_code": credit_code, "name": name, "measures": measures }))
        .collect();
    Ok(Json(json!({ "city": city, "count": count, "items": items })))
}

/// Declares (or corrects) an alert period of a city: site checks of listed enterprises inside
/// it are emergency-plan checks from now on.
pub async fn put_alert(
    State(s): State<AppState>,
    caller: Caller,
    Path((city, id)): Path<(String, String)>,
    JsonBody(alert): JsonBody<AlertRequest>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    known_city(&city)?;
    domain::validate_alert(&id, &alert).finish()?;
    store::upsert_alert(&mut *s.pool.acquire().await?, &city, &id, &alert).await?;
    Ok(Json(alert_json(&id, &alert.level, alert.from, alert.to)))
}

pub async fn list_alerts(
    State(s): State<AppState>,
    caller: Caller,
    Path(city): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    known_city(&city)?;
    let items: Vec<Value> = store::alerts(&mut *s.pool.acquire().await?, &city)
        .await?
        .into_iter()
        .map(|(id, level, from, to)| alert_json(&id, &level, from, to))
        .collect();
    Ok(Json(json!({ "city": city, "count": items.len(), "items": items })))
}

fn alert_json(id: &str, level: &str, from: time::OffsetDateTime, to: time::OffsetDateTime) -> Value {
    json!({ "id": id, "level": level, "from": shared::csv::timestamp(from), "to": shared::csv::timestamp(to) })
}

fn known_register(code: &str) -> Result<&'static reference::Register, ApiError> {
    reference::register(code).ok_or_else(|| {
        let known: Vec<&str> = reference::REGISTERS.iter().map(|r| r.code).collect();
        ApiError::invalid("register", format!("one of {}", known.join(", ")))
    })
}

/// Enters or updates items of a city's clean-up register, each judged on its own; what was
/// accepted goes out as one `register.updated`.
pub async fn post_register(
    State(s): State<AppState>,
    caller: Caller,
    Path((city, register)): Path<(String, String)>,
    JsonBody(batch): JsonBody<Batch>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    known_city(&city)?;
    let register = known_register(&register)?;
    let judged = Judged::of(&s, batch, "id", |item: &RegisterItem| {
        domain::validate_register_item(register, &city, item).finish()?;
        Ok(item.id.clone())
    })?;
    let mut tx = s.pool.begin().await?;
    let created = store::upsert_register_items(&mut tx, &city, register.code, &judged.accepted).await?;
    if !judged.accepted.is_empty() {
        let event = RegisterUpdated {
            city_code: city.clone(),
            register: register.code.to_string(),
            items: judged
                .accepted
                .iter()
                .map(|i| RegisterItemState { id: i.id.clone(), state: i.state.clone() })
                .collect(),
        };
        s.outbox.publish(&mut tx, Some(&city), register.code, &event).await?;
    }
    s.outbox.commit(tx).await?;
    Ok(judged.results("id", &created))
}

/// How many items a city's clean-up register holds in each state, and how many are still to
/// be dealt with.
pub async fn get_register(
    State(s): State<AppState>,
    caller: Caller,
    Path((city, register)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    known_city(&city)?;
    let register = known_register(&register)?;
    let counts = store::register_counts(&mut *s.pool.acquire().await?, &city, register.code).await?;
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let outstanding: i64 =
        counts.iter().filter(|(state, _)| register.outstanding.contains(&state.as_str())).map(|(_, n)| n).sum();
    let by_state: serde_json::Map<String, Value> = counts.into_iter().map(|(state, n)| (state, json!(n))).collect();
    Ok(Json(
        json!({ "city": city, "register": register.code, "total": total, "outstanding": outstanding, "by_state": by_state }),
    ))
}
