//! Publication's SQL, all in the `publication` schema.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::PgConnection;
use sqlx::types::Json;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use shared::events::{ProblemAssigned, ProblemExtended, ProblemRerouted, RoundConfigured};

use crate::frontier::{Frontier, NodeId};
use crate::merkle::{self, Hash};
use crate::public_log::Checkpoint;
use crate::redaction::{PublicEvidence, ReportedFacts};

// ---------------------------------------------------------------------------------------------
// Applying events

/// Site checks of one round in one city: how many, the problems among them that repeated an
/// open entry, and how many were emergency-plan checks.
#[derive(Debug, Default, Clone, Copy)]
pub struct CheckCounts {
    pub checks: i64,
    pub duplicates: i64,
    pub emergency_checks: i64,
}

/// Adds site checks to the counts per round and city, each (round, city) at most once.
pub async fn count_inspections(conn: &mut PgConnection, counts: &[(String, String, CheckCounts)]) -> sqlx::Result<()> {
    let rounds: Vec<&str> = counts.iter().map(|c| c.0.as_str()).collect();
    let cities: Vec<&str> = counts.iter().map(|c| c.1.as_str()).collect();
    let checks: Vec<i64> = counts.iter().map(|c| c.2.checks).collect();
    let duplicates: Vec<i64> = counts.iter().map(|c| c.2.duplicates).collect();
    let emergency: Vec<i64> = counts.iter().map(|c| c.2.emergency_checks).collect();
    sqlx::query(
        "INSERT INTO publication.inspection_counts (round_id, city_code, checks, duplicates, emergency_checks)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[])
         ON CONFLICT (round_id, city_code) DO UPDATE
         SET checks = publication.inspection_counts.checks + EXCLUDED.checks,
             duplicates = publication.inspection_counts.duplicates + EXCLUDED.duplicates,
             emergency_checks = publication.inspection_counts.emergency_checks + EXCLUDED.emergency_checks,
             updated_at = now()",
    )
    .bind(&rounds)
    .bind(&cities)
    .bind(&checks)
    .bind(&duplicates)
    .bind(&emergency)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn round_configured(conn: &mut PgConnection, r: &RoundConfigured) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO publication.rounds (round_id, starts_on, ends_on, kind) VALUES ($1, $2, $3, $4)
         ON CONFLICT (round_id) DO UPDATE SET starts_on = $2, ends_on = $3, kind = $4",
    )
    .bind(&r.round)
    .bind(r.starts_on)
    .bind(r.ends_on)
    .bind(&r.kind)
    .execute(conn)
    .await?;
    Ok(())
}

/// Teams are counted per round with the people they sent (person-times), never shown. A team
/// assigned again to the same round keeps the members it said last.
pub async fn team_assigned(conn: &mut PgConnection, round: &str, team: &str, members: u32) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO publication.round_teams (round_id, team, members) VALUES ($1, $2, $3)
         ON CONFLICT (round_id, team) DO UPDATE SET members = $3",
    )
    .bind(round)
    .bind(team)
    .bind(members as i32)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn city_escalated(
    conn: &mut PgConnection,
    event_id: Uuid,
    city: &str,
    level: &str,
    at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO publication.escalations (source_event_id, city_code, level, escalated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
    )
    .bind(event_id)
    .bind(city)
    .bind(level)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Intake's reports (each problem at most once), as the disclosure policy keeps them.
pub async fn problems_reported(conn: &mut PgConnection, reported: &[ReportedFacts]) -> sqlx::Result<()> {
    let text = |f: &dyn Fn(&ReportedFacts) -> String| reported.iter().map(f).collect::<Vec<_>>();
    let ids: Vec<Uuid> = reported.iter().map(|p| p.problem_id).collect();
    let counties: Vec<Option<String>> = reported.iter().map(|p| p.county_code.clone()).collect();
    let lats: Vec<f64> = reported.iter().map(|p| p.lat).collect();
    let lons: Vec<f64> = reported.iter().map(|p| p.lon).collect();
    let found: Vec<OffsetDateTime> = reported.iter().map(|p| p.found_at).collect();
    let rebounds: Vec<Option<Uuid>> = reported.iter().map(|p| p.rebound_of).collect();
    let evidence: Vec<serde_json::Value> =
        reported.iter().map(|p| serde_json::to_value(&p.evidence).expect("evidence serialises")).collect();
    sqlx::query(
        "INSERT INTO publication.problems AS p (problem_id, round_id, category, severity, city_code, county_code,
                                                site_name, site_lat, site_lon, description, found_at, rebound_of, evidence)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                              $8::float8[], $9::float8[], $10::text[], $11::timestamptz[], $12::uuid[], $13::jsonb[])
         ON CONFLICT (problem_id) DO UPDATE SET round_id = EXCLUDED.round_id, category = EXCLUDED.category,
             severity = EXCLUDED.severity, city_code = coalesce(p.city_code, EXCLUDED.city_code),
             county_code = EXCLUDED.county_code, site_name = EXCLUDED.site_name, site_lat = EXCLUDED.site_lat,
             site_lon = EXCLUDED.site_lon, description = EXCLUDED.description, found_at = EXCLUDED.found_at,
             rebound_of = EXCLUDED.rebound_of, evidence = EXCLUDED.evidence",
    )
    .bind(&ids)
    .bind(text(&|p| p.round.clone()))
    .bind(text(&|p| p.category.clone()))
    .bind(text(&|p| p.severity.clone()))
    .bind(text(&|p| p.city_code.clone()))
    .bind(&counties)
    .bind(text(&|p| p.site_name.clone()))
    .bind(&lats)
    .bind(&lons)
    .bind(text(&|p| p.description.clone()))
    .bind(&found)
    .bind(&rebounds)
    .bind(&evidence)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deadlines set by words at their times (each problem at most once): a deadline holds unless a
/// later word set another (assignment and verification both set deadlines, and their events
/// arrive in any order).
async fn set_deadlines(conn: &mut PgConnection, deadlines: &[(Uuid, Date, OffsetDateTime)]) -> sqlx::Result<()> {
    if deadlines.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = deadlines.iter().map(|d| d.0).collect();
    let dates: Vec<Date> = deadlines.iter().map(|d| d.1).collect();
    let at: Vec<OffsetDateTime> = deadlines.iter().map(|d| d.2).collect();
    sqlx::query(
        "INSERT INTO publication.problems AS p (problem_id, deadline, deadline_at)
         SELECT * FROM unnest($1::uuid[], $2::date[], $3::timestamptz[])
         ON CONFLICT (problem_id) DO UPDATE SET
             deadline = CASE WHEN p.deadline_at IS NULL OR EXCLUDED.deadline_at >= p.deadline_at
                             THEN EXCLUDED.deadline ELSE p.deadline END,
             deadline_at = greatest(p.deadline_at, EXCLUDED.deadline_at)",
    )
    .bind(&ids)
    .bind(&dates)
    .bind(&at)
    .execute(conn)
    .await?;
    Ok(())
}

async fn set_deadline(
    conn: &mut PgConnection,
    problem_id: Uuid,
    deadline: Date,
    at: OffsetDateTime,
) -> sqlx::Result<()> {
    set_deadlines(conn, &[(problem_id, deadline, at)]).await
}

