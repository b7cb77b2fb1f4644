use serde::{Deserialize, Serialize};
use shared::config::CommonConfig;

/// The `[publication]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PublicationConfig {
    pub listen: String,
    /// The address the public reaches this service at, for links in feeds.
    pub public_base_url: String,
    /// Entries per feed page.
    pub feed_size: i64,
}

impl Default for PublicationConfig {
    fn default() -> Self {
        Self { listen: "127.0.0.1:8085".into(), public_base_url: "http://127.0.0.1:8085".into(), feed_size: 50 }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub publication: PublicationConfig,
}

impl Config {
    pub fn load() -> anyhow::Result<Self> {
        let (common, publication) = shared::config::load("publication")?;
        Ok(Self { common, publication })
    }
}
