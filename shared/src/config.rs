//! Layered configuration: built-in defaults, then an optional TOML file (`skyledger.toml`, or the
//! path in `SKYLEDGER_CONFIG`), then environment variables `SKYLEDGER__SECTION__KEY`.
//!
//! Settings every service shares sit at the top level; a service's own settings sit in a section
//! named after it (`[intake]`, `SKYLEDGER__INTAKE__LISTEN=...`).

use serde::{Deserialize, Serialize, de::DeserializeOwned};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CommonConfig {
    /// Prefix of every subject, stream and consumer, so several deployments (or tests) share one
    /// NATS server without crosstalk.
    pub namespace: String,
    pub database_url: String,
    pub database_max_connections: u32,
    pub nats_url: String,
    /// The service's own NATS user, where the server has users (`skyledger nats-config`);
    /// empty for a server without them.
    pub nats_user: String,
    pub nats_password: String,
    /// JetStream replicas of each stream: 1 on one machine, 3 on a NATS cluster.
    pub stream_replicas: usize,
    pub auth: AuthConfig,
    pub consumer: ConsumerConfig,
    pub outbox: OutboxConfig,
    pub clock: ClockConfig,
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// Longest time a request may take before it is answered 503.
    pub request_timeout_secs: u64,
    /// The bounded queue in front of a service's API routes.
    pub overload: OverloadConfig,
}

impl Default for CommonConfig {
    fn default() -> Self {
        Self {
            namespace: "skyledger".into(),
            database_url: "postgres://postgres@127.0.0.1:5432/skyledger".into(),
            database_max_connections: 10,
            nats_url: "nats://127.0.0.1:4222".into(),
            nats_user: String::new(),
            nats_password: String::new(),
            stream_replicas: 1,
            auth: AuthConfig::default(),
            consumer: ConsumerConfig::default(),
            outbox: OutboxConfig::default(),
            clock: ClockConfig::default(),
            max_body_bytes: 4 * 1024 * 1024,
            request_timeout_secs: 30,
            overload: OverloadConfig::default(),
        }
    }
}

/// How many requests a service's API takes at once before it answers 503 with `Retry-After`
/// (`[overload]`, `SKYLEDGER__OVERLOAD__MAX_IN_FLIGHT=…`). Health, readiness and metrics are
/// outside the limit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OverloadConfig {
    /// Requests handled at once; 0 turns the limit off.
    pub max_in_flight: usize,
    /// Requests that may wait for a place; more are refused at once.
    pub max_waiting: usize,
    /// How long a request waits for a place before it is refused.
    pub max_wait_millis: u64,
    /// `Retry-After` of a refusal, in seconds.
    pub retry_after_secs: u64,
}

impl Default for OverloadConfig {
    fn default() -> Self {
        Self { max_in_flight: 32, max_waiting: 128, max_wait_millis: 2_000, retry_after_secs: 1 }
    }
}

