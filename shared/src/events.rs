//! The messaging contract: every event the services exchange, as one type per event kind.
//! Each payload type carries its kind ([`Payload::KIND`]), so an event cannot be published
//! under the wrong kind, and "who consumes X" is a search for the type.
//!
//! Events about a problem carry their producer's own counter for it (`problem_seq`) and the
//! counter of the latest earlier event of each kind (`previous`): a consumer that handles only
//! some of a producer's kinds then knows which earlier event it must have applied first.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// One kind of event: who produces it, about what, and what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventKind {
    pub producer: &'static str,
    pub entity: &'static str,
    pub action: &'static str,
    /// `{entity}.{action}`: the kind's name among its producer's kinds (the keys of `previous`).
    pub name: &'static str,
    /// The CloudEvents `type`: `org.skyledger.{producer}.{entity}.{action}.v1`.
    pub type_name: &'static str,
}

/// The data of one kind of event.
pub trait Payload: Serialize + DeserializeOwned + Send + Sync + 'static {
    const KIND: EventKind;

    /// The problems this event is about, each with its producer's counter: consumers apply one
    /// producer's events about a problem in that order. None for events about no problem.
    fn stamps(&self) -> Vec<Stamp<'_>> {
        Vec::new()
    }
}

/// Where an event stands among its producer's events about one problem.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stamp<'a> {
    pub problem_id: Uuid,
    pub seq: i64,
    pub previous: &'a Previous,
}

impl Stamp<'_> {
    /// The counter of the event a consumer handling `kinds` must have applied before this one
    /// (0: none).
    pub fn needs<'k>(&self, kinds: impl IntoIterator<Item = &'k str>) -> i64 {
        kinds.into_iter().filter_map(|k| self.previous.0.get(k).copied()).max().unwrap_or(0)
    }
}

/// The counter of the latest earlier event of each kind (`problem.assigned` → 1, …) about the
/// same problem from the same producer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Previous(pub BTreeMap<String, i64>);

