//! The inbox consumer. It pulls a batch from a service's durable consumer, applies it in one
//! transaction that also records each event id (so a redelivery has no second effect), commits,
//! and only then acks. A message that keeps failing is kept in `dead_letters` with its reason
//! and terminated, and the stream moves on.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::MessagesErrorKind;
use async_nats::jetstream::{self, AckKind, Message};
use futures::StreamExt;
use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::config::ConsumerConfig;
use crate::envelope::Event;
use crate::messaging;
use crate::telemetry;

/// What a service does with the events of another.
pub trait EventHandler: Send + Sync + 'static {
    /// Applies one event inside the consumer's transaction (`conn`); any events it causes go to
    /// the outbox on the same connection. An error rolls the whole transaction back.
    /// Events of kinds the service does not care about are simply `Ok(())`.
    fn handle(&self, conn: &mut PgConnection, event: &Event) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Kinds the service never acts on, acknowledged without a transaction or an inbox row
    /// (they have no effect to repeat): a site check's event, say, to a service that follows
    /// problems only. There is one per check, so at campaign volume this matters.
    fn ignores(&self, kind: &crate::events::EventKind) -> bool {
        let _ = kind;
        false
    }
}

/// Why a message could not be applied.
enum Failure {
    /// It can never succeed (not an event at all): dead-letter it now.
    Poison(String),
    /// The handler failed; retried until `max_deliver`.
    Handler(anyhow::Error),
    /// The database is unreachable: retried without limit, never dead-lettered.
    Transient(anyhow::Error),
    /// An event about a problem came before the producer's earlier one (another instance
    /// holds it, or it is behind in the stream): tried again shortly.
    Early { subject: String, waiting_for: i64 },
}

fn classify(e: anyhow::Error) -> Failure {
    if crate::db::is_transient_chain(&e) { Failure::Transient(e) } else { Failure::Handler(e) }
}

pub struct Inbox<H> {
    pub service: &'static str,
    pub producer: &'static str,
    pub namespace: String,
    pub pool: PgPool,
    pub config: ConsumerConfig,
    /// JetStream replicas of the streams this service makes sure exist.
    pub replicas: usize,
    pub handler: Arc<H>,
    pub nats: async_nats::Client,
}

