//! What the benches share: the synthetic day of site checks (intake_batch and event_path's
//! part 2), the city recipients pointed at a webhook receiver, and reading the notices back.
// Each bench uses some of these.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Instant;

use serde_json::{Value, json};
use shared::testing::{Stack, WebhookReceiver};
use uuid::Uuid;

/// The webhook secret every bench recipient is registered with.
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Teams of the synthetic day.
pub const TEAMS: usize = 20;

/// Team `t` (from Shandong, Shaanxi or Henan) covers two cities of another province.
pub fn team_cities(t: usize) -> [&'static str; 2] {
    const HEBEI_SHANXI: [&str; 20] = [
        "130100", "130200", "130400", "130500", "130600", "130900", "131000", "131100", "140100", "140300", "140400",
        "140500", "140700", "140800", "141000", "141100", "130100", "130200", "130400", "130500",
    ];
    [HEBEI_SHANXI[t % 20], HEBEI_SHANXI[(t + 7) % 20]]
}

pub const CATEGORIES: [&str; 8] =
    ["scattered_polluting", "coal_boiler", "emergency_plan", "vocs", "dust", "industrial_kiln", "exceedance", "other"];

/// The day's site checks, by team: about one in thirteen finds a problem, as in the campaign
/// (666,000 checks, 52,000 problems).
pub fn synthetic_day(checks: usize, seed: u64) -> Vec<(usize, Value)> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    (0..checks)
        .map(|i| {
            let team = i % TEAMS;
            let city = team_cities(team)[next() % 2];
            let found = next() % 13 == 0;
            let problems: Vec<Value> = if found {
                vec![json!({ "id": Uuid::now_v7(), "category": CATEGORIES[next() % CATEGORIES.len()], "severity": "general",
                             "description": "现场检查发现问题，详见记录" })]
            } else {
                vec![]
            };
            let inspection = json!({
                "id": Uuid::now_v7(), "round": "bench-R01", "team": format!("T-{team:02}"), "city_code": city,
                "checked_at": "2019-05-09T10:20:00+08:00",
                "site": { "name": format!("企业 {}", next() % 200_000), "address": "某某路 88 号",
                          "lat": 36.0 + (next() % 10_000) as f64 / 10_000.0, "lon": 114.0 + (next() % 10_000) as f64 / 10_000.0 },
                "problems": problems,
            });
            (team, inspection)
        })
        .collect()
}

/// An admin's PUT to intake's set-up API, which must succeed.
pub async fn put(stack: &Stack, path: String, body: Value) {
    let response = stack
        .http
        .put(format!("{}{path}", stack.url("intake")))
        .bearer_auth(stack.admin())
        .json(&body)
        .send()
        .await
        .expect("set-up request");
    assert!(response.status().is_success(), "{path}: {}", response.text().await.unwrap_or_default());
}

/// The synthetic day's round (`bench-R01`, every city) and its `TEAMS` teams, each covering
/// its `team_cities`.
pub async fn set_up_round(stack: &Stack) {
    let all: Vec<&str> = shared::reference::cities().iter().map(|c| c.code.as_str()).collect();
    put(
        stack,
        "/v1/rounds/bench-R01".into(),
        json!({ "starts_on": "2019-05-08", "ends_on": "2019-05-22", "cities": all }),
    )
    .await;
    for t in 0..TEAMS {
        let province = ["370000", "610000", "410000"][t % 3];
        put(stack, format!("/v1/teams/T-{t:02}"), json!({ "home_province": province, "members": ["a", "b", "c"] }))
            .await;
        put(stack, format!("/v1/rounds/bench-R01/teams/T-{t:02}"), json!({ "cities": team_cities(t) })).await;
    }
}

/// Every city's government gets its notices at `receiver`.
pub async fn register_recipients(stack: &Stack, receiver: &WebhookReceiver) {
    for city in shared::reference::cities() {
        let response = stack
            .http
            .put(format!("{}/v1/recipients/{}", stack.url("notification"), city.code))
            .bearer_auth(stack.admin())
            .json(&json!({ "name": format!("{}人民政府", city.name_zh),
                           "webhook": { "url": format!("{}/hooks/{}", receiver.url, city.code), "secret": SECRET } }))
            .send()
            .await
            .expect("recipient");
        assert!(response.status().is_success());
    }
}

/// Problem ids of the handover notices received, with when each first arrived.
pub fn notified(receiver: &WebhookReceiver) -> HashMap<Uuid, Instant> {
    let mut first: HashMap<Uuid, Instant> = HashMap::new();
    for notice in receiver.received() {
        let body = notice.json();
        if body["type"] != "handover.issued" {
            continue;
        }
        for problem in body["problems"].as_array().into_iter().flatten() {
            if let Some(id) = problem["id"].as_str().and_then(|s| Uuid::parse_str(s).ok()) {
                first.entry(id).or_insert(notice.at);
            }
        }
    }
    first
}

/// The floor of the benches: `docs` COPYed into a table of one jsonb column and no index
/// (`floor_copy`, made empty first), in documents per second.
pub async fn copy_rate(pool: &sqlx::PgPool, docs: &[String]) -> f64 {
    sqlx::query("CREATE TABLE IF NOT EXISTS floor_copy (doc jsonb NOT NULL)").execute(pool).await.expect("floor table");
    sqlx::query("TRUNCATE floor_copy").execute(pool).await.expect("truncate");
    let mut text = String::new();
    for doc in docs {
        // COPY text format: backslashes escaped (JSON has no raw tabs or newlines).
        text.push_str(&doc.replace('\\', "\\\\"));
        text.push('\n');
    }
    let mut conn = pool.acquire().await.expect("connection");
    let started = Instant::now();
    let mut copy = conn.copy_in_raw("COPY floor_copy (doc) FROM STDIN").await.expect("copy");
    copy.send(text.as_bytes()).await.expect("copy data");
    copy.finish().await.expect("copy done");
    docs.len() as f64 / started.elapsed().as_secs_f64()
}

pub fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(((values.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN)
}
