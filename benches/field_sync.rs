//! The end-of-day burst: many field devices come back into signal at once and send their queues
//! of site checks through the one origin (`/api/intake/…` of `serve workbench`), each in order,
//! in batches, waiting `Retry-After` when told to. A load generator stands in for the phones.
//!
//! `cargo bench --bench field_sync` (about a minute), or with `-- --devices 300 --checks 100
//! --batch 50`. Intake and the origin run as release processes on a private nats-server and a
//! fresh database. Then every queue is sent a second time: nothing new may be created. The
//! floor, in the same run: the same number of checks sent straight to intake in batches of
//! 1,000, 4 in flight (the best the batch API does on this machine), and a raw COPY of the same
//! documents. Prints a Markdown section for docs/benchmarks.md.

mod common;

use common::{TEAMS, copy_rate, percentile, set_up_round, synthetic_day};

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use shared::auth::Role;
use shared::testing::{Stack, StackOptions};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// What one device saw while it sent its queue.
#[derive(Default)]
struct Device {
    /// Seconds from the burst's start until its last batch was answered 200.
    done_secs: f64,
    /// Answers by status (503 with Retry-After is what the admission limit gives).
    answers: HashMap<u16, u64>,
    /// Item results by status (`created`, `already_had`, …).
    results: HashMap<String, u64>,
}

/// Every device sends its queue at once, in order, `batch` checks a request; a refused batch is
/// sent again after its `Retry-After`.
async fn burst(url: &str, queues: &[(String, Vec<Value>)], batch: usize) -> (f64, Vec<Device>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(queues.len())
        .build()
        .expect("client");
    let started = Instant::now();
    let devices = futures::future::join_all(queues.iter().map(|(token, checks)| {
        let client = client.clone();
        async move {
            let mut device = Device::default();
            for chunk in checks.chunks(batch) {
                let body = json!({ "items": chunk });
                loop {
                    let response = client.post(url).bearer_auth(token).json(&body).send().await.expect("answered");
                    let status = response.status().as_u16();
                    *device.answers.entry(status).or_default() += 1;
                    if status == 200 {
                        let answer: Value = response.json().await.expect("json");
                        for result in answer["results"].as_array().expect("results") {
                            *device.results.entry(result["status"].as_str().unwrap_or("?").to_string()).or_default() +=
                                1;
                        }
                        break;
                    }
                    assert_eq!(status, 503, "{}", response.text().await.unwrap_or_default());
                    let wait = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                        .expect("a 503 says when to come back");
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                }
            }
            device.done_secs = started.elapsed().as_secs_f64();
            device
        }
    }))
    .await;
    (started.elapsed().as_secs_f64(), devices)
}

/// The floor: the same checks straight to intake, each team's 1,000 a batch, 4 in flight.
async fn straight(stack: &Stack, day: Vec<(usize, Value)>) -> f64 {
    let url = format!("{}/v1/inspections/batch", stack.url("intake"));
    let mut by_team: Vec<Vec<Value>> = vec![vec![]; TEAMS];
    for (team, check) in day {
        by_team[team].push(check);
    }
    let mut batches = Vec::new();
    for (team, checks) in by_team.iter().enumerate() {
        let token = stack.token(Role::Inspector, Some(&format!("T-{team:02}")), None);
        batches.extend(checks.chunks(1000).map(|c| (token.clone(), c.to_vec())));
    }
    let started = Instant::now();
    futures::stream::iter(batches)
        .for_each_concurrent(4, |(token, items)| {
            let request = stack.http.post(&url).bearer_auth(token).json(&json!({ "items": items }));
            async move {
                let response = request.send().await.expect("batch sent");
                assert!(response.status().is_success(), "{}", response.text().await.unwrap_or_default());
            }
        })
        .await;
    started.elapsed().as_secs_f64()
}

fn total(devices: &[Device], f: impl Fn(&Device) -> u64) -> u64 {
    devices.iter().map(f).sum()
}

