//! Delivery: claims due deliveries, sends each on its own task (so one recipient's dead endpoint
//! never holds up another's), and records every try. Three channels: signed webhooks, e-mail
//! over SMTP (the handover sheet attached as XLSX and CSV), and SMS through an HTTP gateway for
//! urgent notices. Retries back off; a notice that runs out of tries is dead and shown on
//! `GET /v1/notices`. Non-urgent notices wait out the recipient's quiet hours.

use std::sync::Arc;
use std::time::{Duration, Instant};

use askama::Template;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use shared::clock::{Clock, SHANGHAI};
use shared::events::{NoticeDelivered, NoticeFailed, NoticeOutcome};
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
    clock: Clock,
    in_flight: Arc<Semaphore>,
    tasks: TaskTracker,
}

/// How one try went.
struct Try {
    answer: Answer,
    status_code: Option<i32>,
    error: Option<String>,
}

pub(crate) fn mailer(smtp: &SmtpConfig) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let mut builder = match smtp.tls.as_str() {
        "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)?,
        "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)?,
        _ => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
    }
    .port(smtp.port)
    .timeout(Some(Duration::from_secs(smtp.timeout_secs)));
    if !smtp.username.is_empty() {
        builder = builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
            smtp.username.clone(),
            smtp.password.clone(),
        ));
    }
    Ok(builder.build())
}

