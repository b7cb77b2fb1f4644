//! Open311 GeoReport v2 (<https://wiki.open311.org/GeoReport_v2>), free of I/O: the documents as
//! the specification writes them in JSON and XML, W3C datetimes, the form a client posts, and
//! how a posted request becomes a site check or a lead.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Value};
use shared::clock::SHANGHAI;
use shared::error::{ApiError, FieldError, Validator};
use shared::reference::{self, Category, City};
use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, OffsetDateTime, Time};
use uuid::Uuid;

use crate::domain::{self, EvidenceItem, InspectionRequest, ProblemInput, SiteInput};

pub const SPECIFICATION: &str = "http://wiki.open311.org/GeoReport_v2";
/// When this interface last changed, for the discovery document.
pub const CHANGESET: &str = "2026-11-20T00:00:00+08:00";
/// GET requests covers at most this span (the specification's 90 days)…
pub const MAX_SPAN_DAYS: i64 = 90;
/// …and answers at most this many requests.
pub const MAX_REQUESTS: i64 = 1000;

/// The representation a client asks for by the resource's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    /// `requests.json` → (`requests`, JSON). Anything else is no Open311 resource.
    pub fn split(file: &str) -> Option<(&str, Format)> {
        let (name, extension) = file.rsplit_once('.')?;
        let format = match extension {
            "json" => Format::Json,
            "xml" => Format::Xml,
            _ => return None,
        };
        (!name.is_empty()).then_some((name, format))
    }

    /// The format a malformed resource name is answered in: XML when it asks for XML.
    pub fn guess(file: &str) -> Format {
        if file.ends_with(".xml") { Format::Xml } else { Format::Json }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json; charset=utf-8",
            Format::Xml => "text/xml; charset=utf-8",
        }
    }
}

/// A value of an Open311 document, rendered alike in JSON and XML.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Text(String),
    Int(i64),
    Num(f64),
    Bool(bool),
    /// An object in JSON; child elements in XML, in this order.
    Record(Vec<(&'static str, Node)>),
    /// An array in JSON; in XML, one element named by the first member per item.
    List(&'static str, Vec<Node>),
}

impl Node {
    pub fn text(value: impl Into<String>) -> Node {
        Node::Text(value.into())
    }

    pub fn opt_text(value: Option<impl Into<String>>) -> Node {
        value.map_or(Node::Null, |v| Node::Text(v.into()))
    }

    pub fn to_json(&self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Text(s) => Value::String(s.clone()),
            Node::Int(i) => Value::from(*i),
            Node::Num(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
            Node::Bool(b) => Value::Bool(*b),
            Node::Record(fields) => {
                Value::Object(fields.iter().map(|(k, v)| (k.to_string(), v.to_json())).collect::<Map<_, _>>())
            }
            Node::List(_, items) => Value::Array(items.iter().map(Node::to_json).collect()),
        }
    }

    fn write_children(&self, out: &mut String) {
        match self {
            Node::Record(fields) => fields.iter().for_each(|(name, value)| value.write_element(name, out)),
            Node::List(item, items) => items.iter().for_each(|value| value.write_element(item, out)),
            leaf => out.push_str(&escape(&leaf.scalar())),
        }
    }

    fn write_element(&self, name: &str, out: &mut String) {
        if *self == Node::Null {
            let _ = write!(out, "<{name}/>");
            return;
        }
        let _ = write!(out, "<{name}>");
        self.write_children(out);
        let _ = write!(out, "</{name}>");
    }

    fn scalar(&self) -> String {
        match self {
            Node::Text(s) => s.clone(),
            Node::Int(i) => i.to_string(),
            Node::Num(n) => n.to_string(),
            Node::Bool(b) => b.to_string(),
            _ => String::new(),
        }
    }
}

/// A whole response: the XML root element's name and what it holds (JSON has no root).
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub root: &'static str,
    pub body: Node,
}

impl Document {
    pub fn list(root: &'static str, item: &'static str, items: Vec<Node>) -> Document {
        Document { root, body: Node::List(item, items) }
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json => self.body.to_json().to_string(),
            Format::Xml => {
                let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
                let _ = write!(out, "<{}>", self.root);
                self.body.write_children(&mut out);
                let _ = writeln!(out, "</{}>", self.root);
                out
            }
        }
    }
}

