//! Measurements of the forecaster and the detector on simulated history
//! ([`crate::sim`]): rolling-origin forecast backtests (MASE against the
//! 7-day seasonal naive method, interval coverage), recall on planted
//! anomalies and false alerts on clean history. The `canopy-forecast-bench`
//! binary prints them; a small configuration runs as a unit test.

use canopy_emissions::time::SECONDS_PER_DAY;

use crate::anomaly::{AnomalyConfig, detect};
use crate::forecast::{ForecastConfig, forecast_daily};
use crate::sim::{PlantedKind, Profile, Scope, SimConfig, SimHistory, TEAMS, daily_from_hourly};

/// Rolling-origin settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BacktestConfig {
    /// First origin: days of history before the first forecast.
    pub first_origin_days: usize,
    /// Days between origins.
    pub origin_step_days: usize,
}

impl Default for BacktestConfig {
    fn default() -> BacktestConfig {
        BacktestConfig { first_origin_days: 91, origin_step_days: 7 }
    }
}

/// Accuracy over one horizon (days 1..=h after each origin).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HorizonScore {
    pub horizon_days: usize,
    /// Mean over (series, origin) of MAE / in-sample MAE of the 7-day
    /// seasonal naive method (Hyndman & Koehler's MASE).
    pub mase: f64,
    /// The same scaled error of the seasonal naive forecast itself (last
    /// observed week repeated), for comparison.
    pub mase_seasonal_naive: f64,
    /// Share of actual days inside the 80 % and 95 % intervals.
    pub coverage80: f64,
    pub coverage95: f64,
}

/// A backtest's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastBacktest {
    pub series: usize,
    pub forecasts: usize,
    pub scores: Vec<HorizonScore>,
}

#[derive(Default)]
struct Acc {
    mase: f64,
    naive: f64,
    in80: usize,
    in95: usize,
    days: usize,
    n: usize,
}

/// Rolling-origin backtest of [`forecast_daily`] on the daily series of
/// `series` (each `(first_day_unix_s, values)`), at `horizons` (days).
pub fn forecast_backtest(series: &[(i64, Vec<f64>)], horizons: &[usize], config: &BacktestConfig) -> ForecastBacktest {
    let max_h = horizons.iter().copied().max().unwrap_or(1);
    let mut acc: Vec<Acc> = horizons.iter().map(|_| Acc::default()).collect();
    let mut forecasts = 0;
    let fc = ForecastConfig::default();
    for (first_day, values) in series {
        let mut origin = config.first_origin_days;
        while origin + max_h <= values.len() {
            let history = &values[..origin];
            let scale = seasonal_naive_scale(history);
            if scale > 0.0
                && let Ok(f) = forecast_daily(*first_day, history, first_day + origin as i64 * SECONDS_PER_DAY, &fc)
            {
                forecasts += 1;
                for (a, &h) in acc.iter_mut().zip(horizons) {
                    let (mut err, mut naive_err) = (0.0, 0.0);
                    for d in 0..h {
                        let actual = values[origin + d];
                        err += (f.point_g_co2e[d] - actual).abs();
                        naive_err += (history[origin - 7 + d % 7] - actual).abs();
                        a.in80 += usize::from(f.lower80_g_co2e[d] <= actual && actual <= f.upper80_g_co2e[d]);
                        a.in95 += usize::from(f.lower95_g_co2e[d] <= actual && actual <= f.upper95_g_co2e[d]);
                    }
                    a.mase += err / h as f64 / scale;
                    a.naive += naive_err / h as f64 / scale;
                    a.days += h;
                    a.n += 1;
                }
            }
            origin += config.origin_step_days;
        }
    }
    let scores = acc
        .iter()
        .zip(horizons)
        .map(|(a, &h)| {
            let n = a.n.max(1) as f64;
            let days = a.days.max(1) as f64;
            HorizonScore {
                horizon_days: h,
                mase: a.mase / n,
                mase_seasonal_naive: a.naive / n,
                coverage80: a.in80 as f64 / days,
                coverage95: a.in95 as f64 / days,
            }
        })
        .collect();
    ForecastBacktest { series: series.len(), forecasts, scores }
}

