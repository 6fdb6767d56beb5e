//! Edge precompute: inventory + utilisation → emission records, with
//! `canopy_emissions::model::estimate_resource`.
//!
//! - Per-resource records are hourly; per-group records (service, resource
//!   type, team within the agent's account and region) are 5-minute.
//! - Revision 1 = provisional (last known utilisation), revision 2 =
//!   measured (the utilisation fetch covering the interval has landed);
//!   the aggregator keeps the highest revision per record key.
//! - Quality comes from the emissions library: instances with no CPU
//!   datapoint use its documented default utilisation
//!   (`DEFAULT_CPU_UTILISATION_PCT`, bounds 0–100 %) and are `default`.
//!   Lambda with a known duration is estimated at the serverless model's
//!   default CPU share during billed time (quality `estimated`); Fargate
//!   tasks have no CPU metric here and are `default`.

use std::collections::BTreeMap;

use canopy_emissions::grid::MarketConfig;
use canopy_emissions::model::{
    self, CpuArchitecture as ModelArch, DEFAULT_CPU_UTILISATION_PCT, EstimateContext, EstimateError, ResourceEstimate,
};
use canopy_protocol::{CpuArchitecture, EmissionRecord, GridFactorUsed, GroupKey, Quality, Subject};

use crate::inventory::{Basis, Resource, StoragePart};
use crate::utilisation::UtilisationValue;

/// Revision of records computed from last known utilisation.
pub const REVISION_PROVISIONAL: u32 = 1;
/// Revision of records computed from measured utilisation.
pub const REVISION_MEASURED: u32 = 2;
/// Decimal bytes per GB (the emissions model's storage sizes are decimal GB).
pub const BYTES_PER_GB: f64 = 1e9;

/// Turns resources into emission records for one region.
#[derive(Debug, Clone)]
pub struct Estimator {
    region: String,
    market: MarketConfig,
    team_tag_keys: Vec<String>,
}

fn model_arch(a: CpuArchitecture) -> ModelArch {
    match a {
        CpuArchitecture::Arm64 => ModelArch::Arm,
        _ => ModelArch::X86,
    }
}

fn protocol_quality(q: model::Quality) -> Quality {
    match q {
        model::Quality::Measured => Quality::Measured,
        model::Quality::Estimated => Quality::Estimated,
        model::Quality::Default => Quality::Default,
    }
}

fn record_from(subject: Subject, start: i64, end: i64, e: &ResourceEstimate, revision: u32) -> EmissionRecord {
    let grid = |f: &canopy_emissions::grid::GridFactor| GridFactorUsed {
        g_co2e_per_kwh: f.g_co2e_per_kwh,
        source: f.provenance.source.to_owned(),
        vintage: f.provenance.vintage.to_owned(),
    };
    EmissionRecord {
        subject,
        interval_start_unix_s: start,
        interval_end_unix_s: end,
        energy_compute_kwh: e.it_energy.compute_kwh,
        energy_memory_kwh: e.it_energy.memory_kwh,
        energy_storage_kwh: e.it_energy.storage_kwh,
        energy_networking_kwh: e.it_energy.networking_kwh,
        energy_accelerators_kwh: e.it_energy.accelerators_kwh,
        pue: e.pue,
        embodied_g_co2e: e.embodied_g_co2e,
        operational_location_g_co2e: e.operational_location_g_co2e,
        operational_market_g_co2e: e.operational_market_g_co2e,
        grid_location: grid(&e.location_factor),
        grid_market: grid(&e.market_factor),
        quality: protocol_quality(e.quality),
        low_g_co2e: e.embodied_g_co2e + e.operational_location_bounds_g_co2e.low,
        high_g_co2e: e.embodied_g_co2e + e.operational_location_bounds_g_co2e.high,
        methodology_version: e.methodology.to_owned(),
        revision,
    }
}

