//! Model tests: expected values hand-computed from the shipped CSVs
//! (Teads power curves, CCF tables, AWS PUE) in the comments.

use canopy_emissions::grid::{CarbonIntensitySource, HourlyIntensity, HourlyIntensityTable, MarketConfig, MarketRegion};
use canopy_emissions::model::{
    Bounds, CpuArchitecture, EstimateContext, EstimateError, InstancePower, METHODOLOGY_VERSION, Quality, Resource,
    SERVER_LIFESPAN_HOURS, StorageMedium, embodied_g_co2e_per_instance_hour, estimate_instance_hours,
    estimate_resource, instance_power, pue,
};
use canopy_emissions::time::unix_seconds;
use proptest::prelude::*;

const EPS: f64 = 1e-9;

fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= EPS * expected.abs().max(1.0),
        "{what}: expected {expected}, found {actual}"
    );
}

/// Whole-instance watts at `u` for `instance_type`.
fn total_w(instance_type: &str, u: f64) -> f64 {
    instance_power(instance_type).unwrap_or_else(|| panic!("{instance_type} known")).power_w(u).total_w()
}

#[test]
fn teads_curve_points_match_published_whole_instance_watts() {
    // (type, utilisation %, component sum from the CSV, published whole-instance W rounded to 0.1)
    let cases = [
        // m5.large 50 %: cpu 7.16 + ram 4.96 + gpu 0 + delta 2.0 = 14.12 (published 14.1)
        ("m5.large", 50.0, 14.12, 14.1),
        // t3.micro idle: 1.21 + 0.15 + 0 + 2.0 = 3.36 (published 3.4)
        ("t3.micro", 0.0, 3.36, 3.4),
        // c6g.xlarge 50 %: 7.05 + 3.2 + 0 + 1.9 = 12.15 (published 12.1)
        ("c6g.xlarge", 50.0, 12.15, 12.1),
        // r5.2xlarge 100 %: published 111.8
        ("r5.2xlarge", 100.0, 111.8, 111.8),
    ];
    for (name, u, sum_w, published_w) in cases {
        let w = total_w(name, u);
        assert!((w - sum_w).abs() < 0.051, "{name} at {u} %: expected {sum_w}, found {w}");
        assert!((w - published_w).abs() <= 0.1, "{name} at {u} %: expected ~{published_w}, found {w}");
    }
}

#[test]
fn m5_large_interpolates_between_load_points() {
    // 30 % lies halfway between 10 % and 50 %:
    // cpu 3.05 + (7.16 − 3.05) × 0.5 = 5.105; ram 1.92 + (4.96 − 1.92) × 0.5 = 3.44; delta 2.0
    // → 10.545 W (the published whole-instance points give 7.0 + 7.1 × 0.5 = 10.55 W)
    let p = instance_power("m5.large").unwrap().power_w(30.0);
    assert_close(p.cpu_w, 5.105, "cpu");
    assert_close(p.memory_w, 3.44, "memory");
    assert_close(p.other_w, 2.0, "other");
    assert_close(p.total_w(), 10.545, "total");
    assert!((p.total_w() - 10.55).abs() < 0.01);
}

#[test]
fn p4d_has_a_gpu_component() {
    let p4d = instance_power("p4d.24xlarge").unwrap();
    assert_eq!(p4d.gpus(), 8.0);
    assert_eq!(p4d.vcpus(), 96.0);
    let p = p4d.power_w(50.0);
    // gpu_w_50pct 2407.2; whole instance 448.31 + 830.22 + 2407.2 + 96.0 = 3781.73 (published 3781.8)
    assert_close(p.gpu_w, 2407.2, "gpu");
    assert_close(p.total_w(), 3781.73, "total");
    // 100 %: gpu 3259.3
    assert_close(p4d.power_w(100.0).gpu_w, 3259.3, "gpu at 100 %");
}

#[test]
fn service_prefixes_resolve_to_the_ec2_type() {
    for name in ["ml.m5.large", "search.m5.large", "m5.large.search"] {
        assert_close(total_w(name, 50.0), 14.12, name);
    }
    // Teads has its own rows for some service types (ElastiCache's usable memory is smaller):
    // cache.m5.large at 50 %: cpu 6.39 + ram 2.94 + delta 1.8 = 11.13 W (published 11.1)
    assert_close(total_w("cache.m5.large", 50.0), 11.13, "cache.m5.large");
    assert!(instance_power("db.r5.large").unwrap().from_measured_curve());
}

