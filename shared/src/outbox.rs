//! The transactional outbox. A service records its state change and the events it causes in one
//! transaction; the relay publishes committed events to JetStream with `Nats-Msg-Id` = event id
//! and marks them sent only after JetStream's ack. A crash between the two publishes again, and
//! the stream's duplicate window drops the copy.
//!
//! Relays take the oldest unsent events in turn (row locks, no SKIP LOCKED), so one producer's
//! events about one problem reach its stream in the order they were written, however many
//! relays and instances there are. The relay is woken in-process after a commit
//! ([`Outbox::commit`], [`Outbox::wake`]); a short poll finds what other instances wrote.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishAckFuture};
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Postgres, Transaction};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::OutboxConfig;
use crate::envelope::{Event, nats_subject};
use crate::events::{EventKind, Payload};
use crate::telemetry;

/// Events relayed in one round trip.
const RELAY_BATCH: i64 = 1000;

/// An event to record with `publish_many`.
pub struct Outgoing {
    pub kind: EventKind,
    pub partition: Option<String>,
    pub event: Event,
}

impl Outgoing {
    pub fn new<T: Payload>(partition: Option<&str>, subject: impl Into<String>, data: &T) -> Self {
        Self { kind: T::KIND, partition: partition.map(str::to_owned), event: Event::of(subject, data) }
    }
}

#[derive(Clone)]
pub struct Outbox {
    namespace: Arc<str>,
    schema: Arc<str>,
    wake: Arc<Notify>,
    /// Set when a relay could not get events to JetStream, cleared by the next that could.
    stalled: Arc<AtomicBool>,
}

