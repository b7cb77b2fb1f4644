//! Intake keeps, from verification's events, whether each ledger entry is closed, which decides
//! whether a later report of the same site and category is a duplicate or a rebound.

use shared::events::{ProblemClosed, ProblemReopened};
use shared::routing::{Handle, Received, Routes};
use sqlx::PgConnection;

use crate::store;

pub struct Handlers;

/// What intake consumes.
pub fn routes() -> Routes<Handlers> {
    Routes::new(Handlers).on::<ProblemClosed>().on::<ProblemReopened>()
}

impl Handle<ProblemClosed> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemClosed>]) -> anyhow::Result<()> {
        let statuses: Vec<_> = events.iter().map(|e| (e.data.problem_id, true, e.data.problem_seq)).collect();
        Ok(store::set_problem_status(conn, &statuses).await?)
    }
}

impl Handle<ProblemReopened> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemReopened>]) -> anyhow::Result<()> {
        let statuses: Vec<_> = events.iter().map(|e| (e.data.problem_id, false, e.data.problem_seq)).collect();
        Ok(store::set_problem_status(conn, &statuses).await?)
    }
}
