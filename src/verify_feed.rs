//! `skyledger verify-feed URL [--state FILE] [--witness VKEY]…`: checks a publication service's public log from
//! the outside, at the speed of a few hundred requests whatever the log's size.
//!
//! It fetches the log's key and its latest checkpoint as a signed note (`/checkpoint`) and checks
//! the signature; fetches every entry (pages of 1,000) and recomputes each content hash and leaf
//! hash from the content it is served (or, for a withdrawn entry, from its kept hash), and checks
//! the signature given to the entry when it was appended; fetches the log's level-0 tiles
//! (`c2sp.org/tlog-tiles`, 256 leaves each) and checks that they hold those leaves; and recomputes
//! the root from the leaves against the signed one. With `--state FILE` it remembers the tree it
//! verified (size, root and leaves) and, next time, proves the log only grew since: the
//! service's consistency proof must hold, and the first entry that changed is named. The first
//! entry that does not match is named, and the exit status is 1. With `--witness VKEY` (each
//! witness a reader trusts) the checkpoint must also carry a valid cosignature of that witness
//! (`c2sp.org/tlog-cosignature`): a log cannot then show this reader a tree its witnesses did not
//! see.

use std::path::Path;

use anyhow::{Context, anyhow};
use base64::Engine;
use futures::StreamExt;
use publication::merkle::{self, Hash};
use publication::public_log::{self, EntryContent, LogVerifier};
use publication::tiles::{TILE_WIDTH, Tile};
use publication::witness::WitnessKey;
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

/// Entries asked for in one request.
const PAGE: usize = 1000;

#[derive(Deserialize)]
struct Page {
    entries: Vec<Entry>,
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
    pub tiles: usize,
    pub tree_size: i64,
    pub root_hash: String,
    pub withdrawn: usize,
    /// The size of the tree verified before (`--state`), which this one extends.
    pub grew_from: Option<i64>,
    /// The witnesses whose cosignatures were required and checked (`--witness`).
    pub witnessed_by: Vec<String>,
}

/// What `--state` keeps between runs: the tree last verified, its leaves included, so a
/// rewritten entry can be named.
#[derive(serde::Serialize, Deserialize)]
struct State {
    origin: String,
    tree_size: i64,
    root_hash: String,
    /// The leaf hashes, concatenated, base64.
    leaves: String,
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn get<T: serde::de::DeserializeOwned>(&self, path: impl AsRef<str>) -> anyhow::Result<T> {
        let path = path.as_ref();
        self.answer(path).await?.json().await.with_context(|| format!("GET {}{path}: not the JSON expected", self.base))
    }

    async fn answer(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let url = format!("{}{path}", self.base);
        let response = self.http.get(&url).send().await.with_context(|| format!("GET {url}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(anyhow!("GET {url}: {status} {}", response.text().await.unwrap_or_default()));
        }
        Ok(response)
    }

    async fn text(&self, path: &str) -> anyhow::Result<String> {
        Ok(self.answer(path).await?.text().await?)
    }

    async fn bytes(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        Ok(self.answer(path).await?.bytes().await?.to_vec())
    }
}

impl Client {
    fn new(base_url: &str) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build()?,
            base: base_url.trim_end_matches('/').to_string(),
        })
    }
}

/// The log's key and its latest checkpoint, its signature checked and, for each witness
/// required, its cosignature: no split view of the log that they did not see.
async fn signed_checkpoint(
    client: &Client,
    pinned_key: Option<&str>,
    witnesses: &[WitnessKey],
) -> anyhow::Result<Result<(Key, LogVerifier, i64, Hash), Finding>> {
    let key: Key = client.get("/v1/chain/key").await?;
    let verifier = LogVerifier::from_hex(pinned_key.unwrap_or(&key.public_key), &key.origin)?;
    let note = client.text("/checkpoint").await?;
    let (tree_size, root) = match verifier.note(&note) {
        Ok(checkpoint) => checkpoint,
        Err(reason) => return Ok(Err(Finding::Log(format!("its latest checkpoint: {reason}")))),
    };
    for witness in witnesses {
        if witness.cosigned_note(&note).is_none() {
            return Ok(Err(Finding::Checkpoint {
                tree_size,
                reason: format!("it carries no valid cosignature of the witness {}", witness.name),
            }));
        }
    }
    Ok(Ok((key, verifier, tree_size, root)))
}

