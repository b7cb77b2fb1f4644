//! The event path (issue 12): how fast each service applies what it consumes, how the whole
//! stack takes site checks and drains what they cause, how long a report takes to the ledger
//! and to the handover notice at 1,000 problems a second, and how much memory each service
//! holds; every figure beside floors measured in the same run.
//!
//! `cargo bench --bench event_path` (5 to 8 minutes here, most of it part 1 while the consumers
//! are slow), or one part of it:
//! `-- --part backlog|checks|latency|all` (the floors are measured whatever the part), with
//! `--backlog 50000` (events per consumer), `--consumers assignment,publication` (a subset of
//! part 1), `--checks 60000`, `--concurrency 4`, `--seconds 60`, `--window 1000` (the gathering
//! window of parts 2 and 3, in ms), `--timeout 240` (seconds a consumer may take) and
//! `--nats-nodes 3` (every part's stack on a three-node JetStream cluster, streams in 3
//! replicas, all on this machine: the replication's cost, for docs/capacity.md).
//!
//! 1. backlog: for each consuming service alone, its busiest kind published raw into the
//!    producer's stream while the service is stopped (as the producer's relay would: a
//!    CloudEvent, `Nats-Msg-Id` = its id, the city as the subject's last token, problems spread
//!    over the 39 cities); then the service is started and timed from its start until its
//!    consumer has nothing pending and nothing unacknowledged; the rows are counted afterwards.
//! 2. checks: all five services (deploy/up's settings, a short gathering window), batches of
//!    1,000 site checks (one in thirteen with a problem), 4 in flight: checks accepted per
//!    second, and the time from the last answer until every consumer of every stream has
//!    applied everything (consumer infos polled every 20 ms).
//! 3. latency: 100-problem batches every 100 ms over the 39 cities for `--seconds`, a webhook
//!    receiver for every city: report → ledger entry (first seen by a poller on its own
//!    connection every 10 ms) and report → handover notice, from when the batch's answer came;
//!    the consumers' lag sampled each second.
//! 4. memory: each service's peak resident memory (VmHWM) in each part.
//! 5. floors: raw JetStream publish, raw pull-consume + ack, raw multi-row insert (1,000 rows a
//!    statement) and raw COPY of the same documents.
//!
//! Prints a Markdown section for docs/benchmarks.md (progress goes to stderr). The services log
//! warnings only (`SKYLEDGER_BENCH_LOG=info` for more); part 1 prints the first warning or error
//! a consumer logged.

mod common;

use common::{
    CATEGORIES, TEAMS, copy_rate, notified, percentile, put, register_recipients, set_up_round, synthetic_day,
};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use serde_json::{Value, json};
use shared::auth::Role;
use shared::envelope::{Event, nats_subject};
use shared::events::{Payload, Previous, ProblemAssigned, ProblemClosed, ProblemReported, Site};
use shared::messaging::{consumer_name, ensure_stream, stream_name};
use shared::testing::{NatsServer, SERVICES, Stack, StackOptions, TestDatabase, WebhookReceiver, memory_kib};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use time::OffsetDateTime;
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_skyledger");
/// Events a publish waits for acks on, rows an insert takes, checks a batch request holds.
const BATCH: usize = 1000;
/// The consumers the five services make: (producer's stream, consuming service).
const CONSUMERS: [(&str, &str); 10] = [
    ("intake", "assignment"),
    ("intake", "verification"),
    ("intake", "publication"),
    ("assignment", "verification"),
    ("assignment", "notification"),
    ("assignment", "publication"),
    ("verification", "intake"),
    ("verification", "assignment"),
    ("verification", "notification"),
    ("verification", "publication"),
];

fn arg<T: FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// deploy/up's settings (the services' defaults: 10 database connections each), with the
/// gathering window given (the default, 10 s, when `None`), logging warnings only; on one
/// nats-server, or on a cluster of `--nats-nodes` (3: every stream in 3 replicas).
fn options(window_millis: Option<u64>, only: Option<Vec<&'static str>>) -> StackOptions {
    let mut env = vec![
        ("SKYLEDGER__DATABASE_MAX_CONNECTIONS".to_string(), "10".to_string()),
        ("RUST_LOG".to_string(), std::env::var("SKYLEDGER_BENCH_LOG").unwrap_or_else(|_| "warn".into())),
    ];
    if let Some(window) = window_millis {
        env.push(("SKYLEDGER__ASSIGNMENT__GATHERING_WINDOW_MILLIS".into(), window.to_string()));
    }
    StackOptions { env, only, nats_nodes: arg("--nats-nodes", 1), ..StackOptions::default() }
}

// ---------------------------------------------------------------------------------------------
// Events as their producers publish them

/// An event ready to publish: its subject, id and the CloudEvent as JSON.
struct Prepared {
    subject: String,
    id: Uuid,
    payload: String,
    problem_id: Uuid,
}

fn prepare<T: Payload>(namespace: &str, city: &str, problem_id: Uuid, data: &T) -> Prepared {
    let event = Event::of(problem_id.to_string(), data);
    Prepared {
        subject: nats_subject(namespace, &T::KIND, Some(city)),
        id: event.id,
        payload: serde_json::to_string(&event).expect("an event serialises"),
        problem_id,
    }
}

