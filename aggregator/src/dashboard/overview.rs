//! `GET /v1/overview`: CO2e and energy for the last hour (the real-time view:
//! the agents' 5-minute group records), this month so far,
//! last month to the same elapsed time and all of last month, each with its
//! breakdown by quality flag, under the same filters as `/v1/totals`, and
//! the share of this month's energy priced with hourly grid intensity.

use axum::Json;
use axum::extract::{Extension, Query, State};
use serde_json::{Value, json};

use super::{DashboardError, DashboardState, bad};
use crate::auth::Principal;
use crate::http::totals_json;
use crate::query::{QueryError, Snapshot, TotalsResponse};
use crate::query::params::{parse_instant, parse_totals};
use crate::time::{FIVE_MINUTES_S, HOUR_S, floor_to, month_start_shifted};

/// The ranges of one overview, `[from, to)` in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverviewRanges {
    /// The hour ending with the 5-minute bucket containing now.
    pub last_hour: (i64, i64),
    /// From the start of this UTC month to the end of the current 5-minute bucket.
    pub this_month: (i64, i64),
    /// Last month from its start, as long as this month has run so far.
    pub last_month_same_elapsed: (i64, i64),
    /// All of last month.
    pub last_month: (i64, i64),
}

/// The ranges at `now_unix_s`.
pub fn ranges(now_unix_s: i64) -> OverviewRanges {
    let end = floor_to(now_unix_s, FIVE_MINUTES_S) + FIVE_MINUTES_S;
    let month = month_start_shifted(now_unix_s, 0);
    let previous = month_start_shifted(now_unix_s, -1);
    let same = (previous + (end - month)).min(month);
    OverviewRanges {
        last_hour: (end - HOUR_S, end),
        this_month: (month, end),
        last_month_same_elapsed: (previous, same),
        last_month: (previous, month),
    }
}

/// Relative change of `current` against `previous` (None when previous is 0).
pub fn trend_ratio(current: f64, previous: f64) -> Option<f64> {
    (previous > 0.0).then(|| (current - previous) / previous)
}

