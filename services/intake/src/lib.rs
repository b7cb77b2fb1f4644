//! Intake: campaign set-up (rounds, teams, the cities each team covers) and the site checks and
//! problems the inspection teams report.

pub mod api;
pub mod config;
pub mod domain;
pub mod evidence;
pub mod handlers;
pub mod open311;
pub mod open311_domain;
pub mod open311_store;
pub mod recording;
pub mod registers;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use shared::runtime::Runtime;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;

pub use config::Config;

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Runs the intake service until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let runtime = Runtime::start("intake", config.common.clone(), &MIGRATIONS, shutdown).await?;
    runtime.consume(handlers::routes(runtime.outbox.clone()));
    let (pool, retention) = (runtime.pool.clone(), config.intake.retention.clone());
    runtime.every("complainant retention", Duration::from_secs(retention.check_interval_secs.max(1)), move || {
        let pool = pool.clone();
        async move {
            let erased =
                open311_store::erase_complainants(&mut *pool.acquire().await?, retention.complainant_days).await?;
            if erased > 0 {
                tracing::info!(erased, "complainants' contact details erased past their retention");
            }
            Ok(())
        }
    });
    let state = api::AppState {
        pool: runtime.pool.clone(),
        outbox: runtime.outbox.clone(),
        clock: runtime.clock.clone(),
        max_batch_items: config.intake.max_batch_items,
    };
    let open311 = open311::router(open311::Open311State {
        pool: runtime.pool.clone(),
        outbox: runtime.outbox.clone(),
        clock: runtime.clock.clone(),
        config: Arc::new(config.intake.open311.clone()),
        public_base_url: config.intake.public_base_url.clone(),
    });
    let evidence = evidence::router(evidence::EvidenceState {
        pool: runtime.pool.clone(),
        store: evidence::open_store(&runtime).await?,
        config: Arc::new(config.intake.evidence.clone()),
        public_base_url: config.intake.public_base_url.clone(),
    });
    // Intake is where reports enter: it takes none it could not pass on (see the function).
    let routes = shared::http::refuse_writes_while_stalled(
        api::router(state).merge(open311).merge(evidence),
        runtime.outbox.clone(),
    );
    runtime.serve(&config.intake.listen, routes, include_str!("../openapi.json")).await
}
