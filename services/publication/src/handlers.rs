//! Publication builds the public record from intake's, assignment's and verification's events,
//! which may arrive in any order across producers, and announces each public entry.

use shared::envelope::Event;
use shared::events::{
    ENTRY_PUBLISHED, EntryPublished, HANDOVER_ACKNOWLEDGED, HandoverAcknowledged, INSPECTION_RECORDED,
    InspectionRecorded, PROBLEM_ASSIGNED, PROBLEM_CLOSED, PROBLEM_REOPENED, PROBLEM_REPORTED, ProblemAssigned,
    ProblemClosed, ProblemReopened, ProblemReported, RECTIFICATION_REPORTED, RectificationReported,
};
use shared::inbox::EventHandler;
use shared::outbox::Outbox;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain;
use crate::store::{self, VerificationWord};

pub struct Handlers {
    pub outbox: Outbox,
}

impl Handlers {
    /// Re-derives the problem's public state and announces whatever it added to the chain.
    async fn refresh(&self, conn: &mut PgConnection, problem_id: Uuid) -> anyhow::Result<()> {
        for entry in store::refresh(conn, problem_id).await? {
            let event =
                EntryPublished { entry_seq: entry.seq, problem_id, status: entry.status, entry_hash: entry.entry_hash };
            self.outbox
                .publish(conn, &ENTRY_PUBLISHED, entry.city_code.as_deref(), entry.seq.to_string(), &event)
                .await?;
        }
        Ok(())
    }
}

impl EventHandler for Handlers {
    async fn handle(&self, conn: &mut PgConnection, event: &Event) -> anyhow::Result<()> {
        let problem_id = match event.kind() {
            Some(INSPECTION_RECORDED) => {
                store::count_inspection(conn, &event.data_as::<InspectionRecorded>()?).await?;
                return Ok(());
            }
            Some(PROBLEM_REPORTED) => {
                let p: ProblemReported = event.data_as()?;
                store::problem_reported(conn, &p).await?;
                let what = domain::said_reported(&p.category, &p.site.name);
                store::add_history(conn, p.problem_id, event.id, p.checked_at, "reported", &what).await?;
                p.problem_id
            }
            Some(PROBLEM_ASSIGNED) => {
                let p: ProblemAssigned = event.data_as()?;
                store::problem_assigned(conn, &p).await?;
                let what = domain::said_assigned(&p.handover_no, &p.jurisdiction, &p.deadline.to_string());
                store::add_history(conn, p.problem_id, event.id, p.assigned_at, "assigned", &what).await?;
                p.problem_id
            }
            Some(HANDOVER_ACKNOWLEDGED) => {
                let ack: HandoverAcknowledged = event.data_as()?;
                for p in &ack.problems {
                    store::problem_acknowledged(conn, p.problem_id, p.problem_seq, ack.acknowledged_at).await?;
                    // One history row per problem: the event id alone would name only the first.
                    let source = Uuid::new_v5(&event.id, p.problem_id.as_bytes());
                    let what = domain::said_acknowledged(&ack.handover_no);
                    store::add_history(conn, p.problem_id, source, ack.acknowledged_at, "acknowledged", &what).await?;
                    self.refresh(conn, p.problem_id).await?;
                }
                return Ok(());
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
                store::add_history(
                    conn,
                    r.problem_id,
                    event.id,
                    r.reported_at,
                    "rectification_reported",
                    &domain::said_rectification_reported(),
                )
                .await?;
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
                store::add_history(conn, c.problem_id, event.id, c.verified_at, "closed", &domain::said_closed())
                    .await?;
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
                store::add_history(conn, r.problem_id, event.id, r.verified_at, "reopened", &what).await?;
                r.problem_id
            }
            _ => return Ok(()),
        };
        self.refresh(conn, problem_id).await
    }
}