/// Hand-overs (each problem at most once): the date is a fact whatever the order; where the
/// problem stands (sheet, jurisdiction) is assignment's latest word.
pub async fn problems_assigned(conn: &mut PgConnection, assigned: &[&ProblemAssigned]) -> sqlx::Result<()> {
    let text = |f: &dyn Fn(&ProblemAssigned) -> String| assigned.iter().map(|p| f(p)).collect::<Vec<_>>();
    let ids: Vec<Uuid> = assigned.iter().map(|p| p.problem_id).collect();
    let at: Vec<OffsetDateTime> = assigned.iter().map(|p| p.assigned_at).collect();
    let seqs: Vec<i64> = assigned.iter().map(|p| p.problem_seq).collect();
    sqlx::query(
        "INSERT INTO publication.problems AS p (problem_id, city_code, handover_no, jurisdiction, handed_over_at,
                                                assignment_seq)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::bigint[])
         ON CONFLICT (problem_id) DO UPDATE SET
             handed_over_at = least(p.handed_over_at, EXCLUDED.handed_over_at),
             handover_no = CASE WHEN p.assignment_seq < EXCLUDED.assignment_seq OR p.handover_no IS NULL
                                THEN EXCLUDED.handover_no ELSE p.handover_no END,
             jurisdiction = CASE WHEN p.assignment_seq < EXCLUDED.assignment_seq OR p.jurisdiction IS NULL
                                 THEN EXCLUDED.jurisdiction ELSE p.jurisdiction END,
             city_code = CASE WHEN p.assignment_seq < EXCLUDED.assignment_seq THEN EXCLUDED.city_code ELSE p.city_code END,
             assignment_seq = greatest(p.assignment_seq, EXCLUDED.assignment_seq)",
    )
    .bind(&ids)
    .bind(text(&|p| p.city_code.clone()))
    .bind(text(&|p| p.handover_no.clone()))
    .bind(text(&|p| p.jurisdiction.clone()))
    .bind(&at)
    .bind(&seqs)
    .execute(&mut *conn)
    .await?;
    let deadlines: Vec<_> = assigned.iter().map(|p| (p.problem_id, p.deadline, p.assigned_at)).collect();
    set_deadlines(conn, &deadlines).await
}

/// Acknowledged sheets' problems: (problem, assignment's counter, when), each at most once.
pub async fn problems_acknowledged(conn: &mut PgConnection, acks: &[(Uuid, i64, OffsetDateTime)]) -> sqlx::Result<()> {
    let ids: Vec<Uuid> = acks.iter().map(|a| a.0).collect();
    let seqs: Vec<i64> = acks.iter().map(|a| a.1).collect();
    let at: Vec<OffsetDateTime> = acks.iter().map(|a| a.2).collect();
    sqlx::query(
        "INSERT INTO publication.problems AS p (problem_id, assignment_seq, acknowledged_at)
         SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[])
         ON CONFLICT (problem_id) DO UPDATE SET acknowledged_at = least(p.acknowledged_at, EXCLUDED.acknowledged_at),
             assignment_seq = greatest(p.assignment_seq, EXCLUDED.assignment_seq)",
    )
    .bind(&ids)
    .bind(&seqs)
    .bind(&at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn problem_rerouted(conn: &mut PgConnection, r: &ProblemRerouted) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO publication.problems (problem_id, city_code, jurisdiction, rerouted_count, assignment_seq)
         VALUES ($1, $2, $3, 1, $4)
         ON CONFLICT (problem_id) DO UPDATE SET rerouted_count = publication.problems.rerouted_count + 1,
             city_code = CASE WHEN publication.problems.assignment_seq < $4 THEN $2 ELSE publication.problems.city_code END,
             jurisdiction = CASE WHEN publication.problems.assignment_seq < $4 THEN $3 ELSE publication.problems.jurisdiction END,
             assignment_seq = greatest(publication.problems.assignment_seq, $4)",
    )
    .bind(r.problem_id)
    .bind(&r.city_code)
    .bind(&r.to_jurisdiction)
    .bind(r.problem_seq)
    .execute(&mut *conn)
    .await?;
    set_deadline(conn, r.problem_id, r.deadline, r.rerouted_at).await
}

pub async fn problem_extended(conn: &mut PgConnection, e: &ProblemExtended) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO publication.problems (problem_id, extended_count) VALUES ($1, 1)
         ON CONFLICT (problem_id) DO UPDATE SET extended_count = publication.problems.extended_count + 1",
    )
    .bind(e.problem_id)
    .execute(&mut *conn)
    .await?;
    set_deadline(conn, e.problem_id, e.deadline, e.granted_at).await
}

/// Problems past their deadlines: (problem, first overdue day), each at most once.
pub async fn problems_overdue(conn: &mut PgConnection, overdue: &[(Uuid, Date)]) -> sqlx::Result<()> {
    let (ids, days): (Vec<Uuid>, Vec<Date>) = overdue.iter().copied().unzip();
    sqlx::query(
        "INSERT INTO publication.problems AS p (problem_id, overdue_on) SELECT * FROM unnest($1::uuid[], $2::date[])
         ON CONFLICT (problem_id) DO UPDATE SET overdue_on = least(p.overdue_on, EXCLUDED.overdue_on)",
    )
    .bind(&ids)
    .bind(&days)
    .execute(conn)
    .await?;
    Ok(())
}

/// The furthest stage of a long rectification reported so far.
pub async fn rectification_progressed(
    conn: &mut PgConnection,
    problem_id: Uuid,
    stage: &str,
    percent: Option<u8>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO publication.problems (problem_id, progress_stage, progress_percent) VALUES ($1, $2, $3)
         ON CONFLICT (problem_id) DO UPDATE SET
             progress_stage = CASE WHEN coalesce($3, 0) >= coalesce(publication.problems.progress_percent, 0)
                                   THEN $2 ELSE publication.problems.progress_stage END,
             progress_percent = greatest(publication.problems.progress_percent, $3)",
    )
    .bind(problem_id)
    .bind(stage)
    .bind(percent.map(i32::from))
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

/// Verification's words (each problem at most once): the status, unless a later word was
/// applied, and the dates that go with it, which are facts whatever the order.
pub async fn verification_words(conn: &mut PgConnection, words: &[VerificationWord]) -> sqlx::Result<()> {
    let ids: Vec<Uuid> = words.iter().map(|w| w.problem_id).collect();
    let statuses: Vec<&str> = words.iter().map(|w| w.status).collect();
    let seqs: Vec<i64> = words.iter().map(|w| w.seq).collect();
    let at: Vec<OffsetDateTime> = words.iter().map(|w| w.at).collect();
    sqlx::query(
        "INSERT INTO publication.problems AS p (problem_id, verification_status, verification_seq)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[])
         ON CONFLICT (problem_id) DO UPDATE SET verification_status = EXCLUDED.verification_status,
             verification_seq = EXCLUDED.verification_seq
         WHERE p.verification_seq < EXCLUDED.verification_seq",
    )
    .bind(&ids)
    .bind(&statuses)
    .bind(&seqs)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE publication.problems p SET
             rectification_reported_at = CASE WHEN w.status = 'rectification_reported'
                                              THEN greatest(p.rectification_reported_at, w.at)
                                              ELSE p.rectification_reported_at END,
             verified_at = CASE WHEN w.status = 'rectification_reported' THEN p.verified_at
                                ELSE greatest(p.verified_at, w.at) END,
             closed_at = CASE WHEN w.status = 'closed' THEN w.at ELSE p.closed_at END,
             reopened_count = p.reopened_count + CASE WHEN w.status = 'reopened' THEN 1 ELSE 0 END
         FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS w(id, status, at)
         WHERE p.problem_id = w.id",
    )
    .bind(&ids)
    .bind(&statuses)
    .bind(&at)
    .execute(&mut *conn)
    .await?;
    let deadlines: Vec<_> = words.iter().filter_map(|w| Some((w.problem_id, w.new_deadline?, w.at))).collect();
    set_deadlines(conn, &deadlines).await
}

