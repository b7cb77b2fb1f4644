//! Notification's SQL, all in the `notification` schema.

use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;
use time::{Date, OffsetDateTime, Time};
use uuid::Uuid;

use crate::domain::{NewNotice, ProblemFacts, QuietHours, RecipientRequest};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Recipient {
    pub code: String,
    pub name: String,
    pub webhook_url: Option<String>,
    #[serde(skip)]
    pub webhook_secrets: Vec<String>,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
    pub language: String,
    #[serde(skip)]
    pub quiet_from: Option<Time>,
    #[serde(skip)]
    pub quiet_to: Option<Time>,
    /// For a package unit: its city, and its role in the city package.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cc_of: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl Recipient {
    pub fn quiet_hours(&self) -> Option<QuietHours> {
        Some(QuietHours { from: self.quiet_from?, to: self.quiet_to? })
    }

    /// The recipient as the API shows it (secrets never leave the service).
    pub fn view(&self) -> Value {
        let mut view = serde_json::to_value(self).unwrap_or_default();
        let fmt = time::macros::format_description!("[hour]:[minute]");
        view["quiet_hours"] = match self.quiet_hours() {
            Some(q) => serde_json::json!({
                "from": q.from.format(&fmt).unwrap_or_default(), "to": q.to.format(&fmt).unwrap_or_default() }),
            None => Value::Null,
        };
        view["webhook_secrets"] = serde_json::json!(self.webhook_secrets.len());
        view
    }
}

const RECIPIENT_COLUMNS: &str =
    "code, name, webhook_url, webhook_secrets, emails, phones, language, quiet_from, quiet_to, cc_of, role";

pub async fn upsert_recipient(
    conn: &mut PgConnection,
    code: &str,
    r: &RecipientRequest,
    cc_of: Option<&str>,
    role: Option<&str>,
) -> sqlx::Result<()> {
    let secrets = r.webhook.as_ref().map(|w| w.all_secrets()).unwrap_or_default();
    let quiet = r.quiet();
    sqlx::query(
        "INSERT INTO notification.recipients
             (code, name, webhook_url, webhook_secrets, emails, phones, language, quiet_from, quiet_to, cc_of, role)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (code) DO UPDATE SET name = $2, webhook_url = $3, webhook_secrets = $4, emails = $5, phones = $6,
             language = $7, quiet_from = $8, quiet_to = $9, cc_of = $10, role = $11, updated_at = now()",
    )
    .bind(code)
    .bind(&r.name)
    .bind(r.webhook.as_ref().map(|w| &w.url))
    .bind(&secrets)
    .bind(&r.emails)
    .bind(&r.phones)
    .bind(&r.language)
    .bind(quiet.map(|q| q.from))
    .bind(quiet.map(|q| q.to))
    .bind(cc_of)
    .bind(role)
    .execute(conn)
    .await?;
    Ok(())
}

/// Removes the package units of `city` other than `keep`.
pub async fn remove_package_units_except(conn: &mut PgConnection, city: &str, keep: &[String]) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM notification.recipients WHERE cc_of = $1 AND NOT (code = ANY($2))")
        .bind(city)
        .bind(keep)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn recipient(conn: &mut PgConnection, code: &str) -> sqlx::Result<Option<Recipient>> {
    let sql = format!("SELECT {RECIPIENT_COLUMNS} FROM notification.recipients WHERE code = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(code).fetch_optional(conn).await
}

pub async fn package_units(conn: &mut PgConnection, city: &str) -> sqlx::Result<Vec<Recipient>> {
    let sql = format!("SELECT {RECIPIENT_COLUMNS} FROM notification.recipients WHERE cc_of = $1 ORDER BY role");
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(city).fetch_all(conn).await
}

/// Stores notices, each unless one came from the same source before; returns the ids of those
/// that are new.
pub async fn insert_notices(conn: &mut PgConnection, notices: &[(NewNotice, Uuid)]) -> sqlx::Result<Vec<Uuid>> {
    if notices.is_empty() {
        return Ok(Vec::new());
    }
    let column = |f: &dyn Fn(&NewNotice) -> String| notices.iter().map(|(n, _)| f(n)).collect::<Vec<_>>();
    let ids: Vec<Uuid> = notices.iter().map(|(n, _)| n.id).collect();
    let sources: Vec<Uuid> = notices.iter().map(|(_, source)| *source).collect();
    let handovers: Vec<Option<String>> = notices.iter().map(|(n, _)| n.handover_no.clone()).collect();
    let payloads: Vec<Value> = notices.iter().map(|(n, _)| n.payload.clone()).collect();
    let urgent: Vec<bool> = notices.iter().map(|(n, _)| n.kind.urgent()).collect();
    let resend_of: Vec<Option<Uuid>> =
        notices.iter().map(|(n, _)| n.payload["resend_of"].as_str().and_then(|s| s.parse().ok())).collect();
    let inserted: Vec<(Uuid, String)> = sqlx::query_as(
        "INSERT INTO notification.notices
             (id, kind, source_event_id, jurisdiction, city_code, handover_no, payload, urgent, audience, resend_of)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::jsonb[],
                              $8::bool[], $9::text[], $10::uuid[])
         ON CONFLICT (source_event_id) DO NOTHING
         RETURNING id, kind",
    )
    .bind(&ids)
    .bind(column(&|n| n.kind.as_str().to_string()))
    .bind(&sources)
    .bind(column(&|n| n.jurisdiction.clone()))
    .bind(column(&|n| n.city_code.clone()))
    .bind(&handovers)
    .bind(&payloads)
    .bind(&urgent)
    .bind(column(&|n| n.kind.audience().as_str().to_string()))
    .bind(&resend_of)
    .fetch_all(conn)
    .await?;
    for (_, kind) in &inserted {
        metrics::counter!("notices_total", "kind" => kind.clone()).increment(1);
    }
    Ok(inserted.into_iter().map(|(id, _)| id).collect())
}

