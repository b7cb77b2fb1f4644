//! Verification keeps, from intake's and assignment's events, the teams (with their provinces)
//! and rounds, and each problem's finder, jurisdiction, sheet and deadline, with the reroutes and
//! extensions that change them.

use shared::events::{
    HandoverAcknowledged, ProblemAssigned, ProblemExtended, ProblemMerged, ProblemReported, ProblemRerouted,
    ProblemWithdrawn, RoundConfigured, TeamRegistered,
};
use shared::routing::{Handle, Received, Routes};
use sqlx::PgConnection;

use crate::store;

pub struct Handlers;

/// What verification consumes.
pub fn routes() -> Routes<Handlers> {
    Routes::new(Handlers)
        .on::<TeamRegistered>()
        .on::<RoundConfigured>()
        .on::<ProblemReported>()
        .on::<ProblemWithdrawn>()
        .on::<ProblemMerged>()
        .on::<ProblemAssigned>()
        .on::<HandoverAcknowledged>()
        .on::<ProblemRerouted>()
        .on::<ProblemExtended>()
}

impl Handle<TeamRegistered> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<TeamRegistered>]) -> anyhow::Result<()> {
        let teams: Vec<_> = events.iter().map(|e| (e.data.team.as_str(), e.data.home_province.as_str())).collect();
        Ok(store::upsert_teams(conn, &teams).await?)
    }
}

impl Handle<RoundConfigured> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<RoundConfigured>]) -> anyhow::Result<()> {
        let rounds: Vec<_> = events.iter().map(|e| (e.data.round.as_str(), e.data.starts_on, e.data.ends_on)).collect();
        Ok(store::upsert_rounds(conn, &rounds).await?)
    }
}

impl Handle<ProblemReported> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemReported>]) -> anyhow::Result<()> {
        let reported: Vec<_> = events.iter().map(|e| &e.data).collect();
        Ok(store::problems_reported(conn, &reported).await?)
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

impl Handle<ProblemAssigned> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemAssigned>]) -> anyhow::Result<()> {
        let assigned: Vec<_> = events.iter().map(|e| &e.data).collect();
        Ok(store::problems_assigned(conn, &assigned).await?)
    }
}

impl Handle<HandoverAcknowledged> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<HandoverAcknowledged>]) -> anyhow::Result<()> {
        let ids: Vec<_> = events.iter().flat_map(|e| e.data.problems.iter().map(|p| p.problem_id)).collect();
        Ok(store::problems_acknowledged(conn, &ids).await?)
    }
}

// Reroutes and extensions are the campaign office's rare acts: one statement each.

impl Handle<ProblemRerouted> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemRerouted>]) -> anyhow::Result<()> {
        for e in events {
            store::problem_rerouted(conn, &e.data).await?;
        }
        Ok(())
    }
}

impl Handle<ProblemExtended> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemExtended>]) -> anyhow::Result<()> {
        for e in events {
            store::problem_extended(conn, e.data.problem_id, e.data.deadline).await?;
        }
        Ok(())
    }
}
