//! One problem through the whole lifecycle, over HTTP only.

use serde_json::{Value, json};
use shared::auth::Role;
use shared::testing::{WebhookReceiver, eventually};

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_problem_travels_from_field_report_to_the_public_feed() {
    let stack = start().await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let report = inspection(XINGTAI, Some("130502"), "某某铸造厂", &["scattered_polluting"]);
    let problem = problem_ids(&report)[0].clone();

    let (status, answer) = post(&stack, "intake", "/v1/inspections", &inspector(&stack), report.clone()).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["problems"][0]["outcome"], "reported");
    // The same inspection again: the stored answer, no second record.
    let (status, again) = post(&stack, "intake", "/v1/inspections", &inspector(&stack), report).await;
    assert_eq!((status.as_u16(), again["status"].as_str()), (200, Some("already_had")));

    // The city government's webhook gets the handover notice, signed.
    let notice = handover_notice(&receiver, &problem).await;
    assert_eq!(notice.path, format!("/hooks/{XINGTAI}"));
    assert!(
        signature_verifies(
            SECRET,
            notice.header("webhook-id"),
            notice.header("webhook-timestamp"),
            &notice.body,
            notice.header("webhook-signature")
        ),
        "the webhook signature must verify"
    );
    let body = notice.json();
    assert_eq!(body["type"], "handover.issued");
    assert_eq!(body["jurisdiction"], XINGTAI);
    assert_eq!(body["problems"][0]["jurisdiction"], "130502", "the county is responsible");
    assert!(body["deadline"].is_string());
    let handover_no = body["handover_no"].as_str().expect("handover number").to_string();
    assert!(handover_no.starts_with(&format!("{ROUND}-{XINGTAI}-")), "{handover_no}");

    // 签收, then rectification by the city government (a city answers for its counties).
    let city = stack.token(Role::LocalGov, None, Some(XINGTAI));
    let (status, ack) =
        post(&stack, "assignment", &format!("/v1/handovers/{handover_no}/acknowledge"), &city, json!({})).await;
    assert_eq!(status, 200, "{ack}");
    let verdict = rectify_and_verify(&stack, &problem, XINGTAI).await;
    assert_eq!(verdict["status"], "closed");

    // The public record: closed, with its history.
    let public: Value = eventually("the public record to show closed", WAIT, || async {
        let (status, body) = get(&stack, "publication", &format!("/v1/problems/{problem}"), None).await;
        (status == 200 && body["status"] == "closed").then_some(body)
    })
    .await;
    let steps: Vec<&str> =
        public["history"].as_array().expect("history").iter().map(|h| h["status"].as_str().unwrap_or("")).collect();
    assert_eq!(steps, ["reported", "assigned", "acknowledged", "rectification_reported", "closed"]);
    assert!(public["closed_at"].is_string() && public["handed_over_at"].is_string());
    assert!(
        !public.to_string().contains(FINDER) && !public.to_string().contains(VERIFIER),
        "no team identities in public"
    );

    // The Atom feed, read by an XML parser, has an entry for it.
    let response = stack.http.get(format!("{}/feed.atom", stack.url("publication"))).send().await.expect("feed");
    let atom = response.text().await.expect("feed text");
    let document = roxmltree::Document::parse(&atom).expect("the Atom feed is well-formed XML");
    let ids: Vec<String> = document
        .descendants()
        .filter(|n| n.has_tag_name("entry"))
        .filter_map(|entry| {
            entry.children().find(|c| c.has_tag_name("id")).and_then(|id| id.text()).map(str::to_string)
        })
        .collect();
    assert!(ids.contains(&format!("urn:uuid:{problem}")), "{atom}");
    let (_, feed) = get(&stack, "publication", "/feed.json", None).await;
    assert!(feed["items"].as_array().expect("items").iter().any(|i| i["id"] == problem.as_str()));

    // The ledger follows it to closure.
    let (_, ledger) = get(&stack, "assignment", &format!("/v1/ledger?city={XINGTAI}"), Some(&stack.admin())).await;
    let entry = eventually("the ledger to show closed", WAIT, || async {
        let (_, ledger) = get(&stack, "assignment", &format!("/v1/ledger?city={XINGTAI}"), Some(&stack.admin())).await;
        (ledger["items"][0]["status"] == "closed").then_some(ledger)
    })
    .await;
    assert_eq!(entry["count"], 1, "{ledger}");
}
