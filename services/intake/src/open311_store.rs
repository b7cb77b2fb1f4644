//! The SQL of the Open311 interface and of leads, in the `intake` schema.

use serde_json::Value;
use sqlx::PgConnection;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::open311_domain::{MAX_REQUESTS, RequestQuery, RequestView};

/// The round running on `today` in which `team` covers `city` (the latest to start, should two
/// overlap).
pub async fn current_round(
    conn: &mut PgConnection,
    team: &str,
    city: &str,
    today: Date,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT r.id FROM intake.round_teams rt JOIN intake.rounds r ON r.id = rt.round_id
         WHERE rt.team_id = $1 AND $2 = ANY (rt.cities) AND r.starts_on <= $3 AND r.ends_on >= $3
         ORDER BY r.starts_on DESC, r.id DESC LIMIT 1",
    )
    .bind(team)
    .bind(city)
    .bind(today)
    .fetch_optional(conn)
    .await
}

/// The cities `team` covers in the rounds running on `today`.
pub async fn cities_covered(conn: &mut PgConnection, team: &str, today: Date) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT DISTINCT city FROM intake.round_teams rt JOIN intake.rounds r ON r.id = rt.round_id,
                unnest(rt.cities) AS city
         WHERE rt.team_id = $1 AND r.starts_on <= $2 AND r.ends_on >= $2 ORDER BY city",
    )
    .bind(team)
    .bind(today)
    .fetch_all(conn)
    .await
}

#[derive(sqlx::FromRow)]
struct RequestRow {
    id: Uuid,
    category: String,
    description: String,
    evidence: Value,
    rebound_of: Option<Uuid>,
    checked_at: OffsetDateTime,
    site: Value,
    closed: bool,
    changed_at: Option<OffsetDateTime>,
}

impl RequestRow {
    fn into_view(self) -> RequestView {
        let text = |key: &str| self.site.get(key).and_then(Value::as_str).map(str::to_string);
        let address = match (text("name"), text("address")) {
            (Some(name), Some(address)) => Some(format!("{name}, {address}")),
            (name, address) => address.or(name),
        };
        let media_url = self
            .evidence
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| !e.get("internal").and_then(Value::as_bool).unwrap_or(false))
            .and_then(|e| e.get("url").and_then(Value::as_str))
            .map(str::to_string);
        let status_notes = match (self.closed, self.rebound_of) {
            (true, _) => Some("整改经现场核查通过，已销号 · rectification verified on site, closed".to_string()),
            (false, Some(earlier)) => Some(format!("反弹问题 · rebound of {earlier}")),
            (false, None) => None,
        };
        let updated = self.changed_at.map_or(self.checked_at, |at| at.max(self.checked_at));
        RequestView {
            id: self.id,
            closed: self.closed,
            status_notes,
            category: self.category,
            description: Some(self.description),
            requested: self.checked_at,
            updated,
            address,
            lat: self.site.get("lat").and_then(Value::as_f64),
            lon: self.site.get("lon").and_then(Value::as_f64),
            media_url,
        }
    }
}

/// The ledger entries matching `query` (never duplicates or withdrawn reports), newest first.
pub async fn requests(conn: &mut PgConnection, query: &RequestQuery) -> sqlx::Result<Vec<RequestView>> {
    let ids = (!query.ids.is_empty()).then_some(&query.ids);
    let categories = (!query.categories.is_empty()).then_some(&query.categories);
    let rows: Vec<RequestRow> = sqlx::query_as(
        "SELECT p.id, p.category, p.description, p.evidence, p.rebound_of, i.checked_at, i.site,
                COALESCE(s.closed, false) AS closed, s.changed_at
         FROM intake.problems p
         JOIN intake.inspections i ON i.id = p.inspection_id
         LEFT JOIN intake.problem_status s ON s.problem_id = p.id
         WHERE p.duplicate_of IS NULL AND p.withdrawn_at IS NULL
           AND ($1::uuid[] IS NULL OR p.id = ANY ($1))
           AND ($2::text[] IS NULL OR p.category = ANY ($2))
           AND ($3::timestamptz IS NULL OR i.checked_at >= $3)
           AND ($4::timestamptz IS NULL OR i.checked_at <= $4)
           AND ($5::boolean IS NULL OR COALESCE(s.closed, false) = $5)
           AND ($6::text IS NULL OR p.city_code = $6)
         ORDER BY i.checked_at DESC, p.id DESC
         LIMIT $7",
    )
    .bind(ids)
    .bind(categories)
    .bind(query.from)
    .bind(query.until)
    .bind(query.closed)
    .bind(&query.city)
    .bind(MAX_REQUESTS)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(RequestRow::into_view).collect())
}

