//! The campaign office's acts on a city's ladder (DESIGN.md, "The last two are acts of the
//! campaign office"): a summons (约谈) held with named officials, ending in written commitments
//! that verifiers follow up, and a special inspection (专项督察) with its findings and conclusion.
//! Driven on the simulated clock; both public once held / concluded, and nothing internal leaks.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::auth::Role;
use shared::events::SUMMONS_SCHEDULED;
use shared::testing::{Stack, StackOptions, WebhookReceiver, eventually};
use uuid::Uuid;

use crate::support::*;

/// The special inspection's own team, covering Xingtai this round.
const CASE_TEAM: &str = "T-610";

/// Strings the office keeps to itself: none may reach a public format.
const INTERNAL: &[&str] =
    &["内部备注-安排", "内部备注-举行", "内部备注-督察", "未举行的约谈地点", "赵未举行", CASE_TEAM];

fn options() -> StackOptions {
    let mut options = StackOptions { workbench: true, ..StackOptions::default() };
    let mut env = |k: &str, v: &str| options.env.push((k.into(), v.into()));
    env("SKYLEDGER__CLOCK__SIMULATED", "true");
    env("SKYLEDGER__VERIFICATION__CHECK_INTERVAL_MILLIS", "200");
    // A ladder on overdue counts alone: three overdue problems reach the summons, a fourth
    // overdue item (the unkept commitment) the special inspection.
    for (step, overdue) in
        [("REMINDER", "1"), ("LISTED_SUPERVISION", "2"), ("SUMMONS", "3"), ("SPECIAL_INSPECTION", "4")]
    {
        env(&format!("SKYLEDGER__VERIFICATION__ESCALATION__{step}__OVERDUE"), overdue);
        env(&format!("SKYLEDGER__VERIFICATION__ESCALATION__{step}__REOPENED"), "0");
        env(&format!("SKYLEDGER__VERIFICATION__ESCALATION__{step}__REBOUNDS"), "0");
    }
    options
}

async fn escalations(stack: &Stack) -> Vec<Value> {
    let (_, body) = get(stack, "verification", &format!("/v1/escalations?city={XINGTAI}"), Some(&stack.admin())).await;
    body["steps"].as_array().cloned().unwrap_or_default()
}

async fn reached(stack: &Stack, level: &str) -> Value {
    eventually(level, WAIT, || async { escalations(stack).await.into_iter().find(|s| s["level"] == level) }).await
}

async fn public(stack: &Stack, path: &str) -> (StatusCode, String) {
    let response = stack.http.get(format!("{}{path}", stack.url("publication"))).send().await.expect(path);
    (response.status(), response.text().await.unwrap_or_default())
}

