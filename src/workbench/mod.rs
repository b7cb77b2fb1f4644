//! The one origin people use (`skyledger serve workbench`, `http://127.0.0.1:8080/` by default):
//! every service's API under `/api/<service>/`, routed by a reverse proxy that holds no rules;
//! the public page and feeds at `/` (publication's); and the workbench, the screens of the
//! local governments, verifiers and campaign office, at `/workbench`; and the inspectors' field
//! app at `/field/`.
//!
//! The screens read and write only through the services' published APIs, with the signed-in
//! person's own token, so every rule (who may see what, who may act) stays in the service that
//! owns it. The token travels in an HttpOnly, SameSite=Strict cookie; every form carries the
//! CSRF token derived from it.

mod api;
mod field;
mod pages;

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use axum_reverse_proxy::ReverseProxy;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use api::Upstreams;

/// `[workbench]` in the configuration (`SKYLEDGER__WORKBENCH__LISTEN=…`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkbenchConfig {
    pub listen: String,
    /// Mark the session cookie `Secure`: on when the origin is served over HTTPS (behind a TLS
    /// proxy or an Ingress), so the browser never sends it in clear.
    pub secure_cookies: bool,
    /// Rows per page of the ledger screen.
    pub page_size: usize,
}

impl Default for WorkbenchConfig {
    fn default() -> Self {
        Self { listen: "127.0.0.1:8080".into(), secure_cookies: false, page_size: 50 }
    }
}

/// The configured workbench and the services it fronts.
pub fn load() -> anyhow::Result<(WorkbenchConfig, Upstreams)> {
    let (_, workbench) = shared::config::load::<WorkbenchConfig>("workbench")?;
    let upstreams = Upstreams {
        intake: format!("http://{}", intake::Config::load()?.intake.listen),
        assignment: format!("http://{}", assignment::Config::load()?.assignment.listen),
        verification: format!("http://{}", verification::Config::load()?.verification.listen),
        notification: format!("http://{}", notification::Config::load()?.notification.listen),
        publication: format!("http://{}", publication::Config::load()?.publication.listen),
    };
    Ok((workbench, upstreams))
}

/// The proxy routes: `/api/<service>/…` to each service with the prefix taken off, and
/// everything the workbench does not answer itself to publication (the public page, feeds).
fn proxies(upstreams: &Upstreams) -> Router {
    let mut router = Router::new();
    for (name, url) in upstreams.all() {
        router = router.merge(Router::from(ReverseProxy::new(format!("/api/{name}"), url.to_string())));
    }
    router.fallback_service(ReverseProxy::new("", upstreams.publication.as_str()))
}

pub fn router(config: WorkbenchConfig, upstreams: Upstreams) -> anyhow::Result<Router> {
    let state = pages::State::new(config, upstreams.clone())?;
    let pages = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/sign-in/{code}", get(pages::sign_in_page))
        .route("/sign-in", post(pages::sign_in))
        .route("/sign-out", post(pages::sign_out))
        .route("/workbench", get(pages::home))
        .route("/field", get(field::to_app))
        .route("/field/", get(field::app))
        .route("/field/app.js", get(field::script))
        .route("/field/sw.js", get(field::service_worker))
        .route("/field/icon.svg", get(field::icon))
        .route("/field/manifest.webmanifest", get(field::manifest))
        .route("/field/session", get(field::session))
        .route("/workbench/people", get(pages::people).post(pages::invite))
        .route("/workbench/campaign", get(pages::campaign))
        .route("/workbench/campaign/{what}", post(pages::set_up))
        .route("/workbench/people/{id}/revoke", post(pages::revoke))
        .route("/workbench/handovers/{no}/acknowledge", post(pages::acknowledge))
        .route("/workbench/problems/{id}", get(pages::problem))
        .route("/workbench/special-inspections/{id}", get(pages::special_inspection))
        .route("/workbench/problems/{id}/rectification", post(pages::rectify))
        .route("/workbench/problems/{id}/verdict", post(pages::verdict))
        .route("/workbench/problems/{id}/extension", post(pages::extension))
        .route("/workbench/problems/{id}/progress", post(pages::progress))
        .route("/workbench/problems/{id}/dispute", post(pages::dispute))
        .route("/workbench/problems/{id}/dispute/dismiss", post(pages::dismiss_dispute))
        .route("/workbench/extensions/{id}/{decision}", post(pages::decide_extension))
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024 * 1024))
        .with_state(state);
    Ok(pages.merge(proxies(&upstreams)))
}

/// Serves the origin until `shutdown`.
pub async fn run(config: WorkbenchConfig, upstreams: Upstreams, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.listen).await?;
    tracing::info!(listen = %config.listen, "the workbench and the one origin are up");
    let app = router(config, upstreams)?;
    axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    // Let in-flight proxied requests finish their last bytes.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(())
}
