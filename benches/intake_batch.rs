//! A synthetic day of a round pushed through the intake batch API, against the floor of this
//! machine: a raw COPY of the same JSON documents into one Postgres table.
//!
//! `cargo bench --bench intake_batch` (add `-- --checks 60000` to change the day's size). Runs
//! the intake service as a release process on a private nats-server and a fresh database; a site
//! check counts as accepted when it is durably in Postgres and its events are out in JetStream.
//! Prints a Markdown section for docs/benchmarks.md.

mod common;

use common::{TEAMS, copy_rate, set_up_round, synthetic_day};

use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use shared::auth::Role;
use shared::testing::{Stack, StackOptions, TestDatabase};

const BATCH: usize = 1000;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    shared::testing::memory_kib(pid, "VmRSS:")
}

/// Pushes the day through the batch API; returns (seconds until every batch was answered,
/// seconds until every event was out, peak RSS of intake in MiB).
async fn push_day(stack: &Stack, day: Vec<(usize, Value)>, concurrency: usize) -> (f64, f64, f64) {
    let pool = stack.db.pool().await;
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
    let pid = stack.services["intake"].pid().expect("intake runs");
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(rss_kib(pid)));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let url = format!("{}/v1/inspections/batch", stack.url("intake"));
    let started = Instant::now();
    futures::stream::iter(batches)
        .for_each_concurrent(concurrency, |(token, items)| {
            let request = stack.http.post(&url).bearer_auth(token).json(&json!({ "items": items }));
            async move {
                let response = request.send().await.expect("batch sent");
                assert!(response.status().is_success(), "{}", response.text().await.unwrap_or_default());
            }
        })
        .await;
    let accepted = started.elapsed().as_secs_f64();
    loop {
        let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM intake.outbox WHERE sent_at IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
        if unsent == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = started.elapsed().as_secs_f64();
    sampler.abort();
    pool.close().await;
    (accepted, out, peak.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1024.0)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

#[tokio::main]
async fn main() {
    let checks = arg("--checks", 60_000);
    let runs = arg("--runs", 3);
    // Teams sync side by side at the end of the day: batches in flight at once.
    let concurrency = arg("--concurrency", 8);
    let mut options = StackOptions { only: Some(vec!["intake"]), ..Default::default() };
    // The service's own default pool, not the tests' small one.
    options.env.push(("SKYLEDGER__DATABASE_MAX_CONNECTIONS".into(), "10".into()));
    let stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), options).await;
    set_up_round(&stack).await;
    let floor_db = TestDatabase::create().await;
    let floor_pool = floor_db.pool().await;

    let (mut accepted, mut out, mut floors, mut peaks) = (vec![], vec![], vec![], vec![]);
    let rss_before = rss_kib(stack.services["intake"].pid().unwrap()) as f64 / 1024.0;
    for run in 0..runs {
        let day = synthetic_day(checks, 42 + run as u64);
        let documents: Vec<String> = day.iter().map(|(_, c)| c.to_string()).collect();
        floors.push(copy_rate(&floor_pool, &documents).await);
        let (a, o, peak) = push_day(&stack, day, concurrency).await;
        accepted.push(checks as f64 / a);
        out.push(checks as f64 / o);
        peaks.push(peak);
        eprintln!(
            "run {}: {:.0} checks/s accepted, {:.0}/s with events out, floor {:.0}/s, intake peak {:.0} MiB",
            run + 1,
            accepted[run],
            out[run],
            floors[run],
            peak
        );
    }
    let rss_after = rss_kib(stack.services["intake"].pid().unwrap()) as f64 / 1024.0;
    let (a, o, f) = (median(accepted), median(out), median(floors));
    println!("## Intake: a synthetic day through the batch API\n");
    println!(
        "`cargo bench --bench intake_batch -- --checks {checks} --runs {runs} --concurrency {concurrency}`: {checks} site checks (about one in"
    );
    println!(
        "thirteen with a problem) from {TEAMS} teams in batches of {BATCH}, {concurrency} batches in flight, against"
    );
    println!("the intake service (release build) on a private nats-server and a fresh database on this machine.");
    println!("Medians of {runs} runs in one process.\n");
    println!("| measure | median |");
    println!("|---|---|");
    println!("| site checks accepted (answered, durably in Postgres) | {a:.0} /s |");
    println!("| site checks accepted with their events out in JetStream | {o:.0} /s |");
    println!("| floor: raw COPY of the same JSON documents into one table | {f:.0} /s |");
    println!("| accepted with events out, as a share of the floor | {:.0} % |", 100.0 * o / f);
    println!(
        "| intake resident memory: before, peak, after | {rss_before:.0} / {:.0} / {rss_after:.0} MiB |",
        peaks.iter().cloned().fold(0.0, f64::max)
    );
}
