//! Notification against real receivers: an HTTP webhook receiver, an SMTP server and an HTTP
//! SMS gateway, all started by the test. Notices arrive once (receivers dedupe on
//! `webhook-id` / Message-ID), retries back off on a short schedule (configuration), dead
//! notices are shown and can be replayed, and a crash mid-delivery loses and doubles nothing.

use std::collections::{HashMap, HashSet};
use std::io::Cursor;
use std::path::Path;
use std::time::{Duration, Instant};

use calamine::Reader;
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::{Value, json};
use shared::auth::Role;
use shared::events::{
    CITY_ESCALATED, CityEscalated, NOTICE_FAILED, PROBLEM_OVERDUE, PROBLEM_REROUTED, ProblemOverdue, ProblemRerouted,
};
use shared::testing::{Mail, Received, SmtpReceiver, Stack, StackOptions, WebhookReceiver, eventually};
use uuid::Uuid;

use crate::support::*;

/// Settings that keep notification's tests in seconds: retries a twentieth of the real
/// schedule, short timeouts (a killed worker's lease runs out soon), schedules looked at often.
fn options(extra: &[(&str, String)]) -> StackOptions {
    let mut options = StackOptions::default();
    for (key, value) in [
        ("RETRY_SCALE", "0.05"),
        ("WEBHOOK_TIMEOUT_SECS", "3"),
        ("SMTP__TIMEOUT_SECS", "3"),
        ("SCHEDULE_CHECK_MILLIS", "200"),
        ("QUIET_RECHECK_SECS", "1"),
    ] {
        options.env.push((format!("SKYLEDGER__NOTIFICATION__{key}"), value.into()));
    }
    for (key, value) in extra {
        options.env.push((key.to_string(), value.clone()));
    }
    options
}

async fn start_with(extra: &[(&str, String)]) -> Stack {
    Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), options(extra)).await
}

fn smtp_env(smtp: &SmtpReceiver) -> Vec<(&'static str, String)> {
    vec![
        ("SKYLEDGER__NOTIFICATION__SMTP__HOST", smtp.host.clone()),
        ("SKYLEDGER__NOTIFICATION__SMTP__PORT", smtp.port.to_string()),
    ]
}

async fn put(stack: &Stack, path: &str, body: Value) -> Value {
    let (status, answer) = send(stack, "PUT", "notification", path, Some(&stack.admin()), Some(body)).await;
    assert!(status.is_success(), "PUT {path}: {status} {answer}");
    answer
}

