//! Verification (核查 / 销号): rectification reports from local governments, verdicts from
//! verifier teams that neither found the problem nor come from its province, and closure.

pub mod api;
pub mod config;
pub mod domain;
pub mod handlers;
pub mod store;

use std::sync::Arc;

use shared::runtime::Runtime;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;

pub use config::Config;

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Runs the verification service until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let runtime = Runtime::start("verification", config.common.clone(), &MIGRATIONS, shutdown).await?;
    runtime.consume("intake", Arc::new(handlers::Handlers));
    runtime.consume("assignment", Arc::new(handlers::Handlers));
    let state = api::AppState {
        pool: runtime.pool.clone(),
        outbox: runtime.outbox.clone(),
        clock: runtime.clock.clone(),
        reopened_deadline_days: config.verification.reopened_deadline_days,
    };
    runtime.serve(&config.verification.listen, api::router(state), include_str!("../openapi.json")).await
}
