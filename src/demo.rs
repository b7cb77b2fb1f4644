//! Demo data for `skyledger up`: a round, two teams, recipients whose webhooks point at a small
//! receiver that prints each notice (checking its signature), and a token per role.

use std::path::Path;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::Path as UrlPath;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use shared::auth::{Role, TokenSigner};
use shared::config::CommonConfig;

pub struct Urls {
    pub intake: String,
    pub notification: String,
    pub origin: String,
}

struct DemoPerson {
    name: &'static str,
    role: &'static str,
    team: Option<&'static str>,
    jurisdiction: Option<&'static str>,
    email: &'static str,
}

/// The demo's people: the campaign office, Xingtai's official, a verifier of team T-410, an
/// inspector of team T-370 (who lands in the field app).
const DEMO_PEOPLE: [DemoPerson; 4] = [
    DemoPerson {
        name: "李明", role: "admin", team: None, jurisdiction: None, email: "office@demo.skyledger.invalid"
    },
    DemoPerson {
        name: "王芳",
        role: "local_gov",
        team: None,
        jurisdiction: Some("130500"),
        email: "wangfang@demo.skyledger.invalid",
    },
    DemoPerson {
        name: "刘洋",
        role: "verifier",
        team: Some("T-410"),
        jurisdiction: None,
        email: "liuyang@demo.skyledger.invalid",
    },
    DemoPerson {
        name: "张伟",
        role: "inspector",
        team: Some("T-370"),
        jurisdiction: None,
        email: "zhangwei@demo.skyledger.invalid",
    },
];

/// Invites the demo's people (or, when they are there already, gives each a fresh link) and
/// answers their sign-in links: the demo's notification answers them, as it has no mail server.
async fn invite_people(http: &reqwest::Client, urls: &Urls, admin: &str) -> anyhow::Result<Vec<(String, String)>> {
    let known: Value =
        http.get(format!("{}/v1/people", urls.notification)).bearer_auth(admin).send().await?.json().await?;
    let mut links = Vec::new();
    for DemoPerson { name, role, team, jurisdiction, email } in DEMO_PEOPLE {
        let existing = known["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name && p["role"] == role && p["revoked_at"].is_null());
        let request = match existing {
            Some(person) => {
                http.post(format!("{}/v1/people/{}/invitation", urls.notification, person["id"].as_str().unwrap_or("")))
            }
            None => http.post(format!("{}/v1/people", urls.notification)).json(&json!({
                "name": name, "role": role, "team": team, "jurisdiction": jurisdiction, "email": email })),
        };
        let answer: Value = request.bearer_auth(admin).send().await?.error_for_status()?.json().await?;
        let link = answer["invitation"]["link"].as_str().unwrap_or_default().to_string();
        let who = format!("{name} ({})", shared::i18n::role_name(role, shared::i18n::Lang::Zh));
        links.push((who, link));
    }
    Ok(links)
}

/// The demo recipients' shared secret (base64 of "skyledger-demo-secret").
const DEMO_SECRET: &str = "whsec_c2t5bGVkZ2VyLWRlbW8tc2VjcmV0";
const DEMO_CITIES: [&str; 2] = ["130500", "130400"];

async fn put(http: &reqwest::Client, url: String, token: &str, body: Value) -> anyhow::Result<()> {
    let response = http.put(&url).bearer_auth(token).json(&body).send().await?;
    anyhow::ensure!(
        response.status().is_success(),
        "PUT {url}: {} {}",
        response.status(),
        response.text().await.unwrap_or_default()
    );
    Ok(())
}

/// Starts the demo receiver, seeds the demo campaign, writes the tokens; returns the receiver's URL.
pub async fn start(var_dir: &Path, common: &CommonConfig, urls: &Urls) -> anyhow::Result<String> {
    let listen = std::env::var("SKYLEDGER_DEMO_RECEIVER").unwrap_or_else(|_| "127.0.0.1:8089".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let receiver_url = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new().route("/hooks/{code}", post(receive));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let signer = TokenSigner::load_or_create(Path::new(&common.auth.signing_key_file))?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let ttl = 30 * 86_400;
    let admin = signer.issue(Role::Admin, None, None, now, ttl)?;
    let tokens = [
        ("ADMIN_TOKEN", admin.clone()),
        ("INSPECTOR_TOKEN", signer.issue(Role::Inspector, Some("T-370".into()), None, now, ttl)?),
        ("LOCAL_GOV_TOKEN", signer.issue(Role::LocalGov, None, Some("130500".into()), now, ttl)?),
        ("VERIFIER_TOKEN", signer.issue(Role::Verifier, Some("T-410".into()), None, now, ttl)?),
    ];
    let env: String = tokens.iter().map(|(k, v)| format!("export {k}={v}\n")).collect();
    std::fs::write(var_dir.join("demo-tokens.env"), env)?;

    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let today = time::OffsetDateTime::now_utc().to_offset(shared::clock::SHANGHAI).date();
    let all_cities: Vec<&str> = shared::reference::cities().iter().map(|c| c.code.as_str()).collect();
    put(
        &http,
        format!("{}/v1/rounds/demo-R01", urls.intake),
        &admin,
        json!({
        "starts_on": today, "ends_on": today + time::Duration::days(14), "kind": "regular", "cities": all_cities }),
    )
    .await?;
    put(
        &http,
        format!("{}/v1/teams/T-370", urls.intake),
        &admin,
        json!({
        "home_province": "370000", "members": ["张伟", "李娜", "王强"] }),
    )
    .await?;
    put(
        &http,
        format!("{}/v1/teams/T-410", urls.intake),
        &admin,
        json!({
        "home_province": "410000", "members": ["刘洋", "陈静", "杨帆"] }),
    )
    .await?;
    put(&http, format!("{}/v1/rounds/demo-R01/teams/T-370", urls.intake), &admin, json!({ "cities": DEMO_CITIES }))
        .await?;
    for code in DEMO_CITIES {
        let name = shared::reference::city(code).map(|c| format!("{}人民政府", c.name_zh)).unwrap_or_default();
        put(
            &http,
            format!("{}/v1/recipients/{code}", urls.notification),
            &admin,
            json!({
            "name": name, "webhook": { "url": format!("{receiver_url}/hooks/{code}"), "secret": DEMO_SECRET } }),
        )
        .await?;
    }
    let links = invite_people(&http, urls, &admin).await?;
    let text: String = links.iter().map(|(who, link)| format!("{who}\t{link}\n")).collect();
    std::fs::write(var_dir.join("demo-sign-in-links.txt"), &text)?;
    println!("\nDemo people: open a link to sign in at the workbench ({}), once each:", urls.origin);
    for (who, link) in &links {
        println!("  {who:<16} {link}");
    }
    Ok(receiver_url)
}

async fn receive(UrlPath(code): UrlPath<String>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let id = header("webhook-id");
    let timestamp: i64 = header("webhook-timestamp").parse().unwrap_or_default();
    let expected =
        notification::domain::sign_webhook(&[DEMO_SECRET.to_string()], &id, timestamp, &body).unwrap_or_default();
    let verified = header("webhook-signature").split(' ').any(|s| s == expected);
    let notice: Value = serde_json::from_slice(&body).unwrap_or_default();
    println!(
        "[demo receiver] {code}: notice {id}, sheet {}, {} problem(s), signature {}",
        notice["handover_no"].as_str().unwrap_or("?"),
        notice["problems"].as_array().map_or(0, Vec::len),
        if verified { "verified" } else { "DOES NOT VERIFY" }
    );
    if verified { StatusCode::NO_CONTENT } else { StatusCode::UNAUTHORIZED }
}