/// The MASE scale of Hyndman & Koehler (2006) for a 7-day season: the
/// in-sample mean absolute error of the seasonal naive forecast,
/// `Σ_{t≥7} |y_t − y_{t−7}| / (n − 7)`.
pub fn seasonal_naive_scale(history: &[f64]) -> f64 {
    if history.len() <= 7 {
        return 0.0;
    }
    history.windows(8).map(|w| (w[7] - w[0]).abs()).sum::<f64>() / (history.len() - 7) as f64
}

/// MASE of the **oracle** on the simulator's series: the forecast that
/// knows each component's size, growth, load shape and the churn in force
/// at the origin, and misses only what no method can know (the future churn
/// steps, the day-to-day variation and the noise). The same origins, horizons
/// and scale as [`forecast_backtest`]; a floor for any forecaster's MASE.
pub fn oracle_mase_sim(
    seeds: &[u64],
    accounts: u32,
    days: u32,
    profile: Option<Profile>,
    horizons: &[usize],
    config: &BacktestConfig,
) -> Vec<f64> {
    let max_h = horizons.iter().copied().max().unwrap_or(1);
    let (mut sums, mut n) = (vec![0.0; horizons.len()], 0usize);
    for &seed in seeds {
        let history = SimHistory::generate(&SimConfig { seed, accounts, days, only_profile: profile, ..SimConfig::default() });
        let mut scopes: Vec<Scope> = (0..TEAMS.len()).map(Scope::Team).collect();
        scopes.extend((0..accounts).map(Scope::Account));
        for scope in scopes {
            let parts: Vec<&crate::sim::Component> = history
                .components
                .iter()
                .filter(|c| match scope {
                    Scope::Team(t) => c.team == t,
                    Scope::Account(a) => c.account == a,
                    Scope::AccountService(a, s) => c.account == a && c.service == s,
                })
                .collect();
            let values = daily_from_hourly(&history.hourly(scope));
            if !values.iter().any(|v| *v > 0.0) {
                continue;
            }
            let expected: Vec<Vec<f64>> = parts.iter().map(|c| daily_from_hourly(&c.expected_g_co2e)).collect();
            let mut origin = config.first_origin_days;
            while origin + max_h <= values.len() {
                let scale = seasonal_naive_scale(&values[..origin]);
                if scale > 0.0 {
                    n += 1;
                    let churn: Vec<f64> = parts.iter().map(|c| c.churn[origin * 24 - 1]).collect();
                    for (sum, &h) in sums.iter_mut().zip(horizons) {
                        let err: f64 = (0..h)
                            .map(|d| {
                                let oracle: f64 = expected.iter().zip(&churn).map(|(e, k)| e[origin + d] * k).sum();
                                (oracle - values[origin + d]).abs()
                            })
                            .sum();
                        *sum += err / h as f64 / scale;
                    }
                }
                origin += config.origin_step_days;
            }
        }
    }
    sums.iter().map(|s| s / n.max(1) as f64).collect()
}

/// Daily team and account series of a simulated history.
pub fn daily_series(history: &SimHistory) -> Vec<(i64, Vec<f64>)> {
    let start = history.config.start_unix_s;
    let mut out: Vec<(i64, Vec<f64>)> =
        (0..TEAMS.len()).map(|t| (start, daily_from_hourly(&history.hourly(Scope::Team(t))))).collect();
    out.extend((0..history.config.accounts).map(|a| (start, daily_from_hourly(&history.hourly(Scope::Account(a))))));
    out.retain(|(_, v)| v.iter().any(|x| *x > 0.0));
    out
}

/// Forecast backtest over `seeds` of the simulator with `profile` (None: the
/// realistic mix).
pub fn forecast_backtest_sim(
    seeds: &[u64],
    accounts: u32,
    days: u32,
    profile: Option<Profile>,
    horizons: &[usize],
    config: &BacktestConfig,
) -> ForecastBacktest {
    let mut series = Vec::new();
    for &seed in seeds {
        let history = SimHistory::generate(&SimConfig { seed, accounts, days, only_profile: profile, ..SimConfig::default() });
        series.extend(daily_series(&history));
    }
    forecast_backtest(&series, horizons, config)
}

