//! Assignment's rules, free of I/O: who is responsible, by when, and how sheets are gathered and
//! numbered.

use std::collections::BTreeMap;

use serde::Deserialize;
use shared::error::Validator;
use shared::reference;
use time::{Date, Duration, OffsetDateTime, Time, Weekday};

use crate::config::DeadlinePolicy;

/// The government responsible for a problem: its county when known, else its city.
pub fn responsible_jurisdiction(city_code: &str, county_code: Option<&str>) -> String {
    county_code.filter(|c| !c.is_empty()).unwrap_or(city_code).to_string()
}

fn add_working_days(mut day: Date, days: i64) -> Date {
    let mut left = days;
    while left > 0 {
        day += Duration::days(1);
        if !matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday) {
            left -= 1;
        }
    }
    day
}

/// The deadline for a problem handed over on `day` (Asia/Shanghai): the most specific rule of
/// the policy (category and severity, then category, then default), in calendar or working days.
pub fn deadline(policy: &DeadlinePolicy, category: &str, severity: &str, day: Date) -> Date {
    let days = policy
        .days
        .get(&format!("{category}_{severity}"))
        .or_else(|| policy.days.get(category))
        .or_else(|| policy.days.get("default"))
        .copied()
        .unwrap_or(30)
        .max(1);
    if policy.working_day_categories.iter().any(|c| c == category) {
        add_working_days(day, days)
    } else {
        day + Duration::days(days)
    }
}

/// Severities a policy may name after a category (`dust_serious`).
pub const SEVERITIES: &[&str] = &["minor", "general", "serious"];

/// The most days a policy may give (a year).
pub const MAX_DEADLINE_DAYS: i64 = 366;

/// A new version of the deadline policy, as the campaign office sets it.
#[derive(Debug, Clone, Deserialize)]
pub struct PolicyRequest {
    pub days: BTreeMap<String, i64>,
    #[serde(default)]
    pub working_day_categories: Vec<String>,
    /// Why the policy changes, for the record.
    #[serde(default)]
    pub reason: Option<String>,
}

impl PolicyRequest {
    pub fn policy(&self) -> DeadlinePolicy {
        DeadlinePolicy { days: self.days.clone(), working_day_categories: self.working_day_categories.clone() }
    }
}

/// Whether `key` may key a policy's days: `default`, a category, or a category and severity.
fn is_policy_key(key: &str) -> bool {
    key == "default"
        || reference::category(key).is_some()
        || SEVERITIES.iter().any(|severity| {
            key.strip_suffix(severity)
                .and_then(|rest| rest.strip_suffix('_'))
                .is_some_and(|category| reference::category(category).is_some())
        })
}

/// A policy the office may set: a `default`, known keys, 1 to 366 days each, known categories
/// counted in working days.
pub fn validate_policy(request: &PolicyRequest) -> Validator {
    let mut v = Validator::new();
    v.check(request.days.contains_key("default"), "days.default", "the days for every category not named");
    for (key, days) in &request.days {
        let field = format!("days.{key}");
        if !is_policy_key(key) {
            v.check(false, field, "`default`, a category (`dust`) or a category and severity (`dust_serious`)");
        } else {
            v.check((1..=MAX_DEADLINE_DAYS).contains(days), field, format!("between 1 and {MAX_DEADLINE_DAYS} days"));
        }
    }
    for (i, category) in request.working_day_categories.iter().enumerate() {
        v.check(
            reference::category(category).is_some(),
            format!("working_day_categories[{i}]"),
            "not a known category",
        );
    }
    v.check(request.reason.as_ref().is_none_or(|r| r.len() <= 2000), "reason", "at most 2000 bytes");
    v
}

/// A handover sheet's number: round, city, day (MMDD) and the day's sequence,
/// like `2019-R01-130500-0509-001`.
pub fn handover_number(round: &str, city_code: &str, day: Date, seq: i32) -> String {
    format!("{round}-{city_code}-{:02}{:02}-{seq:03}", day.month() as u8, day.day())
}

/// Reads a daily cut-off such as `17:30`.
pub fn parse_cutoff(text: &str) -> anyhow::Result<Time> {
    let (h, m) = text.split_once(':').ok_or_else(|| anyhow::anyhow!("daily_cutoff {text:?}: expected HH:MM"))?;
    Ok(Time::from_hms(h.trim().parse()?, m.trim().parse()?, 0)?)
}

