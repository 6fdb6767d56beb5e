//! Emission records: energy and CO2e for one subject over one interval.

use std::fmt;

use crate::key::RecordKey;

/// What an emission record is about: one resource, or a group of them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// A single resource, by ARN.
    Resource {
        /// The resource's ARN.
        arn: String,
    },
    /// A group of resources within the batch's account and region.
    Group(GroupKey),
}

/// Identifies a group of resources: the batch's account and region, plus
/// service, resource type and team.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    /// Service code, e.g. `ec2`.
    pub service: String,
    /// Resource type, e.g. `instance`.
    pub resource_type: String,
    /// Team (value of the configured team tag); `None` for untagged resources.
    pub team: Option<String>,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Resource { arn } => write!(f, "resource:{arn}"),
            Subject::Group(g) => write!(
                f,
                "group:{}/{}/{}",
                g.service,
                g.resource_type,
                g.team.as_deref().unwrap_or("-")
            ),
        }
    }
}

/// How an estimate was obtained (worst contributing input wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Quality {
    /// From measured utilisation and a measured power curve.
    Measured,
    /// From modelled inputs (e.g. microarchitecture fallback).
    Estimated,
    /// From documented defaults only.
    Default,
}

impl Quality {
    /// `"measured"`, `"estimated"` or `"default"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Quality::Measured => "measured",
            Quality::Estimated => "estimated",
            Quality::Default => "default",
        }
    }
}

/// A grid carbon-intensity factor as used for one record.
#[derive(Debug, Clone, PartialEq)]
pub struct GridFactorUsed {
    /// Intensity in grams CO2e per kWh.
    pub g_co2e_per_kwh: f64,
    /// Where the factor came from, e.g. `ccf`, `electricity-maps`, `residual-mix`.
    pub source: String,
    /// Vintage of the source, e.g. `2023` or `2024-06-01T10`.
    pub vintage: String,
}

/// Energy and emissions of one [`Subject`] over `[interval_start_unix_s,
/// interval_end_unix_s)`.
///
/// Component energies are IT energy, before PUE. Operational emissions are
/// `total energy * pue * grid factor`. The bounds bracket the central
/// location-based total, `embodied_g_co2e + operational_location_g_co2e`.
///
/// Records are identified across revisions by [`RecordKey`]: a record with
/// the same key and a higher `revision` supersedes the earlier one.
#[derive(Debug, Clone, PartialEq)]
pub struct EmissionRecord {
    /// Resource or group the record is about.
    pub subject: Subject,
    /// Interval start, Unix seconds (inclusive).
    pub interval_start_unix_s: i64,
    /// Interval end, Unix seconds (exclusive); greater than the start.
    pub interval_end_unix_s: i64,
    /// CPU energy, kWh.
    pub energy_compute_kwh: f64,
    /// Memory energy, kWh.
    pub energy_memory_kwh: f64,
    /// Storage energy, kWh.
    pub energy_storage_kwh: f64,
    /// Networking energy, kWh.
    pub energy_networking_kwh: f64,
    /// Accelerator (GPU, ...) energy, kWh.
    pub energy_accelerators_kwh: f64,
    /// Power usage effectiveness applied to the component energies (>= 1).
    pub pue: f64,
    /// Embodied (manufacturing) emissions amortised over the interval, gCO2e.
    pub embodied_g_co2e: f64,
    /// Operational emissions with the location-based factor, gCO2e.
    pub operational_location_g_co2e: f64,
    /// Operational emissions with the market-based factor, gCO2e.
    pub operational_market_g_co2e: f64,
    /// Location-based grid factor used.
    pub grid_location: GridFactorUsed,
    /// Market-based grid factor used.
    pub grid_market: GridFactorUsed,
    /// Data quality of the estimate.
    pub quality: Quality,
    /// Low bound of the location-based total (embodied + operational), gCO2e.
    pub low_g_co2e: f64,
    /// High bound of the location-based total (embodied + operational), gCO2e.
    pub high_g_co2e: f64,
    /// Version of the estimation methodology, e.g. `canopy-2025.1`.
    pub methodology_version: String,
    /// Revision of this record; a higher revision of the same key wins.
    pub revision: u32,
}

