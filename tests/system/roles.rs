//! Each role is held to its bounds, by each service on its own.

use serde_json::json;
use shared::auth::Role;
use shared::testing::{WebhookReceiver, eventually};

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn roles_hold_inspectors_to_their_cities_and_verifiers_to_other_teams_and_provinces() {
    let stack = start().await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let inspector = inspector(&stack);

    // An inspector reports only for the cities its team covers in the round…
    let (status, problem) =
        post(&stack, "intake", "/v1/inspections", &inspector, inspection(TAIYUAN, None, "丙厂", &["dust"])).await;
    assert_eq!((status.as_u16(), problem["errors"][0]["field"].as_str()), (403, Some("city_code")), "{problem}");
    // …and only as its own team.
    let mut as_other = inspection(XINGTAI, None, "丙厂", &["dust"]);
    as_other["team"] = json!(VERIFIER);
    let (status, problem) = post(&stack, "intake", "/v1/inspections", &inspector, as_other).await;
    assert_eq!((status.as_u16(), problem["errors"][0]["field"].as_str()), (403, Some("team")), "{problem}");
    // A team never covers a city of its own province.
    let (status, problem) = send(
        &stack,
        "PUT",
        "intake",
        &format!("/v1/rounds/{ROUND}/teams/{HEBEI_TEAM}"),
        Some(&stack.admin()),
        Some(json!({ "cities": [XINGTAI] })),
    )
    .await;
    assert_eq!((status.as_u16(), problem["errors"][0]["field"].as_str()), (422, Some("cities[0]")), "{problem}");

    let report = inspection(XINGTAI, Some("130503"), "丁厂", &["coal_boiler"]);
    let id = problem_ids(&report)[0].clone();
    assert_eq!(post(&stack, "intake", "/v1/inspections", &inspector, report).await.0, 201);

    // Another city's government does not see it, nor can it act on it: 404, not 403.
    let handan = stack.token(Role::LocalGov, None, Some(HANDAN));
    let rectification = json!({ "measures": "已淘汰锅炉", "completed_at": "2019-05-20T09:00:00+08:00" });
    let county = stack.token(Role::LocalGov, None, Some("130503"));
    eventually("the county to be able to report rectification", WAIT, || async {
        let (status, _) =
            post(&stack, "verification", &format!("/v1/problems/{id}/rectification"), &handan, rectification.clone())
                .await;
        assert_eq!(status, 404, "another city's government must not find the problem");
        let (status, _) =
            post(&stack, "verification", &format!("/v1/problems/{id}/rectification"), &county, rectification.clone())
                .await;
        (status == 201).then_some(())
    })
    .await;
    let (_, ledger) = get(&stack, "assignment", "/v1/ledger", Some(&handan)).await;
    assert_eq!(ledger["count"], 0, "{ledger}");
    let (_, ledger) = get(&stack, "assignment", "/v1/ledger", Some(&county)).await;
    assert_eq!(ledger["count"], 1, "{ledger}");

    // The finder may not verify, nor a team from the city's province; another team may.
    let verdict = |team: &str| json!({ "result": "rectified", "team": team });
    let finder = stack.token(Role::Verifier, Some(FINDER), None);
    let (status, problem) =
        post(&stack, "verification", &format!("/v1/problems/{id}/verdict"), &finder, verdict(FINDER)).await;
    assert_eq!((status.as_u16(), problem["errors"][0]["field"].as_str()), (403, Some("team")), "{problem}");
    let hebei = stack.token(Role::Verifier, Some(HEBEI_TEAM), None);
    let (status, problem) =
        post(&stack, "verification", &format!("/v1/problems/{id}/verdict"), &hebei, verdict(HEBEI_TEAM)).await;
    assert_eq!((status.as_u16(), problem["errors"][0]["field"].as_str()), (403, Some("team")), "{problem}");
    let inspector_as_verifier =
        post(&stack, "verification", &format!("/v1/problems/{id}/verdict"), &inspector, verdict(FINDER)).await;
    assert_eq!(inspector_as_verifier.0, 403);
    let verifier = stack.token(Role::Verifier, Some(VERIFIER), None);
    let (status, answer) = post(
        &stack,
        "verification",
        &format!("/v1/problems/{id}/verdict"),
        &verifier,
        json!({ "result": "fake_rectification", "team": VERIFIER }),
    )
    .await;
    assert_eq!((status.as_u16(), answer["status"].as_str()), (201, Some("reopened")), "{answer}");
    // The first verdict counts: a second one finds nothing to verify.
    let (status, _) =
        post(&stack, "verification", &format!("/v1/problems/{id}/verdict"), &verifier, verdict(VERIFIER)).await;
    assert_eq!(status, 409);
}

#[tokio::test(flavor = "multi_thread")]
async fn token_create_prints_a_token_the_services_accept() {
    let dir = std::env::temp_dir().join(format!("skyledger-cli-{}", uuid::Uuid::now_v7()));
    let key = dir.join("signing.key");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_skyledger"))
        .args(["token", "create", "--role", "local_gov", "--jurisdiction", "130502"])
        .env("SKYLEDGER__AUTH__SIGNING_KEY_FILE", &key)
        .env("SKYLEDGER_CONFIG", dir.join("none.toml"))
        .output()
        .expect("run skyledger");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let token = String::from_utf8(output.stdout).unwrap();
    assert_eq!(token.lines().count(), 1, "the token alone on stdout");
    let verifier = shared::auth::TokenSigner::load_or_create(&key).unwrap().verifier();
    let claims = verifier.verify(token.trim(), time::OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    assert_eq!((claims.role, claims.jurisdiction.as_deref()), (Role::LocalGov, Some("130502")));
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_skyledger"))
        .args(["token", "create", "--role", "inspector"])
        .env("SKYLEDGER__AUTH__SIGNING_KEY_FILE", &key)
        .output()
        .unwrap();
    assert!(!refused.status.success(), "an inspector token needs a team");
    std::fs::remove_dir_all(dir).unwrap();
}