/// One line of a problem's public history, from an event or an act of the campaign office.
pub struct HistoryLine<'a> {
    pub problem_id: Uuid,
    pub source_id: Uuid,
    pub at: OffsetDateTime,
    /// `step` (the problem moved) or `note` (something happened to it).
    pub kind: &'a str,
    pub status: &'a str,
    pub what: String,
}

/// Adds lines to problems' public histories (a line's source is its key: a repeat adds nothing).
pub async fn add_history(conn: &mut PgConnection, lines: &[HistoryLine<'_>]) -> sqlx::Result<()> {
    let ids: Vec<Uuid> = lines.iter().map(|h| h.problem_id).collect();
    let sources: Vec<Uuid> = lines.iter().map(|h| h.source_id).collect();
    let at: Vec<OffsetDateTime> = lines.iter().map(|h| h.at).collect();
    let kinds: Vec<&str> = lines.iter().map(|h| h.kind).collect();
    let statuses: Vec<&str> = lines.iter().map(|h| h.status).collect();
    let whats: Vec<&str> = lines.iter().map(|h| h.what.as_str()).collect();
    sqlx::query(
        "INSERT INTO publication.history (problem_id, source_event_id, at, kind, status, what)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], $5::text[], $6::text[])
         ON CONFLICT (source_event_id) DO NOTHING",
    )
    .bind(&ids)
    .bind(&sources)
    .bind(&at)
    .bind(&kinds)
    .bind(&statuses)
    .bind(&whats)
    .execute(conn)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Waiting for the log writer

/// Marks problems as waiting for the log writer (`writer.rs`): their public state may have
/// changed, or they have history to log. One statement for any number of problems; marking a
/// problem again only moves it back in the queue.
pub async fn mark_pending(conn: &mut PgConnection, problem_ids: &[Uuid]) -> sqlx::Result<()> {
    if problem_ids.is_empty() {
        return Ok(());
    }
    // In id order, so that two transactions marking the same problems lock them in one order.
    sqlx::query(
        "INSERT INTO publication.pending (problem_id)
         SELECT DISTINCT id FROM unnest($1::uuid[]) AS t(id) ORDER BY id
         ON CONFLICT (problem_id) DO UPDATE SET mark = nextval('publication.pending_mark'), due_at = '-infinity'",
    )
    .bind(problem_ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks every problem handed over but not public yet, for the writer to look at again: the
/// disclosure policy may have changed since it last did (at start).
pub async fn mark_unpublished_pending(conn: &mut PgConnection) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "INSERT INTO publication.pending (problem_id)
         SELECT problem_id FROM publication.problems
         WHERE NOT public AND handed_over_at IS NOT NULL AND category IS NOT NULL ORDER BY problem_id
         ON CONFLICT (problem_id) DO UPDATE SET due_at = '-infinity'",
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Whether the writer has anything to do: problems due, and the log's size against its latest
/// checkpoint (size and when it was made). Read without locks, to keep an idle poll cheap.
pub struct Outlook {
    pub due: bool,
    /// None: the frontier is not built yet.
    pub size: Option<i64>,
    pub checkpoint: Option<(i64, OffsetDateTime)>,
}

pub async fn writer_outlook(conn: &mut PgConnection, now: OffsetDateTime) -> sqlx::Result<Outlook> {
    let (due, size, checkpoint_size, checkpoint_at): (bool, Option<i64>, Option<i64>, Option<OffsetDateTime>) =
        sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM publication.pending WHERE due_at <= $1),
                    (SELECT size FROM publication.log_state), c.tree_size, c.made_at
             FROM (SELECT 1) AS one
             LEFT JOIN LATERAL (SELECT tree_size, made_at FROM publication.checkpoints ORDER BY tree_size DESC LIMIT 1) AS c
                 ON true",
        )
        .bind(now)
        .fetch_one(conn)
        .await?;
    Ok(Outlook { due, size, checkpoint: checkpoint_size.zip(checkpoint_at) })
}

/// Whether the problem waits for the writer and is due.
pub async fn is_pending_due(conn: &mut PgConnection, problem_id: Uuid, now: OffsetDateTime) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM publication.pending WHERE problem_id = $1 AND due_at <= $2)")
        .bind(problem_id)
        .bind(now)
        .fetch_one(conn)
        .await
}

/// Up to `limit` problems due for the writer (all of them, or only those of `only`), the
/// earliest marked first, each locked until the writer commits. A mark some transaction is
/// making right now is left for the next pass.
pub async fn take_pending(
    conn: &mut PgConnection,
    now: OffsetDateTime,
    only: Option<&[Uuid]>,
    limit: i64,
) -> sqlx::Result<Vec<Uuid>> {
    match only {
        None => {
            sqlx::query_scalar(
                "SELECT problem_id FROM publication.pending WHERE due_at <= $1 ORDER BY due_at, mark LIMIT $2
             FOR UPDATE SKIP LOCKED",
            )
            .bind(now)
            .bind(limit)
            .fetch_all(conn)
            .await
        }
        Some(ids) => {
            sqlx::query_scalar(
                "SELECT problem_id FROM publication.pending WHERE problem_id = ANY($2) AND due_at <= $1
             ORDER BY due_at, mark LIMIT $3 FOR UPDATE SKIP LOCKED",
            )
            .bind(now)
            .bind(ids)
            .bind(limit)
            .fetch_all(conn)
            .await
        }
    }
}

/// What the writer decides a problem's public state from.
#[derive(Debug, sqlx::FromRow)]
pub struct WriterFacts {
    pub problem_id: Uuid,
    pub category: Option<String>,
    pub verification_status: Option<String>,
    pub handed_over_at: Option<OffsetDateTime>,
    pub acknowledged_at: Option<OffsetDateTime>,
    pub approved_at: Option<OffsetDateTime>,
    pub city_code: Option<String>,
    pub public: bool,
}

