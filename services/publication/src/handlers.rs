//! Publication builds the public record from intake's, assignment's and verification's events,
//! which may arrive in any order across producers: facts and history lines, and a mark that the
//! problem waits for the log writer (`writer.rs`), which publishes and announces each entry.
//! Each batch of one kind is written with one multi-row statement per table.

use std::collections::BTreeMap;

use shared::events::{
    CityEscalated, CommitmentVerified, HandoverAcknowledged, InspectionsRecorded, ProblemAssigned, ProblemClosed,
    ProblemExtended, ProblemOverdue, ProblemReopened, ProblemReported, ProblemRerouted, RectificationProgressed,
    RectificationReported, RegisterUpdated, RoundConfigured, SpecialInspectionConcluded, SummonsHeld, TeamAssigned,
};
use shared::routing::{Handle, Received, Routes};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain;
use crate::redaction;
use crate::store::{self, HistoryLine, VerificationWord};
pub use crate::writer::Publisher;

pub struct Handlers {
    /// The log writer, woken once a batch that marked problems has committed.
    pub publisher: Publisher,
}

/// What publication consumes.
pub fn routes(handlers: Handlers) -> Routes<Handlers> {
    let publisher = handlers.publisher.clone();
    Routes::new(handlers)
        .on::<InspectionsRecorded>()
        .on::<RoundConfigured>()
        .on::<TeamAssigned>()
        .on::<ProblemReported>()
        .on::<ProblemAssigned>()
        .on::<HandoverAcknowledged>()
        .on::<ProblemRerouted>()
        .on::<ProblemExtended>()
        .on::<RectificationProgressed>()
        .on::<RectificationReported>()
        .on::<ProblemClosed>()
        .on::<ProblemReopened>()
        .on::<ProblemOverdue>()
        .on::<CityEscalated>()
        .on::<SummonsHeld>()
        .on::<CommitmentVerified>()
        .on::<SpecialInspectionConcluded>()
        .on::<RegisterUpdated>()
        .after_commit(move || publisher.wake())
}

/// A step of the problem's life, in its public history.
fn step(
    problem_id: Uuid,
    source_id: Uuid,
    at: OffsetDateTime,
    status: &'static str,
    what: String,
) -> HistoryLine<'static> {
    HistoryLine { problem_id, source_id, at, kind: "step", status, what }
}

/// Something that happened to the problem without moving it, in its public history.
fn note(
    problem_id: Uuid,
    source_id: Uuid,
    at: OffsetDateTime,
    status: &'static str,
    what: String,
) -> HistoryLine<'static> {
    HistoryLine { problem_id, source_id, at, kind: "note", status, what }
}

/// Writes history lines and marks their problems for the log writer.
async fn record(conn: &mut PgConnection, lines: Vec<HistoryLine<'_>>) -> anyhow::Result<()> {
    store::add_history(conn, &lines).await?;
    let ids: Vec<Uuid> = lines.iter().map(|l| l.problem_id).collect();
    store::mark_pending(conn, &ids).await?;
    Ok(())
}

impl Handle<InspectionsRecorded> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<InspectionsRecorded>]) -> anyhow::Result<()> {
        // Summed per round and city first: one row each in one statement.
        let mut counts: BTreeMap<(&str, &str), store::CheckCounts> = BTreeMap::new();
        for e in events {
            for check in &e.data.checks {
                let count = counts.entry((check.round.as_str(), e.data.city_code.as_str())).or_default();
                count.checks += 1;
                count.duplicates += i64::from(check.duplicates);
                count.emergency_checks += i64::from(check.emergency_alert.is_some());
            }
        }
        let counts: Vec<_> = counts.into_iter().map(|((round, city), n)| (round.into(), city.into(), n)).collect();
        Ok(store::count_inspections(conn, &counts).await?)
    }
}

// Rounds, teams and escalations are the campaign office's rare acts: one statement each.

impl Handle<RoundConfigured> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<RoundConfigured>]) -> anyhow::Result<()> {
        for e in events {
            store::round_configured(conn, &e.data).await?;
        }
        Ok(())
    }
}

