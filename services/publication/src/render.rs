//! The public formats of the record: Atom (RFC 4287), JSON Feed 1.1, GeoJSON (RFC 7946), CSV and
//! the HTML pages. Pure functions of the public rows, so redaction is decided once, upstream, by
//! what a `PublicProblem` holds.

use serde_json::{Value, json};
use shared::reference;

use crate::store::{HistoryItem, PublicProblem};

pub fn status_zh(status: &str) -> &'static str {
    match status {
        "reported" => "已发现",
        "assigned" => "已交办",
        "acknowledged" => "已签收",
        "rectification_reported" => "已报整改",
        "reopened" => "重新整改",
        "closed" => "已销号",
        _ => "未知",
    }
}

fn city_name(code: Option<&str>) -> String {
    code.and_then(reference::city).map(|c| c.name_zh.clone()).unwrap_or_else(|| code.unwrap_or("").to_string())
}

fn category_name(code: Option<&str>) -> String {
    code.and_then(reference::category).map(|c| c.name_zh.clone()).unwrap_or_else(|| code.unwrap_or("").to_string())
}

pub fn title(p: &PublicProblem) -> String {
    format!(
        "[{}] {} — {}（{}）",
        status_zh(&p.status),
        category_name(p.category.as_deref()),
        p.site_name.as_deref().unwrap_or(""),
        city_name(p.city_code.as_deref())
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
    text
}

pub fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// An Atom feed (RFC 4287): one entry per problem, updated whenever the problem moves.
pub fn atom(problems: &[PublicProblem], base: &str, self_path: &str) -> String {
    let updated = problems
        .iter()
        .map(|p| p.updated_at)
        .max()
        .map(shared::csv::timestamp)
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into());
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\" xml:lang=\"zh-CN\">\n",
    );
    out.push_str(&format!(
        "  <id>{base}/feed.atom</id>\n  <title>Skyledger 强化监督问题公开 / Supervision problems disclosed</title>\n  <updated>{updated}</updated>\n  <author><name>Skyledger</name></author>\n  <link rel=\"self\" href=\"{}\"/>\n  <link rel=\"alternate\" type=\"text/html\" href=\"{base}/\"/>\n",
        xml_escape(&format!("{base}{self_path}"))
    ));
    for p in problems {
        out.push_str(&format!(
            "  <entry>\n    <id>urn:uuid:{}</id>\n    <title>{}</title>\n    <updated>{}</updated>\n    <published>{}</published>\n    <link rel=\"alternate\" type=\"text/html\" href=\"{base}/problems/{}\"/>\n    <category term=\"{}\"/>\n    <summary>{}</summary>\n  </entry>\n",
            p.id,
            xml_escape(&title(p)),
            shared::csv::timestamp(p.updated_at),
            shared::csv::timestamp(p.handed_over_at.unwrap_or(p.updated_at)),
            p.id,
            xml_escape(p.category.as_deref().unwrap_or("")),
            xml_escape(&summary(p)),
        ));
    }
    out.push_str("</feed>\n");
    out
}

/// A JSON Feed 1.1.
pub fn json_feed(problems: &[PublicProblem], base: &str) -> Value {
    json!({
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Skyledger 强化监督问题公开 / Supervision problems disclosed",
        "home_page_url": format!("{base}/"),
        "feed_url": format!("{base}/feed.json"),
        "language": "zh-CN",
        "items": problems.iter().map(|p| json!({
            "id": p.id.to_string(),
            "url": format!("{base}/problems/{}", p.id),
            "title": title(p),
            "content_text": summary(p),
            "date_published": shared::csv::timestamp(p.handed_over_at.unwrap_or(p.updated_at)),
            "date_modified": shared::csv::timestamp(p.updated_at),
            "tags": [p.category.clone().unwrap_or_default(), p.status.clone()],
            "_skyledger": { "status": p.status, "city_code": p.city_code, "county_code": p.county_code },
        })).collect::<Vec<_>>(),
    })
}

/// GeoJSON (RFC 7946): WGS 84, coordinates as [lon, lat].
pub fn geojson(problems: &[PublicProblem]) -> Value {
    json!({
        "type": "FeatureCollection",
        "features": problems.iter().filter(|p| p.lat.is_some() && p.lon.is_some()).map(|p| json!({
            "type": "Feature",
            "id": p.id.to_string(),
            "geometry": { "type": "Point", "coordinates": [p.lon, p.lat] },
            "properties": {
                "status": p.status, "category": p.category, "city_code": p.city_code, "county_code": p.county_code,
                "site_name": p.site_name, "deadline": p.deadline, "handover_no": p.handover_no,
            },
        })).collect::<Vec<_>>(),
    })
}