/// The facts of these problems, each row locked for the writer. A problem another transaction
/// is changing right now is left out: it stays marked, and the writer takes it next time.
pub async fn writer_facts(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<WriterFacts>> {
    sqlx::query_as(
        "SELECT problem_id, category, verification_status, handed_over_at, acknowledged_at, approved_at, city_code, public
         FROM publication.problems WHERE problem_id = ANY($1) FOR NO KEY UPDATE SKIP LOCKED",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// Of these problems, those the record does not hold at all.
pub async fn unknown_problems(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM unnest($1::uuid[]) AS t(id)
         WHERE NOT EXISTS (SELECT 1 FROM publication.problems p WHERE p.problem_id = t.id)",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// Writes the problems' public status and whether they are public (once public, always public).
pub async fn write_public_state(
    conn: &mut PgConnection,
    ids: &[Uuid],
    statuses: &[String],
    public: &[bool],
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE publication.problems p SET status = u.status, public = p.public OR u.public, updated_at = now()
         FROM unnest($1::uuid[], $2::text[], $3::bool[]) AS u(id, status, public) WHERE p.problem_id = u.id",
    )
    .bind(ids)
    .bind(statuses)
    .bind(public)
    .execute(conn)
    .await?;
    Ok(())
}

/// A history line not in the log yet.
#[derive(Debug, sqlx::FromRow)]
pub struct Unlogged {
    pub id: i64,
    pub problem_id: Uuid,
    pub at: OffsetDateTime,
    pub kind: String,
    pub status: String,
    pub what: String,
}

/// The unlogged history of these problems: problem by problem in the order given, each in the
/// order things happened.
pub async fn unlogged_history(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<Unlogged>> {
    sqlx::query_as(
        "SELECT h.id, h.problem_id, h.at, h.kind, h.status, h.what
         FROM unnest($1::uuid[]) WITH ORDINALITY AS p(id, n)
         JOIN publication.history h ON h.problem_id = p.id AND h.entry_seq IS NULL
         ORDER BY p.n, h.at, h.id",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// A log entry to append, and the history line it logs.
pub struct NewEntry {
    pub index: i64,
    pub kind: String,
    pub problem_id: Uuid,
    pub content: String,
    pub content_hash: Hash,
    pub leaf_hash: Hash,
    pub signature: String,
    pub history_id: i64,
}

/// Appends entries to the log and notes each history line's place in it: two statements.
pub async fn append_entries(conn: &mut PgConnection, entries: &[NewEntry]) -> sqlx::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let indexes: Vec<i64> = entries.iter().map(|e| e.index).collect();
    let kinds: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
    let problems: Vec<Uuid> = entries.iter().map(|e| e.problem_id).collect();
    let contents: Vec<&str> = entries.iter().map(|e| e.content.as_str()).collect();
    let content_hashes: Vec<String> = entries.iter().map(|e| merkle::to_hex(&e.content_hash)).collect();
    let leaf_hashes: Vec<String> = entries.iter().map(|e| merkle::to_hex(&e.leaf_hash)).collect();
    let signatures: Vec<&str> = entries.iter().map(|e| e.signature.as_str()).collect();
    let history_ids: Vec<i64> = entries.iter().map(|e| e.history_id).collect();
    sqlx::query(
        "INSERT INTO publication.log_entries (idx, kind, problem_id, content, content_hash, leaf_hash, signature)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[])",
    )
    .bind(&indexes)
    .bind(&kinds)
    .bind(&problems)
    .bind(&contents)
    .bind(&content_hashes)
    .bind(&leaf_hashes)
    .bind(&signatures)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE publication.history h SET entry_seq = u.idx
         FROM unnest($1::bigint[], $2::bigint[]) AS u(id, idx) WHERE h.id = u.id",
    )
    .bind(&history_ids)
    .bind(&indexes)
    .execute(conn)
    .await?;
    Ok(())
}

/// Clears the marks of the problems done, and puts off those under embargo until it ends.
pub async fn finish_pending(
    conn: &mut PgConnection,
    done: &[Uuid],
    later: &[(Uuid, OffsetDateTime)],
) -> sqlx::Result<()> {
    if !done.is_empty() {
        sqlx::query("DELETE FROM publication.pending WHERE problem_id = ANY($1)")
            .bind(done)
            .execute(&mut *conn)
            .await?;
    }
    if !later.is_empty() {
        let (ids, until): (Vec<Uuid>, Vec<OffsetDateTime>) = later.iter().copied().unzip();
        sqlx::query(
            "UPDATE publication.pending p SET due_at = u.until
             FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, until) WHERE p.problem_id = u.id",
        )
        .bind(&ids)
        .bind(&until)
        .execute(conn)
        .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The log's tree

fn bad_hash() -> sqlx::Error {
    sqlx::Error::Decode("a stored tree hash is not 32 bytes".into())
}

/// Locks the log for the one writer until its transaction ends, and answers its frontier (none:
/// not built yet).
pub async fn lock_log(conn: &mut PgConnection) -> sqlx::Result<Option<Frontier>> {
    let (size, hashes): (Option<i64>, Vec<Vec<u8>>) =
        sqlx::query_as("SELECT size, frontier FROM publication.log_state FOR UPDATE").fetch_one(conn).await?;
    let Some(size) = size else { return Ok(None) };
    let hashes = hashes.into_iter().map(|h| Hash::try_from(h).map_err(|_| bad_hash())).collect::<Result<_, _>>()?;
    Frontier::from_parts(size as u64, hashes)
        .map(Some)
        .ok_or_else(|| sqlx::Error::Decode(format!("the stored frontier does not fit a log of {size} entries").into()))
}

pub async fn save_frontier(conn: &mut PgConnection, frontier: &Frontier) -> sqlx::Result<()> {
    let hashes: Vec<&[u8]> = frontier.hashes().iter().map(|h| &h[..]).collect();
    sqlx::query("UPDATE publication.log_state SET size = $1, frontier = $2")
        .bind(frontier.size() as i64)
        .bind(&hashes)
        .execute(conn)
        .await?;
    Ok(())
}

/// Stores completed subtrees, in statements of at most 10,000.
pub async fn store_nodes(conn: &mut PgConnection, nodes: &[(NodeId, Hash)]) -> sqlx::Result<()> {
    for chunk in nodes.chunks(10_000) {
        let levels: Vec<i16> = chunk.iter().map(|(id, _)| id.level as i16).collect();
        let indexes: Vec<i64> = chunk.iter().map(|(id, _)| id.index as i64).collect();
        let hashes: Vec<&[u8]> = chunk.iter().map(|(_, h)| &h[..]).collect();
        sqlx::query(
            "INSERT INTO publication.log_nodes (level, idx, hash)
             SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])",
        )
        .bind(&levels)
        .bind(&indexes)
        .bind(&hashes)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The stored subtrees asked for (those stored).
pub async fn nodes(conn: &mut PgConnection, ids: &[NodeId]) -> sqlx::Result<HashMap<NodeId, Hash>> {
    let levels: Vec<i16> = ids.iter().map(|id| id.level as i16).collect();
    let indexes: Vec<i64> = ids.iter().map(|id| id.index as i64).collect();
    let rows: Vec<(i16, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT n.level, n.idx, n.hash FROM unnest($1::smallint[], $2::bigint[]) AS w(level, idx)
         JOIN publication.log_nodes n ON n.level = w.level AND n.idx = w.idx",
    )
    .bind(&levels)
    .bind(&indexes)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(level, index, hash)| {
            Ok((NodeId { level: level as u32, index: index as u64 }, Hash::try_from(hash).map_err(|_| bad_hash())?))
        })
        .collect()
}

/// `count` stored subtree hashes at `level` from index `first` on, in order (a tile's hashes);
/// fewer when they are not all stored.
pub async fn tile_hashes(conn: &mut PgConnection, level: u32, first: u64, count: u64) -> sqlx::Result<Vec<Vec<u8>>> {
    let rows: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT hash FROM publication.log_nodes WHERE level = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
    )
    .bind(level as i16)
    .bind(first as i64)
    .bind((first + count) as i64)
    .fetch_all(conn)
    .await?;
    Ok(if rows.len() as u64 == count { rows } else { Vec::new() })
}

/// The content hashes of `count` entries from index `first` on (the leaves' data); empty when
/// they are not all there.
pub async fn content_hashes(conn: &mut PgConnection, first: u64, count: u64) -> sqlx::Result<Vec<Hash>> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT content_hash FROM publication.log_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx",
    )
    .bind(first as i64)
    .bind((first + count) as i64)
    .fetch_all(conn)
    .await?;
    if rows.len() as u64 != count {
        return Ok(Vec::new());
    }
    rows.iter().map(|h| merkle::from_hex(h).ok_or_else(bad_hash)).collect()
}

/// The first `size` leaf hashes, in order (to build the tree of a log kept before frontiers).
pub async fn leaf_hashes(conn: &mut PgConnection, size: i64) -> sqlx::Result<Vec<Hash>> {
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT leaf_hash FROM publication.log_entries WHERE idx < $1 ORDER BY idx")
            .bind(size)
            .fetch_all(conn)
            .await?;
    rows.iter().map(|h| merkle::from_hex(h).ok_or_else(bad_hash)).collect()
}

/// The latest checkpoint's size and when it was made.
pub async fn last_checkpoint(conn: &mut PgConnection) -> sqlx::Result<Option<(i64, OffsetDateTime)>> {
    sqlx::query_as("SELECT tree_size, made_at FROM publication.checkpoints ORDER BY tree_size DESC LIMIT 1")
        .fetch_optional(conn)
        .await
}

pub async fn add_checkpoint(conn: &mut PgConnection, c: &Checkpoint, made_at: OffsetDateTime) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO publication.checkpoints (tree_size, root_hash, made_at, body, signature) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(c.tree_size)
    .bind(&c.root_hash)
    .bind(made_at)
    .bind(&c.body)
    .bind(&c.signature)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct LogEntry {
    pub index: i64,
    pub kind: String,
    pub problem_id: Option<Uuid>,
    /// The exact text whose SHA-256 is `content_hash`; none once withdrawn.
    pub content: Option<String>,
    pub content_hash: String,
    pub leaf_hash: String,
    pub signature: String,
    #[serde(with = "time::serde::rfc3339")]
    pub published_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub withdrawn_at: Option<OffsetDateTime>,
    pub withdrawn_reason: Option<String>,
}

pub async fn log_entries(conn: &mut PgConnection, start: i64, limit: i64) -> sqlx::Result<Vec<LogEntry>> {
    sqlx::query_as(
        "SELECT idx AS index, kind, problem_id, content, content_hash, leaf_hash, signature, published_at,
                withdrawn_at, withdrawn_reason
         FROM publication.log_entries WHERE idx >= $1 ORDER BY idx LIMIT $2",
    )
    .bind(start)
    .bind(limit)
    .fetch_all(conn)
    .await
}

#[derive(sqlx::FromRow)]
struct CheckpointRow {
    tree_size: i64,
    root_hash: String,
    made_at: OffsetDateTime,
    body: String,
    signature: String,
}

fn checkpoint_of(row: CheckpointRow, origin: &str) -> Checkpoint {
    Checkpoint {
        origin: origin.to_string(),
        tree_size: row.tree_size,
        root_hash: row.root_hash,
        timestamp: (row.made_at.unix_timestamp_nanos() / 1_000_000) as i64,
        body: row.body,
        signature: row.signature,
    }
}

pub async fn latest_checkpoint(conn: &mut PgConnection, origin: &str) -> sqlx::Result<Option<Checkpoint>> {
    let row: Option<CheckpointRow> = sqlx::query_as(
        "SELECT tree_size, root_hash, made_at, body, signature FROM publication.checkpoints ORDER BY tree_size DESC LIMIT 1",
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| checkpoint_of(r, origin)))
}

