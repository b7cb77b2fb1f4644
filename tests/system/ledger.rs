//! The ledger to closure (拉条挂账，一盯到底): sheets, verification, deadlines and the escalation
//! ladder, driven by the simulated clock. Nothing sleeps: the clock is moved.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Value, json};
use shared::auth::Role;
use shared::events::CITY_ESCALATED;
use shared::testing::{Stack, StackOptions, WebhookReceiver, eventually};
use uuid::Uuid;

use crate::support::*;

fn simulated(extra: &[(&str, &str)]) -> StackOptions {
    let mut options = StackOptions::default();
    options.env.push(("SKYLEDGER__CLOCK__SIMULATED".into(), "true".into()));
    options.env.push(("SKYLEDGER__VERIFICATION__CHECK_INTERVAL_MILLIS".into(), "200".into()));
    for (k, v) in extra {
        options.env.push((k.to_string(), v.to_string()));
    }
    options
}

/// One site check in Xingtai with one problem of this category and severity.
fn report(category: &str, severity: &str, site: &str) -> (Value, String) {
    let id = Uuid::now_v7();
    let inspection = json!({
        "id": Uuid::now_v7(), "round": ROUND, "team": FINDER, "city_code": XINGTAI, "county_code": "130502",
        "checked_at": "2019-05-09T10:20:00+08:00", "site": { "name": site, "lat": 37.07, "lon": 114.5 },
        "problems": [ { "id": id, "category": category, "severity": severity, "description": format!("{category} 问题") } ] });
    (inspection, id.to_string())
}

async fn advance_days(stack: &Stack, days: i64) {
    let (status, answer) =
        post(stack, "assignment", "/v1/admin/clock", &stack.admin(), json!({ "advance_secs": days * 86_400 })).await;
    assert_eq!(status, 200, "{answer}");
}

