//! The `ccf` methodology: Cloud Carbon Footprint's AWS CUR pipeline (commit
//! b7a049c, March 2024) reproduced step by step, defects included. Each
//! reproduced defect names its number in the defect table of `docs/methodology.md`.

use std::collections::HashMap;

use super::aggregate::{Aggregator, Contribution, count};
use super::classify::{
    self, BYTE_HOURS_USAGE_TYPES, COMPUTE_UNITS, GB_UNITS, Medium, NETWORKING_USAGE_TYPES, SECONDS_UNITS, STORAGE_UNITS,
    UNKNOWN_USAGE_TYPES, UNSUPPORTED_USAGE_TYPES, contains_any, ends_with_any,
};
use super::engine::GroupedRow;
use super::options::EstimateOptions;
use super::output::{EstimateSummary, NotEstimatedReason};
use super::sum::NeumaierSum;
use crate::coefficients::ccf::{self as k, tables};
use crate::model::Quality;
use crate::time;

/// A grouped row after CCF's clean-up (its `CostAndUsageReportsRow` constructor).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CleanRow<'a> {
    /// Usage type with `xl` → `xlarge` applied (defect 14: only after the vCPU/GPU lookups).
    pub usage_type: String,
    /// Pricing unit after the Fargate and Redshift rewrites.
    pub pricing_unit: &'a str,
    /// Usage amount after the Redshift seconds → hours rewrite.
    pub usage_amount: f64,
    /// vCPU-hours by CCF's rules (NaN when the type is unknown).
    pub vcpu_hours: f64,
    /// GPU-hours (0 for non-GPU types).
    pub gpu_hours: f64,
    /// Replication factor.
    pub replication: f64,
}

/// Applies CCF's row clean-up.
pub(crate) fn clean<'a>(row: &GroupedRow<'a>) -> CleanRow<'a> {
    let redshift_seconds = row.product_code == "AmazonRedshift" && row.pricing_unit == "seconds";
    // Defect 5: Fargate memory is rewritten to GB-Hours, i.e. becomes SSD storage.
    let pricing_unit = if row.usage_type.contains("Fargate-GB-Hours") {
        "GB-Hours"
    } else if redshift_seconds {
        "Hrs"
    } else {
        row.pricing_unit
    };
    let usage_amount = if redshift_seconds { row.usage_amount / 3600.0 } else { row.usage_amount };
    let vcpu_hours = vcpu_hours(row, usage_amount);
    let table_type = classify::table_instance_type(row.usage_type);
    let gpu_hours = match k::instance(table_type).and_then(|i| i.gpu_count) {
        Some(gpus) if is_gpu_usage_type(row.usage_type) => gpus * usage_amount,
        _ => 0.0,
    };
    // Defect 14: the `xl` fix happens after vCPUs and GPUs were looked up.
    let usage_type =
        if row.usage_type.ends_with("xl") { format!("{}arge", row.usage_type) } else { row.usage_type.to_owned() };
    let replication = classify::replication_factor(row.product_code, &usage_type);
    CleanRow { usage_type, pricing_unit, usage_amount, vcpu_hours, gpu_hours, replication }
}

/// Names of the GPU and burstable instance types in CCF's table, listed once.
struct SpecialTypes {
    gpu: Vec<&'static str>,
    burstable: Vec<&'static str>,
}

static SPECIAL_TYPES: std::sync::LazyLock<SpecialTypes> = std::sync::LazyLock::new(|| {
    let instances = &tables().instances;
    SpecialTypes {
        gpu: instances.iter().filter(|(_, i)| i.gpu_count.is_some()).map(|(n, _)| n.as_str()).collect(),
        burstable: instances.iter().filter(|(_, i)| i.burstable_baseline_pct.is_some()).map(|(n, _)| n.as_str()).collect(),
    }
});

/// Whether the usage type names a GPU instance type (memoised per usage type).
fn is_gpu_usage_type(usage_type: &str) -> bool {
    contains_any(&SPECIAL_TYPES.gpu, usage_type)
}

/// Whether the usage type names a burstable instance type (memoised per usage type).
fn burstable_baseline_in(usage_type: &str) -> bool {
    contains_any(&SPECIAL_TYPES.burstable, usage_type)
}

