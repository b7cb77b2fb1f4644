//! Notification's rules, free of I/O: which notices there are and what each says (from the
//! template files), who gets them, how a webhook is signed (Standard Webhooks 1.0), what a
//! receiver's answer means, when to try again, quiet hours, reminder dates, receipt links, and
//! the handover sheet as XLSX and CSV.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use shared::error::Validator;
use shared::events::{
    CityEscalated, HandoverIssued, ProblemClosed, ProblemOverdue, ProblemReopened, ProblemRerouted, SummonsScheduled,
};
use shared::reference;
use time::{Date, Time};
use uuid::Uuid;

/// What a notice is about. Its `type` in a webhook body is [`Kind::type_name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A handover sheet (电子督办单) for the city government.
    Handover,
    /// Deadlines coming up, for the government responsible.
    DeadlineReminder,
    /// A problem past its deadline without an accepted rectification.
    Overdue,
    /// A verdict: closed (销号) or reopened.
    VerificationResult,
    /// A problem handed to another government: the new owner is told.
    Reroute,
    /// The city climbs the escalation ladder; its package units are told too.
    Escalation,
    /// Nobody acknowledged a handover notice, even sent twice: raised to the package units.
    Unacknowledged,
    /// The campaign office summons the city's officials (约谈); its package units are told too.
    Summons,
}

/// Who gets a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The jurisdiction's recipient, else its city's.
    Owner,
    /// The owner, with the city's package units in CC.
    OwnerAndUnits,
    /// The city's package units alone.
    Units,
}

impl Audience {
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Owner => "owner",
            Audience::OwnerAndUnits => "owner_and_units",
            Audience::Units => "units",
        }
    }
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Handover,
        Kind::DeadlineReminder,
        Kind::Overdue,
        Kind::VerificationResult,
        Kind::Reroute,
        Kind::Escalation,
        Kind::Unacknowledged,
        Kind::Summons,
    ];

    /// The name in the database, in `GET /v1/notices` and of the template files.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Handover => "handover",
            Kind::DeadlineReminder => "deadline_reminder",
            Kind::Overdue => "overdue",
            Kind::VerificationResult => "verification_result",
            Kind::Reroute => "reroute",
            Kind::Escalation => "escalation",
            Kind::Unacknowledged => "unacknowledged",
            Kind::Summons => "summons",
        }
    }

    /// The `type` of the webhook body.
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::Handover => "handover.issued",
            Kind::DeadlineReminder => "deadline.reminder",
            Kind::Overdue => "problem.overdue",
            Kind::VerificationResult => "problem.verified",
            Kind::Reroute => "problem.rerouted",
            Kind::Escalation => "city.escalated",
            Kind::Unacknowledged => "handover.unacknowledged",
            Kind::Summons => "summons.scheduled",
        }
    }

    pub fn from_type_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.type_name() == name)
    }

    /// Urgent notices ignore quiet hours and also go by SMS.
    pub fn urgent(self) -> bool {
        matches!(self, Kind::Overdue | Kind::Escalation | Kind::Summons)
    }

    pub fn audience(self) -> Audience {
        match self {
            Kind::Escalation | Kind::Summons => Audience::OwnerAndUnits,
            Kind::Unacknowledged => Audience::Units,
            _ => Audience::Owner,
        }
    }
}

/// A notice to be stored: its id (also the `webhook-id`), kind, addressee and body.
#[derive(Debug, Clone)]
pub struct NewNotice {
    pub id: Uuid,
    pub kind: Kind,
    /// The government responsible; the city's recipient stands in when it has none.
    pub jurisdiction: String,
    pub city_code: String,
    pub handover_no: Option<String>,
    pub payload: Value,
}

impl NewNotice {
    fn new(kind: Kind, jurisdiction: &str, handover_no: Option<&str>, mut payload: Value, receipts: &Receipts) -> Self {
        let id = Uuid::now_v7();
        let city_code = city_of(jurisdiction);
        let body = payload.as_object_mut().expect("a notice body is a JSON object");
        body.insert("type".into(), json!(kind.type_name()));
        body.insert("notice_id".into(), json!(id));
        body.insert("jurisdiction".into(), json!(jurisdiction));
        body.insert("city_code".into(), json!(city_code));
        body.insert("receipt_url".into(), json!(receipts.link(id)));
        Self {
            id,
            kind,
            jurisdiction: jurisdiction.into(),
            city_code,
            handover_no: handover_no.map(Into::into),
            payload,
        }
    }
}

/// The city a jurisdiction belongs to (a city belongs to itself).
pub fn city_of(jurisdiction: &str) -> String {
    reference::city_of_county(jurisdiction).map(|c| c.code.clone()).unwrap_or_else(|| jurisdiction.to_string())
}

/// The handover notice: the sheet and its problems.
pub fn handover_notice(sheet: &HandoverIssued, receipts: &Receipts) -> NewNotice {
    let deadline = sheet.problems.iter().map(|p| p.deadline).min();
    let payload = json!({
        "handover_no": sheet.handover_no,
        "round": sheet.round,
        "issued_at": shared::csv::timestamp(sheet.issued_at),
        "deadline": deadline,
        "problems": sheet.problems.iter().map(|p| json!({
            "id": p.problem_id,
            "category": p.category,
            "severity": p.severity,
            "jurisdiction": p.jurisdiction,
            "site": { "name": p.site_name },
            "description": p.description,
            "deadline": p.deadline,
        })).collect::<Vec<_>>(),
    });
    NewNotice::new(Kind::Handover, &sheet.city_code, Some(&sheet.handover_no), payload, receipts)
}

/// The same handover notice again, as a notice of its own (new `webhook-id` and Message-ID: it
/// is a second message, meant to be seen), pointing at the first.
pub fn handover_resent(first_id: Uuid, first: &Value, jurisdiction: &str, receipts: &Receipts) -> NewNotice {
    let mut payload = first.clone();
    payload["resend_of"] = json!(first_id);
    let handover_no = first["handover_no"].as_str().map(str::to_string);
    NewNotice::new(Kind::Handover, jurisdiction, handover_no.as_deref(), payload, receipts)
}

