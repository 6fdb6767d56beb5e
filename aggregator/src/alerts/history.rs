//! The burn history of budgets (issue 17 §1, "history"; migration 0028):
//! one row per budget and UTC day holding that day's last evaluation (the
//! period's actual gCO2e to date, burn rates, period, amount) and the day's
//! highest burn rates. This module owns writing those rows (upserted in the
//! evaluator's round transaction, beside `budget_status`), pruning the days
//! past the configured retention (in the same transaction), and reading a
//! budget's days for the HTTP and gRPC APIs. The table is bounded: at most
//! budgets × retention days rows (50,000 budgets × 400 days = 20 million).
//! It never decides an alert, never reads the rollups, and never checks who
//! may read a budget: callers apply [`super::access`] first.

use serde_json::{Value, json};
use sqlx::{PgPool, Postgres, Row, Transaction};

use super::FieldError;
use super::evaluate::BudgetBurn;
use crate::time::DAY_S;

/// Default days of history kept (13 months and a bit: a year-over-year view).
pub const DEFAULT_RETENTION_DAYS: u32 = 400;
/// Longest retention accepted (ten years).
pub const MAX_RETENTION_DAYS: u32 = 3_660;

/// One budget's day.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryDay {
    /// Budget id.
    pub budget_id: i64,
    /// The UTC day, as Unix seconds of its midnight.
    pub day_start_unix_s: i64,
    /// The day's last evaluation.
    pub evaluated_unix_s: i64,
    /// Period of that evaluation.
    pub period_start_unix_s: i64,
    /// Period end (exclusive).
    pub period_end_unix_s: i64,
    /// Emissions of the period up to that evaluation, gCO2e.
    pub actual_g_co2e: f64,
    /// The budget's amount then, gCO2e.
    pub budget_g_co2e: f64,
    /// Last hour's rate over the even rate, at the day's last evaluation.
    pub burn_rate_1h: f64,
    /// Last 24 hours' rate over the even rate, at the day's last evaluation.
    pub burn_rate_24h: f64,
    /// Highest 1-hour burn rate of the day's evaluations.
    pub max_burn_rate_1h: f64,
    /// Highest 24-hour burn rate of the day's evaluations.
    pub max_burn_rate_24h: f64,
    /// Rounds that evaluated the budget that day.
    pub evaluations: i32,
}

/// The UTC day number (days since 1970-01-01) of an instant.
pub fn day_number(unix_s: i64) -> i32 {
    unix_s.div_euclid(DAY_S) as i32
}

