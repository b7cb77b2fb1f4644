//! Backup and restore as `docs/operations.md` tells it: with the services stopped, each
//! service's schema is dumped on its own (`pg_dump -n <schema> -Fc`) and the JetStream store
//! directory is copied with nats-server stopped; then everything is wiped, restored, and the
//! services come back with the same counts in every schema, the same streams and consumer
//! positions, and carry on without doing anything twice.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use shared::messaging::{consumer_name, stream_name};
use shared::testing::{PostgresServer, SERVICES, Stack, StackOptions, WebhookReceiver, eventually};
use sqlx::AssertSqlSafe;

use crate::support::*;

const TABLES: &[&str] = &[
    "intake.inspections",
    "intake.problems",
    "intake.outbox",
    "assignment.ledger",
    "assignment.handovers",
    "assignment.inbox",
    "assignment.outbox",
    "verification.problems",
    "verification.inbox",
    "notification.notices",
    "notification.deliveries",
    "notification.inbox",
    "publication.problems",
    "publication.history",
    "publication.log_entries",
    "publication.inbox",
];

/// Rows per table, messages per stream, and each durable consumer's acknowledged position.
async fn snapshot(stack: &Stack) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    let pool = stack.db.pool().await;
    for table in TABLES {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&pool)
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}"));
        counts.insert(table.to_string(), n as u64);
    }
    pool.close().await;
    let client = async_nats::connect(stack.nats.url()).await.expect("NATS");
    let js = async_nats::jetstream::new(client);
    for producer in SERVICES {
        let Ok(mut stream) = js.get_stream(stream_name(&stack.namespace, producer)).await else { continue };
        let state = stream.info().await.expect("stream info").state.clone();
        counts.insert(format!("stream {producer} messages"), state.messages);
        for consumer in SERVICES {
            let name = consumer_name(&stack.namespace, consumer);
            if let Ok(info) = stream.consumer_info(&name).await {
                counts.insert(format!("consumer {consumer} of {producer}: acked"), info.ack_floor.stream_sequence);
            }
        }
    }
    counts
}

/// Stops the five services gracefully (SIGTERM): they finish what they hold and relay what is
/// committed, as a cold backup needs.
pub(crate) fn stop_services(stack: &mut Stack) {
    for service in SERVICES {
        stack.services.get_mut(service).unwrap().terminate();
    }
}

pub(crate) fn run(program: &Path, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?}: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

async fn settled(stack: &Stack, receiver: &WebhookReceiver, problems: i64) {
    eventually("every problem public and notified", WAIT, || async {
        let public = count(stack, "SELECT count(*) FROM publication.problems WHERE public").await;
        let notified = count(stack, "SELECT count(*) FROM notification.problems").await;
        let delivered =
            count(stack, "SELECT count(*) FROM notification.deliveries WHERE status <> 'delivered'").await == 0;
        // …and everything written sent on: no outbox holds an unsent event, the log writer has
        // nothing pending (its announcements go out through publication's outbox after it).
        let unsent = count(
            stack,
            "SELECT (SELECT count(*) FROM publication.pending)
                  + (SELECT count(*) FROM intake.outbox WHERE sent_at IS NULL)
                  + (SELECT count(*) FROM assignment.outbox WHERE sent_at IS NULL)
                  + (SELECT count(*) FROM verification.outbox WHERE sent_at IS NULL)
                  + (SELECT count(*) FROM notification.outbox WHERE sent_at IS NULL)
                  + (SELECT count(*) FROM publication.outbox WHERE sent_at IS NULL)",
        )
        .await;
        (public == problems && notified == problems && delivered && unsent == 0 && !receiver.received().is_empty())
            .then_some(())
    })
    .await;
}

/// The counts once they hold still (two readings a second apart agree): consumers acknowledge
/// what the last relays sent a moment after it is sent.
async fn steady_snapshot(stack: &Stack) -> BTreeMap<String, u64> {
    let deadline = std::time::Instant::now() + WAIT;
    let mut last = snapshot(stack).await;
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let now = snapshot(stack).await;
        if now == last {
            return now;
        }
        assert!(std::time::Instant::now() < deadline, "the counts never held still: {now:?}");
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_schema_and_stream_is_backed_up_wiped_and_restored_with_the_same_counts() {
    let postgres = tokio::task::block_in_place(PostgresServer::start);
    let options = StackOptions { database_admin_url: Some(postgres.admin_url()), ..Default::default() };
    let mut stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), options).await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let reports: Vec<_> = (0..12)
        .map(|i| inspection(if i % 2 == 0 { XINGTAI } else { HANDAN }, None, &format!("备份厂 {i}"), &["vocs"]))
        .collect();
    batch(&stack, reports).await;
    settled(&stack, &receiver, 12).await;
    let before = steady_snapshot(&stack).await;
    let notices_before = receiver.received().len();

    // Back up, cold: the services stop, each schema is dumped on its own, the JetStream store is
    // copied with the server stopped.
    stop_services(&mut stack);
    let backup = tempfile::tempdir().unwrap();
    let bin = postgres.bin_dir().to_path_buf();
    let port = postgres.port.to_string();
    for schema in SERVICES {
        let file = backup.path().join(format!("{schema}.dump"));
        run(
            &bin.join("pg_dump"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-n",
                schema,
                "-Fc",
                "-f",
                file.to_str().unwrap(),
                &stack.db.name,
            ],
        );
    }
    stack.nats.stop();
    copy_dir(&stack.nats.store_dir(), &backup.path().join("jetstream"));

    // Wipe both.
    let pool = stack.db.pool().await;
    for schema in SERVICES {
        sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&pool).await.unwrap();
    }
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = ANY($1)")
        .bind(SERVICES.map(String::from).to_vec())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "the schemas are gone");
    pool.close().await;
    std::fs::remove_dir_all(stack.nats.store_dir()).unwrap();

    // Restore both, and start everything again.
    for schema in SERVICES {
        let file = backup.path().join(format!("{schema}.dump"));
        run(
            &bin.join("pg_restore"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                &stack.db.name,
                "--exit-on-error",
                file.to_str().unwrap(),
            ],
        );
    }
    copy_dir(&backup.path().join("jetstream"), &stack.nats.store_dir());
    tokio::task::block_in_place(|| stack.nats.start_again());
    for service in SERVICES {
        stack.restart(service).await;
    }
    let after = snapshot(&stack).await;
    println!("backup and restore: {after:?}");
    assert_eq!(before, after, "the same counts after the restore");

    // They carry on from where they were: a new report goes all the way, and nothing that was
    // done before the backup is done again.
    batch(&stack, vec![inspection(XINGTAI, None, "恢复后的厂", &["dust"])]).await;
    settled(&stack, &receiver, 13).await;
    let later = snapshot(&stack).await;
    for table in ["intake.problems", "assignment.ledger", "verification.problems", "publication.problems"] {
        assert_eq!(later[table], before[table] + 1, "{table}");
    }
    assert_eq!(receiver.received().len(), notices_before + 1, "one new notice, no old one again");
}
