//! Intake: campaign set-up (rounds, teams, the cities each team covers) and the site checks and
//! problems the inspection teams report.

pub mod api;
pub mod config;
pub mod domain;
pub mod handlers;
pub mod recording;
pub mod store;

use std::sync::Arc;

use shared::runtime::Runtime;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;

pub use config::Config;

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Runs the intake service until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let runtime = Runtime::start("intake", config.common.clone(), &MIGRATIONS, shutdown).await?;
    runtime.consume("verification", Arc::new(handlers::Handlers));
    let state = api::AppState {
        pool: runtime.pool.clone(),
        outbox: runtime.outbox.clone(),
        clock: runtime.clock.clone(),
        max_batch_items: config.intake.max_batch_items,
    };
    runtime.serve(&config.intake.listen, api::router(state), include_str!("../openapi.json")).await
}
