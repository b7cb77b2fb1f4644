//! The workbench's screens. Each handler reads the person's session from the cookie, asks the
//! services (as that person), and renders a template; each form checks the CSRF token first,
//! so a write from another site changes nothing.

// A screen's early answer (the sign-in page, a refusal) is the `Err` of its helpers; boxing a
// response on that path buys nothing.
#![allow(clippy::result_large_err)]

use askama::Template;
use axum::Form;
use axum::extract::{Multipart, Path, Query, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::auth::{SESSION_COOKIE, cookie, csrf_token};
use shared::i18n::{self, Lang};
use time::OffsetDateTime;

use super::WorkbenchConfig;
use super::api::{Api, Refused, Service, Upstreams};

const LANG_COOKIE: &str = "skyledger_lang";

#[derive(Clone)]
pub struct State {
    pub(super) api: Api,
    config: WorkbenchConfig,
}

impl State {
    pub fn new(config: WorkbenchConfig, upstreams: Upstreams) -> anyhow::Result<Self> {
        Ok(Self { api: Api::new(upstreams)?, config })
    }
}

/// Who is signed in, as their token says.
#[derive(Debug, Clone)]
pub struct Me {
    pub name: String,
    pub role: String,
    pub role_name: &'static str,
    pub scope: Option<String>,
    pub team: Option<String>,
}

struct Session {
    token: String,
    csrf: String,
    me: Me,
}

/// What every page's frame shows: the language, the title, the person and the CSRF token.
pub struct Frame {
    pub lang: Lang,
    pub title: String,
    pub me: Option<Me>,
    pub csrf: String,
    pub switch_to: String,
}

#[derive(Deserialize, Default)]
pub struct LangQuery {
    pub(super) lang: Option<String>,
}

/// The reader's language: `?lang=` (remembered in a cookie), else the cookie, else Chinese.
pub(super) fn language(headers: &HeaderMap, asked: Option<&str>) -> Lang {
    Lang::from_query(asked.or_else(|| cookie(headers, LANG_COOKIE)))
}

fn frame(lang: Lang, title: &str, session: Option<&Session>, path: &str) -> Frame {
    Frame {
        lang,
        title: title.to_string(),
        me: session.map(|s| s.me.clone()),
        csrf: session.map(|s| s.csrf.clone()).unwrap_or_default(),
        switch_to: format!("{path}?lang={}", lang.t("en", "zh-CN")),
    }
}

/// A rendered page, remembering the language when it was chosen by `?lang=`.
fn html(status: StatusCode, page: impl Template, asked_lang: Option<&str>) -> Response {
    let body = match page.render() {
        Ok(body) => body,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("the page did not render: {e}")).into_response(),
    };
    let mut response = (status, Html(body)).into_response();
    if let Some(lang) = asked_lang.filter(|l| matches!(*l, "en" | "zh-CN"))
        && let Ok(value) =
            HeaderValue::from_str(&format!("{LANG_COOKIE}={lang}; Path=/; SameSite=Strict; Max-Age=31536000"))
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    frame: Frame,
    message: String,
    sign_in_code: Option<String>,
}

fn message(status: StatusCode, lang: Lang, title: &str, text: &str, session: Option<&Session>) -> Response {
    let page =
        MessagePage { frame: frame(lang, title, session, "/workbench"), message: text.to_string(), sign_in_code: None };
    html(status, page, None)
}

/// A service's refusal shown to the person, with the service's own status and words.
fn refused(lang: Lang, refusal: Refused, session: Option<&Session>) -> Response {
    let title = lang.t("未能完成", "Not done");
    message(refusal.status, lang, title, &refusal.detail, session)
}