impl OverloadConfig {
    pub fn limit(&self) -> crate::http::AdmissionLimit {
        crate::http::AdmissionLimit {
            max_in_flight: self.max_in_flight,
            max_waiting: self.max_waiting,
            max_wait: std::time::Duration::from_millis(self.max_wait_millis),
            retry_after_secs: self.retry_after_secs,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// The Ed25519 public key (64 hex digits) that checks tokens. When empty, it is derived from
    /// the signing key file, which is created on first use: that is what a one-machine
    /// deployment does.
    pub public_key: String,
    /// Where the deployment's Ed25519 signing key (the 32-byte seed, hex) lives.
    pub signing_key_file: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { public_key: String::new(), signing_key_file: "var/signing.key".into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerConfig {
    /// Deliveries of one message before it is dead-lettered.
    pub max_deliver: i64,
    /// Messages handled in one transaction.
    pub batch_size: usize,
    pub ack_wait_secs: u64,
    /// Inbox rows are kept at least this long, and never while the stream can still deliver
    /// their event to this service again (see `inbox::prune`).
    pub inbox_retention_hours: u64,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self { max_deliver: 5, batch_size: 1000, ack_wait_secs: 30, inbox_retention_hours: 24 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OutboxConfig {
    /// How often the relay looks for unsent events when nothing woke it.
    pub poll_millis: u64,
    /// Sent rows are kept this long so they can be replayed after a broker crash.
    pub retention_hours: u64,
    /// After the NATS connection comes back, the events sent in this many seconds before are
    /// sent again: JetStream acknowledges before it syncs to disk (every 2 minutes by default),
    /// so a broker that crashed may have lost them. The stream's duplicate window drops the
    /// copies it still has; consumers' inboxes drop any other. 0 turns it off.
    pub resend_after_reconnect_secs: u64,
    /// Relays in each instance. Relays (of this instance and of others) take the oldest unsent
    /// events in turn, never side by side, so a producer's events reach the stream in the order
    /// they were written; more than one only stands by.
    pub relays: usize,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self { poll_millis: 100, retention_hours: 24 * 7, resend_after_reconnect_secs: 300, relays: 1 }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ClockConfig {
    /// Drive deadlines from a simulated clock that an admin moves forward (drills, demos, tests).
    pub simulated: bool,
}

/// Loads the shared settings and the section `service` of the layered configuration.
///
/// The defaults are the lowest layer, key by key, so setting one key of a nested table (one
/// threshold of one step of the escalation ladder, say) leaves its siblings at their defaults.
pub fn load<S>(service: &str) -> anyhow::Result<(CommonConfig, S)>
where
    S: Serialize + DeserializeOwned + Default,
{
    let file = std::env::var("SKYLEDGER_CONFIG").unwrap_or_else(|_| "skyledger.toml".into());
    let section_defaults = std::collections::BTreeMap::from([(service.to_string(), S::default())]);
    let layered = ::config::Config::builder()
        .add_source(::config::Config::try_from(&CommonConfig::default())?)
        .add_source(::config::Config::try_from(&section_defaults)?)
        .add_source(::config::File::with_name(&file).required(false))
        .add_source(
            ::config::Environment::with_prefix("SKYLEDGER").prefix_separator("__").separator("__").try_parsing(true),
        )
        .build()?;
    let common: CommonConfig = layered.clone().try_deserialize()?;
    let section = match layered.get::<S>(service) {
        Ok(section) => section,
        Err(::config::ConfigError::NotFound(_)) => S::default(),
        Err(e) => return Err(e.into()),
    };
    Ok((common, section))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize, Serialize)]
    #[serde(default)]
    struct Section {
        listen: String,
        window_secs: u64,
        nested: Nested,
    }

    #[derive(Debug, Deserialize, Serialize)]
    #[serde(default)]
    struct Nested {
        a: i64,
        b: i64,
    }

    impl Default for Nested {
        fn default() -> Self {
            Self { a: 1, b: 2 }
        }
    }

    #[test]
    fn environment_overrides_defaults_and_sections_default_when_absent() {
        // One test touches the environment, so there is no race between tests.
        unsafe {
            std::env::set_var("SKYLEDGER__NAMESPACE", "drill");
            std::env::set_var("SKYLEDGER__CONSUMER__MAX_DELIVER", "7");
            std::env::set_var("SKYLEDGER__DEMO__WINDOW_SECS", "3");
            std::env::set_var("SKYLEDGER__DEMO__NESTED__B", "5");
        }
        let (common, section) = load::<Section>("demo").unwrap();
        assert_eq!(common.namespace, "drill");
        assert_eq!(common.consumer.max_deliver, 7);
        assert_eq!(common.consumer.batch_size, 1000);
        assert_eq!(section.window_secs, 3);
        assert_eq!(section.listen, "");
        assert_eq!((section.nested.a, section.nested.b), (1, 5), "one nested key set, its sibling kept");
        let (_, absent) = load::<Section>("absent").unwrap();
        assert_eq!(absent.window_secs, 0);
    }
}
