use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use shared::config::CommonConfig;

/// The `[assignment]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AssignmentConfig {
    pub listen: String,
    /// How long a city's new problems gather before their handover sheet is issued.
    pub gathering_window_millis: u64,
    /// Most problems on one sheet; a full sheet is issued at once.
    pub max_sheet_problems: i64,
    /// Calendar days to rectify, per category; `default` for categories not listed.
    pub deadline_days: BTreeMap<String, i64>,
}

impl Default for AssignmentConfig {
    fn default() -> Self {
        let deadline_days = [
            ("default", 30),
            ("emergency_plan", 7),
            ("open_burning", 3),
            ("dust", 10),
            ("online_monitoring", 15),
            ("coal_to_gas", 90),
            ("small_thermal_power", 180),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Self {
            listen: "127.0.0.1:8082".into(),
            gathering_window_millis: 10_000,
            max_sheet_problems: 500,
            deadline_days,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub assignment: AssignmentConfig,
}

impl Config {
    pub fn load() -> anyhow::Result<Self> {
        let (common, assignment) = shared::config::load("assignment")?;
        Ok(Self { common, assignment })
    }
}