/// What checking one problem's record covered.
#[derive(Debug)]
pub struct ProblemReport {
    /// Its entries under the signed checkpoint, each checked with its inclusion proof.
    pub verified: Vec<i64>,
    /// Its entries appended since, awaiting the next checkpoint.
    pub newer: Vec<i64>,
    pub tree_size: i64,
    pub witnessed_by: Vec<String>,
}

/// Checks one problem's record, as its public page does in the browser: the signed checkpoint
/// (and the witnesses' cosignatures), then each of the problem's entries — its content, hashes
/// and entry signature — and its inclusion proof up to the signed root. A few requests per
/// entry, whatever the log's size.
pub async fn verify_problem(
    base_url: &str,
    pinned_key: Option<&str>,
    witnesses: &[WitnessKey],
    problem: &str,
) -> anyhow::Result<Result<ProblemReport, Finding>> {
    let client = Client::new(base_url)?;
    let (_, verifier, tree_size, root) = match signed_checkpoint(&client, pinned_key, witnesses).await? {
        Ok(checkpoint) => checkpoint,
        Err(finding) => return Ok(Err(finding)),
    };
    let record: Value = client.get(format!("/v1/problems/{problem}")).await?;
    let indexes: Vec<i64> = record["history"]
        .as_array()
        .ok_or_else(|| anyhow!("problem {problem} has no history"))?
        .iter()
        .filter_map(|h| h["entry_index"].as_i64())
        .collect();
    let (covered, newer): (Vec<i64>, Vec<i64>) = indexes.into_iter().partition(|i| *i < tree_size);
    let checks = covered.iter().map(|&index| {
        let (client, verifier) = (&client, &verifier);
        async move {
            let page: Page = client.get(format!("/v1/chain/entries?start={index}&limit=1")).await?;
            let entry = page.entries.into_iter().next().ok_or_else(|| anyhow!("entry {index} is not served"))?;
            let (leaf, _) = match check_entry(verifier, index, &entry) {
                Ok(checked) => checked,
                Err(reason) => return Ok(Err(Finding::Entry { index, reason })),
            };
            if let Some(content) = &entry.content
                && serde_json::from_str::<EntryContent>(content).map(|c| c.problem_id.to_string()).ok().as_deref()
                    != Some(problem)
            {
                let reason = format!("it is not about problem {problem}");
                return Ok(Err(Finding::Entry { index, reason }));
            }
            let proof: Value =
                client.get(format!("/v1/chain/proof/inclusion?index={index}&tree_size={tree_size}")).await?;
            let path = hashes(&proof["audit_path"])?;
            if !merkle::verify_inclusion(index as u64, tree_size as u64, &leaf, &path, &root) {
                let reason = format!("its inclusion proof does not lead to the signed root of size {tree_size}");
                return Ok(Err(Finding::Entry { index, reason }));
            }
            anyhow::Ok(Ok(()))
        }
    });
    let outcomes: Vec<anyhow::Result<Result<(), Finding>>> = futures::stream::iter(checks).buffered(8).collect().await;
    for outcome in outcomes {
        if let Err(finding) = outcome? {
            return Ok(Err(finding));
        }
    }
    Ok(Ok(ProblemReport {
        verified: covered,
        newer,
        tree_size,
        witnessed_by: witnesses.iter().map(|w| w.name.clone()).collect(),
    }))
}

