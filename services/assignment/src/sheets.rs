//! Handover sheets (电子督办单): a city's new problems gather for a short window, then go out on
//! one numbered sheet addressed to the city government, at most `max_sheet_problems` a sheet.
//! Gathering lives in the ledger table, so a restart neither loses nor splits a sheet.

use shared::clock::{Clock, shanghai_date};
use shared::events::{
    HANDOVER_ACKNOWLEDGED, HANDOVER_ISSUED, HandoverAcknowledged, HandoverIssued, HandoverProblem, PROBLEM_ASSIGNED,
    ProblemAssigned, ProblemSeq,
};
use shared::order;
use shared::outbox::{Outbox, Outgoing};
use sqlx::{PgConnection, PgPool};
use time::Date;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::AssignmentConfig;
use crate::store::LEDGER;
use crate::{domain, store};

/// What a run of the sheet job did.
pub struct Issued {
    pub sheets: usize,
    /// How soon the next sheet falls due (by the deployment's clock), if any city is gathering.
    pub next_due: Option<std::time::Duration>,
}

/// Issues every sheet that is due; says how many, and when the next falls due.
pub async fn issue_due_sheets(
    pool: &PgPool,
    outbox: &Outbox,
    clock: &Clock,
    config: &AssignmentConfig,
) -> anyhow::Result<Issued> {
    let mut issued = Issued { sheets: 0, next_due: None };
    let mut soonest = |wait: time::Duration| {
        let wait = std::time::Duration::try_from(wait).unwrap_or_default();
        issued.next_due = Some(issued.next_due.map_or(wait, |d: std::time::Duration| d.min(wait)));
    };
    let waiting = store::gathering(&mut *pool.acquire().await?).await?;
    let cutoff = config.daily_cutoff.as_deref().map(domain::parse_cutoff).transpose()?;
    let (window, max) = (config.gathering_window_millis as i64, config.max_sheet_problems);
    let mut due = Vec::new();
    for (round, city, pending, oldest) in waiting {
        if domain::sheet_is_due(pending, oldest, clock.now(), window, cutoff, max) {
            if pending > max {
                // More than a sheet holds: the next one goes at once.
                soonest(time::Duration::ZERO);
            }
            due.push((round, city));
        } else {
            soonest(domain::sheet_due_at(oldest, window, cutoff) - clock.now());
        }
    }
    for (round, city) in due {
        let mut tx = pool.begin().await?;
        // Another instance is issuing this city's sheet right now.
        if !store::try_lock_gathering(&mut tx, &round, &city).await? {
            continue;
        }
        let problems = store::take_gathering(&mut tx, &round, &city, config.max_sheet_problems).await?;
        if problems.is_empty() {
            continue;
        }
        let now = clock.now();
        let day = shanghai_date(now);
        let seq = store::next_sheet_seq(&mut tx, &round, &city, day).await?;
        let no = domain::handover_number(&round, &city, day, seq);
        // The policy in force now: a change made by the office applies from the next sheet on.
        let policy = store::current_policy(&mut tx).await?;
        store::insert_handover(&mut tx, &no, &round, &city, now, problems.len() as i32, policy.version).await?;
        let deadlines: Vec<(Uuid, Date)> = problems
            .iter()
            .map(|p| (p.problem_id, domain::deadline(&policy.policy, &p.category, &p.severity, day)))
            .collect();
        store::assign(&mut tx, &no, now, &deadlines).await?;
        // Each problem's assignment, then the sheet, are events about it, in that order.
        let ids: Vec<Uuid> = deadlines.iter().map(|d| d.0).collect();
        let mut assigned = order::advance(&mut tx, LEDGER, &ids, PROBLEM_ASSIGNED).await?;
        let mut on_sheets = order::advance(&mut tx, LEDGER, &ids, HANDOVER_ISSUED).await?;
        let mut events = Vec::with_capacity(problems.len() + 1);
        let mut sheet = Vec::with_capacity(problems.len());
        for (p, (_, deadline)) in problems.iter().zip(&deadlines) {
            let next = assigned.remove(&p.problem_id).expect("a problem on the sheet has a ledger row");
            let assigned = ProblemAssigned {
                problem_id: p.problem_id,
                problem_seq: next.problem_seq,
                previous: next.previous,
                handover_no: no.clone(),
                round: round.clone(),
                city_code: city.clone(),
                county_code: p.county_code.clone(),
                jurisdiction: p.jurisdiction.clone(),
                category: p.category.clone(),
                deadline: *deadline,
                assigned_at: now,
            };
            events.push(Outgoing::new(Some(&city), p.problem_id.to_string(), &assigned));
            let on_sheet = on_sheets.remove(&p.problem_id).expect("a problem on the sheet has a ledger row");
            sheet.push(HandoverProblem {
                problem_id: p.problem_id,
                problem_seq: on_sheet.problem_seq,
                previous: on_sheet.previous,
                jurisdiction: p.jurisdiction.clone(),
                category: p.category.clone(),
                severity: p.severity.clone(),
                site_name: p.site_name.clone(),
                description: p.description.clone(),
                deadline: *deadline,
            });
        }
        let event = HandoverIssued {
            handover_no: no.clone(),
            round: round.clone(),
            city_code: city.clone(),
            issued_at: now,
            problems: sheet,
        };
        events.push(Outgoing::new(Some(&city), &no, &event));
        outbox.publish_many(&mut tx, events).await?;
        outbox.commit(tx).await?;
        tracing::info!(handover_no = %no, problems = problems.len(), "handover sheet issued");
        metrics::counter!("handover_sheets_issued_total").increment(1);
        issued.sheets += 1;
    }
    Ok(issued)
}

/// Acknowledges (签收) a sheet, locked by the caller, for its city government: its problems move
/// to acknowledged and `handover.acknowledged` goes out in the same transaction. When it was
/// acknowledged already, nothing changes and the answer is when.
pub async fn acknowledge(
    conn: &mut PgConnection,
    outbox: &Outbox,
    sheet: &store::Handover,
    now: OffsetDateTime,
) -> anyhow::Result<Option<OffsetDateTime>> {
    if let Some(at) = sheet.acknowledged_at {
        return Ok(Some(at));
    }
    let moved = store::acknowledge(conn, &sheet.no, &sheet.city_code, now).await?;
    let mut order = order::advance(conn, LEDGER, &moved, HANDOVER_ACKNOWLEDGED).await?;
    let event = HandoverAcknowledged {
        handover_no: sheet.no.clone(),
        city_code: sheet.city_code.clone(),
        acknowledged_at: now,
        problems: moved
            .into_iter()
            .filter_map(|problem_id| {
                let next = order.remove(&problem_id)?;
                Some(ProblemSeq { problem_id, problem_seq: next.problem_seq, previous: next.previous })
            })
            .collect(),
    };
    outbox.publish(conn, Some(&sheet.city_code), &sheet.no, &event).await?;
    Ok(None)
}
