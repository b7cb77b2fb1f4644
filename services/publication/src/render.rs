//! The public formats of the record: Atom (RFC 4287, paged as RFC 5005), JSON Feed 1.1, GeoJSON
//! (RFC 7946), CSV and the HTML pages (Chinese first, English on `?lang=en`, no scripts, the
//! chart and the map as inline SVG; pages are askama templates in `templates/`). Pure functions of the public rows, so redaction is decided
//! once, upstream, by what a `PublicProblem` holds.

use askama::Template;
use serde_json::{Value, json};
use shared::clock::beijing_minute;
use shared::reference;
use time::Date;

use crate::store::{HistoryItem, ProblemFilter, PublicProblem};

pub use shared::i18n::{Lang, status_name};

pub fn status_zh(status: &str) -> &'static str {
    status_name(status, Lang::Zh)
}

fn city_name(code: Option<&str>, lang: Lang) -> String {
    code.and_then(reference::city)
        .map(|c| lang.t(&c.name_zh, &c.name_en).to_string())
        .unwrap_or_else(|| code.unwrap_or("").to_string())
}

fn category_name(code: Option<&str>, lang: Lang) -> String {
    code.and_then(reference::category)
        .map(|c| lang.t(&c.name_zh, &c.name_en).to_string())
        .unwrap_or_else(|| code.unwrap_or("").to_string())
}

pub fn title(p: &PublicProblem) -> String {
    format!(
        "[{}] {} — {}（{}）",
        status_zh(&p.status),
        category_name(p.category.as_deref(), Lang::Zh),
        p.site_name.as_deref().unwrap_or(""),
        city_name(p.city_code.as_deref(), Lang::Zh)
    )
}

fn summary(p: &PublicProblem) -> String {
    let mut text = format!(
        "{}。责任单位 {}，整改期限 {}。",
        p.description.as_deref().unwrap_or(""),
        p.jurisdiction.as_deref().unwrap_or(""),
        p.deadline.map(|d| d.to_string()).unwrap_or_default()
    );
    if let Some(closed) = p.closed_at {
        text.push_str(&format!(" 已于 {} 核查销号。", shared::csv::timestamp(closed)));
    }
    if p.overdue_on.is_some() && p.status != "closed" {
        text.push_str(" 已逾期。");
    }
    if let Some(narrative) = &p.typical_narrative {
        text.push_str(&format!(" 典型案例：{narrative}"));
    }
    text
}

pub fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// Where a feed page is and where its neighbours are.
pub struct FeedLinks {
    pub base: String,
    pub this: String,
    pub first: String,
    pub next: Option<String>,
    pub title_suffix: String,
}

/// The feed's subject when it is filtered to a city, a category or typical cases.
pub fn feed_title_suffix(f: &ProblemFilter) -> String {
    let mut parts = vec![];
    if f.typical == Some(true) {
        parts.push("典型案例 / Typical cases".to_string());
    }
    if let Some(c) = f.city.as_deref().and_then(reference::city) {
        parts.push(format!("{} / {}", c.name_zh, c.name_en));
    }
    if let Some(c) = f.category.as_deref().and_then(reference::category) {
        parts.push(format!("{} / {}", c.name_zh, c.name_en));
    }
    if parts.is_empty() { String::new() } else { format!(" — {}", parts.join(" · ")) }
}

/// What a feed says of a retracted problem in its place: when, the reason code and the words.
struct Tombstone<'a> {
    at: String,
    code: &'a str,
    reason: &'a str,
}

impl<'a> Tombstone<'a> {
    fn of(p: &'a PublicProblem) -> Option<Self> {
        Some(Self {
            at: shared::csv::timestamp(p.retracted_at?),
            code: p.retraction_code.as_deref().unwrap_or("unspecified"),
            reason: p.retraction_reason.as_deref().unwrap_or(""),
        })
    }

    fn comment(&self) -> String {
        let (zh, en) = crate::domain::withdrawal_words(self.code);
        format!("[{}] {zh} / {en}: {}", self.code, self.reason)
    }
}

const FEED_TITLE: &str = "Skyledger 强化监督问题公开 / Supervision problems disclosed";

