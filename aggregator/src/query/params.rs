//! Parsing and validating query parameters (`key=value` pairs, list values
//! comma-separated). Every error names the offending parameter.

use std::collections::BTreeMap;

use super::{Dimension, Filters, Page, SeriesRequest, Step, TopResourcesRequest, TotalsRequest};
use crate::time::{DAY_S, FIVE_MINUTES_S, HOUR_S, days_from_civil, floor_to};

/// A rejected parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter {parameter}: {message}")]
pub struct ParamError {
    /// Name of the parameter.
    pub parameter: String,
    /// What was expected and what was found.
    pub message: String,
}

fn err(parameter: &str, message: impl Into<String>) -> ParamError {
    ParamError { parameter: parameter.to_owned(), message: message.into() }
}

/// Most values accepted in one filter or grouping list.
pub const MAX_LIST_VALUES: usize = 1_000;
/// Largest page.
pub const MAX_LIMIT: u32 = 10_000;
/// Largest N for top resources.
pub const MAX_TOP_N: u32 = 1_000;
/// Most buckets one series request may span.
pub const MAX_SERIES_BUCKETS: i64 = 10_000;
/// Latest accepted instant (2100-01-01T00:00:00Z).
pub const MAX_INSTANT_UNIX_S: i64 = 4_102_444_800;

/// Parameters of one request, checked against the names it accepts.
struct Params<'a> {
    map: BTreeMap<&'a str, &'a str>,
}

const FILTER_NAMES: [&str; 7] = ["account", "ou", "region", "service", "resource_type", "team", "quality"];

impl<'a> Params<'a> {
    fn new(pairs: &'a [(String, String)], allowed: &[&str]) -> Result<Self, ParamError> {
        let mut map = BTreeMap::new();
        for (key, value) in pairs {
            if !allowed.contains(&key.as_str()) {
                return Err(err(key, format!("unknown parameter; expected one of {}", allowed.join(", "))));
            }
            if map.insert(key.as_str(), value.as_str()).is_some() {
                return Err(err(key, "given more than once; list values are comma-separated"));
            }
        }
        Ok(Params { map })
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        self.map.get(name).copied()
    }

    fn instant(&self, name: &str) -> Result<i64, ParamError> {
        let text = self.get(name).ok_or_else(|| err(name, "required"))?;
        parse_instant(text).map_err(|m| err(name, m))
    }

    fn range(&self) -> Result<(i64, i64), ParamError> {
        let from = self.instant("from")?;
        let to = self.instant("to")?;
        if to <= from {
            return Err(err("to", format!("expected an instant after from ({from}), found {to}")));
        }
        Ok((from, to))
    }

    fn group_by(&self) -> Result<Vec<Dimension>, ParamError> {
        let mut dims = Vec::new();
        for item in list(self.get("group_by"), "group_by")? {
            let dim = Dimension::parse(&item).ok_or_else(|| {
                err("group_by", format!("expected dimensions among {}, found {item:?}", FILTER_NAMES.join(", ")))
            })?;
            if dims.contains(&dim) {
                return Err(err("group_by", format!("dimension {item:?} given twice")));
            }
            dims.push(dim);
        }
        Ok(dims)
    }

    fn filters(&self) -> Result<Filters, ParamError> {
        let mut filters = Filters::default();
        for dim in Dimension::ALL {
            let values = list(self.get(dim.name()), dim.name())?;
            for value in &values {
                check_filter_value(dim, value)?;
            }
            *filters.values_mut(dim) = values;
        }
        Ok(filters)
    }

    fn page(&self, max_limit: u32) -> Result<Page, ParamError> {
        let mut page = Page::default();
        if let Some(text) = self.get("limit") {
            page.limit = text
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=max_limit).contains(n))
                .ok_or_else(|| err("limit", format!("expected an integer from 1 to {max_limit}, found {text:?}")))?;
        }
        if let Some(text) = self.get("offset") {
            page.offset = text
                .parse::<u64>()
                .ok()
                .filter(|n| *n <= i64::MAX as u64)
                .ok_or_else(|| err("offset", format!("expected a non-negative integer, found {text:?}")))?;
        }
        Ok(page)
    }
}

fn list(value: Option<&str>, name: &str) -> Result<Vec<String>, ParamError> {
    let Some(value) = value else { return Ok(Vec::new()) };
    let items: Vec<String> = value.split(',').map(|s| s.trim().to_owned()).collect();
    if items.iter().any(|s| s.is_empty()) {
        return Err(err(name, format!("expected comma-separated non-empty values, found {value:?}")));
    }
    if items.len() > MAX_LIST_VALUES {
        return Err(err(name, format!("expected at most {MAX_LIST_VALUES} values, found {}", items.len())));
    }
    Ok(items)
}

