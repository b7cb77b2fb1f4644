//! The public log at campaign scale: a log of 300,000 entries (a campaign year's record), made
//! directly rather than through the lifecycle, is verified by `skyledger verify-feed` from its
//! entries and level-0 tiles against the signed checkpoint. Then a tampered tile, a rewritten
//! entry and a fork (one entry rewritten and everything after re-hashed and re-signed with the
//! log's own key: the same size, another root) are each caught and named; the fork passes a
//! newcomer's check, and is caught by the state kept from the first. One problem's record (its
//! entries across the log and their inclusion proofs) checks on its own. The size is
//! `SKYLEDGER_LOG_ENTRIES` (default 300,000).

use std::path::Path;

use publication::merkle;
use publication::public_log::{self, EntryContent};
use shared::testing::Stack;

use crate::made_log::{self, MadeLog, entry_text};

const ORIGIN: &str = "log-scale.skyledger.example/log";

async fn verify_feed(stack: &Stack, state: Option<&Path>) -> (i32, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_skyledger"));
    command.args(["verify-feed", &stack.url("publication")]);
    if let Some(state) = state {
        command.arg("--state").arg(state);
    }
    let output = command.output().await.expect("run skyledger verify-feed");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

async fn sql(pool: &sqlx::PgPool, query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>) {
    let done = query.execute(pool).await.expect("the statement runs");
    assert_eq!(done.rows_affected(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_campaign_years_log_verifies_from_its_tiles_and_each_tampering_is_named() {
    let size: u64 = std::env::var("SKYLEDGER_LOG_ENTRIES").ok().and_then(|s| s.parse().ok()).unwrap_or(300_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut stack, signer) =
        made_log::publication_with_key(Path::new(env!("CARGO_BIN_EXE_skyledger")), dir.path(), ORIGIN).await;
    let pool = stack.db.pool().await;

    // The log, made while the service (and its writer) is down.
    stack.kill("publication");
    let mut log = MadeLog::default();
    log.extend_to(&pool, &signer, size).await;
    log.checkpoint(&pool, &signer, 1_700_000_000_000).await;
    stack.restart("publication").await;

    // One problem's record, as its page checks it: its entries across the log and their
    // inclusion proofs.
    let problem = log.publish_problem(&pool, 1_234).await;
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_skyledger"));
    let output = command
        .args(["verify-feed", &stack.url("publication"), "--problem", &problem.to_string()])
        .output()
        .await
        .expect("run verify-feed --problem");
    let said = String::from_utf8_lossy(&output.stdout);
    let entries: Vec<String> =
        (1_234..size).step_by(crate::made_log::PROBLEMS as usize).map(|i| i.to_string()).collect();
    assert!(
        said.starts_with(&format!(
            "ok: problem {problem}: entries {} in the signed tree of size {size}",
            entries.join(", ")
        )),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let state = dir.path().join("verified.json");
    let (code, said) = verify_feed(&stack, Some(&state)).await;
    assert_eq!(code, 0, "{said}");
    assert!(said.contains(&format!("ok: {size} entries (0 withdrawn")), "{said}");
    assert!(said.contains(&format!("{} tiles", size.div_ceil(256))), "{said}");

    // A tile that holds another leaf than the entry it covers.
    let tampered = size * 2 / 5 + 7;
    let tile_hash = "UPDATE publication.log_nodes SET hash = $2 WHERE level = 0 AND idx = $1";
    sql(&pool, sqlx::query(tile_hash).bind(tampered as i64).bind(&[7u8; 32][..])).await;
    let (code, said) = verify_feed(&stack, None).await;
    assert_eq!(code, 1, "{said}");
    assert!(said.contains(&format!("entry {tampered} does not match: the tile tile/0/")), "{said}");
    sql(&pool, sqlx::query(tile_hash).bind(tampered as i64).bind(&log.leaves[tampered as usize][..])).await;

    // An entry rewritten in place.
    let rewritten = size * 3 / 4 + 3;
    let content = "UPDATE publication.log_entries SET content = $2 WHERE idx = $1";
    let other = entry_text(rewritten).replace("交办至地方政府", "未交办");
    sql(&pool, sqlx::query(content).bind(rewritten as i64).bind(&other)).await;
    let (code, said) = verify_feed(&stack, None).await;
    assert_eq!(code, 1, "{said}");
    assert!(said.contains(&format!("entry {rewritten} does not match: its content does not hash")), "{said}");
    sql(&pool, sqlx::query(content).bind(rewritten as i64).bind(entry_text(rewritten))).await;

    // A fork: the operator rewrites an entry with the log's own key — a new content hash, leaf,
    // entry signature, tile and a checkpoint of the same size over the new root.
    let forked = size - 1_001;
    let text = EntryContent {
        what: "未交办".into(),
        ..serde_json::from_str::<EntryContent>(&entry_text(forked)).expect("an entry")
    }
    .to_text();
    let content_hash = public_log::content_hash(&text);
    let leaf = public_log::leaf_of(&content_hash);
    sql(
        &pool,
        sqlx::query(
            "UPDATE publication.log_entries SET content = $2, content_hash = $3, leaf_hash = $4, signature = $5
             WHERE idx = $1",
        )
        .bind(forked as i64)
        .bind(&text)
        .bind(merkle::to_hex(&content_hash))
        .bind(merkle::to_hex(&leaf))
        .bind(signer.sign_entry(forked as i64, &leaf)),
    )
    .await;
    sql(&pool, sqlx::query(tile_hash).bind(forked as i64).bind(&leaf[..])).await;
    let mut leaves = log.leaves.clone();
    leaves[forked as usize] = leaf;
    let fork = signer.checkpoint(size as i64, &merkle::root(&leaves), 1_700_000_100_000);
    assert_ne!(fork.root_hash, merkle::to_hex(&log.frontier.root()), "another root for the same size");
    sql(
        &pool,
        sqlx::query(
            "UPDATE publication.checkpoints SET root_hash = $2, body = $3, signature = $4 WHERE tree_size = $1",
        )
        .bind(size as i64)
        .bind(&fork.root_hash)
        .bind(&fork.body)
        .bind(&fork.signature),
    )
    .await;
    let (code, said) = verify_feed(&stack, None).await;
    assert_eq!(code, 0, "a newcomer sees a consistent log: {said}");
    let (code, said) = verify_feed(&stack, Some(&state)).await;
    assert_eq!(code, 1, "{said}");
    assert!(said.contains(&format!("entry {forked} does not match: it changed since the tree of {size}")), "{said}");
    pool.close().await;
}
