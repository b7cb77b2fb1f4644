//! Crashes and redeliveries: nothing accepted is lost, nothing happens twice.

use std::collections::{HashMap, HashSet};

use shared::events::{HANDOVER_ISSUED, PROBLEM_ASSIGNED, PROBLEM_REPORTED};
use shared::testing::{WebhookReceiver, eventually};

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn killing_assignment_while_problems_wait_assigns_each_exactly_once() {
    let mut stack = start().await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;

    // Problems arrive while assignment is down…
    stack.kill("assignment");
    let reports: Vec<_> = (0..40)
        .map(|i| inspection(if i % 2 == 0 { XINGTAI } else { HANDAN }, None, &format!("工厂 {i}"), &["coal_boiler"]))
        .collect();
    let expected: HashSet<String> = reports.iter().flat_map(problem_ids).collect();
    let answer = batch(&stack, reports).await;
    assert!(answer["results"].as_array().unwrap().iter().all(|r| r["status"] == "created"), "{answer}");

    // …and it is killed again in the middle of catching up.
    stack.restart("assignment").await;
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    stack.kill("assignment");
    stack.restart("assignment").await;

    let admin = stack.admin();
    eventually("all 40 problems on handover sheets", WAIT, || async {
        let (_, ledger) = get(&stack, "assignment", "/v1/ledger", Some(&admin)).await;
        let items = ledger["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 40 && items.iter().all(|i| i["handover_no"].is_string())).then_some(())
    })
    .await;

    // Exactly one problem.assigned per problem in the stream, and each on exactly one sheet.
    let assigned = stream_events(&stack, "assignment", &PROBLEM_ASSIGNED).await;
    let mut per_problem: HashMap<String, usize> = HashMap::new();
    for event in &assigned {
        *per_problem.entry(event.data["problem_id"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(per_problem.keys().cloned().collect::<HashSet<_>>(), expected);
    assert!(per_problem.values().all(|&n| n == 1), "a problem was assigned twice: {per_problem:?}");
    let on_sheets: Vec<String> = stream_events(&stack, "assignment", &HANDOVER_ISSUED)
        .await
        .iter()
        .flat_map(|e| {
            e.data["problems"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["problem_id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(on_sheets.len(), 40, "every problem on exactly one sheet");
    assert_eq!(on_sheets.into_iter().collect::<HashSet<_>>(), expected);

    // Downstream agrees: 40 public problems, 40 problems notified once.
    eventually("40 public problems", WAIT, || async {
        let (_, stats) = get(&stack, "publication", "/v1/stats", None).await;
        (stats["totals"]["problems"] == 40).then_some(())
    })
    .await;
    let notified = eventually("notices for all 40 problems", WAIT, || async {
        let mut by_notice = HashMap::new();
        for r in receiver.received() {
            by_notice.insert(r.header("webhook-id").to_string(), r.json());
        }
        let problems: Vec<String> = by_notice
            .values()
            .flat_map(|n| {
                n["problems"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["id"].as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        (problems.len() >= 40).then_some(problems)
    })
    .await;
    assert_eq!(notified.len(), 40, "no problem notified twice");
    assert_eq!(notified.into_iter().collect::<HashSet<_>>(), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_event_has_no_second_effect() {
    let stack = start().await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let first = inspection(XINGTAI, None, "甲厂", &["dust"]);
    let problem = problem_ids(&first)[0].clone();
    batch(&stack, vec![first]).await;
    eventually("the first notice", WAIT, || async { (receiver.received().len() == 1).then_some(()) }).await;
    eventually("the first problem public", WAIT, || async {
        let (status, _) = get(&stack, "publication", &format!("/v1/problems/{problem}"), None).await;
        (status == 200).then_some(())
    })
    .await;

    // Deliver problem.reported and handover.issued to every consumer a second time.
    let reported = stream_messages(&stack, "intake").await;
    let reported =
        reported.iter().find(|m| m.subject.contains(".problem.reported.")).expect("problem.reported in the stream");
    publish_again(&stack, reported).await;
    let issued = stream_messages(&stack, "assignment").await;
    let issued =
        issued.iter().find(|m| m.subject.contains(".handover.issued.")).expect("handover.issued in the stream");
    publish_again(&stack, issued).await;
    assert_eq!(stream_events(&stack, "intake", &PROBLEM_REPORTED).await.len(), 2, "the copy is in the stream");

    // A second report after the copies: once it is through, the copies were handled too.
    let second = inspection(HANDAN, None, "乙厂", &["dust"]);
    let second_problem = problem_ids(&second)[0].clone();
    batch(&stack, vec![second]).await;
    eventually("the second problem public", WAIT, || async {
        let (status, _) = get(&stack, "publication", &format!("/v1/problems/{second_problem}"), None).await;
        (status == 200).then_some(())
    })
    .await;
    eventually("the second notice", WAIT, || async { (receiver.received().len() >= 2).then_some(()) }).await;

    let admin = stack.admin();
    let (_, ledger) = get(&stack, "assignment", "/v1/ledger", Some(&admin)).await;
    assert_eq!(ledger["count"], 2, "no second ledger entry: {ledger}");
    let (_, notices) = get(&stack, "notification", "/v1/notices", Some(&admin)).await;
    assert_eq!(notices["count"], 2, "no second notice: {notices}");
    let ids: HashSet<String> = receiver.received().iter().map(|r| r.header("webhook-id").to_string()).collect();
    assert_eq!((receiver.received().len(), ids.len()), (2, 2), "one delivery per notice");
    let (_, public) = get(&stack, "publication", &format!("/v1/problems/{problem}"), None).await;
    assert_eq!(public["history"].as_array().unwrap().len(), 2, "no second history entry: {public}");
    assert_eq!(count(&stack, "SELECT count(*) FROM verification.problems").await, 2);
    // The copies did reach the consumers, and the inboxes dropped them.
    for service in ["assignment", "notification", "publication"] {
        let metrics =
            stack.http.get(format!("{}/metrics", stack.url(service))).send().await.unwrap().text().await.unwrap();
        assert!(
            metrics.lines().any(|l| l.starts_with("consumer_duplicates_total") && !l.ends_with(" 0")),
            "{service} saw no duplicate:\n{metrics}"
        );
    }
}