#[tokio::main]
async fn main() {
    let devices = arg("--devices", 300);
    let per_device = arg("--checks", 100);
    let batch = arg("--batch", 50);
    let n = devices * per_device;
    let mut options = StackOptions { only: Some(vec!["intake"]), workbench: true, ..Default::default() };
    options.env.push(("SKYLEDGER__DATABASE_MAX_CONNECTIONS".into(), "10".into()));
    options.env.push(("RUST_LOG".into(), "warn".into()));
    let stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), options).await;
    set_up_round(&stack).await;

    // Each device a member of one of the teams, with its queue of the team's checks.
    let day = synthetic_day(n, 7);
    let mut queues: Vec<(String, Vec<Value>)> = (0..devices)
        .map(|d| (stack.token(Role::Inspector, Some(&format!("T-{:02}", d % TEAMS)), None), Vec::new()))
        .collect();
    let mut next_of_team: HashMap<usize, usize> = HashMap::new();
    for (team, check) in day {
        // Devices d ≡ team (mod TEAMS) belong to that team; its checks go to them in turn.
        let members: Vec<usize> = (0..devices).filter(|d| d % TEAMS == team).collect();
        let turn = next_of_team.entry(team).or_default();
        queues[members[*turn % members.len()]].1.push(check);
        *turn += 1;
    }
    let problems: usize = queues.iter().flat_map(|q| &q.1).map(|c| c["problems"].as_array().map_or(0, Vec::len)).sum();

    let url = format!("{}/api/intake/v1/inspections/batch", stack.origin());
    eprintln!("field sync: {devices} devices × {per_device} checks through {url}");
    let (secs, first) = burst(&url, &queues, batch).await;
    let created = total(&first, |d| d.results.get("created").copied().unwrap_or(0));
    let refusals = total(&first, |d| d.answers.get(&503).copied().unwrap_or(0));
    let requests = total(&first, |d| d.answers.values().sum());
    let mut done: Vec<f64> = first.iter().map(|d| d.done_secs).collect();
    let (p50, p99, last) = (percentile(&mut done, 0.5), percentile(&mut done, 0.99), percentile(&mut done, 1.0));
    let pool = stack.db.pool().await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM intake.inspections").fetch_one(&pool).await.unwrap();
    eprintln!("first send: {secs:.1} s, {created} created, {refusals} answers 503, {stored} stored");

    let (again_secs, again) = burst(&url, &queues, batch).await;
    let already = total(&again, |d| d.results.get("already_had").copied().unwrap_or(0));
    let created_again = total(&again, |d| d.results.get("created").copied().unwrap_or(0));
    let stored_after: i64 =
        sqlx::query_scalar("SELECT count(*) FROM intake.inspections").fetch_one(&pool).await.unwrap();
    pool.close().await;

    // The floors, in the same run and database: fresh copies of the same checks (new ids).
    let fresh = synthetic_day(n, 8);
    let documents: Vec<String> = fresh.iter().map(|(_, c)| c.to_string()).collect();
    let straight_secs = straight(&stack, fresh).await;
    let floor_pool = stack.db.pool().await;
    let copy_secs = n as f64 / copy_rate(&floor_pool, &documents).await;
    floor_pool.close().await;

    let rate = n as f64 / secs;
    let command =
        format!("cargo bench --bench field_sync -- --devices {devices} --checks {per_device} --batch {batch}");
    println!("## The end-of-day burst: field devices syncing through the one origin (issue 14)\n");
    println!(
        "`{command}` — one run, {}, 2 cores. {devices} devices, each with a queue of {per_device} site checks \
         ({problems} problems among the {n}), all start at once and send their queues in order, {batch} checks a \
         request, to `/api/intake/v1/inspections/batch` of the one origin (release build of intake and the \
         origin, a private nats-server, a fresh database); a 503 is sent again after its `Retry-After`. Then every \
         queue is sent again.\n",
        time::OffsetDateTime::now_utc().date()
    );
    println!("| measure | measured | floor | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| {n} checks synced by {devices} devices at once | {secs:.1} s: {rate:.0} checks/s | straight to intake, 1,000 a batch, 4 in flight: {:.0} /s | {:.2} |",
        n as f64 / straight_secs,
        rate / (n as f64 / straight_secs)
    );
    println!(
        "| … against a raw COPY of the same documents | | {:.0} /s | {:.3} |",
        n as f64 / copy_secs,
        secs.recip() * copy_secs
    );
    println!(
        "| a device's whole queue answered, from the burst's start | p50 {p50:.1} s, p99 {p99:.1} s, last {last:.1} s | | |"
    );
    println!("| requests, of which answered 503 + `Retry-After` | {requests}, {refusals} | | |");
    println!("| checks created / stored in intake | {created} / {stored} | | |");
    println!(
        "| every queue sent again: created / already had / stored afterwards / took | {created_again} / {already} / {stored_after} / {again_secs:.1} s | | |\n"
    );
    assert_eq!(created as usize, n, "every check created once");
    assert_eq!(stored as usize, n);
    assert_eq!((created_again, stored_after as usize), (0, n), "a resend creates nothing");
}