impl Handle<TeamAssigned> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<TeamAssigned>]) -> anyhow::Result<()> {
        for e in events {
            store::team_assigned(conn, &e.data.round, &e.data.team, e.data.members).await?;
        }
        Ok(())
    }
}

impl Handle<RegisterUpdated> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<RegisterUpdated>]) -> anyhow::Result<()> {
        // In stream order, so an item's latest state is the one that stays.
        for e in events {
            store::register_updated(conn, &e.data).await?;
        }
        Ok(())
    }
}

impl Handle<CityEscalated> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<CityEscalated>]) -> anyhow::Result<()> {
        for e in events {
            store::city_escalated(conn, e.id, &e.data.city_code, &e.data.level, e.data.escalated_at).await?;
        }
        Ok(())
    }
}

// Summonses are public once held, special inspections once concluded (DESIGN.md): publication
// hears of neither before, so nothing earlier can leak.

impl Handle<SummonsHeld> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<SummonsHeld>]) -> anyhow::Result<()> {
        for e in events {
            store::summons_held(conn, &e.data).await?;
        }
        Ok(())
    }
}

impl Handle<CommitmentVerified> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<CommitmentVerified>]) -> anyhow::Result<()> {
        for e in events {
            store::commitment_verified(conn, &e.data).await?;
        }
        Ok(())
    }
}

impl Handle<SpecialInspectionConcluded> for Handlers {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        events: &[Received<SpecialInspectionConcluded>],
    ) -> anyhow::Result<()> {
        for e in events {
            store::special_inspection_concluded(conn, &e.data).await?;
        }
        Ok(())
    }
}

impl Handle<ProblemReported> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemReported>]) -> anyhow::Result<()> {
        // The disclosure policy decides what of the report is kept at all.
        let facts: Vec<_> = events.iter().map(|e| redaction::reported(&e.data)).collect();
        store::problems_reported(conn, &facts).await?;
        let lines = events
            .iter()
            .zip(&facts)
            .map(|(e, f)| {
                let what = domain::said_reported(&f.category, &f.site_name);
                step(e.data.problem_id, e.id, e.data.checked_at, "reported", what)
            })
            .collect();
        record(conn, lines).await
    }
}

impl Handle<ProblemAssigned> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemAssigned>]) -> anyhow::Result<()> {
        let assigned: Vec<_> = events.iter().map(|e| &e.data).collect();
        store::problems_assigned(conn, &assigned).await?;
        let lines = events
            .iter()
            .map(|e| {
                let p = &e.data;
                let what = domain::said_assigned(&p.handover_no, &p.jurisdiction, &p.deadline.to_string());
                step(p.problem_id, e.id, p.assigned_at, "assigned", what)
            })
            .collect();
        record(conn, lines).await
    }
}

impl Handle<HandoverAcknowledged> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<HandoverAcknowledged>]) -> anyhow::Result<()> {
        let acks: Vec<_> = events
            .iter()
            .flat_map(|e| e.data.problems.iter().map(|p| (p.problem_id, p.problem_seq, e.data.acknowledged_at)))
            .collect();
        store::problems_acknowledged(conn, &acks).await?;
        let lines = events
            .iter()
            .flat_map(|e| {
                e.data.problems.iter().map(move |p| {
                    // One history line per problem: the event id alone would name only the first.
                    let source = Uuid::new_v5(&e.id, p.problem_id.as_bytes());
                    let what = domain::said_acknowledged(&e.data.handover_no);
                    step(p.problem_id, source, e.data.acknowledged_at, "acknowledged", what)
                })
            })
            .collect();
        record(conn, lines).await
    }
}

// Reroutes, extensions and progress stages are rare: one statement each, one history write.

