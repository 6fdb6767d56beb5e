//! Choosing the coarsest source that answers a range exactly.
//!
//! A rollup bucket `[b, b + step)` holds exactly the facts whose
//! `period_start` lies in it, so a range `[from, to)` is answered exactly by
//! monthly buckets for its whole UTC months, daily buckets for its whole days, hourly buckets for the whole hours
//! around them, 5-minute buckets for the whole 5-minute slots left (only
//! where 5-minute rollups are still retained) and raw facts for the rest.
//!
//! A query that neither filters nor groups by account reads the org rollups
//! (migration 0006: the same buckets without the account dimension, keyed by
//! OU path instead), whose size does not grow with the number of accounts.

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
    /// `org_rollup_monthly` (no account dimension; plus pending deltas).
    OrgMonthly,
    /// `org_rollup_daily`.
    OrgDaily,
    /// `org_rollup_hourly`.
    OrgHourly,
    /// `org_rollup_5m`.
    OrgFiveMinute,
    /// `realtime_group_facts`: the agents' 5-minute group records, the
    /// real-time view of the last hour (not part of any total).
    Realtime,
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
            Source::OrgMonthly => "org_rollup_monthly",
            Source::OrgDaily => "org_rollup_daily",
            Source::OrgHourly => "org_rollup_hourly",
            Source::OrgFiveMinute => "org_rollup_5m",
            Source::Realtime => "realtime_group_facts",
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
            Source::Monthly | Source::OrgMonthly => None,
            Source::Daily | Source::OrgDaily => Some(DAY_S),
            Source::Hourly | Source::OrgHourly => Some(HOUR_S),
            Source::FiveMinute | Source::OrgFiveMinute | Source::Realtime => Some(FIVE_MINUTES_S),
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
            Source::OrgMonthly => "org_monthly",
            Source::OrgDaily => "org_daily",
            Source::OrgHourly => "org_hourly",
            Source::OrgFiveMinute => "org_5m",
            Source::Realtime => "realtime",
        }
    }

    /// True for the org rollups (no account dimension, OU path instead).
    pub fn is_org(self) -> bool {
        matches!(self, Source::OrgMonthly | Source::OrgDaily | Source::OrgHourly | Source::OrgFiveMinute)
    }

    /// True for the 5-minute levels, which exist only within retention.
    pub fn is_five_minute(self) -> bool {
        matches!(self, Source::FiveMinute | Source::OrgFiveMinute)
    }

    /// The org counterpart of an account-level rollup (itself otherwise).
    pub fn org(self) -> Source {
        match self {
            Source::Monthly => Source::OrgMonthly,
            Source::Daily => Source::OrgDaily,
            Source::Hourly => Source::OrgHourly,
            Source::FiveMinute => Source::OrgFiveMinute,
            other => other,
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

/// The levels a totals query without the account dimension may use.
pub const ORG_TOTALS_LEVELS: [Source; 4] =
    [Source::OrgMonthly, Source::OrgDaily, Source::OrgHourly, Source::OrgFiveMinute];

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
    if level.is_five_minute() {
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
    fn org_levels_plan_like_account_levels() {
        let from = DAY_S + 150;
        let to = 3 * DAY_S + HOUR_S + 600;
        let account: Vec<Segment> = plan(from, to, &TOTALS_LEVELS, 0);
        let org: Vec<Segment> = plan(from, to, &ORG_TOTALS_LEVELS, 0);
        assert_eq!(org.len(), 6);
        for (a, o) in account.iter().zip(&org) {
            assert_eq!((a.source.org(), a.from_unix_s, a.to_unix_s), (o.source, o.from_unix_s, o.to_unix_s));
        }
        assert_eq!(org[0].source, Source::Facts);
        assert_eq!(org[1].source.name(), "org_5m");
        // Expired 5-minute org rollups fall back to facts as well.
        let expired = plan(5 * DAY_S + 600, 5 * DAY_S + HOUR_S, &ORG_TOTALS_LEVELS, 10 * DAY_S);
        assert_eq!(expired, vec![Segment { source: Source::Facts, from_unix_s: 5 * DAY_S + 600, to_unix_s: 5 * DAY_S + HOUR_S }]);
    }

    #[test]
    fn empty_and_sub_slot_ranges() {
        check(100, 100, 0, &[]);
        check(100, 200, 0, &[(Source::Facts, 100, 200)]);
    }
}
