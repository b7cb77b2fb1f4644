//! Re-check sweeps: after every few rounds (configuration), the closed problems of the rounds
//! so far are visited again, all of them or a stable sample; a failed re-check is a rebound.

use shared::clock::Clock;
use sqlx::{PgConnection, PgPool};

use crate::{domain, store};

/// Chooses the closed problems of `round` and the rounds before it for a second visit; returns
/// how many re-checks it opened.
pub async fn sweep(conn: &mut PgConnection, round: &str, sample_percent: i64, clock: &Clock) -> anyhow::Result<usize> {
    let rounds = store::rounds(conn).await?;
    let Some(position) = rounds.iter().position(|r| r.id == round) else {
        anyhow::bail!("no round {round}");
    };
    let so_far: Vec<String> = rounds[..=position].iter().map(|r| r.id.clone()).collect();
    let mut opened = 0;
    for problem in store::closed_of_rounds(conn, &so_far).await? {
        if domain::in_sample(problem, sample_percent)
            && store::insert_recheck(conn, problem, round, clock.now()).await?
        {
            opened += 1;
        }
    }
    store::mark_swept(conn, round, clock.now()).await?;
    Ok(opened)
}

/// Runs the sweep of every round that ends a sweep period and has ended by the clock.
pub async fn sweep_due_rounds(pool: &PgPool, clock: &Clock, every: i64, sample_percent: i64) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('verification.sweeps', 0))").execute(&mut *tx).await?;
    let today = clock.today();
    let mut opened = 0;
    let rounds = store::rounds(&mut tx).await?;
    for (i, round) in rounds.iter().enumerate() {
        if round.swept_at.is_none() && round.ends_on < today && domain::ends_sweep_period(i as i64 + 1, every) {
            opened += sweep(&mut tx, &round.id, sample_percent, clock).await?;
        }
    }
    tx.commit().await?;
    Ok(opened)
}
