//! Publication builds the public record from intake's, assignment's and verification's events,
//! which may arrive in any order across producers: facts and history lines, and a mark that the
//! problem waits for the log writer (`writer.rs`), which publishes and announces each entry.

use shared::envelope::Event;
use shared::events::{
    CITY_ESCALATED, CityEscalated, HANDOVER_ACKNOWLEDGED, HandoverAcknowledged, INSPECTION_RECORDED,
    InspectionRecorded, PROBLEM_ASSIGNED, PROBLEM_CLOSED, PROBLEM_EXTENDED, PROBLEM_OVERDUE, PROBLEM_REOPENED,
    PROBLEM_REPORTED, PROBLEM_REROUTED, ProblemAssigned, ProblemClosed, ProblemExtended, ProblemOverdue,
    ProblemReopened, ProblemReported, ProblemRerouted, RECTIFICATION_PROGRESSED, RECTIFICATION_REPORTED,
    ROUND_CONFIGURED, RectificationProgressed, RectificationReported, RoundConfigured, TEAM_ASSIGNED, TeamAssigned,
};
use shared::inbox::EventHandler;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain;
use crate::redaction;
use crate::store::{self, HistoryLine, VerificationWord};
pub use crate::writer::Publisher;

pub struct Handlers {
    /// The log writer, to wake once a batch that marked problems has committed.
    pub publisher: Publisher,
}

fn line<'a>(
    problem_id: Uuid,
    source_id: Uuid,
    at: time::OffsetDateTime,
    status: &'a str,
    what: &'a str,
) -> HistoryLine<'a> {
    HistoryLine { problem_id, source_id, at, kind: "step", status, what }
}

fn note<'a>(
    problem_id: Uuid,
    source_id: Uuid,
    at: time::OffsetDateTime,
    status: &'a str,
    what: &'a str,
) -> HistoryLine<'a> {
    HistoryLine { problem_id, source_id, at, kind: "note", status, what }
}

