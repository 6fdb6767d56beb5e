//! Choosing the coarsest source that answers a range exactly.
//!
//! A rollup bucket `[b, b + step)` holds exactly the facts whose
//! `period_start` lies in it, so a range `[from, to)` is answered exactly by
//! monthly buckets for its whole UTC months, daily buckets for its whole days, hourly buckets for the whole hours
//! around them, 5-minute buckets for the whole 5-minute slots left and raw
//! facts for the rest.
//!
//! Every level is read only at or after its retention horizon
//! ([`Horizons`]): before it, retention has dropped (part of) the level.
//! A range whose edge lies where only coarser levels remain is refused with
//! a [`RetentionError`] naming the boundaries to round to; it is never
//! answered from a level that is gone.
//!
//! A query that neither filters nor groups by account reads the org rollups
//! (migration 0006: the same buckets without the account dimension, keyed by
//! OU path instead), whose size does not grow with the number of accounts.

use crate::time::{DAY_S, FIVE_MINUTES_S, HOUR_S, civil_from_days, floor_to, month_start_shifted};

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
    /// `emission_facts_all_parts` (per-resource detail: rows and segments,
    /// with their parts; migration 0022).
    Facts,
    /// `org_rollup_monthly` (no account dimension; plus pending deltas).
    OrgMonthly,
    /// `org_rollup_daily`.
    OrgDaily,
    /// `org_rollup_hourly`.
    OrgHourly,
    /// `org_rollup_5m`.
    OrgFiveMinute,
    /// `org_team_rollup_daily` (only team and quality flag; plus pending).
    OrgTeamDaily,
    /// `org_team_rollup_monthly`.
    OrgTeamMonthly,
    /// `realtime_group_facts`: the agents' 5-minute group records, the
    /// real-time view of the last hour (not part of any total).
    Realtime,
    /// `resource_rollup_daily` (migration 0029): one row per UTC day,
    /// resource and group, for top resources.
    ResourceDaily,
}

impl Source {
    /// Relation name.
    pub fn table(self) -> &'static str {
        match self {
            Source::Monthly => "rollup_monthly",
            Source::Daily => "rollup_daily",
            Source::Hourly => "rollup_hourly",
            Source::FiveMinute => "rollup_5m",
            Source::Facts => "emission_facts_all_parts",
            Source::OrgMonthly => "org_rollup_monthly",
            Source::OrgDaily => "org_rollup_daily",
            Source::OrgHourly => "org_rollup_hourly",
            Source::OrgFiveMinute => "org_rollup_5m",
            Source::OrgTeamDaily => "org_team_rollup_daily",
            Source::OrgTeamMonthly => "org_team_rollup_monthly",
            Source::Realtime => "realtime_group_facts",
            Source::ResourceDaily => "resource_rollup_daily",
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
            Source::Monthly | Source::OrgMonthly | Source::OrgTeamMonthly => None,
            Source::Daily | Source::OrgDaily | Source::OrgTeamDaily | Source::ResourceDaily => Some(DAY_S),
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
            Source::OrgTeamDaily => "org_team_daily",
            Source::OrgTeamMonthly => "org_team_monthly",
            Source::Realtime => "realtime",
            Source::ResourceDaily => "resource_daily",
        }
    }

    /// True for the org rollups (no account dimension, OU path instead).
    pub fn is_org(self) -> bool {
        matches!(self, Source::OrgMonthly | Source::OrgDaily | Source::OrgHourly | Source::OrgFiveMinute)
    }

    /// True for the team rollups (team and quality flag only).
    pub fn is_team(self) -> bool {
        matches!(self, Source::OrgTeamDaily | Source::OrgTeamMonthly)
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

/// One piece of a planned range. A planned range is the signed sum of its
/// segments: a segment with `subtract` set is taken away from the others,
/// which lets a ragged edge be read as one coarse bucket minus the small
/// piece of it that lies outside the range when that reads fewer rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Where to read.
    pub source: Source,
    /// Inclusive start, Unix seconds.
    pub from_unix_s: i64,
    /// Exclusive end, Unix seconds.
    pub to_unix_s: i64,
    /// True when this piece is subtracted (it lies outside the range but
    /// inside a coarser bucket the plan reads whole).
    pub subtract: bool,
}