impl Previous {
    pub fn of(pairs: &[(EventKind, i64)]) -> Self {
        Self(pairs.iter().map(|(k, seq)| (k.name.to_string(), *seq)).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

macro_rules! kind {
    ($name:ident, $producer:literal, $entity:literal, $action:literal) => {
        pub const $name: EventKind = EventKind {
            producer: $producer,
            entity: $entity,
            action: $action,
            name: concat!($entity, ".", $action),
            type_name: concat!("org.skyledger.", $producer, ".", $entity, ".", $action, ".v1"),
        };
    };
}

/// A payload about no problem, or about one problem (fields `problem_id`, `problem_seq`,
/// `previous`).
macro_rules! payload {
    ($ty:ident, $kind:ident) => {
        impl Payload for $ty {
            const KIND: EventKind = $kind;
        }
    };
    ($ty:ident, $kind:ident, one_problem) => {
        impl Payload for $ty {
            const KIND: EventKind = $kind;
            fn stamps(&self) -> Vec<Stamp<'_>> {
                vec![Stamp { problem_id: self.problem_id, seq: self.problem_seq, previous: &self.previous }]
            }
        }
    };
}

kind!(ROUND_CONFIGURED, "intake", "round", "configured");
kind!(TEAM_REGISTERED, "intake", "team", "registered");
kind!(TEAM_ASSIGNED, "intake", "team", "assigned");
kind!(CITY_PACKAGE_CONFIGURED, "intake", "city_package", "configured");
kind!(INSPECTIONS_RECORDED, "intake", "inspections", "recorded");
kind!(PROBLEM_REPORTED, "intake", "problem", "reported");
kind!(PROBLEM_WITHDRAWN, "intake", "problem", "withdrawn");
kind!(PROBLEM_MERGED, "intake", "problem", "merged");
kind!(REGISTER_UPDATED, "intake", "register", "updated");
kind!(PROBLEM_ASSIGNED, "assignment", "problem", "assigned");
kind!(HANDOVER_ISSUED, "assignment", "handover", "issued");
kind!(HANDOVER_ACKNOWLEDGED, "assignment", "handover", "acknowledged");
kind!(PROBLEM_DISPUTED, "assignment", "problem", "disputed");
kind!(PROBLEM_REROUTED, "assignment", "problem", "rerouted");
kind!(PROBLEM_EXTENDED, "assignment", "problem", "extended");
kind!(EXTENSION_REQUESTED, "assignment", "extension", "requested");
kind!(RECTIFICATION_REPORTED, "verification", "rectification", "reported");
kind!(PROBLEM_CLOSED, "verification", "problem", "closed");
kind!(PROBLEM_REOPENED, "verification", "problem", "reopened");
kind!(RECTIFICATION_PROGRESSED, "verification", "rectification", "progressed");
kind!(PROBLEM_OVERDUE, "verification", "problem", "overdue");
kind!(RECHECK_FAILED, "verification", "recheck", "failed");
kind!(CITY_ESCALATED, "verification", "city", "escalated");
kind!(SUMMONS_SCHEDULED, "verification", "summons", "scheduled");
kind!(SUMMONS_HELD, "verification", "summons", "held");
kind!(COMMITMENT_VERIFIED, "verification", "commitment", "verified");
kind!(SPECIAL_INSPECTION_OPENED, "verification", "special_inspection", "opened");
kind!(SPECIAL_INSPECTION_CONCLUDED, "verification", "special_inspection", "concluded");
kind!(NOTICE_DELIVERED, "notification", "notice", "delivered");
kind!(NOTICE_FAILED, "notification", "notice", "failed");
kind!(NOTICE_RECEIPTED, "notification", "notice", "receipted");
kind!(ENTRY_PUBLISHED, "publication", "entry", "published");

pub const ALL: &[EventKind] = &[
    ROUND_CONFIGURED,
    TEAM_REGISTERED,
    TEAM_ASSIGNED,
    CITY_PACKAGE_CONFIGURED,
    INSPECTIONS_RECORDED,
    PROBLEM_REPORTED,
    PROBLEM_WITHDRAWN,
    PROBLEM_MERGED,
    REGISTER_UPDATED,
    PROBLEM_ASSIGNED,
    HANDOVER_ISSUED,
    HANDOVER_ACKNOWLEDGED,
    PROBLEM_DISPUTED,
    PROBLEM_REROUTED,
    PROBLEM_EXTENDED,
    EXTENSION_REQUESTED,
    RECTIFICATION_REPORTED,
    PROBLEM_CLOSED,
    PROBLEM_REOPENED,
    RECTIFICATION_PROGRESSED,
    PROBLEM_OVERDUE,
    RECHECK_FAILED,
    CITY_ESCALATED,
    SUMMONS_SCHEDULED,
    SUMMONS_HELD,
    COMMITMENT_VERIFIED,
    SPECIAL_INSPECTION_OPENED,
    SPECIAL_INSPECTION_CONCLUDED,
    NOTICE_DELIVERED,
    NOTICE_FAILED,
    NOTICE_RECEIPTED,
    ENTRY_PUBLISHED,
];

/// The services that publish events, each to a stream of its own.
pub const PRODUCERS: &[&str] = &["intake", "assignment", "verification", "notification", "publication"];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RoundConfigured {
    pub round: String,
    pub starts_on: Date,
    pub ends_on: Date,
    pub kind: String,
    pub cities: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TeamRegistered {
    pub team: String,
    /// The team's home province as its 6-digit code (`130000`).
    pub home_province: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TeamAssigned {
    pub round: String,
    pub team: String,
    pub cities: Vec<String>,
    /// How many people the team sends this round (its members when it was assigned): the
    /// campaign's person-times add them up. 0 in events from before it was said.
    #[serde(default)]
    pub members: u32,
}

/// A city's package (三位一体包保): the three units that answer for it alongside its government.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CityPackageConfigured {
    pub city_code: String,
    pub ministry_department: String,
    pub affiliated_unit: String,
    pub provincial_department: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Site {
    pub name: String,
    #[serde(default)]
    pub credit_code: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    pub lat: f64,
    pub lon: f64,
}

/// Site checks accepted together (one batch, one city): one event for them all, since a
/// campaign day brings hundreds of thousands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InspectionsRecorded {
    pub city_code: String,
    pub checks: Vec<CheckRecorded>,
}

/// Items of one of a city's clean-up registers as they now stand: the "两散" registers
/// (`scattered_enterprises`, `coal_boilers`) and the coal-to-gas villages
/// (`coal_to_gas_villages`). Each item's latest state wins.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RegisterUpdated {
    pub city_code: String,
    pub register: String,
    pub items: Vec<RegisterItemState>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RegisterItemState {
    pub id: String,
    pub state: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckRecorded {
    pub inspection_id: Uuid,
    pub round: String,
    pub team: String,
    pub county_code: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
    /// Problems that became ledger entries, and those that duplicated an open one.
    pub problems_reported: u32,
    pub duplicates: u32,
    /// The alert level, when this was an emergency-plan check: a site on its city's emergency
    /// list, checked while an alert was declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency_alert: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProblemReported {
    pub problem_id: Uuid,
    pub problem_seq: i64,
    #[serde(default)]
    pub previous: Previous,
    pub inspection_id: Uuid,
    pub round: String,
    /// The finding team: internal, never published.
    pub team: String,
    pub city_code: String,
    pub county_code: Option<String>,
    pub category: String,
    pub severity: String,
    pub description: String,
    pub site: Site,
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
    /// Set when the same site and category had a problem that was closed: a rebound.
    pub rebound_of: Option<Uuid>,
    /// The photos and documents the inspector attached; the disclosure policy shows only those
    /// not marked internal. Absent in events from before it was declared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
}

/// A photo or document attached to a report: where it is, its SHA-256, and whether it is
/// internal (never published).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Evidence {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Anything but an explicit `false` (or no flag) reads as internal: when in doubt, not public.
    #[serde(default, deserialize_with = "internal_unless_false")]
    pub internal: bool,
}

fn internal_unless_false<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    let flag = serde_json::Value::deserialize(deserializer)?;
    Ok(!matches!(flag, serde_json::Value::Bool(false) | serde_json::Value::Null))
}

/// The campaign office withdraws a report entered in error; the ledger entry goes with it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProblemWithdrawn {
    pub problem_id: Uuid,
    pub problem_seq: i64,
    #[serde(default)]
    pub previous: Previous,
    pub city_code: String,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub withdrawn_at: OffsetDateTime,
}

/// The campaign office finds two entries to be one problem: `problem_id` becomes a duplicate of
/// `into` and leaves the ledger.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProblemMerged {
    pub problem_id: Uuid,
    pub problem_seq: i64,
    #[serde(default)]
    pub previous: Previous,
    pub into: Uuid,
    pub city_code: String,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub merged_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProblemAssigned {
    pub problem_id: Uuid,
    pub problem_seq: i64,
    #[serde(default)]
    pub previous: Previous,
    pub handover_no: String,
    pub round: String,
    pub city_code: String,
    pub county_code: Option<String>,
    /// The government responsible: the county when known, else the city.
    pub jurisdiction: String,
    pub category: String,
    pub deadline: Date,
    #[serde(with = "time::serde::rfc3339")]
    pub assigned_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HandoverProblem {
    pub problem_id: Uuid,
    /// The sheet is an event about each problem on it, in the problem's order.
    pub problem_seq: i64,
    #[serde(default)]
    pub previous: Previous,
    pub jurisdiction: String,
    pub category: String,
    pub severity: String,
    pub site_name: String,
    pub description: String,
    pub deadline: Date,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HandoverIssued {
    pub handover_no: String,
    pub round: String,
    /// The sheet is addressed to the city government.
    pub city_code: String,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    pub problems: Vec<HandoverProblem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProblemSeq {
    pub problem_id: Uuid,
    pub problem_seq: i64,
    #[serde(default)]
    pub previous: Previous,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HandoverAcknowledged {
    pub handover_no: String,
    pub city_code: String,
    #[serde(with = "time::serde::rfc3339")]
    pub acknowledged_at: OffsetDateTime,
    pub problems: Vec<ProblemSeq>,
}

/// A government says a problem is not its own.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProblemDisputed {
    pub problem_id: Uuid,
    pub problem_seq: i64,
    #[serde(default)]
    pub previous: Previous,
    pub city_code: String,
    pub jurisdiction: String,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub disputed_at: OffsetDateTime,
}

/// A government asks for more time: the campaign office decides (grant or refuse).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExtensionRequested {
    pub problem_id: Uuid,
    pub problem_seq: i64,
    #[serde(default)]
    pub previous: Previous,
    pub extension_id: Uuid,
    pub city_code: String,
    pub jurisdiction: String,
    pub requested_deadline: Date,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
}

/// The campaign office hands a problem to another government, with a new deadline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProblemRerouted {
    pub problem_id: Uuid,
    pub problem_seq: i64,
    #[serde(default)]
    pub previous: Previous,
    /// The problem's city after the reroute (the new owner's city).
    pub city_code: String,
    pub from_jurisdiction: String,
    pub to_jurisdiction: String,
    pub reason: String,
    pub deadline: Date,
    pub category: String,
    pub site_name: String,
    pub description: String,
    #[serde(with = "time::serde::rfc3339")]
    pub rerouted_at: OffsetDateTime,
}

/// The campaign office grants a deadline extension; the ledger keeps both deadlines.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProblemExtended {
    pub problem_id: Uuid,
    pub problem_seq: i64,
    #[serde(default)]
    pub previous: Previous,
    pub city_code: String,
    pub jurisdiction: String,
    pub previous_deadline: Date,
    pub deadline: Date,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub granted_at: OffsetDateTime,
}

/// A stage of a long rectification (a coal-to-gas project, say) before the final report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RectificationProgressed {
    pub problem_id: Uuid,
    pub problem_seq: i64,
    #[serde(default)]
    pub previous: Previous,
    pub city_code: String,
    pub stage: String,
    pub percent_done: Option<u8>,
    #[serde(with = "time::serde::rfc3339")]
    pub reported_at: OffsetDateTime,
}

