//! Assignment's SQL, all in the `assignment` schema.

use serde::Serialize;
use sqlx::PgConnection;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::config::DeadlinePolicy;

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
    pub original_deadline: Option<Date>,
    pub status: String,
    pub overdue: bool,
    pub disputed: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// The ledger, which keeps each problem's counter of assignment's events about it.
pub const LEDGER: &str = "assignment.ledger";

const LEDGER_COLUMNS: &str =
    "problem_id, round_id, city_code, county_code, jurisdiction, category, severity, site_name,
     description, rebound_of, handover_no, assigned_at, deadline, original_deadline, status, overdue, disputed,
     received_at, updated_at";

/// A reported problem as the ledger takes it.
pub struct Received<'a> {
    pub problem: &'a ProblemReported,
    pub jurisdiction: String,
}

/// Enters reported problems in the ledger, to be gathered onto their city's next sheet.
pub async fn receive_problems(
    conn: &mut PgConnection,
    problems: &[Received<'_>],
    at: OffsetDateTime,
) -> sqlx::Result<()> {
    let column = |f: &dyn Fn(&ProblemReported) -> String| problems.iter().map(|r| f(r.problem)).collect::<Vec<_>>();
    let ids: Vec<Uuid> = problems.iter().map(|r| r.problem.problem_id).collect();
    let counties: Vec<Option<String>> = problems.iter().map(|r| r.problem.county_code.clone()).collect();
    let jurisdictions: Vec<&str> = problems.iter().map(|r| r.jurisdiction.as_str()).collect();
    let rebounds: Vec<Option<Uuid>> = problems.iter().map(|r| r.problem.rebound_of).collect();
    sqlx::query(
        "INSERT INTO assignment.ledger (problem_id, round_id, city_code, county_code, jurisdiction, category, severity,
                                        site_name, description, rebound_of, status, received_at)
         SELECT id, round_id, city, county, jurisdiction, category, severity, site, description, rebound, 'reported', $11
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                     $9::text[], $10::uuid[])
              AS p(id, round_id, city, county, jurisdiction, category, severity, site, description, rebound)
         ON CONFLICT (problem_id) DO NOTHING",
    )
    .bind(&ids)
    .bind(column(&|p| p.round.clone()))
    .bind(column(&|p| p.city_code.clone()))
    .bind(&counties)
    .bind(&jurisdictions)
    .bind(column(&|p| p.category.clone()))
    .bind(column(&|p| p.severity.clone()))
    .bind(column(&|p| p.site.name.clone()))
    .bind(column(&|p| p.description.clone()))
    .bind(&rebounds)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Cities with problems waiting for a sheet: round, city, how many, and when the oldest came in.