impl<H: EventHandler> Inbox<H> {
    fn schema(&self) -> &'static str {
        self.service
    }

    /// Pulls and applies batches until `shutdown`; the batch in hand is finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        let js = jetstream::new(self.nats.clone());
        let ack_wait = Duration::from_secs(self.config.ack_wait_secs);
        while !shutdown.is_cancelled() {
            let consumer = match messaging::ensure_consumer(
                &js,
                &self.namespace,
                self.producer,
                self.service,
                ack_wait,
                self.replicas,
            )
            .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, producer = self.producer, "consumer not ready; retrying");
                    tokio::select! { _ = tokio::time::sleep(Duration::from_secs(1)) => continue, _ = shutdown.cancelled() => return }
                }
            };
            let messages = match consumer
                .stream()
                .max_messages_per_batch(self.config.batch_size)
                .heartbeat(Duration::from_secs(5))
                .expires(Duration::from_secs(30))
                .messages()
                .await
            {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, producer = self.producer, "cannot pull; retrying");
                    tokio::select! { _ = tokio::time::sleep(Duration::from_secs(1)) => continue, _ = shutdown.cancelled() => return }
                }
            };
            let mut batches = messages.ready_chunks(self.config.batch_size);
            let mut replays = tokio::time::interval(Duration::from_secs(1));
            // Heartbeats missed in a row, with nothing received in between.
            let mut silent = 0u32;
            loop {
                let next = tokio::select! {
                    next = batches.next() => next,
                    _ = replays.tick() => {
                        self.replay_requested().await;
                        // Consumer lag: what the stream holds that this consumer has not yet had.
                        if let Ok(info) = consumer.get_info().await {
                            metrics::gauge!("consumer_lag", "producer" => self.producer).set(info.num_pending as f64);
                            metrics::gauge!("consumer_unacked", "producer" => self.producer).set(info.num_ack_pending as f64);
                        }
                        continue;
                    }
                    _ = shutdown.cancelled() => return,
                };
                let Some(chunk) = next else { break };
                let mut batch = Vec::with_capacity(chunk.len());
                let mut broken = None;
                for item in chunk {
                    match item {
                        Ok(message) => batch.push(message),
                        Err(e) if e.kind() == MessagesErrorKind::MissingHeartbeat => {
                            silent += 1;
                            tracing::debug!(error = %e, producer = self.producer, silent, "missed heartbeat");
                            if silent >= 2 {
                                broken = Some(e);
                            }
                        }
                        Err(e) => broken = Some(e),
                    }
                }
                if !batch.is_empty() {
                    silent = 0;
                    self.handle_batch(batch).await;
                }
                // A failed pull request (the broker restarted and JetStream was not back yet, the
                // consumer is gone) leaves the stream waiting for an answer that never comes, and
                // heartbeats missed twice running say the same: make the consumer and the stream
                // anew. What the old one was sent and did not pass on comes again after
                // `ack_wait`; the inbox drops repeats.
                if let Some(e) = broken {
                    tracing::warn!(error = %e, producer = self.producer, "pull stream broken; pulling anew");
                    metrics::counter!("consumer_restarts_total", "producer" => self.producer).increment(1);
                    tokio::select! { _ = tokio::time::sleep(Duration::from_millis(500)) => {}, _ = shutdown.cancelled() => return }
                    break;
                }
            }
        }
    }

    async fn handle_batch(&self, batch: Vec<Message>) {
        let started = std::time::Instant::now();
        match self.apply_all(&batch).await {
            Ok(()) => {
                for message in &batch {
                    if let Err(e) = message.ack().await {
                        tracing::debug!(error = %e, "ack lost; the redelivery will be dropped by the inbox");
                    }
                }
            }
            // One bad message must not hold back the others: go one by one.
            Err(_) => {
                for message in &batch {
                    self.handle_one(message).await;
                }
            }
        }
        metrics::counter!("consumer_messages_total", "producer" => self.producer).increment(batch.len() as u64);
        metrics::histogram!("consumer_batch_seconds", "producer" => self.producer)
            .record(started.elapsed().as_secs_f64());
    }

    /// The whole batch in one transaction, its inbox rows written in one statement.
    async fn apply_all(&self, batch: &[Message]) -> Result<(), ()> {
        // A message that is no event fails the batch; one by one, it is dead-lettered.
        let events: Vec<Event> = batch.iter().map(|m| parse(&m.payload)).collect::<Result<_, _>>().map_err(|_| ())?;
        let mut tx = self.pool.begin().await.map_err(|_| ())?;
        let wanted: Vec<Uuid> = events.iter().filter(|e| !self.ignored(e)).map(|e| e.id).collect();
        let mut fresh = self.record_all(&mut tx, &wanted).await.map_err(|_| ())?;
        for (message, event) in batch.iter().zip(&events) {
            if self.ignored(event) {
                continue;
            }
            // `remove`: an event that came twice in one batch is applied once.
            if !fresh.remove(&event.id) {
                metrics::counter!("consumer_duplicates_total", "producer" => self.producer).increment(1);
                continue;
            }
            self.apply_fresh(&mut tx, event, traceparent(message).as_deref()).await.map_err(|_| ())?;
        }
        tx.commit().await.map_err(|_| ())
    }

    /// Records `ids` in the inbox; answers those not there before.
    async fn record_all(&self, tx: &mut PgConnection, ids: &[Uuid]) -> Result<HashSet<Uuid>, sqlx::Error> {
        let insert = format!(
            "INSERT INTO {}.inbox (event_id, stream) SELECT unnest($1::uuid[]), $2 ON CONFLICT DO NOTHING RETURNING event_id",
            self.schema()
        );
        let fresh: Vec<Uuid> =
            sqlx::query_scalar(AssertSqlSafe(insert)).bind(ids).bind(self.producer).fetch_all(&mut *tx).await?;
        Ok(fresh.into_iter().collect())
    }

    fn ignored(&self, event: &Event) -> bool {
        event.kind().is_some_and(|kind| self.handler.ignores(&kind))
    }

    async fn handle_one(&self, message: &Message) {
        let outcome = async {
            let mut tx = self.pool.begin().await.map_err(|e| Failure::Transient(e.into()))?;
            self.apply(&mut tx, message).await?;
            tx.commit().await.map_err(|e| classify(e.into()))
        }
        .await;
        let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
        let result = match outcome {
            Ok(()) => message.ack().await,
            Err(Failure::Transient(e)) => {
                tracing::warn!(error = %e, "database unavailable; message will be redelivered");
                message.ack_with(AckKind::Nak(Some(Duration::from_secs(2)))).await
            }
            Err(Failure::Handler(e)) if delivered < self.config.max_deliver => {
                tracing::warn!(error = format!("{e:#}"), delivered, "event failed; will retry");
                let backoff = Duration::from_millis(200 * 2u64.pow(delivered.clamp(0, 8) as u32));
                message.ack_with(AckKind::Nak(Some(backoff))).await
            }
            Err(Failure::Early { subject, waiting_for }) if delivered < 200 => {
                tracing::debug!(subject, waiting_for, "event came early; waiting for the one before it");
                message.ack_with(AckKind::Nak(Some(Duration::from_millis(100 + 20 * delivered.min(20) as u64)))).await
            }
            Err(Failure::Early { subject, waiting_for }) => {
                let reason = format!("the producer's event {waiting_for} about {subject} never came");
                self.dead_letter(message, &reason, delivered).await
            }
            Err(Failure::Handler(e)) => self.dead_letter(message, &format!("{e:#}"), delivered).await,
            Err(Failure::Poison(reason)) => self.dead_letter(message, &reason, delivered).await,
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "ack lost; the message will come again");
        }
    }

    /// Applies one message within `tx`, unless the inbox says it was applied before.
    async fn apply(&self, tx: &mut PgConnection, message: &Message) -> Result<(), Failure> {
        self.apply_payload(tx, &message.payload, traceparent(message).as_deref()).await
    }

    /// Applies one event within `tx`, unless the inbox says it was applied before.
    async fn apply_payload(
        &self,
        tx: &mut PgConnection,
        payload: &[u8],
        traceparent: Option<&str>,
    ) -> Result<(), Failure> {
        let event = parse(payload)?;
        if self.ignored(&event) {
            return Ok(());
        }
        if self.record_all(tx, &[event.id]).await.map_err(|e| classify(e.into()))?.is_empty() {
            metrics::counter!("consumer_duplicates_total", "producer" => self.producer).increment(1);
            return Ok(());
        }
        self.apply_fresh(tx, &event, traceparent).await
    }

    /// Applies an event the inbox has just recorded as new.
    async fn apply_fresh(
        &self,
        tx: &mut PgConnection,
        event: &Event,
        traceparent: Option<&str>,
    ) -> Result<(), Failure> {
        // Where a producer's events about a problem begin with the one that creates it
        // (problem.reported, problem.assigned), a later one waits until that first one is
        // applied, whichever instance of this service holds it. Later events among themselves
        // carry the producer's counter (`problem_seq`), by which handlers drop what is stale.
        if let Some(seq) = event.data.get("problem_seq").and_then(serde_json::Value::as_i64)
            && crate::events::starts_with_creation(self.producer)
        {
            let last = self.gate(tx, &event.subject).await.map_err(|e| classify(e.into()))?;
            if last == 0 && seq > 1 {
                return Err(Failure::Early { subject: event.subject.clone(), waiting_for: 1 });
            }
            let update = format!(
                "UPDATE {}.sequence_gate SET last_seq = greatest(last_seq, $3) WHERE producer = $1 AND subject = $2",
                self.schema()
            );
            sqlx::query(AssertSqlSafe(update))
                .bind(self.producer)
                .bind(&event.subject)
                .bind(seq)
                .execute(&mut *tx)
                .await
                .map_err(|e| classify(e.into()))?;
        }
        let span = tracing::info_span!("consume", event.type = %event.event_type, event.id = %event.id, trace_id = tracing::field::Empty);
        telemetry::continue_trace(&span, traceparent);
        span.record("trace_id", telemetry::trace_id(&span));
        self.handler.handle(tx, event).instrument(span).await.map_err(classify)
    }

    /// The last applied counter of the producer's events about `subject`, locked until the
    /// transaction ends.
    async fn gate(&self, tx: &mut PgConnection, subject: &str) -> Result<i64, sqlx::Error> {
        let insert = format!(
            "INSERT INTO {}.sequence_gate (producer, subject, last_seq) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING",
            self.schema()
        );
        sqlx::query(AssertSqlSafe(insert)).bind(self.producer).bind(subject).execute(&mut *tx).await?;
        let select = format!(
            "SELECT last_seq FROM {}.sequence_gate WHERE producer = $1 AND subject = $2 FOR UPDATE",
            self.schema()
        );
        sqlx::query_scalar(AssertSqlSafe(select)).bind(self.producer).bind(subject).fetch_one(&mut *tx).await
    }

    /// Tries again the dead letters of this stream the admin asked to replay, each in its own
    /// transaction, through the same inbox: applied now, or kept with the new reason.
    async fn replay_requested(&self) {
        let select = format!(
            "SELECT id, payload FROM {}.dead_letters
             WHERE stream = $1 AND replay_requested_at IS NOT NULL AND (replayed_at IS NULL OR replayed_at < replay_requested_at)
             ORDER BY id LIMIT 100",
            self.schema()
        );
        let stream = messaging::stream_name(&self.namespace, self.producer);
        let Ok(letters) =
            sqlx::query_as::<_, (i64, Vec<u8>)>(AssertSqlSafe(select)).bind(&stream).fetch_all(&self.pool).await
        else {
            return;
        };
        for (id, payload) in letters {
            let outcome = async {
                let mut tx = self.pool.begin().await.map_err(|e| Failure::Transient(e.into()))?;
                self.apply_payload(&mut tx, &payload, None).await?;
                tx.commit().await.map_err(|e| classify(e.into()))
            }
            .await;
            let result = match outcome {
                Ok(()) => "applied".to_string(),
                Err(Failure::Transient(_) | Failure::Early { .. }) => continue,
                Err(Failure::Handler(e)) => format!("failed again: {e:#}"),
                Err(Failure::Poison(reason)) => format!("failed again: {reason}"),
            };
            let update = format!(
                "UPDATE {}.dead_letters SET replayed_at = now(), replay_outcome = $2 WHERE id = $1",
                self.schema()
            );
            if let Err(e) = sqlx::query(AssertSqlSafe(update)).bind(id).bind(&result).execute(&self.pool).await {
                tracing::warn!(error = %e, "cannot record a replay's outcome");
            }
        }
    }

    async fn dead_letter(&self, message: &Message, reason: &str, delivered: i64) -> Result<(), async_nats::Error> {
        let info = message.info()?;
        let event: Option<Event> = serde_json::from_slice(&message.payload).ok();
        let insert = format!(
            "INSERT INTO {}.dead_letters (stream, stream_sequence, nats_subject, event_id, event_type, payload, reason, deliveries)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (stream, stream_sequence) DO NOTHING",
            self.schema()
        );
        let stored = sqlx::query(AssertSqlSafe(insert))
            .bind(info.stream)
            .bind(info.stream_sequence as i64)
            .bind(message.subject.as_str())
            .bind(event.as_ref().map(|e| e.id))
            .bind(event.as_ref().map(|e| e.event_type.clone()))
            .bind(message.payload.as_ref())
            .bind(reason)
            .bind(delivered)
            .execute(&self.pool)
            .await;
        if let Err(e) = stored {
            // Not kept, so not terminated: it comes again.
            tracing::warn!(error = %e, "cannot record dead letter");
            return message.ack_with(AckKind::Nak(Some(Duration::from_secs(5)))).await;
        }
        tracing::error!(reason, subject = message.subject.as_str(), delivered, "message dead-lettered");
        metrics::counter!("dead_letters_total", "producer" => self.producer).increment(1);
        let notice = format!("{}.deadletter.{}", self.namespace, self.service);
        let _ = self.nats.publish(notice, reason.to_string().into()).await;
        message.ack_with(AckKind::Term).await
    }
}

fn parse(payload: &[u8]) -> Result<Event, Failure> {
    serde_json::from_slice(payload).map_err(|e| Failure::Poison(format!("not a CloudEvents JSON event: {e}")))
}

fn traceparent(message: &Message) -> Option<String> {
    message.headers.as_ref().and_then(|h| h.get("traceparent")).map(|v| v.as_str().to_string())
}

/// Deletes inbox rows past the redelivery horizon.
pub async fn prune(pool: &PgPool, schema: &str, retention: Duration) -> Result<u64, sqlx::Error> {
    let sql = format!("DELETE FROM {schema}.inbox WHERE received_at < now() - make_interval(secs => $1)");
    Ok(sqlx::query(AssertSqlSafe(sql)).bind(retention.as_secs_f64()).execute(pool).await?.rows_affected())
}
