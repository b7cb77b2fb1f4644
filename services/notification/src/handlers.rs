//! Notification turns assignment's and verification's events into notices, keeps each problem's
//! deadline for reminders, and counts an acknowledged sheet (签收) as a receipt.

use std::collections::{HashMap, HashSet};

use shared::events::{
    CityEscalated, ExtensionRequested, HandoverAcknowledged, HandoverIssued, ProblemAssigned, ProblemClosed,
    ProblemDisputed, ProblemExtended, ProblemOverdue, ProblemReopened, ProblemRerouted, SummonsScheduled,
};
use shared::routing::{Handle, Received, Routes};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{self, NewNotice, ProblemFacts, Receipts};
use crate::store::{self, AssignmentWord, ProblemRow, VerificationWord};

pub struct Handlers {
    pub receipts: Receipts,
    /// Whether an SMS gateway is configured (urgent notices then also go by SMS).
    pub sms: bool,
}

/// What notification consumes.
pub fn routes(handlers: Handlers) -> Routes<Handlers> {
    Routes::new(handlers)
        .on::<ProblemAssigned>()
        .on::<HandoverIssued>()
        .on::<HandoverAcknowledged>()
        .on::<ProblemExtended>()
        .on::<ProblemRerouted>()
        .on::<ProblemClosed>()
        .on::<ProblemReopened>()
        .on::<ProblemOverdue>()
        .on::<CityEscalated>()
        .on::<SummonsScheduled>()
        .on::<ProblemDisputed>()
        .on::<ExtensionRequested>()
}

/// A dispute waits for the campaign office's decision: its people are told.
impl Handle<ProblemDisputed> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemDisputed>]) -> anyhow::Result<()> {
        let alerts: Vec<_> = events
            .iter()
            .map(|e| store::OfficeAlert {
                source_event_id: e.id,
                kind: "dispute",
                problem_id: e.data.problem_id,
                jurisdiction: &e.data.jurisdiction,
                detail: &e.data.reason,
            })
            .collect();
        Ok(store::insert_office_alerts(conn, &alerts).await?)
    }
}

/// So does a request for more time.
impl Handle<ExtensionRequested> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ExtensionRequested>]) -> anyhow::Result<()> {
        let details: Vec<String> =
            events.iter().map(|e| format!("{} → {}", e.data.reason, e.data.requested_deadline)).collect();
        let alerts: Vec<_> = events
            .iter()
            .zip(&details)
            .map(|(e, detail)| store::OfficeAlert {
                source_event_id: e.id,
                kind: "extension",
                problem_id: e.data.problem_id,
                jurisdiction: &e.data.jurisdiction,
                detail,
            })
            .collect();
        Ok(store::insert_office_alerts(conn, &alerts).await?)
    }
}

impl Handlers {
    /// Stores notices, each made from the event whose id goes with it, and queues the
    /// deliveries of those that are new.
    async fn notify(&self, conn: &mut PgConnection, notices: Vec<(NewNotice, Uuid)>) -> anyhow::Result<()> {
        let fresh = store::insert_notices(conn, &notices).await?;
        if !fresh.is_empty() {
            store::queue_deliveries(conn, &fresh, None, self.sms).await?;
        }
        Ok(())
    }
}

/// What is known of `ids`.
async fn known(conn: &mut PgConnection, ids: &[Uuid]) -> anyhow::Result<HashMap<Uuid, ProblemFacts>> {
    Ok(store::problems(conn, ids).await?.into_iter().map(|(id, row): (Uuid, ProblemRow)| (id, row.facts())).collect())
}

impl Handle<ProblemAssigned> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemAssigned>]) -> anyhow::Result<()> {
        let words: Vec<_> = events
            .iter()
            .map(|e| AssignmentWord {
                facts: ProblemFacts {
                    problem_id: e.data.problem_id,
                    jurisdiction: e.data.jurisdiction.clone(),
                    category: Some(e.data.category.clone()),
                    deadline: Some(e.data.deadline),
                    ..Default::default()
                },
                city: e.data.city_code.clone(),
                at: e.data.assigned_at,
                seq: e.data.problem_seq,
            })
            .collect();
        store::apply_assignment(conn, &words).await?;
        Ok(())
    }
}

impl Handle<HandoverIssued> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<HandoverIssued>]) -> anyhow::Result<()> {
        let noted: Vec<_> = events
            .iter()
            .flat_map(|e| {
                let sheet = &e.data;
                sheet.problems.iter().map(move |p| {
                    let facts = ProblemFacts {
                        problem_id: p.problem_id,
                        jurisdiction: p.jurisdiction.clone(),
                        category: Some(p.category.clone()),
                        site_name: Some(p.site_name.clone()),
                        description: Some(p.description.clone()),
                        deadline: Some(p.deadline),
                    };
                    (facts, sheet.city_code.as_str(), sheet.issued_at)
                })
            })
            .collect();
        store::note_problems(conn, &noted).await?;
        let notices = events.iter().map(|e| (domain::handover_notice(&e.data, &self.receipts), e.id)).collect();
        self.notify(conn, notices).await
    }
}

