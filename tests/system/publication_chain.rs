//! The public log is tamper-evident: `skyledger verify-feed` checks it from outside, a lawful
//! takedown leaves a tombstone that still verifies, and an entry changed by hand in the database
//! is named.

use serde_json::{Value, json};
use shared::testing::{Stack, WebhookReceiver, eventually};

use crate::publication::{acknowledge, rectify, report, verdict, wait_status};
use crate::support::*;

/// Runs `skyledger verify-feed` against the stack's publication service.
async fn verify_feed(stack: &Stack) -> (i32, String) {
    verify_feed_with(stack, &[]).await
}

async fn verify_feed_with(stack: &Stack, more: &[&str]) -> (i32, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_skyledger"))
        .args(["verify-feed", &stack.url("publication")])
        .args(more)
        .output()
        .await
        .expect("run skyledger verify-feed");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

/// Waits until a signed checkpoint covers the whole log, and answers its size.
async fn checkpointed(stack: &Stack) -> i64 {
    eventually("a checkpoint covering the whole log", WAIT, || async {
        let (_, chain) = get(stack, "publication", "/v1/chain", None).await;
        let size = chain["size"].as_i64()?;
        (size > 0 && chain["checkpoint"]["tree_size"] == size).then_some(size)
    })
    .await
}

async fn sql(stack: &Stack, statement: &'static str, index: i64) {
    let pool = stack.db.pool().await;
    let done = sqlx::query(statement).bind(index).execute(&pool).await.expect(statement);
    assert_eq!(done.rows_affected(), 1, "{statement}");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_feed_checks_the_log_and_names_the_entry_changed_by_hand() {
    let stack = start().await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let first = report(&stack, XINGTAI, Some("130502"), "甲厂", &["coal_boiler"]).await.remove(0);
    let second = report(&stack, HANDAN, None, "乙厂", &["vocs"]).await.remove(0);
    acknowledge(&stack, &first, XINGTAI).await;
    rectify(&stack, &first, XINGTAI).await;
    verdict(&stack, &first, "rectified", "ok").await;
    wait_status(&stack, &first, "closed").await;
    wait_status(&stack, &second, "assigned").await;
    let size = checkpointed(&stack).await;
    assert!(size >= 7, "five steps of one problem and two of the other: {size}");

    // It remembers the tree it verified.
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("verified.json");
    let state = state.to_str().unwrap();
    let (code, out) = verify_feed_with(&stack, &["--state", state]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok:") && out.contains("1 tiles"), "{out}");

    // Proofs are public: an entry's audit path and the consistency of two checkpoints.
    let (_, proof) =
        get(&stack, "publication", &format!("/v1/chain/proof/inclusion?index=0&tree_size={size}"), None).await;
    assert!(proof["audit_path"].as_array().is_some_and(|p| !p.is_empty()), "{proof}");
    let (_, consistency) =
        get(&stack, "publication", &format!("/v1/chain/proof/consistency?first=1&second={size}"), None).await;
    assert!(consistency["proof"].is_array(), "{consistency}");
    let (status, _) = get(&stack, "publication", &format!("/v1/chain/proof/inclusion?index={size}"), None).await;
    assert_eq!(status, 422);

    // Which entry says the first problem was handed over.
    let (_, entries) = get(&stack, "publication", "/v1/chain/entries", None).await;
    let entries = entries["entries"].as_array().unwrap().clone();
    let is = |e: &Value, problem: &str, status: &str| {
        e["problem_id"] == problem
            && e["content"].as_str().is_some_and(|c| c.contains(&format!("\"status\":\"{status}\"")))
    };
    let assigned =
        entries.iter().find(|e| is(e, &first, "assigned")).expect("the hand-over entry")["index"].as_i64().unwrap();
    let reported =
        entries.iter().find(|e| is(e, &second, "reported")).expect("a report entry")["index"].as_i64().unwrap();

    // A lawful takedown: the content goes, the hash stays, the log still verifies, and the
    // takedown itself is a new public entry.
    let (status, answer) = post(
        &stack,
        "publication",
        &format!("/v1/admin/entries/{reported}/takedown"),
        &stack.admin(),
        json!({ "code": "personal_data", "reason": "依法删除" }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (_, public) = get(&stack, "publication", &format!("/v1/problems/{second}"), None).await;
    let history = public["history"].as_array().unwrap();
    assert!(history.iter().any(|h| h["withdrawn"] == true), "{public}");
    assert_eq!(history.last().unwrap()["status"], "withdrawn");
    let grown = checkpointed(&stack).await;
    assert_eq!(grown, size + 1);
    let (code, out) = verify_feed_with(&stack, &["--state", state]).await;
    assert_eq!(code, 0, "a tombstone is no hole: {out}");
    assert!(out.contains("1 withdrawn"), "{out}");
    assert!(out.contains(&format!("grew from the tree of {size} verified before")), "{out}");

    // A tile that says another leaf than its entry is named by the entry's index.
    sql(&stack, "UPDATE publication.log_nodes SET hash = sha256(hash) WHERE level = 0 AND idx = $1", 1).await;
    let (code, out) = verify_feed(&stack).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("entry 1 does not match: the tile tile/0/000.p/"), "{out}");
    sql(
        &stack,
        "UPDATE publication.log_nodes SET hash = (SELECT decode(leaf_hash, 'hex') FROM publication.log_entries WHERE idx = $1)
         WHERE level = 0 AND idx = $1",
        1,
    )
    .await;
    let (code, out) = verify_feed_with(&stack, &["--state", state]).await;
    assert_eq!(code, 0, "{out}");

    // Someone with database access changes what an entry says.
    sql(
        &stack,
        "UPDATE publication.log_entries SET content = replace(content, '交办', '撤销') WHERE idx = $1",
        assigned,
    )
    .await;
    let (code, out) = verify_feed(&stack).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("entry {assigned} does not match")), "{out}");

    // …and, knowing the scheme, recomputes its hashes too: the entry's signature still names it.
    sql(
        &stack,
        "UPDATE publication.log_entries
         SET content_hash = encode(sha256(convert_to(content, 'UTF8')), 'hex'),
             leaf_hash = encode(sha256('\\x00'::bytea || sha256(convert_to(content, 'UTF8'))), 'hex')
         WHERE idx = $1",
        assigned,
    )
    .await;
    let (code, out) = verify_feed(&stack).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("entry {assigned} does not match")) && out.contains("signature"), "{out}");
}