/// To the package units: a handover notice nobody acknowledged, even sent twice.
pub fn unacknowledged_notice(first_id: Uuid, first: &Value, jurisdiction: &str, receipts: &Receipts) -> NewNotice {
    let handover_no = first["handover_no"].as_str().unwrap_or_default();
    let payload = json!({
        "handover_no": handover_no,
        "first_notice_id": first_id,
        "issued_at": first["issued_at"],
        "deadline": first["deadline"],
        "problems": first["problems"],
    });
    NewNotice::new(Kind::Unacknowledged, jurisdiction, Some(handover_no), payload, receipts)
}

/// A problem as notification keeps it, for reminders and single-problem notices.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProblemFacts {
    pub problem_id: Uuid,
    pub jurisdiction: String,
    pub category: Option<String>,
    pub site_name: Option<String>,
    pub description: Option<String>,
    pub deadline: Option<Date>,
}

fn problem_json(p: &ProblemFacts) -> Value {
    json!({
        "id": p.problem_id,
        "category": p.category,
        "jurisdiction": p.jurisdiction,
        "site": { "name": p.site_name },
        "description": p.description,
        "deadline": p.deadline,
    })
}

/// One reminder per government listing its problems whose deadlines come up.
pub fn deadline_reminder(jurisdiction: &str, problems: &[ProblemFacts], receipts: &Receipts) -> NewNotice {
    let deadline = problems.iter().filter_map(|p| p.deadline).min();
    let payload = json!({ "deadline": deadline, "problems": problems.iter().map(problem_json).collect::<Vec<_>>() });
    NewNotice::new(Kind::DeadlineReminder, jurisdiction, None, payload, receipts)
}

pub fn overdue_notice(event: &ProblemOverdue, known: Option<&ProblemFacts>, receipts: &Receipts) -> NewNotice {
    let mut payload = single_problem(event.problem_id, known);
    payload["deadline"] = json!(event.deadline);
    payload["overdue_on"] = json!(event.overdue_on);
    NewNotice::new(Kind::Overdue, &event.jurisdiction, None, payload, receipts)
}

pub fn closed_notice(event: &ProblemClosed, known: Option<&ProblemFacts>, receipts: &Receipts) -> NewNotice {
    let mut payload = single_problem(event.problem_id, known);
    payload["result"] = json!("rectified");
    payload["status"] = json!("closed");
    payload["deadline"] = json!(known.and_then(|p| p.deadline));
    payload["verified_at"] = json!(shared::csv::timestamp(event.verified_at));
    let owner = known.map(|p| p.jurisdiction.as_str()).unwrap_or(&event.city_code);
    NewNotice::new(Kind::VerificationResult, owner, None, payload, receipts)
}

pub fn reopened_notice(event: &ProblemReopened, known: Option<&ProblemFacts>, receipts: &Receipts) -> NewNotice {
    let mut payload = single_problem(event.problem_id, known);
    payload["result"] = json!(event.result);
    payload["status"] = json!("reopened");
    payload["deadline"] = json!(event.deadline);
    payload["verified_at"] = json!(shared::csv::timestamp(event.verified_at));
    let owner = known.map(|p| p.jurisdiction.as_str()).unwrap_or(&event.city_code);
    NewNotice::new(Kind::VerificationResult, owner, None, payload, receipts)
}

pub fn reroute_notice(event: &ProblemRerouted, receipts: &Receipts) -> NewNotice {
    let payload = json!({
        "problem": {
            "id": event.problem_id, "category": event.category, "jurisdiction": event.to_jurisdiction,
            "site": { "name": event.site_name }, "description": event.description, "deadline": event.deadline,
        },
        "from_jurisdiction": event.from_jurisdiction,
        "reason": event.reason,
        "deadline": event.deadline,
        "rerouted_at": shared::csv::timestamp(event.rerouted_at),
    });
    NewNotice::new(Kind::Reroute, &event.to_jurisdiction, None, payload, receipts)
}

pub fn escalation_notice(event: &CityEscalated, receipts: &Receipts) -> NewNotice {
    let payload = json!({
        "level": event.level,
        "previous_level": event.previous_level,
        "overdue": event.overdue,
        "reopened": event.reopened,
        "rebounds": event.rebounds,
        "escalated_at": shared::csv::timestamp(event.escalated_at),
    });
    NewNotice::new(Kind::Escalation, &event.city_code, None, payload, receipts)
}

/// A summons scheduled: the city and its package units learn who is summoned, when, where and why.
pub fn summons_notice(event: &SummonsScheduled, receipts: &Receipts) -> NewNotice {
    let officials: Vec<String> = event.officials.iter().map(|o| format!("{} ({})", o.name, o.post)).collect();
    let payload = json!({
        "summons_id": event.summons_id,
        "date": event.date.to_string(),
        "place": event.place,
        "officials": event.officials,
        "officials_named": officials.join(", "),
        "reasons": event.reasons,
        "cited_problems": event.problems,
        "scheduled_at": shared::csv::timestamp(event.scheduled_at),
    });
    NewNotice::new(Kind::Summons, &event.city_code, None, payload, receipts)
}

fn single_problem(problem_id: Uuid, known: Option<&ProblemFacts>) -> Value {
    let facts = known.cloned().unwrap_or(ProblemFacts { problem_id, ..Default::default() });
    json!({ "problem": problem_json(&facts) })
}

/// `true` when a reminder for `deadline` is due `today`: from `days_before` days ahead up to the
/// deadline itself, but not on the day the deadline was set (that day's notice says it already).
pub fn reminder_due(today: Date, deadline: Date, days_before: u32, set_on: Option<Date>) -> bool {
    let first_day = deadline - time::Duration::days(i64::from(days_before));
    today >= first_day && today <= deadline && set_on.is_none_or(|d| today > d)
}

