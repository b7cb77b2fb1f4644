//! What every service runs on: its database pool (migrated), its NATS connection and stream, the
//! outbox relay, the inbox consumers it asks for, background jobs, and the HTTP server with the
//! system routes (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`, dead letters). A
//! service's `lib.rs` starts one, registers its handlers and serves its API.
//!
//! Shutdown (SIGTERM): the HTTP server stops taking requests and finishes those in hand,
//! consumers finish the batch in hand, the relay sends what is committed, NATS is drained.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Extension, Json, Router};
use serde_json::{Value, json};
use sqlx::migrate::Migrator;
use sqlx::{AssertSqlSafe, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audit::AuditLog;
use crate::auth::{Caller, Role, TokenVerifier};
use crate::clock::Clock;
use crate::config::CommonConfig;
use crate::error::ApiError;
use crate::http::JsonBody;
use crate::inbox::Inbox;
use crate::outbox::Outbox;
use crate::routing::{Dispatch, Routes};
use crate::{db, http, messaging};

pub struct Runtime {
    /// The service's name, which is also its Postgres schema.
    pub service: &'static str,
    pub config: CommonConfig,
    pub pool: PgPool,
    pub nats: async_nats::Client,
    pub jetstream: jetstream::Context,
    pub outbox: Outbox,
    pub verifier: Arc<TokenVerifier>,
    /// The clock that drives deadlines: real, or the deployment's simulated one.
    pub clock: Clock,
    pub shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Runtime {
    /// Connects to Postgres (creating the database if needed) and migrates the service's schema,
    /// connects to NATS and makes sure the service's stream exists, and starts the outbox relay.
    pub async fn start(
        service: &'static str,
        config: CommonConfig,
        migrations: &Migrator,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        check_namespace(&config.namespace)?;
        // Install the recorder before anything counts, or early counts are lost.
        http::metrics_handle();
        let verifier = Arc::new(TokenVerifier::from_config(&config.auth)?);
        let pool = db::connect(&config.database_url, config.database_max_connections).await?;
        db::migrate(&pool, service, migrations).await?;
        let (nats, connections) =
            messaging::connect_as(&config, &format!("skyledger-{service}"), Duration::from_secs(30)).await?;
        let jetstream = jetstream::new(nats.clone());
        messaging::ensure_stream(&jetstream, &config.namespace, service, config.stream_replicas).await?;
        let clock = Clock::start(
            config.clock.simulated,
            &jetstream,
            &config.namespace,
            config.stream_replicas,
            shutdown.clone(),
        )
        .await?;
        let outbox = Outbox::new(&config.namespace, service);
        let runtime = Self {
            service,
            pool,
            nats,
            jetstream,
            outbox,
            verifier,
            clock,
            shutdown,
            tasks: TaskTracker::new(),
            config,
        };
        for _ in 0..runtime.config.outbox.relays.max(1) {
            runtime.tasks.spawn(runtime.outbox.clone().run_relay(
                runtime.pool.clone(),
                runtime.jetstream.clone(),
                runtime.config.outbox.clone(),
                connections.clone(),
                runtime.shutdown.clone(),
            ));
        }
        runtime.start_pruning();
        runtime.tasks.spawn(crate::revocation::follow(
            runtime.jetstream.clone(),
            runtime.config.namespace.clone(),
            runtime.config.stream_replicas,
            runtime.verifier.clone(),
            runtime.shutdown.clone(),
        ));
        Ok(runtime)
    }

    /// Consumes the events `routes` handles: one durable consumer on each producer's stream,
    /// filtered to the subjects of the routed kinds.
    pub fn consume<H: Send + Sync + 'static>(&self, routes: Routes<H>) {
        let producers = routes.producers();
        let routes: Arc<dyn Dispatch> = Arc::new(routes);
        for producer in producers {
            let inbox = Inbox {
                service: self.service,
                producer,
                namespace: self.config.namespace.clone(),
                pool: self.pool.clone(),
                config: self.config.consumer.clone(),
                replicas: self.config.stream_replicas,
                routes: routes.clone(),
                nats: self.nats.clone(),
                outbox: self.outbox.clone(),
            };
            self.tasks.spawn(inbox.run(self.shutdown.clone()));
        }
    }

    /// Runs `job` every `period` until shutdown; a failed run is logged and tried next period.
    pub fn every<F, Fut>(&self, name: &'static str, period: Duration, job: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send,
    {
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {
                        if let Err(e) = job().await {
                            tracing::warn!(job = name, error = format!("{e:#}"), "background job failed");
                        }
                    }
                    _ = shutdown.cancelled() => return,
                }
            }
        });
    }

    /// Runs `job` when `wake` is notified (a consumer committed work for it) or at the latest
    /// `period` after its last run; the job may ask to run sooner (`Some(wait)`: a sheet falls
    /// due then). A failed run is logged and tried next period.
    pub fn when_woken<F, Fut>(&self, name: &'static str, wake: Arc<Notify>, period: Duration, job: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<Option<Duration>>> + Send,
    {
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            loop {
                let wait = match job().await {
                    Ok(soon) => soon.map_or(period, |d| d.min(period)),
                    Err(e) => {
                        tracing::warn!(job = name, error = format!("{e:#}"), "background job failed");
                        period
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = wake.notified() => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        });
    }

    /// The tracker of the service's background tasks, for work a service spawns itself; shutdown
    /// waits for it.
    pub fn tasks(&self) -> TaskTracker {
        self.tasks.clone()
    }

    fn start_pruning(&self) {
        let (pool, outbox, schema) = (self.pool.clone(), self.outbox.clone(), self.service);
        let outbox_keep = Duration::from_secs(self.config.outbox.retention_hours * 3600);
        let inbox_keep = Duration::from_secs(self.config.consumer.inbox_retention_hours * 3600);
        self.every("prune", Duration::from_secs(3600), move || {
            let (pool, outbox) = (pool.clone(), outbox.clone());
            async move {
                outbox.prune(&pool, outbox_keep).await?;
                crate::inbox::prune(&pool, schema, inbox_keep).await?;
                Ok(())
            }
        });
    }

    /// Serves `api` plus the system routes on `listen` until shutdown, then waits for the
    /// background tasks and drains NATS.
    pub async fn serve(self, listen: &str, api: Router, openapi: &'static str) -> anyhow::Result<()> {
        let system = SystemState {
            service: self.service,
            pool: self.pool.clone(),
            nats: self.nats.clone(),
            outbox: self.outbox.clone(),
            openapi: Arc::new(crate::openapi_doc::merge(openapi)?),
            clock: self.clock.clone(),
            namespace: self.config.namespace.clone(),
            replicas: self.config.stream_replicas,
        };
        // The audit writer outlives the HTTP server, to record the last requests.
        let audit_shutdown = CancellationToken::new();
        let (audit, audit_writer) =
            AuditLog::start(self.pool.clone(), self.service, self.verifier.clone(), audit_shutdown.clone());
        let api = http::with_admission_limit(api, self.config.overload.limit());
        let router = api
            .merge(system_routes(system))
            .layer(axum::middleware::from_fn_with_state(audit, crate::audit::record))
            .layer(Extension(self.verifier.clone()));
        let router = http::with_standard_layers(
            router,
            self.config.max_body_bytes,
            Duration::from_secs(self.config.request_timeout_secs),
        );
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
        tracing::info!(service = self.service, address = %listener.local_addr()?, "listening");
        // An answer larger than one TCP segment (a batch's results) must not wait for the
        // client's delayed ACK (Nagle): up to 40 ms a request.
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        let shutdown = self.shutdown.clone();
        axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await?;
        audit_shutdown.cancel();
        let _ = audit_writer.await;
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(20), self.tasks.wait()).await.is_err() {
            tracing::warn!("background tasks did not finish in time");
        }
        let _ = self.nats.drain().await;
        self.pool.close().await;
        tracing::info!(service = self.service, "stopped");
        Ok(())
    }
}

