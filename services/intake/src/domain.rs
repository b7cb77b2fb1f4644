//! Intake's rules, free of I/O: what a valid round, team and inspection are, how a site is
//! recognised, and whether a report is new, a duplicate or a rebound.

use serde::{Deserialize, Serialize};
use shared::error::Validator;
use shared::events::Site;
use shared::reference;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

pub const ROUND_KINDS: &[&str] = &[
    "regular",
    "emergency_response",
    "scattered_polluting",
    "coal_to_gas",
    "special_emission_limit",
    "small_thermal_power",
];

pub const SEVERITIES: &[&str] = &["minor", "general", "serious"];

/// Round and team ids are the admin's choice: letters, digits and `-`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoundRequest {
    pub starts_on: Date,
    pub ends_on: Date,
    #[serde(default = "regular")]
    pub kind: String,
    pub cities: Vec<String>,
}

fn regular() -> String {
    "regular".into()
}

pub fn validate_round(id: &str, round: &RoundRequest) -> Validator {
    let mut v = Validator::new();
    v.check(is_valid_id(id), "round", "letters, digits and '-' only");
    v.check(round.starts_on <= round.ends_on, "ends_on", "must not be before starts_on");
    v.check(ROUND_KINDS.contains(&round.kind.as_str()), "kind", format!("one of {}", ROUND_KINDS.join(", ")));
    v.check(!round.cities.is_empty(), "cities", "a round covers at least one city");
    for (i, city) in round.cities.iter().enumerate() {
        v.check(
            reference::city(city).is_some(),
            format!("cities[{i}]"),
            format!("{city} is not one of the 39 key cities"),
        );
    }
    v
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TeamRequest {
    /// The 6-digit code of the team's home province (`370000`).
    pub home_province: String,
    pub members: Vec<String>,
}

pub fn validate_team(id: &str, team: &TeamRequest) -> Validator {
    let mut v = Validator::new();
    v.check(is_valid_id(id), "team", "letters, digits and '-' only");
    let province = &team.home_province;
    v.check(
        province.len() == 6 && province.bytes().all(|b| b.is_ascii_digit()) && province.ends_with("0000"),
        "home_province",
        "a 6-digit province code such as 370000",
    );
    v.check(!team.members.is_empty() && team.members.len() <= 10, "members", "1 to 10 members");
    for (i, member) in team.members.iter().enumerate() {
        v.check(!member.trim().is_empty(), format!("members[{i}]"), "a member needs a name");
    }
    v
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoundTeamRequest {
    pub cities: Vec<String>,
}

/// A team may cover only cities of the round, and never a city of its own province (异地执法).
pub fn validate_round_team(request: &RoundTeamRequest, round_cities: &[String], home_province: &str) -> Validator {
    let mut v = Validator::new();
    v.check(!request.cities.is_empty(), "cities", "a team covers at least one city");
    for (i, city) in request.cities.iter().enumerate() {
        let field = format!("cities[{i}]");
        if !round_cities.contains(city) {
            v.fail(field, format!("{city} is not a city of this round"));
        } else if reference::province_of(city) == home_province {
            v.fail(
                field,
                format!("{city} is in the team's home province {home_province}: teams inspect other provinces only"),
            );
        }
    }
    v
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CityPackageRequest {
    pub ministry_department: String,
    pub affiliated_unit: String,
    pub provincial_department: String,
}

pub fn validate_package(city: &str, p: &CityPackageRequest) -> Validator {
    let mut v = Validator::new();
    v.check(reference::city(city).is_some(), "city", format!("{city} is not one of the 39 key cities"));
    for (field, value) in [
        ("ministry_department", &p.ministry_department),
        ("affiliated_unit", &p.affiliated_unit),
        ("provincial_department", &p.provincial_department),
    ] {
        v.check(!value.trim().is_empty() && value.len() <= 200, field, "the unit's name (at most 200 bytes)");
    }
    v
}

/// The campaign office's correction of a report: withdrawn as entered in error, or merged into
/// the entry it repeats.
#[derive(Debug, Clone, Deserialize)]
pub struct Correction {
    pub reason: String,
    /// For a merge: the entry this one repeats.
    #[serde(default)]
    pub into: Option<Uuid>,
}

/// Evidence as the contract declares it: internal evidence is never published.
pub use shared::events::Evidence as EvidenceItem;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProblemInput {
    pub id: Uuid,
    /// May be left out at a site check of a listed enterprise during an alert: it is then an
    /// emergency-plan problem ([`category_at`]).
    #[serde(default)]
    pub category: String,
    #[serde(default = "general")]
    pub severity: String,
    pub description: String,
    #[serde(default)]
    pub evidence: Vec<EvidenceItem>,
}

fn general() -> String {
    "general".into()
}

/// Coordinates as the field device gives them: WGS 84 (GPS), or GCJ-02 (most Chinese map apps),
/// which intake converts to WGS 84 before anything is stored.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CoordinateSystem {
    #[default]
    Wgs84,
    Gcj02,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteInput {
    pub name: String,
    #[serde(default)]
    pub credit_code: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    pub lat: f64,
    pub lon: f64,
    #[serde(default)]
    pub coordinate_system: CoordinateSystem,
    /// How far off the device says the position may be, in metres (the browser's `accuracy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_m: Option<f64>,
    /// A position to take with care: `low_accuracy` (as the device reported it) or `manual`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_flag: Option<String>,
}

pub const POSITION_FLAGS: &[&str] = &["low_accuracy", "manual"];

impl SiteInput {
    /// The site as stored and published: WGS 84.
    pub fn to_wgs84(&self) -> Site {
        let (lat, lon) = match self.coordinate_system {
            CoordinateSystem::Wgs84 => (self.lat, self.lon),
            CoordinateSystem::Gcj02 => gcj02_to_wgs84(self.lat, self.lon),
        };
        Site { name: self.name.clone(), credit_code: self.credit_code.clone(), address: self.address.clone(), lat, lon }
    }

    /// The site as the inspection keeps it: WGS 84, with how sure the device was of the
    /// position (campaign-internal: events and the public record carry the site alone).
    pub fn stored(&self, site: &Site) -> serde_json::Value {
        let mut stored = serde_json::to_value(site).expect("a site serialises");
        if let Some(accuracy) = self.accuracy_m {
            stored["accuracy_m"] = accuracy.into();
        }
        if let Some(flag) = &self.position_flag {
            stored["position_flag"] = flag.as_str().into();
        }
        stored
    }
}

const GCJ_A: f64 = 6_378_245.0;
const GCJ_EE: f64 = 0.006_693_421_622_965_943;

fn outside_china(lat: f64, lon: f64) -> bool {
    !(72.004..=137.8347).contains(&lon) || !(0.8293..=55.8271).contains(&lat)
}

fn gcj_shift(x: f64, y: f64) -> (f64, f64) {
    use std::f64::consts::PI;
    let common = (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    let lat = -100.0
        + 2.0 * x
        + 3.0 * y
        + 0.2 * y * y
        + 0.1 * x * y
        + 0.2 * x.abs().sqrt()
        + common
        + (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0
        + (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    let lon = 300.0
        + x
        + 2.0 * y
        + 0.1 * x * x
        + 0.1 * x * y
        + 0.1 * x.abs().sqrt()
        + common
        + (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0
        + (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    (lat, lon)
}

/// WGS 84 to GCJ-02 (the published obfuscation).
pub fn wgs84_to_gcj02(lat: f64, lon: f64) -> (f64, f64) {
    use std::f64::consts::PI;
    if outside_china(lat, lon) {
        return (lat, lon);
    }
    let (d_lat, d_lon) = gcj_shift(lon - 105.0, lat - 35.0);
    let rad = lat / 180.0 * PI;
    let magic = 1.0 - GCJ_EE * rad.sin() * rad.sin();
    let sqrt_magic = magic.sqrt();
    let d_lat = (d_lat * 180.0) / ((GCJ_A * (1.0 - GCJ_EE)) / (magic * sqrt_magic) * PI);
    let d_lon = (d_lon * 180.0) / (GCJ_A / sqrt_magic * rad.cos() * PI);
    (lat + d_lat, lon + d_lon)
}

/// GCJ-02 back to WGS 84, by iterating the forward transform to well under a metre.
pub fn gcj02_to_wgs84(lat: f64, lon: f64) -> (f64, f64) {
    let (mut w_lat, mut w_lon) = (lat, lon);
    for _ in 0..30 {
        let (g_lat, g_lon) = wgs84_to_gcj02(w_lat, w_lon);
        let (e_lat, e_lon) = (g_lat - lat, g_lon - lon);
        w_lat -= e_lat;
        w_lon -= e_lon;
        if e_lat.abs() < 1e-9 && e_lon.abs() < 1e-9 {
            break;
        }
    }
    (w_lat, w_lon)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InspectionRequest {
    pub id: Uuid,
    pub round: String,
    pub team: String,
    pub city_code: String,
    #[serde(default)]
    pub county_code: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
    pub site: SiteInput,
    #[serde(default)]
    pub problems: Vec<ProblemInput>,
}

/// Checks everything that needs no stored state; each bad field is named.
pub fn validate_inspection(inspection: &InspectionRequest) -> Validator {
    let mut v = Validator::new();
    v.check(is_valid_id(&inspection.round), "round", "letters, digits and '-' only");
    let city_known = v.check(
        reference::city(&inspection.city_code).is_some(),
        "city_code",
        format!("{} is not one of the 39 key cities", inspection.city_code),
    );
    if let Some(county) = &inspection.county_code
        && city_known
    {
        v.check(
            reference::city_of_county(county).is_some_and(|c| c.code == inspection.city_code),
            "county_code",
            format!("{county} is not a county of {}", inspection.city_code),
        );
    }
    let site = &inspection.site;
    v.check(
        !site.name.trim().is_empty() && site.name.len() <= 200,
        "site.name",
        "a site needs a name (at most 200 bytes)",
    );
    v.check((-90.0..=90.0).contains(&site.lat), "site.lat", "latitude must be between -90 and 90");
    v.check((-180.0..=180.0).contains(&site.lon), "site.lon", "longitude must be between -180 and 180");
    if let Some(accuracy) = site.accuracy_m {
        v.check(accuracy.is_finite() && accuracy >= 0.0, "site.accuracy_m", "metres, zero or more");
    }
    if let Some(flag) = &site.position_flag {
        v.check(
            POSITION_FLAGS.contains(&flag.as_str()),
            "site.position_flag",
            format!("one of {}", POSITION_FLAGS.join(", ")),
        );
    }
    if let Some(code) = &site.credit_code {
        v.check(
            is_valid_credit_code(code),
            "site.credit_code",
            "not a valid unified social credit code (GB 32100-2015)",
        );
    }
    for (i, problem) in inspection.problems.iter().enumerate() {
        // Left out, it is settled once the emergency lists are read (`category_at`).
        v.check(
            problem.category.is_empty() || reference::category(&problem.category).is_some(),
            format!("problems[{i}].category"),
            format!("{:?} is not a known category", problem.category),
        );
        v.check(
            SEVERITIES.contains(&problem.severity.as_str()),
            format!("problems[{i}].severity"),
            format!("one of {}", SEVERITIES.join(", ")),
        );
        v.check(
            !problem.description.trim().is_empty() && problem.description.len() <= 4000,
            format!("problems[{i}].description"),
            "a problem needs a description (at most 4000 bytes)",
        );
        if inspection.problems[..i].iter().any(|p| p.id == problem.id) {
            v.fail(format!("problems[{i}].id"), "the same problem id twice in one inspection");
        }
    }
    v
}

/// Alert levels of the heavy-pollution emergency plans (预警), lowest first.
pub const ALERT_LEVELS: &[&str] = &["yellow", "orange", "red"];

/// An enterprise on a city's emergency list (应急减排清单): the measures it must take at each
/// alert level.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmergencyEnterprise {
    pub credit_code: String,
    pub name: String,
    #[serde(default)]
    pub measures: std::collections::BTreeMap<String, String>,
}

pub fn validate_emergency_enterprise(e: &EmergencyEnterprise) -> Validator {
    let mut v = Validator::new();
    v.check(
        is_valid_credit_code(&e.credit_code),
        "credit_code",
        "not a valid unified social credit code (GB 32100-2015)",
    );
    v.check(!e.name.trim().is_empty() && e.name.len() <= 200, "name", "an enterprise needs a name (at most 200 bytes)");
    for level in e.measures.keys() {
        v.check(ALERT_LEVELS.contains(&level.as_str()), format!("measures.{level}"), "one of yellow, orange, red");
    }
    v
}

/// An alert period a city declares (预警): its level, from and to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertRequest {
    pub level: String,
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
}

pub fn validate_alert(id: &str, alert: &AlertRequest) -> Validator {
    let mut v = Validator::new();
    v.check(is_valid_id(id), "alert", "letters, digits and '-' only");
    v.check(ALERT_LEVELS.contains(&alert.level.as_str()), "level", "one of yellow, orange, red");
    v.check(alert.from < alert.to, "to", "an alert ends after it starts");
    v
}

/// An item of a city's clean-up register, as the office sends it: its id in the register, its
/// name, the county, and its state now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterItem {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub county_code: Option<String>,
    pub state: String,
}

pub fn validate_register_item(register: &reference::Register, city: &str, item: &RegisterItem) -> Validator {
    let mut v = Validator::new();
    v.check(!item.id.trim().is_empty() && item.id.len() <= 64, "id", "an item needs an id (at most 64 bytes)");
    v.check(!item.name.trim().is_empty() && item.name.len() <= 200, "name", "an item needs a name (at most 200 bytes)");
    if let Some(county) = &item.county_code {
        v.check(
            reference::city_of_county(county).is_some_and(|c| c.code == city),
            "county_code",
            format!("not a county of {city}"),
        );
    }
    v.check(register.states.contains(&item.state.as_str()), "state", format!("one of {}", register.states.join(", ")));
    v
}

/// The alert a site check was made under, when it is an emergency-plan check: the site is on
/// its city's emergency list and one or more alerts covered the moment of the check (the
/// highest of them).
pub fn emergency_alert<'a>(listed: bool, alerts_then: &[&'a str]) -> Option<&'a str> {
    if !listed {
        return None;
    }
    alerts_then.iter().copied().max_by_key(|level| ALERT_LEVELS.iter().position(|l| l == level))
}

/// A problem's category: as reported, or, left out at an emergency-plan check, `emergency_plan`;
/// left out anywhere else, none (the report is refused).
pub fn category_at(reported: &str, emergency_alert: Option<&str>) -> Option<String> {
    match (reported, emergency_alert) {
        ("", Some(_)) => Some("emergency_plan".into()),
        ("", None) => None,
        (category, _) => Some(category.into()),
    }
}

/// A unified social credit code made whole from its first 17 characters (its check character
/// added), or none when they are not 17 of its alphabet.
pub fn with_check_character(first17: &str) -> Option<String> {
    let bytes = first17.as_bytes();
    if bytes.len() != 17 {
        return None;
    }
    let mut sum = 0;
    for (i, &b) in bytes.iter().enumerate() {
        sum += CREDIT_CODE_CHARS.iter().position(|&c| c == b)? as u32 * CREDIT_CODE_WEIGHTS[i];
    }
    let check = CREDIT_CODE_CHARS[((31 - sum % 31) % 31) as usize] as char;
    Some(format!("{first17}{check}"))
}

/// The characters of a unified social credit code, in the order of their values.
const CREDIT_CODE_CHARS: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const CREDIT_CODE_WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/// Checks a unified social credit code's length, alphabet and check character (GB 32100-2015).
pub fn is_valid_credit_code(code: &str) -> bool {
    let bytes = code.as_bytes();
    if bytes.len() != 18 {
        return false;
    }
    let value = |b: u8| CREDIT_CODE_CHARS.iter().position(|&c| c == b).map(|p| p as u32);
    let mut sum = 0;
    for (i, &b) in bytes[..17].iter().enumerate() {
        match value(b) {
            Some(v) => sum += v * CREDIT_CODE_WEIGHTS[i],
            None => return false,
        }
    }
    let check = (31 - sum % 31) % 31;
    value(bytes[17]) == Some(check)
}

/// How a site is recognised across reports: by its credit code when it has one, else by its
/// name and its location to about ten metres.
pub fn site_key(site: &Site) -> String {
    match &site.credit_code {
        Some(code) => format!("credit:{code}"),
        None => {
            let name: String = site.name.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
            format!("place:{name}@{:.4},{:.4}", site.lat, site.lon)
        }
    }
}

/// Where a rebound found on a re-check was: the closed problem's site as reported, or, for last
/// year's problems (never reported to intake), its name at the city's centre.
pub fn rebound_site(reported: Option<Site>, site_name: Option<&str>, city_code: &str) -> Site {
    reported.unwrap_or_else(|| {
        let (lat, lon) = reference::city(city_code).map_or((0.0, 0.0), |c| (c.lat, c.lon));
        let name = site_name.filter(|n| !n.trim().is_empty()).unwrap_or("复查点位 (re-checked site)").to_string();
        Site { name, credit_code: None, address: None, lat, lon }
    })
}

/// What a rebound's report says: the re-check's finding, then what the closed problem said.
pub fn rebound_description(result: &str, reported: Option<&str>) -> String {
    let finding = if result == "fake_rectification" { "复查发现虚假整改" } else { "复查发现问题反弹" };
    match reported {
        Some(earlier) => format!("{finding}（回潮）：{earlier}"),
        None => format!("{finding}（回潮）"),
    }
}

/// The latest ledger entry for the same site and category, and whether it is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EarlierEntry {
    pub problem_id: Uuid,
    pub closed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// A new ledger entry.
    Reported,
    /// The same site and category while an earlier entry is open: no new entry.
    Duplicate { duplicate_of: Uuid },
    /// The same site and category after the earlier entry closed: a new entry, flagged.
    Rebound { rebound_of: Uuid },
}

pub fn classify(earlier: Option<EarlierEntry>) -> Outcome {
    match earlier {
        None => Outcome::Reported,
        Some(e) if e.closed => Outcome::Rebound { rebound_of: e.problem_id },
        Some(e) => Outcome::Duplicate { duplicate_of: e.problem_id },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rebound_is_where_the_closed_problem_was() {
        let reported = Site { name: "丙厂".into(), credit_code: None, address: None, lat: 37.1, lon: 114.5 };
        assert_eq!(rebound_site(Some(reported.clone()), Some("other"), "130500"), reported);
        let legacy = rebound_site(None, Some("某工地"), "130500");
        assert_eq!(legacy.name, "某工地");
        assert!(legacy.lat > 30.0 && legacy.lon > 100.0, "at the city's centre: {legacy:?}");
        assert!(rebound_description("not_rectified", Some("露天堆放")).ends_with("露天堆放"));
    }

    pub fn sample() -> InspectionRequest {
        serde_json::from_value(serde_json::json!({
            "id": "0190f6c2-0000-7000-8000-000000000001", "round": "2019-R01", "team": "T-370",
            "city_code": "130500", "county_code": "130502", "checked_at": "2019-05-09T10:20:00+08:00",
            "site": { "name": "某某铸造厂", "credit_code": "91350100M000100Y43", "lat": 37.07, "lon": 114.50 },
            "problems": [ { "id": "0190f6c2-0000-7000-8000-000000000002", "category": "scattered_polluting",
                            "severity": "serious", "description": "露天堆放" } ]
        }))
        .unwrap()
    }

    fn fields(v: Validator) -> Vec<String> {
        match v.finish() {
            Ok(()) => vec![],
            Err(e) => e.field_errors().into_iter().map(|f| f.field).collect(),
        }
    }

    #[test]
    fn an_emergency_plan_check_is_a_listed_site_during_an_alert_and_its_problems_default_to_the_plan() {
        assert_eq!(emergency_alert(true, &["yellow", "red", "orange"]), Some("red"));
        assert_eq!(emergency_alert(true, &[]), None, "listed, but no alert then");
        assert_eq!(emergency_alert(false, &["red"]), None, "an alert, but not a listed site");
        assert_eq!(category_at("", Some("orange")).as_deref(), Some("emergency_plan"));
        assert_eq!(category_at("dust", Some("orange")).as_deref(), Some("dust"), "what the inspector said stands");
        assert_eq!(category_at("", None), None);
        let code = with_check_character("91130500MA0A1B2C3").unwrap();
        assert!(is_valid_credit_code(&code), "{code}");
        assert_eq!(with_check_character("91130500MA0A1B2C"), None);
    }

    #[test]
    fn credit_codes_are_checked_by_their_check_character() {
        assert!(is_valid_credit_code("91350100M000100Y43"));
        assert!(is_valid_credit_code("911100001000044477")); // a long-registered enterprise
        assert!(!is_valid_credit_code("91350100M000100Y44"), "wrong check character");
        assert!(!is_valid_credit_code("91350100M000100Y4"), "too short");
        assert!(!is_valid_credit_code("91350100I000100Y43"), "I is not in the alphabet");
    }

    #[test]
    fn a_good_inspection_passes() {
        assert_eq!(fields(validate_inspection(&sample())), Vec::<String>::new());
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut bad = sample();
        bad.county_code = Some("130402".into());
        bad.site.lat = 200.0;
        bad.site.credit_code = Some("91350100M000100Y44".into());
        bad.problems[0].category = "littering".into();
        assert_eq!(
            fields(validate_inspection(&bad)),
            ["county_code", "site.lat", "site.credit_code", "problems[0].category"]
        );
        let mut unknown_city = sample();
        unknown_city.city_code = "999900".into();
        assert_eq!(fields(validate_inspection(&unknown_city)), ["city_code"]);
    }

    #[test]
    fn a_position_says_how_sure_the_device_was() {
        let mut inspection = sample();
        inspection.site.accuracy_m = Some(-1.0);
        inspection.site.position_flag = Some("guessed".into());
        assert_eq!(fields(validate_inspection(&inspection)), ["site.accuracy_m", "site.position_flag"]);
        inspection.site.accuracy_m = Some(150.0);
        inspection.site.position_flag = Some("low_accuracy".into());
        assert!(fields(validate_inspection(&inspection)).is_empty());
        let stored = inspection.site.stored(&inspection.site.to_wgs84());
        assert_eq!(
            (stored["accuracy_m"].as_f64(), stored["position_flag"].as_str()),
            (Some(150.0), Some("low_accuracy"))
        );
    }

    #[test]
    fn teams_never_cover_their_own_province() {
        let round = vec!["130500".to_string(), "370100".to_string()];
        let ok = RoundTeamRequest { cities: vec!["130500".into()] };
        assert!(validate_round_team(&ok, &round, "370000").is_clean());
        let own = RoundTeamRequest { cities: vec!["370100".into()] };
        assert_eq!(fields(validate_round_team(&own, &round, "370000")), ["cities[0]"]);
        let outside = RoundTeamRequest { cities: vec!["410100".into()] };
        assert_eq!(fields(validate_round_team(&outside, &round, "370000")), ["cities[0]"]);
    }

    #[test]
    fn the_same_site_and_category_is_a_duplicate_while_open_and_a_rebound_after() {
        let id = Uuid::now_v7();
        assert_eq!(classify(None), Outcome::Reported);
        assert_eq!(
            classify(Some(EarlierEntry { problem_id: id, closed: false })),
            Outcome::Duplicate { duplicate_of: id }
        );
        assert_eq!(classify(Some(EarlierEntry { problem_id: id, closed: true })), Outcome::Rebound { rebound_of: id });
    }

    #[test]
    fn gcj02_input_is_converted_to_wgs84() {
        // Tian'anmen: about 600 m between the two systems.
        let (wgs_lat, wgs_lon) = (39.908_692, 116.397_477);
        let (gcj_lat, gcj_lon) = wgs84_to_gcj02(wgs_lat, wgs_lon);
        assert!((gcj_lat - wgs_lat).abs() > 0.001 && (gcj_lon - wgs_lon).abs() > 0.005, "{gcj_lat},{gcj_lon}");
        let (back_lat, back_lon) = gcj02_to_wgs84(gcj_lat, gcj_lon);
        assert!((back_lat - wgs_lat).abs() < 1e-7 && (back_lon - wgs_lon).abs() < 1e-7);
        let mut site = sample().site;
        site.coordinate_system = CoordinateSystem::Gcj02;
        site.lat = gcj_lat;
        site.lon = gcj_lon;
        let stored = site.to_wgs84();
        assert!((stored.lat - wgs_lat).abs() < 1e-7);
        // Outside China there is no offset.
        assert_eq!(wgs84_to_gcj02(51.5, -0.12), (51.5, -0.12));
    }

    #[test]
    fn sites_are_known_by_credit_code_else_by_name_and_place() {
        let mut site = sample().site.to_wgs84();
        assert_eq!(site_key(&site), "credit:91350100M000100Y43");
        site.credit_code = None;
        assert_eq!(site_key(&site), "place:某某铸造厂@37.0700,114.5000");
        site.name = "  某某   铸造厂 ".into();
        assert_eq!(site_key(&site), "place:某某 铸造厂@37.0700,114.5000");
    }
}
