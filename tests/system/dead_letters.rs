//! A message that keeps failing is kept with its reason, the stream moves on, and the admin can
//! list and replay it.

use std::path::Path;

use serde_json::json;
use shared::auth::Role;
use shared::envelope::Event;
use shared::events::PROBLEM_REPORTED;
use shared::testing::{Stack, StackOptions, WebhookReceiver, eventually};

use crate::support::*;

async fn publish(stack: &Stack, subject: String, payload: Vec<u8>) {
    let client = async_nats::connect(stack.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let message = async_nats::jetstream::message::PublishMessage::build()
        .payload(payload.into())
        .message_id(uuid::Uuid::now_v7().to_string());
    js.send_publish(subject, message).await.unwrap().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_message_is_dead_lettered_with_its_reason_and_the_stream_moves_on() {
    let mut options = StackOptions::default();
    options.env.push(("SKYLEDGER__CONSUMER__MAX_DELIVER".into(), "3".into()));
    let stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), options).await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let subject = format!("{}.intake.problem.reported.{XINGTAI}", stack.namespace);

    // Not an event at all, and an event whose data no handler can read.
    publish(&stack, subject.clone(), b"this is not JSON".to_vec()).await;
    let unreadable = Event::untyped(&PROBLEM_REPORTED, "x", &json!({ "problem_id": "not-a-uuid" }));
    publish(&stack, subject, serde_json::to_vec(&unreadable).unwrap()).await;

    // A good report behind them still goes all the way.
    let report = inspection(XINGTAI, None, "戊厂", &["industrial_kiln"]);
    let id = problem_ids(&report)[0].clone();
    assert_eq!(post(&stack, "intake", "/v1/inspections", &inspector(&stack), report).await.0, 201);
    eventually("the good problem to be public", WAIT, || async {
        let (status, _) = get(&stack, "publication", &format!("/v1/problems/{id}"), None).await;
        (status == 200).then_some(())
    })
    .await;

    let admin = stack.admin();
    let letters = eventually("both dead letters at assignment", WAIT, || async {
        let (_, body) = get(&stack, "assignment", "/v1/admin/dead-letters", Some(&admin)).await;
        let items = body["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 2).then_some(items)
    })
    .await;
    let reasons: Vec<&str> = letters.iter().map(|l| l["reason"].as_str().unwrap()).collect();
    assert!(reasons[0].contains("not a CloudEvents JSON event"), "{reasons:?}");
    assert!(reasons[1].contains("unexpected data"), "{reasons:?}");
    assert_eq!(letters[1]["event_id"], unreadable.id.to_string());
    assert_eq!(letters[1]["deliveries"], 3, "dead after max_deliver tries");
    assert_eq!(letters[0]["deliveries"], 1, "a message that is no event is dead at once");

    // Dead letters are the admin's.
    let inspector = stack.token(Role::Inspector, Some(FINDER), None);
    assert_eq!(get(&stack, "assignment", "/v1/admin/dead-letters", Some(&inspector)).await.0, 403);
    // A replay is tried again by its own consumer: it fails again, and says so.
    let letter_id = letters[1]["id"].as_i64().unwrap();
    let (status, _) =
        post(&stack, "assignment", &format!("/v1/admin/dead-letters/{letter_id}/replay"), &admin, json!({})).await;
    assert_eq!(status, 200);
    eventually("the replayed letter to fail again", WAIT, || async {
        let (_, body) = get(&stack, "assignment", "/v1/admin/dead-letters", Some(&admin)).await;
        let items = body["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 2
            && items[1]["replayed_at"].is_string()
            && items[1]["replay_outcome"].as_str().is_some_and(|o| o.starts_with("failed again")))
        .then_some(())
    })
    .await;
    assert_eq!(post(&stack, "assignment", "/v1/admin/dead-letters/999999/replay", &admin, json!({})).await.0, 404);
}