#[test]
fn newer_families_fall_back_to_microarchitecture_watts() {
    // c7g.xlarge (2026 catalogue: 4 vCPU, 8 GiB, Graviton3 → Graviton2 watts 0.47/1.69, 129.78 GB/chip)
    // cpu at 50 %: 4 × (0.47 + 0.5 × 1.22) = 4.32 W
    // memory: 8 GiB = 8.589934592 GB − 4 × 129.78 / 96 = 5.4075 GB included → 3.182434592 GB × 0.392 = 1.247514360 W
    let c7g = instance_power("c7g.xlarge").unwrap();
    assert!(!c7g.from_measured_curve());
    assert_eq!(c7g.quality(), Quality::Estimated);
    let p = c7g.power_w(50.0);
    assert_close(p.cpu_w, 4.32, "c7g cpu");
    assert_close(p.memory_w, 1.247_514_360_064, "c7g memory");
    assert_eq!(p.gpu_w, 0.0);

    // m7i.large (2 vCPU, 8 GiB, Sapphire Rapids: no CCF coefficient → AWS average 0.74/3.5, 80.69 GB/chip)
    // cpu at 50 %: 2 × (0.74 + 0.5 × 2.76) = 4.24 W; memory (8.589934592 − 1.681041667) × 0.392 = 2.708286019 W
    let p = instance_power("m7i.large").unwrap().power_w(50.0);
    assert_close(p.cpu_w, 4.24, "m7i cpu");
    assert!((p.memory_w - 2.708_286_019).abs() < 1e-8);

    // g5.xlarge (CCF table: 4 vCPU EPYC 2nd Gen 0.47/1.69, 16 GiB, 1 × A10G 18/153 W)
    // gpu at 50 %: 18 + 0.5 × 135 = 85.5 W; cpu 4.32 W; memory (17.179869184 − 5.4075) × 0.392 = 4.614768720 W
    let g5 = instance_power("g5.xlarge").unwrap();
    assert_eq!(g5.gpus(), 1.0);
    let p = g5.power_w(50.0);
    assert_close(p.gpu_w, 85.5, "g5 gpu");
    assert_close(p.cpu_w, 4.32, "g5 cpu");
    assert!((p.memory_w - 4.614_768_720).abs() < 1e-8);
}

#[test]
fn unknown_types_give_none_and_fleet_average_is_default_quality() {
    assert!(instance_power("zz9.enormous").is_none());
    assert!(embodied_g_co2e_per_instance_hour("zz9.enormous").is_none());
    // 4 vCPU × (0.74 + 0.5 × 2.76) = 8.48 W at 50 %
    let avg = InstancePower::fleet_average(4.0);
    assert_eq!(avg.quality(), Quality::Default);
    assert_close(avg.power_w(50.0).total_w(), 8.48, "fleet average");
}

#[test]
fn embodied_is_recomputed_with_a_six_year_life() {
    assert_close(SERVER_LIFESPAN_HOURS, 52_560.0, "lifespan");
    // m5.large: 1610.4 kg × 1000 × 2 / 96 vCPU / 52 560 h = 0.638318113... g/h
    let (g, provenance) = embodied_g_co2e_per_instance_hour("m5.large").unwrap();
    assert_close(g, 1_610_400.0 * 2.0 / 96.0 / 52_560.0, "m5.large");
    assert!((g - 0.638_318).abs() < 1e-6);
    assert!(provenance.source.contains("Teads"));
    // Size-aware: m5.24xlarge (96 of 96 vCPU) is 48 × m5.large
    let (big, _) = embodied_g_co2e_per_instance_hour("m5.24xlarge").unwrap();
    assert_close(big, g * 48.0, "m5.24xlarge");
    // c6i.large from CCF's table: 1332.9 kg × 1000 × 2 / 96 / 52 560 = 0.528324772 g/h
    let (c6i, _) = embodied_g_co2e_per_instance_hour("c6i.large").unwrap();
    assert_close(c6i, 1_332_900.0 * 2.0 / 96.0 / 52_560.0, "c6i.large");
    // c7g.xlarge from the 2026 catalogue: 0.63 t × 10⁶ × 4 / 64 / 52 560 = 0.749143836 g/h
    let (c7g, _) = embodied_g_co2e_per_instance_hour("c7g.xlarge").unwrap();
    assert_close(c7g, 630_000.0 * 4.0 / 64.0 / 52_560.0, "c7g.xlarge");
}

