//! A public log made directly, not through the lifecycle: entries signed with the log's key,
//! their subtrees and frontier stored as publication's writer stores them, and a signed
//! checkpoint. For the campaign-scale log test and the `log_verify` bench, which includes this
//! file; the publication service must not be running while it appends.

use publication::frontier::{Frontier, NodeId};
use publication::merkle::Hash;
use publication::public_log::{self, Checkpoint, EntryContent, LogSigner};
use publication::store::{self, NewEntry};
use sqlx::PgPool;
use uuid::Uuid;

/// The log as made so far: its frontier and every leaf.
#[derive(Default)]
pub struct MadeLog {
    pub frontier: Frontier,
    pub leaves: Vec<Hash>,
}

/// The text of entry `index`: a hand-over, as the writer would log it.
pub fn entry_text(index: u64) -> String {
    EntryContent {
        index: index as i64,
        kind: "step".into(),
        problem_id: Uuid::from_u128(index as u128 + 1),
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

    /// Signs a checkpoint of the whole log, and stores it as the latest.
    pub async fn checkpoint(&self, pool: &PgPool, signer: &LogSigner, timestamp: i64) -> Checkpoint {
        let checkpoint = signer.checkpoint(self.frontier.size() as i64, &self.frontier.root(), timestamp);
        let mut conn = pool.acquire().await.expect("connection");
        store::add_checkpoint(&mut conn, &checkpoint, time::OffsetDateTime::now_utc()).await.expect("checkpoint");
        checkpoint
    }
}
