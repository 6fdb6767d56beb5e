//! Forecasting and anomaly detection on plain numeric series of emissions
//! (gCO2e per UTC day or per UTC hour).
//!
//! This crate owns the statistics behind issue 17's forecasts, budget
//! exhaustion dates and anomaly alerts: [`forecast`] (daily forecast with
//! 80 % and 95 % intervals to a given end day and at least 12 months ahead,
//! and the day the cumulative forecast crosses a budget, with its interval),
//! [`anomaly`] (hourly and daily anomaly episodes on the residual after
//! seasonality, robust median/MAD scale, minimum absolute size, level shifts
//! absorbed after one alert), the deterministic history simulator with
//! planted anomalies and their ground truth ([`sim`]) and the backtests that
//! measure all of it ([`backtest`], run by the `canopy-forecast-bench`
//! binary). **It never does I/O, never touches the database and never
//! spawns threads or tasks**: series arrive as slices of numbers and results
//! leave as values; the caller (the aggregator's alert evaluator) reads the
//! history and stores what it decides. The method is written down in
//! `forecast/README.md` and in the module headers.
//!
//! The `augurs` crates (MSTL, ETS) were evaluated and not used: see the
//! README ("Why not augurs").

pub mod anomaly;
pub mod backtest;
pub mod forecast;
pub mod robust;
pub mod seasonal;
pub mod sim;

pub use anomaly::{Anomaly, AnomalyConfig, AnomalyKind, Direction, Resolution, detect};
pub use forecast::{DailyForecast, Exhaustion, ForecastConfig, forecast_daily};

/// Errors of this crate: bad input, named.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Fewer points than the method needs.
    #[error("not enough history: {needed} points needed, {got} given")]
    NotEnoughHistory { needed: usize, got: usize },
    /// A value that is not a finite, non-negative number.
    #[error("value at index {index} is {value}: expected a finite number >= 0 (gCO2e)")]
    BadValue { index: usize, value: f64 },
    /// A parameter outside its range.
    #[error("parameter {name} is {value}: {expected}")]
    BadParameter { name: &'static str, value: String, expected: &'static str },
}

/// Checks that every value is finite and non-negative.
pub(crate) fn check_values(values: &[f64]) -> Result<(), Error> {
    match values.iter().position(|v| !v.is_finite() || *v < 0.0) {
        Some(index) => Err(Error::BadValue { index, value: values[index] }),
        None => Ok(()),
    }
}