/// CCF's vCPU-hours rules, first match wins.
pub(crate) fn vcpu_hours(row: &GroupedRow<'_>, usage_amount: f64) -> f64 {
    let usage_type = row.usage_type;
    let table_type = classify::table_instance_type(usage_type);
    if row.product_code == "AWSGlue" {
        return 4.0 * usage_amount;
    }
    if row.product_code == "AmazonSimpleDB" {
        return usage_amount;
    }
    if usage_type.contains("Aurora:ServerlessUsage") {
        return usage_amount / 4.0;
    }
    if usage_type.contains("Fargate-vCPU-Hours") || usage_type.contains("CPUCredits") {
        return usage_amount;
    }
    if burstable_baseline_in(usage_type) {
        // Burstables: table vCPUs × baseline / 50; product_vcpu is ignored. The
        // baseline is looked up by the first two dot parts (CCF's
        // `split('.', 2).join('.')`), so `t3.medium.search` finds t3.medium's.
        let key = classify::first_two_parts_key(table_type).unwrap_or(table_type);
        let baseline = k::instance(key).and_then(|i| i.burstable_baseline_pct).unwrap_or(f64::NAN);
        return table_vcpus(row, table_type) * (baseline / k::AVG_CPU_UTILISATION_PCT) * usage_amount;
    }
    match row.product_vcpu {
        Some(v) if v != 0.0 && !v.is_nan() => v * usage_amount,
        _ => table_vcpus(row, table_type) * usage_amount,
    }
}

/// vCPUs from CCF's tables: MSK for Kafka usage types, Redshift (÷ 3600,
/// defect 4) for AmazonRedshift, else EC2; NaN when absent (defect 15).
fn table_vcpus(row: &GroupedRow<'_>, table_type: &str) -> f64 {
    let t = tables();
    if let Some(i) = row.usage_type.rfind("Kafka") {
        return t.msk_vcpus.get(&format!("Kafka{}", &row.usage_type[i + "Kafka".len()..])).copied().unwrap_or(f64::NAN);
    }
    // `family.size` from the first two dot parts: `r5.large.elasticsearch` → r5.large.
    let Some(key) = classify::first_two_parts_key(table_type) else { return f64::NAN };
    if row.product_code == "AmazonRedshift" {
        return t.redshift_vcpus.get(key).map_or(f64::NAN, |v| v / 3600.0);
    }
    k::instance(key).and_then(|i| i.ec2_table_vcpus).unwrap_or(f64::NAN)
}

/// (min, max) watts per vCPU CCF uses for a compute row.
fn cpu_watts(product_code: &str, usage_type: &str) -> (f64, f64) {
    if product_code == "AWSLambda" {
        return if usage_type.ends_with("-ARM") {
            (k::GRAVITON2_MIN_WATTS, k::GRAVITON2_MAX_WATTS)
        } else {
            (k::MIN_WATTS_AVG, k::MAX_WATTS_AVG)
        };
    }
    // Defect 9: `ml.`-prefixed types are not in the processor map → averages.
    k::instance(classify::parsed_instance_type(usage_type))
        .map_or((k::MIN_WATTS_AVG, k::MAX_WATTS_AVG), |i| (i.min_watts_per_vcpu, i.max_watts_per_vcpu))
}

