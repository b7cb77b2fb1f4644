//! How long `skyledger verify-feed` takes against the size of the public log, and what appending
//! and signing a checkpoint cost. The log is made directly, not through the lifecycle: entries
//! signed with the log's key, their subtrees and frontier stored as publication's writer stores
//! them, then one signed checkpoint; the service (release build) is started on it and
//! `verify-feed` checks it from outside — entries, signatures, tiles, root — and once more with
//! the state of the previous size, proving the log only grew; then one problem's record alone
//! (`verify-feed --problem`: its entries and their inclusion proofs).
//!
//! `cargo bench --bench log_verify` (about 3 minutes), or `-- --sizes 10000,100000,300000`.
//! Prints a Markdown section for docs/benchmarks.md.

use std::path::Path;
use std::time::Instant;

#[path = "../tests/system/made_log.rs"]
mod made_log;

const BIN: &str = env!("CARGO_BIN_EXE_skyledger");
const ORIGIN: &str = "bench.skyledger.example/log";

fn sizes() -> Vec<u64> {
    let args: Vec<String> = std::env::args().collect();
    let given = args.iter().position(|a| a == "--sizes").and_then(|i| args.get(i + 1)).cloned();
    given.unwrap_or_else(|| "10000,100000,300000".into()).split(',').map(|s| s.parse().expect("a size")).collect()
}

/// Runs verify-feed; (seconds, its output), which must say ok.
fn verify(url: &str, state: &Path) -> (f64, String) {
    let started = Instant::now();
    let output = std::process::Command::new(BIN)
        .args(["verify-feed", url, "--state"])
        .arg(state)
        .output()
        .expect("run verify-feed");
    let secs = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success() && text.starts_with("ok:"), "{text}{}", String::from_utf8_lossy(&output.stderr));
    (secs, text.trim().to_string())
}

struct Row {
    size: u64,
    append_secs: f64,
    checkpoint_micros: f64,
    fresh_secs: f64,
    grown_secs: Option<f64>,
    /// `verify-feed --problem`, median of five, and how many entries that problem has.
    problem_secs: f64,
    problem_entries: usize,
}

#[tokio::main]
async fn main() {
    shared::install_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut stack, signer) = made_log::publication_with_key(Path::new(BIN), dir.path(), ORIGIN).await;
    let pool = stack.db.pool().await;
    let url = stack.url("publication");

    let mut log = made_log::MadeLog::default();
    let mut rows = Vec::new();
    let mut previous_state: Option<std::path::PathBuf> = None;
    for size in sizes() {
        // The writer must not run beside the bench's own appends.
        stack.kill("publication");
        let started = Instant::now();
        log.extend_to(&pool, &signer, size).await;
        let signing = Instant::now();
        signer.checkpoint(size as i64, &log.frontier.root(), 1_700_000_000_000);
        let checkpoint_micros = signing.elapsed().as_secs_f64() * 1e6;
        log.checkpoint(&pool, &signer, 1_700_000_000_000).await;
        let append_secs = started.elapsed().as_secs_f64();
        stack.restart("publication").await;

        // Once as a newcomer, once with what was verified at the previous size.
        let fresh_state = dir.path().join(format!("fresh-{size}.json"));
        let (fresh_secs, said) = verify(&url, &fresh_state);
        eprintln!("{size}: {said}");
        let grown_secs = previous_state.as_ref().map(|state| {
            let (secs, said) = verify(&url, state);
            assert!(said.contains("grew from"), "{said}");
            secs
        });
        previous_state = Some(fresh_state);
        // One problem's record (7–8 entries across the log at 300,000) as its page checks it:
        // the median of five runs of `verify-feed --problem`.
        let problem_n = rows.len() as u64 * 1_000 + 500;
        let problem = log.publish_problem(&pool, problem_n).await;
        let mut problem_secs: Vec<f64> = (0..5)
            .map(|_| {
                let started = Instant::now();
                let output = std::process::Command::new(BIN)
                    .args(["verify-feed", &url, "--problem", &problem.to_string()])
                    .output()
                    .expect("run verify-feed --problem");
                let said = String::from_utf8_lossy(&output.stdout).to_string();
                assert!(output.status.success() && said.starts_with("ok: problem"), "{said}");
                started.elapsed().as_secs_f64()
            })
            .collect();
        problem_secs.sort_by(f64::total_cmp);
        let problem_entries = (problem_n..size).step_by(made_log::PROBLEMS as usize).count();
        rows.push(Row {
            size,
            append_secs,
            checkpoint_micros,
            fresh_secs,
            grown_secs,
            problem_secs: problem_secs[2],
            problem_entries,
        });
    }
    pool.close().await;

    let command = {
        let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
        if args.is_empty() {
            "cargo bench --bench log_verify".into()
        } else {
            format!("cargo bench --bench log_verify -- {}", args.join(" "))
        }
    };
    println!("## Checking the public log: verify-feed against the log's size (issue 17)\n");
    println!(
        "`{command}` — one run, {}, 2 cores. Each log made directly (entries signed with the log's key, \
         subtrees, frontier and a signed checkpoint stored as the writer stores them), the publication service \
         (release build) started on it, then `skyledger verify-feed URL --state FILE`: every entry fetched \
         (pages of 1,000) and its hashes and signature checked, every level-0 tile fetched and held to the \
         entries, the root recomputed against the signed note; and again with the state of the previous size \
         (the log only grew: the first entries unchanged, the service's consistency proof holds).\n",
        time::OffsetDateTime::now_utc().date()
    );
    println!(
        "| entries | verify-feed, first time | entries/s | with the previous size's state | one problem's record (`--problem`, median of 5) | made directly (append, nodes, checkpoint) | signing the checkpoint |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.1} s | {:.0} | {} | {:.0} ms ({} entries) | {:.1} s | {:.0} µs |",
            r.size,
            r.fresh_secs,
            r.size as f64 / r.fresh_secs,
            r.grown_secs.map_or("—".into(), |s| format!("{s:.1} s")),
            r.problem_secs * 1000.0,
            r.problem_entries,
            r.append_secs,
            r.checkpoint_micros
        );
    }
    println!(
        "\n```mermaid\nxychart-beta\n    title \"verify-feed (s) against the log's size\"\n    x-axis [{}]\n    y-axis \"seconds\" 0 --> {:.0}\n    bar [{}]\n```\n",
        rows.iter().map(|r| r.size.to_string()).collect::<Vec<_>>().join(", "),
        rows.iter().map(|r| r.fresh_secs).fold(1.0, f64::max).ceil(),
        rows.iter().map(|r| format!("{:.1}", r.fresh_secs)).collect::<Vec<_>>().join(", ")
    );
}
