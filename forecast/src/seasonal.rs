//! Multiplicative seasonal indices (classical decomposition, made robust):
//! each value is divided by the centred moving average of one period around
//! it (a 2×P average when the period P is even), and the index of a phase is
//! the **median** of those ratios over the cycles available, so one spike or
//! one level shift in the window moves no index. Indices are normalised to
//! a mean of 1. With less than two periods of data the ratios are taken to
//! the mean of each whole cycle instead; with less than one, every index
//! is 1.
//!
//! Phases: the value at position `i` of a slice has phase
//! `(phase0 + i) % period`, so callers align phases with the calendar
//! (weekday for daily series, hour of the week for hourly ones).

use crate::robust::median_in_place;

/// Seasonal indices (length `period`, mean 1) of `values`, whose first
/// element has phase `phase0`.
pub fn seasonal_indices(values: &[f64], phase0: usize, period: usize) -> Vec<f64> {
    indices_by(values, phase0, period, median_in_place)
}

/// As [`seasonal_indices`], the index of a phase being the **interquartile
/// mean** of its ratios (the mean of the middle half) instead of their
/// median: still unmoved by a spike or a shift in a quarter of the cycles
/// on either side, and with less sampling noise (for normal noise its
/// variance is about 0.84 of the mean's against the median's 0.64). For
/// series already cleaned of outliers (the forecaster's).
pub fn seasonal_indices_trimmed(values: &[f64], phase0: usize, period: usize) -> Vec<f64> {
    indices_by(values, phase0, period, |r| crate::robust::trimmed_mean_in_place(r, 0.25))
}

fn indices_by(values: &[f64], phase0: usize, period: usize, centre: impl Fn(&mut [f64]) -> f64) -> Vec<f64> {
    if period <= 1 || values.len() < period {
        return vec![1.0; period.max(1)];
    }
    let mut ratios = phase_ratios(values, phase0, period);
    let indices: Vec<f64> = ratios.iter_mut().map(|r| if r.is_empty() { 1.0 } else { centre(r) }).collect();
    normalised(indices)
}

/// Each value's ratio to its centred moving average (to its cycle's mean
/// with less than two periods), grouped by phase. `values` holds at least
/// one period.
fn phase_ratios(values: &[f64], phase0: usize, period: usize) -> Vec<Vec<f64>> {
    let n = values.len();
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); period];
    if n >= 2 * period {
        let half = period / 2;
        let mut prefix = Vec::with_capacity(n + 1);
        prefix.push(0.0);
        for v in values {
            prefix.push(prefix.last().copied().unwrap_or(0.0) + v);
        }
        let sum = |a: usize, b: usize| prefix[b] - prefix[a];
        for i in half..n - half {
            let ma = if period % 2 == 1 {
                sum(i - half, i + half + 1) / period as f64
            } else {
                if i + half >= n {
                    continue;
                }
                (sum(i - half, i + half + 1) - 0.5 * (values[i - half] + values[i + half])) / period as f64
            };
            if ma > 0.0 {
                ratios[(phase0 + i) % period].push(values[i] / ma);
            }
        }
    } else {
        let cycles = n / period;
        let start = n - cycles * period;
        for c in 0..cycles {
            let cycle = &values[start + c * period..start + (c + 1) * period];
            let mean = cycle.iter().sum::<f64>() / period as f64;
            if mean > 0.0 {
                for (j, v) in cycle.iter().enumerate() {
                    ratios[(phase0 + start + c * period + j) % period].push(v / mean);
                }
            }
        }
    }
    ratios
}

/// `indices` divided by their mean (all 1 when the mean is not positive).
fn normalised(mut indices: Vec<f64>) -> Vec<f64> {
    let mean = indices.iter().sum::<f64>() / indices.len() as f64;
    if mean > 0.0 && mean.is_finite() {
        for s in &mut indices {
            *s /= mean;
        }
    } else {
        indices.iter_mut().for_each(|s| *s = 1.0);
    }
    indices
}