/// Past its deadline without an accepted rectification.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProblemOverdue {
    pub problem_id: Uuid,
    pub problem_seq: i64,
    #[serde(default)]
    pub previous: Previous,
    pub city_code: String,
    pub jurisdiction: String,
    pub deadline: Date,
    /// The first day (Asia/Shanghai) the problem is overdue.
    pub overdue_on: Date,
}

/// A re-check found a closed problem back (回潮). The closed problem stays closed; intake enters
/// the rebound as a new ledger entry (`rebound_id`, reported with `rebound_of` = `problem_id`),
/// which is then handed over, verified and published like any problem.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecheckFailed {
    /// The closed problem.
    pub problem_id: Uuid,
    pub problem_seq: i64,
    #[serde(default)]
    pub previous: Previous,
    pub recheck_id: Uuid,
    /// The new entry's id, chosen by verification so that the rebound is entered once.
    pub rebound_id: Uuid,
    /// The round the new entry belongs to: the campaign's round on the re-check's day.
    pub round: String,
    /// The re-checking team, which found the rebound: internal, never published.
    pub team: String,
    pub city_code: String,
    pub county_code: Option<String>,
    pub category: String,
    /// The site's name as verification knows it (last year's problems have no report in intake).
    pub site_name: Option<String>,
    /// `not_rectified` or `fake_rectification`.
    pub result: String,
    #[serde(with = "time::serde::rfc3339")]
    pub verified_at: OffsetDateTime,
}

