//! Verification's SQL, all in the `verification` schema.

use serde::Serialize;
use sqlx::PgConnection;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use std::collections::HashMap;

use shared::events::{EventKind, PROBLEM_OVERDUE, ProblemAssigned, ProblemReported, ProblemRerouted};
use shared::order;

use crate::domain::{
    CityCounts, LegacyProblem, ProgressRequest, RectificationItem, RectificationRequest, VerdictItem, VerdictRequest,
};

/// The problems table, which keeps each problem's counter of verification's events about it.
pub const PROBLEMS: &str = "verification.problems";

/// Teams and their home provinces (each team at most once).
pub async fn upsert_teams(conn: &mut PgConnection, teams: &[(&str, &str)]) -> sqlx::Result<()> {
    let (ids, provinces): (Vec<&str>, Vec<&str>) = teams.iter().copied().unzip();
    sqlx::query(
        "INSERT INTO verification.teams (id, home_province) SELECT * FROM unnest($1::text[], $2::text[])
         ON CONFLICT (id) DO UPDATE SET home_province = EXCLUDED.home_province",
    )
    .bind(&ids)
    .bind(&provinces)
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

/// Keeps what intake said of problems; intake's and assignment's events may come in any order.
pub async fn problems_reported(conn: &mut PgConnection, reported: &[&ProblemReported]) -> sqlx::Result<()> {
    let text = |f: &dyn Fn(&ProblemReported) -> String| reported.iter().map(|p| f(p)).collect::<Vec<_>>();
    let ids: Vec<Uuid> = reported.iter().map(|p| p.problem_id).collect();
    let counties: Vec<Option<String>> = reported.iter().map(|p| p.county_code.clone()).collect();
    let rebounds: Vec<bool> = reported.iter().map(|p| p.rebound_of.is_some()).collect();
    sqlx::query(
        "INSERT INTO verification.problems (problem_id, round_id, city_code, county_code, category, finder_team, rebound)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[])
         ON CONFLICT (problem_id) DO UPDATE SET round_id = EXCLUDED.round_id, county_code = EXCLUDED.county_code,
             category = EXCLUDED.category, finder_team = EXCLUDED.finder_team,
             rebound = verification.problems.rebound OR EXCLUDED.rebound",
    )
    .bind(&ids)
    .bind(text(&|p| p.round.clone()))
    .bind(text(&|p| p.city_code.clone()))
    .bind(&counties)
    .bind(text(&|p| p.category.clone()))
    .bind(text(&|p| p.team.clone()))
    .bind(&rebounds)
    .execute(conn)
    .await?;
    Ok(())
}

/// Keeps what assignment said: who is responsible, on which sheet, by when.
pub async fn problems_assigned(conn: &mut PgConnection, assigned: &[&ProblemAssigned]) -> sqlx::Result<()> {
    let text = |f: &dyn Fn(&ProblemAssigned) -> String| assigned.iter().map(|p| f(p)).collect::<Vec<_>>();
    let ids: Vec<Uuid> = assigned.iter().map(|p| p.problem_id).collect();
    let counties: Vec<Option<String>> = assigned.iter().map(|p| p.county_code.clone()).collect();
    let deadlines: Vec<Date> = assigned.iter().map(|p| p.deadline).collect();
    sqlx::query(
        "INSERT INTO verification.problems (problem_id, round_id, city_code, county_code, category, jurisdiction,
                                            handover_no, deadline, status)
         SELECT id, round_id, city, county, category, jurisdiction, handover_no, deadline, 'assigned'
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::date[])
              AS a(id, round_id, city, county, category, jurisdiction, handover_no, deadline)
         ON CONFLICT (problem_id) DO UPDATE SET jurisdiction = EXCLUDED.jurisdiction,
             handover_no = EXCLUDED.handover_no, deadline = EXCLUDED.deadline,
             status = CASE WHEN verification.problems.status = 'reported' THEN 'assigned' ELSE verification.problems.status END",
    )
    .bind(&ids)
    .bind(text(&|p| p.round.clone()))
    .bind(text(&|p| p.city_code.clone()))
    .bind(&counties)
    .bind(text(&|p| p.category.clone()))
    .bind(text(&|p| p.jurisdiction.clone()))
    .bind(text(&|p| p.handover_no.clone()))
    .bind(&deadlines)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn problems_acknowledged(conn: &mut PgConnection, problems: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE verification.problems SET status = 'acknowledged', updated_at = now()
         WHERE problem_id = ANY($1) AND status = 'assigned'",
    )
    .bind(problems)
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
    /// The day the rectification waiting for its verdict was reported.
    pub rectified_on: Option<Date>,
    /// The first day the problem is overdue, once flagged.
    pub overdue_since: Option<Date>,
}

