//! The fault suite. On a private nats-server and a private Postgres cluster, a steady stream of
//! reports goes to intake while each of the five services is SIGKILLed once at a random moment,
//! nats-server is killed and started again on its port, and Postgres is stopped (fast or
//! immediate, which is a crash) and started again. The moments and the order come from a seed
//! that the test prints (`SKYLEDGER_FAULT_SEED` repeats a run); `SKYLEDGER_FAULT_SCALE` (1)
//! multiplies the site checks per batch and `SKYLEDGER_FAULT_WINDOW_SECS` (40) is how long the
//! reports go on, the faults spread over it.
//!
//! Only the killed services are restarted, by the test; the others must ride out the broker's
//! and the database's restarts by themselves. At the end every accepted report has reached its
//! final state exactly once: one intake problem, one ledger entry on exactly one handover sheet,
//! one verification problem, one public problem without a repeated history line or log entry, and
//! one notice per problem, delivered, counted once by a receiver that drops repeats by
//! `webhook-id`. The counts are printed and written to `target/test-artifacts/faults.txt`.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::events::{HANDOVER_ISSUED, PROBLEM_ASSIGNED};
use shared::testing::{PostgresServer, Stack, StackOptions, StopMode, WebhookReceiver};
use uuid::Uuid;

use crate::support::*;