impl Segment {
    /// A segment added to the answer.
    pub fn add(source: Source, from_unix_s: i64, to_unix_s: i64) -> Segment {
        Segment { source, from_unix_s, to_unix_s, subtract: false }
    }

    fn negated(self) -> Segment {
        Segment { subtract: !self.subtract, ..self }
    }
}

/// Retention horizons: for each stored level, the oldest instant from which
/// its data is complete (`i64::MIN`: nothing dropped). Maintenance drops
/// whole partitions (or, for daily and monthly rollups, rows) before these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizons {
    /// 5-minute rollups (account and org) and the real-time group records.
    pub five_minute_unix_s: i64,
    /// Hourly rollups (account and org).
    pub hourly_unix_s: i64,
    /// Per-resource facts.
    pub facts_unix_s: i64,
    /// Daily and monthly rollups (account, org and team).
    pub daily_unix_s: i64,
}

impl Horizons {
    /// Nothing dropped anywhere.
    pub const NONE: Horizons =
        Horizons { five_minute_unix_s: i64::MIN, hourly_unix_s: i64::MIN, facts_unix_s: i64::MIN, daily_unix_s: i64::MIN };

    /// The later of two horizons per level (the more conservative one).
    pub fn max(self, other: Horizons) -> Horizons {
        Horizons {
            five_minute_unix_s: self.five_minute_unix_s.max(other.five_minute_unix_s),
            hourly_unix_s: self.hourly_unix_s.max(other.hourly_unix_s),
            facts_unix_s: self.facts_unix_s.max(other.facts_unix_s),
            daily_unix_s: self.daily_unix_s.max(other.daily_unix_s),
        }
    }

    /// The horizon of the level `source` belongs to.
    pub fn of(&self, source: Source) -> i64 {
        match source {
            Source::FiveMinute | Source::OrgFiveMinute | Source::Realtime => self.five_minute_unix_s,
            Source::Hourly | Source::OrgHourly => self.hourly_unix_s,
            Source::Facts => self.facts_unix_s,
            Source::Monthly
            | Source::Daily
            | Source::OrgMonthly
            | Source::OrgDaily
            | Source::OrgTeamDaily
            | Source::OrgTeamMonthly
            | Source::ResourceDaily => self.daily_unix_s,
        }
    }

    /// First instant from which whole buckets of `source` may be read: its
    /// horizon rounded up to the level's bucket boundary.
    pub fn usable_from(&self, source: Source) -> i64 {
        let h = self.of(source);
        if h == i64::MIN || source == Source::Facts { h } else { bucket_ceil(source, h) }
    }
}

/// A range that the retained data cannot answer exactly: one edge lies
/// where the levels fine enough for it have expired.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter {parameter}: {message}")]
pub struct RetentionError {
    /// `from` or `to`.
    pub parameter: &'static str,
    /// The edge as given.
    pub found_unix_s: i64,
    /// The nearest acceptable instant before it (when nothing at all is
    /// retained there: the oldest retained instant, as `round_up_unix_s`).
    pub round_down_unix_s: i64,
    /// The nearest acceptable instant at or after it.
    pub round_up_unix_s: i64,
    /// What was expected and found, with both boundaries.
    pub message: String,
}

/// RFC 3339 text of a Unix second (UTC).
pub fn rfc3339(t_unix_s: i64) -> String {
    let (y, m, d) = civil_from_days(t_unix_s.div_euclid(DAY_S));
    let s = t_unix_s.rem_euclid(DAY_S);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", s / HOUR_S, s % HOUR_S / 60, s % 60)
}