/// Stores a notice unless one came from the same source before; returns whether it is new.
pub async fn insert_notice(conn: &mut PgConnection, notice: &NewNotice, source_event_id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO notification.notices
             (id, kind, source_event_id, jurisdiction, city_code, handover_no, payload, urgent, audience, resend_of)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (source_event_id) DO NOTHING",
    )
    .bind(notice.id)
    .bind(notice.kind.as_str())
    .bind(source_event_id)
    .bind(&notice.jurisdiction)
    .bind(&notice.city_code)
    .bind(&notice.handover_no)
    .bind(&notice.payload)
    .bind(notice.kind.urgent())
    .bind(notice.kind.audience().as_str())
    .bind(notice.payload["resend_of"].as_str().and_then(|s| s.parse::<Uuid>().ok()))
    .execute(conn)
    .await?;
    metrics::counter!("notices_total", "kind" => notice.kind.as_str()).increment(done.rows_affected());
    Ok(done.rows_affected() == 1)
}

/// Queues deliveries to every channel of every addressee: for the notice `notice` (just made),
/// or for the notices of `city` that have none yet (a recipient registered late still gets
/// them). The owner is the jurisdiction's recipient, else its city's; package units are the
/// city's CC. SMS only for urgent notices, and only with a gateway.
pub async fn queue_deliveries(
    conn: &mut PgConnection,
    notices: &[Uuid],
    city: Option<&str>,
    sms: bool,
) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "INSERT INTO notification.deliveries (notice_id, addressee, cc, channel, target)
         SELECT n.id, a.code, a.cc, t.channel, t.target
         FROM notification.notices n
         CROSS JOIN LATERAL (
             (SELECT r.code, false AS cc FROM notification.recipients r
              WHERE n.audience <> 'units' AND r.code IN (n.jurisdiction, n.city_code)
              ORDER BY r.code = n.jurisdiction DESC LIMIT 1)
             UNION ALL
             (SELECT r.code, true FROM notification.recipients r WHERE n.audience <> 'owner' AND r.cc_of = n.city_code)
         ) a
         JOIN notification.recipients r ON r.code = a.code
         CROSS JOIN LATERAL (
             SELECT 'webhook' AS channel, r.webhook_url AS target WHERE r.webhook_url IS NOT NULL
             UNION ALL SELECT 'email', e FROM unnest(r.emails) AS e
             UNION ALL SELECT 'sms', p FROM unnest(r.phones) AS p WHERE n.urgent AND $3
         ) t
         WHERE n.id = ANY($1::uuid[])
            OR (n.city_code = $2::text
                AND NOT EXISTS (SELECT 1 FROM notification.deliveries d WHERE d.notice_id = n.id))
         ON CONFLICT (notice_id, channel, target) DO NOTHING",
    )
    .bind(notices)
    .bind(city)
    .bind(sms)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// A delivery claimed for one try, with what it takes to make it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueDelivery {
    pub id: i64,
    pub notice_id: Uuid,
    pub channel: String,
    pub target: String,
    pub attempts: i32,
    pub addressee: String,
    pub cc: bool,
    pub kind: String,
    pub urgent: bool,
    pub jurisdiction: String,
    pub city_code: String,
    pub handover_no: Option<String>,
    pub payload: Value,
    /// The addressee's settings; `None` when it was removed meanwhile.
    pub recipient_name: Option<String>,
    pub language: Option<String>,
    pub webhook_secrets: Option<Vec<String>>,
    pub quiet_from: Option<Time>,
    pub quiet_to: Option<Time>,
}

