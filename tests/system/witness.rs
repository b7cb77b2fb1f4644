//! Witnesses (issue 17): two `skyledger witness` processes, named by their keys in the
//! deployment, cosign the log's checkpoints; `/checkpoint` carries their cosignatures, checked
//! here from the specifications alone (`c2sp.org/tlog-cosignature`, `c2sp.org/signed-note`)
//! with no project code; the front page says who witnessed the latest checkpoint; and a witness
//! asked directly to cosign a fork of the log (the same size, another root, signed with the log's
//! own key), a tree that does not extend the one it cosigned, or a checkpoint of a key it does
//! not trust, refuses (`c2sp.org/tlog-witness`) and cosigns nothing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::Value;
use sha2::{Digest, Sha256};
use shared::testing::{Stack, StackOptions, WebhookReceiver, eventually, free_port};

use crate::support::*;

const ORIGIN: &str = "ledger.example.gov.cn/witnessed";

/// A signed-note key id: `SHA-256(name || "\n" || type || key)[:4]`.
fn key_id(name: &str, kind: u8, key: &VerifyingKey) -> [u8; 4] {
    Sha256::new().chain_update(name).chain_update([b'\n', kind]).chain_update(key.as_bytes()).finalize()[..4]
        .try_into()
        .unwrap()
}

/// `name+id+base64(type || key)`, read by the spec: (name, key), its id checked.
fn read_vkey(vkey: &str, kind: u8) -> (String, VerifyingKey) {
    let mut parts = vkey.splitn(3, '+');
    let (name, id, key) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let key = B64.decode(key).expect("base64 key");
    assert_eq!(key[0], kind, "{vkey}: signature type");
    let key = VerifyingKey::from_bytes(&key[1..].try_into().expect("32 bytes")).expect("an Ed25519 key");
    assert_eq!(hex::encode(key_id(name, kind, &key)), id, "{vkey}: the key id is the hash of name and key");
    (name.to_string(), key)
}

/// The log's note signature on `body` (signed-note, type 0x01), as the log would make it.
fn log_signed(log: &SigningKey, body: &str) -> String {
    let mut signature = key_id(ORIGIN, 0x01, &log.verifying_key()).to_vec();
    signature.extend_from_slice(&log.sign(body.as_bytes()).to_bytes());
    format!("{body}\n\u{2014} {ORIGIN} {}\n", B64.encode(signature))
}

/// The time of `witness`'s valid cosignature of the note's body among its signature lines:
/// `— name base64(key id || u64 BE time || Ed25519 signature over "cosignature/v1\ntime T\n" ||
/// body)`.
fn cosigned_at(note: &str, witness: &(String, VerifyingKey)) -> Option<u64> {
    let (name, key) = witness;
    let (text, lines) = note.split_once("\n\n")?;
    let body = format!("{text}\n");
    lines.lines().find_map(|line| {
        let (who, signature) = line.strip_prefix("\u{2014} ")?.split_once(' ')?;
        let bytes = B64.decode(signature).ok()?;
        if who != name || bytes.len() != 76 || bytes[..4] != key_id(name, 0x04, key) {
            return None;
        }
        let time = u64::from_be_bytes(bytes[4..12].try_into().unwrap());
        let message = format!("cosignature/v1\ntime {time}\n{body}");
        key.verify(message.as_bytes(), &Signature::from_bytes(&bytes[12..].try_into().unwrap())).ok()?;
        Some(time)
    })
}

/// The log's own signature on the note checks with its verifier key; its (size, root).
fn log_checkpoint(note: &str, log: &(String, VerifyingKey)) -> (u64, [u8; 32]) {
    let (text, lines) = note.split_once("\n\n").expect("a blank line before the signatures");
    let id = key_id(&log.0, 0x01, &log.1);
    let signed = lines.lines().any(|line| {
        let Some((who, signature)) = line.strip_prefix("\u{2014} ").and_then(|l| l.split_once(' ')) else {
            return false;
        };
        let bytes = B64.decode(signature).unwrap_or_default();
        who == log.0
            && bytes.len() == 68
            && bytes[..4] == id
            && log
                .1
                .verify(format!("{text}\n").as_bytes(), &Signature::from_bytes(&bytes[4..].try_into().unwrap()))
                .is_ok()
    });
    assert!(signed, "the log signs its checkpoint:\n{note}");
    let mut lines = text.lines().skip(1);
    let size = lines.next().unwrap().parse().unwrap();
    let root = B64.decode(lines.next().unwrap()).unwrap().try_into().unwrap();
    (size, root)
}