/// Escapes text for XML, dropping the characters XML 1.0 cannot carry at all.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// A W3C datetime with its zone, in Asia/Shanghai, to the second: `2019-05-09T10:20:00+08:00`.
pub fn w3c(at: OffsetDateTime) -> String {
    let at = at.to_offset(SHANGHAI);
    let at = at.replace_nanosecond(0).unwrap_or(at);
    at.format(&Rfc3339).expect("every Shanghai time formats as RFC 3339")
}

/// Reads a W3C datetime (RFC 3339, with its zone) or a bare date, which means that day in
/// Asia/Shanghai: its first instant, or with `end_of_day` its last.
pub fn parse_w3c(value: &str, end_of_day: bool) -> Option<OffsetDateTime> {
    let value = value.trim();
    if let Ok(at) = OffsetDateTime::parse(value, &Rfc3339) {
        return Some(at);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = Date::parse(value, &format).ok()?;
    let time = if end_of_day { Time::from_hms_nano(23, 59, 59, 999_999_999).ok()? } else { Time::MIDNIGHT };
    Some(day.with_time(time).assume_offset(SHANGHAI))
}

/// The language of names and descriptions: `locale` (`zh-CN`, `en`) if given, else the first
/// language of `Accept-Language`; Chinese by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub fn choose(locale: Option<&str>, accept_language: Option<&str>) -> Lang {
        let first = locale.or_else(|| accept_language.and_then(|a| a.split(',').next())).unwrap_or("zh-CN");
        if first.trim().to_ascii_lowercase().starts_with("en") { Lang::En } else { Lang::Zh }
    }

    fn pick<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }
}

/// The group a category is listed under.
fn group(code: &str) -> (&'static str, &'static str) {
    match code {
        "scattered_polluting"
        | "coal_boiler"
        | "special_emission_limit"
        | "small_thermal_power"
        | "industrial_kiln"
        | "vocs"
        | "exceedance"
        | "online_monitoring" => ("工业污染", "industry"),
        "emergency_plan" => ("重污染天气应对", "heavy pollution response"),
        "coal_to_gas" => ("清洁取暖", "clean heating"),
        "dust" | "open_burning" => ("面源污染", "area sources"),
        "diesel_vehicle" => ("移动源", "mobile sources"),
        _ => ("其他", "other"),
    }
}

pub fn service_name(category: &Category, lang: Lang) -> String {
    lang.pick(&category.name_zh, &category.name_en).to_string()
}

/// One entry of GET services: a category of the campaign as a service.
pub fn service(category: &Category, lang: Lang) -> Node {
    let (group_zh, group_en) = group(&category.code);
    Node::Record(vec![
        ("service_code", Node::text(&category.code)),
        ("service_name", Node::text(service_name(category, lang))),
        ("description", Node::text(format!("{} — {}", category.name_zh, category.name_en))),
        ("metadata", Node::Bool(true)),
        ("type", Node::text("realtime")),
        ("keywords", Node::text(format!("{}, {}, {}", category.code, category.name_zh, category.name_en))),
        ("group", Node::text(lang.pick(group_zh, group_en))),
    ])
}

pub fn services(lang: Lang) -> Document {
    Document::list("services", "service", reference::categories().iter().map(|c| service(c, lang)).collect())
}

struct AttributeSpec {
    code: &'static str,
    datatype: &'static str,
    description: (&'static str, &'static str),
    datatype_description: (&'static str, &'static str),
    values: &'static [(&'static str, &'static str, &'static str)],
}

/// The attributes every service takes. None is required by the specification's rules; for an
/// inspector's report a site name is needed (`site_name`, else `address_string`).
const ATTRIBUTES: &[AttributeSpec] = &[
    AttributeSpec {
        code: "severity",
        datatype: "singlevaluelist",
        description: ("问题严重程度", "How serious the problem is"),
        datatype_description: ("默认为一般", "general when not given"),
        values: &[("minor", "轻微", "minor"), ("general", "一般", "general"), ("serious", "严重", "serious")],
    },
    AttributeSpec {
        code: "site_name",
        datatype: "string",
        description: ("点位或企业名称", "Name of the site or enterprise"),
        datatype_description: (
            "督查组上报时必填（或填写 address_string）",
            "needed in an inspector's report (or address_string)",
        ),
        values: &[],
    },
    AttributeSpec {
        code: "credit_code",
        datatype: "string",
        description: ("统一社会信用代码", "Unified social credit code of the enterprise"),
        datatype_description: ("18 位，GB 32100-2015", "18 characters, GB 32100-2015"),
        values: &[],
    },
    AttributeSpec {
        code: "county_code",
        datatype: "string",
        description: ("所在区县代码", "Code of the county the site is in"),
        datatype_description: (
            "6 位 GB/T 2260 代码，须属于 jurisdiction_id 所指城市",
            "6-digit GB/T 2260 code of a county of the city",
        ),
        values: &[],
    },
];

