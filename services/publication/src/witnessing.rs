//! Asks the deployment's witnesses to cosign the log's latest checkpoint (`c2sp.org/tlog-witness`)
//! and keeps their cosignatures, which `/checkpoint` then serves after the log's own signature.
//!
//! Each witness is sent the checkpoint with a consistency proof from the size it last cosigned
//! (kept per witness; 0 at first). A witness that answers 409 has cosigned another size: its
//! answer names it, and the request is made once more from there. A witness that is down or
//! refuses is asked again on the next poll; the log does not wait for it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::config::WitnessConfig;
use crate::frontier::{self, Nodes};
use crate::merkle::Hash;
use crate::public_log::{Checkpoint, LogSigner};
use crate::store::{self, Cosignature};
use crate::witness::{AddCheckpoint, WitnessKey};

/// A witness the deployment names.
#[derive(Debug, Clone)]
pub struct Witness {
    pub key: WitnessKey,
    /// Its verifier key, as configured: how it is known in the store.
    pub vkey: String,
    /// The prefix of its `add-checkpoint`.
    pub url: String,
}

impl Witness {
    pub fn from_config(label: &str, c: &WitnessConfig) -> anyhow::Result<Self> {
        let key = WitnessKey::parse(&c.vkey).map_err(|e| anyhow!("witness {label}: {e}"))?;
        anyhow::ensure!(!c.url.is_empty(), "witness {label}: no url");
        Ok(Self { key, vkey: c.vkey.trim().to_string(), url: c.url.trim_end_matches('/').to_string() })
    }
}

#[derive(Clone)]
pub struct Witnessing {
    pool: PgPool,
    signer: Arc<LogSigner>,
    witnesses: Arc<Vec<Witness>>,
    http: reqwest::Client,
    poll: Duration,
}

impl Witnessing {
    pub fn new(pool: PgPool, signer: Arc<LogSigner>, witnesses: Arc<Vec<Witness>>, poll: Duration) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("an HTTP client");
        Self { pool, signer, witnesses, http, poll }
    }

    /// The job: runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            for witness in self.witnesses.iter() {
                if let Err(e) = self.ask(witness).await {
                    tracing::warn!(witness = %witness.key.name, error = format!("{e:#}"), "no cosignature; asking again later");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Asks `witness` to cosign the latest checkpoint, unless it has.
    async fn ask(&self, witness: &Witness) -> anyhow::Result<()> {
        let (checkpoint, mut old) = {
            let mut conn = self.pool.acquire().await?;
            let Some(checkpoint) = store::latest_checkpoint(&mut conn, &self.signer.origin).await? else {
                return Ok(());
            };
            let held = store::cosignatures(&mut conn, checkpoint.tree_size).await?;
            if held.iter().any(|c| c.witness_key == witness.vkey) {
                return Ok(());
            }
            (checkpoint, store::witness_cosigned_size(&mut conn, &witness.vkey).await?)
        };
        let size = checkpoint.tree_size;
        let note = self.signer.signed_note(&checkpoint);
        // Once as we know it, once more from the size the witness says it cosigned.
        for attempt in 0..2 {
            if old > size {
                bail!("the witness has cosigned a tree of {old}, larger than the log's {size}");
            }
            let proof = if old == 0 || old == size {
                vec![]
            } else {
                consistency_proof(&mut *self.pool.acquire().await?, old as u64, size as u64).await?
            };
            let request = AddCheckpoint { old: old as u64, proof, note: note.clone() };
            let url = format!("{}/add-checkpoint", witness.url);
            let response =
                self.http.post(&url).body(request.to_text()).send().await.with_context(|| format!("POST {url}"))?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            match status.as_u16() {
                200 => return self.keep(witness, &checkpoint, &text).await,
                409 if attempt == 0 => {
                    old = text.trim().parse().map_err(|_| anyhow!("409 without a size: {text:?}"))?;
                    store::set_witness_cosigned_size(&mut *self.pool.acquire().await?, &witness.vkey, old).await?;
                }
                _ => bail!("the witness refused the checkpoint of {size} (from {old}): {status} {}", text.trim()),
            }
        }
        bail!("the witness refused the checkpoint of {size} twice for its old size")
    }

    /// Keeps the witness's cosignature from its answer, once it verifies on the checkpoint.
    async fn keep(&self, witness: &Witness, checkpoint: &Checkpoint, answer: &str) -> anyhow::Result<()> {
        let (line, time) = witness
            .key
            .cosignature_line(&checkpoint.body, answer)
            .ok_or_else(|| anyhow!("its answer holds no valid cosignature of its key: {answer:?}"))?;
        let cosigned_at = OffsetDateTime::from_unix_timestamp(time as i64).context("the cosignature's time")?;
        let cosignature = Cosignature {
            witness_name: witness.key.name.clone(),
            witness_key: witness.vkey.clone(),
            line: line.to_string(),
            cosigned_at,
        };
        store::add_cosignature(&mut *self.pool.acquire().await?, checkpoint.tree_size, &cosignature).await?;
        tracing::info!(witness = %witness.key.name, tree_size = checkpoint.tree_size, "checkpoint cosigned");
        Ok(())
    }
}

/// The consistency proof from the tree of `first` leaves to that of `second`, from the log's
/// stored subtrees.
async fn consistency_proof(conn: &mut PgConnection, first: u64, second: u64) -> anyhow::Result<Vec<Hash>> {
    let ask = |t: &mut Nodes<'_>| t.consistency_proof(first, second);
    let ids = frontier::needed(|t| {
        ask(t);
    });
    let stored = store::nodes(conn, &ids).await?;
    let mut lookup = |id| stored.get(&id).copied();
    ask(&mut Nodes::new(&mut lookup)).ok_or_else(|| anyhow!("the log's stored tree lacks a node it should hold"))
}
