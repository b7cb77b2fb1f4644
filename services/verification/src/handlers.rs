//! Verification keeps, from intake's and assignment's events, the teams (with their provinces)
//! and rounds, and each problem's finder, jurisdiction, sheet and deadline, with the reroutes and
//! extensions that change them.

use shared::envelope::Event;
use shared::events::{
    EventKind, HANDOVER_ACKNOWLEDGED, HandoverAcknowledged, INSPECTION_RECORDED, PROBLEM_ASSIGNED, PROBLEM_EXTENDED,
    PROBLEM_MERGED, PROBLEM_REPORTED, PROBLEM_REROUTED, PROBLEM_WITHDRAWN, ProblemAssigned, ProblemExtended,
    ProblemMerged, ProblemReported, ProblemRerouted, ProblemWithdrawn, ROUND_CONFIGURED, RoundConfigured,
    TEAM_REGISTERED, TeamRegistered,
};
use shared::inbox::EventHandler;
use sqlx::PgConnection;

use crate::store;

pub struct Handlers;

impl EventHandler for Handlers {
    fn ignores(&self, kind: &EventKind) -> bool {
        *kind == INSPECTION_RECORDED
    }

    async fn handle(&self, conn: &mut PgConnection, event: &Event) -> anyhow::Result<()> {
        match event.kind() {
            Some(TEAM_REGISTERED) => {
                let team: TeamRegistered = event.data_as()?;
                store::upsert_team(conn, &team.team, &team.home_province).await?;
            }
            Some(PROBLEM_REPORTED) => store::problem_reported(conn, &event.data_as::<ProblemReported>()?).await?,
            Some(PROBLEM_ASSIGNED) => store::problem_assigned(conn, &event.data_as::<ProblemAssigned>()?).await?,
            Some(HANDOVER_ACKNOWLEDGED) => {
                let ack: HandoverAcknowledged = event.data_as()?;
                for p in ack.problems {
                    store::problem_acknowledged(conn, p.problem_id).await?;
                }
            }
            Some(PROBLEM_REROUTED) => store::problem_rerouted(conn, &event.data_as::<ProblemRerouted>()?).await?,
            Some(PROBLEM_EXTENDED) => {
                let extended: ProblemExtended = event.data_as()?;
                store::problem_extended(conn, extended.problem_id, extended.deadline).await?;
            }
            Some(PROBLEM_WITHDRAWN) => {
                store::take_out(conn, event.data_as::<ProblemWithdrawn>()?.problem_id, "withdrawn").await?
            }
            Some(PROBLEM_MERGED) => {
                store::take_out(conn, event.data_as::<ProblemMerged>()?.problem_id, "merged").await?
            }
            Some(ROUND_CONFIGURED) => {
                let round: RoundConfigured = event.data_as()?;
                store::upsert_round(conn, &round.round, round.starts_on, round.ends_on).await?;
            }
            _ => {}
        }
        Ok(())
    }
}