impl DueDelivery {
    pub fn quiet_hours(&self) -> Option<QuietHours> {
        Some(QuietHours { from: self.quiet_from?, to: self.quiet_to? })
    }
}

/// Claims up to `limit` due deliveries for `lease_secs`; a worker that dies leaves them to be
/// claimed again when the lease runs out.
pub async fn claim_due(conn: &mut PgConnection, limit: i64, lease_secs: f64) -> sqlx::Result<Vec<DueDelivery>> {
    sqlx::query_as(
        "WITH due AS (
             SELECT id FROM notification.deliveries
             WHERE status = 'pending' AND next_attempt_at <= now() AND (lease_until IS NULL OR lease_until < now())
             ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
         ), claimed AS (
             UPDATE notification.deliveries d SET lease_until = now() + make_interval(secs => $2)
             FROM due WHERE d.id = due.id
             RETURNING d.*
         )
         SELECT c.id, c.notice_id, c.channel, c.target, c.attempts, c.addressee, c.cc,
                n.kind, n.urgent, n.jurisdiction, n.city_code, n.handover_no, n.payload,
                r.name AS recipient_name, r.language, r.webhook_secrets, r.quiet_from, r.quiet_to
         FROM claimed c
         JOIN notification.notices n ON n.id = c.notice_id
         LEFT JOIN notification.recipients r ON r.code = c.addressee",
    )
    .bind(limit)
    .bind(lease_secs)
    .fetch_all(conn)
    .await
}

/// Holds a delivery back without counting a try (quiet hours).
pub async fn hold_delivery(conn: &mut PgConnection, id: i64, wait_secs: f64, why: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE notification.deliveries
         SET next_attempt_at = now() + make_interval(secs => $2), lease_until = NULL, waiting_for = $3
         WHERE id = $1",
    )
    .bind(id)
    .bind(wait_secs)
    .bind(why)
    .execute(conn)
    .await?;
    Ok(())
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
                waiting_for = NULL, delivered_at = CASE WHEN $2 = 'delivered' THEN now() END
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
        "UPDATE notification.deliveries
         SET attempts = attempts + 1, next_attempt_at = $2, lease_until = NULL, last_error = $3, waiting_for = NULL
         WHERE id = $1",
    )
    .bind(id)
    .bind(at)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// The first time the owner got the notice, on the deployment's clock (receipts count from it).
