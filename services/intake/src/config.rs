use serde::{Deserialize, Serialize};
use shared::config::CommonConfig;

/// The `[intake]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct IntakeConfig {
    pub listen: String,
    /// Most items one batch may carry.
    pub max_batch_items: usize,
    /// The address clients reach intake at, for the links it hands out (evidence URLs, the
    /// Open311 discovery document); empty: taken from each request's `Host`.
    pub public_base_url: String,
    pub open311: crate::open311::Open311Config,
    pub evidence: crate::evidence::EvidenceConfig,
    pub retention: RetentionConfig,
}

/// How long personal details are kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RetentionConfig {
    /// Days a complainant's contact details are kept with a lead; then they are erased.
    pub complainant_days: i64,
    /// How often the erasure runs (it is idempotent).
    pub check_interval_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self { complainant_days: 180, check_interval_secs: 3600 }
    }
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8081".into(),
            max_batch_items: 1000,
            public_base_url: String::new(),
            open311: Default::default(),
            evidence: Default::default(),
            retention: Default::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub intake: IntakeConfig,
}

impl Config {
    pub fn load() -> anyhow::Result<Self> {
        let (common, intake) = shared::config::load("intake")?;
        Ok(Self { common, intake })
    }
}