pub async fn checkpoints(
    conn: &mut PgConnection,
    after: i64,
    limit: i64,
    origin: &str,
) -> sqlx::Result<Vec<Checkpoint>> {
    let rows: Vec<CheckpointRow> = sqlx::query_as(
        "SELECT tree_size, root_hash, made_at, body, signature FROM publication.checkpoints WHERE tree_size > $1
         ORDER BY tree_size LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| checkpoint_of(r, origin)).collect())
}

// ---------------------------------------------------------------------------------------------
// Witnesses' cosignatures

/// A witness's cosignature held for a checkpoint.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Cosignature {
    pub witness_name: String,
    pub witness_key: String,
    /// The note signature line, without its newline.
    pub line: String,
    #[serde(with = "time::serde::rfc3339")]
    pub cosigned_at: OffsetDateTime,
}

/// The cosignatures held for the checkpoint of `tree_size`, by witness name.
pub async fn cosignatures(conn: &mut PgConnection, tree_size: i64) -> sqlx::Result<Vec<Cosignature>> {
    sqlx::query_as(
        "SELECT witness_name, witness_key, line, cosigned_at FROM publication.cosignatures
         WHERE tree_size = $1 ORDER BY witness_name, witness_key",
    )
    .bind(tree_size)
    .fetch_all(conn)
    .await
}