pub async fn mark_notice_delivered(conn: &mut PgConnection, notice_id: Uuid, at: OffsetDateTime) -> sqlx::Result<()> {
    sqlx::query("UPDATE notification.notices SET delivered_at = coalesce(delivered_at, $2) WHERE id = $1")
        .bind(notice_id)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Dead deliveries of a notice go back to pending with a fresh budget; returns how many.
pub async fn replay_dead(conn: &mut PgConnection, notice_id: Uuid) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE notification.deliveries
         SET status = 'pending', attempts = 0, next_attempt_at = now(), lease_until = NULL, delivered_at = NULL
         WHERE notice_id = $1 AND status = 'dead'",
    )
    .bind(notice_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NoticeHead {
    pub id: Uuid,
    pub kind: String,
    pub jurisdiction: String,
    pub city_code: String,
    pub handover_no: Option<String>,
    pub created_at: OffsetDateTime,
    pub acknowledged_at: Option<OffsetDateTime>,
}

pub async fn notice_head(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<NoticeHead>> {
    sqlx::query_as("SELECT id, kind, jurisdiction, city_code, handover_no, created_at, acknowledged_at FROM notification.notices WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Records the receipt of a notice; a re-sent handover notice and its first share it.
pub async fn acknowledge_notice(conn: &mut PgConnection, id: Uuid, at: OffsetDateTime, by: &str) -> sqlx::Result<()> {
    sqlx::query(
        "WITH family AS (
             SELECT coalesce(resend_of, id) AS first FROM notification.notices WHERE id = $1
         )
         UPDATE notification.notices n SET acknowledged_at = $2, acknowledged_by = $3
         FROM family
         WHERE (n.id = family.first OR n.resend_of = family.first) AND n.acknowledged_at IS NULL",
    )
    .bind(id)
    .bind(at)
    .bind(by)
    .execute(conn)
    .await?;
    Ok(())
}

/// The sheets were acknowledged at assignment (签收): their notices count as received.
pub async fn acknowledge_handovers(
    conn: &mut PgConnection,
    sheets: &[(String, OffsetDateTime)],
    by: &str,
) -> sqlx::Result<()> {
    let (numbers, at): (Vec<String>, Vec<OffsetDateTime>) = sheets.iter().cloned().unzip();
    sqlx::query(
        "UPDATE notification.notices n SET acknowledged_at = a.at, acknowledged_by = $3
         FROM unnest($1::text[], $2::timestamptz[]) AS a(no, at)
         WHERE n.handover_no = a.no AND n.kind = 'handover' AND n.acknowledged_at IS NULL",
    )
    .bind(&numbers)
    .bind(&at)
    .bind(by)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AwaitingReceipt {
    pub id: Uuid,
    pub jurisdiction: String,
    pub payload: Value,
}

/// First handover notices delivered before `delivered_before` and still unacknowledged, not
/// re-sent yet; marked re-sent at `now`.
pub async fn take_to_resend(
    conn: &mut PgConnection,
    delivered_before: OffsetDateTime,
    now: OffsetDateTime,
) -> sqlx::Result<Vec<AwaitingReceipt>> {
    sqlx::query_as(
        "UPDATE notification.notices SET resent_at = $2
         WHERE id IN (
             SELECT id FROM notification.notices
             WHERE kind = 'handover' AND resend_of IS NULL AND acknowledged_at IS NULL AND raised_at IS NULL
               AND resent_at IS NULL AND delivered_at <= $1
             LIMIT 500 FOR UPDATE SKIP LOCKED)
         RETURNING id, jurisdiction, payload",
    )
    .bind(delivered_before)
    .bind(now)
    .fetch_all(conn)
    .await
}

/// Handover notices re-sent before `resent_before` and still unacknowledged; marked raised.
pub async fn take_to_raise(
    conn: &mut PgConnection,
    resent_before: OffsetDateTime,
    now: OffsetDateTime,
) -> sqlx::Result<Vec<AwaitingReceipt>> {
    sqlx::query_as(
        "UPDATE notification.notices SET raised_at = $2
         WHERE id IN (
             SELECT id FROM notification.notices
             WHERE kind = 'handover' AND resend_of IS NULL AND acknowledged_at IS NULL AND raised_at IS NULL
               AND resent_at <= $1
             LIMIT 500 FOR UPDATE SKIP LOCKED)
         RETURNING id, jurisdiction, payload",
    )
    .bind(resent_before)
    .bind(now)
    .fetch_all(conn)
    .await
}

/// The key that signs receipt links: made on first start, the same ever after.
pub async fn receipt_key(conn: &mut PgConnection) -> sqlx::Result<Vec<u8>> {
    let fresh: [u8; 32] = rand::random();
    sqlx::query("INSERT INTO notification.keys (name, value) VALUES ('receipts', $1) ON CONFLICT (name) DO NOTHING")
        .bind(&fresh[..])
        .execute(&mut *conn)
        .await?;
    sqlx::query_scalar("SELECT value FROM notification.keys WHERE name = 'receipts'").fetch_one(conn).await
}

// ---- Problems and their deadlines ----

/// What a handover sheet says of problems (`city`, `at`: the sheet's): where, what, whose.
pub async fn note_problems(
    conn: &mut PgConnection,
    noted: &[(ProblemFacts, &str, OffsetDateTime)],
) -> sqlx::Result<()> {
    let facts = Columns::of(noted.iter().map(|(f, city, at)| (f, *city, *at, 0)));
    sqlx::query(
        "INSERT INTO notification.problems
             (problem_id, city_code, jurisdiction, category, site_name, description, deadline, deadline_set_at)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::date[],
                              $8::timestamptz[])
         ON CONFLICT (problem_id) DO UPDATE SET category = EXCLUDED.category, site_name = EXCLUDED.site_name,
             description = EXCLUDED.description,
             deadline = coalesce(notification.problems.deadline, EXCLUDED.deadline),
             deadline_set_at = coalesce(notification.problems.deadline_set_at, EXCLUDED.deadline_set_at)",
    )
    .bind(&facts.ids)
    .bind(&facts.cities)
    .bind(&facts.jurisdictions)
    .bind(&facts.categories)
    .bind(&facts.site_names)
    .bind(&facts.descriptions)
    .bind(&facts.deadlines)
    .bind(&facts.at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Problem facts as columns, for multi-row statements.
struct Columns {
    ids: Vec<Uuid>,
    cities: Vec<String>,
    jurisdictions: Vec<String>,
    categories: Vec<Option<String>>,
    site_names: Vec<Option<String>>,
    descriptions: Vec<Option<String>>,
    deadlines: Vec<Option<Date>>,
    at: Vec<OffsetDateTime>,
    seqs: Vec<i64>,
}

impl Columns {
    fn of<'a>(rows: impl Iterator<Item = (&'a ProblemFacts, &'a str, OffsetDateTime, i64)>) -> Self {
        let mut c = Columns {
            ids: vec![],
            cities: vec![],
            jurisdictions: vec![],
            categories: vec![],
            site_names: vec![],
            descriptions: vec![],
            deadlines: vec![],
            at: vec![],
            seqs: vec![],
        };
        for (f, city, at, seq) in rows {
            c.ids.push(f.problem_id);
            c.cities.push(city.to_string());
            c.jurisdictions.push(f.jurisdiction.clone());
            c.categories.push(f.category.clone());
            c.site_names.push(f.site_name.clone());
            c.descriptions.push(f.description.clone());
            c.deadlines.push(f.deadline);
            c.at.push(at);
            c.seqs.push(seq);
        }
        c
    }
}

/// An assignment event about a problem: what it says, the problem's city, when, its counter.
pub struct AssignmentWord {
    pub facts: ProblemFacts,
    pub city: String,
    pub at: OffsetDateTime,
    pub seq: i64,
}

/// Assignment events set the owner and the deadline (assigned, extended, rerouted), each
/// problem at most once. Stale events (an older `problem_seq` of assignment's) change nothing;
/// of two deadlines from the two producers, the one set later stands. Returns the problems for
/// which the event was news.
pub async fn apply_assignment(conn: &mut PgConnection, words: &[AssignmentWord]) -> sqlx::Result<Vec<Uuid>> {
    let c = Columns::of(words.iter().map(|w| (&w.facts, w.city.as_str(), w.at, w.seq)));
    sqlx::query_scalar(
        "INSERT INTO notification.problems AS p
             (problem_id, city_code, jurisdiction, category, site_name, description, deadline, deadline_set_at, assignment_seq)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::date[],
                              $8::timestamptz[], $9::bigint[])
         ON CONFLICT (problem_id) DO UPDATE SET
             city_code = EXCLUDED.city_code, jurisdiction = EXCLUDED.jurisdiction,
             category = coalesce(EXCLUDED.category, p.category),
             site_name = coalesce(EXCLUDED.site_name, p.site_name),
             description = coalesce(EXCLUDED.description, p.description),
             deadline = CASE WHEN p.deadline_set_at IS NULL OR EXCLUDED.deadline_set_at >= p.deadline_set_at
                             THEN EXCLUDED.deadline ELSE p.deadline END,
             deadline_set_at = greatest(p.deadline_set_at, EXCLUDED.deadline_set_at),
             assignment_seq = EXCLUDED.assignment_seq
         WHERE p.assignment_seq < EXCLUDED.assignment_seq
         RETURNING problem_id",
    )
    .bind(&c.ids)
    .bind(&c.cities)
    .bind(&c.jurisdictions)
    .bind(&c.categories)
    .bind(&c.site_names)
    .bind(&c.descriptions)
    .bind(&c.deadlines)
    .bind(&c.at)
    .bind(&c.seqs)
    .fetch_all(conn)
    .await
}

/// A verification event about a problem: closed, or reopened with a new deadline.
pub struct VerificationWord {
    pub problem_id: Uuid,
    pub city: String,
    pub seq: i64,
    pub closed: bool,
    pub deadline: Option<Date>,
    pub at: OffsetDateTime,
}

/// Verification events close or reopen problems (each at most once). Returns the problems for
/// which the event was news.
pub async fn apply_verification(conn: &mut PgConnection, words: &[VerificationWord]) -> sqlx::Result<Vec<Uuid>> {
    let ids: Vec<Uuid> = words.iter().map(|w| w.problem_id).collect();
    let cities: Vec<&str> = words.iter().map(|w| w.city.as_str()).collect();
    let deadlines: Vec<Option<Date>> = words.iter().map(|w| w.deadline).collect();
    let at: Vec<OffsetDateTime> = words.iter().map(|w| w.at).collect();
    let seqs: Vec<i64> = words.iter().map(|w| w.seq).collect();
    let closed: Vec<bool> = words.iter().map(|w| w.closed).collect();
    sqlx::query_scalar(
        "INSERT INTO notification.problems AS p
             (problem_id, city_code, jurisdiction, deadline, deadline_set_at, verification_seq, closed)
         SELECT id, city, city, deadline, CASE WHEN deadline IS NOT NULL THEN at END, seq, closed
         FROM unnest($1::uuid[], $2::text[], $3::date[], $4::timestamptz[], $5::bigint[], $6::bool[])
              AS w(id, city, deadline, at, seq, closed)
         ON CONFLICT (problem_id) DO UPDATE SET
             closed = EXCLUDED.closed, verification_seq = EXCLUDED.verification_seq,
             deadline = CASE WHEN EXCLUDED.deadline IS NOT NULL
                              AND (p.deadline_set_at IS NULL OR EXCLUDED.deadline_set_at >= p.deadline_set_at)
                             THEN EXCLUDED.deadline ELSE p.deadline END,
             deadline_set_at = greatest(p.deadline_set_at, EXCLUDED.deadline_set_at)
         WHERE p.verification_seq < EXCLUDED.verification_seq
         RETURNING problem_id",
    )
    .bind(&ids)
    .bind(&cities)
    .bind(&deadlines)
    .bind(&at)
    .bind(&seqs)
    .bind(&closed)
    .fetch_all(conn)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProblemRow {
    pub problem_id: Uuid,
    pub jurisdiction: String,
    pub category: Option<String>,
    pub site_name: Option<String>,
    pub description: Option<String>,
    pub deadline: Option<Date>,
    pub deadline_set_at: Option<OffsetDateTime>,
}

impl ProblemRow {
    pub fn facts(&self) -> ProblemFacts {
        ProblemFacts {
            problem_id: self.problem_id,
            jurisdiction: self.jurisdiction.clone(),
            category: self.category.clone(),
            site_name: self.site_name.clone(),
            description: self.description.clone(),
            deadline: self.deadline,
        }
    }
}

/// What is known of `ids`, by id.
pub async fn problems(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> sqlx::Result<std::collections::HashMap<Uuid, ProblemRow>> {
    let rows: Vec<ProblemRow> = sqlx::query_as(
        "SELECT problem_id, jurisdiction, category, site_name, description, deadline, deadline_set_at
         FROM notification.problems WHERE problem_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.problem_id, r)).collect())
}

/// Open problems whose deadline falls within `[today, today + days]` and has had no reminder,
/// locked for this run.
pub async fn reminder_candidates(conn: &mut PgConnection, today: Date, days: u32) -> sqlx::Result<Vec<ProblemRow>> {
    sqlx::query_as(
        "SELECT problem_id, jurisdiction, category, site_name, description, deadline, deadline_set_at
         FROM notification.problems
         WHERE NOT closed AND deadline BETWEEN $1 AND $1 + $2::int AND reminded_for IS DISTINCT FROM deadline
         ORDER BY jurisdiction, deadline LIMIT 5000 FOR UPDATE SKIP LOCKED",
    )
    .bind(today)
    .bind(days as i32)
    .fetch_all(conn)
    .await
}

pub async fn mark_reminded(conn: &mut PgConnection, problem_id: Uuid, deadline: Date) -> sqlx::Result<()> {
    sqlx::query("UPDATE notification.problems SET reminded_for = $2 WHERE problem_id = $1")
        .bind(problem_id)
        .bind(deadline)
        .execute(conn)
        .await?;
    Ok(())
}

// ---- Reading notices ----

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct NoticeRow {
    pub id: Uuid,
    pub kind: String,
    pub jurisdiction: String,
    pub city_code: String,
    pub handover_no: Option<String>,
    pub urgent: bool,
    pub resend_of: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub acknowledged_at: Option<OffsetDateTime>,
    pub problem_count: Option<i32>,
    /// Each delivery: addressee, channel, target, status, attempts, last error.
    pub deliveries: Value,
}

pub struct NoticeFilter<'a> {
    pub jurisdiction: Option<&'a str>,
    pub status: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub limit: i64,
}

pub async fn notices(conn: &mut PgConnection, f: &NoticeFilter<'_>) -> sqlx::Result<Vec<NoticeRow>> {
    sqlx::query_as(
        "SELECT n.id, n.kind, n.jurisdiction, n.city_code, n.handover_no, n.urgent, n.resend_of, n.created_at,
                n.acknowledged_at,
                jsonb_array_length(CASE WHEN jsonb_typeof(n.payload -> 'problems') = 'array'
                                        THEN n.payload -> 'problems' END) AS problem_count,
                coalesce(jsonb_agg(jsonb_build_object('addressee', d.addressee, 'cc', d.cc, 'channel', d.channel,
                    'target', d.target, 'status', d.status, 'attempts', d.attempts, 'last_error', d.last_error,
                    'waiting_for', d.waiting_for, 'delivered_at', d.delivered_at) ORDER BY d.id)
                    FILTER (WHERE d.id IS NOT NULL), '[]') AS deliveries
         FROM notification.notices n
         LEFT JOIN notification.deliveries d ON d.notice_id = n.id
         WHERE ($1::text IS NULL OR n.jurisdiction = $1 OR n.city_code = $1)
           AND ($3::text IS NULL OR n.kind = $3)
         GROUP BY n.id
         HAVING $2::text IS NULL OR bool_or(d.status = $2)
         ORDER BY n.created_at DESC LIMIT $4",
    )
    .bind(f.jurisdiction)
    .bind(f.status)
    .bind(f.kind)
    .bind(f.limit)
    .fetch_all(conn)
    .await
}

/// A person invited to the workbench.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Person {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub team: Option<String>,
    pub jurisdiction: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub language: String,
    pub invited_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub invited_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub signed_in_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_reason: Option<String>,
}

const PERSON_COLUMNS: &str = "id, name, role, team, jurisdiction, email, phone, language, invited_by, invited_at, \
                              signed_in_at, revoked_at, revoked_reason";

pub async fn insert_person(conn: &mut PgConnection, p: &Person) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO notification.people (id, name, role, team, jurisdiction, email, phone, language, invited_by, invited_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(p.id)
    .bind(&p.name)
    .bind(&p.role)
    .bind(&p.team)
    .bind(&p.jurisdiction)
    .bind(&p.email)
    .bind(&p.phone)
    .bind(&p.language)
    .bind(&p.invited_by)
    .bind(p.invited_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn person(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Person>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {PERSON_COLUMNS} FROM notification.people WHERE id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn people(conn: &mut PgConnection) -> sqlx::Result<Vec<Person>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {PERSON_COLUMNS} FROM notification.people ORDER BY invited_at DESC, name"
    )))
    .fetch_all(conn)
    .await
}