/// Checks the log at `base_url`; `Ok(Err(finding))` when it does not verify, `Err` when it
/// cannot be fetched. `pinned_key` (hex) replaces the key the service announces; `state` is the
/// file of the tree verified before, written anew when this one verifies.
pub async fn verify(
    base_url: &str,
    pinned_key: Option<&str>,
    state: Option<&Path>,
    witnesses: &[WitnessKey],
) -> anyhow::Result<Result<Report, Finding>> {
    let client = Client::new(base_url)?;
    let (key, verifier, tree_size, root) = match signed_checkpoint(&client, pinned_key, witnesses).await? {
        Ok(checkpoint) => checkpoint,
        Err(finding) => return Ok(Err(finding)),
    };

    // Every entry, in order, recomputed from what is served: the pages the checkpoint covers
    // fetched a few at a time, then any after it; checked on every core.
    let progress = indicatif::ProgressBar::new(tree_size as u64).with_message("entries");
    let pages = (tree_size as usize).div_ceil(PAGE);
    let mut entries: Vec<Entry> = Vec::with_capacity(tree_size as usize);
    let mut fetched = futures::stream::iter(0..pages)
        .map(|page| client.get::<Page>(format!("/v1/chain/entries?start={}&limit={PAGE}", page * PAGE)))
        .buffered(4);
    while let Some(page) = fetched.next().await {
        let page = page?;
        progress.inc(page.entries.len() as u64);
        entries.extend(page.entries);
    }
    drop(fetched);
    loop {
        let page: Page = client.get(format!("/v1/chain/entries?start={}&limit={PAGE}", entries.len())).await?;
        if page.entries.is_empty() {
            break;
        }
        entries.extend(page.entries);
    }
    progress.finish_and_clear();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = entries.len().div_ceil(threads).max(1);
    let checked: Vec<Result<Vec<(Hash, bool)>, Finding>> = std::thread::scope(|scope| {
        let verifier = &verifier;
        let workers: Vec<_> = entries
            .chunks(chunk)
            .enumerate()
            .map(|(n, part)| {
                scope.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(i, e)| {
                            let position = (n * chunk + i) as i64;
                            check_entry(verifier, position, e)
                                .map_err(|reason| Finding::Entry { index: position, reason })
                        })
                        .collect()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("a checking thread")).collect()
    });
    let mut leaves: Vec<Hash> = Vec::with_capacity(entries.len());
    let mut withdrawn = 0;
    for part in checked {
        match part {
            Ok(part) => {
                withdrawn += part.iter().filter(|(_, gone)| *gone).count();
                leaves.extend(part.into_iter().map(|(leaf, _)| leaf));
            }
            // Parts are in order: the first finding is the first entry that does not match.
            Err(finding) => return Ok(Err(finding)),
        }
    }
    if (leaves.len() as i64) < tree_size {
        return Ok(Err(Finding::Entry {
            index: leaves.len() as i64,
            reason: format!("missing: the checkpoint covers {tree_size} entries"),
        }));
    }
    let covered = &leaves[..tree_size as usize];

    // The tiles hold the same leaves (what tlog tools read is what the entries say).
    let tile_count = (tree_size as u64).div_ceil(TILE_WIDTH);
    for n in 0..tile_count {
        let width = (tree_size as u64 - n * TILE_WIDTH).min(TILE_WIDTH);
        let tile = Tile::Hashes { level: 0, index: n, width };
        let bytes = client.bytes(&format!("/{}", tile.path())).await?;
        let first = (n * TILE_WIDTH) as usize;
        for (i, hash) in bytes.chunks(32).enumerate() {
            if covered.get(first + i).is_none_or(|leaf| leaf[..] != *hash) {
                return Ok(Err(Finding::Entry {
                    index: (first + i) as i64,
                    reason: format!("the tile {} holds another leaf", tile.path()),
                }));
            }
        }
        if bytes.len() != 32 * width as usize {
            return Ok(Err(Finding::Log(format!("the tile {} is not {width} hashes", tile.path()))));
        }
    }

    // The tree the entries make is the one the checkpoint signed.
    if merkle::root(covered) != root {
        return Ok(Err(Finding::Log(format!("the entries do not make the signed root of size {tree_size}"))));
    }

    // And it only grew since the tree verified before.
    let before: Option<State> = match state {
        Some(path) if path.exists() => Some(serde_json::from_slice(&std::fs::read(path)?)?),
        _ => None,
    };
    if let Some(before) = &before
        && let Some(finding) = grown_from(&client, before, covered, &root).await?
    {
        return Ok(Err(finding));
    }
    if let Some(path) = state {
        let leaves: Vec<u8> = covered.iter().flatten().copied().collect();
        let kept = State {
            origin: key.origin.clone(),
            tree_size,
            root_hash: merkle::to_hex(&root),
            leaves: base64::engine::general_purpose::STANDARD.encode(leaves),
        };
        std::fs::write(path, serde_json::to_vec(&kept)?)?;
    }
    Ok(Ok(Report {
        entries: entries.len(),
        tiles: tile_count as usize,
        tree_size,
        root_hash: merkle::to_hex(&root),
        withdrawn,
        grew_from: before.map(|b| b.tree_size),
        witnessed_by: witnesses.iter().map(|w| w.name.clone()).collect(),
    }))
}

