//! Publication's rules, free of I/O: what a problem's public status is, what its public
//! history says, and how cities are ranked. When a problem is public at all, and what of it,
//! is the disclosure policy's (`redaction.rs`).

use shared::reference;

/// The public status from the facts known, whatever order they arrived in: verification's
/// latest word, else how far assignment has taken the problem.
pub fn public_status(verification_status: Option<&str>, acknowledged: bool, handed_over: bool) -> String {
    match verification_status {
        Some(s) => s.to_string(),
        None if acknowledged => "acknowledged".into(),
        None if handed_over => "assigned".into(),
        None => "reported".into(),
    }
}

fn category_zh(category: &str) -> String {
    reference::category(category).map(|c| c.name_zh.clone()).unwrap_or_else(|| category.to_string())
}

/// What the public history says for each step. Never names teams, inspectors or verifiers.
pub fn said_reported(category: &str, site_name: &str) -> String {
    format!("发现问题：{}（{}） / Problem found at {site_name}: {category}", category_zh(category), site_name)
}

pub fn said_assigned(handover_no: &str, jurisdiction: &str, deadline: &str) -> String {
    format!(
        "交办 {jurisdiction}，督办单 {handover_no}，整改期限 {deadline} / Handed over to {jurisdiction} on sheet {handover_no}, deadline {deadline}"
    )
}

pub fn said_acknowledged(handover_no: &str) -> String {
    format!("已签收督办单 {handover_no} / Handover sheet {handover_no} acknowledged")
}

pub fn said_rectification_reported() -> String {
    "报告整改完成 / Rectification reported".into()
}

pub fn said_closed() -> String {
    "现场核查通过，销号 / Verified on site and closed".into()
}

pub fn said_reopened(result: &str, deadline: &str) -> String {
    let why = if result == "fake_rectification" {
        "虚假整改 / fake rectification"
    } else {
        "未整改到位 / not rectified"
    };
    format!("核查未通过（{why}），重新整改，期限 {deadline} / Verification failed, reopened, new deadline {deadline}")
}

pub fn said_rerouted(from: &str, to: &str, deadline: &str) -> String {
    format!("改派：{from} → {to}，整改期限 {deadline} / Rerouted from {from} to {to}, deadline {deadline}")
}

pub fn said_extended(previous: &str, deadline: &str) -> String {
    format!("整改期限延至 {deadline}（原 {previous}） / Deadline extended to {deadline} (was {previous})")
}

pub fn said_progressed(stage: &str, percent: Option<u8>) -> String {
    match percent {
        Some(p) => format!("整改进展：{stage}（{p}%） / Rectification in progress: {stage} ({p}%)"),
        None => format!("整改进展：{stage} / Rectification in progress: {stage}"),
    }
}

pub fn said_overdue(deadline: &str) -> String {
    format!("逾期未完成整改（期限 {deadline}） / Overdue: not rectified by {deadline}")
}

pub fn said_typical_case(narrative: &str) -> String {
    format!("列为典型案例曝光 / Exposed as a typical case: {narrative}")
}

/// Why something left the public record: the code a retraction or takedown carries (in its log
/// entry, its tombstone in the feeds and the problem's page), beside the office's own words.
pub const WITHDRAWAL_REASONS: &[(&str, &str, &str)] = &[
    ("duplicate", "重复公开", "published twice"),
    ("not_a_violation", "经核实不属于问题", "found not to be a violation"),
    ("wrong_party", "责任主体认定有误", "wrong party held responsible"),
    ("data_error", "信息有误", "wrong information"),
    ("personal_data", "含个人信息", "contains personal data"),
    ("legal_order", "依法要求撤下", "withdrawn by legal order"),
];

/// The Chinese and English names of a withdrawal reason code, if it is one.
pub fn withdrawal_reason(code: &str) -> Option<(&'static str, &'static str)> {
    WITHDRAWAL_REASONS.iter().find(|(c, _, _)| *c == code).map(|(_, zh, en)| (*zh, *en))
}

/// A withdrawal code's words, Chinese and English; an unknown code (from before codes) stands
/// for itself.
pub fn withdrawal_words(code: &str) -> (&str, &str) {
    withdrawal_reason(code).unwrap_or((code, code))
}