/// Marks a person revoked; false when they were already.
pub async fn revoke_person(conn: &mut PgConnection, id: Uuid, at: OffsetDateTime, reason: &str) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE notification.people SET revoked_at = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .bind(at)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn insert_invitation(
    conn: &mut PgConnection,
    id: Uuid,
    person_id: Uuid,
    at: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO notification.invitations (id, person_id, created_at, expires_at, next_attempt_at)
         VALUES ($1, $2, $3, $4, $3)",
    )
    .bind(id)
    .bind(person_id)
    .bind(at)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Uses an invitation: the person it signs in, once, before it expires, unless revoked. `Err`
/// says why not.
pub async fn use_invitation(
    conn: &mut PgConnection,
    id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<Result<Person, &'static str>> {
    let row: Option<(Uuid, OffsetDateTime, Option<OffsetDateTime>)> =
        sqlx::query_as("SELECT person_id, expires_at, used_at FROM notification.invitations WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((person_id, expires_at, used_at)) = row else { return Ok(Err("no such sign-in link")) };
    if used_at.is_some() {
        return Ok(Err("this sign-in link has been used already; ask the campaign office for a new one"));
    }
    if expires_at <= now {
        return Ok(Err("this sign-in link has expired; ask the campaign office for a new one"));
    }
    let Some(person) = person(conn, person_id).await? else { return Ok(Err("no such person")) };
    if person.revoked_at.is_some() {
        return Ok(Err("this person's access has been revoked"));
    }
    sqlx::query("UPDATE notification.invitations SET used_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE notification.people SET signed_in_at = $2 WHERE id = $1")
        .bind(person_id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(Ok(person))
}

/// An invitation e-mail to send.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueInvitation {
    pub id: Uuid,
    pub expires_at: OffsetDateTime,
    pub attempts: i32,
    pub name: String,
    pub email: String,
    pub language: String,
    pub role: String,
}

/// Takes up to `limit` unsent invitations that are due, leasing them for `lease_secs` so no
/// other instance sends them meanwhile.
pub async fn claim_invitations(
    conn: &mut PgConnection,
    limit: i64,
    lease_secs: f64,
) -> sqlx::Result<Vec<DueInvitation>> {
    sqlx::query_as(
        "WITH due AS (
             SELECT i.id FROM notification.invitations i
             WHERE i.sent_at IS NULL AND i.next_attempt_at <= now() AND i.used_at IS NULL
             ORDER BY i.next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
         ), leased AS (
             UPDATE notification.invitations i
             SET next_attempt_at = now() + make_interval(secs => $2), attempts = i.attempts + 1
             FROM due WHERE i.id = due.id
             RETURNING i.id, i.person_id, i.expires_at, i.attempts
         )
         SELECT l.id, l.expires_at, l.attempts, p.name, p.email, p.language, p.role
         FROM leased l JOIN notification.people p ON p.id = l.person_id
         WHERE p.email IS NOT NULL AND p.revoked_at IS NULL",
    )
    .bind(limit)
    .bind(lease_secs)
    .fetch_all(conn)
    .await
}

