//! Delivery: claims due deliveries, sends each on its own task (so one recipient's dead endpoint
//! never holds up another's), and records every try. Retries back off; a notice that runs out
//! of tries is dead and shown on `GET /v1/notices`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use shared::events::{NOTICE_DELIVERED, NOTICE_FAILED, NoticeOutcome};
use shared::outbox::Outbox;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::config::{NotificationConfig, SmtpConfig};
use crate::domain::{self, Answer};
use crate::store::{self, AttemptRecord, DueDelivery};

pub struct Deliverer {
    pool: PgPool,
    outbox: Outbox,
    http: reqwest::Client,
    mailer: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    config: NotificationConfig,
    in_flight: Arc<Semaphore>,
    tasks: TaskTracker,
}

/// How one try went.
struct Try {
    answer: Answer,
    status_code: Option<i32>,
    error: Option<String>,
}

fn mailer(smtp: &SmtpConfig) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let mut builder = match smtp.tls.as_str() {
        "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)?,
        "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)?,
        _ => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
    }
    .port(smtp.port)
    .timeout(Some(Duration::from_secs(20)));
    if !smtp.username.is_empty() {
        builder = builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
            smtp.username.clone(),
            smtp.password.clone(),
        ));
    }
    Ok(builder.build())
}

impl Deliverer {
    pub fn new(pool: PgPool, outbox: Outbox, config: NotificationConfig, tasks: TaskTracker) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.webhook_timeout_secs))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("Skyledger-Webhooks/1")
            .build()?;
        Ok(Self {
            pool,
            outbox,
            http,
            mailer: mailer(&config.smtp)?,
            from: config.smtp.from.parse()?,
            in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            config,
            tasks,
        })
    }

    /// Claims as many due deliveries as there are free slots and starts them.
    pub async fn dispatch_due(self: &Arc<Self>) -> anyhow::Result<()> {
        let free = self.in_flight.available_permits();
        if free == 0 {
            return Ok(());
        }
        // The lease outlasts the longest try, so nobody else takes a delivery in flight.
        let lease = (self.config.webhook_timeout_secs + 60) as f64;
        let due = store::claim_due(&mut *self.pool.acquire().await?, free as i64, lease).await?;
        for delivery in due {
            let permit = self.in_flight.clone().acquire_owned().await?;
            let me = self.clone();
            self.tasks.spawn(async move {
                me.deliver(delivery).await;
                drop(permit);
            });
        }
        Ok(())
    }

    async fn deliver(&self, d: DueDelivery) {
        let started = Instant::now();
        let tried = match d.channel.as_str() {
            "webhook" => self.send_webhook(&d).await,
            "email" => self.send_email(&d).await,
            other => {
                Try { answer: Answer::Refused, status_code: None, error: Some(format!("unknown channel {other}")) }
            }
        };
        let latency = started.elapsed();
        metrics::histogram!("delivery_seconds", "channel" => d.channel.clone()).record(latency.as_secs_f64());
        if let Err(e) = self.record(&d, &tried, latency).await {
            // The lease runs out and the delivery is tried again, with the same webhook-id.
            tracing::warn!(error = %e, delivery = d.id, "cannot record delivery outcome");
        }
    }

    async fn record(&self, d: &DueDelivery, tried: &Try, latency: Duration) -> anyhow::Result<()> {
        let attempts = d.attempts + 1;
        let (outcome, next) = match tried.answer {
            Answer::Delivered => ("delivered", None),
            Answer::Refused => ("dead", None),
            Answer::RetryLater(_) if attempts >= self.config.max_attempts => ("dead", None),
            Answer::RetryLater(asked) => {
                let wait = domain::retry_delay(attempts, rand::random::<f64>())
                    .max(asked.unwrap_or_default().min(Duration::from_secs(3600)));
                ("retry", Some(OffsetDateTime::now_utc() + wait))
            }
        };
        metrics::counter!("deliveries_total", "channel" => d.channel.clone(), "outcome" => outcome).increment(1);
        let mut tx = self.pool.begin().await?;
        store::record_attempt(
            &mut tx,
            &AttemptRecord {
                delivery_id: d.id,
                outcome,
                status_code: tried.status_code,
                latency_ms: latency.as_millis().min(i32::MAX as u128) as i32,
                error: tried.error.clone(),
            },
        )
        .await?;
        let event = NoticeOutcome {
            notice_id: d.notice_id,
            handover_no: d.handover_no.clone(),
            jurisdiction: d.jurisdiction.clone(),
            channel: d.channel.clone(),
            target: d.target.clone(),
            attempts,
            detail: tried.error.clone(),
        };
        let city = shared::reference::city_of_county(&d.jurisdiction)
            .map(|c| c.code.clone())
            .unwrap_or_else(|| d.jurisdiction.clone());
        match next {
            Some(at) => store::retry_delivery(&mut tx, d.id, at, tried.error.as_deref().unwrap_or("")).await?,
            None if outcome == "delivered" => {
                store::finish_delivery(&mut tx, d.id, "delivered", None).await?;
                self.outbox.publish(&mut tx, &NOTICE_DELIVERED, Some(&city), d.notice_id.to_string(), &event).await?;
            }
            None => {
                store::finish_delivery(&mut tx, d.id, "dead", tried.error.as_deref()).await?;
                self.outbox.publish(&mut tx, &NOTICE_FAILED, Some(&city), d.notice_id.to_string(), &event).await?;
                tracing::warn!(notice = %d.notice_id, target = %d.target, "notice is dead");
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn send_webhook(&self, d: &DueDelivery) -> Try {
        let failed = |answer, error: String| Try { answer, status_code: None, error: Some(error) };
        let secrets = match store::recipient(
            &mut *match self.pool.acquire().await {
                Ok(c) => c,
                Err(e) => return failed(Answer::RetryLater(None), e.to_string()),
            },
            &d.jurisdiction,
        )
        .await
        {
            Ok(Some(r)) => r.webhook_secrets,
            Ok(None) => return failed(Answer::Refused, "the recipient is gone".into()),
            Err(e) => return failed(Answer::RetryLater(None), e.to_string()),
        };
        let body = serde_json::to_vec(&d.payload).expect("JSON value serialises");
        let msg_id = d.notice_id.to_string();
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        let signature = match domain::sign_webhook(&secrets, &msg_id, timestamp, &body) {
            Ok(s) => s,
            Err(e) => return failed(Answer::Refused, format!("cannot sign: {e}")),
        };
        let response = self
            .http
            .post(&d.target)
            .header("content-type", "application/json")
            .header("webhook-id", &msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match response {
            Ok(r) => {
                let status = r.status().as_u16();
                let retry_after = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let answer = domain::judge_status(status, retry_after);
                let error = (answer != Answer::Delivered).then(|| format!("HTTP {status}"));
                Try { answer, status_code: Some(status as i32), error }
            }
            Err(e) => failed(Answer::RetryLater(None), format!("{e}")),
        }
    }

    async fn send_email(&self, d: &DueDelivery) -> Try {
        let failed = |answer, error: String| Try { answer, status_code: None, error: Some(error) };
        let recipient = match self.pool.acquire().await {
            Ok(mut conn) => store::recipient(&mut conn, &d.jurisdiction).await,
            Err(e) => Err(e),
        };
        let (name, language) = match recipient {
            Ok(Some(r)) => (r.name, r.language),
            Ok(None) => return failed(Answer::Refused, "the recipient is gone".into()),
            Err(e) => return failed(Answer::RetryLater(None), e.to_string()),
        };
        let to: Mailbox = match d.target.parse() {
            Ok(to) => to,
            Err(e) => return failed(Answer::Refused, format!("bad address: {e}")),
        };
        let (subject, text) = domain::handover_email(&language, &name, &d.payload);
        let html =
            format!("<html><body><pre style=\"font-family:sans-serif\">{}</pre></body></html>", escape_html(&text));
        // One Message-ID per notice and address, so a re-send after a crash is recognisably the same mail.
        let message_id = format!("<{}.{}@skyledger>", d.notice_id, d.id);
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(message_id))
            .multipart(MultiPart::alternative_plain_html(text, html));
        let message = match message {
            Ok(m) => m,
            Err(e) => return failed(Answer::Refused, format!("cannot build the e-mail: {e}")),
        };
        match self.mailer.send(message).await {
            Ok(_) => Try { answer: Answer::Delivered, status_code: None, error: None },
            Err(e) if e.is_permanent() => failed(Answer::Refused, e.to_string()),
            Err(e) => failed(Answer::RetryLater(None), e.to_string()),
        }
    }
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