/// A problem, locked for the rest of the transaction, so the first verdict is the one that counts.
pub async fn problem_for_update(conn: &mut PgConnection, problem_id: Uuid) -> sqlx::Result<Option<Problem>> {
    sqlx::query_as(
        "SELECT problem_id, round_id, city_code, county_code, category, finder_team, jurisdiction, handover_no, deadline, status,
                rectified_on, overdue_since
         FROM verification.problems WHERE problem_id = $1 FOR UPDATE",
    )
    .bind(problem_id)
    .fetch_optional(conn)
    .await
}

pub async fn problem(conn: &mut PgConnection, problem_id: Uuid) -> sqlx::Result<Option<Problem>> {
    sqlx::query_as(
        "SELECT problem_id, round_id, city_code, county_code, category, finder_team, jurisdiction, handover_no, deadline, status,
                rectified_on, overdue_since
         FROM verification.problems WHERE problem_id = $1",
    )
    .bind(problem_id)
    .fetch_optional(conn)
    .await
}

/// Moves a problem to `status` (a closing with its time, a rectification with its day) by an
/// event of `kind`; returns its place in verification's order for that event. The deadline and
/// the overdue flag stay: a refused rectification earns no new time.
pub async fn set_status(
    conn: &mut PgConnection,
    problem_id: Uuid,
    status: &str,
    at: OffsetDateTime,
    kind: EventKind,
) -> sqlx::Result<order::Next> {
    set_statuses(&mut *conn, &[(problem_id, status)], at).await?;
    order::advance_one(conn, PROBLEMS, problem_id, kind).await?.ok_or(sqlx::Error::RowNotFound)
}

/// The site's name, where verification has it (last year's problems).
pub async fn site_name(conn: &mut PgConnection, problem_id: Uuid) -> sqlx::Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT site_name FROM verification.problems WHERE problem_id = $1")
        .bind(problem_id)
        .fetch_optional(conn)
        .await?
        .flatten())
}

/// Keeps assignment's reroute: a new government, a new deadline.
pub async fn problem_rerouted(conn: &mut PgConnection, r: &ProblemRerouted) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE verification.problems SET jurisdiction = $2, city_code = $3, deadline = $4, overdue_since = NULL,
                status = CASE WHEN status = 'acknowledged' THEN 'assigned' ELSE status END, updated_at = now()
         WHERE problem_id = $1",
    )
    .bind(r.problem_id)
    .bind(&r.to_jurisdiction)
    .bind(&r.city_code)
    .bind(r.deadline)
    .execute(conn)
    .await?;
    Ok(())
}

/// Keeps an extension granted by the campaign office.
pub async fn problem_extended(conn: &mut PgConnection, problem_id: Uuid, deadline: Date) -> sqlx::Result<()> {
    sqlx::query("UPDATE verification.problems SET deadline = $2, overdue_since = NULL, updated_at = now() WHERE problem_id = $1")
        .bind(problem_id)
        .bind(deadline)
        .execute(conn)
        .await?;
    Ok(())
}