/// Adds one library estimate's quantities into `a` (same interval);
/// quality is the worst.
pub fn add_estimate(a: &mut EmissionRecord, e: &ResourceEstimate) {
    a.energy_compute_kwh += e.it_energy.compute_kwh;
    a.energy_memory_kwh += e.it_energy.memory_kwh;
    a.energy_storage_kwh += e.it_energy.storage_kwh;
    a.energy_networking_kwh += e.it_energy.networking_kwh;
    a.energy_accelerators_kwh += e.it_energy.accelerators_kwh;
    a.embodied_g_co2e += e.embodied_g_co2e;
    a.operational_location_g_co2e += e.operational_location_g_co2e;
    a.operational_market_g_co2e += e.operational_market_g_co2e;
    a.low_g_co2e += e.embodied_g_co2e + e.operational_location_bounds_g_co2e.low;
    a.high_g_co2e += e.embodied_g_co2e + e.operational_location_bounds_g_co2e.high;
    a.quality = a.quality.max(protocol_quality(e.quality));
}

/// Sums the estimates of one interval into group records without building
/// a record per resource: `items` are (service, resource type, team, estimates).
pub fn group_estimates<'a>(
    start: i64,
    end: i64,
    revision: u32,
    items: impl IntoIterator<Item = ((&'a str, &'a str, Option<&'a str>), Vec<ResourceEstimate>)>,
) -> Vec<EmissionRecord> {
    let mut groups: BTreeMap<(&'a str, &'a str, Option<&'a str>), EmissionRecord> = BTreeMap::new();
    for (key, estimates) in items {
        for e in &estimates {
            match groups.get_mut(&key) {
                Some(g) => add_estimate(g, e),
                None => {
                    let subject = Subject::Group(GroupKey {
                        service: key.0.to_owned(),
                        resource_type: key.1.to_owned(),
                        team: key.2.map(str::to_owned),
                    });
                    groups.insert(key, record_from(subject, start, end, e, revision));
                }
            }
        }
    }
    groups.into_values().collect()
}

/// Adds `b`'s quantities into `a` (same interval); quality is the worst.
pub fn accumulate(a: &mut EmissionRecord, b: &EmissionRecord) {
    a.energy_compute_kwh += b.energy_compute_kwh;
    a.energy_memory_kwh += b.energy_memory_kwh;
    a.energy_storage_kwh += b.energy_storage_kwh;
    a.energy_networking_kwh += b.energy_networking_kwh;
    a.energy_accelerators_kwh += b.energy_accelerators_kwh;
    a.embodied_g_co2e += b.embodied_g_co2e;
    a.operational_location_g_co2e += b.operational_location_g_co2e;
    a.operational_market_g_co2e += b.operational_market_g_co2e;
    a.low_g_co2e += b.low_g_co2e;
    a.high_g_co2e += b.high_g_co2e;
    a.quality = a.quality.max(b.quality);
    a.revision = a.revision.max(b.revision);
}

impl Estimator {
    /// An estimator for `region` with market configuration `market`.
    pub fn new(region: &str, market: MarketConfig, team_tag_keys: Vec<String>) -> Estimator {
        Estimator { region: region.to_owned(), market, team_tag_keys }
    }

    /// Team tag keys, in the order they are tried.
    pub fn team_tag_keys(&self) -> &[String] {
        &self.team_tag_keys
    }

    /// The group a resource's group records go to.
    pub fn group_key(&self, r: &Resource) -> GroupKey {
        GroupKey {
            service: r.service.to_owned(),
            resource_type: r.resource_type.to_owned(),
            team: r.team(&self.team_tag_keys).map(str::to_owned),
        }
    }

    fn ctx(&self, start: i64) -> EstimateContext<'_> {
        EstimateContext { region: &self.region, interval_start_unix_s: start, market: &self.market, hourly: None }
    }

    fn storage(&self, parts: &[StoragePart], hours: f64, start: i64) -> Result<Vec<ResourceEstimate>, EstimateError> {
        parts
            .iter()
            .map(|p| {
                let resource = model::Resource::Storage {
                    gb: p.bytes as f64 / BYTES_PER_GB,
                    medium: p.medium,
                    replication: p.replication,
                };
                model::estimate_resource(&resource, hours, None, &self.ctx(start))
            })
            .collect()
    }

    /// The record of `r` over `[start, end)` with utilisation `util`, or
    /// `None` when the resource uses no energy of its own in the interval
    /// (stopped compute, counted elsewhere, unknown size or duration).
    pub fn estimate(
        &self,
        r: &Resource,
        start: i64,
        end: i64,
        util: UtilisationValue,
        revision: u32,
    ) -> Result<Option<EmissionRecord>, EstimateError> {
        let Some(estimates) = self.estimates(r, start, end, util)? else { return Ok(None) };
        let subject = Subject::Resource { arn: r.arn.clone() };
        let mut record = record_from(subject, start, end, &estimates[0], revision);
        for e in &estimates[1..] {
            add_estimate(&mut record, e);
        }
        Ok(Some(record))
    }

    /// The library estimates behind [`Estimator::estimate`] (one per
    /// component: instance, attached storage parts), or `None` as there.
    pub fn estimates(
        &self,
        r: &Resource,
        start: i64,
        end: i64,
        util: UtilisationValue,
    ) -> Result<Option<Vec<ResourceEstimate>>, EstimateError> {
        if !(r.is_active() || (r.last_seen_unix_s > start && r.lifecycle == canopy_protocol::LifecycleState::Terminated))
        {
            return Ok(None);
        }
        let hours = (end - start) as f64 / 3_600.0;
        let cpu = match util {
            UtilisationValue::CpuPct(c) => c,
            UtilisationValue::DurationMs(_) => None,
        };
        let estimates: Vec<ResourceEstimate> = match &r.basis {
            Basis::Instance { instance_type, count, storage } => {
                let resource = model::Resource::Instance { instance_type, vcpus_if_unknown: r.vcpus };
                let mut all =
                    vec![model::estimate_resource(&resource, hours * f64::from(*count), cpu, &self.ctx(start))?];
                all.extend(self.storage(storage, hours, start)?);
                all
            }
            Basis::Storage(parts) if parts.is_empty() => return Ok(None),
            Basis::Storage(parts) => self.storage(parts, hours, start)?,
            Basis::Function { memory_mb, architecture } => {
                let UtilisationValue::DurationMs(Some(ms)) = util else { return Ok(None) };
                let gb_seconds = ms / 1_000.0 * f64::from(*memory_mb) / 1_024.0;
                let resource = model::Resource::Function { gb_seconds, architecture: model_arch(*architecture) };
                vec![model::estimate_resource(&resource, hours, Some(DEFAULT_CPU_UTILISATION_PCT), &self.ctx(start))?]
            }
            Basis::Container { vcpus, memory_mib, architecture } => {
                let resource = model::Resource::Container {
                    vcpus: *vcpus,
                    memory_gb: *memory_mib as f64 / 1_024.0,
                    architecture: model_arch(*architecture),
                };
                vec![model::estimate_resource(&resource, hours, cpu, &self.ctx(start))?]
            }
            Basis::CountedElsewhere => return Ok(None),
        };
        Ok(if estimates.is_empty() { None } else { Some(estimates) })
    }

    /// Sums per-resource records of one interval into group records.
    pub fn group(&self, items: impl IntoIterator<Item = (GroupKey, EmissionRecord)>) -> Vec<EmissionRecord> {
        let mut groups: BTreeMap<GroupKey, EmissionRecord> = BTreeMap::new();
        for (key, record) in items {
            match groups.get_mut(&key) {
                Some(g) => accumulate(g, &record),
                None => {
                    let mut g = record;
                    g.subject = Subject::Group(key.clone());
                    groups.insert(key, g);
                }
            }
        }
        groups.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Basis;
    use canopy_emissions::model::{StorageMedium, instance_power, pue};
    use canopy_protocol::LifecycleState;

    const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    fn estimator() -> Estimator {
        Estimator::new("eu-west-1", MarketConfig::new(), vec!["Team".into()])
    }

    fn instance(instance_type: &str) -> Resource {
        let mut r = Resource::new(
            "ec2",
            "ec2",
            "instance",
            format!("arn:aws:ec2:eu-west-1:123456789012:instance/i-{instance_type}"),
            "i-1".into(),
            Basis::Instance { instance_type: instance_type.into(), count: 1, storage: Vec::new() },
        );
        r.lifecycle = LifecycleState::Running;
        r
    }

    #[test]
    fn instance_hour_matches_power_curve() {
        let e = estimator();
        let rec = e
            .estimate(&instance("m5.large"), T0, T0 + 3_600, UtilisationValue::CpuPct(Some(25.0)), REVISION_MEASURED)
            .unwrap()
            .unwrap();
        // Independent: power curve at 25 % × 1 h, PUE of 2026, eu-west-1 factor.
        let p = instance_power("m5.large").unwrap().power_w(25.0);
        let compute_kwh = (p.cpu_w + p.other_w) / 1_000.0;
        let memory_kwh = p.memory_w / 1_000.0;
        assert!((rec.energy_compute_kwh - compute_kwh).abs() < 1e-12);
        assert!((rec.energy_memory_kwh - memory_kwh).abs() < 1e-12);
        let (pue_2026, _) = pue(2026);
        let g = canopy_emissions::grid::location_factor("eu-west-1").g_co2e_per_kwh;
        let expected = (compute_kwh + memory_kwh) * pue_2026 * g;
        assert!(
            (rec.operational_location_g_co2e - expected).abs() < 1e-9,
            "{} vs {expected}",
            rec.operational_location_g_co2e
        );
        assert_eq!(rec.quality, Quality::Measured.max(rec.quality));
        assert_eq!(rec.revision, 2);
        assert!(rec.low_g_co2e <= rec.total_location_g_co2e() && rec.total_location_g_co2e() <= rec.high_g_co2e);
    }

    #[test]
    fn missing_cpu_is_flagged_default() {
        let e = estimator();
        let rec = e
            .estimate(&instance("m5.large"), T0, T0 + 300, UtilisationValue::CpuPct(None), REVISION_PROVISIONAL)
            .unwrap()
            .unwrap();
        assert_eq!(rec.quality, Quality::Default);
        let p = instance_power("m5.large").unwrap().power_w(DEFAULT_CPU_UTILISATION_PCT);
        // 5 minutes = 1/12 h.
        assert!((rec.energy_compute_kwh - (p.cpu_w + p.other_w) / 1_000.0 / 12.0).abs() < 1e-12);
    }

    #[test]
    fn storage_and_groups() {
        let e = estimator();
        let part =
            StoragePart { class: "gp3".into(), bytes: 100 * (1 << 30), medium: StorageMedium::Ssd, replication: 2.0 };
        let mut vol = Resource::new(
            "ebs",
            "ec2",
            "volume",
            "arn:aws:ec2:eu-west-1:123456789012:volume/vol-1".into(),
            "vol-1".into(),
            Basis::Storage(vec![part]),
        );
        vol.lifecycle = LifecycleState::Running;
        vol.tags.insert("Team".into(), "data".into());
        let rec = e.estimate(&vol, T0, T0 + 3_600, UtilisationValue::CpuPct(None), 1).unwrap().unwrap();
        // 100 GiB = 107.374182400 GB → 0.1073741824 TB-h × 1.2 Wh × 2 / 1000 = 0.000257698 kWh.
        assert!((rec.energy_storage_kwh - 0.107_374_182_4 * 1.2 * 2.0 / 1_000.0).abs() < 1e-15);
        assert_eq!(rec.quality, Quality::Estimated);
        let key = e.group_key(&vol);
        assert_eq!(key.team.as_deref(), Some("data"));
        let groups = e.group([(key.clone(), rec.clone()), (key.clone(), rec.clone())]);
        assert_eq!(groups.len(), 1);
        assert!((groups[0].energy_storage_kwh - 2.0 * rec.energy_storage_kwh).abs() < 1e-15);
        assert_eq!(groups[0].subject, Subject::Group(key));
    }
}
