//! The disclosure policy, in one place: what of the events reaching publication may enter the
//! public record, and when a problem is public at all. Publication stores nothing it may not
//! publish, so every format (pages, feeds, CSV, GeoJSON, statistics, the log) is redacted by
//! construction: they all render what these functions let through.
//!
//! Never public: inspector or team identities (the finding and verifying teams, members),
//! complainants, internal notes (verdict notes, rectification measures), evidence marked
//! internal, the enterprise's credit code and street address.

use serde::{Deserialize, Serialize};
use shared::events::{Evidence, ProblemReported};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// When problems become public, from `[publication]` configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DisclosurePolicy {
    /// Hours after hand-over before a problem is shown (0: at once).
    pub embargo_hours: i64,
    /// Whether the campaign office must approve each problem before it is shown.
    pub require_approval: bool,
}

/// The facts that decide whether a problem is public.
#[derive(Debug, Clone, Copy, Default)]
pub struct VisibilityFacts {
    /// Intake's report has arrived (without it, there is nothing to show).
    pub reported: bool,
    pub handed_over_at: Option<OffsetDateTime>,
    pub approved: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    Public,
    NotReported,
    NotHandedOver,
    Embargoed { until: OffsetDateTime },
    AwaitingApproval,
}

impl DisclosurePolicy {
    pub fn visibility(&self, f: &VisibilityFacts, now: OffsetDateTime) -> Visibility {
        let Some(handed_over_at) = f.handed_over_at else {
            return Visibility::NotHandedOver;
        };
        if !f.reported {
            return Visibility::NotReported;
        }
        let until = handed_over_at + Duration::hours(self.embargo_hours.max(0));
        if now < until {
            return Visibility::Embargoed { until };
        }
        if self.require_approval && !f.approved {
            return Visibility::AwaitingApproval;
        }
        Visibility::Public
    }
}

/// A piece of evidence the public may see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublicEvidence {
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// What of intake's report is public: the problem and its site, never who found it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportedFacts {
    pub problem_id: Uuid,
    pub round: String,
    pub category: String,
    pub severity: String,
    pub city_code: String,
    pub county_code: Option<String>,
    pub site_name: String,
    pub lat: f64,
    pub lon: f64,
    pub description: String,
    pub found_at: OffsetDateTime,
    pub rebound_of: Option<Uuid>,
    pub evidence: Vec<PublicEvidence>,
}

/// The public part of a `problem.reported` event: its declared fields only (anything else a
/// producer adds, a complainant say, never reaches the public), and evidence only when not
/// marked internal.
pub fn reported(p: &ProblemReported) -> ReportedFacts {
    ReportedFacts {
        problem_id: p.problem_id,
        round: p.round.clone(),
        category: p.category.clone(),
        severity: p.severity.clone(),
        city_code: p.city_code.clone(),
        county_code: p.county_code.clone(),
        site_name: p.site.name.clone(),
        lat: p.site.lat,
        lon: p.site.lon,
        description: p.description.clone(),
        found_at: p.checked_at,
        rebound_of: p.rebound_of,
        evidence: public_evidence(&p.evidence),
    }
}

/// The evidence not marked internal, with only its URL and hash.
pub fn public_evidence(items: &[Evidence]) -> Vec<PublicEvidence> {
    items
        .iter()
        .filter(|e| !e.internal)
        .map(|e| PublicEvidence { url: e.url.clone(), sha256: e.sha256.clone() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn facts(handed_over: bool, approved: bool) -> VisibilityFacts {
        VisibilityFacts {
            reported: true,
            handed_over_at: handed_over.then_some(datetime!(2019-05-10 10:00 +8)),
            approved,
        }
    }

    #[test]
    fn a_problem_is_public_once_handed_over_after_any_embargo_and_approval() {
        let now = datetime!(2019-05-10 12:00 +8);
        let open = DisclosurePolicy::default();
        assert_eq!(open.visibility(&facts(false, false), now), Visibility::NotHandedOver);
        assert_eq!(open.visibility(&facts(true, false), now), Visibility::Public);
        let unreported = VisibilityFacts { reported: false, ..facts(true, true) };
        assert_eq!(open.visibility(&unreported, now), Visibility::NotReported);

        let embargo = DisclosurePolicy { embargo_hours: 24, require_approval: false };
        assert_eq!(
            embargo.visibility(&facts(true, false), now),
            Visibility::Embargoed { until: datetime!(2019-05-11 10:00 +8) }
        );
        assert_eq!(embargo.visibility(&facts(true, false), now + Duration::days(1)), Visibility::Public);

        let approval = DisclosurePolicy { embargo_hours: 0, require_approval: true };
        assert_eq!(approval.visibility(&facts(true, false), now), Visibility::AwaitingApproval);
        assert_eq!(approval.visibility(&facts(true, true), now), Visibility::Public);
        assert_eq!(
            approval.visibility(&facts(false, true), now),
            Visibility::NotHandedOver,
            "approval is no hand-over"
        );
    }

    #[test]
    fn the_public_report_holds_no_team_complainant_or_internal_evidence() {
        let data = json!({
            "problem_id": "0190f6c2-0000-7000-8000-000000000001", "problem_seq": 1,
            "inspection_id": "0190f6c2-0000-7000-8000-000000000002", "round": "2019-R01",
            "team": "T-370", "city_code": "130500", "county_code": "130502",
            "category": "coal_boiler", "severity": "serious", "description": "燃煤锅炉未淘汰",
            "site": { "name": "某某厂", "credit_code": "91130500MA0000000X", "address": "某某路 1 号",
                      "lat": 37.07, "lon": 114.5 },
            "checked_at": "2019-05-09T10:20:00+08:00", "rebound_of": null,
            "complainant": { "name": "李举报", "phone": "13912345678" },
            "evidence": [
                { "url": "https://evidence.example/public.jpg", "sha256": "ab", "internal": false },
                { "url": "https://evidence.example/internal.jpg", "internal": true },
                { "url": "https://evidence.example/unclear.jpg", "internal": "yes" },
                { "url": "https://evidence.example/plain.jpg" },
            ],
        });
        let event: ProblemReported = serde_json::from_value(data.clone()).unwrap();
        let public = reported(&event);
        let shown = format!("{public:?}");
        for secret in ["T-370", "李举报", "13912345678", "internal.jpg", "unclear.jpg", "91130500MA", "某某路"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert_eq!(public.site_name, "某某厂");
        assert_eq!(
            public.evidence.iter().map(|e| e.url.as_str()).collect::<Vec<_>>(),
            ["https://evidence.example/public.jpg", "https://evidence.example/plain.jpg"]
        );
    }
}
