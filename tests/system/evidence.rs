//! Evidence from the field: kept in the JetStream object store under its SHA-256, public
//! evidence served to anyone, internal evidence only to a campaign token.

use std::path::Path;

use futures::StreamExt as _;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};
use shared::auth::Role;
use shared::testing::{Stack, StackOptions};

/// Above the 4 MiB every other request is held to.
const MAX_BYTES: usize = 5 * 1024 * 1024;

async fn upload(
    stack: &Stack,
    token: Option<&str>,
    query: &str,
    content_type: &str,
    bytes: &[u8],
) -> (StatusCode, Value) {
    let mut request = stack
        .http
        .post(format!("{}/v1/evidence{query}", stack.url("intake")))
        .header("content-type", content_type)
        .body(bytes.to_vec());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("upload");
    let status = response.status();
    (status, serde_json::from_str(&response.text().await.unwrap_or_default()).unwrap_or(Value::Null))
}

async fn download(stack: &Stack, url: &str, token: Option<&str>) -> (StatusCode, String, Vec<u8>) {
    let mut request = stack.http.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("download");
    let status = response.status();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    (status, content_type, response.bytes().await.expect("bytes").to_vec())
}

/// Bytes that look like a JPEG photo, different for each seed.
fn photo(seed: u8, len: usize) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    bytes
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn evidence_survives_in_the_object_store_and_internal_evidence_needs_a_token() {
    let mut options = StackOptions::default();
    options.env.push(("SKYLEDGER__INTAKE__EVIDENCE__MAX_BYTES".into(), MAX_BYTES.to_string()));
    let mut stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), options).await;
    let inspector = stack.token(Role::Inspector, Some("T-370"), None);
    let government = stack.token(Role::LocalGov, None, Some("130500"));
    let verifier = stack.token(Role::Verifier, Some("T-410"), None);

    // A public photo from an inspector (several object-store chunks' worth).
    let public = photo(1, 60_000);
    let (status, stored) = upload(&stack, Some(&inspector), "?visibility=public", "image/jpeg", &public).await;
    assert_eq!(status, 201, "{stored}");
    assert_eq!(stored["sha256"], sha256(&public));
    assert_eq!((stored["internal"].as_bool(), stored["size"].as_u64()), (Some(false), Some(public.len() as u64)));
    let public_url = stored["url"].as_str().expect("a URL").to_string();
    assert!(public_url.ends_with(&format!("/v1/evidence/{}", sha256(&public))), "{public_url}");
    let (status, content_type, bytes) = download(&stack, &public_url, None).await;
    assert_eq!((status.as_u16(), content_type.as_str()), (200, "image/jpeg"));
    assert!(bytes == public, "the public photo comes back byte for byte, to anyone");
    // The same bytes again: the same object, not a second one.
    let (status, again) = upload(&stack, Some(&inspector), "?visibility=public", "image/jpeg", &public).await;
    assert_eq!((status.as_u16(), &again["url"]), (200, &stored["url"]));

    // An internal document from a local government (internal is the default).
    let internal = b"%PDF-1.4\n% rectification measures, internal\n".repeat(50);
    let (status, stored) = upload(&stack, Some(&government), "", "application/pdf", &internal).await;
    assert_eq!(status, 201, "{stored}");
    assert_eq!(stored["internal"], true);
    let internal_url = stored["url"].as_str().unwrap().to_string();
    assert_eq!(download(&stack, &internal_url, None).await.0, 401, "internal evidence is refused without a token");
    assert_eq!(download(&stack, &internal_url, Some("sl1.forged.token")).await.0, 401);
    let (status, content_type, bytes) = download(&stack, &internal_url, Some(&verifier)).await;
    assert_eq!((status.as_u16(), content_type.as_str()), (200, "application/pdf"));
    assert!(bytes == internal);

    // A video above the general request limit, within the evidence limit.
    let video = photo(4, 4 * 1024 * 1024 + 512 * 1024);
    let (status, stored) = upload(&stack, Some(&inspector), "", "video/mp4", &video).await;
    assert_eq!(status, 201, "{stored}");
    assert_eq!(stored["sha256"], sha256(&video));

    // Refusals: too large, no token, a role that does not upload, a type a browser would run.
    let (status, _) = upload(&stack, Some(&inspector), "", "image/jpeg", &photo(2, MAX_BYTES + 1)).await;
    assert_eq!(status, 413);
    assert_eq!(upload(&stack, None, "", "image/jpeg", &photo(3, 100)).await.0, 401);
    assert_eq!(upload(&stack, Some(&stack.admin()), "", "image/jpeg", &photo(3, 100)).await.0, 403);
    assert_eq!(upload(&stack, Some(&inspector), "", "text/html", b"<script>alert(1)</script>").await.0, 415);
    let (status, problem) = upload(&stack, Some(&inspector), "?visibility=secret", "image/jpeg", &photo(3, 100)).await;
    assert_eq!((status.as_u16(), &problem["errors"][0]["field"]), (422, &Value::from("visibility")));
    let nothing = format!("{}/v1/evidence/{}", stack.url("intake"), sha256(b"never uploaded"));
    assert_eq!(download(&stack, &nothing, None).await.0, 404);

    // The bytes are in the namespace's bucket of the object store…
    let client = async_nats::connect(stack.nats.url()).await.expect("connect to the test's NATS");
    let js = async_nats::jetstream::new(client);
    let bucket = js.get_object_store(format!("{}_evidence", stack.namespace)).await.expect("the evidence bucket");
    let mut object = bucket.get(sha256(&public)).await.expect("the public photo's object");
    let mut read = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut object, &mut read).await.expect("read the object");
    assert!(read == public);
    let names: Vec<String> =
        bucket.list().await.expect("list").filter_map(|o| async move { o.ok().map(|o| o.name) }).collect().await;
    assert_eq!(names.len(), 3, "{names:?}");

    // …and survive a restart of intake.
    stack.restart("intake").await;
    let (status, _, bytes) = download(&stack, &public_url, None).await;
    assert_eq!(status, 200);
    assert!(bytes == public);
    assert_eq!(download(&stack, &internal_url, None).await.0, 401);
}