/// Keeps a witness's cosignature of the checkpoint of `tree_size` and that it cosigned that
/// size, in one statement.
pub async fn add_cosignature(conn: &mut PgConnection, tree_size: i64, c: &Cosignature) -> sqlx::Result<()> {
    sqlx::query(
        "WITH kept AS (
             INSERT INTO publication.cosignatures (tree_size, witness_key, witness_name, line, cosigned_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING
         )
         INSERT INTO publication.witness_state (witness_key, cosigned_size) VALUES ($2, $1)
         ON CONFLICT (witness_key) DO UPDATE SET cosigned_size = EXCLUDED.cosigned_size",
    )
    .bind(tree_size)
    .bind(&c.witness_key)
    .bind(&c.witness_name)
    .bind(&c.line)
    .bind(c.cosigned_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The size a witness last cosigned (0: none known).
pub async fn witness_cosigned_size(conn: &mut PgConnection, witness_key: &str) -> sqlx::Result<i64> {
    let size: Option<i64> =
        sqlx::query_scalar("SELECT cosigned_size FROM publication.witness_state WHERE witness_key = $1")
            .bind(witness_key)
            .fetch_optional(conn)
            .await?;
    Ok(size.unwrap_or(0))
}

/// Records the size a witness says it last cosigned (its answer to a request from another size).
pub async fn set_witness_cosigned_size(conn: &mut PgConnection, witness_key: &str, size: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO publication.witness_state (witness_key, cosigned_size) VALUES ($1, $2)
         ON CONFLICT (witness_key) DO UPDATE SET cosigned_size = EXCLUDED.cosigned_size",
    )
    .bind(witness_key)
    .bind(size)
    .execute(conn)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The campaign office's acts

/// Marks a public problem as a typical case; false when there is no such public problem.
pub async fn mark_typical(
    conn: &mut PgConnection,
    id: Uuid,
    narrative: &str,
    at: OffsetDateTime,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE publication.problems SET typical_narrative = $2, typical_at = $3 WHERE problem_id = $1 AND public",
    )
    .bind(id)
    .bind(narrative)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn approve(conn: &mut PgConnection, id: Uuid, at: OffsetDateTime) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE publication.problems SET approved_at = coalesce(approved_at, $2) WHERE problem_id = $1 AND category IS NOT NULL",
    )
    .bind(id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Retracts a public problem: it leaves the lists and its feeds carry a tombstone from `at` on
/// (the row is kept, and moved to the top of the feeds so that mirrors see it).
pub async fn retract(
    conn: &mut PgConnection,
    id: Uuid,
    code: &str,
    reason: &str,
    at: OffsetDateTime,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE publication.problems
         SET retracted_at = coalesce(retracted_at, $4), retraction_code = $2, retraction_reason = $3, updated_at = $4
         WHERE problem_id = $1 AND public",
    )
    .bind(id)
    .bind(code)
    .bind(reason)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The fields the campaign office may correct, and their current public value.
pub const CORRECTABLE: &[&str] = &["site_name", "description"];

/// Sets a correctable field, answering its previous value (none: no such public problem).
pub async fn correct(conn: &mut PgConnection, id: Uuid, field: &str, value: &str) -> sqlx::Result<Option<String>> {
    let sql = match field {
        "site_name" => {
            "UPDATE publication.problems p SET site_name = $2 FROM publication.problems old
             WHERE p.problem_id = $1 AND old.problem_id = $1 AND p.public RETURNING coalesce(old.site_name, '')"
        }
        _ => {
            "UPDATE publication.problems p SET description = $2 FROM publication.problems old
             WHERE p.problem_id = $1 AND old.problem_id = $1 AND p.public RETURNING coalesce(old.description, '')"
        }
    };
    sqlx::query_scalar(sql).bind(id).bind(value).fetch_optional(conn).await
}

/// Withdraws the content of a log entry (a lawful takedown): its hash and signature stay, the
/// text goes, from the log and from the problem's history. Answers the problem it was about.
pub async fn withdraw(
    conn: &mut PgConnection,
    index: i64,
    code: &str,
    reason: &str,
) -> sqlx::Result<Option<Option<Uuid>>> {
    let problem: Option<Option<Uuid>> = sqlx::query_scalar(
        "UPDATE publication.log_entries
         SET content = NULL, withdrawn_at = now(), withdrawn_code = $2, withdrawn_reason = $3
         WHERE idx = $1 AND content IS NOT NULL RETURNING problem_id",
    )
    .bind(index)
    .bind(code)
    .bind(reason)
    .fetch_optional(&mut *conn)
    .await?;
    if problem.is_some() {
        sqlx::query("UPDATE publication.history SET what = '', withdrawn = true WHERE entry_seq = $1")
            .bind(index)
            .execute(conn)
            .await?;
    }
    Ok(problem)
}

// ---------------------------------------------------------------------------------------------
// Reading the public record

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
    pub evidence: Json<Vec<PublicEvidence>>,
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
    pub progress_stage: Option<String>,
    pub progress_percent: Option<i32>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub verified_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub closed_at: Option<OffsetDateTime>,
    /// The first day the problem was past its deadline without an accepted rectification.
    pub overdue_on: Option<Date>,
    pub reopened_count: i32,
    pub typical_narrative: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub typical_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub retracted_at: Option<OffsetDateTime>,
    /// One of `domain::WITHDRAWAL_REASONS`.
    pub retraction_code: Option<String>,
    pub retraction_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl PublicProblem {
    pub fn is_typical(&self) -> bool {
        self.typical_at.is_some()
    }
}

const PUBLIC_COLUMNS: &str = "problem_id AS id, status, category, severity, round_id AS round, city_code, county_code,
    jurisdiction, site_name, site_lat AS lat, site_lon AS lon, description, evidence, rebound_of, found_at, handover_no,
    handed_over_at, deadline, acknowledged_at, rectification_reported_at, progress_stage, progress_percent,
    verified_at, closed_at, overdue_on, reopened_count, typical_narrative, typical_at, retracted_at,
    retraction_code, retraction_reason, updated_at";

/// A public problem, retracted ones included (their page says so).
pub async fn public_problem(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<PublicProblem>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {PUBLIC_COLUMNS} FROM publication.problems WHERE problem_id = $1 AND public"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// A problem under the campaign office's review (awaiting approval), for the admin.
pub async fn pending_approval(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<PublicProblem>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {PUBLIC_COLUMNS} FROM publication.problems
         WHERE NOT public AND approved_at IS NULL AND handed_over_at IS NOT NULL AND category IS NOT NULL
         ORDER BY handed_over_at LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(conn)
    .await
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct HistoryItem {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub kind: String,
    pub status: String,
    pub what: String,
    pub withdrawn: bool,
    /// The item's index in the public log.
    pub entry_index: Option<i64>,
}

pub async fn history(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Vec<HistoryItem>> {
    sqlx::query_as(
        "SELECT at, kind, status, what, withdrawn, entry_seq AS entry_index FROM publication.history
         WHERE problem_id = $1 AND entry_seq IS NOT NULL ORDER BY at, id",
    )
    .bind(id)
    .fetch_all(conn)
    .await
}

#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct ProblemFilter {
    pub city: Option<String>,
    pub county: Option<String>,
    pub category: Option<String>,
    pub status: Option<String>,
    pub round: Option<String>,
    /// Matches the site's name.
    pub q: Option<String>,
    /// Only typical cases.
    #[serde(default, deserialize_with = "flag")]
    pub typical: Option<bool>,
    /// Only problems that have been overdue.
    #[serde(default, deserialize_with = "flag")]
    pub overdue: Option<bool>,
}

/// A `true`/`false` query parameter: flattened query structs see every value as text.
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    match <Option<Flag> as serde::Deserialize>::deserialize(d)? {
        None => Ok(None),
        Some(Flag::Bool(b)) => Ok(Some(b)),
        Some(Flag::Text(t)) => match t.as_str() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            other => Err(serde::de::Error::custom(format!("expected true or false, not {other:?}"))),
        },
    }
}

/// Where a page of problems starts: strictly after this (updated_at, id) in newest-first order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cursor {
    pub updated_at: OffsetDateTime,
    pub id: Uuid,
}

impl Cursor {
    pub fn after(p: &PublicProblem) -> Self {
        Self { updated_at: p.updated_at, id: p.id }
    }

    pub fn encode(&self) -> String {
        format!("{}_{}", self.updated_at.unix_timestamp_nanos() / 1000, self.id.simple())
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (micros, id) = s.split_once('_')?;
        let micros: i128 = micros.parse().ok()?;
        Some(Self {
            updated_at: OffsetDateTime::from_unix_timestamp_nanos(micros * 1000).ok()?,
            id: Uuid::parse_str(id).ok()?,
        })
    }
}

/// Which retracted problems a listing holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Retracted {
    /// Left out: the lists people read.
    Omitted,
    /// As tombstones, where they were retracted: the feeds that mirrors follow.
    AsTombstones,
}

/// Public problems, most recently changed first, from `cursor` on.
pub async fn public_problems(
    conn: &mut PgConnection,
    f: &ProblemFilter,
    retracted: Retracted,
    cursor: Option<Cursor>,
    limit: i64,
) -> sqlx::Result<Vec<PublicProblem>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {PUBLIC_COLUMNS} FROM publication.problems
         WHERE public AND (retracted_at IS NULL OR $12)
           AND ($1::text IS NULL OR city_code = $1) AND ($2::text IS NULL OR category = $2)
           AND ($3::text IS NULL OR status = $3) AND ($4::text IS NULL OR round_id = $4)
           AND ($5::text IS NULL OR site_name ILIKE '%' || $5 || '%')
           AND ($6::text IS NULL OR county_code = $6 OR jurisdiction = $6)
           AND (NOT coalesce($7, false) OR typical_at IS NOT NULL)
           AND (NOT coalesce($8, false) OR overdue_on IS NOT NULL)
           AND ($9::timestamptz IS NULL OR (updated_at, problem_id) < ($9, $10))
         ORDER BY updated_at DESC, problem_id DESC LIMIT $11"
    )))
    .bind(&f.city)
    .bind(&f.category)
    .bind(&f.status)
    .bind(&f.round)
    .bind(&f.q)
    .bind(&f.county)
    .bind(f.typical)
    .bind(f.overdue)
    .bind(cursor.map(|c| c.updated_at))
    .bind(cursor.map(|c| c.id))
    .bind(limit)
    .bind(retracted == Retracted::AsTombstones)
    .fetch_all(conn)
    .await
}

/// Typical cases, most recently marked first.
pub async fn typical_cases(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<PublicProblem>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {PUBLIC_COLUMNS} FROM publication.problems
         WHERE public AND retracted_at IS NULL AND typical_at IS NOT NULL ORDER BY typical_at DESC LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// When anything in the public record last changed.
pub async fn last_modified(conn: &mut PgConnection) -> sqlx::Result<OffsetDateTime> {
    sqlx::query_scalar(
        "SELECT greatest(
            (SELECT max(updated_at) FROM publication.problems),
            (SELECT max(updated_at) FROM publication.inspection_counts),
            (SELECT max(updated_at) FROM publication.register_items),
            (SELECT max(made_at) FROM publication.checkpoints),
            (SELECT max(coalesce(withdrawn_at, published_at)) FROM publication.log_entries),
            (SELECT max(escalated_at) FROM publication.escalations),
            (SELECT max(held_at) FROM publication.summonses),
            (SELECT max(verified_at) FROM publication.commitment_results),
            (SELECT max(received_at) FROM publication.special_inspections),
            (SELECT max(received_at) FROM publication.cosignatures),
            'epoch'::timestamptz)",
    )
    .fetch_one(conn)
    .await
}