/// Upserts the day's row of every budget in `burns`, evaluated at
/// `now_unix_s`. Budgets deleted since the round read them are skipped.
pub async fn write(
    tx: &mut Transaction<'_, Postgres>,
    burns: &[BudgetBurn],
    now_unix_s: i64,
) -> Result<(), sqlx::Error> {
    for chunk in burns.chunks(10_000) {
        let amounts: Vec<f64> = chunk.iter().map(|b| b.budget_g_co2e).collect();
        let ids: Vec<i64> = chunk.iter().map(|b| b.budget_id).collect();
        let starts: Vec<f64> = chunk.iter().map(|b| b.period_start_unix_s as f64).collect();
        let ends: Vec<f64> = chunk.iter().map(|b| b.period_end_unix_s as f64).collect();
        let actual: Vec<f64> = chunk.iter().map(|b| b.actual_g_co2e).collect();
        let r1: Vec<f64> = chunk.iter().map(|b| b.burn_rate_1h).collect();
        let r24: Vec<f64> = chunk.iter().map(|b| b.burn_rate_24h).collect();
        // The day is computed here from Unix seconds, never from the
        // session's time zone.
        sqlx::query(
            "INSERT INTO budget_burn_history (budget_id, day_utc, evaluated_at, period_start, period_end, actual_g_co2e,
                 budget_g_co2e, burn_rate_1h, burn_rate_24h, max_burn_rate_1h, max_burn_rate_24h, evaluations)
             SELECT u.id, DATE '1970-01-01' + $8::int, to_timestamp($9), to_timestamp(u.s), to_timestamp(u.e), u.a,
                    u.b, u.r1, u.r24, u.r1, u.r24, 1
             FROM unnest($1::bigint[], $2::float8[], $3::float8[], $4::float8[], $5::float8[], $6::float8[],
                         $7::float8[]) AS u(id, s, e, a, b, r1, r24)
             WHERE EXISTS (SELECT 1 FROM budgets WHERE budget_id = u.id)
             ON CONFLICT (budget_id, day_utc) DO UPDATE SET evaluated_at = EXCLUDED.evaluated_at,
                 period_start = EXCLUDED.period_start, period_end = EXCLUDED.period_end,
                 actual_g_co2e = EXCLUDED.actual_g_co2e, budget_g_co2e = EXCLUDED.budget_g_co2e,
                 burn_rate_1h = EXCLUDED.burn_rate_1h, burn_rate_24h = EXCLUDED.burn_rate_24h,
                 max_burn_rate_1h = greatest(budget_burn_history.max_burn_rate_1h, EXCLUDED.burn_rate_1h),
                 max_burn_rate_24h = greatest(budget_burn_history.max_burn_rate_24h, EXCLUDED.burn_rate_24h),
                 evaluations = budget_burn_history.evaluations + 1",
        )
        .bind(&ids)
        .bind(&starts)
        .bind(&ends)
        .bind(&actual)
        .bind(&amounts)
        .bind(&r1)
        .bind(&r24)
        .bind(day_number(now_unix_s))
        .bind(now_unix_s as f64)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Deletes the days before `now`'s UTC day minus `retention_days`; returns
/// how many rows.
pub async fn prune(
    tx: &mut Transaction<'_, Postgres>,
    now_unix_s: i64,
    retention_days: u32,
) -> Result<u64, sqlx::Error> {
    let cutoff = day_number(now_unix_s) - retention_days as i32;
    Ok(sqlx::query("DELETE FROM budget_burn_history WHERE day_utc < DATE '1970-01-01' + $1::int")
        .bind(cutoff)
        .execute(&mut **tx)
        .await?
        .rows_affected())
}

/// The days of `budget_id` overlapping `[from_unix_s, to_unix_s)`, oldest first.
pub async fn read(
    pool: &PgPool,
    budget_id: i64,
    from_unix_s: i64,
    to_unix_s: i64,
) -> Result<Vec<HistoryDay>, sqlx::Error> {
    // Day d covers [d, d + 1 day): it overlaps when d*86400 < to and (d+1)*86400 > from.
    let first = day_number(from_unix_s);
    let last_exclusive = (to_unix_s + DAY_S - 1).div_euclid(DAY_S) as i32;
    let rows = sqlx::query(
        "SELECT budget_id, (day_utc - DATE '1970-01-01')::bigint * 86400 AS day_s,
                extract(epoch FROM evaluated_at)::bigint AS ev, extract(epoch FROM period_start)::bigint AS ps,
                extract(epoch FROM period_end)::bigint AS pe, actual_g_co2e, budget_g_co2e, burn_rate_1h, burn_rate_24h,
                max_burn_rate_1h, max_burn_rate_24h, evaluations
         FROM budget_burn_history
         WHERE budget_id = $1 AND day_utc >= DATE '1970-01-01' + $2::int AND day_utc < DATE '1970-01-01' + $3::int
         ORDER BY day_utc",
    )
    .bind(budget_id)
    .bind(first)
    .bind(last_exclusive)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(HistoryDay {
                budget_id: r.try_get("budget_id")?,
                day_start_unix_s: r.try_get("day_s")?,
                evaluated_unix_s: r.try_get("ev")?,
                period_start_unix_s: r.try_get("ps")?,
                period_end_unix_s: r.try_get("pe")?,
                actual_g_co2e: r.try_get("actual_g_co2e")?,
                budget_g_co2e: r.try_get("budget_g_co2e")?,
                burn_rate_1h: r.try_get("burn_rate_1h")?,
                burn_rate_24h: r.try_get("burn_rate_24h")?,
                max_burn_rate_1h: r.try_get("max_burn_rate_1h")?,
                max_burn_rate_24h: r.try_get("max_burn_rate_24h")?,
                evaluations: r.try_get("evaluations")?,
            })
        })
        .collect()
}