fn ctx<'a>(
    region: &'a str,
    start: i64,
    market: &'a MarketConfig,
    hourly: Option<&'a dyn CarbonIntensitySource>,
) -> EstimateContext<'a> {
    EstimateContext { region, interval_start_unix_s: start, market, hourly }
}

#[test]
fn instance_estimate_with_measured_utilisation() {
    let market = MarketConfig::new();
    let start = unix_seconds(2024, 6, 1, 0, 0, 0);
    let e = estimate_instance_hours("m5.large", 1.0, Some(50.0), &ctx("eu-west-1", start, &market, None)).unwrap();
    // IT: 14.12 W × 1 h = 0.01412 kWh (compute 7.16 + 2.0 = 9.16 W, memory 4.96 W)
    assert_close(e.it_energy.compute_kwh, 0.00916, "compute");
    assert_close(e.it_energy.memory_kwh, 0.00496, "memory");
    assert_eq!(e.it_energy.accelerators_kwh, 0.0);
    // PUE 2024 = 1.15 → 0.016238 kWh; eu-west-1 278.6 g/kWh → 4.5239068 g
    assert_eq!(e.pue, 1.15);
    assert_close(e.energy_kwh, 0.016238, "energy");
    assert_close(e.operational_location_g_co2e, 4.523_906_8, "location co2e");
    assert_close(e.operational_market_g_co2e, 4.523_906_8, "market = location when unconfigured");
    assert_close(e.embodied_g_co2e, 1_610_400.0 * 2.0 / 96.0 / 52_560.0, "embodied");
    assert_eq!(e.quality, Quality::Measured);
    assert_eq!(e.cpu_utilisation_pct, 50.0);
    assert_eq!(e.methodology, METHODOLOGY_VERSION);
    // Measured utilisation: bounds from the ±10 % curve uncertainty only:
    // 0.016238 × 0.9 = 0.0146142, × 1.1 = 0.0178618
    assert_close(e.energy_bounds_kwh.low, 0.014_614_2, "low");
    assert_close(e.energy_bounds_kwh.high, 0.017_861_8, "high");
}

#[test]
fn unknown_utilisation_uses_default_and_wide_bounds() {
    let market = MarketConfig::new();
    let start = unix_seconds(2025, 1, 15, 0, 0, 0);
    let e = estimate_instance_hours("m5.large", 2.0, None, &ctx("us-east-1", start, &market, None)).unwrap();
    assert_eq!(e.quality, Quality::Default);
    assert_eq!(e.cpu_utilisation_pct, 50.0);
    // PUE 2025 = 1.14; 2 h × 14.12 W = 0.02824 kWh IT → 0.0321936 kWh
    assert_close(e.energy_kwh, 0.032_193_6, "energy");
    // low: idle 1.21 + 1.2 + 2.0 = 4.41 W × 0.9 × 2 h × 1.14 / 1000 = 0.009049320 kWh
    // high: full 9.96 + 8.0 + 2.0 = 19.96 W × 1.1 × 2 h × 1.14 / 1000 = 0.050059680 kWh
    assert_close(e.energy_bounds_kwh.low, 0.009_049_32, "low");
    assert_close(e.energy_bounds_kwh.high, 0.050_059_68, "high");
    // × 379.069 g/kWh (us-east-1)
    assert_close(e.operational_location_bounds_g_co2e.high, 0.050_059_68 * 379.069, "co2e high");
}

#[test]
fn fallback_and_unknown_instances() {
    let market = MarketConfig::new();
    let c = ctx("us-east-1", unix_seconds(2024, 1, 1, 0, 0, 0), &market, None);
    // Measured utilisation on a microarchitecture model → Estimated
    let e = estimate_instance_hours("c7g.xlarge", 1.0, Some(50.0), &c).unwrap();
    assert_eq!(e.quality, Quality::Estimated);
    // Unknown type without vCPUs → error naming the type
    let err = estimate_instance_hours("zz9.enormous", 1.0, Some(50.0), &c).unwrap_err();
    assert_eq!(err, EstimateError::UnknownInstanceType { instance_type: "zz9.enormous".into() });
    assert!(err.to_string().contains("zz9.enormous"));
    // With vCPUs → fleet average, Default quality: 4 × 2.12 W × 1 h × 1.15 = 0.009752 kWh, no embodied
    let r = Resource::Instance { instance_type: "zz9.enormous", vcpus_if_unknown: Some(4.0) };
    let e = estimate_resource(&r, 1.0, Some(50.0), &c).unwrap();
    assert_eq!(e.quality, Quality::Default);
    assert_close(e.energy_kwh, 0.009_752, "fleet energy");
    assert_eq!(e.embodied_g_co2e, 0.0);
    assert!(e.embodied_provenance.is_none());
    // Negative duration is rejected
    assert!(matches!(
        estimate_instance_hours("m5.large", -1.0, None, &c),
        Err(EstimateError::BadQuantity { .. })
    ));
}

