//! Byte-level parsers for the two value kinds on the hot path: timestamps and
//! decimal numbers. They allocate nothing and report failure as `None`; the
//! caller turns that into a [`crate::BadRow`] naming the column.

use canopy_emissions::time::{days_in_month, unix_seconds};

/// Parses a CUR timestamp into Unix seconds (UTC).
///
/// Accepted shapes (fixed positions, so no scanning):
/// `2023-10-01T00:00:00Z` (legacy CUR), `2023-10-01 00:00:00.000` (Athena and
/// CUR 2.0 CSV), `2023-10-01T00:00:00.000Z`, and the same with a numeric
/// offset such as `+02:00`. A missing zone means UTC, as in AWS's exports.
/// Fractions of a second are checked for digits and then dropped: CUR usage
/// periods start on whole hours.
pub fn parse_timestamp(text: &[u8]) -> Option<i64> {
    if text.len() < 19
        || text[4] != b'-'
        || text[7] != b'-'
        || !(text[10] == b'T' || text[10] == b' ')
        || text[13] != b':'
        || text[16] != b':'
    {
        return None;
    }
    let year = digits(&text[0..4])? as i32;
    let month = digits(&text[5..7])? as u8;
    let day = digits(&text[8..10])? as u8;
    let hour = digits(&text[11..13])? as u8;
    let minute = digits(&text[14..16])? as u8;
    let second = digits(&text[17..19])? as u8;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    if let Some((&b'.', fraction)) = rest.split_first() {
        let len = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if len == 0 {
            return None;
        }
        rest = &fraction[len..];
    }
    let offset_s = match rest {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2])?;
            let minutes = digits(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let magnitude = i64::from(hours * 3_600 + minutes * 60);
            if *sign == b'+' { magnitude } else { -magnitude }
        }
        _ => return None,
    };
    Some(unix_seconds(year, month, day, hour, minute, second) - offset_s)
}

fn digits(bytes: &[u8]) -> Option<u32> {
    let mut value = 0u32;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(b - b'0');
    }
    Some(value)
}

/// Parses a finite decimal number (`12`, `-0.5`, `1.2E-7`). `None` for empty
/// text, non-numbers and `inf`/`NaN`, which no CUR column legitimately holds.
pub fn parse_number(text: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(text).ok()?;
    let value: f64 = text.parse().ok()?;
    value.is_finite().then_some(value)
}

/// Shows at most 40 characters of a rejected cell, quoted, for error messages.
pub(crate) fn quoted_excerpt(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    let mut shown: String = text.chars().take(40).collect();
    if shown.len() < text.len() {
        shown.push_str("...");
    }
    format!("{shown:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_ts(text: &str, expected: Option<i64>) {
        assert_eq!(parse_timestamp(text.as_bytes()), expected, "{text}");
    }

    #[test]
    fn timestamps_in_every_cur_shape() {
        // 2023-10-01T00:00:00Z = 19_631 days * 86_400 s = 1_696_118_400.
        let oct1 = Some(1_696_118_400);
        check_ts("2023-10-01T00:00:00Z", oct1);
        check_ts("2023-10-01 00:00:00.000", oct1);
        check_ts("2023-10-01T00:00:00.000Z", oct1);
        check_ts("2023-10-01 00:00:00", oct1);
        check_ts("2023-10-01T02:00:00+02:00", oct1);
        // 13:45:10 adds 13*3600 + 45*60 + 10 = 49_510 s.
        check_ts("2023-10-01T13:45:10Z", Some(1_696_118_400 + 49_510));
        check_ts("2024-02-29T00:00:00Z", Some(1_709_164_800));
    }

    #[test]
    fn timestamps_rejected() {
        for bad in [
            "",
            "2023-10-01",
            "2023-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2023-10-01T24:00:00Z",
            "2023/10/01T00:00:00Z",
            "2023-10-01T00:00:00.Z",
            "2023-10-01T00:00:00ZZ",
            "abcd-10-01T00:00:00Z",
            "2023-10-01T00:00:00+2:00",
        ] {
            check_ts(bad, None);
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number(b"12"), Some(12.0));
        assert_eq!(parse_number(b"-0.5"), Some(-0.5));
        assert_eq!(parse_number(b"1.2E-7"), Some(1.2e-7));
        assert_eq!(parse_number(b"0.0000001234"), Some(0.000_000_123_4));
        assert_eq!(parse_number(b""), None);
        assert_eq!(parse_number(b"abc"), None);
        assert_eq!(parse_number(b"NaN"), None);
        assert_eq!(parse_number(b"inf"), None);
        assert_eq!(parse_number(b"1,5"), None);
    }

    #[test]
    fn excerpt_is_bounded() {
        assert_eq!(quoted_excerpt(b"abc"), "\"abc\"");
        let long = "x".repeat(100);
        assert_eq!(
            quoted_excerpt(long.as_bytes()),
            format!("\"{}...\"", "x".repeat(40))
        );
    }
}
