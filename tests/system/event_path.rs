//! The messaging contract's promises (DESIGN.md): every consumer applies one producer's events
//! about one problem in that producer's order whatever order they arrive in, a repeat has no
//! effect, several relays and instances keep a producer's order, and a consumer made again
//! after its inbox was pruned applies nothing a second time.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use async_nats::jetstream::message::StreamMessage;
use futures::{StreamExt, TryStreamExt};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde_json::{Value, json};
use shared::auth::Role;
use shared::testing::{Stack, StackOptions, WebhookReceiver, eventually};

use crate::publication::{acknowledge, rectify, report, verdict, wait_status};
use crate::support::*;

/// The producers whose events other services consume.
const PRODUCERS: [&str; 3] = ["intake", "assignment", "verification"];

/// A campaign's worth of the lifecycle on a real stack: reports, sheets, acknowledgements,
/// rectifications, a fake one reopened and fixed, a reroute, an extension, a progress stage, a
/// withdrawal. Answers when every service has settled.
async fn real_run(stack: &Stack) {
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(stack, &receiver).await;
    let admin = stack.admin();
    let mut xingtai = Vec::new();
    for (i, category) in ["scattered_polluting", "coal_boiler", "dust", "vocs", "coal_to_gas"].iter().enumerate() {
        xingtai.extend(report(stack, XINGTAI, Some("130502"), &format!("邢台工厂 {i}"), &[category]).await);
    }
    let handan = report(stack, HANDAN, None, "邯郸工厂", &["open_burning", "diesel_vehicle"]).await;
    let withdrawn = report(stack, HANDAN, None, "错报工厂", &["other"]).await.remove(0);
    let (status, body) =
        post(stack, "intake", &format!("/v1/problems/{withdrawn}/withdraw"), &admin, json!({ "reason": "录入错误" }))
            .await;
    assert_eq!(status, 200, "{body}");
    for id in &xingtai {
        acknowledge(stack, id, XINGTAI).await;
    }
    acknowledge(stack, &handan[0], HANDAN).await;

    // A reroute, an extension and a progress stage, all about Xingtai's problems.
    let county = stack.token(Role::LocalGov, None, Some("130502"));
    let (status, body) = post(
        stack,
        "assignment",
        &format!("/v1/problems/{}/dispute", xingtai[2]),
        &county,
        json!({ "reason": "不属于本辖区" }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(
        stack,
        "assignment",
        &format!("/v1/problems/{}/reroute", xingtai[2]),
        &admin,
        json!({ "to": "130503", "reason": "位于襄都区" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let later = (time::OffsetDateTime::now_utc() + time::Duration::days(400)).date().to_string();
    let (status, body) = post(
        stack,
        "assignment",
        &format!("/v1/problems/{}/extensions", xingtai[4]),
        &county,
        json!({ "deadline": later, "reason": "燃气管网施工未完成" }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let extension = body["id"].as_str().unwrap().to_string();
    let (status, _) =
        post(stack, "assignment", &format!("/v1/extensions/{extension}/grant"), &admin, json!({ "reason": "同意" }))
            .await;
    assert_eq!(status, 200);
    eventually("the progress stage accepted", WAIT, || async {
        let path = format!("/v1/problems/{}/progress", xingtai[4]);
        let stage = json!({ "stage": "管网铺设完成", "percent_done": 60 });
        (post(stack, "verification", &path, &county, stage).await.0 == 201).then_some(())
    })
    .await;

    // Fixes: one faked and reopened, then fixed; the others fixed at once; one left open.
    rectify(stack, &xingtai[0], XINGTAI).await;
    verdict(stack, &xingtai[0], "fake_rectification", "台账造假").await;
    wait_status(stack, &xingtai[0], "reopened").await;
    rectify(stack, &xingtai[0], XINGTAI).await;
    verdict(stack, &xingtai[0], "rectified", "复核通过").await;
    for id in [&xingtai[1], &xingtai[3], &handan[0]] {
        let city = if handan.contains(id) { HANDAN } else { XINGTAI };
        rectify(stack, id, city).await;
        verdict(stack, id, "rectified", "现场核查").await;
    }
    for id in [&xingtai[0], &xingtai[1], &xingtai[3], &handan[0]] {
        wait_status(stack, id, "closed").await;
    }
    settled(stack).await;
}

/// The stream's consumers, by durable name, with whether each has acknowledged everything it
/// takes from the stream (an event waiting for its predecessor is delivered but not
/// acknowledged: the ack floor stays behind it).
async fn consumers(stack: &Stack, producer: &str) -> HashMap<String, bool> {
    let js = async_nats::jetstream::new(stack.nats.client().await);
    let Ok(stream) = js.get_stream(shared::messaging::stream_name(&stack.namespace, producer)).await else {
        return HashMap::new();
    };
    let infos: Vec<_> = stream.consumers().try_collect().await.unwrap_or_default();
    infos
        .into_iter()
        .map(|i| {
            let done = i.num_pending == 0
                && i.num_ack_pending == 0
                && i.ack_floor.consumer_sequence == i.delivered.consumer_sequence;
            (i.name.clone(), done)
        })
        .collect()
}

/// Waits until every consumer of the three producers' streams has applied all it was sent.
async fn settled(stack: &Stack) {
    for producer in PRODUCERS {
        eventually(&format!("every consumer of {producer}'s stream caught up"), WAIT, || async {
            let consumers = consumers(stack, producer).await;
            (!consumers.is_empty() && consumers.values().all(|done| *done)).then_some(())
        })
        .await;
    }
}

/// What each service derived from other services' events, as comparable lines.
async fn consumer_state(stack: &Stack) -> BTreeMap<&'static str, Vec<String>> {
    let queries: [(&str, &str); 12] = [
        ("intake", "SELECT problem_id, closed, problem_seq FROM intake.problem_status ORDER BY problem_id"),
        (
            "assignment",
            "SELECT problem_id, round_id, city_code, county_code, jurisdiction, category, severity, site_name, status,
                    verification_seq, overdue
             FROM assignment.ledger ORDER BY problem_id",
        ),
        (
            "verification",
            "SELECT problem_id, round_id, city_code, county_code, category, finder_team, jurisdiction, handover_no,
                    deadline, status, rebound
             FROM verification.problems ORDER BY problem_id",
        ),
        ("verification teams", "SELECT id, home_province FROM verification.teams ORDER BY id"),
        (
            "notification",
            "SELECT problem_id, city_code, jurisdiction, category, site_name, description, deadline, assignment_seq,
                    verification_seq, closed
             FROM notification.problems ORDER BY problem_id",
        ),
        (
            "notification notices",
            "SELECT kind, source_event_id, jurisdiction, city_code, handover_no, acknowledged_at
             FROM notification.notices ORDER BY source_event_id",
        ),
        (
            "publication",
            "SELECT problem_id, status, category, city_code, county_code, jurisdiction, site_name, handover_no,
                    handed_over_at, deadline, acknowledged_at, rectification_reported_at, progress_stage, verified_at,
                    closed_at, overdue_on, reopened_count, rerouted_count, extended_count, public
             FROM publication.problems ORDER BY problem_id",
        ),
        (
            "publication history",
            "SELECT problem_id, source_event_id, at, kind, status, what FROM publication.history
             ORDER BY problem_id, source_event_id",
        ),
        (
            "publication log, per problem",
            "SELECT problem_id, array_agg(status ORDER BY entry_seq) FROM publication.history
             WHERE entry_seq IS NOT NULL GROUP BY problem_id ORDER BY problem_id",
        ),
        (
            "publication checks",
            "SELECT round_id, city_code, checks, duplicates FROM publication.inspection_counts ORDER BY 1, 2",
        ),
        ("publication rounds", "SELECT round_id, starts_on, ends_on, kind FROM publication.rounds ORDER BY 1"),
        ("publication teams", "SELECT round_id, team FROM publication.round_teams ORDER BY 1, 2"),
    ];
    let pool = stack.db.pool().await;
    let mut state = BTreeMap::new();
    for (name, sql) in queries {
        let rows: Vec<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT row_to_json(t)::text FROM ({sql}) t")))
                .fetch_all(&pool)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        state.insert(name, rows);
    }
    pool.close().await;
    state
}

/// A stack that only consumes: its assignment never issues a sheet of its own (the events it
/// is given carry the sheets), so what every service holds comes from the events alone.
async fn consuming_stack() -> Stack {
    let mut options = StackOptions::default();
    options.env.retain(|(k, _)| !k.ends_with("GATHERING_WINDOW_MILLIS"));
    options.env.push(("SKYLEDGER__ASSIGNMENT__GATHERING_WINDOW_MILLIS".into(), "86400000".into()));
    Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), options).await
}

/// Publishes `messages` (taken from another stack) into `stack`'s streams, each under a fresh
/// message id so that copies are delivered as copies.
async fn replay(stack: &Stack, from_namespace: &str, messages: &[StreamMessage]) {
    let js = async_nats::jetstream::new(stack.nats.client().await);
    let mut acks = Vec::new();
    for message in messages {
        let subject = message.subject.replacen(from_namespace, &stack.namespace, 1);
        let again = async_nats::jetstream::message::PublishMessage::build()
            .payload(message.payload.clone())
            .message_id(uuid::Uuid::now_v7().to_string());
        acks.push(js.send_publish(subject, again).await.expect("publish"));
    }
    for ack in acks {
        ack.await.expect("stored");
    }
}

/// Waits until `stack` has applied everything and dead-lettered nothing; answers its state.
async fn final_state(stack: &Stack) -> BTreeMap<&'static str, Vec<String>> {
    settled(stack).await;
    for service in ["intake", "assignment", "verification", "notification", "publication"] {
        let (_, letters) = get(stack, service, "/v1/admin/dead-letters", Some(&stack.admin())).await;
        assert_eq!(letters["items"], json!([]), "{service} dead-lettered something");
    }
    consumer_state(stack).await
}

#[tokio::test(flavor = "multi_thread")]
async fn shuffled_and_repeated_events_end_in_the_same_state_as_the_ordered_run() {
    // One stack at a time: three would crowd the machine's Postgres.
    let real = start().await;
    real_run(&real).await;
    let mut streams = Vec::new();
    for producer in PRODUCERS {
        streams.push(stream_messages(&real, producer).await);
    }
    let real_state = final_state(&real).await;
    let real_namespace = real.namespace.clone();
    drop(real);

    // The same events, in order, to a stack that only consumes; then reversed, shuffled and
    // with a third of them twice, to another. Producers one after another: across producers
    // a later event is caused by an earlier one.
    let ordered = consuming_stack().await;
    for messages in &streams {
        replay(&ordered, &real_namespace, messages).await;
        settled(&ordered).await;
    }
    let expected = final_state(&ordered).await;
    drop(ordered);
    let disordered = consuming_stack().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(2019);
    for messages in &streams {
        let mut scrambled: Vec<StreamMessage> = messages.iter().rev().cloned().collect();
        let copies: Vec<StreamMessage> = messages.iter().step_by(3).cloned().collect();
        for copy in copies {
            let at = rand::Rng::gen_range(&mut rng, 0..=scrambled.len());
            scrambled.insert(at, copy);
        }
        // Reversed, then the first half shuffled: a problem's later events mostly come first.
        let half = scrambled.len() / 2;
        scrambled[..half].shuffle(&mut rng);
        replay(&disordered, &real_namespace, &scrambled).await;
        settled(&disordered).await;
    }
    let got = final_state(&disordered).await;

    assert!(expected["publication"].len() >= 8 && expected["notification notices"].len() >= 5, "{expected:#?}");
    for (name, rows) in &expected {
        assert_eq!(&got[name], rows, "{name} differs after shuffled, repeated delivery");
    }
    // The real run's public record agrees with the replays': the same entries for each problem.
    // Their order may differ where two producers' events crossed (an acknowledgement applied after
    // a rectification on a loaded machine): the contract orders one producer's events only.
    let entries = |state: &BTreeMap<&'static str, Vec<String>>| -> Vec<(String, Vec<String>)> {
        state["publication log, per problem"]
            .iter()
            .map(|row| {
                let row: Value = serde_json::from_str(row).expect("a row as JSON");
                let mut statuses: Vec<String> = serde_json::from_value(row["array_agg"].clone()).expect("statuses");
                statuses.sort();
                (row["problem_id"].to_string(), statuses)
            })
            .collect()
    };
    assert_eq!(entries(&real_state), entries(&expected));
    assert_eq!(real_state["publication checks"], expected["publication checks"]);
}

/// The problem each event of a stream is about, and its counter, in stream order.
fn counters(messages: &[StreamMessage]) -> Vec<(String, i64)> {
    let mut counters = Vec::new();
    for message in messages {
        let event: Value = serde_json::from_slice(&message.payload).unwrap();
        let data = &event["data"];
        if let (Some(id), Some(seq)) = (data["problem_id"].as_str(), data["problem_seq"].as_i64()) {
            counters.push((id.to_string(), seq));
        }
        for p in data["problems"].as_array().into_iter().flatten() {
            if let (Some(id), Some(seq)) = (p["problem_id"].as_str(), p["problem_seq"].as_i64()) {
                counters.push((id.to_string(), seq));
            }
        }
    }
    counters
}

#[tokio::test(flavor = "multi_thread")]
async fn several_relays_and_instances_keep_each_producers_order() {
    let mut options = StackOptions::default();
    options.env.push(("SKYLEDGER__OUTBOX__RELAYS".into(), "3".into()));
    let mut stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), options).await;
    let second_verification = stack.add_instance("verification").await;
    stack.add_instance("assignment").await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;

    let reports: Vec<Value> =
        (0..120).map(|i| inspection(XINGTAI, Some("130502"), &format!("工厂 {i}"), &["vocs"])).collect();
    let ids: Vec<String> = reports.iter().flat_map(problem_ids).collect();
    for chunk in reports.chunks(40) {
        batch(&stack, chunk.to_vec()).await;
    }
    let admin = stack.admin();
    let sheets = eventually("every problem on a sheet", WAIT, || async {
        let (_, ledger) = get(&stack, "assignment", "/v1/ledger?city=130500", Some(&admin)).await;
        let items = ledger["items"].as_array().cloned().unwrap_or_default();
        let sheets: std::collections::BTreeSet<String> =
            items.iter().filter_map(|i| i["handover_no"].as_str().map(str::to_string)).collect();
        (items.len() == ids.len() && items.iter().all(|i| i["handover_no"].is_string())).then_some(sheets)
    })
    .await;
    let city = stack.token(Role::LocalGov, None, Some(XINGTAI));
    for sheet in &sheets {
        let (status, body) =
            post(&stack, "assignment", &format!("/v1/handovers/{sheet}/acknowledge"), &city, json!({})).await;
        assert!(status.is_success(), "{body}");
    }

    // Each problem's rectification and verdicts follow each other at once, through both
    // instances of verification, many problems at a time.
    let verifier = stack.token(Role::Verifier, Some(VERIFIER), None);
    let urls = [stack.url("verification"), second_verification];
    let fix = json!({ "measures": "已整改", "completed_at": "2019-05-20T09:00:00+08:00" });
    futures::stream::iter(ids.iter().enumerate())
        .map(|(i, id)| {
            let (stack, urls, fix, city, verifier) = (&stack, &urls, fix.clone(), &city, &verifier);
            async move {
                let results: &[&str] = if i % 3 == 0 { &["fake_rectification", "rectified"] } else { &["rectified"] };
                for (n, result) in results.iter().enumerate() {
                    let base = format!("{}/v1/problems/{id}", urls[(i + n) % 2]);
                    eventually("the rectification accepted", WAIT, || async {
                        let r =
                            stack.http.post(format!("{base}/rectification")).bearer_auth(city).json(&fix).send().await;
                        r.is_ok_and(|r| r.status() == 201).then_some(())
                    })
                    .await;
                    let body = json!({ "result": result, "team": VERIFIER });
                    let r = stack.http.post(format!("{base}/verdict")).bearer_auth(verifier).json(&body).send().await;
                    assert_eq!(r.unwrap().status(), 201);
                }
            }
        })
        .buffer_unordered(12)
        .collect::<Vec<()>>()
        .await;
    settled(&stack).await;

    // In each producer's stream, each problem's events stand in its counter's order.
    for producer in ["assignment", "verification"] {
        let mut last: HashMap<String, i64> = HashMap::new();
        for (id, seq) in counters(&stream_messages(&stack, producer).await) {
            let before = last.insert(id.clone(), seq).unwrap_or(0);
            assert!(seq > before, "{producer}'s event {seq} about {id} came after {before}");
        }
    }
    // And every consumer ended right.
    let pool = stack.db.pool().await;
    let closed = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.unwrap() }
    };
    let n = ids.len() as i64;
    assert_eq!(closed("SELECT count(*) FROM intake.problem_status WHERE closed").await, n);
    assert_eq!(closed("SELECT count(*) FROM assignment.ledger WHERE status = 'closed'").await, n);
    assert_eq!(closed("SELECT count(*) FROM notification.problems WHERE closed").await, n);
    assert_eq!(closed("SELECT count(*) FROM publication.problems WHERE status = 'closed'").await, n);
    let reopened = ids.iter().step_by(3).count() as i64;
    assert_eq!(closed("SELECT count(*) FROM publication.problems WHERE reopened_count = 1").await, reopened);
    pool.close().await;
    for id in ids.iter().step_by(3) {
        let record = wait_status(&stack, id, "closed").await;
        let steps: Vec<&str> =
            record["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
        assert_eq!(
            steps,
            [
                "reported",
                "assigned",
                "acknowledged",
                "rectification_reported",
                "reopened",
                "rectification_reported",
                "closed"
            ]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_made_again_after_its_inbox_was_pruned_applies_nothing_twice() {
    let mut stack = start().await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let reports: Vec<Value> = (0..300)
        .map(|i| {
            let categories: &[&str] = if i % 10 == 0 { &["dust"] } else { &[] };
            inspection(if i % 2 == 0 { XINGTAI } else { HANDAN }, None, &format!("点位 {i}"), categories)
        })
        .collect();
    let problems: Vec<String> = reports.iter().flat_map(problem_ids).collect();
    for chunk in reports.chunks(100) {
        batch(&stack, chunk.to_vec()).await;
    }
    // Every tenth check (all in Xingtai) found a problem.
    for id in problems.iter().take(3) {
        wait_status(&stack, id, "assigned").await;
        rectify_and_verify(&stack, id, XINGTAI).await;
        wait_status(&stack, id, "closed").await;
    }
    settled(&stack).await;
    let figures =
        |stats: &Value| json!([stats["totals"]["site_checks"], stats["totals"]["problems"], stats["totals"]["closed"]]);
    let (_, stats) = get(&stack, "publication", "/v1/stats", None).await;
    assert_eq!(figures(&stats), json!([300, 30, 3]), "{stats}");
    let before = consumer_state(&stack).await;

    // Every consumer has stored the position it acknowledged everything up to.
    let pool = stack.db.pool().await;
    for producer in PRODUCERS {
        let js = async_nats::jetstream::new(stack.nats.client().await);
        let mut stream = js.get_stream(shared::messaging::stream_name(&stack.namespace, producer)).await.unwrap();
        let last = stream.info().await.unwrap().state.last_sequence as i64;
        for consumer in consumers(&stack, producer).await.keys() {
            let schema = consumer.rsplit('_').next().unwrap().to_string();
            eventually(&format!("{schema} to store its position on {producer}"), WAIT, || async {
                let sql = format!("SELECT acked_through FROM {schema}.stream_positions WHERE stream = $1");
                let stored: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .bind(shared::messaging::stream_name(&stack.namespace, producer))
                    .fetch_optional(&pool)
                    .await
                    .unwrap();
                // A filtered consumer's position may stop at the last event it takes.
                stored.filter(|s| *s > 0 && *s <= last).map(|_| ())
            })
            .await;
        }
    }
    // What 14 days of retention does: the inboxes forget; then every consumer is deleted.
    for schema in ["intake", "assignment", "verification", "notification", "publication"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {schema}.inbox"))).execute(&pool).await.unwrap();
    }
    pool.close().await;
    let js = async_nats::jetstream::new(stack.nats.client().await);
    let mut deleted = 0;
    for producer in PRODUCERS {
        let stream = js.get_stream(shared::messaging::stream_name(&stack.namespace, producer)).await.unwrap();
        for consumer in consumers(&stack, producer).await.keys() {
            stream.delete_consumer(consumer).await.unwrap();
            deleted += 1;
        }
    }
    assert_eq!(deleted, 10, "three consumers of intake and of assignment, four of verification");
    // A fresh instance of publication too.
    stack.restart("publication").await;

    eventually("every consumer made again", WAIT, || async {
        let mut made = 0;
        for producer in PRODUCERS {
            made += consumers(&stack, producer).await.len();
        }
        (made == 10).then_some(())
    })
    .await;
    settled(&stack).await;
    // New work still flows.
    let more = inspection(XINGTAI, None, "新点位", &["vocs"]);
    let more_id = problem_ids(&more)[0].clone();
    batch(&stack, vec![more]).await;
    wait_status(&stack, &more_id, "assigned").await;
    settled(&stack).await;
    let (_, stats) = get(&stack, "publication", "/v1/stats", None).await;
    assert_eq!(figures(&stats), json!([301, 31, 3]), "nothing counted twice: {stats}");
    let after = consumer_state(&stack).await;
    for name in ["intake", "verification teams", "publication rounds", "publication teams"] {
        assert_eq!(after[name], before[name], "{name} changed");
    }
    let notices = &after["notification notices"];
    assert!(before["notification notices"].iter().all(|n| notices.contains(n)));
    assert_eq!(notices.len(), before["notification notices"].len() + 1, "one new handover notice, none repeated");
}
