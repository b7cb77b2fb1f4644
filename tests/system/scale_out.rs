//! Past one machine: two instances each of assignment and notification share their durable
//! consumers, with no effect twice and each problem's events applied in order.

use std::collections::{HashMap, HashSet};

use serde_json::json;
use shared::events::PROBLEM_ASSIGNED;
use shared::testing::{WebhookReceiver, eventually};

use crate::support::*;

async fn messages_handled(stack: &shared::testing::Stack, url: &str) -> f64 {
    let metrics = stack.http.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
    metrics
        .lines()
        .filter(|l| l.starts_with("consumer_messages_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_share_the_work_once_and_in_order() {
    let mut stack = start().await;
    let second_assignment = stack.add_instance("assignment").await;
    let second_notification = stack.add_instance("notification").await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;

    // Sixty problems, a third of them withdrawn at once: the withdrawal follows the report in
    // intake's stream, and may reach the other instance first.
    let reports: Vec<_> = (0..60)
        .map(|i| inspection(if i % 2 == 0 { XINGTAI } else { HANDAN }, None, &format!("工厂 {i}"), &["vocs"]))
        .collect();
    let ids: Vec<String> = reports.iter().flat_map(problem_ids).collect();
    batch(&stack, reports).await;
    let admin = stack.admin();
    let withdrawn: HashSet<String> = ids.iter().step_by(3).cloned().collect();
    for id in &withdrawn {
        let (status, body) =
            post(&stack, "intake", &format!("/v1/problems/{id}/withdraw"), &admin, json!({ "reason": "录入错误" }))
                .await;
        assert_eq!(status, 200, "{body}");
    }

    let ledger = eventually("every problem settled in the ledger", WAIT, || async {
        let (_, ledger) = get(&stack, "assignment", "/v1/ledger", Some(&admin)).await;
        let items = ledger["items"].as_array().cloned().unwrap_or_default();
        let settled = items.iter().all(|i| {
            let id = i["problem_id"].as_str().unwrap();
            if withdrawn.contains(id) { i["status"] == "withdrawn" } else { i["handover_no"].is_string() }
        });
        (items.len() == 60 && settled).then_some(items)
    })
    .await;
    assert_eq!(ledger.len(), 60, "one ledger entry per problem");

    // Each problem assigned at most once (withdrawn ones may have gone out before the
    // withdrawal), every other problem exactly once.
    let mut assigned: HashMap<String, usize> = HashMap::new();
    for event in stream_events(&stack, "assignment", &PROBLEM_ASSIGNED).await {
        *assigned.entry(event.data["problem_id"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert!(assigned.values().all(|&n| n == 1), "{assigned:?}");
    for id in ids.iter().filter(|id| !withdrawn.contains(*id)) {
        assert_eq!(assigned.get(id), Some(&1), "{id} assigned once");
    }

    // Notices: every handed-over problem notified once, by whichever instance.
    let notified = eventually("the notices of every problem handed over", WAIT, || async {
        let mut by_notice = HashMap::new();
        for r in receiver.received() {
            by_notice.insert(r.header("webhook-id").to_string(), r.json());
        }
        let problems: Vec<String> = by_notice
            .values()
            .filter(|n| n["type"] == "handover.issued")
            .flat_map(|n| {
                n["problems"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["id"].as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        (problems.len() >= assigned.len()).then_some(problems)
    })
    .await;
    assert_eq!(notified.len(), assigned.len(), "no problem on two notices");
    let distinct_deliveries: HashSet<String> =
        receiver.received().iter().map(|r| r.header("webhook-id").to_string()).collect();
    assert_eq!(distinct_deliveries.len(), receiver.received().len(), "no notice delivered twice");

    // Both instances of assignment took part.
    let first = messages_handled(&stack, &stack.url("assignment")).await;
    let second = messages_handled(&stack, &second_assignment).await;
    assert!(first > 0.0 && second > 0.0, "both instances consumed: {first} and {second}");
    assert!(messages_handled(&stack, &second_notification).await >= 0.0);
}