/// A city climbs the escalation ladder: reminder → listed_supervision → summons → special_inspection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CityEscalated {
    pub city_code: String,
    pub level: String,
    pub previous_level: Option<String>,
    /// The counts that put the city on this level.
    pub overdue: i64,
    pub reopened: i64,
    pub rebounds: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub escalated_at: OffsetDateTime,
}

/// An official summoned (约谈): as the campaign publishes them, by name and post.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Official {
    pub name: String,
    pub post: String,
}

/// The campaign office schedules a summons (约谈) of a city's officials. The office's internal
/// note stays in verification: it travels in no event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SummonsScheduled {
    pub summons_id: Uuid,
    pub city_code: String,
    pub officials: Vec<Official>,
    pub date: Date,
    pub place: String,
    /// The problems and figures that led to it, in the office's words.
    pub reasons: String,
    /// Problems cited.
    #[serde(default)]
    pub problems: Vec<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub scheduled_at: OffsetDateTime,
}

/// A written commitment made at a summons, to be checked on its follow-up date.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Commitment {
    pub commitment_id: Uuid,
    pub text: String,
    pub follow_up_on: Date,
}

/// The summons was held: from now on it and its commitments are public.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SummonsHeld {
    pub summons_id: Uuid,
    pub city_code: String,
    pub officials: Vec<Official>,
    pub held_on: Date,
    pub place: String,
    pub reasons: String,
    #[serde(default)]
    pub problems: Vec<Uuid>,
    pub commitments: Vec<Commitment>,
    #[serde(with = "time::serde::rfc3339")]
    pub held_at: OffsetDateTime,
}