fn cookie_header(config: &WorkbenchConfig, value: &str, max_age: i64) -> HeaderValue {
    let secure = if config.secure_cookies { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("a cookie header is ASCII")
}

fn signed_out(s: &State, lang: Lang) -> Response {
    let mut response = message(
        StatusCode::UNAUTHORIZED,
        lang,
        lang.t("请登录", "Please sign in"),
        lang.t(
            "您尚未登录或登录已失效。请使用督查办发送给您的登录链接。",
            "You are not signed in, or your session has ended. Use the sign-in link the campaign office sent you.",
        ),
        None,
    );
    response.headers_mut().append(header::SET_COOKIE, cookie_header(&s.config, "", 0));
    response
}

/// The signed-in person, checked by the service that keeps people on every request, so a
/// revoked person or an ended session is signed out on the next page.
async fn session(s: &State, headers: &HeaderMap, lang: Lang) -> Result<Session, Response> {
    let token = cookie(headers, SESSION_COOKIE).filter(|t| !t.is_empty()).ok_or_else(|| signed_out(s, lang))?;
    let me =
        s.api.get(Service::Notification, "/v1/me", token).await.map_err(|e| {
            if e.status == StatusCode::UNAUTHORIZED { signed_out(s, lang) } else { refused(lang, e, None) }
        })?;
    let role = me["role"].as_str().unwrap_or_default().to_string();
    let team = me["team"].as_str().map(str::to_string);
    let jurisdiction = me["jurisdiction"].as_str().map(|code| i18n::jurisdiction_name(code, lang));
    Ok(Session {
        token: token.to_string(),
        csrf: csrf_token(token),
        me: Me {
            name: me["name"].as_str().unwrap_or(lang.t("（机器令牌）", "(machine token)")).to_string(),
            role_name: i18n::role_name(&role, lang),
            role,
            scope: jurisdiction.or_else(|| team.clone()),
            team,
        },
    })
}

/// A write's CSRF token must be the one of the session: a page of another site cannot know it.
fn check_csrf(session: &Session, sent: Option<&str>, lang: Lang) -> Result<(), Response> {
    if sent == Some(session.csrf.as_str()) {
        Ok(())
    } else {
        Err(message(
            StatusCode::FORBIDDEN,
            lang,
            lang.t("请求被拒绝", "Refused"),
            lang.t(
                "表单已失效（缺少 CSRF 令牌），未做任何更改。",
                "The form carried no valid CSRF token; nothing was changed.",
            ),
            Some(session),
        ))
    }
}

// ---- Signing in and out ----

/// The link in the invitation opens this page; only its button signs in, so a mail scanner
/// that follows links uses nothing up.
pub async fn sign_in_page(headers: HeaderMap, Path(code): Path<String>, Query(q): Query<LangQuery>) -> Response {
    let lang = language(&headers, q.lang.as_deref());
    let page = MessagePage {
        frame: frame(lang, lang.t("登录工作台", "Sign in to the workbench"), None, &format!("/sign-in/{code}")),
        message: lang
            .t(
                "按下按钮即以邀请中的身份登录。此链接仅可使用一次。",
                "Press the button to sign in as invited. The link works once.",
            )
            .to_string(),
        sign_in_code: Some(code),
    };
    html(StatusCode::OK, page, q.lang.as_deref())
}

#[derive(Deserialize)]
pub struct SignInForm {
    code: String,
}

pub async fn sign_in(AxumState(s): AxumState<State>, headers: HeaderMap, Form(form): Form<SignInForm>) -> Response {
    let lang = language(&headers, None);
    match s.api.post(Service::Notification, "/v1/sign-in", None, &json!({ "code": form.code })).await {
        Ok(answer) => {
            let token = answer["token"].as_str().unwrap_or_default();
            let max_age = answer["expires_in"].as_i64().unwrap_or(3600);
            // Inspectors work in the field app; everyone else on the workbench.
            let home = if answer["person"]["role"] == "inspector" { "/field/" } else { "/workbench" };
            let mut response = Redirect::to(home).into_response();
            response.headers_mut().append(header::SET_COOKIE, cookie_header(&s.config, token, max_age));
            response
        }
        Err(e) => refused(lang, e, None),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

pub async fn sign_out(AxumState(s): AxumState<State>, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    let lang = language(&headers, None);
    let session = match session(&s, &headers, lang).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    if let Err(response) = check_csrf(&session, form.csrf.as_deref(), lang) {
        return response;
    }
    if let Err(e) = s.api.post(Service::Notification, "/v1/sign-out", Some(&session.token), &json!({})).await {
        return refused(lang, e, Some(&session));
    }
    let mut response = message(
        StatusCode::OK,
        lang,
        lang.t("已退出", "Signed out"),
        lang.t("您已退出登录。", "You have signed out."),
        None,
    );
    response.headers_mut().append(header::SET_COOKIE, cookie_header(&s.config, "", 0));
    response
}

// ---- Home: each role's main screen ----

#[derive(Deserialize, Default)]
pub struct LedgerQuery {
    lang: Option<String>,
    round: Option<String>,
    city: Option<String>,
    lat: Option<String>,
    lon: Option<String>,
    status: Option<String>,
    category: Option<String>,
    overdue: Option<String>,
    due_within: Option<String>,
    page: Option<usize>,
    done: Option<String>,
}

pub struct LedgerFilter {
    round: String,
    status: String,
    category: String,
    overdue: bool,
    due_within: String,
}

pub struct SheetRow {
    no: String,
    count: i64,
    issued: String,
}

pub struct LedgerRow {
    id: String,
    site: String,
    category: String,
    status: &'static str,
    overdue: bool,
    deadline: String,
    sheet: String,
}

#[derive(Template)]
#[template(path = "local_gov.html")]
struct LocalGovPage {
    frame: Frame,
    sheets: Vec<SheetRow>,
    filter: LedgerFilter,
    statuses: Vec<(&'static str, &'static str)>,
    categories: Vec<(String, String)>,
    count: usize,
    rows: Vec<LedgerRow>,
    xlsx_href: String,
    previous: Option<String>,
    next: Option<String>,
}

pub struct TaskRow {
    id: String,
    site: String,
    address: String,
    city: String,
    city_code: String,
    kind: &'static str,
    distance: Option<String>,
    km: f64,
}

#[derive(Template)]
#[template(path = "verifier.html")]
struct VerifierPage {
    frame: Frame,
    cities: Vec<(String, String)>,
    city: String,
    lat: String,
    lon: String,
    tasks: Vec<TaskRow>,
}

/// Great-circle distance in kilometres.
fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lon1, lat2, lon2) = (a.0.to_radians(), a.1.to_radians(), b.0.to_radians(), b.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().asin()
}

pub struct DisputeRow {
    id: String,
    site: String,
    jurisdiction: String,
    reason: String,
}

pub struct ExtensionRow {
    id: String,
    problem: String,
    problem_short: String,
    until: String,
    reason: String,
}

/// A summons or special inspection on the office's home screen.
pub struct ActRow {
    what: &'static str,
    city: String,
    when: String,
    status: &'static str,
    /// The act's own page, where it has one.
    link: Option<String>,
}

pub struct EscalationRow {
    city: String,
    level: String,
    why: String,
}

#[derive(Template)]
#[template(path = "office.html")]
struct OfficePage {
    frame: Frame,
    flash: Option<String>,
    disputes: Vec<DisputeRow>,
    extensions: Vec<ExtensionRow>,
    escalations: Vec<EscalationRow>,
    acts: Vec<ActRow>,
    quality_round: Option<String>,
    quality: Vec<(String, String, String, String, String, String)>,
    dead_letters: Vec<(&'static str, usize)>,
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn beijing(value: &Value) -> String {
    value
        .as_str()
        .and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
        .map(shared::clock::beijing_minute)
        .unwrap_or_else(|| text(value))
}

fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        out.append_pair(k, v);
    }
    out.finish()
}

/// Each role's home screen.
enum Screen {
    LocalGov(LocalGovPage),
    Verifier(VerifierPage),
    Office(OfficePage),
    Message(MessagePage),
}

impl Screen {
    fn render(self, status: StatusCode, asked: Option<&str>) -> Response {
        match self {
            Screen::LocalGov(page) => html(status, page, asked),
            Screen::Verifier(page) => html(status, page, asked),
            Screen::Office(page) => html(status, page, asked),
            Screen::Message(page) => html(status, page, asked),
        }
    }
}

pub async fn home(AxumState(s): AxumState<State>, headers: HeaderMap, Query(q): Query<LedgerQuery>) -> Response {
    let lang = language(&headers, q.lang.as_deref());
    let session = match session(&s, &headers, lang).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let asked = q.lang.as_deref();
    let result = match session.me.role.as_str() {
        "local_gov" => local_gov_home(&s, &session, lang, &q).await,
        "verifier" => verifier_home(&s, &session, lang, &q).await,
        "admin" => office_home(&s, &session, lang, q.done.as_deref()).await,
        _ => Ok(Screen::Message(MessagePage {
            frame: frame(lang, lang.t("检查组", "Inspection team"), Some(&session), "/workbench"),
            message: lang
                .t(
                    "检查组成员请使用外勤应用（/field/）记录检查。",
                    "Inspectors record their site checks in the field app (/field/).",
                )
                .into(),
            sign_in_code: None,
        })),
    };
    match result {
        Ok(screen) => screen.render(StatusCode::OK, asked),
        Err(e) => refused(lang, e, Some(&session)),
    }
}

async fn local_gov_home(s: &State, session: &Session, lang: Lang, q: &LedgerQuery) -> Result<Screen, Refused> {
    let sheets = s.api.get(Service::Assignment, "/v1/handovers?acknowledged=false", &session.token).await?;
    let sheets = sheets["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|h| SheetRow {
                    no: text(&h["no"]),
                    count: h["problem_count"].as_i64().unwrap_or(0),
                    issued: beijing(&h["issued_at"]),
                })
                .collect()
        })
        .unwrap_or_default();
    let filter = LedgerFilter {
        round: q.round.clone().unwrap_or_default(),
        status: q.status.clone().unwrap_or_default(),
        category: q.category.clone().unwrap_or_default(),
        overdue: q.overdue.as_deref() == Some("true"),
        due_within: q.due_within.clone().unwrap_or_default(),
    };
    let overdue = if filter.overdue { "true" } else { "" };
    let api_query = query_string(&[
        ("round", &filter.round),
        ("status", &filter.status),
        ("category", &filter.category),
        ("overdue", overdue),
    ]);
    let ledger = s.api.get(Service::Assignment, &format!("/v1/ledger?{api_query}"), &session.token).await?;
    let mut items: Vec<Value> = ledger["items"].as_array().cloned().unwrap_or_default();
    // Due within N days of today (Beijing), then soonest deadline first.
    if let Ok(days) = filter.due_within.trim().parse::<i64>() {
        let today = OffsetDateTime::now_utc().to_offset(shared::clock::SHANGHAI).date();
        let last = (today + time::Duration::days(days)).to_string();
        items.retain(|e| e["deadline"].as_str().is_some_and(|d| d <= last.as_str()));
    }
    items.sort_by(|a, b| {
        let key = |e: &Value| e["deadline"].as_str().map(str::to_string).unwrap_or_else(|| "9999".into());
        key(a).cmp(&key(b))
    });
    let count = items.len();
    let size = s.config.page_size.max(1);
    let page = q.page.unwrap_or(0).min(count.saturating_sub(1) / size);
    let rows = items
        .iter()
        .skip(page * size)
        .take(size)
        .map(|e| LedgerRow {
            id: text(&e["problem_id"]),
            site: text(&e["site_name"]),
            category: i18n::category_name(e["category"].as_str().unwrap_or_default(), lang),
            status: i18n::ledger_status_name(e["status"].as_str().unwrap_or_default(), lang),
            overdue: e["overdue"].as_bool().unwrap_or(false),
            deadline: text(&e["deadline"]),
            sheet: text(&e["handover_no"]),
        })
        .collect();
    let base = [
        ("round", filter.round.as_str()),
        ("status", filter.status.as_str()),
        ("category", filter.category.as_str()),
        ("overdue", overdue),
        ("due_within", filter.due_within.as_str()),
    ];
    let page_href = |p: usize| {
        let p = p.to_string();
        let mut pairs = base.to_vec();
        pairs.push(("page", &p));
        format!("/workbench?{}", query_string(&pairs))
    };
    let page_view = LocalGovPage {
        frame: frame(lang, lang.t("本地台账", "Our ledger"), Some(session), "/workbench"),
        sheets,
        statuses: assignment::domain::STATUSES.iter().map(|st| (*st, i18n::ledger_status_name(st, lang))).collect(),
        categories: shared::reference::categories()
            .iter()
            .map(|c| (c.code.clone(), lang.t(&c.name_zh, &c.name_en).to_string()))
            .collect(),
        count,
        rows,
        xlsx_href: format!(
            "/api/assignment/v1/ledger?{}",
            query_string(&[("format", "xlsx"), base[0], base[1], base[2], base[3]])
        ),
        previous: (page > 0).then(|| page_href(page - 1)),
        next: ((page + 1) * size < count).then(|| page_href(page + 1)),
        filter,
    };
    Ok(Screen::LocalGov(page_view))
}

