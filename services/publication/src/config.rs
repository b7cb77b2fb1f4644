use std::collections::BTreeMap;

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
    /// Site checks a city needs in the period to be ranked in the league table (the others are
    /// listed unranked), so one small sample cannot top it.
    pub league_min_checks: i64,
    /// Hours after hand-over before a problem is shown (0: at once, the default).
    pub embargo_hours: i64,
    /// Whether the campaign office approves each problem before it is shown.
    pub require_approval: bool,
    /// The Ed25519 key that signs log entries and checkpoints (hex seed), created on first use.
    pub checkpoint_key_file: String,
    /// At most how often a new checkpoint is signed, whenever the log has grown.
    pub checkpoint_interval_millis: u64,
    /// How often the log writer looks for work when nobody wakes it (embargoes ending).
    pub writer_poll_millis: u64,
    /// Problems the log writer takes per transaction.
    pub writer_chunk: i64,
    /// The log's name in its checkpoints; empty: the public base URL without its scheme.
    pub log_origin: String,
    /// Witnesses asked to cosign each checkpoint (`c2sp.org/tlog-witness`), under a label of
    /// the deployment's choosing: `[publication.witnesses.bureau]` with `vkey` and `url`, or
    /// `SKYLEDGER__PUBLICATION__WITNESSES__BUREAU__VKEY` and `…__URL`. None by default.
    pub witnesses: BTreeMap<String, WitnessConfig>,
    /// How often the log looks for checkpoints its witnesses have not cosigned yet.
    pub witness_poll_millis: u64,
}

/// One witness: its verifier key (`name+id+base64(0x04 || key)`, what `skyledger witness
/// --print-vkey` prints) and the URL prefix of its `add-checkpoint`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WitnessConfig {
    pub vkey: String,
    pub url: String,
}

impl Default for PublicationConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8085".into(),
            public_base_url: "http://127.0.0.1:8085".into(),
            feed_size: 50,
            league_min_checks: 30,
            embargo_hours: 0,
            require_approval: false,
            checkpoint_key_file: "var/publication-log.key".into(),
            checkpoint_interval_millis: 5000,
            writer_poll_millis: 200,
            writer_chunk: 500,
            log_origin: String::new(),
            witnesses: BTreeMap::new(),
            witness_poll_millis: 1000,
        }
    }
}

impl PublicationConfig {
    pub fn origin(&self) -> String {
        if !self.log_origin.is_empty() {
            return self.log_origin.clone();
        }
        let base = self.public_base_url.trim_end_matches('/');
        base.split_once("://").map(|(_, rest)| rest).unwrap_or(base).to_string()
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
