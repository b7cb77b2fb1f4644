//! Verification's SQL, all in the `verification` schema.

use serde::Serialize;
use sqlx::PgConnection;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use shared::events::{ProblemAssigned, ProblemReported};

use crate::domain::{RectificationRequest, VerdictRequest};

pub async fn upsert_team(conn: &mut PgConnection, team: &str, home_province: &str) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO verification.teams (id, home_province) VALUES ($1, $2)
         ON CONFLICT (id) DO UPDATE SET home_province = $2",
    )
    .bind(team)
    .bind(home_province)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn team_province(conn: &mut PgConnection, team: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT home_province FROM verification.teams WHERE id = $1")
        .bind(team)
        .fetch_optional(conn)
        .await
}

/// Keeps what intake said of a problem; intake's and assignment's events may come in any order.
pub async fn problem_reported(conn: &mut PgConnection, p: &ProblemReported) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO verification.problems (problem_id, round_id, city_code, county_code, category, finder_team)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (problem_id) DO UPDATE SET round_id = $2, county_code = $4, category = $5, finder_team = $6",
    )
    .bind(p.problem_id)
    .bind(&p.round)
    .bind(&p.city_code)
    .bind(&p.county_code)
    .bind(&p.category)
    .bind(&p.team)
    .execute(conn)
    .await?;
    Ok(())
}

/// Keeps what assignment said: who is responsible, on which sheet, by when.
pub async fn problem_assigned(conn: &mut PgConnection, p: &ProblemAssigned) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO verification.problems (problem_id, round_id, city_code, county_code, category, jurisdiction,
                                            handover_no, deadline, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'assigned')
         ON CONFLICT (problem_id) DO UPDATE SET jurisdiction = $6, handover_no = $7, deadline = $8,
             status = CASE WHEN verification.problems.status = 'reported' THEN 'assigned' ELSE verification.problems.status END",
    )
    .bind(p.problem_id)
    .bind(&p.round)
    .bind(&p.city_code)
    .bind(&p.county_code)
    .bind(&p.category)
    .bind(&p.jurisdiction)
    .bind(&p.handover_no)
    .bind(p.deadline)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn problem_acknowledged(conn: &mut PgConnection, problem_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE verification.problems SET status = 'acknowledged', updated_at = now() WHERE problem_id = $1 AND status = 'assigned'")
        .bind(problem_id)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Problem {
    pub problem_id: Uuid,
    pub round_id: Option<String>,
    pub city_code: String,
    pub county_code: Option<String>,
    pub category: Option<String>,
    #[serde(skip)]
    pub finder_team: Option<String>,
    pub jurisdiction: Option<String>,
    pub handover_no: Option<String>,
    pub deadline: Option<Date>,
    pub status: String,
}

/// A problem, locked for the rest of the transaction, so the first verdict is the one that counts.
pub async fn problem_for_update(conn: &mut PgConnection, problem_id: Uuid) -> sqlx::Result<Option<Problem>> {
    sqlx::query_as(
        "SELECT problem_id, round_id, city_code, county_code, category, finder_team, jurisdiction, handover_no, deadline, status
         FROM verification.problems WHERE problem_id = $1 FOR UPDATE",
    )
    .bind(problem_id)
    .fetch_optional(conn)
    .await
}

pub async fn problem(conn: &mut PgConnection, problem_id: Uuid) -> sqlx::Result<Option<Problem>> {
    sqlx::query_as(
        "SELECT problem_id, round_id, city_code, county_code, category, finder_team, jurisdiction, handover_no, deadline, status
         FROM verification.problems WHERE problem_id = $1",
    )
    .bind(problem_id)
    .fetch_optional(conn)
    .await
}

/// Moves a problem to `status`; returns its new counter.
pub async fn set_status(
    conn: &mut PgConnection,
    problem_id: Uuid,
    status: &str,
    deadline: Option<Date>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "UPDATE verification.problems SET status = $2, deadline = coalesce($3, deadline), problem_seq = problem_seq + 1,
                updated_at = now()
         WHERE problem_id = $1 RETURNING problem_seq",
    )
    .bind(problem_id)
    .bind(status)
    .bind(deadline)
    .fetch_one(conn)
    .await
}

pub async fn insert_rectification(
    conn: &mut PgConnection,
    problem_id: Uuid,
    r: &RectificationRequest,
    reported_by: &str,
    at: OffsetDateTime,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO verification.rectifications (id, problem_id, measures, evidence, completed_at, reported_by, reported_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(problem_id)
    .bind(&r.measures)
    .bind(sqlx::types::Json(&r.evidence))
    .bind(r.completed_at)
    .bind(reported_by)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(id)
}

pub async fn insert_verdict(
    conn: &mut PgConnection,
    problem_id: Uuid,
    v: &VerdictRequest,
    at: OffsetDateTime,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO verification.verdicts (id, problem_id, result, team, note, evidence, given_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(problem_id)
    .bind(&v.result)
    .bind(&v.team)
    .bind(&v.note)
    .bind(sqlx::types::Json(&v.evidence))
    .bind(at)
    .execute(conn)
    .await?;
    Ok(id)
}
