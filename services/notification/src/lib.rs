//! Notification: tells each local government what concerns it (handover sheets, deadlines
//! coming up, overdue problems, verification results, reroutes, escalations) by signed webhook
//! (Standard Webhooks), e-mail and, for urgent notices, SMS; retrying until delivered, never
//! twice; waiting out quiet hours; and chasing receipts up to the city's package units.

pub mod api;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod handlers;
pub mod schedule;
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
    let settings = config.notification.clone();
    let key = store::receipt_key(&mut *runtime.pool.acquire().await?).await?;
    let receipts = domain::Receipts::new(key, &settings.receipt_base_url());
    let sms = !settings.sms.url.is_empty();
    // New notices wake the deliverer at once; it looks every 200 ms besides (retries fall due).
    let new_notices = Arc::new(tokio::sync::Notify::new());
    let wake = new_notices.clone();
    runtime.consume(
        handlers::routes(handlers::Handlers { receipts: receipts.clone(), sms })
            .after_commit(move || wake.notify_one()),
    );
    let deliverer = Arc::new(delivery::Deliverer::new(
        runtime.pool.clone(),
        runtime.outbox.clone(),
        settings.clone(),
        runtime.clock.clone(),
        runtime.tasks(),
    )?);
    runtime.when_woken("deliveries", new_notices, Duration::from_millis(200), move || {
        let deliverer = deliverer.clone();
        async move { deliverer.dispatch_due().await.map(|()| None) }
    });
    let scheduler = Arc::new(schedule::Scheduler {
        pool: runtime.pool.clone(),
        clock: runtime.clock.clone(),
        receipts: receipts.clone(),
        config: settings.clone(),
        sms,
    });
    runtime.every("schedule", Duration::from_millis(settings.schedule_check_millis.max(100)), move || {
        let scheduler = scheduler.clone();
        async move { scheduler.run_once().await }
    });
    let state = api::AppState {
        pool: runtime.pool.clone(),
        webhook_deny_hosts: settings.webhook_deny_hosts.clone(),
        receipts,
        clock: runtime.clock.clone(),
        sms,
    };
    runtime.serve(&settings.listen, api::router(state), include_str!("../openapi.json")).await
}
