//! Notices that time makes, on the deployment's clock (so the simulated clock drives them in
//! drills and tests): deadline reminders, and the re-send and raising of handover notices that
//! nobody acknowledged.

use std::collections::BTreeMap;
use std::time::Duration;

use shared::clock::{Clock, shanghai_date};
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::NotificationConfig;
use crate::domain::{self, ProblemFacts, Receipts};
use crate::store;

pub struct Scheduler {
    pub pool: PgPool,
    pub clock: Clock,
    pub receipts: Receipts,
    pub config: NotificationConfig,
    pub sms: bool,
}

impl Scheduler {
    pub async fn run_once(&self) -> anyhow::Result<()> {
        self.remind_deadlines().await?;
        self.chase_receipts().await
    }

    /// One reminder per government for its problems whose deadlines come up, once a deadline.
    async fn remind_deadlines(&self) -> anyhow::Result<()> {
        let today = self.clock.today();
        let days = self.config.reminder_days_before;
        let mut tx = self.pool.begin().await?;
        let candidates = store::reminder_candidates(&mut tx, today, days).await?;
        let mut by_owner: BTreeMap<String, Vec<ProblemFacts>> = BTreeMap::new();
        for p in &candidates {
            let Some(deadline) = p.deadline else { continue };
            if domain::reminder_due(today, deadline, days, p.deadline_set_at.map(shanghai_date)) {
                by_owner.entry(p.jurisdiction.clone()).or_default().push(p.facts());
                store::mark_reminded(&mut tx, p.problem_id, deadline).await?;
            }
        }
        for (owner, problems) in by_owner {
            let notice = domain::deadline_reminder(&owner, &problems, &self.receipts);
            // No event behind a reminder: its own id stands as the source.
            if store::insert_notice(&mut tx, &notice, notice.id).await? {
                store::queue_deliveries(&mut tx, &[notice.id], None, self.sms).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// An unacknowledged handover notice goes again once, then to the city's package units.
    async fn chase_receipts(&self) -> anyhow::Result<()> {
        let now = self.clock.now();
        let resend_after = time::Duration::try_from(Duration::from_secs(self.config.receipt_resend_after_secs))?;
        let raise_after = time::Duration::try_from(Duration::from_secs(self.config.receipt_raise_after_secs))?;
        let mut tx = self.pool.begin().await?;
        for first in store::take_to_resend(&mut tx, now - resend_after, now).await? {
            let again = domain::handover_resent(first.id, &first.payload, &first.jurisdiction, &self.receipts);
            // Derived from the first notice, so a second run cannot send it twice.
            if store::insert_notice(&mut tx, &again, Uuid::new_v5(&first.id, b"resend")).await? {
                store::queue_deliveries(&mut tx, &[again.id], None, self.sms).await?;
            }
        }
        for first in store::take_to_raise(&mut tx, now - raise_after, now).await? {
            let raised = domain::unacknowledged_notice(first.id, &first.payload, &first.jurisdiction, &self.receipts);
            if store::insert_notice(&mut tx, &raised, Uuid::new_v5(&first.id, b"raise")).await? {
                store::queue_deliveries(&mut tx, &[raised.id], None, self.sms).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