fn check_filter_value(dim: Dimension, value: &str) -> Result<(), ParamError> {
    let name = dim.name();
    if value.len() > 256 || value.chars().any(char::is_control) {
        return Err(err(name, format!("expected printable values of at most 256 bytes, found {value:?}")));
    }
    match dim {
        Dimension::Account if !crate::ingest::is_account_id(value) => {
            Err(err(name, format!("expected 12-digit account ids, found {value:?}")))
        }
        Dimension::Quality if crate::model::Quality::parse(value).is_none() => {
            Err(err(name, format!("expected measured, estimated or default, found {value:?}")))
        }
        _ => Ok(()),
    }
}

/// Parses Unix seconds, `YYYY-MM-DD` (UTC midnight) or
/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn parse_instant(text: &str) -> Result<i64, String> {
    let expected = "expected Unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ";
    let t = if text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty() {
        text.parse::<i64>().map_err(|_| format!("{expected}, found {text:?}"))?
    } else {
        parse_civil(text).ok_or_else(|| format!("{expected}, found {text:?}"))?
    };
    if !(0..=MAX_INSTANT_UNIX_S).contains(&t) {
        return Err(format!("expected an instant between 1970 and 2100, found {text:?}"));
    }
    Ok(t)
}

fn parse_civil(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        if s.bytes().all(|c| c.is_ascii_digit()) { s.parse().ok() } else { None }
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let day = days_from_civil(y, m as u32, d as u32);
    if crate::time::civil_from_days(day) != (y, m as u32, d as u32) {
        return None;
    }
    let mut t = day * DAY_S;
    if b.len() == 10 {
        return Some(t);
    }
    if b.len() != 20 || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z' {
        return None;
    }
    let (hh, mm, ss) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    t += hh * HOUR_S + mm * 60 + ss;
    Some(t)
}

const RANGE_NAMES: [&str; 10] = ["from", "to", "group_by", "limit", "offset", "account", "ou", "region", "service", "resource_type"];
const MORE_NAMES: [&str; 2] = ["team", "quality"];

