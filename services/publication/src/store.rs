//! Publication's SQL, all in the `publication` schema.

use serde::Serialize;
use serde_json::{Value, json};
use sqlx::PgConnection;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use shared::events::{InspectionRecorded, ProblemAssigned, ProblemReported};

use crate::domain;

pub async fn count_inspection(conn: &mut PgConnection, r: &InspectionRecorded) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO publication.inspection_counts (round_id, city_code, checks, duplicates) VALUES ($1, $2, 1, $3)
         ON CONFLICT (round_id, city_code) DO UPDATE
         SET checks = publication.inspection_counts.checks + 1, duplicates = publication.inspection_counts.duplicates + $3",
    )
    .bind(&r.round)
    .bind(&r.city_code)
    .bind(r.duplicates as i64)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn problem_reported(conn: &mut PgConnection, p: &ProblemReported) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO publication.problems (problem_id, round_id, category, severity, city_code, county_code, site_name,
                                           site_lat, site_lon, description, found_at, rebound_of)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (problem_id) DO UPDATE SET round_id = $2, category = $3, severity = $4, city_code = $5,
             county_code = $6, site_name = $7, site_lat = $8, site_lon = $9, description = $10, found_at = $11,
             rebound_of = $12",
    )
    .bind(p.problem_id)
    .bind(&p.round)
    .bind(&p.category)
    .bind(&p.severity)
    .bind(&p.city_code)
    .bind(&p.county_code)
    .bind(&p.site.name)
    .bind(p.site.lat)
    .bind(p.site.lon)
    .bind(&p.description)
    .bind(p.checked_at)
    .bind(p.rebound_of)
    .execute(conn)
    .await?;
    Ok(())
}

/// Applies assignment's hand-over unless a later word of assignment's was applied already.
pub async fn problem_assigned(conn: &mut PgConnection, p: &ProblemAssigned) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO publication.problems (problem_id, city_code, handover_no, jurisdiction, handed_over_at, deadline, assignment_seq)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (problem_id) DO UPDATE SET handover_no = $3, jurisdiction = $4, handed_over_at = $5,
             deadline = CASE WHEN publication.problems.verification_seq = 0 THEN $6 ELSE publication.problems.deadline END,
             assignment_seq = $7
         WHERE publication.problems.assignment_seq < $7",
    )
    .bind(p.problem_id)
    .bind(&p.city_code)
    .bind(&p.handover_no)
    .bind(&p.jurisdiction)
    .bind(p.assigned_at)
    .bind(p.deadline)
    .bind(p.problem_seq)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn problem_acknowledged(
    conn: &mut PgConnection,
    problem_id: Uuid,
    seq: i64,
    at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO publication.problems (problem_id, acknowledged_at, assignment_seq) VALUES ($1, $2, $3)
         ON CONFLICT (problem_id) DO UPDATE SET acknowledged_at = $2, assignment_seq = $3
         WHERE publication.problems.assignment_seq < $3",
    )
    .bind(problem_id)
    .bind(at)
    .bind(seq)
    .execute(conn)
    .await?;
    Ok(())
}

/// What verification said: its status for the problem, and the date that goes with it.
pub struct VerificationWord {
    pub problem_id: Uuid,
    pub seq: i64,
    pub status: &'static str,
    pub at: OffsetDateTime,
    pub new_deadline: Option<Date>,
}

