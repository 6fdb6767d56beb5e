//! Property tests of `canopy_emissions::cur`: non-negativity, monotonicity,
//! additivity under row splitting, and merge equivalence, in both methodologies.

use canopy_emissions::cur::{CurEstimate, CurEstimator, CurLine, EstimateOptions, Methodology, Period};
use canopy_emissions::{model, time};
use proptest::prelude::*;

/// (product, usage type, pricing unit, product_vcpu) covering every row family.
const KINDS: &[(&str, &str, &str, Option<f64>)] = &[
    ("AmazonEC2", "USE1-BoxUsage:m5.xlarge", "Hrs", Some(4.0)),
    ("AmazonEC2", "USE1-BoxUsage:t3.micro", "Hrs", None),
    ("AmazonEC2", "USE1-BoxUsage:p3.2xlarge", "Hrs", Some(8.0)),
    ("AmazonEC2", "EBS:VolumeUsage.gp2", "GB-Mo", None),
    ("AmazonEC2", "EBS:SnapshotUsage", "GB-Mo", None),
    ("AmazonS3", "USE1-TimedStorage-ByteHrs", "GB-Mo", None),
    ("AmazonEC2", "USE1-DataTransfer-Regional-Bytes", "GB", None),
    ("AWSLambda", "USE1-Lambda-GB-Second", "Lambda-GB-Second", None),
    ("AmazonRDS", "USE1-Multi-AZUsage:db.r5.large", "Hrs", Some(2.0)),
    ("AmazonECS", "USE1-Fargate-vCPU-Hours:perCPU", "hours", None),
    ("AmazonVPC", "USE1-NatGateway-Hours", "Hrs", None),
];

#[derive(Debug, Clone, Copy)]
struct Row {
    kind: usize,
    day: i64,
    amount: f64,
    cost: f64,
}

fn line(r: &Row) -> CurLine<'static> {
    let (product, usage_type, unit, vcpu) = KINDS[r.kind];
    CurLine {
        usage_start_unix_s: time::unix_seconds(2024, 2, 1, 0, 0, 0) + r.day * 86_400 + 3_600,
        account_id: "222222222222",
        region: if r.day % 2 == 0 { "eu-west-1" } else { "us-east-1" },
        product_code: product,
        usage_type,
        pricing_unit: unit,
        line_item_type: "Usage",
        instance_type: "",
        product_vcpu: vcpu,
        usage_amount: r.amount,
        blended_cost: r.cost,
        unblended_cost: r.cost,
        tag: None,
        resource_id: "",
        net_amortized_cost: None,
    }
}

fn rows() -> impl Strategy<Value = Vec<Row>> {
    prop::collection::vec(
        (0..KINDS.len(), 0i64..3, 0.001f64..1.0e4, 0.001f64..1.0e3).prop_map(|(kind, day, amount, cost)| Row {
            kind,
            day,
            amount,
            cost,
        }),
        1..40,
    )
}

fn estimate(m: Methodology, rows: &[Row]) -> CurEstimate {
    let mut e = CurEstimator::new(EstimateOptions { methodology: m, period: Period::Day, ..EstimateOptions::default() });
    for r in rows {
        e.add(&line(r));
    }
    e.finish()
}

fn assert_same(a: &CurEstimate, b: &CurEstimate) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.rows.len(), b.rows.len());
    let near = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-12),
        (None, None) => true,
        _ => false,
    };
    for (x, y) in a.rows.iter().zip(&b.rows) {
        prop_assert_eq!((&x.account_id, &x.region, &x.service, x.period_start_unix_s), (&y.account_id, &y.region, &y.service, y.period_start_unix_s));
        prop_assert!(near(x.energy_kwh, y.energy_kwh), "kwh {:?} vs {:?}", x.energy_kwh, y.energy_kwh);
        prop_assert!(near(x.co2e_location_kg, y.co2e_location_kg));
        prop_assert!(near(x.co2e_market_kg, y.co2e_market_kg));
        prop_assert!(near(x.co2e_low_kg, y.co2e_low_kg));
        prop_assert!(near(x.co2e_high_kg, y.co2e_high_kg));
        prop_assert!(near(Some(x.cost), Some(y.cost)));
        prop_assert_eq!(x.quality, y.quality);
    }
    // Not-estimated counts are line items, which a split changes; reasons and cost must agree.
    prop_assert_eq!(a.summary.rows_read, b.summary.rows_read);
    prop_assert_eq!(&a.summary.rows_skipped_by_line_item_type, &b.summary.rows_skipped_by_line_item_type);
    prop_assert_eq!(a.summary.not_estimated.keys().collect::<Vec<_>>(), b.summary.not_estimated.keys().collect::<Vec<_>>());
    for (x, y) in a.summary.not_estimated.values().zip(b.summary.not_estimated.values()) {
        prop_assert!(near(Some(x.cost), Some(y.cost)), "not-estimated cost {} vs {}", x.cost, y.cost);
    }
    Ok(())
}

