//! Forecasts and anomaly detection wired into the running aggregator
//! (issue 17 §2 and §3), on top of the pure `canopy-forecast` crate.
//!
//! This module owns reading history for forecasting (complete UTC days from
//! the daily rollups, complete UTC hours from the hourly rollups), running
//! `canopy-forecast` on it, the in-memory cache of the results that the
//! alert evaluator reads through [`crate::alerts::evaluate::ForecastSource`]
//! and [`crate::alerts::evaluate::AnomalySource`], the periodic refresh that
//! keeps the cache and the `forecast_points` table (migration 0027) up to
//! date ([`refresh`]), and the `/v1/forecast` answer shared by HTTP and
//! gRPC ([`api`]). **It never decides an alert (the evaluator does), never
//! writes a fact or a rollup, and never passes the current, still-filling
//! day or hour to the forecaster or the detector** (the crate's caller
//! rules: complete periods only, and an anomaly window anchored to a Monday
//! 00:00 UTC that moves once a week, so an episode keeps its start from one
//! refresh to the next).
//!
//! - [`refresh`]: history read in bulk, the series computed per scope, the
//!   cache, the stored table and the refresh loop.
//! - [`api`]: `GET /v1/forecast` and the gRPC `Forecast` method's answer,
//!   computed on request within the caller's scope.
//! - [`metrics`]: Prometheus counters of the refresh loop.

pub mod api;
pub mod metrics;
pub mod refresh;

use std::time::Duration;

use canopy_forecast::forecast::FittedModel;
use canopy_forecast::{DailyForecast, ForecastConfig, forecast_daily};

use crate::alerts::FieldError;
use crate::alerts::basis::{Basis, BasisColumn};
use crate::alerts::budgets::Scope;

pub use refresh::{Forecasts, Refresher};

/// Days of daily history read per forecast: 53 weeks (the forecaster fits
/// on the last 365 days and estimates its weekday indices and drift over the
/// last 26 weeks). The same for the refresher and the API, so the stored
/// forecast and the endpoint's agree.
pub const HISTORY_DAYS: i64 = 371;

/// Seconds in a UTC day.
pub const DAY_S: i64 = 86_400;

/// Forecasting configuration of `serve`, validated at start-up.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastingConfig {
    /// Time between refreshes of the forecasts and anomalies.
    pub refresh_interval: Duration,
    /// Smallest |actual − expected| of an hourly anomaly point, gCO2e (so
    /// tiny teams don't page anyone).
    pub anomaly_min_hourly_g_co2e: f64,
    /// Smallest |actual − expected| of a daily anomaly point, gCO2e.
    pub anomaly_min_daily_g_co2e: f64,
    /// How long an anomaly episode stays open after its last outlying
    /// point (an ongoing episode is always open).
    pub anomaly_hold: Duration,
}

impl Default for ForecastingConfig {
    fn default() -> Self {
        ForecastingConfig {
            refresh_interval: Duration::from_secs(300),
            anomaly_min_hourly_g_co2e: 100.0,
            anomaly_min_daily_g_co2e: 1_000.0,
            anomaly_hold: Duration::from_secs(6 * 3_600),
        }
    }
}

impl ForecastingConfig {
    /// Checks the values, naming the first wrong one.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.refresh_interval < Duration::from_secs(10)
            || self.refresh_interval > Duration::from_secs(86_400)
        {
            return Err(FieldError::new(
                "forecast_refresh_interval_s",
                format!(
                    "expected 10 to 86400 seconds, found {}",
                    self.refresh_interval.as_secs()
                ),
            ));
        }
        for (field, v) in [
            ("anomaly_min_hourly_g_co2e", self.anomaly_min_hourly_g_co2e),
            ("anomaly_min_daily_g_co2e", self.anomaly_min_daily_g_co2e),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(FieldError::new(
                    field,
                    format!("expected a finite number >= 0, found {v}"),
                ));
            }
        }
        if self.anomaly_hold > Duration::from_secs(7 * 86_400) {
            return Err(FieldError::new(
                "anomaly_hold_s",
                format!(
                    "expected at most 604800 seconds, found {}",
                    self.anomaly_hold.as_secs()
                ),
            ));
        }
        Ok(())
    }
}