/// Memory GB-hours above SPECpower's baseline, CCF's memory step
/// (`AWSMemoryEstimatesBuilder`): 0 unless the family (first dot part) is in
/// CCF's EC2 or Redshift table; NaN where the table lacks the size.
///
/// A listed type (`r5.large`) uses its precomputed figure, i.e. the memory per
/// chip of its own processors. Any other name (`r5.large.elasticsearch`,
/// `t3.medium.search`) misses CCF's processor map, which CCF looks up by the
/// whole name, so the memory per chip is the unknown-processor 80.69 GB, and it
/// is not in CCF's burstable list either (that check also takes the whole name).
pub(crate) fn extra_memory_gb_hours(parsed_type: &str, instance_hours: f64) -> f64 {
    let t = tables();
    let family = parsed_type.split('.').next().unwrap_or(parsed_type);
    let Some(f) = t.families.get(family) else { return 0.0 };
    if let Some(i) = t.instances.get(parsed_type) {
        if i.burstable_baseline_pct.is_some() {
            return 0.0;
        }
        // Defect 6: t1.micro's 613 GB memory flows through here unchanged.
        return i.extra_memory_gb_per_instance_hour.map_or(f64::NAN, |gb| gb * instance_hours);
    }
    // CCF's calculateGigabyteHours, in its order of operations.
    let delta = f.reference_memory_gib / f.physical_chips - k::MEMORY_AVG_GB_PER_CHIP;
    if delta.is_nan() || delta <= 0.0 {
        return 0.0;
    }
    let type_memory =
        classify::first_two_parts_key(parsed_type).and_then(|key| t.memory_gib.get(key)).copied().unwrap_or(f64::NAN);
    delta / (f.reference_memory_gib / type_memory) * instance_hours
}

/// Embodied t CO2e as coded: `TE × hours / (35040 × vCPU_ref)` (defect 2), with
/// the last-two-dot-parts key, the u-* memory column (defect 13) and the d3 key
/// typo (defect 6). 0 when the lookup fails.
pub(crate) fn embodied_t_co2e(parsed_type: &str, instance_hours: f64) -> f64 {
    let Some((family, size)) = classify::last_two_parts(parsed_type) else { return 0.0 };
    let Some(e) = tables().embodied.get(&format!("{family}.{size}")) else { return 0.0 };
    let Some(te) = e.total_used_by_code_t_co2e else { return 0.0 };
    if te == 0.0 || e.instance_vcpus == 0.0 || e.reference_vcpus == 0.0 {
        return 0.0;
    }
    let reserved_hours = instance_hours / e.instance_vcpus;
    te * (reserved_hours / k::SERVER_EXPECTED_LIFESPAN_HOURS) * (e.instance_vcpus / e.reference_vcpus)
}

/// TB-hours of a storage row by CCF's conversion rules.
pub(crate) fn storage_tb_hours(row: &CleanRow<'_>, period_start_unix_s: i64) -> f64 {
    if ends_with_any(BYTE_HOURS_USAGE_TYPES, &row.usage_type) {
        // Defect 1: CUR reports these in GB-Mo, CCF divides by 2^40.
        row.usage_amount / k::BYTES_PER_TB_BINARY
    } else if row.pricing_unit == "GB-Hours" {
        row.usage_amount / 1000.0
    } else {
        row.usage_amount / 1000.0 * 24.0 * f64::from(time::days_in_month_of(period_start_unix_s))
    }
}

fn truthy(x: f64) -> bool {
    x != 0.0 && !x.is_nan()
}

/// kWh and cost of known rows, per pricing unit across all services.
///
/// Defect 16 (found by running CCF's npm package, not in its documentation):
/// CCF accumulates a per-(service, pricing unit) table too, but the object it
/// builds for each unknown row carries no service name, so that lookup always
/// misses and the all-services ratio for the pricing unit is the one used.
/// The per-service table is therefore not kept here.
#[derive(Default)]
struct RatioTable {
    by_unit: HashMap<Box<str>, (NeumaierSum, NeumaierSum)>,
}

impl RatioTable {
    fn add(&mut self, unit: &str, kwh: f64, cost: f64) {
        if !self.by_unit.contains_key(unit) {
            self.by_unit.insert(unit.into(), Default::default());
        }
        let e = self.by_unit.get_mut(unit).expect("inserted above");
        e.0.add(kwh);
        e.1.add(cost);
    }

    fn merge(&mut self, other: RatioTable) {
        for (unit, (kwh, cost)) in other.by_unit {
            let e = self.by_unit.entry(unit).or_default();
            e.0.merge(kwh);
            e.1.merge(cost);
        }
    }

    /// kWh per cost of every known row with the same pricing unit, if any.
    /// Defect 10: exact pricing-unit strings, blended cost.
    fn ratio(&self, unit: &str) -> Option<f64> {
        self.by_unit.get(unit).map(|(kwh, cost)| kwh.value() / cost.value())
    }
}

