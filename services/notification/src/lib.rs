//! Notification: tells each local government of the problems handed to it, by signed webhook
//! (Standard Webhooks) and e-mail, retrying until delivered, and never twice.

pub mod api;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod handlers;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use shared::runtime::Runtime;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;

pub use config::Config;

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Runs the notification service until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let runtime = Runtime::start("notification", config.common.clone(), &MIGRATIONS, shutdown).await?;
    runtime.consume("assignment", Arc::new(handlers::Handlers));
    let deliverer = Arc::new(delivery::Deliverer::new(
        runtime.pool.clone(),
        runtime.outbox.clone(),
        config.notification.clone(),
        runtime.tasks(),
    )?);
    runtime.every("deliveries", Duration::from_millis(200), move || {
        let deliverer = deliverer.clone();
        async move { deliverer.dispatch_due().await }
    });
    let state = api::AppState {
        pool: runtime.pool.clone(),
        webhook_deny_hosts: config.notification.webhook_deny_hosts.clone(),
    };
    runtime.serve(&config.notification.listen, api::router(state), include_str!("../openapi.json")).await
}
