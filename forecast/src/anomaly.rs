//! Anomaly detection on one hourly or daily series, on the residual after
//! seasonality.
//!
//! Method (a robust Holt-Winters-style filter, after Gelper, Fried & Croux,
//! "Robust forecasting with exponential and Holt-Winters smoothing", 2010):
//!
//! 1. **Seasonality**: multiplicative indices of one period (7 days for daily
//!    series, 168 hours, i.e. hour of the week, for hourly ones, so both the
//!    diurnal and the weekly shape are in them), estimated by
//!    [`crate::seasonal::seasonal_indices`] (median of ratios to the centred
//!    moving average) on the last `season_cycles` periods of the *cleaned*
//!    history (anomalous points replaced by what was expected), re-estimated
//!    once per period.
//! 2. **Level and scale**: the deseasonalised value `z = y / S` is followed by
//!    an exponentially weighted level whose updates are clipped at ±2σ
//!    (Huber), and σ by an exponentially weighted mean of |z − level|,
//!    clipped at 3σ and scaled to a normal σ. Both start from the warm-up
//!    (`warmup_cycles` periods): level = median, σ = MAD of first
//!    differences / √2 × 1.4826. σ never goes below 0.5 % of the level.
//! 3. **Decision**: a point is an outlier when |z − level| > `threshold_sigmas`
//!    × σ **and** |y − expected| ≥ `min_abs_g_co2e`, so tiny series page
//!    no one. Outliers do not move level or scale, and consecutive outliers
//!    (gaps up to `merge_gap_points`) form one episode: one [`Anomaly`], one
//!    alert, with a stable identity (the series and `start_unix_s`).
//! 4. **Level shifts**: `shift_after_points` consecutive outliers on the same
//!    side are taken as a new normal (resources added or removed, a region
//!    doubled): the level jumps to the median of the run, the episode closes
//!    as [`AnomalyKind::LevelShift`] (one alert, not one per point), the next
//!    period relearns (no decisions, fast level gain) and seasonality is
//!    re-estimated from the data after the shift.
//!
//! Episodes are reported on the configured [`Direction`]; runs on the other
//! side still count as level shifts, silently. Nothing here keeps state
//! between calls: the caller passes the trailing history (at least
//! `warmup_cycles` periods and one point) and gets every episode in it; the
//! same history gives the same answer.

use canopy_emissions::time::{SECONDS_PER_DAY, SECONDS_PER_HOUR};

use crate::Error;
use crate::robust::{MAD_TO_SIGMA, median, median_in_place};
use crate::seasonal::seasonal_indices;

/// Resolution of a series: one value per UTC hour or per UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Hourly,
    Daily,
}

impl Resolution {
    /// Seconds per point.
    pub fn step_s(self) -> i64 {
        match self {
            Resolution::Hourly => SECONDS_PER_HOUR,
            Resolution::Daily => SECONDS_PER_DAY,
        }
    }

    /// Points per seasonal period (a week).
    pub fn period(self) -> usize {
        match self {
            Resolution::Hourly => 168,
            Resolution::Daily => 7,
        }
    }

    /// Phase (hour of the week, or weekday; 0 = Monday 00:00 UTC) of the
    /// point starting at `unix_s`.
    pub fn phase(self, unix_s: i64) -> usize {
        // 1970-01-01 was a Thursday: Monday 1969-12-29 is 3 days earlier.
        let since_monday = unix_s + 3 * SECONDS_PER_DAY;
        (since_monday.div_euclid(self.step_s()).rem_euclid(self.period() as i64)) as usize
    }
}

/// Which side of the expected value is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// More emissions than expected (the default: what costs carbon).
    Above,
    /// Less than expected (a fleet switched off, missing data).
    Below,
    Both,
}