async fn verifier_home(s: &State, session: &Session, lang: Lang, q: &LedgerQuery) -> Result<Screen, Refused> {
    let tasks = s.api.get(Service::Verification, "/v1/tasks", &session.token).await?;
    let here = q
        .lat
        .as_deref()
        .and_then(|l| l.trim().parse::<f64>().ok())
        .zip(q.lon.as_deref().and_then(|l| l.trim().parse::<f64>().ok()));
    let city = q.city.clone().unwrap_or_default();
    let mut rows: Vec<TaskRow> = Vec::new();
    for (list, kind) in
        [("verdicts", lang.t("整改核查", "verify rectification")), ("rechecks", lang.t("回头看", "re-check"))]
    {
        for t in tasks[list].as_array().into_iter().flatten() {
            let city_code = text(&t["city_code"]);
            if !city.is_empty() && city_code != city {
                continue;
            }
            let id = text(&t["problem_id"]);
            // The site as reported: its name, address and position.
            let reported =
                s.api.get(Service::Intake, &format!("/v1/problems/{id}"), &session.token).await.unwrap_or_default();
            let site = &reported["site"];
            let at = site["lat"].as_f64().zip(site["lon"].as_f64());
            let km = here.zip(at).map(|(here, at)| distance_km(here, at));
            rows.push(TaskRow {
                site: site["name"].as_str().map(str::to_string).unwrap_or_else(|| id.chars().take(8).collect()),
                address: text(&site["address"]),
                city: i18n::jurisdiction_name(&city_code, lang),
                city_code,
                id,
                kind,
                distance: km.map(|km| format!("{km:.1}")),
                km: km.unwrap_or(f64::MAX),
            });
        }
    }
    rows.sort_by(|a, b| a.km.total_cmp(&b.km).then_with(|| a.city_code.cmp(&b.city_code)));
    let mut cities: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.city_code.clone(), r.city.clone()))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_iter()
        .collect();
    if !city.is_empty() && !cities.iter().any(|(c, _)| *c == city) {
        cities.push((city.clone(), i18n::jurisdiction_name(&city, lang)));
    }
    let page = VerifierPage {
        frame: frame(lang, lang.t("核查任务", "Verification tasks"), Some(session), "/workbench"),
        cities,
        city,
        lat: q.lat.clone().unwrap_or_default(),
        lon: q.lon.clone().unwrap_or_default(),
        tasks: rows,
    };
    Ok(Screen::Verifier(page))
}