pub fn service_definition(category: &Category, lang: Lang) -> Document {
    let attributes = ATTRIBUTES
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let values = a
                .values
                .iter()
                .map(|(key, zh, en)| {
                    Node::Record(vec![("key", Node::text(*key)), ("name", Node::text(lang.pick(zh, en)))])
                })
                .collect();
            let mut fields = vec![
                ("variable", Node::Bool(true)),
                ("code", Node::text(a.code)),
                ("datatype", Node::text(a.datatype)),
                ("required", Node::Bool(false)),
                ("datatype_description", Node::text(lang.pick(a.datatype_description.0, a.datatype_description.1))),
                ("order", Node::Int(i as i64 + 1)),
                ("description", Node::text(lang.pick(a.description.0, a.description.1))),
            ];
            if !a.values.is_empty() {
                fields.push(("values", Node::List("value", values)));
            }
            Node::Record(fields)
        })
        .collect();
    Document {
        root: "service_definition",
        body: Node::Record(vec![
            ("service_code", Node::text(&category.code)),
            ("attributes", Node::List("attribute", attributes)),
        ]),
    }
}

/// The discovery document: where the endpoint is and what it speaks.
pub fn discovery(endpoint_url: &str) -> Document {
    let endpoint = Node::Record(vec![
        ("specification", Node::text(SPECIFICATION)),
        ("url", Node::text(endpoint_url)),
        ("changeset", Node::text(CHANGESET)),
        ("type", Node::text("production")),
        ("formats", Node::List("format", vec![Node::text("text/xml"), Node::text("application/json")])),
    ]);
    Document {
        root: "discovery",
        body: Node::Record(vec![
            ("changeset", Node::text(CHANGESET)),
            ("contact", Node::text("强化监督工作办公室 · the campaign office")),
            (
                "key_service",
                Node::text(
                    "Inspectors post with their Skyledger token as api_key (skyledger token create --role inspector \
                     --team T); complaint channels get a key from the campaign office. GET needs no key. \
                     jurisdiction_id is the code of one of the 39 key cities.",
                ),
            ),
            ("endpoints", Node::List("endpoint", vec![endpoint])),
        ]),
    }
}

/// The answer to a POST: the id to follow the request by.
pub fn posted(id: Uuid, notice: &str) -> Document {
    Document::list(
        "service_requests",
        "request",
        vec![Node::Record(vec![
            ("service_request_id", Node::text(id.to_string())),
            ("service_notice", Node::text(notice)),
            ("account_id", Node::Null),
        ])],
    )
}

/// A service request as GET requests shows it: public fields only.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestView {
    pub id: Uuid,
    pub closed: bool,
    pub status_notes: Option<String>,
    pub category: String,
    pub description: Option<String>,
    pub requested: OffsetDateTime,
    pub updated: OffsetDateTime,
    pub address: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub media_url: Option<String>,
}

pub fn request(view: &RequestView, lang: Lang) -> Node {
    let name = reference::category(&view.category).map(|c| service_name(c, lang));
    Node::Record(vec![
        ("service_request_id", Node::text(view.id.to_string())),
        ("status", Node::text(if view.closed { "closed" } else { "open" })),
        ("status_notes", Node::opt_text(view.status_notes.clone())),
        ("service_name", Node::opt_text(name)),
        ("service_code", Node::text(&view.category)),
        ("description", Node::opt_text(view.description.clone())),
        ("agency_responsible", Node::Null),
        ("service_notice", Node::Null),
        ("requested_datetime", Node::text(w3c(view.requested))),
        ("updated_datetime", Node::text(w3c(view.updated))),
        ("expected_datetime", Node::Null),
        ("address", Node::opt_text(view.address.clone())),
        ("address_id", Node::Null),
        ("zipcode", Node::Null),
        ("lat", view.lat.map_or(Node::Null, Node::Num)),
        ("long", view.lon.map_or(Node::Null, Node::Num)),
        ("media_url", Node::opt_text(view.media_url.clone())),
    ])
}

pub fn requests(views: &[RequestView], lang: Lang) -> Document {
    Document::list("service_requests", "request", views.iter().map(|v| request(v, lang)).collect())
}

