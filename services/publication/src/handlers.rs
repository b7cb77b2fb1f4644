//! Publication builds the public record from intake's, assignment's and verification's events,
//! which may arrive in any order across producers, and announces each public entry.

use std::collections::BTreeMap;
use std::sync::Arc;

use shared::clock::Clock;
use shared::events::{
    CityEscalated, EntryPublished, HandoverAcknowledged, InspectionsRecorded, ProblemAssigned, ProblemClosed,
    ProblemExtended, ProblemOverdue, ProblemReopened, ProblemReported, ProblemRerouted, RectificationProgressed,
    RectificationReported, RoundConfigured, TeamAssigned,
};
use shared::outbox::Outbox;
use shared::routing::{Handle, Received, Routes};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain;
use crate::public_log::LogSigner;
use crate::redaction::{self, DisclosurePolicy};
use crate::store::{self, HistoryLine, Publishing, VerificationWord};

#[derive(Clone)]
pub struct Publisher {
    pub outbox: Outbox,
    pub signer: Arc<LogSigner>,
    pub policy: DisclosurePolicy,
    pub clock: Clock,
}

impl Publisher {
    /// Re-derives the problem's public state and announces whatever it added to the log.
    pub async fn refresh(&self, conn: &mut PgConnection, problem_id: Uuid) -> anyhow::Result<()> {
        let publishing = Publishing { policy: self.policy, now: self.clock.now(), signer: &self.signer };
        for entry in store::refresh(conn, problem_id, &publishing).await? {
            let event = EntryPublished {
                entry_seq: entry.index,
                problem_id,
                status: entry.status,
                entry_hash: entry.leaf_hash,
            };
            self.outbox.publish(conn, entry.city_code.as_deref(), entry.index.to_string(), &event).await?;
        }
        Ok(())
    }
}

pub struct Handlers {
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

/// What publication consumes.
pub fn routes(handlers: Handlers) -> Routes<Handlers> {
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
}

impl Handle<InspectionsRecorded> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<InspectionsRecorded>]) -> anyhow::Result<()> {
        // Summed per round and city first: one row each in one statement.
        let mut counts: BTreeMap<(&str, &str), (i64, i64)> = BTreeMap::new();
        for e in events {
            for check in &e.data.checks {
                let count = counts.entry((check.round.as_str(), e.data.city_code.as_str())).or_default();
                count.0 += 1;
                count.1 += i64::from(check.duplicates);
            }
        }
        let counts: Vec<_> = counts
            .into_iter()
            .map(|((round, city), (checks, dups))| (round.into(), city.into(), checks, dups))
            .collect();
        Ok(store::count_inspections(conn, &counts).await?)
    }
}

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
            store::team_assigned(conn, &e.data.round, &e.data.team).await?;
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

impl Handle<ProblemReported> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemReported>]) -> anyhow::Result<()> {
        for e in events {
            let p = &e.data;
            // The disclosure policy decides what of the report is kept at all.
            let facts = redaction::reported(p);
            store::problem_reported(conn, &facts).await?;
            let what = domain::said_reported(&facts.category, &facts.site_name);
            store::add_history(conn, &line(p.problem_id, e.id, p.checked_at, "reported", &what)).await?;
            self.publisher.refresh(conn, p.problem_id).await?;
        }
        Ok(())
    }
}

impl Handle<ProblemAssigned> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemAssigned>]) -> anyhow::Result<()> {
        for e in events {
            let p = &e.data;
            store::problem_assigned(conn, p).await?;
            let what = domain::said_assigned(&p.handover_no, &p.jurisdiction, &p.deadline.to_string());
            store::add_history(conn, &line(p.problem_id, e.id, p.assigned_at, "assigned", &what)).await?;
            self.publisher.refresh(conn, p.problem_id).await?;
        }
        Ok(())
    }
}

impl Handle<HandoverAcknowledged> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<HandoverAcknowledged>]) -> anyhow::Result<()> {
        for e in events {
            let ack = &e.data;
            for p in &ack.problems {
                store::problem_acknowledged(conn, p.problem_id, p.problem_seq, ack.acknowledged_at).await?;
                // One history row per problem: the event id alone would name only the first.
                let source = Uuid::new_v5(&e.id, p.problem_id.as_bytes());
                let what = domain::said_acknowledged(&ack.handover_no);
                let history = line(p.problem_id, source, ack.acknowledged_at, "acknowledged", &what);
                store::add_history(conn, &history).await?;
                self.publisher.refresh(conn, p.problem_id).await?;
            }
        }
        Ok(())
    }
}