impl Deliverer {
    pub fn new(
        pool: PgPool,
        outbox: Outbox,
        config: NotificationConfig,
        clock: Clock,
        tasks: TaskTracker,
    ) -> anyhow::Result<Self> {
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
            clock,
            tasks,
        })
    }

    /// Claims as many due deliveries as there are free slots and starts them.
    pub async fn dispatch_due(self: &Arc<Self>) -> anyhow::Result<()> {
        let free = self.in_flight.available_permits();
        if free == 0 {
            return Ok(());
        }
        let lease = self.config.lease_secs() as f64;
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
        // Quiet hours hold non-urgent notices back without spending a try.
        let now = self.clock.now().to_offset(SHANGHAI).time();
        let recheck = Duration::from_secs(self.config.quiet_recheck_secs.max(1));
        if let Some(wait) = domain::quiet_wait(d.quiet_hours(), now, d.urgent, recheck) {
            let held = async {
                let mut conn = self.pool.acquire().await?;
                store::hold_delivery(&mut conn, d.id, wait.as_secs_f64(), "quiet hours").await
            };
            if let Err(e) = held.await {
                tracing::warn!(error = %e, delivery = d.id, "cannot hold delivery for quiet hours");
            }
            return;
        }
        let started = Instant::now();
        let tried = match d.channel.as_str() {
            "webhook" => self.send_webhook(&d).await,
            "email" => self.send_email(&d).await,
            "sms" => self.send_sms(&d).await,
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
                let wait = domain::retry_delay(attempts, rand::random::<f64>(), self.config.retry_scale)
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
        let city = d.city_code.clone();
        match next {
            Some(at) => store::retry_delivery(&mut tx, d.id, at, tried.error.as_deref().unwrap_or("")).await?,
            None if outcome == "delivered" => {
                store::finish_delivery(&mut tx, d.id, "delivered", None).await?;
                if !d.cc {
                    store::mark_notice_delivered(&mut tx, d.notice_id, self.clock.now()).await?;
                }
                self.outbox.publish(&mut tx, Some(&city), d.notice_id.to_string(), &NoticeDelivered(event)).await?;
            }
            None => {
                store::finish_delivery(&mut tx, d.id, "dead", tried.error.as_deref()).await?;
                self.outbox.publish(&mut tx, Some(&city), d.notice_id.to_string(), &NoticeFailed(event)).await?;
                tracing::warn!(notice = %d.notice_id, target = %d.target, "notice is dead");
            }
        }
        self.outbox.commit(tx).await?;
        Ok(())
    }

    async fn send_webhook(&self, d: &DueDelivery) -> Try {
        let failed = |answer, error: String| Try { answer, status_code: None, error: Some(error) };
        let Some(secrets) = d.webhook_secrets.clone() else {
            return failed(Answer::Refused, "the recipient is gone".into());
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
                let answer = domain::judge_status(status, retry_after(r.headers()));
                let error = (answer != Answer::Delivered).then(|| format!("HTTP {status}"));
                Try { answer, status_code: Some(status as i32), error }
            }
            Err(e) => failed(Answer::RetryLater(None), format!("{e}")),
        }
    }

    async fn send_email(&self, d: &DueDelivery) -> Try {
        let failed = |answer, error: String| Try { answer, status_code: None, error: Some(error) };
        let (Some(name), Some(language)) = (&d.recipient_name, &d.language) else {
            return failed(Answer::Refused, "the recipient is gone".into());
        };
        let to: Mailbox = match d.target.parse() {
            Ok(to) => to,
            Err(e) => return failed(Answer::Refused, format!("bad address: {e}")),
        };
        let message = match self.email(d, name, language, to) {
            Ok(m) => m,
            Err(e) => return failed(Answer::Refused, format!("cannot build the e-mail: {e}")),
        };
        match self.mailer.send(message).await {
            Ok(_) => Try { answer: Answer::Delivered, status_code: None, error: None },
            Err(e) if e.is_permanent() => failed(Answer::Refused, e.to_string()),
            Err(e) => failed(Answer::RetryLater(None), e.to_string()),
        }
    }

    /// Text and HTML from the templates; a handover sheet also attached as XLSX and CSV.
    fn email(&self, d: &DueDelivery, name: &str, language: &str, to: Mailbox) -> anyhow::Result<Message> {
        let rendered = domain::render(&d.payload, language, name);
        let html = NoticeEmail { language, subject: &rendered.subject, text: &rendered.text }.render()?;
        let mut body = MultiPart::mixed().multipart(MultiPart::alternative_plain_html(rendered.text, html));
        if d.kind == "handover"
            && let Some(handover_no) = &d.handover_no
        {
            let rows = domain::sheet_rows(&d.payload, language);
            let xlsx = domain::sheet_xlsx(&rows, handover_no)?;
            let xlsx_type = ContentType::parse("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")?;
            body = body.singlepart(Attachment::new(format!("{handover_no}.xlsx")).body(xlsx, xlsx_type)).singlepart(
                Attachment::new(format!("{handover_no}.csv"))
                    .body(domain::sheet_csv(&rows), ContentType::parse("text/csv; charset=utf-8")?),
            );
        }
        // One Message-ID per notice and address, so a re-send after a crash is recognisably the
        // same mail.
        let message_id = format!("<{}.{}@skyledger>", d.notice_id, d.id);
        Ok(Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(rendered.subject)
            .message_id(Some(message_id))
            .multipart(body)?)
    }

    /// `POST {url}` with `{"to", "text", "sender", "reference"}`; the reference (the notice id
    /// and number) lets the gateway drop a repeat.
    async fn send_sms(&self, d: &DueDelivery) -> Try {
        let failed = |answer, error: String| Try { answer, status_code: None, error: Some(error) };
        let sms = &self.config.sms;
        if sms.url.is_empty() {
            return failed(Answer::Refused, "no SMS gateway is configured".into());
        }
        let (Some(name), Some(language)) = (&d.recipient_name, &d.language) else {
            return failed(Answer::Refused, "the recipient is gone".into());
        };
        let text = domain::render(&d.payload, language, name).sms;
        let reference = format!("{}:{}", d.notice_id, d.target);
        let mut request =
            self.http.post(&sms.url).header("idempotency-key", &reference).json(
                &serde_json::json!({ "to": d.target, "text": text, "sender": sms.sender, "reference": reference }),
            );
        if !sms.username.is_empty() {
            request = request.basic_auth(&sms.username, Some(&sms.password));
        }
        match request.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let answer = domain::judge_status(status, retry_after(r.headers()));
                let error = (answer != Answer::Delivered).then(|| format!("HTTP {status}"));
                Try { answer, status_code: Some(status as i32), error }
            }
            Err(e) => failed(Answer::RetryLater(None), format!("{e}")),
        }
    }
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// A notice's HTML part (`templates/notice_email.html`): its text as written, escaped.
#[derive(Template)]
#[template(path = "notice_email.html")]
pub(crate) struct NoticeEmail<'a> {
    pub language: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
}