async fn notices(stack: &Stack, query: &str) -> Vec<Value> {
    let (status, body) =
        get(stack, "notification", &format!("/v1/notices?limit=1000{query}"), Some(&stack.admin())).await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

fn of_type(receiver: &WebhookReceiver, kind: &str) -> Vec<Received> {
    receiver.received().into_iter().filter(|r| r.json()["type"] == kind).collect()
}

fn unit(receiver: &WebhookReceiver, role: &str, phones: &[&str]) -> Value {
    json!({ "role": role, "name": format!("{role} 包保单位"), "phones": phones,
            "webhook": { "url": format!("{}/units/{role}", receiver.url), "secret": SECRET } })
}

/// Verifies with the `standardwebhooks` crate, independent of the service's own signing.
fn verifies_independently(r: &Received) -> bool {
    standardwebhooks::Webhook::new(SECRET).expect("secret").verify(&r.body, &r.headers).is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flaky_receiver_gets_the_notice_once_under_one_webhook_id_and_a_410_is_final_until_replayed() {
    let stack = start_with(&[]).await;
    let flaky = WebhookReceiver::start(vec![500, 503, 500]).await;
    let gone = WebhookReceiver::start(vec![410]).await;
    campaign(&stack, &flaky).await;
    put(
        &stack,
        &format!("/v1/recipients/{HANDAN}"),
        json!({ "name": "邯郸市人民政府",
        "webhook": { "url": format!("{}/hooks", gone.url), "secret": SECRET } }),
    )
    .await;
    batch(&stack, vec![inspection(XINGTAI, None, "甲厂", &["dust"]), inspection(HANDAN, None, "乙厂", &["dust"])])
        .await;

    // Three failures, then the fourth try is taken: four requests, one webhook-id, all signed.
    let delivered = eventually("the flaky receiver's notice to be delivered", WAIT, || async {
        let items = notices(&stack, &format!("&jurisdiction={XINGTAI}")).await;
        items.into_iter().find(|n| n["deliveries"][0]["status"] == "delivered")
    })
    .await;
    let tries = flaky.received();
    assert_eq!(tries.len(), 4, "three failures and one success");
    let ids: HashSet<&str> = tries.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids, HashSet::from([delivered["id"].as_str().unwrap()]), "the same webhook-id on every try");
    assert!(tries.iter().all(verifies_independently), "every try verifies with standardwebhooks");
    assert_eq!(delivered["deliveries"][0]["attempts"], 4);
    assert!(count(&stack, "SELECT count(*) FROM notification.attempts").await >= 5, "every try is logged");

    // 410 is final: one try, the notice is dead, and notice.failed says so.
    let dead = eventually("the 410 notice to be dead", WAIT, || async {
        notices(&stack, "&status=dead").await.into_iter().next()
    })
    .await;
    assert_eq!(dead["jurisdiction"], HANDAN);
    assert_eq!(dead["deliveries"][0]["attempts"], 1);
    assert_eq!(dead["deliveries"][0]["last_error"], "HTTP 410");
    assert_eq!(gone.received().len(), 1, "a 410 is not retried");
    eventually("notice.failed in the stream", WAIT, || async {
        let failed = stream_events(&stack, "notification", &NOTICE_FAILED).await;
        failed.iter().any(|e| e.data["notice_id"] == dead["id"]).then_some(())
    })
    .await;

    // The admin replays it: the same webhook-id again, delivered this time.
    let id = dead["id"].as_str().unwrap();
    let inspector = inspector(&stack);
    assert_eq!(post(&stack, "notification", &format!("/v1/notices/{id}/replay"), &inspector, json!({})).await.0, 403);
    let (status, answer) =
        post(&stack, "notification", &format!("/v1/notices/{id}/replay"), &stack.admin(), json!({})).await;
    assert_eq!((status.as_u16(), answer["replayed_deliveries"].as_u64()), (200, Some(1)), "{answer}");
    eventually("the replayed notice to be delivered", WAIT, || async {
        let items = notices(&stack, &format!("&jurisdiction={HANDAN}")).await;
        (items[0]["deliveries"][0]["status"] == "delivered").then_some(())
    })
    .await;
    assert_eq!(gone.received().len(), 2);
    assert_eq!(gone.received()[1].header("webhook-id"), id);
    let (status, _) =
        post(&stack, "notification", &format!("/v1/notices/{id}/replay"), &stack.admin(), json!({})).await;
    assert_eq!(status, 409, "nothing dead is left to replay");

    // Metrics per channel: deliveries by outcome, and latency.
    let metrics = stack.http.get(format!("{}/metrics", stack.url("notification"))).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    for outcome in ["retry", "delivered", "dead"] {
        assert!(
            metrics.lines().any(|l| l.starts_with("deliveries_total{")
                && l.contains("channel=\"webhook\"")
                && l.contains(&format!("outcome=\"{outcome}\""))),
            "no {outcome} count:\n{metrics}"
        );
    }
    assert!(metrics.contains("delivery_seconds_bucket{channel=\"webhook\""), "{metrics}");
}

fn parse(mail: &Mail) -> mail_parser::Message<'_> {
    MessageParser::default().parse(&mail.data).expect("a MIME message")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_handover_email_arrives_with_its_chinese_subject_and_the_sheet_attached_as_xlsx_and_csv() {
    let smtp = SmtpReceiver::start().await;
    let stack = start_with(&smtp_env(&smtp)).await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    put(
        &stack,
        &format!("/v1/recipients/{XINGTAI}"),
        json!({ "name": "邢台市人民政府",
        "webhook": { "url": format!("{}/hooks/{XINGTAI}", receiver.url), "secret": SECRET },
        "emails": ["duban@xingtai.example.org"] }),
    )
    .await;
    let report = inspection(XINGTAI, Some("130502"), "某某铸造厂", &["scattered_polluting", "coal_boiler"]);
    let ids = problem_ids(&report);
    batch(&stack, vec![report]).await;

    let mail = eventually("the handover e-mail", WAIT, || async { smtp.mails().into_iter().next() }).await;
    let notice = eventually("the notice delivered by e-mail", WAIT, || async {
        let items = notices(&stack, "&kind=handover").await;
        items.into_iter().find(|n| {
            n["deliveries"].as_array().unwrap().iter().any(|d| d["channel"] == "email" && d["status"] == "delivered")
        })
    })
    .await;
    let handover_no = notice["handover_no"].as_str().unwrap();
    assert_eq!(mail.to, ["duban@xingtai.example.org"]);
    let raw_subject = mail.header("Subject").expect("a Subject header");
    assert!(raw_subject.starts_with("=?utf-8?") || raw_subject.starts_with("=?UTF-8?"), "RFC 2047: {raw_subject}");

    let message = parse(&mail);
    assert_eq!(message.subject(), Some(format!("【电子督办单】{handover_no}：邢台市交办问题 2 个").as_str()));
    let message_id = message.message_id().expect("a Message-ID");
    assert!(message_id.starts_with(notice["id"].as_str().unwrap()), "{message_id}");
    let text = message.body_text(0).expect("a text part");
    assert!(text.contains("某某铸造厂") && text.contains("/receipt?sig="), "{text}");
    assert!(message.body_html(0).is_some_and(|h| h.contains("某某铸造厂")), "an HTML part too");

    let attachments: HashMap<String, Vec<u8>> = message
        .attachments()
        .map(|a| (a.attachment_name().unwrap_or_default().to_string(), a.contents().to_vec()))
        .collect();
    let xlsx = attachments.get(&format!("{handover_no}.xlsx")).expect("the XLSX attachment");
    let mut workbook: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(Cursor::new(xlsx.clone())).expect("the XLSX opens");
    let sheet = workbook.worksheet_range_at(0).expect("a worksheet").expect("readable");
    let rows: Vec<Vec<String>> = sheet.rows().map(|r| r.iter().map(|c| c.to_string()).collect()).collect();
    assert_eq!(rows.len(), 3, "a header and the two problems: {rows:?}");
    assert_eq!(rows[0][1], "问题编号");
    let listed: HashSet<&str> = rows[1..].iter().map(|r| r[1].as_str()).collect();
    assert_eq!(listed, ids.iter().map(String::as_str).collect());
    assert!(rows[1..].iter().all(|r| r[3] == "130502" && r[4] == "某某铸造厂"));
    let csv =
        String::from_utf8(attachments.get(&format!("{handover_no}.csv")).expect("the CSV attachment").clone()).unwrap();
    assert!(ids.iter().all(|id| csv.contains(id.as_str())), "{csv}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_problems_reported_together_make_one_handover_notice_within_a_minute() {
    // The production default gathers for 10 s; 5 s here is still a window, not a sleep.
    let stack = start_with(&[("SKYLEDGER__ASSIGNMENT__GATHERING_WINDOW_MILLIS", "5000".into())]).await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let reports: Vec<Value> = (0..100).map(|i| inspection(XINGTAI, None, &format!("工厂 {i}"), &["vocs"])).collect();
    let expected: HashSet<String> = reports.iter().flat_map(problem_ids).collect();
    let started = Instant::now();
    batch(&stack, reports).await;

    let first =
        eventually("the handover notice", Duration::from_secs(60), || async { receiver.received().into_iter().next() })
            .await;
    assert!(started.elapsed() < Duration::from_secs(60), "the first notice leaves within a minute");
    let listed: HashSet<String> =
        first.json()["problems"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(listed, expected, "one notice lists all 100");
    let items = notices(&stack, "").await;
    assert_eq!(items.len(), 1, "one notice, not 100: {items:?}");
    assert_eq!(items[0]["problem_count"], 100);
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_notification_mid_delivery_loses_nothing_and_doubles_nothing() {
    let smtp = SmtpReceiver::start().await;
    let mut env = smtp_env(&smtp);
    env.push(("SKYLEDGER__ASSIGNMENT__MAX_SHEET_PROBLEMS", "4".into()));
    let mut stack = start_with(&env).await;
    let receiver = WebhookReceiver::start(vec![]).await;
    // Requests stay in flight for a while, so the kill lands mid-delivery.
    receiver.set_delay(Duration::from_secs(2));
    campaign(&stack, &receiver).await;
    for city in [XINGTAI, HANDAN] {
        put(
            &stack,
            &format!("/v1/recipients/{city}"),
            json!({ "name": format!("{city} 人民政府"),
            "webhook": { "url": format!("{}/hooks/{city}", receiver.url), "secret": SECRET },
            "emails": [format!("gov-{city}@example.org")] }),
        )
        .await;
    }
    let reports: Vec<Value> = (0..24)
        .map(|i| inspection(if i % 2 == 0 { XINGTAI } else { HANDAN }, None, &format!("工厂 {i}"), &["dust"]))
        .collect();
    let expected: HashSet<String> = reports.iter().flat_map(problem_ids).collect();
    batch(&stack, reports).await;

    eventually("a webhook request in flight", WAIT, || async { (!receiver.received().is_empty()).then_some(()) }).await;
    stack.kill("notification");
    stack.restart("notification").await;

    let admin = stack.admin();
    let all = eventually("every notice delivered on both channels", Duration::from_secs(90), || async {
        let (_, body) = get(&stack, "notification", "/v1/notices?limit=1000", Some(&admin)).await;
        let items = body["items"].as_array().cloned().unwrap_or_default();
        let problems: usize = items.iter().map(|n| n["problem_count"].as_u64().unwrap_or(0) as usize).sum();
        let done = problems == 24
            && items.iter().all(|n| {
                let ds = n["deliveries"].as_array().unwrap();
                ds.len() == 2 && ds.iter().all(|d| d["status"] == "delivered")
            });
        done.then_some(items)
    })
    .await;
    let notice_ids: HashSet<String> = all.iter().map(|n| n["id"].as_str().unwrap().to_string()).collect();

    // The webhook receiver, deduping on webhook-id, has each notice once, and no problem twice.
    let mut by_id: HashMap<String, Value> = HashMap::new();
    for r in receiver.received() {
        let body = r.json();
        if let Some(before) = by_id.insert(r.header("webhook-id").to_string(), body.clone()) {
            assert_eq!(before, body, "a repeat under one webhook-id is the same notice");
        }
    }
    assert_eq!(by_id.keys().cloned().collect::<HashSet<_>>(), notice_ids);
    assert!(receiver.received().len() > by_id.len(), "the kill landed mid-delivery: a try came again");
    let notified: Vec<String> = by_id
        .values()
        .flat_map(|n| {
            n["problems"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_string()).collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(notified.len(), 24, "no problem on two notices");
    assert_eq!(notified.into_iter().collect::<HashSet<_>>(), expected);

    // Every e-mail arrived, one Message-ID a notice. SMTP cannot promise more across a SIGKILL
    // between the server's 250 and our commit (RFC 5321 §6.1): a mail caught there comes once
    // more, under the same Message-ID, so a mailbox that dedupes on it shows it once.
    let mails = smtp.mails();
    let message_ids: Vec<String> = mails.iter().map(|m| m.header("Message-ID").expect("Message-ID")).collect();
    let mut copies: HashMap<&String, usize> = HashMap::new();
    for id in &message_ids {
        *copies.entry(id).or_default() += 1;
    }
    assert_eq!(copies.len(), notice_ids.len(), "one e-mail a notice: {message_ids:?}");
    assert!(copies.values().all(|&n| n <= 2), "at most the one copy caught by the kill comes again: {copies:?}");
    assert!(message_ids.iter().all(|m| notice_ids.iter().any(|id| m.contains(id.as_str()))));
}

/// Shanghai wall-clock `HH:MM`, `minutes` from now.
fn shanghai_hhmm(minutes: i64) -> String {
    let at = time::OffsetDateTime::now_utc().to_offset(shared::clock::SHANGHAI) + time::Duration::minutes(minutes);
    format!("{:02}:{:02}", at.hour(), at.minute())
}

#[tokio::test(flavor = "multi_thread")]
async fn quiet_hours_hold_handover_notices_while_overdue_escalation_and_reroute_notices_go_with_sms_and_package_units()
{
    let gateway = WebhookReceiver::start(vec![]).await;
    let stack = start_with(&[
        ("SKYLEDGER__NOTIFICATION__SMS__URL", format!("{}/sms/send", gateway.url)),
        ("SKYLEDGER__NOTIFICATION__SMS__USERNAME", "skyledger".into()),
        ("SKYLEDGER__NOTIFICATION__SMS__PASSWORD", "s3cret".into()),
        ("SKYLEDGER__NOTIFICATION__SMS__SENDER", "生态环境部".into()),
    ])
    .await;
    let receiver = WebhookReceiver::start(vec![]).await;
    let units = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let xingtai = json!({ "name": "邢台市人民政府", "phones": ["+8613800000001"],
        "webhook": { "url": format!("{}/hooks/{XINGTAI}", receiver.url), "secret": SECRET },
        "quiet_hours": { "from": shanghai_hhmm(-60), "to": shanghai_hhmm(60) } });
    put(&stack, &format!("/v1/recipients/{XINGTAI}"), xingtai.clone()).await;
    let answer = put(
        &stack,
        &format!("/v1/recipients/{XINGTAI}/package-units"),
        json!({ "units": [
        unit(&units, "ministry_department", &["+8613900000002"]), unit(&units, "affiliated_unit", &[]),
        unit(&units, "provincial_department", &[]) ] }),
    )
    .await;
    assert_eq!(answer["units"].as_array().unwrap().len(), 3, "{answer}");
    let (status, problem) = send(
        &stack,
        "PUT",
        "notification",
        &format!("/v1/recipients/{XINGTAI}/package-units"),
        Some(&stack.admin()),
        Some(json!({ "units": [ unit(&units, "ministry_department", &[]) ] })),
    )
    .await;
    assert_eq!((status.as_u16(), problem["errors"][0]["field"].as_str()), (422, Some("units")), "{problem}");

    // The handover notice waits for the quiet hours to end.
    let report = inspection(XINGTAI, Some("130502"), "某化工厂", &["vocs"]);
    let problem_id: Uuid = problem_ids(&report)[0].parse().unwrap();
    batch(&stack, vec![report]).await;
    eventually("the handover notice held by quiet hours", WAIT, || async {
        let items = notices(&stack, "&kind=handover").await;
        items.iter().any(|n| n["deliveries"][0]["waiting_for"] == "quiet hours").then_some(())
    })
    .await;

    // Overdue is urgent: it goes now, by webhook and SMS.
    let today = shared::clock::shanghai_date(time::OffsetDateTime::now_utc());
    let overdue = ProblemOverdue {
        problem_id,
        problem_seq: 9,
        previous: Default::default(),
        city_code: XINGTAI.into(),
        jurisdiction: "130502".into(),
        deadline: today - time::Duration::days(1),
        overdue_on: today,
    };
    publish_event(&stack, &PROBLEM_OVERDUE, &problem_id.to_string(), Some(XINGTAI), &overdue).await;
    let notice =
        eventually("the overdue notice", WAIT, || async { of_type(&receiver, "problem.overdue").into_iter().next() })
            .await;
    assert_eq!(notice.path, format!("/hooks/{XINGTAI}"), "the county has no recipient: its city stands in");
    assert_eq!(notice.json()["problem"]["site"]["name"], "某化工厂", "notification knows the problem from its sheet");
    assert!(verifies_independently(&notice));
    let sms = eventually("the overdue SMS", WAIT, || async { gateway.received().into_iter().next() }).await;
    assert_eq!(sms.path, "/sms/send");
    let body = sms.json();
    assert_eq!((body["to"].as_str(), body["sender"].as_str()), (Some("+8613800000001"), Some("生态环境部")));
    assert!(body["text"].as_str().unwrap().contains("已过整改期限"), "{body}");
    assert!(sms.header("authorization").starts_with("Basic "));
    assert!(!sms.header("idempotency-key").is_empty());

    // A summons goes to the city government and its three package units, by SMS too.
    let escalated = CityEscalated {
        city_code: XINGTAI.into(),
        level: "summons".into(),
        previous_level: Some("listed_supervision".into()),
        overdue: 12,
        reopened: 3,
        rebounds: 1,
        escalated_at: time::OffsetDateTime::now_utc(),
    };
    publish_event(&stack, &CITY_ESCALATED, XINGTAI, Some(XINGTAI), &escalated).await;
    let to_units = eventually("the summons at all three package units", WAIT, || async {
        let got = of_type(&units, "city.escalated");
        (got.len() == 3).then_some(got)
    })
    .await;
    let paths: HashSet<String> = to_units.iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths.len(), 3, "one for each unit: {paths:?}");
    assert!(to_units.iter().all(|r| r.json()["level"] == "summons" && verifies_independently(r)));
    eventually("the summons at the city government", WAIT, || async {
        (!of_type(&receiver, "city.escalated").is_empty()).then_some(())
    })
    .await;
    eventually("the summons by SMS to the city and the unit with a phone", WAIT, || async {
        let texts: Vec<Value> = gateway
            .received()
            .iter()
            .map(|r| r.json())
            .filter(|b| b["text"].as_str().unwrap_or("").contains("约谈"))
            .collect();
        let phones: HashSet<&str> = texts.iter().filter_map(|b| b["to"].as_str()).collect();
        (phones == HashSet::from(["+8613800000001", "+8613900000002"])).then_some(())
    })
    .await;

    // A reroute is a new notice to the new owner (Handan, standing in for its county). The
    // problem is made up, so its reroute is the first word assignment says of it.
    let rerouted_id = Uuid::now_v7();
    let rerouted = ProblemRerouted {
        problem_id: rerouted_id,
        problem_seq: 1,
        previous: Default::default(),
        city_code: HANDAN.into(),
        from_jurisdiction: "130502".into(),
        to_jurisdiction: "130402".into(),
        reason: "点位属邯郸市".into(),
        deadline: today + time::Duration::days(20),
        category: "dust".into(),
        site_name: "某工地".into(),
        description: "未苫盖".into(),
        rerouted_at: time::OffsetDateTime::now_utc(),
    };
    publish_event(&stack, &PROBLEM_REROUTED, &rerouted_id.to_string(), Some(HANDAN), &rerouted).await;
    let moved =
        eventually("the reroute notice", WAIT, || async { of_type(&receiver, "problem.rerouted").into_iter().next() })
            .await;
    assert_eq!(moved.path, format!("/hooks/{HANDAN}"));
    assert_eq!(moved.json()["jurisdiction"], "130402");
    assert_eq!(moved.json()["problem"]["id"], rerouted_id.to_string());

    // The handover notice is still held; when the quiet hours end, it goes.
    assert!(of_type(&receiver, "handover.issued").is_empty(), "no handover notice during quiet hours");
    let mut awake = xingtai.clone();
    awake.as_object_mut().unwrap().remove("quiet_hours");
    put(&stack, &format!("/v1/recipients/{XINGTAI}"), awake).await;
    eventually("the handover notice after the quiet hours", WAIT, || async {
        (!of_type(&receiver, "handover.issued").is_empty()).then_some(())
    })
    .await;
    assert!(
        gateway.received().iter().all(|r| !r.json()["text"].as_str().unwrap_or("").contains("督办单")),
        "no SMS for a handover"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deadline_reminders_follow_the_simulated_clock_and_stop_once_a_problem_is_closed() {
    let stack = start_with(&[("SKYLEDGER__CLOCK__SIMULATED", "true".into())]).await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    // Emergency plans are due in five working days.
    let open = inspection(XINGTAI, None, "甲厂", &["emergency_plan"]);
    let closing = inspection(XINGTAI, None, "乙厂", &["emergency_plan"]);
    let (open_id, closing_id) = (problem_ids(&open)[0].clone(), problem_ids(&closing)[0].clone());
    batch(&stack, vec![open, closing]).await;
    eventually("the handover notice", WAIT, || async {
        (!of_type(&receiver, "handover.issued").is_empty()).then_some(())
    })
    .await;

    // One of them is rectified and verified: closed, and its government is told.
    rectify_and_verify(&stack, &closing_id, XINGTAI).await;
    let result = eventually("the verification result notice", WAIT, || async {
        of_type(&receiver, "problem.verified").into_iter().next()
    })
    .await;
    assert_eq!(
        (result.json()["problem"]["id"].as_str(), result.json()["result"].as_str()),
        (Some(closing_id.as_str()), Some("rectified"))
    );
    assert!(of_type(&receiver, "deadline.reminder").is_empty(), "no reminder a week ahead");

    // Two days before the deadline (by the policy in force: calendar or working days): one
    // reminder, for the open problem only.
    let (_, ledger) = get(&stack, "assignment", &format!("/v1/problems/{open_id}"), Some(&stack.admin())).await;
    let deadline = time::Date::parse(
        ledger["entry"]["deadline"].as_str().expect("a deadline"),
        &time::format_description::well_known::Iso8601::DATE,
    )
    .unwrap();
    let (_, clock) = get(&stack, "notification", "/v1/admin/clock", Some(&stack.admin())).await;
    let today =
        time::Date::parse(clock["today"].as_str().unwrap(), &time::format_description::well_known::Iso8601::DATE)
            .unwrap();
    let ahead = (deadline - today).whole_days() - 2;
    assert!(ahead > 0, "the deadline {deadline} is more than two days after {today}");
    let (status, _) =
        post(&stack, "notification", "/v1/admin/clock", &stack.admin(), json!({ "advance_secs": ahead * 86_400 }))
            .await;
    assert_eq!(status, 200);
    let reminder = eventually("the deadline reminder", WAIT, || async {
        of_type(&receiver, "deadline.reminder").into_iter().next()
    })
    .await;
    let listed: Vec<String> =
        reminder.json()["problems"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(listed, vec![open_id.clone()]);
    assert_eq!(reminder.path, format!("/hooks/{XINGTAI}"));
    let (_, clock) = get(&stack, "notification", "/v1/admin/clock", Some(&stack.admin())).await;
    assert_eq!(reminder.json()["deadline"].as_str().map(|d| d > clock["today"].as_str().unwrap()), Some(true));

    // A day later the same deadline gets no second reminder; the overdue path takes over after it.
    let (status, _) =
        post(&stack, "notification", "/v1/admin/clock", &stack.admin(), json!({ "advance_secs": 86_400 })).await;
    assert_eq!(status, 200);
    eventually("the clock to move", WAIT, || async {
        let (_, now) = get(&stack, "notification", "/v1/admin/clock", Some(&stack.admin())).await;
        (now["offset_secs"] == (ahead + 1) * 86_400).then_some(())
    })
    .await;
    let items = notices(&stack, "&kind=deadline_reminder").await;
    assert_eq!(items.len(), 1, "one reminder a deadline: {items:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unacknowledged_handover_notice_is_sent_again_once_then_raised_to_the_package_units() {
    let stack = start_with(&[
        ("SKYLEDGER__NOTIFICATION__RECEIPT_RESEND_AFTER_SECS", "4".into()),
        ("SKYLEDGER__NOTIFICATION__RECEIPT_RAISE_AFTER_SECS", "1".into()),
    ])
    .await;
    let receiver = WebhookReceiver::start(vec![]).await;
    let units = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    put(
        &stack,
        &format!("/v1/recipients/{XINGTAI}/package-units"),
        json!({ "units": [
        unit(&units, "ministry_department", &[]), unit(&units, "affiliated_unit", &[]),
        unit(&units, "provincial_department", &[]) ] }),
    )
    .await;
    batch(&stack, vec![inspection(XINGTAI, None, "甲厂", &["dust"]), inspection(HANDAN, None, "乙厂", &["dust"])])
        .await;

    // Handan acknowledges at once through the signed link in its notice.
    let handan = eventually("Handan's notice", WAIT, || async {
        receiver.received().into_iter().find(|r| r.path == format!("/hooks/{HANDAN}"))
    })
    .await;
    let link = handan.json()["receipt_url"].as_str().expect("a receipt link").to_string();
    let forged = format!("{}0", link);
    assert_eq!(stack.http.get(&forged).send().await.unwrap().status(), 403);
    // Opening the link (as a mail scanner would) shows the notice and its button, and changes
    // nothing; the button's form post gives the receipt.
    let handan_token = stack.token(Role::LocalGov, None, Some(HANDAN));
    let acknowledged = |token: String| {
        let stack = &stack;
        async move {
            let (_, mine) = get(stack, "notification", "/v1/notices?kind=handover", Some(&token)).await;
            mine["items"].as_array().unwrap().iter().all(|n| n["acknowledged_at"].is_string())
        }
    };
    for _ in 0..2 {
        let page = stack.http.get(&link).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let html = page.text().await.unwrap();
        assert!(html.contains("id=\"acknowledge\"") && html.contains(handan.json()["handover_no"].as_str().unwrap()));
    }
    assert!(!acknowledged(handan_token.clone()).await, "a GET of the receipt link signs for nobody");
    let (path, sig) = link.split_once("?sig=").expect("a signed link");
    // What the page's form sends (the signature is hex: nothing to encode).
    let press = |sig: String| {
        stack
            .http
            .post(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("sig={sig}"))
            .send()
    };
    let refused = press(format!("{sig}0")).await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(!acknowledged(handan_token.clone()).await, "a forged receipt changes nothing");
    let given = press(sig.to_string()).await.unwrap();
    assert_eq!(given.status(), 200, "the button's post comes back to the page");
    assert!(given.text().await.unwrap().contains("id=\"acknowledged\""));
    assert!(acknowledged(handan_token.clone()).await, "the button gave the receipt");

    // Xingtai says nothing: the notice comes again under a new webhook-id, then goes up.
    let first = eventually("Xingtai's notice", WAIT, || async {
        receiver.received().into_iter().find(|r| r.path == format!("/hooks/{XINGTAI}"))
    })
    .await;
    let first_id = first.header("webhook-id").to_string();
    let again = eventually("Xingtai's notice sent again", WAIT, || async {
        receiver
            .received()
            .into_iter()
            .find(|r| r.path == format!("/hooks/{XINGTAI}") && r.header("webhook-id") != first_id)
    })
    .await;
    assert_eq!(again.json()["resend_of"], first_id);
    assert_eq!(again.json()["handover_no"], first.json()["handover_no"]);
    let raised = eventually("the notice raised to the three package units", WAIT, || async {
        let got = of_type(&units, "handover.unacknowledged");
        (got.len() == 3).then_some(got)
    })
    .await;
    assert!(
        raised
            .iter()
            .all(|r| r.json()["handover_no"] == first.json()["handover_no"] && r.json()["first_notice_id"] == first_id)
    );
    let xingtai_hooks = receiver.received().iter().filter(|r| r.path == format!("/hooks/{XINGTAI}")).count();
    assert_eq!(xingtai_hooks, 2, "sent again once, not more");
    // Handan acknowledged before the re-send was due: it got its notice once.
    assert_eq!(receiver.received().iter().filter(|r| r.path == format!("/hooks/{HANDAN}")).count(), 1);

    // The API receipt: only the government the notice is addressed to may give it.
    let handan_token = stack.token(Role::LocalGov, None, Some(HANDAN));
    let (status, _) =
        post(&stack, "notification", &format!("/v1/notices/{first_id}/acknowledge"), &handan_token, json!({})).await;
    assert_eq!(status, 403);
    let xingtai_token = stack.token(Role::LocalGov, None, Some(XINGTAI));
    let (status, answer) =
        post(&stack, "notification", &format!("/v1/notices/{first_id}/acknowledge"), &xingtai_token, json!({})).await;
    assert_eq!(status, 200, "{answer}");
    let (_, mine) = get(&stack, "notification", "/v1/notices?kind=handover", Some(&xingtai_token)).await;
    let mine = mine["items"].as_array().unwrap().clone();
    assert_eq!(mine.len(), 2, "the first and the re-sent notice: {mine:?}");
    assert!(mine.iter().all(|n| n["acknowledged_at"].is_string()), "the receipt covers both: {mine:?}");
}