/// A recipient's quiet hours, Asia/Shanghai wall-clock times: `from <= t < to`, across midnight
/// when `from > to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub from: Time,
    pub to: Time,
}

impl QuietHours {
    /// How long from `now` (Shanghai wall clock) until the quiet hours end, if they hold now.
    pub fn remaining(&self, now: Time) -> Option<Duration> {
        let inside =
            if self.from <= self.to { now >= self.from && now < self.to } else { now >= self.from || now < self.to };
        if !inside {
            return None;
        }
        let secs = |t: Time| i64::from(t.hour()) * 3600 + i64::from(t.minute()) * 60 + i64::from(t.second());
        let left = (secs(self.to) - secs(now)).rem_euclid(86_400);
        Some(Duration::from_secs(left as u64))
    }
}

/// The wait before holding a quiet-hours delivery is looked at again: the rest of the quiet
/// hours, but no longer than `recheck` (the simulated clock may jump, the recipient may change).
pub fn quiet_wait(quiet: Option<QuietHours>, now: Time, urgent: bool, recheck: Duration) -> Option<Duration> {
    if urgent {
        return None;
    }
    quiet?.remaining(now).map(|left| left.min(recheck).max(Duration::from_millis(200)))
}

/// Signs receipt links, so a recipient acknowledges a notice by opening the link in it.
#[derive(Clone)]
pub struct Receipts {
    key: Vec<u8>,
    base_url: String,
}

impl Receipts {
    pub fn new(key: Vec<u8>, base_url: &str) -> Self {
        Self { key, base_url: base_url.trim_end_matches('/').to_string() }
    }

    fn mac(&self, notice_id: Uuid) -> Hmac<Sha256> {
        link_mac(&self.key, b"receipt.", notice_id)
    }

    pub fn signature(&self, notice_id: Uuid) -> String {
        hex_encode(&self.mac(notice_id).finalize().into_bytes())
    }

    pub fn verify(&self, notice_id: Uuid, signature: &str) -> bool {
        hex_decode(signature).is_some_and(|bytes| self.mac(notice_id).verify_slice(&bytes).is_ok())
    }

    pub fn link(&self, notice_id: Uuid) -> String {
        format!("{}/v1/notices/{notice_id}/receipt?sig={}", self.base_url, self.signature(notice_id))
    }
}

/// The HMAC a signed link carries: of what the link is for (`purpose`, so a receipt signature
/// never serves as a sign-in code) and the id it names.
fn link_mac(key: &[u8], purpose: &[u8], id: Uuid) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(purpose);
    mac.update(id.as_bytes());
    mac
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// `v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{body}` for each secret, space-separated.
pub fn sign_webhook(secrets: &[String], msg_id: &str, timestamp: i64, body: &[u8]) -> anyhow::Result<String> {
    let mut signatures = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let key = B64.decode(secret.strip_prefix("whsec_").unwrap_or(secret))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&key)?;
        mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
        mac.update(body);
        signatures.push(format!("v1,{}", B64.encode(mac.finalize().into_bytes())));
    }
    Ok(signatures.join(" "))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Delivered,
    /// Try again, no sooner than the receiver asked (`Retry-After`), if it did.
    RetryLater(Option<Duration>),
    /// The receiver refused for good (4xx other than 408 and 429).
    Refused,
}

pub fn judge_status(status: u16, retry_after: Option<Duration>) -> Answer {
    match status {
        200..=299 => Answer::Delivered,
        408 | 429 | 500..=599 => Answer::RetryLater(retry_after),
        _ => Answer::Refused,
    }
}