/// Plans `[from, to)` over `levels` (coarsest first), falling back to raw
/// facts, choosing for every edge whichever reads fewer buckets: the finer
/// levels inside the range, or the enclosing coarse bucket minus the finer
/// levels outside it. Every level (and the facts) is read only at or after
/// its horizon in `horizons`; when that leaves no exact plan, the error
/// names the edge and the boundaries to round it to. Segments are returned
/// in time order of the pieces added, subtracted pieces next to the bucket
/// they cut.
pub fn plan(from_unix_s: i64, to_unix_s: i64, levels: &[Source], horizons: &Horizons) -> Result<Vec<Segment>, RetentionError> {
    if let Some(segments) = cover(from_unix_s, to_unix_s, levels, horizons) {
        return Ok(segments);
    }
    let edge_error = edge_error("from", from_unix_s, from_unix_s, levels, horizons)
        .or_else(|| edge_error("to", to_unix_s, to_unix_s - 1, levels, horizons));
    Err(edge_error.unwrap_or_else(|| RetentionError {
        parameter: "from",
        found_unix_s: from_unix_s,
        round_down_unix_s: from_unix_s,
        round_up_unix_s: from_unix_s,
        message: format!(
            "expected a range the retained data answer exactly, found [{}, {})",
            rfc3339(from_unix_s),
            rfc3339(to_unix_s)
        ),
    }))
}

/// Bucket width of a level for comparing fineness (facts: one second).
fn width(level: Source) -> i64 {
    match level.step_s() {
        Some(step) => step,
        None if level == Source::Facts => 1,
        None => 31 * DAY_S,
    }
}

/// What a level holds, for messages.
fn describe(level: Source) -> &'static str {
    match level {
        Source::Facts => "per-resource facts",
        Source::FiveMinute | Source::OrgFiveMinute | Source::Realtime => "5-minute rollups",
        Source::Hourly | Source::OrgHourly => "hourly rollups",
        _ if level.step_s() == Some(DAY_S) => "daily rollups",
        _ => "monthly rollups",
    }
}

/// The unit an edge must be a multiple of where `level` is the finest left.
fn unit(level: Source) -> &'static str {
    match level.step_s() {
        Some(FIVE_MINUTES_S) => "whole 5-minute slots",
        Some(HOUR_S) => "whole UTC hours",
        Some(DAY_S) => "whole UTC days",
        _ => "whole UTC months",
    }
}

/// Names of `levels` without repeats, joined for a message.
fn names(levels: &[Source]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for l in levels {
        if !out.contains(&describe(*l)) {
            out.push(describe(*l));
        }
    }
    out.join(", ")
}

/// Why the edge `x` (`probe` is the instant of the range next to it) cannot
/// be answered: no level holds `probe`, or the finest level holding it has
/// no bucket boundary at `x`. None when the edge is answerable.
fn edge_error(parameter: &'static str, x: i64, probe: i64, levels: &[Source], h: &Horizons) -> Option<RetentionError> {
    let all: Vec<Source> = levels.iter().copied().chain([Source::Facts]).collect();
    let finest = all.iter().copied().filter(|l| probe >= h.usable_from(*l)).min_by_key(|l| width(*l));
    let Some(finest) = finest else {
        let earliest = all.iter().map(|l| h.usable_from(*l)).min().unwrap_or(i64::MIN);
        return Some(RetentionError {
            parameter,
            found_unix_s: x,
            round_down_unix_s: earliest,
            round_up_unix_s: earliest,
            message: format!(
                "expected an instant at or after {} (older {} have expired by retention), found {}",
                rfc3339(earliest),
                names(&all),
                rfc3339(x)
            ),
        });
    };
    let (down, up) = (bucket_floor(finest, x), bucket_ceil(finest, x));
    if down == x {
        return None;
    }
    let expired: Vec<Source> = all.iter().copied().filter(|l| width(*l) < width(finest)).collect();
    let boundary = expired.iter().map(|l| h.usable_from(*l)).min().unwrap_or(i64::MAX);
    Some(RetentionError {
        parameter,
        found_unix_s: x,
        round_down_unix_s: down,
        round_up_unix_s: up,
        message: format!(
            "expected {} before {}, where {} have expired by retention, found {}: round {parameter} to {} or {}",
            unit(finest),
            rfc3339(boundary),
            names(&expired),
            rfc3339(x),
            rfc3339(down),
            rfc3339(up)
        ),
    })
}

/// The levels a totals query may use.
pub const TOTALS_LEVELS: [Source; 4] = [Source::Monthly, Source::Daily, Source::Hourly, Source::FiveMinute];

/// The levels a totals query without the account dimension may use.
pub const ORG_TOTALS_LEVELS: [Source; 4] =
    [Source::OrgMonthly, Source::OrgDaily, Source::OrgHourly, Source::OrgFiveMinute];

