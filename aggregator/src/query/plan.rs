//! Choosing the coarsest source that answers a range exactly.
//!
//! A rollup bucket `[b, b + step)` holds exactly the facts whose
//! `period_start` lies in it, so a range `[from, to)` is answered exactly by
//! monthly buckets for its whole UTC months, daily buckets for its whole days, hourly buckets for the whole hours
//! around them, 5-minute buckets for the whole 5-minute slots left (only
//! where 5-minute rollups are still retained) and raw facts for the rest.

use crate::time::{DAY_S, FIVE_MINUTES_S, HOUR_S, ceil_to, floor_to, month_start_shifted};

/// Where a segment of a range is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// `rollup_monthly` (UTC calendar months).
    Monthly,
    /// `rollup_daily`.
    Daily,
    /// `rollup_hourly`.
    Hourly,
    /// `rollup_5m`.
    FiveMinute,
    /// `emission_facts` (per-resource detail).
    Facts,
}

impl Source {
    /// Relation name.
    pub fn table(self) -> &'static str {
        match self {
            Source::Monthly => "rollup_monthly",
            Source::Daily => "rollup_daily",
            Source::Hourly => "rollup_hourly",
            Source::FiveMinute => "rollup_5m",
            Source::Facts => "emission_facts",
        }
    }

    /// Name of the time column.
    pub fn time_column(self) -> &'static str {
        match self {
            Source::Facts => "period_start",
            _ => "bucket_start",
        }
    }

    /// Bucket width in seconds (None for calendar months and raw facts).
    pub fn step_s(self) -> Option<i64> {
        match self {
            Source::Monthly => None,
            Source::Daily => Some(DAY_S),
            Source::Hourly => Some(HOUR_S),
            Source::FiveMinute => Some(FIVE_MINUTES_S),
            Source::Facts => None,
        }
    }

    /// Name as reported by the API.
    pub fn name(self) -> &'static str {
        match self {
            Source::Monthly => "monthly",
            Source::Daily => "daily",
            Source::Hourly => "hourly",
            Source::FiveMinute => "5m",
            Source::Facts => "facts",
        }
    }
}

/// One piece of a planned range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Where to read.
    pub source: Source,
    /// Inclusive start, Unix seconds.
    pub from_unix_s: i64,
    /// Exclusive end, Unix seconds.
    pub to_unix_s: i64,
}

/// Plans `[from, to)` over `levels` (coarsest first), falling back to raw
/// facts. 5-minute rollups are used only at or after
/// `five_minute_horizon_unix_s`. Segments are returned in time order.
pub fn plan(from_unix_s: i64, to_unix_s: i64, levels: &[Source], five_minute_horizon_unix_s: i64) -> Vec<Segment> {
    let mut out = Vec::new();
    cover(from_unix_s, to_unix_s, levels, five_minute_horizon_unix_s, &mut out);
    out
}

/// The levels a totals query may use.
pub const TOTALS_LEVELS: [Source; 4] = [Source::Monthly, Source::Daily, Source::Hourly, Source::FiveMinute];

/// The whole buckets of `level` inside `[from, to)`, as `(lo, hi)`.
fn inner_bounds(level: Source, from: i64, to: i64) -> (i64, i64) {
    match level.step_s() {
        Some(step) => (ceil_to(from, step), floor_to(to, step)),
        None => {
            let start = month_start_shifted(from, 0);
            let lo = if start == from { from } else { month_start_shifted(from, 1) };
            (lo, month_start_shifted(to, 0))
        }
    }
}

fn cover(from: i64, to: i64, levels: &[Source], horizon: i64, out: &mut Vec<Segment>) {
    if from >= to {
        return;
    }
    let Some((&level, rest)) = levels.split_first() else {
        out.push(Segment { source: Source::Facts, from_unix_s: from, to_unix_s: to });
        return;
    };
    let (mut lo, hi) = inner_bounds(level, from, to);
    if level == Source::FiveMinute {
        lo = lo.max(ceil_to(horizon, FIVE_MINUTES_S));
    }
    if lo >= hi {
        cover(from, to, rest, horizon, out);
        return;
    }
    cover(from, lo, rest, horizon, out);
    out.push(Segment { source: level, from_unix_s: lo, to_unix_s: hi });
    cover(hi, to, rest, horizon, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(from: i64, to: i64, horizon: i64, expected: &[(Source, i64, i64)]) {
        let got: Vec<(Source, i64, i64)> =
            plan(from, to, &TOTALS_LEVELS, horizon).into_iter().map(|s| (s.source, s.from_unix_s, s.to_unix_s)).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn whole_days_use_daily_only() {
        check(DAY_S, 3 * DAY_S, 0, &[(Source::Daily, DAY_S, 3 * DAY_S)]);
    }

    #[test]
    fn ragged_edges_step_down_to_facts() {
        // [00:02:30 day1, 01:10 day3): facts 150..300, 5m 300..3600, hourly 1h..24h,
        // daily day1..day3 (= 2 days), hourly day3..day3+1h, 5m up to +1h10.
        let from = DAY_S + 150;
        let to = 3 * DAY_S + HOUR_S + 600;
        check(
            from,
            to,
            0,
            &[
                (Source::Facts, DAY_S + 150, DAY_S + 300),
                (Source::FiveMinute, DAY_S + 300, DAY_S + HOUR_S),
                (Source::Hourly, DAY_S + HOUR_S, 2 * DAY_S),
                (Source::Daily, 2 * DAY_S, 3 * DAY_S),
                (Source::Hourly, 3 * DAY_S, 3 * DAY_S + HOUR_S),
                (Source::FiveMinute, 3 * DAY_S + HOUR_S, 3 * DAY_S + HOUR_S + 600),
            ],
        );
    }

    #[test]
    fn expired_five_minute_data_falls_back_to_facts() {
        // Horizon at day 10: the 5-minute part before it is read from facts.
        let from = 5 * DAY_S + 600;
        let to = 5 * DAY_S + HOUR_S;
        check(from, to, 10 * DAY_S, &[(Source::Facts, from, to)]);
        check(from, to, 0, &[(Source::FiveMinute, from, to)]);
    }

    #[test]
    fn whole_months_use_monthly() {
        // 2026-10-15T12:00Z .. 2027-01-01: Nov and Dec from monthly, the rest
        // of October from daily (Oct 16..Nov 1) and hourly (Oct 15 12:00..24:00).
        let oct_15 = 20_741 * DAY_S; // 2026-10-15
        let nov_1 = 20_758 * DAY_S;
        let jan_1 = 20_819 * DAY_S;
        check(
            oct_15 + 12 * HOUR_S,
            jan_1,
            0,
            &[
                (Source::Hourly, oct_15 + 12 * HOUR_S, oct_15 + DAY_S),
                (Source::Daily, oct_15 + DAY_S, nov_1),
                (Source::Monthly, nov_1, jan_1),
            ],
        );
    }

    #[test]
    fn empty_and_sub_slot_ranges() {
        check(100, 100, 0, &[]);
        check(100, 200, 0, &[(Source::Facts, 100, 200)]);
    }
}