/// The wait before try `attempts_made + 1`: seconds at first (the fourth try comes within two
/// minutes), then ever more slowly; `jitter` in [0, 1) spreads retries of many notices; `scale`
/// shrinks or stretches the whole schedule (1.0 in production).
pub fn retry_delay(attempts_made: i32, jitter: f64, scale: f64) -> Duration {
    const STEPS: [u64; 10] = [2, 8, 30, 120, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600];
    let base = STEPS[(attempts_made.max(1) as usize - 1).min(STEPS.len() - 1)] as f64;
    Duration::from_secs_f64(base * (0.8 + 0.4 * jitter.clamp(0.0, 1.0)) * scale.max(0.0))
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Webhook {
    pub url: String,
    /// One secret, or several during rotation.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub secrets: Vec<String>,
}

impl Webhook {
    pub fn all_secrets(&self) -> Vec<String> {
        self.secret.iter().chain(&self.secrets).cloned().collect()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct QuietHoursRequest {
    /// `HH:MM`, Asia/Shanghai.
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RecipientRequest {
    pub name: String,
    #[serde(default)]
    pub webhook: Option<Webhook>,
    #[serde(default)]
    pub emails: Vec<String>,
    /// Mobile numbers for urgent notices by SMS.
    #[serde(default)]
    pub phones: Vec<String>,
    #[serde(default = "zh_cn")]
    pub language: String,
    #[serde(default)]
    pub quiet_hours: Option<QuietHoursRequest>,
}

impl RecipientRequest {
    pub fn quiet(&self) -> Option<QuietHours> {
        let q = self.quiet_hours.as_ref()?;
        Some(QuietHours { from: parse_hhmm(&q.from)?, to: parse_hhmm(&q.to)? })
    }
}

/// A package unit of a city: one recipient among the city's three.
#[derive(Debug, Clone, Deserialize)]
pub struct PackageUnitRequest {
    pub role: String,
    #[serde(flatten)]
    pub recipient: RecipientRequest,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PackageUnitsRequest {
    pub units: Vec<PackageUnitRequest>,
}

/// The three units of a city package (三位一体包保).
pub const PACKAGE_ROLES: [&str; 3] = ["ministry_department", "affiliated_unit", "provincial_department"];

/// A package unit's recipient code: `{city}/{role}`.
pub fn package_unit_code(city: &str, role: &str) -> String {
    format!("{city}/{role}")
}

fn zh_cn() -> String {
    "zh-CN".into()
}

pub const LANGUAGES: &[&str] = &["zh-CN", "en"];

pub fn parse_hhmm(text: &str) -> Option<Time> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    Time::from_hms(h.parse().ok()?, m.parse().ok()?, 0).ok()
}

fn is_phone(text: &str) -> bool {
    let digits = text.strip_prefix('+').unwrap_or(text);
    (6..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

pub fn validate_recipient(code: &str, r: &RecipientRequest, deny_hosts: &[String]) -> Validator {
    let mut v = Validator::new();
    v.check(reference::is_jurisdiction(code), "code", format!("{code} is not a key city or a county of one"));
    check_recipient_fields(&mut v, "", r, deny_hosts);
    v
}

pub fn validate_package_units(city: &str, request: &PackageUnitsRequest, deny_hosts: &[String]) -> Validator {
    let mut v = Validator::new();
    v.check(reference::city(city).is_some(), "code", format!("{city} is not one of the 39 key cities"));
    v.check(
        request.units.len() == PACKAGE_ROLES.len(),
        "units",
        "a city package is one ministry_department, one affiliated_unit and one provincial_department",
    );
    for (i, unit) in request.units.iter().enumerate() {
        let prefix = format!("units[{i}].");
        let known = PACKAGE_ROLES.contains(&unit.role.as_str());
        v.check(known, format!("{prefix}role"), "ministry_department, affiliated_unit or provincial_department");
        let repeated = request.units[..i].iter().any(|u| u.role == unit.role);
        v.check(!known || !repeated, format!("{prefix}role"), "each role once");
        check_recipient_fields(&mut v, &prefix, &unit.recipient, deny_hosts);
    }
    v
}

fn check_recipient_fields(v: &mut Validator, prefix: &str, r: &RecipientRequest, deny_hosts: &[String]) {
    v.check(!r.name.trim().is_empty(), format!("{prefix}name"), "the recipient's name, e.g. 邢台市人民政府");
    v.check(LANGUAGES.contains(&r.language.as_str()), format!("{prefix}language"), "zh-CN or en");
    if let Some(hook) = &r.webhook {
        match reqwest::Url::parse(&hook.url) {
            Ok(url) if url.scheme() == "http" || url.scheme() == "https" => {
                let host = url.host_str().unwrap_or_default();
                v.check(
                    !deny_hosts.iter().any(|d| d == host),
                    format!("{prefix}webhook.url"),
                    format!("webhooks to {host} are not allowed"),
                );
            }
            _ => v.fail(format!("{prefix}webhook.url"), "an http or https URL"),
        }
        let secrets = hook.all_secrets();
        v.check(!secrets.is_empty(), format!("{prefix}webhook.secret"), "a webhook needs a whsec_ secret");
        for (i, s) in secrets.iter().enumerate() {
            let ok = s.strip_prefix("whsec_").is_some_and(|k| B64.decode(k).is_ok_and(|k| k.len() >= 16));
            let field = if i == 0 && hook.secret.is_some() {
                format!("{prefix}webhook.secret")
            } else {
                format!("{prefix}webhook.secrets[{}]", i - usize::from(hook.secret.is_some()))
            };
            v.check(ok, field, "whsec_ followed by at least 16 bytes in base64");
        }
    }
    for (i, email) in r.emails.iter().enumerate() {
        v.check(email.parse::<lettre::Address>().is_ok(), format!("{prefix}emails[{i}]"), "not an e-mail address");
    }
    for (i, phone) in r.phones.iter().enumerate() {
        v.check(is_phone(phone), format!("{prefix}phones[{i}]"), "a mobile number: digits, optionally after +");
    }
    if let Some(q) = &r.quiet_hours {
        let from = parse_hhmm(&q.from);
        let to = parse_hhmm(&q.to);
        v.check(from.is_some(), format!("{prefix}quiet_hours.from"), "HH:MM, Asia/Shanghai");
        v.check(to.is_some(), format!("{prefix}quiet_hours.to"), "HH:MM, Asia/Shanghai");
        v.check(from.is_none() || from != to, format!("{prefix}quiet_hours.to"), "differs from `from`");
    }
}

// ---- People of the workbench and their sign-in links ----

/// The campaign office invites a person by name (`POST /v1/people`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    pub name: String,
    pub role: String,
    pub team: Option<String>,
    pub jurisdiction: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    #[serde(default = "default_language")]
    pub language: String,
}

fn default_language() -> String {
    "zh-CN".into()
}

/// The role an invitation grants, once every field holds.
pub fn validate_invitation(r: &InviteRequest) -> Result<shared::auth::Role, Validator> {
    let mut v = Validator::new();
    v.check(
        !r.name.trim().is_empty() && r.name.chars().count() <= 100,
        "name",
        "the person's name, as it will appear in the audit log (at most 100 characters)",
    );
    v.check(LANGUAGES.contains(&r.language.as_str()), "language", "zh-CN or en");
    let role = r.role.parse::<shared::auth::Role>();
    match &role {
        Ok(role) => {
            let binding = shared::auth::Claims {
                jti: Uuid::nil(),
                role: *role,
                team: r.team.clone(),
                jurisdiction: r.jurisdiction.clone(),
                sub: None,
                name: None,
                iat: 0,
                exp: 0,
            }
            .check_binding();
            if let Err(e) = binding {
                let field = if matches!(role, shared::auth::Role::LocalGov) { "jurisdiction" } else { "team" };
                v.fail(field, e.replace("--team", "a team").replace("--jurisdiction", "a jurisdiction"));
            }
        }
        Err(e) => v.fail("role", e.clone()),
    }
    match (&r.email, &r.phone) {
        (None, None) => v.fail("email", "an e-mail address (or a phone) to send the sign-in link to"),
        (email, phone) => {
            if let Some(email) = email {
                v.check(email.parse::<lettre::Address>().is_ok(), "email", "not an e-mail address");
            }
            if let Some(phone) = phone {
                v.check(is_phone(phone), "phone", "a mobile number: digits, optionally after +");
            }
        }
    }
    match role {
        Ok(role) if v.is_clean() => Ok(role),
        _ => Err(v),
    }
}

/// Signs one-time sign-in links, `{invitation id}.{HMAC}`: the link proves itself, so nothing
/// secret is stored, and whether it was used is the invitation's row.
#[derive(Clone)]
pub struct SignInLinks {
    key: Vec<u8>,
    base_url: String,
}

impl SignInLinks {
    pub fn new(key: Vec<u8>, workbench_url: &str) -> Self {
        Self { key, base_url: workbench_url.trim_end_matches('/').to_string() }
    }

    fn mac(&self, invitation: Uuid) -> Hmac<Sha256> {
        link_mac(&self.key, b"sign-in.", invitation)
    }

    pub fn code(&self, invitation: Uuid) -> String {
        format!("{invitation}.{}", hex_encode(&self.mac(invitation).finalize().into_bytes()))
    }

    /// The invitation a code names, if it was signed here.
    pub fn check(&self, code: &str) -> Option<Uuid> {
        let (id, signature) = code.trim().split_once('.')?;
        let id: Uuid = id.parse().ok()?;
        let bytes = hex_decode(signature)?;
        self.mac(id).verify_slice(&bytes).is_ok().then_some(id)
    }

    pub fn link(&self, invitation: Uuid) -> String {
        format!("{}/sign-in/{}", self.base_url, self.code(invitation))
    }
}

// ---- What a notice says: the template files ----

macro_rules! template_files {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../templates/", $name)))),*]
    };
}

/// Every template, by file name: `{kind}.{language}.{part}` (`subject`, `txt`, `problem` for
/// one line of a list, `sms`), and `labels.{language}` for names of categories, levels, etc.
static TEMPLATES: &[(&str, &str)] = template_files!(
    "labels.zh-CN",
    "labels.en",
    "handover.zh-CN.subject",
    "handover.zh-CN.txt",
    "handover.zh-CN.problem",
    "handover.en.subject",
    "handover.en.txt",
    "handover.en.problem",
    "deadline_reminder.zh-CN.subject",
    "deadline_reminder.zh-CN.txt",
    "deadline_reminder.zh-CN.problem",
    "deadline_reminder.en.subject",
    "deadline_reminder.en.txt",
    "deadline_reminder.en.problem",
    "overdue.zh-CN.subject",
    "overdue.zh-CN.txt",
    "overdue.zh-CN.sms",
    "overdue.en.subject",
    "overdue.en.txt",
    "overdue.en.sms",
    "verification_result.zh-CN.subject",
    "verification_result.zh-CN.txt",
    "verification_result.en.subject",
    "verification_result.en.txt",
    "reroute.zh-CN.subject",
    "reroute.zh-CN.txt",
    "reroute.en.subject",
    "reroute.en.txt",
    "escalation.zh-CN.subject",
    "escalation.zh-CN.txt",
    "escalation.zh-CN.sms",
    "escalation.en.subject",
    "escalation.en.txt",
    "escalation.en.sms",
    "summons.zh-CN.subject",
    "summons.zh-CN.txt",
    "summons.zh-CN.sms",
    "summons.en.subject",
    "summons.en.txt",
    "summons.en.sms",
    "unacknowledged.zh-CN.subject",
    "unacknowledged.zh-CN.txt",
    "unacknowledged.zh-CN.problem",
    "unacknowledged.en.subject",
    "unacknowledged.en.txt",
    "unacknowledged.en.problem",
);

fn template(name: &str) -> Option<&'static str> {
    TEMPLATES.iter().find(|(n, _)| *n == name).map(|(_, text)| *text)
}

fn language_of(language: &str) -> &'static str {
    if language == "en" { "en" } else { "zh-CN" }
}

/// `key = value` lines of `labels.{language}`: names of categories, levels, results, columns.
fn labels(language: &str) -> &'static HashMap<String, String> {
    static ZH: OnceLock<HashMap<String, String>> = OnceLock::new();
    static EN: OnceLock<HashMap<String, String>> = OnceLock::new();
    let cell = if language == "en" { &EN } else { &ZH };
    cell.get_or_init(|| {
        template(&format!("labels.{language}"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    })
}

fn label(language: &str, key: &str, fallback: &str) -> String {
    labels(language).get(key).cloned().unwrap_or_else(|| fallback.to_string())
}

/// What one notice says to one recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    /// The short text for SMS.
    pub sms: String,
}

/// Renders a notice (its stored body) for a recipient in its language.
pub fn render(notice: &Value, language: &str, recipient_name: &str) -> Rendered {
    let language = language_of(language);
    let kind = notice["type"].as_str().and_then(Kind::from_type_name).unwrap_or(Kind::Handover);
    let name = |part: &str| format!("{}.{language}.{part}", kind.as_str());
    let mut values = scalar_values(notice, language);
    values.insert("recipient_name".into(), recipient_name.to_string());
    let city_code = notice["city_code"].as_str().or(notice["jurisdiction"].as_str()).unwrap_or_default();
    values.insert("city_name".into(), city_name(city_code, language));
    if let Some(problem) = notice.get("problem") {
        for (key, value) in scalar_values(problem, language) {
            values.entry(format!("problem.{key}")).or_insert(value);
        }
    }
    let problems = notice["problems"].as_array().cloned().unwrap_or_default();
    values.insert("count".into(), problems.len().to_string());
    if let Some(line) = template(&name("problem")) {
        let listed: String = problems
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut item = scalar_values(p, language);
                item.insert("index".into(), (i + 1).to_string());
                fill(line, &item)
            })
            .collect();
        values.insert("problems".into(), listed);
    }
    let resent = notice.get("resend_of").is_some_and(|v| !v.is_null());
    values.insert("resent".into(), if resent { label(language, "resent", "") } else { String::new() });
    let subject = fill(template(&name("subject")).unwrap_or("{type}"), &values).trim().to_string();
    let text = fill(template(&name("txt")).unwrap_or("{type}"), &values);
    let sms = template(&name("sms")).map(|t| fill(t, &values).trim().to_string()).unwrap_or_else(|| subject.clone());
    Rendered { subject, text, sms }
}

