//! Assignment takes reported problems from intake into the ledger, and keeps each entry's
//! status from verification's events.

use shared::clock::Clock;
use shared::events::{
    NoticeReceipted, ProblemClosed, ProblemMerged, ProblemOverdue, ProblemReopened, ProblemReported, ProblemWithdrawn,
    RectificationReported,
};
use shared::outbox::Outbox;
use shared::routing::{Handle, Received, Routes};
use sqlx::PgConnection;

use crate::domain;
use crate::store::{self, VerificationWord};

pub struct Handlers {
    pub clock: Clock,
    pub outbox: Outbox,
}

/// What assignment consumes.
pub fn routes(clock: Clock, outbox: Outbox) -> Routes<Handlers> {
    Routes::new(Handlers { clock, outbox })
        .on::<NoticeReceipted>()
        .on::<ProblemReported>()
        .on::<ProblemWithdrawn>()
        .on::<ProblemMerged>()
        .on::<RectificationReported>()
        .on::<ProblemClosed>()
        .on::<ProblemReopened>()
        .on::<ProblemOverdue>()
}

impl Handle<ProblemReported> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemReported>]) -> anyhow::Result<()> {
        let received: Vec<store::Received<'_>> = events
            .iter()
            .map(|e| store::Received {
                problem: &e.data,
                jurisdiction: domain::responsible_jurisdiction(&e.data.city_code, e.data.county_code.as_deref()),
            })
            .collect();
        Ok(store::receive_problems(conn, &received, self.clock.now()).await?)
    }
}

impl Handle<ProblemWithdrawn> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemWithdrawn>]) -> anyhow::Result<()> {
        let ids: Vec<_> = events.iter().map(|e| e.data.problem_id).collect();
        Ok(store::take_out(conn, &ids, "withdrawn").await?)
    }
}

impl Handle<ProblemMerged> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemMerged>]) -> anyhow::Result<()> {
        let ids: Vec<_> = events.iter().map(|e| e.data.problem_id).collect();
        Ok(store::take_out(conn, &ids, "merged").await?)
    }
}

impl Handle<RectificationReported> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<RectificationReported>]) -> anyhow::Result<()> {
        let words: Vec<_> = events
            .iter()
            .map(|e| VerificationWord {
                problem_id: e.data.problem_id,
                status: "rectification_reported",
                seq: e.data.problem_seq,
                deadline: None,
            })
            .collect();
        Ok(store::apply_verification(conn, &words).await?)
    }
}

impl Handle<ProblemClosed> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemClosed>]) -> anyhow::Result<()> {
        let words: Vec<_> = events
            .iter()
            .map(|e| VerificationWord {
                problem_id: e.data.problem_id,
                status: "closed",
                seq: e.data.problem_seq,
                deadline: None,
            })
            .collect();
        Ok(store::apply_verification(conn, &words).await?)
    }
}

impl Handle<ProblemReopened> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemReopened>]) -> anyhow::Result<()> {
        let words: Vec<_> = events
            .iter()
            .map(|e| VerificationWord {
                problem_id: e.data.problem_id,
                status: "reopened",
                seq: e.data.problem_seq,
                deadline: Some(e.data.deadline),
            })
            .collect();
        Ok(store::apply_verification(conn, &words).await?)
    }
}

impl Handle<ProblemOverdue> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemOverdue>]) -> anyhow::Result<()> {
        let overdue: Vec<_> = events.iter().map(|e| (e.data.problem_id, e.data.deadline)).collect();
        Ok(store::mark_overdue(conn, &overdue).await?)
    }
}

/// 签收 pressed on a handover notice's receipt page acknowledges the sheet, as the city
/// government's own acknowledgement would: only a notice addressed to the city government does
/// (a package unit's copy does not sign for the city).
impl Handle<NoticeReceipted> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<NoticeReceipted>]) -> anyhow::Result<()> {
        for receipt in events {
            let Some(no) = &receipt.data.handover_no else { continue };
            if !domain::receipt_acknowledges_sheet(&receipt.data.jurisdiction, &receipt.data.city_code) {
                continue;
            }
            if let Some(sheet) = store::handover(conn, no, true).await?
                && sheet.city_code == receipt.data.city_code
            {
                crate::sheets::acknowledge(conn, &self.outbox, &sheet, receipt.data.received_at).await?;
            }
        }
        Ok(())
    }
}