impl Outbox {
    pub fn new(namespace: &str, schema: &str) -> Self {
        Self {
            namespace: namespace.into(),
            schema: schema.into(),
            wake: Arc::new(Notify::new()),
            stalled: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Whether the last relay could not reach JetStream (the broker is away, or a cluster lost
    /// its quorum and cannot store); cleared as soon as a relay gets through.
    pub fn stalled(&self) -> bool {
        self.stalled.load(Ordering::Relaxed)
    }

    /// Records an event, to be published once the caller's transaction commits.
    /// `partition` (the city code) becomes the subject's last token.
    pub async fn publish<T: Payload>(
        &self,
        conn: &mut PgConnection,
        partition: Option<&str>,
        subject: impl Into<String>,
        data: &T,
    ) -> Result<Event, sqlx::Error> {
        let outgoing = Outgoing::new(partition, subject, data);
        let event = outgoing.event.clone();
        self.publish_many(conn, vec![outgoing]).await?;
        Ok(event)
    }

    /// Commits a transaction that recorded events and wakes the relay for them.
    pub async fn commit(&self, tx: Transaction<'_, Postgres>) -> Result<(), sqlx::Error> {
        tx.commit().await?;
        self.wake();
        Ok(())
    }

    /// Wakes the relay: call after committing a transaction that recorded events.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Records many events in one statement (a batch of site checks, say), to be published
    /// once the caller's transaction commits.
    pub async fn publish_many(&self, conn: &mut PgConnection, events: Vec<Outgoing>) -> Result<(), sqlx::Error> {
        if events.is_empty() {
            return Ok(());
        }
        let traceparent = telemetry::current_traceparent();
        let mut ids = Vec::with_capacity(events.len());
        let mut subjects = Vec::with_capacity(events.len());
        let mut payloads = Vec::with_capacity(events.len());
        for outgoing in events {
            ids.push(outgoing.event.id);
            subjects.push(nats_subject(&self.namespace, &outgoing.kind, outgoing.partition.as_deref()));
            payloads.push(serde_json::to_string(&outgoing.event).expect("an event serialises"));
        }
        // `WITH ORDINALITY … ORDER BY`: positions follow the order the events were given in.
        let sql = format!(
            "INSERT INTO {}.outbox (event_id, nats_subject, payload, traceparent)
             SELECT id, subject, payload, $4
             FROM unnest($1::uuid[], $2::text[], $3::text[]) WITH ORDINALITY AS e(id, subject, payload, n) ORDER BY n",
            self.schema
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(&ids)
            .bind(&subjects)
            .bind(&payloads)
            .bind(traceparent)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Publishes one batch of committed, unsent events; returns how many went out.
    async fn relay_batch(&self, pool: &PgPool, js: &jetstream::Context) -> anyhow::Result<usize> {
        let mut tx = pool.begin().await?;
        // No SKIP LOCKED: a second relay (here or in another instance) waits for this one and
        // then takes the rows after, so events leave in the order they were written.
        let select = format!(
            "SELECT position, event_id, nats_subject, payload, traceparent FROM {}.outbox
             WHERE sent_at IS NULL ORDER BY position LIMIT $1 FOR UPDATE",
            self.schema
        );
        let rows: Vec<(i64, Uuid, String, String, Option<String>)> =
            sqlx::query_as(AssertSqlSafe(select)).bind(RELAY_BATCH).fetch_all(&mut *tx).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut acks: Vec<PublishAckFuture> = Vec::with_capacity(rows.len());
        for (_, event_id, subject, payload, traceparent) in &rows {
            let mut message = jetstream::message::PublishMessage::build()
                .payload(payload.clone().into())
                .message_id(event_id.to_string())
                .header("Content-Type", "application/cloudevents+json");
            if let Some(tp) = traceparent {
                message = message.header("traceparent", tp.as_str());
            }
            acks.push(js.send_publish(subject.clone(), message).await?);
        }
        for (ack, (_, event_id, subject, _, _)) in acks.into_iter().zip(&rows) {
            let ack = ack.await?;
            if ack.duplicate {
                // Expected when events are sent again after a reconnection; otherwise the stream
                // claims an event it may never have stored, which the log should show.
                tracing::info!(%event_id, subject, stream_sequence = ack.sequence, "JetStream already had this event");
                metrics::counter!("outbox_duplicates_total").increment(1);
            }
        }
        let positions: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let update = format!("UPDATE {}.outbox SET sent_at = now() WHERE position = ANY($1)", self.schema);
        sqlx::query(AssertSqlSafe(update)).bind(&positions).execute(&mut *tx).await?;
        tx.commit().await?;
        metrics::counter!("outbox_published_total").increment(rows.len() as u64);
        Ok(rows.len())
    }

    /// Deletes sent events older than the retention; they are kept that long so a broker that
    /// lost acknowledged messages can be refilled.
    pub async fn prune(&self, pool: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
        let sql = format!(
            "DELETE FROM {}.outbox WHERE created_at < now() - make_interval(secs => $1) AND sent_at IS NOT NULL",
            self.schema
        );
        let done = sqlx::query(AssertSqlSafe(sql)).bind(retention.as_secs_f64()).execute(pool).await?;
        Ok(done.rows_affected())
    }

    /// Unsent events, for the metrics.
    pub async fn backlog(&self, pool: &PgPool) -> Result<i64, sqlx::Error> {
        let sql = format!("SELECT count(*) FROM {}.outbox WHERE sent_at IS NULL", self.schema);
        sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(pool).await
    }

    /// Marks the sent events written in the last `window` as unsent, so the relay sends them again
    /// (after a broker restart that may have lost what it acknowledged); returns how many.
    pub async fn resend_recent(&self, pool: &PgPool, window: Duration) -> Result<u64, sqlx::Error> {
        let sql = format!(
            "UPDATE {}.outbox SET sent_at = NULL
             WHERE created_at > now() - make_interval(secs => $1) AND sent_at IS NOT NULL",
            self.schema
        );
        Ok(sqlx::query(AssertSqlSafe(sql)).bind(window.as_secs_f64()).execute(pool).await?.rows_affected())
    }

    /// The relay: runs until `shutdown`, woken in-process when a transaction that wrote events
    /// commits, and polling for what other instances wrote. On shutdown it relays what is left
    /// once more. When the NATS connection comes back after it was lost (`connections` counts
    /// them), or JetStream takes events again after the relay could not get them stored, the
    /// events of the last `resend_after_reconnect_secs` go out again first.
    pub async fn run_relay(
        self,
        pool: PgPool,
        js: jetstream::Context,
        config: OutboxConfig,
        mut connections: watch::Receiver<u64>,
        shutdown: CancellationToken,
    ) {
        let poll = Duration::from_millis(config.poll_millis.max(10));
        let resend_window = Duration::from_secs(config.resend_after_reconnect_secs);
        // The first connection is no reconnection.
        connections.borrow_and_update();
        let mut resend_due = false;
        let mut watching = !resend_window.is_zero();
        loop {
            if resend_due {
                match self.resend_recent(&pool, resend_window).await {
                    Ok(n) => {
                        tracing::info!(events = n, "JetStream back after a loss: sending recent events again");
                        metrics::counter!("outbox_resent_total").increment(n);
                        resend_due = false;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot mark recent events for sending again; retrying"),
                }
            }
            let relayed = self.relay_batch(&pool, &js).await;
            let was_stalled = self.stalled.swap(relayed.is_err(), Ordering::Relaxed);
            if was_stalled && relayed.is_ok() && !resend_window.is_zero() {
                // JetStream could not store for a while (a broker away, a cluster without its
                // quorum) and takes events again: its leaders may have changed meanwhile with
                // some of what they had acknowledged, and the connection need not have dropped
                // for that, so the recent events go once more. The stream's duplicate window
                // and the consumers' inboxes drop what it kept.
                resend_due = true;
            }
            match relayed {
                Ok(n) if n as i64 == RELAY_BATCH => continue,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
            }
            if shutdown.is_cancelled() {
                if let Err(e) = self.relay_batch(&pool, &js).await {
                    tracing::warn!(error = %e, "final outbox relay failed; events stay for the next start");
                }
                return;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                changed = connections.changed(), if watching => {
                    match changed {
                        Ok(()) => resend_due = true,
                        // The client is gone (shutting down): stop watching.
                        Err(_) => watching = false,
                    }
                }
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }
}
