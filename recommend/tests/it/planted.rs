//! The planted-truth benchmark as a regression test: every kind reaches
//! recall and precision of at least 95 %, every hit's saving is within
//! ±15 % of the truth, and no residency violation.

use canopy_recommend::bench::score;
use canopy_recommend::sim::{SimConfig, generate};

#[test]
fn planted_truth_is_found_with_its_saving() {
    for seed in [1, 2] {
        let org = generate(SimConfig { seed, accounts: 6 });
        let inv = org.inventory();
        let recs = canopy_recommend::recommend(&inv).unwrap();
        let s = score(&inv, &org.truth, &recs);
        assert_eq!(s.residency_violations, 0);
        for (kind, k) in &s.kinds {
            assert!(k.true_positives > 0, "{kind:?}: nothing found");
            assert!(
                k.recall() >= 0.95,
                "{kind:?}: recall {:.3} {k:?}",
                k.recall()
            );
            assert!(
                k.precision() >= 0.95,
                "{kind:?}: precision {:.3} {k:?}",
                k.precision()
            );
            assert!(
                k.within(0.15) == 1.0,
                "{kind:?}: savings errors {:?}",
                k.saving_errors
            );
        }
        // every recommendation carries evidence and a saving in both factor sets
        for r in &recs {
            assert!(!r.evidence.rule.is_empty(), "{}", r.id);
            assert!(
                r.carbon.location_low_kg_co2e <= r.carbon.location_kg_co2e + 1e-9
                    && r.carbon.location_kg_co2e <= r.carbon.location_high_kg_co2e + 1e-9,
                "{}",
                r.id
            );
            assert!(
                r.carbon.market_low_kg_co2e <= r.carbon.market_kg_co2e + 1e-9
                    && r.carbon.market_kg_co2e <= r.carbon.market_high_kg_co2e + 1e-9,
                "{}",
                r.id
            );
        }
    }
}

#[test]
fn ranked_by_carbon_then_cost_one_per_resource() {
    let org = generate(SimConfig {
        seed: 3,
        accounts: 4,
    });
    let recs = canopy_recommend::recommend(&org.inventory()).unwrap();
    let mut arns: Vec<&str> = recs.iter().map(|r| r.arn.as_str()).collect();
    arns.sort_unstable();
    let n = arns.len();
    arns.dedup();
    assert_eq!(arns.len(), n, "one recommendation per resource");
    for w in recs.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        assert!(
            a.carbon.location_kg_co2e > b.carbon.location_kg_co2e
                || (a.carbon.location_kg_co2e == b.carbon.location_kg_co2e
                    && a.cost.usd_or_zero() >= b.cost.usd_or_zero()),
            "{} before {}",
            a.id,
            b.id
        );
    }
    // the x86 over-provisioned instances: rightsizing wins, Graviton listed as an alternative
    let r = recs
        .iter()
        .find(|r| r.action.starts_with("resize m5.4xlarge"))
        .unwrap();
    assert!(
        r.alternatives
            .iter()
            .any(|a| a.kind == canopy_recommend::Kind::Graviton)
    );
}

#[test]
fn bad_input_names_the_field() {
    let mut org = generate(SimConfig {
        seed: 4,
        accounts: 1,
    });
    org.resources[0].region = "moon-1".into();
    let err = canopy_recommend::recommend(&org.inventory()).unwrap_err();
    assert!(
        err.to_string().contains("region") && err.to_string().contains("moon-1"),
        "{err}"
    );
}