pub async fn gathering(conn: &mut PgConnection) -> sqlx::Result<Vec<(String, String, i64, OffsetDateTime)>> {
    sqlx::query_as(
        "SELECT round_id, city_code, count(*), min(received_at)
         FROM assignment.ledger WHERE handover_no IS NULL AND status = 'reported' GROUP BY round_id, city_code",
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
         WHERE handover_no IS NULL AND status = 'reported' AND round_id = $1 AND city_code = $2
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
    deadline_policy_version: i32,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO assignment.handovers (no, round_id, city_code, issued_at, problem_count, deadline_policy_version)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(no)
    .bind(round)
    .bind(city)
    .bind(issued_at)
    .bind(count)
    .bind(deadline_policy_version)
    .execute(conn)
    .await?;
    Ok(())
}

/// Puts problems on a sheet, each with its deadline.
pub async fn assign(
    conn: &mut PgConnection,
    no: &str,
    at: OffsetDateTime,
    deadlines: &[(Uuid, Date)],
) -> sqlx::Result<()> {
    let (ids, dates): (Vec<Uuid>, Vec<Date>) = deadlines.iter().copied().unzip();
    sqlx::query(
        "UPDATE assignment.ledger l SET handover_no = $1, assigned_at = $2, deadline = d.deadline,
                original_deadline = d.deadline, status = 'assigned', updated_at = now()
         FROM unnest($3::uuid[], $4::date[]) AS d(id, deadline) WHERE l.problem_id = d.id",
    )
    .bind(no)
    .bind(at)
    .bind(&ids)
    .bind(&dates)
    .execute(conn)
    .await?;
    Ok(())
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
    /// The version of the deadline policy the sheet's deadlines came from.
    pub deadline_policy_version: Option<i32>,
}

pub async fn handover(conn: &mut PgConnection, no: &str, for_update: bool) -> sqlx::Result<Option<Handover>> {
    let sql = if for_update {
        "SELECT no, round_id, city_code, issued_at, problem_count, acknowledged_at, deadline_policy_version FROM assignment.handovers WHERE no = $1 FOR UPDATE"
    } else {
        "SELECT no, round_id, city_code, issued_at, problem_count, acknowledged_at, deadline_policy_version FROM assignment.handovers WHERE no = $1"
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

/// Records the city's acknowledgement (签收) and moves the sheet's problems on; returns the
/// problems moved.
pub async fn acknowledge(conn: &mut PgConnection, no: &str, by: &str, at: OffsetDateTime) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query("UPDATE assignment.handovers SET acknowledged_at = $2, acknowledged_by = $3 WHERE no = $1")
        .bind(no)
        .bind(at)
        .bind(by)
        .execute(&mut *conn)
        .await?;
    sqlx::query_scalar(
        "UPDATE assignment.ledger SET status = 'acknowledged', updated_at = now()
         WHERE handover_no = $1 AND status = 'assigned' RETURNING problem_id",
    )
    .bind(no)
    .fetch_all(conn)
    .await
}

/// Verification's word on a problem: its status, its counter, and a new deadline (reopened).
pub struct VerificationWord {
    pub problem_id: Uuid,
    pub status: &'static str,
    pub seq: i64,
    pub deadline: Option<Date>,
}

/// Applies verification's words (each problem at most once) unless a later one was applied.
pub async fn apply_verification(conn: &mut PgConnection, words: &[VerificationWord]) -> sqlx::Result<()> {
    let ids: Vec<Uuid> = words.iter().map(|w| w.problem_id).collect();
    let statuses: Vec<&str> = words.iter().map(|w| w.status).collect();
    let seqs: Vec<i64> = words.iter().map(|w| w.seq).collect();
    let deadlines: Vec<Option<Date>> = words.iter().map(|w| w.deadline).collect();
    sqlx::query(
        "UPDATE assignment.ledger l SET status = w.status, verification_seq = w.seq,
                deadline = coalesce(w.deadline, l.deadline), updated_at = now()
         FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::date[]) AS w(id, status, seq, deadline)
         WHERE l.problem_id = w.id AND l.verification_seq < w.seq",
    )
    .bind(&ids)
    .bind(&statuses)
    .bind(&seqs)
    .bind(&deadlines)
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
    pub overdue: Option<bool>,
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
           AND ($7::boolean IS NULL OR overdue = $7)
         ORDER BY received_at, problem_id"
    )))
    .bind(&filter.city)
    .bind(&filter.county)
    .bind(&filter.round)
    .bind(&filter.status)
    .bind(&filter.category)
    .bind(within)
    .bind(filter.overdue)
    .fetch_all(conn)
    .await
}

pub async fn entry(conn: &mut PgConnection, problem_id: Uuid, for_update: bool) -> sqlx::Result<Option<LedgerEntry>> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {LEDGER_COLUMNS} FROM assignment.ledger WHERE problem_id = $1{lock}"
    )))
    .bind(problem_id)
    .fetch_optional(conn)
    .await
}