/// An error as the specification writes it: one `error` per thing wrong, with the HTTP status as
/// its code.
pub fn errors(error: &ApiError) -> Document {
    let code = Node::Int(i64::from(error.status().as_u16()));
    let descriptions: Vec<String> = match error {
        ApiError::NotFound(what) => vec![format!("{what} not found")],
        ApiError::Internal(_) => vec!["an internal error occurred; it has been logged".into()],
        ApiError::PayloadTooLarge => vec!["the request body is too large".into()],
        ApiError::Unavailable { detail, .. } => vec![detail.clone()],
        other => other
            .field_errors()
            .into_iter()
            .map(|e| if e.field.is_empty() { e.detail } else { format!("{}: {}", e.field, e.detail) })
            .collect(),
    };
    Document::list(
        "errors",
        "error",
        descriptions
            .into_iter()
            .map(|d| Node::Record(vec![("code", code.clone()), ("description", Node::Text(d))]))
            .collect(),
    )
}

/// A POSTed form: its fields (the first value of each) and its `attribute[CODE]` values.
#[derive(Debug, Default, Clone)]
pub struct RequestForm {
    fields: BTreeMap<String, String>,
    attributes: BTreeMap<String, Vec<String>>,
}

impl RequestForm {
    pub fn parse(body: &[u8]) -> RequestForm {
        let mut form = RequestForm::default();
        for (key, value) in form_urlencoded::parse(body) {
            let value = value.trim().to_string();
            match key.strip_prefix("attribute[").and_then(|k| k.split_once(']')) {
                Some((code, _)) => form.attributes.entry(code.to_string()).or_default().push(value),
                None => {
                    form.fields.entry(key.into_owned()).or_insert(value);
                }
            }
        }
        form
    }

    /// A field, if given and not blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn attribute(&self, code: &str) -> Option<&str> {
        self.attributes.get(code).and_then(|v| v.first()).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn attributes_json(&self) -> Value {
        serde_json::to_value(&self.attributes).expect("attributes serialise")
    }
}

/// Who complained: internal, for the covering teams only.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Complainant {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub device_id: Option<String>,
    pub account_id: Option<String>,
}

/// A POSTed service request, checked.
#[derive(Debug, Clone)]
pub struct Submission {
    pub city: &'static City,
    pub category: &'static Category,
    pub county_code: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub address: Option<String>,
    pub description: String,
    pub media_url: Option<String>,
    pub severity: String,
    pub site_name: Option<String>,
    pub credit_code: Option<String>,
    pub complainant: Complainant,
}

fn bounded(v: &mut Validator, form: &RequestForm, name: &str, max: usize) -> Option<String> {
    let value = form.get(name)?;
    v.check(value.chars().count() <= max, name, format!("at most {max} characters"));
    Some(value.to_string())
}

