//! Intake keeps, from verification's events, whether each ledger entry is closed, which decides
//! whether a later report of the same site and category is a duplicate or a rebound; and it
//! enters the rebounds that verification's re-checks find.

use shared::events::{ProblemClosed, ProblemReopened, RecheckFailed};
use shared::outbox::Outbox;
use shared::routing::{Handle, Received, Routes};
use sqlx::PgConnection;

use crate::{recording, store};

pub struct Handlers {
    pub outbox: Outbox,
}

/// What intake consumes.
pub fn routes(outbox: Outbox) -> Routes<Handlers> {
    Routes::new(Handlers { outbox }).on::<ProblemClosed>().on::<ProblemReopened>().on::<RecheckFailed>()
}

impl Handle<RecheckFailed> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<RecheckFailed>]) -> anyhow::Result<()> {
        for e in events {
            recording::record_rebound(conn, &self.outbox, &e.data).await?;
        }
        Ok(())
    }
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
