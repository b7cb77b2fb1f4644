//! The deadline policy is the campaign office's to change, through assignment's API or
//! `skyledger deadline-policy`, without a restart: versioned, each handover sheet keeps the
//! version it was made under, and a change applies to sheets made after it.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use shared::auth::Role;
use shared::testing::{Stack, StackOptions, WebhookReceiver, eventually};
use time::format_description::well_known::{Iso8601, Rfc3339};

use crate::support::*;

/// The ledger entry of a problem once it is on a sheet.
async fn handed_over(stack: &Stack, id: &str) -> Value {
    eventually("the problem on a sheet", WAIT, || async {
        let (_, e) = get(stack, "assignment", &format!("/v1/problems/{id}"), Some(&stack.admin())).await;
        e["entry"]["handover_no"].is_string().then(|| e["entry"].clone())
    })
    .await
}

/// Days from the handover's day (Asia/Shanghai) to the deadline.
fn days_given(entry: &Value) -> i64 {
    let at = time::OffsetDateTime::parse(entry["assigned_at"].as_str().unwrap(), &Rfc3339).unwrap();
    let deadline = time::Date::parse(entry["deadline"].as_str().unwrap(), &Iso8601::DATE).unwrap();
    (deadline - shared::clock::shanghai_date(at)).whole_days()
}

async fn sheet(stack: &Stack, entry: &Value) -> Value {
    let no = entry["handover_no"].as_str().unwrap();
    let (status, body) = get(stack, "assignment", &format!("/v1/handovers/{no}"), Some(&stack.admin())).await;
    assert_eq!(status, 200, "{body}");
    body["handover"].clone()
}

fn skyledger(stack: &Stack, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_skyledger"))
        .arg("deadline-policy")
        .args(args)
        .args(["--url", &stack.url("assignment"), "--token", &stack.admin()])
        .output()
        .expect("run skyledger")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_office_changes_the_deadline_policy_without_a_restart_and_each_sheet_keeps_its_version() {
    let mut options = StackOptions::default();
    options.env.push(("SKYLEDGER__ASSIGNMENT__GATHERING_WINDOW_MILLIS".into(), "300".into()));
    let stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), options).await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let admin = stack.admin();

    // Under the configured policy (version 1): dust, 10 days.
    let first = inspection(XINGTAI, Some("130502"), "甲工地", &["dust"]);
    let first_id = problem_ids(&first)[0].clone();
    let mut general = first.clone();
    general["problems"][0]["severity"] = json!("general");
    assert_eq!(post(&stack, "intake", "/v1/inspections", &inspector(&stack), general).await.0, 201);
    let before = handed_over(&stack, &first_id).await;
    assert_eq!(days_given(&before), 10, "{before}");
    assert_eq!(sheet(&stack, &before).await["deadline_policy_version"], 1);
    let (status, policy) = get(&stack, "assignment", "/v1/deadline-policy", Some(&admin)).await;
    assert_eq!(
        (status.as_u16(), &policy["version"], &policy["days"]["dust"]),
        (200, &json!(1), &json!(10)),
        "{policy}"
    );

    // Bad input names its field and changes nothing; only the campaign office sets the policy.
    let mut bad = policy.clone();
    bad["days"]["dust"] = json!(0);
    bad["days"]["dust_sevire"] = json!(3);
    let (status, problem) = send(&stack, "PUT", "assignment", "/v1/deadline-policy", Some(&admin), Some(bad)).await;
    assert_eq!(status, 422, "{problem}");
    let fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert!(fields.contains(&"days.dust") && fields.contains(&"days.dust_sevire"), "{problem}");
    let government = stack.token(Role::LocalGov, None, Some(XINGTAI));
    let (status, _) =
        send(&stack, "PUT", "assignment", "/v1/deadline-policy", Some(&government), Some(policy.clone())).await;
    assert_eq!(status, 403);
    assert_eq!(get(&stack, "assignment", "/v1/deadline-policy", Some(&admin)).await.1["version"], 1);

    // The office shortens dust to 4 days with the CLI: version 2, no restart.
    let set = skyledger(&stack, &["set", "--days", "dust=4", "--reason", "秋冬攻坚：扬尘从严"]);
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    let (_, policy) = get(&stack, "assignment", "/v1/deadline-policy", Some(&admin)).await;
    assert_eq!(
        (&policy["version"], &policy["days"]["dust"], &policy["days"]["coal_to_gas"]),
        (&json!(2), &json!(4), &json!(90))
    );

    // A sheet made after the change is under version 2; the earlier one keeps version 1 and its deadline.
    let mut second = inspection(XINGTAI, Some("130502"), "乙工地", &["dust"]);
    second["problems"][0]["severity"] = json!("general");
    let second_id = problem_ids(&second)[0].clone();
    assert_eq!(post(&stack, "intake", "/v1/inspections", &inspector(&stack), second).await.0, 201);
    let after = handed_over(&stack, &second_id).await;
    assert_eq!(days_given(&after), 4, "{after}");
    assert_eq!(sheet(&stack, &after).await["deadline_policy_version"], 2);
    let (_, again) = get(&stack, "assignment", &format!("/v1/problems/{first_id}"), Some(&admin)).await;
    assert_eq!(again["entry"]["deadline"], before["deadline"]);
    assert_eq!(sheet(&stack, &before).await["deadline_policy_version"], 1);

    // Every version stays readable: the CLI shows them.
    let shown = skyledger(&stack, &["show", "--versions"]);
    assert!(shown.status.success(), "{}", String::from_utf8_lossy(&shown.stderr));
    let versions: Value = serde_json::from_slice(&shown.stdout).expect("JSON on stdout");
    let items = versions["versions"].as_array().expect("versions");
    assert_eq!(items.len(), 2, "{versions}");
    assert_eq!((&items[0]["days"]["dust"], &items[1]["reason"]), (&json!(10), &json!("秋冬攻坚：扬尘从严")));
}