impl Handle<HandoverAcknowledged> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<HandoverAcknowledged>]) -> anyhow::Result<()> {
        let sheets: Vec<_> = events.iter().map(|e| (e.data.handover_no.clone(), e.data.acknowledged_at)).collect();
        Ok(store::acknowledge_handovers(conn, &sheets, "handover").await?)
    }
}

impl Handle<ProblemExtended> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemExtended>]) -> anyhow::Result<()> {
        let words: Vec<_> = events
            .iter()
            .map(|e| AssignmentWord {
                facts: ProblemFacts {
                    problem_id: e.data.problem_id,
                    jurisdiction: e.data.jurisdiction.clone(),
                    deadline: Some(e.data.deadline),
                    ..Default::default()
                },
                city: e.data.city_code.clone(),
                at: e.data.granted_at,
                seq: e.data.problem_seq,
            })
            .collect();
        store::apply_assignment(conn, &words).await?;
        Ok(())
    }
}

impl Handle<ProblemRerouted> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemRerouted>]) -> anyhow::Result<()> {
        let words: Vec<_> = events
            .iter()
            .map(|e| AssignmentWord {
                facts: ProblemFacts {
                    problem_id: e.data.problem_id,
                    jurisdiction: e.data.to_jurisdiction.clone(),
                    category: Some(e.data.category.clone()),
                    site_name: Some(e.data.site_name.clone()),
                    description: Some(e.data.description.clone()),
                    deadline: Some(e.data.deadline),
                },
                city: e.data.city_code.clone(),
                at: e.data.rerouted_at,
                seq: e.data.problem_seq,
            })
            .collect();
        let news: HashSet<Uuid> = store::apply_assignment(conn, &words).await?.into_iter().collect();
        let notices = events
            .iter()
            .filter(|e| news.contains(&e.data.problem_id))
            .map(|e| (domain::reroute_notice(&e.data, &self.receipts), e.id))
            .collect();
        self.notify(conn, notices).await
    }
}

impl Handle<ProblemClosed> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemClosed>]) -> anyhow::Result<()> {
        let words: Vec<_> = events
            .iter()
            .map(|e| VerificationWord {
                problem_id: e.data.problem_id,
                city: e.data.city_code.clone(),
                seq: e.data.problem_seq,
                closed: true,
                deadline: None,
                at: e.data.verified_at,
            })
            .collect();
        let news = store::apply_verification(conn, &words).await?;
        let known = known(conn, &news).await?;
        let notices = events
            .iter()
            .filter(|e| news.contains(&e.data.problem_id))
            .map(|e| (domain::closed_notice(&e.data, known.get(&e.data.problem_id), &self.receipts), e.id))
            .collect();
        self.notify(conn, notices).await
    }
}

impl Handle<ProblemReopened> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemReopened>]) -> anyhow::Result<()> {
        let words: Vec<_> = events
            .iter()
            .map(|e| VerificationWord {
                problem_id: e.data.problem_id,
                city: e.data.city_code.clone(),
                seq: e.data.problem_seq,
                closed: false,
                deadline: Some(e.data.deadline),
                at: e.data.verified_at,
            })
            .collect();
        let news = store::apply_verification(conn, &words).await?;
        let known = known(conn, &news).await?;
        let notices = events
            .iter()
            .filter(|e| news.contains(&e.data.problem_id))
            .map(|e| (domain::reopened_notice(&e.data, known.get(&e.data.problem_id), &self.receipts), e.id))
            .collect();
        self.notify(conn, notices).await
    }
}

impl Handle<ProblemOverdue> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<ProblemOverdue>]) -> anyhow::Result<()> {
        let ids: Vec<Uuid> = events.iter().map(|e| e.data.problem_id).collect();
        let known = known(conn, &ids).await?;
        let notices = events
            .iter()
            .map(|e| (domain::overdue_notice(&e.data, known.get(&e.data.problem_id), &self.receipts), e.id))
            .collect();
        self.notify(conn, notices).await
    }
}

impl Handle<CityEscalated> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<CityEscalated>]) -> anyhow::Result<()> {
        let notices = events.iter().map(|e| (domain::escalation_notice(&e.data, &self.receipts), e.id)).collect();
        self.notify(conn, notices).await
    }
}

impl Handle<SummonsScheduled> for Handlers {
    async fn handle(&self, conn: &mut PgConnection, events: &[Received<SummonsScheduled>]) -> anyhow::Result<()> {
        let notices = events.iter().map(|e| (domain::summons_notice(&e.data, &self.receipts), e.id)).collect();
        self.notify(conn, notices).await
    }
}