// ---------------------------------------------------------------------------------------------
// Statistics, from the events alone

#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct StatsFilter {
    pub round: Option<String>,
    pub city: Option<String>,
    pub category: Option<String>,
}

/// One group's problem figures: `dimension` is `total`, `city`, `province`, `round` or
/// `category`, and `key` the group's code.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Figures {
    #[serde(skip)]
    pub dimension: String,
    #[serde(skip)]
    pub key: String,
    pub problems_found: i64,
    pub handed_over: i64,
    pub closed: i64,
    pub closed_on_time: i64,
    pub overdue: i64,
    pub reopened: i64,
    pub rebounds: i64,
    pub rerouted: i64,
    pub extended: i64,
    pub median_days_to_close: Option<f64>,
}

/// Problem figures overall and per city, province, round and category. Every problem intake
/// reported counts (aggregates name nobody), retracted ones excepted.
pub async fn figures(conn: &mut PgConnection, f: &StatsFilter) -> sqlx::Result<Vec<Figures>> {
    sqlx::query_as(
        "WITH p AS (
            SELECT *, left(city_code, 2) || '0000' AS province FROM publication.problems
            WHERE category IS NOT NULL AND retracted_at IS NULL
              AND ($1::text IS NULL OR round_id = $1) AND ($2::text IS NULL OR city_code = $2)
              AND ($3::text IS NULL OR category = $3))
         SELECT CASE GROUPING(city_code, province, round_id, category)
                    WHEN 15 THEN 'total' WHEN 7 THEN 'city' WHEN 11 THEN 'province' WHEN 13 THEN 'round'
                    ELSE 'category' END AS dimension,
                coalesce(city_code, province, round_id, category, '') AS key,
                count(*) AS problems_found,
                count(*) FILTER (WHERE handed_over_at IS NOT NULL) AS handed_over,
                count(*) FILTER (WHERE status = 'closed') AS closed,
                count(*) FILTER (WHERE status = 'closed' AND deadline IS NOT NULL
                                   AND (closed_at AT TIME ZONE 'Asia/Shanghai')::date <= deadline) AS closed_on_time,
                count(*) FILTER (WHERE overdue_on IS NOT NULL) AS overdue,
                count(*) FILTER (WHERE reopened_count > 0) AS reopened,
                count(*) FILTER (WHERE rebound_of IS NOT NULL) AS rebounds,
                count(*) FILTER (WHERE rerouted_count > 0) AS rerouted,
                count(*) FILTER (WHERE extended_count > 0) AS extended,
                round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM closed_at - handed_over_at) / 86400)
                    FILTER (WHERE status = 'closed' AND handed_over_at IS NOT NULL))::numeric, 2)::float8
                    AS median_days_to_close
         FROM p GROUP BY GROUPING SETS ((), (city_code), (province), (round_id), (category))",
    )
    .bind(&f.round)
    .bind(&f.city)
    .bind(&f.category)
    .fetch_all(conn)
    .await
}

/// Site checks overall and per city, province and round (checks have no category), and the
/// emergency-plan checks among them.
pub async fn site_checks(conn: &mut PgConnection, f: &StatsFilter) -> sqlx::Result<Vec<(String, String, i64, i64)>> {
    sqlx::query_as(
        "WITH c AS (
            SELECT *, left(city_code, 2) || '0000' AS province FROM publication.inspection_counts
            WHERE ($1::text IS NULL OR round_id = $1) AND ($2::text IS NULL OR city_code = $2))
         SELECT CASE GROUPING(city_code, province, round_id)
                    WHEN 7 THEN 'total' WHEN 3 THEN 'city' WHEN 5 THEN 'province' ELSE 'round' END,
                coalesce(city_code, province, round_id, ''), coalesce(sum(checks), 0)::bigint,
                coalesce(sum(emergency_checks), 0)::bigint
         FROM c GROUP BY GROUPING SETS ((), (city_code), (province), (round_id))",
    )
    .bind(&f.round)
    .bind(&f.city)
    .fetch_all(conn)
    .await
}

/// Problems handed over per category (the press conference names some of them).
pub async fn handed_over_by_category(conn: &mut PgConnection, f: &StatsFilter) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as(
        "SELECT category, count(*) FROM publication.problems
         WHERE category IS NOT NULL AND handed_over_at IS NOT NULL AND retracted_at IS NULL
           AND ($1::text IS NULL OR round_id = $1) AND ($2::text IS NULL OR city_code = $2)
           AND ($3::text IS NULL OR category = $3)
         GROUP BY category ORDER BY category",
    )
    .bind(&f.round)
    .bind(&f.city)
    .bind(&f.category)
    .fetch_all(conn)
    .await
}

/// The days the figures cover: from the first round's start to the last round's end (of the
/// round asked for, if any); none before a round is configured.
pub async fn period(conn: &mut PgConnection, f: &StatsFilter) -> sqlx::Result<(Option<Date>, Option<Date>)> {
    sqlx::query_as(
        "SELECT min(starts_on), max(ends_on) FROM publication.rounds WHERE $1::text IS NULL OR round_id = $1",
    )
    .bind(&f.round)
    .fetch_one(conn)
    .await
}

/// Rounds, the teams sent, and the people they sent (person-times: each member once per round).
pub async fn rounds_and_teams(conn: &mut PgConnection, f: &StatsFilter) -> sqlx::Result<(i64, i64, i64)> {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM publication.rounds WHERE $1::text IS NULL OR round_id = $1),
                (SELECT count(*) FROM publication.round_teams WHERE $1::text IS NULL OR round_id = $1),
                (SELECT COALESCE(sum(members), 0)::bigint FROM publication.round_teams
                 WHERE $1::text IS NULL OR round_id = $1)",
    )
    .bind(&f.round)
    .fetch_one(conn)
    .await
}

/// Escalations per level, and each city's latest level.
pub async fn escalations(
    conn: &mut PgConnection,
    f: &StatsFilter,
) -> sqlx::Result<(Vec<(String, i64)>, Vec<(String, String)>)> {
    let per_level = sqlx::query_as(
        "SELECT level, count(*) FROM publication.escalations WHERE $1::text IS NULL OR city_code = $1
         GROUP BY level ORDER BY level",
    )
    .bind(&f.city)
    .fetch_all(&mut *conn)
    .await?;
    let latest = sqlx::query_as(
        "SELECT DISTINCT ON (city_code) city_code, level FROM publication.escalations
         WHERE $1::text IS NULL OR city_code = $1 ORDER BY city_code, escalated_at DESC, source_event_id DESC",
    )
    .bind(&f.city)
    .fetch_all(conn)
    .await?;
    Ok((per_level, latest))
}

/// Problems found and closed per day (Asia/Shanghai), for the chart.
pub async fn daily(conn: &mut PgConnection) -> sqlx::Result<Vec<(Date, i64, i64)>> {
    sqlx::query_as(
        "WITH found AS (SELECT (found_at AT TIME ZONE 'Asia/Shanghai')::date AS day, count(*) AS n FROM publication.problems
                        WHERE found_at IS NOT NULL AND retracted_at IS NULL GROUP BY 1),
              closed AS (SELECT (closed_at AT TIME ZONE 'Asia/Shanghai')::date AS day, count(*) AS n FROM publication.problems
                         WHERE closed_at IS NOT NULL AND status = 'closed' AND retracted_at IS NULL GROUP BY 1)
         SELECT coalesce(found.day, closed.day), coalesce(found.n, 0), coalesce(closed.n, 0)
         FROM found FULL JOIN closed ON found.day = closed.day ORDER BY 1",
    )
    .fetch_all(conn)
    .await
}

