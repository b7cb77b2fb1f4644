//! A campaign year end to end, with all five services, NATS and Postgres on this machine.
//!
//! `cargo bench --bench campaign_year` (`-- --scale 0.1` for a tenth of the year). In one run:
//! 1. the year: `skyledger simulate` on the simulated clock against a fresh stack whose 39
//!    cities' webhooks point at a receiver here: site checks accepted per second, problems per
//!    second to delivered notice and to public record, peak memory of each service;
//! 2. latency: on a second, fresh stack on the real clock, 1,000 problems a second for ten
//!    seconds; p50/p99 from report to ledger entry and from report to notice;
//!    and where the services' request time went, by route (from their `/metrics`);
//! 3. the floor: the year's site checks (the same documents) inserted raw, 1,000 rows a
//!    statement, into one Postgres table, and the same events published raw to JetStream.
//!
//! Prints a Markdown section for docs/benchmarks.md.

mod common;

use common::{notified, percentile, register_recipients};

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use shared::auth::Role;
use shared::testing::{NatsServer, Stack, StackOptions, TestDatabase, WebhookReceiver, memory_kib};
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_skyledger");
/// The gathering window the year and the latency run use (the default is 10 s).
const GATHERING_MILLIS: u64 = 1_000;

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn options(simulated_clock: bool) -> StackOptions {
    StackOptions {
        env: vec![
            ("SKYLEDGER__ASSIGNMENT__GATHERING_WINDOW_MILLIS".into(), GATHERING_MILLIS.to_string()),
            ("SKYLEDGER__PUBLICATION__CHECKPOINT_INTERVAL_MILLIS".into(), "1000".into()),
            ("SKYLEDGER__CLOCK__SIMULATED".into(), simulated_clock.to_string()),
            ("RUST_LOG".into(), "warn".into()),
        ],
        ..StackOptions::default()
    }
}

fn peak_mib(stack: &Stack) -> Vec<(&'static str, f64)> {
    shared::testing::SERVICES
        .iter()
        .map(|s| (*s, memory_kib(stack.services[s].pid().unwrap_or(0), "VmHWM:") as f64 / 1024.0))
        .collect()
}

struct Year {
    secs: f64,
    report: Value,
    checks_per_sec: f64,
    to_notice_per_sec: f64,
    to_public_per_sec: f64,
    peaks: Vec<(&'static str, f64)>,
    /// The services' request time by route, largest first.
    routes: Vec<RouteTime>,
}

async fn year(scale: f64) -> Year {
    let stack = Stack::start(Path::new(BIN), options(true)).await;
    let receiver = WebhookReceiver::start(vec![]).await;
    register_recipients(&stack, &receiver).await;
    eprintln!("the year at scale {scale}…");
    let started = Instant::now();
    let output = tokio::process::Command::new(BIN)
        .args(["simulate", "--scale", &scale.to_string(), "--settle-secs", "600"])
        .args(["--intake", &stack.url("intake"), "--assignment", &stack.url("assignment")])
        .args(["--verification", &stack.url("verification"), "--publication", &stack.url("publication")])
        .env("SKYLEDGER_SIGNING_KEY", stack.signer.seed_hex())
        .env("SKYLEDGER_CONFIG", "/nonexistent/skyledger.toml")
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .expect("simulate runs");
    let secs = started.elapsed().as_secs_f64();
    let routes = request_time(&stack).await;
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("simulate's report: {}\n{}", String::from_utf8_lossy(&output.stdout), stack.logs()));
    assert!(output.status.success() && report["agree"] == true, "the year did not settle: {report}");
    let problems = report["sent"]["problems_found"].as_f64().unwrap_or(0.0);
    let notices = notified(&receiver);
    let last_notice = notices.values().max().map_or(secs, |at| at.duration_since(started).as_secs_f64());
    let check_secs = report["phases"]["site checks"].as_f64().unwrap_or(secs);
    Year {
        secs,
        checks_per_sec: report["sent"]["site_checks"].as_f64().unwrap_or(0.0) / check_secs,
        to_notice_per_sec: notices.len() as f64 / last_notice,
        to_public_per_sec: problems / secs,
        peaks: peak_mib(&stack),
        routes,
        report,
    }
}