#[test]
fn storage_function_container_and_transfer() {
    let market = MarketConfig::new();
    let c = ctx("eu-west-3", unix_seconds(2024, 3, 1, 0, 0, 0), &market, None);
    // 1000 GB SSD, replication 2, 24 h: 24 TB-h × 1.2 Wh × 2 / 1000 = 0.0576 kWh × 1.15 = 0.06624 kWh
    let s = Resource::Storage { gb: 1000.0, medium: StorageMedium::Ssd, replication: 2.0 };
    let e = estimate_resource(&s, 24.0, None, &c).unwrap();
    assert_close(e.it_energy.storage_kwh, 0.0576, "storage it");
    assert_close(e.energy_kwh, 0.066_24, "storage");
    assert_eq!(e.quality, Quality::Estimated);
    // eu-west-3 51.1 g/kWh → 3.384864 g
    assert_close(e.operational_location_g_co2e, 3.384_864, "storage co2e");
    assert_close(e.energy_bounds_kwh.low, 0.033_12, "±50 % low");

    // Lambda, Arm, 3600 GB-s = 1 GB-h: vCPU-h = 1 / 1.769; Graviton2 at 50 % = 1.08 W
    // compute 1.08 / 1.769 / 1000 = 0.000610514 kWh; memory 1 × 0.000392 kWh
    let f = Resource::Function { gb_seconds: 3600.0, architecture: CpuArchitecture::Arm };
    let e = estimate_resource(&f, 1.0, None, &c).unwrap();
    assert_close(e.it_energy.compute_kwh, 1.08 / 1.769 / 1000.0, "lambda compute");
    assert_close(e.it_energy.memory_kwh, 0.000_392, "lambda memory");
    assert_eq!(e.quality, Quality::Default);

    // Fargate x86, 0.5 vCPU, 1 GB, 2 h, measured 20 %: 0.74 + 0.2 × 2.76 = 1.292 W × 1 vCPU-h = 0.001292 kWh
    let t = Resource::Container { vcpus: 0.5, memory_gb: 1.0, architecture: CpuArchitecture::X86 };
    let e = estimate_resource(&t, 2.0, Some(20.0), &c).unwrap();
    assert_close(e.it_energy.compute_kwh, 0.001_292, "fargate compute");
    assert_close(e.it_energy.memory_kwh, 2.0 * 0.000_392, "fargate memory");
    assert_eq!(e.quality, Quality::Estimated);

    // 5 GB transferred: 5 × 0.001 = 0.005 kWh
    let n = Resource::Transfer { bytes: 5e9 };
    let e = estimate_resource(&n, 1.0, None, &c).unwrap();
    assert_close(e.it_energy.networking_kwh, 0.005, "network");
}

#[test]
fn market_based_uses_configured_share_and_residual() {
    let mut market = MarketConfig::new();
    market
        .set_region("us-east-1", MarketRegion { renewable_share: 0.6, residual_mix_g_co2e_per_kwh: None })
        .unwrap();
    market
        .set_region("eu-west-1", MarketRegion { renewable_share: 0.5, residual_mix_g_co2e_per_kwh: Some(500.0) })
        .unwrap();
    let start = unix_seconds(2024, 6, 1, 0, 0, 0);
    // us-east-1: (1 − 0.6) × 379.069 = 151.6276 g/kWh
    let e = estimate_instance_hours("m5.large", 1.0, Some(50.0), &ctx("us-east-1", start, &market, None)).unwrap();
    assert_close(e.market_factor.g_co2e_per_kwh, 151.6276, "us-east-1 market");
    assert_close(e.operational_market_g_co2e, 0.016_238 * 151.6276, "market co2e");
    // eu-west-1: (1 − 0.5) × 500 = 250 g/kWh
    let e = estimate_instance_hours("m5.large", 1.0, Some(50.0), &ctx("eu-west-1", start, &market, None)).unwrap();
    assert_close(e.market_factor.g_co2e_per_kwh, 250.0, "eu-west-1 market");
}