/// `n` events of the kind `service` is measured on, problems spread over the 39 cities: what
/// intake publishes for a report, assignment for an assignment, verification for a closure.
fn backlog_events(namespace: &str, service: &str, n: usize) -> Vec<Prepared> {
    let cities = shared::reference::cities();
    let now = OffsetDateTime::now_utc();
    let today = now.to_offset(shared::clock::SHANGHAI).date();
    (0..n)
        .map(|i| {
            let city = &cities[i % cities.len()];
            let problem_id = Uuid::now_v7();
            match service {
                "notification" => prepare(
                    namespace,
                    &city.code,
                    problem_id,
                    &ProblemAssigned {
                        problem_id,
                        problem_seq: 1,
                        previous: Previous::default(),
                        handover_no: format!("bench-R01-{}-{:04}", city.code, i / (500 * cities.len()) + 1),
                        round: "bench-R01".into(),
                        city_code: city.code.clone(),
                        county_code: None,
                        jurisdiction: city.code.clone(),
                        category: CATEGORIES[i % CATEGORIES.len()].into(),
                        deadline: today + time::Duration::days(30),
                        assigned_at: now,
                    },
                ),
                "intake" => prepare(
                    namespace,
                    &city.code,
                    problem_id,
                    &ProblemClosed {
                        problem_id,
                        // After its rectification report (1), which intake does not handle.
                        problem_seq: 2,
                        previous: Previous(BTreeMap::from([("rectification.reported".to_string(), 1)])),
                        city_code: city.code.clone(),
                        team: "V-01".into(),
                        verified_at: now,
                    },
                ),
                _ => prepare(
                    namespace,
                    &city.code,
                    problem_id,
                    &ProblemReported {
                        problem_id,
                        problem_seq: 1,
                        previous: Previous::default(),
                        inspection_id: Uuid::now_v7(),
                        round: "bench-R01".into(),
                        team: format!("T-{:02}", i % TEAMS),
                        city_code: city.code.clone(),
                        county_code: None,
                        category: CATEGORIES[i % CATEGORIES.len()].into(),
                        severity: "general".into(),
                        description: "现场检查发现问题，详见记录".into(),
                        site: Site {
                            name: format!("企业 {i}"),
                            credit_code: None,
                            address: Some("某某路 88 号".into()),
                            lat: city.lat + (i % 100) as f64 / 1000.0,
                            lon: city.lon + (i % 97) as f64 / 1000.0,
                        },
                        checked_at: now - time::Duration::hours(1),
                        rebound_of: None,
                        evidence: vec![],
                    },
                ),
            }
        })
        .collect()
}

fn traceparent() -> String {
    format!("00-{}-{}-01", Uuid::new_v4().simple(), &Uuid::new_v4().simple().to_string()[..16])
}

/// Publishes as the outbox relay does (1,000 in flight, then their acks); answers the seconds.
async fn publish(js: &jetstream::Context, events: &[Prepared]) -> f64 {
    let started = Instant::now();
    for chunk in events.chunks(BATCH) {
        let mut acks = Vec::with_capacity(chunk.len());
        for e in chunk {
            let message = jetstream::message::PublishMessage::build()
                .payload(e.payload.clone().into())
                .message_id(e.id.to_string())
                .header("Content-Type", "application/cloudevents+json")
                .header("traceparent", traceparent().as_str());
            acks.push(js.send_publish(e.subject.clone(), message).await.expect("publish"));
        }
        for ack in acks {
            ack.await.expect("publish ack");
        }
    }
    started.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// Measuring processes and consumers

/// CPU seconds (user + system) a process has used.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks: u64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<u64>().ok()).sum();
    ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64
}

/// The CPU seconds of the Postgres backends serving the bench's database, but for `own`'s.
async fn backends_cpu(own: &mut PgConnection) -> f64 {
    let pids: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(own)
    .await
    .unwrap_or_default();
    pids.iter().map(|&pid| cpu_secs(pid as u32)).sum()
}

fn peak_mib(pid: u32) -> f64 {
    memory_kib(pid, "VmHWM:") as f64 / 1024.0
}

