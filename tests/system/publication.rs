//! The public record: nothing internal reaches any public format, a problem is public only once
//! handed over, the feeds and downloads parse with independent parsers, paging and conditional
//! GET work, and typical cases lead.

use std::collections::HashSet;

use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use serde_json::{Value, json};
use shared::auth::Role;
use shared::events::PROBLEM_REPORTED;
use shared::testing::{Stack, WebhookReceiver, eventually};
use uuid::Uuid;

use crate::support::*;

/// The public record of a problem, once it is public.
pub async fn wait_public(stack: &Stack, id: &str) -> Value {
    eventually(&format!("problem {id} to be public"), WAIT, || async {
        let (status, body) = get(stack, "publication", &format!("/v1/problems/{id}"), None).await;
        (status == 200).then_some(body)
    })
    .await
}

pub async fn wait_status(stack: &Stack, id: &str, wanted: &str) -> Value {
    eventually(&format!("problem {id} to be {wanted}"), WAIT, || async {
        let (status, body) = get(stack, "publication", &format!("/v1/problems/{id}"), None).await;
        (status == 200 && body["status"] == wanted).then_some(body)
    })
    .await
}

/// The city government acknowledges the problem's sheet (签收).
pub async fn acknowledge(stack: &Stack, id: &str, city: &str) {
    let public = wait_public(stack, id).await;
    let sheet = public["handover_no"].as_str().expect("handover number").to_string();
    let token = stack.token(Role::LocalGov, None, Some(city));
    let (status, body) =
        post(stack, "assignment", &format!("/v1/handovers/{sheet}/acknowledge"), &token, json!({})).await;
    assert!(status.is_success(), "{body}");
}

/// The city reports rectification, with evidence it marks internal.
pub async fn rectify(stack: &Stack, id: &str, city: &str) {
    let token = stack.token(Role::LocalGov, None, Some(city));
    let body = json!({
        "measures": "已停产整治", "completed_at": "2019-05-20T09:00:00+08:00",
        "evidence": [{ "url": "https://evidence.example/rect-INTERNAL-photo.jpg", "internal": true }],
    });
    eventually("verification to accept the rectification", WAIT, || async {
        let (status, _) =
            post(stack, "verification", &format!("/v1/problems/{id}/rectification"), &token, body.clone()).await;
        (status == 201).then_some(())
    })
    .await;
}

/// Another team's verdict, with an internal note and internal evidence.
pub async fn verdict(stack: &Stack, id: &str, result: &str, note: &str) {
    let token = stack.token(Role::Verifier, Some(VERIFIER), None);
    let body = json!({
        "result": result, "team": VERIFIER, "note": note,
        "evidence": [{ "url": "https://evidence.example/verdict-INTERNAL-photo.jpg", "internal": true }],
    });
    let (status, answer) = post(stack, "verification", &format!("/v1/problems/{id}/verdict"), &token, body).await;
    assert_eq!(status, 201, "{answer}");
}

/// Reports one site check; answers its problems' ids.
pub async fn report(stack: &Stack, city: &str, county: Option<&str>, site: &str, categories: &[&str]) -> Vec<String> {
    let inspection = inspection(city, county, site, categories);
    let (status, answer) = post(stack, "intake", "/v1/inspections", &inspector(stack), inspection.clone()).await;
    assert_eq!(status, 201, "{answer}");
    problem_ids(&inspection)
}

pub async fn text(stack: &Stack, path: &str) -> (StatusCode, String) {
    let response = stack.http.get(format!("{}{path}", stack.url("publication"))).send().await.expect(path);
    (response.status(), response.text().await.unwrap_or_default())
}

/// Strings that must never be public.
const SECRETS: &[&str] = &[
    "王秘密检查员",
    "李举报人",
    "13912345678",
    "企业负责人态度恶劣",
    "内部核查备注",
    "INTERNAL",
    "91130500MA0SECRET",
    FINDER,
    VERIFIER,
];