/// Weekday indices (daily series, period 7, phase 0 = Monday) as
/// [`seasonal_indices_trimmed`], each then **shrunk towards the mean of its
/// group** — Monday to Friday, Saturday and Sunday — by empirical Bayes
/// (method of moments, Morris 1983): with `v_p` the sampling variance of
/// phase `p`'s interquartile mean (its ratios' MAD σ² / count × 1.19, the
/// interquartile mean's variance relative to the mean's for normal noise)
/// and `τ²` the spread of the group's true indices (the spread of the
/// estimates minus the mean `v`, at least 0), the index moves towards the
/// group mean by `v_p / (v_p + τ²)`. Days that really differ (a quieter
/// Monday, a busy Friday: `τ²` well above the noise) keep their own index;
/// days whose differences are within the sampling noise share their
/// group's, which has a fifth (weekdays) or a half (weekend) of the noise.
/// With fewer than 3 ratios per phase nothing is shrunk.
pub fn weekday_indices_shrunk(values: &[f64], phase0: usize) -> Vec<f64> {
    const PERIOD: usize = 7;
    if values.len() < PERIOD {
        return vec![1.0; PERIOD];
    }
    let mut ratios = phase_ratios(values, phase0, PERIOD);
    if ratios.iter().any(|r| r.len() < 3) {
        return indices_by(values, phase0, PERIOD, |r| crate::robust::trimmed_mean_in_place(r, 0.25));
    }
    let variance: Vec<f64> =
        ratios.iter().map(|r| crate::robust::mad_sigma(r).powi(2) / r.len() as f64 * IQ_MEAN_VARIANCE_FACTOR).collect();
    let estimate: Vec<f64> = ratios.iter_mut().map(|r| crate::robust::trimmed_mean_in_place(r, 0.25)).collect();
    let mut indices = estimate.clone();
    for group in [0..5, 5..7] {
        let m = group.len() as f64;
        let mean = estimate[group.clone()].iter().sum::<f64>() / m;
        let spread = estimate[group.clone()].iter().map(|e| (e - mean).powi(2)).sum::<f64>() / (m - 1.0);
        let noise = variance[group.clone()].iter().sum::<f64>() / m;
        let tau2 = (spread - noise).max(0.0);
        for p in group {
            let towards_mean = if variance[p] + tau2 > 0.0 { variance[p] / (variance[p] + tau2) } else { 0.0 };
            indices[p] = mean + (1.0 - towards_mean) * (estimate[p] - mean);
        }
    }
    normalised(indices)
}

