//! The log writer against a database of its own (the machine's Postgres, as the system tests
//! use): what it appends, in which order, with which tree, checkpoints and proofs; embargoes and
//! approval; a problem being changed meanwhile; a log kept before frontiers.

use std::sync::Arc;
use std::time::Duration;

use publication::frontier::{self, Nodes};
use publication::merkle::{self, Hash};
use publication::public_log::{self, EntryContent, LogSigner, LogVerifier};
use publication::redaction::DisclosurePolicy;
use publication::store::{self, HistoryLine};
use publication::writer::{Pacing, Publisher};
use shared::clock::Clock;
use shared::outbox::Outbox;
use shared::testing::TestDatabase;
use sqlx::{PgPool, Postgres, Transaction};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

const ORIGIN: &str = "test.example/log";

async fn database() -> (TestDatabase, PgPool) {
    let db = TestDatabase::create().await;
    let pool = db.pool().await;
    shared::db::migrate(&pool, "publication", &publication::MIGRATIONS).await.expect("migrate");
    (db, pool)
}

fn publisher(pool: &PgPool, signer: &Arc<LogSigner>, policy: DisclosurePolicy, clock: Clock, chunk: i64) -> Publisher {
    let pacing = Pacing { poll: Duration::from_millis(50), chunk, checkpoint_interval: Duration::ZERO };
    Publisher::new(pool.clone(), Outbox::new("test", "publication"), signer.clone(), policy, clock, pacing)
}

/// A problem as the events leave it: reported (when `reported`), handed over at `handed_over_at`.
async fn problem(
    tx: &mut Transaction<'_, Postgres>,
    city: &str,
    reported: bool,
    handed_over_at: Option<OffsetDateTime>,
) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO publication.problems (problem_id, category, city_code, site_name, handed_over_at)
         VALUES ($1, $2, $3, '某厂', $4)",
    )
    .bind(id)
    .bind(reported.then_some("dust"))
    .bind(city)
    .bind(handed_over_at)
    .execute(&mut **tx)
    .await
    .unwrap();
    id
}

/// A history line of the problem at `at`, and its mark, as a consumer leaves them.
async fn line(tx: &mut Transaction<'_, Postgres>, problem_id: Uuid, at: OffsetDateTime, status: &str) {
    let what = format!("{status} at {at}");
    let h = HistoryLine { problem_id, source_id: Uuid::now_v7(), at, kind: "step", status, what };
    store::add_history(tx, &[h]).await.unwrap();
    store::mark_pending(tx, &[problem_id]).await.unwrap();
}

#[derive(sqlx::FromRow)]
struct Entry {
    idx: i64,
    problem_id: Uuid,
    content: String,
    content_hash: String,
    leaf_hash: String,
    signature: String,
}