#[test]
fn hourly_intensity_replaces_the_annual_factor_when_it_covers_the_interval() {
    let market = MarketConfig::new();
    let mut table = HourlyIntensityTable::new();
    let h0 = unix_seconds(2023, 1, 1, 0, 0, 0);
    let hour = |direct| HourlyIntensity { direct_g_co2e_per_kwh: direct, lca_g_co2e_per_kwh: direct * 1.3, estimated: false };
    table.insert("US-CAL-CISO", h0, hour(218.3));
    table.insert("US-CAL-CISO", h0 + 3600, hour(220.63));
    let source: &dyn CarbonIntensitySource = &table;
    // Exact hour: 218.3 g/kWh
    let e = estimate_instance_hours("m5.large", 1.0, Some(50.0), &ctx("us-west-1", h0, &market, Some(source))).unwrap();
    assert_close(e.location_factor.g_co2e_per_kwh, 218.3, "hourly");
    // PUE for 2023 = 1.15: 0.016238 kWh × 218.3 = 3.5447554 g
    assert_close(e.operational_location_g_co2e, 3.544_755_4, "hourly co2e");
    // Interval 00:30–01:30: 0.5 × 218.3 + 0.5 × 220.63 = 219.465
    let e = estimate_instance_hours("m5.large", 1.0, Some(50.0), &ctx("us-west-1", h0 + 1800, &market, Some(source)))
        .unwrap();
    assert_close(e.location_factor.g_co2e_per_kwh, 219.465, "weighted hourly");
    // Uncovered hour → annual factor 322.167 (WECC)
    let e = estimate_instance_hours("m5.large", 1.0, Some(50.0), &ctx("us-west-1", h0 + 7200, &market, Some(source)))
        .unwrap();
    assert_close(e.location_factor.g_co2e_per_kwh, 322.167, "annual fallback");
}

#[test]
fn pue_by_year() {
    assert_eq!(pue(2023).0, 1.15);
    assert_eq!(pue(2025).0, 1.14);
    assert_eq!(pue(2025).1.vintage, "2025");
}

#[test]
fn bounds_contain_the_central_value() {
    let market = MarketConfig::new();
    let c = ctx("eu-central-1", unix_seconds(2024, 1, 1, 0, 0, 0), &market, None);
    for name in ["m5.large", "c7g.xlarge", "g5.xlarge", "p4d.24xlarge", "t3.micro"] {
        for u in [None, Some(0.0), Some(37.0), Some(100.0)] {
            let e = estimate_instance_hours(name, 3.0, u, &c).unwrap();
            let Bounds { low, high } = e.energy_bounds_kwh;
            assert!(low <= e.energy_kwh && e.energy_kwh <= high, "{name} {u:?}");
        }
    }
}

const SAMPLE_TYPES: [&str; 8] =
    ["m5.large", "t3.micro", "c6g.xlarge", "p4d.24xlarge", "c7g.xlarge", "m7i.large", "g5.xlarge", "db.r5.large"];

proptest! {
    #[test]
    fn power_is_monotonic_and_non_negative(idx in 0usize..SAMPLE_TYPES.len(), a in -10.0f64..110.0, b in -10.0f64..110.0) {
        let power = instance_power(SAMPLE_TYPES[idx]).unwrap();
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let (p_lo, p_hi) = (power.power_w(lo), power.power_w(hi));
        prop_assert!(p_lo.cpu_w >= 0.0 && p_lo.memory_w >= 0.0 && p_lo.gpu_w >= 0.0 && p_lo.other_w >= 0.0);
        prop_assert!(p_lo.total_w() <= p_hi.total_w() + 1e-12);
        prop_assert!(p_lo.cpu_w <= p_hi.cpu_w + 1e-12);
        prop_assert!(p_lo.gpu_w <= p_hi.gpu_w + 1e-12);
    }

    #[test]
    fn estimates_are_non_negative(idx in 0usize..SAMPLE_TYPES.len(), hours in 0.0f64..1000.0, u in proptest::option::of(0.0f64..100.0)) {
        let market = MarketConfig::new();
        let c = ctx("ap-southeast-2", unix_seconds(2024, 1, 1, 0, 0, 0), &market, None);
        let e = estimate_instance_hours(SAMPLE_TYPES[idx], hours, u, &c).unwrap();
        prop_assert!(e.energy_kwh >= 0.0 && e.embodied_g_co2e >= 0.0);
        prop_assert!(e.operational_location_g_co2e >= 0.0 && e.energy_bounds_kwh.low >= 0.0);
    }
}
