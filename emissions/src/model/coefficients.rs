//! Energy coefficients for storage, networking and serverless memory
//! (IT energy, without PUE). Values from Cloud Carbon Footprint's AWS
//! constants (Apache-2.0), see `docs/data-sources.md`.

/// Storage medium of a volume or bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageMedium {
    /// Solid-state (EBS gp2/gp3/io1/io2, instance NVMe, most managed stores).
    Ssd,
    /// Hard disk (EBS st1/sc1, S3, Glacier).
    Hdd,
}

/// SSD storage power, Wh per TB-hour (6 W per 5 TB drive; CCF `SSDCOEFFICIENT`).
pub const SSD_WH_PER_TB_HOUR: f64 = 1.2;
/// HDD storage power, Wh per TB-hour (6.5 W per 10 TB drive; CCF `HDDCOEFFICIENT`).
pub const HDD_WH_PER_TB_HOUR: f64 = 0.65;
/// Network transfer energy, kWh per GB (CCF `NETWORKING_COEFFICIENT`).
pub const NETWORKING_KWH_PER_GB: f64 = 0.001;
/// Memory energy, kWh per GB-hour (CCF `MEMORY_COEFFICIENT`, mean of 0.375
/// and 0.4083 W/GB).
pub const MEMORY_KWH_PER_GB_HOUR: f64 = 0.000392;
/// Relative uncertainty of the storage, networking and memory coefficients
/// (±50 %): single fleet-wide figures projected from drive specifications.
pub const COEFFICIENT_UNCERTAINTY: f64 = 0.5;

/// Storage energy, kWh: TB-hours × medium coefficient × replication factor
/// (copies kept by the service, e.g. 2 for EBS volumes, 6 for S3 Standard).
pub fn storage_kwh(tb_hours: f64, medium: StorageMedium, replication: f64) -> f64 {
    let wh_per_tb_hour = match medium {
        StorageMedium::Ssd => SSD_WH_PER_TB_HOUR,
        StorageMedium::Hdd => HDD_WH_PER_TB_HOUR,
    };
    tb_hours * wh_per_tb_hour * replication / 1000.0
}

/// Networking energy, kWh, for `gb` transferred.
pub fn networking_kwh(gb: f64) -> f64 {
    gb * NETWORKING_KWH_PER_GB
}

/// Memory energy, kWh, for serverless memory (Lambda, Fargate).
pub fn memory_kwh(gb_hours: f64) -> f64 {
    gb_hours * MEMORY_KWH_PER_GB_HOUR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coefficients_match_ccf_examples() {
        // CCF vector cur-01 without PUE: 2.232 TB-h × 1.2 × 2 / 1000 = 0.0053568 kWh
        assert!((storage_kwh(2.232, StorageMedium::Ssd, 2.0) - 0.0053568).abs() < 1e-12);
        // 10 TB-h HDD × 0.65 × 6 / 1000 = 0.039 kWh
        assert!((storage_kwh(10.0, StorageMedium::Hdd, 6.0) - 0.039).abs() < 1e-12);
        assert!((networking_kwh(250.0) - 0.25).abs() < 1e-12);
        // 100 GB-h × 0.000392 = 0.0392 kWh
        assert!((memory_kwh(100.0) - 0.0392).abs() < 1e-12);
    }
}
