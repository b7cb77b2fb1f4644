//! Overload: a flood of batches against intake's bounded queue is answered 503 with
//! `Retry-After` (problem+json) for what does not fit, never a crash or another 5xx; memory stays
//! bounded; once the flood ebbs intake takes reports again by itself, and every report it
//! accepted during the flood is stored once.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use shared::testing::{Stack, StackOptions};

use crate::support::*;

/// Resident and peak memory of a process, in MiB, from `/proc`.
fn memory_mib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb / 1024)
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_batches_gets_503_with_retry_after_and_intake_recovers_by_itself() {
    let mut options = StackOptions { only: Some(vec!["intake"]), ..Default::default() };
    for (key, value) in [
        ("SKYLEDGER__OVERLOAD__MAX_IN_FLIGHT", "2"),
        ("SKYLEDGER__OVERLOAD__MAX_WAITING", "4"),
        ("SKYLEDGER__OVERLOAD__MAX_WAIT_MILLIS", "300"),
        ("SKYLEDGER__OVERLOAD__RETRY_AFTER_SECS", "1"),
    ] {
        options.env.push((key.into(), value.into()));
    }
    let stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), options).await;
    put_ok(
        &stack,
        "intake",
        &format!("/v1/rounds/{ROUND}"),
        json!({ "starts_on": "2019-05-08", "ends_on": "2019-05-22", "kind": "regular", "cities": [XINGTAI, HANDAN] }),
    )
    .await;
    put_ok(
        &stack,
        "intake",
        &format!("/v1/teams/{FINDER}"),
        json!({ "home_province": "370000", "members": ["甲", "乙", "丙"] }),
    )
    .await;
    put_ok(&stack, "intake", &format!("/v1/rounds/{ROUND}/teams/{FINDER}"), json!({ "cities": [XINGTAI, HANDAN] }))
        .await;
    let pid = stack.services["intake"].pid().expect("intake runs");
    let (rss_before, _) = memory_mib(pid);

    // Three waves of 48 batches of 100 site checks, all at once.
    let url = format!("{}/v1/inspections/batch", stack.url("intake"));
    let token = inspector(&stack);
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut accepted = 0usize;
    for wave in 0..3 {
        let requests: Vec<_> = (0..48)
            .map(|b| {
                let items: Vec<Value> = (0..100)
                    .map(|i| inspection(XINGTAI, None, &format!("洪峰 {wave}-{b}-{i}"), &["coal_boiler"]))
                    .collect();
                let (http, url, token) = (stack.http.clone(), url.clone(), token.clone());
                tokio::spawn(async move {
                    let response = http
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({ "items": items }))
                        .send()
                        .await
                        .expect("an answer");
                    let status = response.status().as_u16();
                    let retry_after =
                        response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
                    let media =
                        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                    let body: Value = response.json().await.unwrap_or_default();
                    (status, retry_after, media, body)
                })
            })
            .collect();
        for request in requests {
            let (status, retry_after, media, body) = request.await.expect("the request task");
            *statuses.entry(status).or_default() += 1;
            match status {
                200 => {
                    let results = body["results"].as_array().expect("results");
                    assert!(results.iter().all(|r| r["status"] == "created"), "{body}");
                    accepted += results.len();
                }
                503 => {
                    assert_eq!(retry_after.as_deref(), Some("1"), "a 503 says when to come back");
                    assert!(media.starts_with("application/problem+json"), "{media}");
                }
                other => panic!("a flood got {other}: {body}"),
            }
        }
    }
    let (rss_after, peak) = memory_mib(pid);
    println!(
        "overload: answers {statuses:?}; {accepted} site checks accepted; intake memory {rss_before} MiB before, \
         {rss_after} MiB after, peak {peak} MiB"
    );
    assert!(statuses.get(&503).copied().unwrap_or(0) > 0, "the flood was never refused: {statuses:?}");
    assert!(statuses.get(&200).copied().unwrap_or(0) > 0, "nothing got through the flood: {statuses:?}");
    assert!(peak < 512, "intake's memory is bounded: peak {peak} MiB");

    // The flood is over: after Retry-After, a batch goes through at once, and what was accepted
    // during the flood is stored once.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let answer = batch(&stack, vec![inspection(HANDAN, None, "洪峰之后", &["dust"])]).await;
    assert_eq!(answer["results"][0]["status"], "created", "{answer}");
    assert_eq!(count(&stack, "SELECT count(*) FROM intake.problems").await, accepted as i64 + 1);
    let (status, metrics) = get(&stack, "intake", "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(metrics.as_str().unwrap_or_default().contains("http_refused_overload_total"), "refusals are counted");
}
