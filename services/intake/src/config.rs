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
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8081".into(),
            max_batch_items: 1000,
            public_base_url: String::new(),
            open311: Default::default(),
            evidence: Default::default(),
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
