//! Assignment's SQL, all in the `assignment` schema.

use serde::Serialize;
use sqlx::PgConnection;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use shared::events::ProblemReported;

/// One row of the ledger.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct LedgerEntry {
    pub problem_id: Uuid,
    pub round_id: String,
    pub city_code: String,
    pub county_code: Option<String>,
    pub jurisdiction: String,
    pub category: String,
    pub severity: String,
    pub site_name: String,
    pub description: String,
    pub rebound_of: Option<Uuid>,
    pub handover_no: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub assigned_at: Option<OffsetDateTime>,
    pub deadline: Option<Date>,
    pub status: String,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

const LEDGER_COLUMNS: &str =
    "problem_id, round_id, city_code, county_code, jurisdiction, category, severity, site_name,
     description, rebound_of, handover_no, assigned_at, deadline, status, updated_at";

/// Enters a reported problem in the ledger, to be gathered onto its city's next sheet.
pub async fn receive_problem(conn: &mut PgConnection, p: &ProblemReported, jurisdiction: &str) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO assignment.ledger (problem_id, round_id, city_code, county_code, jurisdiction, category, severity,
                                        site_name, description, rebound_of, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'reported')
         ON CONFLICT (problem_id) DO NOTHING",
    )
    .bind(p.problem_id)
    .bind(&p.round)
    .bind(&p.city_code)
    .bind(&p.county_code)
    .bind(jurisdiction)
    .bind(&p.category)
    .bind(&p.severity)
    .bind(&p.site.name)
    .bind(&p.description)
    .bind(p.rebound_of)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Cities with problems waiting for a sheet: round, city, how many, and how long the oldest has
/// waited (milliseconds, by the database's clock).
pub async fn gathering(conn: &mut PgConnection) -> sqlx::Result<Vec<(String, String, i64, i64)>> {
    sqlx::query_as(
        "SELECT round_id, city_code, count(*),
                (extract(epoch FROM now() - min(received_at)) * 1000)::bigint
         FROM assignment.ledger WHERE handover_no IS NULL GROUP BY round_id, city_code",
    )
    .fetch_all(conn)
    .await
}

/// Takes the lock on one city's gathering for this transaction; false if another holds it.
pub async fn try_lock_gathering(conn: &mut PgConnection, round: &str, city: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtextextended('handover|' || $1 || '|' || $2, 0))")
        .bind(round)
        .bind(city)
        .fetch_one(conn)
        .await
}

pub async fn take_gathering(
    conn: &mut PgConnection,
    round: &str,
    city: &str,
    limit: i64,
) -> sqlx::Result<Vec<LedgerEntry>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {LEDGER_COLUMNS} FROM assignment.ledger
         WHERE handover_no IS NULL AND round_id = $1 AND city_code = $2
         ORDER BY received_at, problem_id LIMIT $3 FOR UPDATE"
    )))
    .bind(round)
    .bind(city)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The next sheet number of the day for a round and city.
pub async fn next_sheet_seq(conn: &mut PgConnection, round: &str, city: &str, day: Date) -> sqlx::Result<i32> {
    sqlx::query_scalar(
        "INSERT INTO assignment.handover_days (round_id, city_code, day, last_seq) VALUES ($1, $2, $3, 1)
         ON CONFLICT (round_id, city_code, day) DO UPDATE SET last_seq = assignment.handover_days.last_seq + 1
         RETURNING last_seq",
    )
    .bind(round)
    .bind(city)
    .bind(day)
    .fetch_one(conn)
    .await
}

pub async fn insert_handover(
    conn: &mut PgConnection,
    no: &str,
    round: &str,
    city: &str,
    issued_at: OffsetDateTime,
    count: i32,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO assignment.handovers (no, round_id, city_code, issued_at, problem_count) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(no)
    .bind(round)
    .bind(city)
    .bind(issued_at)
    .bind(count)
    .execute(conn)
    .await?;
    Ok(())
}

