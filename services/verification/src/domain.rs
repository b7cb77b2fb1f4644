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

/// What a verdict leaves the problem as: closed, or reopened. A reopened problem keeps its
/// deadline: a refused rectification earns no new time (see [`overdue_since`]).
pub fn after_verdict(result: &str) -> &'static str {
    if result == "rectified" { "closed" } else { "reopened" }
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

/// Statuses of a problem not yet closed (nor taken out): with its government, or with a
/// rectification waiting for its verdict.
pub const OPEN: &[&str] = &["assigned", "acknowledged", "reopened", "rectification_reported"];

/// The first day a problem is overdue, if it is overdue on `today` (DESIGN.md, "Overdue,
/// precisely"): the day after its deadline, while no rectification has been accepted. A
/// rectification reported on or before the deadline (`rectified_on`, the day the one waiting
/// for its verdict was reported) holds the clock; one reported late does not. A verdict that
/// refuses it reopens the problem on the same deadline, so it is overdue from that original
/// deadline.
pub fn overdue_since(status: &str, deadline: Option<Date>, rectified_on: Option<Date>, today: Date) -> Option<Date> {
    let deadline = deadline.filter(|d| *d < today)?;
    let held = status == "rectification_reported" && rectified_on.is_some_and(|day| day <= deadline);
    (OPEN.contains(&status) && !held).then(|| deadline + Duration::days(1))
}

/// Whether a re-check sweep visits a closed problem: a stable sample by the problem's id, so a
/// sweep run twice picks the same problems.
pub fn in_sample(problem_id: uuid::Uuid, percent: i64) -> bool {
    let bucket = problem_id.as_u128() % 100;
    (bucket as i64) < percent.clamp(0, 100)
}

/// What a re-check's verdict does: `rectified` confirms the closure; anything else on a problem
/// still closed is a rebound (回潮), entered as a new ledger entry linked to it while the closed
/// one stays closed. On a problem no longer closed it changes nothing.
pub fn recheck_finds_rebound(result: &str, problem_status: &str) -> bool {
    result != "rectified" && problem_status == "closed"
}

/// The round a rebound found on `today` belongs to: the latest round begun by then (rounds as
/// `(id, starts_on)`), else the earliest one, else `fallback` (the re-check's own round).
pub fn round_on(rounds: &[(String, Date)], today: Date, fallback: &str) -> String {
    rounds
        .iter()
        .filter(|(_, starts_on)| *starts_on <= today)
        .max_by_key(|(_, starts_on)| *starts_on)
        .or_else(|| rounds.iter().min_by_key(|(_, starts_on)| *starts_on))
        .map_or_else(|| fallback.to_string(), |(id, _)| id.clone())
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

/// Most items in one batch from the field.
pub const MAX_BATCH_ITEMS: usize = 1000;

/// One rectification of a batch: what `POST /v1/problems/{id}/rectification` takes, with the
/// problem's id, and optionally the client's id for the rectification (a resend of it is
/// answered `already_had`).
#[derive(Debug, Clone, Deserialize)]
pub struct RectificationItem {
    pub problem_id: uuid::Uuid,
    #[serde(default)]
    pub id: Option<uuid::Uuid>,
    pub measures: String,
    #[serde(default)]
    pub evidence: Vec<Evidence>,
    #[serde(with = "time::serde::rfc3339")]
    pub completed_at: OffsetDateTime,
}

impl RectificationItem {
    pub fn request(&self) -> RectificationRequest {
        RectificationRequest {
            measures: self.measures.clone(),
            evidence: self.evidence.clone(),
            completed_at: self.completed_at,
        }
    }
}

/// One verdict of a batch: what `POST /v1/problems/{id}/verdict` takes, with the problem's id
/// and optionally the client's id for the verdict.
#[derive(Debug, Clone, Deserialize)]
pub struct VerdictItem {
    pub problem_id: uuid::Uuid,
    #[serde(default)]
    pub id: Option<uuid::Uuid>,
    pub result: String,
    pub team: String,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub evidence: Vec<Evidence>,
}

impl VerdictItem {
    pub fn request(&self) -> VerdictRequest {
        VerdictRequest {
            result: self.result.clone(),
            team: self.team.clone(),
            note: self.note.clone(),
            evidence: self.evidence.clone(),
        }
    }
}

/// What a batch item is about and under which client id, if any.
pub trait FieldItem {
    fn problem_id(&self) -> uuid::Uuid;
    fn client_id(&self) -> Option<uuid::Uuid>;
}

impl FieldItem for RectificationItem {
    fn problem_id(&self) -> uuid::Uuid {
        self.problem_id
    }
    fn client_id(&self) -> Option<uuid::Uuid> {
        self.id
    }
}

impl FieldItem for VerdictItem {
    fn problem_id(&self) -> uuid::Uuid {
        self.problem_id
    }
    fn client_id(&self) -> Option<uuid::Uuid> {
        self.id
    }
}

/// A problem as a batch judges it: as stored, then as the batch's earlier items leave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub city_code: String,
    pub jurisdiction: Option<String>,
    pub finder_team: Option<String>,
    pub status: String,
}

