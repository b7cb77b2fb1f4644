//! The registers site checks are judged against: a city's heavy-pollution emergency list,
//! imported from a spreadsheet, and the alert periods it declares.

use serde_json::{Value, json};
use shared::testing::{WebhookReceiver, eventually};
use uuid::Uuid;

use crate::support::*;

/// The `i`th enterprise of Xingtai's list: a valid unified social credit code.
fn listed(i: usize) -> String {
    intake::domain::with_check_character(&format!("91130500MA{i:07}")).expect("17 characters of the alphabet")
}

/// A site check of `credit_code` at `checked_at`, with one problem of `category` ("" for none).
fn check_at(credit_code: &str, checked_at: &str, category: &str) -> Value {
    json!({
        "id": Uuid::now_v7(), "round": ROUND, "team": FINDER, "city_code": XINGTAI, "checked_at": checked_at,
        "site": { "name": "某钢铁厂", "credit_code": credit_code, "lat": 37.07, "lon": 114.50 },
        "problems": [ { "id": Uuid::now_v7(), "category": category, "severity": "serious", "description": "未落实减排措施" } ],
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn an_emergency_list_is_imported_an_alert_declared_and_checks_during_it_are_emergency_plan_checks() {
    let stack = start().await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;

    // A thousand enterprises and two bad lines, from the office's spreadsheet.
    let dir = std::env::temp_dir().join(format!("skyledger-emergency-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("xingtai.csv");
    let mut csv = String::from("credit_code,name,yellow,orange,red\n");
    for i in 0..1000 {
        csv.push_str(&format!("{},企业 {i},错峰生产,限产 30%,停产\n", listed(i)));
    }
    let good = listed(5000);
    let wrong_check = format!("{}{}", &good[..17], if good.ends_with('0') { '1' } else { '0' });
    csv.push_str(&format!("{wrong_check},校验位错,,限产,\n"));
    csv.push_str(&format!("{},,,限产,\n", listed(5001)));
    std::fs::write(&file, csv).unwrap();
    let admin = stack.admin();
    let import = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_skyledger"))
            .args(["import-emergency-list", file.to_str().unwrap(), "--city", XINGTAI])
            .args(["--url", &stack.url("intake"), "--token", &admin])
            .output()
            .expect("run skyledger import-emergency-list")
    };
    let first = import();
    let said = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(said.contains("1000 created, 0 already had, 2 refused"), "{said}");
    let report = std::fs::read_to_string(dir.join("xingtai.errors.csv")).unwrap();
    assert!(report.contains("1002,credit_code,") && report.contains("1003,name,"), "{report}");
    let again = import();
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 created, 1000 already had, 2 refused"));
    let (_, list) = get(&stack, "intake", &format!("/v1/cities/{XINGTAI}/emergency-list?limit=2"), Some(&admin)).await;
    assert_eq!(list["count"], 1000, "{list}");
    assert_eq!(list["items"][0]["measures"]["orange"], "限产 30%", "{list}");
    std::fs::remove_dir_all(dir).unwrap();

    // An orange alert for two days; a bad one is refused, naming its field.
    let alerts = format!("/v1/cities/{XINGTAI}/alerts");
    put_ok(
        &stack,
        "intake",
        &format!("{alerts}/2019-05-10"),
        json!({
        "level": "orange", "from": "2019-05-10T00:00:00+08:00", "to": "2019-05-12T00:00:00+08:00" }),
    )
    .await;
    for (body, field) in [
        (json!({ "level": "purple", "from": "2019-05-13T00:00:00+08:00", "to": "2019-05-14T00:00:00+08:00" }), "level"),
        (json!({ "level": "red", "from": "2019-05-14T00:00:00+08:00", "to": "2019-05-13T00:00:00+08:00" }), "to"),
    ] {
        let (status, problem) = send(&stack, "PUT", "intake", &format!("{alerts}/bad"), Some(&admin), Some(body)).await;
        assert_eq!((status.as_u16(), problem["errors"][0]["field"].as_str()), (422, Some(field)), "{problem}");
    }
    let (_, declared) = get(&stack, "intake", &alerts, Some(&admin)).await;
    assert_eq!(declared["count"], 1, "the refused alerts changed nothing: {declared}");

    // During the alert, at a listed enterprise: an emergency-plan check, and a problem reported
    // without a category is an emergency-plan problem; one with a category keeps it.
    let token = inspector(&stack);
    let during = "2019-05-11T09:30:00+08:00";
    let outside = "2019-05-13T09:30:00+08:00";
    let unlisted = intake::domain::with_check_character("91130500MB0000001").expect("17 characters of the alphabet");
    let items = vec![
        check_at(&listed(1), during, ""),
        check_at(&listed(2), during, "dust"),
        check_at(&listed(3), outside, "dust"),
        check_at(&unlisted, during, "vocs"),
        check_at(&listed(4), outside, ""),
        check_at(&unlisted, during, ""),
    ];
    let (status, answer) = post(&stack, "intake", "/v1/inspections/batch", &token, json!({ "items": items })).await;
    assert!(status.is_success(), "{answer}");
    let results = answer["results"].as_array().unwrap();
    let alert_of = |i: usize| results[i]["emergency_alert"].as_str();
    assert_eq!(
        (0..4).map(|i| (results[i]["status"].as_str(), alert_of(i))).collect::<Vec<_>>(),
        vec![
            (Some("created"), Some("orange")),
            (Some("created"), Some("orange")),
            (Some("created"), None),
            (Some("created"), None)
        ],
        "{answer}"
    );
    for i in [4, 5] {
        assert_eq!(results[i]["status"], "refused", "no category outside an emergency-plan check: {answer}");
        assert_eq!(results[i]["errors"][0]["field"], "problems[0].category", "{answer}");
    }
    let defaulted = items[0]["problems"][0]["id"].as_str().unwrap();
    let (_, problem) = get(&stack, "intake", &format!("/v1/problems/{defaulted}"), Some(&admin)).await;
    assert_eq!(problem["category"], "emergency_plan", "{problem}");
    let kept = items[1]["problems"][0]["id"].as_str().unwrap();
    let (_, problem) = get(&stack, "intake", &format!("/v1/problems/{kept}"), Some(&admin)).await;
    assert_eq!(problem["category"], "dust", "{problem}");

    // The public statistics count the emergency-plan checks.
    let stats = eventually("the emergency-plan checks counted", WAIT, || async {
        let (_, stats) = get(&stack, "publication", "/v1/stats", None).await;
        (stats["summary"]["site_checks"] == 4).then_some(stats)
    })
    .await;
    assert_eq!(stats["summary"]["emergency_plan_checks"], 2, "{}", stats["summary"]);
    assert_eq!(stats["cities"][XINGTAI]["emergency_plan_checks"], 2, "{}", stats["cities"][XINGTAI]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scattered_enterprises_register_reaches_zero_in_the_public_statistics() {
    let stack = start().await;
    let admin = stack.admin();
    let dir = std::env::temp_dir().join(format!("skyledger-register-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let import = |file: &std::path::Path, city: &str, register: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_skyledger"))
            .args(["import-register", file.to_str().unwrap(), "--city", city, "--register", register])
            .args(["--url", &stack.url("intake"), "--token", &admin])
            .output()
            .expect("run skyledger import-register");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };

    // Xingtai's five scattered polluting enterprises, three still to deal with, and a bad line.
    let scattered = dir.join("scattered.csv");
    std::fs::write(
        &scattered,
        "id,name,county_code,state\nS-1,甲小作坊,130502,pending\nS-2,乙小作坊,,pending\nS-3,丙小作坊,,pending\n\
         S-4,丁小作坊,,shut_down\nS-5,戊小作坊,,upgraded\nS-6,己小作坊,130402,pending\nS-7,庚小作坊,,cleaned\n",
    )
    .unwrap();
    let said = import(&scattered, XINGTAI, "scattered_enterprises");
    assert!(said.contains("5 created, 0 already had, 2 refused"), "{said}");
    let report = std::fs::read_to_string(dir.join("scattered.errors.csv")).unwrap();
    assert!(report.contains("7,county_code,") && report.contains("8,state,"), "{report}");
    // Handan's coal-to-gas villages, one lagging.
    let villages = dir.join("villages.csv");
    std::fs::write(&villages, "id,name,county_code,state\nV-1,东村,,supplied\nV-2,西村,,lagging\nV-3,南村,,building\n")
        .unwrap();
    assert!(import(&villages, HANDAN, "coal_to_gas_villages").contains("3 created"));

    let registers = |expected_outstanding: i64| {
        let stack = &stack;
        async move {
            eventually("the registers counted", WAIT, || async {
                let (_, stats) = get(stack, "publication", "/v1/stats", None).await;
                let r = &stats["registers"];
                (r["scattered_enterprises"]["cities"][XINGTAI]["outstanding"] == expected_outstanding
                    && r["coal_to_gas_villages"]["total"] == 3)
                    .then(|| r.clone())
            })
            .await
        }
    };
    let r = registers(3).await;
    assert_eq!(r["scattered_enterprises"]["cities"][XINGTAI]["total"], 5, "{r}");
    assert_eq!(
        (&r["coal_to_gas_villages"]["lagging"], &r["coal_to_gas_villages"]["outstanding"]),
        (&json!(1), &json!(2)),
        "{r}"
    );
    assert_eq!(r["coal_boilers"]["total"], 0, "an empty register is shown at zero: {r}");

    // The three cleaned up: Xingtai's register is at zero, by API and on the public page.
    let (status, answer) = post(
        &stack,
        "intake",
        &format!("/v1/cities/{XINGTAI}/registers/scattered_enterprises"),
        &admin,
        json!({
        "items": [
            { "id": "S-1", "name": "甲小作坊", "county_code": "130502", "state": "shut_down" },
            { "id": "S-2", "name": "乙小作坊", "state": "relocated" },
            { "id": "S-3", "name": "丙小作坊", "state": "upgraded" } ] }),
    )
    .await;
    assert!(status.is_success(), "{answer}");
    assert_eq!(answer["results"][0]["status"], "already_had", "{answer}");
    let r = registers(0).await;
    assert_eq!(r["scattered_enterprises"]["by_state"]["pending"], serde_json::Value::Null, "{r}");
    let (_, held) =
        get(&stack, "intake", &format!("/v1/cities/{XINGTAI}/registers/scattered_enterprises"), Some(&admin)).await;
    assert_eq!((&held["total"], &held["outstanding"]), (&json!(5), &json!(0)), "{held}");
    let page =
        stack.http.get(format!("{}/?lang=en", stack.url("publication"))).send().await.unwrap().text().await.unwrap();
    let row_of = |city: &str| {
        let at = page.find(&format!("<tr data-city=\"{city}\"><td>"))?;
        page[at..].split("</tr>").next()
    };
    let row = row_of(XINGTAI);
    assert!(row.is_some_and(|row| row.contains("<td class=\"n\">0 / 5</td>")), "{row:?}");
    let handan = row_of(HANDAN);
    assert!(handan.is_some_and(|row| row.contains("<td class=\"n\">2 / 3</td><td class=\"n\">1</td>")), "{handan:?}");
    std::fs::remove_dir_all(dir).unwrap();
}