fn names(extra: &[&'static str]) -> Vec<&'static str> {
    RANGE_NAMES.iter().chain(MORE_NAMES.iter()).chain(extra.iter()).copied().collect()
}

/// Parses a totals request.
pub fn parse_totals(pairs: &[(String, String)]) -> Result<TotalsRequest, ParamError> {
    let p = Params::new(pairs, &names(&[]))?;
    let (from_unix_s, to_unix_s) = p.range()?;
    Ok(TotalsRequest { from_unix_s, to_unix_s, group_by: p.group_by()?, filters: p.filters()?, page: p.page(MAX_LIMIT)? })
}

fn parse_step(text: Option<&str>) -> Result<Step, ParamError> {
    match text {
        None => Err(err("step", "required; expected 5m, 1h or 1d")),
        Some("5m") => Ok(Step::FiveMinutes),
        Some("1h") => Ok(Step::Hour),
        Some("1d") => Ok(Step::Day),
        Some(other) => Err(err("step", format!("expected 5m, 1h or 1d, found {other:?}"))),
    }
}

/// Parses a series request; `from` and `to` must be multiples of the step.
pub fn parse_series(pairs: &[(String, String)]) -> Result<SeriesRequest, ParamError> {
    let p = Params::new(pairs, &names(&["step"]))?;
    let step = parse_step(p.get("step"))?;
    let (from_unix_s, to_unix_s) = p.range()?;
    let s = step.seconds();
    for (name, t) in [("from", from_unix_s), ("to", to_unix_s)] {
        if t % s != 0 {
            return Err(err(name, format!("expected a multiple of the {} step, found {t}", step.name())));
        }
    }
    let buckets = (to_unix_s - from_unix_s) / s;
    if buckets > MAX_SERIES_BUCKETS {
        return Err(err("step", format!("expected at most {MAX_SERIES_BUCKETS} buckets in the range, found {buckets}")));
    }
    Ok(SeriesRequest {
        from_unix_s,
        to_unix_s,
        step,
        group_by: p.group_by()?,
        filters: p.filters()?,
        page: p.page(MAX_LIMIT)?,
    })
}

/// Parses a "real-time" request: the last hour at 5-minute resolution, i.e.
/// the twelve 5-minute buckets ending with the one containing `now` (taken
/// from the `now` parameter when given, else `now_unix_s`).
pub fn parse_realtime(pairs: &[(String, String)], now_unix_s: i64) -> Result<SeriesRequest, ParamError> {
    let p = Params::new(pairs, &names(&["now"]))?;
    if p.get("from").is_some() || p.get("to").is_some() {
        let name = if p.get("from").is_some() { "from" } else { "to" };
        return Err(err(name, "not accepted here; the range is the last hour"));
    }
    let now = match p.get("now") {
        Some(text) => parse_instant(text).map_err(|m| err("now", m))?,
        None => now_unix_s,
    };
    let to_unix_s = floor_to(now, FIVE_MINUTES_S) + FIVE_MINUTES_S;
    Ok(SeriesRequest {
        from_unix_s: to_unix_s - HOUR_S,
        to_unix_s,
        step: Step::FiveMinutes,
        group_by: p.group_by()?,
        filters: p.filters()?,
        page: p.page(MAX_LIMIT)?,
    })
}

/// Parses a top-resources request (`limit` is N, at most 1 000).
pub fn parse_top_resources(pairs: &[(String, String)]) -> Result<TopResourcesRequest, ParamError> {
    let allowed: Vec<&str> = names(&[]).into_iter().filter(|n| *n != "group_by").collect();
    let p = Params::new(pairs, &allowed)?;
    let (from_unix_s, to_unix_s) = p.range()?;
    let mut page = p.page(MAX_TOP_N)?;
    if p.get("limit").is_none() {
        page.limit = 10;
    }
    Ok(TopResourcesRequest { from_unix_s, to_unix_s, filters: p.filters()?, page })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn rejects(result: Result<impl std::fmt::Debug, ParamError>, parameter: &str) {
        match result {
            Err(e) => assert_eq!(e.parameter, parameter, "{e}"),
            Ok(v) => panic!("expected parameter {parameter} to be rejected, got {v:?}"),
        }
    }

    #[test]
    fn instants_in_three_spellings() {
        // 2026-11-28 = 20_785 days since 1970-01-01.
        assert_eq!(parse_instant("2026-11-28"), Ok(20_785 * DAY_S));
        assert_eq!(parse_instant("2026-11-28T20:05:01Z"), Ok(20_785 * DAY_S + 20 * 3_600 + 301));
        assert_eq!(parse_instant("1795896000"), Ok(1_795_896_000));
        assert!(parse_instant("2026-02-30").is_err());
        assert!(parse_instant("2026-11-28T24:00:00Z").is_err());
        assert!(parse_instant("-5").is_err());
        assert!(parse_instant("").is_err());
    }

    #[test]
    fn totals_parse_lists_and_pages() {
        let r = parse_totals(&pairs(&[
            ("from", "2026-11-01"),
            ("to", "2026-11-02"),
            ("group_by", "team,region"),
            ("account", "111111111111,222222222222"),
            ("limit", "5"),
            ("offset", "10"),
        ]))
        .unwrap();
        assert_eq!(r.group_by, vec![Dimension::Team, Dimension::Region]);
        assert_eq!(r.filters.account, vec!["111111111111", "222222222222"]);
        assert_eq!(r.page, Page { limit: 5, offset: 10 });
        assert_eq!(r.to_unix_s - r.from_unix_s, DAY_S);
    }

    #[test]
    fn bad_parameters_are_named() {
        let base = [("from", "1000"), ("to", "2000")];
        let with = |extra: (&str, &str)| {
            let mut v = base.to_vec();
            v.push(extra);
            pairs(&v)
        };
        rejects(parse_totals(&with(("group_by", "colour"))), "group_by");
        rejects(parse_totals(&with(("group_by", "team,team"))), "group_by");
        rejects(parse_totals(&with(("account", "12"))), "account");
        rejects(parse_totals(&with(("quality", "great"))), "quality");
        rejects(parse_totals(&with(("limit", "0"))), "limit");
        rejects(parse_totals(&with(("limit", "10001"))), "limit");
        rejects(parse_totals(&with(("offset", "-1"))), "offset");
        rejects(parse_totals(&with(("sort", "x"))), "sort");
        rejects(parse_totals(&with(("region", "eu-west-1,,us-east-1"))), "region");
        rejects(parse_totals(&pairs(&[("from", "2000"), ("to", "1000")])), "to");
        rejects(parse_totals(&pairs(&[("to", "1000")])), "from");
        rejects(parse_totals(&pairs(&[("from", "yesterday"), ("to", "1000")])), "from");
        rejects(parse_series(&with(("step", "2m"))), "step");
        rejects(parse_series(&pairs(&[("from", "100"), ("to", "3600"), ("step", "5m")])), "from");
        rejects(parse_series(&pairs(&[("from", "0"), ("to", "3601"), ("step", "1h")])), "to");
        rejects(parse_series(&pairs(&[("from", "0"), ("to", "3600000"), ("step", "5m")])), "step");
        rejects(parse_top_resources(&with(("limit", "1001"))), "limit");
        rejects(parse_top_resources(&with(("group_by", "team"))), "group_by");
        rejects(parse_realtime(&pairs(&[("from", "0")]), 0), "from");
    }

    #[test]
    fn realtime_is_the_last_twelve_buckets() {
        // now = 10:07:30 -> buckets 09:10 .. 10:05, range [09:10, 10:10).
        let now = 10 * HOUR_S + 450;
        let r = parse_realtime(&[], now).unwrap();
        assert_eq!((r.from_unix_s, r.to_unix_s), (9 * HOUR_S + 600, 10 * HOUR_S + 600));
        assert_eq!(r.step, Step::FiveMinutes);
    }
}
