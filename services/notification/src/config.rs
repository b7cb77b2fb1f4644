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
    pub smtp: SmtpConfig,
}

impl Default for NotificationConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8084".into(),
            max_attempts: 12,
            webhook_timeout_secs: 10,
            max_in_flight: 64,
            webhook_deny_hosts: vec![],
            smtp: SmtpConfig::default(),
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
        }
    }
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