/// A `skyledger witness` process, stopped when dropped.
struct WitnessProcess {
    child: Child,
    url: String,
    vkey: String,
    log: PathBuf,
    command: Vec<std::ffi::OsString>,
}

impl WitnessProcess {
    fn start(dir: &Path, name: &str, log_vkey: &str) -> Self {
        let port = free_port();
        let file = |ext: &str| dir.join(format!("{}.{ext}", name.replace('/', "_")));
        let command: Vec<std::ffi::OsString> = [
            "witness".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}").into(),
            "--name".into(),
            name.into(),
            "--log-key".into(),
            log_vkey.into(),
            "--key".into(),
            file("key").into_os_string(),
            "--state".into(),
            file("json").into_os_string(),
        ]
        .into();
        let log = file("log");
        let child = Self::spawn(&command, &file("out"), &log);
        // Dropped, hence stopped, should it not start.
        let mut witness = Self { child, url: format!("http://127.0.0.1:{port}"), vkey: String::new(), log, command };
        witness.vkey = witness.verifier_key();
        witness
    }

    fn spawn(command: &[std::ffi::OsString], stdout: &Path, log: &Path) -> Child {
        Command::new(env!("CARGO_BIN_EXE_skyledger"))
            .args(command)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(stdout).unwrap())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap())
            .spawn()
            .expect("start skyledger witness")
    }

    /// The verifier key the witness prints once it listens.
    fn verifier_key(&self) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let out = std::fs::read_to_string(self.log.with_extension("out")).unwrap_or_default();
            if let Some(line) = out.lines().next() {
                return line.to_string();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the witness did not start: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Killed (no chance to write anything more) and started again on the same files and port.
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(&self.command, &self.log.with_extension("out"), &self.log);
        assert_eq!(self.verifier_key(), self.vkey, "the same key");
    }

    async fn add_checkpoint(&self, body: String) -> (u16, String, String) {
        let response = reqwest::Client::new()
            .post(format!("{}/add-checkpoint", self.url))
            .body(body)
            .send()
            .await
            .expect("the witness answers");
        let status = response.status().as_u16();
        let kind = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        (status, kind, response.text().await.unwrap())
    }
}

impl Drop for WitnessProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn witnesses_cosign_the_log_and_refuse_a_fork() {
    let dir = tempfile::tempdir().unwrap();
    // The log's key, made here so the test can sign as the log would (a log turned rogue).
    let log_key = SigningKey::generate(&mut rand::rngs::OsRng);
    let key_file = dir.path().join("log.key");
    std::fs::write(&key_file, hex::encode(log_key.to_bytes())).unwrap();
    let mut encoded = vec![0x01];
    encoded.extend_from_slice(log_key.verifying_key().as_bytes());
    let log_vkey =
        format!("{ORIGIN}+{}+{}", hex::encode(key_id(ORIGIN, 0x01, &log_key.verifying_key())), B64.encode(encoded));

