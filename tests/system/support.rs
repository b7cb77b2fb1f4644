//! What the system tests share: starting a stack, setting up a campaign, building reports.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::auth::Role;
use shared::testing::{Stack, StackOptions, WebhookReceiver, eventually};
use uuid::Uuid;

pub const ROUND: &str = "2019-R01";
/// Team from Shandong, covering two Hebei cities.
pub const FINDER: &str = "T-370";
/// Team from Henan, covering a Shanxi city; verifies elsewhere.
pub const VERIFIER: &str = "T-410";
/// Team from Hebei: may never verify in Hebei.
pub const HEBEI_TEAM: &str = "T-130";
pub const XINGTAI: &str = "130500";
pub const HANDAN: &str = "130400";
pub const TAIYUAN: &str = "140100";

pub const WAIT: Duration = Duration::from_secs(90);
/// The secret the test recipients' webhooks are signed with.
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

pub async fn start() -> Stack {
    Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), StackOptions::default()).await
}

pub async fn send(
    stack: &Stack,
    method: &str,
    service: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let url = format!("{}{path}", stack.url(service));
    let mut request = stack.http.request(method.parse().expect("method"), &url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

pub async fn get(stack: &Stack, service: &str, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    send(stack, "GET", service, path, token, None).await
}

pub async fn post(stack: &Stack, service: &str, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    send(stack, "POST", service, path, Some(token), Some(body)).await
}

pub async fn put_ok(stack: &Stack, service: &str, path: &str, body: Value) {
    let (status, answer) = send(stack, "PUT", service, path, Some(&stack.admin()), Some(body)).await;
    assert!(status.is_success(), "PUT {path}: {status} {answer}");
}

/// A round over three cities, three teams, and recipients for Xingtai and Handan whose webhook
/// is `receiver`.
pub async fn campaign(stack: &Stack, receiver: &WebhookReceiver) {
    put_ok(
        stack,
        "intake",
        &format!("/v1/rounds/{ROUND}"),
        json!({
        "starts_on": "2019-05-08", "ends_on": "2019-05-22", "kind": "regular", "cities": [XINGTAI, HANDAN, TAIYUAN] }),
    )
    .await;
    for (team, province) in [(FINDER, "370000"), (VERIFIER, "410000"), (HEBEI_TEAM, "130000")] {
        put_ok(
            stack,
            "intake",
            &format!("/v1/teams/{team}"),
            json!({ "home_province": province, "members": ["甲", "乙", "丙"] }),
        )
        .await;
    }
    put_ok(stack, "intake", &format!("/v1/rounds/{ROUND}/teams/{FINDER}"), json!({ "cities": [XINGTAI, HANDAN] }))
        .await;
    put_ok(stack, "intake", &format!("/v1/rounds/{ROUND}/teams/{VERIFIER}"), json!({ "cities": [TAIYUAN] })).await;
    for city in [XINGTAI, HANDAN] {
        put_ok(stack, "notification", &format!("/v1/recipients/{city}"), json!({
            "name": format!("{city} 人民政府"), "webhook": { "url": format!("{}/hooks/{city}", receiver.url), "secret": SECRET } })).await;
    }
}

pub fn inspector(stack: &Stack) -> String {
    stack.token(Role::Inspector, Some(FINDER), None)
}

/// One site check in `city` (a county of it when given) with problems of these categories.
pub fn inspection(city: &str, county: Option<&str>, site_name: &str, categories: &[&str]) -> Value {
    json!({
        "id": Uuid::now_v7(), "round": ROUND, "team": FINDER, "city_code": city, "county_code": county,
        "checked_at": "2019-05-09T10:20:00+08:00",
        "site": { "name": site_name, "address": "某某路 1 号", "lat": 37.07, "lon": 114.50 },
        "problems": categories.iter().map(|c| json!({
            "id": Uuid::now_v7(), "category": c, "severity": "serious", "description": format!("{c} 问题") })).collect::<Vec<_>>(),
    })
}

pub fn problem_ids(inspection: &Value) -> Vec<String> {
    inspection["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| p["id"].as_str().expect("id").to_string())
        .collect()
}

/// The handover notice that names `problem`, once the receiver has it.
pub async fn handover_notice(receiver: &WebhookReceiver, problem: &str) -> shared::testing::Received {
    eventually("the handover notice", WAIT, || async {
        receiver
            .received()
            .into_iter()
            .find(|r| r.json()["problems"].as_array().is_some_and(|ps| ps.iter().any(|p| p["id"] == problem)))
    })
    .await
}

/// Verifies a Standard Webhooks signature by the specification, independently of the service.
pub fn signature_verifies(secret: &str, id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine.decode(secret.trim_start_matches("whsec_")).expect("secret is base64");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("hmac key");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", engine.encode(mac.finalize().into_bytes()));
    header.split(' ').any(|candidate| candidate == expected)
}

/// Rows of a table in the test's database (tests may look anywhere; services may not).
pub async fn count(stack: &Stack, sql: &'static str) -> i64 {
    let pool = stack.db.pool().await;
    let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    pool.close().await;
    n
}

/// Every message in a producer's stream of the test's namespace, in order.
pub async fn stream_messages(stack: &Stack, producer: &str) -> Vec<async_nats::jetstream::message::StreamMessage> {
    let client = stack.nats.client().await;
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(shared::messaging::stream_name(&stack.namespace, producer)).await.expect("stream");
    let last = stream.info().await.expect("stream info").state.last_sequence;
    let mut messages = Vec::new();
    for seq in 1..=last {
        if let Ok(message) = stream.get_raw_message(seq).await {
            messages.push(message);
        }
    }
    messages
}

/// The events of one type in a producer's stream.
pub async fn stream_events(
    stack: &Stack,
    producer: &str,
    kind: &shared::events::EventKind,
) -> Vec<shared::envelope::Event> {
    stream_messages(stack, producer)
        .await
        .into_iter()
        .filter_map(|m| serde_json::from_slice::<shared::envelope::Event>(&m.payload).ok())
        .filter(|e| e.event_type == kind.type_name)
        .collect()
}

/// Publishes an event again under a fresh message id, as a redelivery would bring it.
pub async fn publish_again(stack: &Stack, message: &async_nats::jetstream::message::StreamMessage) {
    let client = stack.nats.client().await;
    let js = async_nats::jetstream::new(client);
    let again = async_nats::jetstream::message::PublishMessage::build()
        .payload(message.payload.clone())
        .message_id(format!("again-{}", Uuid::now_v7()));
    js.send_publish(message.subject.to_string(), again).await.expect("publish").await.expect("ack");
}

pub async fn batch(stack: &Stack, items: Vec<Value>) -> Value {
    let (status, answer) =
        post(stack, "intake", "/v1/inspections/batch", &inspector(stack), json!({ "items": items })).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

/// Publishes an event of `kind` straight into its producer's stream, as that producer would
/// (for events whose producer is not built yet, or with fields a producer would add).
pub async fn publish_event(
    stack: &Stack,
    kind: &shared::events::EventKind,
    subject: &str,
    partition: Option<&str>,
    data: &impl serde::Serialize,
) -> shared::envelope::Event {
    let event = shared::envelope::Event::untyped(kind, subject, data);
    let client = stack.nats.client().await;
    let js = async_nats::jetstream::new(client);
    let message = async_nats::jetstream::message::PublishMessage::build()
        .payload(serde_json::to_vec(&event).expect("event serialises").into())
        .message_id(event.id.to_string());
    let nats_subject = shared::envelope::nats_subject(&stack.namespace, kind, partition);
    js.send_publish(nats_subject, message).await.expect("publish").await.expect("ack");
    event
}

/// The city government reports a rectification (retried until verification has the problem)
/// and team VERIFIER finds it rectified on site; answers the verdict.
pub async fn rectify_and_verify(stack: &Stack, problem: &str, city: &str) -> Value {
    let token = stack.token(Role::LocalGov, None, Some(city));
    let rectification = json!({ "measures": "已取缔，设备拆除", "completed_at": "2019-05-20T09:00:00+08:00" });
    eventually("verification to accept the rectification", WAIT, || async {
        let path = format!("/v1/problems/{problem}/rectification");
        let (status, _) = post(stack, "verification", &path, &token, rectification.clone()).await;
        (status == 201).then_some(())
    })
    .await;
    let verifier = stack.token(Role::Verifier, Some(VERIFIER), None);
    let body = json!({ "result": "rectified", "team": VERIFIER });
    let (status, verdict) =
        post(stack, "verification", &format!("/v1/problems/{problem}/verdict"), &verifier, body).await;
    assert_eq!(status, 201, "{verdict}");
    verdict
}