/// An Atom feed (RFC 4287): one entry per problem, updated whenever the problem moves; paged
/// newest first with `first` and `next` links (RFC 5005).
pub fn atom(problems: &[PublicProblem], acts: &[ActEntry], links: &FeedLinks) -> String {
    let base = &links.base;
    let updated = problems
        .iter()
        .map(|p| p.updated_at)
        .max()
        .map(shared::csv::timestamp)
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into());
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\" xmlns:at=\"http://purl.org/atompub/tombstones/1.0\" xml:lang=\"zh-CN\">\n",
    );
    out.push_str(&format!(
        "  <id>{}</id>\n  <title>{}</title>\n  <updated>{updated}</updated>\n  <author><name>Skyledger</name></author>\n  <link rel=\"self\" href=\"{}\"/>\n  <link rel=\"first\" href=\"{}\"/>\n  <link rel=\"alternate\" type=\"text/html\" href=\"{base}/\"/>\n",
        xml_escape(&links.first),
        xml_escape(&format!("{FEED_TITLE}{}", links.title_suffix)),
        xml_escape(&links.this),
        xml_escape(&links.first),
    ));
    if let Some(next) = &links.next {
        out.push_str(&format!("  <link rel=\"next\" href=\"{}\"/>\n", xml_escape(next)));
    }
    for p in problems {
        if let Some(tombstone) = Tombstone::of(p) {
            out.push_str(&format!(
                "  <at:deleted-entry ref=\"urn:uuid:{}\" when=\"{}\">\n    <at:comment>{}</at:comment>\n    <link rel=\"alternate\" type=\"text/html\" href=\"{base}/problems/{}\"/>\n  </at:deleted-entry>\n",
                p.id,
                tombstone.at,
                xml_escape(&tombstone.comment()),
                p.id,
            ));
            continue;
        }
        out.push_str(&format!(
            "  <entry>\n    <id>urn:uuid:{}</id>\n    <title>{}</title>\n    <updated>{}</updated>\n    <published>{}</published>\n    <link rel=\"alternate\" type=\"text/html\" href=\"{base}/problems/{}\"/>\n    <category term=\"{}\" scheme=\"{base}/categories\" label=\"{}\"/>\n    <category term=\"{}\" scheme=\"{base}/cities\" label=\"{}\"/>\n    <summary>{}</summary>\n  </entry>\n",
            p.id,
            xml_escape(&title(p)),
            shared::csv::timestamp(p.updated_at),
            shared::csv::timestamp(p.handed_over_at.unwrap_or(p.updated_at)),
            p.id,
            xml_escape(p.category.as_deref().unwrap_or("")),
            xml_escape(&category_name(p.category.as_deref(), Lang::Zh)),
            xml_escape(p.city_code.as_deref().unwrap_or("")),
            xml_escape(&city_name(p.city_code.as_deref(), Lang::Zh)),
            xml_escape(&summary(p)),
        ));
    }
    for a in acts {
        out.push_str(&format!(
            "  <entry>\n    <id>urn:uuid:{}</id>\n    <title>{}</title>\n    <updated>{}</updated>\n    <link rel=\"alternate\" type=\"text/html\" href=\"{base}/#{}\"/>\n    <summary>{}</summary>\n  </entry>\n",
            xml_escape(&a.id),
            xml_escape(&a.title),
            xml_escape(&a.at),
            xml_escape(&a.anchor),
            xml_escape(&a.summary),
        ));
    }
    out.push_str("</feed>\n");
    out
}

/// A JSON Feed 1.1, paged with `next_url`.
pub fn json_feed(problems: &[PublicProblem], acts: &[ActEntry], links: &FeedLinks) -> Value {
    let base = &links.base;
    let mut feed = json!({
        "version": "https://jsonfeed.org/version/1.1",
        "title": format!("{FEED_TITLE}{}", links.title_suffix),
        "home_page_url": format!("{base}/"),
        "feed_url": links.this,
        "language": "zh-CN",
        "authors": [{ "name": "Skyledger" }],
        "items": problems.iter().map(|p| json_feed_item(p, base)).chain(acts.iter().map(|a| json!({
            "id": a.id, "url": format!("{base}/#{}", a.anchor), "title": a.title, "content_text": a.summary,
            "date_published": a.at,
        }))).collect::<Vec<_>>(),
    });
    if let Some(next) = &links.next {
        feed["next_url"] = json!(next);
    }
    feed
}