pub fn csv(problems: &[PublicProblem]) -> String {
    let mut out = shared::csv::line(&[
        "id",
        "status",
        "category",
        "city_code",
        "county_code",
        "site_name",
        "lat",
        "lon",
        "found_at",
        "handed_over_at",
        "deadline",
        "rectification_reported_at",
        "verified_at",
        "closed_at",
    ]);
    let ts = |t: Option<time::OffsetDateTime>| t.map(shared::csv::timestamp).unwrap_or_default();
    for p in problems {
        out.push_str(&shared::csv::line(&[
            &p.id.to_string(),
            &p.status,
            p.category.as_deref().unwrap_or(""),
            p.city_code.as_deref().unwrap_or(""),
            p.county_code.as_deref().unwrap_or(""),
            p.site_name.as_deref().unwrap_or(""),
            &p.lat.map(|v| v.to_string()).unwrap_or_default(),
            &p.lon.map(|v| v.to_string()).unwrap_or_default(),
            &ts(p.found_at),
            &ts(p.handed_over_at),
            &p.deadline.map(|d| d.to_string()).unwrap_or_default(),
            &ts(p.rectification_reported_at),
            &ts(p.verified_at),
            &ts(p.closed_at),
        ]));
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,'Noto Sans CJK SC',sans-serif;margin:2rem auto;max-width:70rem;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.35rem .5rem;text-align:left;font-size:.92rem}
th{background:#f4f6f8}.status{font-weight:600}a{color:#0b5cad}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{STYLE}</style><link rel=\"alternate\" type=\"application/atom+xml\" href=\"/feed.atom\"><link rel=\"alternate\" type=\"application/feed+json\" href=\"/feed.json\"></head><body>{body}</body></html>\n",
        xml_escape(title)
    )
}

/// The public front page: cities' figures and the latest problems; no scripts.
pub fn front_page(problems: &[PublicProblem], per_city: &[(String, i64, i64, i64)]) -> String {
    let mut body = String::from("<h1>强化监督问题公开 <small>Supervision problems disclosed</small></h1>");
    body.push_str("<p><a href=\"/feed.atom\">Atom</a> · <a href=\"/feed.json\">JSON Feed</a> · <a href=\"/problems.geojson\">GeoJSON</a> · <a href=\"/problems.csv\">CSV</a></p>");
    body.push_str("<h2>各城市 <small>Cities</small></h2><table id=\"league\"><thead><tr><th>城市 City</th><th>排查 Checks</th><th>问题 Problems</th><th>已销号 Closed</th></tr></thead><tbody>");
    for (city, checks, found, closed) in per_city {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{checks}</td><td>{found}</td><td>{closed}</td></tr>",
            xml_escape(&city_name(Some(city)))
        ));
    }
    body.push_str("</tbody></table><h2>最新问题 <small>Latest problems</small></h2><table id=\"problems\"><thead><tr><th>状态 Status</th><th>类别 Category</th><th>点位 Site</th><th>城市 City</th><th>整改期限 Deadline</th></tr></thead><tbody>");
    for p in problems {
        body.push_str(&format!(
            "<tr><td class=\"status\">{}</td><td>{}</td><td><a href=\"/problems/{}\">{}</a></td><td>{}</td><td>{}</td></tr>",
            status_zh(&p.status),
            xml_escape(&category_name(p.category.as_deref())),
            p.id,
            xml_escape(p.site_name.as_deref().unwrap_or("")),
            xml_escape(&city_name(p.city_code.as_deref())),
            p.deadline.map(|d| d.to_string()).unwrap_or_default()
        ));
    }
    body.push_str("</tbody></table>");
    page("强化监督问题公开 · Skyledger", &body)
}

pub fn problem_page(p: &PublicProblem, history: &[HistoryItem]) -> String {
    let mut body = format!("<p><a href=\"/\">← 返回 Back</a></p><h1>{}</h1>", xml_escape(&title(p)));
    body.push_str(&format!(
        "<p>{}</p><table><tbody><tr><th>问题编号 Problem</th><td>{}</td></tr><tr><th>状态 Status</th><td>{} ({})</td></tr><tr><th>责任单位 Responsible</th><td>{}</td></tr><tr><th>督办单 Sheet</th><td>{}</td></tr><tr><th>整改期限 Deadline</th><td>{}</td></tr></tbody></table>",
        xml_escape(p.description.as_deref().unwrap_or("")),
        p.id,
        status_zh(&p.status),
        xml_escape(&p.status),
        xml_escape(p.jurisdiction.as_deref().unwrap_or("")),
        xml_escape(p.handover_no.as_deref().unwrap_or("")),
        p.deadline.map(|d| d.to_string()).unwrap_or_default(),
    ));
    body.push_str("<h2>过程 <small>History</small></h2><table id=\"history\"><thead><tr><th>时间 When</th><th>状态 Status</th><th>事项 What</th></tr></thead><tbody>");
    for h in history {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            shared::csv::timestamp(h.at),
            status_zh(&h.status),
            xml_escape(&h.what)
        ));
    }
    body.push_str("</tbody></table>");
    page(&title(p), &body)
}