/// Where the year's request time went: each service's `http_request_duration_seconds` summed
/// by route (from its `/metrics`), largest total first.
async fn request_time(stack: &Stack) -> Vec<RouteTime> {
    let mut routes = Vec::new();
    for service in shared::testing::SERVICES {
        let Ok(answer) = stack.http.get(format!("{}/metrics", stack.url(service))).send().await else { continue };
        let text = answer.text().await.unwrap_or_default();
        let mut by_route: HashMap<String, (f64, f64)> = HashMap::new();
        for line in text.lines() {
            let (series, value) = match line.rsplit_once(' ') {
                Some((series, value)) => (series, value.parse::<f64>().unwrap_or(0.0)),
                None => continue,
            };
            let (is_sum, labels) = if let Some(l) = series.strip_prefix("http_request_duration_seconds_sum") {
                (true, l)
            } else if let Some(l) = series.strip_prefix("http_request_duration_seconds_count") {
                (false, l)
            } else {
                continue;
            };
            let label = |name: &str| {
                labels.split(&format!("{name}=\"")).nth(1).and_then(|rest| rest.split('"').next()).unwrap_or("")
            };
            let entry = by_route.entry(format!("{} {}", label("method"), label("route"))).or_default();
            if is_sum { entry.0 += value } else { entry.1 += value }
        }
        routes.extend(by_route.into_iter().map(|(route, (seconds, count))| RouteTime {
            service,
            route,
            seconds,
            count,
        }));
    }
    routes.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    routes
}

struct RouteTime {
    service: &'static str,
    route: String,
    seconds: f64,
    count: f64,
}

