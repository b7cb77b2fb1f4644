//! Assignment's rules, free of I/O: who is responsible, by when, and how sheets are numbered.

use std::collections::BTreeMap;

use time::{Date, Duration};

/// The government responsible for a problem: its county when known, else its city.
pub fn responsible_jurisdiction(city_code: &str, county_code: Option<&str>) -> String {
    county_code.filter(|c| !c.is_empty()).unwrap_or(city_code).to_string()
}

/// The deadline for a problem handed over on `day` (Asia/Shanghai), from the per-category policy.
pub fn deadline(policy: &BTreeMap<String, i64>, category: &str, day: Date) -> Date {
    let days = policy.get(category).or_else(|| policy.get("default")).copied().unwrap_or(30);
    day + Duration::days(days.max(1))
}

/// A handover sheet's number: round, city, day (MMDD) and the day's sequence,
/// like `2019-R01-130500-0509-001`.
pub fn handover_number(round: &str, city_code: &str, day: Date, seq: i32) -> String {
    format!("{round}-{city_code}-{:02}{:02}-{seq:03}", day.month() as u8, day.day())
}

/// Whether a city's gathering problems make a sheet now: the sheet is full, or the oldest has
/// waited the whole window.
pub fn sheet_is_due(pending: i64, oldest_waited_millis: i64, window_millis: i64, max_problems: i64) -> bool {
    pending >= max_problems || (pending > 0 && oldest_waited_millis >= window_millis)
}

/// The ledger's statuses, in the order a problem moves through them.
pub const STATUSES: &[&str] = &["reported", "assigned", "acknowledged", "rectification_reported", "reopened", "closed"];

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn the_county_is_responsible_when_known() {
        assert_eq!(responsible_jurisdiction("130500", Some("130502")), "130502");
        assert_eq!(responsible_jurisdiction("130500", None), "130500");
        assert_eq!(responsible_jurisdiction("130500", Some("")), "130500");
    }

    #[test]
    fn deadlines_follow_the_category_policy() {
        let policy: BTreeMap<String, i64> = [("default".to_string(), 30), ("emergency_plan".to_string(), 7)].into();
        assert_eq!(deadline(&policy, "emergency_plan", date!(2019 - 05 - 09)), date!(2019 - 05 - 16));
        assert_eq!(deadline(&policy, "dust", date!(2019 - 05 - 09)), date!(2019 - 06 - 08));
    }

    #[test]
    fn sheets_are_numbered_by_round_city_day_and_sequence() {
        assert_eq!(handover_number("2019-R01", "130500", date!(2019 - 05 - 09), 1), "2019-R01-130500-0509-001");
        assert_eq!(handover_number("2019-R01", "130500", date!(2019 - 12 - 31), 12), "2019-R01-130500-1231-012");
    }

    #[test]
    fn a_sheet_is_due_when_full_or_when_the_window_has_passed() {
        assert!(!sheet_is_due(0, 99_999, 10_000, 500));
        assert!(!sheet_is_due(3, 9_999, 10_000, 500));
        assert!(sheet_is_due(3, 10_000, 10_000, 500));
        assert!(sheet_is_due(500, 0, 10_000, 500));
    }
}