/// The levels a totals query that only groups and filters by team and
/// quality flag may use: team rollups for days and months, org rollups below.
pub const TEAM_TOTALS_LEVELS: [Source; 4] =
    [Source::OrgTeamMonthly, Source::OrgTeamDaily, Source::OrgHourly, Source::OrgFiveMinute];

/// The levels a top-resources query may use: the per-resource daily rollup
/// for whole days, per-resource facts for ragged edges. An hourly
/// per-resource level would hold about as many rows as the hourly facts of
/// an edge, so there is none.
pub const RESOURCE_LEVELS: [Source; 1] = [Source::ResourceDaily];

/// Start of the bucket of `level` containing `t`.
fn bucket_floor(level: Source, t: i64) -> i64 {
    match level.step_s() {
        Some(step) => floor_to(t, step),
        None => month_start_shifted(t, 0),
    }
}

/// Smallest bucket boundary of `level` at or after `t`.
fn bucket_ceil(level: Source, t: i64) -> i64 {
    let floor = bucket_floor(level, t);
    if floor == t {
        t
    } else {
        match level.step_s() {
            Some(step) => floor + step,
            None => month_start_shifted(t, 1),
        }
    }
}

/// Rows a raw-facts segment is weighted at per second, relative to one
/// rollup bucket: a 5-minute slot of per-resource facts holds about as many
/// rows as the resources of a group, taken here as 100.
const FACT_COST_PER_5_MINUTES: f64 = 100.0;

/// Estimated rows read per group series, plus a small charge per segment so
/// that of two equally large plans the one with fewer statements wins.
pub fn cost(segments: &[Segment]) -> f64 {
    segments
        .iter()
        .map(|s| {
            let span = (s.to_unix_s - s.from_unix_s) as f64;
            let buckets = match s.source.step_s() {
                Some(step) => span / step as f64,
                None if s.source == Source::Facts => span / FIVE_MINUTES_S as f64 * FACT_COST_PER_5_MINUTES,
                None => (span / (30.0 * DAY_S as f64)).round().max(1.0),
            };
            buckets + 0.25
        })
        .sum()
}

fn negated(segments: Vec<Segment>) -> Vec<Segment> {
    segments.into_iter().map(Segment::negated).collect()
}

