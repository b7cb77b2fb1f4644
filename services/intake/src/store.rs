//! Intake's SQL, all in the `intake` schema.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{EarlierEntry, InspectionRequest, RoundRequest, TeamRequest};

pub async fn upsert_round(conn: &mut PgConnection, id: &str, round: &RoundRequest) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO intake.rounds (id, starts_on, ends_on, kind, cities) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO UPDATE SET starts_on = $2, ends_on = $3, kind = $4, cities = $5, updated_at = now()",
    )
    .bind(id)
    .bind(round.starts_on)
    .bind(round.ends_on)
    .bind(&round.kind)
    .bind(&round.cities)
    .execute(conn)
    .await?;
    Ok(())
}

/// A round's cities, if the round exists.
pub async fn round_cities(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<Vec<String>>> {
    sqlx::query_scalar("SELECT cities FROM intake.rounds WHERE id = $1").bind(id).fetch_optional(conn).await
}

pub async fn upsert_team(conn: &mut PgConnection, id: &str, team: &TeamRequest) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO intake.teams (id, home_province, members) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET home_province = $2, members = $3, updated_at = now()",
    )
    .bind(id)
    .bind(&team.home_province)
    .bind(sqlx::types::Json(&team.members))
    .execute(conn)
    .await?;
    Ok(())
}

/// A team's home province, if the team exists.
pub async fn team_province(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT home_province FROM intake.teams WHERE id = $1").bind(id).fetch_optional(conn).await
}

pub async fn upsert_round_team(
    conn: &mut PgConnection,
    round: &str,
    team: &str,
    cities: &[String],
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO intake.round_teams (round_id, team_id, cities) VALUES ($1, $2, $3)
         ON CONFLICT (round_id, team_id) DO UPDATE SET cities = $3, updated_at = now()",
    )
    .bind(round)
    .bind(team)
    .bind(cities)
    .execute(conn)
    .await?;
    Ok(())
}

/// The cities a team covers in a round, if it was assigned to the round.
pub async fn covered_cities(conn: &mut PgConnection, round: &str, team: &str) -> sqlx::Result<Option<Vec<String>>> {
    sqlx::query_scalar("SELECT cities FROM intake.round_teams WHERE round_id = $1 AND team_id = $2")
        .bind(round)
        .bind(team)
        .fetch_optional(conn)
        .await
}

/// What was answered when this inspection was first recorded.
pub async fn inspection_result(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Value>> {
    sqlx::query_scalar("SELECT result FROM intake.inspections WHERE id = $1").bind(id).fetch_optional(conn).await
}

/// The inspection a problem id already belongs to, if any.
pub async fn problem_inspection(conn: &mut PgConnection, problem_id: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT inspection_id FROM intake.problems WHERE id = $1")
        .bind(problem_id)
        .fetch_optional(conn)
        .await
}

/// Serialises reports of the same site and category until the transaction ends, so two
/// concurrent reports cannot both become new entries.
pub async fn lock_site_category(conn: &mut PgConnection, site_key: &str, category: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || '|' || $2, 0))")
        .bind(site_key)
        .bind(category)
        .execute(conn)
        .await?;
    Ok(())
}

/// The latest ledger entry (not a duplicate) for a site and category, and whether it is closed.
pub async fn latest_entry(
    conn: &mut PgConnection,
    site_key: &str,
    category: &str,
) -> sqlx::Result<Option<EarlierEntry>> {
    let row: Option<(Uuid, Option<bool>)> = sqlx::query_as(
        "SELECT p.id, s.closed FROM intake.problems p
         LEFT JOIN intake.problem_status s ON s.problem_id = p.id
         WHERE p.site_key = $1 AND p.category = $2 AND p.duplicate_of IS NULL
         ORDER BY p.reported_at DESC, p.id DESC LIMIT 1",
    )
    .bind(site_key)
    .bind(category)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(problem_id, closed)| EarlierEntry { problem_id, closed: closed.unwrap_or(false) }))
}

pub async fn insert_inspection(
    conn: &mut PgConnection,
    inspection: &InspectionRequest,
    site_key: &str,
    result: &Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO intake.inspections (id, round_id, team_id, city_code, county_code, checked_at, site_key, site, result)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(inspection.id)
    .bind(&inspection.round)
    .bind(&inspection.team)
    .bind(&inspection.city_code)
    .bind(&inspection.county_code)
    .bind(inspection.checked_at)
    .bind(site_key)
    .bind(sqlx::types::Json(&inspection.site))
    .bind(result)
    .execute(conn)
    .await?;
    Ok(())
}

pub struct NewProblem<'a> {
    pub inspection: &'a InspectionRequest,
    pub index: usize,
    pub site_key: &'a str,
    pub duplicate_of: Option<Uuid>,
    pub rebound_of: Option<Uuid>,
}

pub async fn insert_problem(conn: &mut PgConnection, p: NewProblem<'_>) -> sqlx::Result<()> {
    let problem = &p.inspection.problems[p.index];
    sqlx::query(
        "INSERT INTO intake.problems (id, inspection_id, round_id, team_id, city_code, county_code, site_key,
                                      category, severity, description, evidence, duplicate_of, rebound_of)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(problem.id)
    .bind(p.inspection.id)
    .bind(&p.inspection.round)
    .bind(&p.inspection.team)
    .bind(&p.inspection.city_code)
    .bind(&p.inspection.county_code)
    .bind(p.site_key)
    .bind(&problem.category)
    .bind(&problem.severity)
    .bind(&problem.description)
    .bind(sqlx::types::Json(&problem.evidence))
    .bind(p.duplicate_of)
    .bind(p.rebound_of)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records whether a problem is closed, unless a later event of verification's already said.
pub async fn set_problem_status(conn: &mut PgConnection, problem_id: Uuid, closed: bool, seq: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO intake.problem_status (problem_id, closed, problem_seq) VALUES ($1, $2, $3)
         ON CONFLICT (problem_id) DO UPDATE SET closed = $2, problem_seq = $3
         WHERE intake.problem_status.problem_seq < $3",
    )
    .bind(problem_id)
    .bind(closed)
    .bind(seq)
    .execute(conn)
    .await?;
    Ok(())
}