/// A verifier found a summons commitment kept, or not (`kept` | `not_kept`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CommitmentVerified {
    pub commitment_id: Uuid,
    pub summons_id: Uuid,
    pub city_code: String,
    pub result: String,
    #[serde(with = "time::serde::rfc3339")]
    pub verified_at: OffsetDateTime,
}

/// What a special inspection looks at; empty lists mean all.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InspectionScope {
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub counties: Vec<String>,
    pub from: Date,
    pub to: Date,
}

/// The campaign office opens a special inspection (专项督察) of a city.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SpecialInspectionOpened {
    pub case_id: Uuid,
    pub city_code: String,
    pub scope: InspectionScope,
    pub teams: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub opened_at: OffsetDateTime,
}

/// A special inspection concluded: its public summary. Team identities are not public.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SpecialInspectionConcluded {
    pub case_id: Uuid,
    pub city_code: String,
    pub scope: InspectionScope,
    /// Existing problems linked to the case.
    pub linked: Vec<Uuid>,
    /// Problems reported under the case by its teams.
    pub reported: Vec<Uuid>,
    pub conclusion: String,
    pub concluded_on: Date,
    #[serde(with = "time::serde::rfc3339")]
    pub opened_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RectificationReported {
    pub problem_id: Uuid,
    pub problem_seq: i64,
    #[serde(default)]
    pub previous: Previous,
    pub city_code: String,
    pub measures: String,
    #[serde(with = "time::serde::rfc3339")]
    pub completed_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub reported_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProblemClosed {
    pub problem_id: Uuid,
    pub problem_seq: i64,
    #[serde(default)]
    pub previous: Previous,
    pub city_code: String,
    /// The verifying team: internal, never published.
    pub team: String,
    #[serde(with = "time::serde::rfc3339")]
    pub verified_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProblemReopened {
    pub problem_id: Uuid,
    pub problem_seq: i64,
    #[serde(default)]
    pub previous: Previous,
    pub city_code: String,
    /// `not_rectified` or `fake_rectification`.
    pub result: String,
    pub team: String,
    /// The deadline in force, unchanged: a refused rectification earns no new time, so past it
    /// the problem is overdue from the day after it.
    pub deadline: Date,
    #[serde(with = "time::serde::rfc3339")]
    pub verified_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NoticeOutcome {
    pub notice_id: Uuid,
    pub handover_no: Option<String>,
    pub jurisdiction: String,
    pub channel: String,
    pub target: String,
    pub attempts: i32,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EntryPublished {
    pub entry_seq: i64,
    pub problem_id: Uuid,
    pub status: String,
    pub entry_hash: String,
}

/// A notice reached its recipient.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct NoticeDelivered(pub NoticeOutcome);

/// A recipient pressed 签收 on the page a notice's link opens: for a handover notice addressed to
/// the city government, that acknowledges the sheet in the ledger (assignment decides).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NoticeReceipted {
    pub notice_id: Uuid,
    pub handover_no: Option<String>,
    /// Whom the notice was addressed to, and the city it concerns.
    pub jurisdiction: String,
    pub city_code: String,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
}

/// A notice could not be delivered after every try.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct NoticeFailed(pub NoticeOutcome);

payload!(RoundConfigured, ROUND_CONFIGURED);
payload!(TeamRegistered, TEAM_REGISTERED);
payload!(TeamAssigned, TEAM_ASSIGNED);
payload!(CityPackageConfigured, CITY_PACKAGE_CONFIGURED);
payload!(InspectionsRecorded, INSPECTIONS_RECORDED);
payload!(RegisterUpdated, REGISTER_UPDATED);
payload!(ProblemReported, PROBLEM_REPORTED, one_problem);
payload!(ProblemWithdrawn, PROBLEM_WITHDRAWN, one_problem);
payload!(ProblemMerged, PROBLEM_MERGED, one_problem);
payload!(ProblemAssigned, PROBLEM_ASSIGNED, one_problem);
payload!(ProblemDisputed, PROBLEM_DISPUTED, one_problem);
payload!(ProblemRerouted, PROBLEM_REROUTED, one_problem);
payload!(ProblemExtended, PROBLEM_EXTENDED, one_problem);
payload!(ExtensionRequested, EXTENSION_REQUESTED, one_problem);
payload!(RectificationReported, RECTIFICATION_REPORTED, one_problem);
payload!(RectificationProgressed, RECTIFICATION_PROGRESSED, one_problem);
payload!(ProblemClosed, PROBLEM_CLOSED, one_problem);
payload!(ProblemReopened, PROBLEM_REOPENED, one_problem);
payload!(ProblemOverdue, PROBLEM_OVERDUE, one_problem);
payload!(RecheckFailed, RECHECK_FAILED, one_problem);
payload!(CityEscalated, CITY_ESCALATED);
payload!(SummonsScheduled, SUMMONS_SCHEDULED);
payload!(SummonsHeld, SUMMONS_HELD);
payload!(CommitmentVerified, COMMITMENT_VERIFIED);
payload!(SpecialInspectionOpened, SPECIAL_INSPECTION_OPENED);
payload!(SpecialInspectionConcluded, SPECIAL_INSPECTION_CONCLUDED);
payload!(NoticeDelivered, NOTICE_DELIVERED);
payload!(NoticeFailed, NOTICE_FAILED);
payload!(NoticeReceipted, NOTICE_RECEIPTED);
payload!(EntryPublished, ENTRY_PUBLISHED);

impl Payload for HandoverIssued {
    const KIND: EventKind = HANDOVER_ISSUED;
    fn stamps(&self) -> Vec<Stamp<'_>> {
        self.problems
            .iter()
            .map(|p| Stamp { problem_id: p.problem_id, seq: p.problem_seq, previous: &p.previous })
            .collect()
    }
}

impl Payload for HandoverAcknowledged {
    const KIND: EventKind = HANDOVER_ACKNOWLEDGED;
    fn stamps(&self) -> Vec<Stamp<'_>> {
        self.problems
            .iter()
            .map(|p| Stamp { problem_id: p.problem_id, seq: p.problem_seq, previous: &p.previous })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_needs_the_latest_earlier_event_of_the_kinds_a_consumer_handles() {
        // rectification.reported 1, problem.reopened 2, rectification.reported 3, then closed 4.
        let previous = Previous::of(&[(RECTIFICATION_REPORTED, 3), (PROBLEM_REOPENED, 2)]);
        let closed = Stamp { problem_id: Uuid::nil(), seq: 4, previous: &previous };
        assert_eq!(closed.needs(["problem.closed", "problem.reopened"]), 2);
        assert_eq!(closed.needs(["rectification.reported", "problem.closed"]), 3);
        assert_eq!(closed.needs(["problem.overdue"]), 0);
    }

    #[test]
    fn evidence_is_internal_unless_plainly_marked_otherwise_and_old_reports_read_without_it() {
        let read = |v: serde_json::Value| serde_json::from_value::<Evidence>(v).unwrap().internal;
        assert!(!read(serde_json::json!({ "url": "u" })));
        assert!(!read(serde_json::json!({ "url": "u", "internal": false })));
        assert!(read(serde_json::json!({ "url": "u", "internal": true })));
        assert!(read(serde_json::json!({ "url": "u", "internal": "yes" })), "unclear is internal");
        let old = serde_json::json!({
            "problem_id": Uuid::nil(), "problem_seq": 1, "inspection_id": Uuid::nil(), "round": "R", "team": "T",
            "city_code": "130500", "county_code": null, "category": "dust", "severity": "general",
            "description": "d", "checked_at": "2019-05-09T10:20:00+08:00", "rebound_of": null,
            "site": { "name": "s", "lat": 37.0, "lon": 114.5 },
        });
        let reported: ProblemReported = serde_json::from_value(old).unwrap();
        assert!(reported.evidence.is_empty());
    }

    #[test]
    fn every_kind_is_named_after_its_entity_and_action() {
        for kind in ALL {
            assert_eq!(kind.name, format!("{}.{}", kind.entity, kind.action));
            assert_eq!(kind.type_name, format!("org.skyledger.{}.{}.v1", kind.producer, kind.name));
        }
        assert_eq!(<ProblemClosed as Payload>::KIND, PROBLEM_CLOSED);
    }
}