/// A rectification or verdict stored under a client's id: about which problem, and by whom
/// (the reporting jurisdiction, or the verifying team).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Earlier {
    pub problem_id: uuid::Uuid,
    pub by: String,
}

/// What becomes of one batch item.
#[derive(Debug)]
pub enum Judgement {
    /// To record now; the problem moves to this status.
    Create(&'static str),
    /// Recorded before under the item's id (a resend): nothing changes.
    AlreadyHad,
    Refused(ApiError),
}

impl Judgement {
    pub fn status(&self) -> &'static str {
        match self {
            Judgement::Create(_) => "created",
            Judgement::AlreadyHad => "already_had",
            Judgement::Refused(_) => "refused",
        }
    }
}

/// The refusal for a problem the caller may not act on or that does not exist: the same
/// words either way, so existence does not leak.
fn unknown_problem(id: uuid::Uuid) -> ApiError {
    ApiError::Invalid(vec![shared::error::FieldError::new("problem_id", format!("problem {id} not found"))])
}

/// Judges a batch's items in order, each as the one before left its problem: resends (by the
/// client's id, stored before or earlier in the batch) are `AlreadyHad` when they are the same
/// problem by the same sender (`by`) and refused on `id` otherwise; an unknown problem is
/// refused on `problem_id`; the rest is `judge`'s, which answers the status an accepted item
/// moves the problem to. `problems` is updated as items are accepted.
pub fn judge_batch<T: FieldItem>(
    items: &[Result<T, ApiError>],
    problems: &mut std::collections::HashMap<uuid::Uuid, Standing>,
    stored: &std::collections::HashMap<uuid::Uuid, Earlier>,
    by: &str,
    mut judge: impl FnMut(&T, &Standing) -> Result<&'static str, ApiError>,
) -> Vec<Judgement> {
    // Client ids met earlier in this batch: the problem, and whether that item was accepted.
    let mut seen: std::collections::HashMap<uuid::Uuid, (uuid::Uuid, bool)> = std::collections::HashMap::new();
    let mut judged = Vec::with_capacity(items.len());
    for item in items {
        let item = match item {
            Ok(item) => item,
            Err(e) => {
                judged.push(Judgement::Refused(ApiError::Invalid(e.field_errors())));
                continue;
            }
        };
        let problem_id = item.problem_id();
        let judgement = if let Some(client_id) = item.client_id()
            && let Some(&(earlier_problem, accepted)) = seen.get(&client_id)
        {
            if accepted && earlier_problem == problem_id {
                Judgement::AlreadyHad
            } else {
                Judgement::Refused(ApiError::conflict(
                    "id",
                    "this id is used by an earlier item of the batch that was refused or is about another problem",
                ))
            }
        } else if let Some(client_id) = item.client_id()
            && let Some(earlier) = stored.get(&client_id)
        {
            if earlier.problem_id == problem_id && earlier.by == by {
                Judgement::AlreadyHad
            } else {
                Judgement::Refused(ApiError::conflict("id", format!("id {client_id} is taken by another record")))
            }
        } else {
            match problems.get_mut(&problem_id) {
                None => Judgement::Refused(unknown_problem(problem_id)),
                Some(standing) => match judge(item, standing) {
                    Ok(status) => {
                        standing.status = status.to_string();
                        Judgement::Create(status)
                    }
                    Err(e) => Judgement::Refused(e),
                },
            }
        };
        if let Some(client_id) = item.client_id() {
            let accepted = matches!(judgement, Judgement::Create(_) | Judgement::AlreadyHad);
            seen.entry(client_id).or_insert((problem_id, accepted));
        }
        judged.push(judgement);
    }
    judged
}

