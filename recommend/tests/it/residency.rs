//! Property: a region the account's placement policy forbids is never
//! proposed (best action or alternative), whatever the inventory; accounts
//! without a policy get no region advice at all.

use canopy_emissions::grid::MarketConfig;
use canopy_emissions::time::unix_seconds;
use canopy_recommend::catalog::{REGIONS, residency_allows};
use canopy_recommend::input::{
    Account, Architecture, Inventory, LatencyClass, PlacementPolicy, Residency, ResourceSnapshot,
    Utilisation,
};
use canopy_recommend::recommendation::{Kind, Target};
use canopy_recommend::sim::{Rng, SyntheticIntensity};
use proptest::prelude::*;

fn inventory<'a>(
    seed: u64,
    accounts: usize,
    market: &'a MarketConfig,
    hourly: &'a SyntheticIntensity,
) -> Inventory<'a> {
    let mut rng = Rng::new(seed);
    let as_of = unix_seconds(2026, 12, 7, 0, 0, 0);
    let codes: Vec<&str> = REGIONS.iter().map(|r| r.code).collect();
    let classes = [
        "m7g.xlarge",
        "m5.xlarge",
        "c5.2xlarge",
        "r7g.large",
        "db.r5.large",
        "m5.4xlarge",
    ];
    let mut inv = Inventory {
        as_of_unix_s: as_of,
        resources: vec![],
        accounts: vec![],
        policies: vec![],
        non_production: None,
        market,
        hourly: None,
    };
    if rng.unit() < 0.5 {
        inv.hourly = Some(hourly);
    }
    for a in 0..accounts {
        let account = format!("{:012}", 500_000_000_000u64 + a as u64);
        let ou = format!("ou-test-{a:08}");
        inv.accounts.push(Account {
            account_id: account.clone(),
            ou_path: format!("r-root/{ou}"),
        });
        if rng.unit() < 0.8 {
            let residency = *rng.pick(&[Residency::EuOnly, Residency::UsOnly, Residency::Anywhere]);
            let allowed_regions: Vec<String> = if rng.unit() < 0.5 {
                (0..rng.below(5))
                    .map(|_| (*rng.pick(&codes)).to_owned())
                    .collect()
            } else {
                vec![]
            };
            let latency = *rng.pick(&[LatencyClass::Any, LatencyClass::SameContinent]);
            let scope = if rng.unit() < 0.5 {
                account.clone()
            } else {
                ou
            };
            inv.policies.push(PlacementPolicy {
                scope,
                residency,
                allowed_regions,
                latency,
            });
        }
        for _ in 0..1 + rng.below(6) {
            let region = *rng.pick(&codes);
            let class = *rng.pick(&classes);
            let rds = class.starts_with("db.");
            let arn = format!(
                "arn:aws:{}:{region}:{account}:x/{}",
                if rds { "rds" } else { "ec2" },
                rng.next_u64()
            );
            let mut r = ResourceSnapshot::new(
                &arn,
                &account,
                region,
                if rds { "rds" } else { "ec2" },
                if rds { "db" } else { "instance" },
            );
            r.class = Some(class.into());
            r.architecture = Some(if class.contains('g') {
                Architecture::Arm64
            } else {
                Architecture::X86_64
            });
            let level = rng.range(0.0, 90.0);
            let days = 7 + rng.below(25) as i64;
            let cpu: Vec<Option<f64>> = (0..days * 24)
                .map(|_| Some((level * rng.range(0.8, 1.2)).min(100.0)))
                .collect();
            r.utilisation = Some(Utilisation::from_hourly(as_of - days * 86_400, &cpu).unwrap());
            inv.resources.push(r);
        }
    }
    inv
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn residency_is_never_violated(seed in any::<u64>(), accounts in 1usize..8) {
        let market = MarketConfig::new();
        let hourly = SyntheticIntensity::new();
        let inv = inventory(seed, accounts, &market, &hourly);
        let recs = canopy_recommend::recommend(&inv).unwrap();
        for r in &recs {
            let mut targets: Vec<&Target> = r.alternatives.iter().filter(|a| a.kind == Kind::RegionMigration).map(|a| &a.target).collect();
            if r.kind == Kind::RegionMigration {
                targets.push(&r.target);
            }
            for t in targets {
                let Target::Region(to) = t else { panic!("region kind with target {t:?}") };
                let policy = inv.policy_for(&r.account_id);
                prop_assert!(policy.is_some(), "{} got region advice without a policy", r.account_id);
                let policy = policy.unwrap();
                prop_assert!(residency_allows(policy.residency, to), "{to} breaks {:?} for {}", policy.residency, r.arn);
                prop_assert!(policy.allowed_regions.is_empty() || policy.allowed_regions.contains(to), "{to} not in {:?}", policy.allowed_regions);
                prop_assert!(to != &r.region);
            }
        }
    }
}

#[test]
fn eu_only_never_leaves_the_eu_even_when_cleaner_regions_exist_outside() {
    // Frankfurt, EU only, any latency: Stockholm (8.8 g) is allowed; São Paulo
    // (61.7 g), Montreal (120 g) and London (225 g) are not, even as alternatives.
    let market = MarketConfig::new();
    let as_of = unix_seconds(2026, 12, 7, 0, 0, 0);
    let mut r = ResourceSnapshot::new(
        "arn:aws:ec2:eu-central-1:123456789012:instance/i-1",
        "123456789012",
        "eu-central-1",
        "ec2",
        "instance",
    );
    r.class = Some("m7g.xlarge".into());
    r.architecture = Some(Architecture::Arm64);
    r.utilisation =
        Some(Utilisation::from_hourly(as_of - 14 * 86_400, &vec![Some(50.0); 14 * 24]).unwrap());
    let inv = Inventory {
        as_of_unix_s: as_of,
        resources: vec![r],
        accounts: vec![],
        policies: vec![PlacementPolicy {
            scope: "123456789012".into(),
            residency: Residency::EuOnly,
            allowed_regions: vec![],
            latency: LatencyClass::Any,
        }],
        non_production: None,
        market: &market,
        hourly: None,
    };
    let recs = canopy_recommend::recommend(&inv).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].target, Target::Region("eu-north-1".into()));
    let alternatives: Vec<&Target> = recs[0].alternatives.iter().map(|a| &a.target).collect();
    assert!(!alternatives.is_empty());
    for t in alternatives {
        let Target::Region(to) = t else { panic!() };
        assert!(residency_allows(Residency::EuOnly, to), "{to}");
    }
}

#[test]
fn the_generated_inventories_do_produce_region_advice() {
    // guards the property above against passing vacuously
    let market = MarketConfig::new();
    let hourly = SyntheticIntensity::new();
    let (mut moves, mut alternatives) = (0, 0);
    for seed in 0..100 {
        let inv = inventory(seed, 6, &market, &hourly);
        for r in canopy_recommend::recommend(&inv).unwrap() {
            moves += usize::from(r.kind == Kind::RegionMigration);
            alternatives += r
                .alternatives
                .iter()
                .filter(|a| a.kind == Kind::RegionMigration)
                .count();
        }
    }
    assert!(
        moves >= 50 && alternatives >= 50,
        "{moves} moves, {alternatives} alternatives"
    );
}