fn city_name(code: &str, language: &str) -> String {
    reference::city(code)
        .map(|c| if language == "en" { c.name_en.clone() } else { c.name_zh.clone() })
        .unwrap_or_else(|| code.to_string())
}

/// The string and number fields of a JSON object as template values, with the names behind
/// codes: `category_name`, `level_name`, `result_name`, `previous_level_name`, `site_name`.
fn scalar_values(object: &Value, language: &str) -> HashMap<String, String> {
    let mut values = HashMap::new();
    let Some(map) = object.as_object() else { return values };
    for (key, value) in map {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Null => String::new(),
            _ => continue,
        };
        values.insert(key.clone(), text);
    }
    if let Some(site) = object["site"]["name"].as_str() {
        values.insert("site_name".into(), site.to_string());
    }
    if let Some(category) = object["category"].as_str() {
        let name = reference::category(category)
            .map(|c| if language == "en" { c.name_en.clone() } else { c.name_zh.clone() })
            .unwrap_or_else(|| category.to_string());
        values.insert("category_name".into(), name);
    }
    for key in ["level", "previous_level", "result"] {
        match object.get(key) {
            Some(Value::String(code)) => {
                values.insert(format!("{key}_name"), label(language, &format!("{key}.{code}"), code));
            }
            Some(Value::Null) => {
                values.insert(format!("{key}_name"), "-".into());
            }
            _ => {}
        }
    }
    values
}

