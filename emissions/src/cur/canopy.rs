//! The `canopy` methodology: CCF's classification machinery with each CCF
//! defect fixed (table in `docs/methodology.md`), built on
//! [`crate::model`] (measured power curves, per-year PUE, size-aware embodied)
//! and [`crate::grid`] (hourly and market-based intensity).

use std::collections::HashMap;

use super::aggregate::{Aggregator, Contribution, count};
use super::classify::{
    self, COMPUTE_UNITS, GB_UNITS, Medium, NETWORKING_USAGE_TYPES, SECONDS_UNITS, STORAGE_UNITS, UNKNOWN_USAGE_TYPES,
    UNSUPPORTED_USAGE_TYPES, contains_any, ends_with_any,
};
use super::engine::GroupedRow;
use super::options::EstimateOptions;
use super::output::{EstimateSummary, NotEstimatedReason};
use super::sum::NeumaierSum;
use crate::grid::{self, GridFactor};
use crate::model::{
    self, Bounds, CpuArchitecture, DEFAULT_CPU_UTILISATION_HIGH_PCT, DEFAULT_CPU_UTILISATION_LOW_PCT,
    DEFAULT_CPU_UTILISATION_PCT, InstancePower, Quality, StorageMedium,
};
use crate::time;

/// MB of Lambda memory that buys one vCPU (AWS Lambda documentation: "at
/// 1,769 MB, a function has the equivalent of one vCPU").
pub(crate) const LAMBDA_MB_PER_VCPU: f64 = 1769.0;
/// Relative uncertainty applied to embodied emissions (project judgment:
/// platform LCAs disagree by about a factor of two).
pub(crate) const EMBODIED_UNCERTAINTY: f64 = 0.5;
/// Bounds of a cost-ratio estimate: from nothing to twice the central value.
const COST_RATIO_HIGH_FACTOR: f64 = 2.0;

/// Usage-type markers of internet transfer, outside Canopy's networking scope.
pub(crate) const INTERNET_TRANSFER: &[&str] = &["DataTransfer-Out-Bytes", "DataTransfer-In-Bytes", "CloudFront"];

/// Usage types with no energy of their own (surcharges on instance hours already counted).
pub(crate) const SURCHARGE_USAGE_TYPES: &[&str] = &["EBSOptimized"];

fn unit_in(list: &[&str], unit: &str) -> bool {
    list.iter().any(|u| u.eq_ignore_ascii_case(unit))
}

/// Energy of one row with bounds, plus embodied CO2e reported separately.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RowEnergy {
    pub kwh: f64,
    pub kwh_bounds: Bounds,
    pub embodied_kg: f64,
    pub embodied_bounds_kg: Bounds,
    pub quality: Quality,
}

impl RowEnergy {
    fn operational(kwh: f64, kwh_bounds: Bounds, quality: Quality) -> Self {
        RowEnergy { kwh, kwh_bounds, embodied_kg: 0.0, embodied_bounds_kg: Bounds::exact(0.0), quality }
    }
}

enum Outcome {
    Estimated(RowEnergy),
    Deferred,
    Dropped(NotEstimatedReason),
}

fn pue_for(period_start_unix_s: i64) -> f64 {
    model::pue(time::civil_date(period_start_unix_s).year).0
}

/// Compute energy of `instance_hours` of an instance at unknown utilisation:
/// central at the default utilisation, bounds from the idle/full-load powers
/// widened by the model's coefficient uncertainty.
pub(crate) fn instance_energy(power: &InstancePower, instance_hours: f64, pue: f64) -> (f64, Bounds) {
    let kwh = |util: f64| power.power_w(util).total_w() * instance_hours * pue / 1000.0;
    let unc = power.coefficient_uncertainty();
    let central = kwh(DEFAULT_CPU_UTILISATION_PCT);
    let bounds = Bounds {
        low: kwh(DEFAULT_CPU_UTILISATION_LOW_PCT) * (1.0 - unc).max(0.0),
        high: kwh(DEFAULT_CPU_UTILISATION_HIGH_PCT) * (1.0 + unc),
    };
    (central, bounds)
}

/// Energy of `vcpu_hours` of serverless/managed vCPUs (no instance type).
pub(crate) fn vcpu_energy(arch: CpuArchitecture, vcpu_hours: f64, pue: f64) -> (f64, Bounds) {
    let kwh = |util: f64| model::vcpu_power_w(arch, util).0 * vcpu_hours * pue / 1000.0;
    let unc = model::COEFFICIENT_UNCERTAINTY;
    let central = kwh(DEFAULT_CPU_UTILISATION_PCT);
    (
        central,
        Bounds {
            low: kwh(DEFAULT_CPU_UTILISATION_LOW_PCT) * (1.0 - unc),
            high: kwh(DEFAULT_CPU_UTILISATION_HIGH_PCT) * (1.0 + unc),
        },
    )
}