/// The handler.
pub async fn handler(
    State(s): State<DashboardState>,
    Extension(principal): Extension<Principal>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, DashboardError> {
    let mut now = (s.clock)();
    let mut filters = Vec::new();
    for (key, value) in pairs {
        match key.as_str() {
            "now" => now = parse_instant(&value).map_err(|m| bad("now", m))?,
            "from" | "to" | "group_by" | "limit" | "offset" => {
                return Err(bad(&key, "not accepted here; the overview chooses its own ranges"));
            }
            _ => filters.push((key, value)),
        }
    }
    let r = ranges(now);
    // The four ranges in one snapshot, so they agree with each other (and
    // each answer's rows with its total) under concurrent ingest; the
    // retention horizons are taken at the server's clock, not at `now`.
    let mut snapshot = s.engine.snapshot((s.clock)()).await?;
    let outcome = async {
        let hour = last_hour(&mut snapshot, &principal, &filters, r.last_hour).await?;
        let month = period(&mut snapshot, &principal, &filters, r.this_month).await?;
        let same = period(&mut snapshot, &principal, &filters, r.last_month_same_elapsed).await?;
        let last = period(&mut snapshot, &principal, &filters, r.last_month).await?;
        let hourly = hourly_priced(&mut snapshot, &principal, &filters, r.this_month).await?;
        Ok::<_, DashboardError>((hour, month, same, last, hourly))
    }
    .await;
    let (hour, month, same, last, (hourly_kwh, all_kwh)) = outcome.map_err(|e| match e {
        // The overview's ranges derive from `now`: that is the parameter to change.
        DashboardError::Query(QueryError::OutsideRetention(e)) => {
            bad("now", format!("the overview's ranges need data retention has dropped: {}", e.message))
        }
        other => other,
    })?;
    snapshot.finish().await?;
    let location = |p: &Option<TotalsResponse>| p.as_ref().map_or(0.0, |t| t.total.location_kg_co2e);
    let trend = trend_ratio(location(&month), location(&same));
    let body = |(from, to): (i64, i64), p: &Option<TotalsResponse>| json!({ "from_unix_s": from, "to_unix_s": to, "totals": p.as_ref().map(totals_json) });
    Ok(Json(json!({
        "now_unix_s": now,
        "last_hour": body(r.last_hour, &hour),
        "this_month": body(r.this_month, &month),
        "last_month_same_elapsed": body(r.last_month_same_elapsed, &same),
        "last_month": body(r.last_month, &last),
        "trend_ratio": trend,
        // The share of this month's energy priced with hourly grid intensity
        // (the rest with annual factors), from the facts' location lineage.
        "this_month_hourly_priced": {
            "energy_kwh": hourly_kwh,
            "of_energy_kwh": all_kwh,
            "share": (all_kwh > 0.0).then(|| hourly_kwh / all_kwh),
        },
    })))
}

/// The last hour from the real-time view (the agents' 5-minute group
/// records), which is complete within one agent cycle; the hourly
/// per-resource records that make the other totals arrive only after the
/// hour.
async fn last_hour(
    snapshot: &mut Snapshot,
    principal: &Principal,
    filters: &[(String, String)],
    (from, to): (i64, i64),
) -> Result<Option<TotalsResponse>, DashboardError> {
    let mut pairs = filters.to_vec();
    pairs.push(("from".into(), from.to_string()));
    pairs.push(("to".into(), to.to_string()));
    let req = parse_totals(&pairs)?;
    Ok(Some(snapshot.realtime_totals_for(principal, &req).await?))
}

/// (energy priced hourly, all energy) of `[from, to)` under `filters`,
/// narrowed to `principal`'s scope.
async fn hourly_priced(
    snapshot: &mut Snapshot,
    principal: &Principal,
    filters: &[(String, String)],
    (from, to): (i64, i64),
) -> Result<(f64, f64), DashboardError> {
    let mut pairs = filters.to_vec();
    pairs.push(("from".into(), from.to_string()));
    pairs.push(("to".into(), to.to_string()));
    let req = parse_totals(&pairs)?;
    let scoped = crate::query::authz::restrict(&req.filters, &principal.scope).map_err(QueryError::from)?;
    Ok(snapshot.hourly_priced_energy(from, to, &scoped).await?)
}

/// Totals of `[from, to)` under `filters` (None for an empty range).
async fn period(
    snapshot: &mut Snapshot,
    principal: &Principal,
    filters: &[(String, String)],
    (from, to): (i64, i64),
) -> Result<Option<TotalsResponse>, DashboardError> {
    if to <= from {
        return Ok(None);
    }
    let mut pairs = filters.to_vec();
    pairs.push(("from".into(), from.to_string()));
    pairs.push(("to".into(), to.to_string()));
    let req = parse_totals(&pairs)?;
    Ok(Some(snapshot.totals_for(principal, &req).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_the_calendar() {
        // 2026-03-31T10:02:00Z: March started 2026-03-01 (day 20_513), February
        // 2026-02-01 (day 20_485) and has 28 days.
        let march = 20_513 * 86_400;
        let feb = 20_485 * 86_400;
        let now = march + 30 * 86_400 + 10 * 3_600 + 120;
        let r = ranges(now);
        let end = march + 30 * 86_400 + 10 * 3_600 + 300;
        assert_eq!(r.last_hour, (end - 3_600, end));
        assert_eq!(r.this_month, (march, end));
        // 30 days and 10h05 into March is beyond February's 28 days: capped.
        assert_eq!(r.last_month_same_elapsed, (feb, march));
        assert_eq!(r.last_month, (feb, march));
        let early = ranges(march + 86_400);
        assert_eq!(early.last_month_same_elapsed, (feb, feb + 86_400 + 300));
    }

    #[test]
    fn trend_is_relative_and_undefined_without_a_baseline() {
        assert_eq!(trend_ratio(150.0, 100.0), Some(0.5));
        assert_eq!(trend_ratio(50.0, 200.0), Some(-0.75));
        assert_eq!(trend_ratio(5.0, 0.0), None);
    }
}