/// Replaces each `{name}` in a template by its value; unknown names stay as they are.
fn fill(template: &str, values: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if values.contains_key(&after[..close]) => {
                out.push_str(&values[&after[..close]]);
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

// ---- The handover sheet as attachments ----

const SHEET_COLUMNS: [&str; 7] = ["index", "problem_id", "category", "jurisdiction", "site", "description", "deadline"];

/// The rows of a handover sheet: a header in the recipient's language, then one row a problem.
pub fn sheet_rows(notice: &Value, language: &str) -> Vec<Vec<String>> {
    let language = language_of(language);
    let header = SHEET_COLUMNS.iter().map(|c| label(language, &format!("column.{c}"), c)).collect();
    let mut rows = vec![header];
    for (i, p) in notice["problems"].as_array().into_iter().flatten().enumerate() {
        let values = scalar_values(p, language);
        let get = |k: &str| values.get(k).cloned().unwrap_or_default();
        rows.push(vec![
            (i + 1).to_string(),
            get("id"),
            get("category_name"),
            get("jurisdiction"),
            get("site_name"),
            get("description"),
            get("deadline"),
        ]);
    }
    rows
}

/// The sheet as CSV (RFC 4180, UTF-8 with a byte-order mark so spreadsheet programs read the
/// Chinese right).
pub fn sheet_csv(rows: &[Vec<String>]) -> Vec<u8> {
    let mut out = String::from("\u{feff}");
    for row in rows {
        out.push_str(&shared::csv::line(&row.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    out.into_bytes()
}

/// The sheet as an XLSX workbook of one worksheet named after the handover number.
pub fn sheet_xlsx(rows: &[Vec<String>], sheet_name: &str) -> anyhow::Result<Vec<u8>> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    // Worksheet names are at most 31 characters and some characters are not allowed.
    let name: String = sheet_name.chars().filter(|c| !"[]:*?/\\".contains(*c)).take(31).collect();
    if !name.is_empty() {
        sheet.set_name(name)?;
    }
    let bold = rust_xlsxwriter::Format::new().set_bold();
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            if r == 0 {
                sheet.write_string_with_format(r as u32, c as u16, cell, &bold)?;
            } else {
                sheet.write_string(r as u32, c as u16, cell)?;
            }
        }
    }
    Ok(workbook.save_to_buffer()?)
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_sign_in_code_is_checked_and_cannot_be_moved_to_another_invitation() {
        let links = SignInLinks::new(b"key".to_vec(), "http://127.0.0.1:8080/");
        let id = Uuid::now_v7();
        let code = links.code(id);
        assert_eq!(links.check(&code), Some(id));
        assert!(links.link(id).starts_with("http://127.0.0.1:8080/sign-in/"));
        let other = Uuid::now_v7();
        let moved = format!("{other}.{}", code.split_once('.').unwrap().1);
        assert_eq!(links.check(&moved), None);
        assert_eq!(SignInLinks::new(b"other".to_vec(), "").check(&code), None);
        assert_eq!(links.check("garbage"), None);
    }

    #[test]
    fn an_invitation_names_a_person_bound_as_their_role_needs() {
        let invite = |role: &str, team: Option<&str>, jurisdiction: Option<&str>, email: Option<&str>| InviteRequest {
            name: "王芳".into(),
            role: role.into(),
            team: team.map(Into::into),
            jurisdiction: jurisdiction.map(Into::into),
            email: email.map(Into::into),
            phone: None,
            language: "zh-CN".into(),
        };
        assert!(validate_invitation(&invite("local_gov", None, Some("130500"), Some("a@b.cn"))).is_ok());
        let fields = |r: Result<shared::auth::Role, Validator>| match r.err().map(Validator::finish) {
            Some(Err(shared::error::ApiError::Invalid(errors))) => errors.into_iter().map(|e| e.field).collect(),
            _ => Vec::<String>::new(),
        };
        assert_eq!(fields(validate_invitation(&invite("local_gov", None, None, Some("a@b.cn")))), ["jurisdiction"]);
        assert_eq!(fields(validate_invitation(&invite("verifier", None, None, Some("a@b.cn")))), ["team"]);
        assert_eq!(fields(validate_invitation(&invite("admin", None, None, None))), ["email"]);
        assert_eq!(fields(validate_invitation(&invite("boss", None, None, Some("x")))), ["role", "email"]);
    }
    use super::*;
    use time::macros::{date, time};

    fn receipts() -> Receipts {
        Receipts::new(b"0123456789abcdef".to_vec(), "http://notify.example/")
    }

    #[test]
    fn signature_matches_the_standard_webhooks_reference_vector() {
        // The example from the Standard Webhooks specification's reference implementations.
        let secret = vec!["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string()];
        let body = br#"{"test": 2432232314}"#;
        let signature = sign_webhook(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn every_active_secret_signs_during_rotation() {
        let secrets =
            vec!["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string(), "whsec_AAAAAAAAAAAAAAAAAAAAAAAA".to_string()];
        let signature = sign_webhook(&secrets, "m", 1, b"{}").unwrap();
        assert_eq!(signature.split(' ').count(), 2);
    }

    #[test]
    fn receivers_answers_decide_retry_or_not() {
        assert_eq!(judge_status(204, None), Answer::Delivered);
        assert_eq!(judge_status(503, None), Answer::RetryLater(None));
        assert_eq!(judge_status(429, Some(Duration::from_secs(5))), Answer::RetryLater(Some(Duration::from_secs(5))));
        assert_eq!(judge_status(408, None), Answer::RetryLater(None));
        assert_eq!(judge_status(410, None), Answer::Refused);
        assert_eq!(judge_status(400, None), Answer::Refused);
    }

    #[test]
    fn the_fourth_try_comes_within_two_minutes_and_the_scale_shrinks_the_schedule() {
        let worst: Duration = (1..=3).map(|n| retry_delay(n, 0.999, 1.0)).sum();
        assert!(worst < Duration::from_secs(120), "{worst:?}");
        assert!(retry_delay(9, 0.0, 1.0) > retry_delay(4, 1.0, 1.0));
        assert_eq!(retry_delay(2, 0.5, 0.1), Duration::from_millis(800));
    }

    #[test]
    fn quiet_hours_hold_non_urgent_notices_until_they_end_even_across_midnight() {
        let night = QuietHours { from: time!(22:00), to: time!(07:00) };
        assert_eq!(night.remaining(time!(23:30)), Some(Duration::from_secs(7 * 3600 + 1800)));
        assert_eq!(night.remaining(time!(06:59)), Some(Duration::from_secs(60)));
        assert_eq!(night.remaining(time!(07:00)), None);
        assert_eq!(night.remaining(time!(12:00)), None);
        let lunch = QuietHours { from: time!(12:00), to: time!(14:00) };
        assert_eq!(lunch.remaining(time!(13:00)), Some(Duration::from_secs(3600)));
        assert_eq!(lunch.remaining(time!(14:00)), None);
        let recheck = Duration::from_secs(60);
        assert_eq!(quiet_wait(Some(night), time!(23:00), false, recheck), Some(recheck), "looked at again soon");
        assert_eq!(quiet_wait(Some(night), time!(23:00), true, recheck), None, "urgent notices go anyway");
        assert_eq!(quiet_wait(None, time!(23:00), false, recheck), None);
    }

    #[test]
    fn a_reminder_is_due_from_its_days_before_up_to_the_deadline_but_not_on_the_day_it_was_set() {
        let deadline = date!(2019 - 06 - 10);
        assert!(!reminder_due(date!(2019 - 06 - 06), deadline, 3, Some(date!(2019 - 05 - 10))));
        assert!(reminder_due(date!(2019 - 06 - 07), deadline, 3, Some(date!(2019 - 05 - 10))));
        assert!(reminder_due(date!(2019 - 06 - 10), deadline, 3, None));
        assert!(!reminder_due(date!(2019 - 06 - 11), deadline, 3, None), "past the deadline is overdue instead");
        assert!(!reminder_due(date!(2019 - 06 - 08), deadline, 3, Some(date!(2019 - 06 - 08))));
    }

    #[test]
    fn quiet_hours_and_phones_are_checked_naming_the_field() {
        let request: RecipientRequest = serde_json::from_value(json!({
            "name": "邢台市人民政府", "phones": ["+8613800000000", "call me"],
            "quiet_hours": { "from": "22:00", "to": "7am" } }))
        .unwrap();
        let errors: Vec<String> = match validate_recipient("130500", &request, &[]).finish() {
            Err(e) => e.field_errors().into_iter().map(|f| f.field).collect(),
            Ok(()) => vec![],
        };
        assert_eq!(errors, ["phones[1]", "quiet_hours.to"]);
    }

    #[test]
    fn a_city_package_is_three_units_of_distinct_roles() {
        let unit = |role: &str| json!({ "role": role, "name": "单位", "emails": ["a@example.org"] });
        let ok: PackageUnitsRequest = serde_json::from_value(json!({ "units": [
            unit("ministry_department"), unit("affiliated_unit"), unit("provincial_department") ] }))
        .unwrap();
        assert!(validate_package_units("130500", &ok, &[]).is_clean());
        let twice: PackageUnitsRequest = serde_json::from_value(json!({ "units": [
            unit("ministry_department"), unit("ministry_department"), unit("provincial_department") ] }))
        .unwrap();
        assert!(!validate_package_units("130500", &twice, &[]).is_clean());
        assert!(!validate_package_units("130502", &ok, &[]).is_clean(), "a county has no package");
    }

    #[test]
    fn receipt_links_verify_only_for_their_own_notice() {
        let r = receipts();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert!(r.verify(a, &r.signature(a)));
        assert!(!r.verify(b, &r.signature(a)));
        assert!(!r.verify(a, "zz"));
        assert!(r.link(a).starts_with(&format!("http://notify.example/v1/notices/{a}/receipt?sig=")));
    }

    fn sheet() -> HandoverIssued {
        HandoverIssued {
            handover_no: "2019-R01-130500-0509-001".into(),
            round: "2019-R01".into(),
            city_code: "130500".into(),
            issued_at: time::macros::datetime!(2019-05-09 10:00 +08:00),
            problems: vec![shared::events::HandoverProblem {
                problem_seq: 2,
                previous: Default::default(),
                problem_id: Uuid::nil(),
                jurisdiction: "130502".into(),
                category: "dust".into(),
                severity: "serious".into(),
                site_name: "某工地".into(),
                description: "未苫盖".into(),
                deadline: date!(2019 - 05 - 19),
            }],
        }
    }

    #[test]
    fn the_handover_email_lists_every_problem_in_the_recipients_language() {
        let notice = handover_notice(&sheet(), &receipts());
        let zh = render(&notice.payload, "zh-CN", "邢台市人民政府");
        assert_eq!(zh.subject, "【电子督办单】2019-R01-130500-0509-001：邢台市交办问题 1 个");
        assert!(zh.text.contains("1. [扬尘] 某工地（责任单位 130502，整改期限 2019-05-19）"), "{}", zh.text);
        assert!(zh.text.contains(&receipts().link(notice.id)), "the receipt link is in the text");
        let en = render(&notice.payload, "en", "Xingtai");
        assert!(en.subject.contains("Xingtai"));
        assert!(en.text.contains("[Dust]") || en.text.contains("[dust]") || en.text.contains("Dust"), "{}", en.text);
        let again = handover_resent(notice.id, &notice.payload, "130500", &receipts());
        assert!(render(&again.payload, "zh-CN", "x").subject.starts_with("【再次发送】"));
    }

    #[test]
    fn every_kind_renders_in_both_languages_with_no_placeholder_left() {
        let r = receipts();
        let facts = ProblemFacts {
            problem_id: Uuid::nil(),
            jurisdiction: "130502".into(),
            category: Some("coal_boiler".into()),
            site_name: Some("某厂".into()),
            description: Some("燃煤锅炉未淘汰".into()),
            deadline: Some(date!(2019 - 06 - 10)),
        };
        let overdue = ProblemOverdue {
            problem_id: Uuid::nil(),
            problem_seq: 3,
            previous: Default::default(),
            city_code: "130500".into(),
            jurisdiction: "130502".into(),
            deadline: date!(2019 - 06 - 10),
            overdue_on: date!(2019 - 06 - 11),
        };
        let escalated = CityEscalated {
            city_code: "130500".into(),
            level: "summons".into(),
            previous_level: Some("listed_supervision".into()),
            overdue: 12,
            reopened: 3,
            rebounds: 1,
            escalated_at: time::macros::datetime!(2019-06-12 09:00 +08:00),
        };
        let reopened = ProblemReopened {
            problem_id: Uuid::nil(),
            problem_seq: 4,
            previous: Default::default(),
            city_code: "130500".into(),
            result: "fake_rectification".into(),
            team: "T-410".into(),
            deadline: date!(2019 - 06 - 20),
            verified_at: time::macros::datetime!(2019-06-13 09:00 +08:00),
        };
        let rerouted = ProblemRerouted {
            problem_id: Uuid::nil(),
            problem_seq: 2,
            previous: Default::default(),
            city_code: "130400".into(),
            from_jurisdiction: "130502".into(),
            to_jurisdiction: "130402".into(),
            reason: "属邯郸市辖区".into(),
            deadline: date!(2019 - 06 - 20),
            category: "dust".into(),
            site_name: "某工地".into(),
            description: "未苫盖".into(),
            rerouted_at: time::macros::datetime!(2019-06-01 09:00 +08:00),
        };
        let summons = shared::events::SummonsScheduled {
            summons_id: Uuid::nil(),
            city_code: "130500".into(),
            officials: vec![shared::events::Official { name: "张某某".into(), post: "市长".into() }],
            date: date!(2019 - 06 - 20),
            place: "约谈室".into(),
            reasons: "逾期问题 12 个".into(),
            problems: vec![Uuid::nil()],
            scheduled_at: time::macros::datetime!(2019-06-13 09:00 +08:00),
        };
        let notices = [
            handover_notice(&sheet(), &r),
            deadline_reminder("130502", std::slice::from_ref(&facts), &r),
            overdue_notice(&overdue, Some(&facts), &r),
            reopened_notice(&reopened, Some(&facts), &r),
            reroute_notice(&rerouted, &r),
            escalation_notice(&escalated, &r),
            unacknowledged_notice(Uuid::nil(), &handover_notice(&sheet(), &r).payload, "130500", &r),
            summons_notice(&summons, &r),
        ];
        for notice in &notices {
            for language in LANGUAGES {
                let out = render(&notice.payload, language, "收件人");
                for text in [&out.subject, &out.text, &out.sms] {
                    assert!(!text.contains('{'), "{:?} {language}: a placeholder is left in {text}", notice.kind);
                }
            }
        }
        let zh = render(&notices[5].payload, "zh-CN", "邢台市人民政府");
        assert!(zh.subject.contains("约谈") && zh.sms.contains("约谈"), "{zh:?}");
        let en = render(&notices[3].payload, "en", "Xingtai");
        assert!(en.text.contains("fake rectification"), "{}", en.text);
        assert_eq!(notices[4].jurisdiction, "130402", "a reroute goes to the new owner");
        assert_eq!(notices[4].city_code, "130400");
        assert!(Kind::Escalation.urgent() && Kind::Overdue.urgent() && !Kind::Handover.urgent());
        let summoned = render(&notices[7].payload, "zh-CN", "邢台市人民政府");
        assert!(summoned.text.contains("张某某 (市长)") && summoned.text.contains("约谈室"), "{}", summoned.text);
        assert_eq!(Kind::Summons.audience(), Audience::OwnerAndUnits, "the package units are told too");
    }

    #[test]
    fn the_sheet_has_a_header_and_a_row_a_problem_in_csv_and_xlsx() {
        let notice = handover_notice(&sheet(), &receipts());
        let rows = sheet_rows(&notice.payload, "zh-CN");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1][2], "扬尘");
        let csv = String::from_utf8(sheet_csv(&rows)).unwrap();
        assert!(csv.starts_with('\u{feff}') && csv.contains("某工地"));
        let xlsx = sheet_xlsx(&rows, "2019-R01-130500-0509-001").unwrap();
        assert_eq!(&xlsx[..2], b"PK", "an XLSX file is a zip archive");
    }
}
