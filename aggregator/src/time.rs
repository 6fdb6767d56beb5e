//! UTC calendar arithmetic on Unix seconds, shared by maintenance and the
//! query planner.

/// Seconds in five minutes.
pub const FIVE_MINUTES_S: i64 = 300;
/// Seconds in an hour.
pub const HOUR_S: i64 = 3_600;
/// Seconds in a day.
pub const DAY_S: i64 = 86_400;

/// Largest multiple of `step_s` that is `<= t_unix_s`.
pub fn floor_to(t_unix_s: i64, step_s: i64) -> i64 {
    t_unix_s.div_euclid(step_s) * step_s
}

/// Smallest multiple of `step_s` that is `>= t_unix_s`.
pub fn ceil_to(t_unix_s: i64, step_s: i64) -> i64 {
    let f = floor_to(t_unix_s, step_s);
    if f == t_unix_s { f } else { f + step_s }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's civil-from-days algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Start of the UTC month containing `t_unix_s`, shifted by `delta_months`.
pub fn month_start_shifted(t_unix_s: i64, delta_months: i64) -> i64 {
    let (y, m, _) = civil_from_days(t_unix_s.div_euclid(DAY_S));
    let index = y * 12 + i64::from(m) - 1 + delta_months;
    let (ny, nm) = (index.div_euclid(12), (index.rem_euclid(12) + 1) as u32);
    days_from_civil(ny, nm, 1) * DAY_S
}

/// `YYYYMMDD` of the UTC day containing `t_unix_s`.
pub fn yyyymmdd(t_unix_s: i64) -> String {
    let (y, m, d) = civil_from_days(t_unix_s.div_euclid(DAY_S));
    format!("{y:04}{m:02}{d:02}")
}

/// Parses `YYYYMMDD` into the Unix second of that UTC midnight.
pub fn parse_yyyymmdd(text: &str) -> Option<i64> {
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i64 = text[0..4].parse().ok()?;
    let m: u32 = text[4..6].parse().ok()?;
    let d: u32 = text[6..8].parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, m, d) * DAY_S)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_and_ceils() {
        assert_eq!(floor_to(3_599, HOUR_S), 0);
        assert_eq!(ceil_to(3_599, HOUR_S), 3_600);
        assert_eq!(ceil_to(3_600, HOUR_S), 3_600);
        assert_eq!(floor_to(-1, FIVE_MINUTES_S), -300);
    }

    #[test]
    fn months_shift_across_years() {
        // 2026-11-28T20:00Z = 1_795_896_000; start of Nov 2026 = 20_758 days.
        let t = 1_795_896_000;
        assert_eq!(month_start_shifted(t, 0), 20_758 * DAY_S);
        assert_eq!(yyyymmdd(month_start_shifted(t, 0)), "20261101");
        assert_eq!(yyyymmdd(month_start_shifted(t, 2)), "20270101");
        assert_eq!(yyyymmdd(month_start_shifted(t, -13)), "20251001");
        assert_eq!(parse_yyyymmdd("20270101"), Some(month_start_shifted(t, 2)));
        assert_eq!(parse_yyyymmdd("2027010"), None);
    }
}