fn check_namespace(namespace: &str) -> anyhow::Result<()> {
    let ok = !namespace.is_empty()
        && namespace.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    anyhow::ensure!(ok, "namespace {namespace:?} must be lowercase letters, digits, '_' or '-'");
    Ok(())
}

#[derive(Clone)]
struct SystemState {
    service: &'static str,
    pool: PgPool,
    nats: async_nats::Client,
    outbox: Outbox,
    openapi: Arc<Value>,
    clock: Clock,
    namespace: String,
    replicas: usize,
}

fn system_routes(state: SystemState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/admin/dead-letters", get(list_dead_letters))
        .route("/v1/admin/dead-letters/{id}/replay", post(replay_dead_letter))
        .route("/v1/admin/clock", get(get_clock).post(advance_clock))
        .route("/v1/admin/audit", get(list_audit))
        .route("/v1/admin/tokens/revoke", post(revoke_token))
        .with_state(state)
}

async fn healthz(State(s): State<SystemState>) -> Json<Value> {
    Json(json!({ "status": "ok", "service": s.service }))
}

/// Ready when both Postgres and NATS answer.
async fn readyz(State(s): State<SystemState>) -> impl IntoResponse {
    let postgres = tokio::time::timeout(Duration::from_secs(2), sqlx::query("SELECT 1").execute(&s.pool))
        .await
        .is_ok_and(|r| r.is_ok());
    let nats = matches!(s.nats.connection_state(), async_nats::connection::State::Connected)
        && tokio::time::timeout(Duration::from_secs(2), s.nats.flush()).await.is_ok_and(|r| r.is_ok());
    let status = if postgres && nats { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let word = |ok: bool| if ok { "ok" } else { "unreachable" };
    (status, Json(json!({ "service": s.service, "postgres": word(postgres), "nats": word(nats) })))
}

async fn render_metrics(State(s): State<SystemState>) -> impl IntoResponse {
    if let Ok(backlog) = s.outbox.backlog(&s.pool).await {
        metrics::gauge!("outbox_backlog").set(backlog as f64);
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], http::metrics_handle().render())
}

