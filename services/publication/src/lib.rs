//! Publication (信息公开): the redacted public record of every problem handed over, its public
//! history in a signed Merkle log, statistics, feeds and the public page.

pub mod api;
pub mod config;
pub mod domain;
pub mod frontier;
pub mod handlers;
pub mod merkle;
pub mod public_log;
pub mod redaction;
pub mod render;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use shared::runtime::Runtime;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;

pub use config::Config;

use crate::handlers::Publisher;
use crate::public_log::LogSigner;
use crate::redaction::DisclosurePolicy;

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Runs the publication service until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let settings = &config.publication;
    let signer =
        Arc::new(LogSigner::load_or_create(std::path::Path::new(&settings.checkpoint_key_file), settings.origin())?);
    let runtime = Runtime::start("publication", config.common.clone(), &MIGRATIONS, shutdown).await?;
    let publisher = Publisher {
        outbox: runtime.outbox.clone(),
        signer: signer.clone(),
        policy: DisclosurePolicy { embargo_hours: settings.embargo_hours, require_approval: settings.require_approval },
        clock: runtime.clock.clone(),
    };
    let handlers = Arc::new(handlers::Handlers { publisher: publisher.clone() });
    for producer in ["intake", "assignment", "verification"] {
        runtime.consume(producer, handlers.clone());
    }
    // Embargoes end with time alone, and checkpoints follow the log's growth.
    let (pool, job) = (runtime.pool.clone(), publisher.clone());
    runtime.every("publish-due", Duration::from_millis(settings.checkpoint_interval_millis.max(100)), move || {
        let (pool, job) = (pool.clone(), job.clone());
        async move { api::publish_due(&pool, &job).await }
    });
    let state = api::AppState {
        pool: runtime.pool.clone(),
        base_url: settings.public_base_url.trim_end_matches('/').to_string(),
        feed_size: settings.feed_size,
        publisher,
    };
    runtime.serve(&settings.listen, api::router(state), include_str!("../openapi.json")).await
}