impl Handle<ProblemRerouted> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemRerouted>]) -> anyhow::Result<()> {
        let mut lines = Vec::with_capacity(events.len());
        for e in events {
            let r = &e.data;
            store::problem_rerouted(conn, r).await?;
            let what = domain::said_rerouted(&r.from_jurisdiction, &r.to_jurisdiction, &r.deadline.to_string());
            lines.push(note(r.problem_id, e.id, r.rerouted_at, "rerouted", what));
        }
        record(conn, lines).await
    }
}

impl Handle<ProblemExtended> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemExtended>]) -> anyhow::Result<()> {
        let mut lines = Vec::with_capacity(events.len());
        for e in events {
            let x = &e.data;
            store::problem_extended(conn, x).await?;
            let what = domain::said_extended(&x.previous_deadline.to_string(), &x.deadline.to_string());
            lines.push(note(x.problem_id, e.id, x.granted_at, "extended", what));
        }
        record(conn, lines).await
    }
}

impl Handle<RectificationProgressed> for Handlers {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        events: &[Received<RectificationProgressed>],
    ) -> anyhow::Result<()> {
        let mut lines = Vec::with_capacity(events.len());
        for e in events {
            let r = &e.data;
            store::rectification_progressed(conn, r.problem_id, &r.stage, r.percent_done).await?;
            lines.push(note(
                r.problem_id,
                e.id,
                r.reported_at,
                "progressed",
                domain::said_progressed(&r.stage, r.percent_done),
            ));
        }
        record(conn, lines).await
    }
}

impl Handle<ProblemOverdue> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemOverdue>]) -> anyhow::Result<()> {
        let overdue: Vec<_> = events.iter().map(|e| (e.data.problem_id, e.data.overdue_on)).collect();
        store::problems_overdue(conn, &overdue).await?;
        let lines = events
            .iter()
            .map(|e| {
                let o = &e.data;
                // The first moment of the first overdue day, Asia/Shanghai.
                let at = o.overdue_on.midnight().assume_offset(time::macros::offset!(+8));
                note(o.problem_id, e.id, at, "overdue", domain::said_overdue(&o.deadline.to_string()))
            })
            .collect();
        record(conn, lines).await
    }
}

impl Handle<RectificationReported> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<RectificationReported>]) -> anyhow::Result<()> {
        let words: Vec<_> = events
            .iter()
            .map(|e| VerificationWord {
                problem_id: e.data.problem_id,
                seq: e.data.problem_seq,
                status: "rectification_reported",
                at: e.data.reported_at,
                new_deadline: None,
            })
            .collect();
        store::verification_words(conn, &words).await?;
        let lines = events
            .iter()
            .map(|e| {
                let what = domain::said_rectification_reported();
                step(e.data.problem_id, e.id, e.data.reported_at, "rectification_reported", what)
            })
            .collect();
        record(conn, lines).await
    }
}

impl Handle<ProblemClosed> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemClosed>]) -> anyhow::Result<()> {
        let words: Vec<_> = events
            .iter()
            .map(|e| VerificationWord {
                problem_id: e.data.problem_id,
                seq: e.data.problem_seq,
                status: "closed",
                at: e.data.verified_at,
                new_deadline: None,
            })
            .collect();
        store::verification_words(conn, &words).await?;
        let lines = events
            .iter()
            .map(|e| step(e.data.problem_id, e.id, e.data.verified_at, "closed", domain::said_closed()))
            .collect();
        record(conn, lines).await
    }
}

impl Handle<ProblemReopened> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemReopened>]) -> anyhow::Result<()> {
        let words: Vec<_> = events
            .iter()
            .map(|e| VerificationWord {
                problem_id: e.data.problem_id,
                seq: e.data.problem_seq,
                status: "reopened",
                at: e.data.verified_at,
                new_deadline: Some(e.data.deadline),
            })
            .collect();
        store::verification_words(conn, &words).await?;
        let lines = events
            .iter()
            .map(|e| {
                let r = &e.data;
                step(
                    r.problem_id,
                    e.id,
                    r.verified_at,
                    "reopened",
                    domain::said_reopened(&r.result, &r.deadline.to_string()),
                )
            })
            .collect();
        record(conn, lines).await
    }
}