/// Evidence attached to a reported problem travels in `problem.reported` (a declared field of
/// the contract): the public record shows the public photo, which anyone can download, and
/// never the internal one.
#[tokio::test(flavor = "multi_thread")]
async fn public_evidence_of_a_reported_problem_reaches_the_public_record() {
    let mut options = StackOptions::default();
    options.env.push(("SKYLEDGER__ASSIGNMENT__GATHERING_WINDOW_MILLIS".into(), "300".into()));
    let stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), options).await;
    let receiver = shared::testing::WebhookReceiver::start(vec![]).await;
    crate::support::campaign(&stack, &receiver).await;
    let inspector = crate::support::inspector(&stack);
    let public = photo(7, 2_000);
    let (status, stored) = upload(&stack, Some(&inspector), "?visibility=public", "image/jpeg", &public).await;
    assert_eq!(status, 201, "{stored}");
    let public_url = stored["url"].as_str().unwrap().to_string();
    let (status, stored) = upload(&stack, Some(&inspector), "", "image/jpeg", &photo(8, 2_000)).await;
    assert_eq!(status, 201, "{stored}");
    let internal_url = stored["url"].as_str().unwrap().to_string();

    let mut report = crate::support::inspection(crate::support::XINGTAI, Some("130502"), "某某铸造厂", &["dust"]);
    report["problems"][0]["evidence"] = serde_json::json!([
        { "url": public_url, "sha256": sha256(&public), "internal": false },
        { "url": internal_url, "internal": true },
    ]);
    let id = crate::support::problem_ids(&report)[0].clone();
    let (status, answer) = crate::support::post(&stack, "intake", "/v1/inspections", &inspector, report).await;
    assert_eq!(status, 201, "{answer}");

    let record = crate::publication::wait_public(&stack, &id).await;
    assert_eq!(
        record["evidence"],
        serde_json::json!([{ "url": public_url, "sha256": sha256(&public) }]),
        "the public photo, and only it: {record}"
    );
    let (status, _, bytes) = download(&stack, &public_url, None).await;
    assert_eq!(status, 200);
    assert!(bytes == public, "anyone downloads what the public record links");
    let (_, feed) = crate::support::get(&stack, "publication", "/feed.json", None).await;
    assert!(!feed.to_string().contains(&internal_url), "internal evidence never reaches a public format");
}