/// Checks a POSTed form. An unknown `jurisdiction_id` is answered 404, as for any resource of a
/// jurisdiction this server does not serve; everything else wrong is named at once (422).
pub fn read_submission(form: &RequestForm) -> Result<Submission, ApiError> {
    let code = form
        .get("jurisdiction_id")
        .ok_or_else(|| ApiError::invalid("jurisdiction_id", "the code of one of the 39 key cities"))?;
    let city = reference::city(code).ok_or_else(|| ApiError::not_found(format!("jurisdiction {code}")))?;
    let mut v = Validator::new();
    let category = match form.get("service_code") {
        None => {
            v.fail("service_code", "required: one of the codes GET services lists");
            None
        }
        Some(code) => {
            let found = reference::category(code);
            v.check(found.is_some(), "service_code", format!("{code:?} is not a service of this server"));
            found
        }
    };
    let mut coordinate = |name: &str, range: std::ops::RangeInclusive<f64>| -> Option<f64> {
        let raw = form.get(name)?;
        match raw.parse::<f64>() {
            Ok(x) if range.contains(&x) => Some(x),
            _ => {
                v.fail(name, format!("a WGS 84 coordinate between {} and {}", range.start(), range.end()));
                None
            }
        }
    };
    let lat = coordinate("lat", -90.0..=90.0);
    let lon = coordinate("long", -180.0..=180.0);
    let (lat_given, lon_given) = (form.get("lat").is_some(), form.get("long").is_some());
    if lat_given != lon_given {
        v.fail(if lat_given { "long" } else { "lat" }, "lat and long go together");
    }
    let address = bounded(&mut v, form, "address_string", 500);
    if !lat_given && !lon_given && address.is_none() {
        v.fail("lat", "a location is required: lat and long, or address_string");
    }
    let description = form.get("description").unwrap_or_default().to_string();
    v.check(
        !description.is_empty() && description.len() <= 4000,
        "description",
        "a description of the problem is required (at most 4000 bytes)",
    );
    let media_url = bounded(&mut v, form, "media_url", 2000);
    if let Some(url) = &media_url {
        v.check(url.starts_with("https://") || url.starts_with("http://"), "media_url", "an http(s) URL");
    }
    let severity = form.attribute("severity").unwrap_or("general").to_string();
    v.check(
        domain::SEVERITIES.contains(&severity.as_str()),
        "attribute[severity]",
        format!("one of {}", domain::SEVERITIES.join(", ")),
    );
    let county_code = form.attribute("county_code").map(str::to_string);
    if let Some(county) = &county_code {
        v.check(
            reference::city_of_county(county).is_some_and(|c| c.code == city.code),
            "attribute[county_code]",
            format!("{county} is not a county of {}", city.code),
        );
    }
    let site_name = form.attribute("site_name").map(str::to_string);
    if let Some(name) = &site_name {
        v.check(name.len() <= 200, "attribute[site_name]", "at most 200 bytes");
    }
    let credit_code = form.attribute("credit_code").map(str::to_string);
    if let Some(code) = &credit_code {
        v.check(
            domain::is_valid_credit_code(code),
            "attribute[credit_code]",
            "not a valid unified social credit code (GB 32100-2015)",
        );
    }
    let email = bounded(&mut v, form, "email", 200);
    if let Some(email) = &email {
        v.check(email.contains('@'), "email", "an e-mail address");
    }
    let phone = bounded(&mut v, form, "phone", 40);
    if let Some(phone) = &phone {
        v.check(
            phone.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c)),
            "phone",
            "digits, spaces, +, -, ( and ) only",
        );
    }
    let complainant = Complainant {
        first_name: bounded(&mut v, form, "first_name", 100),
        last_name: bounded(&mut v, form, "last_name", 100),
        email,
        phone,
        device_id: bounded(&mut v, form, "device_id", 200),
        account_id: bounded(&mut v, form, "account_id", 200),
    };
    v.finish()?;
    Ok(Submission {
        city,
        category: category.expect("checked above"),
        county_code,
        lat,
        lon,
        address,
        description,
        media_url,
        severity,
        site_name,
        credit_code,
        complainant,
    })
}

/// The SHA-256 of evidence served by Skyledger, read from its URL (`…/v1/evidence/{sha256}`).
pub fn evidence_sha256(url: &str) -> Option<String> {
    let last = url.trim_end_matches('/').rsplit_once("/v1/evidence/")?.1;
    (last.len() == 64 && last.bytes().all(|b| b.is_ascii_hexdigit())).then(|| last.to_ascii_lowercase())
}

/// An inspector's report as the site check it records: one problem at the posted place.
pub fn inspection(
    submission: &Submission,
    round: &str,
    team: &str,
    checked_at: OffsetDateTime,
) -> Result<InspectionRequest, ApiError> {
    let mut v = Validator::new();
    let site_name = submission.site_name.clone().or_else(|| submission.address.clone());
    v.check(site_name.is_some(), "attribute[site_name]", "an inspector's report names its site (or address_string)");
    v.check(submission.lat.is_some(), "lat", "an inspector's report gives lat and long");
    v.finish()?;
    let evidence = submission
        .media_url
        .iter()
        .map(|url| EvidenceItem { url: url.clone(), sha256: evidence_sha256(url), internal: false })
        .collect();
    Ok(InspectionRequest {
        id: Uuid::now_v7(),
        round: round.to_string(),
        team: team.to_string(),
        city_code: submission.city.code.clone(),
        county_code: submission.county_code.clone(),
        checked_at: checked_at.to_offset(SHANGHAI),
        site: SiteInput {
            name: site_name.expect("checked above"),
            credit_code: submission.credit_code.clone(),
            address: submission.address.clone(),
            lat: submission.lat.expect("checked above"),
            lon: submission.lon.expect("checked above"),
            coordinate_system: Default::default(),
            accuracy_m: None,
            position_flag: None,
        },
        problems: vec![ProblemInput {
            id: Uuid::now_v7(),
            category: submission.category.code.clone(),
            severity: submission.severity.clone(),
            description: submission.description.clone(),
            evidence,
        }],
    })
}

