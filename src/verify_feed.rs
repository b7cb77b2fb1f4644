//! `skyledger verify-feed URL`: checks a publication service's public log from the outside.
//!
//! It fetches the log's key, every signed checkpoint and every entry; checks each checkpoint's
//! signature and the consistency proof between each checkpoint and the next; recomputes each
//! entry's content hash and leaf hash from the content it is served (or, for a withdrawn entry,
//! from its kept hash), checks the signature given to the entry when it was appended, recomputes
//! the tree's root against the latest checkpoint, and checks every entry's inclusion proof.
//! The first entry that does not match is named, and the exit status is 1.

use anyhow::{Context, anyhow};
use publication::merkle::{self, Hash};
use publication::public_log::{self, Checkpoint, EntryContent, LogVerifier};
use serde::Deserialize;
use serde_json::Value;

/// What was found wrong, naming where.
#[derive(Debug, PartialEq)]
pub enum Finding {
    Entry { index: i64, reason: String },
    Checkpoint { tree_size: i64, reason: String },
    Log(String),
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Entry { index, reason } => write!(f, "entry {index} does not match: {reason}"),
            Finding::Checkpoint { tree_size, reason } => {
                write!(f, "checkpoint of size {tree_size} does not match: {reason}")
            }
            Finding::Log(reason) => write!(f, "the log does not match: {reason}"),
        }
    }
}

#[derive(Deserialize)]
struct Key {
    origin: String,
    public_key: String,
}

#[derive(Deserialize, Clone)]
struct Entry {
    index: i64,
    content: Option<String>,
    content_hash: String,
    leaf_hash: String,
    signature: String,
}

/// What a successful check covered.
#[derive(Debug)]
pub struct Report {
    pub entries: usize,
    pub checkpoints: usize,
    pub tree_size: i64,
    pub root_hash: String,
    pub withdrawn: usize,
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let response = self.http.get(&url).send().await.with_context(|| format!("GET {url}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(anyhow!("GET {url}: {status} {}", response.text().await.unwrap_or_default()));
        }
        response.json().await.with_context(|| format!("GET {url}: not the JSON expected"))
    }
}