/// When a city's gathering sheet falls due by time: the window after its oldest problem came
/// in, or the first daily cut-off at or after it (Asia/Shanghai).
pub fn sheet_due_at(oldest: OffsetDateTime, window_millis: i64, cutoff: Option<Time>) -> OffsetDateTime {
    match cutoff {
        None => oldest + Duration::milliseconds(window_millis),
        Some(cutoff) => {
            let oldest = oldest.to_offset(shared::clock::SHANGHAI);
            if oldest.time() <= cutoff {
                oldest.replace_time(cutoff)
            } else {
                (oldest + Duration::days(1)).replace_time(cutoff)
            }
        }
    }
}

/// Whether a city's sheet goes out now: it is full, or its time has come.
pub fn sheet_is_due(
    pending: i64,
    oldest: OffsetDateTime,
    now: OffsetDateTime,
    window_millis: i64,
    cutoff: Option<Time>,
    max_problems: i64,
) -> bool {
    pending > 0 && (pending >= max_problems || now >= sheet_due_at(oldest, window_millis, cutoff))
}

/// The ledger's statuses, in the order a problem moves through them.
pub const STATUSES: &[&str] =
    &["reported", "assigned", "acknowledged", "rectification_reported", "reopened", "closed", "withdrawn", "merged"];

/// Statuses in which a problem is still with its government, so it may be disputed or extended.
pub const OPEN_FOR_THE_GOVERNMENT: &[&str] = &["assigned", "acknowledged", "reopened"];