/// The range of a history request: `from` and `to` as Unix seconds,
/// `YYYY-MM-DD` (UTC midnight) or `YYYY-MM-DDTHH:MM:SSZ`. Defaults: `to`
/// the end of today (UTC), `from` `retention_days` before `to`.
pub fn parse_range(
    from: Option<&str>,
    to: Option<&str>,
    now_unix_s: i64,
    retention_days: u32,
) -> Result<(i64, i64), FieldError> {
    let parse =
        |field: &str, text: &str| crate::query::params::parse_instant(text).map_err(|e| FieldError::new(field, e));
    let to_s = match to {
        Some(t) => parse("to", t)?,
        None => (day_number(now_unix_s) as i64 + 1) * DAY_S,
    };
    let from_s = match from {
        Some(f) => parse("from", f)?,
        None => to_s - retention_days as i64 * DAY_S,
    };
    check_range(from_s, to_s)?;
    Ok((from_s, to_s))
}

/// Checks a range given as numbers (the gRPC request's).
pub fn check_range(from_unix_s: i64, to_unix_s: i64) -> Result<(), FieldError> {
    if from_unix_s < 0 {
        return Err(FieldError::new(
            "from",
            format!("expected an instant at or after 1970-01-01, found {from_unix_s}"),
        ));
    }
    if to_unix_s <= from_unix_s {
        return Err(FieldError::new(
            "to",
            format!("expected an instant after from ({from_unix_s}), found {to_unix_s}"),
        ));
    }
    Ok(())
}

/// `YYYY-MM-DD` of the UTC day holding `unix_s`.
pub fn iso_day(unix_s: i64) -> String {
    let (y, m, d) = crate::time::civil_from_days(unix_s.div_euclid(DAY_S));
    format!("{y:04}-{m:02}-{d:02}")
}

/// The API's JSON of one day (kgCO2e, like the other budget replies).
pub fn day_json(d: &HistoryDay) -> Value {
    json!({
        "day": iso_day(d.day_start_unix_s),
        "day_start_unix_s": d.day_start_unix_s,
        "evaluated_unix_s": d.evaluated_unix_s,
        "period_start_unix_s": d.period_start_unix_s,
        "period_end_unix_s": d.period_end_unix_s,
        "actual_kg_co2e": d.actual_g_co2e / 1_000.0,
        "budget_kg_co2e": d.budget_g_co2e / 1_000.0,
        "percent_of_budget": d.actual_g_co2e / d.budget_g_co2e * 100.0,
        "burn_rate_1h": d.burn_rate_1h,
        "burn_rate_24h": d.burn_rate_24h,
        "max_burn_rate_1h": d.max_burn_rate_1h,
        "max_burn_rate_24h": d.max_burn_rate_24h,
        "evaluations": d.evaluations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_default_to_the_retention_and_name_the_bad_parameter() {
        let now = 1_796_601_600 + 3_600; // 2026-12-07T01:00Z
        let today_end = 1_796_601_600 + DAY_S;
        assert_eq!(parse_range(None, None, now, 400), Ok((today_end - 400 * DAY_S, today_end)));
        assert_eq!(parse_range(Some("2026-11-01"), Some("2026-12-01"), now, 400), Ok((1_793_491_200, 1_796_083_200)));
        assert_eq!(parse_range(Some("1793491200"), None, now, 400), Ok((1_793_491_200, today_end)));
        let field = |r: Result<(i64, i64), FieldError>| r.unwrap_err().field;
        assert_eq!(field(parse_range(Some("yesterday"), None, now, 400)), "from");
        assert_eq!(field(parse_range(None, Some("2026-13-01"), now, 400)), "to");
        assert_eq!(field(parse_range(Some("2026-12-01"), Some("2026-11-01"), now, 400)), "to");
        assert_eq!(field(parse_range(Some("2026-12-01"), Some("2026-12-01"), now, 400)), "to");
        assert_eq!(check_range(-1, 10).unwrap_err().field, "from");
    }

    #[test]
    fn days_are_utc_days() {
        assert_eq!(day_number(0), 0);
        assert_eq!(day_number(86_399), 0);
        assert_eq!(day_number(86_400), 1);
        assert_eq!(day_number(-1), -1);
        assert_eq!(day_number(1_796_601_600), 20_794); // 2026-12-07
        assert_eq!(iso_day(1_796_601_600 + 86_399), "2026-12-07");
    }
}
