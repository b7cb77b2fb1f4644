//! The inbox consumer. It pulls what is ready from a service's durable consumer on one
//! producer's stream (up to a batch), decodes each event into its type, and applies the batch
//! in one transaction with a number of statements that does not grow with the batch: one to
//! read and lock the problems' order, one to record the ids of events about no problem, the
//! handlers' multi-row statements wave by wave ([`plan`]), one to advance the order; then it
//! commits and acknowledges.
//!
//! - Order: one producer's events about one problem apply in its `problem_seq` order, whatever
//!   order they arrive in; an event that came before its predecessor waits alone (negative
//!   acknowledgement with a delay).
//! - Exactly once: a repeat of an event about a problem is known by its counter; a repeat of
//!   any other event by its id in the inbox table. The consumer's acknowledged position is
//!   stored beside the state: a consumer made again resumes there, and inbox rows are pruned
//!   only behind it.
//! - Failures: a message that is no event, or whose data does not decode, goes to the dead
//!   letters at once; a batch whose handlers fail is split in halves until the failing event
//!   stands alone, which is retried and then dead-lettered, while the rest apply.

mod plan;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::MessagesErrorKind;
use async_nats::jetstream::{self, AckKind, Message};
use futures::StreamExt;
use futures::future::BoxFuture;
use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::ConsumerConfig;
use crate::envelope::Event;
use crate::events::EventKind;
use crate::messaging;
use crate::outbox::Outbox;
use crate::routing::{Decoded, Dispatch};
use crate::telemetry;
use plan::{Item, Step};

/// Deliveries an event waits for its predecessor before it is dead-lettered (minutes).
const EARLY_LIMIT: i64 = 300;
/// Tries of a batch that met a deadlock before it is split.
const DEADLOCK_RETRIES: usize = 3;

pub struct Inbox {
    pub service: &'static str,
    pub producer: &'static str,
    pub namespace: String,
    pub pool: PgPool,
    pub config: ConsumerConfig,
    /// JetStream replicas of the streams this service makes sure exist.
    pub replicas: usize,
    pub routes: Arc<dyn Dispatch>,
    pub nats: async_nats::Client,
    /// Woken after a commit, for the events the handlers wrote.
    pub outbox: Outbox,
}

/// An event to apply: from the stream (`message`), or a dead letter being replayed.
struct Delivery<'m> {
    message: Option<&'m Message>,
    event: Event,
    decoded: Decoded,
}

/// How a batch failed.
enum Failure {
    /// The database is unreachable: retried without limit, never dead-lettered.
    Transient(anyhow::Error),
    /// Two transactions waited on each other: tried again as it is.
    Conflict(anyhow::Error),
    /// A handler failed.
    Handler(anyhow::Error),
}

fn classify(e: anyhow::Error) -> Failure {
    let conflict = e.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .and_then(|e| e.as_database_error())
            .and_then(|d| d.code())
            .is_some_and(|code| code == "40P01" || code == "40001")
    });
    if conflict {
        Failure::Conflict(e)
    } else if crate::db::is_transient_chain(&e) {
        Failure::Transient(e)
    } else {
        Failure::Handler(e)
    }
}

/// Why a message could not be decoded into its type.
enum Undecodable {
    NotAnEvent(String),
    Data(String),
}

/// What became of each delivery of an applied batch, in its order.
type Outcome = Vec<Step>;