const BOTH: [Methodology; 2] = [Methodology::Ccf, Methodology::Canopy];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn estimates_are_non_negative_and_bounds_ordered(rows in rows()) {
        for m in BOTH {
            for r in estimate(m, &rows).rows {
                for v in [r.energy_kwh, r.co2e_location_kg, r.co2e_market_kg, r.co2e_low_kg, r.co2e_high_kg].into_iter().flatten() {
                    prop_assert!(v >= 0.0 && v.is_finite(), "{m}: {r:?}");
                }
                let (lo, mid, hi) = (r.co2e_low_kg.unwrap(), r.co2e_location_kg.unwrap(), r.co2e_high_kg.unwrap());
                prop_assert!(lo <= mid * (1.0 + 1e-12) && mid <= hi * (1.0 + 1e-12), "{m}: {r:?}");
            }
        }
    }

    /// Adding two lines with amounts a and b (costs split likewise) equals one line with a + b.
    #[test]
    fn splitting_a_row_is_additive(rows in rows(), split in 0.01f64..0.99) {
        let halves: Vec<Row> = rows
            .iter()
            .flat_map(|r| [Row { amount: r.amount * split, cost: r.cost * split, ..*r }, Row { amount: r.amount * (1.0 - split), cost: r.cost * (1.0 - split), ..*r }])
            .collect();
        for m in BOTH {
            assert_same(&estimate(m, &rows), &{
                let mut e = estimate(m, &halves);
                e.summary.rows_read = rows.len() as u64;
                e
            })?;
        }
    }

    /// Merging estimators over disjoint parts equals one estimator over all lines.
    #[test]
    fn merge_equals_single_pass(rows in rows(), cut in 0usize..40) {
        let cut = cut.min(rows.len());
        for m in BOTH {
            let options = EstimateOptions { methodology: m, ..EstimateOptions::default() };
            let (mut a, mut b) = (CurEstimator::new(options.clone()), CurEstimator::new(options));
            for r in &rows[..cut] { a.add(&line(r)); }
            for r in rows[cut..].iter().rev() { b.add(&line(r)); }
            b.merge(a);
            assert_same(&estimate(m, &rows), &b.finish())?;
        }
    }

    /// Estimating groups early (a tiny in-memory bound forces many flushes, each
    /// splitting groups) gives the same rows and summary as holding them all,
    /// also when partial estimators that flushed are merged.
    #[test]
    fn flushing_groups_early_changes_nothing(rows in rows(), max_groups in 1usize..4, cut in 0usize..40) {
        let cut = cut.min(rows.len());
        for m in BOTH {
            let options = EstimateOptions { methodology: m, max_groups_in_memory: max_groups, ..EstimateOptions::default() };
            let mut small = CurEstimator::new(options.clone());
            for r in &rows { small.add(&line(r)); }
            prop_assert!(small.group_count() <= max_groups + rows.len());
            let (mut a, mut b) = (CurEstimator::new(options.clone()), CurEstimator::new(options));
            for r in &rows[..cut] { a.add(&line(r)); }
            for r in &rows[cut..] { b.add(&line(r)); }
            a.merge(b);
            let reference = estimate(m, &rows);
            let flushed = small.finish();
            let counts = |e: &CurEstimate| e.summary.not_estimated.iter().map(|(k, t)| (*k, t.rows)).collect::<Vec<_>>();
            prop_assert_eq!(counts(&flushed), counts(&reference));
            assert_same(&reference, &flushed)?;
            assert_same(&reference, &a.finish())?;
        }
    }

    /// More usage never gives less energy (known rows only: unknown rows use ratios).
    #[test]
    fn monotonic_in_usage(kind in 0usize..9, amount in 0.001f64..1.0e4, extra in 0.0f64..1.0e4) {
        for m in BOTH {
            let a = estimate(m, &[Row { kind, day: 0, amount, cost: 1.0 }]);
            let b = estimate(m, &[Row { kind, day: 0, amount: amount + extra, cost: 1.0 }]);
            prop_assert!(b.rows[0].energy_kwh.unwrap() >= a.rows[0].energy_kwh.unwrap());
            prop_assert!(b.rows[0].co2e_location_kg.unwrap() >= a.rows[0].co2e_location_kg.unwrap());
        }
    }

    /// Instance power used by canopy rises with utilisation.
    #[test]
    fn power_monotonic_in_utilisation(u in 0.0f64..100.0, du in 0.0f64..100.0) {
        for t in ["m5.xlarge", "t3.micro", "c6i.metal", "p3.2xlarge", "r5.large"] {
            let p = model::instance_power(t).unwrap();
            prop_assert!(p.power_w((u + du).min(100.0)).total_w() >= p.power_w(u).total_w() - 1e-12);
        }
    }
}
