//! Cloud Carbon Footprint's AWS coefficients, exactly as compiled into CCF
//! (commit b7a049c, March 2024), for the `ccf` CUR methodology and as
//! fallbacks for `canopy`.
//!
//! Coefficients, emission factors, instance data and test vectors derived from
//! Cloud Carbon Footprint (<https://github.com/cloud-carbon-footprint/cloud-carbon-footprint>),
//! © 2021 Thoughtworks, Inc., licensed under the Apache License 2.0.
//! The CSVs live in `emissions/data/ccf/` (see the NOTICE there).

mod csv;
mod tables;

pub use tables::{CcfEmbodied, CcfFamily, CcfInstance, CcfTables, tables};

/// Where every figure in this module comes from.
pub const SOURCE: &str = "Cloud Carbon Footprint (Apache-2.0, © 2021 Thoughtworks, Inc.)";
/// Vintage of every figure in this module.
pub const VINTAGE: &str = "Cloud Carbon Footprint b7a049c (2024-03)";

/// AWS PUE CCF applies to every region and year.
pub const PUE: f64 = 1.135;
/// SSD storage power, Wh per TB-hour.
pub const SSD_WH_PER_TB_HOUR: f64 = 1.2;
/// HDD storage power, Wh per TB-hour.
pub const HDD_WH_PER_TB_HOUR: f64 = 0.65;
/// Network transfer energy, kWh per GB.
pub const NETWORKING_KWH_PER_GB: f64 = 0.001;
/// Memory energy above the SPECpower baseline, kWh per GB-hour.
pub const MEMORY_KWH_PER_GB_HOUR: f64 = 0.000392;
/// Idle watts per vCPU for an unknown microarchitecture (AWS average).
pub const MIN_WATTS_AVG: f64 = 0.74;
/// Full-load watts per vCPU for an unknown microarchitecture (AWS average).
pub const MAX_WATTS_AVG: f64 = 3.5;
/// SPECpower memory per physical chip (GB) CCF's memory step uses when the
/// instance type is not in its processor map (`MEMORY_AVG`), e.g. every
/// suffixed OpenSearch type such as `r5.large.elasticsearch`.
pub const MEMORY_AVG_GB_PER_CHIP: f64 = 80.69;
/// Constant CPU (and GPU) utilisation CCF assumes for CUR data, percent.
pub const AVG_CPU_UTILISATION_PCT: f64 = 50.0;
/// Server lifespan for embodied amortisation, hours (4 years).
pub const SERVER_EXPECTED_LIFESPAN_HOURS: f64 = 35040.0;
/// Bytes per "terabyte" in CCF's byte-hours conversion (2^40).
pub const BYTES_PER_TB_BINARY: f64 = 1_099_511_627_776.0;
/// Graviton2 idle watts per vCPU (CCF copies AMD EPYC 2nd Gen), used for ARM Lambda.
pub const GRAVITON2_MIN_WATTS: f64 = 0.47;
/// Graviton2 full-load watts per vCPU, used for ARM Lambda.
pub const GRAVITON2_MAX_WATTS: f64 = 1.69;
/// Fallback grid factor for regions missing from the table, t CO2e per kWh.
pub const UNKNOWN_REGION_T_CO2E_PER_KWH: f64 = 0.000_392_781_88;

/// Average watts at CCF's 50 % utilisation: `min + 0.5 × (max − min)`.
pub fn average_watts(min_w: f64, max_w: f64) -> f64 {
    min_w + (AVG_CPU_UTILISATION_PCT / 100.0) * (max_w - min_w)
}

/// CCF's static grid factor for `region` (t CO2e per kWh), `Unknown` when absent.
pub fn region_t_co2e_per_kwh(region: &str) -> f64 {
    tables().region_t_co2e_per_kwh.get(region).copied().unwrap_or(UNKNOWN_REGION_T_CO2E_PER_KWH)
}

/// The instance type, if any CCF table lists it.
pub fn instance(instance_type: &str) -> Option<&'static CcfInstance> {
    tables().instances.get(instance_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_parse_with_expected_sizes_and_values() {
        let t = tables();
        // 521 instance rows, 516 embodied rows, 28 regions (27 + Unknown) in the reference extract.
        assert_eq!(t.instances.len(), 521);
        assert_eq!(t.embodied.len(), 516);
        assert_eq!(t.region_t_co2e_per_kwh.len(), 28);
        assert_eq!(t.msk_vcpus.get("Kafka.m5.large"), Some(&2.0));
        assert_eq!(t.redshift_vcpus.get("dc2.8xlarge"), Some(&32.0));
        let m5 = instance("m5.xlarge").expect("m5.xlarge");
        assert_eq!((m5.vcpus, m5.min_watts_per_vcpu, m5.max_watts_per_vcpu), (Some(4.0), 0.65, 4.26));
        // d3.xlarge: CCF's key has a TAB, so its EC2 lookup fails (defect 6).
        assert_eq!(instance("d3.xlarge").and_then(|i| i.ec2_table_vcpus), None);
        assert_eq!(instance("t1.micro").and_then(|i| i.memory_gib), Some(613.0));
        assert_eq!(region_t_co2e_per_kwh("us-east-1"), 0.000379069);
        assert_eq!(region_t_co2e_per_kwh("mars-north-1"), 0.00039278188);
        assert_eq!(t.embodied["u-6tb1.metal"].total_used_by_code_t_co2e, Some(6144.0));
        assert_eq!(t.microarchitecture_watts["AWS Graviton2"], (GRAVITON2_MIN_WATTS, GRAVITON2_MAX_WATTS));
    }

    #[test]
    fn families_and_memory_as_ccf_memory_step_reads_them() {
        let t = tables();
        // CCF's 87 EC2 families plus dc1, which only the Redshift table lists.
        assert_eq!(t.families.len(), 88);
        assert!(t.families.values().all(|f| f.reference_vcpus > 0.0 && f.reference_memory_gib > 0.0 && f.physical_chips >= 1.0));
        let family = |name: &str| {
            let f = t.families[name];
            (f.reference_vcpus, f.reference_memory_gib, f.physical_chips)
        };
        assert_eq!(family("r5"), (96.0, 768.0, 1.0));
        assert_eq!(family("m5zn"), (48.0, 192.0, 2.0));
        assert!(!t.families.contains_key("u-6tb1"), "u-* is only in the embodied mapping");
        assert_eq!(family("dc1"), (32.0, 244.0, 1.0));
        assert_eq!(family("ra3"), (48.0, 384.0, 1.0), "EC2's ra3 list wins over Redshift's");
        assert_eq!(t.memory_gib.get("r5.large"), Some(&16.0));
        assert_eq!(t.memory_gib.get("ra3.xlplus"), Some(&32.0), "Redshift fallback");
        assert_eq!(t.memory_gib.get("dc1.large"), Some(&15.0));
        assert_eq!(t.memory_gib.get("d3.xlarge"), None, "TAB in CCF's key");
        assert_eq!(t.memory_gib.get("c6i.metal"), None);
    }
}
