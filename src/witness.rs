//! `skyledger witness`: a witness of Skyledger logs, run by someone other than the log's operator
//! (a provincial bureau, a university, an NGO). It serves `POST /add-checkpoint`
//! (`c2sp.org/tlog-witness`): it checks the checkpoint's signature with the key of a log it was
//! told to trust, checks that the checkpoint extends the last one it cosigned for that log (a
//! consistency proof; the same size must have the same root), remembers the new one on disk, and
//! only then answers its cosignature (`c2sp.org/tlog-cosignature`). A log that forks is refused,
//! and the witness says so loudly in its log.
//!
//! Its state is one small JSON file, the tree last cosigned per log, written to a temporary file
//! and renamed over the old one, under a lock held from the check to the answer: two requests
//! cannot roll each other back.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use publication::public_log::LogVerifier;
use publication::witness::{AddCheckpoint, Cosigner, Refusal, Seen, check_extension};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

pub struct Options {
    pub listen: String,
    pub key: PathBuf,
    pub name: String,
    pub log_keys: Vec<String>,
    pub state: PathBuf,
}

/// What the witness remembers: the tree it last cosigned, per log origin.
#[derive(Default, Clone, Serialize, Deserialize)]
struct Remembered {
    logs: BTreeMap<String, Seen>,
}

impl Remembered {
    fn load(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// Written whole to a temporary file beside it, synced, and renamed over it: a crash leaves
    /// the old state or the new one, never half of one.
    fn save(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let temporary = path.with_extension("tmp");
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&serde_json::to_vec_pretty(self).expect("the state serialises"))?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

struct Witness {
    cosigner: Cosigner,
    /// The logs trusted, by origin.
    logs: HashMap<String, LogVerifier>,
    state_file: PathBuf,
    remembered: Mutex<Remembered>,
}

/// The witness's verifier key, creating its key file if there is none.
pub fn verifier_key(key: &Path, name: &str) -> anyhow::Result<String> {
    Ok(Cosigner::load_or_create(key, name)?.verifier_key())
}

pub async fn run(options: Options, shutdown: CancellationToken) -> anyhow::Result<()> {
    anyhow::ensure!(!options.log_keys.is_empty(), "a witness trusts at least one log: --log-key VKEY");
    let cosigner = Cosigner::load_or_create(&options.key, &options.name)?;
    let mut logs = HashMap::new();
    for vkey in &options.log_keys {
        let verifier = LogVerifier::from_verifier_key(vkey).map_err(|e| anyhow::anyhow!("--log-key {vkey}: {e}"))?;
        logs.insert(verifier.origin.clone(), verifier);
    }
    if let Some(dir) = options.state.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let remembered = Remembered::load(&options.state)?;
    let vkey = cosigner.verifier_key();
    let witness = Arc::new(Witness { cosigner, logs, state_file: options.state, remembered: Mutex::new(remembered) });
    let router = axum::Router::new().route("/add-checkpoint", post(add_checkpoint)).with_state(witness.clone());
    let listener = tokio::net::TcpListener::bind(&options.listen).await?;
    // The verifier key on stdout, for whoever configures the log and its readers.
    println!("{vkey}");
    tracing::info!(
        listen = %listener.local_addr()?,
        verifier_key = %vkey,
        logs = ?witness.logs.keys().collect::<Vec<_>>(),
        "witness ready"
    );
    axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await?;
    Ok(())
}

fn plain(status: StatusCode, text: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

/// 409 names the size last cosigned, as `text/x.tlog.size`.
fn conflict(cosigned: u64) -> Response {
    (StatusCode::CONFLICT, [(header::CONTENT_TYPE, "text/x.tlog.size")], format!("{cosigned}\n")).into_response()
}

async fn add_checkpoint(State(w): State<Arc<Witness>>, body: String) -> Response {
    match w.add_checkpoint(&body).await {
        Ok(line) => plain(StatusCode::OK, line),
        Err(Refusal::OldSize { cosigned } | Refusal::Fork { cosigned }) => conflict(cosigned),
        Err(refusal) => {
            let status = StatusCode::from_u16(refusal.status()).expect("a status");
            let reason = match refusal {
                Refusal::BadRequest(reason) | Refusal::BadSignature(reason) => reason,
                Refusal::UnknownLog(origin) => format!("no log {origin:?} is witnessed here"),
                Refusal::Unavailable => "the witness cannot keep its state".into(),
                Refusal::Inconsistent | Refusal::OldSize { .. } | Refusal::Fork { .. } => {
                    "the consistency proof from the tree cosigned does not hold".into()
                }
            };
            plain(status, format!("{reason}\n"))
        }
    }
}

impl Witness {
    /// The cosignature line for the checkpoint of the request `body`, once every check of
    /// tlog-witness holds and the new tree is kept on disk; or why not.
    async fn add_checkpoint(&self, body: &str) -> Result<String, Refusal> {
        let request = AddCheckpoint::parse(body).map_err(Refusal::BadRequest)?;
        let origin = request.note.lines().next().unwrap_or_default().to_string();
        let log = self.logs.get(&origin).ok_or_else(|| Refusal::UnknownLog(origin.clone()))?;
        let (size, root) = log.note(&request.note).map_err(Refusal::BadSignature)?;
        let size = u64::try_from(size).map_err(|_| Refusal::BadRequest("a tree size is not negative".into()))?;
        // From the check to the answer, one request at a time: the state only moves forward.
        let mut remembered = self.remembered.lock().await;
        let seen = remembered.logs.get(&origin).copied();
        let next =
            check_extension(seen, request.old, &request.proof, size, root).inspect_err(|refusal| match refusal {
                Refusal::Fork { .. } => tracing::error!(
                    origin,
                    size,
                    root = %publication::merkle::to_hex(&root),
                    cosigned_root = %seen.map(|s| publication::merkle::to_hex(&s.root)).unwrap_or_default(),
                    checkpoint = %request.note,
                    "THE LOG FORKED: a checkpoint of the size cosigned with another root; refused"
                ),
                Refusal::Inconsistent => tracing::error!(
                    origin,
                    size,
                    old = request.old,
                    checkpoint = %request.note,
                    "the consistency proof from the tree cosigned does not hold (a fork, or a broken proof); refused"
                ),
                _ => {}
            })?;
        let mut updated = remembered.clone();
        updated.logs.insert(origin.clone(), next);
        if let Err(e) = updated.save(&self.state_file) {
            tracing::error!(error = %e, file = %self.state_file.display(), "cannot keep the witness's state; not cosigning");
            return Err(Refusal::Unavailable);
        }
        *remembered = updated;
        let (text, _) = request.note.split_once("\n\n").expect("a verified note has a blank line");
        let time = time::OffsetDateTime::now_utc().unix_timestamp() as u64;
        tracing::info!(origin, size, old = request.old, "cosigned");
        Ok(self.cosigner.cosign(&format!("{text}\n"), time))
    }
}
