//! The one writer of the public log. Consumers and the campaign office's acts only record facts
//! and history lines and mark the problem pending (`store::mark_pending`); this job takes the
//! pending problems in bounded chunks, decides each one's public status and visibility (the
//! policy of `domain.rs` and `redaction.rs`), appends the unlogged history of the public ones to
//! the log with its frontier, announces each entry, signs a checkpoint when the log has grown,
//! and commits: a short transaction of its own, which alone locks the log.
//!
//! It runs when woken (`Publisher::wake`, after a consumer's batch commits), on a short poll
//! besides, and for as long as a pass finds a full chunk.

use std::sync::Arc;
use std::time::Duration;

use shared::clock::Clock;
use shared::events::EntryPublished;
use shared::outbox::{Outbox, Outgoing};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain;
use crate::frontier::Frontier;
use crate::merkle;
use crate::public_log::{self, EntryContent, LogSigner};
use crate::redaction::{DisclosurePolicy, Visibility, VisibilityFacts};
use crate::store::{self, NewEntry};

/// How the writer paces itself (`[publication]` configuration).
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// How often it looks for work when nobody wakes it (embargoes end with time alone).
    pub poll: Duration,
    /// Problems per pass (each pass is one transaction).
    pub chunk: i64,
    /// At most one checkpoint this often, whenever the log has grown.
    pub checkpoint_interval: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Self { poll: Duration::from_millis(200), chunk: 500, checkpoint_interval: Duration::from_secs(5) }
    }
}

#[derive(Clone)]
pub struct Publisher {
    pub pool: PgPool,
    pub outbox: Outbox,
    pub signer: Arc<LogSigner>,
    pub policy: DisclosurePolicy,
    pub clock: Clock,
    pub pacing: Pacing,
    wake: Arc<Notify>,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Pending problems taken.
    pub taken: usize,
    /// Of those, the ones decided (the others were being changed and stay pending).
    pub decided: usize,
    /// Entries appended to the log.
    pub appended: usize,
    /// The size of the checkpoint signed, if one was.
    pub checkpoint: Option<i64>,
}

impl Publisher {
    pub fn new(
        pool: PgPool,
        outbox: Outbox,
        signer: Arc<LogSigner>,
        policy: DisclosurePolicy,
        clock: Clock,
        pacing: Pacing,
    ) -> Self {
        Self { pool, outbox, signer, policy, clock, pacing, wake: Arc::new(Notify::new()) }
    }