pub async fn verification_word(conn: &mut PgConnection, w: &VerificationWord) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO publication.problems (problem_id, verification_status, verification_seq) VALUES ($1, $2, $3)
         ON CONFLICT (problem_id) DO UPDATE SET verification_status = $2, verification_seq = $3
         WHERE publication.problems.verification_seq < $3",
    )
    .bind(w.problem_id)
    .bind(w.status)
    .bind(w.seq)
    .execute(&mut *conn)
    .await?;
    // The dates are facts whatever the order they arrive in.
    match w.status {
        "rectification_reported" => {
            sqlx::query("UPDATE publication.problems SET rectification_reported_at = greatest(rectification_reported_at, $2) WHERE problem_id = $1")
                .bind(w.problem_id)
                .bind(w.at)
                .execute(conn)
                .await?;
        }
        "closed" => {
            sqlx::query("UPDATE publication.problems SET verified_at = greatest(verified_at, $2), closed_at = $2 WHERE problem_id = $1")
                .bind(w.problem_id)
                .bind(w.at)
                .execute(conn)
                .await?;
        }
        _ => {
            // A reopening's new deadline holds only while it is verification's latest word.
            sqlx::query(
                "UPDATE publication.problems SET verified_at = greatest(verified_at, $2),
                        deadline = CASE WHEN verification_seq = $4 THEN coalesce($3, deadline) ELSE deadline END
                 WHERE problem_id = $1",
            )
            .bind(w.problem_id)
            .bind(w.at)
            .bind(w.new_deadline)
            .bind(w.seq)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

pub async fn add_history(
    conn: &mut PgConnection,
    problem_id: Uuid,
    event_id: Uuid,
    at: OffsetDateTime,
    status: &str,
    what: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO publication.history (problem_id, source_event_id, at, status, what) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (source_event_id) DO NOTHING",
    )
    .bind(problem_id)
    .bind(event_id)
    .bind(at)
    .bind(status)
    .bind(what)
    .execute(conn)
    .await?;
    Ok(())
}

/// An entry just appended to the chain.
pub struct Appended {
    pub seq: i64,
    pub problem_id: Uuid,
    pub city_code: Option<String>,
    pub status: String,
    pub entry_hash: String,
}

/// What the public status is derived from.
#[derive(sqlx::FromRow)]
struct Facts {
    category: Option<String>,
    verification_status: Option<String>,
    handed_over_at: Option<OffsetDateTime>,
    acknowledged_at: Option<OffsetDateTime>,
    city_code: Option<String>,
}

/// Recomputes a problem's public status; once it is public, appends its history not yet in the
/// chain, in the order things happened.
pub async fn refresh(conn: &mut PgConnection, problem_id: Uuid) -> sqlx::Result<Vec<Appended>> {
    let row: Option<Facts> = sqlx::query_as(
        "SELECT category, verification_status, handed_over_at, acknowledged_at, city_code FROM publication.problems WHERE problem_id = $1",
    )
    .bind(problem_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(Facts { category, verification_status, handed_over_at, acknowledged_at, city_code }) = row else {
        return Ok(vec![]);
    };
    let handed_over = handed_over_at.is_some();
    let public = domain::is_public(category.is_some(), handed_over);
    let status = domain::public_status(verification_status.as_deref(), acknowledged_at.is_some(), handed_over);
    sqlx::query("UPDATE publication.problems SET status = $2, public = $3, updated_at = now() WHERE problem_id = $1")
        .bind(problem_id)
        .bind(&status)
        .bind(public)
        .execute(&mut *conn)
        .await?;
    if !public {
        return Ok(vec![]);
    }
    let unchained: Vec<(i64, OffsetDateTime, String, String)> = sqlx::query_as(
        "SELECT id, at, status, what FROM publication.history WHERE problem_id = $1 AND entry_seq IS NULL ORDER BY at, id",
    )
    .bind(problem_id)
    .fetch_all(&mut *conn)
    .await?;
    if unchained.is_empty() {
        return Ok(vec![]);
    }
    // One writer at a time extends the chain.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('publication.chain', 0))").execute(&mut *conn).await?;
    let last: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, entry_hash FROM publication.entries ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    let (mut seq, mut prev) = last.unwrap_or((0, domain::GENESIS.to_string()));
    let mut appended = Vec::with_capacity(unchained.len());
    for (history_id, at, entry_status, what) in unchained {
        seq += 1;
        let content = json!({
            "seq": seq,
            "problem_id": problem_id,
            "at": shared::csv::timestamp(at),
            "status": entry_status,
            "what": what,
        });
        let content_hash = domain::content_hash(&content);
        let entry_hash = domain::entry_hash(&prev, &content_hash);
        sqlx::query(
            "INSERT INTO publication.entries (seq, problem_id, content, content_hash, prev_hash, entry_hash) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(seq)
        .bind(problem_id)
        .bind(&content)
        .bind(&content_hash)
        .bind(&prev)
        .bind(&entry_hash)
        .execute(&mut *conn)
        .await?;
        sqlx::query("UPDATE publication.history SET entry_seq = $2 WHERE id = $1")
            .bind(history_id)
            .bind(seq)
            .execute(&mut *conn)
            .await?;
        prev = entry_hash.clone();
        appended.push(Appended { seq, problem_id, city_code: city_code.clone(), status: entry_status, entry_hash });
    }
    Ok(appended)
}

/// A problem as the public sees it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PublicProblem {
    pub id: Uuid,
    pub status: String,
    pub category: Option<String>,
    pub severity: Option<String>,
    pub round: Option<String>,
    pub city_code: Option<String>,
    pub county_code: Option<String>,
    pub jurisdiction: Option<String>,
    pub site_name: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub description: Option<String>,
    pub rebound_of: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub found_at: Option<OffsetDateTime>,
    pub handover_no: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub handed_over_at: Option<OffsetDateTime>,
    pub deadline: Option<Date>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub acknowledged_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub rectification_reported_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub verified_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub closed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

const PUBLIC_COLUMNS: &str = "problem_id AS id, status, category, severity, round_id AS round, city_code, county_code,
    jurisdiction, site_name, site_lat AS lat, site_lon AS lon, description, rebound_of, found_at, handover_no,
    handed_over_at, deadline, acknowledged_at, rectification_reported_at, verified_at, closed_at, updated_at";

pub async fn public_problem(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<PublicProblem>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {PUBLIC_COLUMNS} FROM publication.problems WHERE problem_id = $1 AND public"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct HistoryItem {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub status: String,
    pub what: String,
    pub entry_seq: Option<i64>,
}

pub async fn history(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Vec<HistoryItem>> {
    sqlx::query_as("SELECT at, status, what, entry_seq FROM publication.history WHERE problem_id = $1 AND entry_seq IS NOT NULL ORDER BY at, id")
        .bind(id)
        .fetch_all(conn)
        .await
}

#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct ProblemFilter {
    pub city: Option<String>,
    pub category: Option<String>,
    pub status: Option<String>,
    pub round: Option<String>,
    /// Matches the site's name.
    pub q: Option<String>,
}

/// Public problems, most recently changed first.
pub async fn public_problems(
    conn: &mut PgConnection,
    f: &ProblemFilter,
    limit: i64,
) -> sqlx::Result<Vec<PublicProblem>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {PUBLIC_COLUMNS} FROM publication.problems
         WHERE public AND ($1::text IS NULL OR city_code = $1) AND ($2::text IS NULL OR category = $2)
           AND ($3::text IS NULL OR status = $3) AND ($4::text IS NULL OR round_id = $4)
           AND ($5::text IS NULL OR site_name ILIKE '%' || $5 || '%')
         ORDER BY updated_at DESC, problem_id LIMIT $6"
    )))
    .bind(&f.city)
    .bind(&f.category)
    .bind(&f.status)
    .bind(&f.round)
    .bind(&f.q)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Public problems counted by city, category and status.