/// Detector settings; [`AnomalyConfig::daily`] and [`AnomalyConfig::hourly`]
/// are the tuned defaults (see the README's figures).
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyConfig {
    pub resolution: Resolution,
    /// Residual size, in robust σ, above which a point is an outlier.
    pub threshold_sigmas: f64,
    /// Minimum |actual − expected| of an outlier, gCO2e per point.
    pub min_abs_g_co2e: f64,
    pub direction: Direction,
    /// Gain of the level's exponential smoothing (0 < gain ≤ 1).
    pub level_gain: f64,
    /// Gain of the scale's exponential smoothing (0 < gain ≤ 1).
    pub scale_gain: f64,
    /// Consecutive same-side outliers after which the level is re-based.
    pub shift_after_points: usize,
    /// Normal points allowed inside one episode.
    pub merge_gap_points: usize,
    /// Periods of history before the first decision.
    pub warmup_cycles: usize,
    /// Periods used to estimate the seasonal indices.
    pub season_cycles: usize,
}

impl AnomalyConfig {
    /// Daily series: weekday seasonality, 4 weeks of warm-up.
    pub fn daily(min_abs_g_co2e: f64) -> AnomalyConfig {
        AnomalyConfig {
            resolution: Resolution::Daily,
            threshold_sigmas: 4.0,
            min_abs_g_co2e,
            direction: Direction::Above,
            level_gain: 0.2,
            scale_gain: 0.05,
            shift_after_points: 4,
            merge_gap_points: 1,
            warmup_cycles: 4,
            season_cycles: 8,
        }
    }

    /// Hourly series: hour-of-week seasonality, 3 weeks of warm-up.
    pub fn hourly(min_abs_g_co2e: f64) -> AnomalyConfig {
        AnomalyConfig {
            resolution: Resolution::Hourly,
            threshold_sigmas: 5.0,
            min_abs_g_co2e,
            direction: Direction::Above,
            level_gain: 0.05,
            scale_gain: 0.01,
            shift_after_points: 24,
            merge_gap_points: 3,
            warmup_cycles: 3,
            season_cycles: 4,
        }
    }

    /// Points of history needed before the first decision.
    pub fn warmup_points(&self) -> usize {
        self.warmup_cycles * self.resolution.period()
    }

    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |name: &'static str, value: f64, expected: &'static str| {
            Err(Error::BadParameter { name, value: value.to_string(), expected })
        };
        if !(self.threshold_sigmas.is_finite() && self.threshold_sigmas > 0.0) {
            return bad("threshold_sigmas", self.threshold_sigmas, "expected a number > 0");
        }
        if !(self.min_abs_g_co2e.is_finite() && self.min_abs_g_co2e >= 0.0) {
            return bad("min_abs_g_co2e", self.min_abs_g_co2e, "expected a number >= 0");
        }
        for (name, gain) in [("level_gain", self.level_gain), ("scale_gain", self.scale_gain)] {
            if !(gain > 0.0 && gain <= 1.0) {
                return bad(name, gain, "expected 0 < gain <= 1");
            }
        }
        if self.shift_after_points < 2 {
            return bad("shift_after_points", self.shift_after_points as f64, "expected at least 2");
        }
        if self.warmup_cycles < 1 || self.season_cycles < 1 {
            return bad("warmup_cycles", self.warmup_cycles.min(self.season_cycles) as f64, "expected at least 1 (also season_cycles)");
        }
        Ok(())
    }
}

/// What an episode turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnomalyKind {
    /// Outliers that ended (or are still going on, see `ongoing`).
    Spike,
    /// A run long enough to be taken as the new normal; the detector
    /// re-based its level at `end_unix_s`.
    LevelShift,
}

/// One anomaly episode: one alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    /// Start of the first outlying point (the episode's stable identity
    /// within its series).
    pub start_unix_s: i64,
    /// End of the last outlying point (exclusive).
    pub end_unix_s: i64,
    /// Index of the first outlying point in the series given.
    pub start_index: usize,
    /// Index after the last outlying point.
    pub end_index: usize,
    /// Outlying points in the episode.
    pub points: usize,
    /// The point with the largest |score|.
    pub peak_unix_s: i64,
    pub peak_actual_g_co2e: f64,
    pub peak_expected_g_co2e: f64,
    /// (actual − expected) / (σ × seasonal index) at the peak.
    pub peak_score: f64,
    /// Sum of actual − expected over the outlying points, gCO2e.
    pub excess_g_co2e: f64,
    /// The episode reaches the last point given and has not closed.
    pub ongoing: bool,
    /// New level / old level, for a level shift.
    pub shift_ratio: Option<f64>,
}