/// Variance of the interquartile mean of normal data relative to the mean's.
const IQ_MEAN_VARIANCE_FACTOR: f64 = 1.19;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekly_pattern_is_recovered_despite_a_spike() {
        let pattern = [1.2, 1.2, 1.2, 1.2, 1.2, 0.5, 0.5];
        let mut values: Vec<f64> = (0..56).map(|i| 100.0 * pattern[i % 7]).collect();
        values[30] *= 10.0;
        let s = seasonal_indices(&values, 0, 7);
        let mean: f64 = pattern.iter().sum::<f64>() / 7.0;
        for (got, want) in s.iter().zip(pattern) {
            assert!((got - want / mean).abs() < 1e-9, "{s:?}");
        }
        // Shifted phase: index k of the result is phase k.
        let s3 = seasonal_indices(&values[4..], 4, 7);
        assert!((s3[5] - 0.5 / mean).abs() < 1e-9, "{s3:?}");
    }

    #[test]
    fn trimmed_indices_recover_the_pattern_despite_spikes() {
        let pattern = [1.2, 1.2, 1.2, 1.2, 1.2, 0.5, 0.5];
        let mean: f64 = pattern.iter().sum::<f64>() / 7.0;
        let mut values: Vec<f64> = (0..70).map(|i| 100.0 * pattern[i % 7]).collect();
        values[30] *= 10.0;
        values[47] = 0.0;
        let s = seasonal_indices_trimmed(&values, 0, 7);
        for (got, want) in s.iter().zip(pattern) {
            assert!((got - want / mean).abs() < 1e-9, "{s:?}");
        }
        // ±10 % uniform noise over 26 weeks: each index within 0.04 (about
        // 2.5 standard errors of the interquartile mean).
        let noisy: Vec<f64> = (0..182)
            .map(|i| 100.0 * pattern[i % 7] * (1.0 + 0.1 * ((crate::sim::mix(i as u64) % 2_000) as f64 / 1_000.0 - 1.0)))
            .collect();
        let s = seasonal_indices_trimmed(&noisy, 0, 7);
        for (got, want) in s.iter().zip(pattern) {
            assert!((got - want / mean).abs() < 0.04, "{s:?}");
        }
    }

    /// 26 weeks of `pattern` with ±`noise` uniform noise.
    fn noisy_weeks(pattern: [f64; 7], noise: f64, seed: u64) -> Vec<f64> {
        (0..182)
            .map(|i| {
                let u = (crate::sim::mix(seed ^ i as u64) % 2_000) as f64 / 1_000.0 - 1.0;
                100.0 * pattern[i % 7] * (1.0 + noise * u)
            })
            .collect()
    }

    fn squared_error(got: &[f64], pattern: [f64; 7]) -> f64 {
        let mean: f64 = pattern.iter().sum::<f64>() / 7.0;
        got.iter().zip(pattern).map(|(g, w)| (g - w / mean).powi(2)).sum()
    }

    #[test]
    fn shrunk_weekday_indices_pool_days_that_do_not_differ() {
        // Weekdays alike, weekend alike, ±15 % noise: each day's own index
        // is off by the sampling noise; shrinking pools the group's days.
        let pattern = [1.2, 1.2, 1.2, 1.2, 1.2, 0.5, 0.5];
        let (mut own, mut shrunk) = (0.0, 0.0);
        for seed in 0..20 {
            let values = noisy_weeks(pattern, 0.15, seed);
            own += squared_error(&seasonal_indices_trimmed(&values, 0, 7), pattern);
            let s = weekday_indices_shrunk(&values, 0);
            shrunk += squared_error(&s, pattern);
            assert!((s.iter().sum::<f64>() - 7.0).abs() < 1e-9, "{s:?}");
        }
        assert!(shrunk < 0.5 * own, "shrunk {shrunk} vs own {own}");
        // Exact data: nothing to shrink, nothing moves.
        let exact: Vec<f64> = (0..70).map(|i| 100.0 * pattern[i % 7]).collect();
        assert!(squared_error(&weekday_indices_shrunk(&exact, 0), pattern) < 1e-18);
    }

    #[test]
    fn shrunk_weekday_indices_keep_days_that_really_differ() {
        // A quiet Monday and a busy Friday, far beyond ±5 % noise: kept.
        let pattern = [0.8, 1.1, 1.1, 1.1, 1.4, 0.6, 0.9];
        let mean: f64 = pattern.iter().sum::<f64>() / 7.0;
        let values = noisy_weeks(pattern, 0.05, 3);
        let s = weekday_indices_shrunk(&values, 0);
        for (got, want) in s.iter().zip(pattern) {
            assert!((got - want / mean).abs() < 0.02, "{s:?}");
        }
        // Phase: the same series starting on a Thursday.
        let t = weekday_indices_shrunk(&values[3..], 3);
        assert!((t[0] - 0.8 / mean).abs() < 0.02 && (t[4] - 1.4 / mean).abs() < 0.02, "{t:?}");
    }

    #[test]
    fn flat_and_short_series_have_unit_indices() {
        assert_eq!(seasonal_indices(&[5.0; 30], 0, 7), vec![1.0; 7]);
        assert_eq!(seasonal_indices(&[5.0; 3], 0, 7), vec![1.0; 7]);
        assert_eq!(seasonal_indices(&[0.0; 30], 0, 7), vec![1.0; 7]);
    }
}