fn field_of(answer: &Value) -> String {
    answer["errors"][0]["field"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_city_up_the_ladder_is_summoned_held_to_its_commitments_and_specially_inspected() {
    let stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), options()).await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let admin = stack.admin();

    // Three open-burning problems in Xingtai (3-day deadlines), handed over and left to run late.
    let checks: Vec<Value> =
        (1..=3).map(|i| inspection(XINGTAI, Some("130502"), &format!("秸秆堆场 {i}"), &["open_burning"])).collect();
    let late: Vec<String> = checks.iter().flat_map(problem_ids).collect();
    let answer = batch(&stack, checks).await;
    assert!(answer["results"].as_array().unwrap().iter().all(|r| r["status"] == "created"), "{answer}");
    eventually("all three handed over", WAIT, || async {
        let (_, body) = get(&stack, "assignment", &format!("/v1/ledger?city={XINGTAI}"), Some(&admin)).await;
        let items = body["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 3 && items.iter().all(|i| i["handover_no"].is_string())).then_some(())
    })
    .await;
    let (status, answer) =
        post(&stack, "assignment", "/v1/admin/clock", &admin, json!({ "advance_secs": 5 * 86_400 })).await;
    assert_eq!(status, 200, "{answer}");
    let summons_step = reached(&stack, "summons").await;
    // Dates from the simulated clock's day (it starts at the real one; five days on now).
    let day = |n: i64| {
        (time::OffsetDateTime::now_utc().to_offset(shared::clock::SHANGHAI).date() + time::Duration::days(5 + n))
            .to_string()
    };
    assert_eq!(summons_step["overdue"], 3);

    // The office schedules the summons. Bad input names its field and stores nothing.
    let (status, answer) = post(
        &stack,
        "verification",
        "/v1/summonses",
        &admin,
        json!({
        "city_code": "999999", "officials": [], "date": "2019-06-20", "place": "", "reasons": "x" }),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(field_of(&answer), "city_code");
    let government = stack.token(Role::LocalGov, None, Some(XINGTAI));
    let summons = json!({
        "city_code": XINGTAI, "date": day(1), "place": "生态环境部约谈室",
        "officials": [ { "name": "张某某", "post": "邢台市人民政府市长" }, { "name": "李某某", "post": "邢台市生态环境局局长" } ],
        "reasons": "露天焚烧问题 3 个逾期未整改，督办级别升至约谈。", "problems": late, "note": "内部备注-安排：市长态度待观察" });
    assert_eq!(post(&stack, "verification", "/v1/summonses", &government, summons.clone()).await.0, 403);
    let (status, answer) = post(&stack, "verification", "/v1/summonses", &admin, summons).await;
    assert_eq!(status, 201, "{answer}");
    let summons_id = answer["id"].as_str().unwrap().to_string();
    // Another, scheduled and never held: it stays internal.
    let (status, _) = post(
        &stack,
        "verification",
        "/v1/summonses",
        &admin,
        json!({
        "city_code": HANDAN, "date": "2019-07-01", "place": "未举行的约谈地点",
        "officials": [ { "name": "赵未举行", "post": "邯郸市副市长" } ], "reasons": "待定" }),
    )
    .await;
    assert_eq!(status, 201);
    let (_, listed) = get(&stack, "verification", "/v1/summonses", Some(&government)).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "a city sees its own summonses: {listed}");
    assert_eq!(listed["items"][0]["status"], "scheduled");

    // The city is told (its package units in CC where it has them).
    let notice = eventually("the summons notice", WAIT, || async {
        receiver.received().into_iter().map(|r| r.json()).find(|b| b["type"] == "summons.scheduled")
    })
    .await;
    assert_eq!(notice["place"], "生态环境部约谈室");
    assert_eq!(notice["jurisdiction"], XINGTAI);
    assert!(!notice.to_string().contains("内部备注"), "the office's note is not sent: {notice}");
    let scheduled = stream_events(&stack, "verification", &SUMMONS_SCHEDULED).await;
    assert_eq!(scheduled.len(), 2);
    assert!(scheduled.iter().all(|e| !e.data.to_string().contains("内部备注")), "notes travel in no event");

    // Held, with two written commitments; follow-up dates must come after it.
    let held_path = format!("/v1/summonses/{summons_id}/held");
    let (status, answer) = post(
        &stack,
        "verification",
        &held_path,
        &admin,
        json!({
        "held_on": day(1), "commitments": [ { "text": "x", "follow_up_on": day(0) } ] }),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(field_of(&answer), "commitments[0].follow_up_on");
    let (status, answer) = post(
        &stack,
        "verification",
        &held_path,
        &admin,
        json!({
        "held_on": day(1), "note": "内部备注-举行：会上表态一般",
        "commitments": [
            { "text": "一个月内完成全市秸秆堆场整治", "follow_up_on": day(30) },
            { "text": "两个月内建成露天焚烧监控网络", "follow_up_on": day(60) } ] }),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let commitments: Vec<String> =
        answer["commitments"].as_array().unwrap().iter().map(|c| c["commitment_id"].as_str().unwrap().into()).collect();
    assert_eq!(commitments.len(), 2);
    assert_eq!(
        post(
            &stack,
            "verification",
            &held_path,
            &admin,
            json!({
        "held_on": day(2), "commitments": [ { "text": "y", "follow_up_on": day(9) } ] })
        )
        .await
        .0,
        409
    );

    // Verifiers follow them up: a team of the city's own province may not; one kept, one not.
    let hebei = stack.token(Role::Verifier, Some(HEBEI_TEAM), None);
    let verdict = |result: &str, team: &str| json!({ "result": result, "team": team, "note": "内部备注-举行" });
    let path = |i: usize| format!("/v1/commitments/{}/verdict", commitments[i]);
    assert_eq!(post(&stack, "verification", &path(0), &hebei, verdict("kept", HEBEI_TEAM)).await.0, 403);
    let verifier = stack.token(Role::Verifier, Some(VERIFIER), None);
    let (status, answer) = post(&stack, "verification", &path(0), &verifier, verdict("maybe", VERIFIER)).await;
    assert_eq!((status.as_u16(), field_of(&answer)), (422, "result".to_string()));
    assert_eq!(post(&stack, "verification", &path(0), &verifier, verdict("kept", VERIFIER)).await.0, 201);
    assert_eq!(post(&stack, "verification", &path(1), &verifier, verdict("not_kept", VERIFIER)).await.0, 201);
    assert_eq!(post(&stack, "verification", &path(1), &verifier, verdict("kept", VERIFIER)).await.0, 409);

    // The unkept commitment is overdue and moves the ladder: 3 problems + 1 commitment.
    let special = reached(&stack, "special_inspection").await;
    assert_eq!(special["overdue"], 4, "{special}");

    // A special inspection: its own team covers the city this round and finds a new problem.
    put_ok(
        &stack,
        "intake",
        &format!("/v1/teams/{CASE_TEAM}"),
        json!({ "home_province": "610000", "members": ["甲", "乙", "丙"] }),
    )
    .await;
    put_ok(&stack, "intake", &format!("/v1/rounds/{ROUND}/teams/{CASE_TEAM}"), json!({ "cities": [XINGTAI] })).await;
    let (status, answer) = post(
        &stack,
        "verification",
        "/v1/special-inspections",
        &admin,
        json!({
        "city_code": XINGTAI, "teams": [CASE_TEAM],
        "scope": { "categories": ["open_burning"], "counties": ["130402"], "from": day(2), "to": day(16) } }),
    )
    .await;
    assert_eq!((status.as_u16(), field_of(&answer)), (422, "scope.counties[0]".to_string()), "{answer}");
    let (status, answer) = post(
        &stack,
        "verification",
        "/v1/special-inspections",
        &admin,
        json!({
        "city_code": XINGTAI, "teams": [CASE_TEAM], "note": "内部备注-督察：重点查市区",
        "scope": { "categories": ["open_burning"], "counties": ["130502"], "from": day(2), "to": day(16) } }),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let case = answer["id"].as_str().unwrap().to_string();
    let mut found = inspection(XINGTAI, Some("130502"), "专项督察新发现堆场", &["open_burning"]);
    found["team"] = json!(CASE_TEAM);
    let new_problem = problem_ids(&found).remove(0);
    let case_inspector = stack.token(Role::Inspector, Some(CASE_TEAM), None);
    let (status, answer) = post(&stack, "intake", "/v1/inspections", &case_inspector, found).await;
    assert!(status.is_success(), "{answer}");

    let findings = format!("/v1/special-inspections/{case}/findings");
    let (status, answer) =
        post(&stack, "verification", &findings, &admin, json!({ "problems": [Uuid::now_v7()] })).await;
    assert_eq!((status.as_u16(), field_of(&answer)), (422, "problems[0]".to_string()));
    let (status, answer) = post(&stack, "verification", &findings, &admin, json!({ "problems": late })).await;
    assert_eq!(status, 201, "{answer}");
    let answer = eventually("verification to know the new problem", WAIT, || async {
        let (status, answer) =
            post(&stack, "verification", &findings, &admin, json!({ "problems": [new_problem] })).await;
        (status == 201).then_some(answer)
    })
    .await;
    let kinds: Vec<(&str, &str)> = answer["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["problem_id"].as_str().unwrap(), f["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds.iter().filter(|k| k.1 == "linked").count(), 3, "{kinds:?}");
    assert!(kinds.contains(&(new_problem.as_str(), "reported")), "{kinds:?}");

    // Nothing of the open case is public yet.
    let (_, cases) = public(&stack, "/v1/special-inspections").await;
    assert!(!cases.contains(&case));
    let conclusion = format!("/v1/special-inspections/{case}/conclusion");
    let (status, answer) =
        post(&stack, "verification", &conclusion, &admin, json!({ "conclusion": " ", "concluded_on": day(16) })).await;
    assert_eq!((status.as_u16(), field_of(&answer)), (422, "conclusion".to_string()));
    let (status, answer) = post(
        &stack,
        "verification",
        &conclusion,
        &admin,
        json!({
        "conclusion": "邢台市露天焚烧管控责任落实不到位，责成限期整改。", "concluded_on": day(16) }),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(post(&stack, "verification", &findings, &admin, json!({ "problems": late })).await.0, 409);

    // The public record: the held summons with its commitments and their follow-up, the concluded
    // case with its findings (the new problem listed once it is public).
    let summonses = eventually("the held summons public, both commitments followed up", WAIT, || async {
        let (_, body) = get(&stack, "publication", "/v1/summonses", None).await;
        let items = body["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 1 && items[0]["commitments"].as_array().unwrap().iter().all(|c| c["result"].is_string()))
            .then_some(items)
    })
    .await;
    let held = &summonses[0];
    assert_eq!(held["id"], summons_id.as_str());
    assert_eq!(held["held_on"], day(1));
    assert_eq!(held["officials"][0], json!({ "name": "张某某", "post": "邢台市人民政府市长" }));
    let results: Vec<&str> =
        held["commitments"].as_array().unwrap().iter().map(|c| c["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["kept", "not_kept"]);
    assert_eq!(held["problems"].as_array().unwrap().len(), 3);
    let inspected = eventually("the concluded case public with its four problems", WAIT, || async {
        let (_, body) = get(&stack, "publication", "/v1/special-inspections", None).await;
        let items = body["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 1 && items[0]["problems"].as_array().unwrap().len() == 4).then(|| items[0].clone())
    })
    .await;
    assert_eq!(inspected["findings"], json!({ "linked": 3, "reported": 1 }));
    assert_eq!(inspected["scope"]["categories"], json!(["open_burning"]));
    assert_eq!(inspected["concluded_on"], day(16));
    assert!(inspected["problems"].as_array().unwrap().contains(&json!(new_problem)));

    let (status, page) = public(&stack, "/").await;
    assert_eq!(status, 200);
    for shown in
        ["张某某", "邢台市人民政府市长", "一个月内完成全市秸秆堆场整治", "未兑现", "已兑现", "责成限期整改", "专项督察"]
    {
        assert!(page.contains(shown), "the public page shows {shown}");
    }
    let (_, english) = public(&stack, "/?lang=en").await;
    assert!(english.contains("Summonses and special inspections") && english.contains("not kept"));
    for feed in ["/feed.atom", "/feed.json"] {
        let (_, body) = public(&stack, feed).await;
        assert!(body.contains(&summons_id) && body.contains(&case), "{feed} has an entry for each act");
        assert!(body.contains("责成限期整改"), "{feed}");
    }
    let (_, atom) = public(&stack, "/feed.atom").await;
    roxmltree::Document::parse(&atom).expect("the Atom feed is well-formed XML");
    let (_, json_feed) = public(&stack, "/feed.json").await;
    serde_json::from_str::<Value>(&json_feed).expect("the JSON Feed parses");
    assert_eq!(get(&stack, "publication", "/v1/summonses?city=999999", None).await.0, 422);

    // Nothing internal in any public format: no notes, no summons not yet held, no team.
    for path in [
        "/",
        "/?lang=en",
        "/feed.atom",
        "/feed.json",
        "/v1/summonses",
        "/v1/special-inspections",
        "/v1/problems",
        "/problems.csv",
        "/problems.geojson",
    ] {
        let (_, body) = public(&stack, path).await;
        for secret in INTERNAL {
            assert!(!body.contains(secret), "{path} shows {secret}");
        }
    }
    // The office's workbench: the acts on its home screen, and the case's own page.
    let page = |path: String| {
        let request = stack.http.get(format!("{}{path}", stack.origin()));
        request.header("cookie", format!("{}={admin}", shared::auth::SESSION_COOKIE)).send()
    };
    let home = page("/workbench?lang=zh-CN".into()).await.unwrap().text().await.unwrap();
    assert!(home.contains(&format!("/workbench/special-inspections/{case}")), "the office's home links the case");
    let response = page(format!("/workbench/special-inspections/{case}")).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    for shown in ["责成限期整改", CASE_TEAM, "内部备注-督察", &new_problem[..8], &late[0][..8]] {
        assert!(body.contains(shown), "the case's page shows {shown}");
    }

    // The office still sees its notes.
    let (_, own) = get(&stack, "verification", &format!("/v1/summonses/{summons_id}"), Some(&admin)).await;
    assert_eq!(own["status"], "held");
    let overdue: Vec<&Value> = own["commitments"].as_array().unwrap().iter().map(|c| &c["overdue"]).collect();
    assert_eq!(overdue, [&json!(false), &json!(true)], "the unkept commitment is overdue");
    assert!(own["note"].as_str().unwrap().contains("内部备注-安排"));
}