impl EmissionRecord {
    /// Sum of the component energies (before PUE), kWh.
    pub fn energy_total_kwh(&self) -> f64 {
        self.energy_compute_kwh
            + self.energy_memory_kwh
            + self.energy_storage_kwh
            + self.energy_networking_kwh
            + self.energy_accelerators_kwh
    }

    /// Central location-based total the bounds bracket: embodied plus
    /// operational location-based emissions, gCO2e.
    pub fn total_location_g_co2e(&self) -> f64 {
        self.embodied_g_co2e + self.operational_location_g_co2e
    }

    /// The record's stable key given the batch's account and region.
    pub fn key(&self, account_id: &str, region: &str) -> RecordKey {
        RecordKey {
            account_id: account_id.to_owned(),
            region: region.to_owned(),
            subject: self.subject.clone(),
            interval_start_unix_s: self.interval_start_unix_s,
            interval_end_unix_s: self.interval_end_unix_s,
        }
    }

    /// True when `self` should replace `stored`: same key (given the same
    /// account and region) and a strictly higher revision.
    pub fn supersedes(&self, stored: &EmissionRecord) -> bool {
        self.subject == stored.subject
            && self.interval_start_unix_s == stored.interval_start_unix_s
            && self.interval_end_unix_s == stored.interval_end_unix_s
            && self.revision > stored.revision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(g: f64) -> GridFactorUsed {
        GridFactorUsed {
            g_co2e_per_kwh: g,
            source: "ccf".into(),
            vintage: "2023".into(),
        }
    }

    fn record(revision: u32) -> EmissionRecord {
        EmissionRecord {
            subject: Subject::Resource {
                arn: "arn:aws:ec2:eu-west-1:123456789012:instance/i-1".into(),
            },
            interval_start_unix_s: 1_700_000_000,
            interval_end_unix_s: 1_700_003_600,
            energy_compute_kwh: 0.010,
            energy_memory_kwh: 0.002,
            energy_storage_kwh: 0.0,
            energy_networking_kwh: 0.001,
            energy_accelerators_kwh: 0.0,
            pue: 1.135,
            embodied_g_co2e: 1.5,
            operational_location_g_co2e: 4.4,
            operational_market_g_co2e: 0.0,
            grid_location: grid(334.0),
            grid_market: grid(0.0),
            quality: Quality::Estimated,
            low_g_co2e: 3.0,
            high_g_co2e: 9.0,
            methodology_version: "canopy-1".into(),
            revision,
        }
    }

    #[test]
    fn totals_add_components() {
        let r = record(0);
        // 0.010 + 0.002 + 0 + 0.001 + 0 = 0.013 kWh
        assert!((r.energy_total_kwh() - 0.013).abs() < 1e-12);
        // 1.5 + 4.4 = 5.9 g
        assert!((r.total_location_g_co2e() - 5.9).abs() < 1e-12);
    }

    #[test]
    fn higher_revision_of_same_key_supersedes() {
        assert!(record(2).supersedes(&record(1)));
        assert!(!record(1).supersedes(&record(1)));
        assert!(!record(1).supersedes(&record(2)));
        let mut other_hour = record(5);
        other_hour.interval_start_unix_s += 3_600;
        other_hour.interval_end_unix_s += 3_600;
        assert!(!other_hour.supersedes(&record(1)));
    }

    #[test]
    fn subject_display_marks_untagged_groups() {
        let g = Subject::Group(GroupKey {
            service: "ec2".into(),
            resource_type: "instance".into(),
            team: None,
        });
        assert_eq!(g.to_string(), "group:ec2/instance/-");
    }
}