pub fn withdrawal_codes() -> String {
    WITHDRAWAL_REASONS.iter().map(|(c, _, _)| *c).collect::<Vec<_>>().join(", ")
}

/// The log entry of a retraction names its code twice over: in words, and as `[code]` for
/// machines reading the log without the feeds.
pub fn said_retracted(code: &str, reason: &str) -> String {
    let (zh, en) = withdrawal_words(code);
    format!("撤回公开（{zh}）：{reason} / Retracted [{code}] ({en}): {reason}")
}

pub fn said_corrected(field: &str, from: &str, to: &str, reason: &str) -> String {
    format!("更正 {field}：“{from}” → “{to}”（{reason}） / Corrected {field}: \"{from}\" → \"{to}\" ({reason})")
}

pub fn said_withdrawn(index: i64, code: &str, reason: &str) -> String {
    let (zh, en) = withdrawal_words(code);
    format!(
        "第 {index} 条公开记录的内容撤下（{zh}）：{reason} / The content of public entry {index} was withdrawn [{code}] ({en}): {reason}"
    )
}

/// One city's figures, as the league table needs them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CityFigures {
    pub city_code: String,
    pub site_checks: i64,
    pub problems_found: i64,
    pub handed_over: i64,
    pub closed: i64,
    pub closed_on_time: i64,
    pub overdue: i64,
    pub reopened: i64,
    pub rebounds: i64,
}

/// A row of the league table: figures normalised by inspection effort.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LeagueRow {
    /// None: too few site checks in the period to be ranked fairly.
    pub rank: Option<usize>,
    #[serde(flatten)]
    pub figures: CityFigures,
    /// Problems found per 100 site checks (none without checks).
    pub problems_per_100_checks: Option<f64>,
    /// Share of the problems handed over that were closed by their deadline (none before any).
    pub share_closed_on_time: Option<f64>,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Ranks cities: the larger share closed on time first, then the fewer overdue, then the more
/// problems found per 100 checks (a city is not rewarded for checking little), then by code.
/// Only cities with at least `min_checks` site checks in the period are ranked, so that one
/// small sample cannot top the table; the others follow unranked, by code.
pub fn league(cities: Vec<CityFigures>, min_checks: i64) -> Vec<LeagueRow> {
    let mut rows: Vec<LeagueRow> = cities
        .into_iter()
        .map(|f| LeagueRow {
            rank: None,
            problems_per_100_checks: (f.site_checks > 0)
                .then(|| round2(f.problems_found as f64 * 100.0 / f.site_checks as f64)),
            share_closed_on_time: (f.handed_over > 0).then(|| round2(f.closed_on_time as f64 / f.handed_over as f64)),
            figures: f,
        })
        .collect();
    let ranked = |r: &LeagueRow| r.figures.site_checks >= min_checks;
    rows.sort_by(|a, b| {
        let share = |r: &LeagueRow| r.share_closed_on_time.unwrap_or(-1.0);
        let (a_ranked, b_ranked) = (ranked(a), ranked(b));
        if !a_ranked || !b_ranked {
            return b_ranked.cmp(&a_ranked).then(a.figures.city_code.cmp(&b.figures.city_code));
        }
        share(b)
            .total_cmp(&share(a))
            .then(a.figures.overdue.cmp(&b.figures.overdue))
            .then(b.problems_per_100_checks.unwrap_or(0.0).total_cmp(&a.problems_per_100_checks.unwrap_or(0.0)))
            .then(a.figures.city_code.cmp(&b.figures.city_code))
    });
    for (i, row) in rows.iter_mut().enumerate() {
        row.rank = ranked(row).then_some(i + 1);
    }
    rows
}

/// One clean-up register's figures (overall, or one city's): its items, those still to be dealt
/// with (at zero, the register is cleared), the lagging ones, and the items in each state.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RegisterFigures {
    pub total: i64,
    pub outstanding: i64,
    pub lagging: i64,
    pub by_state: std::collections::BTreeMap<String, i64>,
}