pub struct NewLead<'a> {
    pub id: Uuid,
    pub channel: &'a str,
    pub city_code: &'a str,
    pub county_code: Option<&'a str>,
    pub category: &'a str,
    pub description: &'a str,
    pub address: Option<&'a str>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub media_url: Option<&'a str>,
    pub attributes: Value,
    pub complainant: Value,
    pub received_at: OffsetDateTime,
}

pub async fn insert_lead(conn: &mut PgConnection, lead: &NewLead<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO intake.leads (id, channel, city_code, county_code, category, description, address, lat, lon,
                                   media_url, attributes, complainant, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(lead.id)
    .bind(lead.channel)
    .bind(lead.city_code)
    .bind(lead.county_code)
    .bind(lead.category)
    .bind(lead.description)
    .bind(lead.address)
    .bind(lead.lat)
    .bind(lead.lon)
    .bind(lead.media_url)
    .bind(&lead.attributes)
    .bind(&lead.complainant)
    .bind(lead.received_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A lead as the public may follow it by its id: that it was received, and what kind it is.
pub async fn lead_status(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<RequestView>> {
    let row: Option<(String, OffsetDateTime)> =
        sqlx::query_as("SELECT category, received_at FROM intake.leads WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(category, received_at)| RequestView {
        id,
        closed: false,
        status_notes: Some("投诉已转交负责该市的督查组 · passed to the inspection teams covering the city".into()),
        category,
        description: None,
        requested: received_at,
        updated: received_at,
        address: None,
        lat: None,
        lon: None,
        media_url: None,
    }))
}

#[derive(sqlx::FromRow, serde::Serialize)]
pub struct Lead {
    pub id: Uuid,
    pub channel: String,
    pub city_code: String,
    pub county_code: Option<String>,
    pub category: String,
    pub description: String,
    pub address: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub media_url: Option<String>,
    pub attributes: Value,
    pub complainant: Value,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
}

/// The leads of `cities` (every city when `None`), newest first.
pub async fn leads(conn: &mut PgConnection, cities: Option<&[String]>, limit: i64) -> sqlx::Result<Vec<Lead>> {
    sqlx::query_as(
        "SELECT id, channel, city_code, county_code, category, description, address, lat, lon, media_url,
                attributes, complainant, received_at
         FROM intake.leads WHERE ($1::text[] IS NULL OR city_code = ANY ($1))
         ORDER BY received_at DESC, id DESC LIMIT $2",
    )
    .bind(cities)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Erases the contact details of complainants whose leads are older than `days`; the leads
/// themselves stay. Returns how many were erased.
pub async fn erase_complainants(conn: &mut PgConnection, days: i64) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE intake.leads SET complainant = '{}'::jsonb, complainant_erased_at = now()
         WHERE complainant_erased_at IS NULL AND received_at < now() - make_interval(days => $1::int)",
    )
    .bind(days)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn row(evidence: Value, closed: bool, changed_at: Option<OffsetDateTime>) -> RequestRow {
        RequestRow {
            id: Uuid::nil(),
            category: "dust".into(),
            description: "扬尘".into(),
            evidence,
            rebound_of: None,
            checked_at: datetime!(2019-05-09 02:20 UTC),
            site: json!({ "name": "某工地", "address": "某某路 1 号", "lat": 37.07, "lon": 114.5 }),
            closed,
            changed_at,
        }
    }

    #[test]
    fn a_ledger_entry_shows_public_fields_only() {
        let evidence = json!([
            { "url": "http://h/v1/evidence/internal", "internal": true },
            { "url": "http://h/v1/evidence/public", "internal": false }
        ]);
        let view = row(evidence, false, None).into_view();
        assert_eq!(view.media_url.as_deref(), Some("http://h/v1/evidence/public"), "internal evidence is skipped");
        assert_eq!(view.address.as_deref(), Some("某工地, 某某路 1 号"));
        assert_eq!((view.lat, view.lon), (Some(37.07), Some(114.5)));
        assert_eq!(view.updated, view.requested);
        assert!(row(json!([{ "url": "x", "internal": true }]), false, None).into_view().media_url.is_none());
        // A status that changed later updates the request; one stamped earlier (a simulated
        // clock ahead of the database's) never moves it before it was made.
        let later = datetime!(2019-05-20 01:00 UTC);
        let closed = row(json!([]), true, Some(later)).into_view();
        assert!(closed.closed && closed.status_notes.is_some());
        assert_eq!(closed.updated, later);
        let earlier = row(json!([]), true, Some(datetime!(2019-05-01 00:00 UTC))).into_view();
        assert_eq!(earlier.updated, earlier.requested);
    }
}
