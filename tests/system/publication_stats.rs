//! The statistics: the campaign summary equals the counts of the events that were fed in, the
//! breakdowns add up, and the league table normalises by inspection effort.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};
use shared::envelope::Event;
use shared::events::{
    CITY_ESCALATED, EventKind, INSPECTIONS_RECORDED, PROBLEM_ASSIGNED, PROBLEM_CLOSED, PROBLEM_EXTENDED,
    PROBLEM_OVERDUE, PROBLEM_REOPENED, PROBLEM_REPORTED, PROBLEM_REROUTED, RECTIFICATION_PROGRESSED, ROUND_CONFIGURED,
    TEAM_ASSIGNED,
};
use shared::testing::{Stack, WebhookReceiver, eventually};

use crate::publication::{acknowledge, rectify, report, verdict, wait_public, wait_status};
use crate::support::*;

fn distinct(events: &[Event], field: &str) -> usize {
    events.iter().map(|e| e.data[field].to_string()).collect::<HashSet<_>>().len()
}

/// The figures a summary should show, counted from the events in the streams.
async fn counted(stack: &Stack) -> Value {
    let events = |producer: &'static str, kind: &'static EventKind| stream_events(stack, producer, kind);
    let reported = events("intake", &PROBLEM_REPORTED).await;
    let assigned = events("assignment", &PROBLEM_ASSIGNED).await;
    let assigned_in = |category: &str| {
        assigned
            .iter()
            .filter(|e| e.data["category"] == category)
            .map(|e| e.data["problem_id"].to_string())
            .collect::<HashSet<_>>()
            .len()
    };
    // Each team once per round, with the people it said it sent last.
    let team_rounds: HashMap<String, u64> = events("intake", &TEAM_ASSIGNED)
        .await
        .iter()
        .map(|e| (format!("{}/{}", e.data["round"], e.data["team"]), e.data["members"].as_u64().unwrap_or(0)))
        .collect();
    json!({
        "rounds": distinct(&events("intake", &ROUND_CONFIGURED).await, "round"),
        "teams_deployed": team_rounds.len(),
        "person_times": team_rounds.values().sum::<u64>(),
        "site_checks": events("intake", &INSPECTIONS_RECORDED)
            .await
            .iter()
            .map(|e| e.data["checks"].as_array().map_or(0, Vec::len))
            .sum::<usize>(),
        "problems_found": distinct(&reported, "problem_id"),
        "handed_over": distinct(&assigned, "problem_id"),
        "closed": distinct(&events("verification", &PROBLEM_CLOSED).await, "problem_id"),
        "reopened": distinct(&events("verification", &PROBLEM_REOPENED).await, "problem_id"),
        "overdue": distinct(&events("verification", &PROBLEM_OVERDUE).await, "problem_id"),
        "rebounds": reported.iter().filter(|e| !e.data["rebound_of"].is_null()).count(),
        "rerouted": distinct(&events("assignment", &PROBLEM_REROUTED).await, "problem_id"),
        "extended": distinct(&events("assignment", &PROBLEM_EXTENDED).await, "problem_id"),
        "escalations": events("verification", &CITY_ESCALATED).await.len(),
        "emergency_plan_problems": assigned_in("emergency_plan"),
        "scattered_polluting_problems": assigned_in("scattered_polluting"),
        "coal_boiler_problems": assigned_in("coal_boiler"),
        "coal_to_gas_lagging_projects": assigned_in("coal_to_gas"),
    })
}

/// Now, as the producers stamp their events (hand-overs carry the real time).
fn now() -> String {
    shared::csv::timestamp(time::OffsetDateTime::now_utc())
}

