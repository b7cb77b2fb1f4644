//! Verification's rules, free of I/O: when a rectification may be reported, who may give a
//! verdict, and what a verdict does.

use serde::Deserialize;
use shared::error::{ApiError, Validator};
use shared::reference;
use time::{Date, Duration, OffsetDateTime};

/// Statuses from which a government may report rectification.
pub const RECTIFIABLE: &[&str] = &["assigned", "acknowledged", "reopened"];

pub const VERDICTS: &[&str] = &["rectified", "not_rectified", "fake_rectification"];

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Evidence {
    pub url: String,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub internal: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RectificationRequest {
    pub measures: String,
    #[serde(default)]
    pub evidence: Vec<Evidence>,
    #[serde(with = "time::serde::rfc3339")]
    pub completed_at: OffsetDateTime,
}

pub fn validate_rectification(r: &RectificationRequest, now: OffsetDateTime) -> Validator {
    let mut v = Validator::new();
    v.check(
        !r.measures.trim().is_empty() && r.measures.len() <= 8000,
        "measures",
        "describe the measures taken (at most 8000 bytes)",
    );
    v.check(r.completed_at <= now + Duration::hours(1), "completed_at", "must not be in the future");
    for (i, e) in r.evidence.iter().enumerate() {
        v.check(!e.url.trim().is_empty(), format!("evidence[{i}].url"), "evidence needs a URL");
    }
    v
}

#[derive(Debug, Clone, Deserialize)]
pub struct VerdictRequest {
    pub result: String,
    pub team: String,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub evidence: Vec<Evidence>,
}

pub fn validate_verdict(v_req: &VerdictRequest) -> Validator {
    let mut v = Validator::new();
    v.check(VERDICTS.contains(&v_req.result.as_str()), "result", format!("one of {}", VERDICTS.join(", ")));
    v.check(!v_req.team.is_empty(), "team", "the verifying team");
    v
}

/// Any team that did not find the problem and is not from the city's province may verify it.
pub fn may_verify(team: &str, team_province: &str, finder_team: Option<&str>, city_code: &str) -> Result<(), ApiError> {
    if finder_team == Some(team) {
        return Err(ApiError::forbidden("team", "the team that found a problem cannot verify it"));
    }
    if reference::province_of(city_code) == team_province {
        return Err(ApiError::forbidden(
            "team",
            format!("a team from province {team_province} cannot verify in {city_code}"),
        ));
    }
    Ok(())
}

/// What a verdict leaves the problem as: closed, or reopened with a new, shorter deadline.
pub fn after_verdict(result: &str, today: Date, reopened_deadline_days: i64) -> (&'static str, Option<Date>) {
    if result == "rectified" {
        ("closed", None)
    } else {
        ("reopened", Some(today + Duration::days(reopened_deadline_days.max(1))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn the_finder_and_teams_of_the_citys_province_may_not_verify() {
        assert!(may_verify("T-201", "410000", Some("T-130"), "130500").is_ok());
        assert!(may_verify("T-130", "370000", Some("T-130"), "130500").is_err());
        assert!(may_verify("T-131", "130000", Some("T-130"), "130500").is_err());
    }

    #[test]
    fn rectified_closes_and_anything_else_reopens_with_a_shorter_deadline() {
        assert_eq!(after_verdict("rectified", date!(2019 - 06 - 01), 7), ("closed", None));
        assert_eq!(
            after_verdict("fake_rectification", date!(2019 - 06 - 01), 7),
            ("reopened", Some(date!(2019 - 06 - 08)))
        );
    }
}
