//! A database per service. The five services run with five `database_url`s, five databases on a
//! Postgres cluster of the test's own: each database holds its own service's schema and no
//! other, so no service can even see another's tables. The lifecycle runs through them (report,
//! handover, acknowledgement, rectification, verdict, public record, notice), and the backup
//! procedure of `docs/operations.md` — each service's schema dumped from its own database, the
//! JetStream store copied — restores all five after they are wiped, and the services carry on.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;
use shared::auth::Role;
use shared::testing::{PostgresServer, SERVICES, Stack, StackOptions, WebhookReceiver, eventually};
use sqlx::AssertSqlSafe;

use crate::backup::{copy_dir, run, stop_services};
use crate::support::*;

/// A count in one service's own database.
async fn count_in(stack: &Stack, service: &str, sql: &str) -> i64 {
    let pool = stack.database_of(service).pool().await;
    let n = sqlx::query_scalar(AssertSqlSafe(sql.to_string()))
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("{service}: {sql}: {e}"));
    pool.close().await;
    n
}

/// What each service's database holds of the lifecycle.
async fn counts(stack: &Stack) -> BTreeMap<&'static str, i64> {
    let mut counts = BTreeMap::new();
    for (name, service, sql) in [
        ("intake problems", "intake", "SELECT count(*) FROM intake.problems"),
        ("ledger entries", "assignment", "SELECT count(*) FROM assignment.ledger"),
        ("ledger entries closed", "assignment", "SELECT count(*) FROM assignment.ledger WHERE status = 'closed'"),
        ("verification problems", "verification", "SELECT count(*) FROM verification.problems"),
        ("public problems", "publication", "SELECT count(*) FROM publication.problems WHERE public"),
        (
            "public problems closed",
            "publication",
            "SELECT count(*) FROM publication.problems WHERE public AND status = 'closed'",
        ),
        ("notified problems", "notification", "SELECT count(*) FROM notification.problems"),
        (
            "undelivered notices",
            "notification",
            "SELECT count(*) FROM notification.deliveries WHERE status <> 'delivered'",
        ),
        ("intake outbox unsent", "intake", "SELECT count(*) FROM intake.outbox WHERE sent_at IS NULL"),
    ] {
        counts.insert(name, count_in(stack, service, sql).await);
    }
    counts
}

async fn settled(stack: &Stack, problems: i64, closed: i64) -> BTreeMap<&'static str, i64> {
    eventually("every problem in every service's database", WAIT, || async {
        let c = counts(stack).await;
        let done =
            ["intake problems", "ledger entries", "verification problems", "public problems", "notified problems"]
                .iter()
                .all(|k| c[k] == problems)
                && c["ledger entries closed"] == closed
                && c["public problems closed"] == closed
                && c["undelivered notices"] == 0
                && c["intake outbox unsent"] == 0;
        done.then_some(c)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lifecycle_runs_with_each_service_on_a_database_of_its_own_and_is_backed_up_and_restored() {
    let postgres = tokio::task::block_in_place(PostgresServer::start);
    let options = StackOptions {
        database_admin_url: Some(postgres.admin_url()),
        database_per_service: true,
        ..Default::default()
    };
    let mut stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), options).await;

    // Each database holds its own service's schema and no other.
    for service in SERVICES {
        let pool = stack.database_of(service).pool().await;
        let schemas: Vec<String> = sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname = ANY($1)")
            .bind(SERVICES.map(String::from).to_vec())
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(schemas, [service], "{service}'s database holds only its schema");
        pool.close().await;
    }
    let databases: std::collections::HashSet<String> =
        SERVICES.iter().map(|s| stack.database_of(s).name.clone()).collect();
    assert_eq!(databases.len(), 5, "five databases");

    // The lifecycle: six problems reported, one of them acknowledged, rectified and closed.
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let reports: Vec<_> = (0..6)
        .map(|i| inspection(if i % 2 == 0 { XINGTAI } else { HANDAN }, None, &format!("分库厂 {i}"), &["dust"]))
        .collect();
    let problem = problem_ids(&reports[0])[0].clone();
    batch(&stack, reports).await;
    let notice = handover_notice(&receiver, &problem).await;
    let handover_no = notice.json()["handover_no"].as_str().expect("handover number").to_string();
    let city = stack.token(Role::LocalGov, None, Some(XINGTAI));
    let (status, ack) =
        post(&stack, "assignment", &format!("/v1/handovers/{handover_no}/acknowledge"), &city, json!({})).await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(rectify_and_verify(&stack, &problem, XINGTAI).await["status"], "closed");
    let before = settled(&stack, 6, 1).await;
    let (status, public) = get(&stack, "publication", &format!("/v1/problems/{problem}"), None).await;
    assert_eq!((status.as_u16(), public["status"].as_str()), (200, Some("closed")), "{public}");
    let notices_before = receiver.received().len();

    // Backup, cold, as docs/operations.md says: each schema dumped from its service's database.
    stop_services(&mut stack);
    let backup = tempfile::tempdir().unwrap();
    let bin = postgres.bin_dir().to_path_buf();
    let port = postgres.port.to_string();
    let connection = ["-h", "127.0.0.1", "-p", port.as_str(), "-U", "postgres"];
    for service in SERVICES {
        let file = backup.path().join(format!("{service}.dump"));
        let database = stack.database_of(service).name.clone();
        let mut args = connection.to_vec();
        args.extend(["-n", service, "-Fc", "-f", file.to_str().unwrap(), &database]);
        run(&bin.join("pg_dump"), &args);
    }
    stack.nats.stop();
    copy_dir(&stack.nats.store_dir(), &backup.path().join("jetstream"));

    // Wiped: every schema dropped from its database, the store removed.
    for service in SERVICES {
        let pool = stack.database_of(service).pool().await;
        sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {service} CASCADE"))).execute(&pool).await.unwrap();
        pool.close().await;
    }
    std::fs::remove_dir_all(stack.nats.store_dir()).unwrap();

    // Restored, each into its own database, and started again.
    for service in SERVICES {
        let file = backup.path().join(format!("{service}.dump"));
        let database = stack.database_of(service).name.clone();
        let mut args = connection.to_vec();
        args.extend(["-d", &database, "--exit-on-error", file.to_str().unwrap()]);
        run(&bin.join("pg_restore"), &args);
    }
    copy_dir(&backup.path().join("jetstream"), &stack.nats.store_dir());
    tokio::task::block_in_place(|| stack.nats.start_again());
    for service in SERVICES {
        stack.restart(service).await;
    }
    assert_eq!(counts(&stack).await, before, "the same counts in every database after the restore");

    // They carry on: a new report goes all the way, and nothing from before happens again.
    batch(&stack, vec![inspection(HANDAN, None, "恢复后的分库厂", &["vocs"])]).await;
    let after = settled(&stack, 7, 1).await;
    println!("database per service: before {before:?}, after a restore and one more report {after:?}");
    assert_eq!(receiver.received().len(), notices_before + 1, "one new notice, no old one again");
}