#[derive(Debug, Clone, Deserialize)]
pub struct DisputeRequest {
    pub reason: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RerouteRequest {
    /// The jurisdiction that is responsible after all.
    pub to: String,
    pub reason: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ExtensionRequest {
    pub deadline: Date,
    pub reason: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Decision {
    /// `grant` or `refuse` (extensions); `dismiss` a dispute.
    pub reason: String,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct JurisdictionRequest {
    pub name: String,
    /// The key city it belongs to.
    pub city_code: String,
}

pub fn validate_reason(reason: &str) -> Validator {
    let mut v = Validator::new();
    v.reason(reason);
    v
}

/// An extension must move the deadline later, and not absurdly far.
pub fn validate_extension(request: &ExtensionRequest, current: Date) -> Validator {
    let mut v = validate_reason(&request.reason);
    v.check(request.deadline > current, "deadline", format!("must be after the current deadline {current}"));
    v.check(
        request.deadline <= current + Duration::days(366),
        "deadline",
        "at most a year beyond the current deadline",
    );
    v
}

/// Whether a receipt given on a notice acknowledges the sheet: the notice must be the city
/// government's own (the sheet is addressed to it), not a copy to a county or a package unit.
pub fn receipt_acknowledges_sheet(addressed_to: &str, city_code: &str) -> bool {
    addressed_to == city_code
}

#[cfg(test)]
mod tests {

    #[test]
    fn only_the_city_governments_receipt_signs_for_the_sheet() {
        assert!(receipt_acknowledges_sheet("130500", "130500"));
        assert!(!receipt_acknowledges_sheet("130500/ministry", "130500"));
        assert!(!receipt_acknowledges_sheet("130502", "130500"));
    }
    use super::*;
    use time::macros::{date, datetime, time};

    #[test]
    fn the_county_is_responsible_when_known() {
        assert_eq!(responsible_jurisdiction("130500", Some("130502")), "130502");
        assert_eq!(responsible_jurisdiction("130500", None), "130500");
        assert_eq!(responsible_jurisdiction("130500", Some("")), "130500");
    }

    #[test]
    fn deadlines_follow_the_most_specific_rule() {
        let policy = DeadlinePolicy::default();
        assert_eq!(deadline(&policy, "dust", "general", date!(2019 - 05 - 09)), date!(2019 - 05 - 19));
        assert_eq!(deadline(&policy, "dust", "serious", date!(2019 - 05 - 09)), date!(2019 - 05 - 14));
        assert_eq!(deadline(&policy, "vocs", "minor", date!(2019 - 05 - 09)), date!(2019 - 06 - 08));
        // Five working days from Thursday 9 May 2019: Fri, Mon, Tue, Wed, Thu.
        assert_eq!(deadline(&policy, "emergency_plan", "general", date!(2019 - 05 - 09)), date!(2019 - 05 - 16));
    }

    #[test]
    fn a_policy_names_known_keys_with_a_default_and_sane_days() {
        let request = |days: &[(&str, i64)], working: &[&str]| PolicyRequest {
            days: days.iter().map(|(k, d)| (k.to_string(), *d)).collect(),
            working_day_categories: working.iter().map(|c| c.to_string()).collect(),
            reason: None,
        };
        let fields = |r: &PolicyRequest| -> Vec<String> {
            validate_policy(r)
                .finish()
                .err()
                .map(|e| e.field_errors().into_iter().map(|f| f.field).collect())
                .unwrap_or_default()
        };
        let ok =
            request(&[("default", 30), ("dust", 4), ("dust_serious", 2), ("coal_to_gas", 90)], &["emergency_plan"]);
        assert!(fields(&ok).is_empty());
        assert!(fields(&request(&[("default", 30), ("scattered_polluting_minor", 20)], &[])).is_empty());
        assert_eq!(fields(&request(&[("dust", 4)], &[])), ["days.default"]);
        assert_eq!(
            fields(&request(&[("default", 0), ("dust_sevire", 3), ("dust", 400)], &["dusty"])),
            ["days.default", "days.dust", "days.dust_sevire", "working_day_categories[0]"]
        );
        // What the office sets is what sheets then use.
        let policy = request(&[("default", 30), ("dust", 4)], &[]).policy();
        assert_eq!(deadline(&policy, "dust", "general", date!(2019 - 05 - 09)), date!(2019 - 05 - 13));
        assert_eq!(deadline(&policy, "vocs", "general", date!(2019 - 05 - 09)), date!(2019 - 06 - 08));
    }

    #[test]
    fn sheets_are_numbered_by_round_city_day_and_sequence() {
        assert_eq!(handover_number("2019-R01", "130500", date!(2019 - 05 - 09), 1), "2019-R01-130500-0509-001");
        assert_eq!(handover_number("2019-R01", "130500", date!(2019 - 12 - 31), 12), "2019-R01-130500-1231-012");
    }

    #[test]
    fn a_sheet_is_due_when_full_or_when_the_window_has_passed() {
        let t0 = datetime!(2019-05-09 02:00 UTC);
        let later = |ms| t0 + Duration::milliseconds(ms);
        assert!(!sheet_is_due(0, t0, later(99_999), 10_000, None, 500));
        assert!(!sheet_is_due(3, t0, later(9_999), 10_000, None, 500));
        assert!(sheet_is_due(3, t0, later(10_000), 10_000, None, 500));
        assert!(sheet_is_due(500, t0, t0, 10_000, None, 500));
    }

    #[test]
    fn with_a_daily_cutoff_a_sheet_goes_at_the_first_cutoff_after_its_oldest_problem() {
        let cutoff = Some(time!(17:30));
        // 10:00 and 17:29 in Shanghai are 02:00 and 09:29 UTC.
        let morning = datetime!(2019-05-09 02:00 UTC);
        assert!(!sheet_is_due(3, morning, datetime!(2019-05-09 09:29 UTC), 10_000, cutoff, 500));
        assert!(sheet_is_due(3, morning, datetime!(2019-05-09 09:30 UTC), 10_000, cutoff, 500));
        // Reported at 18:00 Shanghai: waits for the next day's cut-off.
        let evening = datetime!(2019-05-09 10:00 UTC);
        assert!(!sheet_is_due(3, evening, datetime!(2019-05-10 09:29 UTC), 10_000, cutoff, 500));
        assert!(sheet_is_due(3, evening, datetime!(2019-05-10 09:30 UTC), 10_000, cutoff, 500));
    }

    #[test]
    fn an_extension_moves_the_deadline_later() {
        let current = date!(2019 - 06 - 01);
        let ok = ExtensionRequest { deadline: date!(2019 - 06 - 15), reason: "设备到货延迟".into() };
        assert!(validate_extension(&ok, current).is_clean());
        let earlier = ExtensionRequest { deadline: date!(2019 - 05 - 30), reason: "x".into() };
        assert!(!validate_extension(&earlier, current).is_clean());
    }
}
