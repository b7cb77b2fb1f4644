//! Assignment takes reported problems from intake into the ledger, and keeps each entry's
//! status from verification's events.

use shared::clock::Clock;
use shared::envelope::Event;
use shared::events::{
    EventKind, INSPECTION_RECORDED, PROBLEM_CLOSED, PROBLEM_MERGED, PROBLEM_OVERDUE, PROBLEM_REOPENED,
    PROBLEM_REPORTED, PROBLEM_WITHDRAWN, ProblemClosed, ProblemMerged, ProblemOverdue, ProblemReopened,
    ProblemReported, ProblemWithdrawn, RECTIFICATION_REPORTED, RectificationReported,
};
use shared::inbox::EventHandler;
use sqlx::PgConnection;

use crate::{domain, store};

pub struct Handlers {
    pub clock: Clock,
}

impl EventHandler for Handlers {
    fn ignores(&self, kind: &EventKind) -> bool {
        *kind == INSPECTION_RECORDED
    }

    async fn handle(&self, conn: &mut PgConnection, event: &Event) -> anyhow::Result<()> {
        match event.kind() {
            Some(PROBLEM_REPORTED) => {
                let problem: ProblemReported = event.data_as()?;
                let jurisdiction = domain::responsible_jurisdiction(&problem.city_code, problem.county_code.as_deref());
                store::receive_problem(conn, &problem, &jurisdiction, self.clock.now()).await?;
            }
            Some(RECTIFICATION_REPORTED) => {
                let r: RectificationReported = event.data_as()?;
                store::apply_verification(conn, r.problem_id, "rectification_reported", r.problem_seq, None).await?;
            }
            Some(PROBLEM_CLOSED) => {
                let c: ProblemClosed = event.data_as()?;
                store::apply_verification(conn, c.problem_id, "closed", c.problem_seq, None).await?;
            }
            Some(PROBLEM_REOPENED) => {
                let r: ProblemReopened = event.data_as()?;
                store::apply_verification(conn, r.problem_id, "reopened", r.problem_seq, Some(r.deadline)).await?;
            }
            Some(PROBLEM_WITHDRAWN) => {
                let w: ProblemWithdrawn = event.data_as()?;
                store::take_out(conn, w.problem_id, "withdrawn").await?;
            }
            Some(PROBLEM_MERGED) => {
                let m: ProblemMerged = event.data_as()?;
                store::take_out(conn, m.problem_id, "merged").await?;
            }
            Some(PROBLEM_OVERDUE) => {
                let o: ProblemOverdue = event.data_as()?;
                store::mark_overdue(conn, o.problem_id, o.deadline).await?;
            }
            _ => {}
        }
        Ok(())
    }
}
