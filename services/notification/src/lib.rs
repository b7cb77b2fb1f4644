//! Notification: tells each local government what concerns it (handover sheets, deadlines
//! coming up, overdue problems, verification results, reroutes, escalations) by signed webhook
//! (Standard Webhooks), e-mail and, for urgent notices, SMS; retrying until delivered, never
//! twice; waiting out quiet hours; and chasing receipts up to the city's package units.

pub mod api;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod handlers;
pub mod people;
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
    let receipts = domain::Receipts::new(key.clone(), &settings.receipt_base_url());
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
    let links = domain::SignInLinks::new(key.clone(), &settings.workbench_url);
    let signer = shared::auth::TokenSigner::load_or_create(std::path::Path::new(&config.common.auth.signing_key_file))
        .ok()
        .filter(|signer| people::signer_matches(signer, &runtime.verifier))
        .map(Arc::new);
    if signer.is_none() {
        tracing::warn!("the signing key file does not match the public key: people cannot sign in here");
    }
    let sender = Arc::new(people::PeopleMail::new(runtime.pool.clone(), links.clone(), &settings)?);
    runtime.every("people's mail", people::SEND_EVERY, move || {
        let sender = sender.clone();
        async move { sender.send_due().await }
    });
    let people_state = people::PeopleState {
        pool: runtime.pool.clone(),
        clock: runtime.clock.clone(),
        links,
        signer,
        verifier: runtime.verifier.clone(),
        jetstream: runtime.jetstream.clone(),
        namespace: config.common.namespace.clone(),
        replicas: config.common.stream_replicas,
        invitation_ttl_secs: settings.invitation_ttl_secs,
        session_ttl_secs: settings.session_ttl_secs,
        links_in_answer: settings.invitation_links_in_answer,
    };
    let state = api::AppState {
        pool: runtime.pool.clone(),
        webhook_deny_hosts: settings.webhook_deny_hosts.clone(),
        receipts,
        clock: runtime.clock.clone(),
        sms,
        outbox: runtime.outbox.clone(),
    };
    let routes = api::router(state).merge(people::router(people_state));
    runtime.serve(&settings.listen, routes, include_str!("../openapi.json")).await
}
