//! Bad input gets a 4xx problem+json naming the field, and changes nothing.

use serde_json::{Value, json};
use shared::auth::Role;
use shared::events::{INSPECTIONS_RECORDED, PROBLEM_REPORTED};
use shared::testing::WebhookReceiver;

use crate::support::*;

async fn refused(
    stack: &shared::testing::Stack,
    token: Option<&str>,
    content_type: &str,
    body: String,
) -> (u16, String, Value) {
    let mut request = stack
        .http
        .post(format!("{}/v1/inspections", stack.url("intake")))
        .header("content-type", content_type)
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let media = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    (status, media, response.json().await.unwrap_or_default())
}

/// What is sent, with which token and content type, and the status and field expected.
struct Case<'a>(&'a str, Option<&'a str>, &'a str, String, u16, &'a str);

fn with(mut report: Value, path: &[&str], value: Value) -> Value {
    let mut target = &mut report;
    for key in path {
        target = match key.parse::<usize>() {
            Ok(i) => &mut target[i],
            Err(_) => &mut target[*key],
        };
    }
    *target = value;
    report
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_naming_the_field_and_nothing_is_stored_or_published() {
    let stack = start().await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let good = inspection(XINGTAI, Some("130502"), "某某铸造厂", &["vocs"]);
    let inspector = inspector(&stack);
    let local_gov = stack.token(Role::LocalGov, None, Some(XINGTAI));

    let cases: Vec<Case> = vec![
        Case("malformed JSON", Some(&inspector), "application/json", "{\"id\": ".into(), 400, "body"),
        Case(
            "unknown city",
            Some(&inspector),
            "application/json",
            with(good.clone(), &["city_code"], json!("999900")).to_string(),
            422,
            "city_code",
        ),
        Case(
            "county outside its city",
            Some(&inspector),
            "application/json",
            with(good.clone(), &["county_code"], json!("130402")).to_string(),
            422,
            "county_code",
        ),
        Case(
            "bad credit code",
            Some(&inspector),
            "application/json",
            with(good.clone(), &["site", "credit_code"], json!("91350100M000100Y44")).to_string(),
            422,
            "site.credit_code",
        ),
        Case(
            "latitude 200",
            Some(&inspector),
            "application/json",
            with(good.clone(), &["site", "lat"], json!(200)).to_string(),
            422,
            "site.lat",
        ),
        Case(
            "unknown category",
            Some(&inspector),
            "application/json",
            with(good.clone(), &["problems", "0", "category"], json!("littering")).to_string(),
            422,
            "problems[0].category",
        ),
        Case(
            "latitude of the wrong type",
            Some(&inspector),
            "application/json",
            with(good.clone(), &["site", "lat"], json!("north")).to_string(),
            422,
            "site.lat",
        ),
        Case(
            "missing field",
            Some(&inspector),
            "application/json",
            with(good.clone(), &["checked_at"], Value::Null).to_string(),
            422,
            "checked_at",
        ),
        Case("missing token", None, "application/json", good.to_string(), 401, "Authorization"),
        Case("wrong role", Some(&local_gov), "application/json", good.to_string(), 403, "Authorization"),
        Case("not JSON at all", Some(&inspector), "text/plain", good.to_string(), 415, "Content-Type"),
    ];
    for Case(what, token, content_type, body, status, field) in cases {
        let (got, media, problem) = refused(&stack, token, content_type, body).await;
        assert_eq!(got, status, "{what}: {problem}");
        assert_eq!(media, "application/problem+json", "{what}");
        assert_eq!(problem["status"], status, "{what}");
        let fields: Vec<&str> =
            problem["errors"].as_array().expect("errors").iter().map(|e| e["field"].as_str().unwrap_or("")).collect();
        assert!(fields.contains(&field), "{what}: expected {field} named in {problem}");
    }
    let (status, problem) =
        post(&stack, "intake", "/v1/inspections/batch", &inspector, json!({ "items": vec![good.clone(); 1001] })).await;
    assert_eq!((status.as_u16(), problem["errors"][0]["field"].as_str()), (422, Some("items")));

    // Nothing stored, nothing in the outbox, nothing in the stream, nothing public.
    assert_eq!(count(&stack, "SELECT count(*) FROM intake.inspections").await, 0);
    assert_eq!(count(&stack, "SELECT count(*) FROM intake.problems").await, 0);
    assert_eq!(count(&stack, "SELECT count(*) FROM intake.outbox WHERE payload::jsonb->>'type' LIKE '%inspection%' OR payload::jsonb->>'type' LIKE '%problem%'").await, 0);
    assert!(stream_events(&stack, "intake", &PROBLEM_REPORTED).await.is_empty());
    assert!(stream_events(&stack, "intake", &INSPECTIONS_RECORDED).await.is_empty());
    let (_, stats) = get(&stack, "publication", "/v1/stats", None).await;
    assert_eq!(stats["totals"]["problems"], 0);
    assert_eq!(stats["totals"]["site_checks"], 0);

    // Query parameters are named too.
    for (service, path, token, field) in [
        ("publication", "/v1/problems?limit=abc", None, "limit"),
        ("publication", "/v1/problems?city=999900", None, "city"),
        ("assignment", "/v1/ledger?status=lost", Some(stack.admin()), "status"),
    ] {
        let (status, problem) = get(&stack, service, path, token.as_deref()).await;
        assert_eq!((status.as_u16(), problem["errors"][0]["field"].as_str()), (422, Some(field)), "{path}: {problem}");
    }

    // The good report, sent after all that, goes through: the refusals were about the input.
    let (status, answer) = post(&stack, "intake", "/v1/inspections", &inspector, good).await;
    assert_eq!(status, 201, "{answer}");
}
