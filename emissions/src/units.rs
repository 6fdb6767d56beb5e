//! Unit conversions used by the estimators, each named after its units.
//!
//! Decimal prefixes (GB = 10⁹ bytes, TB = 10¹² bytes) are used for storage and
//! transfer coefficients, binary ones (GiB = 2³⁰ bytes) where AWS states memory.

/// Bytes in one decimal gigabyte.
pub const BYTES_PER_GB: f64 = 1e9;
/// Bytes in one binary gibibyte.
pub const BYTES_PER_GIB: f64 = 1_073_741_824.0;
/// Bytes in one decimal terabyte.
pub const BYTES_PER_TB: f64 = 1e12;
/// Seconds in one hour.
pub const SECONDS_PER_HOUR: f64 = 3600.0;
/// Hours in one (non-leap) year, used for amortisation.
pub const HOURS_PER_YEAR: f64 = 8760.0;

/// GB-months (AWS storage billing) → GB-hours, for a month of `days_in_month` days.
pub fn gb_months_to_gb_hours(gb_months: f64, days_in_month: u8) -> f64 {
    gb_months * f64::from(days_in_month) * 24.0
}

/// GiB → GB.
pub fn gib_to_gb(gib: f64) -> f64 {
    gib * BYTES_PER_GIB / BYTES_PER_GB
}

/// GB → GiB.
pub fn gb_to_gib(gb: f64) -> f64 {
    gb * BYTES_PER_GB / BYTES_PER_GIB
}

/// GB-hours → TB-hours.
pub fn gb_hours_to_tb_hours(gb_hours: f64) -> f64 {
    gb_hours / 1000.0
}

/// Byte-hours (S3 `TimedStorage-ByteHrs`) → TB-hours (decimal terabytes).
pub fn byte_hours_to_tb_hours(byte_hours: f64) -> f64 {
    byte_hours / BYTES_PER_TB
}

/// Bytes → GB (decimal).
pub fn bytes_to_gb(bytes: f64) -> f64 {
    bytes / BYTES_PER_GB
}

/// GB-seconds (Lambda billing) → GB-hours.
pub fn gb_seconds_to_gb_hours(gb_seconds: f64) -> f64 {
    gb_seconds / SECONDS_PER_HOUR
}

/// Seconds → hours.
pub fn seconds_to_hours(seconds: f64) -> f64 {
    seconds / SECONDS_PER_HOUR
}

/// Wh → kWh.
pub fn wh_to_kwh(wh: f64) -> f64 {
    wh / 1000.0
}

/// Power held for a duration → energy: W × h → kWh.
pub fn w_hours_to_kwh(w: f64, hours: f64) -> f64 {
    w * hours / 1000.0
}

/// g → kg.
pub fn g_to_kg(g: f64) -> f64 {
    g / 1000.0
}

/// kg → g.
pub fn kg_to_g(kg: f64) -> f64 {
    kg * 1000.0
}

/// kg → metric tonnes.
pub fn kg_to_t(kg: f64) -> f64 {
    kg / 1000.0
}

/// Metric tonnes → kg.
pub fn t_to_kg(t: f64) -> f64 {
    t * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn gb_months_follow_month_length() {
        // 3 GB-Mo in October (31 days): 3 × 31 × 24 = 2232 GB-h
        assert!(close(gb_months_to_gb_hours(3.0, 31), 2232.0));
        // 1 GB-Mo in February 2024 (29 days): 696 GB-h
        assert!(close(gb_months_to_gb_hours(1.0, 29), 696.0));
    }

    #[test]
    fn binary_and_decimal_gigabytes() {
        // 8 GiB = 8 × 1.073741824 = 8.589934592 GB
        assert!(close(gib_to_gb(8.0), 8.589_934_592));
        assert!(close(gb_to_gib(gib_to_gb(3.5)), 3.5));
    }

    #[test]
    fn storage_and_transfer_volumes() {
        // 2.5e12 byte-hours = 2.5 TB-h
        assert!(close(byte_hours_to_tb_hours(2.5e12), 2.5));
        assert!(close(gb_hours_to_tb_hours(2232.0), 2.232));
        assert!(close(bytes_to_gb(1_500_000_000.0), 1.5));
    }

    #[test]
    fn time_energy_and_mass() {
        // 7200 GB-s = 2 GB-h
        assert!(close(gb_seconds_to_gb_hours(7200.0), 2.0));
        assert!(close(seconds_to_hours(900.0), 0.25));
        assert!(close(wh_to_kwh(1500.0), 1.5));
        // 14.1 W for 1 h = 0.0141 kWh
        assert!(close(w_hours_to_kwh(14.1, 1.0), 0.0141));
        assert!(close(g_to_kg(2500.0), 2.5));
        assert!(close(kg_to_g(0.4), 400.0));
        assert!(close(kg_to_t(1610.4), 1.6104));
        assert!(close(t_to_kg(1.2), 1200.0));
    }
}