/// One entry as served at `position`: its leaf hash and whether it was withdrawn, or why it does
/// not match.
fn check_entry(verifier: &LogVerifier, position: i64, e: &Entry) -> Result<(Hash, bool), String> {
    if e.index != position {
        return Err(format!("the log skips from {} to {}", position - 1, e.index));
    }
    let content_hash = match &e.content {
        Some(content) => {
            let hash = public_log::content_hash(content);
            if merkle::to_hex(&hash) != e.content_hash {
                return Err("its content does not hash to its content hash".into());
            }
            match serde_json::from_str::<EntryContent>(content) {
                Ok(c) if c.index == e.index => {}
                _ => return Err("its content does not name its own index".into()),
            }
            hash
        }
        None => merkle::from_hex(&e.content_hash).ok_or("its kept content hash is not a hash")?,
    };
    let leaf = public_log::leaf_of(&content_hash);
    if merkle::to_hex(&leaf) != e.leaf_hash {
        return Err("its leaf hash is not that of its content".into());
    }
    if !verifier.entry_signed(e.index, &leaf, &e.signature) {
        return Err("the signature it was given when appended does not cover what it says now".into());
    }
    Ok((leaf, e.content.is_none()))
}

/// Whether the tree verified now extends the one verified before: `None` when it does.
async fn grown_from(client: &Client, before: &State, leaves: &[Hash], root: &Hash) -> anyhow::Result<Option<Finding>> {
    let old_root = merkle::from_hex(&before.root_hash).ok_or_else(|| anyhow!("the state file's root is not a hash"))?;
    let old_leaves: Vec<Hash> = base64::engine::general_purpose::STANDARD
        .decode(&before.leaves)?
        .chunks(32)
        .map(|c| Hash::try_from(c).map_err(|_| anyhow!("the state file's leaves are not hashes")))
        .collect::<anyhow::Result<_>>()?;
    let (old, new) = (before.tree_size, leaves.len() as i64);
    if new < old {
        return Ok(Some(Finding::Checkpoint {
            tree_size: new,
            reason: format!("the log shrank: a tree of {old} was verified before"),
        }));
    }
    if let Some(index) = old_leaves.iter().zip(leaves).position(|(a, b)| a != b) {
        return Ok(Some(Finding::Entry {
            index: index as i64,
            reason: format!("it changed since the tree of {old} was verified: history was rewritten"),
        }));
    }
    if old > 0 && old < new {
        let proof: Value = client.get(&format!("/v1/chain/proof/consistency?first={old}&second={new}")).await?;
        let path = hashes(&proof["proof"])?;
        if !merkle::verify_consistency(old as u64, new as u64, &old_root, root, &path) {
            return Ok(Some(Finding::Checkpoint {
                tree_size: new,
                reason: format!("the service's consistency proof from the tree of {old} does not hold"),
            }));
        }
    }
    Ok(None)
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
pub async fn run(
    url: &str,
    key: Option<&str>,
    state: Option<&Path>,
    witnesses: &[String],
    problem: Option<&str>,
) -> i32 {
    let witnesses: Vec<WitnessKey> = match witnesses.iter().map(|w| WitnessKey::parse(w)).collect() {
        Ok(witnesses) => witnesses,
        Err(e) => {
            eprintln!("--witness: {e}");
            return 2;
        }
    };
    let checked = match problem {
        Some(problem) => {
            verify_problem(url, key, &witnesses, problem).await.map(|r| r.map(|r| said_of_problem(problem, &r)))
        }
        None => verify(url, key, state, &witnesses).await.map(|r| r.map(|r| said_of_log(&r))),
    };
    match checked {
        Ok(Ok(said)) => {
            println!("{said}");
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

fn cosigned(witnessed_by: &[String]) -> String {
    if witnessed_by.is_empty() { String::new() } else { format!("; cosigned by {}", witnessed_by.join(", ")) }
}

fn said_of_log(report: &Report) -> String {
    let grew = report.grew_from.map(|n| format!("; grew from the tree of {n} verified before")).unwrap_or_default();
    format!(
        "ok: {} entries ({} withdrawn, kept as tombstones), {} tiles; signed root of size {} is {}{grew}{}",
        report.entries,
        report.withdrawn,
        report.tiles,
        report.tree_size,
        report.root_hash,
        cosigned(&report.witnessed_by)
    )
}

fn said_of_problem(problem: &str, report: &ProblemReport) -> String {
    let listed = |indexes: &[i64]| indexes.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
    let newer = if report.newer.is_empty() {
        String::new()
    } else {
        format!("; entries {} await the next checkpoint", listed(&report.newer))
    };
    format!(
        "ok: problem {problem}: entries {} in the signed tree of size {}{newer}{}",
        listed(&report.verified),
        report.tree_size,
        cosigned(&report.witnessed_by)
    )
}
