//! Intake at campaign volume: batches judged item by item, duplicates and rebounds across
//! rounds, the campaign office's corrections and team quality figures, set-up from the CLI.

use std::collections::HashSet;

use serde_json::{Value, json};
use shared::auth::Role;
use shared::testing::{WebhookReceiver, eventually};
use uuid::Uuid;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_of_a_thousand_with_bad_items_stores_only_the_good_ones_and_a_resend_changes_nothing() {
    let stack = start().await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let mut items = vec![];
    let mut expected: Vec<(&str, Option<&str>)> = vec![];
    for i in 0..1000 {
        let mut item = inspection(XINGTAI, None, &format!("企业 {i}"), if i % 10 == 0 { &["dust"] } else { &[] });
        item["site"]["lat"] = json!(37.0 + i as f64 / 10_000.0);
        let bad = match i % 100 {
            3 => Some(("site.lat", json!(200))),
            11 => Some(("city_code", json!("999900"))),
            23 => Some(("city_code", json!(TAIYUAN))),
            41 => Some(("site.credit_code", json!("91350100M000100Y44"))),
            57 => Some(("problems[0].category", json!("littering"))),
            79 => Some(("site", Value::Null)),
            _ => None,
        };
        match bad {
            Some(("problems[0].category", value)) => {
                item["problems"] = json!([{ "id": Uuid::now_v7(), "category": value, "description": "x" }]);
                expected.push(("refused", Some("problems[0].category")));
            }
            Some((field, value)) => {
                let mut target = &mut item;
                for key in field.split('.') {
                    target = &mut target[key];
                }
                *target = value;
                expected.push(("refused", Some(field)));
            }
            None => expected.push(("created", None)),
        }
        items.push(item);
    }
    let answer = batch(&stack, items.clone()).await;
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 1000);
    for (i, (result, (status, field))) in results.iter().zip(&expected).enumerate() {
        assert_eq!(result["id"], items[i]["id"], "results in item order");
        assert_eq!(result["status"], *status, "item {i}: {result}");
        if let Some(field) = field {
            assert!(result["errors"].as_array().unwrap().iter().any(|e| e["field"] == *field), "item {i}: {result}");
        }
    }
    assert_eq!(count(&stack, "SELECT count(*) FROM intake.inspections").await, 940);
    let events = count(&stack, "SELECT count(*) FROM intake.outbox").await;

    // The same batch again: everything already had or refused again, nothing stored.
    let again = batch(&stack, items).await;
    let statuses: Vec<&str> =
        again["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == "already_had").count(), 940);
    assert_eq!(statuses.iter().filter(|s| **s == "refused").count(), 60);
    assert_eq!(count(&stack, "SELECT count(*) FROM intake.inspections").await, 940);
    assert_eq!(count(&stack, "SELECT count(*) FROM intake.outbox").await, events, "no second event");
    let (_, quality) = get(&stack, "intake", &format!("/v1/rounds/{ROUND}/quality"), Some(&stack.admin())).await;
    let finder = quality["teams"].as_array().unwrap().iter().find(|t| t["team"] == FINDER).unwrap().clone();
    assert_eq!((finder["checks"].as_i64(), finder["refused"].as_i64()), (Some(940), Some(120)), "{quality}");
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_and_rebounds_are_recognised_across_two_rounds() {
    let stack = start().await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let admin = stack.admin();
    let (status, _) = send(
        &stack,
        "PUT",
        "intake",
        "/v1/rounds/2019-R02",
        Some(&admin),
        Some(json!({ "starts_on": "2019-05-28", "ends_on": "2019-06-11", "cities": [XINGTAI] })),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(
        &stack,
        "PUT",
        "intake",
        &format!("/v1/rounds/2019-R02/teams/{FINDER}"),
        Some(&admin),
        Some(json!({ "cities": [XINGTAI] })),
    )
    .await;
    assert_eq!(status, 200);
    let site = |round: &str| {
        let mut report = inspection(XINGTAI, Some("130502"), "某某铸造厂", &["dust"]);
        report["round"] = json!(round);
        report["site"]["credit_code"] = json!("91350100M000100Y43");
        report
    };
    let inspector = inspector(&stack);
    let first = site(ROUND);
    let entry = problem_ids(&first)[0].clone();
    let (_, answer) = post(&stack, "intake", "/v1/inspections", &inspector, first).await;
    assert_eq!(answer["problems"][0]["outcome"], "reported");
    // The same site and category while the first is open: a duplicate, no new ledger entry.
    let (_, answer) = post(&stack, "intake", "/v1/inspections", &inspector, site(ROUND)).await;
    assert_eq!(
        (answer["problems"][0]["outcome"].as_str(), answer["problems"][0]["duplicate_of"].as_str()),
        (Some("duplicate"), Some(entry.as_str()))
    );

    // The entry is fixed and closed…
    let county = stack.token(Role::LocalGov, None, Some("130502"));
    let rectification = json!({ "measures": "已整改", "completed_at": "2019-05-20T09:00:00+08:00" });
    eventually("the rectification", WAIT, || async {
        (post(&stack, "verification", &format!("/v1/problems/{entry}/rectification"), &county, rectification.clone())
            .await
            .0
            == 201)
            .then_some(())
    })
    .await;
    let verifier = stack.token(Role::Verifier, Some(VERIFIER), None);
    assert_eq!(
        post(
            &stack,
            "verification",
            &format!("/v1/problems/{entry}/verdict"),
            &verifier,
            json!({ "result": "rectified", "team": VERIFIER })
        )
        .await
        .0,
        201
    );
    // …and in the next round the same site and category is back: a rebound, a new flagged entry.
    let rebound = eventually("intake to learn of the closure and see a rebound", WAIT, || async {
        let (_, answer) = post(&stack, "intake", "/v1/inspections", &inspector, site("2019-R02")).await;
        let outcome = answer["problems"][0].clone();
        (outcome["outcome"] == "rebound").then_some(outcome)
    })
    .await;
    assert_eq!(rebound["rebound_of"], entry.as_str());
    let rebound_id = rebound["id"].as_str().unwrap().to_string();
    let ledger_entry = eventually("the rebound in the ledger", WAIT, || async {
        let (status, body) = get(&stack, "assignment", &format!("/v1/problems/{rebound_id}"), Some(&admin)).await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(ledger_entry["entry"]["rebound_of"], entry.as_str());
    let (_, quality) = get(&stack, "intake", &format!("/v1/rounds/{ROUND}/quality"), Some(&admin)).await;
    let finder = quality["teams"].as_array().unwrap().iter().find(|t| t["team"] == FINDER).unwrap().clone();
    assert_eq!(
        (finder["checks"].as_i64(), finder["problems"].as_i64(), finder["duplicates"].as_i64()),
        (Some(2), Some(1), Some(1))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_campaign_office_withdraws_and_merges_with_reasons_and_sets_up_from_the_cli() {
    let stack = start().await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let admin = stack.admin();
    let (a, b, c) = (
        inspection(XINGTAI, None, "甲厂", &["vocs"]),
        inspection(XINGTAI, None, "甲厂 (东门)", &["vocs"]),
        inspection(XINGTAI, None, "乙厂", &["dust"]),
    );
    let ids: Vec<String> = [&a, &b, &c].iter().map(|i| problem_ids(i)[0].clone()).collect();
    batch(&stack, vec![a, b, c]).await;
    let merge = json!({ "into": ids[0], "reason": "同一企业，两个门牌" });
    let (status, body) = post(&stack, "intake", &format!("/v1/problems/{}/merge", ids[1]), &admin, merge.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(post(&stack, "intake", &format!("/v1/problems/{}/merge", ids[1]), &admin, merge).await.0, 409, "once");
    let (status, _) =
        post(&stack, "intake", &format!("/v1/problems/{}/withdraw", ids[2]), &admin, json!({ "reason": "录入错误" }))
            .await;
    assert_eq!(status, 200);
    let (status, problem) =
        post(&stack, "intake", &format!("/v1/problems/{}/withdraw", ids[0]), &admin, json!({ "reason": "" })).await;
    assert_eq!((status.as_u16(), problem["errors"][0]["field"].as_str()), (422, Some("reason")));
    let inspector = inspector(&stack);
    assert_eq!(
        post(&stack, "intake", &format!("/v1/problems/{}/withdraw", ids[0]), &inspector, json!({ "reason": "x" }))
            .await
            .0,
        403
    );

    eventually("the ledger to take them out", WAIT, || async {
        let (_, ledger) = get(&stack, "assignment", "/v1/ledger", Some(&admin)).await;
        let statuses: HashSet<String> = ledger["items"]
            .as_array()?
            .iter()
            .map(|i| format!("{}:{}", i["problem_id"].as_str().unwrap(), i["status"].as_str().unwrap()))
            .collect();
        (statuses.contains(&format!("{}:merged", ids[1])) && statuses.contains(&format!("{}:withdrawn", ids[2])))
            .then_some(())
    })
    .await;
    let (_, quality) = get(&stack, "intake", &format!("/v1/rounds/{ROUND}/quality"), Some(&admin)).await;
    let finder = quality["teams"].as_array().unwrap().iter().find(|t| t["team"] == FINDER).unwrap().clone();
    assert_eq!(
        (finder["problems"].as_i64(), finder["duplicates"].as_i64(), finder["withdrawn"].as_i64()),
        (Some(1), Some(1), Some(1)),
        "{quality}"
    );

    // Set-up from the command line, refused with the field named when it breaks a rule.
    let setup = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_skyledger"))
            .arg("setup")
            .args(args)
            .args(["--url", &stack.url("intake"), "--token", &admin])
            .output()
            .expect("run skyledger setup")
    };
    assert!(setup(&["team", "T-610", "--home-province", "610000", "--members", "赵,钱,孙"]).status.success());
    assert!(
        setup(&[
            "round",
            "2019-R03",
            "--starts-on",
            "2019-06-20",
            "--ends-on",
            "2019-07-04",
            "--cities",
            "130500,610100"
        ])
        .status
        .success()
    );
    let own_province = setup(&["assign", "2019-R03", "T-610", "--cities", "610100"]);
    assert!(!own_province.status.success());
    assert!(String::from_utf8_lossy(&own_province.stdout).contains("cities[0]"));
    assert!(setup(&["assign", "2019-R03", "T-610", "--cities", "130500"]).status.success());
    assert!(
        setup(&[
            "package",
            XINGTAI,
            "--ministry-department",
            "大气司",
            "--affiliated-unit",
            "环境规划院",
            "--provincial-department",
            "河北省生态环境厅"
        ])
        .status
        .success()
    );
}
