//! Verification (核查 / 销号): rectification reports from local governments, verdicts from
//! verifier teams that neither found the problem nor come from its province, and closure.

pub mod api;
pub mod config;
pub mod deadlines;
pub mod domain;
pub mod handlers;
pub mod rechecks;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use shared::runtime::Runtime;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;

pub use config::Config;

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Runs the verification service until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let runtime = Runtime::start("verification", config.common.clone(), &MIGRATIONS, shutdown).await?;
    runtime.consume(handlers::routes());
    let settings = Arc::new(config.verification.clone());
    let (pool, outbox, clock) = (runtime.pool.clone(), runtime.outbox.clone(), runtime.clock.clone());
    runtime.every(
        "deadlines and escalations",
        Duration::from_millis(settings.check_interval_millis.max(50)),
        move || {
            let (pool, outbox, clock, settings) = (pool.clone(), outbox.clone(), clock.clone(), settings.clone());
            async move {
                deadlines::flag_overdue(&pool, &outbox, &clock).await?;
                deadlines::climb_ladder(&pool, &outbox, &clock, &settings.escalation).await?;
                rechecks::sweep_due_rounds(
                    &pool,
                    &clock,
                    settings.recheck_every_rounds,
                    settings.recheck_sample_percent,
                )
                .await?;
                Ok(())
            }
        },
    );
    let state = api::AppState {
        pool: runtime.pool.clone(),
        outbox: runtime.outbox.clone(),
        clock: runtime.clock.clone(),
        recheck_sample_percent: config.verification.recheck_sample_percent,
    };
    runtime.serve(&config.verification.listen, api::router(state), include_str!("../openapi.json")).await
}