/// Puts a problem on a sheet with its deadline; returns the problem's new counter.
pub async fn assign(
    conn: &mut PgConnection,
    problem_id: Uuid,
    no: &str,
    at: OffsetDateTime,
    deadline: Date,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "UPDATE assignment.ledger SET handover_no = $2, assigned_at = $3, deadline = $4, status = 'assigned',
                problem_seq = problem_seq + 1, updated_at = now()
         WHERE problem_id = $1 RETURNING problem_seq",
    )
    .bind(problem_id)
    .bind(no)
    .bind(at)
    .bind(deadline)
    .fetch_one(conn)
    .await
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Handover {
    pub no: String,
    pub round_id: String,
    pub city_code: String,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    pub problem_count: i32,
    #[serde(with = "time::serde::rfc3339::option")]
    pub acknowledged_at: Option<OffsetDateTime>,
}

pub async fn handover(conn: &mut PgConnection, no: &str, for_update: bool) -> sqlx::Result<Option<Handover>> {
    let sql = if for_update {
        "SELECT no, round_id, city_code, issued_at, problem_count, acknowledged_at FROM assignment.handovers WHERE no = $1 FOR UPDATE"
    } else {
        "SELECT no, round_id, city_code, issued_at, problem_count, acknowledged_at FROM assignment.handovers WHERE no = $1"
    };
    sqlx::query_as(sql).bind(no).fetch_optional(conn).await
}

pub async fn handover_problems(conn: &mut PgConnection, no: &str) -> sqlx::Result<Vec<LedgerEntry>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {LEDGER_COLUMNS} FROM assignment.ledger WHERE handover_no = $1 ORDER BY received_at, problem_id"
    )))
    .bind(no)
    .fetch_all(conn)
    .await
}

/// Records the city's acknowledgement (签收) and moves the sheet's problems on; returns each
/// moved problem with its new counter.
pub async fn acknowledge(
    conn: &mut PgConnection,
    no: &str,
    by: &str,
    at: OffsetDateTime,
) -> sqlx::Result<Vec<(Uuid, i64)>> {
    sqlx::query("UPDATE assignment.handovers SET acknowledged_at = $2, acknowledged_by = $3 WHERE no = $1")
        .bind(no)
        .bind(at)
        .bind(by)
        .execute(&mut *conn)
        .await?;
    sqlx::query_as(
        "UPDATE assignment.ledger SET status = 'acknowledged', problem_seq = problem_seq + 1, updated_at = now()
         WHERE handover_no = $1 AND status = 'assigned' RETURNING problem_id, problem_seq",
    )
    .bind(no)
    .fetch_all(conn)
    .await
}

/// Applies verification's word on a problem unless a later one was applied already.
pub async fn apply_verification(
    conn: &mut PgConnection,
    problem_id: Uuid,
    status: &str,
    verification_seq: i64,
    new_deadline: Option<Date>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE assignment.ledger SET status = $2, verification_seq = $3, deadline = coalesce($4, deadline), updated_at = now()
         WHERE problem_id = $1 AND verification_seq < $3",
    )
    .bind(problem_id)
    .bind(status)
    .bind(verification_seq)
    .bind(new_deadline)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct LedgerFilter {
    pub city: Option<String>,
    pub county: Option<String>,
    pub round: Option<String>,
    pub status: Option<String>,
    pub category: Option<String>,
}

/// The ledger rows matching `filter`, restricted to `within` (a local government's
/// jurisdiction: a city sees its counties' problems too).
pub async fn ledger(
    conn: &mut PgConnection,
    filter: &LedgerFilter,
    within: Option<&str>,
) -> sqlx::Result<Vec<LedgerEntry>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {LEDGER_COLUMNS} FROM assignment.ledger
         WHERE ($1::text IS NULL OR city_code = $1) AND ($2::text IS NULL OR county_code = $2)
           AND ($3::text IS NULL OR round_id = $3) AND ($4::text IS NULL OR status = $4)
           AND ($5::text IS NULL OR category = $5)
           AND ($6::text IS NULL OR jurisdiction = $6 OR city_code = $6)
         ORDER BY received_at, problem_id"
    )))
    .bind(&filter.city)
    .bind(&filter.county)
    .bind(&filter.round)
    .bind(&filter.status)
    .bind(&filter.category)
    .bind(within)
    .fetch_all(conn)
    .await
}