/// A metric of a service's `/metrics`, summed over the series with `producer` as their producer.
fn metric(text: &str, name: &str, producer: &str) -> f64 {
    let label = format!("producer=\"{producer}\"");
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{')) && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Lag of one consumer: (producer, consuming service, pending + unacknowledged).
type Lag = (String, String, u64);

/// The streams of a namespace that exist, to read their consumers' lag.
struct Streams {
    namespace: String,
    streams: Vec<(String, jetstream::stream::Stream)>,
}

impl Streams {
    async fn of(js: &jetstream::Context, namespace: &str) -> Self {
        let mut streams = Vec::new();
        for producer in shared::events::PRODUCERS {
            if let Ok(stream) = js.get_stream(stream_name(namespace, producer)).await {
                streams.push((producer.to_string(), stream));
            }
        }
        Self { namespace: namespace.to_string(), streams }
    }

    /// Every consumer of every stream, with its lag.
    async fn lags(&self) -> Vec<Lag> {
        let prefix = format!("{}_", self.namespace);
        let mut all = Vec::new();
        for (producer, stream) in &self.streams {
            let mut consumers = stream.consumers();
            while let Some(Ok(info)) = consumers.next().await {
                let service = info.name.strip_prefix(&prefix).unwrap_or(&info.name).to_string();
                all.push((producer.clone(), service, info.num_pending + info.num_ack_pending as u64));
            }
        }
        all
    }
}

/// Waits (up to 60 s) until the consumers the services make all exist and have applied what
/// the set-up caused; answers the streams.
async fn consumers_ready(js: &jetstream::Context, namespace: &str) -> Streams {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let streams = Streams::of(js, namespace).await;
        let lags = streams.lags().await;
        let missing: Vec<String> = CONSUMERS
            .iter()
            .filter(|(p, c)| !lags.iter().any(|(lp, lc, _)| lp == p && lc == c))
            .map(|(p, c)| format!("{c} on {p}"))
            .collect();
        let busy = lags.iter().any(|l| l.2 > 0);
        if missing.is_empty() && !busy {
            return streams;
        }
        if Instant::now() > deadline {
            eprintln!("warning: after 60 s, consumers missing: {missing:?}; busy: {busy}");
            return streams;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Signed seconds from `from` to `to`.
fn between(from: Instant, to: Instant) -> f64 {
    if to >= from { (to - from).as_secs_f64() } else { -(from - to).as_secs_f64() }
}

// ---------------------------------------------------------------------------------------------
// 5. Floors

struct Floors {
    publish: f64,
    pull_ack: f64,
    insert_events: f64,
    insert_checks: f64,
    copy_events: f64,
    copy_checks: f64,
}

async fn insert_rows(pool: &sqlx::PgPool, docs: &[String]) -> f64 {
    sqlx::query("TRUNCATE floor_insert").execute(pool).await.expect("truncate");
    let started = Instant::now();
    for chunk in docs.chunks(BATCH) {
        sqlx::query("INSERT INTO floor_insert (doc) SELECT unnest($1::text[])::jsonb")
            .bind(chunk)
            .execute(pool)
            .await
            .expect("floor insert");
    }
    docs.len() as f64 / started.elapsed().as_secs_f64()
}

/// What this machine does with no service in between: the backlog's events published raw to a
/// stream made like a service's, then pulled and acknowledged by one durable pull consumer in
/// batches of 1,000; the same events and the part 2 site checks inserted raw, 1,000 rows a
/// statement, and COPYed.
async fn floors(events: &[Prepared], checks: &[String]) -> Floors {
    eprintln!("floors…");
    let nats = NatsServer::start();
    let js = jetstream::new(nats.client().await);
    let stream = ensure_stream(&js, "floor", "intake", 1).await.expect("floor stream");
    let publish_secs = publish(&js, events).await;

    let floor_consumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("floor".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            max_ack_pending: 20_000,
            ..Default::default()
        })
        .await
        .expect("floor consumer");
    let started = Instant::now();
    let mut batches =
        floor_consumer.stream().max_messages_per_batch(BATCH).messages().await.expect("floor pull").ready_chunks(BATCH);
    let (mut acked, mut chunks, mut largest) = (0, 0, 0);
    while acked < events.len() {
        let chunk = batches.next().await.expect("floor messages");
        (chunks, largest) = (chunks + 1, largest.max(chunk.len()));
        for message in chunk {
            message.expect("a floor message").ack().await.expect("floor ack");
            acked += 1;
        }
    }
    eprintln!("floors: pulled in {chunks} chunks (mean {}, largest {largest})", acked / chunks.max(1));
    loop {
        let info = stream.consumer_info("floor").await.expect("floor consumer info");
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pull_ack = events.len() as f64 / started.elapsed().as_secs_f64();
    drop(batches);

    let docs: Vec<String> = events.iter().map(|e| e.payload.clone()).collect();
    let db = TestDatabase::create().await;
    let pool = db.pool().await;
    sqlx::query("CREATE TABLE floor_insert (id bigserial PRIMARY KEY, doc jsonb NOT NULL)")
        .execute(&pool)
        .await
        .expect("floor table");
    let insert_events = insert_rows(&pool, &docs).await;
    let insert_checks = insert_rows(&pool, checks).await;
    let copy_events = copy_rate(&pool, &docs).await;
    let copy_checks = copy_rate(&pool, checks).await;
    pool.close().await;
    Floors {
        publish: events.len() as f64 / publish_secs,
        pull_ack,
        insert_events,
        insert_checks,
        copy_events,
        copy_checks,
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Each consumer applying a backlog

struct Case {
    service: &'static str,
    producer: &'static str,
    kind: &'static str,
    /// Where the applied events leave one row per problem.
    table: &'static str,
}

const CASES: [Case; 5] = [
    Case { service: "assignment", producer: "intake", kind: "problem.reported", table: "assignment.ledger" },
    Case { service: "verification", producer: "intake", kind: "problem.reported", table: "verification.problems" },
    Case { service: "publication", producer: "intake", kind: "problem.reported", table: "publication.problems" },
    Case { service: "notification", producer: "assignment", kind: "problem.assigned", table: "notification.problems" },
    Case { service: "intake", producer: "verification", kind: "problem.closed", table: "intake.problem_status" },
];

struct Applied {
    case: &'static Case,
    events: usize,
    /// From the service's start until its consumer had nothing pending or unacknowledged (or
    /// until the timeout).
    secs: f64,
    ready_secs: f64,
    /// Events still pending or unacknowledged at the end (0: drained).
    left: u64,
    rows: i64,
    dead_letters: i64,
    batches: f64,
    handler_secs: f64,
    service_cpu: f64,
    postgres_cpu: f64,
    peak_mib: f64,
    /// The service's table Postgres read most rows of, and how many.
    scanned: (String, i64),
}

impl Applied {
    fn rate(&self) -> f64 {
        (self.events as u64 - self.left) as f64 / self.secs
    }
}

async fn backlog_case(case: &'static Case, n: usize, timeout: Duration) -> Applied {
    let mut stack = Stack::start(Path::new(BIN), options(None, Some(vec![case.service]))).await;
    let js = jetstream::new(stack.nats.client().await);
    let stream = ensure_stream(&js, &stack.namespace, case.producer, 1).await.expect("producer's stream");
    let name = consumer_name(&stack.namespace, case.service);
    // The service makes its consumer, then stops: the backlog waits for it in the stream.
    let made = Instant::now();
    while stream.consumer_info(&name).await.is_err() {
        assert!(made.elapsed() < Duration::from_secs(60), "{} made no consumer:\n{}", case.service, stack.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack.services.get_mut(case.service).expect("the service").terminate();

    let events = backlog_events(&stack.namespace, case.service, n);
    let publish_secs = publish(&js, &events).await;
    // The server counts a consumer's pending messages as it gets to them: wait for the whole
    // backlog to show.
    let published = Instant::now();
    loop {
        let pending = stream.consumer_info(&name).await.expect("consumer info").num_pending;
        if pending == n as u64 {
            break;
        }
        assert!(published.elapsed() < Duration::from_secs(30), "the backlog is in the stream: {pending} of {n}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("{}: {n} {} events published in {publish_secs:.1} s; starting {}", case.service, case.kind, case.service);

    let mut own = PgConnection::connect(&stack.db.url()).await.expect("bench connection");
    let started = Instant::now();
    let waiting = {
        let stream = stream.clone();
        let name = name.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(info) = stream.consumer_info(&name).await {
                    let left = info.num_pending + info.num_ack_pending as u64;
                    if left == 0 || started.elapsed() > timeout {
                        return (Instant::now(), left);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    stack.restart(case.service).await;
    let ready_secs = started.elapsed().as_secs_f64();
    let (done, left) = waiting.await.expect("the poller");
    let secs = (done - started).as_secs_f64();

    let pid = stack.services[case.service].pid().expect("the service runs");
    let service_cpu = cpu_secs(pid);
    let postgres_cpu = backends_cpu(&mut own).await;
    let peak_mib = peak_mib(pid);
    // The rows Postgres read (by sequential and index scans) in the service's most read table:
    // a statement that reads a growing table per batch makes the apply rate fall as the backlog
    // goes in (backends report their counts when idle, within a second or so).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let scanned: (String, i64) = sqlx::query_as(
        "SELECT relname::text, (coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0))::bigint AS read
         FROM pg_stat_user_tables WHERE schemaname = $1 ORDER BY read DESC LIMIT 1",
    )
    .bind(case.service)
    .fetch_optional(&mut own)
    .await
    .expect("table statistics")
    .unwrap_or_default();
    let ids: Vec<Uuid> = events.iter().map(|e| e.problem_id).collect();
    let rows: i64 =
        sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {} WHERE problem_id = ANY($1)", case.table)))
            .bind(&ids)
            .fetch_one(&mut own)
            .await
            .expect("count rows");
    let dead_letters: i64 =
        sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {}.dead_letters", case.service)))
            .fetch_one(&mut own)
            .await
            .expect("count dead letters");
    let metrics = stack
        .http
        .get(format!("{}/metrics", stack.url(case.service)))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    let applied = Applied {
        case,
        events: n,
        secs,
        ready_secs,
        left,
        rows,
        dead_letters,
        batches: metric(&metrics, "consumer_batch_seconds_count", case.producer),
        handler_secs: metric(&metrics, "consumer_batch_seconds_sum", case.producer),
        service_cpu,
        postgres_cpu,
        peak_mib,
        scanned,
    };
    eprintln!(
        "{}: {:.0} events/s ({} left, {} rows, {} dead letters, {:.0} batches; most read: {:?})",
        case.service,
        applied.rate(),
        left,
        rows,
        dead_letters,
        applied.batches,
        applied.scanned
    );
    let log = stack.services[case.service].log_text();
    let complaints: Vec<&str> = log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
    if !complaints.is_empty() {
        eprintln!("{}: {} warnings or errors in its log, the first: {}", case.service, complaints.len(), complaints[0]);
    }
    if left == 0 {
        assert_eq!(rows, n as i64, "{} applied every event: its rows are there", case.service);
    }
    drop(own);
    applied
}

// ---------------------------------------------------------------------------------------------
// 2. Site checks through the running stack

struct Checks {
    checks: usize,
    problems: usize,
    concurrency: usize,
    window: u64,
    accepted_secs: f64,
    /// From the last answer until every consumer had applied every published event and no
    /// outbox held an unsent one.
    drained_secs: Option<f64>,
    /// … and no problem waited for its sheet, every sheet applied by its consumers.
    settled_secs: Option<f64>,
    /// The largest lag seen while draining: (consumer, events).
    worst: (String, u64),
    peaks: Vec<(&'static str, f64)>,
}

async fn unsent(conn: &mut PgConnection) -> i64 {
    let sql = SERVICES
        .iter()
        .map(|s| format!("(SELECT count(*) FROM {s}.outbox WHERE sent_at IS NULL)"))
        .collect::<Vec<_>>()
        .join(" + ");
    sqlx::query_scalar(AssertSqlSafe(format!("SELECT ({sql})::bigint"))).fetch_one(conn).await.expect("unsent")
}

async fn checks_part(day: Vec<(usize, Value)>, concurrency: usize, window: u64) -> Checks {
    let stack = Stack::start(Path::new(BIN), options(Some(window), None)).await;
    let receiver = WebhookReceiver::start(vec![]).await;
    register_recipients(&stack, &receiver).await;
    set_up_round(&stack).await;
    let js = jetstream::new(stack.nats.client().await);
    // The set-up's events applied first.
    let streams = consumers_ready(&js, &stack.namespace).await;

    let checks = day.len();
    let problems: usize = day.iter().map(|(_, c)| c["problems"].as_array().map_or(0, Vec::len)).sum();
    let mut by_team: Vec<Vec<Value>> = vec![vec![]; TEAMS];
    for (team, inspection) in day {
        by_team[team].push(inspection);
    }
    let mut batches = vec![];
    for (team, items) in by_team.into_iter().enumerate() {
        let token = stack.token(Role::Inspector, Some(&format!("T-{team:02}")), None);
        for chunk in items.chunks(BATCH) {
            batches.push((token.clone(), chunk.to_vec()));
        }
    }
    eprintln!(
        "checks: {checks} site checks ({problems} problems) in {} batches, {concurrency} in flight",
        batches.len()
    );
    let url = format!("{}/v1/inspections/batch", stack.url("intake"));
    let started = Instant::now();
    futures::stream::iter(batches)
        .for_each_concurrent(concurrency, |(token, items)| {
            let request = stack.http.post(&url).bearer_auth(token).json(&json!({ "items": items }));
            async move {
                let response = request.send().await.expect("batch sent");
                assert!(response.status().is_success(), "{}", response.text().await.unwrap_or_default());
                let results: Value = response.json().await.expect("batch results");
                let created = results["results"].as_array().into_iter().flatten().all(|r| r["status"] == "created");
                assert!(created, "every check of the batch accepted: {results}");
            }
        })
        .await;
    let last_answer = Instant::now();
    let accepted_secs = (last_answer - started).as_secs_f64();
    eprintln!("checks: accepted in {accepted_secs:.2} s; draining");

    // Each step of the path shows in one of these counters (a problem waiting for its sheet, an
    // unsent outbox row, a message pending or unacknowledged), but they are read one after the
    // other: a state counts when two polls in a row find it, from the first of them.
    let mut conn = PgConnection::connect(&stack.db.url()).await.expect("bench connection");
    let (mut drained, mut settled) = (None, None);
    let (mut drained_since, mut settled_since) = (None, None);
    let mut worst = (String::new(), 0);
    let deadline = last_answer + Duration::from_secs(180);
    while settled.is_none() && Instant::now() < deadline {
        let now = Instant::now();
        let lags = streams.lags().await;
        for (producer, consumer, lag) in &lags {
            if *lag > worst.1 {
                worst = (format!("{consumer} on {producer}"), *lag);
            }
        }
        let quiet = lags.iter().all(|l| l.2 == 0) && unsent(&mut conn).await == 0;
        let gathered = quiet
            && sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM assignment.ledger WHERE handover_no IS NULL AND status = 'reported'",
            )
            .fetch_one(&mut conn)
            .await
            .expect("gathering")
                == 0;
        if drained.is_none() {
            drained_since = if quiet { drained_since.or(Some(now)) } else { None };
            if quiet && drained_since != Some(now) {
                drained = drained_since;
            }
        }
        settled_since = if gathered { settled_since.or(Some(now)) } else { None };
        if gathered && settled_since != Some(now) {
            settled = settled_since;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let tables = [
        ("intake.inspections", checks),
        ("assignment.ledger", problems),
        ("verification.problems", problems),
        ("notification.problems", problems),
        ("publication.problems", problems),
    ];
    // Once everything settled, every check and every problem is where it belongs.
    for (table, want) in tables.into_iter().filter(|_| settled.is_some()) {
        let rows: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&mut conn)
            .await
            .expect("count");
        assert_eq!(rows, want as i64, "{table} holds every one");
    }
    let peaks = SERVICES.iter().map(|s| (*s, peak_mib(stack.services[s].pid().unwrap_or(0)))).collect();
    Checks {
        checks,
        problems,
        concurrency,
        window,
        accepted_secs,
        drained_secs: drained.map(|d| between(last_answer, d)),
        settled_secs: settled.map(|s| between(last_answer, s)),
        worst,
        peaks,
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Latency at 1,000 problems a second

struct Latency {
    problems: usize,
    sending_secs: f64,
    window: u64,
    ledger: Vec<f64>,
    notice: Vec<f64>,
    /// Total lag of all consumers, each second while sending: (seconds since start, events).
    lag: Vec<(f64, u64)>,
    /// Each consumer's largest lag.
    worst: BTreeMap<String, u64>,
    peaks: Vec<(&'static str, f64)>,
    /// Publication's log writer over the part: entries appended, and the time its passes took.
    log_appended: f64,
    log_writer_secs: f64,
    /// What the part left on disk: the stack's database, and every stream's messages.
    database_bytes: i64,
    stream_bytes: u64,
}

/// A metric without labels from a Prometheus text (0 when absent).
fn plain_metric(text: &str, name: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok()).unwrap_or(0.0)
}

/// Problems sent and not yet seen on the ledger, and when each was first seen.
#[derive(Default)]
struct Sightings {
    unseen: BTreeSet<Uuid>,
    seen: HashMap<Uuid, Instant>,
}

async fn latency_part(seconds: u64, window: u64) -> Latency {
    let stack = Stack::start(Path::new(BIN), options(Some(window), None)).await;
    let receiver = WebhookReceiver::start(vec![]).await;
    register_recipients(&stack, &receiver).await;
    let cities = shared::reference::cities();
    let today = OffsetDateTime::now_utc().to_offset(shared::clock::SHANGHAI).date();
    let codes: Vec<&str> = cities.iter().map(|c| c.code.as_str()).collect();
    put(&stack, "/v1/rounds/lat-R01".into(), json!({ "starts_on": today, "ends_on": today, "cities": codes })).await;
    // Team t, from a province outside the campaign, covers city t.
    for (t, city) in cities.iter().enumerate() {
        put(&stack, format!("/v1/teams/L-{t:02}"), json!({ "home_province": "320000", "members": ["a", "b", "c"] }))
            .await;
        put(&stack, format!("/v1/rounds/lat-R01/teams/L-{t:02}"), json!({ "cities": [city.code] })).await;
    }
    let js = jetstream::new(stack.nats.client().await);
    let streams = consumers_ready(&js, &stack.namespace).await;

    // The ledger, watched on a connection of its own every 10 ms: a problem is seen when its
    // committed entry is visible. It probes the primary key for the problems not yet seen (the
    // ledger has no index on `received_at`, and a time window would scan it whole 100 times a
    // second), the oldest 5,000 at most.
    let sightings = Arc::new(Mutex::new(Sightings::default()));
    let stop = tokio_util::sync::CancellationToken::new();
    let watcher = {
        let (sightings, stop) = (sightings.clone(), stop.clone());
        let mut conn = PgConnection::connect(&stack.db.url()).await.expect("watcher connection");
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            while !stop.is_cancelled() {
                tick.tick().await;
                let wanted: Vec<Uuid> =
                    sightings.lock().expect("sightings").unseen.iter().take(5_000).copied().collect();
                if wanted.is_empty() {
                    continue;
                }
                let found: Vec<Uuid> =
                    sqlx::query_scalar("SELECT problem_id FROM assignment.ledger WHERE problem_id = ANY($1)")
                        .bind(&wanted)
                        .fetch_all(&mut conn)
                        .await
                        .expect("watch the ledger");
                let at = Instant::now();
                let mut s = sightings.lock().expect("sightings");
                for id in found {
                    s.unseen.remove(&id);
                    s.seen.entry(id).or_insert(at);
                }
            }
        })
    };
    let started = Instant::now();
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut lag, mut worst) = (Vec::new(), BTreeMap::<String, u64>::new());
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while !stop.is_cancelled() {
                tick.tick().await;
                let now = streams.lags().await;
                for (producer, consumer, l) in &now {
                    let w = worst.entry(format!("{consumer} on {producer}")).or_default();
                    *w = (*w).max(*l);
                }
                lag.push((started.elapsed().as_secs_f64(), now.iter().map(|l| l.2).sum()));
            }
            (lag, worst)
        })
    };

    eprintln!("latency: 1,000 problems/s for {seconds} s");
    let url = format!("{}/v1/inspections/batch", stack.url("intake"));
    let checked_at = shared::csv::timestamp(OffsetDateTime::now_utc() - time::Duration::minutes(5));
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut answers = Vec::new();
    for step in 0..(seconds * 10) as usize {
        tick.tick().await;
        // A tenth of a second's 100 problems: one batch per city team, round-robin.
        let t = step % cities.len();
        let city = &cities[t];
        let ids: Vec<Uuid> = (0..100).map(|_| Uuid::now_v7()).collect();
        let items: Vec<Value> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                json!({ "id": Uuid::now_v7(), "round": "lat-R01", "team": format!("L-{t:02}"), "city_code": city.code,
                        "checked_at": checked_at,
                        "site": { "name": format!("时延点位 {step}-{i}"), "lat": city.lat, "lon": city.lon },
                        "problems": [{ "id": id, "category": "dust", "severity": "general", "description": "扬尘" }] })
            })
            .collect();
        sightings.lock().expect("sightings").unseen.extend(ids.iter().copied());
        let request = stack
            .http
            .post(&url)
            .bearer_auth(stack.token(Role::Inspector, Some(&format!("L-{t:02}")), None))
            .json(&json!({ "items": items }));
        // A task of its own, so the answer's moment is taken when it comes.
        answers.push(tokio::spawn(async move {
            let ok = request.send().await.is_ok_and(|r| r.status().is_success());
            (ids, Instant::now(), ok)
        }));
    }
    let mut answered: HashMap<Uuid, Instant> = HashMap::new();
    for answer in answers {
        let (ids, at, ok) = answer.await.expect("a batch task");
        assert!(ok, "a latency batch failed");
        answered.extend(ids.into_iter().map(|id| (id, at)));
    }
    let sending_secs = started.elapsed().as_secs_f64();
    let problems = answered.len();
    eprintln!("latency: sent {problems} problems in {sending_secs:.1} s; waiting for the ledger and the notices");
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        let seen = sightings.lock().expect("sightings").seen.len();
        if seen >= problems && notified(&receiver).len() >= problems {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.cancel();
    watcher.await.expect("the watcher");
    let (lag, worst) = sampler.await.expect("the sampler");
    let seen = std::mem::take(&mut sightings.lock().expect("sightings").seen);
    // A problem not seen within the wait counts as never: the percentiles it reaches say so.
    let noticed = notified(&receiver);
    let after = |at: Option<&Instant>, id: &Uuid| at.map_or(f64::INFINITY, |at| between(answered[id], *at));
    let ledger: Vec<f64> = answered.keys().map(|id| after(seen.get(id), id)).collect();
    let notice: Vec<f64> = answered.keys().map(|id| after(noticed.get(id), id)).collect();
    let peaks = SERVICES.iter().map(|s| (*s, peak_mib(stack.services[s].pid().unwrap_or(0)))).collect();
    let sent_lag = lag.into_iter().filter(|(at, _)| *at <= sending_secs).collect();
    // The writer appends a moment after the consumers: wait until it has nothing due.
    let mut conn = PgConnection::connect(&stack.db.url()).await.expect("the bench's connection");
    let settle = Instant::now() + Duration::from_secs(60);
    while Instant::now() < settle {
        let due: i64 = sqlx::query_scalar("SELECT count(*) FROM publication.pending WHERE due_at <= now()")
            .fetch_one(&mut conn)
            .await
            .unwrap_or(0);
        if due == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = stack.http.get(format!("{}/metrics", stack.url("publication"))).send().await;
    let metrics = match metrics {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let log_appended = plain_metric(&metrics, "publication_log_entries_appended_total");
    let log_writer_secs = plain_metric(&metrics, "publication_log_writer_pass_seconds_sum");
    let database_bytes: i64 =
        sqlx::query_scalar("SELECT pg_database_size(current_database())").fetch_one(&mut conn).await.unwrap_or(0);
    let js = jetstream::new(stack.nats.client().await);
    let mut stream_bytes = 0;
    for producer in SERVICES {
        if let Ok(mut stream) = js.get_stream(stream_name(&stack.namespace, producer)).await
            && let Ok(info) = stream.info().await
        {
            stream_bytes += info.state.bytes;
        }
    }
    Latency {
        problems,
        sending_secs,
        window,
        ledger,
        notice,
        lag: sent_lag,
        worst,
        peaks,
        log_appended,
        log_writer_secs,
        database_bytes,
        stream_bytes,
    }
}

/// Least-squares slope of `points` (events per second).
fn slope(points: &[(f64, u64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1 as f64).sum::<f64>() / n);
    let cov: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 as f64 - my)).sum();
    let var: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if var == 0.0 { 0.0 } else { cov / var }
}

// ---------------------------------------------------------------------------------------------
// The report

fn met(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

fn ms(secs: f64) -> String {
    if secs.is_finite() { format!("{:.0} ms", secs * 1000.0) } else { "not within the wait".into() }
}

/// The machine's one-minute load average (what else was running shows in it).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

#[tokio::main]
async fn main() {
    shared::install_crypto_provider();
    let part: String = arg("--part", "all".to_string());
    let n: usize = arg("--backlog", 50_000);
    let chosen: String = arg("--consumers", String::new());
    let checks: usize = arg("--checks", 60_000);
    let concurrency: usize = arg("--concurrency", 4);
    let seconds: u64 = arg("--seconds", 60);
    let window: u64 = arg("--window", 1_000);
    let timeout = Duration::from_secs(arg("--timeout", 240));
    let wants = |p: &str| part == "all" || part == p;
    let load_before = load_average();
    assert!(["all", "backlog", "checks", "latency"].contains(&part.as_str()), "--part backlog|checks|latency|all");

    let day = synthetic_day(checks, 42);
    let check_docs: Vec<String> = day.iter().map(|(_, c)| c.to_string()).collect();
    let floors = floors(&backlog_events("floor", "assignment", n), &check_docs).await;

    let mut applied = Vec::new();
    if wants("backlog") {
        for case in CASES.iter().filter(|c| chosen.is_empty() || chosen.split(',').any(|s| s == c.service)) {
            applied.push(backlog_case(case, n, timeout).await);
        }
    }
    let checked = if wants("checks") { Some(checks_part(day, concurrency, window).await) } else { None };
    let latency = if wants("latency") { Some(latency_part(seconds, window).await) } else { None };

    let mut command = "cargo bench --bench event_path".to_string();
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if !args.is_empty() {
        command = format!("{command} -- {}", args.join(" "));
    }
    println!("## The event path (issue 12)\n");
    println!(
        "`{command}` — one run, {}, 2 cores, load average (1 min) {load_before} at the start and {} \
         at the end. Every figure is one measurement; the floors are from the same run.\n",
        OffsetDateTime::now_utc().date(),
        load_average()
    );
    println!("### Floors\n");
    println!("| floor (no service in between) | rate |");
    println!("|---|---|");
    println!(
        "| raw JetStream publish: {n} `problem.reported` events to a stream made like a service's, acks awaited per 1,000 | {:.0} /s |",
        floors.publish
    );
    println!(
        "| raw pull-consume + ack of them: one durable pull consumer, batches of 1,000, each acked | {:.0} /s |",
        floors.pull_ack
    );
    println!(
        "| raw multi-row insert, 1,000 rows a statement (jsonb, bigserial key): the events / the site checks of part 2 | {:.0} / {:.0} rows/s |",
        floors.insert_events, floors.insert_checks
    );
    println!(
        "| raw COPY of the same documents (one jsonb column, no index): the events / the site checks | {:.0} / {:.0} rows/s |\n",
        floors.copy_events, floors.copy_checks
    );

    if !applied.is_empty() {
        println!("### 1. Each consumer applying a backlog\n");
        println!(
            "{n} events of the consumer's busiest kind published raw into the producer's stream while the service \
             was stopped; timed from the service's start (process start, migrations, connecting included) until \
             its consumer had nothing pending and nothing unacknowledged; rows counted afterwards.\n"
        );
        println!(
            "| consumer | kind (stream) | events | start → drained | applied /s | ÷ raw pull+ack | ÷ raw insert | ≥ 20,000/s | rows there |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        for a in &applied {
            let done =
                if a.left == 0 { format!("{:.2} s", a.secs) } else { format!("{:.0} s, {} left", a.secs, a.left) };
            println!(
                "| {} | `{}` ({}) | {} | {done} | {:.0} | {:.2} | {:.2} | {} | {} of {}{} |",
                a.case.service,
                a.case.kind,
                a.case.producer,
                a.events,
                a.rate(),
                a.rate() / floors.pull_ack,
                a.rate() / floors.insert_events,
                met(a.left == 0 && a.rate() >= 20_000.0),
                a.rows,
                a.events,
                if a.dead_letters > 0 { format!(", {} dead letters", a.dead_letters) } else { String::new() }
            );
        }
        println!("\nWhere the time went (the consumer's own metrics, and CPU from `/proc`):\n");
        println!(
            "| consumer | ready after | batches (mean size) | in the handler | service CPU | its Postgres backends' CPU | rows read in its most read table, per event | peak memory |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for a in &applied {
            let applied_events = (a.events as u64 - a.left) as f64;
            println!(
                "| {} | {:.2} s | {:.0} ({:.0}) | {:.1} s ({:.0} %) | {:.1} s ({:.0} %) | {:.1} s ({:.0} %) | {:.0} (`{}.{}`) | {:.0} MiB |",
                a.case.service,
                a.ready_secs,
                a.batches,
                if a.batches > 0.0 { applied_events / a.batches } else { 0.0 },
                a.handler_secs,
                100.0 * a.handler_secs / a.secs,
                a.service_cpu,
                100.0 * a.service_cpu / a.secs,
                a.postgres_cpu,
                100.0 * a.postgres_cpu / a.secs,
                a.scanned.1 as f64 / applied_events.max(1.0),
                a.case.service,
                a.scanned.0,
                a.peak_mib
            );
        }
        println!();
    }

    if let Some(c) = &checked {
        let rate = c.checks as f64 / c.accepted_secs;
        println!("### 2. Site checks through the running stack\n");
        println!(
            "All five services (deploy/up's settings, gathering window {} ms), a webhook receiver for every city; \
             {} site checks ({} problems) from {TEAMS} teams in batches of {BATCH}, {} in flight.\n",
            c.window, c.checks, c.problems, c.concurrency
        );
        println!("| measure | measured | floor | ratio | target | met? |");
        println!("|---|---|---|---|---|---|");
        println!(
            "| site checks accepted (answered) | {rate:.0} /s | {:.0} /s raw COPY | {:.2} | ≥ 25,000/s, or ≥ 0.3 of the floor | {} |",
            floors.copy_checks,
            rate / floors.copy_checks,
            met(rate >= 25_000.0 || rate / floors.copy_checks >= 0.3)
        );
        let fmt = |s: Option<f64>| s.map_or("not within 180 s".to_string(), |s| format!("{s:.2} s"));
        println!(
            "| last answer → every consumer of every stream has applied everything published, no outbox holds an unsent event | {} | | | ≤ 2 s | {} |",
            fmt(c.drained_secs),
            met(c.drained_secs.is_some_and(|s| s <= 2.0))
        );
        println!(
            "| last answer → … and every problem on a sheet, every sheet applied (includes the {} ms gathering window) | {} | | | | |",
            c.window,
            fmt(c.settled_secs)
        );
        println!("| largest lag seen while draining | {} events ({}) | | | | |\n", c.worst.1, c.worst.0);
    }

    if let Some(l) = &latency {
        let (mut ledger, mut notice) = (l.ledger.clone(), l.notice.clone());
        let (lp50, lp99) = (percentile(&mut ledger, 0.5), percentile(&mut ledger, 0.99));
        let (np50, np99) = (percentile(&mut notice, 0.5), percentile(&mut notice, 0.99));
        let window = l.window as f64 / 1000.0;
        let trend = slope(&l.lag);
        let grows = trend * l.sending_secs > 1_000.0;
        let max_lag = l.lag.iter().map(|p| p.1).max().unwrap_or(0);
        let end_lag = l.lag.last().map_or(0, |p| p.1);
        println!("### 3. Latency at 1,000 problems/s\n");
        println!(
            "All five services, gathering window {} ms, a webhook receiver for every city; 100 problems (each in a \
             check of its own) every 100 ms, round-robin over the 39 cities. From the moment a batch's answer \
             came: to the ledger entry first seen by a poller on its own connection (every 10 ms), and to the \
             handover notice at the receiver.\n",
            l.window
        );
        println!("| measure | measured | target | met? |");
        println!("|---|---|---|---|");
        println!(
            "| problems sent | {} in {:.1} s ({:.0} /s) | 1,000/s | |",
            l.problems,
            l.sending_secs,
            l.problems as f64 / l.sending_secs
        );
        let missing = |v: &[f64]| v.iter().filter(|x| !x.is_finite()).count();
        if missing(&ledger) + missing(&notice) > 0 {
            println!(
                "| not seen within 180 s of the last answer | {} on the ledger, {} notified | none | **no** |",
                missing(&ledger),
                missing(&notice)
            );
        }
        println!(
            "| report → ledger entry | p50 {}, p99 {} | p99 < 250 ms | {} |",
            ms(lp50),
            ms(lp99),
            met(lp99 < 0.25)
        );
        println!(
            "| report → handover notice | p50 {}, p99 {} | p99 < window + 250 ms = {} | {} |",
            ms(np50),
            ms(np99),
            ms(window + 0.25),
            met(np99 < window + 0.25)
        );
        println!(
            "| consumer lag, all consumers, sampled each second while sending | max {max_lag}, at the end {end_lag}, trend {trend:+.0} events/s | does not grow | {} |",
            met(!grows)
        );
        println!(
            "| public log entries appended by publication's writer | {:.0} in {:.1} s of writer passes: {:.0} /s of writer time | | |",
            l.log_appended,
            l.log_writer_secs,
            l.log_appended / l.log_writer_secs.max(1e-9)
        );
        println!(
            "| on disk afterwards (these problems, each in a check of its own, and the campaign set-up) | database {:.0} MiB, streams {:.0} MiB (one replica): {:.1} / {:.1} KiB per problem | | |",
            l.database_bytes as f64 / 1048576.0,
            l.stream_bytes as f64 / 1048576.0,
            l.database_bytes as f64 / 1024.0 / l.problems.max(1) as f64,
            l.stream_bytes as f64 / 1024.0 / l.problems.max(1) as f64
        );
        let worst: Vec<String> = l.worst.iter().filter(|(_, w)| **w > 0).map(|(c, w)| format!("{c} {w}")).collect();
        println!(
            "\nLargest lag of each consumer (events): {}.\n",
            if worst.is_empty() { "none".into() } else { worst.join(", ") }
        );
        println!("```mermaid\nxychart-beta\n    title \"Consumer lag while sending (events, all consumers)\"");
        println!("    x-axis \"second\" 0 --> {:.0}", l.sending_secs.ceil());
        println!("    y-axis \"events\" 0 --> {}", (max_lag + 1).max(10));
        println!("    line [{}]", l.lag.iter().map(|p| p.1.to_string()).collect::<Vec<_>>().join(", "));
        println!("```\n");
    }

    println!("### 4. Peak resident memory (VmHWM, MiB)\n");
    println!("| service | its backlog (part 1) | checks (part 2) | latency (part 3) | < 150 MB |");
    println!("|---|---|---|---|---|");
    for service in SERVICES {
        let backlog = applied.iter().find(|a| a.case.service == service).map(|a| a.peak_mib);
        let of =
            |peaks: Option<&Vec<(&str, f64)>>| peaks.and_then(|p| p.iter().find(|(s, _)| *s == service)).map(|p| p.1);
        let figures = [backlog, of(checked.as_ref().map(|c| &c.peaks)), of(latency.as_ref().map(|l| &l.peaks))];
        let cells: Vec<String> = figures.iter().map(|f| f.map_or("—".into(), |m| format!("{m:.0}"))).collect();
        let most = figures.iter().flatten().copied().fold(0.0, f64::max);
        println!(
            "| {service} | {} | {} | {} | {} |",
            cells[0],
            cells[1],
            cells[2],
            met(most < 150.0 * 1e6 / 1048576.0)
        );
    }
    println!();
}