async fn openapi(State(s): State<SystemState>) -> Json<Value> {
    Json((*s.openapi).clone())
}

#[derive(sqlx::FromRow, serde::Serialize)]
struct DeadLetter {
    id: i64,
    stream: String,
    stream_sequence: i64,
    nats_subject: String,
    event_id: Option<uuid::Uuid>,
    event_type: Option<String>,
    reason: String,
    deliveries: i64,
    #[serde(with = "time::serde::rfc3339")]
    failed_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    replayed_at: Option<time::OffsetDateTime>,
    replay_outcome: Option<String>,
}

async fn list_dead_letters(State(s): State<SystemState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let sql = format!(
        "SELECT id, stream, stream_sequence, nats_subject, event_id, event_type, reason, deliveries, failed_at, replayed_at,
                replay_outcome
         FROM {}.dead_letters ORDER BY id",
        s.service
    );
    let rows: Vec<DeadLetter> = sqlx::query_as(AssertSqlSafe(sql)).fetch_all(&s.pool).await?;
    Ok(Json(json!({ "items": rows })))
}

/// Asks for a dead letter to be tried again: its own consumer applies it within moments, through
/// the inbox, and records the outcome (`replay_outcome`).
async fn replay_dead_letter(
    State(s): State<SystemState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let update = format!("UPDATE {}.dead_letters SET replay_requested_at = now() WHERE id = $1", s.service);
    if sqlx::query(AssertSqlSafe(update)).bind(id).execute(&s.pool).await?.rows_affected() == 0 {
        return Err(ApiError::not_found(format!("dead letter {id}")));
    }
    Ok(Json(json!({ "id": id, "replay_requested": true })))
}