/// What one known row produced.
enum Outcome {
    Estimated { kwh: f64, co2e_t: f64, average_cpu: bool, feeds_ratio: bool },
    Dropped(NotEstimatedReason),
}

fn estimate_known(row: &GroupedRow<'_>, c: &CleanRow<'_>) -> Outcome {
    let factor = k::region_t_co2e_per_kwh(row.region);
    let unit = c.pricing_unit;
    if COMPUTE_UNITS.contains(&unit) {
        let (min_w, max_w) = cpu_watts(row.product_code, &c.usage_type);
        let mut kwh = k::average_watts(min_w, max_w) * c.vcpu_hours * k::PUE * c.replication / 1000.0;
        if c.gpu_hours > 0.0 {
            let gpu = k::instance(classify::parsed_instance_type(&c.usage_type));
            let (gmin, gmax) = gpu
                .and_then(|i| Some((i.gpu_min_watts?, i.gpu_max_watts?)))
                .unwrap_or((k::MIN_WATTS_AVG, k::MAX_WATTS_AVG));
            kwh += k::average_watts(gmin, gmax) * c.gpu_hours * k::PUE * c.replication / 1000.0;
        }
        let compute_co2e = kwh * factor;
        if kwh.is_nan() {
            // Defect 15: 0 kWh, NaN CO2e, not added to the ratio table.
            return Outcome::Estimated { kwh: 0.0, co2e_t: f64::NAN, average_cpu: true, feeds_ratio: false };
        }
        let parsed = classify::parsed_instance_type(&c.usage_type);
        // Defect 8: replication multiplies compute and memory too.
        let memory_kwh = extra_memory_gb_hours(parsed, c.usage_amount) * k::MEMORY_KWH_PER_GB_HOUR * k::PUE * c.replication;
        let memory_co2e = memory_kwh * factor;
        let embodied_co2e = embodied_t_co2e(parsed, c.usage_amount);
        // Defect 3: embodied CO2e becomes a kWh figure added to energy.
        let embodied_kwh = embodied_co2e / factor;
        if truthy(memory_co2e) || truthy(embodied_co2e) {
            return Outcome::Estimated {
                kwh: kwh + memory_kwh + embodied_kwh,
                co2e_t: compute_co2e + memory_co2e + embodied_co2e,
                average_cpu: true,
                feeds_ratio: true,
            };
        }
        return Outcome::Estimated { kwh, co2e_t: compute_co2e, average_cpu: true, feeds_ratio: true };
    }
    if STORAGE_UNITS.contains(&unit) {
        let wh_per_tb_hour = match classify::storage_medium(row.product_code, &c.usage_type) {
            Some(Medium::Ssd) => k::SSD_WH_PER_TB_HOUR,
            Some(Medium::Hdd) => k::HDD_WH_PER_TB_HOUR,
            None => return Outcome::Dropped(NotEstimatedReason::StorageMediumUnknown),
        };
        let kwh = storage_tb_hours(c, row.period_start_unix_s) * wh_per_tb_hour * k::PUE * c.replication / 1000.0;
        return Outcome::Estimated { kwh, co2e_t: kwh * factor, average_cpu: false, feeds_ratio: true };
    }
    if SECONDS_UNITS.contains(&unit) {
        // 1 (GB-)second counted as 1 vCPU-second; no memory, no embodied, not in the ratio table.
        let (min_w, max_w) = cpu_watts(row.product_code, &c.usage_type);
        let kwh = k::average_watts(min_w, max_w) * (c.usage_amount / 3600.0) * k::PUE * c.replication / 1000.0;
        return Outcome::Estimated { kwh, co2e_t: kwh * factor, average_cpu: true, feeds_ratio: false };
    }
    if GB_UNITS.contains(&unit) {
        if row.product_code == "AmazonCloudFront" {
            return Outcome::Dropped(NotEstimatedReason::CloudFrontExcluded);
        }
        if !ends_with_any(NETWORKING_USAGE_TYPES, &c.usage_type) {
            return Outcome::Dropped(NotEstimatedReason::GbNotNetworking);
        }
        // Defect 11: internet egress (DataTransfer-Out-Bytes) counts too; no replication.
        let kwh = c.usage_amount * k::NETWORKING_KWH_PER_GB * k::PUE;
        return Outcome::Estimated { kwh, co2e_t: kwh * factor, average_cpu: false, feeds_ratio: true };
    }
    unreachable!("unknown pricing units are routed to the cost-ratio step before this match")
}