/// Recall on planted anomalies.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recall {
    pub planted: usize,
    /// Found by the hourly detector, the daily one, either.
    pub hourly: usize,
    pub daily: usize,
    pub either: usize,
    /// (kind, planted, found by either).
    pub by_kind: Vec<(PlantedKind, usize, usize)>,
}

/// False alerts on clean history.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FalseAlerts {
    pub scope: &'static str,
    /// Series-months after the detectors' warm-up.
    pub series_months: f64,
    pub hourly_alerts: usize,
    pub daily_alerts: usize,
}

impl FalseAlerts {
    /// Alerts (hourly + daily) per series-month.
    pub fn per_series_month(&self) -> f64 {
        (self.hourly_alerts + self.daily_alerts) as f64 / self.series_months.max(1e-9)
    }
}

/// Detector settings of the benchmark: the defaults with a minimum size of
/// 100 g an hour and 1 kg a day.
pub fn bench_configs() -> (AnomalyConfig, AnomalyConfig) {
    (AnomalyConfig::hourly(100.0), AnomalyConfig::daily(1_000.0))
}

/// Recall of the detectors on the planted anomalies of `seeds`: a planted
/// anomaly is found when an episode reported on its scope's series starts
/// within its span (hourly: up to 6 hours after it ends; daily: its days and
/// the day after).
pub fn recall(seeds: &[u64], accounts: u32, days: u32) -> Recall {
    let (hourly_config, daily_config) = bench_configs();
    let mut r = Recall::default();
    let mut kinds: std::collections::BTreeMap<PlantedKind, (usize, usize)> = Default::default();
    for &seed in seeds {
        let history = SimHistory::generate(&SimConfig { seed, accounts, days, planted: true, ..SimConfig::default() });
        let start = history.config.start_unix_s;
        for p in &history.planted {
            let hourly = history.hourly(p.scope);
            let daily = daily_from_hourly(&hourly);
            let found_hourly = detect(&hourly, start, &hourly_config).unwrap_or_default().iter().any(|a| {
                a.start_index + 1 >= p.start_hour && a.start_index < p.end_hour + 6
            });
            let (first_day, last_day) = (p.start_hour / 24, p.end_hour.div_ceil(24));
            let found_daily = detect(&daily, start, &daily_config)
                .unwrap_or_default()
                .iter()
                .any(|a| a.start_index >= first_day && a.start_index <= last_day);
            r.planted += 1;
            r.hourly += usize::from(found_hourly);
            r.daily += usize::from(found_daily);
            r.either += usize::from(found_hourly || found_daily);
            let k = kinds.entry(p.kind).or_default();
            k.0 += 1;
            k.1 += usize::from(found_hourly || found_daily);
        }
    }
    r.by_kind = kinds.into_iter().map(|(k, (n, f))| (k, n, f)).collect();
    r
}