fn arch_of(usage_type: &str) -> CpuArchitecture {
    if usage_type.contains("ARM") || usage_type.contains("Arm") { CpuArchitecture::Arm } else { CpuArchitecture::X86 }
}

fn compute(row: &GroupedRow<'_>, hours_amount: f64, pue: f64) -> Outcome {
    let usage_type = row.usage_type;
    if contains_any(SURCHARGE_USAGE_TYPES, usage_type) {
        return Outcome::Dropped(NotEstimatedReason::UnsupportedUsageType);
    }
    // Managed vCPU capacity without an instance type: vCPU-hours by CCF's service rules.
    let managed_vcpu_hours = if row.product_code == "AWSGlue" {
        Some(4.0 * hours_amount)
    } else if row.product_code == "AmazonSimpleDB" {
        Some(hours_amount)
    } else if usage_type.contains("Aurora:ServerlessUsage") {
        Some(hours_amount / 4.0)
    } else if usage_type.contains("Fargate-vCPU-Hours") || usage_type.contains("CPUCredits") {
        Some(hours_amount)
    } else {
        None
    };
    if let Some(vcpu_hours) = managed_vcpu_hours {
        let (kwh, bounds) = vcpu_energy(arch_of(usage_type), vcpu_hours, pue);
        return Outcome::Estimated(RowEnergy::operational(kwh, bounds, Quality::Default));
    }
    let instance_type = classify::parsed_instance_type(usage_type);
    let power = model::instance_power(instance_type).or_else(|| match row.product_vcpu {
        Some(v) if v > 0.0 => Some(InstancePower::fleet_average(v)),
        _ => None,
    });
    let Some(power) = power else { return Outcome::Dropped(NotEstimatedReason::VcpusUnknown) };
    let (kwh, kwh_bounds) = instance_energy(&power, hours_amount, pue);
    let (embodied_kg, embodied_bounds_kg) = match model::embodied_g_co2e_per_instance_hour(instance_type) {
        Some((g, _)) => {
            let kg = g * hours_amount / 1000.0;
            (kg, Bounds::exact(kg).widen(EMBODIED_UNCERTAINTY))
        }
        None => (0.0, Bounds::exact(0.0)),
    };
    // Utilisation is unknown in a CUR; its effect is carried by the bounds, so the
    // flag reflects the power model (never better than Estimated).
    let quality = power.quality().worst(Quality::Estimated);
    Outcome::Estimated(RowEnergy { kwh, kwh_bounds, embodied_kg, embodied_bounds_kg, quality })
}

/// Lambda GB-seconds: the vCPU share AWS allocates for the memory size plus
/// the memory itself.
pub(crate) fn lambda_energy(usage_type: &str, gb_seconds: f64, pue: f64) -> (f64, Bounds) {
    let gb_hours = gb_seconds / 3600.0;
    let vcpu_hours = gb_hours * 1024.0 / LAMBDA_MB_PER_VCPU;
    let (cpu_kwh, cpu_bounds) = vcpu_energy(arch_of(usage_type), vcpu_hours, pue);
    let memory_kwh = model::memory_kwh(gb_hours) * pue;
    (cpu_kwh + memory_kwh, cpu_bounds.plus(Bounds::exact(memory_kwh).widen(model::COEFFICIENT_UNCERTAINTY)))
}

/// TB-hours of a storage row: every GB-month spelling (ByteHrs usage types
/// included, which CUR reports in GB-Mo) by the days of the row's month.
pub(crate) fn storage_tb_hours(pricing_unit: &str, amount: f64, period_start_unix_s: i64) -> f64 {
    if pricing_unit.eq_ignore_ascii_case("GB-Hours") {
        amount / 1000.0
    } else {
        amount * 24.0 * f64::from(time::days_in_month_of(period_start_unix_s)) / 1000.0
    }
}