/// The rules of `POST /v1/problems/{id}/rectification` for one item of a local government's
/// batch: a valid report, about a problem handed over to the caller (a city answers for its
/// counties) and still to rectify.
pub fn judge_rectification(
    item: &RectificationItem,
    problem: &Standing,
    jurisdiction: &str,
    now: OffsetDateTime,
) -> Result<&'static str, ApiError> {
    validate_rectification(&item.request(), now).finish()?;
    if !problem.jurisdiction.as_deref().is_some_and(|j| reference::jurisdiction_covers(jurisdiction, j)) {
        return Err(unknown_problem(item.problem_id));
    }
    if !RECTIFIABLE.contains(&problem.status.as_str()) {
        return Err(ApiError::conflict(
            "status",
            format!("the problem is {}; this needs it handed over, or reopened, and not yet rectified", problem.status),
        ));
    }
    Ok("rectification_reported")
}

/// The rules of `POST /v1/problems/{id}/verdict` for one item of a verifier's batch: a valid
/// verdict by the caller's own, registered team (`team_province` is its home province, none if
/// it is not registered), which may verify the problem, on a reported rectification. Answers
/// the status the verdict leaves the problem in.
pub fn judge_verdict(
    item: &VerdictItem,
    problem: &Standing,
    caller_team: &str,
    team_province: Option<&str>,
) -> Result<&'static str, ApiError> {
    validate_verdict(&item.request()).finish()?;
    if item.team != caller_team {
        return Err(ApiError::forbidden("team", format!("your token is for team {caller_team}")));
    }
    let province =
        team_province.ok_or_else(|| ApiError::invalid("team", format!("no team {} is registered", item.team)))?;
    may_verify(&item.team, province, problem.finder_team.as_deref(), &problem.city_code)?;
    if problem.status != "rectification_reported" {
        return Err(ApiError::conflict(
            "status",
            format!("the problem is {}; a verdict needs a reported rectification", problem.status),
        ));
    }
    Ok(after_verdict(&item.result))
}

// The campaign office's acts on a city's ladder: summonses (约谈) and special inspections (专项督察).

/// A verifier's finding on a summons commitment.
pub const COMMITMENT_RESULTS: &[&str] = &["kept", "not_kept"];

/// Whether a summons commitment is unkept on `today`: found not kept, or past its follow-up
/// date without being found kept. Like an overdue problem, an unkept commitment counts on the
/// ladder: the city did not do what its officials signed.
pub fn commitment_unkept(result: Option<&str>, follow_up_on: Date, today: Date) -> bool {
    match result {
        Some("kept") => false,
        Some(_) => true,
        None => follow_up_on < today,
    }
}

/// The ladder's counts with a city's unkept commitments counted as overdue.
pub fn with_unkept_commitments(counts: CityCounts, unkept: i64) -> CityCounts {
    CityCounts { overdue: counts.overdue + unkept, ..counts }
}

