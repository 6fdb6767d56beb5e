//! The when-full policy's first step: fold per-resource emission records
//! into group records with the same totals.

use std::collections::HashMap;

use canopy_protocol::{EmissionRecord, GridFactorUsed, GroupKey, Subject};

use crate::cycle::{Cycle, GroupedEmission};

/// Source and vintage of a grid factor averaged over records whose own
/// factors differed.
const MIXED: &str = "mixed";

/// What [`coarsen`] did to a cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CoarsenReport {
    /// Per-resource emission records folded into group records.
    pub coarsened_records: usize,
    /// Group records in the result that were built from several records.
    pub group_records_built: usize,
    /// Resource inventory records dropped (they carry no emissions).
    pub shed_resource_records: usize,
}

/// Replaces every per-resource emission record with one group record per
/// (group, interval), and drops the resource inventory.
///
/// Totals are kept: each group record's component energies, embodied and
/// operational (location and market) emissions, and low and high bounds
/// are the sums of its members'. The PUE is the IT-energy-weighted mean
/// (so facility energy is kept too); a grid factor shared by all members is
/// kept, different ones become their facility-energy-weighted mean with
/// source and vintage `mixed`; quality is the worst member's; revision the
/// highest; the methodology version the shared one, else `mixed`. A group
/// record already in the cycle is a member of its own (group, interval)
/// like any other, and passes through unchanged when it is the only one.
/// Output order follows each (group, interval)'s first appearance.
///
/// Always the whole cycle: the aggregator lets an hour's group records
/// replace every per-resource record of that hour (of a lower or equal
/// revision), which is exact only because a coarsened cycle's group records
/// hold every resource the cycle reported for the hour.
pub fn coarsen(cycle: &Cycle) -> (Cycle, CoarsenReport) {
    let mut order: Vec<(GroupKey, i64, i64)> = Vec::new();
    let mut members: HashMap<(GroupKey, i64, i64), Vec<&EmissionRecord>> = HashMap::new();
    let mut report = CoarsenReport {
        shed_resource_records: cycle.resources.len(),
        ..CoarsenReport::default()
    };
    for e in &cycle.emissions {
        let group = match &e.record.subject {
            Subject::Group(g) => g.clone(),
            Subject::Resource { .. } => {
                report.coarsened_records += 1;
                e.group.clone()
            }
        };
        let key = (
            group,
            e.record.interval_start_unix_s,
            e.record.interval_end_unix_s,
        );
        members
            .entry(key.clone())
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push(&e.record);
    }
    let emissions = order
        .into_iter()
        .map(|key| {
            let group = key.0.clone();
            let records = &members[&key];
            let record = match records.as_slice() {
                [only] if matches!(only.subject, Subject::Group(_)) => (*only).clone(),
                many => {
                    report.group_records_built += 1;
                    merge(&group, many)
                }
            };
            GroupedEmission { record, group }
        })
        .collect();
    let coarse = Cycle {
        account_id: cycle.account_id.clone(),
        region: cycle.region.clone(),
        created_at_unix_ms: cycle.created_at_unix_ms,
        resources: Vec::new(),
        emissions,
        agent_status: cycle.agent_status.clone(),
    };
    (coarse, report)
}

/// One group record summing `records` (all of one group and interval; at
/// least one).
fn merge(group: &GroupKey, records: &[&EmissionRecord]) -> EmissionRecord {
    let first = records[0];
    let sum = |f: fn(&EmissionRecord) -> f64| records.iter().map(|r| f(r)).sum::<f64>();
    let it_kwh = sum(EmissionRecord::energy_total_kwh);
    let facility_kwh = sum(|r| r.energy_total_kwh() * r.pue);
    let pue = if it_kwh > 0.0 {
        (facility_kwh / it_kwh).max(1.0)
    } else {
        records.iter().map(|r| r.pue).fold(1.0, f64::max)
    };
    let embodied_g_co2e = sum(|r| r.embodied_g_co2e);
    let operational_location_g_co2e = sum(|r| r.operational_location_g_co2e);
    let central = embodied_g_co2e + operational_location_g_co2e;
    EmissionRecord {
        subject: Subject::Group(group.clone()),
        interval_start_unix_s: first.interval_start_unix_s,
        interval_end_unix_s: first.interval_end_unix_s,
        energy_compute_kwh: sum(|r| r.energy_compute_kwh),
        energy_memory_kwh: sum(|r| r.energy_memory_kwh),
        energy_storage_kwh: sum(|r| r.energy_storage_kwh),
        energy_networking_kwh: sum(|r| r.energy_networking_kwh),
        energy_accelerators_kwh: sum(|r| r.energy_accelerators_kwh),
        pue,
        embodied_g_co2e,
        operational_location_g_co2e,
        operational_market_g_co2e: sum(|r| r.operational_market_g_co2e),
        grid_location: merged_grid(records, |r| &r.grid_location),
        grid_market: merged_grid(records, |r| &r.grid_market),
        quality: records
            .iter()
            .map(|r| r.quality)
            .max()
            .unwrap_or(first.quality),
        // Sums of bounds bracket the sum of centrals; the min/max only
        // absorbs a last-bit rounding difference between the two sums.
        low_g_co2e: sum(|r| r.low_g_co2e).min(central),
        high_g_co2e: sum(|r| r.high_g_co2e).max(central),
        methodology_version: if records
            .iter()
            .all(|r| r.methodology_version == first.methodology_version)
        {
            first.methodology_version.clone()
        } else {
            MIXED.into()
        },
        revision: records.iter().map(|r| r.revision).max().unwrap_or(0),
    }
}