fn estimate_known(row: &GroupedRow<'_>) -> Outcome {
    let pue = pue_for(row.period_start_unix_s);
    let usage_type = row.usage_type;
    let unit = row.pricing_unit;
    let coefficient = |kwh: f64| Bounds::exact(kwh).widen(model::COEFFICIENT_UNCERTAINTY);
    if usage_type.contains("Fargate-GB-Hours") {
        let kwh = model::memory_kwh(row.usage_amount) * pue;
        return Outcome::Estimated(RowEnergy::operational(kwh, coefficient(kwh), Quality::Estimated));
    }
    if row.product_code == "AmazonRedshift" && unit.eq_ignore_ascii_case("seconds") {
        return compute(row, row.usage_amount / 3600.0, pue);
    }
    if unit_in(COMPUTE_UNITS, unit) {
        return compute(row, row.usage_amount, pue);
    }
    if unit_in(STORAGE_UNITS, unit) {
        let medium = match classify::storage_medium(row.product_code, usage_type) {
            Some(Medium::Ssd) => StorageMedium::Ssd,
            Some(Medium::Hdd) => StorageMedium::Hdd,
            None => return Outcome::Deferred,
        };
        let tb_hours = storage_tb_hours(unit, row.usage_amount, row.period_start_unix_s);
        let kwh = model::storage_kwh(tb_hours, medium, classify::replication_factor(row.product_code, usage_type)) * pue;
        return Outcome::Estimated(RowEnergy::operational(kwh, coefficient(kwh), Quality::Estimated));
    }
    if unit_in(SECONDS_UNITS, unit) {
        let (kwh, bounds) = if usage_type.contains("GB-Second") || unit.eq_ignore_ascii_case("Lambda-GB-Second") {
            lambda_energy(usage_type, row.usage_amount, pue)
        } else {
            vcpu_energy(arch_of(usage_type), row.usage_amount / 3600.0, pue)
        };
        return Outcome::Estimated(RowEnergy::operational(kwh, bounds, Quality::Default));
    }
    if unit_in(GB_UNITS, unit) {
        if row.product_code == "AmazonCloudFront" || contains_any(INTERNET_TRANSFER, usage_type) {
            return Outcome::Dropped(NotEstimatedReason::InternetEgressExcluded);
        }
        if !ends_with_any(NETWORKING_USAGE_TYPES, usage_type) {
            return Outcome::Deferred;
        }
        let kwh = model::networking_kwh(row.usage_amount) * pue;
        return Outcome::Estimated(RowEnergy::operational(kwh, coefficient(kwh), Quality::Estimated));
    }
    Outcome::Deferred
}

/// Location-based and market-based factors for a row (hourly when configured).
fn factors(row: &GroupedRow<'_>, options: &EstimateOptions) -> (GridFactor, GridFactor) {
    let hourly = options.canopy.intensity.as_ref().and_then(|source| {
        let zone = grid::zone_for_region(row.region)?;
        source.intensity(zone, time::hour_start(row.period_start_unix_s))
    });
    let location = hourly.unwrap_or_else(|| grid::location_factor(row.region));
    let market = options.canopy.market.market_factor(row.region, &location);
    (location, market)
}

fn contribution(row: &GroupedRow<'_>, e: &RowEnergy, options: &EstimateOptions) -> Contribution {
    let (location, market) = factors(row, options);
    let kg = |kwh: f64, f: &GridFactor| kwh * f.g_co2e_per_kwh / 1000.0;
    Contribution {
        energy_kwh: e.kwh,
        co2e_location_kg: kg(e.kwh, &location) + e.embodied_kg,
        co2e_market_kg: kg(e.kwh, &market) + e.embodied_kg,
        co2e_low_kg: kg(e.kwh_bounds.low, &location) + e.embodied_bounds_kg.low,
        co2e_high_kg: kg(e.kwh_bounds.high, &location) + e.embodied_bounds_kg.high,
        // Every energy figure of this methodology is IT energy × the year's PUE.
        it_energy_kwh: e.kwh / pue_for(row.period_start_unix_s),
        embodied_kg: e.embodied_kg,
        embodied_low_kg: e.embodied_bounds_kg.low,
        embodied_high_kg: e.embodied_bounds_kg.high,
        cost: row.unblended_cost,
        quality: e.quality,
    }
}

/// Sums of known rows used to estimate unknown ones, keyed by product code and
/// lower-cased pricing unit.
#[derive(Default)]
struct Similar {
    /// (kWh, usage amount) per (product, unit).
    by_usage: HashMap<(String, String), (NeumaierSum, NeumaierSum)>,
    /// (kWh, cost) per (product, unit) and per unit.
    by_cost: HashMap<(String, String), (NeumaierSum, NeumaierSum)>,
    by_cost_unit: HashMap<String, (NeumaierSum, NeumaierSum)>,
}

fn add_pair(e: &mut (NeumaierSum, NeumaierSum), a: f64, b: f64) {
    e.0.add(a);
    e.1.add(b);
}

fn merge_pairs<K: std::hash::Hash + Eq>(into: &mut HashMap<K, (NeumaierSum, NeumaierSum)>, from: HashMap<K, (NeumaierSum, NeumaierSum)>) {
    for (key, (a, b)) in from {
        let e = into.entry(key).or_default();
        e.0.merge(a);
        e.1.merge(b);
    }
}