/// A problem as a JSON Feed item, or its tombstone once retracted.
fn json_feed_item(p: &PublicProblem, base: &str) -> Value {
    if let Some(t) = Tombstone::of(p) {
        return json!({
            "id": p.id.to_string(),
            "url": format!("{base}/problems/{}", p.id),
            "title": "撤回公开 / Retracted",
            "content_text": t.comment(),
            "date_modified": t.at,
            "_skyledger": { "deleted": true, "deleted_at": t.at, "reason_code": t.code, "reason": t.reason },
        });
    }
    json!({
        "id": p.id.to_string(),
        "url": format!("{base}/problems/{}", p.id),
        "title": title(p),
        "content_text": summary(p),
        "date_published": shared::csv::timestamp(p.handed_over_at.unwrap_or(p.updated_at)),
        "date_modified": shared::csv::timestamp(p.updated_at),
        "tags": [p.category.clone().unwrap_or_default(), p.status.clone(), p.city_code.clone().unwrap_or_default()],
        "_skyledger": {
            "status": p.status, "category": p.category, "city_code": p.city_code, "county_code": p.county_code,
            "deadline": p.deadline, "overdue": p.overdue_on.is_some() && p.status != "closed",
            "typical_case": p.typical_narrative,
        },
    })
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// GeoJSON (RFC 7946): WGS 84, positions as [longitude, latitude], optionally within a bbox
/// `[west, south, east, north]`.
pub fn geojson(problems: &[PublicProblem], bbox: Option<[f64; 4]>, base: &str) -> Value {
    let inside = |lon: f64, lat: f64| match bbox {
        None => true,
        Some([w, s, e, n]) => lat >= s && lat <= n && if w <= e { lon >= w && lon <= e } else { lon >= w || lon <= e },
    };
    // A retracted problem is a feature without a place, whatever the bbox: a mirror must learn
    // of it, and its position may be what was wrong.
    let tombstones = problems.iter().filter_map(|p| Tombstone::of(p).map(|t| (p, t))).map(|(p, t)| {
        json!({
            "type": "Feature",
            "id": p.id.to_string(),
            "geometry": null,
            "properties": {
                "deleted": true, "deleted_at": t.at, "reason_code": t.code, "reason": t.reason,
                "url": format!("{base}/problems/{}", p.id),
            },
        })
    });
    let features: Vec<Value> = problems
        .iter()
        .filter(|p| p.retracted_at.is_none())
        .filter_map(|p| Some((p, p.lon?, p.lat?)))
        .filter(|(_, lon, lat)| (-180.0..=180.0).contains(lon) && (-90.0..=90.0).contains(lat) && inside(*lon, *lat))
        .map(|(p, lon, lat)| {
            json!({
                "type": "Feature",
                "id": p.id.to_string(),
                "geometry": { "type": "Point", "coordinates": [round6(lon), round6(lat)] },
                "properties": {
                    "status": p.status, "category": p.category, "severity": p.severity,
                    "city_code": p.city_code, "county_code": p.county_code, "jurisdiction": p.jurisdiction,
                    "site_name": p.site_name, "deadline": p.deadline, "handover_no": p.handover_no,
                    "found_at": p.found_at.map(shared::csv::timestamp),
                    "handed_over_at": p.handed_over_at.map(shared::csv::timestamp),
                    "closed_at": p.closed_at.map(shared::csv::timestamp),
                    "overdue": p.overdue_on.is_some() && p.status != "closed",
                    "typical_case": p.typical_at.is_some(),
                    "url": format!("{base}/problems/{}", p.id),
                },
            })
        })
        .chain(tombstones)
        .collect();
    let mut collection = json!({ "type": "FeatureCollection", "features": features });
    if let Some(b) = bbox {
        collection["bbox"] = json!(b);
    }
    collection
}

pub fn csv(problems: &[PublicProblem]) -> String {
    let mut out = shared::csv::line(&[
        "id",
        "status",
        "category",
        "severity",
        "round",
        "city_code",
        "county_code",
        "jurisdiction",
        "site_name",
        "lat",
        "lon",
        "found_at",
        "handover_no",
        "handed_over_at",
        "deadline",
        "acknowledged_at",
        "rectification_reported_at",
        "verified_at",
        "closed_at",
        "overdue_on",
        "typical_case",
    ]);
    let ts = |t: Option<time::OffsetDateTime>| t.map(shared::csv::timestamp).unwrap_or_default();
    for p in problems {
        out.push_str(&shared::csv::line(&[
            &p.id.to_string(),
            &p.status,
            p.category.as_deref().unwrap_or(""),
            p.severity.as_deref().unwrap_or(""),
            p.round.as_deref().unwrap_or(""),
            p.city_code.as_deref().unwrap_or(""),
            p.county_code.as_deref().unwrap_or(""),
            p.jurisdiction.as_deref().unwrap_or(""),
            p.site_name.as_deref().unwrap_or(""),
            &p.lat.map(|v| v.to_string()).unwrap_or_default(),
            &p.lon.map(|v| v.to_string()).unwrap_or_default(),
            &ts(p.found_at),
            p.handover_no.as_deref().unwrap_or(""),
            &ts(p.handed_over_at),
            &p.deadline.map(|d| d.to_string()).unwrap_or_default(),
            &ts(p.acknowledged_at),
            &ts(p.rectification_reported_at),
            &ts(p.verified_at),
            &ts(p.closed_at),
            &p.overdue_on.map(|d| d.to_string()).unwrap_or_default(),
            p.typical_narrative.as_deref().unwrap_or(""),
        ]));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The campaign office's acts: summonses (约谈) and special inspections (专项督察)

struct SummonsView {
    id: String,
    city: String,
    held_on: String,
    place: String,
    officials: String,
    reasons: String,
    commitments: Vec<CommitmentView>,
}

struct CommitmentView {
    text: String,
    follow_up_on: String,
    result: &'static str,
    unkept: bool,
}

struct InspectionView {
    id: String,
    city: String,
    scope: String,
    opened_on: String,
    concluded_on: String,
    conclusion: String,
    linked: String,
    reported: String,
    problems: Vec<String>,
}

fn text_of(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

fn commitment_result(result: Option<&str>, lang: Lang) -> &'static str {
    match result {
        Some("kept") => lang.t("已兑现", "kept"),
        Some(_) => lang.t("未兑现", "not kept"),
        None => lang.t("待核查", "to be verified"),
    }
}

fn summons_view(v: &Value, lang: Lang) -> SummonsView {
    let officials = v["officials"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| format!("{}（{}）", text_of(&o["name"]), text_of(&o["post"])))
        .collect::<Vec<_>>()
        .join(lang.t("、", ", "));
    SummonsView {
        id: text_of(&v["id"]),
        city: city_name(v["city_code"].as_str(), lang),
        held_on: text_of(&v["held_on"]),
        place: text_of(&v["place"]),
        officials,
        reasons: text_of(&v["reasons"]),
        commitments: v["commitments"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| CommitmentView {
                text: text_of(&c["text"]),
                follow_up_on: text_of(&c["follow_up_on"]),
                result: commitment_result(c["result"].as_str(), lang),
                unkept: c["result"] == "not_kept",
            })
            .collect(),
    }
}

/// A special inspection's scope in words: its days, and its categories and counties when narrowed.
fn scope_words(scope: &Value, lang: Lang) -> String {
    let mut words = format!("{} – {}", text_of(&scope["from"]), text_of(&scope["to"]));
    let list = |key: &str| scope[key].as_array().cloned().unwrap_or_default();
    let categories: Vec<String> = list("categories").iter().map(|c| category_name(c.as_str(), lang)).collect();
    if !categories.is_empty() {
        words.push_str(&format!("；{}", categories.join(lang.t("、", ", "))));
    }
    let counties: Vec<String> = list("counties").iter().map(text_of).collect();
    if !counties.is_empty() {
        words.push_str(&format!("；{}{}", lang.t("区县 ", "counties "), counties.join(lang.t("、", ", "))));
    }
    words
}

fn inspection_view(v: &Value, lang: Lang) -> InspectionView {
    InspectionView {
        id: text_of(&v["id"]),
        city: city_name(v["city_code"].as_str(), lang),
        scope: scope_words(&v["scope"], lang),
        opened_on: text_of(&v["opened_on"]),
        concluded_on: text_of(&v["concluded_on"]),
        conclusion: text_of(&v["conclusion"]),
        linked: number(&v["findings"]["linked"]),
        reported: number(&v["findings"]["reported"]),
        problems: v["problems"].as_array().into_iter().flatten().map(text_of).collect(),
    }
}

/// A held summons or a concluded special inspection as a feed entry.
pub struct ActEntry {
    pub id: String,
    pub title: String,
    pub summary: String,
    pub at: String,
    pub anchor: String,
}

/// Feed entries for the acts, in Chinese like the rest of the feed.
pub fn act_entries(summonses: &[Value], inspections: &[Value]) -> Vec<ActEntry> {
    let summons = summonses.iter().map(|v| {
        let view = summons_view(v, Lang::Zh);
        let commitments: Vec<String> =
            view.commitments.iter().map(|c| format!("{}（{}前，{}）", c.text, c.follow_up_on, c.result)).collect();
        ActEntry {
            id: view.id.clone(),
            title: format!("约谈 · {} · {}", view.city, view.held_on),
            summary: format!(
                "{}于{}约谈{}。{} 承诺：{}",
                view.city,
                view.held_on,
                view.officials,
                view.reasons,
                commitments.join("；")
            ),
            at: text_of(&v["held_at"]),
            anchor: format!("summons-{}", view.id),
        }
    });
    let cases = inspections.iter().map(|v| {
        let view = inspection_view(v, Lang::Zh);
        ActEntry {
            id: view.id.clone(),
            title: format!("专项督察 · {} · {}", view.city, view.concluded_on),
            summary: format!(
                "范围：{}。关联问题 {} 个，新发现问题 {} 个。结论：{}",
                view.scope, view.linked, view.reported, view.conclusion
            ),
            at: text_of(&v["received_at"]),
            anchor: format!("special-inspection-{}", view.id),
        }
    });
    summons.chain(cases).collect()
}

// ---------------------------------------------------------------------------------------------
// HTML

/// What the front page shows.
pub struct FrontPage<'a> {
    pub lang: Lang,
    /// The `/v1/stats` document.
    pub stats: &'a Value,
    pub problems: &'a [PublicProblem],
    pub typical: &'a [PublicProblem],
    pub daily: &'a [(Date, i64, i64)],
    pub city: Option<&'a str>,
    pub q: Option<&'a str>,
    /// Who cosigned the latest checkpoint; `None` where the deployment names no witnesses.
    pub witnessed: Option<&'a Witnessed>,
    /// Held summonses and concluded special inspections, as `/v1/summonses` and
    /// `/v1/special-inspections` give them.
    pub summonses: &'a [Value],
    pub inspections: &'a [Value],
}

/// The latest checkpoint's size and the witnesses who cosigned it, with when.
pub struct Witnessed {
    pub tree_size: i64,
    pub by: Vec<(String, time::OffsetDateTime)>,
}

fn number(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        _ => "—".into(),
    }
}

/// The clean-up registers per city: for each register, what is still to be dealt with of all
/// its items; for the coal-to-gas villages also the lagging ones. Cities with no register item
/// are left out.
struct RegisterTable {
    headings: Vec<String>,
    rows: Vec<(String, String, Vec<String>)>,
    total: Vec<String>,
}

fn register_table(registers: &Value, lang: Lang) -> RegisterTable {
    let mut headings = Vec::new();
    for r in reference::REGISTERS {
        headings.push(format!("{}{}", lang.t(r.name_zh, r.name_en), lang.t("（未完成/总数）", " (outstanding / all)")));
        if r.states.contains(&"lagging") {
            headings.push(format!("{}{}", lang.t(r.name_zh, r.name_en), lang.t("（滞后）", " (lagging)")));
        }
    }
    let cells = |figures: &Value| -> Vec<String> {
        let mut cells = Vec::new();
        for r in reference::REGISTERS {
            let f = &figures[r.code];
            cells.push(if f.is_null() {
                "—".into()
            } else {
                format!("{} / {}", number(&f["outstanding"]), number(&f["total"]))
            });
            if r.states.contains(&"lagging") {
                cells.push(if f.is_null() { "—".into() } else { number(&f["lagging"]) });
            }
        }
        cells
    };
    let mut by_city: std::collections::BTreeMap<String, serde_json::Map<String, Value>> = Default::default();
    for r in reference::REGISTERS {
        for (city, figures) in registers[r.code]["cities"].as_object().into_iter().flatten() {
            by_city.entry(city.clone()).or_default().insert(r.code.to_string(), figures.clone());
        }
    }
    let rows = by_city
        .into_iter()
        .map(|(code, figures)| (city_name(Some(&code), lang), code, cells(&Value::Object(figures))))
        .collect();
    RegisterTable { headings, rows, total: cells(registers) }
}

/// The period every figure of a `/v1/stats` document covers, in words.
fn period_words(period: &Value, lang: Lang) -> String {
    let as_of = period["as_of"]
        .as_str()
        .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
        .map(beijing_minute)
        .unwrap_or_default();
    match (period["from"].as_str(), period["to"].as_str()) {
        (Some(from), Some(to)) => {
            let rounds = number(&period["rounds"]);
            match lang {
                Lang::Zh => format!("统计期：{from} 至 {to}（{rounds} 轮），截至 {as_of}（北京时间）"),
                Lang::En => {
                    let plural = if rounds == "1" { "" } else { "s" };
                    format!("Period: {from} to {to} ({rounds} round{plural}), as of {as_of} Beijing time")
                }
            }
        }
        _ => lang.t("统计期：尚无督察轮次。", "Period: no round yet.").to_string(),
    }
}

fn percent(v: &Value) -> String {
    v.as_f64().map(|x| format!("{:.0}%", x * 100.0)).unwrap_or_else(|| "—".into())
}

/// The public front page: typical cases first, the campaign's figures, the league table, the
/// map and the chart, search, and the latest problems. No scripts.
pub fn front_page(v: &FrontPage) -> String {
    let lang = v.lang;
    let s = &v.stats["summary"];
    let figures = [
        ("site_checks", "排查点位", "site checks"),
        ("emergency_plan_checks", "应急减排检查", "emergency-plan checks"),
        ("problems_found", "发现问题", "problems found"),
        ("handed_over", "交办", "handed over"),
        ("closed", "已销号", "closed"),
        ("overdue", "逾期", "overdue"),
        ("reopened", "重新整改", "reopened"),
        ("rebounds", "反弹", "rebounds"),
    ]
    .into_iter()
    .map(|(key, zh, en)| (lang.t(zh, en), number(&s[key])))
    .collect();
    let league = v.stats["league"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| {
            let code = row["city_code"].as_str().unwrap_or("").to_string();
            LeagueRow {
                rank: number(&row["rank"]),
                city: city_name(Some(&code), lang),
                site_checks: number(&row["site_checks"]),
                problems_found: number(&row["problems_found"]),
                per_100_checks: row["problems_per_100_checks"]
                    .as_f64()
                    .map(|x| format!("{x:.1}"))
                    .unwrap_or_else(|| "—".into()),
                handed_over: number(&row["handed_over"]),
                closed: number(&row["closed"]),
                closed_on_time: percent(&row["share_closed_on_time"]),
                overdue: number(&row["overdue"]),
                escalation: escalation_name(row["escalation_level"].as_str(), lang),
                code,
            }
        })
        .collect();
    let registers = register_table(&v.stats["registers"], lang);
    let cities = reference::cities()
        .iter()
        .map(|c| CityOption {
            code: c.code.as_str(),
            name: lang.t(&c.name_zh, &c.name_en),
            selected: v.city == Some(c.code.as_str()),
        })
        .collect();
    let heading = if v.city.is_some() || v.q.is_some() {
        lang.t("查询结果", "Results")
    } else {
        lang.t("最新问题", "Latest problems")
    };

    let mut switch = String::from("/?");
    if let Some(c) = v.city {
        switch.push_str(&format!("city={c}&"));
    }
    if let Some(q) = v.q {
        switch.push_str(&format!("q={}&", form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()));
    }
    if lang == Lang::Zh {
        switch.push_str("lang=en");
    }
    let switch = switch.trim_end_matches(['&', '?']).to_string();
    let switch_to = if switch.is_empty() { "/".to_string() } else { switch };
    let page = FrontTemplate {
        league_min_checks: number(&v.stats["league_min_checks"]),
        period: period_words(&v.stats["period"], lang),
        registers,
        lang,
        title: lang.t("强化监督问题公开 · Skyledger", "Problems disclosed · Skyledger").to_string(),
        switch_to,
        typical: v
            .typical
            .iter()
            .map(|p| TypicalCase {
                id: p.id.to_string(),
                site: p.site_name.clone().unwrap_or_default(),
                city: city_name(p.city_code.as_deref(), lang),
                category: category_name(p.category.as_deref(), lang),
                narrative: p.typical_narrative.clone().unwrap_or_default(),
            })
            .collect(),
        summary: s[lang.t("text_zh", "text_en")].as_str().unwrap_or("").to_string(),
        figures,
        map: map_svg(v.stats, lang),
        chart: chart_svg(v.daily, lang),
        league,
        cities,
        q: v.q.unwrap_or(""),
        english: lang == Lang::En,
        heading,
        problems: v
            .problems
            .iter()
            .map(|p| ProblemRow {
                id: p.id.to_string(),
                status: status_name(&p.status, lang),
                overdue: p.overdue_on.is_some() && p.status != "closed",
                category: category_name(p.category.as_deref(), lang),
                site: p.site_name.clone().unwrap_or_default(),
                city: city_name(p.city_code.as_deref(), lang),
                deadline: p.deadline.map(|d| d.to_string()).unwrap_or_default(),
            })
            .collect(),
        summonses: v.summonses.iter().map(|x| summons_view(x, lang)).collect(),
        inspections: v.inspections.iter().map(|x| inspection_view(x, lang)).collect(),
        witnessed: v.witnessed.map(|w| WitnessedView {
            tree_size: w.tree_size,
            by: w.by.iter().map(|(name, at)| (name.clone(), beijing_minute(*at))).collect(),
        }),
    };
    page.render().expect("the front page renders")
}

/// The front page's template (`templates/front.html`, in `templates/layout.html`): everything it
/// shows already in words, so the template only lays it out.
#[derive(Template)]
#[template(path = "front.html")]
struct FrontTemplate<'a> {
    /// Site checks a city needs to be ranked.
    league_min_checks: String,
    /// The days the figures cover and when they were counted, said under each of them.
    period: String,
    registers: RegisterTable,
    lang: Lang,
    title: String,
    switch_to: String,
    typical: Vec<TypicalCase>,
    summary: String,
    figures: Vec<(&'a str, String)>,
    /// Inline SVG, drawn by `map_svg` and `chart_svg` (their text escaped there).
    map: String,
    chart: String,
    league: Vec<LeagueRow>,
    cities: Vec<CityOption<'a>>,
    q: &'a str,
    english: bool,
    heading: &'a str,
    problems: Vec<ProblemRow>,
    summonses: Vec<SummonsView>,
    inspections: Vec<InspectionView>,
    witnessed: Option<WitnessedView>,
}

/// Witness names and the Beijing minute each cosigned.
struct WitnessedView {
    tree_size: i64,
    by: Vec<(String, String)>,
}

struct TypicalCase {
    id: String,
    site: String,
    city: String,
    category: String,
    narrative: String,
}

struct LeagueRow {
    code: String,
    rank: String,
    city: String,
    site_checks: String,
    problems_found: String,
    per_100_checks: String,
    handed_over: String,
    closed: String,
    closed_on_time: String,
    overdue: String,
    escalation: String,
}

struct CityOption<'a> {
    code: &'a str,
    name: &'a str,
    selected: bool,
}

