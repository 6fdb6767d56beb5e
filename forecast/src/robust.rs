//! Robust location and scale: median and MAD (scaled to the standard
//! deviation of a normal distribution), by selection, never by sorting the
//! caller's data.

/// 1 / Φ⁻¹(3/4): MAD × this estimates σ for normal data.
pub const MAD_TO_SIGMA: f64 = 1.482_602_218_505_602;

/// Median of `values` (reordered in place); NaN for an empty slice.
pub fn median_in_place(values: &mut [f64]) -> f64 {
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    let mid = n / 2;
    let (_, upper, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    let upper = *upper;
    if n % 2 == 1 {
        upper
    } else {
        let lower = values[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        0.5 * (lower + upper)
    }
}

/// Median of a copy of `values`.
pub fn median(values: &[f64]) -> f64 {
    median_in_place(&mut values.to_vec())
}

/// Mean of `values` without the lowest and highest `trim` share of them
/// (`values` is reordered; 0.25: the interquartile mean); NaN when empty.
/// At least one value is kept.
pub fn trimmed_mean_in_place(values: &mut [f64], trim: f64) -> f64 {
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    let cut = ((n as f64 * trim.clamp(0.0, 0.5)).floor() as usize).min((n - 1) / 2);
    values.sort_unstable_by(f64::total_cmp);
    let kept = &values[cut..n - cut];
    kept.iter().sum::<f64>() / kept.len() as f64
}

/// σ estimated as MAD × 1.4826 around the median.
pub fn mad_sigma(values: &[f64]) -> f64 {
    let m = median(values);
    let mut dev: Vec<f64> = values.iter().map(|v| (v - m).abs()).collect();
    median_in_place(&mut dev) * MAD_TO_SIGMA
}

/// Standard normal quantile for the two-sided interval `coverage`
/// (0.8 → 1.2816, 0.95 → 1.9600), by Acklam's rational approximation
/// (relative error below 1.2e-9).
pub fn two_sided_z(coverage: f64) -> f64 {
    normal_quantile(0.5 + coverage / 2.0)
}

/// Φ⁻¹(p) for 0 < p < 1 (Acklam's algorithm).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [-3.969_683_028_665_376e1, 2.209_460_984_245_205e2, -2.759_285_104_469_687e2, 1.383_577_518_672_69e2, -3.066_479_806_614_716e1, 2.506_628_277_459_239];
    const B: [f64; 5] = [-5.447_609_879_822_406e1, 1.615_858_368_580_409e2, -1.556_989_798_598_866e2, 6.680_131_188_771_972e1, -1.328_068_155_288_572e1];
    const C: [f64; 6] = [-7.784_894_002_430_293e-3, -3.223_964_580_411_365e-1, -2.400_758_277_161_838, -2.549_732_539_343_734, 4.374_664_141_464_968, 2.938_163_982_698_783];
    const D: [f64; 4] = [7.784_695_709_041_462e-3, 3.224_671_290_700_398e-1, 2.445_134_137_142_996, 3.754_408_661_907_416];
    let p_low = 0.024_25;
    if p < p_low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5]) / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - p_low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -normal_quantile(1.0 - p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_mad_of_small_sets() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        // Deviations from 3: 2,1,0,1,97 → MAD 1.
        assert!((mad_sigma(&[1.0, 2.0, 3.0, 4.0, 100.0]) - MAD_TO_SIGMA).abs() < 1e-12);
    }

    #[test]
    fn trimmed_mean_drops_both_tails() {
        // 8 values, a quarter off each side: the mean of 3, 4, 5, 6.
        let mut v = [6.0, 1.0, 100.0, 3.0, 4.0, 5.0, -50.0, 2.0];
        assert_eq!(trimmed_mean_in_place(&mut v, 0.25), 3.5);
        assert_eq!(trimmed_mean_in_place(&mut [7.0], 0.25), 7.0);
        assert_eq!(trimmed_mean_in_place(&mut [1.0, 2.0, 9.0], 0.5), 2.0);
        assert!(trimmed_mean_in_place(&mut [], 0.25).is_nan());
    }

    #[test]
    fn normal_quantiles() {
        assert!((two_sided_z(0.8) - 1.281_551_565_5).abs() < 1e-7);
        assert!((two_sided_z(0.95) - 1.959_963_985).abs() < 1e-7);
        assert!((normal_quantile(0.01) + 2.326_347_874).abs() < 1e-7);
    }
}
