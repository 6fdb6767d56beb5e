//! Civil (proleptic Gregorian, UTC) date arithmetic on Unix seconds.
//!
//! The estimation model needs only a handful of calendar facts: the start of
//! the hour, day or month that contains an instant, and the number of days in
//! that month. They are computed here without a date crate so the library
//! stays dependency-free and allocation-free on the hot path.

/// Seconds in one hour.
pub const SECONDS_PER_HOUR: i64 = 3_600;
/// Seconds in one day.
pub const SECONDS_PER_DAY: i64 = 86_400;

/// A calendar date in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CivilDate {
    pub year: i32,
    /// 1..=12
    pub month: u8,
    /// 1..=31
    pub day: u8,
}

/// Days since 1970-01-01 for a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i32, month: u8, day: u8) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date for a count of days since 1970-01-01.
pub fn civil_from_days(days: i64) -> CivilDate {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    CivilDate { year, month, day }
}

/// Whether `year` is a Gregorian leap year.
pub fn is_leap_year(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Number of days in the given month (1..=12) of `year`.
pub fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => panic!("month out of range: {month}"),
    }
}

/// Civil date containing the instant `unix_s`.
pub fn civil_date(unix_s: i64) -> CivilDate {
    civil_from_days(unix_s.div_euclid(SECONDS_PER_DAY))
}

/// Start of the UTC hour containing `unix_s`.
pub fn hour_start(unix_s: i64) -> i64 {
    unix_s - unix_s.rem_euclid(SECONDS_PER_HOUR)
}

/// Start of the UTC day containing `unix_s`.
pub fn day_start(unix_s: i64) -> i64 {
    unix_s - unix_s.rem_euclid(SECONDS_PER_DAY)
}

/// Start of the UTC month containing `unix_s`.
pub fn month_start(unix_s: i64) -> i64 {
    let d = civil_date(unix_s);
    days_from_civil(d.year, d.month, 1) * SECONDS_PER_DAY
}

/// Days in the UTC month containing `unix_s`.
pub fn days_in_month_of(unix_s: i64) -> u8 {
    let d = civil_date(unix_s);
    days_in_month(d.year, d.month)
}

/// Unix seconds for a UTC civil date and time of day.
pub fn unix_seconds(year: i32, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> i64 {
    days_from_civil(year, month, day) * SECONDS_PER_DAY
        + i64::from(hour) * SECONDS_PER_HOUR
        + i64::from(minute) * 60
        + i64::from(second)
}

/// Formats the date of `unix_s` as `YYYY-MM-DD`.
pub fn format_date(unix_s: i64) -> String {
    let d = civil_date(unix_s);
    format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)
}

/// Formats `unix_s` as RFC 3339 `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_rfc3339(unix_s: i64) -> String {
    let d = civil_date(unix_s);
    let secs = unix_s.rem_euclid(SECONDS_PER_DAY);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        d.year,
        d.month,
        d.day,
        secs / 3_600,
        (secs / 60) % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_days() {
        for days in [-800_000i64, -1, 0, 1, 59, 60, 10_957, 19_358, 2_000_000] {
            let d = civil_from_days(days);
            assert_eq!(days_from_civil(d.year, d.month, d.day), days, "{d:?}");
        }
    }

    #[test]
    fn known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(unix_seconds(2023, 10, 15, 13, 0, 0), 1_697_374_800);
        assert_eq!(format_date(1_697_374_800), "2023-10-15");
        assert_eq!(format_rfc3339(1_697_374_800), "2023-10-15T13:00:00Z");
        assert_eq!(month_start(1_697_374_800), unix_seconds(2023, 10, 1, 0, 0, 0));
        assert_eq!(day_start(1_697_374_800), unix_seconds(2023, 10, 15, 0, 0, 0));
        assert_eq!(hour_start(1_697_374_800 + 1_799), 1_697_374_800);
    }

    #[test]
    fn month_lengths() {
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2023, 2), 28);
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(2023, 10), 31);
        assert_eq!(days_in_month_of(unix_seconds(2023, 4, 30, 23, 59, 59)), 30);
    }
}