struct ProblemRow {
    id: String,
    status: &'static str,
    overdue: bool,
    category: String,
    site: String,
    city: String,
    deadline: String,
}

fn escalation_name(level: Option<&str>, lang: Lang) -> String {
    let (zh, en) = match level {
        None => ("—", "—"),
        Some("reminder") => ("提醒", "reminder"),
        Some("listed_supervision") => ("挂牌督办", "listed supervision"),
        Some("summons") => ("约谈", "summons"),
        Some("special_inspection") => ("专项督察", "special inspection"),
        Some(other) => (other, other),
    };
    lang.t(zh, en).to_string()
}

/// The 39 cities drawn from their coordinates (equirectangular, scaled at the mean latitude):
/// a circle per city, its area by problems found, its colour by the share closed on time.
fn map_svg(stats: &Value, lang: Lang) -> String {
    let cities = reference::cities();
    let (mut west, mut east, mut south, mut north) = (180.0f64, -180.0f64, 90.0f64, -90.0f64);
    for c in cities {
        west = west.min(c.lon);
        east = east.max(c.lon);
        south = south.min(c.lat);
        north = north.max(c.lat);
    }
    let pad = 0.6;
    // Labels sit right of their circles: more room east.
    let (west, east, south, north) = (west - pad, east + 1.6, south - pad, north + pad);
    let kx = ((south + north) / 2.0).to_radians().cos();
    let width = 640.0;
    let height = (width * (north - south) / ((east - west) * kx)).round();
    let x = |lon: f64| (lon - west) / (east - west) * width;
    let y = |lat: f64| (north - lat) / (north - south) * height;
    let mut svg = format!(
        "<svg id=\"map\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" role=\"group\" aria-labelledby=\"map-title\"><title id=\"map-title\">{}</title>",
        lang.t("39 个重点城市的问题与销号", "Problems and closures in the 39 key cities")
    );
    // A graticule every degree, for orientation without outside tiles.
    for lon in (west.ceil() as i64)..=(east.floor() as i64) {
        svg.push_str(&format!(
            "<line x1=\"{0:.1}\" y1=\"0\" x2=\"{0:.1}\" y2=\"{height}\" stroke=\"#e6eaef\" stroke-width=\"1\"/><text x=\"{0:.1}\" y=\"{1}\" font-size=\"9\" fill=\"#8b949e\" text-anchor=\"middle\">{lon}°E</text>",
            x(lon as f64),
            height - 3.0
        ));
    }
    for lat in (south.ceil() as i64)..=(north.floor() as i64) {
        svg.push_str(&format!(
            "<line x1=\"0\" y1=\"{0:.1}\" x2=\"{width}\" y2=\"{0:.1}\" stroke=\"#e6eaef\" stroke-width=\"1\"/><text x=\"3\" y=\"{1:.1}\" font-size=\"9\" fill=\"#8b949e\">{lat}°N</text>",
            y(lat as f64),
            y(lat as f64) - 2.0
        ));
    }
    for c in cities {
        let figures = &stats["cities"][&c.code];
        let found = figures["problems_found"].as_i64().unwrap_or(0);
        let handed = figures["handed_over"].as_i64().unwrap_or(0);
        let on_time = figures["closed_on_time"].as_i64().unwrap_or(0);
        let r = 4.0 + 2.5 * (found as f64).sqrt();
        let fill = if handed == 0 {
            "#9aa4ae".to_string()
        } else {
            // From red (nothing closed on time) to green (everything).
            let share = on_time as f64 / handed as f64;
            format!("hsl({:.0},70%,45%)", share * 120.0)
        };
        let name = lang.t(&c.name_zh, &c.name_en);
        svg.push_str(&format!(
            "<a href=\"/?city={}{}\"><g class=\"city\" data-city=\"{}\"><circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"{r:.1}\" fill=\"{fill}\" fill-opacity=\"0.75\" stroke=\"#1d2430\" stroke-width=\"0.6\"><title>{}: {} {}, {} {}</title></circle><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#1d2430\">{}</text></g></a>",
            c.code,
            lang.suffix(false),
            c.code,
            x(c.lon),
            y(c.lat),
            xml_escape(name),
            found,
            lang.t("个问题", "problems"),
            on_time,
            lang.t("个按期销号", "closed on time"),
            x(c.lon) + r + 1.5,
            y(c.lat) + 3.5,
            xml_escape(name),
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// Cumulative problems found and closed per day, as two lines.
fn chart_svg(daily: &[(Date, i64, i64)], lang: Lang) -> String {
    let (width, height, left, bottom, top, right) = (640.0, 320.0, 48.0, 28.0, 12.0, 12.0);
    let mut svg = format!(
        "<svg id=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-labelledby=\"chart-title\"><title id=\"chart-title\">{}</title>",
        lang.t("累计发现与销号问题数", "Cumulative problems found and closed")
    );
    if daily.is_empty() {
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#57606a\">{}</text></svg>",
            width / 2.0,
            height / 2.0,
            lang.t("暂无数据", "No data yet")
        ));
        return svg;
    }
    let first = daily[0].0;
    let last = daily[daily.len() - 1].0;
    let days = ((last - first).whole_days() as f64).max(1.0);
    let (mut found, mut closed) = (0i64, 0i64);
    let mut points_found = vec![];
    let mut points_closed = vec![];
    for (day, f, c) in daily {
        found += f;
        closed += c;
        let t = (*day - first).whole_days() as f64;
        points_found.push((t, found));
        points_closed.push((t, closed));
    }
    let max = found.max(closed).max(1) as f64;
    let x = |t: f64| left + t / days * (width - left - right);
    let y = |n: i64| height - bottom - n as f64 / max * (height - bottom - top);
    let line = |points: &[(f64, i64)]| {
        let mut out = String::new();
        let mut previous: Option<i64> = None;
        for (t, n) in points {
            // A step: the count holds until the next day with something new.
            if let Some(p) = previous {
                out.push_str(&format!("{:.1},{:.1} ", x(*t), y(p)));
            }
            out.push_str(&format!("{:.1},{:.1} ", x(*t), y(*n)));
            previous = Some(*n);
        }
        out
    };
    svg.push_str(&format!(
        "<line x1=\"{left}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#57606a\"/><line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{0}\" stroke=\"#57606a\"/>",
        height - bottom,
        width - right
    ));
    svg.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">0</text>",
        left - 4.0,
        top + 8.0,
        max as i64,
        left - 4.0,
        height - bottom
    ));
    svg.push_str(&format!(
        "<text x=\"{left}\" y=\"{}\" font-size=\"10\">{first}</text><text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{last}</text>",
        height - 8.0,
        width - right,
        height - 8.0
    ));
    svg.push_str(&format!(
        "<polyline class=\"found\" fill=\"none\" stroke=\"#d1242f\" stroke-width=\"2\" points=\"{}\"/><polyline class=\"closed\" fill=\"none\" stroke=\"#1a7f37\" stroke-width=\"2\" points=\"{}\"/>",
        line(&points_found).trim(),
        line(&points_closed).trim()
    ));
    svg.push_str(&format!(
        "<g font-size=\"11\"><rect x=\"{0}\" y=\"{1}\" width=\"10\" height=\"3\" fill=\"#d1242f\"/><text x=\"{2}\" y=\"{3}\">{4} {5}</text><rect x=\"{0}\" y=\"{6}\" width=\"10\" height=\"3\" fill=\"#1a7f37\"/><text x=\"{2}\" y=\"{7}\">{8} {9}</text></g></svg>",
        left + 10.0,
        top + 6.0,
        left + 24.0,
        top + 10.0,
        lang.t("发现", "found"),
        found,
        top + 22.0,
        top + 26.0,
        lang.t("销号", "closed"),
        closed,
    ));
    svg
}