fn summary_part(summary: &Value, like: &Value) -> Value {
    let keys = like.as_object().unwrap().keys();
    Value::Object(keys.map(|k| (k.clone(), summary[k].clone())).collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_campaign_summary_equals_the_events_fed_in() {
    // Ranked from two site checks in the period: Xingtai has three, Handan one.
    let mut options = shared::testing::StackOptions::default();
    options.env.push(("SKYLEDGER__PUBLICATION__LEAGUE_MIN_CHECKS".into(), "2".into()));
    let stack = Stack::start(std::path::Path::new(env!("CARGO_BIN_EXE_skyledger")), options).await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    // A team of two beside the campaign's teams of three: person-times count people, not teams.
    put_ok(&stack, "intake", "/v1/teams/JX-2", json!({ "home_province": "360000", "members": ["赵", "钱"] })).await;
    put_ok(&stack, "intake", &format!("/v1/rounds/{ROUND}/teams/JX-2"), json!({ "cities": [HANDAN] })).await;

    // Site checks with and without problems, in two cities.
    let xingtai = report(&stack, XINGTAI, Some("130502"), "甲铸造厂", &["emergency_plan", "coal_boiler"]).await;
    let handan = report(&stack, HANDAN, None, "乙化工厂", &["scattered_polluting", "coal_to_gas"]).await;
    report(&stack, XINGTAI, None, "丙砖厂", &[]).await;
    let (emergency, boiler) = (xingtai[0].clone(), xingtai[1].clone());
    let (scattered, gas) = (handan[0].clone(), handan[1].clone());
    for id in [&emergency, &boiler, &scattered, &gas] {
        wait_public(&stack, id).await;
    }

    // One closed, one reopened.
    acknowledge(&stack, &boiler, XINGTAI).await;
    rectify(&stack, &boiler, XINGTAI).await;
    verdict(&stack, &boiler, "rectified", "ok").await;
    wait_status(&stack, &boiler, "closed").await;
    rectify(&stack, &emergency, XINGTAI).await;
    verdict(&stack, &emergency, "not_rectified", "仍未落实").await;
    wait_status(&stack, &emergency, "reopened").await;

    // The same site and category after closing: a rebound.
    let rebound = report(&stack, XINGTAI, Some("130502"), "甲铸造厂", &["coal_boiler"]).await.remove(0);
    let public = wait_public(&stack, &rebound).await;
    assert_eq!(public["rebound_of"], boiler.as_str());

    // What the producers being built elsewhere will say: overdue, reroute, extension, progress,
    // escalation (their payloads are the contract's). Deadlines lie ahead, so that verification
    // (which follows the reroute and the extension) flags nothing overdue of its own.
    let in_days = |days: i64| (time::OffsetDateTime::now_utc() + time::Duration::days(days)).date().to_string();
    publish_event(
        &stack,
        &PROBLEM_OVERDUE,
        &emergency,
        Some(XINGTAI),
        &json!({
        "problem_id": emergency, "problem_seq": 90, "city_code": XINGTAI, "jurisdiction": "130502",
        "deadline": "2019-06-01", "overdue_on": "2019-06-02" }),
    )
    .await;
    publish_event(
        &stack,
        &PROBLEM_EXTENDED,
        &gas,
        Some(HANDAN),
        &json!({
        "problem_id": gas, "problem_seq": 90, "city_code": HANDAN, "jurisdiction": HANDAN,
        "previous_deadline": in_days(100), "deadline": in_days(200), "reason": "工程量大",
        "granted_at": now() }),
    )
    .await;
    publish_event(
        &stack,
        &PROBLEM_REROUTED,
        &scattered,
        Some(HANDAN),
        &json!({
        "problem_id": scattered, "problem_seq": 91, "city_code": HANDAN, "from_jurisdiction": HANDAN,
        "to_jurisdiction": "130402", "reason": "属地有误", "deadline": in_days(60), "category": "scattered_polluting",
        "site_name": "乙化工厂", "description": "x", "rerouted_at": now() }),
    )
    .await;
    publish_event(
        &stack,
        &RECTIFICATION_PROGRESSED,
        &gas,
        Some(HANDAN),
        &json!({
        "problem_id": gas, "problem_seq": 91, "city_code": HANDAN, "stage": "管网铺设", "percent_done": 40,
        "reported_at": now() }),
    )
    .await;
    publish_event(
        &stack,
        &CITY_ESCALATED,
        XINGTAI,
        Some(XINGTAI),
        &json!({
        "city_code": XINGTAI, "level": "reminder", "previous_level": null, "overdue": 1, "reopened": 1, "rebounds": 1,
        "escalated_at": now() }),
    )
    .await;

    let expected = counted(&stack).await;
    assert_eq!(expected["overdue"], 1, "{expected}");
    assert_eq!(expected["site_checks"], 4, "{expected}");
    assert_eq!(expected["person_times"], 3 + 3 + 2, "two teams of three and one of two: {expected}");
    // Counted again each time: the verification service may escalate a city itself meanwhile.
    let stats = eventually("the summary to equal the events' counts", WAIT, || async {
        let expected = counted(&stack).await;
        let (_, stats) = get(&stack, "publication", "/v1/stats", None).await;
        (summary_part(&stats["summary"], &expected) == expected).then_some(stats)
    })
    .await;
    let summary = &stats["summary"];
    // The injected step and any the verification service took itself (it may take one while
    // this test reads): the summary ends equal to what the events say.
    eventually("the escalations in the summary to equal the events", WAIT, || async {
        let reminders = stream_events(&stack, "verification", &CITY_ESCALATED)
            .await
            .iter()
            .filter(|e| e.data["level"] == "reminder")
            .count();
        let (_, stats) = get(&stack, "publication", "/v1/stats", None).await;
        (reminders >= 1 && stats["summary"]["escalations_by_level"]["reminder"] == reminders).then_some(())
    })
    .await;
    assert!(summary["text_zh"].as_str().unwrap().contains("排查点位 4 个"), "{summary}");

    // Every figure says its period: the round's days, and when it was counted.
    let period = &stats["period"];
    assert_eq!(
        (&period["from"], &period["to"], &period["rounds"]),
        (&json!("2019-05-08"), &json!("2019-05-22"), &json!(1))
    );
    assert!(period["as_of"].as_str().is_some_and(|t| t.starts_with("20")), "{period}");
    let page =
        stack.http.get(format!("{}/?lang=en", stack.url("publication"))).send().await.unwrap().text().await.unwrap();
    let said = "Period: 2019-05-08 to 2019-05-22 (1 round), as of ";
    for figure in ["summary", "map-section", "chart-section", "league-table"] {
        let at = page.find(&format!("id=\"{figure}\"")).unwrap_or_else(|| panic!("no #{figure}"));
        let end = ["</section>", "</figure>"].iter().filter_map(|t| page[at..].find(t)).min().unwrap() + at;
        assert!(page[at..end].contains(said), "#{figure} does not say its period");
    }

    // The public record shows what the newer events said.
    let (_, gas_record) = get(&stack, "publication", &format!("/v1/problems/{gas}"), None).await;
    assert_eq!(
        (gas_record["deadline"].as_str(), gas_record["progress_stage"].as_str()),
        (Some(in_days(200).as_str()), Some("管网铺设"))
    );
    // The log writer logs the reroute a moment after the consumer has recorded it.
    let rerouted = eventually("the reroute to be the last line of the public history", WAIT, || async {
        let (_, body) = get(&stack, "publication", &format!("/v1/problems/{scattered}"), None).await;
        let last = body["history"].as_array().and_then(|h| h.last()).map(|l| l["status"].clone());
        (last == Some(json!("rerouted"))).then_some(body)
    })
    .await;
    assert_eq!(rerouted["jurisdiction"], "130402");
    assert_eq!(rerouted["history"].as_array().unwrap().last().unwrap()["status"], "rerouted");
    let (_, overdue) = get(&stack, "publication", &format!("/v1/problems/{emergency}"), None).await;
    assert_eq!(overdue["overdue_on"], "2019-06-02");

    // Breakdowns add up to the totals; cities carry their province's figures too.
    let totals = &stats["totals"];
    for dimension in ["cities", "provinces", "rounds", "categories"] {
        let sum: i64 =
            stats[dimension].as_object().unwrap().values().map(|v| v["problems_found"].as_i64().unwrap_or(0)).sum();
        assert_eq!(sum, totals["problems_found"].as_i64().unwrap(), "{dimension}");
    }
    assert_eq!(stats["cities"][XINGTAI]["site_checks"], 3);
    assert_eq!(stats["provinces"]["130000"]["site_checks"], 4);
    assert_eq!(stats["rounds"][ROUND]["handed_over"], totals["handed_over"]);
    assert_eq!(stats["categories"]["coal_boiler"]["rebounds"], 1);
    assert_eq!(stats["cities"][XINGTAI]["escalation_level"], "reminder");

    // The league: every key city, normalised by checks (Xingtai: 3 problems in 3 checks).
    let league = stats["league"].as_array().unwrap();
    assert_eq!(league.len(), 39);
    let row = league.iter().find(|r| r["city_code"] == XINGTAI).unwrap();
    assert_eq!(row["problems_per_100_checks"], 100.0);
    assert!(row["share_closed_on_time"].as_f64().is_some());
    // Only a city with enough checks is ranked: Handan's one check does not put it on the table,
    // and the page says what the minimum is.
    assert_eq!((league[0]["city_code"].as_str(), league[0]["rank"].as_i64()), (Some(XINGTAI), Some(1)));
    assert!(league[1..].iter().all(|r| r["rank"].is_null()), "one city ranked: {league:?}");
    assert_eq!(league.iter().find(|r| r["city_code"] == HANDAN).unwrap()["site_checks"], 1);
    assert_eq!(stats["league_min_checks"], 2);
    let page = stack.http.get(format!("{}/?lang=en", stack.url("publication"))).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains("Ranked: cities with at least 2 site checks in the period"), "{page}");

    // Filters.
    let (_, xingtai_only) = get(&stack, "publication", &format!("/v1/stats?city={XINGTAI}"), None).await;
    assert_eq!(xingtai_only["totals"]["problems_found"], 3);
    assert_eq!(xingtai_only["league"].as_array().unwrap().len(), 1);
    let (_, boilers) = get(&stack, "publication", "/v1/stats?category=coal_boiler", None).await;
    assert_eq!(
        (boilers["totals"]["problems_found"].as_i64(), boilers["totals"]["closed"].as_i64()),
        (Some(2), Some(1))
    );
    let (_, other_round) = get(&stack, "publication", "/v1/stats?round=2019-R02", None).await;
    assert_eq!(other_round["totals"]["problems_found"], 0);
    let (status, bad) = get(&stack, "publication", "/v1/stats?category=littering", None).await;
    assert_eq!((status.as_u16(), bad["errors"][0]["field"].as_str()), (422, Some("category")));
}