impl RegisterFigures {
    fn add(&mut self, register: &shared::reference::Register, state: &str, n: i64) {
        self.total += n;
        if register.outstanding.contains(&state) {
            self.outstanding += n;
        }
        if state == "lagging" {
            self.lagging += n;
        }
        *self.by_state.entry(state.to_string()).or_default() += n;
    }
}

/// Each register's figures overall and per city, from (register, city, state, items) counts;
/// every register appears, an empty one with zeros.
pub fn register_figures(
    counts: &[(String, String, String, i64)],
) -> std::collections::BTreeMap<&'static str, (RegisterFigures, std::collections::BTreeMap<String, RegisterFigures>)> {
    let mut figures: std::collections::BTreeMap<_, _> =
        shared::reference::REGISTERS.iter().map(|r| (r.code, Default::default())).collect();
    for (code, city, state, n) in counts {
        let Some(register) = shared::reference::register(code) else { continue };
        let (overall, cities): &mut (RegisterFigures, std::collections::BTreeMap<String, RegisterFigures>) =
            figures.get_mut(register.code).expect("every register has a row");
        overall.add(register, state, *n);
        cities.entry(city.clone()).or_default().add(register, state, *n);
    }
    figures
}

/// The campaign's figures in the form of the press conference (DESIGN.md), from the events alone.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CampaignSummary {
    pub rounds: i64,
    /// Teams sent, counted once per round.
    pub teams_deployed: i64,
    /// Each team's members, once per round it was sent.
    pub person_times: i64,
    pub site_checks: i64,
    /// Site checks of enterprises on their city's emergency list while an alert was declared.
    pub emergency_plan_checks: i64,
    pub problems_found: i64,
    pub handed_over: i64,
    pub closed: i64,
    pub closed_on_time: i64,
    pub overdue: i64,
    pub reopened: i64,
    pub rebounds: i64,
    pub rerouted: i64,
    pub extended: i64,
    pub emergency_plan_problems: i64,
    pub scattered_polluting_problems: i64,
    pub coal_boiler_problems: i64,
    pub coal_to_gas_lagging_projects: i64,
    pub escalations: i64,
    pub escalations_by_level: std::collections::BTreeMap<String, i64>,
    pub handed_over_by_category: std::collections::BTreeMap<String, i64>,
    pub median_days_to_close: Option<f64>,
}

impl CampaignSummary {
    /// The figures as the press conference said them, in Chinese and English.
    pub fn text_zh(&self) -> String {
        format!(
            "强化监督共开展 {} 轮，派出 {} 人次，排查点位 {} 个，发现问题 {} 个，交办 {} 个，已整改销号 {} 个；\
             其中重污染天气应急预案问题 {} 个，“散乱污”问题 {} 个，燃煤锅炉问题 {} 个，煤改气工程滞后 {} 个。\
             逾期未完成 {} 个，核查未通过重新整改 {} 个，反弹 {} 个。",
            self.rounds,
            self.person_times,
            self.site_checks,
            self.problems_found,
            self.handed_over,
            self.closed,
            self.emergency_plan_problems,
            self.scattered_polluting_problems,
            self.coal_boiler_problems,
            self.coal_to_gas_lagging_projects,
            self.overdue,
            self.reopened,
            self.rebounds
        )
    }

    pub fn text_en(&self) -> String {
        format!(
            "{} rounds, {} person-times deployed, {} site checks, {} problems found and {} handed over, {} closed; \
             among them {} emergency-plan problems, {} scattered-polluting problems, {} coal-boiler problems and \
             {} lagging coal-to-gas projects. {} went overdue, {} were reopened after failed verification, {} rebounded.",
            self.rounds,
            self.person_times,
            self.site_checks,
            self.problems_found,
            self.handed_over,
            self.closed,
            self.emergency_plan_problems,
            self.scattered_polluting_problems,
            self.coal_boiler_problems,
            self.coal_to_gas_lagging_projects,
            self.overdue,
            self.reopened,
            self.rebounds
        )
    }