impl Figures {
    pub fn empty() -> Self {
        Self {
            dimension: String::new(),
            key: String::new(),
            problems_found: 0,
            handed_over: 0,
            closed: 0,
            closed_on_time: 0,
            overdue: 0,
            reopened: 0,
            rebounds: 0,
            rerouted: 0,
            extended: 0,
            median_days_to_close: None,
        }
    }
}

/// Public problems (not retracted) by city, category and status.
pub async fn public_counts(
    conn: &mut PgConnection,
    f: &StatsFilter,
) -> sqlx::Result<Vec<(String, String, String, i64)>> {
    sqlx::query_as(
        "SELECT coalesce(city_code, ''), coalesce(category, ''), status, count(*) FROM publication.problems
         WHERE public AND retracted_at IS NULL AND ($1::text IS NULL OR round_id = $1)
           AND ($2::text IS NULL OR city_code = $2) AND ($3::text IS NULL OR category = $3)
         GROUP BY 1, 2, 3",
    )
    .bind(&f.round)
    .bind(&f.city)
    .bind(&f.category)
    .fetch_all(conn)
    .await
}

pub async fn log_size(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT coalesce(max(idx) + 1, 0) FROM publication.log_entries").fetch_one(conn).await
}

/// An item's latest state in a city's clean-up register.
pub async fn register_updated(conn: &mut PgConnection, r: &shared::events::RegisterUpdated) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO publication.register_items (city_code, register, item_id, state)
         SELECT $1, $2, id, state FROM unnest($3::text[], $4::text[]) AS i(id, state)
         ON CONFLICT (city_code, register, item_id) DO UPDATE SET state = EXCLUDED.state, updated_at = now()",
    )
    .bind(&r.city_code)
    .bind(&r.register)
    .bind(r.items.iter().map(|i| i.id.clone()).collect::<Vec<_>>())
    .bind(r.items.iter().map(|i| i.state.clone()).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// The clean-up registers' items per register, city and state (of one city, if asked).
pub async fn register_counts(
    conn: &mut PgConnection,
    f: &StatsFilter,
) -> sqlx::Result<Vec<(String, String, String, i64)>> {
    sqlx::query_as(
        "SELECT register, city_code, state, count(*) FROM publication.register_items
         WHERE $1::text IS NULL OR city_code = $1
         GROUP BY register, city_code, state ORDER BY register, city_code, state",
    )
    .bind(&f.city)
    .fetch_all(conn)
    .await
}

// ---------------------------------------------------------------------------------------------
// The campaign office's acts: summonses once held, special inspections once concluded

pub async fn summons_held(conn: &mut PgConnection, e: &shared::events::SummonsHeld) -> sqlx::Result<()> {
    let officials = serde_json::to_value(&e.officials).unwrap_or_default();
    let commitments = serde_json::to_value(&e.commitments).unwrap_or_default();
    sqlx::query(
        "INSERT INTO publication.summonses
            (summons_id, city_code, officials, held_on, place, reasons, problems, commitments, held_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (summons_id) DO NOTHING",
    )
    .bind(e.summons_id)
    .bind(&e.city_code)
    .bind(officials)
    .bind(e.held_on)
    .bind(&e.place)
    .bind(&e.reasons)
    .bind(&e.problems)
    .bind(commitments)
    .bind(e.held_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn commitment_verified(conn: &mut PgConnection, e: &shared::events::CommitmentVerified) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO publication.commitment_results (commitment_id, summons_id, result, verified_at)
         VALUES ($1, $2, $3, $4) ON CONFLICT (commitment_id) DO NOTHING",
    )
    .bind(e.commitment_id)
    .bind(e.summons_id)
    .bind(&e.result)
    .bind(e.verified_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn special_inspection_concluded(
    conn: &mut PgConnection,
    e: &shared::events::SpecialInspectionConcluded,
) -> sqlx::Result<()> {
    let scope = serde_json::to_value(&e.scope).unwrap_or_default();
    sqlx::query(
        "INSERT INTO publication.special_inspections
            (case_id, city_code, scope, linked, reported, conclusion, concluded_on, opened_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (case_id) DO NOTHING",
    )
    .bind(e.case_id)
    .bind(&e.city_code)
    .bind(scope)
    .bind(&e.linked)
    .bind(&e.reported)
    .bind(&e.conclusion)
    .bind(e.concluded_on)
    .bind(e.opened_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Held summonses, newest first, as the public sees them: cited problems only where public.
pub async fn public_summonses(conn: &mut PgConnection, city: Option<&str>) -> sqlx::Result<Vec<serde_json::Value>> {
    let rows: Vec<(serde_json::Value,)> = sqlx::query_as(
        "SELECT jsonb_build_object(
                'id', s.summons_id, 'city_code', s.city_code, 'officials', s.officials, 'held_on', s.held_on,
                'place', s.place, 'reasons', s.reasons, 'held_at', s.held_at,
                'problems', coalesce((
                    SELECT jsonb_agg(p.problem_id ORDER BY p.problem_id) FROM publication.problems p
                    WHERE p.problem_id = ANY(s.problems) AND p.public AND p.retracted_at IS NULL), '[]'::jsonb),
                'commitments', coalesce((
                    SELECT jsonb_agg(jsonb_build_object(
                        'id', c.value->'commitment_id', 'text', c.value->'text', 'follow_up_on', c.value->'follow_up_on',
                        'result', r.result, 'verified_on', (r.verified_at AT TIME ZONE 'Asia/Shanghai')::date)
                        ORDER BY c.ordinality)
                    FROM jsonb_array_elements(s.commitments) WITH ORDINALITY AS c(value, ordinality)
                    LEFT JOIN publication.commitment_results r ON r.commitment_id = (c.value->>'commitment_id')::uuid),
                    '[]'::jsonb))
         FROM publication.summonses s WHERE $1::text IS NULL OR s.city_code = $1
         ORDER BY s.held_on DESC, s.summons_id DESC",
    )
    .bind(city)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Concluded special inspections, newest first: scope, finding counts, the public problems among
/// the findings, and the conclusion.
pub async fn public_special_inspections(
    conn: &mut PgConnection,
    city: Option<&str>,
) -> sqlx::Result<Vec<serde_json::Value>> {
    let rows: Vec<(serde_json::Value,)> = sqlx::query_as(
        "SELECT jsonb_build_object(
                'id', i.case_id, 'city_code', i.city_code, 'scope', i.scope,
                'opened_on', (i.opened_at AT TIME ZONE 'Asia/Shanghai')::date, 'concluded_on', i.concluded_on,
                'conclusion', i.conclusion, 'received_at', i.received_at,
                'findings', jsonb_build_object('linked', cardinality(i.linked), 'reported', cardinality(i.reported)),
                'problems', coalesce((
                    SELECT jsonb_agg(p.problem_id ORDER BY p.problem_id) FROM publication.problems p
                    WHERE (p.problem_id = ANY(i.linked) OR p.problem_id = ANY(i.reported))
                      AND p.public AND p.retracted_at IS NULL), '[]'::jsonb))
         FROM publication.special_inspections i WHERE $1::text IS NULL OR i.city_code = $1
         ORDER BY i.concluded_on DESC, i.case_id DESC",
    )
    .bind(city)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}
