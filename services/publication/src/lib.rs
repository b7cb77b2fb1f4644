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
pub mod tiles;
pub mod witness;
pub mod witnessing;
pub mod writer;

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
    let witnesses: Vec<witnessing::Witness> = settings
        .witnesses
        .iter()
        .map(|(label, c)| witnessing::Witness::from_config(label, c))
        .collect::<anyhow::Result<_>>()?;
    let witnesses = Arc::new(witnesses);
    let runtime = Runtime::start("publication", config.common.clone(), &MIGRATIONS, shutdown).await?;
    let pacing = writer::Pacing {
        poll: Duration::from_millis(settings.writer_poll_millis.max(10)),
        chunk: settings.writer_chunk.max(1),
        checkpoint_interval: Duration::from_millis(settings.checkpoint_interval_millis),
    };
    let publisher = Publisher::new(
        runtime.pool.clone(),
        runtime.outbox.clone(),
        signer.clone(),
        DisclosurePolicy { embargo_hours: settings.embargo_hours, require_approval: settings.require_approval },
        runtime.clock.clone(),
        pacing,
    );
    runtime.consume(handlers::routes(handlers::Handlers { publisher: publisher.clone() }));
    // The one writer of the public log: woken after changes, polling besides (embargoes end with
    // time alone), signing checkpoints as the log grows.
    runtime.tasks().spawn(publisher.clone().run(runtime.shutdown.clone()));
    // Witnesses cosign the checkpoints as they are signed; none configured, none asked.
    if !witnesses.is_empty() {
        let witnessing = witnessing::Witnessing::new(
            runtime.pool.clone(),
            signer.clone(),
            witnesses.clone(),
            Duration::from_millis(settings.witness_poll_millis.max(50)),
        );
        runtime.tasks().spawn(witnessing.run(runtime.shutdown.clone()));
    }
    let state = api::AppState {
        pool: runtime.pool.clone(),
        base_url: settings.public_base_url.trim_end_matches('/').to_string(),
        feed_size: settings.feed_size,
        league_min_checks: settings.league_min_checks,
        publisher,
        witnesses,
    };
    runtime.serve(&settings.listen, api::router(state), include_str!("../openapi.json")).await
}