fn merged_grid(
    records: &[&EmissionRecord],
    pick: fn(&EmissionRecord) -> &GridFactorUsed,
) -> GridFactorUsed {
    let first = pick(records[0]);
    if records.iter().all(|r| pick(r) == first) {
        return first.clone();
    }
    let weight = |r: &EmissionRecord| r.energy_total_kwh() * r.pue;
    let total_weight: f64 = records.iter().map(|r| weight(r)).sum();
    let g_co2e_per_kwh = if total_weight > 0.0 {
        records
            .iter()
            .map(|r| weight(r) * pick(r).g_co2e_per_kwh)
            .sum::<f64>()
            / total_weight
    } else {
        records.iter().map(|r| pick(r).g_co2e_per_kwh).sum::<f64>() / records.len() as f64
    };
    GridFactorUsed {
        g_co2e_per_kwh,
        source: MIXED.into(),
        vintage: MIXED.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample;

    fn approx(a: f64, b: f64) {
        assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{a} != {b}");
    }

    #[test]
    fn two_resources_of_one_team_become_one_group_record() {
        // sample::emission(i, hour): compute 0.010 * (i + 1) kWh, memory
        // 0.002 kWh, pue 1.135, grid 334 g/kWh, embodied 1.5 g.
        let cycle = sample::cycle(2, 1, 1);
        let (coarse, report) = coarsen(&cycle);
        assert_eq!(coarse.emissions.len(), 1);
        assert_eq!(report.coarsened_records, 2);
        assert_eq!(report.group_records_built, 1);
        assert_eq!(report.shed_resource_records, 2);
        let g = &coarse.emissions[0].record;
        // compute 0.010 + 0.020 = 0.030 kWh; memory 2 * 0.002 = 0.004 kWh
        approx(g.energy_compute_kwh, 0.030);
        approx(g.energy_memory_kwh, 0.004);
        // same PUE everywhere stays 1.135
        approx(g.pue, 1.135);
        // operational location = (0.012 + 0.022) * 1.135 * 334 = 12.889...
        approx(g.operational_location_g_co2e, 0.034 * 1.135 * 334.0);
        approx(g.embodied_g_co2e, 3.0);
        assert_eq!(g.grid_location, cycle.emissions[0].record.grid_location);
        assert!(matches!(g.subject, Subject::Group(_)));
    }

    #[test]
    fn different_grid_factors_average_by_facility_energy() {
        let mut cycle = sample::cycle(2, 1, 1);
        cycle.emissions[1].record.grid_location.g_co2e_per_kwh = 100.0;
        let (coarse, _) = coarsen(&cycle);
        let g = &coarse.emissions[0].record;
        // weights 0.012 and 0.022 kWh (same PUE cancels):
        // (0.012 * 334 + 0.022 * 100) / 0.034 = 182.588...
        approx(
            g.grid_location.g_co2e_per_kwh,
            (0.012 * 334.0 + 0.022 * 100.0) / 0.034,
        );
        assert_eq!(g.grid_location.source, "mixed");
    }

    #[test]
    fn lone_group_record_passes_through_unchanged() {
        let mut cycle = sample::cycle(1, 1, 1);
        let group = cycle.emissions[0].group.clone();
        cycle.emissions[0].record.subject = Subject::Group(group);
        let (coarse, report) = coarsen(&cycle);
        assert_eq!(coarse.emissions[0].record, cycle.emissions[0].record);
        assert_eq!(report.coarsened_records, 0);
        assert_eq!(report.group_records_built, 0);
    }
}
