//! Rectifications and verdicts synced from the field in batches: each item judged by the single
//! endpoints' rules, a refused item changing nothing, and a resent batch applying nothing twice.

use std::collections::HashMap;

use serde_json::{Value, json};
use shared::auth::Role;
use shared::events::{PROBLEM_CLOSED, PROBLEM_REOPENED, RECTIFICATION_REPORTED};
use shared::testing::{Stack, WebhookReceiver, eventually};
use uuid::Uuid;

use crate::publication::wait_status;
use crate::support::*;

/// The item statuses of a batch's answer, and the first field of each refusal ("" otherwise).
fn outcomes(answer: &Value) -> Vec<(String, String)> {
    answer["results"]
        .as_array()
        .unwrap_or_else(|| panic!("results: {answer}"))
        .iter()
        .map(|r| {
            let field = r["errors"][0]["field"].as_str().unwrap_or_default().to_string();
            (r["status"].as_str().unwrap_or_default().to_string(), field)
        })
        .collect()
}

fn expect(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(s, f)| (s.to_string(), f.to_string())).collect()
}

async fn verification_status(stack: &Stack, id: &str) -> String {
    let (_, body) = get(stack, "verification", &format!("/v1/problems/{id}"), Some(&stack.admin())).await;
    body["status"].as_str().unwrap_or_default().to_string()
}