pub async fn raise_dispute(
    conn: &mut PgConnection,
    problem_id: Uuid,
    jurisdiction: &str,
    reason: &str,
    at: OffsetDateTime,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO assignment.disputes (id, problem_id, jurisdiction, reason, raised_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(problem_id)
    .bind(jurisdiction)
    .bind(reason)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE assignment.ledger SET disputed = true WHERE problem_id = $1")
        .bind(problem_id)
        .execute(conn)
        .await?;
    Ok(id)
}

/// Closes the problem's open dispute, if any, as `rerouted` or `dismissed`.
pub async fn resolve_dispute(
    conn: &mut PgConnection,
    problem_id: Uuid,
    status: &str,
    resolution: &str,
    at: OffsetDateTime,
) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE assignment.disputes SET status = $2, resolution = $3, resolved_at = $4 WHERE problem_id = $1 AND status = 'open'",
    )
    .bind(problem_id)
    .bind(status)
    .bind(resolution)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE assignment.ledger SET disputed = false WHERE problem_id = $1")
        .bind(problem_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Dispute {
    pub id: Uuid,
    pub problem_id: Uuid,
    pub jurisdiction: String,
    pub reason: String,
    pub status: String,
    pub resolution: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub raised_at: OffsetDateTime,
}

pub async fn disputes(conn: &mut PgConnection, status: Option<&str>) -> sqlx::Result<Vec<Dispute>> {
    sqlx::query_as(
        "SELECT id, problem_id, jurisdiction, reason, status, resolution, raised_at FROM assignment.disputes
         WHERE ($1::text IS NULL OR status = $1) ORDER BY raised_at",
    )
    .bind(status)
    .fetch_all(conn)
    .await
}

pub struct Reroute<'a> {
    pub problem_id: Uuid,
    pub from: &'a str,
    pub to: &'a str,
    pub city_code: &'a str,
    pub county_code: Option<&'a str>,
    pub reason: &'a str,
    pub deadline: Date,
    pub at: OffsetDateTime,
}