    /// Asks the writer to look for work now (after a transaction that marked problems pending
    /// has committed). Cheap; wakes collapse into one pass.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The writer's job: runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        // The disclosure policy may have changed since the last run: what is not public yet is
        // looked at again (tried until it succeeds).
        let mut remarked = false;
        loop {
            if !remarked {
                remarked = self.mark_unpublished().await;
            }
            if let Err(e) = self.drain().await {
                tracing::warn!(error = format!("{e:#}"), "the log writer failed; trying again");
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.pacing.poll) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    async fn mark_unpublished(&self) -> bool {
        let mut conn = match self.pool.acquire().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "cannot mark the problems not public yet; trying again");
                return false;
            }
        };
        match store::mark_unpublished_pending(&mut conn).await {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(problems = n, "problems not public yet marked for the log writer");
                }
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot mark the problems not public yet; trying again");
                false
            }
        }
    }

    /// Passes until there is nothing more to do now.
    pub async fn drain(&self) -> anyhow::Result<()> {
        loop {
            let pass = self.pass(None).await?;
            if pass.taken < self.pacing.chunk as usize || pass.decided == 0 {
                return Ok(());
            }
        }
    }

    /// Publishes what an act of the campaign office just committed for `problem_id`, so that
    /// the act's answer shows it. Should a consumer be changing the problem at that moment, it
    /// tries again for a while, then leaves the problem to the job.
    pub async fn publish_now(&self, problem_id: Uuid) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if self.pass(Some(&[problem_id])).await?.decided > 0 {
                return Ok(());
            }
            // Taken by the job meanwhile, or nothing to do: done. Else it is being changed.
            let waiting = store::is_pending_due(&mut *self.pool.acquire().await?, problem_id, self.clock.now()).await?;
            if !waiting || tokio::time::Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// One pass, in one transaction: takes up to a chunk of due problems (or only those of
    /// `only`), decides them, extends the log, signs a checkpoint if one is due.
    pub async fn pass(&self, only: Option<&[Uuid]>) -> anyhow::Result<Pass> {
        let now = self.clock.now();
        let started = std::time::Instant::now();
        if only.is_none() {
            // Nothing to do is found without a lock or a transaction.
            let outlook = store::writer_outlook(&mut *self.pool.acquire().await?, now).await?;
            let built = outlook.size.is_some();
            if !outlook.due && built && !self.checkpoint_due(outlook.size.unwrap_or(0), outlook.checkpoint) {
                return Ok(Pass::default());
            }
        }
        let mut tx = self.pool.begin().await?;
        let mut frontier = match store::lock_log(&mut tx).await? {
            Some(f) => f,
            None => build_frontier(&mut tx).await?,
        };
        // The log is appended to by this writer alone: its entries end where the frontier does.
        let size = store::log_size(&mut tx).await?;
        anyhow::ensure!(
            size == frontier.size() as i64,
            "the log holds {size} entries, its frontier {}: appending stops until this is looked into",
            frontier.size()
        );

        let taken = store::take_pending(&mut tx, now, only, self.pacing.chunk).await?;
        let mut pass = Pass { taken: taken.len(), ..Pass::default() };
        if !taken.is_empty() {
            let decided = self.decide(&mut tx, &taken, now).await?;
            pass.decided = decided.decided;
            pass.appended = self.append(&mut tx, &mut frontier, &decided.public).await?;
        }
        let last = store::last_checkpoint(&mut tx).await?;
        if self.checkpoint_due(frontier.size() as i64, last) {
            let made_at = OffsetDateTime::now_utc();
            let checkpoint = self.signer.checkpoint(
                frontier.size() as i64,
                &frontier.root(),
                (made_at.unix_timestamp_nanos() / 1_000_000) as i64,
            );
            store::add_checkpoint(&mut tx, &checkpoint, made_at).await?;
            pass.checkpoint = Some(checkpoint.tree_size);
        }
        tx.commit().await?;
        if pass.appended > 0 {
            metrics::counter!("publication_log_entries_appended_total").increment(pass.appended as u64);
        }
        if pass.taken > 0 {
            metrics::histogram!("publication_log_writer_pass_seconds").record(started.elapsed().as_secs_f64());
        }
        Ok(pass)
    }

    /// Whether a log of `size` entries wants a checkpoint, given the latest one.
    fn checkpoint_due(&self, size: i64, last: Option<(i64, OffsetDateTime)>) -> bool {
        match last {
            None => size > 0,
            Some((signed, made_at)) => {
                size > signed && OffsetDateTime::now_utc() - made_at >= self.pacing.checkpoint_interval
            }
        }
    }

    /// Decides the public status and visibility of the problems taken, writes them, and clears
    /// or puts off their marks. Answers the public ones, in the order taken.
    async fn decide(&self, conn: &mut PgConnection, taken: &[Uuid], now: OffsetDateTime) -> anyhow::Result<Decided> {
        let mut facts = store::writer_facts(conn, taken).await?;
        // In the order taken, which is roughly the order things happened.
        let order: std::collections::HashMap<Uuid, usize> = taken.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        facts.sort_by_key(|f| order[&f.problem_id]);
        let mut done: Vec<Uuid> = vec![];
        if facts.len() < taken.len() {
            // Marks of problems the record does not hold have nothing to wait for.
            done.extend(store::unknown_problems(conn, taken).await?);
        }
        let (mut ids, mut statuses, mut publics) = (vec![], vec![], vec![]);
        let mut later = vec![];
        let mut public = vec![];
        for f in &facts {
            let visibility = self.policy.visibility(
                &VisibilityFacts {
                    reported: f.category.is_some(),
                    handed_over_at: f.handed_over_at,
                    approved: f.approved_at.is_some(),
                },
                now,
            );
            let is_public = f.public || visibility == Visibility::Public;
            ids.push(f.problem_id);
            statuses.push(domain::public_status(
                f.verification_status.as_deref(),
                f.acknowledged_at.is_some(),
                f.handed_over_at.is_some(),
            ));
            publics.push(is_public);
            match visibility {
                // An embargo ends with time alone: looked at again then, not before.
                Visibility::Embargoed { until } if !is_public => later.push((f.problem_id, until)),
                // Not handed over, not reported or not approved yet: the event or act that
                // changes that marks the problem again.
                _ => done.push(f.problem_id),
            }
            if is_public {
                public.push(PublicProblem { id: f.problem_id, city_code: f.city_code.clone() });
            }
        }
        store::write_public_state(conn, &ids, &statuses, &publics).await?;
        store::finish_pending(conn, &done, &later).await?;
        Ok(Decided { decided: facts.len(), public })
    }

    /// Appends the unlogged history of these public problems to the log, in order, extending the
    /// frontier and storing the subtrees it completes; announces each entry. Answers how many.
    async fn append(
        &self,
        conn: &mut PgConnection,
        frontier: &mut Frontier,
        public: &[PublicProblem],
    ) -> anyhow::Result<usize> {
        if public.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Uuid> = public.iter().map(|p| p.id).collect();
        let cities: std::collections::HashMap<Uuid, Option<&str>> =
            public.iter().map(|p| (p.id, p.city_code.as_deref())).collect();
        let lines = store::unlogged_history(conn, &ids).await?;
        if lines.is_empty() {
            return Ok(0);
        }
        let mut entries = Vec::with_capacity(lines.len());
        let mut announcements = Vec::with_capacity(lines.len());
        let mut completed = Vec::with_capacity(lines.len() * 2);
        for line in lines {
            let index = frontier.size() as i64;
            let content = EntryContent {
                index,
                kind: line.kind.clone(),
                problem_id: line.problem_id,
                at: shared::csv::timestamp(line.at),
                status: line.status.clone(),
                what: line.what,
            }
            .to_text();
            let content_hash = public_log::content_hash(&content);
            let leaf_hash = public_log::leaf_of(&content_hash);
            frontier.append(leaf_hash, &mut completed);
            let event = EntryPublished {
                entry_seq: index,
                problem_id: line.problem_id,
                status: line.status,
                entry_hash: merkle::to_hex(&leaf_hash),
            };
            let city = cities.get(&line.problem_id).copied().flatten();
            announcements.push(Outgoing::new(city, index.to_string(), &event));
            entries.push(NewEntry {
                index,
                kind: line.kind,
                problem_id: line.problem_id,
                content,
                content_hash,
                leaf_hash,
                signature: self.signer.sign_entry(index, &leaf_hash),
                history_id: line.id,
            });
        }
        store::append_entries(conn, &entries).await?;
        store::store_nodes(conn, &completed).await?;
        store::save_frontier(conn, frontier).await?;
        self.outbox.publish_many(conn, announcements).await?;
        Ok(entries.len())
    }
}

struct PublicProblem {
    id: Uuid,
    city_code: Option<String>,
}

struct Decided {
    decided: usize,
    public: Vec<PublicProblem>,
}

/// Builds the frontier and stored subtrees of a log kept before there were any (once, reading
/// every leaf), under the writer's lock.
async fn build_frontier(conn: &mut PgConnection) -> anyhow::Result<Frontier> {
    let size = store::log_size(conn).await?;
    let leaves = store::leaf_hashes(conn, size).await?;
    anyhow::ensure!(leaves.len() as i64 == size, "the log has gaps: {} entries below index {size}", leaves.len());
    let (frontier, nodes) = Frontier::build(&leaves);
    sqlx::query("DELETE FROM publication.log_nodes").execute(&mut *conn).await?;
    store::store_nodes(conn, &nodes).await?;
    store::save_frontier(conn, &frontier).await?;
    tracing::info!(entries = size, "the log's frontier is built");
    Ok(frontier)
}