async fn ledger(stack: &Stack, query: &str) -> Vec<Value> {
    let (status, body) = get(stack, "assignment", &format!("/v1/ledger{query}"), Some(&stack.admin())).await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

async fn steps(stack: &Stack) -> Vec<String> {
    let (_, body) = get(stack, "verification", &format!("/v1/escalations?city={XINGTAI}"), Some(&stack.admin())).await;
    body["steps"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|s| s["level"].as_str().unwrap().to_string())
        .collect()
}

async fn verify(stack: &Stack, city: &str, problem: &str, result: &str) {
    let government = stack.token(Role::LocalGov, None, Some(city));
    let rectification = json!({ "measures": "已整改", "completed_at": "2019-05-10T09:00:00+08:00" });
    let (status, body) =
        post(stack, "verification", &format!("/v1/problems/{problem}/rectification"), &government, rectification).await;
    assert_eq!(status, 201, "{body}");
    let verifier = stack.token(Role::Verifier, Some(VERIFIER), None);
    let (status, body) = post(
        stack,
        "verification",
        &format!("/v1/problems/{problem}/verdict"),
        &verifier,
        json!({ "result": result, "team": VERIFIER }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_city_goes_through_a_round_on_the_simulated_clock() {
    // Sheets of at most four; a ladder on overdue counts alone, so each step is easy to read.
    let options = simulated(&[
        ("SKYLEDGER__ASSIGNMENT__MAX_SHEET_PROBLEMS", "4"),
        ("SKYLEDGER__VERIFICATION__ESCALATION__REMINDER__REOPENED", "0"),
        ("SKYLEDGER__VERIFICATION__ESCALATION__REMINDER__REBOUNDS", "0"),
        ("SKYLEDGER__VERIFICATION__ESCALATION__LISTED_SUPERVISION__OVERDUE", "2"),
        ("SKYLEDGER__VERIFICATION__ESCALATION__LISTED_SUPERVISION__REOPENED", "0"),
        ("SKYLEDGER__VERIFICATION__ESCALATION__LISTED_SUPERVISION__REBOUNDS", "0"),
        ("SKYLEDGER__VERIFICATION__ESCALATION__SUMMONS__OVERDUE", "3"),
        ("SKYLEDGER__VERIFICATION__ESCALATION__SUMMONS__REOPENED", "0"),
        ("SKYLEDGER__VERIFICATION__ESCALATION__SUMMONS__REBOUNDS", "0"),
    ]);
    let stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), options).await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;

    // Ten problems: five to be closed (two of them after a faked fix), five left to run late,
    // with deadlines of 3, 5, 10, 30 and 90 days by the default policy.
    let plan = [
        ("vocs", "general", "closed"),
        ("vocs", "minor", "closed"),
        ("industrial_kiln", "general", "closed"),
        ("coal_boiler", "general", "faked"),
        ("exceedance", "general", "faked"),
        ("open_burning", "general", "late"),
        ("dust", "serious", "late"),
        ("dust", "general", "late"),
        ("other", "general", "late"),
        ("coal_to_gas", "general", "late"),
    ];
    let mut fate: HashMap<String, &str> = HashMap::new();
    let mut items = vec![];
    for (i, (category, severity, what)) in plan.iter().enumerate() {
        let (inspection, id) = report(category, severity, &format!("企业 {i}"));
        items.push(inspection);
        fate.insert(id, what);
    }
    let answer = batch(&stack, items).await;
    assert!(answer["results"].as_array().unwrap().iter().all(|r| r["status"] == "created"), "{answer}");

    // Handed over on three numbered sheets of at most four.
    let entries = eventually("all ten on sheets", WAIT, || async {
        let items = ledger(&stack, &format!("?city={XINGTAI}")).await;
        (items.len() == 10 && items.iter().all(|i| i["handover_no"].is_string())).then_some(items)
    })
    .await;
    let mut sheets: Vec<String> = entries.iter().map(|e| e["handover_no"].as_str().unwrap().to_string()).collect();
    sheets.sort();
    sheets.dedup();
    assert_eq!(sheets.len(), 3, "{sheets:?}");
    for (n, sheet) in sheets.iter().enumerate() {
        assert!(
            sheet.starts_with(&format!("{ROUND}-{XINGTAI}-")) && sheet.ends_with(&format!("-{:03}", n + 1)),
            "{sheet}"
        );
    }
    let city = stack.token(Role::LocalGov, None, Some(XINGTAI));
    for sheet in &sheets {
        assert_eq!(
            post(&stack, "assignment", &format!("/v1/handovers/{sheet}/acknowledge"), &city, json!({})).await.0,
            200
        );
    }
    let deadline_of: HashMap<String, String> = entries
        .iter()
        .map(|e| (e["problem_id"].as_str().unwrap().to_string(), e["deadline"].as_str().unwrap().to_string()))
        .collect();

    // Rectified and closed; faked, reopened on the same deadline, then fixed and closed.
    for (id, what) in &fate {
        eventually("verification to know the problem", WAIT, || async {
            let (status, body) = get(&stack, "verification", &format!("/v1/problems/{id}"), Some(&stack.admin())).await;
            (status == 200 && body["status"] == "acknowledged").then_some(())
        })
        .await;
        match *what {
            "closed" => verify(&stack, XINGTAI, id, "rectified").await,
            "faked" => {
                verify(&stack, XINGTAI, id, "fake_rectification").await;
                let (_, problem) =
                    get(&stack, "verification", &format!("/v1/problems/{id}"), Some(&stack.admin())).await;
                assert_eq!(problem["status"], "reopened");
                assert_eq!(problem["deadline"].as_str().unwrap(), deadline_of[id], "no new time for a faked fix");
                verify(&stack, XINGTAI, id, "rectified").await;
            }
            _ => {}
        }
    }
    eventually("five closed in the ledger", WAIT, || async {
        (ledger(&stack, "?status=closed").await.len() == 5).then_some(())
    })
    .await;
    assert!(steps(&stack).await.is_empty(), "nothing is late yet");

    // The clock runs on: the late ones go overdue one by one, and the city climbs the ladder.
    advance_days(&stack, 4).await;
    eventually("reminder", WAIT, || async { (steps(&stack).await == ["reminder"]).then_some(()) }).await;
    advance_days(&stack, 2).await;
    eventually("listed supervision", WAIT, || async {
        (steps(&stack).await == ["reminder", "listed_supervision"]).then_some(())
    })
    .await;
    advance_days(&stack, 5).await;
    eventually("summons", WAIT, || async {
        (steps(&stack).await == ["reminder", "listed_supervision", "summons"]).then_some(())
    })
    .await;
    let overdue = eventually("three overdue in the ledger", WAIT, || async {
        let items = ledger(&stack, "?overdue=true").await;
        (items.len() == 3).then_some(items)
    })
    .await;
    assert!(overdue.iter().all(|e| fate[e["problem_id"].as_str().unwrap()] == "late"));
    let escalated = stream_events(&stack, "verification", &CITY_ESCALATED).await;
    let levels: Vec<&str> = escalated.iter().map(|e| e.data["level"].as_str().unwrap()).collect();
    assert_eq!(levels, ["reminder", "listed_supervision", "summons"], "one event per step");

    // The XLSX export opens with a spreadsheet library and holds exactly the ledger's rows.
    let response = stack
        .http
        .get(format!("{}/v1/ledger?format=xlsx&city={XINGTAI}", stack.url("assignment")))
        .bearer_auth(stack.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
    let bytes = response.bytes().await.unwrap().to_vec();
    let mut workbook: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).expect("a workbook");
    use calamine::{DataType, Reader};
    let names = workbook.sheet_names();
    assert_eq!(names.len(), 2, "{names:?}");
    let rows = workbook.worksheet_range(&names[0]).expect("the ledger sheet");
    let ids: Vec<String> = rows.rows().skip(1).map(|r| r[0].to_string()).collect();
    let mut expected: Vec<String> = ledger(&stack, &format!("?city={XINGTAI}"))
        .await
        .iter()
        .map(|e| e["problem_id"].as_str().unwrap().to_string())
        .collect();
    let mut got = ids.clone();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "exactly the ledger's rows");
    assert!(rows.rows().next().unwrap()[0].to_string().contains("问题编号"), "headers in Chinese and English");
    assert!(matches!(rows.rows().nth(1).unwrap()[12], calamine::Data::DateTime(_)), "deadlines are dates");
    let by_county = workbook.worksheet_range(&names[1]).expect("the totals sheet");
    let total: f64 = by_county.rows().skip(1).map(|r| r[1].get_float().unwrap_or(0.0)).sum();
    assert_eq!(total, 10.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn disputes_reroutes_extensions_progress_and_rechecks() {
    let stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), simulated(&[])).await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let (first, disputed) = report("dust", "general", "甲工地");
    let (second, extended) = report("coal_to_gas", "general", "乙村");
    let (third, rechecked) = report("vocs", "general", "丙厂");
    batch(&stack, vec![first, second, third]).await;
    eventually("three on sheets", WAIT, || async {
        let items = ledger(&stack, "").await;
        (items.len() == 3 && items.iter().all(|i| i["handover_no"].is_string())).then_some(())
    })
    .await;
    let county = stack.token(Role::LocalGov, None, Some("130502"));
    let handan = stack.token(Role::LocalGov, None, Some(HANDAN));
    let admin = stack.admin();

    // Another government neither sees nor acts on the problem: 404, not 403.
    let reason = json!({ "reason": "不属于本辖区" });
    assert_eq!(
        post(&stack, "assignment", &format!("/v1/problems/{disputed}/dispute"), &handan, reason.clone()).await.0,
        404
    );
    assert_eq!(get(&stack, "assignment", &format!("/v1/problems/{disputed}"), Some(&handan)).await.0, 404);
    let sheet = ledger(&stack, "").await[0]["handover_no"].as_str().unwrap().to_string();
    assert_eq!(get(&stack, "assignment", &format!("/v1/handovers/{sheet}"), Some(&handan)).await.0, 404);

    // "Not ours": the county disputes, the campaign office reroutes to the neighbouring county.
    let (status, body) = post(&stack, "assignment", &format!("/v1/problems/{disputed}/dispute"), &county, reason).await;
    assert_eq!(status, 201, "{body}");
    let (_, disputes) = get(&stack, "assignment", "/v1/disputes?status=open", Some(&admin)).await;
    assert_eq!(disputes["count"], 1);
    let (status, body) = post(
        &stack,
        "assignment",
        &format!("/v1/problems/{disputed}/reroute"),
        &admin,
        json!({ "to": "130503", "reason": "位于襄都区" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        get(&stack, "assignment", &format!("/v1/problems/{disputed}"), Some(&county)).await.0,
        404,
        "no longer the county's"
    );
    let new_owner = stack.token(Role::LocalGov, None, Some("130503"));
    let (_, entry) = get(&stack, "assignment", &format!("/v1/problems/{disputed}"), Some(&new_owner)).await;
    assert_eq!(entry["entry"]["jurisdiction"], "130503");
    eventually("verification to follow the reroute", WAIT, || async {
        let (_, p) = get(&stack, "verification", &format!("/v1/problems/{disputed}"), Some(&admin)).await;
        (p["jurisdiction"] == "130503").then_some(())
    })
    .await;

    // An extension asked with a reason, granted by the campaign office: the ledger keeps both.
    let (_, entry) = get(&stack, "assignment", &format!("/v1/problems/{extended}"), Some(&county)).await;
    let original = entry["entry"]["deadline"].as_str().unwrap().to_string();
    let later = (time::Date::parse(&original, &time::format_description::well_known::Iso8601::DATE).unwrap()
        + time::Duration::days(30))
    .to_string();
    let (status, body) = post(
        &stack,
        "assignment",
        &format!("/v1/problems/{extended}/extensions"),
        &county,
        json!({ "deadline": later, "reason": "燃气管网施工未完成" }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let extension = body["id"].as_str().unwrap().to_string();
    assert_eq!(
        post(&stack, "assignment", &format!("/v1/extensions/{extension}/grant"), &county, json!({ "reason": "x" }))
            .await
            .0,
        403
    );
    let (status, _) = post(
        &stack,
        "assignment",
        &format!("/v1/extensions/{extension}/grant"),
        &admin,
        json!({ "reason": "同意延期" }),
    )
    .await;
    assert_eq!(status, 200);
    let (_, entry) = get(&stack, "assignment", &format!("/v1/problems/{extended}"), Some(&county)).await;
    assert_eq!(
        (entry["entry"]["original_deadline"].as_str(), entry["entry"]["deadline"].as_str()),
        (Some(original.as_str()), Some(later.as_str()))
    );
    eventually("verification to keep the new deadline", WAIT, || async {
        let (_, p) = get(&stack, "verification", &format!("/v1/problems/{extended}"), Some(&admin)).await;
        (p["deadline"] == later.as_str()).then_some(())
    })
    .await;
    // A long project reports its stages before the final rectification.
    let (status, body) = post(
        &stack,
        "verification",
        &format!("/v1/problems/{extended}/progress"),
        &county,
        json!({ "stage": "管网铺设完成", "percent_done": 60 }),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // Closed, then found back on a re-check sweep: a rebound, entered anew; the closed one stays.
    verify(&stack, "130502", &rechecked, "rectified").await;
    let (status, body) = post(&stack, "verification", "/v1/rechecks/sweep", &admin, json!({ "round": ROUND })).await;
    assert_eq!((status.as_u16(), body["rechecks_opened"].as_i64()), (200, Some(1)), "{body}");
    let finder = stack.token(Role::Verifier, Some(FINDER), None);
    let (_, tasks) = get(&stack, "verification", "/v1/tasks", Some(&finder)).await;
    assert!(tasks["rechecks"].as_array().unwrap().is_empty(), "the finder may not re-check its own problem");
    let verifier = stack.token(Role::Verifier, Some(VERIFIER), None);
    let (_, tasks) = get(&stack, "verification", "/v1/tasks", Some(&verifier)).await;
    let recheck = tasks["rechecks"][0]["id"].as_str().expect("a re-check for the verifier").to_string();
    let (status, body) = post(
        &stack,
        "verification",
        &format!("/v1/rechecks/{recheck}/verdict"),
        &verifier,
        json!({ "result": "not_rectified", "team": VERIFIER, "note": "复查发现反弹" }),
    )
    .await;
    assert_eq!((status.as_u16(), body["status"].as_str()), (201, Some("closed")), "{body}");
    let rebound = body["rebound_id"].as_str().expect("a new entry for the rebound").to_string();
    eventually("the ledger to show the rebound", WAIT, || async {
        let (_, e) = get(&stack, "assignment", &format!("/v1/problems/{rebound}"), Some(&admin)).await;
        (e["entry"]["rebound_of"] == rechecked.as_str()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn last_years_ledger_is_imported_for_re_verification_one_by_one() {
    let stack = start().await;
    let dir = std::env::temp_dir().join(format!("skyledger-legacy-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ledger-2018.csv");
    let mut csv = String::from("id,city_code,county_code,category,site_name,closed_on\n");
    for i in 0..4 {
        csv.push_str(&format!("{},{XINGTAI},130502,dust,\"工地 {i}, 东区\",2018-11-0{}\n", Uuid::now_v7(), i + 1));
    }
    csv.push_str(&format!("{},999900,,dust,无名,2018-11-01\n", Uuid::now_v7()));
    std::fs::write(&file, csv).unwrap();
    let import = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_skyledger"))
            .args([
                "import-ledger",
                file.to_str().unwrap(),
                "--round",
                "2018",
                "--url",
                &stack.url("verification"),
                "--token",
                &stack.admin(),
            ])
            .output()
            .expect("run skyledger")
    };
    let first = import();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(
        String::from_utf8_lossy(&first.stdout).contains("4 created, 0 already had, 1 refused"),
        "{}",
        String::from_utf8_lossy(&first.stdout)
    );
    let report = std::fs::read_to_string(dir.join("ledger-2018.errors.csv")).unwrap();
    assert!(report.lines().any(|l| l.starts_with("6,city_code,")), "line 6 named: {report}");
    let again = import();
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("0 created, 4 already had, 1 refused"),
        "safe to run twice"
    );

    let verifier = stack.token(Role::Verifier, Some(VERIFIER), None);
    let (_, tasks) = get(&stack, "verification", "/v1/tasks", Some(&verifier)).await;
    let rechecks = tasks["rechecks"].as_array().unwrap();
    assert_eq!(rechecks.len(), 4, "{tasks}");
    assert!(rechecks.iter().all(|r| r["after_round"] == "2018"));
    std::fs::remove_dir_all(dir).unwrap();
}

/// Overdue, as DESIGN.md defines it: a rectification reported in time holds the clock while it
/// waits for its verdict; a verdict that refuses it makes the problem overdue from its original
/// deadline (no new time is earned by a refused rectification).
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_rectification_is_overdue_from_the_original_deadline() {
    let stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), simulated(&[])).await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    // Open burning: 3 days by the default policy.
    let (held_report, held) = report("open_burning", "general", "甲村");
    let (late_report, late) = report("open_burning", "general", "乙村");
    batch(&stack, vec![held_report, late_report]).await;
    let entries = eventually("both on a sheet", WAIT, || async {
        let items = ledger(&stack, "").await;
        (items.len() == 2 && items.iter().all(|i| i["handover_no"].is_string())).then_some(items)
    })
    .await;
    let deadline = entries[0]["deadline"].as_str().unwrap().to_string();
    let admin = stack.admin();
    for id in [&held, &late] {
        eventually("verification to know the problem", WAIT, || async {
            let (_, p) = get(&stack, "verification", &format!("/v1/problems/{id}"), Some(&admin)).await;
            (p["status"] == "assigned").then_some(())
        })
        .await;
    }

    // Rectification of one reported in time; the clock runs past the deadline.
    let government = stack.token(Role::LocalGov, None, Some(XINGTAI));
    let rectification = json!({ "measures": "已清理", "completed_at": "2019-05-10T09:00:00+08:00" });
    let (status, body) =
        post(&stack, "verification", &format!("/v1/problems/{held}/rectification"), &government, rectification).await;
    assert_eq!(status, 201, "{body}");
    advance_days(&stack, 5).await;
    eventually("the other one overdue", WAIT, || async {
        let items = ledger(&stack, "?overdue=true").await;
        (items.len() == 1 && items[0]["problem_id"] == late.as_str()).then_some(())
    })
    .await;
    let (_, p) = get(&stack, "verification", &format!("/v1/problems/{held}"), Some(&admin)).await;
    assert!(p["overdue_since"].is_null(), "a rectification reported in time holds the clock: {p}");

    // The verifier refuses it: overdue from the original deadline, not given a new one.
    let verifier = stack.token(Role::Verifier, Some(VERIFIER), None);
    let (status, body) = post(
        &stack,
        "verification",
        &format!("/v1/problems/{held}/verdict"),
        &verifier,
        json!({ "result": "not_rectified", "team": VERIFIER }),
    )
    .await;
    assert_eq!((status.as_u16(), body["status"].as_str()), (201, Some("reopened")), "{body}");
    assert_eq!(body["deadline"], deadline.as_str(), "a refused rectification earns no new deadline: {body}");
    let day_after = (time::Date::parse(&deadline, &time::format_description::well_known::Iso8601::DATE).unwrap()
        + time::Duration::days(1))
    .to_string();
    eventually("verification to flag it overdue from the original deadline", WAIT, || async {
        let (_, p) = get(&stack, "verification", &format!("/v1/problems/{held}"), Some(&admin)).await;
        (p["overdue_since"] == day_after.as_str()).then_some(())
    })
    .await;
    eventually("the ledger to show both overdue", WAIT, || async {
        (ledger(&stack, "?overdue=true").await.len() == 2).then_some(())
    })
    .await;
    let events = stream_events(&stack, "verification", &shared::events::PROBLEM_OVERDUE).await;
    let flagged = events.iter().find(|e| e.data["problem_id"] == held.as_str()).expect("an overdue event");
    assert_eq!(
        (flagged.data["deadline"].as_str(), flagged.data["overdue_on"].as_str()),
        (Some(deadline.as_str()), Some(day_after.as_str()))
    );
}

/// A failed re-check of a closed problem (回潮): a new ledger entry, a rebound linked to the
/// closed one, handed over like any problem; the closed one stays closed in its history.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_recheck_makes_a_new_rebound_entry_and_the_closed_one_stays_closed() {
    let stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), simulated(&[])).await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let (inspection, closed) = report("vocs", "general", "丙厂");
    batch(&stack, vec![inspection]).await;
    eventually("on a sheet", WAIT, || async {
        let items = ledger(&stack, "").await;
        (items.len() == 1 && items[0]["handover_no"].is_string()).then_some(())
    })
    .await;
    let admin = stack.admin();
    eventually("verification to know the problem", WAIT, || async {
        let (_, p) = get(&stack, "verification", &format!("/v1/problems/{closed}"), Some(&admin)).await;
        (p["status"] == "assigned").then_some(())
    })
    .await;
    verify(&stack, "130502", &closed, "rectified").await;
    wait_public_status(&stack, &closed, "closed").await;

    let (status, body) = post(&stack, "verification", "/v1/rechecks/sweep", &admin, json!({ "round": ROUND })).await;
    assert_eq!((status.as_u16(), body["rechecks_opened"].as_i64()), (200, Some(1)), "{body}");
    let verifier = stack.token(Role::Verifier, Some(VERIFIER), None);
    let (_, tasks) = get(&stack, "verification", "/v1/tasks", Some(&verifier)).await;
    let recheck = tasks["rechecks"][0]["id"].as_str().expect("a re-check for the verifier").to_string();
    let (status, body) = post(
        &stack,
        "verification",
        &format!("/v1/rechecks/{recheck}/verdict"),
        &verifier,
        json!({ "result": "not_rectified", "team": VERIFIER, "note": "复查发现反弹" }),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["status"].as_str()),
        (201, Some("closed")),
        "the closed one stays closed: {body}"
    );
    let rebound = body["rebound_id"].as_str().expect("the new entry's id").to_string();

    // The rebound is a ledger entry of its own, linked to the closed one, handed over again.
    let entry = eventually("the rebound on a sheet", WAIT, || async {
        let items = ledger(&stack, "").await;
        items.into_iter().find(|i| i["problem_id"] == rebound.as_str() && i["handover_no"].is_string())
    })
    .await;
    assert_eq!(entry["rebound_of"], closed.as_str(), "{entry}");
    assert_eq!(entry["status"], "assigned");
    let (_, original) = get(&stack, "assignment", &format!("/v1/problems/{closed}"), Some(&admin)).await;
    assert_eq!(original["entry"]["status"], "closed", "{original}");
    let public = wait_public_status(&stack, &rebound, "assigned").await;
    assert_eq!(public["rebound_of"], closed.as_str(), "{public}");
    let (_, history) = get(&stack, "publication", &format!("/v1/problems/{closed}"), None).await;
    let steps: Vec<&str> =
        history["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert_eq!(steps.last(), Some(&"closed"), "closed in its history: {steps:?}");
    assert!(!steps.contains(&"reopened"), "{steps:?}");
    // The rebound counts on the escalation ladder; the government rectifies it like any problem.
    eventually("verification to know the rebound", WAIT, || async {
        let (_, p) = get(&stack, "verification", &format!("/v1/problems/{rebound}"), Some(&admin)).await;
        (p["status"] == "assigned").then_some(())
    })
    .await;
    // The re-checking team found it, so another team gives the verdict.
    let government = stack.token(Role::LocalGov, None, Some("130502"));
    let rectification = json!({ "measures": "已再次整改", "completed_at": "2019-05-10T09:00:00+08:00" });
    let (status, body) =
        post(&stack, "verification", &format!("/v1/problems/{rebound}/rectification"), &government, rectification)
            .await;
    assert_eq!(status, 201, "{body}");
    let other = stack.token(Role::Verifier, Some(FINDER), None);
    let by_finder = json!({ "result": "rectified", "team": VERIFIER });
    let (status, body) =
        post(&stack, "verification", &format!("/v1/problems/{rebound}/verdict"), &verifier, by_finder).await;
    assert!(
        status == 403 && body.to_string().contains("found"),
        "the team that found the rebound may not verify it: {body}"
    );
    let verdict = json!({ "result": "rectified", "team": FINDER });
    let (status, body) =
        post(&stack, "verification", &format!("/v1/problems/{rebound}/verdict"), &other, verdict).await;
    assert_eq!((status.as_u16(), body["status"].as_str()), (201, Some("closed")), "{body}");
}

async fn wait_public_status(stack: &Stack, id: &str, wanted: &str) -> Value {
    eventually(&format!("problem {id} public and {wanted}"), WAIT, || async {
        let (status, body) = get(stack, "publication", &format!("/v1/problems/{id}"), None).await;
        (status == 200 && body["status"] == wanted).then_some(body)
    })
    .await
}

/// Last year's problem, never reported to intake, found back on its re-check: the rebound is
/// entered all the same, at the site verification knows, and handed over.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_recheck_of_last_years_problem_makes_a_rebound_entry_too() {
    let stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), simulated(&[])).await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let admin = stack.admin();
    let legacy = Uuid::now_v7();
    let (status, body) = post(
        &stack,
        "verification",
        "/v1/legacy-problems/batch",
        &admin,
        json!({ "round": "2018",
        "items": [ { "id": legacy, "city_code": XINGTAI, "county_code": "130502", "category": "coal_boiler",
                     "site_name": "旧锅炉房", "closed_on": "2018-11-01" } ] }),
    )
    .await;
    assert_eq!((status.as_u16(), &body["results"][0]["status"]), (200, &json!("created")), "{body}");
    let verifier = stack.token(Role::Verifier, Some(VERIFIER), None);
    let (_, tasks) = get(&stack, "verification", "/v1/tasks", Some(&verifier)).await;
    let recheck = tasks["rechecks"][0]["id"].as_str().expect("the legacy re-check").to_string();
    let (status, body) = post(
        &stack,
        "verification",
        &format!("/v1/rechecks/{recheck}/verdict"),
        &verifier,
        json!({ "result": "fake_rectification", "team": VERIFIER }),
    )
    .await;
    assert_eq!((status.as_u16(), body["status"].as_str()), (201, Some("closed")), "{body}");
    let rebound = body["rebound_id"].as_str().expect("a new entry").to_string();
    let entry = eventually("the rebound on a sheet", WAIT, || async {
        let (_, e) = get(&stack, "assignment", &format!("/v1/problems/{rebound}"), Some(&admin)).await;
        e["entry"]["handover_no"].is_string().then(|| e["entry"].clone())
    })
    .await;
    assert_eq!(
        (&entry["rebound_of"], &entry["site_name"], &entry["jurisdiction"], &entry["round_id"]),
        (&json!(legacy), &json!("旧锅炉房"), &json!("130502"), &json!(ROUND)),
        "{entry}"
    );
}
