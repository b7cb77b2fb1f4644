//! Security that holds at the edges: tokens that expire and can be revoked, an audit log of
//! every write and refusal, and NATS users that may publish only their own service's subjects.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use shared::auth::Role;
use shared::events::PROBLEM_REPORTED;
use shared::testing::{Stack, StackOptions, WebhookReceiver, eventually};

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn expired_and_revoked_tokens_are_refused_everywhere_and_the_audit_log_holds_the_attempts() {
    let stack = start().await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let admin = stack.admin();

    // Expired: signed an hour and a minute ago for an hour.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let expired = stack.signer.issue(Role::Inspector, Some(FINDER.into()), None, now - 3660, 3600).unwrap();
    let (status, problem) =
        post(&stack, "intake", "/v1/inspections", &expired, inspection(XINGTAI, None, "甲厂", &["dust"])).await;
    assert_eq!((status.as_u16(), problem["detail"].as_str()), (401, Some("Authorization: the token has expired")));

    // Revoked on one service, refused by all.
    let city = stack.token(Role::LocalGov, None, Some(XINGTAI));
    assert_eq!(get(&stack, "assignment", "/v1/ledger", Some(&city)).await.0, 200);
    let (status, _) =
        post(&stack, "publication", "/v1/admin/tokens/revoke", &admin, json!({ "token": city, "reason": "遗失" }))
            .await;
    assert_eq!(status, 200);
    for (service, path) in
        [("assignment", "/v1/ledger"), ("notification", "/v1/notices"), ("verification", "/v1/escalations")]
    {
        eventually("every service to refuse the revoked token", WAIT, || async {
            let (status, problem) = get(&stack, service, path, Some(&city)).await;
            (status == 401 && problem["detail"] == "Authorization: the token has been revoked").then_some(())
        })
        .await;
    }

    // A team's inspector outside its bounds, and a local government acting on another's sheet.
    let inspector = inspector(&stack);
    assert_eq!(
        post(&stack, "intake", "/v1/inspections", &inspector, inspection(TAIYUAN, None, "乙厂", &["dust"])).await.0,
        403
    );
    let handan = stack.token(Role::LocalGov, None, Some(HANDAN));
    let round = json!({ "starts_on": "2019-05-08", "ends_on": "2019-05-22", "cities": [HANDAN] });
    assert_eq!(send(&stack, "PUT", "intake", "/v1/rounds/x", Some(&handan), Some(round)).await.0, 403);

    // The audit log: who tried what, when, from where.
    let audit = eventually("the refusals in intake's audit log", WAIT, || async {
        let (_, body) = get(&stack, "intake", "/v1/admin/audit?refused=true", Some(&admin)).await;
        let items = body["items"].as_array().cloned().unwrap_or_default();
        (items.len() >= 3).then_some(items)
    })
    .await;
    let expired_attempt = audit.iter().find(|a| a["status"] == 401).expect("the expired token's attempt");
    assert_eq!((expired_attempt["role"].as_str(), expired_attempt["team"].as_str()), (Some("inspector"), Some(FINDER)));
    assert_eq!(expired_attempt["route"], "/v1/inspections");
    assert!(expired_attempt["remote"].as_str().unwrap().starts_with("127.0.0.1"), "{expired_attempt}");
    assert!(audit.iter().any(|a| a["status"] == 403 && a["jurisdiction"] == HANDAN && a["method"] == "PUT"));
    let (_, writes) = get(&stack, "intake", "/v1/admin/audit", Some(&admin)).await;
    assert!(
        writes["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["route"] == "/v1/rounds/{round}" && a["status"] == 200 && a["role"] == "admin")
    );
    let (_, refused) = get(&stack, "assignment", "/v1/admin/audit?refused=true", Some(&admin)).await;
    assert!(
        refused["items"].as_array().unwrap().iter().any(|a| a["status"] == 401 && a["jurisdiction"] == XINGTAI),
        "{refused}"
    );
    assert_eq!(get(&stack, "intake", "/v1/admin/audit", Some(&inspector)).await.0, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_service_publishes_only_its_own_subjects() {
    let options = StackOptions { nats_users: true, ..Default::default() };
    let stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), options).await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    // The services work as their own users: a report goes all the way.
    let report = inspection(XINGTAI, None, "甲厂", &["dust"]);
    let id = problem_ids(&report)[0].clone();
    assert_eq!(post(&stack, "intake", "/v1/inspections", &inspector(&stack), report).await.0, 201);
    eventually("the problem to be public", WAIT, || async {
        (get(&stack, "publication", &format!("/v1/problems/{id}"), None).await.0 == 200).then_some(())
    })
    .await;

    // As assignment, publishing on intake's subjects is refused by the server.
    let passwords = stack.nats.passwords.clone().unwrap();
    let (errors_tx, mut errors) = tokio::sync::mpsc::unbounded_channel();
    let client =
        async_nats::ConnectOptions::with_user_and_password("assignment".into(), passwords["assignment"].clone())
            .event_callback(move |event| {
                let errors_tx = errors_tx.clone();
                async move {
                    let _ = errors_tx.send(event.to_string());
                }
            })
            .connect(stack.nats.url())
            .await
            .expect("assignment connects");
    let before = stream_events(&stack, "intake", &PROBLEM_REPORTED).await.len();
    let forged = format!("{}.intake.problem.reported.{XINGTAI}", stack.namespace);
    client.publish(forged.clone(), "forged".into()).await.unwrap();
    client.flush().await.unwrap();
    let violation = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = errors.recv().await.expect("events");
            if event.to_lowercase().contains("permissions violation") {
                return event;
            }
        }
    })
    .await
    .expect("the server refuses the publish");
    assert!(violation.contains(&forged), "{violation}");
    let js = async_nats::jetstream::new(client.clone());
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        js.publish(forged.clone(), "forged".into()).await?.await
    })
    .await;
    assert!(!matches!(refused, Ok(Ok(_))), "a JetStream publish on another's subject is not acknowledged");
    assert_eq!(
        stream_events(&stack, "intake", &PROBLEM_REPORTED).await.len(),
        before,
        "nothing forged reached the stream"
    );
    // Its own subjects it may publish.
    let own = format!("{}.assignment.handover.probe", stack.namespace);
    assert!(js.publish(own, "{}".into()).await.unwrap().await.is_ok());
    // Without a user, nothing at all.
    assert!(async_nats::connect(stack.nats.url()).await.is_err(), "anonymous connections are refused");
}
