use serde::{Deserialize, Serialize};
use shared::config::CommonConfig;

/// The `[notification]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct NotificationConfig {
    pub listen: String,
    /// Tries of one delivery before the notice is dead.
    pub max_attempts: i32,
    /// Seconds a receiver has to answer one try.
    pub webhook_timeout_secs: u64,
    /// Deliveries in flight at once across all recipients.
    pub max_in_flight: usize,
    /// Webhook hosts refused (loopback is allowed unless listed here).
    pub webhook_deny_hosts: Vec<String>,
    /// Multiplies every retry wait (1.0: the fourth try within two minutes); tests shrink it.
    pub retry_scale: f64,
    /// Calendar days before a deadline that its reminder goes out.
    pub reminder_days_before: u32,
    /// How often deadlines and unacknowledged notices are looked at.
    pub schedule_check_millis: u64,
    /// An unacknowledged handover notice is sent again once after this long…
    pub receipt_resend_after_secs: u64,
    /// …and raised to the city's package units this long after the re-send.
    pub receipt_raise_after_secs: u64,
    /// A notice held by quiet hours is looked at again at least this often.
    pub quiet_recheck_secs: u64,
    /// Where recipients reach this service: receipt links in notices start with it. Empty:
    /// `http://{listen}`.
    pub public_base_url: String,
    /// The one origin people use (the workbench): sign-in links in invitations start with it.
    pub workbench_url: String,
    /// How long a sign-in link works, and how long a session lasts once signed in.
    pub invitation_ttl_secs: i64,
    pub session_ttl_secs: i64,
    /// Also answer the sign-in link to the admin who invites (a demo without a mail server);
    /// off in a real deployment, where only the person's mailbox sees it.
    pub invitation_links_in_answer: bool,
    pub smtp: SmtpConfig,
    pub sms: SmsConfig,
}

impl NotificationConfig {
    /// How long a claimed delivery stays with its worker: longer than the longest try, so
    /// nobody else takes it while it is in flight, short enough that a crashed worker's
    /// deliveries are soon free again.
    pub fn receipt_base_url(&self) -> String {
        if self.public_base_url.is_empty() { format!("http://{}", self.listen) } else { self.public_base_url.clone() }
    }

    pub fn lease_secs(&self) -> u64 {
        self.webhook_timeout_secs.max(self.smtp.timeout_secs) + 5
    }
}

impl Default for NotificationConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8084".into(),
            max_attempts: 12,
            webhook_timeout_secs: 10,
            max_in_flight: 64,
            webhook_deny_hosts: vec![],
            retry_scale: 1.0,
            reminder_days_before: 3,
            schedule_check_millis: 30_000,
            receipt_resend_after_secs: 24 * 3600,
            receipt_raise_after_secs: 24 * 3600,
            quiet_recheck_secs: 60,
            public_base_url: String::new(),
            workbench_url: "http://127.0.0.1:8080".into(),
            invitation_ttl_secs: 3 * 86_400,
            session_ttl_secs: 12 * 3600,
            invitation_links_in_answer: false,
            smtp: SmtpConfig::default(),
            sms: SmsConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    pub tls: String,
    pub username: String,
    pub password: String,
    pub from: String,
    /// Seconds one SMTP exchange may take.
    pub timeout_secs: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 25,
            tls: "none".into(),
            username: String::new(),
            password: String::new(),
            from: "Skyledger <noreply@skyledger.local>".into(),
            timeout_secs: 20,
        }
    }
}

/// The HTTP SMS gateway urgent notices also go through. Without a URL there is no SMS.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SmsConfig {
    /// The gateway's send endpoint; it takes `POST {"to", "text", "sender", "reference"}`.
    pub url: String,
    /// HTTP Basic credentials, when the gateway wants them.
    pub username: String,
    pub password: String,
    /// The sender name or number the gateway shows.
    pub sender: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub notification: NotificationConfig,
}

impl Config {
    pub fn load() -> anyhow::Result<Self> {
        let (common, notification) = shared::config::load("notification")?;
        Ok(Self { common, notification })
    }
}
