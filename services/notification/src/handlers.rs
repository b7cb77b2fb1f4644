//! Notification turns assignment's handover sheets into notices for the city government, and
//! queues their deliveries to every channel the recipient has.

use shared::envelope::Event;
use shared::events::{HANDOVER_ISSUED, HandoverIssued};
use shared::inbox::EventHandler;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{domain, store};

pub struct Handlers;

impl EventHandler for Handlers {
    async fn handle(&self, conn: &mut PgConnection, event: &Event) -> anyhow::Result<()> {
        if event.kind() == Some(HANDOVER_ISSUED) {
            let sheet: HandoverIssued = event.data_as()?;
            let notice_id = Uuid::now_v7();
            let payload = domain::handover_notice(notice_id, &sheet);
            store::insert_notice(
                conn,
                notice_id,
                "handover",
                event.id,
                &sheet.city_code,
                Some(&sheet.handover_no),
                &payload,
            )
            .await?;
            store::queue_deliveries(conn, &sheet.city_code).await?;
        }
        Ok(())
    }
}