/// Everything a scan learns about a series: the episodes and the history
/// cleaned of outliers with its level shifts (used by the forecaster).
#[derive(Debug, Clone)]
pub(crate) struct Scan {
    pub anomalies: Vec<Anomaly>,
    /// Values with spike points replaced by their expected values.
    pub cleaned: Vec<f64>,
    /// (index of the first point at the new level, new level / old level).
    pub shifts: Vec<(usize, f64)>,
}

/// Anomaly episodes in `values` (gCO2e per point), whose first point starts
/// at `first_unix_s` (aligned to the resolution's step).
pub fn detect(values: &[f64], first_unix_s: i64, config: &AnomalyConfig) -> Result<Vec<Anomaly>, Error> {
    Ok(scan(values, first_unix_s, config)?.anomalies)
}

struct Episode {
    start: usize,
    last: usize,
    points: usize,
    peak: usize,
    peak_score: f64,
    peak_expected: f64,
    excess: f64,
    reported: bool,
}

pub(crate) fn scan(values: &[f64], first_unix_s: i64, config: &AnomalyConfig) -> Result<Scan, Error> {
    config.validate()?;
    crate::check_values(values)?;
    let step = config.resolution.step_s();
    if first_unix_s.rem_euclid(step) != 0 {
        return Err(Error::BadParameter {
            name: "first_unix_s",
            value: first_unix_s.to_string(),
            expected: "expected the start of a UTC hour (hourly) or day (daily)",
        });
    }
    let p = config.resolution.period();
    let n = values.len();
    let warmup = config.warmup_points();
    if n <= warmup {
        return Err(Error::NotEnoughHistory { needed: warmup + 1, got: n });
    }
    let phase0 = config.resolution.phase(first_unix_s);
    let phase = |i: usize| (phase0 + i) % p;
    let mut cleaned = values.to_vec();
    let mut season = seasonal_indices(&values[..warmup], phase0, p);
    let z_at = |season: &[f64], i: usize| values[i] / season[phase(i)].max(1e-9);
    let mut level = median(&(warmup - p..warmup).map(|i| z_at(&season, i)).collect::<Vec<_>>());
    let mut diffs: Vec<f64> = (1..warmup).map(|i| (z_at(&season, i) - z_at(&season, i - 1)).abs()).collect();
    let mut sigma = median_in_place(&mut diffs) * MAD_TO_SIGMA / std::f64::consts::SQRT_2;
    const SIGMA_FLOOR_OF_LEVEL: f64 = 0.005;
    // E|X| for X ~ N(0, 1) clipped at 3: turns a mean |residual| into σ.
    const MEAN_ABS_TO_SIGMA: f64 = 1.0 / 0.7956;
    let (k, lambda, lambda_s) = (config.threshold_sigmas, config.level_gain, config.scale_gain);

    let mut anomalies = Vec::new();
    let mut shifts = Vec::new();
    let mut episode: Option<Episode> = None;
    let (mut run_len, mut run_sign) = (0usize, 0.0f64);
    let mut relearn_until = 0usize;
    let mut season_origin = 0usize;
    let mut season_pending = false;
    let reportable = |sign: f64| match config.direction {
        Direction::Above => sign > 0.0,
        Direction::Below => sign < 0.0,
        Direction::Both => true,
    };
    let close = |e: Episode, kind: AnomalyKind, ongoing: bool, shift_ratio: Option<f64>, out: &mut Vec<Anomaly>| {
        if !e.reported {
            return;
        }
        out.push(Anomaly {
            kind,
            start_unix_s: first_unix_s + e.start as i64 * step,
            end_unix_s: first_unix_s + (e.last as i64 + 1) * step,
            start_index: e.start,
            end_index: e.last + 1,
            points: e.points,
            peak_unix_s: first_unix_s + e.peak as i64 * step,
            peak_actual_g_co2e: values[e.peak],
            peak_expected_g_co2e: e.peak_expected,
            peak_score: e.peak_score,
            excess_g_co2e: e.excess,
            ongoing,
            shift_ratio,
        });
    };

    for t in warmup..n {
        let boundary = (t - warmup).is_multiple_of(p) && t > warmup;
        if t >= relearn_until && (boundary || season_pending) {
            let from = season_origin.max(t.saturating_sub(config.season_cycles * p));
            if t - from >= p {
                season = seasonal_indices(&cleaned[from..t], phase(from), p);
            }
            season_pending = false;
        }
        let s = season[phase(t)].max(1e-9);
        let y = values[t];
        let expected = level * s;
        let resid_z = y / s - level;
        let sig = sigma.max(SIGMA_FLOOR_OF_LEVEL * level.abs()).max(1e-12);
        if t < relearn_until {
            level += 0.3 * resid_z;
            sigma = (1.0 - lambda_s) * sigma + lambda_s * MEAN_ABS_TO_SIGMA * resid_z.abs().min(3.0 * sig);
            continue;
        }
        let score = resid_z / sig;
        let outlier = score.abs() > k && (y - expected).abs() >= config.min_abs_g_co2e;
        if !outlier {
            run_len = 0;
            level += lambda * resid_z.clamp(-2.0 * sig, 2.0 * sig);
            sigma = (1.0 - lambda_s) * sigma + lambda_s * MEAN_ABS_TO_SIGMA * resid_z.abs().min(3.0 * sig);
            if let Some(e) = episode.take_if(|e| t - e.last > config.merge_gap_points) {
                close(e, AnomalyKind::Spike, false, None, &mut anomalies);
            }
            continue;
        }
        cleaned[t] = expected;
        let sign = score.signum();
        if run_len > 0 && sign == run_sign {
            run_len += 1;
        } else {
            (run_len, run_sign) = (1, sign);
        }
        if episode.as_ref().is_some_and(|e| reportable(sign) != e.reported && t - e.last > 0) {
            // A run on the other side: the current episode ends here.
            if let Some(e) = episode.take() {
                close(e, AnomalyKind::Spike, false, None, &mut anomalies);
            }
        }
        let e = episode.get_or_insert(Episode {
            start: t,
            last: t,
            points: 0,
            peak: t,
            peak_score: 0.0,
            peak_expected: expected,
            excess: 0.0,
            reported: reportable(sign),
        });
        e.last = t;
        e.points += 1;
        e.excess += y - expected;
        if score.abs() > e.peak_score.abs() {
            (e.peak, e.peak_score, e.peak_expected) = (t, score, expected);
        }
        if run_len >= config.shift_after_points {
            let run_start = t + 1 - run_len;
            let new_level = median(&(run_start..=t).map(|i| z_at(&season, i)).collect::<Vec<_>>());
            let ratio = if level > 0.0 { new_level / level } else { f64::NAN };
            cleaned[run_start..=t].copy_from_slice(&values[run_start..=t]);
            shifts.push((run_start, ratio));
            level = new_level;
            sigma = sigma.max(SIGMA_FLOOR_OF_LEVEL * level.abs());
            if let Some(e) = episode.take() {
                close(e, AnomalyKind::LevelShift, false, Some(ratio), &mut anomalies);
            }
            relearn_until = t + 1 + p;
            season_origin = run_start;
            season_pending = true;
            run_len = 0;
        }
    }
    if let Some(e) = episode.take() {
        close(e, AnomalyKind::Spike, true, None, &mut anomalies);
    }
    Ok(Scan { anomalies, cleaned, shifts })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Monday 2026-01-05 00:00 UTC.
    const MONDAY: i64 = 1_767_571_200;

    /// Deterministic noise in [-1, 1).
    fn noise(i: usize, seed: u64) -> f64 {
        (crate::sim::mix(seed ^ i as u64) % 20_000) as f64 / 10_000.0 - 1.0
    }

    fn weekly_daily(days: usize) -> Vec<f64> {
        let week = [1.1, 1.15, 1.1, 1.12, 1.05, 0.7, 0.68];
        (0..days).map(|i| 10_000.0 * week[i % 7] * (1.0 + 0.02 * noise(i, 1))).collect()
    }

    #[test]
    fn weekly_pattern_is_not_flagged() {
        let values = weekly_daily(120);
        let found = detect(&values, MONDAY, &AnomalyConfig::daily(100.0)).unwrap();
        assert_eq!(found, vec![]);
        let both = AnomalyConfig { direction: Direction::Both, ..AnomalyConfig::daily(100.0) };
        assert_eq!(detect(&values, MONDAY, &both).unwrap(), vec![]);
    }

    #[test]
    fn planted_daily_spike_is_flagged_once() {
        let mut values = weekly_daily(120);
        values[80] += 4_000.0; // a Thursday, +36 %
        let found = detect(&values, MONDAY, &AnomalyConfig::daily(100.0)).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        let a = &found[0];
        assert_eq!((a.kind, a.start_index, a.end_index, a.points), (AnomalyKind::Spike, 80, 81, 1));
        assert_eq!(a.start_unix_s, MONDAY + 80 * 86_400);
        assert!((a.excess_g_co2e - 4_000.0).abs() < 600.0, "{}", a.excess_g_co2e);
        assert!(a.peak_score > 4.0 && !a.ongoing);
    }

    #[test]
    fn minimum_absolute_size_silences_tiny_series() {
        // The same shape a thousand times smaller: the spike is 4 g.
        let mut values: Vec<f64> = weekly_daily(120).iter().map(|v| v / 1_000.0).collect();
        values[80] += 4.0;
        assert_eq!(detect(&values, MONDAY, &AnomalyConfig::daily(100.0)).unwrap(), vec![]);
        assert_eq!(detect(&values, MONDAY, &AnomalyConfig::daily(1.0)).unwrap().len(), 1);
    }

    #[test]
    fn level_shift_raises_one_alert_then_is_absorbed() {
        // Resources added on day 70: +60 % for good.
        let mut values = weekly_daily(200);
        values[70..].iter_mut().for_each(|v| *v *= 1.6);
        let found = detect(&values, MONDAY, &AnomalyConfig::daily(100.0)).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].kind, found[0].start_index), (AnomalyKind::LevelShift, 70));
        assert!((found[0].shift_ratio.unwrap() - 1.6).abs() < 0.05, "{:?}", found[0].shift_ratio);
        // Resources removed: a drop is not reported upwards and raises nothing after.
        let mut down = weekly_daily(200);
        down[70..].iter_mut().for_each(|v| *v *= 0.5);
        assert_eq!(detect(&down, MONDAY, &AnomalyConfig::daily(100.0)).unwrap(), vec![]);
        let both = AnomalyConfig { direction: Direction::Both, ..AnomalyConfig::daily(100.0) };
        let found = detect(&down, MONDAY, &both).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, AnomalyKind::LevelShift);
    }

    #[test]
    fn hourly_diurnal_weekly_series_flags_a_runaway_only() {
        let hours = 24 * 42;
        let mut values: Vec<f64> = (0..hours)
            .map(|i| {
                let hour = (i % 24) as f64;
                let weekend = (i / 24) % 7 >= 5;
                let day = 0.5 - 0.5 * ((hour - 2.0) / 24.0 * std::f64::consts::TAU).cos();
                500.0 * (0.5 + day * if weekend { 0.35 } else { 1.0 }) * (1.0 + 0.03 * noise(i, 2))
            })
            .collect();
        let config = AnomalyConfig::hourly(50.0);
        assert_eq!(detect(&values, MONDAY, &config).unwrap(), vec![]);
        // A runaway function: +400 g/h for 6 hours from hour 800.
        values[800..806].iter_mut().for_each(|v| *v += 400.0);
        let found = detect(&values, MONDAY, &config).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].start_index, found[0].end_index), (800, 806));
    }

    #[test]
    fn hourly_level_shift_of_a_flat_fleet_raises_one_alert() {
        // A diurnal, weekly service; from hour 600 a flat fleet of +300 g/h
        // (60 % of the mean) runs for good: one alert, then the new normal.
        let values: Vec<f64> = (0..24 * 63)
            .map(|i| {
                let hour = (i % 24) as f64;
                let weekend = (i / 24) % 7 >= 5;
                let day = 0.5 - 0.5 * ((hour - 2.0) / 24.0 * std::f64::consts::TAU).cos();
                let base = 500.0 * (0.5 + day * if weekend { 0.35 } else { 1.0 }) * (1.0 + 0.03 * noise(i, 3));
                if i >= 600 { base + 300.0 } else { base }
            })
            .collect();
        let found = detect(&values, MONDAY, &AnomalyConfig::hourly(50.0)).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].kind, found[0].start_index), (AnomalyKind::LevelShift, 600));
    }

    #[test]
    fn random_series_give_well_formed_episodes() {
        let mut rng = crate::sim::Rng::new(78);
        for case in 0..200 {
            let config = if case % 2 == 0 { AnomalyConfig::daily(rng.range(0.0, 10.0)) } else { AnomalyConfig::hourly(rng.range(0.0, 10.0)) };
            let n = config.warmup_points() + 1 + rng.below(600);
            let scale = 10f64.powf(rng.range(-3.0, 9.0));
            let values: Vec<f64> = (0..n)
                .map(|_| match rng.uniform() {
                    r if r < 0.05 => 0.0,
                    r if r < 0.08 => scale * rng.range(3.0, 30.0),
                    _ => scale * rng.range(0.7, 1.3),
                })
                .collect();
            let found = detect(&values, MONDAY, &config).unwrap();
            let mut previous_end = 0;
            for a in &found {
                assert!(a.start_index >= config.warmup_points() && a.start_index < a.end_index && a.end_index <= n, "case {case}: {a:?}");
                assert!(a.start_index >= previous_end, "case {case}: episodes overlap");
                assert!(a.points >= 1 && a.points <= a.end_index - a.start_index);
                assert!(a.peak_score.is_finite() && a.excess_g_co2e.is_finite() && a.peak_expected_g_co2e.is_finite());
                assert_eq!(a.end_unix_s - a.start_unix_s, (a.end_index - a.start_index) as i64 * config.resolution.step_s());
                previous_end = a.end_index;
            }
        }
    }

    #[test]
    fn bad_input_is_named() {
        let config = AnomalyConfig::daily(0.0);
        assert_eq!(detect(&[1.0; 10], MONDAY, &config), Err(Error::NotEnoughHistory { needed: 29, got: 10 }));
        let mut values = vec![1.0; 40];
        values[7] = f64::NAN;
        assert!(matches!(detect(&values, MONDAY, &config), Err(Error::BadValue { index: 7, .. })));
        assert!(matches!(detect(&[1.0; 40], MONDAY + 5, &config), Err(Error::BadParameter { name: "first_unix_s", .. })));
        let bad = AnomalyConfig { level_gain: 0.0, ..config };
        assert!(matches!(detect(&[1.0; 40], MONDAY, &bad), Err(Error::BadParameter { name: "level_gain", .. })));
    }

    #[test]
    fn phases_are_monday_based() {
        assert_eq!(Resolution::Daily.phase(MONDAY), 0);
        assert_eq!(Resolution::Daily.phase(MONDAY + 6 * 86_400), 6);
        assert_eq!(Resolution::Hourly.phase(MONDAY + 25 * 3_600), 25);
        assert_eq!(Resolution::Hourly.phase(MONDAY - 3_600), 167);
    }
}
