//! Publication (信息公开): the redacted public record of every problem handed over, its public
//! history and hash chain, statistics, feeds and the public page.

pub mod api;
pub mod config;
pub mod domain;
pub mod handlers;
pub mod render;
pub mod store;

use std::sync::Arc;

use shared::runtime::Runtime;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;

pub use config::Config;

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Runs the publication service until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let runtime = Runtime::start("publication", config.common.clone(), &MIGRATIONS, shutdown).await?;
    let handlers = Arc::new(handlers::Handlers { outbox: runtime.outbox.clone() });
    for producer in ["intake", "assignment", "verification"] {
        runtime.consume(producer, handlers.clone());
    }
    let state = api::AppState {
        pool: runtime.pool.clone(),
        base_url: config.publication.public_base_url.trim_end_matches('/').to_string(),
        feed_size: config.publication.feed_size,
    };
    runtime.serve(&config.publication.listen, api::router(state), include_str!("../openapi.json")).await
}
