//! Notification's SQL, all in the `notification` schema.

use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::RecipientRequest;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Recipient {
    pub code: String,
    pub name: String,
    pub webhook_url: Option<String>,
    #[serde(skip)]
    pub webhook_secrets: Vec<String>,
    pub emails: Vec<String>,
    pub language: String,
}

pub async fn upsert_recipient(conn: &mut PgConnection, code: &str, r: &RecipientRequest) -> sqlx::Result<()> {
    let secrets = r.webhook.as_ref().map(|w| w.all_secrets()).unwrap_or_default();
    sqlx::query(
        "INSERT INTO notification.recipients (code, name, webhook_url, webhook_secrets, emails, language)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (code) DO UPDATE SET name = $2, webhook_url = $3, webhook_secrets = $4, emails = $5,
             language = $6, updated_at = now()",
    )
    .bind(code)
    .bind(&r.name)
    .bind(r.webhook.as_ref().map(|w| &w.url))
    .bind(&secrets)
    .bind(&r.emails)
    .bind(&r.language)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn recipient(conn: &mut PgConnection, code: &str) -> sqlx::Result<Option<Recipient>> {
    sqlx::query_as("SELECT code, name, webhook_url, webhook_secrets, emails, language FROM notification.recipients WHERE code = $1")
        .bind(code)
        .fetch_optional(conn)
        .await
}

pub async fn insert_notice(
    conn: &mut PgConnection,
    id: Uuid,
    kind: &str,
    source_event_id: Uuid,
    jurisdiction: &str,
    handover_no: Option<&str>,
    payload: &Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO notification.notices (id, kind, source_event_id, jurisdiction, handover_no, payload)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(kind)
    .bind(source_event_id)
    .bind(jurisdiction)
    .bind(handover_no)
    .bind(payload)
    .execute(conn)
    .await?;
    Ok(())
}

/// Queues a notice's deliveries to every channel its jurisdiction's recipient has, for the
/// notices of `jurisdiction` that have none yet (a recipient registered late still gets them).
pub async fn queue_deliveries(conn: &mut PgConnection, jurisdiction: &str) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "INSERT INTO notification.deliveries (notice_id, channel, target)
         SELECT n.id, t.channel, t.target
         FROM notification.notices n
         JOIN notification.recipients r ON r.code = n.jurisdiction
         CROSS JOIN LATERAL (
             SELECT 'webhook' AS channel, r.webhook_url AS target WHERE r.webhook_url IS NOT NULL
             UNION ALL SELECT 'email', e FROM unnest(r.emails) AS e
         ) t
         WHERE n.jurisdiction = $1
           AND NOT EXISTS (SELECT 1 FROM notification.deliveries d WHERE d.notice_id = n.id)
         ON CONFLICT (notice_id, channel, target) DO NOTHING",
    )
    .bind(jurisdiction)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// A delivery claimed for one try.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueDelivery {
    pub id: i64,
    pub notice_id: Uuid,
    pub channel: String,
    pub target: String,
    pub attempts: i32,
    pub kind: String,
    pub jurisdiction: String,
    pub handover_no: Option<String>,
    pub payload: Value,
}

/// Claims up to `limit` due deliveries for `lease_secs`; a worker that dies leaves them to be
/// claimed again when the lease runs out.
pub async fn claim_due(conn: &mut PgConnection, limit: i64, lease_secs: f64) -> sqlx::Result<Vec<DueDelivery>> {
    sqlx::query_as(
        "WITH due AS (
             SELECT id FROM notification.deliveries
             WHERE status = 'pending' AND next_attempt_at <= now() AND (lease_until IS NULL OR lease_until < now())
             ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
         )
         UPDATE notification.deliveries d SET lease_until = now() + make_interval(secs => $2)
         FROM due, notification.notices n
         WHERE d.id = due.id AND n.id = d.notice_id
         RETURNING d.id, d.notice_id, d.channel, d.target, d.attempts, n.kind, n.jurisdiction, n.handover_no, n.payload",
    )
    .bind(limit)
    .bind(lease_secs)
    .fetch_all(conn)
    .await
}

pub struct AttemptRecord<'a> {
    pub delivery_id: i64,
    pub outcome: &'a str,
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<String>,
}

pub async fn record_attempt(conn: &mut PgConnection, a: &AttemptRecord<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO notification.attempts (delivery_id, outcome, status_code, latency_ms, error) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(a.delivery_id)
    .bind(a.outcome)
    .bind(a.status_code)
    .bind(a.latency_ms)
    .bind(&a.error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends a delivery as `delivered` or `dead`.
pub async fn finish_delivery(conn: &mut PgConnection, id: i64, status: &str, error: Option<&str>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE notification.deliveries SET status = $2, attempts = attempts + 1, lease_until = NULL, last_error = $3,
                delivered_at = CASE WHEN $2 = 'delivered' THEN now() END
         WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn retry_delivery(conn: &mut PgConnection, id: i64, at: OffsetDateTime, error: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE notification.deliveries SET attempts = attempts + 1, next_attempt_at = $2, lease_until = NULL, last_error = $3
         WHERE id = $1",
    )
    .bind(id)
    .bind(at)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct NoticeRow {
    pub id: Uuid,
    pub kind: String,
    pub jurisdiction: String,
    pub handover_no: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub problem_count: Option<i32>,
    /// Each delivery: channel, target, status, attempts, last error.
    pub deliveries: Value,
}

pub async fn notices(
    conn: &mut PgConnection,
    jurisdiction: Option<&str>,
    status: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<NoticeRow>> {
    sqlx::query_as(
        "SELECT n.id, n.kind, n.jurisdiction, n.handover_no, n.created_at,
                jsonb_array_length(n.payload -> 'problems') AS problem_count,
                coalesce(jsonb_agg(jsonb_build_object('channel', d.channel, 'target', d.target, 'status', d.status,
                    'attempts', d.attempts, 'last_error', d.last_error, 'delivered_at', d.delivered_at) ORDER BY d.id)
                    FILTER (WHERE d.id IS NOT NULL), '[]') AS deliveries
         FROM notification.notices n
         LEFT JOIN notification.deliveries d ON d.notice_id = n.id
         WHERE ($1::text IS NULL OR n.jurisdiction = $1)
         GROUP BY n.id
         HAVING $2::text IS NULL OR bool_or(d.status = $2)
         ORDER BY n.created_at DESC LIMIT $3",
    )
    .bind(jurisdiction)
    .bind(status)
    .bind(limit)
    .fetch_all(conn)
    .await
}