/// The cheapest signed tiling of `[from, to)` from `levels` and the facts
/// that reads nothing before a horizon; None when there is none.
fn cover(from: i64, to: i64, levels: &[Source], h: &Horizons) -> Option<Vec<Segment>> {
    if from >= to {
        return Some(Vec::new());
    }
    let Some((&level, rest)) = levels.split_first() else {
        return (from >= h.usable_from(Source::Facts)).then(|| vec![Segment::add(Source::Facts, from, to)]);
    };
    // Without this level at all.
    let mut best = cover(from, to, rest, h).map(|p| {
        let c = cost(&p);
        (p, c)
    });

    let usable_from = h.usable_from(level);
    let (lo_in, hi_in) = (bucket_ceil(level, from), bucket_floor(level, to));
    let (lo_out, hi_out) = (bucket_floor(level, from), bucket_ceil(level, to));
    // Signed tiling: [from, start) + [start, end) + [end, to) = [from, to)
    // for any start and end, reading [b, a) as minus [a, b). The left edge is
    // [from, lo_in) from finer levels, or minus [lo_out, from) (the enclosing
    // bucket is then read whole); likewise the right edge.
    let mut lefts = vec![(lo_in, cover(from, lo_in, rest, h))];
    if usable_from > lo_in && usable_from < to {
        // Only the part after this level's horizon may use it.
        lefts.push((usable_from, cover(from, usable_from, rest, h)));
    }
    if lo_out < from {
        lefts.push((lo_out, cover(lo_out, from, rest, h).map(negated)));
    }
    let mut rights = vec![(hi_in, cover(hi_in, to, rest, h))];
    if hi_out > to {
        rights.push((hi_out, cover(to, hi_out, rest, h).map(negated)));
    }
    for (start, left) in &lefts {
        let Some(left) = left else { continue };
        for (end, right) in &rights {
            let Some(right) = right else { continue };
            let middle = match start.cmp(end) {
                std::cmp::Ordering::Less => Some(Segment::add(level, *start, *end)),
                std::cmp::Ordering::Greater => Some(Segment::add(level, *end, *start).negated()),
                std::cmp::Ordering::Equal => None,
            };
            if middle.is_some_and(|m| m.from_unix_s < usable_from) {
                continue;
            }
            let mut candidate = left.clone();
            candidate.extend(middle);
            candidate.extend(right.iter().copied());
            let c = cost(&candidate);
            if best.as_ref().is_none_or(|(_, best_cost)| c < *best_cost) {
                best = Some((candidate, c));
            }
        }
    }
    best.map(|(p, _)| p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ceil_to;

    fn plain(segments: &[Segment]) -> Vec<(Source, i64, i64, bool)> {
        segments.iter().map(|s| (s.source, s.from_unix_s, s.to_unix_s, s.subtract)).collect()
    }

    /// Only the 5-minute level expired (before `horizon`).
    fn h5(horizon: i64) -> Horizons {
        Horizons { five_minute_unix_s: horizon, ..Horizons::NONE }
    }

    fn check(from: i64, to: i64, horizon: i64, expected: &[(Source, i64, i64, bool)]) {
        let got = plan(from, to, &TOTALS_LEVELS, &h5(horizon)).unwrap();
        assert_tiles(&got, from, to, &h5(horizon));
        assert_eq!(plain(&got), expected);
    }

    /// The signed segments cover every instant of [from, to) exactly once
    /// and nothing outside it; every rollup segment is whole buckets of its
    /// level; no segment of any level (facts included, subtracted pieces
    /// too) starts before that level's horizon.
    fn assert_tiles(segments: &[Segment], from: i64, to: i64, horizons: &Horizons) {
        let mut points: Vec<i64> = segments.iter().flat_map(|s| [s.from_unix_s, s.to_unix_s]).collect();
        points.extend([from, to]);
        points.sort_unstable();
        points.dedup();
        for w in points.windows(2) {
            let probe = w[0];
            let covered: i32 = segments
                .iter()
                .filter(|s| s.from_unix_s <= probe && probe < s.to_unix_s)
                .map(|s| if s.subtract { -1 } else { 1 })
                .sum();
            let expected = i32::from(from <= probe && probe < to);
            assert_eq!(covered, expected, "instant {probe} of [{from}, {to}) in {segments:?}");
        }
        for s in segments {
            assert!(s.from_unix_s < s.to_unix_s, "empty segment {s:?}");
            if s.source != Source::Facts {
                assert_eq!(bucket_floor(s.source, s.from_unix_s), s.from_unix_s, "{s:?} starts inside a bucket");
                assert_eq!(bucket_floor(s.source, s.to_unix_s), s.to_unix_s, "{s:?} ends inside a bucket");
            }
            let horizon = horizons.of(s.source);
            assert!(s.from_unix_s >= horizon, "{s:?} reads {} before its horizon {horizon}", s.source.name());
        }
    }

    #[test]
    fn whole_days_use_daily_only() {
        check(DAY_S, 3 * DAY_S, 0, &[(Source::Daily, DAY_S, 3 * DAY_S, false)]);
    }

    #[test]
    fn ragged_edges_read_the_smaller_side() {
        // [00:02:30 day1, 01:10 day3): the left edge is 2.5 minutes from the
        // start of day 1, so day 1 is read whole minus facts 0..150 s; the
        // right edge 1h10 into day 3 is one hour plus two 5-minute slots.
        let from = DAY_S + 150;
        let to = 3 * DAY_S + HOUR_S + 600;
        check(
            from,
            to,
            0,
            &[
                (Source::Facts, DAY_S, DAY_S + 150, true),
                (Source::Daily, DAY_S, 3 * DAY_S, false),
                (Source::Hourly, 3 * DAY_S, 3 * DAY_S + HOUR_S, false),
                (Source::FiveMinute, 3 * DAY_S + HOUR_S, 3 * DAY_S + HOUR_S + 600, false),
            ],
        );
    }

    #[test]
    fn late_edges_subtract_the_rest_of_the_day() {
        // [03:00 day1, 22:50 day3): 21 hours of day 1 read as the day minus
        // three hours; day 3 as the day minus 22:50..24:00 (two 5-minute
        // slots and one hour) instead of 22 hours and ten slots.
        let from = DAY_S + 3 * HOUR_S;
        let to = 3 * DAY_S + 22 * HOUR_S + 3_000;
        check(
            from,
            to,
            0,
            &[
                (Source::Hourly, DAY_S, DAY_S + 3 * HOUR_S, true),
                (Source::Daily, DAY_S, 4 * DAY_S, false),
                (Source::FiveMinute, 3 * DAY_S + 22 * HOUR_S + 3_000, 3 * DAY_S + 23 * HOUR_S, true),
                (Source::Hourly, 3 * DAY_S + 23 * HOUR_S, 4 * DAY_S, true),
            ],
        );
    }

    #[test]
    fn expired_five_minute_data_is_never_read() {
        // Horizon at day 10: [00:10, 01:00) of day 5 cannot use 5-minute
        // rollups; the hour minus ten minutes of facts reads fewer rows than
        // fifty minutes of facts.
        let from = 5 * DAY_S + 600;
        let to = 5 * DAY_S + HOUR_S;
        check(from, to, 10 * DAY_S, &[(Source::Facts, 5 * DAY_S, from, true), (Source::Hourly, 5 * DAY_S, to, false)]);
        // With 5-minute rollups: the hour minus two slots.
        check(from, to, 0, &[(Source::FiveMinute, 5 * DAY_S, from, true), (Source::Hourly, 5 * DAY_S, to, false)]);
        // Without the hourly level either, only facts remain.
        let facts_only = plan(from, to, &[Source::FiveMinute], &h5(10 * DAY_S)).unwrap();
        assert_eq!(plain(&facts_only), [(Source::Facts, from, to, false)]);
    }

    #[test]
    fn whole_months_use_monthly() {
        // 2026-10-15T12:00Z .. 2027-01-01: October to December from monthly
        // (3 buckets) minus Oct 1..15 from daily (14) and Oct 15 00:00..12:00
        // from hourly (12): 29 buckets against 12 + 16 + 2 = 30 for reading
        // the rest of October upwards.
        let oct_1 = 20_727 * DAY_S; // 2026-10-01
        let oct_15 = 20_741 * DAY_S;
        let jan_1 = 20_819 * DAY_S;
        check(
            oct_15 + 12 * HOUR_S,
            jan_1,
            0,
            &[
                (Source::Daily, oct_1, oct_15, true),
                (Source::Hourly, oct_15, oct_15 + 12 * HOUR_S, true),
                (Source::Monthly, oct_1, jan_1, false),
            ],
        );
        // From the 20th on, the rest of the month is read upwards.
        let oct_20 = 20_746 * DAY_S;
        check(
            oct_20,
            jan_1,
            0,
            &[(Source::Daily, oct_20, 20_758 * DAY_S, false), (Source::Monthly, 20_758 * DAY_S, jan_1, false)],
        );
    }

    #[test]
    fn random_ranges_tile_exactly() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: i64| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((state >> 33) % n as u64) as i64
        };
        let base = 20_741 * DAY_S;
        let (mut subtracted, mut answered, mut refused) = (0, 0, 0);
        for _ in 0..2_000 {
            // Boundaries on seconds, 5-minute slots, hours or days, mixed.
            let at = |next: &mut dyn FnMut(i64) -> i64| {
                let unit = [1, FIVE_MINUTES_S, HOUR_S, DAY_S][next(4) as usize];
                base + next(70 * DAY_S / unit) * unit
            };
            let (a, b) = (at(&mut next), at(&mut next));
            let (from, to) = (a.min(b), a.max(b));
            let horizon = base + next(40) * DAY_S + next(DAY_S);
            for levels in [&TOTALS_LEVELS[..], &ORG_TOTALS_LEVELS[..], &TOTALS_LEVELS[1..], &TOTALS_LEVELS[2..]] {
                let segments = plan(from, to, levels, &h5(horizon)).unwrap();
                assert_tiles(&segments, from, to, &h5(horizon));
                subtracted += segments.iter().filter(|s| s.subtract).count();
                // Never more rows than the plan without subtraction would read.
                assert!(cost(&segments) <= cost(&additive_plan(from, to, levels, horizon)) + 1e-9);
            }
            // Every level with its own horizon, as retention leaves them:
            // either a plan that reads no level before its horizon, or a
            // refusal naming an edge whose suggested roundings it accepts.
            let now = base + next(150 * DAY_S);
            let policy = crate::maintenance::RetentionPolicy {
                five_minute_days: 1 + next(60) as u32,
                hourly_months: next(4) as u32,
                facts_months: next(4) as u32,
                daily_months: [None, Some(next(6) as u32)][next(2) as usize],
            };
            let horizons = Horizons::of_policy(&policy, now);
            for levels in [&TOTALS_LEVELS[..], &TEAM_TOTALS_LEVELS[..], &TOTALS_LEVELS[1..], &TOTALS_LEVELS[2..], &[]] {
                match plan(from, to, levels, &horizons) {
                    Ok(segments) => {
                        assert_tiles(&segments, from, to, &horizons);
                        answered += 1;
                    }
                    Err(e) => {
                        refused += 1;
                        assert_refusal_is_actionable(&e, from, to, levels, &horizons);
                    }
                }
            }
        }
        assert!(subtracted > 100, "the random ranges should exercise subtraction, found {subtracted} subtracted segments");
        assert!(answered > 2_000 && refused > 500, "answered {answered}, refused {refused}");
    }

    /// A refusal names `from` or `to` as given, the edge really is
    /// unanswerable, and rounding it either way makes that edge acceptable
    /// (the other edge may still be refused).
    fn assert_refusal_is_actionable(e: &RetentionError, from: i64, to: i64, levels: &[Source], h: &Horizons) {
        assert!(!e.message.starts_with("expected a range the retained data"), "no edge named: {e}");
        let found = if e.parameter == "from" { from } else { to };
        assert_eq!((e.parameter == "from" || e.parameter == "to", e.found_unix_s), (true, found), "{e}");
        // Round to the nearest bucket boundary either way, or (nothing at
        // all retained there) up to the oldest retained instant.
        let nothing_there = e.round_down_unix_s == e.round_up_unix_s && found < e.round_up_unix_s;
        assert!(nothing_there || (e.round_down_unix_s < found && found < e.round_up_unix_s), "{e}");
        assert!(e.message.contains(&rfc3339(found)) && e.message.contains(&rfc3339(e.round_up_unix_s)), "{e}");
        for rounded in [e.round_down_unix_s, e.round_up_unix_s] {
            let (f, t) = if e.parameter == "from" { (rounded, to) } else { (from, rounded) };
            if f >= t {
                continue;
            }
            match plan(f, t, levels, h) {
                Ok(segments) => assert_tiles(&segments, f, t, h),
                Err(again) => assert_ne!(again.parameter, e.parameter, "{e} then, rounded, {again}"),
            }
        }
    }

    #[test]
    fn past_the_hourly_horizon_days_are_whole_or_refused() {
        // Issue 13 case 2: hourly rollups and facts expired before day 40,
        // the day 30 is whole in the daily rollup.
        let h = Horizons { hourly_unix_s: 40 * DAY_S, facts_unix_s: 40 * DAY_S, five_minute_unix_s: 50 * DAY_S, daily_unix_s: i64::MIN };
        let day = 30 * DAY_S;
        assert_eq!(plain(&plan(day, day + DAY_S, &TOTALS_LEVELS, &h).unwrap()), [(Source::Daily, day, day + DAY_S, false)]);
        let e = plan(day + 3 * HOUR_S, day + DAY_S, &TOTALS_LEVELS, &h).unwrap_err();
        assert_eq!((e.parameter, e.round_down_unix_s, e.round_up_unix_s), ("from", day, day + DAY_S));
        assert_eq!(
            e.message,
            "expected whole UTC days before 1970-02-10T00:00:00Z, where hourly rollups, 5-minute rollups, \
             per-resource facts have expired by retention, found 1970-01-31T03:00:00Z: round from to \
             1970-01-31T00:00:00Z or 1970-02-01T00:00:00Z"
        );
        let e = plan(day, day + 3 * HOUR_S, &TOTALS_LEVELS, &h).unwrap_err();
        assert_eq!((e.parameter, e.found_unix_s), ("to", day + 3 * HOUR_S));
        // Facts kept longer than hourly rollups: answered exactly from them.
        let h = Horizons { facts_unix_s: i64::MIN, ..h };
        let got = plan(day + 3 * HOUR_S, day + DAY_S, &TOTALS_LEVELS, &h).unwrap();
        assert_eq!(plain(&got), [(Source::Facts, day, day + 3 * HOUR_S, true), (Source::Daily, day, day + DAY_S, false)]);
        // A range crossing the horizon: days before it, hours after.
        let got = plan(day, 40 * DAY_S + 5 * HOUR_S, &TOTALS_LEVELS, &Horizons { facts_unix_s: 40 * DAY_S, ..h }).unwrap();
        assert_tiles(&got, day, 40 * DAY_S + 5 * HOUR_S, &Horizons { facts_unix_s: 40 * DAY_S, ..h });
        // Nothing before the daily horizon either: refused up to it.
        let h = Horizons { daily_unix_s: 35 * DAY_S, ..h };
        let e = plan(day, day + DAY_S, &[Source::Daily], &Horizons { facts_unix_s: 40 * DAY_S, ..h }).unwrap_err();
        assert_eq!((e.parameter, e.round_up_unix_s), ("from", 35 * DAY_S));
    }

    /// The plan before subtraction existed: finer levels inside the range only.
    fn additive_plan(from: i64, to: i64, levels: &[Source], horizon: i64) -> Vec<Segment> {
        if from >= to {
            return Vec::new();
        }
        let Some((&level, rest)) = levels.split_first() else {
            return vec![Segment::add(Source::Facts, from, to)];
        };
        let mut lo = bucket_ceil(level, from);
        let hi = bucket_floor(level, to);
        if level.is_five_minute() {
            lo = lo.max(ceil_to(horizon, FIVE_MINUTES_S));
        }
        if lo >= hi {
            return additive_plan(from, to, rest, horizon);
        }
        let mut out = additive_plan(from, lo, rest, horizon);
        out.push(Segment::add(level, lo, hi));
        out.extend(additive_plan(hi, to, rest, horizon));
        out
    }

    #[test]
    fn org_levels_plan_like_account_levels() {
        let from = DAY_S + 150;
        let to = 3 * DAY_S + HOUR_S + 600;
        let account: Vec<Segment> = plan(from, to, &TOTALS_LEVELS, &Horizons::NONE).unwrap();
        let org: Vec<Segment> = plan(from, to, &ORG_TOTALS_LEVELS, &Horizons::NONE).unwrap();
        assert_eq!(org.len(), account.len());
        for (a, o) in account.iter().zip(&org) {
            assert_eq!((a.source.org(), a.from_unix_s, a.to_unix_s, a.subtract), (o.source, o.from_unix_s, o.to_unix_s, o.subtract));
        }
        // Expired 5-minute org rollups are not read either.
        let expired = plan(5 * DAY_S + 600, 5 * DAY_S + HOUR_S, &ORG_TOTALS_LEVELS, &h5(10 * DAY_S)).unwrap();
        assert!(expired.iter().all(|s| !s.source.is_five_minute()), "{expired:?}");
        assert_eq!(expired[1], Segment::add(Source::OrgHourly, 5 * DAY_S, 5 * DAY_S + HOUR_S));
    }

    #[test]
    fn top_resources_read_whole_days_from_the_resource_rollup() {
        // Seven whole days and a ragged head two hours into day 1: the day
        // read whole minus its first two hours of facts.
        let from = DAY_S + 2 * HOUR_S;
        let got = plan(from, 8 * DAY_S, &RESOURCE_LEVELS, &Horizons::NONE).unwrap();
        assert_tiles(&got, from, 8 * DAY_S, &Horizons::NONE);
        assert_eq!(
            plain(&got),
            [(Source::Facts, DAY_S, from, true), (Source::ResourceDaily, DAY_S, 8 * DAY_S, false)]
        );
        // Whole days only: one segment of the rollup, nothing from the facts.
        let got = plan(DAY_S, 31 * DAY_S, &RESOURCE_LEVELS, &Horizons::NONE).unwrap();
        assert_eq!(plain(&got), [(Source::ResourceDaily, DAY_S, 31 * DAY_S, false)]);
    }

    #[test]
    fn empty_and_sub_slot_ranges() {
        check(100, 100, 0, &[]);
        check(100, 200, 0, &[(Source::Facts, 100, 200, false)]);
    }
}