async fn entries(pool: &PgPool) -> Vec<Entry> {
    sqlx::query_as(
        "SELECT idx, problem_id, content, content_hash, leaf_hash, signature FROM publication.log_entries ORDER BY idx",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn scalar(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Everything a reader can check: entries consecutive, each hashing and signed as served; every
/// checkpoint the root of its prefix; proofs from stored nodes the reference proofs; every
/// logged history line one entry; one announcement per entry. Answers the leaves.
async fn check_log(pool: &PgPool, signer: &LogSigner) -> Vec<Hash> {
    let verifier = LogVerifier::from_hex(&signer.public_key_hex(), ORIGIN).unwrap();
    let entries = entries(pool).await;
    let mut leaves = vec![];
    for (position, e) in entries.iter().enumerate() {
        assert_eq!(e.idx, position as i64, "entries are consecutive");
        let content: EntryContent = serde_json::from_str(&e.content).unwrap();
        assert_eq!((content.index, content.problem_id), (e.idx, e.problem_id));
        let content_hash = public_log::content_hash(&e.content);
        assert_eq!(merkle::to_hex(&content_hash), e.content_hash);
        let leaf = public_log::leaf_of(&content_hash);
        assert_eq!(merkle::to_hex(&leaf), e.leaf_hash);
        assert!(verifier.entry_signed(e.idx, &leaf, &e.signature), "entry {} signed", e.idx);
        leaves.push(leaf);
    }
    // The frontier stored is that of every leaf.
    let mut conn = pool.acquire().await.unwrap();
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    let frontier = store::lock_log(&mut tx).await.unwrap().expect("built");
    tx.rollback().await.unwrap();
    assert_eq!(frontier.size(), leaves.len() as u64);
    assert_eq!(frontier.root(), merkle::root(&leaves));
    // Each checkpoint signs the root of the entries it covers.
    let checkpoints = store::checkpoints(&mut conn, 0, 10_000, ORIGIN).await.unwrap();
    for c in &checkpoints {
        let root = verifier.checkpoint(c).expect("signed");
        assert_eq!(root, merkle::root(&leaves[..c.tree_size as usize]), "checkpoint of {}", c.tree_size);
    }
    if let Some(last) = checkpoints.last() {
        assert_eq!(last.tree_size, leaves.len() as i64, "the latest checkpoint covers the log");
    }
    // Proofs from the stored nodes, for a spread of sizes and indexes.
    let n = leaves.len() as u64;
    for size in [1, n / 3, n / 2 + 1, n - 1, n].into_iter().filter(|s| (1..=n).contains(s)) {
        for index in [0, size / 2, size - 1] {
            let ids = frontier::needed(|t| {
                t.inclusion_proof(index, size);
                t.consistency_proof(index + 1, size);
                t.root(size);
            });
            let stored = store::nodes(&mut conn, &ids).await.unwrap();
            let mut lookup = |id| stored.get(&id).copied();
            let mut t = Nodes::new(&mut lookup);
            let tree = &leaves[..size as usize];
            assert_eq!(t.root(size), Some(merkle::root(tree)));
            assert_eq!(t.inclusion_proof(index, size), merkle::inclusion_proof(index as usize, tree));
            assert_eq!(t.consistency_proof(index + 1, size), merkle::consistency_proof(index as usize + 1, tree));
        }
    }
    let nodes = scalar(pool, "SELECT count(*) FROM publication.log_nodes").await;
    assert_eq!(nodes as usize, (0..64).map(|level| leaves.len() >> level).sum::<usize>(), "every perfect subtree");
    let logged = scalar(pool, "SELECT count(*) FROM publication.history WHERE entry_seq IS NOT NULL").await;
    assert_eq!(logged as usize, leaves.len(), "one entry per logged line");
    let announced = scalar(pool, "SELECT count(*) FROM publication.outbox").await;
    assert_eq!(announced as usize, leaves.len(), "one entry.published per entry");
    leaves
}

#[tokio::test(flavor = "multi_thread")]
async fn the_writer_logs_public_history_in_order_with_the_tree_checkpoints_and_proofs() {
    let (_db, pool) = database().await;
    let signer = Arc::new(LogSigner::generate(ORIGIN));
    let writer = publisher(&pool, &signer, DisclosurePolicy::default(), Clock::real(), 7);
    let base = datetime!(2019-05-09 10:00 +8);

    // Forty problems with one to four lines each, written out of order; one not handed over.
    let mut tx = pool.begin().await.unwrap();
    let mut public = vec![];
    for i in 0..40i64 {
        let id = problem(&mut tx, if i % 2 == 0 { "130500" } else { "130400" }, true, Some(base)).await;
        for step in (0..=(i % 4)).rev() {
            line(&mut tx, id, base + time::Duration::hours(step), &format!("step{step}")).await;
        }
        public.push(id);
    }
    let hidden = problem(&mut tx, "130500", true, None).await;
    line(&mut tx, hidden, base, "reported").await;
    tx.commit().await.unwrap();

    writer.drain().await.unwrap();
    let leaves = check_log(&pool, &signer).await;
    assert_eq!(leaves.len(), (0..40).map(|i| 1 + i % 4).sum::<i64>() as usize);
    // A problem's lines are consecutive, in the order they happened.
    let logged = entries(&pool).await;
    for id in &public {
        let mine: Vec<&Entry> = logged.iter().filter(|e| e.problem_id == *id).collect();
        let steps: Vec<String> =
            mine.iter().map(|e| serde_json::from_str::<EntryContent>(&e.content).unwrap().status).collect();
        let mut sorted = steps.clone();
        sorted.sort();
        assert_eq!(steps, sorted, "in the order things happened");
        assert!(mine.windows(2).all(|w| w[1].idx == w[0].idx + 1), "consecutive");
    }
    assert!(logged.iter().all(|e| e.problem_id != hidden), "not handed over, not public");
    let status: String = sqlx::query_scalar("SELECT status FROM publication.problems WHERE problem_id = $1")
        .bind(hidden)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "reported", "its status is decided all the same");
    assert_eq!(scalar(&pool, "SELECT count(*) FROM publication.pending").await, 0, "nothing waits");
    let subjects: Vec<String> = sqlx::query_scalar("SELECT nats_subject FROM publication.outbox ORDER BY position")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(subjects.iter().all(|s| s.starts_with("test.publication.entry.published.130")), "{subjects:?}");

    // More lines in several rounds, some for problems already logged: appended after, and the
    // tree, checkpoints and proofs still hold at every size.
    for round in 1..=4 {
        let mut tx = pool.begin().await.unwrap();
        for id in public.iter().skip(round).step_by(3) {
            line(&mut tx, *id, base + time::Duration::days(round as i64), "later").await;
        }
        let fresh = problem(&mut tx, "140100", true, Some(base)).await;
        line(&mut tx, fresh, base, "reported").await;
        tx.commit().await.unwrap();
        writer.drain().await.unwrap();
        check_log(&pool, &signer).await;
    }
    // The hidden problem is handed over: its history follows.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("UPDATE publication.problems SET handed_over_at = $2 WHERE problem_id = $1")
        .bind(hidden)
        .bind(base)
        .execute(&mut *tx)
        .await
        .unwrap();
    line(&mut tx, hidden, base + time::Duration::hours(1), "assigned").await;
    tx.commit().await.unwrap();
    let before = entries(&pool).await.len();
    writer.drain().await.unwrap();
    let after = entries(&pool).await;
    let statuses: Vec<String> =
        after[before..].iter().map(|e| serde_json::from_str::<EntryContent>(&e.content).unwrap().status).collect();
    assert_eq!(statuses, ["reported", "assigned"]);
    check_log(&pool, &signer).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_embargo_waits_for_its_time_and_approval_for_the_office_without_rescans() {
    let (_db, pool) = database().await;
    let signer = Arc::new(LogSigner::generate(ORIGIN));
    let now = OffsetDateTime::now_utc();
    let embargo = DisclosurePolicy { embargo_hours: 24, require_approval: false };
    let writer = publisher(&pool, &signer, embargo, Clock::real(), 100);

    let mut tx = pool.begin().await.unwrap();
    let id = problem(&mut tx, "130500", true, Some(now)).await;
    line(&mut tx, id, now, "assigned").await;
    tx.commit().await.unwrap();
    writer.drain().await.unwrap();
    assert_eq!(entries(&pool).await.len(), 0, "under embargo");
    let due_at: OffsetDateTime = sqlx::query_scalar("SELECT due_at FROM publication.pending WHERE problem_id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(due_at.unix_timestamp(), (now + time::Duration::hours(24)).unix_timestamp(), "due when it ends");
    // Until then a pass finds nothing to do and takes nothing.
    assert_eq!(writer.pass(None).await.unwrap().taken, 0);

    // A day later (the simulated clock moved on), it is public.
    let later = publisher(&pool, &signer, embargo, Clock::offset_by(time::Duration::hours(25)), 100);
    later.drain().await.unwrap();
    assert_eq!(entries(&pool).await.len(), 1);
    check_log(&pool, &signer).await;

    // Where the office approves: not public, and not looked at again until approved.
    let approval = DisclosurePolicy { embargo_hours: 0, require_approval: true };
    let writer = publisher(&pool, &signer, approval, Clock::real(), 100);
    let mut tx = pool.begin().await.unwrap();
    let waiting = problem(&mut tx, "130500", true, Some(now)).await;
    line(&mut tx, waiting, now, "assigned").await;
    tx.commit().await.unwrap();
    writer.drain().await.unwrap();
    assert_eq!(entries(&pool).await.len(), 1);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM publication.pending").await, 0, "no mark left to rescan");
    let mut conn = pool.acquire().await.unwrap();
    assert!(store::approve(&mut conn, waiting, now).await.unwrap());
    store::mark_pending(&mut conn, &[waiting]).await.unwrap();
    writer.publish_now(waiting).await.unwrap();
    assert_eq!(entries(&pool).await.len(), 2, "published as the act answers");
    // At start, whatever is not public yet is looked at again (the policy may have changed).
    let mut tx = pool.begin().await.unwrap();
    let unapproved = problem(&mut tx, "130500", true, Some(now)).await;
    line(&mut tx, unapproved, now, "assigned").await;
    tx.commit().await.unwrap();
    writer.drain().await.unwrap();
    assert_eq!(store::mark_unpublished_pending(&mut conn).await.unwrap(), 1);
    let open = publisher(&pool, &signer, DisclosurePolicy::default(), Clock::real(), 100);
    open.drain().await.unwrap();
    assert_eq!(entries(&pool).await.len(), 3);
    check_log(&pool, &signer).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_problem_being_changed_is_left_for_later_and_the_writer_never_waits_for_it() {
    let (_db, pool) = database().await;
    let signer = Arc::new(LogSigner::generate(ORIGIN));
    let writer = publisher(&pool, &signer, DisclosurePolicy::default(), Clock::real(), 100);
    let base = datetime!(2019-05-09 10:00 +8);
    let mut tx = pool.begin().await.unwrap();
    let (busy, quiet) =
        (problem(&mut tx, "130500", true, Some(base)).await, problem(&mut tx, "130400", true, Some(base)).await);
    line(&mut tx, busy, base, "assigned").await;
    line(&mut tx, quiet, base, "assigned").await;
    tx.commit().await.unwrap();

    // A consumer's transaction is changing `busy` and has not committed.
    let mut consumer = pool.begin().await.unwrap();
    sqlx::query("UPDATE publication.problems SET acknowledged_at = $2 WHERE problem_id = $1")
        .bind(busy)
        .bind(base)
        .execute(&mut *consumer)
        .await
        .unwrap();
    line(&mut consumer, busy, base + time::Duration::hours(1), "acknowledged").await;
    let pass = tokio::time::timeout(Duration::from_secs(10), writer.pass(None)).await.expect("no wait").unwrap();
    assert_eq!((pass.taken, pass.decided, pass.appended), (1, 1, 1), "the quiet one only: {pass:?}");
    consumer.commit().await.unwrap();
    writer.drain().await.unwrap();
    let statuses: Vec<(Uuid, String)> = entries(&pool)
        .await
        .iter()
        .map(|e| (e.problem_id, serde_json::from_str::<EntryContent>(&e.content).unwrap().status))
        .collect();
    assert_eq!(
        statuses,
        [(quiet, "assigned".to_string()), (busy, "assigned".to_string()), (busy, "acknowledged".to_string())]
    );
    let status: String = sqlx::query_scalar("SELECT status FROM publication.problems WHERE problem_id = $1")
        .bind(busy)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "acknowledged");
    check_log(&pool, &signer).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_kept_before_frontiers_is_built_once_and_an_entry_written_past_the_writer_stops_it() {
    let (_db, pool) = database().await;
    let signer = Arc::new(LogSigner::generate(ORIGIN));
    let writer = publisher(&pool, &signer, DisclosurePolicy::default(), Clock::real(), 100);
    let base = datetime!(2019-05-09 10:00 +8);
    let mut tx = pool.begin().await.unwrap();
    for _ in 0..13 {
        let id = problem(&mut tx, "130500", true, Some(base)).await;
        line(&mut tx, id, base, "assigned").await;
    }
    tx.commit().await.unwrap();
    writer.drain().await.unwrap();
    let leaves = check_log(&pool, &signer).await;

    // As the migration leaves a log written before: no frontier, no nodes.
    sqlx::query("UPDATE publication.log_state SET size = NULL, frontier = '{}'").execute(&pool).await.unwrap();
    sqlx::query("DELETE FROM publication.log_nodes").execute(&pool).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    let id = problem(&mut tx, "130500", true, Some(base)).await;
    line(&mut tx, id, base, "assigned").await;
    tx.commit().await.unwrap();
    writer.drain().await.unwrap();
    let grown = check_log(&pool, &signer).await;
    assert_eq!(grown.len(), leaves.len() + 1);
    assert_eq!(grown[..leaves.len()], leaves[..]);

    // An entry appended by hand, past the writer: it stops rather than sign another tree.
    sqlx::query(
        "INSERT INTO publication.log_entries (idx, kind, content, content_hash, leaf_hash, signature)
         SELECT max(idx) + 1, 'step', '{}', 'x', 'x', 'x' FROM publication.log_entries",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut tx = pool.begin().await.unwrap();
    let id = problem(&mut tx, "130500", true, Some(base)).await;
    line(&mut tx, id, base, "assigned").await;
    tx.commit().await.unwrap();
    let error = writer.drain().await.expect_err("the writer stops");
    assert!(error.to_string().contains("its frontier 14"), "{error}");
}