async fn office_home(s: &State, session: &Session, lang: Lang, done: Option<&str>) -> Result<Screen, Refused> {
    let token = &session.token;
    let disputes = s.api.get(Service::Assignment, "/v1/disputes?status=open", token).await?;
    let extensions = s.api.get(Service::Assignment, "/v1/extensions?status=requested", token).await?;
    let escalations = s.api.get(Service::Verification, "/v1/escalations", token).await?;
    let summonses = s.api.get(Service::Verification, "/v1/summonses", token).await?;
    let cases = s.api.get(Service::Verification, "/v1/special-inspections", token).await?;
    let items = |v: &Value| v["items"].as_array().cloned().unwrap_or_default();
    let city = |v: &Value| i18n::jurisdiction_name(v["city_code"].as_str().unwrap_or_default(), lang);
    let acts = items(&summonses)
        .iter()
        .map(|m| ActRow {
            what: lang.t("约谈", "Summons"),
            city: city(m),
            when: text(&m["date"]),
            status: if m["status"] == "held" { lang.t("已举行", "held") } else { lang.t("已安排", "scheduled") },
            link: None,
        })
        .chain(items(&cases).iter().map(|c| ActRow {
            what: lang.t("专项督察", "Special inspection"),
            city: city(c),
            when: beijing(&c["opened_at"]),
            status: if c["status"] == "concluded" {
                lang.t("已结案", "concluded")
            } else {
                lang.t("进行中", "open")
            },
            link: Some(format!("/workbench/special-inspections/{}", text(&c["id"]))),
        }))
        .collect();
    // The newest round's team figures.
    let rounds = s.api.get(Service::Intake, "/v1/rounds", token).await?;
    let quality_round = rounds["items"][0]["id"].as_str().map(str::to_string);
    let quality = match &quality_round {
        Some(round) => {
            let path =
                format!("/v1/rounds/{}/quality", form_urlencoded::byte_serialize(round.as_bytes()).collect::<String>());
            s.api.get(Service::Intake, &path, token).await?
        }
        None => Value::Null,
    };
    let mut dead_letters = Vec::new();
    for service in
        [Service::Intake, Service::Assignment, Service::Verification, Service::Notification, Service::Publication]
    {
        let letters = s.api.get(service, "/v1/admin/dead-letters", token).await?;
        dead_letters.push((service_name(service), letters["items"].as_array().map_or(0, Vec::len)));
    }
    let page = OfficePage {
        frame: frame(lang, lang.t("督查办", "Campaign office"), Some(session), "/workbench"),
        flash: done.map(|d| flash_text(d, lang).to_string()),
        disputes: disputes["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| DisputeRow {
                id: text(&d["problem_id"]),
                site: text(&d["problem_id"]).chars().take(8).collect(),
                jurisdiction: i18n::jurisdiction_name(d["jurisdiction"].as_str().unwrap_or_default(), lang),
                reason: text(&d["reason"]),
            })
            .collect(),
        extensions: extensions["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| ExtensionRow {
                id: text(&e["id"]),
                problem: text(&e["problem_id"]),
                problem_short: text(&e["problem_id"]).chars().take(8).collect(),
                until: text(&e["requested_deadline"]),
                reason: text(&e["reason"]),
            })
            .collect(),
        escalations: escalations["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| EscalationRow {
                city: i18n::jurisdiction_name(e["city_code"].as_str().unwrap_or_default(), lang),
                level: text(&e["level"]),
                why: format!(
                    "{} {} · {} {} · {} {}",
                    lang.t("逾期", "overdue"),
                    text(&e["overdue"]),
                    lang.t("重新整改", "reopened"),
                    text(&e["reopened"]),
                    lang.t("反弹", "rebounds"),
                    text(&e["rebounds"]),
                ),
            })
            .collect(),
        acts,
        quality: quality["teams"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                let n = |k: &str| text(&t[k]);
                (n("team"), n("checks"), n("problems"), n("duplicates"), n("withdrawn"), n("refused"))
            })
            .collect(),
        quality_round,
        dead_letters,
    };
    Ok(Screen::Office(page))
}

fn service_name(service: Service) -> &'static str {
    match service {
        Service::Intake => "intake",
        Service::Assignment => "assignment",
        Service::Verification => "verification",
        Service::Notification => "notification",
        Service::Publication => "publication",
    }
}

fn flash_text(done: &str, lang: Lang) -> &'static str {
    match done {
        "acknowledged" => lang.t("已签收。", "Acknowledged."),
        "rectification" => lang.t("整改报告已提交，等待核查。", "Rectification reported; it waits for verification."),
        "verdict" => lang.t("核查结论已提交。", "Verdict given."),
        "extension" => lang.t("延期申请已提交。", "Extension asked."),
        "progress" => lang.t("整改进展已提交。", "Progress reported."),
        "dispute" => lang.t("申诉已提交。", "Dispute raised."),
        "invited" => lang.t("登录邀请已发出。", "The sign-in invitation is on its way."),
        "saved" => lang.t("已保存。", "Saved."),
        "revoked" => lang.t("已撤销该人员的访问权限。", "The person's access is revoked."),
        _ => lang.t("已完成。", "Done."),
    }
}

