//! Verification's rules, free of I/O: when a rectification may be reported, who may give a
//! verdict, and what a verdict does.

use serde::Deserialize;
use shared::error::{ApiError, Validator};
use shared::reference;
use time::{Date, Duration, OffsetDateTime};

use crate::config::{EscalationLadder, Thresholds};

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

/// What a city's record looks like to the escalation ladder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CityCounts {
    pub overdue: i64,
    pub reopened: i64,
    pub rebounds: i64,
}

/// The ladder's steps, lowest first; a step's rank is its position plus one.
pub const LEVELS: [&str; 4] = ["reminder", "listed_supervision", "summons", "special_inspection"];

fn reached(counts: CityCounts, t: Thresholds) -> bool {
    let hit = |count: i64, threshold: i64| threshold > 0 && count >= threshold;
    hit(counts.overdue, t.overdue) || hit(counts.reopened, t.reopened) || hit(counts.rebounds, t.rebounds)
}

/// The highest step of the ladder the counts reach (rank 1 to 4), if any.
pub fn ladder_rank(counts: CityCounts, ladder: &EscalationLadder) -> Option<usize> {
    let steps = [ladder.reminder, ladder.listed_supervision, ladder.summons, ladder.special_inspection];
    steps.iter().rposition(|t| reached(counts, *t)).map(|i| i + 1)
}

/// Whether a problem in `status` with `deadline` is overdue on `today`: past its deadline
/// while still with its government (a rectification reported in time stops the clock).
pub fn is_overdue(status: &str, deadline: Option<Date>, today: Date) -> bool {
    RECTIFIABLE.contains(&status) && deadline.is_some_and(|d| d < today)
}

/// Whether a re-check sweep visits a closed problem: a stable sample by the problem's id, so a
/// sweep run twice picks the same problems.
pub fn in_sample(problem_id: uuid::Uuid, percent: i64) -> bool {
    let bucket = problem_id.as_u128() % 100;
    (bucket as i64) < percent.clamp(0, 100)
}

/// Rounds that end a sweep period: every `every`-th round by start date (1-based).
pub fn ends_sweep_period(ordinal: i64, every: i64) -> bool {
    every > 0 && ordinal > 0 && ordinal % every == 0
}

/// A problem of last year's ledger, imported to be re-verified.
#[derive(Debug, Clone, Deserialize)]
pub struct LegacyProblem {
    pub id: uuid::Uuid,
    pub city_code: String,
    #[serde(default)]
    pub county_code: Option<String>,
    pub category: String,
    pub site_name: String,
    pub closed_on: Date,
}

pub fn validate_legacy(p: &LegacyProblem) -> Validator {
    let mut v = Validator::new();
    v.check(reference::city(&p.city_code).is_some(), "city_code", "not one of the 39 key cities");
    if let Some(county) = &p.county_code {
        v.check(
            reference::city_of_county(county).is_some_and(|c| c.code == p.city_code),
            "county_code",
            format!("{county} is not a county of {}", p.city_code),
        );
    }
    v.check(reference::category(&p.category).is_some(), "category", "not a known category");
    v.check(!p.site_name.trim().is_empty(), "site_name", "the site's name");
    v
}

#[derive(Debug, Clone, Deserialize)]
pub struct ProgressRequest {
    pub stage: String,
    #[serde(default)]
    pub percent_done: Option<u8>,
    #[serde(default)]
    pub note: Option<String>,
}

pub fn validate_progress(p: &ProgressRequest) -> Validator {
    let mut v = Validator::new();
    v.check(!p.stage.trim().is_empty() && p.stage.len() <= 500, "stage", "name the stage reached (at most 500 bytes)");
    v.check(p.percent_done.is_none_or(|pct| pct <= 100), "percent_done", "between 0 and 100");
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn a_city_climbs_the_ladder_as_its_counts_grow() {
        let ladder = EscalationLadder::default();
        let counts = |overdue, reopened, rebounds| CityCounts { overdue, reopened, rebounds };
        assert_eq!(ladder_rank(counts(0, 0, 0), &ladder), None);
        assert_eq!(ladder_rank(counts(1, 0, 0), &ladder), Some(1));
        assert_eq!(ladder_rank(counts(3, 0, 0), &ladder), Some(2));
        assert_eq!(ladder_rank(counts(2, 5, 0), &ladder), Some(3), "any count can lift a city");
        assert_eq!(ladder_rank(counts(10, 0, 0), &ladder), Some(4));
        let no_rebounds = EscalationLadder { reminder: Thresholds { overdue: 1, reopened: 0, rebounds: 0 }, ..ladder };
        assert_eq!(ladder_rank(counts(0, 0, 1), &no_rebounds), None, "a zero threshold is left out");
        assert_eq!(LEVELS[ladder_rank(counts(5, 0, 0), &ladder).unwrap() - 1], "summons");
    }

    #[test]
    fn a_problem_is_overdue_past_its_deadline_until_rectification_is_reported() {
        let today = date!(2019 - 06 - 02);
        assert!(is_overdue("assigned", Some(date!(2019 - 06 - 01)), today));
        assert!(is_overdue("reopened", Some(date!(2019 - 06 - 01)), today));
        assert!(!is_overdue("assigned", Some(date!(2019 - 06 - 02)), today), "the deadline day itself is in time");
        assert!(!is_overdue("rectification_reported", Some(date!(2019 - 06 - 01)), today));
        assert!(!is_overdue("closed", Some(date!(2019 - 06 - 01)), today));
    }

    #[test]
    fn sweeps_come_every_nth_round_and_sample_stably() {
        assert!(!ends_sweep_period(1, 2));
        assert!(ends_sweep_period(2, 2));
        assert!(ends_sweep_period(4, 2));
        let id = uuid::Uuid::now_v7();
        assert!(in_sample(id, 100));
        assert!(!in_sample(id, 0));
        assert_eq!(in_sample(id, 50), in_sample(id, 50));
    }

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