impl EventHandler for Handlers {
    async fn handle(&self, conn: &mut PgConnection, event: &Event) -> anyhow::Result<()> {
        let problem_id = match event.kind() {
            Some(INSPECTION_RECORDED) => {
                store::count_inspection(conn, &event.data_as::<InspectionRecorded>()?).await?;
                return Ok(());
            }
            Some(ROUND_CONFIGURED) => {
                store::round_configured(conn, &event.data_as::<RoundConfigured>()?).await?;
                return Ok(());
            }
            Some(TEAM_ASSIGNED) => {
                let t: TeamAssigned = event.data_as()?;
                store::team_assigned(conn, &t.round, &t.team).await?;
                return Ok(());
            }
            Some(CITY_ESCALATED) => {
                let e: CityEscalated = event.data_as()?;
                store::city_escalated(conn, event.id, &e.city_code, &e.level, e.escalated_at).await?;
                return Ok(());
            }
            Some(PROBLEM_REPORTED) => {
                let p: ProblemReported = event.data_as()?;
                // The disclosure policy decides what of the report is kept at all.
                let facts = redaction::reported(&p, &event.data);
                store::problem_reported(conn, &facts).await?;
                let what = domain::said_reported(&facts.category, &facts.site_name);
                store::add_history(conn, &line(p.problem_id, event.id, p.checked_at, "reported", &what)).await?;
                p.problem_id
            }
            Some(PROBLEM_ASSIGNED) => {
                let p: ProblemAssigned = event.data_as()?;
                store::problem_assigned(conn, &p).await?;
                let what = domain::said_assigned(&p.handover_no, &p.jurisdiction, &p.deadline.to_string());
                store::add_history(conn, &line(p.problem_id, event.id, p.assigned_at, "assigned", &what)).await?;
                p.problem_id
            }
            Some(HANDOVER_ACKNOWLEDGED) => {
                let ack: HandoverAcknowledged = event.data_as()?;
                for p in &ack.problems {
                    store::problem_acknowledged(conn, p.problem_id, p.problem_seq, ack.acknowledged_at).await?;
                    // One history row per problem: the event id alone would name only the first.
                    let source = Uuid::new_v5(&event.id, p.problem_id.as_bytes());
                    let what = domain::said_acknowledged(&ack.handover_no);
                    let history = line(p.problem_id, source, ack.acknowledged_at, "acknowledged", &what);
                    store::add_history(conn, &history).await?;
                }
                let ids: Vec<Uuid> = ack.problems.iter().map(|p| p.problem_id).collect();
                store::mark_pending(conn, &ids).await?;
                return Ok(());
            }
            Some(PROBLEM_REROUTED) => {
                let r: ProblemRerouted = event.data_as()?;
                store::problem_rerouted(conn, &r).await?;
                let what = domain::said_rerouted(&r.from_jurisdiction, &r.to_jurisdiction, &r.deadline.to_string());
                store::add_history(conn, &note(r.problem_id, event.id, r.rerouted_at, "rerouted", &what)).await?;
                r.problem_id
            }
            Some(PROBLEM_EXTENDED) => {
                let e: ProblemExtended = event.data_as()?;
                store::problem_extended(conn, &e).await?;
                let what = domain::said_extended(&e.previous_deadline.to_string(), &e.deadline.to_string());
                store::add_history(conn, &note(e.problem_id, event.id, e.granted_at, "extended", &what)).await?;
                e.problem_id
            }
            Some(RECTIFICATION_PROGRESSED) => {
                let r: RectificationProgressed = event.data_as()?;
                store::rectification_progressed(conn, r.problem_id, &r.stage, r.percent_done).await?;
                let what = domain::said_progressed(&r.stage, r.percent_done);
                store::add_history(conn, &note(r.problem_id, event.id, r.reported_at, "progressed", &what)).await?;
                r.problem_id
            }
            Some(PROBLEM_OVERDUE) => {
                let o: ProblemOverdue = event.data_as()?;
                store::problem_overdue(conn, o.problem_id, o.overdue_on).await?;
                let what = domain::said_overdue(&o.deadline.to_string());
                // The first moment of the first overdue day, Asia/Shanghai.
                let at = o.overdue_on.midnight().assume_offset(time::macros::offset!(+8));
                store::add_history(conn, &note(o.problem_id, event.id, at, "overdue", &what)).await?;
                o.problem_id
            }
            Some(RECTIFICATION_REPORTED) => {
                let r: RectificationReported = event.data_as()?;
                let word = VerificationWord {
                    problem_id: r.problem_id,
                    seq: r.problem_seq,
                    status: "rectification_reported",
                    at: r.reported_at,
                    new_deadline: None,
                };
                store::verification_word(conn, &word).await?;
                let what = domain::said_rectification_reported();
                let history = line(r.problem_id, event.id, r.reported_at, "rectification_reported", &what);
                store::add_history(conn, &history).await?;
                r.problem_id
            }
            Some(PROBLEM_CLOSED) => {
                let c: ProblemClosed = event.data_as()?;
                let word = VerificationWord {
                    problem_id: c.problem_id,
                    seq: c.problem_seq,
                    status: "closed",
                    at: c.verified_at,
                    new_deadline: None,
                };
                store::verification_word(conn, &word).await?;
                let what = domain::said_closed();
                store::add_history(conn, &line(c.problem_id, event.id, c.verified_at, "closed", &what)).await?;
                c.problem_id
            }
            Some(PROBLEM_REOPENED) => {
                let r: ProblemReopened = event.data_as()?;
                let word = VerificationWord {
                    problem_id: r.problem_id,
                    seq: r.problem_seq,
                    status: "reopened",
                    at: r.verified_at,
                    new_deadline: Some(r.deadline),
                };
                store::verification_word(conn, &word).await?;
                let what = domain::said_reopened(&r.result, &r.deadline.to_string());
                store::add_history(conn, &line(r.problem_id, event.id, r.verified_at, "reopened", &what)).await?;
                r.problem_id
            }
            _ => return Ok(()),
        };
        // The log writer decides the rest, after this transaction commits.
        store::mark_pending(conn, &[problem_id]).await?;
        Ok(())
    }
}