/// The text key of a scope in the cache and in `forecast_points`: `org`,
/// or the set fields in the order OU, account, team, service, joined by
/// `;` (`ou=ou-ab12`, `account=123456789012;team=web`).
pub fn scope_key(scope: &Scope) -> String {
    let parts: Vec<String> = [
        ("ou", &scope.ou_id),
        ("account", &scope.account_id),
        ("team", &scope.team),
        ("service", &scope.service),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
    .collect();
    if parts.is_empty() {
        "org".to_owned()
    } else {
        parts.join(";")
    }
}

/// The basis a rollup column measures (the inverse of
/// [`crate::alerts::basis::basis_column`]).
pub fn basis_of(column: BasisColumn) -> Basis {
    match column {
        BasisColumn::LocationTotal => Basis::Location,
        BasisColumn::MarketTotal => Basis::Market,
        BasisColumn::LocationOperational => Basis::LocationOperational,
        BasisColumn::MarketOperational => Basis::MarketOperational,
    }
}

/// The model's name as stored and served.
pub fn model_name(m: &FittedModel) -> String {
    format!(
        "canopy-forecast: ETS(A,Ad,N) + Theil-Sen drift on weekday-adjusted {} values",
        if m.log_scale { "log" } else { "raw" }
    )
}

/// The history a forecast starts from: the days from the first one with
/// emissions (days before a scope's first data are not a drop to zero).
pub fn trim_history(first_day_unix_s: i64, values_g_co2e: &[f64]) -> (i64, &[f64]) {
    match values_g_co2e.iter().position(|v| *v > 0.0) {
        Some(i) => (first_day_unix_s + i as i64 * DAY_S, &values_g_co2e[i..]),
        None => (first_day_unix_s + values_g_co2e.len() as i64 * DAY_S, &[]),
    }
}

/// The forecast of a daily history (complete UTC days, the first starting
/// at `first_day_unix_s`), through 12 months after its last day: the one
/// computation behind the stored forecasts, the evaluator's and the API's.
pub fn forecast_history(
    first_day_unix_s: i64,
    values_g_co2e: &[f64],
) -> Result<DailyForecast, canopy_forecast::Error> {
    let (first, values) = trim_history(first_day_unix_s, values_g_co2e);
    forecast_daily(first, values, 0, &ForecastConfig::default())
}

/// Monday 00:00 UTC on or before `t_unix_s` (1970-01-01 was a Thursday).
pub fn monday_on_or_before(t_unix_s: i64) -> i64 {
    let day = t_unix_s.div_euclid(DAY_S);
    (day - (day + 3).rem_euclid(7)) * DAY_S
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_keys_are_canonical() {
        assert_eq!(scope_key(&Scope::default()), "org");
        let s = Scope {
            team: Some("web".into()),
            account_id: Some("123456789012".into()),
            ..Scope::default()
        };
        assert_eq!(scope_key(&s), "account=123456789012;team=web");
        let s = Scope {
            ou_id: Some("ou-a".into()),
            service: Some("AmazonEC2".into()),
            ..Scope::default()
        };
        assert_eq!(scope_key(&s), "ou=ou-a;service=AmazonEC2");
    }

    #[test]
    fn mondays_and_trimmed_history() {
        // 2026-12-07 is a Monday.
        let monday = 20_794 * DAY_S;
        assert_eq!(monday_on_or_before(monday), monday);
        assert_eq!(monday_on_or_before(monday + 6 * DAY_S + 86_399), monday);
        assert_eq!(monday_on_or_before(monday - 1), monday - 7 * DAY_S);
        let v = [0.0, 0.0, 5.0, 0.0, 7.0];
        assert_eq!(trim_history(0, &v), (2 * DAY_S, &v[2..]));
        assert_eq!(trim_history(0, &[0.0, 0.0]).1.len(), 0);
    }

    #[test]
    fn config_errors_name_the_field() {
        assert!(ForecastingConfig::default().validate().is_ok());
        let bad = ForecastingConfig {
            refresh_interval: Duration::from_secs(1),
            ..ForecastingConfig::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().field,
            "forecast_refresh_interval_s"
        );
        let bad = ForecastingConfig {
            anomaly_min_hourly_g_co2e: -1.0,
            ..ForecastingConfig::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().field,
            "anomaly_min_hourly_g_co2e"
        );
    }
}