impl Inbox {
    fn schema(&self) -> &'static str {
        self.service
    }

    fn stream(&self) -> String {
        messaging::stream_name(&self.namespace, self.producer)
    }

    /// Pulls and applies batches until `shutdown`; the batch in hand is finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        let js = jetstream::new(self.nats.clone());
        let ack_wait = Duration::from_secs(self.config.ack_wait_secs);
        let kinds = self.routes.kinds(self.producer);
        while !shutdown.is_cancelled() {
            let start_after = match self.stored_position().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, producer = self.producer, "cannot read the stored position; retrying");
                    tokio::select! { _ = tokio::time::sleep(Duration::from_secs(1)) => continue, _ = shutdown.cancelled() => return }
                }
            };
            let wanted = messaging::Wanted {
                namespace: &self.namespace,
                producer: self.producer,
                consumer_service: self.service,
                kinds: &kinds,
                ack_wait,
                replicas: self.replicas,
                start_after,
            };
            let consumer = match messaging::ensure_consumer(&js, &self.nats, &wanted).await {
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
            let mut ticks = tokio::time::interval(Duration::from_secs(1));
            // Heartbeats missed in a row, with nothing received in between.
            let mut silent = 0u32;
            loop {
                let next = tokio::select! {
                    // Unconstrained: tokio's cooperative budget would end a chunk at 128 messages.
                    next = tokio::task::unconstrained(batches.next()) => next,
                    _ = ticks.tick() => {
                        self.replay_requested().await;
                        if let Ok(info) = consumer.get_info().await {
                            // Consumer lag: what the stream holds that this consumer has not yet had.
                            metrics::gauge!("consumer_lag", "producer" => self.producer).set(info.num_pending as f64);
                            metrics::gauge!("consumer_unacked", "producer" => self.producer).set(info.num_ack_pending as f64);
                            self.store_position(info.ack_floor.stream_sequence).await;
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
                    self.handle_batch(&batch).await;
                }
                // A failed pull request (the broker restarted and JetStream was not back yet, the
                // consumer is gone) leaves the stream waiting for an answer that never comes, and
                // heartbeats missed twice running say the same: make the consumer and the stream
                // anew (a deleted consumer is made again at the stored position). What the old one
                // was sent and did not pass on comes again after `ack_wait`; repeats are dropped.
                if let Some(e) = broken {
                    tracing::warn!(error = %e, producer = self.producer, "pull stream broken; pulling anew");
                    metrics::counter!("consumer_restarts_total", "producer" => self.producer).increment(1);
                    tokio::select! { _ = tokio::time::sleep(Duration::from_millis(500)) => {}, _ = shutdown.cancelled() => return }
                    break;
                }
            }
        }
    }

    async fn handle_batch(&self, batch: &[Message]) {
        let started = std::time::Instant::now();
        self.handle(batch).await;
        metrics::counter!("consumer_messages_total", "producer" => self.producer).increment(batch.len() as u64);
        metrics::histogram!("consumer_batch_seconds", "producer" => self.producer)
            .record(started.elapsed().as_secs_f64());
    }

    /// Applies `messages` (split in halves while a handler fails) and acknowledges each.
    fn handle<'a>(&'a self, messages: &'a [Message]) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let mut tries = 0;
            loop {
                let deliveries = self.decode(messages).await;
                if deliveries.is_empty() {
                    return;
                }
                let delivered: Vec<&Message> = deliveries.iter().filter_map(|d| d.message).collect();
                match self.apply(deliveries).await {
                    Ok(steps) => {
                        self.routes.committed();
                        self.outbox.wake();
                        for (message, step) in delivered.into_iter().zip(steps) {
                            self.settle(message, step).await;
                        }
                        return;
                    }
                    Err(Failure::Conflict(e)) if tries < DEADLOCK_RETRIES => {
                        tries += 1;
                        tracing::debug!(error = %e, tries, "batch met another transaction; trying again");
                    }
                    Err(Failure::Transient(e)) => {
                        tracing::warn!(error = %e, "database unavailable; the batch will be redelivered");
                        for message in delivered {
                            nak(message, Duration::from_secs(2)).await;
                        }
                        return;
                    }
                    Err(Failure::Conflict(e) | Failure::Handler(e)) => {
                        if messages.len() > 1 {
                            // Find the failing event in log2(n) transactions; the rest apply.
                            let (first, second) = messages.split_at(messages.len() / 2);
                            self.handle(first).await;
                            self.handle(second).await;
                        } else if let Some(message) = delivered.first() {
                            self.failed(message, &format!("{e:#}")).await;
                        }
                        return;
                    }
                }
            }
        })
    }

    /// The batch's events in their types. A message that is no event, or not of the contract,
    /// is dead-lettered; one whose kind this service does not handle is acknowledged.
    async fn decode<'m>(&self, messages: &'m [Message]) -> Vec<Delivery<'m>> {
        let mut deliveries = Vec::with_capacity(messages.len());
        for message in messages {
            match self.decode_payload(&message.payload) {
                Ok(Some((event, decoded))) => deliveries.push(Delivery { message: Some(message), event, decoded }),
                Ok(None) => {
                    metrics::counter!("consumer_unrouted_total", "producer" => self.producer).increment(1);
                    ack(message).await;
                }
                // No event at all: it never will be.
                Err(Undecodable::NotAnEvent(reason)) => {
                    let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
                    if let Err(e) = self.dead_letter(message, &reason, delivered).await {
                        tracing::debug!(error = %e, "ack lost; the message will come again");
                    }
                }
                // Data this version cannot read: tried like a failing handler (a newer producer
                // may be ahead of this consumer), then dead-lettered.
                Err(Undecodable::Data(reason)) => self.failed(message, &reason).await,
            }
        }
        deliveries
    }

    fn decode_payload(&self, payload: &[u8]) -> Result<Option<(Event, Decoded)>, Undecodable> {
        let event: Event = serde_json::from_slice(payload)
            .map_err(|e| Undecodable::NotAnEvent(format!("not a CloudEvents JSON event: {e}")))?;
        match self.routes.decode(&event) {
            None => Ok(None),
            Some(Ok(decoded)) => Ok(Some((event, decoded))),
            Some(Err(e)) => Err(Undecodable::Data(format!("{e:#}"))),
        }
    }

    /// Applies what can apply of `deliveries` in one transaction; answers each one's step.
    async fn apply(&self, deliveries: Vec<Delivery<'_>>) -> Result<Outcome, Failure> {
        let mut tx = self.pool.begin().await.map_err(|e| Failure::Transient(e.into()))?;
        let mut problems: Vec<Uuid> =
            deliveries.iter().flat_map(|d| d.decoded.positions.iter().map(|p| p.problem_id)).collect();
        problems.sort_unstable();
        problems.dedup();
        let before = self.read_order(&mut tx, &problems).await.map_err(|e| classify(e.into()))?;
        let items: Vec<Item<'_>> =
            deliveries.iter().map(|d| Item { positions: &d.decoded.positions, subject: &d.event.subject }).collect();
        let plan = plan::plan(&items, before.clone());
        let mut steps = plan.steps;

        // Events about no problem are known again by their id.
        let unordered: Vec<(Uuid, i64)> = deliveries
            .iter()
            .zip(&steps)
            .filter(|(d, step)| d.decoded.positions.is_empty() && matches!(step, Step::Apply { .. }))
            .map(|(d, _)| (d.event.id, stream_sequence(d.message)))
            .collect();
        let fresh = self.record(&mut tx, &unordered).await.map_err(|e| classify(e.into()))?;
        // An event about no problem that came twice in one batch counts once (the plan knows
        // the repeats of events about problems by their counters).
        let mut seen = HashSet::new();
        for (d, step) in deliveries.iter().zip(steps.iter_mut()) {
            if d.decoded.positions.is_empty()
                && matches!(step, Step::Apply { .. })
                && (!fresh.contains(&d.event.id) || !seen.insert(d.event.id))
            {
                *step = Step::Repeat;
            }
        }

        // Wave by wave, kind by kind (in the order kinds first appear in the wave).
        let mut waves: Vec<Vec<(EventKind, Vec<Decoded>)>> = (0..plan.waves).map(|_| Vec::new()).collect();
        for (d, step) in deliveries.into_iter().zip(&steps) {
            let Step::Apply { wave } = *step else { continue };
            self.trace(&d);
            let groups = &mut waves[wave];
            match groups.iter_mut().find(|(k, _)| *k == d.decoded.kind) {
                Some((_, items)) => items.push(d.decoded),
                None => groups.push((d.decoded.kind, vec![d.decoded])),
            }
        }
        for groups in waves {
            for (kind, items) in groups {
                self.routes.apply(&mut tx, kind, items).await.map_err(classify)?;
            }
        }

        let advanced: Vec<(Uuid, i64, i64)> = plan
            .last
            .iter()
            .map(|(p, seq)| (*p, *seq, before.get(p).copied().unwrap_or(0)))
            .filter(|(_, seq, was)| seq != was)
            .collect();
        if !self.advance_order(&mut tx, &advanced).await.map_err(|e| classify(e.into()))? {
            return Err(Failure::Conflict(anyhow::anyhow!("another instance applied a first event at the same time")));
        }
        tx.commit().await.map_err(|e| classify(e.into()))?;
        let applied = steps.iter().filter(|s| matches!(s, Step::Apply { .. })).count();
        let repeats = steps.iter().filter(|s| matches!(s, Step::Repeat)).count();
        metrics::counter!("consumer_applied_total", "producer" => self.producer).increment(applied as u64);
        metrics::counter!("consumer_duplicates_total", "producer" => self.producer).increment(repeats as u64);
        Ok(steps)
    }

    /// One span per applied event, in the trace its producer's request started.
    fn trace(&self, d: &Delivery<'_>) {
        let span = tracing::info_span!("consume", event.type = %d.event.event_type, event.id = %d.event.id);
        telemetry::continue_trace(&span, d.message.and_then(traceparent).as_deref());
        let _entered = span.enter();
    }

    /// The last applied counter of this producer's events about each of `problems` (absent:
    /// none yet), the existing rows locked until the transaction ends, in one order so that
    /// instances never wait on each other crosswise.
    async fn read_order(&self, tx: &mut PgConnection, problems: &[Uuid]) -> sqlx::Result<HashMap<Uuid, i64>> {
        if problems.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT problem_id, last_seq FROM {}.problem_order WHERE producer = $1 AND problem_id = ANY($2)
             ORDER BY problem_id FOR UPDATE",
            self.schema()
        );
        let rows: Vec<(Uuid, i64)> =
            sqlx::query_as(AssertSqlSafe(sql)).bind(self.producer).bind(problems).fetch_all(tx).await?;
        Ok(rows.into_iter().collect())
    }

    /// Moves the problems' counters on (one row write each); false when another instance wrote
    /// the first counter of one of them meanwhile (its row did not exist to be locked), so the
    /// batch must be tried again.
    async fn advance_order(&self, tx: &mut PgConnection, advanced: &[(Uuid, i64, i64)]) -> sqlx::Result<bool> {
        if advanced.is_empty() {
            return Ok(true);
        }
        let ids: Vec<Uuid> = advanced.iter().map(|a| a.0).collect();
        let seqs: Vec<i64> = advanced.iter().map(|a| a.1).collect();
        let before: Vec<i64> = advanced.iter().map(|a| a.2).collect();
        let sql = format!(
            "WITH a AS (SELECT * FROM unnest($2::uuid[], $3::bigint[], $4::bigint[]) AS a(id, seq, before)),
                  moved AS (UPDATE {s}.problem_order o SET last_seq = a.seq FROM a
                            WHERE o.producer = $1 AND o.problem_id = a.id AND a.before > 0 AND o.last_seq = a.before
                            RETURNING 1),
                  first AS (INSERT INTO {s}.problem_order (producer, problem_id, last_seq)
                            SELECT $1, id, seq FROM a WHERE before = 0 ORDER BY id
                            ON CONFLICT DO NOTHING RETURNING 1)
             SELECT (SELECT count(*) FROM moved) + (SELECT count(*) FROM first)",
            s = self.schema()
        );
        let written: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(self.producer)
            .bind(&ids)
            .bind(&seqs)
            .bind(&before)
            .fetch_one(tx)
            .await?;
        Ok(written == advanced.len() as i64)
    }

    /// Records event ids (with their stream position); answers those not there before.
    async fn record(&self, tx: &mut PgConnection, events: &[(Uuid, i64)]) -> sqlx::Result<HashSet<Uuid>> {
        if events.is_empty() {
            return Ok(HashSet::new());
        }
        let (ids, positions): (Vec<Uuid>, Vec<i64>) = events.iter().copied().unzip();
        let insert = format!(
            "INSERT INTO {}.inbox (event_id, stream, stream_seq)
             SELECT id, $2, position FROM unnest($1::uuid[], $3::bigint[]) AS e(id, position)
             ON CONFLICT DO NOTHING RETURNING event_id",
            self.schema()
        );
        let fresh: Vec<Uuid> = sqlx::query_scalar(AssertSqlSafe(insert))
            .bind(&ids)
            .bind(self.stream())
            .bind(&positions)
            .fetch_all(tx)
            .await?;
        Ok(fresh.into_iter().collect())
    }

    /// Acknowledges what applied or was applied before; an early event waits, then is
    /// dead-lettered if its predecessor never comes.
    async fn settle(&self, message: &Message, step: Step) {
        let result = match step {
            Step::Apply { .. } | Step::Repeat => message.ack().await,
            Step::Early { problem, waiting_for } => {
                let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
                metrics::counter!("consumer_early_total", "producer" => self.producer).increment(1);
                if delivered < EARLY_LIMIT {
                    tracing::debug!(%problem, waiting_for, delivered, "event came early; waiting for the one before it");
                    let delay = Duration::from_millis((50 * delivered.max(1) as u64).min(1000));
                    message.ack_with(AckKind::Nak(Some(delay))).await
                } else {
                    let reason = format!("the producer's event {waiting_for} about problem {problem} never came");
                    self.dead_letter(message, &reason, delivered).await
                }
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "ack lost; the message will come again and be dropped");
        }
    }

    /// A single event whose handler failed: retried with a growing delay, then dead-lettered.
    async fn failed(&self, message: &Message, reason: &str) {
        let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
        let result = if delivered < self.config.max_deliver {
            tracing::warn!(error = reason, delivered, "event failed; will retry");
            let backoff = Duration::from_millis(200 * 2u64.pow(delivered.clamp(0, 8) as u32));
            message.ack_with(AckKind::Nak(Some(backoff))).await
        } else {
            self.dead_letter(message, reason, delivered).await
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "ack lost; the message will come again");
        }
    }

    /// The stream position this service had acknowledged everything up to, if stored.
    async fn stored_position(&self) -> sqlx::Result<Option<u64>> {
        let sql = format!("SELECT acked_through FROM {}.stream_positions WHERE stream = $1", self.schema());
        let position: Option<i64> =
            sqlx::query_scalar(AssertSqlSafe(sql)).bind(self.stream()).fetch_optional(&self.pool).await?;
        Ok(position.filter(|p| *p > 0).map(|p| p as u64))
    }

    /// Stores the consumer's acknowledged position (it only moves forward).
    async fn store_position(&self, acked_through: u64) {
        if acked_through == 0 {
            return;
        }
        let sql = format!(
            "INSERT INTO {}.stream_positions (stream, acked_through) VALUES ($1, $2)
             ON CONFLICT (stream) DO UPDATE SET acked_through = greatest(stream_positions.acked_through, $2),
                                                updated_at = now()",
            self.schema()
        );
        let stored =
            sqlx::query(AssertSqlSafe(sql)).bind(self.stream()).bind(acked_through as i64).execute(&self.pool).await;
        if let Err(e) = stored {
            tracing::debug!(error = %e, "cannot store the consumer's position; next time");
        }
    }

    /// Tries again the dead letters of this stream the admin asked to replay, each alone,
    /// through the same path: applied now, or kept with the new reason.
    async fn replay_requested(&self) {
        let select = format!(
            "SELECT id, payload FROM {}.dead_letters
             WHERE stream = $1 AND replay_requested_at IS NOT NULL AND (replayed_at IS NULL OR replayed_at < replay_requested_at)
             ORDER BY id LIMIT 100",
            self.schema()
        );
        let Ok(letters) =
            sqlx::query_as::<_, (i64, Vec<u8>)>(AssertSqlSafe(select)).bind(self.stream()).fetch_all(&self.pool).await
        else {
            return;
        };
        for (id, payload) in letters {
            let outcome = match self.decode_payload(&payload) {
                Err(Undecodable::NotAnEvent(reason) | Undecodable::Data(reason)) => format!("failed again: {reason}"),
                Ok(None) => "not an event this service handles".to_string(),
                Ok(Some((event, decoded))) => {
                    match self.apply(vec![Delivery { message: None, event, decoded }]).await {
                        Ok(steps) => match steps[0] {
                            Step::Apply { .. } => {
                                self.routes.committed();
                                self.outbox.wake();
                                "applied".to_string()
                            }
                            Step::Repeat => "applied before".to_string(),
                            Step::Early { .. } => continue,
                        },
                        Err(Failure::Transient(_) | Failure::Conflict(_)) => continue,
                        Err(Failure::Handler(e)) => format!("failed again: {e:#}"),
                    }
                }
            };
            let update = format!(
                "UPDATE {}.dead_letters SET replayed_at = now(), replay_outcome = $2 WHERE id = $1",
                self.schema()
            );
            if let Err(e) = sqlx::query(AssertSqlSafe(update)).bind(id).bind(&outcome).execute(&self.pool).await {
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

async fn ack(message: &Message) {
    if let Err(e) = message.ack().await {
        tracing::debug!(error = %e, "ack lost; the message will come again and be dropped");
    }
}

async fn nak(message: &Message, delay: Duration) {
    if let Err(e) = message.ack_with(AckKind::Nak(Some(delay))).await {
        tracing::debug!(error = %e, "nak lost; the message will come again after the ack wait");
    }
}

fn stream_sequence(message: Option<&Message>) -> i64 {
    message.and_then(|m| m.info().ok()).map(|i| i.stream_sequence as i64).unwrap_or(0)
}

fn traceparent(message: &Message) -> Option<String> {
    message.headers.as_ref().and_then(|h| h.get("traceparent")).map(|v| v.as_str().to_string())
}

/// Deletes inbox rows the stream can no longer deliver to this service: behind the position the
/// consumer acknowledged (a consumer made again starts after it), and older than `retention`
/// (beyond the stream's duplicate window, which stops a resent copy of an event).
pub async fn prune(pool: &PgPool, schema: &str, retention: Duration) -> Result<u64, sqlx::Error> {
    let sql = format!(
        "DELETE FROM {schema}.inbox i
         WHERE i.received_at < now() - make_interval(secs => $1)
           AND (i.stream_seq = 0 -- a replayed dead letter, or a row from before positions were kept
                OR i.stream_seq <= (SELECT p.acked_through FROM {schema}.stream_positions p WHERE p.stream = i.stream))"
    );
    Ok(sqlx::query(AssertSqlSafe(sql)).bind(retention.as_secs_f64()).execute(pool).await?.rows_affected())
}