/// The form parameter a field of the JSON API corresponds to, so a refusal from the recording
/// path names what the Open311 client sent.
pub fn form_field(json_field: &str) -> String {
    match json_field {
        "city_code" => "jurisdiction_id",
        "county_code" => "attribute[county_code]",
        "site.name" => "attribute[site_name]",
        "site.credit_code" => "attribute[credit_code]",
        "site.address" => "address_string",
        "site.lat" => "lat",
        "site.lon" => "long",
        "problems[0].category" => "service_code",
        "problems[0].severity" => "attribute[severity]",
        "problems[0].description" => "description",
        "problems[0].evidence" => "media_url",
        "team" | "round" => "api_key",
        other => other,
    }
    .to_string()
}

/// The same error with its fields named as the Open311 form names them.
pub fn in_form_terms(error: ApiError) -> ApiError {
    let rename = |e: FieldError| FieldError::new(form_field(&e.field), e.detail);
    match error {
        ApiError::Invalid(errors) => ApiError::Invalid(errors.into_iter().map(rename).collect()),
        ApiError::Malformed(e) => ApiError::Malformed(rename(e)),
        ApiError::Forbidden(e) => ApiError::Forbidden(rename(e)),
        ApiError::Conflict(e) => ApiError::Conflict(rename(e)),
        other => other,
    }
}

/// The filters of GET requests, read from its query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestQuery {
    /// Given ids override every other filter, as the specification says.
    pub ids: Vec<Uuid>,
    pub categories: Vec<String>,
    pub from: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// `Some(true)` closed only, `Some(false)` open only.
    pub closed: Option<bool>,
    pub city: Option<String>,
}