pub async fn invitation_sent(conn: &mut PgConnection, id: Uuid, at: OffsetDateTime) -> sqlx::Result<()> {
    sqlx::query("UPDATE notification.invitations SET sent_at = $2, last_error = NULL WHERE id = $1")
        .bind(id)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn invitation_failed(conn: &mut PgConnection, id: Uuid, retry_in_secs: f64, error: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE notification.invitations SET next_attempt_at = now() + make_interval(secs => $2), last_error = $3
         WHERE id = $1",
    )
    .bind(id)
    .bind(retry_in_secs)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Something the campaign office must decide.
pub struct OfficeAlert<'a> {
    pub source_event_id: Uuid,
    pub kind: &'a str,
    pub problem_id: Uuid,
    pub jurisdiction: &'a str,
    pub detail: &'a str,
}

pub async fn insert_office_alerts(conn: &mut PgConnection, alerts: &[OfficeAlert<'_>]) -> sqlx::Result<()> {
    if alerts.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO notification.office_alerts (source_event_id, kind, problem_id, jurisdiction, detail)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[])
         ON CONFLICT (source_event_id) DO NOTHING",
    )
    .bind(alerts.iter().map(|a| a.source_event_id).collect::<Vec<_>>())
    .bind(alerts.iter().map(|a| a.kind).collect::<Vec<_>>())
    .bind(alerts.iter().map(|a| a.problem_id).collect::<Vec<_>>())
    .bind(alerts.iter().map(|a| a.jurisdiction).collect::<Vec<_>>())
    .bind(alerts.iter().map(|a| a.detail).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueOfficeAlert {
    pub source_event_id: Uuid,
    pub kind: String,
    pub problem_id: Uuid,
    pub jurisdiction: String,
    pub detail: String,
    pub attempts: i32,
}

/// Takes up to `limit` unsent office alerts that are due, leased for `lease_secs`.
pub async fn claim_office_alerts(
    conn: &mut PgConnection,
    limit: i64,
    lease_secs: f64,
) -> sqlx::Result<Vec<DueOfficeAlert>> {
    sqlx::query_as(
        "WITH due AS (
             SELECT source_event_id FROM notification.office_alerts
             WHERE sent_at IS NULL AND next_attempt_at <= now()
             ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
         )
         UPDATE notification.office_alerts a
         SET next_attempt_at = now() + make_interval(secs => $2), attempts = a.attempts + 1
         FROM due WHERE a.source_event_id = due.source_event_id
         RETURNING a.source_event_id, a.kind, a.problem_id, a.jurisdiction, a.detail, a.attempts",
    )
    .bind(limit)
    .bind(lease_secs)
    .fetch_all(conn)
    .await
}

pub async fn office_alert_done(
    conn: &mut PgConnection,
    id: Uuid,
    error: Option<&str>,
    retry_in_secs: f64,
) -> sqlx::Result<()> {
    let sql = if error.is_none() {
        "UPDATE notification.office_alerts SET sent_at = now(), last_error = NULL WHERE source_event_id = $1"
    } else {
        "UPDATE notification.office_alerts
         SET next_attempt_at = now() + make_interval(secs => $3), last_error = $2 WHERE source_event_id = $1"
    };
    sqlx::query(sql).bind(id).bind(error).bind(retry_in_secs).execute(conn).await?;
    Ok(())
}

/// The campaign office's people who have an e-mail address, and are not revoked.
pub async fn office_mailboxes(conn: &mut PgConnection) -> sqlx::Result<Vec<(String, String, String)>> {
    sqlx::query_as(
        "SELECT name, email, language FROM notification.people
         WHERE role = 'admin' AND email IS NOT NULL AND revoked_at IS NULL ORDER BY invited_at",
    )
    .fetch_all(conn)
    .await
}
