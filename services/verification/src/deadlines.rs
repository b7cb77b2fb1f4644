//! Deadlines and the escalation ladder, driven by the deployment's clock (real or simulated):
//! problems past their deadline are flagged overdue, and a city whose overdue, reopened or
//! rebound counts reach a step of the ladder climbs to it.

use std::collections::HashMap;

use shared::clock::Clock;
use shared::events::{CityEscalated, ProblemOverdue};
use shared::outbox::{Outbox, Outgoing};
use sqlx::PgPool;
use time::Date;
use uuid::Uuid;

use crate::config::EscalationLadder;
use crate::{domain, store};

/// Flags every problem that went past its deadline and is overdue by the rules
/// ([`domain::overdue_since`]); returns how many.
pub async fn flag_overdue(pool: &PgPool, outbox: &Outbox, clock: &Clock) -> anyhow::Result<usize> {
    const PAGE: i64 = 500;
    let today = clock.today();
    let mut flagged = 0;
    // Pages in id order, so problems whose clock is held are read once per pass, not forever.
    let mut after = Uuid::nil();
    loop {
        let mut tx = pool.begin().await?;
        let candidates = store::past_deadline(&mut tx, today, after, PAGE).await?;
        let Some(last) = candidates.last() else { return Ok(flagged) };
        after = last.problem_id;
        let due: Vec<(&store::Problem, Date)> = candidates
            .iter()
            .filter_map(|p| domain::overdue_since(&p.status, p.deadline, p.rectified_on, today).map(|on| (p, on)))
            .collect();
        let overdue: Vec<(Uuid, Date)> = due.iter().map(|(p, on)| (p.problem_id, *on)).collect();
        let mut order = store::mark_overdue(&mut tx, &overdue).await?;
        let mut events = Vec::with_capacity(due.len());
        for (problem, overdue_on) in &due {
            let next = order.remove(&problem.problem_id).expect("a problem flagged has its row");
            let event = ProblemOverdue {
                problem_id: problem.problem_id,
                problem_seq: next.problem_seq,
                previous: next.previous,
                city_code: problem.city_code.clone(),
                jurisdiction: problem.jurisdiction.clone().unwrap_or_else(|| problem.city_code.clone()),
                deadline: problem.deadline.expect("a problem past its deadline has one"),
                overdue_on: *overdue_on,
            };
            events.push(Outgoing::new(Some(&problem.city_code), problem.problem_id.to_string(), &event));
        }
        outbox.publish_many(&mut tx, events).await?;
        outbox.commit(tx).await?;
        flagged += due.len();
        if (candidates.len() as i64) < PAGE {
            return Ok(flagged);
        }
    }
}

/// Moves each city up the ladder as far as its counts reach; a city never steps down during
/// the campaign. Returns how many steps were taken.
pub async fn climb_ladder(
    pool: &PgPool,
    outbox: &Outbox,
    clock: &Clock,
    ladder: &EscalationLadder,
) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    // One climber at a time, so two instances never announce the same step.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('verification.ladder', 0))").execute(&mut *tx).await?;
    let current = store::current_ranks(&mut tx).await?;
    // Unkept summons commitments count as overdue (DESIGN.md: followed up like problems).
    let today = clock.today();
    let mut unkept: HashMap<String, i64> = HashMap::new();
    for (city, result, follow_up_on) in store::commitment_standing(&mut tx).await? {
        if domain::commitment_unkept(result.as_deref(), follow_up_on, today) {
            *unkept.entry(city).or_default() += 1;
        }
    }
    let mut steps = 0;
    for (city, counts) in store::city_counts(&mut tx).await? {
        let counts = domain::with_unkept_commitments(counts, unkept.get(&city).copied().unwrap_or(0));
        let Some(rank) = domain::ladder_rank(counts, ladder) else { continue };
        let reached = current.get(&city).copied().unwrap_or(0);
        if rank as i32 <= reached {
            continue;
        }
        let level = domain::LEVELS[rank - 1];
        let now = clock.now();
        if store::record_escalation(&mut tx, &city, rank as i32, level, counts, now).await? {
            let event = CityEscalated {
                city_code: city.clone(),
                level: level.to_string(),
                previous_level: (reached > 0).then(|| domain::LEVELS[reached as usize - 1].to_string()),
                overdue: counts.overdue,
                reopened: counts.reopened,
                rebounds: counts.rebounds,
                escalated_at: now,
            };
            outbox.publish(&mut tx, Some(&city), &city, &event).await?;
            tracing::info!(city = %city, level, "city escalated");
            steps += 1;
        }
    }
    outbox.commit(tx).await?;
    Ok(steps)
}