// ---- A special inspection (campaign office) ----

#[derive(Template)]
#[template(path = "special_inspection.html")]
struct SpecialInspectionPage {
    frame: Frame,
    city: String,
    status: &'static str,
    scope: String,
    teams: String,
    opened: String,
    concluded_on: String,
    conclusion: String,
    note: String,
    /// (problem id, its short form, linked or reported, its status)
    findings: Vec<(String, String, &'static str, &'static str)>,
}

/// A special inspection's own page: its scope, team(s), findings and conclusion. The office
/// adds findings and concludes through verification's API.
pub async fn special_inspection(
    AxumState(s): AxumState<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<LedgerQuery>,
) -> Response {
    let lang = language(&headers, q.lang.as_deref());
    let session = match session(&s, &headers, lang).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let case = match s.api.get(Service::Verification, &format!("/v1/special-inspections/{id}"), &session.token).await {
        Ok(case) => case,
        Err(e) => return refused(lang, e, Some(&session)),
    };
    let list = |v: &Value| v.as_array().into_iter().flatten().map(text).collect::<Vec<_>>().join(", ");
    let scope = &case["scope"];
    let mut scope_words = format!("{} – {}", text(&scope["from"]), text(&scope["to"]));
    for (key, zh, en) in [("categories", "类别", "categories"), ("counties", "区县", "counties")] {
        if scope[key].as_array().is_some_and(|a| !a.is_empty()) {
            scope_words.push_str(&format!(" · {}: {}", lang.t(zh, en), list(&scope[key])));
        }
    }
    let concluded = case["status"] == "concluded";
    let title = format!(
        "{} · {}",
        lang.t("专项督察", "Special inspection"),
        i18n::jurisdiction_name(case["city_code"].as_str().unwrap_or_default(), lang)
    );
    let page = SpecialInspectionPage {
        frame: frame(lang, &title, Some(&session), &format!("/workbench/special-inspections/{id}")),
        city: i18n::jurisdiction_name(case["city_code"].as_str().unwrap_or_default(), lang),
        status: if concluded { lang.t("已结案", "concluded") } else { lang.t("进行中", "open") },
        scope: scope_words,
        teams: list(&case["teams"]),
        opened: beijing(&case["opened_at"]),
        concluded_on: text(&case["concluded_on"]),
        conclusion: text(&case["conclusion"]),
        note: text(&case["note"]),
        findings: case["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                let id = text(&f["problem_id"]);
                let kind = if f["kind"] == "reported" {
                    lang.t("督察新发现", "reported under the case")
                } else {
                    lang.t("关联已有问题", "linked")
                };
                (
                    id.clone(),
                    id.chars().take(8).collect(),
                    kind,
                    i18n::status_name(f["status"].as_str().unwrap_or_default(), lang),
                )
            })
            .collect(),
    };
    html(StatusCode::OK, page, q.lang.as_deref())
}

// ---- People (campaign office) ----

pub struct PersonRow {
    id: String,
    name: String,
    role: &'static str,
    scope: String,
    state: &'static str,
    revoked: bool,
}

#[derive(Template)]
#[template(path = "people.html")]
struct PeoplePage {
    frame: Frame,
    flash: Option<String>,
    roles: Vec<(&'static str, &'static str)>,
    people: Vec<PersonRow>,
}

pub async fn people(AxumState(s): AxumState<State>, headers: HeaderMap, Query(q): Query<LedgerQuery>) -> Response {
    let lang = language(&headers, q.lang.as_deref());
    let session = match session(&s, &headers, lang).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let people = match s.api.get(Service::Notification, "/v1/people", &session.token).await {
        Ok(people) => people,
        Err(e) => return refused(lang, e, Some(&session)),
    };
    let rows = people["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let revoked = !p["revoked_at"].is_null();
            PersonRow {
                id: text(&p["id"]),
                name: text(&p["name"]),
                role: i18n::role_name(p["role"].as_str().unwrap_or_default(), lang),
                scope: p["jurisdiction"]
                    .as_str()
                    .map(|j| i18n::jurisdiction_name(j, lang))
                    .unwrap_or_else(|| text(&p["team"])),
                state: if revoked {
                    lang.t("已撤销", "revoked")
                } else if p["signed_in_at"].is_null() {
                    lang.t("已邀请", "invited")
                } else {
                    lang.t("已登录过", "signed in")
                },
                revoked,
            }
        })
        .collect();
    let page = PeoplePage {
        frame: frame(lang, lang.t("人员", "People"), Some(&session), "/workbench/people"),
        flash: q.done.as_deref().map(|d| flash_text(d, lang).to_string()),
        roles: ["local_gov", "verifier", "inspector", "admin"]
            .into_iter()
            .map(|r| (r, i18n::role_name(r, lang)))
            .collect(),
        people: rows,
    };
    html(StatusCode::OK, page, q.lang.as_deref())
}

#[derive(Deserialize)]
pub struct InviteForm {
    csrf: Option<String>,
    name: String,
    role: String,
    team: Option<String>,
    jurisdiction: Option<String>,
    email: Option<String>,
    phone: Option<String>,
}