impl Similar {
    fn add(&mut self, row: &GroupedRow<'_>, kwh: f64) {
        let key = (row.product_code.to_owned(), row.pricing_unit.to_ascii_lowercase());
        add_pair(self.by_usage.entry(key.clone()).or_default(), kwh, row.usage_amount);
        add_pair(self.by_cost.entry(key.clone()).or_default(), kwh, row.unblended_cost);
        add_pair(self.by_cost_unit.entry(key.1).or_default(), kwh, row.unblended_cost);
    }

    fn merge(&mut self, other: Similar) {
        merge_pairs(&mut self.by_usage, other.by_usage);
        merge_pairs(&mut self.by_cost, other.by_cost);
        merge_pairs(&mut self.by_cost_unit, other.by_cost_unit);
    }

    /// kWh of an unknown row and its quality: per unit of usage of the same
    /// product and unit; else per cost (same product and unit, else same unit).
    fn estimate(&self, row: &GroupedRow<'_>) -> Option<(f64, Bounds, Quality)> {
        let key = (row.product_code.to_owned(), row.pricing_unit.to_ascii_lowercase());
        let value = |(kwh, base): &(NeumaierSum, NeumaierSum)| (kwh.value(), base.value());
        let usable = |(kwh, base): &(f64, f64)| *base > 0.0 && kwh.is_finite();
        if let Some((kwh, amount)) = self.by_usage.get(&key).map(value).filter(usable) {
            let central = kwh / amount * row.usage_amount;
            return Some((central, Bounds::exact(central).widen(model::COEFFICIENT_UNCERTAINTY), Quality::Estimated));
        }
        let (kwh, cost) = self
            .by_cost
            .get(&key)
            .map(value)
            .filter(usable)
            .or_else(|| self.by_cost_unit.get(&key.1).map(value).filter(usable))?;
        let central = kwh / cost * row.unblended_cost.max(0.0);
        Some((central, Bounds { low: 0.0, high: central * COST_RATIO_HIGH_FACTOR }, Quality::Default))
    }
}

/// The canopy methodology, fed grouped rows in batches: known rows are
/// estimated as they come; unknown ones wait for the sums of similar known rows.
pub(crate) struct CanopyState {
    options: EstimateOptions,
    out: Aggregator,
    similar: Similar,
}

impl CanopyState {
    pub(crate) fn new(options: &EstimateOptions) -> Self {
        Self {
            options: options.clone(),
            out: Aggregator::new(options.period, options.by_usage_type),
            similar: Similar::default(),
        }
    }

    /// Estimates the known rows; returns the indexes of the rows deferred to [`CanopyState::finish`].
    pub(crate) fn known(&mut self, rows: &[GroupedRow<'_>], summary: &mut EstimateSummary) -> Vec<usize> {
        let mut deferred = Vec::new();
        for (index, row) in rows.iter().enumerate() {
            if contains_any(UNSUPPORTED_USAGE_TYPES, row.usage_type) {
                count(summary, NotEstimatedReason::UnsupportedUsageType, row.unblended_cost, row.line_items);
                continue;
            }
            if contains_any(UNKNOWN_USAGE_TYPES, row.usage_type) {
                deferred.push(index);
                continue;
            }
            match estimate_known(row) {
                Outcome::Estimated(e) => {
                    self.similar.add(row, e.kwh);
                    self.out.add(row, contribution(row, &e, &self.options));
                }
                Outcome::Deferred => deferred.push(index),
                Outcome::Dropped(reason) => count(summary, reason, row.unblended_cost, row.line_items),
            }
        }
        deferred
    }

    /// Adds another state built over a disjoint part of the input.
    pub(crate) fn merge(&mut self, other: CanopyState, translate: impl FnMut(u32) -> u32) {
        self.out.merge(other.out, translate);
        self.similar.merge(other.similar);
    }

    /// Estimates the deferred rows from similar known rows.
    pub(crate) fn finish(mut self, unknown: &[GroupedRow<'_>], summary: &mut EstimateSummary) -> Aggregator {
        for row in unknown {
            let e = match self.similar.estimate(row) {
                Some((kwh, kwh_bounds, quality)) => RowEnergy::operational(kwh, kwh_bounds, quality),
                None => {
                    count(summary, NotEstimatedReason::NoCostRatio, row.unblended_cost, row.line_items);
                    RowEnergy::operational(0.0, Bounds::exact(0.0), Quality::Default)
                }
            };
            self.out.add(row, contribution(row, &e, &self.options));
        }
        self.out
    }
}