fn is_known_unit(unit: &str) -> bool {
    [COMPUTE_UNITS, STORAGE_UNITS, SECONDS_UNITS, GB_UNITS].iter().any(|list| list.contains(&unit))
}

fn contribution(kwh: f64, co2e_t: f64, cost: f64, average_cpu: bool) -> Contribution {
    let kg = co2e_t * 1000.0;
    Contribution {
        energy_kwh: kwh,
        co2e_location_kg: kg,
        co2e_market_kg: kg,
        co2e_low_kg: kg,
        co2e_high_kg: kg,
        it_energy_kwh: f64::NAN,
        embodied_kg: 0.0,
        embodied_low_kg: 0.0,
        embodied_high_kg: 0.0,
        cost,
        quality: if average_cpu { Quality::Default } else { Quality::Estimated },
    }
}

/// CCF's pipeline, fed grouped rows in batches: known rows are estimated as
/// they come (their estimates are linear in usage and cost, so a group split
/// over several batches sums to the same result); unknown rows wait for the
/// final kWh-per-cost ratios.
pub(crate) struct CcfState {
    out: Aggregator,
    ratios: RatioTable,
}

impl CcfState {
    pub(crate) fn new(options: &EstimateOptions) -> Self {
        Self { out: Aggregator::new(options.period, options.by_usage_type), ratios: RatioTable::default() }
    }

    /// Estimates the known rows; returns the indexes of the rows deferred to [`CcfState::finish`].
    pub(crate) fn known(&mut self, rows: &[GroupedRow<'_>], summary: &mut EstimateSummary) -> Vec<usize> {
        let mut deferred = Vec::new();
        for (index, row) in rows.iter().enumerate() {
            let c = clean(row);
            if contains_any(UNSUPPORTED_USAGE_TYPES, &c.usage_type) {
                count(summary, NotEstimatedReason::UnsupportedUsageType, row.blended_cost, row.line_items);
                continue;
            }
            if contains_any(UNKNOWN_USAGE_TYPES, &c.usage_type) || !is_known_unit(c.pricing_unit) {
                deferred.push(index);
                continue;
            }
            match estimate_known(row, &c) {
                Outcome::Estimated { kwh, co2e_t, average_cpu, feeds_ratio } => {
                    if co2e_t.is_nan() {
                        count(summary, NotEstimatedReason::VcpusUnknown, row.blended_cost, row.line_items);
                    }
                    if feeds_ratio {
                        self.ratios.add(c.pricing_unit, kwh, row.blended_cost);
                    }
                    self.out.add(row, contribution(kwh, co2e_t, row.blended_cost, average_cpu));
                }
                Outcome::Dropped(reason) => count(summary, reason, row.blended_cost, row.line_items),
            }
        }
        deferred
    }

    /// Adds another state built over a disjoint part of the input.
    pub(crate) fn merge(&mut self, other: CcfState, translate: impl FnMut(u32) -> u32) {
        self.out.merge(other.out, translate);
        self.ratios.merge(other.ratios);
    }

    /// Estimates the deferred (unknown) rows from the ratios of all known rows.
    pub(crate) fn finish(mut self, unknown: &[GroupedRow<'_>], summary: &mut EstimateSummary) -> Aggregator {
        let any_known = !self.out.is_empty();
        for row in unknown {
            let c = clean(row);
            if !any_known {
                count(summary, NotEstimatedReason::NoKnownRows, row.blended_cost, row.line_items);
                continue;
            }
            let kwh = match self.ratios.ratio(c.pricing_unit) {
                Some(ratio) => ratio * row.blended_cost,
                None => {
                    count(summary, NotEstimatedReason::NoCostRatio, row.blended_cost, row.line_items);
                    0.0
                }
            };
            let co2e_t = kwh * k::region_t_co2e_per_kwh(row.region);
            self.out.add(row, contribution(kwh, co2e_t, row.blended_cost, false));
        }
        self.out
    }
}