#[tokio::test(flavor = "multi_thread")]
async fn nothing_internal_reaches_any_public_format_and_the_feeds_parse() {
    let mut stack = start().await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    // The finding team's members: an inspector's name that must never be public.
    put_ok(
        &stack,
        "intake",
        &format!("/v1/teams/{FINDER}"),
        json!({ "home_province": "370000", "members": ["王秘密检查员", "乙", "丙"] }),
    )
    .await;

    // Not handed over, not public: with assignment down, a report stays with intake's word.
    stack.kill("assignment");
    let hidden = report(&stack, HANDAN, None, "未交办点位", &["dust"]).await.remove(0);
    eventually("publication to know of the report", WAIT, || async {
        let (_, stats) = get(&stack, "publication", "/v1/stats", None).await;
        (stats["summary"]["problems_found"] == 1).then_some(())
    })
    .await;
    assert_eq!(get(&stack, "publication", &format!("/v1/problems/{hidden}"), None).await.0, 404);
    assert_eq!(text(&stack, &format!("/problems/{hidden}")).await.0, 404);
    for path in
        ["/", "/feed.atom", "/feed.json", "/problems.geojson", "/problems.csv", "/v1/problems", "/v1/chain/entries"]
    {
        let (_, body) = text(&stack, path).await;
        assert!(!body.contains("未交办点位") && !body.contains(&hidden), "{path} shows a problem not handed over");
    }
    stack.restart("assignment").await;
    wait_public(&stack, &hidden).await;

    // A problem whose report carries a complainant and evidence, some of it internal (fields a
    // producer may add: the disclosure policy decides them too).
    let complained = Uuid::now_v7().to_string();
    publish_event(&stack, &PROBLEM_REPORTED, &complained, Some(HANDAN), &json!({
        "problem_id": complained, "problem_seq": 1, "inspection_id": Uuid::now_v7(), "round": ROUND, "team": FINDER,
        "city_code": HANDAN, "county_code": null, "category": "open_burning", "severity": "general",
        "description": "秸秆露天焚烧", "checked_at": "2019-05-10T08:00:00+08:00", "rebound_of": null,
        "site": { "name": "某村田地", "credit_code": "91130500MA0SECRET", "address": "某村 3 组", "lat": 36.61, "lon": 114.49 },
        "complainant": { "name": "李举报人", "phone": "13912345678" },
        "evidence": [
            { "url": "https://evidence.example/public-photo.jpg", "sha256": "ab12", "internal": false },
            { "url": "https://evidence.example/INTERNAL-photo.jpg", "internal": true },
        ],
    }))
    .await;

    // A problem through reopening and closing, with internal notes and evidence on the way.
    let closed = report(&stack, XINGTAI, Some("130502"), "某某铸造厂", &["scattered_polluting"]).await.remove(0);
    acknowledge(&stack, &closed, XINGTAI).await;
    rectify(&stack, &closed, XINGTAI).await;
    verdict(&stack, &closed, "fake_rectification", "企业负责人态度恶劣").await;
    wait_status(&stack, &closed, "reopened").await;
    rectify(&stack, &closed, XINGTAI).await;
    verdict(&stack, &closed, "rectified", "内部核查备注").await;
    let closed_record = wait_status(&stack, &closed, "closed").await;
    let steps: Vec<&str> =
        closed_record["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
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
    let complained_record = wait_public(&stack, &complained).await;
    assert_eq!(
        complained_record["evidence"],
        json!([{ "url": "https://evidence.example/public-photo.jpg", "sha256": "ab12" }]),
        "public evidence is shown, internal evidence is not"
    );

    // The campaign office marks a typical case; only the admin may.
    let narrative = "铸造厂虚假整改，经复查后整改到位。";
    let inspector_token = inspector(&stack);
    let path = format!("/v1/admin/problems/{closed}/typical-case");
    let (status, _) =
        send(&stack, "PUT", "publication", &path, Some(&inspector_token), Some(json!({ "narrative": narrative })))
            .await;
    assert_eq!(status, 403);
    let (status, marked) =
        send(&stack, "PUT", "publication", &path, Some(&stack.admin()), Some(json!({ "narrative": narrative }))).await;
    assert_eq!(status, 200, "{marked}");
    assert_eq!(marked["typical_narrative"], narrative);
    assert_eq!(marked["history"].as_array().unwrap().last().unwrap()["kind"], "typical_case");

    // Every public response, in every format.
    let ids = [hidden.clone(), complained.clone(), closed.clone()];
    let mut paths: Vec<String> = [
        "/",
        "/?lang=en",
        "/?city=130500",
        "/?q=%E9%93%B8%E9%80%A0",
        "/v1/problems",
        "/v1/stats",
        "/feed.atom",
        "/feed.json",
        "/typical-cases.atom",
        "/typical-cases.json",
        "/problems.geojson",
        "/problems.csv",
        "/feed.atom?city=130400",
        "/v1/chain",
        "/v1/chain/entries",
        "/v1/chain/checkpoints",
        "/v1/chain/key",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    for id in &ids {
        paths.push(format!("/problems/{id}"));
        paths.push(format!("/problems/{id}?lang=en"));
        paths.push(format!("/v1/problems/{id}"));
    }
    for path in &paths {
        let (status, body) = text(&stack, path).await;
        assert_eq!(status, 200, "{path}: {body}");
        for secret in SECRETS {
            assert!(!body.contains(secret), "{path} shows {secret:?}");
        }
    }

    // Atom and JSON Feed, read by an independent parser.
    let (_, atom) = text(&stack, "/feed.atom").await;
    let feed = feed_rs::parser::parse(atom.as_bytes()).expect("the Atom feed parses");
    assert_eq!(feed.feed_type, feed_rs::model::FeedType::Atom);
    let in_atom: HashSet<String> =
        feed.entries.iter().map(|e| e.id.trim_start_matches("urn:uuid:").to_string()).collect();
    assert_eq!(in_atom, ids.iter().cloned().collect::<HashSet<_>>());
    let (_, json_feed) = text(&stack, "/feed.json").await;
    let feed = feed_rs::parser::parse(json_feed.as_bytes()).expect("the JSON Feed parses");
    assert_eq!(feed.feed_type, feed_rs::model::FeedType::JSON);
    assert_eq!(feed.entries.len(), 3);
    let (_, typical) = text(&stack, "/typical-cases.atom").await;
    let typical = feed_rs::parser::parse(typical.as_bytes()).expect("the typical-case feed parses");
    assert_eq!(typical.entries.len(), 1);
    assert!(typical.entries[0].id.ends_with(&closed));
    let (_, handan) = text(&stack, "/feed.atom?city=130400").await;
    assert_eq!(feed_rs::parser::parse(handan.as_bytes()).unwrap().entries.len(), 2, "the per-city feed");
    let (_, dust) = text(&stack, "/feed.json?category=dust").await;
    assert_eq!(feed_rs::parser::parse(dust.as_bytes()).unwrap().entries.len(), 1, "the per-category feed");

    // Atom pages follow `next` links to the end, each problem once.
    let mut seen = vec![];
    let mut next = Some(format!("{}/feed.atom?limit=1", stack.url("publication")));
    while let Some(url) = next {
        let page = stack.http.get(&url).send().await.unwrap().text().await.unwrap();
        let parsed = feed_rs::parser::parse(page.as_bytes()).expect("each page parses");
        seen.extend(parsed.entries.iter().map(|e| e.id.clone()));
        next = parsed.links.iter().find(|l| l.rel.as_deref() == Some("next")).map(|l| l.href.clone());
        assert!(seen.len() <= 3, "paging must end");
    }
    assert_eq!(seen.len(), 3);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 3);

    // The API pages by cursor, and filters.
    let mut listed = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/problems?limit=2&cursor={c}"),
            None => "/v1/problems?limit=2".to_string(),
        };
        let (_, page) = get(&stack, "publication", &path, None).await;
        listed.extend(page["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(listed.iter().collect::<HashSet<_>>(), ids.iter().collect::<HashSet<_>>());
    assert_eq!(listed.len(), 3);
    let (_, only) = get(&stack, "publication", "/v1/problems?city=130500&status=closed", None).await;
    assert_eq!(only["count"], 1);
    let (_, typical_only) = get(&stack, "publication", "/v1/problems?typical=true", None).await;
    assert_eq!(typical_only["items"][0]["id"], closed.as_str());
    let (status, bad) = get(&stack, "publication", "/v1/problems?cursor=nonsense", None).await;
    assert_eq!((status.as_u16(), bad["errors"][0]["field"].as_str()), (422, Some("cursor")));

    // GeoJSON: RFC 7946, read by the geojson crate, positions as [lon, lat].
    let (_, geo) = text(&stack, "/problems.geojson").await;
    let parsed: geojson::GeoJson = geo.parse().expect("GeoJSON parses");
    let geojson::GeoJson::FeatureCollection(collection) = parsed else { panic!("a FeatureCollection") };
    assert_eq!(collection.features.len(), 3);
    let raw: Value = serde_json::from_str(&geo).unwrap();
    assert!(raw.get("crs").is_none(), "RFC 7946 has no crs member");
    for feature in &collection.features {
        let Some(geojson::GeometryValue::Point { coordinates: position }) = feature.geometry.as_ref().map(|g| &g.value)
        else {
            panic!("a Point geometry")
        };
        let (lon, lat) = (position[0], position[1]);
        assert_eq!(position.len(), 2);
        assert!((-180.0..=180.0).contains(&lon) && (-90.0..=90.0).contains(&lat));
        assert!((114.0..115.0).contains(&lon) && (36.0..38.0).contains(&lat), "lon first: {position:?}");
    }
    let (_, boxed) = text(&stack, "/problems.geojson?bbox=114.4,36.5,114.6,36.7").await;
    let boxed: Value = serde_json::from_str(&boxed).unwrap();
    assert_eq!(boxed["features"].as_array().unwrap().len(), 1, "only the point at 36.61 N");
    assert_eq!(boxed["features"][0]["id"], complained.as_str());
    let (status, _) = get(&stack, "publication", "/problems.geojson?bbox=1,2,3", None).await;
    assert_eq!(status, 422);

    // CSV: a header and one row per public problem.
    let (_, csv) = text(&stack, "/problems.csv").await;
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("id,status,category"));
    assert_eq!(lines.len(), 4);

    // Conditional GET: ETag and Last-Modified answer 304 while nothing changed. A checkpoint
    // signed meanwhile is a change, so first the whole log is under one.
    eventually("a checkpoint covering the whole log", WAIT, || async {
        let (_, chain) = get(&stack, "publication", "/v1/chain", None).await;
        let size = chain["size"].as_i64()?;
        (size > 0 && chain["checkpoint"]["tree_size"] == size).then_some(())
    })
    .await;
    for path in ["/feed.atom", "/feed.json", "/problems.geojson", "/problems.csv", "/v1/stats", "/v1/problems", "/"] {
        let url = format!("{}{path}", stack.url("publication"));
        let first = stack.http.get(&url).send().await.unwrap();
        let etag = first.headers()[ETAG].to_str().unwrap().to_string();
        let modified = first.headers()[LAST_MODIFIED].to_str().unwrap().to_string();
        let again = stack.http.get(&url).header(IF_NONE_MATCH, &etag).send().await.unwrap();
        assert_eq!(again.status(), 304, "{path} with its ETag");
        let since = stack.http.get(&url).header(IF_MODIFIED_SINCE, &modified).send().await.unwrap();
        assert_eq!(since.status(), 304, "{path} since its Last-Modified");
        let other = stack.http.get(&url).header(IF_NONE_MATCH, "\"something-else\"").send().await.unwrap();
        assert_eq!(other.status(), 200, "{path} with another ETag");
    }

    // The typical case leads the page.
    let (_, page) = text(&stack, "/").await;
    let typical_at = page.find("id=\"typical-cases\"").expect("typical cases section");
    let league_at = page.find("id=\"league\"").expect("league table");
    assert!(typical_at < league_at && page[typical_at..league_at].contains(narrative));
    assert!(page.contains("<svg id=\"map\"") && page.contains("<svg id=\"chart\"") && !page.contains("<script"));

    // A retraction needs a reason code the feeds can carry; a wrong one changes nothing.
    let retraction = format!("/v1/admin/problems/{hidden}/retraction");
    let (status, refused) =
        post(&stack, "publication", &retraction, &stack.admin(), json!({ "code": "oops", "reason": "点位信息有误" }))
            .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["errors"][0]["field"], "code", "{refused}");
    assert!(refused["errors"][0]["detail"].as_str().unwrap().contains("data_error"), "{refused}");
    assert_eq!(get(&stack, "publication", "/v1/problems", None).await.1["count"], 3);

    // A retraction is a new public entry: the page says so, the lists drop the problem.
    let (status, retracted) = post(
        &stack,
        "publication",
        &retraction,
        &stack.admin(),
        json!({ "code": "data_error", "reason": "点位信息有误" }),
    )
    .await;
    assert_eq!(status, 200, "{retracted}");
    assert!(retracted["retracted_at"].is_string());
    assert_eq!(retracted["retraction_code"], "data_error");
    let last = retracted["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["status"], "retracted");
    assert!(last["what"].as_str().unwrap().contains("[data_error]"), "the log entry names the code: {last}");
    let (_, listed) = get(&stack, "publication", "/v1/problems", None).await;
    assert_eq!(listed["count"], 2);
    let (status, page) = text(&stack, &format!("/problems/{hidden}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("点位信息有误") && page.contains("信息有误"));
    assert_tombstones(&stack, &hidden, "data_error", "点位信息有误").await;
}

/// The feeds mirrors follow carry a retracted problem as a tombstone, not a silent gap: Atom as
/// an RFC 6721 `at:deleted-entry` (read by a feed library that keeps extensions), JSON Feed as an
/// item marked `_skyledger.deleted`, GeoJSON as a feature without geometry marked `deleted`; the
/// tombstone is the problem's only appearance in each, and leads the feed.
async fn assert_tombstones(stack: &Stack, id: &str, code: &str, reason: &str) {
    let (status, atom) = text(stack, "/feed.atom").await;
    assert_eq!(status, 200);
    let feed = atom_syndication::Feed::read_from(atom.as_bytes()).expect("the Atom feed parses");
    assert!(feed.entries().iter().all(|e| !e.id().contains(id)), "a retracted problem is no Atom entry");
    let prefix = feed.namespaces().iter().find(|(_, uri)| *uri == "http://purl.org/atompub/tombstones/1.0");
    let (prefix, _) = prefix.expect("the tombstones namespace is declared");
    let deleted = feed.extensions().get(prefix).and_then(|at| at.get("deleted-entry")).expect("at:deleted-entry");
    let tombstone =
        deleted.iter().find(|t| t.attrs().get("ref").map(String::as_str) == Some(&format!("urn:uuid:{id}")));
    let tombstone = tombstone.unwrap_or_else(|| panic!("a tombstone for {id} in\n{atom}"));
    assert!(tombstone.attrs().get("when").is_some_and(|w| w.ends_with('Z')), "{atom}");
    let comment = tombstone.children()["comment"][0].value().unwrap_or_default();
    assert!(comment.contains(&format!("[{code}]")) && comment.contains(reason), "{comment}");
    assert!(feed_rs::parser::parse(atom.as_bytes()).is_ok(), "other readers skip the tombstone");

    let (_, json_feed) = text(stack, "/feed.json").await;
    let json_feed: Value = serde_json::from_str(&json_feed).unwrap();
    let items: Vec<&Value> = json_feed["items"].as_array().unwrap().iter().filter(|i| i["id"] == id).collect();
    assert_eq!(items.len(), 1, "{json_feed}");
    assert_eq!(json_feed["items"][0]["id"], id, "the newest change leads the feed");
    let marker = &items[0]["_skyledger"];
    assert_eq!(marker["deleted"], true);
    assert_eq!(marker["reason_code"], code);
    assert_eq!(marker["reason"], reason);
    assert!(marker.get("category").is_none() && items[0].get("tags").is_none(), "a tombstone says nothing else");
    assert!(feed_rs::parser::parse(serde_json::to_vec(&json_feed).unwrap().as_slice()).is_ok());

    let (_, geojson) = text(stack, "/problems.geojson").await;
    let collection: geojson::FeatureCollection = geojson.parse().expect("GeoJSON parses");
    let features: Vec<_> =
        collection.features.iter().filter(|f| f.id == Some(geojson::feature::Id::String(id.into()))).collect();
    assert_eq!(features.len(), 1);
    assert!(features[0].geometry.is_none(), "a tombstone has no place");
    let properties = features[0].properties.as_ref().unwrap();
    assert_eq!(properties["deleted"], true);
    assert_eq!(properties["reason_code"], code);
    assert!(properties.get("site_name").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn where_the_office_must_approve_a_problem_waits_and_a_correction_is_a_new_entry() {
    let mut options = shared::testing::StackOptions::default();
    options.env.push(("SKYLEDGER__PUBLICATION__REQUIRE_APPROVAL".into(), "true".into()));
    let stack = Stack::start(std::path::Path::new(env!("CARGO_BIN_EXE_skyledger")), options).await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let id = report(&stack, XINGTAI, None, "某某钢厂", &["industrial_kiln"]).await.remove(0);

    // Handed over, yet waiting for the campaign office.
    let admin = stack.admin();
    eventually("the problem to await approval", WAIT, || async {
        let (_, pending) = get(&stack, "publication", "/v1/admin/pending", Some(&admin)).await;
        pending["items"].as_array().is_some_and(|items| items.iter().any(|p| p["id"] == id.as_str())).then_some(())
    })
    .await;
    assert_eq!(get(&stack, "publication", &format!("/v1/problems/{id}"), None).await.0, 404);
    assert_eq!(get(&stack, "publication", "/v1/admin/pending", None).await.0, 401);
    let (status, _) =
        post(&stack, "publication", &format!("/v1/admin/problems/{id}/approval"), &admin, json!({})).await;
    assert_eq!(status, 200);
    let public = wait_public(&stack, &id).await;
    assert_eq!(public["site_name"], "某某钢厂");

    // A correction keeps the old value in the record and says why.
    let (status, corrected) = post(
        &stack,
        "publication",
        &format!("/v1/admin/problems/{id}/correction"),
        &admin,
        json!({ "field": "site_name", "value": "某某钢铁厂", "reason": "名称笔误" }),
    )
    .await;
    assert_eq!(status, 200, "{corrected}");
    assert_eq!(corrected["site_name"], "某某钢铁厂");
    let last = corrected["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["kind"].as_str(), last["status"].as_str()), (Some("correction"), Some("corrected")));
    assert!(last["what"].as_str().unwrap().contains("某某钢厂") && last["what"].as_str().unwrap().contains("名称笔误"));
    let (status, bad) = post(
        &stack,
        "publication",
        &format!("/v1/admin/problems/{id}/correction"),
        &admin,
        json!({ "field": "team", "value": "x", "reason": "y" }),
    )
    .await;
    assert_eq!((status.as_u16(), bad["errors"][0]["field"].as_str()), (422, Some("field")));
}
