use serde::{Deserialize, Serialize};
use shared::config::CommonConfig;

/// The `[verification]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct VerificationConfig {
    pub listen: String,
    /// Days a reopened problem gets for its next rectification (shorter than the first).
    pub reopened_deadline_days: i64,
}

impl Default for VerificationConfig {
    fn default() -> Self {
        Self { listen: "127.0.0.1:8083".into(), reopened_deadline_days: 7 }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub verification: VerificationConfig,
}

impl Config {
    pub fn load() -> anyhow::Result<Self> {
        let (common, verification) = shared::config::load("verification")?;
        Ok(Self { common, verification })
    }
}
