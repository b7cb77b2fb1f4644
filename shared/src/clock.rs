//! Time as the campaign counts it: days and deadlines in Asia/Shanghai (UTC+8 all year).

use time::{Date, OffsetDateTime, UtcOffset};

pub const SHANGHAI: UtcOffset = match UtcOffset::from_hms(8, 0, 0) {
    Ok(offset) => offset,
    Err(_) => panic!("UTC+8 is a valid offset"),
};

/// The calendar day in Asia/Shanghai of an instant.
pub fn shanghai_date(at: OffsetDateTime) -> Date {
    at.to_offset(SHANGHAI).date()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn the_day_turns_at_midnight_in_shanghai() {
        assert_eq!(shanghai_date(datetime!(2019-05-08 15:59 UTC)), date!(2019 - 05 - 08));
        assert_eq!(shanghai_date(datetime!(2019-05-08 16:00 UTC)), date!(2019 - 05 - 09));
    }
}
