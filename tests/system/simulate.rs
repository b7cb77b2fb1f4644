//! `skyledger simulate --scale 0.01`: a small campaign year on the simulated clock, whose totals
//! must equal the public statistics afterwards.

use std::path::Path;

use serde_json::{Value, json};
use shared::testing::{Stack, StackOptions};

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_simulated_year_at_one_percent_matches_the_public_statistics() {
    let mut options = StackOptions::default();
    options.env.push(("SKYLEDGER__CLOCK__SIMULATED".into(), "true".into()));
    let stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), options).await;

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_skyledger"))
        .args(["simulate", "--scale", "0.01", "--seed", "7", "--settle-secs", "180"])
        .args(["--intake", &stack.url("intake"), "--assignment", &stack.url("assignment")])
        .args(["--verification", &stack.url("verification"), "--publication", &stack.url("publication")])
        .env("SKYLEDGER_SIGNING_KEY", stack.signer.seed_hex())
        .env("SKYLEDGER_CONFIG", "/nonexistent/skyledger.toml")
        .output()
        .await
        .expect("skyledger simulate runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "simulate failed:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&output.stderr).lines().rev().take(20).collect::<Vec<_>>().join("\n"),
        stack.logs()
    );
    let report: Value = serde_json::from_str(&stdout).expect("simulate prints its report as JSON");
    // How long the year took, and where: `cargo test … -- --nocapture` shows it.
    eprintln!("simulate --scale 0.01: {} s, phases {}", report["elapsed_secs"], report["phases"]);
    let sent = &report["sent"];
    // 1% of the campaign: 6,660 checks, 520 problems over 22 rounds, some fixes failed and
    // reopened, some late (overdue on the simulated clock), some still open.
    assert_eq!((sent["site_checks"].as_i64(), sent["problems_found"].as_i64()), (Some(6_660), Some(520)));
    assert_eq!(sent["rounds"], 22);
    for field in ["reopened", "overdue"] {
        assert!(sent[field].as_i64().unwrap_or(0) > 0, "the year has {field} problems: {report}");
    }
    assert!(sent["closed"].as_i64() < sent["problems_found"].as_i64(), "some are still open: {report}");
    assert_eq!(report["agree"], true, "{report}");

    // The public statistics, read here on their own, say the same.
    let (status, stats) = get(&stack, "publication", "/v1/stats", None).await;
    assert_eq!(status, 200);
    let summary = &stats["summary"];
    for field in ["rounds", "site_checks", "problems_found", "handed_over", "closed", "reopened", "overdue"] {
        assert_eq!(summary[field], sent[field], "{field}: the public summary {summary} against what was sent {sent}");
    }
    assert_eq!(summary["teams_deployed"], report["teams_deployed"]);
    // The office's acts at the year's end: three summonses held, each with a commitment not
    // kept; one special inspection linking three problems (the report agrees with the public
    // record, checked above).
    assert_eq!(
        (
            &sent["summonses_held"],
            &sent["commitments_unkept"],
            &sent["special_inspections"],
            &sent["special_inspection_findings"]
        ),
        (&json!(3), &json!(3), &json!(1), &json!(3)),
        "{sent}"
    );
    // The emergency-response round checked listed enterprises under a declared alert.
    assert!(sent["emergency_plan_checks"].as_i64().unwrap_or(0) > 0, "{sent}");
    assert_eq!(summary["emergency_plan_checks"], sent["emergency_plan_checks"], "{summary}");
    assert_eq!(summary["person_times"], report["teams_deployed"].as_i64().unwrap() * 3, "teams of three");

    // The clean-up registers: every third city clears its "两散" in the year, and the villages
    // not supplied are lagging.
    let registers = &stats["registers"];
    let all = |k: &str| registers.as_object().unwrap().values().map(|r| r[k].as_i64().unwrap()).sum::<i64>();
    assert_eq!(
        (all("total"), all("outstanding"), all("lagging")),
        (
            sent["register_items"].as_i64().unwrap(),
            sent["register_outstanding"].as_i64().unwrap(),
            sent["lagging_villages"].as_i64().unwrap()
        ),
        "{registers}"
    );
    assert!(sent["lagging_villages"].as_i64().unwrap() > 0, "{sent}");
    let scattered = &registers["scattered_enterprises"]["cities"];
    let cleared = scattered.as_object().unwrap().values().filter(|c| c["outstanding"] == 0).count();
    assert!(cleared >= 13, "every third of the 39 cities clears its scattered enterprises: {cleared}");
    let emergency = summary["emergency_plan_problems"].as_i64().unwrap_or(0);
    assert!((40..=90).contains(&emergency), "about 12% of the problems are emergency-plan ones: {emergency}");
}