#[derive(Debug, Clone, Copy)]
enum Fault {
    Kill(&'static str),
    RestartNats,
    RestartPostgres(StopMode),
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// What the reporting task saw.
#[derive(Default)]
pub(crate) struct Posting {
    /// Problem ids intake accepted (created, or already had on a retry).
    pub accepted: Vec<String>,
    pub batches: u64,
    /// Answers other than 200, by status, and requests that got no answer.
    pub retries: HashMap<String, u64>,
    pub refused: Vec<Value>,
}

/// Posts a batch of `per_batch` site checks every `interval` until `stop`, each batch again until
/// intake answers 200 (same ids, so a retry is never a second record). `unavailable` counts the
/// answers 503 with `Retry-After` as they come.
pub(crate) fn start_reporting(
    stack: &Stack,
    per_batch: usize,
    interval: Duration,
    stop: Arc<AtomicBool>,
    unavailable: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<Posting> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().expect("client");
    let url = format!("{}/v1/inspections/batch", stack.url("intake"));
    let token = inspector(stack);
    tokio::spawn(async move {
        let mut posting = Posting::default();
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let items: Vec<Value> = (0..per_batch)
                .map(|i| {
                    let city = if (n as usize + i).is_multiple_of(2) { XINGTAI } else { HANDAN };
                    inspection(city, None, &format!("故障测试厂 {n}-{i}"), &["scattered_polluting"])
                })
                .collect();
            let body = json!({ "items": items });
            loop {
                match http.post(&url).bearer_auth(&token).json(&body).send().await {
                    Ok(response) if response.status() == StatusCode::OK => {
                        let answer: Value = response.json().await.unwrap_or_default();
                        let results = answer["results"].as_array().cloned().unwrap_or_default();
                        if results.len() != items.len() {
                            *posting.retries.entry("200 unreadable".into()).or_default() += 1;
                            continue;
                        }
                        for (item, result) in items.iter().zip(&results) {
                            match result["status"].as_str() {
                                Some("created" | "already_had") => posting.accepted.extend(problem_ids(item)),
                                _ => posting.refused.push(result.clone()),
                            }
                        }
                        break;
                    }
                    Ok(response) => {
                        let status = response.status();
                        let retry_after = response.headers().contains_key("retry-after");
                        if status == StatusCode::SERVICE_UNAVAILABLE && retry_after {
                            unavailable.fetch_add(1, Ordering::SeqCst);
                        }
                        *posting
                            .retries
                            .entry(format!("{status}{}", if retry_after { " +Retry-After" } else { "" }))
                            .or_default() += 1;
                    }
                    Err(e) => {
                        let kind = if e.is_timeout() { "timeout" } else { "no answer" };
                        *posting.retries.entry(kind.into()).or_default() += 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            posting.batches += 1;
            n += 1;
            tokio::time::sleep(interval).await;
        }
        posting
    })
}

pub(crate) async fn scalar(pool: &sqlx::PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_accepted_report_reaches_its_final_state_once_through_kills_and_restarts() {
    let scale = env_u64("SKYLEDGER_FAULT_SCALE").unwrap_or(1).max(1);
    let seed = env_u64("SKYLEDGER_FAULT_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
    });
    let mut rng = StdRng::seed_from_u64(seed);
    println!("fault suite: seed {seed} (SKYLEDGER_FAULT_SEED={seed} repeats the schedule), scale {scale}");

    let mut postgres = tokio::task::block_in_place(PostgresServer::start);
    let mut options = StackOptions { database_admin_url: Some(postgres.admin_url()), ..Default::default() };
    options.env.push(("SKYLEDGER__NOTIFICATION__RETRY_SCALE".into(), "0.05".into()));
    let mut stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), options).await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;

    // The schedule: each fault once, in a random order, at random moments of the reporting window.
    let window = Duration::from_secs(env_u64("SKYLEDGER_FAULT_WINDOW_SECS").unwrap_or(40).max(20));
    let mut faults: Vec<Fault> = SERVICE_NAMES.into_iter().map(Fault::Kill).collect();
    faults.push(Fault::RestartNats);
    faults.push(Fault::RestartPostgres(if rng.r#gen::<bool>() { StopMode::Fast } else { StopMode::Immediate }));
    faults.shuffle(&mut rng);
    let mut moments: Vec<Duration> = (0..faults.len())
        .map(|_| Duration::from_millis(rng.gen_range(2_000..window.as_millis() as u64 - 2_000)))
        .collect();
    moments.sort();
    let downtimes: Vec<Duration> =
        (0..faults.len()).map(|_| Duration::from_millis(rng.gen_range(100..2_500))).collect();
    for ((fault, at), down) in faults.iter().zip(&moments).zip(&downtimes) {
        println!("  at {:>5.1} s: {fault:?}, down {:.1} s", at.as_secs_f64(), down.as_secs_f64());
    }

    let stop = Arc::new(AtomicBool::new(false));
    let per_batch = 4 * scale as usize;
    let reporting =
        start_reporting(&stack, per_batch, Duration::from_millis(250), stop.clone(), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let mut log = Vec::new();
    for ((fault, at), down) in faults.iter().zip(&moments).zip(&downtimes) {
        tokio::time::sleep(at.saturating_sub(started.elapsed())).await;
        let began = Instant::now();
        match *fault {
            Fault::Kill(service) => {
                stack.kill(service);
                tokio::time::sleep(*down).await;
                stack.restart(service).await;
            }
            Fault::RestartNats => {
                stack.nats.kill();
                tokio::time::sleep(*down).await;
                tokio::task::block_in_place(|| stack.nats.restart());
            }
            Fault::RestartPostgres(mode) => {
                tokio::task::block_in_place(|| postgres.stop(mode));
                tokio::time::sleep(*down).await;
                tokio::task::block_in_place(|| postgres.start_again());
            }
        }
        log.push(format!(
            "{fault:?} at {:.1} s, back after {:.1} s",
            began.duration_since(started).as_secs_f64(),
            began.elapsed().as_secs_f64()
        ));
    }
    tokio::time::sleep(window.saturating_sub(started.elapsed())).await;
    stop.store(true, Ordering::SeqCst);
    let posting = reporting.await.expect("the reporting task");
    let reporting_secs = started.elapsed().as_secs_f64();
    assert!(posting.refused.is_empty(), "intake refused good reports: {:?}", posting.refused);
    let accepted: HashSet<String> = posting.accepted.iter().cloned().collect();
    assert_eq!(accepted.len(), posting.accepted.len(), "each problem accepted once");
    let n = accepted.len() as i64;
    assert!(n > 0);

    // Nobody restarted the services after the broker's and the database's restarts: they are
    // all still the processes the test started (or restarted after killing them).
    for name in SERVICE_NAMES {
        assert!(stack.services.get_mut(name).unwrap().is_running(), "{name} exited by itself:\n{}", stack.logs());
    }

    let settle = Instant::now();
    let figures = assert_final_state_once(&stack, &receiver, &accepted).await;
    let settle_secs = settle.elapsed().as_secs_f64();

    let mut retries: Vec<_> = posting.retries.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    retries.sort();
    let mut report = vec![
        format!("fault suite: seed {seed}, scale {scale}, window {} s", window.as_secs()),
        format!(
            "reports: {} batches of {per_batch} in {reporting_secs:.0} s; {n} problems accepted; retried answers: {}",
            posting.batches,
            if retries.is_empty() { "none".into() } else { retries.join(", ") }
        ),
    ];
    report.extend(log.iter().map(|l| format!("  {l}")));
    report.extend(figures);
    report.push(format!("settled {settle_secs:.1} s after the reports stopped"));
    // What the plumbing did to ride the restarts out, from the services' logs.
    for (what, needle) in [
        ("NATS connections (starts and reconnections)", "connected to NATS"),
        ("pull streams made anew", "pull stream broken"),
        ("resends of recent events after a reconnection", "sending recent events again"),
        ("relay retries", "outbox relay failed"),
        ("consumer retries for the database", "database unavailable; message will be redelivered"),
    ] {
        let per_service: Vec<String> = SERVICE_NAMES
            .iter()
            .map(|s| format!("{s} {}", stack.services[s].log_text().matches(needle).count()))
            .collect();
        report.push(format!("{what}: {}", per_service.join(", ")));
    }
    let report = report.join("\n");
    println!("{report}");
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    let _ = std::fs::create_dir_all(&artifacts);
    let _ = std::fs::write(artifacts.join("faults.txt"), format!("{report}\n"));
    drop(stack);
    drop(postgres);
}

/// Each stream's last sequence and its durable consumers' pending and unacknowledged counts.
async fn stream_positions(stack: &Stack) -> String {
    use futures::StreamExt;
    let js = async_nats::jetstream::new(stack.nats_client().await);
    let mut out = vec![];
    for service in SERVICE_NAMES {
        let Ok(mut stream) = js.get_stream(shared::messaging::stream_name(&stack.namespace, service)).await else {
            out.push(format!("{service}: no stream"));
            continue;
        };
        let last = stream.info().await.map(|i| i.state.last_sequence).unwrap_or(0);
        let mut consumers = vec![];
        let mut listed = stream.consumers();
        while let Some(Ok(info)) = listed.next().await {
            consumers.push(format!(
                "{} pending {} unacked {} at {}",
                info.name, info.num_pending, info.num_ack_pending, info.delivered.stream_sequence
            ));
        }
        out.push(format!("{service} last {last} [{}]", consumers.join(", ")));
    }
    out.join("; ")
}

/// The problems intake holds that verification does not, each with its events in intake's
/// outbox (sent or not) and what intake's log says of them: tells a relay that held events back
/// from a broker that acknowledged and then lost them.
async fn missing_downstream(stack: &Stack, pool: &sqlx::PgPool) -> String {
    let unsent = scalar(pool, "SELECT count(*) FROM intake.outbox WHERE sent_at IS NULL").await;
    let written = scalar(pool, "SELECT count(*) FROM intake.outbox").await;
    let rows: Vec<(Uuid, Uuid, String, Option<String>, String)> = sqlx::query_as(
        "SELECT p.id, o.event_id, o.nats_subject, o.sent_at::text, o.created_at::text
         FROM intake.problems p JOIN intake.outbox o ON o.payload LIKE '%' || p.id::text || '%'
         WHERE p.id NOT IN (SELECT problem_id FROM verification.problems) ORDER BY o.position",
    )
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    let intake_log = stack.services.get("intake").map(|s| s.log_text()).unwrap_or_default();
    let mut out =
        vec![format!("intake's outbox: {written} events, {unsent} unsent; problems missing downstream, their events:")];
    for (problem, event, subject, sent_at, created_at) in rows {
        let said: Vec<&str> = intake_log.lines().filter(|l| l.contains(&event.to_string())).collect();
        out.push(format!(
            "  {problem} event {event} {subject} created {created_at} sent {} log: {said:?}",
            sent_at.as_deref().unwrap_or("NEVER")
        ));
    }
    out.join("\n")
}

/// Waits until every accepted problem has reached its final state in every service, then checks
/// that it got there exactly once: one intake problem, one ledger entry on exactly one sheet, one
/// verification problem, one public problem without a repeated history line or log entry, one
/// notice delivered, no dead letter. Returns the counts, for the report.
pub(crate) async fn assert_final_state_once(
    stack: &Stack,
    receiver: &WebhookReceiver,
    accepted: &HashSet<String>,
) -> Vec<String> {
    let n = accepted.len() as i64;
    // Everything settles: every schema holds every accepted problem.
    let pool = stack.db.pool().await;
    let deadline = Instant::now() + Duration::from_secs(300);
    let counts = loop {
        let counts = [
            ("intake problems", scalar(&pool, "SELECT count(*) FROM intake.problems").await),
            (
                "ledger entries on a sheet",
                scalar(&pool, "SELECT count(*) FROM assignment.ledger WHERE handover_no IS NOT NULL").await,
            ),
            ("verification problems", scalar(&pool, "SELECT count(*) FROM verification.problems").await),
            ("public problems", scalar(&pool, "SELECT count(*) FROM publication.problems WHERE public").await),
            ("notified problems", scalar(&pool, "SELECT count(*) FROM notification.problems").await),
            (
                "handover deliveries delivered",
                scalar(
                    &pool,
                    "SELECT count(*) FROM notification.deliveries d JOIN notification.notices n ON n.id = d.notice_id
                     WHERE n.kind = 'handover' AND d.status = 'delivered'",
                )
                .await,
            ),
            (
                "handover notices",
                scalar(&pool, "SELECT count(*) FROM notification.notices WHERE kind = 'handover'").await,
            ),
        ];
        if counts[..5].iter().all(|(_, c)| *c == n) && counts[5].1 == counts[6].1 {
            break counts;
        }
        // What was still missing, and what each service and the streams were doing, says where
        // it stuck.
        if Instant::now() > deadline {
            let streams = stream_positions(stack).await;
            let missing = missing_downstream(stack, &pool).await;
            panic!(
                "not settled after 5 minutes: {n} accepted; {counts:?}\nstreams: {streams}\n{missing}\n{}",
                stack.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Exactly once, problem by problem.
    let intake_ids: HashSet<String> = sqlx::query_scalar::<_, Uuid>("SELECT id FROM intake.problems")
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .map(|id| id.to_string())
        .collect();
    assert_eq!(&intake_ids, accepted, "intake holds exactly the accepted problems");
    for (table, sql) in [
        ("assignment.ledger", "SELECT problem_id FROM assignment.ledger"),
        ("verification.problems", "SELECT problem_id FROM verification.problems"),
        ("publication.problems", "SELECT problem_id FROM publication.problems WHERE public"),
    ] {
        let ids: HashSet<String> = sqlx::query_scalar::<_, Uuid>(sql)
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .map(|id| id.to_string())
            .collect();
        assert_eq!(&ids, accepted, "{table} holds exactly the accepted problems");
    }

    // One problem.assigned per problem, and every problem on exactly one sheet (events counted by
    // their id: a copy the relay sent again is the same event).
    let assigned = distinct(stream_events(stack, "assignment", &PROBLEM_ASSIGNED).await);
    let mut assigned_per_problem: HashMap<String, usize> = HashMap::new();
    for event in &assigned {
        *assigned_per_problem.entry(event.data["problem_id"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(&assigned_per_problem.keys().cloned().collect::<HashSet<_>>(), accepted);
    let twice: Vec<_> = assigned_per_problem.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "problems assigned twice: {twice:?}");
    let sheets = distinct(stream_events(stack, "assignment", &HANDOVER_ISSUED).await);
    let on_sheets: Vec<String> = sheets
        .iter()
        .flat_map(|e| {
            e.data["problems"].as_array().unwrap().iter().map(|p| p["problem_id"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(on_sheets.len() as i64, n, "every problem on exactly one sheet");
    assert_eq!(&on_sheets.iter().cloned().collect::<HashSet<_>>(), accepted);

    // The receiver drops repeats by webhook-id: then every problem came in exactly one notice.
    let received = receiver.received();
    let mut notices: HashMap<String, Value> = HashMap::new();
    for r in &received {
        if r.json()["type"] == "handover.issued" {
            notices.insert(r.header("webhook-id").to_string(), r.json());
        }
    }
    let notified: Vec<String> = notices
        .values()
        .flat_map(|n| n["problems"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(notified.len() as i64, n, "every problem notified in exactly one notice");
    assert_eq!(&notified.iter().cloned().collect::<HashSet<_>>(), accepted);
    assert_eq!(notices.len() as i64, counts[6].1, "every handover notice reached the receiver");
    let repeats = received.len() - received.iter().map(|r| r.header("webhook-id")).collect::<HashSet<_>>().len();

    // No public history line and no log entry twice.
    let repeated_lines = scalar(
        &pool,
        "SELECT count(*) FROM (SELECT problem_id, status, what FROM publication.history
         GROUP BY 1, 2, 3 HAVING count(*) > 1) AS d",
    )
    .await;
    assert_eq!(repeated_lines, 0, "a public history line is repeated");
    let repeated_entries = scalar(
        &pool,
        "SELECT count(*) FROM (SELECT content_hash FROM publication.log_entries GROUP BY 1 HAVING count(*) > 1) AS d",
    )
    .await;
    assert_eq!(repeated_entries, 0, "a public log entry is repeated");
    let history_lines = scalar(&pool, "SELECT count(*) FROM publication.history").await;
    let logged_lines = scalar(&pool, "SELECT count(*) FROM publication.history WHERE entry_seq IS NOT NULL").await;
    let problem_entries =
        scalar(&pool, "SELECT count(*) FROM publication.log_entries WHERE problem_id IS NOT NULL").await;
    assert_eq!(logged_lines, problem_entries, "one log entry per logged history line");
    let dead_letters = scalar(
        &pool,
        "SELECT (SELECT count(*) FROM intake.dead_letters) + (SELECT count(*) FROM assignment.dead_letters)
              + (SELECT count(*) FROM verification.dead_letters) + (SELECT count(*) FROM notification.dead_letters)
              + (SELECT count(*) FROM publication.dead_letters)",
    )
    .await;
    assert_eq!(dead_letters, 0, "no event was dead-lettered by a fault");

    pool.close().await;
    let mut figures: Vec<String> = counts.iter().map(|(what, count)| format!("{what}: {count}")).collect();
    figures.push(format!("handover sheets: {}", sheets.len()));
    figures.push(format!(
        "webhook requests received: {} ({} distinct notices, {repeats} repeats dropped by webhook-id)",
        received.len(),
        notices.len()
    ));
    figures.push(format!("public history lines: {history_lines}, problem log entries: {problem_entries}"));
    figures
}

const SERVICE_NAMES: [&str; 5] = shared::testing::SERVICES;

fn distinct(events: Vec<shared::envelope::Event>) -> Vec<shared::envelope::Event> {
    let mut seen = HashSet::new();
    events.into_iter().filter(|e| seen.insert(e.id)).collect()
}