/// Each problem's status in assignment's ledger for the round.
async fn ledger(stack: &Stack) -> HashMap<String, String> {
    let (status, body) = get(stack, "assignment", &format!("/v1/ledger?round={ROUND}"), Some(&stack.admin())).await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["problem_id"].as_str().unwrap_or_default().to_string(),
                i["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn rectifications_and_verdicts_sync_in_batches_and_a_resend_applies_nothing_twice() {
    let stack = start().await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;

    // Five problems in Xingtai (two answered by a county of it) and one in Handan.
    let mut checks: Vec<Value> = (0..5)
        .map(|i| {
            let county = (i < 2).then_some("130502");
            inspection(XINGTAI, county, &format!("批量整改厂 {i}"), &["scattered_polluting"])
        })
        .collect();
    checks.push(inspection(HANDAN, None, "邯郸某厂", &["dust"]));
    let ids: Vec<String> = checks.iter().map(|c| problem_ids(c)[0].clone()).collect();
    let answer = batch(&stack, checks).await;
    assert!(answer["results"].as_array().unwrap().iter().all(|r| r["status"] == "created"), "{answer}");
    for id in &ids {
        eventually(&format!("verification to have {id} handed over"), WAIT, || async {
            (verification_status(&stack, id).await == "assigned").then_some(())
        })
        .await;
    }
    let (x, handan) = (&ids[..5], &ids[5]);

    // Xingtai's rectifications: four go through; Handan's problem is not Xingtai's to report,
    // a blank report is bad input, and a second rectification of a problem in the same batch
    // finds it rectified already.
    let city = stack.token(Role::LocalGov, None, Some(XINGTAI));
    let fix = |problem: &str, measures: &str| {
        json!({ "problem_id": problem, "id": Uuid::now_v7(), "measures": measures,
                "completed_at": "2019-05-20T09:00:00+08:00",
                "evidence": [{ "url": "https://evidence.example/after.jpg" }] })
    };
    let fixes = json!({ "items": [
        fix(&x[0], "已取缔，设备拆除"), fix(&x[1], "已停产整治"), fix(&x[2], "已安装除尘设施"), fix(&x[3], "已清理"),
        fix(handan, "不是本市的问题"), fix(&x[4], "   "), fix(&x[0], "再次报告"),
    ]});
    let (status, first) = post(&stack, "verification", "/v1/rectifications/batch", &city, fixes.clone()).await;
    assert_eq!(status, 200, "{first}");
    let sent = expect(&[
        ("created", ""),
        ("created", ""),
        ("created", ""),
        ("created", ""),
        ("refused", "problem_id"),
        ("refused", "measures"),
        ("refused", "status"),
    ]);
    assert_eq!(outcomes(&first), sent, "{first}");
    assert_eq!(first["results"][0]["id"], x[0].as_str(), "results name the problem, in item order");
    assert_eq!(first["results"][0]["rectification_id"], fixes["items"][0]["id"]);

    // The same batch again (the app did not hear the answer): nothing new.
    let (status, again) = post(&stack, "verification", "/v1/rectifications/batch", &city, fixes.clone()).await;
    assert_eq!(status, 200, "{again}");
    let resent = expect(&[
        ("already_had", ""),
        ("already_had", ""),
        ("already_had", ""),
        ("already_had", ""),
        ("refused", "problem_id"),
        ("refused", "measures"),
        ("refused", "status"),
    ]);
    assert_eq!(outcomes(&again), resent, "{again}");
    assert_eq!(again["results"][1]["rectification_id"], first["results"][1]["rectification_id"]);
    assert_eq!(count(&stack, "SELECT count(*) FROM verification.rectifications").await, 4);
    for id in &x[..4] {
        assert_eq!(verification_status(&stack, id).await, "rectification_reported");
    }
    assert_eq!(verification_status(&stack, &x[4]).await, "assigned", "a refused item changes nothing");
    assert_eq!(verification_status(&stack, handan).await, "assigned");

    // The verifier team's verdicts: two close, a faked fix reopens; a problem not rectified,
    // a team not the token's, and a second verdict on a problem in the same batch are refused.
    let verifier = stack.token(Role::Verifier, Some(VERIFIER), None);
    let verdict = |problem: &str, result: &str, team: &str| json!({ "problem_id": problem, "id": Uuid::now_v7(), "result": result, "team": team, "note": "现场核查" });
    let verdicts = json!({ "items": [
        verdict(&x[0], "rectified", VERIFIER), verdict(&x[1], "rectified", VERIFIER),
        verdict(&x[2], "fake_rectification", VERIFIER), verdict(&x[4], "rectified", VERIFIER),
        verdict(&x[3], "rectified", HEBEI_TEAM), verdict(&x[0], "not_rectified", VERIFIER),
    ]});
    let (status, first) = post(&stack, "verification", "/v1/verdicts/batch", &verifier, verdicts.clone()).await;
    assert_eq!(status, 200, "{first}");
    let given = expect(&[
        ("created", ""),
        ("created", ""),
        ("created", ""),
        ("refused", "status"),
        ("refused", "team"),
        ("refused", "status"),
    ]);
    assert_eq!(outcomes(&first), given, "{first}");
    assert_eq!(
        (first["results"][0]["problem_status"].as_str(), first["results"][0]["deadline"].is_null()),
        (Some("closed"), true)
    );
    assert_eq!(first["results"][2]["problem_status"], "reopened");
    assert!(first["results"][2]["deadline"].is_string(), "a reopening has a new deadline: {first}");
    let (status, again) = post(&stack, "verification", "/v1/verdicts/batch", &verifier, verdicts.clone()).await;
    assert_eq!(status, 200, "{again}");
    let regiven = expect(&[
        ("already_had", ""),
        ("already_had", ""),
        ("already_had", ""),
        ("refused", "status"),
        ("refused", "team"),
        ("refused", "status"),
    ]);
    assert_eq!(outcomes(&again), regiven, "{again}");
    assert_eq!(count(&stack, "SELECT count(*) FROM verification.verdicts").await, 3);
    assert_eq!(count(&stack, "SELECT coalesce(sum(reopened_count), 0)::bigint FROM verification.problems").await, 1);

    // The stream has each event once, in each problem's order. The relay sends in the order
    // written, so once the verdicts' events are there, anything the resends wrote would be too.
    let closed = eventually("the verdicts' events", WAIT, || async {
        let closed = stream_events(&stack, "verification", &PROBLEM_CLOSED).await;
        (closed.len() >= 2).then_some(closed)
    })
    .await;
    let reopened = stream_events(&stack, "verification", &PROBLEM_REOPENED).await;
    let rectified = stream_events(&stack, "verification", &RECTIFICATION_REPORTED).await;
    let about = |events: &[shared::envelope::Event]| {
        let mut ids: Vec<String> = events.iter().map(|e| e.data["problem_id"].as_str().unwrap().to_string()).collect();
        ids.sort();
        ids
    };
    let sorted = |ids: &[String]| {
        let mut ids = ids.to_vec();
        ids.sort();
        ids
    };
    assert_eq!(about(&rectified), sorted(&x[..4]), "one rectification.reported per problem rectified");
    assert_eq!(about(&closed), sorted(&x[..2]));
    assert_eq!(about(&reopened), vec![x[2].clone()]);
    for event in closed.iter().chain(&reopened) {
        let fix =
            rectified.iter().find(|r| r.data["problem_id"] == event.data["problem_id"]).expect("its rectification");
        assert!(event.data["problem_seq"].as_i64() > fix.data["problem_seq"].as_i64(), "{event:?} after {fix:?}");
        assert_eq!(event.data["previous"]["rectification.reported"], fix.data["problem_seq"], "{event:?}");
    }

    // Assignment's ledger follows.
    let wanted: HashMap<String, String> = [
        (&x[0], "closed"),
        (&x[1], "closed"),
        (&x[2], "reopened"),
        (&x[3], "rectification_reported"),
        (&x[4], "assigned"),
        (handan, "assigned"),
    ]
    .into_iter()
    .map(|(id, status)| (id.clone(), status.to_string()))
    .collect();
    eventually("the ledger to follow the batches", WAIT, || async { (ledger(&stack).await == wanted).then_some(()) })
        .await;
    // Its counts say the same without listing the entries.
    let (status, counts) =
        get(&stack, "assignment", &format!("/v1/ledger/count?round={ROUND}"), Some(&stack.admin())).await;
    assert_eq!(status, 200, "{counts}");
    assert_eq!((counts["total"].as_i64(), counts["handed_over"].as_i64()), (Some(6), Some(6)), "{counts}");
    let by_status = json!({ "closed": 2, "reopened": 1, "rectification_reported": 1, "assigned": 2 });
    assert_eq!((&counts["by_status"], &counts["by_round"][ROUND]), (&by_status, &json!(6)), "{counts}");
    // The sheets still to sign for: Xingtai's token sees only Xingtai's; once signed, they are
    // no longer listed as waiting.
    let waiting = |token: String| {
        let stack = &stack;
        async move {
            let path = format!("/v1/handovers?round={ROUND}&acknowledged=false");
            let (status, sheets) = get(stack, "assignment", &path, Some(&token)).await;
            assert_eq!(status, 200, "{sheets}");
            sheets["items"].as_array().expect("items").clone()
        }
    };
    let all = waiting(stack.admin()).await;
    let cities: std::collections::BTreeSet<&str> = all.iter().map(|h| h["city_code"].as_str().unwrap()).collect();
    assert_eq!(cities, [HANDAN, XINGTAI].into(), "{all:?}");
    let xingtai = waiting(city.clone()).await;
    assert!(!xingtai.is_empty() && xingtai.iter().all(|h| h["city_code"] == XINGTAI), "{xingtai:?}");
    for sheet in &xingtai {
        let path = format!("/v1/handovers/{}/acknowledge", sheet["no"].as_str().unwrap());
        assert_eq!(post(&stack, "assignment", &path, &city, json!({})).await.0, 200);
    }
    let left = waiting(stack.admin()).await;
    assert!(left.iter().all(|h| h["city_code"] == HANDAN) && !left.is_empty(), "{left:?}");

    // The public record ends right.
    let public = wait_status(&stack, &x[0], "closed").await;
    let steps: Vec<&str> =
        public["history"].as_array().expect("history").iter().map(|h| h["status"].as_str().unwrap_or("")).collect();
    assert_eq!(steps, ["reported", "assigned", "rectification_reported", "closed"], "{public}");
    wait_status(&stack, &x[1], "closed").await;
    let public = wait_status(&stack, &x[2], "reopened").await;
    assert!(public["deadline"].is_string(), "{public}");
    wait_status(&stack, &x[3], "rectification_reported").await;
    let stats = eventually("the public statistics", WAIT, || async {
        let (status, stats) = get(&stack, "publication", &format!("/v1/stats?round={ROUND}"), None).await;
        (status == 200 && stats["summary"]["closed"] == 2 && stats["summary"]["reopened"] == 1).then_some(stats)
    })
    .await;
    assert_eq!(stats["summary"]["handed_over"], 6, "{stats}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_is_for_its_role_and_holds_at_most_a_thousand_items() {
    let stack = start().await;
    let city = stack.token(Role::LocalGov, None, Some(XINGTAI));
    let verifier = stack.token(Role::Verifier, Some(VERIFIER), None);
    let too_many = json!({ "items": vec![json!({}); 1001] });
    for (path, token) in [("/v1/rectifications/batch", &city), ("/v1/verdicts/batch", &verifier)] {
        let (status, answer) = post(&stack, "verification", path, token, too_many.clone()).await;
        assert_eq!(status, 422, "{path}: {answer}");
        assert_eq!(answer["errors"][0]["field"], "items", "{answer}");
    }
    let (status, _) = post(&stack, "verification", "/v1/verdicts/batch", &city, json!({ "items": [] })).await;
    assert_eq!(status, 403, "a government gives no verdicts");
    let (status, _) = post(&stack, "verification", "/v1/rectifications/batch", &verifier, json!({ "items": [] })).await;
    assert_eq!(status, 403, "a verifier reports no rectification");
    // Unreadable items are refused one by one, naming their field.
    let items = json!({ "items": [{ "problem_id": "not-a-uuid", "measures": "x", "completed_at": "2019-05-20T09:00:00+08:00" },
                                  { "problem_id": Uuid::now_v7(), "measures": "x" }, 7] });
    let (status, answer) = post(&stack, "verification", "/v1/rectifications/batch", &city, items).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        outcomes(&answer),
        expect(&[("refused", "problem_id"), ("refused", "completed_at"), ("refused", "body")]),
        "{answer}"
    );
}
