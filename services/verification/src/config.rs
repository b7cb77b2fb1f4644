use serde::{Deserialize, Serialize};
use shared::config::CommonConfig;

/// The `[verification]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct VerificationConfig {
    pub listen: String,
    /// How often deadlines and the escalation ladder are checked.
    pub check_interval_millis: u64,
    pub escalation: EscalationLadder,
    /// After every this many rounds, closed problems of the rounds so far are re-checked.
    pub recheck_every_rounds: i64,
    /// The share of closed problems a re-check sweep visits again, in percent.
    pub recheck_sample_percent: i64,
}

/// The counts at which a city reaches each step of the ladder; a step is reached when any of
/// its counts is reached (0 leaves that count out).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct EscalationLadder {
    pub reminder: Thresholds,
    pub listed_supervision: Thresholds,
    pub summons: Thresholds,
    pub special_inspection: Thresholds,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Thresholds {
    /// Problems overdue now.
    pub overdue: i64,
    /// Failed verifications (not rectified, fake rectification).
    pub reopened: i64,
    /// Rebounds: problems back after closure, reported anew or found on a re-check.
    pub rebounds: i64,
}

impl Default for EscalationLadder {
    fn default() -> Self {
        let t = |overdue, reopened, rebounds| Thresholds { overdue, reopened, rebounds };
        Self {
            reminder: t(1, 1, 1),
            listed_supervision: t(3, 3, 2),
            summons: t(5, 5, 3),
            special_inspection: t(10, 8, 5),
        }
    }
}

impl Default for VerificationConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8083".into(),
            check_interval_millis: 1000,
            escalation: EscalationLadder::default(),
            recheck_every_rounds: 2,
            recheck_sample_percent: 100,
        }
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