struct Latency {
    problems: usize,
    ledger_p50: f64,
    ledger_p99: f64,
    notice_p50: f64,
    notice_p99: f64,
    peaks: Vec<(&'static str, f64)>,
}

/// 1,000 problems a second for ten seconds, spread over the 39 cities, each in a check of its own.
async fn latency() -> Latency {
    let stack = Stack::start(Path::new(BIN), options(false)).await;
    let receiver = WebhookReceiver::start(vec![]).await;
    register_recipients(&stack, &receiver).await;
    let cities = shared::reference::cities();
    let admin = stack.admin();
    let put = |path: String, body: Value| {
        let request = stack.http.put(format!("{}{path}", stack.url("intake"))).bearer_auth(&admin).json(&body);
        async move { assert!(request.send().await.expect("set-up").status().is_success()) }
    };
    let today = time::OffsetDateTime::now_utc().to_offset(shared::clock::SHANGHAI).date();
    let codes: Vec<&str> = cities.iter().map(|c| c.code.as_str()).collect();
    put(
        "/v1/rounds/lat-R01".into(),
        json!({ "starts_on": today, "ends_on": today, "kind": "regular", "cities": codes }),
    )
    .await;
    // Team t, from a province outside the campaign, covers city t.
    for (t, city) in cities.iter().enumerate() {
        put(format!("/v1/teams/L-{t:02}"), json!({ "home_province": "320000", "members": ["a", "b", "c"] })).await;
        put(format!("/v1/rounds/lat-R01/teams/L-{t:02}"), json!({ "cities": [city.code] })).await;
    }
    let mut sent: HashMap<String, (Instant, time::OffsetDateTime)> = HashMap::new();
    let url = format!("{}/v1/inspections/batch", stack.url("intake"));
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let checked_at = shared::csv::timestamp(time::OffsetDateTime::now_utc() - time::Duration::minutes(5));
    for step in 0..100usize {
        tick.tick().await;
        // A tenth of a second's 100 problems: one batch per city team, round-robin.
        let t = step % cities.len();
        let city = &cities[t];
        let items: Vec<Value> = (0..100)
            .map(|i| {
                json!({ "id": Uuid::now_v7(), "round": "lat-R01", "team": format!("L-{t:02}"), "city_code": city.code,
                        "checked_at": checked_at,
                        "site": { "name": format!("时延点位 {step}-{i}"), "lat": city.lat, "lon": city.lon },
                        "problems": [{ "id": Uuid::now_v7(), "category": "dust", "severity": "general", "description": "扬尘" }] })
            })
            .collect();
        let now = (Instant::now(), time::OffsetDateTime::now_utc());
        for item in &items {
            sent.insert(item["problems"][0]["id"].as_str().unwrap_or_default().to_string(), now);
        }
        let request = stack
            .http
            .post(&url)
            .bearer_auth(stack.token(Role::Inspector, Some(&format!("L-{t:02}")), None))
            .json(&json!({ "items": items }));
        in_flight.push(async move { request.send().await.map(|r| r.status().is_success()) });
        while let Some(Some(done)) = futures::FutureExt::now_or_never(in_flight.next()) {
            assert!(matches!(done, Ok(true)), "a latency batch failed");
        }
    }
    while let Some(done) = in_flight.next().await {
        assert!(matches!(done, Ok(true)), "a latency batch failed");
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let notices = loop {
        let notices = notified(&receiver);
        if notices.len() >= sent.len() || Instant::now() > deadline {
            break notices;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut to_notice: Vec<f64> = notices
        .iter()
        .filter_map(|(id, at)| Some(at.duration_since(sent.get(&id.to_string())?.0).as_secs_f64()))
        .collect();
    let ledger: Value = stack
        .http
        .get(format!("{}/v1/ledger?round=lat-R01", stack.url("assignment")))
        .bearer_auth(stack.admin())
        .send()
        .await
        .expect("ledger")
        .json()
        .await
        .expect("ledger json");
    let mut to_ledger: Vec<f64> = ledger["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let received =
                time::OffsetDateTime::parse(e["received_at"].as_str()?, &time::format_description::well_known::Rfc3339)
                    .ok()?;
            Some((received - sent.get(e["problem_id"].as_str()?)?.1).as_seconds_f64())
        })
        .collect();
    assert_eq!(to_ledger.len(), sent.len(), "every problem is on the ledger");
    assert_eq!(to_notice.len(), sent.len(), "every problem was notified");
    Latency {
        problems: sent.len(),
        ledger_p50: percentile(&mut to_ledger, 0.5),
        ledger_p99: percentile(&mut to_ledger, 0.99),
        notice_p50: percentile(&mut to_notice, 0.5),
        notice_p99: percentile(&mut to_notice, 0.99),
        peaks: peak_mib(&stack),
    }
}

struct Floor {
    insert_rows_per_sec: f64,
    publish_events_per_sec: f64,
}

/// The year's checks inserted raw and their events published raw: what this machine can do
/// with no service in between.
async fn floor(scale: f64) -> Floor {
    let output = std::process::Command::new(BIN)
        .args(["simulate", "--scale", &scale.to_string(), "--write-checks", "-"])
        .output()
        .expect("simulate --write-checks");
    let checks: Vec<String> = String::from_utf8(output.stdout).expect("UTF-8").lines().map(str::to_string).collect();
    let problems: Vec<String> = checks
        .iter()
        .flat_map(|c| {
            let check: Value = serde_json::from_str(c).expect("a check");
            check["problems"].as_array().cloned().unwrap_or_default().into_iter().map(|p| p.to_string())
        })
        .collect();

    let db = TestDatabase::create().await;
    let pool = db.pool().await;
    sqlx::query("CREATE TABLE floor (id bigserial PRIMARY KEY, doc jsonb NOT NULL)").execute(&pool).await.unwrap();
    let started = Instant::now();
    for chunk in checks.chunks(1_000) {
        sqlx::query("INSERT INTO floor (doc) SELECT unnest($1::text[])::jsonb")
            .bind(chunk)
            .execute(&pool)
            .await
            .expect("floor insert");
    }
    let insert_rows_per_sec = checks.len() as f64 / started.elapsed().as_secs_f64();

    let nats = NatsServer::start();
    let js = async_nats::jetstream::new(nats.client().await);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "FLOOR".into(),
        subjects: vec!["floor.>".into()],
        ..Default::default()
    })
    .await
    .expect("floor stream");
    let events: Vec<(&str, &String)> =
        checks.iter().map(|c| ("floor.inspection", c)).chain(problems.iter().map(|p| ("floor.problem", p))).collect();
    let started = Instant::now();
    for chunk in events.chunks(1_000) {
        let mut acks = Vec::with_capacity(chunk.len());
        for (subject, payload) in chunk {
            acks.push(js.publish(*subject, payload.as_bytes().to_vec().into()).await.expect("publish"));
        }
        for ack in acks {
            ack.await.expect("ack");
        }
    }
    let publish_events_per_sec = events.len() as f64 / started.elapsed().as_secs_f64();
    Floor { insert_rows_per_sec, publish_events_per_sec }
}

#[tokio::main]
async fn main() {
    shared::install_crypto_provider();
    let scale = arg("--scale", 1.0);
    let year = year(scale).await;
    let latency = latency().await;
    let floor = floor(scale).await;

    let sent = &year.report["sent"];
    let problems = sent["problems_found"].as_f64().unwrap_or(0.0);
    let checks = sent["site_checks"].as_f64().unwrap_or(0.0);
    let year_peak = year.peaks.iter().map(|(_, m)| *m).fold(0.0, f64::max);
    let latency_peak = latency.peaks.iter().map(|(_, m)| *m).fold(0.0, f64::max);
    let command = if scale == 1.0 {
        "cargo bench --bench campaign_year".to_string()
    } else {
        format!("cargo bench --bench campaign_year -- --scale {scale}")
    };
    println!("## A campaign year end to end (issue 8)\n");
    println!("`{command}` — one run, {}, 2 cores.\n", time::OffsetDateTime::now_utc().date());
    println!(
        "The year: {} rounds, {checks} site checks, {problems} problems ({} reopened, {} overdue, {} closed), {} handover sheets, replayed by `skyledger simulate --scale {scale}` on the simulated clock with a {GATHERING_MILLIS} ms gathering window.\n",
        sent["rounds"], sent["reopened"], sent["overdue"], sent["closed"], year.report["handover_sheets"]
    );
    println!("| figure | measured | floor | ratio | target |");
    println!("|---|---|---|---|---|");
    println!("| the year, replayed | {:.0} s | | | ≤ 90 s |", year.secs);
    println!(
        "| site checks accepted | {:.0} /s | {:.0} rows/s raw insert | {:.2} | |",
        year.checks_per_sec,
        floor.insert_rows_per_sec,
        year.checks_per_sec / floor.insert_rows_per_sec
    );
    println!(
        "| events out (checks + problems) | {:.0} /s | {:.0} /s raw JetStream publish | {:.2} | |",
        (checks + problems) / year.report["phases"]["site checks"].as_f64().unwrap_or(year.secs),
        floor.publish_events_per_sec,
        (checks + problems)
            / year.report["phases"]["site checks"].as_f64().unwrap_or(year.secs)
            / floor.publish_events_per_sec
    );
    println!("| problems, report → delivered notice | {:.0} /s | | | |", year.to_notice_per_sec);
    println!("| problems, report → public record (settled) | {:.0} /s | | | |", year.to_public_per_sec);
    println!(
        "| at 1,000 problems/s ({} problems): report → ledger entry | p50 {:.3} s, p99 {:.3} s | | | p99 < 1 s |",
        latency.problems, latency.ledger_p50, latency.ledger_p99
    );
    println!(
        "| at 1,000 problems/s: report → notice | p50 {:.2} s, p99 {:.2} s | | | p99 < window {:.0} s + 1 s |",
        latency.notice_p50,
        latency.notice_p99,
        GATHERING_MILLIS as f64 / 1000.0
    );
    println!(
        "| peak resident memory, any service | {year_peak:.0} MiB (year), {latency_peak:.0} MiB (latency) | | | < 150 MB |\n"
    );
    println!("Phases of the year (seconds): {}\n", year.report["phases"]);
    println!(
        "Where the year's request time went (each service's `http_request_duration_seconds` by route; the simulator keeps up to 8 batches in flight):\n"
    );
    println!("| service | route | requests | total | mean |");
    println!("|---|---|---|---|---|");
    for r in year.routes.iter().take(8) {
        println!(
            "| {} | `{}` | {:.0} | {:.1} s | {:.1} ms |",
            r.service,
            r.route,
            r.count,
            r.seconds,
            1000.0 * r.seconds / r.count.max(1.0)
        );
    }
    println!();
    println!("Peak resident memory per service (MiB, VmHWM):\n");
    println!("| service | the year | the latency run |");
    println!("|---|---|---|");
    for ((service, y), (_, l)) in year.peaks.iter().zip(&latency.peaks) {
        println!("| {service} | {y:.0} | {l:.0} |");
    }
    println!("\n```mermaid\nxychart-beta\n    title \"Peak resident memory (MiB): the year\"");
    println!("    x-axis [{}]", year.peaks.iter().map(|(s, _)| *s).collect::<Vec<_>>().join(", "));
    println!("    y-axis \"MiB\" 0 --> 150");
    println!("    bar [{}]", year.peaks.iter().map(|(_, m)| format!("{m:.0}")).collect::<Vec<_>>().join(", "));
    println!("```");
}