fn clock_view(clock: &Clock) -> Value {
    json!({
        "simulated": clock.is_simulated(),
        "now": crate::csv::timestamp(clock.now()),
        "today": clock.today().to_string(),
        "offset_secs": clock.offset_secs(),
    })
}

async fn get_clock(State(s): State<SystemState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    Ok(Json(clock_view(&s.clock)))
}

#[derive(serde::Deserialize)]
struct AdvanceClock {
    /// Seconds to move the simulated clock forward.
    advance_secs: u64,
}

/// Moves the deployment's simulated clock forward (every service follows within moments).
async fn advance_clock(
    State(s): State<SystemState>,
    caller: Caller,
    JsonBody(request): JsonBody<AdvanceClock>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    if !s.clock.is_simulated() {
        return Err(ApiError::conflict("clock", "the clock is real; set clock.simulated = true to drive it"));
    }
    if request.advance_secs > 10 * 365 * 86_400 {
        return Err(ApiError::invalid("advance_secs", "at most ten years at once"));
    }
    let js = jetstream::new(s.nats.clone());
    let offset = Clock::advance(&js, &s.namespace, s.replicas, Duration::from_secs(request.advance_secs)).await?;
    Ok(Json(
        json!({ "offset_secs": offset, "now": crate::csv::timestamp(time::OffsetDateTime::now_utc() + time::Duration::seconds(offset)) }),
    ))
}

#[derive(serde::Deserialize)]
struct AuditQuery {
    limit: Option<i64>,
    /// Only refused requests (401, 403).
    refused: Option<bool>,
}

#[derive(sqlx::FromRow, serde::Serialize)]
struct AuditEntry {
    #[serde(with = "time::serde::rfc3339")]
    at: time::OffsetDateTime,
    method: String,
    route: String,
    status: i32,
    role: Option<String>,
    team: Option<String>,
    jurisdiction: Option<String>,
    token_id: Option<uuid::Uuid>,
    person_id: Option<uuid::Uuid>,
    person: Option<String>,
    remote: Option<String>,
}

/// The audit log of this service, newest first.
async fn list_audit(
    State(s): State<SystemState>,
    caller: Caller,
    crate::http::QueryParams(q): crate::http::QueryParams<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::invalid("limit", "between 1 and 10000"));
    }
    let sql = format!(
        "SELECT at, method, route, status, role, team, jurisdiction, token_id, person_id, person, remote FROM {}.audit
         WHERE NOT $1 OR status IN (401, 403) ORDER BY id DESC LIMIT $2",
        s.service
    );
    let rows: Vec<AuditEntry> =
        sqlx::query_as(AssertSqlSafe(sql)).bind(q.refused.unwrap_or(false)).bind(limit).fetch_all(&s.pool).await?;
    Ok(Json(json!({ "items": rows })))
}

#[derive(serde::Deserialize)]
struct RevokeRequest {
    /// The token's id (`jti`), or the token itself.
    token: String,
    reason: String,
}

/// Revokes a token for every service of the deployment (each hears of it within moments).
async fn revoke_token(
    State(s): State<SystemState>,
    caller: Caller,
    JsonBody(request): JsonBody<RevokeRequest>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let token_id = crate::auth::token_id(&request.token)
        .ok_or_else(|| ApiError::invalid("token", "a token, or a token's id (a UUID)"))?;
    if request.reason.trim().is_empty() {
        return Err(ApiError::invalid("reason", "say why the token is revoked"));
    }
    let js = jetstream::new(s.nats.clone());
    let revoked = crate::revocation::TokenRevoked { token_id: Some(token_id), person_id: None, reason: request.reason };
    crate::revocation::revoke(&js, &s.namespace, s.replicas, &revoked).await?;
    Ok(Json(json!({ "token_id": token_id, "revoked": true })))
}