/// What the problem page's script needs to check the record in the browser: the problem, its
/// entries in the log, the log's verifier key and the witnesses' (space-separated).
pub struct RecordCheck {
    pub problem: String,
    pub entries: String,
    pub verifier_key: String,
    pub witnesses: String,
}

impl RecordCheck {
    pub fn new(p: &PublicProblem, history: &[HistoryItem], verifier_key: String, witnesses: &[String]) -> Self {
        let entries: Vec<String> = history.iter().filter_map(|h| h.entry_index).map(|i| i.to_string()).collect();
        Self { problem: p.id.to_string(), entries: entries.join(","), verifier_key, witnesses: witnesses.join(" ") }
    }
}

pub fn problem_page(p: &PublicProblem, history: &[HistoryItem], check: RecordCheck, lang: Lang) -> String {
    let ts = |t: Option<time::OffsetDateTime>| t.map(beijing_minute).unwrap_or_else(|| "—".into());
    let facts = vec![
        (lang.t("问题编号", "Problem"), p.id.to_string()),
        (lang.t("状态", "Status"), status_name(&p.status, lang).to_string()),
        (lang.t("问题描述", "Description"), p.description.clone().unwrap_or_default()),
        (lang.t("严重程度", "Severity"), p.severity.clone().unwrap_or_default()),
        (lang.t("轮次", "Round"), p.round.clone().unwrap_or_default()),
        (lang.t("区县", "County"), p.county_code.clone().unwrap_or_default()),
        (lang.t("责任单位", "Responsible government"), p.jurisdiction.clone().unwrap_or_default()),
        (lang.t("督办单", "Handover sheet"), p.handover_no.clone().unwrap_or_default()),
        (lang.t("发现时间", "Found"), ts(p.found_at)),
        (lang.t("交办时间", "Handed over"), ts(p.handed_over_at)),
        (lang.t("整改期限", "Deadline"), p.deadline.map(|d| d.to_string()).unwrap_or_else(|| "—".into())),
        (lang.t("签收时间", "Acknowledged"), ts(p.acknowledged_at)),
        (lang.t("整改进展", "Progress"), p.progress_stage.clone().unwrap_or_else(|| "—".into())),
        (lang.t("报告整改", "Rectification reported"), ts(p.rectification_reported_at)),
        (lang.t("现场核查", "Verified"), ts(p.verified_at)),
        (lang.t("销号时间", "Closed"), ts(p.closed_at)),
        (lang.t("逾期自", "Overdue since"), p.overdue_on.map(|d| d.to_string()).unwrap_or_else(|| "—".into())),
        (
            lang.t("位置", "Location"),
            match (p.lat, p.lon) {
                (Some(lat), Some(lon)) => format!("{lat:.5}, {lon:.5}"),
                _ => "—".into(),
            },
        ),
    ];
    let page = ProblemTemplate {
        lang,
        title: title(p),
        switch_to: format!("/problems/{}{}", p.id, if lang == Lang::Zh { "?lang=en" } else { "" }),
        category: category_name(p.category.as_deref(), lang),
        site: p.site_name.clone().unwrap_or_default(),
        city: city_name(p.city_code.as_deref(), lang),
        retraction: Tombstone::of(p).map(|t| {
            let (zh, en) = crate::domain::withdrawal_words(t.code);
            (beijing_minute(p.retracted_at.unwrap_or(p.updated_at)), format!("{}：{}", lang.t(zh, en), t.reason))
        }),
        narrative: p.typical_narrative.clone(),
        check,
        facts,
        evidence: p.evidence.0.iter().map(|e| e.url.clone()).collect(),
        history: history
            .iter()
            .map(|h| HistoryRow {
                when: beijing_minute(h.at),
                step: status_name(&h.status, lang),
                what: if h.withdrawn {
                    lang.t("（内容已依法撤下）", "(content withdrawn)").to_string()
                } else {
                    h.what.clone()
                },
                entry: h.entry_index,
            })
            .collect(),
    };
    page.render().expect("a problem page renders")
}