/// Problems still open, past their deadline on `today` and not yet flagged, in id order after
/// `after`, locked for flagging; whether each is overdue is `domain::overdue_since`'s to say.
pub async fn past_deadline(
    conn: &mut PgConnection,
    today: Date,
    after: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<Problem>> {
    sqlx::query_as(
        "SELECT problem_id, round_id, city_code, county_code, category, finder_team, jurisdiction, handover_no, deadline, status,
                rectified_on, overdue_since
         FROM verification.problems
         WHERE overdue_since IS NULL AND deadline < $1 AND status = ANY($2) AND problem_id > $3
         ORDER BY problem_id LIMIT $4 FOR UPDATE SKIP LOCKED",
    )
    .bind(today)
    .bind(crate::domain::OPEN)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Flags problems overdue from their day; returns each one's place in verification's order.
pub async fn mark_overdue(
    conn: &mut PgConnection,
    overdue: &[(Uuid, Date)],
) -> sqlx::Result<HashMap<Uuid, order::Next>> {
    let (ids, since): (Vec<Uuid>, Vec<Date>) = overdue.iter().copied().unzip();
    sqlx::query(
        "UPDATE verification.problems p SET overdue_since = o.since, updated_at = now()
         FROM unnest($1::uuid[], $2::date[]) AS o(id, since) WHERE p.problem_id = o.id",
    )
    .bind(&ids)
    .bind(&since)
    .execute(&mut *conn)
    .await?;
    order::advance(conn, PROBLEMS, &ids, PROBLEM_OVERDUE).await
}

/// Each city's overdue, reopened and rebound counts.
pub async fn city_counts(conn: &mut PgConnection) -> sqlx::Result<Vec<(String, CityCounts)>> {
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT city_code,
                count(*) FILTER (WHERE overdue_since IS NOT NULL AND status = ANY($1)),
                coalesce(sum(reopened_count), 0)::bigint,
                count(*) FILTER (WHERE rebound)
         FROM verification.problems GROUP BY city_code",
    )
    .bind(crate::domain::OPEN)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(city, overdue, reopened, rebounds)| (city, CityCounts { overdue, reopened, rebounds }))
        .collect())
}

/// The highest step each city has reached.
pub async fn current_ranks(conn: &mut PgConnection) -> sqlx::Result<HashMap<String, i32>> {
    let rows: Vec<(String, i32)> =
        sqlx::query_as("SELECT city_code, max(rank) FROM verification.escalations GROUP BY city_code")
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().collect())
}

