//! The messaging contract: every event kind the services exchange and the data each carries.
//! Producers and consumers both use these types, so the contract is written once.
//!
//! Events about one problem carry their producer's own counter for it (`problem_seq`), so a
//! consumer can drop what is stale.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// One kind of event: who produces it, about what, and what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventKind {
    pub producer: &'static str,
    pub entity: &'static str,
    pub action: &'static str,
    /// The CloudEvents `type`: `org.skyledger.{producer}.{entity}.{action}.v1`.
    pub type_name: &'static str,
}

macro_rules! kind {
    ($name:ident, $producer:literal, $entity:literal, $action:literal) => {
        pub const $name: EventKind = EventKind {
            producer: $producer,
            entity: $entity,
            action: $action,
            type_name: concat!("org.skyledger.", $producer, ".", $entity, ".", $action, ".v1"),
        };
    };
}

kind!(ROUND_CONFIGURED, "intake", "round", "configured");
kind!(TEAM_REGISTERED, "intake", "team", "registered");
kind!(TEAM_ASSIGNED, "intake", "team", "assigned");
kind!(CITY_PACKAGE_CONFIGURED, "intake", "city_package", "configured");
kind!(INSPECTION_RECORDED, "intake", "inspection", "recorded");
kind!(PROBLEM_REPORTED, "intake", "problem", "reported");
kind!(PROBLEM_WITHDRAWN, "intake", "problem", "withdrawn");
kind!(PROBLEM_MERGED, "intake", "problem", "merged");
kind!(PROBLEM_ASSIGNED, "assignment", "problem", "assigned");
kind!(HANDOVER_ISSUED, "assignment", "handover", "issued");
kind!(HANDOVER_ACKNOWLEDGED, "assignment", "handover", "acknowledged");
kind!(PROBLEM_DISPUTED, "assignment", "problem", "disputed");
kind!(PROBLEM_REROUTED, "assignment", "problem", "rerouted");
kind!(PROBLEM_EXTENDED, "assignment", "problem", "extended");
kind!(RECTIFICATION_REPORTED, "verification", "rectification", "reported");
kind!(PROBLEM_CLOSED, "verification", "problem", "closed");
kind!(PROBLEM_REOPENED, "verification", "problem", "reopened");
kind!(RECTIFICATION_PROGRESSED, "verification", "rectification", "progressed");
kind!(PROBLEM_OVERDUE, "verification", "problem", "overdue");
kind!(CITY_ESCALATED, "verification", "city", "escalated");
kind!(NOTICE_DELIVERED, "notification", "notice", "delivered");
kind!(NOTICE_FAILED, "notification", "notice", "failed");
kind!(ENTRY_PUBLISHED, "publication", "entry", "published");

pub const ALL: &[EventKind] = &[
    ROUND_CONFIGURED,
    TEAM_REGISTERED,
    TEAM_ASSIGNED,
    CITY_PACKAGE_CONFIGURED,
    INSPECTION_RECORDED,
    PROBLEM_REPORTED,
    PROBLEM_WITHDRAWN,
    PROBLEM_MERGED,
    PROBLEM_ASSIGNED,
    HANDOVER_ISSUED,
    HANDOVER_ACKNOWLEDGED,
    PROBLEM_DISPUTED,
    PROBLEM_REROUTED,
    PROBLEM_EXTENDED,
    RECTIFICATION_REPORTED,
    PROBLEM_CLOSED,
    PROBLEM_REOPENED,
    RECTIFICATION_PROGRESSED,
    PROBLEM_OVERDUE,
    CITY_ESCALATED,
    NOTICE_DELIVERED,
    NOTICE_FAILED,
    ENTRY_PUBLISHED,
];

/// Whether a producer's events about a problem begin with one that creates it (intake's
/// problem.reported, assignment's problem.assigned, both `problem_seq` 1): consumers apply its
/// later events only after that one.
pub fn starts_with_creation(producer: &str) -> bool {
    producer == PROBLEM_REPORTED.producer || producer == PROBLEM_ASSIGNED.producer
}

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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InspectionRecorded {
    pub inspection_id: Uuid,
    pub round: String,
    pub team: String,
    pub city_code: String,
    pub county_code: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
    /// Problems that became ledger entries, and those that duplicated an open one.
    pub problems_reported: u32,
    pub duplicates: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProblemReported {
    pub problem_id: Uuid,
    pub problem_seq: i64,
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
}

/// The campaign office withdraws a report entered in error; the ledger entry goes with it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProblemWithdrawn {
    pub problem_id: Uuid,
    pub problem_seq: i64,
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
    pub city_code: String,
    pub jurisdiction: String,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub disputed_at: OffsetDateTime,
}

/// The campaign office hands a problem to another government, with a new deadline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProblemRerouted {
    pub problem_id: Uuid,
    pub problem_seq: i64,
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
    pub city_code: String,
    pub jurisdiction: String,
    pub deadline: Date,
    /// The first day (Asia/Shanghai) the problem is overdue.
    pub overdue_on: Date,
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RectificationReported {
    pub problem_id: Uuid,
    pub problem_seq: i64,
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
    pub city_code: String,
    /// `not_rectified` or `fake_rectification`.
    pub result: String,
    pub team: String,
    /// The new, shorter deadline.
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