impl Handle<ProblemRerouted> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemRerouted>]) -> anyhow::Result<()> {
        for e in events {
            let r = &e.data;
            store::problem_rerouted(conn, r).await?;
            let what = domain::said_rerouted(&r.from_jurisdiction, &r.to_jurisdiction, &r.deadline.to_string());
            store::add_history(conn, &note(r.problem_id, e.id, r.rerouted_at, "rerouted", &what)).await?;
            self.publisher.refresh(conn, r.problem_id).await?;
        }
        Ok(())
    }
}

impl Handle<ProblemExtended> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemExtended>]) -> anyhow::Result<()> {
        for e in events {
            let x = &e.data;
            store::problem_extended(conn, x).await?;
            let what = domain::said_extended(&x.previous_deadline.to_string(), &x.deadline.to_string());
            store::add_history(conn, &note(x.problem_id, e.id, x.granted_at, "extended", &what)).await?;
            self.publisher.refresh(conn, x.problem_id).await?;
        }
        Ok(())
    }
}

impl Handle<RectificationProgressed> for Handlers {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        events: &[Received<RectificationProgressed>],
    ) -> anyhow::Result<()> {
        for e in events {
            let r = &e.data;
            store::rectification_progressed(conn, r.problem_id, &r.stage, r.percent_done).await?;
            let what = domain::said_progressed(&r.stage, r.percent_done);
            store::add_history(conn, &note(r.problem_id, e.id, r.reported_at, "progressed", &what)).await?;
            self.publisher.refresh(conn, r.problem_id).await?;
        }
        Ok(())
    }
}

impl Handle<ProblemOverdue> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemOverdue>]) -> anyhow::Result<()> {
        for e in events {
            let o = &e.data;
            store::problem_overdue(conn, o.problem_id, o.overdue_on).await?;
            let what = domain::said_overdue(&o.deadline.to_string());
            // The first moment of the first overdue day, Asia/Shanghai.
            let at = o.overdue_on.midnight().assume_offset(time::macros::offset!(+8));
            store::add_history(conn, &note(o.problem_id, e.id, at, "overdue", &what)).await?;
            self.publisher.refresh(conn, o.problem_id).await?;
        }
        Ok(())
    }
}

impl Handle<RectificationReported> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<RectificationReported>]) -> anyhow::Result<()> {
        for e in events {
            let r = &e.data;
            let word = VerificationWord {
                problem_id: r.problem_id,
                seq: r.problem_seq,
                status: "rectification_reported",
                at: r.reported_at,
                new_deadline: None,
            };
            store::verification_word(conn, &word).await?;
            let what = domain::said_rectification_reported();
            let history = line(r.problem_id, e.id, r.reported_at, "rectification_reported", &what);
            store::add_history(conn, &history).await?;
            self.publisher.refresh(conn, r.problem_id).await?;
        }
        Ok(())
    }
}

impl Handle<ProblemClosed> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemClosed>]) -> anyhow::Result<()> {
        for e in events {
            let c = &e.data;
            let word = VerificationWord {
                problem_id: c.problem_id,
                seq: c.problem_seq,
                status: "closed",
                at: c.verified_at,
                new_deadline: None,
            };
            store::verification_word(conn, &word).await?;
            let what = domain::said_closed();
            store::add_history(conn, &line(c.problem_id, e.id, c.verified_at, "closed", &what)).await?;
            self.publisher.refresh(conn, c.problem_id).await?;
        }
        Ok(())
    }
}

impl Handle<ProblemReopened> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemReopened>]) -> anyhow::Result<()> {
        for e in events {
            let r = &e.data;
            let word = VerificationWord {
                problem_id: r.problem_id,
                seq: r.problem_seq,
                status: "reopened",
                at: r.verified_at,
                new_deadline: Some(r.deadline),
            };
            store::verification_word(conn, &word).await?;
            let what = domain::said_reopened(&r.result, &r.deadline.to_string());
            store::add_history(conn, &line(r.problem_id, e.id, r.verified_at, "reopened", &what)).await?;
            self.publisher.refresh(conn, r.problem_id).await?;
        }
        Ok(())
    }
}