pub async fn record_escalation(
    conn: &mut PgConnection,
    city: &str,
    rank: i32,
    level: &str,
    counts: CityCounts,
    at: OffsetDateTime,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO verification.escalations (city_code, rank, level, overdue, reopened, rebounds, escalated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (city_code, rank) DO NOTHING",
    )
    .bind(city)
    .bind(rank)
    .bind(level)
    .bind(counts.overdue)
    .bind(counts.reopened)
    .bind(counts.rebounds)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Escalation {
    pub city_code: String,
    pub rank: i32,
    pub level: String,
    pub overdue: i64,
    pub reopened: i64,
    pub rebounds: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub escalated_at: OffsetDateTime,
}

pub async fn escalations(conn: &mut PgConnection, city: Option<&str>) -> sqlx::Result<Vec<Escalation>> {
    sqlx::query_as(
        "SELECT city_code, rank, level, overdue, reopened, rebounds, escalated_at FROM verification.escalations
         WHERE ($1::text IS NULL OR city_code = $1) ORDER BY city_code, rank",
    )
    .bind(city)
    .fetch_all(conn)
    .await
}

pub async fn insert_progress(
    conn: &mut PgConnection,
    problem_id: Uuid,
    p: &ProgressRequest,
    by: &str,
    at: OffsetDateTime,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO verification.progress (id, problem_id, stage, percent_done, note, reported_by, reported_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(problem_id)
    .bind(&p.stage)
    .bind(p.percent_done.map(i32::from))
    .bind(&p.note)
    .bind(by)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(id)
}

/// Rounds and their dates (each round at most once).
pub async fn upsert_rounds(conn: &mut PgConnection, rounds: &[(&str, Date, Date)]) -> sqlx::Result<()> {
    let ids: Vec<&str> = rounds.iter().map(|r| r.0).collect();
    let starts: Vec<Date> = rounds.iter().map(|r| r.1).collect();
    let ends: Vec<Date> = rounds.iter().map(|r| r.2).collect();
    sqlx::query(
        "INSERT INTO verification.rounds (id, starts_on, ends_on) SELECT * FROM unnest($1::text[], $2::date[], $3::date[])
         ON CONFLICT (id) DO UPDATE SET starts_on = EXCLUDED.starts_on, ends_on = EXCLUDED.ends_on",
    )
    .bind(&ids)
    .bind(&starts)
    .bind(&ends)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Round {
    pub id: String,
    pub starts_on: Date,
    pub ends_on: Date,
    pub swept_at: Option<OffsetDateTime>,
}

/// Every round, by start date.
pub async fn rounds(conn: &mut PgConnection) -> sqlx::Result<Vec<Round>> {
    sqlx::query_as("SELECT id, starts_on, ends_on, swept_at FROM verification.rounds ORDER BY starts_on, id")
        .fetch_all(conn)
        .await
}

pub async fn mark_swept(conn: &mut PgConnection, round: &str, at: OffsetDateTime) -> sqlx::Result<()> {
    sqlx::query("UPDATE verification.rounds SET swept_at = $2 WHERE id = $1")
        .bind(round)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Closed problems of the given rounds.
pub async fn closed_of_rounds(conn: &mut PgConnection, rounds: &[String]) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("SELECT problem_id FROM verification.problems WHERE status = 'closed' AND round_id = ANY($1)")
        .bind(rounds)
        .fetch_all(conn)
        .await
}

pub async fn insert_recheck(
    conn: &mut PgConnection,
    problem_id: Uuid,
    after_round: &str,
    at: OffsetDateTime,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO verification.rechecks (id, problem_id, after_round, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (problem_id, after_round) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(problem_id)
    .bind(after_round)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Recheck {
    pub id: Uuid,
    pub problem_id: Uuid,
    pub after_round: String,
    pub result: Option<String>,
    #[serde(skip)]
    pub city_code: String,
    #[serde(skip)]
    pub finder_team: Option<String>,
}

pub async fn open_rechecks(conn: &mut PgConnection) -> sqlx::Result<Vec<Recheck>> {
    sqlx::query_as(
        "SELECT r.id, r.problem_id, r.after_round, r.result, p.city_code, p.finder_team
         FROM verification.rechecks r JOIN verification.problems p USING (problem_id)
         WHERE r.result IS NULL ORDER BY r.created_at",
    )
    .fetch_all(conn)
    .await
}

pub async fn recheck_for_update(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Recheck>> {
    sqlx::query_as(
        "SELECT r.id, r.problem_id, r.after_round, r.result, p.city_code, p.finder_team
         FROM verification.rechecks r JOIN verification.problems p USING (problem_id)
         WHERE r.id = $1 FOR UPDATE OF r",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Records a re-check's verdict, with the new entry it made when it found a rebound.
pub async fn record_recheck(
    conn: &mut PgConnection,
    id: Uuid,
    v: &VerdictRequest,
    at: OffsetDateTime,
    rebound_id: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE verification.rechecks SET result = $2, team = $3, note = $4, verified_at = $5, rebound_id = $6
         WHERE id = $1",
    )
    .bind(id)
    .bind(&v.result)
    .bind(&v.team)
    .bind(&v.note)
    .bind(at)
    .bind(rebound_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Problems whose rectification waits for a verdict.
pub async fn awaiting_verdict(conn: &mut PgConnection) -> sqlx::Result<Vec<Problem>> {
    sqlx::query_as(
        "SELECT problem_id, round_id, city_code, county_code, category, finder_team, jurisdiction, handover_no, deadline, status,
                rectified_on, overdue_since
         FROM verification.problems WHERE status = 'rectification_reported' ORDER BY updated_at",
    )
    .fetch_all(conn)
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

/// Enters a problem of last year's ledger as closed, with a re-check to visit it again; false
/// when it was imported before.
pub async fn import_legacy(
    conn: &mut PgConnection,
    round: &str,
    p: &LegacyProblem,
    at: OffsetDateTime,
) -> sqlx::Result<bool> {
    let jurisdiction = p.county_code.clone().unwrap_or_else(|| p.city_code.clone());
    let done = sqlx::query(
        "INSERT INTO verification.problems (problem_id, round_id, city_code, county_code, category, jurisdiction,
                                            status, legacy, site_name, closed_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'closed', true, $7, $8) ON CONFLICT (problem_id) DO NOTHING",
    )
    .bind(p.id)
    .bind(round)
    .bind(&p.city_code)
    .bind(&p.county_code)
    .bind(&p.category)
    .bind(&jurisdiction)
    .bind(&p.site_name)
    .bind(p.closed_on.midnight().assume_offset(shared::clock::SHANGHAI))
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    insert_recheck(conn, p.id, round, at).await
}

/// A withdrawn or merged report leaves the work: no rectification, no deadline, no verdict.
pub async fn take_out(conn: &mut PgConnection, problems: &[Uuid], status: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE verification.problems SET status = $2, updated_at = now() WHERE problem_id = ANY($1) AND status <> 'closed'",
    )
    .bind(problems)
    .bind(status)
    .execute(conn)
    .await?;
    Ok(())
}

/// Problems, locked for the rest of the transaction in one order (a batch's, so two batches
/// never wait on each other crosswise); those verification does not know are left out.
pub async fn problems_for_update(conn: &mut PgConnection, problem_ids: &[Uuid]) -> sqlx::Result<Vec<Problem>> {
    sqlx::query_as(
        "SELECT problem_id, round_id, city_code, county_code, category, finder_team, jurisdiction, handover_no, deadline, status,
                rectified_on, overdue_since
         FROM verification.problems WHERE problem_id = ANY($1) ORDER BY problem_id FOR UPDATE",
    )
    .bind(problem_ids)
    .fetch_all(conn)
    .await
}

/// Rectifications stored under any of `ids`: id, problem and the jurisdiction that reported it.
pub async fn rectifications_by_id(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<(Uuid, Uuid, String)>> {
    sqlx::query_as("SELECT id, problem_id, reported_by FROM verification.rectifications WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(conn)
        .await
}

/// Verdicts stored under any of `ids`: id, problem and the verifying team.
pub async fn verdicts_by_id(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<(Uuid, Uuid, String)>> {
    sqlx::query_as("SELECT id, problem_id, team FROM verification.verdicts WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(conn)
        .await
}

/// Records a batch's rectifications, each under its id, in one statement; answers how many
/// were recorded (fewer when a concurrent request took one of the ids first).
pub async fn insert_rectifications(
    conn: &mut PgConnection,
    rows: &[(Uuid, &RectificationItem)],
    reported_by: &str,
    at: OffsetDateTime,
) -> sqlx::Result<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let problems: Vec<Uuid> = rows.iter().map(|r| r.1.problem_id).collect();
    let measures: Vec<&str> = rows.iter().map(|r| r.1.measures.as_str()).collect();
    let evidence: Vec<serde_json::Value> =
        rows.iter().map(|r| serde_json::to_value(&r.1.evidence).expect("evidence serialises")).collect();
    let completed: Vec<OffsetDateTime> = rows.iter().map(|r| r.1.completed_at).collect();
    let done = sqlx::query(
        "INSERT INTO verification.rectifications (id, problem_id, measures, evidence, completed_at, reported_by, reported_at)
         SELECT id, problem_id, measures, evidence, completed_at, $6, $7
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::timestamptz[])
              AS r(id, problem_id, measures, evidence, completed_at)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&ids)
    .bind(&problems)
    .bind(&measures)
    .bind(&evidence)
    .bind(&completed)
    .bind(reported_by)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() as usize)
}

/// Records a batch's verdicts, each under its id, in one statement; answers how many were
/// recorded (fewer when a concurrent request took one of the ids first).
pub async fn insert_verdicts(
    conn: &mut PgConnection,
    rows: &[(Uuid, &VerdictItem)],
    at: OffsetDateTime,
) -> sqlx::Result<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let problems: Vec<Uuid> = rows.iter().map(|r| r.1.problem_id).collect();
    let results: Vec<&str> = rows.iter().map(|r| r.1.result.as_str()).collect();
    let teams: Vec<&str> = rows.iter().map(|r| r.1.team.as_str()).collect();
    let notes: Vec<Option<&str>> = rows.iter().map(|r| r.1.note.as_deref()).collect();
    let evidence: Vec<serde_json::Value> =
        rows.iter().map(|r| serde_json::to_value(&r.1.evidence).expect("evidence serialises")).collect();
    let done = sqlx::query(
        "INSERT INTO verification.verdicts (id, problem_id, result, team, note, evidence, given_at)
         SELECT id, problem_id, result, team, note, evidence, $7
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::jsonb[])
              AS v(id, problem_id, result, team, note, evidence)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&ids)
    .bind(&problems)
    .bind(&results)
    .bind(&teams)
    .bind(&notes)
    .bind(&evidence)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() as usize)
}

/// [`set_status`] for many problems in one statement (each at most once). The caller advances
/// their order, one call per kind of event.
pub async fn set_statuses(conn: &mut PgConnection, changes: &[(Uuid, &str)], at: OffsetDateTime) -> sqlx::Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = changes.iter().map(|c| c.0).collect();
    let statuses: Vec<&str> = changes.iter().map(|c| c.1).collect();
    // Days are counted in Asia/Shanghai.
    let day = at.to_offset(shared::clock::SHANGHAI).date();
    sqlx::query(
        "UPDATE verification.problems p SET status = c.status,
                reopened_count = p.reopened_count + CASE WHEN c.status = 'reopened' THEN 1 ELSE 0 END,
                rectified_on = CASE WHEN c.status = 'rectification_reported' AND p.status <> c.status THEN $4
                                    ELSE p.rectified_on END,
                closed_at = CASE WHEN c.status = 'closed' THEN $3 ELSE p.closed_at END, updated_at = now()
         FROM unnest($1::uuid[], $2::text[]) AS c(id, status)
         WHERE p.problem_id = c.id",
    )
    .bind(&ids)
    .bind(&statuses)
    .bind(at)
    .bind(day)
    .execute(conn)
    .await?;
    Ok(())
}

/// A problem's rectification reports, newest first: what the verifier checks on site.
pub async fn rectifications_of(conn: &mut PgConnection, problem_id: Uuid) -> sqlx::Result<Vec<serde_json::Value>> {
    sqlx::query_scalar(
        "SELECT jsonb_build_object('id', id, 'measures', measures, 'evidence', evidence,
                                   'completed_at', completed_at, 'reported_at', reported_at)
         FROM verification.rectifications WHERE problem_id = $1 ORDER BY reported_at DESC",
    )
    .bind(problem_id)
    .fetch_all(conn)
    .await
}

// Summonses (约谈) and special inspections (专项督察): the campaign office's acts on a city.

pub async fn insert_summons(
    conn: &mut PgConnection,
    id: Uuid,
    r: &crate::domain::ScheduleSummons,
    officials: &serde_json::Value,
    at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO verification.summonses (id, city_code, officials, scheduled_on, place, reasons, problems, note, scheduled_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(&r.city_code)
    .bind(officials)
    .bind(r.date)
    .bind(&r.place)
    .bind(&r.reasons)
    .bind(&r.problems)
    .bind(&r.note)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Summons {
    pub id: Uuid,
    pub city_code: String,
    pub officials: serde_json::Value,
    pub place: String,
    pub reasons: String,
    pub problems: Vec<Uuid>,
    pub held_on: Option<Date>,
}

pub async fn summons_for_update(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Summons>> {
    sqlx::query_as(
        "SELECT id, city_code, officials, place, reasons, problems, held_on FROM verification.summonses
         WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Records that the summons was held, with its commitments as `(id, text, follow_up_on)`.
pub async fn summons_held(
    conn: &mut PgConnection,
    summons: &Summons,
    held_on: Date,
    note: Option<&str>,
    commitments: &[(Uuid, &str, Date)],
    at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE verification.summonses SET held_on = $2, held_note = $3, held_at = $4 WHERE id = $1")
        .bind(summons.id)
        .bind(held_on)
        .bind(note)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    let ids: Vec<Uuid> = commitments.iter().map(|c| c.0).collect();
    let texts: Vec<&str> = commitments.iter().map(|c| c.1).collect();
    let dates: Vec<Date> = commitments.iter().map(|c| c.2).collect();
    sqlx::query(
        "INSERT INTO verification.commitments (id, summons_id, city_code, position, text, follow_up_on)
         SELECT id, $4, $5, ord::integer, text, follow_up_on
         FROM unnest($1::uuid[], $2::text[], $3::date[]) WITH ORDINALITY AS c(id, text, follow_up_on, ord)",
    )
    .bind(&ids)
    .bind(&texts)
    .bind(&dates)
    .bind(summons.id)
    .bind(&summons.city_code)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CommitmentRow {
    pub id: Uuid,
    pub summons_id: Uuid,
    pub city_code: String,
    pub result: Option<String>,
}

pub async fn commitment_for_update(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<CommitmentRow>> {
    sqlx::query_as("SELECT id, summons_id, city_code, result FROM verification.commitments WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn commitment_verified(
    conn: &mut PgConnection,
    id: Uuid,
    request: &crate::domain::CommitmentVerdictRequest,
    at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE verification.commitments SET result = $2, team = $3, note = $4, verified_at = $5 WHERE id = $1",
    )
    .bind(id)
    .bind(&request.result)
    .bind(&request.team)
    .bind(&request.note)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Every commitment of a held summons: its city, verdict (if any) and follow-up date.
pub async fn commitment_standing(conn: &mut PgConnection) -> sqlx::Result<Vec<(String, Option<String>, Date)>> {
    sqlx::query_as("SELECT city_code, result, follow_up_on FROM verification.commitments").fetch_all(conn).await
}

/// Summonses with their commitments, for the campaign office (notes included).
pub async fn summonses(
    conn: &mut PgConnection,
    city: Option<&str>,
    id: Option<Uuid>,
) -> sqlx::Result<Vec<serde_json::Value>> {
    let rows: Vec<(serde_json::Value,)> = sqlx::query_as(
        "SELECT jsonb_build_object(
                'id', s.id, 'city_code', s.city_code, 'officials', s.officials, 'date', s.scheduled_on,
                'place', s.place, 'reasons', s.reasons, 'problems', to_jsonb(s.problems), 'note', s.note,
                'status', CASE WHEN s.held_on IS NULL THEN 'scheduled' ELSE 'held' END,
                'held_on', s.held_on, 'held_note', s.held_note,
                'commitments', coalesce((
                    SELECT jsonb_agg(jsonb_build_object(
                        'id', c.id, 'text', c.text, 'follow_up_on', c.follow_up_on, 'result', c.result,
                        'team', c.team, 'note', c.note, 'verified_at', c.verified_at) ORDER BY c.position)
                    FROM verification.commitments c WHERE c.summons_id = s.id), '[]'::jsonb))
         FROM verification.summonses s
         WHERE ($1::text IS NULL OR s.city_code = $1) AND ($2::uuid IS NULL OR s.id = $2)
         ORDER BY s.scheduled_at, s.id",
    )
    .bind(city)
    .bind(id)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

pub async fn insert_special_inspection(
    conn: &mut PgConnection,
    id: Uuid,
    r: &crate::domain::OpenSpecialInspection,
    scope: &serde_json::Value,
    at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO verification.special_inspections (id, city_code, scope, teams, note, opened_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(&r.city_code)
    .bind(scope)
    .bind(&r.teams)
    .bind(&r.note)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SpecialInspection {
    pub id: Uuid,
    pub city_code: String,
    pub scope: serde_json::Value,
    pub teams: Vec<String>,
    pub opened_at: OffsetDateTime,
    pub concluded_on: Option<Date>,
}

pub async fn special_inspection_for_update(
    conn: &mut PgConnection,
    id: Uuid,
) -> sqlx::Result<Option<SpecialInspection>> {
    sqlx::query_as(
        "SELECT id, city_code, scope, teams, opened_at, concluded_on FROM verification.special_inspections
         WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Adds findings as `(problem, kind)`; a problem already among the case's findings stays as it was.
pub async fn add_findings(
    conn: &mut PgConnection,
    case_id: Uuid,
    findings: &[(Uuid, &str)],
    at: OffsetDateTime,
) -> sqlx::Result<()> {
    let ids: Vec<Uuid> = findings.iter().map(|f| f.0).collect();
    let kinds: Vec<&str> = findings.iter().map(|f| f.1).collect();
    sqlx::query(
        "INSERT INTO verification.special_inspection_findings (case_id, problem_id, kind, added_at)
         SELECT $3, problem_id, kind, $4 FROM unnest($1::uuid[], $2::text[]) AS f(problem_id, kind)
         ON CONFLICT (case_id, problem_id) DO NOTHING",
    )
    .bind(&ids)
    .bind(&kinds)
    .bind(case_id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A case's findings as `(problem, kind)`, in the order they were added.
pub async fn findings(conn: &mut PgConnection, case_id: Uuid) -> sqlx::Result<Vec<(Uuid, String)>> {
    sqlx::query_as(
        "SELECT problem_id, kind FROM verification.special_inspection_findings WHERE case_id = $1
         ORDER BY added_at, problem_id",
    )
    .bind(case_id)
    .fetch_all(conn)
    .await
}

pub async fn conclude_special_inspection(
    conn: &mut PgConnection,
    id: Uuid,
    conclusion: &str,
    concluded_on: Date,
    at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE verification.special_inspections SET conclusion = $2, concluded_on = $3, concluded_at = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(conclusion)
    .bind(concluded_on)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Special inspections with their findings, for the campaign office.
pub async fn special_inspections(
    conn: &mut PgConnection,
    city: Option<&str>,
    id: Option<Uuid>,
) -> sqlx::Result<Vec<serde_json::Value>> {
    let rows: Vec<(serde_json::Value,)> = sqlx::query_as(
        "SELECT jsonb_build_object(
                'id', i.id, 'city_code', i.city_code, 'scope', i.scope, 'teams', to_jsonb(i.teams), 'note', i.note,
                'opened_at', i.opened_at, 'status', CASE WHEN i.concluded_on IS NULL THEN 'open' ELSE 'concluded' END,
                'conclusion', i.conclusion, 'concluded_on', i.concluded_on,
                'findings', coalesce((
                    SELECT jsonb_agg(jsonb_build_object('problem_id', f.problem_id, 'kind', f.kind, 'status', p.status)
                                     ORDER BY f.added_at, f.problem_id)
                    FROM verification.special_inspection_findings f
                    JOIN verification.problems p ON p.problem_id = f.problem_id
                    WHERE f.case_id = i.id), '[]'::jsonb))
         FROM verification.special_inspections i
         WHERE ($1::text IS NULL OR i.city_code = $1) AND ($2::uuid IS NULL OR i.id = $2)
         ORDER BY i.opened_at, i.id",
    )
    .bind(city)
    .bind(id)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}