/// A public problem's page (`templates/problem.html`, in `templates/layout.html`).
#[derive(Template)]
#[template(path = "problem.html")]
struct ProblemTemplate<'a> {
    lang: Lang,
    title: String,
    switch_to: String,
    category: String,
    site: String,
    city: String,
    /// When (Beijing time) and why it was retracted.
    retraction: Option<(String, String)>,
    narrative: Option<String>,
    check: RecordCheck,
    facts: Vec<(&'a str, String)>,
    evidence: Vec<String>,
    history: Vec<HistoryRow>,
}

struct HistoryRow {
    when: String,
    step: &'static str,
    what: String,
    entry: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_summons_and_a_concluded_case_read_in_words_and_make_feed_entries() {
        let summons = json!({
            "id": "s1", "city_code": "130500", "held_on": "2019-06-20", "held_at": "2019-06-20T01:00:00Z",
            "place": "约谈室", "reasons": "逾期 <3> 个",
            "officials": [ { "name": "张某某", "post": "市长" } ],
            "commitments": [ { "text": "整治", "follow_up_on": "2019-07-20", "result": "not_kept" },
                             { "text": "监控", "follow_up_on": "2019-08-20", "result": null } ] });
        let view = summons_view(&summons, Lang::En);
        assert_eq!(view.officials, "张某某（市长）");
        let results: Vec<_> = view.commitments.iter().map(|c| (c.result, c.unkept)).collect();
        assert_eq!(results, [("not kept", true), ("to be verified", false)]);
        let case = json!({
            "id": "c1", "city_code": "130500", "received_at": "2019-07-05T01:00:00Z", "concluded_on": "2019-07-05",
            "scope": { "categories": ["dust"], "counties": [], "from": "2019-06-21", "to": "2019-07-05" },
            "findings": { "linked": 3, "reported": 1 }, "conclusion": "责成整改", "problems": [] });
        let entries = act_entries(&[summons], &[case]);
        assert_eq!(entries.len(), 2);
        assert!(entries[1].summary.contains("关联问题 3 个，新发现问题 1 个"), "{}", entries[1].summary);
        let links = FeedLinks {
            base: "https://x".into(),
            this: "https://x/feed.atom".into(),
            first: "https://x/feed.atom".into(),
            next: None,
            title_suffix: String::new(),
        };
        let atom = atom(&[], &entries, &links);
        assert!(atom.contains("逾期 &lt;3&gt; 个") && atom.contains("href=\"https://x/#summons-s1\""), "{atom}");
    }

    #[test]
    fn escaping_keeps_markup_out() {
        assert_eq!(xml_escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn the_map_places_every_city_inside_its_frame() {
        let svg = map_svg(&json!({ "cities": {} }), Lang::Zh);
        assert_eq!(svg.matches("<circle").count(), 39);
        assert!(svg.contains("邢台") && !svg.contains("NaN"));
        let en = map_svg(&json!({ "cities": {} }), Lang::En);
        assert!(en.contains("Xingtai"));
    }

    #[test]
    fn the_chart_accumulates_found_and_closed() {
        let d = |day: u8| Date::from_calendar_date(2019, time::Month::May, day).unwrap();
        let svg = chart_svg(&[(d(9), 3, 0), (d(20), 1, 2)], Lang::En);
        assert!(svg.contains("found 4") && svg.contains("closed 2"), "{svg}");
        assert!(chart_svg(&[], Lang::Zh).contains("暂无数据"));
    }
}
