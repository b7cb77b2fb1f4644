//! Assignment takes reported problems from intake into the ledger, and keeps each entry's
//! status from verification's events.

use shared::clock::Clock;
use shared::events::{
    ProblemClosed, ProblemMerged, ProblemOverdue, ProblemReopened, ProblemReported, ProblemWithdrawn,
    RectificationReported,
};
use shared::routing::{Handle, Received, Routes};
use sqlx::PgConnection;

use crate::domain;
use crate::store::{self, VerificationWord};

pub struct Handlers {
    pub clock: Clock,
}

/// What assignment consumes.
pub fn routes(clock: Clock) -> Routes<Handlers> {
    Routes::new(Handlers { clock })
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
