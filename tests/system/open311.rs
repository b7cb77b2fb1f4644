//! Open311 GeoReport v2 as a client that follows the specification uses it: discovery, services,
//! a service definition, POST (form-encoded, `api_key`), GET by id and GET with filters, in JSON
//! and in XML; public complaints through a complaint channel's key, as leads.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::auth::Role;
use shared::testing::{Stack, StackOptions, eventually};
use time::{Duration, OffsetDateTime};

use crate::support::*;

/// A round running today (the others in these tests lie in 2019).
const CURRENT: &str = "O311-R01";
const HOTLINE_KEY: &str = "hotline-3f9c1e0a-12369";
const PHONE: &str = "13912345678";

async fn start_with_hotline() -> Stack {
    let mut options = StackOptions::default();
    options.env.push(("SKYLEDGER__INTAKE__OPEN311__COMPLAINT_CHANNELS__HOTLINE".into(), HOTLINE_KEY.into()));
    Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), options).await
}

fn today() -> time::Date {
    shared::clock::shanghai_date(OffsetDateTime::now_utc())
}

async fn put(stack: &Stack, path: &str, body: Value) {
    let (status, answer) = send(stack, "PUT", "intake", path, Some(&stack.admin()), Some(body)).await;
    assert!(status.is_success(), "PUT {path}: {status} {answer}");
}