fn filled(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

pub async fn invite(AxumState(s): AxumState<State>, headers: HeaderMap, Form(form): Form<InviteForm>) -> Response {
    let lang = language(&headers, None);
    let session = match session(&s, &headers, lang).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    if let Err(response) = check_csrf(&session, form.csrf.as_deref(), lang) {
        return response;
    }
    let body = json!({
        "name": form.name, "role": form.role, "team": filled(form.team), "jurisdiction": filled(form.jurisdiction),
        "email": filled(form.email), "phone": filled(form.phone), "language": lang.code(),
    });
    match s.api.post(Service::Notification, "/v1/people", Some(&session.token), &body).await {
        Ok(_) => Redirect::to("/workbench/people?done=invited").into_response(),
        Err(e) => refused(lang, e, Some(&session)),
    }
}

#[derive(Deserialize)]
pub struct ReasonForm {
    csrf: Option<String>,
    reason: Option<String>,
}

/// Runs a write for the signed-in person once the CSRF token holds; `then` is where to go after.
async fn write(
    s: &State,
    headers: &HeaderMap,
    csrf: Option<&str>,
    service: Service,
    path: &str,
    body: Value,
    then: &str,
) -> Response {
    let lang = language(headers, None);
    let session = match session(s, headers, lang).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    if let Err(response) = check_csrf(&session, csrf, lang) {
        return response;
    }
    match s.api.post(service, path, Some(&session.token), &body).await {
        Ok(_) => Redirect::to(then).into_response(),
        Err(e) => refused(lang, e, Some(&session)),
    }
}

pub async fn revoke(
    AxumState(s): AxumState<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    let path = format!("/v1/people/{id}/revoke");
    let body = json!({ "reason": form.reason.unwrap_or_default() });
    write(&s, &headers, form.csrf.as_deref(), Service::Notification, &path, body, "/workbench/people?done=revoked")
        .await
}

// ---- Acting on sheets and problems ----

pub async fn acknowledge(
    AxumState(s): AxumState<State>,
    headers: HeaderMap,
    Path(no): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let path = format!("/v1/handovers/{no}/acknowledge");
    write(&s, &headers, form.csrf.as_deref(), Service::Assignment, &path, json!({}), "/workbench?done=acknowledged")
        .await
}

#[derive(Deserialize)]
pub struct ProgressForm {
    csrf: Option<String>,
    stage: String,
    percent_done: Option<String>,
}

pub async fn progress(
    AxumState(s): AxumState<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ProgressForm>,
) -> Response {
    let path = format!("/v1/problems/{id}/progress");
    let percent: Option<u8> = form.percent_done.as_deref().and_then(|p| p.trim().parse().ok());
    let body = json!({ "stage": form.stage, "percent_done": percent });
    let then = format!("/workbench/problems/{id}?done=progress");
    write(&s, &headers, form.csrf.as_deref(), Service::Verification, &path, body, &then).await
}

pub async fn extension(
    AxumState(s): AxumState<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ExtensionForm>,
) -> Response {
    let path = format!("/v1/problems/{id}/extensions");
    let body = json!({ "deadline": form.until, "reason": form.reason });
    let then = format!("/workbench/problems/{id}?done=extension");
    write(&s, &headers, form.csrf.as_deref(), Service::Assignment, &path, body, &then).await
}

#[derive(Deserialize)]
pub struct ExtensionForm {
    csrf: Option<String>,
    until: String,
    reason: String,
}

pub async fn dispute(
    AxumState(s): AxumState<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    let path = format!("/v1/problems/{id}/dispute");
    let body = json!({ "reason": form.reason.unwrap_or_default() });
    let then = format!("/workbench/problems/{id}?done=dispute");
    write(&s, &headers, form.csrf.as_deref(), Service::Assignment, &path, body, &then).await
}

pub async fn dismiss_dispute(
    AxumState(s): AxumState<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    let path = format!("/v1/problems/{id}/dispute/dismiss");
    let body = json!({ "reason": form.reason.unwrap_or_default() });
    write(&s, &headers, form.csrf.as_deref(), Service::Assignment, &path, body, "/workbench?done=decided").await
}

pub async fn decide_extension(
    AxumState(s): AxumState<State>,
    headers: HeaderMap,
    Path((id, decision)): Path<(String, String)>,
    Form(form): Form<ReasonForm>,
) -> Response {
    if !matches!(decision.as_str(), "grant" | "refuse") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let path = format!("/v1/extensions/{id}/{decision}");
    let reason = form.reason.filter(|r| !r.trim().is_empty()).unwrap_or_else(|| "granted".into());
    write(
        &s,
        &headers,
        form.csrf.as_deref(),
        Service::Assignment,
        &path,
        json!({ "reason": reason }),
        "/workbench?done=decided",
    )
    .await
}

pub struct RectificationView {
    reported: String,
    measures: String,
    photos: Vec<String>,
}

#[derive(Template)]
#[template(path = "problem.html")]
struct ProblemPage {
    frame: Frame,
    flash: Option<String>,
    id: String,
    site: String,
    status: &'static str,
    category: String,
    jurisdiction: String,
    description: String,
    deadline: String,
    sheet: String,
    address: String,
    credit_code: String,
    position: String,
    checked: String,
    map: Option<MiniMap>,
    inspector_photos: Vec<String>,
    history: Vec<(String, String)>,
    rectifications: Vec<RectificationView>,
    can_rectify: bool,
    can_verify: bool,
}

/// Where a site lies among the 39 key cities: an equirectangular sketch, as the public map is.
pub struct MiniMap {
    width: u32,
    height: u32,
    cities: Vec<(String, String)>,
    site: (String, String),
}

impl MiniMap {
    fn new(lat: f64, lon: f64) -> Self {
        let cities = shared::reference::cities();
        let lats = cities.iter().map(|c| c.lat).chain([lat]);
        let lons = cities.iter().map(|c| c.lon).chain([lon]);
        let (lat_min, lat_max) = lats.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        let (lon_min, lon_max) = lons.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        let (width, height, pad) = (320.0, 200.0, 10.0);
        // One scale for both axes, longitudes shrunk by the mean latitude's cosine.
        let shrink = ((lat_min + lat_max) / 2.0).to_radians().cos();
        let scale = ((width - 2.0 * pad) / ((lon_max - lon_min) * shrink).max(0.01))
            .min((height - 2.0 * pad) / (lat_max - lat_min).max(0.01));
        let at = |lat: f64, lon: f64| {
            (format!("{:.1}", pad + (lon - lon_min) * shrink * scale), format!("{:.1}", pad + (lat_max - lat) * scale))
        };
        Self {
            width: width as u32,
            height: height as u32,
            cities: cities.iter().map(|c| at(c.lat, c.lon)).collect(),
            site: at(lat, lon),
        }
    }
}

/// Where a photo of the evidence store is shown from: the origin's own path to intake.
fn photo_src(evidence: &Value) -> Option<String> {
    let named = evidence["sha256"].as_str().or_else(|| evidence["url"].as_str().and_then(|u| u.rsplit('/').next()))?;
    intake::evidence::valid_digest(named).map(|sha256| format!("/api/intake/v1/evidence/{sha256}"))
}

pub async fn problem(
    AxumState(s): AxumState<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<LedgerQuery>,
) -> Response {
    let lang = language(&headers, q.lang.as_deref());
    let session = match session(&s, &headers, lang).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let entry = match s.api.get(Service::Assignment, &format!("/v1/problems/{id}"), &session.token).await {
        Ok(entry) => entry,
        Err(e) => return refused(lang, e, Some(&session)),
    };
    let verification = s.api.get(Service::Verification, &format!("/v1/problems/{id}"), &session.token).await.ok();
    let reported = s.api.get(Service::Intake, &format!("/v1/problems/{id}"), &session.token).await.unwrap_or_default();
    let public =
        s.api.get(Service::Publication, &format!("/v1/problems/{id}"), &session.token).await.unwrap_or_default();
    let site = &reported["site"];
    let (lat, lon) = (site["lat"].as_f64(), site["lon"].as_f64());
    let history = public["history"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            (
                beijing(&h["at"]),
                format!("{} · {}", i18n::status_name(h["status"].as_str().unwrap_or_default(), lang), text(&h["what"])),
            )
        })
        .collect();
    let e = &entry["entry"];
    let status = verification.as_ref().and_then(|v| v["status"].as_str()).or(e["status"].as_str()).unwrap_or_default();
    let rectifications = verification
        .as_ref()
        .and_then(|v| v["rectifications"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|r| RectificationView {
            reported: beijing(&r["reported_at"]),
            measures: text(&r["measures"]),
            photos: r["evidence"].as_array().into_iter().flatten().filter_map(photo_src).collect(),
        })
        .collect();
    let rectifiable = matches!(status, "assigned" | "acknowledged" | "reopened" | "handed_over");
    let page = ProblemPage {
        frame: frame(lang, &text(&e["site_name"]), Some(&session), &format!("/workbench/problems/{id}")),
        flash: q.done.as_deref().map(|d| flash_text(d, lang).to_string()),
        id: id.clone(),
        site: text(&e["site_name"]),
        status: i18n::ledger_status_name(status, lang),
        category: i18n::category_name(e["category"].as_str().unwrap_or_default(), lang),
        jurisdiction: i18n::jurisdiction_name(e["jurisdiction"].as_str().unwrap_or_default(), lang),
        description: text(&e["description"]),
        deadline: text(&e["deadline"]),
        sheet: text(&e["handover_no"]),
        address: text(&site["address"]),
        credit_code: text(&site["credit_code"]),
        position: match (lat, lon) {
            (Some(lat), Some(lon)) => format!("{lat:.5}, {lon:.5} (WGS 84)"),
            _ => String::new(),
        },
        checked: beijing(&reported["checked_at"]),
        map: lat.zip(lon).map(|(lat, lon)| MiniMap::new(lat, lon)),
        inspector_photos: reported["evidence"].as_array().into_iter().flatten().filter_map(photo_src).collect(),
        history,
        rectifications,
        can_rectify: session.me.role == "local_gov" && rectifiable,
        can_verify: session.me.role == "verifier" && status == "rectification_reported",
    };
    html(StatusCode::OK, page, q.lang.as_deref())
}

/// A form with photos: its text fields, and its files with their types.
struct Upload {
    fields: std::collections::HashMap<String, String>,
    photos: Vec<(String, Vec<u8>)>,
}

async fn read_upload(mut multipart: Multipart) -> Result<Upload, String> {
    let mut upload = Upload { fields: Default::default(), photos: Vec::new() };
    while let Some(field) = multipart.next_field().await.map_err(|e| e.to_string())? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "photo" {
            let content_type = field.content_type().unwrap_or("application/octet-stream").to_string();
            let has_file = field.file_name().is_some_and(|f| !f.is_empty());
            let bytes = field.bytes().await.map_err(|e| e.to_string())?;
            if has_file && !bytes.is_empty() {
                upload.photos.push((content_type, bytes.to_vec()));
            }
        } else {
            upload.fields.insert(name, field.text().await.map_err(|e| e.to_string())?);
        }
    }
    Ok(upload)
}