pub async fn problem_counts(
    conn: &mut PgConnection,
    f: &ProblemFilter,
) -> sqlx::Result<Vec<(String, String, String, i64)>> {
    sqlx::query_as(
        "SELECT coalesce(city_code, ''), coalesce(category, ''), status, count(*) FROM publication.problems
         WHERE public AND ($1::text IS NULL OR city_code = $1) AND ($2::text IS NULL OR category = $2)
           AND ($3::text IS NULL OR round_id = $3)
         GROUP BY 1, 2, 3",
    )
    .bind(&f.city)
    .bind(&f.category)
    .bind(&f.round)
    .fetch_all(conn)
    .await
}

/// Site checks per city.
pub async fn check_counts(conn: &mut PgConnection, f: &ProblemFilter) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as(
        "SELECT city_code, sum(checks)::bigint FROM publication.inspection_counts
         WHERE ($1::text IS NULL OR city_code = $1) AND ($2::text IS NULL OR round_id = $2)
         GROUP BY city_code",
    )
    .bind(&f.city)
    .bind(&f.round)
    .fetch_all(conn)
    .await
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ChainEntry {
    pub seq: i64,
    pub problem_id: Uuid,
    pub content: Value,
    pub content_hash: String,
    pub prev_hash: String,
    pub entry_hash: String,
}

pub async fn chain(conn: &mut PgConnection, after: i64, limit: i64) -> sqlx::Result<Vec<ChainEntry>> {
    sqlx::query_as(
        "SELECT seq, problem_id, content, content_hash, prev_hash, entry_hash FROM publication.entries
         WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}