/// Hands the problem to another government with a new deadline.
pub async fn reroute(conn: &mut PgConnection, r: &Reroute<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO assignment.reroutes (id, problem_id, from_jurisdiction, to_jurisdiction, reason, deadline, rerouted_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(Uuid::now_v7())
    .bind(r.problem_id)
    .bind(r.from)
    .bind(r.to)
    .bind(r.reason)
    .bind(r.deadline)
    .bind(r.at)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE assignment.ledger SET jurisdiction = $2, city_code = $3, county_code = $4, deadline = $5, overdue = false,
                status = CASE WHEN status = 'acknowledged' THEN 'assigned' ELSE status END, updated_at = now()
         WHERE problem_id = $1",
    )
    .bind(r.problem_id)
    .bind(r.to)
    .bind(r.city_code)
    .bind(r.county_code)
    .bind(r.deadline)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn request_extension(
    conn: &mut PgConnection,
    problem_id: Uuid,
    by: &str,
    reason: &str,
    previous: Date,
    requested: Date,
    at: OffsetDateTime,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO assignment.extensions (id, problem_id, requested_by, reason, previous_deadline, requested_deadline, requested_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(problem_id)
    .bind(by)
    .bind(reason)
    .bind(previous)
    .bind(requested)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(id)
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Extension {
    pub id: Uuid,
    pub problem_id: Uuid,
    pub requested_by: String,
    pub reason: String,
    pub previous_deadline: Date,
    pub requested_deadline: Date,
    pub status: String,
    pub decision_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
}

pub async fn extensions(
    conn: &mut PgConnection,
    status: Option<&str>,
    problem_id: Option<Uuid>,
) -> sqlx::Result<Vec<Extension>> {
    sqlx::query_as(
        "SELECT id, problem_id, requested_by, reason, previous_deadline, requested_deadline, status, decision_reason, requested_at
         FROM assignment.extensions WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR problem_id = $2)
         ORDER BY requested_at",
    )
    .bind(status)
    .bind(problem_id)
    .fetch_all(conn)
    .await
}

pub async fn extension_for_update(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Extension>> {
    sqlx::query_as(
        "SELECT id, problem_id, requested_by, reason, previous_deadline, requested_deadline, status, decision_reason, requested_at
         FROM assignment.extensions WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn decide_extension(
    conn: &mut PgConnection,
    id: Uuid,
    status: &str,
    reason: &str,
    at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE assignment.extensions SET status = $2, decision_reason = $3, decided_at = $4 WHERE id = $1")
        .bind(id)
        .bind(status)
        .bind(reason)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Moves the deadline in force (the original stays).
pub async fn extend(conn: &mut PgConnection, problem_id: Uuid, deadline: Date) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE assignment.ledger SET deadline = $2, overdue = false, updated_at = now() WHERE problem_id = $1",
    )
    .bind(problem_id)
    .bind(deadline)
    .execute(conn)
    .await?;
    Ok(())
}

/// Verification's word that problems are past their deadline (the deadline it judged by).
pub async fn mark_overdue(conn: &mut PgConnection, overdue: &[(Uuid, Date)]) -> sqlx::Result<()> {
    let (ids, deadlines): (Vec<Uuid>, Vec<Date>) = overdue.iter().copied().unzip();
    sqlx::query(
        "UPDATE assignment.ledger l SET overdue = true, updated_at = now()
         FROM unnest($1::uuid[], $2::date[]) AS o(id, deadline) WHERE l.problem_id = o.id AND l.deadline = o.deadline",
    )
    .bind(&ids)
    .bind(&deadlines)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Jurisdiction {
    pub code: String,
    pub name: String,
    pub city_code: String,
}

pub async fn upsert_jurisdiction(conn: &mut PgConnection, code: &str, name: &str, city_code: &str) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO assignment.jurisdictions (code, name, city_code) VALUES ($1, $2, $3)
         ON CONFLICT (code) DO UPDATE SET name = $2, city_code = $3, updated_at = now()",
    )
    .bind(code)
    .bind(name)
    .bind(city_code)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn jurisdiction(conn: &mut PgConnection, code: &str) -> sqlx::Result<Option<Jurisdiction>> {
    sqlx::query_as("SELECT code, name, city_code FROM assignment.jurisdictions WHERE code = $1")
        .bind(code)
        .fetch_optional(conn)
        .await
}

pub async fn jurisdictions(conn: &mut PgConnection) -> sqlx::Result<Vec<Jurisdiction>> {
    sqlx::query_as("SELECT code, name, city_code FROM assignment.jurisdictions ORDER BY code").fetch_all(conn).await
}

/// Takes withdrawn or merged reports out of the ledger's work (and off any sheet to come).
pub async fn take_out(conn: &mut PgConnection, problems: &[Uuid], status: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE assignment.ledger SET status = $2, updated_at = now()
         WHERE problem_id = ANY($1) AND status <> 'closed'",
    )
    .bind(problems)
    .bind(status)
    .execute(conn)
    .await?;
    Ok(())
}

/// The ledger's rows matching `filter` within `within` (as [`ledger`]), counted by round and
/// status: round, status, rows, rows handed over (on a sheet), rows overdue.
pub async fn ledger_counts(
    conn: &mut PgConnection,
    filter: &LedgerFilter,
    within: Option<&str>,
) -> sqlx::Result<Vec<(String, String, i64, i64, i64)>> {
    sqlx::query_as(
        "SELECT round_id, status, count(*), count(handover_no), count(*) FILTER (WHERE overdue)
         FROM assignment.ledger
         WHERE ($1::text IS NULL OR city_code = $1) AND ($2::text IS NULL OR county_code = $2)
           AND ($3::text IS NULL OR round_id = $3) AND ($4::text IS NULL OR status = $4)
           AND ($5::text IS NULL OR category = $5)
           AND ($6::text IS NULL OR jurisdiction = $6 OR city_code = $6)
           AND ($7::boolean IS NULL OR overdue = $7)
         GROUP BY round_id, status ORDER BY round_id, status",
    )
    .bind(&filter.city)
    .bind(&filter.county)
    .bind(&filter.round)
    .bind(&filter.status)
    .bind(&filter.category)
    .bind(within)
    .bind(filter.overdue)
    .fetch_all(conn)
    .await
}

/// Handover sheets, oldest first, of a round and a city if given, acknowledged or not if given.
pub async fn handovers(
    conn: &mut PgConnection,
    round: Option<&str>,
    city: Option<&str>,
    acknowledged: Option<bool>,
) -> sqlx::Result<Vec<Handover>> {
    sqlx::query_as(
        "SELECT no, round_id, city_code, issued_at, problem_count, acknowledged_at, deadline_policy_version FROM assignment.handovers
         WHERE ($1::text IS NULL OR round_id = $1) AND ($2::text IS NULL OR city_code = $2)
           AND ($3::boolean IS NULL OR (acknowledged_at IS NOT NULL) = $3)
         ORDER BY issued_at, no",
    )
    .bind(round)
    .bind(city)
    .bind(acknowledged)
    .fetch_all(conn)
    .await
}

/// One version of the deadline policy.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PolicyVersion {
    pub version: i32,
    pub policy: sqlx::types::Json<DeadlinePolicy>,
    pub reason: Option<String>,
    pub set_by: String,
    pub set_at: OffsetDateTime,
}

impl PolicyVersion {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "version": self.version, "days": self.policy.days, "working_day_categories": self.policy.working_day_categories,
            "reason": self.reason, "set_by": self.set_by,
            "set_at": self.set_at.format(&time::format_description::well_known::Rfc3339).ok(),
        })
    }
}

