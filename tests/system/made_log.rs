//! A public log made directly, not through the lifecycle: entries signed with the log's key,
//! their subtrees and frontier stored as publication's writer stores them, and a signed
//! checkpoint. For the campaign-scale log test and the `log_verify` bench, which includes this
//! file; the publication service must not be running while it appends.

use publication::frontier::{Frontier, NodeId};
use publication::merkle::Hash;
use publication::public_log::{self, Checkpoint, EntryContent, LogSigner};
use publication::store::{self, NewEntry};
use shared::testing::{Stack, StackOptions};
use sqlx::PgPool;
use uuid::Uuid;

/// The publication service alone (quiet), signing with a key made in `dir` under `origin`, so
/// that a log made here is the service's own; and that key.
pub async fn publication_with_key(bin: &std::path::Path, dir: &std::path::Path, origin: &str) -> (Stack, LogSigner) {
    let key_file = dir.join("log.key");
    let signer = LogSigner::load_or_create(&key_file, origin.into()).expect("the log key");
    let mut options = StackOptions { only: Some(vec!["publication"]), ..Default::default() };
    options.env.push(("SKYLEDGER__PUBLICATION__CHECKPOINT_KEY_FILE".into(), key_file.to_string_lossy().into()));
    options.env.push(("SKYLEDGER__PUBLICATION__LOG_ORIGIN".into(), origin.into()));
    options.env.push(("RUST_LOG".into(), "warn".into()));
    (Stack::start(bin, options).await, signer)
}

/// The log as made so far: its frontier and every leaf.
#[derive(Default)]
pub struct MadeLog {
    pub frontier: Frontier,
    pub leaves: Vec<Hash>,
}

/// Problems the made entries are about, in turn: a log of 300,000 holds 7 or 8 entries of
/// each, spread over the whole log, as a campaign year's problem's steps are.
pub const PROBLEMS: u64 = 40_000;

/// The problem entry `index` is about.
pub fn problem_of(index: u64) -> Uuid {
    Uuid::from_u128((index % PROBLEMS) as u128 + 1)
}

/// The text of entry `index`: a step of a problem, as the writer would log it.
pub fn entry_text(index: u64) -> String {
    EntryContent {
        index: index as i64,
        kind: "step".into(),
        problem_id: problem_of(index),
        at: "2019-05-09T02:20:00Z".into(),
        status: "assigned".into(),
        what: "交办至地方政府".into(),
    }
    .to_text()
}

impl MadeLog {
    /// Appends entries until the log holds `size`, 10,000 to a transaction, with a progress bar.
    pub async fn extend_to(&mut self, pool: &PgPool, signer: &LogSigner, size: u64) {
        let progress = indicatif::ProgressBar::new(size).with_message("entries made");
        progress.set_position(self.frontier.size());
        let mut conn = pool.acquire().await.expect("connection");
        while self.frontier.size() < size {
            let first = self.frontier.size();
            let last = (first + 10_000).min(size);
            let mut entries = Vec::new();
            let mut completed: Vec<(NodeId, Hash)> = Vec::new();
            for index in first..last {
                let content = entry_text(index);
                let content_hash = public_log::content_hash(&content);
                let leaf = public_log::leaf_of(&content_hash);
                self.frontier.append(leaf, &mut completed);
                self.leaves.push(leaf);
                entries.push(NewEntry {
                    index: index as i64,
                    kind: "step".into(),
                    problem_id: Uuid::nil(),
                    signature: signer.sign_entry(index as i64, &leaf),
                    content,
                    content_hash,
                    leaf_hash: leaf,
                    history_id: 0,
                });
            }
            store::append_entries(&mut conn, &entries).await.expect("append");
            store::store_nodes(&mut conn, &completed).await.expect("nodes");
            progress.set_position(last);
        }
        store::save_frontier(&mut conn, &self.frontier).await.expect("frontier");
        progress.finish_and_clear();
    }

    /// Makes problem `n` (below `PROBLEMS`) public, with a history line for each of its entries
    /// in the log as made, so that `/v1/problems/{id}` and its page list them; answers its id.
    pub async fn publish_problem(&self, pool: &PgPool, n: u64) -> Uuid {
        let id = problem_of(n);
        let indexes: Vec<i64> = (n..self.frontier.size()).step_by(PROBLEMS as usize).map(|i| i as i64).collect();
        sqlx::query("INSERT INTO publication.problems (problem_id, public, status) VALUES ($1, true, 'assigned')")
            .bind(id)
            .execute(pool)
            .await
            .expect("a public problem");
        sqlx::query(
            "INSERT INTO publication.history (problem_id, source_event_id, at, kind, status, what, entry_seq)
             SELECT $1, gen_random_uuid(), now(), 'step', 'assigned', '交办至地方政府', idx FROM unnest($2::bigint[]) idx",
        )
        .bind(id)
        .bind(&indexes)
        .execute(pool)
        .await
        .expect("its history");
        id
    }

    /// Signs a checkpoint of the whole log, and stores it as the latest.
    pub async fn checkpoint(&self, pool: &PgPool, signer: &LogSigner, timestamp: i64) -> Checkpoint {
        let checkpoint = signer.checkpoint(self.frontier.size() as i64, &self.frontier.root(), timestamp);
        let mut conn = pool.acquire().await.expect("connection");
        store::add_checkpoint(&mut conn, &checkpoint, time::OffsetDateTime::now_utc()).await.expect("checkpoint");
        checkpoint
    }
}
