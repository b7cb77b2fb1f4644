//! Assignment (交办): routes each reported problem to the government responsible, gathers a
//! city's problems onto numbered handover sheets with deadlines, and keeps the ledger.

pub mod api;
pub mod config;
pub mod domain;
pub mod export;
pub mod handlers;
pub mod sheets;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use shared::runtime::Runtime;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;

pub use config::Config;

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Runs the assignment service until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let runtime = Runtime::start("assignment", config.common.clone(), &MIGRATIONS, shutdown).await?;
    store::seed_policy(&mut *runtime.pool.acquire().await?, &config.assignment.deadlines, runtime.clock.now()).await?;
    // New problems wake the sheet job (a full sheet leaves at once); it sleeps until the next
    // sheet falls due, and looks several times per window besides (the clock may be moved).
    let new_problems = Arc::new(tokio::sync::Notify::new());
    let wake = new_problems.clone();
    runtime.consume(
        handlers::routes(runtime.clock.clone(), runtime.outbox.clone()).after_commit(move || wake.notify_one()),
    );
    let (pool, outbox, clock) = (runtime.pool.clone(), runtime.outbox.clone(), runtime.clock.clone());
    let settings = Arc::new(config.assignment.clone());
    let tick = Duration::from_millis((config.assignment.gathering_window_millis / 4).clamp(50, 1000));
    runtime.when_woken("handover sheets", new_problems, tick, move || {
        let (pool, outbox, clock, settings) = (pool.clone(), outbox.clone(), clock.clone(), settings.clone());
        async move { sheets::issue_due_sheets(&pool, &outbox, &clock, &settings).await.map(|issued| issued.next_due) }
    });
    let state =
        api::AppState { pool: runtime.pool.clone(), outbox: runtime.outbox.clone(), clock: runtime.clock.clone() };
    runtime.serve(&config.assignment.listen, api::router(state), include_str!("../openapi.json")).await
}