/// Reads a form with photos, checks its CSRF token, stores the photos in the evidence store and
/// answers the session, the fields and the photos' references.
async fn photos_form(
    s: &State,
    headers: &HeaderMap,
    multipart: Multipart,
    lang: Lang,
) -> Result<(Session, std::collections::HashMap<String, String>, Vec<Value>), Response> {
    let session = session(s, headers, lang).await?;
    let upload = read_upload(multipart)
        .await
        .map_err(|e| message(StatusCode::BAD_REQUEST, lang, lang.t("表单有误", "Bad form"), &e, Some(&session)))?;
    check_csrf(&session, upload.fields.get("csrf").map(String::as_str), lang)?;
    let mut evidence = Vec::new();
    for (content_type, bytes) in upload.photos {
        let stored =
            s.api.upload(&session.token, &content_type, bytes).await.map_err(|e| refused(lang, e, Some(&session)))?;
        evidence.push(json!({ "url": stored["url"], "sha256": stored["sha256"] }));
    }
    Ok((session, upload.fields, evidence))
}

pub async fn rectify(
    AxumState(s): AxumState<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    multipart: Multipart,
) -> Response {
    let lang = language(&headers, None);
    let (session, fields, evidence) = match photos_form(&s, &headers, multipart, lang).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    // Reported now; a minute back so a clock a little behind the service's never says "future".
    let completed_at = (OffsetDateTime::now_utc() - time::Duration::minutes(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let body = json!({
        "measures": fields.get("measures").cloned().unwrap_or_default(),
        "evidence": evidence,
        "completed_at": completed_at,
    });
    let path = format!("/v1/problems/{id}/rectification");
    match s.api.post(Service::Verification, &path, Some(&session.token), &body).await {
        Ok(_) => Redirect::to(&format!("/workbench/problems/{id}?done=rectification")).into_response(),
        Err(e) => refused(lang, e, Some(&session)),
    }
}

pub async fn verdict(
    AxumState(s): AxumState<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    multipart: Multipart,
) -> Response {
    let lang = language(&headers, None);
    let (session, fields, evidence) = match photos_form(&s, &headers, multipart, lang).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let body = json!({
        "result": fields.get("result").cloned().unwrap_or_default(),
        "team": session.me.team,
        "note": fields.get("note").cloned().unwrap_or_default(),
        "evidence": evidence,
    });
    let path = format!("/v1/problems/{id}/verdict");
    match s.api.post(Service::Verification, &path, Some(&session.token), &body).await {
        Ok(_) => Redirect::to(&format!("/workbench/problems/{id}?done=verdict")).into_response(),
        Err(e) => refused(lang, e, Some(&session)),
    }
}

// ---- The campaign set-up (campaign office) ----

pub struct RoundRow {
    id: String,
    dates: String,
    city_count: usize,
    teams: String,
}

pub struct TeamRow {
    id: String,
    province: String,
    members: String,
}

pub struct PackageRow {
    city: String,
    ministry: String,
    unit: String,
    province: String,
}

#[derive(Template)]
#[template(path = "campaign.html")]
struct CampaignPage {
    frame: Frame,
    flash: Option<String>,
    rounds: Vec<RoundRow>,
    teams: Vec<TeamRow>,
    packages: Vec<PackageRow>,
}

fn items(value: &Value) -> impl Iterator<Item = &Value> {
    value["items"].as_array().into_iter().flatten()
}

fn joined(value: &Value) -> String {
    value.as_array().map(|a| a.iter().map(text).collect::<Vec<_>>().join("、")).unwrap_or_default()
}

/// Rounds, teams and city packages, read back from intake, with the forms that set them.
pub async fn campaign(AxumState(s): AxumState<State>, headers: HeaderMap, Query(q): Query<LedgerQuery>) -> Response {
    let lang = language(&headers, q.lang.as_deref());
    let session = match session(&s, &headers, lang).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let token = &session.token;
    let read = async {
        let rounds = s.api.get(Service::Intake, "/v1/rounds", token).await?;
        let teams = s.api.get(Service::Intake, "/v1/teams", token).await?;
        let packages = s.api.get(Service::Intake, "/v1/cities/packages", token).await?;
        Ok::<_, Refused>((rounds, teams, packages))
    };
    let (rounds, teams, packages) = match read.await {
        Ok(read) => read,
        Err(e) => return refused(lang, e, Some(&session)),
    };
    let page = CampaignPage {
        frame: frame(lang, lang.t("轮次与检查组", "Rounds and teams"), Some(&session), "/workbench/campaign"),
        flash: q.done.as_deref().map(|d| flash_text(d, lang).to_string()),
        rounds: items(&rounds)
            .map(|r| RoundRow {
                id: text(&r["id"]),
                dates: format!("{} – {}", text(&r["starts_on"]), text(&r["ends_on"])),
                city_count: r["cities"].as_array().map_or(0, Vec::len),
                teams: r["teams"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        let cities: Vec<String> = t["cities"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|c| i18n::jurisdiction_name(c.as_str().unwrap_or_default(), lang))
                            .collect();
                        format!("{}: {}", text(&t["team"]), cities.join("、"))
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            })
            .collect(),
        teams: items(&teams)
            .map(|t| TeamRow {
                id: text(&t["id"]),
                province: text(&t["home_province"]),
                members: joined(&t["members"]),
            })
            .collect(),
        packages: items(&packages)
            .map(|p| PackageRow {
                city: i18n::jurisdiction_name(p["city_code"].as_str().unwrap_or_default(), lang),
                ministry: text(&p["ministry_department"]),
                unit: text(&p["affiliated_unit"]),
                province: text(&p["provincial_department"]),
            })
            .collect(),
    };
    html(StatusCode::OK, page, q.lang.as_deref())
}

/// A comma-separated list from a form field (Chinese commas too).
fn list(field: Option<&String>) -> Vec<String> {
    field
        .map(|v| v.split([',', '，', '、', ' ']).map(str::trim).filter(|c| !c.is_empty()).map(str::to_string).collect())
        .unwrap_or_default()
}

/// Sets a round, a team, a team's cities or a city's package through intake's admin API.
pub async fn set_up(
    AxumState(s): AxumState<State>,
    headers: HeaderMap,
    Path(what): Path<String>,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> Response {
    let lang = language(&headers, None);
    let session = match session(&s, &headers, lang).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    if let Err(response) = check_csrf(&session, form.get("csrf").map(String::as_str), lang) {
        return response;
    }
    let field = |name: &str| form.get(name).map(|v| v.trim().to_string()).unwrap_or_default();
    let segment = |name: &str| form_urlencoded::byte_serialize(field(name).as_bytes()).collect::<String>();
    let (path, body) = match what.as_str() {
        "round" => (
            format!("/v1/rounds/{}", segment("id")),
            json!({ "starts_on": field("starts_on"), "ends_on": field("ends_on"), "kind": "regular",
                    "cities": list(form.get("cities")) }),
        ),
        "team" => (
            format!("/v1/teams/{}", segment("id")),
            json!({ "home_province": field("home_province"), "members": list(form.get("members")) }),
        ),
        "assignment" => (
            format!("/v1/rounds/{}/teams/{}", segment("round"), segment("team")),
            json!({ "cities": list(form.get("cities")) }),
        ),
        "package" => (
            format!("/v1/cities/{}/package", segment("city")),
            json!({ "ministry_department": field("ministry_department"), "affiliated_unit": field("affiliated_unit"),
                    "provincial_department": field("provincial_department") }),
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    match s.api.put(Service::Intake, &path, &session.token, &body).await {
        Ok(_) => Redirect::to("/workbench/campaign?done=saved").into_response(),
        Err(e) => refused(lang, e, Some(&session)),
    }
}