/// An official summoned, as named in the request.
#[derive(Debug, Clone, Deserialize)]
pub struct OfficialRequest {
    pub name: String,
    pub post: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ScheduleSummons {
    pub city_code: String,
    pub officials: Vec<OfficialRequest>,
    pub date: Date,
    pub place: String,
    /// The problems and figures that led to it.
    pub reasons: String,
    #[serde(default)]
    pub problems: Vec<uuid::Uuid>,
    /// The office's own note: never published nor sent.
    #[serde(default)]
    pub note: Option<String>,
}

fn known_city(v: &mut Validator, field: &str, code: &str) {
    v.check(reference::city(code).is_some(), field, "one of the key cities (a 6-digit GB/T 2260 code)");
}

pub fn validate_summons(r: &ScheduleSummons) -> Validator {
    let mut v = Validator::new();
    known_city(&mut v, "city_code", &r.city_code);
    v.check(!r.officials.is_empty() && r.officials.len() <= 50, "officials", "name the officials summoned (1 to 50)");
    for (i, o) in r.officials.iter().enumerate() {
        v.text(&format!("officials[{i}].name"), &o.name, 200, "the official's name");
        v.text(&format!("officials[{i}].post"), &o.post, 200, "the official's post");
    }
    v.text("place", &r.place, 500, "where the summons is held");
    v.text("reasons", &r.reasons, 8000, "the problems and figures that led to the summons");
    v.check(r.problems.len() <= 1000, "problems", "at most 1000 problems");
    v.check(r.note.as_ref().is_none_or(|n| n.len() <= 8000), "note", "at most 8000 bytes");
    v
}

#[derive(Debug, Clone, Deserialize)]
pub struct CommitmentRequest {
    pub text: String,
    pub follow_up_on: Date,
}

/// The record that a summons was held, with the written commitments made there.
#[derive(Debug, Clone, Deserialize)]
pub struct HoldSummons {
    pub held_on: Date,
    pub commitments: Vec<CommitmentRequest>,
    #[serde(default)]
    pub note: Option<String>,
}

pub fn validate_held(r: &HoldSummons) -> Validator {
    let mut v = Validator::new();
    v.check(
        !r.commitments.is_empty() && r.commitments.len() <= 100,
        "commitments",
        "the written commitments (1 to 100)",
    );
    for (i, c) in r.commitments.iter().enumerate() {
        v.text(&format!("commitments[{i}].text"), &c.text, 4000, "what was committed");
        v.check(
            c.follow_up_on > r.held_on,
            format!("commitments[{i}].follow_up_on"),
            "a follow-up date after the summons was held",
        );
    }
    v.check(r.note.as_ref().is_none_or(|n| n.len() <= 8000), "note", "at most 8000 bytes");
    v
}

#[derive(Debug, Clone, Deserialize)]
pub struct CommitmentVerdictRequest {
    pub result: String,
    pub team: String,
    #[serde(default)]
    pub note: Option<String>,
}

pub fn validate_commitment_verdict(r: &CommitmentVerdictRequest) -> Validator {
    let mut v = Validator::new();
    v.check(COMMITMENT_RESULTS.contains(&r.result.as_str()), "result", "kept or not_kept");
    v.check(!r.team.is_empty(), "team", "the verifying team");
    v
}

#[derive(Debug, Clone, Deserialize)]
pub struct OpenSpecialInspection {
    pub city_code: String,
    pub scope: shared::events::InspectionScope,
    pub teams: Vec<String>,
    #[serde(default)]
    pub note: Option<String>,
}

pub fn validate_special_inspection(r: &OpenSpecialInspection) -> Validator {
    let mut v = Validator::new();
    known_city(&mut v, "city_code", &r.city_code);
    for (i, c) in r.scope.categories.iter().enumerate() {
        v.check(reference::category(c).is_some(), format!("scope.categories[{i}]"), "a problem category");
    }
    for (i, c) in r.scope.counties.iter().enumerate() {
        v.check(
            reference::city_of_county(c).is_some_and(|city| city.code == r.city_code),
            format!("scope.counties[{i}]"),
            "a county of the city",
        );
    }
    v.check(r.scope.from <= r.scope.to, "scope.to", "on or after scope.from");
    v.check(!r.teams.is_empty() && r.teams.len() <= 20, "teams", "the inspection team(s) (1 to 20)");
    for (i, t) in r.teams.iter().enumerate() {
        v.text(&format!("teams[{i}]"), t, 64, "a team id");
    }
    v.check(r.note.as_ref().is_none_or(|n| n.len() <= 8000), "note", "at most 8000 bytes");
    v
}

#[derive(Debug, Clone, Deserialize)]
pub struct FindingsRequest {
    pub problems: Vec<uuid::Uuid>,
}

/// How a problem enters a special inspection's findings: one found by a team of the case was
/// reported under it (a new finding); any other is an existing problem linked to it.
pub fn finding_kind(finder_team: Option<&str>, case_teams: &[String]) -> &'static str {
    if finder_team.is_some_and(|f| case_teams.iter().any(|t| t == f)) { "reported" } else { "linked" }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ConcludeSpecialInspection {
    pub conclusion: String,
    pub concluded_on: Date,
}

pub fn validate_conclusion(r: &ConcludeSpecialInspection, opened_on: Date) -> Validator {
    let mut v = Validator::new();
    v.text("conclusion", &r.conclusion, 8000, "the conclusion");
    v.check(r.concluded_on >= opened_on, "concluded_on", "on or after the day the case was opened");
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn an_unkept_commitment_is_overdue_and_counts_on_the_ladder() {
        let follow_up = date!(2019 - 07 - 01);
        assert!(!commitment_unkept(None, follow_up, follow_up), "not yet due");
        assert!(commitment_unkept(None, follow_up, date!(2019 - 07 - 02)), "past its date, not found kept");
        assert!(commitment_unkept(Some("not_kept"), follow_up, date!(2019 - 06 - 20)), "found not kept");
        assert!(!commitment_unkept(Some("kept"), follow_up, date!(2019 - 08 - 01)));
        let ladder = EscalationLadder::default();
        let counts = CityCounts { overdue: 9, reopened: 0, rebounds: 0 };
        assert_eq!(ladder_rank(counts, &ladder), Some(3));
        assert_eq!(ladder_rank(with_unkept_commitments(counts, 1), &ladder), Some(4), "the unkept one moves the city");
    }

    #[test]
    fn a_problem_found_by_the_cases_team_is_reported_under_it_and_any_other_is_linked() {
        let teams = vec!["T-SP1".to_string()];
        assert_eq!(finding_kind(Some("T-SP1"), &teams), "reported");
        assert_eq!(finding_kind(Some("T-130"), &teams), "linked");
        assert_eq!(finding_kind(None, &teams), "linked");
    }

    #[test]
    fn a_summons_names_every_bad_field() {
        let r: ScheduleSummons = serde_json::from_value(serde_json::json!({
            "city_code": "999999", "officials": [ { "name": " ", "post": "市长" } ], "date": "2019-06-20",
            "place": "", "reasons": "r" }))
        .unwrap();
        let fields: Vec<String> =
            validate_summons(&r).finish().unwrap_err().field_errors().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["city_code", "officials[0].name", "place"]);
        let held: HoldSummons = serde_json::from_value(serde_json::json!({
            "held_on": "2019-06-20", "commitments": [ { "text": "t", "follow_up_on": "2019-06-20" } ] }))
        .unwrap();
        let fields: Vec<String> =
            validate_held(&held).finish().unwrap_err().field_errors().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["commitments[0].follow_up_on"]);
    }

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
    fn a_problem_is_overdue_past_its_deadline_unless_a_rectification_reported_in_time_holds_the_clock() {
        let (deadline, today) = (Some(date!(2019 - 06 - 01)), date!(2019 - 06 - 10));
        let since = Some(date!(2019 - 06 - 02));
        assert_eq!(overdue_since("assigned", deadline, None, today), since);
        assert_eq!(overdue_since("acknowledged", deadline, None, today), since);
        assert_eq!(
            overdue_since("assigned", deadline, None, date!(2019 - 06 - 01)),
            None,
            "the deadline day is in time"
        );
        assert_eq!(overdue_since("assigned", None, None, today), None, "not handed over yet");
        // Reported on the deadline day: held while it waits for the verdict, however long.
        assert_eq!(overdue_since("rectification_reported", deadline, Some(date!(2019 - 06 - 01)), today), None);
        // Reported late: the clock was not held.
        assert_eq!(overdue_since("rectification_reported", deadline, Some(date!(2019 - 06 - 03)), today), since);
        // Refused: reopened on the same deadline, overdue from it, not from the verdict's day.
        assert_eq!(overdue_since("reopened", deadline, Some(date!(2019 - 05 - 30)), today), since);
        assert_eq!(overdue_since("closed", deadline, None, today), None);
        assert_eq!(overdue_since("withdrawn", deadline, None, today), None);
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
    fn a_failed_recheck_of_a_closed_problem_is_a_rebound() {
        assert!(recheck_finds_rebound("not_rectified", "closed"));
        assert!(recheck_finds_rebound("fake_rectification", "closed"));
        assert!(!recheck_finds_rebound("rectified", "closed"));
        assert!(!recheck_finds_rebound("not_rectified", "withdrawn"), "only a closed problem can come back");
    }

    #[test]
    fn a_rebound_belongs_to_the_round_under_way() {
        let rounds = vec![("R01".to_string(), date!(2019 - 05 - 08)), ("R02".to_string(), date!(2019 - 05 - 23))];
        assert_eq!(round_on(&rounds, date!(2019 - 05 - 30), "2018"), "R02");
        assert_eq!(round_on(&rounds, date!(2019 - 05 - 10), "2018"), "R01");
        assert_eq!(round_on(&rounds, date!(2019 - 01 - 10), "2018"), "R01", "before the campaign: its first round");
        assert_eq!(round_on(&[], date!(2019 - 01 - 10), "2018"), "2018");
    }

    #[test]
    fn the_finder_and_teams_of_the_citys_province_may_not_verify() {
        assert!(may_verify("T-201", "410000", Some("T-130"), "130500").is_ok());
        assert!(may_verify("T-130", "370000", Some("T-130"), "130500").is_err());
        assert!(may_verify("T-131", "130000", Some("T-130"), "130500").is_err());
    }

    #[test]
    fn rectified_closes_and_anything_else_reopens() {
        assert_eq!(after_verdict("rectified"), "closed");
        assert_eq!(after_verdict("not_rectified"), "reopened");
        assert_eq!(after_verdict("fake_rectification"), "reopened");
    }

    mod batches {
        use super::super::*;
        use std::collections::HashMap;
        use time::macros::datetime;
        use uuid::Uuid;

        const NOW: OffsetDateTime = datetime!(2019-06-01 10:00 +08:00);

        fn standing(status: &str) -> Standing {
            Standing {
                city_code: "130500".into(),
                jurisdiction: Some("130502".into()),
                finder_team: Some("T-370".into()),
                status: status.into(),
            }
        }

        fn fix(problem_id: Uuid, id: Option<Uuid>) -> Result<RectificationItem, ApiError> {
            Ok(RectificationItem {
                problem_id,
                id,
                measures: "已取缔".into(),
                evidence: vec![],
                completed_at: datetime!(2019-05-31 09:00 +08:00),
            })
        }

        fn verdict(problem_id: Uuid, result: &str, team: &str) -> Result<VerdictItem, ApiError> {
            Ok(VerdictItem {
                problem_id,
                id: None,
                result: result.into(),
                team: team.into(),
                note: None,
                evidence: vec![],
            })
        }

        fn statuses(judged: &[Judgement]) -> Vec<&'static str> {
            judged.iter().map(Judgement::status).collect()
        }

        fn field(judged: &Judgement) -> String {
            match judged {
                Judgement::Refused(e) => e.field_errors()[0].field.clone(),
                other => panic!("not refused: {other:?}"),
            }
        }

        fn rectify(
            items: &[Result<RectificationItem, ApiError>],
            problems: &mut HashMap<Uuid, Standing>,
            stored: &HashMap<Uuid, Earlier>,
            jurisdiction: &str,
        ) -> Vec<Judgement> {
            judge_batch(items, problems, stored, jurisdiction, |item, p| {
                judge_rectification(item, p, jurisdiction, NOW)
            })
        }

        #[test]
        fn a_second_rectification_of_a_problem_in_one_batch_is_judged_after_the_first() {
            let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
            let mut problems = HashMap::from([(a, standing("acknowledged")), (b, standing("reopened"))]);
            let judged = rectify(&[fix(a, None), fix(a, None), fix(b, None)], &mut problems, &HashMap::new(), "130500");
            assert_eq!(statuses(&judged), ["created", "refused", "created"]);
            assert_eq!(field(&judged[1]), "status");
            assert_eq!(problems[&a].status, "rectification_reported");
        }

        #[test]
        fn a_rectification_names_the_field_that_refuses_it() {
            let (ours, theirs, unknown) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
            let mut elsewhere = standing("assigned");
            elsewhere.jurisdiction = Some("130402".into());
            let mut problems = HashMap::from([(ours, standing("assigned")), (theirs, elsewhere)]);
            let mut blank = fix(ours, None).unwrap();
            blank.measures = "  ".into();
            let mut future = fix(ours, None).unwrap();
            future.completed_at = NOW + Duration::days(1);
            let items = [
                Ok(blank),
                Ok(future),
                fix(theirs, None),
                fix(unknown, None),
                Err(ApiError::invalid("completed_at", "not a date")),
            ];
            let judged = rectify(&items, &mut problems, &HashMap::new(), "130502");
            let fields: Vec<String> = judged.iter().map(field).collect();
            assert_eq!(fields, ["measures", "completed_at", "problem_id", "problem_id", "completed_at"]);
            assert_eq!(problems[&ours].status, "assigned", "nothing refused changes the problem");
        }

        #[test]
        fn a_resend_under_the_same_id_is_already_had_and_another_use_of_the_id_is_refused() {
            let (a, b, id) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
            // Stored before: a resend of the whole batch.
            let stored = HashMap::from([(id, Earlier { problem_id: a, by: "130500".into() })]);
            let mut problems = HashMap::from([(a, standing("rectification_reported")), (b, standing("assigned"))]);
            let judged =
                rectify(&[fix(a, Some(id)), fix(a, Some(id)), fix(b, Some(id))], &mut problems, &stored, "130500");
            assert_eq!(statuses(&judged), ["already_had", "already_had", "refused"]);
            assert_eq!(field(&judged[2]), "id");
            // Another government sending the same id gets no hint of what it is.
            let judged = rectify(&[fix(a, Some(id))], &mut problems, &stored, "130400");
            assert_eq!(field(&judged[0]), "id");
            // Twice in one new batch: the first is created, the second is the same item again.
            let (c, fresh) = (Uuid::now_v7(), Uuid::now_v7());
            problems.insert(c, standing("assigned"));
            let judged = rectify(&[fix(c, Some(fresh)), fix(c, Some(fresh))], &mut problems, &stored, "130500");
            assert_eq!(statuses(&judged), ["created", "already_had"]);
        }

        #[test]
        fn verdicts_follow_the_single_endpoints_rules_item_by_item() {
            let ids: Vec<Uuid> = (0..7).map(|_| Uuid::now_v7()).collect();
            let mut problems: HashMap<Uuid, Standing> =
                ids.iter().map(|id| (*id, standing("rectification_reported"))).collect();
            problems.get_mut(&ids[5]).unwrap().status = "assigned".into();
            let items = [
                verdict(ids[0], "rectified", "T-410"),
                verdict(ids[1], "fake_rectification", "T-410"),
                verdict(ids[0], "rectified", "T-410"),
                verdict(ids[2], "maybe", "T-410"),
                verdict(ids[3], "rectified", "T-411"),
                verdict(ids[5], "rectified", "T-410"),
                verdict(ids[6], "rectified", ""),
            ];
            let judged = judge_batch(&items, &mut problems, &HashMap::new(), "T-410", |item, p| {
                judge_verdict(item, p, "T-410", Some("410000"))
            });
            assert_eq!(
                statuses(&judged),
                ["created", "created", "refused", "refused", "refused", "refused", "refused"]
            );
            assert!(matches!(judged[0], Judgement::Create("closed")));
            assert!(matches!(judged[1], Judgement::Create("reopened")));
            let fields: Vec<String> = judged[2..].iter().map(field).collect();
            assert_eq!(fields, ["status", "result", "team", "status", "team"]);
            assert_eq!((problems[&ids[0]].status.as_str(), problems[&ids[1]].status.as_str()), ("closed", "reopened"));
        }

        #[test]
        fn the_finder_a_team_of_the_province_and_an_unregistered_team_may_not_give_a_verdict() {
            let p = standing("rectification_reported");
            let by = |team: &str, province: Option<&str>| {
                judge_verdict(&verdict(Uuid::now_v7(), "rectified", team).unwrap(), &p, team, province)
                    .unwrap_err()
                    .field_errors()[0]
                    .clone()
            };
            assert_eq!(by("T-370", Some("370000")).field, "team");
            assert!(by("T-130", Some("130000")).detail.contains("province"));
            assert!(by("T-999", None).detail.contains("registered"));
        }
    }
}