    pub fn with_text(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("summary serialises");
        v["text_zh"] = serde_json::Value::String(self.text_zh());
        v["text_en"] = serde_json::Value::String(self.text_en());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_register_is_at_zero_when_no_item_is_outstanding() {
        let row = |r: &str, c: &str, s: &str, n: i64| (r.to_string(), c.to_string(), s.to_string(), n);
        let figures = register_figures(&[
            row("scattered_enterprises", "130500", "shut_down", 3),
            row("scattered_enterprises", "130500", "upgraded", 1),
            row("scattered_enterprises", "130400", "pending", 2),
            row("coal_to_gas_villages", "130400", "lagging", 1),
            row("coal_to_gas_villages", "130400", "supplied", 4),
            row("no_such_register", "130400", "pending", 9),
        ]);
        let (overall, cities) = &figures["scattered_enterprises"];
        assert_eq!((overall.total, overall.outstanding), (6, 2));
        assert_eq!(cities["130500"].outstanding, 0, "Xingtai's register is cleared");
        assert_eq!(cities["130400"].outstanding, 2);
        let (villages, _) = &figures["coal_to_gas_villages"];
        assert_eq!((villages.total, villages.outstanding, villages.lagging), (5, 1, 1));
        assert_eq!(figures["coal_boilers"].0, RegisterFigures::default(), "an empty register is there, at zero");
        assert_eq!(figures.len(), 3);
    }

    #[test]
    fn status_ends_right_whatever_the_arrival_order() {
        assert_eq!(public_status(None, false, false), "reported");
        assert_eq!(public_status(None, false, true), "assigned");
        assert_eq!(public_status(None, true, true), "acknowledged");
        // Closed may arrive before assigned: verification's word stands.
        assert_eq!(public_status(Some("closed"), false, false), "closed");
        assert_eq!(public_status(Some("reopened"), true, true), "reopened");
    }

    #[test]
    fn the_league_normalises_by_effort_and_ranks_closing_on_time_first() {
        let city = |code: &str, checks, found, handed_over, on_time, overdue| CityFigures {
            city_code: code.into(),
            site_checks: checks,
            problems_found: found,
            handed_over,
            closed: on_time,
            closed_on_time: on_time,
            overdue,
            ..Default::default()
        };
        let rows = league(
            vec![
                city("130400", 200, 10, 10, 5, 0),
                city("130500", 50, 10, 10, 9, 1),
                city("140100", 0, 0, 0, 0, 0),
                city("130100", 100, 10, 10, 5, 2),
            ],
            0,
        );
        let order: Vec<&str> = rows.iter().map(|r| r.figures.city_code.as_str()).collect();
        assert_eq!(order, ["130500", "130400", "130100", "140100"]);
        assert_eq!(rows[0].problems_per_100_checks, Some(20.0));
        assert_eq!(rows[0].share_closed_on_time, Some(0.9));
        assert_eq!(rows[1].problems_per_100_checks, Some(5.0));
        assert_eq!((rows[3].problems_per_100_checks, rows[3].share_closed_on_time), (None, None));
        assert_eq!(rows.iter().map(|r| r.rank).collect::<Vec<_>>(), [Some(1), Some(2), Some(3), Some(4)]);
    }

    #[test]
    fn a_small_sample_cannot_top_the_league() {
        let city = |code: &str, checks, handed_over, on_time| CityFigures {
            city_code: code.into(),
            site_checks: checks,
            problems_found: handed_over,
            handed_over,
            closed: on_time,
            closed_on_time: on_time,
            ..Default::default()
        };
        // One check, one problem closed on time: a perfect share, from nothing.
        let rows = league(vec![city("130500", 1, 1, 1), city("130400", 800, 40, 30), city("130100", 500, 20, 10)], 30);
        let order: Vec<(&str, Option<usize>)> = rows.iter().map(|r| (r.figures.city_code.as_str(), r.rank)).collect();
        assert_eq!(order, [("130400", Some(1)), ("130100", Some(2)), ("130500", None)]);
    }

    #[test]
    fn history_never_names_a_team() {
        assert!(!said_reopened("fake_rectification", "2019-06-08").contains("T-"));
        assert!(said_assigned("2019-R01-130500-0509-001", "130502", "2019-06-08").contains("130502"));
        assert!(said_rerouted("130502", "130503", "2019-06-20").contains("130503"));
        assert!(said_progressed("管网铺设", Some(40)).contains("40%"));
    }
}