/// Checks the log at `base_url`; `Ok(Err(finding))` when it does not verify, `Err` when it
/// cannot be fetched. `pinned_key` (hex) replaces the key the service announces.
pub async fn verify(base_url: &str, pinned_key: Option<&str>) -> anyhow::Result<Result<Report, Finding>> {
    let client = Client {
        http: reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build()?,
        base: base_url.trim_end_matches('/').to_string(),
    };
    let key: Key = client.get("/v1/chain/key").await?;
    let verifier = LogVerifier::from_hex(pinned_key.unwrap_or(&key.public_key), &key.origin)?;

    // Every checkpoint, signed.
    let mut checkpoints: Vec<Checkpoint> = vec![];
    loop {
        let after = checkpoints.last().map(|c| c.tree_size).unwrap_or(0);
        let page: Value = client.get(&format!("/v1/chain/checkpoints?after={after}&limit=1000")).await?;
        let batch: Vec<Checkpoint> = serde_json::from_value(page["checkpoints"].clone())?;
        if batch.is_empty() {
            break;
        }
        checkpoints.extend(batch);
    }
    let mut roots: Vec<(i64, Hash)> = vec![];
    for c in &checkpoints {
        match verifier.checkpoint(c) {
            Ok(root) => roots.push((c.tree_size, root)),
            Err(reason) => return Ok(Err(Finding::Checkpoint { tree_size: c.tree_size, reason })),
        }
    }

    // Every entry, in order, recomputed from what is served.
    let mut entries: Vec<Entry> = vec![];
    loop {
        let page: Value = client.get(&format!("/v1/chain/entries?start={}&limit=1000", entries.len())).await?;
        let batch: Vec<Entry> = serde_json::from_value(page["entries"].clone())?;
        if batch.is_empty() {
            break;
        }
        entries.extend(batch);
    }
    let mut leaves: Vec<Hash> = Vec::with_capacity(entries.len());
    let mut withdrawn = 0;
    for (position, e) in entries.iter().enumerate() {
        let finding = |reason: String| Ok(Err(Finding::Entry { index: position as i64, reason }));
        if e.index != position as i64 {
            return finding(format!("the log skips from {} to {}", position as i64 - 1, e.index));
        }
        let content_hash = match &e.content {
            Some(content) => {
                let hash = public_log::content_hash(content);
                if merkle::to_hex(&hash) != e.content_hash {
                    return finding("its content does not hash to its content hash".into());
                }
                match serde_json::from_str::<EntryContent>(content) {
                    Ok(c) if c.index == e.index => {}
                    _ => return finding("its content does not name its own index".into()),
                }
                hash
            }
            None => {
                withdrawn += 1;
                match merkle::from_hex(&e.content_hash) {
                    Some(h) => h,
                    None => return finding("its kept content hash is not a hash".into()),
                }
            }
        };
        let leaf = public_log::leaf_of(&content_hash);
        if merkle::to_hex(&leaf) != e.leaf_hash {
            return finding("its leaf hash is not that of its content".into());
        }
        if !verifier.entry_signed(e.index, &leaf, &e.signature) {
            return finding("the signature it was given when appended does not cover what it says now".into());
        }
        leaves.push(leaf);
    }
    // Then the checkpoints: each consistent with the one before.
    for pair in roots.windows(2) {
        let ((first, first_root), (second, second_root)) = (pair[0], pair[1]);
        let proof: Value = client.get(&format!("/v1/chain/proof/consistency?first={first}&second={second}")).await?;
        let path = hashes(&proof["proof"])?;
        if !merkle::verify_consistency(first as u64, second as u64, &first_root, &second_root, &path) {
            return Ok(Err(Finding::Checkpoint {
                tree_size: second,
                reason: format!("not consistent with the checkpoint of size {first}: history was rewritten"),
            }));
        }
    }
    let Some(&(tree_size, root)) = roots.last() else {
        return Ok(Err(Finding::Log("no signed checkpoint yet".into())));
    };
    if (leaves.len() as i64) < tree_size {
        return Ok(Err(Finding::Entry {
            index: leaves.len() as i64,
            reason: format!("missing: the checkpoint covers {tree_size} entries"),
        }));
    }

    // The tree the entries make is the one the checkpoint signed, and each entry's proof holds.
    let covered = &leaves[..tree_size as usize];
    for (index, leaf) in covered.iter().enumerate() {
        let proof: Value =
            client.get(&format!("/v1/chain/proof/inclusion?index={index}&tree_size={tree_size}")).await?;
        let path = hashes(&proof["audit_path"])?;
        if !merkle::verify_inclusion(index as u64, tree_size as u64, leaf, &path, &root) {
            return Ok(Err(Finding::Entry {
                index: index as i64,
                reason: format!("its inclusion proof does not lead to the signed root of size {tree_size}"),
            }));
        }
    }
    if merkle::root(covered) != root {
        return Ok(Err(Finding::Log(format!("the entries do not make the signed root of size {tree_size}"))));
    }
    Ok(Ok(Report {
        entries: entries.len(),
        checkpoints: checkpoints.len(),
        tree_size,
        root_hash: merkle::to_hex(&root),
        withdrawn,
    }))
}

fn hashes(v: &Value) -> anyhow::Result<Vec<Hash>> {
    v.as_array()
        .ok_or_else(|| anyhow!("a proof is a list of hashes"))?
        .iter()
        .map(|h| h.as_str().and_then(merkle::from_hex).ok_or_else(|| anyhow!("not a hash: {h}")))
        .collect()
}

/// Runs the check and prints its outcome: exit status 0 when the log verifies, 1 when it does
/// not (the finding on stdout), 2 when it cannot be fetched.
pub async fn run(url: &str, key: Option<&str>) -> i32 {
    match verify(url, key).await {
        Ok(Ok(report)) => {
            println!(
                "ok: {} entries ({} withdrawn, kept as tombstones), {} checkpoints; signed root of size {} is {}",
                report.entries, report.withdrawn, report.checkpoints, report.tree_size, report.root_hash
            );
            0
        }
        Ok(Err(finding)) => {
            println!("{finding}");
            1
        }
        Err(e) => {
            eprintln!("cannot verify {url}: {e:#}");
            2
        }
    }
}