    let mut bureau = WitnessProcess::start(dir.path(), "witness.hebei-bureau.example/1", &log_vkey);
    let university = WitnessProcess::start(dir.path(), "witness.university.example/w", &log_vkey);
    let mut options = StackOptions::default();
    options.env.extend([
        ("SKYLEDGER__PUBLICATION__CHECKPOINT_KEY_FILE".into(), key_file.display().to_string()),
        ("SKYLEDGER__PUBLICATION__LOG_ORIGIN".into(), ORIGIN.into()),
        ("SKYLEDGER__PUBLICATION__WITNESS_POLL_MILLIS".into(), "200".into()),
        ("SKYLEDGER__PUBLICATION__WITNESSES__BUREAU__VKEY".into(), bureau.vkey.clone()),
        ("SKYLEDGER__PUBLICATION__WITNESSES__BUREAU__URL".into(), bureau.url.clone()),
        ("SKYLEDGER__PUBLICATION__WITNESSES__UNIVERSITY__VKEY".into(), university.vkey.clone()),
        ("SKYLEDGER__PUBLICATION__WITNESSES__UNIVERSITY__URL".into(), university.url.clone()),
    ]);
    let stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), options).await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let (_, key) = get(&stack, "publication", "/v1/chain/key", None).await;
    assert_eq!(key["verifier_key"], log_vkey.as_str(), "the log signs with the key configured");
    let log = read_vkey(&log_vkey, 0x01);
    let witnesses = [read_vkey(&bureau.vkey, 0x04), read_vkey(&university.vkey, 0x04)];
    assert_eq!(witnesses[0].0, "witness.hebei-bureau.example/1");

    // Twenty problems, each logged as reported and handed over.
    let reports: Vec<Value> = (0..20).map(|i| inspection(XINGTAI, None, &format!("见证厂 {i}"), &["dust"])).collect();
    batch(&stack, reports).await;
    let note_of = |size: u64| {
        let stack = &stack;
        let witnesses = &witnesses;
        let log = &log;
        async move {
            let response = stack.http.get(format!("{}/checkpoint", stack.url("publication"))).send().await.ok()?;
            if response.status() != 200 {
                return None; // the log is empty yet
            }
            let note = response.text().await.ok()?;
            let (checkpoint_size, _) = log_checkpoint(&note, log);
            (checkpoint_size >= size && witnesses.iter().all(|w| cosigned_at(&note, w).is_some())).then_some(note)
        }
    };
    let note = eventually("the checkpoint of 40 entries cosigned by both witnesses", WAIT, || note_of(40)).await;
    let (size, root) = log_checkpoint(&note, &log);
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as u64;
    for w in &witnesses {
        let at = cosigned_at(&note, w).unwrap();
        assert!(at <= now && at + 120 > now, "{}: cosigned just now ({at})", w.0);
    }
    let (_, listed) = get(&stack, "publication", "/v1/chain/witnesses", None).await;
    let names: Vec<&str> =
        listed["witnesses"].as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"witness.hebei-bureau.example/1") && names.contains(&"witness.university.example/w"));
    assert!(listed["witnesses"].as_array().unwrap().iter().any(|w| w["verifier_key"] == bureau.vkey.as_str()));

    // The public page says who witnessed the latest checkpoint.
    let page =
        stack.http.get(format!("{}/?lang=en", stack.url("publication"))).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("witnessed by"), "the page says the checkpoint is witnessed");
    assert!(page.contains("witness.hebei-bureau.example/1") && page.contains("witness.university.example/w"));

    // A problem page checks its own record in the reader's browser, cosignatures included.
    let (_, listed) = get(&stack, "publication", "/v1/problems?limit=1", None).await;
    let problem = listed["items"][0]["id"].as_str().expect("a public problem").to_string();
    let chromium = crate::browser::Chromium::launch(1280).await;
    let page = chromium.open(&format!("{}/problems/{problem}?lang=en", stack.url("publication"))).await;
    let done = "document.getElementById('record-check').dataset.result !== 'checking'";
    crate::browser::until(&page, done, "the record check").await;
    let said = crate::browser::text(&page, "#record-check [data-part=result]").await;
    assert!(
        said.starts_with("verified:")
            && said.contains("witnessed by witness.hebei-bureau.example/1, witness.university.example/w"),
        "{said}"
    );
    chromium.close().await;

    // A reader requiring both witnesses verifies the log; one requiring a witness the log does
    // not have finds the checkpoint not cosigned.
    let verify = |witness_keys: Vec<String>| {
        let url = stack.url("publication");
        async move {
            let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_skyledger"));
            command.args(["verify-feed", &url]);
            for k in witness_keys {
                command.args(["--witness", &k]);
            }
            let output = command.output().await.expect("run verify-feed");
            (output.status.code(), String::from_utf8_lossy(&output.stdout).to_string())
        }
    };
    let (code, out) = verify(vec![bureau.vkey.clone(), university.vkey.clone()]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("cosigned by witness.hebei-bureau.example/1, witness.university.example/w"), "{out}");
    let stranger = {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let mut encoded = vec![0x04];
        encoded.extend_from_slice(key.verifying_key().as_bytes());
        let name = "witness.stranger.example/1";
        format!("{name}+{}+{}", hex::encode(key_id(name, 0x04, &key.verifying_key())), B64.encode(encoded))
    };
    let (code, out) = verify(vec![stranger]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("no valid cosignature of the witness witness.stranger.example/1"), "{out}");

    // The log forks: a checkpoint of the size the witness cosigned, with another root, signed
    // with the log's own key. Asked with `old 0`, the witness first names the size it cosigned.
    let (status, kind, body) = bureau.add_checkpoint(format!("old 0\n\n{note}")).await;
    assert_eq!((status, kind.as_str()), (409, "text/x.tlog.size"));
    let cosigned: u64 = body.trim_end_matches('\n').parse().expect("a size");
    assert!(cosigned >= size, "the witness cosigned the log's tree");
    let other_root: [u8; 32] = Sha256::digest(root).into();
    let forked =
        log_signed(&log_key, &format!("{ORIGIN}\n{cosigned}\n{}\ntimestamp {}\n", B64.encode(other_root), now * 1000));
    let (status, kind, body) = bureau.add_checkpoint(format!("old {cosigned}\n\n{forked}")).await;
    assert_eq!((status, kind.as_str(), body.as_str()), (409, "text/x.tlog.size", format!("{cosigned}\n").as_str()));
    assert!(!body.contains('\u{2014}'), "no cosignature for a fork");
    assert!(std::fs::read_to_string(&bureau.log).unwrap().contains("THE LOG FORKED"), "the witness says so loudly");
    // A fork that grew: no proof from the tree cosigned holds.
    let grown = log_signed(
        &log_key,
        &format!("{ORIGIN}\n{}\n{}\ntimestamp {}\n", cosigned + 1, B64.encode(other_root), now * 1000),
    );
    let bogus_proof = B64.encode(Sha256::digest(b"not a proof"));
    let (status, _, body) = bureau.add_checkpoint(format!("old {cosigned}\n{bogus_proof}\n\n{grown}")).await;
    assert_eq!(status, 422, "{body}");
    // A checkpoint of the log's origin under another key: forbidden; of another log: unknown.
    let impostor = log_signed(
        &SigningKey::generate(&mut rand::rngs::OsRng),
        &format!("{ORIGIN}\n{}\n{}\n", cosigned + 1, B64.encode(other_root)),
    );
    let (status, _, body) = bureau.add_checkpoint(format!("old {cosigned}\n\n{impostor}")).await;
    assert_eq!(status, 403, "{body}");
    let elsewhere = log_signed(&log_key, &format!("other.example/log\n{}\n{}\n", cosigned + 1, B64.encode(other_root)));
    let (status, _, body) = bureau.add_checkpoint(format!("old {cosigned}\n\n{elsewhere}")).await;
    assert_eq!(status, 404, "{body}");
    for (status, body) in [(400, "not a request"), (400, "old 5\n\n")] {
        assert_eq!(bureau.add_checkpoint(body.into()).await.0, status, "{body:?}");
    }
    // What the witness cosigned was on disk before it answered: killed and started again, it
    // still knows the tree it cosigned, and still refuses the fork.
    bureau.restart();
    let (status, _, body) = bureau.add_checkpoint(format!("old {cosigned}\n\n{forked}")).await;
    assert_eq!((status, body.as_str()), (409, format!("{cosigned}\n").as_str()));

    // The witness's record is unmoved: the true log grows on and is cosigned again, even by a
    // log that forgot what its witnesses cosigned (it asks from 0, is told the size, asks again).
    let pool = stack.db.pool().await;
    sqlx::query("DELETE FROM publication.witness_state").execute(&pool).await.unwrap();
    pool.close().await;
    let reports: Vec<Value> = (0..5).map(|i| inspection(HANDAN, None, &format!("见证厂 B{i}"), &["dust"])).collect();
    batch(&stack, reports).await;
    let note = eventually("the grown checkpoint cosigned", WAIT, || note_of(size + 10)).await;
    assert!(log_checkpoint(&note, &log).0 >= size + 10);
}
