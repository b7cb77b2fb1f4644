//! Intake keeps, from verification's events, whether each ledger entry is closed, which decides
//! whether a later report of the same site and category is a duplicate or a rebound.

use shared::envelope::Event;
use shared::events::{PROBLEM_CLOSED, PROBLEM_REOPENED, ProblemClosed, ProblemReopened};
use shared::inbox::EventHandler;
use sqlx::PgConnection;

use crate::store;

pub struct Handlers;

impl EventHandler for Handlers {
    async fn handle(&self, conn: &mut PgConnection, event: &Event) -> anyhow::Result<()> {
        match event.kind() {
            Some(PROBLEM_CLOSED) => {
                let closed: ProblemClosed = event.data_as()?;
                store::set_problem_status(conn, closed.problem_id, true, closed.problem_seq).await?;
            }
            Some(PROBLEM_REOPENED) => {
                let reopened: ProblemReopened = event.data_as()?;
                store::set_problem_status(conn, reopened.problem_id, false, reopened.problem_seq).await?;
            }
            _ => {}
        }
        Ok(())
    }
}