/// False alerts of the detectors on clean history of `seeds`, per scope
/// (teams, accounts, account services).
pub fn false_alerts(seeds: &[u64], accounts: u32, days: u32) -> Vec<FalseAlerts> {
    let (hourly_config, daily_config) = bench_configs();
    let mut out = vec![
        FalseAlerts { scope: "team", ..Default::default() },
        FalseAlerts { scope: "account", ..Default::default() },
        FalseAlerts { scope: "account-service", ..Default::default() },
    ];
    for &seed in seeds {
        let history = SimHistory::generate(&SimConfig { seed, accounts, days, ..SimConfig::default() });
        let start = history.config.start_unix_s;
        let mut scopes: Vec<(usize, Scope)> = (0..TEAMS.len()).map(|t| (0, Scope::Team(t))).collect();
        scopes.extend((0..accounts).map(|a| (1, Scope::Account(a))));
        scopes.extend(history.account_services().into_iter().map(|(a, s)| (2, Scope::AccountService(a, s))));
        for (slot, scope) in scopes {
            let hourly = history.hourly(scope);
            let daily = daily_from_hourly(&hourly);
            let f = &mut out[slot];
            // Months judged: after the longer warm-up (the daily one, 4 weeks).
            let judged_days = daily.len().saturating_sub(daily_config.warmup_points());
            f.series_months += judged_days as f64 / (365.25 / 12.0);
            let warm_hour = daily_config.warmup_points() * 24;
            f.hourly_alerts += detect(&hourly, start, &hourly_config)
                .unwrap_or_default()
                .iter()
                .filter(|a| a.start_index >= warm_hour)
                .count();
            f.daily_alerts += detect(&daily, start, &daily_config).unwrap_or_default().len();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CI-sized smoke run of the benchmark: one seed, a few accounts,
    /// the same code path as `canopy-forecast-bench`.
    #[test]
    fn smoke_backtest_meets_the_targets_on_a_small_run() {
        let b = forecast_backtest_sim(&[11], 6, 240, None, &[7, 30], &BacktestConfig { first_origin_days: 91, origin_step_days: 14 });
        assert_eq!(b.series, 12);
        assert!(b.forecasts >= 100, "{b:?}");
        // 7 days: MASE below 1 (0.76–0.88 on seeds 1–16 of this size);
        // 30 days: better than seasonal naive and below 1.05 (0.87–1.001 on
        // seeds 1–16: a 12-series run is too small for "< 1" to hold on
        // every seed; the full benchmark's figures: README).
        assert!(b.scores[0].mase < 1.0, "{b:?}");
        assert!(b.scores[1].mase < 1.05, "{b:?}");
        for s in &b.scores {
            assert!(s.mase < s.mase_seasonal_naive, "{b:?}");
            assert!((s.coverage80 - 0.8).abs() <= 0.1 && (s.coverage95 - 0.95).abs() <= 0.1, "{b:?}");
        }
        let r = recall(&[11], 12, 240);
        assert!(r.planted >= 6 && r.either as f64 >= 0.8 * r.planted as f64, "{r:?}");
        let f = false_alerts(&[11], 6, 240);
        assert!(f[0].series_months > 40.0 && f[0].per_series_month() <= 0.2, "{f:?}");
    }

    #[test]
    fn the_oracle_is_a_floor_and_the_scale_is_hyndman_koehlers() {
        // Scale: mean |y_t − y_{t−7}| over t = 7..n.
        let y: Vec<f64> = (0..10).map(|i| (i * i) as f64).collect();
        // Differences y_t − y_{t−7} for t = 7, 8, 9: 49, 63, 77.
        assert!((seasonal_naive_scale(&y) - 63.0).abs() < 1e-12);
        assert_eq!(seasonal_naive_scale(&y[..7]), 0.0);
        let config = BacktestConfig { first_origin_days: 91, origin_step_days: 14 };
        for profile in [Some(Profile::Flat), Some(Profile::Growth)] {
            let b = forecast_backtest_sim(&[3], 4, 200, profile, &[7, 30], &config);
            let oracle = oracle_mase_sim(&[3], 4, 200, profile, &[7, 30], &config);
            for (s, o) in b.scores.iter().zip(&oracle) {
                assert!(*o > 0.3 && *o < s.mase, "{profile:?}: oracle {oracle:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn seasonal_naive_on_a_pure_weekly_series_scores_zero() {
        let week = [5.0, 5.0, 5.0, 5.0, 5.0, 1.0, 1.0];
        // A pure weekly pattern: the in-sample scale is 0, so no forecast is scored.
        let values: Vec<f64> = (0..200).map(|i| week[i % 7]).collect();
        let b = forecast_backtest(&[(1_736_121_600, values)], &[7], &BacktestConfig::default());
        assert_eq!(b.forecasts, 0);
        // With a trend the scale is positive and the forecaster beats seasonal naive.
        let values: Vec<f64> = (0..200).map(|i| week[i % 7] * (100.0 + i as f64)).collect();
        let b = forecast_backtest(&[(1_736_121_600, values)], &[7, 30], &BacktestConfig::default());
        assert!(b.forecasts > 10);
        assert!(b.scores[0].mase < 0.2 && b.scores[0].mase_seasonal_naive > 0.9, "{b:?}");
    }
}