/// The configured policy becomes version 1 when there is none yet; later versions are the
/// campaign office's (a changed configuration does not override them).
pub async fn seed_policy(conn: &mut PgConnection, configured: &DeadlinePolicy, at: OffsetDateTime) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO assignment.deadline_policies (version, policy, reason, set_by, set_at)
         VALUES (1, $1, 'configuration', 'configuration', $2) ON CONFLICT (version) DO NOTHING",
    )
    .bind(sqlx::types::Json(configured))
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The policy in force: the latest version.
pub async fn current_policy(conn: &mut PgConnection) -> sqlx::Result<PolicyVersion> {
    sqlx::query_as(
        "SELECT version, policy, reason, set_by, set_at FROM assignment.deadline_policies ORDER BY version DESC LIMIT 1",
    )
    .fetch_one(conn)
    .await
}

pub async fn policy_versions(conn: &mut PgConnection) -> sqlx::Result<Vec<PolicyVersion>> {
    sqlx::query_as("SELECT version, policy, reason, set_by, set_at FROM assignment.deadline_policies ORDER BY version")
        .fetch_all(conn)
        .await
}

/// Records a new version of the policy, in force from now on; answers it.
pub async fn set_policy(
    conn: &mut PgConnection,
    policy: &DeadlinePolicy,
    reason: Option<&str>,
    by: &str,
    at: OffsetDateTime,
) -> sqlx::Result<PolicyVersion> {
    // One writer at a time, so versions follow one another.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('assignment.deadline_policies', 0))")
        .execute(&mut *conn)
        .await?;
    sqlx::query_as(
        "INSERT INTO assignment.deadline_policies (version, policy, reason, set_by, set_at)
         SELECT coalesce(max(version), 0) + 1, $1, $2, $3, $4 FROM assignment.deadline_policies
         RETURNING version, policy, reason, set_by, set_at",
    )
    .bind(sqlx::types::Json(policy))
    .bind(reason)
    .bind(by)
    .bind(at)
    .fetch_one(conn)
    .await
}
