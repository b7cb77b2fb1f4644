//! Handover sheets (电子督办单): a city's new problems gather for a short window, then go out on
//! one numbered sheet addressed to the city government, at most `max_sheet_problems` a sheet.
//! Gathering lives in the ledger table, so a restart neither loses nor splits a sheet.

use shared::clock::{Clock, shanghai_date};
use shared::events::{HANDOVER_ISSUED, HandoverIssued, HandoverProblem, PROBLEM_ASSIGNED, ProblemAssigned};
use shared::outbox::Outbox;
use sqlx::PgPool;

use crate::config::AssignmentConfig;
use crate::{domain, store};

/// Issues every sheet that is due; returns how many were issued.
pub async fn issue_due_sheets(
    pool: &PgPool,
    outbox: &Outbox,
    clock: &Clock,
    config: &AssignmentConfig,
) -> anyhow::Result<usize> {
    let mut issued = 0;
    let waiting = store::gathering(&mut *pool.acquire().await?).await?;
    let cutoff = config.daily_cutoff.as_deref().map(domain::parse_cutoff).transpose()?;
    for (round, city, pending, oldest) in waiting {
        let (window, max) = (config.gathering_window_millis as i64, config.max_sheet_problems);
        if !domain::sheet_is_due(pending, oldest, clock.now(), window, cutoff, max) {
            continue;
        }
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
        store::insert_handover(&mut tx, &no, &round, &city, now, problems.len() as i32).await?;
        let mut sheet = Vec::with_capacity(problems.len());
        for p in &problems {
            let deadline = domain::deadline(&config.deadlines, &p.category, &p.severity, day);
            let problem_seq = store::assign(&mut tx, p.problem_id, &no, now, deadline).await?;
            let assigned = ProblemAssigned {
                problem_id: p.problem_id,
                problem_seq,
                handover_no: no.clone(),
                round: round.clone(),
                city_code: city.clone(),
                county_code: p.county_code.clone(),
                jurisdiction: p.jurisdiction.clone(),
                category: p.category.clone(),
                deadline,
                assigned_at: now,
            };
            outbox.publish(&mut tx, &PROBLEM_ASSIGNED, Some(&city), p.problem_id.to_string(), &assigned).await?;
            sheet.push(HandoverProblem {
                problem_id: p.problem_id,
                jurisdiction: p.jurisdiction.clone(),
                category: p.category.clone(),
                severity: p.severity.clone(),
                site_name: p.site_name.clone(),
                description: p.description.clone(),
                deadline,
            });
        }
        let event = HandoverIssued {
            handover_no: no.clone(),
            round: round.clone(),
            city_code: city.clone(),
            issued_at: now,
            problems: sheet,
        };
        outbox.publish(&mut tx, &HANDOVER_ISSUED, Some(&city), &no, &event).await?;
        tx.commit().await?;
        tracing::info!(handover_no = %no, problems = problems.len(), "handover sheet issued");
        metrics::counter!("handover_sheets_issued_total").increment(1);
        issued += 1;
    }
    Ok(issued)
}