/// The round running today: FINDER (Shandong) covers Xingtai and Handan, VERIFIER (Henan) Taiyuan.
async fn current_campaign(stack: &Stack) {
    let (starts, ends) = (today() - Duration::days(2), today() + Duration::days(12));
    put(
        stack,
        &format!("/v1/rounds/{CURRENT}"),
        json!({ "starts_on": starts.to_string(), "ends_on": ends.to_string(), "cities": [XINGTAI, HANDAN, TAIYUAN] }),
    )
    .await;
    for (team, province) in [(FINDER, "370000"), (VERIFIER, "410000")] {
        put(stack, &format!("/v1/teams/{team}"), json!({ "home_province": province, "members": ["甲", "乙", "丙"] }))
            .await;
    }
    put(stack, &format!("/v1/rounds/{CURRENT}/teams/{FINDER}"), json!({ "cities": [XINGTAI, HANDAN] })).await;
    put(stack, &format!("/v1/rounds/{CURRENT}/teams/{VERIFIER}"), json!({ "cities": [TAIYUAN] })).await;
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The XML document, checked to be what the specification writes: UTF-8, the given root.
    fn xml(&self, root: &str) -> roxmltree::Document<'_> {
        assert!(self.content_type.starts_with("text/xml"), "{}", self.content_type);
        assert!(self.body.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>"), "{}", self.body);
        let document =
            roxmltree::Document::parse(&self.body).unwrap_or_else(|e| panic!("bad XML ({e}): {}", self.body));
        assert_eq!(document.root_element().tag_name().name(), root, "{}", self.body);
        document
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    Answer { status, content_type, body: response.text().await.expect("body") }
}

async fn fetch(stack: &Stack, url: &str) -> Answer {
    answer(stack.http.get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"))).await
}

async fn post_form(stack: &Stack, url: &str, fields: &[(&str, &str)]) -> Answer {
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    let response = stack
        .http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    answer(response).await
}

/// The text of the first element named `tag` under `node`.
fn text<'a>(node: roxmltree::Node<'a, 'a>, tag: &str) -> Option<&'a str> {
    node.descendants().find(|n| n.has_tag_name(tag)).and_then(|n| n.text())
}

fn ids(requests: &Value) -> Vec<String> {
    requests
        .as_array()
        .expect("an array")
        .iter()
        .map(|r| r["service_request_id"].as_str().unwrap().to_string())
        .collect()
}

fn report<'a>(api_key: &'a str, service: &'a str, site: &'a str, lat: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("api_key", api_key),
        ("jurisdiction_id", XINGTAI),
        ("service_code", service),
        ("lat", lat),
        ("long", "114.5"),
        ("address_string", "某某路 1 号"),
        ("description", "露天堆放，无防尘措施 <b>&</b>"),
        ("attribute[severity]", "serious"),
        ("attribute[site_name]", site),
        ("attribute[county_code]", "130502"),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn an_open311_client_reports_a_problem_and_follows_it_to_closure_in_json_and_xml() {
    let stack = start_with_hotline().await;
    current_campaign(&stack).await;
    let inspector = stack.token(Role::Inspector, Some(FINDER), None);

    // Discovery says where the endpoint is and what it speaks; the client goes on from there.
    let discovery = fetch(&stack, &format!("{}/open311/v2/discovery.json", stack.url("intake"))).await;
    assert_eq!(discovery.status, 200, "{}", discovery.body);
    assert!(discovery.content_type.starts_with("application/json"));
    let endpoint = discovery.json()["endpoints"][0].clone();
    assert_eq!(endpoint["specification"], "http://wiki.open311.org/GeoReport_v2");
    assert!(endpoint["formats"].as_array().unwrap().contains(&json!("text/xml")));
    let base = endpoint["url"].as_str().expect("the endpoint's url").to_string();
    let xml = fetch(&stack, &format!("{base}/discovery.xml")).await;
    let document = xml.xml("discovery");
    assert_eq!(text(document.root(), "url"), Some(base.as_str()));

    // Services: the campaign's fourteen categories, in Chinese by default and in English on request.
    let services = fetch(&stack, &format!("{base}/services.json?jurisdiction_id={XINGTAI}")).await.json();
    let services = services.as_array().expect("services are an array");
    assert_eq!(services.len(), 14);
    let scattered = services.iter().find(|s| s["service_code"] == "scattered_polluting").expect("散乱污");
    assert_eq!((scattered["service_name"].as_str(), scattered["metadata"].as_bool()), (Some("散乱污"), Some(true)));
    let xml = fetch(&stack, &format!("{base}/services.xml?jurisdiction_id={XINGTAI}&locale=en")).await;
    let document = xml.xml("services");
    let listed: Vec<_> = document.root_element().children().filter(|n| n.has_tag_name("service")).collect();
    assert_eq!(listed.len(), 14);
    assert_eq!(text(listed[0], "service_name"), Some("Scattered polluting enterprises"));
    assert_eq!(text(listed[0], "metadata"), Some("true"));

    // The service definition names its attributes.
    let definition = fetch(&stack, &format!("{base}/services/scattered_polluting.json")).await.json();
    let severity = definition["attributes"].as_array().unwrap().iter().find(|a| a["code"] == "severity").unwrap();
    assert_eq!(severity["datatype"], "singlevaluelist");
    assert!(severity["values"].as_array().unwrap().iter().any(|v| v["key"] == "serious"));
    let xml = fetch(&stack, &format!("{base}/services/dust.xml")).await;
    let document = xml.xml("service_definition");
    let codes: Vec<&str> = document.descendants().filter(|n| n.has_tag_name("code")).filter_map(|n| n.text()).collect();
    assert!(codes.contains(&"severity") && codes.contains(&"site_name"), "{codes:?}");

    // POST, form-encoded with the inspector's token as api_key: in JSON, then in XML.
    let posted = post_form(
        &stack,
        &format!("{base}/requests.json"),
        &report(&inspector, "scattered_polluting", "开放铸造厂", "37.07"),
    )
    .await;
    assert_eq!(posted.status, 201, "{}", posted.body);
    let first = posted.json()[0]["service_request_id"].as_str().expect("an id").to_string();
    let posted =
        post_form(&stack, &format!("{base}/requests.xml"), &report(&inspector, "dust", "开放工地", "37.08")).await;
    assert_eq!(posted.status, 201, "{}", posted.body);
    let document = posted.xml("service_requests");
    let request = document.root_element().children().find(|n| n.has_tag_name("request")).expect("a request");
    let second = text(request, "service_request_id").expect("an id").to_string();

    // GET by id: open, with W3C datetimes carrying their zone.
    let got = fetch(&stack, &format!("{base}/requests/{first}.json")).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let got = got.json();
    assert_eq!(
        (got[0]["status"].as_str(), got[0]["service_code"].as_str()),
        (Some("open"), Some("scattered_polluting"))
    );
    assert!(got[0]["requested_datetime"].as_str().unwrap().ends_with("+08:00"), "{got}");
    assert_eq!(got[0]["lat"], 37.07);
    assert_eq!(got[0]["description"], "露天堆放，无防尘措施 <b>&</b>");
    let xml = fetch(&stack, &format!("{base}/requests/{second}.xml")).await;
    let document = xml.xml("service_requests");
    assert_eq!(text(document.root(), "status"), Some("open"));
    assert_eq!(text(document.root(), "service_code"), Some("dust"));
    assert_eq!(text(document.root(), "description"), Some("露天堆放，无防尘措施 <b>&</b>"));

    // GET requests with filters.
    let (yesterday, tomorrow) = (today() - Duration::days(1), today() + Duration::days(1));
    let found = |query: String| {
        let url = format!("{base}/requests.json?{query}");
        let stack = &stack;
        async move {
            let answer = fetch(stack, &url).await;
            assert_eq!(answer.status, 200, "{url}: {}", answer.body);
            ids(&answer.json())
        }
    };
    let both = found(format!("service_request_id={first},{second}")).await;
    assert_eq!(both.len(), 2, "{both:?}");
    let dust = found("service_code=dust".into()).await;
    assert!(dust.contains(&second) && !dust.contains(&first), "{dust:?}");
    let open = found(format!("status=open&jurisdiction_id={XINGTAI}")).await;
    assert!(open.contains(&first) && open.contains(&second));
    assert!(found(format!("jurisdiction_id={TAIYUAN}")).await.is_empty());
    assert!(found(format!("start_date={yesterday}&end_date={tomorrow}")).await.contains(&first));
    assert!(found(format!("start_date={tomorrow}")).await.is_empty());
    assert!(found(format!("end_date={yesterday}")).await.is_empty());
    let xml = fetch(&stack, &format!("{base}/requests.xml?service_code=scattered_polluting,dust&status=open")).await;
    let document = xml.xml("service_requests");
    assert_eq!(document.root_element().children().filter(|n| n.has_tag_name("request")).count(), 2);

    // The city government rectifies, another team verifies on site: closed.
    rectify_and_verify(&stack, &first, XINGTAI).await;
    let closed = eventually("Open311 to show the request closed", WAIT, || async {
        let got = fetch(&stack, &format!("{base}/requests/{first}.json")).await.json();
        (got[0]["status"] == "closed").then_some(got)
    })
    .await;
    assert!(closed[0]["updated_datetime"].as_str().unwrap().ends_with("+08:00"));
    let xml = fetch(&stack, &format!("{base}/requests/{first}.xml")).await;
    assert_eq!(text(xml.xml("service_requests").root(), "status"), Some("closed"));
    let closed = found("status=closed".into()).await;
    let open = found("status=open".into()).await;
    assert!(closed.contains(&first) && !closed.contains(&second), "{closed:?}");
    assert!(open.contains(&second) && !open.contains(&first), "{open:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn complaints_become_leads_of_the_covering_team_and_errors_follow_the_specification() {
    let stack = start_with_hotline().await;
    current_campaign(&stack).await;
    let base = format!("{}/open311/v2", stack.url("intake"));
    let inspector = stack.token(Role::Inspector, Some(FINDER), None);

    // A public complaint through the hotline's key, with the complainant's contact.
    let complaint = [
        ("api_key", HOTLINE_KEY),
        ("jurisdiction_id", XINGTAI),
        ("service_code", "open_burning"),
        ("address_string", "某村村口"),
        ("description", "村口有人焚烧秸秆，浓烟很大"),
        ("first_name", "三"),
        ("last_name", "张"),
        ("email", "zhang.san@example.com"),
        ("phone", PHONE),
    ];
    let posted = post_form(&stack, &format!("{base}/requests.json"), &complaint).await;
    assert_eq!(posted.status, 201, "{}", posted.body);
    let lead = posted.json()[0]["service_request_id"].as_str().expect("an id").to_string();

    // The covering team's inspector sees it with the contact; another team does not see it.
    let (status, leads) = get(&stack, "intake", "/v1/leads", Some(&inspector)).await;
    assert_eq!(status, 200, "{leads}");
    let item = leads["items"].as_array().unwrap().iter().find(|l| l["id"] == lead.as_str()).expect("the lead").clone();
    assert_eq!(item["complainant"]["phone"], PHONE);
    assert_eq!(item["city_code"], XINGTAI);
    let other = stack.token(Role::Inspector, Some(VERIFIER), None);
    let (status, theirs) = get(&stack, "intake", "/v1/leads", Some(&other)).await;
    assert_eq!(status, 200, "{theirs}");
    assert!(theirs["items"].as_array().unwrap().is_empty(), "{theirs}");
    let (status, _) = get(&stack, "intake", &format!("/v1/leads?city={XINGTAI}"), Some(&other)).await;
    assert_eq!(status, 403);
    assert_eq!(get(&stack, "intake", "/v1/leads", None).await.0, 401);
    let government = stack.token(Role::LocalGov, None, Some(XINGTAI));
    assert_eq!(get(&stack, "intake", "/v1/leads", Some(&government)).await.0, 403);
    let (status, all) = get(&stack, "intake", "/v1/leads", Some(&stack.admin())).await;
    assert_eq!((status.as_u16(), all["items"].as_array().map(Vec::len)), (200, Some(1)));
    assert!(!all.to_string().contains(PHONE), "the campaign office sees the lead, not the complainant: {all}");

    // The complainant can follow it by its id: received, no content, no contact.
    let followed = fetch(&stack, &format!("{base}/requests/{lead}.json")).await;
    assert_eq!(followed.status, 200, "{}", followed.body);
    assert_eq!(followed.json()[0]["status"], "open");
    assert!(!followed.body.contains(PHONE) && !followed.body.contains("焚烧秸秆"), "{}", followed.body);

    // An inspector's report, and a second of the same site and category: the client is sent to
    // the entry already in the ledger.
    let fields = report(&inspector, "coal_boiler", "某锅炉房", "37.05");
    let first = post_form(&stack, &format!("{base}/requests.json"), &fields).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let again = post_form(&stack, &format!("{base}/requests.json"), &fields).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()[0]["service_request_id"], first.json()[0]["service_request_id"]);

    // Errors: the specification's document, our statuses.
    let unknown =
        post_form(&stack, &format!("{base}/requests.json"), &[("api_key", &inspector), ("jurisdiction_id", "999900")])
            .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert_eq!(unknown.json()[0]["code"], 404);
    let anonymous = post_form(&stack, &format!("{base}/requests.xml"), &[("jurisdiction_id", XINGTAI)]).await;
    assert_eq!(anonymous.status, 401);
    let document = anonymous.xml("errors");
    assert_eq!(text(document.root(), "code"), Some("401"));
    assert!(text(document.root(), "description").unwrap().contains("api_key"));
    let mut by_government = report(&government, "dust", "某工地", "37.06");
    by_government.truncate(8);
    assert_eq!(post_form(&stack, &format!("{base}/requests.json"), &by_government).await.status, 403);
    let mut elsewhere = report(&inspector, "dust", "某工地", "37.06");
    elsewhere[1] = ("jurisdiction_id", TAIYUAN);
    elsewhere.truncate(8);
    let refused = post_form(&stack, &format!("{base}/requests.json"), &elsewhere).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.json()[0]["description"].as_str().unwrap().starts_with("jurisdiction_id:"), "{}", refused.body);
    let off_the_map = report(&inspector, "dust", "某工地", "91");
    let bad = post_form(&stack, &format!("{base}/requests.json"), &off_the_map).await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    let described: Vec<String> =
        bad.json().as_array().unwrap().iter().map(|e| e["description"].as_str().unwrap().to_string()).collect();
    assert!(described.iter().any(|d| d.starts_with("lat:")), "{described:?}");
    let json_body = stack.http.post(format!("{base}/requests.json")).json(&json!({})).send().await.unwrap();
    assert_eq!(json_body.status(), 415);
    assert_eq!(fetch(&stack, &format!("{base}/services/littering.json")).await.status, 404);
    assert_eq!(fetch(&stack, &format!("{base}/services.json?jurisdiction_id=999900")).await.status, 404);
    assert_eq!(
        fetch(&stack, &format!("{base}/requests/not-an-id.xml")).await.xml("errors").root_element().tag_name().name(),
        "errors"
    );
    assert_eq!(fetch(&stack, &format!("{base}/requests.csv")).await.status, 404);
    let too_long = fetch(&stack, &format!("{base}/requests.json?start_date=2026-01-01&end_date=2026-12-31")).await;
    assert_eq!(too_long.status, 422, "{}", too_long.body);

    // The complainant's phone appears in no public answer.
    let listed = fetch(&stack, &format!("{base}/requests.json")).await;
    assert_eq!(listed.status, 200);
    assert!(!listed.body.contains(PHONE), "{}", listed.body);
    eventually("the inspector's report to be published", WAIT, || async {
        let (_, problems) = get(&stack, "publication", "/v1/problems", None).await;
        (problems.to_string().contains("coal_boiler")).then_some(())
    })
    .await;
    for path in ["/", "/v1/problems", "/v1/stats", "/feed.atom", "/feed.json", "/problems.geojson", "/problems.csv"] {
        let public = fetch(&stack, &format!("{}{path}", stack.url("publication"))).await;
        assert_eq!(public.status, 200, "{path}");
        assert!(!public.body.contains(PHONE) && !public.body.contains("zhang.san"), "{path}: {}", public.body);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn complainants_contact_details_are_erased_after_the_retention() {
    let mut options = StackOptions::default();
    options.env.push(("SKYLEDGER__INTAKE__OPEN311__COMPLAINT_CHANNELS__HOTLINE".into(), HOTLINE_KEY.into()));
    // Kept for no days, checked every second: erased at the next check.
    options.env.push(("SKYLEDGER__INTAKE__RETENTION__COMPLAINANT_DAYS".into(), "0".into()));
    options.env.push(("SKYLEDGER__INTAKE__RETENTION__CHECK_INTERVAL_SECS".into(), "1".into()));
    let stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), options).await;
    current_campaign(&stack).await;
    let base = format!("{}/open311/v2", stack.url("intake"));
    let complaint = [
        ("api_key", HOTLINE_KEY),
        ("jurisdiction_id", XINGTAI),
        ("service_code", "dust"),
        ("address_string", "某工地"),
        ("description", "工地扬尘严重"),
        ("phone", PHONE),
    ];
    let posted = post_form(&stack, &format!("{base}/requests.json"), &complaint).await;
    assert_eq!(posted.status, 201, "{}", posted.body);
    let lead = posted.json()[0]["service_request_id"].as_str().unwrap().to_string();
    let inspector = stack.token(Role::Inspector, Some(FINDER), None);
    eventually("the complainant's phone to be erased, the lead kept", WAIT, || async {
        let (_, leads) = get(&stack, "intake", "/v1/leads", Some(&inspector)).await;
        let item = leads["items"].as_array()?.iter().find(|l| l["id"] == lead.as_str())?.clone();
        (!item.to_string().contains(PHONE) && item["description"] == "工地扬尘严重").then_some(())
    })
    .await;
    assert_eq!(count(&stack, "SELECT count(*) FROM intake.leads WHERE complainant::text LIKE '%139%'").await, 0);
}
