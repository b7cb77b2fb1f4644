//! Notification turns assignment's and verification's events into notices, keeps each problem's
//! deadline for reminders, and counts an acknowledged sheet (签收) as a receipt.

use shared::envelope::Event;
use shared::events::{
    CITY_ESCALATED, CityEscalated, HANDOVER_ACKNOWLEDGED, HANDOVER_ISSUED, HandoverAcknowledged, HandoverIssued,
    PROBLEM_ASSIGNED, PROBLEM_CLOSED, PROBLEM_EXTENDED, PROBLEM_OVERDUE, PROBLEM_REOPENED, PROBLEM_REROUTED,
    ProblemAssigned, ProblemClosed, ProblemExtended, ProblemOverdue, ProblemReopened, ProblemRerouted,
};
use shared::inbox::EventHandler;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{self, NewNotice, ProblemFacts, Receipts};
use crate::store;

pub struct Handlers {
    pub receipts: Receipts,
    /// Whether an SMS gateway is configured (urgent notices then also go by SMS).
    pub sms: bool,
}

impl Handlers {
    /// Stores a notice made from event `source` and queues its deliveries.
    async fn notify(&self, conn: &mut PgConnection, notice: NewNotice, source: Uuid) -> anyhow::Result<()> {
        if store::insert_notice(conn, &notice, source).await? {
            store::queue_deliveries(conn, Some(notice.id), None, self.sms).await?;
        }
        Ok(())
    }

    async fn known(&self, conn: &mut PgConnection, problem_id: Uuid) -> anyhow::Result<Option<ProblemFacts>> {
        Ok(store::problem(conn, problem_id).await?.map(|p| p.facts()))
    }
}

impl EventHandler for Handlers {
    async fn handle(&self, conn: &mut PgConnection, event: &Event) -> anyhow::Result<()> {
        let Some(kind) = event.kind() else { return Ok(()) };
        if kind == HANDOVER_ISSUED {
            let sheet: HandoverIssued = event.data_as()?;
            for p in &sheet.problems {
                let facts = ProblemFacts {
                    problem_id: p.problem_id,
                    jurisdiction: p.jurisdiction.clone(),
                    category: Some(p.category.clone()),
                    site_name: Some(p.site_name.clone()),
                    description: Some(p.description.clone()),
                    deadline: Some(p.deadline),
                };
                store::note_problem(conn, &facts, &sheet.city_code, sheet.issued_at).await?;
            }
            self.notify(conn, domain::handover_notice(&sheet, &self.receipts), event.id).await?;
        } else if kind == HANDOVER_ACKNOWLEDGED {
            let ack: HandoverAcknowledged = event.data_as()?;
            store::acknowledge_handover(conn, &ack.handover_no, ack.acknowledged_at, "handover").await?;
        } else if kind == PROBLEM_ASSIGNED {
            let e: ProblemAssigned = event.data_as()?;
            let facts = ProblemFacts {
                problem_id: e.problem_id,
                jurisdiction: e.jurisdiction.clone(),
                category: Some(e.category.clone()),
                deadline: Some(e.deadline),
                ..Default::default()
            };
            store::apply_assignment(conn, &facts, &e.city_code, e.problem_seq, e.assigned_at).await?;
        } else if kind == PROBLEM_EXTENDED {
            let e: ProblemExtended = event.data_as()?;
            let facts = ProblemFacts {
                problem_id: e.problem_id,
                jurisdiction: e.jurisdiction.clone(),
                deadline: Some(e.deadline),
                ..Default::default()
            };
            store::apply_assignment(conn, &facts, &e.city_code, e.problem_seq, e.granted_at).await?;
        } else if kind == PROBLEM_REROUTED {
            let e: ProblemRerouted = event.data_as()?;
            let facts = ProblemFacts {
                problem_id: e.problem_id,
                jurisdiction: e.to_jurisdiction.clone(),
                category: Some(e.category.clone()),
                site_name: Some(e.site_name.clone()),
                description: Some(e.description.clone()),
                deadline: Some(e.deadline),
            };
            if store::apply_assignment(conn, &facts, &e.city_code, e.problem_seq, e.rerouted_at).await? {
                self.notify(conn, domain::reroute_notice(&e, &self.receipts), event.id).await?;
            }
        } else if kind == PROBLEM_CLOSED {
            let e: ProblemClosed = event.data_as()?;
            let fresh =
                store::apply_verification(conn, e.problem_id, &e.city_code, e.problem_seq, true, None, e.verified_at)
                    .await?;
            if fresh {
                let known = self.known(conn, e.problem_id).await?;
                self.notify(conn, domain::closed_notice(&e, known.as_ref(), &self.receipts), event.id).await?;
            }
        } else if kind == PROBLEM_REOPENED {
            let e: ProblemReopened = event.data_as()?;
            let fresh = store::apply_verification(
                conn,
                e.problem_id,
                &e.city_code,
                e.problem_seq,
                false,
                Some(e.deadline),
                e.verified_at,
            )
            .await?;
            if fresh {
                let known = self.known(conn, e.problem_id).await?;
                self.notify(conn, domain::reopened_notice(&e, known.as_ref(), &self.receipts), event.id).await?;
            }
        } else if kind == PROBLEM_OVERDUE {
            let e: ProblemOverdue = event.data_as()?;
            let known = self.known(conn, e.problem_id).await?;
            self.notify(conn, domain::overdue_notice(&e, known.as_ref(), &self.receipts), event.id).await?;
        } else if kind == CITY_ESCALATED {
            let e: CityEscalated = event.data_as()?;
            self.notify(conn, domain::escalation_notice(&e, &self.receipts), event.id).await?;
        }
        Ok(())
    }
}
