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
    /// When set (`"17:30"`, Asia/Shanghai), sheets are issued once a day at this time instead of
    /// after the gathering window.
    pub daily_cutoff: Option<String>,
    /// Most problems on one sheet; a full sheet is issued at once.
    pub max_sheet_problems: i64,
    pub deadlines: DeadlinePolicy,
}

/// Days to rectify, by category and severity.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DeadlinePolicy {
    /// Days per category (`dust`) or category and severity (`dust_serious`); `default` for
    /// the rest. The most specific key wins.
    pub days: BTreeMap<String, i64>,
    /// Categories whose days are working days (Monday to Friday) rather than calendar days.
    pub working_day_categories: Vec<String>,
}

impl Default for DeadlinePolicy {
    fn default() -> Self {
        let days = [
            ("default", 30),
            ("emergency_plan", 5),
            ("open_burning", 3),
            ("dust", 10),
            ("dust_serious", 5),
            ("online_monitoring", 15),
            ("exceedance_serious", 15),
            ("coal_to_gas", 90),
            ("small_thermal_power", 180),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Self { days, working_day_categories: vec!["emergency_plan".into()] }
    }
}

impl Default for AssignmentConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8082".into(),
            gathering_window_millis: 10_000,
            daily_cutoff: None,
            max_sheet_problems: 500,
            deadlines: DeadlinePolicy::default(),
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
        let (common, assignment): (CommonConfig, AssignmentConfig) = shared::config::load("assignment")?;
        if let Some(cutoff) = &assignment.daily_cutoff {
            crate::domain::parse_cutoff(cutoff)?;
        }
        Ok(Self { common, assignment })
    }
}