fn list(value: Option<&str>) -> Vec<String> {
    value.unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// Reads the query of GET requests. Without dates it covers the last 90 days; a range may not
/// span more than 90 days.
pub fn read_query(params: &BTreeMap<String, String>, now: OffsetDateTime) -> Result<RequestQuery, ApiError> {
    let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.trim().is_empty());
    let mut v = Validator::new();
    let city = match get("jurisdiction_id") {
        Some(code) if reference::city(code).is_none() => {
            return Err(ApiError::not_found(format!("jurisdiction {code}")));
        }
        other => other.map(str::to_string),
    };
    let mut ids = Vec::new();
    for raw in list(get("service_request_id")) {
        match raw.parse::<Uuid>() {
            Ok(id) => ids.push(id),
            Err(_) => v.fail("service_request_id", format!("{raw:?} is not a service request id")),
        }
    }
    let categories = list(get("service_code"));
    for code in &categories {
        v.check(
            reference::category(code).is_some(),
            "service_code",
            format!("{code:?} is not a service of this server"),
        );
    }
    let mut date = |name: &str, end_of_day: bool| {
        let raw = get(name)?;
        let parsed = parse_w3c(raw, end_of_day);
        v.check(parsed.is_some(), name, "a W3C datetime with its zone, e.g. 2019-05-09T10:20:00+08:00");
        parsed
    };
    let start = date("start_date", false);
    let end = date("end_date", true);
    let span = Duration::days(MAX_SPAN_DAYS);
    let (from, until) = match (start, end) {
        (Some(s), Some(e)) => {
            v.check(s <= e, "end_date", "must not be before start_date");
            v.check(e - s <= span, "end_date", format!("a range spans at most {MAX_SPAN_DAYS} days"));
            (Some(s), Some(e))
        }
        (Some(s), None) => (Some(s), Some(s + span)),
        (None, Some(e)) => (Some(e - span), Some(e)),
        (None, None) => (Some(now - span), None),
    };
    let mut closed = None;
    let statuses = list(get("status"));
    for status in &statuses {
        v.check(status == "open" || status == "closed", "status", "open, closed, or both separated by a comma");
    }
    if statuses.iter().all(|s| s == "open") && !statuses.is_empty() {
        closed = Some(false);
    } else if statuses.iter().all(|s| s == "closed") && !statuses.is_empty() {
        closed = Some(true);
    }
    v.finish()?;
    if !ids.is_empty() {
        return Ok(RequestQuery { ids, ..Default::default() });
    }
    Ok(RequestQuery { ids, categories, from, until, closed, city })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn form(body: &str) -> RequestForm {
        RequestForm::parse(body.as_bytes())
    }

    const GOOD: &str = "api_key=k&jurisdiction_id=130500&service_code=dust&lat=37.07&long=114.5\
        &description=%E5%B7%A5%E5%9C%B0%E6%89%AC%E5%B0%98&attribute[severity]=serious\
        &attribute%5Bsite_name%5D=%E6%9F%90%E5%B7%A5%E5%9C%B0&attribute[county_code]=130502&phone=13800138000";

    fn fields(e: ApiError) -> Vec<String> {
        e.field_errors().into_iter().map(|f| f.field).collect()
    }

    #[test]
    fn resources_name_their_format() {
        assert_eq!(Format::split("requests.json"), Some(("requests", Format::Json)));
        assert_eq!(Format::split("dust.xml"), Some(("dust", Format::Xml)));
        assert_eq!(Format::split("requests"), None);
        assert_eq!(Format::split("requests.csv"), None);
        assert_eq!(Format::split(".json"), None);
        assert_eq!(Format::guess("x.xml"), Format::Xml);
    }

    #[test]
    fn documents_render_as_the_specification_writes_them() {
        let doc = posted(Uuid::nil(), "a < b & c");
        let json: Value = serde_json::from_str(&doc.render(Format::Json)).unwrap();
        assert_eq!(json[0]["service_request_id"], Uuid::nil().to_string());
        assert!(json[0]["account_id"].is_null());
        let xml = doc.render(Format::Xml);
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<service_requests><request>"), "{xml}");
        assert!(xml.contains("<service_notice>a &lt; b &amp; c</service_notice><account_id/>"), "{xml}");
        assert_eq!(escape("a\u{1}b\n"), "ab\n", "characters XML cannot carry are dropped");
    }

    #[test]
    fn services_list_the_fourteen_categories_in_either_language() {
        let zh = services(Lang::Zh).body.to_json();
        assert_eq!(zh.as_array().unwrap().len(), 14);
        assert_eq!(zh[0]["service_code"], "scattered_polluting");
        assert_eq!(zh[0]["service_name"], "散乱污");
        assert_eq!(zh[0]["metadata"], true);
        let en = services(Lang::En).body.to_json();
        assert_eq!(en[0]["service_name"], "Scattered polluting enterprises");
        assert_eq!(Lang::choose(None, Some("en-GB,en;q=0.8")), Lang::En);
        assert_eq!(Lang::choose(Some("zh-CN"), Some("en")), Lang::Zh);
        assert_eq!(Lang::choose(None, None), Lang::Zh);
        let definition = service_definition(reference::category("dust").unwrap(), Lang::En).body.to_json();
        assert_eq!(definition["attributes"][0]["code"], "severity");
        assert_eq!(definition["attributes"][0]["values"][2]["key"], "serious");
    }

    #[test]
    fn datetimes_are_w3c_with_their_zone() {
        assert_eq!(w3c(datetime!(2019-05-09 02:20:00.5 UTC)), "2019-05-09T10:20:00+08:00");
        assert_eq!(parse_w3c("2019-05-09T10:20:00+08:00", false), Some(datetime!(2019-05-09 02:20 UTC)));
        assert_eq!(parse_w3c("2019-05-09T02:20:00Z", false), Some(datetime!(2019-05-09 02:20 UTC)));
        assert_eq!(parse_w3c("2019-05-09", false), Some(datetime!(2019-05-08 16:00 UTC)));
        assert_eq!(parse_w3c("2019-05-09", true), Some(datetime!(2019-05-09 15:59:59.999999999 UTC)));
        assert_eq!(parse_w3c("2019-05-09T10:20:00", false), None, "a datetime needs its zone");
    }

    #[test]
    fn a_posted_form_is_read_with_its_attributes() {
        let form = form(GOOD);
        assert_eq!(form.get("api_key"), Some("k"));
        assert_eq!(form.attribute("site_name"), Some("某工地"));
        let submission = read_submission(&form).unwrap();
        assert_eq!(submission.city.code, "130500");
        assert_eq!(submission.severity, "serious");
        assert_eq!(submission.complainant.phone.as_deref(), Some("13800138000"));
        let inspection = inspection(&submission, "R1", "T-370", datetime!(2019-05-09 02:20 UTC)).unwrap();
        assert_eq!(inspection.site.name, "某工地");
        assert_eq!(inspection.problems[0].category, "dust");
        assert_eq!(inspection.county_code.as_deref(), Some("130502"));
        assert!(domain::validate_inspection(&inspection).is_clean());
    }

    #[test]
    fn every_bad_parameter_is_named_as_the_client_sent_it() {
        let unknown = read_submission(&form("jurisdiction_id=999900&service_code=dust")).unwrap_err();
        assert_eq!(unknown.status(), 404);
        let missing = read_submission(&form("service_code=dust")).unwrap_err();
        assert_eq!(fields(missing), ["jurisdiction_id"]);
        let bad = read_submission(&form(
            "jurisdiction_id=130500&service_code=littering&lat=91&long=114&attribute[severity]=awful\
             &attribute[county_code]=130402&phone=call-me-maybe",
        ))
        .unwrap_err();
        assert_eq!(
            fields(bad),
            ["service_code", "lat", "description", "attribute[severity]", "attribute[county_code]", "phone"]
        );
        let nowhere = read_submission(&form("jurisdiction_id=130500&service_code=dust&description=x")).unwrap_err();
        assert_eq!(fields(nowhere), ["lat"]);
        // A complaint may give an address alone; an inspector's report needs coordinates.
        let by_address =
            read_submission(&form("jurisdiction_id=130500&service_code=dust&description=x&address_string=y")).unwrap();
        assert_eq!(fields(inspection(&by_address, "R1", "T", OffsetDateTime::now_utc()).unwrap_err()), ["lat"]);
    }

    #[test]
    fn refusals_of_the_recording_path_are_renamed_to_form_parameters() {
        let e = in_form_terms(ApiError::Invalid(vec![
            FieldError::new("site.lat", "x"),
            FieldError::new("problems[0].description", "y"),
            FieldError::new("county_code", "z"),
        ]));
        assert_eq!(fields(e), ["lat", "description", "attribute[county_code]"]);
        assert_eq!(fields(in_form_terms(ApiError::forbidden("city_code", "no"))), ["jurisdiction_id"]);
    }

    #[test]
    fn errors_carry_the_status_as_their_code() {
        let doc = errors(&ApiError::Invalid(vec![FieldError::new("lat", "bad"), FieldError::new("long", "bad")]));
        let json = doc.body.to_json();
        assert_eq!(
            json,
            serde_json::json!([{ "code": 422, "description": "lat: bad" }, { "code": 422, "description": "long: bad" }])
        );
        let xml = errors(&ApiError::not_found("jurisdiction 999900")).render(Format::Xml);
        assert!(xml.contains("<errors><error><code>404</code><description>jurisdiction 999900 not found</description></error></errors>"), "{xml}");
    }

    #[test]
    fn evidence_urls_give_their_digest() {
        let sha = "a".repeat(64);
        assert_eq!(evidence_sha256(&format!("http://h:8081/v1/evidence/{sha}")), Some(sha));
        assert_eq!(evidence_sha256("http://h/v1/evidence/zz"), None);
        assert_eq!(evidence_sha256("http://h/photo.jpg"), None);
    }

    #[test]
    fn the_query_filters_and_its_90_day_window() {
        let now = datetime!(2026-11-20 00:00 UTC);
        let q = |pairs: &[(&str, &str)]| {
            read_query(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), now)
        };
        let default = q(&[]).unwrap();
        assert_eq!((default.from, default.until), (Some(now - Duration::days(90)), None));
        let filtered = q(&[("service_code", "dust,vocs"), ("status", "closed"), ("start_date", "2026-11-01")]).unwrap();
        assert_eq!(filtered.categories, ["dust", "vocs"]);
        assert_eq!(filtered.closed, Some(true));
        assert_eq!(filtered.until, Some(parse_w3c("2026-11-01", false).unwrap() + Duration::days(90)));
        assert_eq!(q(&[("status", "open,closed")]).unwrap().closed, None);
        let id = Uuid::now_v7();
        let by_id = q(&[("service_request_id", &format!("{id}")), ("status", "closed")]).unwrap();
        assert_eq!((by_id.ids, by_id.closed, by_id.from), (vec![id], None, None), "ids override the rest");
        let too_long = q(&[("start_date", "2026-01-01"), ("end_date", "2026-11-01")]).unwrap_err();
        assert_eq!(fields(too_long), ["end_date"]);
        assert_eq!(
            fields(q(&[("status", "pending"), ("start_date", "yesterday")]).unwrap_err()),
            ["start_date", "status"]
        );
        assert_eq!(q(&[("jurisdiction_id", "999900")]).unwrap_err().status(), 404);
    }
}
